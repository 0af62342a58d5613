/* args.c — the mbx command line's argument parsing: the global options (accepted
 * before the command and after it) and a command's own options and positional
 * arguments. Pure, so that the unit tests can call it. */
#include <stdarg.h>
#include <string.h>

#include "cli.h"

static int args_fail(int rc, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int args_fail(int rc, char *err, size_t errlen, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  return rc;
}

/* "--name" or "--name=…" for name: the length of "--name", else 0. */
static size_t match_long(const char *a, const char *name)
{
  size_t n = strlen(name);
  if (strncmp(a, "--", 2) != 0 || strncmp(a + 2, name, n) != 0)
    return 0;
  return a[2 + n] == 0 || a[2 + n] == '=' ? 2 + n : 0;
}

int mbxcli_global_opt(struct mbxcli_globals *g, int argc, char **argv, int *i, char *err,
                      size_t errlen)
{
  const char *a = argv[*i];
  struct {
    const char *name;
    bool *on;
  } flags[] = {{"json", &g->json}, {"cached", &g->cached}};
  for (size_t k = 0; k < sizeof(flags) / sizeof(flags[0]); k++) {
    size_t n = match_long(a, flags[k].name);
    if (!n)
      continue;
    if (a[n] == '=')
      return args_fail(MBX_EINVAL, err, errlen, "--%s takes no value", flags[k].name);
    *flags[k].on = true;
    return 1;
  }
  struct {
    const char *name;
    const char **slot;
  } vals[] = {
      {"server", &g->server}, {"ca", &g->ca},     {"cert", &g->cert},
      {"key", &g->key},       {"user", &g->user}, {"profile", &g->profile},
  };
  for (size_t k = 0; k < sizeof(vals) / sizeof(vals[0]); k++) {
    size_t n = match_long(a, vals[k].name);
    if (!n)
      continue;
    if (a[n] == '=')
      *vals[k].slot = a + n + 1;
    else if (*i + 1 < argc)
      *vals[k].slot = argv[++*i];
    else
      return args_fail(MBX_EINVAL, err, errlen, "--%s needs a value", vals[k].name);
    return 1;
  }
  return 0;
}

static int add_pos(struct mbxcli_args *a, const char *s, char *err, size_t errlen)
{
  if (a->npos == MBXCLI_POS_MAX)
    return args_fail(MBX_ELIMIT, err, errlen, "too many arguments");
  a->pos[a->npos++] = s;
  return 0;
}

/* The index in opts of "--name" or "--name=…", or -1. */
static int find_opt(const struct mbxcli_optspec *opts, const char *name, size_t nlen)
{
  for (int j = 0; j < MBXCLI_OPTS_MAX && opts[j].name; j++)
    if (strlen(opts[j].name) == nlen && strncmp(opts[j].name, name, nlen) == 0)
      return j;
  return -1;
}

int mbxcli_parse_args(const struct mbxcli_optspec *opts, int argc, char **argv,
                      struct mbxcli_args *a, struct mbxcli_globals *g, char *err, size_t errlen)
{
  int rc = 0;
  for (int i = 0; rc == 0 && i < argc; i++) {
    const char *s = argv[i];
    if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
      a->help = true;
      return 0;
    }
    if (strcmp(s, "--") == 0) {
      for (i++; rc == 0 && i < argc; i++)
        rc = add_pos(a, argv[i], err, errlen);
      break;
    }
    if (strncmp(s, "--", 2) != 0) {
      rc = add_pos(a, s, err, errlen);
      continue;
    }
    const char *name = s + 2, *eq = strchr(name, '=');
    size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
    int k = find_opt(opts, name, nlen);
    if (k < 0) {
      /* not the command's own: a global option given after the command? */
      rc = mbxcli_global_opt(g, argc, argv, &i, err, errlen);
      if (rc == 0)
        return args_fail(MBX_EINVAL, err, errlen, "unknown option --%.*s", (int)nlen, name);
      rc = rc < 0 ? rc : 0;
      continue;
    }
    const char *val = "";
    if (opts[k].has_arg) {
      if (eq)
        val = eq + 1;
      else if (i + 1 < argc)
        val = argv[++i]; /* taken as it is, even when it looks like an option */
      else
        return args_fail(MBX_EINVAL, err, errlen, "--%s needs a value", opts[k].name);
    } else if (eq) {
      return args_fail(MBX_EINVAL, err, errlen, "--%s takes no value", opts[k].name);
    }
    if (a->nmulti[k] == MBXCLI_MULTI_MAX)
      return args_fail(MBX_ELIMIT, err, errlen, "too many --%s", opts[k].name);
    a->opt[k] = val;
    a->multi[k][a->nmulti[k]++] = val;
  }
  return rc;
}

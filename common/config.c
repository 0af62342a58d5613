/* config.c — `key = value` file reader: parse once into (key, value, line) entries,
 * then let the program pull typed values out with getters that validate and word
 * their errors as "FILE:LINE: …" so a person can fix the file at once. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "mbx_error.h"

#define CONFIG_FILE_MAX (1024 * 1024)
#define CONFIG_LINE_MAX 4096
#define CONFIG_KEYS_MAX 1024

struct config_entry {
  char *key, *value;
  unsigned line;
};

struct mbx_config {
  char *path;
  struct config_entry *v;
  size_t n;
  char error[MBX_CONFIG_ERROR_BYTES];
};

static char *config_trim(char *s, char *end)
{
  while (s < end && isspace((unsigned char)*s))
    s++;
  while (end > s && isspace((unsigned char)end[-1]))
    end--;
  *end = '\0';
  return s;
}

static const struct config_entry *config_find(const struct mbx_config *c, const char *key)
{
  for (size_t i = 0; i < c->n; i++)
    if (strcmp(c->v[i].key, key) == 0)
      return &c->v[i];
  return NULL;
}

/* Cuts an inline comment: '#' at the start or after whitespace. */
static void config_strip_comment(char *s)
{
  for (char *p = s; *p; p++) {
    if (*p == '#' && (p == s || isspace((unsigned char)p[-1]))) {
      *p = '\0';
      return;
    }
  }
}

static int config_parse_line(struct mbx_config *c, char *line, unsigned lineno, char *err,
                             size_t errsz)
{
  config_strip_comment(line);
  char *s = config_trim(line, line + strlen(line));
  if (!*s)
    return 0;
  char *eq = strchr(s, '=');
  if (!eq) {
    snprintf(err, errsz, "%s:%u: expected 'key = value'", c->path, lineno);
    return MBX_ECONFIG;
  }
  char *key = config_trim(s, eq);
  char *value = config_trim(eq + 1, eq + 1 + strlen(eq + 1));
  if (!*key) {
    snprintf(err, errsz, "%s:%u: missing key before '='", c->path, lineno);
    return MBX_ECONFIG;
  }
  for (const char *k = key; *k; k++) {
    /* '.' and '-' for keys that name something: peer.node-2 */
    if (!(islower((unsigned char)*k) || isdigit((unsigned char)*k) || *k == '_' ||
          ((*k == '.' || *k == '-') && k > key))) {
      snprintf(err, errsz, "%s:%u: invalid key '%.64s' (lower case letters, digits, '_', '.', '-')",
               c->path, lineno, key);
      return MBX_ECONFIG;
    }
  }
  if (!*value) {
    snprintf(err, errsz, "%s:%u: %.64s: empty value", c->path, lineno, key);
    return MBX_ECONFIG;
  }
  const struct config_entry *dup = config_find(c, key);
  if (dup) {
    snprintf(err, errsz, "%s:%u: duplicate key '%.64s' (first set on line %u)", c->path,
             lineno, key, dup->line);
    return MBX_ECONFIG;
  }
  if (c->n >= CONFIG_KEYS_MAX) {
    snprintf(err, errsz, "%s:%u: too many keys (limit %d)", c->path, lineno, CONFIG_KEYS_MAX);
    return MBX_ECONFIG;
  }
  struct config_entry *e = &c->v[c->n];
  e->key = strdup(key);
  e->value = strdup(value);
  e->line = lineno;
  if (!e->key || !e->value) {
    free(e->key);
    free(e->value);
    snprintf(err, errsz, "%s: out of memory", c->path);
    return MBX_ENOMEM;
  }
  c->n++;
  return 0;
}

int mbx_config_parse(const char *path, const char *text, size_t len, struct mbx_config **cfg_r,
                     char *err, size_t errsz)
{
  *cfg_r = NULL;
  struct mbx_config *c = calloc(1, sizeof(*c));
  char *line = malloc(CONFIG_LINE_MAX + 1);
  if (c)
    c->path = strdup(path);
  if (c)
    c->v = calloc(CONFIG_KEYS_MAX, sizeof(*c->v));
  if (!c || !c->path || !c->v || !line) {
    snprintf(err, errsz, "%s: out of memory", path);
    free(line);
    mbx_config_free(&c);
    return MBX_ENOMEM;
  }
  int rc = 0;
  unsigned lineno = 0;
  size_t pos = 0;
  while (pos < len && rc == 0) {
    lineno++;
    const char *nl = memchr(text + pos, '\n', len - pos);
    size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
    if (n > CONFIG_LINE_MAX) {
      snprintf(err, errsz, "%s:%u: line longer than %d bytes", path, lineno, CONFIG_LINE_MAX);
      rc = MBX_ECONFIG;
      break;
    }
    if (memchr(text + pos, '\0', n)) {
      snprintf(err, errsz, "%s:%u: NUL byte in line", path, lineno);
      rc = MBX_ECONFIG;
      break;
    }
    memcpy(line, text + pos, n);
    line[n] = '\0';
    rc = config_parse_line(c, line, lineno, err, errsz);
    pos += n + 1;
  }
  free(line);
  if (rc < 0) {
    mbx_config_free(&c);
    return rc;
  }
  *cfg_r = c;
  return 0;
}

int mbx_config_load(const char *path, struct mbx_config **cfg_r, char *err, size_t errsz)
{
  *cfg_r = NULL;
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(err, errsz, "%s: cannot open: %s", path, strerror(errno));
    return MBX_EIO;
  }
  char *text = malloc(CONFIG_FILE_MAX + 1);
  if (!text) {
    fclose(f);
    snprintf(err, errsz, "%s: out of memory", path);
    return MBX_ENOMEM;
  }
  size_t len = fread(text, 1, CONFIG_FILE_MAX + 1, f);
  int rd_err = ferror(f);
  fclose(f);
  int rc;
  if (rd_err) {
    snprintf(err, errsz, "%s: read error", path);
    rc = MBX_EIO;
  } else if (len > CONFIG_FILE_MAX) {
    snprintf(err, errsz, "%s: file larger than %d bytes", path, CONFIG_FILE_MAX);
    rc = MBX_ECONFIG;
  } else {
    rc = mbx_config_parse(path, text, len, cfg_r, err, errsz);
  }
  free(text);
  return rc;
}

void mbx_config_free(struct mbx_config **cfg)
{
  struct mbx_config *c = *cfg;
  if (!c)
    return;
  for (size_t i = 0; i < c->n; i++) {
    free(c->v[i].key);
    free(c->v[i].value);
  }
  free(c->v);
  free(c->path);
  free(c);
  *cfg = NULL;
}

const char *mbx_config_error(const struct mbx_config *cfg) { return cfg->error; }
const char *mbx_config_path(const struct mbx_config *cfg) { return cfg->path; }

bool mbx_config_has(const struct mbx_config *cfg, const char *key)
{
  return config_find(cfg, key) != NULL;
}

unsigned mbx_config_line(const struct mbx_config *cfg, const char *key)
{
  const struct config_entry *e = config_find(cfg, key);
  return e ? e->line : 0;
}

int mbx_config_fail(struct mbx_config *cfg, const char *key, const char *fmt, ...)
{
  unsigned line = mbx_config_line(cfg, key);
  size_t sz = sizeof(cfg->error);
  int n = line ? snprintf(cfg->error, sz, "%s:%u: %s: ", cfg->path, line, key)
               : snprintf(cfg->error, sz, "%s: %s: ", cfg->path, key);
  if (n < 0 || (size_t)n >= sz)
    return MBX_ECONFIG;               /* the prefix alone fills it: still one line */
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cfg->error + n, sz - (size_t)n, fmt, ap);
  va_end(ap);
  return MBX_ECONFIG;
}

int mbx_config_check_keys(struct mbx_config *cfg, const char *const *known)
{
  for (size_t i = 0; i < cfg->n; i++) {
    bool ok = false;
    for (const char *const *k = known; *k && !ok; k++) {
      size_t kl = strlen(*k);         /* "peer.*" accepts every key starting "peer." */
      if (kl >= 2 && (*k)[kl - 1] == '*')
        ok = strncmp(*k, cfg->v[i].key, kl - 1) == 0 && cfg->v[i].key[kl - 1] != '\0';
      else
        ok = strcmp(*k, cfg->v[i].key) == 0;
    }
    if (!ok) {
      snprintf(cfg->error, sizeof(cfg->error), "%s:%u: unknown key '%.64s'", cfg->path,
               cfg->v[i].line, cfg->v[i].key);
      return MBX_ECONFIG;
    }
  }
  return 0;
}

/* The entry for key, or NULL when absent; a missing required key is an error. */
static int config_lookup(struct mbx_config *cfg, const char *key, unsigned flags,
                         const struct config_entry **e_r)
{
  *e_r = config_find(cfg, key);
  if (!*e_r && (flags & MBX_CONFIG_REQUIRED)) {
    snprintf(cfg->error, sizeof(cfg->error), "%s: missing required key '%s'", cfg->path, key);
    return MBX_ECONFIG;
  }
  return 0;
}

int mbx_config_str(struct mbx_config *cfg, const char *key, unsigned flags, const char *def,
                   const char **val_r)
{
  const struct config_entry *e;
  int rc = config_lookup(cfg, key, flags, &e);
  if (rc < 0)
    return rc;
  *val_r = e ? e->value : def;
  return 0;
}

/* Strict decimal: digits only, no sign, no overflow. */
static int config_parse_dec(const char *s, const char **end_r, uint64_t *v_r)
{
  uint64_t v = 0;
  const char *p = s;
  if (!isdigit((unsigned char)*p))
    return MBX_EINVAL;
  for (; isdigit((unsigned char)*p); p++) {
    unsigned d = (unsigned)(*p - '0');
    if (v > (UINT64_MAX - d) / 10)
      return MBX_EINVAL;
    v = v * 10 + d;
  }
  *end_r = p;
  *v_r = v;
  return 0;
}

int mbx_config_parse_size(const char *s, uint64_t *val_r)
{
  static const struct {
    const char *suffix;
    unsigned shift;
  } units[] = {{"", 0},    {"k", 10},   {"kib", 10}, {"m", 20},  {"mib", 20},
               {"g", 30},  {"gib", 30}, {"t", 40},   {"tib", 40}};
  const char *end;
  uint64_t v;
  if (config_parse_dec(s, &end, &v) < 0)
    return MBX_EINVAL;
  while (*end == ' ')
    end++;
  for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
    if (strcasecmp(end, units[i].suffix) == 0) {
      if (units[i].shift && v > (UINT64_MAX >> units[i].shift))
        return MBX_EINVAL;
      *val_r = v << units[i].shift;
      return 0;
    }
  }
  return MBX_EINVAL;
}

static int config_range(struct mbx_config *cfg, const char *key, uint64_t v, uint64_t min,
                        uint64_t max)
{
  if (v < min)
    return mbx_config_fail(cfg, key, "%llu is below the minimum %llu", (unsigned long long)v,
                           (unsigned long long)min);
  if (v > max)
    return mbx_config_fail(cfg, key, "%llu is above the maximum %llu", (unsigned long long)v,
                           (unsigned long long)max);
  return 0;
}

int mbx_config_u64(struct mbx_config *cfg, const char *key, unsigned flags, uint64_t def,
                   uint64_t min, uint64_t max, uint64_t *val_r)
{
  const struct config_entry *e;
  int rc = config_lookup(cfg, key, flags, &e);
  if (rc < 0)
    return rc;
  if (!e) {
    *val_r = def;
    return 0;
  }
  const char *end;
  uint64_t v;
  if (config_parse_dec(e->value, &end, &v) < 0 || *end)
    return mbx_config_fail(cfg, key, "'%.64s' is not a whole number", e->value);
  if ((rc = config_range(cfg, key, v, min, max)) < 0)
    return rc;
  *val_r = v;
  return 0;
}

int mbx_config_size(struct mbx_config *cfg, const char *key, unsigned flags, uint64_t def,
                    uint64_t min, uint64_t max, uint64_t *val_r)
{
  const struct config_entry *e;
  int rc = config_lookup(cfg, key, flags, &e);
  if (rc < 0)
    return rc;
  if (!e) {
    *val_r = def;
    return 0;
  }
  uint64_t v;
  if (mbx_config_parse_size(e->value, &v) < 0)
    return mbx_config_fail(cfg, key,
                           "'%.64s' is not a size (a number, optionally followed by K, M, G, "
                           "T or KiB, MiB, GiB, TiB)",
                           e->value);
  if ((rc = config_range(cfg, key, v, min, max)) < 0)
    return rc;
  *val_r = v;
  return 0;
}

int mbx_config_bool(struct mbx_config *cfg, const char *key, unsigned flags, bool def,
                    bool *val_r)
{
  static const char *yes[] = {"yes", "true", "on", "1"}, *no[] = {"no", "false", "off", "0"};
  const struct config_entry *e;
  int rc = config_lookup(cfg, key, flags, &e);
  if (rc < 0)
    return rc;
  if (!e) {
    *val_r = def;
    return 0;
  }
  for (size_t i = 0; i < 4; i++) {
    if (strcasecmp(e->value, yes[i]) == 0) {
      *val_r = true;
      return 0;
    }
    if (strcasecmp(e->value, no[i]) == 0) {
      *val_r = false;
      return 0;
    }
  }
  return mbx_config_fail(cfg, key, "'%.64s' is not yes/no", e->value);
}

bool mbx_config_next(const struct mbx_config *cfg, const char *prefix, size_t *pos,
                     const char **key_r, const char **value_r, unsigned *line_r)
{
  size_t plen = strlen(prefix);
  for (; *pos < cfg->n; (*pos)++) {
    const struct config_entry *e = &cfg->v[*pos];
    if (strncmp(e->key, prefix, plen) == 0) {
      *key_r = e->key;
      *value_r = e->value;
      if (line_r)
        *line_r = e->line;
      (*pos)++;
      return true;
    }
  }
  return false;
}

/* mbx.c — the mbx command line: user, transport and admin commands over libmbx.
 * Exit codes: 0 success, 1 the server (or a local check) refused, 2 usage error,
 * 3 connection/TLS failure. Errors are exactly one line on stderr; only a partial
 * command ("mbx admin db") lists the commands it could mean after that line. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"
#include "clock.h"
#include "log.h"

enum { EXIT_REFUSED = 1, EXIT_USAGE = 2, EXIT_CONN = 3 };
enum auth { AUTH_NONE, AUTH_USER, AUTH_ADMIN, AUTH_TRANSPORT };

#define MAX_FILE_BYTES ((size_t)1 << 30) /* when the server names no limit */

struct cmd;

struct ctx {
  const char *server, *ca, *cert, *key, *user;
  bool json;
  mbxc_conn *conn;
  /* --cached: user commands read and write the profile's cache, not the server */
  bool cached;
  const char *profile;
  mbxc_cache *cache;
  const struct cmd *cmd;
  struct mbxcli_args args;          /* the command's parsed arguments */
};

struct cmd {
  const char *words[3];
  enum auth auth;
  int min_pos, max_pos;
  struct mbxcli_optspec opts[MBXCLI_OPTS_MAX];
  int (*run)(struct ctx *x);
  const char *usage;
  const char *help;
};

/* ======================================================================== */
/* errors                                                                   */
/* ======================================================================== */

static const char *cmd_name(const struct ctx *x)
{
  static char name[64];
  if (!x->cmd)
    return "mbx";
  snprintf(name, sizeof(name), "%s%s%s%s%s", x->cmd->words[0],
           x->cmd->words[1] ? " " : "", x->cmd->words[1] ? x->cmd->words[1] : "",
           x->cmd->words[2] ? " " : "", x->cmd->words[2] ? x->cmd->words[2] : "");
  return name;
}

static int usage_error(const struct ctx *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int usage_error(const struct ctx *x, const char *fmt, ...)
{
  va_list ap;
  fputs("mbx: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  if (x && x->cmd)
    fprintf(stderr, " (see mbx %s --help)\n", cmd_name(x));
  else
    fputs(" (see mbx --help)\n", stderr);
  return EXIT_USAGE;
}

static int local_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int local_error(const char *fmt, ...)
{
  va_list ap;
  fputs("mbx: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  return EXIT_REFUSED;
}

static bool is_conn_error(int rc)
{
  return rc == MBX_ECONN || rc == MBX_ETLS || rc == MBX_ECLOSED || rc == MBX_ETIMEDOUT;
}

/* One line for a failed call: what failed, the server's message, its code name. */
static int call_error(struct ctx *x, const char *what, int rc)
{
  const char *msg = x->conn ? mbxc_last_error(x->conn) : mbxc_cache_last_error();
  if (!msg || !*msg || (x->conn && mbxc_last_error_code(x->conn) != rc))
    msg = mbx_strerror(rc);
  fprintf(stderr, "mbx: %s: %s (%s)\n", what, msg, mbx_strerror_name(rc));
  return is_conn_error(rc) ? EXIT_CONN : EXIT_REFUSED;
}

/* ======================================================================== */
/* output                                                                   */
/* ======================================================================== */

/* m as one line of JSON; extra (if not NULL) is more members appended to its object,
 * e.g. "\"ack_node\":\"node1\"". */
static int emit_json_with(const ProtobufCMessage *m, const char *extra)
{
  struct mbx_buf b;
  mbx_buf_init(&b, 0);
  int rc = m ? mbxcli_json_message(&b, m) : mbx_buf_append(&b, "{}", 2);
  if (rc == 0 && extra && b.len >= 2 && b.data[b.len - 1] == '}') {
    b.len--;                          /* reopen the object */
    if (b.len > 1)
      rc = mbx_buf_append(&b, ",", 1);
    if (rc == 0)
      rc = mbx_buf_append(&b, extra, strlen(extra));
    if (rc == 0)
      rc = mbx_buf_append(&b, "}", 1);
  }
  if (rc == 0)
    rc = mbx_buf_append(&b, "\n", 1);
  if (rc == 0 && fwrite(b.data, 1, b.len, stdout) != b.len)
    rc = MBX_EIO;
  mbx_buf_free(&b);
  if (rc < 0)
    return local_error("cannot write output: %s", mbx_strerror(rc));
  return 0;
}

static int emit_json(const ProtobufCMessage *m)
{
  return emit_json_with(m, NULL);
}

/* A write's result as JSON, with the node and epoch that acknowledged it (so that a
 * history can be checked): {"…":…, "ack_node":"node1", "ack_epoch":3}. Node names
 * are [a-z0-9-] (node_name in mbxd's config): nothing to escape. */
static int emit_json_ack(struct ctx *x, const ProtobufCMessage *m)
{
  uint64_t epoch = 0;
  const char *node = mbxc_last_ack(x->conn, &epoch);
  if (!*node || !mbxcli_valid_node_name(node, strlen(node)))
    return emit_json(m);
  char extra[128];
  snprintf(extra, sizeof(extra), "\"ack_node\":\"%s\",\"ack_epoch\":%" PRIu64, node, epoch);
  return emit_json_with(m, extra);
}

/* ======================================================================== */
/* passwords                                                                */
/* ======================================================================== */

/* Reads a line from the terminal with echo off. Returns malloc'd text or NULL. */
static char *prompt_secret(const char *prompt)
{
  struct termios old, quiet;
  if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &old) < 0)
    return NULL;
  quiet = old;
  quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
  fputs(prompt, stderr);
  fflush(stderr);
  tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
  char buf[1024];
  char *r = fgets(buf, sizeof(buf), stdin);
  tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
  fputc('\n', stderr);
  if (!r)
    return NULL;
  buf[strcspn(buf, "\r\n")] = 0;
  char *s = strdup(buf);
  explicit_bzero(buf, sizeof(buf));
  return s;
}

static void free_secret(char **s)
{
  if (*s) {
    explicit_bzero(*s, strlen(*s));
    free(*s);
    *s = NULL;
  }
}

/* The secret from env var (copied) or a prompt; NULL with a message printed. */
static char *get_secret(const char *env, const char *prompt, bool twice, int *exit_r)
{
  const char *e = getenv(env);
  if (e && *e)
    return strdup(e);
  if (!isatty(STDIN_FILENO)) {
    fprintf(stderr, "mbx: no password: set %s\n", env);
    *exit_r = EXIT_USAGE;
    return NULL;
  }
  char *s = prompt_secret(prompt);
  if (!s || !*s) {
    free_secret(&s);
    fprintf(stderr, "mbx: no password given\n");
    *exit_r = EXIT_USAGE;
    return NULL;
  }
  if (twice) {
    char *again = prompt_secret("Repeat the password: ");
    bool same = again && strcmp(again, s) == 0;
    free_secret(&again);
    if (!same) {
      free_secret(&s);
      fprintf(stderr, "mbx: the passwords do not match\n");
      *exit_r = EXIT_USAGE;
      return NULL;
    }
  }
  return s;
}

/* ======================================================================== */
/* connecting                                                               */
/* ======================================================================== */

static int do_connect(struct ctx *x)
{
  if (!x->server || !*x->server)
    return usage_error(x, "no server: use --server HOST:PORT or set MBX_SERVER");
  if (!x->ca || !*x->ca)
    return usage_error(x, "no CA certificate: use --ca FILE or set MBX_CA");
  if ((x->cert && *x->cert) != (x->key && *x->key))
    return usage_error(x, "--cert and --key go together");
  struct mbxc_options o = {
    .servers = x->server, .ca_file = x->ca, .cert_file = x->cert, .key_file = x->key,
    .client_name = "mbx/" MBXC_VERSION,
  };
  const char *err = NULL;
  int rc = mbxc_open(&o, &x->conn, &err);
  if (rc == MBX_EINVAL) {
    fprintf(stderr, "mbx: %s\n", err);
    return EXIT_USAGE;
  }
  if (rc < 0) {
    fprintf(stderr, "mbx: %s\n", err && *err ? err : mbx_strerror(rc));
    return EXIT_CONN;
  }
  return 0;
}

static bool have_cert(const struct ctx *x) { return x->cert && *x->cert; }

static int authenticate(struct ctx *x)
{
  Mbx__Role role;
  const char *env, *user;
  char prompt[300];
  switch (x->cmd->auth) {
  case AUTH_NONE:
    return 0;
  case AUTH_USER:
    if (!x->user || !*x->user)
      return usage_error(x, "no user: use --user ADDRESS or set MBX_USER");
    role = MBX__ROLE__ROLE_USER;
    env = "MBX_PASSWORD";
    user = x->user;
    snprintf(prompt, sizeof(prompt), "Password for %.250s: ", x->user);
    break;
  case AUTH_ADMIN:
    if (have_cert(x))
      return 0; /* the certificate's OU=operator is the credential */
    role = MBX__ROLE__ROLE_OPERATOR;
    env = "MBX_OPERATOR_PASSWORD";
    user = x->user && *x->user ? x->user : "operator";
    snprintf(prompt, sizeof(prompt), "Operator password: ");
    break;
  case AUTH_TRANSPORT:
  default:
    if (have_cert(x))
      return 0;
    role = MBX__ROLE__ROLE_TRANSPORT;
    env = "MBX_TRANSPORT_PASSWORD";
    user = x->user && *x->user ? x->user : "transport";
    snprintf(prompt, sizeof(prompt), "Transport password: ");
    break;
  }
  int ex = 0;
  char *pw = get_secret(env, prompt, false, &ex);
  if (!pw)
    return ex;
  Mbx__LoginResp *lr = NULL;
  int rc = mbxc_login(x->conn, role, user, pw, &lr);
  free_secret(&pw);
  mbxc_free(&lr);
  if (rc < 0)
    return call_error(x, "login", rc);
  return 0;
}

/* ======================================================================== */
/* argument helpers                                                         */
/* ======================================================================== */

static int opt_index(const struct ctx *x, const char *name)
{
  for (int i = 0; i < MBXCLI_OPTS_MAX && x->cmd->opts[i].name; i++)
    if (strcmp(x->cmd->opts[i].name, name) == 0)
      return i;
  abort(); /* a command asked for an option it does not declare: a bug here */
}

static const char *opt(const struct ctx *x, const char *name)
{
  return x->args.opt[opt_index(x, name)];
}

static bool flag(const struct ctx *x, const char *name) { return opt(x, name) != NULL; }

static int parse_item_id(struct ctx *x, const char *s, uint64_t *id_r)
{
  if (mbxcli_parse_u64(s, UINT64_MAX, id_r) < 0 || *id_r == 0)
    return usage_error(x, "\"%s\" is not an item id (a positive number)", s);
  return 0;
}

static int parse_u32_opt(struct ctx *x, const char *name, uint32_t *v_r)
{
  const char *s = opt(x, name);
  uint64_t v = 0;
  if (s && mbxcli_parse_u64(s, UINT32_MAX, &v) < 0)
    return usage_error(x, "--%s wants a number, not \"%s\"", name, s);
  *v_r = (uint32_t)v;
  return 0;
}

/* The folder tree: the server's, or in cached mode the cache's. */
static int folders_of(struct ctx *x, Mbx__FoldersResp **fr_r)
{
  return x->cache ? mbxc_cache_folders(x->cache, fr_r) : mbxc_folders(x->conn, fr_r);
}

/* Resolves a FOLDER argument (path or id) with one folders call. *fr_r keeps the
 * folders reply alive (caller frees) so that *f_r stays valid. In cached mode a
 * local id that has been pushed still works: it is mapped to the server's id. */
static int resolve_folder(struct ctx *x, const char *spec, Mbx__FoldersResp **fr_r,
                          const Mbx__Folder **f_r)
{
  char mapped[32];
  uint64_t id;
  if (x->cache && mbxcli_parse_u64(spec, UINT64_MAX, &id) == 0 &&
      mbxc_cache_map_id(x->cache, id) != id) {
    snprintf(mapped, sizeof(mapped), "%" PRIu64, mbxc_cache_map_id(x->cache, id));
    spec = mapped;
  }
  int rc = folders_of(x, fr_r);
  if (rc < 0)
    return call_error(x, "folders", rc);
  if (mbxc_folder_resolve(*fr_r, spec, f_r) < 0) {
    fprintf(stderr, "mbx: no folder \"%s\" (ENOTFOUND)\n", spec);
    mbxc_free(fr_r);
    return EXIT_REFUSED;
  }
  return 0;
}

static int folder_id_of(struct ctx *x, const char *spec, uint64_t *id_r)
{
  Mbx__FoldersResp *fr = NULL;
  const Mbx__Folder *f;
  int ex = resolve_folder(x, spec, &fr, &f);
  if (ex)
    return ex;
  *id_r = f->id;
  mbxc_free(&fr);
  return 0;
}

/* Reads FILE ("-" = stdin) with the server's message size limit checked first. */
static int read_message(struct ctx *x, const char *path, uint8_t **data_r, size_t *len_r)
{
  const Mbx__HelloResp *h = x->conn ? mbxc_server_info(x->conn) : NULL;
  size_t limit = h && h->has_max_message_bytes && h->max_message_bytes
                     ? (size_t)h->max_message_bytes : MAX_FILE_BYTES;
  if (x->cache)
    limit = mbxc_cache_max_message_bytes(x->cache);
  bool is_stdin = strcmp(path, "-") == 0;
  FILE *f = is_stdin ? stdin : fopen(path, "rb");
  if (!f)
    return local_error("cannot open %s: %s", path, strerror(errno));
  struct stat st;
  if (!is_stdin && fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) &&
      (uint64_t)st.st_size > limit) {
    fclose(f);
    return local_error("%s: %s is %" PRIu64 " bytes, over the server's limit of %zu bytes "
                       "(ETOOBIG)", cmd_name(x), path, (uint64_t)st.st_size, limit);
  }
  struct mbx_buf b;
  mbx_buf_init(&b, limit + 1);
  char chunk[65536];
  size_t n;
  int rc = 0;
  while (rc == 0 && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
    rc = mbx_buf_append(&b, chunk, n);
  bool read_err = ferror(f);
  if (!is_stdin)
    fclose(f);
  if (rc == MBX_ELIMIT || (rc == 0 && b.len > limit)) {
    mbx_buf_free(&b);
    return local_error("%s: %s is over the server's limit of %zu bytes (ETOOBIG)",
                       cmd_name(x), path, limit);
  }
  if (rc < 0 || read_err) {
    mbx_buf_free(&b);
    return local_error("cannot read %s: %s", path, rc < 0 ? mbx_strerror(rc) : strerror(errno));
  }
  if (b.len == 0) {
    mbx_buf_free(&b);
    return local_error("%s is empty", path);
  }
  *data_r = b.data;
  *len_r = b.len;
  return 0;
}

static int print_item_result(struct ctx *x, Mbx__ItemResp *ir, const char *verb)
{
  int ex = 0;
  if (x->json)
    ex = emit_json_ack(x, &ir->base);
  else if (ir->item)
    printf("%s item %" PRIu64 " in folder %" PRIu64 "\n", verb, ir->item->id,
           ir->item->folder_id);
  if (ir->has_quota_warning && ir->quota_warning)
    fprintf(stderr, "mbx: warning: the mailbox is over its quota warning level\n");
  mbxc_free(&ir);
  return ex;
}

/* ======================================================================== */
/* user commands                                                            */
/* ======================================================================== */

static int cmd_folders(struct ctx *x)
{
  Mbx__FoldersResp *fr;
  int rc = folders_of(x, &fr);
  if (rc < 0)
    return call_error(x, "folders", rc);
  int ex = 0;
  if (x->json)
    ex = emit_json(&fr->base);
  else
    mbxcli_print_folders(stdout, fr);
  mbxc_free(&fr);
  return ex;
}

static int folder_result(struct ctx *x, Mbx__FolderResp *r, const char *verb)
{
  int ex = 0;
  if (x->json) {
    ex = emit_json_ack(x, &r->base);
  } else if (r->folder) {
    Mbx__FoldersResp *fr = NULL;
    if (folders_of(x, &fr) < 0)
      fr = NULL;
    printf("%s ", verb);
    mbxcli_print_folder(stdout, fr, r->folder);
    mbxc_free(&fr);
  }
  mbxc_free(&r);
  return ex;
}

static int cmd_folder_create(struct ctx *x)
{
  Mbx__FolderClass cls = MBX__FOLDER_CLASS__FOLDER_MAIL;
  if (opt(x, "class") && mbxcli_parse_folder_class(opt(x, "class"), &cls) < 0)
    return usage_error(x, "--class is one of mail, calendar, contacts, tasks, notes");
  uint64_t parent = 0;
  if (opt(x, "parent")) {
    int ex = folder_id_of(x, opt(x, "parent"), &parent);
    if (ex)
      return ex;
  }
  Mbx__FolderResp *r;
  int rc = x->cache ? mbxc_cache_create_folder(x->cache, x->args.pos[0], parent, cls, &r)
                    : mbxc_create_folder(x->conn, x->args.pos[0], parent, cls, &r);
  if (rc < 0)
    return call_error(x, "folder create", rc);
  return folder_result(x, r, "created");
}

static int cmd_folder_rename(struct ctx *x)
{
  uint64_t id;
  int ex = folder_id_of(x, x->args.pos[0], &id);
  if (ex)
    return ex;
  Mbx__FolderResp *r;
  int rc = x->cache ? mbxc_cache_update_folder(x->cache, id, x->args.pos[1], false, 0, &r)
                    : mbxc_update_folder(x->conn, id, x->args.pos[1], false, 0, &r);
  if (rc < 0)
    return call_error(x, "folder rename", rc);
  return folder_result(x, r, "renamed");
}

static int cmd_folder_move(struct ctx *x)
{
  if (flag(x, "top") == (opt(x, "parent") != NULL))
    return usage_error(x, "give exactly one of --parent FOLDER or --top");
  uint64_t id, parent = 0;
  int ex = folder_id_of(x, x->args.pos[0], &id);
  if (!ex && opt(x, "parent"))
    ex = folder_id_of(x, opt(x, "parent"), &parent);
  if (ex)
    return ex;
  Mbx__FolderResp *r;
  int rc = x->cache ? mbxc_cache_update_folder(x->cache, id, NULL, true, parent, &r)
                    : mbxc_update_folder(x->conn, id, NULL, true, parent, &r);
  if (rc < 0)
    return call_error(x, "folder move", rc);
  return folder_result(x, r, "moved");
}

static int cmd_folder_delete(struct ctx *x)
{
  uint64_t id;
  int ex = folder_id_of(x, x->args.pos[0], &id);
  if (ex)
    return ex;
  int rc = x->cache ? mbxc_cache_delete_folder(x->cache, id) : mbxc_delete_folder(x->conn, id);
  if (rc < 0)
    return call_error(x, "folder delete", rc);
  if (x->json)
    return emit_json(NULL);
  printf("deleted folder %" PRIu64 "\n", id);
  return 0;
}

static int cmd_folder_empty(struct ctx *x)
{
  uint64_t id, count = 0;
  int ex = folder_id_of(x, x->args.pos[0], &id);
  if (ex)
    return ex;
  int rc = mbxc_empty_folder(x->conn, id, &count);
  if (rc < 0)
    return call_error(x, "folder empty", rc);
  if (x->json) {
    Mbx__CountResp cr = MBX__COUNT_RESP__INIT;
    cr.has_count = 1;
    cr.count = count;
    return emit_json(&cr.base);
  }
  printf("deleted %" PRIu64 " items\n", count);
  return 0;
}

struct list_src {
  struct ctx *x;
  uint64_t folder_id;
};

static int list_page(void *arg, uint32_t offset, uint32_t limit, Mbx__ListResp **resp_r)
{
  struct list_src *src = arg;
  struct ctx *x = src->x;
  return x->cache ? mbxc_cache_list(x->cache, src->folder_id, offset, limit, resp_r)
                  : mbxc_list(x->conn, src->folder_id, offset, limit, resp_r);
}

/* --limit N: N items however many pages that takes; without it, one page of the
 * server's default size, and a note on stderr when the folder holds more. */
static int list_folder(struct ctx *x, uint64_t folder_id)
{
  uint32_t limit = 0, offset = 0;
  int ex = parse_u32_opt(x, "limit", &limit);
  if (!ex)
    ex = parse_u32_opt(x, "offset", &offset);
  if (ex)
    return ex;
  struct list_src src = { .x = x, .folder_id = folder_id };
  struct mbxcli_listing l;
  int rc = mbxcli_list_all(list_page, &src, offset, limit, &l);
  if (rc < 0) {
    mbxcli_listing_free(&l);
    return call_error(x, "list", rc);
  }
  if (x->json)
    ex = emit_json(&l.view.base);
  else
    mbxcli_print_list(stdout, &l.view);
  if (!limit && (uint64_t)offset + l.view.n_items < l.view.total)
    fprintf(stderr, "mbx: note: %zu of %" PRIu64 " items listed; --limit N lists more\n",
            l.view.n_items, l.view.total);
  if (l.changed)
    fprintf(stderr, "mbx: note: the folder changed while it was listed (%" PRIu64 " items, "
                    "then %" PRIu64 "); an item may be missing: list again\n",
            l.first_total, l.view.total);
  mbxcli_listing_free(&l);
  return ex;
}

static int cmd_list(struct ctx *x)
{
  uint64_t id;
  int ex = folder_id_of(x, x->args.pos[0], &id);
  return ex ? ex : list_folder(x, id);
}

/* Cached mode: a body the cache never fetched comes from the server (the profile
 * remembers which) and is kept; offline, that is an error. */
static int fetch_body(struct ctx *x, uint64_t id, Mbx__ItemResp **ir)
{
  uint64_t sid = (*ir)->item->id;
  int ex = do_connect(x);
  if (!ex)
    ex = authenticate(x);
  if (ex)
    return ex;
  Mbx__ItemResp *sr;
  int rc = mbxc_get(x->conn, sid, true, &sr);
  if (rc < 0)
    return call_error(x, "get --body", rc);
  if (sr->has_body)
    rc = mbxc_cache_put_body(x->cache, sid, sr->body.data, sr->body.len);
  mbxc_free(&sr);
  mbxc_free(ir);
  if (rc == 0)
    rc = mbxc_cache_get(x->cache, id, true, ir, NULL);
  return rc < 0 ? call_error(x, "get", rc) : 0;
}

static int cmd_get(struct ctx *x)
{
  uint64_t id;
  int ex = parse_item_id(x, x->args.pos[0], &id);
  if (ex)
    return ex;
  Mbx__ItemResp *ir;
  bool missing = false;
  int rc = x->cache ? mbxc_cache_get(x->cache, id, flag(x, "body"), &ir, &missing)
                    : mbxc_get(x->conn, id, flag(x, "body"), &ir);
  if (rc < 0)
    return call_error(x, "get", rc);
  if (missing && (ex = fetch_body(x, id, &ir))) {
    mbxc_free(&ir);
    return ex;
  }
  if (x->json)
    ex = emit_json(&ir->base);
  else
    mbxcli_print_item(stdout, ir, flag(x, "body"));
  mbxc_free(&ir);
  return ex;
}

static int cmd_append(struct ctx *x)
{
  uint32_t flags = 0;
  if (opt(x, "flags") && mbxcli_parse_flag_list(opt(x, "flags"), &flags) < 0)
    return usage_error(x, "--flags takes seen,flagged,answered,draft");
  uint64_t folder;
  int ex = folder_id_of(x, x->args.pos[0], &folder);
  if (ex)
    return ex;
  uint8_t *data;
  size_t len;
  ex = read_message(x, x->args.pos[1], &data, &len);
  if (ex)
    return ex;
  Mbx__ItemResp *ir;
  int rc = x->cache ? mbxc_cache_append(x->cache, folder, data, len, flags, &ir)
                    : mbxc_append(x->conn, folder, data, len, flags, &ir);
  free(data);
  if (rc < 0)
    return call_error(x, "append", rc);
  return print_item_result(x, ir, "appended");
}

static int cmd_flag(struct ctx *x)
{
  uint64_t id;
  int ex = parse_item_id(x, x->args.pos[0], &id);
  if (ex)
    return ex;
  uint32_t add = 0, remove = 0;
  for (int i = 1; i < x->args.npos; i++)
    if (mbxcli_parse_flag_change(x->args.pos[i], &add, &remove) < 0)
      return usage_error(x, "\"%s\": flags are +NAME or -NAME with NAME one of seen, "
                            "flagged, answered, draft", x->args.pos[i]);
  const char *cats = opt(x, "categories");
  if (x->args.npos < 2 && !cats)
    return usage_error(x, "nothing to change: give +FLAG/-FLAG or --categories");
  char **v = NULL;
  size_t n = 0;
  if (cats && mbxcli_split_csv(cats, &v, &n) < 0)
    return local_error("out of memory");
  Mbx__ItemResp *ir;
  int rc = x->cache ? mbxc_cache_set_flags(x->cache, id, add, remove, cats != NULL,
                                          (const char *const *)v, n, &ir)
                    : mbxc_set_flags(x->conn, id, add, remove, cats != NULL,
                                     (const char *const *)v, n, &ir);
  mbxcli_strv_free(&v);
  if (rc < 0)
    return call_error(x, "flag", rc);
  return print_item_result(x, ir, "updated");
}

static int move_or_copy(struct ctx *x, bool copy)
{
  uint64_t id, folder;
  int ex = parse_item_id(x, x->args.pos[0], &id);
  if (!ex)
    ex = folder_id_of(x, x->args.pos[1], &folder);
  if (ex)
    return ex;
  Mbx__ItemResp *ir;
  int rc = copy       ? mbxc_copy(x->conn, id, folder, &ir)
           : x->cache ? mbxc_cache_move(x->cache, id, folder, &ir)
                      : mbxc_move(x->conn, id, folder, &ir);
  if (rc < 0)
    return call_error(x, copy ? "copy" : "move", rc);
  return print_item_result(x, ir, copy ? "copied as" : "moved");
}

static int cmd_move(struct ctx *x) { return move_or_copy(x, false); }
static int cmd_copy(struct ctx *x) { return move_or_copy(x, true); }

static int cmd_delete(struct ctx *x)
{
  uint64_t id;
  int ex = parse_item_id(x, x->args.pos[0], &id);
  if (ex)
    return ex;
  int rc = x->cache ? mbxc_cache_delete(x->cache, id, flag(x, "hard"))
                    : mbxc_delete(x->conn, id, flag(x, "hard"));
  if (rc < 0)
    return call_error(x, "delete", rc);
  if (x->json)
    return emit_json(NULL);
  printf("deleted item %" PRIu64 "\n", id);
  return 0;
}

static int decode_state(struct ctx *x, uint8_t **st_r, size_t *len_r)
{
  *st_r = NULL;
  *len_r = 0;
  const char *s = opt(x, "state");
  if (s && *s && mbxcli_b64url_decode(s, st_r, len_r) < 0)
    return usage_error(x, "--state: not a sync token (base64url)");
  return 0;
}

static int cmd_sync(struct ctx *x)
{
  uint8_t *st;
  size_t stlen;
  uint64_t folder;
  int ex = decode_state(x, &st, &stlen);
  if (!ex)
    ex = folder_id_of(x, x->args.pos[0], &folder);
  if (ex) {
    free(st);
    return ex;
  }
  Mbx__SyncResp *sr;
  int rc = mbxc_sync(x->conn, folder, st, stlen, 0, &sr);
  free(st);
  if (rc < 0)
    return call_error(x, "sync", rc);
  if (x->json)
    ex = emit_json(&sr->base);
  else
    mbxcli_print_sync(stdout, sr->added, sr->n_added, sr->changed, sr->n_changed, sr->deleted,
                      sr->n_deleted, &sr->state, sr->has_more && sr->more);
  mbxc_free(&sr);
  return ex;
}

static int cmd_sync_folders(struct ctx *x)
{
  uint8_t *st;
  size_t stlen;
  int ex = decode_state(x, &st, &stlen);
  if (ex)
    return ex;
  Mbx__SyncFoldersResp *sr;
  int rc = mbxc_sync_folders(x->conn, st, stlen, 0, &sr);
  free(st);
  if (rc < 0)
    return call_error(x, "sync-folders", rc);
  if (x->json)
    ex = emit_json(&sr->base);
  else
    mbxcli_print_sync_folders(stdout, sr);
  mbxc_free(&sr);
  return ex;
}

/* ---- event / contact / task / note ---- */

/* The folder for a typed item: --folder if the command has it, else the well-known
 * default (Calendar, Contacts, Tasks, Notes). */
static int typed_folder(struct ctx *x, Mbx__WellKnown wk, uint64_t *id_r)
{
  for (int i = 0; i < MBXCLI_OPTS_MAX && x->cmd->opts[i].name; i++)
    if (strcmp(x->cmd->opts[i].name, "folder") == 0 && x->args.opt[i])
      return folder_id_of(x, x->args.opt[i], id_r);
  Mbx__FoldersResp *fr;
  int rc = folders_of(x, &fr);
  if (rc < 0)
    return call_error(x, "folders", rc);
  const Mbx__Folder *f = mbxc_folder_well_known(fr, wk);
  if (!f) {
    mbxc_free(&fr);
    return local_error("this mailbox has no default folder for that (ENOTFOUND)");
  }
  *id_r = f->id;
  mbxc_free(&fr);
  return 0;
}

static int create_typed(struct ctx *x, Mbx__Item *it, Mbx__WellKnown wk)
{
  uint64_t folder;
  int ex = typed_folder(x, wk, &folder);
  if (ex)
    return ex;
  Mbx__ItemResp *ir;
  int rc = x->cache ? mbxc_cache_create_item(x->cache, folder, it, &ir)
                    : mbxc_create_item(x->conn, folder, it, &ir);
  if (rc < 0)
    return call_error(x, cmd_name(x), rc);
  return print_item_result(x, ir, "created");
}

static int list_typed(struct ctx *x, Mbx__WellKnown wk)
{
  uint64_t folder;
  int ex = typed_folder(x, wk, &folder);
  return ex ? ex : list_folder(x, folder);
}

static int parse_time_opt(struct ctx *x, const char *name, int64_t *us_r)
{
  if (mbxcli_parse_iso8601(opt(x, name), us_r) < 0)
    return usage_error(x, "--%s: \"%s\" is not an ISO 8601 time (2026-03-01T09:30:00Z)",
                       name, opt(x, name));
  return 0;
}

static int cmd_event_add(struct ctx *x)
{
  if (!opt(x, "subject") || !opt(x, "start") || !opt(x, "end"))
    return usage_error(x, "event add needs --subject, --start and --end");
  Mbx__Item it = MBX__ITEM__INIT;
  Mbx__Event ev = MBX__EVENT__INIT;
  it.has_kind = 1;
  it.kind = MBX__ITEM_KIND__ITEM_EVENT;
  it.event = &ev;
  ev.subject = (char *)opt(x, "subject");
  ev.has_start_us = ev.has_end_us = 1;
  int ex = parse_time_opt(x, "start", &ev.start_us);
  if (!ex)
    ex = parse_time_opt(x, "end", &ev.end_us);
  if (ex)
    return ex;
  if (ev.end_us < ev.start_us)
    return usage_error(x, "--end is before --start");
  ev.time_zone = (char *)opt(x, "tz");
  ev.location = (char *)opt(x, "location");
  ev.recurrence_rule = (char *)opt(x, "rrule");
  int ai = opt_index(x, "attendee");
  ev.n_attendees = x->args.nmulti[ai];
  ev.attendees = (char **)x->args.multi[ai];
  ev.has_reminder_minutes = 1;
  ev.reminder_minutes = -1;
  if (opt(x, "reminder")) {
    uint64_t m;
    if (mbxcli_parse_u64(opt(x, "reminder"), 40320, &m) < 0)
      return usage_error(x, "--reminder wants minutes (0..40320)");
    ev.reminder_minutes = (int32_t)m;
  }
  return create_typed(x, &it, MBX__WELL_KNOWN__WK_CALENDAR);
}

static int cmd_event_list(struct ctx *x) { return list_typed(x, MBX__WELL_KNOWN__WK_CALENDAR); }

static int cmd_contact_add(struct ctx *x)
{
  if (!opt(x, "name"))
    return usage_error(x, "contact add needs --name");
  Mbx__Item it = MBX__ITEM__INIT;
  Mbx__Contact c = MBX__CONTACT__INIT;
  it.has_kind = 1;
  it.kind = MBX__ITEM_KIND__ITEM_CONTACT;
  it.contact = &c;
  c.display_name = (char *)opt(x, "name");
  c.given_name = (char *)opt(x, "given");
  c.surname = (char *)opt(x, "surname");
  c.company = (char *)opt(x, "company");
  int ei = opt_index(x, "email"), pi = opt_index(x, "phone");
  c.n_emails = x->args.nmulti[ei];
  c.emails = (char **)x->args.multi[ei];
  c.n_phones = x->args.nmulti[pi];
  c.phones = (char **)x->args.multi[pi];
  return create_typed(x, &it, MBX__WELL_KNOWN__WK_CONTACTS);
}

static int cmd_contact_list(struct ctx *x) { return list_typed(x, MBX__WELL_KNOWN__WK_CONTACTS); }

static int cmd_task_add(struct ctx *x)
{
  if (!opt(x, "subject"))
    return usage_error(x, "task add needs --subject");
  Mbx__Item it = MBX__ITEM__INIT;
  Mbx__Task t = MBX__TASK__INIT;
  it.has_kind = 1;
  it.kind = MBX__ITEM_KIND__ITEM_TASK;
  it.task = &t;
  t.subject = (char *)opt(x, "subject");
  if (opt(x, "due")) {
    int ex = parse_time_opt(x, "due", &t.due_us);
    if (ex)
      return ex;
    t.has_due_us = 1;
  }
  if (opt(x, "status")) {
    if (mbxcli_parse_task_status(opt(x, "status"), &t.status) < 0)
      return usage_error(x, "--status is one of not-started, in-progress, completed, "
                            "waiting, deferred");
    t.has_status = 1;
  }
  if (opt(x, "percent")) {
    uint64_t p;
    if (mbxcli_parse_u64(opt(x, "percent"), 100, &p) < 0)
      return usage_error(x, "--percent wants 0..100");
    t.has_percent_complete = 1;
    t.percent_complete = (uint32_t)p;
  }
  return create_typed(x, &it, MBX__WELL_KNOWN__WK_TASKS);
}

static int cmd_task_list(struct ctx *x) { return list_typed(x, MBX__WELL_KNOWN__WK_TASKS); }

static int cmd_note_add(struct ctx *x)
{
  if (!opt(x, "subject"))
    return usage_error(x, "note add needs --subject");
  Mbx__Item it = MBX__ITEM__INIT;
  Mbx__Note n = MBX__NOTE__INIT;
  it.has_kind = 1;
  it.kind = MBX__ITEM_KIND__ITEM_NOTE;
  it.note = &n;
  n.subject = (char *)opt(x, "subject");
  n.body = (char *)opt(x, "body");
  return create_typed(x, &it, MBX__WELL_KNOWN__WK_NOTES);
}

static int cmd_note_list(struct ctx *x) { return list_typed(x, MBX__WELL_KNOWN__WK_NOTES); }

/* ======================================================================== */
/* transport, admin, ping                                                   */
/* ======================================================================== */

static int cmd_deliver(struct ctx *x)
{
  if (!opt(x, "to"))
    return usage_error(x, "deliver needs --to ADDRESS");
  uint8_t *data;
  size_t len;
  int ex = read_message(x, x->args.pos[0], &data, &len);
  if (ex)
    return ex;
  Mbx__ItemResp *ir;
  int rc = mbxc_deliver(x->conn, opt(x, "to"), data, len, &ir);
  free(data);
  if (rc < 0)
    return call_error(x, "deliver", rc);
  return print_item_result(x, ir, "delivered");
}

static int cmd_db_create(struct ctx *x)
{
  Mbx__DbInfo *d;
  Mbx__CopyEntry **copies = NULL;
  size_t ncopies = 0;
  if (opt(x, "copies")) {
    int prc = mbxcli_parse_copies(opt(x, "copies"), &copies, &ncopies);
    if (prc == MBX_EEXIST)
      return usage_error(x, "--copies names a node twice");
    if (prc == MBX_ELIMIT)
      return usage_error(x, "--copies: at most %d copies", MBXCLI_COPIES_MAX);
    if (prc < 0)
      return usage_error(x, "--copies wants NODE[:PREF],... (e.g. node1:1,node2:2), "
                            "each preference once, from 1");
  }
  int rc = mbxc_db_create_copies(x->conn, x->args.pos[0], copies, ncopies, &d);
  mbxcli_copies_free(&copies, ncopies);
  if (rc < 0)
    return call_error(x, "admin db create", rc);
  int ex = 0;
  if (x->json)
    ex = emit_json(&d->base);
  else
    mbxcli_print_dbs(stdout, &d, 1);
  mbxc_free(&d);
  return ex;
}

static int cmd_db_list(struct ctx *x)
{
  Mbx__DbListResp *l;
  int rc = mbxc_db_list(x->conn, &l);
  if (rc < 0)
    return call_error(x, "admin db list", rc);
  int ex = 0;
  if (x->json)
    ex = emit_json(&l->base);
  else
    mbxcli_print_dbs(stdout, l->dbs, l->n_dbs);
  mbxc_free(&l);
  return ex;
}

static int cmd_db_move_active(struct ctx *x)
{
  uint32_t timeout_ms = 0;
  if (opt(x, "timeout")) {
    char *end;
    unsigned long v = strtoul(opt(x, "timeout"), &end, 10);
    if (*end || v == 0 || v > 600)
      return usage_error(x, "--timeout wants seconds from 1 to 600");
    timeout_ms = (uint32_t)v * 1000;
  }
  Mbx__DbMoveActiveResp *m;
  int rc = mbxc_db_move_active(x->conn, x->args.pos[0], opt(x, "to"), timeout_ms, &m);
  if (rc < 0)
    return call_error(x, "admin db move-active", rc);
  int ex = 0;
  if (x->json)
    ex = emit_json(&m->base);
  else
    printf("%s: active moved from %s to %s (epoch %" PRIu64 ", from lsn %" PRIu64
           "); writes paused %.1f ms\n",
           m->db, m->from_node, m->to_node, m->epoch, m->last_lsn + 1,
           (double)m->pause_us / 1000.0);
  mbxc_free(&m);
  return ex;
}

static int cmd_db_activate(struct ctx *x)
{
  const char *node = opt(x, "node");
  if (!node || !mbxcli_valid_node_name(node, strlen(node)))
    return usage_error(x, "admin db activate needs --node NODE (the copy to activate)");
  int rc = mbxc_db_activate(x->conn, x->args.pos[0], node, opt(x, "force") != NULL);
  if (rc < 0)
    return call_error(x, "admin db activate", rc);
  if (x->json)
    printf("{\"db\":\"%s\",\"active_node\":\"%s\"}\n", x->args.pos[0], node);
  else
    printf("%s: active on %s%s\n", x->args.pos[0], node,
           opt(x, "force") ? " (forced: records only the old active held are not there)" : "");
  return 0;
}

static int cmd_db_digest(struct ctx *x)
{
  Mbx__DbDigestResp *d;
  if (opt(x, "node") && !mbxcli_valid_node_name(opt(x, "node"), strlen(opt(x, "node"))))
    return usage_error(x, "--node wants a node name (a-z, 0-9, '-')");
  int rc = mbxc_db_digest_node(x->conn, x->args.pos[0], opt(x, "node"), &d);
  if (rc < 0)
    return call_error(x, "admin db digest", rc);
  int ex = 0;
  if (x->json)
    ex = emit_json(&d->base);
  else
    printf("%s  %s%s%s (epoch %" PRIu64 ", lsn %" PRIu64 ", %" PRIu64 " mailboxes, %" PRIu64
           " items)\n", d->digest, x->args.pos[0], opt(x, "node") ? " on " : "",
           opt(x, "node") ? opt(x, "node") : "", d->epoch, d->last_lsn, d->mailboxes, d->items);
  mbxc_free(&d);
  return ex;
}

/* ---- copies --------------------------------------------------------------- */

/* --node of the copy commands: required, and a plausible node name. */
static int copy_node(struct ctx *x, const char **node_r)
{
  const char *n = opt(x, "node");
  if (!n)
    return usage_error(x, "%s needs --node NODE", cmd_name(x));
  if (!mbxcli_valid_node_name(n, strlen(n)))
    return usage_error(x, "--node wants a node name (a-z, 0-9, '-'), not \"%s\"", n);
  *node_r = n;
  return 0;
}

static int check_source(struct ctx *x)
{
  const char *src = opt(x, "source");
  if (src && !mbxcli_valid_node_name(src, strlen(src)))
    return usage_error(x, "--source wants a node name (a-z, 0-9, '-'), not \"%s\"", src);
  return 0;
}

/* Sends a copy request and prints its outcome: the copy's status if the node sent
 * one, else `done` ("suspended the copy of db1 on node2"). */
static int copy_call(struct ctx *x, Mbx__Request *req, const char *done)
{
  ProtobufCMessage *body = NULL;
  int rc = mbxc_copy_request(x->conn, req, &body);
  if (rc < 0)
    return call_error(x, cmd_name(x), rc);
  int ex = 0;
  if (x->json) {
    ex = emit_json(body);
  } else {
    printf("%s\n", done);
    if (body && body->descriptor == &mbx__copy_status__descriptor) {
      Mbx__CopyStatus *cs = (Mbx__CopyStatus *)body;
      mbxcli_print_copy_status(stdout, &cs, 1, mbx_now_us());
    }
  }
  mbxc_free(&body);
  return ex;
}

static int cmd_copy_add(struct ctx *x)
{
  Mbx__CopyAddReq b = MBX__COPY_ADD_REQ__INIT;
  Mbx__Request req = MBX__REQUEST__INIT;
  const char *node;
  int ex = copy_node(x, &node);
  if (!ex)
    ex = check_source(x);
  if (ex)
    return ex;
  if (opt(x, "lag")) {
    int prc = mbxcli_parse_lag(opt(x, "lag"), &b.lag_s);
    if (prc == MBX_ELIMIT)
      return usage_error(x, "--lag is at most 14 days (14d)");
    if (prc < 0)
      return usage_error(x, "--lag wants seconds or a duration such as 30s, 5m, 2h, 1d");
    b.has_lag_s = 1;
  }
  if (opt(x, "pref")) {
    uint32_t pref = 0;
    if ((ex = parse_u32_opt(x, "pref", &pref)))
      return ex;
    if (pref == 0 || pref > MBXCLI_COPIES_MAX)
      return usage_error(x, "--pref is an activation preference from 1 to %d", MBXCLI_COPIES_MAX);
    b.has_preference = 1;
    b.preference = pref;
  }
  b.db = (char *)x->args.pos[0];
  b.node = (char *)node;
  b.source = (char *)opt(x, "source");
  req.body_case = MBX__REQUEST__BODY_COPY_ADD;
  req.copy_add = &b;
  char done[300];
  snprintf(done, sizeof(done), "added a copy of %.100s on %.63s%s", x->args.pos[0], node,
           b.lag_s ? " (lagged)" : "");
  return copy_call(x, &req, done);
}

/* remove, suspend, resume, play-down: DB --node N (suspend: --comment). */
static int cmd_copy_simple(struct ctx *x)
{
  const char *node;
  int ex = copy_node(x, &node);
  if (ex)
    return ex;
  Mbx__Request req = MBX__REQUEST__INIT;
  Mbx__CopyRemoveReq rm = MBX__COPY_REMOVE_REQ__INIT;
  Mbx__CopySuspendReq su = MBX__COPY_SUSPEND_REQ__INIT;
  Mbx__CopyResumeReq re = MBX__COPY_RESUME_REQ__INIT;
  Mbx__CopyPlayDownReq pd = MBX__COPY_PLAY_DOWN_REQ__INIT;
  char *db = (char *)x->args.pos[0];
  const char *verb = x->cmd->words[2], *what;
  if (strcmp(verb, "remove") == 0) {
    rm.db = db, rm.node = (char *)node;
    req.body_case = MBX__REQUEST__BODY_COPY_REMOVE, req.copy_remove = &rm;
    what = "removed";
  } else if (strcmp(verb, "suspend") == 0) {
    su.db = db, su.node = (char *)node, su.comment = (char *)opt(x, "comment");
    if (su.comment && strlen(su.comment) > 500)
      return usage_error(x, "--comment is at most 500 bytes");
    req.body_case = MBX__REQUEST__BODY_COPY_SUSPEND, req.copy_suspend = &su;
    what = "suspended";
  } else if (strcmp(verb, "resume") == 0) {
    re.db = db, re.node = (char *)node;
    req.body_case = MBX__REQUEST__BODY_COPY_RESUME, req.copy_resume = &re;
    what = "resumed";
  } else {
    pd.db = db, pd.node = (char *)node;
    req.body_case = MBX__REQUEST__BODY_COPY_PLAY_DOWN, req.copy_play_down = &pd;
    what = "played down";
  }
  char done[300];
  snprintf(done, sizeof(done), "%s the copy of %.100s on %.63s", what, db, node);
  return copy_call(x, &req, done);
}

struct reseed_view {
  struct ctx *x;
  bool tty;                          /* progress line on stderr */
  bool shown;                        /* a progress line is on screen */
  uint64_t start_us;
  Mbx__SeedProgress last;
  bool done;
};

static bool on_reseed(mbxc_conn *c, int status, const Mbx__Response *resp, void *arg)
{
  struct reseed_view *v = arg;
  (void)c;
  if (status < 0)
    return false;
  if (resp->body_case != MBX__RESPONSE__BODY_SEED_PROGRESS) {
    v->done = true; /* a final reply of another shape: the reseed is over */
    return false;
  }
  const Mbx__SeedProgress *p = resp->seed_progress;
  v->last.bytes_done = p->bytes_done;
  v->last.bytes_total = p->bytes_total;
  v->last.snapshot_lsn = p->snapshot_lsn;
  v->last.has_snapshot_lsn = p->has_snapshot_lsn;
  if (v->tty) {
    char line[200];
    mbxcli_format_progress(p->bytes_done, p->bytes_total, mbx_mono_us() - v->start_us, line,
                           sizeof(line));
    fprintf(stderr, "\r\033[Kreseed %.60s on %.63s: %s", v->x->args.pos[0], opt(v->x, "node"),
            line);
    fflush(stderr);
    v->shown = true;
  }
  if (p->has_done && p->done) {
    v->done = true;
    return false;
  }
  return true;
}

static int cmd_copy_reseed(struct ctx *x)
{
  const char *node;
  int ex = copy_node(x, &node);
  if (!ex)
    ex = check_source(x);
  if (ex)
    return ex;
  Mbx__CopyReseedReq b = MBX__COPY_RESEED_REQ__INIT;
  Mbx__Request req = MBX__REQUEST__INIT;
  b.db = (char *)x->args.pos[0];
  b.node = (char *)node;
  b.source = (char *)opt(x, "source");
  req.body_case = MBX__REQUEST__BODY_COPY_RESEED;
  req.copy_reseed = &b;
  struct reseed_view v = { .x = x, .tty = isatty(STDERR_FILENO), .start_us = mbx_mono_us() };
  mbx__seed_progress__init(&v.last);
  int rc = mbxc_call_stream_sync(x->conn, &req, on_reseed, &v);
  if (v.shown)
    fputc('\n', stderr);
  if (rc < 0)
    return call_error(x, "admin copy reseed", rc);
  v.last.has_done = 1;
  v.last.done = v.done;
  v.last.has_bytes_done = v.last.has_bytes_total = 1;
  if (x->json)
    return emit_json(&v.last.base);
  char size[32];
  mbxcli_format_bytes(v.last.bytes_done, size, sizeof(size));
  printf("reseeded the copy of %s on %s: %s", x->args.pos[0], node, size);
  if (v.last.has_snapshot_lsn)
    printf(", catching up from lsn %" PRIu64, v.last.snapshot_lsn + 1);
  printf(" (%.1fs)\n", (double)(mbx_mono_us() - v.start_us) / 1e6);
  return 0;
}

static int cmd_copy_status(struct ctx *x)
{
  Mbx__CopyStatusResp *r;
  int rc = mbxc_copy_status(x->conn, x->args.npos ? x->args.pos[0] : NULL, &r);
  if (rc < 0)
    return call_error(x, "admin copy status", rc);
  int ex = 0;
  if (x->json)
    ex = emit_json(&r->base);
  else
    mbxcli_print_copy_status(stdout, r->copies, r->n_copies, mbx_now_us());
  for (size_t i = 0; i < r->n_unreachable; i++)
    fprintf(stderr, "mbx: partial view: node %s did not answer; its copies show as ServiceDown\n",
            r->unreachable[i]);
  if (opt(x, "check")) {
    size_t bad = mbxcli_copies_unhealthy(r->copies, r->n_copies);
    if (bad) {
      fprintf(stderr, "mbx: admin copy status --check: %zu of %zu cop%s not healthy\n", bad,
              r->n_copies, r->n_copies == 1 ? "y is" : "ies are");
      ex = ex ? ex : 1;
    }
  }
  mbxc_free(&r);
  return ex;
}

static int cmd_mailbox_create(struct ctx *x)
{
  if (!opt(x, "db"))
    return usage_error(x, "admin mailbox create needs --db DATABASE");
  Mbx__MailboxCreateReq r = MBX__MAILBOX_CREATE_REQ__INIT;
  r.address = (char *)x->args.pos[0];
  r.database = (char *)opt(x, "db");
  r.display_name = (char *)opt(x, "name");
  int ai = opt_index(x, "alias");
  r.n_aliases = x->args.nmulti[ai];
  r.aliases = (char **)x->args.multi[ai];
  if (opt(x, "quota-warn")) {
    if (mbxcli_parse_size(opt(x, "quota-warn"), &r.quota_warn_bytes) < 0)
      return usage_error(x, "--quota-warn wants a size such as 900M or 2G");
    r.has_quota_warn_bytes = 1;
  }
  if (opt(x, "quota-prohibit")) {
    if (mbxcli_parse_size(opt(x, "quota-prohibit"), &r.quota_prohibit_bytes) < 0)
      return usage_error(x, "--quota-prohibit wants a size such as 1G");
    r.has_quota_prohibit_bytes = 1;
  }
  char prompt[300];
  snprintf(prompt, sizeof(prompt), "Password for the new mailbox %.250s: ", x->args.pos[0]);
  int ex = 0;
  char *pw = get_secret("MBX_PASSWORD", prompt, true, &ex);
  if (!pw)
    return ex;
  r.password = pw;
  Mbx__MailboxInfo *mi;
  int rc = mbxc_mailbox_create(x->conn, &r, &mi);
  free_secret(&pw);
  if (rc < 0)
    return call_error(x, "admin mailbox create", rc);
  if (x->json)
    ex = emit_json(&mi->base);
  else
    mbxcli_print_mailboxes(stdout, &mi, 1);
  mbxc_free(&mi);
  return ex;
}

static int cmd_mailbox_list(struct ctx *x)
{
  Mbx__MailboxListResp *l;
  int rc = mbxc_mailbox_list(x->conn, opt(x, "db"), &l);
  if (rc < 0)
    return call_error(x, "admin mailbox list", rc);
  int ex = 0;
  if (x->json)
    ex = emit_json(&l->base);
  else
    mbxcli_print_mailboxes(stdout, l->mailboxes, l->n_mailboxes);
  mbxc_free(&l);
  return ex;
}

static int cmd_ping(struct ctx *x)
{
  Mbx__PingResp *p;
  int rc = mbxc_ping(x->conn, &p);
  if (rc < 0)
    return call_error(x, "ping", rc);
  int ex = 0;
  if (x->json) {
    ex = emit_json(&p->base);
  } else {
    const Mbx__HelloResp *h = mbxc_server_info(x->conn);
    printf("pong from %s (node %s, mbxd %s)\n", mbxc_server_addr(x->conn),
           h && h->node ? h->node : "?", h && h->server_version ? h->server_version : "?");
  }
  mbxc_free(&p);
  return ex;
}

/* watch.c does the work; this only hands it the parsed arguments. */
static int cmd_watch(struct ctx *x)
{
  struct mbxcli_watch_args a = {
    .folders = x->args.pos, .n_folders = (size_t)x->args.npos, .hierarchy = flag(x, "hierarchy"),
    .json = x->json, .count = opt(x, "count"), .timeout = opt(x, "timeout"),
  };
  return mbxcli_watch(x->conn, &a);
}

/* ---- cached mode (--cached): cached.c does the work ---------------------- */

/* The server and CA for cached mode: the options, else what the profile remembers
 * from its last sync. */
static void cached_server(struct ctx *x)
{
  static char server[4096], ca[4096];
  if ((!x->server || !*x->server) &&
      mbxc_cache_setting_get(x->cache, "server", server, sizeof(server)) == 0)
    x->server = server;
  if ((!x->ca || !*x->ca) && mbxc_cache_setting_get(x->cache, "ca", ca, sizeof(ca)) == 0)
    x->ca = ca;
}

static int cached_sync(struct ctx *x, bool watch)
{
  if (!x->server || !*x->server)
    return usage_error(x, "no server: use --server HOST:PORT or set MBX_SERVER");
  if (!x->ca || !*x->ca)
    return usage_error(x, "no CA certificate: use --ca FILE or set MBX_CA");
  if ((x->cert && *x->cert) != (x->key && *x->key))
    return usage_error(x, "--cert and --key go together");
  char prompt[300];
  snprintf(prompt, sizeof(prompt), "Password for %.250s: ", x->user);
  int ex = 0;
  char *pw = get_secret("MBX_PASSWORD", prompt, false, &ex);
  if (!pw)
    return ex;
  struct mbxcli_cached_args a = {
    .cache = x->cache, .password = pw, .json = x->json, .threads = opt(x, "threads"),
    .conn = { .servers = x->server, .ca_file = x->ca, .cert_file = x->cert, .key_file = x->key,
              .client_name = "mbx/" MBXC_VERSION },
  };
  if (watch) {
    a.push_delay = opt(x, "push-delay");
    a.timeout = opt(x, "timeout");
  }
  ex = watch ? mbxcli_cached_watch(&a) : mbxcli_cached_sync_now(&a);
  free_secret(&pw);
  return ex;
}

static int cmd_sync_now(struct ctx *x) { return cached_sync(x, false); }

static int cmd_sync_watch(struct ctx *x)
{
  if (!flag(x, "watch"))
    return usage_error(x, "with --cached, sync runs continuously: give --watch (or use sync-now)");
  return cached_sync(x, true);
}

static int cmd_cache_status(struct ctx *x) { return mbxcli_cached_status(x->cache, x->json); }

static int cmd_cache_config(struct ctx *x)
{
  return mbxcli_cached_config(x->cache, opt(x, "push-delay"), opt(x, "bodies"), x->json);
}

/* ======================================================================== */
/* command table and help                                                   */
/* ======================================================================== */

#define O(n) { n, true }
#define F(n) { n, false }

static const struct cmd cmds[] = {
  { { "folders" }, AUTH_USER, 0, 0, { { 0 } }, cmd_folders, "folders",
    "Show the folder tree with unread and total item counts." },
  { { "folder", "create" }, AUTH_USER, 1, 1, { O("parent"), O("class") }, cmd_folder_create,
    "folder create NAME [--parent FOLDER] [--class mail|calendar|contacts|tasks|notes]",
    "Create a folder (top level unless --parent)." },
  { { "folder", "rename" }, AUTH_USER, 2, 2, { { 0 } }, cmd_folder_rename,
    "folder rename FOLDER NEWNAME", "Rename a folder." },
  { { "folder", "move" }, AUTH_USER, 1, 1, { O("parent"), F("top") }, cmd_folder_move,
    "folder move FOLDER (--parent FOLDER | --top)", "Move a folder under another, or to the top." },
  { { "folder", "delete" }, AUTH_USER, 1, 1, { { 0 } }, cmd_folder_delete,
    "folder delete FOLDER", "Delete a folder with its items and subfolders." },
  { { "folder", "empty" }, AUTH_USER, 1, 1, { { 0 } }, cmd_folder_empty,
    "folder empty FOLDER", "Delete every item in a folder." },
  { { "list" }, AUTH_USER, 1, 1, { O("limit"), O("offset") }, cmd_list,
    "list FOLDER [--limit N] [--offset N]",
    "List a folder's items, newest first: N of them from item --offset (0), however many of "
    "the server's pages (at most 1,000 items each) that takes; without --limit one page of 50, "
    "with a note on stderr when the folder holds more. The same for event|contact|task|note "
    "list." },
  { { "get" }, AUTH_USER, 1, 1, { F("body") }, cmd_get, "get ITEM [--body]",
    "Show an item's headers or properties; --body adds the raw message." },
  { { "append" }, AUTH_USER, 2, 2, { O("flags") }, cmd_append,
    "append FOLDER FILE.eml [--flags seen,flagged,answered,draft]",
    "Store an RFC 5322 message (FILE \"-\" = stdin) in a folder." },
  { { "flag" }, AUTH_USER, 1, MBXCLI_POS_MAX, { O("categories") }, cmd_flag,
    "flag ITEM [+FLAG|-FLAG]... [--categories a,b]",
    "Add (+) or remove (-) flags seen, flagged, answered, draft; replace categories." },
  { { "move" }, AUTH_USER, 2, 2, { { 0 } }, cmd_move, "move ITEM FOLDER",
    "Move an item to another folder." },
  { { "copy" }, AUTH_USER, 2, 2, { { 0 } }, cmd_copy, "copy ITEM FOLDER",
    "Copy an item into another folder." },
  { { "delete" }, AUTH_USER, 1, 1, { F("hard") }, cmd_delete, "delete ITEM [--hard]",
    "Move an item to Deleted Items, or remove it for good with --hard." },
  { { "sync" }, AUTH_USER, 1, 1, { O("state") }, cmd_sync, "sync FOLDER [--state TOKEN]",
    "Changes in a folder since TOKEN: + added, ~ changed, - deleted, then the new state." },
  { { "sync-folders" }, AUTH_USER, 0, 0, { O("state") }, cmd_sync_folders,
    "sync-folders [--state TOKEN]", "Changes to the folder hierarchy since TOKEN." },
  { { "watch" }, AUTH_USER, 0, MBXCLI_POS_MAX, { F("hierarchy"), O("count"), O("timeout") },
    cmd_watch,
    "watch [FOLDER]... [--hierarchy] [--count N] [--timeout S]",
    "Print a line per change pushed by the server (no FOLDER: every folder): folder and its "
    "change number, --hierarchy adds folder tree changes; stop after N changes or S seconds." },
  { { "event", "add" }, AUTH_USER, 0, 0,
    { O("subject"), O("start"), O("end"), O("tz"), O("location"), O("attendee"), O("rrule"),
      O("reminder"), O("folder") }, cmd_event_add,
    "event add --subject S --start ISO8601 --end ISO8601 [--tz ZONE] [--location L] "
    "[--attendee A]... [--rrule RRULE] [--reminder MIN] [--folder F]",
    "Create a calendar event (times without an offset are UTC)." },
  { { "event", "list" }, AUTH_USER, 0, 0, { O("folder"), O("limit"), O("offset") },
    cmd_event_list, "event list [--folder F] [--limit N] [--offset N]", "List calendar events." },
  { { "contact", "add" }, AUTH_USER, 0, 0,
    { O("name"), O("given"), O("surname"), O("email"), O("phone"), O("company"), O("folder") },
    cmd_contact_add,
    "contact add --name N [--given G] [--surname S] [--email E]... [--phone P]... [--company C]",
    "Create a contact." },
  { { "contact", "list" }, AUTH_USER, 0, 0, { O("folder"), O("limit"), O("offset") },
    cmd_contact_list, "contact list", "List contacts." },
  { { "task", "add" }, AUTH_USER, 0, 0,
    { O("subject"), O("due"), O("status"), O("percent"), O("folder") }, cmd_task_add,
    "task add --subject S [--due ISO8601] "
    "[--status not-started|in-progress|completed|waiting|deferred] [--percent N]",
    "Create a task." },
  { { "task", "list" }, AUTH_USER, 0, 0, { O("folder"), O("limit"), O("offset") },
    cmd_task_list, "task list", "List tasks." },
  { { "note", "add" }, AUTH_USER, 0, 0, { O("subject"), O("body"), O("folder") }, cmd_note_add,
    "note add --subject S [--body B]", "Create a note." },
  { { "note", "list" }, AUTH_USER, 0, 0, { O("folder"), O("limit"), O("offset") },
    cmd_note_list, "note list", "List notes." },
  { { "deliver" }, AUTH_TRANSPORT, 1, 1, { O("to") }, cmd_deliver,
    "deliver --to ADDRESS FILE.eml",
    "Deliver a message (FILE \"-\" = stdin) to a mailbox's Inbox (transport credential)." },
  { { "admin", "db", "create" }, AUTH_ADMIN, 1, 1, { O("copies") }, cmd_db_create,
    "admin db create DB [--copies NODE[:PREF],...]",
    "Create a mailbox database; with --copies, a copy on each node listed (PREF: activation "
    "preference, 1 = active; left out: list order). Any node forwards it to the first." },
  { { "admin", "db", "list" }, AUTH_ADMIN, 0, 0, { { 0 } }, cmd_db_list, "admin db list",
    "List databases." },
  { { "admin", "db", "move-active" }, AUTH_ADMIN, 1, 1, { O("to"), O("timeout") },
    cmd_db_move_active, "admin db move-active DB [--to NODE] [--timeout SECONDS]",
    "Lossless switchover: the active stops taking writes and finishes what it admitted, "
    "the target (NODE, or the healthy passive with the best preference) receives "
    "everything, becomes the active in a new epoch, and the old active becomes its "
    "passive. Prints the write pause. --timeout bounds the target's catch-up (default "
    "10 s; past it nothing changes)." },
  { { "admin", "db", "activate" }, AUTH_ADMIN, 1, 1, { O("node"), { "force", false } },
    cmd_db_activate, "admin db activate DB --node NODE [--force]",
    "For when the active's node is down: activate the copy on NODE in a new epoch; the "
    "other copies follow it. Without --force it refuses when it cannot prove nothing is "
    "lost and says how far behind the copy may be. When the old active comes back it "
    "learns of the newer epoch and becomes a passive (Diverged, then reseeded, if it "
    "held records the new active lacks). Also lets an active that waits for its copies "
    "after a restart (dismounted) go on." },
  { { "admin", "db", "digest" }, AUTH_ADMIN, 1, 1, { O("node") }, cmd_db_digest,
    "admin db digest DB [--node NODE]",
    "Print a deterministic hash of a database's logical content (of the copy on NODE): "
    "equal copies at the same lsn give equal digests." },
  { { "admin", "copy", "add" }, AUTH_ADMIN, 1, 1, { O("node"), O("lag"), O("source"), O("pref") },
    cmd_copy_add, "admin copy add DB --node NODE [--lag 0..14d] [--source NODE] [--pref N]",
    "Add a passive copy on NODE, seeded from the active (or --source). --lag delays replay "
    "(seconds, or 30s, 5m, 2h, 1d)." },
  { { "admin", "copy", "remove" }, AUTH_ADMIN, 1, 1, { O("node") }, cmd_copy_simple,
    "admin copy remove DB --node NODE", "Remove NODE's passive copy (its files are deleted)." },
  { { "admin", "copy", "suspend" }, AUTH_ADMIN, 1, 1, { O("node"), O("comment") },
    cmd_copy_simple, "admin copy suspend DB --node NODE [--comment TEXT]",
    "Stop shipping and replay to a copy until resumed; the comment shows in copy status." },
  { { "admin", "copy", "resume" }, AUTH_ADMIN, 1, 1, { O("node") }, cmd_copy_simple,
    "admin copy resume DB --node NODE", "Resume a suspended (or failed) copy." },
  { { "admin", "copy", "reseed" }, AUTH_ADMIN, 1, 1, { O("node"), O("source") },
    cmd_copy_reseed, "admin copy reseed DB --node NODE [--source NODE]",
    "Replace a copy with a fresh snapshot from the active (or --source); the old copy stays "
    "until the new one is complete. Shows progress on a terminal." },
  { { "admin", "copy", "play-down" }, AUTH_ADMIN, 1, 1, { O("node") }, cmd_copy_simple,
    "admin copy play-down DB --node NODE",
    "Replay everything a lagged copy has received, now." },
  { { "admin", "copy", "status" }, AUTH_ADMIN, 0, 1, { { "check", false } }, cmd_copy_status,
    "admin copy status [DB] [--check]",
    "Every copy's role, status, copy and replay queues, last log times, last contact, lag "
    "and why it is unhealthy, each node asked for its own copies; a node that does not "
    "answer is its own row (ServiceDown) and the view is announced as partial on stderr. "
    "--check: exit 1 unless every copy is Mounted (active) or Healthy (passive)." },
  { { "admin", "mailbox", "create" }, AUTH_ADMIN, 1, 1,
    { O("db"), O("name"), O("alias"), O("quota-warn"), O("quota-prohibit") }, cmd_mailbox_create,
    "admin mailbox create ADDRESS --db DB [--name \"Display Name\"] [--alias A]... "
    "[--quota-warn SIZE] [--quota-prohibit SIZE]",
    "Create a mailbox; its password comes from MBX_PASSWORD or a prompt (asked twice)." },
  { { "admin", "mailbox", "list" }, AUTH_ADMIN, 0, 0, { O("db") }, cmd_mailbox_list,
    "admin mailbox list [--db DB]", "List mailboxes." },
  { { "ping" }, AUTH_NONE, 0, 0, { { 0 } }, cmd_ping, "ping",
    "Check that the server answers (no login needed)." },
};
#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))

/* Commands of cached mode only (looked up first with --cached). */
static const struct cmd cached_cmds[] = {
  { { "sync-now" }, AUTH_NONE, 0, 0, { O("threads") }, cmd_sync_now, "sync-now [--threads N]",
    "One full two-way sync of the profile (the first one downloads everything): server "
    "changes in, queued local changes out, conflicts resolved by the rules of "
    "docs/cached-mode.md; prints a summary. Up to --threads (4) folders at once." },
  { { "sync" }, AUTH_NONE, 0, 0, { F("watch"), O("push-delay"), O("timeout"), O("threads") },
    cmd_sync_watch, "sync --watch [--push-delay S] [--timeout S] [--threads N]",
    "Keep the cache in step until interrupted (or --timeout S): subscribes to the server's "
    "changes, syncs the folders it names, pushes local changes S seconds (default: the "
    "profile's push_delay_s, 60) after the first of a burst, Sent Items and Outbox at once; "
    "reconnects with backoff. A status line on a terminal, timestamped lines otherwise." },
  { { "status" }, AUTH_NONE, 0, 0, { { 0 } }, cmd_cache_status, "status",
    "The profile: queued changes (and any the server refused), conflicts resolved, last "
    "sync of each folder." },
  { { "config" }, AUTH_NONE, 0, 0, { O("push-delay"), O("bodies") }, cmd_cache_config,
    "config [--push-delay S] [--bodies ondemand|all]",
    "Show, or set, the profile's settings: push delay (0..86400 s) and whether sync fetches "
    "every message body (all) or only when read (ondemand, the default)." },
};
#define NCACHED (sizeof(cached_cmds) / sizeof(cached_cmds[0]))

/* The everyday commands that also work with --cached, on the cache. */
static bool works_cached(const struct cmd *c)
{
  static int (*const ok[])(struct ctx *) = {
    cmd_folders, cmd_folder_create, cmd_folder_rename, cmd_folder_move, cmd_folder_delete,
    cmd_list, cmd_get, cmd_append, cmd_flag, cmd_move, cmd_delete,
    cmd_event_add, cmd_event_list, cmd_contact_add, cmd_contact_list,
    cmd_task_add, cmd_task_list, cmd_note_add, cmd_note_list,
  };
  for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
    if (c->run == ok[i])
      return true;
  for (size_t i = 0; i < NCACHED; i++)
    if (c == &cached_cmds[i])
      return true;
  return false;
}

static const char global_help[] =
    "usage: mbx [OPTIONS] COMMAND [ARGS...]\n"
    "\n"
    "options (each also from the environment; they may also follow the command, as in\n"
    "`mbx list Inbox --json`, and a command's own option of the same name comes first):\n"
    "  --server H:P[,H:P...]  servers or proxies, tried in order   (MBX_SERVER)\n"
    "  --ca FILE              CA certificate to verify them        (MBX_CA)\n"
    "  --cert FILE --key FILE client certificate, e.g. OU=operator (MBX_CERT, MBX_KEY)\n"
    "  --user ADDRESS         mailbox to log in to                 (MBX_USER)\n"
    "  --cached               cached mode: work on the profile's local copy  (MBX_CACHED=1)\n"
    "  --profile NAME         the cached profile (default: --user) (MBX_PROFILE)\n"
    "  --json                 print one JSON document on stdout\n"
    "  --help, --version\n"
    "\n"
    "passwords are never taken from the command line: MBX_PASSWORD (user, and the new\n"
    "mailbox's for admin mailbox create), MBX_OPERATOR_PASSWORD (admin without a\n"
    "certificate), MBX_TRANSPORT_PASSWORD (deliver without a certificate), else a prompt.\n"
    "FOLDER is a path (Inbox, Projects/2026; case-insensitive) or a folder id; ITEM is an\n"
    "item id; sync tokens are base64url. Exit codes: 0 ok, 1 refused, 2 usage, 3 connection.\n"
    "A partial command (mbx admin, mbx admin db, mbx folder) lists its commands; --help on it\n"
    "explains them. For a command of both modes (sync), --cached goes before the command.\n"
    "\n"
    "commands:\n";

static void print_cmd_help(FILE *f, const struct cmd *c, bool full)
{
  fprintf(f, full ? "usage: mbx [OPTIONS] %s\n\n%s\n" : "  %s\n      %s\n", c->usage, c->help);
}

static const char cached_help[] =
    "\ncached mode (--cached): folders, folder create|rename|move|delete, list, get, append,\n"
    "flag, move, delete and event|contact|task|note add|list read and write a local copy\n"
    "of the mailbox (an LMDB store in $MBX_CACHE_DIR/PROFILE, else\n"
    "${XDG_DATA_HOME:-~/.local/share}/mbx/PROFILE) and work with no server at all; changes\n"
    "are queued durably and pushed by a sync. What is made offline gets a local id\n"
    "(9000000000000001…) that keeps working after the server gives it its own.\n"
    "docs/cached-mode.md has the sync algorithm and the conflict rules. Cached commands:\n";

static void print_help(FILE *f)
{
  fputs(global_help, f);
  for (size_t i = 0; i < NCMDS; i++)
    print_cmd_help(f, &cmds[i], false);
  fputs(cached_help, f);
  for (size_t i = 0; i < NCACHED; i++)
    print_cmd_help(f, &cached_cmds[i], false);
}

/* ======================================================================== */
/* main                                                                     */
/* ======================================================================== */

/* Longest command whose words match argv; *nwords_r = words consumed. */
static const struct cmd *find_cmd(const struct cmd *tab, size_t ntab, char **argv, int argc,
                                   int *nwords_r)
{
  const struct cmd *best = NULL;
  int best_n = 0;
  for (size_t i = 0; i < ntab; i++) {
    int n = 0;
    while (n < 3 && tab[i].words[n] && n < argc && strcmp(tab[i].words[n], argv[n]) == 0)
      n++;
    if ((n == 3 || !tab[i].words[n]) && n > best_n) {
      best = &tab[i];
      best_n = n;
    }
  }
  *nwords_r = best_n;
  return best;
}

/* The command argv names: with --cached, a cached-mode command first. */
static const struct cmd *lookup_cmd(bool cached, char **argv, int argc, int *nwords_r)
{
  const struct cmd *c = cached ? find_cmd(cached_cmds, NCACHED, argv, argc, nwords_r) : NULL;
  return c ? c : find_cmd(cmds, NCMDS, argv, argc, nwords_r);
}

/* ---- partial commands ("mbx admin db") ---------------------------------- */

/* Whether c begins with the n words w and has more after them. */
static bool in_group(const struct cmd *c, char **w, int n)
{
  for (int k = 0; k < n; k++)
    if (!c->words[k] || strcmp(c->words[k], w[k]) != 0)
      return false;
  return n < 3 && c->words[n];
}

/* How many leading words of argv begin longer commands (0: none). Only the table of
 * server commands has commands of several words. */
static int group_words(char **argv, int argc)
{
  int found = 0;
  for (int n = 1; n <= 2 && n <= argc; n++)
    for (size_t i = 0; i < NCMDS; i++)
      if (in_group(&cmds[i], argv, n)) {
        found = n;
        break;
      }
  return found;
}

static void print_group(FILE *f, char **w, int n, bool full)
{
  for (size_t i = 0; i < NCMDS; i++) {
    if (!in_group(&cmds[i], w, n))
      continue;
    if (full)
      print_cmd_help(f, &cmds[i], false);
    else
      fprintf(f, "  mbx %s\n", cmds[i].usage);
  }
}

/* A partial command such as "admin db": with --help its commands on stdout (exit 0),
 * else an error line and its commands on stderr (exit 2). */
static int group_usage(char **argv, int argc, int n)
{
  char name[64];
  snprintf(name, sizeof(name), "%s%s%s", argv[0], n > 1 ? " " : "", n > 1 ? argv[1] : "");
  for (int k = n; k < argc && strcmp(argv[k], "--") != 0; k++)
    if (strcmp(argv[k], "--help") == 0 || strcmp(argv[k], "-h") == 0) {
      printf("usage: mbx [OPTIONS] %s COMMAND [ARGS...]\n\n%s commands:\n", name, name);
      print_group(stdout, argv, n, true);
      return 0;
    }
  if (n < argc && argv[n][0] != '-')
    fprintf(stderr, "mbx: unknown command \"%s %.100s\"; the %s commands are:\n", name, argv[n],
            name);
  else
    fprintf(stderr, "mbx: \"%s\" needs a command, one of:\n", name);
  print_group(stderr, argv, n, false);
  return EXIT_USAGE;
}

/* Parses what follows the command's words into x->args (global options given after
 * the command go to g). 1 = help shown. */
static int parse_cmd_args(struct ctx *x, int argc, char **argv, struct mbxcli_globals *g)
{
  char err[200];
  if (mbxcli_parse_args(x->cmd->opts, argc, argv, &x->args, g, err, sizeof(err)) < 0)
    return usage_error(x, "%s", err);
  if (x->args.help) {
    print_cmd_help(stdout, x->cmd, true);
    return -1;
  }
  if (x->args.npos < x->cmd->min_pos)
    return usage_error(x, "missing arguments: mbx %s", x->cmd->usage);
  if (x->args.npos > x->cmd->max_pos)
    return usage_error(x, "unexpected argument \"%s\"", x->args.pos[x->cmd->max_pos]);
  return 0;
}

static const char *env_or(const char *v, const char *env)
{
  return v ? v : getenv(env);
}

/* --cached: the cache instead of a connection (a body not fetched yet, and the
 * sync commands, connect themselves). */
static int cached_main(struct ctx *x, const char *profile)
{
  if (!works_cached(x->cmd))
    return usage_error(x, "%s does not work with --cached", cmd_name(x));
  int ex = mbxcli_cached_open(profile, x->user, &x->cache);
  if (ex)
    return ex;
  if (!x->user || !*x->user)
    x->user = mbxc_cache_user(x->cache);
  cached_server(x);
  ex = x->cmd->run(x);
  if (fflush(stdout) != 0 && !ex)
    ex = local_error("cannot write output: %s", strerror(errno));
  mbxc_close(&x->conn);
  mbxc_cache_close(&x->cache);
  return ex;
}

int main(int argc, char **argv)
{
  static struct ctx ctx;
  struct ctx *x = &ctx;
  /* the library's own log lines would break "one line on stderr": MBX_DEBUG=1 shows them */
  mbx_log_init("mbx", NULL, getenv("MBX_DEBUG") ? MBX_LOG_DEBUG : MBX_LOG_FATAL);
  struct mbxcli_globals g = { 0 };
  const char *cached_env = getenv("MBX_CACHED");
  g.cached = cached_env && (strcmp(cached_env, "1") == 0 || strcasecmp(cached_env, "yes") == 0 ||
                            strcasecmp(cached_env, "true") == 0);
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      print_help(stdout);
      return 0;
    }
    if (strcmp(argv[i], "--version") == 0) {
      printf("mbx %s (protocol %d)\n", MBXC_VERSION, MBXC_PROTOCOL_VERSION);
      return 0;
    }
    char err[200];
    const char *a = argv[i];
    int rc = mbxcli_global_opt(&g, argc, argv, &i, err, sizeof(err));
    if (rc < 0)
      return usage_error(NULL, "%s", err);
    if (rc == 0)
      return usage_error(NULL, "unknown option %s", a);
  }
  if (i == argc)
    return usage_error(NULL, "no command given");
  int nwords;
  x->cmd = lookup_cmd(g.cached, argv + i, argc - i, &nwords);
  if (!x->cmd) {
    if (strcmp(argv[i], "help") == 0) {
      print_help(stdout);
      return 0;
    }
    int n = group_words(argv + i, argc - i);
    if (n)
      return group_usage(argv + i, argc - i, n);
    return usage_error(NULL, "unknown command \"%s%s%s\"", argv[i], i + 1 < argc ? " " : "",
                       i + 1 < argc ? argv[i + 1] : "");
  }
  bool cached_before = g.cached;
  int ex = parse_cmd_args(x, argc - i - nwords, argv + i + nwords, &g);
  if (ex)
    return ex < 0 ? 0 : ex;
  int n2;
  if (g.cached && !cached_before && lookup_cmd(true, argv + i, argc - i, &n2) != x->cmd)
    return usage_error(x, "--cached changes which command \"%s\" is: give it before the "
                          "command (mbx --cached %s ...)", cmd_name(x), cmd_name(x));
  x->json = g.json;
  x->cached = g.cached;
  x->server = env_or(g.server, "MBX_SERVER");
  x->ca = env_or(g.ca, "MBX_CA");
  x->cert = env_or(g.cert, "MBX_CERT");
  x->key = env_or(g.key, "MBX_KEY");
  x->user = env_or(g.user, "MBX_USER");
  if (x->cached)
    return cached_main(x, env_or(g.profile, "MBX_PROFILE"));
  if (x->cmd->auth == AUTH_USER && (!x->user || !*x->user))
    return usage_error(x, "no user: use --user ADDRESS or set MBX_USER");
  ex = do_connect(x);
  if (!ex)
    ex = authenticate(x);
  if (!ex)
    ex = x->cmd->run(x);
  if (fflush(stdout) != 0 && !ex)
    ex = local_error("cannot write output: %s", strerror(errno));
  mbxc_close(&x->conn);
  return ex;
}

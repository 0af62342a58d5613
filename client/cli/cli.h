/* cli.h — the mbx command line's pure helpers (argument parsing, tokens, JSON and
 * table output), split from mbx.c so that the unit tests can call them. Prefix
 * mbxcli_. Functions return 0 or a negative MBX_E… code. */
#ifndef MBX_CLI_H
#define MBX_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "buf.h"
#include "mbx/cache.h"
#include "mbx/mbx.h"

/* ---- args.c ---- */

#define MBXCLI_POS_MAX 8
#define MBXCLI_OPTS_MAX 12
#define MBXCLI_MULTI_MAX 64

/* The options of every command, as typed (borrowed from argv). */
struct mbxcli_globals {
  const char *server, *ca, *cert, *key, *user, *profile;
  bool json, cached;
};

/* One of a command's own options, without "--"; a command's list of them ends with a
 * NULL name (or at MBXCLI_OPTS_MAX). */
struct mbxcli_optspec {
  const char *name;
  bool has_arg;
};

/* A command's parsed arguments (borrowed from argv); zero it before parsing. */
struct mbxcli_args {
  const char *pos[MBXCLI_POS_MAX];
  int npos;
  const char *opt[MBXCLI_OPTS_MAX];   /* last value (or "" for a flag) by option index */
  const char *multi[MBXCLI_OPTS_MAX][MBXCLI_MULTI_MAX];
  size_t nmulti[MBXCLI_OPTS_MAX];
  bool help;                          /* --help or -h came before any "--": parsing stopped */
};

/* If argv[*i] is a global option — --json, --cached, or --server, --ca, --cert, --key,
 * --user, --profile with a value ("--server H:P" or "--server=H:P") — records it in g,
 * moves *i past its value and returns 1; returns 0 when it is not one. MBX_EINVAL
 * (value missing, or given to a flag) with a one-line reason in err. --help and
 * --version are the caller's. */
int mbxcli_global_opt(struct mbxcli_globals *g, int argc, char **argv, int *i, char *err,
                      size_t errlen);

/* Parses what follows a command's words: its own options of opts ("--name value",
 * "--name=value", flags; repeatable ones keep every value in multi), then the global
 * options, so that `mbx list Inbox --json` means `mbx --json list Inbox` (an option of
 * the command's own with a global's name would win). Anything else that does not
 * start with "--" is positional ("-flagged" and "-" included), and so is everything
 * after "--"; an option's value is taken as it is, even "--json". Returns 0 (stopping
 * early at --help or -h, a->help), else MBX_EINVAL (unknown option, missing value,
 * value given to a flag) or MBX_ELIMIT (over MBXCLI_POS_MAX positionals or
 * MBXCLI_MULTI_MAX repetitions) with a one-line reason in err. The command's bounds on
 * positionals are the caller's to check. */
int mbxcli_parse_args(const struct mbxcli_optspec *opts, int argc, char **argv,
                      struct mbxcli_args *a, struct mbxcli_globals *g, char *err, size_t errlen);

/* ---- list.c ---- */

/* One page of a folder: up to limit items (0: the default page size) from offset,
 * newest first — mbxc_list or mbxc_cache_list. *resp_r is freed with mbxc_free. */
typedef int (*mbxcli_list_page_fn)(void *arg, uint32_t offset, uint32_t limit,
                                   Mbx__ListResp **resp_r);

/* A listing gathered from several pages: view is the whole of it as one reply (items
 * borrowed from pages; total as of the last page). */
struct mbxcli_listing {
  Mbx__ListResp view;
  Mbx__ListResp **pages;
  size_t npages;
  uint64_t first_total;               /* the folder's total on the first page */
  bool changed;                       /* the total moved between pages */
};

/* Up to limit items from offset, page after page until limit items or the end of the
 * folder, since a page may hold fewer than asked (the server sends at most 1,000).
 * limit 0: one page of the default size. Items pushed down onto a later page by
 * arrivals at the top of the folder are listed once; l->changed says the folder's
 * total moved while paging (a deletion above the current page may have hidden an
 * item). Returns 0, or MBX_ENOMEM or fetch's error; free l with mbxcli_listing_free
 * either way. */
int mbxcli_list_all(mbxcli_list_page_fn fetch, void *arg, uint32_t offset, uint32_t limit,
                    struct mbxcli_listing *l);
void mbxcli_listing_free(struct mbxcli_listing *l);

/* ---- util.c ---- */

/* base64url (RFC 4648 §5) without padding. Encode appends a NUL-terminated string
 * to out. Decode accepts the same alphabet (trailing '=' tolerated) and refuses
 * anything else with MBX_EINVAL; *out_r is malloc'd (free()), *len_r its length. */
int mbxcli_b64url_encode(const uint8_t *data, size_t len, struct mbx_buf *out);
int mbxcli_b64url_decode(const char *s, uint8_t **out_r, size_t *len_r);

/* ISO 8601 date-time → microseconds since the epoch: "2026-03-01",
 * "2026-03-01T09:30", "2026-03-01T09:30:15.250Z", "…+02:00", "…-0530"; a space may
 * replace the T. Without an offset the time is UTC. MBX_EINVAL otherwise. */
int mbxcli_parse_iso8601(const char *s, int64_t *us_r);
/* us → "2026-03-01T09:30:15Z" (UTC); buf at least 32 bytes. */
void mbxcli_format_time(int64_t us, char *buf, size_t len);

/* "1048576", "512K", "10M", "1.5G", "2GiB", "3T" (powers of 1024; a trailing B or iB
 * is allowed). MBX_EINVAL for junk, MBX_ELIMIT on overflow. */
int mbxcli_parse_size(const char *s, uint64_t *bytes_r);
/* Decimal without sign or junk; MBX_EINVAL otherwise, MBX_ELIMIT over max. */
int mbxcli_parse_u64(const char *s, uint64_t max, uint64_t *v_r);

/* "seen" → MBX__ITEM_FLAG__FLAG_SEEN …; MBX_EINVAL for an unknown name. */
int mbxcli_flag_bit(const char *name, size_t len, uint32_t *bit_r);
/* "seen,flagged" → bits. */
int mbxcli_parse_flag_list(const char *csv, uint32_t *bits_r);
/* "+seen" / "-flagged" → adds to *add_r or *remove_r. */
int mbxcli_parse_flag_change(const char *arg, uint32_t *add_r, uint32_t *remove_r);
/* Bits → "SFAD"-style column ("S" seen, "F" flagged, "A" answered, "D" draft, "-"
 * for each unset): buf at least 5 bytes. */
void mbxcli_flags_column(uint32_t flags, char *buf);

/* Splits "a,b,c" into a malloc'd NULL-terminated array of malloc'd strings (empty
 * parts dropped); free with mbxcli_strv_free. */
int mbxcli_split_csv(const char *csv, char ***v_r, size_t *n_r);
void mbxcli_strv_free(char ***v);

/* "mail|calendar|contacts|tasks|notes" → FolderClass. */
int mbxcli_parse_folder_class(const char *s, Mbx__FolderClass *c_r);
/* "not-started|in-progress|completed|waiting|deferred" → TaskStatus. */
int mbxcli_parse_task_status(const char *s, Mbx__TaskStatus *st_r);

/* ---- output.c ---- */

/* JSON string literal for len bytes of s (quotes included): control characters
 * escaped, invalid UTF-8 replaced by U+FFFD. */
int mbxcli_json_string(struct mbx_buf *out, const char *s, size_t len);
/* The message as one JSON object, generically from its descriptor: proto field
 * names as keys, unset optional fields omitted, repeated → arrays, enums → value
 * names, bytes → base64url without padding, 64-bit integers as plain numbers. */
int mbxcli_json_message(struct mbx_buf *out, const ProtobufCMessage *m);

/* Human-readable renderings to f. */
void mbxcli_print_folders(FILE *f, const Mbx__FoldersResp *fr);
void mbxcli_print_folder(FILE *f, const Mbx__FoldersResp *fr, const Mbx__Folder *folder);
void mbxcli_print_items(FILE *f, Mbx__Item *const *items, size_t n);
void mbxcli_print_list(FILE *f, const Mbx__ListResp *lr);
void mbxcli_print_item(FILE *f, const Mbx__ItemResp *ir, bool with_body);
void mbxcli_print_sync(FILE *f, Mbx__Item *const *added, size_t na, Mbx__Item *const *changed,
                       size_t nc, const uint64_t *deleted, size_t nd,
                       const ProtobufCBinaryData *state, bool more);
void mbxcli_print_sync_folders(FILE *f, const Mbx__SyncFoldersResp *sr);
void mbxcli_print_dbs(FILE *f, Mbx__DbInfo *const *dbs, size_t n);
void mbxcli_print_mailboxes(FILE *f, Mbx__MailboxInfo *const *m, size_t n);
/* An item's one-line title: subject, or contact name, or "(no subject)". */
const char *mbxcli_item_title(const Mbx__Item *it);

/* ---- copies.c ---- */

#define MBXCLI_LAG_MAX_S 1209600u   /* 14 days */
#define MBXCLI_COPIES_MAX 16

/* 1-63 of a-z, 0-9 and '-' (what mbxd accepts as node_name). */
bool mbxcli_valid_node_name(const char *s, size_t len);
/* "300", "30s", "5m", "2h", "1d" → seconds, 0 … 14 days. MBX_EINVAL for junk,
 * MBX_ELIMIT over 14 days. */
int mbxcli_parse_lag(const char *s, uint32_t *lag_s_r);
/* "node1:1,node2:2,node3" → malloc'd CopyEntry array (free: mbxcli_copies_free).
 * A left-out preference takes the lowest one not given, in list order. MBX_EINVAL
 * (bad name or preference, empty entry, a preference given twice), MBX_EEXIST (a
 * node twice), MBX_ELIMIT (over 16 copies). */
int mbxcli_parse_copies(const char *csv, Mbx__CopyEntry ***v_r, size_t *n_r);
void mbxcli_copies_free(Mbx__CopyEntry ***v, size_t n);

/* 90 → "90s", 300 → "5m", 7200 → "2h", 86400 → "1d". */
void mbxcli_format_duration(uint64_t s, char *buf, size_t len);
/* "0.2s ago", "42s ago", "5m ago", "3h ago", "2d ago"; "-" when then_us <= 0. */
void mbxcli_format_age(int64_t then_us, int64_t now_us, char *buf, size_t len);
/* 512 → "512 B", 1536 → "1.5 KiB" (powers of 1024). */
void mbxcli_format_bytes(uint64_t b, char *buf, size_t len);
/* "1.0 GiB / 2.0 GiB  50%  200.0 MiB/s  ETA 5s" (total 0: unknown). */
void mbxcli_format_progress(uint64_t done, uint64_t total, uint64_t elapsed_us, char *buf,
                            size_t len);
/* The copy status table: DB NODE ROLE STATUS COPYQ COPYQ BYTES REPLAYQ LAST RECEIVED
 * LAST REPLAYED LAST CONTACT LAG PREF REASON/COMMENT; ages relative to now_us. */
void mbxcli_print_copy_status(FILE *f, Mbx__CopyStatus *const *copies, size_t n,
                              int64_t now_us);
/* How many of the copies are not healthy: an active that is not Mounted, a passive
 * that is not Healthy (ServiceDown, Diverged, Failed, Seeding… all count). */
size_t mbxcli_copies_unhealthy(Mbx__CopyStatus *const *copies, size_t n);

/* ---- watch.c ---- */

struct mbxcli_watch_args {
  const char *const *folders;       /* FOLDER arguments (paths or ids); none: every folder */
  size_t n_folders;
  bool hierarchy;                   /* also folder creations, renames, moves, deletions */
  bool json;                        /* one JSON Notification per line */
  const char *count, *timeout;      /* as typed; NULL when not given */
};
/* `mbx watch` on a logged-in blocking connection: subscribes and prints one line per
 * notification (keepalives are not shown) until --count changes, --timeout seconds
 * (an error if --count was not reached) or the end of the subscription. Prints its
 * own one-line errors; returns the exit code (0, 1 refused, 2 usage, 3 connection).
 * The subscription stays open until the caller closes conn. */
int mbxcli_watch(mbxc_conn *conn, const struct mbxcli_watch_args *a);

/* ---- cached.c ---- */

/* Opens the cache of profile (default: user) for cached mode; the cache is created
 * on first use, which needs user. Prints its own one-line error; returns the exit
 * code (0, 1, 2). */
int mbxcli_cached_open(const char *profile, const char *user, mbxc_cache **cache_r);

struct mbxcli_cached_args {
  mbxc_cache *cache;
  struct mbxc_options conn;         /* server, CA, client certificate */
  const char *password;
  bool json;
  const char *threads;              /* --threads as typed, NULL: 4 */
  const char *push_delay;           /* sync --watch: --push-delay as typed, NULL: the profile's */
  const char *timeout;              /* sync --watch: --timeout as typed, NULL: run until stopped */
};
/* `mbx --cached sync-now`: one full two-way pass, then a summary (progress on a
 * terminal, resolved conflicts as lines). Returns the exit code (3: no server). */
int mbxcli_cached_sync_now(const struct mbxcli_cached_args *a);
/* `mbx --cached sync --watch`: runs until SIGINT/SIGTERM or --timeout; a status line
 * on a terminal, plain timestamped lines otherwise. Returns the exit code. */
int mbxcli_cached_watch(const struct mbxcli_cached_args *a);
/* `mbx --cached status`: queue, conflicts, last sync per folder. */
int mbxcli_cached_status(mbxc_cache *c, bool json);
/* `mbx --cached config [--push-delay S] [--bodies ondemand|all]`: sets, then shows. */
int mbxcli_cached_config(mbxc_cache *c, const char *push_delay, const char *bodies, bool json);

#endif

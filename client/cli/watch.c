/* watch.c — `mbx watch`: subscribes to push notifications (mbxc_subscribe) and prints
 * one line per notification (one JSON object per line with --json) until --count
 * changes were seen, --timeout passed, or the server ends the subscription. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "clock.h"

enum { WATCH_OK = 0, WATCH_REFUSED = 1, WATCH_USAGE = 2, WATCH_CONN = 3 };

#define WATCH_TIMEOUT_MAX_S (366u * 86400u)
#define WATCH_SLICE_MS 1000u /* mbxc_wait in slices: a --timeout is kept to the second */

struct watch {
  const struct mbxcli_watch_args *a;
  const Mbx__FoldersResp *fr;         /* names for the folders known at the start */
  uint64_t count_max;                 /* 0: no limit */
  uint64_t changes;                   /* change notifications seen */
  int status;                         /* the stream's end: 0 while it runs */
  bool ended;
  int exit;
};

static int watch_usage(const char *fmt, const char *arg)
{
  fputs("mbx: ", stderr);
  fprintf(stderr, fmt, arg);
  fputs(" (see mbx watch --help)\n", stderr);
  return WATCH_USAGE;
}

static int watch_call_error(mbxc_conn *conn, const char *what, int rc)
{
  const char *msg = mbxc_last_error(conn);
  if (!msg || !*msg || mbxc_last_error_code(conn) != rc)
    msg = mbx_strerror(rc);
  fprintf(stderr, "mbx: %s: %s (%s)\n", what, msg, mbx_strerror_name(rc));
  return rc == MBX_ECONN || rc == MBX_ETLS || rc == MBX_ECLOSED || rc == MBX_ETIMEDOUT
             ? WATCH_CONN
             : WATCH_REFUSED;
}

static const char *watch_folder_name(const struct watch *w, uint64_t id, char *buf, size_t len)
{
  for (size_t i = 0; w->fr && i < w->fr->n_folders; i++) {
    const Mbx__Folder *f = w->fr->folders[i];
    if (f->id == id) {
      if (mbxc_folder_path(w->fr, f, buf, len) >= 0)
        return buf;
      break;
    }
  }
  snprintf(buf, len, "folder %" PRIu64, id);
  return buf;
}

/* "changed  Inbox cn=13  hierarchy hcn=12  (+0.8 ms)" — the delay is from the commit
 * on the server to now, by this host's clock. */
static void watch_print(const struct watch *w, const Mbx__Notification *no)
{
  if (w->a->json) {
    struct mbx_buf b;
    mbx_buf_init(&b, 0);
    if (mbxcli_json_message(&b, &no->base) == 0 && mbx_buf_append(&b, "\n", 1) == 0)
      fwrite(b.data, 1, b.len, stdout);
    mbx_buf_free(&b);
    fflush(stdout);
    return;
  }
  char name[512];
  fputs(no->subscribed ? "subscribed" : "changed", stdout);
  for (size_t i = 0; i < no->n_folders; i++)
    printf("  %s cn=%" PRIu64, watch_folder_name(w, no->folders[i]->folder_id, name, sizeof(name)),
           no->folders[i]->last_cn);
  if (no->hierarchy_changed || (no->subscribed && no->has_hcn))
    printf("  hierarchy hcn=%" PRIu64, no->hcn);
  if (!no->subscribed && no->has_commit_time_us) {
    double ms = (double)(mbx_now_us() - no->commit_time_us) / 1000.0;
    printf("  (+%.1f ms)", ms < 0 ? 0.0 : ms);
  }
  putchar('\n');
  fflush(stdout);
}

static bool watch_on_notify(mbxc_conn *conn, int status, const Mbx__Response *resp, void *arg)
{
  struct watch *w = arg;
  (void)conn;
  if (status < 0) {
    w->ended = true;
    w->status = status;
    return false;
  }
  const Mbx__Notification *no = resp ? resp->notification : NULL;
  if (!no || resp->body_case != MBX__RESPONSE__BODY_NOTIFICATION) {
    w->ended = true;
    w->status = MBX_EPROTO;
    return false;
  }
  bool keepalive = !no->subscribed && !no->n_folders && !no->hierarchy_changed;
  if (keepalive)
    return true;
  watch_print(w, no);
  if (!no->subscribed && w->count_max && ++w->changes >= w->count_max) {
    w->ended = true;
    return false;
  }
  return true;
}

/* FOLDER arguments → ids, with one folders call (whose reply also names them). */
static int watch_folders(mbxc_conn *conn, const struct mbxcli_watch_args *a,
                         Mbx__FoldersResp **fr_r, uint64_t **ids_r)
{
  int rc = mbxc_folders(conn, fr_r);
  if (rc < 0)
    return watch_call_error(conn, "folders", rc);
  *ids_r = calloc(a->n_folders + 1, sizeof(**ids_r));
  if (!*ids_r) {
    fputs("mbx: out of memory\n", stderr);
    return WATCH_REFUSED;
  }
  for (size_t i = 0; i < a->n_folders; i++) {
    const Mbx__Folder *f;
    if (mbxc_folder_resolve(*fr_r, a->folders[i], &f) < 0) {
      fprintf(stderr, "mbx: no folder \"%s\" (ENOTFOUND)\n", a->folders[i]);
      return WATCH_REFUSED;
    }
    (*ids_r)[i] = f->id;
  }
  return 0;
}

/* The subscription outlives mbxcli_watch until the caller closes the connection,
 * which calls back one last time (MBX_ECLOSED): the state it touches is static. */
static struct watch watch_state;

int mbxcli_watch(mbxc_conn *conn, const struct mbxcli_watch_args *a)
{
  struct watch *w = &watch_state;
  memset(w, 0, sizeof(*w));
  w->a = a;
  uint64_t timeout_s = 0;
  if (a->count && (mbxcli_parse_u64(a->count, UINT32_MAX, &w->count_max) < 0 || !w->count_max))
    return watch_usage("--count wants a positive number, not \"%s\"", a->count);
  if (a->timeout &&
      (mbxcli_parse_u64(a->timeout, WATCH_TIMEOUT_MAX_S, &timeout_s) < 0 || !timeout_s))
    return watch_usage("--timeout wants seconds (1 to 31622400), not \"%s\"", a->timeout);
  Mbx__FoldersResp *fr = NULL;
  uint64_t *ids = NULL;
  int ex = watch_folders(conn, a, &fr, &ids);
  w->fr = fr;
  if (!ex) {
    int rc = mbxc_subscribe(conn, ids, a->n_folders, a->hierarchy, watch_on_notify, w);
    if (rc < 0)
      ex = watch_call_error(conn, "watch", rc);
  }
  uint64_t deadline = timeout_s ? mbx_mono_us() + timeout_s * 1000000 : 0;
  while (!ex && !w->ended) {
    uint64_t now = mbx_mono_us();
    if (deadline && now >= deadline)
      break;
    uint64_t left_ms = deadline ? (deadline - now + 999) / 1000 : WATCH_SLICE_MS;
    int rc = mbxc_wait(conn, (uint32_t)(left_ms < WATCH_SLICE_MS ? left_ms : WATCH_SLICE_MS));
    if (rc < 0 && !w->ended) {
      w->ended = true;
      w->status = rc;
    }
  }
  if (!ex && w->status < 0) {
    ex = watch_call_error(conn, "watch", w->status);
  } else if (!ex && !w->ended && w->count_max) {
    fprintf(stderr, "mbx: watch: %" PRIu64 " of %" PRIu64 " changes seen in %" PRIu64
                    " s (ETIMEDOUT)\n", w->changes, w->count_max, timeout_s);
    ex = WATCH_REFUSED;
  }
  free(ids);
  w->fr = NULL;
  mbxc_free(&fr);
  return ex;
}

/* cached.c — the mbx command line's cached mode (--cached): opening the profile's
 * cache, and the commands only cached mode has: sync-now (one full two-way pass and
 * a summary), sync --watch (continuous, with progress), status and config. The
 * everyday commands (list, flag, …) stay in mbx.c and read the cache instead of the
 * server. Each function prints its own one-line errors and returns the exit code. */
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "clock.h"

enum { EX_OK = 0, EX_REFUSED = 1, EX_USAGE = 2, EX_CONN = 3 };

static int fail(int code, const char *what)
{
  const char *m = mbxc_cache_last_error();
  fprintf(stderr, "mbx: %s: %s (%s)\n", what, m && *m ? m : mbx_strerror(code),
          mbx_strerror_name(code));
  return code == MBX_EINVAL ? EX_USAGE : EX_REFUSED;
}

static int emit_json(const ProtobufCMessage *m)
{
  struct mbx_buf b;
  mbx_buf_init(&b, 0);
  int rc = mbxcli_json_message(&b, m);
  if (rc == 0)
    rc = mbx_buf_append(&b, "\n", 1);
  if (rc == 0 && fwrite(b.data, 1, b.len, stdout) != b.len)
    rc = MBX_EIO;
  mbx_buf_free(&b);
  if (rc < 0) {
    fprintf(stderr, "mbx: cannot write output: %s\n", mbx_strerror(rc));
    return EX_REFUSED;
  }
  return EX_OK;
}

int mbxcli_cached_open(const char *profile, const char *user, mbxc_cache **cache_r)
{
  char dir[4096];
  if (!profile || !*profile)
    profile = user;
  if (!profile || !*profile) {
    fprintf(stderr, "mbx: cached mode needs a profile: use --profile NAME or --user ADDRESS "
                    "(see mbx --help)\n");
    return EX_USAGE;
  }
  int rc = mbxc_cache_dir(profile, dir, sizeof(dir));
  if (rc < 0)
    return fail(rc, "cache");
  rc = mbxc_cache_open(dir, user && *user ? user : NULL, 0, cache_r);
  if (rc < 0)
    return fail(rc, "cache");
  return EX_OK;
}

/* ======================================================================== */
/* progress                                                                 */
/* ======================================================================== */

struct view {
  bool tty;                         /* stderr is a terminal: one status line, rewritten */
  bool json;
  bool watch;
  bool shown;                       /* a status line is on screen */
  uint64_t queued;
  char state[160];                  /* "connected to 127.0.0.1:7001" … */
};

static void stamp(char *buf, size_t len)
{
  time_t now = time(NULL);
  struct tm tm;
  localtime_r(&now, &tm);
  strftime(buf, len, "%H:%M:%S", &tm);
}

/* A line that stays: above the status line on a terminal, plain otherwise. Text
 * mode on stdout; JSON mode keeps stdout for the final document, so stderr. */
static void line(struct view *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void line(struct view *v, const char *fmt, ...)
{
  FILE *f = v->json ? stderr : stdout;
  char ts[16];
  va_list ap;
  if (v->tty && v->shown) {
    fputs("\r\033[K", stderr);
    v->shown = false;
  }
  if (v->watch) {
    stamp(ts, sizeof(ts));
    fprintf(f, "%s ", ts);
  }
  va_start(ap, fmt);
  vfprintf(f, fmt, ap);
  va_end(ap);
  fputc('\n', f);
  fflush(f);
}

static void status_line(struct view *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void status_line(struct view *v, const char *fmt, ...)
{
  if (!v->tty)
    return;
  char text[300];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof(text), fmt, ap);
  va_end(ap);
  fprintf(stderr, "\r\033[K%s", text);
  fflush(stderr);
  v->shown = true;
}

static void on_progress(const struct mbxc_cache_progress *p, void *arg)
{
  struct view *v = arg;
  const Mbx__CacheSyncSummary *s = p->summary;
  switch (p->event) {
  case MBXC_CACHE_EV_CONNECTED:
    snprintf(v->state, sizeof(v->state), "connected to %s", p->text);
    break;
  case MBXC_CACHE_EV_SUBSCRIBED:
    snprintf(v->state, sizeof(v->state), "connected to %s", p->text);
    line(v, "connected to %s: watching for changes", p->text);
    break;
  case MBXC_CACHE_EV_DISCONNECTED:
    snprintf(v->state, sizeof(v->state), "offline (%s)", mbx_strerror_name(p->status));
    if (v->watch)
      line(v, "server unreachable: %s (%s)%s%.1f%s", p->text, mbx_strerror_name(p->status),
           p->retry_ms ? "; retrying in " : "", p->retry_ms / 1000.0, p->retry_ms ? " s" : "");
    break;
  case MBXC_CACHE_EV_PASS_START:
    status_line(v, "syncing %u folders…", p->folders_total);
    break;
  case MBXC_CACHE_EV_FOLDER_DONE:
    status_line(v, "[%u/%u] %.60s: +%" PRIu64 " ~%" PRIu64 " -%" PRIu64 " ↑%" PRIu64,
                p->folders_done, p->folders_total, p->text, p->added, p->changed, p->deleted,
                p->pushed);
    if (p->status < 0)
      line(v, "folder %s: %s", p->text, mbx_strerror_name(p->status));
    break;
  case MBXC_CACHE_EV_CONFLICT:
    line(v, "conflict: %s", p->text);
    break;
  case MBXC_CACHE_EV_NOTIFIED:
    status_line(v, "%s — changes on the server, syncing…", v->state);
    break;
  case MBXC_CACHE_EV_PASS_DONE:
    v->queued = s ? s->queued : 0;
    if (!v->watch)
      break; /* sync-now prints its summary itself */
    if (p->status < 0)
      line(v, "sync failed: %s", p->text);
    else if (s && (s->added || s->changed || s->deleted || s->pushed || s->conflicts))
      line(v, "synced %u folders in %.0f ms: +%" PRIu64 " ~%" PRIu64 " -%" PRIu64
              " from the server, %" PRIu64 " pushed, %" PRIu64 " conflicts, %" PRIu64 " queued",
           s->folders, s->elapsed_us / 1000.0, s->added, s->changed, s->deleted, s->pushed,
           s->conflicts, s->queued);
    status_line(v, "%s — up to date, %" PRIu64 " queued", v->state, v->queued);
    break;
  }
}

/* ======================================================================== */
/* sync-now / sync --watch                                                  */
/* ======================================================================== */

static int open_syncer(const struct mbxcli_cached_args *a, struct view *v, mbxc_cache_syncer **s_r)
{
  struct mbxc_cache_sync_options o = {
    .conn = a->conn, .password = a->password, .progress = on_progress, .progress_arg = v,
  };
  if (a->threads) {
    uint64_t n;
    if (mbxcli_parse_u64(a->threads, MBXC_CACHE_MAX_THREADS, &n) < 0 || n == 0) {
      fprintf(stderr, "mbx: --threads is 1 to %u (see mbx sync-now --help)\n",
              MBXC_CACHE_MAX_THREADS);
      return EX_USAGE;
    }
    o.threads = (unsigned)n;
  }
  int rc = mbxc_cache_syncer_new(a->cache, &o, s_r);
  if (rc == MBX_EINVAL) {
    fprintf(stderr, "mbx: %s: use --server and --ca (or MBX_SERVER, MBX_CA) once; the profile "
                    "remembers them\n", mbxc_cache_last_error());
    return EX_USAGE;
  }
  return rc < 0 ? fail(rc, "sync") : EX_OK;
}

static int sync_exit(int rc, const char *what)
{
  const char *m = mbxc_cache_last_error();
  fprintf(stderr, "mbx: %s: %s (%s)\n", what, m && *m ? m : mbx_strerror(rc), mbx_strerror_name(rc));
  switch (rc) {
  case MBX_ECONN:
  case MBX_ECLOSED:
  case MBX_ETIMEDOUT:
  case MBX_ETLS:
  case MBX_ENOTACTIVE:
  case MBX_ESHUTDOWN:
    return EX_CONN;
  default:
    return EX_REFUSED;
  }
}

int mbxcli_cached_sync_now(const struct mbxcli_cached_args *a)
{
  struct view v = { .tty = isatty(STDERR_FILENO), .json = a->json };
  mbxc_cache_syncer *s = NULL;
  int ex = open_syncer(a, &v, &s);
  if (ex)
    return ex;
  Mbx__CacheSyncSummary *sum = NULL;
  int rc = mbxc_cache_sync(s, NULL, 0, MBXC_CACHE_SYNC_ALL, &sum);
  if (v.tty && v.shown)
    fputs("\r\033[K", stderr);
  mbxc_cache_syncer_free(&s);
  if (rc < 0) {
    mbxc_free(&sum);
    return sync_exit(rc, "sync-now");
  }
  if (!sum)
    return fail(MBX_ENOMEM, "sync-now");
  if (a->json) {
    ex = emit_json(&sum->base);
  } else {
    printf("synced %u folders in %.3f s: %" PRIu64 " added, %" PRIu64 " changed, %" PRIu64
           " deleted from the server; %" PRIu64 " pushed; %" PRIu64 " conflicts; %" PRIu64
           " still queued%s\n",
           sum->folders, sum->elapsed_us / 1e6, sum->added, sum->changed, sum->deleted,
           sum->pushed, sum->conflicts, sum->queued, sum->failed ? " (some refused: see status)" : "");
  }
  mbxc_free(&sum);
  return ex;
}

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig)
{
  (void)sig;
  stop_requested = 1;
}
static bool should_stop(void *arg)
{
  (void)arg;
  return stop_requested != 0;
}

int mbxcli_cached_watch(const struct mbxcli_cached_args *a)
{
  struct mbxc_cache_watch_options wo = { .push_delay_s = -1, .should_stop = should_stop };
  uint64_t n;
  if (a->push_delay) {
    if (mbxcli_parse_u64(a->push_delay, MBXC_CACHE_PUSH_DELAY_MAX_S, &n) < 0) {
      fprintf(stderr, "mbx: --push-delay is 0 to %u seconds (see mbx sync --help)\n",
              MBXC_CACHE_PUSH_DELAY_MAX_S);
      return EX_USAGE;
    }
    wo.push_delay_s = (int64_t)n;
  }
  if (a->timeout) {
    if (mbxcli_parse_u64(a->timeout, 86400 * 365, &n) < 0 || n == 0) {
      fprintf(stderr, "mbx: --timeout wants seconds (see mbx sync --help)\n");
      return EX_USAGE;
    }
    wo.timeout_s = (uint32_t)n;
  }
  struct view v = { .tty = isatty(STDERR_FILENO), .json = a->json, .watch = true };
  snprintf(v.state, sizeof(v.state), "connecting");
  mbxc_cache_syncer *s = NULL;
  int ex = open_syncer(a, &v, &s);
  if (ex)
    return ex;
  struct sigaction sa = { .sa_handler = on_signal };
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  int rc = mbxc_cache_watch(s, &wo);
  if (v.tty && v.shown)
    fputs("\r\033[K", stderr);
  mbxc_cache_syncer_free(&s);
  if (rc < 0)
    return sync_exit(rc, "sync --watch");
  return EX_OK;
}

/* ======================================================================== */
/* status / config                                                          */
/* ======================================================================== */

static void age(int64_t then_us, char *buf, size_t len)
{
  if (then_us <= 0)
    snprintf(buf, len, "never");
  else
    mbxcli_format_age(then_us, mbx_now_us(), buf, len);
}

int mbxcli_cached_status(mbxc_cache *c, bool json)
{
  Mbx__CacheStatus *st = NULL;
  int rc = mbxc_cache_status(c, true, &st);
  if (rc < 0)
    return fail(rc, "status");
  if (json) {
    int ex = emit_json(&st->base);
    mbxc_free(&st);
    return ex;
  }
  char a[32], b[32];
  age(st->last_pass_us, a, sizeof(a));
  age(st->last_hierarchy_sync_us, b, sizeof(b));
  printf("profile %s (%s)\n  cache   %s\n  server  %s\n", st->profile, st->user, st->dir,
         st->server ? st->server : "(none yet)");
  printf("  queued  %" PRIu64 " change%s (%" PRIu64 " urgent, %" PRIu64 " refused so far)\n",
         st->queued, st->queued == 1 ? "" : "s", st->queued_urgent, st->queued_failing);
  printf("  conflicts %" PRIu64 "   last sync %s   hierarchy %s   push delay %us   bodies %s\n",
         st->conflicts, a, b, st->push_delay_s, st->bodies);
  if (st->last_pass_error && *st->last_pass_error)
    printf("  last sync failed: %s\n", st->last_pass_error);
  printf("\n%8s  %-36s %7s %7s %7s  %s\n", "ID", "FOLDER", "UNREAD", "TOTAL", "QUEUED",
         "LAST SYNC");
  for (size_t i = 0; i < st->n_folders; i++) {
    const Mbx__CacheFolderStatus *f = st->folders[i];
    age(f->last_sync_us, a, sizeof(a));
    printf("%8" PRIu64 "  %-36.36s %7" PRIu64 " %7" PRIu64 " %7" PRIu64 "  %s%s%s%s\n", f->id,
           f->path, f->unread_count, f->item_count, f->queued, f->local_only ? "not on the server yet" : a,
           f->last_error ? " — " : "", f->last_error ? f->last_error : "", "");
  }
  if (st->n_failing) {
    printf("\nrefused by the server (tried again later):\n");
    for (size_t i = 0; i < st->n_failing; i++)
      printf("  #%" PRIu64 " item/folder %" PRIu64 ": %s (%u attempts)\n", st->failing[i]->seq,
             st->failing[i]->id, st->failing[i]->last_error ? st->failing[i]->last_error : "?",
             st->failing[i]->attempts);
  }
  if (st->n_recent_conflicts) {
    printf("\nrecent conflicts:\n");
    for (size_t i = 0; i < st->n_recent_conflicts; i++) {
      age(st->recent_conflicts[i]->time_us, a, sizeof(a));
      printf("  %s  %s\n", a, st->recent_conflicts[i]->detail);
    }
  }
  mbxc_free(&st);
  return EX_OK;
}

int mbxcli_cached_config(mbxc_cache *c, const char *push_delay, const char *bodies, bool json)
{
  int rc = 0;
  if (push_delay && (rc = mbxc_cache_setting_set(c, "push_delay_s", push_delay)) < 0)
    return fail(rc, "config --push-delay");
  if (bodies && (rc = mbxc_cache_setting_set(c, "bodies", bodies)) < 0)
    return fail(rc, "config --bodies");
  Mbx__CacheStatus *st = NULL;
  if ((rc = mbxc_cache_status(c, false, &st)) < 0)
    return fail(rc, "config");
  int ex = EX_OK;
  if (json) {
    Mbx__CacheStatus out = MBX__CACHE_STATUS__INIT;
    out.profile = st->profile;
    out.dir = st->dir;
    out.user = st->user;
    out.server = st->server;
    out.has_push_delay_s = true;
    out.push_delay_s = st->push_delay_s;
    out.bodies = st->bodies;
    ex = emit_json(&out.base);
  } else {
    printf("profile %s: push_delay_s %u, bodies %s, server %s\n", st->profile, st->push_delay_s,
           st->bodies, st->server ? st->server : "(none yet)");
  }
  mbxc_free(&st);
  return ex;
}

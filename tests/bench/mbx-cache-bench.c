/* mbx-cache-bench.c — cached mode's two targets, measured through libmbx's public
 * cache API against a running node:
 *   first sync   a fresh profile syncs a folder of --items messages of --size bytes
 *                (bodies on demand): items/s over the whole pass, logins included;
 *   incremental  on the same profile, with its connections open (as `sync --watch`
 *                keeps them), --changes changes each way (server: half deliveries,
 *                half flag toggles; cache: half flag toggles, half moves between
 *                Inbox and Archive), then one full two-way pass (every folder):
 *                milliseconds from the call to its return, checked to have brought
 *                and pushed exactly those changes.
 * Usage: mbx-cache-bench [--items 10000] [--size 4096] [--runs 5] [--rounds 20]
 *        [--changes 10] [--threads 4] [--dir DIR] [--json]
 * Env: MBX_SERVER, MBX_CA, MBX_CERT/MBX_KEY (an operator or transport certificate of
 * the cluster CA: creates the mailbox and delivers), MBX_BENCH_PASSWORD. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "mbx/cache.h"
#include "mbx/mbx.h"

#define BENCH_USER "bench-cache@example.com"
#define FILL_THREADS 8

static struct {
  unsigned items, size, runs, rounds, changes, threads;
  const char *dir;
  const char *bodies;                /* profile setting: ondemand (default) or all */
  bool json;
  struct mbxc_options cert;         /* operator / transport */
  struct mbxc_options user;
  const char *password;
} o = { .items = 10000, .size = 4096, .runs = 5, .rounds = 20, .changes = 10, .threads = 4 };

static void die(const char *what, int rc, mbxc_conn *c)
{
  fprintf(stderr, "mbx-cache-bench: %s: %s (%s)\n", what,
          c && *mbxc_last_error(c) ? mbxc_last_error(c)
          : *mbxc_cache_last_error() ? mbxc_cache_last_error() : mbx_strerror(rc),
          mbx_strerror_name(rc));
  exit(1);
}

static mbxc_conn *open_conn(const struct mbxc_options *opts, bool login)
{
  mbxc_conn *c;
  const char *err;
  int rc = mbxc_open(opts, &c, &err);
  if (rc < 0) {
    fprintf(stderr, "mbx-cache-bench: cannot connect: %s\n", err);
    exit(1);
  }
  if (login && (rc = mbxc_login(c, MBX__ROLE__ROLE_USER, BENCH_USER, o.password, NULL)) < 0)
    die("login", rc, c);
  return c;
}

/* A message of about o.size bytes, unique by n. */
static size_t make_message(char *buf, size_t cap, uint64_t n, const char *tag)
{
  int len = snprintf(buf, cap,
                     "From: bench@example.org\r\nTo: " BENCH_USER "\r\nSubject: %s-%" PRIu64
                     "\r\nDate: Sat, 21 Nov 2026 10:00:00 +0000\r\nMessage-ID: <%s-%" PRIu64
                     ".%d@bench.example>\r\n\r\n", tag, n, tag, n, (int)getpid());
  size_t at = (size_t)len;
  while (at + 78 < o.size && at + 78 < cap) {
    memset(buf + at, 'a' + (char)((at / 78 + n) % 26), 76);
    memcpy(buf + at + 76, "\r\n", 2);
    at += 78;
  }
  return at;
}

struct fill {
  uint64_t first, count;
};

static void *fill_main(void *arg)
{
  struct fill *f = arg;
  mbxc_conn *c = open_conn(&o.cert, false);
  char *buf = malloc(o.size + 512);
  for (uint64_t i = 0; buf && i < f->count; i++) {
    size_t len = make_message(buf, o.size + 512, f->first + i, "fill");
    Mbx__ItemResp *ir = NULL;
    int rc = mbxc_deliver(c, BENCH_USER, buf, len, &ir);
    mbxc_free(&ir);
    if (rc < 0)
      die("deliver", rc, c);
  }
  free(buf);
  mbxc_close(&c);
  return NULL;
}

/* The bench mailbox, its Inbox filled to o.items (only the shortfall is delivered). */
static void setup(void)
{
  mbxc_conn *op = open_conn(&o.cert, false);
  Mbx__MailboxCreateReq mr = MBX__MAILBOX_CREATE_REQ__INIT;
  mr.address = BENCH_USER;
  mr.database = "db1";
  mr.password = (char *)o.password;
  mr.has_quota_warn_bytes = mr.has_quota_prohibit_bytes = true;
  Mbx__MailboxInfo *mi = NULL;
  int rc = mbxc_mailbox_create(op, &mr, &mi);
  mbxc_free(&mi);
  if (rc < 0 && rc != MBX_EEXIST)
    die("mailbox create", rc, op);
  mbxc_close(&op);
  mbxc_conn *u = open_conn(&o.user, true);
  Mbx__Folder *inbox = NULL;
  if ((rc = mbxc_find_folder(u, "Inbox", &inbox)) < 0)
    die("Inbox", rc, u);
  uint64_t have = inbox->item_count;
  mbxc_free(&inbox);
  mbxc_close(&u);
  if (have >= o.items)
    return;
  uint64_t need = o.items - have, t0 = mbx_mono_us();
  fprintf(stderr, "mbx-cache-bench: delivering %" PRIu64 " messages of %u bytes…\n", need, o.size);
  pthread_t th[FILL_THREADS];
  struct fill f[FILL_THREADS];
  for (unsigned i = 0; i < FILL_THREADS; i++) {
    f[i].count = need / FILL_THREADS + (i < need % FILL_THREADS);
    f[i].first = (uint64_t)mbx_now_us() * 10 + i * 1000000000ull;
    pthread_create(&th[i], NULL, fill_main, &f[i]);
  }
  for (unsigned i = 0; i < FILL_THREADS; i++)
    pthread_join(th[i], NULL);
  fprintf(stderr, "mbx-cache-bench: filled in %.1f s\n", (mbx_mono_us() - t0) / 1e6);
}

static mbxc_cache *fresh_cache(const char *dir)
{
  char cmd[4200];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    die("rm -rf the cache", MBX_EIO, NULL);
  mbxc_cache *c;
  int rc = mbxc_cache_open(dir, BENCH_USER, 0, &c);
  if (rc < 0)
    die("cache open", rc, NULL);
  if (o.bodies && (rc = mbxc_cache_setting_set(c, "bodies", o.bodies)) < 0)
    die("--bodies (ondemand or all)", rc, NULL);
  return c;
}

/* One full two-way pass (every folder): its summary (the caller frees it), and in
 * *us_r the microseconds from the call to its return. Exits on failure. */
static Mbx__CacheSyncSummary *timed_sync(mbxc_cache_syncer *s, const char *what, uint64_t *us_r)
{
  Mbx__CacheSyncSummary *sum = NULL;
  uint64_t t0 = mbx_mono_us();
  int rc = mbxc_cache_sync(s, NULL, 0, MBXC_CACHE_SYNC_ALL, &sum);
  *us_r = mbx_mono_us() - t0;
  if (rc < 0)
    die(what, rc, NULL);
  return sum;
}

static int cmp_u64(const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static double pct(uint64_t *v, unsigned n, double q)
{
  qsort(v, n, sizeof(*v), cmp_u64);
  unsigned i = (unsigned)(q * (n - 1) + 0.5);
  return (double)v[i];
}

static void usage(void)
{
  fprintf(stderr, "usage: mbx-cache-bench [--items N] [--size B] [--runs N] [--rounds N] "
                  "[--changes N (even, 2..100)] [--threads 1..4] [--bodies ondemand|all] [--dir DIR] [--json]\n"
                  "env: MBX_SERVER MBX_CA MBX_CERT MBX_KEY (operator or transport) "
                  "MBX_BENCH_PASSWORD\n");
  exit(2);
}

static unsigned num(const char *s, unsigned lo, unsigned hi)
{
  char *end;
  unsigned long v = strtoul(s ? s : "", &end, 10);
  if (!s || !*s || *end || v < lo || v > hi)
    usage();
  return (unsigned)v;
}

int main(int argc, char **argv)
{
  char dirbuf[4096];
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--json"))
      o.json = true;
    else if (!strcmp(a, "--items"))
      o.items = num(v, 1, 1000000), i++;
    else if (!strcmp(a, "--size"))
      o.size = num(v, 256, 1 << 20), i++;
    else if (!strcmp(a, "--runs"))
      o.runs = num(v, 1, 100), i++;
    else if (!strcmp(a, "--rounds"))
      o.rounds = num(v, 1, 1000), i++;
    else if (!strcmp(a, "--changes"))
      o.changes = num(v, 2, 100), i++;
    else if (!strcmp(a, "--bodies") && v)
      o.bodies = v, i++;
    else if (!strcmp(a, "--threads"))
      o.threads = num(v, 1, MBXC_CACHE_MAX_THREADS), i++;
    else if (!strcmp(a, "--dir") && v)
      o.dir = v, i++;
    else
      usage();
  }
  if (o.changes % 2)
    usage();
  const char *server = getenv("MBX_SERVER"), *ca = getenv("MBX_CA");
  char first[256];
  if (!server || !ca || !getenv("MBX_CERT") || !getenv("MBX_KEY"))
    usage();
  snprintf(first, sizeof(first), "%.*s", (int)strcspn(server, ","), server);
  o.password = getenv("MBX_BENCH_PASSWORD") ? getenv("MBX_BENCH_PASSWORD") : "mbx-bench-password";
  o.cert = (struct mbxc_options){ .servers = first, .ca_file = ca, .cert_file = getenv("MBX_CERT"),
                                  .key_file = getenv("MBX_KEY"), .client_name = "mbx-cache-bench" };
  o.user = (struct mbxc_options){ .servers = first, .ca_file = ca, .client_name = "mbx-cache-bench" };
  if (!o.dir) {
    snprintf(dirbuf, sizeof(dirbuf), "%s/mbx-cache-bench.%d", getenv("TMPDIR") ? getenv("TMPDIR")
                                                                               : "/tmp", (int)getpid());
    o.dir = dirbuf;
  }
  setup();

  /* ---- first sync, o.runs times on a fresh profile ---- */
  struct mbxc_cache_sync_options so = { .conn = o.user, .password = o.password,
                                        .threads = o.threads };
  uint64_t *first_us = calloc(o.runs, sizeof(uint64_t)), items = 0;
  mbxc_cache *cache = NULL;
  mbxc_cache_syncer *syncer = NULL;
  for (unsigned r = 0; r < o.runs; r++) {
    mbxc_cache_syncer_free(&syncer);
    mbxc_cache_close(&cache);
    cache = fresh_cache(o.dir);
    int rc = mbxc_cache_syncer_new(cache, &so, &syncer);
    if (rc < 0)
      die("syncer", rc, NULL);
    Mbx__CacheSyncSummary *sum = timed_sync(syncer, "first sync", &first_us[r]);
    items = sum->added;
    fprintf(stderr, "mbx-cache-bench: first sync %u/%u: %" PRIu64 " items in %.1f ms (%.0f items/s)\n",
            r + 1, o.runs, sum->added, first_us[r] / 1e3, sum->added * 1e6 / (double)first_us[r]);
    mbxc_free(&sum);
  }

  /* ---- incremental rounds on the last profile, connections open ---- */
  mbxc_conn *tr = open_conn(&o.cert, false), *u = open_conn(&o.user, true);
  Mbx__ListResp *lr = NULL;
  Mbx__Folder *inbox = NULL, *archive = NULL;
  int rc = mbxc_find_folder(u, "Inbox", &inbox);
  if (rc == 0)
    rc = mbxc_find_folder(u, "Archive", &archive);
  if (rc == 0)
    rc = mbxc_list(u, inbox->id, 0, 1000, &lr);
  if (rc < 0 || lr->n_items < 4 * o.changes)
    die("list Inbox", rc < 0 ? rc : MBX_ENOTFOUND, u);
  unsigned half = o.changes / 2, bad = 0;
  uint64_t *inc_us = calloc(o.rounds, sizeof(uint64_t));
  char *buf = malloc(o.size + 512);
  for (unsigned r = 0; r < o.rounds; r++) {
    bool even = r % 2 == 0;
    for (unsigned i = 0; i < half; i++) {
      size_t len = make_message(buf, o.size + 512, (uint64_t)r * 1000 + i, "inc");
      Mbx__ItemResp *ir = NULL;
      if ((rc = mbxc_deliver(tr, BENCH_USER, buf, len, &ir)) < 0)
        die("deliver", rc, tr);
      mbxc_free(&ir);
      /* server: toggle \Seen on items [0, half) */
      if ((rc = mbxc_set_flags(u, lr->items[i]->id, even ? 1 : 0, even ? 0 : 1, false, NULL, 0,
                               &ir)) < 0)
        die("server flag", rc, u);
      mbxc_free(&ir);
      /* cache: toggle \Flagged on items [half, 2 half); move [2 half, 3 half) */
      if ((rc = mbxc_cache_set_flags(cache, lr->items[half + i]->id, even ? 2 : 0, even ? 0 : 2,
                                     false, NULL, 0, NULL)) < 0)
        die("cache flag", rc, NULL);
      if ((rc = mbxc_cache_move(cache, lr->items[2 * half + i]->id,
                                even ? archive->id : inbox->id, NULL)) < 0)
        die("cache move", rc, NULL);
    }
    Mbx__CacheSyncSummary *sum = timed_sync(syncer, "incremental sync", &inc_us[r]);
    if (sum->added != half || sum->changed != half || sum->pushed != o.changes || sum->queued) {
      bad++;
      fprintf(stderr, "mbx-cache-bench: round %u: added %" PRIu64 " changed %" PRIu64
              " pushed %" PRIu64 " queued %" PRIu64 " (want %u, %u, %u, 0)\n", r, sum->added,
              sum->changed, sum->pushed, sum->queued, half, half, o.changes);
    }
    mbxc_free(&sum);
  }
  double f50 = pct(first_us, o.runs, 0.5), fmin = pct(first_us, o.runs, 0), fmax = pct(first_us, o.runs, 1);
  double i50 = pct(inc_us, o.rounds, 0.5), i90 = pct(inc_us, o.rounds, 0.9),
         imax = pct(inc_us, o.rounds, 1);
  double rate = items * 1e6 / f50;
  if (o.json)
    printf("{\"mode\":\"cache\",\"bodies\":\"%s\",\"items\":%" PRIu64 ",\"size\":%u,\"threads\":%u,\"first_sync_ms\":%.1f,"
           "\"first_sync_items_per_s\":%.0f,\"first_sync_min_ms\":%.1f,\"first_sync_max_ms\":%.1f,"
           "\"changes_each_way\":%u,\"rounds\":%u,\"incremental_p50_ms\":%.2f,"
           "\"incremental_p90_ms\":%.2f,\"incremental_max_ms\":%.2f,\"bad_rounds\":%u}\n",
           o.bodies ? o.bodies : "ondemand", items, o.size, o.threads, f50 / 1e3, rate, fmin / 1e3, fmax / 1e3, o.changes, o.rounds,
           i50 / 1e3, i90 / 1e3, imax / 1e3, bad);
  else
    printf("first sync of %" PRIu64 " × %u B: median %.1f ms = %.0f items/s (%.1f … %.1f ms, %u runs)\n"
           "incremental, %u changes each way: p50 %.2f ms, p90 %.2f ms, max %.2f ms (%u rounds%s)\n",
           items, o.size, f50 / 1e3, rate, fmin / 1e3, fmax / 1e3, o.runs, o.changes, i50 / 1e3,
           i90 / 1e3, imax / 1e3, o.rounds, bad ? ", SOME ROUNDS WRONG" : "");
  free(buf);
  free(first_us);
  free(inc_us);
  mbxc_free(&lr);
  mbxc_free(&inbox);
  mbxc_free(&archive);
  mbxc_close(&tr);
  mbxc_close(&u);
  mbxc_cache_syncer_free(&syncer);
  mbxc_cache_close(&cache);
  char cmd[4200];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", o.dir);
  if (system(cmd) != 0)
    fprintf(stderr, "mbx-cache-bench: could not remove %s\n", o.dir);
  return bad ? 1 : 0;
}

/* mbx-bench.c — load tool for mbxd: many pipelined TLS connections on one libuv loop
 * delivering messages, running a mixed user workload, or timing incremental sync of
 * a large folder. One thread, preallocated buffers, nothing printed while timing. */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "clock.h"
#include "log.h"
#include "mbx_error.h"

#define BENCH_DEFAULT_PASSWORD "mbx-bench-password"
#define BENCH_MAX_CLIENTS 4096
#define BENCH_MAX_ADDRS 4096
#define SETUP_TIMEOUT_MS 60000

enum bench_mode { MODE_DELIVER, MODE_MIXED, MODE_SYNC, MODE_NOTIFY, MODE_SELFTEST };

struct bench_opts {
  enum bench_mode mode;
  const char *server, *ca, *cert, *key, *db, *password;
  unsigned clients, depth, mailboxes, size;
  uint64_t messages;
  double seconds, read_ratio;
  uint64_t items;
  unsigned changes, rounds;
  uint32_t timeout_s;
  uint64_t rate;                      /* deliver: messages/s over all connections, 0 = max */
  unsigned subscribers;               /* notify: subscribed user connections */
  bool json, size_given, messages_given, clients_given, rate_given, seconds_given;
  char *to_list;                      /* --to, comma separated (owned copy) */
  const char *addrs[BENCH_MAX_ADDRS];
  unsigned naddrs;
};

static struct bench_opts opts;
static struct bench_ctx ctx;
static char first_error[200];         /* first error reply seen, for the summary */

static void note_error(const Mbx__Response *resp)
{
  if (first_error[0] || !resp || !resp->error)
    return;
  snprintf(first_error, sizeof(first_error), "%s: %s",
           resp->error->name ? resp->error->name : mbx_strerror_name(bench_resp_error(resp)),
           resp->error->message ? resp->error->message : "");
}

static double ns_ms(uint64_t ns) { return (double)ns / 1e6; }

/* xorshift64*: cheap and good enough to pick operations */
static uint64_t rng_next(uint64_t *s)
{
  uint64_t x = *s;
  x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
  *s = x;
  return x * 2685821657736338717ull;
}

/* ---- messages ------------------------------------------------------------------ */

/* Body filler. Real mail is mostly prose (compresses ~2.5-3x) or base64
 * attachments (~1.3x); a repeated line would compress ~50x and flatter a store
 * that compresses bodies. `--payload text` draws words at random from a
 * vocabulary; `--payload random` is base64 of random bytes. */
static int payload_random;

static void fill_body(uint8_t *p, size_t n, uint64_t seed)
{
  static const char *const words[] = {
      "the", "of", "and", "to", "in", "meeting", "project", "is", "for", "that",
      "please", "review", "attached", "report", "quarter", "with", "on", "as", "we",
      "team", "budget", "schedule", "by", "customer", "next", "week", "update", "this",
      "be", "are", "from", "at", "or", "have", "an", "they", "which", "one", "you",
      "were", "all", "would", "there", "their", "will", "when", "who", "more", "if",
      "no", "out", "so", "said", "what", "up", "its", "about", "into", "than", "them",
      "can", "only", "other", "new", "some", "could", "time", "these", "two", "may",
      "then", "do", "first", "any", "my", "now", "such", "like", "our", "over", "man",
      "me", "even", "most", "made", "after", "also", "did", "many", "before", "must",
      "through", "back", "years", "where", "much", "your", "way", "well", "down",
      "should", "because", "each", "just", "those", "people", "how", "too", "little",
      "state", "good", "very", "make", "world", "still", "own", "see", "men", "work",
      "long", "get", "here", "between", "both", "life", "being", "under", "never",
      "day", "same", "another", "know", "while", "last", "might", "us", "great", "old",
      "year", "off", "come", "since", "against", "go", "came", "right", "used", "take",
      "three", "invoice", "deadline", "contract", "server", "migration", "thanks",
      "regards", "question", "answer", "draft", "final", "version", "numbers", "sales",
      "marketing", "engineering", "release", "issue", "ticket", "support", "office"};
  static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  uint64_t s = seed | 1;
  size_t col = 0;
  for (size_t off = 0; off < n;) {
    if (col >= 72) {
      p[off++] = '\r';
      if (off < n)
        p[off++] = '\n';
      col = 0;
      continue;
    }
    if (payload_random) {
      p[off++] = (uint8_t)b64[rng_next(&s) % 64];
      col++;
      continue;
    }
    const char *w = words[rng_next(&s) % (sizeof(words) / sizeof(words[0]))];
    size_t wl = strlen(w);
    for (size_t i = 0; i < wl && off < n; i++, col++)
      p[off++] = (uint8_t)w[i];
    if (off < n) {
      p[off++] = ' ';
      col++;
    }
  }
}

/* A valid RFC 5322 message padded to `size` bytes (at least its headers). The
 * Message-ID carries a 16-digit counter patched in place for each send. */
struct bench_msg {
  uint8_t *data;
  size_t len;
  size_t counter_off;
};

static int msg_build(struct bench_msg *m, size_t size, const char *to, unsigned conn)
{
  char hdr[1024], date[64];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
  int n = snprintf(hdr, sizeof(hdr),
                   "From: mbx-bench <bench-sender@example.com>\r\n"
                   "To: <%s>\r\n"
                   "Subject: mbx-bench message from connection %u\r\n"
                   "Date: %s\r\n"
                   "Message-ID: <%08x.%05u.",
                   to, conn, date, (unsigned)now, (unsigned)getpid() % 100000);
  if (n < 0 || (size_t)n >= sizeof(hdr) - 200)
    return MBX_EINVAL;
  size_t counter_off = (size_t)n;
  n += snprintf(hdr + n, sizeof(hdr) - (size_t)n,
                "0000000000000000.c%u@bench.example.com>\r\n"
                "MIME-Version: 1.0\r\n"
                "Content-Type: text/plain; charset=us-ascii\r\n"
                "\r\n",
                conn);
  size_t hlen = (size_t)n;
  size_t total = size > hlen + 2 ? size : hlen + 2;
  m->data = malloc(total);
  if (!m->data)
    return MBX_ENOMEM;
  memcpy(m->data, hdr, hlen);
  fill_body(m->data + hlen, total - hlen, 0x9e3779b97f4a7c15ull ^ conn);
  /* a body that ends mid-line still ends with CRLF */
  m->data[total - 2] = '\r';
  m->data[total - 1] = '\n';
  m->len = total;
  m->counter_off = counter_off;
  return 0;
}

static void msg_stamp(struct bench_msg *m, uint64_t counter)
{
  uint8_t *p = m->data + m->counter_off + 16;
  for (int i = 0; i < 16; i++) {
    *--p = (uint8_t)('0' + counter % 10);
    counter /= 10;
  }
}

/* ---- setup helpers ------------------------------------------------------------- */

static char *addr_for(unsigned i)
{
  char buf[64];
  snprintf(buf, sizeof(buf), "bench-%u@example.com", i);
  return strdup(buf);
}

/* Creates the mailboxes (EEXIST is fine: a previous run made them), with quota 0
 * (unlimited) set explicitly. Pipelined over a few operator connections. */
static int create_mailboxes(const char *const *addrs, unsigned n)
{
  enum { PAR = 8 };
  struct bench_conn **conns = NULL;
  unsigned par = n < PAR ? n : PAR;
  int ready = bench_conns_open(&ctx, par, true, 1, 4096, SETUP_TIMEOUT_MS, &conns);
  if (ready < (int)par) {
    fprintf(stderr, "mbx-bench: cannot connect to %s:%u as operator: %s\n", ctx.host, ctx.port,
            ctx.last_close_error);
    bench_conns_close(&ctx, &conns, par);
    return MBX_ECONN;
  }
  Mbx__Request reqs[PAR];
  Mbx__MailboxCreateReq mc[PAR];
  Mbx__Request *rp[PAR];
  int rc = 0;
  unsigned created = 0, existed = 0;
  for (unsigned base = 0; base < n && rc == 0; base += par) {
    for (unsigned j = 0; j < par; j++) {
      rp[j] = NULL;
      if (base + j >= n)
        continue;
      mbx__request__init(&reqs[j]);
      mbx__mailbox_create_req__init(&mc[j]);
      mc[j].address = (char *)addrs[base + j];
      mc[j].database = (char *)opts.db;
      mc[j].password = (char *)opts.password;
      mc[j].display_name = "mbx-bench";
      mc[j].has_quota_warn_bytes = 1;
      mc[j].quota_warn_bytes = 0;
      mc[j].has_quota_prohibit_bytes = 1;
      mc[j].quota_prohibit_bytes = 0;
      reqs[j].body_case = MBX__REQUEST__BODY_MAILBOX_CREATE;
      reqs[j].mailbox_create = &mc[j];
      rp[j] = &reqs[j];
    }
    bench_call_all(&ctx, conns, par, rp, SETUP_TIMEOUT_MS);
    for (unsigned j = 0; j < par && base + j < n; j++) {
      int err = bench_resp_error(conns[j]->resp);
      if (err == 0) {
        created++;
      } else if (err == MBX_EEXIST) {
        existed++;
      } else {
        fprintf(stderr, "mbx-bench: admin mailbox create %s (db %s): %s%s%s\n",
                addrs[base + j], opts.db, mbx_strerror(err),
                conns[j]->resp && conns[j]->resp->error && conns[j]->resp->error->message ? ": " : "",
                conns[j]->resp && conns[j]->resp->error && conns[j]->resp->error->message
                    ? conns[j]->resp->error->message : "");
        rc = err;
        break;
      }
    }
  }
  bench_conns_close(&ctx, &conns, par);
  if (rc == 0 && !opts.json)
    fprintf(stderr, "mbx-bench: mailboxes: %u created, %u already there\n", created, existed);
  return rc;
}

/* Logs every connection in as addrs[i % naddrs]; 0 or the first error. */
static int login_all(struct bench_conn **conns, unsigned n, const char *const *addrs,
                     unsigned naddrs)
{
  Mbx__Request *reqs = calloc(n, sizeof(*reqs));
  Mbx__LoginReq *lg = calloc(n, sizeof(*lg));
  Mbx__Request **rp = calloc(n, sizeof(*rp));
  if (!reqs || !lg || !rp) {
    free(reqs), free(lg), free(rp);
    return MBX_ENOMEM;
  }
  for (unsigned i = 0; i < n; i++) {
    mbx__request__init(&reqs[i]);
    mbx__login_req__init(&lg[i]);
    lg[i].has_role = 1;
    lg[i].role = MBX__ROLE__ROLE_USER;
    lg[i].user = (char *)addrs[i % naddrs];
    lg[i].password = (char *)opts.password;
    reqs[i].body_case = MBX__REQUEST__BODY_LOGIN;
    reqs[i].login = &lg[i];
    rp[i] = &reqs[i];
  }
  bench_call_all(&ctx, conns, n, rp, SETUP_TIMEOUT_MS);
  int rc = 0;
  for (unsigned i = 0; i < n && rc == 0; i++) {
    rc = bench_resp_error(conns[i]->resp);
    if (rc < 0) {
      note_error(conns[i]->resp);
      fprintf(stderr, "mbx-bench: login as %s: %s %s\n", addrs[i % naddrs], mbx_strerror(rc),
              first_error);
    }
  }
  free(reqs), free(lg), free(rp);
  return rc;
}

/* The logged-in mailbox's Inbox: id and item count. */
static int find_inbox(struct bench_conn *c, uint64_t *id_r, uint64_t *count_r)
{
  Mbx__Request req;
  Mbx__FoldersReq fr;
  mbx__request__init(&req);
  mbx__folders_req__init(&fr);
  req.body_case = MBX__REQUEST__BODY_FOLDERS;
  req.folders = &fr;
  Mbx__Response *resp;
  int rc = bench_call(&ctx, c, &req, SETUP_TIMEOUT_MS, &resp);
  if (rc == 0 && resp->body_case == MBX__RESPONSE__BODY_FOLDERS) {
    rc = MBX_ENOTFOUND;
    for (size_t i = 0; i < resp->folders->n_folders; i++) {
      Mbx__Folder *f = resp->folders->folders[i];
      if (f->has_well_known && f->well_known == MBX__WELL_KNOWN__WK_INBOX) {
        *id_r = f->id;
        if (count_r)
          *count_r = f->item_count;
        rc = 0;
      }
    }
  } else if (rc == 0) {
    rc = MBX_EPROTO;
  }
  if (rc < 0)
    fprintf(stderr, "mbx-bench: finding the Inbox: %s\n", mbx_strerror(rc));
  bench_resp_free(&resp);
  return rc;
}

/* ---- output ------------------------------------------------------------------------ */

static void print_latency_text(const char *label, const struct bench_hist *h)
{
  if (!h->count)
    return;
  printf("  %-10s n=%-8" PRIu64 " p50 %.3f  p90 %.3f  p99 %.3f  max %.3f ms\n", label, h->count,
         ns_ms(bench_hist_quantile(h, 0.5)), ns_ms(bench_hist_quantile(h, 0.9)),
         ns_ms(bench_hist_quantile(h, 0.99)), ns_ms(h->max_ns));
}

static void print_latency_json(const char *prefix, const struct bench_hist *h)
{
  printf(",\"%sp50_ms\":%.3f,\"%sp90_ms\":%.3f,\"%sp99_ms\":%.3f,\"%smax_ms\":%.3f", prefix,
         ns_ms(bench_hist_quantile(h, 0.5)), prefix, ns_ms(bench_hist_quantile(h, 0.9)), prefix,
         ns_ms(bench_hist_quantile(h, 0.99)), prefix, ns_ms(h->max_ns));
}

/* ==== deliver mode ================================================================== */

struct deliver_run {
  struct bench_hist hist;
  uint64_t limit;                     /* messages to send, 0 = until stop_ns */
  uint64_t stop_ns;
  uint64_t issued, ok, errors, bytes;
  uint64_t start_ns, last_ns;
  struct bench_conn **conns;
  unsigned nconns;
  const char *const *to;
  unsigned nto;
};

struct deliver_conn {
  struct deliver_run *run;
  struct bench_msg msg;
  Mbx__Request req;
  Mbx__DeliverReq dreq;
};

static struct deliver_run drun;       /* static: the histogram is 60 KiB */
/* notify mode: told of every successful delivery (to: index into the recipients). */
static void (*deliver_hook)(uint64_t to, const Mbx__Response *resp, uint64_t sent_ns,
                            uint64_t now_ns);
static uv_timer_t rate_timer;         /* --rate: re-offers sends every millisecond */

/* --rate: sends allowed so far = rate × elapsed time (a steady open-loop-ish load:
 * the connections' pipelines only bound how far behind it can fall). */
static bool deliver_paced(const struct deliver_run *r)
{
  if (!opts.rate)
    return false;
  uint64_t elapsed_ns = bench_now_ns() - r->start_ns;
  return r->issued >= (uint64_t)((double)elapsed_ns * (double)opts.rate / 1e9) + 1;
}

static void deliver_issue(struct bench_conn *c)
{
  struct deliver_conn *dc = c->user;
  struct deliver_run *r = dc->run;
  while (c->outstanding < c->depth) {
    if (r->limit ? r->issued >= r->limit : bench_now_ns() >= r->stop_ns)
      return;
    if (deliver_paced(r))
      return;
    msg_stamp(&dc->msg, r->issued);
    dc->dreq.to = (char *)r->to[r->issued % r->nto];
    if (bench_conn_send(c, &dc->req, 0, r->issued % r->nto) < 0)
      return;
    r->issued++;
  }
}

static void deliver_on_resp(struct bench_conn *c, int slot, const Mbx__Response *resp,
                            uint64_t sent_ns, uint64_t now_ns)
{
  struct deliver_conn *dc = c->user;
  struct deliver_run *r = dc->run;
  bench_hist_add(&r->hist, now_ns - sent_ns);
  r->last_ns = now_ns;
  if (resp->error) {
    r->errors++;
    note_error(resp);
  } else {
    r->ok++;
    r->bytes += dc->msg.len;
    if (deliver_hook)
      deliver_hook(c->slots[slot].arg, resp, sent_ns, now_ns);
  }
  deliver_issue(c);
}

static void rate_tick(uv_timer_t *t)
{
  struct deliver_run *r = t->data;
  for (unsigned i = 0; i < r->nconns; i++)
    if (!r->conns[i]->closed && r->conns[i]->ready)
      deliver_issue(r->conns[i]);
}

static bool deliver_done(void *arg)
{
  struct deliver_run *r = arg;
  bool stopping = r->limit ? r->issued >= r->limit : bench_now_ns() >= r->stop_ns;
  bool any_open = false;
  for (unsigned i = 0; i < r->nconns; i++) {
    struct bench_conn *c = r->conns[i];
    if (c->closed)
      continue;
    any_open = true;
    if (c->outstanding)
      return false;
    if (!stopping)
      return false;
  }
  return stopping || !any_open;
}

/* Delivers `limit` messages (or for `seconds`) of `size` bytes over `nclients`
 * transport connections to the addresses in `to`. Fills drun. */
static int deliver_load(unsigned nclients, uint64_t limit, double seconds, size_t size,
                        const char *const *to, unsigned nto)
{
  struct deliver_run *r = &drun;
  memset(r, 0, sizeof(*r));
  bench_hist_init(&r->hist);
  r->limit = limit;
  r->to = to;
  r->nto = nto;
  struct bench_conn **conns = NULL;
  int ready = bench_conns_open(&ctx, nclients, true, opts.depth, size + 1024, SETUP_TIMEOUT_MS,
                               &conns);
  if (ready <= 0) {
    fprintf(stderr, "mbx-bench: no connection to %s:%u: %s\n", ctx.host, ctx.port,
            ctx.last_close_error);
    bench_conns_close(&ctx, &conns, nclients);
    return MBX_ECONN;
  }
  struct deliver_conn *dcs = calloc(nclients, sizeof(*dcs));
  if (!dcs) {
    bench_conns_close(&ctx, &conns, nclients);
    return MBX_ENOMEM;
  }
  int rc = 0;
  for (unsigned i = 0; i < nclients && rc == 0; i++) {
    struct deliver_conn *dc = &dcs[i];
    dc->run = r;
    rc = msg_build(&dc->msg, size, to[i % nto], i);
    mbx__request__init(&dc->req);
    mbx__deliver_req__init(&dc->dreq);
    dc->req.body_case = MBX__REQUEST__BODY_DELIVER;
    dc->req.deliver = &dc->dreq;
    dc->dreq.body.data = dc->msg.data;
    dc->dreq.body.len = dc->msg.len;
    conns[i]->user = dc;
    conns[i]->on_resp = deliver_on_resp;
  }
  if (rc == 0) {
    r->conns = conns;
    r->nconns = nclients;
    r->start_ns = r->last_ns = bench_now_ns();
    r->stop_ns = r->start_ns + (uint64_t)(seconds * 1e9);
    for (unsigned i = 0; i < nclients; i++)
      deliver_issue(conns[i]);
    if (opts.rate) {
      uv_timer_init(ctx.loop, &rate_timer);
      rate_timer.data = r;
      uv_timer_start(&rate_timer, rate_tick, 1, 1);
    }
    uint64_t deadline = r->start_ns + (uint64_t)opts.timeout_s * 1000000000ull;
    if (bench_run_until(&ctx, deliver_done, r, deadline) < 0) {
      fprintf(stderr, "mbx-bench: run did not finish within --timeout %u s\n", opts.timeout_s);
      rc = MBX_ETIMEDOUT;
    }
    if (opts.rate) {
      uv_close((uv_handle_t *)&rate_timer, NULL);
      uv_run(ctx.loop, UV_RUN_NOWAIT);
    }
    /* requests in flight on a lost connection never got an answer */
    for (unsigned i = 0; i < nclients; i++)
      if (conns[i]->closed)
        r->errors += conns[i]->outstanding;
  }
  for (unsigned i = 0; i < nclients; i++)
    conns[i]->on_resp = NULL;
  bench_conns_close(&ctx, &conns, nclients);
  for (unsigned i = 0; i < nclients; i++)
    free(dcs[i].msg.data);
  free(dcs);
  return rc;
}

static void deliver_report(const char *mode, unsigned nclients, size_t size, unsigned nto)
{
  struct deliver_run *r = &drun;
  double secs = (double)(r->last_ns - r->start_ns) / 1e9;
  double rate = secs > 0 ? (double)r->ok / secs : 0;
  double mbs = secs > 0 ? (double)r->bytes / secs / 1e6 : 0;
  if (opts.json) {
    printf("{\"mode\":\"%s\",\"clients\":%u,\"depth\":%u,\"size\":%zu,\"mailboxes\":%u,"
           "\"messages\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"conn_failures\":%" PRIu64
           ",\"seconds\":%.3f,\"msgs_per_s\":%.1f,\"mb_per_s\":%.2f",
           mode, nclients, opts.depth, size, nto, r->ok, r->errors, ctx.conn_failures, secs, rate,
           mbs);
    print_latency_json("", &r->hist);
    printf("}\n");
  } else {
    printf("%s: %u clients, depth %u, %zu-byte messages, %u mailboxes\n", mode, nclients,
           opts.depth, size, nto);
    printf("  delivered  %" PRIu64 " in %.2f s, %" PRIu64 " errors, %" PRIu64
           " connection failures\n",
           r->ok, secs, r->errors, ctx.conn_failures);
    printf("  throughput %.1f msgs/s, %.2f MB/s\n", rate, mbs);
    print_latency_text("latency", &r->hist);
  }
  if (r->errors && first_error[0])
    fprintf(stderr, "mbx-bench: first error: %s\n", first_error);
  if (ctx.last_close_error[0] && (r->errors || ctx.conn_failures))
    fprintf(stderr, "mbx-bench: connection: %s\n", ctx.last_close_error);
}

/* Recipients from --to, or --mailboxes K created now. */
static int prepare_recipients(void)
{
  if (opts.naddrs)
    return 0;
  for (unsigned i = 0; i < opts.mailboxes; i++)
    opts.addrs[opts.naddrs++] = addr_for(i);
  return create_mailboxes(opts.addrs, opts.naddrs);
}

static int mode_deliver(void)
{
  int rc = prepare_recipients();
  if (rc < 0)
    return rc;
  rc = deliver_load(opts.clients, opts.messages, opts.seconds, opts.size, opts.addrs,
                    opts.naddrs);
  if (rc < 0 && rc != MBX_ETIMEDOUT)
    return rc;
  deliver_report("deliver", opts.clients, opts.size, opts.naddrs);
  return rc < 0 ? rc : drun.errors || ctx.conn_failures ? MBX_EIO : 0;
}

/* ==== mixed mode ======================================================================== */

enum mixed_op { OP_LIST, OP_GET, OP_SYNC, OP_APPEND, OP_FLAG, OP_COUNT };
static const char *const mixed_op_names[OP_COUNT] = {"list", "get", "sync", "append", "flag"};

#define MIXED_KNOWN 256
#define MIXED_STATE_MAX 4096

struct mixed_conn {
  uint64_t rng;
  uint64_t inbox;
  uint64_t known[MIXED_KNOWN];        /* ring of item ids seen in this mailbox */
  unsigned nknown, known_pos;
  uint8_t state[MIXED_STATE_MAX];     /* this client's sync state */
  size_t state_len;
  struct bench_msg msg;
  Mbx__Request req[OP_COUNT];
  Mbx__ListReq list;
  Mbx__GetReq get;
  Mbx__SyncReq sync;
  Mbx__AppendReq append;
  Mbx__SetFlagsReq flags;
};

struct mixed_run {
  struct bench_hist hist, op_hist[OP_COUNT];
  uint64_t limit, stop_ns, issued, ok, errors, bytes;
  uint64_t start_ns, last_ns;
  struct bench_conn **conns;
  unsigned nconns;
};

static struct mixed_run mrun;

static void mixed_learn(struct mixed_conn *mc, uint64_t id)
{
  mc->known[mc->known_pos] = id;
  mc->known_pos = (mc->known_pos + 1) % MIXED_KNOWN;
  if (mc->nknown < MIXED_KNOWN)
    mc->nknown++;
}

static void mixed_take_sync(struct mixed_conn *mc, const Mbx__SyncResp *s)
{
  for (size_t i = 0; i < s->n_added; i++)
    mixed_learn(mc, s->added[i]->id);
  if (s->state.len <= MIXED_STATE_MAX) {
    memcpy(mc->state, s->state.data, s->state.len);
    mc->state_len = s->state.len;
  }
}

static void mixed_init_requests(struct mixed_conn *mc, unsigned index)
{
  for (int k = 0; k < OP_COUNT; k++)
    mbx__request__init(&mc->req[k]);
  mbx__list_req__init(&mc->list);
  mc->list.folder_id = mc->inbox;
  mc->list.has_limit = 1;
  mc->list.limit = 20;
  mc->req[OP_LIST].body_case = MBX__REQUEST__BODY_LIST;
  mc->req[OP_LIST].list = &mc->list;
  mbx__get_req__init(&mc->get);
  mc->get.has_with_body = 1;
  mc->get.with_body = 1;
  mc->req[OP_GET].body_case = MBX__REQUEST__BODY_GET;
  mc->req[OP_GET].get = &mc->get;
  mbx__sync_req__init(&mc->sync);
  mc->sync.folder_id = mc->inbox;
  mc->sync.has_state = 1;
  mc->sync.has_max_changes = 1;
  mc->sync.max_changes = 1000;
  mc->req[OP_SYNC].body_case = MBX__REQUEST__BODY_SYNC;
  mc->req[OP_SYNC].sync = &mc->sync;
  mbx__append_req__init(&mc->append);
  mc->append.folder_id = mc->inbox;
  mc->append.body.data = mc->msg.data;
  mc->append.body.len = mc->msg.len;
  mc->req[OP_APPEND].body_case = MBX__REQUEST__BODY_APPEND;
  mc->req[OP_APPEND].append = &mc->append;
  mbx__set_flags_req__init(&mc->flags);
  mc->req[OP_FLAG].body_case = MBX__REQUEST__BODY_SET_FLAGS;
  mc->req[OP_FLAG].set_flags = &mc->flags;
  mc->rng = 0x9e3779b97f4a7c15ull * (index + 1);
}

static enum mixed_op mixed_pick(struct mixed_conn *mc)
{
  uint64_t x = rng_next(&mc->rng);
  double u = (double)(x >> 11) / 9007199254740992.0;
  if (u < opts.read_ratio)
    return (enum mixed_op)((x & 0xff) % 3);
  return (x & 1) ? OP_APPEND : OP_FLAG;
}

static void mixed_issue(struct bench_conn *c)
{
  struct mixed_conn *mc = c->user;
  struct mixed_run *r = &mrun;
  while (c->outstanding < c->depth) {
    if (r->limit ? r->issued >= r->limit : bench_now_ns() >= r->stop_ns)
      return;
    enum mixed_op op = mixed_pick(mc);
    if ((op == OP_GET || op == OP_FLAG) && !mc->nknown)
      op = OP_APPEND;
    uint64_t x = rng_next(&mc->rng);
    switch (op) {
    case OP_GET:
      mc->get.item_id = mc->known[x % mc->nknown];
      break;
    case OP_FLAG:
      mc->flags.item_id = mc->known[x % mc->nknown];
      mc->flags.has_add = mc->flags.has_remove = 1;
      mc->flags.add = (x >> 32) & 1 ? MBX__ITEM_FLAG__FLAG_SEEN : 0;
      mc->flags.remove = (x >> 32) & 1 ? 0 : MBX__ITEM_FLAG__FLAG_SEEN;
      break;
    case OP_SYNC:
      mc->sync.state.data = mc->state;
      mc->sync.state.len = mc->state_len;
      break;
    case OP_APPEND:
      msg_stamp(&mc->msg, r->issued);
      break;
    default:
      break;
    }
    if (bench_conn_send(c, &mc->req[op], op, 0) < 0)
      return;
    r->issued++;
  }
}

static void mixed_on_resp(struct bench_conn *c, int slot, const Mbx__Response *resp,
                          uint64_t sent_ns, uint64_t now_ns)
{
  struct mixed_conn *mc = c->user;
  struct mixed_run *r = &mrun;
  uint32_t op = c->slots[slot].kind;
  bench_hist_add(&r->hist, now_ns - sent_ns);
  bench_hist_add(&r->op_hist[op], now_ns - sent_ns);
  r->last_ns = now_ns;
  if (resp->error) {
    r->errors++;
    note_error(resp);
  } else {
    r->ok++;
    if (op == OP_APPEND && resp->body_case == MBX__RESPONSE__BODY_ITEM && resp->item->item) {
      mixed_learn(mc, resp->item->item->id);
      r->bytes += mc->msg.len;
    } else if (op == OP_GET && resp->body_case == MBX__RESPONSE__BODY_ITEM) {
      r->bytes += resp->item->body.len;
    } else if (op == OP_SYNC && resp->body_case == MBX__RESPONSE__BODY_SYNC) {
      mixed_take_sync(mc, resp->sync);
    }
  }
  mixed_issue(c);
}

static bool mixed_done(void *arg)
{
  struct mixed_run *r = arg;
  bool stopping = r->limit ? r->issued >= r->limit : bench_now_ns() >= r->stop_ns;
  bool any_open = false;
  for (unsigned i = 0; i < r->nconns; i++) {
    struct bench_conn *c = r->conns[i];
    if (c->closed)
      continue;
    any_open = true;
    if (c->outstanding || !stopping)
      return false;
  }
  return stopping || !any_open;
}

/* Before timing: every client knows its Inbox, holds a current sync state (paging
 * through what earlier runs left) and knows some item ids (appending a few if the
 * mailbox is empty). */
static int mixed_prepare(struct bench_conn **conns, unsigned n, struct mixed_conn *mcs)
{
  Mbx__Request *reqs = calloc(n, sizeof(*reqs));
  Mbx__SyncReq *srs = calloc(n, sizeof(*srs));
  Mbx__Request **rp = calloc(n, sizeof(*rp));
  int rc = reqs && srs && rp ? 0 : MBX_ENOMEM;
  /* bounded: 1000 pages of 1000 changes per client */
  for (unsigned page = 0; page < 1000 && rc == 0; page++) {
    unsigned pending = 0;
    for (unsigned i = 0; i < n; i++) {
      rp[i] = NULL;
      if (page > 0 && (!conns[i]->resp || !conns[i]->resp->sync || !conns[i]->resp->sync->more))
        continue;
      mbx__request__init(&reqs[i]);
      mbx__sync_req__init(&srs[i]);
      srs[i].folder_id = mcs[i].inbox;
      srs[i].has_state = 1;
      srs[i].state.data = mcs[i].state;
      srs[i].state.len = mcs[i].state_len;
      srs[i].has_max_changes = 1;
      srs[i].max_changes = 1000;
      reqs[i].body_case = MBX__REQUEST__BODY_SYNC;
      reqs[i].sync = &srs[i];
      rp[i] = &reqs[i];
      pending++;
    }
    if (!pending)
      break;
    bench_call_all(&ctx, conns, n, rp, SETUP_TIMEOUT_MS);
    for (unsigned i = 0; i < n && rc == 0; i++) {
      if (!rp[i])
        continue;
      rc = bench_resp_error(conns[i]->resp);
      if (rc == 0 && conns[i]->resp->body_case != MBX__RESPONSE__BODY_SYNC)
        rc = MBX_EPROTO;
      if (rc < 0) {
        note_error(conns[i]->resp);
        fprintf(stderr, "mbx-bench: initial sync: %s %s\n", mbx_strerror(rc), first_error);
      } else {
        mixed_take_sync(&mcs[i], conns[i]->resp->sync);
      }
    }
  }
  for (unsigned round = 0; round < 8 && rc == 0; round++) {
    for (unsigned i = 0; i < n; i++) {
      rp[i] = NULL;
      if (mcs[i].nknown >= 8)
        continue;
      msg_stamp(&mcs[i].msg, 1000000000ull + round);
      rp[i] = &mcs[i].req[OP_APPEND];
    }
    bench_call_all(&ctx, conns, n, rp, SETUP_TIMEOUT_MS);
    for (unsigned i = 0; i < n && rc == 0; i++) {
      if (!rp[i])
        continue;
      rc = bench_resp_error(conns[i]->resp);
      if (rc < 0) {
        note_error(conns[i]->resp);
        fprintf(stderr, "mbx-bench: prefill append: %s %s\n", mbx_strerror(rc), first_error);
      } else if (conns[i]->resp->item && conns[i]->resp->item->item) {
        mixed_learn(&mcs[i], conns[i]->resp->item->item->id);
      }
    }
  }
  for (unsigned i = 0; i < n; i++)
    bench_resp_free(&conns[i]->resp);
  free(reqs), free(srs), free(rp);
  return rc;
}

/* The timed part: every connection keeps its pipeline full until the end. */
static int mixed_timed(struct bench_conn **conns, unsigned n)
{
  struct mixed_run *r = &mrun;
  int rc = 0;
  r->conns = conns;
  r->nconns = n;
  r->start_ns = r->last_ns = bench_now_ns();
  r->stop_ns = r->start_ns + (uint64_t)(opts.seconds * 1e9);
  for (unsigned i = 0; i < n; i++) {
    conns[i]->on_resp = mixed_on_resp;
    mixed_issue(conns[i]);
  }
  uint64_t deadline = r->start_ns + (uint64_t)opts.timeout_s * 1000000000ull;
  if (bench_run_until(&ctx, mixed_done, r, deadline) < 0) {
    fprintf(stderr, "mbx-bench: run did not finish within --timeout %u s\n", opts.timeout_s);
    rc = MBX_ETIMEDOUT;
  }
  for (unsigned i = 0; i < n; i++) {
    if (conns[i]->closed)
      r->errors += conns[i]->outstanding;
    conns[i]->on_resp = NULL;
  }
  return rc;
}

static void mixed_report(void)
{
  struct mixed_run *r = &mrun;
  unsigned n = opts.clients;
  double secs = (double)(r->last_ns - r->start_ns) / 1e9;
  double rate = secs > 0 ? (double)r->ok / secs : 0;
  double mbs = secs > 0 ? (double)r->bytes / secs / 1e6 : 0;
  if (opts.json) {
    printf("{\"mode\":\"mixed\",\"clients\":%u,\"depth\":%u,\"size\":%u,\"mailboxes\":%u,"
           "\"read_ratio\":%.2f,\"ops\":%" PRIu64 ",\"errors\":%" PRIu64
           ",\"conn_failures\":%" PRIu64 ",\"seconds\":%.3f,\"msgs_per_s\":%.1f,\"mb_per_s\":%.2f",
           n, opts.depth, opts.size, opts.naddrs, opts.read_ratio, r->ok, r->errors,
           ctx.conn_failures, secs, rate, mbs);
    print_latency_json("", &r->hist);
    for (int k = 0; k < OP_COUNT; k++) {
      char prefix[32];
      snprintf(prefix, sizeof(prefix), "%s_", mixed_op_names[k]);
      printf(",\"%scount\":%" PRIu64, prefix, r->op_hist[k].count);
      print_latency_json(prefix, &r->op_hist[k]);
    }
    printf("}\n");
  } else {
    printf("mixed: %u clients, depth %u, read ratio %.2f, %u-byte appends, %u mailboxes\n", n,
           opts.depth, opts.read_ratio, opts.size, opts.naddrs);
    printf("  operations %" PRIu64 " in %.2f s, %" PRIu64 " errors, %" PRIu64
           " connection failures\n",
           r->ok, secs, r->errors, ctx.conn_failures);
    printf("  throughput %.1f ops/s, %.2f MB/s of message bodies (appended + fetched)\n", rate,
           mbs);
    print_latency_text("all", &r->hist);
    for (int k = 0; k < OP_COUNT; k++)
      print_latency_text(mixed_op_names[k], &r->op_hist[k]);
  }
  if (r->errors && first_error[0])
    fprintf(stderr, "mbx-bench: first error: %s\n", first_error);
}

static int mode_mixed(void)
{
  int rc = prepare_recipients();
  if (rc < 0)
    return rc;
  unsigned n = opts.clients;
  struct mixed_run *r = &mrun;
  memset(r, 0, sizeof(*r));
  bench_hist_init(&r->hist);
  for (int k = 0; k < OP_COUNT; k++)
    bench_hist_init(&r->op_hist[k]);
  r->limit = opts.messages;
  struct bench_conn **conns = NULL;
  int ready = bench_conns_open(&ctx, n, false, opts.depth, opts.size + 1024, SETUP_TIMEOUT_MS,
                               &conns);
  struct mixed_conn *mcs = calloc(n, sizeof(*mcs));
  if (ready < (int)n || !mcs) {
    fprintf(stderr, "mbx-bench: %d of %u connections: %s\n", ready, n, ctx.last_close_error);
    bench_conns_close(&ctx, &conns, n);
    free(mcs);
    return MBX_ECONN;
  }
  for (unsigned i = 0; i < n && rc == 0; i++) {
    rc = msg_build(&mcs[i].msg, opts.size, opts.addrs[i % opts.naddrs], i);
    conns[i]->user = &mcs[i];
  }
  if (rc == 0)
    rc = login_all(conns, n, opts.addrs, opts.naddrs);
  if (rc == 0) {
    for (unsigned i = 0; i < n && rc == 0; i++) {
      rc = find_inbox(conns[i], &mcs[i].inbox, NULL);
      mixed_init_requests(&mcs[i], i);
    }
  }
  if (rc == 0)
    rc = mixed_prepare(conns, n, mcs);
  if (rc == 0)
    rc = mixed_timed(conns, n);
  bench_conns_close(&ctx, &conns, n);
  for (unsigned i = 0; i < n; i++)
    free(mcs[i].msg.data);
  free(mcs);
  if (rc < 0 && rc != MBX_ETIMEDOUT)
    return rc;

  mixed_report();
  return rc < 0 ? rc : r->errors || ctx.conn_failures ? MBX_EIO : 0;
}

/* ==== sync mode ========================================================================= */

/* What the measuring connection knows about the big folder. */
struct sync_state {
  uint64_t *ids;                      /* items of the folder, from the full sync */
  uint8_t *flagged;                   /* per ids[]: FLAG_FLAGGED set by us */
  size_t nids, cap;
  uint8_t state[MIXED_STATE_MAX];
  size_t state_len;
  /* the one timed request */
  bool done;
  uint64_t elapsed_ns;
  size_t added, changed, deleted;
  bool more;
  bool full;                          /* paging the initial full sync */
  int err;
  /* acks of the change requests */
  unsigned acks, ack_errors;
};

static struct sync_state ss;

/* Keeps the ids the response added (and, while paging the full sync, those it
 * reports changed: an item added before a page's state and changed after it comes
 * as a change) and takes the new state. */
static int sync_keep_ids(const Mbx__SyncResp *s, bool full)
{
  size_t nchanged = full ? s->n_changed : 0;
  if (ss.nids + s->n_added + nchanged > ss.cap) {
    size_t cap = (ss.cap ? ss.cap * 2 : 1024) + s->n_added + nchanged;
    uint64_t *ids = realloc(ss.ids, cap * sizeof(*ids));
    uint8_t *fl = ids ? realloc(ss.flagged, cap) : NULL;
    if (!ids || !fl) {
      if (ids)
        ss.ids = ids;
      return MBX_ENOMEM;
    }
    ss.ids = ids, ss.flagged = fl, ss.cap = cap;
  }
  for (size_t i = 0; i < s->n_added; i++) {
    ss.flagged[ss.nids] = (s->added[i]->flags & MBX__ITEM_FLAG__FLAG_FLAGGED) != 0;
    ss.ids[ss.nids++] = s->added[i]->id;
  }
  for (size_t i = 0; i < nchanged; i++) {
    ss.flagged[ss.nids] = (s->changed[i]->flags & MBX__ITEM_FLAG__FLAG_FLAGGED) != 0;
    ss.ids[ss.nids++] = s->changed[i]->id;
  }
  if (s->state.len > MIXED_STATE_MAX)
    return MBX_ELIMIT;
  memcpy(ss.state, s->state.data, s->state.len);
  ss.state_len = s->state.len;
  return 0;
}

static void sync_on_resp(struct bench_conn *c, int slot, const Mbx__Response *resp,
                         uint64_t sent_ns, uint64_t now_ns)
{
  (void)c, (void)slot;
  ss.elapsed_ns = now_ns - sent_ns;
  ss.done = true;
  ss.err = bench_resp_error(resp);
  if (ss.err == 0 && resp->body_case != MBX__RESPONSE__BODY_SYNC)
    ss.err = MBX_EPROTO;
  if (ss.err < 0) {
    note_error(resp);
    return;
  }
  const Mbx__SyncResp *s = resp->sync;
  ss.added = s->n_added, ss.changed = s->n_changed, ss.deleted = s->n_deleted;
  ss.more = s->has_more && s->more;
  ss.err = sync_keep_ids(s, ss.full);
}

static void ack_on_resp(struct bench_conn *c, int slot, const Mbx__Response *resp,
                        uint64_t sent_ns, uint64_t now_ns)
{
  (void)c, (void)slot, (void)sent_ns, (void)now_ns;
  ss.acks++;
  if (resp->error) {
    ss.ack_errors++;
    note_error(resp);
  }
}

static bool sync_is_done(void *arg) { (void)arg; return ss.done; }

struct acks_wait {
  unsigned want;
  struct bench_conn *a, *b;
};

static bool acks_done(void *arg)
{
  struct acks_wait *w = arg;
  return ss.acks >= w->want || w->a->closed || w->b->closed;
}

/* Sends one sync request on c from ss.state and waits for it (timed by the
 * callback: request handed to the stream → response decoded). */
static int sync_once(struct bench_conn *c, uint64_t folder_id, uint32_t max_changes)
{
  Mbx__Request req;
  Mbx__SyncReq sr;
  mbx__request__init(&req);
  mbx__sync_req__init(&sr);
  sr.folder_id = folder_id;
  sr.has_state = 1;
  sr.state.data = ss.state;
  sr.state.len = ss.state_len;
  sr.has_max_changes = 1;
  sr.max_changes = max_changes;
  req.body_case = MBX__REQUEST__BODY_SYNC;
  req.sync = &sr;
  ss.done = false;
  c->on_resp = sync_on_resp;
  int rc = bench_conn_send(c, &req, 0, 0);
  if (rc == 0 && bench_run_until(&ctx, sync_is_done, NULL,
                                 bench_now_ns() + SETUP_TIMEOUT_MS * 1000000ull) < 0)
    rc = MBX_ETIMEDOUT;
  c->on_resp = NULL;
  if (rc == 0 && !ss.done)
    rc = MBX_ECLOSED;
  return rc < 0 ? rc : ss.err;
}

/* One round's changes: `nd` deliveries on the transport connection and `nf` flag
 * toggles on the second user connection, all acknowledged before returning. */
static int sync_make_changes(struct bench_conn *tc, struct bench_conn *fc, struct bench_msg *msg,
                             const char *to, unsigned nd, unsigned nf, uint64_t *cursor,
                             uint64_t *stamp)
{
  Mbx__Request dreq, freq;
  Mbx__DeliverReq dr;
  Mbx__SetFlagsReq fr;
  mbx__request__init(&dreq);
  mbx__deliver_req__init(&dr);
  dr.to = (char *)to;
  dr.body.data = msg->data;
  dr.body.len = msg->len;
  dreq.body_case = MBX__REQUEST__BODY_DELIVER;
  dreq.deliver = &dr;
  mbx__request__init(&freq);
  mbx__set_flags_req__init(&fr);
  freq.body_case = MBX__REQUEST__BODY_SET_FLAGS;
  freq.set_flags = &fr;
  ss.acks = ss.ack_errors = 0;
  tc->on_resp = ack_on_resp;
  fc->on_resp = ack_on_resp;
  int rc = 0;
  for (unsigned i = 0; i < nd && rc == 0; i++) {
    msg_stamp(msg, (*stamp)++);
    rc = bench_conn_send(tc, &dreq, 0, 0);
  }
  for (unsigned i = 0; i < nf && rc == 0; i++) {
    /* distinct items within a round, each toggled so that it really changes */
    size_t k = (size_t)((*cursor)++ % ss.nids);
    fr.item_id = ss.ids[k];
    fr.has_add = fr.has_remove = 1;
    fr.add = ss.flagged[k] ? 0 : MBX__ITEM_FLAG__FLAG_FLAGGED;
    fr.remove = ss.flagged[k] ? MBX__ITEM_FLAG__FLAG_FLAGGED : 0;
    ss.flagged[k] = !ss.flagged[k];
    rc = bench_conn_send(fc, &freq, 0, 0);
  }
  struct acks_wait w = {nd + nf, tc, fc};
  if (rc == 0 && bench_run_until(&ctx, acks_done, &w,
                                 bench_now_ns() + SETUP_TIMEOUT_MS * 1000000ull) < 0)
    rc = MBX_ETIMEDOUT;
  tc->on_resp = fc->on_resp = NULL;
  if (rc == 0 && (ss.acks < nd + nf || ss.ack_errors))
    rc = ss.ack_errors ? MBX_EIO : MBX_ECLOSED;
  if (rc < 0)
    fprintf(stderr, "mbx-bench: making changes: %s %s\n", mbx_strerror(rc), first_error);
  return rc;
}

/* The figures of sync mode. */
struct sync_figures {
  struct bench_hist hist;             /* incremental sync round trips */
  uint64_t count;                     /* items in the folder */
  uint64_t fill_msgs, fill_ns, full_ns;
  unsigned pages, rounds, verify_failures, nd, nf;
};

static struct sync_figures sf;

/* Fills the folder up to --items with many transport connections (untimed). */
static int sync_fill(const char *addr, size_t size, struct bench_conn *uc, uint64_t *inbox)
{
  if (sf.count >= opts.items)
    return 0;
  if (!opts.json)
    fprintf(stderr, "mbx-bench: filling %s with %" PRIu64 " messages of %zu bytes\n", addr,
            opts.items - sf.count, size);
  int rc = deliver_load(opts.clients, opts.items - sf.count, 0, size, &addr, 1);
  sf.fill_ns = drun.last_ns - drun.start_ns;
  sf.fill_msgs = drun.ok;
  if (rc == 0 && drun.errors) {
    fprintf(stderr, "mbx-bench: filling: %" PRIu64 " errors: %s\n", drun.errors, first_error);
    rc = MBX_EIO;
  }
  return rc < 0 ? rc : find_inbox(uc, inbox, &sf.count);
}

/* Full sync to get a state, pages of 1000 (bounded); checks it saw every item. */
static int sync_full(struct bench_conn *uc, uint64_t inbox)
{
  uint64_t t0 = bench_now_ns();
  int rc = 0;
  ss.full = true;
  for (sf.pages = 1; sf.pages <= 100000; sf.pages++) {
    rc = sync_once(uc, inbox, 1000);
    if (rc < 0 || !ss.more)
      break;
  }
  ss.full = false;
  sf.full_ns = bench_now_ns() - t0;
  if (rc == 0 && ss.nids != sf.count) {
    fprintf(stderr, "mbx-bench: full sync returned %zu items, the folder says %" PRIu64 "\n",
            ss.nids, sf.count);
    rc = MBX_EPROTO;
  }
  return rc;
}

/* The timed part: changes made and acknowledged, then one incremental sync on the
 * established connection, whose result must be exactly those changes. */
static int sync_rounds(struct bench_conn *uc, struct bench_conn *fc, struct bench_conn *tc,
                       uint64_t inbox, const char *addr, struct bench_msg *msg)
{
  sf.nd = (opts.changes + 1) / 2, sf.nf = opts.changes - sf.nd;
  uint64_t cursor = 0, stamp = (uint64_t)time(NULL) * 1000;
  int rc = 0;
  for (sf.rounds = 0; sf.rounds < opts.rounds; sf.rounds++) {
    rc = sync_make_changes(tc, fc, msg, addr, sf.nd, sf.nf, &cursor, &stamp);
    if (rc == 0)
      rc = sync_once(uc, inbox, 1000);
    if (rc < 0)
      break;
    bench_hist_add(&sf.hist, ss.elapsed_ns);
    if (ss.added != sf.nd || ss.changed != sf.nf || ss.deleted || ss.more) {
      if (!sf.verify_failures)
        fprintf(stderr,
                "mbx-bench: round %u: sync returned %zu added, %zu changed, %zu deleted%s; "
                "expected %u added, %u changed\n",
                sf.rounds, ss.added, ss.changed, ss.deleted, ss.more ? " (more)" : "", sf.nd,
                sf.nf);
      sf.verify_failures++;
    }
  }
  return rc;
}

static void sync_report(void)
{
  double fill_rate = sf.fill_ns ? (double)sf.fill_msgs / ((double)sf.fill_ns / 1e9) : 0;
  if (opts.json) {
    printf("{\"mode\":\"sync\",\"items\":%" PRIu64 ",\"changes\":%u,\"rounds\":%u,"
           "\"verify_failures\":%u,\"full_sync_ms\":%.1f,\"full_sync_pages\":%u,"
           "\"fill_msgs\":%" PRIu64 ",\"fill_msgs_per_s\":%.1f",
           sf.count, opts.changes, sf.rounds, sf.verify_failures, ns_ms(sf.full_ns), sf.pages,
           sf.fill_msgs, fill_rate);
    print_latency_json("sync_", &sf.hist);
    printf("}\n");
    return;
  }
  printf("sync: folder of %" PRIu64 " items, %u changes per round (%u deliveries, %u flag "
         "changes), %u rounds\n",
         sf.count, opts.changes, sf.nd, sf.nf, sf.rounds);
  if (sf.fill_msgs)
    printf("  fill       %" PRIu64 " messages at %.1f msgs/s\n", sf.fill_msgs, fill_rate);
  printf("  full sync  %.1f ms in %u pages of 1000\n", ns_ms(sf.full_ns), sf.pages);
  print_latency_text("incr sync", &sf.hist);
  printf("  verified   %u of %u rounds returned exactly the changes made\n",
         sf.rounds - sf.verify_failures, sf.rounds);
}

static int mode_sync(void)
{
  const char *addr = opts.naddrs ? opts.addrs[0] : "bench-sync@example.com";
  size_t size = opts.size_given ? opts.size : 1024;
  bench_hist_init(&sf.hist);
  int rc = create_mailboxes(&addr, 1);
  if (rc < 0)
    return rc;
  /* uc[0] times the syncs, uc[1] changes flags, both as the user; tc[0] delivers */
  struct bench_conn **uc = NULL, **tc = NULL;
  const char *addrs2[2] = {addr, addr};
  uint64_t inbox = 0;
  struct bench_msg msg = {0};
  if (bench_conns_open(&ctx, 2, false, BENCH_MAX_DEPTH, 4096, SETUP_TIMEOUT_MS, &uc) < 2)
    rc = MBX_ECONN;
  if (rc == 0)
    rc = login_all(uc, 2, addrs2, 2);
  if (rc == 0)
    rc = find_inbox(uc[0], &inbox, &sf.count);
  if (rc == 0)
    rc = sync_fill(addr, size, uc[0], &inbox);
  if (rc == 0)
    rc = sync_full(uc[0], inbox);
  if (rc == 0 && bench_conns_open(&ctx, 1, true, BENCH_MAX_DEPTH, size + 1024, SETUP_TIMEOUT_MS,
                                  &tc) < 1)
    rc = MBX_ECONN;
  if (rc == 0)
    rc = msg_build(&msg, size, addr, 9999);
  if (rc == 0)
    rc = sync_rounds(uc[0], uc[1], tc[0], inbox, addr, &msg);
  if (rc < 0)
    fprintf(stderr, "mbx-bench: sync: %s %s %s\n", mbx_strerror(rc), first_error,
            ctx.last_close_error);
  bench_conns_close(&ctx, &uc, 2);
  bench_conns_close(&ctx, &tc, 1);
  free(msg.data);
  if (rc < 0)
    return rc;
  sync_report();
  return sf.verify_failures ? MBX_EPROTO : 0;
}

/* ==== notify mode ======================================================================= */

/* Push notification latency: --subscribers user connections each subscribe to the
 * Inbox of one bench mailbox (subscriber i → mailbox i mod K; --mailboxes 1 puts them
 * all on one), while --clients transport connections deliver to those mailboxes at
 * --rate messages/s. Two figures: commit → notified (Notification.commit_time_us to
 * its arrival, same host clock) over every notification, and deliver sent →
 * notified over every delivery (timed on the first subscriber of its mailbox, by the
 * Inbox cn the deliver's answer names). */

#define NOTIFY_PEND_MAX 8192
#define NOTIFY_RING 512

struct notify_mbox {
  uint64_t notified_cn;               /* highest Inbox cn its first subscriber was told */
  struct { uint64_t cn, ns; } ring[NOTIFY_RING];  /* that subscriber's recent notifications */
  unsigned ring_head, ring_n;
  struct { uint64_t cn, sent_ns; } *pend;         /* delivered, not yet notified */
  unsigned npend;
};

struct notify_sub {
  unsigned mbox;
  uint64_t inbox;
  bool primary, subscribed;
  Mbx__Request req;
  Mbx__SubscribeReq sreq;
};

struct notify_run {
  struct bench_hist from_commit, from_send;
  uint64_t notes, keepalives, deliveries, missed, late, errors;
  struct notify_mbox *mb;
  unsigned nmb;
  struct notify_sub *subs;
  unsigned nsubs;
};

static struct notify_run nrun;

/* The first subscriber of mailbox m was told of Inbox cn `cn` at now_ns. */
static void notify_told(struct notify_mbox *m, uint64_t cn, uint64_t now_ns)
{
  unsigned at = (m->ring_head + m->ring_n) % NOTIFY_RING;
  if (m->ring_n == NOTIFY_RING)
    m->ring_head = (m->ring_head + 1) % NOTIFY_RING;
  else
    m->ring_n++;
  m->ring[at].cn = cn;
  m->ring[at].ns = now_ns;
  for (unsigned i = 0; i < m->npend;) {
    if (m->pend[i].cn <= cn) {
      bench_hist_add(&nrun.from_send, now_ns - m->pend[i].sent_ns);
      m->pend[i] = m->pend[--m->npend];
    } else {
      i++;
    }
  }
  if (cn > m->notified_cn)
    m->notified_cn = cn;
}

static void notify_on_deliver(uint64_t to, const Mbx__Response *resp, uint64_t sent_ns,
                              uint64_t now_ns)
{
  if (to >= nrun.nmb || resp->body_case != MBX__RESPONSE__BODY_ITEM || !resp->item->item)
    return;
  struct notify_mbox *m = &nrun.mb[to];
  uint64_t cn = resp->item->item->cn;
  nrun.deliveries++;
  if (cn <= m->notified_cn) {
    /* told before the answer came: the first notification that covered it */
    for (unsigned i = 0; i < m->ring_n; i++) {
      unsigned k = (m->ring_head + i) % NOTIFY_RING;
      if (m->ring[k].cn >= cn) {
        bench_hist_add(&nrun.from_send, m->ring[k].ns > sent_ns ? m->ring[k].ns - sent_ns : 0);
        return;
      }
    }
    bench_hist_add(&nrun.from_send, now_ns - sent_ns); /* forgotten: an upper bound */
    return;
  }
  if (m->npend == NOTIFY_PEND_MAX) {
    nrun.late++;
    return;
  }
  m->pend[m->npend].cn = cn;
  m->pend[m->npend++].sent_ns = sent_ns;
}

static void notify_on_resp(struct bench_conn *c, int slot, const Mbx__Response *resp,
                           uint64_t sent_ns, uint64_t now_ns)
{
  struct notify_sub *ns = c->user;
  (void)slot, (void)sent_ns;
  const Mbx__Notification *no = resp->notification;
  if (resp->error || !no) {
    nrun.errors++;
    note_error(resp);
    return;
  }
  uint64_t cn = 0;
  for (size_t i = 0; i < no->n_folders; i++)
    if (no->folders[i]->folder_id == ns->inbox)
      cn = no->folders[i]->last_cn;
  if (no->subscribed) {
    ns->subscribed = true;
    if (ns->primary)
      nrun.mb[ns->mbox].notified_cn = cn;
    return;
  }
  if (!no->n_folders && !no->hierarchy_changed) {
    nrun.keepalives++;
    return;
  }
  nrun.notes++;
  if (no->has_commit_time_us) {
    int64_t d = mbx_now_us() - no->commit_time_us;
    bench_hist_add(&nrun.from_commit, d > 0 ? (uint64_t)d * 1000 : 0);
  }
  if (ns->primary && cn)
    notify_told(&nrun.mb[ns->mbox], cn, now_ns);
}

static bool notify_all_subscribed(void *arg)
{
  struct bench_conn **conns = arg;
  for (unsigned i = 0; i < nrun.nsubs; i++)
    if (!nrun.subs[i].subscribed && !conns[i]->closed && conns[i]->outstanding)
      return false;
  return true;
}

static bool notify_caught_up(void *arg)
{
  (void)arg;
  for (unsigned i = 0; i < nrun.nmb; i++)
    if (nrun.mb[i].npend)
      return false;
  return true;
}

/* Subscribes every connection to its mailbox's Inbox and waits for the answers. */
static int notify_subscribe_all(struct bench_conn **conns, unsigned n)
{
  for (unsigned i = 0; i < n; i++) {
    struct notify_sub *ns = &nrun.subs[i];
    int rc = find_inbox(conns[i], &ns->inbox, NULL);
    if (rc < 0)
      return rc;
    mbx__request__init(&ns->req);
    mbx__subscribe_req__init(&ns->sreq);
    ns->sreq.folder_ids = &ns->inbox;
    ns->sreq.n_folder_ids = 1;
    ns->req.body_case = MBX__REQUEST__BODY_SUBSCRIBE;
    ns->req.subscribe = &ns->sreq;
    conns[i]->user = ns;
    conns[i]->on_resp = notify_on_resp;
    if ((rc = bench_conn_send_stream(conns[i], &ns->req, 0, 0)) < 0)
      return rc;
  }
  if (bench_run_until(&ctx, notify_all_subscribed, conns,
                      bench_now_ns() + SETUP_TIMEOUT_MS * 1000000ull) < 0)
    return MBX_ETIMEDOUT;
  for (unsigned i = 0; i < n; i++)
    if (!nrun.subs[i].subscribed) {
      fprintf(stderr, "mbx-bench: subscription %u refused: %s\n", i, first_error);
      return MBX_EPROTO;
    }
  return 0;
}

static void notify_report(unsigned nto, double secs)
{
  struct notify_run *r = &nrun;
  if (opts.json) {
    printf("{\"mode\":\"notify\",\"subscribers\":%u,\"mailboxes\":%u,\"clients\":%u,"
           "\"rate\":%" PRIu64 ",\"size\":%u,\"seconds\":%.3f,\"deliveries\":%" PRIu64
           ",\"notifications\":%" PRIu64 ",\"keepalives\":%" PRIu64 ",\"missed\":%" PRIu64
           ",\"errors\":%" PRIu64,
           r->nsubs, nto, opts.clients, opts.rate, opts.size, secs, r->deliveries, r->notes,
           r->keepalives, r->missed, r->errors + drun.errors);
    print_latency_json("commit_", &r->from_commit);
    print_latency_json("send_", &r->from_send);
    printf("}\n");
    return;
  }
  printf("notify: %u subscribers on %u mailboxes; %u transport connections at %" PRIu64
         " msgs/s, %u-byte messages, %.1f s\n",
         r->nsubs, nto, opts.clients, opts.rate, opts.size, secs);
  printf("  deliveries %" PRIu64 ", notifications %" PRIu64 " (+%" PRIu64
         " keepalives), missed %" PRIu64 ", errors %" PRIu64 "\n",
         r->deliveries, r->notes, r->keepalives, r->missed, r->errors + drun.errors);
  printf("  latency to arrival: from the commit (commit_time_us), from the deliver sent\n");
  print_latency_text("commit", &r->from_commit);
  print_latency_text("sent", &r->from_send);
}

static int mode_notify(void)
{
  int rc = prepare_recipients();
  if (rc < 0)
    return rc;
  struct notify_run *r = &nrun;
  memset(r, 0, sizeof(*r));
  bench_hist_init(&r->from_commit);
  bench_hist_init(&r->from_send);
  unsigned n = opts.subscribers;
  unsigned nto = opts.naddrs < n ? opts.naddrs : n; /* deliver only where someone listens */
  r->nsubs = n;
  r->nmb = nto;
  r->subs = calloc(n, sizeof(*r->subs));
  r->mb = calloc(nto, sizeof(*r->mb));
  for (unsigned i = 0; r->mb && i < nto; i++)
    if (!(r->mb[i].pend = calloc(NOTIFY_PEND_MAX, sizeof(*r->mb[i].pend))))
      rc = MBX_ENOMEM;
  if (!r->subs || !r->mb)
    rc = MBX_ENOMEM;
  struct bench_conn **conns = NULL;
  if (rc == 0 && bench_conns_open(&ctx, n, false, 2, 4096, SETUP_TIMEOUT_MS, &conns) < (int)n) {
    fprintf(stderr, "mbx-bench: subscriber connections: %s\n", ctx.last_close_error);
    rc = MBX_ECONN;
  }
  for (unsigned i = 0; rc == 0 && i < n; i++) {
    r->subs[i].mbox = i % nto;
    r->subs[i].primary = i < nto;
  }
  if (rc == 0)
    rc = login_all(conns, n, opts.addrs, nto);
  if (rc == 0)
    rc = notify_subscribe_all(conns, n);
  double secs = 0;
  if (rc == 0) {
    deliver_hook = notify_on_deliver;
    rc = deliver_load(opts.clients, opts.messages, opts.seconds, opts.size, opts.addrs, nto);
    deliver_hook = NULL;
    secs = (double)(drun.last_ns - drun.start_ns) / 1e9;
    /* what is still in flight gets 2 s; anything not told by then was missed */
    bench_run_until(&ctx, notify_caught_up, NULL, bench_now_ns() + 2000000000ull);
    for (unsigned i = 0; i < nto; i++)
      r->missed += r->mb[i].npend;
    r->missed += r->late;
  }
  if (conns) {
    for (unsigned i = 0; i < n; i++)
      conns[i]->on_resp = NULL;
    bench_conns_close(&ctx, &conns, n);
  }
  for (unsigned i = 0; r->mb && i < nto; i++)
    free(r->mb[i].pend);
  free(r->mb);
  free(r->subs);
  if (rc < 0 && rc != MBX_ETIMEDOUT) {
    fprintf(stderr, "mbx-bench: notify: %s %s\n", mbx_strerror(rc), first_error);
    return rc;
  }
  notify_report(nto, secs);
  return rc < 0 ? rc : r->missed || r->errors || drun.errors ? MBX_EIO : 0;
}

/* ==== main ================================================================================ */

static void usage(FILE *f)
{
  fprintf(f,
          "usage: mbx-bench deliver|mixed|sync|notify [options]\n"
          "  --server H:P        node (default $MBX_SERVER, first entry)\n"
          "  --ca F              CA certificate (default $MBX_CA)\n"
          "  --cert F --key F    operator/transport client certificate (default $MBX_CERT,\n"
          "                      $MBX_KEY)\n"
          "  --clients N         concurrent connections (64)\n"
          "  --depth D           outstanding requests per connection (1, at most %d)\n"
          "  --messages M        requests in total (100000) | --seconds S: run for S seconds\n"
          "  --size B            message bytes (4096; sync fill: 1024)\n"
          "  --payload text|random  body filler: random words (text, like prose) or\n"
          "                      base64 of random bytes (like an attachment)\n"
          "  --to A[,A…]         deliver to these addresses | --mailboxes K: create\n"
          "                      bench-0..K-1@example.com (16) in --db (db1)\n"
          "  --read-ratio R      mixed: share of list/get/sync (0.8)\n"
          "  --items N --changes C --rounds R   sync: folder size (100000), changes per\n"
          "                      round (10), rounds (50)\n"
          "  --timeout S         give up on a run after S seconds (600)\n"
          "  --rate N            deliver: at most N messages/s over all connections (a\n"
          "                      steady load; default: as fast as the node answers)\n"
          "  --subscribers N     notify: user connections subscribed to the Inboxes of the\n"
          "                      bench mailboxes, subscriber i to mailbox i mod K (16);\n"
          "                      notify defaults: --clients 4 --rate 200 --seconds 10\n"
          "  --json              one JSON object on stdout\n"
          "Mailbox password: $MBX_BENCH_PASSWORD (default \"%s\").\n",
          BENCH_MAX_DEPTH, BENCH_DEFAULT_PASSWORD);
}

static int parse_uint(const char *s, uint64_t max, uint64_t *v_r)
{
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  if (!*s || *end || v > max || *s == '-')
    return MBX_EINVAL;
  *v_r = v;
  return 0;
}

static int parse_args(int argc, char **argv)
{
  static const struct option longopts[] = {
      {"server", 1, 0, 's'},   {"ca", 1, 0, 'a'},       {"cert", 1, 0, 'c'},
      {"key", 1, 0, 'k'},      {"clients", 1, 0, 'n'},  {"messages", 1, 0, 'm'},
      {"seconds", 1, 0, 'S'},  {"size", 1, 0, 'z'},     {"to", 1, 0, 't'},
      {"mailboxes", 1, 0, 'M'}, {"db", 1, 0, 'd'},      {"json", 0, 0, 'j'},
      {"depth", 1, 0, 'D'},    {"read-ratio", 1, 0, 'r'}, {"items", 1, 0, 'i'},
      {"changes", 1, 0, 'C'},  {"rounds", 1, 0, 'R'},   {"timeout", 1, 0, 'T'},
      {"payload", 1, 0, 'P'},  {"rate", 1, 0, 'G'},     {"help", 0, 0, 'h'},
      {"subscribers", 1, 0, 'B'},
      {0, 0, 0, 0}};
  if (argc < 2) {
    usage(stderr);
    return MBX_EINVAL;
  }
  const char *m = argv[1];
  if (!strcmp(m, "deliver"))
    opts.mode = MODE_DELIVER;
  else if (!strcmp(m, "mixed"))
    opts.mode = MODE_MIXED;
  else if (!strcmp(m, "sync"))
    opts.mode = MODE_SYNC;
  else if (!strcmp(m, "notify"))
    opts.mode = MODE_NOTIFY;
  else if (!strcmp(m, "selftest"))
    opts.mode = MODE_SELFTEST;
  else if (!strcmp(m, "--help") || !strcmp(m, "-h")) {
    usage(stdout);
    exit(0);
  } else {
    fprintf(stderr, "mbx-bench: unknown mode '%s' (deliver, mixed, sync, notify)\n", m);
    return MBX_EINVAL;
  }
  opts.server = getenv("MBX_SERVER");
  opts.ca = getenv("MBX_CA");
  opts.cert = getenv("MBX_CERT");
  opts.key = getenv("MBX_KEY");
  opts.password = getenv("MBX_BENCH_PASSWORD");
  if (!opts.password || !*opts.password)
    opts.password = BENCH_DEFAULT_PASSWORD;
  opts.db = "db1";
  opts.clients = 64, opts.depth = 1, opts.mailboxes = 16, opts.size = 4096;
  opts.messages = 100000, opts.read_ratio = 0.8;
  opts.items = 100000, opts.changes = 10, opts.rounds = 50, opts.timeout_s = 600;
  opts.subscribers = 16;
  optind = 2;
  int ch;
  uint64_t v;
  double d;
  char *end;
  while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    int rc = 0;
    switch (ch) {
    case 's': opts.server = optarg; break;
    case 'a': opts.ca = optarg; break;
    case 'c': opts.cert = optarg; break;
    case 'k': opts.key = optarg; break;
    case 'd': opts.db = optarg; break;
    case 'P':
      if (!strcmp(optarg, "text"))
        payload_random = 0;
      else if (!strcmp(optarg, "random"))
        payload_random = 1;
      else
        rc = MBX_EINVAL;
      break;
    case 'j': opts.json = true; break;
    case 't': opts.to_list = optarg; break;
    case 'n':
      rc = parse_uint(optarg, BENCH_MAX_CLIENTS, &v);
      opts.clients = (unsigned)v, opts.clients_given = true;
      break;
    case 'B': rc = parse_uint(optarg, BENCH_MAX_CLIENTS, &v); opts.subscribers = (unsigned)v; break;
    case 'D': rc = parse_uint(optarg, BENCH_MAX_DEPTH, &v); opts.depth = (unsigned)v; break;
    case 'M': rc = parse_uint(optarg, BENCH_MAX_ADDRS, &v); opts.mailboxes = (unsigned)v; break;
    case 'z':
      rc = parse_uint(optarg, 64u << 20, &v);
      opts.size = (unsigned)v, opts.size_given = true;
      break;
    case 'm':
      rc = parse_uint(optarg, UINT64_MAX / 2, &v);
      opts.messages = v, opts.messages_given = true;
      break;
    case 'i': rc = parse_uint(optarg, 100000000, &v); opts.items = v; break;
    case 'C': rc = parse_uint(optarg, BENCH_MAX_DEPTH, &v); opts.changes = (unsigned)v; break;
    case 'R': rc = parse_uint(optarg, 1000000, &v); opts.rounds = (unsigned)v; break;
    case 'T': rc = parse_uint(optarg, 86400, &v); opts.timeout_s = (unsigned)v; break;
    case 'G': rc = parse_uint(optarg, 10000000, &v); opts.rate = v, opts.rate_given = true; break;
    case 'S':
      d = strtod(optarg, &end);
      rc = *end || !(d > 0 && d <= 86400) ? MBX_EINVAL : 0;
      opts.seconds = d, opts.seconds_given = true;
      break;
    case 'r':
      d = strtod(optarg, &end);
      rc = *end || !(d >= 0 && d <= 1) ? MBX_EINVAL : 0;
      opts.read_ratio = d;
      break;
    case 'h': usage(stdout); exit(0);
    default: usage(stderr); return MBX_EINVAL;
    }
    if (rc < 0) {
      fprintf(stderr, "mbx-bench: bad value '%s' for %s\n", optarg, argv[optind - 1]);
      return rc;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "mbx-bench: unexpected argument '%s'\n", argv[optind]);
    return MBX_EINVAL;
  }
  if (opts.mode == MODE_SELFTEST)
    return 0;
  if (opts.mode == MODE_NOTIFY) {
    /* a steady, moderate load: latency, not throughput, is measured */
    if (!opts.clients_given)
      opts.clients = 4;
    if (!opts.rate_given)
      opts.rate = 200;
    if (!opts.seconds_given && !opts.messages_given)
      opts.seconds = 10;
    if (!opts.subscribers) {
      fprintf(stderr, "mbx-bench: --subscribers must be at least 1\n");
      return MBX_EINVAL;
    }
  }
  if (opts.seconds > 0 && !opts.messages_given)
    opts.messages = 0;
  if (opts.seconds > 0 && opts.messages_given) {
    fprintf(stderr, "mbx-bench: --messages and --seconds exclude each other\n");
    return MBX_EINVAL;
  }
  if (!opts.clients || !opts.depth || (!opts.mailboxes && !opts.to_list) || !opts.changes ||
      (!opts.messages && opts.seconds <= 0)) {
    fprintf(stderr, "mbx-bench: --clients, --depth, --mailboxes, --messages and --changes must "
                    "be at least 1\n");
    return MBX_EINVAL;
  }
  if (!opts.server || !opts.ca) {
    fprintf(stderr, "mbx-bench: --server and --ca are required (or MBX_SERVER, MBX_CA)\n");
    return MBX_EINVAL;
  }
  if (!opts.cert || !opts.key) {
    fprintf(stderr, "mbx-bench: --cert and --key (an OU=operator or OU=transport client "
                    "certificate) are required\n");
    return MBX_EINVAL;
  }
  if (opts.to_list) {
    opts.to_list = strdup(opts.to_list);
    for (char *save = NULL, *a = strtok_r(opts.to_list, ",", &save); a;
         a = strtok_r(NULL, ",", &save)) {
      if (opts.naddrs == BENCH_MAX_ADDRS) {
        fprintf(stderr, "mbx-bench: at most %d addresses in --to\n", BENCH_MAX_ADDRS);
        return MBX_EINVAL;
      }
      opts.addrs[opts.naddrs++] = a;
    }
  }
  return 0;
}

/* "host:port", "[v6]:port"; the first of a comma-separated list. */
static int parse_server(const char *s, char *host, size_t host_cap, uint16_t *port_r)
{
  size_t len = strcspn(s, ",");
  const char *colon = NULL;
  for (size_t i = 0; i < len; i++)
    if (s[i] == ':')
      colon = s + i;
  if (!colon || colon == s)
    return MBX_EINVAL;
  const char *h = s;
  size_t hlen = (size_t)(colon - s);
  if (*h == '[' && hlen >= 2 && h[hlen - 1] == ']')
    h++, hlen -= 2;
  if (hlen >= host_cap)
    return MBX_EINVAL;
  memcpy(host, h, hlen);
  host[hlen] = 0;
  char portbuf[8];
  size_t plen = len - (size_t)(colon + 1 - s);
  if (!plen || plen >= sizeof(portbuf))
    return MBX_EINVAL;
  memcpy(portbuf, colon + 1, plen);
  portbuf[plen] = 0;
  uint64_t p;
  if (parse_uint(portbuf, 65535, &p) < 0 || !p)
    return MBX_EINVAL;
  *port_r = (uint16_t)p;
  return 0;
}

int main(int argc, char **argv)
{
  if (parse_args(argc, argv) < 0)
    return 2;
  if (opts.mode == MODE_SELFTEST) {
    int rc = bench_hist_selftest();
    printf("histogram selftest: %s\n", rc == 0 ? "ok" : "FAILED");
    return rc == 0 ? 0 : 1;
  }
  mbx_log_init("mbx-bench", NULL, MBX_LOG_WARNING);
  static char host[256];
  if (parse_server(opts.server, host, sizeof(host), &ctx.port) < 0) {
    fprintf(stderr, "mbx-bench: bad --server '%s' (want HOST:PORT)\n", opts.server);
    return 2;
  }
  ctx.host = host;
  const char *err = NULL;
  if (mbx_tls_ctx_new_client(opts.ca, opts.cert, opts.key, &ctx.tls, &err) < 0 ||
      mbx_tls_ctx_new_client(opts.ca, NULL, NULL, &ctx.tls_user, &err) < 0) {
    fprintf(stderr, "mbx-bench: TLS setup: %s\n", err ? err : "failed");
    return 2;
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  ctx.loop = &loop;
  int rc = opts.mode == MODE_DELIVER ? mode_deliver()
           : opts.mode == MODE_MIXED ? mode_mixed()
           : opts.mode == MODE_NOTIFY ? mode_notify()
                                      : mode_sync();
  mbx_tls_ctx_free(&ctx.tls);
  mbx_tls_ctx_free(&ctx.tls_user);
  /* anything left (a stream that never closed) is reported, not waited for forever */
  uv_run(&loop, UV_RUN_NOWAIT);
  if (uv_loop_close(&loop) != 0 && !opts.json)
    fprintf(stderr, "mbx-bench: some handles were still open at exit\n");
  if (!opts.to_list) /* then the addresses were made by addr_for() */
    for (unsigned i = 0; i < opts.naddrs; i++)
      free((char *)opts.addrs[i]);
  free(opts.to_list);
  if (rc < 0 && !opts.json)
    fprintf(stderr, "mbx-bench: %s\n", mbx_strerror(rc));
  return rc < 0 ? 1 : 0;
}

/* bench.h — internals shared by the files of mbx-bench: the latency histogram
 * (bench_hist.c) and the pipelined TLS connections on one libuv loop (bench_conn.c).
 * One thread owns everything; nothing here is thread-safe. */
#ifndef MBX_BENCH_H
#define MBX_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "client.pb-c.h"
#include "stream.h"

/* ---- clock ---------------------------------------------------------------- */

/* CLOCK_MONOTONIC in nanoseconds: the incremental sync target is 1 ms, so
 * microseconds would be too coarse for its percentiles. */
uint64_t bench_now_ns(void);

/* ---- histogram ------------------------------------------------------------ */

/* HDR-like log-bucket histogram of nanosecond values: exact below 256 ns, then
 * 128 sub-buckets per power of two, so any reported value is within 1/256 (<0.4%)
 * of the true one. Fixed size, no allocation after init. */
#define BENCH_HIST_SUB 128
#define BENCH_HIST_BUCKETS (BENCH_HIST_SUB * 58)

struct bench_hist {
  uint64_t count;
  uint64_t min_ns, max_ns;
  double sum_ns;
  uint64_t buckets[BENCH_HIST_BUCKETS];
};

void bench_hist_init(struct bench_hist *h);
void bench_hist_add(struct bench_hist *h, uint64_t ns);
/* Value at quantile q (0..1), in ns; 0 if empty. q = 1 gives the exact max. */
uint64_t bench_hist_quantile(const struct bench_hist *h, double q);
void bench_hist_merge(struct bench_hist *into, const struct bench_hist *from);
/* Checks the error bound against exact sorted values; 0 or -1 (prints why). */
int bench_hist_selftest(void);

/* ---- scratch allocator ----------------------------------------------------- */

/* protobuf-c allocator for decoding one response at a time: bumps through a
 * preallocated block that bench_scratch_reset() rewinds, falling back to malloc for
 * what does not fit (a full sync page), so the hot path does not hit malloc. */
extern ProtobufCAllocator bench_scratch;
void bench_scratch_reset(void);

/* ---- connections ----------------------------------------------------------- */

#define BENCH_MAX_DEPTH 64

struct bench_conn;

/* Called for each response, decoded with bench_scratch (valid during the call only).
 * slot: the pipeline slot the request used; sent_ns: when it was sent. */
typedef void (*bench_resp_cb)(struct bench_conn *c, int slot, const Mbx__Response *resp,
                              uint64_t sent_ns, uint64_t now_ns);

struct bench_slot {
  uint64_t id;                        /* 0 = free */
  uint64_t sent_ns;
  uint32_t kind;                      /* caller's tag (operation type) */
  uint64_t arg;                       /* caller's value (e.g. item id) */
  bool stream;                        /* stays open for more responses (subscriptions) */
};

struct bench_conn {
  struct bench_ctx *ctx;
  struct mbx_stream *s;               /* NULL once closed */
  unsigned index;
  bool ready, closed;
  int close_status;
  unsigned depth, outstanding;
  uint64_t next_seq;
  struct bench_slot slots[BENCH_MAX_DEPTH];
  bench_resp_cb on_resp;              /* NULL: keep a copy in `resp` (setup calls) */
  Mbx__Response *resp;                /* setup calls: last response (malloc'd) */
  bool waiting;                       /* setup calls: a response is awaited */
  uint8_t *pack_buf;                  /* preallocated request encoding buffer */
  size_t pack_cap;
  void *user;                         /* mode's per-connection state */
};

struct bench_ctx {
  uv_loop_t *loop;
  const char *host;
  uint16_t port;
  struct mbx_tls_ctx *tls;            /* with the operator/transport certificate */
  struct mbx_tls_ctx *tls_user;       /* without a client certificate (user logins) */
  uint64_t conn_failures;
  char last_close_error[160];
};

/* Opens n connections (TLS with a certificate if with_cert) and runs the loop until
 * all are ready or timeout_ms passed. conns_r: array of n pointers. Returns the
 * number that became ready (the others are closed and counted as failures). */
int bench_conns_open(struct bench_ctx *ctx, unsigned n, bool with_cert, unsigned depth,
                     size_t pack_cap, uint32_t timeout_ms, struct bench_conn ***conns_r);
/* Closes and frees all (runs the loop until every on_close came, bounded). */
void bench_conns_close(struct bench_ctx *ctx, struct bench_conn ***conns, unsigned n);

/* Sends req (its id is set here) in a free pipeline slot. 0, MBX_EBUSY (no free
 * slot), MBX_ECLOSED, MBX_ENOMEM. */
int bench_conn_send(struct bench_conn *c, Mbx__Request *req, uint32_t kind, uint64_t arg);
/* The same for a request answered by a stream of responses (a SubscribeReq): its slot
 * stays taken, and every response goes to on_resp, until one carries an error. */
int bench_conn_send_stream(struct bench_conn *c, Mbx__Request *req, uint32_t kind, uint64_t arg);

/* Setup calls (not timed): sends req on each connection that has one (reqs[i] may
 * be NULL) and runs the loop until all answered or timeout. Afterwards
 * conns[i]->resp holds the response (or NULL: connection lost / timeout); free
 * with bench_resp_free. Returns 0 or MBX_ETIMEDOUT. */
int bench_call_all(struct bench_ctx *ctx, struct bench_conn **conns, unsigned n,
                   Mbx__Request **reqs, uint32_t timeout_ms);
/* One call on one connection; *resp_r NULL on failure. A response carrying an error
 * is returned as its code (negative), with *resp_r still set for the message. */
int bench_call(struct bench_ctx *ctx, struct bench_conn *c, Mbx__Request *req,
               uint32_t timeout_ms, Mbx__Response **resp_r);
void bench_resp_free(Mbx__Response **resp);
/* Code of a response's error (negative MBX_E…), or 0. */
int bench_resp_error(const Mbx__Response *resp);

/* Runs the loop until done(arg) is true or deadline (monotonic ns, 0 = none).
 * Returns 0 or MBX_ETIMEDOUT. */
int bench_run_until(struct bench_ctx *ctx, bool (*done)(void *arg), void *arg,
                    uint64_t deadline_ns);

#endif

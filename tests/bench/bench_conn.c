/* bench_conn.c — mbx-bench's connections: many mbx_streams (TLS 1.3, frames) on one
 * libuv loop, each with a fixed pipeline of request slots. Responses may come back
 * in any order; the request id names the slot. */
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "log.h"
#include "mbx_error.h"

#define BENCH_MAX_FRAME_BYTES (64u << 20)

/* id = seq * BENCH_MAX_DEPTH + slot, seq from 1, so 0 never names a request */
static unsigned id_slot(uint64_t id) { return (unsigned)(id % BENCH_MAX_DEPTH); }

/* ---- stream callbacks ------------------------------------------------------- */

static void conn_on_ready(struct mbx_stream *s, void *arg)
{
  struct bench_conn *c = arg;
  (void)s;
  c->ready = true;
}

static void conn_on_frame(struct mbx_stream *s, const uint8_t *frame, size_t len, void *arg)
{
  struct bench_conn *c = arg;
  uint64_t now = bench_now_ns();
  bench_scratch_reset();
  ProtobufCAllocator *alloc = c->on_resp ? &bench_scratch : NULL;
  Mbx__Response *resp = mbx__response__unpack(alloc, len, frame);
  if (!resp) {
    snprintf(c->ctx->last_close_error, sizeof(c->ctx->last_close_error),
             "conn %u: undecodable response (%zu bytes)", c->index, len);
    mbx_stream_close(s, MBX_EPROTO);
    return;
  }
  unsigned slot = id_slot(resp->id);
  if (slot >= c->depth || c->slots[slot].id != resp->id) {
    snprintf(c->ctx->last_close_error, sizeof(c->ctx->last_close_error),
             "conn %u: response to unknown request id %llu", c->index,
             (unsigned long long)resp->id);
    mbx__response__free_unpacked(resp, alloc);
    mbx_stream_close(s, MBX_EPROTO);
    return;
  }
  uint64_t sent = c->slots[slot].sent_ns;
  if (!c->slots[slot].stream || resp->error) {
    c->slots[slot].id = 0;
    c->outstanding--;
  }
  if (c->on_resp) {
    c->on_resp(c, (int)slot, resp, sent, now);
    mbx__response__free_unpacked(resp, alloc);
  } else {
    bench_resp_free(&c->resp);
    c->resp = resp;
    c->waiting = false;
  }
}

static void conn_on_frame_error(struct mbx_stream *s, int err, void *arg)
{
  struct bench_conn *c = arg;
  snprintf(c->ctx->last_close_error, sizeof(c->ctx->last_close_error),
           "conn %u: framing error: %s", c->index, mbx_strerror(err));
  mbx_stream_close(s, err);
}

static void conn_on_close(struct mbx_stream *s, int status, void *arg)
{
  struct bench_conn *c = arg;
  (void)s;
  c->s = NULL;
  c->closed = true;
  c->close_status = status;
  c->waiting = false;
  if (status != 0 && !c->ctx->last_close_error[0])
    snprintf(c->ctx->last_close_error, sizeof(c->ctx->last_close_error),
             "conn %u closed: %s", c->index, mbx_strerror(status));
}

static const struct mbx_stream_callbacks conn_callbacks = {
    .on_ready = conn_on_ready,
    .on_frame = conn_on_frame,
    .on_frame_error = conn_on_frame_error,
    .on_close = conn_on_close,
};

/* ---- loop driving ------------------------------------------------------------ */

static void tick_cb(uv_timer_t *t) { (void)t; }

int bench_run_until(struct bench_ctx *ctx, bool (*done)(void *arg), void *arg,
                    uint64_t deadline_ns)
{
  /* a periodic tick makes UV_RUN_ONCE return so the deadline is checked */
  uv_timer_t tick;
  uv_timer_init(ctx->loop, &tick);
  uv_timer_start(&tick, tick_cb, 20, 20);
  int rc = 0;
  while (!done(arg)) {
    if (deadline_ns && bench_now_ns() >= deadline_ns) {
      rc = MBX_ETIMEDOUT;
      break;
    }
    uv_run(ctx->loop, UV_RUN_ONCE);
  }
  uv_close((uv_handle_t *)&tick, NULL);
  uv_run(ctx->loop, UV_RUN_NOWAIT);   /* lets the close callback run */
  return rc;
}

/* ---- opening and closing ---------------------------------------------------- */

struct conns_arg {
  struct bench_conn **conns;
  unsigned n;
};

static bool all_ready_or_closed(void *arg)
{
  struct conns_arg *a = arg;
  for (unsigned i = 0; i < a->n; i++)
    if (!a->conns[i]->ready && !a->conns[i]->closed)
      return false;
  return true;
}

static bool all_closed(void *arg)
{
  struct conns_arg *a = arg;
  for (unsigned i = 0; i < a->n; i++)
    if (a->conns[i] && !a->conns[i]->closed)
      return false;
  return true;
}

int bench_conns_open(struct bench_ctx *ctx, unsigned n, bool with_cert, unsigned depth,
                     size_t pack_cap, uint32_t timeout_ms, struct bench_conn ***conns_r)
{
  struct bench_conn **conns = calloc(n, sizeof(*conns));
  if (!conns)
    return MBX_ENOMEM;
  struct mbx_stream_options opt = {
      .max_frame_bytes = BENCH_MAX_FRAME_BYTES,
      .handshake_timeout_ms = timeout_ms,
  };
  for (unsigned i = 0; i < n; i++) {
    struct bench_conn *c = calloc(1, sizeof(*c));
    if (!c || !(c->pack_buf = malloc(pack_cap))) {
      free(c);
      bench_conns_close(ctx, &conns, i);
      return MBX_ENOMEM;
    }
    c->ctx = ctx;
    c->index = i;
    c->depth = depth < 1 ? 1 : depth > BENCH_MAX_DEPTH ? BENCH_MAX_DEPTH : depth;
    c->pack_cap = pack_cap;
    conns[i] = c;
    int rc = mbx_stream_connect(ctx->loop, ctx->host, ctx->port,
                                with_cert ? ctx->tls : ctx->tls_user, &opt, &conn_callbacks,
                                c, &c->s);
    if (rc < 0) {
      c->s = NULL;
      c->closed = true;
      c->close_status = rc;
    }
  }
  struct conns_arg a = {conns, n};
  bench_run_until(ctx, all_ready_or_closed, &a, bench_now_ns() + (uint64_t)timeout_ms * 1000000);
  int ready = 0;
  for (unsigned i = 0; i < n; i++) {
    struct bench_conn *c = conns[i];
    if (c->ready && !c->closed) {
      ready++;
      continue;
    }
    ctx->conn_failures++;
    if (!ctx->last_close_error[0])
      snprintf(ctx->last_close_error, sizeof(ctx->last_close_error), "conn %u: %s", i,
               c->closed ? mbx_strerror(c->close_status) : "handshake timed out");
    if (c->s)
      mbx_stream_close(c->s, MBX_ETIMEDOUT);
  }
  *conns_r = conns;
  return ready;
}

void bench_conns_close(struct bench_ctx *ctx, struct bench_conn ***connsp, unsigned n)
{
  struct bench_conn **conns = *connsp;
  if (!conns)
    return;
  for (unsigned i = 0; i < n; i++)
    if (conns[i] && conns[i]->s)
      mbx_stream_close(conns[i]->s, 0);
  struct conns_arg a = {conns, n};
  /* close flushes for at most 2 s (stream.h); a stream that still has not called
   * on_close owns its conn, which is then leaked rather than freed under it */
  bench_run_until(ctx, all_closed, &a, bench_now_ns() + 3000000000ull);
  for (unsigned i = 0; i < n; i++) {
    struct bench_conn *c = conns[i];
    if (!c || !c->closed)
      continue;
    bench_resp_free(&c->resp);
    free(c->pack_buf);
    free(c);
  }
  free(conns);
  *connsp = NULL;
}

/* ---- requests ------------------------------------------------------------------ */

static int conn_send(struct bench_conn *c, Mbx__Request *req, uint32_t kind, uint64_t arg,
                     bool stream);

int bench_conn_send(struct bench_conn *c, Mbx__Request *req, uint32_t kind, uint64_t arg)
{
  return conn_send(c, req, kind, arg, false);
}

int bench_conn_send_stream(struct bench_conn *c, Mbx__Request *req, uint32_t kind, uint64_t arg)
{
  return conn_send(c, req, kind, arg, true);
}

static int conn_send(struct bench_conn *c, Mbx__Request *req, uint32_t kind, uint64_t arg,
                     bool stream)
{
  if (!c->s || c->closed)
    return MBX_ECLOSED;
  if (c->outstanding >= c->depth)
    return MBX_EBUSY;
  unsigned slot = 0;
  while (slot < c->depth && c->slots[slot].id)
    slot++;
  mbx_assert(slot < c->depth);
  req->id = ++c->next_seq * BENCH_MAX_DEPTH + slot;
  size_t len = protobuf_c_message_get_packed_size(&req->base);
  if (len > c->pack_cap) {
    /* only setup requests outgrow the preallocated buffer */
    uint8_t *p = realloc(c->pack_buf, len);
    if (!p)
      return MBX_ENOMEM;
    c->pack_buf = p;
    c->pack_cap = len;
  }
  protobuf_c_message_pack(&req->base, c->pack_buf);
  uint64_t now = bench_now_ns();
  int rc = mbx_stream_send(c->s, c->pack_buf, len);
  if (rc < 0)
    return rc;
  c->slots[slot] =
      (struct bench_slot){.id = req->id, .sent_ns = now, .kind = kind, .arg = arg, .stream = stream};
  c->outstanding++;
  return 0;
}

void bench_resp_free(Mbx__Response **resp)
{
  if (*resp)
    mbx__response__free_unpacked(*resp, NULL);
  *resp = NULL;
}

int bench_resp_error(const Mbx__Response *resp)
{
  if (!resp)
    return MBX_ECLOSED;
  if (!resp->error)
    return 0;
  return mbx_error_from_wire(resp->error->code);
}

static bool none_waiting(void *arg)
{
  struct conns_arg *a = arg;
  for (unsigned i = 0; i < a->n; i++)
    if (a->conns[i]->waiting)
      return false;
  return true;
}

int bench_call_all(struct bench_ctx *ctx, struct bench_conn **conns, unsigned n,
                   Mbx__Request **reqs, uint32_t timeout_ms)
{
  for (unsigned i = 0; i < n; i++) {
    struct bench_conn *c = conns[i];
    bench_resp_free(&c->resp);
    c->waiting = false;
    if (!reqs[i])
      continue;
    c->on_resp = NULL;
    if (bench_conn_send(c, reqs[i], 0, 0) == 0)
      c->waiting = true;
  }
  struct conns_arg a = {conns, n};
  int rc = bench_run_until(ctx, none_waiting, &a, bench_now_ns() + (uint64_t)timeout_ms * 1000000);
  for (unsigned i = 0; i < n; i++)
    conns[i]->waiting = false;
  return rc;
}

int bench_call(struct bench_ctx *ctx, struct bench_conn *c, Mbx__Request *req,
               uint32_t timeout_ms, Mbx__Response **resp_r)
{
  Mbx__Request *reqs[1] = {req};
  *resp_r = NULL;
  int rc = bench_call_all(ctx, &c, 1, reqs, timeout_ms);
  if (!c->resp)
    return rc < 0 ? rc : MBX_ECLOSED;
  *resp_r = c->resp;
  c->resp = NULL;
  return bench_resp_error(*resp_r);
}

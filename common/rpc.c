/* rpc.c — mbx_rpc_*: outstanding calls in a table keyed by request id and in a list in
 * deadline order (one timer on the earliest), responses matched by id, streams that
 * go back into the table after each response, and the end of every call exactly once.
 * The contract is in rpc.h. Loop thread only. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "mbx_error.h"
#include "rpc.h"
#include "stream.h"

#define RPC_NO_DEADLINE   UINT64_MAX
#define RPC_BUCKETS_FIRST 16u

/* The response being handed to a call, so that its callback can keep it. */
struct rpc_delivery {
  struct mbx_rpc_call *call;
  Mbx__Response *resp;
  bool kept;
};

struct mbx_rpc {
  uv_loop_t *loop;
  uv_timer_t timer;                   /* armed for the head of the list when it is timed */
  struct mbx_stream *stream;          /* borrowed while attached, else NULL */
  struct mbx_rpc_options opt;
  uint64_t own_next_id;               /* ids when opt.id_source is NULL */
  /* Outstanding calls: a list ordered by deadline (untimed ones last, in the order
   * they came), and a hash table on the id (ids mostly come in sequence, so the low
   * bits spread them evenly). */
  struct mbx_rpc_call *head, *tail;
  struct mbx_rpc_call **buckets;
  size_t nbuckets;                    /* a power of two */
  size_t count;
  uint64_t generation;                /* one more at every detach */
  int end_status;                     /* the status of the last detach */
  bool closing;                       /* mbx_rpc_close ran: the timer is closing */
  struct rpc_delivery cur;
  void (*closed_cb)(void *arg);
  void *closed_arg;
};

/* ======================================================================== */
/* the table: list in deadline order + hash on id                           */
/* ======================================================================== */

static struct mbx_rpc_call **rpc_bucket(const struct mbx_rpc *rpc, uint64_t id)
{
  return &rpc->buckets[id & (rpc->nbuckets - 1)];
}

/* Doubles the hash table when it is full; when memory is short the chains simply
 * grow longer, which is slower but still correct. */
static void rpc_grow(struct mbx_rpc *rpc)
{
  if (rpc->count < rpc->nbuckets)
    return;
  size_t n = rpc->nbuckets * 2;
  struct mbx_rpc_call **b = calloc(n, sizeof(*b));
  if (!b)
    return;
  for (size_t i = 0; i < rpc->nbuckets; i++) {
    for (struct mbx_rpc_call *c = rpc->buckets[i], *next; c; c = next) {
      next = c->hnext;
      c->hnext = b[c->id & (n - 1)];
      b[c->id & (n - 1)] = c;
    }
  }
  free(rpc->buckets);
  rpc->buckets = b;
  rpc->nbuckets = n;
}

/* Adds call with its deadline set. Calls of one rpc mostly share one timeout, so the
 * new call's place is almost always at the tail (or just before the untimed ones). */
static void rpc_link(struct mbx_rpc *rpc, struct mbx_rpc_call *call)
{
  rpc_grow(rpc);
  struct mbx_rpc_call **b = rpc_bucket(rpc, call->id);
  call->hnext = *b;
  *b = call;
  struct mbx_rpc_call *after = rpc->tail;
  while (after && after->deadline_us > call->deadline_us)
    after = after->prev;
  call->prev = after;
  call->next = after ? after->next : rpc->head;
  if (call->next)
    call->next->prev = call;
  else
    rpc->tail = call;
  if (after)
    after->next = call;
  else
    rpc->head = call;
  rpc->count++;
}

static void rpc_unlink(struct mbx_rpc *rpc, struct mbx_rpc_call *call)
{
  struct mbx_rpc_call **pp = rpc_bucket(rpc, call->id);
  while (*pp != call) {
    assert(*pp); /* only outstanding calls are unlinked */
    pp = &(*pp)->hnext;
  }
  *pp = call->hnext;
  if (call->prev)
    call->prev->next = call->next;
  else
    rpc->head = call->next;
  if (call->next)
    call->next->prev = call->prev;
  else
    rpc->tail = call->prev;
  call->prev = call->next = call->hnext = NULL;
  assert(rpc->count > 0);
  rpc->count--;
}

static struct mbx_rpc_call *rpc_find(const struct mbx_rpc *rpc, uint64_t id)
{
  struct mbx_rpc_call *c = rpc->buckets[id & (rpc->nbuckets - 1)];
  while (c && c->id != id)
    c = c->hnext;
  return c;
}

static void rpc_set_deadline(struct mbx_rpc_call *call)
{
  call->deadline_us =
      call->timeout_ms ? mbx_mono_us() + (uint64_t)call->timeout_ms * 1000 : RPC_NO_DEADLINE;
}

/* ======================================================================== */
/* delivery and the timer                                                   */
/* ======================================================================== */

static void rpc_on_timer(uv_timer_t *t);

/* The timer follows the earliest deadline; untimed calls sit after every timed one. */
static void rpc_arm(struct mbx_rpc *rpc)
{
  if (rpc->closing)
    return;
  if (!rpc->head || rpc->head->deadline_us == RPC_NO_DEADLINE) {
    uv_timer_stop(&rpc->timer);
    return;
  }
  uint64_t next = rpc->head->deadline_us, now = mbx_mono_us();
  uint64_t ms = next > now ? (next - now + 999) / 1000 : 0;
  uv_timer_start(&rpc->timer, rpc_on_timer, ms, 0);
}

/* Hands one outcome to a call that is out of the table; true if it wants more. The
 * rpc outlives every callback (it is freed only from the loop), so it may be touched
 * afterwards; the call may not, unless it wants more. */
static bool rpc_deliver(struct mbx_rpc *rpc, struct mbx_rpc_call *call, int status,
                        Mbx__Response *resp)
{
  struct rpc_delivery saved = rpc->cur;
  rpc->cur = (struct rpc_delivery){.call = call, .resp = resp, .kept = false};
  bool more = call->cb(call, status, resp) && status == 0;
  bool kept = rpc->cur.kept;
  rpc->cur = saved;
  if (resp && !kept)
    mbx__response__free_unpacked(resp, NULL);
  return more;
}

/* A stream's callback asked for more: it goes back into the table with a new
 * deadline, unless the connection ended while the callback ran — then it ends now,
 * like the calls the detach ended. */
static void rpc_continue(struct mbx_rpc *rpc, struct mbx_rpc_call *call, uint64_t generation)
{
  if (rpc->generation != generation || !rpc->stream) {
    (void)rpc_deliver(rpc, call, rpc->end_status, NULL);
    return;
  }
  rpc_set_deadline(call);
  rpc_link(rpc, call);
}

/* Due calls end with MBX_ETIMEDOUT, earliest first; the connection stays (other calls
 * may be fine). */
static void rpc_on_timer(uv_timer_t *t)
{
  struct mbx_rpc *rpc = t->data;
  uint64_t now = mbx_mono_us();
  struct mbx_rpc_call *c;
  while (!rpc->closing && (c = rpc->head) && c->deadline_us <= now) {
    rpc_unlink(rpc, c);
    (void)rpc_deliver(rpc, c, MBX_ETIMEDOUT, NULL);
  }
  rpc_arm(rpc);
}

int mbx_rpc_on_frame(struct mbx_rpc *rpc, const uint8_t *frame, size_t len)
{
  Mbx__Response *resp = mbx__response__unpack(NULL, len, frame);
  if (!resp)
    return MBX_EPROTO;
  struct mbx_rpc_call *call = rpc_find(rpc, resp->id);
  if (!call) {
    if (rpc->opt.on_unmatched)
      rpc->opt.on_unmatched(resp, rpc->opt.arg);
    mbx__response__free_unpacked(resp, NULL);
    return 0;
  }
  rpc_unlink(rpc, call);
  int status = resp->error ? mbx_error_from_wire(resp->error->code) : 0;
  uint64_t generation = rpc->generation;
  if (rpc_deliver(rpc, call, status, resp))
    rpc_continue(rpc, call, generation);
  rpc_arm(rpc);
  return 0;
}

Mbx__Response *mbx_rpc_keep_response(struct mbx_rpc_call *call)
{
  struct mbx_rpc *rpc = call ? call->rpc : NULL;
  if (!rpc || rpc->cur.call != call || !rpc->cur.resp)
    return NULL;
  rpc->cur.kept = true;
  return rpc->cur.resp;
}

/* ======================================================================== */
/* calls                                                                    */
/* ======================================================================== */

int mbx_rpc_call(struct mbx_rpc *rpc, struct mbx_rpc_call *call, const Mbx__Request *req,
                 uint32_t timeout_ms, mbx_rpc_cb cb)
{
  if (!rpc || !call || !req || !cb)
    return MBX_EINVAL;
  if (rpc->closing || !rpc->stream)
    return MBX_ECLOSED;
  uint64_t *src = rpc->opt.id_source ? rpc->opt.id_source : &rpc->own_next_id;
  if (*src == 0)
    *src = 1;
  call->id = (*src)++;
  call->rpc = rpc;
  call->cb = cb;
  call->timeout_ms = timeout_ms;
  Mbx__Request copy = *req;
  copy.id = call->id;
  if (rpc->opt.max_request_bytes &&
      protobuf_c_message_get_packed_size(&copy.base) > rpc->opt.max_request_bytes)
    return MBX_ELIMIT;
  int rc = mbx_stream_send_pb(rpc->stream, &copy.base);
  if (rc < 0)
    return rc;
  rpc_set_deadline(call);
  rpc_link(rpc, call);
  if (rpc->head == call)
    rpc_arm(rpc);
  return 0;
}

struct mbx_rpc_call *mbx_rpc_cancel(struct mbx_rpc *rpc, uint64_t id)
{
  struct mbx_rpc_call *call = rpc ? rpc_find(rpc, id) : NULL;
  if (!call)
    return NULL;
  rpc_unlink(rpc, call);
  rpc_arm(rpc);
  return call;
}

bool mbx_rpc_has_call(const struct mbx_rpc *rpc, uint64_t id)
{
  return rpc && rpc_find(rpc, id) != NULL;
}

size_t mbx_rpc_pending(const struct mbx_rpc *rpc)
{
  return rpc ? rpc->count : 0;
}

void mbx_rpc_set_max_request_bytes(struct mbx_rpc *rpc, size_t max)
{
  rpc->opt.max_request_bytes = max;
}

/* ======================================================================== */
/* life cycle                                                               */
/* ======================================================================== */

int mbx_rpc_new(uv_loop_t *loop, const struct mbx_rpc_options *opt, struct mbx_rpc **rpc_r)
{
  if (!loop || !rpc_r)
    return MBX_EINVAL;
  struct mbx_rpc *rpc = calloc(1, sizeof(*rpc));
  if (!rpc)
    return MBX_ENOMEM;
  rpc->buckets = calloc(RPC_BUCKETS_FIRST, sizeof(*rpc->buckets));
  if (!rpc->buckets) {
    free(rpc);
    return MBX_ENOMEM;
  }
  rpc->nbuckets = RPC_BUCKETS_FIRST;
  if (opt)
    rpc->opt = *opt;
  rpc->own_next_id = 1;
  rpc->loop = loop;
  uv_timer_init(loop, &rpc->timer);
  rpc->timer.data = rpc;
  *rpc_r = rpc;
  return 0;
}

void mbx_rpc_attach(struct mbx_rpc *rpc, struct mbx_stream *s)
{
  assert(!rpc->stream && !rpc->closing);
  rpc->stream = s;
}

void mbx_rpc_detach(struct mbx_rpc *rpc, int status)
{
  if (!rpc)
    return;
  rpc->stream = NULL;
  rpc->generation++;
  rpc->end_status = status;
  uv_timer_stop(&rpc->timer);
  /* Each call leaves the table before its callback runs, so a callback that makes a
   * new call (refused: no stream) or cancels another sees a consistent table. */
  struct mbx_rpc_call *c;
  while ((c = rpc->head) != NULL) {
    rpc_unlink(rpc, c);
    (void)rpc_deliver(rpc, c, status, NULL);
  }
}

static void rpc_timer_closed(uv_handle_t *h)
{
  struct mbx_rpc *rpc = h->data;
  void (*cb)(void *) = rpc->closed_cb;
  void *arg = rpc->closed_arg;
  assert(rpc->count == 0);
  free(rpc->buckets);
  free(rpc);
  if (cb)
    cb(arg);
}

void mbx_rpc_close(struct mbx_rpc **rpcp, int status, void (*closed_cb)(void *arg), void *arg)
{
  if (!rpcp || !*rpcp)
    return;
  struct mbx_rpc *rpc = *rpcp;
  *rpcp = NULL;
  assert(!rpc->closing);
  rpc->closing = true;
  rpc->closed_cb = closed_cb;
  rpc->closed_arg = arg;
  mbx_rpc_detach(rpc, status);
  uv_close((uv_handle_t *)&rpc->timer, rpc_timer_closed);
}

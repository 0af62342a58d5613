/* test_rpc_calls.c — the one RPC client (common/rpc.c) over real TLS on loopback, the
 * fixture's server answering as each test scripts it: responses matched by id in any
 * order, deadlines that fire in deadline order, streams that end on the caller's word
 * or the server's refusal, and every outstanding call ended exactly once when the
 * connection closes or the rpc is closed from inside a callback. */
#include <limits.h>

#include "stream_fixture.h"

#include "client.pb-c.h"
#include "clock.h"
#include "rpc.h"

/* ---------------------------------------------------------------- server --- */

#define SRV_MAX 256

/* What the server received, in order: each request's id and its hello.client. */
static struct {
  uint64_t ids[SRV_MAX];
  char names[SRV_MAX][32];
  size_t n;
} srv;

static void srv_on_frame(struct fx_end *e, const uint8_t *frame, size_t len)
{
  Mbx__Request *rq = mbx__request__unpack(NULL, len, frame);
  assert_non_null(rq);
  assert_true(srv.n < SRV_MAX);
  srv.ids[srv.n] = rq->id;
  snprintf(srv.names[srv.n], sizeof(srv.names[0]), "%s",
           rq->hello && rq->hello->client ? rq->hello->client : "");
  srv.n++;
  mbx__request__free_unpacked(rq, NULL);
}

/* Answers id from the server end: a HelloResp naming `node`, or a refusal (err < 0). */
static void srv_answer(struct fx_end *e, uint64_t id, const char *node, int err)
{
  Mbx__Response r = MBX__RESPONSE__INIT;
  Mbx__HelloResp h = MBX__HELLO_RESP__INIT;
  Mbx__Error er = MBX__ERROR__INIT;
  r.id = id;
  if (err < 0) {
    er.code = (uint32_t)-err;
    er.message = "refused by the test";
    r.error = &er;
  } else {
    h.node = (char *)node;
    r.body_case = MBX__RESPONSE__BODY_HELLO;
    r.hello = &h;
  }
  assert_int_equal(mbx_stream_send_pb(e->s, &r.base), 0);
}

/* ---------------------------------------------------------------- client --- */

struct cli {
  struct fx *fx;
  struct mbx_stream *s;
  struct mbx_rpc *rpc;
  bool ready, closed, rpc_closed;
  int unmatched;
  uint64_t last_unmatched_id;
};

static void cli_on_ready(struct mbx_stream *s, void *arg)
{
  ((struct cli *)arg)->ready = true;
}

static void cli_on_frame(struct mbx_stream *s, const uint8_t *frame, size_t len, void *arg)
{
  struct cli *c = arg;
  if (c->rpc) /* NULL once a test closed it */
    assert_int_equal(mbx_rpc_on_frame(c->rpc, frame, len), 0);
}

static void cli_on_frame_error(struct mbx_stream *s, int err, void *arg)
{
  fail_msg("client: frame error %d", err);
}

static void cli_on_close(struct mbx_stream *s, int status, void *arg)
{
  struct cli *c = arg;
  c->closed = true;
  c->s = NULL;
  mbx_rpc_detach(c->rpc, MBX_ECLOSED);
}

static const struct mbx_stream_callbacks cli_callbacks = {
    .on_ready = cli_on_ready,
    .on_frame = cli_on_frame,
    .on_frame_error = cli_on_frame_error,
    .on_close = cli_on_close,
};

static void cli_unmatched(const Mbx__Response *resp, void *arg)
{
  struct cli *c = arg;
  c->unmatched++;
  c->last_unmatched_id = resp->id;
}

static void cli_rpc_closed(void *arg)
{
  ((struct cli *)arg)->rpc_closed = true;
}

/* A client connection with its rpc attached at once (requests queue until the
 * handshake is done); id_source NULL: the rpc's own ids. */
static void cli_start(struct fx *fx, struct cli *c, struct mbx_tls_ctx *ctx, uint64_t *id_source)
{
  memset(c, 0, sizeof(*c));
  c->fx = fx;
  struct mbx_rpc_options o = {.id_source = id_source, .on_unmatched = cli_unmatched, .arg = c};
  assert_int_equal(mbx_rpc_new(&fx->loop, &o, &c->rpc), 0);
  struct mbx_stream_options so = {.max_frame_bytes = 1u << 20};
  assert_int_equal(mbx_stream_connect(&fx->loop, "127.0.0.1", fx->port, ctx, &so, &cli_callbacks,
                                      c, &c->s),
                   0);
  mbx_rpc_attach(c->rpc, c->s);
}

/* Closes the stream, then the rpc, and runs the loop until both are gone. */
static void cli_finish(struct cli *c)
{
  if (c->s)
    mbx_stream_close(c->s, 0);
  FX_RUN_UNTIL(c->fx, c->closed);
  mbx_rpc_close(&c->rpc, MBX_ECLOSED, cli_rpc_closed, c);
  assert_null(c->rpc);
  FX_RUN_UNTIL(c->fx, c->rpc_closed);
}

/* Runs until every server end has closed too, so fx_done finds no handle left. */
static void srv_wait_closed(struct fx *fx)
{
  for (int i = 0; i < fx->nconns; i++)
    FX_RUN_UNTIL(fx, fx->conns[i].closed);
}

/* ----------------------------------------------------------------- calls --- */

/* One call and everything its callback saw. */
struct tcall {
  struct mbx_rpc_call rc;
  int ncb;                            /* callbacks */
  int nresp;                          /* of them, responses with status 0 */
  int want;                           /* responses to take before returning false */
  int status;                         /* of the last callback */
  bool had_resp, ended;
  char node[32];
  uint64_t sent_us, last_us;
  bool keep;                          /* keep the first response */
  Mbx__Response *kept;
  struct cli *close_rpc;              /* close this client's rpc on the first response */
  struct cli *call_again;             /* on the end, try another call on this client */
  int again_rc;
};

static struct tcall *ended_order[16];
static int nended;

static bool tcall_cb(struct mbx_rpc_call *rc, int status, const Mbx__Response *resp)
{
  struct tcall *t = rc->data;
  assert_false(t->ended); /* nothing after the final callback */
  t->ncb++;
  t->status = status;
  t->had_resp = resp != NULL;
  t->last_us = mbx_mono_us();
  if (resp && resp->hello && resp->hello->node)
    snprintf(t->node, sizeof(t->node), "%s", resp->hello->node);
  bool more = false;
  if (status == 0) {
    t->nresp++;
    if (t->keep && !t->kept)
      t->kept = mbx_rpc_keep_response(rc);
    more = t->nresp < t->want;
    if (t->close_rpc) {
      mbx_rpc_close(&t->close_rpc->rpc, MBX_ESHUTDOWN, cli_rpc_closed, t->close_rpc);
      assert_false(t->close_rpc->rpc_closed); /* freed from the loop, not in here */
      t->close_rpc = NULL;
      more = true; /* asks for more, but the rpc is gone: ended with its status */
    }
  }
  if (status < 0 || !more) {
    t->ended = true;
    if (nended < 16)
      ended_order[nended++] = t;
    if (t->call_again) {
      struct tcall other = {.want = 1};
      Mbx__Request rq = MBX__REQUEST__INIT;
      t->again_rc = mbx_rpc_call(t->call_again->rpc, &other.rc, &rq, 0, tcall_cb);
    }
  }
  return more;
}

/* Sends a HelloReq whose client name is `name` as call t. */
static int tsend(struct cli *c, struct tcall *t, const char *name, uint32_t timeout_ms, int want)
{
  t->rc.data = t;
  t->want = want;
  t->sent_us = mbx_mono_us();
  Mbx__Request rq = MBX__REQUEST__INIT;
  Mbx__HelloReq h = MBX__HELLO_REQ__INIT;
  h.client = (char *)name;
  rq.id = 12345; /* ignored: the rpc sets its own */
  rq.body_case = MBX__REQUEST__BODY_HELLO;
  rq.hello = &h;
  return mbx_rpc_call(c->rpc, &t->rc, &rq, timeout_ms, tcall_cb);
}

static struct mbx_tls_ctx *tctx; /* the clients' TLS context */

/* A fixture whose server records requests (srv), and one client c on it. */
static void tbegin(struct fx *fx, struct cli *c, uint64_t *id_source)
{
  fx_init(fx, 1u << 20);
  fx->server_on_frame = srv_on_frame;
  tctx = fx_client_ctx("ca", NULL);
  cli_start(fx, c, tctx, id_source);
}

/* Every stream must be closed, every rpc freed; then no handle may be left. */
static void tend(struct fx *fx)
{
  srv_wait_closed(fx);
  mbx_tls_ctx_free(&tctx);
  fx_done(fx);
}

static int setup(void **state)
{
  memset(&srv, 0, sizeof(srv));
  nended = 0;
  return 0;
}

/* ----------------------------------------------------------------- tests --- */

#define NMATCH 100

/* Many pipelined calls answered in reverse order each reach their own callback, once;
 * a refusal reaches its call with its code; duplicates, id 0 and the answer to a
 * cancelled call go to on_unmatched. Two rpcs on one id counter never share an id. */
static void test_rpc_match_by_id(void **state)
{
  struct fx fx;
  struct cli c;
  uint64_t shared = 0;
  tbegin(&fx, &c, &shared);

  static struct tcall t[NMATCH];
  memset(t, 0, sizeof(t));
  char name[32];
  for (int i = 0; i < NMATCH; i++) {
    snprintf(name, sizeof(name), "call-%d", i);
    assert_int_equal(tsend(&c, &t[i], name, 10000, 1), 0);
    assert_int_not_equal(t[i].rc.id, 0);
    if (i)
      assert_true(t[i].rc.id > t[i - 1].rc.id);
  }
  struct tcall cancelled = {0};
  assert_int_equal(tsend(&c, &cancelled, "cancelled", 10000, 1), 0);
  assert_int_equal(mbx_rpc_pending(c.rpc), NMATCH + 1);
  assert_ptr_equal(mbx_rpc_cancel(c.rpc, cancelled.rc.id), &cancelled.rc);
  assert_null(mbx_rpc_cancel(c.rpc, cancelled.rc.id));
  assert_false(mbx_rpc_has_call(c.rpc, cancelled.rc.id));
  assert_true(mbx_rpc_has_call(c.rpc, t[5].rc.id));
  /* over the request limit: refused at once, never called back */
  struct tcall big = {0};
  mbx_rpc_set_max_request_bytes(c.rpc, 8);
  assert_int_equal(tsend(&c, &big, "a name longer than eight bytes", 10000, 1), MBX_ELIMIT);
  mbx_rpc_set_max_request_bytes(c.rpc, 0);

  FX_RUN_UNTIL(&fx, srv.n == NMATCH + 1);
  struct fx_end *se = &fx.conns[0];
  for (int i = 0; i < NMATCH; i++) {
    assert_int_equal(srv.ids[i], t[i].rc.id); /* sent under the id the call was given */
    snprintf(name, sizeof(name), "call-%d", i);
    assert_string_equal(srv.names[i], name);
  }
  srv_answer(se, 0, NULL, MBX_EPROTO);            /* a complaint about the connection */
  srv_answer(se, cancelled.rc.id, "cancelled", 0); /* nobody waits for it any more */
  for (int i = NMATCH - 1; i >= 0; i--)
    srv_answer(se, srv.ids[i], srv.names[i], i == 7 ? MBX_ENOTFOUND : 0);
  srv_answer(se, srv.ids[0], "again", 0);         /* a second answer to a finished call */
  FX_RUN_UNTIL(&fx, c.unmatched == 3);

  for (int i = 0; i < NMATCH; i++) {
    assert_int_equal(t[i].ncb, 1);
    assert_true(t[i].ended);
    assert_true(t[i].had_resp);
    if (i == 7) {
      assert_int_equal(t[i].status, MBX_ENOTFOUND);
      continue;
    }
    assert_int_equal(t[i].status, 0);
    snprintf(name, sizeof(name), "call-%d", i);
    assert_string_equal(t[i].node, name);
  }
  assert_int_equal(cancelled.ncb, 0);
  assert_int_equal(big.ncb, 0);
  assert_int_equal(c.last_unmatched_id, srv.ids[0]);
  assert_int_equal(mbx_rpc_pending(c.rpc), 0);

  /* a second connection on the same counter: its ids continue the first one's */
  struct cli c2;
  cli_start(&fx, &c2, tctx, &shared);
  struct tcall a = {0}, b = {0};
  assert_int_equal(tsend(&c2, &a, "a", 0, 1), 0);
  assert_int_equal(tsend(&c, &b, "b", 0, 1), 0);
  assert_true(a.rc.id > big.rc.id);
  assert_int_equal(b.rc.id, a.rc.id + 1);
  FX_RUN_UNTIL(&fx, srv.n == NMATCH + 3);
  cli_finish(&c2);
  assert_int_equal(a.status, MBX_ECLOSED);
  cli_finish(&c);
  assert_int_equal(b.status, MBX_ECLOSED);
  tend(&fx);
}

/* Calls with deadlines end with MBX_ETIMEDOUT once their time has passed, earliest
 * deadline first whatever the send order; calls without one, or with a later one,
 * wait on; the late answer to a timed-out call is dropped. */
static void test_rpc_deadline_fires(void **state)
{
  struct fx fx;
  struct cli c;
  tbegin(&fx, &c, NULL);

  struct tcall slow = {0}, quick = {0}, none = {0}, later = {0};
  assert_int_equal(tsend(&c, &none, "none", 0, 1), 0);
  assert_int_equal(tsend(&c, &slow, "slow", 160, 1), 0);
  assert_int_equal(tsend(&c, &quick, "quick", 60, 1), 0);
  assert_int_equal(tsend(&c, &later, "later", 20000, 1), 0);
  FX_RUN_UNTIL(&fx, slow.ended);

  assert_true(quick.ended);
  assert_int_equal(quick.status, MBX_ETIMEDOUT);
  assert_false(quick.had_resp);
  assert_true(quick.last_us - quick.sent_us >= 60 * 1000);
  assert_int_equal(slow.status, MBX_ETIMEDOUT);
  assert_true(slow.last_us - slow.sent_us >= 160 * 1000);
  assert_true(slow.last_us - slow.sent_us < 10000 * 1000); /* it did fire, not the guard */
  assert_int_equal(nended, 2);
  assert_ptr_equal(ended_order[0], &quick);
  assert_ptr_equal(ended_order[1], &slow);
  assert_false(none.ended);
  assert_false(later.ended);
  assert_int_equal(mbx_rpc_pending(c.rpc), 2);

  FX_RUN_UNTIL(&fx, srv.n == 4);
  struct fx_end *se = &fx.conns[0];
  srv_answer(se, quick.rc.id, "too late", 0);
  srv_answer(se, none.rc.id, "none", 0);
  srv_answer(se, later.rc.id, "later", 0);
  FX_RUN_UNTIL(&fx, none.ended && later.ended);
  assert_int_equal(none.status, 0);
  assert_string_equal(none.node, "none");
  assert_int_equal(later.status, 0);
  assert_int_equal(quick.ncb, 1);
  assert_int_equal(c.unmatched, 1);
  assert_int_equal(c.last_unmatched_id, quick.rc.id);
  cli_finish(&c);
  tend(&fx);
}

/* ---- streams: the server sends a script of answers, one per tick ---- */

struct script_step {
  uint64_t *id;
  const char *node;
  int err;
};

static struct {
  uv_timer_t timer;
  struct fx_end *end;
  const struct script_step *steps;
  size_t n, next;
  bool closed;
} script;

static void script_tick(uv_timer_t *t)
{
  const struct script_step *st = &script.steps[script.next++];
  srv_answer(script.end, *st->id, st->node, st->err);
  if (script.next == script.n)
    uv_timer_stop(t);
}

static void script_closed(uv_handle_t *h)
{
  script.closed = true;
}

/* A stream takes responses on its id while its callback says so, each within the
 * timeout of the previous one (the whole stream lasts longer than one timeout); the
 * responses after it ended are dropped. A stream the server refuses ends with the
 * refusal. A kept response outlives its callback. */
static void test_rpc_stream_until_final(void **state)
{
  struct fx fx;
  struct cli c;
  tbegin(&fx, &c, NULL);

  struct tcall a = {0}, b = {0};
  b.keep = true;
  assert_int_equal(tsend(&c, &a, "a", 1000, 3), 0);
  assert_int_equal(tsend(&c, &b, "b", 0, INT_MAX), 0);
  FX_RUN_UNTIL(&fx, srv.n == 2);
  const struct script_step steps[] = {
      {&a.rc.id, "a1", 0}, {&b.rc.id, "b1", 0}, {&a.rc.id, "a2", 0},
      {&b.rc.id, "b2", 0}, {&a.rc.id, "a3", 0}, {&a.rc.id, "a4", 0},
      {&b.rc.id, NULL, MBX_ENOTACTIVE}, {&a.rc.id, "a5", 0},
  };
  script.end = &fx.conns[0];
  script.steps = steps;
  script.n = sizeof(steps) / sizeof(steps[0]);
  script.next = 0;
  uv_timer_init(&fx.loop, &script.timer);
  uv_timer_start(&script.timer, script_tick, 300, 300); /* a's answers: 600 ms apart */
  FX_RUN_UNTIL(&fx, script.next == script.n && c.unmatched == 2);

  assert_int_equal(a.nresp, 3);
  assert_int_equal(a.ncb, 3);
  assert_int_equal(a.status, 0);
  assert_string_equal(a.node, "a3");
  assert_true(a.last_us - a.sent_us > 1000 * 1000); /* longer than one timeout */
  assert_int_equal(b.nresp, 2);
  assert_int_equal(b.ncb, 3);
  assert_int_equal(b.status, MBX_ENOTACTIVE);
  assert_true(b.had_resp);
  assert_non_null(b.kept);
  assert_string_equal(b.kept->hello->node, "b1");
  mbx__response__free_unpacked(b.kept, NULL);
  assert_int_equal(mbx_rpc_pending(c.rpc), 0);

  uv_close((uv_handle_t *)&script.timer, script_closed);
  FX_RUN_UNTIL(&fx, script.closed);
  cli_finish(&c);
  tend(&fx);
}

/* When the connection closes, every outstanding call (timed, untimed, a stream in
 * the middle) ends once with the detach status, and a call made from those callbacks
 * is refused; closing the rpc from inside a stream's callback ends that stream and
 * the others with the close status, and frees it from the loop. */
static void test_rpc_close_fails_all(void **state)
{
  struct fx fx;
  struct cli c;
  tbegin(&fx, &c, NULL);

  struct tcall timed = {0}, untimed = {0}, stream = {0};
  timed.call_again = &c;
  assert_int_equal(tsend(&c, &timed, "timed", 10000, 1), 0);
  assert_int_equal(tsend(&c, &untimed, "untimed", 0, 1), 0);
  assert_int_equal(tsend(&c, &stream, "stream", 10000, INT_MAX), 0);
  FX_RUN_UNTIL(&fx, srv.n == 3);
  srv_answer(&fx.conns[0], stream.rc.id, "s1", 0);
  FX_RUN_UNTIL(&fx, stream.nresp == 1);
  mbx_stream_close(fx.conns[0].s, 0); /* the server goes away */
  FX_RUN_UNTIL(&fx, c.closed);

  struct tcall *all[] = {&timed, &untimed, &stream};
  for (size_t i = 0; i < 3; i++) {
    assert_true(all[i]->ended);
    assert_int_equal(all[i]->status, MBX_ECLOSED);
    assert_false(all[i]->had_resp);
  }
  assert_int_equal(timed.ncb, 1);
  assert_int_equal(stream.ncb, 2);
  assert_int_equal(timed.again_rc, MBX_ECLOSED);
  assert_int_equal(mbx_rpc_pending(c.rpc), 0);
  struct tcall after = {0};
  assert_int_equal(tsend(&c, &after, "after", 0, 1), MBX_ECLOSED);
  cli_finish(&c);
  assert_int_equal(after.ncb, 0);

  /* closed from inside a callback that asks for more */
  struct cli d;
  cli_start(&fx, &d, tctx, NULL);
  struct tcall closer = {0}, other = {0};
  closer.close_rpc = &d;
  assert_int_equal(tsend(&d, &closer, "closer", 10000, INT_MAX), 0);
  assert_int_equal(tsend(&d, &other, "other", 0, 1), 0);
  FX_RUN_UNTIL(&fx, srv.n == 5);
  srv_answer(&fx.conns[1], closer.rc.id, "c1", 0);
  FX_RUN_UNTIL(&fx, closer.ended);
  assert_null(d.rpc);
  assert_int_equal(closer.ncb, 2);
  assert_int_equal(closer.status, MBX_ESHUTDOWN);
  assert_int_equal(other.ncb, 1);
  assert_int_equal(other.status, MBX_ESHUTDOWN);
  FX_RUN_UNTIL(&fx, d.rpc_closed);
  mbx_stream_close(d.s, 0);
  FX_RUN_UNTIL(&fx, d.closed);

  tend(&fx); /* proves every rpc's timer handle was closed */
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_rpc_match_by_id, setup),
      cmocka_unit_test_setup(test_rpc_deadline_fires, setup),
      cmocka_unit_test_setup(test_rpc_stream_until_final, setup),
      cmocka_unit_test_setup(test_rpc_close_fails_all, setup),
  };
  return cmocka_run_group_tests(tests, fx_certs_setup, fx_certs_teardown);
}

/* test_stream_echo.c — mbx_stream over real TLS on loopback, one loop, one process:
 * frames of 0 B to 10 MiB echoed intact and in order, many pipelined frames, peer
 * certificate identity, pause/resume, closing from inside on_frame, name lookup. */
#include "stream_fixture.h"

static const size_t echo_sizes[] = {0, 1, 4096, 1u << 20, 10u << 20};
#define NECHO (sizeof(echo_sizes) / sizeof(echo_sizes[0]))

static void echo_send_all(struct fx_end *e)
{
  for (size_t i = 0; i < NECHO; i++) {
    uint8_t *p = malloc(echo_sizes[i] + 1);
    assert_non_null(p);
    fx_fill(p, echo_sizes[i], (uint32_t)i);
    assert_int_equal(mbx_stream_send(e->s, p, echo_sizes[i]), 0);
    free(p);
  }
}

static void echo_check(struct fx_end *e, const uint8_t *frame, size_t len)
{
  size_t i = e->frames - 1;
  assert_true(i < NECHO);
  assert_int_equal(len, echo_sizes[i]);
  assert_true(fx_check(frame, len, (uint32_t)i));
  if (e->frames == NECHO)
    mbx_stream_close(e->s, 0);
}

static void test_stream_echo_sizes_in_order(void **state)
{
  struct fx fx;
  fx_init(&fx, 16u << 20);
  struct mbx_tls_ctx *cctx = fx_client_ctx("ca", NULL);
  struct fx_end c;
  fx_connect(&fx, &c, cctx, NULL, NULL);
  c.on_ready = echo_send_all;
  c.on_frame = echo_check;
  FX_RUN_UNTIL(&fx, c.closed && fx.nconns == 1 && fx.conns[0].closed);

  assert_int_equal(c.close_count, 1);
  assert_int_equal(c.close_status, 0);
  assert_int_equal(c.frames, NECHO);
  struct fx_end *srv = &fx.conns[0];
  assert_int_equal(srv->ready_count, 1);
  assert_int_equal(srv->frames, NECHO);
  assert_int_equal(srv->close_count, 1);
  assert_int_equal(srv->close_status, 0); /* the client's close_notify */
  /* No client certificate: no identity on the server side. */
  assert_false(srv->has_ou);
  assert_false(srv->has_cn);
  /* The client verified the node and sees its identity. */
  assert_true(c.has_cn);
  assert_string_equal(c.cn, "node1");
  assert_string_equal(c.ou, "node");
  mbx_tls_ctx_free(&cctx);
  fx_done(&fx);
}

#define NPIPE 20000

static void pipe_send_all(struct fx_end *e)
{
  for (uint32_t i = 0; i < NPIPE; i++) {
    uint8_t p[24];
    fx_fill(p, sizeof(p), i);
    mbx_put_be32(p, i);
    assert_int_equal(mbx_stream_send(e->s, p, sizeof(p)), 0);
  }
}

static void pipe_check(struct fx_end *e, const uint8_t *frame, size_t len)
{
  uint32_t i = (uint32_t)(e->frames - 1);
  assert_int_equal(len, 24);
  assert_int_equal(mbx_get_be32(frame), i);
  if (e->frames == NPIPE)
    mbx_stream_close(e->s, 0);
}

static void test_stream_pipelined_frames(void **state)
{
  struct fx fx;
  fx_init(&fx, 1024);
  struct mbx_tls_ctx *cctx = fx_client_ctx("ca", NULL);
  struct fx_end c;
  fx_connect(&fx, &c, cctx, NULL, NULL);
  c.on_ready = pipe_send_all;
  c.on_frame = pipe_check;
  uint64_t t0 = uv_hrtime();
  FX_RUN_UNTIL(&fx, c.closed && fx.nconns == 1 && fx.conns[0].closed);
  double s = (double)(uv_hrtime() - t0) / 1e9;
  print_message("%d frames echoed in %.3f s (%.0f round trips/s, one loop for both ends)\n", NPIPE,
                s, NPIPE / s);
  assert_int_equal(c.frames, NPIPE);
  assert_int_equal(fx.conns[0].frames, NPIPE);
  assert_int_equal(c.close_status, 0);
  assert_int_equal(fx.conns[0].close_status, 0);
  mbx_tls_ctx_free(&cctx);
  fx_done(&fx);
}

static void close_after_one(struct fx_end *e, const uint8_t *frame, size_t len)
{
  mbx_stream_close(e->s, 0);
}

static void send_one(struct fx_end *e)
{
  assert_int_equal(mbx_stream_send(e->s, (const uint8_t *)"hello", 5), 0);
}

static void test_stream_peer_identity_from_client_cert(void **state)
{
  struct fx fx;
  fx_init(&fx, 1024);
  struct mbx_tls_ctx *cctx = fx_client_ctx("ca", "client");
  struct fx_end c;
  fx_connect(&fx, &c, cctx, NULL, NULL);
  c.on_ready = send_one;
  c.on_frame = close_after_one;
  FX_RUN_UNTIL(&fx, c.closed && fx.nconns == 1 && fx.conns[0].closed);
  struct fx_end *srv = &fx.conns[0];
  assert_true(srv->ready);
  assert_true(srv->has_ou);
  assert_true(srv->has_cn);
  assert_string_equal(srv->ou, "operator");
  assert_string_equal(srv->cn, "alice");
  assert_int_equal(c.frames, 1);
  assert_int_equal(c.close_status, 0);
  mbx_tls_ctx_free(&cctx);
  fx_done(&fx);
}

/* The server pauses after the first frame and resumes 100 ms later: nothing is
 * delivered meanwhile, everything afterwards, in order. */
#define NPAUSE 50
static bool pause_active;
static uint64_t pause_resumed_ms, pause_started_ms;
static uv_timer_t pause_timer;

static void pause_resume_cb(uv_timer_t *t)
{
  struct fx_end *e = t->data;
  pause_active = false;
  pause_resumed_ms = uv_now(t->loop);
  mbx_stream_pause(e->s, false);
  uv_close((uv_handle_t *)t, NULL);
}

static void pause_server_frame(struct fx_end *e, const uint8_t *frame, size_t len)
{
  assert_false(pause_active);
  assert_int_equal(mbx_get_be32(frame), (uint32_t)(e->frames - 1));
  assert_int_equal(mbx_stream_send(e->s, frame, len), 0);
  if (e->frames == 1) {
    mbx_stream_pause(e->s, true);
    pause_active = true;
    pause_started_ms = uv_now(&e->fx->loop);
    uv_timer_init(&e->fx->loop, &pause_timer);
    pause_timer.data = e;
    uv_timer_start(&pause_timer, pause_resume_cb, 100, 0);
  }
}

static void pause_client_ready(struct fx_end *e)
{
  for (uint32_t i = 0; i < NPAUSE; i++) {
    uint8_t p[8] = {0};
    mbx_put_be32(p, i);
    assert_int_equal(mbx_stream_send(e->s, p, sizeof(p)), 0);
  }
}

static void pause_client_frame(struct fx_end *e, const uint8_t *frame, size_t len)
{
  assert_int_equal(mbx_get_be32(frame), (uint32_t)(e->frames - 1));
  if (e->frames == NPAUSE)
    mbx_stream_close(e->s, 0);
}

static void test_stream_pause_resume(void **state)
{
  struct fx fx;
  fx_init(&fx, 1024);
  fx.server_on_frame = pause_server_frame;
  struct mbx_tls_ctx *cctx = fx_client_ctx("ca", NULL);
  struct fx_end c;
  fx_connect(&fx, &c, cctx, NULL, NULL);
  c.on_ready = pause_client_ready;
  c.on_frame = pause_client_frame;
  FX_RUN_UNTIL(&fx, c.closed && fx.nconns == 1 && fx.conns[0].closed);
  assert_int_equal(fx.conns[0].frames, NPAUSE);
  assert_int_equal(c.frames, NPAUSE);
  assert_true(pause_resumed_ms - pause_started_ms >= 90);
  mbx_tls_ctx_free(&cctx);
  fx_done(&fx);
}

/* The server closes from inside on_frame (third frame) after replying: no frame is
 * delivered after that, its reply still arrives, on_close runs once on each side. */
static void close_on_third(struct fx_end *e, const uint8_t *frame, size_t len)
{
  assert_int_equal(mbx_stream_send(e->s, frame, len), 0);
  if (e->frames == 3) {
    mbx_stream_close(e->s, 0);
    mbx_stream_close(e->s, MBX_EIO); /* second call: no effect */
    assert_int_equal(mbx_stream_send(e->s, frame, len), MBX_ECLOSED);
  }
}

static void send_ten(struct fx_end *e)
{
  for (uint32_t i = 0; i < 10; i++) {
    uint8_t p[4];
    mbx_put_be32(p, i);
    assert_int_equal(mbx_stream_send(e->s, p, sizeof(p)), 0);
  }
}

static void count_only(struct fx_end *e, const uint8_t *frame, size_t len)
{
  assert_int_equal(mbx_get_be32(frame), (uint32_t)(e->frames - 1));
}

static void test_stream_close_inside_on_frame(void **state)
{
  struct fx fx;
  fx_init(&fx, 1024);
  fx.server_on_frame = close_on_third;
  struct mbx_tls_ctx *cctx = fx_client_ctx("ca", NULL);
  struct fx_end c;
  fx_connect(&fx, &c, cctx, NULL, NULL);
  c.on_ready = send_ten;
  c.on_frame = count_only;
  FX_RUN_UNTIL(&fx, c.closed && fx.nconns == 1 && fx.conns[0].closed);
  assert_int_equal(fx.conns[0].frames, 3);
  assert_int_equal(fx.conns[0].close_count, 1);
  assert_int_equal(fx.conns[0].close_status, 0);
  assert_int_equal(c.frames, 3); /* all replies queued before the close */
  assert_int_equal(c.close_count, 1);
  assert_int_equal(c.close_status, 0); /* the server's close_notify */
  mbx_tls_ctx_free(&cctx);
  fx_done(&fx);
}

/* A host name goes through uv_getaddrinfo; the certificate's DNS SAN is checked.
 * "localhost" may resolve to ::1 first, where nothing listens: the next address is
 * tried. */
static void test_stream_connect_by_name(void **state)
{
  struct fx fx;
  fx_init(&fx, 1024);
  struct mbx_tls_ctx *cctx = fx_client_ctx("ca", NULL);
  struct fx_end c;
  fx_connect(&fx, &c, cctx, NULL, "localhost");
  c.on_ready = send_one;
  c.on_frame = close_after_one;
  FX_RUN_UNTIL(&fx, c.closed && fx.nconns == 1 && fx.conns[0].closed);
  assert_true(c.ready);
  assert_int_equal(c.frames, 1);
  assert_int_equal(c.close_status, 0);
  mbx_tls_ctx_free(&cctx);
  fx_done(&fx);
}

/* Request/response one at a time on several connections sharing the loop: every
 * reply must be flushed within the loop turn, or this crawls into the guard. */
#define NPING    2000
#define NCLIENTS 4

static void ping_send(struct fx_end *e)
{
  uint8_t p[64];
  fx_fill(p, sizeof(p), (uint32_t)e->frames);
  mbx_put_be32(p, (uint32_t)e->frames);
  assert_int_equal(mbx_stream_send(e->s, p, sizeof(p)), 0);
}

static void ping_reply(struct fx_end *e, const uint8_t *frame, size_t len)
{
  assert_int_equal(len, 64);
  assert_int_equal(mbx_get_be32(frame), (uint32_t)(e->frames - 1));
  if (e->frames == NPING)
    mbx_stream_close(e->s, 0);
  else
    ping_send(e);
}

static bool all_closed(struct fx *fx, struct fx_end *c, int n)
{
  for (int i = 0; i < n; i++)
    if (!c[i].closed || fx->nconns < n || !fx->conns[i].closed)
      return false;
  return true;
}

static void test_stream_ping_pong_concurrent(void **state)
{
  struct fx fx;
  fx_init(&fx, 1024);
  struct mbx_tls_ctx *cctx = fx_client_ctx("ca", "client");
  struct fx_end c[NCLIENTS];
  for (int i = 0; i < NCLIENTS; i++) {
    fx_connect(&fx, &c[i], cctx, NULL, NULL);
    c[i].on_ready = ping_send;
    c[i].on_frame = ping_reply;
  }
  uint64_t t0 = uv_hrtime();
  FX_RUN_UNTIL(&fx, all_closed(&fx, c, NCLIENTS));
  double secs = (double)(uv_hrtime() - t0) / 1e9;
  print_message("%d sequential round trips on %d connections in %.3f s (%.0f/s)\n",
                NPING * NCLIENTS, NCLIENTS, secs, NPING * NCLIENTS / secs);
  for (int i = 0; i < NCLIENTS; i++) {
    assert_int_equal(c[i].frames, NPING);
    assert_int_equal(c[i].close_status, 0);
    assert_int_equal(fx.conns[i].frames, NPING);
    assert_int_equal(fx.conns[i].close_status, 0);
    assert_string_equal(fx.conns[i].cn, "alice");
  }
  mbx_tls_ctx_free(&cctx);
  fx_done(&fx);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_stream_echo_sizes_in_order),
      cmocka_unit_test(test_stream_pipelined_frames),
      cmocka_unit_test(test_stream_peer_identity_from_client_cert),
      cmocka_unit_test(test_stream_pause_resume),
      cmocka_unit_test(test_stream_close_inside_on_frame),
      cmocka_unit_test(test_stream_connect_by_name),
      cmocka_unit_test(test_stream_ping_pong_concurrent),
  };
  return cmocka_run_group_tests(tests, fx_certs_setup, fx_certs_teardown);
}

/* test_stream_refuse.c — mbx_stream refusing what it must: certificates from another
 * CA, an untrusted or misnamed server, garbage bytes, oversized frames (with the
 * reply still delivered), silent peers (handshake and idle timeouts), a closed port,
 * and a full write queue. The server keeps serving others throughout. */
#include "stream_fixture.h"

static void send_one(struct fx_end *e)
{
  assert_int_equal(mbx_stream_send(e->s, (const uint8_t *)"hello", 5), 0);
}

static void close_after_one(struct fx_end *e, const uint8_t *frame, size_t len)
{
  mbx_stream_close(e->s, 0);
}

/* A well-behaved client still gets served (the server is unaffected). */
static void check_server_still_serves(struct fx *fx, struct mbx_tls_ctx *cctx)
{
  int before = fx->nconns;
  struct fx_end c;
  fx_connect(fx, &c, cctx, NULL, NULL);
  c.on_ready = send_one;
  c.on_frame = close_after_one;
  FX_RUN_UNTIL(fx, c.closed && fx->nconns == before + 1 && fx->conns[before].closed);
  assert_int_equal(c.frames, 1);
  assert_int_equal(c.close_status, 0);
  assert_int_equal(fx->conns[before].close_status, 0);
}

static void test_stream_refuses_cert_from_other_ca(void **state)
{
  struct fx fx;
  fx_init(&fx, 1024);
  struct mbx_tls_ctx *bad = fx_client_ctx("ca", "other");
  struct fx_end c;
  fx_connect(&fx, &c, bad, NULL, NULL);
  c.on_ready = send_one;
  FX_RUN_UNTIL(&fx, c.closed && fx.nconns == 1 && fx.conns[0].closed);
  /* In TLS 1.3 the client finishes before the server judges its certificate, so
   * the client may see on_ready; it must never get a frame, and both sides fail. */
  assert_false(fx.conns[0].ready);
  assert_int_equal(fx.conns[0].frames, 0);
  assert_int_equal(fx.conns[0].close_status, MBX_ETLS);
  assert_int_equal(c.frames, 0);
  assert_int_equal(c.close_status, MBX_ETLS);
  struct mbx_tls_ctx *good = fx_client_ctx("ca", "client");
  check_server_still_serves(&fx, good);
  mbx_tls_ctx_free(&bad);
  mbx_tls_ctx_free(&good);
  fx_done(&fx);
}

static void test_stream_client_refuses_untrusted_server(void **state)
{
  struct fx fx;
  fx_init(&fx, 1024);
  struct mbx_tls_ctx *cctx = fx_client_ctx("ca2", NULL); /* doesn't know our CA */
  struct fx_end c;
  fx_connect(&fx, &c, cctx, NULL, NULL);
  FX_RUN_UNTIL(&fx, c.closed && fx.nconns == 1 && fx.conns[0].closed);
  assert_false(c.ready);
  assert_int_equal(c.close_status, MBX_ETLS);
  assert_false(fx.conns[0].ready);
  assert_int_not_equal(fx.conns[0].close_status, 0);
  mbx_tls_ctx_free(&cctx);
  fx_done(&fx);
}

static void test_stream_client_refuses_wrong_name(void **state)
{
  struct fx fx;
  fx_init(&fx, 1024);
  struct mbx_tls_ctx *cctx = fx_client_ctx("ca", NULL);
  struct mbx_stream_options opt = {.max_frame_bytes = 1024, .server_name = "node2.example"};
  struct fx_end c;
  fx_connect(&fx, &c, cctx, &opt, NULL);
  FX_RUN_UNTIL(&fx, c.closed && fx.nconns == 1 && fx.conns[0].closed);
  assert_false(c.ready);
  assert_int_equal(c.close_status, MBX_ETLS);
  assert_false(fx.conns[0].ready);
  mbx_tls_ctx_free(&cctx);
  fx_done(&fx);
}

static void test_stream_garbage_bytes(void **state)
{
  struct fx fx;
  fx_init(&fx, 1024);
  struct fx_raw raw;
  fx_raw_connect(&fx, &raw, "GET / HTTP/1.1\r\nHost: mbx\r\n\r\n\x01\x02\x03 garbage");
  FX_RUN_UNTIL(&fx, raw.closed && fx.nconns == 1 && fx.conns[0].closed);
  assert_false(fx.conns[0].ready);
  assert_int_equal(fx.conns[0].close_status, MBX_ETLS);
  assert_int_equal(fx.conns[0].close_count, 1);
  struct mbx_tls_ctx *cctx = fx_client_ctx("ca", NULL);
  check_server_still_serves(&fx, cctx);
  mbx_tls_ctx_free(&cctx);
  fx_done(&fx);
}

/* Oversized frame: the server's on_frame_error queues a reply, the reply reaches the
 * client before its on_close, and the server closes with MBX_EFRAME. */
static bool reply_seen_before_close;

static void reply_too_big(struct fx_end *e)
{
  assert_int_equal(mbx_stream_send(e->s, (const uint8_t *)"frame too large", 15), 0);
}

static void send_oversized(struct fx_end *e)
{
  size_t n = (1u << 20) + 1;
  uint8_t *p = calloc(1, n);
  assert_non_null(p);
  assert_int_equal(mbx_stream_send(e->s, p, n), 0);
  free(p);
}

static void expect_reply(struct fx_end *e, const uint8_t *frame, size_t len)
{
  assert_int_equal(len, 15);
  assert_memory_equal(frame, "frame too large", 15);
  reply_seen_before_close = !e->closed;
}

static void test_stream_oversized_frame(void **state)
{
  struct fx fx;
  fx_init(&fx, 1u << 20);
  fx.server_on_frame_error = reply_too_big;
  struct mbx_tls_ctx *cctx = fx_client_ctx("ca", NULL);
  struct fx_end c;
  fx_connect(&fx, &c, cctx, NULL, NULL);
  c.on_ready = send_oversized;
  c.on_frame = expect_reply;
  FX_RUN_UNTIL(&fx, c.closed && fx.nconns == 1 && fx.conns[0].closed);
  struct fx_end *srv = &fx.conns[0];
  assert_true(srv->frame_error);
  assert_int_equal(srv->frames, 0);
  assert_int_equal(srv->close_status, MBX_EFRAME);
  assert_int_equal(c.frames, 1);
  assert_true(reply_seen_before_close);
  assert_int_equal(c.close_count, 1);
  check_server_still_serves(&fx, cctx);
  mbx_tls_ctx_free(&cctx);
  fx_done(&fx);
}

static void test_stream_handshake_timeout(void **state)
{
  struct fx fx;
  fx_init(&fx, 1024);
  fx.server_opt.handshake_timeout_ms = 200;
  struct fx_raw raw;
  fx_raw_connect(&fx, &raw, NULL); /* connects, says nothing */
  FX_RUN_UNTIL(&fx, raw.closed && fx.nconns == 1 && fx.conns[0].closed);
  struct fx_end *srv = &fx.conns[0];
  assert_false(srv->ready);
  assert_int_equal(srv->close_status, MBX_ETIMEDOUT);
  uint64_t took = srv->close_ms - srv->start_ms;
  assert_true(took >= 190);
  assert_true(took < 2000);
  fx_done(&fx);
}

static void test_stream_idle_timeout(void **state)
{
  struct fx fx;
  fx_init(&fx, 1024);
  fx.server_opt.idle_timeout_ms = 200;
  struct mbx_tls_ctx *cctx = fx_client_ctx("ca", NULL);
  struct fx_end c;
  fx_connect(&fx, &c, cctx, NULL, NULL);
  FX_RUN_UNTIL(&fx, c.closed && fx.nconns == 1 && fx.conns[0].closed);
  struct fx_end *srv = &fx.conns[0];
  assert_true(srv->ready);
  assert_int_equal(srv->close_status, MBX_ETIMEDOUT);
  assert_true(srv->close_ms - srv->start_ms >= 190);
  assert_true(c.ready);
  assert_int_equal(c.close_status, 0); /* told politely with close_notify */
  mbx_tls_ctx_free(&cctx);
  fx_done(&fx);
}

static void test_stream_connect_refused(void **state)
{
  struct fx fx;
  fx_init(&fx, 1024);
  /* A port that was just free: bind, read it, close. */
  uv_tcp_t tmp;
  uv_tcp_init(&fx.loop, &tmp);
  struct sockaddr_in sin;
  uv_ip4_addr("127.0.0.1", 0, &sin);
  assert_int_equal(uv_tcp_bind(&tmp, (struct sockaddr *)&sin, 0), 0);
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  assert_int_equal(uv_tcp_getsockname(&tmp, (struct sockaddr *)&ss, &len), 0);
  uint16_t port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  uv_close((uv_handle_t *)&tmp, NULL);

  struct mbx_tls_ctx *cctx = fx_client_ctx("ca", NULL);
  struct mbx_stream_options opt = {.max_frame_bytes = 1024};
  struct fx_end c = {.fx = &fx};
  assert_int_equal(
      mbx_stream_connect(&fx.loop, "127.0.0.1", port, cctx, &opt, &fx_callbacks, &c, &c.s), 0);
  /* Queued before the connection exists; dropped with it. */
  assert_int_equal(mbx_stream_send(c.s, (const uint8_t *)"early", 5), 0);
  FX_RUN_UNTIL(&fx, c.closed);
  assert_false(c.ready);
  assert_int_equal(c.close_status, MBX_ECONN);
  assert_int_equal(c.close_count, 1);

  /* Invalid arguments are returned at once and no callback ever runs. */
  struct fx_end bad = {.fx = &fx};
  struct mbx_stream *s = NULL;
  assert_int_equal(mbx_stream_connect(&fx.loop, "", port, cctx, &opt, &fx_callbacks, &bad, &s),
                   MBX_EINVAL);
  struct mbx_stream_options noframe = {0};
  assert_int_equal(
      mbx_stream_connect(&fx.loop, "127.0.0.1", port, cctx, &noframe, &fx_callbacks, &bad, &s),
      MBX_EINVAL);
  /* A server context cannot make client connections. */
  assert_int_equal(
      mbx_stream_connect(&fx.loop, "127.0.0.1", port, fx.server_ctx, &opt, &fx_callbacks, &bad, &s),
      MBX_EINVAL);
  assert_null(s);
  mbx_tls_ctx_free(&cctx);
  fx_done(&fx);
  assert_false(bad.closed);
}

/* The write queue bound: the first frame always fits, then MBX_ELIMIT once the
 * queue would pass max_write_queue_bytes; the connection still works afterwards. */
static void test_stream_write_queue_limit(void **state)
{
  struct fx fx;
  fx_init(&fx, 1u << 20);
  struct mbx_tls_ctx *cctx = fx_client_ctx("ca", NULL);
  struct mbx_stream_options opt = {.max_frame_bytes = 1u << 20, .max_write_queue_bytes = 64 * 1024};
  struct fx_end c;
  fx_connect(&fx, &c, cctx, &opt, NULL);
  static uint8_t p[40 * 1024];
  assert_int_equal(mbx_stream_send(c.s, p, sizeof(p)), 0);
  assert_true(mbx_stream_write_queue_bytes(c.s) >= sizeof(p));
  assert_int_equal(mbx_stream_send(c.s, p, sizeof(p)), MBX_ELIMIT);
  assert_int_equal(mbx_stream_send(c.s, p, 1024), 0);
  c.on_frame = close_after_one;
  FX_RUN_UNTIL(&fx, c.closed && fx.nconns == 1 && fx.conns[0].closed);
  assert_int_equal(fx.conns[0].frames, 2);
  assert_true(c.frames >= 1);
  assert_int_equal(c.close_status, 0);
  mbx_tls_ctx_free(&cctx);
  fx_done(&fx);
}

static void test_stream_tls_ctx_errors(void **state)
{
  struct mbx_tls_ctx *ctx = NULL;
  const char *err = NULL;
  assert_int_equal(mbx_tls_ctx_new_server("/nonexistent/cert.pem", fx_file("server.key"),
                                          fx_file("ca.pem"), &ctx, &err),
                   MBX_ECONFIG);
  assert_null(ctx);
  assert_non_null(err);
  assert_non_null(strstr(err, "/nonexistent/cert.pem"));
  /* A key that does not belong to the certificate. */
  assert_int_equal(mbx_tls_ctx_new_server(fx_file("server.pem"), fx_file("client.key"),
                                          fx_file("ca.pem"), &ctx, &err),
                   MBX_ECONFIG);
  assert_non_null(strstr(err, "client.key"));
  assert_int_equal(mbx_tls_ctx_new_client(fx_file("nope.pem"), NULL, NULL, &ctx, &err),
                   MBX_ECONFIG);
  assert_int_equal(
      mbx_tls_ctx_new_client(fx_file("ca.pem"), fx_file("client.pem"), NULL, &ctx, &err),
      MBX_EINVAL);
  assert_null(ctx);
  mbx_tls_ctx_free(&ctx); /* NULL is fine */
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_stream_refuses_cert_from_other_ca),
      cmocka_unit_test(test_stream_client_refuses_untrusted_server),
      cmocka_unit_test(test_stream_client_refuses_wrong_name),
      cmocka_unit_test(test_stream_garbage_bytes),
      cmocka_unit_test(test_stream_oversized_frame),
      cmocka_unit_test(test_stream_handshake_timeout),
      cmocka_unit_test(test_stream_idle_timeout),
      cmocka_unit_test(test_stream_connect_refused),
      cmocka_unit_test(test_stream_write_queue_limit),
      cmocka_unit_test(test_stream_tls_ctx_errors),
  };
  return cmocka_run_group_tests(tests, fx_certs_setup, fx_certs_teardown);
}

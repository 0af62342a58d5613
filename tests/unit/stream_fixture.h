/* stream_fixture.h — shared by the test_stream_* programs: a throwaway CA and
 * certificates made with the openssl command line, one uv loop with a TLS listener
 * on 127.0.0.1:0, client streams, raw TCP clients, and bounded loop runs. */
#ifndef MBX_TEST_STREAM_FIXTURE_H
#define MBX_TEST_STREAM_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "buf.h"
#include "log.h"
#include "mbx_error.h"
#include "stream.h"
#include "tls.h"

#define FX_GUARD_MS  30000 /* any single test step longer than this fails */
#define FX_MAX_CONNS 8

/* ------------------------------------------------------------ certificates --- */

struct fx_certs {
  char dir[200];
};

static struct fx_certs fx_certs;
static char fx_paths[16][256]; /* scratch for fx_file(), reused round robin */
static int fx_npath;

#define FX_FN static __attribute__((unused))

FX_FN const char *fx_file(const char *name)
{
  char *p = fx_paths[fx_npath++ % 16];
  snprintf(p, sizeof(fx_paths[0]), "%s/%.40s", fx_certs.dir, name);
  return p;
}

FX_FN void fx_sh(const char *fmt, ...)
{
  char cmd[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof(cmd), fmt, ap);
  va_end(ap);
  int rc = system(cmd);
  if (rc != 0)
    fprintf(stderr, "command failed (%d): %s\n", rc, cmd);
  assert_int_equal(rc, 0);
}

#define FX_KEY "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"

/* ca (CN=mbx test CA), server (SAN IP:127.0.0.1, DNS:localhost), client (OU=operator,
 * CN=alice); ca2 is another CA and other.pem a client certificate it signed. */
FX_FN int fx_certs_setup(void **state)
{
  const char *base = getenv("MBX_TEST_TMPDIR");
  if (!base || !*base)
    base = "/tmp";
  mkdir(base, 0700);
  snprintf(fx_certs.dir, sizeof(fx_certs.dir), "%s/stream-XXXXXX", base);
  if (!mkdtemp(fx_certs.dir))
    return -1;
  const char *d = fx_certs.dir;
  fx_sh("cd '%s' && for ca in ca ca2; do openssl req -x509 " FX_KEY " -keyout $ca.key"
        " -out $ca.pem -days 2 -subj \"/CN=mbx test $ca\""
        " -addext basicConstraints=critical,CA:TRUE"
        " -addext keyUsage=critical,keyCertSign,cRLSign >/dev/null 2>&1 || exit 1; done",
        d);
  fx_sh("cd '%s' && printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n"
        "extendedKeyUsage=serverAuth\\n' > server.ext"
        " && printf 'extendedKeyUsage=clientAuth\\n' > client.ext",
        d);
  const char *leaves[][4] = {{"server", "ca", "/OU=node/CN=node1", "server.ext"},
                             {"client", "ca", "/OU=operator/CN=alice", "client.ext"},
                             {"other", "ca2", "/OU=operator/CN=mallory", "client.ext"}};
  for (size_t i = 0; i < 3; i++) {
    fx_sh("cd '%s' && openssl req " FX_KEY " -keyout %s.key -out %s.csr -subj '%s'"
          " >/dev/null 2>&1 && openssl x509 -req -in %s.csr -CA %s.pem -CAkey %s.key"
          " -CAcreateserial -days 2 -out %s.pem -extfile %s >/dev/null 2>&1",
          d, leaves[i][0], leaves[i][0], leaves[i][2], leaves[i][0], leaves[i][1], leaves[i][1],
          leaves[i][0], leaves[i][3]);
  }
  mbx_log_init("test", NULL, getenv("MBX_TEST_DEBUG") ? MBX_LOG_DEBUG : MBX_LOG_INFO);
  return 0;
}

FX_FN int fx_certs_teardown(void **state)
{
  if (fx_certs.dir[0])
    fx_sh("rm -rf '%s'", fx_certs.dir);
  return 0;
}

FX_FN struct mbx_tls_ctx *fx_server_ctx(void)
{
  struct mbx_tls_ctx *ctx = NULL;
  const char *err = NULL;
  int rc = mbx_tls_ctx_new_server(fx_file("server.pem"), fx_file("server.key"), fx_file("ca.pem"),
                                  &ctx, &err);
  if (rc)
    fprintf(stderr, "server ctx: %s\n", err);
  assert_int_equal(rc, 0);
  return ctx;
}

/* ca: "ca" or "ca2"; cert: NULL, "client" or "other". */
FX_FN struct mbx_tls_ctx *fx_client_ctx(const char *ca, const char *cert)
{
  struct mbx_tls_ctx *ctx = NULL;
  const char *err = NULL;
  char caf[64], crt[64], key[64];
  snprintf(caf, sizeof(caf), "%s.pem", ca);
  snprintf(crt, sizeof(crt), "%s.pem", cert ? cert : "");
  snprintf(key, sizeof(key), "%s.key", cert ? cert : "");
  const char *cafile = fx_file(caf);
  const char *certfile = cert ? fx_file(crt) : NULL;
  const char *keyfile = cert ? fx_file(key) : NULL;
  int rc = mbx_tls_ctx_new_client(cafile, certfile, keyfile, &ctx, &err);
  if (rc)
    fprintf(stderr, "client ctx: %s\n", err);
  assert_int_equal(rc, 0);
  return ctx;
}

/* ----------------------------------------------------------- stream ends --- */

struct fx;
struct fx_end;
typedef void fx_frame_fn(struct fx_end *e, const uint8_t *frame, size_t len);

/* What one side of one connection saw. */
struct fx_end {
  struct fx *fx;
  struct mbx_stream *s;
  bool ready, closed, frame_error;
  int close_count, ready_count;
  int close_status;
  size_t frames; /* frames received */
  size_t frames_at_close;
  char ou[64], cn[64];
  bool has_ou, has_cn;
  uint64_t start_ms, close_ms;
  fx_frame_fn *on_frame; /* NULL: echo */
  void (*on_ready)(struct fx_end *e);
  void (*on_frame_error)(struct fx_end *e);
  void *user;
};

struct fx {
  uv_loop_t loop;
  uv_timer_t guard;
  bool guard_fired;
  uv_tcp_t listener;
  uint16_t port;
  struct mbx_tls_ctx *server_ctx;
  struct mbx_stream_options server_opt;
  struct fx_end conns[FX_MAX_CONNS]; /* server side, in accept order */
  int nconns;
  int accept_errors;
  fx_frame_fn *server_on_frame; /* NULL: echo */
  void (*server_on_frame_error)(struct fx_end *e);
  void (*server_on_ready)(struct fx_end *e);
};

FX_FN void fx_on_ready(struct mbx_stream *s, void *arg)
{
  struct fx_end *e = arg;
  e->ready = true;
  e->ready_count++;
  const char *ou = mbx_stream_peer_ou(s), *cn = mbx_stream_peer_cn(s);
  if ((e->has_ou = ou != NULL))
    snprintf(e->ou, sizeof(e->ou), "%s", ou);
  if ((e->has_cn = cn != NULL))
    snprintf(e->cn, sizeof(e->cn), "%s", cn);
  if (e->on_ready)
    e->on_ready(e);
}

FX_FN void fx_on_frame(struct mbx_stream *s, const uint8_t *frame, size_t len, void *arg)
{
  struct fx_end *e = arg;
  assert_false(e->closed);
  e->frames++;
  if (e->on_frame)
    e->on_frame(e, frame, len);
  else
    assert_int_equal(mbx_stream_send(s, frame, len), 0);
}

FX_FN void fx_on_frame_error(struct mbx_stream *s, int err, void *arg)
{
  struct fx_end *e = arg;
  assert_int_equal(err, MBX_EFRAME);
  e->frame_error = true;
  if (e->on_frame_error)
    e->on_frame_error(e);
}

FX_FN void fx_on_close(struct mbx_stream *s, int status, void *arg)
{
  struct fx_end *e = arg;
  e->closed = true;
  e->close_count++;
  e->close_status = status;
  e->frames_at_close = e->frames;
  e->close_ms = uv_now(&e->fx->loop);
  assert_int_equal(mbx_stream_send(s, (const uint8_t *)"x", 1), MBX_ECLOSED);
  mbx_stream_close(s, 0); /* idempotent, even here */
  e->s = NULL;
}

static const struct mbx_stream_callbacks fx_callbacks = {
    .on_ready = fx_on_ready,
    .on_frame = fx_on_frame,
    .on_frame_error = fx_on_frame_error,
    .on_close = fx_on_close,
};

FX_FN void fx_on_connection(uv_stream_t *listener, int status)
{
  struct fx *fx = listener->data;
  assert_int_equal(status, 0);
  assert_true(fx->nconns < FX_MAX_CONNS);
  struct fx_end *e = &fx->conns[fx->nconns++];
  memset(e, 0, sizeof(*e));
  e->fx = fx;
  e->on_frame = fx->server_on_frame;
  e->on_frame_error = fx->server_on_frame_error;
  e->on_ready = fx->server_on_ready;
  e->start_ms = uv_now(&fx->loop);
  int rc = mbx_stream_accept(&fx->loop, listener, fx->server_ctx, &fx->server_opt, &fx_callbacks, e,
                             &e->s);
  if (rc < 0)
    fx->accept_errors++;
}

FX_FN void fx_guard_cb(uv_timer_t *t)
{
  struct fx *fx = t->data;
  fx->guard_fired = true;
  uv_stop(&fx->loop);
}

/* A loop with a TLS listener on 127.0.0.1 (random port) using server.pem. */
FX_FN void fx_init(struct fx *fx, size_t max_frame_bytes)
{
  memset(fx, 0, sizeof(*fx));
  assert_int_equal(uv_loop_init(&fx->loop), 0);
  uv_timer_init(&fx->loop, &fx->guard);
  fx->guard.data = fx;
  fx->server_ctx = fx_server_ctx();
  fx->server_opt.max_frame_bytes = max_frame_bytes;
  assert_int_equal(uv_tcp_init(&fx->loop, &fx->listener), 0);
  fx->listener.data = fx;
  struct sockaddr_in sin;
  uv_ip4_addr("127.0.0.1", 0, &sin);
  assert_int_equal(uv_tcp_bind(&fx->listener, (struct sockaddr *)&sin, 0), 0);
  assert_int_equal(uv_listen((uv_stream_t *)&fx->listener, 64, fx_on_connection), 0);
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  assert_int_equal(uv_tcp_getsockname(&fx->listener, (struct sockaddr *)&ss, &len), 0);
  fx->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  assert_true(fx->port != 0);
}

/* Runs the loop until cond holds; fails the test after FX_GUARD_MS. */
#define FX_RUN_UNTIL(fx, cond)                                                                     \
  do {                                                                                             \
    uv_timer_start(&(fx)->guard, fx_guard_cb, FX_GUARD_MS, 0);                                     \
    for (unsigned long fx_i_ = 0; !(cond); fx_i_++) {                                              \
      assert_true(fx_i_ < 100000000ul);                                                            \
      if ((fx)->guard_fired)                                                                       \
        fail_msg("timed out waiting for: %s", #cond);                                              \
      uv_run(&(fx)->loop, UV_RUN_ONCE);                                                            \
    }                                                                                              \
    uv_timer_stop(&(fx)->guard);                                                                   \
  } while (0)

/* Closes the listener and the loop; every stream must have closed already, so
 * uv_loop_close succeeding proves no handle was left behind. */
FX_FN void fx_done(struct fx *fx)
{
  uv_close((uv_handle_t *)&fx->listener, NULL);
  uv_close((uv_handle_t *)&fx->guard, NULL);
  for (int i = 0; i < 100 && uv_loop_alive(&fx->loop); i++)
    uv_run(&fx->loop, UV_RUN_NOWAIT);
  assert_int_equal(uv_loop_close(&fx->loop), 0);
  mbx_tls_ctx_free(&fx->server_ctx);
  assert_null(fx->server_ctx);
}

/* A client stream to the fixture's listener. */
FX_FN void fx_connect(struct fx *fx, struct fx_end *e, struct mbx_tls_ctx *ctx,
                      const struct mbx_stream_options *opt_in, const char *host)
{
  memset(e, 0, sizeof(*e));
  e->fx = fx;
  e->start_ms = uv_now(&fx->loop);
  struct mbx_stream_options opt = {.max_frame_bytes = 64u << 20};
  if (opt_in)
    opt = *opt_in;
  int rc = mbx_stream_connect(&fx->loop, host ? host : "127.0.0.1", fx->port, ctx, &opt,
                              &fx_callbacks, e, &e->s);
  assert_int_equal(rc, 0);
  assert_non_null(e->s);
}

/* ------------------------------------------------------- raw TCP clients --- */

/* A plain TCP peer: sends `garbage` (may be NULL) once connected, then reads until
 * the server closes. */
struct fx_raw {
  uv_tcp_t tcp;
  uv_connect_t connect;
  uv_write_t write;
  const char *garbage;
  size_t bytes_read;
  bool connected, eof, closed;
};

FX_FN void fx_raw_close_cb(uv_handle_t *h)
{
  struct fx_raw *r = h->data;
  r->closed = true;
}

FX_FN void fx_raw_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
  static char b[4096];
  *buf = uv_buf_init(b, sizeof(b));
}

FX_FN void fx_raw_read(uv_stream_t *h, ssize_t n, const uv_buf_t *buf)
{
  struct fx_raw *r = h->data;
  if (n > 0)
    r->bytes_read += (size_t)n;
  if (n < 0) {
    r->eof = true;
    uv_close((uv_handle_t *)h, fx_raw_close_cb);
  }
}

FX_FN void fx_raw_connected(uv_connect_t *req, int status)
{
  struct fx_raw *r = req->data;
  assert_int_equal(status, 0);
  r->connected = true;
  if (r->garbage) {
    uv_buf_t b = uv_buf_init((char *)r->garbage, (unsigned)strlen(r->garbage));
    assert_int_equal(uv_write(&r->write, (uv_stream_t *)&r->tcp, &b, 1, NULL), 0);
  }
  assert_int_equal(uv_read_start((uv_stream_t *)&r->tcp, fx_raw_alloc, fx_raw_read), 0);
}

FX_FN void fx_raw_connect(struct fx *fx, struct fx_raw *r, const char *garbage)
{
  memset(r, 0, sizeof(*r));
  r->garbage = garbage;
  assert_int_equal(uv_tcp_init(&fx->loop, &r->tcp), 0);
  r->tcp.data = r;
  r->connect.data = r;
  struct sockaddr_in sin;
  uv_ip4_addr("127.0.0.1", fx->port, &sin);
  assert_int_equal(uv_tcp_connect(&r->connect, &r->tcp, (struct sockaddr *)&sin, fx_raw_connected),
                   0);
}

/* --------------------------------------------------------------- payloads --- */

FX_FN void fx_fill(uint8_t *p, size_t len, uint32_t seed)
{
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < len; i++) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    p[i] = (uint8_t)x;
  }
}

FX_FN bool fx_check(const uint8_t *p, size_t len, uint32_t seed)
{
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < len; i++) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    if (p[i] != (uint8_t)x)
      return false;
  }
  return true;
}

#endif

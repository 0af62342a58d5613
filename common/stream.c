/* stream.c — mbx_stream: TLS 1.3 over a libuv TCP handle, carrying frames (frame.h).
 * Bytes read by libuv go into the SSL's memory read BIO; whatever OpenSSL writes
 * into its memory write BIO leaves with one uv_write per loop turn (a prepare
 * handle flushes just before the loop polls), so many small frames share syscalls. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "frame.h"
#include "log.h"
#include "mbx_error.h"
#include "stream.h"
#include "tls_int.h"

#define STREAM_READ_BYTES           65536 /* one libuv read / one SSL_read */
#define STREAM_HANDSHAKE_MS_DEFAULT 10000
#define STREAM_DRAIN_MS             2000  /* bound on flushing + waiting for the peer's FIN */
#define STREAM_DIRECT_BYTES         65536 /* frames this big are encrypted at once, not queued */
#define STREAM_RECORD_BYTES         16384 /* TLS record payload size */
#define STREAM_PLAIN_KEEP_BYTES     (1u << 20)   /* plaintext queue capacity kept between bursts */
#define STREAM_WRITE_MAX_BYTES      (256u << 20) /* one uv_write at most */
#define STREAM_SLICE_BYTES          (1u << 20) /* large frames are encrypted and written in slices */

enum stream_state {
  STREAM_CONNECTING, /* client: resolving the name or waiting for the TCP connect */
  STREAM_HANDSHAKE,  /* TCP up, TLS handshake running; sends are queued in plaintext */
  STREAM_OPEN,       /* handshake done: frames flow both ways */
  STREAM_DRAINING,   /* we chose to close: flushing what is queued, FIN, awaiting peer FIN */
  STREAM_CLOSING,    /* handles closing; on_close runs when the last one is closed */
};

struct stream_write {
  uv_write_t req;
  struct mbx_stream *s;
  size_t len;
  uint8_t data[];
};

struct mbx_stream {
  uv_loop_t *loop;
  uv_tcp_t tcp;
  uv_timer_t timer;     /* handshake timeout, then idle, then drain bound */
  uv_prepare_t prepare; /* per-turn flush of queued output */
  uv_connect_t connect_req;
  uv_getaddrinfo_t gai_req;
  uv_shutdown_t shutdown_req;
  struct addrinfo *ai_list, *ai_next; /* client: resolved addresses left to try */
  struct mbx_tls_ctx *ctx;
  SSL *ssl;
  BIO *rbio, *wbio; /* owned by ssl */
  struct mbx_wire_reader reader;
  struct mbx_buf out_plain; /* small frames waiting to be encrypted together */
  struct mbx_stream_callbacks cb;
  void *arg;
  struct mbx_stream_options opt;
  char *server_name;
  char *expect_cn, *expect_ou; /* client: what the server's certificate must name */
  enum stream_state state;
  int status;            /* for on_close: the first reason recorded wins */
  unsigned handles_open; /* tcp, timer, prepare until their close callbacks */
  unsigned reqs_pending; /* write, connect, shutdown, getaddrinfo in flight */
  size_t inflight_bytes; /* handed to uv_write, not yet written */
  uint64_t last_activity_ms;
  bool is_client, status_set, paused, want_pump, prepare_active, gai_active;
  bool shutdown_done, peer_eof;
  bool silent; /* creation failed: close without callbacks */
  char *peer_ou, *peer_cn;
  char peer_addr[INET6_ADDRSTRLEN + 16];
};

/* Read buffer shared by all streams of a loop thread: libuv hands it to read_cb, which
 * moves its bytes into the SSL before reusing it as the SSL_read destination. */
static _Thread_local uint8_t stream_scratch[STREAM_READ_BYTES];

static void stream_pump(struct mbx_stream *s);
static void stream_flush(struct mbx_stream *s);
static void stream_finish(struct mbx_stream *s);

/* ------------------------------------------------------------- lifecycle --- */

static void stream_set_status(struct mbx_stream *s, int status)
{
  if (!s->status_set) {
    s->status = status;
    s->status_set = true;
  }
}

static void stream_destroy(struct mbx_stream *s)
{
  SSL_free(s->ssl);
  mbx_wire_reader_free(&s->reader);
  mbx_buf_free(&s->out_plain);
  if (s->ai_list)
    uv_freeaddrinfo(s->ai_list);
  free(s->server_name);
  free(s->expect_cn);
  free(s->expect_ou);
  free(s->peer_ou);
  free(s->peer_cn);
  free(s);
}

/* The stream is freed here and only here: after every handle's close callback and
 * every request's callback has run, so no libuv callback can see it again. */
static void stream_maybe_free(struct mbx_stream *s)
{
  if (s->state != STREAM_CLOSING || s->handles_open || s->reqs_pending)
    return;
  if (!s->silent && s->cb.on_close)
    s->cb.on_close(s, s->status, s->arg);
  stream_destroy(s);
}

static void stream_close_cb(uv_handle_t *h)
{
  struct mbx_stream *s = h->data;
  s->handles_open--;
  stream_maybe_free(s);
}

/* Closes the handles now; pending writes are cancelled. on_close follows from the
 * loop, never from inside the caller's stack. */
static void stream_finish(struct mbx_stream *s)
{
  if (s->state == STREAM_CLOSING)
    return;
  s->state = STREAM_CLOSING;
  if (s->gai_active)
    uv_cancel((uv_req_t *)&s->gai_req);
  uv_handle_t *hs[] = {(uv_handle_t *)&s->tcp, (uv_handle_t *)&s->timer,
                       (uv_handle_t *)&s->prepare};
  for (size_t i = 0; i < sizeof(hs) / sizeof(hs[0]); i++) {
    if (!uv_is_closing(hs[i]))
      uv_close(hs[i], stream_close_cb);
  }
}

/* Peer gone or nothing worth flushing: close at once. */
static void stream_abort(struct mbx_stream *s, int status)
{
  stream_set_status(s, status);
  stream_finish(s);
}

static void stream_timer_cb(uv_timer_t *t);
static void stream_read_cb(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf);
static void stream_alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf);

static void stream_shutdown_cb(uv_shutdown_t *req, int status)
{
  struct mbx_stream *s = req->data;
  s->reqs_pending--;
  s->shutdown_done = true;
  if (s->state == STREAM_CLOSING) {
    stream_maybe_free(s);
    return;
  }
  /* Our bytes are out. Lingering for the peer's FIN (bounded by the timer) keeps an
   * unread tail of its data from turning our close into a reset that could destroy
   * the reply we just sent before the peer reads it. */
  if (status < 0 || s->peer_eof)
    stream_finish(s);
}

/* We close by choice: flush what TLS has produced (reply, alert, close_notify), send
 * FIN, wait (bounded) for the peer's FIN, discarding anything it still sends. */
static void stream_drain(struct mbx_stream *s, int status)
{
  stream_set_status(s, status);
  if (s->state >= STREAM_DRAINING)
    return;
  if (s->state == STREAM_CONNECTING) {
    stream_finish(s);
    return;
  }
  s->state = STREAM_DRAINING;
  uv_timer_stop(&s->timer);
  uv_timer_start(&s->timer, stream_timer_cb, STREAM_DRAIN_MS, 0);
  if (s->paused)
    uv_read_start((uv_stream_t *)&s->tcp, stream_alloc_cb, stream_read_cb);
  stream_flush(s);
  if (s->state != STREAM_DRAINING)
    return;
  s->shutdown_req.data = s;
  if (uv_shutdown(&s->shutdown_req, (uv_stream_t *)&s->tcp, stream_shutdown_cb) < 0) {
    stream_finish(s);
    return;
  }
  s->reqs_pending++;
}

void mbx_stream_close(struct mbx_stream *s, int status)
{
  if (!s || s->state >= STREAM_DRAINING)
    return;
  if (s->state == STREAM_OPEN) {
    /* Frames queued so far still go out, then close_notify. */
    if (s->out_plain.len) {
      size_t w;
      if (SSL_write_ex(s->ssl, s->out_plain.data, s->out_plain.len, &w) != 1)
        ERR_clear_error();
      s->out_plain.len = 0;
    }
    if (SSL_shutdown(s->ssl) < 0)
      ERR_clear_error();
  }
  stream_drain(s, status);
}

/* ---------------------------------------------------------------- output --- */

static void stream_schedule(struct mbx_stream *s);

static void stream_write_cb(uv_write_t *req, int status)
{
  struct stream_write *w = (struct stream_write *)req;
  struct mbx_stream *s = w->s;
  s->reqs_pending--;
  s->inflight_bytes -= w->len;
  free(w);
  if (s->state == STREAM_CLOSING) {
    stream_maybe_free(s);
    return;
  }
  if (status < 0) {
    mbx_info("write to %s failed: %s", s->peer_addr, uv_strerror(status));
    stream_abort(s, MBX_ECONN);
  }
}

/* TLS failure on an established or handshaking connection: flush the alert OpenSSL
 * may have produced, then close. The error was logged by mbx__tls_error. */
static void stream_fail(struct mbx_stream *s, int err)
{
  stream_drain(s, err);
}

/* Encrypts the queued small frames as one SSL_write (fewer, fuller records). */
static int stream_encrypt_plain(struct mbx_stream *s)
{
  if (!s->out_plain.len)
    return 0;
  size_t w;
  int rc = SSL_write_ex(s->ssl, s->out_plain.data, s->out_plain.len, &w);
  if (rc != 1) {
    int err = mbx__tls_error(s->ssl, SSL_get_error(s->ssl, rc), "write", s->peer_addr, NULL, 0);
    stream_fail(s, err);
    return err;
  }
  s->out_plain.len = 0;
  if (s->out_plain.cap > STREAM_PLAIN_KEEP_BYTES)
    mbx_buf_free(&s->out_plain); /* don't keep a burst's worth of memory per peer */
  return 0;
}

/* Hands everything TLS has produced to one uv_write, so the memory BIO never holds
 * more than one record batch and its buffer stays small. */
static void stream_write_out(struct mbx_stream *s)
{
  size_t n;
  while (s->state != STREAM_CLOSING && s->wbio && (n = BIO_ctrl_pending(s->wbio)) > 0) {
    if (n > STREAM_WRITE_MAX_BYTES)
      n = STREAM_WRITE_MAX_BYTES; /* uv_buf_t lengths are unsigned int */
    struct stream_write *w = malloc(sizeof(*w) + n);
    if (!w) {
      mbx_error("flushing %zu bytes to %s: out of memory", n, s->peer_addr);
      stream_abort(s, MBX_ENOMEM);
      return;
    }
    size_t got = 0;
    if (BIO_read_ex(s->wbio, w->data, n, &got) != 1 || got != n)
      mbx_fatal("memory BIO returned %zu of %zu pending bytes", got, n);
    w->s = s;
    w->len = n;
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)n);
    int rc = uv_write(&w->req, (uv_stream_t *)&s->tcp, &b, 1, stream_write_cb);
    if (rc < 0) {
      free(w);
      mbx_info("write to %s failed: %s", s->peer_addr, uv_strerror(rc));
      stream_abort(s, MBX_ECONN);
      return;
    }
    s->reqs_pending++;
    s->inflight_bytes += n;
  }
}

static void stream_flush(struct mbx_stream *s)
{
  if (s->state == STREAM_CLOSING)
    return;
  if (s->state == STREAM_OPEN && stream_encrypt_plain(s) < 0)
    return;
  stream_write_out(s);
}

static void stream_prepare_cb(uv_prepare_t *p)
{
  struct mbx_stream *s = p->data;
  if (s->want_pump) {
    s->want_pump = false;
    stream_pump(s);
  }
  stream_flush(s);
  if (s->state != STREAM_CLOSING && !s->want_pump) {
    uv_prepare_stop(&s->prepare);
    s->prepare_active = false;
  }
}

static void stream_schedule(struct mbx_stream *s)
{
  if (s->prepare_active || s->state == STREAM_CLOSING)
    return;
  uv_prepare_start(&s->prepare, stream_prepare_cb);
  s->prepare_active = true;
}

size_t mbx_stream_write_queue_bytes(const struct mbx_stream *s)
{
  return s->out_plain.len + (s->wbio ? BIO_ctrl_pending(s->wbio) : 0) + s->inflight_bytes;
}

/* 0 if a frame of len payload bytes may be queued now. A frame is always accepted
 * into an empty queue, so one frame larger than the bound can still be sent. */
static int stream_send_check(struct mbx_stream *s, size_t len)
{
  if (!s || s->state >= STREAM_DRAINING)
    return MBX_ECLOSED;
  if (len > UINT32_MAX)
    return MBX_ELIMIT;
  size_t queued = mbx_stream_write_queue_bytes(s);
  if (s->opt.max_write_queue_bytes && queued &&
      queued + MBX_WIRE_PREFIX_BYTES + len > s->opt.max_write_queue_bytes)
    return MBX_ELIMIT;
  s->last_activity_ms = uv_now(s->loop);
  return 0;
}

/* A large frame goes straight into TLS (no plaintext copy); the prefix rides in the
 * first record with the payload's head. */
static int stream_encrypt_frame(struct mbx_stream *s, const uint8_t *payload, size_t len)
{
  int err = stream_encrypt_plain(s); /* keep frames in order */
  if (err < 0)
    return err;
  uint8_t head[STREAM_RECORD_BYTES];
  size_t first =
      len < sizeof(head) - MBX_WIRE_PREFIX_BYTES ? len : sizeof(head) - MBX_WIRE_PREFIX_BYTES;
  mbx_put_be32(head, (uint32_t)len);
  memcpy(head + MBX_WIRE_PREFIX_BYTES, payload, first);
  size_t w;
  int rc = SSL_write_ex(s->ssl, head, MBX_WIRE_PREFIX_BYTES + first, &w);
  /* Slices go out as they are encrypted: the ciphertext is copied once, into the
   * write requests, and the write BIO never grows to the frame's size. */
  for (size_t off = first; rc == 1 && off < len && s->state == STREAM_OPEN; off += w) {
    size_t slice = len - off < STREAM_SLICE_BYTES ? len - off : STREAM_SLICE_BYTES;
    rc = SSL_write_ex(s->ssl, payload + off, slice, &w);
    if (rc == 1)
      stream_write_out(s);
  }
  if (rc != 1) {
    err = mbx__tls_error(s->ssl, SSL_get_error(s->ssl, rc), "write", s->peer_addr, NULL, 0);
    stream_fail(s, err);
    return err;
  }
  if (s->state != STREAM_OPEN)
    return MBX_ECLOSED; /* a write failed while sending */
  stream_schedule(s);
  return 0;
}

int mbx_stream_send(struct mbx_stream *s, const uint8_t *payload, size_t len)
{
  int err = stream_send_check(s, len);
  if (err < 0)
    return err;
  if (s->state == STREAM_OPEN && len >= STREAM_DIRECT_BYTES)
    return stream_encrypt_frame(s, payload, len);
  if ((err = mbx_buf_reserve(&s->out_plain, MBX_WIRE_PREFIX_BYTES + len)) < 0)
    return err == MBX_ELIMIT ? MBX_ENOMEM : err;
  uint8_t *p = s->out_plain.data + s->out_plain.len;
  mbx_put_be32(p, (uint32_t)len);
  if (len)
    memcpy(p + MBX_WIRE_PREFIX_BYTES, payload, len);
  s->out_plain.len += MBX_WIRE_PREFIX_BYTES + len;
  stream_schedule(s);
  return 0;
}

int mbx_stream_send_pb(struct mbx_stream *s, const ProtobufCMessage *m)
{
  size_t n = protobuf_c_message_get_packed_size(m);
  int err = stream_send_check(s, n);
  if (err < 0)
    return err;
  if (s->state == STREAM_OPEN && n >= STREAM_DIRECT_BYTES) {
    uint8_t *tmp = malloc(n);
    if (!tmp)
      return MBX_ENOMEM;
    protobuf_c_message_pack(m, tmp);
    err = stream_encrypt_frame(s, tmp, n);
    free(tmp);
    return err;
  }
  /* Small: packed in place into the plaintext queue, no intermediate buffer. */
  if ((err = mbx_wire_pack(m, &s->out_plain)) < 0)
    return err;
  stream_schedule(s);
  return 0;
}

/* ----------------------------------------------------------------- input --- */

static void stream_alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
  buf->base = (char *)stream_scratch;
  buf->len = sizeof(stream_scratch);
}

static void stream_frame_error(struct mbx_stream *s, int err)
{
  const uint8_t *p = s->reader.buf.data + s->reader.consumed;
  mbx_warning("frame of %u bytes from %s is over the %zu-byte limit: closing", mbx_get_be32(p),
              s->peer_addr, s->opt.max_frame_bytes);
  if (s->cb.on_frame_error)
    s->cb.on_frame_error(s, err, s->arg);
  mbx_stream_close(s, err); /* flushes whatever the owner queued */
}

static void stream_on_handshake(struct mbx_stream *s)
{
  s->state = STREAM_OPEN;
  int err = mbx__tls_peer_names(s->ssl, &s->peer_ou, &s->peer_cn);
  if (err < 0) {
    stream_abort(s, err);
    return;
  }
  mbx_debug("TLS session with %s established (%s, peer certificate %s)", s->peer_addr,
            SSL_get_cipher_name(s->ssl), s->peer_cn ? s->peer_cn : "none");
  if ((s->expect_cn && (!s->peer_cn || strcmp(s->peer_cn, s->expect_cn) != 0)) ||
      (s->expect_ou && (!s->peer_ou || strcmp(s->peer_ou, s->expect_ou) != 0))) {
    char cn[80], ou[80];
    mbx_warning("%s presented a certificate for %s (OU %s), not %s (OU %s): closing before "
                "anything is sent", s->peer_addr,
                mbx_log_escape(s->peer_cn ? s->peer_cn : "nobody", cn, sizeof(cn)),
                mbx_log_escape(s->peer_ou ? s->peer_ou : "none", ou, sizeof(ou)),
                s->expect_cn ? s->expect_cn : "any", s->expect_ou ? s->expect_ou : "any");
    stream_abort(s, MBX_EPERM);       /* queued frames are still plaintext: dropped */
    return;
  }
  uv_timer_stop(&s->timer);
  if (s->opt.idle_timeout_ms) {
    s->last_activity_ms = uv_now(s->loop);
    uv_timer_start(&s->timer, stream_timer_cb, s->opt.idle_timeout_ms, 0);
  }
  if (s->paused)
    uv_read_stop((uv_stream_t *)&s->tcp);
  stream_schedule(s); /* frames queued during the handshake */
  if (s->cb.on_ready)
    s->cb.on_ready(s, s->arg);
}

/* Delivers complete frames, decrypting more only when the reader has none, so a
 * paused stream buffers at most one read's worth of plaintext. */
static void stream_deliver(struct mbx_stream *s)
{
  while (s->state == STREAM_OPEN && !s->paused) {
    const uint8_t *frame;
    size_t len;
    int r = mbx_wire_next(&s->reader, &frame, &len);
    if (r == 1) {
      s->last_activity_ms = uv_now(s->loop);
      s->cb.on_frame(s, frame, len, s->arg);
      continue;
    }
    if (r < 0) {
      stream_frame_error(s, r);
      return;
    }
    size_t got = 0;
    int rc = SSL_read_ex(s->ssl, stream_scratch, sizeof(stream_scratch), &got);
    if (rc == 1) {
      if (mbx_wire_feed(&s->reader, stream_scratch, got) < 0) {
        mbx_error("buffering a frame from %s: out of memory", s->peer_addr);
        stream_abort(s, MBX_ENOMEM);
        return;
      }
      continue;
    }
    int e = SSL_get_error(s->ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
      break;
    if (e == SSL_ERROR_ZERO_RETURN) {
      mbx_debug("%s closed the TLS session", s->peer_addr);
      stream_abort(s, 0);
      return;
    }
    stream_fail(s, mbx__tls_error(s->ssl, e, "read", s->peer_addr, NULL, 0));
    return;
  }
  /* SSL_read may have produced bytes of its own (key update responses). */
  if (s->state == STREAM_OPEN && BIO_ctrl_pending(s->wbio))
    stream_schedule(s);
}

static void stream_pump(struct mbx_stream *s)
{
  if (s->state == STREAM_HANDSHAKE) {
    int rc = SSL_do_handshake(s->ssl);
    if (rc != 1) {
      int e = SSL_get_error(s->ssl, rc);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        stream_schedule(s);
        return;
      }
      stream_fail(s, mbx__tls_error(s->ssl, e, "handshake", s->peer_addr, NULL, 0));
      return;
    }
    stream_on_handshake(s);
  }
  if (s->state == STREAM_OPEN)
    stream_deliver(s);
}

static void stream_read_cb(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf)
{
  struct mbx_stream *s = h->data;
  if (nread == 0 || s->state == STREAM_CLOSING)
    return;
  if (nread < 0) {
    if (s->state == STREAM_DRAINING) {
      /* The peer's FIN (or reset) ends the linger once our bytes are out. */
      s->peer_eof = true;
      uv_read_stop(h);
      if (s->shutdown_done || nread != UV_EOF)
        stream_finish(s);
      return;
    }
    int status = nread == UV_EOF ? MBX_ECLOSED : MBX_ECONN;
    mbx_info("connection with %s %s%s%s", s->peer_addr,
             nread == UV_EOF ? "closed by peer" : "lost: ",
             nread == UV_EOF ? "" : uv_strerror((int)nread),
             s->state == STREAM_HANDSHAKE ? " during TLS handshake" : " without close_notify");
    stream_abort(s, status);
    return;
  }
  if (s->state == STREAM_DRAINING)
    return; /* lingering: discard */
  if (BIO_write(s->rbio, buf->base, (int)nread) != (int)nread) {
    ERR_clear_error();
    mbx_error("buffering %zd bytes from %s: out of memory", nread, s->peer_addr);
    stream_abort(s, MBX_ENOMEM);
    return;
  }
  stream_pump(s);
}

static void stream_timer_cb(uv_timer_t *t)
{
  struct mbx_stream *s = t->data;
  switch (s->state) {
  case STREAM_CONNECTING:
  case STREAM_HANDSHAKE:
    mbx_warning("TLS handshake with %s timed out after %u ms", s->peer_addr,
                s->opt.handshake_timeout_ms);
    stream_abort(s, MBX_ETIMEDOUT);
    break;
  case STREAM_OPEN: {
    uint64_t idle = uv_now(s->loop) - s->last_activity_ms;
    if (idle >= s->opt.idle_timeout_ms) {
      mbx_info("closing connection with %s: idle for %u ms", s->peer_addr, s->opt.idle_timeout_ms);
      mbx_stream_close(s, MBX_ETIMEDOUT);
    } else {
      uv_timer_start(&s->timer, stream_timer_cb, s->opt.idle_timeout_ms - idle, 0);
    }
    break;
  }
  case STREAM_DRAINING:
    mbx_debug("closing connection with %s: drain bound reached", s->peer_addr);
    stream_finish(s);
    break;
  case STREAM_CLOSING:
    break;
  }
}

/* ------------------------------------------------------------- creation --- */

static int stream_new(uv_loop_t *loop, struct mbx_tls_ctx *ctx,
                      const struct mbx_stream_options *opt, const struct mbx_stream_callbacks *cb,
                      void *arg, bool client, struct mbx_stream **s_r)
{
  if (!loop || !ctx || !opt || !cb || !cb->on_frame || !s_r || !opt->max_frame_bytes ||
      opt->max_frame_bytes > UINT32_MAX || mbx__tls_ctx_is_server(ctx) == client)
    return MBX_EINVAL;
  struct mbx_stream *s = calloc(1, sizeof(*s));
  if (!s)
    return MBX_ENOMEM;
  s->loop = loop;
  s->ctx = ctx;
  s->cb = *cb;
  s->arg = arg;
  s->opt = *opt;
  s->opt.server_name = NULL;
  s->opt.expect_peer_cn = s->opt.expect_peer_ou = NULL;   /* copies in s->expect_* */
  if (!s->opt.handshake_timeout_ms)
    s->opt.handshake_timeout_ms = STREAM_HANDSHAKE_MS_DEFAULT;
  s->is_client = client;
  s->state = STREAM_CONNECTING;
  mbx_wire_reader_init(&s->reader, opt->max_frame_bytes);
  mbx_buf_init(&s->out_plain, 0);
  if (uv_tcp_init(loop, &s->tcp) < 0) {
    free(s);
    return MBX_ENOMEM;
  }
  uv_timer_init(loop, &s->timer);
  uv_prepare_init(loop, &s->prepare);
  s->tcp.data = s->timer.data = s->prepare.data = s;
  s->handles_open = 3;
  *s_r = s;
  return 0;
}

/* Creation failed after handles existed: they close from the loop, no callbacks. */
static int stream_discard(struct mbx_stream *s, int err)
{
  s->silent = true;
  stream_finish(s);
  return err;
}

static int stream_start_tls(struct mbx_stream *s)
{
  int err = mbx__tls_session_new(s->ctx, s->server_name, &s->ssl, &s->rbio, &s->wbio);
  if (err < 0)
    return err;
  uv_tcp_nodelay(&s->tcp, 1);
  s->state = STREAM_HANDSHAKE;
  int rc = uv_read_start((uv_stream_t *)&s->tcp, stream_alloc_cb, stream_read_cb);
  if (rc < 0) {
    mbx_info("reading from %s: %s", s->peer_addr, uv_strerror(rc));
    return MBX_ECONN;
  }
  return 0;
}

int mbx_stream_accept(uv_loop_t *loop, uv_stream_t *listener, struct mbx_tls_ctx *ctx,
                      const struct mbx_stream_options *opt, const struct mbx_stream_callbacks *cb,
                      void *arg, struct mbx_stream **s_r)
{
  struct mbx_stream *s;
  int err = listener ? stream_new(loop, ctx, opt, cb, arg, false, &s) : MBX_EINVAL;
  if (err < 0)
    return err;
  int rc = uv_accept(listener, (uv_stream_t *)&s->tcp);
  if (rc < 0) {
    mbx_info("accept failed: %s", uv_strerror(rc));
    return stream_discard(s, MBX_ECONN);
  }
  struct sockaddr_storage ss;
  int sslen = sizeof(ss);
  char ip[INET6_ADDRSTRLEN] = "?";
  unsigned port = 0;
  if (uv_tcp_getpeername(&s->tcp, (struct sockaddr *)&ss, &sslen) == 0) {
    if (ss.ss_family == AF_INET6) {
      uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof(ip));
      port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    } else {
      uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof(ip));
      port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
  }
  snprintf(s->peer_addr, sizeof(s->peer_addr), ss.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip,
           port);
  if ((err = stream_start_tls(s)) < 0)
    return stream_discard(s, err);
  uv_timer_start(&s->timer, stream_timer_cb, s->opt.handshake_timeout_ms, 0);
  *s_r = s;
  return 0;
}

static void stream_connect_cb(uv_connect_t *req, int status);

static void stream_connect_failed(struct mbx_stream *s, int rc);

static void stream_connect_next(struct mbx_stream *s, const struct sockaddr *addr)
{
  s->connect_req.data = s;
  int rc = uv_tcp_connect(&s->connect_req, &s->tcp, addr, stream_connect_cb);
  if (rc < 0) {
    stream_connect_failed(s, rc);
    return;
  }
  s->reqs_pending++;
}

/* The TCP handle is closed between attempts: a failed connect leaves the socket
 * unusable. */
static void stream_reconnect_close_cb(uv_handle_t *h)
{
  struct mbx_stream *s = h->data;
  if (s->state == STREAM_CLOSING) {
    stream_close_cb(h);
    return;
  }
  if (uv_tcp_init(s->loop, &s->tcp) < 0) {
    s->handles_open--; /* nothing left to close for tcp */
    stream_abort(s, MBX_ENOMEM);
    return;
  }
  s->tcp.data = s;
  struct addrinfo *ai = s->ai_next;
  s->ai_next = ai->ai_next;
  stream_connect_next(s, ai->ai_addr);
}

static void stream_connect_failed(struct mbx_stream *s, int rc)
{
  if (s->ai_next) {
    mbx_debug("connect to %s failed (%s), trying the next address", s->peer_addr, uv_strerror(rc));
    uv_close((uv_handle_t *)&s->tcp, stream_reconnect_close_cb);
    return;
  }
  mbx_notice("connect to %s failed: %s", s->peer_addr, uv_strerror(rc));
  stream_abort(s, MBX_ECONN);
}

static void stream_connect_cb(uv_connect_t *req, int status)
{
  struct mbx_stream *s = req->data;
  s->reqs_pending--;
  if (s->state == STREAM_CLOSING) {
    stream_maybe_free(s);
    return;
  }
  if (status < 0) {
    stream_connect_failed(s, status);
    return;
  }
  int err = stream_start_tls(s);
  if (err < 0) {
    stream_abort(s, err);
    return;
  }
  stream_pump(s); /* ClientHello */
}

static void stream_gai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
  struct mbx_stream *s = req->data;
  s->reqs_pending--;
  s->gai_active = false;
  if (s->state == STREAM_CLOSING) {
    if (res)
      uv_freeaddrinfo(res);
    stream_maybe_free(s);
    return;
  }
  if (status < 0 || !res) {
    mbx_notice("resolving %s failed: %s", s->peer_addr, uv_strerror(status));
    if (res)
      uv_freeaddrinfo(res);
    stream_abort(s, MBX_ECONN);
    return;
  }
  s->ai_list = res;
  s->ai_next = res->ai_next;
  stream_connect_next(s, res->ai_addr);
}

int mbx_stream_connect(uv_loop_t *loop, const char *host, uint16_t port, struct mbx_tls_ctx *ctx,
                       const struct mbx_stream_options *opt, const struct mbx_stream_callbacks *cb,
                       void *arg, struct mbx_stream **s_r)
{
  if (!host || !*host || strlen(host) > 253 || !port)
    return MBX_EINVAL;
  const char *name = opt && opt->server_name ? opt->server_name : host;
  struct mbx_stream *s;
  int err = stream_new(loop, ctx, opt, cb, arg, true, &s);
  if (err < 0)
    return err;
  if (!(s->server_name = strdup(name)) ||
      (opt->expect_peer_cn && !(s->expect_cn = strdup(opt->expect_peer_cn))) ||
      (opt->expect_peer_ou && !(s->expect_ou = strdup(opt->expect_peer_ou))))
    return stream_discard(s, MBX_ENOMEM);
  snprintf(s->peer_addr, sizeof(s->peer_addr), strchr(host, ':') ? "[%s]:%u" : "%s:%u", host,
           (unsigned)port);
  /* The handshake bound covers resolving and connecting too. */
  uv_timer_start(&s->timer, stream_timer_cb, s->opt.handshake_timeout_ms, 0);
  struct sockaddr_storage ss;
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) == 0 ||
      uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) == 0) {
    stream_connect_next(s, (struct sockaddr *)&ss);
  } else {
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%u", (unsigned)port);
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG};
    s->gai_req.data = s;
    int rc = uv_getaddrinfo(loop, &s->gai_req, stream_gai_cb, host, portstr, &hints);
    if (rc < 0) {
      mbx_notice("resolving %s failed: %s", host, uv_strerror(rc));
      return stream_discard(s, MBX_ENOMEM);
    }
    s->gai_active = true;
    s->reqs_pending++;
  }
  *s_r = s;
  return 0;
}

/* ------------------------------------------------------------- accessors --- */

void mbx_stream_pause(struct mbx_stream *s, bool pause)
{
  if (!s || s->state >= STREAM_DRAINING || s->paused == pause)
    return;
  s->paused = pause;
  if (s->state != STREAM_OPEN)
    return; /* the handshake keeps reading; applied when open */
  if (pause) {
    uv_read_stop((uv_stream_t *)&s->tcp);
    return;
  }
  uv_read_start((uv_stream_t *)&s->tcp, stream_alloc_cb, stream_read_cb);
  /* Buffered frames are delivered from the loop, not from inside the caller. */
  s->want_pump = true;
  stream_schedule(s);
}

const char *mbx_stream_peer_ou(const struct mbx_stream *s)
{
  return s->peer_ou;
}
const char *mbx_stream_peer_cn(const struct mbx_stream *s)
{
  return s->peer_cn;
}
const char *mbx_stream_peer_addr(const struct mbx_stream *s)
{
  return s->peer_addr;
}
void mbx_stream_set_arg(struct mbx_stream *s, void *arg)
{
  s->arg = arg;
}

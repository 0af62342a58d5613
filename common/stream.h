/* stream.h — mbx_stream: a TLS 1.3 connection over a libuv TCP handle, carrying
 * frames (frame.h). OpenSSL runs over memory BIOs, so nothing ever blocks the loop.
 * Used by mbxd (accepted connections) and libmbx (outgoing connections).
 *
 * Lifecycle: on_ready once the handshake is done (not called if it fails), on_frame
 * for each complete frame, on_close exactly once, after which the stream is freed
 * (never use it after on_close returns). If mbx_stream_accept/connect return an error,
 * no callback is ever called. Loop thread only. */
#ifndef MBX_STREAM_H
#define MBX_STREAM_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "tls.h"

struct mbx_stream;

struct mbx_stream_callbacks {
  void (*on_ready)(struct mbx_stream *s, void *arg);
  /* frame borrowed for the duration of the call */
  void (*on_frame)(struct mbx_stream *s, const uint8_t *frame, size_t len, void *arg);
  /* Framing violation (MBX_EFRAME: announced length over the limit). The owner may
   * still queue a reply with mbx_stream_send; the stream then flushes and closes. */
  void (*on_frame_error)(struct mbx_stream *s, int err, void *arg);
  /* status: 0 clean close by us or the peer, else MBX_ETLS, MBX_ECONN, MBX_ETIMEDOUT,
   * MBX_EFRAME, MBX_ECLOSED … */
  void (*on_close)(struct mbx_stream *s, int status, void *arg);
};

struct mbx_stream_options {
  size_t max_frame_bytes;             /* required */
  uint32_t handshake_timeout_ms;      /* 0 = 10000 */
  uint32_t idle_timeout_ms;           /* 0 = none: close after this long with no frame */
  size_t max_write_queue_bytes;       /* 0 = unlimited; over it mbx_stream_send fails */
  const char *server_name;            /* client: name/IP to verify (default: host) */
  /* Client: the server's certificate must carry exactly this subject CN (and OU, if
   * set), e.g. the node a peer address is meant to reach. Otherwise the stream closes
   * with MBX_EPERM right after the handshake, before any queued frame is sent, and
   * logs what the certificate named. Copied; NULL: not checked. */
  const char *expect_peer_cn;
  const char *expect_peer_ou;
};

/* Accepts one pending connection from listener (uv_accept) and starts the server
 * handshake. */
int mbx_stream_accept(uv_loop_t *loop, uv_stream_t *listener, struct mbx_tls_ctx *ctx,
                      const struct mbx_stream_options *opt,
                      const struct mbx_stream_callbacks *cb, void *arg,
                      struct mbx_stream **s_r);
/* Connects to host:port (numeric IPv4/IPv6 or a name resolved with uv_getaddrinfo)
 * and starts the client handshake. Failures after return come as on_close(status). */
int mbx_stream_connect(uv_loop_t *loop, const char *host, uint16_t port,
                       struct mbx_tls_ctx *ctx, const struct mbx_stream_options *opt,
                       const struct mbx_stream_callbacks *cb, void *arg,
                       struct mbx_stream **s_r);

/* Queues one frame (the payload is copied, the prefix added). 0, MBX_ECLOSED,
 * MBX_ELIMIT (write queue full), MBX_ENOMEM. A frame is always accepted into an empty
 * queue, so one frame larger than max_write_queue_bytes can still be sent. Frames
 * queued before on_ready are sent once the handshake is done. */
int mbx_stream_send(struct mbx_stream *s, const uint8_t *payload, size_t len);
/* Packs m into a frame and queues it. */
int mbx_stream_send_pb(struct mbx_stream *s, const ProtobufCMessage *m);
/* Stops/starts delivering frames (backpressure). */
void mbx_stream_pause(struct mbx_stream *s, bool pause);
/* Flushes what is queued (bounded: at most 2 s), sends close_notify, closes; on_close
 * follows with status. Safe to call more than once and from within callbacks.
 * (TLS 1.3: a client whose certificate the server refuses sees on_ready first, then
 * on_close(MBX_ETLS) when the server's alert arrives.) */
void mbx_stream_close(struct mbx_stream *s, int status);

/* The verified peer certificate's subject OU / CN, or NULL if none was presented. */
const char *mbx_stream_peer_ou(const struct mbx_stream *s);
const char *mbx_stream_peer_cn(const struct mbx_stream *s);
/* Printable peer address "127.0.0.1:53122". */
const char *mbx_stream_peer_addr(const struct mbx_stream *s);
size_t mbx_stream_write_queue_bytes(const struct mbx_stream *s);
/* Owner pointer (the arg given at creation) can be replaced. */
void mbx_stream_set_arg(struct mbx_stream *s, void *arg);

#endif

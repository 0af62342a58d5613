/* itc_common.h — a deliberately simple, blocking TLS 1.3 client for the integration
 * drivers (itc_*.c): it speaks the frame format byte by byte so tests can send what a
 * correct client never would (oversized prefixes, truncated frames, bad protobuf).
 * Independent of stream.c/libmbx on purpose: the node is tested, not our client. */
#ifndef ITC_COMMON_H
#define ITC_COMMON_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "client.pb-c.h"

#define ITC_MAX_FRAME (64u << 20) /* what we accept from the node */

struct itc_conn {
  int fd;
  SSL_CTX *ctx;
  SSL *ssl;
};

/* Splits "127.0.0.1:7001" into host and port. */
static inline int itc_parse_server(const char *s, char *host, size_t host_len, uint16_t *port_r)
{
  const char *colon = s ? strrchr(s, ':') : NULL;
  if (!colon || (size_t)(colon - s) >= host_len)
    return -1;
  memcpy(host, s, (size_t)(colon - s));
  host[colon - s] = 0;
  long p = strtol(colon + 1, NULL, 10);
  if (p <= 0 || p > 65535)
    return -1;
  *port_r = (uint16_t)p;
  return 0;
}

/* Plain TCP with send/receive timeouts, so every read in a test is bounded. */
static inline int itc_tcp_connect(const char *host, uint16_t port, int timeout_ms)
{
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
    return -1;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return -1;
  struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static inline void itc_close(struct itc_conn *c)
{
  if (c->ssl) {
    SSL_shutdown(c->ssl);
    SSL_free(c->ssl);
  }
  if (c->ctx)
    SSL_CTX_free(c->ctx);
  if (c->fd >= 0)
    close(c->fd);
  c->ssl = NULL;
  c->ctx = NULL;
  c->fd = -1;
}

/* Closes the socket without close_notify (an abrupt client). */
static inline void itc_abort(struct itc_conn *c)
{
  if (c->ssl)
    SSL_free(c->ssl);
  if (c->ctx)
    SSL_CTX_free(c->ctx);
  if (c->fd >= 0)
    close(c->fd);
  c->ssl = NULL;
  c->ctx = NULL;
  c->fd = -1;
}

/* TLS 1.3 to host:port, server verified against ca; cert/key optional. */
static inline int itc_connect(struct itc_conn *c, const char *host, uint16_t port, const char *ca,
                              const char *cert, const char *key, int timeout_ms)
{
  memset(c, 0, sizeof(*c));
  c->fd = itc_tcp_connect(host, port, timeout_ms);
  if (c->fd < 0)
    return -1;
  c->ctx = SSL_CTX_new(TLS_client_method());
  if (!c->ctx)
    goto fail;
  SSL_CTX_set_min_proto_version(c->ctx, TLS1_3_VERSION);
  /* a peer closing without close_notify reads as EOF, which is what we test for */
  SSL_CTX_set_options(c->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
  if (SSL_CTX_load_verify_locations(c->ctx, ca, NULL) != 1)
    goto fail;
  SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
  if (cert && key &&
      (SSL_CTX_use_certificate_chain_file(c->ctx, cert) != 1 ||
       SSL_CTX_use_PrivateKey_file(c->ctx, key, SSL_FILETYPE_PEM) != 1))
    goto fail;
  c->ssl = SSL_new(c->ctx);
  if (!c->ssl)
    goto fail;
  SSL_set_fd(c->ssl, c->fd);
  if (SSL_connect(c->ssl) != 1)
    goto fail;
  return 0;
fail:
  ERR_print_errors_fp(stderr);
  itc_abort(c);
  return -1;
}

static inline int itc_write_all(struct itc_conn *c, const void *data, size_t len)
{
  const uint8_t *p = data;
  while (len > 0) {
    int n = SSL_write(c->ssl, p, len > (1u << 30) ? (1 << 30) : (int)len);
    if (n <= 0)
      return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

static inline int itc_send_frame(struct itc_conn *c, const uint8_t *payload, size_t len)
{
  uint8_t pre[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len};
  uint8_t *buf = malloc(len + 4);
  if (!buf)
    return -1;
  memcpy(buf, pre, 4);
  if (len)
    memcpy(buf + 4, payload, len);
  int rc = itc_write_all(c, buf, len + 4); /* one write: one TLS record when small */
  free(buf);
  return rc;
}

static inline int itc_send_req(struct itc_conn *c, const Mbx__Request *req)
{
  size_t len = mbx__request__get_packed_size(req);
  uint8_t *buf = malloc(len ? len : 1);
  if (!buf)
    return -1;
  mbx__request__pack(req, buf);
  int rc = itc_send_frame(c, buf, len);
  free(buf);
  return rc;
}

/* Reads exactly len bytes: 1 ok, 0 clean EOF before any byte, -1 error/timeout/reset. */
static inline int itc_read_all(struct itc_conn *c, uint8_t *buf, size_t len)
{
  size_t got = 0;
  while (got < len) {
    errno = 0;
    int n = SSL_read(c->ssl, buf + got, (int)(len - got));
    if (n <= 0) {
      int e = SSL_get_error(c->ssl, n);
      ERR_clear_error();
      if (e == SSL_ERROR_ZERO_RETURN && got == 0)
        return 0;
      return (got == 0 && e == SSL_ERROR_SYSCALL && errno == 0) ? 0 : -1;
    }
    got += (size_t)n;
  }
  return 1;
}

/* Next response: NULL on EOF/error (*eof_r tells which). Free with
 * mbx__response__free_unpacked(r, NULL). */
static inline Mbx__Response *itc_recv_resp(struct itc_conn *c, int *eof_r)
{
  uint8_t pre[4];
  *eof_r = 0;
  int rc = itc_read_all(c, pre, 4);
  if (rc <= 0) {
    *eof_r = rc == 0;
    return NULL;
  }
  uint32_t len = (uint32_t)pre[0] << 24 | (uint32_t)pre[1] << 16 | (uint32_t)pre[2] << 8 | pre[3];
  if (len > ITC_MAX_FRAME)
    return NULL;
  uint8_t *buf = malloc(len ? len : 1);
  if (!buf)
    return NULL;
  if (len && itc_read_all(c, buf, len) != 1) {
    free(buf);
    return NULL;
  }
  Mbx__Response *r = mbx__response__unpack(NULL, len, buf);
  free(buf);
  return r;
}

/* 1 if the node closes the connection (EOF or reset) within the socket timeout. */
static inline int itc_wait_closed(struct itc_conn *c)
{
  uint8_t b[4096];
  for (int i = 0; i < 1000; i++) { /* bounded: drains at most ~4 MB */
    errno = 0;
    int n = SSL_read(c->ssl, b, sizeof(b));
    if (n > 0)
      continue;
    int e = SSL_get_error(c->ssl, n);
    ERR_clear_error();
    if (e == SSL_ERROR_ZERO_RETURN)
      return 1;
    if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_SSL)
      return !(errno == EAGAIN || errno == EWOULDBLOCK);
    return 0;
  }
  return 0;
}

#endif

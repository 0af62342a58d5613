/* tls_int.h — mbx__tls_*: what stream.c needs from tls.c (not a public contract).
 * tls.c owns every SSL_CTX setting and the one OpenSSL-error-to-MBX conversion;
 * stream.c drives the per-connection SSL object over memory BIOs. */
#ifndef MBX_TLS_INT_H
#define MBX_TLS_INT_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

#include "tls.h"

/* A new SSL over a pair of memory BIOs (rbio: bytes from the peer, wbio: bytes for
 * the peer). Client side: server_name is verified against the certificate (IP SAN
 * for numeric addresses, DNS name + SNI otherwise). 0, MBX_ENOMEM, MBX_ETLS. */
int mbx__tls_session_new(struct mbx_tls_ctx *ctx, const char *server_name, SSL **ssl_r,
                         BIO **rbio_r, BIO **wbio_r);
bool mbx__tls_ctx_is_server(const struct mbx_tls_ctx *ctx);

/* The one place OpenSSL errors become MBX codes. ssl/ssl_err: the connection and the
 * SSL_get_error() result (NULL/0 for context calls). Drains the thread's OpenSSL
 * error queue, logs "TLS <what> with <peer> failed: <reason>" (without " with …"
 * when peer is NULL) and returns MBX_ETLS or MBX_ENOMEM. line_r (may be NULL) gets
 * the same line without the "TLS " prefix. */
int mbx__tls_error(const SSL *ssl, int ssl_err, const char *what, const char *peer, char *line_r,
                   size_t line_size);

/* Subject OU and CN of the verified peer certificate, malloc'd UTF-8, NULL when absent
 * (or when no certificate was presented). 0 or MBX_ENOMEM. */
int mbx__tls_peer_names(SSL *ssl, char **ou_r, char **cn_r);

#endif

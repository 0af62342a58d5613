/* tls.h — TLS contexts (OpenSSL 3). TLS 1.3 only; peers verified against the
 * cluster CA. The per-connection engine (memory BIOs) is internal to stream.c. */
#ifndef MBX_TLS_H
#define MBX_TLS_H

#include <stdbool.h>

struct mbx_tls_ctx;

/* Server side: cert/key of this node, ca_file to verify optional client certificates
 * (a client without a certificate is accepted; one with a certificate not signed by
 * the CA is refused in the handshake). error_r: one line, valid until the next call. */
int mbx_tls_ctx_new_server(const char *cert_file, const char *key_file, const char *ca_file,
                           struct mbx_tls_ctx **ctx_r, const char **error_r);
/* Client side: verify the server against ca_file (hostname/IP checked against the
 * certificate's SAN); cert_file/key_file optional (client certificate). */
int mbx_tls_ctx_new_client(const char *ca_file, const char *cert_file, const char *key_file,
                           struct mbx_tls_ctx **ctx_r, const char **error_r);
void mbx_tls_ctx_free(struct mbx_tls_ctx **ctx);

#endif

/* tls.c — TLS 1.3 contexts (OpenSSL 3) for nodes and clients, the per-connection
 * SSL over memory BIOs that stream.c drives, and the single place where OpenSSL
 * errors are turned into MBX codes and logged. */
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mbx_error.h"
#include "tls_int.h"

struct mbx_tls_ctx {
  SSL_CTX *ssl_ctx;
  bool server;
};

/* error_r of the ctx constructors: one line, valid until the next call. */
static _Thread_local char tls_ctx_error[512];

/* ---------------------------------------------------------------- errors --- */

int mbx__tls_error(const SSL *ssl, int ssl_err, const char *what, const char *peer, char *line_r,
                   size_t line_size)
{
  char reason[256] = "";
  int err = MBX_ETLS;
  unsigned long e;
  /* The earliest queued error is the cause; later ones are consequences. */
  if ((e = ERR_get_error()) != 0) {
    const char *rs = ERR_reason_error_string(e);
    if (ERR_SYSTEM_ERROR(e))
      snprintf(reason, sizeof(reason), "%s", strerror(ERR_GET_REASON(e)));
    else if (rs)
      snprintf(reason, sizeof(reason), "%s", rs);
    else
      ERR_error_string_n(e, reason, sizeof(reason));
    if (ERR_GET_REASON(e) == ERR_R_MALLOC_FAILURE)
      err = MBX_ENOMEM;
  }
  ERR_clear_error();
  if (ssl) {
    long vr = SSL_get_verify_result(ssl);
    if (vr != X509_V_OK) {
      size_t n = strlen(reason);
      snprintf(reason + n, sizeof(reason) - n, "%s%s", n ? ": " : "",
               X509_verify_cert_error_string(vr));
    }
  }
  if (!reason[0]) {
    snprintf(reason, sizeof(reason), "%s",
             ssl_err == SSL_ERROR_SYSCALL       ? "unexpected end of stream"
             : ssl_err == SSL_ERROR_ZERO_RETURN ? "closed by peer"
                                                : "unknown OpenSSL error");
  }
  char line[512];
  snprintf(line, sizeof(line), "%s%s%s failed: %s", what, peer ? " with " : "", peer ? peer : "",
           reason);
  mbx_warning("TLS %s", line);
  if (line_r && line_size)
    snprintf(line_r, line_size, "%s", line);
  return err;
}

/* --------------------------------------------------------------- contexts --- */

static int tls_ctx_fail(struct mbx_tls_ctx *c, const char *what, const char *file,
                        const char **error_r)
{
  char w[320];
  snprintf(w, sizeof(w), "%s%s%s", what, file ? " " : "", file ? file : "");
  int err = mbx__tls_error(NULL, 0, w, NULL, tls_ctx_error, sizeof(tls_ctx_error));
  if (error_r)
    *error_r = tls_ctx_error;
  mbx_tls_ctx_free(&c);
  return err == MBX_ENOMEM ? err : MBX_ECONFIG;
}

static int tls_ctx_common(bool server, struct mbx_tls_ctx **c_r, const char **error_r)
{
  struct mbx_tls_ctx *c = calloc(1, sizeof(*c));
  if (!c) {
    if (error_r)
      *error_r = "out of memory";
    return MBX_ENOMEM;
  }
  c->server = server;
  c->ssl_ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (!c->ssl_ctx)
    return tls_ctx_fail(c, "creating context", NULL, error_r);
  /* TLS 1.3 only: no renegotiation, no legacy cipher suites, 1-RTT handshakes. */
  if (!SSL_CTX_set_min_proto_version(c->ssl_ctx, TLS1_3_VERSION))
    return tls_ctx_fail(c, "setting TLS 1.3", NULL, error_r);
  /* Memory BIOs accept whole records, but keep OpenSSL from insisting on the same
   * buffer address when a write is retried. */
  SSL_CTX_set_mode(c->ssl_ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_session_cache_mode(c->ssl_ctx, SSL_SESS_CACHE_OFF);
  *c_r = c;
  return 0;
}

static int tls_ctx_load_pair(struct mbx_tls_ctx *c, const char *cert_file, const char *key_file,
                             const char **error_r)
{
  if (SSL_CTX_use_certificate_chain_file(c->ssl_ctx, cert_file) != 1)
    return tls_ctx_fail(c, "loading certificate", cert_file, error_r);
  if (SSL_CTX_use_PrivateKey_file(c->ssl_ctx, key_file, SSL_FILETYPE_PEM) != 1)
    return tls_ctx_fail(c, "loading private key", key_file, error_r);
  if (SSL_CTX_check_private_key(c->ssl_ctx) != 1)
    return tls_ctx_fail(c, "matching private key", key_file, error_r);
  return 0;
}

int mbx_tls_ctx_new_server(const char *cert_file, const char *key_file, const char *ca_file,
                           struct mbx_tls_ctx **ctx_r, const char **error_r)
{
  if (!cert_file || !key_file || !ca_file || !ctx_r) {
    if (error_r)
      *error_r = "server TLS needs a certificate, a key and a CA file";
    return MBX_EINVAL;
  }
  struct mbx_tls_ctx *c;
  int err = tls_ctx_common(true, &c, error_r);
  if (err < 0)
    return err;
  if ((err = tls_ctx_load_pair(c, cert_file, key_file, error_r)) < 0)
    return err;
  if (SSL_CTX_load_verify_locations(c->ssl_ctx, ca_file, NULL) != 1)
    return tls_ctx_fail(c, "loading CA", ca_file, error_r);
  STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca_file);
  if (!names)
    return tls_ctx_fail(c, "loading CA names", ca_file, error_r);
  SSL_CTX_set_client_CA_list(c->ssl_ctx, names);
  /* Ask for a client certificate but accept clients without one (they log in with
   * a password); a certificate that is presented must chain to the CA. */
  SSL_CTX_set_verify(c->ssl_ctx, SSL_VERIFY_PEER, NULL);
  /* No resumption: tickets would only be post-handshake bytes for nothing. */
  SSL_CTX_set_num_tickets(c->ssl_ctx, 0);
  SSL_CTX_set_options(c->ssl_ctx, SSL_OP_NO_TICKET);
  *ctx_r = c;
  return 0;
}

int mbx_tls_ctx_new_client(const char *ca_file, const char *cert_file, const char *key_file,
                           struct mbx_tls_ctx **ctx_r, const char **error_r)
{
  if (!ca_file || !ctx_r || (!cert_file != !key_file)) {
    if (error_r)
      *error_r = "client TLS needs a CA file, and a key with a certificate";
    return MBX_EINVAL;
  }
  struct mbx_tls_ctx *c;
  int err = tls_ctx_common(false, &c, error_r);
  if (err < 0)
    return err;
  if (SSL_CTX_load_verify_locations(c->ssl_ctx, ca_file, NULL) != 1)
    return tls_ctx_fail(c, "loading CA", ca_file, error_r);
  if (cert_file && (err = tls_ctx_load_pair(c, cert_file, key_file, error_r)) < 0)
    return err;
  SSL_CTX_set_verify(c->ssl_ctx, SSL_VERIFY_PEER, NULL);
  *ctx_r = c;
  return 0;
}

void mbx_tls_ctx_free(struct mbx_tls_ctx **ctx)
{
  if (!ctx || !*ctx)
    return;
  SSL_CTX_free((*ctx)->ssl_ctx);
  free(*ctx);
  *ctx = NULL;
}

bool mbx__tls_ctx_is_server(const struct mbx_tls_ctx *ctx)
{
  return ctx->server;
}

/* --------------------------------------------------------------- sessions --- */

static bool tls_is_ip_literal(const char *name)
{
  ASN1_OCTET_STRING *ip = a2i_IPADDRESS(name);
  if (!ip) {
    ERR_clear_error();
    return false;
  }
  ASN1_OCTET_STRING_free(ip);
  return true;
}

static int tls_session_verify_name(SSL *ssl, const char *name)
{
  if (tls_is_ip_literal(name)) {
    /* An IP is checked against the certificate's IP SANs; no SNI for addresses. */
    if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) != 1)
      return mbx__tls_error(ssl, 0, "setting peer address", name, NULL, 0);
    return 0;
  }
  SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  if (SSL_set1_host(ssl, name) != 1 || SSL_set_tlsext_host_name(ssl, name) != 1)
    return mbx__tls_error(ssl, 0, "setting peer name", name, NULL, 0);
  return 0;
}

int mbx__tls_session_new(struct mbx_tls_ctx *ctx, const char *server_name, SSL **ssl_r,
                         BIO **rbio_r, BIO **wbio_r)
{
  SSL *ssl = SSL_new(ctx->ssl_ctx);
  BIO *rbio = BIO_new(BIO_s_mem());
  BIO *wbio = BIO_new(BIO_s_mem());
  if (!ssl || !rbio || !wbio) {
    SSL_free(ssl);
    BIO_free(rbio);
    BIO_free(wbio);
    ERR_clear_error();
    return MBX_ENOMEM;
  }
  /* An empty read BIO means "no bytes yet", not end of stream. */
  BIO_set_mem_eof_return(rbio, -1);
  BIO_set_mem_eof_return(wbio, -1);
  SSL_set_bio(ssl, rbio, wbio); /* ssl owns both now */
  if (ctx->server) {
    SSL_set_accept_state(ssl);
  } else {
    SSL_set_connect_state(ssl);
    int err = server_name ? tls_session_verify_name(ssl, server_name) : 0;
    if (err < 0) {
      SSL_free(ssl);
      return err;
    }
  }
  *ssl_r = ssl;
  *rbio_r = rbio;
  *wbio_r = wbio;
  return 0;
}

static int tls_name_entry(X509_NAME *name, int nid, char **r)
{
  *r = NULL;
  int i = X509_NAME_get_index_by_NID(name, nid, -1);
  if (i < 0)
    return 0;
  unsigned char *utf8 = NULL;
  int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)));
  if (n < 0) {
    ERR_clear_error();
    return 0; /* unrepresentable: treat as absent */
  }
  if (memchr(utf8, '\0', (size_t)n)) {
    OPENSSL_free(utf8); /* an embedded NUL would truncate a compare */
    return 0;
  }
  *r = strndup((const char *)utf8, (size_t)n);
  OPENSSL_free(utf8);
  return *r ? 0 : MBX_ENOMEM;
}

int mbx__tls_peer_names(SSL *ssl, char **ou_r, char **cn_r)
{
  *ou_r = *cn_r = NULL;
  X509 *peer = SSL_get0_peer_certificate(ssl);
  if (!peer || SSL_get_verify_result(ssl) != X509_V_OK)
    return 0;
  X509_NAME *subject = X509_get_subject_name(peer);
  int err = tls_name_entry(subject, NID_organizationalUnitName, ou_r);
  if (err == 0)
    err = tls_name_entry(subject, NID_commonName, cn_r);
  if (err < 0) {
    free(*ou_r);
    *ou_r = NULL;
  }
  return err;
}

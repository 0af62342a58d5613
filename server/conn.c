/* conn.c — one client connection: TLS stream callbacks, request decoding with a
 * per-request arena, bounded pipelining, and answers that may complete out of order
 * (reads at once, writes after their batch is durable). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "handler.h"
#include "log.h"
#include "mbx_error.h"
#include "notify.h"

/* Room for the unpacked request (bodies are copied) and the response. */
static size_t conn_arena_limit(const struct mbx_conn *c)
{
  return 2 * c->node->conf->max_frame_bytes + 16 * 1024 * 1024;
}

static const char *conn_role_name(const struct mbx_conn *c)
{
  if (!c->has_role)
    return "none";
  switch (c->role) {
  case MBX__ROLE__ROLE_OPERATOR: return "operator";
  case MBX__ROLE__ROLE_TRANSPORT: return "transport";
  case MBX__ROLE__ROLE_NODE: return "node";
  default: return "user";
  }
}

/* Frees the connection once the stream is gone and nothing refers to it. */
static void conn_maybe_free(struct mbx_conn *c)
{
  if (c->stream || c->inflight)
    return;
  struct mbx_node *n = c->node;
  if (c->prev)
    c->prev->next = c->next;
  else
    n->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  free(c);
  n->n_conns--;
  mbx_node_conn_removed(n);
}

void mbx_conn_close(struct mbx_conn *c, int status)
{
  c->closing = true;
  if (c->stream)
    mbx_stream_close(c->stream, status);
}

void mbx_conn_pause(struct mbx_conn *c, bool pause)
{
  if (c->paused == pause || !c->stream)
    return;
  c->paused = pause;
  mbx_stream_pause(c->stream, pause);
}

/* An error answer outside any request (undecodable input): id 0. */
static void conn_send_error(struct mbx_conn *c, int code, const char *msg)
{
  Mbx__Error e = MBX__ERROR__INIT;
  Mbx__Response resp = MBX__RESPONSE__INIT;
  e.code = (uint32_t)-code;
  e.name = (char *)mbx_strerror_name(code);
  e.message = (char *)msg;
  resp.id = 0;
  resp.error = &e;
  if (c->stream)
    mbx_stream_send_pb(c->stream, &resp.base);
}

int mbx_req_fail(struct mbx_req *r, int code, const char *fmt, ...)
{
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  r->status = code;
  r->errmsg = mbx_arena_strdup(&r->arena, buf);
  return code;
}

int mbx_req_check_node(struct mbx_req *r, const char *from, const char *what)
{
  struct mbx_conn *c = r->conn;
  if (c->cert_node[0] && from && strcmp(from, c->cert_node) == 0)
    return 0;
  char claimed[80];
  const char *cert = c->cert_node[0] ? c->cert_node : "no node";
  mbx_log_escape(from ? from : "", claimed, sizeof(claimed));
  mbx_warning("client %s: %s refused: it speaks for node %s, but the client certificate "
              "names %s; closing the connection", c->peer, what, claimed, cert);
  r->close_after = true;
  return mbx_req_fail(r, MBX_EPERM, "%s refused: it speaks for node %s, but the client "
                      "certificate names %s (a node acts only in its own name)", what, claimed,
                      cert);
}

void mbx_req_finish(struct mbx_req *r)
{
  struct mbx_conn *c = r->conn;
  /* id 0: no response (acks), unless the connection is closed for it */
  if (c->stream && !c->closing && (r->rq->id != 0 || r->close_after)) {
    r->resp.id = r->rq->id;
    Mbx__Error e = MBX__ERROR__INIT;
    if (r->status < 0) {
      e.code = (uint32_t)-r->status;
      e.name = (char *)mbx_strerror_name(r->status);
      e.message = (char *)(r->errmsg ? r->errmsg : mbx_strerror(r->status));
      e.redirect = (char *)r->redirect;
      e.active_node = (char *)r->active_node;
      if (r->error_lsn) {
        e.has_lsn = 1;
        e.lsn = r->error_lsn;
      }
      r->resp.error = &e;
      r->resp.body_case = MBX__RESPONSE__BODY__NOT_SET;
    }
    int rc = mbx_stream_send_pb(c->stream, &r->resp.base);
    if (rc < 0 && rc != MBX_ECLOSED) {
      mbx_warning("client %s: cannot queue a response (%s; %zu bytes waiting): closing",
                  c->peer, mbx_strerror(rc), mbx_stream_write_queue_bytes(c->stream));
      mbx_conn_close(c, rc);
    }
  }
  if (r->close_after && c->stream)
    mbx_conn_close(c, r->status < 0 ? r->status : MBX_EPERM);   /* the answer is flushed */
  if (r->rtxn)
    mbx_store_rtxn_end(&r->rtxn);
  if (r->creating)
    mbx_handler_release_addresses(r);
  mbx_arena_reset(&r->arena);
  free(r);
  c->inflight--;
  if (c->paused && !c->node->stopping && c->inflight <= MBX_CONN_INFLIGHT_MAX / 2)
    mbx_conn_pause(c, false);
  conn_maybe_free(c);
}

bool mbx_req_open(const struct mbx_req *r) { return r->conn->stream && !r->conn->closing; }

int mbx_req_send(struct mbx_req *r, Mbx__Response *resp)
{
  struct mbx_conn *c = r->conn;
  if (!mbx_req_open(r))
    return MBX_ECLOSED;
  resp->id = r->rq->id;
  int rc = mbx_stream_send_pb(c->stream, &resp->base);
  if (rc < 0 && rc != MBX_ECLOSED) {
    mbx_warning("client %s: cannot queue a response (%s; %zu bytes waiting): closing",
                c->peer, mbx_strerror(rc), mbx_stream_write_queue_bytes(c->stream));
    mbx_conn_close(c, rc);
  }
  return rc;
}

/* ---- stream callbacks ------------------------------------------------------- */

static void conn_on_ready(struct mbx_stream *s, void *arg)
{
  struct mbx_conn *c = arg;
  const char *ou = mbx_stream_peer_ou(s);
  if (ou && strcmp(ou, "operator") == 0) {
    c->has_role = true;
    c->role = MBX__ROLE__ROLE_OPERATOR;
  } else if (ou && strcmp(ou, "transport") == 0) {
    c->has_role = true;
    c->role = MBX__ROLE__ROLE_TRANSPORT;
  } else if (ou && strcmp(ou, "node") == 0) {
    c->has_role = true;               /* another mbxd: replication and forwarded admin */
    c->role = MBX__ROLE__ROLE_NODE;
    const char *cn = mbx_stream_peer_cn(s);
    if (cn && mbx_nodeconf_name_ok(cn)) {
      snprintf(c->cert_node, sizeof(c->cert_node), "%s", cn);
    } else {
      char esc[80];
      mbx_warning("client %s: node certificate with CN %s, not a node name: it may forward "
                  "admin requests but never acts as a node", c->peer,
                  mbx_log_escape(cn ? cn : "(none)", esc, sizeof(esc)));
    }
  }
  mbx_debug("client %s: connected (role %s%s%s)", c->peer, conn_role_name(c),
            mbx_stream_peer_cn(s) ? ", certificate " : "",
            mbx_stream_peer_cn(s) ? mbx_stream_peer_cn(s) : "");
}

static void conn_on_frame(struct mbx_stream *s, const uint8_t *frame, size_t len, void *arg)
{
  struct mbx_conn *c = arg;
  if (c->closing)
    return;
  struct mbx_req *r = calloc(1, sizeof(*r));
  if (!r) {
    conn_send_error(c, MBX_ENOMEM, "node out of memory");
    mbx_conn_close(c, MBX_ENOMEM);
    return;
  }
  mbx_arena_init(&r->arena, conn_arena_limit(c));
  r->rq = mbx__request__unpack(&r->arena.pb, len, frame);
  if (!r->rq) {
    mbx_warning("client %s: invalid request (%zu bytes are not a valid mbx.Request): closing",
                c->peer, len);
    mbx_arena_reset(&r->arena);
    free(r);
    conn_send_error(c, MBX_EPROTO, "request is not a valid mbx.Request message");
    mbx_conn_close(c, MBX_EPROTO);
    return;
  }
  r->conn = c;
  r->resp = (Mbx__Response)MBX__RESPONSE__INIT;
  r->db = c->db;
  r->mailbox_id = c->mailbox_id;
  c->inflight++;
  if (c->inflight >= MBX_CONN_INFLIGHT_MAX)
    mbx_conn_pause(c, true);
  mbx_handler_dispatch(r);
}

static void conn_on_frame_error(struct mbx_stream *s, int err, void *arg)
{
  struct mbx_conn *c = arg;
  char msg[128];
  snprintf(msg, sizeof(msg), "frame larger than the limit of %llu bytes",
           (unsigned long long)c->node->conf->max_frame_bytes);
  mbx_warning("client %s: %s: closing", c->peer, msg);
  conn_send_error(c, err < 0 ? err : MBX_EFRAME, msg);
  c->closing = true;                  /* the stream flushes the reply and closes */
}

static void conn_on_close(struct mbx_stream *s, int status, void *arg)
{
  struct mbx_conn *c = arg;
  if (status < 0 && status != MBX_ECLOSED)
    mbx_info("client %s: connection closed: %s", c->peer, mbx_strerror(status));
  else
    mbx_debug("client %s: connection closed", c->peer);
  c->closing = true;
  if (c->subs)
    mbx_notify_conn_closed(c);        /* while c->stream is set: finishing cannot free c */
  c->stream = NULL;
  conn_maybe_free(c);
}

static const struct mbx_stream_callbacks conn_callbacks = {
  .on_ready = conn_on_ready,
  .on_frame = conn_on_frame,
  .on_frame_error = conn_on_frame_error,
  .on_close = conn_on_close,
};

/* ---- accepting -------------------------------------------------------------- */

static void conn_refused_closed(uv_handle_t *h) { free(h); }

/* Over max_connections: accept and close at once, so the client sees a prompt
 * close instead of a hanging connect. */
static void conn_refuse(struct mbx_node *n)
{
  uv_tcp_t *t = malloc(sizeof(*t));
  if (!t || uv_tcp_init(n->loop, t) != 0) {
    free(t);
    return;
  }
  if (uv_accept((uv_stream_t *)&n->listener, (uv_stream_t *)t) == 0)
    mbx_warning("connection refused: max_connections (%llu) reached",
                (unsigned long long)n->conf->max_connections);
  uv_close((uv_handle_t *)t, conn_refused_closed);
}

void mbx_conn_accept(struct mbx_node *n)
{
  if (n->n_conns >= n->conf->max_connections) {
    conn_refuse(n);
    return;
  }
  struct mbx_conn *c = calloc(1, sizeof(*c));
  if (!c) {
    conn_refuse(n);
    return;
  }
  c->node = n;
  int rc = mbx_stream_accept(n->loop, (uv_stream_t *)&n->listener, n->tls, &n->stream_opt,
                             &conn_callbacks, c, &c->stream);
  if (rc < 0) {
    mbx_warning("cannot accept a connection: %s", mbx_strerror(rc));
    free(c);
    return;
  }
  snprintf(c->peer, sizeof(c->peer), "%s", mbx_stream_peer_addr(c->stream));
  c->next = n->conns;
  if (n->conns)
    n->conns->prev = c;
  n->conns = c;
  n->n_conns++;
}

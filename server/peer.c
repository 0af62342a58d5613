/* peer.c — this node as a client of the other nodes: one pooled TLS connection per
 * peer (node certificate, OU=node), its calls (one-shot and streamed, pipelined by id,
 * with deadlines) run on the project's one RPC client (common/rpc.h), and forwarding
 * of the request being handled. Loop thread only. */
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "log.h"
#include "mbx_error.h"
#include "peer.h"
#include "rpc.h"
#include "stream.h"

#define PEER_CALL_TIMEOUT_MS 30000

struct peer_call {
  struct mbx_rpc_call rc;
  struct peer_conn *pc;               /* outlives the call: its rpc ends every call first */
  mbx_peer_cb cb;                     /* one answer (mbx_peer_call), or */
  mbx_peer_stream_cb scb;             /* many (mbx_peer_stream) */
  void *arg;
  uint32_t timeout_ms;                /* for the log line when it runs out */
};

/* One connection to a peer. It stays in the pool's list until its rpc has closed,
 * but only while its stream is open is it found for new calls. */
struct peer_conn {
  struct peer_conn *next;
  struct mbx_peer_pool *pool;
  char name[MBX_NODECONF_NAME_MAX + 1];
  struct mbx_stream *stream;          /* NULL once closed (or never connected) */
  struct mbx_rpc *rpc;                /* NULL once closing; pc is freed when it has closed */
};

struct mbx_peer_pool {
  struct mbx_node *node;
  struct mbx_tls_ctx *tls;            /* client side, this node's certificate */
  struct mbx_stream_options opt;
  struct peer_conn *conns;
  /* Ids for every connection's calls, so that a call id given out by mbx_peer_stream
   * names one call even after its connection was replaced by a new one. */
  uint64_t next_id;
  bool stopping;
};

/* ---- pool ------------------------------------------------------------------- */

static void peer_pool_maybe_free(struct mbx_peer_pool *p)
{
  if (!p->stopping || p->conns)
    return;
  if (p->tls)
    mbx_tls_ctx_free(&p->tls);
  if (p->node->peers == p)
    p->node->peers = NULL;
  free(p);
}

static int peer_pool(struct mbx_node *n, struct mbx_peer_pool **p_r)
{
  if (n->peers) {
    *p_r = n->peers;
    return n->peers->stopping ? MBX_ESHUTDOWN : 0;
  }
  if (n->stopping)
    return MBX_ESHUTDOWN;
  struct mbx_peer_pool *p = calloc(1, sizeof(*p));
  if (!p)
    return MBX_ENOMEM;
  const struct mbx_nodeconf *conf = n->conf;
  const char *why = NULL;
  int rc = mbx_tls_ctx_new_client(conf->tls_ca, conf->tls_cert, conf->tls_key, &p->tls, &why);
  if (rc < 0) {
    mbx_error("peers: cannot make the client TLS context from %s: %s", conf->tls_cert,
              why ? why : mbx_strerror(rc));
    free(p);
    return rc;
  }
  p->node = n;
  p->next_id = 1;
  p->opt.max_frame_bytes = conf->max_frame_bytes;
  p->opt.handshake_timeout_ms = (uint32_t)conf->handshake_timeout_ms;
  p->opt.max_write_queue_bytes = 4 * conf->max_frame_bytes + 64 * 1024 * 1024;
  n->peers = p;
  *p_r = p;
  return 0;
}

const char *mbx_peer_addr(const struct mbx_node *n, const char *node_name)
{
  if (strcmp(node_name, n->conf->node_name) == 0)
    return n->conf->listen;
  const struct mbx_nodeconf_peer *pc = mbx_nodeconf_peer(n->conf, node_name);
  return pc ? pc->addr : NULL;
}

/* ---- connections ------------------------------------------------------------ */

static void peer_on_ready(struct mbx_stream *s, void *arg)
{
  struct peer_conn *pc = arg;
  mbx_debug("peer %s: connected", pc->name);
}

static void peer_on_frame(struct mbx_stream *s, const uint8_t *frame, size_t len, void *arg)
{
  struct peer_conn *pc = arg;
  if (mbx_rpc_on_frame(pc->rpc, frame, len) < 0) {
    mbx_warning("peer %s: invalid response (%zu bytes): closing", pc->name, len);
    mbx_stream_close(s, MBX_EPROTO);
  }
}

static void peer_on_unmatched(const Mbx__Response *resp, void *arg)
{
  struct peer_conn *pc = arg;
  if (resp->error)                    /* e.g. an error answer to an id-0 ack */
    mbx_debug("peer %s: error for request %llu: %s", pc->name, (unsigned long long)resp->id,
              resp->error->message ? resp->error->message : "");
}

static void peer_on_frame_error(struct mbx_stream *s, int err, void *arg)
{
  struct peer_conn *pc = arg;
  mbx_warning("peer %s: frame over the limit: closing", pc->name);
  mbx_stream_close(s, err);
}

/* The connection's rpc has closed: nothing refers to pc any more. */
static void peer_conn_closed(void *arg)
{
  struct peer_conn *pc = arg;
  struct mbx_peer_pool *p = pc->pool;
  for (struct peer_conn **pp = &p->conns; *pp; pp = &(*pp)->next) {
    if (*pp == pc) {
      *pp = pc->next;
      break;
    }
  }
  free(pc);
  peer_pool_maybe_free(p);
}

static void peer_on_close(struct mbx_stream *s, int status, void *arg)
{
  struct peer_conn *pc = arg;
  struct mbx_peer_pool *p = pc->pool;
  if (status < 0 && status != MBX_ECLOSED && status != MBX_EPERM && !p->stopping)
    mbx_warning("peer %s: connection closed: %s", pc->name, mbx_strerror(status));
  else
    mbx_debug("peer %s: connection closed", pc->name);
  if (status == MBX_EPERM)
    mbx_error("peer %s: the node at %s is not %s (its certificate names another node): "
              "check peer.%s", pc->name, mbx_peer_addr_or(p->node, pc->name), pc->name, pc->name);
  pc->stream = NULL;                  /* new calls to this peer make a new connection */
  mbx_rpc_close(&pc->rpc, p->stopping ? MBX_ESHUTDOWN : MBX_EPEER, peer_conn_closed, pc);
}

static const struct mbx_stream_callbacks peer_callbacks = {
  .on_ready = peer_on_ready,
  .on_frame = peer_on_frame,
  .on_frame_error = peer_on_frame_error,
  .on_close = peer_on_close,
};

static struct peer_conn *peer_find_conn(struct mbx_peer_pool *p, const char *name)
{
  for (struct peer_conn *pc = p->conns; pc; pc = pc->next)
    if (strcmp(pc->name, name) == 0 && pc->stream)
      return pc;
  return NULL;
}

static int peer_conn_get(struct mbx_node *n, const char *name, struct peer_conn **pc_r)
{
  const struct mbx_nodeconf_peer *cp = mbx_nodeconf_peer(n->conf, name);
  if (!cp)
    return MBX_ENOTFOUND;
  struct mbx_peer_pool *p;
  int rc = peer_pool(n, &p);
  if (rc < 0)
    return rc;
  if ((*pc_r = peer_find_conn(p, name)) != NULL)
    return 0;
  struct peer_conn *pc = calloc(1, sizeof(*pc));
  if (!pc)
    return MBX_ENOMEM;
  pc->pool = p;
  snprintf(pc->name, sizeof(pc->name), "%s", name);
  struct mbx_rpc_options ro = {
    .id_source = &p->next_id,
    .on_unmatched = peer_on_unmatched,
    .arg = pc,
  };
  if ((rc = mbx_rpc_new(n->loop, &ro, &pc->rpc)) < 0) {
    free(pc);
    return rc;
  }
  pc->next = p->conns;
  p->conns = pc;
  struct mbx_stream_options opt = p->opt;
  opt.expect_peer_cn = name;          /* requests go only to the node named */
  opt.expect_peer_ou = "node";
  rc = mbx_stream_connect(n->loop, cp->host, cp->port, p->tls, &opt, &peer_callbacks, pc,
                          &pc->stream);
  if (rc < 0) {
    mbx_warning("peer %s: cannot connect to %s: %s", name, cp->addr, mbx_strerror(rc));
    pc->stream = NULL;
    mbx_rpc_close(&pc->rpc, MBX_EPEER, peer_conn_closed, pc);
    return MBX_EPEER;
  }
  mbx_rpc_attach(pc->rpc, pc->stream); /* requests queue until the handshake is done */
  *pc_r = pc;
  return 0;
}

/* ---- calls ------------------------------------------------------------------ */

/* The call's outcome, told to its caller; true if a stream wants more. */
static bool peer_call_done(struct mbx_rpc_call *rc, int status, const Mbx__Response *resp)
{
  struct peer_call *c = rc->data;
  if (status == MBX_ETIMEDOUT && !resp)
    mbx_warning("peer %s: request %llu timed out after %u ms", c->pc->name,
                (unsigned long long)rc->id, c->timeout_ms);
  bool more = false;
  if (c->scb)
    more = c->scb(status, resp, c->arg) && status == 0;
  else
    c->cb(status, resp, c->arg);
  if (!more)
    free(c);
  return more;
}

static int peer_start(struct mbx_node *n, const char *node_name, const Mbx__Request *req,
                      struct peer_call *c)
{
  struct peer_conn *pc;
  int rc = peer_conn_get(n, node_name, &pc);
  if (rc < 0)
    return rc;
  c->pc = pc;
  c->rc.data = c;
  rc = mbx_rpc_call(pc->rpc, &c->rc, req, c->timeout_ms, peer_call_done);
  return rc == MBX_ECLOSED ? MBX_EPEER : rc;
}

int mbx_peer_call(struct mbx_node *n, const char *node_name, const Mbx__Request *req,
                  uint32_t timeout_ms, mbx_peer_cb cb, void *arg)
{
  struct peer_call *c = calloc(1, sizeof(*c));
  if (!c)
    return MBX_ENOMEM;
  c->cb = cb;
  c->arg = arg;
  c->timeout_ms = timeout_ms ? timeout_ms : PEER_CALL_TIMEOUT_MS;
  int rc = peer_start(n, node_name, req, c);
  if (rc < 0)
    free(c);
  return rc;
}

int mbx_peer_stream(struct mbx_node *n, const char *node_name, const Mbx__Request *req,
                    uint32_t idle_timeout_ms, mbx_peer_stream_cb cb, void *arg,
                    uint64_t *call_id_r)
{
  struct peer_call *c = calloc(1, sizeof(*c));
  if (!c)
    return MBX_ENOMEM;
  c->scb = cb;
  c->arg = arg;
  c->timeout_ms = idle_timeout_ms;
  int rc = peer_start(n, node_name, req, c);
  if (rc < 0) {
    free(c);
    return rc;
  }
  if (call_id_r)
    *call_id_r = c->rc.id;
  return 0;
}

/* The open connection carrying call_id (any of the peer's when 0). */
static struct peer_conn *peer_conn_of(struct mbx_node *n, const char *name, uint64_t call_id)
{
  if (!n->peers)
    return NULL;
  for (struct peer_conn *pc = n->peers->conns; pc; pc = pc->next) {
    if (strcmp(pc->name, name) != 0 || !pc->stream)
      continue;
    if (call_id == 0 || mbx_rpc_has_call(pc->rpc, call_id))
      return pc;
  }
  return NULL;
}

void mbx_peer_cancel(struct mbx_node *n, const char *node_name, uint64_t call_id)
{
  struct peer_conn *pc = peer_conn_of(n, node_name, call_id);
  struct mbx_rpc_call *rc = pc && call_id ? mbx_rpc_cancel(pc->rpc, call_id) : NULL;
  if (rc)
    free(rc->data);
}

int mbx_peer_send(struct mbx_node *n, const char *node_name, uint64_t call_id,
                  const Mbx__Request *req)
{
  struct peer_conn *pc = peer_conn_of(n, node_name, call_id);
  if (!pc)
    return MBX_EPEER;
  int rc = mbx_stream_send_pb(pc->stream, &req->base);
  return rc == MBX_ECLOSED ? MBX_EPEER : rc;
}

size_t mbx_peer_queue_bytes(struct mbx_node *n, const char *node_name)
{
  struct peer_conn *pc = peer_conn_of(n, node_name, 0);
  return pc ? mbx_stream_write_queue_bytes(pc->stream) : 0;
}

void mbx_peer_shutdown(struct mbx_node *n)
{
  struct mbx_peer_pool *p = n->peers;
  if (!p || p->stopping)
    return;
  p->stopping = true;
  /* Connections are freed only from their rpc's close callback, so the list holds. */
  for (struct peer_conn *pc = p->conns; pc; pc = pc->next) {
    if (!pc->stream)
      continue;                       /* closing already: its calls have ended */
    mbx_rpc_detach(pc->rpc, MBX_ESHUTDOWN);
    mbx_stream_close(pc->stream, 0);
  }
  peer_pool_maybe_free(p);
}

/* ---- forwarding ---------------------------------------------------------------- */

struct peer_fwd {
  struct mbx_req *r;
  char node[MBX_NODECONF_NAME_MAX + 1];
};

/* Relays one answer; a reseed's progress keeps the forward open until done. */
static bool peer_forward_cb(int status, const Mbx__Response *resp, void *arg)
{
  struct peer_fwd *f = arg;
  struct mbx_req *r = f->r;
  if (resp && status == 0 && resp->body_case == MBX__RESPONSE__BODY_SEED_PROGRESS &&
      !(resp->seed_progress && resp->seed_progress->done)) {
    Mbx__Response copy = *resp;
    if (mbx_req_send(r, &copy) == 0)
      return true;
    /* the asker is gone: stop relaying (the reseed itself goes on at the peer) */
    r->status = MBX_ECLOSED;
  } else if (resp) {
    r->resp = *resp;                  /* borrowed: packed by mbx_req_finish below */
    r->resp.error = resp->error;
    r->status = 0;
  } else {
    r->status = MBX_EPEER;
    r->errmsg = mbx_arena_printf(&r->arena, "node %s: %s", f->node,
                                 status == MBX_ETIMEDOUT ? "no answer in time"
                                 : status == MBX_ESHUTDOWN ? "this node is shutting down"
                                                           : "unreachable");
  }
  mbx_req_finish(r);
  free(f);
  return false;
}

int mbx_peer_forward(struct mbx_req *r, const char *node_name)
{
  struct mbx_node *n = r->conn->node;
  struct peer_fwd *f = calloc(1, sizeof(*f));
  if (!f) {
    r->status = MBX_ENOMEM;
    return MBX_ENOMEM;
  }
  f->r = r;
  snprintf(f->node, sizeof(f->node), "%s", node_name);
  /* A reseed streams progress for as long as the copy takes: idle timeout only. */
  uint32_t idle_ms = r->rq->body_case == MBX__REQUEST__BODY_COPY_RESEED ? 120000 : PEER_CALL_TIMEOUT_MS;
  int rc = mbx_peer_stream(n, node_name, r->rq, idle_ms, peer_forward_cb, f, NULL);
  if (rc < 0) {
    free(f);
    r->status = rc == MBX_ENOTFOUND ? MBX_EPEER : rc;
    r->errmsg = mbx_arena_printf(&r->arena,
                                 rc == MBX_ENOTFOUND ? "node %s is not a known peer (add peer.%s to the config)"
                                                     : "node %s: cannot forward: %s",
                                 node_name, rc == MBX_ENOTFOUND ? node_name : mbx_strerror(rc));
    return r->status;
  }
  mbx_debug("forwarded request %llu (type %d) to %s", (unsigned long long)r->rq->id,
            (int)r->rq->body_case, node_name);
  return 1;
}

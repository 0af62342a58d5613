/* handler_repl.c — replication requests from other nodes (a passive's pull and its
 * acks), copy status (each database answered by its active's node: asked over the
 * peer connections when the copy here is passive), and the redirect a passive copy
 * gives to clients. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handler_repl.h"
#include "log.h"
#include "mbx_error.h"
#include "peer.h"
#include "repl.h"

#define CS_PEER_TIMEOUT_MS 5000

static int hr_fail(struct mbx_req *r, int code, const char *msg)
{
  r->status = code;
  r->errmsg = msg;
  return code;
}

int mbx_handler_not_active(struct mbx_req *r, struct mbx_db *db)
{
  struct mbx_node *n = r->conn->node;
  struct mbx_store_copy_meta m;
  const char *addr = NULL, *active = mbx_db_successor(db);
  if (!*active && db->store && mbx_store_get_copy_meta(db->store, &m) == 0 && m.active_node[0])
    active = mbx_arena_strdup(&r->arena, m.active_node);
  if (active && *active)
    addr = mbx_peer_addr(n, active);
  r->redirect = addr ? mbx_arena_strdup(&r->arena, addr) : NULL;
  r->active_node = active && *active ? active : NULL;
  return hr_fail(r, MBX_ENOTACTIVE,
                 mbx_arena_printf(&r->arena, "database %s is %s on node %s%s%s", db->name,
                                  mbx_db_state_name(mbx_db_state(db)), n->conf->node_name,
                                  addr ? "; its active copy is at " : "", addr ? addr : ""));
}

/* ---- pull and ack ------------------------------------------------------------------ */

static int hr_pull(struct mbx_req *r)
{
  const Mbx__ReplPullReq *q = r->rq->repl_pull;
  if (!q->db || !q->node || strlen(q->node) > MBX_NODECONF_NAME_MAX)
    return hr_fail(r, MBX_EINVAL, "repl_pull needs db and node");
  return mbx_repl_source_pull(r);
}

static int hr_ack(struct mbx_req *r)
{
  const Mbx__ReplAckReq *a = r->rq->repl_ack;
  struct mbx_db *db = a->db ? mbx_node_db(r->conn->node, a->db) : NULL;
  if (db && a->node && strlen(a->node) <= MBX_NODECONF_NAME_MAX)
    mbx_repl_source_ack(db, a);
  if (r->rq->id == 0)
    return 0;                         /* id 0: mbx_req_finish sends nothing */
  if (!db)
    return hr_fail(r, MBX_ENOTFOUND, "no such database");
  return 0;
}

/* ---- copy status ---------------------------------------------------------------------- */

struct cs_slot {
  Mbx__CopyStatus **v;
  size_t n;
};

struct cs_gather {
  struct mbx_req *r;
  struct cs_slot *slots;
  size_t n_slots;
  uint32_t pending;
  int status;
  const char *errmsg;
  bool verify;                        /* asked by an operator: check every copy's node */
  struct { char node[64]; int status; } down[8]; /* actives that did not answer */
  size_t n_down;
};

struct cs_ask {
  struct cs_gather *g;
  size_t slot;
  struct mbx_db *db;
  char active[64];
};

static void cs_finish(struct cs_gather *g);

/* The active's node did not answer: a row of its own says so, and the view is
 * partial (this copy's own row comes from cs_local_passive). */
static void cs_active_down(struct cs_gather *g, size_t slot, struct mbx_db *db,
                           const char *active, int status)
{
  struct mbx_req *r = g->r;
  struct cs_slot *sl = &g->slots[slot];
  Mbx__CopyStatus *st = mbx_arena_pbnew(&r->arena, &mbx__copy_status__descriptor);
  Mbx__CopyStatus **v = mbx_arena_alloc(&r->arena, (sl->n + 1) * sizeof(*v));
  if (!st || !v)
    return;
  st->db = db->name;
  st->node = mbx_arena_strdup(&r->arena, active);
  st->role = "active";
  st->status = "ServiceDown";
  if (sl->n)
    memcpy(v, sl->v, sl->n * sizeof(*v));
  v[sl->n++] = st;
  sl->v = v;
  if (g->n_down < sizeof(g->down) / sizeof(g->down[0])) {
    snprintf(g->down[g->n_down].node, sizeof(g->down[0].node), "%s", active);
    g->down[g->n_down++].status = status;
  }
}

/* ---- verification: every copy's own node is asked too --------------------------------
 * The active's view of a passive is what that passive last told it; a passive whose
 * node is down would keep its last words (e.g. Healthy) there. So the node an
 * operator asked also asks each other node that holds a copy for its own view; a
 * node that does not answer makes its rows ServiceDown and the view partial. */

struct cs_verify {
  struct mbx_req *r;
  Mbx__CopyStatusResp *cr;
  uint32_t pending;
};

struct cs_verify_ask {
  struct cs_verify *v;
  char node[64];
};

static void cs_verify_end(struct cs_verify *v)
{
  struct mbx_req *r = v->r;
  r->resp.body_case = MBX__RESPONSE__BODY_COPY_STATUS;
  r->resp.copy_status = v->cr;
  free(v);
  mbx_req_finish(r);
}

static bool cs_unreachable_has(const Mbx__CopyStatusResp *cr, const char *node)
{
  for (size_t i = 0; i < cr->n_unreachable; i++)
    if (strcmp(cr->unreachable[i], node) == 0)
      return true;
  return false;
}

/* The rows of node in cr become ServiceDown; node is listed as unreachable. */
static void cs_mark_down(struct mbx_req *r, Mbx__CopyStatusResp *cr, const char *node,
                         int status)
{
  for (size_t i = 0; i < cr->n_copies; i++) {
    Mbx__CopyStatus *c = cr->copies[i];
    if (strcmp(c->node, node) != 0)
      continue;
    c->status = "ServiceDown";
    c->reason = mbx_arena_printf(&r->arena, "node %s did not answer (%s)%s%s", node,
                                 mbx_strerror(status), c->reason && *c->reason ? "; last known: " : "",
                                 c->reason && *c->reason ? c->reason : "");
  }
  if (cs_unreachable_has(cr, node))
    return;
  char **u = mbx_arena_alloc(&r->arena, (cr->n_unreachable + 1) * sizeof(*u));
  if (!u)
    return;
  if (cr->n_unreachable)
    memcpy(u, cr->unreachable, cr->n_unreachable * sizeof(*u));
  u[cr->n_unreachable++] = mbx_arena_strdup(&r->arena, node);
  cr->unreachable = u;
}

/* Replaces a passive's row in cr by its own node's view of it (its status and reason
 * are first-hand: Failed, Diverged, Seeding…), keeping the active's side of it. */
static void cs_take_own_view(struct mbx_req *r, Mbx__CopyStatusResp *cr,
                             const Mbx__CopyStatusResp *own, const char *node)
{
  for (size_t j = 0; j < own->n_copies; j++) {
    const Mbx__CopyStatus *o = own->copies[j];
    if (strcmp(o->node, node) != 0 || !o->role || strcmp(o->role, "passive") != 0)
      continue;
    for (size_t i = 0; i < cr->n_copies; i++) {
      Mbx__CopyStatus *c = cr->copies[i];
      if (strcmp(c->node, node) != 0 || strcmp(c->db, o->db) != 0)
        continue;
      if (o->status && strcmp(o->status, "DisconnectedAndHealthy") != 0) {
        c->status = mbx_arena_strdup(&r->arena, o->status);
        c->reason = o->reason ? mbx_arena_strdup(&r->arena, o->reason) : NULL;
      } else if (o->status && c->status && strcmp(c->status, "Healthy") == 0) {
        /* the copy says it is cut off from the active: it is not Healthy */
        c->status = mbx_arena_strdup(&r->arena, o->status);
        c->reason = o->reason ? mbx_arena_strdup(&r->arena, o->reason) : NULL;
      }
    }
  }
}

static void cs_verify_done(int status, const Mbx__Response *resp, void *arg)
{
  struct cs_verify_ask *a = arg;
  struct cs_verify *v = a->v;
  const Mbx__CopyStatusResp *own = status == 0 && resp ? resp->copy_status : NULL;
  if (own)
    cs_take_own_view(v->r, v->cr, own, a->node);
  else {
    mbx_warning("copy status: node %s did not answer (%s); its copies are shown as ServiceDown",
                a->node, mbx_strerror(status));
    cs_mark_down(v->r, v->cr, a->node, status ? status : MBX_EPROTO);
  }
  free(a);
  if (--v->pending == 0)
    cs_verify_end(v);
}

static bool cs_asked(Mbx__CopyStatus **c, size_t i)
{
  for (size_t j = 0; j < i; j++)
    if (strcmp(c[j]->node, c[i]->node) == 0)
      return true;
  return false;
}

static void cs_verify_start(struct mbx_req *r, Mbx__CopyStatusResp *cr)
{
  struct mbx_node *n = r->conn->node;
  struct cs_verify *v = calloc(1, sizeof(*v));
  if (!v) {                           /* unverified, but still an answer */
    r->resp.body_case = MBX__RESPONSE__BODY_COPY_STATUS;
    r->resp.copy_status = cr;
    mbx_req_finish(r);
    return;
  }
  v->r = r;
  v->cr = cr;
  v->pending = 1;
  Mbx__CopyStatusReq q = MBX__COPY_STATUS_REQ__INIT;
  Mbx__Request req = MBX__REQUEST__INIT;
  req.body_case = MBX__REQUEST__BODY_COPY_STATUS;
  req.copy_status = &q;
  for (size_t i = 0; i < cr->n_copies; i++) {
    Mbx__CopyStatus *c = cr->copies[i];
    if (!c->role || strcmp(c->role, "passive") != 0 || strcmp(c->node, n->conf->node_name) == 0 ||
        cs_asked(cr->copies, i) || cs_unreachable_has(cr, c->node))
      continue;
    struct cs_verify_ask *a = calloc(1, sizeof(*a));
    if (!a)
      break;
    a->v = v;
    snprintf(a->node, sizeof(a->node), "%s", c->node);
    v->pending++;
    int rc = mbx_peer_call(n, c->node, &req, CS_PEER_TIMEOUT_MS, cs_verify_done, a);
    if (rc < 0) {
      v->pending--;
      cs_mark_down(r, cr, c->node, rc);
      free(a);
    }
  }
  if (--v->pending == 0)
    cs_verify_end(v);
}

static void cs_finish(struct cs_gather *g)
{
  struct mbx_req *r = g->r;
  size_t total = 0;
  for (size_t i = 0; i < g->n_slots; i++)
    total += g->slots[i].n;
  Mbx__CopyStatusResp *cr = mbx_arena_pbnew(&r->arena, &mbx__copy_status_resp__descriptor);
  Mbx__CopyStatus **v = mbx_arena_alloc(&r->arena, (total + 1) * sizeof(*v));
  if (!cr || !v) {
    r->status = MBX_ENOMEM;
  } else if (g->status < 0 && total == 0) {
    r->status = g->status;
    r->errmsg = g->errmsg;
  } else {
    for (size_t i = 0; i < g->n_slots; i++)
      for (size_t j = 0; j < g->slots[i].n; j++)
        v[cr->n_copies++] = g->slots[i].v[j];
    cr->copies = v;
    for (size_t i = 0; i < g->n_down; i++)
      cs_mark_down(r, cr, g->down[i].node, g->down[i].status);
    if (g->verify) {
      free(g);
      cs_verify_start(r, cr);
      return;
    }
    r->resp.body_case = MBX__RESPONSE__BODY_COPY_STATUS;
    r->resp.copy_status = cr;
  }
  free(g);
  mbx_req_finish(r);
}

/* This copy's own view, when the active cannot be asked. */
static void cs_local_passive(struct cs_gather *g, size_t slot, struct mbx_db *db)
{
  Mbx__CopyStatus *st = NULL;
  if (!db->sink || mbx_repl_sink_status(g->r, db, &st) < 0 || !st)
    return;
  Mbx__CopyStatus **v = mbx_arena_alloc(&g->r->arena, sizeof(*v));
  if (!v)
    return;
  v[0] = st;
  g->slots[slot].v = v;
  g->slots[slot].n = 1;
}

static void cs_peer_done(int status, const Mbx__Response *resp, void *arg)
{
  struct cs_ask *a = arg;
  struct cs_gather *g = a->g;
  struct mbx_req *r = g->r;
  const Mbx__CopyStatusResp *cr = status == 0 && resp ? resp->copy_status : NULL;
  if (cr) {
    Mbx__CopyStatus **v = mbx_arena_alloc(&r->arena, (cr->n_copies + 1) * sizeof(*v));
    size_t n = 0;
    for (size_t i = 0; v && i < cr->n_copies; i++) {
      /* deep copy into the request's arena: resp is borrowed for this call only */
      size_t len = mbx__copy_status__get_packed_size(cr->copies[i]);
      uint8_t *buf = mbx_arena_alloc(&r->arena, len + 1);
      if (!buf)
        break;
      mbx__copy_status__pack(cr->copies[i], buf);
      if ((v[n] = mbx__copy_status__unpack(&r->arena.pb, len, buf)) != NULL)
        n++;
    }
    g->slots[a->slot].v = v;
    g->slots[a->slot].n = n;
  } else {
    mbx_warning("db %s: copy status: the active on %s cannot be asked (%s)", a->db->name,
                a->active, mbx_strerror(status));
    cs_local_passive(g, a->slot, a->db);
    cs_active_down(g, a->slot, a->db, a->active, status ? status : MBX_EPROTO);
  }
  free(a);
  if (--g->pending == 0)
    cs_finish(g);
}

/* One database: the active's view here, or asked from the active's node. */
static void cs_one(struct cs_gather *g, size_t slot, struct mbx_db *db, bool may_forward)
{
  struct mbx_req *r = g->r;
  struct mbx_node *n = r->conn->node;
  if (mbx_db_is_active(db)) {
    if (db->source && mbx_repl_source_status(r, db, &g->slots[slot].v, &g->slots[slot].n) == 0)
      return;
    g->status = MBX_ENOTACTIVE;
    g->errmsg = "replication source not running";
    return;
  }
  struct mbx_store_copy_meta m;
  if (!may_forward || mbx_store_get_copy_meta(db->store, &m) < 0 || !m.active_node[0] ||
      strcmp(m.active_node, n->conf->node_name) == 0) {
    cs_local_passive(g, slot, db);
    return;
  }
  struct cs_ask *a = calloc(1, sizeof(*a));
  if (!a) {
    cs_local_passive(g, slot, db);
    return;
  }
  a->g = g;
  a->slot = slot;
  a->db = db;
  snprintf(a->active, sizeof(a->active), "%s", m.active_node);
  Mbx__CopyStatusReq q = MBX__COPY_STATUS_REQ__INIT;
  q.db = db->name;
  Mbx__Request req = MBX__REQUEST__INIT;
  req.body_case = MBX__REQUEST__BODY_COPY_STATUS;
  req.copy_status = &q;
  g->pending++;
  int rc = mbx_peer_call(n, m.active_node, &req, CS_PEER_TIMEOUT_MS, cs_peer_done, a);
  if (rc < 0) {
    g->pending--;
    free(a);
    cs_local_passive(g, slot, db);
    cs_active_down(g, slot, db, m.active_node, rc);
  }
}

static int hr_copy_status(struct mbx_req *r)
{
  struct mbx_node *n = r->conn->node;
  const char *name = r->rq->copy_status->db;
  /* A node asking is already the one forwarding: never forward again (no loops). */
  bool may_forward = !(r->conn->has_role && r->conn->role == MBX__ROLE__ROLE_NODE);
  struct cs_gather *g = calloc(1, sizeof(*g));
  if (!g)
    return hr_fail(r, MBX_ENOMEM, "out of memory");
  g->r = r;
  g->verify = may_forward;
  g->pending = 1;                     /* held until every database is asked */
  g->slots = mbx_arena_zalloc(&r->arena, (n->n_dbs + 1) * sizeof(*g->slots));
  if (!g->slots) {
    free(g);
    return hr_fail(r, MBX_ENOMEM, "out of memory");
  }
  bool found = false;
  for (size_t i = 0; i < n->n_dbs; i++) {
    struct mbx_db *db = n->dbs[i];
    if (!mbx_db_ready(db) || (name && *name && strcmp(db->name, name) != 0))
      continue;
    found = true;
    cs_one(g, g->n_slots++, db, may_forward);
  }
  if (name && *name && !found) {
    free(g);
    return hr_fail(r, MBX_ENOTFOUND,
                   mbx_arena_printf(&r->arena, "no database %s on node %s", name,
                                    n->conf->node_name));
  }
  if (--g->pending == 0)
    cs_finish(g);
  return 1;
}

int mbx_handler_repl(struct mbx_req *r)
{
  switch (r->rq->body_case) {
  case MBX__REQUEST__BODY_REPL_PULL: return hr_pull(r);
  case MBX__REQUEST__BODY_REPL_ACK: return hr_ack(r);
  case MBX__REQUEST__BODY_COPY_STATUS: return hr_copy_status(r);
  default: return hr_fail(r, MBX_EPROTO, "not a replication request");
  }
}

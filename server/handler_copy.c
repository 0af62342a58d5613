/* handler_copy.c — requests about database copies: copy add/remove (decided by the
 * active's node, which changes the layout through the log and tells the copy's node),
 * suspend/resume/reseed/play-down (acted on by the copy's own node), copy_host and
 * seed between nodes, db_create with copies, db_digest of another node's copy. A
 * request that this node cannot act on is forwarded (mbx_peer_forward) to the node
 * that can; a forwarded admin request arrives with ROLE_NODE and is treated like an
 * operator's. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "handler.h"
#include "handler_copy.h"
#include "handler_repl.h"
#include "log.h"
#include "mbx_error.h"
#include "node.h"
#include "peer.h"
#include "repl.h"
#include "rxlog.h"
#include "sink_int.h"

#define REQ_PENDING MBX_REQ_PENDING
#define COPY_LAG_MAX_S (14u * 24 * 3600)
#define COPY_LAYOUT_MAX 16
#define COPY_HOST_TIMEOUT_MS 30000

/* ---- helpers ------------------------------------------------------------------------ */

#define cfail mbx_req_fail

static struct mbx_node *cnode(struct mbx_req *r) { return r->conn->node; }
static const char *cme(struct mbx_req *r) { return cnode(r)->conf->node_name; }
static bool is_me(struct mbx_req *r, const char *node) { return strcmp(node, cme(r)) == 0; }

static bool from_node(const struct mbx_req *r)
{
  return r->conn->has_role && r->conn->role == MBX__ROLE__ROLE_NODE;
}

static struct mbx_db *ready_db(struct mbx_req *r, const char *name)
{
  struct mbx_db *db = name ? mbx_node_db(cnode(r), name) : NULL;
  if (!db) {
    cfail(r, MBX_ENOTFOUND, "no database '%s' on node %s", name ? name : "", cme(r));
    return NULL;
  }
  if (!mbx_db_ready(db)) {
    /* It exists, but its store is being created or swapped for a fresh seed. */
    cfail(r, MBX_EBUSY, "database '%s' on node %s is being created or is installing a seed; "
                        "try again in a moment", name, cme(r));
    return NULL;
  }
  return db;
}

/* The node holding db's active copy, as this copy knows it. */
static const char *active_node_of(struct mbx_req *r, struct mbx_db *db)
{
  if (mbx_db_is_active(db))
    return cme(r);
  if (db->sink)
    return mbx_arena_strdup(&r->arena, db->sink->meta.active_node);
  struct mbx_store_copy_meta m;
  if (!db->store || mbx_store_get_copy_meta(db->store, &m) < 0 || !m.active_node[0])
    return NULL;
  return mbx_arena_strdup(&r->arena, m.active_node);
}

/* Forwards r to db's active unless this is it; 0 = act here. */
static int to_active(struct mbx_req *r, struct mbx_db *db)
{
  if (mbx_db_is_active(db))
    return 0;
  const char *a = active_node_of(r, db);
  if (!a)
    return cfail(r, MBX_ENOTACTIVE, "the copy of %s on %s does not know its active node",
                 db->name, cme(r));
  if (from_node(r) && r->rq->body_case != MBX__REQUEST__BODY_COPY_REMOVE)
    return cfail(r, MBX_ENOTACTIVE, "database %s is not active on %s (active: %s)", db->name,
                 cme(r), a);            /* never bounce a forwarded request around */
  return mbx_peer_forward(r, a);
}

static int known_peer(struct mbx_req *r, const char *node)
{
  if (!node || !*node || strlen(node) > 63)
    return cfail(r, MBX_EINVAL, "a node name is required");
  if (!is_me(r, node) && !mbx_peer_addr(cnode(r), node))
    return cfail(r, MBX_ENOTFOUND, "node %s is not a known peer of %s (peer.%s in its config)",
                 node, cme(r), node);
  return 0;
}

static int answer_status(struct mbx_req *r, struct mbx_db *db)
{
  Mbx__CopyStatus *st = NULL;
  int rc = mbx_repl_sink_status(r, db, &st);
  if (rc < 0)
    return cfail(r, rc, "database %s: cannot build the status", db->name);
  r->resp.body_case = MBX__RESPONSE__BODY_COPY;
  r->resp.copy = st;
  return 0;
}

static Mbx__CopyStatus *brief_status(struct mbx_req *r, const char *db, const char *node,
                                     const char *status)
{
  Mbx__CopyStatus *st = mbx_arena_pbnew(&r->arena, &mbx__copy_status__descriptor);
  if (st) {
    st->db = mbx_arena_strdup(&r->arena, db);
    st->node = mbx_arena_strdup(&r->arena, node);
    st->role = "passive";
    st->status = (char *)status;
  }
  return st;
}

/* ---- layout changes (on the active) -------------------------------------------------- */

/* One copy add/remove (or db_create with copies) in flight on the active. */
struct copy_op {
  struct mbx_req *r;
  struct mbx_db *db;
  Mbx__CopyLayout *layout;            /* in r's arena */
  const char *node;                   /* the copy added/removed */
  uint32_t lag_s;
  const char *seed_source;
  uint32_t waiting;                   /* db_create: CopyHostReqs not answered yet */
  char errors[400];
};

static int copy_get_layout(struct mbx_req *r, struct mbx_db *db, Mbx__CopyLayout **l_r)
{
  struct mbx_rtxn *t;
  int rc = mbx_store_rtxn_begin(db->store, &t);
  if (rc == 0) {
    rc = mbx_store_get_copies(t, &r->arena, l_r);
    mbx_store_rtxn_end(&t);
  }
  if (rc < 0)
    return cfail(r, rc, "database %s: cannot read its copy layout: %s", db->name,
                 mbx_strerror(rc));
  return 0;
}

static Mbx__CopyEntry *copy_entry(struct mbx_req *r, const char *node, uint32_t pref,
                                  uint32_t lag_s)
{
  Mbx__CopyEntry *e = mbx_arena_pbnew(&r->arena, &mbx__copy_entry__descriptor);
  if (e) {
    e->node = mbx_arena_strdup(&r->arena, node);
    e->has_preference = 1;
    e->preference = pref;
    e->has_lag_s = lag_s ? 1 : 0;
    e->lag_s = lag_s;
  }
  return e;
}

static int copy_layout_run(struct mbx_wtxn *w, void *arg)
{
  struct copy_op *op = arg;
  return mbx_store_set_copies(w, op->layout);
}

static int copy_submit_layout(struct copy_op *op, mbx_commit_done_fn done)
{
  struct mbx_req *r = op->r;
  if (!op->db->committer)
    return cfail(r, MBX_ESHUTDOWN, "database %s is not accepting writes", op->db->name);
  int rc = mbx_committer_submit(op->db->committer, copy_layout_run, done, op);
  if (rc < 0)
    return cfail(r, rc, "database %s: cannot change the copy layout: %s", op->db->name,
                 mbx_strerror(rc));
  return REQ_PENDING;
}

static void copy_host_sent(int status, const Mbx__Response *resp, void *arg)
{
  struct copy_op *op = arg;
  struct mbx_req *r = op->r;
  if (status < 0) {
    const char *msg = resp && resp->error && resp->error->message ? resp->error->message
                                                                  : mbx_strerror(status);
    cfail(r, status, "copy of %s added to the layout, but node %s could not create it: %s",
          op->db->name, op->node, msg);
  } else {
    r->resp.body_case = MBX__RESPONSE__BODY_COPY;
    r->resp.copy = brief_status(r, op->db->name, op->node, op->seed_source ? "Seeding"
                                                                            : "Initializing");
    mbx_notice("db %s: copy added on %s%s", op->db->name, op->node,
               op->seed_source ? " (seeding)" : "");
  }
  free(op);
  mbx_req_finish(r);
}

static int copy_send_host(struct copy_op *op, const char *node, mbx_peer_cb cb)
{
  Mbx__CopyHostReq h = MBX__COPY_HOST_REQ__INIT;
  h.db = op->db->name;
  h.active_node = (char *)cme(op->r);
  h.has_lag_s = op->lag_s ? 1 : 0;
  h.lag_s = op->lag_s;
  h.seed_source = (char *)op->seed_source;
  Mbx__Request rq = MBX__REQUEST__INIT;
  rq.body_case = MBX__REQUEST__BODY_COPY_HOST;
  rq.copy_host = &h;
  return mbx_peer_call(cnode(op->r), node, &rq, COPY_HOST_TIMEOUT_MS, cb, op);
}

static void copy_add_committed(int status, uint64_t lsn, void *arg)
{
  (void)lsn;
  struct copy_op *op = arg;
  struct mbx_req *r = op->r;
  int rc = status;
  if (rc == 0)
    rc = copy_send_host(op, op->node, copy_host_sent);
  if (rc < 0) {
    if (r->status == 0)
      cfail(r, rc, "cannot add a copy of %s on %s: %s", op->db->name, op->node,
            mbx_strerror(rc));
    free(op);
    mbx_req_finish(r);
  }
}

static int h_copy_add(struct mbx_req *r)
{
  Mbx__CopyAddReq *q = r->rq->copy_add;
  struct mbx_db *db = ready_db(r, q->db);
  if (!db)
    return r->status;
  int rc = to_active(r, db);
  if (rc != 0)
    return rc;
  if ((rc = known_peer(r, q->node)) < 0)
    return rc;
  if (is_me(r, q->node))
    return cfail(r, MBX_EEXIST, "node %s already holds the active copy of %s", q->node, db->name);
  if (q->lag_s > COPY_LAG_MAX_S)
    return cfail(r, MBX_EINVAL, "lag must be 0 … %u seconds (14 days)", COPY_LAG_MAX_S);
  if (q->source && *q->source && (rc = known_peer(r, q->source)) < 0)
    return rc;
  Mbx__CopyLayout *old;
  if ((rc = copy_get_layout(r, db, &old)) < 0)
    return rc;
  uint32_t max_pref = 0;
  bool has_me = false;
  for (size_t i = 0; i < old->n_copies; i++) {
    if (strcmp(old->copies[i]->node, q->node) == 0)
      return cfail(r, MBX_EEXIST, "node %s already has a copy of %s", q->node, db->name);
    has_me |= is_me(r, old->copies[i]->node);
    if (old->copies[i]->preference > max_pref)
      max_pref = old->copies[i]->preference;
  }
  if (old->n_copies + 2 > COPY_LAYOUT_MAX)
    return cfail(r, MBX_ELIMIT, "database %s has the most copies allowed (%d)", db->name,
                 COPY_LAYOUT_MAX);
  Mbx__CopyLayout *l = mbx_arena_pbnew(&r->arena, &mbx__copy_layout__descriptor);
  struct copy_op *op = calloc(1, sizeof(*op));
  if (!l || !op || !(l->copies = mbx_arena_zalloc(&r->arena, (old->n_copies + 2) *
                                                               sizeof(*l->copies)))) {
    free(op);
    return cfail(r, MBX_ENOMEM, "out of memory");
  }
  for (size_t i = 0; i < old->n_copies; i++)
    l->copies[l->n_copies++] = old->copies[i];
  if (!has_me)                        /* a database made without --copies */
    l->copies[l->n_copies++] = copy_entry(r, cme(r), ++max_pref, 0);
  l->copies[l->n_copies++] =
    copy_entry(r, q->node, q->has_preference && q->preference ? q->preference : max_pref + 1,
               q->lag_s);
  for (size_t i = 0; i < l->n_copies; i++)
    if (!l->copies[i]) {
      free(op);
      return cfail(r, MBX_ENOMEM, "out of memory");
    }
  *op = (struct copy_op){.r = r, .db = db, .layout = l, .node = q->node, .lag_s = q->lag_s};
  op->seed_source = q->source && *q->source ? q->source : cme(r);
  rc = copy_submit_layout(op, copy_add_committed);
  if (rc != REQ_PENDING)
    free(op);
  return rc;
}

/* ---- copy remove -------------------------------------------------------------------- */

struct copy_drop {
  struct mbx_req *r;
  struct mbx_db *db;
  struct mbx_store *store;
  struct mbx_repl_sink *unused;
  char dir[4400];
  int rc;
  uv_work_t work;
};

static void copy_drop_work(uv_work_t *w)
{
  struct copy_drop *d = w->data;
  mbx_store_close(&d->store);
  d->rc = mbx_repl_rmdir(d->dir);
  char rx[4500];
  snprintf(rx, sizeof(rx), "%s.rxlog", d->dir);
  mbx_repl_rxlog_remove(rx);
}

static void copy_drop_after(uv_work_t *w, int status)
{
  struct copy_drop *d = w->data;
  struct mbx_req *r = d->r;
  (void)status;
  if (d->rc < 0)
    mbx_warning("db %s: copy removed, but %s could not be deleted", d->db->name, d->dir);
  else
    mbx_notice("db %s: copy removed from this node", d->db->name);
  mbx_node_db_remove(cnode(r), d->db);
  r->resp.body_case = MBX__RESPONSE__BODY_COPY;
  r->resp.copy = brief_status(r, r->rq->copy_remove->db, cme(r), "Removed");
  free(d);
  mbx_req_finish(r);
}

/* This node's passive copy goes: the active has dropped it from the layout. */
static int copy_drop_local(struct mbx_req *r, struct mbx_db *db)
{
  if (mbx_db_is_active(db))
    return cfail(r, MBX_EINVAL, "the copy of %s on %s is active; it cannot be removed",
                 db->name, cme(r));
  struct copy_drop *d = calloc(1, sizeof(*d));
  if (!d)
    return cfail(r, MBX_ENOMEM, "out of memory");
  d->r = r;
  d->db = db;
  /* REMOVING: replication stops, the name stays taken until the files are gone */
  int rc = mbx_db_detach_store(db, true, &d->store);
  if (rc < 0) {
    free(d);
    return cfail(r, rc, "the copy of %s on %s cannot be removed in state %s", db->name, cme(r),
                 mbx_db_state_name(mbx_db_state(db)));
  }
  snprintf(d->dir, sizeof(d->dir), "%s", mbx_store_path(d->store));
  d->work.data = d;
  if (uv_queue_work(cnode(r)->loop, &d->work, copy_drop_work, copy_drop_after) != 0) {
    mbx_db_attach_store(cnode(r), db, d->store); /* left open, not replicating */
    free(d);
    return cfail(r, MBX_ENOMEM, "cannot remove the copy now");
  }
  return REQ_PENDING;
}

static void copy_remove_told(int status, const Mbx__Response *resp, void *arg)
{
  struct copy_op *op = arg;
  struct mbx_req *r = op->r;
  if (status < 0) {
    const char *msg = resp && resp->error && resp->error->message ? resp->error->message
                                                                  : mbx_strerror(status);
    cfail(r, status, "copy of %s on %s removed from the layout, but that node could not "
                     "delete it: %s", op->db->name, op->node, msg);
  } else {
    r->resp.body_case = MBX__RESPONSE__BODY_COPY;
    r->resp.copy = brief_status(r, op->db->name, op->node, "Removed");
    mbx_notice("db %s: copy on %s removed", op->db->name, op->node);
  }
  free(op);
  mbx_req_finish(r);
}

static void copy_remove_committed(int status, uint64_t lsn, void *arg)
{
  (void)lsn;
  struct copy_op *op = arg;
  struct mbx_req *r = op->r;
  int rc = status;
  if (rc == 0) {
    Mbx__CopyRemoveReq q = MBX__COPY_REMOVE_REQ__INIT;
    q.db = op->db->name;
    q.node = (char *)op->node;
    Mbx__Request rq = MBX__REQUEST__INIT;
    rq.body_case = MBX__REQUEST__BODY_COPY_REMOVE;
    rq.copy_remove = &q;
    rc = mbx_peer_call(cnode(r), op->node, &rq, COPY_HOST_TIMEOUT_MS, copy_remove_told, op);
  }
  if (rc < 0) {
    cfail(r, rc, "cannot remove the copy of %s on %s: %s", op->db->name, op->node,
          mbx_strerror(rc));
    free(op);
    mbx_req_finish(r);
  }
}

static int h_copy_remove(struct mbx_req *r)
{
  Mbx__CopyRemoveReq *q = r->rq->copy_remove;
  struct mbx_db *db = ready_db(r, q->db);
  if (!db)
    return r->status;
  if (from_node(r) && is_me(r, q->node) && !mbx_db_is_active(db)) {
    /* Only the active's node, which has dropped the copy from the layout, tells it. */
    if (mbx_req_check_node(r, active_node_of(r, db), "removal of this copy (from the active)") < 0)
      return r->status;
    return copy_drop_local(r, db);
  }
  int rc = to_active(r, db);
  if (rc != 0)
    return rc;
  if ((rc = known_peer(r, q->node)) < 0)
    return rc;
  if (is_me(r, q->node))
    return cfail(r, MBX_EINVAL, "the copy of %s on %s is active; it cannot be removed",
                 db->name, q->node);
  Mbx__CopyLayout *old;
  if ((rc = copy_get_layout(r, db, &old)) < 0)
    return rc;
  Mbx__CopyLayout *l = mbx_arena_pbnew(&r->arena, &mbx__copy_layout__descriptor);
  struct copy_op *op = calloc(1, sizeof(*op));
  if (!l || !op || !(l->copies = mbx_arena_zalloc(&r->arena, (old->n_copies + 1) *
                                                               sizeof(*l->copies)))) {
    free(op);
    return cfail(r, MBX_ENOMEM, "out of memory");
  }
  bool found = false;
  for (size_t i = 0; i < old->n_copies; i++) {
    if (strcmp(old->copies[i]->node, q->node) == 0)
      found = true;
    else
      l->copies[l->n_copies++] = old->copies[i];
  }
  if (!found) {
    free(op);
    return cfail(r, MBX_ENOTFOUND, "node %s has no copy of %s", q->node, db->name);
  }
  *op = (struct copy_op){.r = r, .db = db, .layout = l, .node = q->node};
  rc = copy_submit_layout(op, copy_remove_committed);
  if (rc != REQ_PENDING)
    free(op);
  return rc;
}

/* ---- actions on this node's copy ------------------------------------------------------ */

static void copy_action_done(int status, const char *msg, void *arg)
{
  struct mbx_req *r = arg;
  struct mbx_db *db = mbx_node_db(cnode(r), r->db ? r->db->name : "");
  if (status < 0)
    cfail(r, status, "%s", msg ? msg : mbx_strerror(status));
  else if (db && db == r->db && db->store)
    answer_status(r, db);
  mbx_req_finish(r);
}

/* The copy named by (db, node) when node is this node; else the request is forwarded
 * (returns 1) or failed (< 0). */
static int copy_here(struct mbx_req *r, const char *dbname, const char *node,
                     struct mbx_db **db_r)
{
  int rc = known_peer(r, node);
  if (rc < 0)
    return rc;
  if (!is_me(r, node)) {
    if (from_node(r))
      return cfail(r, MBX_EINVAL, "request for the copy on %s reached %s", node, cme(r));
    return mbx_peer_forward(r, node);
  }
  struct mbx_db *db = ready_db(r, dbname);
  if (!db)
    return r->status;
  if (mbx_db_is_active(db) || !db->sink)
    return cfail(r, MBX_EINVAL, "the copy of %s on %s is the active copy (or not replicating)",
                 db->name, node);
  r->db = db;
  *db_r = db;
  return 0;
}

static int copy_action_rc(struct mbx_req *r, struct mbx_db *db, int rc, const char *what)
{
  if (rc == 0)
    return REQ_PENDING;
  if (rc == MBX_EBUSY)
    return cfail(r, rc, "the copy of %s on %s is busy (seeding or another %s in progress)",
                 db->name, cme(r), what);
  return cfail(r, rc, "cannot %s the copy of %s on %s: %s", what, db->name, cme(r),
               mbx_strerror(rc));
}

static int h_copy_suspend(struct mbx_req *r)
{
  Mbx__CopySuspendReq *q = r->rq->copy_suspend;
  struct mbx_db *db;
  int rc = copy_here(r, q->db, q->node, &db);
  if (rc != 0)
    return rc;
  if (q->comment && strlen(q->comment) > 255)
    return cfail(r, MBX_EINVAL, "the comment is limited to 255 bytes");
  return copy_action_rc(r, db, mbx_repl_sink_suspend(db, q->comment, copy_action_done, r),
                        "suspend");
}

static int h_copy_resume(struct mbx_req *r)
{
  Mbx__CopyResumeReq *q = r->rq->copy_resume;
  struct mbx_db *db;
  int rc = copy_here(r, q->db, q->node, &db);
  if (rc != 0)
    return rc;
  return copy_action_rc(r, db, mbx_repl_sink_resume(db, copy_action_done, r), "resume");
}

static int h_copy_play_down(struct mbx_req *r)
{
  Mbx__CopyPlayDownReq *q = r->rq->copy_play_down;
  struct mbx_db *db;
  int rc = copy_here(r, q->db, q->node, &db);
  if (rc != 0)
    return rc;
  return copy_action_rc(r, db, mbx_repl_sink_play_down(db, copy_action_done, r), "play down");
}

static void copy_reseed_progress(uint64_t done, uint64_t total, bool finished, int status,
                                 uint64_t snapshot_lsn, void *arg)
{
  struct mbx_req *r = arg;
  if (!finished) {
    Mbx__SeedProgress p = MBX__SEED_PROGRESS__INIT;
    p.has_bytes_done = p.has_bytes_total = 1;
    p.bytes_done = done;
    p.bytes_total = total;
    Mbx__Response resp = MBX__RESPONSE__INIT;
    resp.body_case = MBX__RESPONSE__BODY_SEED_PROGRESS;
    resp.seed_progress = &p;
    mbx_req_send(r, &resp);           /* a closed connection just misses progress */
    return;
  }
  if (status < 0) {
    const char *why = r->db && r->db->sink ? r->db->sink->meta.reason : "";
    cfail(r, status, "reseed of %s on %s failed: %s", r->rq->copy_reseed->db, cme(r),
          why[0] ? why : mbx_strerror(status));
  } else {
    Mbx__SeedProgress *p = mbx_arena_pbnew(&r->arena, &mbx__seed_progress__descriptor);
    if (p) {
      p->has_bytes_done = p->has_bytes_total = p->has_done = p->has_snapshot_lsn = 1;
      p->bytes_done = done;
      p->bytes_total = total;
      p->done = true;
      p->snapshot_lsn = snapshot_lsn;
      r->resp.body_case = MBX__RESPONSE__BODY_SEED_PROGRESS;
      r->resp.seed_progress = p;
    }
  }
  mbx_req_finish(r);
}

static int h_copy_reseed(struct mbx_req *r)
{
  Mbx__CopyReseedReq *q = r->rq->copy_reseed;
  struct mbx_db *db;
  int rc = copy_here(r, q->db, q->node, &db);
  if (rc != 0)
    return rc;
  if (q->source && *q->source) {
    if ((rc = known_peer(r, q->source)) < 0)
      return rc;
    if (is_me(r, q->source))
      return cfail(r, MBX_EINVAL, "a copy cannot be seeded from itself");
  }
  return copy_action_rc(r, db, mbx_repl_sink_reseed(db, q->source, copy_reseed_progress, r),
                        "reseed");
}

/* ---- copy_host (node → node) -------------------------------------------------------- */

static void copy_host_work(uv_work_t *w)
{
  struct mbx_req *r = w->data;
  struct mbx_node *n = cnode(r);
  Mbx__CopyHostReq *q = r->rq->copy_host;
  r->work_rc = mbx_store_open(n->db_dir, q->db, true, &n->store_opt, &r->new_store,
                              &r->store_error);
  if (r->work_rc < 0)
    return;
  struct mbx_store_copy_meta m;
  memset(&m, 0, sizeof(m));
  snprintf(m.active_node, sizeof(m.active_node), "%s", q->active_node);
  snprintf(m.seed_source, sizeof(m.seed_source), "%s", q->seed_source ? q->seed_source : "");
  m.lag_s = q->lag_s;
  r->work_rc = mbx_store_set_copy_meta(r->new_store, &m);
}

static void copy_host_after(uv_work_t *w, int status)
{
  struct mbx_req *r = w->data;
  struct mbx_node *n = cnode(r);
  struct mbx_db *db = r->db;
  int rc = status == UV_ECANCELED ? MBX_ESHUTDOWN : r->work_rc;
  if (rc == 0 && n->stopping)
    rc = MBX_ESHUTDOWN;
  if (rc == 0) {
    struct mbx_store *store = r->new_store;
    r->new_store = NULL;
    if ((rc = mbx_db_mount(n, db, store)) < 0) {
      r->store_error = mbx_arena_strdup(&r->arena, mbx_db_reason(db));
      mbx_committer_stop(&db->committer);
      mbx_store_close(&db->store);
    }
  }
  if (rc < 0) {
    cfail(r, rc, "node %s cannot create a copy of %s: %s", n->conf->node_name, db->name,
          r->store_error ? r->store_error : mbx_strerror(rc));
    mbx_error("db %s: %s", db->name, r->errmsg);
    if (r->new_store)
      mbx_store_close(&r->new_store);
    r->db = NULL;
    mbx_node_db_remove(n, db);
    mbx_req_finish(r);
    return;
  }
  mbx_notice("db %s: passive copy created (active %s%s%s)", db->name,
             r->rq->copy_host->active_node, r->rq->copy_host->seed_source ? ", seed from " : "",
             r->rq->copy_host->seed_source ? r->rq->copy_host->seed_source : "");
  answer_status(r, db);
  mbx_req_finish(r);
}

static int h_copy_host(struct mbx_req *r)
{
  Mbx__CopyHostReq *q = r->rq->copy_host;
  struct mbx_node *n = cnode(r);
  if (!mbx_node_db_name_ok(q->db))
    return cfail(r, MBX_EINVAL, "'%.80s' is not a valid database name", q->db);
  int rc = known_peer(r, q->active_node);
  if (rc < 0)
    return rc;
  if (is_me(r, q->active_node))
    return cfail(r, MBX_EINVAL, "node %s cannot host a passive copy of its own active copy",
                 cme(r));
  if (q->seed_source && *q->seed_source && (rc = known_peer(r, q->seed_source)) < 0)
    return rc;
  if (q->lag_s > COPY_LAG_MAX_S)
    return cfail(r, MBX_EINVAL, "lag must be 0 … %u seconds", COPY_LAG_MAX_S);
  if (mbx_node_db(n, q->db))
    return cfail(r, MBX_EEXIST, "node %s already has a copy of %s", cme(r), q->db);
  if ((rc = mbx_node_db_add(n, q->db, &r->db)) < 0)
    return cfail(r, rc, "cannot add database %s: %s", q->db, mbx_strerror(rc));
  r->work.data = r;
  if (uv_queue_work(n->loop, &r->work, copy_host_work, copy_host_after) != 0) {
    mbx_node_db_remove(n, r->db);
    r->db = NULL;
    return cfail(r, MBX_ENOMEM, "cannot create the copy now");
  }
  return REQ_PENDING;
}

/* ---- db_create with copies ------------------------------------------------------------ */

static void create_host_sent(int status, const Mbx__Response *resp, void *arg);

static void create_after_layout(int status, uint64_t lsn, void *arg)
{
  (void)lsn;
  struct copy_op *op = arg;
  struct mbx_req *r = op->r;
  if (status < 0) {
    cfail(r, status, "database %s created, but its copy layout could not be written: %s",
          op->db->name, mbx_strerror(status));
    free(op);
    mbx_req_finish(r);
    return;
  }
  op->waiting = 1;                    /* held while sending */
  for (size_t i = 0; i < op->layout->n_copies; i++) {
    const char *node = op->layout->copies[i]->node;
    if (is_me(r, node))
      continue;
    op->lag_s = op->layout->copies[i]->lag_s;
    int rc = copy_send_host(op, node, create_host_sent);
    if (rc < 0) {
      size_t l = strlen(op->errors);
      snprintf(op->errors + l, sizeof(op->errors) - l, "%s%s: %s", l ? "; " : "", node,
               mbx_strerror(rc));
    } else {
      op->waiting++;
    }
  }
  create_host_sent(0, NULL, op);      /* drops the hold */
}

static void create_host_sent(int status, const Mbx__Response *resp, void *arg)
{
  struct copy_op *op = arg;
  struct mbx_req *r = op->r;
  if (status < 0) {
    size_t l = strlen(op->errors);
    snprintf(op->errors + l, sizeof(op->errors) - l, "%s%s", l ? "; " : "",
             resp && resp->error && resp->error->message ? resp->error->message
                                                         : mbx_strerror(status));
  }
  if (--op->waiting > 0)
    return;
  if (op->errors[0]) {
    cfail(r, MBX_EPEER, "database %s created on %s, but not every copy: %s", op->db->name,
          cme(r), op->errors);
  } else {
    Mbx__DbInfo *di = mbx_arena_pbnew(&r->arena, &mbx__db_info__descriptor);
    if (di) {
      di->name = op->db->name;
      di->role = "active";
      di->path = (char *)mbx_store_path(op->db->store);
      di->has_epoch = di->has_last_lsn = 1;
      di->epoch = mbx_store_epoch(op->db->store);
      di->last_lsn = mbx_store_last_lsn(op->db->store);
      r->resp.body_case = MBX__RESPONSE__BODY_DB;
      r->resp.db = di;
    }
    mbx_notice("db %s: created with %zu copies", op->db->name, op->layout->n_copies);
  }
  free(op);
  mbx_req_finish(r);
}

/* The database exists here as the active copy: write its layout, then tell the others. */
static void create_after_store(struct mbx_req *r)
{
  struct mbx_db *db = r->db;
  struct copy_op *op = calloc(1, sizeof(*op));
  Mbx__CopyLayout *l = mbx_arena_pbnew(&r->arena, &mbx__copy_layout__descriptor);
  if (!op || !l) {
    free(op);
    cfail(r, MBX_ENOMEM, "database %s created, but out of memory for its copies", db->name);
    mbx_req_finish(r);
    return;
  }
  l->n_copies = r->rq->db_create->n_copies;
  l->copies = r->rq->db_create->copies;
  *op = (struct copy_op){.r = r, .db = db, .layout = l};
  if (copy_submit_layout(op, create_after_layout) != REQ_PENDING) {
    free(op);
    mbx_req_finish(r);
  }
}

static int h_db_create_copies(struct mbx_req *r)
{
  Mbx__DbCreateReq *q = r->rq->db_create;
  if (!mbx_node_db_name_ok(q->name))
    return cfail(r, MBX_EINVAL, "'%.80s' is not a valid database name (a-z, 0-9 first, then "
                                "a-z, 0-9, '_', '-'; at most 63)", q->name);
  if (q->n_copies > COPY_LAYOUT_MAX)
    return cfail(r, MBX_ELIMIT, "at most %d copies", COPY_LAYOUT_MAX);
  const Mbx__CopyEntry *first = NULL;
  uint32_t first_pref = UINT32_MAX;
  for (size_t i = 0; i < q->n_copies; i++) {
    const Mbx__CopyEntry *e = q->copies[i];
    int rc = known_peer(r, e->node);
    if (rc < 0)
      return rc;
    if (e->lag_s > COPY_LAG_MAX_S)
      return cfail(r, MBX_EINVAL, "lag must be 0 … %u seconds", COPY_LAG_MAX_S);
    for (size_t j = 0; j < i; j++)
      if (strcmp(q->copies[j]->node, e->node) == 0)
        return cfail(r, MBX_EINVAL, "node %s is listed twice", e->node);
    uint32_t pref = e->has_preference && e->preference ? e->preference : (uint32_t)i + 1;
    if (pref < first_pref) {
      first = e;
      first_pref = pref;
    }
  }
  if (!is_me(r, first->node)) {
    if (from_node(r))
      return cfail(r, MBX_EINVAL, "forwarded db_create for %s reached %s, not %s", q->name,
                   cme(r), first->node);
    return mbx_peer_forward(r, first->node);   /* the preference-1 node creates it */
  }
  return mbx_handler_db_create(r, q->name, create_after_store);
}

/* ---- dispatch --------------------------------------------------------------------------- */

int mbx_handler_copy(struct mbx_req *r)
{
  switch (r->rq->body_case) {
  case MBX__REQUEST__BODY_COPY_ADD: return h_copy_add(r);
  case MBX__REQUEST__BODY_COPY_REMOVE: return h_copy_remove(r);
  case MBX__REQUEST__BODY_COPY_SUSPEND: return h_copy_suspend(r);
  case MBX__REQUEST__BODY_COPY_RESUME: return h_copy_resume(r);
  case MBX__REQUEST__BODY_COPY_RESEED: return h_copy_reseed(r);
  case MBX__REQUEST__BODY_COPY_PLAY_DOWN: return h_copy_play_down(r);
  case MBX__REQUEST__BODY_COPY_HOST: return h_copy_host(r);
  case MBX__REQUEST__BODY_SEED: {
    struct mbx_db *db = ready_db(r, r->rq->seed->db);
    return db ? mbx_repl_seed_serve(r, db) : r->status;
  }
  case MBX__REQUEST__BODY_DB_CREATE: return h_db_create_copies(r);
  case MBX__REQUEST__BODY_DB_DIGEST: {
    const char *node = r->rq->db_digest->node;
    int rc = known_peer(r, node);
    return rc < 0 ? rc : mbx_peer_forward(r, node);
  }
  default:
    return cfail(r, MBX_EPROTO, "not a copy request (%d)", (int)r->rq->body_case);
  }
}

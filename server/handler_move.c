/* handler_move.c — lossless switchover (admin db move-active) and the node-to-node
 * activation it ends with (DbActivateReq).
 *
 * On the old active A, moving DB to T:
 *   1. drain: A admits no new write (mbx_db_deactivate: new writes get ENOTACTIVE
 *      with a redirect to T); writes already admitted commit and ship;
 *   2. record: A commits the layout naming T active from epoch E+1 — the last
 *      record L of epoch E, behind every admitted write in the committer's order;
 *   3. catch up: A waits until T has durably received L (T's acks), bounded;
 *   4. activate: A asks T to activate at L in epoch E+1; T waits until it has
 *      replayed L, stops pulling and becomes the active (the fence opens in E+1);
 *   5. follow: A becomes a passive of T; its source ends the other passives' pulls
 *      with ENOTACTIVE naming T, and their sinks re-point there.
 * Until step 4 is sent nothing can activate T, so a failure before it rolls back
 * (A admits writes again and records itself active again). The write pause reported
 * is from step 1 to T's answer. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "handler_move.h"
#include "log.h"
#include "mbx_error.h"
#include "node.h"
#include "peer.h"
#include "repl.h"
#include "sink_int.h"

#define MOVE_CATCHUP_MS_DEFAULT 10000
#define MOVE_CATCHUP_MS_MAX 600000
#define MOVE_POLL_MS 1
#define MOVE_ACTIVATE_TIMEOUT_MS 15000
#define ACTIVATE_REPLAY_MS 10000

static struct mbx_node *mnode(struct mbx_req *r) { return r->conn->node; }
static const char *mme(struct mbx_req *r) { return mnode(r)->conf->node_name; }

static bool from_node(const struct mbx_req *r)
{
  return r->conn->has_role && r->conn->role == MBX__ROLE__ROLE_NODE;
}

/* ---- the old active's side ------------------------------------------------------------ */

struct move {
  struct mbx_req *r;
  struct mbx_node *n;
  struct mbx_db *db;
  char to[64];
  uint64_t epoch_old, epoch_new;
  uint64_t last_lsn;                  /* L: the layout record naming the new active */
  uint64_t start_mono_us, deadline_mono_us;
  uint64_t pause_us;                  /* drain → the target's answer that it is active */
  Mbx__CopyLayout *layout;            /* the new layout, in r's arena */
  Mbx__CopyLayout *back;              /* the layout to restore on a rollback */
  uv_timer_t timer;
  bool timer_open;
  char err[400];
  int err_status;
};

static void move_timer_closed(uv_handle_t *h)
{
  free(h->data);
}

/* Answers the operator and frees m (after its timer has closed). */
static void move_end(struct move *m)
{
  struct mbx_req *r = m->r;
  if (m->err_status < 0) {
    mbx_req_fail(r, m->err_status, "%s", m->err);
    mbx_warning("db %s: switchover to %s failed: %s", m->db->name, m->to, m->err);
  } else {
    Mbx__DbMoveActiveResp *mr = mbx_arena_pbnew(&r->arena, &mbx__db_move_active_resp__descriptor);
    if (!mr) {
      mbx_req_fail(r, MBX_ENOMEM, "switched over, but the answer ran out of memory");
    } else {
      uint64_t pause = m->pause_us ? m->pause_us : mbx_mono_us() - m->start_mono_us;
      mr->db = m->db->name;
      mr->from_node = (char *)mme(r);
      mr->to_node = mbx_arena_strdup(&r->arena, m->to);
      mr->has_epoch = mr->has_last_lsn = mr->has_pause_us = 1;
      mr->epoch = m->epoch_new;
      mr->last_lsn = m->last_lsn;
      mr->pause_us = pause;
      r->resp.body_case = MBX__RESPONSE__BODY_DB_MOVE;
      r->resp.db_move = mr;
      mbx_notice("db %s: switched over to %s at lsn %llu, epoch %llu; writes paused %.1f ms",
                 m->db->name, m->to, (unsigned long long)m->last_lsn,
                 (unsigned long long)m->epoch_new, (double)pause / 1000.0);
    }
  }
  mbx_req_finish(r);
  if (m->timer_open) {
    uv_timer_stop(&m->timer);
    uv_close((uv_handle_t *)&m->timer, move_timer_closed);
  } else {
    free(m);
  }
}

static void move_set_err(struct move *m, int status, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));

static void move_set_err(struct move *m, int status, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(m->err, sizeof(m->err), fmt, ap);
  va_end(ap);
  m->err_status = status;
}

/* Writer thread: the layout record, still in the old epoch (the copy is draining). */
static int move_layout_run(struct mbx_wtxn *w, void *arg)
{
  struct move *m = arg;
  if (!mbx_db_may_write(m->db, m->epoch_old))
    return MBX_ENOTACTIVE;
  return mbx_store_set_copies(w, m->layout);
}

static int move_back_run(struct mbx_wtxn *w, void *arg)
{
  struct move *m = arg;
  if (!mbx_db_may_write(m->db, m->epoch_old))
    return MBX_ENOTACTIVE;
  return mbx_store_set_copies(w, m->back);
}

static void move_back_done(int status, uint64_t lsn, void *arg)
{
  (void)lsn;
  struct move *m = arg;
  if (status < 0)
    mbx_error("db %s: switchover rolled back, but the layout could not be restored: %s",
              m->db->name, mbx_strerror(status));
  move_end(m);
}

/* Nothing activated the target: the old active takes writes again, and records
 * itself active again so that every copy's layout agrees. */
static void move_rollback(struct move *m)
{
  mbx_db_reactivate(m->db);
  if (!m->back || !m->db->committer ||
      mbx_committer_submit(m->db->committer, move_back_run, move_back_done, m) < 0)
    move_end(m);
}

static void move_became_passive(int status, void *arg)
{
  struct move *m = arg;
  if (status < 0)
    move_set_err(m, status, "%s is active on %s now, but this node could not become its "
                            "passive: %s (see its log)", m->db->name, m->to, mbx_strerror(status));
  move_end(m);
}

static void move_activated(int status, const Mbx__Response *resp, void *arg)
{
  struct move *m = arg;
  if (status < 0) {
    const char *why = resp && resp->error && resp->error->message ? resp->error->message
                                                                  : mbx_strerror(status);
    if (status == MBX_ETIMEDOUT || status == MBX_ECLOSED) {
      /* T may or may not have activated: the old active must not take writes. */
      move_set_err(m, status, "%s did not confirm its activation (%s): %s takes no writes "
                              "on %s; check 'mbx admin copy status %s'", m->to, why,
                   m->db->name, mme(m->r), m->db->name);
      move_end(m);
      return;
    }
    move_set_err(m, status, "%s refused to activate: %s; %s stays active on %s", m->to, why,
                 m->db->name, mme(m->r));
    move_rollback(m);
    return;
  }
  m->pause_us = mbx_mono_us() - m->start_mono_us; /* writes go to the target from here */
  int rc = mbx_db_retarget(m->n, m->db, m->to, 0, move_became_passive, m);
  if (rc < 0) {
    move_set_err(m, rc, "%s is active on %s now, but this node could not become its passive: %s",
                 m->db->name, m->to, mbx_strerror(rc));
    move_end(m);
  }
}

static void move_send_activate(struct move *m)
{
  Mbx__DbActivateReq q = MBX__DB_ACTIVATE_REQ__INIT;
  q.db = m->db->name;
  q.epoch = m->epoch_new;
  q.at_lsn = m->last_lsn;
  q.from_node = (char *)mme(m->r);
  Mbx__Request req = MBX__REQUEST__INIT;
  req.body_case = MBX__REQUEST__BODY_DB_ACTIVATE;
  req.db_activate = &q;
  int rc = mbx_peer_call(m->n, m->to, &req, MOVE_ACTIVATE_TIMEOUT_MS, move_activated, m);
  if (rc < 0) {
    move_set_err(m, rc, "cannot ask %s to activate: %s; %s stays active on %s", m->to,
                 mbx_strerror(rc), m->db->name, mme(m->r));
    move_rollback(m);
  }
}

/* Step 3: until the target has durably received the layout record. */
static void move_on_poll(uv_timer_t *t)
{
  struct move *m = t->data;
  uint64_t received = 0, replayed = 0;
  bool pulling = false;
  if (mbx_repl_source_copy_pos(m->db, m->to, &received, &replayed, &pulling) &&
      received >= m->last_lsn) {
    uv_timer_stop(t);
    move_send_activate(m);
    return;
  }
  if (mbx_mono_us() >= m->deadline_mono_us) {
    uv_timer_stop(t);
    move_set_err(m, MBX_ETIMEDOUT, "%s did not receive the log up to lsn %llu in time (it has "
                                   "%llu%s); %s stays active on %s", m->to,
                 (unsigned long long)m->last_lsn, (unsigned long long)received,
                 pulling ? "" : " and is not pulling", m->db->name, mme(m->r));
    move_rollback(m);
  }
}

static void move_layout_done(int status, uint64_t lsn, void *arg)
{
  struct move *m = arg;
  if (status < 0 || lsn == 0) {
    move_set_err(m, status < 0 ? status : MBX_EIO, "cannot record the new active: %s; %s stays "
                 "active on %s", mbx_strerror(status < 0 ? status : MBX_EIO), m->db->name,
                 mme(m->r));
    mbx_db_reactivate(m->db);
    move_end(m);
    return;
  }
  m->last_lsn = lsn;
  m->timer.data = m;
  if (uv_timer_init(m->n->loop, &m->timer) != 0) {
    move_set_err(m, MBX_ENOMEM, "cannot wait for %s; %s stays active on %s", m->to,
                 m->db->name, mme(m->r));
    move_rollback(m);
    return;
  }
  m->timer_open = true;
  uv_timer_start(&m->timer, move_on_poll, 0, MOVE_POLL_MS);
}

/* The target: the named node, or the passive with the best preference that pulls
 * and has everything but a few records. */
static const char *move_pick(struct mbx_req *r, struct mbx_db *db, const Mbx__CopyLayout *l,
                             const char *want)
{
  const char *best = NULL;
  uint32_t best_pref = UINT32_MAX;
  for (size_t i = 0; i < l->n_copies; i++) {
    const Mbx__CopyEntry *e = l->copies[i];
    if (strcmp(e->node, mme(r)) == 0)
      continue;
    if (want && *want) {
      if (strcmp(e->node, want) == 0)
        return e->node;
      continue;
    }
    uint64_t rec = 0, rep = 0;
    bool pulling = false;
    if (!mbx_repl_source_copy_pos(db, e->node, &rec, &rep, &pulling) || !pulling || e->lag_s)
      continue;
    uint32_t pref = e->has_preference ? e->preference : UINT32_MAX - 1;
    if (pref < best_pref) {
      best = e->node;
      best_pref = pref;
    }
  }
  return best;
}

static int h_move_active(struct mbx_req *r)
{
  const Mbx__DbMoveActiveReq *q = r->rq->db_move_active;
  struct mbx_node *n = mnode(r);
  struct mbx_db *db = q->db ? mbx_node_db(n, q->db) : NULL;
  if (!db || !mbx_db_ready(db))
    return mbx_req_fail(r, MBX_ENOTFOUND, "no database '%s' on node %s", q->db ? q->db : "", mme(r));
  if (!mbx_db_is_active(db)) {
    struct mbx_store_copy_meta meta;
    if (from_node(r) || mbx_store_get_copy_meta(db->store, &meta) < 0 || !meta.active_node[0])
      return mbx_req_fail(r, MBX_ENOTACTIVE, "database %s is not active on %s", db->name, mme(r));
    return mbx_peer_forward(r, meta.active_node);  /* the active's node runs it */
  }
  if (mbx_db_state(db) != MBX_DB_ACTIVE)
    return mbx_req_fail(r, MBX_EBUSY, "database %s on %s is %s: a switchover is already under way",
                 db->name, mme(r), mbx_db_state_name(mbx_db_state(db)));
  if (q->to && strcmp(q->to, mme(r)) == 0)
    return mbx_req_fail(r, MBX_EINVAL, "database %s is already active on %s", db->name, mme(r));
  struct mbx_rtxn *t;
  Mbx__CopyLayout *old = NULL;
  int rc = mbx_store_rtxn_begin(db->store, &t);
  if (rc == 0) {
    rc = mbx_store_get_copies(t, &r->arena, &old);
    mbx_store_rtxn_end(&t);
  }
  if (rc < 0)
    return mbx_req_fail(r, rc, "database %s: cannot read its copy layout: %s", db->name,
                 mbx_strerror(rc));
  const char *to = move_pick(r, db, old, q->to);
  if (!to)
    return q->to && *q->to
             ? mbx_req_fail(r, MBX_ENOTFOUND, "node %s holds no copy of %s", q->to, db->name)
             : mbx_req_fail(r, MBX_ENOTFOUND, "database %s has no passive copy that is pulling now: "
                                       "nowhere to move it without loss", db->name);
  uint64_t rec = 0, rep = 0;
  bool pulling = false;
  if (!mbx_repl_source_copy_pos(db, to, &rec, &rep, &pulling) || !pulling)
    return mbx_req_fail(r, MBX_EBUSY, "the copy of %s on %s is not connected to the active: it cannot "
                               "take over without loss (see 'mbx admin copy status %s')",
                 db->name, to, db->name);
  struct move *m = calloc(1, sizeof(*m));
  Mbx__CopyLayout *l = mbx_arena_pbnew(&r->arena, &mbx__copy_layout__descriptor);
  Mbx__CopyLayout *back = mbx_arena_pbnew(&r->arena, &mbx__copy_layout__descriptor);
  if (!m || !l || !back) {
    free(m);
    return mbx_req_fail(r, MBX_ENOMEM, "out of memory");
  }
  *l = *old;                          /* the same copies, a new active */
  *back = *old;
  m->r = r;
  m->n = n;
  m->db = db;
  snprintf(m->to, sizeof(m->to), "%s", to);
  m->epoch_old = mbx_db_write_epoch(db);
  m->epoch_new = m->epoch_old + 1;
  if (old->has_active_epoch && old->active_epoch >= m->epoch_new)
    m->epoch_new = old->active_epoch + 1;
  l->active_node = m->to;
  l->has_active_epoch = 1;
  l->active_epoch = m->epoch_new;
  back->active_node = (char *)mme(r);
  back->has_active_epoch = 1;
  back->active_epoch = m->epoch_old;
  m->layout = l;
  m->back = back;
  uint32_t catchup_ms = q->has_timeout_ms && q->timeout_ms ? q->timeout_ms : MOVE_CATCHUP_MS_DEFAULT;
  if (catchup_ms > MOVE_CATCHUP_MS_MAX)
    catchup_ms = MOVE_CATCHUP_MS_MAX;
  m->start_mono_us = mbx_mono_us();
  m->deadline_mono_us = m->start_mono_us + (uint64_t)catchup_ms * 1000;
  mbx_notice("db %s: switchover to %s: draining (epoch %llu, last lsn %llu, %s has %llu)",
             db->name, m->to, (unsigned long long)m->epoch_old,
             (unsigned long long)mbx_store_last_lsn(db->store), m->to, (unsigned long long)rec);
  if ((rc = mbx_db_deactivate(db, m->to)) < 0) {
    free(m);
    return mbx_req_fail(r, rc, "database %s cannot be drained now", db->name);
  }
  rc = mbx_committer_submit(db->committer, move_layout_run, move_layout_done, m);
  if (rc < 0) {
    mbx_db_reactivate(db);
    free(m);
    return mbx_req_fail(r, rc, "database %s: cannot record the new active: %s", db->name,
                 mbx_strerror(rc));
  }
  return 1;
}

/* ---- the target's side ----------------------------------------------------------------- */

struct activate {
  struct mbx_req *r;
  struct mbx_node *n;
  struct mbx_db *db;
  uint64_t epoch, at_lsn, deadline_mono_us;
  bool forced;                        /* an operator's: tell the layout and the others */
  Mbx__CopyLayout *layout;            /* forced: the layout naming this node, in r's arena */
  uv_timer_t timer;
};

static void activate_timer_closed(uv_handle_t *h)
{
  free(h->data);
}

static void activate_end(struct activate *a)
{
  mbx_req_finish(a->r);
  uv_close((uv_handle_t *)&a->timer, activate_timer_closed);
}

static void follow_told(int status, const Mbx__Response *resp, void *arg)
{
  char *node = arg;
  if (status < 0)
    mbx_warning("could not tell %s about the new active: %s (it learns when it asks)", node,
                resp && resp->error && resp->error->message ? resp->error->message
                                                            : mbx_strerror(status));
  free(node);
}

/* A forced activation: every other copy in the layout is told to follow. */
static void activate_tell_others(struct activate *a)
{
  Mbx__DbFollowReq f = MBX__DB_FOLLOW_REQ__INIT;
  f.db = a->db->name;
  f.active_node = (char *)mme(a->r);
  f.epoch = a->epoch;
  Mbx__Request req = MBX__REQUEST__INIT;
  req.body_case = MBX__REQUEST__BODY_DB_FOLLOW;
  req.db_follow = &f;
  for (size_t i = 0; a->layout && i < a->layout->n_copies; i++) {
    const char *peer = a->layout->copies[i]->node;
    char *arg = strcmp(peer, mme(a->r)) != 0 ? strdup(peer) : NULL;
    if (arg && mbx_peer_call(a->n, peer, &req, MOVE_ACTIVATE_TIMEOUT_MS, follow_told, arg) < 0)
      free(arg);
  }
}

static int activate_layout_run(struct mbx_wtxn *w, void *arg)
{
  struct activate *a = arg;
  if (!mbx_db_may_write(a->db, a->epoch))
    return MBX_ENOTACTIVE;
  return mbx_store_set_copies(w, a->layout);
}

static void activate_layout_done(int status, uint64_t lsn, void *arg)
{
  (void)lsn;
  struct activate *a = arg;
  if (status < 0)
    mbx_warning("db %s: active by force, but the layout could not record it: %s", a->db->name,
                mbx_strerror(status));
  activate_tell_others(a);
  activate_end(a);
}

static void activate_done(int status, void *arg)
{
  struct activate *a = arg;
  if (status < 0) {
    mbx_req_fail(a->r, status, "%s could not become active: %s", mme(a->r), mbx_strerror(status));
  } else if (a->forced) {
    mbx_warning("db %s: ACTIVATED BY AN OPERATOR (--force) in epoch %llu at lsn %llu: records "
                "the old active held beyond it are not here", a->db->name,
                (unsigned long long)a->epoch, (unsigned long long)a->at_lsn);
    if (a->layout && a->db->committer &&
        mbx_committer_submit(a->db->committer, activate_layout_run, activate_layout_done, a) == 0)
      return;
    activate_tell_others(a);
  } else {
    mbx_notice("db %s: active in epoch %llu from lsn %llu (switchover from %s)", a->db->name,
               (unsigned long long)a->epoch, (unsigned long long)a->at_lsn + 1,
               a->r->rq->db_activate->from_node ? a->r->rq->db_activate->from_node : "?");
  }
  activate_end(a);
}

static void activate_on_poll(uv_timer_t *t)
{
  struct activate *a = t->data;
  if (!a->db->store || mbx_db_state(a->db) != MBX_DB_PASSIVE) {
    uv_timer_stop(t);
    mbx_req_fail(a->r, MBX_EBUSY, "the copy of %s on %s stopped being passive", a->db->name, mme(a->r));
    activate_end(a);
    return;
  }
  if (mbx_store_last_lsn(a->db->store) >= a->at_lsn) {
    uv_timer_stop(t);
    int rc = mbx_db_retarget(a->n, a->db, "", a->epoch, activate_done, a);
    if (rc < 0) {
      mbx_req_fail(a->r, rc, "%s cannot become active: %s", mme(a->r), mbx_strerror(rc));
      activate_end(a);
    }
    return;
  }
  if (mbx_mono_us() >= a->deadline_mono_us) {
    uv_timer_stop(t);
    mbx_req_fail(a->r, MBX_ETIMEDOUT, "the copy of %s on %s has replayed lsn %llu, not %llu, after %d s",
          a->db->name, mme(a->r), (unsigned long long)mbx_store_last_lsn(a->db->store),
          (unsigned long long)a->at_lsn, ACTIVATE_REPLAY_MS / 1000);
    activate_end(a);
  }
}

/* An operator's activation of the copy here, the active's node being down. */
static int activate_operator_checks(struct mbx_req *r, struct mbx_db *db, uint64_t *epoch_r,
                                    uint64_t *at_lsn_r)
{
  const Mbx__DbActivateReq *q = r->rq->db_activate;
  struct mbx_repl_sink *k = db->sink;
  struct mbx_store_repl_pos pos;
  mbx_store_get_repl_pos(db->store, &pos);
  const char *active = k ? k->meta.active_node : "?";
  int64_t heard_ago_ms = k && k->last_contact_us ? (mbx_now_us() - k->last_contact_us) / 1000 : -1;
  if (k && k->stream && k->got_batch && heard_ago_ms >= 0 && heard_ago_ms < 2000)
    return mbx_req_fail(r, MBX_EBUSY, "the active of %s on %s still answers this copy: use 'mbx admin db "
                               "move-active %s --to %s' for a lossless switchover",
                 db->name, active, db->name, mme(r));
  uint64_t known = k ? k->active_last_lsn : 0;
  if (!q->force) {
    if (heard_ago_ms < 0)
      return mbx_req_fail(r, MBX_ESTALE, "cannot prove nothing is lost: this copy of %s has never heard "
                                  "from its active (%s) since it started, and holds lsn %llu; "
                                  "--force activates it anyway", db->name, active,
                   (unsigned long long)pos.received_lsn);
    return mbx_req_fail(r, MBX_ESTALE, "cannot prove nothing is lost: %s was last heard %.1f s ago at lsn "
                                "%llu; this copy holds %llu (behind by at least %llu), and "
                                "anything %s acknowledged after that exists only there; "
                                "--force activates it anyway",
                 active, (double)heard_ago_ms / 1000.0, (unsigned long long)known,
                 (unsigned long long)pos.received_lsn,
                 (unsigned long long)(known > pos.received_lsn ? known - pos.received_lsn : 0),
                 active);
  }
  uint64_t e = mbx_store_epoch(db->store);
  if (pos.epoch > e)
    e = pos.epoch;
  *epoch_r = e + 1;
  *at_lsn_r = pos.received_lsn;
  return 0;
}

static int h_activate(struct mbx_req *r)
{
  const Mbx__DbActivateReq *q = r->rq->db_activate;
  struct mbx_node *n = mnode(r);
  bool operator = !from_node(r) || (q->node && *q->node);
  if (operator && q->node && *q->node && strcmp(q->node, mme(r)) != 0) {
    if (from_node(r))
      return mbx_req_fail(r, MBX_EINVAL, "activation of the copy on %s reached %s", q->node, mme(r));
    return mbx_peer_forward(r, q->node);
  }
  struct mbx_db *db = q->db ? mbx_node_db(n, q->db) : NULL;
  if (!db || !mbx_db_ready(db))
    return mbx_req_fail(r, MBX_ENOTFOUND, "no database '%s' on node %s", q->db ? q->db : "", mme(r));
  uint64_t epoch = q->epoch, at_lsn = q->at_lsn;
  Mbx__CopyLayout *layout = NULL;
  if (operator) {
    if (mbx_db_is_active(db))
      return mbx_req_fail(r, MBX_EINVAL, "database %s is already active on %s", db->name, mme(r));
    if (mbx_db_state(db) == MBX_DB_DISMOUNTED || mbx_db_state(db) == MBX_DB_MOUNTING) {
      /* the active itself, waiting for the other copies: --force lets it go on */
      if (!q->force)
        return mbx_req_fail(r, MBX_ESTALE, "the copy of %s on %s is %s: %s; --force activates it "
                                    "anyway", db->name, mme(r), mbx_db_state_name(mbx_db_state(db)),
                     mbx_db_reason(db));
      epoch = mbx_store_epoch(db->store) + 1;
      at_lsn = mbx_store_last_lsn(db->store);
    } else {
      int rc = activate_operator_checks(r, db, &epoch, &at_lsn);
      if (rc < 0)
        return rc;
    }
    struct mbx_rtxn *t;
    Mbx__CopyLayout *old = NULL;
    if (mbx_store_rtxn_begin(db->store, &t) == 0) {
      if (mbx_store_get_copies(t, &r->arena, &old) < 0)
        old = NULL;
      mbx_store_rtxn_end(&t);
    }
    if (old && (layout = mbx_arena_pbnew(&r->arena, &mbx__copy_layout__descriptor)) != NULL) {
      *layout = *old;
      layout->active_node = (char *)mme(r);
      layout->has_active_epoch = 1;
      layout->active_epoch = epoch;
    }
    if (mbx_db_state(db) != MBX_DB_PASSIVE) { /* DISMOUNTED/MOUNTING: no replay to wait for */
      struct activate *a = calloc(1, sizeof(*a));
      if (!a)
        return mbx_req_fail(r, MBX_ENOMEM, "out of memory");
      *a = (struct activate){ .r = r, .n = n, .db = db, .epoch = epoch, .at_lsn = at_lsn,
                              .forced = true, .layout = layout };
      a->timer.data = a;
      if (uv_timer_init(n->loop, &a->timer) != 0) {
        free(a);
        return mbx_req_fail(r, MBX_ENOMEM, "cannot activate now");
      }
      int rc = mbx_db_retarget(n, db, "", epoch, activate_done, a);
      if (rc < 0) {
        mbx_req_fail(r, rc, "%s cannot become active: %s", mme(r), mbx_strerror(rc));
        uv_close((uv_handle_t *)&a->timer, activate_timer_closed);
        return rc;
      }
      return 1;
    }
  }
  if (mbx_db_is_active(db)) {
    if (mbx_db_write_epoch(db) == q->epoch)
      return 0;                       /* a retry of an activation that happened */
    return mbx_req_fail(r, MBX_EINVAL, "database %s is already active on %s (epoch %llu)", db->name,
                 mme(r), (unsigned long long)mbx_db_write_epoch(db));
  }
  if (mbx_db_state(db) != MBX_DB_PASSIVE)
    return mbx_req_fail(r, MBX_EBUSY, "the copy of %s on %s is %s, not passive", db->name, mme(r),
                 mbx_db_state_name(mbx_db_state(db)));
  if (epoch <= mbx_store_epoch(db->store))
    return mbx_req_fail(r, MBX_EINVAL, "epoch %llu is not newer than this copy's %llu",
                 (unsigned long long)epoch, (unsigned long long)mbx_store_epoch(db->store));
  struct activate *a = calloc(1, sizeof(*a));
  if (!a)
    return mbx_req_fail(r, MBX_ENOMEM, "out of memory");
  *a = (struct activate){ .r = r, .n = n, .db = db, .epoch = epoch, .at_lsn = at_lsn,
                          .forced = operator, .layout = layout };
  a->deadline_mono_us = mbx_mono_us() + (uint64_t)ACTIVATE_REPLAY_MS * 1000;
  a->timer.data = a;
  if (uv_timer_init(n->loop, &a->timer) != 0) {
    free(a);
    return mbx_req_fail(r, MBX_ENOMEM, "cannot wait for the replay");
  }
  if (db->sink)
    mbx_repl_sink_play_down(db, NULL, NULL);  /* a lagged copy replays everything now */
  uv_timer_start(&a->timer, activate_on_poll, 0, MOVE_POLL_MS);
  return 1;
}

/* A copy activated by force names itself: this copy follows it, unless it knows a
 * newer epoch. An old active that is still up steps down here too. */
static int h_follow(struct mbx_req *r)
{
  const Mbx__DbFollowReq *q = r->rq->db_follow;
  struct mbx_node *n = mnode(r);
  struct mbx_db *db = q->db ? mbx_node_db(n, q->db) : NULL;
  if (!db || !mbx_db_ready(db))
    return mbx_req_fail(r, MBX_ENOTFOUND, "no database '%s' on node %s", q->db ? q->db : "", mme(r));
  if (!q->active_node || strlen(q->active_node) > 63 || strcmp(q->active_node, mme(r)) == 0)
    return mbx_req_fail(r, MBX_EINVAL, "follow: bad active node");
  uint64_t mine = mbx_store_epoch(db->store);
  if (q->epoch < mine)
    return mbx_req_fail(r, MBX_ESTALE, "the copy of %s on %s is in epoch %llu, newer than %llu",
                 db->name, mme(r), (unsigned long long)mine, (unsigned long long)q->epoch);
  struct mbx_store_copy_meta m;
  if (mbx_db_state(db) == MBX_DB_PASSIVE && mbx_store_get_copy_meta(db->store, &m) == 0 &&
      strcmp(m.active_node, q->active_node) == 0)
    return 0;                         /* already following it */
  if (mbx_db_is_active(db))
    mbx_warning("db %s: %s was activated in epoch %llu: this copy steps down", db->name,
                q->active_node, (unsigned long long)q->epoch);
  int rc = mbx_db_retarget(n, db, q->active_node, 0, NULL, NULL);
  if (rc < 0)
    return mbx_req_fail(r, rc, "the copy of %s on %s cannot follow %s now (%s)", db->name, mme(r),
                 q->active_node, mbx_db_state_name(mbx_db_state(db)));
  return 0;
}

int mbx_handler_move(struct mbx_req *r)
{
  switch (r->rq->body_case) {
  case MBX__REQUEST__BODY_DB_MOVE_ACTIVE: return h_move_active(r);
  case MBX__REQUEST__BODY_DB_ACTIVATE: return h_activate(r);
  case MBX__REQUEST__BODY_DB_FOLLOW: return h_follow(r);
  default: return mbx_req_fail(r, MBX_EPROTO, "not a role request (%d)", (int)r->rq->body_case);
  }
}

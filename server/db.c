/* db.c — the one owner of a database copy's lifecycle: the state enum's transition
 * table, the mount sequence, the write fence, and the role changes that start and
 * stop replication. See db.h for the states. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "db_probe.h"
#include "log.h"
#include "mbx_error.h"
#include "node.h"
#include "notify.h"
#include "peer.h"
#include "repl.h"

static const char *const state_names[MBX_DB_STATES] = {
  [MBX_DB_CREATING] = "creating",   [MBX_DB_MOUNTING] = "mounting",
  [MBX_DB_ACTIVE] = "active",       [MBX_DB_DRAINING] = "draining",
  [MBX_DB_PASSIVE] = "passive",     [MBX_DB_SWAPPING] = "swapping",
  [MBX_DB_REMOVING] = "removing",   [MBX_DB_DISMOUNTED] = "dismounted",
  [MBX_DB_FAILED] = "failed",
};

const char *mbx_db_state_name(enum mbx_db_state s)
{
  return (unsigned)s < MBX_DB_STATES ? state_names[s] : "unknown";
}

#define T(s) (1u << (s))
/* allowed[from] = the states it may go to. FAILED is reachable from everywhere. */
static const unsigned allowed[MBX_DB_STATES] = {
  [MBX_DB_CREATING] = T(MBX_DB_MOUNTING),
  [MBX_DB_MOUNTING] = T(MBX_DB_ACTIVE) | T(MBX_DB_PASSIVE) | T(MBX_DB_DISMOUNTED),
  [MBX_DB_ACTIVE] = T(MBX_DB_DRAINING) | T(MBX_DB_ACTIVE) | T(MBX_DB_PASSIVE) |
                    T(MBX_DB_DISMOUNTED),
  [MBX_DB_DRAINING] = T(MBX_DB_ACTIVE) | T(MBX_DB_PASSIVE) | T(MBX_DB_DISMOUNTED),
  [MBX_DB_PASSIVE] = T(MBX_DB_ACTIVE) | T(MBX_DB_PASSIVE) | T(MBX_DB_SWAPPING) |
                     T(MBX_DB_REMOVING) | T(MBX_DB_DISMOUNTED),
  [MBX_DB_SWAPPING] = T(MBX_DB_PASSIVE),
  [MBX_DB_REMOVING] = T(MBX_DB_PASSIVE),
  [MBX_DB_DISMOUNTED] = T(MBX_DB_MOUNTING) | T(MBX_DB_ACTIVE) | T(MBX_DB_PASSIVE) |
                        T(MBX_DB_DISMOUNTED),
  [MBX_DB_FAILED] = T(MBX_DB_MOUNTING),
};

bool mbx_db_transition_ok(enum mbx_db_state from, enum mbx_db_state to)
{
  if ((unsigned)from >= MBX_DB_STATES || (unsigned)to >= MBX_DB_STATES)
    return false;
  return to == MBX_DB_FAILED || (allowed[from] & T(to)) != 0;
}
#undef T

/* Every state change goes through here. */
static int db_go(struct mbx_db *db, enum mbx_db_state to)
{
  enum mbx_db_state from = mbx_db_state(db);
  if (!mbx_db_transition_ok(from, to)) {
    mbx_error("db %s: refused transition %s -> %s", db->name, mbx_db_state_name(from),
              mbx_db_state_name(to));
    return MBX_EINVAL;
  }
  if (to != MBX_DB_ACTIVE && to != MBX_DB_DRAINING)
    atomic_store(&db->write_epoch, 0);  /* the fence closes before anything else */
  atomic_store(&db->state, (int)to);
  if (from != to)
    mbx_debug("db %s: %s -> %s", db->name, mbx_db_state_name(from), mbx_db_state_name(to));
  return 0;
}

struct mbx_db *mbx_db_new(const char *name)
{
  struct mbx_db *db = calloc(1, sizeof(*db));
  if (!db)
    return NULL;
  snprintf(db->name, sizeof(db->name), "%s", name);
  atomic_init(&db->state, MBX_DB_CREATING);
  atomic_init(&db->write_epoch, 0);
  return db;
}

enum mbx_db_state mbx_db_state(const struct mbx_db *db)
{
  return (enum mbx_db_state)atomic_load(&((struct mbx_db *)db)->state);
}

bool mbx_db_ready(const struct mbx_db *db)
{
  enum mbx_db_state s = mbx_db_state(db);
  return db->store && s != MBX_DB_CREATING && s != MBX_DB_SWAPPING && s != MBX_DB_REMOVING &&
         s != MBX_DB_FAILED;
}

bool mbx_db_is_active(const struct mbx_db *db)
{
  enum mbx_db_state s = mbx_db_state(db);
  return s == MBX_DB_ACTIVE || s == MBX_DB_DRAINING;
}

bool mbx_db_may_write(const struct mbx_db *db, uint64_t epoch)
{
  struct mbx_db *d = (struct mbx_db *)db;
  int s = atomic_load(&d->state);
  uint64_t e = atomic_load(&d->write_epoch);
  if (epoch == 0)
    return s == MBX_DB_ACTIVE && e != 0;
  return (s == MBX_DB_ACTIVE || s == MBX_DB_DRAINING) && e == epoch;
}

uint64_t mbx_db_write_epoch(const struct mbx_db *db)
{
  return atomic_load(&((struct mbx_db *)db)->write_epoch);
}

const char *mbx_db_reason(const struct mbx_db *db)
{
  return db->reason;
}

/* ---- roles ------------------------------------------------------------------------- */

void mbx_db_stop_repl(struct mbx_db *db)
{
  if (db->source)
    mbx_repl_source_stop(db);
  if (db->sink)
    mbx_repl_sink_stop(db);
}

/* From the copy meta: active_node empty or this node → active (in epoch, 0 = the
 * store's). */
static int db_take_role_epoch(struct mbx_node *n, struct mbx_db *db, uint64_t epoch)
{
  struct mbx_store_copy_meta m;
  int rc = mbx_store_get_copy_meta(db->store, &m);
  if (rc < 0)
    return rc;
  bool active = !m.active_node[0] || strcmp(m.active_node, n->conf->node_name) == 0;
  mbx_db_stop_repl(db);
  if (active && epoch == 0 && mbx_db_has_peers(db)) {
    /* A (re)start: the fence stays closed until the other copies have said where
     * they are (db_probe.c); the outcome comes back through mbx_db_probed. */
    enum mbx_db_state s = mbx_db_state(db);
    if (s != MBX_DB_MOUNTING && s != MBX_DB_DISMOUNTED && (rc = db_go(db, MBX_DB_MOUNTING)) < 0)
      return rc;
    return mbx_db_probe(n, db);
  }
  if (active) {
    if ((rc = db_go(db, MBX_DB_ACTIVE)) < 0)
      return rc;
    /* The source starts before the fence opens: a write acknowledged from here on
     * is streamed to the passives. */
    if ((rc = mbx_repl_source_start(n, db)) < 0)
      return rc;
    db->successor[0] = 0;
    atomic_store(&db->write_epoch, epoch ? epoch : mbx_store_epoch(db->store));
    return 0;
  }
  if ((rc = db_go(db, MBX_DB_PASSIVE)) < 0)
    return rc;
  db->successor[0] = 0;               /* the meta names the active from here on */
  mbx_notify_db_inactive(n, db);      /* its subscribers go to the active */
  mbx_info("db %s: passive copy, active on %s", db->name, m.active_node);
  return mbx_repl_sink_start(n, db);
}

static int db_take_role(struct mbx_node *n, struct mbx_db *db)
{
  return db_take_role_epoch(n, db, 0);
}

int mbx_db_mount(struct mbx_node *n, struct mbx_db *db, struct mbx_store *store)
{
  int rc = db_go(db, MBX_DB_MOUNTING);
  if (rc < 0)
    return rc;
  db->store = store;
  db->reason[0] = 0;
  if (!db->committer &&
      (rc = mbx_committer_start(n->loop, db->store, &n->commit_opt, &db->committer)) < 0) {
    char why[MBX_DB_REASON_MAX];
    snprintf(why, sizeof(why), "cannot start its committer: %s", mbx_strerror(rc));
    mbx_db_fail(db, why);
    return rc;
  }
  if ((rc = db_take_role(n, db)) < 0) {
    char why[MBX_DB_REASON_MAX];
    snprintf(why, sizeof(why), "cannot start replication: %s", mbx_strerror(rc));
    mbx_db_fail(db, why);
    return rc;
  }
  return 0;
}

int mbx_db_remount(struct mbx_node *n, struct mbx_db *db)
{
  if (!db->store)
    return MBX_EINVAL;
  return db_take_role(n, db);
}

int mbx_db_deactivate(struct mbx_db *db, const char *successor)
{
  if (mbx_db_state(db) != MBX_DB_ACTIVE) {
    mbx_error("db %s: refused transition %s -> draining", db->name,
              mbx_db_state_name(mbx_db_state(db)));
    return MBX_EINVAL;
  }
  snprintf(db->successor, sizeof(db->successor), "%s", successor ? successor : "");
  return db_go(db, MBX_DB_DRAINING);
}

int mbx_db_reactivate(struct mbx_db *db)
{
  if (mbx_db_state(db) != MBX_DB_DRAINING)
    return MBX_EINVAL;
  db->successor[0] = 0;
  return db_go(db, MBX_DB_ACTIVE);
}

const char *mbx_db_successor(const struct mbx_db *db)
{
  return db->successor;
}

/* ---- retarget: a copy's own record of where the active is ------------------------- */

static int db_take_role_epoch(struct mbx_node *n, struct mbx_db *db, uint64_t epoch);

struct db_retarget {
  struct mbx_node *n;
  struct mbx_db *db;
  char active_node[64];
  uint64_t epoch;
  mbx_db_done_fn done;
  void *arg;
};

static int db_retarget_run(struct mbx_store *s, void *arg)
{
  struct db_retarget *t = arg;
  struct mbx_store_copy_meta m;
  int rc = mbx_store_get_copy_meta(s, &m);
  if (rc < 0)
    return rc;
  snprintf(m.active_node, sizeof(m.active_node), "%s", t->active_node);
  if ((rc = mbx_store_set_copy_meta(s, &m)) < 0)
    return rc;
  /* Becoming active in a new epoch: its first record, before the fence opens. A
   * retry of an activation that got this far finds the epoch begun. */
  if (t->epoch && !t->active_node[0] && t->epoch > mbx_store_epoch(s)) {
    uint64_t lsn;
    if ((rc = mbx_store_begin_epoch(s, t->epoch, &lsn)) < 0)
      return rc;
  }
  return 0;
}

static void db_retarget_done(int status, uint64_t lsn, void *arg)
{
  (void)lsn;
  struct db_retarget *t = arg;
  struct mbx_db *db = t->db;
  int rc = status;
  if (rc == 0 && t->n->stopping)
    rc = MBX_ESHUTDOWN;
  if (rc == 0)
    rc = db_take_role_epoch(t->n, db, t->epoch);
  if (rc < 0 && rc != MBX_ESHUTDOWN) {
    char why[MBX_DB_REASON_MAX];
    snprintf(why, sizeof(why), "role change (active: %s) failed: %s",
             t->active_node[0] ? t->active_node : "this node", mbx_strerror(rc));
    mbx_db_fail(db, why);
  }
  if (t->done)
    t->done(rc, t->arg);
  free(t);
}

int mbx_db_retarget(struct mbx_node *n, struct mbx_db *db, const char *active_node,
                    uint64_t epoch, mbx_db_done_fn done, void *arg)
{
  if (!db->store || !db->committer)
    return MBX_EINVAL;
  enum mbx_db_state s = mbx_db_state(db);
  if (s != MBX_DB_ACTIVE && s != MBX_DB_DRAINING && s != MBX_DB_PASSIVE &&
      s != MBX_DB_DISMOUNTED && s != MBX_DB_MOUNTING)
    return MBX_EINVAL;
  struct db_retarget *t = calloc(1, sizeof(*t));
  if (!t)
    return MBX_ENOMEM;
  *t = (struct db_retarget){ .n = n, .db = db, .epoch = epoch, .done = done, .arg = arg };
  snprintf(t->active_node, sizeof(t->active_node), "%s", active_node ? active_node : "");
  /* Until the role is taken, requests are redirected to the active-to-be: the meta
   * is being rewritten underneath. */
  snprintf(db->successor, sizeof(db->successor), "%s",
           t->active_node[0] ? t->active_node : n->conf->node_name);
  mbx_db_stop_repl(db);               /* the sink must not rewrite the meta meanwhile */
  int rc = mbx_committer_submit_exclusive(db->committer, db_retarget_run, db_retarget_done, t);
  if (rc < 0)
    free(t);
  return rc;
}

int mbx_db_dismount(struct mbx_db *db, const char *reason)
{
  int rc = db_go(db, MBX_DB_DISMOUNTED);
  if (rc < 0)
    return rc;
  mbx_db_stop_repl(db);
  snprintf(db->reason, sizeof(db->reason), "%s", reason ? reason : "");
  mbx_warning("db %s: dismounted: %s", db->name, db->reason);
  return 0;
}

void mbx_db_fail(struct mbx_db *db, const char *reason)
{
  db_go(db, MBX_DB_FAILED);
  mbx_db_stop_repl(db);
  snprintf(db->reason, sizeof(db->reason), "%s", reason ? reason : "");
  mbx_error("db %s: failed: %s", db->name, db->reason);
}

int mbx_db_detach_store(struct mbx_db *db, bool to_removing, struct mbx_store **store_r)
{
  int rc = db_go(db, to_removing ? MBX_DB_REMOVING : MBX_DB_SWAPPING);
  if (rc < 0)
    return rc;
  if (to_removing)
    mbx_db_stop_repl(db);             /* the copy goes: nothing may pull or replay into it */
  mbx_committer_stop(&db->committer);
  *store_r = db->store;
  db->store = NULL;
  return 0;
}

int mbx_db_attach_store(struct mbx_node *n, struct mbx_db *db, struct mbx_store *store)
{
  int rc = db_go(db, MBX_DB_PASSIVE);
  if (rc < 0)
    return rc;
  db->store = store;
  if (store && !n->stopping &&
      (rc = mbx_committer_start(n->loop, db->store, &n->commit_opt, &db->committer)) < 0) {
    char why[MBX_DB_REASON_MAX];
    snprintf(why, sizeof(why), "cannot restart its committer: %s", mbx_strerror(rc));
    mbx_db_fail(db, why);
    return rc;
  }
  return 0;
}

/* ---- the start-up check's outcome ---------------------------------------------------- */

struct db_hand_over {
  struct mbx_node *n;
  struct mbx_db *db;
  char to[64];
};

static void db_handed_over(int status, const Mbx__Response *resp, void *arg)
{
  struct db_hand_over *h = arg;
  struct mbx_db *db = h->db;
  if (status < 0) {
    char why[MBX_DB_REASON_MAX];
    snprintf(why, sizeof(why), "behind its copy on %s, which could not take over: %s", h->to,
             resp && resp->error && resp->error->message ? resp->error->message
                                                         : mbx_strerror(status));
    if (mbx_db_state(db) == MBX_DB_MOUNTING || mbx_db_state(db) == MBX_DB_DISMOUNTED) {
      db_go(db, MBX_DB_DISMOUNTED);
      snprintf(db->reason, sizeof(db->reason), "%s", why);
      mbx_warning("db %s: dismounted: %s", db->name, why);
    }
  } else if (!h->n->stopping) {
    int rc = mbx_db_retarget(h->n, db, h->to, 0, NULL, NULL);
    if (rc < 0)
      mbx_error("db %s: cannot follow %s: %s", db->name, h->to, mbx_strerror(rc));
  }
  free(h);
}

void mbx_db_probed(struct mbx_node *n, struct mbx_db *db, enum mbx_db_probe_outcome o,
                   const char *node_or_why, uint64_t epoch, uint64_t lsn)
{
  enum mbx_db_state s = mbx_db_state(db);
  if (n->stopping || !db->store || (s != MBX_DB_MOUNTING && s != MBX_DB_DISMOUNTED))
    return;                           /* something else changed the copy meanwhile */
  int rc = 0;
  switch (o) {
  case MBX_DB_PROBE_ACTIVE:
    if ((rc = db_go(db, MBX_DB_ACTIVE)) == 0 && (rc = mbx_repl_source_start(n, db)) == 0) {
      db->successor[0] = db->reason[0] = 0;
      atomic_store(&db->write_epoch, mbx_store_epoch(db->store));
      mbx_info("db %s: active in epoch %llu at lsn %llu: the other copies agree", db->name,
               (unsigned long long)mbx_store_epoch(db->store),
               (unsigned long long)mbx_store_last_lsn(db->store));
    }
    break;
  case MBX_DB_PROBE_WAIT:
    if (s != MBX_DB_DISMOUNTED || strcmp(db->reason, node_or_why) != 0)
      mbx_warning("db %s: takes no writes yet: %s", db->name, node_or_why);
    db_go(db, MBX_DB_DISMOUNTED);
    snprintf(db->reason, sizeof(db->reason), "%s", node_or_why);
    break;
  case MBX_DB_PROBE_FOLLOW:
    rc = mbx_db_retarget(n, db, node_or_why, 0, NULL, NULL);
    break;
  case MBX_DB_PROBE_HAND_OVER: {
    struct db_hand_over *h = calloc(1, sizeof(*h));
    if (!h) {
      rc = MBX_ENOMEM;
      break;
    }
    h->n = n;
    h->db = db;
    snprintf(h->to, sizeof(h->to), "%s", node_or_why);
    snprintf(db->successor, sizeof(db->successor), "%s", h->to);
    Mbx__DbActivateReq q = MBX__DB_ACTIVATE_REQ__INIT;
    q.db = db->name;
    q.epoch = epoch;
    q.at_lsn = lsn;
    q.from_node = (char *)n->conf->node_name;
    Mbx__Request req = MBX__REQUEST__INIT;
    req.body_case = MBX__REQUEST__BODY_DB_ACTIVATE;
    req.db_activate = &q;
    if ((rc = mbx_peer_call(n, h->to, &req, 15000, db_handed_over, h)) < 0)
      free(h);
    break;
  }
  }
  if (rc < 0) {
    char why[MBX_DB_REASON_MAX];
    snprintf(why, sizeof(why), "start-up check of the other copies: %s", mbx_strerror(rc));
    mbx_db_fail(db, why);
  }
}

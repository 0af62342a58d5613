/* db.h — mbx_db_*: one database copy on this node and its lifecycle. This module is
 * the one owner of a copy's state: every role change is a named transition here,
 * the mount sequence exists once (mbx_db_mount), and one predicate
 * (mbx_db_may_write) answers "may this copy acknowledge a write now". Nothing else
 * writes a copy's state.
 *
 * Thread rules: loop thread, except mbx_db_may_write, mbx_db_state and
 * mbx_db_write_epoch, which any thread may call (the group committer's writer
 * checks the write fence with them). */
#ifndef MBX_DB_H
#define MBX_DB_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "commit.h"
#include "store.h"

#define MBX_DB_NAME_MAX 63
#define MBX_DB_REASON_MAX 400

struct mbx_node;
struct db_probe;
struct mbx_repl_source;
struct mbx_repl_sink;

/* The states of a copy. Writes are acknowledged in ACTIVE alone. */
enum mbx_db_state {
  MBX_DB_CREATING = 0, /* name reserved, store being created (db create, copy add) */
  MBX_DB_MOUNTING,     /* store open, committer up, role being decided (an active asks
                       * the other copies first: db_probe.c) */
  MBX_DB_ACTIVE,       /* acknowledges writes in its epoch; serves the passives */
  MBX_DB_DRAINING,     /* was active: takes no new writes; what it committed still ships */
  MBX_DB_PASSIVE,      /* follows the active: pulls, receives, replays */
  MBX_DB_SWAPPING,     /* passive whose store is being replaced by a seed (no store) */
  MBX_DB_REMOVING,     /* passive copy being deleted (no store; the name stays taken) */
  MBX_DB_DISMOUNTED,   /* store open, serves nothing; reason says why */
  MBX_DB_FAILED,       /* could not be opened or mounted; reason says why */
};
#define MBX_DB_STATES 9

/* One hosted database copy. Entries are never freed while the loop runs: sessions
 * keep pointers to them. Others read the fields below; only db.c writes them,
 * except source and sink, which replication's start/stop set. */
struct mbx_db {
  char name[MBX_DB_NAME_MAX + 1];
  struct mbx_store *store;            /* NULL in CREATING, SWAPPING, REMOVING, FAILED */
  struct mbx_committer *committer;    /* NULL without a store and after shutdown */
  struct mbx_repl_source *source;     /* ACTIVE/DRAINING: serves the passives' pulls */
  struct mbx_repl_sink *sink;         /* PASSIVE: pulls, receives, replays */
  /* private to db.c */
  _Atomic int state;                  /* enum mbx_db_state */
  _Atomic uint64_t write_epoch;       /* the epoch ACTIVE acknowledges writes in */
  char reason[MBX_DB_REASON_MAX];     /* why DISMOUNTED or FAILED */
  char successor[64];                 /* DRAINING or retargeting: where writes are redirected */
  struct db_probe *probe;             /* the start-up check of the other copies (db_probe.c) */
};

/* "creating", "active", … (never NULL). */
const char *mbx_db_state_name(enum mbx_db_state s);
/* Whether a copy may go from one state to the other: the transition table (pure). */
bool mbx_db_transition_ok(enum mbx_db_state from, enum mbx_db_state to);

/* A new entry in CREATING (calloc'd; the node owns it). NULL on ENOMEM. */
struct mbx_db *mbx_db_new(const char *name);

enum mbx_db_state mbx_db_state(const struct mbx_db *db);
/* Has a store that is not being replaced or removed (reads may run on it). */
bool mbx_db_ready(const struct mbx_db *db);
/* ACTIVE, or DRAINING: the copy whose history the others follow. */
bool mbx_db_is_active(const struct mbx_db *db);
/* The write fence. epoch 0 asks "may a new write be admitted": only in ACTIVE.
 * epoch e asks "may a write admitted in e be committed now": in ACTIVE or DRAINING
 * (a switchover finishes what it admitted), and only while the copy is still
 * active in e. A write admitted in an epoch is refused by the committer if the copy
 * stopped being active, or began another epoch, meanwhile. */
bool mbx_db_may_write(const struct mbx_db *db, uint64_t epoch);
/* The epoch writes are acknowledged in now; 0 unless ACTIVE. */
uint64_t mbx_db_write_epoch(const struct mbx_db *db);
const char *mbx_db_reason(const struct mbx_db *db);

/* What the start-up check found (db_probe.c → mbx_db_probed). */
enum mbx_db_probe_outcome {
  MBX_DB_PROBE_ACTIVE,                /* nobody holds a newer history: take writes */
  MBX_DB_PROBE_WAIT,                  /* too few copies answered: DISMOUNTED, asks again */
  MBX_DB_PROBE_FOLLOW,                /* node is the active of a newer epoch: follow it */
  MBX_DB_PROBE_HAND_OVER,             /* node, our passive, holds more (we were restored):
                                       * it activates in epoch at lsn; we follow it */
};
void mbx_db_probed(struct mbx_node *n, struct mbx_db *db, enum mbx_db_probe_outcome o,
                   const char *node_or_why, uint64_t epoch, uint64_t lsn);

/* ---- transitions (loop thread). Each returns 0, or MBX_EINVAL for a transition the
 * table refuses (the state is then unchanged and the refusal is logged). */

/* The mount sequence: takes ownership of store (CREATING, SWAPPING or DISMOUNTED →
 * MOUNTING), starts the committer unless it runs, reads the copy meta and goes
 * ACTIVE (starting the replication source) or PASSIVE (starting the sink). On
 * failure the copy is FAILED with the reason in why_r (if given) and the store is
 * kept open (mbx_db_fail closes nothing); returns the error. */
int mbx_db_mount(struct mbx_node *n, struct mbx_db *db, struct mbx_store *store);
/* Re-decides the role from the copy meta (after a layout change): stops what ran
 * and starts the source or the sink. ACTIVE/PASSIVE/DRAINING/DISMOUNTED → ACTIVE or
 * PASSIVE. */
int mbx_db_remount(struct mbx_node *n, struct mbx_db *db);
/* ACTIVE → DRAINING: new writes are refused at once (redirected to successor, if
 * given); writes already admitted still commit and ship. */
int mbx_db_deactivate(struct mbx_db *db, const char *successor);
/* DRAINING → ACTIVE: a switchover that did not happen; writes are admitted again. */
int mbx_db_reactivate(struct mbx_db *db);
/* While DRAINING, or while a role change is under way: where new writes should go
 * ("" when the copy's meta says it). */
const char *mbx_db_successor(const struct mbx_db *db);

typedef void (*mbx_db_done_fn)(int status, void *arg);
/* The role change all switchovers are made of: stops the copy's replication,
 * records active_node ("" = this node) in its own meta (a durable exclusive job on
 * its committer; becoming active with epoch != 0 also begins that epoch there, its
 * epoch-start record written before any write of it), then takes the role that
 * names: ACTIVE in epoch (0 = the store's epoch; the source starts before the fence
 * opens) or PASSIVE pulling from active_node. done is called on the loop, once,
 * unless this returns an error. */
int mbx_db_retarget(struct mbx_node *n, struct mbx_db *db, const char *active_node,
                    uint64_t epoch, mbx_db_done_fn done, void *arg);
/* Stops replication and serves nothing (reason is logged and kept). Any state with
 * a store → DISMOUNTED. */
int mbx_db_dismount(struct mbx_db *db, const char *reason);
/* Node shutdown only: stops the copy's replication; the state stays (the committer
 * still finishes what was queued). */
void mbx_db_stop_repl(struct mbx_db *db);
/* → FAILED with reason; stops replication; the store, if any, stays open. */
void mbx_db_fail(struct mbx_db *db, const char *reason);

/* PASSIVE → SWAPPING (the seed installer: the sink that drives it keeps running) or,
 * with to_removing, → REMOVING (the copy remover: replication stops first). Stops
 * the committer and hands the store to the caller. */
int mbx_db_detach_store(struct mbx_db *db, bool to_removing, struct mbx_store **store_r);
/* SWAPPING → PASSIVE with store (ownership passes), the committer restarted; a
 * failed restart leaves the copy FAILED. REMOVING → PASSIVE the same way when a
 * removal could not start. */
int mbx_db_attach_store(struct mbx_node *n, struct mbx_db *db, struct mbx_store *store);

#endif

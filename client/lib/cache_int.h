/* cache_int.h — cached mode internals shared by cache.c (the store and its
 * invariants), cache_ops.c (the local calls), cache_apply.c (server changes in, and
 * the conflict rules), cache_sync.c (the two-way sync) and cache_watch.c. Prefix
 * mbxc__ct_ for what works inside one cache transaction. Not installed; the unit
 * tests include it. */
#ifndef MBX_CACHE_INT_H
#define MBX_CACHE_INT_H

#include <lmdb.h>
#include <stdarg.h>

#include "arena.h"
#include "mbx/cache.h"

/* Sub-databases. Integer keys are big-endian so that LMDB's order is numeric. */
enum mbxc__cdb {
  CDB_META,       /* name → value (settings, counters, tokens) */
  CDB_FOLDERS,    /* folder id → CacheFolder */
  CDB_ITEMS,      /* item id → CacheItem */
  CDB_FINDEX,     /* (folder, ~received_us, item) → ∅: visible items, newest first */
  CDB_BODIES,     /* item id → raw RFC 5322 bytes */
  CDB_FSTATE,     /* folder id → CacheFolderState */
  CDB_QUEUE,      /* seq → CacheOp: the outbox, in order */
  CDB_QINDEX,     /* (object id, seq) → ∅: the queued changes of one item or folder */
  CDB_IDMAP,      /* local id → server id, once its creation was pushed */
  CDB_CONFLICTS,  /* seq → CacheConflict */
  CDB_N
};

struct mbxc_cache {
  MDB_env *env;
  MDB_dbi dbi[CDB_N];
  char *dir;
  char *user;
};

/* Folder counter changes gathered during a transaction, written before any read of
 * a folder record and at commit (a first sync touches one folder 1000 times). */
#define MBXC__CT_DELTAS 16
struct mbxc__ct_delta {
  uint64_t folder;
  int64_t count, unread, size;
};

/* Called for each conflict resolved inside a transaction (sync progress). */
typedef void (*mbxc__conflict_cb)(void *arg, const char *text);

/* One cache transaction: LMDB txn + an arena for everything unpacked in it.
 * Errors are sticky in the sense of LMDB: after a failed write the caller aborts. */
struct mbxc__ct {
  mbxc_cache *c;
  MDB_txn *txn;
  bool write;
  struct mbx_arena a;
  struct mbxc__ct_delta d[MBXC__CT_DELTAS];
  size_t nd;
  uint32_t conflicts;               /* conflicts recorded in this transaction */
  uint32_t queued;                  /* entries queued in this transaction */
  uint64_t known_folder;            /* a folder the caller knows is visible (sync pages) */
  uint64_t applied;                 /* server changes that changed the cache (not echoes) */
  mbxc__conflict_cb on_conflict;
  void *on_conflict_arg;
};

/* ---- errors (cache.c) ---- */
/* Records "fmt…" as this thread's last error and returns code. */
int mbxc__cache_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* LMDB code → MBX_E… (the one place), with the last error set. */
int mbxc__cache_mdb_err(int rc, const char *what);

/* ---- transactions ---- */
int mbxc__ct_begin(mbxc_cache *c, bool write, struct mbxc__ct *t);
int mbxc__ct_commit(struct mbxc__ct *t);
void mbxc__ct_abort(struct mbxc__ct *t);
/* Deep copy of a message into the transaction's arena (pack + unpack). */
void *mbxc__ct_dup(struct mbxc__ct *t, const ProtobufCMessage *m);
#define MBXC__DUP(t, m) mbxc__ct_dup((t), &(m)->base)
/* Whether a record mbxc__ct_scan decoded is whole (false: it counts as corrupt). */
typedef bool (*mbxc__ct_check_fn)(const ProtobufCMessage *m);
/* Decodes the records of db in key order, at most max of them, into an array in the
 * arena. A record that does not decode, or that ok (may be NULL) refuses, fails the
 * scan with MBX_ECORRUPT "cache: undecodable <record>". */
int mbxc__ct_scan(struct mbxc__ct *t, enum mbxc__cdb db, size_t max,
                  const ProtobufCMessageDescriptor *desc, mbxc__ct_check_fn ok,
                  const char *record, void ***v_r, size_t *n_r);

/* ---- meta ---- */
int mbxc__ct_meta_get(struct mbxc__ct *t, const char *name, MDB_val *v_r);
int mbxc__ct_meta_put(struct mbxc__ct *t, const char *name, const void *v, size_t len);
int mbxc__ct_meta_del(struct mbxc__ct *t, const char *name);
uint64_t mbxc__ct_meta_u64(struct mbxc__ct *t, const char *name, uint64_t dflt);
int mbxc__ct_meta_put_u64(struct mbxc__ct *t, const char *name, uint64_t v);
/* A string setting copied into the arena, or NULL if unset. */
char *mbxc__ct_meta_str(struct mbxc__ct *t, const char *name);

/* ---- ids ---- */
int mbxc__ct_new_local_id(struct mbxc__ct *t, uint64_t *id_r);
/* The server id of a pushed local id, else id itself. */
uint64_t mbxc__ct_resolve(struct mbxc__ct *t, uint64_t id);
int mbxc__ct_map_put(struct mbxc__ct *t, uint64_t local_id, uint64_t server_id);

/* ---- items ---- */
/* MBX_ENOTFOUND when absent. The record lives in the arena (free to modify). */
int mbxc__ct_item_get(struct mbxc__ct *t, uint64_t id, Mbx__CacheItem **rec_r);
/* mbxc__ct_item_get, then the item's queued changes, in order (arena), as
 * mbxc__ct_queue_of. MBX_ENOTFOUND when there is no record. */
int mbxc__ct_item_queued(struct mbxc__ct *t, uint64_t id, Mbx__CacheItem **rec_r,
                         Mbx__CacheOp ***ops_r, size_t *n_r);
/* Writes rec (key rec->view->id); old is what was stored (NULL: nothing): keeps the
 * folder index and the folder counters right. */
int mbxc__ct_item_put(struct mbxc__ct *t, const Mbx__CacheItem *old, const Mbx__CacheItem *rec);
/* Removes the record, its index entry, its body; old as read. Queue entries stay. */
int mbxc__ct_item_del(struct mbxc__ct *t, const Mbx__CacheItem *old);
/* Visible item ids of a folder, newest first (arena). */
int mbxc__ct_folder_items(struct mbxc__ct *t, uint64_t folder_id, uint64_t **ids_r, size_t *n_r);
/* Whether the item has queued changes (any entry in the queue index). */
bool mbxc__ct_pending(struct mbxc__ct *t, uint64_t id);
/* The server folder of an item record: srv's when dirty, else the view's. */
uint64_t mbxc__ct_item_srv_folder(const Mbx__CacheItem *rec);
/* Recomputes the view of item id from its server version (or its creation entry)
 * and its queued changes, in order; an item with nothing queued becomes clean.
 * An item with neither a server version nor a creation entry is removed. */
int mbxc__ct_item_rebase(struct mbxc__ct *t, uint64_t id);
/* Moves an item record, its body and its queue index entries from id to new_id. */
int mbxc__ct_item_rekey(struct mbxc__ct *t, uint64_t id, uint64_t new_id);

/* ---- bodies ---- */
int mbxc__ct_body_get(struct mbxc__ct *t, uint64_t id, MDB_val *v_r);
int mbxc__ct_body_put(struct mbxc__ct *t, uint64_t id, const void *data, size_t len);
int mbxc__ct_body_del(struct mbxc__ct *t, uint64_t id);

/* ---- folders ---- */
int mbxc__ct_folder_get(struct mbxc__ct *t, uint64_t id, Mbx__CacheFolder **rec_r);
int mbxc__ct_folder_put(struct mbxc__ct *t, const Mbx__CacheFolder *rec);
int mbxc__ct_folder_del(struct mbxc__ct *t, uint64_t id);
/* Every folder record, hidden ones included (arena). */
int mbxc__ct_folder_all(struct mbxc__ct *t, Mbx__CacheFolder ***v_r, size_t *n_r);
/* The visible child of parent named name (case-insensitive), or MBX_ENOTFOUND. */
int mbxc__ct_folder_child(struct mbxc__ct *t, uint64_t parent, const char *name,
                          Mbx__CacheFolder **rec_r);
/* The visible folder with that well-known role, or MBX_ENOTFOUND. */
int mbxc__ct_folder_wk(struct mbxc__ct *t, Mbx__WellKnown wk, Mbx__CacheFolder **rec_r);
/* Recomputes a folder's view (name, parent) from srv + queued renames/moves. */
int mbxc__ct_folder_rebase(struct mbxc__ct *t, uint64_t id);
/* Gives folder id the server's id: record, state, items, children, queue index. */
int mbxc__ct_folder_rekey(struct mbxc__ct *t, uint64_t id, uint64_t new_id);
/* Folder state (token, last sync): MBX_ENOTFOUND when none. */
int mbxc__ct_fstate_get(struct mbxc__ct *t, uint64_t id, Mbx__CacheFolderState **st_r);
int mbxc__ct_fstate_put(struct mbxc__ct *t, uint64_t id, const Mbx__CacheFolderState *st);
int mbxc__ct_fstate_del(struct mbxc__ct *t, uint64_t id);
/* A folder name the server would accept. */
bool mbxc__folder_name_ok(const char *name);

/* ---- the queue ---- */
/* Appends op (seq, key, queued_us filled in here). MBX_ELIMIT when full. */
int mbxc__ct_queue_add(struct mbxc__ct *t, Mbx__CacheOp *op);
int mbxc__ct_queue_get(struct mbxc__ct *t, uint64_t seq, Mbx__CacheOp **op_r);
/* Rewrites op in place (same seq). new_key: its content changed, so it gets a new
 * idempotency key (the old one may have been used for the old content). */
int mbxc__ct_queue_update(struct mbxc__ct *t, Mbx__CacheOp *op, bool new_key);
int mbxc__ct_queue_del(struct mbxc__ct *t, const Mbx__CacheOp *op);
/* The queued changes of one object, in order (arena). */
int mbxc__ct_queue_of(struct mbxc__ct *t, uint64_t id, Mbx__CacheOp ***ops_r, size_t *n_r);
/* Every queued change, in order (arena); at most max (0 = all). */
int mbxc__ct_queue_all(struct mbxc__ct *t, size_t max, Mbx__CacheOp ***ops_r, size_t *n_r);
uint64_t mbxc__ct_queue_len(struct mbxc__ct *t);
/* Drops every queued change of an object. */
int mbxc__ct_queue_drop_of(struct mbxc__ct *t, uint64_t id);

/* ---- conflicts ---- */
/* Records a resolved conflict (and tells on_conflict). */
int mbxc__ct_conflict(struct mbxc__ct *t, const char *rule, uint64_t id, uint64_t copy_id,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* ---- cache_apply.c: server changes in, conflict rules ----
 * Each runs inside the caller's write transaction and leaves the cache consistent. */

/* A server version of an item (from a sync page, a push reply or a get). */
int mbxc__apply_item(struct mbxc__ct *t, const Mbx__Item *it);
/* The server says item id left folder_id. Returns 1 (and does nothing) when the
 * item has queued changes and the caller must find out where it went (get it:
 * mbxc__apply_item if found, mbxc__apply_item_gone if not). */
int mbxc__apply_item_left(struct mbxc__ct *t, uint64_t id, uint64_t folder_id);
/* The item no longer exists on the server (a get said ENOTFOUND). */
int mbxc__apply_item_gone(struct mbxc__ct *t, uint64_t id);
/* A server version of a folder (hierarchy sync, push reply). */
int mbxc__apply_folder(struct mbxc__ct *t, const Mbx__Folder *f);
/* The server deleted folder id (and everything in it). */
int mbxc__apply_folder_gone(struct mbxc__ct *t, uint64_t id);
/* Folder root was deleted here but changed on the server: its queued deletion is
 * dropped, it and its subfolders come back and are downloaded again from scratch. */
int mbxc__apply_folder_restore(struct mbxc__ct *t, uint64_t root, const char *why);
/* After a full folder download: removes the clean items of folder_id whose ids are
 * not in seen (sorted, n). */
int mbxc__apply_sweep(struct mbxc__ct *t, uint64_t folder_id, const uint64_t *seen, size_t n);
/* Keeps a copy of rec's view (and body) as a new local item in Sync Issues/Conflicts
 * (creating the folders as needed), with a message there saying why. *copy_id_r
 * (may be NULL) is the copy's local id. */
int mbxc__conflict_keep_copy(struct mbxc__ct *t, const Mbx__CacheItem *rec, const char *why,
                             uint64_t *copy_id_r);
/* The Sync Issues/Conflicts folder for items of class cls (made here if missing). */
int mbxc__conflict_folder(struct mbxc__ct *t, Mbx__FolderClass cls, uint64_t *id_r);
/* Queues a message in Sync Issues/Conflicts describing a conflict. */
int mbxc__conflict_note(struct mbxc__ct *t, const char *subject, const char *text);

/* ---- cache_ops.c ---- */
/* Creates an item here (view + creation entry): used by the local calls and by the
 * conflict rules. body/len for messages (NULL for typed items). */
int mbxc__ct_create_local_item(struct mbxc__ct *t, uint64_t folder_id, const Mbx__Item *tmpl,
                               const void *body, size_t len, Mbx__CacheItem **rec_r);
/* Creates a folder here (view + creation entry). */
int mbxc__ct_create_local_folder(struct mbxc__ct *t, const char *name, uint64_t parent,
                                 Mbx__FolderClass cls, Mbx__CacheFolder **rec_r);

#endif

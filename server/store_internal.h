/* store_internal.h — what store.c, store_apply.c, store_read.c and store_sync.c
 * share: the store/transaction structs, key layouts, record get/put helpers and
 * the single LMDB → MBX error conversion. Private to server/store*.c. */
#ifndef MBX_STORE_INTERNAL_H
#define MBX_STORE_INTERNAL_H

#include <lmdb.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "arena.h"
#include "buf.h"
#include "logrec.h"
#include "store.h"

/* Keys (all integers big-endian so LMDB's byte order is numeric order):
 *   meta          "db_uid" "epoch" "last_lsn" "first_lsn" "next_id" "log_bytes" → BE64;
 *                 "name" → bytes
 *   mailboxes     id                              → Mailbox
 *   addresses     lower-case address or alias     → mailbox id
 *   folders       id                              → Folder
 *   folder_names  mailbox, parent, lower-case name → folder id
 *   items         id                              → Item
 *   bodies        item id                         → raw bytes
 *   folder_index  folder, ~received_us', ~item id  → empty (newest first)
 *   changes       folder, cn                      → Change (one per live item + tombstones)
 *   hchanges      mailbox, hcn                    → Change (one per live folder + tombstones)
 *   log           lsn                             → encoded record
 *   rlog          lsn                             → encoded record received, not yet
 *                                                   replayed (passive, lagged copy)
 *   idem          scope id, scope kind (1 byte), key → IdemRecord (idempotency keys)
 *   idem_time     time_us', scope id, kind, key   → empty (oldest first, for pruning)
 *   epochs        epoch                           → BE64 first lsn of that epoch (the
 *                                                   epoch history; replicated through
 *                                                   OpBeginEpoch, not in the digest)
 * meta "cn_floor" (BE64, absent = 0): every folder's last_cn and mailbox's last_hcn
 * reads as at least this (set by OpBeginEpoch; see mbx_store_begin_epoch).
 * Replication keys in meta (never part of the digest): "copies" → packed CopyLayout
 * (written by apply of OpSetCopies, so it replicates); "copy_meta" → this copy's own
 * mbx_store_copy_meta (local only: written outside the log, reset after a seed). */
enum mbx__db {
  MBX__DB_META,
  MBX__DB_MAILBOXES,
  MBX__DB_ADDRESSES,
  MBX__DB_FOLDERS,
  MBX__DB_FOLDER_NAMES,
  MBX__DB_ITEMS,
  MBX__DB_BODIES,
  MBX__DB_FOLDER_INDEX,
  MBX__DB_CHANGES,
  MBX__DB_HCHANGES,
  MBX__DB_LOG,
  MBX__DB_RLOG,
  MBX__DB_IDEM,
  MBX__DB_IDEM_TIME,
  MBX__DB_EPOCHS,
  MBX__DB_COUNT
};

#define MBX__NAME_MAX           255
#define MBX__ADDRESS_MAX        254
#define MBX__FOLDER_DEPTH_MAX   64
#define MBX__CATEGORIES_MAX     64
#define MBX__CATEGORY_MAX_BYTES 255
#define MBX__ALIASES_MAX        64

struct mbx_store {
  MDB_env *env;
  MDB_dbi dbi[MBX__DB_COUNT];
  char *name, *path;
  struct mbx_store_options opt;
  uint64_t db_uid;
  _Atomic uint64_t last_lsn, epoch;
  /* Replication positions (store_repl.c), published after durable commits. */
  _Atomic uint64_t received_lsn, received_epoch;
  _Atomic int64_t received_time_us, replayed_time_us;
  _Atomic uint64_t rq_records, rq_bytes; /* the received log (replay queue) */
  _Atomic uint64_t log_floor;            /* UINT64_MAX: none (log_retain_bytes only) */
  bool writing;                          /* a wtxn is open (one writer at a time) */
};

struct mbx_wtxn {
  struct mbx_store *s;
  MDB_txn *top;
  MDB_txn *txn;       /* the current unit's nested txn, else top */
  int failed;         /* sticky: first error outside a unit */
  struct mbx_buf ops; /* packed LogOps payload of the successful units */
  size_t n_ops;
  size_t unit_ops_len, unit_n_ops; /* rollback point of the open unit */
  struct mbx_arena scratch;        /* apply's temporaries; reset after each unit */
  /* What the open unit changed (mbx_store_unit_changes), filled by apply. */
  struct mbx_store_change *chg;
  size_t n_chg, cap_chg;
  uint64_t begun_epoch;  /* an OpBeginEpoch applied: the record is of this epoch */
  uint64_t rec_epoch;    /* replay: the epoch of the record being applied (0: writing) */
};

struct mbx_rtxn {
  struct mbx_store *s;
  MDB_txn *txn;
};

/* The one place LMDB return codes become MBX codes (logged with `what`). */
int mbx__store_mdb_err(const struct mbx_store *s, int rc, const char *what);

/* ASCII lower-case copy into the arena (addresses and folder names compare this way). */
char *mbx__store_lower(struct mbx_arena *a, const char *s);

static inline MDB_val mbx__val(const void *p, size_t n)
{
  MDB_val v = {n, (void *)p};
  return v;
}

/* Record helpers: get unpacks into the arena (MBX_ENOTFOUND if absent; MBX_ECORRUPT
 * if it does not unpack); put packs (using the arena for the bytes). */
int mbx__get_u64(struct mbx_store *s, MDB_txn *t, enum mbx__db db, const void *key, size_t klen,
                 uint64_t *v_r);
int mbx__put_u64(struct mbx_store *s, MDB_txn *t, enum mbx__db db, const void *key, size_t klen,
                 uint64_t v);
int mbx__get_msg(struct mbx_store *s, MDB_txn *t, enum mbx__db db, uint64_t id,
                 const ProtobufCMessageDescriptor *desc, struct mbx_arena *a, void **msg_r);
int mbx__put_msg(struct mbx_store *s, MDB_txn *t, enum mbx__db db, const uint8_t *key, size_t klen,
                 const ProtobufCMessage *msg, struct mbx_arena *a);

int mbx__get_mailbox(struct mbx_store *s, MDB_txn *t, uint64_t id, struct mbx_arena *a,
                     Mbx__Mailbox **mb_r);
int mbx__get_folder(struct mbx_store *s, MDB_txn *t, uint64_t id, struct mbx_arena *a,
                    Mbx__Folder **f_r);
int mbx__get_item(struct mbx_store *s, MDB_txn *t, uint64_t id, struct mbx_arena *a,
                  Mbx__Item **it_r);
/* The same, but MBX_ENOTFOUND unless it belongs to mailbox_id. */
int mbx__get_folder_of(struct mbx_store *s, MDB_txn *t, uint64_t mailbox_id, uint64_t id,
                       struct mbx_arena *a, Mbx__Folder **f_r);
int mbx__get_item_of(struct mbx_store *s, MDB_txn *t, uint64_t mailbox_id, uint64_t id,
                     struct mbx_arena *a, Mbx__Item **it_r);

/* folder_names key for (mailbox, parent, lower-case name); returns its length. */
size_t mbx__folder_name_key(uint8_t *k, uint64_t mailbox_id, uint64_t parent_id,
                            const char *lower_name);
/* Looks a child folder up by name (any case). MBX_ENOTFOUND if none. */
int mbx__find_child(struct mbx_store *s, MDB_txn *t, uint64_t mailbox_id, uint64_t parent_id,
                    const char *name, struct mbx_arena *a, uint64_t *id_r);
/* folder_index key (24 bytes). */
void mbx__index_key(uint8_t *k, uint64_t folder_id, int64_t received_us, uint64_t item_id);

/* Apply (store_apply.c): performs one op in w's current txn and maintains every
 * derived record. Deterministic; used both by the write path and by replay. */
int mbx__apply_op(struct mbx_wtxn *w, const Mbx__Op *op);

/* Notes a folder's new last_cn (folder_id 0: the mailbox's new last hcn) for
 * mbx_store_unit_changes. Only inside a unit; never fails (a change that cannot be
 * noted costs a notification, not data). */
void mbx__note_change(struct mbx_wtxn *w, uint64_t mailbox_id, uint64_t folder_id, uint64_t cn);

/* Packs op into the unit's log payload and applies it (store.c): every prepare ends
 * here. */
int mbx__store_emit(struct mbx_wtxn *w, const Mbx__Op *op);

/* idem key (scope id, kind byte, key); returns its length. k: 9 + MBX_STORE_IDEM_KEY_MAX. */
size_t mbx__idem_key(uint8_t *k, uint64_t scope_id, uint32_t scope_kind, const uint8_t *key,
                     size_t key_len);

/* Applies one verified record (rec decoded from data/len) in w's top txn: its ops,
 * the log append and the epoch. Shared by mbx_store_apply_record and the passive's
 * replay (store_repl.c). Does not publish anything. */
int mbx__apply_record_txn(struct mbx_wtxn *w, const struct mbx_logrec *rec, const uint8_t *data,
                          size_t len);

/* Adds {epoch → first_lsn} to the epoch history (apply of OpBeginEpoch, and replay of
 * a record whose epoch is newer than the store's). MBX_ECORRUPT if epoch is not newer
 * than the history's last. */
int mbx__epoch_history_add(struct mbx_wtxn *w, uint64_t epoch, uint64_t first_lsn);

/* Replication state at open (store_repl.c): positions from the log and the received
 * log, no floor. */
int mbx__repl_open(struct mbx_store *s);

/* Log tail (store.c): stores an encoded record under lsn, updates meta (last_lsn,
 * first_lsn, log_bytes) and truncates the oldest records: those below the log floor,
 * and beyond log_retain_bytes regardless of the floor; never the newest. */
int mbx__log_append(struct mbx_wtxn *w, uint64_t lsn, const uint8_t *rec, size_t len);

#endif

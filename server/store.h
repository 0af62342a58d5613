/* store.h — one mailbox database: an LMDB environment holding mailboxes, folders,
 * items, change indexes and the log.
 *
 * Thread rules. Any thread may read (mbx_store_rtxn_*), with short read
 * transactions only. Exactly one thread per store writes (the group-commit writer,
 * server/commit.c): it opens a write transaction, runs each client request as a
 * *unit* (a nested LMDB transaction: a failed unit leaves no trace), then commits.
 * Commit appends one log record holding the ops of all successful units, in the same
 * LMDB transaction, and returns once the transaction is durable (fsync).
 *
 * Every write operation below is prepare + apply: prepare reads the current state,
 * checks permissions/limits and decides every id and change number, producing ops;
 * apply (mbx_store_apply_op) performs an op. Passives will replay the log through
 * mbx_store_apply_record, i.e. through the very same apply code.
 *
 * Memory. Results are protobuf-c messages allocated in the caller's arena; they stay
 * valid until the arena is reset. Bodies returned by reads point into LMDB's map or
 * the arena: use them before the read transaction ends.
 *
 * Errors. MBX_ENOTFOUND (unknown mailbox/folder/item, or one of another mailbox —
 * never distinguishable), MBX_EEXIST, MBX_EINVAL, MBX_EPERM (e.g. renaming a
 * well-known folder), MBX_EQUOTA, MBX_ETOOBIG, MBX_ESTATE (bad sync token),
 * MBX_ENOSPC (map full), MBX_ESTORE (other LMDB failure), MBX_ECORRUPT.
 * After a failed mbx_store_wtxn_commit the write transaction is gone (sticky: the
 * caller must start a new one).
 */
#ifndef MBX_STORE_H
#define MBX_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "store.pb-c.h"

struct mbx_store;
struct mbx_wtxn;
struct mbx_rtxn;

struct mbx_store_options {
  uint64_t map_size_bytes;            /* LMDB map size; default 64 GiB (sparse) */
  uint64_t max_message_bytes;         /* default 35 MiB */
  uint64_t log_retain_bytes;          /* keep at least the newest records up to this size;
                                         older ones are truncated (replication will refine) */
  uint64_t default_quota_warn_bytes;  /* used when a new mailbox gives none */
  uint64_t default_quota_prohibit_bytes;
  uint64_t idem_keep_s;               /* idempotency keys are kept at least this long;
                                         0 = 604800 (7 days) */
};

/* Fills defaults. */
void mbx_store_options_default(struct mbx_store_options *opt);

/* Opens (create=true: creates if missing) the database `name` in directory `dir`.
 * error_r: a static/explanatory string on failure (may be NULL).
 * Returns 0, MBX_ENOTFOUND (missing and !create), MBX_EEXIST (create of an existing
 * one is fine: returns 0), MBX_ESTORE, MBX_ECORRUPT. */
int mbx_store_open(const char *dir, const char *name, bool create,
                   const struct mbx_store_options *opt, struct mbx_store **store_r,
                   const char **error_r);
/* Closes and sets *store to NULL. No transaction may be open. */
void mbx_store_close(struct mbx_store **store);

const char *mbx_store_name(const struct mbx_store *s);
const char *mbx_store_path(const struct mbx_store *s);
/* Last committed LSN and current epoch (atomic reads; any thread). */
uint64_t mbx_store_last_lsn(const struct mbx_store *s);
uint64_t mbx_store_epoch(const struct mbx_store *s);
/* Random id made when the database was created; part of sync tokens. */
uint64_t mbx_store_db_uid(const struct mbx_store *s);
/* Size of the LMDB data file in bytes. */
uint64_t mbx_store_file_bytes(const struct mbx_store *s);

/* ---- write side: writer thread only ---------------------------------------- */

int mbx_store_wtxn_begin(struct mbx_store *s, struct mbx_wtxn **w_r);
/* Writes the log record (if any unit produced ops) with the store's epoch and the
 * next LSN, commits durably, sets *w to NULL. lsn_r: the record's LSN (0 if none).
 * MBX_ENOTACTIVE if units produced ops while received records are pending replay
 * (a passive: their LSNs are taken). */
int mbx_store_wtxn_commit(struct mbx_wtxn **w, uint64_t *lsn_r);
void mbx_store_wtxn_abort(struct mbx_wtxn **w);
/* Bytes of ops the transaction's log record holds so far (what its successful units
 * wrote): the group committer ends a batch once this passes its byte bound. */
size_t mbx_store_wtxn_log_bytes(const struct mbx_wtxn *w);

/* Units: every request's writes run between these. */
int mbx_store_unit_begin(struct mbx_wtxn *w);
/* status 0 keeps the unit's changes and ops; < 0 rolls them back. */
void mbx_store_unit_end(struct mbx_wtxn *w, int status);

/* What the open unit changed, for push notifications (server/notify.h): one entry per
 * folder that took a new change number (cn = the folder's last_cn now) and one per
 * mailbox whose folder hierarchy changed (folder_id 0, cn = the mailbox's last hcn).
 * Recorded by apply, so exactly what the unit's ops did; nothing is recorded outside
 * units (replay). *v_r is valid until the unit ends; the count is returned. */
struct mbx_store_change {
  uint64_t mailbox_id;
  uint64_t folder_id;                 /* 0: the hierarchy */
  uint64_t cn;
};
size_t mbx_store_unit_changes(const struct mbx_wtxn *w, const struct mbx_store_change **v_r);

/* Precondition of a cached client's write (Request if_cn): 0 when item_id's current
 * change number is if_cn, else MBX_ECONFLICT with *cn_r = the current one (nothing is
 * changed). Call it in the same unit, before the write. MBX_ENOTFOUND as for writes. */
int mbx_store_check_cn(struct mbx_wtxn *w, uint64_t mailbox_id, uint64_t item_id, uint64_t if_cn,
                       uint64_t *cn_r);

/* ---- idempotency keys (Request.idempotency_key) --------------------------------
 * A write carrying a key runs as: mbx_store_idem_get in its unit; if found, answer
 * with the stored reply and write nothing; else do the write and, in the same unit,
 * mbx_store_idem_put. The record travels in the log (OpIdemKey), so every copy has
 * the same keys and a replayed store answers a duplicate exactly as the active did;
 * because the writer runs units one at a time, two identical requests in flight at
 * once apply once. Keys are scoped: (scope_id, scope_kind) is the session's mailbox
 * (MBX_STORE_IDEM_USER) or a deliver's recipient mailbox (MBX_STORE_IDEM_TRANSPORT).
 * Each put also drops up to 64 keys older than idem_keep_s (the cutoff is carried in
 * the op, so every copy drops the same ones). */
#define MBX_STORE_IDEM_KEY_MAX 64
#define MBX_STORE_IDEM_USER 0u
#define MBX_STORE_IDEM_TRANSPORT 1u

struct mbx_store_idem {
  int64_t time_us;                    /* when the first write was made */
  int32_t status;                     /* 0: only successes are recorded */
  uint32_t request;                   /* the Request body field number it answered */
  const uint8_t *reply;               /* the packed Response recorded with it */
  size_t reply_len;
};

/* Looks the key up. 0 with *rec filled (reply copied into a), MBX_ENOTFOUND,
 * MBX_EINVAL (key empty or longer than MBX_STORE_IDEM_KEY_MAX). Writer thread, in a
 * unit (the lookup sees the batch's earlier units). */
int mbx_store_idem_get(struct mbx_wtxn *w, uint64_t scope_id, uint32_t scope_kind,
                       const uint8_t *key, size_t key_len, struct mbx_arena *a,
                       struct mbx_store_idem *rec);
/* Records the key with the reply through the log (an OpIdemKey). MBX_EINVAL (key
 * length, reply over 1 MiB). Writer thread, in the write's unit. */
int mbx_store_idem_put(struct mbx_wtxn *w, uint64_t scope_id, uint32_t scope_kind,
                       const uint8_t *key, size_t key_len, uint32_t request,
                       const uint8_t *reply, size_t reply_len);
/* Read side of the same lookup (tests, tools); the reply is copied into a. */
int mbx_store_idem_lookup(struct mbx_rtxn *r, uint64_t scope_id, uint32_t scope_kind,
                          const uint8_t *key, size_t key_len, struct mbx_arena *a,
                          struct mbx_store_idem *rec);
/* Number of keys held. */
int mbx_store_idem_count(struct mbx_rtxn *r, uint64_t *n_r);

struct mbx_mailbox_spec {
  const char *address;
  const char *const *aliases;
  size_t n_aliases;
  const char *display_name;
  const char *password_hash;          /* already hashed (server/passwd.h) */
  bool has_quota;                     /* false: the store's defaults */
  uint64_t quota_warn_bytes, quota_prohibit_bytes;  /* 0 = unlimited */
};

int mbx_store_create_mailbox(struct mbx_wtxn *w, const struct mbx_mailbox_spec *spec,
                             struct mbx_arena *a, Mbx__Mailbox **mb_r);

/* Delivery by address (primary or alias, case-insensitive) into the Inbox. Checks
 * max_message_bytes and the prohibit quota. Parses the RFC 5322 header summary. */
int mbx_store_deliver(struct mbx_wtxn *w, const char *address, const uint8_t *body, size_t len,
                      struct mbx_arena *a, Mbx__Item **item_r);
/* A message into a given folder of a mailbox (drafts, sent items …). */
int mbx_store_append(struct mbx_wtxn *w, uint64_t mailbox_id, uint64_t folder_id,
                     const uint8_t *body, size_t len, uint32_t flags, int64_t received_us,
                     struct mbx_arena *a, Mbx__Item **item_r);
/* Event, contact, task or note: tmpl gives kind, the sub-message, flags, categories. */
int mbx_store_create_item(struct mbx_wtxn *w, uint64_t mailbox_id, uint64_t folder_id,
                          const Mbx__Item *tmpl, struct mbx_arena *a, Mbx__Item **item_r);
/* categories != NULL: replace the item's categories with these n. */
int mbx_store_set_flags(struct mbx_wtxn *w, uint64_t mailbox_id, uint64_t item_id,
                        uint32_t add, uint32_t remove, const char *const *categories,
                        size_t n_categories, struct mbx_arena *a, Mbx__Item **item_r);
int mbx_store_move_item(struct mbx_wtxn *w, uint64_t mailbox_id, uint64_t item_id,
                        uint64_t folder_id, struct mbx_arena *a, Mbx__Item **item_r);
int mbx_store_copy_item(struct mbx_wtxn *w, uint64_t mailbox_id, uint64_t item_id,
                        uint64_t folder_id, struct mbx_arena *a, Mbx__Item **item_r);
/* hard=false moves to Deleted Items (an item already there is removed for good). */
int mbx_store_delete_item(struct mbx_wtxn *w, uint64_t mailbox_id, uint64_t item_id, bool hard);
int mbx_store_empty_folder(struct mbx_wtxn *w, uint64_t mailbox_id, uint64_t folder_id,
                           uint64_t *count_r);
int mbx_store_create_folder(struct mbx_wtxn *w, uint64_t mailbox_id, uint64_t parent_id,
                            const char *name, Mbx__FolderClass cls, struct mbx_arena *a,
                            Mbx__Folder **folder_r);
/* Rename (name != NULL) and/or move (has_parent). Well-known folders: MBX_EPERM.
 * Moving a folder under itself or a descendant: MBX_EINVAL. */
int mbx_store_update_folder(struct mbx_wtxn *w, uint64_t mailbox_id, uint64_t folder_id,
                            const char *name, bool has_parent, uint64_t parent_id,
                            struct mbx_arena *a, Mbx__Folder **folder_r);
/* Deletes a custom folder, its subfolders and their items. */
int mbx_store_delete_folder(struct mbx_wtxn *w, uint64_t mailbox_id, uint64_t folder_id);

/* ---- replay ------------------------------------------------------------------ */

/* Applies one encoded log record (verified first) in its own durable write
 * transaction, storing it in the log too. Its LSN must be last_lsn + 1
 * (else MBX_ECORRUPT, also while received records are pending); the store's epoch
 * becomes the record's. Writer thread only. */
int mbx_store_apply_record(struct mbx_store *s, const uint8_t *rec, size_t len);

/* ---- epochs ------------------------------------------------------------------
 * Every log record carries the epoch of the active copy that wrote it. An epoch
 * begins with a record holding one OpBeginEpoch {epoch, first lsn}: every copy that
 * applies it (the active writing it, a passive replaying it) adds {epoch → first lsn}
 * to its *epoch history*, kept durably in the store (sub-database `epochs`), so the
 * history replicates with the log and travels with a seed. A new database starts
 * with {1 → 1}; a store made before histories existed reads as {its epoch → 1}. A
 * replayed record of a newer epoch that does not begin it (an older writer) adds
 * {its epoch → its lsn}, so the history always describes the log.
 *
 * A new epoch also moves the counters past anything a lost tail of the previous
 * epoch (records its old active wrote that no surviving copy received) could have
 * handed out, so an id or change number is never reused for something else:
 *  - ids: next_id + MBX_STORE_EPOCH_ID_MARGIN (2^32). A lost tail is at most the
 *    records the old active could write before anyone noticed — bounded by the copy
 *    queue and the retained log (log_retain_bytes; every id costs an op of tens of
 *    bytes), far below 2^32; 2^32 per epoch still leaves 2^31 epochs.
 *  - change numbers are per folder and per mailbox hierarchy, too many counters to
 *    move one by one: instead epoch e has a floor (e − 1) << MBX_STORE_EPOCH_CN_SHIFT
 *    (meta "cn_floor") and every folder's last_cn and mailbox's last_hcn reads as at
 *    least the floor, so the next change is above it. Safe while no single folder
 *    takes 2^40 changes in one epoch (years at the store's full write rate); the
 *    floor leaves room for 2^24 epochs. Epochs that are skipped only raise it more. */
#define MBX_STORE_EPOCH_ID_MARGIN (1ull << 32)
#define MBX_STORE_EPOCH_CN_SHIFT 40

/* Begins epoch `epoch` (> the store's) in its own durable write transaction: one log
 * record of that epoch holding the OpBeginEpoch, at last_lsn + 1. lsn_r: that lsn.
 * MBX_EINVAL (epoch not newer), MBX_ENOTACTIVE (received records pending replay: a
 * passive), store errors. Writer thread only: from the loop use
 * mbx_committer_begin_epoch (server/commit.h). The write fence (server/db.h) is the
 * caller's: begin the epoch before acknowledging writes in it. */
int mbx_store_begin_epoch(struct mbx_store *s, uint64_t epoch, uint64_t *lsn_r);

struct mbx_store_epoch {
  uint64_t epoch;
  uint64_t first_lsn;                 /* the epoch's first record */
};
/* The epoch history, oldest first: up to cap entries into v, *n_r of them. An epoch
 * runs from its first_lsn to the next entry's first_lsn − 1 (the last: to last_lsn).
 * MBX_ELIMIT if there are more than cap (v holds the oldest cap). Any thread. */
int mbx_store_epoch_history(struct mbx_rtxn *r, struct mbx_store_epoch *v, size_t cap,
                            size_t *n_r);
/* The epoch the history places lsn in, and that epoch's last lsn on this copy.
 * MBX_ENOTFOUND if lsn is 0, beyond last_lsn, or before the history's first entry. */
int mbx_store_epoch_of_lsn(struct mbx_rtxn *r, uint64_t lsn, uint64_t *epoch_r,
                           uint64_t *end_lsn_r);

/* ---- read side: any thread ------------------------------------------------- */

int mbx_store_rtxn_begin(struct mbx_store *s, struct mbx_rtxn **r_r);
void mbx_store_rtxn_end(struct mbx_rtxn **r);

int mbx_store_lookup_address(struct mbx_rtxn *r, const char *address, uint64_t *mailbox_id_r);
int mbx_store_get_mailbox(struct mbx_rtxn *r, uint64_t mailbox_id, struct mbx_arena *a,
                          Mbx__Mailbox **mb_r);
int mbx_store_list_mailboxes(struct mbx_rtxn *r, struct mbx_arena *a, Mbx__Mailbox ***v_r,
                             size_t *n_r);
/* All folders of a mailbox, parents before children. */
int mbx_store_list_folders(struct mbx_rtxn *r, uint64_t mailbox_id, struct mbx_arena *a,
                           Mbx__Folder ***v_r, size_t *n_r);
int mbx_store_get_folder(struct mbx_rtxn *r, uint64_t mailbox_id, uint64_t folder_id,
                         struct mbx_arena *a, Mbx__Folder **folder_r);
/* Finds a folder by path ("Inbox", "Projects/2026") or well-known name, case-insensitive. */
int mbx_store_find_folder(struct mbx_rtxn *r, uint64_t mailbox_id, const char *path,
                          struct mbx_arena *a, Mbx__Folder **folder_r);
/* Newest first (received time, then id). total_r: items in the folder. */
int mbx_store_list_items(struct mbx_rtxn *r, uint64_t mailbox_id, uint64_t folder_id,
                         uint32_t offset, uint32_t limit, struct mbx_arena *a,
                         Mbx__Item ***v_r, size_t *n_r, uint64_t *total_r);
/* body_r may be NULL; else the raw body (NULL/0 for items without one), valid until
 * the read transaction ends or the arena is reset, whichever comes first (a
 * compressed body is decompressed into the arena: server/body.h). A stored body that
 * does not decode: MBX_ECORRUPT. */
int mbx_store_get_item(struct mbx_rtxn *r, uint64_t mailbox_id, uint64_t item_id,
                       struct mbx_arena *a, Mbx__Item **item_r, const uint8_t **body_r,
                       size_t *body_len_r);

struct mbx_sync_result {
  Mbx__Item **added, **changed;       /* folder sync */
  Mbx__Folder **fadded, **fchanged;   /* hierarchy sync */
  size_t n_added, n_changed;
  uint64_t *deleted;
  size_t n_deleted;
  uint8_t *state;                     /* new opaque token, in the arena */
  size_t state_len;
  bool more;                          /* more changes remain: call again with state */
  const char *why;                    /* MBX_ESTATE: why, when there is more to say than
                                         "garbled or another scope" (in the arena) */
};

/* Changes in a folder since `state` (NULL/0 = everything). Walks the folder's change
 * index from the token's change number: cost is proportional to the changes, not
 * to the folder. max_changes 0 = 1000. A token of another folder/database or a
 * garbled one: MBX_ESTATE. A token names the lineage it was issued under (the
 * issuing copy's last lsn and the epoch its history placed it in): one whose lsn this
 * copy's history does not place in the same epoch came from a discarded history
 * (a lost tail) and is refused with MBX_ESTATE and res->why; so is one from beyond
 * this copy's last lsn. Tokens without a lineage (older ones) are accepted. */
int mbx_store_sync_folder(struct mbx_rtxn *r, uint64_t mailbox_id, uint64_t folder_id,
                          const uint8_t *state, size_t state_len, uint32_t max_changes,
                          struct mbx_arena *a, struct mbx_sync_result *res);
/* The same for the mailbox's folder hierarchy (fadded/fchanged/deleted folder ids). */
int mbx_store_sync_hierarchy(struct mbx_rtxn *r, uint64_t mailbox_id, const uint8_t *state,
                             size_t state_len, uint32_t max_changes, struct mbx_arena *a,
                             struct mbx_sync_result *res);

struct mbx_store_digest {
  uint8_t sha256[32];
  uint64_t mailboxes, folders, items;
  uint64_t last_lsn, epoch;
};
/* Deterministic hash of the logical content (mailboxes, folders, items, bodies;
 * not the log, not LMDB page layout): equal on two copies with the same content. */
int mbx_store_digest(struct mbx_rtxn *r, struct mbx_store_digest *d);

/* Reads the encoded log record at lsn (borrowed until the read txn ends).
 * MBX_ENOTFOUND if truncated or not yet written. */
int mbx_store_read_log(struct mbx_rtxn *r, uint64_t lsn, const uint8_t **rec_r, size_t *len_r);
/* Oldest LSN still in the log (0 if empty). */
uint64_t mbx_store_first_lsn(struct mbx_rtxn *r);

/* ---- replication (issue 3) ---------------------------------------------------
 * A copy's role is runtime state of the node (server/node.h), not of the store. What
 * the store keeps for replication:
 *  - the copy layout (CopyLayout), written through the log like any change, so every
 *    copy knows where the others are;
 *  - on a passive: the *received log* (records received but not yet replayed, in a
 *    sub-database of their own), and a small local record (mbx_store_copy_meta) that
 *    is never replicated;
 *  - on the active: a truncation floor set by the replication source.
 * Positions are published atomically and may be read from any thread. */

/* Writes an OpSetCopies (inside a unit, like every write). */
int mbx_store_set_copies(struct mbx_wtxn *w, const Mbx__CopyLayout *layout);
/* The current layout, in the arena (an empty layout if none was ever set). */
int mbx_store_get_copies(struct mbx_rtxn *r, struct mbx_arena *a, Mbx__CopyLayout **layout_r);

/* This copy's own replication state, kept in the store but never replicated. */
struct mbx_store_copy_meta {
  char active_node[64];               /* the node this copy pulls from ("" on the active) */
  char seed_source[64];               /* "" = the active */
  uint32_t lag_s;                     /* replay lag (lagged copy), 0 = none */
  bool suspended;
  bool needs_reseed;                  /* fell beyond the active's log, or a seed failed */
  bool failed;                        /* a received record failed its checks */
  bool diverged;                      /* the active refused the pull: its history differs */
  uint64_t diverged_lsn;              /* where the histories split (the active said) */
  char comment[256];                  /* the operator's suspend comment */
  char reason[256];                   /* why failed / needs_reseed */
};
/* Zeroed meta if none was stored. */
int mbx_store_get_copy_meta(struct mbx_store *s, struct mbx_store_copy_meta *m);
/* In its own durable write transaction: writer thread only (the committer's
 * exclusive jobs, server/commit.h). */
int mbx_store_set_copy_meta(struct mbx_store *s, const struct mbx_store_copy_meta *m);

struct mbx_store_repl_pos {
  uint64_t received_lsn;              /* last record durably received (= replayed if none pending) */
  uint64_t replayed_lsn;              /* = mbx_store_last_lsn */
  int64_t received_time_us;           /* commit time (on the active) of the last received record */
  int64_t replayed_time_us;           /* commit time of the last replayed record */
  uint64_t epoch;                     /* epoch of the last received record */
};
/* Any thread. */
void mbx_store_get_repl_pos(const struct mbx_store *s, struct mbx_store_repl_pos *pos);

/* Passive: verifies n encoded records (CRC, lsn = received + 1 with no gap, epoch not
 * going back) and stores them durably in the received log, in one write transaction;
 * in the same transaction it replays (applies, in order) those of them whose commit
 * time is <= replay_before_us (INT64_MAX: all — a copy without lag; INT64_MIN: none)
 * and whose predecessors are all replayed. On a bad record nothing of the call is
 * kept and MBX_ECORRUPT is returned with *bad_lsn_r set (the caller marks the copy
 * Failed). Writer thread only. */
int mbx_store_receive(struct mbx_store *s, const uint8_t *const *recs, const size_t *lens,
                      size_t n, int64_t replay_before_us, uint64_t *bad_lsn_r);
/* Passive: replays received records with commit time <= before_us, in order, at most
 * max_records, in one durable transaction. *n_r: how many. Writer thread only. */
int mbx_store_replay(struct mbx_store *s, int64_t before_us, uint32_t max_records, uint32_t *n_r);
/* Records received but not yet replayed, and their bytes. Any thread (a short read). */
int mbx_store_replay_queue(struct mbx_store *s, uint64_t *records_r, uint64_t *bytes_r);

/* Active: log records with lsn >= floor are kept (a copy still needs them) unless the
 * log grows over log_retain_bytes, which protects the disk (a copy behind what is left
 * must be reseeded). Records below the floor are truncated at the next commit.
 * UINT64_MAX (the default, no copies) keeps only what log_retain_bytes allows.
 * Any thread. */
void mbx_store_set_log_floor(struct mbx_store *s, uint64_t floor_lsn);
/* The CRC (logrec header field) and epoch of this copy's record at lsn, from the log
 * or, on a passive, the received log. MBX_ENOTFOUND if it has no such record (never
 * written, or truncated). Any thread (inside the caller's read transaction). */
int mbx_store_record_crc(struct mbx_rtxn *r, uint64_t lsn, uint32_t *crc_r, uint64_t *epoch_r);
/* The handshake's probes of this copy's log below and at last_lsn: the newest 32
 * records one by one, then ever further back (doubling steps) down to the oldest the
 * log still has, at most cap. *n_r of them, newest first. Any thread. */
int mbx_store_repl_probes(struct mbx_store *s, uint64_t last_lsn, uint64_t *lsn_v,
                          uint32_t *crc_v, size_t cap, size_t *n_r);

/* Bytes of the log records with lsn in (after_lsn, last]: the copy queue in bytes.
 * Walks at most max_records records (then *bytes_r is a lower bound). */
int mbx_store_log_bytes_after(struct mbx_rtxn *r, uint64_t after_lsn, uint64_t max_records,
                              uint64_t *bytes_r);

/* Seeding source: writes a consistent, compacted copy of the environment to fd
 * (mdb_env_copyfd2 with MDB_CP_COMPACT). Blocks for as long as the copy takes: never
 * on a loop thread. The receiver installs the file as NAME/data.mdb and opens it; the
 * snapshot's position is its last_lsn. The received log and the copy meta travel
 * with it: the receiver must reset them (mbx_store_reset_after_seed). */
int mbx_store_snapshot_fd(struct mbx_store *s, int fd);
/* On a freshly installed seed: clears the received log and the source's copy meta,
 * in one durable write transaction. */
int mbx_store_reset_after_seed(struct mbx_store *s);

#endif

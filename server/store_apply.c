/* store_apply.c — the apply half of every write: performs one logged op on the
 * current transaction and maintains all derived data (counters, indexes, change
 * entries, addresses, next_id, last_cn/last_hcn). Deterministic: the active and every
 * passive run exactly this code on the same records. Also mbx_store_apply_record. */
#include <string.h>

#include "log.h"
#include "logrec.h"
#include "mbx_error.h"
#include "store_internal.h"

/* ==== small record helpers ================================================== */

static uint64_t apply_max(uint64_t a, uint64_t b)
{
  return a > b ? a : b;
}
static uint64_t apply_sub(uint64_t a, uint64_t b)
{
  return a > b ? a - b : 0;
}

static int apply_del(struct mbx_store *s, MDB_txn *t, enum mbx__db db, const void *key, size_t klen)
{
  MDB_val k = mbx__val(key, klen);
  int rc = mdb_del(t, s->dbi[db], &k, NULL);
  return rc == MDB_NOTFOUND ? 0 : mbx__store_mdb_err(s, rc, "del");
}

static int apply_put_id(struct mbx_store *s, MDB_txn *t, enum mbx__db db, uint64_t id,
                        const ProtobufCMessage *m)
{
  uint8_t k[8];
  mbx_put_be64(k, id);
  return mbx__put_msg(s, t, db, k, 8, m, NULL);
}

/* A change entry (scope = folder or mailbox, cn) → Change{id, deleted}. */
static int apply_put_change(struct mbx_store *s, MDB_txn *t, enum mbx__db db, uint64_t scope,
                            uint64_t cn, uint64_t id, bool deleted)
{
  uint8_t k[16];
  mbx_put_be64(k, scope);
  mbx_put_be64(k + 8, cn);
  Mbx__Change c = MBX__CHANGE__INIT;
  c.id = id;
  c.has_deleted = deleted;
  c.deleted = deleted;
  return mbx__put_msg(s, t, db, k, 16, &c.base, NULL);
}

static int apply_del_change(struct mbx_store *s, MDB_txn *t, enum mbx__db db, uint64_t scope,
                            uint64_t cn)
{
  uint8_t k[16];
  mbx_put_be64(k, scope);
  mbx_put_be64(k + 8, cn);
  return apply_del(s, t, db, k, 16);
}

static int apply_next_id(struct mbx_wtxn *w, uint64_t id)
{
  uint64_t next;
  int err = mbx__get_u64(w->s, w->txn, MBX__DB_META, "next_id", 7, &next);
  if (err || next > id)
    return err;
  return mbx__put_u64(w->s, w->txn, MBX__DB_META, "next_id", 7, id + 1);
}

static int apply_put_name(struct mbx_wtxn *w, const Mbx__Folder *f)
{
  char *lower = mbx__store_lower(&w->scratch, f->name);
  if (!lower)
    return MBX_ENOMEM;
  uint8_t k[16 + MBX__NAME_MAX], v[8];
  size_t klen = mbx__folder_name_key(k, f->mailbox_id, f->parent_id, lower);
  mbx_put_be64(v, f->id);
  MDB_val kv = mbx__val(k, klen), vv = mbx__val(v, 8);
  return mbx__store_mdb_err(
      w->s, mdb_put(w->txn, w->s->dbi[MBX__DB_FOLDER_NAMES], &kv, &vv, MDB_NOOVERWRITE),
      "put folder name");
}

static int apply_del_name(struct mbx_wtxn *w, const Mbx__Folder *f)
{
  char *lower = mbx__store_lower(&w->scratch, f->name);
  if (!lower)
    return MBX_ENOMEM;
  uint8_t k[16 + MBX__NAME_MAX];
  size_t klen = mbx__folder_name_key(k, f->mailbox_id, f->parent_id, lower);
  return apply_del(w->s, w->txn, MBX__DB_FOLDER_NAMES, k, klen);
}

/* A record referring to state that is not there: the copy and the log disagree. */
static int apply_corrupt(struct mbx_wtxn *w, const char *why, uint64_t id)
{
  mbx_error("store %s: apply refused at lsn %llu: %s (id %llu)", w->s->name,
            (unsigned long long)mbx_store_last_lsn(w->s), why, (unsigned long long)id);
  return MBX_ECORRUPT;
}

static void apply_zero_derived(Mbx__Folder *f)
{
  f->has_item_count = f->has_unread_count = f->has_size_bytes = f->has_last_cn = true;
  f->item_count = f->unread_count = f->size_bytes = f->last_cn = 0;
}

/* ==== mailboxes ============================================================= */

static int apply_create_mailbox(struct mbx_wtxn *w, const Mbx__OpCreateMailbox *op)
{
  struct mbx_store *s = w->s;
  Mbx__Mailbox *mb = op->mailbox, *old;
  int err = mbx__get_mailbox(s, w->txn, mb->id, &w->scratch, &old);
  if (err != MBX_ENOTFOUND)
    return err ? err : apply_corrupt(w, "mailbox exists", mb->id);
  uint64_t max_id = mb->id, last_hcn = mb->last_hcn;
  uint8_t v[8];
  mbx_put_be64(v, mb->id);
  for (size_t i = 0; i <= mb->n_aliases; i++) {
    const char *addr = i == 0 ? mb->address : mb->aliases[i - 1];
    MDB_val kv = mbx__val(addr, strlen(addr)), vv = mbx__val(v, 8);
    if ((err = mbx__store_mdb_err(
             s, mdb_put(w->txn, s->dbi[MBX__DB_ADDRESSES], &kv, &vv, MDB_NOOVERWRITE),
             "put address")))
      return err;
  }
  for (size_t i = 0; i < op->n_folders; i++) {
    Mbx__Folder *f = op->folders[i];
    if (f->mailbox_id != mb->id)
      return apply_corrupt(w, "folder of another mailbox", f->id);
    apply_zero_derived(f);
    if (!f->has_created_hcn) {
      f->has_created_hcn = true;
      f->created_hcn = f->hcn;
    }
    if ((err = apply_put_name(w, f)) ||
        (err = apply_put_change(s, w->txn, MBX__DB_HCHANGES, mb->id, f->hcn, f->id, false)) ||
        (err = apply_put_id(s, w->txn, MBX__DB_FOLDERS, f->id, &f->base)))
      return err;
    max_id = apply_max(max_id, f->id);
    last_hcn = apply_max(last_hcn, f->hcn);
  }
  mb->has_used_bytes = mb->has_item_count = mb->has_last_hcn = true;
  mb->used_bytes = mb->item_count = 0;
  mb->last_hcn = last_hcn;
  mbx__note_change(w, mb->id, 0, last_hcn);
  if ((err = apply_put_id(s, w->txn, MBX__DB_MAILBOXES, mb->id, &mb->base)))
    return err;
  return apply_next_id(w, max_id);
}

/* ==== folders =============================================================== */

static int apply_put_folder(struct mbx_wtxn *w, const Mbx__OpPutFolder *op)
{
  struct mbx_store *s = w->s;
  Mbx__Folder *f = op->folder, *old, *parent;
  Mbx__Mailbox *mb;
  int err = mbx__get_mailbox(s, w->txn, f->mailbox_id, &w->scratch, &mb);
  if (err)
    return err == MBX_ENOTFOUND ? apply_corrupt(w, "folder of no mailbox", f->id) : err;
  if (f->parent_id) {
    err = mbx__get_folder_of(s, w->txn, f->mailbox_id, f->parent_id, &w->scratch, &parent);
    if (err)
      return err == MBX_ENOTFOUND ? apply_corrupt(w, "no parent folder", f->parent_id) : err;
  }
  err = mbx__get_folder(s, w->txn, f->id, &w->scratch, &old);
  if (err == 0) {
    if (old->mailbox_id != f->mailbox_id)
      return apply_corrupt(w, "folder changes mailbox", f->id);
    if ((err = apply_del_name(w, old)) ||
        (err = apply_del_change(s, w->txn, MBX__DB_HCHANGES, f->mailbox_id, old->hcn)))
      return err;
    f->has_item_count = f->has_unread_count = f->has_size_bytes = f->has_last_cn = true;
    f->item_count = old->item_count;
    f->unread_count = old->unread_count;
    f->size_bytes = old->size_bytes;
    f->last_cn = old->last_cn;
    f->has_created_hcn = old->has_created_hcn;
    f->created_hcn = old->created_hcn;
  } else if (err == MBX_ENOTFOUND) {
    apply_zero_derived(f);
    if (!f->has_created_hcn) {
      f->has_created_hcn = true;
      f->created_hcn = f->hcn;
    }
  } else {
    return err;
  }
  if ((err = apply_put_name(w, f)) ||
      (err = apply_put_change(s, w->txn, MBX__DB_HCHANGES, f->mailbox_id, f->hcn, f->id, false)) ||
      (err = apply_put_id(s, w->txn, MBX__DB_FOLDERS, f->id, &f->base)))
    return err;
  mb->last_hcn = apply_max(mb->last_hcn, f->hcn);
  mb->has_last_hcn = true;
  if ((err = apply_put_id(s, w->txn, MBX__DB_MAILBOXES, mb->id, &mb->base)))
    return err;
  mbx__note_change(w, mb->id, 0, mb->last_hcn);
  return apply_next_id(w, f->id);
}

/* Drops a folder's change index (its tombstones): the folder is gone with it. */
static int apply_drop_changes(struct mbx_wtxn *w, uint64_t folder_id)
{
  MDB_cursor *c;
  int rc = mdb_cursor_open(w->txn, w->s->dbi[MBX__DB_CHANGES], &c);
  if (rc)
    return mbx__store_mdb_err(w->s, rc, "cursor");
  uint8_t kb[8];
  mbx_put_be64(kb, folder_id);
  for (;;) {
    /* Re-seek after each delete: simpler than trusting the cursor past a delete. */
    MDB_val k = mbx__val(kb, 8), v;
    if ((rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE)))
      break;
    if (k.mv_size != 16 || memcmp(k.mv_data, kb, 8) != 0)
      break;
    if ((rc = mdb_cursor_del(c, 0)))
      break;
  }
  mdb_cursor_close(c);
  return rc == 0 || rc == MDB_NOTFOUND ? 0 : mbx__store_mdb_err(w->s, rc, "drop changes");
}

static int apply_has_children(struct mbx_wtxn *w, uint64_t mailbox_id, uint64_t folder_id,
                              bool *yes_r)
{
  MDB_cursor *c;
  int rc = mdb_cursor_open(w->txn, w->s->dbi[MBX__DB_FOLDER_NAMES], &c);
  if (rc)
    return mbx__store_mdb_err(w->s, rc, "cursor");
  uint8_t kb[16];
  mbx_put_be64(kb, mailbox_id);
  mbx_put_be64(kb + 8, folder_id);
  MDB_val k = mbx__val(kb, 16), v;
  rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
  *yes_r = rc == 0 && k.mv_size >= 16 && memcmp(k.mv_data, kb, 16) == 0;
  mdb_cursor_close(c);
  return rc == 0 || rc == MDB_NOTFOUND ? 0 : mbx__store_mdb_err(w->s, rc, "cursor");
}

static int apply_delete_folder(struct mbx_wtxn *w, const Mbx__OpDeleteFolder *op)
{
  struct mbx_store *s = w->s;
  Mbx__Folder *f;
  Mbx__Mailbox *mb;
  bool children;
  int err = mbx__get_folder_of(s, w->txn, op->mailbox_id, op->folder_id, &w->scratch, &f);
  if (err)
    return err == MBX_ENOTFOUND ? apply_corrupt(w, "delete of a missing folder", op->folder_id)
                                : err;
  if ((err = mbx__get_mailbox(s, w->txn, op->mailbox_id, &w->scratch, &mb)) ||
      (err = apply_has_children(w, op->mailbox_id, op->folder_id, &children)))
    return err;
  if (f->item_count || children)
    return apply_corrupt(w, "delete of a non-empty folder", op->folder_id);
  uint8_t k[8];
  mbx_put_be64(k, f->id);
  if ((err = apply_del_name(w, f)) ||
      (err = apply_del_change(s, w->txn, MBX__DB_HCHANGES, mb->id, f->hcn)) ||
      (err = apply_put_change(s, w->txn, MBX__DB_HCHANGES, mb->id, op->hcn, f->id, true)) ||
      (err = apply_drop_changes(w, f->id)) || (err = apply_del(s, w->txn, MBX__DB_FOLDERS, k, 8)))
    return err;
  mb->last_hcn = apply_max(mb->last_hcn, op->hcn);
  mb->has_last_hcn = true;
  mbx__note_change(w, mb->id, 0, mb->last_hcn);
  return apply_put_id(s, w->txn, MBX__DB_MAILBOXES, mb->id, &mb->base);
}

/* ==== items ================================================================ */

static void apply_count(Mbx__Folder *f, Mbx__Mailbox *mb, const Mbx__Item *it, int sign)
{
  bool unread = !(it->flags & MBX__ITEM_FLAG__FLAG_SEEN);
  if (sign > 0) {
    f->item_count++;
    f->unread_count += unread;
    f->size_bytes += it->size;
    mb->item_count++;
    mb->used_bytes += it->size;
  } else {
    f->item_count = apply_sub(f->item_count, 1);
    f->unread_count = apply_sub(f->unread_count, unread);
    f->size_bytes = apply_sub(f->size_bytes, it->size);
    mb->item_count = apply_sub(mb->item_count, 1);
    mb->used_bytes = apply_sub(mb->used_bytes, it->size);
  }
  f->has_item_count = f->has_unread_count = f->has_size_bytes = true;
  mb->has_item_count = mb->has_used_bytes = true;
}

static int apply_index(struct mbx_wtxn *w, const Mbx__Item *it, bool add)
{
  uint8_t k[24];
  mbx__index_key(k, it->folder_id, it->received_us, it->id);
  if (!add)
    return apply_del(w->s, w->txn, MBX__DB_FOLDER_INDEX, k, 24);
  MDB_val kv = mbx__val(k, 24), vv = mbx__val("", 0);
  return mbx__store_mdb_err(w->s, mdb_put(w->txn, w->s->dbi[MBX__DB_FOLDER_INDEX], &kv, &vv, 0),
                            "put index");
}

static int apply_body(struct mbx_wtxn *w, const Mbx__OpPutItem *op)
{
  struct mbx_store *s = w->s;
  uint8_t k[8];
  mbx_put_be64(k, op->item->id);
  MDB_val kv = mbx__val(k, 8), vv;
  if (op->has_body) {
    vv = mbx__val(op->body.data, op->body.len);
    return mbx__store_mdb_err(s, mdb_put(w->txn, s->dbi[MBX__DB_BODIES], &kv, &vv, 0), "put body");
  }
  if (!op->has_body_from_item)
    return 0;
  uint8_t fk[8];
  mbx_put_be64(fk, op->body_from_item);
  MDB_val fkv = mbx__val(fk, 8), src;
  int rc = mdb_get(w->txn, s->dbi[MBX__DB_BODIES], &fkv, &src);
  if (rc == MDB_NOTFOUND)
    return apply_corrupt(w, "copy from a missing body", op->body_from_item);
  if (rc)
    return mbx__store_mdb_err(s, rc, "get body");
  /* The source points into the map; copy before the put can touch its page. */
  void *copy = mbx_arena_memdup(&w->scratch, src.mv_data, src.mv_size);
  if (!copy)
    return MBX_ENOMEM;
  vv = mbx__val(copy, src.mv_size);
  return mbx__store_mdb_err(s, mdb_put(w->txn, s->dbi[MBX__DB_BODIES], &kv, &vv, 0), "put body");
}

static int apply_put_item(struct mbx_wtxn *w, const Mbx__OpPutItem *op)
{
  struct mbx_store *s = w->s;
  Mbx__Item *it = op->item, *old;
  Mbx__Mailbox *mb;
  Mbx__Folder *nf, *of = NULL;
  int err = mbx__get_mailbox(s, w->txn, it->mailbox_id, &w->scratch, &mb);
  if (err)
    return err == MBX_ENOTFOUND ? apply_corrupt(w, "item of no mailbox", it->id) : err;
  err = mbx__get_folder_of(s, w->txn, it->mailbox_id, it->folder_id, &w->scratch, &nf);
  if (err)
    return err == MBX_ENOTFOUND ? apply_corrupt(w, "item into a missing folder", it->id) : err;
  err = mbx__get_item(s, w->txn, it->id, &w->scratch, &old);
  if (err == 0) {
    if (old->mailbox_id != it->mailbox_id)
      return apply_corrupt(w, "item changes mailbox", it->id);
    if (old->folder_id == it->folder_id)
      of = nf;
    else if ((err =
                  mbx__get_folder_of(s, w->txn, it->mailbox_id, old->folder_id, &w->scratch, &of)))
      return err == MBX_ENOTFOUND ? apply_corrupt(w, "item in a missing folder", it->id) : err;
    /* One change entry per live item: its previous one goes. */
    if ((err = apply_index(w, old, false)) ||
        (err = apply_del_change(s, w->txn, MBX__DB_CHANGES, old->folder_id, old->cn)))
      return err;
    apply_count(of, mb, old, -1);
    if (of != nf) {
      if (op->has_tombstone_cn) {
        if ((err = apply_put_change(s, w->txn, MBX__DB_CHANGES, of->id, op->tombstone_cn, it->id,
                                    true)))
          return err;
        of->last_cn = apply_max(of->last_cn, op->tombstone_cn);
        of->has_last_cn = true;
        mbx__note_change(w, it->mailbox_id, of->id, of->last_cn);
      }
      if ((err = apply_put_id(s, w->txn, MBX__DB_FOLDERS, of->id, &of->base)))
        return err;
    }
  } else if (err != MBX_ENOTFOUND) {
    return err;
  }
  apply_count(nf, mb, it, +1);
  nf->last_cn = apply_max(nf->last_cn, it->cn);
  nf->has_last_cn = true;
  mbx__note_change(w, it->mailbox_id, nf->id, nf->last_cn);
  if ((err = apply_index(w, it, true)) ||
      (err = apply_put_change(s, w->txn, MBX__DB_CHANGES, nf->id, it->cn, it->id, false)) ||
      (err = apply_body(w, op)) ||
      (err = apply_put_id(s, w->txn, MBX__DB_ITEMS, it->id, &it->base)) ||
      (err = apply_put_id(s, w->txn, MBX__DB_FOLDERS, nf->id, &nf->base)) ||
      (err = apply_put_id(s, w->txn, MBX__DB_MAILBOXES, mb->id, &mb->base)))
    return err;
  return apply_next_id(w, it->id);
}

static int apply_delete_item(struct mbx_wtxn *w, const Mbx__OpDeleteItem *op)
{
  struct mbx_store *s = w->s;
  Mbx__Item *it;
  Mbx__Mailbox *mb;
  Mbx__Folder *f;
  int err = mbx__get_item_of(s, w->txn, op->mailbox_id, op->item_id, &w->scratch, &it);
  if (err)
    return err == MBX_ENOTFOUND ? apply_corrupt(w, "delete of a missing item", op->item_id) : err;
  if (it->folder_id != op->folder_id)
    return apply_corrupt(w, "delete from the wrong folder", op->item_id);
  if ((err = mbx__get_mailbox(s, w->txn, op->mailbox_id, &w->scratch, &mb)) ||
      (err = mbx__get_folder(s, w->txn, op->folder_id, &w->scratch, &f)))
    return err == MBX_ENOTFOUND ? MBX_ECORRUPT : err;
  apply_count(f, mb, it, -1);
  f->last_cn = apply_max(f->last_cn, op->tombstone_cn);
  f->has_last_cn = true;
  mbx__note_change(w, op->mailbox_id, f->id, f->last_cn);
  uint8_t k[8];
  mbx_put_be64(k, it->id);
  if ((err = apply_index(w, it, false)) ||
      (err = apply_del_change(s, w->txn, MBX__DB_CHANGES, f->id, it->cn)) ||
      (err = apply_put_change(s, w->txn, MBX__DB_CHANGES, f->id, op->tombstone_cn, it->id, true)) ||
      (err = apply_del(s, w->txn, MBX__DB_ITEMS, k, 8)) ||
      (err = apply_del(s, w->txn, MBX__DB_BODIES, k, 8)) ||
      (err = apply_put_id(s, w->txn, MBX__DB_FOLDERS, f->id, &f->base)) ||
      (err = apply_put_id(s, w->txn, MBX__DB_MAILBOXES, mb->id, &mb->base)))
    return err;
  return 0;
}

/* The layout is replicated like any change but kept in meta: not mailbox content,
 * so the digest does not cover it. */
static int apply_set_copies(struct mbx_wtxn *w, const Mbx__OpSetCopies *op)
{
  if (!op->layout)
    return apply_corrupt(w, "set_copies without layout", 0);
  if (op->has_db_uid && op->db_uid && op->db_uid != mbx_store_db_uid(w->s)) {
    /* A passive created empty adopts the active's identity. The in-memory value is
     * only read by sync (clients of an active copy); set it once this txn commits
     * would be purer, but a failed commit aborts the copy anyway. */
    int err = mbx__put_u64(w->s, w->txn, MBX__DB_META, "db_uid", 6, op->db_uid);
    if (err)
      return err;
    __atomic_store_n(&w->s->db_uid, op->db_uid, __ATOMIC_RELEASE);
  }
  return mbx__put_msg(w->s, w->txn, MBX__DB_META, (const uint8_t *)"copies", 6, &op->layout->base,
                      NULL);
}

/* ==== idempotency keys ====================================================== */

#define APPLY_IDEM_PRUNE_MAX 64 /* expired keys dropped per recorded key */

static void apply_idem_time_key(uint8_t *k, int64_t time_us)
{
  mbx_put_be64(k, (uint64_t)time_us ^ (1ull << 63)); /* signed times sort as unsigned */
}

/* Drops keys recorded before `before_us`, oldest first, at most APPLY_IDEM_PRUNE_MAX:
 * keys only arrive with writes that carry one, so the table stays bounded by what
 * was recorded within idempotency_keep_s plus what the last pruning steps left. */
static int apply_idem_prune(struct mbx_wtxn *w, int64_t before_us)
{
  struct mbx_store *s = w->s;
  MDB_cursor *c;
  int rc = mdb_cursor_open(w->txn, s->dbi[MBX__DB_IDEM_TIME], &c);
  if (rc)
    return mbx__store_mdb_err(s, rc, "cursor");
  uint8_t limit[8];
  apply_idem_time_key(limit, before_us);
  int err = 0;
  for (int n = 0; n < APPLY_IDEM_PRUNE_MAX && !err; n++) {
    MDB_val k, v;
    if ((rc = mdb_cursor_get(c, &k, &v, MDB_FIRST)))
      break;
    if (k.mv_size <= 8 || memcmp(k.mv_data, limit, 8) >= 0)
      break;
    /* The idem key is the time key without its first 8 bytes. */
    uint8_t ik[9 + MBX_STORE_IDEM_KEY_MAX];
    size_t iklen = k.mv_size - 8;
    if (iklen > sizeof(ik)) {
      err = apply_corrupt(w, "idem time key too long", 0);
      break;
    }
    memcpy(ik, (uint8_t *)k.mv_data + 8, iklen);
    if ((rc = mdb_cursor_del(c, 0))) {
      err = mbx__store_mdb_err(s, rc, "idem prune");
      break;
    }
    err = apply_del(s, w->txn, MBX__DB_IDEM, ik, iklen);
  }
  mdb_cursor_close(c);
  if (!err && rc && rc != MDB_NOTFOUND)
    err = mbx__store_mdb_err(s, rc, "idem prune");
  return err;
}

static int apply_idem_key(struct mbx_wtxn *w, const Mbx__OpIdemKey *op)
{
  struct mbx_store *s = w->s;
  if (!op->record || op->key.len == 0 || op->key.len > MBX_STORE_IDEM_KEY_MAX)
    return apply_corrupt(w, "bad idempotency key record", op->scope_id);
  uint8_t k[9 + MBX_STORE_IDEM_KEY_MAX], tk[8 + 9 + MBX_STORE_IDEM_KEY_MAX];
  size_t klen = mbx__idem_key(k, op->scope_id, op->scope_kind, op->key.data, op->key.len);
  /* A key recorded again (only after it expired and a lookup missed it) replaces the
   * old record: its time index entry goes first. */
  MDB_val kv = mbx__val(k, klen), old;
  int rc = mdb_get(w->txn, s->dbi[MBX__DB_IDEM], &kv, &old);
  int err;
  if (rc == 0) {
    Mbx__IdemRecord *o =
        mbx__idem_record__unpack(&w->scratch.pb, old.mv_size, (const uint8_t *)old.mv_data);
    if (!o)
      return apply_corrupt(w, "idempotency record does not unpack", op->scope_id);
    apply_idem_time_key(tk, o->time_us);
    memcpy(tk + 8, k, klen);
    if ((err = apply_del(s, w->txn, MBX__DB_IDEM_TIME, tk, 8 + klen)))
      return err;
  } else if (rc != MDB_NOTFOUND) {
    return mbx__store_mdb_err(s, rc, "get idem");
  }
  apply_idem_time_key(tk, op->record->time_us);
  memcpy(tk + 8, k, klen);
  MDB_val tkv = mbx__val(tk, 8 + klen), ev = mbx__val("", 0);
  if ((err = mbx__put_msg(s, w->txn, MBX__DB_IDEM, k, klen, &op->record->base, NULL)) ||
      (err = mbx__store_mdb_err(s, mdb_put(w->txn, s->dbi[MBX__DB_IDEM_TIME], &tkv, &ev, 0),
                                "put idem time")))
    return err;
  return op->has_prune_before_us ? apply_idem_prune(w, op->prune_before_us) : 0;
}

/* A new epoch: the history gains it, the store's epoch becomes it and the counters
 * move past the margin (store.h, "epochs"). The op must be the first of the epoch's
 * first record: at last_lsn + 1 (meta, not yet moved by this record's append). */
static int apply_begin_epoch(struct mbx_wtxn *w, const Mbx__OpBeginEpoch *op)
{
  struct mbx_store *s = w->s;
  uint64_t cur = 0, last = 0, next_id = 0;
  int err;
  if ((err = mbx__get_u64(s, w->txn, MBX__DB_META, "epoch", 5, &cur)) ||
      (err = mbx__get_u64(s, w->txn, MBX__DB_META, "last_lsn", 8, &last)) ||
      (err = mbx__get_u64(s, w->txn, MBX__DB_META, "next_id", 7, &next_id)))
    return err == MBX_ENOTFOUND ? MBX_ECORRUPT : err;
  if (op->epoch <= cur || op->first_lsn != last + 1 || (w->rec_epoch && w->rec_epoch != op->epoch))
    return apply_corrupt(w, "epoch begun out of order", op->epoch);
  if ((err = mbx__epoch_history_add(w, op->epoch, op->first_lsn)) ||
      (err = mbx__put_u64(s, w->txn, MBX__DB_META, "epoch", 5, op->epoch)) ||
      (err = mbx__put_u64(s, w->txn, MBX__DB_META, "next_id", 7, apply_max(next_id, op->next_id))) ||
      (err = mbx__put_u64(s, w->txn, MBX__DB_META, "cn_floor", 8, op->cn_floor)))
    return err;
  if (!w->rec_epoch)
    w->begun_epoch = op->epoch;       /* the active's record is written in the new epoch */
  return 0;
}

int mbx__apply_op(struct mbx_wtxn *w, const Mbx__Op *op)
{
  switch (op->op_case) {
  case MBX__OP__OP_CREATE_MAILBOX:
    return apply_create_mailbox(w, op->create_mailbox);
  case MBX__OP__OP_SET_MAILBOX:
    return MBX_EUNSUPPORTED; /* no prepare emits it yet */
  case MBX__OP__OP_PUT_FOLDER:
    return apply_put_folder(w, op->put_folder);
  case MBX__OP__OP_DELETE_FOLDER:
    return apply_delete_folder(w, op->delete_folder);
  case MBX__OP__OP_PUT_ITEM:
    return apply_put_item(w, op->put_item);
  case MBX__OP__OP_DELETE_ITEM:
    return apply_delete_item(w, op->delete_item);
  case MBX__OP__OP_SET_COPIES:
    return apply_set_copies(w, op->set_copies);
  case MBX__OP__OP_IDEM_KEY:
    return apply_idem_key(w, op->idem_key);
  case MBX__OP__OP_BEGIN_EPOCH:
    return apply_begin_epoch(w, op->begin_epoch);
  default:
    return apply_corrupt(w, "unknown op", (uint64_t)op->op_case);
  }
}

/* ==== replay ================================================================ */

int mbx__apply_record_txn(struct mbx_wtxn *w, const struct mbx_logrec *rec, const uint8_t *data,
                          size_t len)
{
  struct mbx_arena a;
  mbx_arena_init(&a, 0);
  Mbx__LogOps *ops = mbx_logrec_unpack_ops(rec, &a.pb);
  int err = ops ? 0 : MBX_ECORRUPT;
  w->rec_epoch = rec->epoch;
  for (size_t i = 0; !err && i < ops->n_ops; i++) {
    err = mbx__apply_op(w, ops->ops[i]);
    mbx_arena_reset(&w->scratch);
  }
  w->rec_epoch = 0;
  /* A newer epoch that its record did not begin (written before epochs began with a
   * record of their own) still enters the history, so the history describes the log. */
  uint64_t cur = 0;
  if (!err && (err = mbx__get_u64(w->s, w->txn, MBX__DB_META, "epoch", 5, &cur)) == 0 &&
      rec->epoch > cur)
    err = mbx__epoch_history_add(w, rec->epoch, rec->lsn);
  if (!err && (err = mbx__log_append(w, rec->lsn, data, len)) == 0)
    err = mbx__put_u64(w->s, w->txn, MBX__DB_META, "epoch", 5, rec->epoch);
  mbx_arena_reset(&a);
  return err;
}

int mbx_store_apply_record(struct mbx_store *s, const uint8_t *data, size_t len)
{
  struct mbx_logrec rec;
  int err = mbx_logrec_decode(data, len, &rec);
  if (err) {
    mbx_error("store %s: record refused after lsn %llu: does not verify", s->name,
              (unsigned long long)mbx_store_last_lsn(s));
    return err;
  }
  uint64_t last = mbx_store_last_lsn(s);
  if (rec.lsn != last + 1 || atomic_load(&s->rq_records) != 0) {
    mbx_error("store %s: record refused: lsn %llu after %llu (or received records pending)",
              s->name, (unsigned long long)rec.lsn, (unsigned long long)last);
    return MBX_ECORRUPT;
  }
  struct mbx_wtxn *w = NULL;
  if ((err = mbx_store_wtxn_begin(s, &w)) == 0)
    err = mbx__apply_record_txn(w, &rec, data, len);
  if (err) {
    mbx_error("store %s: record lsn %llu not applied: %s", s->name, (unsigned long long)rec.lsn,
              mbx_strerror(err));
    mbx_store_wtxn_abort(&w);
  } else if ((err = mbx_store_wtxn_commit(&w, NULL)) == 0) {
    atomic_store(&s->epoch, rec.epoch);
    atomic_store(&s->last_lsn, rec.lsn);
    atomic_store(&s->received_lsn, rec.lsn);
    atomic_store(&s->received_epoch, rec.epoch);
    atomic_store(&s->received_time_us, rec.time_us);
    atomic_store(&s->replayed_time_us, rec.time_us);
  }
  return err;
}

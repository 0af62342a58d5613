/* store_sync.c — incremental sync of a folder or of a mailbox's folder hierarchy.
 * Walks the change index from the token's change number, so the cost follows the
 * number of changes, not the folder's size. Tokens are opaque to clients: a packed
 * SyncState plus a CRC-32C, so garbage or another folder's token is refused, and they
 * name the epoch lineage they were issued under, so a token from a discarded history
 * is refused too. */
#include <string.h>

#include "crc32c.h"
#include "log.h"
#include "mbx_error.h"
#include "store_internal.h"

#define SYNC_VERSION         1
#define SYNC_DEFAULT_CHANGES 1000
#define SYNC_MAX_CHANGES     10000
#define SYNC_TOKEN_MAX_BYTES 128

/* ---- lineage -----------------------------------------------------------------
 * A token names the history it was issued under: the issuing copy's last lsn and
 * the epoch (with its first lsn) that copy's epoch history placed it in. Records of
 * one epoch are written by one active only, so a copy whose history places that
 * lsn in the same epoch holds the very records the token's changes came from; one
 * that does not (or has not reached that lsn) lost them with a discarded tail, and
 * walking its change index from the token would silently skip what the client must
 * drop. Such a token is refused: the client syncs the folder again from scratch. */
struct sync_lineage {
  uint64_t lsn, epoch, first_lsn;
};

/* The epoch r's history places lsn in, and its first lsn. MBX_ENOTFOUND if none. */
static int sync_lineage_at(struct mbx_rtxn *r, uint64_t lsn, struct sync_lineage *l)
{
  struct mbx_store *s = r->s;
  MDB_cursor *c;
  int rc = mdb_cursor_open(r->txn, s->dbi[MBX__DB_EPOCHS], &c);
  if (rc)
    return mbx__store_mdb_err(s, rc, "cursor");
  MDB_val k, d;
  int err = MBX_ENOTFOUND;
  for (rc = mdb_cursor_get(c, &k, &d, MDB_LAST); rc == 0;
       rc = mdb_cursor_get(c, &k, &d, MDB_PREV)) {
    if (k.mv_size != 8 || d.mv_size != 8) {
      err = MBX_ECORRUPT;
      break;
    }
    if (mbx_get_be64(d.mv_data) <= lsn) {
      l->lsn = lsn;
      l->epoch = mbx_get_be64(k.mv_data);
      l->first_lsn = mbx_get_be64(d.mv_data);
      err = 0;
      break;
    }
  }
  mdb_cursor_close(c);
  if (rc && rc != MDB_NOTFOUND)
    err = mbx__store_mdb_err(s, rc, "epochs");
  return err;
}

/* The lineage of r's snapshot: its last lsn (0 for a store without records). */
static int sync_lineage_here(struct mbx_rtxn *r, struct sync_lineage *l)
{
  memset(l, 0, sizeof(*l));
  int err = mbx__get_u64(r->s, r->txn, MBX__DB_META, "last_lsn", 8, &l->lsn);
  if (err || l->lsn == 0)
    return err;
  if ((err = sync_lineage_at(r, l->lsn, l)) == MBX_ENOTFOUND) {
    mbx_error("store %s: the epoch history does not cover lsn %llu", r->s->name,
              (unsigned long long)l->lsn);
    return MBX_ECORRUPT; /* a store's history starts at lsn 1 */
  }
  return err;
}

/* 0 if a token issued under `tok` may be continued on this copy (whose snapshot is
 * at `here`); else MBX_ESTATE with *why_r saying why (in a). */
static int sync_check_lineage(struct mbx_rtxn *r, const struct sync_lineage *tok,
                              const struct sync_lineage *here, struct mbx_arena *a,
                              const char **why_r)
{
  struct sync_lineage at = {0};
  int err = tok->lsn <= here->lsn ? sync_lineage_at(r, tok->lsn, &at) : MBX_ENOTFOUND;
  if (err && err != MBX_ENOTFOUND)
    return err;
  if (!err && at.epoch == tok->epoch && at.first_lsn == tok->first_lsn)
    return 0;
  if (tok->lsn > here->lsn)
    *why_r = mbx_arena_printf(a,
                              "the sync state was issued at lsn %llu in epoch %llu, beyond this "
                              "copy's last lsn %llu: it reported changes from a history this "
                              "copy does not have (discarded by a failover or a restore)",
                              (unsigned long long)tok->lsn, (unsigned long long)tok->epoch,
                              (unsigned long long)here->lsn);
  else if (err)
    *why_r = mbx_arena_printf(a,
                              "the sync state was issued at lsn %llu in epoch %llu, before this "
                              "copy's epoch history begins",
                              (unsigned long long)tok->lsn, (unsigned long long)tok->epoch);
  else
    *why_r = mbx_arena_printf(
        a,
        "the sync state was issued at lsn %llu in epoch %llu (from lsn %llu), but this copy's "
        "history places lsn %llu in epoch %llu (from lsn %llu): the history it came from was "
        "discarded",
        (unsigned long long)tok->lsn, (unsigned long long)tok->epoch,
        (unsigned long long)tok->first_lsn, (unsigned long long)tok->lsn,
        (unsigned long long)at.epoch, (unsigned long long)at.first_lsn);
  return MBX_ESTATE;
}

/* ---- tokens ------------------------------------------------------------------ */

static int sync_make_token(struct mbx_store *s, uint64_t scope, uint64_t cn, bool hierarchy,
                           const struct sync_lineage *here, struct mbx_arena *a,
                           struct mbx_sync_result *res)
{
  Mbx__SyncState st = MBX__SYNC_STATE__INIT;
  st.version = SYNC_VERSION;
  st.scope_id = scope;
  st.cn = cn;
  st.db_uid = s->db_uid;
  st.has_hierarchy = true;
  st.hierarchy = hierarchy;
  if (here->lsn) {
    st.has_lsn = st.has_epoch = st.has_epoch_first_lsn = true;
    st.lsn = here->lsn;
    st.epoch = here->epoch;
    st.epoch_first_lsn = here->first_lsn;
  }
  size_t n = mbx__sync_state__get_packed_size(&st);
  if (n + 4 > SYNC_TOKEN_MAX_BYTES)
    return MBX_ELIMIT; /* cannot happen: seven varints */
  uint8_t *t = mbx_arena_alloc(a, n + 4);
  if (!t)
    return MBX_ENOMEM;
  mbx__sync_state__pack(&st, t);
  mbx_put_be32(t + n, mbx_crc32c(0, t, n));
  res->state = t;
  res->state_len = n + 4;
  return 0;
}

/* Decodes a token; MBX_ESTATE unless it is intact, for this scope/kind/db and (if it
 * names one) of a lineage this copy's history contains. */
static int sync_parse_token(struct mbx_rtxn *r, const uint8_t *t, size_t len, uint64_t scope,
                            bool hierarchy, const struct sync_lineage *here, struct mbx_arena *a,
                            struct mbx_sync_result *res, uint64_t *cn_r)
{
  struct mbx_store *s = r->s;
  *cn_r = 0;
  if (!t || len == 0)
    return 0;
  if (len < 5 || len > SYNC_TOKEN_MAX_BYTES)
    return MBX_ESTATE;
  size_t n = len - 4;
  if (mbx_crc32c(0, t, n) != mbx_get_be32(t + n))
    return MBX_ESTATE;
  Mbx__SyncState *st = mbx__sync_state__unpack(&a->pb, n, t);
  if (!st)
    return MBX_ESTATE;
  if (st->version != SYNC_VERSION || st->scope_id != scope || st->db_uid != s->db_uid ||
      st->hierarchy != hierarchy)
    return MBX_ESTATE;
  int k = st->has_lsn + st->has_epoch + st->has_epoch_first_lsn;
  if (k != 0 && k != 3)
    return MBX_ESTATE; /* we write all three or none */
  if (k == 3) {
    struct sync_lineage tok = {st->lsn, st->epoch, st->epoch_first_lsn};
    int err = sync_check_lineage(r, &tok, here, a, &res->why);
    if (err)
      return err;
  }
  *cn_r = st->cn;
  return 0;
}

/* Walks the change entries of `scope` after cn0 in db, at most max; calls back the
 * live ones and collects the deleted ids. */
struct sync_walk {
  struct mbx_rtxn *r;
  struct mbx_arena *a;
  struct mbx_sync_result *res;
  uint64_t cn0;
  bool full; /* no token: tombstones are irrelevant */
  uint32_t max;
  uint64_t last_cn;
};

typedef int (*sync_live_fn)(struct sync_walk *sw, uint64_t id);

static int sync_walk(struct sync_walk *sw, enum mbx__db db, uint64_t scope, sync_live_fn live)
{
  struct mbx_store *s = sw->r->s;
  MDB_cursor *c;
  int rc = mdb_cursor_open(sw->r->txn, s->dbi[db], &c);
  if (rc)
    return mbx__store_mdb_err(s, rc, "cursor");
  uint8_t kb[16];
  mbx_put_be64(kb, scope);
  mbx_put_be64(kb + 8, sw->cn0 + 1);
  MDB_val k = mbx__val(kb, 16), d;
  uint32_t seen = 0;
  int err = 0;
  for (rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE); rc == 0;
       rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
    if (k.mv_size != 16 || memcmp(k.mv_data, kb, 8) != 0)
      break;
    Mbx__Change ch = MBX__CHANGE__INIT;
    Mbx__Change *chp = mbx__change__unpack(&sw->a->pb, d.mv_size, d.mv_data);
    if (!chp) {
      err = MBX_ECORRUPT;
      break;
    }
    ch = *chp;
    if (ch.deleted && sw->full)
      continue;
    if (seen == sw->max) {
      sw->res->more = true; /* the token resumes right after last_cn */
      break;
    }
    seen++;
    sw->last_cn = mbx_get_be64((uint8_t *)k.mv_data + 8);
    if (ch.deleted)
      sw->res->deleted[sw->res->n_deleted++] = ch.id;
    else if ((err = live(sw, ch.id)))
      break;
  }
  mdb_cursor_close(c);
  if (!err && rc && rc != MDB_NOTFOUND)
    err = mbx__store_mdb_err(s, rc, "cursor");
  return err;
}

static int sync_item(struct sync_walk *sw, uint64_t id)
{
  Mbx__Item *it;
  int err = mbx__get_item(sw->r->s, sw->r->txn, id, sw->a, &it);
  if (err)
    return err == MBX_ENOTFOUND ? MBX_ECORRUPT : err;
  struct mbx_sync_result *res = sw->res;
  if (sw->full || it->added_cn > sw->cn0)
    res->added[res->n_added++] = it;
  else
    res->changed[res->n_changed++] = it;
  return 0;
}

static int sync_folder_entry(struct sync_walk *sw, uint64_t id)
{
  Mbx__Folder *f;
  int err = mbx__get_folder(sw->r->s, sw->r->txn, id, sw->a, &f);
  if (err)
    return err == MBX_ENOTFOUND ? MBX_ECORRUPT : err;
  struct mbx_sync_result *res = sw->res;
  if (sw->full || f->created_hcn > sw->cn0)
    res->fadded[res->n_added++] = f;
  else
    res->fchanged[res->n_changed++] = f;
  return 0;
}

static int sync_prepare(struct sync_walk *sw, struct mbx_rtxn *r, struct mbx_arena *a,
                        struct mbx_sync_result *res, uint32_t max_changes, bool hierarchy)
{
  memset(res, 0, sizeof(*res));
  sw->r = r;
  sw->a = a;
  sw->res = res;
  sw->max = max_changes ? max_changes : SYNC_DEFAULT_CHANGES;
  if (sw->max > SYNC_MAX_CHANGES)
    sw->max = SYNC_MAX_CHANGES;
  size_t n = sw->max;
  res->deleted = mbx_arena_alloc(a, n * sizeof(*res->deleted));
  if (hierarchy) {
    res->fadded = mbx_arena_alloc(a, n * sizeof(*res->fadded));
    res->fchanged = mbx_arena_alloc(a, n * sizeof(*res->fchanged));
    return res->deleted && res->fadded && res->fchanged ? 0 : MBX_ENOMEM;
  }
  res->added = mbx_arena_alloc(a, n * sizeof(*res->added));
  res->changed = mbx_arena_alloc(a, n * sizeof(*res->changed));
  return res->deleted && res->added && res->changed ? 0 : MBX_ENOMEM;
}

/* A token from a future this copy never had (a state without a lineage, issued by a
 * copy that was ahead). */
static int sync_ahead(struct mbx_arena *a, struct mbx_sync_result *res, uint64_t cn, uint64_t last)
{
  res->why = mbx_arena_printf(a,
                              "the sync state is at change number %llu, beyond this copy's %llu: "
                              "it reported changes this copy does not have",
                              (unsigned long long)cn, (unsigned long long)last);
  return MBX_ESTATE;
}

int mbx_store_sync_folder(struct mbx_rtxn *r, uint64_t mailbox_id, uint64_t folder_id,
                          const uint8_t *state, size_t state_len, uint32_t max_changes,
                          struct mbx_arena *a, struct mbx_sync_result *res)
{
  struct sync_walk sw = {0};
  struct sync_lineage here;
  Mbx__Folder *f;
  int err = sync_prepare(&sw, r, a, res, max_changes, false);
  if (err || (err = mbx__get_folder_of(r->s, r->txn, mailbox_id, folder_id, a, &f)) ||
      (err = sync_lineage_here(r, &here)) ||
      (err = sync_parse_token(r, state, state_len, folder_id, false, &here, a, res, &sw.cn0)))
    return err;
  if (sw.cn0 > f->last_cn)
    return sync_ahead(a, res, sw.cn0, f->last_cn);
  sw.full = state_len == 0;
  if ((err = sync_walk(&sw, MBX__DB_CHANGES, folder_id, sync_item)))
    return err;
  return sync_make_token(r->s, folder_id, res->more ? sw.last_cn : f->last_cn, false, &here, a,
                         res);
}

int mbx_store_sync_hierarchy(struct mbx_rtxn *r, uint64_t mailbox_id, const uint8_t *state,
                             size_t state_len, uint32_t max_changes, struct mbx_arena *a,
                             struct mbx_sync_result *res)
{
  struct sync_walk sw = {0};
  struct sync_lineage here;
  Mbx__Mailbox *mb;
  int err = sync_prepare(&sw, r, a, res, max_changes, true);
  if (err || (err = mbx__get_mailbox(r->s, r->txn, mailbox_id, a, &mb)) ||
      (err = sync_lineage_here(r, &here)) ||
      (err = sync_parse_token(r, state, state_len, mailbox_id, true, &here, a, res, &sw.cn0)))
    return err;
  if (sw.cn0 > mb->last_hcn)
    return sync_ahead(a, res, sw.cn0, mb->last_hcn);
  sw.full = state_len == 0;
  if ((err = sync_walk(&sw, MBX__DB_HCHANGES, mailbox_id, sync_folder_entry)))
    return err;
  return sync_make_token(r->s, mailbox_id, res->more ? sw.last_cn : mb->last_hcn, true, &here, a,
                         res);
}

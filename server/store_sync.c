/* store_sync.c — incremental sync of a folder or of a mailbox's folder hierarchy.
 * Walks the change index from the token's change number, so the cost follows the
 * number of changes, not the folder's size. Tokens are opaque to clients: a packed
 * SyncState plus a CRC-32C, so garbage or another folder's token is refused. */
#include <string.h>

#include "crc32c.h"
#include "mbx_error.h"
#include "store_internal.h"

#define SYNC_VERSION         1
#define SYNC_DEFAULT_CHANGES 1000
#define SYNC_MAX_CHANGES     10000
#define SYNC_TOKEN_MAX_BYTES 128

static int sync_make_token(struct mbx_store *s, uint64_t scope, uint64_t cn, bool hierarchy,
                           struct mbx_arena *a, struct mbx_sync_result *res)
{
  Mbx__SyncState st = MBX__SYNC_STATE__INIT;
  st.version = SYNC_VERSION;
  st.scope_id = scope;
  st.cn = cn;
  st.db_uid = s->db_uid;
  st.has_hierarchy = true;
  st.hierarchy = hierarchy;
  size_t n = mbx__sync_state__get_packed_size(&st);
  uint8_t *t = mbx_arena_alloc(a, n + 4);
  if (!t)
    return MBX_ENOMEM;
  mbx__sync_state__pack(&st, t);
  mbx_put_be32(t + n, mbx_crc32c(0, t, n));
  res->state = t;
  res->state_len = n + 4;
  return 0;
}

/* Decodes a token; MBX_ESTATE unless it is intact and for this scope/kind/db. */
static int sync_parse_token(struct mbx_store *s, const uint8_t *t, size_t len, uint64_t scope,
                            bool hierarchy, struct mbx_arena *a, uint64_t *cn_r)
{
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

int mbx_store_sync_folder(struct mbx_rtxn *r, uint64_t mailbox_id, uint64_t folder_id,
                          const uint8_t *state, size_t state_len, uint32_t max_changes,
                          struct mbx_arena *a, struct mbx_sync_result *res)
{
  struct sync_walk sw = {0};
  Mbx__Folder *f;
  int err = sync_prepare(&sw, r, a, res, max_changes, false);
  if (err || (err = mbx__get_folder_of(r->s, r->txn, mailbox_id, folder_id, a, &f)) ||
      (err = sync_parse_token(r->s, state, state_len, folder_id, false, a, &sw.cn0)))
    return err;
  if (sw.cn0 > f->last_cn)
    return MBX_ESTATE; /* from a future this copy never had */
  sw.full = state_len == 0;
  if ((err = sync_walk(&sw, MBX__DB_CHANGES, folder_id, sync_item)))
    return err;
  return sync_make_token(r->s, folder_id, res->more ? sw.last_cn : f->last_cn, false, a, res);
}

int mbx_store_sync_hierarchy(struct mbx_rtxn *r, uint64_t mailbox_id, const uint8_t *state,
                             size_t state_len, uint32_t max_changes, struct mbx_arena *a,
                             struct mbx_sync_result *res)
{
  struct sync_walk sw = {0};
  Mbx__Mailbox *mb;
  int err = sync_prepare(&sw, r, a, res, max_changes, true);
  if (err || (err = mbx__get_mailbox(r->s, r->txn, mailbox_id, a, &mb)) ||
      (err = sync_parse_token(r->s, state, state_len, mailbox_id, true, a, &sw.cn0)))
    return err;
  if (sw.cn0 > mb->last_hcn)
    return MBX_ESTATE;
  sw.full = state_len == 0;
  if ((err = sync_walk(&sw, MBX__DB_HCHANGES, mailbox_id, sync_folder_entry)))
    return err;
  return sync_make_token(r->s, mailbox_id, res->more ? sw.last_cn : mb->last_hcn, true, a, res);
}

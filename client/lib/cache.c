/* cache.c — the cached mode's local store: one LMDB environment per profile, its
 * sub-databases (cache_int.h), and the invariants every change keeps: the folder
 * index and counters follow the items' views, a view is always its server version
 * plus its queued changes replayed in order (rebase), and ids move from local to
 * server ids everywhere at once (rekey). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "cache_int.h"
#include "clock.h"

#define CACHE_VERSION 1
#define CACHE_PB_ARENA_LIMIT ((size_t)1 << 30)

static const char *const cdb_names[CDB_N] = {
  "meta", "folders", "items", "findex", "bodies", "fstate", "queue", "qindex", "idmap",
  "conflicts",
};

static const struct {
  const char *name;
  Mbx__FolderClass cls;
  Mbx__WellKnown wk;
} cache_wk[] = {
  { "Inbox", MBX__FOLDER_CLASS__FOLDER_MAIL, MBX__WELL_KNOWN__WK_INBOX },
  { "Drafts", MBX__FOLDER_CLASS__FOLDER_MAIL, MBX__WELL_KNOWN__WK_DRAFTS },
  { "Sent Items", MBX__FOLDER_CLASS__FOLDER_MAIL, MBX__WELL_KNOWN__WK_SENT },
  { "Deleted Items", MBX__FOLDER_CLASS__FOLDER_MAIL, MBX__WELL_KNOWN__WK_DELETED },
  { "Junk Email", MBX__FOLDER_CLASS__FOLDER_MAIL, MBX__WELL_KNOWN__WK_JUNK },
  { "Archive", MBX__FOLDER_CLASS__FOLDER_MAIL, MBX__WELL_KNOWN__WK_ARCHIVE },
  { "Outbox", MBX__FOLDER_CLASS__FOLDER_MAIL, MBX__WELL_KNOWN__WK_OUTBOX },
  { "Calendar", MBX__FOLDER_CLASS__FOLDER_CALENDAR, MBX__WELL_KNOWN__WK_CALENDAR },
  { "Contacts", MBX__FOLDER_CLASS__FOLDER_CONTACTS, MBX__WELL_KNOWN__WK_CONTACTS },
  { "Tasks", MBX__FOLDER_CLASS__FOLDER_TASKS, MBX__WELL_KNOWN__WK_TASKS },
  { "Notes", MBX__FOLDER_CLASS__FOLDER_NOTES, MBX__WELL_KNOWN__WK_NOTES },
};
#define CACHE_N_WK (sizeof(cache_wk) / sizeof(cache_wk[0]))

/* ======================================================================== */
/* errors                                                                   */
/* ======================================================================== */

static _Thread_local char cache_error[512];

int mbxc__cache_fail(int code, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cache_error, sizeof(cache_error), fmt, ap);
  va_end(ap);
  return code;
}

const char *mbxc_cache_last_error(void) { return cache_error; }

int mbxc__cache_mdb_err(int rc, const char *what)
{
  int code;
  switch (rc) {
  case 0:
    return 0;
  case MDB_NOTFOUND:
    code = MBX_ENOTFOUND;
    break;
  case MDB_MAP_FULL:
  case MDB_TXN_FULL:
  case ENOSPC:
    code = MBX_ENOSPC;
    break;
  case MDB_CORRUPTED:
  case MDB_PAGE_NOTFOUND:
  case MDB_INVALID:
  case MDB_VERSION_MISMATCH:
    code = MBX_ECORRUPT;
    break;
  case ENOMEM:
    code = MBX_ENOMEM;
    break;
  case MDB_READERS_FULL:
  case EAGAIN:
    code = MBX_EBUSY;
    break;
  default:
    code = MBX_EIO;
    break;
  }
  return mbxc__cache_fail(code, "cache: %s: %s", what, mdb_strerror(rc));
}

/* ======================================================================== */
/* transactions                                                             */
/* ======================================================================== */

int mbxc__ct_begin(mbxc_cache *c, bool write, struct mbxc__ct *t)
{
  memset(t, 0, sizeof(*t));
  t->c = c;
  t->write = write;
  mbx_arena_init(&t->a, CACHE_PB_ARENA_LIMIT);
  int rc = mdb_txn_begin(c->env, NULL, write ? 0 : MDB_RDONLY, &t->txn);
  if (rc) {
    mbx_arena_reset(&t->a);
    return mbxc__cache_mdb_err(rc, "begin");
  }
  return 0;
}

static int ct_flush_deltas(struct mbxc__ct *t);

int mbxc__ct_commit(struct mbxc__ct *t)
{
  int err = t->write ? ct_flush_deltas(t) : 0;
  if (err) {
    mbxc__ct_abort(t);
    return err;
  }
  int rc = mdb_txn_commit(t->txn);
  t->txn = NULL;
  mbx_arena_reset(&t->a);
  return rc ? mbxc__cache_mdb_err(rc, "commit") : 0;
}

void mbxc__ct_abort(struct mbxc__ct *t)
{
  if (t->txn)
    mdb_txn_abort(t->txn);
  t->txn = NULL;
  t->nd = 0;
  mbx_arena_reset(&t->a);
}

void *mbxc__ct_dup(struct mbxc__ct *t, const ProtobufCMessage *m)
{
  size_t n = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = mbx_arena_alloc(&t->a, n ? n : 1);
  if (!buf)
    return NULL;
  protobuf_c_message_pack(m, buf);
  return protobuf_c_message_unpack(m->descriptor, &t->a.pb, n, buf);
}

static MDB_val val(const void *p, size_t n) { return (MDB_val){ .mv_size = n, .mv_data = (void *)p }; }

/* Packs m as the value of key in db (MDB_RESERVE: no extra copy). */
static int put_msg(struct mbxc__ct *t, enum mbxc__cdb db, const void *key, size_t klen,
                   const ProtobufCMessage *m)
{
  MDB_val k = val(key, klen), v = { .mv_size = protobuf_c_message_get_packed_size(m) };
  int rc = mdb_put(t->txn, t->c->dbi[db], &k, &v, MDB_RESERVE);
  if (rc)
    return mbxc__cache_mdb_err(rc, cdb_names[db]);
  protobuf_c_message_pack(m, v.mv_data);
  return 0;
}

static int get_msg(struct mbxc__ct *t, enum mbxc__cdb db, const void *key, size_t klen,
                   const ProtobufCMessageDescriptor *desc, void **m_r)
{
  MDB_val k = val(key, klen), v;
  int rc = mdb_get(t->txn, t->c->dbi[db], &k, &v);
  if (rc == MDB_NOTFOUND)
    return MBX_ENOTFOUND;
  if (rc)
    return mbxc__cache_mdb_err(rc, cdb_names[db]);
  *m_r = protobuf_c_message_unpack(desc, &t->a.pb, v.mv_size, v.mv_data);
  if (!*m_r)
    return mbxc__cache_fail(MBX_ECORRUPT, "cache: undecodable record in %s", cdb_names[db]);
  return 0;
}

static int del_key(struct mbxc__ct *t, enum mbxc__cdb db, const void *key, size_t klen)
{
  MDB_val k = val(key, klen);
  int rc = mdb_del(t->txn, t->c->dbi[db], &k, NULL);
  if (rc && rc != MDB_NOTFOUND)
    return mbxc__cache_mdb_err(rc, cdb_names[db]);
  return 0;
}

int mbxc__ct_scan(struct mbxc__ct *t, enum mbxc__cdb db, size_t max,
                  const ProtobufCMessageDescriptor *desc, mbxc__ct_check_fn ok,
                  const char *record, void ***v_r, size_t *n_r)
{
  void **v = mbx_arena_alloc(&t->a, (max + 1) * sizeof(*v));
  if (!v)
    return MBX_ENOMEM;
  char what[32];
  snprintf(what, sizeof(what), "%s cursor", cdb_names[db]);
  MDB_cursor *cur;
  int rc = mdb_cursor_open(t->txn, t->c->dbi[db], &cur);
  if (rc)
    return mbxc__cache_mdb_err(rc, what);
  size_t n = 0;
  int err = 0;
  MDB_val k, d;
  for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); rc == 0 && n < max;
       rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, &t->a.pb, d.mv_size, d.mv_data);
    if (!m || (ok && !ok(m))) {
      err = mbxc__cache_fail(MBX_ECORRUPT, "cache: undecodable %s", record);
      break;
    }
    v[n++] = m;
  }
  if (!err && rc && rc != MDB_NOTFOUND)
    err = mbxc__cache_mdb_err(rc, what);
  mdb_cursor_close(cur);
  if (!err) {
    *v_r = v;
    *n_r = n;
  }
  return err;
}

/* ======================================================================== */
/* meta                                                                     */
/* ======================================================================== */

int mbxc__ct_meta_get(struct mbxc__ct *t, const char *name, MDB_val *v_r)
{
  MDB_val k = val(name, strlen(name));
  int rc = mdb_get(t->txn, t->c->dbi[CDB_META], &k, v_r);
  if (rc == MDB_NOTFOUND)
    return MBX_ENOTFOUND;
  return rc ? mbxc__cache_mdb_err(rc, "meta") : 0;
}

int mbxc__ct_meta_put(struct mbxc__ct *t, const char *name, const void *v, size_t len)
{
  MDB_val k = val(name, strlen(name)), d = val(v, len);
  int rc = mdb_put(t->txn, t->c->dbi[CDB_META], &k, &d, 0);
  return rc ? mbxc__cache_mdb_err(rc, "meta") : 0;
}

int mbxc__ct_meta_del(struct mbxc__ct *t, const char *name)
{
  return del_key(t, CDB_META, name, strlen(name));
}

uint64_t mbxc__ct_meta_u64(struct mbxc__ct *t, const char *name, uint64_t dflt)
{
  MDB_val v;
  if (mbxc__ct_meta_get(t, name, &v) || v.mv_size != 8)
    return dflt;
  return mbx_get_be64(v.mv_data);
}

int mbxc__ct_meta_put_u64(struct mbxc__ct *t, const char *name, uint64_t v)
{
  uint8_t b[8];
  mbx_put_be64(b, v);
  return mbxc__ct_meta_put(t, name, b, 8);
}

char *mbxc__ct_meta_str(struct mbxc__ct *t, const char *name)
{
  MDB_val v;
  if (mbxc__ct_meta_get(t, name, &v))
    return NULL;
  return mbx_arena_strndup(&t->a, v.mv_data, v.mv_size);
}

/* ======================================================================== */
/* ids                                                                      */
/* ======================================================================== */

int mbxc__ct_new_local_id(struct mbxc__ct *t, uint64_t *id_r)
{
  uint64_t id = mbxc__ct_meta_u64(t, "next_local_id", MBXC_CACHE_LOCAL_ID_MIN + 1);
  int err = mbxc__ct_meta_put_u64(t, "next_local_id", id + 1);
  if (!err)
    *id_r = id;
  return err;
}

uint64_t mbxc__ct_resolve(struct mbxc__ct *t, uint64_t id)
{
  /* a chain is at most one step (a local id maps to a server id), but stay bounded */
  for (int i = 0; i < 4 && mbxc_cache_is_local_id(id); i++) {
    uint8_t k[8];
    mbx_put_be64(k, id);
    MDB_val kv = val(k, 8), v;
    if (mdb_get(t->txn, t->c->dbi[CDB_IDMAP], &kv, &v) || v.mv_size != 8)
      break;
    id = mbx_get_be64(v.mv_data);
  }
  return id;
}

int mbxc__ct_map_put(struct mbxc__ct *t, uint64_t local_id, uint64_t server_id)
{
  uint8_t k[8], d[8];
  mbx_put_be64(k, local_id);
  mbx_put_be64(d, server_id);
  MDB_val kv = val(k, 8), dv = val(d, 8);
  int rc = mdb_put(t->txn, t->c->dbi[CDB_IDMAP], &kv, &dv, 0);
  return rc ? mbxc__cache_mdb_err(rc, "idmap") : 0;
}

/* ======================================================================== */
/* folder counters                                                          */
/* ======================================================================== */

static uint64_t add_sat(uint64_t v, int64_t d)
{
  if (d < 0 && (uint64_t)(-d) > v)
    return 0;
  return v + (uint64_t)d;
}

static int ct_flush_deltas(struct mbxc__ct *t)
{
  size_t n = t->nd;
  t->nd = 0; /* before the reads below, which would flush again */
  for (size_t i = 0; i < n; i++) {
    struct mbxc__ct_delta *d = &t->d[i];
    uint8_t k[8];
    mbx_put_be64(k, d->folder);
    Mbx__CacheFolder *rec;
    int err = get_msg(t, CDB_FOLDERS, k, 8, &mbx__cache_folder__descriptor, (void **)&rec);
    if (err == MBX_ENOTFOUND)
      continue; /* the folder went in this transaction (a rekey, a deletion) */
    if (err)
      return err;
    Mbx__Folder *f = rec->view;
    f->has_item_count = f->has_unread_count = f->has_size_bytes = true;
    f->item_count = add_sat(f->item_count, d->count);
    f->unread_count = add_sat(f->unread_count, d->unread);
    f->size_bytes = add_sat(f->size_bytes, d->size);
    if ((err = put_msg(t, CDB_FOLDERS, k, 8, &rec->base)))
      return err;
  }
  return 0;
}

static int ct_delta(struct mbxc__ct *t, const Mbx__Item *it, int sign)
{
  size_t i;
  for (i = 0; i < t->nd && t->d[i].folder != it->folder_id; i++)
    ;
  if (i == t->nd) {
    if (t->nd == MBXC__CT_DELTAS) {
      int err = ct_flush_deltas(t);
      if (err)
        return err;
      i = 0;
    }
    t->d[i] = (struct mbxc__ct_delta){ .folder = it->folder_id };
    t->nd = i + 1;
  }
  t->d[i].count += sign;
  t->d[i].unread += (it->flags & MBX__ITEM_FLAG__FLAG_SEEN) ? 0 : sign;
  t->d[i].size += sign * (int64_t)it->size;
  return 0;
}

/* ======================================================================== */
/* items                                                                    */
/* ======================================================================== */

static void findex_key(uint8_t k[24], const Mbx__Item *it)
{
  mbx_put_be64(k, it->folder_id);
  mbx_put_be64(k + 8, ~(uint64_t)it->received_us);
  mbx_put_be64(k + 16, it->id);
}

int mbxc__ct_item_get(struct mbxc__ct *t, uint64_t id, Mbx__CacheItem **rec_r)
{
  uint8_t k[8];
  mbx_put_be64(k, id);
  int err = get_msg(t, CDB_ITEMS, k, 8, &mbx__cache_item__descriptor, (void **)rec_r);
  if (!err && !(*rec_r)->view)
    return mbxc__cache_fail(MBX_ECORRUPT, "cache: item %llu has no view", (unsigned long long)id);
  return err;
}

int mbxc__ct_item_queued(struct mbxc__ct *t, uint64_t id, Mbx__CacheItem **rec_r,
                         Mbx__CacheOp ***ops_r, size_t *n_r)
{
  int err = mbxc__ct_item_get(t, id, rec_r);
  return err ? err : mbxc__ct_queue_of(t, id, ops_r, n_r);
}

int mbxc__ct_item_put(struct mbxc__ct *t, const Mbx__CacheItem *old, const Mbx__CacheItem *rec)
{
  uint8_t k[24];
  int err;
  if (old && !old->hidden) {
    findex_key(k, old->view);
    if ((err = del_key(t, CDB_FINDEX, k, 24)) || (err = ct_delta(t, old->view, -1)))
      return err;
  }
  if (!rec->hidden) {
    findex_key(k, rec->view);
    MDB_val kv = val(k, 24), e = val("", 0);
    int rc = mdb_put(t->txn, t->c->dbi[CDB_FINDEX], &kv, &e, 0);
    if (rc)
      return mbxc__cache_mdb_err(rc, "findex");
    if ((err = ct_delta(t, rec->view, +1)))
      return err;
  }
  uint8_t ik[8];
  mbx_put_be64(ik, rec->view->id);
  return put_msg(t, CDB_ITEMS, ik, 8, &rec->base);
}

int mbxc__ct_item_del(struct mbxc__ct *t, const Mbx__CacheItem *old)
{
  int err;
  if (!old->hidden) {
    uint8_t k[24];
    findex_key(k, old->view);
    if ((err = del_key(t, CDB_FINDEX, k, 24)) || (err = ct_delta(t, old->view, -1)))
      return err;
  }
  uint8_t ik[8];
  mbx_put_be64(ik, old->view->id);
  if ((err = del_key(t, CDB_ITEMS, ik, 8)))
    return err;
  return mbxc__ct_body_del(t, old->view->id);
}

int mbxc__ct_folder_items(struct mbxc__ct *t, uint64_t folder_id, uint64_t **ids_r, size_t *n_r)
{
  MDB_cursor *cur;
  int rc = mdb_cursor_open(t->txn, t->c->dbi[CDB_FINDEX], &cur);
  if (rc)
    return mbxc__cache_mdb_err(rc, "findex cursor");
  size_t cap = 64, n = 0;
  uint64_t *ids = mbx_arena_alloc(&t->a, cap * sizeof(*ids));
  uint8_t kb[8];
  mbx_put_be64(kb, folder_id);
  MDB_val k = val(kb, 8), v;
  int err = ids ? 0 : MBX_ENOMEM;
  for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); !err && rc == 0;
       rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    if (k.mv_size != 24 || memcmp(k.mv_data, kb, 8) != 0)
      break;
    if (n == cap) {
      uint64_t *g = mbx_arena_alloc(&t->a, 2 * cap * sizeof(*ids));
      if (!g) {
        err = MBX_ENOMEM;
        break;
      }
      memcpy(g, ids, n * sizeof(*ids));
      ids = g;
      cap *= 2;
    }
    ids[n++] = mbx_get_be64((uint8_t *)k.mv_data + 16);
  }
  if (!err && rc && rc != MDB_NOTFOUND)
    err = mbxc__cache_mdb_err(rc, "findex cursor");
  mdb_cursor_close(cur);
  if (!err) {
    *ids_r = ids;
    *n_r = n;
  }
  return err;
}

bool mbxc__ct_pending(struct mbxc__ct *t, uint64_t id)
{
  MDB_cursor *cur;
  if (mdb_cursor_open(t->txn, t->c->dbi[CDB_QINDEX], &cur))
    return true; /* err on the side of care: treat as having local changes */
  uint8_t kb[8];
  mbx_put_be64(kb, id);
  MDB_val k = val(kb, 8), v;
  int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
  bool yes = rc == 0 && k.mv_size == 16 && memcmp(k.mv_data, kb, 8) == 0;
  mdb_cursor_close(cur);
  return yes;
}

uint64_t mbxc__ct_item_srv_folder(const Mbx__CacheItem *rec)
{
  return rec->srv ? rec->srv->folder_id : rec->view->folder_id;
}

static bool has_str(char *const *v, size_t n, const char *s)
{
  for (size_t i = 0; i < n; i++)
    if (strcmp(v[i], s) == 0)
      return true;
  return false;
}

/* view.categories = (view ∪ add) − remove, keeping order, at most the server's 64. */
static int apply_categories(struct mbxc__ct *t, Mbx__Item *view, const Mbx__CacheOpSetFlags *sf)
{
  size_t cap = view->n_categories + sf->n_categories_add, n = 0;
  char **out = mbx_arena_alloc(&t->a, (cap ? cap : 1) * sizeof(char *));
  if (!out)
    return MBX_ENOMEM;
  for (size_t i = 0; i < view->n_categories; i++)
    if (!has_str(sf->categories_remove, sf->n_categories_remove, view->categories[i]) &&
        !has_str(out, n, view->categories[i]))
      out[n++] = view->categories[i];
  for (size_t i = 0; i < sf->n_categories_add; i++)
    if (!has_str(sf->categories_remove, sf->n_categories_remove, sf->categories_add[i]) &&
        !has_str(out, n, sf->categories_add[i]))
      out[n++] = sf->categories_add[i];
  view->categories = out;
  view->n_categories = n;
  return 0;
}

/* Replays one queued change on an item's view. */
static int replay_item_op(struct mbxc__ct *t, Mbx__Item *view, bool *hidden, const Mbx__CacheOp *op)
{
  Mbx__CacheFolder *del;
  switch (op->op_case) {
  case MBX__CACHE_OP__OP_SET_FLAGS:
    view->flags = ((view->flags | op->set_flags->add) & ~op->set_flags->remove) & 0xf;
    view->has_flags = true;
    return op->set_flags->categories ? apply_categories(t, view, op->set_flags) : 0;
  case MBX__CACHE_OP__OP_MOVE:
    view->folder_id = mbxc__ct_resolve(t, op->move->folder_id);
    *hidden = false;
    return 0;
  case MBX__CACHE_OP__OP_DELETE: {
    int err = mbxc__ct_folder_wk(t, MBX__WELL_KNOWN__WK_DELETED, &del);
    if (err && err != MBX_ENOTFOUND)
      return err;
    if (op->delete_->hard || err || view->folder_id == del->view->id)
      *hidden = true;
    else
      view->folder_id = del->view->id;
    return 0;
  }
  default:
    return 0;
  }
}

int mbxc__ct_item_rebase(struct mbxc__ct *t, uint64_t id)
{
  Mbx__CacheItem *rec;
  Mbx__CacheOp **ops;
  size_t n;
  int err = mbxc__ct_item_queued(t, id, &rec, &ops, &n);
  if (err)
    return err == MBX_ENOTFOUND ? 0 : err;
  const Mbx__Item *base = rec->srv;
  for (size_t i = 0; !base && i < n; i++) {
    if (ops[i]->op_case == MBX__CACHE_OP__OP_APPEND)
      base = ops[i]->append->item;
    else if (ops[i]->op_case == MBX__CACHE_OP__OP_CREATE_ITEM)
      base = ops[i]->create_item->item;
  }
  if (!base) {
    if (!mbxc_cache_is_local_id(id) && n == 0)
      return 0; /* clean: the view is the server's version */
    /* a local item whose creation is gone (dropped by a rule): nothing left to show */
    return mbxc__ct_item_del(t, rec);
  }
  Mbx__CacheItem nrec = MBX__CACHE_ITEM__INIT;
  nrec.view = MBXC__DUP(t, base);
  if (!nrec.view)
    return MBX_ENOMEM;
  nrec.view->id = id;
  bool hidden = false;
  for (size_t i = 0; i < n; i++) {
    if (ops[i]->op_case == MBX__CACHE_OP__OP_APPEND)
      nrec.view->folder_id = mbxc__ct_resolve(t, ops[i]->append->folder_id);
    else if (ops[i]->op_case == MBX__CACHE_OP__OP_CREATE_ITEM)
      nrec.view->folder_id = mbxc__ct_resolve(t, ops[i]->create_item->folder_id);
    else if ((err = replay_item_op(t, nrec.view, &hidden, ops[i])))
      return err;
  }
  nrec.has_hidden = hidden;
  nrec.hidden = hidden;
  nrec.srv = n ? rec->srv : NULL; /* nothing queued: clean, the view is the server's */
  return mbxc__ct_item_put(t, rec, &nrec);
}

/* Moves the queue index entries of id to new_id. */
static int qindex_rekey(struct mbxc__ct *t, uint64_t id, uint64_t new_id)
{
  Mbx__CacheOp **ops;
  size_t n;
  int err = mbxc__ct_queue_of(t, id, &ops, &n);
  for (size_t i = 0; !err && i < n; i++) {
    uint8_t k[16];
    mbx_put_be64(k, id);
    mbx_put_be64(k + 8, ops[i]->seq);
    if ((err = del_key(t, CDB_QINDEX, k, 16)))
      break;
    mbx_put_be64(k, new_id);
    MDB_val kv = val(k, 16), e = val("", 0);
    int rc = mdb_put(t->txn, t->c->dbi[CDB_QINDEX], &kv, &e, 0);
    if (rc)
      err = mbxc__cache_mdb_err(rc, "qindex");
  }
  return err;
}

int mbxc__ct_item_rekey(struct mbxc__ct *t, uint64_t id, uint64_t new_id)
{
  Mbx__CacheItem *rec, *dup;
  int err = mbxc__ct_item_get(t, id, &rec);
  if (err)
    return err;
  if (mbxc__ct_item_get(t, new_id, &dup) == 0 && (err = mbxc__ct_item_del(t, dup)))
    return err; /* a sync already brought the server's copy: ours replaces it */
  MDB_val body;
  bool has_body = mbxc__ct_body_get(t, id, &body) == 0;
  void *copy = NULL;
  if (has_body && !(copy = mbx_arena_memdup(&t->a, body.mv_data, body.mv_size ? body.mv_size : 1)))
    return MBX_ENOMEM;
  Mbx__CacheItem nrec = *rec;
  nrec.view = MBXC__DUP(t, rec->view);
  if (!nrec.view)
    return MBX_ENOMEM;
  nrec.view->id = new_id;
  /* the old record goes first: its index entry and counts follow it */
  if ((err = mbxc__ct_item_del(t, rec)) || (err = mbxc__ct_item_put(t, NULL, &nrec)))
    return err;
  if (has_body && (err = mbxc__ct_body_put(t, new_id, copy, body.mv_size)))
    return err;
  if ((err = qindex_rekey(t, id, new_id)))
    return err;
  return mbxc__ct_map_put(t, id, new_id);
}

/* ======================================================================== */
/* bodies                                                                   */
/* ======================================================================== */

int mbxc__ct_body_get(struct mbxc__ct *t, uint64_t id, MDB_val *v_r)
{
  uint8_t k[8];
  mbx_put_be64(k, id);
  MDB_val kv = val(k, 8);
  int rc = mdb_get(t->txn, t->c->dbi[CDB_BODIES], &kv, v_r);
  if (rc == MDB_NOTFOUND)
    return MBX_ENOTFOUND;
  return rc ? mbxc__cache_mdb_err(rc, "bodies") : 0;
}

int mbxc__ct_body_put(struct mbxc__ct *t, uint64_t id, const void *data, size_t len)
{
  uint8_t k[8];
  mbx_put_be64(k, id);
  MDB_val kv = val(k, 8), dv = val(data, len);
  int rc = mdb_put(t->txn, t->c->dbi[CDB_BODIES], &kv, &dv, 0);
  return rc ? mbxc__cache_mdb_err(rc, "bodies") : 0;
}

int mbxc__ct_body_del(struct mbxc__ct *t, uint64_t id)
{
  uint8_t k[8];
  mbx_put_be64(k, id);
  return del_key(t, CDB_BODIES, k, 8);
}

/* ======================================================================== */
/* folders                                                                  */
/* ======================================================================== */

bool mbxc__folder_name_ok(const char *n)
{
  size_t len = n ? strlen(n) : 0;
  if (len == 0 || len > 255)
    return false;
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)n[i] < 32 || n[i] == 127 || n[i] == '/')
      return false;
  return true;
}

int mbxc__ct_folder_get(struct mbxc__ct *t, uint64_t id, Mbx__CacheFolder **rec_r)
{
  int err = t->nd ? ct_flush_deltas(t) : 0;
  if (err)
    return err;
  uint8_t k[8];
  mbx_put_be64(k, id);
  err = get_msg(t, CDB_FOLDERS, k, 8, &mbx__cache_folder__descriptor, (void **)rec_r);
  if (!err && !(*rec_r)->view)
    return mbxc__cache_fail(MBX_ECORRUPT, "cache: folder %llu has no view", (unsigned long long)id);
  return err;
}

int mbxc__ct_folder_put(struct mbxc__ct *t, const Mbx__CacheFolder *rec)
{
  uint8_t k[8];
  mbx_put_be64(k, rec->view->id);
  return put_msg(t, CDB_FOLDERS, k, 8, &rec->base);
}

int mbxc__ct_folder_del(struct mbxc__ct *t, uint64_t id)
{
  uint8_t k[8];
  mbx_put_be64(k, id);
  int err = del_key(t, CDB_FOLDERS, k, 8);
  return err ? err : mbxc__ct_fstate_del(t, id);
}

static bool folder_has_view(const ProtobufCMessage *m)
{
  return ((const Mbx__CacheFolder *)m)->view != NULL;
}

int mbxc__ct_folder_all(struct mbxc__ct *t, Mbx__CacheFolder ***v_r, size_t *n_r)
{
  int err = t->nd ? ct_flush_deltas(t) : 0;
  if (err)
    return err;
  MDB_stat st;
  int rc = mdb_stat(t->txn, t->c->dbi[CDB_FOLDERS], &st);
  if (rc)
    return mbxc__cache_mdb_err(rc, "folders stat");
  void **v;
  err = mbxc__ct_scan(t, CDB_FOLDERS, st.ms_entries + 1, &mbx__cache_folder__descriptor,
                      folder_has_view, "folder record", &v, n_r);
  if (!err)
    *v_r = (Mbx__CacheFolder **)v;
  return err;
}

int mbxc__ct_folder_child(struct mbxc__ct *t, uint64_t parent, const char *name,
                          Mbx__CacheFolder **rec_r)
{
  Mbx__CacheFolder **v;
  size_t n;
  int err = mbxc__ct_folder_all(t, &v, &n);
  if (err)
    return err;
  parent = mbxc__ct_resolve(t, parent);
  for (size_t i = 0; i < n; i++)
    if (!v[i]->hidden && mbxc__ct_resolve(t, v[i]->view->parent_id) == parent &&
        strcasecmp(v[i]->view->name, name) == 0) {
      *rec_r = v[i];
      return 0;
    }
  return MBX_ENOTFOUND;
}

int mbxc__ct_folder_wk(struct mbxc__ct *t, Mbx__WellKnown wk, Mbx__CacheFolder **rec_r)
{
  Mbx__CacheFolder **v;
  size_t n;
  int err = mbxc__ct_folder_all(t, &v, &n);
  if (err)
    return err;
  for (size_t i = 0; i < n; i++)
    if (!v[i]->hidden && v[i]->view->well_known == wk) {
      *rec_r = v[i];
      return 0;
    }
  return MBX_ENOTFOUND;
}

int mbxc__ct_folder_rebase(struct mbxc__ct *t, uint64_t id)
{
  Mbx__CacheFolder *rec;
  int err = mbxc__ct_folder_get(t, id, &rec);
  if (err)
    return err == MBX_ENOTFOUND ? 0 : err;
  Mbx__CacheOp **ops;
  size_t n;
  if ((err = mbxc__ct_queue_of(t, id, &ops, &n)))
    return err;
  Mbx__Folder *v = rec->view;
  const char *name = v->name;
  uint64_t parent = v->parent_id;
  bool hidden = false, base = false;
  if (rec->srv) {
    name = rec->srv->name;
    parent = rec->srv->parent_id;
    base = true;
  }
  for (size_t i = 0; i < n; i++) {
    const Mbx__CacheOp *op = ops[i];
    if (op->op_case == MBX__CACHE_OP__OP_CREATE_FOLDER) {
      name = op->create_folder->name;
      parent = op->create_folder->parent_id;
      base = true;
    } else if (op->op_case == MBX__CACHE_OP__OP_UPDATE_FOLDER) {
      if (op->update_folder->name)
        name = op->update_folder->name;
      if (op->update_folder->move)
        parent = op->update_folder->parent_id;
    } else if (op->op_case == MBX__CACHE_OP__OP_DELETE_FOLDER) {
      hidden = true;
    }
  }
  if (!base && !rec->placeholder && mbxc_cache_is_local_id(id))
    return mbxc__ct_folder_del(t, id); /* a local folder whose creation was dropped */
  v->name = (char *)name;
  v->parent_id = mbxc__ct_resolve(t, parent);
  v->has_parent_id = true;
  rec->has_hidden = true;
  rec->hidden = hidden;
  if (n == 0)
    rec->srv = NULL;
  return mbxc__ct_folder_put(t, rec);
}

int mbxc__ct_folder_rekey(struct mbxc__ct *t, uint64_t id, uint64_t new_id)
{
  Mbx__CacheFolder *rec, **all;
  size_t n;
  int err = mbxc__ct_folder_get(t, id, &rec);
  if (err)
    return err;
  /* the new record first, counts zero: the items' moves below bring them back */
  Mbx__CacheFolder nrec = *rec;
  nrec.view = MBXC__DUP(t, rec->view);
  if (!nrec.view)
    return MBX_ENOMEM;
  nrec.view->id = new_id;
  nrec.view->item_count = nrec.view->unread_count = nrec.view->size_bytes = 0;
  nrec.placeholder = false;
  nrec.has_placeholder = false;
  if ((err = mbxc__ct_folder_put(t, &nrec)))
    return err;
  uint64_t *ids;
  size_t ni;
  if ((err = mbxc__ct_folder_items(t, id, &ids, &ni)))
    return err;
  for (size_t i = 0; i < ni; i++) {
    Mbx__CacheItem *it;
    if ((err = mbxc__ct_item_get(t, ids[i], &it)))
      return err;
    Mbx__CacheItem nit = *it;
    nit.view = MBXC__DUP(t, it->view);
    if (!nit.view)
      return MBX_ENOMEM;
    nit.view->folder_id = new_id;
    if ((err = mbxc__ct_item_put(t, it, &nit)))
      return err;
  }
  if ((err = mbxc__ct_folder_all(t, &all, &n)))
    return err;
  for (size_t i = 0; i < n; i++) {
    Mbx__CacheFolder *f = all[i];
    if (f->view->parent_id != id && !(f->srv && f->srv->parent_id == id))
      continue;
    if (f->view->parent_id == id)
      f->view->parent_id = new_id;
    if (f->srv && f->srv->parent_id == id)
      f->srv->parent_id = new_id;
    if ((err = mbxc__ct_folder_put(t, f)))
      return err;
  }
  Mbx__CacheFolderState *st;
  if (mbxc__ct_fstate_get(t, id, &st) == 0 && (err = mbxc__ct_fstate_put(t, new_id, st)))
    return err;
  uint8_t k[8];
  mbx_put_be64(k, id);
  if ((err = del_key(t, CDB_FOLDERS, k, 8)) || (err = mbxc__ct_fstate_del(t, id)) ||
      (err = qindex_rekey(t, id, new_id)))
    return err;
  return mbxc__ct_map_put(t, id, new_id);
}

int mbxc__ct_fstate_get(struct mbxc__ct *t, uint64_t id, Mbx__CacheFolderState **st_r)
{
  uint8_t k[8];
  mbx_put_be64(k, id);
  return get_msg(t, CDB_FSTATE, k, 8, &mbx__cache_folder_state__descriptor, (void **)st_r);
}

int mbxc__ct_fstate_put(struct mbxc__ct *t, uint64_t id, const Mbx__CacheFolderState *st)
{
  uint8_t k[8];
  mbx_put_be64(k, id);
  return put_msg(t, CDB_FSTATE, k, 8, &st->base);
}

int mbxc__ct_fstate_del(struct mbxc__ct *t, uint64_t id)
{
  uint8_t k[8];
  mbx_put_be64(k, id);
  return del_key(t, CDB_FSTATE, k, 8);
}

/* ======================================================================== */
/* the queue                                                                */
/* ======================================================================== */

static int qindex_put(struct mbxc__ct *t, uint64_t id, uint64_t seq)
{
  uint8_t k[16];
  mbx_put_be64(k, id);
  mbx_put_be64(k + 8, seq);
  MDB_val kv = val(k, 16), e = val("", 0);
  int rc = mdb_put(t->txn, t->c->dbi[CDB_QINDEX], &kv, &e, 0);
  return rc ? mbxc__cache_mdb_err(rc, "qindex") : 0;
}

static int new_key(struct mbxc__ct *t, Mbx__CacheOp *op)
{
  uint8_t *k = mbx_arena_alloc(&t->a, MBXC_CACHE_KEY_BYTES);
  if (!k)
    return MBX_ENOMEM;
  size_t got = 0;
  while (got < MBXC_CACHE_KEY_BYTES) {
    ssize_t r = getrandom(k + got, MBXC_CACHE_KEY_BYTES - got, 0);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return mbxc__cache_fail(MBX_EIO, "cache: no random bytes for an idempotency key: %s",
                              strerror(errno));
    got += (size_t)r;
  }
  op->key.data = k;
  op->key.len = MBXC_CACHE_KEY_BYTES;
  return 0;
}

uint64_t mbxc__ct_queue_len(struct mbxc__ct *t)
{
  MDB_stat st;
  return mdb_stat(t->txn, t->c->dbi[CDB_QUEUE], &st) ? 0 : st.ms_entries;
}

int mbxc__ct_queue_add(struct mbxc__ct *t, Mbx__CacheOp *op)
{
  if (mbxc__ct_queue_len(t) >= MBXC_CACHE_QUEUE_MAX)
    return mbxc__cache_fail(MBX_ELIMIT, "the outbox holds %u changes already: sync first",
                            MBXC_CACHE_QUEUE_MAX);
  uint64_t seq = mbxc__ct_meta_u64(t, "next_seq", 1);
  int err = mbxc__ct_meta_put_u64(t, "next_seq", seq + 1);
  if (err || (err = new_key(t, op)))
    return err;
  op->seq = seq;
  op->has_queued_us = true;
  op->queued_us = mbx_now_us();
  uint8_t k[8];
  mbx_put_be64(k, seq);
  if ((err = put_msg(t, CDB_QUEUE, k, 8, &op->base)) || (err = qindex_put(t, op->id, seq)))
    return err;
  t->queued++;
  return 0;
}

int mbxc__ct_queue_get(struct mbxc__ct *t, uint64_t seq, Mbx__CacheOp **op_r)
{
  uint8_t k[8];
  mbx_put_be64(k, seq);
  return get_msg(t, CDB_QUEUE, k, 8, &mbx__cache_op__descriptor, (void **)op_r);
}

int mbxc__ct_queue_update(struct mbxc__ct *t, Mbx__CacheOp *op, bool key)
{
  int err = key ? new_key(t, op) : 0;
  if (err)
    return err;
  uint8_t k[8];
  mbx_put_be64(k, op->seq);
  return put_msg(t, CDB_QUEUE, k, 8, &op->base);
}

int mbxc__ct_queue_del(struct mbxc__ct *t, const Mbx__CacheOp *op)
{
  uint8_t k[8];
  mbx_put_be64(k, op->seq);
  int err = del_key(t, CDB_QUEUE, k, 8);
  if (err)
    return err;
  /* the index entry may be under the op's id or, after a rekey, the server id */
  uint8_t q[16];
  mbx_put_be64(q + 8, op->seq);
  mbx_put_be64(q, op->id);
  if ((err = del_key(t, CDB_QINDEX, q, 16)))
    return err;
  uint64_t sid = mbxc__ct_resolve(t, op->id);
  if (sid != op->id) {
    mbx_put_be64(q, sid);
    err = del_key(t, CDB_QINDEX, q, 16);
  }
  return err;
}

int mbxc__ct_queue_of(struct mbxc__ct *t, uint64_t id, Mbx__CacheOp ***ops_r, size_t *n_r)
{
  MDB_cursor *cur;
  int rc = mdb_cursor_open(t->txn, t->c->dbi[CDB_QINDEX], &cur);
  if (rc)
    return mbxc__cache_mdb_err(rc, "qindex cursor");
  size_t cap = 8, n = 0;
  Mbx__CacheOp **ops = mbx_arena_alloc(&t->a, cap * sizeof(*ops));
  int err = ops ? 0 : MBX_ENOMEM;
  uint8_t kb[8];
  mbx_put_be64(kb, id);
  MDB_val k = val(kb, 8), v;
  for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); !err && rc == 0;
       rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    if (k.mv_size != 16 || memcmp(k.mv_data, kb, 8) != 0)
      break;
    if (n == cap) {
      Mbx__CacheOp **g = mbx_arena_alloc(&t->a, 2 * cap * sizeof(*ops));
      if (!g) {
        err = MBX_ENOMEM;
        break;
      }
      memcpy(g, ops, n * sizeof(*ops));
      ops = g;
      cap *= 2;
    }
    Mbx__CacheOp *op;
    err = mbxc__ct_queue_get(t, mbx_get_be64((uint8_t *)k.mv_data + 8), &op);
    if (err == MBX_ENOTFOUND) {
      err = 0; /* a stale index entry: harmless, skipped */
      continue;
    }
    if (!err)
      ops[n++] = op;
  }
  if (!err && rc && rc != MDB_NOTFOUND)
    err = mbxc__cache_mdb_err(rc, "qindex cursor");
  mdb_cursor_close(cur);
  if (!err) {
    *ops_r = ops;
    *n_r = n;
  }
  return err;
}

int mbxc__ct_queue_all(struct mbxc__ct *t, size_t max, Mbx__CacheOp ***ops_r, size_t *n_r)
{
  size_t cap = mbxc__ct_queue_len(t);
  if (max && cap > max)
    cap = max;
  void **v;
  int err =
      mbxc__ct_scan(t, CDB_QUEUE, cap, &mbx__cache_op__descriptor, NULL, "queue entry", &v, n_r);
  if (!err)
    *ops_r = (Mbx__CacheOp **)v;
  return err;
}

int mbxc__ct_queue_drop_of(struct mbxc__ct *t, uint64_t id)
{
  Mbx__CacheOp **ops;
  size_t n;
  int err = mbxc__ct_queue_of(t, id, &ops, &n);
  for (size_t i = 0; !err && i < n; i++)
    err = mbxc__ct_queue_del(t, ops[i]);
  return err;
}

/* ======================================================================== */
/* conflicts                                                                */
/* ======================================================================== */

int mbxc__ct_conflict(struct mbxc__ct *t, const char *rule, uint64_t id, uint64_t copy_id,
                      const char *fmt, ...)
{
  char detail[600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof(detail), fmt, ap);
  va_end(ap);
  Mbx__CacheConflict cf = MBX__CACHE_CONFLICT__INIT;
  cf.has_time_us = cf.has_id = true;
  cf.time_us = mbx_now_us();
  cf.rule = (char *)rule;
  cf.id = id;
  cf.detail = detail;
  cf.has_copy_id = copy_id != 0;
  cf.copy_id = copy_id;
  uint64_t seq = mbxc__ct_meta_u64(t, "next_conflict", 1);
  uint8_t k[8];
  mbx_put_be64(k, seq);
  int err = mbxc__ct_meta_put_u64(t, "next_conflict", seq + 1);
  if (err || (err = put_msg(t, CDB_CONFLICTS, k, 8, &cf.base)))
    return err;
  t->conflicts++;
  if (t->on_conflict)
    t->on_conflict(t->on_conflict_arg, detail);
  return 0;
}

/* ======================================================================== */
/* open / close                                                             */
/* ======================================================================== */

static bool profile_ok(const char *p)
{
  size_t n = p ? strlen(p) : 0;
  if (n == 0 || n > MBXC_CACHE_PROFILE_MAX || p[0] == '.')
    return false;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)p[i] < 32 || p[i] == '/' || p[i] == 127)
      return false;
  return true;
}

int mbxc_cache_dir(const char *profile, char *buf, size_t len)
{
  if (!profile_ok(profile))
    return mbxc__cache_fail(MBX_EINVAL, "\"%.100s\" is not a usable profile name",
                            profile ? profile : "");
  const char *base = getenv("MBX_CACHE_DIR"), *xdg = getenv("XDG_DATA_HOME"),
             *home = getenv("HOME");
  int w;
  if (base && *base)
    w = snprintf(buf, len, "%s/%s", base, profile);
  else if (xdg && *xdg)
    w = snprintf(buf, len, "%s/mbx/%s", xdg, profile);
  else if (home && *home)
    w = snprintf(buf, len, "%s/.local/share/mbx/%s", home, profile);
  else
    return mbxc__cache_fail(MBX_EINVAL, "no place for the cache: set MBX_CACHE_DIR or HOME");
  if (w < 0 || (size_t)w >= len)
    return mbxc__cache_fail(MBX_ELIMIT, "the cache path is too long");
  return 0;
}

/* mkdir -p with mode 0700 for what it creates. */
static int make_dirs(const char *dir)
{
  char p[4096];
  if (snprintf(p, sizeof(p), "%s", dir) >= (int)sizeof(p))
    return mbxc__cache_fail(MBX_ELIMIT, "the cache path is too long");
  for (char *s = p + 1;; s++) {
    if (*s != '/' && *s != 0)
      continue;
    char c = *s;
    *s = 0;
    if (mkdir(p, 0700) < 0 && errno != EEXIST)
      return mbxc__cache_fail(MBX_EIO, "cannot create %s: %s", p, strerror(errno));
    *s = c;
    if (!c)
      break;
  }
  return 0;
}

static int cache_init_new(struct mbxc__ct *t, const char *user)
{
  int err = mbxc__ct_meta_put_u64(t, "version", CACHE_VERSION);
  if (!err)
    err = mbxc__ct_meta_put(t, "user", user, strlen(user));
  for (size_t i = 0; !err && i < CACHE_N_WK; i++) {
    Mbx__Folder f = MBX__FOLDER__INIT;
    Mbx__CacheFolder rec = MBX__CACHE_FOLDER__INIT;
    if ((err = mbxc__ct_new_local_id(t, &f.id)))
      break;
    f.name = (char *)cache_wk[i].name;
    f.has_parent_id = f.has_folder_class = f.has_well_known = true;
    f.has_item_count = f.has_unread_count = f.has_size_bytes = true;
    f.folder_class = cache_wk[i].cls;
    f.well_known = cache_wk[i].wk;
    rec.view = &f;
    rec.has_placeholder = rec.placeholder = true;
    err = mbxc__ct_folder_put(t, &rec);
  }
  return err;
}

static int cache_open_env(mbxc_cache *c, size_t map_bytes)
{
  int rc = mdb_env_create(&c->env);
  if (rc)
    return mbxc__cache_mdb_err(rc, "create");
  if ((rc = mdb_env_set_maxdbs(c->env, CDB_N + 2)) ||
      (rc = mdb_env_set_mapsize(c->env, map_bytes ? map_bytes : MBXC_CACHE_DEFAULT_MAP_BYTES)) ||
      (rc = mdb_env_open(c->env, c->dir, MDB_NOTLS, 0600)))
    return mbxc__cache_mdb_err(rc, c->dir);
  return 0;
}

int mbxc_cache_open(const char *dir, const char *user, size_t map_bytes, mbxc_cache **cache_r)
{
  if (!dir || !*dir)
    return mbxc__cache_fail(MBX_EINVAL, "no cache directory");
  if (user && (!*user || strlen(user) > 254))
    return mbxc__cache_fail(MBX_EINVAL, "\"%.100s\" is not a mailbox address", user);
  int err = make_dirs(dir);
  if (err)
    return err;
  mbxc_cache *c = calloc(1, sizeof(*c));
  if (!c || !(c->dir = strdup(dir))) {
    free(c);
    return mbxc__cache_fail(MBX_ENOMEM, "out of memory");
  }
  struct mbxc__ct t;
  if ((err = cache_open_env(c, map_bytes)) || (err = mbxc__ct_begin(c, true, &t))) {
    mbxc_cache_close(&c);
    return err;
  }
  for (int i = 0; !err && i < CDB_N; i++) {
    int rc = mdb_dbi_open(t.txn, cdb_names[i], MDB_CREATE, &c->dbi[i]);
    if (rc)
      err = mbxc__cache_mdb_err(rc, cdb_names[i]);
  }
  char *stored = err ? NULL : mbxc__ct_meta_str(&t, "user");
  if (!err && !stored) {
    if (!user)
      err = mbxc__cache_fail(MBX_EINVAL, "%s holds no cache yet: give the mailbox address "
                                         "(--user) to create it", dir);
    else
      err = cache_init_new(&t, user);
    stored = (char *)user;
  } else if (!err && user && strcasecmp(user, stored) != 0) {
    err = mbxc__cache_fail(MBX_EINVAL, "the cache in %s belongs to %s, not %s", dir, stored, user);
  } else if (!err && mbxc__ct_meta_u64(&t, "version", 0) != CACHE_VERSION) {
    err = mbxc__cache_fail(MBX_ECORRUPT, "the cache in %s has an unknown format version", dir);
  }
  if (!err && !(c->user = strdup(stored)))
    err = mbxc__cache_fail(MBX_ENOMEM, "out of memory");
  if (err) {
    mbxc__ct_abort(&t);
    mbxc_cache_close(&c);
    return err;
  }
  if ((err = mbxc__ct_commit(&t))) {
    mbxc_cache_close(&c);
    return err;
  }
  *cache_r = c;
  return 0;
}

void mbxc_cache_close(mbxc_cache **cp)
{
  mbxc_cache *c = cp ? *cp : NULL;
  if (!c)
    return;
  if (c->env)
    mdb_env_close(c->env);
  free(c->dir);
  free(c->user);
  free(c);
  *cp = NULL;
}

const char *mbxc_cache_user(const mbxc_cache *c) { return c->user; }
const char *mbxc_cache_path(const mbxc_cache *c) { return c->dir; }

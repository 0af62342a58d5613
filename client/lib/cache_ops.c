/* cache_ops.c — the cached mode's local calls: reads answered from the cache, and
 * changes that update the view and queue an outbox entry in one durable
 * transaction (mbx/cache.h). Also the profile settings and the status report. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cache_int.h"
#include "clock.h"
#include "kinds.h"
#include "rfc5322.h"

#define CACHE_LIST_DEFAULT 50u
#define CACHE_LIST_MAX 1000u
#define CACHE_CATEGORIES_MAX 64u
#define CACHE_CATEGORY_MAX_BYTES 255u
#define CACHE_FOLDER_DEPTH_MAX 64
#define CACHE_STATUS_CONFLICTS 10u
#define CACHE_STATUS_FAILING 20u

/* ======================================================================== */
/* helpers                                                                  */
/* ======================================================================== */

/* A self-contained copy (system allocator) of a message built in an arena: what the
 * caller frees with mbxc_free. */
static void *export_msg(const ProtobufCMessage *m)
{
  size_t n = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = malloc(n ? n : 1);
  if (!buf)
    return NULL;
  protobuf_c_message_pack(m, buf);
  void *r = protobuf_c_message_unpack(m->descriptor, NULL, n, buf);
  free(buf);
  return r;
}

static int export_to(const ProtobufCMessage *m, void *out_r)
{
  void *r = export_msg(m);
  if (!r)
    return mbxc__cache_fail(MBX_ENOMEM, "out of memory");
  *(void **)out_r = r;
  return 0;
}

/* Commits t, or aborts it when err is set; returns the first error. */
static int finish(struct mbxc__ct *t, int err)
{
  if (err) {
    mbxc__ct_abort(t);
    return err;
  }
  return mbxc__ct_commit(t);
}

static int no_folder(uint64_t id)
{
  return mbxc__cache_fail(MBX_ENOTFOUND, "no folder %" PRIu64 " in the cache", id);
}

static int no_item(uint64_t id)
{
  return mbxc__cache_fail(MBX_ENOTFOUND, "no item %" PRIu64 " in the cache", id);
}

/* The visible folder id (a local id is mapped first). */
static int visible_folder(struct mbxc__ct *t, uint64_t id, Mbx__CacheFolder **rec_r)
{
  uint64_t rid = mbxc__ct_resolve(t, id);
  int err = mbxc__ct_folder_get(t, rid, rec_r);
  if (err == MBX_ENOTFOUND || (!err && (*rec_r)->hidden))
    return no_folder(id);
  return err;
}

static int visible_item(struct mbxc__ct *t, uint64_t id, Mbx__CacheItem **rec_r)
{
  uint64_t rid = mbxc__ct_resolve(t, id);
  int err = mbxc__ct_item_get(t, rid, rec_r);
  if (err == MBX_ENOTFOUND || (!err && (*rec_r)->hidden))
    return no_item(id);
  return err;
}

static bool urgent_folder(const Mbx__CacheFolder *f)
{
  return f->view->well_known == MBX__WELL_KNOWN__WK_SENT ||
         f->view->well_known == MBX__WELL_KNOWN__WK_OUTBOX;
}

static int categories_ok(const char *const *c, size_t n)
{
  if (n > CACHE_CATEGORIES_MAX)
    return mbxc__cache_fail(MBX_ELIMIT, "at most %u categories", CACHE_CATEGORIES_MAX);
  for (size_t i = 0; i < n; i++)
    if (!c[i] || !*c[i] || strlen(c[i]) > CACHE_CATEGORY_MAX_BYTES)
      return mbxc__cache_fail(MBX_EINVAL, "a category is 1 to 255 bytes");
  return 0;
}

/* Before the first queued change of a server item: remember the server's version
 * its changes are based on. */
static int ensure_srv(struct mbxc__ct *t, Mbx__CacheItem *rec)
{
  if (rec->srv || mbxc_cache_is_local_id(rec->view->id))
    return 0;
  rec->srv = MBXC__DUP(t, rec->view);
  if (!rec->srv)
    return MBX_ENOMEM;
  return mbxc__ct_item_put(t, rec, rec);
}

static int queue_item_op(struct mbxc__ct *t, Mbx__CacheItem *rec, Mbx__CacheOp *op)
{
  int err = ensure_srv(t, rec);
  if (!err)
    err = mbxc__ct_queue_add(t, op);
  if (!err)
    err = mbxc__ct_item_rebase(t, rec->view->id);
  return err;
}

/* The item's current record as an ItemResp for the caller. */
static int item_result(struct mbxc__ct *t, uint64_t id, Mbx__ItemResp **resp_r)
{
  if (!resp_r)
    return 0;
  Mbx__CacheItem *rec;
  int err = mbxc__ct_item_get(t, id, &rec);
  if (err)
    return err;
  Mbx__ItemResp ir = MBX__ITEM_RESP__INIT;
  ir.item = rec->view;
  return export_to(&ir.base, resp_r);
}

static int folder_result(struct mbxc__ct *t, uint64_t id, Mbx__FolderResp **resp_r)
{
  if (!resp_r)
    return 0;
  Mbx__CacheFolder *rec;
  int err = mbxc__ct_folder_get(t, id, &rec);
  if (err)
    return err;
  Mbx__FolderResp fr = MBX__FOLDER_RESP__INIT;
  fr.folder = rec->view;
  return export_to(&fr.base, resp_r);
}

/* ======================================================================== */
/* reads                                                                    */
/* ======================================================================== */

int mbxc_cache_folders(mbxc_cache *c, Mbx__FoldersResp **resp_r)
{
  struct mbxc__ct t;
  int err = mbxc__ct_begin(c, false, &t);
  if (err)
    return err;
  Mbx__CacheFolder **all;
  size_t n;
  if (!(err = mbxc__ct_folder_all(&t, &all, &n))) {
    Mbx__Folder **v = mbx_arena_alloc(&t.a, (n + 1) * sizeof(*v));
    Mbx__FoldersResp fr = MBX__FOLDERS_RESP__INIT;
    if (!v)
      err = MBX_ENOMEM;
    for (size_t i = 0; v && i < n; i++)
      if (!all[i]->hidden)
        v[fr.n_folders++] = all[i]->view;
    fr.folders = v;
    if (!err)
      err = export_to(&fr.base, resp_r);
  }
  mbxc__ct_abort(&t);
  return err;
}

int mbxc_cache_list(mbxc_cache *c, uint64_t folder_id, uint32_t offset, uint32_t limit,
                    Mbx__ListResp **resp_r)
{
  if (limit == 0)
    limit = CACHE_LIST_DEFAULT;
  if (limit > CACHE_LIST_MAX)
    limit = CACHE_LIST_MAX;
  struct mbxc__ct t;
  int err = mbxc__ct_begin(c, false, &t);
  if (err)
    return err;
  Mbx__CacheFolder *f;
  uint64_t *ids;
  size_t n;
  if (!(err = visible_folder(&t, folder_id, &f)) &&
      !(err = mbxc__ct_folder_items(&t, f->view->id, &ids, &n))) {
    Mbx__ListResp lr = MBX__LIST_RESP__INIT;
    lr.has_total = true;
    lr.total = n;
    size_t from = offset < n ? offset : n, cnt = n - from < limit ? n - from : limit;
    lr.items = mbx_arena_alloc(&t.a, (cnt + 1) * sizeof(*lr.items));
    if (!lr.items)
      err = MBX_ENOMEM;
    for (size_t i = 0; !err && i < cnt; i++) {
      Mbx__CacheItem *rec;
      if (!(err = mbxc__ct_item_get(&t, ids[from + i], &rec)))
        lr.items[lr.n_items++] = rec->view;
    }
    if (!err)
      err = export_to(&lr.base, resp_r);
  }
  mbxc__ct_abort(&t);
  return err;
}

int mbxc_cache_get(mbxc_cache *c, uint64_t item_id, bool with_body, Mbx__ItemResp **resp_r,
                   bool *body_missing_r)
{
  struct mbxc__ct t;
  int err = mbxc__ct_begin(c, false, &t);
  if (err)
    return err;
  Mbx__CacheItem *rec;
  bool missing = false;
  if (!(err = visible_item(&t, item_id, &rec))) {
    Mbx__ItemResp ir = MBX__ITEM_RESP__INIT;
    ir.item = rec->view;
    MDB_val b;
    if (with_body && rec->view->kind == MBX__ITEM_KIND__ITEM_MESSAGE) {
      int berr = mbxc__ct_body_get(&t, rec->view->id, &b);
      if (berr == 0) {
        ir.has_body = true;
        ir.body.data = b.mv_data;
        ir.body.len = b.mv_size;
      } else if (berr == MBX_ENOTFOUND) {
        missing = true;
      } else {
        err = berr;
      }
    }
    if (!err)
      err = export_to(&ir.base, resp_r);
  }
  mbxc__ct_abort(&t);
  if (!err && body_missing_r)
    *body_missing_r = missing;
  return err;
}

int mbxc_cache_put_body(mbxc_cache *c, uint64_t item_id, const void *body, size_t len)
{
  struct mbxc__ct t;
  int err = mbxc__ct_begin(c, true, &t);
  if (err)
    return err;
  Mbx__CacheItem *rec;
  if (!(err = visible_item(&t, item_id, &rec)))
    err = mbxc__ct_body_put(&t, rec->view->id, body, len);
  return finish(&t, err);
}

uint64_t mbxc_cache_map_id(mbxc_cache *c, uint64_t id)
{
  struct mbxc__ct t;
  if (!mbxc_cache_is_local_id(id) || mbxc__ct_begin(c, false, &t))
    return id;
  uint64_t r = mbxc__ct_resolve(&t, id);
  mbxc__ct_abort(&t);
  return r;
}

size_t mbxc_cache_max_message_bytes(mbxc_cache *c)
{
  struct mbxc__ct t;
  if (mbxc__ct_begin(c, false, &t))
    return MBXC_CACHE_DEFAULT_MAX_MESSAGE_BYTES;
  uint64_t v = mbxc__ct_meta_u64(&t, "max_message_bytes", MBXC_CACHE_DEFAULT_MAX_MESSAGE_BYTES);
  mbxc__ct_abort(&t);
  return v ? (size_t)v : MBXC_CACHE_DEFAULT_MAX_MESSAGE_BYTES;
}

/* ======================================================================== */
/* item changes                                                             */
/* ======================================================================== */

int mbxc__ct_create_local_item(struct mbxc__ct *t, uint64_t folder_id, const Mbx__Item *tmpl,
                               const void *body, size_t len, Mbx__CacheItem **rec_r)
{
  Mbx__CacheFolder *f;
  int err = visible_folder(t, folder_id, &f);
  if (err)
    return err;
  Mbx__CacheItem *rec = mbx_arena_pbnew(&t->a, &mbx__cache_item__descriptor);
  Mbx__CacheOp *op = mbx_arena_pbnew(&t->a, &mbx__cache_op__descriptor);
  if (!rec || !op || !(rec->view = MBXC__DUP(t, tmpl)))
    return MBX_ENOMEM;
  Mbx__Item *v = rec->view;
  if ((err = mbxc__ct_new_local_id(t, &v->id)))
    return err;
  v->mailbox_id = 0;
  v->folder_id = f->view->id;
  v->has_cn = v->has_added_cn = false;
  v->cn = v->added_cn = 0;
  if (body && (err = mbxc__ct_body_put(t, v->id, body, len)))
    return err;
  if ((err = mbxc__ct_item_put(t, NULL, rec)))
    return err;
  op->id = v->id;
  op->has_urgent = op->urgent = urgent_folder(f);
  if (body) {
    Mbx__CacheOpAppend *ap = mbx_arena_pbnew(&t->a, &mbx__cache_op_append__descriptor);
    if (!ap)
      return MBX_ENOMEM;
    ap->folder_id = f->view->id;
    ap->item = v;
    op->op_case = MBX__CACHE_OP__OP_APPEND;
    op->append = ap;
  } else {
    Mbx__CacheOpCreateItem *ci = mbx_arena_pbnew(&t->a, &mbx__cache_op_create_item__descriptor);
    if (!ci)
      return MBX_ENOMEM;
    ci->folder_id = f->view->id;
    ci->item = v;
    op->op_case = MBX__CACHE_OP__OP_CREATE_ITEM;
    op->create_item = ci;
  }
  if ((err = mbxc__ct_queue_add(t, op)))
    return err;
  if (rec_r)
    *rec_r = rec;
  return 0;
}

int mbxc_cache_append(mbxc_cache *c, uint64_t folder_id, const void *body, size_t len,
                      uint32_t flags, Mbx__ItemResp **resp_r)
{
  if (!body || len == 0)
    return mbxc__cache_fail(MBX_EINVAL, "an empty message");
  size_t max = mbxc_cache_max_message_bytes(c);
  if (len > max)
    return mbxc__cache_fail(MBX_ETOOBIG, "message is %zu bytes, over the limit of %zu bytes",
                            len, max);
  struct mbxc__ct t;
  int err = mbxc__ct_begin(c, true, &t);
  if (err)
    return err;
  Mbx__CacheFolder *f;
  Mbx__CacheItem *rec = NULL;
  Mbx__Item it = MBX__ITEM__INIT;
  Mbx__MessageSummary *sum = mbx_arena_pbnew(&t.a, &mbx__message_summary__descriptor);
  if (!sum)
    err = MBX_ENOMEM;
  if (!err && !(err = visible_folder(&t, folder_id, &f)) &&
      f->view->folder_class != MBX__FOLDER_CLASS__FOLDER_MAIL)
    err = mbxc__cache_fail(MBX_EINVAL, "messages go in mail folders only");
  if (!err)
    err = mbx_rfc5322_parse(body, len, &t.a, sum);
  if (!err) {
    it.has_kind = it.has_flags = it.has_received_us = it.has_size = true;
    it.kind = MBX__ITEM_KIND__ITEM_MESSAGE;
    it.flags = flags & 0xf;
    it.received_us = mbx_now_us();
    it.size = len;
    it.message = sum;
    err = mbxc__ct_create_local_item(&t, folder_id, &it, body, len, &rec);
  }
  if (!err)
    err = item_result(&t, rec->view->id, resp_r);
  return finish(&t, err);
}

int mbxc_cache_create_item(mbxc_cache *c, uint64_t folder_id, const Mbx__Item *item,
                           Mbx__ItemResp **resp_r)
{
  bool ok = item && ((item->kind == MBX__ITEM_KIND__ITEM_EVENT && item->event) ||
                     (item->kind == MBX__ITEM_KIND__ITEM_CONTACT && item->contact) ||
                     (item->kind == MBX__ITEM_KIND__ITEM_TASK && item->task) ||
                     (item->kind == MBX__ITEM_KIND__ITEM_NOTE && item->note));
  if (!ok || (item->task && item->task->percent_complete > 100))
    return mbxc__cache_fail(MBX_EINVAL, "not an event, contact, task or note");
  int err = categories_ok((const char *const *)item->categories, item->n_categories);
  if (err)
    return err;
  struct mbxc__ct t;
  if ((err = mbxc__ct_begin(c, true, &t)))
    return err;
  Mbx__CacheFolder *f;
  Mbx__CacheItem *rec = NULL;
  if (!(err = visible_folder(&t, folder_id, &f)) &&
      f->view->folder_class != mbx_kind_folder_class(item->kind))
    err = mbxc__cache_fail(MBX_EINVAL, "that folder's class does not hold this kind of item");
  if (!err) {
    Mbx__Item it = MBX__ITEM__INIT;
    it.has_kind = it.has_flags = it.has_received_us = it.has_size = true;
    it.kind = item->kind;
    it.flags = item->flags & 0xf;
    it.n_categories = item->n_categories;
    it.categories = item->categories;
    it.event = item->event;
    it.contact = item->contact;
    it.task = item->task;
    it.note = item->note;
    it.received_us = mbx_now_us();
    it.size = mbx__item__get_packed_size(&it);
    err = mbxc__ct_create_local_item(&t, folder_id, &it, NULL, 0, &rec);
  }
  if (!err)
    err = item_result(&t, rec->view->id, resp_r);
  return finish(&t, err);
}

/* s in v[0..n)? */
static bool in_list(char *const *v, size_t n, const char *s)
{
  for (size_t i = 0; i < n; i++)
    if (strcmp(v[i], s) == 0)
      return true;
  return false;
}

int mbxc_cache_set_flags(mbxc_cache *c, uint64_t item_id, uint32_t add, uint32_t remove,
                         bool set_categories, const char *const *categories, size_t n,
                         Mbx__ItemResp **resp_r)
{
  int err = set_categories ? categories_ok(categories, n) : 0;
  if (err)
    return err;
  struct mbxc__ct t;
  if ((err = mbxc__ct_begin(c, true, &t)))
    return err;
  Mbx__CacheItem *rec;
  Mbx__CacheOp *op = mbx_arena_pbnew(&t.a, &mbx__cache_op__descriptor);
  Mbx__CacheOpSetFlags *sf = mbx_arena_pbnew(&t.a, &mbx__cache_op_set_flags__descriptor);
  if (!op || !sf)
    err = MBX_ENOMEM;
  if (!err && !(err = visible_item(&t, item_id, &rec))) {
    const Mbx__Item *v = rec->view;
    sf->has_add = sf->has_remove = true;
    sf->add = add & 0xf;
    sf->remove = remove & 0xf & ~sf->add;
    if (set_categories) {
      /* deltas against what the user saw: they merge with the server's changes */
      sf->has_categories = sf->categories = true;
      sf->categories_add = mbx_arena_alloc(&t.a, (n + 1) * sizeof(char *));
      sf->categories_remove = mbx_arena_alloc(&t.a, (v->n_categories + 1) * sizeof(char *));
      if (!sf->categories_add || !sf->categories_remove)
        err = MBX_ENOMEM;
      for (size_t i = 0; !err && i < n; i++)
        if (!in_list(v->categories, v->n_categories, categories[i]) &&
            !in_list(sf->categories_add, sf->n_categories_add, categories[i]))
          sf->categories_add[sf->n_categories_add++] = (char *)categories[i];
      for (size_t i = 0; !err && i < v->n_categories; i++)
        if (!in_list((char *const *)categories, n, v->categories[i]))
          sf->categories_remove[sf->n_categories_remove++] = v->categories[i];
    }
    op->id = v->id;
    op->op_case = MBX__CACHE_OP__OP_SET_FLAGS;
    op->set_flags = sf;
    uint64_t id = v->id;
    if (!err)
      err = queue_item_op(&t, rec, op);
    if (!err)
      err = item_result(&t, id, resp_r);
  }
  return finish(&t, err);
}

int mbxc_cache_move(mbxc_cache *c, uint64_t item_id, uint64_t folder_id, Mbx__ItemResp **resp_r)
{
  struct mbxc__ct t;
  int err = mbxc__ct_begin(c, true, &t);
  if (err)
    return err;
  Mbx__CacheItem *rec;
  Mbx__CacheFolder *f;
  Mbx__CacheOp *op = mbx_arena_pbnew(&t.a, &mbx__cache_op__descriptor);
  Mbx__CacheOpMove *mv = mbx_arena_pbnew(&t.a, &mbx__cache_op_move__descriptor);
  if (!op || !mv)
    err = MBX_ENOMEM;
  if (!err && !(err = visible_item(&t, item_id, &rec)) &&
      !(err = visible_folder(&t, folder_id, &f))) {
    uint64_t id = rec->view->id;
    if (rec->view->folder_id != f->view->id) {
      mv->folder_id = f->view->id;
      op->id = id;
      op->op_case = MBX__CACHE_OP__OP_MOVE;
      op->move = mv;
      op->has_urgent = op->urgent = urgent_folder(f);
      err = queue_item_op(&t, rec, op);
    }
    if (!err)
      err = item_result(&t, id, resp_r);
  }
  return finish(&t, err);
}

int mbxc_cache_delete(mbxc_cache *c, uint64_t item_id, bool hard)
{
  struct mbxc__ct t;
  int err = mbxc__ct_begin(c, true, &t);
  if (err)
    return err;
  Mbx__CacheItem *rec;
  Mbx__CacheFolder *del = NULL;
  Mbx__CacheOp *op = mbx_arena_pbnew(&t.a, &mbx__cache_op__descriptor);
  Mbx__CacheOpDelete *d = mbx_arena_pbnew(&t.a, &mbx__cache_op_delete__descriptor);
  if (!op || !d)
    err = MBX_ENOMEM;
  if (!err && !(err = visible_item(&t, item_id, &rec))) {
    uint64_t id = rec->view->id;
    int werr = mbxc__ct_folder_wk(&t, MBX__WELL_KNOWN__WK_DELETED, &del);
    if (werr && werr != MBX_ENOTFOUND)
      err = werr;
    bool for_good = hard || !del || rec->view->folder_id == del->view->id;
    if (!err && for_good && mbxc_cache_is_local_id(id)) {
      /* never reached the server: it simply goes */
      if (!(err = mbxc__ct_queue_drop_of(&t, id)))
        err = mbxc__ct_item_del(&t, rec);
    } else if (!err) {
      d->has_hard = d->hard = hard;
      op->id = id;
      op->op_case = MBX__CACHE_OP__OP_DELETE;
      op->delete_ = d;
      err = queue_item_op(&t, rec, op);
    }
  }
  return finish(&t, err);
}

/* ======================================================================== */
/* folder changes                                                           */
/* ======================================================================== */

/* Depth of folder id (top level folder = 1), walking up; MBX_EINVAL through `self`
 * (a folder moved under itself) or past the limit. */
static int folder_depth(struct mbxc__ct *t, uint64_t id, uint64_t self, int *depth_r)
{
  int d = 0;
  while (id) {
    if (id == self || ++d > CACHE_FOLDER_DEPTH_MAX)
      return mbxc__cache_fail(MBX_EINVAL, "a folder cannot go under itself, nor deeper than %d",
                              CACHE_FOLDER_DEPTH_MAX);
    Mbx__CacheFolder *f;
    int err = visible_folder(t, id, &f);
    if (err)
      return err;
    id = mbxc__ct_resolve(t, f->view->parent_id);
  }
  *depth_r = d;
  return 0;
}

int mbxc__ct_create_local_folder(struct mbxc__ct *t, const char *name, uint64_t parent,
                                 Mbx__FolderClass cls, Mbx__CacheFolder **rec_r)
{
  Mbx__CacheFolder *rec = mbx_arena_pbnew(&t->a, &mbx__cache_folder__descriptor);
  Mbx__Folder *f = mbx_arena_pbnew(&t->a, &mbx__folder__descriptor);
  Mbx__CacheOp *op = mbx_arena_pbnew(&t->a, &mbx__cache_op__descriptor);
  Mbx__CacheOpCreateFolder *cf = mbx_arena_pbnew(&t->a, &mbx__cache_op_create_folder__descriptor);
  if (!rec || !f || !op || !cf || !(f->name = mbx_arena_strdup(&t->a, name)))
    return MBX_ENOMEM;
  int err = mbxc__ct_new_local_id(t, &f->id);
  if (err)
    return err;
  f->has_parent_id = f->has_folder_class = f->has_well_known = true;
  f->has_item_count = f->has_unread_count = f->has_size_bytes = true;
  f->parent_id = parent;
  f->folder_class = cls;
  rec->view = f;
  if ((err = mbxc__ct_folder_put(t, rec)))
    return err;
  cf->name = f->name;
  cf->has_parent_id = cf->has_folder_class = true;
  cf->parent_id = parent;
  cf->folder_class = cls;
  op->id = f->id;
  op->op_case = MBX__CACHE_OP__OP_CREATE_FOLDER;
  op->create_folder = cf;
  if ((err = mbxc__ct_queue_add(t, op)))
    return err;
  if (rec_r)
    *rec_r = rec;
  return 0;
}

int mbxc_cache_create_folder(mbxc_cache *c, const char *name, uint64_t parent_id,
                             Mbx__FolderClass folder_class, Mbx__FolderResp **resp_r)
{
  if (!mbxc__folder_name_ok(name))
    return mbxc__cache_fail(MBX_EINVAL, "a folder name is 1 to 255 bytes without '/' or "
                                        "control characters");
  if ((int)folder_class < 0 || folder_class > MBX__FOLDER_CLASS__FOLDER_NOTES)
    return mbxc__cache_fail(MBX_EINVAL, "unknown folder class");
  struct mbxc__ct t;
  int err = mbxc__ct_begin(c, true, &t);
  if (err)
    return err;
  Mbx__CacheFolder *p = NULL, *other, *rec = NULL;
  int depth = 0;
  uint64_t parent = 0;
  if (parent_id && !(err = visible_folder(&t, parent_id, &p)))
    parent = p->view->id;
  if (!err)
    err = folder_depth(&t, parent, 0, &depth);
  if (!err && depth >= CACHE_FOLDER_DEPTH_MAX)
    err = mbxc__cache_fail(MBX_EINVAL, "folders nest at most %d deep", CACHE_FOLDER_DEPTH_MAX);
  if (!err) {
    int e = mbxc__ct_folder_child(&t, parent, name, &other);
    if (e == 0)
      err = mbxc__cache_fail(MBX_EEXIST, "a folder named \"%.100s\" is already there", name);
    else if (e != MBX_ENOTFOUND)
      err = e;
  }
  if (!err)
    err = mbxc__ct_create_local_folder(&t, name, parent, folder_class, &rec);
  if (!err)
    err = folder_result(&t, rec->view->id, resp_r);
  return finish(&t, err);
}

int mbxc_cache_update_folder(mbxc_cache *c, uint64_t folder_id, const char *name, bool move,
                             uint64_t parent_id, Mbx__FolderResp **resp_r)
{
  if (name && !mbxc__folder_name_ok(name))
    return mbxc__cache_fail(MBX_EINVAL, "a folder name is 1 to 255 bytes without '/' or "
                                        "control characters");
  struct mbxc__ct t;
  int err = mbxc__ct_begin(c, true, &t);
  if (err)
    return err;
  Mbx__CacheFolder *rec, *p, *other;
  Mbx__CacheOp *op = mbx_arena_pbnew(&t.a, &mbx__cache_op__descriptor);
  Mbx__CacheOpUpdateFolder *uf = mbx_arena_pbnew(&t.a, &mbx__cache_op_update_folder__descriptor);
  uint64_t id = 0, parent = 0;
  int depth;
  if (!op || !uf)
    err = MBX_ENOMEM;
  if (!err && !(err = visible_folder(&t, folder_id, &rec))) {
    id = rec->view->id;
    if (rec->view->well_known != MBX__WELL_KNOWN__WK_NONE || rec->placeholder)
      err = mbxc__cache_fail(MBX_EPERM, "well-known folders cannot be renamed or moved");
  }
  parent = err ? 0 : mbxc__ct_resolve(&t, rec->view->parent_id);
  if (!err && move) {
    parent = 0;
    if (parent_id && !(err = visible_folder(&t, parent_id, &p)))
      parent = p->view->id;
    if (!err && !(err = folder_depth(&t, parent, id, &depth)) && depth >= CACHE_FOLDER_DEPTH_MAX)
      err = mbxc__cache_fail(MBX_EINVAL, "folders nest at most %d deep", CACHE_FOLDER_DEPTH_MAX);
  }
  if (!err) {
    int e = mbxc__ct_folder_child(&t, parent, name ? name : rec->view->name, &other);
    if (e == 0 && other->view->id != id)
      err = mbxc__cache_fail(MBX_EEXIST, "a folder named \"%.100s\" is already there",
                             name ? name : rec->view->name);
    else if (e && e != MBX_ENOTFOUND)
      err = e;
  }
  if (!err && !rec->srv && !mbxc_cache_is_local_id(id)) {
    rec->srv = MBXC__DUP(&t, rec->view);
    err = rec->srv ? mbxc__ct_folder_put(&t, rec) : MBX_ENOMEM;
  }
  if (!err) {
    uf->name = (char *)name;
    uf->has_move = uf->move = move;
    uf->has_parent_id = move;
    uf->parent_id = parent;
    op->id = id;
    op->op_case = MBX__CACHE_OP__OP_UPDATE_FOLDER;
    op->update_folder = uf;
    err = mbxc__ct_queue_add(&t, op);
  }
  if (!err)
    err = mbxc__ct_folder_rebase(&t, id);
  if (!err)
    err = folder_result(&t, id, resp_r);
  return finish(&t, err);
}

/* Whether folder f is under (or is) root, walking up at most the depth limit. */
static bool under(struct mbxc__ct *t, Mbx__CacheFolder **all, size_t n, uint64_t f, uint64_t root)
{
  for (int d = 0; f && d <= CACHE_FOLDER_DEPTH_MAX; d++) {
    if (f == root)
      return true;
    uint64_t next = 0;
    for (size_t i = 0; i < n; i++)
      if (all[i]->view->id == f) {
        next = mbxc__ct_resolve(t, all[i]->view->parent_id);
        break;
      }
    f = next;
  }
  return false;
}

/* The items of one folder leave the cache with it; an item moved here by a queued
 * move still exists on the server elsewhere, so it is deleted there too. */
static int drop_folder_items(struct mbxc__ct *t, uint64_t folder)
{
  uint64_t *ids;
  size_t n;
  int err = mbxc__ct_folder_items(t, folder, &ids, &n);
  for (size_t i = 0; !err && i < n; i++) {
    Mbx__CacheItem *rec;
    if ((err = mbxc__ct_item_get(t, ids[i], &rec)))
      break;
    bool elsewhere = rec->srv && mbxc__ct_resolve(t, rec->srv->folder_id) != folder;
    if (elsewhere) {
      Mbx__CacheOp *op = mbx_arena_pbnew(&t->a, &mbx__cache_op__descriptor);
      Mbx__CacheOpDelete *d = mbx_arena_pbnew(&t->a, &mbx__cache_op_delete__descriptor);
      if (!op || !d)
        return MBX_ENOMEM;
      d->has_hard = d->hard = true;
      op->id = ids[i];
      op->op_case = MBX__CACHE_OP__OP_DELETE;
      op->delete_ = d;
      if (!(err = mbxc__ct_queue_add(t, op)))
        err = mbxc__ct_item_rebase(t, ids[i]);
    } else if (!(err = mbxc__ct_queue_drop_of(t, ids[i]))) {
      err = mbxc__ct_item_del(t, rec);
    }
  }
  return err;
}

int mbxc_cache_delete_folder(mbxc_cache *c, uint64_t folder_id)
{
  struct mbxc__ct t;
  int err = mbxc__ct_begin(c, true, &t);
  if (err)
    return err;
  Mbx__CacheFolder *rec, **all;
  size_t n;
  uint64_t root = 0;
  if (!(err = visible_folder(&t, folder_id, &rec))) {
    root = rec->view->id;
    if (rec->view->well_known != MBX__WELL_KNOWN__WK_NONE || rec->placeholder)
      err = mbxc__cache_fail(MBX_EPERM, "well-known folders cannot be deleted");
  }
  if (!err)
    err = mbxc__ct_folder_all(&t, &all, &n);
  for (size_t i = 0; !err && i < n; i++) {
    Mbx__CacheFolder *f = all[i];
    uint64_t id = f->view->id;
    if (f->hidden || !under(&t, all, n, id, root))
      continue;
    if ((err = drop_folder_items(&t, id)))
      break;
    if (mbxc_cache_is_local_id(id)) {
      /* never reached the server */
      if (!(err = mbxc__ct_queue_drop_of(&t, id)))
        err = mbxc__ct_folder_del(&t, id);
      continue;
    }
    /* the server deletes the subfolders with the folder: only the root is queued */
    if ((err = mbxc__ct_queue_drop_of(&t, id)))
      break;
    if (id == root) {
      Mbx__CacheOp *op = mbx_arena_pbnew(&t.a, &mbx__cache_op__descriptor);
      Mbx__CacheOpDeleteFolder *df =
          mbx_arena_pbnew(&t.a, &mbx__cache_op_delete_folder__descriptor);
      if (!op || !df) {
        err = MBX_ENOMEM;
        break;
      }
      op->id = id;
      op->op_case = MBX__CACHE_OP__OP_DELETE_FOLDER;
      op->delete_folder = df;
      if ((err = mbxc__ct_queue_add(&t, op)))
        break;
    }
    /* re-read: drop_folder_items changed its counts */
    Mbx__CacheFolder *cur;
    if ((err = mbxc__ct_folder_get(&t, id, &cur)))
      break;
    if (!cur->srv && !(cur->srv = MBXC__DUP(&t, cur->view))) {
      err = MBX_ENOMEM;
      break;
    }
    cur->has_hidden = cur->hidden = true;
    err = mbxc__ct_folder_put(&t, cur);
  }
  return finish(&t, err);
}

/* ======================================================================== */
/* settings                                                                 */
/* ======================================================================== */

static int copy_out(const char *v, size_t n, char *buf, size_t len)
{
  if (n + 1 > len)
    return mbxc__cache_fail(MBX_ELIMIT, "setting value too long for the buffer");
  memcpy(buf, v, n);
  buf[n] = 0;
  return 0;
}

int mbxc_cache_setting_get(mbxc_cache *c, const char *name, char *buf, size_t len)
{
  struct mbxc__ct t;
  int err = mbxc__ct_begin(c, false, &t);
  if (err)
    return err;
  char tmp[32];
  if (strcmp(name, "push_delay_s") == 0) {
    snprintf(tmp, sizeof(tmp), "%" PRIu64,
             mbxc__ct_meta_u64(&t, "push_delay_s", MBXC_CACHE_DEFAULT_PUSH_DELAY_S));
    err = copy_out(tmp, strlen(tmp), buf, len);
  } else if (strcmp(name, "bodies") == 0) {
    const char *v = mbxc__ct_meta_u64(&t, "bodies_all", 0) ? "all" : "ondemand";
    err = copy_out(v, strlen(v), buf, len);
  } else if (strcmp(name, "server") == 0 || strcmp(name, "ca") == 0) {
    MDB_val v;
    err = mbxc__ct_meta_get(&t, name, &v);
    if (!err)
      err = copy_out(v.mv_data, v.mv_size, buf, len);
  } else {
    err = mbxc__cache_fail(MBX_EINVAL, "no setting \"%.50s\"", name);
  }
  mbxc__ct_abort(&t);
  return err;
}

int mbxc_cache_setting_set(mbxc_cache *c, const char *name, const char *value)
{
  if (!name || !value)
    return mbxc__cache_fail(MBX_EINVAL, "no setting name or value");
  uint64_t num = 0;
  bool all = false;
  if (strcmp(name, "push_delay_s") == 0) {
    char *end;
    unsigned long long v = strtoull(value, &end, 10);
    if (!*value || *end || value[0] == '-' || v > MBXC_CACHE_PUSH_DELAY_MAX_S)
      return mbxc__cache_fail(MBX_EINVAL, "push_delay_s is 0 to %u seconds",
                              MBXC_CACHE_PUSH_DELAY_MAX_S);
    num = v;
  } else if (strcmp(name, "bodies") == 0) {
    if (strcmp(value, "all") != 0 && strcmp(value, "ondemand") != 0)
      return mbxc__cache_fail(MBX_EINVAL, "bodies is \"ondemand\" or \"all\"");
    all = strcmp(value, "all") == 0;
  } else if (strcmp(name, "server") == 0 || strcmp(name, "ca") == 0) {
    if (!*value || strlen(value) > 4000)
      return mbxc__cache_fail(MBX_EINVAL, "%s: 1 to 4000 bytes", name);
  } else {
    return mbxc__cache_fail(MBX_EINVAL, "no setting \"%.50s\"", name);
  }
  struct mbxc__ct t;
  int err = mbxc__ct_begin(c, true, &t);
  if (err)
    return err;
  if (strcmp(name, "push_delay_s") == 0)
    err = mbxc__ct_meta_put_u64(&t, "push_delay_s", num);
  else if (strcmp(name, "bodies") == 0)
    err = mbxc__ct_meta_put_u64(&t, "bodies_all", all);
  else
    err = mbxc__ct_meta_put(&t, name, value, strlen(value));
  return finish(&t, err);
}

/* ======================================================================== */
/* status                                                                   */
/* ======================================================================== */

/* When a change the server refused is tried again: 30 s, doubling, at most 1 h. */
static int64_t retry_at(const Mbx__CacheOp *op)
{
  uint32_t a = op->attempts > 8 ? 8 : op->attempts;
  int64_t wait_s = (int64_t)30 << (a ? a - 1 : 0);
  if (wait_s > 3600)
    wait_s = 3600;
  return op->last_attempt_us + wait_s * 1000000;
}

int mbxc_cache_queue_info(mbxc_cache *c, struct mbxc_cache_queue_info *qi_r)
{
  struct mbxc__ct t;
  int err = mbxc__ct_begin(c, false, &t);
  if (err)
    return err;
  struct mbxc_cache_queue_info qi = { 0 };
  MDB_cursor *cur;
  int rc = mdb_cursor_open(t.txn, c->dbi[CDB_QUEUE], &cur);
  if (rc)
    err = mbxc__cache_mdb_err(rc, "queue cursor");
  MDB_val k, d;
  for (rc = err ? MDB_NOTFOUND : mdb_cursor_get(cur, &k, &d, MDB_FIRST); rc == 0;
       rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
    /* decoded one at a time into a scratch arena: the queue may be long */
    struct mbx_arena a;
    mbx_arena_init(&a, 0);
    Mbx__CacheOp *op = mbx__cache_op__unpack(&a.pb, d.mv_size, d.mv_data);
    if (op) {
      qi.queued++;
      qi.urgent += op->urgent;
      if (op->attempts) {
        qi.failing++;
        int64_t at = retry_at(op);
        if (!qi.next_retry_us || at < qi.next_retry_us)
          qi.next_retry_us = at;
      } else if (!qi.oldest_new_us || op->queued_us < qi.oldest_new_us) {
        qi.oldest_new_us = op->queued_us ? op->queued_us : 1;
      }
    }
    mbx_arena_reset(&a);
  }
  if (!err)
    mdb_cursor_close(cur);
  mbxc__ct_abort(&t);
  if (!err)
    *qi_r = qi;
  return err;
}

/* Folder of the item (or the folder itself) a queued change is about. */
static uint64_t op_folder(struct mbxc__ct *t, const Mbx__CacheOp *op)
{
  switch (op->op_case) {
  case MBX__CACHE_OP__OP_CREATE_FOLDER:
  case MBX__CACHE_OP__OP_UPDATE_FOLDER:
  case MBX__CACHE_OP__OP_DELETE_FOLDER:
    return mbxc__ct_resolve(t, op->id);
  default: {
    Mbx__CacheItem *rec;
    if (mbxc__ct_item_get(t, mbxc__ct_resolve(t, op->id), &rec))
      return 0;
    return mbxc__ct_resolve(t, rec->view->folder_id);
  }
  }
}

static int status_folders(struct mbxc__ct *t, Mbx__CacheStatus *st, Mbx__CacheOp **ops, size_t nops)
{
  Mbx__CacheFolder **all;
  size_t n;
  int err = mbxc__ct_folder_all(t, &all, &n);
  if (err)
    return err;
  Mbx__FoldersResp fr = MBX__FOLDERS_RESP__INIT;
  fr.folders = mbx_arena_alloc(&t->a, (n + 1) * sizeof(*fr.folders));
  st->folders = mbx_arena_alloc(&t->a, (n + 1) * sizeof(*st->folders));
  uint64_t *ofold = mbx_arena_alloc(&t->a, (nops + 1) * sizeof(*ofold));
  if (!fr.folders || !st->folders || !ofold)
    return MBX_ENOMEM;
  for (size_t i = 0; i < n; i++)
    if (!all[i]->hidden)
      fr.folders[fr.n_folders++] = all[i]->view;
  for (size_t j = 0; j < nops; j++)
    ofold[j] = op_folder(t, ops[j]);
  for (size_t i = 0; i < fr.n_folders; i++) {
    const Mbx__Folder *f = fr.folders[i];
    Mbx__CacheFolderStatus *fs = mbx_arena_pbnew(&t->a, &mbx__cache_folder_status__descriptor);
    char path[1024];
    if (!fs)
      return MBX_ENOMEM;
    if (mbxc_folder_path(&fr, f, path, sizeof(path)) < 0)
      snprintf(path, sizeof(path), "%s", f->name);
    fs->has_id = fs->has_item_count = fs->has_unread_count = fs->has_last_sync_us = true;
    fs->has_queued = true;
    fs->id = f->id;
    fs->path = mbx_arena_strdup(&t->a, path);
    fs->item_count = f->item_count;
    fs->unread_count = f->unread_count;
    fs->has_local_only = fs->local_only = mbxc_cache_is_local_id(f->id);
    Mbx__CacheFolderState *fst;
    if (mbxc__ct_fstate_get(t, f->id, &fst) == 0) {
      fs->last_sync_us = fst->last_sync_us;
      if (fst->last_error && *fst->last_error)
        fs->last_error = fst->last_error;
    }
    for (size_t j = 0; j < nops; j++)
      fs->queued += ofold[j] == f->id;
    st->folders[st->n_folders++] = fs;
  }
  return 0;
}

static int status_conflicts(struct mbxc__ct *t, Mbx__CacheStatus *st)
{
  MDB_stat ms;
  int rc = mdb_stat(t->txn, t->c->dbi[CDB_CONFLICTS], &ms);
  if (rc)
    return mbxc__cache_mdb_err(rc, "conflicts stat");
  st->has_conflicts = true;
  st->conflicts = ms.ms_entries;
  st->recent_conflicts = mbx_arena_alloc(&t->a, CACHE_STATUS_CONFLICTS * sizeof(void *));
  if (!st->recent_conflicts)
    return MBX_ENOMEM;
  MDB_cursor *cur;
  if ((rc = mdb_cursor_open(t->txn, t->c->dbi[CDB_CONFLICTS], &cur)))
    return mbxc__cache_mdb_err(rc, "conflicts cursor");
  MDB_val k, d;
  for (rc = mdb_cursor_get(cur, &k, &d, MDB_LAST);
       rc == 0 && st->n_recent_conflicts < CACHE_STATUS_CONFLICTS;
       rc = mdb_cursor_get(cur, &k, &d, MDB_PREV)) {
    Mbx__CacheConflict *cf = mbx__cache_conflict__unpack(&t->a.pb, d.mv_size, d.mv_data);
    if (cf)
      st->recent_conflicts[st->n_recent_conflicts++] = cf;
  }
  mdb_cursor_close(cur);
  return 0;
}

int mbxc_cache_status(mbxc_cache *c, bool with_folders, Mbx__CacheStatus **st_r)
{
  struct mbxc__ct t;
  int err = mbxc__ct_begin(c, false, &t);
  if (err)
    return err;
  Mbx__CacheStatus st = MBX__CACHE_STATUS__INIT;
  Mbx__CacheOp **ops = NULL;
  size_t nops = 0;
  st.dir = c->dir;
  st.user = c->user;
  const char *slash = strrchr(c->dir, '/');
  st.profile = (char *)(slash ? slash + 1 : c->dir);
  st.server = mbxc__ct_meta_str(&t, "server");
  st.has_queued = st.has_queued_urgent = st.has_queued_failing = true;
  st.has_last_hierarchy_sync_us = st.has_last_pass_us = st.has_push_delay_s = true;
  st.last_hierarchy_sync_us = (int64_t)mbxc__ct_meta_u64(&t, "hier_last_sync_us", 0);
  st.last_pass_us = (int64_t)mbxc__ct_meta_u64(&t, "last_pass_us", 0);
  st.last_pass_error = mbxc__ct_meta_str(&t, "last_pass_error");
  st.push_delay_s =
      (uint32_t)mbxc__ct_meta_u64(&t, "push_delay_s", MBXC_CACHE_DEFAULT_PUSH_DELAY_S);
  st.bodies = mbxc__ct_meta_u64(&t, "bodies_all", 0) ? "all" : "ondemand";
  err = mbxc__ct_queue_all(&t, 0, &ops, &nops);
  if (!err) {
    st.failing = mbx_arena_alloc(&t.a, CACHE_STATUS_FAILING * sizeof(void *));
    if (!st.failing)
      err = MBX_ENOMEM;
  }
  for (size_t i = 0; !err && i < nops; i++) {
    st.queued++;
    st.queued_urgent += ops[i]->urgent;
    if (ops[i]->attempts) {
      st.queued_failing++;
      if (st.n_failing < CACHE_STATUS_FAILING)
        st.failing[st.n_failing++] = ops[i];
    }
  }
  if (!err)
    err = status_conflicts(&t, &st);
  if (!err && with_folders)
    err = status_folders(&t, &st, ops, nops);
  if (!err)
    err = export_to(&st.base, st_r);
  mbxc__ct_abort(&t);
  return err;
}

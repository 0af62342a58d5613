/* cache_apply.c — server changes into the cache, and the conflict rules
 * (docs/cached-mode.md has the table). Everything here runs inside one cache write
 * transaction and is deterministic: the same cache and the same server change give
 * the same result. Where a rule would lose what the user did here, the losing
 * version is kept as a new item in "Sync Issues/Conflicts" with a message there
 * saying what happened. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "buf.h"
#include "cache_int.h"
#include "clock.h"
#include "kinds.h"

#define SYNC_ISSUES "Sync Issues"
#define CONFLICTS "Conflicts"
#define APPLY_DEPTH_MAX 64

/* ======================================================================== */
/* helpers                                                                  */
/* ======================================================================== */

static const char *title_of(const Mbx__Item *it)
{
  const char *s = NULL;
  if (it->message)
    s = it->message->subject;
  else if (it->event)
    s = it->event->subject;
  else if (it->contact)
    s = it->contact->display_name;
  else if (it->task)
    s = it->task->subject;
  else if (it->note)
    s = it->note->subject;
  return s && *s ? s : "(no subject)";
}

/* The folder a rule moves things into must exist here and be visible. */
static bool folder_usable(struct mbxc__ct *t, uint64_t id)
{
  if (id && id == t->known_folder)
    return true;
  Mbx__CacheFolder *f;
  return mbxc__ct_folder_get(t, mbxc__ct_resolve(t, id), &f) == 0 && !f->hidden;
}

static bool has_op(Mbx__CacheOp **ops, size_t n, Mbx__CacheOp__OpCase kind)
{
  for (size_t i = 0; i < n; i++)
    if (ops[i]->op_case == kind)
      return true;
  return false;
}

static const char *flag_names(uint32_t f, char *buf, size_t len)
{
  snprintf(buf, len, "%s%s%s%s", f & 1 ? "seen " : "", f & 2 ? "flagged " : "",
           f & 4 ? "answered " : "", f & 8 ? "draft " : "");
  size_t n = strlen(buf);
  if (n)
    buf[n - 1] = 0;
  else
    snprintf(buf, len, "none");
  return buf;
}

/* ======================================================================== */
/* Sync Issues/Conflicts                                                     */
/* ======================================================================== */

static int child_or_create(struct mbxc__ct *t, uint64_t parent, const char *name,
                           Mbx__FolderClass cls, uint64_t *id_r)
{
  Mbx__CacheFolder *f;
  int err = mbxc__ct_folder_child(t, parent, name, &f);
  if (err == MBX_ENOTFOUND)
    err = mbxc__ct_create_local_folder(t, name, parent, cls, &f);
  if (!err)
    *id_r = f->view->id;
  return err;
}

int mbxc__conflict_folder(struct mbxc__ct *t, Mbx__FolderClass cls, uint64_t *id_r)
{
  static const char *const sub[] = { NULL, "Calendar", "Contacts", "Tasks", "Notes" };
  uint64_t si, cf;
  int err = child_or_create(t, 0, SYNC_ISSUES, MBX__FOLDER_CLASS__FOLDER_MAIL, &si);
  if (!err)
    err = child_or_create(t, si, CONFLICTS, MBX__FOLDER_CLASS__FOLDER_MAIL, &cf);
  if (err)
    return err;
  if (cls == MBX__FOLDER_CLASS__FOLDER_MAIL || (int)cls < 0 || cls > MBX__FOLDER_CLASS__FOLDER_NOTES) {
    *id_r = cf;
    return 0;
  }
  return child_or_create(t, cf, sub[cls], cls, id_r);
}

/* "Sat, 21 Nov 2026 10:00:00 +0000" */
static void rfc_date(char *buf, size_t len)
{
  time_t now = (time_t)(mbx_now_us() / 1000000);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(buf, len, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

/* One header value: no CR/LF (they would start a new header). */
static int put_header(struct mbx_buf *b, const char *name, const char *v)
{
  if (!v || !*v)
    return 0;
  int err = mbx_buf_append(b, name, strlen(name));
  if (!err)
    err = mbx_buf_append(b, ": ", 2);
  for (const char *p = v; !err && *p; p++) {
    char ch = (*p == '\r' || *p == '\n') ? ' ' : *p;
    err = mbx_buf_append(b, &ch, 1);
  }
  return err ? err : mbx_buf_append(b, "\r\n", 2);
}

static int put_text(struct mbx_buf *b, const char *text)
{
  int err = 0;
  for (const char *p = text; !err && *p; p++)
    err = *p == '\n' ? mbx_buf_append(b, "\r\n", 2) : mbx_buf_append(b, p, 1);
  return err;
}

/* A small text/plain message (into the transaction's arena). */
static int make_message(struct mbxc__ct *t, const char *from, const char *to,
                        const char *subject, const char *date, const char *msgid,
                        const char *text, uint8_t **msg_r, size_t *len_r)
{
  struct mbx_buf b;
  mbx_buf_init(&b, (size_t)16 << 20);
  char now[64];
  if (!date) {
    rfc_date(now, sizeof(now));
    date = now;
  }
  int err = put_header(&b, "From", from);
  if (!err)
    err = put_header(&b, "To", to);
  if (!err)
    err = put_header(&b, "Subject", subject);
  if (!err)
    err = put_header(&b, "Date", date);
  if (!err)
    err = put_header(&b, "Message-ID", msgid);
  if (!err)
    err = put_text(&b, "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n");
  if (!err)
    err = put_text(&b, text);
  if (!err)
    err = mbx_buf_append(&b, "\r\n", 2);
  if (!err && !(*msg_r = mbx_arena_memdup(&t->a, b.data, b.len)))
    err = MBX_ENOMEM;
  if (!err)
    *len_r = b.len;
  mbx_buf_free(&b);
  return err;
}

int mbxc__conflict_note(struct mbxc__ct *t, const char *subject, const char *text)
{
  uint64_t folder;
  int err = mbxc__conflict_folder(t, MBX__FOLDER_CLASS__FOLDER_MAIL, &folder);
  if (err)
    return err;
  char msgid[96];
  snprintf(msgid, sizeof(msgid), "<conflict-%" PRId64 ".%u@mbx-sync.invalid>", mbx_now_us(),
           t->conflicts);
  uint8_t *msg;
  size_t len;
  if ((err = make_message(t, "mbx sync <sync@mbx-sync.invalid>", t->c->user, subject, NULL, msgid,
                          text, &msg, &len)))
    return err;
  Mbx__Item it = MBX__ITEM__INIT;
  Mbx__MessageSummary sum = MBX__MESSAGE_SUMMARY__INIT;
  it.has_kind = it.has_received_us = it.has_size = true;
  it.kind = MBX__ITEM_KIND__ITEM_MESSAGE;
  it.received_us = mbx_now_us();
  it.size = len;
  sum.subject = (char *)subject;
  sum.from = "mbx sync <sync@mbx-sync.invalid>";
  sum.message_id = msgid;
  sum.has_size = true;
  sum.size = len;
  it.message = &sum;
  return mbxc__ct_create_local_item(t, folder, &it, msg, len, NULL);
}

/* A message standing in for one whose body this cache never fetched. */
static int stand_in_body(struct mbxc__ct *t, const Mbx__Item *v, uint8_t **msg_r, size_t *len_r)
{
  const Mbx__MessageSummary *s = v->message;
  char to[1024] = "";
  for (size_t i = 0; s && i < s->n_to; i++)
    snprintf(to + strlen(to), sizeof(to) - strlen(to), "%s%s", i ? ", " : "", s->to[i]);
  return make_message(t, s ? s->from : NULL, to, s ? s->subject : NULL, s ? s->date : NULL,
                      s ? s->message_id : NULL,
                      "[mbx: the body of this message was not in the cache when the server "
                      "deleted it; the headers above are what was kept.]\n",
                      msg_r, len_r);
}

int mbxc__conflict_keep_copy(struct mbxc__ct *t, const Mbx__CacheItem *rec, const char *why,
                             uint64_t *copy_id_r)
{
  const Mbx__Item *v = rec->view;
  uint64_t folder;
  int err = mbxc__conflict_folder(t, mbx_kind_folder_class(v->kind), &folder);
  if (err)
    return err;
  uint8_t *body = NULL;
  size_t len = 0;
  if (v->kind == MBX__ITEM_KIND__ITEM_MESSAGE) {
    MDB_val b;
    err = mbxc__ct_body_get(t, v->id, &b);
    if (err == 0) {
      if (!(body = mbx_arena_memdup(&t->a, b.mv_data, b.mv_size ? b.mv_size : 1)))
        return MBX_ENOMEM;
      len = b.mv_size;
    } else if (err != MBX_ENOTFOUND || (err = stand_in_body(t, v, &body, &len))) {
      return err;
    }
  }
  Mbx__CacheItem *copy;
  if ((err = mbxc__ct_create_local_item(t, folder, v, body, len, &copy)))
    return err;
  char text[1200], fl[64];
  snprintf(text, sizeof(text),
           "%s\n\nItem: %s (id %" PRIu64 ")\nKept as: item %" PRIu64
           " in Sync Issues/Conflicts\nFlags here: %s\n",
           why, title_of(v), v->id, copy->view->id, flag_names(v->flags, fl, sizeof(fl)));
  char subject[300];
  snprintf(subject, sizeof(subject), "Sync conflict: %.200s", title_of(v));
  if ((err = mbxc__conflict_note(t, subject, text)))
    return err;
  if (copy_id_r)
    *copy_id_r = copy->view->id;
  return 0;
}

/* ======================================================================== */
/* items                                                                    */
/* ======================================================================== */

static int insert_clean(struct mbxc__ct *t, const Mbx__CacheItem *old, const Mbx__Item *it)
{
  Mbx__CacheItem nrec = MBX__CACHE_ITEM__INIT;
  nrec.view = MBXC__DUP(t, it);
  if (!nrec.view)
    return MBX_ENOMEM;
  return mbxc__ct_item_put(t, old, &nrec);
}

/* The server changed an item that has queued changes: the rules. */
static int apply_item_dirty(struct mbxc__ct *t, Mbx__CacheItem *rec, const Mbx__Item *it)
{
  const Mbx__Item *srv = rec->srv ? rec->srv : rec->view;
  uint64_t srv_folder = mbxc__ct_resolve(t, srv->folder_id);
  if (it->folder_id == srv_folder && it->cn <= srv->cn)
    return 0; /* what we already based our changes on (our own push, echoed) */
  t->applied++;
  bool moved = it->folder_id != srv_folder;
  Mbx__CacheOp **ops;
  size_t n;
  int err = mbxc__ct_queue_of(t, it->id, &ops, &n);
  bool flags_too = has_op(ops, n, MBX__CACHE_OP__OP_SET_FLAGS);
  for (size_t i = 0; !err && i < n; i++) {
    Mbx__CacheOp *op = ops[i];
    if (op->op_case == MBX__CACHE_OP__OP_DELETE) {
      /* deleted here, changed on the server: the server's change wins, the item is back */
      if (!(err = mbxc__ct_queue_del(t, op)))
        err = mbxc__ct_conflict(t, "deleted-here-changed-on-server", it->id, 0,
                                "\"%s\" was deleted here but changed on the server: "
                                "the server's version is kept (restored here)", title_of(it));
    } else if (op->op_case == MBX__CACHE_OP__OP_MOVE && moved) {
      /* moved on both sides: the server's folder wins (nothing is lost: one item) */
      if (!(err = mbxc__ct_queue_del(t, op)))
        err = mbxc__ct_conflict(t, "moved-on-both-sides", it->id, 0,
                                "\"%s\" was moved here and on the server: it stays where the "
                                "server put it (folder %" PRIu64 ")", title_of(it), it->folder_id);
    }
  }
  if (!err && flags_too) {
    char a[64], b[64];
    err = mbxc__ct_conflict(t, "changed-on-both-sides", it->id, 0,
                            "\"%s\" changed here and on the server: flags merged (server: %s, "
                            "was %s; the changes made here are applied on top)",
                            title_of(it), flag_names(it->flags, a, sizeof(a)),
                            flag_names(srv->flags, b, sizeof(b)));
  }
  if (err)
    return err;
  rec->srv = MBXC__DUP(t, it);
  if (!rec->srv)
    return MBX_ENOMEM;
  if ((err = mbxc__ct_item_put(t, rec, rec)))
    return err;
  return mbxc__ct_item_rebase(t, it->id);
}

int mbxc__apply_item(struct mbxc__ct *t, const Mbx__Item *it)
{
  Mbx__CacheItem *rec;
  int err = mbxc__ct_item_get(t, it->id, &rec);
  if (err && err != MBX_ENOTFOUND)
    return err;
  bool here = folder_usable(t, it->folder_id);
  if (err == MBX_ENOTFOUND) {
    if (!here)
      return 0; /* its folder comes with a later sync */
    t->applied++;
    return insert_clean(t, NULL, it);
  }
  if (mbxc__ct_pending(t, it->id))
    return apply_item_dirty(t, rec, it);
  const Mbx__Item *v = rec->view;
  if (v->folder_id == it->folder_id && v->cn >= it->cn && v->cn)
    return 0; /* already this version (or a newer one) */
  t->applied++;
  if (!here)
    return mbxc__ct_item_del(t, rec); /* moved into a folder this cache does not show */
  return insert_clean(t, rec, it);
}

int mbxc__apply_item_left(struct mbxc__ct *t, uint64_t id, uint64_t folder_id)
{
  Mbx__CacheItem *rec;
  int err = mbxc__ct_item_get(t, id, &rec);
  if (err)
    return err == MBX_ENOTFOUND ? 0 : err;
  if (mbxc__ct_resolve(t, mbxc__ct_item_srv_folder(rec)) != folder_id)
    return 0; /* the cache already knows it elsewhere */
  t->applied++;
  if (mbxc__ct_pending(t, id))
    return 1; /* deleted or moved? the caller asks the server */
  return mbxc__ct_item_del(t, rec);
}

int mbxc__apply_item_gone(struct mbxc__ct *t, uint64_t id)
{
  Mbx__CacheItem *rec;
  Mbx__CacheOp **ops;
  size_t n;
  int err = mbxc__ct_item_queued(t, id, &rec, &ops, &n);
  if (err)
    return err == MBX_ENOTFOUND ? 0 : err;
  if (n && !has_op(ops, n, MBX__CACHE_OP__OP_DELETE) &&
      !has_op(ops, n, MBX__CACHE_OP__OP_APPEND) && !has_op(ops, n, MBX__CACHE_OP__OP_CREATE_ITEM)) {
    /* changed here, deleted on the server: keep what was done here */
    uint64_t copy = 0;
    char why[400];
    snprintf(why, sizeof(why), "\"%s\" was changed here while it was deleted on the server. "
                               "The version from here is kept in Sync Issues/Conflicts.",
             title_of(rec->view));
    if ((err = mbxc__conflict_keep_copy(t, rec, why, &copy)) ||
        (err = mbxc__ct_conflict(t, "changed-here-deleted-on-server", id, copy,
                                 "\"%s\" changed here, deleted on the server: kept as item %" PRIu64
                                 " in Sync Issues/Conflicts", title_of(rec->view), copy)))
      return err;
  }
  if ((err = mbxc__ct_queue_drop_of(t, id)))
    return err;
  return mbxc__ct_item_del(t, rec);
}

int mbxc__apply_sweep(struct mbxc__ct *t, uint64_t folder_id, const uint64_t *seen, size_t n)
{
  uint64_t *ids;
  size_t ni;
  int err = mbxc__ct_folder_items(t, folder_id, &ids, &ni);
  for (size_t i = 0; !err && i < ni; i++) {
    if (mbxc_cache_is_local_id(ids[i]) || mbxc__ct_pending(t, ids[i]))
      continue; /* made here, or changed here: the queue decides */
    size_t lo = 0, hi = n;
    while (lo < hi) {
      size_t mid = lo + (hi - lo) / 2;
      if (seen[mid] < ids[i])
        lo = mid + 1;
      else
        hi = mid;
    }
    if (lo < n && seen[lo] == ids[i])
      continue;
    Mbx__CacheItem *rec;
    if (!(err = mbxc__ct_item_get(t, ids[i], &rec)))
      err = mbxc__ct_item_del(t, rec);
  }
  return err;
}

/* ======================================================================== */
/* folders                                                                  */
/* ======================================================================== */

static void copy_server_fields(Mbx__Folder *dst, const Mbx__Folder *f)
{
  dst->mailbox_id = f->mailbox_id;
  dst->has_folder_class = dst->has_well_known = dst->has_last_cn = dst->has_hcn = true;
  dst->has_created_hcn = true;
  dst->folder_class = f->folder_class;
  dst->well_known = f->well_known;
  dst->last_cn = f->last_cn;
  dst->hcn = f->hcn;
  dst->created_hcn = f->created_hcn;
}

/* The server's version of a folder, the cache's counts. */
static Mbx__Folder *server_view(struct mbxc__ct *t, const Mbx__Folder *f, const Mbx__Folder *old)
{
  Mbx__Folder *v = MBXC__DUP(t, f);
  if (!v)
    return NULL;
  v->has_item_count = v->has_unread_count = v->has_size_bytes = true;
  v->item_count = old ? old->item_count : 0;
  v->unread_count = old ? old->unread_count : 0;
  v->size_bytes = old ? old->size_bytes : 0;
  return v;
}

/* Folder root was deleted here but changed on the server: it comes back, with its
 * subfolders, and is downloaded again from scratch. */
int mbxc__apply_folder_restore(struct mbxc__ct *t, uint64_t root, const char *why)
{
  Mbx__CacheFolder **all;
  size_t n;
  int err = mbxc__ct_folder_all(t, &all, &n);
  if (err)
    return err;
  Mbx__CacheOp **ops;
  size_t nops;
  if ((err = mbxc__ct_queue_of(t, root, &ops, &nops)))
    return err;
  for (size_t i = 0; !err && i < nops; i++)
    if (ops[i]->op_case == MBX__CACHE_OP__OP_DELETE_FOLDER)
      err = mbxc__ct_queue_del(t, ops[i]);
  /* every hidden folder whose chain of hidden ancestors reaches root */
  for (size_t i = 0; !err && i < n; i++) {
    uint64_t f = all[i]->view->id;
    bool below = false;
    for (int d = 0; d <= APPLY_DEPTH_MAX && f; d++) {
      if (f == root) {
        below = true;
        break;
      }
      uint64_t next = 0;
      for (size_t j = 0; j < n; j++)
        if (all[j]->view->id == f && all[j]->hidden)
          next = all[j]->view->parent_id;
      f = next;
    }
    if (!below || !all[i]->hidden)
      continue;
    all[i]->hidden = false;
    if ((err = mbxc__ct_folder_put(t, all[i])) || (err = mbxc__ct_fstate_del(t, all[i]->view->id)))
      break;
    err = mbxc__ct_folder_rebase(t, all[i]->view->id);
  }
  if (!err)
    err = mbxc__ct_conflict(t, "deleted-here-changed-on-server", root, 0, "%s", why);
  return err;
}

/* The hidden folder whose queued deletion hides f (f itself or an ancestor), 0 if none. */
static uint64_t deleting_root(struct mbxc__ct *t, uint64_t f)
{
  for (int d = 0; d <= APPLY_DEPTH_MAX && f; d++) {
    Mbx__CacheFolder *rec;
    if (mbxc__ct_folder_get(t, f, &rec) || !rec->hidden)
      return 0;
    Mbx__CacheOp **ops;
    size_t n;
    if (mbxc__ct_queue_of(t, f, &ops, &n) == 0 && has_op(ops, n, MBX__CACHE_OP__OP_DELETE_FOLDER))
      return f;
    f = rec->view->parent_id;
  }
  return 0;
}

/* A well-known folder of the server: the placeholder made before the first sync
 * takes its id. */
static int adopt_placeholder(struct mbxc__ct *t, const Mbx__Folder *f)
{
  Mbx__CacheFolder *ph;
  int err = mbxc__ct_folder_wk(t, f->well_known, &ph);
  if (err)
    return err == MBX_ENOTFOUND ? 0 : err;
  if (!ph->placeholder || !mbxc_cache_is_local_id(ph->view->id))
    return 0;
  return mbxc__ct_folder_rekey(t, ph->view->id, f->id);
}

static int apply_folder_dirty(struct mbxc__ct *t, Mbx__CacheFolder *rec, const Mbx__Folder *f)
{
  const Mbx__Folder *srv = rec->srv ? rec->srv : rec->view;
  bool renamed = strcmp(f->name, srv->name) != 0;
  bool moved = f->parent_id != mbxc__ct_resolve(t, srv->parent_id);
  int err = 0;
  if ((renamed || moved) && rec->hidden) {
    uint64_t root = deleting_root(t, f->id);
    char why[400];
    snprintf(why, sizeof(why), "folder \"%s\" was deleted here but renamed or moved on the "
                               "server: it is kept (and downloaded again)", f->name);
    if (root && (err = mbxc__apply_folder_restore(t, root, why)))
      return err;
    if ((err = mbxc__ct_folder_get(t, f->id, &rec)))
      return err;
  }
  Mbx__CacheOp **ops;
  size_t n;
  if ((err = mbxc__ct_queue_of(t, f->id, &ops, &n)))
    return err;
  for (size_t i = 0; !err && i < n; i++) {
    Mbx__CacheOpUpdateFolder *u = ops[i]->update_folder;
    if (ops[i]->op_case != MBX__CACHE_OP__OP_UPDATE_FOLDER)
      continue;
    bool changed = false;
    if (u->name && renamed) {
      /* renamed on both sides: the server's name wins */
      err = mbxc__ct_conflict(t, "renamed-on-both-sides", f->id, 0,
                              "folder renamed to \"%s\" here and to \"%s\" on the server: "
                              "the server's name is kept", u->name, f->name);
      u->name = NULL;
      changed = true;
    }
    if (!err && u->move && moved) {
      err = mbxc__ct_conflict(t, "moved-on-both-sides", f->id, 0,
                              "folder \"%s\" moved here and on the server: it stays where "
                              "the server put it", f->name);
      u->move = u->has_move = u->has_parent_id = false;
      changed = true;
    }
    if (err || !changed)
      continue;
    err = (!u->name && !u->move) ? mbxc__ct_queue_del(t, ops[i])
                                 : mbxc__ct_queue_update(t, ops[i], true);
  }
  if (err)
    return err;
  rec->srv = MBXC__DUP(t, f);
  if (!rec->srv)
    return MBX_ENOMEM;
  copy_server_fields(rec->view, f);
  if ((err = mbxc__ct_folder_put(t, rec)))
    return err;
  return mbxc__ct_folder_rebase(t, f->id);
}

int mbxc__apply_folder(struct mbxc__ct *t, const Mbx__Folder *f)
{
  Mbx__CacheFolder *rec;
  int err;
  if (f->well_known != MBX__WELL_KNOWN__WK_NONE && (err = adopt_placeholder(t, f)))
    return err;
  err = mbxc__ct_folder_get(t, f->id, &rec);
  if (err == MBX_ENOTFOUND) {
    Mbx__CacheFolder nrec = MBX__CACHE_FOLDER__INIT;
    if (!(nrec.view = server_view(t, f, NULL)))
      return MBX_ENOMEM;
    return mbxc__ct_folder_put(t, &nrec);
  }
  if (err)
    return err;
  if (rec->hidden || rec->srv || mbxc__ct_pending(t, f->id))
    return apply_folder_dirty(t, rec, f);
  Mbx__CacheFolder nrec = *rec;
  if (!(nrec.view = server_view(t, f, rec->view)))
    return MBX_ENOMEM;
  return mbxc__ct_folder_put(t, &nrec);
}

/* An item of a folder the server deleted. */
static int item_in_gone_folder(struct mbxc__ct *t, uint64_t id, uint64_t folder)
{
  Mbx__CacheItem *rec;
  Mbx__CacheOp **ops;
  size_t n;
  int err = mbxc__ct_item_queued(t, id, &rec, &ops, &n);
  if (err)
    return err == MBX_ENOTFOUND ? 0 : err;
  if (n == 0)
    return mbxc__ct_item_del(t, rec);
  for (size_t i = 0; i < n; i++) {
    Mbx__CacheOp *op = ops[i];
    uint64_t *target = op->op_case == MBX__CACHE_OP__OP_APPEND        ? &op->append->folder_id
                       : op->op_case == MBX__CACHE_OP__OP_CREATE_ITEM ? &op->create_item->folder_id
                                                                      : NULL;
    if (!target || mbxc__ct_resolve(t, *target) != folder)
      continue;
    /* made here in a folder the server deleted: it goes to Sync Issues/Conflicts */
    if ((err = mbxc__conflict_folder(t, mbx_kind_folder_class(rec->view->kind), target)) ||
        (err = mbxc__ct_queue_update(t, op, true)) ||
        (err = mbxc__ct_conflict(t, "created-here-in-folder-deleted-on-server", id, id,
                                 "\"%s\" was made here in a folder the server deleted: it is "
                                 "kept in Sync Issues/Conflicts", title_of(rec->view))))
      return err;
    return mbxc__ct_item_rebase(t, id);
  }
  if (rec->srv && mbxc__ct_resolve(t, rec->srv->folder_id) != folder) {
    /* moved here into the deleted folder: the move is dropped, it stays on the server
     * where it was */
    for (size_t i = 0; !err && i < n; i++)
      if (ops[i]->op_case == MBX__CACHE_OP__OP_MOVE &&
          mbxc__ct_resolve(t, ops[i]->move->folder_id) == folder)
        err = mbxc__ct_queue_del(t, ops[i]);
    if (!err)
      err = mbxc__ct_conflict(t, "moved-here-into-folder-deleted-on-server", id, 0,
                              "\"%s\" was moved here into a folder the server deleted: it "
                              "stays in its folder", title_of(rec->view));
    return err ? err : mbxc__ct_item_rebase(t, id);
  }
  return mbxc__apply_item_gone(t, id);
}

static int folder_gone(struct mbxc__ct *t, uint64_t id, int depth);

/* Subfolders of a folder the server deleted: the server's go with it; one made here
 * moves to the top level. */
static int children_of_gone(struct mbxc__ct *t, uint64_t id, int depth)
{
  Mbx__CacheFolder **all;
  size_t n;
  int err = mbxc__ct_folder_all(t, &all, &n);
  for (size_t i = 0; !err && i < n; i++) {
    Mbx__CacheFolder *f = all[i];
    uint64_t fid = f->view->id;
    if (mbxc__ct_resolve(t, f->view->parent_id) != id &&
        !(f->srv && mbxc__ct_resolve(t, f->srv->parent_id) == id))
      continue;
    if (!mbxc_cache_is_local_id(fid)) {
      err = folder_gone(t, fid, depth + 1);
      continue;
    }
    Mbx__CacheOp **ops;
    size_t nops;
    if ((err = mbxc__ct_queue_of(t, fid, &ops, &nops)))
      break;
    for (size_t j = 0; !err && j < nops; j++) {
      if (ops[j]->op_case == MBX__CACHE_OP__OP_CREATE_FOLDER &&
          mbxc__ct_resolve(t, ops[j]->create_folder->parent_id) == id) {
        ops[j]->create_folder->parent_id = 0;
        err = mbxc__ct_queue_update(t, ops[j], true);
      } else if (ops[j]->op_case == MBX__CACHE_OP__OP_UPDATE_FOLDER && ops[j]->update_folder->move &&
                 mbxc__ct_resolve(t, ops[j]->update_folder->parent_id) == id) {
        ops[j]->update_folder->parent_id = 0;
        err = mbxc__ct_queue_update(t, ops[j], true);
      }
    }
    if (!err)
      err = mbxc__ct_folder_rebase(t, fid);
    if (!err)
      err = mbxc__ct_conflict(t, "created-here-in-folder-deleted-on-server", fid, 0,
                              "folder \"%s\" was made here in a folder the server deleted: it "
                              "moves to the top level", f->view->name);
  }
  return err;
}

static int folder_gone(struct mbxc__ct *t, uint64_t id, int depth)
{
  Mbx__CacheFolder *rec;
  int err = mbxc__ct_folder_get(t, id, &rec);
  if (err)
    return err == MBX_ENOTFOUND ? 0 : err;
  if (depth > APPLY_DEPTH_MAX)
    return mbxc__cache_fail(MBX_ECORRUPT, "cache: folder %" PRIu64 " nests too deep", id);
  if ((err = children_of_gone(t, id, depth)))
    return err;
  uint64_t *ids;
  size_t n;
  if ((err = mbxc__ct_folder_items(t, id, &ids, &n)))
    return err;
  for (size_t i = 0; !err && i < n; i++)
    err = item_in_gone_folder(t, ids[i], id);
  /* items the server had here that this cache shows elsewhere (moved or deleted here) */
  Mbx__CacheOp **ops;
  size_t nops;
  if (!err)
    err = mbxc__ct_queue_all(t, 0, &ops, &nops);
  for (size_t i = 0; !err && i < nops; i++) {
    Mbx__CacheItem *it;
    Mbx__CacheOp__OpCase k = ops[i]->op_case;
    if (k == MBX__CACHE_OP__OP_CREATE_FOLDER || k == MBX__CACHE_OP__OP_UPDATE_FOLDER ||
        k == MBX__CACHE_OP__OP_DELETE_FOLDER)
      continue;
    uint64_t iid = mbxc__ct_resolve(t, ops[i]->id);
    if (mbxc__ct_item_get(t, iid, &it) || !it->srv ||
        mbxc__ct_resolve(t, it->srv->folder_id) != id)
      continue;
    err = mbxc__apply_item_gone(t, iid);
  }
  if (!err)
    err = mbxc__ct_queue_drop_of(t, id);
  if (!err)
    err = mbxc__ct_folder_del(t, id);
  return err;
}

int mbxc__apply_folder_gone(struct mbxc__ct *t, uint64_t id) { return folder_gone(t, id, 0); }

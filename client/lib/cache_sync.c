/* cache_sync.c — the two-way sync of a cached profile (docs/cached-mode.md).
 *
 * A pass: the hierarchy first (server changes in, then queued folder creations,
 * renames and moves out); then the folders, up to `threads` at a time, each on its
 * own blocking connection: server changes in (SyncReq pages from the folder's
 * token, applied with the conflict rules, token recorded in the same transaction),
 * then the queued changes of the items that belong to it out, in queue order, each
 * with its idempotency key and if_cn = the cn it was based on; last, queued folder
 * deletions (after the items, so that an item moved out of a folder before it was
 * deleted gets out). A rule that queues something new (a conflict copy) makes the
 * pass run one more round, at most three.
 *
 * Why threads with blocking connections rather than one libuv loop with four async
 * ones: a folder's sync is a strict sequence (page, apply, next page; push, reply,
 * next push that depends on it), which reads as straight-line code; the cache's
 * writes are LMDB transactions, which must not run on a loop thread anyway; and the
 * four connections never share anything but the cache, where LMDB serialises the
 * writers. The watch (cache_watch.c) keeps its libuv loop for the subscription and
 * runs passes off the loop. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "cache_int.h"
#include "cache_sync_int.h"
#include "client_int.h"
#include "clock.h"

#define SYNC_PAGES_MAX 100000u        /* pages of one folder in one pass */
#define SYNC_CONFLICT_RETRIES 3
#define SYNC_ROUNDS_MAX 3
#define SYNC_MAX_CHANGES_LIMIT 10000u
#define SYNC_WAVE_MAX 64u              /* changes pipelined at once on one connection */
#define SYNC_BODIES_MAX 1000000u
#define SYNC_IDLE_REOPEN_US (300 * 1000000ull) /* well under the node's idle_timeout_s */

/* ======================================================================== */
/* helpers                                                                  */
/* ======================================================================== */

bool mbxc__sync_conn_failure(int rc)
{
  switch (rc) {
  case MBX_ECONN:
  case MBX_ECLOSED:
  case MBX_ETIMEDOUT:
  case MBX_ETLS:
  case MBX_ENOTACTIVE:
  case MBX_ESHUTDOWN:
  case MBX_EPROTO:
  case MBX_EBUSY:
  case MBX_EAUTH:
  case MBX_ENOTAUTH:
  case MBX_EFRAME:
    return true;
  default:
    return false;
  }
}

static void *dup_into(struct mbx_arena *a, const ProtobufCMessage *m)
{
  size_t n = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = mbx_arena_alloc(a, n ? n : 1);
  if (!buf)
    return NULL;
  protobuf_c_message_pack(m, buf);
  return protobuf_c_message_unpack(m->descriptor, &a->pb, n, buf);
}

void mbxc__sync_emit(struct mbxc_cache_syncer *s, struct mbxc_cache_progress *p)
{
  if (!s->progress)
    return;
  if (!p->text)
    p->text = "";
  pthread_mutex_lock(&s->mu);
  s->progress(p, s->progress_arg);
  pthread_mutex_unlock(&s->mu);
}

static void on_conflict(void *arg, const char *text)
{
  struct mbxc_cache_progress p = { .event = MBXC_CACHE_EV_CONFLICT, .text = text };
  mbxc__sync_emit(arg, &p);
}

static int wbegin(struct mbxc_cache_syncer *s, struct mbxc__ct *t)
{
  int err = mbxc__ct_begin(s->c, true, t);
  t->on_conflict = on_conflict;
  t->on_conflict_arg = s;
  return err;
}

/* Commits (or aborts on err) and counts the conflicts the transaction resolved. */
static int wend(struct mbxc_cache_syncer *s, struct mbxc__ct *t, int err)
{
  uint32_t conflicts = t->conflicts;
  if (err) {
    mbxc__ct_abort(t);
    return err;
  }
  if ((err = mbxc__ct_commit(t)))
    return err;
  pthread_mutex_lock(&s->mu);
  s->sum.conflicts += conflicts;
  s->round_conflicts += conflicts;
  pthread_mutex_unlock(&s->mu);
  return 0;
}

static void count(struct mbxc_cache_syncer *s, uint64_t *field, uint64_t n)
{
  pthread_mutex_lock(&s->mu);
  *field += n;
  pthread_mutex_unlock(&s->mu);
}

/* One line for a failed call on conn. */
static const char *why(mbxc_conn *c, int rc)
{
  const char *m = c ? mbxc_last_error(c) : "";
  return m && *m ? m : mbx_strerror(rc);
}

/* ======================================================================== */
/* connections                                                              */
/* ======================================================================== */

/* The first reason of the pass why the server could not be used. */
static void conn_why(struct mbxc_cache_syncer *s, const char *msg)
{
  pthread_mutex_lock(&s->mu);
  if (!s->conn_msg[0])
    snprintf(s->conn_msg, sizeof(s->conn_msg), "%s", msg);
  pthread_mutex_unlock(&s->mu);
}

static int conn_get(struct mbxc_cache_syncer *s, unsigned i, mbxc_conn **c_r)
{
  if (s->conns[i]) {
    *c_r = s->conns[i];
    return 0;
  }
  mbxc_conn *c;
  const char *err = NULL;
  int rc = mbxc_open(&s->o, &c, &err);
  if (rc < 0) {
    conn_why(s, err ? err : mbx_strerror(rc));
    struct mbxc_cache_progress p = { .event = MBXC_CACHE_EV_DISCONNECTED, .status = rc,
                                     .text = err ? err : mbx_strerror(rc) };
    mbxc__sync_emit(s, &p);
    return rc == MBX_EINVAL ? rc : (rc == MBX_ETLS ? rc : MBX_ECONN);
  }
  Mbx__LoginResp *lr = NULL;
  rc = mbxc_login(c, MBX__ROLE__ROLE_USER, s->c->user, s->password, &lr);
  mbxc_free(&lr);
  if (rc < 0) {
    conn_why(s, why(c, rc));
    struct mbxc_cache_progress p = { .event = MBXC_CACHE_EV_DISCONNECTED, .status = rc,
                                     .text = why(c, rc) };
    mbxc__sync_emit(s, &p);
    mbxc_close(&c);
    return rc;
  }
  const Mbx__HelloResp *h = mbxc_server_info(c);
  if (i == 0 && h && h->has_max_message_bytes && h->max_message_bytes) {
    struct mbxc__ct t;
    if (mbxc__ct_begin(s->c, true, &t) == 0) {
      if (mbxc__ct_meta_u64(&t, "max_message_bytes", 0) != h->max_message_bytes &&
          mbxc__ct_meta_put_u64(&t, "max_message_bytes", h->max_message_bytes) == 0)
        mbxc__ct_commit(&t);
      else
        mbxc__ct_abort(&t);
    }
  }
  s->conns[i] = c;
  if (i == 0) {
    struct mbxc_cache_progress p = { .event = MBXC_CACHE_EV_CONNECTED, .text = mbxc_server_addr(c) };
    mbxc__sync_emit(s, &p);
  }
  *c_r = c;
  return 0;
}

static void conn_drop(struct mbxc_cache_syncer *s, unsigned i) { mbxc_close(&s->conns[i]); }


/* A write with the change's idempotency key. */
static int call_idem(mbxc_conn *c, Mbx__Request *req, const ProtobufCBinaryData *key,
                     Mbx__Response **resp_r)
{
  return mbxc_call_sync_idem(c, req, key->data, key->len, resp_r);
}

/* ======================================================================== */
/* marking a change the server refused                                      */
/* ======================================================================== */

static int mark_failed(struct mbxc_cache_syncer *s, uint64_t seq, int rc, const char *msg)
{
  struct mbxc__ct t;
  int err = wbegin(s, &t);
  if (err)
    return err;
  Mbx__CacheOp *op;
  char line[400];
  snprintf(line, sizeof(line), "%s (%s)", msg, mbx_strerror_name(rc));
  if (!(err = mbxc__ct_queue_get(&t, seq, &op))) {
    op->has_attempts = op->has_last_attempt_us = true;
    op->attempts++;
    op->last_attempt_us = mbx_now_us();
    op->last_error = line;
    err = mbxc__ct_queue_update(&t, op, false);
  } else if (err == MBX_ENOTFOUND) {
    err = 0;
  }
  count(s, &s->sum.failed, 1);
  return wend(s, &t, err);
}

/* ======================================================================== */
/* echoes                                                                   */
/* ======================================================================== */

#define SYNC_ECHO_MAX 10000u

/* Remembers that our push left item id at cn in folder (until the folder's next
 * complete download), so that a check before a folder deletion can tell our own
 * changes from someone else's. */
static int echo_add(struct mbxc__ct *t, uint64_t folder, const uint64_t *ids, const uint64_t *cns,
                    size_t n)
{
  Mbx__CacheFolderState *st, fresh = MBX__CACHE_FOLDER_STATE__INIT;
  if (mbxc__ct_fstate_get(t, folder, &st) != 0)
    st = &fresh;
  size_t keep = st->n_echo_ids + n > SYNC_ECHO_MAX ? SYNC_ECHO_MAX - st->n_echo_ids : n;
  if (st->n_echo_ids >= SYNC_ECHO_MAX)
    keep = 0;
  uint64_t *vi = mbx_arena_alloc(&t->a, (st->n_echo_ids + keep + 1) * sizeof(*vi));
  uint64_t *vc = mbx_arena_alloc(&t->a, (st->n_echo_ids + keep + 1) * sizeof(*vc));
  if (!vi || !vc)
    return MBX_ENOMEM;
  if (st->n_echo_ids) {
    memcpy(vi, st->echo_ids, st->n_echo_ids * sizeof(*vi));
    memcpy(vc, st->echo_cns, st->n_echo_ids * sizeof(*vc));
  }
  if (keep) {
    memcpy(vi + st->n_echo_ids, ids, keep * sizeof(*vi));
    memcpy(vc + st->n_echo_ids, cns, keep * sizeof(*vc));
  }
  st->echo_ids = vi;
  st->echo_cns = vc;
  st->n_echo_ids = st->n_echo_cns = st->n_echo_ids + keep;
  if (keep < n)
    st->has_echo_overflow = st->echo_overflow = true;
  return mbxc__ct_fstate_put(t, folder, st);
}

static bool is_echo(const Mbx__CacheFolderState *st, uint64_t id, uint64_t cn)
{
  for (size_t i = 0; i < st->n_echo_ids && i < st->n_echo_cns; i++)
    if (st->echo_ids[i] == id && st->echo_cns[i] == cn)
      return true;
  return false;
}

/* ======================================================================== */
/* hierarchy                                                                */
/* ======================================================================== */

static int sort_u64(const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* After a full hierarchy download: server folders the server no longer has. */
static int hier_sweep(struct mbxc__ct *t, const uint64_t *seen, size_t n)
{
  Mbx__CacheFolder **all;
  size_t na;
  int err = mbxc__ct_folder_all(t, &all, &na);
  for (size_t i = 0; !err && i < na; i++) {
    uint64_t id = all[i]->view->id;
    if (mbxc_cache_is_local_id(id) || (n && bsearch(&id, seen, n, sizeof(*seen), sort_u64)))
      continue;
    err = mbxc__apply_folder_gone(t, id);
  }
  return err;
}

static int hier_down(struct mbxc_cache_syncer *s, mbxc_conn *conn)
{
  struct mbxc__ct t;
  uint8_t *token = NULL;
  size_t tlen = 0;
  int err = mbxc__ct_begin(s->c, false, &t);
  if (err)
    return err;
  MDB_val v;
  if (mbxc__ct_meta_get(&t, "hier_token", &v) == 0 && v.mv_size &&
      (token = malloc(v.mv_size))) {
    memcpy(token, v.mv_data, v.mv_size);
    tlen = v.mv_size;
  }
  mbxc__ct_abort(&t);
  bool full = tlen == 0, retried = false;
  uint64_t *seen = NULL;
  size_t nseen = 0, cap = 0;
  for (uint32_t page = 0; page < SYNC_PAGES_MAX; page++) {
    Mbx__SyncFoldersResp *r;
    int rc = mbxc_sync_folders(conn, token, tlen, s->max_changes, &r);
    if (rc == MBX_ESTATE && !retried) {
      /* another database incarnation, or a history a failover discarded: start
       * over, and forget what it lacks */
      free(token);
      token = NULL;
      tlen = 0;
      full = retried = true;
      nseen = 0;
      continue;
    }
    if (rc < 0) {
      err = rc;
      break;
    }
    if (full && nseen + r->n_added + r->n_changed > cap) {
      cap = 2 * (nseen + r->n_added + r->n_changed) + 64;
      uint64_t *g = realloc(seen, cap * sizeof(*seen));
      if (!g) {
        mbxc_free(&r);
        err = MBX_ENOMEM;
        break;
      }
      seen = g;
    }
    bool more = r->has_more && r->more;
    if (!full && !r->n_added && !r->n_changed && !r->n_deleted && !more &&
        r->state.len == tlen && memcmp(r->state.data, token, tlen) == 0) {
      mbxc_free(&r);
      break; /* nothing new: no transaction, no fsync */
    }
    if ((err = wbegin(s, &t))) {
      mbxc_free(&r);
      break;
    }
    for (size_t i = 0; !err && i < r->n_added; i++)
      if (!(err = mbxc__apply_folder(&t, r->added[i])) && full)
        seen[nseen++] = r->added[i]->id;
    for (size_t i = 0; !err && i < r->n_changed; i++)
      if (!(err = mbxc__apply_folder(&t, r->changed[i])) && full)
        seen[nseen++] = r->changed[i]->id;
    for (size_t i = 0; !err && i < r->n_deleted; i++)
      err = mbxc__apply_folder_gone(&t, r->deleted[i]);
    if (!err && full && !more) {
      if (nseen)
        qsort(seen, nseen, sizeof(*seen), sort_u64);
      err = hier_sweep(&t, seen, nseen);
    }
    if (!err)
      err = mbxc__ct_meta_put(&t, "hier_token", r->state.data, r->state.len);
    if (r->n_added || r->n_changed || r->n_deleted)
      s->sum.has_hierarchy_changed = s->sum.hierarchy_changed = true;
    if (!err && (err = wend(s, &t, err)) == 0) {
      free(token);
      tlen = r->state.len;
      token = malloc(tlen ? tlen : 1);
      if (!token)
        err = MBX_ENOMEM;
      else
        memcpy(token, r->state.data, tlen);
    } else if (err) {
      mbxc__ct_abort(&t);
    }
    mbxc_free(&r);
    if (err || !more)
      break;
  }
  free(token);
  free(seen);
  return err;
}

/* Sends a queued folder change with its idempotency key. A reply without the folder
 * counts as MBX_EPROTO; on a connection failure *resp_r is freed (NULL). */
static int call_folder_change(mbxc_conn *conn, Mbx__Request *req, const Mbx__CacheOp *op,
                              Mbx__Response **resp_r)
{
  int rc = call_idem(conn, req, &op->key, resp_r);
  if (rc == 0 && (!(*resp_r)->folder || !(*resp_r)->folder->folder))
    rc = MBX_EPROTO;
  if (mbxc__sync_conn_failure(rc))
    mbxc_free(resp_r);
  return rc;
}

/* The reply to our own folder change: the server's version, with whatever is still
 * queued replayed on top (no conflict: it is the version our change produced). */
static int applied_folder(struct mbxc__ct *t, const Mbx__Folder *f)
{
  Mbx__CacheFolder *rec;
  int err = mbxc__ct_folder_get(t, f->id, &rec);
  if (err)
    return err == MBX_ENOTFOUND ? mbxc__apply_folder(t, f) : err;
  bool pending = mbxc__ct_pending(t, f->id);
  rec->srv = pending ? MBXC__DUP(t, f) : NULL;
  if (pending && !rec->srv)
    return MBX_ENOMEM;
  Mbx__Folder *v = rec->view;
  uint64_t cnt = v->item_count, unread = v->unread_count, size = v->size_bytes;
  if (!(rec->view = MBXC__DUP(t, f)))
    return MBX_ENOMEM;
  rec->view->has_item_count = rec->view->has_unread_count = rec->view->has_size_bytes = true;
  rec->view->item_count = cnt;
  rec->view->unread_count = unread;
  rec->view->size_bytes = size;
  if ((err = mbxc__ct_folder_put(t, rec)))
    return err;
  return mbxc__ct_folder_rebase(t, f->id);
}

/* The visible server folder under parent named name (not a local one), or NULL. */
static Mbx__CacheFolder *server_sibling(struct mbxc__ct *t, uint64_t parent, const char *name)
{
  Mbx__CacheFolder **all;
  size_t n;
  if (mbxc__ct_folder_all(t, &all, &n))
    return NULL;
  for (size_t i = 0; i < n; i++)
    if (!all[i]->hidden && !mbxc_cache_is_local_id(all[i]->view->id) &&
        mbxc__ct_resolve(t, all[i]->view->parent_id) == parent &&
        strcasecmp(all[i]->view->name, name) == 0)
      return all[i];
  return NULL;
}

static int push_create_folder(struct mbxc_cache_syncer *s, mbxc_conn *conn, Mbx__CacheOp *op,
                              uint64_t parent)
{
  Mbx__Request req = MBX__REQUEST__INIT;
  Mbx__CreateFolderReq b = MBX__CREATE_FOLDER_REQ__INIT;
  req.body_case = MBX__REQUEST__BODY_CREATE_FOLDER;
  req.create_folder = &b;
  b.name = op->create_folder->name;
  b.has_parent_id = parent != 0;
  b.parent_id = parent;
  b.has_folder_class = true;
  b.folder_class = op->create_folder->folder_class;
  Mbx__Response *resp = NULL;
  int rc = call_folder_change(conn, &req, op, &resp);
  if (mbxc__sync_conn_failure(rc))
    return rc;
  struct mbxc__ct t;
  int err = wbegin(s, &t);
  if (err) {
    mbxc_free(&resp);
    return err;
  }
  Mbx__CacheOp *cur;
  if ((err = mbxc__ct_queue_get(&t, op->seq, &cur))) {
    mbxc_free(&resp);
    return wend(s, &t, err == MBX_ENOTFOUND ? 0 : err);
  }
  Mbx__CacheFolder *rec, *other;
  bool exists = mbxc__ct_folder_get(&t, op->id, &rec) == 0;
  if (rc == 0) {
    const Mbx__Folder *f = resp->folder->folder;
    if (!(err = mbxc__ct_queue_del(&t, cur)) && exists)
      err = mbxc__ct_folder_rekey(&t, op->id, f->id);
    else if (!err)
      err = mbxc__ct_map_put(&t, op->id, f->id);
    if (!err)
      err = applied_folder(&t, f);
    count(s, &s->sum.pushed, 1);
  } else if (rc == MBX_EEXIST && (other = server_sibling(&t, parent, op->create_folder->name))) {
    /* made on both sides with the same name: one folder, the server's */
    uint64_t sid = other->view->id;
    if (!(err = mbxc__ct_queue_del(&t, cur)) && exists)
      err = mbxc__ct_folder_rekey(&t, op->id, sid);
    if (!err)
      err = mbxc__ct_conflict(&t, "created-on-both-sides", sid, 0,
                              "folder \"%s\" was made here and on the server: merged into the "
                              "server's", op->create_folder->name);
  } else if (rc == MBX_ENOTFOUND) {
    /* its parent went on the server: the folder moves to the top level */
    cur->create_folder->parent_id = 0;
    if (!(err = mbxc__ct_queue_update(&t, cur, true)) && !(err = mbxc__ct_folder_rebase(&t, op->id)))
      err = mbxc__ct_conflict(&t, "created-here-in-folder-deleted-on-server", op->id, 0,
                              "folder \"%s\" was made here in a folder the server deleted: "
                              "it moves to the top level", op->create_folder->name);
  } else {
    mbxc__ct_abort(&t);
    mbxc_free(&resp);
    return mark_failed(s, op->seq, rc, why(conn, rc));
  }
  mbxc_free(&resp);
  return wend(s, &t, err);
}

static int push_update_folder(struct mbxc_cache_syncer *s, mbxc_conn *conn, Mbx__CacheOp *op,
                              uint64_t fid, uint64_t parent)
{
  Mbx__Request req = MBX__REQUEST__INIT;
  Mbx__UpdateFolderReq b = MBX__UPDATE_FOLDER_REQ__INIT;
  req.body_case = MBX__REQUEST__BODY_UPDATE_FOLDER;
  req.update_folder = &b;
  b.folder_id = fid;
  b.name = op->update_folder->name;
  b.has_parent_id = op->update_folder->move;
  b.parent_id = parent;
  Mbx__Response *resp = NULL;
  int rc = call_folder_change(conn, &req, op, &resp);
  if (mbxc__sync_conn_failure(rc))
    return rc;
  struct mbxc__ct t;
  int err = wbegin(s, &t);
  Mbx__CacheOp *cur;
  if (!err && (err = mbxc__ct_queue_get(&t, op->seq, &cur)) == MBX_ENOTFOUND) {
    mbxc_free(&resp);
    return wend(s, &t, 0);
  }
  if (!err)
    err = mbxc__ct_queue_del(&t, cur);
  if (!err && rc == 0) {
    err = applied_folder(&t, resp->folder->folder);
    count(s, &s->sum.pushed, 1);
  } else if (!err) {
    /* refused (a sibling has the name, the folder went, …): the server's state stays */
    if (rc != MBX_ENOTFOUND)
      err = mbxc__ct_conflict(&t, "folder-change-refused", fid, 0,
                              "renaming or moving folder %" PRIu64 " was refused by the server "
                              "(%s): it keeps the server's name and place", fid, why(conn, rc));
    if (!err)
      err = mbxc__ct_folder_rebase(&t, fid);
  }
  mbxc_free(&resp);
  return wend(s, &t, err);
}

static bool is_folder_change(const Mbx__CacheOp *op)
{
  return op->op_case == MBX__CACHE_OP__OP_CREATE_FOLDER ||
         op->op_case == MBX__CACHE_OP__OP_UPDATE_FOLDER;
}

static bool is_folder_delete(const Mbx__CacheOp *op)
{
  return op->op_case == MBX__CACHE_OP__OP_DELETE_FOLDER;
}

/* The seqs of the queued changes that want() picks, in queue order, read in one
 * short transaction (*seqs_r is malloc'd: the caller frees it). */
static int queued_seqs(struct mbxc_cache_syncer *s, bool (*want)(const Mbx__CacheOp *op),
                       uint64_t **seqs_r, size_t *n_r)
{
  struct mbxc__ct t;
  Mbx__CacheOp **ops;
  size_t n, ns = 0;
  int err = mbxc__ct_begin(s->c, false, &t);
  if (err)
    return err;
  uint64_t *seqs = NULL;
  if (!(err = mbxc__ct_queue_all(&t, 0, &ops, &n)) && !(seqs = malloc((n + 1) * sizeof(*seqs))))
    err = MBX_ENOMEM;
  for (size_t i = 0; !err && i < n; i++)
    if (want(ops[i]))
      seqs[ns++] = ops[i]->seq;
  mbxc__ct_abort(&t);
  if (err)
    return err;
  *seqs_r = seqs;
  *n_r = ns;
  return 0;
}

/* Queued folder creations, renames and moves, in order. */
static int hier_push(struct mbxc_cache_syncer *s, mbxc_conn *conn)
{
  struct mbxc__ct t;
  uint64_t *seqs;
  size_t ns;
  int err = queued_seqs(s, is_folder_change, &seqs, &ns);
  if (err)
    return err;
  for (size_t i = 0; !err && i < ns; i++) {
    struct mbx_arena a;
    mbx_arena_init(&a, 0);
    Mbx__CacheOp *op = NULL;
    uint64_t fid = 0, parent = 0;
    bool blocked = false;
    if (!(err = mbxc__ct_begin(s->c, false, &t))) {
      Mbx__CacheOp *o;
      int e = mbxc__ct_queue_get(&t, seqs[i], &o);
      if (e == 0) {
        op = dup_into(&a, &o->base);
        fid = mbxc__ct_resolve(&t, o->id);
        if (o->op_case == MBX__CACHE_OP__OP_CREATE_FOLDER)
          parent = mbxc__ct_resolve(&t, o->create_folder->parent_id);
        else if (o->update_folder->move)
          parent = mbxc__ct_resolve(&t, o->update_folder->parent_id);
        blocked = mbxc_cache_is_local_id(parent) ||
                  (o->op_case == MBX__CACHE_OP__OP_UPDATE_FOLDER && mbxc_cache_is_local_id(fid));
        if (!op)
          err = MBX_ENOMEM;
      } else if (e != MBX_ENOTFOUND) {
        err = e;
      }
      mbxc__ct_abort(&t);
    }
    if (!err && op && !blocked)
      err = op->op_case == MBX__CACHE_OP__OP_CREATE_FOLDER
                ? push_create_folder(s, conn, op, parent)
                : push_update_folder(s, conn, op, fid, parent);
    mbx_arena_reset(&a);
  }
  free(seqs);
  return err;
}

/* Whether someone else changed folder fid on the server since this cache last
 * downloaded it: added or changed items that are not echoes of our own pushes. A
 * folder never downloaded counts as changed if it has anything. */
static int changed_since(struct mbxc_cache_syncer *s, mbxc_conn *conn, uint64_t fid, bool *changed_r,
                         bool *gone_r)
{
  struct mbxc__ct t;
  struct mbx_arena a;
  Mbx__CacheFolderState *st = NULL, *fs;
  *changed_r = *gone_r = false;
  mbx_arena_init(&a, 0);
  int err = mbxc__ct_begin(s->c, false, &t);
  if (err)
    return err;
  if (mbxc__ct_fstate_get(&t, fid, &fs) == 0)
    st = dup_into(&a, &fs->base);
  mbxc__ct_abort(&t);
  ProtobufCBinaryData tok = st && st->has_token ? st->token : (ProtobufCBinaryData){ 0 };
  uint8_t *own = NULL;
  for (uint32_t page = 0; !err && page < SYNC_PAGES_MAX; page++) {
    Mbx__SyncResp *r = NULL;
    int rc = mbxc_sync(conn, fid, tok.data, tok.len, s->max_changes, &r);
    if (rc == MBX_ENOTFOUND) {
      *gone_r = true;
      break;
    }
    if (rc == MBX_ESTATE && tok.len && page == 0) {
      /* A token the server refuses (another incarnation, a discarded history): ask
       * for everything instead. Anything there that is not our own echo counts as
       * changed, so only a folder that is empty on the server is deleted. */
      tok = (ProtobufCBinaryData){ 0 };
      continue;
    }
    if (rc == MBX_ESTATE) {
      *changed_r = true; /* cannot tell: keep it */
      break;
    }
    if (rc < 0) {
      err = rc;
      break;
    }
    for (size_t i = 0; i < r->n_added + r->n_changed && !*changed_r; i++) {
      const Mbx__Item *it = i < r->n_added ? r->added[i] : r->changed[i - r->n_added];
      *changed_r = !st || st->echo_overflow || !is_echo(st, it->id, it->cn);
    }
    bool more = r->has_more && r->more;
    free(own);
    own = malloc(r->state.len ? r->state.len : 1);
    if (!own)
      err = MBX_ENOMEM;
    else
      memcpy(own, r->state.data, r->state.len);
    tok.data = own;
    tok.len = r->state.len;
    mbxc_free(&r);
    if (*changed_r || !more)
      break;
  }
  free(own);
  mbx_arena_reset(&a);
  return err;
}

/* The folder and the hidden subfolders its queued deletion hid. */
static int deleted_subtree(struct mbxc_cache_syncer *s, uint64_t root, uint64_t **ids_r, size_t *n_r)
{
  struct mbxc__ct t;
  Mbx__CacheFolder **all;
  size_t n, k = 0;
  int err = mbxc__ct_begin(s->c, false, &t);
  if (err)
    return err;
  uint64_t *ids = NULL;
  if (!(err = mbxc__ct_folder_all(&t, &all, &n)) && !(ids = malloc((n + 1) * sizeof(*ids))))
    err = MBX_ENOMEM;
  for (size_t i = 0; !err && i < n; i++) {
    uint64_t f = all[i]->view->id;
    for (int d = 0; d <= 64 && f; d++) {
      if (f == root) {
        ids[k++] = all[i]->view->id;
        break;
      }
      uint64_t next = 0;
      for (size_t j = 0; j < n; j++)
        if (all[j]->view->id == f && all[j]->hidden)
          next = mbxc__ct_resolve(&t, all[j]->view->parent_id);
      f = next;
    }
  }
  mbxc__ct_abort(&t);
  if (err) {
    free(ids);
    return err;
  }
  *ids_r = ids;
  *n_r = k;
  return 0;
}

/* Queued folder deletions, after the items. A folder (or a subfolder it takes with
 * it) that someone changed on the server since this cache last saw it is restored
 * instead. */
static int push_folder_deletes(struct mbxc_cache_syncer *s, mbxc_conn *conn)
{
  struct mbxc__ct t;
  uint64_t *seqs;
  size_t ns;
  int err = queued_seqs(s, is_folder_delete, &seqs, &ns);
  if (err)
    return err;
  for (size_t i = 0; !err && i < ns; i++) {
    struct mbx_arena a;
    mbx_arena_init(&a, 0);
    Mbx__CacheOp *op = NULL;
    uint64_t fid = 0;
    if (!(err = mbxc__ct_begin(s->c, false, &t))) {
      Mbx__CacheOp *o;
      if (mbxc__ct_queue_get(&t, seqs[i], &o) == 0) {
        op = dup_into(&a, &o->base);
        fid = mbxc__ct_resolve(&t, o->id);
      }
      mbxc__ct_abort(&t);
    }
    bool restore = false, gone = false;
    uint64_t *sub = NULL;
    size_t nsub = 0;
    if (!err && op)
      err = deleted_subtree(s, fid, &sub, &nsub);
    for (size_t j = 0; !err && op && j < nsub && !restore; j++) {
      bool g;
      err = changed_since(s, conn, sub[j], &restore, &g);
      if (sub[j] == fid)
        gone = g;
    }
    free(sub);
    if (!err && op && !restore && !gone) {
      Mbx__Request req = MBX__REQUEST__INIT;
      Mbx__DeleteFolderReq b = MBX__DELETE_FOLDER_REQ__INIT;
      req.body_case = MBX__REQUEST__BODY_DELETE_FOLDER;
      req.delete_folder = &b;
      b.folder_id = fid;
      Mbx__Response *resp = NULL;
      int rc = call_idem(conn, &req, &op->key, &resp);
      mbxc_free(&resp);
      if (mbxc__sync_conn_failure(rc))
        err = rc;
      else if (rc == 0 || rc == MBX_ENOTFOUND)
        gone = true;
      else
        restore = true;
    }
    if (!err && op && (gone || restore) && !(err = wbegin(s, &t))) {
      char text[300];
      snprintf(text, sizeof(text), "folder %" PRIu64 " was deleted here but changed on the server "
                                   "since: it is kept (and downloaded again)", fid);
      Mbx__CacheOp *cur;
      if (mbxc__ct_queue_get(&t, op->seq, &cur) == 0 && !(err = mbxc__ct_queue_del(&t, cur)) && gone)
        count(s, &s->sum.pushed, 1);
      if (!err)
        err = gone ? mbxc__apply_folder_gone(&t, fid) : mbxc__apply_folder_restore(&t, fid, text);
      err = wend(s, &t, err);
    }
    mbx_arena_reset(&a);
  }
  free(seqs);
  return err;
}

/* ======================================================================== */
/* one folder: server changes in                                            */
/* ======================================================================== */


/* The server says item id left folder; it had queued changes: find where it went. */
static int resolve_left(struct mbxc_cache_syncer *s, mbxc_conn *conn, uint64_t id)
{
  Mbx__ItemResp *ir = NULL;
  int rc = mbxc_get(conn, id, false, &ir);
  if (rc && rc != MBX_ENOTFOUND) {
    mbxc_free(&ir);
    return rc;
  }
  struct mbxc__ct t;
  int err = wbegin(s, &t);
  if (!err)
    err = rc == 0 && ir->item ? mbxc__apply_item(&t, ir->item) : mbxc__apply_item_gone(&t, id);
  mbxc_free(&ir);
  return wend(s, &t, err);
}

static int folder_token(struct mbxc_cache_syncer *s, uint64_t folder, uint8_t **tok_r, size_t *len_r)
{
  struct mbxc__ct t;
  int err = mbxc__ct_begin(s->c, false, &t);
  if (err)
    return err;
  Mbx__CacheFolderState *st;
  *tok_r = NULL;
  *len_r = 0;
  if (mbxc__ct_fstate_get(&t, folder, &st) == 0 && st->has_token && st->token.len) {
    if (!(*tok_r = malloc(st->token.len)))
      err = MBX_ENOMEM;
    else {
      memcpy(*tok_r, st->token.data, st->token.len);
      *len_r = st->token.len;
    }
  }
  mbxc__ct_abort(&t);
  return err;
}

/* Applies one page in one transaction, with the page's token. Ids of items that
 * left the folder while they had queued changes go to *left (the caller asks). */
static int apply_page(struct mbxc_cache_syncer *s, uint64_t folder, const Mbx__SyncResp *r,
                      const uint8_t *old, size_t old_len, bool last, uint64_t **left,
                      size_t *nleft, struct fstats *fs)
{
  if (!r->n_added && !r->n_changed && !r->n_deleted && r->state.len == old_len &&
      (!old_len || memcmp(r->state.data, old, old_len) == 0))
    return 0; /* nothing new: no transaction, no fsync */
  struct mbxc__ct t;
  int err = wbegin(s, &t);
  if (err)
    return err;
  t.known_folder = folder;
  uint64_t added, changed, deleted;
  for (size_t i = 0; !err && i < r->n_added; i++)
    err = mbxc__apply_item(&t, r->added[i]);
  added = t.applied;
  for (size_t i = 0; !err && i < r->n_changed; i++)
    err = mbxc__apply_item(&t, r->changed[i]);
  changed = t.applied - added;
  if (!err && r->n_deleted && !(*left = realloc(*left, (*nleft + r->n_deleted) * sizeof(**left))))
    err = MBX_ENOMEM;
  for (size_t i = 0; !err && i < r->n_deleted; i++) {
    int k = mbxc__apply_item_left(&t, r->deleted[i], folder);
    if (k == 1)
      (*left)[(*nleft)++] = r->deleted[i];
    else
      err = k;
  }
  deleted = t.applied - added - changed;
  Mbx__CacheFolderState *st, fresh = MBX__CACHE_FOLDER_STATE__INIT;
  if (!err && mbxc__ct_fstate_get(&t, folder, &st) != 0)
    st = &fresh;
  if (!err) {
    st->has_token = true;
    st->token = r->state;
    if (last) { /* everything we pushed before is in what we have now */
      st->n_echo_ids = st->n_echo_cns = 0;
      st->has_echo_overflow = st->echo_overflow = false;
    }
    err = mbxc__ct_fstate_put(&t, folder, st);
  }
  if ((err = wend(s, &t, err)))
    return err;
  /* what changed here: our own pushes coming back are not counted */
  fs->added += added;
  fs->changed += changed;
  fs->deleted += deleted;
  return 0;
}

static int seen_add(uint64_t **seen, size_t *n, size_t *cap, Mbx__Item *const *v, size_t k)
{
  if (*n + k > *cap) {
    size_t nc = 2 * (*n + k) + 256;
    uint64_t *g = realloc(*seen, nc * sizeof(*g));
    if (!g)
      return MBX_ENOMEM;
    *seen = g;
    *cap = nc;
  }
  for (size_t i = 0; i < k; i++)
    (*seen)[(*n)++] = v[i]->id;
  return 0;
}

static int folder_gone_on_server(struct mbxc_cache_syncer *s, uint64_t folder)
{
  struct mbxc__ct t;
  int err = wbegin(s, &t);
  if (!err)
    err = mbxc__apply_folder_gone(&t, folder);
  return wend(s, &t, err);
}

/* Server changes of one folder in, page by page, from its token. *gone_r: the
 * server has no such folder any more (it was removed here). */
static int folder_down(struct mbxc_cache_syncer *s, mbxc_conn *conn, uint64_t folder,
                       struct fstats *fs, bool *gone_r)
{
  uint8_t *token;
  size_t tlen;
  int err = folder_token(s, folder, &token, &tlen);
  if (err)
    return err;
  bool full = tlen == 0, retried = false;
  uint64_t *seen = NULL, *left = NULL;
  size_t nseen = 0, cap = 0, nleft = 0;
  *gone_r = false;
  for (uint32_t page = 0; page < SYNC_PAGES_MAX; page++) {
    Mbx__SyncResp *r = NULL;
    int rc = mbxc_sync(conn, folder, token, tlen, s->max_changes, &r);
    if (rc == MBX_ESTATE && !retried) { /* the same: the folder starts over */
      free(token);
      token = NULL;
      tlen = 0;
      full = retried = true;
      nseen = 0;
      continue;
    }
    if (rc == MBX_ENOTFOUND) {
      *gone_r = true;
      err = folder_gone_on_server(s, folder);
      break;
    }
    if (rc < 0) {
      err = rc;
      break;
    }
    if (full && ((err = seen_add(&seen, &nseen, &cap, r->added, r->n_added)) ||
                 (err = seen_add(&seen, &nseen, &cap, r->changed, r->n_changed)))) {
      mbxc_free(&r);
      break;
    }
    bool more = r->has_more && r->more;
    err = apply_page(s, folder, r, token, tlen, !more, &left, &nleft, fs);
    if (!err) {
      free(token);
      tlen = r->state.len;
      if ((token = malloc(tlen ? tlen : 1)))
        memcpy(token, r->state.data, tlen);
      else
        err = MBX_ENOMEM;
    }
    mbxc_free(&r);
    if (err || !more)
      break;
  }
  for (size_t i = 0; !err && i < nleft; i++)
    err = resolve_left(s, conn, left[i]);
  if (!err && full && !*gone_r) {
    struct mbxc__ct t;
    if (nseen)
      qsort(seen, nseen, sizeof(*seen), sort_u64);
    if (!(err = wbegin(s, &t)))
      err = wend(s, &t, mbxc__apply_sweep(&t, folder, seen, nseen));
  }
  free(token);
  free(seen);
  free(left);
  return err;
}

/* ======================================================================== */
/* one folder: local changes out                                            */
/* ======================================================================== */

/* What a queued item change needs to become a request, read in one short
 * transaction and kept in the caller's arena. */
struct push_ctx {
  Mbx__CacheOp *op;
  uint64_t item;                    /* resolved item id */
  uint64_t folder;                  /* resolved target folder (append, create, move) */
  Mbx__Item *srv;                   /* the server version the change is based on */
  uint8_t *body;                    /* append: the message (malloc) */
  size_t body_len;
  bool blocked;                     /* depends on something not pushed yet */
};

static int push_load(struct mbxc_cache_syncer *s, uint64_t seq, struct mbx_arena *a,
                     struct push_ctx *p)
{
  struct mbxc__ct t;
  memset(p, 0, sizeof(*p));
  int err = mbxc__ct_begin(s->c, false, &t);
  if (err)
    return err;
  Mbx__CacheOp *o;
  Mbx__CacheItem *rec;
  if ((err = mbxc__ct_queue_get(&t, seq, &o))) {
    mbxc__ct_abort(&t);
    return err; /* MBX_ENOTFOUND: already done or dropped by a rule */
  }
  p->op = dup_into(a, &o->base);
  p->item = mbxc__ct_resolve(&t, o->id);
  switch (o->op_case) {
  case MBX__CACHE_OP__OP_APPEND:
  case MBX__CACHE_OP__OP_CREATE_ITEM: {
    uint64_t f = o->op_case == MBX__CACHE_OP__OP_APPEND ? o->append->folder_id
                                                        : o->create_item->folder_id;
    p->folder = mbxc__ct_resolve(&t, f);
    p->blocked = mbxc_cache_is_local_id(p->folder);
    MDB_val b;
    if (o->op_case == MBX__CACHE_OP__OP_APPEND) {
      if ((err = mbxc__ct_body_get(&t, p->item, &b)) == 0) {
        if ((p->body = malloc(b.mv_size ? b.mv_size : 1)))
          memcpy(p->body, b.mv_data, b.mv_size);
        else
          err = MBX_ENOMEM;
        p->body_len = b.mv_size;
      } else if (err == MBX_ENOTFOUND) {
        err = mbxc__cache_fail(MBX_ECORRUPT, "cache: the message queued as item %" PRIu64
                                             " has no body", p->item);
      }
    }
    break;
  }
  default:
    if (o->op_case == MBX__CACHE_OP__OP_MOVE) {
      p->folder = mbxc__ct_resolve(&t, o->move->folder_id);
      p->blocked = mbxc_cache_is_local_id(p->folder);
    }
    if (mbxc_cache_is_local_id(p->item)) {
      p->blocked = true; /* its creation did not go through yet */
    } else if ((err = mbxc__ct_item_get(&t, p->item, &rec)) == 0) {
      p->srv = dup_into(a, rec->srv ? &rec->srv->base : &rec->view->base);
    } else if (err == MBX_ENOTFOUND) {
      err = 0;
      p->blocked = true; /* gone from the cache: its entry is stale */
    }
    break;
  }
  mbxc__ct_abort(&t);
  if (!err && !p->op)
    err = MBX_ENOMEM;
  if (err) {
    free(p->body);
    p->body = NULL;
  }
  return err;
}

/* categories = (srv ∪ add) − remove: the deltas on the server's current list. */
static void merged_categories(const Mbx__Item *srv, const Mbx__CacheOpSetFlags *sf,
                              struct mbx_arena *a, char ***v_r, size_t *n_r)
{
  size_t cap = srv->n_categories + sf->n_categories_add, n = 0;
  char **v = mbx_arena_alloc(a, (cap + 1) * sizeof(char *));
  for (size_t i = 0; v && i < srv->n_categories + sf->n_categories_add; i++) {
    char *c = i < srv->n_categories ? srv->categories[i] : sf->categories_add[i - srv->n_categories];
    bool skip = false;
    for (size_t j = 0; j < sf->n_categories_remove && !skip; j++)
      skip = strcmp(sf->categories_remove[j], c) == 0;
    for (size_t j = 0; j < n && !skip; j++)
      skip = strcmp(v[j], c) == 0;
    if (!skip && n < 64)
      v[n++] = c;
  }
  *v_r = v;
  *n_r = v ? n : 0;
}

/* One queued change in flight: its request is sent with mbxc_call (pipelined on the
 * worker's connection) and its reply lands here. */
struct wave_op {
  struct push_ctx p;
  size_t idx;                       /* in the task's seqs */
  bool done;
  int status;
  Mbx__Response *resp;              /* status 0: the reply (ours to free) */
  char msg[256];                    /* status < 0: why */
};

static void on_wave_reply(mbxc_conn *c, int status, const Mbx__Response *resp, void *arg)
{
  struct wave_op *w = arg;
  w->done = true;
  w->status = status;
  if (status == 0 && resp) {
    mbxc__steal_reply(c);
    w->resp = (Mbx__Response *)resp;
  } else {
    const char *m = resp && resp->error && resp->error->message ? resp->error->message
                                                                 : mbx_strerror(status);
    snprintf(w->msg, sizeof(w->msg), "%s", m);
  }
}

/* Sends the request of one queued item change, with its idempotency key, without
 * waiting: the wave's replies are awaited together. The key travels exactly as
 * mbxc_call_sync_idem sends it (Request.idempotency_key). */
static int push_send(mbxc_conn *conn, struct wave_op *w, struct mbx_arena *a)
{
  Mbx__Request req = MBX__REQUEST__INIT;
  Mbx__AppendReq ap = MBX__APPEND_REQ__INIT;
  Mbx__CreateItemReq ci = MBX__CREATE_ITEM_REQ__INIT;
  Mbx__SetFlagsReq sf = MBX__SET_FLAGS_REQ__INIT;
  Mbx__MoveReq mv = MBX__MOVE_REQ__INIT;
  Mbx__DeleteReq dl = MBX__DELETE_REQ__INIT;
  struct push_ctx *p = &w->p;
  Mbx__CacheOp *op = p->op;
  /* a version whose cn we never learnt (0, after a soft delete) sets no precondition */
  bool cn = p->srv && p->srv->cn != 0;
  switch (op->op_case) {
  case MBX__CACHE_OP__OP_APPEND:
    req.body_case = MBX__REQUEST__BODY_APPEND;
    req.append = &ap;
    ap.folder_id = p->folder;
    ap.body.data = p->body;
    ap.body.len = p->body_len;
    ap.has_flags = true;
    ap.flags = op->append->item->flags;
    ap.has_received_us = true;
    ap.received_us = op->append->item->received_us;
    break;
  case MBX__CACHE_OP__OP_CREATE_ITEM:
    req.body_case = MBX__REQUEST__BODY_CREATE_ITEM;
    req.create_item = &ci;
    ci.folder_id = p->folder;
    ci.item = op->create_item->item;
    break;
  case MBX__CACHE_OP__OP_SET_FLAGS:
    req.body_case = MBX__REQUEST__BODY_SET_FLAGS;
    req.set_flags = &sf;
    sf.item_id = p->item;
    sf.has_add = sf.has_remove = true;
    sf.add = op->set_flags->add;
    sf.remove = op->set_flags->remove;
    if (op->set_flags->categories) {
      sf.has_set_categories = sf.set_categories = true;
      merged_categories(p->srv, op->set_flags, a, &sf.categories, &sf.n_categories);
    }
    sf.has_if_cn = cn;
    sf.if_cn = p->srv->cn;
    break;
  case MBX__CACHE_OP__OP_MOVE:
    req.body_case = MBX__REQUEST__BODY_MOVE;
    req.move = &mv;
    mv.item_id = p->item;
    mv.folder_id = p->folder;
    mv.has_if_cn = cn;
    mv.if_cn = p->srv->cn;
    break;
  case MBX__CACHE_OP__OP_DELETE:
    req.body_case = MBX__REQUEST__BODY_DELETE;
    req.delete_ = &dl;
    dl.item_id = p->item;
    dl.has_hard = true;
    dl.hard = op->delete_->hard;
    dl.has_if_cn = cn;
    dl.if_cn = p->srv->cn;
    break;
  default:
    return MBX_EINVAL;
  }
  req.has_idempotency_key = true;
  req.idempotency_key = op->key;
  return mbxc_call(conn, &req, on_wave_reply, w);
}

/* Our own change came back: the server's version is the base now, what is still
 * queued is replayed on top. */
static int applied_item(struct mbxc__ct *t, const Mbx__Item *it)
{
  Mbx__CacheItem *rec;
  int err = mbxc__ct_item_get(t, it->id, &rec);
  if (err == MBX_ENOTFOUND)
    return mbxc__apply_item(t, it);
  if (err)
    return err;
  if (mbxc__ct_pending(t, it->id)) {
    if (!(rec->srv = MBXC__DUP(t, it)))
      return MBX_ENOMEM;
    if ((err = mbxc__ct_item_put(t, rec, rec)))
      return err;
    return mbxc__ct_item_rebase(t, it->id);
  }
  Mbx__CacheItem nrec = MBX__CACHE_ITEM__INIT;
  if (!(nrec.view = MBXC__DUP(t, it)))
    return MBX_ENOMEM;
  return mbxc__ct_item_put(t, rec, &nrec);
}

/* A delete went through. Soft: the item is in the server's Deleted Items now, at a
 * cn we do not know (0 until that folder's sync brings it); *refetch_r asks the
 * caller for the new version when more changes are queued for it. */
static int applied_delete(struct mbxc__ct *t, const struct push_ctx *p, bool *refetch_r)
{
  Mbx__CacheItem *rec;
  Mbx__CacheFolder *del;
  *refetch_r = false;
  int err = mbxc__ct_item_get(t, p->item, &rec);
  if (err)
    return err == MBX_ENOTFOUND ? 0 : err;
  bool have_del = mbxc__ct_folder_wk(t, MBX__WELL_KNOWN__WK_DELETED, &del) == 0;
  bool for_good = p->op->delete_->hard || !have_del || p->srv->folder_id == del->view->id;
  if (for_good) {
    if ((err = mbxc__ct_queue_drop_of(t, p->item)))
      return err;
    return mbxc__ct_item_del(t, rec);
  }
  Mbx__Item *srv = MBXC__DUP(t, p->srv);
  if (!srv)
    return MBX_ENOMEM;
  srv->folder_id = del->view->id;
  srv->cn = 0;
  if (mbxc__ct_pending(t, p->item)) {
    *refetch_r = true;
    rec->srv = srv;
    if ((err = mbxc__ct_item_put(t, rec, rec)))
      return err;
    return mbxc__ct_item_rebase(t, p->item);
  }
  Mbx__CacheItem nrec = MBX__CACHE_ITEM__INIT;
  nrec.view = srv;
  return mbxc__ct_item_put(t, rec, &nrec);
}

/* One accepted change, inside the wave's transaction: its entry goes, a creation's
 * local id becomes the server's, the reply becomes the base. */
static int applied_in_txn(struct mbxc__ct *t, const struct push_ctx *p, const Mbx__Response *resp,
                          bool *refetch_r)
{
  Mbx__CacheOp *op = p->op, *cur;
  Mbx__CacheItem *rec;
  bool creation = op->op_case == MBX__CACHE_OP__OP_APPEND ||
                  op->op_case == MBX__CACHE_OP__OP_CREATE_ITEM;
  const Mbx__Item *it = resp && resp->body_case == MBX__RESPONSE__BODY_ITEM && resp->item
                            ? resp->item->item : NULL;
  *refetch_r = false;
  if (op->op_case != MBX__CACHE_OP__OP_DELETE && !it)
    return mbxc__cache_fail(MBX_EPROTO, "the server's reply to a change lacks the item");
  int err = mbxc__ct_queue_get(t, op->seq, &cur);
  if (err == 0)
    err = mbxc__ct_queue_del(t, cur);
  else if (err == MBX_ENOTFOUND)
    err = 0;
  if (!err && creation) {
    if (mbxc__ct_item_get(t, op->id, &rec) == 0)
      err = mbxc__ct_item_rekey(t, op->id, it->id);
    else
      err = mbxc__ct_map_put(t, op->id, it->id);
  }
  if (!err)
    err = it ? applied_item(t, it) : applied_delete(t, p, refetch_r);
  return err;
}

/* The server said ENOTFOUND to a queued change. */
static int push_not_found(struct mbxc_cache_syncer *s, mbxc_conn *conn, struct push_ctx *p)
{
  Mbx__CacheOp *op = p->op;
  struct mbxc__ct t;
  int err;
  if (op->op_case == MBX__CACHE_OP__OP_APPEND || op->op_case == MBX__CACHE_OP__OP_CREATE_ITEM) {
    /* its folder went on the server: the item goes to Sync Issues/Conflicts */
    if ((err = wbegin(s, &t)))
      return err;
    err = mbxc__apply_folder_gone(&t, p->folder);
    return wend(s, &t, err);
  }
  Mbx__ItemResp *ir = NULL;
  int rc = mbxc_get(conn, p->item, false, &ir);
  if (rc && rc != MBX_ENOTFOUND) {
    mbxc_free(&ir);
    return rc;
  }
  if ((err = wbegin(s, &t))) {
    mbxc_free(&ir);
    return err;
  }
  if (rc == MBX_ENOTFOUND || !ir->item) {
    err = mbxc__apply_item_gone(&t, p->item);
  } else {
    /* the item is there: the move's target folder went; it stays where it is */
    Mbx__CacheOp *cur;
    if (mbxc__ct_queue_get(&t, op->seq, &cur) == 0 && !(err = mbxc__ct_queue_del(&t, cur)))
      err = mbxc__ct_conflict(&t, "moved-here-into-folder-deleted-on-server", p->item, 0,
                              "item %" PRIu64 " was moved here into a folder the server "
                              "deleted: it stays in its folder", p->item);
    if (!err)
      err = mbxc__apply_item(&t, ir->item);
    if (!err)
      err = mbxc__ct_item_rebase(&t, p->item);
  }
  mbxc_free(&ir);
  return wend(s, &t, err);
}

/* A refusal that will not pass by trying again: the change is undone here. */
static int push_refused(struct mbxc_cache_syncer *s, const struct wave_op *w)
{
  struct mbxc__ct t;
  const struct push_ctx *p = &w->p;
  int err = wbegin(s, &t);
  Mbx__CacheOp *cur;
  if (!err && mbxc__ct_queue_get(&t, p->op->seq, &cur) == 0 && !(err = mbxc__ct_queue_del(&t, cur)))
    err = mbxc__ct_conflict(&t, "refused-by-server", p->item, 0,
                            "a change to item %" PRIu64 " was refused by the server (%s: %s): "
                            "it is undone here", p->item, mbx_strerror_name(w->status), w->msg);
  if (!err)
    err = mbxc__ct_item_rebase(&t, p->item);
  count(s, &s->sum.failed, 1);
  return wend(s, &t, err);
}

static bool in_ids(const uint64_t *v, size_t n, uint64_t id)
{
  for (size_t i = 0; i < n; i++)
    if (v[i] == id)
      return true;
  return false;
}

/* A fault-injection point for the crash tests, off unless MBX_TEST_PUSH_STALL_WAVE
 * is set: once this process has had that many waves answered, it writes a line to
 * MBX_TEST_PUSH_STALL_FILE (if set) and stops before recording the last wave, so the
 * node has applied changes whose replies the cache never records — what a kill -9 in
 * the middle of a push does, but at a known point instead of a lucky one. */
static void push_stall_point(void)
{
  static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  static unsigned long answered;
  const char *at = getenv("MBX_TEST_PUSH_STALL_WAVE");
  if (!at || !*at)
    return;
  pthread_mutex_lock(&mu);
  bool stall = ++answered == strtoul(at, NULL, 10);
  pthread_mutex_unlock(&mu);
  if (!stall)
    return;
  const char *path = getenv("MBX_TEST_PUSH_STALL_FILE");
  int fd = path ? open(path, O_WRONLY | O_CREAT | O_APPEND, 0600) : -1;
  if (fd >= 0) {
    static const char line[] = "stalled\n";
    if (write(fd, line, sizeof(line) - 1) < 0) { /* the test then times out and says so */
    }
    close(fd);
  }
  for (;;)
    pause();
}

/* Picks the wave: the first pending change of each item (an item's changes go one
 * after the other, each based on the reply to the one before), at most
 * SYNC_WAVE_MAX. A change that depends on something not pushed yet holds back its
 * item for the rest of the pass. */
static int wave_pick(struct mbxc_cache_syncer *s, const struct mbxc__task *task, uint8_t *state,
                     uint64_t *held, size_t *nheld, struct mbx_arena *a, struct wave_op *w,
                     size_t *n_r)
{
  size_t n = 0;
  uint64_t taken[SYNC_WAVE_MAX];
  for (size_t i = 0; i < task->nseqs && n < SYNC_WAVE_MAX; i++) {
    if (state[i])
      continue;
    struct wave_op *o = &w[n];
    memset(o, 0, sizeof(*o));
    int err = push_load(s, task->seqs[i], a, &o->p);
    if (err == MBX_ENOTFOUND) {
      state[i] = 1; /* done, or dropped by a rule */
      continue;
    }
    if (err)
      return err;
    if (o->p.blocked || in_ids(held, *nheld, o->p.item)) {
      if (!in_ids(held, *nheld, o->p.item) && *nheld < task->nseqs)
        held[(*nheld)++] = o->p.item;
      state[i] = 1;
      free(o->p.body);
      continue;
    }
    if (in_ids(taken, n, o->p.item)) {
      free(o->p.body); /* a later change of an item already in this wave */
      continue;
    }
    taken[n] = o->p.item;
    o->idx = i;
    n++;
  }
  *n_r = n;
  return 0;
}

/* What happens to a change the server did not accept. Returns a connection failure
 * (the pass stops) or a cache error; 0 otherwise. */
static int wave_failed(struct mbxc_cache_syncer *s, mbxc_conn *conn, const struct mbxc__task *task,
                       struct wave_op *w, uint8_t *state, uint8_t *tries)
{
  Mbx__CacheOp *op = w->p.op;
  bool creation = op->op_case == MBX__CACHE_OP__OP_APPEND ||
                  op->op_case == MBX__CACHE_OP__OP_CREATE_ITEM;
  if (mbxc__sync_conn_failure(w->status))
    return w->status;
  if (w->status == MBX_ECONFLICT && tries[w->idx] < SYNC_CONFLICT_RETRIES) {
    /* changed on the server since our download: sync the folder and the item, apply
     * the rules, and the next wave sends what is left with the new cn */
    tries[w->idx]++;
    bool gone;
    struct fstats ignore = { 0 };
    int err = folder_down(s, conn, task->folder, &ignore, &gone);
    return err ? err : resolve_left(s, conn, w->p.item);
  }
  state[w->idx] = 1;
  if (w->status == MBX_ECONFLICT || (creation && w->status != MBX_ENOTFOUND))
    return mark_failed(s, op->seq, w->status, w->msg); /* kept: tried again later */
  if (w->status == MBX_ENOTFOUND)
    return push_not_found(s, conn, &w->p);
  return push_refused(s, w);
}

/* The queued changes of one folder's items, in waves: each wave's requests are
 * pipelined on the connection (the node commits them together), and what they did
 * is recorded in one cache transaction. */
static int folder_push(struct mbxc_cache_syncer *s, mbxc_conn *conn, const struct mbxc__task *task,
                       struct fstats *fs)
{
  size_t n = task->nseqs, nheld = 0;
  uint8_t *state = calloc(n + 1, 1), *tries = calloc(n + 1, 1);
  uint64_t *held = calloc(n + 1, sizeof(*held));
  struct wave_op *w = calloc(SYNC_WAVE_MAX, sizeof(*w));
  int err = state && tries && held && w ? 0 : MBX_ENOMEM;
  /* bounded: every wave finishes at least one change or spends one of its retries */
  for (size_t wave = 0; !err && wave <= n * (SYNC_CONFLICT_RETRIES + 1); wave++) {
    struct mbx_arena a;
    size_t nw = 0;
    mbx_arena_init(&a, 0);
    err = wave_pick(s, task, state, held, &nheld, &a, w, &nw);
    for (size_t i = 0; !err && i < nw; i++) {
      int rc = push_send(conn, &w[i], &a);
      if (rc < 0) {
        w[i].done = true;
        w[i].status = rc;
        snprintf(w[i].msg, sizeof(w[i].msg), "%s", mbx_strerror(rc));
      }
    }
    /* bounded by the requests' own timeouts */
    for (bool all = false; !err && !all;) {
      all = true;
      for (size_t i = 0; i < nw; i++)
        all = all && w[i].done;
      if (!all && !uv_run(mbxc__loop(conn), UV_RUN_ONCE))
        break;
    }
    if (nw > 0)
      push_stall_point();
    /* the accepted ones, in one transaction */
    struct mbxc__ct t;
    uint64_t refetch[SYNC_WAVE_MAX];
    size_t nref = 0, ok = 0;
    if (!err && !(err = wbegin(s, &t))) {
      uint64_t eid[SYNC_WAVE_MAX], ecn[SYNC_WAVE_MAX], efolder[SYNC_WAVE_MAX];
      size_t ne = 0;
      for (size_t i = 0; !err && i < nw; i++) {
        bool again = false;
        if (!w[i].done || w[i].status != 0)
          continue;
        err = applied_in_txn(&t, &w[i].p, w[i].resp, &again);
        state[w[i].idx] = 1;
        ok++;
        if (again)
          refetch[nref++] = w[i].p.item;
        const Mbx__Response *r = w[i].resp;
        if (r && r->body_case == MBX__RESPONSE__BODY_ITEM && r->item && r->item->item) {
          eid[ne] = r->item->item->id;
          ecn[ne] = r->item->item->cn;
          efolder[ne++] = r->item->item->folder_id;
        }
      }
      /* one echo list update per folder the wave touched */
      for (size_t i = 0; !err && i < ne; i++) {
        if (!efolder[i])
          continue;
        uint64_t f = efolder[i], fi[SYNC_WAVE_MAX], fc[SYNC_WAVE_MAX];
        size_t k = 0;
        for (size_t j = i; j < ne; j++)
          if (efolder[j] == f) {
            fi[k] = eid[j];
            fc[k++] = ecn[j];
            efolder[j] = 0;
          }
        err = echo_add(&t, f, fi, fc, k);
      }
      err = wend(s, &t, err);
    }
    count(s, &s->sum.pushed, err ? 0 : ok);
    fs->pushed += err ? 0 : ok;
    for (size_t i = 0; !err && i < nref; i++)
      err = resolve_left(s, conn, refetch[i]);
    for (size_t i = 0; !err && i < nw; i++)
      if (!w[i].done)
        err = MBX_ECLOSED; /* the loop ended without its reply: the connection went */
      else if (w[i].status != 0)
        err = wave_failed(s, conn, task, &w[i], state, tries);
    for (size_t i = 0; i < nw; i++) {
      mbxc_free(&w[i].resp);
      free(w[i].p.body);
    }
    mbx_arena_reset(&a);
    if (nw == 0)
      break;
  }
  free(state);
  free(tries);
  free(held);
  free(w);
  return err;
}

/* Fetches the bodies of ids (at most SYNC_WAVE_MAX), pipelined, and keeps them in
 * one transaction. An item the server no longer has is skipped. */
static int fetch_some_bodies(struct mbxc_cache_syncer *s, mbxc_conn *conn, const uint64_t *ids,
                             size_t n)
{
  struct wave_op w[SYNC_WAVE_MAX];
  for (size_t i = 0; i < n; i++) {
    Mbx__Request req = MBX__REQUEST__INIT;
    Mbx__GetReq g = MBX__GET_REQ__INIT;
    req.body_case = MBX__REQUEST__BODY_GET;
    req.get = &g;
    g.item_id = ids[i];
    g.has_with_body = g.with_body = true;
    memset(&w[i], 0, sizeof(w[i]));
    int rc = mbxc_call(conn, &req, on_wave_reply, &w[i]);
    if (rc < 0) {
      w[i].done = true;
      w[i].status = rc;
    }
  }
  /* bounded by the requests' own timeouts */
  for (bool all = false; !all;) {
    all = true;
    for (size_t i = 0; i < n; i++)
      all = all && w[i].done;
    if (!all && !uv_run(mbxc__loop(conn), UV_RUN_ONCE))
      break;
  }
  struct mbxc__ct t;
  int err = mbxc__ct_begin(s->c, true, &t), got = 0;
  for (size_t i = 0; i < n; i++) {
    const Mbx__Response *r = w[i].resp;
    if (!w[i].done)
      err = err ? err : MBX_ECLOSED;
    else if (mbxc__sync_conn_failure(w[i].status))
      err = err ? err : w[i].status;
    else if (!err && r && r->body_case == MBX__RESPONSE__BODY_ITEM && r->item->has_body &&
             !(err = mbxc__ct_body_put(&t, ids[i], r->item->body.data, r->item->body.len)))
      got++;
    mbxc_free(&w[i].resp);
  }
  if (err) {
    mbxc__ct_abort(&t);
    return err;
  }
  count(s, &s->sum.bodies, (uint64_t)got);
  return mbxc__ct_commit(&t);
}

/* The message items among ids whose body the cache lacks (at most max). */
static size_t missing_bodies(struct mbxc__ct *t, const uint64_t *ids, size_t n, uint64_t *out,
                             size_t max)
{
  size_t k = 0;
  for (size_t i = 0; i < n && k < max; i++) {
    Mbx__CacheItem *rec;
    MDB_val b;
    if (!mbxc_cache_is_local_id(ids[i]) && mbxc__ct_item_get(t, ids[i], &rec) == 0 &&
        rec->view->kind == MBX__ITEM_KIND__ITEM_MESSAGE &&
        mbxc__ct_body_get(t, ids[i], &b) == MBX_ENOTFOUND && !in_ids(out, k, ids[i]))
      out[k++] = ids[i];
  }
  return k;
}

/* Bodies of messages with queued changes, before the server's changes are applied:
 * a rule may need them (a conflict copy keeps the version from here). */
static int prefetch_bodies(struct mbxc_cache_syncer *s, mbxc_conn *conn, const struct mbxc__task *task)
{
  for (size_t at = 0; at < task->nseqs; at += SYNC_WAVE_MAX) {
    size_t n = task->nseqs - at < SYNC_WAVE_MAX ? task->nseqs - at : SYNC_WAVE_MAX, k = 0;
    uint64_t items[SYNC_WAVE_MAX], want[SYNC_WAVE_MAX];
    struct mbxc__ct t;
    int err = mbxc__ct_begin(s->c, false, &t);
    if (err)
      return err;
    for (size_t i = 0; i < n; i++) {
      Mbx__CacheOp *op;
      if (mbxc__ct_queue_get(&t, task->seqs[at + i], &op) == 0)
        items[k++] = mbxc__ct_resolve(&t, op->id);
    }
    k = missing_bodies(&t, items, k, want, SYNC_WAVE_MAX);
    mbxc__ct_abort(&t);
    if (k && (err = fetch_some_bodies(s, conn, want, k)))
      return err;
  }
  return 0;
}

/* bodies = all: every message body of the folder not cached yet. */
static int fetch_bodies(struct mbxc_cache_syncer *s, mbxc_conn *conn, uint64_t folder)
{
  struct mbxc__ct t;
  int err = mbxc__ct_begin(s->c, false, &t);
  if (err)
    return err;
  uint64_t *ids, *want = NULL;
  size_t n, nw = 0;
  if (!(err = mbxc__ct_folder_items(&t, folder, &ids, &n)) &&
      !(want = malloc((n + 1) * sizeof(*want))))
    err = MBX_ENOMEM;
  if (!err)
    nw = missing_bodies(&t, ids, n, want, n < SYNC_BODIES_MAX ? n : SYNC_BODIES_MAX);
  mbxc__ct_abort(&t);
  for (size_t i = 0; !err && i < nw; i += SYNC_WAVE_MAX)
    err = fetch_some_bodies(s, conn, want + i, nw - i < SYNC_WAVE_MAX ? nw - i : SYNC_WAVE_MAX);
  free(want);
  return err;
}

/* What the round's folders did, in one transaction: their last sync time, counts,
 * and why one failed. */
static void record_folders(struct mbxc_cache_syncer *s)
{
  struct mbxc__ct t;
  if (s->ntasks == 0 || mbxc__ct_begin(s->c, true, &t))
    return;
  int err = 0;
  for (size_t i = 0; !err && i < s->ntasks; i++) {
    struct mbxc__task *k = &s->tasks[i];
    Mbx__CacheFolder *rec;
    Mbx__CacheFolderState *st, fresh = MBX__CACHE_FOLDER_STATE__INIT;
    if (!k->ran || k->gone || mbxc__ct_folder_get(&t, k->folder, &rec))
      continue; /* not reached, or it went on the server */
    if (mbxc__ct_fstate_get(&t, k->folder, &st))
      st = &fresh;
    st->has_last_sync_us = st->has_added = st->has_changed = st->has_deleted = true;
    st->has_pushed = true;
    if (!k->rc)
      st->last_sync_us = k->end_us;
    st->added = k->st.added;
    st->changed = k->st.changed;
    st->deleted = k->st.deleted;
    st->pushed = k->st.pushed;
    st->last_error = k->msg;
    err = mbxc__ct_fstate_put(&t, k->folder, st);
  }
  if (err)
    mbxc__ct_abort(&t);
  else
    mbxc__ct_commit(&t);
}

static int run_task(struct mbxc_cache_syncer *s, unsigned ci, struct mbxc__task *task)
{
  mbxc_conn *conn;
  int rc = conn_get(s, ci, &conn);
  if (rc)
    return rc;
  struct fstats fs = { 0 };
  bool gone = false;
  if (task->nseqs)
    rc = prefetch_bodies(s, conn, task);
  if (!rc && task->download)
    rc = folder_down(s, conn, task->folder, &fs, &gone);
  if (!rc && !gone && task->nseqs)
    rc = folder_push(s, conn, task, &fs);
  if (!rc && !gone && task->download && s->bodies_all)
    rc = fetch_bodies(s, conn, task->folder);
  const char *msg = rc ? (mbxc__sync_conn_failure(rc) ? why(conn, rc) : mbxc_cache_last_error())
                       : "";
  task->ran = true;
  task->gone = gone;
  task->rc = rc;
  task->end_us = mbx_now_us();
  task->st = fs;
  if (rc)
    snprintf(task->msg, sizeof(task->msg), "%.200s (%s)", msg, mbx_strerror_name(rc));
  pthread_mutex_lock(&s->mu);
  s->sum.added += fs.added;
  s->sum.changed += fs.changed;
  s->sum.deleted += fs.deleted;
  s->sum.folders++;
  uint32_t done = ++s->folders_done;
  pthread_mutex_unlock(&s->mu);
  struct mbxc_cache_progress p = {
    .event = MBXC_CACHE_EV_FOLDER_DONE, .status = rc, .text = task->path, .folder_id = task->folder,
    .folders_total = (uint32_t)s->ntasks, .folders_done = done, .added = fs.added,
    .changed = fs.changed, .deleted = fs.deleted, .pushed = fs.pushed,
  };
  mbxc__sync_emit(s, &p);
  return rc;
}

/* ======================================================================== */
/* tasks and threads                                                        */
/* ======================================================================== */

struct owner {
  uint64_t item, folder, seq;
  size_t order;
};

static int cmp_owner_item(const void *a, const void *b)
{
  const struct owner *x = a, *y = b;
  if (x->item != y->item)
    return x->item < y->item ? -1 : 1;
  return x->order < y->order ? -1 : x->order > y->order;
}

static int cmp_owner_folder(const void *a, const void *b)
{
  const struct owner *x = a, *y = b;
  if (x->folder != y->folder)
    return x->folder < y->folder ? -1 : 1;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Which folder pushes each queued item change: the folder the item is in on the
 * server (or is created in), decided by the item's first queued change, so that
 * all changes of one item go in order on one connection. */
static int owners(struct mbxc__ct *t, Mbx__CacheOp **ops, size_t n, struct owner **own_r,
                  size_t *nown_r)
{
  struct owner *own = malloc((n + 1) * sizeof(*own));
  size_t k = 0;
  if (!own)
    return MBX_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    Mbx__CacheOp *op = ops[i];
    uint64_t folder = 0;
    Mbx__CacheItem *rec;
    switch (op->op_case) {
    case MBX__CACHE_OP__OP_CREATE_FOLDER:
    case MBX__CACHE_OP__OP_UPDATE_FOLDER:
    case MBX__CACHE_OP__OP_DELETE_FOLDER:
      continue;
    case MBX__CACHE_OP__OP_APPEND:
      folder = mbxc__ct_resolve(t, op->append->folder_id);
      break;
    case MBX__CACHE_OP__OP_CREATE_ITEM:
      folder = mbxc__ct_resolve(t, op->create_item->folder_id);
      break;
    default:
      if (mbxc__ct_item_get(t, mbxc__ct_resolve(t, op->id), &rec) == 0)
        folder = mbxc__ct_resolve(t, mbxc__ct_item_srv_folder(rec));
      break;
    }
    own[k++] = (struct owner){ .item = mbxc__ct_resolve(t, op->id), .folder = folder,
                               .seq = op->seq, .order = i };
  }
  qsort(own, k, sizeof(*own), cmp_owner_item);
  for (size_t i = 1; i < k; i++)
    if (own[i].item == own[i - 1].item)
      own[i].folder = own[i - 1].folder; /* the first change decides */
  qsort(own, k, sizeof(*own), cmp_owner_folder);
  *own_r = own;
  *nown_r = k;
  return 0;
}

static bool wanted(const uint64_t *ids, size_t n, uint64_t id)
{
  for (size_t i = 0; i < n; i++)
    if (ids[i] == id)
      return true;
  return false;
}

static void free_tasks(struct mbxc_cache_syncer *s)
{
  for (size_t i = 0; i < s->ntasks; i++)
    free(s->tasks[i].seqs);
  free(s->tasks);
  s->tasks = NULL;
  s->ntasks = s->next_task = 0;
}

/* The folders of this round: every visible one (all), the ones asked for, those
 * with queued item changes, and those never synced yet. */
static int build_tasks(struct mbxc_cache_syncer *s, const uint64_t *ids, size_t nids, bool all)
{
  struct mbxc__ct t;
  int err = mbxc__ct_begin(s->c, false, &t);
  if (err)
    return err;
  Mbx__CacheFolder **fv;
  Mbx__CacheOp **ops;
  size_t nf, nops, nown = 0;
  struct owner *own = NULL;
  free_tasks(s);
  if ((err = mbxc__ct_folder_all(&t, &fv, &nf)) || (err = mbxc__ct_queue_all(&t, 0, &ops, &nops)) ||
      (err = owners(&t, ops, nops, &own, &nown)))
    goto out;
  Mbx__FoldersResp fr = MBX__FOLDERS_RESP__INIT;
  fr.folders = mbx_arena_alloc(&t.a, (nf + 1) * sizeof(*fr.folders));
  if (!(s->tasks = calloc(nf + 1, sizeof(*s->tasks))) || !fr.folders) {
    err = MBX_ENOMEM;
    goto out;
  }
  for (size_t i = 0; i < nf; i++)
    fr.folders[fr.n_folders++] = fv[i]->view;
  for (size_t i = 0; i < nf; i++) {
    Mbx__CacheFolder *f = fv[i];
    uint64_t id = f->view->id;
    if (mbxc_cache_is_local_id(id))
      continue;
    size_t lo = 0;
    while (lo < nown && own[lo].folder < id)
      lo++;
    size_t hi = lo;
    while (hi < nown && own[hi].folder == id)
      hi++;
    Mbx__CacheFolderState *st;
    bool never = mbxc__ct_fstate_get(&t, id, &st) != 0 || !st->has_token;
    bool want = hi > lo || (!f->hidden && (all || wanted(ids, nids, id) || never));
    if (!want)
      continue;
    struct mbxc__task *tk = &s->tasks[s->ntasks++];
    tk->folder = id;
    tk->download = !f->hidden;
    if (mbxc_folder_path(&fr, f->view, tk->path, sizeof(tk->path)) < 0)
      snprintf(tk->path, sizeof(tk->path), "%s", f->view->name);
    if (hi > lo) {
      if (!(tk->seqs = malloc((hi - lo) * sizeof(*tk->seqs)))) {
        err = MBX_ENOMEM;
        goto out;
      }
      for (size_t j = lo; j < hi; j++)
        tk->seqs[tk->nseqs++] = own[j].seq;
    }
  }
out:
  free(own);
  mbxc__ct_abort(&t);
  return err;
}

struct worker {
  struct mbxc_cache_syncer *s;
  unsigned idx;
  pthread_t th;
};

static void *worker_main(void *arg)
{
  struct worker *w = arg;
  struct mbxc_cache_syncer *s = w->s;
  for (;;) {
    pthread_mutex_lock(&s->mu);
    bool stop = s->next_task == s->ntasks || s->conn_err;
    struct mbxc__task *task = stop ? NULL : &s->tasks[s->next_task++];
    pthread_mutex_unlock(&s->mu);
    if (!task)
      break;
    int rc = run_task(s, w->idx, task);
    if (rc && mbxc__sync_conn_failure(rc)) {
      conn_drop(s, w->idx);
      pthread_mutex_lock(&s->mu);
      if (!s->conn_err)
        s->conn_err = rc;
      pthread_mutex_unlock(&s->mu);
      break;
    }
    if (rc) {
      pthread_mutex_lock(&s->mu);
      if (!s->task_err)
        s->task_err = rc;
      pthread_mutex_unlock(&s->mu);
    }
  }
  return NULL;
}

static int run_tasks(struct mbxc_cache_syncer *s)
{
  struct worker w[MBXC_CACHE_MAX_THREADS];
  unsigned n = s->threads < s->ntasks ? s->threads : (unsigned)s->ntasks, started = 1;
  if (n == 0)
    return 0;
  for (unsigned i = 0; i < n; i++)
    w[i] = (struct worker){ .s = s, .idx = i };
  for (unsigned i = 1; i < n; i++, started++)
    if (pthread_create(&w[i].th, NULL, worker_main, &w[i]) != 0)
      break; /* fewer threads, same work */
  worker_main(&w[0]);
  for (unsigned i = 1; i < started; i++)
    pthread_join(w[i].th, NULL);
  return s->conn_err ? s->conn_err : s->task_err;
}

/* ======================================================================== */
/* the pass                                                                 */
/* ======================================================================== */

static void record_pass(struct mbxc_cache_syncer *s, int rc, const char *msg)
{
  struct mbxc__ct t;
  if (mbxc__ct_begin(s->c, true, &t))
    return;
  char line[600];
  snprintf(line, sizeof(line), "%.500s (%s)", msg, mbx_strerror_name(rc));
  int err = mbxc__ct_meta_put(&t, "last_pass_error", rc ? line : "", rc ? strlen(line) : 0);
  if (!err && !rc)
    err = mbxc__ct_meta_put_u64(&t, "last_pass_us", (uint64_t)mbx_now_us());
  if (!err && !rc)
    err = mbxc__ct_meta_put_u64(&t, "hier_last_sync_us", (uint64_t)mbx_now_us());
  if (!err && !rc && s->servers)
    err = mbxc__ct_meta_put(&t, "server", s->servers, strlen(s->servers));
  if (!err && !rc && s->ca)
    err = mbxc__ct_meta_put(&t, "ca", s->ca, strlen(s->ca));
  if (err)
    mbxc__ct_abort(&t);
  else
    mbxc__ct_commit(&t);
}

static bool bodies_all(mbxc_cache *c)
{
  char v[16];
  return mbxc_cache_setting_get(c, "bodies", v, sizeof(v)) == 0 && strcmp(v, "all") == 0;
}

/* Queue entries whose item or folder is no longer in the cache (a rule or a local
 * deletion removed it without them): nothing to push. */
static int drop_orphans(struct mbxc_cache_syncer *s)
{
  struct mbxc__ct t;
  Mbx__CacheOp **ops;
  size_t n;
  int err = wbegin(s, &t);
  if (!err)
    err = mbxc__ct_queue_all(&t, 0, &ops, &n);
  for (size_t i = 0; !err && i < n; i++) {
    uint64_t id = mbxc__ct_resolve(&t, ops[i]->id);
    Mbx__CacheOp__OpCase k = ops[i]->op_case;
    bool folder = k == MBX__CACHE_OP__OP_CREATE_FOLDER || k == MBX__CACHE_OP__OP_UPDATE_FOLDER ||
                  k == MBX__CACHE_OP__OP_DELETE_FOLDER;
    Mbx__CacheFolder *f;
    Mbx__CacheItem *it;
    int e = folder ? mbxc__ct_folder_get(&t, id, &f) : mbxc__ct_item_get(&t, id, &it);
    if (e == MBX_ENOTFOUND)
      err = mbxc__ct_queue_del(&t, ops[i]);
    else if (e)
      err = e;
  }
  return wend(s, &t, err);
}

/* One round: hierarchy both ways, the folders, the folder deletions. */
static int sync_round(struct mbxc_cache_syncer *s, const uint64_t *ids, size_t n, bool all,
                      bool push, bool first)
{
  mbxc_conn *conn;
  int rc = drop_orphans(s);
  if (!rc)
    rc = conn_get(s, 0, &conn);
  if (!rc)
    rc = hier_down(s, conn);
  if (!rc && push)
    rc = hier_push(s, conn);
  if (!rc)
    rc = build_tasks(s, ids, n, all);
  if (!rc && !push)
    for (size_t i = 0; i < s->ntasks; i++)
      s->tasks[i].nseqs = 0; /* download only */
  if (!rc && first) {
    struct mbxc_cache_progress p = { .event = MBXC_CACHE_EV_PASS_START,
                                     .folders_total = (uint32_t)s->ntasks };
    mbxc__sync_emit(s, &p);
  }
  s->conn_err = s->task_err = 0;
  s->folders_done = 0;
  if (!rc)
    rc = run_tasks(s);
  record_folders(s);
  if (mbxc__sync_conn_failure(rc))
    return rc;
  /* folder-level failures (a refused change, a local error) do not stop the rest */
  int frc = rc;
  rc = 0;
  if (push && !(rc = conn_get(s, 0, &conn)))
    rc = push_folder_deletes(s, conn);
  return rc ? rc : frc;
}

int mbxc_cache_sync(mbxc_cache_syncer *s, const uint64_t *folder_ids, size_t n, unsigned flags,
                    Mbx__CacheSyncSummary **sum_r)
{
  uint64_t t0 = mbx_mono_us();
  pthread_mutex_lock(&s->mu);
  bool reopen = s->reopen || (s->last_used_us && t0 - s->last_used_us > SYNC_IDLE_REOPEN_US);
  s->reopen = false;
  pthread_mutex_unlock(&s->mu);
  if (reopen) /* idle long enough that the node may have closed them, or it restarted */
    for (unsigned i = 0; i < MBXC_CACHE_MAX_THREADS; i++)
      conn_drop(s, i);
  mbx__cache_sync_summary__init(&s->sum);
  s->conn_msg[0] = 0;
  s->bodies_all = bodies_all(s->c);
  bool push = !(flags & MBXC_CACHE_SYNC_NO_PUSH);
  int rc = 0;
  for (int round = 0; round < SYNC_ROUNDS_MAX; round++) {
    s->round_conflicts = 0;
    rc = sync_round(s, folder_ids, n, round == 0 && (flags & MBXC_CACHE_SYNC_ALL),
                    push, round == 0);
    if (rc && mbxc__sync_conn_failure(rc)) {
      conn_why(s, why(s->conns[0], rc));
      break;
    }
    if (!push || s->round_conflicts == 0)
      break; /* nothing new was queued by a rule */
    folder_ids = NULL;
    n = 0;
  }
  free_tasks(s);
  if (rc && mbxc__sync_conn_failure(rc))
    for (unsigned i = 0; i < MBXC_CACHE_MAX_THREADS; i++)
      conn_drop(s, i); /* the others are probably dead too: start afresh next time */
  struct mbxc__ct t;
  if (mbxc__ct_begin(s->c, false, &t) == 0) {
    s->sum.queued = mbxc__ct_queue_len(&t);
    mbxc__ct_abort(&t);
  }
  const char *msg = rc ? (mbxc__sync_conn_failure(rc) ? s->conn_msg : mbxc_cache_last_error())
                       : "";
  if (rc && (!msg || !*msg))
    msg = mbx_strerror(rc);
  record_pass(s, rc, msg);
  if (rc)
    mbxc__cache_fail(rc, "%s", msg); /* this thread's last error: what the caller prints */
  s->last_used_us = mbx_mono_us();
  s->sum.has_folders = s->sum.has_added = s->sum.has_changed = s->sum.has_deleted = true;
  s->sum.has_pushed = s->sum.has_conflicts = s->sum.has_queued = s->sum.has_failed = true;
  s->sum.has_elapsed_us = true;
  s->sum.elapsed_us = mbx_mono_us() - t0;
  s->sum.has_bodies = s->sum.bodies != 0;
  struct mbxc_cache_progress p = { .event = MBXC_CACHE_EV_PASS_DONE, .status = rc,
                                   .text = rc ? msg : "", .summary = &s->sum,
                                   .added = s->sum.added, .changed = s->sum.changed,
                                   .deleted = s->sum.deleted, .pushed = s->sum.pushed,
                                   .conflicts = s->sum.conflicts };
  mbxc__sync_emit(s, &p);
  if (sum_r) {
    size_t len = mbx__cache_sync_summary__get_packed_size(&s->sum);
    uint8_t *buf = malloc(len ? len : 1);
    *sum_r = NULL;
    if (buf) {
      mbx__cache_sync_summary__pack(&s->sum, buf);
      *sum_r = mbx__cache_sync_summary__unpack(NULL, len, buf);
      free(buf);
    }
  }
  return rc;
}

/* ======================================================================== */
/* syncer                                                                   */
/* ======================================================================== */

static char *dup_opt(const char *s, bool *ok)
{
  if (!s)
    return NULL;
  char *d = strdup(s);
  if (!d)
    *ok = false;
  return d;
}

int mbxc_cache_syncer_new(mbxc_cache *c, const struct mbxc_cache_sync_options *o,
                          mbxc_cache_syncer **s_r)
{
  if (!o || !o->conn.servers || !*o->conn.servers || !o->conn.ca_file || !*o->conn.ca_file)
    return mbxc__cache_fail(MBX_EINVAL, "no server or CA to sync with");
  if (!o->password)
    return mbxc__cache_fail(MBX_EINVAL, "no password to sync with");
  char lock[4200];
  snprintf(lock, sizeof(lock), "%s/sync.lock", mbxc_cache_path(c));
  int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0)
    return mbxc__cache_fail(MBX_EIO, "cannot open %s: %s", lock, strerror(errno));
  if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
    close(fd);
    return mbxc__cache_fail(MBX_EBUSY, "another mbx is syncing this profile (%s is locked)", lock);
  }
  mbxc_cache_syncer *s = calloc(1, sizeof(*s));
  bool ok = s != NULL;
  if (ok) {
    s->c = c;
    s->lock_fd = fd;
    s->o = o->conn;
    s->servers = dup_opt(o->conn.servers, &ok);
    s->ca = dup_opt(o->conn.ca_file, &ok);
    s->cert = dup_opt(o->conn.cert_file, &ok);
    s->key = dup_opt(o->conn.key_file, &ok);
    s->password = dup_opt(o->password, &ok);
    s->o.servers = s->servers;
    s->o.ca_file = s->ca;
    s->o.cert_file = s->cert;
    s->o.key_file = s->key;
    s->o.client_name = o->conn.client_name ? o->conn.client_name : "libmbx-cache";
    s->threads = o->threads ? o->threads : MBXC_CACHE_MAX_THREADS;
    if (s->threads > MBXC_CACHE_MAX_THREADS)
      s->threads = MBXC_CACHE_MAX_THREADS;
    s->max_changes = o->max_changes ? o->max_changes : MBXC_CACHE_DEFAULT_MAX_CHANGES;
    if (s->max_changes > SYNC_MAX_CHANGES_LIMIT)
      s->max_changes = SYNC_MAX_CHANGES_LIMIT;
    s->progress = o->progress;
    s->progress_arg = o->progress_arg;
    if (pthread_mutex_init(&s->mu, NULL) != 0)
      ok = false;
    else
      s->mu_ok = true;
  }
  if (!ok) {
    if (s)
      mbxc_cache_syncer_free(&s);
    else
      close(fd);
    return mbxc__cache_fail(MBX_ENOMEM, "out of memory");
  }
  *s_r = s;
  return 0;
}

void mbxc_cache_syncer_free(mbxc_cache_syncer **sp)
{
  mbxc_cache_syncer *s = sp ? *sp : NULL;
  if (!s)
    return;
  for (unsigned i = 0; i < MBXC_CACHE_MAX_THREADS; i++)
    conn_drop(s, i);
  free_tasks(s);
  if (s->password) {
    explicit_bzero(s->password, strlen(s->password));
    free(s->password);
  }
  free(s->servers);
  free(s->ca);
  free(s->cert);
  free(s->key);
  if (s->mu_ok)
    pthread_mutex_destroy(&s->mu);
  if (s->lock_fd >= 0)
    close(s->lock_fd); /* releases the flock */
  free(s);
  *sp = NULL;
}

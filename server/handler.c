/* handler.c — the node's request handlers. Rights are checked first (user requests
 * need a logged-in mailbox, admin requests the operator role); reads answer at once
 * from a short read transaction; writes run on the database's writer thread through
 * the group committer and are answered only once durable; scrypt runs on the libuv
 * threadpool. Every error carries a one-line message meant for a person. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "commit.h"
#include "conn.h"
#include "handler.h"
#include "handler_copy.h"
#include "handler_move.h"
#include "handler_repl.h"
#include "kinds.h"
#include "log.h"
#include "mbx_error.h"
#include "notify.h"
#include "passwd.h"

#define REQ_PENDING MBX_REQ_PENDING
#define LIST_LIMIT_DEFAULT 50
#define LIST_LIMIT_MAX 1000
#define SYNC_MAX_DEFAULT 1000
#define SYNC_MAX_LIMIT 10000

/* ---- helpers ----------------------------------------------------------------------- */

#define req_fail mbx_req_fail

static struct mbx_node *req_node(struct mbx_req *r) { return r->conn->node; }

/* A store error, worded for the object it concerns ("folder 12", "item 7"). */
static int req_store_fail(struct mbx_req *r, int rc, const char *what)
{
  struct mbx_node *n = req_node(r);
  switch (rc) {
  case MBX_ENOTFOUND: return req_fail(r, rc, "%s not found", what);
  case MBX_EEXIST: return req_fail(r, rc, "%s already exists", what);
  case MBX_EQUOTA:
    return req_fail(r, rc, "the mailbox is over its quota; delete items or ask for a larger quota");
  case MBX_ETOOBIG:
    return req_fail(r, rc, "message too large; the limit is %llu bytes",
                    (unsigned long long)n->conf->max_message_bytes);
  case MBX_ENOSPC:
    return req_fail(r, rc, "database %s is full; the operator must raise db_map_size",
                    r->db ? r->db->name : "?");
  case MBX_ESTATE:
    return req_fail(r, rc, "sync state is invalid or from another folder or database; "
                           "sync again without a state");
  case MBX_EPERM: return req_fail(r, rc, "%s is a well-known folder and cannot be changed", what);
  case MBX_ENOTEMPTY: return req_fail(r, rc, "%s is not empty", what);
  case MBX_EINVAL: return req_fail(r, rc, "invalid request for %s", what);
  case MBX_ESHUTDOWN: return req_fail(r, rc, "node %s is shutting down", n->conf->node_name);
  default: return req_fail(r, rc, "%s: %s", what, mbx_strerror(rc));
  }
}

static const char *req_what(struct mbx_req *r, const char *kind, uint64_t id)
{
  return mbx_arena_printf(&r->arena, "%s %llu", kind, (unsigned long long)id);
}

static bool conn_is(const struct mbx_conn *c, Mbx__Role role)
{
  return c->has_role && c->role == role;
}

static void *req_pbnew(struct mbx_req *r, const ProtobufCMessageDescriptor *d)
{
  return mbx_arena_pbnew(&r->arena, d);
}

/* Opens the request's read transaction on db (ended when the request finishes). */
static int req_read(struct mbx_req *r, struct mbx_db *db)
{
  if (!db || !db->store)
    return req_fail(r, MBX_ESHUTDOWN, "database is not open");
  if (r->rtxn)
    mbx_store_rtxn_end(&r->rtxn);
  int rc = mbx_store_rtxn_begin(db->store, &r->rtxn);
  if (rc < 0)
    return req_fail(r, rc, "database %s: cannot read: %s", db->name, mbx_strerror(rc));
  return 0;
}

/* The mailbox holding address on any open database. */
static int req_find_address(struct mbx_req *r, const char *address, struct mbx_db **db_r,
                            uint64_t *mailbox_id_r)
{
  struct mbx_node *n = req_node(r);
  for (size_t i = 0; i < n->n_dbs; i++) {
    struct mbx_db *db = n->dbs[i];
    struct mbx_rtxn *t;
    if (!db->store || mbx_store_rtxn_begin(db->store, &t) < 0)
      continue;
    int rc = mbx_store_lookup_address(t, address, mailbox_id_r);
    mbx_store_rtxn_end(&t);
    if (rc == 0) {
      *db_r = db;
      return 0;
    }
  }
  return MBX_ENOTFOUND;
}

static Mbx__MailboxInfo *req_mailbox_info(struct mbx_req *r, const struct mbx_db *db,
                                          const Mbx__Mailbox *mb)
{
  Mbx__MailboxInfo *mi = req_pbnew(r, &mbx__mailbox_info__descriptor);
  if (!mi)
    return NULL;
  mi->address = mb->address;
  mi->database = (char *)db->name;
  mi->display_name = mb->display_name;
  mi->n_aliases = mb->n_aliases;
  mi->aliases = mb->aliases;
  mi->has_used_bytes = mi->has_item_count = 1;
  mi->used_bytes = mb->used_bytes;
  mi->item_count = mb->item_count;
  mi->has_quota_warn_bytes = mi->has_quota_prohibit_bytes = 1;
  mi->quota_warn_bytes = mb->quota_warn_bytes;
  mi->quota_prohibit_bytes = mb->quota_prohibit_bytes;
  return mi;
}

/* ---- reply bodies of writes --------------------------------------------------------- */

static bool req_quota_warning(struct mbx_req *r, uint64_t mailbox_id);

static int fill_item(struct mbx_req *r)
{
  Mbx__ItemResp *ir = req_pbnew(r, &mbx__item_resp__descriptor);
  if (!ir)
    return MBX_ENOMEM;
  ir->item = r->out.item;
  r->resp.body_case = MBX__RESPONSE__BODY_ITEM;
  r->resp.item = ir;
  return 0;
}

static int fill_folder(struct mbx_req *r)
{
  Mbx__FolderResp *fr = req_pbnew(r, &mbx__folder_resp__descriptor);
  if (!fr)
    return MBX_ENOMEM;
  fr->folder = r->out.folder;
  r->resp.body_case = MBX__RESPONSE__BODY_FOLDER;
  r->resp.folder = fr;
  return 0;
}

static int fill_count(struct mbx_req *r)
{
  Mbx__CountResp *cr = req_pbnew(r, &mbx__count_resp__descriptor);
  if (!cr)
    return MBX_ENOMEM;
  cr->has_count = 1;
  cr->count = r->out.count;
  r->resp.body_case = MBX__RESPONSE__BODY_COUNT;
  r->resp.count = cr;
  return 0;
}

/* Item replies that carry the quota warning (read fresh on every answer). */
static bool req_quota_reply(Mbx__Request__BodyCase c)
{
  return c == MBX__REQUEST__BODY_APPEND || c == MBX__REQUEST__BODY_CREATE_ITEM ||
         c == MBX__REQUEST__BODY_COPY || c == MBX__REQUEST__BODY_DELIVER;
}

/* Writer thread: the body a successful keyed write answers with, as complete_* would
 * build it (less the quota warning). */
static int req_fill_reply(struct mbx_req *r)
{
  switch (r->rq->body_case) {
  case MBX__REQUEST__BODY_CREATE_FOLDER: case MBX__REQUEST__BODY_UPDATE_FOLDER:
    return fill_folder(r);
  case MBX__REQUEST__BODY_DELETE_FOLDER: case MBX__REQUEST__BODY_EMPTY_FOLDER:
  case MBX__REQUEST__BODY_DELETE:
    return fill_count(r);
  default:
    return fill_item(r);
  }
}

/* ---- idempotency keys ----------------------------------------------------------------- */

/* Loop thread: takes a keyed write's key, scoped to the session's mailbox (or a
 * deliver's recipient). */
static int req_idem_setup(struct mbx_req *r, uint64_t scope_id, uint32_t scope_kind)
{
  const Mbx__Request *q = r->rq;
  if (!q->has_idempotency_key || !mbx_kind_keyed_write(q->body_case))
    return 0;
  if (q->idempotency_key.len == 0 || q->idempotency_key.len > MBX_STORE_IDEM_KEY_MAX)
    return req_fail(r, MBX_EINVAL, "the idempotency key must be 1 to %d bytes, not %zu",
                    MBX_STORE_IDEM_KEY_MAX, q->idempotency_key.len);
  r->idem_key = q->idempotency_key.data;
  r->idem_key_len = q->idempotency_key.len;
  r->idem_scope = scope_id;
  r->idem_kind = scope_kind;
  return 0;
}

/* Writer thread, in the write's unit: 1 if the key was recorded before (idem_reply is
 * the answer and nothing is written), 0 if not, < 0 on failure. */
static int req_idem_lookup(struct mbx_wtxn *w, struct mbx_req *r)
{
  struct mbx_store_idem rec;
  int rc = mbx_store_idem_get(w, r->idem_scope, r->idem_kind, r->idem_key, r->idem_key_len,
                              &r->arena, &rec);
  if (rc == MBX_ENOTFOUND)
    return 0;
  if (rc < 0)
    return rc;
  if (rec.request != (uint32_t)r->rq->body_case) {
    r->idem_mismatch = true;
    return MBX_EINVAL;
  }
  r->idem_hit = true;
  r->idem_reply = rec.reply;
  r->idem_reply_len = rec.reply_len;
  return 1;
}

/* Writer thread, after the write succeeded: records the key and the reply in the
 * same unit (through the log). A failure here fails the write: a write whose key is
 * not recorded could be applied twice. */
static int req_idem_record(struct mbx_wtxn *w, struct mbx_req *r)
{
  int rc = req_fill_reply(r);
  if (rc < 0)
    return rc;
  size_t n = mbx__response__get_packed_size(&r->resp);
  uint8_t *buf = mbx_arena_alloc(&r->arena, n ? n : 1);
  if (!buf)
    return MBX_ENOMEM;
  mbx__response__pack(&r->resp, buf);
  return mbx_store_idem_put(w, r->idem_scope, r->idem_kind, r->idem_key, r->idem_key_len,
                            (uint32_t)r->rq->body_case, buf, n);
}

/* Loop thread: answers a repeated keyed write with the reply recorded the first time. */
static void req_idem_answer(struct mbx_req *r)
{
  Mbx__Response *first =
      mbx__response__unpack(&r->arena.pb, r->idem_reply_len, r->idem_reply);
  if (!first) {
    req_fail(r, MBX_ECORRUPT, "the reply recorded with this idempotency key cannot be read");
    return;
  }
  r->resp = *first;
  r->resp.error = NULL;
  if (r->resp.body_case == MBX__RESPONSE__BODY_ITEM && r->resp.item && r->resp.item->item &&
      req_quota_reply(r->rq->body_case)) {
    r->resp.item->has_quota_warning = 1;
    r->resp.item->quota_warning = req_quota_warning(r, r->resp.item->item->mailbox_id);
  }
  mbx_debug("client %s: request %llu repeats an idempotency key: answered with the first "
            "reply, nothing written", r->conn->peer, (unsigned long long)r->rq->id);
}

/* ---- writes through the group committer -------------------------------------------- */

/* Writer thread, in the request's unit: the idempotency lookup, the write, the key's
 * record, and the list of what changed (for notifications), all in one unit. */
static int req_commit_run(struct mbx_wtxn *w, void *arg)
{
  struct mbx_req *r = arg;
  int rc;
  /* The write fence, again, on the writer: a unit queued while the copy was active
   * is refused if it stopped being active (or began another epoch) since. */
  if (!mbx_db_may_write(r->db, r->write_epoch))
    return MBX_ENOTACTIVE;
  if (r->idem_key && (rc = req_idem_lookup(w, r)) != 0)
    return rc > 0 ? 0 : rc;
  if ((rc = r->run(w, r)) < 0)
    return rc;
  if (r->idem_key && (rc = req_idem_record(w, r)) < 0)
    return rc;
  const struct mbx_store_change *v;
  size_t n = mbx_store_unit_changes(w, &v);
  if (n && (r->changes = mbx_arena_memdup(&r->arena, v, n * sizeof(*v))) != NULL)
    r->n_changes = n;
  return 0;
}

static void req_commit_done(int status, uint64_t lsn, void *arg)
{
  struct mbx_req *r = arg;
  r->status = status;
  if (status == 0 && r->n_changes && r->db)
    mbx_notify_publish(req_node(r), r->db, r->changes, r->n_changes,
                       mbx_committer_done_time_us());
  if (status == 0) {                  /* who acknowledged it, in which epoch */
    r->resp.ack_node = (char *)req_node(r)->conf->node_name;
    r->resp.has_ack_epoch = 1;
    r->resp.ack_epoch = r->write_epoch;
  }
  if (status == MBX_ENOTACTIVE)
    mbx_handler_not_active(r, r->db);
  else if (status == 0 && r->idem_hit)
    req_idem_answer(r);
  else if (status == MBX_EINVAL && r->idem_mismatch)
    req_fail(r, status, "this idempotency key was already used for another kind of request");
  else
    r->complete(r);
  mbx_req_finish(r);
}

static int req_submit(struct mbx_req *r, struct mbx_db *db,
                      int (*run)(struct mbx_wtxn *, struct mbx_req *),
                      void (*complete)(struct mbx_req *))
{
  if (!db || !db->committer)
    return req_fail(r, MBX_ESHUTDOWN, "database is not accepting writes (shutting down)");
  /* The write fence, at the start: every write, admin writes included, is admitted
   * only by an active copy, and only in the epoch it is active in now. */
  if (!mbx_db_may_write(db, 0))
    return mbx_handler_not_active(r, db);
  r->write_epoch = mbx_db_write_epoch(db);
  r->db = db;
  r->run = run;
  r->complete = complete;
  int rc = mbx_committer_submit(db->committer, req_commit_run, req_commit_done, r);
  if (rc == MBX_EBUSY)
    return req_fail(r, rc, "database %s is busy (%llu writes queued); try again", db->name,
                    (unsigned long long)req_node(r)->conf->commit_queue_max);
  if (rc < 0)
    return req_fail(r, rc, "database %s: %s", db->name, mbx_strerror(rc));
  return REQ_PENDING;
}

/* True when the mailbox is over its warning level (after a delivery/append). */
static bool req_quota_warning(struct mbx_req *r, uint64_t mailbox_id)
{
  struct mbx_rtxn *t;
  Mbx__Mailbox *mb = NULL;
  if (!r->db->store || mbx_store_rtxn_begin(r->db->store, &t) < 0)
    return false;
  int rc = mbx_store_get_mailbox(t, mailbox_id, &r->arena, &mb);
  mbx_store_rtxn_end(&t);
  return rc == 0 && mb->quota_warn_bytes && mb->used_bytes > mb->quota_warn_bytes;
}

static void complete_item(struct mbx_req *r, const char *what, bool quota)
{
  if (r->status < 0) {
    req_store_fail(r, r->status, what);
    return;
  }
  if (fill_item(r) < 0) {
    req_fail(r, MBX_ENOMEM, "out of memory building the response");
    return;
  }
  if (quota && r->out.item) {
    r->resp.item->has_quota_warning = 1;
    r->resp.item->quota_warning = req_quota_warning(r, r->out.item->mailbox_id);
  }
}

static void complete_folder(struct mbx_req *r, const char *what)
{
  if (r->status < 0)
    req_store_fail(r, r->status, what);
  else if (fill_folder(r) < 0)
    req_fail(r, MBX_ENOMEM, "out of memory building the response");
}

static void complete_count(struct mbx_req *r, const char *what)
{
  if (r->status < 0)
    req_store_fail(r, r->status, what);
  else if (fill_count(r) < 0)
    req_fail(r, MBX_ENOMEM, "out of memory building the response");
}

/* ---- hello, ping, login ---------------------------------------------------------------- */

static int h_hello(struct mbx_req *r)
{
  struct mbx_node *n = req_node(r);
  Mbx__HelloResp *h = req_pbnew(r, &mbx__hello_resp__descriptor);
  if (!h)
    return MBX_ENOMEM;
  h->has_protocol_version = h->has_max_frame_bytes = h->has_max_message_bytes = 1;
  h->protocol_version = MBX_PROTOCOL_VERSION;
  h->node = (char *)n->conf->node_name;
  h->server_version = MBX_VERSION;
  h->max_frame_bytes = n->conf->max_frame_bytes;
  h->max_message_bytes = n->conf->max_message_bytes;
  r->resp.body_case = MBX__RESPONSE__BODY_HELLO;
  r->resp.hello = h;
  return 0;
}

static int h_ping(struct mbx_req *r)
{
  Mbx__PingResp *p = req_pbnew(r, &mbx__ping_resp__descriptor);
  if (!p)
    return MBX_ENOMEM;
  p->has_time_us = 1;
  p->time_us = mbx_now_us();
  r->resp.body_case = MBX__RESPONSE__BODY_PING;
  r->resp.ping = p;
  return 0;
}

static const char *role_name(Mbx__Role role)
{
  switch (role) {
  case MBX__ROLE__ROLE_OPERATOR: return "operator";
  case MBX__ROLE__ROLE_TRANSPORT: return "transport";
  default: return "user";
  }
}

static void login_work(uv_work_t *w)
{
  struct mbx_req *r = w->data;
  const char *pw = r->rq->login->password ? r->rq->login->password : "";
  r->work_rc = mbx_passwd_verify(pw, r->hash);
}

static void login_after(uv_work_t *w, int status)
{
  struct mbx_req *r = w->data;
  struct mbx_conn *c = r->conn;
  Mbx__LoginReq *l = r->rq->login;
  Mbx__Role role = l->has_role ? l->role : MBX__ROLE__ROLE_USER;
  if (status == UV_ECANCELED) {
    req_fail(r, MBX_ESHUTDOWN, "node is shutting down");
  } else if (!r->found || r->work_rc != 0) {
    if (role == MBX__ROLE__ROLE_USER)
      mbx_warning("login failed: user %.200s from %s", l->user, c->peer);
    else
      mbx_warning("login failed: %s password from %s", role_name(role), c->peer);
    req_fail(r, MBX_EAUTH, "authentication failed");
  } else {
    Mbx__LoginResp *lr = req_pbnew(r, &mbx__login_resp__descriptor);
    if (!lr) {
      req_fail(r, MBX_ENOMEM, "out of memory");
      mbx_req_finish(r);
      return;
    }
    if (role == MBX__ROLE__ROLE_USER && !mbx_db_is_active(r->db)) {
      mbx_handler_not_active(r, r->db);   /* the client logs in again there */
      mbx_req_finish(r);
      return;
    }
    c->has_role = true;
    c->role = role;
    lr->has_role = 1;
    lr->role = role;
    if (role == MBX__ROLE__ROLE_USER) {
      Mbx__Mailbox *mb = r->out.mailbox;
      c->db = r->db;
      c->mailbox_id = mb->id;
      snprintf(c->address, sizeof(c->address), "%s", mb->address);
      lr->address = mb->address;
      lr->display_name = mb->display_name;
      lr->database = r->db->name;
      lr->has_mailbox_id = 1;
      lr->mailbox_id = mb->id;
    } else {
      c->db = NULL;
      c->mailbox_id = 0;
    }
    mbx_debug("client %s: logged in as %s %s", c->peer, role_name(role),
              role == MBX__ROLE__ROLE_USER ? c->address : "");
    r->resp.body_case = MBX__RESPONSE__BODY_LOGIN;
    r->resp.login = lr;
  }
  mbx_req_finish(r);
}

static int h_login(struct mbx_req *r)
{
  struct mbx_node *n = req_node(r);
  Mbx__LoginReq *l = r->rq->login;
  Mbx__Role role = l->has_role ? l->role : MBX__ROLE__ROLE_USER;
  r->found = false;
  r->hash = n->dummy_hash;
  if (role == MBX__ROLE__ROLE_USER) {
    if (!l->user || !*l->user)
      return req_fail(r, MBX_EINVAL, "user (the mailbox address) is required");
    struct mbx_db *db;
    uint64_t id;
    if (req_find_address(r, l->user, &db, &id) == 0 && req_read(r, db) == 0 &&
        mbx_store_get_mailbox(r->rtxn, id, &r->arena, &r->out.mailbox) == 0 &&
        r->out.mailbox->password_hash) {
      r->db = db;
      r->found = true;
      r->hash = r->out.mailbox->password_hash;   /* in the arena: outlives the txn */
    }
    if (r->rtxn)
      mbx_store_rtxn_end(&r->rtxn);
  } else if (role == MBX__ROLE__ROLE_OPERATOR || role == MBX__ROLE__ROLE_TRANSPORT) {
    const char *h = role == MBX__ROLE__ROLE_OPERATOR ? n->conf->operator_password_hash
                                                      : n->conf->transport_password_hash;
    if (h) {
      r->found = true;
      r->hash = h;
    }
  } else {
    return req_fail(r, MBX_EINVAL, "unknown role %d", (int)role);
  }
  r->work.data = r;
  int rc = uv_queue_work(n->loop, &r->work, login_work, login_after);
  if (rc != 0)
    return req_fail(r, MBX_ENOMEM, "cannot verify the password now: %s", uv_strerror(rc));
  return REQ_PENDING;
}

/* ---- user reads -------------------------------------------------------------------------- */

static int h_folders(struct mbx_req *r)
{
  int rc = req_read(r, r->db);
  if (rc < 0)
    return rc;
  Mbx__FoldersResp *fr = req_pbnew(r, &mbx__folders_resp__descriptor);
  if (!fr)
    return MBX_ENOMEM;
  rc = mbx_store_list_folders(r->rtxn, r->mailbox_id, &r->arena, &fr->folders, &fr->n_folders);
  if (rc < 0)
    return req_store_fail(r, rc, "mailbox");
  r->resp.body_case = MBX__RESPONSE__BODY_FOLDERS;
  r->resp.folders = fr;
  return 0;
}

static int h_list(struct mbx_req *r)
{
  Mbx__ListReq *q = r->rq->list;
  uint32_t limit = q->has_limit && q->limit ? q->limit : LIST_LIMIT_DEFAULT;
  if (limit > LIST_LIMIT_MAX)
    limit = LIST_LIMIT_MAX;
  int rc = req_read(r, r->db);
  if (rc < 0)
    return rc;
  Mbx__ListResp *lr = req_pbnew(r, &mbx__list_resp__descriptor);
  if (!lr)
    return MBX_ENOMEM;
  rc = mbx_store_list_items(r->rtxn, r->mailbox_id, q->folder_id, q->has_offset ? q->offset : 0,
                            limit, &r->arena, &lr->items, &lr->n_items, &lr->total);
  if (rc < 0)
    return req_store_fail(r, rc, req_what(r, "folder", q->folder_id));
  lr->has_total = 1;
  r->resp.body_case = MBX__RESPONSE__BODY_LIST;
  r->resp.list = lr;
  return 0;
}

static int h_get(struct mbx_req *r)
{
  Mbx__GetReq *q = r->rq->get;
  int rc = req_read(r, r->db);
  if (rc < 0)
    return rc;
  Mbx__ItemResp *ir = req_pbnew(r, &mbx__item_resp__descriptor);
  if (!ir)
    return MBX_ENOMEM;
  const uint8_t *body = NULL;
  size_t len = 0;
  rc = mbx_store_get_item(r->rtxn, r->mailbox_id, q->item_id, &r->arena, &ir->item,
                          q->with_body ? &body : NULL, &len);
  if (rc < 0)
    return req_store_fail(r, rc, req_what(r, "item", q->item_id));
  if (q->with_body && body) {
    /* Borrowed from the read transaction, which stays open until the answer is packed. */
    ir->has_body = 1;
    ir->body.data = (uint8_t *)body;
    ir->body.len = len;
  }
  r->resp.body_case = MBX__RESPONSE__BODY_ITEM;
  r->resp.item = ir;
  return 0;
}

static uint32_t sync_max(bool has, uint32_t v)
{
  if (!has || v == 0)
    return SYNC_MAX_DEFAULT;
  return v > SYNC_MAX_LIMIT ? SYNC_MAX_LIMIT : v;
}

/* A sync state refused for a reason the store names (a discarded history): the
 * client must start that folder (or the hierarchy) over. */
static int req_sync_refused(struct mbx_req *r, const char *why, const char *what)
{
  mbx_notice("db %s epoch %llu: sync of %s refused: %s", r->db->name,
             (unsigned long long)mbx_store_epoch(r->db->store), what, why);
  return req_fail(r, MBX_ESTATE, "%s; sync %s again without a state", why, what);
}

static int h_sync(struct mbx_req *r)
{
  Mbx__SyncReq *q = r->rq->sync;
  int rc = req_read(r, r->db);
  if (rc < 0)
    return rc;
  struct mbx_sync_result res;
  memset(&res, 0, sizeof(res));
  rc = mbx_store_sync_folder(r->rtxn, r->mailbox_id, q->folder_id,
                             q->has_state ? q->state.data : NULL, q->has_state ? q->state.len : 0,
                             sync_max(q->has_max_changes, q->max_changes), &r->arena, &res);
  if (rc == MBX_ESTATE && res.why)
    return req_sync_refused(r, res.why, req_what(r, "folder", q->folder_id));
  if (rc < 0)
    return req_store_fail(r, rc, req_what(r, "folder", q->folder_id));
  Mbx__SyncResp *sr = req_pbnew(r, &mbx__sync_resp__descriptor);
  if (!sr)
    return MBX_ENOMEM;
  sr->added = res.added;
  sr->n_added = res.n_added;
  sr->changed = res.changed;
  sr->n_changed = res.n_changed;
  sr->deleted = res.deleted;
  sr->n_deleted = res.n_deleted;
  sr->state.data = res.state;
  sr->state.len = res.state_len;
  sr->has_more = 1;
  sr->more = res.more;
  r->resp.body_case = MBX__RESPONSE__BODY_SYNC;
  r->resp.sync = sr;
  return 0;
}

static int h_sync_folders(struct mbx_req *r)
{
  Mbx__SyncFoldersReq *q = r->rq->sync_folders;
  int rc = req_read(r, r->db);
  if (rc < 0)
    return rc;
  struct mbx_sync_result res;
  memset(&res, 0, sizeof(res));
  rc = mbx_store_sync_hierarchy(r->rtxn, r->mailbox_id, q->has_state ? q->state.data : NULL,
                                q->has_state ? q->state.len : 0,
                                sync_max(q->has_max_changes, q->max_changes), &r->arena, &res);
  if (rc == MBX_ESTATE && res.why)
    return req_sync_refused(r, res.why, "folder hierarchy");
  if (rc < 0)
    return req_store_fail(r, rc, "folder hierarchy");
  Mbx__SyncFoldersResp *sr = req_pbnew(r, &mbx__sync_folders_resp__descriptor);
  if (!sr)
    return MBX_ENOMEM;
  sr->added = res.fadded;
  sr->n_added = res.n_added;
  sr->changed = res.fchanged;
  sr->n_changed = res.n_changed;
  sr->deleted = res.deleted;
  sr->n_deleted = res.n_deleted;
  sr->state.data = res.state;
  sr->state.len = res.state_len;
  sr->has_more = 1;
  sr->more = res.more;
  r->resp.body_case = MBX__RESPONSE__BODY_SYNC_FOLDERS;
  r->resp.sync_folders = sr;
  return 0;
}

/* ---- user writes (writer thread: run_*, loop thread: done_*) ------------------------------ */

static int run_create_folder(struct mbx_wtxn *w, struct mbx_req *r)
{
  Mbx__CreateFolderReq *q = r->rq->create_folder;
  return mbx_store_create_folder(w, r->mailbox_id, q->has_parent_id ? q->parent_id : 0, q->name,
                                 q->has_folder_class ? q->folder_class : MBX__FOLDER_CLASS__FOLDER_MAIL,
                                 &r->arena, &r->out.folder);
}

static void done_create_folder(struct mbx_req *r)
{
  Mbx__CreateFolderReq *q = r->rq->create_folder;
  if (r->status == MBX_ENOTFOUND && q->parent_id)
    req_fail(r, r->status, "parent folder %llu not found", (unsigned long long)q->parent_id);
  else if (r->status == MBX_EINVAL)
    req_fail(r, r->status, "'%s' is not a valid folder name", q->name);
  else
    complete_folder(r, mbx_arena_printf(&r->arena, "folder '%s'", q->name));
}

static int run_update_folder(struct mbx_wtxn *w, struct mbx_req *r)
{
  Mbx__UpdateFolderReq *q = r->rq->update_folder;
  return mbx_store_update_folder(w, r->mailbox_id, q->folder_id, q->name, q->has_parent_id,
                                 q->parent_id, &r->arena, &r->out.folder);
}

static void done_update_folder(struct mbx_req *r)
{
  Mbx__UpdateFolderReq *q = r->rq->update_folder;
  if (r->status == MBX_EEXIST && q->name)
    req_fail(r, r->status, "folder '%s' already exists there", q->name);
  else if (r->status == MBX_EINVAL && q->has_parent_id)
    req_fail(r, r->status, "cannot move folder %llu under itself or one of its subfolders",
             (unsigned long long)q->folder_id);
  else
    complete_folder(r, req_what(r, "folder", q->folder_id));
}

static int run_delete_folder(struct mbx_wtxn *w, struct mbx_req *r)
{
  r->out.count = 1;
  return mbx_store_delete_folder(w, r->mailbox_id, r->rq->delete_folder->folder_id);
}

static void done_delete_folder(struct mbx_req *r)
{
  complete_count(r, req_what(r, "folder", r->rq->delete_folder->folder_id));
}

static int run_empty_folder(struct mbx_wtxn *w, struct mbx_req *r)
{
  return mbx_store_empty_folder(w, r->mailbox_id, r->rq->empty_folder->folder_id, &r->out.count);
}

static void done_empty_folder(struct mbx_req *r)
{
  complete_count(r, req_what(r, "folder", r->rq->empty_folder->folder_id));
}

static int run_append(struct mbx_wtxn *w, struct mbx_req *r)
{
  Mbx__AppendReq *q = r->rq->append;
  int64_t when = q->has_received_us && q->received_us ? q->received_us : mbx_now_us();
  return mbx_store_append(w, r->mailbox_id, q->folder_id, q->body.data, q->body.len,
                          q->has_flags ? q->flags : 0, when, &r->arena, &r->out.item);
}

static void done_append(struct mbx_req *r)
{
  complete_item(r, req_what(r, "folder", r->rq->append->folder_id), true);
}

static int run_create_item(struct mbx_wtxn *w, struct mbx_req *r)
{
  Mbx__CreateItemReq *q = r->rq->create_item;
  return mbx_store_create_item(w, r->mailbox_id, q->folder_id, q->item, &r->arena, &r->out.item);
}

static void done_create_item(struct mbx_req *r)
{
  if (r->status == MBX_EINVAL)
    req_fail(r, r->status, "the item does not fit folder %llu (kind and folder class must match)",
             (unsigned long long)r->rq->create_item->folder_id);
  else
    complete_item(r, req_what(r, "folder", r->rq->create_item->folder_id), true);
}

/* Writer thread: a cached client's precondition (if_cn), checked in the write's unit. */
static int req_check_cn(struct mbx_wtxn *w, struct mbx_req *r, uint64_t item_id, bool has,
                        uint64_t if_cn)
{
  return has ? mbx_store_check_cn(w, r->mailbox_id, item_id, if_cn, &r->conflict_cn) : 0;
}

/* Loop thread: the ECONFLICT answer; true if r failed that way. */
static bool req_conflict(struct mbx_req *r, uint64_t item_id, uint64_t if_cn)
{
  if (r->status != MBX_ECONFLICT)
    return false;
  req_fail(r, MBX_ECONFLICT, "item %llu changed since cn %llu (now %llu)",
           (unsigned long long)item_id, (unsigned long long)if_cn,
           (unsigned long long)r->conflict_cn);
  return true;
}

static int run_set_flags(struct mbx_wtxn *w, struct mbx_req *r)
{
  Mbx__SetFlagsReq *q = r->rq->set_flags;
  bool cats = q->has_set_categories && q->set_categories;
  int rc = req_check_cn(w, r, q->item_id, q->has_if_cn, q->if_cn);
  if (rc < 0)
    return rc;
  return mbx_store_set_flags(w, r->mailbox_id, q->item_id, q->add, q->remove,
                             cats ? (const char *const *)q->categories : NULL,
                             cats ? q->n_categories : 0, &r->arena, &r->out.item);
}

static void done_set_flags(struct mbx_req *r)
{
  Mbx__SetFlagsReq *q = r->rq->set_flags;
  if (!req_conflict(r, q->item_id, q->if_cn))
    complete_item(r, req_what(r, "item", q->item_id), false);
}

static int run_move(struct mbx_wtxn *w, struct mbx_req *r)
{
  Mbx__MoveReq *q = r->rq->move;
  int rc = req_check_cn(w, r, q->item_id, q->has_if_cn, q->if_cn);
  if (rc < 0)
    return rc;
  return mbx_store_move_item(w, r->mailbox_id, r->rq->move->item_id, r->rq->move->folder_id,
                             &r->arena, &r->out.item);
}

static int run_copy(struct mbx_wtxn *w, struct mbx_req *r)
{
  return mbx_store_copy_item(w, r->mailbox_id, r->rq->copy->item_id, r->rq->copy->folder_id,
                             &r->arena, &r->out.item);
}

static void done_move_copy(struct mbx_req *r, uint64_t item_id, uint64_t folder_id)
{
  complete_item(r,
                mbx_arena_printf(&r->arena, "item %llu or folder %llu",
                                 (unsigned long long)item_id, (unsigned long long)folder_id),
                r->rq->body_case == MBX__REQUEST__BODY_COPY);
}

static void done_move(struct mbx_req *r)
{
  if (!req_conflict(r, r->rq->move->item_id, r->rq->move->if_cn))
    done_move_copy(r, r->rq->move->item_id, r->rq->move->folder_id);
}

static void done_copy(struct mbx_req *r)
{
  done_move_copy(r, r->rq->copy->item_id, r->rq->copy->folder_id);
}

static int run_delete(struct mbx_wtxn *w, struct mbx_req *r)
{
  Mbx__DeleteReq *q = r->rq->delete_;
  int rc = req_check_cn(w, r, q->item_id, q->has_if_cn, q->if_cn);
  if (rc < 0)
    return rc;
  r->out.count = 1;
  return mbx_store_delete_item(w, r->mailbox_id, q->item_id, q->hard);
}

static void done_delete(struct mbx_req *r)
{
  if (!req_conflict(r, r->rq->delete_->item_id, r->rq->delete_->if_cn))
    complete_count(r, req_what(r, "item", r->rq->delete_->item_id));
}

/* A message body over the limit is refused before it costs the writer anything. */
static int req_check_size(struct mbx_req *r, size_t len)
{
  uint64_t max = req_node(r)->conf->max_message_bytes;
  if (len > max)
    return req_fail(r, MBX_ETOOBIG, "message is %zu bytes; the limit is %llu", len,
                    (unsigned long long)max);
  return 0;
}

static int h_user(struct mbx_req *r)
{
  int rc;
  if (r->db && !mbx_db_is_active(r->db))
    return mbx_handler_not_active(r, r->db);
  if ((rc = req_idem_setup(r, r->mailbox_id, MBX_STORE_IDEM_USER)) < 0)
    return rc;
  switch (r->rq->body_case) {
  case MBX__REQUEST__BODY_SUBSCRIBE: return mbx_notify_subscribe(r);
  case MBX__REQUEST__BODY_FOLDERS: return h_folders(r);
  case MBX__REQUEST__BODY_LIST: return h_list(r);
  case MBX__REQUEST__BODY_GET: return h_get(r);
  case MBX__REQUEST__BODY_SYNC: return h_sync(r);
  case MBX__REQUEST__BODY_SYNC_FOLDERS: return h_sync_folders(r);
  case MBX__REQUEST__BODY_CREATE_FOLDER:
    return req_submit(r, r->db, run_create_folder, done_create_folder);
  case MBX__REQUEST__BODY_UPDATE_FOLDER:
    return req_submit(r, r->db, run_update_folder, done_update_folder);
  case MBX__REQUEST__BODY_DELETE_FOLDER:
    return req_submit(r, r->db, run_delete_folder, done_delete_folder);
  case MBX__REQUEST__BODY_EMPTY_FOLDER:
    return req_submit(r, r->db, run_empty_folder, done_empty_folder);
  case MBX__REQUEST__BODY_APPEND:
    if ((rc = req_check_size(r, r->rq->append->body.len)) < 0)
      return rc;
    return req_submit(r, r->db, run_append, done_append);
  case MBX__REQUEST__BODY_CREATE_ITEM:
    return req_submit(r, r->db, run_create_item, done_create_item);
  case MBX__REQUEST__BODY_SET_FLAGS: return req_submit(r, r->db, run_set_flags, done_set_flags);
  case MBX__REQUEST__BODY_MOVE: return req_submit(r, r->db, run_move, done_move);
  case MBX__REQUEST__BODY_COPY: return req_submit(r, r->db, run_copy, done_copy);
  case MBX__REQUEST__BODY_DELETE: return req_submit(r, r->db, run_delete, done_delete);
  default: return req_fail(r, MBX_EPROTO, "unknown request type %d", (int)r->rq->body_case);
  }
}

/* ---- deliver (transport) --------------------------------------------------------------- */

static int run_deliver(struct mbx_wtxn *w, struct mbx_req *r)
{
  Mbx__DeliverReq *q = r->rq->deliver;
  return mbx_store_deliver(w, q->to, q->body.data, q->body.len, &r->arena, &r->out.item);
}

static void done_deliver(struct mbx_req *r)
{
  if (r->status == MBX_ENOTFOUND)
    req_fail(r, r->status, "no mailbox for %s", r->rq->deliver->to);
  else
    complete_item(r, mbx_arena_printf(&r->arena, "mailbox %s", r->rq->deliver->to), true);
}

static int h_deliver(struct mbx_req *r)
{
  Mbx__DeliverReq *q = r->rq->deliver;
  int rc = req_check_size(r, q->body.len);
  if (rc < 0)
    return rc;
  struct mbx_db *db;
  uint64_t id;
  if (req_find_address(r, q->to, &db, &id) < 0)
    return req_fail(r, MBX_ENOTFOUND, "no mailbox for %s", q->to);
  if (!mbx_db_is_active(db))
    return mbx_handler_not_active(r, db);
  if ((rc = req_idem_setup(r, id, MBX_STORE_IDEM_TRANSPORT)) < 0)
    return rc;
  return req_submit(r, db, run_deliver, done_deliver);
}

/* ---- admin (operator) ---------------------------------------------------------------- */

static Mbx__DbInfo *req_db_info(struct mbx_req *r, struct mbx_db *db)
{
  Mbx__DbInfo *di = req_pbnew(r, &mbx__db_info__descriptor);
  if (!di)
    return NULL;
  di->name = db->name;
  di->role = (char *)mbx_db_state_name(mbx_db_state(db));
  di->has_epoch = di->has_last_lsn = di->has_mailboxes = di->has_size_bytes = 1;
  di->epoch = mbx_store_epoch(db->store);
  di->last_lsn = mbx_store_last_lsn(db->store);
  di->size_bytes = mbx_store_file_bytes(db->store);
  di->path = (char *)mbx_store_path(db->store);
  struct mbx_rtxn *t;
  if (mbx_store_rtxn_begin(db->store, &t) == 0) {
    Mbx__Mailbox **v;
    size_t n = 0;
    if (mbx_store_list_mailboxes(t, &r->arena, &v, &n) == 0)
      di->mailboxes = n;
    mbx_store_rtxn_end(&t);
  }
  return di;
}

static void db_create_work(uv_work_t *w)
{
  struct mbx_req *r = w->data;
  struct mbx_node *n = req_node(r);
  r->work_rc = mbx_store_open(n->db_dir, r->db->name, true, &n->store_opt, &r->new_store,
                              &r->store_error);
}

static void db_create_after(uv_work_t *w, int status)
{
  struct mbx_req *r = w->data;
  struct mbx_node *n = req_node(r);
  struct mbx_db *db = r->db;
  int rc = status == UV_ECANCELED ? MBX_ESHUTDOWN : r->work_rc;
  if (rc == 0 && n->stopping)
    rc = MBX_ESHUTDOWN;
  if (rc == 0) {
    struct mbx_store *store = r->new_store;
    r->new_store = NULL;
    if ((rc = mbx_db_mount(n, db, store)) < 0) {
      r->store_error = mbx_arena_strdup(&r->arena, mbx_db_reason(db));
      mbx_committer_stop(&db->committer);
      mbx_store_close(&db->store);
    }
  }
  if (rc < 0) {
    mbx_error("db %s: creation failed: %s", db->name,
              r->store_error ? r->store_error : mbx_strerror(rc));
    req_fail(r, rc, "cannot create database %s: %s", db->name,
             r->store_error ? r->store_error : mbx_strerror(rc));
    if (r->new_store)
      mbx_store_close(&r->new_store);
    r->db = NULL;
    mbx_node_db_remove(n, db);
    mbx_req_finish(r);
    return;
  }
  mbx_notice("db %s: created in %s", db->name, mbx_store_path(db->store));
  r->db_created(r);
}

int mbx_handler_db_create(struct mbx_req *r, const char *name,
                          void (*created)(struct mbx_req *r))
{
  struct mbx_node *n = req_node(r);
  if (!mbx_node_db_name_ok(name))
    return req_fail(r, MBX_EINVAL,
                    "'%.80s' is not a valid database name (a-z, 0-9 first, then a-z, 0-9, '_', "
                    "'-'; at most 63)", name);
  if (mbx_node_db(n, name))
    return req_fail(r, MBX_EEXIST, "database %s already exists", name);
  int rc = mbx_node_db_add(n, name, &r->db);
  if (rc < 0)
    return req_fail(r, rc, "cannot add database %s: %s", name, mbx_strerror(rc));
  /* Creating the environment writes and syncs files: not on the loop thread. */
  r->db_created = created;
  r->work.data = r;
  rc = uv_queue_work(n->loop, &r->work, db_create_work, db_create_after);
  if (rc != 0) {
    mbx_node_db_remove(n, r->db);
    r->db = NULL;
    return req_fail(r, MBX_ENOMEM, "cannot create database now: %s", uv_strerror(rc));
  }
  return REQ_PENDING;
}

/* A single-copy database: answer with its DbInfo. */
static void db_create_answer(struct mbx_req *r)
{
  if ((r->resp.db = req_db_info(r, r->db)) != NULL)
    r->resp.body_case = MBX__RESPONSE__BODY_DB;
  else
    req_fail(r, MBX_ENOMEM, "database %s created, but the answer ran out of memory",
             r->db->name);
  mbx_req_finish(r);
}

static int h_db_create(struct mbx_req *r)
{
  if (r->rq->db_create->n_copies)
    return mbx_handler_copy(r);       /* replicated: handler_copy.c */
  return mbx_handler_db_create(r, r->rq->db_create->name, db_create_answer);
}

static int h_db_list(struct mbx_req *r)
{
  struct mbx_node *n = req_node(r);
  Mbx__DbListResp *lr = req_pbnew(r, &mbx__db_list_resp__descriptor);
  if (!lr || !(lr->dbs = mbx_arena_zalloc(&r->arena, (n->n_dbs + 1) * sizeof(*lr->dbs))))
    return MBX_ENOMEM;
  for (size_t i = 0; i < n->n_dbs; i++) {
    if (!n->dbs[i]->store)
      continue;
    if (!(lr->dbs[lr->n_dbs] = req_db_info(r, n->dbs[i])))
      return MBX_ENOMEM;
    lr->n_dbs++;
  }
  r->resp.body_case = MBX__RESPONSE__BODY_DB_LIST;
  r->resp.db_list = lr;
  return 0;
}

static struct mbx_db *req_ready_db(struct mbx_req *r, const char *name)
{
  struct mbx_db *db = name ? mbx_node_db(req_node(r), name) : NULL;
  if (!db || !mbx_db_ready(db)) {
    req_fail(r, MBX_ENOTFOUND, "no database '%s' on node %s", name ? name : "",
             req_node(r)->conf->node_name);
    return NULL;
  }
  return db;
}

static int h_db_digest(struct mbx_req *r)
{
  const char *node = r->rq->db_digest->node;
  if (node && *node && strcmp(node, req_node(r)->conf->node_name) != 0)
    return mbx_handler_copy(r);       /* another node's copy: forwarded there */
  struct mbx_db *db = req_ready_db(r, r->rq->db_digest->name);
  if (!db)
    return r->status;
  int rc = req_read(r, db);
  if (rc < 0)
    return rc;
  struct mbx_store_digest d;
  rc = mbx_store_digest(r->rtxn, &d);
  if (rc < 0)
    return req_fail(r, rc, "database %s: digest failed: %s", db->name, mbx_strerror(rc));
  Mbx__DbDigestResp *dr = req_pbnew(r, &mbx__db_digest_resp__descriptor);
  char *hex = mbx_arena_alloc(&r->arena, 65);
  if (!dr || !hex)
    return MBX_ENOMEM;
  for (int i = 0; i < 32; i++)
    snprintf(hex + 2 * i, 3, "%02x", d.sha256[i]);
  dr->digest = hex;
  dr->has_last_lsn = dr->has_epoch = dr->has_mailboxes = dr->has_items = 1;
  dr->last_lsn = d.last_lsn;
  dr->epoch = d.epoch;
  dr->mailboxes = d.mailboxes;
  dr->items = d.items;
  r->resp.body_case = MBX__RESPONSE__BODY_DB_DIGEST;
  r->resp.db_digest = dr;
  return 0;
}

static int h_mailbox_list(struct mbx_req *r)
{
  struct mbx_node *n = req_node(r);
  const char *only = r->rq->mailbox_list->database;
  if (only && *only && !req_ready_db(r, only))
    return r->status;
  Mbx__MailboxListResp *lr = req_pbnew(r, &mbx__mailbox_list_resp__descriptor);
  if (!lr)
    return MBX_ENOMEM;
  size_t cap = 0;
  for (size_t i = 0; i < n->n_dbs; i++) {
    struct mbx_db *db = n->dbs[i];
    if (!db->store || (only && *only && strcmp(only, db->name) != 0))
      continue;
    struct mbx_rtxn *t;
    Mbx__Mailbox **v;
    size_t nv = 0;
    if (mbx_store_rtxn_begin(db->store, &t) < 0)
      continue;
    int rc = mbx_store_list_mailboxes(t, &r->arena, &v, &nv);
    mbx_store_rtxn_end(&t);
    if (rc < 0)
      return req_fail(r, rc, "database %s: cannot list mailboxes: %s", db->name,
                      mbx_strerror(rc));
    if (lr->n_mailboxes + nv > cap) {
      size_t ncap = (lr->n_mailboxes + nv) * 2;
      Mbx__MailboxInfo **nm = mbx_arena_alloc(&r->arena, ncap * sizeof(*nm));
      if (!nm)
        return MBX_ENOMEM;
      if (lr->n_mailboxes)
        memcpy(nm, lr->mailboxes, lr->n_mailboxes * sizeof(*nm));
      lr->mailboxes = nm;
      cap = ncap;
    }
    for (size_t j = 0; j < nv; j++)
      if (!(lr->mailboxes[lr->n_mailboxes++] = req_mailbox_info(r, db, v[j])))
        return MBX_ENOMEM;
  }
  r->resp.body_case = MBX__RESPONSE__BODY_MAILBOX_LIST;
  r->resp.mailbox_list = lr;
  return 0;
}

static int run_mailbox_create(struct mbx_wtxn *w, struct mbx_req *r)
{
  Mbx__MailboxCreateReq *q = r->rq->mailbox_create;
  struct mbx_mailbox_spec spec = {
    .address = q->address,
    .aliases = (const char *const *)q->aliases,
    .n_aliases = q->n_aliases,
    .display_name = q->display_name,
    .password_hash = r->hash_buf,
    .has_quota = q->has_quota_warn_bytes || q->has_quota_prohibit_bytes,
    .quota_warn_bytes = q->quota_warn_bytes,
    .quota_prohibit_bytes = q->quota_prohibit_bytes,
  };
  return mbx_store_create_mailbox(w, &spec, &r->arena, &r->out.mailbox);
}

static void done_mailbox_create(struct mbx_req *r)
{
  Mbx__MailboxCreateReq *q = r->rq->mailbox_create;
  if (r->status == MBX_EEXIST) {
    req_fail(r, r->status, "address %s is already in use", q->address);
  } else if (r->status == MBX_EINVAL) {
    req_fail(r, r->status, "'%s' is not a valid mailbox address", q->address);
  } else if (r->status < 0) {
    req_store_fail(r, r->status, mbx_arena_printf(&r->arena, "mailbox %s", q->address));
  } else {
    mbx_notice("db %s: mailbox %s created", r->db->name, r->out.mailbox->address);
    if ((r->resp.mailbox = req_mailbox_info(r, r->db, r->out.mailbox)) != NULL)
      r->resp.body_case = MBX__RESPONSE__BODY_MAILBOX;
    else
      req_fail(r, MBX_ENOMEM, "mailbox created, but the answer ran out of memory");
  }
}

static void mailbox_hash_work(uv_work_t *w)
{
  struct mbx_req *r = w->data;
  r->work_rc = mbx_passwd_hash(r->rq->mailbox_create->password, r->hash_buf,
                               sizeof(r->hash_buf));
}

static void mailbox_hash_after(uv_work_t *w, int status)
{
  struct mbx_req *r = w->data;
  int rc;
  if (status == UV_ECANCELED)
    rc = req_fail(r, MBX_ESHUTDOWN, "node is shutting down");
  else if (r->work_rc == MBX_EINVAL)
    rc = req_fail(r, MBX_EINVAL, "the password must be 1 to 1024 bytes");
  else if (r->work_rc < 0)
    rc = req_fail(r, r->work_rc, "cannot hash the password: %s", mbx_strerror(r->work_rc));
  else
    rc = req_submit(r, r->db, run_mailbox_create, done_mailbox_create);
  if (rc != REQ_PENDING)
    mbx_req_finish(r);
}

static bool create_names(const Mbx__MailboxCreateReq *q, const char *addr)
{
  if (q->address && strcasecmp(q->address, addr) == 0)
    return true;
  for (size_t i = 0; i < q->n_aliases; i++)
    if (strcasecmp(q->aliases[i], addr) == 0)
      return true;
  return false;
}

/* An address or alias of q that a mailbox creation in flight already claims. */
static const char *creating_conflict(const struct mbx_node *n, const Mbx__MailboxCreateReq *q)
{
  for (const struct mbx_req *o = n->creating; o; o = o->creating_next) {
    const Mbx__MailboxCreateReq *oq = o->rq->mailbox_create;
    if (create_names(oq, q->address))
      return q->address;
    for (size_t i = 0; i < q->n_aliases; i++)
      if (create_names(oq, q->aliases[i]))
        return q->aliases[i];
  }
  return NULL;
}

void mbx_handler_release_addresses(struct mbx_req *r)
{
  struct mbx_req **p = &req_node(r)->creating;
  while (*p && *p != r)
    p = &(*p)->creating_next;
  if (*p)
    *p = r->creating_next;
  r->creating = false;
}

static int h_mailbox_create(struct mbx_req *r)
{
  Mbx__MailboxCreateReq *q = r->rq->mailbox_create;
  struct mbx_db *db = req_ready_db(r, q->database);
  if (!db)
    return r->status;
  if (!mbx_db_may_write(db, 0))       /* before the password costs a hash */
    return mbx_handler_not_active(r, db);
  if (!q->address || !strchr(q->address, '@') || strlen(q->address) > 254)
    return req_fail(r, MBX_EINVAL, "'%.80s' is not a valid mailbox address",
                    q->address ? q->address : "");
  const char *busy = creating_conflict(req_node(r), q);
  if (busy)
    return req_fail(r, MBX_EEXIST, "address %s is being created by another request", busy);
  struct mbx_db *other;
  uint64_t id;
  if (req_find_address(r, q->address, &other, &id) == 0)
    return req_fail(r, MBX_EEXIST, "address %s is already in use (database %s)", q->address,
                    other->name);
  for (size_t i = 0; i < q->n_aliases; i++)
    if (req_find_address(r, q->aliases[i], &other, &id) == 0)
      return req_fail(r, MBX_EEXIST, "address %s is already in use (database %s)",
                      q->aliases[i], other->name);
  r->db = db;
  r->work.data = r;
  int rc = uv_queue_work(req_node(r)->loop, &r->work, mailbox_hash_work, mailbox_hash_after);
  if (rc == 0) {
    /* Reserve the addresses until the answer: the check above and the commit are
     * apart in time, and two databases' writers cannot see each other. */
    r->creating = true;
    r->creating_next = req_node(r)->creating;
    req_node(r)->creating = r;
  }
  if (rc != 0)
    return req_fail(r, MBX_ENOMEM, "cannot hash the password now: %s", uv_strerror(rc));
  return REQ_PENDING;
}

static int h_admin(struct mbx_req *r)
{
  switch (r->rq->body_case) {
  case MBX__REQUEST__BODY_DB_CREATE: return h_db_create(r);
  case MBX__REQUEST__BODY_DB_LIST: return h_db_list(r);
  case MBX__REQUEST__BODY_DB_DIGEST: return h_db_digest(r);
  case MBX__REQUEST__BODY_MAILBOX_CREATE: return h_mailbox_create(r);
  case MBX__REQUEST__BODY_MAILBOX_LIST: return h_mailbox_list(r);
  default: return req_fail(r, MBX_EPROTO, "unknown request type %d", (int)r->rq->body_case);
  }
}

/* ---- dispatch -------------------------------------------------------------------------- */

/* The node-to-node requests that speak for a node — a pull and an acknowledgement
 * (for the copy that sends them: they move what the active keeps of its log), a
 * seed request (for the copy to be seeded), a copy-host request (from the active) —
 * are taken only in the name the client certificate gives. */
static int handler_node_name_check(struct mbx_req *r)
{
  const Mbx__Request *q = r->rq;
  switch (q->body_case) {
  case MBX__REQUEST__BODY_REPL_PULL: return mbx_req_check_node(r, q->repl_pull->node, "pull");
  case MBX__REQUEST__BODY_REPL_ACK:
    return mbx_req_check_node(r, q->repl_ack->node, "acknowledgement");
  case MBX__REQUEST__BODY_SEED: return mbx_req_check_node(r, q->seed->node, "seed request");
  case MBX__REQUEST__BODY_COPY_HOST:
    return mbx_req_check_node(r, q->copy_host->active_node, "copy host request (from the active)");
  default: return 0;
  }
}

static int handler_run(struct mbx_req *r)
{
  struct mbx_conn *c = r->conn;
  struct mbx_node *n = c->node;
  if (n->stopping)
    return req_fail(r, MBX_ESHUTDOWN, "node %s is shutting down", n->conf->node_name);
  switch (r->rq->body_case) {
  case MBX__REQUEST__BODY__NOT_SET:
    return req_fail(r, MBX_EPROTO, "request has no body (unknown request type?)");
  case MBX__REQUEST__BODY_HELLO: return h_hello(r);
  case MBX__REQUEST__BODY_PING: return h_ping(r);
  case MBX__REQUEST__BODY_LOGIN: return h_login(r);
  case MBX__REQUEST__BODY_DELIVER:
    if (!conn_is(c, MBX__ROLE__ROLE_TRANSPORT) && !conn_is(c, MBX__ROLE__ROLE_OPERATOR))
      return req_fail(r, MBX_EPERM, "transport or operator credentials required");
    return h_deliver(r);
  case MBX__REQUEST__BODY_DB_CREATE:
  case MBX__REQUEST__BODY_DB_LIST:
  case MBX__REQUEST__BODY_DB_DIGEST:
  case MBX__REQUEST__BODY_MAILBOX_CREATE:
  case MBX__REQUEST__BODY_MAILBOX_LIST:
    /* a node forwarding an operator's request acts for the operator */
    if (!conn_is(c, MBX__ROLE__ROLE_OPERATOR) && !conn_is(c, MBX__ROLE__ROLE_NODE))
      return req_fail(r, MBX_EPERM, "operator credentials required");
    return h_admin(r);
  case MBX__REQUEST__BODY_COPY_ADD:
  case MBX__REQUEST__BODY_COPY_REMOVE:
  case MBX__REQUEST__BODY_COPY_SUSPEND:
  case MBX__REQUEST__BODY_COPY_RESUME:
  case MBX__REQUEST__BODY_COPY_RESEED:
  case MBX__REQUEST__BODY_COPY_PLAY_DOWN:
    if (!conn_is(c, MBX__ROLE__ROLE_OPERATOR) && !conn_is(c, MBX__ROLE__ROLE_NODE))
      return req_fail(r, MBX_EPERM, "operator credentials required");
    return mbx_handler_copy(r);
  case MBX__REQUEST__BODY_COPY_STATUS:
    if (!conn_is(c, MBX__ROLE__ROLE_OPERATOR) && !conn_is(c, MBX__ROLE__ROLE_NODE))
      return req_fail(r, MBX_EPERM, "operator credentials required");
    return mbx_handler_repl(r);
  case MBX__REQUEST__BODY_DB_MOVE_ACTIVE:
    if (!conn_is(c, MBX__ROLE__ROLE_OPERATOR) && !conn_is(c, MBX__ROLE__ROLE_NODE))
      return req_fail(r, MBX_EPERM, "operator credentials required");
    return mbx_handler_move(r);
  case MBX__REQUEST__BODY_DB_ACTIVATE:
    if (!conn_is(c, MBX__ROLE__ROLE_OPERATOR) && !conn_is(c, MBX__ROLE__ROLE_NODE))
      return req_fail(r, MBX_EPERM, "operator credentials required");
    return mbx_handler_move(r);
  case MBX__REQUEST__BODY_DB_FOLLOW:
    if (!conn_is(c, MBX__ROLE__ROLE_NODE))
      return req_fail(r, MBX_EPERM, "only another node (certificate with OU=node) may send this");
    return mbx_handler_move(r);
  case MBX__REQUEST__BODY_COPY_HOST:
  case MBX__REQUEST__BODY_SEED:
  case MBX__REQUEST__BODY_REPL_PULL:
  case MBX__REQUEST__BODY_REPL_ACK:
    if (!conn_is(c, MBX__ROLE__ROLE_NODE))
      return req_fail(r, MBX_EPERM, "only another node (certificate with OU=node) may send this");
    if (handler_node_name_check(r) < 0)
      return r->status;
    return r->rq->body_case == MBX__REQUEST__BODY_COPY_HOST ||
               r->rq->body_case == MBX__REQUEST__BODY_SEED
             ? mbx_handler_copy(r)
             : mbx_handler_repl(r);
  default:
    if (!conn_is(c, MBX__ROLE__ROLE_USER))
      return req_fail(r, MBX_ENOTAUTH, "log in first");
    return h_user(r);
  }
}

void mbx_handler_dispatch(struct mbx_req *r)
{
  int rc = handler_run(r);
  if (rc == REQ_PENDING)
    return;
  if (rc < 0 && r->status == 0)
    r->status = rc;                   /* e.g. MBX_ENOMEM without a message */
  mbx_req_finish(r);
}

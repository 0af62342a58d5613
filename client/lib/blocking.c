/* blocking.c — libmbx's blocking face: a private libuv loop per connection that is
 * run only while the caller waits (mbxc_open, mbxc_call_sync), the typed convenience
 * calls built on it, and pure folder-path resolution over a FoldersResp. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include "client_int.h"
#include "clock.h"
#include "kinds.h"

/* ======================================================================== */
/* open / call_sync                                                         */
/* ======================================================================== */

struct wait_connect {
  bool done;
  int status;
};

static void on_open(mbxc_conn *c, int status, void *arg)
{
  struct wait_connect *w = arg;
  (void)c;
  w->done = true;
  w->status = status;
}

int mbxc_open(const struct mbxc_options *opts, mbxc_conn **conn_r, const char **error_r)
{
  if (error_r)
    *error_r = mbxc_open_error();
  uv_loop_t *loop = malloc(sizeof(*loop));
  if (!loop) {
    mbxc__open_error_set("out of memory");
    return MBX_ENOMEM;
  }
  if (uv_loop_init(loop) < 0) {
    free(loop);
    mbxc__open_error_set("cannot create an event loop");
    return MBX_ENOMEM;
  }
  struct wait_connect w = { 0 };
  mbxc_conn *c = NULL;
  int rc = mbxc_connect(loop, opts, on_open, &w, &c);
  if (rc < 0) {
    uv_loop_close(loop);
    free(loop);
    return rc;
  }
  mbxc__set_own_loop(c);
  /* bounded: every connect attempt has its own timer */
  while (!w.done && uv_run(loop, UV_RUN_ONCE))
    ;
  if (!w.done || w.status < 0) {
    mbxc__open_error_set("%s", w.done ? mbxc_last_error(c) : "connect did not complete");
    rc = w.done ? w.status : MBX_ECONN;
    mbxc_close(&c); /* runs and frees the private loop */
    return rc;
  }
  *conn_r = c;
  return 0;
}

struct wait_call {
  bool done;
  int status;
  Mbx__Response *resp;
};

static void on_sync_reply(mbxc_conn *c, int status, const Mbx__Response *resp, void *arg)
{
  struct wait_call *w = arg;
  w->done = true;
  w->status = status;
  if (resp && status == 0) {
    mbxc__steal_reply(c);
    w->resp = (Mbx__Response *)resp;
  }
}

static int call_once(mbxc_conn *c, Mbx__Request *req, Mbx__Response **resp_r)
{
  *resp_r = NULL;
  struct wait_call w = { 0 };
  int rc = mbxc_call(c, req, on_sync_reply, &w);
  if (rc < 0)
    return rc;
  /* bounded by the request timer armed by mbxc_call */
  while (!w.done && uv_run(mbxc__loop(c), UV_RUN_ONCE))
    ;
  if (!w.done)
    return MBX_ECLOSED; /* cannot happen: the pending call keeps the timer alive */
  if (w.status < 0)
    return w.status;
  *resp_r = w.resp;
  if (w.resp && w.resp->ack_node)
    mbxc__set_ack(c, w.resp->ack_node, w.resp->has_ack_epoch ? w.resp->ack_epoch : 0);
  return 0;
}

/* After an ENOTACTIVE with a redirect: reconnects there and repeats the last login
 * (unless req is itself the login). 0 = ready to send req again. */
static int follow_redirect(mbxc_conn *c, const Mbx__Request *req)
{
  char to[300];
  const char *r = mbxc_last_redirect(c);
  if (!*r)
    return MBX_ENOTACTIVE;
  snprintf(to, sizeof(to), "%s", r);
  int rc = mbxc__reconnect_sync(c, to);
  if (rc < 0)
    return rc;
  Mbx__Role role;
  const char *user, *pw;
  if (req->body_case != MBX__REQUEST__BODY_LOGIN && mbxc__saved_login(c, &role, &user, &pw)) {
    Mbx__Request lreq = MBX__REQUEST__INIT;
    Mbx__LoginReq login = MBX__LOGIN_REQ__INIT;
    login.has_role = 1;
    login.role = role;
    login.user = (char *)user;
    login.password = (char *)pw;
    lreq.body_case = MBX__REQUEST__BODY_LOGIN;
    lreq.login = &login;
    Mbx__Response *lresp;
    rc = call_once(c, &lreq, &lresp);
    mbxc_free(&lresp);
    if (rc < 0)
      return rc;
  }
  return 0;
}

static int call_follow(mbxc_conn *c, Mbx__Request *req, Mbx__Response **resp_r);

/* Every write goes out with an idempotency key (a fresh random one when the caller
 * gave none), kept for the redirect's retry: a write resent after a redirect or a
 * lost reply is applied once. */
int mbxc_call_sync(mbxc_conn *c, Mbx__Request *req, Mbx__Response **resp_r)
{
  *resp_r = NULL;
  if (!c || !mbxc__own_loop(c) || !req)
    return MBX_EINVAL;
  uint8_t key[16];
  if (req->has_idempotency_key || !mbx_kind_keyed_write(req->body_case) ||
      getrandom(key, sizeof(key), 0) != (ssize_t)sizeof(key))
    return call_follow(c, req, resp_r);
  req->has_idempotency_key = 1;
  req->idempotency_key.data = key;
  req->idempotency_key.len = sizeof(key);
  int rc = call_follow(c, req, resp_r);
  req->has_idempotency_key = 0;
  req->idempotency_key.data = NULL;
  req->idempotency_key.len = 0;
  return rc;
}

/* ENOTACTIVE with a redirect: follow it. During a switchover the old active
 * redirects to the new one before that one is active (it redirects back), so the
 * redirects are followed with a growing pause for at most CALL_HOLD_MS — a short
 * wait for the caller instead of an error. */
#define CALL_HOLD_MS 10000
#define CALL_HOLD_PAUSE_MAX_MS 25

static int call_follow(mbxc_conn *c, Mbx__Request *req, Mbx__Response **resp_r)
{
  int rc = call_once(c, req, resp_r);
  if (rc != MBX_ENOTACTIVE || !*mbxc_last_redirect(c))
    return rc;
  char why[1024];
  snprintf(why, sizeof(why), "%s", mbxc_last_error(c));
  uint64_t deadline = mbx_mono_us() + (uint64_t)CALL_HOLD_MS * 1000;
  uint32_t pause_ms = 0;
  char came_from[300] = "";
  for (;;) {
    /* A node in the middle of a role change may answer without a redirect, and the
     * new active, not yet active, redirects back to the old one: in both cases ask
     * the same node again after the pause instead of bouncing between the two. */
    const char *to = mbxc_last_redirect(c);
    bool back = *to && strcmp(to, came_from) == 0;
    if (*to && !back)
      snprintf(came_from, sizeof(came_from), "%s", mbxc_server_addr(c));
    rc = *to && !back ? follow_redirect(c, req) : 0;
    if (rc == 0)
      rc = call_once(c, req, resp_r);
    if (rc != MBX_ENOTACTIVE || mbx_mono_us() >= deadline)
      break;
    snprintf(why, sizeof(why), "%s", mbxc_last_error(c));
    pause_ms = pause_ms ? (pause_ms * 2 > CALL_HOLD_PAUSE_MAX_MS ? CALL_HOLD_PAUSE_MAX_MS
                                                                 : pause_ms * 2)
                        : 1;
    usleep(pause_ms * 1000);
  }
  if (rc == MBX_ENOTACTIVE)
    mbxc__set_last_error(c, rc, why);
  return rc;
}

struct wait_stream {
  bool done;
  bool any;                         /* a response was delivered to the caller */
  int status;
  mbxc_stream_cb cb;
  void *arg;
  bool hold_redirect;               /* first refusal is a redirect: not shown to cb */
};

static bool on_stream(mbxc_conn *c, int status, const Mbx__Response *resp, void *arg)
{
  struct wait_stream *w = arg;
  if (status < 0 && !w->any && status == MBX_ENOTACTIVE && w->hold_redirect &&
      *mbxc_last_redirect(c)) {
    w->done = true;
    w->status = status;
    return false;
  }
  w->any = true;
  bool more = w->cb(c, status, resp, w->arg);
  if (status < 0 || !more) {
    w->done = true;
    w->status = status < 0 ? status : 0;
    return false;
  }
  return true;
}

static int stream_once(mbxc_conn *c, Mbx__Request *req, struct wait_stream *w)
{
  w->done = w->any = false;
  w->status = 0;
  int rc = mbxc_call_stream(c, req, on_stream, w);
  if (rc < 0)
    return rc;
  /* bounded: each response re-arms the request timer */
  while (!w->done && uv_run(mbxc__loop(c), UV_RUN_ONCE))
    ;
  return w->done ? w->status : MBX_ECLOSED;
}

int mbxc_call_stream_sync(mbxc_conn *c, Mbx__Request *req, mbxc_stream_cb cb, void *arg)
{
  if (!c || !mbxc__own_loop(c) || !req || !cb)
    return MBX_EINVAL;
  struct wait_stream w = { .cb = cb, .arg = arg, .hold_redirect = true };
  int rc = stream_once(c, req, &w);
  if (rc != MBX_ENOTACTIVE || w.any)
    return rc;
  w.hold_redirect = false;
  int frc = follow_redirect(c, req);
  if (frc < 0) {
    cb(c, frc, NULL, arg);
    return frc;
  }
  return stream_once(c, req, &w);
}

/* ======================================================================== */
/* typed calls                                                              */
/* ======================================================================== */

/* Runs req, checks the reply carries body `expect` (NOT_SET: any or none) and hands
 * the body message to the caller, detached from the envelope. */
static int call_body(mbxc_conn *c, Mbx__Request *req, Mbx__Response__BodyCase expect,
                     void *body_r)
{
  Mbx__Response *resp;
  int rc = mbxc_call_sync(c, req, &resp);
  if (rc < 0)
    return rc;
  if (expect != MBX__RESPONSE__BODY__NOT_SET && resp->body_case != expect) {
    mbxc_free(&resp);
    mbxc__set_last_error(c, MBX_EPROTO, "the server's reply lacks the expected data");
    return MBX_EPROTO;
  }
  if (body_r) {
    /* every member of the body union is a message pointer at the same place */
    *(ProtobufCMessage **)body_r = (ProtobufCMessage *)resp->hello;
    resp->hello = NULL;
    resp->body_case = MBX__RESPONSE__BODY__NOT_SET;
  }
  mbxc_free(&resp);
  return 0;
}

#define REQ(field, CASE, msgtype, INIT)                                          \
  Mbx__Request req = MBX__REQUEST__INIT;                                         \
  msgtype body = INIT;                                                           \
  req.body_case = MBX__REQUEST__BODY_##CASE;                                     \
  req.field = &body

int mbxc_login(mbxc_conn *c, Mbx__Role role, const char *user, const char *password,
               Mbx__LoginResp **resp_r)
{
  REQ(login, LOGIN, Mbx__LoginReq, MBX__LOGIN_REQ__INIT);
  body.has_role = 1;
  body.role = role;
  body.user = (char *)user;
  body.password = (char *)password;
  int rc = call_body(c, &req, MBX__RESPONSE__BODY_LOGIN, resp_r);
  if (rc == 0)
    mbxc__remember_login(c, role, user, password);
  return rc;
}

int mbxc_ping(mbxc_conn *c, Mbx__PingResp **resp_r)
{
  REQ(ping, PING, Mbx__PingReq, MBX__PING_REQ__INIT);
  return call_body(c, &req, MBX__RESPONSE__BODY_PING, resp_r);
}

int mbxc_folders(mbxc_conn *c, Mbx__FoldersResp **resp_r)
{
  REQ(folders, FOLDERS, Mbx__FoldersReq, MBX__FOLDERS_REQ__INIT);
  return call_body(c, &req, MBX__RESPONSE__BODY_FOLDERS, resp_r);
}

int mbxc_find_folder(mbxc_conn *c, const char *spec, Mbx__Folder **folder_r)
{
  Mbx__FoldersResp *fr;
  int rc = mbxc_folders(c, &fr);
  if (rc < 0)
    return rc;
  const Mbx__Folder *f;
  rc = mbxc_folder_resolve(fr, spec, &f);
  if (rc < 0) {
    char msg[300];
    snprintf(msg, sizeof(msg), "no folder \"%.250s\"", spec ? spec : "");
    mbxc__set_last_error(c, rc, msg);
    mbxc_free(&fr);
    return rc;
  }
  /* copy by pack/unpack so the caller frees one self-contained message */
  size_t n = protobuf_c_message_get_packed_size(&f->base);
  uint8_t *buf = malloc(n ? n : 1);
  if (!buf) {
    mbxc_free(&fr);
    return MBX_ENOMEM;
  }
  protobuf_c_message_pack(&f->base, buf);
  *folder_r = mbx__folder__unpack(NULL, n, buf);
  free(buf);
  mbxc_free(&fr);
  return *folder_r ? 0 : MBX_ENOMEM;
}

int mbxc_create_folder(mbxc_conn *c, const char *name, uint64_t parent_id,
                       Mbx__FolderClass folder_class, Mbx__FolderResp **resp_r)
{
  REQ(create_folder, CREATE_FOLDER, Mbx__CreateFolderReq, MBX__CREATE_FOLDER_REQ__INIT);
  body.name = (char *)name;
  body.has_parent_id = parent_id != 0;
  body.parent_id = parent_id;
  body.has_folder_class = 1;
  body.folder_class = folder_class;
  return call_body(c, &req, MBX__RESPONSE__BODY_FOLDER, resp_r);
}

int mbxc_update_folder(mbxc_conn *c, uint64_t folder_id, const char *name, bool move,
                       uint64_t parent_id, Mbx__FolderResp **resp_r)
{
  REQ(update_folder, UPDATE_FOLDER, Mbx__UpdateFolderReq, MBX__UPDATE_FOLDER_REQ__INIT);
  body.folder_id = folder_id;
  body.name = (char *)name;
  body.has_parent_id = move;
  body.parent_id = parent_id;
  return call_body(c, &req, MBX__RESPONSE__BODY_FOLDER, resp_r);
}

int mbxc_delete_folder(mbxc_conn *c, uint64_t folder_id)
{
  REQ(delete_folder, DELETE_FOLDER, Mbx__DeleteFolderReq, MBX__DELETE_FOLDER_REQ__INIT);
  body.folder_id = folder_id;
  return call_body(c, &req, MBX__RESPONSE__BODY__NOT_SET, NULL);
}

int mbxc_empty_folder(mbxc_conn *c, uint64_t folder_id, uint64_t *count_r)
{
  REQ(empty_folder, EMPTY_FOLDER, Mbx__EmptyFolderReq, MBX__EMPTY_FOLDER_REQ__INIT);
  body.folder_id = folder_id;
  Mbx__CountResp *cr = NULL;
  int rc = call_body(c, &req, MBX__RESPONSE__BODY_COUNT, &cr);
  if (rc == 0 && count_r)
    *count_r = cr->count;
  mbxc_free(&cr);
  return rc;
}

int mbxc_list(mbxc_conn *c, uint64_t folder_id, uint32_t offset, uint32_t limit,
              Mbx__ListResp **resp_r)
{
  REQ(list, LIST, Mbx__ListReq, MBX__LIST_REQ__INIT);
  body.folder_id = folder_id;
  body.has_offset = offset != 0;
  body.offset = offset;
  body.has_limit = limit != 0;
  body.limit = limit;
  return call_body(c, &req, MBX__RESPONSE__BODY_LIST, resp_r);
}

int mbxc_get(mbxc_conn *c, uint64_t item_id, bool with_body, Mbx__ItemResp **resp_r)
{
  REQ(get, GET, Mbx__GetReq, MBX__GET_REQ__INIT);
  body.item_id = item_id;
  body.has_with_body = 1;
  body.with_body = with_body;
  return call_body(c, &req, MBX__RESPONSE__BODY_ITEM, resp_r);
}

/* Refuses locally what the server would refuse anyway, before sending megabytes. */
static int check_size(mbxc_conn *c, size_t len)
{
  const Mbx__HelloResp *h = mbxc_server_info(c);
  if (h && h->has_max_message_bytes && h->max_message_bytes && len > h->max_message_bytes) {
    char msg[200];
    snprintf(msg, sizeof(msg), "message is %zu bytes, over the server's limit of %llu bytes",
             len, (unsigned long long)h->max_message_bytes);
    mbxc__set_last_error(c, MBX_ETOOBIG, msg);
    return MBX_ETOOBIG;
  }
  return 0;
}

int mbxc_append(mbxc_conn *c, uint64_t folder_id, const void *data, size_t len,
                uint32_t flags, Mbx__ItemResp **resp_r)
{
  int rc = check_size(c, len);
  if (rc < 0)
    return rc;
  REQ(append, APPEND, Mbx__AppendReq, MBX__APPEND_REQ__INIT);
  body.folder_id = folder_id;
  body.body.data = (uint8_t *)data;
  body.body.len = len;
  body.has_flags = flags != 0;
  body.flags = flags;
  return call_body(c, &req, MBX__RESPONSE__BODY_ITEM, resp_r);
}

int mbxc_create_item(mbxc_conn *c, uint64_t folder_id, const Mbx__Item *item,
                     Mbx__ItemResp **resp_r)
{
  REQ(create_item, CREATE_ITEM, Mbx__CreateItemReq, MBX__CREATE_ITEM_REQ__INIT);
  body.folder_id = folder_id;
  body.item = (Mbx__Item *)item;
  return call_body(c, &req, MBX__RESPONSE__BODY_ITEM, resp_r);
}

int mbxc_set_flags(mbxc_conn *c, uint64_t item_id, uint32_t add, uint32_t remove,
                   bool set_categories, const char *const *categories, size_t n,
                   Mbx__ItemResp **resp_r)
{
  REQ(set_flags, SET_FLAGS, Mbx__SetFlagsReq, MBX__SET_FLAGS_REQ__INIT);
  body.item_id = item_id;
  body.has_add = add != 0;
  body.add = add;
  body.has_remove = remove != 0;
  body.remove = remove;
  body.has_set_categories = set_categories;
  body.set_categories = set_categories;
  body.n_categories = set_categories ? n : 0;
  body.categories = (char **)categories;
  return call_body(c, &req, MBX__RESPONSE__BODY_ITEM, resp_r);
}

int mbxc_move(mbxc_conn *c, uint64_t item_id, uint64_t folder_id, Mbx__ItemResp **resp_r)
{
  REQ(move, MOVE, Mbx__MoveReq, MBX__MOVE_REQ__INIT);
  body.item_id = item_id;
  body.folder_id = folder_id;
  return call_body(c, &req, MBX__RESPONSE__BODY_ITEM, resp_r);
}

int mbxc_copy(mbxc_conn *c, uint64_t item_id, uint64_t folder_id, Mbx__ItemResp **resp_r)
{
  REQ(copy, COPY, Mbx__CopyReq, MBX__COPY_REQ__INIT);
  body.item_id = item_id;
  body.folder_id = folder_id;
  return call_body(c, &req, MBX__RESPONSE__BODY_ITEM, resp_r);
}

int mbxc_delete(mbxc_conn *c, uint64_t item_id, bool hard)
{
  REQ(delete_, DELETE, Mbx__DeleteReq, MBX__DELETE_REQ__INIT);
  body.item_id = item_id;
  body.has_hard = 1;
  body.hard = hard;
  return call_body(c, &req, MBX__RESPONSE__BODY__NOT_SET, NULL);
}

int mbxc_sync(mbxc_conn *c, uint64_t folder_id, const void *state, size_t state_len,
              uint32_t max_changes, Mbx__SyncResp **resp_r)
{
  REQ(sync, SYNC, Mbx__SyncReq, MBX__SYNC_REQ__INIT);
  body.folder_id = folder_id;
  body.has_state = state_len != 0;
  body.state.data = (uint8_t *)state;
  body.state.len = state_len;
  body.has_max_changes = max_changes != 0;
  body.max_changes = max_changes;
  return call_body(c, &req, MBX__RESPONSE__BODY_SYNC, resp_r);
}

int mbxc_sync_folders(mbxc_conn *c, const void *state, size_t state_len,
                      uint32_t max_changes, Mbx__SyncFoldersResp **resp_r)
{
  REQ(sync_folders, SYNC_FOLDERS, Mbx__SyncFoldersReq, MBX__SYNC_FOLDERS_REQ__INIT);
  body.has_state = state_len != 0;
  body.state.data = (uint8_t *)state;
  body.state.len = state_len;
  body.has_max_changes = max_changes != 0;
  body.max_changes = max_changes;
  return call_body(c, &req, MBX__RESPONSE__BODY_SYNC_FOLDERS, resp_r);
}

int mbxc_deliver(mbxc_conn *c, const char *to, const void *data, size_t len,
                 Mbx__ItemResp **resp_r)
{
  int rc = check_size(c, len);
  if (rc < 0)
    return rc;
  REQ(deliver, DELIVER, Mbx__DeliverReq, MBX__DELIVER_REQ__INIT);
  body.to = (char *)to;
  body.body.data = (uint8_t *)data;
  body.body.len = len;
  return call_body(c, &req, MBX__RESPONSE__BODY_ITEM, resp_r);
}

int mbxc_db_create(mbxc_conn *c, const char *name, Mbx__DbInfo **resp_r)
{
  REQ(db_create, DB_CREATE, Mbx__DbCreateReq, MBX__DB_CREATE_REQ__INIT);
  body.name = (char *)name;
  return call_body(c, &req, MBX__RESPONSE__BODY_DB, resp_r);
}

int mbxc_db_list(mbxc_conn *c, Mbx__DbListResp **resp_r)
{
  REQ(db_list, DB_LIST, Mbx__DbListReq, MBX__DB_LIST_REQ__INIT);
  return call_body(c, &req, MBX__RESPONSE__BODY_DB_LIST, resp_r);
}

int mbxc_db_digest(mbxc_conn *c, const char *name, Mbx__DbDigestResp **resp_r)
{
  REQ(db_digest, DB_DIGEST, Mbx__DbDigestReq, MBX__DB_DIGEST_REQ__INIT);
  body.name = (char *)name;
  return call_body(c, &req, MBX__RESPONSE__BODY_DB_DIGEST, resp_r);
}

int mbxc_db_create_copies(mbxc_conn *c, const char *name, Mbx__CopyEntry *const *copies,
                          size_t n, Mbx__DbInfo **resp_r)
{
  REQ(db_create, DB_CREATE, Mbx__DbCreateReq, MBX__DB_CREATE_REQ__INIT);
  body.name = (char *)name;
  body.n_copies = n;
  body.copies = (Mbx__CopyEntry **)copies;
  return call_body(c, &req, MBX__RESPONSE__BODY_DB, resp_r);
}

int mbxc_db_digest_node(mbxc_conn *c, const char *name, const char *node,
                        Mbx__DbDigestResp **resp_r)
{
  REQ(db_digest, DB_DIGEST, Mbx__DbDigestReq, MBX__DB_DIGEST_REQ__INIT);
  body.name = (char *)name;
  body.node = (char *)node;
  return call_body(c, &req, MBX__RESPONSE__BODY_DB_DIGEST, resp_r);
}

int mbxc_copy_request(mbxc_conn *c, Mbx__Request *req, ProtobufCMessage **resp_r)
{
  switch (req ? req->body_case : MBX__REQUEST__BODY__NOT_SET) {
  case MBX__REQUEST__BODY_COPY_ADD:
  case MBX__REQUEST__BODY_COPY_REMOVE:
  case MBX__REQUEST__BODY_COPY_SUSPEND:
  case MBX__REQUEST__BODY_COPY_RESUME:
  case MBX__REQUEST__BODY_COPY_PLAY_DOWN:
    break;
  default:
    return MBX_EINVAL;
  }
  *resp_r = NULL;
  return call_body(c, req, MBX__RESPONSE__BODY__NOT_SET, resp_r);
}

int mbxc_copy_status(mbxc_conn *c, const char *db, Mbx__CopyStatusResp **resp_r)
{
  REQ(copy_status, COPY_STATUS, Mbx__CopyStatusReq, MBX__COPY_STATUS_REQ__INIT);
  body.db = (char *)db;
  return call_body(c, &req, MBX__RESPONSE__BODY_COPY_STATUS, resp_r);
}

int mbxc_db_move_active(mbxc_conn *c, const char *db, const char *to, uint32_t timeout_ms,
                        Mbx__DbMoveActiveResp **resp_r)
{
  REQ(db_move_active, DB_MOVE_ACTIVE, Mbx__DbMoveActiveReq, MBX__DB_MOVE_ACTIVE_REQ__INIT);
  body.db = (char *)db;
  body.to = (char *)to;
  body.has_timeout_ms = timeout_ms ? 1 : 0;
  body.timeout_ms = timeout_ms;
  return call_body(c, &req, MBX__RESPONSE__BODY_DB_MOVE, resp_r);
}

int mbxc_db_activate(mbxc_conn *c, const char *db, const char *node, bool force)
{
  REQ(db_activate, DB_ACTIVATE, Mbx__DbActivateReq, MBX__DB_ACTIVATE_REQ__INIT);
  body.db = (char *)db;
  body.node = (char *)node;
  body.has_force = force ? 1 : 0;
  body.force = force;
  Mbx__Response *resp = NULL;
  int rc = mbxc_call_sync(c, &req, &resp);
  mbxc_free(&resp);
  return rc;
}

int mbxc_mailbox_create(mbxc_conn *c, const Mbx__MailboxCreateReq *mreq,
                        Mbx__MailboxInfo **resp_r)
{
  Mbx__Request req = MBX__REQUEST__INIT;
  req.body_case = MBX__REQUEST__BODY_MAILBOX_CREATE;
  req.mailbox_create = (Mbx__MailboxCreateReq *)mreq;
  return call_body(c, &req, MBX__RESPONSE__BODY_MAILBOX, resp_r);
}

int mbxc_mailbox_list(mbxc_conn *c, const char *database, Mbx__MailboxListResp **resp_r)
{
  REQ(mailbox_list, MAILBOX_LIST, Mbx__MailboxListReq, MBX__MAILBOX_LIST_REQ__INIT);
  body.database = (char *)database;
  return call_body(c, &req, MBX__RESPONSE__BODY_MAILBOX_LIST, resp_r);
}

/* ======================================================================== */
/* folder resolution (pure)                                                 */
/* ======================================================================== */

#define MBXC_MAX_FOLDER_DEPTH 64

static const Mbx__Folder *folder_by_id(const Mbx__FoldersResp *fr, uint64_t id)
{
  for (size_t i = 0; i < fr->n_folders; i++)
    if (fr->folders[i]->id == id)
      return fr->folders[i];
  return NULL;
}

static const Mbx__Folder *child_named(const Mbx__FoldersResp *fr, uint64_t parent,
                                      const char *name, size_t len)
{
  for (size_t i = 0; i < fr->n_folders; i++) {
    const Mbx__Folder *f = fr->folders[i];
    uint64_t p = f->has_parent_id ? f->parent_id : 0;
    if (p == parent && f->name && strlen(f->name) == len && strncasecmp(f->name, name, len) == 0)
      return f;
  }
  return NULL;
}

int mbxc_folder_resolve(const Mbx__FoldersResp *fr, const char *spec,
                        const Mbx__Folder **folder_r)
{
  if (!fr || !spec || !*spec)
    return MBX_EINVAL;
  /* a numeric id first; a folder literally named "2026" still resolves by path */
  if (strspn(spec, "0123456789") == strlen(spec) && strlen(spec) <= 19) {
    const Mbx__Folder *f = folder_by_id(fr, strtoull(spec, NULL, 10));
    if (f) {
      *folder_r = f;
      return 0;
    }
  }
  const char *p = spec;
  while (*p == '/')
    p++;
  uint64_t parent = 0;
  const Mbx__Folder *f = NULL;
  for (int depth = 0; *p; depth++) {
    if (depth >= MBXC_MAX_FOLDER_DEPTH)
      return MBX_ENOTFOUND;
    size_t len = strcspn(p, "/");
    f = child_named(fr, parent, p, len);
    if (!f)
      return MBX_ENOTFOUND;
    parent = f->id;
    p += len;
    while (*p == '/')
      p++;
  }
  if (!f)
    return MBX_ENOTFOUND;
  *folder_r = f;
  return 0;
}

int mbxc_folder_path(const Mbx__FoldersResp *fr, const Mbx__Folder *f, char *buf, size_t len)
{
  const Mbx__Folder *chain[MBXC_MAX_FOLDER_DEPTH];
  int n = 0;
  if (len)
    buf[0] = 0;
  for (const Mbx__Folder *x = f; x; ) {
    if (n == MBXC_MAX_FOLDER_DEPTH)
      return MBX_ELIMIT;
    chain[n++] = x;
    uint64_t p = x->has_parent_id ? x->parent_id : 0;
    x = p ? folder_by_id(fr, p) : NULL;
  }
  size_t used = 0;
  for (int i = n - 1; i >= 0 && len; i--) {
    int w = snprintf(buf + used, len - used, "%s%s", i == n - 1 ? "" : "/",
                     chain[i]->name ? chain[i]->name : "");
    if (w < 0 || (size_t)w >= len - used) {
      buf[used] = 0; /* whole segments only */
      break;
    }
    used += (size_t)w;
  }
  return n - 1;
}

const Mbx__Folder *mbxc_folder_well_known(const Mbx__FoldersResp *fr, Mbx__WellKnown wk)
{
  for (size_t i = 0; fr && i < fr->n_folders; i++)
    if (fr->folders[i]->has_well_known && fr->folders[i]->well_known == wk)
      return fr->folders[i];
  return NULL;
}

/* itc_roles.c — the node's role checks, below the CLI (which refuses some of these
 * before sending): a logged-in user, a transport certificate and an anonymous TLS
 * client each send admin requests (and the requests of the other roles) and must get
 * EPERM / ENOTAUTH with nothing done. Driven by it_auth.sh.
 * Also what the CLI checks before sending, sent anyway: `foreign ITEM FOLDER` logs in
 * as MBX_USER and touches another mailbox's item and folder ids (ENOTFOUND each);
 * `toobig BYTES` delivers (transport cert) and appends (MBX_USER) a message of BYTES
 * (ETOOBIG each).
 * Usage: itc_roles user|transport|none|foreign ITEM FOLDER|toobig BYTES   (env
 * MBX_SERVER, MBX_CA, MBX_USER, MBX_PASSWORD, MBX_CERT, MBX_KEY = transport cert).
 * Exit 0: every request was refused as expected. */
#include <signal.h>

#include "itc_common.h"

static int g_failures;

/* Sends req (id set here) and checks the reply is an error named want. */
static void expect(struct itc_conn *c, Mbx__Request *req, const char *what, const char *want)
{
  static uint64_t id = 100;
  req->id = ++id;
  int eof = 0;
  Mbx__Response *r = itc_send_req(c, req) == 0 ? itc_recv_resp(c, &eof) : NULL;
  if (!r) {
    fprintf(stderr, "itc_roles: %s: no reply (%s)\n", what, eof ? "closed" : "error");
    g_failures++;
    return;
  }
  const char *got = r->error && r->error->name ? r->error->name : "OK";
  int good = r->id == req->id && strcmp(got, want) == 0;
  printf("%s: %s%s%s\n", what, got, r->error && r->error->message ? " — " : "",
         r->error && r->error->message ? r->error->message : "");
  if (!good) {
    fprintf(stderr, "itc_roles: %s: got %s (id %llu), want %s\n", what, got,
            (unsigned long long)r->id, want);
    g_failures++;
  }
  mbx__response__free_unpacked(r, NULL);
}

static void admin_requests(struct itc_conn *c, const char *want)
{
  Mbx__Request q = MBX__REQUEST__INIT;
  Mbx__DbListReq dl = MBX__DB_LIST_REQ__INIT;
  q.body_case = MBX__REQUEST__BODY_DB_LIST;
  q.db_list = &dl;
  expect(c, &q, "db list", want);

  Mbx__Request q2 = MBX__REQUEST__INIT;
  Mbx__DbCreateReq dc = MBX__DB_CREATE_REQ__INIT;
  dc.name = "dbevil";
  q2.body_case = MBX__REQUEST__BODY_DB_CREATE;
  q2.db_create = &dc;
  expect(c, &q2, "db create", want);

  Mbx__Request q3 = MBX__REQUEST__INIT;
  Mbx__DbDigestReq dd = MBX__DB_DIGEST_REQ__INIT;
  dd.name = "db1";
  q3.body_case = MBX__REQUEST__BODY_DB_DIGEST;
  q3.db_digest = &dd;
  expect(c, &q3, "db digest", want);

  Mbx__Request q4 = MBX__REQUEST__INIT;
  Mbx__MailboxCreateReq mc = MBX__MAILBOX_CREATE_REQ__INIT;
  mc.address = "eve@example.com";
  mc.database = "db1";
  mc.password = "eve-password-1";
  q4.body_case = MBX__REQUEST__BODY_MAILBOX_CREATE;
  q4.mailbox_create = &mc;
  expect(c, &q4, "mailbox create", want);

  Mbx__Request q5 = MBX__REQUEST__INIT;
  Mbx__MailboxListReq ml = MBX__MAILBOX_LIST_REQ__INIT;
  q5.body_case = MBX__REQUEST__BODY_MAILBOX_LIST;
  q5.mailbox_list = &ml;
  expect(c, &q5, "mailbox list", want);
}

static void deliver_request(struct itc_conn *c, const char *want)
{
  static char msg[] =
      "From: eve@example.org\r\nTo: demo@example.com\r\nSubject: forged\r\n\r\nx\r\n";
  Mbx__Request q = MBX__REQUEST__INIT;
  Mbx__DeliverReq d = MBX__DELIVER_REQ__INIT;
  d.to = "demo@example.com";
  d.body.data = (uint8_t *)msg;
  d.body.len = strlen(msg);
  q.body_case = MBX__REQUEST__BODY_DELIVER;
  q.deliver = &d;
  expect(c, &q, "deliver", want);
}

static void user_request(struct itc_conn *c, const char *want)
{
  Mbx__Request q = MBX__REQUEST__INIT;
  Mbx__FoldersReq f = MBX__FOLDERS_REQ__INIT;
  q.body_case = MBX__REQUEST__BODY_FOLDERS;
  q.folders = &f;
  expect(c, &q, "folders", want);
}

static int login_user(struct itc_conn *c, const char *user, const char *password)
{
  Mbx__Request q = MBX__REQUEST__INIT;
  Mbx__LoginReq l = MBX__LOGIN_REQ__INIT;
  l.has_role = 1;
  l.role = MBX__ROLE__ROLE_USER;
  l.user = (char *)user;
  l.password = (char *)password;
  q.id = 1;
  q.body_case = MBX__REQUEST__BODY_LOGIN;
  q.login = &l;
  int eof;
  Mbx__Response *r = itc_send_req(c, &q) == 0 ? itc_recv_resp(c, &eof) : NULL;
  int ok = r && !r->error && r->body_case == MBX__RESPONSE__BODY_LOGIN;
  if (!ok)
    fprintf(stderr, "itc_roles: login as %s failed: %s\n", user,
            r && r->error && r->error->name ? r->error->name : "no reply");
  if (r)
    mbx__response__free_unpacked(r, NULL);
  return ok ? 0 : -1;
}

/* Every user request naming another mailbox's item or folder id. */
static void foreign_requests(struct itc_conn *c, uint64_t item, uint64_t folder)
{
  static char msg[] = "From: b@example.com\r\nSubject: intruder\r\n\r\nx\r\n";
  Mbx__Request q;
#define REQ(field, CASE, Type, INIT, what, ...)                                                    \
  do {                                                                                             \
    Type m_ = INIT;                                                                                \
    __VA_ARGS__;                                                                                   \
    mbx__request__init(&q);                                                                        \
    q.body_case = MBX__REQUEST__BODY_##CASE;                                                       \
    q.field = &m_;                                                                                 \
    expect(c, &q, what, "ENOTFOUND");                                                              \
  } while (0)
  REQ(get, GET, Mbx__GetReq, MBX__GET_REQ__INIT, "get", m_.item_id = item);
  REQ(get, GET, Mbx__GetReq, MBX__GET_REQ__INIT, "get body", m_.item_id = item;
      m_.has_with_body = 1; m_.with_body = 1);
  REQ(set_flags, SET_FLAGS, Mbx__SetFlagsReq, MBX__SET_FLAGS_REQ__INIT, "set flags",
      m_.item_id = item;
      m_.has_add = 1; m_.add = 1);
  REQ(delete_, DELETE, Mbx__DeleteReq, MBX__DELETE_REQ__INIT, "delete", m_.item_id = item);
  REQ(delete_, DELETE, Mbx__DeleteReq, MBX__DELETE_REQ__INIT, "hard delete", m_.item_id = item;
      m_.has_hard = 1; m_.hard = 1);
  REQ(move, MOVE, Mbx__MoveReq, MBX__MOVE_REQ__INIT, "move", m_.item_id = item;
      m_.folder_id = folder);
  REQ(copy, COPY, Mbx__CopyReq, MBX__COPY_REQ__INIT, "copy", m_.item_id = item;
      m_.folder_id = folder);
  REQ(list, LIST, Mbx__ListReq, MBX__LIST_REQ__INIT, "list", m_.folder_id = folder);
  REQ(sync, SYNC, Mbx__SyncReq, MBX__SYNC_REQ__INIT, "sync", m_.folder_id = folder);
  REQ(create_folder, CREATE_FOLDER, Mbx__CreateFolderReq, MBX__CREATE_FOLDER_REQ__INIT,
      "create folder under", m_.name = "x";
      m_.has_parent_id = 1; m_.parent_id = folder);
  REQ(update_folder, UPDATE_FOLDER, Mbx__UpdateFolderReq, MBX__UPDATE_FOLDER_REQ__INIT,
      "rename folder", m_.folder_id = folder;
      m_.name = "stolen");
  REQ(delete_folder, DELETE_FOLDER, Mbx__DeleteFolderReq, MBX__DELETE_FOLDER_REQ__INIT,
      "delete folder", m_.folder_id = folder);
  REQ(empty_folder, EMPTY_FOLDER, Mbx__EmptyFolderReq, MBX__EMPTY_FOLDER_REQ__INIT, "empty folder",
      m_.folder_id = folder);
  REQ(append, APPEND, Mbx__AppendReq, MBX__APPEND_REQ__INIT, "append into", m_.folder_id = folder;
      m_.body.data = (uint8_t *)msg; m_.body.len = strlen(msg));
#undef REQ
}

/* A message of `bytes` bytes, delivered (transport) or appended (user): ETOOBIG. */
static int toobig(const char *host, uint16_t port, const char *ca, size_t bytes)
{
  uint8_t *body = malloc(bytes);
  if (!body)
    return 1;
  const char *hdr = "From: big@example.org\r\nTo: demo@example.com\r\nSubject: too-big\r\n\r\n";
  memset(body, 'x', bytes);
  memcpy(body, hdr, strlen(hdr));
  struct itc_conn c;
  if (itc_connect(&c, host, port, ca, getenv("MBX_CERT"), getenv("MBX_KEY"), 10000) != 0) {
    free(body);
    return 1;
  }
  Mbx__Request q = MBX__REQUEST__INIT;
  Mbx__DeliverReq d = MBX__DELIVER_REQ__INIT;
  d.to = getenv("MBX_USER");
  d.body.data = body;
  d.body.len = bytes;
  q.body_case = MBX__REQUEST__BODY_DELIVER;
  q.deliver = &d;
  expect(&c, &q, "deliver too big", "ETOOBIG");
  itc_close(&c);
  if (itc_connect(&c, host, port, ca, NULL, NULL, 10000) != 0 ||
      login_user(&c, getenv("MBX_USER"), getenv("MBX_PASSWORD")) != 0) {
    free(body);
    return 1;
  }
  Mbx__Request q2 = MBX__REQUEST__INIT;
  Mbx__FoldersReq f = MBX__FOLDERS_REQ__INIT;
  q2.id = 2;
  q2.body_case = MBX__REQUEST__BODY_FOLDERS;
  q2.folders = &f;
  int eof;
  Mbx__Response *r = itc_send_req(&c, &q2) == 0 ? itc_recv_resp(&c, &eof) : NULL;
  uint64_t inbox = 0;
  for (size_t i = 0; r && r->body_case == MBX__RESPONSE__BODY_FOLDERS && i < r->folders->n_folders;
       i++)
    if (r->folders->folders[i]->well_known == MBX__WELL_KNOWN__WK_INBOX)
      inbox = r->folders->folders[i]->id;
  if (r)
    mbx__response__free_unpacked(r, NULL);
  if (!inbox) {
    fprintf(stderr, "itc_roles: no Inbox in the folder list\n");
    g_failures++;
  } else {
    Mbx__Request q3 = MBX__REQUEST__INIT;
    Mbx__AppendReq a = MBX__APPEND_REQ__INIT;
    a.folder_id = inbox;
    a.body.data = body;
    a.body.len = bytes;
    q3.body_case = MBX__REQUEST__BODY_APPEND;
    q3.append = &a;
    expect(&c, &q3, "append too big", "ETOOBIG");
  }
  itc_close(&c);
  free(body);
  return g_failures ? 1 : 0;
}

/* Two creations of one address on two databases, pipelined on one connection:
 * exactly one may succeed, the other must be refused with EEXIST. */
static int create_race(struct itc_conn *c, const char *addr, const char *db_a, const char *db_b)
{
  const char *dbs[2] = {db_a, db_b};
  for (int i = 0; i < 2; i++) {
    Mbx__Request req = MBX__REQUEST__INIT;
    Mbx__MailboxCreateReq mc = MBX__MAILBOX_CREATE_REQ__INIT;
    mc.address = (char *)addr;
    mc.database = (char *)dbs[i];
    mc.password = "race-password";
    req.id = (uint64_t)(100 + i);
    req.body_case = MBX__REQUEST__BODY_MAILBOX_CREATE;
    req.mailbox_create = &mc;
    if (itc_send_req(c, &req) != 0)
      return 1;
  }
  int ok = 0, exists = 0;
  for (int i = 0; i < 2; i++) {
    int eof = 0;
    Mbx__Response *resp = itc_recv_resp(c, &eof);
    if (!resp) {
      fprintf(stderr, "itc_roles: race: no answer\n");
      return 1;
    }
    if (!resp->error && resp->body_case == MBX__RESPONSE__BODY_MAILBOX)
      ok++;
    else if (resp->error && resp->error->name && !strcmp(resp->error->name, "EEXIST"))
      exists++;
    else
      fprintf(stderr, "itc_roles: race: unexpected answer %s\n",
              resp->error && resp->error->name ? resp->error->name : "(no error)");
    mbx__response__free_unpacked(resp, NULL);
  }
  printf("race: %d created, %d refused EEXIST\n", ok, exists);
  return ok == 1 && exists == 1 ? 0 : 1;
}

int main(int argc, char **argv)
{
  signal(SIGPIPE, SIG_IGN);
  setvbuf(stdout, NULL, _IOLBF, 0);
  char host[64];
  uint16_t port;
  const char *ca = getenv("MBX_CA");
  if (argc < 2 || !ca || itc_parse_server(getenv("MBX_SERVER"), host, sizeof(host), &port) != 0) {
    fprintf(stderr, "usage: MBX_SERVER=H:P MBX_CA=F itc_roles "
                    "user|transport|none|foreign ITEM FOLDER|toobig BYTES|race ADDR DB1 DB2\n");
    return 2;
  }
  const char *mode = argc >= 2 ? argv[1] : "";
  if (!strcmp(mode, "toobig") && argc == 3)
    return toobig(host, port, ca, (size_t)strtoull(argv[2], NULL, 10));
  if (!strcmp(mode, "foreign") && argc == 4) {
    struct itc_conn fc;
    if (itc_connect(&fc, host, port, ca, NULL, NULL, 10000) != 0 ||
        login_user(&fc, getenv("MBX_USER"), getenv("MBX_PASSWORD")) != 0)
      return 1;
    foreign_requests(&fc, strtoull(argv[2], NULL, 10), strtoull(argv[3], NULL, 10));
    itc_close(&fc);
    return g_failures ? 1 : 0;
  }
  if (!strcmp(mode, "race") && argc == 5) {
    struct itc_conn rc;
    if (itc_connect(&rc, host, port, ca, getenv("MBX_CERT"), getenv("MBX_KEY"), 10000) != 0)
      return 1;
    int r = create_race(&rc, argv[2], argv[3], argv[4]);
    itc_close(&rc);
    return r;
  }
  int transport = !strcmp(mode, "transport");
  struct itc_conn c;
  if (itc_connect(&c, host, port, ca, transport ? getenv("MBX_CERT") : NULL,
                  transport ? getenv("MBX_KEY") : NULL, 10000) != 0) {
    fprintf(stderr, "itc_roles: TLS connect failed\n");
    return 1;
  }
  if (!strcmp(mode, "user")) {
    const char *u = getenv("MBX_USER"), *p = getenv("MBX_PASSWORD");
    if (!u || !p || login_user(&c, u, p) != 0)
      return 1;
    admin_requests(&c, "EPERM");
    deliver_request(&c, "EPERM");
  } else if (transport) {
    admin_requests(&c, "EPERM");
    user_request(&c, "ENOTAUTH");
  } else if (!strcmp(mode, "none")) {
    admin_requests(&c, "EPERM");
    deliver_request(&c, "EPERM");
    user_request(&c, "ENOTAUTH");
  } else {
    fprintf(stderr, "itc_roles: unknown mode %s\n", mode);
    return 2;
  }
  itc_close(&c);
  return g_failures ? 1 : 0;
}

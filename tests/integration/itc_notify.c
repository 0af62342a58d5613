/* itc_notify.c — push notifications, idempotency keys and if_cn, spoken frame by frame
 * to a running node (driven by it_notify.sh). Modes:
 *   latency N MAX_MS  subscribe to the Inbox (user), deliver N messages one by one
 *                     (transport cert); each must be notified with the Inbox's new
 *                     cn, within MAX_MS of the deliver being sent. Prints p50/max.
 *   hierarchy         a hierarchy-only subscription hears of a folder creation (hcn
 *                     up) and not of a delivery; an all-folder one hears of both.
 *   idem              a keyed append repeated on a new connection answers the same
 *                     item and stores one; the same for a keyed deliver; a 65-byte key
 *                     is EINVAL; a key reused for another request is EINVAL; a stale
 *                     if_cn is ECONFLICT and changes nothing.
 *   keyed KEY         one keyed append to Drafts; prints "item ID drafts N".
 *   limits            more subscriptions than max_subscriptions_per_conn (ELIMIT),
 *                     an unknown folder (ENOTFOUND), 1001 folder ids (ELIMIT).
 * Env: MBX_SERVER, MBX_CA, MBX_USER, MBX_PASSWORD, MBX_CERT/MBX_KEY (transport).
 * Exit 0 when everything held; one line per failure on stderr. */
#include <signal.h>
#include <stdbool.h>
#include <time.h>

#include "itc_common.h"

static int g_fail;
static uint64_t g_id = 1000;
static char g_host[64];
static uint16_t g_port;
static const char *g_ca;

#define FAIL(...)                                                                                  \
  do {                                                                                             \
    fprintf(stderr, "itc_notify: " __VA_ARGS__);                                                   \
    fputc('\n', stderr);                                                                           \
    g_fail++;                                                                                      \
  } while (0)

static int64_t now_us(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void set_timeout(struct itc_conn *c, int ms)
{
  struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
  setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

/* Sends req and returns the response with its id (others — notifications on another
 * stream of this connection — are skipped). NULL on a failure. */
static Mbx__Response *call(struct itc_conn *c, Mbx__Request *req)
{
  req->id = ++g_id;
  if (itc_send_req(c, req) != 0)
    return NULL;
  for (int i = 0; i < 100; i++) {
    int eof;
    Mbx__Response *r = itc_recv_resp(c, &eof);
    if (!r || r->id == req->id)
      return r;
    mbx__response__free_unpacked(r, NULL);
  }
  return NULL;
}

static const char *err_name(const Mbx__Response *r)
{
  return !r ? "no reply" : r->error ? (r->error->name ? r->error->name : "E?") : "OK";
}

static int connect_user(struct itc_conn *c)
{
  if (itc_connect(c, g_host, g_port, g_ca, NULL, NULL, 10000) != 0)
    return -1;
  Mbx__Request q = MBX__REQUEST__INIT;
  Mbx__LoginReq l = MBX__LOGIN_REQ__INIT;
  l.has_role = 1;
  l.role = MBX__ROLE__ROLE_USER;
  l.user = getenv("MBX_USER");
  l.password = getenv("MBX_PASSWORD");
  q.body_case = MBX__REQUEST__BODY_LOGIN;
  q.login = &l;
  Mbx__Response *r = call(c, &q);
  int ok = r && !r->error;
  if (!ok)
    FAIL("login as %s: %s", l.user ? l.user : "?", err_name(r));
  if (r)
    mbx__response__free_unpacked(r, NULL);
  return ok ? 0 : -1;
}

static int connect_transport(struct itc_conn *c)
{
  return itc_connect(c, g_host, g_port, g_ca, getenv("MBX_CERT"), getenv("MBX_KEY"), 10000);
}

/* The id of a top-level folder by name (0 if none). */
static uint64_t folder_id(struct itc_conn *c, const char *name)
{
  Mbx__Request q = MBX__REQUEST__INIT;
  Mbx__FoldersReq f = MBX__FOLDERS_REQ__INIT;
  q.body_case = MBX__REQUEST__BODY_FOLDERS;
  q.folders = &f;
  Mbx__Response *r = call(c, &q);
  uint64_t id = 0;
  for (size_t i = 0; r && r->folders && i < r->folders->n_folders; i++)
    if (strcmp(r->folders->folders[i]->name, name) == 0 && !r->folders->folders[i]->parent_id)
      id = r->folders->folders[i]->id;
  if (r)
    mbx__response__free_unpacked(r, NULL);
  return id;
}

/* Sends a SubscribeReq; returns its id, and the first answer in *first_r. */
static uint64_t subscribe(struct itc_conn *c, uint64_t *ids, size_t n, bool hierarchy,
                          Mbx__Response **first_r)
{
  Mbx__Request q = MBX__REQUEST__INIT;
  Mbx__SubscribeReq s = MBX__SUBSCRIBE_REQ__INIT;
  s.folder_ids = ids;
  s.n_folder_ids = n;
  s.has_hierarchy = 1;
  s.hierarchy = hierarchy;
  q.body_case = MBX__REQUEST__BODY_SUBSCRIBE;
  q.subscribe = &s;
  *first_r = call(c, &q);
  return q.id;
}

/* The next non-keepalive notification on c (any stream), or NULL. */
static Mbx__Response *next_note(struct itc_conn *c)
{
  for (int i = 0; i < 10; i++) {
    int eof;
    Mbx__Response *r = itc_recv_resp(c, &eof);
    if (!r)
      return NULL;
    const Mbx__Notification *n = r->notification;
    if (r->error || !n || n->n_folders || n->hierarchy_changed || n->subscribed)
      return r;
    mbx__response__free_unpacked(r, NULL); /* keepalive */
  }
  return NULL;
}

static uint64_t note_cn(const Mbx__Response *r, uint64_t folder)
{
  const Mbx__Notification *n = r ? r->notification : NULL;
  for (size_t i = 0; n && i < n->n_folders; i++)
    if (n->folders[i]->folder_id == folder)
      return n->folders[i]->last_cn;
  return 0;
}

static Mbx__Response *deliver(struct itc_conn *t, const char *subject, const uint8_t *key,
                              size_t key_len)
{
  char msg[512];
  int len = snprintf(msg, sizeof(msg),
                     "From: itc@example.org\r\nTo: %s\r\nSubject: %s\r\n\r\n"
                     "notify test\r\n",
                     getenv("MBX_USER"), subject);
  Mbx__Request q = MBX__REQUEST__INIT;
  Mbx__DeliverReq d = MBX__DELIVER_REQ__INIT;
  d.to = getenv("MBX_USER");
  d.body.data = (uint8_t *)msg;
  d.body.len = (size_t)len;
  q.body_case = MBX__REQUEST__BODY_DELIVER;
  q.deliver = &d;
  if (key) {
    q.has_idempotency_key = 1;
    q.idempotency_key.data = (uint8_t *)key;
    q.idempotency_key.len = key_len;
  }
  return call(t, &q);
}

static int cmp_i64(const void *a, const void *b)
{
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

/* ---- latency ------------------------------------------------------------------ */

static int run_latency(int n, int max_ms)
{
  struct itc_conn u, t;
  if (connect_user(&u) != 0 || connect_transport(&t) != 0) {
    FAIL("cannot connect");
    return 1;
  }
  uint64_t inbox = folder_id(&u, "Inbox");
  Mbx__Response *first = NULL;
  subscribe(&u, &inbox, 1, false, &first);
  if (!first || first->error || !first->notification || !first->notification->subscribed) {
    FAIL("subscribe to Inbox: %s", err_name(first));
    return 1;
  }
  uint64_t cn = note_cn(first, inbox);
  mbx__response__free_unpacked(first, NULL);
  int64_t *lat = calloc((size_t)n, sizeof(*lat)), *from_commit = calloc((size_t)n, sizeof(*lat));
  for (int i = 0; i < n && lat && from_commit; i++) {
    char subj[64];
    snprintf(subj, sizeof(subj), "notify-%d", i);
    int64_t t0 = now_us();
    Mbx__Response *d = deliver(&t, subj, NULL, 0);
    if (!d || d->error) {
      FAIL("deliver %d: %s", i, err_name(d));
      break;
    }
    mbx__response__free_unpacked(d, NULL);
    Mbx__Response *note = next_note(&u);
    int64_t t1 = now_us();
    uint64_t got = note_cn(note, inbox);
    if (!note || got <= cn) {
      FAIL("delivery %d: no notification with Inbox cn > %llu (%s)", i, (unsigned long long)cn,
           err_name(note));
      if (note)
        mbx__response__free_unpacked(note, NULL);
      break;
    }
    cn = got;
    lat[i] = t1 - t0;
    from_commit[i] =
        note->notification->has_commit_time_us ? t1 - note->notification->commit_time_us : -1;
    if (from_commit[i] < 0)
      FAIL("delivery %d: notification without commit_time_us", i);
    mbx__response__free_unpacked(note, NULL);
  }
  if (!g_fail) {
    qsort(lat, (size_t)n, sizeof(*lat), cmp_i64);
    qsort(from_commit, (size_t)n, sizeof(*from_commit), cmp_i64);
    printf("notifications: %d; deliver sent → notified: p50 %.2f ms, max %.2f ms; "
           "commit → notified: p50 %.2f ms, max %.2f ms\n",
           n, lat[n / 2] / 1000.0, lat[n - 1] / 1000.0, from_commit[n / 2] / 1000.0,
           from_commit[n - 1] / 1000.0);
    if (lat[n - 1] > (int64_t)max_ms * 1000)
      FAIL("slowest notification took %.2f ms (limit %d ms)", lat[n - 1] / 1000.0, max_ms);
  }
  free(lat);
  free(from_commit);
  itc_close(&u);
  itc_close(&t);
  return g_fail ? 1 : 0;
}

/* ---- hierarchy ------------------------------------------------------------------- */

static int run_hierarchy(void)
{
  struct itc_conn u, w, t;
  if (connect_user(&u) != 0 || connect_user(&w) != 0 || connect_transport(&t) != 0) {
    FAIL("cannot connect");
    return 1;
  }
  Mbx__Response *first = NULL, *first_all = NULL;
  subscribe(&u, NULL, 0, true, &first);
  if (!first || first->error || !first->notification->subscribed || !first->notification->has_hcn) {
    FAIL("hierarchy subscription: %s", err_name(first));
    return 1;
  }
  uint64_t hcn = first->notification->hcn;
  uint64_t all_id = subscribe(&u, NULL, 0, false, &first_all); /* every folder, same conn */
  if (!first_all || first_all->error || first_all->notification->n_folders < 11)
    FAIL("all-folder subscription: %s, %zu folders", err_name(first_all),
         first_all && first_all->notification ? first_all->notification->n_folders : 0);
  /* A folder created on another connection. */
  char name[64];
  snprintf(name, sizeof(name), "Notified-%lld", (long long)(now_us() % 1000000));
  Mbx__Request q = MBX__REQUEST__INIT;
  Mbx__CreateFolderReq cf = MBX__CREATE_FOLDER_REQ__INIT;
  cf.name = name;
  q.body_case = MBX__REQUEST__BODY_CREATE_FOLDER;
  q.create_folder = &cf;
  Mbx__Response *cr = call(&w, &q);
  if (!cr || cr->error)
    FAIL("create folder: %s", err_name(cr));
  Mbx__Response *note = next_note(&u);
  if (!note || !note->notification || !note->notification->hierarchy_changed ||
      note->notification->hcn <= hcn || note->id != first->id)
    FAIL("no hierarchy notification after a folder creation (%s, hcn %llu, was %llu)",
         err_name(note),
         note && note->notification ? (unsigned long long)note->notification->hcn : 0ull,
         (unsigned long long)hcn);
  else
    printf("hierarchy: hcn %llu → %llu after creating %s\n", (unsigned long long)hcn,
           (unsigned long long)note->notification->hcn, name);
  if (note)
    mbx__response__free_unpacked(note, NULL);
  /* A delivery: the all-folder subscription hears of it, the hierarchy one does not. */
  Mbx__Response *d = deliver(&t, "hierarchy-test", NULL, 0);
  if (!d || d->error)
    FAIL("deliver: %s", err_name(d));
  set_timeout(&u, 1500);
  int heard_all = 0;
  for (int i = 0; i < 3; i++) {
    note = next_note(&u);
    if (!note)
      break;
    if (note->id == first->id && note->notification && note->notification->n_folders)
      FAIL("the hierarchy-only subscription was told of a folder change");
    if (note->id == all_id && note->notification && note->notification->n_folders)
      heard_all = 1;
    mbx__response__free_unpacked(note, NULL);
    if (heard_all)
      break;
  }
  if (!heard_all)
    FAIL("the all-folder subscription was not told of the delivery");
  if (cr)
    mbx__response__free_unpacked(cr, NULL);
  if (d)
    mbx__response__free_unpacked(d, NULL);
  mbx__response__free_unpacked(first, NULL);
  if (first_all)
    mbx__response__free_unpacked(first_all, NULL);
  itc_close(&u);
  itc_close(&w);
  itc_close(&t);
  return g_fail ? 1 : 0;
}

/* ---- idempotency and if_cn ----------------------------------------------------------- */

static Mbx__Response *append(struct itc_conn *c, uint64_t folder, const char *subject,
                             const uint8_t *key, size_t key_len)
{
  char msg[256];
  int len = snprintf(msg, sizeof(msg), "From: a@example.org\r\nSubject: %s\r\n\r\nx\r\n", subject);
  Mbx__Request q = MBX__REQUEST__INIT;
  Mbx__AppendReq a = MBX__APPEND_REQ__INIT;
  a.folder_id = folder;
  a.body.data = (uint8_t *)msg;
  a.body.len = (size_t)len;
  q.body_case = MBX__REQUEST__BODY_APPEND;
  q.append = &a;
  if (key) {
    q.has_idempotency_key = 1;
    q.idempotency_key.data = (uint8_t *)key;
    q.idempotency_key.len = key_len;
  }
  return call(c, &q);
}

static uint64_t folder_count(struct itc_conn *c, uint64_t folder)
{
  Mbx__Request q = MBX__REQUEST__INIT;
  Mbx__ListReq l = MBX__LIST_REQ__INIT;
  l.folder_id = folder;
  l.has_limit = 1;
  l.limit = 1;
  q.body_case = MBX__REQUEST__BODY_LIST;
  q.list = &l;
  Mbx__Response *r = call(c, &q);
  uint64_t n = r && r->list ? r->list->total : UINT64_MAX;
  if (r)
    mbx__response__free_unpacked(r, NULL);
  return n;
}

static void expect_err(Mbx__Response *r, const char *want, const char *what)
{
  if (strcmp(err_name(r), want) != 0)
    FAIL("%s: got %s, want %s", what, err_name(r), want);
  else
    printf("%s: %s — %s\n", what, want,
           r && r->error && r->error->message ? r->error->message : "");
  if (r)
    mbx__response__free_unpacked(r, NULL);
}

static int run_idem(void)
{
  struct itc_conn a, b, t1, t2;
  char key[64];
  snprintf(key, sizeof(key), "itc-%lld", (long long)now_us());
  if (connect_user(&a) != 0) {
    FAIL("cannot connect");
    return 1;
  }
  uint64_t drafts = folder_id(&a, "Drafts"), inbox = folder_id(&a, "Inbox");
  uint64_t before = folder_count(&a, drafts);
  Mbx__Response *r1 = append(&a, drafts, "keyed", (uint8_t *)key, strlen(key));
  itc_close(&a); /* the reply "lost": the client reconnects */
  if (connect_user(&b) != 0)
    return 1;
  Mbx__Response *r2 = append(&b, drafts, "keyed", (uint8_t *)key, strlen(key));
  if (!r1 || r1->error || !r1->item || !r2 || r2->error || !r2->item)
    FAIL("keyed append: %s, repeat: %s", err_name(r1), err_name(r2));
  else if (r1->item->item->id != r2->item->item->id)
    FAIL("the repeat answered item %llu, the first %llu", (unsigned long long)r2->item->item->id,
         (unsigned long long)r1->item->item->id);
  uint64_t after = folder_count(&b, drafts);
  if (after != before + 1)
    FAIL("Drafts went from %llu to %llu items (want one more)", (unsigned long long)before,
         (unsigned long long)after);
  else
    printf("keyed append repeated on a new connection: item %llu once (Drafts %llu → %llu)\n",
           (unsigned long long)r1->item->item->id, (unsigned long long)before,
           (unsigned long long)after);
  /* The same key sent on two connections at once (both in flight): one write. */
  struct itc_conn c2;
  char key2[64];
  snprintf(key2, sizeof(key2), "itc-concurrent-%lld", (long long)now_us());
  if (connect_user(&c2) != 0)
    return 1;
  uint64_t before2 = folder_count(&b, drafts);
  Mbx__Request cq[2];
  Mbx__AppendReq ca[2];
  static char cmsg[] = "From: a@example.org\r\nSubject: concurrent\r\n\r\nx\r\n";
  struct itc_conn *cc[2] = {&b, &c2};
  for (int i = 0; i < 2; i++) {
    mbx__request__init(&cq[i]);
    mbx__append_req__init(&ca[i]);
    ca[i].folder_id = drafts;
    ca[i].body.data = (uint8_t *)cmsg;
    ca[i].body.len = sizeof(cmsg) - 1;
    cq[i].body_case = MBX__REQUEST__BODY_APPEND;
    cq[i].append = &ca[i];
    cq[i].has_idempotency_key = 1;
    cq[i].idempotency_key.data = (uint8_t *)key2;
    cq[i].idempotency_key.len = strlen(key2);
    cq[i].id = ++g_id;
    if (itc_send_req(cc[i], &cq[i]) != 0)
      FAIL("concurrent keyed append %d: not sent", i);
  }
  uint64_t cid[2] = {0, 0};
  for (int i = 0; i < 2; i++) {
    int eof;
    Mbx__Response *cr = itc_recv_resp(cc[i], &eof);
    if (!cr || cr->error || !cr->item || !cr->item->item)
      FAIL("concurrent keyed append %d: %s", i, err_name(cr));
    else
      cid[i] = cr->item->item->id;
    if (cr)
      mbx__response__free_unpacked(cr, NULL);
  }
  uint64_t after2 = folder_count(&b, drafts);
  if (cid[0] != cid[1] || after2 != before2 + 1)
    FAIL("concurrent keyed appends: items %llu and %llu, Drafts %llu → %llu",
         (unsigned long long)cid[0], (unsigned long long)cid[1], (unsigned long long)before2,
         (unsigned long long)after2);
  else
    printf("the same keyed append in flight on two connections: item %llu once\n",
           (unsigned long long)cid[0]);
  itc_close(&c2);
  after = after2;
  /* Transport: a keyed deliver twice, on two connections. */
  uint64_t in_before = folder_count(&b, inbox);
  if (connect_transport(&t1) != 0 || connect_transport(&t2) != 0)
    return 1;
  Mbx__Response *d1 = deliver(&t1, "keyed-deliver", (uint8_t *)key, strlen(key));
  Mbx__Response *d2 = deliver(&t2, "keyed-deliver", (uint8_t *)key, strlen(key));
  if (!d1 || d1->error || !d2 || d2->error || d1->item->item->id != d2->item->item->id)
    FAIL("keyed deliver repeated: %s / %s or different items", err_name(d1), err_name(d2));
  if (folder_count(&b, inbox) != in_before + 1)
    FAIL("keyed deliver repeated: Inbox grew by %llu",
         (unsigned long long)(folder_count(&b, inbox) - in_before));
  else
    printf("keyed deliver repeated on a new connection: one item\n");
  /* Limits and misuse. */
  uint8_t long_key[65];
  memset(long_key, 'x', sizeof(long_key));
  expect_err(append(&b, drafts, "long key", long_key, sizeof(long_key)), "EINVAL", "65-byte key");
  if (folder_count(&b, drafts) != after)
    FAIL("a refused keyed append stored something");
  Mbx__Request q = MBX__REQUEST__INIT;
  Mbx__SetFlagsReq sf = MBX__SET_FLAGS_REQ__INIT;
  sf.item_id = r1 && r1->item ? r1->item->item->id : 0;
  sf.has_add = 1;
  sf.add = 1;
  q.body_case = MBX__REQUEST__BODY_SET_FLAGS;
  q.set_flags = &sf;
  q.has_idempotency_key = 1;
  q.idempotency_key.data = (uint8_t *)key;
  q.idempotency_key.len = strlen(key);
  expect_err(call(&b, &q), "EINVAL", "key reused for another request");
  /* if_cn: right cn goes through, the stale one is refused with the current cn. */
  uint64_t cn = r2 && r2->item ? r2->item->item->cn : 0;
  q.has_idempotency_key = 0;
  sf.has_if_cn = 1;
  sf.if_cn = cn;
  Mbx__Response *ok = call(&b, &q);
  if (!ok || ok->error)
    FAIL("set_flags with the current if_cn: %s", err_name(ok));
  uint64_t new_cn = ok && ok->item ? ok->item->item->cn : 0;
  sf.add = 2; /* flagged: would change the item */
  Mbx__Response *stale = call(&b, &q);
  char want_msg[128];
  snprintf(want_msg, sizeof(want_msg), "changed since cn %llu (now %llu)", (unsigned long long)cn,
           (unsigned long long)new_cn);
  if (!stale || !stale->error || strcmp(stale->error->name, "ECONFLICT") != 0 ||
      !strstr(stale->error->message, want_msg))
    FAIL("stale if_cn: %s (%s), want ECONFLICT \"…%s\"", err_name(stale),
         stale && stale->error ? stale->error->message : "", want_msg);
  else
    printf("stale if_cn: ECONFLICT — %s\n", stale->error->message);
  Mbx__Request g = MBX__REQUEST__INIT;
  Mbx__GetReq gr = MBX__GET_REQ__INIT;
  gr.item_id = sf.item_id;
  g.body_case = MBX__REQUEST__BODY_GET;
  g.get = &gr;
  Mbx__Response *got = call(&b, &g);
  if (!got || !got->item || got->item->item->flags != 1 || got->item->item->cn != new_cn)
    FAIL("the refused set_flags changed the item (flags %u)",
         got && got->item ? got->item->item->flags : 0);
  Mbx__Response *rs[] = {r1, r2, d1, d2, ok, stale, got};
  for (size_t i = 0; i < sizeof(rs) / sizeof(rs[0]); i++)
    if (rs[i])
      mbx__response__free_unpacked(rs[i], NULL);
  itc_close(&b);
  itc_close(&t1);
  itc_close(&t2);
  return g_fail ? 1 : 0;
}

/* One keyed append to Drafts: prints "item ID drafts N" (N: Drafts' items after). */
static int run_keyed(const char *key)
{
  struct itc_conn u;
  if (connect_user(&u) != 0)
    return 1;
  uint64_t drafts = folder_id(&u, "Drafts");
  Mbx__Response *r = append(&u, drafts, "keyed-across-restart", (const uint8_t *)key, strlen(key));
  if (!r || r->error || !r->item || !r->item->item)
    FAIL("keyed append: %s", err_name(r));
  else
    printf("item %llu drafts %llu\n", (unsigned long long)r->item->item->id,
           (unsigned long long)folder_count(&u, drafts));
  if (r)
    mbx__response__free_unpacked(r, NULL);
  itc_close(&u);
  return g_fail ? 1 : 0;
}

/* ---- limits ----------------------------------------------------------------------------- */

static int run_limits(int max_subs)
{
  struct itc_conn u;
  if (connect_user(&u) != 0)
    return 1;
  uint64_t inbox = folder_id(&u, "Inbox");
  for (int i = 0; i < max_subs; i++) {
    Mbx__Response *first = NULL;
    subscribe(&u, &inbox, 1, false, &first);
    if (!first || first->error)
      FAIL("subscription %d of %d: %s", i + 1, max_subs, err_name(first));
    if (first)
      mbx__response__free_unpacked(first, NULL);
  }
  Mbx__Response *r = NULL;
  subscribe(&u, &inbox, 1, false, &r);
  expect_err(r, "ELIMIT", "one subscription over max_subscriptions_per_conn");
  itc_close(&u);
  if (connect_user(&u) != 0)
    return 1;
  uint64_t bogus = 987654321;
  subscribe(&u, &bogus, 1, false, &r);
  expect_err(r, "ENOTFOUND", "unknown folder");
  uint64_t *many = calloc(1001, sizeof(*many));
  for (int i = 0; many && i < 1001; i++)
    many[i] = inbox;
  subscribe(&u, many, 1001, false, &r);
  expect_err(r, "ELIMIT", "1001 folder ids");
  free(many);
  itc_close(&u);
  return g_fail ? 1 : 0;
}

int main(int argc, char **argv)
{
  signal(SIGPIPE, SIG_IGN);
  g_ca = getenv("MBX_CA");
  if (argc < 2 || !g_ca ||
      itc_parse_server(getenv("MBX_SERVER"), g_host, sizeof(g_host), &g_port) != 0) {
    fprintf(stderr,
            "usage: itc_notify latency N MAX_MS | hierarchy | idem | keyed KEY | limits MAX_SUBS "
            "(env MBX_SERVER, MBX_CA, MBX_USER, MBX_PASSWORD, MBX_CERT, MBX_KEY)\n");
    return 2;
  }
  if (strcmp(argv[1], "latency") == 0 && argc == 4)
    return run_latency(atoi(argv[2]) > 0 ? atoi(argv[2]) : 1, atoi(argv[3]));
  if (strcmp(argv[1], "hierarchy") == 0)
    return run_hierarchy();
  if (strcmp(argv[1], "idem") == 0)
    return run_idem();
  if (strcmp(argv[1], "keyed") == 0 && argc == 3)
    return run_keyed(argv[2]);
  if (strcmp(argv[1], "limits") == 0 && argc == 3)
    return run_limits(atoi(argv[2]));
  fprintf(stderr, "itc_notify: unknown mode %s\n", argv[1]);
  return 2;
}

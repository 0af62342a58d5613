/* itl_client.c — libmbx's issue-4 calls against a running node (driven by
 * it_notify.sh): mbxc_call_sync_idem repeated on a new connection answers the same
 * item and applies once, and refuses a bad key locally; mbxc_subscribe on a blocking
 * connection, driven by mbxc_wait, outlives a request timeout much shorter than the
 * quiet time (a subscription has none) and then delivers a notification.
 * Env: MBX_SERVER, MBX_CA, MBX_USER, MBX_PASSWORD, MBX_CERT/MBX_KEY (transport).
 * Exit 0 when everything held; one line per failure on stderr. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mbx/mbx.h"

static int g_fail;

#define FAIL(...)                                                                        \
  do {                                                                                   \
    fprintf(stderr, "itl_client: " __VA_ARGS__);                                         \
    fputc('\n', stderr);                                                                 \
    g_fail++;                                                                            \
  } while (0)

static mbxc_conn *open_conn(bool transport, uint32_t request_timeout_ms)
{
  struct mbxc_options o = {
      .servers = getenv("MBX_SERVER"),
      .ca_file = getenv("MBX_CA"),
      .cert_file = transport ? getenv("MBX_CERT") : NULL,
      .key_file = transport ? getenv("MBX_KEY") : NULL,
      .request_timeout_ms = request_timeout_ms,
      .client_name = "itl_client",
  };
  mbxc_conn *c = NULL;
  const char *err = NULL;
  int rc = mbxc_open(&o, &c, &err);
  if (rc < 0) {
    FAIL("connect: %s", err ? err : mbx_strerror(rc));
    return NULL;
  }
  if (!transport) {
    Mbx__LoginResp *lr = NULL;
    rc = mbxc_login(c, MBX__ROLE__ROLE_USER, getenv("MBX_USER"), getenv("MBX_PASSWORD"), &lr);
    mbxc_free(&lr);
    if (rc < 0) {
      FAIL("login: %s", mbxc_last_error(c));
      mbxc_close(&c);
    }
  }
  return c;
}

static uint64_t drafts_count(mbxc_conn *c, uint64_t drafts)
{
  Mbx__ListResp *lr = NULL;
  uint64_t n = mbxc_list(c, drafts, 0, 1, &lr) == 0 ? lr->total : UINT64_MAX;
  mbxc_free(&lr);
  return n;
}

static uint64_t keyed_append(mbxc_conn *c, uint64_t folder, const char *key)
{
  static char msg[] = "From: a@example.org\r\nSubject: itl keyed\r\n\r\nx\r\n";
  Mbx__Request req = MBX__REQUEST__INIT;
  Mbx__AppendReq a = MBX__APPEND_REQ__INIT;
  a.folder_id = folder;
  a.body.data = (uint8_t *)msg;
  a.body.len = sizeof(msg) - 1;
  req.body_case = MBX__REQUEST__BODY_APPEND;
  req.append = &a;
  Mbx__Response *resp = NULL;
  int rc = mbxc_call_sync_idem(c, &req, key, strlen(key), &resp);
  uint64_t id = rc == 0 && resp->item && resp->item->item ? resp->item->item->id : 0;
  if (!id)
    FAIL("keyed append: %s", rc < 0 ? mbxc_last_error(c) : "no item in the reply");
  if (req.has_idempotency_key)
    FAIL("mbxc_call_sync_idem left its key in the caller's request");
  mbxc_free(&resp);
  return id;
}

static void test_idem(void)
{
  char key[64];
  snprintf(key, sizeof(key), "itl-%lld", (long long)time(NULL) * 1000 + clock() % 1000);
  mbxc_conn *c = open_conn(false, 0);
  if (!c)
    return;
  Mbx__Folder *drafts = NULL;
  if (mbxc_find_folder(c, "Drafts", &drafts) < 0) {
    FAIL("no Drafts");
    mbxc_close(&c);
    return;
  }
  uint64_t before = drafts_count(c, drafts->id);
  uint64_t first = keyed_append(c, drafts->id, key);
  mbxc_close(&c);
  c = open_conn(false, 0);
  uint64_t again = c ? keyed_append(c, drafts->id, key) : 0;
  uint64_t after = c ? drafts_count(c, drafts->id) : 0;
  if (first != again || after != before + 1)
    FAIL("mbxc_call_sync_idem repeated: items %" PRIu64 " and %" PRIu64 ", Drafts %" PRIu64
         " → %" PRIu64, first, again, before, after);
  else
    printf("mbxc_call_sync_idem repeated on a new connection: item %" PRIu64 " once\n", first);
  uint8_t long_key[65] = {0};
  Mbx__Request req = MBX__REQUEST__INIT;
  Mbx__Response *resp = NULL;
  if (c && mbxc_call_sync_idem(c, &req, long_key, sizeof(long_key), &resp) != MBX_EINVAL)
    FAIL("a 65-byte key was not refused locally");
  mbxc_free(&drafts);
  mbxc_close(&c);
}

struct sub_state {
  int responses, status;
  bool subscribed;
  uint64_t inbox, cn;
};

static bool on_note(mbxc_conn *c, int status, const Mbx__Response *resp, void *arg)
{
  struct sub_state *s = arg;
  (void)c;
  if (status < 0) {
    s->status = status;
    return false;
  }
  const Mbx__Notification *no = resp->notification;
  if (!no)
    return true;
  s->responses++;
  if (no->subscribed)
    s->subscribed = true;
  for (size_t i = 0; i < no->n_folders; i++)
    if (no->folders[i]->folder_id == s->inbox && no->folders[i]->last_cn > s->cn)
      s->cn = no->folders[i]->last_cn;
  return true;
}

static void test_subscribe(void)
{
  /* The subscription runs under a request timeout of 300 ms: any ordinary stream
   * would end well before the 1.5 s of quiet below. The login and the setup get the
   * usual timeout (a password check may take longer than 300 ms on a loaded machine). */
  mbxc_conn *c = open_conn(false, 0), *t = open_conn(true, 0);
  struct sub_state s = {0};
  Mbx__Folder *inbox = NULL;
  if (!c || !t || mbxc_find_folder(c, "Inbox", &inbox) < 0) {
    FAIL("setup for the subscription failed");
    goto out;
  }
  mbxc_set_request_timeout(c, 300);
  s.inbox = inbox->id;
  int rc = mbxc_subscribe(c, &s.inbox, 1, false, on_note, &s);
  if (rc < 0) {
    FAIL("mbxc_subscribe: %s", mbx_strerror(rc));
    goto out;
  }
  for (int i = 0; i < 20 && !s.subscribed && !s.status; i++)
    mbxc_wait(c, 100);
  uint64_t cn0 = s.cn;
  if (!s.subscribed)
    FAIL("no subscribed answer (status %s)", mbx_strerror(s.status));
  rc = mbxc_wait(c, 1500);
  if (rc < 0 || s.status < 0)
    FAIL("the subscription ended while quiet: %s", mbx_strerror(s.status ? s.status : rc));
  static char msg[] = "From: t@example.org\r\nSubject: itl notify\r\n\r\nx\r\n";
  Mbx__ItemResp *ir = NULL;
  if ((rc = mbxc_deliver(t, getenv("MBX_USER"), msg, sizeof(msg) - 1, &ir)) < 0)
    FAIL("deliver: %s", mbxc_last_error(t));
  mbxc_free(&ir);
  for (int i = 0; i < 30 && s.cn == cn0 && !s.status; i++)
    mbxc_wait(c, 100);
  if (s.cn <= cn0)
    FAIL("no notification of the delivery (Inbox cn still %" PRIu64 ")", cn0);
  else
    printf("mbxc_subscribe + mbxc_wait: quiet for 1.5 s with a 300 ms request timeout, then "
           "Inbox cn %" PRIu64 " → %" PRIu64 "\n", cn0, s.cn);
  /* An ordinary call on the same connection still works (and still has its timeout). */
  Mbx__PingResp *p = NULL;
  if (mbxc_ping(c, &p) < 0)
    FAIL("ping beside the subscription: %s", mbxc_last_error(c));
  mbxc_free(&p);
out:
  mbxc_free(&inbox);
  mbxc_close(&c);
  if (s.subscribed && s.status != MBX_ECLOSED)
    FAIL("closing the connection did not end the subscription with ECLOSED (%s)",
         mbx_strerror(s.status));
  mbxc_close(&t);
}

int main(void)
{
  if (!getenv("MBX_SERVER") || !getenv("MBX_CA") || !getenv("MBX_USER")) {
    fprintf(stderr, "usage: itl_client (env MBX_SERVER, MBX_CA, MBX_USER, MBX_PASSWORD, "
                    "MBX_CERT, MBX_KEY)\n");
    return 2;
  }
  test_idem();
  test_subscribe();
  return g_fail ? 1 : 0;
}

/* test_store_idem.c — idempotency keys, if_cn preconditions and the per-unit change
 * notes behind push notifications. A keyed write is recorded with its reply in the
 * same unit; a repeat answers the first reply and changes nothing (digest and log
 * unchanged); replaying the log into an empty store reproduces the key table, so the
 * replayed store answers the repeat the same way; expired keys are pruned alike on
 * every copy; a stale if_cn is refused with the current cn and changes nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <unistd.h>

#include "store_fixture.h"

#define REQ_APPEND 32u /* Request.append's field number: the "request" recorded */

struct keyed_result {
  bool repeated; /* answered from the key */
  uint64_t item_id;
  uint8_t reply[256];
  size_t reply_len;
};

/* What the node's handler does for a keyed append, in one transaction: look the key
 * up; if found answer its reply, else append and record the key with a reply naming
 * the new item. */
static int keyed_append(struct fx *f, uint64_t mb, uint64_t folder, const char *key,
                        const char *subject, struct keyed_result *res)
{
  memset(res, 0, sizeof(*res));
  char msg[256];
  int n = snprintf(msg, sizeof(msg), "From: a@x.org\r\nSubject: %s\r\n\r\nbody\r\n", subject);
  fx_begin(f);
  assert_int_equal(mbx_store_unit_begin(f->w), 0);
  struct mbx_store_idem rec;
  int rc = mbx_store_idem_get(f->w, mb, MBX_STORE_IDEM_USER, (const uint8_t *)key, strlen(key),
                              &f->a, &rec);
  if (rc == 0) {
    assert_int_equal(rec.request, REQ_APPEND);
    assert_true(rec.reply_len <= sizeof(res->reply));
    memcpy(res->reply, rec.reply, rec.reply_len);
    res->reply_len = rec.reply_len;
    res->repeated = true;
  } else if (rc == MBX_ENOTFOUND) {
    Mbx__Item *it = NULL;
    rc = mbx_store_append(f->w, mb, folder, (const uint8_t *)msg, (size_t)n, 0, 0, &f->a, &it);
    if (rc == 0) {
      res->item_id = it->id;
      res->reply_len = (size_t)snprintf((char *)res->reply, sizeof(res->reply), "item %llu",
                                        (unsigned long long)it->id);
      rc = mbx_store_idem_put(f->w, mb, MBX_STORE_IDEM_USER, (const uint8_t *)key, strlen(key),
                              REQ_APPEND, res->reply, res->reply_len);
    }
  }
  mbx_store_unit_end(f->w, rc);
  fx_commit(f);
  return rc;
}

static uint64_t idem_count(struct mbx_store *s)
{
  struct mbx_rtxn *r;
  uint64_t n = 0;
  assert_int_equal(mbx_store_rtxn_begin(s, &r), 0);
  assert_int_equal(mbx_store_idem_count(r, &n), 0);
  mbx_store_rtxn_end(&r);
  return n;
}

/* Replays every record of a's log into b (which must be empty). */
static void replay_all(struct fx *a, struct fx *b)
{
  struct mbx_rtxn *r;
  assert_int_equal(mbx_store_rtxn_begin(a->s, &r), 0);
  for (uint64_t lsn = 1; lsn <= mbx_store_last_lsn(a->s); lsn++) {
    const uint8_t *data;
    size_t len;
    assert_int_equal(mbx_store_read_log(r, lsn, &data, &len), 0);
    assert_int_equal(mbx_store_apply_record(b->s, data, len), 0);
  }
  mbx_store_rtxn_end(&r);
}

static void test_store_idem_repeat_answers_first_reply(void **state)
{
  (void)state;
  struct fx *f = fx_new();
  uint64_t mb = fx_mailbox(f, "u@x.org");
  uint64_t drafts = fx_folder_id(f, mb, "Drafts");
  struct keyed_result first, again;
  assert_int_equal(keyed_append(f, mb, drafts, "key-1", "one", &first), 0);
  assert_false(first.repeated);
  assert_int_equal(idem_count(f->s), 1);
  struct mbx_store_digest d1 = fx_digest(f->s);
  uint64_t lsn1 = mbx_store_last_lsn(f->s);

  /* The repeat: the first reply, nothing written (no log record, same digest). */
  assert_int_equal(keyed_append(f, mb, drafts, "key-1", "one", &again), 0);
  assert_true(again.repeated);
  assert_int_equal(again.reply_len, first.reply_len);
  assert_memory_equal(again.reply, first.reply, first.reply_len);
  struct mbx_store_digest d2 = fx_digest(f->s);
  assert_memory_equal(d1.sha256, d2.sha256, 32);
  assert_int_equal(mbx_store_last_lsn(f->s), lsn1);
  assert_int_equal(fx_folder(f, mb, drafts)->item_count, 1);

  /* Another key is another write; the same key in another mailbox (scope) too. */
  struct keyed_result other;
  assert_int_equal(keyed_append(f, mb, drafts, "key-2", "two", &other), 0);
  assert_false(other.repeated);
  assert_int_equal(fx_folder(f, mb, drafts)->item_count, 2);
  uint64_t mb2 = fx_mailbox(f, "v@x.org");
  assert_int_equal(keyed_append(f, mb2, fx_folder_id(f, mb2, "Drafts"), "key-1", "v", &other), 0);
  assert_false(other.repeated);
  assert_int_equal(idem_count(f->s), 3);

  /* Both repeats in one transaction (two requests in flight at once): one write. */
  fx_begin(f);
  int writes = 0;
  for (int i = 0; i < 2; i++) {
    assert_int_equal(mbx_store_unit_begin(f->w), 0);
    struct mbx_store_idem rec;
    int rc =
        mbx_store_idem_get(f->w, mb, MBX_STORE_IDEM_USER, (const uint8_t *)"key-3", 5, &f->a, &rec);
    if (rc == MBX_ENOTFOUND) {
      Mbx__Item *it;
      rc = mbx_store_append(f->w, mb, drafts, (const uint8_t *)"Subject: 3\r\n\r\n", 14, 0, 0,
                            &f->a, &it);
      assert_int_equal(rc, 0);
      rc = mbx_store_idem_put(f->w, mb, MBX_STORE_IDEM_USER, (const uint8_t *)"key-3", 5,
                              REQ_APPEND, (const uint8_t *)"r", 1);
      writes++;
    }
    assert_int_equal(rc, 0);
    mbx_store_unit_end(f->w, rc);
  }
  fx_commit(f);
  assert_int_equal(writes, 1);
  assert_int_equal(fx_folder(f, mb, drafts)->item_count, 3);
  fx_free(f);
}

static void test_store_idem_failed_write_records_nothing(void **state)
{
  (void)state;
  struct fx *f = fx_new();
  uint64_t mb = fx_mailbox_q(f, "u@x.org", 100); /* 100-byte quota: the append fails */
  uint64_t drafts = fx_folder_id(f, mb, "Drafts");
  struct keyed_result res;
  assert_int_equal(
      keyed_append(
          f, mb, drafts, "k",
          "a subject long enough that this message is well over the mailbox's 100-byte quota",
          &res),
      MBX_EQUOTA);
  assert_int_equal(idem_count(f->s), 0); /* the client may retry with the same key */
  fx_free(f);
}

static void test_store_idem_replay_reproduces_keys(void **state)
{
  (void)state;
  struct fx *a = fx_new(), *b = fx_new();
  uint64_t mb = fx_mailbox(a, "u@x.org");
  uint64_t drafts = fx_folder_id(a, mb, "Drafts");
  struct keyed_result res[4], again;
  const char *keys[4] = {"k0", "k1", "a-much-longer-key-of-the-kind-a-client-makes-0123456789",
                         "k3"};
  for (int i = 0; i < 4; i++)
    assert_int_equal(keyed_append(a, mb, drafts, keys[i], keys[i], &res[i]), 0);
  replay_all(a, b);
  assert_int_equal(idem_count(b->s), 4);
  struct mbx_store_digest da = fx_digest(a->s), db = fx_digest(b->s);
  assert_memory_equal(da.sha256, db.sha256, 32);
  struct mbx_rtxn *r;
  assert_int_equal(mbx_store_rtxn_begin(b->s, &r), 0);
  for (int i = 0; i < 4; i++) {
    struct mbx_store_idem rec;
    assert_int_equal(mbx_store_idem_lookup(r, mb, MBX_STORE_IDEM_USER, (const uint8_t *)keys[i],
                                           strlen(keys[i]), &b->a, &rec),
                     0);
    assert_int_equal(rec.reply_len, res[i].reply_len);
    assert_memory_equal(rec.reply, res[i].reply, rec.reply_len);
    assert_int_equal(rec.request, REQ_APPEND);
  }
  /* A transport key of the same bytes is another scope. */
  struct mbx_store_idem rec;
  assert_int_equal(
      mbx_store_idem_lookup(r, mb, MBX_STORE_IDEM_TRANSPORT, (const uint8_t *)"k0", 2, &b->a, &rec),
      MBX_ENOTFOUND);
  mbx_store_rtxn_end(&r);
  /* The replayed copy, once serving, answers a repeat exactly as the active did. */
  assert_int_equal(keyed_append(b, mb, drafts, "k1", "k1", &again), 0);
  assert_true(again.repeated);
  assert_memory_equal(again.reply, res[1].reply, res[1].reply_len);
  struct mbx_store_digest db2 = fx_digest(b->s);
  assert_memory_equal(db.sha256, db2.sha256, 32);
  fx_free(a);
  fx_free(b);
}

static void test_store_idem_prune_is_replicated(void **state)
{
  (void)state;
  struct mbx_store_options opt;
  mbx_store_options_default(&opt);
  opt.idem_keep_s = 1;
  struct fx *a = fx_new_opt(&opt), *b = fx_new();
  uint64_t mb = fx_mailbox(a, "u@x.org");
  uint64_t drafts = fx_folder_id(a, mb, "Drafts");
  struct keyed_result res;
  assert_int_equal(keyed_append(a, mb, drafts, "old-1", "x", &res), 0);
  assert_int_equal(keyed_append(a, mb, drafts, "old-2", "x", &res), 0);
  assert_int_equal(idem_count(a->s), 2);
  usleep(1200 * 1000);
  assert_int_equal(keyed_append(a, mb, drafts, "new", "x", &res), 0);
  assert_int_equal(idem_count(a->s), 1); /* both expired keys went with the new one */
  /* A copy with the default (7-day) setting prunes the same keys: the cutoff is in
   * the op. */
  replay_all(a, b);
  assert_int_equal(idem_count(b->s), 1);
  struct mbx_rtxn *r;
  struct mbx_store_idem rec;
  assert_int_equal(mbx_store_rtxn_begin(b->s, &r), 0);
  assert_int_equal(mbx_store_idem_lookup(r, mb, 0, (const uint8_t *)"old-1", 5, &b->a, &rec),
                   MBX_ENOTFOUND);
  assert_int_equal(mbx_store_idem_lookup(r, mb, 0, (const uint8_t *)"new", 3, &b->a, &rec), 0);
  mbx_store_rtxn_end(&r);
  fx_free(a);
  fx_free(b);
}

static void test_store_idem_key_length(void **state)
{
  (void)state;
  struct fx *f = fx_new();
  uint64_t mb = fx_mailbox(f, "u@x.org");
  uint8_t key[MBX_STORE_IDEM_KEY_MAX + 1];
  memset(key, 'k', sizeof(key));
  struct mbx_store_idem rec;
  fx_begin(f);
  assert_int_equal(mbx_store_unit_begin(f->w), 0);
  assert_int_equal(mbx_store_idem_get(f->w, mb, 0, key, sizeof(key), &f->a, &rec), MBX_EINVAL);
  assert_int_equal(mbx_store_idem_get(f->w, mb, 0, key, 0, &f->a, &rec), MBX_EINVAL);
  assert_int_equal(mbx_store_idem_put(f->w, mb, 0, key, sizeof(key), REQ_APPEND, key, 1),
                   MBX_EINVAL);
  assert_int_equal(mbx_store_idem_get(f->w, mb, 0, key, MBX_STORE_IDEM_KEY_MAX, &f->a, &rec),
                   MBX_ENOTFOUND); /* 64 bytes is fine */
  assert_int_equal(mbx_store_idem_put(f->w, mb, 0, key, MBX_STORE_IDEM_KEY_MAX, REQ_APPEND, key, 1),
                   0);
  mbx_store_unit_end(f->w, 0);
  fx_commit(f);
  assert_int_equal(idem_count(f->s), 1);
  fx_free(f);
}

static void test_store_if_cn_conflict(void **state)
{
  (void)state;
  struct fx *f = fx_new();
  uint64_t mb = fx_mailbox(f, "u@x.org");
  uint64_t id = fx_deliver(f, "u@x.org", "x");
  uint64_t archive = fx_folder_id(f, mb, "Archive");
  struct mbx_rtxn *r;
  Mbx__Item *it;
  assert_int_equal(mbx_store_rtxn_begin(f->s, &r), 0);
  assert_int_equal(mbx_store_get_item(r, mb, id, &f->a, &it, NULL, NULL), 0);
  mbx_store_rtxn_end(&r);
  uint64_t seen_cn = it->cn, cn = 0;
  /* Changed on the server since the client saw it. */
  fx_begin(f);
  assert_int_equal(mbx_store_set_flags(f->w, mb, id, 1, 0, NULL, 0, &f->a, &it), 0);
  fx_commit(f);
  uint64_t now_cn = it->cn;
  assert_true(now_cn > seen_cn);
  struct mbx_store_digest d = fx_digest(f->s);
  fx_begin(f);
  assert_int_equal(mbx_store_unit_begin(f->w), 0);
  int rc = mbx_store_check_cn(f->w, mb, id, seen_cn, &cn);
  assert_int_equal(rc, MBX_ECONFLICT);
  assert_int_equal(cn, now_cn);
  mbx_store_unit_end(f->w, rc);
  assert_int_equal(fx_commit(f), 0);
  struct mbx_store_digest d2 = fx_digest(f->s);
  assert_memory_equal(d.sha256, d2.sha256, 32);
  /* With the current cn the move goes through; an unknown item is ENOTFOUND. */
  fx_begin(f);
  assert_int_equal(mbx_store_unit_begin(f->w), 0);
  assert_int_equal(mbx_store_check_cn(f->w, mb, id, now_cn, &cn), 0);
  assert_int_equal(mbx_store_move_item(f->w, mb, id, archive, &f->a, &it), 0);
  mbx_store_unit_end(f->w, 0);
  assert_int_equal(mbx_store_unit_begin(f->w), 0);
  assert_int_equal(mbx_store_check_cn(f->w, mb, 999999, 1, &cn), MBX_ENOTFOUND);
  mbx_store_unit_end(f->w, MBX_ENOTFOUND);
  fx_commit(f);
  assert_int_equal(fx_folder(f, mb, archive)->item_count, 1);
  fx_free(f);
}

static const struct mbx_store_change *find_change(const struct mbx_store_change *v, size_t n,
                                                  uint64_t folder)
{
  for (size_t i = 0; i < n; i++)
    if (v[i].folder_id == folder)
      return &v[i];
  return NULL;
}

static void test_store_unit_changes(void **state)
{
  (void)state;
  struct fx *f = fx_new();
  uint64_t mb = fx_mailbox(f, "u@x.org");
  uint64_t inbox = fx_folder_id(f, mb, "Inbox"), archive = fx_folder_id(f, mb, "Archive");
  uint64_t id = fx_deliver(f, "u@x.org", "x");
  const struct mbx_store_change *v;
  Mbx__Item *it;
  Mbx__Folder *fo;
  fx_begin(f);
  /* A move: both folders, each with its last_cn after the change. */
  assert_int_equal(mbx_store_unit_begin(f->w), 0);
  assert_int_equal(mbx_store_move_item(f->w, mb, id, archive, &f->a, &it), 0);
  size_t n = mbx_store_unit_changes(f->w, &v);
  assert_int_equal(n, 2);
  const struct mbx_store_change *ci = find_change(v, n, inbox), *ca = find_change(v, n, archive);
  assert_non_null(ci);
  assert_non_null(ca);
  assert_int_equal(ca->cn, it->cn);
  assert_int_equal(ci->mailbox_id, mb);
  uint64_t inbox_cn = ci->cn; /* v is valid until the unit ends */
  mbx_store_unit_end(f->w, 0);
  /* A new unit starts empty; a folder creation is a hierarchy change (folder 0). */
  assert_int_equal(mbx_store_unit_begin(f->w), 0);
  assert_int_equal(mbx_store_unit_changes(f->w, &v), 0);
  assert_int_equal(mbx_store_create_folder(f->w, mb, 0, "P", 0, &f->a, &fo), 0);
  n = mbx_store_unit_changes(f->w, &v);
  assert_int_equal(n, 1);
  assert_int_equal(v[0].folder_id, 0);
  assert_int_equal(v[0].cn, fo->hcn);
  mbx_store_unit_end(f->w, 0);
  fx_commit(f);
  Mbx__Folder *in = fx_folder(f, mb, inbox);
  assert_int_equal(inbox_cn, in->last_cn); /* the tombstone's cn: Inbox's last_cn now */
  fx_free(f);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_store_idem_repeat_answers_first_reply),
      cmocka_unit_test(test_store_idem_failed_write_records_nothing),
      cmocka_unit_test(test_store_idem_replay_reproduces_keys),
      cmocka_unit_test(test_store_idem_prune_is_replicated),
      cmocka_unit_test(test_store_idem_key_length),
      cmocka_unit_test(test_store_if_cn_conflict),
      cmocka_unit_test(test_store_unit_changes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_store_sync.c — incremental folder and hierarchy sync: full then incremental
 * (added / changed / deleted), paging with `more`, bad and foreign tokens, and a
 * 100,000-item folder whose incremental sync returns exactly the 10 changes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <time.h>

#include "clock.h"
#include "store_fixture.h"

struct tok {
  uint8_t b[128];
  size_t n;
};

static void keep(struct tok *t, const struct mbx_sync_result *res)
{
  assert_true(res->state_len <= sizeof(t->b));
  memcpy(t->b, res->state, res->state_len);
  t->n = res->state_len;
}

static int sync_f(struct fx *f, uint64_t mb, uint64_t folder, const struct tok *t, uint32_t max,
                  struct mbx_sync_result *res)
{
  struct mbx_rtxn *r;
  assert_int_equal(mbx_store_rtxn_begin(f->s, &r), 0);
  int rc = mbx_store_sync_folder(r, mb, folder, t ? t->b : NULL, t ? t->n : 0, max, &f->a, res);
  mbx_store_rtxn_end(&r);
  return rc;
}

static int sync_h(struct fx *f, uint64_t mb, const struct tok *t, struct mbx_sync_result *res)
{
  struct mbx_rtxn *r;
  assert_int_equal(mbx_store_rtxn_begin(f->s, &r), 0);
  int rc = mbx_store_sync_hierarchy(r, mb, t ? t->b : NULL, t ? t->n : 0, 0, &f->a, res);
  mbx_store_rtxn_end(&r);
  return rc;
}

static bool has_id(Mbx__Item **v, size_t n, uint64_t id)
{
  for (size_t i = 0; i < n; i++)
    if (v[i]->id == id)
      return true;
  return false;
}

static void test_folder_sync(void **state)
{
  (void)state;
  struct fx *f = fx_new();
  uint64_t mb = fx_mailbox(f, "u@x.org");
  uint64_t inbox = fx_folder_id(f, mb, "Inbox"), archive = fx_folder_id(f, mb, "Archive");
  uint64_t a = fx_deliver(f, "u@x.org", "a"), b = fx_deliver(f, "u@x.org", "b");
  uint64_t c = fx_deliver(f, "u@x.org", "c");
  struct mbx_sync_result res;
  struct tok t;
  assert_int_equal(sync_f(f, mb, inbox, NULL, 0, &res), 0);
  assert_int_equal(res.n_added, 3);
  assert_int_equal(res.n_changed + res.n_deleted, 0);
  assert_false(res.more);
  keep(&t, &res);
  /* Nothing new: empty answer, same position. */
  assert_int_equal(sync_f(f, mb, inbox, &t, 0, &res), 0);
  assert_int_equal(res.n_added + res.n_changed + res.n_deleted, 0);
  keep(&t, &res);

  Mbx__Item *it;
  fx_begin(f);
  assert_int_equal(
      mbx_store_set_flags(f->w, mb, a, MBX__ITEM_FLAG__FLAG_SEEN, 0, NULL, 0, &f->a, &it), 0);
  assert_int_equal(
      mbx_store_set_flags(f->w, mb, a, MBX__ITEM_FLAG__FLAG_FLAGGED, 0, NULL, 0, &f->a, &it), 0);
  assert_int_equal(mbx_store_move_item(f->w, mb, b, archive, &f->a, &it), 0);
  assert_int_equal(mbx_store_delete_item(f->w, mb, c, true), 0);
  fx_commit(f);
  uint64_t d = fx_deliver(f, "u@x.org", "d");
  assert_int_equal(sync_f(f, mb, inbox, &t, 0, &res), 0);
  assert_int_equal(res.n_changed, 1); /* a, once despite two changes */
  assert_int_equal(res.changed[0]->id, a);
  assert_int_equal(res.changed[0]->flags, MBX__ITEM_FLAG__FLAG_SEEN | MBX__ITEM_FLAG__FLAG_FLAGGED);
  assert_int_equal(res.n_added, 1);
  assert_int_equal(res.added[0]->id, d);
  assert_int_equal(res.n_deleted, 2); /* b moved out, c deleted */
  assert_true((res.deleted[0] == b && res.deleted[1] == c) ||
              (res.deleted[0] == c && res.deleted[1] == b));
  struct tok t2;
  keep(&t2, &res);
  /* The archive sees b as added. */
  assert_int_equal(sync_f(f, mb, archive, NULL, 0, &res), 0);
  assert_int_equal(res.n_added, 1);
  assert_int_equal(res.added[0]->id, b);
  /* Full resync of the inbox skips tombstones. */
  assert_int_equal(sync_f(f, mb, inbox, NULL, 0, &res), 0);
  assert_int_equal(res.n_added, 2);
  assert_int_equal(res.n_deleted, 0);
  assert_true(has_id(res.added, res.n_added, a) && has_id(res.added, res.n_added, d));

  /* Paging: 7 new items, 3 at a time. */
  for (int i = 0; i < 7; i++)
    fx_deliver(f, "u@x.org", "p");
  struct tok pt = t2;
  size_t got = 0;
  int rounds = 0;
  do {
    assert_int_equal(sync_f(f, mb, inbox, &pt, 3, &res), 0);
    got += res.n_added;
    assert_true(res.n_added <= 3);
    keep(&pt, &res);
  } while (res.more && ++rounds < 10);
  assert_int_equal(got, 7);
  assert_int_equal(rounds, 2);
  fx_free(f);
}

static void test_bad_tokens(void **state)
{
  (void)state;
  struct fx *f = fx_new();
  uint64_t mb = fx_mailbox(f, "u@x.org");
  uint64_t inbox = fx_folder_id(f, mb, "Inbox"), archive = fx_folder_id(f, mb, "Archive");
  fx_deliver(f, "u@x.org", "a");
  struct mbx_sync_result res;
  struct tok t, h;
  assert_int_equal(sync_f(f, mb, inbox, NULL, 0, &res), 0);
  keep(&t, &res);
  assert_int_equal(sync_h(f, mb, NULL, &res), 0);
  keep(&h, &res);
  /* Another folder's token, a hierarchy token, flipped bytes, garbage. */
  assert_int_equal(sync_f(f, mb, archive, &t, 0, &res), MBX_ESTATE);
  assert_int_equal(sync_f(f, mb, inbox, &h, 0, &res), MBX_ESTATE);
  assert_int_equal(sync_h(f, mb, &t, &res), MBX_ESTATE);
  for (size_t i = 0; i < t.n; i++) {
    struct tok bad = t;
    bad.b[i] ^= 0x01;
    assert_int_equal(sync_f(f, mb, inbox, &bad, 0, &res), MBX_ESTATE);
  }
  struct tok junk = {.n = 3};
  assert_int_equal(sync_f(f, mb, inbox, &junk, 0, &res), MBX_ESTATE);
  /* Another database's token (same ids, different db_uid). */
  struct fx *g = fx_new();
  uint64_t mb2 = fx_mailbox(g, "u@x.org");
  assert_int_equal(mb2, mb);
  assert_int_equal(fx_folder_id(g, mb2, "Inbox"), inbox);
  assert_int_equal(sync_f(g, mb2, inbox, &t, 0, &res), MBX_ESTATE);
  /* A folder of another mailbox is simply not found. */
  uint64_t other = fx_mailbox(f, "o@x.org");
  assert_int_equal(sync_f(f, other, inbox, NULL, 0, &res), MBX_ENOTFOUND);
  fx_free(g);
  fx_free(f);
}

static void test_hierarchy_sync(void **state)
{
  (void)state;
  struct fx *f = fx_new();
  uint64_t mb = fx_mailbox(f, "u@x.org");
  struct mbx_sync_result res;
  struct tok t;
  assert_int_equal(sync_h(f, mb, NULL, &res), 0);
  assert_int_equal(res.n_added, 11);
  keep(&t, &res);
  Mbx__Folder *p, *q, *fo;
  fx_begin(f);
  assert_int_equal(mbx_store_create_folder(f->w, mb, 0, "P", 0, &f->a, &p), 0);
  assert_int_equal(mbx_store_create_folder(f->w, mb, 0, "Q", 0, &f->a, &q), 0);
  fx_commit(f);
  assert_int_equal(sync_h(f, mb, &t, &res), 0);
  assert_int_equal(res.n_added, 2);
  assert_int_equal(res.n_changed, 0);
  keep(&t, &res);
  fx_begin(f);
  assert_int_equal(mbx_store_update_folder(f->w, mb, p->id, "P2", false, 0, &f->a, &fo), 0);
  assert_int_equal(mbx_store_delete_folder(f->w, mb, q->id), 0);
  fx_commit(f);
  assert_int_equal(sync_h(f, mb, &t, &res), 0);
  assert_int_equal(res.n_added, 0);
  assert_int_equal(res.n_changed, 1);
  assert_string_equal(res.fchanged[0]->name, "P2");
  assert_int_equal(res.n_deleted, 1);
  assert_int_equal(res.deleted[0], q->id);
  keep(&t, &res);
  assert_int_equal(sync_h(f, mb, &t, &res), 0);
  assert_int_equal(res.n_added + res.n_changed + res.n_deleted, 0);
  fx_free(f);
}

static void test_big_folder_incremental(void **state)
{
  (void)state;
  struct fx *f = fx_new();
  uint64_t mb = fx_mailbox(f, "u@x.org");
  uint64_t inbox = fx_folder_id(f, mb, "Inbox");
  enum { N = 100000, BATCH = 5000 };
  uint64_t *ids = malloc(N * sizeof(*ids));
  const char *msg = "From: s@y.org\r\nSubject: bulk\r\n\r\nbody\r\n";
  uint64_t t0 = mbx_mono_us();
  for (int i = 0; i < N; i += BATCH) {
    fx_begin(f);
    for (int j = i; j < i + BATCH; j++) {
      Mbx__Item *it;
      assert_int_equal(
          mbx_store_deliver(f->w, "u@x.org", (const uint8_t *)msg, strlen(msg), &f->a, &it), 0);
      ids[j] = it->id;
    }
    fx_commit(f);
    mbx_arena_reset(&f->a);
  }
  printf("# filled %d items in %.2f s\n", N, (double)(mbx_mono_us() - t0) / 1e6);
  struct mbx_sync_result res;
  struct tok t;
  t0 = mbx_mono_us();
  assert_int_equal(sync_f(f, mb, inbox, NULL, 100, &res), 0);
  assert_true(res.more);
  /* Skip to the end: a token right at the folder's last cn. */
  size_t rounds = 0;
  keep(&t, &res);
  while (res.more && rounds++ < 200) {
    mbx_arena_reset(&f->a);
    assert_int_equal(sync_f(f, mb, inbox, &t, 10000, &res), 0);
    keep(&t, &res);
  }
  assert_false(res.more);
  mbx_arena_reset(&f->a);
  /* 10 changes: 4 flag changes, 3 deletions, 3 deliveries. */
  Mbx__Item *it;
  fx_begin(f);
  for (int i = 0; i < 4; i++)
    assert_int_equal(mbx_store_set_flags(f->w, mb, ids[i * 997], 1, 0, NULL, 0, &f->a, &it), 0);
  for (int i = 0; i < 3; i++)
    assert_int_equal(mbx_store_delete_item(f->w, mb, ids[50000 + i], true), 0);
  for (int i = 0; i < 3; i++)
    assert_int_equal(
        mbx_store_deliver(f->w, "u@x.org", (const uint8_t *)msg, strlen(msg), &f->a, &it), 0);
  fx_commit(f);
  struct mbx_rtxn *r;
  assert_int_equal(mbx_store_rtxn_begin(f->s, &r), 0);
  t0 = mbx_mono_us();
  assert_int_equal(mbx_store_sync_folder(r, mb, inbox, t.b, t.n, 0, &f->a, &res), 0);
  uint64_t took = mbx_mono_us() - t0;
  mbx_store_rtxn_end(&r);
  printf("# incremental sync of a %d-item folder after 10 changes: %llu us\n", N,
         (unsigned long long)took);
  assert_int_equal(res.n_changed, 4);
  assert_int_equal(res.n_deleted, 3);
  assert_int_equal(res.n_added, 3);
  assert_false(res.more);
  for (int i = 0; i < 4; i++)
    assert_true(has_id(res.changed, res.n_changed, ids[i * 997]));
  free(ids);
  fx_free(f);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_folder_sync),
      cmocka_unit_test(test_bad_tokens),
      cmocka_unit_test(test_hierarchy_sync),
      cmocka_unit_test(test_big_folder_incremental),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

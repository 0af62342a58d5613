/* test_store_sync_lineage.c — sync states name the epoch lineage they were issued
 * under: a state from a tail that a forced failover discarded is refused with
 * ESTATE (and a reason) by the copy that took over, a state from an ancestor epoch
 * still in the history is accepted, and so is a state issued before lineages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "crc32c.h"
#include "store_repl_fixture.h"

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

static int sync_f(struct fx *f, uint64_t mb, uint64_t folder, const struct tok *t,
                  struct mbx_sync_result *res)
{
  struct mbx_rtxn *r;
  assert_int_equal(mbx_store_rtxn_begin(f->s, &r), 0);
  int rc = mbx_store_sync_folder(r, mb, folder, t ? t->b : NULL, t ? t->n : 0, 0, &f->a, res);
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

static uint64_t mailbox_of(struct fx *f, const char *address)
{
  struct mbx_rtxn *r;
  uint64_t id = 0;
  assert_int_equal(mbx_store_rtxn_begin(f->s, &r), 0);
  assert_int_equal(mbx_store_lookup_address(r, address, &id), 0);
  mbx_store_rtxn_end(&r);
  return id;
}

/* A full sync's token. */
static struct tok token_of(struct fx *f, uint64_t mb, uint64_t folder)
{
  struct mbx_sync_result res;
  struct tok t;
  assert_int_equal(sync_f(f, mb, folder, NULL, &res), 0);
  keep(&t, &res);
  return t;
}

static Mbx__SyncState *decode(struct fx *f, const struct tok *t)
{
  assert_true(t->n > 4);
  assert_int_equal(mbx_crc32c(0, t->b, t->n - 4), mbx_get_be32(t->b + t->n - 4));
  Mbx__SyncState *st = mbx__sync_state__unpack(&f->a.pb, t->n - 4, t->b);
  assert_non_null(st);
  return st;
}

static struct tok encode(const Mbx__SyncState *st)
{
  struct tok t;
  size_t n = mbx__sync_state__get_packed_size(st);
  assert_true(n + 4 <= sizeof(t.b));
  mbx__sync_state__pack(st, t.b);
  mbx_put_be32(t.b + n, mbx_crc32c(0, t.b, n));
  t.n = n + 4;
  return t;
}

/* Old active A and passive B share a history; A writes a tail B never receives; B is
 * activated in epoch 2 (A's tail is discarded). A's tokens from the tail are refused
 * by B — both while B is behind A's lsn and once it has passed it — while A's token
 * from before the tail still works on B. */
static void test_sync_lineage_discarded_tail_refused(void **state)
{
  (void)state;
  struct fx *a = fx_new(), *b = fx_new();
  rx_workload(a);
  uint64_t mb = mailbox_of(a, "u@x.org"), inbox = fx_folder_id(a, mb, "Inbox");
  struct rx_recs x = rx_read(a, 1, mbx_store_last_lsn(a->s));
  assert_int_equal(rx_ship(b->s, &x, INT64_MAX), 0);
  uint64_t split = mbx_store_last_lsn(a->s);
  assert_int_equal(mbx_store_last_lsn(b->s), split);
  struct tok common = token_of(a, mb, inbox);

  /* A's tail: three deliveries (lsns split+1 … split+3), never shipped. */
  for (int i = 0; i < 3; i++)
    fx_deliver(a, "u@x.org", "lost");
  struct tok tail = token_of(a, mb, inbox);
  struct mbx_sync_result res;
  assert_int_equal(sync_h(a, mb, NULL, &res), 0);
  struct tok htail;
  keep(&htail, &res);
  Mbx__SyncState *st = decode(a, &tail);
  assert_true(st->has_lsn && st->has_epoch && st->has_epoch_first_lsn);
  assert_int_equal(st->lsn, split + 3);
  assert_int_equal(st->epoch, 1);
  assert_int_equal(st->epoch_first_lsn, 1);

  /* B takes over in epoch 2 and writes one message: it is behind the tail's lsn. */
  uint64_t lsn2 = 0;
  assert_int_equal(mbx_store_begin_epoch(b->s, 2, &lsn2), 0);
  assert_int_equal(lsn2, split + 1);
  uint64_t kept = fx_deliver(b, "u@x.org", "after failover");
  assert_int_equal(sync_f(b, mb, inbox, &tail, &res), MBX_ESTATE);
  assert_non_null(res.why);
  assert_non_null(strstr(res.why, "beyond this copy's last lsn"));
  assert_int_equal(sync_h(b, mb, &htail, &res), MBX_ESTATE);
  assert_non_null(res.why);

  /* B passes the tail's lsn: that lsn is now in B's epoch 2, and B's folder counter
   * is past the tail's change number (the old check alone would accept it and skip
   * the client's phantom items silently). */
  fx_deliver(b, "u@x.org", "more");
  fx_deliver(b, "u@x.org", "more");
  assert_true(mbx_store_last_lsn(b->s) >= split + 3);
  assert_true(fx_folder(b, mb, inbox)->last_cn > st->cn);
  assert_int_equal(sync_f(b, mb, inbox, &tail, &res), MBX_ESTATE);
  assert_non_null(res.why);
  assert_non_null(strstr(res.why, "was discarded"));
  assert_int_equal(sync_h(b, mb, &htail, &res), MBX_ESTATE);

  /* The state from before the tail is of an epoch B's history still holds. */
  assert_int_equal(sync_f(b, mb, inbox, &common, &res), 0);
  assert_int_equal(res.n_added, 3);
  assert_int_equal(res.n_changed + res.n_deleted, 0);
  bool found = false;
  for (size_t i = 0; i < res.n_added; i++)
    found |= res.added[i]->id == kept;
  assert_true(found);
  struct tok now;
  keep(&now, &res);
  Mbx__SyncState *ns = decode(b, &now);
  assert_int_equal(ns->epoch, 2);
  assert_int_equal(ns->epoch_first_lsn, lsn2);
  assert_int_equal(ns->lsn, mbx_store_last_lsn(b->s));
  /* A fresh sync works, and its state continues. */
  assert_int_equal(sync_f(b, mb, inbox, NULL, &res), 0);
  keep(&now, &res);
  assert_int_equal(sync_f(b, mb, inbox, &now, &res), 0);
  assert_int_equal(res.n_added + res.n_changed + res.n_deleted, 0);
  fx_free(a);
  fx_free(b);
}

/* States issued in earlier epochs of the same history stay valid across epochs, on the
 * copy that issued them and on a copy that replayed the same log. */
static void test_sync_lineage_ancestor_epochs_accepted(void **state)
{
  (void)state;
  struct fx *a = fx_new(), *b = fx_new();
  rx_workload(a);
  uint64_t mb = mailbox_of(a, "u@x.org"), inbox = fx_folder_id(a, mb, "Inbox");
  struct tok t1 = token_of(a, mb, inbox);
  assert_int_equal(mbx_store_begin_epoch(a->s, 2, NULL), 0);
  uint64_t d2 = fx_deliver(a, "u@x.org", "in 2");
  struct tok t2 = token_of(a, mb, inbox);
  assert_int_equal(mbx_store_begin_epoch(a->s, 4, NULL), 0);
  uint64_t d4 = fx_deliver(a, "u@x.org", "in 4");
  struct rx_recs x = rx_read(a, 1, mbx_store_last_lsn(a->s));
  assert_int_equal(rx_ship(b->s, &x, INT64_MAX), 0);
  struct fx *copies[2] = {a, b};
  for (int i = 0; i < 2; i++) {
    struct fx *f = copies[i];
    struct mbx_sync_result res;
    assert_int_equal(sync_f(f, mb, inbox, &t1, &res), 0);
    assert_int_equal(res.n_added, 2);
    assert_true((res.added[0]->id == d2 && res.added[1]->id == d4) ||
                (res.added[0]->id == d4 && res.added[1]->id == d2));
    assert_int_equal(sync_f(f, mb, inbox, &t2, &res), 0);
    assert_int_equal(res.n_added, 1);
    assert_int_equal(res.added[0]->id, d4);
  }
  fx_free(a);
  fx_free(b);
}

/* A state issued before lineages (no lsn/epoch fields) is accepted, even after new
 * epochs; a lineage this history does not contain, or a partial one, is refused. */
static void test_sync_lineage_old_and_forged_states(void **state)
{
  (void)state;
  struct fx *f = fx_new();
  uint64_t mb = fx_mailbox(f, "u@x.org");
  uint64_t inbox = fx_folder_id(f, mb, "Inbox");
  fx_deliver(f, "u@x.org", "a");
  struct tok cur = token_of(f, mb, inbox);
  Mbx__SyncState *st = decode(f, &cur);
  Mbx__SyncState old = *st;
  old.has_lsn = old.has_epoch = old.has_epoch_first_lsn = false;
  struct tok oldt = encode(&old);
  assert_true(oldt.n < cur.n);
  assert_int_equal(mbx_store_begin_epoch(f->s, 2, NULL), 0);
  uint64_t d = fx_deliver(f, "u@x.org", "b");
  struct mbx_sync_result res;
  assert_int_equal(sync_f(f, mb, inbox, &oldt, &res), 0);
  assert_int_equal(res.n_added, 1);
  assert_int_equal(res.added[0]->id, d);
  assert_int_equal(sync_f(f, mb, inbox, &cur, &res), 0);
  assert_int_equal(res.n_added, 1);

  Mbx__SyncState forged = *st; /* an epoch this history never had at that lsn */
  forged.epoch = 7;
  struct tok ft = encode(&forged);
  assert_int_equal(sync_f(f, mb, inbox, &ft, &res), MBX_ESTATE);
  assert_non_null(res.why);
  forged = *st; /* the right epoch, another first lsn */
  forged.epoch_first_lsn = 2;
  ft = encode(&forged);
  assert_int_equal(sync_f(f, mb, inbox, &ft, &res), MBX_ESTATE);
  forged = *st; /* an lsn no history holds */
  forged.lsn = 0;
  ft = encode(&forged);
  assert_int_equal(sync_f(f, mb, inbox, &ft, &res), MBX_ESTATE);
  assert_non_null(strstr(res.why, "before this copy's epoch history begins"));
  forged = *st; /* part of a lineage */
  forged.has_epoch_first_lsn = false;
  ft = encode(&forged);
  assert_int_equal(sync_f(f, mb, inbox, &ft, &res), MBX_ESTATE);
  fx_free(f);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sync_lineage_discarded_tail_refused),
      cmocka_unit_test(test_sync_lineage_ancestor_epochs_accepted),
      cmocka_unit_test(test_sync_lineage_old_and_forged_states),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

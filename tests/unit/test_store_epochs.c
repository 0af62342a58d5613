/* test_store_epochs.c — epoch history: a new store starts at {1 → 1}; beginning an
 * epoch writes one record of that epoch, adds {epoch → first lsn} durably, moves the
 * id and change-number counters past the margin; a passive replaying the log gets the
 * same history and the same state; epochs out of order are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "store_repl_fixture.h"

static size_t history(struct mbx_store *s, struct mbx_store_epoch *v, size_t cap)
{
  struct mbx_rtxn *r;
  size_t n = 0;
  assert_int_equal(mbx_store_rtxn_begin(s, &r), 0);
  assert_int_equal(mbx_store_epoch_history(r, v, cap, &n), 0);
  mbx_store_rtxn_end(&r);
  return n;
}

static void test_epochs_new_store_starts_at_one(void **state)
{
  (void)state;
  struct fx *f = fx_new();
  struct mbx_store_epoch h[4];
  assert_int_equal(history(f->s, h, 4), 1);
  assert_int_equal(h[0].epoch, 1);
  assert_int_equal(h[0].first_lsn, 1);
  fx_free(f);
}

static void test_epochs_begin_records_and_moves_counters(void **state)
{
  (void)state;
  struct fx *f = fx_new();
  uint64_t mb = fx_mailbox(f, "u@x.org");
  uint64_t id1 = fx_deliver(f, "u@x.org", "before");
  uint64_t inbox = fx_folder_id(f, mb, "Inbox");
  uint64_t cn1 = fx_folder(f, mb, inbox)->last_cn;
  uint64_t hcn1 = fx_get_mailbox(f, mb)->last_hcn;
  uint64_t last = mbx_store_last_lsn(f->s), lsn = 0;

  assert_int_equal(mbx_store_begin_epoch(f->s, 1, &lsn), MBX_EINVAL); /* not newer */
  assert_int_equal(mbx_store_begin_epoch(f->s, 2, &lsn), 0);
  assert_int_equal(lsn, last + 1);
  assert_int_equal(mbx_store_epoch(f->s), 2);
  /* The epoch-start record is of the new epoch. */
  struct mbx_rtxn *r;
  const uint8_t *d;
  size_t l;
  struct mbx_logrec rec;
  assert_int_equal(mbx_store_rtxn_begin(f->s, &r), 0);
  assert_int_equal(mbx_store_read_log(r, lsn, &d, &l), 0);
  assert_int_equal(mbx_logrec_decode(d, l, &rec), 0);
  assert_int_equal(rec.epoch, 2);
  uint64_t e = 0, end = 0;
  assert_int_equal(mbx_store_epoch_of_lsn(r, last, &e, &end), 0);
  assert_int_equal(e, 1);
  assert_int_equal(end, last);
  assert_int_equal(mbx_store_epoch_of_lsn(r, lsn, &e, &end), 0);
  assert_int_equal(e, 2);
  assert_int_equal(end, lsn);
  assert_int_equal(mbx_store_epoch_of_lsn(r, lsn + 1, &e, &end), MBX_ENOTFOUND);
  mbx_store_rtxn_end(&r);

  struct mbx_store_epoch h[4];
  assert_int_equal(history(f->s, h, 4), 2);
  assert_int_equal(h[1].epoch, 2);
  assert_int_equal(h[1].first_lsn, lsn);

  /* Writes after it are in epoch 2, with ids and change numbers past the margin. */
  uint64_t id2 = fx_deliver(f, "u@x.org", "after");
  assert_true(id2 >= id1 + MBX_STORE_EPOCH_ID_MARGIN);
  uint64_t floor = 1ull << MBX_STORE_EPOCH_CN_SHIFT;
  assert_true(fx_folder(f, mb, inbox)->last_cn > floor);
  assert_true(fx_folder(f, mb, inbox)->last_cn > cn1);
  fx_begin(f);
  Mbx__Folder *nf;
  assert_int_equal(mbx_store_create_folder(f->w, mb, 0, "New", 0, &f->a, &nf), 0);
  fx_commit(f);
  assert_true(fx_get_mailbox(f, mb)->last_hcn > floor);
  assert_true(fx_get_mailbox(f, mb)->last_hcn > hcn1);
  assert_int_equal(mbx_store_epoch(f->s), 2);

  /* The history is durable. */
  mbx_store_close(&f->s);
  assert_int_equal(fx_open_opt(f, "db1", NULL), 0);
  assert_int_equal(mbx_store_epoch(f->s), 2);
  assert_int_equal(history(f->s, h, 4), 2);
  assert_int_equal(h[1].first_lsn, lsn);
  /* cap too small: the oldest, and ELIMIT */
  struct mbx_rtxn *r2;
  size_t n = 0;
  assert_int_equal(mbx_store_rtxn_begin(f->s, &r2), 0);
  assert_int_equal(mbx_store_epoch_history(r2, h, 1, &n), MBX_ELIMIT);
  assert_int_equal(n, 1);
  assert_int_equal(h[0].epoch, 1);
  mbx_store_rtxn_end(&r2);
  fx_free(f);
}

/* A passive replaying the log ends with the same history, epoch and content. */
static void test_epochs_replicate_with_the_log(void **state)
{
  (void)state;
  struct fx *a = fx_new(), *b = fx_new();
  rx_workload(a);
  uint64_t lsn2 = 0, lsn5 = 0;
  assert_int_equal(mbx_store_begin_epoch(a->s, 2, &lsn2), 0);
  fx_deliver(a, "u@x.org", "in epoch 2");
  assert_int_equal(mbx_store_begin_epoch(a->s, 5, &lsn5), 0); /* epochs may skip */
  fx_deliver(a, "v@x.org", "in epoch 5");
  uint64_t last = mbx_store_last_lsn(a->s);
  struct rx_recs x = rx_read(a, 1, last);
  assert_int_equal(rx_ship(b->s, &x, INT64_MAX), 0);
  struct mbx_store_digest da = fx_digest(a->s), db = fx_digest(b->s);
  assert_memory_equal(da.sha256, db.sha256, 32);
  assert_int_equal(mbx_store_epoch(b->s), 5);
  struct mbx_store_epoch ha[4], hb[4];
  assert_int_equal(history(a->s, ha, 4), 3);
  assert_int_equal(history(b->s, hb, 4), 3);
  assert_memory_equal(ha, hb, 3 * sizeof(ha[0]));
  assert_int_equal(hb[1].epoch, 2);
  assert_int_equal(hb[1].first_lsn, lsn2);
  assert_int_equal(hb[2].epoch, 5);
  assert_int_equal(hb[2].first_lsn, lsn5);
  /* The passive's next write (once it is active) keeps counting from the same place. */
  uint64_t ida = fx_deliver(a, "u@x.org", "next"), idb = fx_deliver(b, "u@x.org", "next");
  assert_int_equal(ida, idb);
  fx_free(a);
  fx_free(b);
}

/* A passive with records pending replay may not begin an epoch (their lsns are taken). */
static void test_epochs_refused_while_replay_pending(void **state)
{
  (void)state;
  struct fx *a = fx_new(), *b = fx_new();
  rx_workload(a);
  struct rx_recs x = rx_read(a, 1, mbx_store_last_lsn(a->s));
  assert_int_equal(rx_ship(b->s, &x, INT64_MIN), 0); /* received, none replayed */
  uint64_t lsn = 7;
  assert_int_equal(mbx_store_begin_epoch(b->s, 2, &lsn), MBX_ENOTACTIVE);
  assert_int_equal(lsn, 0);
  fx_free(a);
  fx_free(b);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_epochs_new_store_starts_at_one),
    cmocka_unit_test(test_epochs_begin_records_and_moves_counters),
    cmocka_unit_test(test_epochs_replicate_with_the_log),
    cmocka_unit_test(test_epochs_refused_while_replay_pending),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

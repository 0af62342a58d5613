/* test_store_repl_ship.c — a passive copy fed through mbx_store_receive: uneven
 * batches end equal to the active (digest, layout, positions); a lagged copy keeps
 * records in its received log until mbx_store_replay; bad batches (a flipped byte, a
 * gap, an epoch going back) are refused whole; the copy meta is local. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "store_repl_fixture.h"

static void assert_same_digest(struct mbx_store *a, struct mbx_store *b)
{
  struct mbx_store_digest da = fx_digest(a), db = fx_digest(b);
  assert_memory_equal(da.sha256, db.sha256, 32);
  assert_int_equal(da.items, db.items);
  assert_int_equal(da.last_lsn, db.last_lsn);
  assert_int_equal(da.epoch, db.epoch);
}

static void test_ship_uneven_batches(void **state)
{
  (void)state;
  struct fx *a = fx_new(), *b = fx_new();
  rx_workload(a);
  uint64_t last = mbx_store_last_lsn(a->s);
  assert_true(last >= 15);
  struct rx_recs x = rx_read(a, 1, last);
  assert_int_equal(rx_ship(b->s, &x, INT64_MAX), 0);
  assert_same_digest(a->s, b->s);
  struct mbx_store_repl_pos pos;
  /* On the active its own records count as received and replayed. */
  mbx_store_get_repl_pos(a->s, &pos);
  assert_int_equal(pos.received_lsn, last);
  assert_int_equal(pos.replayed_lsn, last);
  assert_int_equal(pos.received_time_us, rx_time(&x, last));
  assert_int_equal(pos.replayed_time_us, rx_time(&x, last));
  mbx_store_get_repl_pos(b->s, &pos);
  assert_int_equal(pos.received_lsn, last);
  assert_int_equal(pos.replayed_lsn, last);
  assert_int_equal(pos.epoch, 1);
  assert_int_equal(pos.received_time_us, rx_time(&x, last));
  assert_int_equal(pos.replayed_time_us, rx_time(&x, last));
  assert_int_equal(mbx_store_last_lsn(b->s), last);
  uint64_t rq = 9, rqb = 9;
  assert_int_equal(mbx_store_replay_queue(b->s, &rq, &rqb), 0);
  assert_int_equal(rq, 0);
  assert_int_equal(rqb, 0);
  /* The passive's own log holds the replayed records: it could seed or take over. */
  struct mbx_rtxn *r;
  const uint8_t *d;
  size_t l;
  assert_int_equal(mbx_store_rtxn_begin(b->s, &r), 0);
  assert_int_equal(mbx_store_read_log(r, last, &d, &l), 0);
  assert_int_equal(l, x.len[last - 1]);
  assert_memory_equal(d, x.data[last - 1], l);
  /* The layout came with the log. */
  Mbx__CopyLayout *lay;
  assert_int_equal(mbx_store_get_copies(r, &b->a, &lay), 0);
  assert_int_equal(lay->n_copies, 3);
  assert_string_equal(lay->copies[0]->node, "node1");
  assert_string_equal(lay->copies[2]->node, "node3");
  assert_int_equal(lay->copies[2]->lag_s, 60);
  assert_int_equal(lay->copies[1]->preference, 2);
  mbx_store_rtxn_end(&r);
  /* Positions survive a reopen. */
  mbx_store_close(&b->s);
  assert_int_equal(fx_open_opt(b, "db1", NULL), 0);
  mbx_store_get_repl_pos(b->s, &pos);
  assert_int_equal(pos.received_lsn, last);
  assert_int_equal(pos.replayed_time_us, rx_time(&x, last));
  /* More records continue where it left off. */
  fx_deliver(a, "u@x.org", "after reopen");
  struct rx_recs y = rx_read(a, last + 1, last + 1);
  assert_int_equal(rx_ship(b->s, &y, INT64_MAX), 0);
  assert_same_digest(a->s, b->s);
  fx_free(a);
  fx_free(b);
}

static void test_lagged_replay(void **state)
{
  (void)state;
  struct fx *a = fx_new(), *b = fx_new();
  rx_workload(a);
  uint64_t last = mbx_store_last_lsn(a->s);
  struct rx_recs x = rx_read(a, 1, last);
  /* Nothing is due yet: all of it waits in the received log. */
  assert_int_equal(rx_ship(b->s, &x, INT64_MIN), 0);
  struct mbx_store_repl_pos pos;
  mbx_store_get_repl_pos(b->s, &pos);
  assert_int_equal(pos.received_lsn, last);
  assert_int_equal(pos.replayed_lsn, 0);
  assert_int_equal(pos.received_time_us, rx_time(&x, last));
  assert_int_equal(mbx_store_last_lsn(b->s), 0);
  assert_int_equal(fx_digest(b->s).mailboxes, 0);
  uint64_t rq, rqb, sum = 0;
  for (uint64_t i = 0; i < x.n; i++)
    sum += x.len[i];
  assert_int_equal(mbx_store_replay_queue(b->s, &rq, &rqb), 0);
  assert_int_equal(rq, last);
  assert_int_equal(rqb, sum);
  /* The queue survives a reopen. */
  mbx_store_close(&b->s);
  assert_int_equal(fx_open_opt(b, "db1", NULL), 0);
  assert_int_equal(mbx_store_replay_queue(b->s, &rq, &rqb), 0);
  assert_int_equal(rq, last);
  assert_int_equal(rqb, sum);
  mbx_store_get_repl_pos(b->s, &pos);
  assert_int_equal(pos.received_lsn, last);
  /* With received records pending, a local write would take their LSNs: refused. */
  struct mbx_mailbox_spec spec = {.address = "local@x.org"};
  Mbx__Mailbox *mb;
  fx_begin(b);
  assert_int_equal(mbx_store_unit_begin(b->w), 0);
  int rc = mbx_store_create_mailbox(b->w, &spec, &b->a, &mb);
  assert_int_equal(rc, 0);
  mbx_store_unit_end(b->w, rc);
  assert_int_equal(mbx_store_wtxn_commit(&b->w, NULL), MBX_ENOTACTIVE);
  assert_int_equal(mbx_store_last_lsn(b->s), 0);
  /* Replay what was committed up to record 3's time (at least 3 records). */
  uint32_t n = 0;
  assert_int_equal(mbx_store_replay(b->s, rx_time(&x, 3), UINT32_MAX, &n), 0);
  assert_true(n >= 3);
  uint64_t done = n;
  assert_int_equal(mbx_store_last_lsn(b->s), done);
  mbx_store_get_repl_pos(b->s, &pos);
  assert_int_equal(pos.replayed_time_us, rx_time(&x, done));
  assert_int_equal(mbx_store_replay_queue(b->s, &rq, NULL), 0);
  assert_int_equal(rq, last - done);
  /* max_records caps one call. */
  assert_int_equal(mbx_store_replay(b->s, INT64_MAX, 2, &n), 0);
  assert_int_equal(n, 2);
  done += 2;
  assert_int_equal(mbx_store_last_lsn(b->s), done);
  /* Nothing due: nothing done. */
  assert_int_equal(mbx_store_replay(b->s, INT64_MIN, 10, &n), 0);
  assert_int_equal(n, 0);
  assert_int_equal(mbx_store_last_lsn(b->s), done);
  /* A receive without lag replays the pending ones first, then the new record. */
  fx_deliver(a, "u@x.org", "late");
  struct rx_recs y = rx_read(a, last + 1, last + 1);
  assert_int_equal(rx_ship(b->s, &y, INT64_MAX), 0);
  assert_int_equal(mbx_store_replay_queue(b->s, &rq, &rqb), 0);
  assert_int_equal(rq, 0);
  assert_int_equal(rqb, 0);
  assert_same_digest(a->s, b->s);
  fx_free(a);
  fx_free(b);
}

/* Positions, queue and content of b, to compare before and after a refused call. */
struct snap {
  struct mbx_store_repl_pos pos;
  uint64_t rq, rqb;
  struct mbx_store_digest d;
};
static struct snap take_snap(struct mbx_store *s)
{
  struct snap n;
  memset(&n, 0, sizeof(n));
  mbx_store_get_repl_pos(s, &n.pos);
  mbx_store_replay_queue(s, &n.rq, &n.rqb);
  n.d = fx_digest(s);
  return n;
}
static void assert_snap_equal(struct snap x, struct snap y)
{
  assert_memory_equal(&x.pos, &y.pos, sizeof(x.pos));
  assert_int_equal(x.rq, y.rq);
  assert_int_equal(x.rqb, y.rqb);
  assert_memory_equal(x.d.sha256, y.d.sha256, 32);
  assert_int_equal(x.d.last_lsn, y.d.last_lsn);
}

static uint8_t *reencode(struct fx *f, const uint8_t *data, size_t len, uint64_t epoch,
                         size_t *len_r)
{
  struct mbx_logrec rec;
  assert_int_equal(mbx_logrec_decode(data, len, &rec), 0);
  struct mbx_buf out;
  mbx_buf_init(&out, MBX_LOGREC_MAX_BYTES);
  assert_int_equal(
      mbx_logrec_encode_packed(epoch, rec.lsn, rec.time_us, rec.ops, rec.ops_len, &out), 0);
  uint8_t *copy = mbx_arena_memdup(&f->a, out.data, out.len);
  *len_r = out.len;
  mbx_buf_free(&out);
  return copy;
}

static void refuse_checks(int64_t before)
{
  struct fx *a = fx_new(), *b = fx_new();
  rx_workload(a);
  uint64_t last = mbx_store_last_lsn(a->s);
  struct rx_recs x = rx_read(a, 1, last);
  struct rx_recs head = x;
  head.n = 5;
  assert_int_equal(rx_ship(b->s, &head, before), 0);
  struct snap s0 = take_snap(b->s);
  uint64_t bad = 0;

  /* A flipped byte in the third record of a batch: nothing of the batch is kept. */
  const uint8_t *recs[3] = {x.data[5], x.data[6], NULL};
  size_t lens[3] = {x.len[5], x.len[6], x.len[7]};
  uint8_t *flipped = mbx_arena_memdup(&a->a, x.data[7], x.len[7]);
  flipped[x.len[7] - 1] ^= 0x40;
  recs[2] = flipped;
  assert_int_equal(mbx_store_receive(b->s, recs, lens, 3, before, &bad), MBX_ECORRUPT);
  assert_int_equal(bad, 8);
  assert_snap_equal(s0, take_snap(b->s));

  /* A gap: 6, 7, 9. */
  recs[2] = x.data[8];
  lens[2] = x.len[8];
  assert_int_equal(mbx_store_receive(b->s, recs, lens, 3, before, &bad), MBX_ECORRUPT);
  assert_int_equal(bad, 9);
  assert_snap_equal(s0, take_snap(b->s));

  /* A record already received (a replay of 5). */
  recs[0] = x.data[4];
  lens[0] = x.len[4];
  assert_int_equal(mbx_store_receive(b->s, recs, lens, 1, before, &bad), MBX_ECORRUPT);
  assert_int_equal(bad, 5);
  assert_snap_equal(s0, take_snap(b->s));

  /* The epoch going back: 6 at epoch 2, then 7 at epoch 1 in the same batch. */
  size_t l6, l7;
  recs[0] = reencode(a, x.data[5], x.len[5], 2, &l6);
  recs[1] = x.data[6];
  lens[0] = l6;
  lens[1] = x.len[6];
  assert_int_equal(mbx_store_receive(b->s, recs, lens, 2, before, &bad), MBX_ECORRUPT);
  assert_int_equal(bad, 7);
  assert_snap_equal(s0, take_snap(b->s));
  /* … or in the next batch. */
  assert_int_equal(mbx_store_receive(b->s, recs, lens, 1, before, &bad), 0);
  struct snap s1 = take_snap(b->s);
  assert_int_equal(s1.pos.received_lsn, 6);
  assert_int_equal(s1.pos.epoch, 2);
  assert_int_equal(mbx_store_receive(b->s, &recs[1], &lens[1], 1, before, &bad), MBX_ECORRUPT);
  assert_int_equal(bad, 7);
  assert_snap_equal(s1, take_snap(b->s));
  /* The same epoch or a newer one goes on. */
  recs[1] = reencode(a, x.data[6], x.len[6], 2, &l7);
  lens[1] = l7;
  assert_int_equal(mbx_store_receive(b->s, &recs[1], &lens[1], 1, before, &bad), 0);
  mbx_store_get_repl_pos(b->s, &s1.pos);
  assert_int_equal(s1.pos.received_lsn, 7);
  fx_free(a);
  fx_free(b);
}

static void test_refuse_bad_batches(void **state)
{
  (void)state;
  refuse_checks(INT64_MAX);
}

static void test_refuse_bad_batches_lagged(void **state)
{
  (void)state;
  refuse_checks(INT64_MIN);
}

static void test_copy_meta_local(void **state)
{
  (void)state;
  struct fx *a = fx_new(), *b = fx_new();
  struct mbx_store_copy_meta m, got;
  assert_int_equal(mbx_store_get_copy_meta(a->s, &got), 0);
  assert_string_equal(got.active_node, "");
  assert_false(got.failed);
  memset(&m, 0, sizeof(m));
  strcpy(m.active_node, "node2");
  strcpy(m.seed_source, "node3");
  m.lag_s = 3600;
  m.suspended = true;
  m.failed = true;
  strcpy(m.comment, "maintenance window");
  strcpy(m.reason, "record 42 failed its CRC");
  assert_int_equal(mbx_store_set_copy_meta(a->s, &m), 0);
  assert_int_equal(mbx_store_last_lsn(a->s), 0); /* not a logged change */
  rx_workload(a);
  mbx_store_close(&a->s);
  assert_int_equal(fx_open_opt(a, "db1", NULL), 0);
  assert_int_equal(mbx_store_get_copy_meta(a->s, &got), 0);
  assert_memory_equal(&got, &m, sizeof(m));
  /* Not replicated, and not part of the digest. */
  struct rx_recs x = rx_read(a, 1, mbx_store_last_lsn(a->s));
  assert_int_equal(rx_ship(b->s, &x, INT64_MAX), 0);
  assert_int_equal(mbx_store_get_copy_meta(b->s, &got), 0);
  assert_string_equal(got.active_node, "");
  assert_false(got.suspended);
  assert_same_digest(a->s, b->s);
  fx_free(a);
  fx_free(b);
}

static void test_layout_limits(void **state)
{
  (void)state;
  struct fx *a = fx_new();
  struct mbx_rtxn *r;
  Mbx__CopyLayout *lay;
  assert_int_equal(mbx_store_rtxn_begin(a->s, &r), 0);
  assert_int_equal(mbx_store_get_copies(r, &a->a, &lay), 0);
  assert_int_equal(lay->n_copies, 0); /* never set: empty */
  mbx_store_rtxn_end(&r);
  Mbx__CopyEntry e1 = MBX__COPY_ENTRY__INIT, e2 = MBX__COPY_ENTRY__INIT;
  e1.node = "n1";
  e2.node = "n1";
  Mbx__CopyEntry *pe[2] = {&e1, &e2};
  Mbx__CopyLayout l = MBX__COPY_LAYOUT__INIT;
  l.n_copies = 2;
  l.copies = pe;
  fx_begin(a);
  assert_int_equal(mbx_store_unit_begin(a->w), 0);
  int rc = mbx_store_set_copies(a->w, &l);
  assert_int_equal(rc, MBX_EEXIST);
  mbx_store_unit_end(a->w, rc);
  e2.node = "";
  assert_int_equal(mbx_store_unit_begin(a->w), 0);
  rc = mbx_store_set_copies(a->w, &l);
  assert_int_equal(rc, MBX_EINVAL);
  mbx_store_unit_end(a->w, rc);
  assert_int_equal(fx_commit(a), 0);
  fx_free(a);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ship_uneven_batches), cmocka_unit_test(test_lagged_replay),
      cmocka_unit_test(test_refuse_bad_batches),  cmocka_unit_test(test_refuse_bad_batches_lagged),
      cmocka_unit_test(test_copy_meta_local),     cmocka_unit_test(test_layout_limits),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

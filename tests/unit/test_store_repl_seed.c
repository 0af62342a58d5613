/* test_store_repl_seed.c — the active's side of replication: truncation by the log
 * floor and by log_retain_bytes, the copy queue in bytes, and seeding: a snapshot
 * written to a file, installed as a store directory, opened, equal to its source;
 * reset_after_seed drops the source's received log and copy meta. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "store_repl_fixture.h"

static uint64_t first_lsn(struct mbx_store *s)
{
  struct mbx_rtxn *r;
  assert_int_equal(mbx_store_rtxn_begin(s, &r), 0);
  uint64_t f = mbx_store_first_lsn(r);
  mbx_store_rtxn_end(&r);
  return f;
}

static void test_floor_truncation(void **state)
{
  (void)state;
  struct fx *a = fx_new();
  fx_mailbox(a, "u@x.org");
  for (int i = 0; i < 9; i++)
    fx_deliver(a, "u@x.org", "x");
  assert_int_equal(first_lsn(a->s), 1); /* default: no floor, retain 1 GiB */
  mbx_store_set_log_floor(a->s, 6);
  assert_int_equal(first_lsn(a->s), 1); /* only at the next commit */
  fx_deliver(a, "u@x.org", "x");
  assert_int_equal(first_lsn(a->s), 6);
  struct rx_recs keep = rx_read(a, 6, 11); /* all of them still readable */
  assert_int_equal(keep.n, 6);
  /* A floor that does not move keeps everything from it on. */
  for (int i = 0; i < 5; i++)
    fx_deliver(a, "u@x.org", "x");
  assert_int_equal(first_lsn(a->s), 6);
  /* A floor past the end: everything but the newest goes. */
  mbx_store_set_log_floor(a->s, UINT64_MAX - 1);
  fx_deliver(a, "u@x.org", "x");
  assert_int_equal(first_lsn(a->s), mbx_store_last_lsn(a->s));
  /* Back to no floor: records accumulate again. */
  mbx_store_set_log_floor(a->s, UINT64_MAX);
  uint64_t from = mbx_store_last_lsn(a->s);
  fx_deliver(a, "u@x.org", "x");
  assert_int_equal(first_lsn(a->s), from);
  fx_free(a);
}

static void test_floor_retain_limit(void **state)
{
  (void)state;
  struct mbx_store_options opt;
  mbx_store_options_default(&opt);
  opt.log_retain_bytes = 2000;
  struct fx *a = fx_new_opt(&opt);
  mbx_store_set_log_floor(a->s, 1); /* a copy that has nothing yet */
  fx_mailbox(a, "u@x.org");
  for (int i = 0; i < 3; i++)
    fx_deliver(a, "u@x.org", "x");
  assert_int_equal(first_lsn(a->s), 1); /* within the limit: the floor keeps all */
  for (int i = 0; i < 40; i++)
    fx_deliver(a, "u@x.org", "fill the log with some records of a few hundred bytes");
  /* Over log_retain_bytes the oldest go anyway, floor or not. */
  uint64_t first = first_lsn(a->s), last = mbx_store_last_lsn(a->s), bytes;
  assert_true(first > 1);
  struct mbx_rtxn *r;
  assert_int_equal(mbx_store_rtxn_begin(a->s, &r), 0);
  assert_int_equal(mbx_store_log_bytes_after(r, 0, UINT64_MAX, &bytes), 0);
  const uint8_t *d;
  size_t l;
  assert_int_equal(mbx_store_read_log(r, last, &d, &l), 0);
  assert_true(bytes <= 2000 + l);
  assert_int_equal(mbx_store_read_log(r, first - 1, &d, &l), MBX_ENOTFOUND);
  mbx_store_rtxn_end(&r);
  fx_free(a);
}

static void test_log_bytes_after(void **state)
{
  (void)state;
  struct fx *a = fx_new();
  rx_workload(a);
  uint64_t last = mbx_store_last_lsn(a->s);
  struct rx_recs x = rx_read(a, 1, last);
  struct mbx_rtxn *r;
  assert_int_equal(mbx_store_rtxn_begin(a->s, &r), 0);
  uint64_t bytes, want = 0;
  for (uint64_t after = last + 1; after-- > 0;) {
    assert_int_equal(mbx_store_log_bytes_after(r, after, UINT64_MAX, &bytes), 0);
    assert_int_equal(bytes, want);
    if (after >= 1)
      want += x.len[after - 1];
  }
  /* A walk capped at 2 records: the first two after lsn 3. */
  assert_int_equal(mbx_store_log_bytes_after(r, 3, 2, &bytes), 0);
  assert_int_equal(bytes, x.len[3] + x.len[4]);
  assert_int_equal(mbx_store_log_bytes_after(r, last + 5, 10, &bytes), 0);
  assert_int_equal(bytes, 0);
  mbx_store_rtxn_end(&r);
  fx_free(a);
}

/* Snapshots src into dir/NAME/data.mdb the way a seed receiver installs it. */
static void snapshot_into(struct mbx_store *src, const char *dir, const char *name)
{
  char path[1024];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  assert_int_equal(mkdir(path, 0700), 0);
  snprintf(path, sizeof(path), "%s/%s/data.mdb", dir, name);
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
  assert_true(fd >= 0);
  assert_int_equal(mbx_store_snapshot_fd(src, fd), 0);
  assert_int_equal(fsync(fd), 0);
  close(fd);
}

static void test_snapshot_install(void **state)
{
  (void)state;
  struct fx *a = fx_new();
  rx_workload(a);
  snapshot_into(a->s, a->dir, "seed");
  struct mbx_store *c = NULL;
  assert_int_equal(mbx_store_open(a->dir, "seed", false, NULL, &c, NULL), 0);
  struct mbx_store_digest da = fx_digest(a->s), dc = fx_digest(c);
  assert_memory_equal(da.sha256, dc.sha256, 32);
  assert_int_equal(dc.last_lsn, da.last_lsn);
  assert_int_equal(mbx_store_last_lsn(c), mbx_store_last_lsn(a->s));
  struct mbx_store_repl_pos pos;
  mbx_store_get_repl_pos(c, &pos);
  assert_int_equal(pos.received_lsn, mbx_store_last_lsn(a->s));
  /* It continues from the snapshot's last_lsn + 1. */
  uint64_t last = mbx_store_last_lsn(a->s);
  fx_deliver(a, "u@x.org", "after the snapshot");
  struct rx_recs x = rx_read(a, last + 1, last + 1);
  assert_int_equal(rx_ship(c, &x, INT64_MAX), 0);
  da = fx_digest(a->s);
  dc = fx_digest(c);
  assert_memory_equal(da.sha256, dc.sha256, 32);
  mbx_store_close(&c);
  fx_free(a);
}

static void test_seed_from_lagged_passive(void **state)
{
  (void)state;
  struct fx *a = fx_new(), *b = fx_new();
  rx_workload(a);
  uint64_t last = mbx_store_last_lsn(a->s);
  struct rx_recs x = rx_read(a, 1, last);
  /* b: a lagged passive with records 1..10 replayed and the rest pending. */
  struct rx_recs head = x, tail = x;
  head.n = 10;
  tail.first = 11;
  tail.n = last - 10;
  tail.data += 10;
  tail.len += 10;
  assert_int_equal(rx_ship(b->s, &head, INT64_MAX), 0);
  assert_int_equal(rx_ship(b->s, &tail, INT64_MIN), 0);
  struct mbx_store_copy_meta m = {0}, got;
  strcpy(m.active_node, "node1");
  m.lag_s = 600;
  assert_int_equal(mbx_store_set_copy_meta(b->s, &m), 0);
  snapshot_into(b->s, b->dir, "seed");
  struct mbx_store *c = NULL;
  assert_int_equal(mbx_store_open(b->dir, "seed", false, NULL, &c, NULL), 0);
  /* The source's received log and meta came along … */
  uint64_t rq, rqb;
  assert_int_equal(mbx_store_replay_queue(c, &rq, &rqb), 0);
  assert_int_equal(rq, last - 10);
  assert_int_equal(mbx_store_get_copy_meta(c, &got), 0);
  assert_string_equal(got.active_node, "node1");
  /* … and reset_after_seed drops them. */
  assert_int_equal(mbx_store_reset_after_seed(c), 0);
  assert_int_equal(mbx_store_replay_queue(c, &rq, &rqb), 0);
  assert_int_equal(rq, 0);
  assert_int_equal(rqb, 0);
  assert_int_equal(mbx_store_get_copy_meta(c, &got), 0);
  assert_string_equal(got.active_node, "");
  assert_int_equal(got.lag_s, 0);
  struct mbx_store_repl_pos pos;
  mbx_store_get_repl_pos(c, &pos);
  assert_int_equal(pos.received_lsn, 10);
  assert_int_equal(pos.replayed_lsn, 10);
  assert_int_equal(pos.replayed_time_us, rx_time(&x, 10));
  /* The rest of the log from lsn 11 makes it equal to the active. */
  assert_int_equal(rx_ship(c, &tail, INT64_MAX), 0);
  struct mbx_store_digest da = fx_digest(a->s), dc = fx_digest(c);
  assert_memory_equal(da.sha256, dc.sha256, 32);
  assert_int_equal(dc.last_lsn, last);
  /* Still reset after a reopen. */
  mbx_store_close(&c);
  assert_int_equal(mbx_store_open(b->dir, "seed", false, NULL, &c, NULL), 0);
  assert_int_equal(mbx_store_replay_queue(c, &rq, NULL), 0);
  assert_int_equal(rq, 0);
  mbx_store_close(&c);
  fx_free(a);
  fx_free(b);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_floor_truncation),         cmocka_unit_test(test_floor_retain_limit),
      cmocka_unit_test(test_log_bytes_after),          cmocka_unit_test(test_snapshot_install),
      cmocka_unit_test(test_seed_from_lagged_passive),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

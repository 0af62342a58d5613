/* test_node_rxlog.c — the passive copy's receive log (replication/rxlog.c): appends
 * are durable and come back at the next open after the store's position; a torn
 * tail is cut off; a damaged or out-of-order record is refused and nothing after it
 * is written; a reset empties it; the two segments alternate and recovery orders
 * them; records the store has are skipped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include <cmocka.h>

#include "logrec.h"
#include "mbx_error.h"
#include "rxlog.h"

struct fx {
  uv_loop_t loop;
  char dir[512], path[600];
  struct mbx_buf recs[64];            /* encoded records, lsn 1..64 */
};

static int setup(void **state)
{
  struct fx *f = calloc(1, sizeof(*f));
  const char *base = getenv("MBX_TEST_TMPDIR") ? getenv("MBX_TEST_TMPDIR") : "/tmp";
  mkdir(base, 0700);
  snprintf(f->dir, sizeof(f->dir), "%s/rxlog.XXXXXX", base);
  assert_non_null(mkdtemp(f->dir));
  snprintf(f->path, sizeof(f->path), "%s/db1.rxlog", f->dir);
  uv_loop_init(&f->loop);
  for (int i = 0; i < 64; i++) {
    Mbx__LogOps ops = MBX__LOG_OPS__INIT;
    mbx_buf_init(&f->recs[i], 0);
    assert_int_equal(mbx_logrec_encode(1, (uint64_t)i + 1, 1000 + i, &ops, &f->recs[i]), 0);
    /* Some payload so records differ in size. */
  }
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fx *f = *state;
  uv_run(&f->loop, UV_RUN_DEFAULT);
  uv_loop_close(&f->loop);
  for (int i = 0; i < 64; i++)
    mbx_buf_free(&f->recs[i]);
  char p[700];
  for (int i = 0; i < 2; i++) {
    snprintf(p, sizeof(p), "%s.%d", f->path, i);
    unlink(p);
  }
  rmdir(f->dir);
  free(f);
  return 0;
}

struct done_rec {
  int calls, status;
  uint64_t last, bad;
};

static void on_done(int status, uint64_t last_lsn, int64_t durable_us, uint64_t bad_lsn, void *arg)
{
  struct done_rec *d = arg;
  d->calls++;
  d->status = status;
  d->last = last_lsn;
  d->bad = bad_lsn;
  assert_true(status < 0 || durable_us > 0);
}

/* Appends records [from, to] (1-based lsns) and waits for the outcome. */
static struct done_rec append(struct fx *f, struct mbx_repl_rxlog *rx, int from, int to)
{
  const uint8_t *r[64];
  size_t l[64];
  int n = 0;
  for (int i = from; i <= to; i++, n++) {
    r[n] = f->recs[i - 1].data;
    l[n] = f->recs[i - 1].len;
  }
  struct done_rec d = {0};
  assert_int_equal(mbx_repl_rxlog_append(rx, r, l, (size_t)n, on_done, &d), 0);
  for (int i = 0; i < 1000 && !d.calls; i++)
    uv_run(&f->loop, UV_RUN_ONCE);
  assert_int_equal(d.calls, 1);
  return d;
}

static void closed_cb(void *arg) { ++*(int *)arg; }

static void close_rx(struct fx *f, struct mbx_repl_rxlog **rx)
{
  int closed = 0;
  mbx_repl_rxlog_close(rx, closed_cb, &closed);
  assert_null(*rx);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(closed, 1);
}

static void test_append_and_recover(void **state)
{
  struct fx *f = *state;
  struct mbx_repl_rxlog *rx;
  struct mbx_repl_rxlog_recovered rec;
  assert_int_equal(mbx_repl_rxlog_open(&f->loop, f->path, 0, 0, &rx, &rec), 0);
  assert_int_equal(rec.n, 0);
  struct done_rec d = append(f, rx, 1, 10);
  assert_int_equal(d.status, 0);
  assert_int_equal(d.last, 10);
  d = append(f, rx, 11, 12);
  assert_int_equal(d.status, 0);
  assert_int_equal(mbx_repl_rxlog_last_lsn(rx), 12);
  close_rx(f, &rx);

  /* The store has up to 4: records 5..12 come back, in order. */
  assert_int_equal(mbx_repl_rxlog_open(&f->loop, f->path, 4, 1, &rx, &rec), 0);
  assert_int_equal(rec.n, 8);
  assert_int_equal(rec.last_lsn, 12);
  assert_memory_equal(rec.recs[0], f->recs[4].data, f->recs[4].len);
  assert_int_equal(mbx_repl_rxlog_last_lsn(rx), 12);
  mbx_repl_rxlog_recovered_free(&rec);
  d = append(f, rx, 13, 13);            /* continues after the recovered run */
  assert_int_equal(d.status, 0);
  close_rx(f, &rx);

  /* The store has everything: nothing comes back. */
  assert_int_equal(mbx_repl_rxlog_open(&f->loop, f->path, 13, 1, &rx, &rec), 0);
  assert_int_equal(rec.n, 0);
  close_rx(f, &rx);
}

static void test_torn_tail_is_cut(void **state)
{
  struct fx *f = *state;
  struct mbx_repl_rxlog *rx;
  struct mbx_repl_rxlog_recovered rec;
  assert_int_equal(mbx_repl_rxlog_open(&f->loop, f->path, 0, 0, &rx, &rec), 0);
  assert_int_equal(append(f, rx, 1, 5).status, 0);
  close_rx(f, &rx);
  /* Half of record 6 after them, as a crash mid-append leaves it. */
  char p[700];
  snprintf(p, sizeof(p), "%s.0", f->path);
  FILE *fp = fopen(p, "ab");
  assert_non_null(fp);
  fwrite(f->recs[5].data, 1, f->recs[5].len / 2, fp);
  fclose(fp);
  assert_int_equal(mbx_repl_rxlog_open(&f->loop, f->path, 0, 0, &rx, &rec), 0);
  assert_int_equal(rec.n, 5);
  mbx_repl_rxlog_recovered_free(&rec);
  assert_int_equal(append(f, rx, 6, 6).status, 0);   /* appends after the cut */
  close_rx(f, &rx);
  assert_int_equal(mbx_repl_rxlog_open(&f->loop, f->path, 0, 0, &rx, &rec), 0);
  assert_int_equal(rec.n, 6);
  mbx_repl_rxlog_recovered_free(&rec);
  close_rx(f, &rx);
}

static void test_bad_record_refused(void **state)
{
  struct fx *f = *state;
  struct mbx_repl_rxlog *rx;
  struct mbx_repl_rxlog_recovered rec;
  assert_int_equal(mbx_repl_rxlog_open(&f->loop, f->path, 0, 0, &rx, &rec), 0);
  assert_int_equal(append(f, rx, 1, 3).status, 0);
  /* A gap (5 after 3) is refused, and so is everything after it. */
  struct done_rec d = append(f, rx, 5, 6);
  assert_int_equal(d.status, MBX_ECORRUPT);
  assert_int_equal(d.bad, 4);
  assert_int_equal(append(f, rx, 4, 4).status, MBX_ECORRUPT);
  /* A reset (the store is at 3) clears the refusal. */
  mbx_repl_rxlog_reset(rx, 3, 1);
  assert_int_equal(append(f, rx, 4, 4).status, 0);
  /* A flipped byte. */
  f->recs[4].data[f->recs[4].len - 1] ^= 0x40;
  d = append(f, rx, 5, 5);
  f->recs[4].data[f->recs[4].len - 1] ^= 0x40;
  assert_int_equal(d.status, MBX_ECORRUPT);
  assert_int_equal(d.bad, 5);
  close_rx(f, &rx);
  /* Nothing refused was written: after the reset only record 4 is there. */
  assert_int_equal(mbx_repl_rxlog_open(&f->loop, f->path, 3, 1, &rx, &rec), 0);
  assert_int_equal(rec.n, 1);
  assert_int_equal(rec.last_lsn, 4);
  mbx_repl_rxlog_recovered_free(&rec);
  close_rx(f, &rx);
}

static void test_taken_and_reset(void **state)
{
  struct fx *f = *state;
  struct mbx_repl_rxlog *rx;
  struct mbx_repl_rxlog_recovered rec;
  assert_int_equal(mbx_repl_rxlog_open(&f->loop, f->path, 0, 0, &rx, &rec), 0);
  assert_int_equal(append(f, rx, 1, 8).status, 0);
  mbx_repl_rxlog_taken(rx, 8);         /* small file: kept, harmless */
  mbx_repl_rxlog_reset(rx, 20, 1);     /* a seed installed lsn 20 */
  assert_int_equal(mbx_repl_rxlog_last_lsn(rx), 20);
  close_rx(f, &rx);
  char p[700];
  struct stat st;
  snprintf(p, sizeof(p), "%s.0", f->path);
  assert_int_equal(stat(p, &st), 0);
  assert_int_equal(st.st_size, 0);
  assert_int_equal(mbx_repl_rxlog_open(&f->loop, f->path, 0, 0, &rx, &rec), 0);
  assert_int_equal(rec.n, 0);
  close_rx(f, &rx);
}

/* Two segments: recovery reads them in lsn order whichever file holds the older. */
static void test_segments_in_order(void **state)
{
  struct fx *f = *state;
  char p0[700], p1[700];
  snprintf(p0, sizeof(p0), "%s.0", f->path);
  snprintf(p1, sizeof(p1), "%s.1", f->path);
  FILE *a = fopen(p1, "wb"), *b = fopen(p0, "wb");   /* older records in segment 1 */
  for (int i = 0; i < 5; i++)
    fwrite(f->recs[i].data, 1, f->recs[i].len, a);
  for (int i = 5; i < 9; i++)
    fwrite(f->recs[i].data, 1, f->recs[i].len, b);
  fclose(a);
  fclose(b);
  struct mbx_repl_rxlog *rx;
  struct mbx_repl_rxlog_recovered rec;
  assert_int_equal(mbx_repl_rxlog_open(&f->loop, f->path, 2, 1, &rx, &rec), 0);
  assert_int_equal(rec.n, 7);          /* 3..9 */
  assert_int_equal(rec.last_lsn, 9);
  struct mbx_logrec r;
  assert_int_equal(mbx_logrec_decode(rec.recs[0], rec.lens[0], &r), 0);
  assert_int_equal(r.lsn, 3);
  mbx_repl_rxlog_recovered_free(&rec);
  assert_int_equal(append(f, rx, 10, 10).status, 0);
  close_rx(f, &rx);
  assert_int_equal(mbx_repl_rxlog_open(&f->loop, f->path, 2, 1, &rx, &rec), 0);
  assert_int_equal(rec.n, 8);
  mbx_repl_rxlog_recovered_free(&rec);
  close_rx(f, &rx);
}

/* Real appends past a segment's 64 MiB: the next appends go to the other segment,
 * the store taking the first one empties it, and recovery reads on from the second. */
static void test_segment_switch_and_trim(void **state)
{
  struct fx *f = *state;
  enum { REC_OPS = 1 << 20, N = 70 };  /* 1 MiB records: 64 fill the first segment */
  uint8_t *ops = calloc(1, REC_OPS);
  struct mbx_buf *big = calloc(N, sizeof(*big));
  assert_non_null(ops);
  assert_non_null(big);
  for (int i = 0; i < N; i++) {
    mbx_buf_init(&big[i], 0);
    ops[0] = (uint8_t)i;
    assert_int_equal(mbx_logrec_encode_packed(1, (uint64_t)i + 1, i, ops, REC_OPS, &big[i]), 0);
  }
  struct mbx_repl_rxlog *rx;
  struct mbx_repl_rxlog_recovered rec;
  assert_int_equal(mbx_repl_rxlog_open(&f->loop, f->path, 0, 0, &rx, &rec), 0);
  for (int i = 0; i < N; i++) {
    const uint8_t *r = big[i].data;
    size_t l = big[i].len;
    struct done_rec d = {0};
    assert_int_equal(mbx_repl_rxlog_append(rx, &r, &l, 1, on_done, &d), 0);
    for (int k = 0; k < 1000 && !d.calls; k++)
      uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(d.status, 0);
  }
  char p0[700], p1[700];
  struct stat st0, st1;
  snprintf(p0, sizeof(p0), "%s.0", f->path);
  snprintf(p1, sizeof(p1), "%s.1", f->path);
  assert_int_equal(stat(p1, &st1), 0);
  assert_true(st1.st_size > 0);            /* switched */
  mbx_repl_rxlog_taken(rx, 66);            /* the first segment ends at or before 66 */
  close_rx(f, &rx);
  assert_int_equal(stat(p0, &st0), 0);
  assert_int_equal(st0.st_size, 0);        /* emptied */
  assert_int_equal(mbx_repl_rxlog_open(&f->loop, f->path, 66, 1, &rx, &rec), 0);
  assert_int_equal(rec.n, N - 66);
  assert_int_equal(rec.last_lsn, N);
  struct mbx_logrec r0;
  assert_int_equal(mbx_logrec_decode(rec.recs[0], rec.lens[0], &r0), 0);
  assert_int_equal(r0.lsn, 67);
  mbx_repl_rxlog_recovered_free(&rec);
  close_rx(f, &rx);
  for (int i = 0; i < N; i++)
    mbx_buf_free(&big[i]);
  free(big);
  free(ops);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_append_and_recover, setup, teardown),
    cmocka_unit_test_setup_teardown(test_torn_tail_is_cut, setup, teardown),
    cmocka_unit_test_setup_teardown(test_bad_record_refused, setup, teardown),
    cmocka_unit_test_setup_teardown(test_taken_and_reset, setup, teardown),
    cmocka_unit_test_setup_teardown(test_segments_in_order, setup, teardown),
    cmocka_unit_test_setup_teardown(test_segment_switch_and_trim, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

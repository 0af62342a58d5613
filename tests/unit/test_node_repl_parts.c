/* test_node_repl_parts.c — records shipped in parts (replication/parts.h): batch
 * budgets always fit the receiving copy's frame limit; a record cut into parts comes
 * back byte for byte; a record over the copy's cap is refused before anything is
 * allocated for it; parts out of order, from another record, past the end or empty
 * are refused and leave nothing behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "logrec.h"
#include "mbx_error.h"
#include "parts.h"

#define MiB (1024u * 1024u)

static void test_repl_parts_budget_fits_frames(void **state)
{
  (void)state;
  assert_int_equal(mbx_repl_batch_budget(0), MBX_REPL_BATCH_BYTES_MAX);
  assert_int_equal(mbx_repl_batch_budget(36u * MiB), MBX_REPL_BATCH_BYTES_MAX);
  assert_int_equal(mbx_repl_batch_budget(64 * 1024), 64 * 1024 - MBX_REPL_FRAME_OVERHEAD);
  assert_int_equal(mbx_repl_batch_budget(MBX_REPL_FRAME_MIN),
                   MBX_REPL_FRAME_MIN - MBX_REPL_FRAME_OVERHEAD);
  /* Below what any node can be configured with: the smallest real frame limit. */
  assert_int_equal(mbx_repl_batch_budget(100), MBX_REPL_FRAME_MIN - MBX_REPL_FRAME_OVERHEAD);
  for (uint64_t f = MBX_REPL_FRAME_MIN; f < 4 * MiB; f = f * 3 / 2)
    assert_true(mbx_repl_batch_budget(f) + MBX_REPL_FRAME_OVERHEAD <= f);
}

/* An encoded record of about len bytes (payload: a byte pattern; parts never parse it). */
static uint8_t *make_record(uint64_t lsn, size_t payload, size_t *len_r)
{
  uint8_t *ops = malloc(payload);
  for (size_t i = 0; i < payload; i++)
    ops[i] = (uint8_t)(i * 31 + lsn);
  struct mbx_buf b;
  mbx_buf_init(&b, 0);
  assert_int_equal(mbx_logrec_encode_packed(1, lsn, 1000, ops, payload, &b), 0);
  free(ops);
  *len_r = b.len;
  return b.data;                      /* the caller frees it */
}

static Mbx__ReplRecordPart part_of(uint64_t lsn, const uint8_t *rec, size_t total, size_t off,
                                   size_t len)
{
  Mbx__ReplRecordPart p = MBX__REPL_RECORD_PART__INIT;
  p.lsn = lsn;
  p.total_bytes = total;
  p.offset = off;
  p.data.data = (uint8_t *)rec + off;
  p.data.len = len;
  return p;
}

static void test_repl_parts_reassemble(void **state)
{
  (void)state;
  size_t len;
  uint8_t *rec = make_record(7, 3 * MiB + 12345, &len);
  struct mbx_repl_part_rx rx = {0};
  size_t step = mbx_repl_batch_budget(64 * 1024);
  uint8_t *out = NULL;
  size_t out_len = 0;
  size_t off = 0, parts = 0;
  int rc = 0;
  while (off < len) {
    size_t n = len - off < step ? len - off : step;
    Mbx__ReplRecordPart p = part_of(7, rec, len, off, n);
    rc = mbx_repl_part_add(&rx, &p, 4 * MiB, &out, &out_len);
    off += n;
    parts++;
    if (off < len) {
      assert_int_equal(rc, 0);
      assert_true(mbx_repl_part_pending(&rx));
      assert_null(out);
    }
  }
  assert_int_equal(rc, 1);
  assert_true(parts > 40);
  assert_false(mbx_repl_part_pending(&rx));
  assert_int_equal(out_len, len);
  assert_memory_equal(out, rec, len);
  struct mbx_logrec lr;
  assert_int_equal(mbx_logrec_decode(out, out_len, &lr), 0);   /* CRC intact */
  assert_int_equal(lr.lsn, 7);
  free(out);
  /* A record in one part is fine too. */
  Mbx__ReplRecordPart whole = part_of(7, rec, len, 0, len);
  assert_int_equal(mbx_repl_part_add(&rx, &whole, 4 * MiB, &out, &out_len), 1);
  assert_memory_equal(out, rec, len);
  free(out);
  free(rec);
}

static void test_repl_parts_over_cap_refused(void **state)
{
  (void)state;
  size_t len;
  uint8_t *rec = make_record(9, 2 * MiB, &len);
  struct mbx_repl_part_rx rx = {0};
  uint8_t *out = (uint8_t *)1;
  size_t out_len = 1;
  Mbx__ReplRecordPart p = part_of(9, rec, len, 0, 1000);
  assert_int_equal(mbx_repl_part_add(&rx, &p, 1 * MiB, &out, &out_len), MBX_ELIMIT);
  assert_null(out);
  assert_int_equal(out_len, 0);
  assert_false(mbx_repl_part_pending(&rx));
  /* A total beyond the log format is refused whatever the cap. */
  p.total_bytes = (uint64_t)MBX_LOGREC_MAX_BYTES + 1;
  assert_int_equal(mbx_repl_part_add(&rx, &p, UINT64_MAX, &out, &out_len), MBX_ELIMIT);
  assert_false(mbx_repl_part_pending(&rx));
  /* Exactly at the cap is accepted. */
  p = part_of(9, rec, len, 0, len);
  assert_int_equal(mbx_repl_part_add(&rx, &p, len, &out, &out_len), 1);
  free(out);
  free(rec);
}

static void test_repl_parts_out_of_order_refused(void **state)
{
  (void)state;
  size_t len;
  uint8_t *rec = make_record(3, 100000, &len);
  struct mbx_repl_part_rx rx = {0};
  uint8_t *out;
  size_t out_len;
  struct {
    const char *what;
    uint64_t lsn, total, off;
    size_t n;
  } bad[] = {
    {"a gap", 3, len, 20000, 1000},
    {"a repeat", 3, len, 0, 1000},
    {"another record", 4, len, 10000, 1000},
    {"another total", 3, len + 1, 10000, 1000},
    {"past the end", 3, len, 10000, len},
    {"empty", 3, len, 10000, 0},
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    Mbx__ReplRecordPart first = part_of(3, rec, len, 0, 10000);
    assert_int_equal(mbx_repl_part_add(&rx, &first, 1 * MiB, &out, &out_len), 0);
    Mbx__ReplRecordPart p = part_of(bad[i].lsn, rec, len, 0, 0);
    p.total_bytes = bad[i].total;
    p.offset = bad[i].off;
    p.data.data = rec;
    p.data.len = bad[i].n;
    if (mbx_repl_part_add(&rx, &p, 1 * MiB, &out, &out_len) != MBX_EPROTO)
      fail_msg("%s: not refused", bad[i].what);
    assert_false(mbx_repl_part_pending(&rx));
  }
  /* A first part must start the record, and a record has at least a header. */
  Mbx__ReplRecordPart mid = part_of(3, rec, len, 5000, 1000);
  assert_int_equal(mbx_repl_part_add(&rx, &mid, 1 * MiB, &out, &out_len), MBX_EPROTO);
  Mbx__ReplRecordPart tiny = part_of(3, rec, MBX_LOGREC_HEADER_BYTES - 1, 0, 10);
  assert_int_equal(mbx_repl_part_add(&rx, &tiny, 1 * MiB, &out, &out_len), MBX_EPROTO);
  /* After a refusal, a record sent again from its start is taken. */
  Mbx__ReplRecordPart whole = part_of(3, rec, len, 0, len);
  assert_int_equal(mbx_repl_part_add(&rx, &whole, 1 * MiB, &out, &out_len), 1);
  assert_memory_equal(out, rec, len);
  free(out);
  mbx_repl_part_reset(&rx);           /* harmless when empty */
  free(rec);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_repl_parts_budget_fits_frames),
    cmocka_unit_test(test_repl_parts_reassemble),
    cmocka_unit_test(test_repl_parts_over_cap_refused),
    cmocka_unit_test(test_repl_parts_out_of_order_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

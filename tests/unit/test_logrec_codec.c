/* test_logrec_codec.c — the log record codec: round trip, and every kind of damage
 * (short, bad magic/version, length mismatch, any flipped byte) is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "logrec.h"
#include "mbx_error.h"

static void make_record(struct mbx_buf *b)
{
  Mbx__OpDeleteItem d = MBX__OP_DELETE_ITEM__INIT;
  d.mailbox_id = 7;
  d.folder_id = 8;
  d.item_id = 99;
  d.tombstone_cn = 12;
  Mbx__Op op = MBX__OP__INIT, *opp = &op;
  op.op_case = MBX__OP__OP_DELETE_ITEM;
  op.delete_item = &d;
  Mbx__LogOps ops = MBX__LOG_OPS__INIT;
  ops.ops = &opp;
  ops.n_ops = 1;
  mbx_buf_init(b, 0);
  assert_int_equal(mbx_logrec_encode(3, 42, 1234567, &ops, b), 0);
}

static void test_roundtrip(void **state)
{
  (void)state;
  struct mbx_buf b;
  make_record(&b);
  assert_memory_equal(b.data, "MBXL", 4);
  struct mbx_logrec rec;
  assert_int_equal(mbx_logrec_decode(b.data, b.len, &rec), 0);
  assert_int_equal(rec.epoch, 3);
  assert_int_equal(rec.lsn, 42);
  assert_int_equal(rec.time_us, 1234567);
  assert_int_equal(rec.ops_len, b.len - MBX_LOGREC_HEADER_BYTES);
  Mbx__LogOps *ops = mbx_logrec_unpack_ops(&rec, NULL);
  assert_non_null(ops);
  assert_int_equal(ops->n_ops, 1);
  assert_int_equal(ops->ops[0]->op_case, MBX__OP__OP_DELETE_ITEM);
  assert_int_equal(ops->ops[0]->delete_item->item_id, 99);
  mbx__log_ops__free_unpacked(ops, NULL);

  /* The pre-packed variant gives the same bytes. */
  struct mbx_buf b2;
  mbx_buf_init(&b2, 0);
  assert_int_equal(mbx_logrec_encode_packed(3, 42, 1234567, rec.ops, rec.ops_len, &b2), 0);
  assert_int_equal(b2.len, b.len);
  assert_memory_equal(b2.data, b.data, b.len);
  mbx_buf_free(&b2);
  mbx_buf_free(&b);
}

static void test_damage_refused(void **state)
{
  (void)state;
  struct mbx_buf b;
  make_record(&b);
  struct mbx_logrec rec;
  /* Every truncation, including empty input. */
  for (size_t n = 0; n < b.len; n++)
    assert_int_equal(mbx_logrec_decode(b.data, n, &rec), MBX_ECORRUPT);
  assert_int_equal(mbx_logrec_decode(NULL, 0, &rec), MBX_ECORRUPT);
  /* Every single flipped bit position per byte (one bit each). */
  for (size_t i = 0; i < b.len; i++) {
    uint8_t *copy = malloc(b.len);
    memcpy(copy, b.data, b.len);
    copy[i] ^= 0x10;
    assert_int_equal(mbx_logrec_decode(copy, b.len, &rec), MBX_ECORRUPT);
    free(copy);
  }
  /* Trailing garbage: the length no longer matches. */
  uint8_t *longer = malloc(b.len + 1);
  memcpy(longer, b.data, b.len);
  longer[b.len] = 0;
  assert_int_equal(mbx_logrec_decode(longer, b.len + 1, &rec), MBX_ECORRUPT);
  free(longer);
  /* A wrong version with a matching CRC is still refused. */
  b.data[5] = 2;
  assert_int_equal(mbx_logrec_decode(b.data, b.len, &rec), MBX_ECORRUPT);
  mbx_buf_free(&b);
}

static void test_garbage_payload(void **state)
{
  (void)state;
  /* A record whose CRC is right but whose payload is not LogOps: decode passes,
   * unpack refuses. */
  uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
  struct mbx_buf b;
  mbx_buf_init(&b, 0);
  assert_int_equal(mbx_logrec_encode_packed(1, 1, 0, junk, sizeof(junk), &b), 0);
  struct mbx_logrec rec;
  assert_int_equal(mbx_logrec_decode(b.data, b.len, &rec), 0);
  assert_null(mbx_logrec_unpack_ops(&rec, NULL));
  /* Over a buffer limit: MBX_ELIMIT, nothing appended. */
  struct mbx_buf small;
  mbx_buf_init(&small, 16);
  assert_int_equal(mbx_logrec_encode_packed(1, 1, 0, junk, sizeof(junk), &small), MBX_ELIMIT);
  assert_int_equal(small.len, 0);
  mbx_buf_free(&small);
  mbx_buf_free(&b);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roundtrip),
      cmocka_unit_test(test_damage_refused),
      cmocka_unit_test(test_garbage_payload),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

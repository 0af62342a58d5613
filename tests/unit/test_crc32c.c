/* test_crc32c.c — CRC-32C: the standard check value, continuation over chunks, and
 * the hardware path (where the CPU has one) equal to the table on every length and
 * alignment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "crc32c.h"

static void test_check_value(void **state)
{
  (void)state;
  assert_int_equal(mbx_crc32c(0, "123456789", 9), 0xE3069283u);
  assert_int_equal(mbx_crc32c_portable(0, "123456789", 9), 0xE3069283u);
  assert_int_equal(mbx_crc32c(0, "", 0), 0);
}

static void test_hw_equals_table(void **state)
{
  (void)state;
  uint8_t buf[4200];
  uint32_t seed = 12345;
  for (size_t i = 0; i < sizeof(buf); i++) {
    seed = seed * 1103515245u + 12345u;
    buf[i] = (uint8_t)(seed >> 16);
  }
  for (size_t off = 0; off < 8; off++)
    for (size_t len = 0; len + off <= sizeof(buf); len += len < 64 ? 1 : 97) {
      assert_int_equal(mbx_crc32c(0, buf + off, len), mbx_crc32c_portable(0, buf + off, len));
      size_t half = len / 2;
      uint32_t c = mbx_crc32c(0, buf + off, half);
      assert_int_equal(mbx_crc32c(c, buf + off + half, len - half),
                       mbx_crc32c_portable(0, buf + off, len));
    }
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_check_value),
    cmocka_unit_test(test_hw_equals_table),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

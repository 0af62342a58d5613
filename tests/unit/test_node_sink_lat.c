/* test_node_sink_lat.c — the passive copy's receipt-latency ring: percentiles over
 * the last 10,000 records only (older ones fall out), negative latencies (clock
 * skew) count as 0, an empty ring reports 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sink_int.h"

static void test_empty_is_zero(void **state)
{
  (void)state;
  struct mbx_repl_lat *l = calloc(1, sizeof(*l));
  uint64_t p50 = 1, p99 = 1;
  mbx_repl_lat_percentiles(l, &p50, &p99);
  assert_int_equal(p50, 0);
  assert_int_equal(p99, 0);
  free(l);
}

static void test_percentiles(void **state)
{
  (void)state;
  struct mbx_repl_lat *l = calloc(1, sizeof(*l));
  for (int i = 1; i <= 1000; i++)     /* 1 … 1000 µs, shuffled order doesn't matter */
    mbx_repl_lat_add(l, (i * 7919) % 1000 + 1);
  uint64_t p50, p99;
  mbx_repl_lat_percentiles(l, &p50, &p99);
  assert_in_range(p50, 499, 501);
  assert_in_range(p99, 989, 991);
  free(l);
}

static void test_old_records_fall_out(void **state)
{
  (void)state;
  struct mbx_repl_lat *l = calloc(1, sizeof(*l));
  for (int i = 0; i < 5000; i++)
    mbx_repl_lat_add(l, 1000000);     /* a slow start: 1 s */
  for (int i = 0; i < MBX_REPL_LAT_RING; i++)
    mbx_repl_lat_add(l, 300);         /* then 0.3 ms, for a full ring */
  uint64_t p50, p99;
  mbx_repl_lat_percentiles(l, &p50, &p99);
  assert_int_equal(p50, 300);
  assert_int_equal(p99, 300);
  assert_int_equal(l->count, MBX_REPL_LAT_RING);
  free(l);
}

static void test_negative_and_huge(void **state)
{
  (void)state;
  struct mbx_repl_lat *l = calloc(1, sizeof(*l));
  mbx_repl_lat_add(l, -50);
  mbx_repl_lat_add(l, INT64_MAX);
  uint64_t p50, p99;
  mbx_repl_lat_percentiles(l, &p50, &p99);
  assert_int_equal(p50, 0);
  assert_int_equal(p99, 0);           /* (2 - 1) * 99 / 100 = index 0 */
  mbx_repl_lat_add(l, INT64_MAX);
  mbx_repl_lat_percentiles(l, &p50, &p99);
  assert_int_equal(p50, UINT32_MAX);
  free(l);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_empty_is_zero),
    cmocka_unit_test(test_percentiles),
    cmocka_unit_test(test_old_records_fall_out),
    cmocka_unit_test(test_negative_and_huge),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

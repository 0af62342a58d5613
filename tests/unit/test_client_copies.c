/* test_client_copies.c — the mbx CLI's copy helpers: the --copies list of admin db
 * create, --lag durations, ages, seeding progress and the copy status table an
 * operator reads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cli.h"

static void test_copies_list_with_preferences(void **state)
{
  (void)state;
  Mbx__CopyEntry **v;
  size_t n;
  assert_int_equal(mbxcli_parse_copies("node2:2,node1:1,node3:3", &v, &n), 0);
  assert_int_equal(n, 3);
  assert_string_equal(v[0]->node, "node2");
  assert_int_equal(v[0]->preference, 2);
  assert_string_equal(v[1]->node, "node1");
  assert_int_equal(v[1]->preference, 1);
  assert_int_equal(v[2]->preference, 3);
  mbxcli_copies_free(&v, n);
  assert_null(v);
}

static void test_copies_list_default_preferences(void **state)
{
  (void)state;
  Mbx__CopyEntry **v;
  size_t n;
  /* left out: the lowest preference nobody took, in list order */
  assert_int_equal(mbxcli_parse_copies("a,b:1,c", &v, &n), 0);
  assert_int_equal(n, 3);
  assert_int_equal(v[0]->preference, 2);
  assert_int_equal(v[1]->preference, 1);
  assert_int_equal(v[2]->preference, 3);
  assert_true(v[0]->has_preference && v[2]->has_preference);
  mbxcli_copies_free(&v, n);
  assert_int_equal(mbxcli_parse_copies("node1", &v, &n), 0);
  assert_int_equal(n, 1);
  assert_int_equal(v[0]->preference, 1);
  mbxcli_copies_free(&v, n);
}

static void test_copies_list_refuses_junk(void **state)
{
  (void)state;
  Mbx__CopyEntry **v = NULL;
  size_t n;
  static const char *const bad[] = {
    "", "node1,", ",node1", "node1,,node2", "node1:", "node1:0", "node1:x", "node1:1x",
    "Node1", "node_1", "node1:1,node2:1", ":1", "node1:99999999", "node1:17",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    int rc = mbxcli_parse_copies(bad[i], &v, &n);
    if (rc != MBX_EINVAL)
      fail_msg("\"%s\" gave %d, wanted EINVAL", bad[i], rc);
  }
  assert_int_equal(mbxcli_parse_copies("node1,node2,node1", &v, &n), MBX_EEXIST);
  char many[400] = "";
  for (int i = 0; i < 17; i++)
    snprintf(many + strlen(many), sizeof(many) - strlen(many), "%sn%d", i ? "," : "", i);
  assert_int_equal(mbxcli_parse_copies(many, &v, &n), MBX_ELIMIT);
  assert_null(v);
}

static void test_lag_suffixes(void **state)
{
  (void)state;
  uint32_t s;
  static const struct { const char *in; uint32_t out; } ok[] = {
    { "0", 0 }, { "45", 45 }, { "30s", 30 }, { "5m", 300 }, { "2h", 7200 }, { "1d", 86400 },
    { "14d", 1209600 }, { "1209600", 1209600 }, { "336h", 1209600 },
  };
  for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
    assert_int_equal(mbxcli_parse_lag(ok[i].in, &s), 0);
    assert_int_equal(s, ok[i].out);
  }
  assert_int_equal(mbxcli_parse_lag("15d", &s), MBX_ELIMIT);
  assert_int_equal(mbxcli_parse_lag("1209601", &s), MBX_ELIMIT);
  assert_int_equal(mbxcli_parse_lag("99999999999999999999", &s), MBX_ELIMIT);
  static const char *const bad[] = { "", "s", "-1", "5x", "5mm", "1.5h", " 5", "5 ", "1w" };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    assert_int_equal(mbxcli_parse_lag(bad[i], &s), MBX_EINVAL);
}

static void test_ages_and_durations(void **state)
{
  (void)state;
  char b[32];
  int64_t now = 1700000000000000;
  mbxcli_format_age(now - 200000, now, b, sizeof(b));
  assert_string_equal(b, "0.2s ago");
  mbxcli_format_age(now - 42000000, now, b, sizeof(b));
  assert_string_equal(b, "42s ago");
  mbxcli_format_age(now - 300 * INT64_C(1000000), now, b, sizeof(b));
  assert_string_equal(b, "5m ago");
  mbxcli_format_age(now - 3 * INT64_C(3600000000), now, b, sizeof(b));
  assert_string_equal(b, "3h ago");
  mbxcli_format_age(now - 3 * INT64_C(86400000000), now, b, sizeof(b));
  assert_string_equal(b, "3d ago");
  mbxcli_format_age(now + 5000, now, b, sizeof(b)); /* a clock slightly ahead */
  assert_string_equal(b, "0.0s ago");
  mbxcli_format_age(0, now, b, sizeof(b));
  assert_string_equal(b, "-");
  mbxcli_format_duration(90, b, sizeof(b));
  assert_string_equal(b, "90s");
  mbxcli_format_duration(300, b, sizeof(b));
  assert_string_equal(b, "5m");
  mbxcli_format_duration(86400 * 14, b, sizeof(b));
  assert_string_equal(b, "14d");
}

static void test_progress_line(void **state)
{
  (void)state;
  char b[200];
  /* 1 GiB of 2 GiB in 5 s: 204.8 MiB/s, 5 s left */
  mbxcli_format_progress(UINT64_C(1) << 30, UINT64_C(2) << 30, 5000000, b, sizeof(b));
  assert_string_equal(b, "1.0 GiB / 2.0 GiB  50%  204.8 MiB/s  ETA 5s");
  mbxcli_format_progress(512, 0, 0, b, sizeof(b));
  assert_string_equal(b, "512 B / ?  0%  0 B/s  ETA ?");
  /* the live file size is an estimate: more than it is 100%, never more */
  mbxcli_format_progress(3000, 2000, 1000000, b, sizeof(b));
  assert_non_null(strstr(b, " 100% "));
}

static char *table_of(Mbx__CopyStatus *const *c, size_t n, int64_t now)
{
  /* static: open_memstream keeps their addresses until fclose, and GCC 12 takes the
   * locals of an inlined helper for dangling ones */
  static char *buf;
  static size_t len;
  buf = NULL;
  len = 0;
  FILE *f = open_memstream(&buf, &len);
  assert_non_null(f);
  mbxcli_print_copy_status(f, c, n, now);
  fclose(f);
  return buf;
}

static void test_status_table(void **state)
{
  (void)state;
  int64_t now = 1700000000000000;
  Mbx__CopyStatus a = MBX__COPY_STATUS__INIT, p = MBX__COPY_STATUS__INIT,
                  s = MBX__COPY_STATUS__INIT;
  a.db = "db1", a.node = "node1", a.role = "active", a.status = "Mounted";
  a.has_preference = 1, a.preference = 1;
  a.has_last_received_time_us = 1, a.last_received_time_us = now - 100000;
  p.db = "db1", p.node = "node2", p.role = "passive", p.status = "Healthy";
  p.has_preference = 1, p.preference = 2, p.copy_queue_records = 3;
  p.copy_queue_bytes = 1536, p.replay_queue_records = 1;
  p.has_last_received_time_us = 1, p.last_received_time_us = now - 200000;
  p.has_last_replayed_time_us = 1, p.last_replayed_time_us = now - 42000000;
  p.has_last_contact_us = 1, p.last_contact_us = now - 500000;
  s.db = "db1", s.node = "node3", s.role = "passive", s.status = "Suspended";
  s.comment = "disk swap", s.lag_s = 300, s.has_preference = 1, s.preference = 3;
  Mbx__CopyStatus *v[] = { &a, &p, &s };
  char *t = table_of(v, 3, now);
  char *l1 = strchr(t, '\n') + 1, *l2 = strchr(l1, '\n') + 1, *l3 = strchr(l2, '\n') + 1;
  assert_int_equal(strncmp(t, "DB   NODE   ROLE     STATUS     COPYQ  COPYQ BYTES  REPLAYQ  "
                              "LAST RECEIVED  LAST REPLAYED  LAST CONTACT  LAG  PREF  REASON/COMMENT\n",
                           (size_t)(l1 - t)), 0);
  assert_int_equal(strncmp(l1, "db1  node1  active   Mounted        -            -        -  "
                               "0.1s ago       -              -             -       1  \n",
                           (size_t)(l2 - l1)), 0);
  assert_int_equal(strncmp(l2, "db1  node2  passive  Healthy        3      1.5 KiB        1  "
                               "0.2s ago       42s ago        0.5s ago      -       2  \n",
                           (size_t)(l3 - l2)), 0);
  assert_string_equal(l3, "db1  node3  passive  Suspended      0          0 B        0  "
                          "-              -              -             5m      3  disk swap\n");
  free(t);
  /* a failed copy shows its reason, with the operator's comment after it */
  s.status = "FailedAndSuspended", s.reason = "record 42: crc mismatch";
  t = table_of(v + 2, 1, now);
  assert_non_null(strstr(t, "FailedAndSuspended"));
  assert_non_null(strstr(t, "record 42: crc mismatch (disk swap)\n"));
  free(t);
  t = table_of(NULL, 0, now);
  assert_string_equal(t, "no database copies\n");
  free(t);
  /* --check: only a Mounted active and Healthy passives pass */
  s.status = "Healthy";
  assert_int_equal(mbxcli_copies_unhealthy(v, 3), 0);
  p.status = "ServiceDown";
  assert_int_equal(mbxcli_copies_unhealthy(v, 3), 1);
  a.status = "Dismounted";
  assert_int_equal(mbxcli_copies_unhealthy(v, 3), 2);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_copies_list_with_preferences),
    cmocka_unit_test(test_copies_list_default_preferences),
    cmocka_unit_test(test_copies_list_refuses_junk),
    cmocka_unit_test(test_lag_suffixes),
    cmocka_unit_test(test_ages_and_durations),
    cmocka_unit_test(test_progress_line),
    cmocka_unit_test(test_status_table),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

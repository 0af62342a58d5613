/* test_node_sink_swap.c — installing a seed on disk: NAME.seed.tmp replaces NAME
 * and the old copy is moved to NAME.old (kept until the new copy is open); without
 * a complete seed dir the old copy stays untouched; after a crash mid-install the
 * old copy is put back at start; mbx_repl_rmdir removes an
 * environment-like directory and tolerates a missing one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "mbx_error.h"
#include "sink_int.h"

static char base[512];

static void put(const char *dir, const char *file, const char *text)
{
  char p[800];
  snprintf(p, sizeof(p), "%s/%s", dir, file);
  FILE *f = fopen(p, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static int get(const char *dir, const char *file, char *out, size_t n)
{
  char p[800];
  snprintf(p, sizeof(p), "%s/%s", dir, file);
  FILE *f = fopen(p, "r");
  if (!f)
    return -1;
  size_t len = fread(out, 1, n - 1, f);
  out[len] = 0;
  fclose(f);
  return 0;
}

static bool exists(const char *path)
{
  struct stat st;
  return stat(path, &st) == 0;
}

static int setup(void **state)
{
  (void)state;
  const char *t = getenv("MBX_TEST_TMPDIR");
  if (t)
    mkdir(t, 0700);
  snprintf(base, sizeof(base), "%s/sinkswap.XXXXXX", t ? t : "/tmp");
  assert_non_null(mkdtemp(base));
  return 0;
}

static int teardown(void **state)
{
  (void)state;
  char cmd[600];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
  return system(cmd) == 0 ? 0 : -1;
}

static void test_swap_installs_seed(void **state)
{
  (void)state;
  char cur[600], tmp[600], old[600], buf[64];
  snprintf(cur, sizeof(cur), "%s/db1", base);
  snprintf(tmp, sizeof(tmp), "%s/db1.seed.tmp", base);
  snprintf(old, sizeof(old), "%s/db1.old", base);
  mkdir(cur, 0700);
  mkdir(tmp, 0700);
  put(cur, "data.mdb", "old");
  put(cur, "lock.mdb", "lock");
  put(tmp, "data.mdb", "new");
  assert_int_equal(mbx_repl_seed_swap_dirs(base, "db1"), 0);
  assert_int_equal(get(cur, "data.mdb", buf, sizeof(buf)), 0);
  assert_string_equal(buf, "new");
  assert_false(exists(tmp));
  assert_int_equal(get(old, "data.mdb", buf, sizeof(buf)), 0);
  assert_string_equal(buf, "old");    /* kept until the new copy is open */
  assert_int_equal(mbx_repl_rmdir(old), 0);
  assert_false(exists(old));
}

static void test_no_seed_keeps_old_copy(void **state)
{
  (void)state;
  char cur[600], buf[64];
  snprintf(cur, sizeof(cur), "%s/db2", base);
  mkdir(cur, 0700);
  put(cur, "data.mdb", "old");
  assert_int_equal(mbx_repl_seed_swap_dirs(base, "db2"), MBX_ENOTFOUND);
  assert_int_equal(get(cur, "data.mdb", buf, sizeof(buf)), 0);
  assert_string_equal(buf, "old");
}

static void test_swap_replaces_stale_old(void **state)
{
  (void)state;
  char cur[600], tmp[600], old[600], buf[64];
  snprintf(cur, sizeof(cur), "%s/db3", base);
  snprintf(tmp, sizeof(tmp), "%s/db3.seed.tmp", base);
  snprintf(old, sizeof(old), "%s/db3.old", base);
  mkdir(cur, 0700);
  mkdir(tmp, 0700);
  mkdir(old, 0700);                   /* left over by a crash during an earlier install */
  put(old, "data.mdb", "older");
  put(cur, "data.mdb", "old");
  put(tmp, "data.mdb", "new");
  assert_int_equal(mbx_repl_seed_swap_dirs(base, "db3"), 0);
  assert_int_equal(get(cur, "data.mdb", buf, sizeof(buf)), 0);
  assert_string_equal(buf, "new");
  assert_int_equal(get(old, "data.mdb", buf, sizeof(buf)), 0);
  assert_string_equal(buf, "old");
}

static void test_recover_after_crash(void **state)
{
  (void)state;
  char rec[560], old[700], tmp[700], cur[700], other[700], buf[64];
  snprintf(rec, sizeof(rec), "%s/recover", base);
  snprintf(old, sizeof(old), "%s/db4.old", rec);
  snprintf(tmp, sizeof(tmp), "%s/db4.seed.tmp", rec);
  snprintf(cur, sizeof(cur), "%s/db4", rec);
  snprintf(other, sizeof(other), "%s/db5.old", rec);
  mkdir(rec, 0700);
  mkdir(old, 0700);                   /* crash after NAME → NAME.old */
  mkdir(tmp, 0700);
  put(old, "data.mdb", "old");
  put(tmp, "data.mdb", "half");
  mkdir(other, 0700);                 /* db5 itself exists: its .old is left alone */
  char db5[700];
  snprintf(db5, sizeof(db5), "%s/db5", rec);
  mkdir(db5, 0700);
  assert_int_equal(mbx_repl_seed_recover(rec), 0);
  assert_int_equal(get(cur, "data.mdb", buf, sizeof(buf)), 0);
  assert_string_equal(buf, "old");
  assert_false(exists(old));
  assert_false(exists(tmp));
  assert_true(exists(other));
}

static void test_rmdir_missing_is_ok(void **state)
{
  (void)state;
  char p[600];
  snprintf(p, sizeof(p), "%s/nothing-here", base);
  assert_int_equal(mbx_repl_rmdir(p), 0);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_swap_installs_seed),
    cmocka_unit_test(test_no_seed_keeps_old_copy),
    cmocka_unit_test(test_swap_replaces_stale_old),
    cmocka_unit_test(test_recover_after_crash),
    cmocka_unit_test(test_rmdir_missing_is_ok),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

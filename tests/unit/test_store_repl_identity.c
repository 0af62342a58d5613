/* test_store_repl_identity.c — every copy of a database has the active's identity
 * (db_uid), so a client's sync token stays valid on whichever copy is active. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "store_repl_fixture.h"

static void test_store_repl_identity_token_valid_on_passive(void **state)
{
  (void)state;
  struct fx *a = fx_new(), *b = fx_new();
  assert_int_not_equal(mbx_store_db_uid(a->s), mbx_store_db_uid(b->s));
  rx_workload(a);
  uint64_t mb = 0;
  struct mbx_rtxn *r;
  assert_int_equal(mbx_store_rtxn_begin(a->s, &r), 0);
  assert_int_equal(mbx_store_lookup_address(r, "u@x.org", &mb), 0);
  Mbx__Folder *inbox = NULL;
  assert_int_equal(mbx_store_find_folder(r, mb, "Inbox", &a->a, &inbox), 0);
  struct mbx_sync_result res = {0};
  assert_int_equal(mbx_store_sync_folder(r, mb, inbox->id, NULL, 0, 0, &a->a, &res), 0);
  mbx_store_rtxn_end(&r);

  struct rx_recs x = rx_read(a, 1, mbx_store_last_lsn(a->s));
  assert_int_equal(rx_ship(b->s, &x, INT64_MAX), 0);
  assert_int_equal(mbx_store_db_uid(b->s), mbx_store_db_uid(a->s));

  /* The token the active handed out works on the passive (as after a failover). */
  assert_int_equal(mbx_store_rtxn_begin(b->s, &r), 0);
  struct mbx_sync_result res2 = {0};
  assert_int_equal(
      mbx_store_sync_folder(r, mb, inbox->id, res.state, res.state_len, 0, &b->a, &res2), 0);
  assert_int_equal(res2.n_added + res2.n_changed + res2.n_deleted, 0);
  mbx_store_rtxn_end(&r);

  /* And the identity survives a reopen of the passive. */
  uint64_t uid = mbx_store_db_uid(a->s);
  mbx_store_close(&b->s);
  assert_int_equal(fx_open_opt(b, "db1", NULL), 0);
  assert_int_equal(mbx_store_db_uid(b->s), uid);
  fx_free(a);
  fx_free(b);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_store_repl_identity_token_valid_on_passive),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

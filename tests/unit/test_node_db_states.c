/* test_node_db_states.c — the copy lifecycle (server/db.c) without a node: the
 * transition table allows exactly the documented moves and refuses the rest with
 * the state unchanged, and the write fence (mbx_db_may_write) is open only in
 * ACTIVE, only in the epoch it was opened in, and closes on every move away. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "db.h"
#include "mbx_error.h"

enum { CR = MBX_DB_CREATING, MO = MBX_DB_MOUNTING, AC = MBX_DB_ACTIVE, DR = MBX_DB_DRAINING,
       PA = MBX_DB_PASSIVE, SW = MBX_DB_SWAPPING, RM = MBX_DB_REMOVING, DI = MBX_DB_DISMOUNTED,
       FA = MBX_DB_FAILED };

/* expect[from][to]: 1 = allowed. Read a row as "from this state a copy may go to". */
static const int expect[MBX_DB_STATES][MBX_DB_STATES] = {
  /*          CR MO AC DR PA SW RM DI FA */
  [CR] = {    0, 1, 0, 0, 0, 0, 0, 0, 1 },
  [MO] = {    0, 0, 1, 0, 1, 0, 0, 1, 1 },
  [AC] = {    0, 0, 1, 1, 1, 0, 0, 1, 1 },
  [DR] = {    0, 0, 1, 0, 1, 0, 0, 1, 1 },
  [PA] = {    0, 0, 1, 0, 1, 1, 1, 1, 1 },
  [SW] = {    0, 0, 0, 0, 1, 0, 0, 0, 1 },
  [RM] = {    0, 0, 0, 0, 1, 0, 0, 0, 1 },
  [DI] = {    0, 1, 1, 0, 1, 0, 0, 1, 1 },
  [FA] = {    0, 1, 0, 0, 0, 0, 0, 0, 1 },
};

static void test_node_db_states_table(void **state)
{
  (void)state;
  for (int f = 0; f < MBX_DB_STATES; f++)
    for (int t = 0; t < MBX_DB_STATES; t++)
      if (mbx_db_transition_ok((enum mbx_db_state)f, (enum mbx_db_state)t) != (expect[f][t] == 1))
        fail_msg("%s -> %s: table says %d, expected %d", mbx_db_state_name((enum mbx_db_state)f),
                 mbx_db_state_name((enum mbx_db_state)t),
                 mbx_db_transition_ok((enum mbx_db_state)f, (enum mbx_db_state)t), expect[f][t]);
  assert_false(mbx_db_transition_ok((enum mbx_db_state)MBX_DB_STATES, MBX_DB_ACTIVE));
  assert_false(mbx_db_transition_ok((enum mbx_db_state)-1, MBX_DB_ACTIVE));
  for (int s = 0; s < MBX_DB_STATES; s++)
    assert_string_not_equal(mbx_db_state_name((enum mbx_db_state)s), "unknown");
}

/* A copy placed in a state the way db.c would leave it (the test has no node). */
static struct mbx_db *db_in(enum mbx_db_state s, uint64_t epoch)
{
  struct mbx_db *db = mbx_db_new("db1");
  assert_non_null(db);
  atomic_store(&db->state, (int)s);
  atomic_store(&db->write_epoch, s == MBX_DB_ACTIVE ? epoch : 0);
  return db;
}

static void test_node_db_states_fence(void **state)
{
  (void)state;
  struct mbx_db *db = mbx_db_new("db1");
  assert_int_equal(mbx_db_state(db), MBX_DB_CREATING);
  assert_false(mbx_db_may_write(db, 0));
  assert_false(mbx_db_ready(db));
  free(db);

  db = db_in(MBX_DB_ACTIVE, 7);
  assert_true(mbx_db_may_write(db, 0));
  assert_true(mbx_db_may_write(db, 7));
  assert_false(mbx_db_may_write(db, 6)); /* admitted in another epoch */
  assert_int_equal(mbx_db_write_epoch(db), 7);
  assert_true(mbx_db_is_active(db));
  /* deactivate: no new write is admitted, the copy is still the active one, and
   * writes admitted in its epoch may still commit (a switchover finishes them) */
  assert_int_equal(mbx_db_deactivate(db, "node2"), 0);
  assert_int_equal(mbx_db_state(db), MBX_DB_DRAINING);
  assert_false(mbx_db_may_write(db, 0));
  assert_true(mbx_db_may_write(db, 7));
  assert_false(mbx_db_may_write(db, 6));
  assert_string_equal(mbx_db_successor(db), "node2");
  assert_true(mbx_db_is_active(db));
  /* draining twice is refused and changes nothing */
  assert_int_equal(mbx_db_deactivate(db, "node3"), MBX_EINVAL);
  assert_int_equal(mbx_db_state(db), MBX_DB_DRAINING);
  assert_string_equal(mbx_db_successor(db), "node2");
  /* a switchover that did not happen: writes are admitted again, same epoch */
  assert_int_equal(mbx_db_reactivate(db), 0);
  assert_true(mbx_db_may_write(db, 0));
  assert_true(mbx_db_may_write(db, 7));
  assert_string_equal(mbx_db_successor(db), "");
  assert_int_equal(mbx_db_reactivate(db), MBX_EINVAL);
  /* leaving the active roles closes the fence for admitted writes too */
  assert_int_equal(mbx_db_deactivate(db, NULL), 0);
  assert_int_equal(mbx_db_dismount(db, "operator"), 0);
  assert_false(mbx_db_may_write(db, 7));
  assert_int_equal(mbx_db_write_epoch(db), 0);
  free(db);

  /* every state but ACTIVE keeps the fence shut, whatever epoch is asked */
  for (int s = 0; s < MBX_DB_STATES; s++) {
    if (s == MBX_DB_ACTIVE)
      continue;
    db = db_in((enum mbx_db_state)s, 7);
    atomic_store(&db->write_epoch, 7); /* even with a stale epoch left behind */
    assert_false(mbx_db_may_write(db, 0));
    if (s != MBX_DB_DRAINING)         /* draining finishes its own epoch's writes */
      assert_false(mbx_db_may_write(db, 7));
    free(db);
  }
}

static void test_node_db_states_refused(void **state)
{
  (void)state;
  /* a passive cannot be drained, a creating copy cannot be dismounted */
  struct mbx_db *db = db_in(MBX_DB_PASSIVE, 0);
  assert_int_equal(mbx_db_deactivate(db, NULL), MBX_EINVAL);
  assert_int_equal(mbx_db_state(db), MBX_DB_PASSIVE);
  free(db);
  db = db_in(MBX_DB_CREATING, 0);
  assert_int_equal(mbx_db_dismount(db, "operator"), MBX_EINVAL);
  assert_int_equal(mbx_db_state(db), MBX_DB_CREATING);
  /* FAILED is reachable from anywhere, and remembers why */
  mbx_db_fail(db, "both meta pages damaged");
  assert_int_equal(mbx_db_state(db), MBX_DB_FAILED);
  assert_string_equal(mbx_db_reason(db), "both meta pages damaged");
  assert_false(mbx_db_ready(db));
  free(db);
  /* an active copy dismounted by an operator serves nothing */
  db = db_in(MBX_DB_ACTIVE, 3);
  assert_int_equal(mbx_db_dismount(db, "operator"), 0);
  assert_int_equal(mbx_db_state(db), MBX_DB_DISMOUNTED);
  assert_false(mbx_db_may_write(db, 3));
  assert_false(mbx_db_is_active(db));
  free(db);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_node_db_states_table),
    cmocka_unit_test(test_node_db_states_fence),
    cmocka_unit_test(test_node_db_states_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

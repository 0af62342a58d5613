/* test_node_commit.c — group commit against a real store in a temp dir: concurrent
 * writes share transactions (fewer batches than jobs), a write is acknowledged only
 * once readable/durable, a failing job leaves its batch-mates intact, completions
 * come back on the loop thread, a full queue says EBUSY, and stop drains. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "commit.h"
#include "mbx_error.h"
#include "store.h"

#define ADDR "alice@example.org"
#define MSG "From: bob@example.org\r\nTo: alice@example.org\r\nSubject: hi\r\n\r\nhello\r\n"

struct fixture {
  char dir[256];
  uv_loop_t loop;
  struct mbx_store *store;
  uint64_t mailbox_id, inbox_id;
};

static pthread_t main_thread;

static void mk_tmpdir(char *out, size_t n)
{
  const char *base = getenv("MBX_TEST_TMPDIR");
  char cmd[300];
  if (base) {
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", base);
    assert_int_equal(system(cmd), 0);
  }
  snprintf(out, n, "%s/commit-XXXXXX", base ? base : "/tmp");
  assert_non_null(mkdtemp(out));
}

static int setup(void **state)
{
  struct fixture *f = calloc(1, sizeof(*f));
  mk_tmpdir(f->dir, sizeof(f->dir));
  main_thread = pthread_self();
  uv_loop_init(&f->loop);
  struct mbx_store_options opt;
  mbx_store_options_default(&opt);
  opt.map_size_bytes = 256ull << 20;
  const char *err = NULL;
  if (mbx_store_open(f->dir, "db1", true, &opt, &f->store, &err) < 0) {
    fprintf(stderr, "store open: %s\n", err ? err : "?");
    return -1;
  }
  /* One mailbox, made directly: no committer runs yet, so this thread may write. */
  struct mbx_arena a;
  mbx_arena_init(&a, 0);
  struct mbx_wtxn *w;
  struct mbx_mailbox_spec spec = {.address = ADDR, .password_hash = "scrypt$x"};
  Mbx__Mailbox *mb = NULL;
  assert_int_equal(mbx_store_wtxn_begin(f->store, &w), 0);
  assert_int_equal(mbx_store_unit_begin(w), 0);
  int rc = mbx_store_create_mailbox(w, &spec, &a, &mb);
  mbx_store_unit_end(w, rc);
  assert_int_equal(rc, 0);
  f->mailbox_id = mb->id;
  uint64_t lsn;
  assert_int_equal(mbx_store_wtxn_commit(&w, &lsn), 0);
  struct mbx_rtxn *r;
  Mbx__Folder *inbox;
  assert_int_equal(mbx_store_rtxn_begin(f->store, &r), 0);
  assert_int_equal(mbx_store_find_folder(r, f->mailbox_id, "Inbox", &a, &inbox), 0);
  f->inbox_id = inbox->id;
  mbx_store_rtxn_end(&r);
  mbx_arena_reset(&a);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fixture *f = *state;
  if (f->store)
    mbx_store_close(&f->store);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  char cmd[300];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
  int rc = system(cmd);
  free(f);
  return rc == 0 ? 0 : -1;
}

/* ---- jobs ------------------------------------------------------------------- */

struct job {
  struct fixture *f;
  struct mbx_arena arena;
  int kind;                           /* 0 deliver, 1 create folder then fail, 2 block,
                                       * 3 create folder, 4 deliver a big message */
  char folder[32];
  int status;
  uint64_t lsn;
  bool ran_on_writer, done, done_on_loop, visible_at_done;
  uint64_t item_id;
  atomic_int *gate;
};

/* ~96 KiB of letters that compress poorly (6 bits of entropy each): stored, it is
 * still more than BIG_BOUND bytes of log. */
#define BIG_BODY 98304
#define BIG_BOUND (64u * 1024)
static char big_msg[BIG_BODY + 128];

static void big_msg_init(void)
{
  static const char set[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  int n = snprintf(big_msg, sizeof(big_msg),
                   "From: bob@example.org\r\nTo: alice@example.org\r\nSubject: big\r\n\r\n");
  uint64_t x = 88172645463325252ull;
  for (size_t i = 0; i < BIG_BODY; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    big_msg[n + (int)i] = (i % 78 == 77) ? '\n' : set[x % 64];
  }
  big_msg[n + BIG_BODY] = 0;
}

static int job_run(struct mbx_wtxn *w, void *arg)
{
  struct job *j = arg;
  j->ran_on_writer = !pthread_equal(pthread_self(), main_thread);
  if (j->kind == 2) {
    /* Hold the writer until the test has queued what it wants (bounded: 10 s). */
    uint64_t until = mbx_mono_us() + 10 * 1000 * 1000;
    while (!atomic_load(j->gate) && mbx_mono_us() < until)
      usleep(1000);
    return 0;
  }
  if (j->kind == 1 || j->kind == 3) {
    Mbx__Folder *fo;
    int rc = mbx_store_create_folder(w, j->f->mailbox_id, 0, j->folder,
                                     MBX__FOLDER_CLASS__FOLDER_MAIL, &j->arena, &fo);
    if (rc < 0)
      return rc;
    return j->kind == 1 ? MBX_EINVAL : 0;  /* kind 1: fail after writing */
  }
  Mbx__Item *it;
  const char *msg = j->kind == 4 ? big_msg : MSG;
  int rc = mbx_store_deliver(w, ADDR, (const uint8_t *)msg, strlen(msg), &j->arena, &it);
  if (rc == 0)
    j->item_id = it->id;
  return rc;
}

static void job_done(int status, uint64_t lsn, void *arg)
{
  struct job *j = arg;
  j->status = status;
  j->lsn = lsn;
  j->done = true;
  j->done_on_loop = pthread_equal(pthread_self(), main_thread);
  if (status == 0 && j->item_id) {
    /* Acknowledged means committed: a fresh reader must see it. */
    struct mbx_rtxn *r;
    Mbx__Item *it;
    struct mbx_arena a;
    mbx_arena_init(&a, 0);
    assert_int_equal(mbx_store_rtxn_begin(j->f->store, &r), 0);
    j->visible_at_done =
      mbx_store_get_item(r, j->f->mailbox_id, j->item_id, &a, &it, NULL, NULL) == 0;
    mbx_store_rtxn_end(&r);
    mbx_arena_reset(&a);
  }
}

static struct job *jobs_new(struct fixture *f, size_t n)
{
  struct job *v = calloc(n, sizeof(*v));
  for (size_t i = 0; i < n; i++) {
    v[i].f = f;
    mbx_arena_init(&v[i].arena, 0);
  }
  return v;
}

static void jobs_free(struct job *v, size_t n)
{
  for (size_t i = 0; i < n; i++)
    mbx_arena_reset(&v[i].arena);
  free(v);
}

/* Runs the loop until every job is done (bounded: 30 s). */
static void wait_done(struct fixture *f, struct job *v, size_t n)
{
  uint64_t until = mbx_mono_us() + 30 * 1000 * 1000;
  for (;;) {
    size_t left = 0;
    for (size_t i = 0; i < n; i++)
      left += !v[i].done;
    if (!left)
      return;
    if (mbx_mono_us() > until)
      fail_msg("%zu jobs not done after 30 s", left);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    usleep(200);
  }
}

static uint64_t inbox_total(struct fixture *f)
{
  struct mbx_rtxn *r;
  struct mbx_arena a;
  mbx_arena_init(&a, 0);
  Mbx__Item **items;
  size_t n;
  uint64_t total = 0;
  assert_int_equal(mbx_store_rtxn_begin(f->store, &r), 0);
  assert_int_equal(
    mbx_store_list_items(r, f->mailbox_id, f->inbox_id, 0, 1, &a, &items, &n, &total), 0);
  mbx_store_rtxn_end(&r);
  mbx_arena_reset(&a);
  return total;
}

/* ---- tests ------------------------------------------------------------------- */

static void test_batches_and_durability(void **state)
{
  struct fixture *f = *state;
  enum { N = 600 };
  struct mbx_committer *c;
  assert_int_equal(mbx_committer_start(&f->loop, f->store, NULL, &c), 0);
  struct job *v = jobs_new(f, N);
  for (size_t i = 0; i < N; i++)
    assert_int_equal(mbx_committer_submit(c, job_run, job_done, &v[i]), 0);
  /* Submitting never completes anything synchronously. */
  for (size_t i = 0; i < N; i++)
    assert_false(v[i].done);
  wait_done(f, v, N);
  uint64_t prev_lsn = 0;
  for (size_t i = 0; i < N; i++) {
    assert_int_equal(v[i].status, 0);
    assert_true(v[i].ran_on_writer);
    assert_true(v[i].done_on_loop);
    assert_true(v[i].visible_at_done);
    assert_true(v[i].lsn > 0);
    assert_true(v[i].lsn >= prev_lsn);  /* completions in commit order */
    prev_lsn = v[i].lsn;
  }
  struct mbx_committer_stats st;
  mbx_committer_get_stats(c, &st);
  assert_int_equal(st.jobs, N);
  assert_true(st.batches < N);          /* writes shared fsyncs */
  assert_int_equal(st.batches, mbx_store_last_lsn(f->store) - 1);  /* 1: the mailbox */
  mbx_committer_stop(&c);
  assert_null(c);
  assert_int_equal(inbox_total(f), N);
  jobs_free(v, N);

  /* Durable: reopening the store shows every acknowledged item. */
  uv_run(&f->loop, UV_RUN_DEFAULT);
  mbx_store_close(&f->store);
  const char *err;
  assert_int_equal(mbx_store_open(f->dir, "db1", false, NULL, &f->store, &err), 0);
  assert_int_equal(inbox_total(f), N);
}

static void test_failing_job_isolated(void **state)
{
  struct fixture *f = *state;
  atomic_int gate = 0;
  struct mbx_committer *c;
  assert_int_equal(mbx_committer_start(&f->loop, f->store, NULL, &c), 0);
  struct job *v = jobs_new(f, 4);
  v[0].kind = 2;                      /* holds the writer: the next three form one batch */
  v[0].gate = &gate;
  v[1].kind = 3;
  snprintf(v[1].folder, sizeof(v[1].folder), "Kept A");
  v[2].kind = 1;
  snprintf(v[2].folder, sizeof(v[2].folder), "Rolled Back");
  v[3].kind = 3;
  snprintf(v[3].folder, sizeof(v[3].folder), "Kept B");
  assert_int_equal(mbx_committer_submit(c, job_run, job_done, &v[0]), 0);
  usleep(20000);
  for (int i = 1; i < 4; i++)
    assert_int_equal(mbx_committer_submit(c, job_run, job_done, &v[i]), 0);
  atomic_store(&gate, 1);
  wait_done(f, v, 4);
  assert_int_equal(v[1].status, 0);
  assert_int_equal(v[2].status, MBX_EINVAL);
  assert_int_equal(v[2].lsn, 0);
  assert_int_equal(v[3].status, 0);
  assert_int_equal(v[1].lsn, v[3].lsn);   /* same batch, same record */

  struct mbx_rtxn *r;
  struct mbx_arena a;
  mbx_arena_init(&a, 0);
  Mbx__Folder *fo;
  assert_int_equal(mbx_store_rtxn_begin(f->store, &r), 0);
  assert_int_equal(mbx_store_find_folder(r, f->mailbox_id, "Kept A", &a, &fo), 0);
  assert_int_equal(mbx_store_find_folder(r, f->mailbox_id, "Kept B", &a, &fo), 0);
  assert_int_equal(mbx_store_find_folder(r, f->mailbox_id, "Rolled Back", &a, &fo),
                   MBX_ENOTFOUND);
  mbx_store_rtxn_end(&r);
  mbx_arena_reset(&a);
  mbx_committer_stop(&c);
  jobs_free(v, 4);
}

static void test_queue_full_busy(void **state)
{
  struct fixture *f = *state;
  atomic_int gate = 0;
  struct mbx_committer_options opt = {.batch_max = 2, .queue_max = 4};
  struct mbx_committer *c;
  assert_int_equal(mbx_committer_start(&f->loop, f->store, &opt, &c), 0);
  struct job *v = jobs_new(f, 6);
  v[0].kind = 2;
  v[0].gate = &gate;
  assert_int_equal(mbx_committer_submit(c, job_run, job_done, &v[0]), 0);
  /* Wait until the writer holds the blocker, so the queue is empty again. */
  struct mbx_committer_stats st;
  uint64_t until = mbx_mono_us() + 5 * 1000 * 1000;
  do {
    usleep(1000);
    mbx_committer_get_stats(c, &st);
  } while (st.queued && mbx_mono_us() < until);
  assert_int_equal(st.queued, 0);
  for (int i = 1; i <= 4; i++)
    assert_int_equal(mbx_committer_submit(c, job_run, job_done, &v[i]), 0);
  assert_int_equal(mbx_committer_submit(c, job_run, job_done, &v[5]), MBX_EBUSY);
  atomic_store(&gate, 1);
  wait_done(f, v, 5);
  assert_false(v[5].done);            /* refused: its callback never runs */
  for (int i = 1; i <= 4; i++)
    assert_int_equal(v[i].status, 0);
  mbx_committer_get_stats(c, &st);
  assert_true(st.batches >= 3);       /* batch_max 2: 1 + 2 + 2 */
  mbx_committer_stop(&c);
  jobs_free(v, 6);
}

static void test_stop_drains(void **state)
{
  struct fixture *f = *state;
  enum { N = 300 };
  struct mbx_committer *c;
  assert_int_equal(mbx_committer_start(&f->loop, f->store, NULL, &c), 0);
  struct job *v = jobs_new(f, N);
  for (size_t i = 0; i < N; i++)
    assert_int_equal(mbx_committer_submit(c, job_run, job_done, &v[i]), 0);
  mbx_committer_stop(&c);
  assert_null(c);
  /* Every queued job was committed and answered before stop returned. */
  for (size_t i = 0; i < N; i++) {
    assert_true(v[i].done);
    assert_int_equal(v[i].status, 0);
    assert_true(v[i].visible_at_done);
  }
  assert_int_equal(inbox_total(f), N);
  jobs_free(v, N);
}

/* A completion that runs during stop (e.g. a request that wants a second write) is
 * refused with MBX_ESHUTDOWN, and its own callback is never called. */
static struct mbx_committer *resubmit_c;
static int resubmit_rc = 1;
static struct job resubmit_job;

static void job_done_resubmit(int status, uint64_t lsn, void *arg)
{
  job_done(status, lsn, arg);
  resubmit_rc = mbx_committer_submit(resubmit_c, job_run, job_done, &resubmit_job);
}

static void test_submit_during_stop_refused(void **state)
{
  struct fixture *f = *state;
  struct mbx_committer *c;
  assert_int_equal(mbx_committer_start(&f->loop, f->store, NULL, &c), 0);
  struct job *v = jobs_new(f, 1);
  resubmit_c = c;
  assert_int_equal(mbx_committer_submit(c, job_run, job_done_resubmit, &v[0]), 0);
  mbx_committer_stop(&c);
  assert_true(v[0].done);
  assert_int_equal(v[0].status, 0);
  assert_int_equal(resubmit_rc, MBX_ESHUTDOWN);
  assert_false(resubmit_job.done);
  uv_run(&f->loop, UV_RUN_DEFAULT);   /* the handle closes: nothing left on the loop */
  jobs_free(v, 1);
}

/* A batch ends once its log record passes batch_bytes: the jobs queued behind wait for
 * the next batch, in order, and nothing is refused. */
static void test_batch_bytes_bound(void **state)
{
  struct fixture *f = *state;
  big_msg_init();
  atomic_int gate = 0;
  struct mbx_committer_options opt = {.batch_bytes = BIG_BOUND};
  struct mbx_committer *c;
  assert_int_equal(mbx_committer_start(&f->loop, f->store, &opt, &c), 0);
  enum { N = 7 };
  struct job *v = jobs_new(f, N);
  static const int kinds[N] = {2, 4, 0, 0, 4, 0, 4};
  for (int i = 0; i < N; i++) {
    v[i].kind = kinds[i];
    v[i].gate = &gate;
  }
  assert_int_equal(mbx_committer_submit(c, job_run, job_done, &v[0]), 0);
  struct mbx_committer_stats st;
  uint64_t until = mbx_mono_us() + 5 * 1000 * 1000;
  do {                                /* the writer holds the blocker: the rest queues */
    usleep(1000);
    mbx_committer_get_stats(c, &st);
  } while (st.queued && mbx_mono_us() < until);
  for (int i = 1; i < N; i++)
    assert_int_equal(mbx_committer_submit(c, job_run, job_done, &v[i]), 0);
  atomic_store(&gate, 1);
  wait_done(f, v, N);
  for (int i = 1; i < N; i++) {
    assert_int_equal(v[i].status, 0);
    assert_true(v[i].visible_at_done);
    assert_true(v[i].lsn >= v[i - 1].lsn);   /* still in submission order */
  }
  /* Each big message passes the bound: nothing joins it after it. */
  assert_true(v[2].lsn > v[1].lsn);
  assert_int_equal(v[3].lsn, v[2].lsn);
  assert_int_equal(v[4].lsn, v[2].lsn);
  assert_true(v[5].lsn > v[4].lsn);
  assert_int_equal(v[6].lsn, v[5].lsn);
  mbx_committer_get_stats(c, &st);
  assert_int_equal(st.jobs, N);
  mbx_committer_stop(&c);
  assert_int_equal(inbox_total(f), N - 1);
  jobs_free(v, N);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_batches_and_durability, setup, teardown),
    cmocka_unit_test_setup_teardown(test_failing_job_isolated, setup, teardown),
    cmocka_unit_test_setup_teardown(test_queue_full_busy, setup, teardown),
    cmocka_unit_test_setup_teardown(test_stop_drains, setup, teardown),
    cmocka_unit_test_setup_teardown(test_submit_during_stop_refused, setup, teardown),
    cmocka_unit_test_setup_teardown(test_batch_bytes_bound, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

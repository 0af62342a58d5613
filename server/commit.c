/* commit.c — group commit: a queue of write jobs filled by the loop thread, one
 * writer thread that turns whatever is queued into one durable LMDB transaction,
 * and a completion queue drained on the loop thread through a uv_async handle. */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "clock.h"
#include "commit.h"
#include "log.h"
#include "mbx_error.h"

struct commit_job {
  struct commit_job *next;
  mbx_commit_run_fn run;
  mbx_commit_exclusive_fn exclusive;  /* set: runs alone, outside any write txn */
  mbx_commit_done_fn done;
  void *arg;
  int status;
  uint64_t lsn;
  int64_t durable_us;                 /* wall clock when its batch became durable */
};

struct job_list {
  struct commit_job *head, *tail;
};

struct mbx_committer {
  uv_loop_t *loop;
  struct mbx_store *store;
  uint32_t batch_max, queue_max;
  uint64_t batch_bytes;
  uv_async_t async;                   /* writer → loop: completions are ready */
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cond;
  /* guarded by mu: */
  struct job_list pending;            /* submitted, not yet taken by the writer */
  uint32_t n_pending;
  struct job_list completed;          /* committed (or failed), waiting for done() */
  bool stopping;
  uint64_t jobs, batches, failed_commits;
  /* loop thread only: */
  mbx_commit_notify_fn on_commit;
  void *on_commit_arg;
};

static void jobs_push(struct job_list *l, struct commit_job *j)
{
  j->next = NULL;
  if (l->tail)
    l->tail->next = j;
  else
    l->head = j;
  l->tail = j;
}

static void jobs_append(struct job_list *l, struct job_list *more)
{
  if (!more->head)
    return;
  if (l->tail)
    l->tail->next = more->head;
  else
    l->head = more->head;
  l->tail = more->tail;
  more->head = more->tail = NULL;
}

/* ---- writer thread -------------------------------------------------------- */

/* Runs one batch in one write transaction and fills in every job's outcome. Once the
 * log record passes batch_bytes the batch takes no more: the jobs not run are moved to
 * *rest (in order) for the caller to queue again. Returns the number of jobs run. */
static uint32_t commit_batch(struct mbx_committer *c, struct job_list *batch, uint32_t n,
                             struct job_list *rest)
{
  struct mbx_wtxn *w = NULL;
  uint64_t lsn = 0;
  uint32_t ran = n;
  size_t log_bytes = 0;
  int rc = mbx_store_wtxn_begin(c->store, &w);
  for (struct commit_job *j = batch->head, *prev = NULL; j && rc == 0; prev = j, j = j->next) {
    if (prev && (log_bytes = mbx_store_wtxn_log_bytes(w)) >= c->batch_bytes) {
      rest->head = j;                 /* bytes bound reached: the rest waits */
      rest->tail = batch->tail;
      prev->next = NULL;
      batch->tail = prev;
      for (ran = 0, j = batch->head; j; j = j->next)
        ran++;
      break;
    }
    j->status = mbx_store_unit_begin(w);
    if (j->status == 0) {
      j->status = j->run(w, j->arg);
      mbx_store_unit_end(w, j->status);
    }
  }
  if (rc == 0)
    rc = mbx_store_wtxn_commit(&w, &lsn);
  else if (w)
    mbx_store_wtxn_abort(&w);
  int64_t durable_us = mbx_now_us();
  for (struct commit_job *j = batch->head; j; j = j->next) {
    j->durable_us = durable_us;
    if (rc < 0) {
      /* The batch is not durable: no job in it may be acknowledged. */
      if (j->status == 0)
        j->status = rc;
      j->lsn = 0;
    } else {
      j->lsn = j->status == 0 ? lsn : 0;
    }
  }
  pthread_mutex_lock(&c->mu);
  c->batches++;
  c->jobs += ran;
  if (rc < 0)
    c->failed_commits++;
  pthread_mutex_unlock(&c->mu);
  if (rc < 0)
    mbx_error("db %s: commit of %u requests failed: %s; all refused", mbx_store_name(c->store),
              ran, mbx_strerror(rc));
  else if (ran < n)
    mbx_debug("db %s: committed %u requests, lsn %llu (%zu bytes of log: %u requests wait "
              "for the next batch)", mbx_store_name(c->store), ran, (unsigned long long)lsn,
              log_bytes, n - ran);
  else
    mbx_debug("db %s: committed %u requests, lsn %llu", mbx_store_name(c->store), n,
              (unsigned long long)lsn);
  return ran;
}

static void *commit_thread(void *p)
{
  struct mbx_committer *c = p;
  pthread_mutex_lock(&c->mu);
  for (;;) {
    while (!c->pending.head && !c->stopping)
      pthread_cond_wait(&c->cond, &c->mu);
    if (!c->pending.head)
      break;                          /* stopping and drained */
    struct job_list batch = {0};
    uint32_t n = 0;
    /* An exclusive job runs alone; a batch stops before the next exclusive job, so
     * jobs still run in the order they were submitted. */
    bool exclusive = c->pending.head->exclusive != NULL;
    while (c->pending.head && n < c->batch_max &&
           (n == 0 || (!exclusive && !c->pending.head->exclusive))) {
      struct commit_job *j = c->pending.head;
      c->pending.head = j->next;
      if (!c->pending.head)
        c->pending.tail = NULL;
      jobs_push(&batch, j);
      n++;
    }
    c->n_pending -= n;
    pthread_mutex_unlock(&c->mu);
    struct job_list rest = {0};
    if (exclusive) {
      batch.head->status = batch.head->exclusive(c->store, batch.head->arg);
      batch.head->lsn = 0;
    } else {
      n -= commit_batch(c, &batch, n, &rest);
    }
    pthread_mutex_lock(&c->mu);
    if (rest.head) {
      /* Nothing else takes from pending: the rest is still first in line. */
      rest.tail->next = c->pending.head;
      c->pending.head = rest.head;
      if (!c->pending.tail)
        c->pending.tail = rest.tail;
      c->n_pending += n;
    }
    jobs_append(&c->completed, &batch);
    pthread_mutex_unlock(&c->mu);
    uv_async_send(&c->async);
    pthread_mutex_lock(&c->mu);
  }
  pthread_mutex_unlock(&c->mu);
  return NULL;
}

/* ---- loop thread ------------------------------------------------------------ */

/* The durable time of the job whose done callback is running (mbx_committer_done_time_us). */
static _Thread_local int64_t commit_done_us;

int64_t mbx_committer_done_time_us(void) { return commit_done_us; }

static void commit_run_completions(struct mbx_committer *c)
{
  pthread_mutex_lock(&c->mu);
  struct commit_job *j = c->completed.head;
  c->completed.head = c->completed.tail = NULL;
  pthread_mutex_unlock(&c->mu);
  if (c->on_commit) {
    /* One mark per batch (its jobs share an lsn), the last one flagged. */
    const struct commit_job *mark = NULL;
    for (const struct commit_job *k = j; k; k = k->next) {
      if (k->lsn == 0 || (mark && k->lsn == mark->lsn))
        continue;
      if (mark)
        c->on_commit(mark->lsn, mark->durable_us, false, c->on_commit_arg);
      mark = k;
    }
    if (mark)
      c->on_commit(mark->lsn, mark->durable_us, true, c->on_commit_arg);
  }
  while (j) {
    struct commit_job *next = j->next;
    commit_done_us = j->exclusive ? 0 : j->durable_us;
    j->done(j->status, j->lsn, j->arg);
    commit_done_us = 0;
    free(j);
    j = next;
  }
}

void mbx_committer_set_on_commit(struct mbx_committer *c, mbx_commit_notify_fn fn, void *arg)
{
  c->on_commit = fn;
  c->on_commit_arg = arg;
}

static void commit_on_async(uv_async_t *h) { commit_run_completions(h->data); }

static void commit_on_close(uv_handle_t *h)
{
  struct mbx_committer *c = h->data;
  pthread_cond_destroy(&c->cond);
  pthread_mutex_destroy(&c->mu);
  free(c);
}

int mbx_committer_start(uv_loop_t *loop, struct mbx_store *store,
                        const struct mbx_committer_options *opt, struct mbx_committer **c_r)
{
  *c_r = NULL;
  struct mbx_committer *c = calloc(1, sizeof(*c));
  if (!c)
    return MBX_ENOMEM;
  c->loop = loop;
  c->store = store;
  c->batch_max = opt && opt->batch_max ? opt->batch_max : 1024;
  c->queue_max = opt && opt->queue_max ? opt->queue_max : 65536;
  c->batch_bytes = opt && opt->batch_bytes ? opt->batch_bytes : 16u << 20;
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->cond, NULL);
  if (uv_async_init(loop, &c->async, commit_on_async) != 0) {
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->mu);
    free(c);
    return MBX_EIO;
  }
  c->async.data = c;
  if (pthread_create(&c->thread, NULL, commit_thread, c) != 0) {
    mbx_error("db %s: cannot start the writer thread", mbx_store_name(store));
    uv_close((uv_handle_t *)&c->async, commit_on_close);   /* frees c */
    return MBX_EIO;
  }
  *c_r = c;
  return 0;
}

static int commit_enqueue(struct mbx_committer *c, mbx_commit_run_fn run,
                          mbx_commit_exclusive_fn exclusive, mbx_commit_done_fn done, void *arg)
{
  struct commit_job *j = malloc(sizeof(*j));
  if (!j)
    return MBX_ENOMEM;
  j->run = run;
  j->exclusive = exclusive;
  j->done = done;
  j->arg = arg;
  j->status = 0;
  j->lsn = 0;
  j->durable_us = 0;
  pthread_mutex_lock(&c->mu);
  int rc = c->stopping ? MBX_ESHUTDOWN : c->n_pending >= c->queue_max ? MBX_EBUSY : 0;
  if (rc == 0) {
    jobs_push(&c->pending, j);
    c->n_pending++;
    pthread_cond_signal(&c->cond);
  }
  pthread_mutex_unlock(&c->mu);
  if (rc < 0)
    free(j);
  return rc;
}

int mbx_committer_submit(struct mbx_committer *c, mbx_commit_run_fn run, mbx_commit_done_fn done,
                         void *arg)
{
  return commit_enqueue(c, run, NULL, done, arg);
}

int mbx_committer_submit_exclusive(struct mbx_committer *c, mbx_commit_exclusive_fn fn,
                                   mbx_commit_done_fn done, void *arg)
{
  return commit_enqueue(c, NULL, fn, done, arg);
}

void mbx_committer_get_stats(struct mbx_committer *c, struct mbx_committer_stats *st)
{
  pthread_mutex_lock(&c->mu);
  st->jobs = c->jobs;
  st->batches = c->batches;
  st->failed_commits = c->failed_commits;
  st->queued = c->n_pending;
  pthread_mutex_unlock(&c->mu);
}

void mbx_committer_stop(struct mbx_committer **cp)
{
  struct mbx_committer *c = *cp;
  if (!c)
    return;
  *cp = NULL;
  pthread_mutex_lock(&c->mu);
  c->stopping = true;
  pthread_cond_signal(&c->cond);
  pthread_mutex_unlock(&c->mu);
  pthread_join(c->thread, NULL);
  commit_run_completions(c);
  uv_close((uv_handle_t *)&c->async, commit_on_close);
}

/* ---- beginning an epoch ------------------------------------------------------- */

struct commit_epoch_job {
  uint64_t epoch, lsn;
  mbx_commit_done_fn done;
  void *arg;
};

static int commit_epoch_run(struct mbx_store *s, void *arg)
{
  struct commit_epoch_job *e = arg;
  return mbx_store_begin_epoch(s, e->epoch, &e->lsn);
}

static void commit_epoch_done(int status, uint64_t lsn, void *arg)
{
  (void)lsn;                          /* 0 for an exclusive job: ours is in e */
  struct commit_epoch_job *e = arg;
  e->done(status, status == 0 ? e->lsn : 0, e->arg);
  free(e);
}

int mbx_committer_begin_epoch(struct mbx_committer *c, uint64_t epoch, mbx_commit_done_fn done,
                              void *arg)
{
  struct commit_epoch_job *e = calloc(1, sizeof(*e));
  if (!e)
    return MBX_ENOMEM;
  *e = (struct commit_epoch_job){.epoch = epoch, .done = done, .arg = arg};
  int rc = mbx_committer_submit_exclusive(c, commit_epoch_run, commit_epoch_done, e);
  if (rc < 0)
    free(e);
  return rc;
}

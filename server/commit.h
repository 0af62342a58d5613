/* commit.h — mbx_committer_*: group commit. One writer thread per database batches
 * the write requests queued while the previous batch was being made durable into one
 * LMDB write transaction, so a burst of writes costs one fsync, not one each.
 * A batch is bounded by count (batch_max) and by the bytes of its log record
 * (batch_bytes): once the record passes the byte bound, the jobs not yet run wait
 * for the next batch, in order, so large messages make several records of about the
 * bound each (or one each when larger) instead of one giant record.
 *
 * Thread rules: start, submit, stop and the done callbacks are on the loop thread;
 * run callbacks are on the writer thread (they may use the store's write functions
 * and the memory of their own arg, nothing of the loop's). */
#ifndef MBX_COMMIT_H
#define MBX_COMMIT_H

#include <stdint.h>
#include <uv.h>

#include "store.h"

struct mbx_committer;

struct mbx_committer_options {
  uint32_t batch_max;                 /* jobs per write transaction; 0 = 1024 */
  uint32_t queue_max;                 /* queued jobs before submit says MBX_EBUSY; 0 = 65536 */
  uint64_t batch_bytes;               /* a batch takes no more jobs once its log record
                                         holds this many bytes; 0 = 16 MiB */
};

/* Writer thread, inside a unit: returns 0 to keep the unit's changes, < 0 to roll
 * them back (the job then completes with that error). */
typedef int (*mbx_commit_run_fn)(struct mbx_wtxn *w, void *arg);
/* Loop thread, once the job's outcome is final: status is the run's error, or the
 * commit's error if the batch could not be made durable (nothing is acknowledged that
 * is not durable); lsn is the batch's log record (0 if it wrote nothing or failed). */
typedef void (*mbx_commit_done_fn)(int status, uint64_t lsn, void *arg);

/* Writer thread, alone and with no write transaction open: for work that makes its
 * own transactions (a passive copy's receive and replay, copy meta updates). Its
 * return value is the job's status; done gets lsn 0. */
typedef int (*mbx_commit_exclusive_fn)(struct mbx_store *s, void *arg);
/* Loop thread, once for each durable batch that wrote a log record, in lsn order and
 * before that batch's done callbacks (so replication sends before clients are
 * answered): lsn is the batch's last record, durable_us the wall-clock time its
 * transaction became durable, and last is set on the final batch of a wake-up. */
typedef void (*mbx_commit_notify_fn)(uint64_t lsn, int64_t durable_us, bool last, void *arg);

struct mbx_committer_stats {
  uint64_t jobs, batches, failed_commits;
  uint32_t queued;                    /* waiting for the writer now */
};

/* Starts the writer thread for store (borrowed: keep it open until stop returns).
 * Returns 0, MBX_ENOMEM, MBX_EIO (thread/async creation failed). */
int mbx_committer_start(uv_loop_t *loop, struct mbx_store *store,
                        const struct mbx_committer_options *opt, struct mbx_committer **c_r);

/* Queues a job; arg is borrowed until done is called. Returns 0 (done will be called
 * exactly once, later, never from inside submit), MBX_EBUSY (queue full),
 * MBX_ESHUTDOWN (stopping), MBX_ENOMEM; on error done is never called. */
int mbx_committer_submit(struct mbx_committer *c, mbx_commit_run_fn run, mbx_commit_done_fn done,
                         void *arg);

/* Like submit, for an exclusive job: it runs after every job submitted before it and
 * before every job submitted after it. Same returns. */
int mbx_committer_submit_exclusive(struct mbx_committer *c, mbx_commit_exclusive_fn fn,
                                   mbx_commit_done_fn done, void *arg);

/* Begins a new epoch on the committer's store from the loop thread: an exclusive job
 * running mbx_store_begin_epoch (server/store.h), after every job submitted before
 * it, so the epoch-start record follows everything already queued. done gets the
 * status and the epoch's first lsn. The record is not announced through on_commit
 * (exclusive jobs never are): a replication source ships it with its next pump, at
 * most a quarter of a heartbeat later. Same returns as submit. */
int mbx_committer_begin_epoch(struct mbx_committer *c, uint64_t epoch, mbx_commit_done_fn done,
                              void *arg);

/* Sets the callback told of each new durable log record (the replication source
 * streams it at once). One per committer; NULL to clear. Loop thread. */
void mbx_committer_set_on_commit(struct mbx_committer *c, mbx_commit_notify_fn fn, void *arg);

void mbx_committer_get_stats(struct mbx_committer *c, struct mbx_committer_stats *st);

/* Inside a done callback (loop thread): the wall-clock time (µs) the job's batch
 * became durable — what a push notification reports as its commit time. 0 for an
 * exclusive job and outside done callbacks. */
int64_t mbx_committer_done_time_us(void);

/* Refuses new jobs, lets the writer commit everything queued, joins it, calls the
 * remaining done callbacks (from inside this call), and sets *c to NULL. Blocks the
 * loop for at most the last batch: meant for shutdown. The memory is released by a
 * uv_close callback, so run the loop afterwards. */
void mbx_committer_stop(struct mbx_committer **c);

#endif

/* cache_sync_int.h — the syncer's state, shared by cache_sync.c (passes) and
 * cache_watch.c (the continuous mode). Not installed. */
#ifndef MBX_CACHE_SYNC_INT_H
#define MBX_CACHE_SYNC_INT_H

#include <pthread.h>

#include "cache_int.h"

/* One folder of a round: download (unless hidden: deleted here, delete queued) and
 * push the queued changes of its items (seqs, in order). */
struct fstats {
  uint64_t added, changed, deleted, pushed;
};

struct mbxc__task {
  uint64_t folder;
  bool download;
  char path[256];
  uint64_t *seqs;
  size_t nseqs;
  /* what it did (written once by its worker, read after the workers joined) */
  bool ran, gone;
  int rc;
  int64_t end_us;
  struct fstats st;
  char msg[256];
};

struct mbxc_cache_syncer {
  mbxc_cache *c;
  struct mbxc_options o;            /* strings below are the syncer's copies */
  char *servers, *ca, *cert, *key, *password;
  unsigned threads;
  uint32_t max_changes;
  bool bodies_all;
  mbxc_cache_progress_cb progress;
  void *progress_arg;
  int lock_fd;                      /* flock'd DIR/sync.lock */
  pthread_mutex_t mu;               /* progress calls, the summary, the task list */
  bool mu_ok;
  mbxc_conn *conns[MBXC_CACHE_MAX_THREADS]; /* conns[i] belongs to worker i */
  /* the pass in progress */
  Mbx__CacheSyncSummary sum;
  uint64_t round_conflicts;
  struct mbxc__task *tasks;
  size_t ntasks, next_task;
  uint32_t folders_done;
  int conn_err;                     /* first connection failure of the round */
  int task_err;                     /* first other failure of the round */
  uint64_t last_used_us;            /* end of the last pass (monotonic) */
  bool reopen;                      /* (mu) the next pass opens fresh connections */
  char conn_msg[512];               /* why the server could not be used */
};

/* Calls the progress callback (serialised). */
void mbxc__sync_emit(struct mbxc_cache_syncer *s, struct mbxc_cache_progress *p);
/* Whether rc means the server could not be used (connect again later). */
bool mbxc__sync_conn_failure(int rc);

#endif

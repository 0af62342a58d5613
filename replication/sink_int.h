/* sink_int.h — the passive side's internals shared by replication/sink.c (pull,
 * receive, replay, ack), replication/seed.c (seeding: receiving and serving) and
 * server/handler_copy.c (operator actions on a copy). Loop thread only. */
#ifndef MBX_SINK_INT_H
#define MBX_SINK_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "parts.h"
#include "repl.h"
#include "store.h"

struct mbx_stream;
struct mbx_tls_ctx;
struct mbx_repl_seed_rx;
struct mbx_repl_rxlog;
struct sink_rx_job;

#define MBX_REPL_LAT_RING 10000       /* receipt latencies kept for p50/p99 */

/* Receipt latency (commit on the active → durable receipt here) of the last
 * MBX_REPL_LAT_RING records: a fixed ring, percentiles computed on demand. */
struct mbx_repl_lat {
  uint32_t us[MBX_REPL_LAT_RING];     /* saturates at ~71 minutes */
  uint32_t next, count;
};
void mbx_repl_lat_add(struct mbx_repl_lat *l, int64_t lat_us);
/* p50/p99 of what the ring holds (0 when empty). */
void mbx_repl_lat_percentiles(const struct mbx_repl_lat *l, uint64_t *p50_r, uint64_t *p99_r);

/* Outcome of an operator action on a copy: status 0 or MBX_E…, msg one line (may be
 * NULL), both borrowed for the call. */
typedef void (*mbx_repl_done_fn)(int status, const char *msg, void *arg);
/* Reseed progress: called at most every 250 ms while seeding and once with
 * finished = true (status: the seed's outcome). */
typedef void (*mbx_repl_progress_fn)(uint64_t bytes_done, uint64_t bytes_total, bool finished,
                                     int status, uint64_t snapshot_lsn, void *arg);

struct mbx_repl_sink {
  struct mbx_node *node;
  struct mbx_db *db;
  struct mbx_tls_ctx *tls;            /* client context with the node certificate */
  struct mbx_store_copy_meta meta;    /* cached; persisted through the committer */
  /* pull connection */
  struct mbx_stream *stream;          /* NULL while disconnected */
  uint64_t pull_id;
  bool ready;                         /* its TLS handshake is done: what is sent now goes out */
  bool report_failure;                /* failed before it was ready: ack once it is, then close */
  bool got_batch;                     /* a batch or heartbeat arrived on this connection */
  bool was_healthy;                   /* ever got a batch: a disconnect is DisconnectedAndHealthy */
  bool just_seeded;                   /* no batch yet since a seed was installed */
  bool want_connect;                  /* connect once the jobs in flight are done */
  uint32_t backoff_ms;
  uint64_t active_last_lsn;
  struct mbx_repl_part_rx part;       /* a record arriving in parts (dropped on disconnect) */
  int64_t last_contact_us;
  char reason[256];                   /* last transient problem (disconnect, refusal) */
  /* receive log (rxlog.c): batches are durable there before they are acknowledged */
  struct mbx_repl_rxlog *rx;
  int64_t rx_time_us;                 /* time of the last record durable in it */
  /* committer jobs */
  uint32_t jobs;                      /* rxlog appends and exclusive jobs in flight (the sink
                                       * lives until 0) */
  size_t queued_bytes;                /* received bytes not yet taken by the store */
  struct sink_rx_job *ingest, *ingest_tail; /* durable in the rxlog, waiting for the store */
  bool ingesting;                     /* a store-taking job is in flight */
  bool paused;                        /* pull stream paused: too much waiting */
  bool replaying;                     /* a replay job is in flight */
  mbx_repl_done_fn playdown_cb;       /* play-down waiting for its replay job */
  void *playdown_arg;
  /* receipt latency */
  struct mbx_repl_lat lat;
  uint64_t p50_us, p99_us;            /* refreshed by the tick */
  /* timers */
  uv_timer_t retry;                   /* reconnect backoff */
  uv_timer_t tick;                    /* lagged replay, periodic ack, percentiles */
  int handles_open;
  uint32_t ticks;
  bool stopping;
  char follow_node[64];               /* a switchover named a new active: re-point there */
  /* seeding (seed.c) */
  struct mbx_repl_seed_rx *seed;      /* receiving a seed now */
  uint32_t serving;                   /* seeds this copy is streaming to other nodes */
  char serving_node[64];              /* the newest seed's target (acks hold the log for it) */
  uint64_t serving_from_lsn;          /* its snapshot holds every record up to here */
  uint64_t seed_done, seed_total;
  mbx_repl_progress_fn progress_cb;   /* an operator's reseed waiting for progress */
  void *progress_arg;
};

/* ---- sink.c -------------------------------------------------------------------- */

/* Status name of the copy now ("Healthy", "Seeding", …). */
const char *mbx_repl_sink_status_name(const struct mbx_repl_sink *k);
/* Persists k->meta through the committer (exclusive job); done may be NULL. */
int mbx_repl_sink_save_meta(struct mbx_repl_sink *k, mbx_repl_done_fn done, void *arg);
/* Connects and pulls if nothing prevents it (suspended, failed, seeding, stopping). */
void mbx_repl_sink_kick(struct mbx_repl_sink *k);
/* Drops the pull connection (no reconnect is scheduled by this call). */
void mbx_repl_sink_disconnect(struct mbx_repl_sink *k);
/* A switchover named node as the new active: re-points the copy there (its meta,
 * then a new sink), from the retry timer, not from inside a stream callback. */
void mbx_repl_sink_follow(struct mbx_repl_sink *k, const char *node);
/* Frees k if it was stopped and nothing refers to it any more. */
void mbx_repl_sink_maybe_free(struct mbx_repl_sink *k);

/* Operator actions on db's passive copy here. 0 (done called later, exactly once)
 * or a negative error (done never called): MBX_ENOTFOUND no sink, MBX_EBUSY. */
int mbx_repl_sink_suspend(struct mbx_db *db, const char *comment, mbx_repl_done_fn done,
                          void *arg);
int mbx_repl_sink_resume(struct mbx_db *db, mbx_repl_done_fn done, void *arg);
int mbx_repl_sink_play_down(struct mbx_db *db, mbx_repl_done_fn done, void *arg);
/* Reseeds from source (NULL/"" = the meta's seed source or the active); progress is
 * called until finished. */
int mbx_repl_sink_reseed(struct mbx_db *db, const char *source, mbx_repl_progress_fn progress,
                         void *arg);

/* ---- seed.c -------------------------------------------------------------------- */

/* Receiving: starts seeding k's copy from source_node (the pull must be stopped and
 * no job in flight). On the end calls mbx_repl_sink_seed_done. 0 or MBX_E…. */
int mbx_repl_seed_start(struct mbx_repl_sink *k, const char *source_node);
/* Abandons a seed being received (the old copy stays); the seed dir is deleted. */
void mbx_repl_seed_abort(struct mbx_repl_sink *k);
/* sink.c: the seed ended (status 0: the new copy is installed and open). */
void mbx_repl_sink_seed_done(struct mbx_repl_sink *k, int status, const char *reason,
                             uint64_t snapshot_lsn);

/* Serving: answers a SeedReq (ROLE_NODE) on r with a stream of SeedChunks.
 * Returns what a handler returns (1 pending, or an error already set on r). */
int mbx_repl_seed_serve(struct mbx_req *r, struct mbx_db *db);

/* Removes the directory dir and everything in it (one level of files, like an LMDB
 * environment). 0 or MBX_EIO. Blocking: call it off the loop thread. */
int mbx_repl_rmdir(const char *dir);
/* Installs a completed seed: dir/NAME → dir/NAME.old, dir/NAME.seed.tmp → dir/NAME
 * (the caller removes NAME.old once the new copy is open). On failure the old copy is
 * put back. Blocking. 0, MBX_ENOTFOUND (no seed dir), MBX_EIO. */
int mbx_repl_seed_swap_dirs(const char *dir, const char *name);

/* At node start, before the databases are opened: undoes a seed install cut by a
 * crash (NAME.old without NAME is renamed back) and removes NAME.seed.tmp dirs.
 * 0 or MBX_EIO. Blocking (start only). */
int mbx_repl_seed_recover(const char *dir);

#endif

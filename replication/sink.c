/* sink.c — the passive side of log shipping: one sink per passive copy pulls the
 * log from the active's node (ReplPullReq on a TLS connection with the node
 * certificate), makes each batch durable in the receive log (rxlog.c) and
 * acknowledges it, then hands the batches received meanwhile to the database's
 * committer as one exclusive job that takes them into the store (and, without lag,
 * replays them), replays a lagged copy's records when their time comes, and
 * reconnects with backoff. A record too large for one batch arrives in parts and is
 * reassembled (parts.h) up to repl_record_max_bytes; a larger one stops the copy
 * (Failed, with the record's size and the limit in the reason) instead of being
 * pulled again forever.
 *
 * States (mbx_repl_sink_status_name):
 *   Initializing            starting, or connected but no batch yet
 *   Healthy                 connected, copy queue ≤ 1000 records
 *   Resynchronizing         connected, catching up a larger copy queue
 *   DisconnectedAndHealthy  was healthy, connection lost; reconnecting
 *   Seeding                 receiving a seed (seed.c)
 *   SeedingSource           streaming a seed of this copy to another node
 *   Suspended               operator suspended it (comment shown)
 *   Diverged                its log is not a prefix of the active's (the active refused
 *                           the pull and named the lsn where the histories split): it
 *                           is reseeded at once, or (auto_reseed_diverged = no) waits
 *                           for an operator's reseed
 *   Failed                  a record failed verification or is larger than this copy
 *                           accepts, or a seed failed (reason)
 *   FailedAndSuspended      both */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "conn.h"
#include "log.h"
#include "logrec.h"
#include "mbx_error.h"
#include "node.h"
#include "nodeconf.h"
#include "peer.h"
#include "rxlog.h"
#include "sink_int.h"
#include "stream.h"
#include "tls.h"

#define SINK_BACKOFF_MIN_MS 100
#define SINK_BACKOFF_MAX_MS 2000
#define SINK_TICK_MS 250
#define SINK_IDLE_TIMEOUT_MS 3000         /* 30 missed heartbeats: the connection is dead */
#define SINK_QUEUE_PAUSE_BYTES (16u << 20)
#define SINK_RESYNC_RECORDS 1000
#define SINK_REPLAY_STEP 1000             /* records per mbx_store_replay call */
#define SINK_REPLAY_JOB_MAX 100000        /* records per replay job (the next tick continues) */
#define SINK_PROBES_MAX 96                /* the handshake's probes of our log (32 dense, then doubling) */

static const char *sink_me(const struct mbx_repl_sink *k) { return k->node->conf->node_name; }

/* ---- receipt latency ring ------------------------------------------------------ */

void mbx_repl_lat_add(struct mbx_repl_lat *l, int64_t lat_us)
{
  if (lat_us < 0)
    lat_us = 0;
  l->us[l->next] = lat_us > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)lat_us;
  l->next = (l->next + 1) % MBX_REPL_LAT_RING;
  if (l->count < MBX_REPL_LAT_RING)
    l->count++;
}

static int lat_cmp(const void *a, const void *b)
{
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

void mbx_repl_lat_percentiles(const struct mbx_repl_lat *l, uint64_t *p50_r, uint64_t *p99_r)
{
  *p50_r = *p99_r = 0;
  if (l->count == 0)
    return;
  uint32_t *v = malloc(l->count * sizeof(*v));
  if (!v)
    return;
  memcpy(v, l->us, l->count * sizeof(*v));   /* the ring is full or starts at 0 */
  qsort(v, l->count, sizeof(*v), lat_cmp);
  *p50_r = v[(l->count - 1) * 50 / 100];
  *p99_r = v[(l->count - 1) * 99 / 100];
  free(v);
}

/* ---- status ------------------------------------------------------------------------ */

const char *mbx_repl_sink_status_name(const struct mbx_repl_sink *k)
{
  if (k->meta.suspended)
    return k->meta.failed ? "FailedAndSuspended" : "Suspended";
  if (k->meta.failed)
    return "Failed";
  if (k->seed)
    return "Seeding";
  if (k->serving)
    return "SeedingSource";
  if (k->meta.diverged)
    return "Diverged";               /* never Healthy: its history is not the active's */
  if (k->meta.needs_reseed)
    return "Failed";
  if (!k->stream || !k->got_batch)
    return k->was_healthy ? "DisconnectedAndHealthy" : "Initializing";
  struct mbx_store_repl_pos pos;
  mbx_store_get_repl_pos(k->db->store, &pos);
  if (k->active_last_lsn > pos.received_lsn + SINK_RESYNC_RECORDS)
    return "Resynchronizing";
  return "Healthy";
}

/* The store's positions, with received taken from the receive log when it is ahead
 * (records durable there, not yet in the store). */
static void sink_pos(const struct mbx_repl_sink *k, struct mbx_store_repl_pos *pos)
{
  mbx_store_get_repl_pos(k->db->store, pos);
  uint64_t rx = mbx_repl_rxlog_last_lsn(k->rx);
  if (rx > pos->received_lsn) {
    pos->received_lsn = rx;
    if (k->rx_time_us)
      pos->received_time_us = k->rx_time_us;
  }
}

static const char *sink_reason(const struct mbx_repl_sink *k)
{
  if (k->meta.failed || k->meta.needs_reseed || k->meta.diverged)
    return k->meta.reason;
  return k->reason;
}

int mbx_repl_sink_status(struct mbx_req *r, struct mbx_db *db, Mbx__CopyStatus **st_r)
{
  struct mbx_repl_sink *k = db->sink;
  Mbx__CopyStatus *st = mbx_arena_pbnew(&r->arena, &mbx__copy_status__descriptor);
  if (!st)
    return MBX_ENOMEM;
  st->db = db->name;
  st->node = (char *)r->conn->node->conf->node_name;
  st->role = "passive";
  if (k && k->meta.active_node[0])
    st->active_node = mbx_arena_strdup(&r->arena, k->meta.active_node);
  if (!k || !db->store) {
    st->status = db->store ? "Initializing" : "Seeding";
    *st_r = st;
    return 0;
  }
  st->status = (char *)mbx_repl_sink_status_name(k);
  const char *why = sink_reason(k);
  if (why[0] && strcmp(st->status, "Healthy") != 0)
    st->reason = mbx_arena_strdup(&r->arena, why);
  if (k->meta.comment[0])
    st->comment = mbx_arena_strdup(&r->arena, k->meta.comment);
  if (k->meta.diverged) {
    st->has_diverged_lsn = 1;
    st->diverged_lsn = k->meta.diverged_lsn;
  }
  struct mbx_store_repl_pos pos;
  sink_pos(k, &pos);
  uint64_t rq_records = 0, rq_bytes = 0;
  mbx_store_replay_queue(db->store, &rq_records, &rq_bytes);
  st->has_lag_s = 1;
  st->lag_s = k->meta.lag_s;
  st->has_copy_queue_records = 1;
  st->copy_queue_records =
    k->active_last_lsn > pos.received_lsn ? k->active_last_lsn - pos.received_lsn : 0;
  st->has_replay_queue_records = 1;
  st->replay_queue_records = rq_records;
  st->has_received_lsn = st->has_replayed_lsn = st->has_epoch = 1;
  st->received_lsn = pos.received_lsn;
  st->replayed_lsn = pos.replayed_lsn;
  st->epoch = pos.epoch;
  st->has_last_received_time_us = st->has_last_replayed_time_us = 1;
  st->last_received_time_us = pos.received_time_us;
  st->last_replayed_time_us = pos.replayed_time_us;
  if (k->seed) {
    st->has_seed_bytes_done = st->has_seed_bytes_total = 1;
    st->seed_bytes_done = k->seed_done;
    st->seed_bytes_total = k->seed_total;
  }
  if (k->last_contact_us) {
    st->has_last_contact_us = 1;
    st->last_contact_us = k->last_contact_us;
  }
  st->has_receipt_p50_us = st->has_receipt_p99_us = 1;
  st->receipt_p50_us = k->p50_us;
  st->receipt_p99_us = k->p99_us;
  *st_r = st;
  return 0;
}

/* ---- acks -------------------------------------------------------------------------- */

static void sink_send_ack(struct mbx_repl_sink *k)
{
  if (!k->stream || !k->db->store)
    return;
  struct mbx_store_repl_pos pos;
  sink_pos(k, &pos);
  Mbx__ReplAckReq a = MBX__REPL_ACK_REQ__INIT;
  a.db = k->db->name;
  a.node = (char *)sink_me(k);
  a.has_received_lsn = a.has_replayed_lsn = 1;
  a.received_lsn = pos.received_lsn;
  a.replayed_lsn = pos.replayed_lsn;
  a.has_last_received_time_us = a.has_last_replayed_time_us = 1;
  a.last_received_time_us = pos.received_time_us;
  a.last_replayed_time_us = pos.replayed_time_us;
  a.status = (char *)mbx_repl_sink_status_name(k);
  const char *why = sink_reason(k);
  if (why[0])
    a.reason = (char *)why;
  if (k->meta.comment[0])
    a.comment = k->meta.comment;
  a.has_lag_s = 1;
  a.lag_s = k->meta.lag_s;
  a.has_receipt_p50_us = a.has_receipt_p99_us = 1;
  a.receipt_p50_us = k->p50_us;
  a.receipt_p99_us = k->p99_us;
  if (k->serving && k->serving_node[0]) {
    a.seeding_node = k->serving_node;
    a.has_seeding_from_lsn = 1;
    a.seeding_from_lsn = k->serving_from_lsn;
  }
  Mbx__Request rq = MBX__REQUEST__INIT;
  rq.id = 0;                          /* no response */
  rq.body_case = MBX__REQUEST__BODY_REPL_ACK;
  rq.repl_ack = &a;
  int rc = mbx_stream_send_pb(k->stream, &rq.base);
  if (rc < 0 && rc != MBX_ECLOSED)
    mbx_warning("db %s: cannot queue an ack to %s: %s", k->db->name, k->meta.active_node,
                mbx_strerror(rc));
}

/* ---- committer jobs ---------------------------------------------------------------- */

/* One received batch: appended to the receive log (acknowledged once durable there),
 * then taken into the store with the batches received meanwhile. A batch counts as
 * one of k->jobs from arrival until it is freed. */
struct sink_rx_job {
  struct sink_rx_job *next;
  struct mbx_repl_sink *k;
  Mbx__Response *resp;                /* owns the records (protobuf-c default allocator)… */
  uint8_t *whole;                     /* …or one record reassembled from its parts… */
  int64_t whole_commit_us;            /*    (its commit time on the active, 0: unknown) */
  struct mbx_repl_rxlog_recovered rec; /* …or, at startup, the receive log's leftovers */
  const uint8_t **recs;
  size_t *lens;
  size_t n, bytes;
};

/* Several durable batches taken into the store by one exclusive committer job. */
struct sink_take_job {
  struct mbx_repl_sink *k;
  struct sink_rx_job *batches;
  const uint8_t **recs;
  size_t *lens;
  size_t n;
  int64_t replay_before_us;
  uint64_t bad_lsn, last_lsn;
};

#define SINK_TAKE_RECORDS_MAX 20000       /* records per store-taking job */

static int64_t rec_time_us(const uint8_t *rec, size_t len)
{
  if (len < MBX_LOGREC_HEADER_BYTES)
    return 0;
  uint64_t v = 0;
  for (int i = 24; i < 32; i++)
    v = (v << 8) | rec[i];
  return (int64_t)v;
}

static void sink_fail(struct mbx_repl_sink *k, const char *fmt, ...)
  __attribute__((format(printf, 2, 3)));

/* A record failed its checks (or could not be stored): never apply anything more
 * until an operator resumes or reseeds. */
static void sink_fail(struct mbx_repl_sink *k, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(k->meta.reason, sizeof(k->meta.reason), fmt, ap);
  va_end(ap);
  k->meta.failed = true;
  mbx_error("db %s: copy failed: %s", k->db->name, k->meta.reason);
  if (k->stream && !k->ready) {
    /* Closing now would drop the ack with the handshake: the active would go on
     * showing the copy as it last heard of it. Tell it once connected (sink_on_ready). */
    k->report_failure = true;
  } else {
    sink_send_ack(k);                 /* tell the active before going quiet */
    mbx_repl_sink_disconnect(k);
  }
  mbx_repl_sink_save_meta(k, NULL, NULL);
}

static void sink_job_finished(struct mbx_repl_sink *k)
{
  k->jobs--;
  if (k->stopping) {
    mbx_repl_sink_maybe_free(k);
    return;
  }
  if (k->jobs == 0 && k->want_connect) {
    k->want_connect = false;
    mbx_repl_sink_kick(k);
  }
}

/* Frees a batch once the store has it (or it was refused) and lets the pull go on. */
static void sink_batch_free(struct sink_rx_job *j)
{
  struct mbx_repl_sink *k = j->k;
  k->queued_bytes -= j->bytes;
  if (k->paused && k->stream && k->queued_bytes < SINK_QUEUE_PAUSE_BYTES / 2) {
    k->paused = false;
    mbx_stream_pause(k->stream, false);
  }
  if (j->resp)
    mbx__response__free_unpacked(j->resp, NULL);
  else if (j->whole)
    free(j->whole);
  else
    mbx_repl_rxlog_recovered_free(&j->rec);
  if (j->resp || j->whole) {
    free(j->recs);
    free(j->lens);
  }
  free(j);
  sink_job_finished(k);
}

static int sink_take_run(struct mbx_store *s, void *arg)
{
  struct sink_take_job *t = arg;
  return mbx_store_receive(s, t->recs, t->lens, t->n, t->replay_before_us, &t->bad_lsn);
}

static void sink_take_kick(struct mbx_repl_sink *k);

static void sink_take_done(int status, uint64_t lsn, void *arg)
{
  (void)lsn;
  struct sink_take_job *t = arg;
  struct mbx_repl_sink *k = t->k;
  k->ingesting = false;
  if (!k->stopping) {
    if (status == 0) {
      mbx_repl_rxlog_taken(k->rx, t->last_lsn);
      sink_send_ack(k);               /* replayed moved */
    } else if (status == MBX_ECORRUPT) {
      if (!k->meta.failed)
        sink_fail(k, "record %llu failed verification (CRC, LSN continuity or epoch); "
                     "nothing of it was applied",
                  (unsigned long long)t->bad_lsn);
    } else if (status != MBX_ESHUTDOWN && !k->meta.failed) {
      sink_fail(k, "cannot store received records: %s", mbx_strerror(status));
    }
  }
  for (struct sink_rx_job *j = t->batches, *next; j; j = next) {
    next = j->next;
    sink_batch_free(j);
  }
  free(t->recs);
  free(t->lens);
  free(t);
  if (!k->stopping)
    sink_take_kick(k);
  sink_job_finished(k);
}

/* Hands the durable batches waiting (up to SINK_TAKE_RECORDS_MAX records) to the
 * committer as one job, unless one is in flight. */
static void sink_take_kick(struct mbx_repl_sink *k)
{
  if (k->ingesting || !k->ingest || k->stopping)
    return;
  if (k->meta.failed || !k->db->committer) {
    /* Nothing more is taken: the records stay in the receive log, and a resume
     * pulls again from what the store has. */
    while (k->ingest) {
      struct sink_rx_job *j = k->ingest;
      k->ingest = j->next;
      sink_batch_free(j);
    }
    k->ingest_tail = NULL;
    return;
  }
  size_t n = 0;
  struct sink_rx_job *last = k->ingest;
  for (struct sink_rx_job *j = k->ingest; j; j = j->next) {
    if (n && n + j->n > SINK_TAKE_RECORDS_MAX)
      break;
    n += j->n;
    last = j;
  }
  struct sink_take_job *t = calloc(1, sizeof(*t));
  if (t) {
    t->recs = malloc(n * sizeof(*t->recs));
    t->lens = malloc(n * sizeof(*t->lens));
  }
  if (!t || !t->recs || !t->lens) {
    if (t) {
      free(t->recs);
      free(t->lens);
    }
    free(t);
    if (!k->meta.failed)
      sink_fail(k, "out of memory taking received records into the store");
    return;
  }
  t->k = k;
  t->batches = k->ingest;
  k->ingest = last->next;
  if (!k->ingest)
    k->ingest_tail = NULL;
  last->next = NULL;
  for (struct sink_rx_job *j = t->batches; j; j = j->next) {
    memcpy(t->recs + t->n, j->recs, j->n * sizeof(*t->recs));
    memcpy(t->lens + t->n, j->lens, j->n * sizeof(*t->lens));
    t->n += j->n;
  }
  t->last_lsn = 0;
  struct mbx_logrec rec;
  if (t->n && mbx_logrec_decode(t->recs[t->n - 1], t->lens[t->n - 1], &rec) == 0)
    t->last_lsn = rec.lsn;
  t->replay_before_us =
    k->meta.lag_s ? mbx_now_us() - (int64_t)k->meta.lag_s * 1000000 : INT64_MAX;
  int rc = mbx_committer_submit_exclusive(k->db->committer, sink_take_run, sink_take_done, t);
  if (rc < 0) {
    /* Put the batches back; the next durable batch or tick tries again. */
    last->next = k->ingest;
    k->ingest = t->batches;
    if (!k->ingest_tail)
      k->ingest_tail = last;
    free(t->recs);
    free(t->lens);
    free(t);
    if (rc != MBX_ESHUTDOWN)
      mbx_warning("db %s: cannot queue received records for the store: %s", k->db->name,
                  mbx_strerror(rc));
    return;
  }
  k->jobs++;
  k->ingesting = true;
}

static void sink_take_queue(struct mbx_repl_sink *k, struct sink_rx_job *j)
{
  j->next = NULL;
  if (k->ingest_tail)
    k->ingest_tail->next = j;
  else
    k->ingest = j;
  k->ingest_tail = j;
  sink_take_kick(k);
}

/* The receive log has the batch durably (or refused it). */
static void sink_rx_durable(int status, uint64_t last_lsn, int64_t durable_us, uint64_t bad_lsn,
                            void *arg)
{
  (void)last_lsn;
  struct sink_rx_job *j = arg;
  struct mbx_repl_sink *k = j->k;
  if (k->stopping || status < 0) {
    if (!k->stopping && !k->meta.failed) {
      if (status == MBX_ECORRUPT)
        sink_fail(k, "record %llu failed verification (CRC, LSN continuity or epoch); "
                     "nothing of it was applied",
                  (unsigned long long)bad_lsn);
      else if (status != MBX_ESHUTDOWN)
        sink_fail(k, "cannot write received records to the receive log: %s",
                  mbx_strerror(status));
    }
    sink_batch_free(j);
    return;
  }
  /* Commit on the active → durable here; a record the active sent without its
   * commit time (catching up from its log) counts from its record time. */
  const Mbx__ReplBatch *b = j->resp ? j->resp->repl_batch : NULL;
  for (size_t i = 0; i < j->n; i++) {
    int64_t from = b && i < b->n_commit_time_us && b->commit_time_us[i] > 0
                     ? b->commit_time_us[i]
                   : !b && j->whole_commit_us > 0 ? j->whole_commit_us
                                                  : rec_time_us(j->recs[i], j->lens[i]);
    mbx_repl_lat_add(&k->lat, durable_us - from);
  }
  if (j->n)
    k->rx_time_us = rec_time_us(j->recs[j->n - 1], j->lens[j->n - 1]);
  sink_send_ack(k);                   /* received moved */
  sink_take_queue(k, j);
}

struct sink_meta_job {
  struct mbx_repl_sink *k;
  struct mbx_store_copy_meta meta;
  mbx_repl_done_fn done;
  void *arg;
};

static int sink_meta_run(struct mbx_store *s, void *arg)
{
  struct sink_meta_job *j = arg;
  return mbx_store_set_copy_meta(s, &j->meta);
}

static void sink_meta_done(int status, uint64_t lsn, void *arg)
{
  (void)lsn;
  struct sink_meta_job *j = arg;
  if (status < 0)
    mbx_error("db %s: cannot save the copy's state: %s", j->k->db->name, mbx_strerror(status));
  if (j->done)
    j->done(status, status < 0 ? "cannot save the copy's state" : NULL, j->arg);
  struct mbx_repl_sink *k = j->k;
  free(j);
  sink_job_finished(k);
}

int mbx_repl_sink_save_meta(struct mbx_repl_sink *k, mbx_repl_done_fn done, void *arg)
{
  if (!k->db->committer)
    return MBX_ESHUTDOWN;
  struct sink_meta_job *j = calloc(1, sizeof(*j));
  if (!j)
    return MBX_ENOMEM;
  j->k = k;
  j->meta = k->meta;
  j->done = done;
  j->arg = arg;
  int rc = mbx_committer_submit_exclusive(k->db->committer, sink_meta_run, sink_meta_done, j);
  if (rc < 0) {
    mbx_error("db %s: cannot save the copy's state: %s", k->db->name, mbx_strerror(rc));
    free(j);
    return rc;
  }
  k->jobs++;
  return 0;
}

/* Replays due records of a lagged copy (or everything, for a play-down). */
struct sink_replay_job {
  struct mbx_repl_sink *k;
  int64_t before_us;
  uint32_t replayed;
  bool playdown;
};

static int sink_replay_run(struct mbx_store *s, void *arg)
{
  struct sink_replay_job *j = arg;
  uint32_t n = 0;
  do {
    int rc = mbx_store_replay(s, j->before_us, SINK_REPLAY_STEP, &n);
    if (rc < 0)
      return rc;
    j->replayed += n;
  } while (n == SINK_REPLAY_STEP && (j->playdown || j->replayed < SINK_REPLAY_JOB_MAX));
  return 0;
}

static void sink_replay_done(int status, uint64_t lsn, void *arg)
{
  (void)lsn;
  struct sink_replay_job *j = arg;
  struct mbx_repl_sink *k = j->k;
  k->replaying = false;
  if (status < 0 && status != MBX_ESHUTDOWN) {
    /* The next received record cannot be applied (damaged since it was received,
     * or the store failed): stop here rather than retry it forever. */
    struct mbx_store_repl_pos pos;
    mbx_store_get_repl_pos(k->db->store, &pos);
    if (!k->stopping && !k->meta.failed && k->meta.needs_reseed)
      /* A reseed was asked for meanwhile: it replaces this store; failing the copy
       * now would keep the seed from starting. */
      mbx_info("db %s: replay of received record %llu failed (%s); a reseed replaces the "
               "copy", k->db->name, (unsigned long long)pos.replayed_lsn + 1,
               mbx_strerror(status));
    else if (!k->stopping && !k->meta.failed)
      sink_fail(k, "replay of received record %llu failed: %s; nothing of it was applied",
                (unsigned long long)pos.replayed_lsn + 1, mbx_strerror(status));
  } else if (j->replayed)
    mbx_debug("db %s: replayed %u records%s", k->db->name, j->replayed,
              j->playdown ? " (play-down)" : "");
  if (j->playdown && k->playdown_cb) {
    mbx_repl_done_fn cb = k->playdown_cb;
    k->playdown_cb = NULL;
    cb(status, status < 0 ? mbx_strerror(status) : NULL, k->playdown_arg);
  }
  if (!k->stopping && status == 0 && j->replayed)
    sink_send_ack(k);
  free(j);
  sink_job_finished(k);
}

static int sink_submit_replay(struct mbx_repl_sink *k, int64_t before_us, bool playdown)
{
  if (!k->db->committer)
    return MBX_ESHUTDOWN;
  struct sink_replay_job *j = calloc(1, sizeof(*j));
  if (!j)
    return MBX_ENOMEM;
  j->k = k;
  j->before_us = before_us;
  j->playdown = playdown;
  int rc = mbx_committer_submit_exclusive(k->db->committer, sink_replay_run, sink_replay_done, j);
  if (rc < 0) {
    free(j);
    return rc;
  }
  k->jobs++;
  k->replaying = true;
  return 0;
}

/* ---- pull connection --------------------------------------------------------------- */

static void sink_on_retry(uv_timer_t *t);

static void sink_schedule_retry(struct mbx_repl_sink *k)
{
  if (k->stopping)
    return;
  uv_timer_start(&k->retry, sink_on_retry, k->follow_node[0] ? 0 : k->backoff_ms, 0);
  k->backoff_ms = k->backoff_ms * 2 > SINK_BACKOFF_MAX_MS ? SINK_BACKOFF_MAX_MS : k->backoff_ms * 2;
}

/* The active refused our history (EDIVERGED): Diverged, with the split lsn; reseeded
 * from the active at once unless auto_reseed_diverged is off (then an operator's
 * reseed, or a resume that tries again, ends it). */
static void sink_diverged(struct mbx_repl_sink *k, const Mbx__Error *e)
{
  bool auto_reseed = k->node->conf->auto_reseed_diverged;
  k->meta.diverged = true;
  k->meta.diverged_lsn = e->has_lsn ? e->lsn : 0;
  k->was_healthy = false;
  snprintf(k->meta.reason, sizeof(k->meta.reason),
           "diverged from %s: the histories split at lsn %llu; %s", k->meta.active_node,
           (unsigned long long)k->meta.diverged_lsn,
           auto_reseed ? "reseeding from the active"
                       : "waiting for an operator's reseed (auto_reseed_diverged = no)");
  if (auto_reseed) {
    k->meta.needs_reseed = true;
    k->meta.seed_source[0] = 0;
  }
  mbx_warning("db %s: %s (%s)", k->db->name, k->meta.reason,
              e->message ? e->message : "no detail");
  mbx_repl_sink_disconnect(k);
  mbx_repl_sink_save_meta(k, NULL, NULL);
  if (auto_reseed)
    mbx_repl_sink_kick(k);            /* seeds (once the jobs are done) */
}

static void sink_on_error_resp(struct mbx_repl_sink *k, const Mbx__Error *e)
{
  int code = mbx_error_from_wire(e->code);
  snprintf(k->reason, sizeof(k->reason), "%s refused the pull: %s", k->meta.active_node,
           e->message ? e->message : mbx_strerror(code));
  if (code == MBX_EDIVERGED) {
    sink_diverged(k, e);
    return;
  }
  if (code == MBX_ENEEDSEED) {
    k->meta.needs_reseed = true;
    k->meta.seed_source[0] = 0;       /* an automatic reseed comes from the active */
    if (k->just_seeded) {
      /* The snapshot was older than the active's log: seeding again the same way
       * would loop. An operator reseeds (from the active by default). */
      k->meta.failed = true;
      snprintf(k->meta.reason, sizeof(k->meta.reason),
               "needs a reseed: the seed just installed is older than what %s still has "
               "in its log", k->meta.active_node);
    } else {
      snprintf(k->meta.reason, sizeof(k->meta.reason),
               "needs a reseed: %s no longer has the log records this copy needs",
               k->meta.active_node);
    }
    mbx_warning("db %s: %s", k->db->name, k->meta.reason);
    mbx_repl_sink_disconnect(k);
    mbx_repl_sink_save_meta(k, NULL, NULL);
    mbx_repl_sink_kick(k);            /* seeds (once the jobs are done) */
    return;
  }
  if (code == MBX_ENOTACTIVE && e->active_node && *e->active_node &&
      strcmp(e->active_node, k->meta.active_node) != 0 && strcmp(e->active_node, sink_me(k)) != 0 &&
      strlen(e->active_node) < sizeof(k->meta.active_node)) {
    /* a switchover: the old active names the new one; follow it (db.c re-points) */
    mbx_notice("db %s: %s is no longer active; following the new active on %s", k->db->name,
               k->meta.active_node, e->active_node);
    mbx_repl_sink_disconnect(k);
    mbx_repl_sink_follow(k, e->active_node);
    return;
  }
  mbx_warning("db %s: %s", k->db->name, k->reason);
  mbx_repl_sink_disconnect(k);
}

/* Gives up the pull connection for now (the reason shows in the status) and tries
 * again after the backoff. */
static void sink_drop_pull(struct mbx_repl_sink *k, const char *why)
{
  snprintf(k->reason, sizeof(k->reason), "%s", why);
  mbx_warning("db %s: %s; reconnecting", k->db->name, why);
  mbx_repl_sink_disconnect(k);
  sink_schedule_retry(k);
}

static struct sink_rx_job *sink_rx_job_new(struct mbx_repl_sink *k, size_t n)
{
  struct sink_rx_job *j = calloc(1, sizeof(*j));
  if (j) {
    j->recs = malloc(n * sizeof(*j->recs));
    j->lens = malloc(n * sizeof(*j->lens));
  }
  if (!j || !j->recs || !j->lens) {
    if (j) {
      free(j->recs);
      free(j->lens);
    }
    free(j);
    return NULL;
  }
  j->k = k;
  j->n = n;
  return j;
}

/* Queues a received batch (its records, resp or whole set) for the receive log; on
 * failure frees it and drops the pull. */
static void sink_rx_submit(struct mbx_repl_sink *k, struct sink_rx_job *j)
{
  int rc = mbx_repl_rxlog_append(k->rx, j->recs, j->lens, j->n, sink_rx_durable, j);
  if (rc < 0) {
    if (j->resp)
      mbx__response__free_unpacked(j->resp, NULL);
    free(j->whole);
    free(j->recs);
    free(j->lens);
    free(j);
    char why[128];
    snprintf(why, sizeof(why), "cannot queue received records: %s", mbx_strerror(rc));
    sink_drop_pull(k, why);
    return;
  }
  k->jobs++;
  k->queued_bytes += j->bytes;
  if (!k->paused && k->queued_bytes > SINK_QUEUE_PAUSE_BYTES) {
    k->paused = true;
    mbx_stream_pause(k->stream, true);
  }
}

/* One part of a record too large for a batch; the last one hands the whole record to
 * the receive log like a batch of one. */
static void sink_on_part(struct mbx_repl_sink *k, Mbx__Response *resp)
{
  const Mbx__ReplBatch *b = resp->repl_batch;
  const Mbx__ReplRecordPart *p = b->part;
  uint64_t cap = k->node->conf->repl_record_max_bytes, lsn = p->lsn, total = p->total_bytes;
  int64_t commit_us = p->has_commit_time_us ? p->commit_time_us : 0;
  uint8_t *rec = NULL;
  size_t len = 0;
  int rc = b->n_records ? MBX_EPROTO : mbx_repl_part_add(&k->part, p, cap, &rec, &len);
  mbx__response__free_unpacked(resp, NULL);
  if (rc == 0)
    return;
  if (rc == MBX_ELIMIT) {
    if (!k->meta.failed)
      sink_fail(k, "record %llu is %llu bytes, more than this copy accepts "
                   "(repl_record_max_bytes = %llu on %s); raise it, restart the node and "
                   "resume the copy",
                (unsigned long long)lsn, (unsigned long long)total, (unsigned long long)cap,
                sink_me(k));
    return;
  }
  if (rc < 0) {
    char why[200];
    snprintf(why, sizeof(why), "%s sent a part of record %llu that does not fit what came "
             "before (%s)", k->meta.active_node, (unsigned long long)lsn,
             rc == MBX_EPROTO ? "out of order" : mbx_strerror(rc));
    sink_drop_pull(k, why);
    return;
  }
  struct sink_rx_job *j = sink_rx_job_new(k, 1);
  if (!j) {
    free(rec);
    sink_drop_pull(k, "out of memory receiving a record");
    return;
  }
  j->whole = rec;
  j->whole_commit_us = commit_us;
  j->recs[0] = rec;
  j->lens[0] = len;
  j->bytes = len;
  sink_rx_submit(k, j);
}

static void sink_on_batch(struct mbx_repl_sink *k, Mbx__Response *resp, size_t frame_len)
{
  Mbx__ReplBatch *b = resp->repl_batch;
  k->last_contact_us = mbx_now_us();
  if (b->has_active_last_lsn)
    k->active_last_lsn = b->active_last_lsn;
  if (!k->got_batch) {
    k->got_batch = k->was_healthy = true;
    k->just_seeded = false;
    k->backoff_ms = SINK_BACKOFF_MIN_MS;
    k->reason[0] = 0;
    mbx_info("db %s: pulling from %s (active last lsn %llu)", k->db->name, k->meta.active_node,
             (unsigned long long)k->active_last_lsn);
  }
  if (b->part && !k->meta.failed) {
    sink_on_part(k, resp);
    return;
  }
  if (b->n_records == 0 || k->meta.failed) {
    mbx__response__free_unpacked(resp, NULL);
    if (k->jobs == 0)
      sink_send_ack(k);               /* answers the heartbeat: the active sees us alive */
    return;
  }
  struct sink_rx_job *j = sink_rx_job_new(k, b->n_records);
  if (!j) {
    mbx__response__free_unpacked(resp, NULL);
    sink_drop_pull(k, "out of memory receiving a batch");
    return;
  }
  j->resp = resp;
  j->bytes = frame_len;
  for (size_t i = 0; i < b->n_records; i++) {
    j->recs[i] = b->records[i].data;
    j->lens[i] = b->records[i].len;
  }
  sink_rx_submit(k, j);
}

static void sink_on_ready(struct mbx_stream *s, void *arg)
{
  struct mbx_repl_sink *k = arg;
  if (!k || k->stream != s)
    return;
  k->ready = true;
  if (!k->report_failure)
    return;
  /* The copy failed while this connection was being made: say so, then go quiet (or,
   * resumed meanwhile, start again with a fresh pull). */
  k->report_failure = false;
  if (k->meta.failed)
    sink_send_ack(k);
  mbx_repl_sink_disconnect(k);
  if (!k->meta.failed)
    mbx_repl_sink_kick(k);
}

static void sink_on_frame(struct mbx_stream *s, const uint8_t *frame, size_t len, void *arg)
{
  (void)s;
  struct mbx_repl_sink *k = arg;
  if (!k || k->stream != s)
    return;
  Mbx__Response *resp = mbx__response__unpack(NULL, len, frame);
  if (!resp || resp->id != k->pull_id) {
    mbx_warning("db %s: %s sent %s on the pull connection: reconnecting", k->db->name,
                k->meta.active_node, resp ? "an answer to another request" : "an invalid frame");
    if (resp)
      mbx__response__free_unpacked(resp, NULL);
    mbx_repl_sink_disconnect(k);
    sink_schedule_retry(k);
    return;
  }
  if (resp->error) {
    sink_on_error_resp(k, resp->error);
    mbx__response__free_unpacked(resp, NULL);
    if (!k->meta.needs_reseed && !k->meta.diverged)
      sink_schedule_retry(k);
    return;
  }
  if (resp->body_case != MBX__RESPONSE__BODY_REPL_BATCH) {
    mbx__response__free_unpacked(resp, NULL);
    return;
  }
  sink_on_batch(k, resp, len);
}

static void sink_on_close(struct mbx_stream *s, int status, void *arg)
{
  struct mbx_repl_sink *k = arg;
  if (!k)
    return;                           /* detached by mbx_repl_sink_disconnect */
  (void)s;
  k->stream = NULL;
  k->paused = false;
  k->ready = k->report_failure = false;
  mbx_repl_part_reset(&k->part);      /* a new pull sends the record again from its start */
  if (status == MBX_EPERM)
    snprintf(k->reason, sizeof(k->reason), "the node at %s is not %s (its certificate names "
             "another node): check peer.%s", mbx_peer_addr_or(k->node, k->meta.active_node),
             k->meta.active_node, k->meta.active_node);
  else if (status < 0 && !k->reason[0])
    snprintf(k->reason, sizeof(k->reason), "connection to %s lost: %s", k->meta.active_node,
             mbx_strerror(status));
  if (k->got_batch)
    mbx_warning("db %s: pull connection to %s closed: %s", k->db->name, k->meta.active_node,
                mbx_strerror(status));
  k->got_batch = false;
  sink_schedule_retry(k);
}

/* A frame over this node's max_frame_bytes: an active that ships a record whole. Say
 * so: the copy cannot take it until one of the two changes. */
static void sink_on_frame_error(struct mbx_stream *s, int err, void *arg)
{
  (void)s;
  struct mbx_repl_sink *k = arg;
  if (!k)
    return;
  snprintf(k->reason, sizeof(k->reason), "%s sent a frame over this node's max_frame_bytes "
           "(%llu): %s", k->meta.active_node,
           (unsigned long long)k->node->conf->max_frame_bytes, mbx_strerror(err));
  mbx_error("db %s: %s", k->db->name, k->reason);
}

static const struct mbx_stream_callbacks sink_stream_cb = {
  .on_ready = sink_on_ready,
  .on_frame = sink_on_frame,
  .on_frame_error = sink_on_frame_error,
  .on_close = sink_on_close,
};

void mbx_repl_sink_disconnect(struct mbx_repl_sink *k)
{
  if (!k->stream)
    return;
  struct mbx_stream *s = k->stream;
  k->stream = NULL;
  k->got_batch = false;
  k->paused = false;
  k->ready = k->report_failure = false;
  mbx_repl_part_reset(&k->part);
  mbx_stream_set_arg(s, NULL);        /* its on_close must not touch k */
  mbx_stream_close(s, 0);
}

static int sink_connect(struct mbx_repl_sink *k)
{
  struct mbx_node *n = k->node;
  const char *addr = mbx_peer_addr(n, k->meta.active_node);
  char host[64];
  uint16_t port;
  if (!addr || mbx_nodeconf_parse_listen(addr, host, sizeof(host), &port) < 0) {
    snprintf(k->reason, sizeof(k->reason), "active node '%s' is not a known peer (peer.%s)",
             k->meta.active_node, k->meta.active_node);
    return MBX_ENOTFOUND;
  }
  struct mbx_stream_options opt = n->stream_opt;
  opt.idle_timeout_ms = SINK_IDLE_TIMEOUT_MS;
  opt.server_name = NULL;
  opt.expect_peer_cn = k->meta.active_node;   /* records only from the node we mean */
  opt.expect_peer_ou = "node";
  int rc = mbx_stream_connect(n->loop, host, port, k->tls, &opt, &sink_stream_cb, k, &k->stream);
  if (rc < 0) {
    snprintf(k->reason, sizeof(k->reason), "cannot connect to %s (%s): %s", k->meta.active_node,
             addr, mbx_strerror(rc));
    k->stream = NULL;
    return rc;
  }
  /* Nothing is in flight (kick waits for jobs): the store has taken everything the
   * receive log holds, unless it refused it; either way start again from the store. */
  struct mbx_store_repl_pos pos;
  mbx_store_get_repl_pos(k->db->store, &pos);
  mbx_repl_rxlog_reset(k->rx, pos.received_lsn, pos.epoch);
  Mbx__ReplPullReq p = MBX__REPL_PULL_REQ__INIT;
  p.db = k->db->name;
  p.node = (char *)sink_me(k);
  p.from_lsn = pos.received_lsn + 1;
  p.has_last_epoch = 1;
  p.last_epoch = pos.epoch;
  /* The checked handshake: our last record's CRC and probes further back. */
  uint64_t probe_lsn[SINK_PROBES_MAX];
  uint32_t probe_crc[SINK_PROBES_MAX];
  size_t n_probes = 0;
  if (pos.received_lsn &&
      mbx_store_repl_probes(k->db->store, pos.received_lsn, probe_lsn, probe_crc,
                            SINK_PROBES_MAX, &n_probes) == 0 &&
      n_probes && probe_lsn[0] == pos.received_lsn) {
    p.has_last_crc = 1;
    p.last_crc = probe_crc[0];
    p.n_probe_lsn = p.n_probe_crc = n_probes;
    p.probe_lsn = probe_lsn;
    p.probe_crc = probe_crc;
  }
  p.has_max_frame_bytes = 1;          /* the active keeps every frame within it */
  p.max_frame_bytes = opt.max_frame_bytes;
  Mbx__Request rq = MBX__REQUEST__INIT;
  rq.id = k->pull_id = k->pull_id + 1;
  rq.body_case = MBX__REQUEST__BODY_REPL_PULL;
  rq.repl_pull = &p;
  rc = mbx_stream_send_pb(k->stream, &rq.base);
  if (rc < 0) {
    snprintf(k->reason, sizeof(k->reason), "cannot send the pull request: %s", mbx_strerror(rc));
    mbx_repl_sink_disconnect(k);
    return rc;
  }
  mbx_debug("db %s: pulling from %s (%s) at lsn %llu", k->db->name, k->meta.active_node, addr,
            (unsigned long long)p.from_lsn);
  return 0;
}

void mbx_repl_sink_kick(struct mbx_repl_sink *k)
{
  if (k->stopping || k->stream || k->seed || k->meta.suspended || k->meta.failed ||
      (k->meta.diverged && !k->meta.needs_reseed) || !k->db->store || !k->db->committer)
    return;
  if (k->jobs) {
    k->want_connect = true;           /* positions must settle before asking again */
    return;
  }
  uv_timer_stop(&k->retry);
  if (k->meta.needs_reseed) {
    if (k->serving) {                 /* our store is being snapshotted: wait */
      sink_schedule_retry(k);
      return;
    }
    const char *src = k->meta.seed_source[0] ? k->meta.seed_source : k->meta.active_node;
    int rc = mbx_repl_seed_start(k, src);
    if (rc < 0) {
      char why[160];
      snprintf(why, sizeof(why), "seeding from %s could not start: %s", src, mbx_strerror(rc));
      mbx_repl_sink_seed_done(k, rc, why, 0);
    }
    return;
  }
  if (sink_connect(k) < 0)
    sink_schedule_retry(k);
}

static void sink_on_retry(uv_timer_t *t)
{
  struct mbx_repl_sink *k = t->data;
  if (k->follow_node[0] && !k->stopping) {
    char node[64];
    snprintf(node, sizeof(node), "%s", k->follow_node);
    k->follow_node[0] = 0;
    /* stops this sink (freed once its jobs end) and starts one towards node */
    int rc = mbx_db_retarget(k->node, k->db, node, 0, NULL, NULL);
    if (rc < 0)
      mbx_error("db %s: cannot follow the new active on %s: %s", k->db->name, node,
                mbx_strerror(rc));
    return;                           /* k may be stopping now: touch nothing */
  }
  mbx_repl_sink_kick(k);
}

void mbx_repl_sink_follow(struct mbx_repl_sink *k, const char *node)
{
  if (k->stopping)
    return;
  snprintf(k->follow_node, sizeof(k->follow_node), "%s", node);
  uv_timer_start(&k->retry, sink_on_retry, 0, 0);
}

static void sink_on_tick(uv_timer_t *t)
{
  struct mbx_repl_sink *k = t->data;
  if (k->stopping || !k->db->store)
    return;
  mbx_repl_lat_percentiles(&k->lat, &k->p50_us, &k->p99_us);
  sink_take_kick(k);                  /* if a submission failed before */
  if (k->meta.lag_s && !k->replaying && !k->seed && !k->meta.failed && !k->meta.suspended &&
      !k->meta.needs_reseed)
    sink_submit_replay(k, mbx_now_us() - (int64_t)k->meta.lag_s * 1000000, false);
  if (k->stream && ++k->ticks % (1000 / SINK_TICK_MS) == 0)
    sink_send_ack(k);
}

/* ---- start / stop ------------------------------------------------------------------ */

static void sink_on_handle_closed(uv_handle_t *h)
{
  struct mbx_repl_sink *k = h->data;
  k->handles_open--;
  mbx_repl_sink_maybe_free(k);
}

static void sink_rx_closed(void *arg)
{
  struct mbx_repl_sink *k = arg;
  k->handles_open--;
  mbx_repl_sink_maybe_free(k);
}

void mbx_repl_sink_maybe_free(struct mbx_repl_sink *k)
{
  if (!k->stopping || k->jobs || k->handles_open || k->seed || k->serving)
    return;
  if (k->tls)
    mbx_tls_ctx_free(&k->tls);
  mbx_repl_part_reset(&k->part);
  free(k);
}

int mbx_repl_sink_start(struct mbx_node *n, struct mbx_db *db)
{
  if (db->sink)
    return 0;
  struct mbx_repl_sink *k = calloc(1, sizeof(*k));
  if (!k)
    return MBX_ENOMEM;
  k->node = n;
  k->db = db;
  k->backoff_ms = SINK_BACKOFF_MIN_MS;
  int rc = mbx_store_get_copy_meta(db->store, &k->meta);
  if (rc < 0) {
    mbx_error("db %s: cannot read the copy's state: %s", db->name, mbx_strerror(rc));
    free(k);
    return rc;
  }
  const char *why = NULL;
  rc = mbx_tls_ctx_new_client(n->conf->tls_ca, n->conf->tls_cert, n->conf->tls_key, &k->tls,
                              &why);
  if (rc < 0) {
    mbx_error("db %s: cannot set up TLS to pull: %s", db->name, why ? why : mbx_strerror(rc));
    free(k);
    return rc;
  }
  /* The receive log: what it holds beyond the store goes to the store first. */
  char rxpath[4200];
  snprintf(rxpath, sizeof(rxpath), "%s/%s.rxlog", n->db_dir, db->name);
  struct mbx_store_repl_pos pos0;
  mbx_store_get_repl_pos(db->store, &pos0);
  struct mbx_repl_rxlog_recovered rec;
  rc = mbx_repl_rxlog_open(n->loop, rxpath, pos0.received_lsn, pos0.epoch, &k->rx, &rec);
  if (rc < 0) {
    mbx_error("db %s: cannot open the receive log %s: %s", db->name, rxpath, mbx_strerror(rc));
    mbx_tls_ctx_free(&k->tls);
    free(k);
    return rc;
  }
  uv_timer_init(n->loop, &k->retry);
  uv_timer_init(n->loop, &k->tick);
  k->retry.data = k->tick.data = k;
  k->handles_open = 3;                /* retry, tick, the receive log */
  if (rec.n) {
    struct sink_rx_job *j = calloc(1, sizeof(*j));
    if (!j) {
      mbx_repl_rxlog_recovered_free(&rec);
    } else {
      j->k = k;
      j->rec = rec;
      j->recs = rec.recs;
      j->lens = rec.lens;
      j->n = rec.n;
      for (size_t i = 0; i < rec.n; i++)
        j->bytes += rec.lens[i];
      k->jobs++;
      k->queued_bytes += j->bytes;
      sink_take_queue(k, j);
    }
  }
  uv_timer_start(&k->tick, sink_on_tick, SINK_TICK_MS, SINK_TICK_MS);
  db->sink = k;
  /* A new copy told to seed first (copy add with a source) has nothing yet. */
  struct mbx_store_repl_pos pos;
  mbx_store_get_repl_pos(db->store, &pos);
  if (k->meta.seed_source[0] && pos.received_lsn == 0 && !k->meta.needs_reseed) {
    k->meta.needs_reseed = true;
    snprintf(k->meta.reason, sizeof(k->meta.reason), "new copy: seeding from %s",
             k->meta.seed_source);
  }
  mbx_notice("db %s: passive copy of %s's, received lsn %llu, replayed lsn %llu%s%s%s",
             db->name, k->meta.active_node, (unsigned long long)pos.received_lsn,
             (unsigned long long)pos.replayed_lsn, k->meta.suspended ? ", suspended" : "",
             k->meta.failed ? ", failed" : "", k->meta.needs_reseed ? ", needs a reseed" : "");
  mbx_repl_sink_kick(k);
  return 0;
}

void mbx_repl_sink_stop(struct mbx_db *db)
{
  struct mbx_repl_sink *k = db->sink;
  if (!k)
    return;
  db->sink = NULL;
  k->stopping = true;
  mbx_repl_sink_disconnect(k);
  if (k->seed)
    mbx_repl_seed_abort(k);
  if (k->playdown_cb) {
    k->playdown_cb(MBX_ESHUTDOWN, "the copy was stopped", k->playdown_arg);
    k->playdown_cb = NULL;
  }
  if (k->progress_cb) {
    k->progress_cb(k->seed_done, k->seed_total, true, MBX_ESHUTDOWN, 0, k->progress_arg);
    k->progress_cb = NULL;
  }
  uv_close((uv_handle_t *)&k->retry, sink_on_handle_closed);
  uv_close((uv_handle_t *)&k->tick, sink_on_handle_closed);
  /* Appends still queued are written (and acknowledged at the next start); what
   * waits for the store stays in the receive log for the next start. */
  mbx_repl_rxlog_close(&k->rx, sink_rx_closed, k);
  while (k->ingest) {
    struct sink_rx_job *j = k->ingest;
    k->ingest = j->next;
    sink_batch_free(j);
  }
  k->ingest_tail = NULL;
}

/* ---- seeding hooks (seed.c) ---------------------------------------------------------- */

void mbx_repl_sink_seed_done(struct mbx_repl_sink *k, int status, const char *reason,
                             uint64_t snapshot_lsn)
{
  if (status < 0)
    snprintf(k->meta.reason, sizeof(k->meta.reason), "seed failed: %s", reason ? reason : "?");
  if (k->progress_cb) {
    mbx_repl_progress_fn cb = k->progress_cb;
    k->progress_cb = NULL;
    cb(k->seed_done, k->seed_total, true, status, snapshot_lsn, k->progress_arg);
  }
  if (k->stopping) {
    mbx_repl_sink_maybe_free(k);
    return;
  }
  if (status == 0) {
    k->just_seeded = true;
    k->meta.needs_reseed = k->meta.failed = k->meta.diverged = false;
    k->meta.diverged_lsn = 0;
    k->meta.seed_source[0] = 0;
    k->meta.reason[0] = 0;
    k->reason[0] = 0;
    k->was_healthy = false;
    k->backoff_ms = SINK_BACKOFF_MIN_MS;
    mbx_notice("db %s: seeded at lsn %llu; pulling from %s", k->db->name,
               (unsigned long long)snapshot_lsn, k->meta.active_node);
    mbx_repl_sink_kick(k);
    return;
  }
  /* The old copy stays; it needs a reseed (operator: reseed or resume retries). */
  k->meta.needs_reseed = true;
  k->meta.failed = true;
  mbx_error("db %s: %s", k->db->name, k->meta.reason);
  mbx_repl_sink_save_meta(k, NULL, NULL);
}

/* ---- operator actions ------------------------------------------------------------------ */

int mbx_repl_sink_suspend(struct mbx_db *db, const char *comment, mbx_repl_done_fn done,
                          void *arg)
{
  struct mbx_repl_sink *k = db->sink;
  if (!k)
    return MBX_ENOTFOUND;
  if (k->seed)
    return MBX_EBUSY;
  k->meta.suspended = true;
  snprintf(k->meta.comment, sizeof(k->meta.comment), "%s", comment ? comment : "");
  sink_send_ack(k);                   /* the active shows Suspended at once */
  mbx_repl_sink_disconnect(k);
  uv_timer_stop(&k->retry);
  mbx_notice("db %s: copy suspended%s%s", db->name, k->meta.comment[0] ? ": " : "",
             k->meta.comment);
  return mbx_repl_sink_save_meta(k, done, arg);
}

struct sink_resume {
  struct mbx_repl_sink *k;
  mbx_repl_done_fn done;
  void *arg;
};

static void sink_resume_saved(int status, const char *msg, void *arg)
{
  struct sink_resume *x = arg;
  if (status == 0)
    mbx_repl_sink_kick(x->k);
  x->done(status, msg, x->arg);
  free(x);
}

int mbx_repl_sink_resume(struct mbx_db *db, mbx_repl_done_fn done, void *arg)
{
  struct mbx_repl_sink *k = db->sink;
  if (!k)
    return MBX_ENOTFOUND;
  struct sink_resume *x = malloc(sizeof(*x));
  if (!x)
    return MBX_ENOMEM;
  *x = (struct sink_resume){k, done, arg};
  /* A Failed copy tries again from its received LSN (nothing bad was kept). */
  k->meta.suspended = false;
  k->meta.failed = false;
  k->meta.diverged = false;           /* a Diverged copy asks again (and is refused again) */
  k->meta.comment[0] = 0;
  if (!k->meta.needs_reseed)
    k->meta.reason[0] = 0;
  k->backoff_ms = SINK_BACKOFF_MIN_MS;
  mbx_notice("db %s: copy resumed", db->name);
  int rc = mbx_repl_sink_save_meta(k, sink_resume_saved, x);
  if (rc < 0)
    free(x);
  return rc;
}

int mbx_repl_sink_play_down(struct mbx_db *db, mbx_repl_done_fn done, void *arg)
{
  struct mbx_repl_sink *k = db->sink;
  if (!k)
    return MBX_ENOTFOUND;
  if (k->playdown_cb || k->seed || k->meta.needs_reseed)
    return MBX_EBUSY;                 /* a reseed is coming: nothing to play down */
  int rc = sink_submit_replay(k, INT64_MAX, true);
  if (rc < 0)
    return rc;
  k->playdown_cb = done;
  k->playdown_arg = arg;
  mbx_notice("db %s: playing down the replay queue", db->name);
  return 0;
}

int mbx_repl_sink_reseed(struct mbx_db *db, const char *source, mbx_repl_progress_fn progress,
                         void *arg)
{
  struct mbx_repl_sink *k = db->sink;
  if (!k)
    return MBX_ENOTFOUND;
  if (k->seed || k->progress_cb || k->serving)
    return MBX_EBUSY;
  snprintf(k->meta.seed_source, sizeof(k->meta.seed_source), "%s", source ? source : "");
  k->meta.needs_reseed = true;
  k->meta.failed = false;
  k->meta.suspended = false;
  snprintf(k->meta.reason, sizeof(k->meta.reason), "reseed requested by the operator");
  k->progress_cb = progress;
  k->progress_arg = arg;
  k->seed_done = k->seed_total = 0;
  mbx_repl_sink_disconnect(k);
  mbx_repl_sink_save_meta(k, NULL, NULL);
  mbx_repl_sink_kick(k);              /* seeds once the save job is done */
  return 0;
}

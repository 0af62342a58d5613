/* source.c — the active side of log shipping (replication/repl.h): pull
 * subscriptions fed from the store's log in short read transactions, pushed on each
 * commit, heartbeats when idle, backpressure by write-queue size, the copies' acked
 * positions, the log truncation floor and the copy status as the active sees it.
 * Every frame fits the pulling copy's frame limit, whatever the records' size: a
 * batch holds records up to a byte budget (parts.h), and a record larger than the
 * budget goes alone, in parts, each read again in its own short read transaction.
 * Loop thread only. */
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "conn.h"
#include "log.h"
#include "mbx_error.h"
#include "node.h"
#include "parts.h"
#include "repl.h"

#define SRC_BATCH_RECORDS_MAX 4096
#define SRC_MARKS 512                   /* commit times remembered (~ the last second) */
#define SRC_COPIES_MAX 64
#define SRC_BEHIND_TICK_MS 5               /* while a subscription is held back */
#define SRC_QUEUE_BYTES_WALK_MAX 100000    /* copy queue bytes: a lower bound beyond */
#define SRC_RESYNC_RECORDS 1000

/* What the active knows of one passive copy, from its pulls and acks. */
struct src_copy {
  char node[MBX_NODECONF_NAME_MAX + 1];
  bool heard;                         /* pulled or acked since this source started */
  uint64_t received_lsn, replayed_lsn, epoch;
  int64_t received_time_us, replayed_time_us;
  char status[32], reason[256], comment[256];
  uint64_t diverged_lsn;              /* Diverged: where its history split from ours */
  uint32_t lag_s;
  uint64_t seed_done, seed_total, p50_us, p99_us;
  int64_t contact_us;                 /* realtime of the last pull, ack or batch sent */
  uint64_t contact_mono_us;
};

/* One ReplPullReq being served: the request stays open until its connection goes. */
struct src_sub {
  struct src_sub *next;
  struct mbx_req *r;
  char node[MBX_NODECONF_NAME_MAX + 1];
  uint64_t next_lsn;                  /* next record to send */
  uint64_t part_off;                  /* > 0: next_lsn is being sent in parts, this much sent */
  size_t budget;                      /* bytes of records (or of a part) per batch */
  uint64_t last_send_mono_us;
};

struct mbx_repl_source {
  struct mbx_node *node;
  struct mbx_db *db;
  uv_timer_t timer;
  struct src_sub *subs;
  struct src_copy copies[SRC_COPIES_MAX];
  size_t n_copies;
  uint64_t started_mono_us, floor_mono_us;
  ProtobufCBinaryData *recs;          /* scratch for one batch */
  int64_t *rec_commit_us;             /* scratch: each record's durable commit time */
  /* The last SRC_MARKS durable commits (last lsn, wall-clock time), oldest first from
   * mark_head: a record's commit time is that of the first mark at or after it. */
  struct { uint64_t lsn; int64_t us; } marks[SRC_MARKS];
  size_t mark_head, n_marks;
};

/* When the commit holding record lsn became durable, or 0 if no longer known. */
static int64_t src_commit_time(const struct mbx_repl_source *s, uint64_t lsn)
{
  if (s->n_marks == 0)
    return 0;
  size_t lo = 0, hi = s->n_marks;     /* first mark with mark.lsn >= lsn */
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (s->marks[(s->mark_head + mid) % SRC_MARKS].lsn < lsn)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo == s->n_marks || (lo == 0 && s->n_marks == SRC_MARKS))
    return 0;                         /* newer than known, or its commit was forgotten */
  return s->marks[(s->mark_head + lo) % SRC_MARKS].us;
}

static uint64_t src_heartbeat_us(const struct mbx_repl_source *s)
{
  return s->node->conf->repl_heartbeat_ms * 1000;
}

static struct src_copy *src_copy(struct mbx_repl_source *s, const char *node, bool add)
{
  for (size_t i = 0; i < s->n_copies; i++)
    if (strcmp(s->copies[i].node, node) == 0)
      return &s->copies[i];
  if (!add || s->n_copies >= SRC_COPIES_MAX)
    return NULL;
  struct src_copy *c = &s->copies[s->n_copies++];
  memset(c, 0, sizeof(*c));
  snprintf(c->node, sizeof(c->node), "%s", node);
  return c;
}

static void src_touch(struct src_copy *c)
{
  c->contact_us = mbx_now_us();
  c->contact_mono_us = mbx_mono_us();
}

/* ---- subscriptions ------------------------------------------------------------- */

/* Ends a subscription: answers its request with status (0: nothing more to say). */
static void src_sub_end(struct mbx_repl_source *s, struct src_sub *sub, int status,
                        const char *msg)
{
  for (struct src_sub **pp = &s->subs; *pp; pp = &(*pp)->next) {
    if (*pp == sub) {
      *pp = sub->next;
      break;
    }
  }
  struct mbx_req *r = sub->r;
  r->status = status;
  if (msg)
    r->errmsg = mbx_arena_strdup(&r->arena, msg);
  if (status == MBX_ENOTACTIVE && s->db->store) {  /* where the passives go next */
    struct mbx_store_copy_meta m;
    const char *next = mbx_db_successor(s->db);
    if (!*next && mbx_store_get_copy_meta(s->db->store, &m) == 0 && m.active_node[0])
      next = mbx_arena_strdup(&r->arena, m.active_node);
    r->active_node = *next ? mbx_arena_strdup(&r->arena, next) : NULL;
  }
  mbx_req_finish(r);
  free(sub);
}

/* Sends the n records in s->recs (or one part, or nothing: a heartbeat). */
static int src_send_batch(struct mbx_repl_source *s, struct src_sub *sub, size_t n,
                          Mbx__ReplRecordPart *part)
{
  Mbx__ReplBatch b = MBX__REPL_BATCH__INIT;
  Mbx__Response resp = MBX__RESPONSE__INIT;
  b.part = part;
  b.n_records = n;
  b.records = s->recs;
  b.n_commit_time_us = n;
  b.commit_time_us = s->rec_commit_us;
  for (size_t i = 0; i < n; i++)
    s->rec_commit_us[i] = src_commit_time(s, sub->next_lsn + i);
  b.has_active_last_lsn = b.has_active_time_us = b.has_epoch = 1;
  b.active_last_lsn = mbx_store_last_lsn(s->db->store);
  b.active_time_us = mbx_now_us();
  b.epoch = mbx_store_epoch(s->db->store);
  resp.body_case = MBX__RESPONSE__BODY_REPL_BATCH;
  resp.repl_batch = &b;
  int rc = mbx_req_send(sub->r, &resp);
  if (rc == 0)
    sub->last_send_mono_us = mbx_mono_us();
  return rc;
}

/* Sends the next part of record rec (len bytes, at sub->next_lsn): at most one budget
 * of it, from where the last part ended; the last part moves on to the next record. */
static int src_send_part(struct mbx_repl_source *s, struct src_sub *sub, const uint8_t *rec,
                         size_t len)
{
  Mbx__ReplRecordPart p = MBX__REPL_RECORD_PART__INIT;
  size_t off = (size_t)sub->part_off, chunk = len - off;
  if (chunk > sub->budget)
    chunk = sub->budget;
  bool last = off + chunk == len;
  p.lsn = sub->next_lsn;
  p.total_bytes = len;
  p.offset = off;
  p.data.data = (uint8_t *)rec + off;
  p.data.len = chunk;
  p.has_commit_time_us = last;
  p.commit_time_us = last ? src_commit_time(s, sub->next_lsn) : 0;
  if (off == 0)
    mbx_debug("db %s: record %llu (%zu bytes) goes to %s in parts of up to %zu bytes",
              s->db->name, (unsigned long long)sub->next_lsn, len, sub->node, sub->budget);
  int rc = src_send_batch(s, sub, 0, &p);
  if (rc < 0)
    return rc;
  if (last) {
    sub->next_lsn++;
    sub->part_off = 0;
  } else {
    sub->part_off += chunk;
  }
  return 0;
}

static bool src_sub_full(const struct mbx_repl_source *s, const struct src_sub *sub)
{
  return mbx_stream_write_queue_bytes(sub->r->conn->stream) > s->node->conf->repl_send_queue_max;
}

/* Sends what the subscription misses, batch by batch, each read in its own short read
 * transaction, until it is current or its connection's queue is full. Returns 0 or
 * a negative status that ends the subscription (the message is set in msg). */
static int src_sub_pump(struct mbx_repl_source *s, struct src_sub *sub, char *msg, size_t msgsz)
{
  if (!mbx_req_open(sub->r))
    return MBX_ECLOSED;
  while (sub->next_lsn <= mbx_store_last_lsn(s->db->store)) {
    if (src_sub_full(s, sub))
      return 0;                       /* fed again from the log once drained (timer) */
    struct mbx_rtxn *t;
    int rc = mbx_store_rtxn_begin(s->db->store, &t);
    if (rc < 0) {
      snprintf(msg, msgsz, "database %s: cannot read the log: %s", s->db->name, mbx_strerror(rc));
      return rc;
    }
    uint64_t first = mbx_store_first_lsn(t);
    if (first == 0 || sub->next_lsn < first) {
      mbx_store_rtxn_end(&t);
      snprintf(msg, msgsz,
               "database %s: record %llu is no longer in the active's log (oldest kept: %llu); "
               "the copy on %s needs a reseed",
               s->db->name, (unsigned long long)sub->next_lsn, (unsigned long long)first,
               sub->node);
      return MBX_ENEEDSEED;
    }
    const uint8_t *rec;
    size_t len;
    if (mbx_store_read_log(t, sub->next_lsn, &rec, &len) < 0 || sub->part_off >= len) {
      mbx_store_rtxn_end(&t);
      snprintf(msg, msgsz, "database %s: record %llu cannot be read from the log", s->db->name,
               (unsigned long long)sub->next_lsn);
      return MBX_ECORRUPT;
    }
    if (sub->part_off || len + MBX_REPL_RECORD_OVERHEAD > sub->budget) {
      rc = src_send_part(s, sub, rec, len);   /* packed (copied) before the txn ends */
      mbx_store_rtxn_end(&t);
      if (rc < 0)
        return MBX_ECLOSED;
      continue;
    }
    size_t n = 0, bytes = 0;
    do {
      s->recs[n].data = (uint8_t *)rec;
      s->recs[n].len = len;
      bytes += len + MBX_REPL_RECORD_OVERHEAD;
      n++;
    } while (n < SRC_BATCH_RECORDS_MAX &&
             mbx_store_read_log(t, sub->next_lsn + n, &rec, &len) == 0 &&
             bytes + len + MBX_REPL_RECORD_OVERHEAD <= sub->budget);
    rc = src_send_batch(s, sub, n, NULL);   /* packed (copied) before the txn ends */
    mbx_store_rtxn_end(&t);
    if (rc < 0)
      return MBX_ECLOSED;
    sub->next_lsn += n;
  }
  return 0;
}

static void src_pump_all(struct mbx_repl_source *s)
{
  for (struct src_sub *sub = s->subs, *next; sub; sub = next) {
    next = sub->next;
    char msg[512] = "";
    int rc = src_sub_pump(s, sub, msg, sizeof(msg));
    if (rc == MBX_ENEEDSEED) {
      struct src_copy *c = src_copy(s, sub->node, true);
      if (c) {
        snprintf(c->status, sizeof(c->status), "Failed");
        snprintf(c->reason, sizeof(c->reason), "needs a reseed: records from lsn %llu were "
                 "truncated", (unsigned long long)sub->next_lsn);
      }
      mbx_warning("db %s: %s", s->db->name, msg);
    } else if (rc < 0 && rc != MBX_ECLOSED) {
      mbx_error("db %s: pull from %s ended: %s", s->db->name, sub->node, msg);
    }
    if (rc < 0)
      src_sub_end(s, sub, rc == MBX_ECLOSED ? 0 : rc, msg[0] ? msg : NULL);
  }
}

static bool src_any_behind(const struct mbx_repl_source *s)
{
  uint64_t last = mbx_store_last_lsn(s->db->store);
  for (const struct src_sub *sub = s->subs; sub; sub = sub->next)
    if (sub->next_lsn <= last)
      return true;
  return false;
}

/* ---- truncation floor ----------------------------------------------------------- */

/* Keeps every record a copy of the layout still needs: min received over the passives
 * + 1 (a copy not heard from since this source started counts as 0: keep all). */
static void src_set_floor(struct mbx_repl_source *s)
{
  struct mbx_rtxn *t;
  struct mbx_arena a;
  Mbx__CopyLayout *lay = NULL;
  mbx_arena_init(&a, 4 * 1024 * 1024);
  if (mbx_store_rtxn_begin(s->db->store, &t) == 0) {
    if (mbx_store_get_copies(t, &a, &lay) < 0)
      lay = NULL;
    mbx_store_rtxn_end(&t);
  }
  uint64_t floor = UINT64_MAX;
  if (lay) {
    for (size_t i = 0; i < lay->n_copies; i++) {
      const char *node = lay->copies[i]->node;
      if (strcmp(node, s->node->conf->node_name) == 0)
        continue;
      const struct src_copy *c = src_copy(s, node, false);
      uint64_t need = c && c->heard ? c->received_lsn + 1 : 1;
      if (need < floor)
        floor = need;
    }
  }
  mbx_arena_reset(&a);
  mbx_store_set_log_floor(s->db->store, floor);
}

/* ---- timer and commits ------------------------------------------------------------ */

static void src_heartbeats(struct mbx_repl_source *s)
{
  uint64_t now = mbx_mono_us();
  for (struct src_sub *sub = s->subs, *next; sub; sub = next) {
    next = sub->next;
    if (!mbx_req_open(sub->r)) {
      mbx_info("db %s: pull connection from %s closed", s->db->name, sub->node);
      src_sub_end(s, sub, 0, NULL);
      continue;
    }
    if (now - sub->last_send_mono_us >= src_heartbeat_us(s) && !src_sub_full(s, sub) &&
        src_send_batch(s, sub, 0, NULL) < 0)
      src_sub_end(s, sub, 0, NULL);
  }
}

static void src_on_timer(uv_timer_t *t)
{
  struct mbx_repl_source *s = t->data;
  src_pump_all(s);
  src_heartbeats(s);
  uint64_t now = mbx_mono_us();
  if (now - s->floor_mono_us >= src_heartbeat_us(s)) {
    s->floor_mono_us = now;
    src_set_floor(s);
  }
  uint64_t hb_ms = s->node->conf->repl_heartbeat_ms;
  uint64_t next = src_any_behind(s) ? SRC_BEHIND_TICK_MS : (hb_ms / 4 ? hb_ms / 4 : 1);
  uv_timer_start(&s->timer, src_on_timer, next, 0);
}

static void src_on_commit(uint64_t lsn, int64_t durable_us, bool last, void *arg)
{
  struct mbx_repl_source *s = arg;
  if (s->n_marks == SRC_MARKS) {
    s->mark_head = (s->mark_head + 1) % SRC_MARKS;
    s->n_marks--;
  }
  size_t at = (s->mark_head + s->n_marks++) % SRC_MARKS;
  s->marks[at].lsn = lsn;
  s->marks[at].us = durable_us;
  if (last)
    src_pump_all(s);
}

/* ---- public -------------------------------------------------------------------------- */

int mbx_repl_source_start(struct mbx_node *n, struct mbx_db *db)
{
  if (db->source)
    return 0;
  struct mbx_repl_source *s = calloc(1, sizeof(*s));
  if (!s || !(s->recs = calloc(SRC_BATCH_RECORDS_MAX, sizeof(*s->recs))) ||
      !(s->rec_commit_us = calloc(SRC_BATCH_RECORDS_MAX, sizeof(*s->rec_commit_us)))) {
    if (s)
      free(s->recs);
    free(s);
    return MBX_ENOMEM;
  }
  s->node = n;
  s->db = db;
  s->started_mono_us = s->floor_mono_us = mbx_mono_us();
  s->marks[0].lsn = mbx_store_last_lsn(db->store); /* committed before: time unknown */
  s->n_marks = 1;
  uv_timer_init(n->loop, &s->timer);
  s->timer.data = s;
  uv_timer_start(&s->timer, src_on_timer, n->conf->repl_heartbeat_ms, 0);
  if (db->committer)
    mbx_committer_set_on_commit(db->committer, src_on_commit, s);
  db->source = s;
  src_set_floor(s);
  mbx_info("db %s: replication source started at lsn %llu", db->name,
           (unsigned long long)mbx_store_last_lsn(db->store));
  return 0;
}

static void src_timer_closed(uv_handle_t *h)
{
  struct mbx_repl_source *s = h->data;
  free(s->recs);
  free(s->rec_commit_us);
  free(s);
}

void mbx_repl_source_stop(struct mbx_db *db)
{
  struct mbx_repl_source *s = db->source;
  if (!s)
    return;
  db->source = NULL;
  if (db->committer)
    mbx_committer_set_on_commit(db->committer, NULL, NULL);
  bool moved = !s->node->stopping;     /* a role change, not a shutdown */
  while (s->subs)
    src_sub_end(s, s->subs, moved ? MBX_ENOTACTIVE : MBX_ESHUTDOWN,
                moved ? "this copy is no longer active" : "the active's node is shutting down");
  if (!moved && db->store)
    mbx_store_set_log_floor(db->store, UINT64_MAX);
  uv_timer_stop(&s->timer);
  uv_close((uv_handle_t *)&s->timer, src_timer_closed);
  mbx_info("db %s: replication source stopped", db->name);
}

/* ---- the checked handshake ----------------------------------------------------------
 * A copy may follow only if its log is a prefix of ours: its last record (lsn
 * from_lsn - 1) must be ours too. We compare the record's CRC (which covers its epoch,
 * lsn and ops) while our log still has it; once truncated, the copy's last epoch must
 * be the one our epoch history places that lsn in. Otherwise the copy is Diverged, and
 * its probes (its records' CRCs, densely near its end, then sparser) tell where the
 * histories split: one past the newest probe that matches ours. */

/* 1: the copy's record at lsn is ours; 0: it is not; < 0: we cannot tell (truncated). */
static int src_same_record(struct mbx_rtxn *rt, uint64_t last, uint64_t lsn, uint32_t crc,
                           uint64_t epoch, bool has_crc)
{
  if (lsn > last)
    return 0;
  uint32_t our_crc;
  uint64_t our_epoch;
  if (mbx_store_record_crc(rt, lsn, &our_crc, &our_epoch) == 0) {
    if (has_crc)
      return our_crc == crc;
    return epoch == 0 || our_epoch == epoch;   /* an older copy sends no CRC */
  }
  if (epoch == 0)
    return -1;
  uint64_t e = 0;
  if (mbx_store_epoch_of_lsn(rt, lsn, &e, NULL) < 0)
    return -1;
  return e == epoch;
}

/* 0: the copy may follow. MBX_EDIVERGED: *split_r is where the histories split, msg says
 * why. Other errors: the log could not be read. */
static int src_check_history(struct mbx_db *db, const Mbx__ReplPullReq *q, uint64_t *split_r,
                             char *msg, size_t msg_len)
{
  uint64_t lsn = q->from_lsn - 1, last = mbx_store_last_lsn(db->store);
  *split_r = 0;
  if (lsn == 0)
    return 0;                         /* an empty copy agrees with everyone */
  struct mbx_rtxn *rt;
  int rc = mbx_store_rtxn_begin(db->store, &rt);
  if (rc < 0)
    return rc;
  uint64_t epoch = q->has_last_epoch ? q->last_epoch : 0;
  int same = src_same_record(rt, last, lsn, q->last_crc, epoch, q->has_last_crc);
  if (same != 0) {
    mbx_store_rtxn_end(&rt);
    return 0;                         /* ours, or truncated and its epoch fits our history */
  }
  /* Diverged. The newest probe that matches ours is the last record both agree on. */
  uint64_t agreed = 0, differs = lsn;
  bool known = false;
  size_t n = q->n_probe_lsn < q->n_probe_crc ? q->n_probe_lsn : q->n_probe_crc;
  for (size_t i = 0; i < n; i++) {
    uint64_t p = q->probe_lsn[i];
    if (p >= differs)
      continue;                       /* probes come newest first */
    int s = src_same_record(rt, last, p, q->probe_crc[i], 0, true);
    if (s < 0)
      break;                          /* truncated here: no further to compare */
    if (s == 1) {
      agreed = p;
      known = true;
      break;
    }
    differs = p;
  }
  mbx_store_rtxn_end(&rt);
  if (!known && differs == 1)
    known = true;                     /* they differ from the very first record */
  *split_r = agreed + 1;
  const char *what = lsn > last ? "has records this copy does not" : "holds other records";
  if (known && differs == agreed + 1)
    snprintf(msg, msg_len,
             "copy on %s diverged from the active: its log %s (its last lsn %llu epoch %llu, "
             "the active's last lsn %llu); the histories split at lsn %llu",
             q->node, what, (unsigned long long)lsn, (unsigned long long)epoch,
             (unsigned long long)last, (unsigned long long)*split_r);
  else {
    if (!known)
      *split_r = differs;             /* the oldest lsn known to differ: an upper bound */
    snprintf(msg, msg_len,
             "copy on %s diverged from the active: its log %s (its last lsn %llu epoch %llu, "
             "the active's last lsn %llu); the histories split at lsn %llu or before "
             "(after lsn %llu)",
             q->node, what, (unsigned long long)lsn, (unsigned long long)epoch,
             (unsigned long long)last, (unsigned long long)*split_r,
             (unsigned long long)agreed);
  }
  return MBX_EDIVERGED;
}

int mbx_repl_source_pull(struct mbx_req *r)
{
  struct mbx_node *n = r->conn->node;
  const Mbx__ReplPullReq *q = r->rq->repl_pull;
  struct mbx_db *db = mbx_node_db(n, q->db);
  if (!db || !mbx_db_ready(db)) {
    r->status = MBX_ENOTFOUND;
    r->errmsg = mbx_arena_printf(&r->arena, "no database %s on node %s", q->db, n->conf->node_name);
    return r->status;
  }
  struct mbx_repl_source *s = db->source;
  if (!mbx_db_is_active(db) || !s) {
    struct mbx_store_copy_meta m;
    if (mbx_store_get_copy_meta(db->store, &m) == 0 && m.active_node[0])
      r->active_node = mbx_arena_strdup(&r->arena, m.active_node);
    r->status = MBX_ENOTACTIVE;
    r->errmsg = mbx_arena_printf(&r->arena, "the copy of %s on %s is not active", q->db,
                                 n->conf->node_name);
    return r->status;
  }
  uint64_t last = mbx_store_last_lsn(db->store);
  char why[512] = "";
  uint64_t split = 0;
  int hc = q->from_lsn ? src_check_history(db, q, &split, why, sizeof(why)) : 0;
  if (hc == MBX_EDIVERGED) {
    struct src_copy *dc = src_copy(s, q->node, true);
    if (dc) {
      dc->heard = true;
      snprintf(dc->status, sizeof(dc->status), "Diverged");
      snprintf(dc->reason, sizeof(dc->reason), "diverged: the histories split at lsn %llu",
               (unsigned long long)split);
      dc->diverged_lsn = split;
      dc->received_lsn = q->from_lsn - 1;
      src_touch(dc);
    }
    mbx_warning("db %s: pull refused: %s", db->name, why);
    r->status = MBX_EDIVERGED;
    r->error_lsn = split;
    r->errmsg = mbx_arena_strdup(&r->arena, why);
    return r->status;
  }
  if (hc < 0) {
    r->status = hc;
    r->errmsg = mbx_arena_printf(&r->arena, "cannot compare the histories: %s", mbx_strerror(hc));
    return r->status;
  }
  if (q->from_lsn == 0 || q->from_lsn > last + 1) {
    r->status = MBX_ESTALE;
    r->errmsg = mbx_arena_printf(&r->arena,
                                 "copy on %s asks from lsn %llu but the active's last is %llu",
                                 q->node, (unsigned long long)q->from_lsn, (unsigned long long)last);
    return r->status;
  }
  struct src_copy *c = src_copy(s, q->node, true);
  struct src_sub *sub = calloc(1, sizeof(*sub));
  if (!sub || !c) {
    free(sub);
    r->status = c ? MBX_ENOMEM : MBX_ELIMIT;
    return r->status;
  }
  for (struct src_sub *o = s->subs, *next; o; o = next) {
    next = o->next;                   /* a reconnect replaces the older pull */
    if (strcmp(o->node, q->node) == 0)
      src_sub_end(s, o, MBX_ECLOSED, "replaced by a newer pull from the same node");
  }
  sub->r = r;
  snprintf(sub->node, sizeof(sub->node), "%s", q->node);
  sub->next_lsn = q->from_lsn;
  sub->budget = mbx_repl_batch_budget(q->has_max_frame_bytes ? q->max_frame_bytes : 0);
  sub->last_send_mono_us = mbx_mono_us();
  sub->next = s->subs;
  s->subs = sub;
  c->heard = true;
  c->received_lsn = q->from_lsn - 1;
  src_touch(c);
  mbx_info("db %s: %s pulls from lsn %llu (last %llu; batches of up to %zu bytes)", db->name,
           q->node, (unsigned long long)q->from_lsn, (unsigned long long)last, sub->budget);
  char msg[512] = "";
  int rc = src_sub_pump(s, sub, msg, sizeof(msg));
  if (rc < 0) {
    if (rc == MBX_ENEEDSEED) {
      snprintf(c->status, sizeof(c->status), "Failed");
      snprintf(c->reason, sizeof(c->reason), "needs a reseed: records from lsn %llu were truncated",
               (unsigned long long)q->from_lsn);
      mbx_warning("db %s: %s", db->name, msg);
    }
    src_sub_end(s, sub, rc == MBX_ECLOSED ? 0 : rc, msg[0] ? msg : NULL);
  }
  if (src_any_behind(s))
    uv_timer_start(&s->timer, src_on_timer, SRC_BEHIND_TICK_MS, 0);
  return 1;                           /* answered by the subscription */
}

void mbx_repl_source_ack(struct mbx_db *db, const Mbx__ReplAckReq *a)
{
  struct mbx_repl_source *s = db->source;
  if (!s)
    return;
  struct src_copy *c = src_copy(s, a->node, true);
  if (!c)
    return;
  c->heard = true;
  if (a->has_received_lsn)
    c->received_lsn = a->received_lsn;
  if (a->has_replayed_lsn)
    c->replayed_lsn = a->replayed_lsn;
  if (a->has_last_received_time_us)
    c->received_time_us = a->last_received_time_us;
  if (a->has_last_replayed_time_us)
    c->replayed_time_us = a->last_replayed_time_us;
  if (a->status)
    snprintf(c->status, sizeof(c->status), "%s", a->status);
  snprintf(c->reason, sizeof(c->reason), "%s", a->reason ? a->reason : "");
  snprintf(c->comment, sizeof(c->comment), "%s", a->comment ? a->comment : "");
  c->lag_s = a->has_lag_s ? a->lag_s : 0;
  c->seed_done = a->seed_bytes_done;
  c->seed_total = a->seed_bytes_total;
  c->p50_us = a->receipt_p50_us;
  c->p99_us = a->receipt_p99_us;
  src_touch(c);
  if (a->seeding_node && a->has_seeding_from_lsn) {
    /* a->node is seeding that copy from a snapshot that may be older than what the
     * copy had received before: hold the log for the snapshot, not the old position.
     * (A copy not heard from yet already counts as 0: keeps everything.) */
    struct src_copy *t = src_copy(s, a->seeding_node, false);
    if (t && t->heard && t->received_lsn > a->seeding_from_lsn) {
      mbx_info("db %s: %s is seeding %s from lsn %llu: holding the log for it", db->name,
               a->node, a->seeding_node, (unsigned long long)a->seeding_from_lsn);
      t->received_lsn = a->seeding_from_lsn;
    }
  }
}

/* ---- status ------------------------------------------------------------------------- */

static Mbx__CopyStatus *src_status_active(struct mbx_req *r, struct mbx_db *db, uint32_t pref)
{
  Mbx__CopyStatus *st = mbx_arena_pbnew(&r->arena, &mbx__copy_status__descriptor);
  if (!st)
    return NULL;
  st->db = db->name;
  st->node = (char *)r->conn->node->conf->node_name;
  st->role = "active";
  st->status = "Mounted";
  st->active_node = st->node;
  st->has_preference = pref != 0;
  st->preference = pref;
  st->has_received_lsn = st->has_replayed_lsn = st->has_epoch = 1;
  st->received_lsn = st->replayed_lsn = mbx_store_last_lsn(db->store);
  st->epoch = mbx_store_epoch(db->store);
  st->has_copy_queue_records = st->has_replay_queue_records = 1;
  return st;
}

static const char *src_status_word(const struct mbx_repl_source *s, const struct src_copy *c,
                                   uint64_t last, uint64_t now)
{
  bool silent = !c || now - c->contact_mono_us > 3 * src_heartbeat_us(s);
  if (!c || !c->heard)
    return now - s->started_mono_us > 3 * src_heartbeat_us(s) ? "DisconnectedAndHealthy"
                                                               : "Initializing";
  const char *st = c->status[0] ? c->status : "Initializing";
  if (silent) {
    if (strncmp(st, "Failed", 6) == 0 || strcmp(st, "Suspended") == 0 ||
        strcmp(st, "Diverged") == 0)
      return st;                      /* it does not pull: silence is expected */
    return "DisconnectedAndHealthy";
  }
  if (strcmp(st, "Healthy") == 0 && last > c->received_lsn + SRC_RESYNC_RECORDS)
    return "Resynchronizing";
  return st;
}

static Mbx__CopyStatus *src_status_passive(struct mbx_req *r, struct mbx_repl_source *s,
                                           struct mbx_rtxn *t, const Mbx__CopyEntry *e)
{
  Mbx__CopyStatus *st = mbx_arena_pbnew(&r->arena, &mbx__copy_status__descriptor);
  if (!st)
    return NULL;
  struct src_copy *c = src_copy(s, e->node, false);
  uint64_t last = mbx_store_last_lsn(s->db->store);
  st->db = s->db->name;
  st->node = e->node;
  st->role = "passive";
  st->status = mbx_arena_strdup(&r->arena, src_status_word(s, c, last, mbx_mono_us()));
  st->has_preference = e->has_preference;
  st->preference = e->preference;
  st->has_lag_s = 1;
  st->lag_s = c && c->heard ? c->lag_s : e->lag_s;
  uint64_t recv = c && c->heard ? c->received_lsn : 0;
  st->has_copy_queue_records = st->has_copy_queue_bytes = st->has_replay_queue_records = 1;
  st->copy_queue_records = last > recv ? last - recv : 0;
  uint64_t bytes = 0;
  if (st->copy_queue_records && mbx_store_log_bytes_after(t, recv, SRC_QUEUE_BYTES_WALK_MAX, &bytes) == 0)
    st->copy_queue_bytes = bytes;
  if (!c || !c->heard)
    return st;
  st->replay_queue_records = c->received_lsn > c->replayed_lsn ? c->received_lsn - c->replayed_lsn : 0;
  st->has_received_lsn = st->has_replayed_lsn = 1;
  st->received_lsn = c->received_lsn;
  st->replayed_lsn = c->replayed_lsn;
  st->has_last_received_time_us = st->has_last_replayed_time_us = 1;
  st->last_received_time_us = c->received_time_us;
  st->last_replayed_time_us = c->replayed_time_us;
  if (c->reason[0])
    st->reason = mbx_arena_strdup(&r->arena, c->reason);
  else if (strcmp(st->status, "DisconnectedAndHealthy") == 0)
    st->reason = "no contact with the active for more than 3 heartbeats";
  if (c->comment[0])
    st->comment = mbx_arena_strdup(&r->arena, c->comment);
  if (strcmp(st->status, "Diverged") == 0 && c->diverged_lsn) {
    st->has_diverged_lsn = 1;
    st->diverged_lsn = c->diverged_lsn;
  }
  st->has_seed_bytes_done = st->has_seed_bytes_total = c->seed_total != 0;
  st->seed_bytes_done = c->seed_done;
  st->seed_bytes_total = c->seed_total;
  st->has_last_contact_us = 1;
  st->last_contact_us = c->contact_us;
  st->has_receipt_p50_us = st->has_receipt_p99_us = c->p50_us || c->p99_us;
  st->receipt_p50_us = c->p50_us;
  st->receipt_p99_us = c->p99_us;
  return st;
}

bool mbx_repl_source_copy_pos(const struct mbx_db *db, const char *node, uint64_t *received_r,
                              uint64_t *replayed_r, bool *pulling_r)
{
  struct mbx_repl_source *s = db->source;
  struct src_copy *c = s ? src_copy(s, node, false) : NULL;
  if (!c || !c->heard)
    return false;
  *received_r = c->received_lsn;
  *replayed_r = c->replayed_lsn;
  *pulling_r = false;
  for (const struct src_sub *u = s->subs; u; u = u->next)
    if (strcmp(u->node, node) == 0)
      *pulling_r = true;
  return true;
}

int mbx_repl_source_status(struct mbx_req *r, struct mbx_db *db, Mbx__CopyStatus ***v_r,
                           size_t *n_r)
{
  struct mbx_repl_source *s = db->source;
  if (!s || !db->store)
    return MBX_ENOTACTIVE;
  struct mbx_rtxn *t;
  int rc = mbx_store_rtxn_begin(db->store, &t);
  if (rc < 0)
    return rc;
  Mbx__CopyLayout *lay = NULL;
  if ((rc = mbx_store_get_copies(t, &r->arena, &lay)) < 0) {
    mbx_store_rtxn_end(&t);
    return rc;
  }
  const char *me = r->conn->node->conf->node_name;
  Mbx__CopyStatus **v = mbx_arena_alloc(&r->arena, (lay->n_copies + 1) * sizeof(*v));
  size_t n = 0;
  uint32_t my_pref = 0;
  for (size_t i = 0; i < lay->n_copies; i++)
    if (strcmp(lay->copies[i]->node, me) == 0)
      my_pref = lay->copies[i]->preference;
  if (v && (v[n] = src_status_active(r, db, my_pref)) != NULL)
    n++;
  for (size_t i = 0; v && n && i < lay->n_copies; i++) {
    if (strcmp(lay->copies[i]->node, me) == 0)
      continue;
    if (!(v[n] = src_status_passive(r, s, t, lay->copies[i]))) {
      n = 0;
      break;
    }
    n++;
  }
  mbx_store_rtxn_end(&t);
  if (!v || n == 0)
    return MBX_ENOMEM;
  *v_r = v;
  *n_r = n;
  return 0;
}

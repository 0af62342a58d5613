/* store_repl.c — what the store keeps for replication: the copy layout, this copy's
 * own (never replicated) copy meta, the passive's received log and its replay, the
 * active's truncation floor, positions published for any thread, and seeding
 * (snapshot out, reset after a snapshot comes in). */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "logrec.h"
#include "mbx_error.h"
#include "store_internal.h"

#define REPL_COPY_META_VERSION 1
#define REPL_COPY_META_MAX     (1 + 4 + 1 + 4 * (2 + 256) + 8)

/* Positions of one write transaction in progress: published only after its durable
 * commit, so other threads never see a position that a crash could take back. */
struct repl_pos {
  uint64_t received_lsn, received_epoch, replayed_lsn, epoch;
  int64_t received_time_us, replayed_time_us;
  uint64_t rq_records, rq_bytes;
};

static void repl_pos_load(struct mbx_store *s, struct repl_pos *p)
{
  p->received_lsn = atomic_load(&s->received_lsn);
  p->received_epoch = atomic_load(&s->received_epoch);
  p->received_time_us = atomic_load(&s->received_time_us);
  p->replayed_lsn = atomic_load(&s->last_lsn);
  p->epoch = atomic_load(&s->epoch);
  p->replayed_time_us = atomic_load(&s->replayed_time_us);
  p->rq_records = atomic_load(&s->rq_records);
  p->rq_bytes = atomic_load(&s->rq_bytes);
}

static void repl_pos_publish(struct mbx_store *s, const struct repl_pos *p)
{
  atomic_store(&s->epoch, p->epoch);
  atomic_store(&s->last_lsn, p->replayed_lsn);
  atomic_store(&s->replayed_time_us, p->replayed_time_us);
  atomic_store(&s->rq_records, p->rq_records);
  atomic_store(&s->rq_bytes, p->rq_bytes);
  atomic_store(&s->received_epoch, p->received_epoch);
  atomic_store(&s->received_time_us, p->received_time_us);
  atomic_store(&s->received_lsn, p->received_lsn);
}

/* ==== open: positions from the log and the received log ===================== */

static int repl_record_at(struct mbx_store *s, MDB_txn *t, enum mbx__db db, MDB_cursor_op op,
                          struct mbx_logrec *rec, bool *found_r)
{
  MDB_cursor *c;
  int rc = mdb_cursor_open(t, s->dbi[db], &c);
  if (rc)
    return mbx__store_mdb_err(s, rc, "cursor");
  MDB_val k, v;
  int err = 0;
  *found_r = false;
  rc = mdb_cursor_get(c, &k, &v, op);
  if (rc == 0) {
    *found_r = true;
    err = mbx_logrec_decode(v.mv_data, v.mv_size, rec);
  } else if (rc != MDB_NOTFOUND) {
    err = mbx__store_mdb_err(s, rc, "cursor");
  }
  mdb_cursor_close(c);
  return err;
}

/* Recomputes every position from what is durable (open, and after a seed). */
static int repl_load(struct mbx_store *s)
{
  MDB_txn *t;
  int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t);
  if (rc)
    return mbx__store_mdb_err(s, rc, "read txn begin");
  struct repl_pos p = {0};
  p.replayed_lsn = atomic_load(&s->last_lsn);
  p.epoch = atomic_load(&s->epoch);
  struct mbx_logrec rec;
  bool found;
  int err = repl_record_at(s, t, MBX__DB_LOG, MDB_LAST, &rec, &found);
  if (!err && found && rec.lsn == p.replayed_lsn)
    p.replayed_time_us = rec.time_us;
  if (err == MBX_ECORRUPT) {
    /* Only its time is read here; the content was applied long ago. */
    mbx_error("store %s: newest log record does not decode; replayed time unknown", s->name);
    err = 0;
  }
  p.received_lsn = p.replayed_lsn;
  p.received_epoch = p.epoch;
  p.received_time_us = p.replayed_time_us;
  MDB_cursor *c = NULL;
  if (!err && (rc = mdb_cursor_open(t, s->dbi[MBX__DB_RLOG], &c)))
    err = mbx__store_mdb_err(s, rc, "cursor");
  MDB_val k, v;
  for (rc = err ? MDB_NOTFOUND : mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
       rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
    uint64_t key_lsn = k.mv_size == 8 ? mbx_get_be64(k.mv_data) : 0;
    if (key_lsn != p.received_lsn + 1) {
      mbx_error("store %s: received log broken at lsn %llu after %llu", s->name,
                (unsigned long long)key_lsn, (unsigned long long)p.received_lsn);
      err = MBX_ECORRUPT;
      break;
    }
    if (mbx_logrec_decode(v.mv_data, v.mv_size, &rec) == 0 && rec.lsn == key_lsn) {
      p.received_epoch = rec.epoch;
      p.received_time_us = rec.time_us;
    } else {
      /* It was received and is durable, but damaged since. The store still opens:
       * replay refuses the record (MBX_ECORRUPT with its lsn), so the copy goes
       * Failed and the record is never applied; the node stays up. */
      mbx_error("store %s: received record lsn %llu is damaged; it will not be replayed",
                s->name, (unsigned long long)key_lsn);
    }
    p.received_lsn = key_lsn;
    p.rq_records++;
    p.rq_bytes += v.mv_size;
  }
  if (!err && rc != MDB_NOTFOUND)
    err = mbx__store_mdb_err(s, rc, "cursor");
  if (c)
    mdb_cursor_close(c);
  mdb_txn_abort(t);
  if (!err)
    repl_pos_publish(s, &p);
  return err;
}

int mbx__repl_open(struct mbx_store *s)
{
  atomic_store(&s->log_floor, UINT64_MAX);
  return repl_load(s);
}

/* ==== layout ================================================================ */

int mbx_store_get_copies(struct mbx_rtxn *r, struct mbx_arena *a, Mbx__CopyLayout **layout_r)
{
  MDB_val k = mbx__val("copies", 6), v;
  int rc = mdb_get(r->txn, r->s->dbi[MBX__DB_META], &k, &v);
  if (rc == MDB_NOTFOUND) {
    *layout_r = mbx_arena_pbnew(a, &mbx__copy_layout__descriptor);
    return *layout_r ? 0 : MBX_ENOMEM;
  }
  if (rc)
    return mbx__store_mdb_err(r->s, rc, "get copies");
  *layout_r = mbx__copy_layout__unpack(&a->pb, v.mv_size, v.mv_data);
  if (!*layout_r) {
    mbx_error("store %s: copy layout does not unpack", r->s->name);
    return MBX_ECORRUPT;
  }
  return 0;
}

/* ==== copy meta (local, never replicated) =================================== */

static size_t repl_put_str(uint8_t *p, const char *str, size_t cap)
{
  size_t n = strnlen(str, cap - 1);
  p[0] = (uint8_t)(n >> 8);
  p[1] = (uint8_t)n;
  memcpy(p + 2, str, n);
  return 2 + n;
}

static int repl_get_str(const uint8_t *p, size_t len, size_t *off, char *out, size_t cap)
{
  if (*off + 2 > len)
    return MBX_ECORRUPT;
  size_t n = ((size_t)p[*off] << 8) | p[*off + 1];
  if (*off + 2 + n > len || n >= cap)
    return MBX_ECORRUPT;
  memcpy(out, p + *off + 2, n);
  out[n] = 0;
  *off += 2 + n;
  return 0;
}

static size_t repl_meta_encode(const struct mbx_store_copy_meta *m, uint8_t *b)
{
  size_t n = 0;
  b[n++] = REPL_COPY_META_VERSION;
  mbx_put_be32(b + n, m->lag_s);
  n += 4;
  b[n++] = (uint8_t)((m->suspended ? 1 : 0) | (m->needs_reseed ? 2 : 0) | (m->failed ? 4 : 0) |
                     (m->diverged ? 8 : 0));
  n += repl_put_str(b + n, m->active_node, sizeof(m->active_node));
  n += repl_put_str(b + n, m->seed_source, sizeof(m->seed_source));
  n += repl_put_str(b + n, m->comment, sizeof(m->comment));
  n += repl_put_str(b + n, m->reason, sizeof(m->reason));
  mbx_put_be64(b + n, m->diverged_lsn); /* added later: a meta without it reads as 0 */
  n += 8;
  return n;
}

static int repl_meta_decode(const uint8_t *b, size_t len, struct mbx_store_copy_meta *m)
{
  memset(m, 0, sizeof(*m));
  if (len < 6 || b[0] != REPL_COPY_META_VERSION)
    return MBX_ECORRUPT;
  m->lag_s = mbx_get_be32(b + 1);
  m->suspended = b[5] & 1;
  m->needs_reseed = (b[5] & 2) != 0;
  m->failed = (b[5] & 4) != 0;
  m->diverged = (b[5] & 8) != 0;
  size_t off = 6;
  int err;
  if ((err = repl_get_str(b, len, &off, m->active_node, sizeof(m->active_node))) ||
      (err = repl_get_str(b, len, &off, m->seed_source, sizeof(m->seed_source))) ||
      (err = repl_get_str(b, len, &off, m->comment, sizeof(m->comment))) ||
      (err = repl_get_str(b, len, &off, m->reason, sizeof(m->reason))))
    memset(m, 0, sizeof(*m));
  else if (off + 8 <= len)
    m->diverged_lsn = mbx_get_be64(b + off);
  return err;
}

int mbx_store_get_copy_meta(struct mbx_store *s, struct mbx_store_copy_meta *m)
{
  memset(m, 0, sizeof(*m));
  MDB_txn *t;
  int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t);
  if (rc)
    return mbx__store_mdb_err(s, rc, "read txn begin");
  MDB_val k = mbx__val("copy_meta", 9), v;
  int err = 0;
  rc = mdb_get(t, s->dbi[MBX__DB_META], &k, &v);
  if (rc == 0) {
    if ((err = repl_meta_decode(v.mv_data, v.mv_size, m)))
      mbx_error("store %s: copy meta does not decode", s->name);
  } else if (rc != MDB_NOTFOUND) {
    err = mbx__store_mdb_err(s, rc, "get copy meta");
  }
  mdb_txn_abort(t);
  return err;
}

int mbx_store_set_copy_meta(struct mbx_store *s, const struct mbx_store_copy_meta *m)
{
  uint8_t b[REPL_COPY_META_MAX];
  size_t n = repl_meta_encode(m, b);
  struct mbx_wtxn *w;
  int err = mbx_store_wtxn_begin(s, &w);
  if (err)
    return err;
  MDB_val k = mbx__val("copy_meta", 9), v = mbx__val(b, n);
  if ((err = mbx__store_mdb_err(s, mdb_put(w->top, s->dbi[MBX__DB_META], &k, &v, 0), "put"))) {
    mbx_store_wtxn_abort(&w);
    return err;
  }
  return mbx_store_wtxn_commit(&w, NULL);
}

/* ==== positions ============================================================= */

void mbx_store_get_repl_pos(const struct mbx_store *cs, struct mbx_store_repl_pos *pos)
{
  struct mbx_store *s = (struct mbx_store *)cs;
  /* received before replayed: a reader never sees replayed > received. */
  pos->received_lsn = atomic_load(&s->received_lsn);
  pos->received_time_us = atomic_load(&s->received_time_us);
  pos->epoch = atomic_load(&s->received_epoch);
  pos->replayed_lsn = atomic_load(&s->last_lsn);
  pos->replayed_time_us = atomic_load(&s->replayed_time_us);
  if (pos->replayed_lsn > pos->received_lsn)
    pos->received_lsn = pos->replayed_lsn; /* raced a commit: both moved */
}

int mbx_store_replay_queue(struct mbx_store *s, uint64_t *records_r, uint64_t *bytes_r)
{
  if (records_r)
    *records_r = atomic_load(&s->rq_records);
  if (bytes_r)
    *bytes_r = atomic_load(&s->rq_bytes);
  return 0;
}

/* ==== passive: receive and replay =========================================== */

/* Applies the next received record (replayed_lsn + 1) from the received log if its
 * commit time is <= before_us. *done_r: false when there was nothing (due) to do. */
static int repl_replay_one(struct mbx_wtxn *w, struct repl_pos *p, int64_t before_us, bool *done_r)
{
  struct mbx_store *s = w->s;
  *done_r = false;
  if (p->rq_records == 0)
    return 0;
  uint8_t kb[8];
  mbx_put_be64(kb, p->replayed_lsn + 1);
  MDB_val k = mbx__val(kb, 8), v;
  int rc = mdb_get(w->top, s->dbi[MBX__DB_RLOG], &k, &v);
  if (rc)
    return rc == MDB_NOTFOUND ? MBX_ECORRUPT : mbx__store_mdb_err(s, rc, "get rlog");
  struct mbx_logrec rec;
  int err = mbx_logrec_decode(v.mv_data, v.mv_size, &rec);
  if (err || rec.time_us > before_us)
    return err;
  /* Copy out: applying changes pages, and v points into the map. */
  size_t len = v.mv_size;
  uint8_t *data = malloc(len);
  if (!data)
    return MBX_ENOMEM;
  memcpy(data, v.mv_data, len);
  if ((err = mbx_logrec_decode(data, len, &rec)) == 0 &&
      (err = mbx__store_mdb_err(s, mdb_del(w->top, s->dbi[MBX__DB_RLOG], &k, NULL), "del rlog")) ==
          0 &&
      (err = mbx__apply_record_txn(w, &rec, data, len)) == 0) {
    p->replayed_lsn = rec.lsn;
    p->replayed_time_us = rec.time_us;
    p->epoch = rec.epoch;
    p->rq_records--;
    p->rq_bytes -= len < p->rq_bytes ? len : p->rq_bytes;
    *done_r = true;
  }
  free(data);
  return err;
}

static int repl_replay_due(struct mbx_wtxn *w, struct repl_pos *p, int64_t before_us,
                           uint32_t max_records, uint32_t *n_r, uint64_t *bad_lsn_r)
{
  bool done = true;
  int err = 0;
  for (*n_r = 0; *n_r < max_records && done; (*n_r) += done) {
    if ((err = repl_replay_one(w, p, before_us, &done))) {
      *bad_lsn_r = p->replayed_lsn + 1;
      break;
    }
  }
  return err;
}

/* Takes one received record into the transaction: verified, then applied at once
 * (due, nothing pending before it) or kept in the received log. */
static int repl_take(struct mbx_wtxn *w, struct repl_pos *p, const uint8_t *data, size_t len,
                     int64_t before_us, uint64_t *bad_lsn_r)
{
  struct mbx_store *s = w->s;
  struct mbx_logrec rec;
  *bad_lsn_r = p->received_lsn + 1;
  if (!data || mbx_logrec_decode(data, len, &rec)) {
    mbx_error("store %s: received record after lsn %llu does not verify", s->name,
              (unsigned long long)p->received_lsn);
    return MBX_ECORRUPT;
  }
  if (rec.lsn != p->received_lsn + 1 || rec.epoch < p->received_epoch) {
    mbx_error("store %s: received record refused: lsn %llu epoch %llu after lsn %llu epoch %llu",
              s->name, (unsigned long long)rec.lsn, (unsigned long long)rec.epoch,
              (unsigned long long)p->received_lsn, (unsigned long long)p->received_epoch);
    *bad_lsn_r = rec.lsn;
    return MBX_ECORRUPT;
  }
  int err;
  if (p->rq_records == 0 && rec.time_us <= before_us) {
    if ((err = mbx__apply_record_txn(w, &rec, data, len)))
      return err;
    p->replayed_lsn = rec.lsn;
    p->replayed_time_us = rec.time_us;
    p->epoch = rec.epoch;
  } else {
    /* Kept for later: make sure now that its payload will unpack then. */
    struct mbx_arena a;
    mbx_arena_init(&a, 0);
    Mbx__LogOps *ops = mbx_logrec_unpack_ops(&rec, &a.pb);
    mbx_arena_reset(&a);
    if (!ops)
      return MBX_ECORRUPT;
    uint8_t kb[8];
    mbx_put_be64(kb, rec.lsn);
    MDB_val k = mbx__val(kb, 8), v = mbx__val(data, len);
    err = mbx__store_mdb_err(s, mdb_put(w->top, s->dbi[MBX__DB_RLOG], &k, &v, MDB_APPEND),
                             "put rlog");
    if (err)
      return err == MBX_EEXIST ? MBX_ECORRUPT : err;
    p->rq_records++;
    p->rq_bytes += len;
  }
  p->received_lsn = rec.lsn;
  p->received_epoch = rec.epoch;
  p->received_time_us = rec.time_us;
  return 0;
}

int mbx_store_receive(struct mbx_store *s, const uint8_t *const *recs, const size_t *lens, size_t n,
                      int64_t replay_before_us, uint64_t *bad_lsn_r)
{
  uint64_t bad = 0;
  if (bad_lsn_r)
    *bad_lsn_r = 0;
  if (n == 0)
    return 0;
  if (!recs || !lens)
    return MBX_EINVAL;
  struct repl_pos p;
  repl_pos_load(s, &p);
  struct mbx_wtxn *w;
  int err = mbx_store_wtxn_begin(s, &w);
  if (err)
    return err;
  uint32_t replayed;
  err = repl_replay_due(w, &p, replay_before_us, UINT32_MAX, &replayed, &bad);
  for (size_t i = 0; !err && i < n; i++)
    err = repl_take(w, &p, recs[i], lens[i], replay_before_us, &bad);
  if (err) {
    mbx_error("store %s: received batch refused at lsn %llu: %s", s->name, (unsigned long long)bad,
              mbx_strerror(err));
    mbx_store_wtxn_abort(&w);
    if (bad_lsn_r)
      *bad_lsn_r = bad;
    return err;
  }
  if ((err = mbx_store_wtxn_commit(&w, NULL)))
    return err;
  repl_pos_publish(s, &p);
  return 0;
}

int mbx_store_replay(struct mbx_store *s, int64_t before_us, uint32_t max_records, uint32_t *n_r)
{
  uint32_t n = 0;
  uint64_t bad = 0;
  if (n_r)
    *n_r = 0;
  struct repl_pos p;
  repl_pos_load(s, &p);
  if (p.rq_records == 0 || max_records == 0)
    return 0;
  struct mbx_wtxn *w;
  int err = mbx_store_wtxn_begin(s, &w);
  if (err)
    return err;
  if ((err = repl_replay_due(w, &p, before_us, max_records, &n, &bad))) {
    mbx_error("store %s: replay refused at lsn %llu: %s", s->name, (unsigned long long)bad,
              mbx_strerror(err));
    mbx_store_wtxn_abort(&w);
    return err;
  }
  if (n == 0) {
    mbx_store_wtxn_abort(&w);
    return 0;
  }
  if ((err = mbx_store_wtxn_commit(&w, NULL)))
    return err;
  repl_pos_publish(s, &p);
  if (n_r)
    *n_r = n;
  return 0;
}

/* ==== active: truncation floor, copy queue ================================== */

void mbx_store_set_log_floor(struct mbx_store *s, uint64_t floor_lsn)
{
  atomic_store(&s->log_floor, floor_lsn);
}

int mbx_store_log_bytes_after(struct mbx_rtxn *r, uint64_t after_lsn, uint64_t max_records,
                              uint64_t *bytes_r)
{
  *bytes_r = 0;
  if (after_lsn == UINT64_MAX)
    return 0;
  MDB_cursor *c;
  int rc = mdb_cursor_open(r->txn, r->s->dbi[MBX__DB_LOG], &c);
  if (rc)
    return mbx__store_mdb_err(r->s, rc, "cursor");
  uint8_t kb[8];
  mbx_put_be64(kb, after_lsn + 1);
  MDB_val k = mbx__val(kb, 8), v;
  uint64_t n = 0, bytes = 0;
  for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0 && n < max_records;
       rc = mdb_cursor_get(c, &k, &v, MDB_NEXT), n++)
    bytes += v.mv_size;
  mdb_cursor_close(c);
  if (rc && rc != MDB_NOTFOUND)
    return mbx__store_mdb_err(r->s, rc, "cursor");
  *bytes_r = bytes;
  return 0;
}

/* ==== seeding =============================================================== */

int mbx_store_snapshot_fd(struct mbx_store *s, int fd)
{
  int rc = mdb_env_copyfd2(s->env, fd, MDB_CP_COMPACT);
  if (rc) {
    mbx_error("store %s: snapshot at lsn %llu failed", s->name,
              (unsigned long long)mbx_store_last_lsn(s));
    return mbx__store_mdb_err(s, rc, "copyfd");
  }
  return 0;
}

int mbx_store_reset_after_seed(struct mbx_store *s)
{
  struct mbx_wtxn *w;
  int err = mbx_store_wtxn_begin(s, &w);
  if (err)
    return err;
  MDB_val k = mbx__val("copy_meta", 9);
  int rc = mdb_drop(w->top, s->dbi[MBX__DB_RLOG], 0);
  if (rc == 0) {
    rc = mdb_del(w->top, s->dbi[MBX__DB_META], &k, NULL);
    if (rc == MDB_NOTFOUND)
      rc = 0;
  }
  if ((err = mbx__store_mdb_err(s, rc, "reset after seed"))) {
    mbx_store_wtxn_abort(&w);
    return err;
  }
  if ((err = mbx_store_wtxn_commit(&w, NULL)) || (err = repl_load(s)))
    return err;
  mbx_notice("store %s: seed installed at lsn %llu, epoch %llu", s->name,
             (unsigned long long)mbx_store_last_lsn(s), (unsigned long long)mbx_store_epoch(s));
  return 0;
}

/* ==== the handshake's view of this copy's log ================================ */

int mbx_store_record_crc(struct mbx_rtxn *r, uint64_t lsn, uint32_t *crc_r, uint64_t *epoch_r)
{
  struct mbx_store *s = r->s;
  uint8_t k[8];
  mbx_put_be64(k, lsn);
  MDB_val kv = mbx__val(k, 8), v;
  int rc = mdb_get(r->txn, s->dbi[MBX__DB_LOG], &kv, &v);
  if (rc == MDB_NOTFOUND)
    rc = mdb_get(r->txn, s->dbi[MBX__DB_RLOG], &kv, &v);
  if (rc == MDB_NOTFOUND)
    return MBX_ENOTFOUND;
  if (rc)
    return mbx__store_mdb_err(s, rc, "get record");
  if (v.mv_size < MBX_LOGREC_HEADER_BYTES)
    return MBX_ECORRUPT;
  const uint8_t *p = v.mv_data;
  *crc_r = mbx_get_be32(p + 36);
  if (epoch_r)
    *epoch_r = mbx_get_be64(p + 8);
  return 0;
}

#define REPL_PROBES_DENSE 32

int mbx_store_repl_probes(struct mbx_store *s, uint64_t last_lsn, uint64_t *lsn_v,
                          uint32_t *crc_v, size_t cap, size_t *n_r)
{
  *n_r = 0;
  struct mbx_rtxn *r;
  int err = mbx_store_rtxn_begin(s, &r);
  if (err)
    return err;
  uint64_t lsn = last_lsn, step = 1;
  size_t n = 0;
  while (lsn >= 1 && n < cap) {
    uint32_t crc;
    if ((err = mbx_store_record_crc(r, lsn, &crc, NULL)) == MBX_ENOTFOUND) {
      err = 0;
      break;                          /* older records are truncated too */
    }
    if (err)
      break;
    lsn_v[n] = lsn;
    crc_v[n++] = crc;
    if (n >= REPL_PROBES_DENSE)
      step *= 2;
    if (lsn <= step) {
      uint64_t first = mbx_store_first_lsn(r);
      if (lsn > 1 && first && first < lsn && n < cap &&
          mbx_store_record_crc(r, first, &crc, NULL) == 0) {
        lsn_v[n] = first;             /* the oldest one this copy still has */
        crc_v[n++] = crc;
      }
      break;
    }
    lsn -= step;
  }
  mbx_store_rtxn_end(&r);
  *n_r = n;
  return err;
}

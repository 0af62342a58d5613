/* rxlog.c — the passive copy's receive log (see rxlog.h).
 *
 * Two segment files, NAME.rxlog.0 and NAME.rxlog.1. Appends go to the current one;
 * once it is past RX_SEGMENT_BYTES and the other is empty, appends switch to the
 * other, and a segment is emptied once the store has taken its last record. Each
 * segment holds contiguous records (checked before anything is written), and the
 * second continues the first, so recovery is: read both, order them, take the
 * records after the store's received LSN while they follow on. At open the files
 * are rewritten to hold exactly those (segment 0) so appends always continue a
 * clean run.
 *
 * Threads: the loop thread queues jobs; one writer thread verifies, writes and
 * fdatasyncs them in groups, and hands completions back through a uv_async. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "logrec.h"
#include "mbx_error.h"
#include "rxlog.h"

#define RX_SEGMENT_BYTES ((off_t)64 << 20)
#define RX_RECOVER_BYTES_MAX ((off_t)2 << 30)   /* a segment larger than this is damaged */

enum rx_kind { RX_APPEND, RX_TAKEN, RX_RESET };

struct rx_job {
  struct rx_job *next;
  enum rx_kind kind;
  const uint8_t *const *recs;
  const size_t *lens;
  size_t n;
  uint64_t lsn, epoch;                /* TAKEN: lsn; RESET: lsn, epoch */
  mbx_repl_rxlog_done_fn done;
  void *arg;
  int status;
  uint64_t last_lsn, bad_lsn;
  int64_t durable_us;
};

struct mbx_repl_rxlog {
  uv_loop_t *loop;
  uv_async_t async;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cond;
  /* guarded by mu */
  struct rx_job *pending, *pending_tail;
  struct rx_job *completed, *completed_tail;
  bool stopping;
  /* writer thread (and open, before it starts) */
  int fd[2];
  off_t size[2];
  uint64_t seg_last[2];               /* last lsn in each segment (0: empty) */
  int cur;
  uint64_t t_last, t_epoch;
  int broken;                         /* sticky: MBX_ECORRUPT / MBX_EIO once refused */
  uint64_t broken_lsn;
  /* loop thread */
  uint64_t last_lsn;
  void (*closed)(void *);
  void *closed_arg;
  char path[4096];                    /* NAME.rxlog (segments add .0 / .1) */
};

/* ---- files -------------------------------------------------------------------------- */

static int rx_write_all(int fd, const uint8_t *p, size_t len, off_t off)
{
  while (len) {
    ssize_t w = pwrite(fd, p, len, off);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return errno == ENOSPC || errno == EDQUOT ? MBX_ENOSPC : MBX_EIO;
    }
    p += w;
    len -= (size_t)w;
    off += w;
  }
  return 0;
}

/* Reads a whole segment; *data_r malloc'd (NULL when empty). */
static int rx_read_file(int fd, uint8_t **data_r, size_t *len_r)
{
  *data_r = NULL;
  *len_r = 0;
  struct stat st;
  if (fstat(fd, &st) != 0)
    return MBX_EIO;
  if (st.st_size == 0)
    return 0;
  if (st.st_size > RX_RECOVER_BYTES_MAX)
    return MBX_ECORRUPT;
  uint8_t *d = malloc((size_t)st.st_size);
  if (!d)
    return MBX_ENOMEM;
  size_t got = 0;
  while (got < (size_t)st.st_size) {
    ssize_t r = pread(fd, d + got, (size_t)st.st_size - got, (off_t)got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0) {
      free(d);
      return MBX_EIO;
    }
    got += (size_t)r;
  }
  *data_r = d;
  *len_r = got;
  return 0;
}

/* One segment's valid prefix: records decoded in order until the first that does
 * not verify or does not follow on. */
struct rx_seg {
  uint8_t *data;
  size_t len, valid;
  uint64_t first_lsn, last_lsn;
};

static void rx_scan(struct rx_seg *g)
{
  size_t off = 0;
  uint64_t prev = 0;
  while (off < g->len) {
    struct mbx_logrec rec;
    size_t left = g->len - off;
    if (left < MBX_LOGREC_HEADER_BYTES)
      break;
    uint32_t ops_len = (uint32_t)g->data[off + 32] << 24 | (uint32_t)g->data[off + 33] << 16 |
                       (uint32_t)g->data[off + 34] << 8 | g->data[off + 35];
    size_t rlen = MBX_LOGREC_HEADER_BYTES + (size_t)ops_len;
    if (rlen > left || mbx_logrec_decode(g->data + off, rlen, &rec) != 0)
      break;
    if (prev && rec.lsn != prev + 1)
      break;
    if (!prev)
      g->first_lsn = rec.lsn;
    prev = g->last_lsn = rec.lsn;
    off += rlen;
  }
  g->valid = off;
}

void mbx_repl_rxlog_recovered_free(struct mbx_repl_rxlog_recovered *r)
{
  free(r->data);
  free(r->recs);
  free(r->lens);
  memset(r, 0, sizeof(*r));
}

/* Collects the records after after_lsn that follow on, from the two segments in lsn
 * order, into one buffer. */
static int rx_collect(struct rx_seg *g, uint64_t after_lsn, uint64_t after_epoch,
                      struct mbx_repl_rxlog_recovered *out, const char *path)
{
  int order[2] = {0, 1};
  if (g[1].valid && (!g[0].valid || g[1].first_lsn < g[0].first_lsn)) {
    order[0] = 1;
    order[1] = 0;
  }
  size_t cap = g[0].valid + g[1].valid, nmax = 0;
  for (int i = 0; i < 2; i++)
    nmax += g[i].valid / MBX_LOGREC_HEADER_BYTES;
  if (cap == 0)
    return 0;
  out->data = malloc(cap);
  out->recs = malloc(nmax * sizeof(*out->recs));
  out->lens = malloc(nmax * sizeof(*out->lens));
  if (!out->data || !out->recs || !out->lens) {
    mbx_repl_rxlog_recovered_free(out);
    return MBX_ENOMEM;
  }
  uint64_t next = after_lsn + 1, epoch = after_epoch;
  size_t used = 0;
  bool gap = false;
  for (int oi = 0; oi < 2 && !gap; oi++) {
    struct rx_seg *s = &g[order[oi]];
    size_t off = 0;
    while (off < s->valid) {
      struct mbx_logrec rec;
      uint32_t ops_len = (uint32_t)s->data[off + 32] << 24 | (uint32_t)s->data[off + 33] << 16 |
                         (uint32_t)s->data[off + 34] << 8 | s->data[off + 35];
      size_t rlen = MBX_LOGREC_HEADER_BYTES + (size_t)ops_len;
      mbx_logrec_decode(s->data + off, rlen, &rec);   /* verified by rx_scan */
      if (rec.lsn >= next) {
        if (rec.lsn != next || rec.epoch < epoch) {
          mbx_warning("%s: record %llu does not follow lsn %llu; the rest is pulled again",
                      path, (unsigned long long)rec.lsn, (unsigned long long)next - 1);
          gap = true;
          break;
        }
        memcpy(out->data + used, s->data + off, rlen);
        out->recs[out->n] = out->data + used;
        out->lens[out->n] = rlen;
        out->n++;
        used += rlen;
        out->last_lsn = rec.lsn;
        epoch = rec.epoch;
        next++;
      }
      off += rlen;
    }
  }
  if (out->n == 0)
    mbx_repl_rxlog_recovered_free(out);
  return 0;
}

static int rx_open_seg(const char *path, int i, int *fd_r)
{
  char p[4200];
  snprintf(p, sizeof(p), "%s.%d", path, i);
  int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    mbx_error("%s: cannot open: %s", p, strerror(errno));
    return MBX_EIO;
  }
  *fd_r = fd;
  return 0;
}

/* Rewrites the segments to hold exactly rec (segment 0) and nothing else. */
static int rx_rewrite(struct mbx_repl_rxlog *rx, const struct mbx_repl_rxlog_recovered *rec)
{
  int rc = 0;
  if (ftruncate(rx->fd[1], 0) != 0 || fsync(rx->fd[1]) != 0)
    return MBX_EIO;
  if (ftruncate(rx->fd[0], 0) != 0)
    return MBX_EIO;
  off_t off = 0;
  for (size_t i = 0; i < rec->n && rc == 0; i++) {
    rc = rx_write_all(rx->fd[0], rec->recs[i], rec->lens[i], off);
    off += (off_t)rec->lens[i];
  }
  if (rc == 0 && fsync(rx->fd[0]) != 0)
    rc = MBX_EIO;
  rx->size[0] = off;
  rx->size[1] = 0;
  rx->seg_last[0] = rec->n ? rec->last_lsn : 0;
  rx->seg_last[1] = 0;
  rx->cur = 0;
  return rc;
}

/* ---- writer thread ---------------------------------------------------------------- */

/* Writes the verified appends in [from, to) (their records) and syncs once. */
static void rx_flush(struct mbx_repl_rxlog *rx, struct rx_job *from, struct rx_job *to)
{
  int rc = 0;
  bool wrote = false;
  for (struct rx_job *j = from; j != to; j = j->next) {
    if (j->kind != RX_APPEND || j->status != 0)
      continue;
    if (rc == 0 && rx->size[rx->cur] > RX_SEGMENT_BYTES && rx->size[!rx->cur] == 0) {
      rx->cur = !rx->cur;             /* the other segment was emptied: continue there */
      rx->seg_last[rx->cur] = 0;
    }
    for (size_t i = 0; i < j->n && rc == 0; i++) {
      rc = rx_write_all(rx->fd[rx->cur], j->recs[i], j->lens[i], rx->size[rx->cur]);
      if (rc == 0)
        rx->size[rx->cur] += (off_t)j->lens[i];
    }
    if (rc == 0) {
      rx->seg_last[rx->cur] = j->last_lsn;
      wrote = true;
    } else {
      j->status = rc;
    }
  }
  if (wrote && rc == 0 && fdatasync(rx->fd[rx->cur]) != 0)
    rc = MBX_EIO;
  int64_t now = mbx_now_us();
  for (struct rx_job *j = from; j != to; j = j->next) {
    if (j->kind != RX_APPEND)
      continue;
    if (j->status == 0 && rc < 0)
      j->status = rc;
    j->durable_us = now;
  }
  if (rc < 0 && !rx->broken) {
    rx->broken = rc;
    rx->broken_lsn = rx->t_last + 1;
    mbx_error("%s: cannot write received records: %s", rx->path, mbx_strerror(rc));
  }
}

/* Verifies one append against the position; on success advances it. */
static void rx_verify(struct mbx_repl_rxlog *rx, struct rx_job *j)
{
  if (rx->broken) {
    j->status = rx->broken;
    j->bad_lsn = rx->broken_lsn;
    return;
  }
  uint64_t next = rx->t_last + 1, epoch = rx->t_epoch;
  for (size_t i = 0; i < j->n; i++) {
    struct mbx_logrec rec;
    if (mbx_logrec_decode(j->recs[i], j->lens[i], &rec) != 0 || rec.lsn != next ||
        rec.epoch < epoch) {
      j->status = MBX_ECORRUPT;
      j->bad_lsn = next;
      rx->broken = MBX_ECORRUPT;
      rx->broken_lsn = next;
      return;
    }
    next++;
    epoch = rec.epoch;
  }
  rx->t_last = next - 1;
  rx->t_epoch = epoch;
  j->last_lsn = rx->t_last;
}

static void rx_truncate(struct mbx_repl_rxlog *rx, int i, bool sync)
{
  if (ftruncate(rx->fd[i], 0) != 0 || (sync && fsync(rx->fd[i]) != 0))
    mbx_warning("%s.%d: cannot empty: %s", rx->path, i, strerror(errno));
  rx->size[i] = 0;
  rx->seg_last[i] = 0;
}

static void rx_run_group(struct mbx_repl_rxlog *rx, struct rx_job *head)
{
  struct rx_job *from = head;
  for (struct rx_job *j = head; j; j = j->next) {
    if (j->kind == RX_APPEND) {
      rx_verify(rx, j);
      continue;
    }
    rx_flush(rx, from, j);            /* what came before is written first */
    from = j->next;
    if (j->kind == RX_TAKEN) {
      for (int i = 0; i < 2; i++)
        if (rx->size[i] && rx->seg_last[i] && rx->seg_last[i] <= j->lsn &&
            (i != rx->cur || rx->size[i] > RX_SEGMENT_BYTES))
          rx_truncate(rx, i, false);  /* a lost truncation only leaves taken records */
    } else {
      rx_truncate(rx, 0, true);
      rx_truncate(rx, 1, true);
      rx->cur = 0;
      rx->t_last = j->lsn;
      rx->t_epoch = j->epoch;
      rx->broken = 0;
    }
  }
  rx_flush(rx, from, NULL);
}

static void *rx_thread(void *p)
{
  struct mbx_repl_rxlog *rx = p;
  pthread_mutex_lock(&rx->mu);
  for (;;) {
    while (!rx->pending && !rx->stopping)
      pthread_cond_wait(&rx->cond, &rx->mu);
    if (!rx->pending)
      break;
    struct rx_job *head = rx->pending, *tail = rx->pending_tail;
    rx->pending = rx->pending_tail = NULL;
    pthread_mutex_unlock(&rx->mu);
    rx_run_group(rx, head);
    pthread_mutex_lock(&rx->mu);
    if (rx->completed_tail)
      rx->completed_tail->next = head;
    else
      rx->completed = head;
    rx->completed_tail = tail;
    uv_async_send(&rx->async);
  }
  pthread_mutex_unlock(&rx->mu);
  return NULL;
}

/* ---- loop thread ------------------------------------------------------------------- */

static void rx_run_completions(struct mbx_repl_rxlog *rx)
{
  pthread_mutex_lock(&rx->mu);
  struct rx_job *j = rx->completed;
  rx->completed = rx->completed_tail = NULL;
  pthread_mutex_unlock(&rx->mu);
  while (j) {
    struct rx_job *next = j->next;
    if (j->kind == RX_APPEND) {
      if (j->status == 0 && j->last_lsn > rx->last_lsn)
        rx->last_lsn = j->last_lsn;
      j->done(j->status, j->last_lsn, j->durable_us, j->bad_lsn, j->arg);
    }
    free(j);
    j = next;
  }
}

static void rx_on_async(uv_async_t *h) { rx_run_completions(h->data); }

static void rx_queue(struct mbx_repl_rxlog *rx, struct rx_job *j)
{
  pthread_mutex_lock(&rx->mu);
  if (rx->pending_tail)
    rx->pending_tail->next = j;
  else
    rx->pending = j;
  rx->pending_tail = j;
  pthread_cond_signal(&rx->cond);
  pthread_mutex_unlock(&rx->mu);
}

int mbx_repl_rxlog_open(uv_loop_t *loop, const char *path, uint64_t store_received_lsn,
                        uint64_t store_epoch, struct mbx_repl_rxlog **rx_r,
                        struct mbx_repl_rxlog_recovered *rec_r)
{
  memset(rec_r, 0, sizeof(*rec_r));
  struct mbx_repl_rxlog *rx = calloc(1, sizeof(*rx));
  if (!rx)
    return MBX_ENOMEM;
  rx->fd[0] = rx->fd[1] = -1;
  rx->loop = loop;
  snprintf(rx->path, sizeof(rx->path), "%s", path);
  struct rx_seg g[2] = {{0}};
  int rc = rx_open_seg(path, 0, &rx->fd[0]);
  if (rc == 0)
    rc = rx_open_seg(path, 1, &rx->fd[1]);
  for (int i = 0; i < 2 && rc == 0; i++) {
    rc = rx_read_file(rx->fd[i], &g[i].data, &g[i].len);
    if (rc == MBX_ECORRUPT) {
      mbx_warning("%s.%d: larger than any receive log segment: ignored", path, i);
      rc = 0;
    }
    if (rc == 0 && g[i].data) {
      rx_scan(&g[i]);
      if (g[i].valid < g[i].len)
        mbx_warning("%s.%d: cut at byte %zu of %zu (a write cut short by a crash, never "
                    "acknowledged, or damage)", path, i, g[i].valid, g[i].len);
    }
  }
  if (rc == 0)
    rc = rx_collect(g, store_received_lsn, store_epoch, rec_r, path);
  if (rc == 0)
    rc = rx_rewrite(rx, rec_r);
  free(g[0].data);
  free(g[1].data);
  rx->t_last = rec_r->n ? rec_r->last_lsn : store_received_lsn;
  rx->t_epoch = store_epoch;
  if (rec_r->n) {
    struct mbx_logrec last;
    if (mbx_logrec_decode(rec_r->recs[rec_r->n - 1], rec_r->lens[rec_r->n - 1], &last) == 0)
      rx->t_epoch = last.epoch;
  }
  rx->last_lsn = rx->t_last;
  if (rc == 0) {
    pthread_mutex_init(&rx->mu, NULL);
    pthread_cond_init(&rx->cond, NULL);
    if (uv_async_init(loop, &rx->async, rx_on_async) != 0) {
      rc = MBX_ENOMEM;
    } else {
      rx->async.data = rx;
      if (pthread_create(&rx->thread, NULL, rx_thread, rx) != 0) {
        /* No thread: nothing can be queued; the handle is closed and freed there. */
        rx->stopping = true;
        mbx_repl_rxlog_close(&rx, NULL, NULL);
        mbx_repl_rxlog_recovered_free(rec_r);
        return MBX_ENOMEM;
      }
    }
  }
  if (rc < 0) {
    for (int i = 0; i < 2; i++)
      if (rx->fd[i] >= 0)
        close(rx->fd[i]);
    mbx_repl_rxlog_recovered_free(rec_r);
    free(rx);
    return rc;
  }
  if (rec_r->n)
    mbx_info("%s: %zu received records after lsn %llu not yet in the store (up to lsn %llu)",
             path, rec_r->n, (unsigned long long)store_received_lsn,
             (unsigned long long)rec_r->last_lsn);
  *rx_r = rx;
  return 0;
}

int mbx_repl_rxlog_append(struct mbx_repl_rxlog *rx, const uint8_t *const *recs,
                          const size_t *lens, size_t n, mbx_repl_rxlog_done_fn done, void *arg)
{
  if (!rx || rx->stopping)
    return MBX_ESHUTDOWN;
  struct rx_job *j = calloc(1, sizeof(*j));
  if (!j)
    return MBX_ENOMEM;
  j->kind = RX_APPEND;
  j->recs = recs;
  j->lens = lens;
  j->n = n;
  j->done = done;
  j->arg = arg;
  rx_queue(rx, j);
  return 0;
}

static void rx_queue_op(struct mbx_repl_rxlog *rx, enum rx_kind kind, uint64_t lsn, uint64_t epoch)
{
  if (!rx || rx->stopping)
    return;
  struct rx_job *j = calloc(1, sizeof(*j));
  if (!j) {
    mbx_warning("%s: out of memory queueing a %s", rx->path, kind == RX_RESET ? "reset" : "trim");
    return;
  }
  j->kind = kind;
  j->lsn = lsn;
  j->epoch = epoch;
  rx_queue(rx, j);
}

void mbx_repl_rxlog_taken(struct mbx_repl_rxlog *rx, uint64_t lsn)
{
  rx_queue_op(rx, RX_TAKEN, lsn, 0);
}

void mbx_repl_rxlog_reset(struct mbx_repl_rxlog *rx, uint64_t lsn, uint64_t epoch)
{
  if (!rx)
    return;
  rx_queue_op(rx, RX_RESET, lsn, epoch);
  rx->last_lsn = lsn;
}

uint64_t mbx_repl_rxlog_last_lsn(const struct mbx_repl_rxlog *rx) { return rx ? rx->last_lsn : 0; }

static void rx_closed(uv_handle_t *h)
{
  struct mbx_repl_rxlog *rx = h->data;
  void (*closed)(void *) = rx->closed;
  void *arg = rx->closed_arg;
  pthread_mutex_destroy(&rx->mu);
  pthread_cond_destroy(&rx->cond);
  free(rx);
  if (closed)
    closed(arg);
}

void mbx_repl_rxlog_close(struct mbx_repl_rxlog **rxp, void (*closed)(void *), void *arg)
{
  struct mbx_repl_rxlog *rx = *rxp;
  *rxp = NULL;
  if (!rx)
    return;
  bool had_thread = !rx->stopping;
  pthread_mutex_lock(&rx->mu);
  rx->stopping = true;
  pthread_cond_signal(&rx->cond);
  pthread_mutex_unlock(&rx->mu);
  if (had_thread)
    pthread_join(rx->thread, NULL);   /* at most one group still to write */
  rx_run_completions(rx);
  for (int i = 0; i < 2; i++)
    if (rx->fd[i] >= 0)
      close(rx->fd[i]);
  rx->closed = closed;
  rx->closed_arg = arg;
  uv_close((uv_handle_t *)&rx->async, rx_closed);
}

void mbx_repl_rxlog_remove(const char *path)
{
  char p[4200];
  for (int i = 0; i < 2; i++) {
    snprintf(p, sizeof(p), "%s.%d", path, i);
    if (unlink(p) != 0 && errno != ENOENT)
      mbx_warning("%s: cannot remove: %s", p, strerror(errno));
  }
}

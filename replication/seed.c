/* seed.c — seeding a passive copy with a consistent snapshot of the database.
 * Receiving side: SeedReq to the source node, SeedChunks written to
 * data_dir/db/NAME.seed.tmp/data.mdb, fsync, then (committer stopped) the old copy
 * is swapped out, the seed opened and reset, and the sink pulls from the snapshot's
 * last LSN + 1. An interrupted seed deletes the temporary dir; the old copy stays.
 * Serving side: mbx_store_snapshot_fd on a threadpool thread writing into a pipe,
 * which the loop reads and streams as SeedChunks with backpressure, each at most 1 MiB
 * and within the receiver's frame limit (SeedReq.max_frame_bytes). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "conn.h"
#include "log.h"
#include "mbx_error.h"
#include "node.h"
#include "nodeconf.h"
#include "parts.h"
#include "peer.h"
#include "sink_int.h"
#include "stream.h"

#define SEED_SEND_QUEUE_MAX (8u << 20)      /* stop reading the snapshot over this */
#define SEED_DRAIN_POLL_MS 5
#define SEED_PROGRESS_US (250 * 1000)
#define SEED_IDLE_TIMEOUT_MS 60000          /* a snapshot of a large db takes a while to start */

/* ---- directories (blocking: threadpool only) ------------------------------------- */

int mbx_repl_rmdir(const char *dir)
{
  DIR *d = opendir(dir);
  if (!d)
    return errno == ENOENT ? 0 : MBX_EIO;
  struct dirent *e;
  char path[4500];
  int rc = 0;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
    if (unlink(path) != 0 && errno != ENOENT)
      rc = MBX_EIO;
  }
  closedir(d);
  if (rmdir(dir) != 0 && errno != ENOENT)
    rc = MBX_EIO;
  return rc;
}

static void seed_paths(const char *dir, const char *name, char *cur, char *old, char *tmp,
                       size_t sz)
{
  snprintf(cur, sz, "%s/%s", dir, name);
  snprintf(old, sz, "%s/%s.old", dir, name);
  snprintf(tmp, sz, "%s/%s.seed.tmp", dir, name);
}

static int seed_fsync_dir(const char *dir)
{
  int fd = open(dir, O_RDONLY | O_DIRECTORY);
  if (fd < 0)
    return MBX_EIO;
  int rc = fsync(fd) == 0 ? 0 : MBX_EIO;
  close(fd);
  return rc;
}

int mbx_repl_seed_swap_dirs(const char *dir, const char *name)
{
  char cur[4400], old[4400], tmp[4400];
  seed_paths(dir, name, cur, old, tmp, sizeof(cur));
  struct stat st;
  if (stat(tmp, &st) != 0 || !S_ISDIR(st.st_mode))
    return MBX_ENOTFOUND;
  if (mbx_repl_rmdir(old) < 0)
    return MBX_EIO;
  if (rename(cur, old) != 0 && errno != ENOENT)
    return MBX_EIO;
  if (rename(tmp, cur) != 0) {
    rename(old, cur);                 /* put the old copy back */
    return MBX_EIO;
  }
  return seed_fsync_dir(dir);
}

/* Undoes mbx_repl_seed_swap_dirs when the new copy cannot be opened. */
static int seed_unswap_dirs(const char *dir, const char *name)
{
  char cur[4400], old[4400], tmp[4400];
  seed_paths(dir, name, cur, old, tmp, sizeof(cur));
  mbx_repl_rmdir(tmp);
  if (rename(cur, tmp) != 0 || rename(old, cur) != 0)
    return MBX_EIO;
  mbx_repl_rmdir(tmp);
  return seed_fsync_dir(dir);
}

/* A crash between the two renames of an install leaves NAME.old without NAME: put
 * the old copy back. Leftover NAME.seed.tmp dirs (a seed cut by a crash) go. */
int mbx_repl_seed_recover(const char *dir)
{
  DIR *d = opendir(dir);
  if (!d)
    return MBX_EIO;
  struct dirent *e;
  int rc = 0;
  while ((e = readdir(d)) != NULL) {
    size_t len = strlen(e->d_name);
    char path[4400], cur[4400];
    if (len > 4 && strcmp(e->d_name + len - 4, ".old") == 0) {
      snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
      snprintf(cur, sizeof(cur), "%s/%.*s", dir, (int)(len - 4), e->d_name);
      struct stat st;
      if (stat(cur, &st) != 0 && errno == ENOENT) {
        mbx_warning("restoring %s: a seed install was interrupted", cur);
        if (rename(path, cur) != 0)
          rc = MBX_EIO;
      }
    } else if (len > 9 && strcmp(e->d_name + len - 9, ".seed.tmp") == 0) {
      snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
      mbx_info("removing %s: left by an interrupted seed", path);
      if (mbx_repl_rmdir(path) < 0)
        rc = MBX_EIO;
    }
  }
  closedir(d);
  return rc;
}

/* ---- receiving ------------------------------------------------------------------------ */

struct mbx_repl_seed_rx {
  struct mbx_repl_sink *k;
  struct mbx_stream *stream;
  char source[64];
  uint64_t id;
  int fd;
  uint64_t offset, total;
  uv_fs_t fs;
  uv_buf_t buf;
  Mbx__Response *chunk;               /* being written */
  bool writing, last, aborted, installing;
  int64_t last_progress_us;
  uv_work_t work;
  /* install (threadpool) */
  struct mbx_store *old_store, *new_store;
  struct mbx_store_copy_meta meta;
  int rc;
  char why[256];
  uint64_t snapshot_lsn;
};

static void seed_rx_end(struct mbx_repl_seed_rx *x, int status, const char *why);

static void seed_rx_progress(struct mbx_repl_seed_rx *x, bool force)
{
  struct mbx_repl_sink *k = x->k;
  k->seed_done = x->offset;
  k->seed_total = x->total > x->offset ? x->total : x->offset;
  int64_t now = mbx_now_us();
  if (!k->progress_cb || (!force && now - x->last_progress_us < SEED_PROGRESS_US))
    return;
  x->last_progress_us = now;
  k->progress_cb(k->seed_done, k->seed_total, false, 0, 0, k->progress_arg);
}

static void seed_rx_detach_stream(struct mbx_repl_seed_rx *x)
{
  if (!x->stream)
    return;
  mbx_stream_set_arg(x->stream, NULL);
  mbx_stream_close(x->stream, 0);
  x->stream = NULL;
}

static void seed_install_work(uv_work_t *w)
{
  struct mbx_repl_seed_rx *x = w->data;
  struct mbx_node *n = x->k->node;
  const char *name = x->k->db->name;
  x->rc = 0;
  if (fsync(x->fd) != 0) {
    x->rc = MBX_EIO;
    snprintf(x->why, sizeof(x->why), "cannot sync the seed file: %s", strerror(errno));
  }
  close(x->fd);
  x->fd = -1;
  if (x->rc < 0)
    return;
  mbx_store_close(&x->old_store);
  int rc = mbx_repl_seed_swap_dirs(n->db_dir, name);
  if (rc < 0) {
    snprintf(x->why, sizeof(x->why), "cannot install the seed in %.120s: %s", n->db_dir,
             mbx_strerror(rc));
    goto reopen_old;
  }
  const char *why = NULL;
  rc = mbx_store_open(n->db_dir, name, false, &n->store_opt, &x->new_store, &why);
  if (rc == 0)
    rc = mbx_store_reset_after_seed(x->new_store);
  if (rc == 0)
    rc = mbx_store_set_copy_meta(x->new_store, &x->meta);
  if (rc < 0) {
    snprintf(x->why, sizeof(x->why), "cannot open the seeded copy: %s",
             why ? why : mbx_strerror(rc));
    if (x->new_store)
      mbx_store_close(&x->new_store);
    seed_unswap_dirs(n->db_dir, name);
    goto reopen_old;
  }
  x->snapshot_lsn = mbx_store_last_lsn(x->new_store);
  char old[4400];
  snprintf(old, sizeof(old), "%s/%s.old", n->db_dir, name);
  mbx_repl_rmdir(old);
  return;
reopen_old:
  x->rc = rc < 0 ? rc : MBX_EIO;
  why = NULL;
  if (mbx_store_open(n->db_dir, name, false, &n->store_opt, &x->new_store, &why) < 0)
    mbx_error("db %s: cannot reopen the old copy after a failed seed: %s", name,
              why ? why : "?");
}

static void seed_install_after(uv_work_t *w, int status)
{
  struct mbx_repl_seed_rx *x = w->data;
  struct mbx_repl_sink *k = x->k;
  struct mbx_db *db = k->db;
  struct mbx_node *n = k->node;
  struct mbx_store *store;
  if (status == UV_ECANCELED) {       /* never ran: the old store is still open */
    store = x->old_store;
    x->rc = MBX_ESHUTDOWN;
    snprintf(x->why, sizeof(x->why), "node shutting down");
  } else {
    store = x->new_store;
  }
  x->installing = false;
  if (mbx_db_attach_store(n, db, store) < 0)
    mbx_error("db %s: cannot restart the committer after seeding: %s", db->name,
              mbx_db_reason(db));
  if (x->rc == 0)
    k->meta = x->meta;
  seed_rx_end(x, x->rc, x->why);
}

/* The last chunk is on disk: swap the copies while nothing else touches the store. */
static void seed_rx_install(struct mbx_repl_seed_rx *x)
{
  struct mbx_repl_sink *k = x->k;
  struct mbx_db *db = k->db;
  seed_rx_detach_stream(x);
  /* SWAPPING: nothing of ours is queued (the sink waited); the committer stops */
  if (mbx_db_detach_store(db, false, &x->old_store) < 0) {
    seed_rx_end(x, MBX_EINVAL, "the copy is not passive: the seed is not installed");
    return;
  }
  x->meta = k->meta;
  x->meta.needs_reseed = x->meta.failed = x->meta.diverged = false;
  x->meta.diverged_lsn = 0;
  x->meta.reason[0] = 0;
  x->meta.seed_source[0] = 0;         /* later automatic reseeds come from the active */
  x->installing = true;
  x->work.data = x;
  if (uv_queue_work(k->node->loop, &x->work, seed_install_work, seed_install_after) != 0) {
    x->installing = false;
    mbx_db_attach_store(k->node, db, x->old_store);
    seed_rx_end(x, MBX_ENOMEM, "cannot queue the install");
  }
}

static void seed_rx_fail(struct mbx_repl_seed_rx *x, int status, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));

static void seed_rx_fail(struct mbx_repl_seed_rx *x, int status, const char *fmt, ...)
{
  char why[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof(why), fmt, ap);
  va_end(ap);
  seed_rx_detach_stream(x);
  if (x->writing) {                   /* the write callback finishes the job */
    x->aborted = true;
    x->rc = status;
    snprintf(x->why, sizeof(x->why), "%s", why);
    return;
  }
  seed_rx_end(x, status, why);
}

static void seed_rx_written(uv_fs_t *req)
{
  struct mbx_repl_seed_rx *x = req->data;
  ssize_t res = req->result;
  uv_fs_req_cleanup(req);
  x->writing = false;
  size_t want = x->buf.len;
  mbx__response__free_unpacked(x->chunk, NULL);
  x->chunk = NULL;
  if (x->aborted) {
    seed_rx_end(x, x->rc, x->why);
    return;
  }
  if (res < 0 || (size_t)res != want) {
    seed_rx_fail(x, MBX_EIO, "cannot write the seed file: %s",
                 res < 0 ? uv_strerror((int)res) : "short write");
    return;
  }
  x->offset += want;
  seed_rx_progress(x, false);
  if (x->last) {
    seed_rx_install(x);
    return;
  }
  if (x->stream)
    mbx_stream_pause(x->stream, false);
}

static void seed_rx_on_frame(struct mbx_stream *s, const uint8_t *frame, size_t len, void *arg)
{
  struct mbx_repl_seed_rx *x = arg;
  if (!x || x->stream != s)
    return;
  Mbx__Response *resp = mbx__response__unpack(NULL, len, frame);
  if (!resp || resp->id != x->id) {
    if (resp)
      mbx__response__free_unpacked(resp, NULL);
    seed_rx_fail(x, MBX_EPROTO, "%s sent an invalid seed frame", x->source);
    return;
  }
  if (resp->error) {
    int code = mbx_error_from_wire(resp->error->code);
    char msg[200];
    snprintf(msg, sizeof(msg), "%s", resp->error->message ? resp->error->message : "");
    mbx__response__free_unpacked(resp, NULL);
    seed_rx_fail(x, code, "%s refused the seed: %s", x->source, msg);
    return;
  }
  Mbx__SeedChunk *c = resp->body_case == MBX__RESPONSE__BODY_SEED_CHUNK ? resp->seed_chunk : NULL;
  if (!c || c->offset != x->offset) {
    mbx__response__free_unpacked(resp, NULL);
    seed_rx_fail(x, MBX_EPROTO, "%s sent a seed chunk out of order", x->source);
    return;
  }
  if (c->has_total_bytes)
    x->total = c->total_bytes;
  x->last = c->last;
  x->chunk = resp;
  x->buf = uv_buf_init((char *)c->data.data, (unsigned)c->data.len);
  x->fs.data = x;
  x->writing = true;
  mbx_stream_pause(s, true);          /* one chunk in flight to the disk */
  int rc = uv_fs_write(x->k->node->loop, &x->fs, x->fd, &x->buf, 1, (int64_t)x->offset,
                       seed_rx_written);
  if (rc < 0) {
    x->writing = false;
    x->chunk = NULL;
    mbx__response__free_unpacked(resp, NULL);
    seed_rx_fail(x, MBX_EIO, "cannot write the seed file: %s", uv_strerror(rc));
  }
}

static void seed_rx_on_close(struct mbx_stream *s, int status, void *arg)
{
  (void)s;
  struct mbx_repl_seed_rx *x = arg;
  if (!x)
    return;
  x->stream = NULL;
  if (status == MBX_EPERM)
    seed_rx_fail(x, MBX_EPERM, "the node at %s is not %s (its certificate names another "
                 "node): check peer.%s", mbx_peer_addr_or(x->k->node, x->source), x->source,
                 x->source);
  else
    seed_rx_fail(x, MBX_EPEER, "connection to %s lost during the seed (%s)", x->source,
                 mbx_strerror(status ? status : MBX_ECLOSED));
}

static const struct mbx_stream_callbacks seed_rx_cb = {
  .on_frame = seed_rx_on_frame,
  .on_close = seed_rx_on_close,
};

/* Ends the seed: on failure the temporary dir goes and the old copy stays. */
static void seed_rx_end(struct mbx_repl_seed_rx *x, int status, const char *why)
{
  struct mbx_repl_sink *k = x->k;
  seed_rx_detach_stream(x);
  if (x->fd >= 0)
    close(x->fd);
  if (status < 0) {
    char tmp[4400];
    snprintf(tmp, sizeof(tmp), "%s/%s.seed.tmp", k->node->db_dir, k->db->name);
    mbx_repl_rmdir(tmp);
    mbx_warning("db %s: seed from %s failed after %llu bytes: %s", k->db->name, x->source,
                (unsigned long long)x->offset, why ? why : mbx_strerror(status));
  } else {
    mbx_notice("db %s: seeded from %s: %llu bytes, snapshot lsn %llu", k->db->name, x->source,
               (unsigned long long)x->offset, (unsigned long long)x->snapshot_lsn);
  }
  uint64_t lsn = x->snapshot_lsn;
  k->seed = NULL;
  free(x);
  mbx_repl_sink_seed_done(k, status, why, lsn);
}

int mbx_repl_seed_start(struct mbx_repl_sink *k, const char *source_node)
{
  struct mbx_node *n = k->node;
  if (k->serving)
    return MBX_EBUSY;                 /* a snapshot thread is reading this store */
  const char *addr = mbx_peer_addr(n, source_node);
  char host[64];
  uint16_t port;
  if (!addr || mbx_nodeconf_parse_listen(addr, host, sizeof(host), &port) < 0)
    return MBX_ENOTFOUND;
  struct mbx_repl_seed_rx *x = calloc(1, sizeof(*x));
  if (!x)
    return MBX_ENOMEM;
  x->k = k;
  x->fd = -1;
  snprintf(x->source, sizeof(x->source), "%s", source_node);
  char tmp[4400], file[4500];
  snprintf(tmp, sizeof(tmp), "%s/%s.seed.tmp", n->db_dir, k->db->name);
  snprintf(file, sizeof(file), "%s/data.mdb", tmp);
  mbx_repl_rmdir(tmp);                /* a leftover of an interrupted seed */
  if (mkdir(tmp, 0700) != 0 ||
      (x->fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
    mbx_error("db %s: cannot create %s: %s", k->db->name, file, strerror(errno));
    mbx_repl_rmdir(tmp);
    free(x);
    return MBX_EIO;
  }
  struct mbx_stream_options opt = n->stream_opt;
  opt.idle_timeout_ms = SEED_IDLE_TIMEOUT_MS;
  opt.expect_peer_cn = source_node;   /* a snapshot only from the node we mean */
  opt.expect_peer_ou = "node";
  int rc = mbx_stream_connect(n->loop, host, port, k->tls, &opt, &seed_rx_cb, x, &x->stream);
  if (rc == 0) {
    Mbx__SeedReq q = MBX__SEED_REQ__INIT;
    q.db = k->db->name;
    q.node = (char *)n->conf->node_name;
    q.has_max_frame_bytes = 1;        /* chunks must fit what this stream accepts */
    q.max_frame_bytes = opt.max_frame_bytes;
    Mbx__Request rq = MBX__REQUEST__INIT;
    rq.id = x->id = 1;
    rq.body_case = MBX__REQUEST__BODY_SEED;
    rq.seed = &q;
    rc = mbx_stream_send_pb(x->stream, &rq.base);
    if (rc < 0)
      seed_rx_detach_stream(x);
  }
  if (rc < 0) {
    close(x->fd);
    mbx_repl_rmdir(tmp);
    free(x);
    return rc;
  }
  k->seed = x;
  k->seed_done = 0;
  k->seed_total = 0;
  mbx_notice("db %s: seeding from %s (%s)", k->db->name, source_node, addr);
  seed_rx_progress(x, true);
  return 0;
}

void mbx_repl_seed_abort(struct mbx_repl_sink *k)
{
  struct mbx_repl_seed_rx *x = k->seed;
  if (!x || x->installing)
    return;                           /* an install finishes on its own */
  seed_rx_fail(x, MBX_ESHUTDOWN, "seed abandoned (copy stopped)");
}

/* ---- serving ---------------------------------------------------------------------------- */

struct seed_tx {
  struct mbx_req *r;
  struct mbx_db *db;
  struct mbx_store *store;
  struct mbx_repl_sink *k;            /* the passive copy serving, or NULL (active) */
  int wfd;
  uv_pipe_t pipe;
  uv_timer_t drain;
  uv_work_t work;
  uint8_t *buf;
  size_t len, chunk;                  /* bytes in buf; a chunk's size (fits the receiver) */
  uint64_t offset, total;
  int snap_rc;
  bool work_done, eof, reading, finished;
  int handles;
};

static void seed_tx_handle_closed(uv_handle_t *h)
{
  struct seed_tx *t = h->data;
  if (--t->handles > 0)
    return;
  struct mbx_repl_sink *k = t->k;
  free(t->buf);
  free(t);
  if (k) {
    if (--k->serving == 0)
      k->serving_node[0] = 0;
    mbx_repl_sink_maybe_free(k);
  }
}

static bool seed_tx_conn_open(const struct seed_tx *t) { return mbx_req_open(t->r); }

static void seed_tx_fill_chunk(struct seed_tx *t, Mbx__SeedChunk *c, bool last)
{
  c->has_data = c->has_offset = c->has_last = c->has_total_bytes = 1;
  c->data.data = t->buf;
  c->data.len = t->len;
  c->offset = t->offset;
  c->last = last;
  c->total_bytes = last ? t->offset + t->len : t->total;
}

/* Both the snapshot thread and the pipe are done (or the connection went away). */
static void seed_tx_finish(struct seed_tx *t)
{
  if (t->finished || !t->work_done || !t->eof)
    return;
  t->finished = true;
  struct mbx_req *r = t->r;
  Mbx__SeedChunk c = MBX__SEED_CHUNK__INIT;
  if (t->snap_rc < 0) {
    r->status = t->snap_rc;
    r->errmsg = mbx_arena_printf(&r->arena, "snapshot of %s failed: %s", t->db->name,
                                 mbx_strerror(t->snap_rc));
    mbx_warning("db %s: seed for %s failed: %s", t->db->name, r->rq->seed->node,
                mbx_strerror(t->snap_rc));
  } else {
    seed_tx_fill_chunk(t, &c, true);
    r->resp.body_case = MBX__RESPONSE__BODY_SEED_CHUNK;
    r->resp.seed_chunk = &c;
    mbx_notice("db %s: seed for %s sent: %llu bytes", t->db->name, r->rq->seed->node,
               (unsigned long long)(t->offset + t->len));
  }
  mbx_req_finish(r);                  /* packs c now */
  t->r = NULL;
  uv_close((uv_handle_t *)&t->drain, seed_tx_handle_closed);
  if (!uv_is_closing((uv_handle_t *)&t->pipe))
    uv_close((uv_handle_t *)&t->pipe, seed_tx_handle_closed);
}

static void seed_tx_abandon(struct seed_tx *t)
{
  /* Closing the read end makes the snapshot thread's writes fail (EPIPE). */
  t->eof = true;
  t->snap_rc = t->snap_rc < 0 ? t->snap_rc : MBX_ECLOSED;
  if (!uv_is_closing((uv_handle_t *)&t->pipe))
    uv_close((uv_handle_t *)&t->pipe, seed_tx_handle_closed);
  seed_tx_finish(t);
}

static void seed_tx_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
  (void)suggested;
  struct seed_tx *t = h->data;
  *b = uv_buf_init((char *)t->buf + t->len, (unsigned)(t->chunk - t->len));
}

static void seed_tx_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);

static void seed_tx_on_drain(uv_timer_t *h)
{
  struct seed_tx *t = h->data;
  if (!seed_tx_conn_open(t)) {
    uv_timer_stop(h);
    seed_tx_abandon(t);
    return;
  }
  if (mbx_stream_write_queue_bytes(t->r->conn->stream) > SEED_SEND_QUEUE_MAX / 4)
    return;
  uv_timer_stop(h);
  t->reading = true;
  uv_read_start((uv_stream_t *)&t->pipe, seed_tx_alloc, seed_tx_on_read);
}

static int seed_tx_send_chunk(struct seed_tx *t)
{
  Mbx__SeedChunk c = MBX__SEED_CHUNK__INIT;
  seed_tx_fill_chunk(t, &c, false);
  Mbx__Response resp = MBX__RESPONSE__INIT;
  resp.body_case = MBX__RESPONSE__BODY_SEED_CHUNK;
  resp.seed_chunk = &c;
  int rc = mbx_req_send(t->r, &resp);
  if (rc < 0)
    return rc;
  t->offset += t->len;
  t->len = 0;
  return 0;
}

static void seed_tx_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
  (void)b;
  struct seed_tx *t = s->data;
  if (nread == UV_EOF || nread < 0) {
    uv_read_stop(s);
    t->reading = false;
    t->eof = true;
    if (nread != UV_EOF && t->snap_rc == 0)
      t->snap_rc = MBX_EIO;
    seed_tx_finish(t);
    return;
  }
  t->len += (size_t)nread;
  if (t->len < t->chunk)
    return;
  if (!seed_tx_conn_open(t) || seed_tx_send_chunk(t) < 0) {
    uv_read_stop(s);
    seed_tx_abandon(t);
    return;
  }
  if (mbx_stream_write_queue_bytes(t->r->conn->stream) > SEED_SEND_QUEUE_MAX) {
    uv_read_stop(s);                  /* backpressure: the receiver is slower than the disk */
    t->reading = false;
    uv_timer_start(&t->drain, seed_tx_on_drain, SEED_DRAIN_POLL_MS, SEED_DRAIN_POLL_MS);
  }
}

static void seed_tx_work(uv_work_t *w)
{
  struct seed_tx *t = w->data;
  t->snap_rc = mbx_store_snapshot_fd(t->store, t->wfd);
  close(t->wfd);
  t->wfd = -1;
}

static void seed_tx_work_after(uv_work_t *w, int status)
{
  struct seed_tx *t = w->data;
  if (status == UV_ECANCELED) {
    close(t->wfd);
    t->snap_rc = MBX_ESHUTDOWN;
  }
  t->work_done = true;
  if (t->k && t->snap_rc == 0)
    mbx_debug("db %s: snapshot for a seed written", t->db->name);
  seed_tx_finish(t);
}

int mbx_repl_seed_serve(struct mbx_req *r, struct mbx_db *db)
{
  struct mbx_node *n = r->conn->node;
  if (!db->store || (db->sink && (db->sink->seed || db->sink->meta.failed ||
                                  db->sink->meta.needs_reseed))) {
    r->status = MBX_EBUSY;
    r->errmsg = mbx_arena_printf(&r->arena, "the copy of %s on %s is not healthy enough to "
                                 "seed from", db->name, n->conf->node_name);
    return r->status;
  }
  uint64_t rq_records = 0, rq_bytes = 0;
  if (db->sink && mbx_store_replay_queue(db->store, &rq_records, &rq_bytes) == 0 && rq_records) {
    /* The snapshot holds replayed state only: it would be older than what this copy
     * (and so the active's truncation floor) already has. */
    r->status = MBX_EBUSY;
    r->errmsg = mbx_arena_printf(&r->arena, "the copy of %s on %s has %llu records not yet "
                                 "replayed (a lagged copy); seed from the active or a copy "
                                 "without lag", db->name, n->conf->node_name,
                                 (unsigned long long)rq_records);
    return r->status;
  }
  const Mbx__SeedReq *q = r->rq->seed;
  size_t chunk = mbx_repl_batch_budget(q->has_max_frame_bytes ? q->max_frame_bytes : 0);
  struct seed_tx *t = calloc(1, sizeof(*t));
  uint8_t *buf = malloc(chunk);
  int fds[2];
  if (!t || !buf || pipe2(fds, O_CLOEXEC) != 0) {
    free(t);
    free(buf);
    r->status = MBX_ENOMEM;
    return r->status;
  }
  t->r = r;
  t->db = db;
  t->store = db->store;
  t->buf = buf;
  t->chunk = chunk;
  t->wfd = fds[1];
  t->total = mbx_store_file_bytes(db->store);
  /* Read before the snapshot's own read transaction begins: a lower bound of its LSN. */
  uint64_t from_lsn = mbx_store_last_lsn(db->store);
  uv_pipe_init(n->loop, &t->pipe, 0);
  uv_timer_init(n->loop, &t->drain);
  t->pipe.data = t->drain.data = t;
  t->handles = 2;
  t->work.data = t;
  int rc = uv_pipe_open(&t->pipe, fds[0]);
  if (rc == 0)
    rc = uv_read_start((uv_stream_t *)&t->pipe, seed_tx_alloc, seed_tx_on_read);
  if (rc == 0)
    rc = uv_queue_work(n->loop, &t->work, seed_tx_work, seed_tx_work_after);
  if (rc != 0) {
    close(fds[1]);
    if (!uv_is_closing((uv_handle_t *)&t->pipe))
      uv_close((uv_handle_t *)&t->pipe, seed_tx_handle_closed);
    else
      close(fds[0]);
    uv_close((uv_handle_t *)&t->drain, seed_tx_handle_closed);
    r->status = MBX_EIO;
    r->errmsg = mbx_arena_printf(&r->arena, "cannot start a snapshot: %s", uv_strerror(rc));
    return r->status;
  }
  t->reading = true;
  if (db->sink) {
    t->k = db->sink;
    t->k->serving++;
    snprintf(t->k->serving_node, sizeof(t->k->serving_node), "%s", r->rq->seed->node);
    t->k->serving_from_lsn = from_lsn;
  }
  mbx_notice("db %s: seeding %s from this copy (%llu bytes on disk)", db->name,
             r->rq->seed->node, (unsigned long long)t->total);
  return 1;
}

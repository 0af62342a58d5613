/* node.c — the node: opens the databases under data_dir/db/ (one store and one
 * group committer each), listens for TLS clients, and shuts down gracefully on
 * SIGTERM/SIGINT (finish what is in flight, then close everything). */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "clock.h"
#include "conn.h"
#include "log.h"
#include "mbx_error.h"
#include "node.h"
#include "notify.h"
#include "passwd.h"
#include "peer.h"
#include "repl.h"
#include "sink_int.h"

#define NODE_DRAIN_US (5 * 1000 * 1000)    /* how long shutdown waits for requests */
#define NODE_DRAIN_POLL_MS 20

/* ---- databases -------------------------------------------------------------- */

bool mbx_node_db_name_ok(const char *name)
{
  size_t n = strlen(name);
  if (n < 1 || n > MBX_DB_NAME_MAX)
    return false;
  for (size_t i = 0; i < n; i++) {
    char ch = name[i];
    bool ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              (i > 0 && (ch == '_' || ch == '-'));
    if (!ok)
      return false;
  }
  return true;
}

struct mbx_db *mbx_node_db(struct mbx_node *n, const char *name)
{
  for (size_t i = 0; i < n->n_dbs; i++)
    if (strcmp(n->dbs[i]->name, name) == 0)
      return n->dbs[i];
  return NULL;
}

int mbx_node_db_add(struct mbx_node *n, const char *name, struct mbx_db **db_r)
{
  if (n->n_dbs >= MBX_NODE_DBS_MAX)
    return MBX_ELIMIT;
  struct mbx_db *db = mbx_db_new(name);
  struct mbx_db **v = realloc(n->dbs, (n->n_dbs + 1) * sizeof(*v));
  if (!db || !v) {
    free(db);
    if (v)
      n->dbs = v;
    return MBX_ENOMEM;
  }
  n->dbs = v;
  n->dbs[n->n_dbs++] = db;
  *db_r = db;
  return 0;
}

void mbx_node_db_remove(struct mbx_node *n, struct mbx_db *db)
{
  for (size_t i = 0; i < n->n_dbs; i++) {
    if (n->dbs[i] == db) {
      memmove(&n->dbs[i], &n->dbs[i + 1], (n->n_dbs - i - 1) * sizeof(*n->dbs));
      n->n_dbs--;
      free(db);
      return;
    }
  }
}

static void node_stop_repl_all(struct mbx_node *n)
{
  for (size_t i = 0; i < n->n_dbs; i++)
    mbx_db_stop_repl(n->dbs[i]);
  mbx_peer_shutdown(n);
}

static int node_mkdir(const char *path, char *err, size_t errsz)
{
  if (mkdir(path, 0700) == 0 || errno == EEXIST)
    return 0;
  snprintf(err, errsz, "cannot create directory %s: %s", path, strerror(errno));
  return MBX_EIO;
}

/* Opens one existing database and starts its committer. */
static int node_open_db(struct mbx_node *n, const char *name, char *err, size_t errsz)
{
  struct mbx_db *db;
  int rc = mbx_node_db_add(n, name, &db);
  if (rc < 0) {
    snprintf(err, errsz, "database %s: %s", name, mbx_strerror(rc));
    return rc;
  }
  const char *why = NULL;
  struct mbx_store *store = NULL;
  rc = mbx_store_open(n->db_dir, name, false, &n->store_opt, &store, &why);
  if (rc < 0) {
    snprintf(err, errsz, "cannot open database %s in %s: %s", name, n->db_dir,
             why ? why : mbx_strerror(rc));
    mbx_node_db_remove(n, db);
    return rc;
  }
  if ((rc = mbx_db_mount(n, db, store)) < 0) {
    snprintf(err, errsz, "database %s: %s", name, mbx_db_reason(db));
    return rc;                        /* node start fails: everything is stopped there */
  }
  mbx_debug("db %s: opened, epoch %llu, last lsn %llu", name,
           (unsigned long long)mbx_store_epoch(db->store),
           (unsigned long long)mbx_store_last_lsn(db->store));
  return 0;
}

static int node_open_dbs(struct mbx_node *n, char *err, size_t errsz)
{
  mbx_repl_seed_recover(n->db_dir);   /* a seed install cut by a crash (replication/seed.c) */
  DIR *d = opendir(n->db_dir);
  if (!d) {
    snprintf(err, errsz, "cannot read %s: %s", n->db_dir, strerror(errno));
    return MBX_EIO;
  }
  int rc = 0;
  struct dirent *e;
  while (rc == 0 && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    char path[4400];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", n->db_dir, e->d_name);
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
      continue;
    if (!mbx_node_db_name_ok(e->d_name)) {
      mbx_warning("ignoring %s: not a database name", path);
      continue;
    }
    rc = node_open_db(n, e->d_name, err, errsz);
  }
  closedir(d);
  return rc;
}

/* ---- listener and signals ----------------------------------------------------- */

static void node_on_connection(uv_stream_t *server, int status)
{
  struct mbx_node *n = server->data;
  if (status < 0) {
    mbx_warning("accept failed: %s", uv_strerror(status));
    return;
  }
  if (n->stopping)
    return;
  mbx_conn_accept(n);
}

static void node_on_signal(uv_signal_t *h, int signum)
{
  struct mbx_node *n = h->data;
  mbx_notice("%s received", signum == SIGTERM ? "SIGTERM" : "SIGINT");
  mbx_node_shutdown(n);
}

static int node_listen(struct mbx_node *n, char *err, size_t errsz)
{
  struct sockaddr_storage ss;
  int rc = strchr(n->conf->listen_host, ':')
             ? uv_ip6_addr(n->conf->listen_host, n->conf->listen_port, (struct sockaddr_in6 *)&ss)
             : uv_ip4_addr(n->conf->listen_host, n->conf->listen_port, (struct sockaddr_in *)&ss);
  if (rc == 0)
    rc = uv_tcp_init(n->loop, &n->listener);
  if (rc != 0) {
    snprintf(err, errsz, "cannot listen on %s: %s", n->conf->listen, uv_strerror(rc));
    return MBX_EIO;
  }
  n->listener.data = n;
  n->listening = true;
  rc = uv_tcp_bind(&n->listener, (const struct sockaddr *)&ss, 0);
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)&n->listener, 511, node_on_connection);
  if (rc != 0) {
    snprintf(err, errsz, "cannot listen on %s: %s", n->conf->listen, uv_strerror(rc));
    return MBX_EIO;
  }
  return 0;
}

/* ---- shutdown ------------------------------------------------------------------- */

static void node_close_handles(struct mbx_node *n)
{
  if (n->closed_handles)
    return;
  n->closed_handles = true;
  if (n->listening)
    uv_close((uv_handle_t *)&n->listener, NULL);
  n->listening = false;
  uv_close((uv_handle_t *)&n->sig_term, NULL);
  uv_close((uv_handle_t *)&n->sig_int, NULL);
  uv_close((uv_handle_t *)&n->drain_timer, NULL);
}

/* Everything in flight is answered (or the drain time is up): close connections and
 * let the committers finish their queues. */
static void node_finish_shutdown(struct mbx_node *n)
{
  uv_timer_stop(&n->drain_timer);
  for (struct mbx_conn *c = n->conns, *next; c; c = next) {
    next = c->next;                   /* closing may free c */
    mbx_conn_close(c, 0);
  }
  for (size_t i = 0; i < n->n_dbs; i++)
    mbx_committer_stop(&n->dbs[i]->committer);
  node_close_handles(n);
  mbx_notice("%s stopped", n->conf->node_name);
}

static uint32_t node_inflight(const struct mbx_node *n)
{
  uint32_t total = 0;
  for (const struct mbx_conn *c = n->conns; c; c = c->next)
    total += c->inflight;
  return total;
}

static void node_on_drain_timer(uv_timer_t *t)
{
  struct mbx_node *n = t->data;
  uint32_t left = node_inflight(n);
  if (left == 0)
    node_finish_shutdown(n);
  else if (mbx_mono_us() >= n->drain_deadline_us) {
    mbx_warning("shutdown: %u requests still in flight after %d s; closing anyway", left,
                NODE_DRAIN_US / 1000000);
    node_finish_shutdown(n);
  }
}

void mbx_node_shutdown(struct mbx_node *n)
{
  if (n->stopping)
    return;
  n->stopping = true;
  node_stop_repl_all(n);              /* ends the pulls (requests in flight) at once */
  mbx_notify_stop(n);                 /* and the subscriptions (ESHUTDOWN) */
  uint32_t left = node_inflight(n);
  mbx_notice("%s shutting down: %zu connections, %u requests in flight", n->conf->node_name,
             n->n_conns, left);
  if (n->listening)
    uv_close((uv_handle_t *)&n->listener, NULL);
  n->listening = false;
  for (struct mbx_conn *c = n->conns; c; c = c->next)
    mbx_conn_pause(c, true);
  n->drain_deadline_us = mbx_mono_us() + NODE_DRAIN_US;
  uv_timer_start(&n->drain_timer, node_on_drain_timer, 0, NODE_DRAIN_POLL_MS);
}

void mbx_node_conn_removed(struct mbx_node *n) { (void)n; }

/* ---- start / free --------------------------------------------------------------- */

int mbx_node_start(uv_loop_t *loop, const struct mbx_nodeconf *conf, struct mbx_node **node_r,
                   char *err, size_t errsz)
{
  *node_r = NULL;
  struct mbx_node *n = calloc(1, sizeof(*n));
  if (!n) {
    snprintf(err, errsz, "out of memory");
    return MBX_ENOMEM;
  }
  n->loop = loop;
  n->conf = conf;
  n->stream_opt.max_frame_bytes = conf->max_frame_bytes;
  n->stream_opt.handshake_timeout_ms = (uint32_t)conf->handshake_timeout_ms;
  n->stream_opt.idle_timeout_ms = (uint32_t)(conf->idle_timeout_s * 1000);
  n->stream_opt.max_write_queue_bytes = 4 * conf->max_frame_bytes + 64 * 1024 * 1024;
  mbx_store_options_default(&n->store_opt);
  n->store_opt.map_size_bytes = conf->db_map_size;
  n->store_opt.max_message_bytes = conf->max_message_bytes;
  n->store_opt.log_retain_bytes = conf->log_retain_bytes;
  n->store_opt.default_quota_warn_bytes = conf->default_quota_warn;
  n->store_opt.default_quota_prohibit_bytes = conf->default_quota_prohibit;
  n->store_opt.idem_keep_s = conf->idempotency_keep_s;
  n->commit_opt.batch_max = (uint32_t)conf->commit_batch_max;
  n->commit_opt.queue_max = (uint32_t)conf->commit_queue_max;
  n->commit_opt.batch_bytes = conf->commit_batch_bytes;
  snprintf(n->db_dir, sizeof(n->db_dir), "%s/db", conf->data_dir);

  const char *why = NULL;
  int rc = mbx_tls_ctx_new_server(conf->tls_cert, conf->tls_key, conf->tls_ca, &n->tls, &why);
  if (rc < 0) {
    snprintf(err, errsz, "TLS setup failed: %s", why ? why : mbx_strerror(rc));
    goto fail;
  }
  /* Unknown users are verified against this so failures take the same time. */
  if ((rc = mbx_passwd_hash("mbx-unknown-user", n->dummy_hash, sizeof(n->dummy_hash))) < 0) {
    snprintf(err, errsz, "cannot hash a password: %s", mbx_strerror(rc));
    goto fail;
  }
  if ((rc = node_mkdir(conf->data_dir, err, errsz)) < 0 ||
      (rc = node_mkdir(n->db_dir, err, errsz)) < 0 || (rc = node_open_dbs(n, err, errsz)) < 0)
    goto fail;
  uv_signal_init(loop, &n->sig_term);
  uv_signal_init(loop, &n->sig_int);
  uv_timer_init(loop, &n->drain_timer);
  n->sig_term.data = n->sig_int.data = n->drain_timer.data = n;
  uv_signal_start(&n->sig_term, node_on_signal, SIGTERM);
  uv_signal_start(&n->sig_int, node_on_signal, SIGINT);
  if ((rc = mbx_notify_start(n)) < 0)
    snprintf(err, errsz, "out of memory");
  if (rc < 0 || (rc = node_listen(n, err, errsz)) < 0) {
    mbx_notify_stop(n);
    node_stop_repl_all(n);
    for (size_t i = 0; i < n->n_dbs; i++)
      mbx_committer_stop(&n->dbs[i]->committer);
    node_close_handles(n);
    uv_run(loop, UV_RUN_DEFAULT);     /* let the close callbacks run */
    goto fail;
  }
  mbx_notice("%s listening on %s (%zu database%s)", conf->node_name, conf->listen, n->n_dbs,
             n->n_dbs == 1 ? "" : "s");
  *node_r = n;
  return 0;
fail:
  if (n->n_dbs && n->dbs[0]->committer) {
    node_stop_repl_all(n);
    for (size_t i = 0; i < n->n_dbs; i++)
      mbx_committer_stop(&n->dbs[i]->committer);
    uv_run(loop, UV_RUN_DEFAULT);
  }
  mbx_node_free(&n);
  return rc;
}

void mbx_node_free(struct mbx_node **np)
{
  struct mbx_node *n = *np;
  if (!n)
    return;
  for (size_t i = 0; i < n->n_dbs; i++) {
    mbx_assert(n->dbs[i]->committer == NULL);
    if (n->dbs[i]->store)
      mbx_store_close(&n->dbs[i]->store);
    free(n->dbs[i]);
  }
  free(n->dbs);
  if (n->tls)
    mbx_tls_ctx_free(&n->tls);
  free(n);
  *np = NULL;
}

/* node.h — mbx_node_*: one mailbox database node (mbxd): the databases it hosts
 * (each a store plus its group committer), the TLS listener, the open connections,
 * and a graceful shutdown. Loop thread only. */
#ifndef MBX_NODE_H
#define MBX_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "commit.h"
#include "db.h"
#include "nodeconf.h"
#include "store.h"
#include "stream.h"

#define MBX_VERSION "0.1.0"
#define MBX_PROTOCOL_VERSION 1
#define MBX_NODE_DBS_MAX 1024

struct mbx_conn;
struct mbx_repl_source;
struct mbx_repl_sink;
struct mbx_peer_pool;

struct mbx_node {
  uv_loop_t *loop;
  const struct mbx_nodeconf *conf;    /* borrowed for the node's life */
  struct mbx_tls_ctx *tls;
  struct mbx_stream_options stream_opt;
  struct mbx_store_options store_opt;
  struct mbx_committer_options commit_opt;
  char db_dir[4096];                  /* data_dir/db */
  struct mbx_db **dbs;                /* hosted databases, in name order of creation */
  size_t n_dbs;
  uv_tcp_t listener;
  uv_signal_t sig_term, sig_int;
  uv_timer_t drain_timer;
  struct mbx_conn *conns;             /* open connections (doubly linked) */
  size_t n_conns;
  bool listening, stopping, closed_handles;
  uint64_t drain_deadline_us;
  char dummy_hash[160];               /* verified when a user is unknown: same timing */
  struct mbx_req *creating;           /* mailbox creations in flight (handler.c) */
  struct mbx_peer_pool *peers;        /* connections to other nodes (peer.c), made on demand */
  struct mbx_notify *notify;          /* push notifications (notify.c); NULL once stopping */
};

/* Opens every database under conf->data_dir/db/, starts their committers, binds the
 * listener and installs SIGTERM/SIGINT handlers. On failure writes one line to
 * error_r and leaves nothing behind (the loop may have to run to close handles). */
int mbx_node_start(uv_loop_t *loop, const struct mbx_nodeconf *conf, struct mbx_node **node_r,
                   char *error_r, size_t error_size);
/* Graceful stop: stop accepting, let requests in flight finish (at most ~5 s), close
 * connections, drain and stop the committers. uv_run returns once all is closed. */
void mbx_node_shutdown(struct mbx_node *n);
/* After uv_run has returned: closes the stores and frees the node; sets *n NULL. */
void mbx_node_free(struct mbx_node **n);

/* A database by name, ready or being created; NULL if none. */
struct mbx_db *mbx_node_db(struct mbx_node *n, const char *name);
/* [a-z0-9][a-z0-9_-]{0,62} */
bool mbx_node_db_name_ok(const char *name);
/* Adds an entry (CREATING, no store yet). MBX_ELIMIT, MBX_ENOMEM. */
int mbx_node_db_add(struct mbx_node *n, const char *name, struct mbx_db **db_r);
/* Removes an entry that never became ready (failed creation). */
void mbx_node_db_remove(struct mbx_node *n, struct mbx_db *db);

/* Called by conn.c when a connection is gone for good. */
void mbx_node_conn_removed(struct mbx_node *n);

#endif

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
#include "nodeconf.h"
#include "store.h"
#include "stream.h"

#define MBX_VERSION "0.1.0"
#define MBX_PROTOCOL_VERSION 1
#define MBX_NODE_DBS_MAX 1024
#define MBX_DB_NAME_MAX 63

struct mbx_conn;
struct mbx_repl_source;
struct mbx_repl_sink;
struct mbx_peer_pool;

/* A copy's role is runtime state: today it comes from the copy's own meta at start
 * (server/store.h mbx_store_copy_meta: active_node empty = active); the Active
 * Manager will change it at run time. */
enum mbx_copy_role {
  MBX_COPY_ACTIVE = 0,
  MBX_COPY_PASSIVE = 1,
};

/* One hosted database. Entries are never freed while the loop runs: sessions keep
 * pointers to them. */
struct mbx_db {
  char name[MBX_DB_NAME_MAX + 1];
  struct mbx_store *store;            /* NULL while being created (see creating) */
  struct mbx_committer *committer;    /* NULL while being created and after shutdown */
  bool creating;                      /* db_create in progress: the name is taken */
  enum mbx_copy_role role;
  struct mbx_repl_source *source;     /* active: serves the passives' pulls (replication/source.c) */
  struct mbx_repl_sink *sink;         /* passive: pulls, receives, replays (replication/sink.c) */
};

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
/* Adds an entry (creating = true, no store yet). MBX_ELIMIT, MBX_ENOMEM. */
int mbx_node_db_add(struct mbx_node *n, const char *name, struct mbx_db **db_r);
/* Removes an entry that never became ready (failed creation). */
void mbx_node_db_remove(struct mbx_node *n, struct mbx_db *db);

/* Decides db's role from its copy meta (active_node empty or this node → active) and
 * starts its replication source (active) or sink (passive), stopping what ran
 * before: at start, after a db_create or copy_host, and whenever the role changes. */
int mbx_node_db_start_repl(struct mbx_node *n, struct mbx_db *db);
/* Stops db's source or sink (the store and committer stay). */
void mbx_node_db_stop_repl(struct mbx_db *db);

/* Called by conn.c when a connection is gone for good. */
void mbx_node_conn_removed(struct mbx_node *n);

#endif

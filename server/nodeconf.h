/* nodeconf.h — mbx_nodeconf_*: mbxd's configuration keys, their defaults and their
 * validation, on top of the generic reader (common/config.h). Every key is
 * documented in deploy/mbxd.conf.example. */
#ifndef MBX_NODECONF_H
#define MBX_NODECONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"

#define MBX_NODECONF_NAME_MAX 63

#define MBX_NODECONF_PEERS_MAX 64

/* Another node of the cluster: `peer.NAME = HOST:PORT`. */
struct mbx_nodeconf_peer {
  char name[MBX_NODECONF_NAME_MAX + 1];
  char addr[80];                      /* as written: "127.0.0.1:7002" */
  char host[64];                      /* numeric, without brackets */
  uint16_t port;
};

struct mbx_nodeconf {
  char *path;                         /* the file it came from */
  char node_name[MBX_NODECONF_NAME_MAX + 1];
  char *listen;                       /* as written: "127.0.0.1:7001", "[::1]:7001" */
  char listen_host[64];               /* numeric address without brackets */
  uint16_t listen_port;
  char *data_dir;                     /* databases live in data_dir/db/NAME/ */
  char *tls_cert, *tls_key, *tls_ca;
  char *operator_password_hash;       /* NULL: operators need a client certificate */
  char *transport_password_hash;      /* NULL: transports need a client certificate */
  uint64_t max_message_bytes;
  uint64_t max_frame_bytes;
  uint64_t max_connections;
  uint64_t handshake_timeout_ms;
  uint64_t idle_timeout_s;
  uint64_t db_map_size;
  uint64_t log_retain_bytes;
  uint64_t default_quota_warn;        /* bytes, 0 = none */
  uint64_t default_quota_prohibit;    /* bytes, 0 = none */
  uint64_t commit_batch_max;
  uint64_t commit_batch_bytes;        /* a batch ends once its log record holds this much */
  uint64_t commit_queue_max;
  enum mbx_log_level log_level;
  struct mbx_nodeconf_peer *peers;    /* the other nodes (issue 3 replication) */
  size_t n_peers;
  uint64_t repl_heartbeat_ms;         /* source: empty ReplBatch when idle this long */
  uint64_t repl_send_queue_max;       /* source: stop feeding a pull over this many bytes queued */
  bool auto_reseed_diverged;          /* sink: reseed a Diverged copy at once (default yes) */
  uint64_t repl_record_max_bytes;     /* sink: the largest log record this node takes */
  uint64_t idempotency_keep_s;        /* idempotency keys kept at least this long */
  uint64_t notify_coalesce_ms;        /* push notifications: changes merged over this window */
  uint64_t max_subscriptions_per_conn;
};

/* Loads and validates the file. On failure returns MBX_ECONFIG or MBX_EIO and writes
 * "FILE:LINE: what is wrong" to error_r (error_size bytes; 512 is enough). */
int mbx_nodeconf_load(const char *path, struct mbx_nodeconf **conf_r, char *error_r,
                      size_t error_size);
void mbx_nodeconf_free(struct mbx_nodeconf **conf);

/* 1 if s is a valid node name (1-63 of a-z, 0-9 and '-'), else 0. */
int mbx_nodeconf_name_ok(const char *s);

/* The peer named name, or NULL. */
const struct mbx_nodeconf_peer *mbx_nodeconf_peer(const struct mbx_nodeconf *n, const char *name);

/* Splits "HOST:PORT" / "[V6]:PORT" with a numeric IPv4/IPv6 host. 0 or MBX_EINVAL. */
int mbx_nodeconf_parse_listen(const char *s, char *host_r, size_t host_size, uint16_t *port_r);

#endif

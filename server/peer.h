/* peer.h — mbx_peer_*: this node talking to other mbxd nodes over the client
 * protocol, authenticated by its node certificate (OU=node → ROLE_NODE there).
 * Peers are named in the config (`peer.NAME = HOST:PORT`). Used to forward admin
 * requests to the node that must act, to tell a node to host a copy, and by the
 * replication sink to pull and seed. Loop thread only. */
#ifndef MBX_PEER_H
#define MBX_PEER_H

#include <stdbool.h>
#include <stdint.h>

#include "client.pb-c.h"

struct mbx_node;
struct mbx_req;

/* "HOST:PORT" of a peer by node name (this node's own name gives its listen
 * address), or NULL if unknown. */
const char *mbx_peer_addr(const struct mbx_node *n, const char *node_name);

/* Reply callback: status 0 and resp (borrowed for the call) or a negative MBX_E…
 * (MBX_EPEER: unreachable, MBX_ETIMEDOUT, or the peer's own error code; resp then
 * holds the peer's Error when it answered). Called exactly once unless the call
 * started a stream (see mbx_peer_stream). */
typedef void (*mbx_peer_cb)(int status, const Mbx__Response *resp, void *arg);

/* Sends req (its id is replaced) to peer node_name on a fresh or pooled connection
 * and calls cb once with the answer. timeout_ms 0 = 30000. 0, MBX_ENOTFOUND (unknown
 * peer), MBX_ENOMEM; on error cb is never called. */
int mbx_peer_call(struct mbx_node *n, const char *node_name, const Mbx__Request *req,
                  uint32_t timeout_ms, mbx_peer_cb cb, void *arg);

/* Forwards the request being handled (r) to node_name and answers r with the
 * peer's response (or an EPEER error naming the peer). Returns what a handler
 * returns: REQ_PENDING-style 1 when forwarded, or a negative error already answered. */
int mbx_peer_forward(struct mbx_req *r, const char *node_name);

#endif

/* peer.h — mbx_peer_*: this node talking to other mbxd nodes over the client
 * protocol, authenticated by its node certificate (OU=node → ROLE_NODE there).
 * Peers are named in the config (`peer.NAME = HOST:PORT`). Used to forward admin
 * requests to the node that must act and to tell a node to host a copy; the
 * replication sink and seed receiver look peers' addresses up here but keep streams
 * of their own. Calls run on the shared RPC client (common/rpc.h). Loop thread only. */
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
/* The same for a log line or a reason: "?" when unknown. */
static inline const char *mbx_peer_addr_or(const struct mbx_node *n, const char *node_name)
{
  const char *a = mbx_peer_addr(n, node_name);
  return a ? a : "?";
}

/* Reply callback: status 0 and resp (borrowed for the call) or a negative MBX_E…
 * (MBX_EPEER: unreachable, MBX_ETIMEDOUT, or the peer's own error code; resp then
 * holds the peer's Error when it answered). Called exactly once unless the call
 * started a stream (see mbx_peer_stream). */
typedef void (*mbx_peer_cb)(int status, const Mbx__Response *resp, void *arg);

/* Sends req (its id is replaced) to peer node_name on a fresh or pooled connection
 * (one per peer, requests pipelined) and calls cb once with the answer. timeout_ms
 * 0 = 30000. 0, MBX_ENOTFOUND (unknown peer), MBX_ENOMEM, MBX_ETLS (this node's
 * certificate cannot be loaded), MBX_ESHUTDOWN; on error cb is never called. */
int mbx_peer_call(struct mbx_node *n, const char *node_name, const Mbx__Request *req,
                  uint32_t timeout_ms, mbx_peer_cb cb, void *arg);

/* Streams: cb is called for every Response carrying the request's id, for as long
 * as it returns true; it is not called again after it returned false or after a call
 * with status < 0 (an error Response, MBX_EPEER when the connection is lost,
 * MBX_ETIMEDOUT when nothing came for idle_timeout_ms, MBX_ESHUTDOWN). idle_timeout_ms
 * 0 = none. *call_id_r identifies the call for mbx_peer_send / mbx_peer_cancel. Same
 * returns as mbx_peer_call. */
typedef bool (*mbx_peer_stream_cb)(int status, const Mbx__Response *resp, void *arg);
int mbx_peer_stream(struct mbx_node *n, const char *node_name, const Mbx__Request *req,
                    uint32_t idle_timeout_ms, mbx_peer_stream_cb cb, void *arg,
                    uint64_t *call_id_r);
/* Ends a call or stream early: its callback is never called again. */
void mbx_peer_cancel(struct mbx_node *n, const char *node_name, uint64_t call_id);
/* Sends req as is (keep its id 0 for requests that get no response, e.g. ReplAckReq)
 * on the connection that carries call_id (so it follows the stream it belongs to), or
 * on the peer's pooled connection when call_id is 0. 0, MBX_EPEER (no such open
 * connection), MBX_ELIMIT (write queue full), MBX_ENOMEM. */
int mbx_peer_send(struct mbx_node *n, const char *node_name, uint64_t call_id,
                  const Mbx__Request *req);
/* Bytes waiting to be sent to the peer (0 if not connected). */
size_t mbx_peer_queue_bytes(struct mbx_node *n, const char *node_name);

/* Fails every call in flight (MBX_ESHUTDOWN) and closes the connections; at node
 * shutdown. Later calls fail with MBX_ESHUTDOWN. */
void mbx_peer_shutdown(struct mbx_node *n);

/* Forwards the request being handled (r) to node_name and answers r with the
 * peer's response (or an EPEER error naming the peer). Streamed answers (a reseed's
 * SeedProgress until done) are relayed one by one. Returns what a handler returns:
 * REQ_PENDING-style 1 when forwarded, or a negative error already set on r. */
int mbx_peer_forward(struct mbx_req *r, const char *node_name);

#endif

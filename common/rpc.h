/* rpc.h — mbx_rpc_*: the one RPC client of the project. Requests (mbx.Request) go out
 * on a framed stream, each under a request id; responses (mbx.Response) are matched
 * to their call by that id, in any order. A call has an optional deadline, may be a
 * stream (several responses on one id until a final one), and ends exactly once:
 * with a response, a refusal, its deadline, or the connection's end. libmbx
 * (client/lib/client.c) and the node's calls to other nodes (server/peer.c) both run
 * on it.
 *
 * Who owns what:
 * - The caller owns the struct mbx_stream: it keeps the stream's callbacks, hands
 *   each frame to mbx_rpc_on_frame, and calls mbx_rpc_detach (or mbx_rpc_close) from
 *   its on_close at the latest. The rpc only sends on it, while attached.
 * - The caller owns each struct mbx_rpc_call (as in libuv, a request is the caller's
 *   memory). It is borrowed by the rpc from a successful mbx_rpc_call until the
 *   call's final callback returns, or until mbx_rpc_cancel returns it; the caller may
 *   free it inside its final callback.
 * - The rpc object owns a timer handle, so it is freed from the loop, in that
 *   handle's close callback, after mbx_rpc_close; closed_cb then tells the caller.
 *
 * Callbacks: a function that takes a callback and returns an error never calls it.
 * Every call that mbx_rpc_call accepted gets exactly one final callback, unless it is
 * cancelled first (mbx_rpc_cancel), after which it gets none. Callbacks may call
 * mbx_rpc_call, mbx_rpc_cancel, mbx_rpc_detach and mbx_rpc_close on the same rpc; the
 * call being delivered is out of the table while its callback runs.
 *
 * Errors: functions that can fail return 0 or a negative MBX_E… code (mbx_error.h),
 * each listed below; a peer's refusal is converted once, with mbx_error_from_wire.
 *
 * Thread rules: one libuv loop thread, the one the rpc was made on; nothing here
 * blocks. */
#ifndef MBX_RPC_H
#define MBX_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "client.pb-c.h"

struct mbx_rpc;
struct mbx_rpc_call;
struct mbx_stream;

/* One response, a refusal or the end of a call.
 * - status 0: resp is a response on the call's id (borrowed until the callback
 *   returns, unless kept with mbx_rpc_keep_response). Return true to wait for the
 *   next response on the same id (a stream; its deadline starts again), false to end
 *   the call: later responses on that id are dropped.
 * - status < 0: the call has ended (its return value is ignored): the peer's refusal
 *   (resp carries resp->error; status is mbx_error_from_wire of its code),
 *   MBX_ETIMEDOUT (resp NULL: no response within timeout_ms), or the status given to
 *   mbx_rpc_detach / mbx_rpc_close (resp NULL: the connection ended).
 * The final callback is the one with status < 0 or the one that returned false. */
typedef bool (*mbx_rpc_cb)(struct mbx_rpc_call *call, int status, const Mbx__Response *resp);

/* One outstanding call. The caller allocates it (embedded in its own state, for
 * instance) and may use `data`; `id` is read-only once mbx_rpc_call has set it. The
 * rest is private to rpc.c. */
struct mbx_rpc_call {
  void *data;                         /* the caller's; never touched by the rpc */
  uint64_t id;                        /* the request id, set by mbx_rpc_call */
  /* private */
  struct mbx_rpc *rpc;
  struct mbx_rpc_call *prev, *next;   /* the rpc's list, in deadline order */
  struct mbx_rpc_call *hnext;         /* the rpc's id table */
  mbx_rpc_cb cb;
  uint32_t timeout_ms;                /* 0: none */
  uint64_t deadline_us;               /* monotonic; UINT64_MAX when none */
};

struct mbx_rpc_options {
  /* Where ids come from: NULL for this rpc's own 1, 2, 3…; or a counter shared by
   * several rpc objects (borrowed; it must outlive them), so that an id names one
   * call among all of them, whatever connection carries it. Ids are never 0: id 0 is
   * a server's complaint about the connection, and requests that want no response. */
  uint64_t *id_source;
  /* A request whose packed size is over this fails with MBX_ELIMIT (0: no check, the
   * stream's own limits apply). Changed later with mbx_rpc_set_max_request_bytes. */
  size_t max_request_bytes;
  /* Called for a response that matches no outstanding call (an answer after its
   * call timed out, ended or was cancelled, or an id-0 complaint); resp is borrowed
   * for the call. NULL: such responses are dropped silently. */
  void (*on_unmatched)(const Mbx__Response *resp, void *arg);
  void *arg;
};

/* Makes an rpc with no stream attached (calls refuse with MBX_ECLOSED until
 * mbx_rpc_attach). opt is copied (NULL: the defaults above). 0, MBX_EINVAL,
 * MBX_ENOMEM; *rpc_r is set on 0 only, and must then be released with mbx_rpc_close. */
int mbx_rpc_new(uv_loop_t *loop, const struct mbx_rpc_options *opt, struct mbx_rpc **rpc_r);

/* Sends calls on s from now on. s is borrowed until mbx_rpc_detach, which the owner
 * of s must call at the latest from the stream's on_close. The rpc must not be
 * attached already. */
void mbx_rpc_attach(struct mbx_rpc *rpc, struct mbx_stream *s);

/* The connection is gone (or going): every outstanding call gets its final callback
 * with status (e.g. MBX_ECLOSED), oldest deadline first, each removed before its
 * callback runs; the stream is forgotten. The rpc stays usable for another
 * mbx_rpc_attach, and its ids go on from where they were. Harmless when detached. */
void mbx_rpc_detach(struct mbx_rpc *rpc, int status);

/* Detaches with status (every outstanding call ends), then frees the rpc from the
 * loop once its timer handle has closed, and then calls closed_cb(arg) if not NULL.
 * Sets *rpcp to NULL; NULL or *rpcp NULL is a no-op (closed_cb is not called). */
void mbx_rpc_close(struct mbx_rpc **rpcp, int status, void (*closed_cb)(void *arg), void *arg);

/* Sends req under a fresh id (req is borrowed for the duration only: packed before
 * return; its own id is ignored) and registers call, which must not be outstanding.
 * timeout_ms: how long to wait for each response (a stream's deadline starts again
 * with every response); 0: no deadline. call->id is set even when sending fails.
 * Returns 0 (cb will be called), or, with cb never called: MBX_EINVAL (NULL
 * argument), MBX_ECLOSED (not attached, or the rpc is closing), MBX_ELIMIT (over
 * max_request_bytes, or the stream's write queue is full), MBX_ENOMEM. */
int mbx_rpc_call(struct mbx_rpc *rpc, struct mbx_rpc_call *call, const Mbx__Request *req,
                 uint32_t timeout_ms, mbx_rpc_cb cb);

/* Hands one received frame (borrowed) to the rpc: the response is decoded and given
 * to its call, or to on_unmatched. Returns 0, or MBX_EPROTO when the frame is not a
 * Response: nothing was delivered, and the caller should close the stream (the peer
 * can no longer be trusted to frame its answers). */
int mbx_rpc_on_frame(struct mbx_rpc *rpc, const uint8_t *frame, size_t len);

/* Inside call's callback, for the response it was handed: that response is no longer
 * freed when the callback returns; the caller owns it (mbx__response__free_unpacked).
 * Returns it, or NULL when call is not being handed a response right now. */
Mbx__Response *mbx_rpc_keep_response(struct mbx_rpc_call *call);

/* Ends the call with that id at once, without calling its callback again, and returns
 * it (the caller may free it); NULL when no such call is outstanding (including one
 * whose callback is running now). */
struct mbx_rpc_call *mbx_rpc_cancel(struct mbx_rpc *rpc, uint64_t id);

/* Whether a call with that id is outstanding. */
bool mbx_rpc_has_call(const struct mbx_rpc *rpc, uint64_t id);
/* How many calls are outstanding (not counting one whose callback is running). */
size_t mbx_rpc_pending(const struct mbx_rpc *rpc);
/* See mbx_rpc_options.max_request_bytes; applies to calls made from now on. */
void mbx_rpc_set_max_request_bytes(struct mbx_rpc *rpc, size_t max);

#endif

/* mbx.h — libmbx, the mbx client library: the public contract and its manual.
 * One implementation on libuv, used either asynchronously on the caller's loop or
 * blocking on a private loop. Messages are the protobuf-c types of proto/client.proto
 * and proto/store.proto (Mbx__Request, Mbx__Response, Mbx__Folder, Mbx__Item …).
 *
 * Conventions (libuv/LMDB style):
 *  - Functions return 0 or a negative MBX_E… code (common/mbx_error.h;
 *    mbx_strerror()/mbx_strerror_name() give text and "EQUOTA"-style names).
 *  - If a function that takes a callback returns an error, the callback is never
 *    called. Otherwise it is called exactly once.
 *  - A server-side refusal returns the server's code (MBX_EQUOTA, MBX_ENOTFOUND …);
 *    the server's one-line message is then available from mbxc_last_error(conn).
 *  - Thread rules: a connection belongs to one thread. An async connection lives on
 *    its loop's thread: every mbxc_* call on it, and every callback, happens there.
 *    A blocking connection (mbxc_open) may move between threads only if the caller
 *    serialises all use of it. Different connections are independent.
 *  - Messages returned by the blocking calls are owned by the caller and freed with
 *    mbxc_free(&msg) (any Mbx__… message returned by this library, nothing else). */
#ifndef MBX_MBX_H
#define MBX_MBX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "client.pb-c.h"
#include "mbx_error.h"
#include "store.pb-c.h"

#define MBXC_VERSION "0.1.0"
#define MBXC_PROTOCOL_VERSION 1
#define MBXC_MAX_SERVERS 16
#define MBXC_DEFAULT_CONNECT_TIMEOUT_MS 5000u
#define MBXC_DEFAULT_REQUEST_TIMEOUT_MS 30000u
#define MBXC_DEFAULT_MAX_FRAME_BYTES ((size_t)64 << 20)

/* An open (or opening) connection to one mbxd / mbx-proxy. Opaque. */
typedef struct mbxc_conn mbxc_conn;

/* Connection options. Strings are borrowed only for the duration of
 * mbxc_connect/mbxc_open (the library copies what it keeps). Zero means default. */
struct mbxc_options {
  const char *servers;              /* "H:P[,H:P…]" tried in order; IPv6 as "[::1]:7001" */
  const char *ca_file;              /* CA that signed the servers (required) */
  const char *cert_file;            /* optional client certificate (e.g. OU=operator) */
  const char *key_file;             /* its key; required when cert_file is set */
  uint32_t connect_timeout_ms;      /* per server, TCP + TLS + hello; 0 = 5000 */
  uint32_t request_timeout_ms;      /* per call; 0 = 30000 */
  size_t max_frame_bytes;           /* largest response accepted; 0 = 64 MiB */
  const char *client_name;          /* sent in hello (e.g. "mbx/0.1.0"); NULL = "libmbx" */
};

/* ---- async API (caller's loop) ------------------------------------------- */

/* status 0: connected, TLS verified, hello exchanged; the connection is usable.
 * Otherwise (MBX_ECONN, MBX_ETLS, MBX_ETIMEDOUT, MBX_EPROTO, MBX_EINVAL …) every
 * server failed: mbxc_last_error(conn) says why in one line, e.g.
 * "cannot connect to 127.0.0.1:7001: connection refused". In both cases the caller
 * still owns conn and must release it with mbxc_close(). */
typedef void (*mbxc_connect_cb)(mbxc_conn *conn, int status, void *arg);

/* Reply callback. status 0: resp is the server's reply (body set). status < 0: the
 * call failed; resp is the server's reply carrying resp->error when the server
 * refused (status is then its code), or NULL for local failures: MBX_ETIMEDOUT
 * (no reply within request_timeout_ms; a late reply is dropped), MBX_ECLOSED (the
 * connection dropped or mbxc_close was called), MBX_EPROTO (undecodable reply).
 * resp is borrowed for the duration of the callback. The callback may call
 * mbxc_call and mbxc_close on the same connection. */
typedef void (*mbxc_reply_cb)(mbxc_conn *conn, int status, const Mbx__Response *resp,
                              void *arg);

/* Starts connecting on loop (which the caller runs). Tries each server in order,
 * each bounded by connect_timeout_ms. On return 0, *conn_r is set and cb will be
 * called once. Errors (cb not called, *conn_r untouched): MBX_EINVAL (bad server
 * list or options), MBX_ETLS (CA/cert/key unreadable), MBX_ENOMEM. The detail of an
 * MBX_EINVAL/MBX_ETLS return is in mbxc_open_error(). Loop thread only. */
int mbxc_connect(uv_loop_t *loop, const struct mbxc_options *opts, mbxc_connect_cb cb,
                 void *arg, mbxc_conn **conn_r);

/* Sends req and calls cb with its reply. The library assigns req->id (the caller's
 * id is overwritten); req is borrowed for the duration of the call only (it is
 * packed before return). Calls may be pipelined freely: replies are matched by id
 * and may arrive in any order. Errors (cb not called): MBX_EINVAL (not connected
 * yet or req NULL), MBX_ECLOSED (connection gone), MBX_ELIMIT (request larger than
 * the server's max frame, or write queue full), MBX_ENOMEM. */
int mbxc_call(mbxc_conn *conn, Mbx__Request *req, mbxc_reply_cb cb, void *arg);

/* Stream callback: one request, several responses on its id (a reseed's
 * SeedProgress, for instance). Called with status 0 and each response (borrowed for
 * the callback) while the callback returns true; returning false ends the stream
 * (later responses on that id are dropped). Called one last time with status < 0 if
 * the stream ends otherwise: a server refusal (resp carries resp->error), or
 * MBX_ETIMEDOUT (no response within request_timeout_ms of the previous one),
 * MBX_ECLOSED, MBX_EPROTO with resp NULL; its return value is then ignored. The
 * callback may call mbxc_call and mbxc_close on the same connection. */
typedef bool (*mbxc_stream_cb)(mbxc_conn *conn, int status, const Mbx__Response *resp,
                               void *arg);

/* Sends req like mbxc_call, and hands every response on its id to cb (rules above).
 * Same errors as mbxc_call (cb not called). */
int mbxc_call_stream(mbxc_conn *conn, Mbx__Request *req, mbxc_stream_cb cb, void *arg);

/* Closes the connection and frees it. Every call still in flight gets its callback
 * with MBX_ECLOSED before mbxc_close returns; a pending connect callback gets
 * MBX_ECLOSED too. Memory is released from the loop's close callbacks, so an async
 * caller must keep running its loop afterwards. Sets *conn to NULL. Safe from inside
 * callbacks of this connection, and with *conn == NULL. */
void mbxc_close(mbxc_conn **conn);

/* ---- blocking API (private loop) ------------------------------------------ */

/* Connects as mbxc_connect does and waits. On success *conn_r is a connected
 * connection. On failure returns the code and sets *error_r (if not NULL) to one
 * line, valid until the next mbxc_open/mbxc_connect on this thread. */
int mbxc_open(const struct mbxc_options *opts, mbxc_conn **conn_r, const char **error_r);

/* Sends req and waits for its reply (at most request_timeout_ms). On 0, *resp_r is
 * the reply, owned by the caller (mbxc_free). On a server refusal returns its code
 * and *resp_r is NULL (message: mbxc_last_error). Other errors: MBX_ETIMEDOUT,
 * MBX_ECLOSED, MBX_EPROTO, MBX_ELIMIT, MBX_EINVAL (async connection: use mbxc_call).
 * Must not be called from a callback. */
int mbxc_call_sync(mbxc_conn *conn, Mbx__Request *req, Mbx__Response **resp_r);

/* Blocking form of mbxc_call_stream: runs the private loop until the stream ends.
 * Returns 0 when cb ended it (returned false), else the final status (cb has been
 * called with it). Follows one redirect like mbxc_call_sync when the first
 * response is an ENOTACTIVE refusal. Must not be called from a callback. */
int mbxc_call_stream_sync(mbxc_conn *conn, Mbx__Request *req, mbxc_stream_cb cb, void *arg);

/* Redirects (blocking API). A refusal with MBX_ENOTACTIVE naming the node that holds
 * the active copy (Error.redirect, "HOST:PORT") makes mbxc_call_sync reconnect there
 * once (same CA and client certificate), repeat the last successful mbxc_login, and
 * send the request again; the connection then stays on that node. A second
 * redirect, or a failed reconnect, is returned to the caller (MBX_ENOTACTIVE, or the
 * connect error: the connection is then closed, later calls give MBX_ECLOSED).
 * The async API never follows redirects: mbxc_last_redirect() tells where to go. */

/* ---- information --------------------------------------------------------- */

/* The redirect ("HOST:PORT") of the last ENOTACTIVE refusal on conn, or "". */
/* The node and epoch that acknowledged the last write answered on this connection
 * ("" and 0 if none, or an older node): for checking a history. */
const char *mbxc_last_ack(const mbxc_conn *conn, uint64_t *epoch_r);
/* Changes the per-call reply timeout for calls started from now on (0 = 30000 ms):
 * e.g. a generous one for a login, a short one afterwards. */
void mbxc_set_request_timeout(mbxc_conn *conn, uint32_t request_timeout_ms);
const char *mbxc_last_redirect(const mbxc_conn *conn);

/* One line describing the last failure on conn (the server's message for a refusal,
 * a local description otherwise); "" if none. Valid until the next call on conn. */
const char *mbxc_last_error(const mbxc_conn *conn);
/* Code of that failure (0 if none). */
int mbxc_last_error_code(const mbxc_conn *conn);
/* Detail of the last failed mbxc_connect/mbxc_open on this thread; never NULL. */
const char *mbxc_open_error(void);
/* The server's hello (node, version, max_frame_bytes, max_message_bytes), or NULL
 * before the connection is up. Borrowed; valid until mbxc_close. */
const Mbx__HelloResp *mbxc_server_info(const mbxc_conn *conn);
/* "host:port" of the server in use (or last tried); borrowed. */
const char *mbxc_server_addr(const mbxc_conn *conn);

/* Frees a message returned by this library and sets *msg to NULL; NULL is fine. */
void mbxc_free_message(ProtobufCMessage **msg);
#define mbxc_free(pp) mbxc_free_message((ProtobufCMessage **)(void *)(pp))

/* ---- typed blocking calls --------------------------------------------------
 * Each builds one request, waits (mbxc_call_sync rules) and hands back the reply's
 * body message, owned by the caller (mbxc_free). Output params are set only on 0.
 * Server codes to expect are listed per call; any call can also fail with
 * MBX_ENOTAUTH (not logged in), MBX_EPERM (role may not do this), MBX_ETIMEDOUT,
 * MBX_ECLOSED, MBX_EPROTO (reply lacked the expected body). */

/* Logs in. role: MBX__ROLE__ROLE_USER (user = mailbox address), _OPERATOR or
 * _TRANSPORT. password borrowed. MBX_EAUTH on wrong credentials. */
int mbxc_login(mbxc_conn *conn, Mbx__Role role, const char *user, const char *password,
               Mbx__LoginResp **resp_r);
int mbxc_ping(mbxc_conn *conn, Mbx__PingResp **resp_r);

/* The mailbox's whole folder hierarchy. */
int mbxc_folders(mbxc_conn *conn, Mbx__FoldersResp **resp_r);
/* Resolves spec ("Inbox", "projects/2026" — path segments compared
 * case-insensitively — or a numeric folder id) with one folders call. *folder_r is a
 * copy owned by the caller (mbxc_free). MBX_ENOTFOUND if nothing matches. */
int mbxc_find_folder(mbxc_conn *conn, const char *spec, Mbx__Folder **folder_r);
/* The same resolution against a folders reply already held; *folder_r borrowed from
 * fr. MBX_ENOTFOUND, MBX_EINVAL (empty spec). Pure: no I/O, any thread. */
int mbxc_folder_resolve(const Mbx__FoldersResp *fr, const char *spec,
                        const Mbx__Folder **folder_r);
/* Writes f's full path ("Projects/2026") into buf (truncated, always terminated).
 * Returns the path depth (0 = top level) or MBX_ELIMIT if the parent chain loops or
 * is deeper than 64. Pure. */
int mbxc_folder_path(const Mbx__FoldersResp *fr, const Mbx__Folder *f, char *buf,
                     size_t len);
/* The folder with that well-known role (MBX__WELL_KNOWN__WK_CALENDAR …), borrowed
 * from fr, or NULL. Pure. */
const Mbx__Folder *mbxc_folder_well_known(const Mbx__FoldersResp *fr, Mbx__WellKnown wk);

/* parent_id 0 = top level. MBX_EEXIST (sibling with that name), MBX_ENOTFOUND. */
int mbxc_create_folder(mbxc_conn *conn, const char *name, uint64_t parent_id,
                       Mbx__FolderClass folder_class, Mbx__FolderResp **resp_r);
/* Rename (name != NULL) and/or move (move true: to parent_id, 0 = top level). */
int mbxc_update_folder(mbxc_conn *conn, uint64_t folder_id, const char *name, bool move,
                       uint64_t parent_id, Mbx__FolderResp **resp_r);
/* MBX_ENOTFOUND; MBX_EPERM for well-known folders. */
int mbxc_delete_folder(mbxc_conn *conn, uint64_t folder_id);
/* Deletes every item of the folder; *count_r (may be NULL) = items removed. */
int mbxc_empty_folder(mbxc_conn *conn, uint64_t folder_id, uint64_t *count_r);

/* Newest first. limit 0 = server default (50). */
int mbxc_list(mbxc_conn *conn, uint64_t folder_id, uint32_t offset, uint32_t limit,
              Mbx__ListResp **resp_r);
int mbxc_get(mbxc_conn *conn, uint64_t item_id, bool with_body, Mbx__ItemResp **resp_r);
/* Appends raw RFC 5322 bytes (borrowed). flags: MBX__ITEM_FLAG__FLAG_* bits.
 * MBX_ETOOBIG (over max_message_bytes, checked locally first), MBX_EQUOTA. */
int mbxc_append(mbxc_conn *conn, uint64_t folder_id, const void *body, size_t len,
                uint32_t flags, Mbx__ItemResp **resp_r);
/* Creates an event/contact/task/note; item borrowed (kind + sub-message set). */
int mbxc_create_item(mbxc_conn *conn, uint64_t folder_id, const Mbx__Item *item,
                     Mbx__ItemResp **resp_r);
/* Adds/removes flag bits; categories replaced when set_categories (n strings). */
int mbxc_set_flags(mbxc_conn *conn, uint64_t item_id, uint32_t add, uint32_t remove,
                   bool set_categories, const char *const *categories, size_t n,
                   Mbx__ItemResp **resp_r);
int mbxc_move(mbxc_conn *conn, uint64_t item_id, uint64_t folder_id, Mbx__ItemResp **resp_r);
int mbxc_copy(mbxc_conn *conn, uint64_t item_id, uint64_t folder_id, Mbx__ItemResp **resp_r);
/* hard false: to Deleted Items (removed for good if already there). */
int mbxc_delete(mbxc_conn *conn, uint64_t item_id, bool hard);

/* Changes since state (state_len 0 = from the beginning; the token is opaque).
 * MBX_ESTATE for a token of another folder or database. */
int mbxc_sync(mbxc_conn *conn, uint64_t folder_id, const void *state, size_t state_len,
              uint32_t max_changes, Mbx__SyncResp **resp_r);
int mbxc_sync_folders(mbxc_conn *conn, const void *state, size_t state_len,
                      uint32_t max_changes, Mbx__SyncFoldersResp **resp_r);

/* Push notifications (the connection logged in as a user; on a blocking connection
 * the callbacks come while mbxc_wait or a blocking call runs its loop). Subscribes
 * to folder_ids (n entries, borrowed; n 0 = every folder, present and future), and
 * with hierarchy also to folder creations, renames, moves and deletions, and calls
 * cb like an mbxc_stream_cb: first with the Notification that has subscribed set,
 * then with one per (coalesced) change, while cb returns true. Unlike other streams
 * it never times out while the connection is up (the node sends an empty
 * Notification as a keepalive at least every 30 s). cb gets MBX_ECLOSED when the
 * connection goes; the caller reconnects, subscribes again and syncs from its
 * states. Errors (cb not called): as mbxc_call_stream. */
int mbxc_subscribe(mbxc_conn *conn, const uint64_t *folder_ids, size_t n, bool hierarchy,
                   mbxc_stream_cb cb, void *arg);

/* Blocking connections (mbxc_open): runs the private loop for at most timeout_ms (0:
 * until no call or stream is in flight — a subscription stays in flight until its
 * connection goes), delivering the callbacks of asynchronous calls made on conn
 * (mbxc_call, mbxc_call_stream, mbxc_subscribe); blocking calls deliver them too
 * while they wait. Returns 0 (time is up, or nothing is in flight), MBX_ECLOSED (the
 * connection is gone; the callbacks have had MBX_ECLOSED), MBX_EINVAL (an async
 * connection, or NULL). Must not be called from a callback. */
int mbxc_wait(mbxc_conn *conn, uint32_t timeout_ms);

/* Sends req (borrowed) with idempotency key (1..64 bytes, borrowed) and waits, as
 * mbxc_call_sync. Repeating a write with the same key after a lost reply or a
 * reconnect returns the first reply and applies nothing twice. */
int mbxc_call_sync_idem(mbxc_conn *conn, Mbx__Request *req, const void *key, size_t key_len,
                        Mbx__Response **resp_r);

/* Transport role: delivers raw bytes to the Inbox of address to. MBX_ENOTFOUND
 * (no such mailbox), MBX_EQUOTA, MBX_ETOOBIG. */
int mbxc_deliver(mbxc_conn *conn, const char *to, const void *body, size_t len,
                 Mbx__ItemResp **resp_r);

/* Operator role. */
int mbxc_db_create(mbxc_conn *conn, const char *name, Mbx__DbInfo **resp_r);
int mbxc_db_list(mbxc_conn *conn, Mbx__DbListResp **resp_r);
int mbxc_db_digest(mbxc_conn *conn, const char *name, Mbx__DbDigestResp **resp_r);
/* Database with copies (n entries borrowed; n 0 = one copy on the receiving node)
 * and the digest of the copy on node (NULL = the receiving node's). The receiving
 * node forwards both to the node that acts. MBX_EEXIST, MBX_ENOTFOUND, MBX_EPEER. */
int mbxc_db_create_copies(mbxc_conn *conn, const char *name, Mbx__CopyEntry *const *copies,
                          size_t n, Mbx__DbInfo **resp_r);
int mbxc_db_digest_node(mbxc_conn *conn, const char *name, const char *node,
                        Mbx__DbDigestResp **resp_r);
/* Copy management (issue 3). req is the whole Request with body_case one of
 * COPY_ADD, COPY_REMOVE, COPY_SUSPEND, COPY_RESUME, COPY_PLAY_DOWN (borrowed). The
 * reply's body (a CopyStatus for most, possibly none) is handed over in *resp_r
 * (NULL if the reply has no body). MBX_ENOTFOUND, MBX_EEXIST, MBX_EPEER, MBX_ESTATE. */
int mbxc_copy_request(mbxc_conn *conn, Mbx__Request *req, ProtobufCMessage **resp_r);
/* Lossless switchover of db's active copy to node to (NULL: the healthy passive
 * with the best preference), sent to any node. timeout_ms bounds the target's
 * catch-up (0 = 10 s). The answer names both nodes, the new epoch and the write
 * pause. MBX_EBUSY (no target can take over without loss now, or a switchover is
 * under way), MBX_ENOTFOUND, MBX_ETIMEDOUT (rolled back: the old active stays). */
int mbxc_db_move_active(mbxc_conn *conn, const char *db, const char *to, uint32_t timeout_ms,
                        Mbx__DbMoveActiveResp **resp_r);
/* For when db's active node is down: activates the copy on node in a new epoch.
 * Without force the node refuses (MBX_ESTALE) when it cannot prove nothing is lost,
 * saying how far behind its copy may be; MBX_EBUSY when the active still answers
 * (use mbxc_db_move_active). The other copies are told to follow it. */
int mbxc_db_activate(mbxc_conn *conn, const char *db, const char *node, bool force);
/* db NULL = every database. */
int mbxc_copy_status(mbxc_conn *conn, const char *db, Mbx__CopyStatusResp **resp_r);
/* req borrowed: address, database, password required. MBX_EEXIST, MBX_ENOTFOUND. */
int mbxc_mailbox_create(mbxc_conn *conn, const Mbx__MailboxCreateReq *req,
                        Mbx__MailboxInfo **resp_r);
/* database NULL = all. */
int mbxc_mailbox_list(mbxc_conn *conn, const char *database, Mbx__MailboxListResp **resp_r);

#endif

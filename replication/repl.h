/* repl.h — mbx_repl_*: continuous replication of a mailbox database by log shipping.
 *
 * The active copy's node runs a *source* per database: it answers ReplPullReq
 * subscriptions from passive copies with the log records from the asked LSN on,
 * pushes each new record as soon as its batch is durable (committer on_commit), and
 * sends a heartbeat ReplBatch when idle (at least every repl_heartbeat_ms). It
 * tracks every copy's acknowledged position, sets the store's truncation floor from
 * them, and reports copy status.
 *
 * A passive copy's node runs a *sink* per database: it connects to the active's
 * node (client protocol, node certificate with OU=node → ROLE_NODE), pulls from
 * received_lsn + 1, hands each ReplBatch to its committer as an exclusive job that
 * durably receives (and, without lag, replays) the records, acknowledges, replays
 * lagged records when their time comes, reconnects with backoff after any failure,
 * and seeds itself (SeedReq) when the active no longer has the records it needs.
 *
 * Backpressure: the source never blocks the active's writers. A pull connection
 * whose write queue is over repl_send_queue_bytes stops being fed until it drains;
 * it then continues from the store's log (a slow copy falls behind, and if it falls
 * behind the retained log, it needs a reseed).
 *
 * Thread rules: loop thread only, except where the committer runs store work on the
 * writer thread. */
#ifndef MBX_REPL_H
#define MBX_REPL_H

#include <stdbool.h>
#include <stdint.h>

#include "client.pb-c.h"

struct mbx_node;
struct mbx_db;
struct mbx_req;

/* ---- active side (replication/source.c) ------------------------------------ */

/* Starts serving db (role active): hooks the committer's on_commit, arms the
 * heartbeat timer. 0 or MBX_ENOMEM. */
int mbx_repl_source_start(struct mbx_node *n, struct mbx_db *db);
/* Ends every pull subscription (with ENOTACTIVE if the role changed) and frees the
 * source; db->source becomes NULL. */
void mbx_repl_source_stop(struct mbx_db *db);
/* Handles a ReplPullReq (ROLE_NODE): keeps r open as a subscription until the
 * connection closes. Answers ENOTACTIVE (not the active here), ENOTFOUND (no such
 * database), ENEEDSEED (from_lsn is older than the log still kept). */
int mbx_repl_source_pull(struct mbx_req *r);
/* A ReplAckReq from a copy (no response). */
void mbx_repl_source_ack(struct mbx_db *db, const Mbx__ReplAckReq *ack);
/* Status of every copy in the layout as the active sees it, the active first
 * (status Mounted). Copies not heard from for 3 heartbeat periods are reported as
 * DisconnectedAndHealthy (or their last unhealthy status). Messages in r's arena. */
int mbx_repl_source_status(struct mbx_req *r, struct mbx_db *db, Mbx__CopyStatus ***v_r,
                           size_t *n_r);

/* What the active knows of node's copy: its acknowledged received and replayed
 * lsn, and whether it pulls from this source right now. false if the source does
 * not run or has never heard of node. */
bool mbx_repl_source_copy_pos(const struct mbx_db *db, const char *node, uint64_t *received_r,
                              uint64_t *replayed_r, bool *pulling_r);

/* ---- passive side (replication/sink.c, replication/seed.c) ------------------- */

/* Starts the passive copy of db: reads its copy meta, connects to the active (or
 * seeds first when needs_reseed or when the store is new and the meta names a seed
 * source), pulls and replays. 0 or MBX_ENOMEM. */
int mbx_repl_sink_start(struct mbx_node *n, struct mbx_db *db);
/* Disconnects and frees the sink (the store stays open); db->sink becomes NULL. */
void mbx_repl_sink_stop(struct mbx_db *db);
/* This copy's status as the passive itself sees it (for copy status on this node). */
int mbx_repl_sink_status(struct mbx_req *r, struct mbx_db *db, Mbx__CopyStatus **st_r);

#endif

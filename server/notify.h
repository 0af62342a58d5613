/* notify.h — mbx_notify_*: push notifications. A user connection subscribes
 * (SubscribeReq) to folders of its mailbox and/or to its folder hierarchy; the request
 * stays open and the node answers with a stream of Notification responses on its id:
 * first `subscribed` with the folders' current last_cn, then one per (coalesced)
 * change, and an empty one as a keepalive when nothing was sent for a while.
 *
 * Where changes come from. The store notes, in each write's unit, which folders took a
 * new change number and which mailboxes' hierarchy changed (mbx_store_unit_changes);
 * the handler copies that list into the request and, once the batch is durable, its
 * done callback publishes it here (mbx_notify_publish). Deliveries from the transport
 * are writes like any other, so the recipient's subscribers hear of them. Nothing is
 * replayed: a client that reconnects subscribes again and catches up with SyncReq
 * from its own sync states (the "catch-up contract").
 *
 * Limits. max_subscriptions_per_conn per connection, 1000 folder ids per
 * subscription, 1024 pending folder entries per subscription. Changes within
 * notify_coalesce_ms of the first are sent as one Notification (0: each commit
 * alone). A subscriber whose connection has more than MBX_NOTIFY_QUEUE_BYTES_MAX
 * bytes waiting to be sent is not sent anything: its changes keep merging into the
 * pending entries (one per folder, bounded), and are sent when the queue drains; a
 * subscription that would need more pending entries than the bound is ended with
 * ELIMIT (the client subscribes again and syncs). So memory never grows without bound.
 *
 * Lifetime. A subscription ends when its connection closes (mbx_notify_conn_closed,
 * called by conn.c), when the node shuts down (ESHUTDOWN), or when its database stops
 * being active here (ENOTACTIVE). Loop thread only. */
#ifndef MBX_NOTIFY_H
#define MBX_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define MBX_NOTIFY_FOLDERS_MAX 1000           /* folder ids in one SubscribeReq */
#define MBX_NOTIFY_PENDING_MAX 1024           /* folders waiting in one subscription */
#define MBX_NOTIFY_QUEUE_BYTES_MAX (1u << 20) /* a connection's write queue: hold beyond */
#define MBX_NOTIFY_KEEPALIVE_MS 25000         /* empty Notification after this silence */

struct mbx_node;
struct mbx_db;
struct mbx_conn;
struct mbx_req;
struct mbx_notify;
struct mbx_notify_sub;

/* Creates the node's notifier (n->notify) and its timers. 0 or MBX_ENOMEM. */
int mbx_notify_start(struct mbx_node *n);
/* Ends every subscription (ESHUTDOWN), stops the timers and frees the notifier once
 * they are closed (run the loop afterwards); n->notify becomes NULL. */
void mbx_notify_stop(struct mbx_node *n);

/* Handles a SubscribeReq of a logged-in user whose database is active here: checks
 * the limits and the folder ids (ENOTFOUND for one not in the mailbox, ELIMIT), sends
 * the `subscribed` Notification and keeps r open. Returns MBX_REQ_PENDING, or a
 * negative code with r failed (the caller finishes it). */
int mbx_notify_subscribe(struct mbx_req *r);

/* A durable write of db changed these folders / hierarchies (durable_us: when its
 * batch became durable). Queues notifications for the matching subscriptions. */
void mbx_notify_publish(struct mbx_node *n, const struct mbx_db *db,
                        const struct mbx_store_change *v, size_t count, int64_t durable_us);

/* c's stream is closing: ends its subscriptions (finishing their requests, which
 * does not free c while its stream is set). */
void mbx_notify_conn_closed(struct mbx_conn *c);
/* db is no longer active here: ends its subscriptions with ENOTACTIVE. */
void mbx_notify_db_inactive(struct mbx_node *n, const struct mbx_db *db);

struct mbx_notify_stats {
  uint64_t subscriptions;             /* open now */
  uint64_t sent, keepalives, held;    /* notifications sent; keepalives; held back (queue) */
};
void mbx_notify_get_stats(const struct mbx_node *n, struct mbx_notify_stats *st);

#endif

/* conn.h — mbx_conn_*: one client connection and its session (role, mailbox), and
 * the requests in flight on it. A connection is freed only once its stream has
 * closed and no request still refers to it, so late completions are harmless. */
#ifndef MBX_CONN_H
#define MBX_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include "arena.h"
#include "client.pb-c.h"
#include "node.h"
#include "nodeconf.h"

#define MBX_CONN_INFLIGHT_MAX 1024    /* beyond it, stop reading until half are done */

struct mbx_conn {
  struct mbx_node *node;
  struct mbx_stream *stream;          /* NULL once on_close has run */
  struct mbx_conn *prev, *next;       /* node->conns */
  char peer[64];                      /* "127.0.0.1:53122" */
  /* session */
  bool has_role;
  Mbx__Role role;
  /* ROLE_NODE: the node its certificate names (subject CN, a valid node name); every
   * node-to-node request that speaks for a node must name this one. "" if none. */
  char cert_node[MBX_NODECONF_NAME_MAX + 1];
  struct mbx_db *db;                  /* ROLE_USER: the mailbox's database */
  uint64_t mailbox_id;
  char address[256];
  /* push notifications (notify.c): this connection's subscriptions */
  struct mbx_notify_sub *subs;
  uint32_t n_subs;
  /* flow */
  uint32_t inflight;                  /* requests received, not yet answered */
  bool paused;                        /* reading stopped (too many in flight / draining) */
  bool closing;                       /* close requested: answers are dropped */
};

/* One request, from the frame to its response. All its memory is in arena. */
struct mbx_req {
  struct mbx_conn *conn;              /* kept alive until mbx_req_finish */
  struct mbx_arena arena;
  Mbx__Request *rq;
  Mbx__Response resp;                 /* body set by the handler */
  int status;                         /* < 0: answered with Error */
  const char *errmsg;                 /* one line for the person (NULL: mbx_strerror) */
  const char *redirect;               /* ENOTACTIVE: "HOST:PORT" of the active copy's node */
  const char *active_node;            /* ENOTACTIVE: its node name (for other nodes' sinks) */
  uint64_t error_lsn;                 /* EDIVERGED: where the histories split (Error.lsn) */
  bool close_after;                   /* answer (even an id-0 request), then close */
  struct mbx_rtxn *rtxn;              /* open until the response is packed (borrowed bodies) */
  /* session snapshot taken when the request arrived */
  struct mbx_db *db;
  uint64_t mailbox_id;
  /* asynchronous steps (handler.c) */
  uv_work_t work;
  int (*run)(struct mbx_wtxn *w, struct mbx_req *r);      /* writer thread */
  void (*complete)(struct mbx_req *r);                     /* loop thread, after commit */
  void (*db_created)(struct mbx_req *r);                   /* mbx_handler_db_create's continuation */
  int work_rc;
  bool found;
  const char *hash;
  char hash_buf[160];
  struct mbx_store *new_store;
  uint64_t write_epoch;               /* the epoch req_submit admitted the write in */
  const char *store_error;
  /* A write with Request.idempotency_key (handler.c): the key (borrowed from rq) and its
   * scope; the writer sets idem_hit when the key was recorded before, and idem_reply
   * (in arena) is then the answer. */
  const uint8_t *idem_key;
  size_t idem_key_len;
  uint64_t idem_scope;
  uint32_t idem_kind;
  bool idem_hit, idem_mismatch;
  const uint8_t *idem_reply;
  size_t idem_reply_len;
  uint64_t conflict_cn;               /* ECONFLICT (if_cn): the item's current cn */
  /* What a successful write changed (in arena), published as notifications. */
  struct mbx_store_change *changes;
  size_t n_changes;
  /* a mailbox_create in flight: its addresses are reserved on the node until finish */
  struct mbx_req *creating_next;
  bool creating;
  union {
    Mbx__Item *item;
    Mbx__Folder *folder;
    Mbx__Mailbox *mailbox;
    uint64_t count;
  } out;
};

/* Accepts a pending connection on the node's listener (or refuses it over
 * max_connections). */
void mbx_conn_accept(struct mbx_node *n);
/* Closes the connection (answers still in flight are dropped). */
void mbx_conn_close(struct mbx_conn *c, int status);
void mbx_conn_pause(struct mbx_conn *c, bool pause);

/* What a handler returns when it will call mbx_req_finish itself later. */
#define MBX_REQ_PENDING 1

/* Marks r failed with code and a one-line message for the person (formatted into
 * r's arena); returns code, so handlers can `return mbx_req_fail(r, ...)`. */
int mbx_req_fail(struct mbx_req *r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A node-to-node request (what: "pull", "acknowledgement", …) must come from node
 * `from`: the node the client certificate names. 0 if it does; otherwise r fails with
 * MBX_EPERM and a message naming both, a warning is logged, and the connection is
 * closed once the answer is sent (an id-0 request too gets that answer, id 0).
 * Returns 0 or MBX_EPERM. */
int mbx_req_check_node(struct mbx_req *r, const char *from, const char *what);

/* Sends r's response (or its error) if the connection is still open, then frees r.
 * An error answer carries r->redirect (ENOTACTIVE: the active's HOST:PORT) if set. */
void mbx_req_finish(struct mbx_req *r);
/* Streams: sends one more response on r's id without finishing r (a pull's batches,
 * seed chunks, reseed progress). 0, MBX_ECLOSED (the connection is gone or closing:
 * finish r), MBX_ELIMIT (write queue full; the connection is being closed), MBX_ENOMEM. */
int mbx_req_send(struct mbx_req *r, Mbx__Response *resp);
/* True while r's connection can still carry answers. */
bool mbx_req_open(const struct mbx_req *r);

#endif

/* handler_repl.h — mbx_handler_repl: the replication requests between nodes
 * (repl_pull, repl_ack: ROLE_NODE only) and copy_status; and the ENOTACTIVE answer
 * with a redirect that passive copies give to clients. */
#ifndef MBX_HANDLER_REPL_H
#define MBX_HANDLER_REPL_H

#include "conn.h"

/* Same contract as the handlers in handler.c: a negative error already set on r
 * (answered by the caller), 0 when r's response is ready, or 1 when the request is
 * pending (finished later by the handler itself). */
int mbx_handler_repl(struct mbx_req *r);

/* Fails r with ENOTACTIVE and Error.redirect = the HOST:PORT of db's active node
 * (from the copy's meta and the peer config; no redirect if unknown). Returns the
 * error. */
int mbx_handler_not_active(struct mbx_req *r, struct mbx_db *db);

#endif

/* handler.h — mbx_handler_*: what each request type does. Reads run on the loop
 * thread in short read transactions; writes go through the database's group
 * committer; password hashing and verification run on the libuv threadpool. */
#ifndef MBX_HANDLER_H
#define MBX_HANDLER_H

#include "conn.h"

/* Takes ownership of r: checks the session's rights, runs or queues the request, and
 * eventually calls mbx_req_finish(r) exactly once. */
void mbx_handler_dispatch(struct mbx_req *r);
/* Frees the addresses a mailbox_create reserved (called by mbx_req_finish). */
void mbx_handler_release_addresses(struct mbx_req *r);

#endif

/* handler.h — mbx_handler_*: what each request type does. Reads run on the loop
 * thread in short read transactions; writes go through the database's group
 * committer; password hashing and verification run on the libuv threadpool. */
#ifndef MBX_HANDLER_H
#define MBX_HANDLER_H

#include "conn.h"

/* Takes ownership of r: checks the session's rights, runs or queues the request, and
 * eventually calls mbx_req_finish(r) exactly once. */
void mbx_handler_dispatch(struct mbx_req *r);
/* Creates database `name` on this node: checks the name, adds its entry, opens its
 * store on the libuv thread pool (creating the files syncs them), starts its committer
 * and its replication role, then calls created(r) on the loop thread with r->db ready;
 * created answers r. On failure r is answered with the error, the entry removed, and
 * created never called. Returns MBX_REQ_PENDING, or a negative error already set on r. */
int mbx_handler_db_create(struct mbx_req *r, const char *name,
                          void (*created)(struct mbx_req *r));
/* Frees the addresses a mailbox_create reserved (called by mbx_req_finish). */
void mbx_handler_release_addresses(struct mbx_req *r);

#endif

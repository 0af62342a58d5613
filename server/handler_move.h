/* handler_move.h — mbx_handler_move: role changes an operator asks for
 * (admin db move-active, a lossless switchover run by the active's node) and the
 * node-to-node activation that ends one (DbActivateReq). See handler_move.c. */
#ifndef MBX_HANDLER_MOVE_H
#define MBX_HANDLER_MOVE_H

#include "conn.h"

/* Same contract as the handlers in handler.c: a negative error already described
 * in r, 0 when r's response is ready, 1 when pending (it finishes r itself). */
int mbx_handler_move(struct mbx_req *r);

#endif

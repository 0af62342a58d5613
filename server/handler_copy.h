/* handler_copy.h — mbx_handler_copy: requests about database copies (issue 3):
 * copy add/remove/suspend/resume/reseed/play-down, copy_host and seed between nodes,
 * db_create with copies and db_digest of another node's copy (forwarded). */
#ifndef MBX_HANDLER_COPY_H
#define MBX_HANDLER_COPY_H

#include "conn.h"

/* Same contract as the handlers in handler.c: returns a negative error already
 * answered with req_fail-style text, 0 when r's response is ready, or 1 when the
 * request is pending (it will call mbx_req_finish itself). */
int mbx_handler_copy(struct mbx_req *r);

#endif

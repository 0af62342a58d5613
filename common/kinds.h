/* kinds.h — what the server and the clients must agree on about kinds: which class
 * of folder holds an item kind (store.c, cache_ops.c, cache_apply.c), and which
 * kinds of request are writes the node deduplicates by idempotency key
 * (handler.c, libmbx's blocking.c). */
#ifndef MBX_KINDS_H
#define MBX_KINDS_H

#include <stdbool.h>

#include "client.pb-c.h"
#include "store.pb-c.h"

/* The class of folder an item of kind k lives in: events in calendars, contacts in
 * contact folders, tasks in task folders, notes in note folders, anything else
 * (messages, unknown kinds) in mail folders. */
Mbx__FolderClass mbx_kind_folder_class(Mbx__ItemKind k);

/* The writes whose Request.idempotency_key the node honours (deliver, append, item
 * and folder commands): a retry with the same key applies once. */
bool mbx_kind_keyed_write(Mbx__Request__BodyCase c);

#endif

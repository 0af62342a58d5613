/* kinds.h — what the server (store.c) and the cached client (cache_ops.c,
 * cache_apply.c) must agree on about item kinds: which class of folder holds them. */
#ifndef MBX_KINDS_H
#define MBX_KINDS_H

#include "store.pb-c.h"

/* The class of folder an item of kind k lives in: events in calendars, contacts in
 * contact folders, tasks in task folders, notes in note folders, anything else
 * (messages, unknown kinds) in mail folders. */
Mbx__FolderClass mbx_kind_folder_class(Mbx__ItemKind k);

#endif

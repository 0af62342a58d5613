/* db_probe.h — the check a copy that believes it is active makes after a (re)start,
 * before its fence opens: where are the other copies? (server/db_probe.c). */
#ifndef MBX_DB_PROBE_H
#define MBX_DB_PROBE_H

#include <stdbool.h>

#include "db.h"

/* Asks every other copy in db's layout for its position and tells db.c the outcome
 * through mbx_db_probed (later, on the loop). 0, MBX_ENOMEM, store errors. */
int mbx_db_probe(struct mbx_node *n, struct mbx_db *db);
/* Whether db's layout names other copies (a single copy has nobody to ask). */
bool mbx_db_has_peers(struct mbx_db *db);

#endif

/* rfc5322.h — the header summary of a raw message (subject, from, to, cc, date,
 * Message-ID, size) for Item.message. Tolerant: garbage in gives an empty or partial
 * summary, never a failure or an out-of-bounds read. Shared: the node's store, the
 * cached-mode client (a message appended offline shows what the server will show)
 * and the standard-protocol front ends all parse with this one. Pure, thread-safe. */
#ifndef MBX_RFC5322_H
#define MBX_RFC5322_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "store.pb-c.h"

/* Only this much of a message is searched for headers. */
#define MBX_RFC5322_HEADER_MAX_BYTES (256u * 1024u)
/* Longest kept header value (after unfolding), and most To/Cc addresses kept. */
#define MBX_RFC5322_VALUE_MAX_BYTES (16u * 1024u)
#define MBX_RFC5322_ADDRS_MAX       256

/* Fills sum (initialised by the caller) with strings allocated in a; size = len.
 * Strings are valid UTF-8 without control characters (others replaced by '?'/' ').
 * Returns 0 or MBX_ENOMEM. */
int mbx_rfc5322_parse(const uint8_t *msg, size_t len, struct mbx_arena *a,
                      Mbx__MessageSummary *sum);

/* Parses an RFC 5322 date-time ("Tue, 1 Jul 2003 10:52:37 +0200", obsolete zones too)
 * into microseconds since the epoch. Returns 0 or MBX_EINVAL. */
int mbx_rfc5322_parse_date(const char *s, int64_t *us_r);

#endif

/* parts.h — mbx_repl_part_*: log records of any size shipped in bounded frames.
 * The active fills each ReplBatch up to a byte budget that fits the pulling copy's
 * frame limit; a record too large for one batch goes as a sequence of ReplRecordPart
 * (proto/client.proto), which the passive reassembles here up to a hard cap of its
 * own. Pure: no I/O, no loop; loop thread by convention. */
#ifndef MBX_REPL_PARTS_H
#define MBX_REPL_PARTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client.pb-c.h"

#define MBX_REPL_BATCH_BYTES_MAX (1024u * 1024u) /* records (or part data) per batch */
#define MBX_REPL_FRAME_OVERHEAD 1024u    /* Response and ReplBatch fields around the data */
#define MBX_REPL_RECORD_OVERHEAD 24u     /* per record in a batch: tag, length, commit time */
#define MBX_REPL_FRAME_MIN 4096u         /* the smallest max_frame_bytes a node may have */

/* Bytes of records (each counted with MBX_REPL_RECORD_OVERHEAD), or of one part's
 * data, a batch may carry to a copy whose frames are limited to peer_max_frame_bytes
 * (0: not announced, 1 MiB). Always at least MBX_REPL_FRAME_MIN − overhead. */
size_t mbx_repl_batch_budget(uint64_t peer_max_frame_bytes);

/* A record being reassembled from its parts. Zero-initialise; reset to drop it. */
struct mbx_repl_part_rx {
  uint8_t *buf;                       /* total bytes, malloc'd at the first part */
  uint64_t lsn, total, got;
};

/* Adds the next part. Returns
 *   0            more parts are needed;
 *   1            the record is complete: *rec_r (malloc'd, the caller frees it) and
 *                *len_r; p is empty again;
 *   MBX_ELIMIT   the record (part->total_bytes) is larger than cap_bytes;
 *   MBX_EPROTO   the part does not continue the record being reassembled (another
 *                lsn, offset or total; empty data; past the end), or a first part that
 *                is not at offset 0;
 *   MBX_ENOMEM.
 * On any error nothing is kept (p is empty). */
int mbx_repl_part_add(struct mbx_repl_part_rx *p, const Mbx__ReplRecordPart *part,
                      uint64_t cap_bytes, uint8_t **rec_r, size_t *len_r);
/* Drops a partly received record (a disconnect: the active starts it again). */
void mbx_repl_part_reset(struct mbx_repl_part_rx *p);
static inline bool mbx_repl_part_pending(const struct mbx_repl_part_rx *p) { return p->buf; }

#endif

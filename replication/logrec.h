/* logrec.h — the log record: the unit of replication.
 * One record per LMDB write transaction, stored in the database's `log`
 * sub-database under its LSN (8-byte big-endian key), in the same transaction as
 * the changes it describes. Encoding (all integers big-endian):
 *
 *   off  size  field
 *     0     4  magic "MBXL"
 *     4     2  version (1)
 *     6     2  flags (0)
 *     8     8  epoch        — the active copy's epoch when it was written
 *    16     8  lsn          — 1, 2, 3 … with no gaps within a database
 *    24     8  time_us      — active's wall clock at commit
 *    32     4  ops_len      — length of the payload
 *    36     4  crc32c       — over bytes 0..35 (with this field zero) and the payload
 *    40     …  payload      — a packed mbx.LogOps (proto/store.proto)
 */
#ifndef MBX_LOGREC_H
#define MBX_LOGREC_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "store.pb-c.h"

#define MBX_LOGREC_MAGIC "MBXL"
#define MBX_LOGREC_VERSION 1
#define MBX_LOGREC_HEADER_BYTES 40
#define MBX_LOGREC_MAX_BYTES (1024u * 1024u * 1024u)

struct mbx_logrec {
  uint64_t epoch;
  uint64_t lsn;
  int64_t time_us;
  const uint8_t *ops;                 /* packed mbx.LogOps; borrowed from the input */
  size_t ops_len;
};

/* Appends the encoded record for (epoch, lsn, time_us, ops) to out.
 * Returns 0, MBX_ENOMEM, MBX_ELIMIT (over MBX_LOGREC_MAX_BYTES or out's limit). */
int mbx_logrec_encode(uint64_t epoch, uint64_t lsn, int64_t time_us, const Mbx__LogOps *ops,
                      struct mbx_buf *out);
/* The same for a payload that is already a packed mbx.LogOps (the store builds it
 * op by op as units succeed, so it never packs twice). Same returns. */
int mbx_logrec_encode_packed(uint64_t epoch, uint64_t lsn, int64_t time_us, const uint8_t *ops,
                             size_t ops_len, struct mbx_buf *out);

/* Parses and verifies a record (magic, version, lengths, CRC). On success fills rec,
 * whose ops pointer borrows from data. Returns 0 or MBX_ECORRUPT. Never reads past len. */
int mbx_logrec_decode(const uint8_t *data, size_t len, struct mbx_logrec *rec);

/* Unpacks a verified record's payload with the given allocator (e.g. an arena's pb).
 * Returns NULL if the payload is not a valid LogOps. */
Mbx__LogOps *mbx_logrec_unpack_ops(const struct mbx_logrec *rec, ProtobufCAllocator *alloc);

#endif

/* logrec.c — encode/decode of log records, exactly the layout documented in
 * logrec.h. Decode is the gate every shipped record passes: it trusts nothing
 * and never reads past the given length. */
#include <string.h>

#include "crc32c.h"
#include "logrec.h"
#include "mbx_error.h"

static void logrec_header(uint8_t *h, uint64_t epoch, uint64_t lsn, int64_t time_us,
                          uint32_t ops_len)
{
  memcpy(h, MBX_LOGREC_MAGIC, 4);
  h[4] = 0;
  h[5] = MBX_LOGREC_VERSION;
  h[6] = 0;
  h[7] = 0;
  mbx_put_be64(h + 8, epoch);
  mbx_put_be64(h + 16, lsn);
  mbx_put_be64(h + 24, (uint64_t)time_us);
  mbx_put_be32(h + 32, ops_len);
  mbx_put_be32(h + 36, 0);
}

int mbx_logrec_encode_packed(uint64_t epoch, uint64_t lsn, int64_t time_us, const uint8_t *ops,
                             size_t ops_len, struct mbx_buf *out)
{
  if (ops_len > MBX_LOGREC_MAX_BYTES - MBX_LOGREC_HEADER_BYTES)
    return MBX_ELIMIT;
  int rc = mbx_buf_reserve(out, MBX_LOGREC_HEADER_BYTES + ops_len);
  if (rc < 0)
    return rc;
  uint8_t *h = out->data + out->len;
  logrec_header(h, epoch, lsn, time_us, (uint32_t)ops_len);
  if (ops_len)
    memcpy(h + MBX_LOGREC_HEADER_BYTES, ops, ops_len);
  uint32_t crc = mbx_crc32c(0, h, MBX_LOGREC_HEADER_BYTES);
  crc = mbx_crc32c(crc, h + MBX_LOGREC_HEADER_BYTES, ops_len);
  mbx_put_be32(h + 36, crc);
  out->len += MBX_LOGREC_HEADER_BYTES + ops_len;
  return 0;
}

int mbx_logrec_encode(uint64_t epoch, uint64_t lsn, int64_t time_us, const Mbx__LogOps *ops,
                      struct mbx_buf *out)
{
  size_t ops_len = mbx__log_ops__get_packed_size(ops);
  if (ops_len > MBX_LOGREC_MAX_BYTES - MBX_LOGREC_HEADER_BYTES)
    return MBX_ELIMIT;
  int rc = mbx_buf_reserve(out, MBX_LOGREC_HEADER_BYTES + ops_len);
  if (rc < 0)
    return rc;
  uint8_t *h = out->data + out->len;
  size_t packed = mbx__log_ops__pack(ops, h + MBX_LOGREC_HEADER_BYTES);
  if (packed != ops_len)
    return MBX_EINVAL;
  logrec_header(h, epoch, lsn, time_us, (uint32_t)ops_len);
  uint32_t crc = mbx_crc32c(0, h, MBX_LOGREC_HEADER_BYTES);
  crc = mbx_crc32c(crc, h + MBX_LOGREC_HEADER_BYTES, ops_len);
  mbx_put_be32(h + 36, crc);
  out->len += MBX_LOGREC_HEADER_BYTES + ops_len;
  return 0;
}

int mbx_logrec_decode(const uint8_t *data, size_t len, struct mbx_logrec *rec)
{
  if (!data || len < MBX_LOGREC_HEADER_BYTES || len > MBX_LOGREC_MAX_BYTES)
    return MBX_ECORRUPT;
  if (memcmp(data, MBX_LOGREC_MAGIC, 4) != 0)
    return MBX_ECORRUPT;
  if (((unsigned)data[4] << 8 | data[5]) != MBX_LOGREC_VERSION || data[6] || data[7])
    return MBX_ECORRUPT;
  uint32_t ops_len = mbx_get_be32(data + 32);
  if ((size_t)ops_len != len - MBX_LOGREC_HEADER_BYTES)
    return MBX_ECORRUPT;
  uint8_t h[MBX_LOGREC_HEADER_BYTES];
  memcpy(h, data, sizeof(h));
  mbx_put_be32(h + 36, 0);
  uint32_t crc = mbx_crc32c(0, h, sizeof(h));
  crc = mbx_crc32c(crc, data + MBX_LOGREC_HEADER_BYTES, ops_len);
  if (crc != mbx_get_be32(data + 36))
    return MBX_ECORRUPT;
  rec->epoch = mbx_get_be64(data + 8);
  rec->lsn = mbx_get_be64(data + 16);
  rec->time_us = (int64_t)mbx_get_be64(data + 24);
  rec->ops = data + MBX_LOGREC_HEADER_BYTES;
  rec->ops_len = ops_len;
  return 0;
}

Mbx__LogOps *mbx_logrec_unpack_ops(const struct mbx_logrec *rec, ProtobufCAllocator *alloc)
{
  return mbx__log_ops__unpack(alloc, rec->ops_len, rec->ops);
}

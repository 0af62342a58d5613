/* parts.c — batch budgets and the reassembly of a record shipped in parts (parts.h).
 * Every length that comes from the wire is checked before it is used: the total
 * against the cap (and the log format's limit) before anything is allocated, each
 * part against what is still missing. */
#include <stdlib.h>
#include <string.h>

#include "logrec.h"
#include "mbx_error.h"
#include "parts.h"

size_t mbx_repl_batch_budget(uint64_t peer_max_frame_bytes)
{
  if (peer_max_frame_bytes == 0)
    return MBX_REPL_BATCH_BYTES_MAX;
  uint64_t f = peer_max_frame_bytes;
  if (f < MBX_REPL_FRAME_MIN)
    f = MBX_REPL_FRAME_MIN;
  f -= MBX_REPL_FRAME_OVERHEAD;
  return f < MBX_REPL_BATCH_BYTES_MAX ? (size_t)f : MBX_REPL_BATCH_BYTES_MAX;
}

void mbx_repl_part_reset(struct mbx_repl_part_rx *p)
{
  free(p->buf);
  memset(p, 0, sizeof(*p));
}

static int part_refuse(struct mbx_repl_part_rx *p, int code)
{
  mbx_repl_part_reset(p);
  return code;
}

int mbx_repl_part_add(struct mbx_repl_part_rx *p, const Mbx__ReplRecordPart *part,
                      uint64_t cap_bytes, uint8_t **rec_r, size_t *len_r)
{
  *rec_r = NULL;
  *len_r = 0;
  if (!p->buf) {
    if (part->offset != 0 || part->total_bytes < MBX_LOGREC_HEADER_BYTES)
      return part_refuse(p, MBX_EPROTO);
    if (part->total_bytes > cap_bytes || part->total_bytes > MBX_LOGREC_MAX_BYTES)
      return part_refuse(p, MBX_ELIMIT);
    if (!(p->buf = malloc((size_t)part->total_bytes)))
      return part_refuse(p, MBX_ENOMEM);
    p->lsn = part->lsn;
    p->total = part->total_bytes;
    p->got = 0;
  }
  if (part->lsn != p->lsn || part->total_bytes != p->total || part->offset != p->got ||
      part->data.len == 0 || part->data.len > p->total - p->got)
    return part_refuse(p, MBX_EPROTO);
  memcpy(p->buf + p->got, part->data.data, part->data.len);
  p->got += part->data.len;
  if (p->got < p->total)
    return 0;
  *rec_r = p->buf;
  *len_r = (size_t)p->total;
  p->buf = NULL;
  mbx_repl_part_reset(p);
  return 1;
}

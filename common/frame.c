/* frame.c — mbx_wire_*: incremental reader and writer of length-prefixed frames.
 * The reader hands out frames in place and only compacts its buffer when new bytes
 * arrive, so a feed carrying many small frames costs no memmove per frame. */
#include <string.h>

#include "frame.h"
#include "mbx_error.h"

#define WIRE_KEEP_BYTES (1u << 20) /* buffer capacity kept once it runs empty */

void mbx_wire_reader_init(struct mbx_wire_reader *r, size_t max_frame_bytes)
{
  /* No cap on the buffer itself: the length check in mbx_wire_next bounds what a
   * peer can make us hold to one frame plus one feed. */
  mbx_buf_init(&r->buf, 0);
  r->max_frame_bytes = max_frame_bytes;
  r->consumed = 0;
}

void mbx_wire_reader_free(struct mbx_wire_reader *r)
{
  mbx_buf_free(&r->buf);
  r->consumed = 0;
}

/* Moves the unconsumed tail to the front, but only when that is cheap compared with
 * what it saves: everything consumed (free), or the dead prefix is at least half the
 * buffer, or the new bytes would not fit otherwise. */
static void wire_compact(struct mbx_wire_reader *r, size_t incoming)
{
  if (r->consumed == 0)
    return;
  size_t live = r->buf.len - r->consumed;
  if (live == 0) {
    r->buf.len = 0;
    r->consumed = 0;
    return;
  }
  if (r->consumed < r->buf.cap / 2 && r->buf.len + incoming <= r->buf.cap)
    return;
  memmove(r->buf.data, r->buf.data + r->consumed, live);
  r->buf.len = live;
  r->consumed = 0;
}

int mbx_wire_feed(struct mbx_wire_reader *r, const uint8_t *data, size_t len)
{
  if (len == 0)
    return 0;
  if (r->consumed == r->buf.len && r->buf.cap > WIRE_KEEP_BYTES)
    mbx_buf_free(&r->buf); /* a past large frame: don't hold its memory */
  wire_compact(r, len);
  int err = mbx_buf_append(&r->buf, data, len);
  return err == MBX_ELIMIT ? MBX_ENOMEM : err;
}

int mbx_wire_next(struct mbx_wire_reader *r, const uint8_t **frame_r, size_t *len_r)
{
  size_t avail = r->buf.len - r->consumed;
  if (avail < MBX_WIRE_PREFIX_BYTES)
    return 0;
  const uint8_t *p = r->buf.data + r->consumed;
  size_t n = mbx_get_be32(p);
  if (n > r->max_frame_bytes)
    return MBX_EFRAME;
  if (avail - MBX_WIRE_PREFIX_BYTES < n) {
    /* Make room for the whole frame now so a large frame grows the buffer once
     * instead of doubling (and copying) its way up feed after feed. */
    wire_compact(r, MBX_WIRE_PREFIX_BYTES + n - avail);
    (void)mbx_buf_reserve(&r->buf, MBX_WIRE_PREFIX_BYTES + n - avail); /* else feed reports it */
    return 0;
  }
  *frame_r = p + MBX_WIRE_PREFIX_BYTES;
  *len_r = n;
  r->consumed += MBX_WIRE_PREFIX_BYTES + n;
  if (r->consumed == r->buf.len)
    r->buf.len = r->consumed = 0; /* borrowed frame stays readable: no move */
  return 1;
}

int mbx_wire_pack(const ProtobufCMessage *m, struct mbx_buf *out)
{
  size_t n = protobuf_c_message_get_packed_size(m);
  if (n > UINT32_MAX)
    return MBX_ELIMIT;
  int err = mbx_buf_reserve(out, MBX_WIRE_PREFIX_BYTES + n);
  if (err < 0)
    return err;
  uint8_t *p = out->data + out->len;
  mbx_put_be32(p, (uint32_t)n);
  size_t packed = protobuf_c_message_pack(m, p + MBX_WIRE_PREFIX_BYTES);
  if (packed != n)
    return MBX_EINVAL; /* message changed under us or is invalid */
  out->len += MBX_WIRE_PREFIX_BYTES + n;
  return 0;
}

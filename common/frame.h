/* frame.h — mbx_wire_*: length-prefixed protobuf frames.
 * A frame is a 4-byte big-endian payload length, then the payload (one packed
 * mbx.Request or mbx.Response). Lengths over the reader's max_frame_bytes are a
 * protocol violation: the connection gets an error reply and is closed. */
#ifndef MBX_FRAME_H
#define MBX_FRAME_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define MBX_WIRE_PREFIX_BYTES 4

struct mbx_wire_reader {
  struct mbx_buf buf;
  size_t max_frame_bytes;
  size_t consumed;                    /* bytes of buf already handed out */
};

void mbx_wire_reader_init(struct mbx_wire_reader *r, size_t max_frame_bytes);
void mbx_wire_reader_free(struct mbx_wire_reader *r);
/* Adds received bytes. Returns 0 or MBX_ENOMEM. */
int mbx_wire_feed(struct mbx_wire_reader *r, const uint8_t *data, size_t len);
/* Next complete frame: returns 1 and sets *frame_r and *len_r (borrowed until the next
 * feed/next call), 0 if more bytes are needed, MBX_EFRAME if the announced length is
 * over max_frame_bytes (the reader is then unusable). */
int mbx_wire_next(struct mbx_wire_reader *r, const uint8_t **frame_r, size_t *len_r);

/* Appends prefix + packed message to out. Returns 0, MBX_ENOMEM, MBX_ELIMIT. */
int mbx_wire_pack(const ProtobufCMessage *m, struct mbx_buf *out);

#endif

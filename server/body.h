/* body.h — the stored form of a message body: one codec byte, then the bytes.
 * Bodies are compressed with zstd when that saves space: mail is mostly text, and a
 * 4 KiB text body compressed fits beside others in a leaf page instead of taking two
 * overflow pages of its own, which halves what a delivery writes to disk.
 * The stored form is decided once, by the active copy, and travels in the log
 * record's OpPutItem.body, so every copy stores the same bytes. */
#ifndef MBX_BODY_H
#define MBX_BODY_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"

enum mbx_body_codec {
  MBX_BODY_RAW = 0,                   /* the raw RFC 5322 bytes follow */
  MBX_BODY_ZSTD = 1,                  /* one zstd frame with its content size follows */
};

/* Encodes raw (len bytes) into its stored form, allocated in a. Compresses when it
 * saves at least 1/16 of the size; bodies under 256 bytes are kept raw.
 * Returns 0 or MBX_ENOMEM. */
int mbx_body_encode(const uint8_t *raw, size_t len, struct mbx_arena *a, uint8_t **stored_r,
                    size_t *stored_len_r);

/* Decodes a stored body whose raw length must be raw_len (the item's size).
 * *raw_r points into stored (codec raw) or into a (decompressed).
 * Returns 0, MBX_ECORRUPT (unknown codec, bad frame, wrong length), MBX_ENOMEM. */
int mbx_body_decode(const uint8_t *stored, size_t stored_len, uint64_t raw_len,
                    struct mbx_arena *a, const uint8_t **raw_r, size_t *len_r);

#endif

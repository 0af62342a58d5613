/* buf.h — a growable byte buffer with a hard size limit. */
#ifndef MBX_BUF_H
#define MBX_BUF_H

#include <stddef.h>
#include <stdint.h>

struct mbx_buf {
  uint8_t *data;
  size_t len, cap;
  size_t max_bytes;                   /* 0 = unlimited */
};

void mbx_buf_init(struct mbx_buf *b, size_t max_bytes);
void mbx_buf_free(struct mbx_buf *b);
/* Ensures room for `extra` more bytes: 0, MBX_ENOMEM, or MBX_ELIMIT past max_bytes. */
int mbx_buf_reserve(struct mbx_buf *b, size_t extra);
int mbx_buf_append(struct mbx_buf *b, const void *p, size_t n);
/* Drops the first n bytes. */
void mbx_buf_consume(struct mbx_buf *b, size_t n);

static inline void mbx_put_be32(uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline uint32_t mbx_get_be32(const uint8_t *p)
{
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void mbx_put_be64(uint8_t *p, uint64_t v)
{
  mbx_put_be32(p, (uint32_t)(v >> 32));
  mbx_put_be32(p + 4, (uint32_t)v);
}
static inline uint64_t mbx_get_be64(const uint8_t *p)
{
  return (uint64_t)mbx_get_be32(p) << 32 | mbx_get_be32(p + 4);
}

#endif

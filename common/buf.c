/* buf.c — growable byte buffer. */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "mbx_error.h"

void mbx_buf_init(struct mbx_buf *b, size_t max_bytes)
{
  b->data = NULL;
  b->len = b->cap = 0;
  b->max_bytes = max_bytes;
}

void mbx_buf_free(struct mbx_buf *b)
{
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

int mbx_buf_reserve(struct mbx_buf *b, size_t extra)
{
  if (extra > SIZE_MAX - b->len)
    return MBX_ELIMIT;
  size_t need = b->len + extra;
  if (b->max_bytes && need > b->max_bytes)
    return MBX_ELIMIT;
  if (need <= b->cap)
    return 0;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < need)
    cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  uint8_t *d = realloc(b->data, cap);
  if (!d)
    return MBX_ENOMEM;
  b->data = d;
  b->cap = cap;
  return 0;
}

int mbx_buf_append(struct mbx_buf *b, const void *p, size_t n)
{
  int r = mbx_buf_reserve(b, n);
  if (r < 0)
    return r;
  if (n)
    memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

void mbx_buf_consume(struct mbx_buf *b, size_t n)
{
  if (n >= b->len) {
    b->len = 0;
    return;
  }
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
}

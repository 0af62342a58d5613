/* arena.c — chunked bump allocator; big requests get a chunk of their own. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"

#define ARENA_CHUNK_BYTES (64 * 1024)

struct mbx_arena_chunk {
  struct mbx_arena_chunk *next;
  size_t size, used;
  _Alignas(16) unsigned char data[];
};

static void *arena_pb_alloc(void *data, size_t size) { return mbx_arena_alloc(data, size); }
static void arena_pb_free(void *data, void *p) { (void)data; (void)p; }

void mbx_arena_init(struct mbx_arena *a, size_t limit_bytes)
{
  a->chunks = NULL;
  a->total_bytes = 0;
  a->limit_bytes = limit_bytes;
  a->pb.alloc = arena_pb_alloc;
  a->pb.free = arena_pb_free;
  a->pb.allocator_data = a;
}

void mbx_arena_reset(struct mbx_arena *a)
{
  struct mbx_arena_chunk *c = a->chunks;
  while (c) {
    struct mbx_arena_chunk *next = c->next;
    free(c);
    c = next;
  }
  a->chunks = NULL;
  a->total_bytes = 0;
}

void *mbx_arena_alloc(struct mbx_arena *a, size_t size)
{
  size_t need = (size + 15) & ~(size_t)15;
  if (need < size)
    return NULL;
  if (a->limit_bytes && a->total_bytes + need > a->limit_bytes)
    return NULL;
  struct mbx_arena_chunk *c = a->chunks;
  if (!c || c->size - c->used < need) {
    size_t csize = need > ARENA_CHUNK_BYTES / 4 ? need : ARENA_CHUNK_BYTES;
    struct mbx_arena_chunk *n = malloc(sizeof(*n) + csize);
    if (!n)
      return NULL;
    n->size = csize;
    n->used = 0;
    if (c && csize == need && c->size - c->used >= 256) {
      /* A big block: keep the current chunk in front for small ones. */
      n->next = c->next;
      c->next = n;
    } else {
      n->next = c;
      a->chunks = n;
    }
    c = n;
  }
  void *p = c->data + c->used;
  c->used += need;
  a->total_bytes += need;
  return p;
}

void *mbx_arena_zalloc(struct mbx_arena *a, size_t size)
{
  void *p = mbx_arena_alloc(a, size);
  if (p)
    memset(p, 0, size);
  return p;
}

void *mbx_arena_memdup(struct mbx_arena *a, const void *p, size_t n)
{
  void *d = mbx_arena_alloc(a, n ? n : 1);
  if (d && n)
    memcpy(d, p, n);
  return d;
}

char *mbx_arena_strndup(struct mbx_arena *a, const char *s, size_t n)
{
  char *d = mbx_arena_alloc(a, n + 1);
  if (d) {
    memcpy(d, s, n);
    d[n] = '\0';
  }
  return d;
}

char *mbx_arena_strdup(struct mbx_arena *a, const char *s)
{
  return s ? mbx_arena_strndup(a, s, strlen(s)) : NULL;
}

char *mbx_arena_printf(struct mbx_arena *a, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0)
    return NULL;
  char *d = mbx_arena_alloc(a, (size_t)n + 1);
  if (!d)
    return NULL;
  va_start(ap, fmt);
  vsnprintf(d, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return d;
}

void *mbx_arena_pbnew(struct mbx_arena *a, const ProtobufCMessageDescriptor *desc)
{
  void *m = mbx_arena_zalloc(a, desc->sizeof_message);
  if (m)
    protobuf_c_message_init(desc, m);
  return m;
}

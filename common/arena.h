/* arena.h — a bump allocator for one request's worth of memory, also usable as
 * protobuf-c's allocator: unpack, build a response, pack, then free it all at once. */
#ifndef MBX_ARENA_H
#define MBX_ARENA_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

struct mbx_arena_chunk;

struct mbx_arena {
  struct mbx_arena_chunk *chunks;
  size_t total_bytes;                 /* bytes handed out so far */
  size_t limit_bytes;                 /* 0 = unlimited; over it allocations fail */
  ProtobufCAllocator pb;              /* pass &arena->pb to protobuf-c */
};

/* Prepares an arena; limit_bytes 0 = unlimited. Never fails (allocates lazily). */
void mbx_arena_init(struct mbx_arena *a, size_t limit_bytes);
/* Frees everything allocated from the arena; it can be used again afterwards. */
void mbx_arena_reset(struct mbx_arena *a);

/* 16-byte aligned; NULL when out of memory or over the limit. */
void *mbx_arena_alloc(struct mbx_arena *a, size_t size);
void *mbx_arena_zalloc(struct mbx_arena *a, size_t size);
char *mbx_arena_strdup(struct mbx_arena *a, const char *s);
char *mbx_arena_strndup(struct mbx_arena *a, const char *s, size_t n);
void *mbx_arena_memdup(struct mbx_arena *a, const void *p, size_t n);
char *mbx_arena_printf(struct mbx_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Allocates a zeroed protobuf-c message of the given descriptor and initialises it
 * (protobuf_c_message_init). */
void *mbx_arena_pbnew(struct mbx_arena *a, const ProtobufCMessageDescriptor *desc);

#endif

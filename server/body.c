/* body.c — stored form of message bodies (codec byte + raw or zstd bytes).
 * Level 1: on this kind of machine it compresses text at several hundred MB/s, so a
 * 4 KiB body costs microseconds on the writer thread and saves pages on disk. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "body.h"
#include "log.h"
#include "mbx_error.h"

#define BODY_COMPRESS_MIN_BYTES 256
#define BODY_ZSTD_LEVEL 1

/* One pair of contexts per thread, made on first use and kept: making a zstd context
 * costs far more than compressing a 4 KiB body with it. The writer threads
 * compress, the loop thread decompresses; a thread's pair is freed when it exits. */
struct body_ctx {
  ZSTD_CCtx *c;
  ZSTD_DCtx *d;
};

static pthread_key_t body_key;
static pthread_once_t body_once = PTHREAD_ONCE_INIT;

static void body_ctx_free(void *p)
{
  struct body_ctx *bc = p;
  ZSTD_freeCCtx(bc->c);
  ZSTD_freeDCtx(bc->d);
  free(bc);
}

static void body_key_init(void) { mbx_assert(pthread_key_create(&body_key, body_ctx_free) == 0); }

static struct body_ctx *body_ctx(void)
{
  pthread_once(&body_once, body_key_init);
  struct body_ctx *bc = pthread_getspecific(body_key);
  if (!bc) {
    bc = calloc(1, sizeof(*bc));
    if (!bc)
      return NULL;
    if (pthread_setspecific(body_key, bc) != 0) {
      free(bc);
      return NULL;
    }
  }
  return bc;
}

int mbx_body_encode(const uint8_t *raw, size_t len, struct mbx_arena *a, uint8_t **stored_r,
                    size_t *stored_len_r)
{
  if (len >= BODY_COMPRESS_MIN_BYTES) {
    size_t bound = ZSTD_compressBound(len);
    uint8_t *out = mbx_arena_alloc(a, bound + 1);
    if (!out)
      return MBX_ENOMEM;
    struct body_ctx *bc = body_ctx();
    if (!bc || (!bc->c && !(bc->c = ZSTD_createCCtx())))
      return MBX_ENOMEM;
    size_t n = ZSTD_compressCCtx(bc->c, out + 1, bound, raw, len, BODY_ZSTD_LEVEL);
    if (!ZSTD_isError(n) && n + 1 <= len - len / 16) {
      out[0] = MBX_BODY_ZSTD;
      *stored_r = out;
      *stored_len_r = n + 1;
      return 0;
    }
  }
  uint8_t *out = mbx_arena_alloc(a, len + 1);
  if (!out)
    return MBX_ENOMEM;
  out[0] = MBX_BODY_RAW;
  if (len)
    memcpy(out + 1, raw, len);
  *stored_r = out;
  *stored_len_r = len + 1;
  return 0;
}

int mbx_body_decode(const uint8_t *stored, size_t stored_len, uint64_t raw_len,
                    struct mbx_arena *a, const uint8_t **raw_r, size_t *len_r)
{
  if (stored_len < 1)
    return MBX_ECORRUPT;
  const uint8_t *p = stored + 1;
  size_t n = stored_len - 1;
  switch (stored[0]) {
  case MBX_BODY_RAW:
    if (n != raw_len)
      return MBX_ECORRUPT;
    *raw_r = p;
    *len_r = n;
    return 0;
  case MBX_BODY_ZSTD: {
    unsigned long long content = ZSTD_getFrameContentSize(p, n);
    if (content != raw_len)
      return MBX_ECORRUPT;
    uint8_t *out = mbx_arena_alloc(a, raw_len ? (size_t)raw_len : 1);
    if (!out)
      return MBX_ENOMEM;
    struct body_ctx *bc = body_ctx();
    if (!bc || (!bc->d && !(bc->d = ZSTD_createDCtx())))
      return MBX_ENOMEM;
    size_t got = ZSTD_decompressDCtx(bc->d, out, (size_t)raw_len, p, n);
    if (ZSTD_isError(got) || got != raw_len)
      return MBX_ECORRUPT;
    *raw_r = out;
    *len_r = got;
    return 0;
  }
  default:
    return MBX_ECORRUPT;
  }
}

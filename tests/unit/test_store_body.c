/* test_store_body.c — bodies are stored compressed when that pays, and every body
 * reads back byte for byte; a damaged stored body is reported, never served. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "body.h"
#include "store_fixture.h"

static void make_text(uint8_t *p, size_t n)
{
  static const char *const w[] = {"meeting", "the", "budget", "of", "quarter", "and",
                                  "review", "please", "attached", "report"};
  uint32_t x = 12345;
  for (size_t i = 0; i < n;) {
    x = x * 1103515245u + 12345u;
    const char *s = w[(x >> 16) % 10];
    for (; *s && i < n; s++)
      p[i++] = (uint8_t)*s;
    if (i < n)
      p[i++] = ' ';
  }
}

static void make_random(uint8_t *p, size_t n)
{
  uint64_t x = 88172645463325252ull;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    p[i] = (uint8_t)x;
  }
}

static void roundtrip(const uint8_t *raw, size_t len, int want_codec)
{
  struct mbx_arena a;
  mbx_arena_init(&a, 0);
  uint8_t *stored;
  size_t stored_len;
  assert_int_equal(mbx_body_encode(raw, len, &a, &stored, &stored_len), 0);
  assert_int_equal(stored[0], want_codec);
  if (want_codec == MBX_BODY_ZSTD)
    assert_true(stored_len < len);
  const uint8_t *back;
  size_t back_len;
  assert_int_equal(mbx_body_decode(stored, stored_len, len, &a, &back, &back_len), 0);
  assert_int_equal(back_len, len);
  assert_memory_equal(back, raw, len);
  mbx_arena_reset(&a);
}

static void test_store_body_codec_roundtrip(void **state)
{
  (void)state;
  static uint8_t buf[64 * 1024];
  roundtrip((const uint8_t *)"", 0, MBX_BODY_RAW);
  roundtrip((const uint8_t *)"short body", 10, MBX_BODY_RAW);
  make_text(buf, 4096);
  roundtrip(buf, 4096, MBX_BODY_ZSTD);
  make_text(buf, sizeof(buf));
  roundtrip(buf, sizeof(buf), MBX_BODY_ZSTD);
  make_random(buf, 4096);
  roundtrip(buf, 4096, MBX_BODY_RAW); /* incompressible: kept as it is */
}

static void test_store_body_codec_rejects_damage(void **state)
{
  (void)state;
  uint8_t raw[4096];
  make_text(raw, sizeof(raw));
  struct mbx_arena a;
  mbx_arena_init(&a, 0);
  uint8_t *stored;
  size_t n;
  const uint8_t *out;
  size_t out_len;
  assert_int_equal(mbx_body_encode(raw, sizeof(raw), &a, &stored, &n), 0);
  /* wrong expected length, unknown codec, truncated frame, empty value */
  assert_int_equal(mbx_body_decode(stored, n, sizeof(raw) + 1, &a, &out, &out_len), MBX_ECORRUPT);
  assert_int_equal(mbx_body_decode(stored, n / 2, sizeof(raw), &a, &out, &out_len), MBX_ECORRUPT);
  assert_int_equal(mbx_body_decode(stored, 0, 0, &a, &out, &out_len), MBX_ECORRUPT);
  stored[0] = 7;
  assert_int_equal(mbx_body_decode(stored, n, sizeof(raw), &a, &out, &out_len), MBX_ECORRUPT);
  mbx_arena_reset(&a);
}

/* Through the store: a compressible 4 KiB message and an incompressible one both
 * come back exactly, counted against quota at their raw size, and the compressed
 * one really takes less room. */
static void test_store_body_deliver_get_exact(void **state)
{
  (void)state;
  struct fx *f = fx_new();
  uint64_t mb = fx_mailbox(f, "carol@example.com");
  static uint8_t text[4096], rnd[4096];
  const char *hdr = "From: a@example.org\r\nTo: carol@example.com\r\nSubject: body\r\n\r\n";
  size_t hl = strlen(hdr);
  memcpy(text, hdr, hl);
  make_text(text + hl, sizeof(text) - hl);
  memcpy(rnd, hdr, hl);
  make_random(rnd + hl, sizeof(rnd) - hl);

  Mbx__Item *t = NULL, *r = NULL;
  fx_begin(f);
  assert_int_equal(mbx_store_deliver(f->w, "carol@example.com", text, sizeof(text), &f->a, &t), 0);
  assert_int_equal(mbx_store_deliver(f->w, "carol@example.com", rnd, sizeof(rnd), &f->a, &r), 0);
  fx_commit(f);
  uint64_t tid = t->id, rid = r->id;

  struct mbx_rtxn *rt;
  assert_int_equal(mbx_store_rtxn_begin(f->s, &rt), 0);
  const uint8_t *body;
  size_t len;
  Mbx__Item *it;
  assert_int_equal(mbx_store_get_item(rt, mb, tid, &f->a, &it, &body, &len), 0);
  assert_int_equal(len, sizeof(text));
  assert_memory_equal(body, text, len);
  assert_int_equal(it->size, sizeof(text));
  assert_int_equal(mbx_store_get_item(rt, mb, rid, &f->a, &it, &body, &len), 0);
  assert_int_equal(len, sizeof(rnd));
  assert_memory_equal(body, rnd, len);
  mbx_store_rtxn_end(&rt);

  Mbx__Mailbox *m = fx_get_mailbox(f, mb);
  assert_int_equal(m->used_bytes, sizeof(text) + sizeof(rnd));
  fx_free(f);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_store_body_codec_roundtrip),
      cmocka_unit_test(test_store_body_codec_rejects_damage),
      cmocka_unit_test(test_store_body_deliver_get_exact),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

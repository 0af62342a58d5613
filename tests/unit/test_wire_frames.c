/* test_wire_frames.c — the frame reader (mbx_wire_*): frames split at every byte,
 * many frames per feed, empty frames, oversized prefixes, and a packed Request
 * that comes back out equal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "client.pb-c.h"
#include "frame.h"
#include "mbx_error.h"

/* Appends one frame with payload bytes (i * 7 + seed). */
static void put_frame(struct mbx_buf *out, size_t len, uint8_t seed)
{
  uint8_t prefix[4];
  mbx_put_be32(prefix, (uint32_t)len);
  assert_int_equal(mbx_buf_append(out, prefix, 4), 0);
  assert_int_equal(mbx_buf_reserve(out, len), 0);
  for (size_t i = 0; i < len; i++)
    out->data[out->len + i] = (uint8_t)(i * 7 + seed);
  out->len += len;
}

static void check_payload(const uint8_t *p, size_t len, uint8_t seed)
{
  for (size_t i = 0; i < len; i++)
    assert_int_equal(p[i], (uint8_t)(i * 7 + seed));
}

static const size_t sizes[] = {0, 1, 3, 4, 5, 300, 0, 4096, 17};
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))

/* Feeds the stream in two pieces split at `cut`, draining after each feed, and
 * checks every frame comes out whole, in order, exactly once. */
static void feed_split(const struct mbx_buf *stream, size_t cut)
{
  struct mbx_wire_reader r;
  mbx_wire_reader_init(&r, 1 << 20);
  size_t seen = 0;
  size_t pieces[2][2] = {{0, cut}, {cut, stream->len - cut}};
  for (int k = 0; k < 2; k++) {
    assert_int_equal(mbx_wire_feed(&r, stream->data + pieces[k][0], pieces[k][1]), 0);
    const uint8_t *f;
    size_t n;
    int rc;
    while ((rc = mbx_wire_next(&r, &f, &n)) == 1) {
      assert_true(seen < NSIZES);
      assert_int_equal(n, sizes[seen]);
      check_payload(f, n, (uint8_t)seen);
      seen++;
    }
    assert_int_equal(rc, 0);
  }
  assert_int_equal(seen, NSIZES);
  mbx_wire_reader_free(&r);
}

static void test_wire_split_every_byte(void **state)
{
  struct mbx_buf stream;
  mbx_buf_init(&stream, 0);
  for (size_t i = 0; i < NSIZES; i++)
    put_frame(&stream, sizes[i], (uint8_t)i);
  for (size_t cut = 0; cut <= stream.len; cut++)
    feed_split(&stream, cut);
  mbx_buf_free(&stream);
}

/* One byte per feed: the worst case for a reader that might lose partial prefixes. */
static void test_wire_byte_at_a_time(void **state)
{
  struct mbx_buf stream;
  mbx_buf_init(&stream, 0);
  for (size_t i = 0; i < NSIZES; i++)
    put_frame(&stream, sizes[i], (uint8_t)i);
  struct mbx_wire_reader r;
  mbx_wire_reader_init(&r, 1 << 20);
  size_t seen = 0;
  for (size_t i = 0; i < stream.len; i++) {
    assert_int_equal(mbx_wire_feed(&r, stream.data + i, 1), 0);
    const uint8_t *f;
    size_t n;
    while (mbx_wire_next(&r, &f, &n) == 1) {
      assert_int_equal(n, sizes[seen]);
      check_payload(f, n, (uint8_t)seen);
      seen++;
    }
  }
  assert_int_equal(seen, NSIZES);
  mbx_wire_reader_free(&r);
  mbx_buf_free(&stream);
}

/* Thousands of small frames in one feed come out without the reader growing past
 * the feed (no per-frame copies) and in order. */
static void test_wire_many_frames_one_feed(void **state)
{
  struct mbx_buf stream;
  mbx_buf_init(&stream, 0);
  for (size_t i = 0; i < 5000; i++)
    put_frame(&stream, i % 40, (uint8_t)i);
  struct mbx_wire_reader r;
  mbx_wire_reader_init(&r, 1024);
  assert_int_equal(mbx_wire_feed(&r, stream.data, stream.len), 0);
  const uint8_t *f;
  size_t n, seen = 0;
  while (mbx_wire_next(&r, &f, &n) == 1) {
    assert_int_equal(n, seen % 40);
    check_payload(f, n, (uint8_t)seen);
    seen++;
  }
  assert_int_equal(seen, 5000);
  assert_int_equal(r.buf.len - r.consumed, 0);
  mbx_wire_reader_free(&r);
  mbx_buf_free(&stream);
}

static void test_wire_zero_length_frame(void **state)
{
  struct mbx_wire_reader r;
  mbx_wire_reader_init(&r, 16);
  const uint8_t zero[4] = {0, 0, 0, 0};
  assert_int_equal(mbx_wire_feed(&r, zero, 3), 0);
  const uint8_t *f = NULL;
  size_t n = 99;
  assert_int_equal(mbx_wire_next(&r, &f, &n), 0);
  assert_int_equal(mbx_wire_feed(&r, zero + 3, 1), 0);
  assert_int_equal(mbx_wire_next(&r, &f, &n), 1);
  assert_int_equal(n, 0);
  assert_int_equal(mbx_wire_next(&r, &f, &n), 0);
  mbx_wire_reader_free(&r);
}

/* An oversized announcement is refused from the prefix alone, before any of the
 * payload is buffered, and stays refused. */
static void test_wire_oversized_prefix(void **state)
{
  struct mbx_wire_reader r;
  mbx_wire_reader_init(&r, 1000);
  struct mbx_buf stream;
  mbx_buf_init(&stream, 0);
  put_frame(&stream, 1000, 1); /* exactly at the limit: fine */
  uint8_t big[4];
  mbx_put_be32(big, 1001);
  assert_int_equal(mbx_buf_append(&stream, big, 4), 0);
  assert_int_equal(mbx_wire_feed(&r, stream.data, stream.len), 0);
  const uint8_t *f;
  size_t n;
  assert_int_equal(mbx_wire_next(&r, &f, &n), 1);
  assert_int_equal(n, 1000);
  assert_int_equal(mbx_wire_next(&r, &f, &n), MBX_EFRAME);
  assert_int_equal(mbx_wire_next(&r, &f, &n), MBX_EFRAME);
  mbx_wire_reader_free(&r);

  /* 4 GiB - 1 announced: refused, and nothing like that much memory reserved. */
  mbx_wire_reader_init(&r, 35u << 20);
  uint8_t huge[4] = {0xff, 0xff, 0xff, 0xff};
  assert_int_equal(mbx_wire_feed(&r, huge, 4), 0);
  assert_int_equal(mbx_wire_next(&r, &f, &n), MBX_EFRAME);
  assert_true(r.buf.cap < (1u << 20));
  mbx_wire_reader_free(&r);
  mbx_buf_free(&stream);
}

static void test_wire_pack_request_round_trip(void **state)
{
  Mbx__Request req = MBX__REQUEST__INIT;
  Mbx__HelloReq hello = MBX__HELLO_REQ__INIT;
  req.id = 4242;
  req.has_epoch = 1;
  req.epoch = 7;
  hello.has_protocol_version = 1;
  hello.protocol_version = 1;
  hello.client = "test_wire";
  req.body_case = MBX__REQUEST__BODY_HELLO;
  req.hello = &hello;

  struct mbx_buf out;
  mbx_buf_init(&out, 0);
  assert_int_equal(mbx_wire_pack(&req.base, &out), 0);
  assert_int_equal(mbx_wire_pack(&req.base, &out), 0); /* two frames back to back */

  struct mbx_wire_reader r;
  mbx_wire_reader_init(&r, 4096);
  assert_int_equal(mbx_wire_feed(&r, out.data, out.len), 0);
  for (int i = 0; i < 2; i++) {
    const uint8_t *f;
    size_t n;
    assert_int_equal(mbx_wire_next(&r, &f, &n), 1);
    Mbx__Request *got = mbx__request__unpack(NULL, n, f);
    assert_non_null(got);
    assert_int_equal(got->id, 4242);
    assert_int_equal(got->epoch, 7);
    assert_int_equal(got->body_case, MBX__REQUEST__BODY_HELLO);
    assert_string_equal(got->hello->client, "test_wire");
    assert_int_equal(got->hello->protocol_version, 1);
    mbx__request__free_unpacked(got, NULL);
  }
  const uint8_t *f;
  size_t n;
  assert_int_equal(mbx_wire_next(&r, &f, &n), 0);

  /* A bounded output buffer refuses a message that doesn't fit, leaving it as it was. */
  struct mbx_buf small;
  mbx_buf_init(&small, 8);
  assert_int_equal(mbx_wire_pack(&req.base, &small), MBX_ELIMIT);
  assert_int_equal(small.len, 0);
  mbx_buf_free(&small);
  mbx_wire_reader_free(&r);
  mbx_buf_free(&out);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_wire_split_every_byte),
      cmocka_unit_test(test_wire_byte_at_a_time),
      cmocka_unit_test(test_wire_many_frames_one_feed),
      cmocka_unit_test(test_wire_zero_length_frame),
      cmocka_unit_test(test_wire_oversized_prefix),
      cmocka_unit_test(test_wire_pack_request_round_trip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_rfc5322_parse.c — header summary: folded headers, missing headers,
 * garbage/binary input, a huge header section, dates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "mbx_error.h"
#include "rfc5322.h"

static Mbx__MessageSummary *parse(struct mbx_arena *a, const void *m, size_t n)
{
  Mbx__MessageSummary *s = mbx_arena_pbnew(a, &mbx__message_summary__descriptor);
  assert_int_equal(mbx_rfc5322_parse(m, n, a, s), 0);
  assert_int_equal(s->size, n);
  return s;
}

static void test_folded(void **state)
{
  (void)state;
  struct mbx_arena a;
  mbx_arena_init(&a, 0);
  const char *m = "Received: from x\r\n\tby y\r\n"
                  "subject: A long\r\n   folded subject\r\n"
                  "From: \"Doe, Jane\" <jane@example.org>\r\n"
                  "To: a@example.org, \"B, b\" <b@example.org>,\r\n c@example.org\r\n"
                  "Cc: d@example.org\r\n"
                  "Date: Tue, 1 Jul 2003 10:52:37 +0200\r\n"
                  "Message-ID: <abc@example.org>\r\n"
                  "Subject: second subject ignored\r\n"
                  "\r\n"
                  "To: not-a-header@body\r\n";
  Mbx__MessageSummary *s = parse(&a, m, strlen(m));
  assert_string_equal(s->subject, "A long   folded subject");
  assert_string_equal(s->from, "\"Doe, Jane\" <jane@example.org>");
  assert_int_equal(s->n_to, 3);
  assert_string_equal(s->to[0], "a@example.org");
  assert_string_equal(s->to[1], "\"B, b\" <b@example.org>");
  assert_string_equal(s->to[2], "c@example.org");
  assert_int_equal(s->n_cc, 1);
  assert_string_equal(s->message_id, "<abc@example.org>");
  assert_string_equal(s->date, "Tue, 1 Jul 2003 10:52:37 +0200");
  assert_true(s->has_date_us);
  assert_int_equal(s->date_us, 1057049557LL * 1000000); /* 08:52:37 UTC */
  /* LF-only line ends work too. */
  const char *lf = "Subject: hi\n there\nFrom: x@y\n\nbody";
  s = parse(&a, lf, strlen(lf));
  assert_string_equal(s->subject, "hi there");
  assert_string_equal(s->from, "x@y");
  mbx_arena_reset(&a);
}

static void test_missing_and_garbage(void **state)
{
  (void)state;
  struct mbx_arena a;
  mbx_arena_init(&a, 0);
  /* No headers at all: delivers with an empty summary. */
  const char *nohdr = "just a body line\r\n";
  Mbx__MessageSummary *s = parse(&a, nohdr, strlen(nohdr));
  assert_null(s->subject);
  assert_null(s->from);
  assert_int_equal(s->n_to, 0);
  s = parse(&a, "", 0);
  assert_null(s->subject);
  /* Header without a line end at the very end of input. */
  s = parse(&a, "Subject: cut", 12);
  assert_string_equal(s->subject, "cut");
  s = parse(&a, "Subject:", 8);
  assert_string_equal(s->subject, "");
  /* Binary garbage in values becomes valid UTF-8 without control characters. */
  const uint8_t bin[] = "Subject: a\x01\xff\xc3\xa9\x00z\r\nDate: garbage\r\n\r\n";
  s = parse(&a, bin, sizeof(bin) - 1);
  assert_string_equal(s->subject, "a ?\xc3\xa9 z");
  assert_string_equal(s->date, "garbage");
  assert_false(s->has_date_us);
  /* Random bytes: never crash (ASan checks the bounds). */
  srand(7);
  for (int round = 0; round < 2000; round++) {
    size_t n = (size_t)(rand() % 300);
    uint8_t *buf = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++)
      buf[i] = (uint8_t)(round % 3 ? rand() : "Subject:\r\n \t,<>\"()"[rand() % 18]);
    parse(&a, buf, n);
    free(buf);
    if (round % 100 == 0)
      mbx_arena_reset(&a);
  }
  mbx_arena_reset(&a);
}

static void test_huge_header(void **state)
{
  (void)state;
  struct mbx_arena a;
  mbx_arena_init(&a, 0);
  /* 1 MiB of one folded header: capped, no blow-up, other headers before it kept. */
  size_t n = 1u << 20;
  char *m = malloc(n);
  const char *pre = "From: x@example.org\r\nSubject: ";
  memcpy(m, pre, strlen(pre));
  for (size_t i = strlen(pre); i < n; i++)
    m[i] = (i % 80 == 0) ? '\n' : (i % 80 == 1 ? ' ' : 'a');
  Mbx__MessageSummary *s = parse(&a, m, n);
  assert_string_equal(s->from, "x@example.org");
  assert_non_null(s->subject);
  assert_true(strlen(s->subject) <= MBX_RFC5322_VALUE_MAX_BYTES);
  /* A header past the 256 KiB cap is not seen. */
  memset(m, 'X', n);
  memcpy(m, "X-Pad: ", 7);
  m[MBX_RFC5322_HEADER_MAX_BYTES + 10] = '\n';
  memcpy(m + MBX_RFC5322_HEADER_MAX_BYTES + 11, "Subject: late\n\n", 15);
  s = parse(&a, m, n);
  assert_null(s->subject);
  free(m);
  mbx_arena_reset(&a);
}

static void test_dates(void **state)
{
  (void)state;
  int64_t us;
  assert_int_equal(mbx_rfc5322_parse_date("1 Jan 1970 00:00:00 GMT", &us), 0);
  assert_int_equal(us, 0);
  assert_int_equal(mbx_rfc5322_parse_date("Thu, 01 Jan 1970 01:00 +0100", &us), 0);
  assert_int_equal(us, 0);
  assert_int_equal(mbx_rfc5322_parse_date("Fri, 21 Nov 97 09:55:06 -0600 (CST)", &us), 0);
  assert_int_equal(us, 880127706LL * 1000000);
  assert_int_equal(mbx_rfc5322_parse_date("31 Dec 1999 23:59:59 EST", &us), 0);
  assert_int_equal(us, 946702799LL * 1000000);
  assert_int_equal(mbx_rfc5322_parse_date("not a date", &us), MBX_EINVAL);
  assert_int_equal(mbx_rfc5322_parse_date("32 Jan 2000 00:00 +0000", &us), MBX_EINVAL);
  assert_int_equal(mbx_rfc5322_parse_date("1 Foo 2000 00:00 +0000", &us), MBX_EINVAL);
  assert_int_equal(mbx_rfc5322_parse_date("", &us), MBX_EINVAL);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_folded),
      cmocka_unit_test(test_missing_and_garbage),
      cmocka_unit_test(test_huge_header),
      cmocka_unit_test(test_dates),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

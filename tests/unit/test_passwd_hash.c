/* test_passwd_hash.c — scrypt password hashes: verify the right password, refuse a
 * wrong one, refuse malformed hashes without crashing, salts differ. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "mbx_error.h"
#include "passwd.h"

static void test_hash_verify(void **state)
{
  (void)state;
  char h1[128], h2[128];
  assert_int_equal(mbx_passwd_hash("correct horse", h1, sizeof(h1)), 0);
  assert_int_equal(strncmp(h1, "scrypt$15$8$1$", 14), 0);
  assert_int_equal(mbx_passwd_verify("correct horse", h1), 0);
  assert_int_equal(mbx_passwd_verify("correct hors", h1), MBX_EAUTH);
  assert_int_equal(mbx_passwd_verify("", h1), MBX_EAUTH);
  /* A fresh salt each time: same password, different hash, both verify. */
  assert_int_equal(mbx_passwd_hash("correct horse", h2, sizeof(h2)), 0);
  assert_string_not_equal(h1, h2);
  assert_int_equal(mbx_passwd_verify("correct horse", h2), 0);
}

static void test_bad_input(void **state)
{
  (void)state;
  char h[128], big[2000];
  assert_int_equal(mbx_passwd_hash("", h, sizeof(h)), MBX_EINVAL);
  memset(big, 'x', sizeof(big) - 1);
  big[sizeof(big) - 1] = 0;
  assert_int_equal(mbx_passwd_hash(big, h, sizeof(h)), MBX_EINVAL);
  assert_int_equal(mbx_passwd_hash("pw", h, 64), MBX_EINVAL);
  const char *bad[] = {
      "",
      "scrypt",
      "scrypt$",
      "bcrypt$15$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAA",
      "scrypt$15$8$1$$",
      "scrypt$99$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
      "scrypt$15$8$1$AAAAAAAAAAAAAAAAAAAAAA==$short",
      "scrypt$15$8$1$!!!!$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
      "scrypt$-1$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
      "scrypt$15$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=extra",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    assert_int_equal(mbx_passwd_verify("pw", bad[i]), MBX_EINVAL);
  assert_int_equal(mbx_passwd_verify("pw", NULL), MBX_EINVAL);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hash_verify),
      cmocka_unit_test(test_bad_input),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

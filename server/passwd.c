/* passwd.c — scrypt password hashes ("scrypt$15$8$1$salt$hash", base64) with
 * OpenSSL 3. Verification re-derives with the parameters stored in the hash, within
 * bounds, so a hostile hash string cannot make us burn unbounded memory or time. */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mbx_error.h"
#include "passwd.h"

#define PASSWD_LOG2N      15
#define PASSWD_R          8
#define PASSWD_P          1
#define PASSWD_SALT_BYTES 16
#define PASSWD_HASH_BYTES 32
#define PASSWD_MAX_BYTES  1024
#define PASSWD_MAXMEM     (256ull * 1024 * 1024)

static int passwd_derive(const char *password, const uint8_t *salt, size_t salt_len, unsigned log2n,
                         unsigned r, unsigned p, uint8_t *out, size_t out_len)
{
  if (!EVP_PBE_scrypt(password, strlen(password), salt, salt_len, (uint64_t)1 << log2n, r, p,
                      PASSWD_MAXMEM, out, out_len))
    return MBX_EIO;
  return 0;
}

int mbx_passwd_hash(const char *password, char *out, unsigned out_size)
{
  if (!password || !*password || strlen(password) > PASSWD_MAX_BYTES || out_size < 128)
    return MBX_EINVAL;
  uint8_t salt[PASSWD_SALT_BYTES], hash[PASSWD_HASH_BYTES];
  if (RAND_bytes(salt, sizeof(salt)) != 1)
    return MBX_EIO;
  int rc = passwd_derive(password, salt, sizeof(salt), PASSWD_LOG2N, PASSWD_R, PASSWD_P, hash,
                         sizeof(hash));
  if (rc < 0)
    return rc;
  char salt64[4 * ((PASSWD_SALT_BYTES + 2) / 3) + 1], hash64[4 * ((PASSWD_HASH_BYTES + 2) / 3) + 1];
  EVP_EncodeBlock((unsigned char *)salt64, salt, sizeof(salt));
  EVP_EncodeBlock((unsigned char *)hash64, hash, sizeof(hash));
  OPENSSL_cleanse(hash, sizeof(hash));
  int n = snprintf(out, out_size, "scrypt$%d$%d$%d$%s$%s", PASSWD_LOG2N, PASSWD_R, PASSWD_P, salt64,
                   hash64);
  return n > 0 && (unsigned)n < out_size ? 0 : MBX_EINVAL;
}

/* Decodes standard base64 of at most max bytes; EVP_DecodeBlock counts padding as
 * data, so subtract it. Returns the length or -1. */
static int passwd_b64(const char *s, size_t n, uint8_t *out, size_t max)
{
  if (n == 0 || n % 4 || n / 4 * 3 > max + 2)
    return -1;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
          c == '/' || (c == '=' && i >= n - 2)))
      return -1;
  }
  uint8_t tmp[(PASSWD_HASH_BYTES + 4) / 3 * 3 + 3];
  if (n / 4 * 3 > sizeof(tmp))
    return -1;
  int len = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)n);
  if (len < 0)
    return -1;
  if (s[n - 1] == '=')
    len--;
  if (s[n - 2] == '=')
    len--;
  if (len <= 0 || (size_t)len > max)
    return -1;
  memcpy(out, tmp, (size_t)len);
  return len;
}

static int passwd_uint(const char **p, unsigned lo, unsigned hi, unsigned *v_r)
{
  char *end;
  unsigned long v = strtoul(*p, &end, 10);
  if (end == *p || *end != '$' || v < lo || v > hi || **p < '0' || **p > '9')
    return -1;
  *v_r = (unsigned)v;
  *p = end + 1;
  return 0;
}

int mbx_passwd_verify(const char *password, const char *hash)
{
  if (!password || !hash || strlen(hash) > 256)
    return MBX_EINVAL;
  if (strncmp(hash, "scrypt$", 7) != 0)
    return MBX_EINVAL;
  const char *p = hash + 7;
  unsigned log2n, r, par;
  /* Bounds keep memory (128·r·N) and time sane whatever the stored string says. */
  if (passwd_uint(&p, 10, 20, &log2n) < 0 || passwd_uint(&p, 1, 32, &r) < 0 ||
      passwd_uint(&p, 1, 16, &par) < 0)
    return MBX_EINVAL;
  if (((uint64_t)128 * r << log2n) > PASSWD_MAXMEM / 2)
    return MBX_EINVAL;
  const char *dollar = strchr(p, '$');
  if (!dollar)
    return MBX_EINVAL;
  uint8_t salt[PASSWD_HASH_BYTES], want[PASSWD_HASH_BYTES], got[PASSWD_HASH_BYTES];
  int salt_len = passwd_b64(p, (size_t)(dollar - p), salt, sizeof(salt));
  int hash_len = passwd_b64(dollar + 1, strlen(dollar + 1), want, sizeof(want));
  if (salt_len < 8 || hash_len != PASSWD_HASH_BYTES)
    return MBX_EINVAL;
  if (strlen(password) > PASSWD_MAX_BYTES)
    return MBX_EAUTH;
  int rc = passwd_derive(password, salt, (size_t)salt_len, log2n, r, par, got, sizeof(got));
  if (rc < 0)
    return rc;
  rc = CRYPTO_memcmp(got, want, sizeof(got)) == 0 ? 0 : MBX_EAUTH;
  OPENSSL_cleanse(got, sizeof(got));
  return rc;
}

/* util.c — mbx CLI helpers that parse what people type: base64url sync tokens,
 * ISO 8601 times, size suffixes, flag names, comma lists. Pure and unit-tested. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cli.h"

/* ======================================================================== */
/* base64url                                                                */
/* ======================================================================== */

static const char b64u[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int mbxcli_b64url_encode(const uint8_t *d, size_t len, struct mbx_buf *out)
{
  int rc = mbx_buf_reserve(out, (len + 2) / 3 * 4 + 1);
  if (rc < 0)
    return rc;
  char *o = (char *)out->data + out->len;
  size_t i = 0, n = 0;
  for (; i + 2 < len; i += 3) {
    uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 | d[i + 2];
    o[n++] = b64u[v >> 18 & 63];
    o[n++] = b64u[v >> 12 & 63];
    o[n++] = b64u[v >> 6 & 63];
    o[n++] = b64u[v & 63];
  }
  if (len - i == 1) {
    uint32_t v = (uint32_t)d[i] << 16;
    o[n++] = b64u[v >> 18 & 63];
    o[n++] = b64u[v >> 12 & 63];
  } else if (len - i == 2) {
    uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8;
    o[n++] = b64u[v >> 18 & 63];
    o[n++] = b64u[v >> 12 & 63];
    o[n++] = b64u[v >> 6 & 63];
  }
  o[n] = 0;
  out->len += n;
  return 0;
}

static int b64u_val(char c)
{
  const char *p = c ? strchr(b64u, c) : NULL;
  return p ? (int)(p - b64u) : -1;
}

int mbxcli_b64url_decode(const char *s, uint8_t **out_r, size_t *len_r)
{
  size_t n = strlen(s);
  while (n > 0 && s[n - 1] == '=')
    n--;
  if (n % 4 == 1)
    return MBX_EINVAL;
  uint8_t *o = malloc(n / 4 * 3 + 3);
  if (!o)
    return MBX_ENOMEM;
  size_t olen = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    int v = b64u_val(s[i]);
    if (v < 0) {
      free(o);
      return MBX_EINVAL;
    }
    acc = acc << 6 | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      o[olen++] = (uint8_t)(acc >> bits);
    }
  }
  /* leftover bits must be zero, so that every token has one spelling */
  if (bits && (acc & ((1u << bits) - 1))) {
    free(o);
    return MBX_EINVAL;
  }
  *out_r = o;
  *len_r = olen;
  return 0;
}

/* ======================================================================== */
/* numbers, sizes, times                                                    */
/* ======================================================================== */

int mbxcli_parse_u64(const char *s, uint64_t max, uint64_t *v_r)
{
  if (!s || !isdigit((unsigned char)*s))
    return MBX_EINVAL;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (*end)
    return MBX_EINVAL;
  if (errno == ERANGE || v > max)
    return MBX_ELIMIT;
  *v_r = v;
  return 0;
}

int mbxcli_parse_size(const char *s, uint64_t *bytes_r)
{
  if (!s || !isdigit((unsigned char)*s))
    return MBX_EINVAL;
  uint64_t whole = 0, frac = 0, frac_div = 1;
  const char *p = s;
  for (; isdigit((unsigned char)*p); p++) {
    if (whole > (UINT64_MAX - 9) / 10)
      return MBX_ELIMIT;
    whole = whole * 10 + (uint64_t)(*p - '0');
  }
  if (*p == '.') {
    p++;
    if (!isdigit((unsigned char)*p))
      return MBX_EINVAL;
    for (; isdigit((unsigned char)*p); p++) {
      if (frac_div < 1000000) { /* more precision than that is noise */
        frac = frac * 10 + (uint64_t)(*p - '0');
        frac_div *= 10;
      }
    }
  }
  unsigned shift = 0;
  switch (toupper((unsigned char)*p)) {
  case 0: break;
  case 'B': if (p[1]) return MBX_EINVAL; p++; break;
  case 'K': shift = 10; p++; break;
  case 'M': shift = 20; p++; break;
  case 'G': shift = 30; p++; break;
  case 'T': shift = 40; p++; break;
  default: return MBX_EINVAL;
  }
  if (shift) {
    if (strcasecmp(p, "") != 0 && strcasecmp(p, "B") != 0 && strcasecmp(p, "iB") != 0)
      return MBX_EINVAL;
  } else if (*p) {
    return MBX_EINVAL;
  }
  if (frac && !shift)
    return MBX_EINVAL; /* a fraction of a byte */
  if (whole > (UINT64_MAX >> shift))
    return MBX_ELIMIT;
  uint64_t v = whole << shift;
  uint64_t f = (frac << shift) / frac_div; /* frac < 1e6, shift ≤ 40: no overflow */
  if (v > UINT64_MAX - f)
    return MBX_ELIMIT;
  *bytes_r = v + f;
  return 0;
}

static int digits(const char **p, int n, int *v_r)
{
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (!isdigit((unsigned char)(*p)[i]))
      return MBX_EINVAL;
    v = v * 10 + ((*p)[i] - '0');
  }
  *p += n;
  *v_r = v;
  return 0;
}

int mbxcli_parse_iso8601(const char *s, int64_t *us_r)
{
  static const int mdays[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
  int y, mo, d, h = 0, mi = 0, sec = 0, frac_us = 0;
  const char *p = s;
  if (!s || digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
      digits(&p, 2, &d))
    return MBX_EINVAL;
  if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1])
    return MBX_EINVAL;
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (mo == 2 && d == 29 && !leap)
    return MBX_EINVAL;
  long off_s = 0;
  if (*p == 'T' || *p == 't' || *p == ' ') {
    p++;
    if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi))
      return MBX_EINVAL;
    if (*p == ':') {
      p++;
      if (digits(&p, 2, &sec))
        return MBX_EINVAL;
      if (*p == '.' || *p == ',') {
        p++;
        if (!isdigit((unsigned char)*p))
          return MBX_EINVAL;
        int scale = 100000;
        for (; isdigit((unsigned char)*p); p++, scale /= 10)
          frac_us += scale ? (*p - '0') * scale : 0;
      }
    }
    if (h > 23 || mi > 59 || sec > 60)
      return MBX_EINVAL;
    if (*p == 'Z' || *p == 'z') {
      p++;
    } else if (*p == '+' || *p == '-') {
      int sign = *p++ == '-' ? -1 : 1, oh, om = 0;
      if (digits(&p, 2, &oh))
        return MBX_EINVAL;
      if (*p == ':')
        p++;
      if (*p && digits(&p, 2, &om))
        return MBX_EINVAL;
      if (oh > 18 || om > 59)
        return MBX_EINVAL;
      off_s = sign * (oh * 3600L + om * 60L);
    }
  }
  if (*p)
    return MBX_EINVAL;
  struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
                   .tm_hour = h, .tm_min = mi, .tm_sec = sec };
  time_t t = timegm(&tm);
  *us_r = ((int64_t)t - off_s) * 1000000 + frac_us;
  return 0;
}

void mbxcli_format_time(int64_t us, char *buf, size_t len)
{
  time_t t = (time_t)(us >= 0 ? us / 1000000 : (us - 999999) / 1000000);
  struct tm tm;
  if (!gmtime_r(&t, &tm) || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
    snprintf(buf, len, "?");
}

/* ======================================================================== */
/* flags, lists, enums                                                      */
/* ======================================================================== */

static const struct { const char *name; uint32_t bit; char col; } flag_names[] = {
  { "seen", MBX__ITEM_FLAG__FLAG_SEEN, 'S' },
  { "flagged", MBX__ITEM_FLAG__FLAG_FLAGGED, 'F' },
  { "answered", MBX__ITEM_FLAG__FLAG_ANSWERED, 'A' },
  { "draft", MBX__ITEM_FLAG__FLAG_DRAFT, 'D' },
};

int mbxcli_flag_bit(const char *name, size_t len, uint32_t *bit_r)
{
  for (size_t i = 0; i < sizeof(flag_names) / sizeof(flag_names[0]); i++) {
    if (strlen(flag_names[i].name) == len && strncasecmp(name, flag_names[i].name, len) == 0) {
      *bit_r = flag_names[i].bit;
      return 0;
    }
  }
  return MBX_EINVAL;
}

int mbxcli_parse_flag_list(const char *csv, uint32_t *bits_r)
{
  uint32_t bits = 0;
  for (const char *p = csv; *p; ) {
    size_t len = strcspn(p, ",");
    uint32_t b;
    if (len && mbxcli_flag_bit(p, len, &b) < 0)
      return MBX_EINVAL;
    if (len)
      bits |= b;
    p += len;
    if (*p == ',')
      p++;
  }
  *bits_r = bits;
  return 0;
}

int mbxcli_parse_flag_change(const char *arg, uint32_t *add_r, uint32_t *remove_r)
{
  uint32_t b;
  if ((arg[0] != '+' && arg[0] != '-') || mbxcli_flag_bit(arg + 1, strlen(arg + 1), &b) < 0)
    return MBX_EINVAL;
  if (arg[0] == '+') {
    *add_r |= b;
    *remove_r &= ~b;
  } else {
    *remove_r |= b;
    *add_r &= ~b;
  }
  return 0;
}

void mbxcli_flags_column(uint32_t flags, char *buf)
{
  for (size_t i = 0; i < 4; i++)
    buf[i] = flags & flag_names[i].bit ? flag_names[i].col : '-';
  buf[4] = 0;
}

void mbxcli_strv_free(char ***v)
{
  if (!v || !*v)
    return;
  for (char **p = *v; *p; p++)
    free(*p);
  free(*v);
  *v = NULL;
}

int mbxcli_split_csv(const char *csv, char ***v_r, size_t *n_r)
{
  size_t cap = 1;
  for (const char *p = csv; *p; p++)
    cap += *p == ',';
  char **v = calloc(cap + 1, sizeof(*v));
  if (!v)
    return MBX_ENOMEM;
  size_t n = 0;
  for (const char *p = csv; *p; ) {
    size_t len = strcspn(p, ",");
    if (len) {
      v[n] = strndup(p, len);
      if (!v[n]) {
        mbxcli_strv_free(&v);
        return MBX_ENOMEM;
      }
      n++;
    }
    p += len;
    if (*p == ',')
      p++;
  }
  *v_r = v;
  *n_r = n;
  return 0;
}

int mbxcli_parse_folder_class(const char *s, Mbx__FolderClass *c_r)
{
  static const char *names[] = { "mail", "calendar", "contacts", "tasks", "notes" };
  for (int i = 0; i < 5; i++)
    if (strcasecmp(s, names[i]) == 0) {
      *c_r = (Mbx__FolderClass)i;
      return 0;
    }
  return MBX_EINVAL;
}

int mbxcli_parse_task_status(const char *s, Mbx__TaskStatus *st_r)
{
  static const char *names[] = { "not-started", "in-progress", "completed", "waiting",
                                 "deferred" };
  for (int i = 0; i < 5; i++)
    if (strcasecmp(s, names[i]) == 0) {
      *st_r = (Mbx__TaskStatus)i;
      return 0;
    }
  return MBX_EINVAL;
}

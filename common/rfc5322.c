/* rfc5322.c — header summary parser: finds the header section (capped), unfolds
 * continuation lines, keeps the first Subject/From/To/Cc/Date/Message-ID, splits
 * address lists and parses the date. Never trusts the input's lengths or encoding. */
#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "mbx_error.h"
#include "rfc5322.h"

/* ---- helpers ------------------------------------------------------------------ */

/* Length of a valid UTF-8 sequence at p (≤ n bytes), 0 if invalid. */
static size_t rfc_utf8_len(const uint8_t *p, size_t n)
{
  uint8_t c = p[0];
  size_t need;
  uint32_t min;
  if (c < 0x80)
    return 1;
  if ((c & 0xe0) == 0xc0)
    need = 2, min = 0x80;
  else if ((c & 0xf0) == 0xe0)
    need = 3, min = 0x800;
  else if ((c & 0xf8) == 0xf0)
    need = 4, min = 0x10000;
  else
    return 0;
  if (n < need)
    return 0;
  uint32_t cp = c & (0x7f >> need);
  for (size_t i = 1; i < need; i++) {
    if ((p[i] & 0xc0) != 0x80)
      return 0;
    cp = cp << 6 | (p[i] & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return need;
}

/* Copies [p, p+n) into the arena, trimmed, control characters → ' ', invalid UTF-8 →
 * '?', capped at MBX_RFC5322_VALUE_MAX_BYTES (cut on a character boundary). */
static char *rfc_clean(struct mbx_arena *a, const uint8_t *p, size_t n)
{
  while (n && (*p == ' ' || *p == '\t'))
    p++, n--;
  while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
    n--;
  if (n > MBX_RFC5322_VALUE_MAX_BYTES)
    n = MBX_RFC5322_VALUE_MAX_BYTES;
  char *d = mbx_arena_alloc(a, n + 1);
  if (!d)
    return NULL;
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    size_t l = rfc_utf8_len(p + i, n - i);
    if (l == 0) {
      d[o++] = '?';
      i++;
    } else if (l == 1) {
      d[o++] = (p[i] < 0x20 || p[i] == 0x7f) ? ' ' : (char)p[i];
      i++;
    } else {
      memcpy(d + o, p + i, l);
      o += l;
      i += l;
    }
  }
  d[o] = '\0';
  return d;
}

/* ---- address lists -------------------------------------------------------------- */

/* Splits on commas outside quotes, <…> and (…); appends trimmed non-empty parts. */
static int rfc_split_addrs(struct mbx_arena *a, const char *v, char ***arr_r, size_t *n_r)
{
  size_t cap = 1;
  for (const char *c = v; *c; c++)
    cap += *c == ',';
  if (cap > MBX_RFC5322_ADDRS_MAX)
    cap = MBX_RFC5322_ADDRS_MAX;
  char **arr = mbx_arena_alloc(a, cap * sizeof(*arr));
  if (!arr)
    return MBX_ENOMEM;
  size_t n = 0;
  bool quoted = false;
  int angle = 0, paren = 0;
  const char *start = v;
  for (const char *c = v;; c++) {
    if (*c == '\\' && quoted && c[1]) {
      c++;
      continue;
    }
    if (*c == '"' && !paren)
      quoted = !quoted;
    else if (!quoted && *c == '(')
      paren++;
    else if (!quoted && *c == ')' && paren)
      paren--;
    else if (!quoted && !paren && *c == '<')
      angle = 1;
    else if (!quoted && !paren && *c == '>')
      angle = 0;
    if (*c == '\0' || (*c == ',' && !quoted && !angle && !paren)) {
      if (n < cap) {
        char *part = rfc_clean(a, (const uint8_t *)start, (size_t)(c - start));
        if (!part)
          return MBX_ENOMEM;
        if (*part)
          arr[n++] = part;
      }
      if (*c == '\0')
        break;
      start = c + 1;
    }
  }
  *arr_r = arr;
  *n_r = n;
  return 0;
}

/* ---- date ---------------------------------------------------------------------- */

static const char *rfc_skip_cfws(const char *p)
{
  for (;;) {
    while (*p == ' ' || *p == '\t' || *p == ',')
      p++;
    if (*p != '(')
      return p;
    int depth = 0;
    for (; *p; p++) {
      if (*p == '(')
        depth++;
      else if (*p == ')' && --depth == 0) {
        p++;
        break;
      }
    }
  }
}

static bool rfc_num(const char **p, int min_digits, int max_digits, int *v_r)
{
  int v = 0, d = 0;
  const char *s = *p;
  while (isdigit((unsigned char)*s) && d < max_digits)
    v = v * 10 + (*s++ - '0'), d++;
  if (d < min_digits || isdigit((unsigned char)*s))
    return false;
  *v_r = v;
  *p = s;
  return true;
}

int mbx_rfc5322_parse_date(const char *s, int64_t *us_r)
{
  static const char *months[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                 "jul", "aug", "sep", "oct", "nov", "dec"};
  const char *p = rfc_skip_cfws(s);
  if (isalpha((unsigned char)*p)) { /* optional day of week */
    while (isalpha((unsigned char)*p))
      p++;
    p = rfc_skip_cfws(p);
  }
  int day, year, hour, min, sec = 0, mon = -1;
  if (!rfc_num(&p, 1, 2, &day))
    return MBX_EINVAL;
  p = rfc_skip_cfws(p);
  for (int i = 0; i < 12; i++)
    if (strncasecmp(p, months[i], 3) == 0)
      mon = i;
  if (mon < 0)
    return MBX_EINVAL;
  while (isalpha((unsigned char)*p))
    p++;
  p = rfc_skip_cfws(p);
  if (!rfc_num(&p, 2, 4, &year))
    return MBX_EINVAL;
  if (year < 50)
    year += 2000;
  else if (year < 1000)
    year += 1900;
  p = rfc_skip_cfws(p);
  if (!rfc_num(&p, 1, 2, &hour) || *p++ != ':' || !rfc_num(&p, 2, 2, &min))
    return MBX_EINVAL;
  if (*p == ':') {
    p++;
    if (!rfc_num(&p, 2, 2, &sec))
      return MBX_EINVAL;
  }
  if (day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60 || year > 9999)
    return MBX_EINVAL;
  p = rfc_skip_cfws(p);
  int off_min = 0;
  if (*p == '+' || *p == '-') {
    int sign = *p == '-' ? -1 : 1, z;
    p++;
    if (!rfc_num(&p, 4, 4, &z) || z % 100 > 59)
      return MBX_EINVAL;
    off_min = sign * (z / 100 * 60 + z % 100);
  } else {
    static const struct {
      const char *n;
      int h;
    } zones[] = {{"UT", 0},   {"GMT", 0},  {"Z", 0},    {"EST", -5}, {"EDT", -4}, {"CST", -6},
                 {"CDT", -5}, {"MST", -7}, {"MDT", -6}, {"PST", -8}, {"PDT", -7}};
    for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++) {
      size_t l = strlen(zones[i].n);
      if (strncasecmp(p, zones[i].n, l) == 0 && !isalpha((unsigned char)p[l])) {
        off_min = zones[i].h * 60;
        break;
      }
    }
  }
  struct tm tm = {0};
  tm.tm_year = year - 1900;
  tm.tm_mon = mon;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = min;
  tm.tm_sec = sec == 60 ? 59 : sec;
  time_t t = timegm(&tm);
  if (t == (time_t)-1)
    return MBX_EINVAL;
  *us_r = ((int64_t)t - (int64_t)off_min * 60) * 1000000;
  return 0;
}

/* ---- header section -------------------------------------------------------------- */

enum { RFC_SUBJECT, RFC_FROM, RFC_TO, RFC_CC, RFC_DATE, RFC_MSGID, RFC_N };

static int rfc_field(const uint8_t *name, size_t n)
{
  static const char *names[RFC_N] = {"subject", "from", "to", "cc", "date", "message-id"};
  for (int i = 0; i < RFC_N; i++)
    if (strlen(names[i]) == n && strncasecmp((const char *)name, names[i], n) == 0)
      return i;
  return -1;
}

/* Unfolds [p, p+n): line breaks (CRLF or LF) before whitespace are removed. */
static char *rfc_unfold(struct mbx_arena *a, const uint8_t *p, size_t n)
{
  if (n > MBX_RFC5322_VALUE_MAX_BYTES * 2)
    n = MBX_RFC5322_VALUE_MAX_BYTES * 2;
  uint8_t *tmp = mbx_arena_alloc(a, n + 1);
  if (!tmp)
    return NULL;
  size_t o = 0;
  for (size_t i = 0; i < n; i++)
    if (p[i] != '\r' && p[i] != '\n')
      tmp[o++] = p[i];
  return rfc_clean(a, tmp, o);
}

int mbx_rfc5322_parse(const uint8_t *msg, size_t len, struct mbx_arena *a, Mbx__MessageSummary *sum)
{
  sum->size = len;
  sum->has_size = true;
  size_t end = len < MBX_RFC5322_HEADER_MAX_BYTES ? len : MBX_RFC5322_HEADER_MAX_BYTES;
  const uint8_t *val[RFC_N] = {0};
  size_t val_len[RFC_N] = {0};
  size_t i = 0;
  while (i < end) {
    /* A blank line ends the header section. */
    if (msg[i] == '\n' || (msg[i] == '\r' && i + 1 < end && msg[i + 1] == '\n'))
      break;
    size_t name_end = i;
    while (name_end < end && msg[name_end] > 32 && msg[name_end] < 127 && msg[name_end] != ':')
      name_end++;
    if (name_end == i || name_end >= end || msg[name_end] != ':')
      break; /* not a header line: the body starts here */
    /* The value runs to the end of the line and over continuation lines. */
    size_t v = name_end + 1, e = v;
    for (;;) {
      while (e < end && msg[e] != '\n')
        e++;
      if (e + 1 < end && (msg[e + 1] == ' ' || msg[e + 1] == '\t')) {
        e++;
        continue;
      }
      break;
    }
    int f = rfc_field(msg + i, name_end - i);
    if (f >= 0 && !val[f]) {
      val[f] = msg + v;
      val_len[f] = e - v;
    }
    i = e < end ? e + 1 : end;
  }
  char *s[RFC_N] = {0};
  for (int f = 0; f < RFC_N; f++) {
    if (!val[f])
      continue;
    if (!(s[f] = rfc_unfold(a, val[f], val_len[f])))
      return MBX_ENOMEM;
  }
  sum->subject = s[RFC_SUBJECT];
  sum->from = s[RFC_FROM];
  sum->date = s[RFC_DATE];
  sum->message_id = s[RFC_MSGID];
  if (s[RFC_TO] && rfc_split_addrs(a, s[RFC_TO], &sum->to, &sum->n_to) < 0)
    return MBX_ENOMEM;
  if (s[RFC_CC] && rfc_split_addrs(a, s[RFC_CC], &sum->cc, &sum->n_cc) < 0)
    return MBX_ENOMEM;
  int64_t us;
  if (s[RFC_DATE] && mbx_rfc5322_parse_date(s[RFC_DATE], &us) == 0) {
    sum->date_us = us;
    sum->has_date_us = true;
  }
  return 0;
}

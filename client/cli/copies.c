/* copies.c — the mbx CLI's pure helpers for database copies: the --copies list and
 * --lag durations it parses, and the copy status table, ages and seeding progress
 * line it prints. No I/O besides the FILE handed in, so the unit tests call them. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* ======================================================================== */
/* parsing                                                                  */
/* ======================================================================== */

/* Node names as mbxd accepts them (server/nodeconf.c): 1-63 of a-z, 0-9 and '-'. */
bool mbxcli_valid_node_name(const char *s, size_t len)
{
  if (len == 0 || len > 63)
    return false;
  for (size_t i = 0; i < len; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
      return false;
  return true;
}

int mbxcli_parse_lag(const char *s, uint32_t *lag_s_r)
{
  if (!s || *s < '0' || *s > '9')
    return MBX_EINVAL;
  uint64_t v = 0;
  const char *p = s;
  for (; *p >= '0' && *p <= '9'; p++) {
    v = v * 10 + (uint64_t)(*p - '0');
    if (v > MBXCLI_LAG_MAX_S)
      return MBX_ELIMIT;
  }
  uint64_t mult = 1;
  if (*p) {
    switch (*p) {
    case 's': mult = 1; break;
    case 'm': mult = 60; break;
    case 'h': mult = 3600; break;
    case 'd': mult = 86400; break;
    default: return MBX_EINVAL;
    }
    if (p[1])
      return MBX_EINVAL;
  }
  v *= mult;
  if (v > MBXCLI_LAG_MAX_S)
    return MBX_ELIMIT;
  *lag_s_r = (uint32_t)v;
  return 0;
}

void mbxcli_copies_free(Mbx__CopyEntry ***v, size_t n)
{
  if (!v || !*v)
    return;
  for (size_t i = 0; i < n; i++) {
    if ((*v)[i]) {
      free((*v)[i]->node);
      free((*v)[i]);
    }
  }
  free(*v);
  *v = NULL;
}

/* One "NODE[:PREF]" entry of len bytes into e. */
static int parse_copy_entry(const char *s, size_t len, Mbx__CopyEntry *e)
{
  const char *colon = memchr(s, ':', len);
  size_t nlen = colon ? (size_t)(colon - s) : len;
  if (!mbxcli_valid_node_name(s, nlen))
    return MBX_EINVAL;
  if (colon) {
    char num[8];
    size_t plen = len - nlen - 1;
    if (plen == 0 || plen >= sizeof(num))
      return MBX_EINVAL;
    memcpy(num, colon + 1, plen);
    num[plen] = 0;
    uint64_t pref;
    if (mbxcli_parse_u64(num, MBXCLI_COPIES_MAX, &pref) < 0 || pref == 0)
      return MBX_EINVAL;
    e->has_preference = 1;
    e->preference = (uint32_t)pref;
  }
  e->node = strndup(s, nlen);
  return e->node ? 0 : MBX_ENOMEM;
}

/* Preferences left out follow the list's order, after those given. */
static int fill_preferences(Mbx__CopyEntry **v, size_t n)
{
  bool used[MBXCLI_COPIES_MAX + 1] = { false };
  for (size_t i = 0; i < n; i++) {
    if (!v[i]->has_preference)
      continue;
    if (used[v[i]->preference])
      return MBX_EINVAL;
    used[v[i]->preference] = true;
  }
  uint32_t next = 1;
  for (size_t i = 0; i < n; i++) {
    if (v[i]->has_preference)
      continue;
    while (next <= MBXCLI_COPIES_MAX && used[next])
      next++;
    if (next > MBXCLI_COPIES_MAX)
      return MBX_EINVAL;
    used[next] = true;
    v[i]->has_preference = 1;
    v[i]->preference = next;
  }
  return 0;
}

int mbxcli_parse_copies(const char *csv, Mbx__CopyEntry ***v_r, size_t *n_r)
{
  if (!csv || !*csv)
    return MBX_EINVAL;
  Mbx__CopyEntry **v = calloc(MBXCLI_COPIES_MAX, sizeof(*v));
  if (!v)
    return MBX_ENOMEM;
  size_t n = 0;
  int rc = 0;
  for (const char *p = csv; rc == 0 && *p;) {
    size_t len = strcspn(p, ",");
    if (len == 0) {
      rc = MBX_EINVAL; /* "a,,b" or a trailing comma: a typo, not a wish */
      break;
    }
    if (n == MBXCLI_COPIES_MAX) {
      rc = MBX_ELIMIT;
      break;
    }
    if (!(v[n] = malloc(sizeof(*v[n])))) {
      rc = MBX_ENOMEM;
      break;
    }
    mbx__copy_entry__init(v[n]);
    rc = parse_copy_entry(p, len, v[n++]);
    for (size_t i = 0; rc == 0 && i + 1 < n; i++)
      if (strcmp(v[i]->node, v[n - 1]->node) == 0)
        rc = MBX_EEXIST;
    p += len;
    if (*p == ',' && !*++p)
      rc = MBX_EINVAL;
  }
  if (rc == 0)
    rc = fill_preferences(v, n);
  if (rc < 0) {
    mbxcli_copies_free(&v, n);
    return rc;
  }
  *v_r = v;
  *n_r = n;
  return 0;
}

/* ======================================================================== */
/* formatting                                                               */
/* ======================================================================== */

void mbxcli_format_duration(uint64_t s, char *buf, size_t len)
{
  if (s == 0)
    snprintf(buf, len, "0s");
  else if (s % 86400 == 0)
    snprintf(buf, len, "%" PRIu64 "d", s / 86400);
  else if (s % 3600 == 0)
    snprintf(buf, len, "%" PRIu64 "h", s / 3600);
  else if (s % 60 == 0)
    snprintf(buf, len, "%" PRIu64 "m", s / 60);
  else
    snprintf(buf, len, "%" PRIu64 "s", s);
}

void mbxcli_format_age(int64_t then_us, int64_t now_us, char *buf, size_t len)
{
  if (then_us <= 0) {
    snprintf(buf, len, "-");
    return;
  }
  int64_t d = now_us - then_us;
  if (d < 0)
    d = 0; /* another host's clock a little ahead */
  if (d < 10 * 1000000LL)
    snprintf(buf, len, "%.1fs ago", (double)d / 1e6);
  else if (d < 120 * 1000000LL)
    snprintf(buf, len, "%" PRId64 "s ago", d / 1000000);
  else if (d < INT64_C(7200000000))
    snprintf(buf, len, "%" PRId64 "m ago", d / 60000000);
  else if (d < INT64_C(172800000000))
    snprintf(buf, len, "%" PRId64 "h ago", d / INT64_C(3600000000));
  else
    snprintf(buf, len, "%" PRId64 "d ago", d / INT64_C(86400000000));
}

void mbxcli_format_bytes(uint64_t b, char *buf, size_t len)
{
  static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
  double v = (double)b;
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    u++;
  }
  if (u == 0)
    snprintf(buf, len, "%" PRIu64 " B", b);
  else
    snprintf(buf, len, "%.1f %s", v, units[u]);
}

void mbxcli_format_progress(uint64_t done, uint64_t total, uint64_t elapsed_us, char *buf,
                            size_t len)
{
  char d[32], t[32], r[32], eta[32] = "";
  mbxcli_format_bytes(done, d, sizeof(d));
  mbxcli_format_bytes(total, t, sizeof(t));
  double rate = elapsed_us ? (double)done * 1e6 / (double)elapsed_us : 0;
  mbxcli_format_bytes((uint64_t)rate, r, sizeof(r));
  if (total && done <= total && rate > 0) {
    uint64_t left_s = (uint64_t)((double)(total - done) / rate + 0.5);
    mbxcli_format_duration(left_s, eta, sizeof(eta));
    if (left_s > 60 && left_s % 60)
      snprintf(eta, sizeof(eta), "%" PRIu64 "m%02" PRIu64 "s", left_s / 60, left_s % 60);
  }
  unsigned pct = total ? (unsigned)(done >= total ? 100 : done * 100 / total) : 0;
  snprintf(buf, len, "%s / %s  %u%%  %s/s  ETA %s", d, total ? t : "?", pct, r,
           *eta ? eta : "?");
}

/* Column widths grow to fit; each cell is rendered once into a row of strings. */
enum { COLS = 13, CELL = 96 };

static void copy_row(const Mbx__CopyStatus *c, int64_t now_us, char row[COLS][CELL])
{
  snprintf(row[0], CELL, "%s", c->db);
  snprintf(row[1], CELL, "%s", c->node);
  snprintf(row[2], CELL, "%s", c->role ? c->role : "-");
  snprintf(row[3], CELL, "%s", c->status ? c->status : "-");
  bool active = c->role && strcmp(c->role, "active") == 0;
  if (active) {
    snprintf(row[4], CELL, "-");
    snprintf(row[5], CELL, "-");
    snprintf(row[6], CELL, "-");
  } else {
    snprintf(row[4], CELL, "%" PRIu64, c->copy_queue_records);
    mbxcli_format_bytes(c->copy_queue_bytes, row[5], CELL);
    snprintf(row[6], CELL, "%" PRIu64, c->replay_queue_records);
  }
  mbxcli_format_age(c->has_last_received_time_us ? c->last_received_time_us : 0, now_us,
                    row[7], CELL);
  mbxcli_format_age(c->has_last_replayed_time_us ? c->last_replayed_time_us : 0, now_us,
                    row[8], CELL);
  if (active)
    snprintf(row[9], CELL, "-");
  else
    mbxcli_format_age(c->has_last_contact_us ? c->last_contact_us : 0, now_us, row[9], CELL);
  if (c->lag_s)
    mbxcli_format_duration(c->lag_s, row[10], CELL);
  else
    snprintf(row[10], CELL, "-");
  if (c->has_preference)
    snprintf(row[11], CELL, "%" PRIu32, c->preference);
  else
    snprintf(row[11], CELL, "-");
  const char *why = c->reason && *c->reason ? c->reason : "";
  const char *note = c->comment && *c->comment ? c->comment : "";
  if (c->status && strcmp(c->status, "Seeding") == 0 && c->seed_bytes_total) {
    char p[64];
    snprintf(p, sizeof(p), "seeding %" PRIu64 "%%",
             c->seed_bytes_done * 100 / c->seed_bytes_total);
    snprintf(row[12], CELL, "%s%s%.60s", p, *why ? ": " : "", why);
  } else if (*why && *note) {
    snprintf(row[12], CELL, "%.45s (%.45s)", why, note);
  } else {
    snprintf(row[12], CELL, "%s", *why ? why : *note ? note : "");
  }
}

void mbxcli_print_copy_status(FILE *f, Mbx__CopyStatus *const *copies, size_t n,
                              int64_t now_us)
{
  static const char *const head[COLS] = {
    "DB", "NODE", "ROLE", "STATUS", "COPYQ", "COPYQ BYTES", "REPLAYQ", "LAST RECEIVED",
    "LAST REPLAYED", "LAST CONTACT", "LAG", "PREF", "REASON/COMMENT",
  };
  static const bool right[COLS] = { [4] = true, [5] = true, [6] = true, [11] = true };
  if (n == 0) {
    fprintf(f, "no database copies\n");
    return;
  }
  char (*rows)[COLS][CELL] = calloc(n, sizeof(*rows));
  if (!rows)
    return;
  size_t w[COLS];
  for (int k = 0; k < COLS; k++)
    w[k] = strlen(head[k]);
  for (size_t i = 0; i < n; i++) {
    copy_row(copies[i], now_us, rows[i]);
    for (int k = 0; k < COLS; k++)
      if (strlen(rows[i][k]) > w[k])
        w[k] = strlen(rows[i][k]);
  }
  for (int k = 0; k < COLS - 1; k++)
    fprintf(f, right[k] ? "%*s  " : "%-*s  ", (int)w[k], head[k]);
  fprintf(f, "%s\n", head[COLS - 1]);
  for (size_t i = 0; i < n; i++) {
    for (int k = 0; k < COLS - 1; k++)
      fprintf(f, right[k] ? "%*s  " : "%-*s  ", (int)w[k], rows[i][k]);
    fprintf(f, "%s\n", rows[i][COLS - 1]);
  }
  free(rows);
}

size_t mbxcli_copies_unhealthy(Mbx__CopyStatus *const *copies, size_t n)
{
  size_t bad = 0;
  for (size_t i = 0; i < n; i++) {
    const Mbx__CopyStatus *c = copies[i];
    bool active = c->role && strcmp(c->role, "active") == 0;
    const char *want = active ? "Mounted" : "Healthy";
    if (!c->status || strcmp(c->status, want) != 0)
      bad++;
  }
  return bad;
}

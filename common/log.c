/* log.c — severity-first log lines with a UTC timestamp, written with one write(2)
 * so lines from several threads never interleave. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "mbx_error.h"

static const char *log_names[] = {"debug", "info", "notice", "warning", "error", "fatal"};
static char log_ident[32] = "mbx";
static char log_node[64];
static enum mbx_log_level log_level = MBX_LOG_INFO;

void mbx_log_init(const char *ident, const char *node, enum mbx_log_level level)
{
  snprintf(log_ident, sizeof(log_ident), "%s", ident ? ident : "mbx");
  snprintf(log_node, sizeof(log_node), "%s", node ? node : "");
  log_level = level;
}

void mbx_log_set_level(enum mbx_log_level level) { log_level = level; }

int mbx_log_level_parse(const char *s, enum mbx_log_level *level_r)
{
  for (int i = 0; i <= MBX_LOG_FATAL; i++) {
    if (strcasecmp(s, log_names[i]) == 0) {
      *level_r = (enum mbx_log_level)i;
      return 0;
    }
  }
  return MBX_EINVAL;
}

void mbx_log(enum mbx_log_level level, const char *fmt, ...)
{
  if (level < log_level)
    return;
  char line[2048];
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s%s%s%s: ",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                   tm.tm_sec, ts.tv_nsec / 1000000, log_names[level], log_ident,
                   log_node[0] ? "[" : "", log_node, log_node[0] ? "]" : "");
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
  va_end(ap);
  size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
  if (len > sizeof(line) - 2)
    len = sizeof(line) - 2;
  line[len++] = '\n';
  ssize_t w = write(STDERR_FILENO, line, len);
  (void)w;
}

const char *mbx_log_escape(const char *in, char *out, size_t out_size)
{
  static const char hex[] = "0123456789abcdef";
  size_t n = 0;
  for (; in && *in && out_size; in++) {
    unsigned char ch = (unsigned char)*in;
    bool plain = ch >= 0x20 && ch < 0x7f && ch != '\\';
    if (n + (plain ? 1 : 4) >= out_size)
      break;
    if (plain) {
      out[n++] = (char)ch;
    } else {
      out[n++] = '\\';
      out[n++] = 'x';
      out[n++] = hex[ch >> 4];
      out[n++] = hex[ch & 15];
    }
  }
  if (out_size)
    out[n] = 0;
  return out;
}

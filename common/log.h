/* log.h — one line per event, severity first, to stderr (journald picks it up).
 * Severities follow a fixed ladder; lines below the configured level are dropped. */
#ifndef MBX_LOG_H
#define MBX_LOG_H

#include <stddef.h>

enum mbx_log_level {
  MBX_LOG_DEBUG = 0,
  MBX_LOG_INFO,
  MBX_LOG_NOTICE,
  MBX_LOG_WARNING,
  MBX_LOG_ERROR,
  MBX_LOG_FATAL,
};

/* Process-wide; call before starting threads. ident: "mbxd", node: "node1" (may be NULL). */
void mbx_log_init(const char *ident, const char *node, enum mbx_log_level level);
void mbx_log_set_level(enum mbx_log_level level);
/* Parses "debug|info|notice|warning|error|fatal"; returns 0 or MBX_EINVAL. */
int mbx_log_level_parse(const char *s, enum mbx_log_level *level_r);

void mbx_log(enum mbx_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define mbx_debug(...) mbx_log(MBX_LOG_DEBUG, __VA_ARGS__)
#define mbx_info(...) mbx_log(MBX_LOG_INFO, __VA_ARGS__)
#define mbx_notice(...) mbx_log(MBX_LOG_NOTICE, __VA_ARGS__)
#define mbx_warning(...) mbx_log(MBX_LOG_WARNING, __VA_ARGS__)
#define mbx_error(...) mbx_log(MBX_LOG_ERROR, __VA_ARGS__)
/* Logs and aborts: for broken invariants only, never for expected failures. */
#define mbx_fatal(...) (mbx_log(MBX_LOG_FATAL, __VA_ARGS__), abort())

/* Untrusted text (a name from a certificate or a request) for a log line: copies at
 * most out_size − 1 bytes of it into out, every byte outside printable ASCII as \xNN,
 * and returns out. */
const char *mbx_log_escape(const char *in, char *out, size_t out_size);

/* An invariant that stays checked in release builds. */
#define mbx_assert(cond)                                                     \
  ((cond) ? (void)0                                                          \
          : (mbx_log(MBX_LOG_FATAL, "assertion failed: %s at %s:%d", #cond,  \
                     __FILE__, __LINE__),                                    \
             abort()))

#endif

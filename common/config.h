/* config.h — mbx_config_*: a generic `key = value` configuration file reader with
 * typed, validating getters. Every error is one line "FILE:LINE: what is wrong",
 * ready to print. Used by mbxd (server/nodeconf.c) and later by mbx-proxy.
 *
 * Format: one `key = value` per line; blank lines; `#` starts a comment at the
 * beginning of a line or after whitespace. Keys are [a-z0-9_], plus '.' and '-' after
 * the first character (`peer.node-2`); a key may appear once.
 * Limits: 1 MiB per file, 4096 bytes per line, 1024 keys. */
#ifndef MBX_CONFIG_H
#define MBX_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mbx_config;

#define MBX_CONFIG_ERROR_BYTES 512

/* Flags for the getters. */
#define MBX_CONFIG_REQUIRED 1u        /* missing key: error "FILE: missing required key" */

/* Reads and parses path. On failure returns MBX_ECONFIG (syntax, duplicate key,
 * limits) or MBX_EIO (unreadable) and writes the one-line message to error_r
 * (error_size bytes; MBX_CONFIG_ERROR_BYTES is enough). */
int mbx_config_load(const char *path, struct mbx_config **cfg_r, char *error_r,
                    size_t error_size);
/* Parses text already in memory; path is only used in messages. */
int mbx_config_parse(const char *path, const char *text, size_t len, struct mbx_config **cfg_r,
                     char *error_r, size_t error_size);
void mbx_config_free(struct mbx_config **cfg);

/* The message of the last failed getter/check ("" if none); valid until the
 * config is freed. */
const char *mbx_config_error(const struct mbx_config *cfg);
const char *mbx_config_path(const struct mbx_config *cfg);

/* Refuses any key not in known (NULL-terminated): "FILE:LINE: unknown key 'x'".
 * An entry ending in '*' ("peer.*") accepts every longer key with that prefix.
 * Returns 0 or MBX_ECONFIG. */
int mbx_config_check_keys(struct mbx_config *cfg, const char *const *known);

bool mbx_config_has(const struct mbx_config *cfg, const char *key);
/* Iterates over the keys starting with prefix, in file order: start with *pos = 0;
 * false when there are no more. key/value borrowed until the config is freed. */
bool mbx_config_next(const struct mbx_config *cfg, const char *prefix, size_t *pos,
                     const char **key_r, const char **value_r, unsigned *line_r);
/* Line of a key (0 if absent). */
unsigned mbx_config_line(const struct mbx_config *cfg, const char *key);

/* Getters: return 0 (value or default in *val_r), or MBX_ECONFIG with the message
 * available from mbx_config_error(). A missing optional key gives def. */
int mbx_config_str(struct mbx_config *cfg, const char *key, unsigned flags, const char *def,
                   const char **val_r);
/* Decimal integer in [min, max]. */
int mbx_config_u64(struct mbx_config *cfg, const char *key, unsigned flags, uint64_t def,
                   uint64_t min, uint64_t max, uint64_t *val_r);
/* A byte size in [min, max]: a decimal number with an optional suffix K, M, G, T or
 * KiB, MiB, GiB, TiB (case-insensitive; all powers of 1024). */
int mbx_config_size(struct mbx_config *cfg, const char *key, unsigned flags, uint64_t def,
                    uint64_t min, uint64_t max, uint64_t *val_r);
/* yes/no, true/false, on/off, 1/0. */
int mbx_config_bool(struct mbx_config *cfg, const char *key, unsigned flags, bool def,
                    bool *val_r);

/* Parses a size string as mbx_config_size does. Returns 0 or MBX_EINVAL. */
int mbx_config_parse_size(const char *s, uint64_t *val_r);

/* Records a caller-side validation failure for key, as "FILE:LINE: key: <fmt>",
 * and returns MBX_ECONFIG. */
int mbx_config_fail(struct mbx_config *cfg, const char *key, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));

#endif

/* nodeconf.c — mbxd's keys: defaults, ranges and cross-key checks (the frame must
 * hold the largest message, certificate files must be readable) so that a bad
 * configuration stops the node at start with a line that names the fix. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "logrec.h"
#include "mbx_error.h"
#include "nodeconf.h"

#define MiB (1024ull * 1024)
#define GiB (1024ull * MiB)

static const char *const nodeconf_keys[] = {
  "node_name", "listen", "data_dir", "tls_cert", "tls_key", "tls_ca",
  "operator_password_hash", "transport_password_hash", "max_message_bytes",
  "max_frame_bytes", "max_connections", "handshake_timeout_ms", "idle_timeout_s",
  "db_map_size", "log_retain_bytes", "default_quota_warn", "default_quota_prohibit",
  "commit_batch_max", "commit_batch_bytes", "commit_queue_max", "log_level", "repl_heartbeat_ms",
  "repl_send_queue_max", "repl_record_max_bytes", "idempotency_keep_s", "notify_coalesce_ms",
  "max_subscriptions_per_conn", "auto_reseed_diverged", "peer.*", NULL,
};

int mbx_nodeconf_parse_listen(const char *s, char *host_r, size_t host_size, uint16_t *port_r)
{
  const char *colon, *hbeg, *hend;
  if (s[0] == '[') {
    hbeg = s + 1;
    hend = strchr(s, ']');
    if (!hend || hend[1] != ':')
      return MBX_EINVAL;
    colon = hend + 1;
  } else {
    hbeg = s;
    colon = strrchr(s, ':');
    if (!colon)
      return MBX_EINVAL;
    hend = colon;
  }
  size_t hlen = (size_t)(hend - hbeg);
  if (hlen == 0 || hlen >= host_size)
    return MBX_EINVAL;
  memcpy(host_r, hbeg, hlen);
  host_r[hlen] = '\0';
  unsigned char tmp[16];
  int family = s[0] == '[' ? AF_INET6 : AF_INET;
  if (inet_pton(family, host_r, tmp) != 1)
    return MBX_EINVAL;
  const char *p = colon + 1;
  unsigned long port = 0;
  if (!*p || strlen(p) > 5)
    return MBX_EINVAL;
  for (; *p; p++) {
    if (*p < '0' || *p > '9')
      return MBX_EINVAL;
    port = port * 10 + (unsigned long)(*p - '0');
  }
  if (port == 0 || port > 65535)
    return MBX_EINVAL;
  *port_r = (uint16_t)port;
  return 0;
}

int mbx_nodeconf_name_ok(const char *s)
{
  size_t n = strlen(s);
  if (n < 1 || n > MBX_NODECONF_NAME_MAX)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
      return 0;
  return 1;
}

/* A required, readable file; stored as a copy in *dst. */
static int nodeconf_file(struct mbx_config *c, const char *key, char **dst)
{
  const char *v;
  int rc = mbx_config_str(c, key, MBX_CONFIG_REQUIRED, NULL, &v);
  if (rc < 0)
    return rc;
  if (access(v, R_OK) != 0)
    return mbx_config_fail(c, key, "cannot read '%s': %s", v, strerror(errno));
  *dst = strdup(v);
  return *dst ? 0 : MBX_ENOMEM;
}

static int nodeconf_hash(struct mbx_config *c, const char *key, char **dst)
{
  const char *v;
  int rc = mbx_config_str(c, key, 0, NULL, &v);
  if (rc < 0 || !v)
    return rc;
  if (strncmp(v, "scrypt$", 7) != 0)
    return mbx_config_fail(c, key, "not a password hash (make one with mbxd --hash-password)");
  *dst = strdup(v);
  return *dst ? 0 : MBX_ENOMEM;
}

static int nodeconf_strings(struct mbx_config *c, struct mbx_nodeconf *n)
{
  const char *v;
  int rc;
  if ((rc = mbx_config_str(c, "node_name", MBX_CONFIG_REQUIRED, NULL, &v)) < 0)
    return rc;
  if (!mbx_nodeconf_name_ok(v))
    return mbx_config_fail(c, "node_name", "'%s' must be 1-63 of a-z, 0-9 and '-'", v);
  snprintf(n->node_name, sizeof(n->node_name), "%s", v);
  if ((rc = mbx_config_str(c, "listen", MBX_CONFIG_REQUIRED, NULL, &v)) < 0)
    return rc;
  if (mbx_nodeconf_parse_listen(v, n->listen_host, sizeof(n->listen_host), &n->listen_port) < 0)
    return mbx_config_fail(c, "listen",
                           "'%s' is not HOST:PORT with a numeric address "
                           "(e.g. 127.0.0.1:7001 or [::1]:7001)", v);
  if (!(n->listen = strdup(v)))
    return MBX_ENOMEM;
  if ((rc = mbx_config_str(c, "data_dir", MBX_CONFIG_REQUIRED, NULL, &v)) < 0)
    return rc;
  if (!(n->data_dir = strdup(v)))
    return MBX_ENOMEM;
  if ((rc = nodeconf_file(c, "tls_cert", &n->tls_cert)) < 0 ||
      (rc = nodeconf_file(c, "tls_key", &n->tls_key)) < 0 ||
      (rc = nodeconf_file(c, "tls_ca", &n->tls_ca)) < 0 ||
      (rc = nodeconf_hash(c, "operator_password_hash", &n->operator_password_hash)) < 0 ||
      (rc = nodeconf_hash(c, "transport_password_hash", &n->transport_password_hash)) < 0)
    return rc;
  if ((rc = mbx_config_str(c, "log_level", 0, "info", &v)) < 0)
    return rc;
  if (mbx_log_level_parse(v, &n->log_level) < 0)
    return mbx_config_fail(c, "log_level",
                           "'%s' is not one of debug, info, notice, warning, error", v);
  return 0;
}

static int nodeconf_numbers(struct mbx_config *c, struct mbx_nodeconf *n)
{
  int rc;
  if ((rc = mbx_config_size(c, "max_message_bytes", 0, 35 * MiB, 1024, 1 * GiB,
                            &n->max_message_bytes)) < 0 ||
      (rc = mbx_config_size(c, "max_frame_bytes", 0, n->max_message_bytes + MiB, 4096,
                            2 * GiB, &n->max_frame_bytes)) < 0)
    return rc;
  if (n->max_frame_bytes <= n->max_message_bytes)
    return mbx_config_fail(c, "max_frame_bytes",
                           "%llu must be larger than max_message_bytes (%llu): a frame carries "
                           "a message plus its request",
                           (unsigned long long)n->max_frame_bytes,
                           (unsigned long long)n->max_message_bytes);
  if ((rc = mbx_config_u64(c, "max_connections", 0, 4096, 1, 1000000, &n->max_connections)) < 0 ||
      (rc = mbx_config_u64(c, "handshake_timeout_ms", 0, 5000, 100, 600000,
                           &n->handshake_timeout_ms)) < 0 ||
      (rc = mbx_config_u64(c, "idle_timeout_s", 0, 900, 0, 86400 * 7, &n->idle_timeout_s)) < 0 ||
      (rc = mbx_config_size(c, "db_map_size", 0, 64 * GiB, 16 * MiB, 1ull << 50,
                            &n->db_map_size)) < 0 ||
      (rc = mbx_config_size(c, "log_retain_bytes", 0, 1 * GiB, 0, 1ull << 50,
                            &n->log_retain_bytes)) < 0 ||
      (rc = mbx_config_size(c, "default_quota_warn", 0, 0, 0, 1ull << 50,
                            &n->default_quota_warn)) < 0 ||
      (rc = mbx_config_size(c, "default_quota_prohibit", 0, 0, 0, 1ull << 50,
                            &n->default_quota_prohibit)) < 0 ||
      (rc = mbx_config_u64(c, "commit_batch_max", 0, 1024, 1, 1000000,
                           &n->commit_batch_max)) < 0 ||
      (rc = mbx_config_size(c, "commit_batch_bytes", 0, 16 * MiB, 64 * 1024, 1 * GiB,
                            &n->commit_batch_bytes)) < 0 ||
      (rc = mbx_config_u64(c, "commit_queue_max", 0, 65536, 1, 10000000,
                           &n->commit_queue_max)) < 0 ||
      (rc = mbx_config_u64(c, "idempotency_keep_s", 0, 604800, 60, 31536000,
                           &n->idempotency_keep_s)) < 0 ||
      (rc = mbx_config_u64(c, "notify_coalesce_ms", 0, 5, 0, 1000, &n->notify_coalesce_ms)) < 0 ||
      (rc = mbx_config_u64(c, "max_subscriptions_per_conn", 0, 16, 1, 1000,
                           &n->max_subscriptions_per_conn)) < 0)
    return rc;
  return 0;
}

/* peer.NAME = HOST:PORT, one per other node. */
static int nodeconf_peers(struct mbx_config *c, struct mbx_nodeconf *n)
{
  size_t pos = 0;
  const char *key, *v;
  while (mbx_config_next(c, "peer.", &pos, &key, &v, NULL)) {
    const char *name = key + 5;
    if (!mbx_nodeconf_name_ok(name))
      return mbx_config_fail(c, key, "'%s' is not a node name (1-63 of a-z, 0-9 and '-')", name);
    if (strcmp(name, n->node_name) == 0)
      return mbx_config_fail(c, key, "names this node itself (node_name = %s)", n->node_name);
    if (n->n_peers >= MBX_NODECONF_PEERS_MAX)
      return mbx_config_fail(c, key, "too many peers (limit %d)", MBX_NODECONF_PEERS_MAX);
    if (!n->peers && !(n->peers = calloc(MBX_NODECONF_PEERS_MAX, sizeof(*n->peers))))
      return MBX_ENOMEM;
    struct mbx_nodeconf_peer *p = &n->peers[n->n_peers];
    if (strlen(v) >= sizeof(p->addr) ||
        mbx_nodeconf_parse_listen(v, p->host, sizeof(p->host), &p->port) < 0)
      return mbx_config_fail(c, key,
                             "'%s' is not HOST:PORT with a numeric address "
                             "(e.g. 127.0.0.1:7002 or [::1]:7002)", v);
    snprintf(p->name, sizeof(p->name), "%s", name);
    snprintf(p->addr, sizeof(p->addr), "%s", v);
    n->n_peers++;
  }
  int rc;
  if ((rc = mbx_config_u64(c, "repl_heartbeat_ms", 0, 100, 10, 10000, &n->repl_heartbeat_ms)) < 0 ||
      (rc = mbx_config_size(c, "repl_send_queue_max", 0, 8 * MiB, 64 * 1024, 1 * GiB,
                            &n->repl_send_queue_max)) < 0 ||
      (rc = mbx_config_bool(c, "auto_reseed_diverged", 0, true, &n->auto_reseed_diverged)) < 0 ||
      (rc = mbx_config_size(c, "repl_record_max_bytes", 0, MBX_LOGREC_MAX_BYTES, 1 * MiB,
                            MBX_LOGREC_MAX_BYTES, &n->repl_record_max_bytes)) < 0)
    return rc;
  return 0;
}

const struct mbx_nodeconf_peer *mbx_nodeconf_peer(const struct mbx_nodeconf *n, const char *name)
{
  for (size_t i = 0; i < n->n_peers; i++)
    if (strcmp(n->peers[i].name, name) == 0)
      return &n->peers[i];
  return NULL;
}

int mbx_nodeconf_load(const char *path, struct mbx_nodeconf **conf_r, char *error_r,
                      size_t error_size)
{
  *conf_r = NULL;
  struct mbx_config *c;
  int rc = mbx_config_load(path, &c, error_r, error_size);
  if (rc < 0)
    return rc;
  struct mbx_nodeconf *n = calloc(1, sizeof(*n));
  if (!n || !(n->path = strdup(path))) {
    rc = MBX_ENOMEM;
    snprintf(error_r, error_size, "%s: out of memory", path);
    goto out;
  }
  if ((rc = mbx_config_check_keys(c, nodeconf_keys)) < 0 || (rc = nodeconf_strings(c, n)) < 0 ||
      (rc = nodeconf_numbers(c, n)) < 0 || (rc = nodeconf_peers(c, n)) < 0) {
    if (rc == MBX_ENOMEM)
      snprintf(error_r, error_size, "%s: out of memory", path);
    else
      snprintf(error_r, error_size, "%s", mbx_config_error(c));
    goto out;
  }
  *conf_r = n;
  n = NULL;
out:
  mbx_nodeconf_free(&n);
  mbx_config_free(&c);
  return rc;
}

void mbx_nodeconf_free(struct mbx_nodeconf **conf)
{
  struct mbx_nodeconf *n = *conf;
  if (!n)
    return;
  free(n->path);
  free(n->listen);
  free(n->data_dir);
  free(n->tls_cert);
  free(n->tls_key);
  free(n->tls_ca);
  free(n->operator_password_hash);
  free(n->transport_password_hash);
  free(n->peers);
  free(n);
  *conf = NULL;
}

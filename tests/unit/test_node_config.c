/* test_node_config.c — mbxd's configuration: a good file gives the documented
 * defaults, every kind of mistake gives a "FILE:LINE: …" line naming the problem,
 * and sizes accept the K/M/G and KiB/MiB/GiB suffixes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "mbx_error.h"
#include "nodeconf.h"

static char tmpdir[256];
static char cert[300], key[300], ca[300], conf_path[300];

static void write_file(const char *path, const char *text)
{
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static int setup(void **state)
{
  const char *base = getenv("MBX_TEST_TMPDIR");
  char tmpl[256];
  if (base) {
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", base);
    if (system(cmd) != 0)
      return -1;
  }
  snprintf(tmpl, sizeof(tmpl), "%s/nodeconf-XXXXXX", base ? base : "/tmp");
  if (!mkdtemp(tmpl))
    return -1;
  snprintf(tmpdir, sizeof(tmpdir), "%s", tmpl);
  snprintf(cert, sizeof(cert), "%s/node.crt", tmpdir);
  snprintf(key, sizeof(key), "%s/node.key", tmpdir);
  snprintf(ca, sizeof(ca), "%s/ca.crt", tmpdir);
  snprintf(conf_path, sizeof(conf_path), "%s/mbxd.conf", tmpdir);
  write_file(cert, "cert\n");
  write_file(key, "key\n");
  write_file(ca, "ca\n");
  return 0;
}

static int teardown(void **state)
{
  char cmd[300];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
  return system(cmd) == 0 ? 0 : -1;
}

/* The required keys, then extra lines. */
static void write_conf(const char *extra)
{
  char text[4096];
  snprintf(text, sizeof(text),
           "# a node\n"
           "node_name = node1\n"
           "listen = 127.0.0.1:7001\n"
           "data_dir = %s/data\n"
           "tls_cert = %s\n"
           "tls_key = %s\n"
           "tls_ca = %s\n"
           "%s",
           tmpdir, cert, key, ca, extra);
  write_file(conf_path, text);
}

static void test_defaults(void **state)
{
  write_conf("");
  struct mbx_nodeconf *c = NULL;
  char err[512] = "";
  assert_int_equal(mbx_nodeconf_load(conf_path, &c, err, sizeof(err)), 0);
  assert_string_equal(c->node_name, "node1");
  assert_string_equal(c->listen_host, "127.0.0.1");
  assert_int_equal(c->listen_port, 7001);
  assert_null(c->operator_password_hash);
  assert_null(c->transport_password_hash);
  assert_int_equal(c->max_message_bytes, 36700160);
  assert_int_equal(c->max_frame_bytes, 36700160 + 1048576);
  assert_int_equal(c->max_connections, 4096);
  assert_int_equal(c->handshake_timeout_ms, 5000);
  assert_int_equal(c->idle_timeout_s, 900);
  assert_int_equal(c->db_map_size, 64ull << 30);
  assert_int_equal(c->log_retain_bytes, 1ull << 30);
  assert_int_equal(c->default_quota_warn, 0);
  assert_int_equal(c->default_quota_prohibit, 0);
  assert_int_equal(c->commit_batch_max, 1024);
  assert_int_equal(c->commit_batch_bytes, 16ull << 20);
  assert_int_equal(c->commit_queue_max, 65536);
  assert_int_equal(c->log_level, MBX_LOG_INFO);
  assert_int_equal(c->idempotency_keep_s, 604800);
  assert_int_equal(c->notify_coalesce_ms, 5);
  assert_int_equal(c->max_subscriptions_per_conn, 16);
  mbx_nodeconf_free(&c);
  assert_null(c);
}

static void test_all_keys(void **state)
{
  write_conf("max_message_bytes = 10MiB   # inline comment\n"
             "max_frame_bytes = 12M\n"
             "max_connections = 10\n"
             "handshake_timeout_ms = 2000\n"
             "idle_timeout_s = 0\n"
             "db_map_size = 1G\n"
             "log_retain_bytes = 512k\n"
             "default_quota_warn = 900MiB\n"
             "default_quota_prohibit = 1GiB\n"
             "commit_batch_max = 64\n"
             "commit_batch_bytes = 4M\n"
             "commit_queue_max = 1000\n"
             "log_level = debug\n"
             "idempotency_keep_s = 86400\n"
             "notify_coalesce_ms = 0\n"
             "max_subscriptions_per_conn = 4\n"
             "\n"
             "   # indented comment\n"
             "operator_password_hash = scrypt$15$8$1$c2FsdA==$aGFzaA==\n"
             "transport_password_hash = scrypt$15$8$1$c2FsdA==$aGFzaA==\n");
  struct mbx_nodeconf *c = NULL;
  char err[512] = "";
  assert_int_equal(mbx_nodeconf_load(conf_path, &c, err, sizeof(err)), 0);
  assert_int_equal(c->max_message_bytes, 10ull << 20);
  assert_int_equal(c->max_frame_bytes, 12ull << 20);
  assert_int_equal(c->max_connections, 10);
  assert_int_equal(c->handshake_timeout_ms, 2000);
  assert_int_equal(c->idle_timeout_s, 0);
  assert_int_equal(c->db_map_size, 1ull << 30);
  assert_int_equal(c->log_retain_bytes, 512ull << 10);
  assert_int_equal(c->default_quota_warn, 900ull << 20);
  assert_int_equal(c->default_quota_prohibit, 1ull << 30);
  assert_int_equal(c->commit_batch_max, 64);
  assert_int_equal(c->commit_batch_bytes, 4ull << 20);
  assert_int_equal(c->commit_queue_max, 1000);
  assert_int_equal(c->log_level, MBX_LOG_DEBUG);
  assert_int_equal(c->idempotency_keep_s, 86400);
  assert_int_equal(c->notify_coalesce_ms, 0);
  assert_int_equal(c->max_subscriptions_per_conn, 4);
  assert_string_equal(c->operator_password_hash, "scrypt$15$8$1$c2FsdA==$aGFzaA==");
  mbx_nodeconf_free(&c);
}

static void test_ipv6_listen(void **state)
{
  char host[64];
  uint16_t port;
  assert_int_equal(mbx_nodeconf_parse_listen("[::1]:7001", host, sizeof(host), &port), 0);
  assert_string_equal(host, "::1");
  assert_int_equal(port, 7001);
  assert_int_equal(mbx_nodeconf_parse_listen("::1:7001", host, sizeof(host), &port), MBX_EINVAL);
  assert_int_equal(mbx_nodeconf_parse_listen("127.0.0.1:0", host, sizeof(host), &port), MBX_EINVAL);
  assert_int_equal(mbx_nodeconf_parse_listen("127.0.0.1:65536", host, sizeof(host), &port),
                   MBX_EINVAL);
  assert_int_equal(mbx_nodeconf_parse_listen("localhost:7001", host, sizeof(host), &port),
                   MBX_EINVAL);
  assert_int_equal(mbx_nodeconf_parse_listen("127.0.0.1", host, sizeof(host), &port), MBX_EINVAL);
}

/* Each bad line is appended after the 7 required lines, i.e. it is line 8. */
static void test_bad_configs(void **state)
{
  static const struct {
    const char *extra, *want;
  } cases[] = {
    {"bogus_key = 1\n", ":8: unknown key 'bogus_key'"},
    {"node_name = node2\n", ":8: duplicate key 'node_name' (first set on line 2)"},
    {"this line has no equals\n", ":8: expected 'key = value'"},
    {"max_connections =\n", ":8: max_connections: empty value"},
    {"max_connections = ten\n", ":8: max_connections: 'ten' is not a whole number"},
    {"max_connections = 0\n", ":8: max_connections: 0 is below the minimum 1"},
    {"max_message_bytes = 35 furlongs\n", ":8: max_message_bytes: '35 furlongs' is not a size"},
    {"max_message_bytes = 99999999999999999999999\n", ":8: max_message_bytes: "},
    {"max_message_bytes = 2G\n", ":8: max_message_bytes: 2147483648 is above the maximum"},
    {"max_frame_bytes = 35MiB\n", ":8: max_frame_bytes: 36700160 must be larger than max_message_bytes"},
    {"log_level = chatty\n", ":8: log_level: 'chatty' is not one of"},
    {"operator_password_hash = hunter2\n", ":8: operator_password_hash: not a password hash"},
    {"Node_Name = x\n", ":8: invalid key 'Node_Name'"},
    {"idempotency_keep_s = 10\n", ":8: idempotency_keep_s: 10 is below the minimum 60"},
    {"notify_coalesce_ms = 5000\n", ":8: notify_coalesce_ms: 5000 is above the maximum 1000"},
    {"max_subscriptions_per_conn = 0\n", ":8: max_subscriptions_per_conn: 0 is below the minimum 1"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    write_conf(cases[i].extra);
    struct mbx_nodeconf *c = NULL;
    char err[512] = "";
    assert_int_equal(mbx_nodeconf_load(conf_path, &c, err, sizeof(err)), MBX_ECONFIG);
    assert_null(c);
    char want[600];
    snprintf(want, sizeof(want), "%s%s", conf_path, cases[i].want);
    if (strncmp(err, want, strlen(want)) != 0)
      fail_msg("case %zu: got \"%s\", want prefix \"%s\"", i, err, want);
  }
}

/* Bad values of the required keys and missing keys. */
static void test_bad_required(void **state)
{
  char text[2048], err[512], want[600];
  struct mbx_nodeconf *c = NULL;

  snprintf(text, sizeof(text), "node_name = Node_1\nlisten = 127.0.0.1:7001\n");
  write_file(conf_path, text);
  assert_int_equal(mbx_nodeconf_load(conf_path, &c, err, sizeof(err)), MBX_ECONFIG);
  snprintf(want, sizeof(want), "%s:1: node_name: 'Node_1' must be 1-63 of a-z, 0-9 and '-'",
           conf_path);
  assert_string_equal(err, want);

  snprintf(text, sizeof(text), "node_name = n1\nlisten = nowhere\n");
  write_file(conf_path, text);
  assert_int_equal(mbx_nodeconf_load(conf_path, &c, err, sizeof(err)), MBX_ECONFIG);
  snprintf(want, sizeof(want), "%s:2: listen: 'nowhere' is not HOST:PORT", conf_path);
  assert_memory_equal(err, want, strlen(want));

  snprintf(text, sizeof(text), "node_name = n1\n");
  write_file(conf_path, text);
  assert_int_equal(mbx_nodeconf_load(conf_path, &c, err, sizeof(err)), MBX_ECONFIG);
  snprintf(want, sizeof(want), "%s: missing required key 'listen'", conf_path);
  assert_string_equal(err, want);

  snprintf(text, sizeof(text),
           "node_name = n1\nlisten = [::1]:7001\ndata_dir = /tmp\ntls_cert = %s/nope.crt\n",
           tmpdir);
  write_file(conf_path, text);
  assert_int_equal(mbx_nodeconf_load(conf_path, &c, err, sizeof(err)), MBX_ECONFIG);
  snprintf(want, sizeof(want), "%s:4: tls_cert: cannot read '%s/nope.crt'", conf_path, tmpdir);
  assert_memory_equal(err, want, strlen(want));

  char missing[400];
  snprintf(missing, sizeof(missing), "%s/absent.conf", tmpdir);
  assert_int_equal(mbx_nodeconf_load(missing, &c, err, sizeof(err)), MBX_EIO);
  snprintf(want, sizeof(want), "%s: cannot open", missing);
  assert_memory_equal(err, want, strlen(want));
  assert_null(c);
}

static void test_size_suffixes(void **state)
{
  static const struct {
    const char *s;
    uint64_t v;
  } ok[] = {{"0", 0},        {"123", 123},         {"1K", 1024},       {"1k", 1024},
            {"2KiB", 2048},  {"35M", 36700160},    {"35 MiB", 36700160}, {"64G", 64ull << 30},
            {"1gib", 1ull << 30}, {"2T", 2ull << 40}};
  for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
    uint64_t v = 1;
    assert_int_equal(mbx_config_parse_size(ok[i].s, &v), 0);
    assert_int_equal(v, ok[i].v);
  }
  static const char *bad[] = {"", "K", "-1", "1.5M", "1KB", "1 X", "18446744073709551616",
                              "17179869184G"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    uint64_t v;
    assert_int_equal(mbx_config_parse_size(bad[i], &v), MBX_EINVAL);
  }
}

/* The generic reader on its own: limits and getters. */
static void test_generic_reader(void **state)
{
  const char *text = "a = 1\nflag = yes\nname = hello world # comment\npath = /x#y\n";
  struct mbx_config *c = NULL;
  char err[512];
  assert_int_equal(mbx_config_parse("t.conf", text, strlen(text), &c, err, sizeof(err)), 0);
  bool b = false;
  assert_int_equal(mbx_config_bool(c, "flag", 0, false, &b), 0);
  assert_true(b);
  const char *s;
  assert_int_equal(mbx_config_str(c, "name", 0, NULL, &s), 0);
  assert_string_equal(s, "hello world");
  assert_int_equal(mbx_config_str(c, "path", 0, NULL, &s), 0);
  assert_string_equal(s, "/x#y");
  assert_int_equal(mbx_config_str(c, "absent", 0, "dflt", &s), 0);
  assert_string_equal(s, "dflt");
  assert_int_equal(mbx_config_str(c, "absent", MBX_CONFIG_REQUIRED, NULL, &s), MBX_ECONFIG);
  assert_string_equal(mbx_config_error(c), "t.conf: missing required key 'absent'");
  uint64_t v;
  assert_int_equal(mbx_config_u64(c, "a", 0, 0, 2, 10, &v), MBX_ECONFIG);
  assert_string_equal(mbx_config_error(c), "t.conf:1: a: 1 is below the minimum 2");
  mbx_config_free(&c);
  assert_null(c);

  /* An over-long line is refused, not truncated. */
  size_t n = 5000;
  char *big = malloc(n + 1);
  memset(big, 'x', n);
  memcpy(big, "k = ", 4);
  big[n] = '\0';
  assert_int_equal(mbx_config_parse("big.conf", big, n, &c, err, sizeof(err)), MBX_ECONFIG);
  assert_string_equal(err, "big.conf:1: line longer than 4096 bytes");
  free(big);
  const char nul[] = "a = 1\0\n";
  assert_int_equal(mbx_config_parse("nul.conf", nul, sizeof(nul) - 1, &c, err, sizeof(err)),
                   MBX_ECONFIG);
  assert_string_equal(err, "nul.conf:1: NUL byte in line");
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_defaults),     cmocka_unit_test(test_all_keys),
    cmocka_unit_test(test_ipv6_listen),  cmocka_unit_test(test_bad_configs),
    cmocka_unit_test(test_bad_required), cmocka_unit_test(test_size_suffixes),
    cmocka_unit_test(test_generic_reader),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

/* test_node_peer_config.c — the replication keys of mbxd's configuration: peers
 * (`peer.NAME = HOST:PORT`, names checked, never this node), the heartbeat and send
 * queue limits with their documented defaults, and mistakes worded "FILE:LINE: …". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mbx_error.h"
#include "nodeconf.h"

static char tmpdir[256];
static char cert[300], conf_path[300];

static void write_file(const char *path, const char *text)
{
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static int setup(void **state)
{
  (void)state;
  const char *base = getenv("MBX_TEST_TMPDIR");
  char tmpl[256];
  if (base) {
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", base);
    if (system(cmd) != 0)
      return -1;
  }
  snprintf(tmpl, sizeof(tmpl), "%s/peerconf-XXXXXX", base ? base : "/tmp");
  if (!mkdtemp(tmpl))
    return -1;
  snprintf(tmpdir, sizeof(tmpdir), "%s", tmpl);
  snprintf(cert, sizeof(cert), "%s/node.pem", tmpdir);
  snprintf(conf_path, sizeof(conf_path), "%s/mbxd.conf", tmpdir);
  write_file(cert, "pem\n");
  return 0;
}

static int teardown(void **state)
{
  (void)state;
  char cmd[300];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
  return system(cmd) == 0 ? 0 : -1;
}

static int load(const char *extra, struct mbx_nodeconf **c_r, char *err, size_t errsz)
{
  char text[4096];
  snprintf(text, sizeof(text),
           "node_name = node1\nlisten = 127.0.0.1:7001\ndata_dir = %s/data\n"
           "tls_cert = %s\ntls_key = %s\ntls_ca = %s\n%s",
           tmpdir, cert, cert, cert, extra);
  write_file(conf_path, text);
  return mbx_nodeconf_load(conf_path, c_r, err, errsz);
}

static void test_defaults_no_peers(void **state)
{
  (void)state;
  struct mbx_nodeconf *c;
  char err[512];
  assert_int_equal(load("", &c, err, sizeof(err)), 0);
  assert_int_equal(c->n_peers, 0);
  assert_int_equal(c->repl_heartbeat_ms, 100);
  assert_int_equal(c->repl_send_queue_max, 8 * 1024 * 1024);
  assert_int_equal(c->repl_record_max_bytes, 1024 * 1024 * 1024);
  assert_null(mbx_nodeconf_peer(c, "node2"));
  mbx_nodeconf_free(&c);
  assert_null(c);
}

static void test_peers_parsed(void **state)
{
  (void)state;
  struct mbx_nodeconf *c;
  char err[512];
  assert_int_equal(load("peer.node2 = 127.0.0.1:7002\n"
                        "peer.node-3 = [::1]:7003\n"
                        "repl_heartbeat_ms = 50\n"
                        "repl_send_queue_max = 4MiB\n"
                        "repl_record_max_bytes = 64M\n",
                        &c, err, sizeof(err)), 0);
  assert_int_equal(c->n_peers, 2);
  const struct mbx_nodeconf_peer *p = mbx_nodeconf_peer(c, "node2");
  assert_non_null(p);
  assert_string_equal(p->addr, "127.0.0.1:7002");
  assert_string_equal(p->host, "127.0.0.1");
  assert_int_equal(p->port, 7002);
  p = mbx_nodeconf_peer(c, "node-3");
  assert_non_null(p);
  assert_string_equal(p->host, "::1");
  assert_int_equal(p->port, 7003);
  assert_int_equal(c->repl_heartbeat_ms, 50);
  assert_int_equal(c->repl_send_queue_max, 4 * 1024 * 1024);
  assert_int_equal(c->repl_record_max_bytes, 64 * 1024 * 1024);
  mbx_nodeconf_free(&c);
}

static void expect_fail(const char *extra, const char *needle)
{
  struct mbx_nodeconf *c = NULL;
  char err[512] = "";
  assert_int_equal(load(extra, &c, err, sizeof(err)), MBX_ECONFIG);
  assert_null(c);
  if (!strstr(err, needle))
    fail_msg("error '%s' does not mention '%s'", err, needle);
  assert_non_null(strstr(err, conf_path));
}

static void test_bad_peers(void **state)
{
  (void)state;
  expect_fail("peer.node1 = 127.0.0.1:7002\n", "this node itself");
  expect_fail("peer.Node2 = 127.0.0.1:7002\n", "invalid key");
  expect_fail("peer.node_2 = 127.0.0.1:7002\n", "not a node name");
  expect_fail("peer. = 127.0.0.1:7002\n", "unknown key");
  expect_fail("peer.node2 = localhost:7002\n", "HOST:PORT");
  expect_fail("peer.node2 = 127.0.0.1\n", "HOST:PORT");
  expect_fail("peer.node2 = 127.0.0.1:7002\npeer.node2 = 127.0.0.1:7003\n", "duplicate");
  expect_fail("repl_heartbeat_ms = 0\n", "repl_heartbeat_ms");
  expect_fail("repl_record_max_bytes = 512K\n", "repl_record_max_bytes");
  expect_fail("repl_record_max_bytes = 2G\n", "repl_record_max_bytes");
  expect_fail("peerx.node2 = 127.0.0.1:7002\n", "unknown key");
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_defaults_no_peers),
    cmocka_unit_test(test_peers_parsed),
    cmocka_unit_test(test_bad_peers),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

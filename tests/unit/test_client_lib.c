/* test_client_lib.c — libmbx pieces that need no node: folder path resolution over a
 * synthetic FoldersResp, server list parsing, and a connect that every server
 * refuses. (The table of calls in flight is common/rpc.c's: test_rpc_calls.c.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "client_int.h"

#define NF 6
static Mbx__Folder folders[NF];
static Mbx__Folder *fptr[NF];
static Mbx__FoldersResp fr = MBX__FOLDERS_RESP__INIT;

static void add_folder(int i, uint64_t id, uint64_t parent, const char *name, Mbx__WellKnown wk)
{
  Mbx__Folder f = MBX__FOLDER__INIT;
  f.id = id;
  f.mailbox_id = 1;
  f.has_parent_id = parent != 0;
  f.parent_id = parent;
  f.name = (char *)name;
  f.has_well_known = wk != MBX__WELL_KNOWN__WK_NONE;
  f.well_known = wk;
  folders[i] = f;
  fptr[i] = &folders[i];
}

static int setup(void **state)
{
  (void)state;
  add_folder(0, 10, 0, "Inbox", MBX__WELL_KNOWN__WK_INBOX);
  add_folder(1, 11, 0, "Projects", MBX__WELL_KNOWN__WK_NONE);
  add_folder(2, 12, 11, "2026", MBX__WELL_KNOWN__WK_NONE);
  add_folder(3, 13, 12, "Q1", MBX__WELL_KNOWN__WK_NONE);
  add_folder(4, 14, 10, "2026", MBX__WELL_KNOWN__WK_NONE); /* same name, other parent */
  add_folder(5, 15, 0, "Calendar", MBX__WELL_KNOWN__WK_CALENDAR);
  fr.n_folders = NF;
  fr.folders = fptr;
  return 0;
}

static uint64_t resolve(const char *spec)
{
  const Mbx__Folder *f = NULL;
  int rc = mbxc_folder_resolve(&fr, spec, &f);
  return rc == 0 ? f->id : 0;
}

static void test_folder_resolution(void **state)
{
  (void)state;
  assert_int_equal(resolve("Inbox"), 10);
  assert_int_equal(resolve("inbox"), 10);               /* case-insensitive */
  assert_int_equal(resolve("projects/2026"), 12);
  assert_int_equal(resolve("Projects/2026/q1"), 13);
  assert_int_equal(resolve("/Projects//2026/"), 12);     /* stray slashes ignored */
  assert_int_equal(resolve("Inbox/2026"), 14);           /* the path picks the parent */
  assert_int_equal(resolve("13"), 13);                   /* numeric id */
  assert_int_equal(resolve("2026"), 0);                  /* not an id, not top level */
  assert_int_equal(resolve("Projects/2027"), 0);
  assert_int_equal(resolve("Q1"), 0);
  const Mbx__Folder *f;
  assert_int_equal(mbxc_folder_resolve(&fr, "", &f), MBX_EINVAL);
  assert_int_equal(mbxc_folder_resolve(&fr, "Nope", &f), MBX_ENOTFOUND);
}

static void test_folder_path_and_roles(void **state)
{
  (void)state;
  char buf[64];
  assert_int_equal(mbxc_folder_path(&fr, &folders[3], buf, sizeof(buf)), 2);
  assert_string_equal(buf, "Projects/2026/Q1");
  assert_int_equal(mbxc_folder_path(&fr, &folders[0], buf, sizeof(buf)), 0);
  assert_string_equal(buf, "Inbox");
  char small[10];
  mbxc_folder_path(&fr, &folders[3], small, sizeof(small));
  assert_string_equal(small, "Projects");                /* whole segments only */
  assert_ptr_equal(mbxc_folder_well_known(&fr, MBX__WELL_KNOWN__WK_CALENDAR), &folders[5]);
  assert_null(mbxc_folder_well_known(&fr, MBX__WELL_KNOWN__WK_NOTES));
  /* a parent loop from a broken server must not hang */
  Mbx__Folder a = MBX__FOLDER__INIT, b = MBX__FOLDER__INIT;
  a.id = 1; a.has_parent_id = 1; a.parent_id = 2; a.name = "a";
  b.id = 2; b.has_parent_id = 1; b.parent_id = 1; b.name = "b";
  Mbx__Folder *loop[] = { &a, &b };
  Mbx__FoldersResp lr = MBX__FOLDERS_RESP__INIT;
  lr.n_folders = 2;
  lr.folders = loop;
  assert_int_equal(mbxc_folder_path(&lr, &a, buf, sizeof(buf)), MBX_ELIMIT);
}

static void test_server_list(void **state)
{
  (void)state;
  char *hosts[4];
  uint16_t ports[4];
  size_t n;
  assert_int_equal(mbxc__parse_servers("127.0.0.1:7001,[::1]:7002,node.example:443", hosts,
                                       ports, 4, &n), 0);
  assert_int_equal(n, 3);
  assert_string_equal(hosts[0], "127.0.0.1");
  assert_int_equal(ports[0], 7001);
  assert_string_equal(hosts[1], "::1");
  assert_int_equal(ports[1], 7002);
  assert_string_equal(hosts[2], "node.example");
  assert_int_equal(ports[2], 443);
  for (size_t i = 0; i < n; i++)
    free(hosts[i]);
  const char *bad[] = { "", "host", "host:", ":7001", "h:0", "h:65536", "h:70x", "[::1:7",
                        "a:1,,b:2", "a:1,b:2,c:3,d:4,e:5", "h:-1" };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    assert_int_equal(mbxc__parse_servers(bad[i], hosts, ports, 4, &n), MBX_EINVAL);
}

static void cb_a(mbxc_conn *c, int status, const Mbx__Response *r, void *arg)
{
  (void)c; (void)status; (void)r; (void)arg;
}

static void connect_cb(mbxc_conn *c, int status, void *arg) { (void)c; *(int *)arg = status; }

static void test_connect_refused(void **state)
{
  (void)state;
  /* a port nothing listens on: bind one, close it, then connect there */
  uv_loop_t loop;
  uv_loop_init(&loop);
  uv_tcp_t t;
  uv_tcp_init(&loop, &t);
  struct sockaddr_in sa;
  uv_ip4_addr("127.0.0.1", 0, &sa);
  assert_int_equal(uv_tcp_bind(&t, (const struct sockaddr *)&sa, 0), 0);
  int len = sizeof(sa);
  uv_tcp_getsockname(&t, (struct sockaddr *)&sa, &len);
  char servers[64];
  snprintf(servers, sizeof(servers), "127.0.0.1:%u,127.0.0.1:%u", ntohs(sa.sin_port),
           ntohs(sa.sin_port));
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);

  const char *ca = getenv("MBX_TEST_CA");
  char cafile[256];
  if (!ca) {
    /* any PEM file loads as a CA; the connection fails before TLS matters */
    snprintf(cafile, sizeof(cafile), "/etc/ssl/certs/ca-certificates.crt");
    ca = cafile;
  }
  struct mbxc_options o = { .servers = servers, .ca_file = ca, .connect_timeout_ms = 2000 };
  mbxc_conn *c = NULL;
  int status = 1;
  int rc = mbxc_connect(&loop, &o, connect_cb, &status, &c);
  if (rc == MBX_ETLS) {                                  /* no system CA bundle here */
    uv_loop_close(&loop);
    skip();
  }
  assert_int_equal(rc, 0);
  for (int i = 0; i < 1000 && status == 1; i++)
    uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(status, MBX_ECONN);
  assert_non_null(strstr(mbxc_last_error(c), "cannot connect to 127.0.0.1:"));
  assert_non_null(strstr(mbxc_last_error(c), "connection refused"));
  assert_null(mbxc_server_info(c));
  Mbx__Request req = MBX__REQUEST__INIT;
  assert_int_equal(mbxc_call(c, &req, cb_a, NULL), MBX_ECLOSED);
  mbxc_close(&c);
  assert_null(c);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);             /* everything was released */

  /* the blocking face reports the same line */
  const char *err = NULL;
  assert_int_equal(mbxc_open(&o, &c, &err), MBX_ECONN);
  assert_non_null(strstr(err, "connection refused"));
  struct mbxc_options bad = { .servers = "nohost", .ca_file = ca };
  assert_int_equal(mbxc_open(&bad, &c, &err), MBX_EINVAL);
  assert_non_null(strstr(err, "bad server list"));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_folder_resolution),
    cmocka_unit_test(test_folder_path_and_roles),
    cmocka_unit_test(test_server_list),
    cmocka_unit_test(test_connect_refused),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}

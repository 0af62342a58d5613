/* itc_badframes.c — sends one kind of bad input to a running mbxd and checks the
 * node's reaction: garbage instead of TLS, an oversized length prefix, a truncated
 * frame, invalid protobuf, a request without a (known) body. Driven by it_badframes.sh.
 * Usage: itc_badframes garbage|oversized|truncated|badproto|nobody|unknownbody
 * (env MBX_SERVER, MBX_CA). Exit 0: the node reacted as specified. */
#include <signal.h>

#include "itc_common.h"

static const char *g_ca;
static char g_host[64];
static uint16_t g_port;

#define CHECK(cond, ...)                                                                           \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "itc_badframes: " __VA_ARGS__);                                              \
      fputc('\n', stderr);                                                                         \
      return 1;                                                                                    \
    }                                                                                              \
  } while (0)

static int tls(struct itc_conn *c)
{
  return itc_connect(c, g_host, g_port, g_ca, NULL, NULL, 10000);
}

/* Expects one Error response named `name` (NULL: any error with a name and message)
 * for request id `id` (0: any), then (if must_close) the connection closed. */
static int expect_error(struct itc_conn *c, const char *name, uint64_t id, int must_close)
{
  int eof;
  Mbx__Response *r = itc_recv_resp(c, &eof);
  CHECK(r, "expected an Error reply (%s), got %s", name ? name : "any",
        eof ? "a closed connection" : "a read error/timeout or undecodable frame");
  int ok = r->error != NULL;
  char got[64]; /* copied: the reply is freed before the checks below */
  snprintf(got, sizeof(got), "%s", ok && r->error->name ? r->error->name : "");
  printf("reply: id=%llu error=%s (%u) message=\"%s\"\n", (unsigned long long)r->id, got,
         ok ? r->error->code : 0, ok && r->error->message ? r->error->message : "");
  uint64_t rid = r->id;
  int has_msg = ok && r->error->message && r->error->message[0];
  mbx__response__free_unpacked(r, NULL);
  CHECK(ok, "reply carries no error");
  CHECK(has_msg, "error has no message");
  CHECK(name ? strcmp(got, name) == 0 : got[0] != 0, "error name '%s', want '%s'", got,
        name ? name : "any");
  CHECK(id == 0 || rid == id, "reply id %llu, want %llu", (unsigned long long)rid,
        (unsigned long long)id);
  if (must_close)
    CHECK(itc_wait_closed(c), "connection not closed after %s", got);
  return 0;
}

static int t_garbage(void)
{
  int fd = itc_tcp_connect(g_host, g_port, 10000);
  CHECK(fd >= 0, "connect failed");
  char junk[4096];
  const char *http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  memset(junk, 0xA5, sizeof(junk));
  memcpy(junk, http, strlen(http));
  ssize_t n = write(fd, junk, sizeof(junk));
  (void)n; /* the node may already have closed: that is fine */
  char b[4096];
  int closed = 0;
  for (int i = 0; i < 1000; i++) { /* bounded by count and SO_RCVTIMEO */
    ssize_t r = read(fd, b, sizeof(b));
    if (r > 0)
      continue; /* a TLS alert is allowed */
    closed = r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
    break;
  }
  close(fd);
  CHECK(closed, "node kept a garbage connection open for 10 s");
  printf("garbage: connection closed\n");
  return 0;
}

static int t_oversized(void)
{
  struct itc_conn c;
  CHECK(tls(&c) == 0, "TLS connect failed");
  const uint8_t pre[4] = {0x7f, 0xff, 0xff, 0xff};
  CHECK(itc_write_all(&c, pre, 4) == 0, "write failed");
  int rc = expect_error(&c, "EFRAME", 0, 1);
  itc_close(&c);
  return rc;
}

static int t_truncated(void)
{
  struct itc_conn c;
  CHECK(tls(&c) == 0, "TLS connect failed");
  /* announces 100 bytes, sends 10, then vanishes without close_notify */
  const uint8_t part[14] = {0, 0, 0, 100, 8, 1, 0x62, 2, 0, 0, 0, 0, 0, 0};
  CHECK(itc_write_all(&c, part, sizeof(part)) == 0, "write failed");
  usleep(100 * 1000);
  itc_abort(&c);
  /* and once more with a clean TLS close in the middle of a frame */
  CHECK(tls(&c) == 0, "TLS connect failed (2)");
  CHECK(itc_write_all(&c, part, sizeof(part)) == 0, "write failed (2)");
  itc_close(&c);
  printf("truncated: sent and closed twice\n");
  return 0;
}

static int t_badproto(void)
{
  struct itc_conn c;
  CHECK(tls(&c) == 0, "TLS connect failed");
  uint8_t junk[64];
  memset(junk, 0xff, sizeof(junk)); /* field 31, wire type 7: never valid */
  CHECK(itc_send_frame(&c, junk, sizeof(junk)) == 0, "write failed");
  int rc = expect_error(&c, "EPROTO", 0, 1);
  itc_close(&c);
  return rc;
}

/* A well-formed Request with id 7 and no body at all. */
static int t_nobody(void)
{
  struct itc_conn c;
  CHECK(tls(&c) == 0, "TLS connect failed");
  Mbx__Request req = MBX__REQUEST__INIT;
  req.id = 7;
  CHECK(itc_send_req(&c, &req) == 0, "write failed");
  int rc = expect_error(&c, NULL, 7, 0);
  itc_close(&c);
  return rc;
}

/* id 8 plus a body field number no version of the protocol has (999). */
static int t_unknownbody(void)
{
  struct itc_conn c;
  CHECK(tls(&c) == 0, "TLS connect failed");
  /* field 1 varint 8; field 999 length-delimited, 2 bytes */
  const uint8_t msg[] = {0x08, 0x08, 0xba, 0x3e, 0x02, 0x08, 0x01};
  CHECK(itc_send_frame(&c, msg, sizeof(msg)) == 0, "write failed");
  int rc = expect_error(&c, NULL, 8, 0);
  itc_close(&c);
  return rc;
}

int main(int argc, char **argv)
{
  signal(SIGPIPE, SIG_IGN);
  setvbuf(stdout, NULL, _IOLBF, 0);
  const char *server = getenv("MBX_SERVER");
  g_ca = getenv("MBX_CA");
  if (argc != 2 || !g_ca || itc_parse_server(server, g_host, sizeof(g_host), &g_port) != 0) {
    fprintf(stderr, "usage: MBX_SERVER=H:P MBX_CA=F itc_badframes "
                    "garbage|oversized|truncated|badproto|nobody|unknownbody\n");
    return 2;
  }
  const char *m = argv[1];
  if (!strcmp(m, "garbage"))
    return t_garbage();
  if (!strcmp(m, "oversized"))
    return t_oversized();
  if (!strcmp(m, "truncated"))
    return t_truncated();
  if (!strcmp(m, "badproto"))
    return t_badproto();
  if (!strcmp(m, "nobody"))
    return t_nobody();
  if (!strcmp(m, "unknownbody"))
    return t_unknownbody();
  fprintf(stderr, "itc_badframes: unknown mode %s\n", m);
  return 2;
}

/* itc_load.c — write load for the crash-safety test: several connections deliver
 * numbered messages (subject "load-N", Message-ID <load-N.RUN@itc>) as the transport
 * role, and print each N on stdout the moment its acknowledgement arrives. A node
 * killed mid-load simply ends the connections; what was printed must survive.
 * Usage: itc_load --to ADDR [--conns 8] [--first 1] [--count 20000] [--seconds 20]
 *        [--run TAG]   (env MBX_SERVER, MBX_CA, MBX_CERT, MBX_KEY = transport cert) */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>

#include "itc_common.h"

#define LOAD_MAX_CONNS 64

static struct {
  const char *to, *ca, *cert, *key, *run;
  char host[64];
  uint16_t port;
  long first, count, seconds;
  int conns;
} g;
static atomic_long g_next;  /* next number to send */
static atomic_long g_acked; /* acknowledged */
static atomic_long g_refused;
static pthread_mutex_t g_out_lock = PTHREAD_MUTEX_INITIALIZER;
static struct timespec g_deadline;

static int past_deadline(void)
{
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return now.tv_sec > g_deadline.tv_sec ||
         (now.tv_sec == g_deadline.tv_sec && now.tv_nsec >= g_deadline.tv_nsec);
}

static size_t make_message(char *buf, size_t cap, long n)
{
  int len = snprintf(buf, cap,
                     "From: load@example.org\r\nTo: %s\r\nSubject: load-%ld\r\n"
                     "Date: Sat, 21 Nov 2026 10:00:00 +0000\r\n"
                     "Message-ID: <load-%ld.%s@itc>\r\n\r\n",
                     g.to, n, n, g.run);
  if (len < 0 || (size_t)len >= cap)
    return 0;
  size_t used = (size_t)len;
  for (int line = 0; line < 12 && used + 80 < cap; line++) { /* ~1 KiB body */
    memset(buf + used, 'a' + line, 76);
    used += 76;
    buf[used++] = '\r';
    buf[used++] = '\n';
  }
  return used;
}

static void *worker(void *arg)
{
  (void)arg;
  struct itc_conn c;
  if (itc_connect(&c, g.host, g.port, g.ca, g.cert, g.key, 10000) != 0) {
    fprintf(stderr, "itc_load: connect failed\n");
    return NULL;
  }
  char body[2048];
  uint64_t id = 1;
  while (!past_deadline()) {
    long n = atomic_fetch_add(&g_next, 1);
    if (n >= g.first + g.count)
      break;
    size_t len = make_message(body, sizeof(body), n);
    Mbx__Request req = MBX__REQUEST__INIT;
    Mbx__DeliverReq dr = MBX__DELIVER_REQ__INIT;
    dr.to = (char *)g.to;
    dr.body.data = (uint8_t *)body;
    dr.body.len = len;
    req.id = id++;
    req.body_case = MBX__REQUEST__BODY_DELIVER;
    req.deliver = &dr;
    if (itc_send_req(&c, &req) != 0)
      break;
    int eof;
    Mbx__Response *r = itc_recv_resp(&c, &eof);
    if (!r)
      break; /* node gone: expected in the crash test */
    if (r->error) {
      atomic_fetch_add(&g_refused, 1);
      fprintf(stderr, "itc_load: load-%ld refused: %s %s\n", n,
              r->error->name ? r->error->name : "?", r->error->message ? r->error->message : "");
    } else if (r->id != req.id) {
      fprintf(stderr, "itc_load: reply id %llu for request %llu\n", (unsigned long long)r->id,
              (unsigned long long)req.id);
    } else {
      atomic_fetch_add(&g_acked, 1);
      pthread_mutex_lock(&g_out_lock);
      printf("%ld\n", n);
      fflush(stdout);
      pthread_mutex_unlock(&g_out_lock);
    }
    mbx__response__free_unpacked(r, NULL);
  }
  itc_abort(&c);
  return NULL;
}

static long arg_long(int argc, char **argv, int *i)
{
  if (*i + 1 >= argc) {
    fprintf(stderr, "itc_load: %s needs a value\n", argv[*i]);
    exit(2);
  }
  return strtol(argv[++*i], NULL, 10);
}

int main(int argc, char **argv)
{
  signal(SIGPIPE, SIG_IGN);
  g.conns = 8;
  g.first = 1;
  g.count = 20000;
  g.seconds = 20;
  g.run = "run";
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--to") && i + 1 < argc)
      g.to = argv[++i];
    else if (!strcmp(argv[i], "--run") && i + 1 < argc)
      g.run = argv[++i];
    else if (!strcmp(argv[i], "--conns"))
      g.conns = (int)arg_long(argc, argv, &i);
    else if (!strcmp(argv[i], "--first"))
      g.first = arg_long(argc, argv, &i);
    else if (!strcmp(argv[i], "--count"))
      g.count = arg_long(argc, argv, &i);
    else if (!strcmp(argv[i], "--seconds"))
      g.seconds = arg_long(argc, argv, &i);
    else {
      fprintf(stderr, "itc_load: unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  g.ca = getenv("MBX_CA");
  g.cert = getenv("MBX_CERT");
  g.key = getenv("MBX_KEY");
  if (!g.to || !g.ca || !g.cert || !g.key || g.conns < 1 || g.conns > LOAD_MAX_CONNS ||
      g.count < 1 || g.seconds < 1 || g.seconds > 600 ||
      itc_parse_server(getenv("MBX_SERVER"), g.host, sizeof(g.host), &g.port) != 0) {
    fprintf(stderr, "usage: MBX_SERVER MBX_CA MBX_CERT MBX_KEY itc_load --to ADDR [--conns N<=64]"
                    " [--first N] [--count N] [--seconds S<=600] [--run TAG]\n");
    return 2;
  }
  clock_gettime(CLOCK_MONOTONIC, &g_deadline);
  g_deadline.tv_sec += g.seconds;
  atomic_store(&g_next, g.first);
  pthread_t th[LOAD_MAX_CONNS];
  for (int i = 0; i < g.conns; i++)
    pthread_create(&th[i], NULL, worker, NULL);
  for (int i = 0; i < g.conns; i++)
    pthread_join(th[i], NULL);
  fprintf(stderr, "itc_load: %ld acknowledged, %ld refused\n", atomic_load(&g_acked),
          atomic_load(&g_refused));
  return 0;
}

/* itl_load.c — a write load through libmbx's blocking API, for switchover tests and
 * the switchover benchmark: THREADS connections (transport role) each deliver
 * numbered messages to one mailbox for SECONDS. Every acknowledged delivery is one
 * line on stdout, "SUBJECT ACK_MONO_US"; every error is one line on stderr. What a
 * client of libmbx would see across switchovers is exactly what this sees: the
 * library follows redirects and keys every write itself.
 * Usage: itl_load --to ADDR [--threads N] [--seconds S] [--run TAG] [--bytes B]
 *        itl_load --now   (prints "MONO_US REALTIME_US", read back to back: the first is
 *                          the clock of ACK_MONO_US, so a script can timestamp its own
 *                          actions against the acks; the second maps log times to it)
 * Env: MBX_SERVER, MBX_CA, MBX_CERT, MBX_KEY. Exit 0 when nothing failed, 1 when a
 * delivery failed, 2 on bad usage. */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mbx/mbx.h"

#define LOAD_THREADS_MAX 64

static const char *g_to, *g_run = "load";
static unsigned g_seconds = 10, g_bytes = 512;
static atomic_uint g_errors, g_acked;
static pthread_mutex_t g_out = PTHREAD_MUTEX_INITIALIZER;

static uint64_t mono_us(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void *load_thread(void *arg)
{
  unsigned t = (unsigned)(uintptr_t)arg;
  struct mbxc_options o = {
      .servers = getenv("MBX_SERVER"),
      .ca_file = getenv("MBX_CA"),
      .cert_file = getenv("MBX_CERT"),
      .key_file = getenv("MBX_KEY"),
      .request_timeout_ms = 30000,
      .client_name = "itl_load",
  };
  mbxc_conn *c = NULL;
  const char *err = NULL;
  if (mbxc_open(&o, &c, &err) < 0) {
    fprintf(stderr, "itl_load: thread %u: connect: %s\n", t, err ? err : "?");
    atomic_fetch_add(&g_errors, 1);
    return NULL;
  }
  char *msg = malloc(g_bytes + 256);
  uint64_t end = mono_us() + (uint64_t)g_seconds * 1000000u;
  for (unsigned i = 1; msg && mono_us() < end; i++) {
    char subject[96];
    snprintf(subject, sizeof(subject), "%s-%u-%u", g_run, t, i);
    int n = snprintf(msg, 256, "From: load@example.org\r\nTo: %s\r\nSubject: %s\r\n\r\n", g_to,
                     subject);
    memset(msg + n, 'x', g_bytes);
    Mbx__ItemResp *ir = NULL;
    int rc = mbxc_deliver(c, g_to, (const uint8_t *)msg, (size_t)n + g_bytes, &ir);
    uint64_t now = mono_us();
    mbxc_free(&ir);
    if (rc < 0) {
      fprintf(stderr, "itl_load: %s: %s (%s)\n", subject, mbxc_last_error(c), mbx_strerror(rc));
      atomic_fetch_add(&g_errors, 1);
      continue;
    }
    atomic_fetch_add(&g_acked, 1);
    pthread_mutex_lock(&g_out);
    printf("%s %" PRIu64 "\n", subject, now);
    pthread_mutex_unlock(&g_out);
  }
  free(msg);
  mbxc_close(&c);
  return NULL;
}

int main(int argc, char **argv)
{
  unsigned threads = 8;
  if (argc == 2 && strcmp(argv[1], "--now") == 0) {
    struct timespec rt;
    uint64_t mono = mono_us();
    clock_gettime(CLOCK_REALTIME, &rt);
    printf("%" PRIu64 " %" PRIu64 "\n", mono,
           (uint64_t)rt.tv_sec * 1000000u + (uint64_t)rt.tv_nsec / 1000u);
    return 0;
  }
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--to") == 0)
      g_to = argv[i + 1];
    else if (strcmp(argv[i], "--threads") == 0)
      threads = (unsigned)strtoul(argv[i + 1], NULL, 10);
    else if (strcmp(argv[i], "--seconds") == 0)
      g_seconds = (unsigned)strtoul(argv[i + 1], NULL, 10);
    else if (strcmp(argv[i], "--run") == 0)
      g_run = argv[i + 1];
    else if (strcmp(argv[i], "--bytes") == 0)
      g_bytes = (unsigned)strtoul(argv[i + 1], NULL, 10);
    else
      break;
  }
  if (!g_to || threads == 0 || threads > LOAD_THREADS_MAX || g_seconds == 0 || g_seconds > 3600 ||
      g_bytes > 1000000) {
    fprintf(stderr, "usage: itl_load --to ADDR [--threads 1-64] [--seconds 1-3600] [--run TAG] "
                    "[--bytes B]\n");
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  pthread_t th[LOAD_THREADS_MAX];
  for (unsigned t = 0; t < threads; t++)
    pthread_create(&th[t], NULL, load_thread, (void *)(uintptr_t)t);
  for (unsigned t = 0; t < threads; t++)
    pthread_join(th[t], NULL);
  fprintf(stderr, "itl_load: %u acknowledged, %u failed\n", atomic_load(&g_acked),
          atomic_load(&g_errors));
  return atomic_load(&g_errors) ? 1 : 0;
}

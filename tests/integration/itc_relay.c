/* itc_relay.c — a small fault-injecting TCP relay for the replication tests: listens
 * on a loopback port, forwards each connection to a target, and cuts every connection
 * (RST) on SIGUSR1 or every --cut-every-ms; --flip-after N flips one byte of the
 * target→client direction after N bytes of each connection (a TLS record MAC failure).
 * One thread, poll(), bounded: at most RELAY_MAX_PAIRS connections, a lifetime limit.
 * Usage: itc_relay --target HOST:PORT [--listen PORT] [--port-file F]
 *        [--cut-every-ms N] [--flip-after BYTES [--flips N]] [--seconds S<=3600]
 * Prints "port P" on stdout once listening; one stderr line per cut, a summary at exit. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RELAY_MAX_PAIRS 64
#define RELAY_BUF 65536

struct relay_pair {
  int fd[2];      /* 0: accepted client, 1: target */
  uint64_t down;  /* bytes target → client so far */
  int flipped;
};

static struct relay_pair g_pairs[RELAY_MAX_PAIRS];
static int g_npairs;
static volatile sig_atomic_t g_cut_requested, g_stop;
static struct sockaddr_in g_target;
static long g_cut_every_ms, g_seconds = 600;
static long long g_flip_after = -1;
static unsigned long g_flips_max = 0;     /* 0 = flip in every connection */
static unsigned long g_cuts, g_accepted, g_flips;

static void on_usr1(int sig) { (void)sig; g_cut_requested = 1; }
static void on_term(int sig) { (void)sig; g_stop = 1; }

static int64_t now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Abortive close: the peer sees a reset, like a cable pulled mid-stream. */
static void close_rst(int fd)
{
  struct linger l = {.l_onoff = 1, .l_linger = 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  close(fd);
}

static void pair_drop(int i, int rst)
{
  for (int k = 0; k < 2; k++) {
    if (rst)
      close_rst(g_pairs[i].fd[k]);
    else
      close(g_pairs[i].fd[k]);
  }
  g_pairs[i] = g_pairs[--g_npairs];
}

static void cut_all(void)
{
  int n = g_npairs;
  while (g_npairs > 0)
    pair_drop(0, 1);
  g_cuts++;
  fprintf(stderr, "itc_relay: cut %d connection(s) (cut #%lu)\n", n, g_cuts);
}

static void accept_one(int lfd)
{
  int c = accept(lfd, NULL, NULL);
  if (c < 0)
    return;
  if (g_npairs >= RELAY_MAX_PAIRS) {
    fprintf(stderr, "itc_relay: over %d connections, refusing one\n", RELAY_MAX_PAIRS);
    close_rst(c);
    return;
  }
  int t = socket(AF_INET, SOCK_STREAM, 0);
  if (t < 0 || connect(t, (struct sockaddr *)&g_target, sizeof(g_target)) != 0) {
    fprintf(stderr, "itc_relay: target connect failed: %s\n", strerror(errno));
    if (t >= 0)
      close(t);
    close_rst(c);
    return;
  }
  int one = 1;
  setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  setsockopt(t, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  g_pairs[g_npairs++] = (struct relay_pair){.fd = {c, t}};
  g_accepted++;
}

/* Blocking write of the whole buffer (loopback: the kernel buffers it quickly). */
static int write_all(int fd, const uint8_t *p, size_t n)
{
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Moves what is readable on side `from` of pair i; -1 when the pair must go. */
static int pump(int i, int from)
{
  static uint8_t buf[RELAY_BUF];
  struct relay_pair *p = &g_pairs[i];
  ssize_t r = read(p->fd[from], buf, sizeof(buf));
  if (r < 0 && (errno == EINTR || errno == EAGAIN))
    return 0;
  if (r <= 0)
    return -1;
  if (from == 1) {
    if (g_flip_after >= 0 && !p->flipped && (!g_flips_max || g_flips < g_flips_max) &&
        p->down + (uint64_t)r > (uint64_t)g_flip_after) {
      uint64_t at = (uint64_t)g_flip_after > p->down ? (uint64_t)g_flip_after - p->down : 0;
      buf[at] ^= 0x01;
      p->flipped = 1;
      g_flips++;
      fprintf(stderr, "itc_relay: flipped one byte at offset %llu of a connection\n",
              (unsigned long long)(p->down + at));
    }
    p->down += (uint64_t)r;
  }
  return write_all(p->fd[1 - from], buf, (size_t)r);
}

static int parse_target(const char *s)
{
  const char *colon = s ? strrchr(s, ':') : NULL;
  char host[64];
  if (!colon || (size_t)(colon - s) >= sizeof(host))
    return -1;
  memcpy(host, s, (size_t)(colon - s));
  host[colon - s] = 0;
  long port = strtol(colon + 1, NULL, 10);
  if (port <= 0 || port > 65535)
    return -1;
  g_target.sin_family = AF_INET;
  g_target.sin_port = htons((uint16_t)port);
  return inet_pton(AF_INET, host, &g_target.sin_addr) == 1 ? 0 : -1;
}

static int usage(void)
{
  fprintf(stderr, "usage: itc_relay --target HOST:PORT [--listen PORT] [--port-file F]"
                  " [--cut-every-ms N] [--flip-after BYTES [--flips N]] [--seconds S<=3600]\n");
  return 2;
}

static int listen_on(long port)
{
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 64) != 0) {
    fprintf(stderr, "itc_relay: cannot listen on 127.0.0.1:%ld: %s\n", port, strerror(errno));
    return -1;
  }
  return lfd;
}

int main(int argc, char **argv)
{
  const char *target = NULL, *port_file = NULL;
  long listen_port = 0;
  for (int i = 1; i < argc; i++) {
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v)
      return usage();
    if (!strcmp(argv[i], "--target"))
      target = v;
    else if (!strcmp(argv[i], "--listen"))
      listen_port = strtol(v, NULL, 10);
    else if (!strcmp(argv[i], "--port-file"))
      port_file = v;
    else if (!strcmp(argv[i], "--cut-every-ms"))
      g_cut_every_ms = strtol(v, NULL, 10);
    else if (!strcmp(argv[i], "--flip-after"))
      g_flip_after = strtoll(v, NULL, 10);
    else if (!strcmp(argv[i], "--flips"))
      g_flips_max = strtoul(v, NULL, 10);
    else if (!strcmp(argv[i], "--seconds"))
      g_seconds = strtol(v, NULL, 10);
    else
      return usage();
    i++;
  }
  if (parse_target(target) != 0 || listen_port < 0 || listen_port > 65535 ||
      g_cut_every_ms < 0 || g_seconds < 1 || g_seconds > 3600)
    return usage();
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa = {.sa_handler = on_usr1};
  sigaction(SIGUSR1, &sa, NULL);
  sa.sa_handler = on_term;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  int lfd = listen_on(listen_port);
  if (lfd < 0)
    return 1;
  struct sockaddr_in bound;
  socklen_t blen = sizeof(bound);
  getsockname(lfd, (struct sockaddr *)&bound, &blen);
  printf("port %u\n", ntohs(bound.sin_port));
  fflush(stdout);
  if (port_file) {
    FILE *f = fopen(port_file, "w");
    if (!f || fprintf(f, "%u\n", ntohs(bound.sin_port)) < 0 || fclose(f) != 0) {
      fprintf(stderr, "itc_relay: cannot write %s\n", port_file);
      return 1;
    }
  }

  int64_t end = now_ms() + g_seconds * 1000, next_cut = now_ms() + g_cut_every_ms;
  struct pollfd pfd[1 + 2 * RELAY_MAX_PAIRS];
  while (!g_stop && now_ms() < end) {
    if (g_cut_requested || (g_cut_every_ms > 0 && now_ms() >= next_cut)) {
      g_cut_requested = 0;
      next_cut = now_ms() + g_cut_every_ms;
      cut_all();
    }
    int n = 0;
    pfd[n++] = (struct pollfd){.fd = lfd, .events = POLLIN};
    for (int i = 0; i < g_npairs; i++)
      for (int k = 0; k < 2; k++)
        pfd[n++] = (struct pollfd){.fd = g_pairs[i].fd[k], .events = POLLIN};
    int np = g_npairs;
    if (poll(pfd, (nfds_t)n, 20) <= 0)
      continue;
    /* Walk pairs from the end so dropping one (swap with last) skips nothing. */
    for (int i = np - 1; i >= 0; i--) {
      for (int k = 0; k < 2; k++) {
        short re = pfd[1 + 2 * i + k].revents;
        if (re & (POLLIN | POLLHUP | POLLERR)) {
          if (pump(i, k) != 0) {
            pair_drop(i, 0);
            break;
          }
        }
      }
    }
    if (pfd[0].revents & POLLIN)
      accept_one(lfd);
  }
  while (g_npairs > 0)
    pair_drop(0, 1);
  close(lfd);
  fprintf(stderr, "itc_relay: done: %lu accepted, %lu cuts, %lu flips\n", g_accepted, g_cuts,
          g_flips);
  return 0;
}

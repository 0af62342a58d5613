/* itc_deliver_at_once.c — delivers several (large) messages at the same moment, one
 * connection each, as the transport role: every connection is open and every file read
 * before the first request leaves, so the requests reach the node's group commit
 * together. Waits for each answer up to --wait seconds (large messages on a loaded
 * machine take longer than the CLI's 30 s per request).
 * Usage: itc_deliver_at_once --to ADDR [--wait 180] FILE...
 *        (env MBX_SERVER, MBX_CA, MBX_CERT, MBX_KEY = transport certificate)
 * Prints one line per file: "FILE delivered item ID" or "FILE error NAME — message" /
 * "FILE failed: WHAT". Exit 0 all delivered, 4 some refused, 3 connection trouble,
 * 2 usage / local trouble. */
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>

#include "itc_common.h"

#define AT_ONCE_MAX 16

struct at_once {
  const char *file;
  uint8_t *body;
  size_t len;
  int rc;
  char line[512];
};

static struct {
  const char *to, *ca, *cert, *key;
  char host[64];
  uint16_t port;
  int wait_s;
  pthread_barrier_t ready;
} g;

static int read_file(const char *path, uint8_t **data_r, size_t *len_r)
{
  FILE *f = fopen(path, "rb");
  if (!f)
    return -1;
  size_t cap = 1 << 20, len = 0;
  uint8_t *d = malloc(cap);
  size_t n;
  while (d && (n = fread(d + len, 1, cap - len, f)) > 0) {
    len += n;
    if (len == cap) {
      uint8_t *bigger = realloc(d, cap * 2);
      if (!bigger) {
        free(d);
        d = NULL;
        break;
      }
      d = bigger;
      cap *= 2;
    }
  }
  fclose(f);
  if (!d)
    return -1;
  *data_r = d;
  *len_r = len;
  return 0;
}

static void *deliver_one(void *arg)
{
  struct at_once *x = arg;
  struct itc_conn c = {.fd = -1};
  bool ok = read_file(x->file, &x->body, &x->len) == 0 &&
            itc_connect(&c, g.host, g.port, g.ca, g.cert, g.key, g.wait_s * 1000) == 0;
  pthread_barrier_wait(&g.ready);     /* everyone sends at once */
  if (!ok) {
    snprintf(x->line, sizeof(x->line), "%s failed: cannot read it or connect", x->file);
    x->rc = 3;
    return NULL;
  }
  Mbx__DeliverReq d = MBX__DELIVER_REQ__INIT;
  d.to = (char *)g.to;
  d.body.data = x->body;
  d.body.len = x->len;
  Mbx__Request q = MBX__REQUEST__INIT;
  q.id = 1;
  q.body_case = MBX__REQUEST__BODY_DELIVER;
  q.deliver = &d;
  int eof = 0;
  Mbx__Response *r = itc_send_req(&c, &q) == 0 ? itc_recv_resp(&c, &eof) : NULL;
  if (!r) {
    snprintf(x->line, sizeof(x->line), "%s failed: %s within %d s", x->file,
             eof ? "connection closed" : "no answer", g.wait_s);
    x->rc = 3;
  } else if (r->error) {
    snprintf(x->line, sizeof(x->line), "%s error %s — %s", x->file,
             r->error->name ? r->error->name : "?", r->error->message ? r->error->message : "");
    x->rc = 4;
  } else {
    unsigned long long id = r->body_case == MBX__RESPONSE__BODY_ITEM && r->item->item
                              ? (unsigned long long)r->item->item->id
                              : 0;
    snprintf(x->line, sizeof(x->line), "%s delivered item %llu", x->file, id);
    x->rc = 0;
  }
  if (r)
    mbx__response__free_unpacked(r, NULL);
  itc_close(&c);
  return NULL;
}

int main(int argc, char **argv)
{
  signal(SIGPIPE, SIG_IGN);
  g.wait_s = 180;
  int i = 1;
  for (; i + 1 < argc && argv[i][0] == '-'; i += 2) {
    if (strcmp(argv[i], "--to") == 0)
      g.to = argv[i + 1];
    else if (strcmp(argv[i], "--wait") == 0)
      g.wait_s = atoi(argv[i + 1]);
    else
      break;
  }
  int n = argc - i;
  g.ca = getenv("MBX_CA");
  g.cert = getenv("MBX_CERT");
  g.key = getenv("MBX_KEY");
  if (!g.to || n < 1 || n > AT_ONCE_MAX || g.wait_s < 1 || !g.ca || !g.cert || !g.key ||
      itc_parse_server(getenv("MBX_SERVER"), g.host, sizeof(g.host), &g.port) != 0) {
    fprintf(stderr, "usage: MBX_SERVER MBX_CA MBX_CERT MBX_KEY itc_deliver_at_once --to ADDR "
                    "[--wait S] FILE... (at most %d)\n", AT_ONCE_MAX);
    return 2;
  }
  struct at_once x[AT_ONCE_MAX];
  pthread_t th[AT_ONCE_MAX];
  memset(x, 0, sizeof(x));
  pthread_barrier_init(&g.ready, NULL, (unsigned)n);
  for (int k = 0; k < n; k++) {
    x[k].file = argv[i + k];
    if (pthread_create(&th[k], NULL, deliver_one, &x[k]) != 0) {
      fprintf(stderr, "itc_deliver_at_once: cannot start a thread\n");
      return 2;                       /* the others wait at the barrier: exit ends them */
    }
  }
  int rc = 0;
  for (int k = 0; k < n; k++) {
    pthread_join(th[k], NULL);
    printf("%s\n", x[k].line);
    if (x[k].rc > rc)
      rc = x[k].rc;
    free(x[k].body);
  }
  pthread_barrier_destroy(&g.ready);
  return rc;
}

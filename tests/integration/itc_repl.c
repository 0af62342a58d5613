/* itc_repl.c — pretends to be a node pulling a database's log (ReplPullReq), to check
 * who may pull: a node certificate of the cluster CA gets batches, an operator gets
 * EPERM, a certificate of another CA never gets past the TLS handshake.
 * Usage: itc_repl pull DB NODE FROM_LSN   (env MBX_SERVER, MBX_CA, MBX_CERT, MBX_KEY)
 * Prints one line: "refused: handshake", "refused: closed", "error NAME — message" or
 * "batch RECORDS ACTIVE_LAST_LSN". Exit 0 batch, 3 handshake/closed, 4 error reply,
 * 2 usage / local trouble. Every read is bounded (10 s). */
#include <signal.h>

#include "itc_common.h"

int main(int argc, char **argv)
{
  signal(SIGPIPE, SIG_IGN);
  char host[64];
  uint16_t port;
  if (argc != 5 || strcmp(argv[1], "pull") != 0 ||
      itc_parse_server(getenv("MBX_SERVER"), host, sizeof(host), &port) != 0 ||
      !getenv("MBX_CA")) {
    fprintf(stderr, "usage: MBX_SERVER MBX_CA [MBX_CERT MBX_KEY] itc_repl pull DB NODE FROM_LSN\n");
    return 2;
  }
  struct itc_conn c;
  if (itc_connect(&c, host, port, getenv("MBX_CA"), getenv("MBX_CERT"), getenv("MBX_KEY"),
                  10000) != 0) {
    printf("refused: handshake\n");
    return 3;
  }
  Mbx__Request q = MBX__REQUEST__INIT;
  Mbx__ReplPullReq pr = MBX__REPL_PULL_REQ__INIT;
  pr.db = argv[2];
  pr.node = argv[3];
  pr.from_lsn = strtoull(argv[4], NULL, 10);
  q.id = 7;
  q.body_case = MBX__REQUEST__BODY_REPL_PULL;
  q.repl_pull = &pr;
  int eof = 0;
  Mbx__Response *r = itc_send_req(&c, &q) == 0 ? itc_recv_resp(&c, &eof) : NULL;
  if (!r) {
    /* TLS 1.3: a refused client certificate shows up as an alert on the first read. */
    printf("refused: closed\n");
    itc_abort(&c);
    return 3;
  }
  int rc;
  if (r->error) {
    printf("error %s — %s\n", r->error->name ? r->error->name : "?",
           r->error->message ? r->error->message : "");
    rc = 4;
  } else if (r->body_case == MBX__RESPONSE__BODY_REPL_BATCH) {
    printf("batch %zu %llu\n", r->repl_batch->n_records,
           (unsigned long long)r->repl_batch->active_last_lsn);
    rc = 0;
  } else {
    printf("error UNEXPECTED — response body %d\n", (int)r->body_case);
    rc = 4;
  }
  mbx__response__free_unpacked(r, NULL);
  itc_abort(&c);
  return rc;
}

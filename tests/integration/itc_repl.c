/* itc_repl.c — pretends to be a node on the replication protocol, to check who may
 * pull a database's log and in whose name: a node certificate of the cluster CA gets
 * batches for its own node, an operator gets EPERM, a certificate of another CA never
 * gets past the TLS handshake, and a node certificate speaking for another node (a
 * pull or an acknowledgement in that node's name) is refused and disconnected.
 * Usage (env MBX_SERVER, MBX_CA, MBX_CERT, MBX_KEY):
 *   itc_repl pull DB NODE FROM_LSN   a ReplPullReq; prints "batch RECORDS ACTIVE_LAST_LSN"
 *   itc_repl ack DB NODE LSN         a ReplAckReq (id 0, as a passive sends it) saying
 *                                    NODE received and replayed up to LSN, then a ping;
 *                                    prints "accepted" when the ping is answered first
 * Otherwise prints one line: "refused: handshake", "refused: closed" or
 * "error NAME — message" (then "closed" on a second line if the node closed the
 * connection after it). Exit 0 batch/accepted, 3 handshake/closed, 4 error reply,
 * 2 usage / local trouble. Every read is bounded (10 s). */
#include <signal.h>

#include "itc_common.h"

static int usage(void)
{
  fprintf(stderr, "usage: MBX_SERVER MBX_CA [MBX_CERT MBX_KEY] itc_repl pull|ack DB NODE LSN\n");
  return 2;
}

/* Prints an error reply and whether the node then closed the connection. */
static int print_error(struct itc_conn *c, const Mbx__Response *r)
{
  printf("error %s — %s\n", r->error->name ? r->error->name : "?",
         r->error->message ? r->error->message : "");
  if (itc_wait_closed(c))
    printf("closed\n");
  return 4;
}

static int do_pull(struct itc_conn *c, char **argv)
{
  Mbx__Request q = MBX__REQUEST__INIT;
  Mbx__ReplPullReq pr = MBX__REPL_PULL_REQ__INIT;
  pr.db = argv[2];
  pr.node = argv[3];
  pr.from_lsn = strtoull(argv[4], NULL, 10);
  q.id = 7;
  q.body_case = MBX__REQUEST__BODY_REPL_PULL;
  q.repl_pull = &pr;
  int eof = 0;
  Mbx__Response *r = itc_send_req(c, &q) == 0 ? itc_recv_resp(c, &eof) : NULL;
  if (!r) {
    /* TLS 1.3: a refused client certificate shows up as an alert on the first read. */
    printf("refused: closed\n");
    return 3;
  }
  int rc;
  if (r->error) {
    rc = print_error(c, r);
  } else if (r->body_case == MBX__RESPONSE__BODY_REPL_BATCH) {
    printf("batch %zu %llu\n", r->repl_batch->n_records,
           (unsigned long long)r->repl_batch->active_last_lsn);
    rc = 0;
  } else {
    printf("error UNEXPECTED — response body %d\n", (int)r->body_case);
    rc = 4;
  }
  mbx__response__free_unpacked(r, NULL);
  return rc;
}

static int do_ack(struct itc_conn *c, char **argv)
{
  Mbx__ReplAckReq a = MBX__REPL_ACK_REQ__INIT;
  a.db = argv[2];
  a.node = argv[3];
  a.has_received_lsn = a.has_replayed_lsn = 1;
  a.received_lsn = a.replayed_lsn = strtoull(argv[4], NULL, 10);
  a.status = "Healthy";
  Mbx__Request q = MBX__REQUEST__INIT;
  q.id = 0;                           /* as a passive sends it: no answer expected */
  q.body_case = MBX__REQUEST__BODY_REPL_ACK;
  q.repl_ack = &a;
  Mbx__PingReq ping = MBX__PING_REQ__INIT;
  Mbx__Request p = MBX__REQUEST__INIT;
  p.id = 9;
  p.body_case = MBX__REQUEST__BODY_PING;
  p.ping = &ping;
  if (itc_send_req(c, &q) != 0) {
    printf("refused: closed\n");
    return 3;
  }
  (void)itc_send_req(c, &p);          /* may fail once the node has closed */
  int eof = 0;
  Mbx__Response *r = itc_recv_resp(c, &eof);
  if (!r) {
    printf("refused: closed\n");
    return 3;
  }
  int rc;
  if (r->error) {
    rc = print_error(c, r);
  } else if (r->id == 9 && r->body_case == MBX__RESPONSE__BODY_PING) {
    printf("accepted\n");             /* the node took the ack before the ping */
    rc = 0;
  } else {
    printf("error UNEXPECTED — response %llu body %d\n", (unsigned long long)r->id,
           (int)r->body_case);
    rc = 4;
  }
  mbx__response__free_unpacked(r, NULL);
  return rc;
}

int main(int argc, char **argv)
{
  signal(SIGPIPE, SIG_IGN);
  char host[64];
  uint16_t port;
  if (argc != 5 || (strcmp(argv[1], "pull") != 0 && strcmp(argv[1], "ack") != 0) ||
      itc_parse_server(getenv("MBX_SERVER"), host, sizeof(host), &port) != 0 ||
      !getenv("MBX_CA"))
    return usage();
  struct itc_conn c;
  if (itc_connect(&c, host, port, getenv("MBX_CA"), getenv("MBX_CERT"), getenv("MBX_KEY"),
                  10000) != 0) {
    printf("refused: handshake\n");
    return 3;
  }
  int rc = strcmp(argv[1], "pull") == 0 ? do_pull(&c, argv) : do_ack(&c, argv);
  itc_abort(&c);
  return rc;
}

/* client.c — libmbx core: connecting (server list, TLS via mbx_stream, hello), and
 * the connection's calls, which run on the project's one RPC client (common/rpc.h:
 * pipelined by id, per-call timeouts, streams, every callback exactly once); this
 * file adds what libmbx promises on top: last error, redirects, stolen replies.
 * Everything here runs on the connection's loop. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_int.h"
#include "rpc.h"
#include "stream.h"
#include "tls.h"

static _Thread_local char open_error_buf[512];

/* ======================================================================== */
/* connection state                                                         */
/* ======================================================================== */

enum conn_state {
  CS_CONNECTING,   /* TCP + TLS handshake with servers[cur] under way */
  CS_HELLO,        /* TLS up, hello sent, waiting for the reply */
  CS_READY,        /* usable */
  CS_FAILED,       /* every server failed (connect callback already called) */
  CS_CLOSED,       /* was ready, the stream dropped: calls refuse with ECLOSED */
};

struct mbxc_conn {
  uv_loop_t *loop;
  bool own_loop;                    /* blocking mode: loop is ours (blocking.c) */
  enum conn_state state;
  bool closing;                     /* mbxc_close called: free once handles close */
  bool timer_closed;
  struct mbx_tls_ctx *tls;
  struct mbx_stream *stream;        /* NULL once its on_close ran */
  uv_timer_t timer;                 /* connect timeout (per server attempt) */
  struct mbx_rpc *rpc;              /* the calls; NULL once mbxc_close closed it */
  bool rpc_closed;                  /* its close callback ran (or it never existed) */

  char *hosts[MBXC_MAX_SERVERS];
  uint16_t ports[MBXC_MAX_SERVERS];
  size_t nservers, cur;
  char addr[300];                   /* "host:port" of servers[cur] */
  char attempt_errors[2048];        /* "A: why; B: why" while connecting */

  uint32_t connect_timeout_ms, request_timeout_ms;
  size_t max_frame_bytes;
  char *client_name;

  mbxc_connect_cb connect_cb;
  void *connect_arg;
  struct mbx_rpc_call hello_call;   /* outstanding while state == CS_HELLO */
  Mbx__HelloResp *hello;            /* owned */

  uv_tcp_t probe;                   /* diagnosis of a failed TCP connect */
  uv_connect_t probe_req;
  bool probe_active;
  char probe_result[128];
  bool reply_stolen;                /* the reply being delivered was kept (blocking.c) */

  int last_code;
  char last_error[1024];
  char redirect[300];               /* ENOTACTIVE's "HOST:PORT" of the active, or "" */
  bool reconnect_done;              /* mbxc__reconnect_sync: connect finished */
  bool has_login;                   /* last successful login, to repeat after a redirect */
  Mbx__Role login_role;
  char *login_user, *login_pw;
  int reconnect_status;
  char ack_node[64];                /* the last acknowledged write's node and epoch */
  uint64_t ack_epoch;
};

static void conn_set_error(mbxc_conn *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void conn_set_error(mbxc_conn *c, int code, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->last_error, sizeof(c->last_error), fmt, ap);
  va_end(ap);
  c->last_code = code;
}

void mbxc__open_error_set(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(open_error_buf, sizeof(open_error_buf), fmt, ap);
  va_end(ap);
}

const char *mbxc_open_error(void) { return open_error_buf; }
const char *mbxc_last_error(const mbxc_conn *c) { return c ? c->last_error : ""; }
int mbxc_last_error_code(const mbxc_conn *c) { return c ? c->last_code : 0; }
const Mbx__HelloResp *mbxc_server_info(const mbxc_conn *c)
{
  return c && c->state == CS_READY ? c->hello : NULL;
}
void mbxc__set_ack(mbxc_conn *c, const char *node, uint64_t epoch)
{
  snprintf(c->ack_node, sizeof(c->ack_node), "%s", node ? node : "");
  c->ack_epoch = epoch;
}

const char *mbxc_last_ack(const mbxc_conn *c, uint64_t *epoch_r)
{
  if (epoch_r)
    *epoch_r = c ? c->ack_epoch : 0;
  return c ? c->ack_node : "";
}

void mbxc_set_request_timeout(mbxc_conn *c, uint32_t request_timeout_ms)
{
  if (c)
    c->request_timeout_ms = request_timeout_ms ? request_timeout_ms : MBXC_DEFAULT_REQUEST_TIMEOUT_MS;
}

const char *mbxc_server_addr(const mbxc_conn *c) { return c ? c->addr : ""; }
const char *mbxc_last_redirect(const mbxc_conn *c) { return c ? c->redirect : ""; }
uv_loop_t *mbxc__loop(mbxc_conn *c) { return c->loop; }
void mbxc__set_own_loop(mbxc_conn *c) { c->own_loop = true; }
bool mbxc__own_loop(const mbxc_conn *c) { return c->own_loop; }
void mbxc__steal_reply(mbxc_conn *c) { c->reply_stolen = true; }
void mbxc__set_last_error(mbxc_conn *c, int code, const char *msg)
{
  conn_set_error(c, code, "%s", msg);
}

void mbxc_free_message(ProtobufCMessage **msg)
{
  if (msg && *msg) {
    protobuf_c_message_free_unpacked(*msg, NULL);
    *msg = NULL;
  }
}

/* ======================================================================== */
/* server list                                                              */
/* ======================================================================== */

/* Parses "H:P[,H:P…]" ("[v6]:P" for IPv6). Pure; used by tests through the header. */
int mbxc__parse_servers(const char *list, char **hosts, uint16_t *ports, size_t max,
                        size_t *n_r)
{
  size_t n = 0;
  const char *p = list;
  if (!list || !*list)
    return MBX_EINVAL;
  while (*p) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    const char *host = p, *colon;
    size_t hlen;
    if (n == max || len == 0 || len > 270)
      goto bad;
    if (*p == '[') {
      const char *rb = memchr(p, ']', len);
      if (!rb || rb + 1 >= p + len || rb[1] != ':')
        goto bad;
      host = p + 1;
      hlen = (size_t)(rb - host);
      colon = rb + 1;
    } else {
      colon = NULL;
      for (const char *q = p; q < p + len; q++)
        if (*q == ':')
          colon = q;
      if (!colon)
        goto bad;
      hlen = (size_t)(colon - p);
    }
    if (hlen == 0)
      goto bad;
    char portbuf[8];
    size_t plen = (size_t)(p + len - colon - 1);
    if (plen == 0 || plen >= sizeof(portbuf))
      goto bad;
    memcpy(portbuf, colon + 1, plen);
    portbuf[plen] = 0;
    char *e;
    errno = 0;
    unsigned long port = strtoul(portbuf, &e, 10);
    if (*e || errno || port == 0 || port > 65535 || portbuf[0] < '0' || portbuf[0] > '9')
      goto bad;
    hosts[n] = strndup(host, hlen);
    if (!hosts[n]) {
      while (n > 0)
        free(hosts[--n]);
      return MBX_ENOMEM;
    }
    ports[n++] = (uint16_t)port;
    p += len;
    if (*p == ',')
      p++;
  }
  *n_r = n;
  return n ? 0 : MBX_EINVAL;
bad:
  while (n > 0)
    free(hosts[--n]);
  return MBX_EINVAL;
}

/* ======================================================================== */
/* teardown                                                                 */
/* ======================================================================== */

static void forget_login(mbxc_conn *c)
{
  if (c->login_pw)
    explicit_bzero(c->login_pw, strlen(c->login_pw));
  free(c->login_pw);
  free(c->login_user);
  c->login_pw = c->login_user = NULL;
  c->has_login = false;
}

void mbxc__remember_login(mbxc_conn *c, Mbx__Role role, const char *user, const char *pw)
{
  forget_login(c);
  c->login_user = strdup(user ? user : "");
  c->login_pw = strdup(pw ? pw : "");
  c->login_role = role;
  c->has_login = c->login_user && c->login_pw;
}

bool mbxc__saved_login(const mbxc_conn *c, Mbx__Role *role_r, const char **user_r,
                       const char **pw_r)
{
  if (!c->has_login)
    return false;
  *role_r = c->login_role;
  *user_r = c->login_user;
  *pw_r = c->login_pw;
  return true;
}

static void conn_free(mbxc_conn *c)
{
  forget_login(c);
  for (size_t i = 0; i < c->nservers; i++)
    free(c->hosts[i]);
  mbx_tls_ctx_free(&c->tls);
  mbxc_free(&c->hello);
  free(c->client_name);
  free(c);
}

static void maybe_free(mbxc_conn *c)
{
  if (c->closing && c->timer_closed && c->rpc_closed && !c->stream && !c->probe_active)
    conn_free(c);
}

static void on_rpc_closed(void *arg)
{
  mbxc_conn *c = arg;
  c->rpc_closed = true;
  maybe_free(c);
}

static void on_timer_closed(uv_handle_t *h)
{
  mbxc_conn *c = h->data;
  c->timer_closed = true;
  maybe_free(c);
}

static void finish_connect(mbxc_conn *c, int status)
{
  mbxc_connect_cb cb = c->connect_cb;
  c->connect_cb = NULL;
  if (cb)
    cb(c, status, c->connect_arg);
}

void mbxc_close(mbxc_conn **cp)
{
  if (!cp || !*cp)
    return;
  mbxc_conn *c = *cp;
  *cp = NULL;
  if (c->closing)
    return;
  c->closing = true;
  if (c->state == CS_CONNECTING || c->state == CS_HELLO) {
    conn_set_error(c, MBX_ECLOSED, "connection closed before it was established");
    c->state = CS_FAILED;
    finish_connect(c, MBX_ECLOSED);
  }
  if (c->state == CS_READY) {
    conn_set_error(c, MBX_ECLOSED, "connection closed");
    c->state = CS_CLOSED;
  }
  /* every call in flight gets MBX_ECLOSED now; the rpc is freed from the loop */
  mbx_rpc_close(&c->rpc, MBX_ECLOSED, on_rpc_closed, c);
  uv_timer_stop(&c->timer);
  uv_close((uv_handle_t *)&c->timer, on_timer_closed);
  uv_loop_t *loop = c->loop;
  bool own = c->own_loop;
  if (c->stream)
    mbx_stream_close(c->stream, 0);
  if (own) {
    /* blocking mode: run our private loop until the handles (and c) are gone; the
     * stream's flush on close is bounded (2 s) */
    for (int i = 0; i < 100000 && uv_run(loop, UV_RUN_ONCE); i++)
      ;
    uv_run(loop, UV_RUN_NOWAIT);
    uv_loop_close(loop);
    free(loop);
  }
}

/* ======================================================================== */
/* timers                                                                   */
/* ======================================================================== */

/* The connect timer: this server took too long (TCP, TLS or hello); on_close moves on
 * to the next one. Request deadlines are the rpc's. */
static void on_timer(uv_timer_t *t)
{
  mbxc_conn *c = t->data;
  if ((c->state == CS_CONNECTING || c->state == CS_HELLO) && c->stream)
    mbx_stream_close(c->stream, MBX_ETIMEDOUT);
}

/* ======================================================================== */
/* stream callbacks                                                         */
/* ======================================================================== */

static int try_next_server(mbxc_conn *c);

static bool on_hello(struct mbx_rpc_call *call, int status, const Mbx__Response *resp);

/* TLS is up: the rpc carries the hello, then the caller's calls. */
static void on_ready(struct mbx_stream *s, void *arg)
{
  mbxc_conn *c = arg;
  Mbx__Request req = MBX__REQUEST__INIT;
  Mbx__HelloReq hello = MBX__HELLO_REQ__INIT;
  hello.has_protocol_version = 1;
  hello.protocol_version = MBXC_PROTOCOL_VERSION;
  hello.client = c->client_name;
  req.body_case = MBX__REQUEST__BODY_HELLO;
  req.hello = &hello;
  c->state = CS_HELLO;
  mbx_rpc_attach(c->rpc, s);
  c->hello_call.data = c;
  /* no deadline of its own: the connect timer bounds TCP + TLS + hello */
  int rc = mbx_rpc_call(c->rpc, &c->hello_call, &req, 0, on_hello);
  if (rc < 0)
    mbx_stream_close(s, rc);
}

static bool on_hello(struct mbx_rpc_call *call, int status, const Mbx__Response *resp)
{
  mbxc_conn *c = call->data;
  if (!resp)
    return false; /* the stream ended: its on_close reports this attempt */
  if (resp->error) {
    conn_set_error(c, status, "%s: hello refused: %s", c->addr,
                   resp->error->message ? resp->error->message : mbx_strerror(status));
    mbx_stream_close(c->stream, status);
    return false;
  }
  if (resp->body_case != MBX__RESPONSE__BODY_HELLO) {
    conn_set_error(c, MBX_EPROTO, "%s: unexpected reply to hello", c->addr);
    mbx_stream_close(c->stream, MBX_EPROTO);
    return false;
  }
  Mbx__Response *own = mbx_rpc_keep_response(call);
  c->hello = own->hello;
  own->hello = NULL;
  own->body_case = MBX__RESPONSE__BODY__NOT_SET;
  mbxc_free(&own);
  mbx_rpc_set_max_request_bytes(c->rpc, c->hello->has_max_frame_bytes &&
                                                c->hello->max_frame_bytes
                                            ? (size_t)c->hello->max_frame_bytes
                                            : c->max_frame_bytes);
  uv_timer_stop(&c->timer);
  c->state = CS_READY;
  c->last_code = 0;
  c->last_error[0] = 0;
  finish_connect(c, 0);
  return false;
}

/* Keeps the server's redirect of an ENOTACTIVE refusal, if it looks like HOST:PORT. */
static void note_redirect(mbxc_conn *c, const Mbx__Error *e)
{
  c->redirect[0] = 0;
  if (!e->redirect || !*e->redirect || strlen(e->redirect) > 270 ||
      strcspn(e->redirect, ", \t\r\n") != strlen(e->redirect) || !strchr(e->redirect, ':'))
    return;
  snprintf(c->redirect, sizeof(c->redirect), "%s", e->redirect);
}

/* A response no call is waiting for: id 0 is the server's connection-level
 * complaint; anything else answers a call that already timed out, and is dropped. */
static void on_unmatched(const Mbx__Response *resp, void *arg)
{
  mbxc_conn *c = arg;
  if (resp->id == 0 && resp->error)
    conn_set_error(c, mbx_error_from_wire(resp->error->code), "%s",
                   resp->error->message ? resp->error->message : "connection refused by server");
}

/* ---- the caller's calls ------------------------------------------------------
 * One struct per mbxc_call (one answer) or mbxc_call_stream (several, while the
 * caller's callback returns true). The rpc ends it exactly once; this adds the
 * connection's last error and redirect, and the blocking face's stolen replies. */
struct client_call {
  struct mbx_rpc_call rc;
  mbxc_conn *c;
  mbxc_reply_cb cb;                 /* mbxc_call, or */
  mbxc_stream_cb scb;               /* mbxc_call_stream */
  void *arg;
};

static bool on_call(struct mbx_rpc_call *rc, int status, const Mbx__Response *resp)
{
  struct client_call *cc = rc->data;
  mbxc_conn *c = cc->c;
  if (resp && resp->error) {
    conn_set_error(c, status, "%s",
                   resp->error->message && *resp->error->message ? resp->error->message
                                                                 : mbx_strerror(status));
    note_redirect(c, resp->error);
  } else if (status == MBX_ETIMEDOUT) {
    conn_set_error(c, MBX_ETIMEDOUT, "no reply from %s within %u ms", c->addr,
                   c->request_timeout_ms);
  }
  /* a callback may close the connection and so end other calls: their callbacks run
   * inside this one, so the stolen flag is saved around it */
  bool stolen_outer = c->reply_stolen, more = false;
  c->reply_stolen = false;
  if (cc->scb)
    more = cc->scb(c, status, resp, cc->arg) && status == 0;
  else
    cc->cb(c, status, resp, cc->arg);
  if (c->reply_stolen && resp)
    (void)mbx_rpc_keep_response(rc);
  c->reply_stolen = stolen_outer;
  if (!more)
    free(cc);
  return more;
}

static void on_frame(struct mbx_stream *s, const uint8_t *frame, size_t len, void *arg)
{
  mbxc_conn *c = arg;
  if (c->closing)
    return;
  if (mbx_rpc_on_frame(c->rpc, frame, len) < 0) {
    conn_set_error(c, MBX_EPROTO, "%s sent an undecodable reply", c->addr);
    mbx_stream_close(s, MBX_EPROTO);
  }
}

static void on_frame_error(struct mbx_stream *s, int err, void *arg)
{
  mbxc_conn *c = arg;
  conn_set_error(c, err, "%s sent a reply larger than %zu bytes", c->addr, c->max_frame_bytes);
  mbx_stream_close(s, err);
}

static const char *status_text(int status)
{
  switch (status) {
  case MBX_ECONN: return "connection refused or unreachable";
  case MBX_ETLS: return "TLS handshake failed (is --ca the CA that signed the server, "
                        "and does its certificate name this address?)";
  case MBX_ETIMEDOUT: return "timed out";
  default: return mbx_strerror(status);
  }
}

/* This server failed: note why, and try the next one or give up. */
static void attempt_failed(mbxc_conn *c, int code, const char *detail)
{
  char why[1100];
  if (c->last_code && c->last_error[0])
    snprintf(why, sizeof(why), "%.1000s", c->last_error);
  else
    snprintf(why, sizeof(why), "%s: %s", c->addr, detail ? detail : status_text(code));
  size_t used = strlen(c->attempt_errors);
  snprintf(c->attempt_errors + used, sizeof(c->attempt_errors) - used, "%s%s",
           used ? "; " : "", why);
  c->last_code = 0;
  c->last_error[0] = 0;
  c->cur++;
  if (c->cur < c->nservers && try_next_server(c) == 0)
    return;
  uv_timer_stop(&c->timer);
  c->state = CS_FAILED;
  conn_set_error(c, code, "cannot connect to %s", c->attempt_errors);
  finish_connect(c, code);
}

/* mbx_stream reports every TCP-level failure as MBX_ECONN; to tell the user *why*
 * ("connection refused", "no route to host"), one plain TCP connect to the same
 * numeric address is tried and its libuv error reported. Names are not probed. */
static void probe_closed(uv_handle_t *h)
{
  mbxc_conn *c = h->data;
  c->probe_active = false;
  if (c->closing) {
    maybe_free(c);
    return;
  }
  attempt_failed(c, MBX_ECONN, c->probe_result[0] ? c->probe_result : NULL);
}

static void probe_done(uv_connect_t *req, int rc)
{
  mbxc_conn *c = req->data;
  if (rc < 0)
    snprintf(c->probe_result, sizeof(c->probe_result), "%s", uv_strerror(rc));
  else
    snprintf(c->probe_result, sizeof(c->probe_result), "connection failed");
  uv_close((uv_handle_t *)&c->probe, probe_closed);
}

static int start_probe(mbxc_conn *c)
{
  struct sockaddr_storage sa;
  const char *h = c->hosts[c->cur];
  if (uv_ip4_addr(h, c->ports[c->cur], (struct sockaddr_in *)&sa) != 0 &&
      uv_ip6_addr(h, c->ports[c->cur], (struct sockaddr_in6 *)&sa) != 0) {
    snprintf(c->probe_result, sizeof(c->probe_result), "cannot resolve or reach %s", h);
    return MBX_EINVAL; /* caller reports without probing */
  }
  c->probe_result[0] = 0;
  if (uv_tcp_init(c->loop, &c->probe) < 0)
    return MBX_ENOMEM;
  c->probe.data = c;
  c->probe_req.data = c;
  c->probe_active = true;
  if (uv_tcp_connect(&c->probe_req, &c->probe, (const struct sockaddr *)&sa, probe_done) < 0) {
    snprintf(c->probe_result, sizeof(c->probe_result), "connection failed");
    uv_close((uv_handle_t *)&c->probe, probe_closed);
  }
  return 0;
}

static void on_close(struct mbx_stream *s, int status, void *arg)
{
  mbxc_conn *c = arg;
  (void)s;
  c->stream = NULL;
  if (c->closing) {
    maybe_free(c);
    return;
  }
  if (c->state == CS_CONNECTING || c->state == CS_HELLO) {
    mbx_rpc_detach(c->rpc, MBX_ECLOSED); /* ends the hello, if it was sent */
    int code = status ? status : MBX_ECLOSED;
    if (code == MBX_ECONN && c->state == CS_CONNECTING && !c->last_code && start_probe(c) == 0)
      return; /* probe_done continues */
    attempt_failed(c, code, code == MBX_ECONN && c->probe_result[0] ? c->probe_result : NULL);
    return;
  }
  /* the established connection dropped */
  c->state = CS_CLOSED;
  uv_timer_stop(&c->timer);
  if (!c->last_code || c->last_code == MBX_ETIMEDOUT)
    conn_set_error(c, MBX_ECLOSED, "connection to %s lost (%s)", c->addr,
                   status ? status_text(status) : "closed by server");
  mbx_rpc_detach(c->rpc, MBX_ECLOSED);
}

static const struct mbx_stream_callbacks stream_cbs = {
  .on_ready = on_ready,
  .on_frame = on_frame,
  .on_frame_error = on_frame_error,
  .on_close = on_close,
};

/* Starts an attempt on servers[cur], skipping servers that fail synchronously. */
static int try_next_server(mbxc_conn *c)
{
  for (; c->cur < c->nservers; c->cur++) {
    const char *h = c->hosts[c->cur];
    snprintf(c->addr, sizeof(c->addr), strchr(h, ':') ? "[%s]:%u" : "%s:%u", h,
             (unsigned)c->ports[c->cur]);
    struct mbx_stream_options so = {
      .max_frame_bytes = c->max_frame_bytes,
      .handshake_timeout_ms = c->connect_timeout_ms,
      .server_name = h,
    };
    c->state = CS_CONNECTING;
    int rc = mbx_stream_connect(c->loop, h, c->ports[c->cur], c->tls, &so, &stream_cbs, c,
                                &c->stream);
    if (rc == 0) {
      uv_timer_start(&c->timer, on_timer, c->connect_timeout_ms, 0);
      return 0;
    }
    size_t used = strlen(c->attempt_errors);
    snprintf(c->attempt_errors + used, sizeof(c->attempt_errors) - used, "%s%s: %s",
             used ? "; " : "", c->addr, status_text(rc));
  }
  return MBX_ECONN;
}

/* ======================================================================== */
/* public: connect, call                                                    */
/* ======================================================================== */

static void on_timer_failed_start(uv_timer_t *t)
{
  mbxc_conn *c = t->data;
  finish_connect(c, c->last_code ? c->last_code : MBX_ECONN);
}

int mbxc_connect(uv_loop_t *loop, const struct mbxc_options *opts, mbxc_connect_cb cb,
                 void *arg, mbxc_conn **conn_r)
{
  if (!loop || !opts || !cb || !conn_r) {
    mbxc__open_error_set("mbxc_connect: missing argument");
    return MBX_EINVAL;
  }
  mbxc_conn *c = calloc(1, sizeof(*c));
  if (!c) {
    mbxc__open_error_set("out of memory");
    return MBX_ENOMEM;
  }
  c->loop = loop;
  c->timer_closed = true; /* until initialised */
  c->rpc_closed = true;
  c->connect_timeout_ms = opts->connect_timeout_ms ? opts->connect_timeout_ms
                                                   : MBXC_DEFAULT_CONNECT_TIMEOUT_MS;
  c->request_timeout_ms = opts->request_timeout_ms ? opts->request_timeout_ms
                                                   : MBXC_DEFAULT_REQUEST_TIMEOUT_MS;
  c->max_frame_bytes = opts->max_frame_bytes ? opts->max_frame_bytes
                                             : MBXC_DEFAULT_MAX_FRAME_BYTES;
  c->client_name = strdup(opts->client_name ? opts->client_name : "libmbx/" MBXC_VERSION);
  if (!c->client_name) {
    conn_free(c);
    mbxc__open_error_set("out of memory");
    return MBX_ENOMEM;
  }
  int rc = mbxc__parse_servers(opts->servers, c->hosts, c->ports, MBXC_MAX_SERVERS,
                               &c->nservers);
  if (rc < 0) {
    conn_free(c);
    mbxc__open_error_set("bad server list \"%s\" (expected HOST:PORT[,HOST:PORT…])",
               opts->servers ? opts->servers : "");
    return rc;
  }
  if (!opts->ca_file || !*opts->ca_file) {
    conn_free(c);
    mbxc__open_error_set("no CA file given (the server's certificate cannot be verified)");
    return MBX_EINVAL;
  }
  if ((opts->cert_file && *opts->cert_file) != (opts->key_file && *opts->key_file)) {
    conn_free(c);
    mbxc__open_error_set("a client certificate needs both a certificate file and a key file");
    return MBX_EINVAL;
  }
  const char *terr = NULL;
  rc = mbx_tls_ctx_new_client(opts->ca_file,
                              opts->cert_file && *opts->cert_file ? opts->cert_file : NULL,
                              opts->key_file && *opts->key_file ? opts->key_file : NULL,
                              &c->tls, &terr);
  if (rc < 0) {
    conn_free(c);
    mbxc__open_error_set("TLS setup: %s", terr ? terr : mbx_strerror(rc));
    return rc;
  }
  struct mbx_rpc_options ro = {
      .max_request_bytes = c->max_frame_bytes, /* the server's, once its hello tells */
      .on_unmatched = on_unmatched,
      .arg = c,
  };
  if ((rc = mbx_rpc_new(loop, &ro, &c->rpc)) < 0) {
    conn_free(c);
    mbxc__open_error_set("out of memory");
    return rc;
  }
  c->rpc_closed = false;
  uv_timer_init(loop, &c->timer);
  c->timer.data = c;
  c->timer_closed = false;
  c->connect_cb = cb;
  c->connect_arg = arg;
  if (try_next_server(c) < 0) {
    /* nothing could even be started: report through the callback like any other
     * connect failure, from the loop (never from inside mbxc_connect) */
    c->state = CS_FAILED;
    conn_set_error(c, MBX_ECONN, "cannot connect to %s", c->attempt_errors);
    uv_timer_start(&c->timer, on_timer_failed_start, 0, 0);
  }
  *conn_r = c;
  return 0;
}

/* Sends req as a call answered to cb (one reply) or scb (a stream). The call's state
 * is the rpc's until on_call frees it; req carries the id it was sent with, as mbx.h
 * promises. */
static int call_start(mbxc_conn *c, Mbx__Request *req, mbxc_reply_cb cb, mbxc_stream_cb scb,
                      void *arg, uint32_t timeout_ms)
{
  if (c->closing || c->state == CS_CLOSED || c->state == CS_FAILED || !c->stream)
    return MBX_ECLOSED;
  if (c->state != CS_READY)
    return MBX_EINVAL;
  struct client_call *cc = calloc(1, sizeof(*cc));
  if (!cc)
    return MBX_ENOMEM;
  *cc = (struct client_call){.rc.data = cc, .c = c, .cb = cb, .scb = scb, .arg = arg};
  int rc = mbx_rpc_call(c->rpc, &cc->rc, req, timeout_ms, on_call);
  if (cc->rc.id)
    req->id = cc->rc.id;
  if (rc < 0) {
    conn_set_error(c, rc, "request not sent: %s", mbx_strerror(rc));
    free(cc);
  }
  return rc;
}

int mbxc_call(mbxc_conn *c, Mbx__Request *req, mbxc_reply_cb cb, void *arg)
{
  if (!c || !req || !cb)
    return MBX_EINVAL;
  return call_start(c, req, cb, NULL, arg, c->request_timeout_ms);
}

int mbxc__call_stream_opts(mbxc_conn *c, Mbx__Request *req, mbxc_stream_cb cb, void *arg,
                           bool no_timeout)
{
  if (!c || !req || !cb)
    return MBX_EINVAL;
  return call_start(c, req, NULL, cb, arg, no_timeout ? 0 : c->request_timeout_ms);
}

int mbxc_call_stream(mbxc_conn *c, Mbx__Request *req, mbxc_stream_cb cb, void *arg)
{
  return mbxc__call_stream_opts(c, req, cb, arg, false);
}

bool mbxc__in_flight(const mbxc_conn *c)
{
  return c->state == CS_READY && !c->closing && mbx_rpc_pending(c->rpc) > 0;
}

/* ======================================================================== */
/* reconnect (blocking mode): follow a redirect on the same connection      */
/* ======================================================================== */

static void on_reconnected(mbxc_conn *c, int status, void *arg)
{
  (void)arg;
  c->reconnect_done = true;
  c->reconnect_status = status;
}

/* Drops the current server and connects to servers (same TLS identity, same
 * options), running the private loop until done. Nothing may be pending. */
int mbxc__reconnect_sync(mbxc_conn *c, const char *servers)
{
  char *hosts[MBXC_MAX_SERVERS];
  uint16_t ports[MBXC_MAX_SERVERS];
  size_t n;
  if (!c->own_loop || c->closing || mbx_rpc_pending(c->rpc))
    return MBX_EINVAL;
  int rc = mbxc__parse_servers(servers, hosts, ports, MBXC_MAX_SERVERS, &n);
  if (rc < 0)
    return rc;
  if (c->stream)
    mbx_stream_close(c->stream, 0);
  /* bounded: the stream's close (and its flush) has its own limit */
  while (c->stream && uv_run(c->loop, UV_RUN_ONCE))
    ;
  for (size_t i = 0; i < c->nservers; i++)
    free(c->hosts[i]);
  memcpy(c->hosts, hosts, n * sizeof(hosts[0]));
  memcpy(c->ports, ports, n * sizeof(ports[0]));
  c->nservers = n;
  c->cur = 0;
  c->attempt_errors[0] = 0;
  c->last_code = 0;
  c->last_error[0] = 0;
  c->redirect[0] = 0;
  mbxc_free(&c->hello);
  c->connect_cb = on_reconnected;
  c->connect_arg = NULL;
  c->reconnect_done = false;
  if (try_next_server(c) < 0) {
    c->state = CS_FAILED;
    conn_set_error(c, MBX_ECONN, "cannot connect to %s", c->attempt_errors);
    c->connect_cb = NULL;
    return MBX_ECONN;
  }
  while (!c->reconnect_done && uv_run(c->loop, UV_RUN_ONCE))
    ;
  if (!c->reconnect_done)
    return MBX_ECONN;
  return c->reconnect_status;
}

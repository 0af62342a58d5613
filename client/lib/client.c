/* client.c — libmbx core: connecting (server list, TLS via mbx_stream, hello),
 * pipelined calls matched by request id, per-call timeouts, and teardown that calls
 * every pending callback exactly once. Everything here runs on the connection's loop. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "client_int.h"
#include "stream.h"
#include "tls.h"

static _Thread_local char open_error_buf[512];

/* ======================================================================== */
/* pending calls: a list in send order, which is also deadline order        */
/* ======================================================================== */

struct mbxc__call {
  struct mbxc__call *next, *prev;
  uint64_t id;
  uint64_t deadline_us;
  mbxc_reply_cb cb;
  void *arg;
};

void mbxc__pending_init(struct mbxc__pending *p)
{
  memset(p, 0, sizeof(*p));
  p->next_id = 1;
}

/* Appends a call; ids start at 1 (0 is what a server uses for connection errors). */
int mbxc__pending_add(struct mbxc__pending *p, uint64_t deadline_us, mbxc_reply_cb cb,
                      void *arg, uint64_t *id_r)
{
  struct mbxc__call *c = calloc(1, sizeof(*c));
  if (!c)
    return MBX_ENOMEM;
  c->id = p->next_id++;
  c->deadline_us = deadline_us;
  c->cb = cb;
  c->arg = arg;
  c->prev = p->tail;
  if (p->tail)
    p->tail->next = c;
  else
    p->head = c;
  p->tail = c;
  p->count++;
  *id_r = c->id;
  return 0;
}

/* Puts a streaming call back at the tail under its own id (its deadline, now plus the
 * timeout, is the latest, so the list stays in deadline order). */
int mbxc__pending_readd(struct mbxc__pending *p, uint64_t id, uint64_t deadline_us,
                        mbxc_reply_cb cb, void *arg)
{
  struct mbxc__call *c = calloc(1, sizeof(*c));
  if (!c)
    return MBX_ENOMEM;
  c->id = id;
  c->deadline_us = deadline_us;
  c->cb = cb;
  c->arg = arg;
  c->prev = p->tail;
  if (p->tail)
    p->tail->next = c;
  else
    p->head = c;
  p->tail = c;
  p->count++;
  return 0;
}

static void pending_unlink(struct mbxc__pending *p, struct mbxc__call *c)
{
  if (c->prev)
    c->prev->next = c->next;
  else
    p->head = c->next;
  if (c->next)
    c->next->prev = c->prev;
  else
    p->tail = c->prev;
  p->count--;
}

/* Removes the call with that id; returns 0 and its callback, or MBX_ENOTFOUND. */
int mbxc__pending_take(struct mbxc__pending *p, uint64_t id, mbxc_reply_cb *cb_r,
                       void **arg_r)
{
  for (struct mbxc__call *c = p->head; c; c = c->next) {
    if (c->id != id)
      continue;
    pending_unlink(p, c);
    *cb_r = c->cb;
    *arg_r = c->arg;
    free(c);
    return 0;
  }
  return MBX_ENOTFOUND;
}

/* The oldest call that has a deadline (MBXC__NO_DEADLINE calls are skipped: the
 * others are still in deadline order among themselves). */
static struct mbxc__call *pending_first_timed(const struct mbxc__pending *p)
{
  struct mbxc__call *c = p->head;
  while (c && c->deadline_us == MBXC__NO_DEADLINE)
    c = c->next;
  return c;
}

/* Removes the oldest timed call if it is due at now_us, or (force) the oldest call
 * of any kind. */
int mbxc__pending_take_expired(struct mbxc__pending *p, uint64_t now_us, bool force,
                               mbxc_reply_cb *cb_r, void **arg_r)
{
  struct mbxc__call *c = force ? p->head : pending_first_timed(p);
  if (!c || (!force && c->deadline_us > now_us))
    return MBX_ENOTFOUND;
  pending_unlink(p, c);
  *cb_r = c->cb;
  *arg_r = c->arg;
  free(c);
  return 0;
}

uint64_t mbxc__pending_next_deadline(const struct mbxc__pending *p)
{
  const struct mbxc__call *c = pending_first_timed(p);
  return c ? c->deadline_us : 0;
}

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
  uv_timer_t timer;                 /* connect timeout, then request deadlines */

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
  uint64_t hello_id;
  Mbx__HelloResp *hello;            /* owned */

  struct mbxc__pending pending;

  uv_tcp_t probe;                   /* diagnosis of a failed TCP connect */
  uv_connect_t probe_req;
  bool probe_active;
  char probe_result[128];
  bool reply_stolen;                /* blocking.c kept the reply being delivered */

  int last_code;
  char last_error[1024];
  char redirect[300];               /* ENOTACTIVE's "HOST:PORT" of the active, or "" */
  bool reconnect_done;              /* mbxc__reconnect_sync: connect finished */
  bool has_login;                   /* last successful login, to repeat after a redirect */
  Mbx__Role login_role;
  char *login_user, *login_pw;
  int reconnect_status;
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
  if (c->closing && c->timer_closed && !c->stream && !c->probe_active)
    conn_free(c);
}

static void on_timer_closed(uv_handle_t *h)
{
  mbxc_conn *c = h->data;
  c->timer_closed = true;
  maybe_free(c);
}

/* Fails every call still pending with status; each callback once, removed first so
 * that a callback calling mbxc_close or mbxc_call sees a consistent list. */
static void fail_all(mbxc_conn *c, int status)
{
  mbxc_reply_cb cb;
  void *arg;
  while (mbxc__pending_take_expired(&c->pending, 0, true, &cb, &arg) == 0)
    cb(c, status, NULL, arg);
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
  fail_all(c, MBX_ECLOSED);
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

static void on_timer(uv_timer_t *t);

static void arm_request_timer(mbxc_conn *c)
{
  if (c->closing)
    return;
  uint64_t next = mbxc__pending_next_deadline(&c->pending);
  if (!next) {
    uv_timer_stop(&c->timer);
    return;
  }
  uint64_t now = mbx_mono_us();
  uint64_t ms = next > now ? (next - now + 999) / 1000 : 0;
  uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void on_timer(uv_timer_t *t)
{
  mbxc_conn *c = t->data;
  if (c->state == CS_CONNECTING || c->state == CS_HELLO) {
    /* this server took too long: on_close moves on to the next one */
    if (c->stream)
      mbx_stream_close(c->stream, MBX_ETIMEDOUT);
    return;
  }
  mbxc_reply_cb cb;
  void *arg;
  uint64_t now = mbx_mono_us();
  while (!c->closing && mbxc__pending_take_expired(&c->pending, now, false, &cb, &arg) == 0) {
    conn_set_error(c, MBX_ETIMEDOUT, "no reply from %s within %u ms", c->addr,
                   c->request_timeout_ms);
    cb(c, MBX_ETIMEDOUT, NULL, arg);
  }
  arm_request_timer(c);
}

/* ======================================================================== */
/* stream callbacks                                                         */
/* ======================================================================== */

static int try_next_server(mbxc_conn *c);

static void on_ready(struct mbx_stream *s, void *arg)
{
  mbxc_conn *c = arg;
  Mbx__Request req = MBX__REQUEST__INIT;
  Mbx__HelloReq hello = MBX__HELLO_REQ__INIT;
  hello.has_protocol_version = 1;
  hello.protocol_version = MBXC_PROTOCOL_VERSION;
  hello.client = c->client_name;
  req.id = c->hello_id = c->pending.next_id++;
  req.body_case = MBX__REQUEST__BODY_HELLO;
  req.hello = &hello;
  c->state = CS_HELLO;
  int rc = mbx_stream_send_pb(s, &req.base);
  if (rc < 0)
    mbx_stream_close(s, rc);
}

static void handle_hello(mbxc_conn *c, Mbx__Response *resp)
{
  if (resp->error) {
    int code = mbx_error_from_wire(resp->error->code);
    conn_set_error(c, code, "%s: hello refused: %s", c->addr,
                   resp->error->message ? resp->error->message : mbx_strerror(code));
    mbx_stream_close(c->stream, code);
    mbxc_free(&resp);
    return;
  }
  if (resp->body_case != MBX__RESPONSE__BODY_HELLO) {
    conn_set_error(c, MBX_EPROTO, "%s: unexpected reply to hello", c->addr);
    mbx_stream_close(c->stream, MBX_EPROTO);
    mbxc_free(&resp);
    return;
  }
  c->hello = resp->hello;
  resp->hello = NULL;
  resp->body_case = MBX__RESPONSE__BODY__NOT_SET;
  mbxc_free(&resp);
  uv_timer_stop(&c->timer);
  c->state = CS_READY;
  c->last_code = 0;
  c->last_error[0] = 0;
  finish_connect(c, 0);
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

/* ---- streaming calls: one request, several responses on its id ---------------
 * A streaming call sits in the pending list like any call, with stream_final as its
 * callback and a struct stream_call as its argument, so that timeouts and teardown
 * (which call stream_final) end it exactly once. Each successful response is handed
 * to the caller's stream callback; while it asks for more, the call goes back into
 * the list with a fresh deadline (the timeout is per response, not per stream). */
struct stream_call {
  mbxc_stream_cb cb;
  void *arg;
  bool no_timeout;                  /* a subscription: waits for its next response forever */
};

static void stream_final(mbxc_conn *c, int status, const Mbx__Response *resp, void *arg)
{
  struct stream_call *sc = arg;
  mbxc_stream_cb cb = sc->cb;
  void *cb_arg = sc->arg;
  free(sc);
  (void)cb(c, status, resp, cb_arg);
}

static void stream_deliver(mbxc_conn *c, Mbx__Response *resp, struct stream_call *sc)
{
  uint64_t id = resp->id;
  bool more = sc->cb(c, 0, resp, sc->arg);
  if (!c->reply_stolen)
    mbxc_free(&resp);
  c->reply_stolen = false;
  if (!more) {
    free(sc);
  } else if (c->closing || c->state != CS_READY) {
    /* closed from inside the callback: the stream ends here, once */
    stream_final(c, MBX_ECLOSED, NULL, sc);
  } else {
    uint64_t deadline = sc->no_timeout ? MBXC__NO_DEADLINE
                                       : mbx_mono_us() + (uint64_t)c->request_timeout_ms * 1000;
    if (mbxc__pending_readd(&c->pending, id, deadline, stream_final, sc) < 0)
      stream_final(c, MBX_ENOMEM, NULL, sc);
  }
  if (!c->closing)
    arm_request_timer(c);
}

static void on_frame(struct mbx_stream *s, const uint8_t *frame, size_t len, void *arg)
{
  mbxc_conn *c = arg;
  if (c->closing)
    return;
  Mbx__Response *resp = mbx__response__unpack(NULL, len, frame);
  if (!resp) {
    conn_set_error(c, MBX_EPROTO, "%s sent an undecodable reply", c->addr);
    mbx_stream_close(s, MBX_EPROTO);
    return;
  }
  if (c->state == CS_HELLO && resp->id == c->hello_id) {
    handle_hello(c, resp);
    return;
  }
  mbxc_reply_cb cb;
  void *cb_arg;
  if (mbxc__pending_take(&c->pending, resp->id, &cb, &cb_arg) < 0) {
    /* id 0 is the server's connection-level complaint; anything else is a reply
     * to a call that already timed out: dropped. */
    if (resp->id == 0 && resp->error)
      conn_set_error(c, mbx_error_from_wire(resp->error->code), "%s",
                     resp->error->message ? resp->error->message : "connection refused by server");
    mbxc_free(&resp);
    return;
  }
  int status = 0;
  if (resp->error) {
    status = mbx_error_from_wire(resp->error->code);
    conn_set_error(c, status, "%s",
                   resp->error->message && *resp->error->message ? resp->error->message
                                                                 : mbx_strerror(status));
    note_redirect(c, resp->error);
  }
  c->reply_stolen = false;
  if (cb == stream_final && status == 0) {
    stream_deliver(c, resp, cb_arg);
    return;
  }
  cb(c, status, resp, cb_arg);
  if (!c->reply_stolen)
    mbxc_free(&resp);
  c->reply_stolen = false;
  /* c may be closing now, but is not freed before the stream's on_close */
  if (!c->closing)
    arm_request_timer(c);
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
  fail_all(c, MBX_ECLOSED);
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
  mbxc__pending_init(&c->pending);
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

/* mbxc_call with a deadline (MBXC__NO_DEADLINE: none). */
static int call_until(mbxc_conn *c, Mbx__Request *req, mbxc_reply_cb cb, void *arg,
                      uint64_t deadline)
{
  if (!c || !req || !cb)
    return MBX_EINVAL;
  if (c->closing || c->state == CS_CLOSED || c->state == CS_FAILED || !c->stream)
    return MBX_ECLOSED;
  if (c->state != CS_READY)
    return MBX_EINVAL;
  uint64_t id;
  int rc = mbxc__pending_add(&c->pending, deadline, cb, arg, &id);
  if (rc < 0)
    return rc;
  req->id = id;
  size_t max = c->hello && c->hello->has_max_frame_bytes && c->hello->max_frame_bytes
                   ? (size_t)c->hello->max_frame_bytes
                   : c->max_frame_bytes;
  if (protobuf_c_message_get_packed_size(&req->base) > max)
    rc = MBX_ELIMIT;
  else
    rc = mbx_stream_send_pb(c->stream, &req->base);
  if (rc < 0) {
    mbxc_reply_cb dummy_cb;
    void *dummy_arg;
    mbxc__pending_take(&c->pending, id, &dummy_cb, &dummy_arg);
    conn_set_error(c, rc, "request not sent: %s", mbx_strerror(rc));
    return rc;
  }
  /* The timer follows the oldest timed call: arm it when this call is that one. */
  if (deadline != MBXC__NO_DEADLINE && mbxc__pending_next_deadline(&c->pending) == deadline)
    arm_request_timer(c);
  return 0;
}

int mbxc_call(mbxc_conn *c, Mbx__Request *req, mbxc_reply_cb cb, void *arg)
{
  uint64_t deadline = mbx_mono_us() + (uint64_t)(c ? c->request_timeout_ms : 0) * 1000;
  return call_until(c, req, cb, arg, deadline);
}

int mbxc__call_stream_opts(mbxc_conn *c, Mbx__Request *req, mbxc_stream_cb cb, void *arg,
                           bool no_timeout)
{
  if (!cb || !c)
    return MBX_EINVAL;
  struct stream_call *sc = malloc(sizeof(*sc));
  if (!sc)
    return MBX_ENOMEM;
  sc->cb = cb;
  sc->arg = arg;
  sc->no_timeout = no_timeout;
  uint64_t deadline = no_timeout ? MBXC__NO_DEADLINE
                                 : mbx_mono_us() + (uint64_t)c->request_timeout_ms * 1000;
  int rc = call_until(c, req, stream_final, sc, deadline);
  if (rc < 0)
    free(sc);
  return rc;
}

int mbxc_call_stream(mbxc_conn *c, Mbx__Request *req, mbxc_stream_cb cb, void *arg)
{
  return mbxc__call_stream_opts(c, req, cb, arg, false);
}

bool mbxc__in_flight(const mbxc_conn *c)
{
  return c->state == CS_READY && !c->closing && c->pending.count > 0;
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
  if (!c->own_loop || c->closing || c->pending.count)
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

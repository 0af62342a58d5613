/* client_int.h — libmbx internals shared between client.c, blocking.c and
 * subscribe.c (mbxc__ prefix), and the pure pieces exposed to the unit tests. The
 * calls themselves run on common/rpc.h. Not installed. */
#ifndef MBX_CLIENT_INT_H
#define MBX_CLIENT_INT_H

#include "mbx/mbx.h"

int mbxc__parse_servers(const char *list, char **hosts, uint16_t *ports, size_t max,
                        size_t *n_r);

/* mbxc_call_stream with a flag: no_timeout makes the stream wait for each next
 * response without a deadline (subscriptions, whose server sends keepalives); it
 * still ends with MBX_ECLOSED when the connection goes. */
int mbxc__call_stream_opts(mbxc_conn *c, Mbx__Request *req, mbxc_stream_cb cb, void *arg,
                           bool no_timeout);
/* True while the connection is up with calls (or streams) in flight. */
bool mbxc__in_flight(const mbxc_conn *c);

uv_loop_t *mbxc__loop(mbxc_conn *c);
void mbxc__set_own_loop(mbxc_conn *c);
bool mbxc__own_loop(const mbxc_conn *c);
/* Inside a reply callback: the library will not free the reply; the caller owns it. */
void mbxc__steal_reply(mbxc_conn *c);
/* Records who acknowledged the last write (Response.ack_node/ack_epoch). */
void mbxc__set_ack(mbxc_conn *c, const char *node, uint64_t epoch);
void mbxc__set_last_error(mbxc_conn *c, int code, const char *msg);
/* Blocking mode: drops the server and connects to servers instead (redirects). */
int mbxc__reconnect_sync(mbxc_conn *c, const char *servers);
/* The last successful login, kept to repeat it after a redirect (password copied,
 * wiped on close). */
void mbxc__remember_login(mbxc_conn *c, Mbx__Role role, const char *user, const char *pw);
bool mbxc__saved_login(const mbxc_conn *c, Mbx__Role *role_r, const char **user_r,
                       const char **pw_r);
void mbxc__open_error_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif

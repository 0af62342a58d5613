/* subscribe.c — libmbx's push notifications (mbxc_subscribe: a stream that never
 * times out, kept alive by the node's keepalives), waiting on a blocking connection
 * for asynchronous callbacks (mbxc_wait), and writes carrying an idempotency key
 * (mbxc_call_sync_idem). */
#include <stdlib.h>
#include <string.h>

#include "client_int.h"

#define SUB_FOLDERS_MAX 1000 /* what the node accepts in one SubscribeReq */
#define IDEM_KEY_MAX    64

int mbxc_subscribe(mbxc_conn *conn, const uint64_t *folder_ids, size_t n, bool hierarchy,
                   mbxc_stream_cb cb, void *arg)
{
  if (!conn || !cb || (n && !folder_ids))
    return MBX_EINVAL;
  if (n > SUB_FOLDERS_MAX)
    return MBX_ELIMIT;
  Mbx__SubscribeReq q = MBX__SUBSCRIBE_REQ__INIT;
  q.folder_ids = (uint64_t *)folder_ids;
  q.n_folder_ids = n;
  q.has_hierarchy = hierarchy;
  q.hierarchy = hierarchy;
  q.has_all_folders = q.all_folders = n == 0;
  Mbx__Request req = MBX__REQUEST__INIT;
  req.body_case = MBX__REQUEST__BODY_SUBSCRIBE;
  req.subscribe = &q;
  return mbxc__call_stream_opts(conn, &req, cb, arg, true);
}

struct wait_timer {
  uv_timer_t t;
  bool fired, closed;
};

static void on_wait_timer(uv_timer_t *t)
{
  ((struct wait_timer *)t->data)->fired = true;
}

static void on_wait_closed(uv_handle_t *h)
{
  ((struct wait_timer *)h->data)->closed = true;
}

int mbxc_wait(mbxc_conn *conn, uint32_t timeout_ms)
{
  if (!conn || !mbxc__own_loop(conn))
    return MBX_EINVAL;
  uv_loop_t *loop = mbxc__loop(conn);
  struct wait_timer w = {.fired = false, .closed = false};
  uv_timer_init(loop, &w.t);
  w.t.data = &w;
  if (timeout_ms)
    uv_timer_start(&w.t, on_wait_timer, timeout_ms, 0);
  /* Bounded by the timer (or, without one, by the connection's life). */
  while (!w.fired && mbxc__in_flight(conn) && uv_run(loop, UV_RUN_ONCE))
    ;
  uv_close((uv_handle_t *)&w.t, on_wait_closed);
  for (int i = 0; i < 1000 && !w.closed; i++)
    uv_run(loop, UV_RUN_NOWAIT);
  return mbxc_server_info(conn) ? 0 : MBX_ECLOSED;
}

int mbxc_call_sync_idem(mbxc_conn *conn, Mbx__Request *req, const void *key, size_t key_len,
                        Mbx__Response **resp_r)
{
  if (resp_r)
    *resp_r = NULL;
  if (!conn || !req || !resp_r || !key || key_len == 0 || key_len > IDEM_KEY_MAX)
    return MBX_EINVAL;
  /* The caller's request is borrowed: its key fields are restored afterwards. */
  protobuf_c_boolean had = req->has_idempotency_key;
  ProtobufCBinaryData old = req->idempotency_key;
  req->has_idempotency_key = 1;
  req->idempotency_key.data = (uint8_t *)key;
  req->idempotency_key.len = key_len;
  int rc = mbxc_call_sync(conn, req, resp_r);
  req->has_idempotency_key = had;
  req->idempotency_key = old;
  return rc;
}

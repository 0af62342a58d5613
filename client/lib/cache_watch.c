/* cache_watch.c — continuous cached mode (mbxc_cache_watch): one libuv loop holds
 * an async connection subscribed to the mailbox's changes and a 100 ms tick; sync
 * passes (cache_sync.c, blocking, threads of their own) run on the loop's thread
 * pool, one at a time. What triggers a pass:
 *   - (re)subscribed          → a full pass (catch up from the sync states)
 *   - a notification          → the folders it names (and the hierarchy), download
 *   - local changes due       → push: push_delay_s after the oldest new change, at
 *                               once for Sent Items / Outbox, and failed ones when
 *                               their retry time comes
 * The subscription going away means reconnecting with backoff, 0.5 s doubling to
 * 30 s; passes wait until it is back. */
#include <stdlib.h>
#include <string.h>

#include "cache_sync_int.h"
#include "clock.h"

#define WATCH_TICK_MS 100u
#define WATCH_BACKOFF_MIN_MS 500u
#define WATCH_BACKOFF_MAX_MS 30000u
#define WATCH_DIRTY_MAX 256u

/* The subscription connection: down (retry at retry_at_us), connecting (TLS, login,
 * subscribe in flight) or live (notifications flow). */
enum watch_state { W_DOWN, W_CONNECTING, W_LIVE };

struct watch {
  mbxc_cache_syncer *s;
  const struct mbxc_cache_watch_options *o;
  uv_loop_t loop;
  uv_timer_t tick;
  uv_work_t work;
  mbxc_conn *sub;
  enum watch_state state;
  uint64_t retry_at_us;
  uint32_t backoff_ms;
  uint64_t deadline_us;             /* 0 = none */
  int64_t push_delay_us;
  bool stopping, closed;
  bool was_down;                    /* the subscription went down since the last one */
  /* what the next pass must do */
  uint64_t dirty[WATCH_DIRTY_MAX];
  size_t ndirty;
  bool dirty_all, dirty_hier, want_full;
  /* the pass in progress */
  bool running;
  uint64_t pass_ids[WATCH_DIRTY_MAX];
  size_t pass_n;
  unsigned pass_flags;
  int pass_rc;
};

static void watch_connect(struct watch *w);

static void emit(struct watch *w, enum mbxc_cache_event ev, int status, const char *text,
                 uint32_t retry_ms, uint32_t folders)
{
  struct mbxc_cache_progress p = { .event = ev, .status = status, .text = text,
                                   .retry_ms = retry_ms, .folders_total = folders };
  mbxc__sync_emit(w->s, &p);
}

static void went_down(struct watch *w, int status, const char *why)
{
  mbxc_close(&w->sub);
  w->state = W_DOWN;
  w->was_down = true;
  w->backoff_ms = w->backoff_ms ? w->backoff_ms * 2 : WATCH_BACKOFF_MIN_MS;
  if (w->backoff_ms > WATCH_BACKOFF_MAX_MS)
    w->backoff_ms = WATCH_BACKOFF_MAX_MS;
  w->retry_at_us = mbx_mono_us() + (uint64_t)w->backoff_ms * 1000;
  emit(w, MBXC_CACHE_EV_DISCONNECTED, status, why, w->backoff_ms, 0);
}

/* ======================================================================== */
/* the subscription                                                         */
/* ======================================================================== */

static void mark_dirty(struct watch *w, uint64_t folder)
{
  for (size_t i = 0; i < w->ndirty; i++)
    if (w->dirty[i] == folder)
      return;
  if (w->ndirty == WATCH_DIRTY_MAX)
    w->dirty_all = true; /* too many to name: sync them all */
  else
    w->dirty[w->ndirty++] = folder;
}

static bool on_notify(mbxc_conn *c, int status, const Mbx__Response *resp, void *arg)
{
  struct watch *w = arg;
  (void)c;
  if (status < 0 || !resp || resp->body_case != MBX__RESPONSE__BODY_NOTIFICATION) {
    if (!w->stopping)
      went_down(w, status < 0 ? status : MBX_EPROTO,
                status < 0 ? mbxc_last_error(c) : "unexpected reply to the subscription");
    return false;
  }
  const Mbx__Notification *n = resp->notification;
  if (n->has_subscribed && n->subscribed) {
    if (w->was_down) {
      /* the node went away: the sync connections of before are dead */
      pthread_mutex_lock(&w->s->mu);
      w->s->reopen = true;
      pthread_mutex_unlock(&w->s->mu);
    }
    w->was_down = false;
    w->state = W_LIVE;
    w->backoff_ms = 0;
    w->want_full = true; /* catch up on what happened while we were away */
    emit(w, MBXC_CACHE_EV_SUBSCRIBED, 0, mbxc_server_addr(c), 0, 0);
    return true;
  }
  for (size_t i = 0; i < n->n_folders; i++)
    mark_dirty(w, n->folders[i]->folder_id);
  if (n->has_hierarchy_changed && n->hierarchy_changed)
    w->dirty_hier = true;
  if (n->n_folders || (n->has_hierarchy_changed && n->hierarchy_changed))
    emit(w, MBXC_CACHE_EV_NOTIFIED, 0, "", 0, (uint32_t)n->n_folders);
  return true;
}

static void on_login(mbxc_conn *c, int status, const Mbx__Response *resp, void *arg)
{
  struct watch *w = arg;
  (void)resp;
  if (w->stopping)
    return;
  if (status < 0) {
    went_down(w, status, mbxc_last_error(c));
    return;
  }
  int rc = mbxc_subscribe(c, NULL, 0, true, on_notify, w);
  if (rc < 0)
    went_down(w, rc, "cannot subscribe");
}

static void on_connect(mbxc_conn *c, int status, void *arg)
{
  struct watch *w = arg;
  if (w->stopping)
    return;
  if (status < 0) {
    went_down(w, status, mbxc_last_error(c));
    return;
  }
  Mbx__Request req = MBX__REQUEST__INIT;
  Mbx__LoginReq login = MBX__LOGIN_REQ__INIT;
  req.body_case = MBX__REQUEST__BODY_LOGIN;
  req.login = &login;
  login.has_role = true;
  login.role = MBX__ROLE__ROLE_USER;
  login.user = (char *)mbxc_cache_user(w->s->c);
  login.password = w->s->password;
  int rc = mbxc_call(c, &req, on_login, w);
  if (rc < 0)
    went_down(w, rc, "cannot log in");
}

static void watch_connect(struct watch *w)
{
  w->state = W_CONNECTING;
  int rc = mbxc_connect(&w->loop, &w->s->o, on_connect, w, &w->sub);
  if (rc < 0) {
    w->sub = NULL;
    went_down(w, rc, mbxc_open_error());
  }
}

/* ======================================================================== */
/* passes                                                                   */
/* ======================================================================== */

static void pass_work(uv_work_t *req)
{
  struct watch *w = req->data;
  w->pass_rc = mbxc_cache_sync(w->s, w->pass_ids, w->pass_n, w->pass_flags, NULL);
}

static void pass_done(uv_work_t *req, int status)
{
  struct watch *w = req->data;
  (void)status;
  w->running = false;
  if (w->pass_rc && mbxc__sync_conn_failure(w->pass_rc)) {
    /* the notifications may still flow while the sync connections fail: try the
     * whole pass again after a pause */
    w->want_full = true;
    w->backoff_ms = w->backoff_ms ? w->backoff_ms * 2 : WATCH_BACKOFF_MIN_MS;
    if (w->backoff_ms > WATCH_BACKOFF_MAX_MS)
      w->backoff_ms = WATCH_BACKOFF_MAX_MS;
    w->retry_at_us = mbx_mono_us() + (uint64_t)w->backoff_ms * 1000;
  } else if (w->state == W_LIVE) {
    w->backoff_ms = 0;
  }
}

/* Whether queued changes are due for a push now. */
static bool push_due(struct watch *w, int64_t now_us)
{
  struct mbxc_cache_queue_info qi;
  if (mbxc_cache_queue_info(w->s->c, &qi) != 0 || qi.queued == 0)
    return false;
  if (qi.urgent > 0 && qi.urgent > qi.failing)
    return true;
  if (qi.oldest_new_us && now_us >= qi.oldest_new_us + w->push_delay_us)
    return true;
  return qi.next_retry_us && now_us >= qi.next_retry_us;
}

static void start_pass(struct watch *w)
{
  uint64_t mono = mbx_mono_us();
  if (w->running || w->state != W_LIVE || mono < w->retry_at_us)
    return;
  bool push = push_due(w, mbx_now_us());
  bool any = w->want_full || w->dirty_all || w->dirty_hier || w->ndirty;
  if (!any && !push)
    return;
  w->pass_flags = (w->want_full || w->dirty_all) ? MBXC_CACHE_SYNC_ALL : 0;
  if (!push && !w->want_full)
    w->pass_flags |= MBXC_CACHE_SYNC_NO_PUSH; /* the queue waits for its delay */
  memcpy(w->pass_ids, w->dirty, w->ndirty * sizeof(*w->dirty));
  w->pass_n = w->ndirty;
  w->ndirty = 0;
  w->dirty_all = w->dirty_hier = w->want_full = false;
  w->running = true;
  w->work.data = w;
  if (uv_queue_work(&w->loop, &w->work, pass_work, pass_done) != 0) {
    w->running = false;
    w->want_full = true;
  }
}

/* ======================================================================== */
/* the loop                                                                 */
/* ======================================================================== */

static void on_closed(uv_handle_t *h) { (void)h; }

static void on_tick(uv_timer_t *t)
{
  struct watch *w = t->data;
  uint64_t mono = mbx_mono_us();
  if (!w->stopping && ((w->o->should_stop && w->o->should_stop(w->o->stop_arg)) ||
                       (w->deadline_us && mono >= w->deadline_us))) {
    w->stopping = true;
    mbxc_close(&w->sub);
  }
  if (w->stopping) {
    if (!w->running && !w->closed) {
      w->closed = true;
      uv_timer_stop(&w->tick);
      uv_close((uv_handle_t *)&w->tick, on_closed);
    }
    return;
  }
  if (w->state == W_DOWN && mono >= w->retry_at_us)
    watch_connect(w);
  start_pass(w);
}

int mbxc_cache_watch(mbxc_cache_syncer *s, const struct mbxc_cache_watch_options *o)
{
  static const struct mbxc_cache_watch_options none = { .push_delay_s = -1 };
  struct watch *w = calloc(1, sizeof(*w));
  if (!w)
    return mbxc__cache_fail(MBX_ENOMEM, "out of memory");
  w->s = s;
  w->o = o ? o : &none;
  int64_t delay = w->o->push_delay_s;
  if (delay < 0) {
    char v[32];
    delay = mbxc_cache_setting_get(s->c, "push_delay_s", v, sizeof(v)) == 0
                ? strtoll(v, NULL, 10) : MBXC_CACHE_DEFAULT_PUSH_DELAY_S;
  }
  if (delay > MBXC_CACHE_PUSH_DELAY_MAX_S)
    delay = MBXC_CACHE_PUSH_DELAY_MAX_S;
  w->push_delay_us = delay * 1000000;
  if (w->o->timeout_s)
    w->deadline_us = mbx_mono_us() + (uint64_t)w->o->timeout_s * 1000000;
  if (uv_loop_init(&w->loop) != 0) {
    free(w);
    return mbxc__cache_fail(MBX_ENOMEM, "cannot create an event loop");
  }
  uv_timer_init(&w->loop, &w->tick);
  w->tick.data = w;
  uv_timer_start(&w->tick, on_tick, 0, WATCH_TICK_MS);
  watch_connect(w);
  /* bounded: the tick ends it at the deadline or when asked to stop */
  uv_run(&w->loop, UV_RUN_DEFAULT);
  mbxc_close(&w->sub);
  uv_run(&w->loop, UV_RUN_DEFAULT); /* the connection's close callbacks */
  int rc = uv_loop_close(&w->loop);
  free(w);
  return rc == 0 ? 0 : mbxc__cache_fail(MBX_EIO, "the watch loop did not wind down");
}

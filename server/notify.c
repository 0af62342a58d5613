/* notify.c — push notifications (notify.h): subscriptions kept per (database,
 * mailbox) in a hash table, changes published by durable writes merged into each
 * matching subscription's pending entries, and a flush timer that sends them once
 * their coalescing window is over (or the connection's queue has drained). A second,
 * slow timer sends keepalives and notices connections that went away.
 * Loop thread only. */
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "conn.h"
#include "log.h"
#include "mbx_error.h"
#include "node.h"
#include "notify.h"

#define NT_BUCKETS_MIN 64
#define NT_HELD_RETRY_MS 20     /* a held subscription looks at its queue again */
#define NT_TICK_MS 1000         /* keepalives, closed connections */

/* ==== state ================================================================== */

struct nt_pend {
  uint64_t folder_id, cn;
};

/* One open SubscribeReq. States: live (in the hash, the list and its connection's
 * list); due (also on the due list: something to send, or to end); ending (ends at
 * the next flush, with `ending_status`). */
struct mbx_notify_sub {
  struct mbx_notify_sub *hnext;       /* hash chain of (db, mailbox) */
  struct mbx_notify_sub *prev, *next; /* every subscription */
  struct mbx_notify_sub *cnext;       /* its connection's subscriptions */
  struct mbx_notify_sub *dnext;       /* due list */
  struct mbx_req *r;
  struct mbx_conn *conn;
  const struct mbx_db *db;
  uint64_t mailbox_id;
  const uint64_t *folders;            /* sorted, unique (in r's arena) */
  size_t n_folders;
  bool all_folders, hierarchy;
  /* pending: what changed since the last Notification */
  struct nt_pend *pend;
  size_t n_pend, cap_pend;
  bool pend_h;
  uint64_t pend_hcn;
  int64_t pend_commit_us;             /* durable time of the first pending change */
  bool due, ending;
  int ending_status;
  const char *ending_msg;
  uint64_t due_mono_us, last_send_mono_us;
};

struct mbx_notify {
  struct mbx_node *node;
  uv_timer_t flush_timer, tick_timer;
  int open_handles;
  uint64_t flush_at_mono_us;          /* the flush timer's deadline; 0 = not armed */
  struct mbx_notify_sub **buckets;
  size_t n_buckets;
  struct mbx_notify_sub *all;
  struct mbx_notify_sub *due_head;
  struct mbx_notify_stats stats;
};

static size_t nt_hash(const struct mbx_notify *nt, const struct mbx_db *db, uint64_t mailbox_id)
{
  uint64_t h = (mailbox_id ^ ((uint64_t)(uintptr_t)db >> 4)) * 0x9e3779b97f4a7c15ull;
  return (size_t)(h >> 32) & (nt->n_buckets - 1);
}

static uint64_t nt_coalesce_us(const struct mbx_notify *nt)
{
  return nt->node->conf->notify_coalesce_ms * 1000;
}

/* Keepalive period: within 25 s, and well within the node's idle timeout so that a
 * quiet subscription never looks idle. */
static uint64_t nt_keepalive_us(const struct mbx_notify *nt)
{
  uint64_t ka = (uint64_t)MBX_NOTIFY_KEEPALIVE_MS * 1000;
  uint64_t idle = nt->node->conf->idle_timeout_s * 1000000;
  if (idle && idle / 3 < ka)
    ka = idle / 3 ? idle / 3 : 1000;
  return ka;
}

static bool nt_held(const struct mbx_notify_sub *sub)
{
  const struct mbx_stream *st = sub->conn->stream;
  return st && mbx_stream_write_queue_bytes(st) > MBX_NOTIFY_QUEUE_BYTES_MAX;
}

/* ==== the flush timer ========================================================= */

static void nt_on_flush(uv_timer_t *t);

static void nt_arm(struct mbx_notify *nt, uint64_t at_mono_us)
{
  if (nt->open_handles < 2)
    return;                           /* stopping */
  if (nt->flush_at_mono_us && nt->flush_at_mono_us <= at_mono_us)
    return;
  uint64_t now = mbx_mono_us();
  uint64_t ms = at_mono_us > now ? (at_mono_us - now + 999) / 1000 : 0;
  nt->flush_at_mono_us = at_mono_us ? at_mono_us : 1;
  uv_timer_start(&nt->flush_timer, nt_on_flush, ms, 0);
}

/* Puts sub on the due list (if not there) to be looked at by at_mono_us. */
static void nt_schedule(struct mbx_notify *nt, struct mbx_notify_sub *sub, uint64_t at_mono_us)
{
  if (!sub->due) {
    sub->due = true;
    sub->due_mono_us = at_mono_us;
    sub->dnext = nt->due_head;
    nt->due_head = sub;
  } else if (at_mono_us < sub->due_mono_us) {
    sub->due_mono_us = at_mono_us;
  }
  nt_arm(nt, sub->due_mono_us);
}

/* Ends sub at the next flush (never from inside a walk of the lists). */
static void nt_doom(struct mbx_notify *nt, struct mbx_notify_sub *sub, int status, const char *msg)
{
  if (sub->ending)
    return;
  sub->ending = true;
  sub->ending_status = status;
  sub->ending_msg = msg;
  nt_schedule(nt, sub, 0);
}

/* ==== ending a subscription ====================================================== */

static void nt_unlink(struct mbx_notify *nt, struct mbx_notify_sub *sub)
{
  struct mbx_notify_sub **pp = &nt->buckets[nt_hash(nt, sub->db, sub->mailbox_id)];
  while (*pp && *pp != sub)
    pp = &(*pp)->hnext;
  if (*pp)
    *pp = sub->hnext;
  if (sub->prev)
    sub->prev->next = sub->next;
  else
    nt->all = sub->next;
  if (sub->next)
    sub->next->prev = sub->prev;
  for (pp = &sub->conn->subs; *pp; pp = &(*pp)->cnext) {
    if (*pp == sub) {
      *pp = sub->cnext;
      sub->conn->n_subs--;
      break;
    }
  }
  if (sub->due) {
    for (pp = &nt->due_head; *pp; pp = &(*pp)->dnext) {
      if (*pp == sub) {
        *pp = sub->dnext;
        break;
      }
    }
    sub->due = false;
  }
  nt->stats.subscriptions--;
}

/* Answers the subscription's request with status (0: nothing more to say, used when
 * the connection is gone) and frees it. */
static void nt_end(struct mbx_notify *nt, struct mbx_notify_sub *sub, int status, const char *msg)
{
  nt_unlink(nt, sub);
  struct mbx_req *r = sub->r;
  r->status = status;
  if (status < 0 && msg)
    r->errmsg = mbx_arena_strdup(&r->arena, msg);
  r->resp.body_case = MBX__RESPONSE__BODY__NOT_SET;
  free(sub->pend);
  free(sub);
  mbx_req_finish(r);
}

/* ==== sending ====================================================================== */

/* Sends what is pending as one Notification (none: a keepalive). 0, or the send's
 * error (the subscription must end). */
static int nt_send(struct mbx_notify *nt, struct mbx_notify_sub *sub)
{
  Mbx__Notification no = MBX__NOTIFICATION__INIT;
  Mbx__FolderChanged *fc = NULL, **fp = NULL;
  if (sub->n_pend) {
    fc = malloc(sub->n_pend * sizeof(*fc));
    fp = malloc(sub->n_pend * sizeof(*fp));
    if (!fc || !fp) {
      free(fc);
      free(fp);
      return MBX_ENOMEM;
    }
    for (size_t i = 0; i < sub->n_pend; i++) {
      mbx__folder_changed__init(&fc[i]);
      fc[i].folder_id = sub->pend[i].folder_id;
      fc[i].has_last_cn = 1;
      fc[i].last_cn = sub->pend[i].cn;
      fp[i] = &fc[i];
    }
    no.folders = fp;
    no.n_folders = sub->n_pend;
  }
  if (sub->pend_h) {
    no.has_hierarchy_changed = no.has_hcn = 1;
    no.hierarchy_changed = 1;
    no.hcn = sub->pend_hcn;
  }
  bool keepalive = !sub->n_pend && !sub->pend_h;
  if (!keepalive && sub->pend_commit_us) {
    no.has_commit_time_us = 1;
    no.commit_time_us = sub->pend_commit_us;
  }
  Mbx__Response resp = MBX__RESPONSE__INIT;
  resp.body_case = MBX__RESPONSE__BODY_NOTIFICATION;
  resp.notification = &no;
  int rc = mbx_req_send(sub->r, &resp);   /* packed (copied) before it returns */
  free(fc);
  free(fp);
  if (rc < 0)
    return rc;
  sub->n_pend = 0;
  sub->pend_h = false;
  sub->pend_commit_us = 0;
  sub->last_send_mono_us = mbx_mono_us();
  if (keepalive)
    nt->stats.keepalives++;
  else
    nt->stats.sent++;
  return 0;
}

/* One due subscription: end it, send its changes, or keep it for later. */
static void nt_flush_one(struct mbx_notify *nt, struct mbx_notify_sub *sub, uint64_t now)
{
  if (sub->ending) {
    nt_end(nt, sub, sub->ending_status, sub->ending_msg);
    return;
  }
  if (!mbx_req_open(sub->r)) {
    nt_end(nt, sub, 0, NULL);
    return;
  }
  if (!sub->n_pend && !sub->pend_h)
    return;
  if (sub->due_mono_us > now) {
    nt_schedule(nt, sub, sub->due_mono_us);
    return;
  }
  if (nt_held(sub)) {
    /* A slow reader: its changes keep merging until the queue drains. */
    nt->stats.held++;
    nt_schedule(nt, sub, now + NT_HELD_RETRY_MS * 1000);
    return;
  }
  int rc = nt_send(nt, sub);
  if (rc < 0)
    nt_end(nt, sub, rc == MBX_ECLOSED ? 0 : rc, "cannot send a notification: closing");
}

static void nt_on_flush(uv_timer_t *t)
{
  struct mbx_notify *nt = t->data;
  nt->flush_at_mono_us = 0;
  struct mbx_notify_sub *list = nt->due_head;
  nt->due_head = NULL;
  /* Taken off the list first: what is not done now goes back through nt_schedule. */
  for (struct mbx_notify_sub *s = list; s; s = s->dnext)
    s->due = false;
  uint64_t now = mbx_mono_us();
  while (list) {
    struct mbx_notify_sub *sub = list;
    list = sub->dnext;
    nt_flush_one(nt, sub, now);
  }
}

/* ==== keepalives ======================================================================= */

static void nt_on_tick(uv_timer_t *t)
{
  struct mbx_notify *nt = t->data;
  uint64_t now = mbx_mono_us(), ka = nt_keepalive_us(nt);
  for (struct mbx_notify_sub *sub = nt->all; sub; sub = sub->next) {
    if (sub->ending)
      continue;
    if (!mbx_req_open(sub->r)) {
      nt_doom(nt, sub, 0, NULL);
      continue;
    }
    if (sub->due || now - sub->last_send_mono_us < ka || nt_held(sub))
      continue;
    int rc = nt_send(nt, sub);
    if (rc < 0)
      nt_doom(nt, sub, rc == MBX_ECLOSED ? 0 : rc, "cannot send a keepalive: closing");
  }
}

/* ==== publishing ========================================================================= */

/* Merges one change into sub's pending entries. Returns true if sub wants it. */
static bool nt_merge(struct mbx_notify *nt, struct mbx_notify_sub *sub,
                     const struct mbx_store_change *ch, int64_t durable_us)
{
  if (ch->folder_id == 0) {
    if (!sub->hierarchy)
      return false;
    if (!sub->pend_h || ch->cn > sub->pend_hcn)
      sub->pend_hcn = ch->cn;
    sub->pend_h = true;
  } else {
    if (!sub->all_folders) {
      size_t lo = 0, hi = sub->n_folders;
      while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (sub->folders[mid] < ch->folder_id)
          lo = mid + 1;
        else
          hi = mid;
      }
      if (lo == sub->n_folders || sub->folders[lo] != ch->folder_id)
        return false;
    }
    size_t i = 0;
    while (i < sub->n_pend && sub->pend[i].folder_id != ch->folder_id)
      i++;
    if (i < sub->n_pend) {
      if (ch->cn > sub->pend[i].cn)
        sub->pend[i].cn = ch->cn;
    } else {
      if (sub->n_pend == MBX_NOTIFY_PENDING_MAX) {
        /* Full: what is pending goes now if the connection takes it. Otherwise more
         * folders changed than one subscription may hold while its reader is slow: it
         * ends, and the client subscribes again and syncs (nothing is lost). */
        int rc = nt_held(sub) ? MBX_ELIMIT : nt_send(nt, sub);
        if (rc < 0) {
          nt_doom(nt, sub, rc == MBX_ECLOSED ? 0 : rc,
                  "too many changes pending for a slow connection: subscribe again and sync");
          return false;
        }
      }
      if (sub->n_pend == sub->cap_pend) {
        size_t cap = sub->cap_pend ? 2 * sub->cap_pend : 4;
        if (cap > MBX_NOTIFY_PENDING_MAX)
          cap = MBX_NOTIFY_PENDING_MAX;
        struct nt_pend *p = realloc(sub->pend, cap * sizeof(*p));
        if (!p) {
          nt_doom(nt, sub, MBX_ENOMEM, "node out of memory: subscribe again and sync");
          return false;
        }
        sub->pend = p;
        sub->cap_pend = cap;
      }
      sub->pend[sub->n_pend++] = (struct nt_pend){ch->folder_id, ch->cn};
    }
  }
  if (!sub->pend_commit_us)
    sub->pend_commit_us = durable_us;
  return true;
}

void mbx_notify_publish(struct mbx_node *n, const struct mbx_db *db,
                        const struct mbx_store_change *v, size_t count, int64_t durable_us)
{
  struct mbx_notify *nt = n->notify;
  if (!nt || !nt->all)
    return;
  if (!durable_us)
    durable_us = mbx_now_us();
  uint64_t due = mbx_mono_us() + nt_coalesce_us(nt);
  for (size_t i = 0; i < count; i++) {
    /* Consecutive changes of one mailbox share the chain walk's outcome anyway. */
    for (struct mbx_notify_sub *sub = nt->buckets[nt_hash(nt, db, v[i].mailbox_id)]; sub;
         sub = sub->hnext) {
      if (sub->db != db || sub->mailbox_id != v[i].mailbox_id || sub->ending)
        continue;
      if (nt_merge(nt, sub, &v[i], durable_us))
        nt_schedule(nt, sub, due);
    }
  }
}

/* ==== subscribing ========================================================================= */

static int nt_fail(struct mbx_req *r, int code, const char *msg)
{
  r->status = code;
  r->errmsg = msg;
  return code;
}

static int nt_cmp_u64(const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static void nt_grow(struct mbx_notify *nt)
{
  size_t nb = nt->n_buckets * 2;
  struct mbx_notify_sub **b = calloc(nb, sizeof(*b));
  if (!b)
    return;                           /* longer chains, still correct */
  struct mbx_notify_sub **old = nt->buckets;
  size_t on = nt->n_buckets;
  nt->buckets = b;
  nt->n_buckets = nb;
  for (size_t i = 0; i < on; i++) {
    for (struct mbx_notify_sub *s = old[i], *next; s; s = next) {
      next = s->hnext;
      size_t h = nt_hash(nt, s->db, s->mailbox_id);
      s->hnext = b[h];
      b[h] = s;
    }
  }
  free(old);
}

static void nt_link(struct mbx_notify *nt, struct mbx_notify_sub *sub)
{
  if (nt->stats.subscriptions + 1 > 2 * nt->n_buckets)
    nt_grow(nt);
  size_t h = nt_hash(nt, sub->db, sub->mailbox_id);
  sub->hnext = nt->buckets[h];
  nt->buckets[h] = sub;
  sub->next = nt->all;
  if (nt->all)
    nt->all->prev = sub;
  nt->all = sub;
  sub->cnext = sub->conn->subs;
  sub->conn->subs = sub;
  sub->conn->n_subs++;
  nt->stats.subscriptions++;
}

/* The subscribed folders, sorted and unique, in r's arena. */
static int nt_folder_set(struct mbx_req *r, const Mbx__SubscribeReq *q, uint64_t **ids_r,
                         size_t *n_r)
{
  *ids_r = NULL;
  *n_r = 0;
  if (!q->n_folder_ids)
    return 0;
  uint64_t *ids = mbx_arena_memdup(&r->arena, q->folder_ids, q->n_folder_ids * sizeof(*ids));
  if (!ids)
    return MBX_ENOMEM;
  qsort(ids, q->n_folder_ids, sizeof(*ids), nt_cmp_u64);
  size_t n = 0;
  for (size_t i = 0; i < q->n_folder_ids; i++)
    if (n == 0 || ids[n - 1] != ids[i])
      ids[n++] = ids[i];
  *ids_r = ids;
  *n_r = n;
  return 0;
}

/* The `subscribed` Notification: the folders' last_cn now (every folder of the
 * mailbox for an all-folder subscription) and the hierarchy's hcn. One short read. */
static int nt_first(struct mbx_req *r, struct mbx_notify_sub *sub, Mbx__Notification *no)
{
  struct mbx_rtxn *t;
  int rc = mbx_store_rtxn_begin(r->db->store, &t);
  if (rc < 0)
    return nt_fail(r, rc, "cannot read the mailbox");
  Mbx__Folder **all = NULL;
  size_t n = 0;
  if (sub->all_folders)
    rc = mbx_store_list_folders(t, sub->mailbox_id, &r->arena, &all, &n);
  else
    n = sub->n_folders;
  Mbx__FolderChanged **fp = rc == 0 ? mbx_arena_zalloc(&r->arena, (n + 1) * sizeof(*fp)) : NULL;
  if (rc == 0 && !fp)
    rc = MBX_ENOMEM;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    Mbx__Folder *f = NULL;
    if (all)
      f = all[i];
    else if ((rc = mbx_store_get_folder(t, sub->mailbox_id, sub->folders[i], &r->arena, &f)) < 0) {
      if (rc == MBX_ENOTFOUND)
        r->errmsg = mbx_arena_printf(&r->arena, "folder %llu not found",
                                     (unsigned long long)sub->folders[i]);
      break;
    }
    if (!(fp[i] = mbx_arena_pbnew(&r->arena, &mbx__folder_changed__descriptor))) {
      rc = MBX_ENOMEM;
      break;
    }
    fp[i]->folder_id = f->id;
    fp[i]->has_last_cn = 1;
    fp[i]->last_cn = f->last_cn;
  }
  Mbx__Mailbox *mb = NULL;
  if (rc == 0 && sub->hierarchy &&
      (rc = mbx_store_get_mailbox(t, sub->mailbox_id, &r->arena, &mb)) == 0) {
    no->has_hcn = 1;
    no->hcn = mb->last_hcn;
  }
  mbx_store_rtxn_end(&t);
  if (rc < 0)
    return nt_fail(r, rc, r->errmsg ? r->errmsg : mbx_strerror(rc));
  no->has_subscribed = 1;
  no->subscribed = 1;
  no->folders = fp;
  no->n_folders = n;
  return 0;
}

int mbx_notify_subscribe(struct mbx_req *r)
{
  struct mbx_conn *c = r->conn;
  struct mbx_node *n = c->node;
  struct mbx_notify *nt = n->notify;
  const Mbx__SubscribeReq *q = r->rq->subscribe;
  if (!nt || !r->db || !r->db->store)
    return nt_fail(r, MBX_ESHUTDOWN, "notifications are not available (node shutting down)");
  if (c->n_subs >= n->conf->max_subscriptions_per_conn)
    return nt_fail(r, MBX_ELIMIT,
                   mbx_arena_printf(&r->arena, "at most %llu subscriptions per connection",
                                    (unsigned long long)n->conf->max_subscriptions_per_conn));
  if (q->n_folder_ids > MBX_NOTIFY_FOLDERS_MAX)
    return nt_fail(r, MBX_ELIMIT,
                   mbx_arena_printf(&r->arena, "at most %d folders per subscription (%zu given)",
                                    MBX_NOTIFY_FOLDERS_MAX, q->n_folder_ids));
  struct mbx_notify_sub *sub = calloc(1, sizeof(*sub));
  if (!sub)
    return nt_fail(r, MBX_ENOMEM, "node out of memory");
  sub->r = r;
  sub->conn = c;
  sub->db = r->db;
  sub->mailbox_id = r->mailbox_id;
  sub->hierarchy = q->has_hierarchy && q->hierarchy;
  sub->all_folders = (q->has_all_folders && q->all_folders) ||
                     (q->n_folder_ids == 0 && !sub->hierarchy);
  uint64_t *ids;
  int rc = nt_folder_set(r, q, &ids, &sub->n_folders);
  sub->folders = ids;
  Mbx__Notification no = MBX__NOTIFICATION__INIT;
  if (rc < 0 || (rc = nt_first(r, sub, &no)) < 0) {
    free(sub);
    return rc == MBX_ENOMEM ? nt_fail(r, rc, "node out of memory") : rc;
  }
  Mbx__Response resp = MBX__RESPONSE__INIT;
  resp.body_case = MBX__RESPONSE__BODY_NOTIFICATION;
  resp.notification = &no;
  if ((rc = mbx_req_send(r, &resp)) < 0) {
    free(sub);
    return nt_fail(r, rc, "cannot send the subscription's first answer");
  }
  sub->last_send_mono_us = mbx_mono_us();
  nt_link(nt, sub);
  mbx_debug("client %s: subscribed to %s%s of mailbox %llu (%zu on this connection)", c->peer,
            sub->all_folders ? "every folder" : sub->n_folders ? "folders" : "",
            sub->hierarchy ? (sub->n_folders ? " and the hierarchy" : "the hierarchy") : "",
            (unsigned long long)sub->mailbox_id, (size_t)c->n_subs);
  return MBX_REQ_PENDING;
}

/* ==== lifetime ================================================================================ */

void mbx_notify_conn_closed(struct mbx_conn *c)
{
  struct mbx_notify *nt = c->node->notify;
  if (!nt)
    return;
  while (c->subs)
    nt_end(nt, c->subs, 0, NULL);
}

void mbx_notify_db_inactive(struct mbx_node *n, const struct mbx_db *db)
{
  struct mbx_notify *nt = n->notify;
  if (!nt)
    return;
  for (struct mbx_notify_sub *sub = nt->all; sub; sub = sub->next)
    if (sub->db == db)
      nt_doom(nt, sub, MBX_ENOTACTIVE, "this copy of the database is no longer active");
}

void mbx_notify_get_stats(const struct mbx_node *n, struct mbx_notify_stats *st)
{
  memset(st, 0, sizeof(*st));
  if (n->notify)
    *st = n->notify->stats;
}

static void nt_handle_closed(uv_handle_t *h)
{
  struct mbx_notify *nt = h->data;
  if (--nt->open_handles == 0) {
    free(nt->buckets);
    free(nt);
  }
}

int mbx_notify_start(struct mbx_node *n)
{
  struct mbx_notify *nt = calloc(1, sizeof(*nt));
  if (!nt || !(nt->buckets = calloc(NT_BUCKETS_MIN, sizeof(*nt->buckets)))) {
    free(nt);
    return MBX_ENOMEM;
  }
  nt->node = n;
  nt->n_buckets = NT_BUCKETS_MIN;
  uv_timer_init(n->loop, &nt->flush_timer);
  uv_timer_init(n->loop, &nt->tick_timer);
  nt->flush_timer.data = nt->tick_timer.data = nt;
  nt->open_handles = 2;
  uv_timer_start(&nt->tick_timer, nt_on_tick, NT_TICK_MS, NT_TICK_MS);
  n->notify = nt;
  return 0;
}

void mbx_notify_stop(struct mbx_node *n)
{
  struct mbx_notify *nt = n->notify;
  if (!nt)
    return;
  while (nt->all)
    nt_end(nt, nt->all, MBX_ESHUTDOWN, "the node is shutting down: subscribe again later");
  n->notify = NULL;
  uv_timer_stop(&nt->flush_timer);
  uv_timer_stop(&nt->tick_timer);
  uv_close((uv_handle_t *)&nt->flush_timer, nt_handle_closed);
  uv_close((uv_handle_t *)&nt->tick_timer, nt_handle_closed);
}

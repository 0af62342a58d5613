/* db_probe.c — before a copy that believes it is active takes a write after a
 * (re)start, it asks the other copies in its layout where they are. A copy never
 * trusts its own position alone: a restored backup or a rolled-back disk is older
 * than its passives, and an old active coming back may have been replaced.
 *
 *   - a copy that is active in a newer epoch, or follows another node in one: this
 *     copy follows that active (the pull handshake then says whether its history
 *     diverged, and a Diverged copy is reseeded);
 *   - a passive that follows this copy but holds more of its log (this copy was
 *     restored from an older state): the most advanced such copy is activated in a
 *     new epoch and this copy follows it, so no write any copy holds is lost;
 *   - fewer than a majority of the layout's copies (this one included) answer: the
 *     copy stays DISMOUNTED, says why, and asks again every DB_PROBE_RETRY_MS.
 * Otherwise the copy becomes ACTIVE. Loop thread only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_probe.h"
#include "log.h"
#include "mbx_error.h"
#include "node.h"
#include "peer.h"

#define DB_PROBE_TIMEOUT_MS 1500
#define DB_PROBE_RETRY_MS 1000
#define DB_PROBE_PEERS_MAX 16

struct db_probe {
  struct mbx_node *n;
  struct mbx_db *db;
  uint32_t copies;                    /* in the layout, this one included */
  uint32_t asked, answered, pending;
  uint64_t my_epoch, my_last;
  char follow[64];                    /* a newer active to follow */
  uint64_t follow_epoch;
  char ahead[64];                     /* the most advanced passive of ours */
  uint64_t ahead_lsn, ahead_epoch;
  char why[400];
  uv_timer_t timer;                   /* retries while too few copies answer */
  bool timer_open;
};

static void probe_decide(struct db_probe *p);

static void probe_answer(struct db_probe *p, const char *peer, const Mbx__CopyStatusResp *cr)
{
  for (size_t i = 0; cr && i < cr->n_copies; i++) {
    const Mbx__CopyStatus *c = cr->copies[i];
    if (strcmp(c->node, peer) != 0 || strcmp(c->db, p->db->name) != 0)
      continue;
    const char *me = p->n->conf->node_name;
    bool active = c->role && strcmp(c->role, "active") == 0;
    const char *follows = active ? peer : c->active_node;
    if (follows && *follows && strcmp(follows, me) != 0 && c->epoch >= p->my_epoch &&
        (active || c->epoch > p->my_epoch || c->received_lsn > p->my_last)) {
      /* another node is (or was made) the active of a history at least as new */
      if (!p->follow[0] || c->epoch > p->follow_epoch) {
        snprintf(p->follow, sizeof(p->follow), "%s", follows);
        p->follow_epoch = c->epoch;
      }
    } else if (!active && c->received_lsn > p->my_last && c->received_lsn > p->ahead_lsn) {
      snprintf(p->ahead, sizeof(p->ahead), "%s", peer);
      p->ahead_lsn = c->received_lsn;
      p->ahead_epoch = c->epoch;
    }
  }
}

struct probe_ask {
  struct db_probe *p;
  char peer[64];
};

static void probe_done(int status, const Mbx__Response *resp, void *arg)
{
  struct probe_ask *a = arg;
  struct db_probe *p = a->p;
  if (status == 0 && resp && resp->copy_status) {
    p->answered++;
    probe_answer(p, a->peer, resp->copy_status);
  }
  free(a);
  if (--p->pending == 0)
    probe_decide(p);
}

/* Asks every other copy in the layout; decides once all have answered or failed. */
static int probe_start(struct db_probe *p)
{
  struct mbx_db *db = p->db;
  struct mbx_arena a;
  mbx_arena_init(&a, 0);
  struct mbx_rtxn *t;
  Mbx__CopyLayout *l = NULL;
  int rc = mbx_store_rtxn_begin(db->store, &t);
  if (rc == 0) {
    rc = mbx_store_get_copies(t, &a, &l);
    mbx_store_rtxn_end(&t);
  }
  if (rc < 0) {
    mbx_arena_reset(&a);
    return rc;
  }
  p->my_epoch = mbx_store_epoch(db->store);
  p->my_last = mbx_store_last_lsn(db->store);
  p->copies = 1;
  p->asked = p->answered = 0;
  p->pending = 1;                     /* held until every peer is asked */
  p->follow[0] = p->ahead[0] = 0;
  p->follow_epoch = p->ahead_lsn = p->ahead_epoch = 0;
  Mbx__CopyStatusReq q = MBX__COPY_STATUS_REQ__INIT;
  q.db = db->name;
  Mbx__Request req = MBX__REQUEST__INIT;
  req.body_case = MBX__REQUEST__BODY_COPY_STATUS;
  req.copy_status = &q;
  for (size_t i = 0; i < l->n_copies && p->asked < DB_PROBE_PEERS_MAX; i++) {
    const char *peer = l->copies[i]->node;
    if (strcmp(peer, p->n->conf->node_name) == 0)
      continue;
    p->copies++;
    struct probe_ask *ask = calloc(1, sizeof(*ask));
    if (!ask)
      continue;
    ask->p = p;
    snprintf(ask->peer, sizeof(ask->peer), "%s", peer);
    p->pending++;
    p->asked++;
    if (mbx_peer_call(p->n, peer, &req, DB_PROBE_TIMEOUT_MS, probe_done, ask) < 0) {
      p->pending--;
      free(ask);
    }
  }
  mbx_arena_reset(&a);
  if (--p->pending == 0)
    probe_decide(p);
  return 0;
}

static void probe_timer_closed(uv_handle_t *h)
{
  free(h->data);
}

static void probe_end(struct db_probe *p)
{
  p->db->probe = NULL;
  if (p->timer_open) {
    uv_timer_stop(&p->timer);
    p->timer.data = p;
    uv_close((uv_handle_t *)&p->timer, probe_timer_closed);
  } else {
    free(p);
  }
}

static void probe_retry_cb(uv_timer_t *t)
{
  struct db_probe *p = t->data;
  if (p->n->stopping || mbx_db_state(p->db) != MBX_DB_DISMOUNTED) {
    probe_end(p);
    return;
  }
  if (probe_start(p) < 0)
    uv_timer_start(t, probe_retry_cb, DB_PROBE_RETRY_MS, 0);
}

static void probe_decide(struct db_probe *p)
{
  struct mbx_db *db = p->db;
  struct mbx_node *n = p->n;
  if (n->stopping || !db->store) {
    probe_end(p);
    return;
  }
  uint32_t have = 1 + p->answered, need = p->copies / 2 + 1;
  if (p->follow[0]) {
    mbx_notice("db %s: %s is active in epoch %llu (this copy: epoch %llu, lsn %llu): this copy "
               "follows it", db->name, p->follow, (unsigned long long)p->follow_epoch,
               (unsigned long long)p->my_epoch, (unsigned long long)p->my_last);
    char follow[64];
    uint64_t epoch = p->follow_epoch;
    snprintf(follow, sizeof(follow), "%s", p->follow);
    probe_end(p);
    mbx_db_probed(n, db, MBX_DB_PROBE_FOLLOW, follow, epoch, 0);
    return;
  }
  if (have < need) {
    snprintf(p->why, sizeof(p->why),
             "waiting for the other copies: %u of %u copies answered, %u needed to know that "
             "no copy holds a newer history (start them, or 'mbx admin db activate %s --node "
             "%s --force')", have, p->copies, need, db->name, p->n->conf->node_name);
    mbx_db_probed(n, db, MBX_DB_PROBE_WAIT, p->why, 0, 0);
    if (!p->timer_open) {
      if (uv_timer_init(n->loop, &p->timer) != 0) {
        probe_end(p);
        return;
      }
      p->timer_open = true;
    }
    p->timer.data = p;
    uv_timer_start(&p->timer, probe_retry_cb, DB_PROBE_RETRY_MS, 0);
    return;
  }
  if (p->ahead[0]) {
    mbx_warning("db %s: this copy is behind its passive on %s (lsn %llu < %llu: restored from "
                "an older state?): %s takes over in a new epoch and this copy catches up from it",
                db->name, p->ahead, (unsigned long long)p->my_last,
                (unsigned long long)p->ahead_lsn, p->ahead);
    char ahead[64];
    snprintf(ahead, sizeof(ahead), "%s", p->ahead);
    uint64_t lsn = p->ahead_lsn, epoch = (p->ahead_epoch > p->my_epoch ? p->ahead_epoch
                                                                      : p->my_epoch) + 1;
    probe_end(p);
    mbx_db_probed(n, db, MBX_DB_PROBE_HAND_OVER, ahead, epoch, lsn);
    return;
  }
  probe_end(p);
  mbx_db_probed(n, db, MBX_DB_PROBE_ACTIVE, NULL, 0, 0);
}

int mbx_db_probe(struct mbx_node *n, struct mbx_db *db)
{
  if (db->probe)
    return 0;                         /* one at a time */
  struct db_probe *p = calloc(1, sizeof(*p));
  if (!p)
    return MBX_ENOMEM;
  p->n = n;
  p->db = db;
  db->probe = p;
  int rc = probe_start(p);
  if (rc < 0) {
    db->probe = NULL;
    free(p);
  }
  return rc;
}

bool mbx_db_has_peers(struct mbx_db *db)
{
  struct mbx_arena a;
  mbx_arena_init(&a, 0);
  struct mbx_rtxn *t;
  Mbx__CopyLayout *l = NULL;
  bool peers = false;
  if (mbx_store_rtxn_begin(db->store, &t) == 0) {
    if (mbx_store_get_copies(t, &a, &l) == 0)
      peers = l->n_copies > 1;
    mbx_store_rtxn_end(&t);
  }
  mbx_arena_reset(&a);
  return peers;
}

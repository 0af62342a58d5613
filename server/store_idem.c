/* store_idem.c — idempotency keys (Request.idempotency_key): the lookup a keyed write
 * makes in its own unit, and the OpIdemKey that records the key and its reply through
 * the log. The apply half (and the pruning of expired keys) is in store_apply.c, so
 * a passive replaying the log ends up with the same keys as the active. */
#include <string.h>

#include "clock.h"
#include "log.h"
#include "mbx_error.h"
#include "store_internal.h"

#define IDEM_REPLY_MAX (1u << 20) /* a reply recorded with a key (the log carries it) */

size_t mbx__idem_key(uint8_t *k, uint64_t scope_id, uint32_t scope_kind, const uint8_t *key,
                     size_t key_len)
{
  mbx_put_be64(k, scope_id);
  k[8] = (uint8_t)scope_kind;
  memcpy(k + 9, key, key_len);
  return 9 + key_len;
}

static bool idem_key_ok(const uint8_t *key, size_t key_len)
{
  return key && key_len >= 1 && key_len <= MBX_STORE_IDEM_KEY_MAX;
}

/* Looks (scope, key) up in t; the reply is copied into a (protobuf-c unpacks bytes
 * fields into its allocator). */
static int idem_lookup(struct mbx_store *s, MDB_txn *t, uint64_t scope_id, uint32_t scope_kind,
                       const uint8_t *key, size_t key_len, struct mbx_arena *a,
                       struct mbx_store_idem *rec)
{
  if (!idem_key_ok(key, key_len) || scope_kind > 255 || !a)
    return MBX_EINVAL;
  uint8_t k[9 + MBX_STORE_IDEM_KEY_MAX];
  size_t klen = mbx__idem_key(k, scope_id, scope_kind, key, key_len);
  MDB_val kv = mbx__val(k, klen), v;
  int rc = mdb_get(t, s->dbi[MBX__DB_IDEM], &kv, &v);
  if (rc)
    return mbx__store_mdb_err(s, rc, "get idem");
  Mbx__IdemRecord *ir = mbx__idem_record__unpack(&a->pb, v.mv_size, (const uint8_t *)v.mv_data);
  if (!ir) {
    mbx_error("store %s: idempotency record of mailbox %llu does not unpack", s->name,
              (unsigned long long)scope_id);
    return MBX_ECORRUPT;
  }
  rec->time_us = ir->time_us;
  rec->status = ir->status;
  rec->request = ir->request;
  rec->reply = ir->has_reply ? ir->reply.data : NULL;
  rec->reply_len = ir->has_reply ? ir->reply.len : 0;
  return 0;
}

int mbx_store_idem_get(struct mbx_wtxn *w, uint64_t scope_id, uint32_t scope_kind,
                       const uint8_t *key, size_t key_len, struct mbx_arena *a,
                       struct mbx_store_idem *rec)
{
  if (w->failed)
    return w->failed;
  return idem_lookup(w->s, w->txn, scope_id, scope_kind, key, key_len, a, rec);
}

int mbx_store_idem_lookup(struct mbx_rtxn *r, uint64_t scope_id, uint32_t scope_kind,
                          const uint8_t *key, size_t key_len, struct mbx_arena *a,
                          struct mbx_store_idem *rec)
{
  return idem_lookup(r->s, r->txn, scope_id, scope_kind, key, key_len, a, rec);
}

int mbx_store_idem_count(struct mbx_rtxn *r, uint64_t *n_r)
{
  MDB_stat st;
  int rc = mdb_stat(r->txn, r->s->dbi[MBX__DB_IDEM], &st);
  if (rc)
    return mbx__store_mdb_err(r->s, rc, "stat idem");
  *n_r = st.ms_entries;
  return 0;
}

int mbx_store_idem_put(struct mbx_wtxn *w, uint64_t scope_id, uint32_t scope_kind,
                       const uint8_t *key, size_t key_len, uint32_t request,
                       const uint8_t *reply, size_t reply_len)
{
  if (w->failed)
    return w->failed;
  if (!idem_key_ok(key, key_len) || scope_kind > 255 || reply_len > IDEM_REPLY_MAX ||
      (!reply && reply_len))
    return MBX_EINVAL;
  int64_t now = mbx_now_us();
  Mbx__IdemRecord rec = MBX__IDEM_RECORD__INIT;
  rec.time_us = now;
  rec.has_status = rec.has_request = true;
  rec.status = 0;
  rec.request = request;
  rec.has_reply = reply_len > 0;
  rec.reply.data = (uint8_t *)reply;
  rec.reply.len = reply_len;
  Mbx__OpIdemKey ik = MBX__OP_IDEM_KEY__INIT;
  ik.scope_id = scope_id;
  ik.has_scope_kind = true;
  ik.scope_kind = scope_kind;
  ik.key.data = (uint8_t *)key;
  ik.key.len = key_len;
  ik.record = &rec;
  ik.has_prune_before_us = true;
  ik.prune_before_us = now - (int64_t)(w->s->opt.idem_keep_s * 1000000ull);
  Mbx__Op op = MBX__OP__INIT;
  op.op_case = MBX__OP__OP_IDEM_KEY;
  op.idem_key = &ik;
  return mbx__store_emit(w, &op);
}

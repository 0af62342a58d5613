/* store.c — the store's write side: opening the LMDB environment, write
 * transactions and units (nested txns), the commit that appends the log record,
 * and the *prepare* half of every write operation (validate, decide ids and change
 * numbers, emit ops). The apply half is in store_apply.c, reads in store_read.c,
 * sync in store_sync.c. */
#include <errno.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "clock.h"
#include "kinds.h"
#include "log.h"
#include "logrec.h"
#include "mbx_error.h"
#include "rfc5322.h"
#include "body.h"
#include "store_internal.h"

#define STORE_DEFAULT_MAP_BYTES         (64ull << 30)
#define STORE_DEFAULT_MAX_MESSAGE_BYTES (35ull << 20)
#define STORE_DEFAULT_LOG_RETAIN_BYTES  (1ull << 30)
#define STORE_DEFAULT_IDEM_KEEP_S       604800 /* 7 days */
#define STORE_CHANGES_MAX               (1u << 20) /* noted per unit (notifications) */
#define STORE_PREP_ARENA_LIMIT          (512u << 20)
#define STORE_FLOOR_TRUNCATE_MAX        4096 /* records dropped for the floor per commit */

/* ==== shared helpers ======================================================== */

int mbx__store_mdb_err(const struct mbx_store *s, int rc, const char *what)
{
  int err;
  switch (rc) {
  case 0:
    return 0;
  case MDB_NOTFOUND:
    return MBX_ENOTFOUND; /* an answer, not a failure: not logged */
  case MDB_KEYEXIST:
    return MBX_EEXIST;
  case MDB_MAP_FULL:
    err = MBX_ENOSPC;
    break;
  case MDB_CORRUPTED:
  case MDB_PAGE_NOTFOUND:
    err = MBX_ECORRUPT;
    break;
  case ENOMEM:
    err = MBX_ENOMEM;
    break;
  default:
    err = MBX_ESTORE;
  }
  mbx_error("store %s: %s failed: %s (%s)", s && s->name ? s->name : "?", what, mdb_strerror(rc),
            mbx_strerror(err));
  return err;
}

char *mbx__store_lower(struct mbx_arena *a, const char *s)
{
  size_t n = strlen(s);
  char *d = mbx_arena_alloc(a, n + 1);
  if (!d)
    return NULL;
  for (size_t i = 0; i <= n; i++)
    d[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] + 32) : s[i];
  return d;
}

int mbx__get_u64(struct mbx_store *s, MDB_txn *t, enum mbx__db db, const void *key, size_t klen,
                 uint64_t *v_r)
{
  MDB_val k = mbx__val(key, klen), v;
  int rc = mdb_get(t, s->dbi[db], &k, &v);
  if (rc)
    return mbx__store_mdb_err(s, rc, "get");
  if (v.mv_size != 8)
    return MBX_ECORRUPT;
  *v_r = mbx_get_be64(v.mv_data);
  return 0;
}

int mbx__put_u64(struct mbx_store *s, MDB_txn *t, enum mbx__db db, const void *key, size_t klen,
                 uint64_t v)
{
  uint8_t b[8];
  mbx_put_be64(b, v);
  MDB_val k = mbx__val(key, klen), d = mbx__val(b, 8);
  return mbx__store_mdb_err(s, mdb_put(t, s->dbi[db], &k, &d, 0), "put");
}

int mbx__get_msg(struct mbx_store *s, MDB_txn *t, enum mbx__db db, uint64_t id,
                 const ProtobufCMessageDescriptor *desc, struct mbx_arena *a, void **msg_r)
{
  uint8_t kb[8];
  mbx_put_be64(kb, id);
  MDB_val k = mbx__val(kb, 8), v;
  int rc = mdb_get(t, s->dbi[db], &k, &v);
  if (rc)
    return mbx__store_mdb_err(s, rc, "get");
  ProtobufCMessage *m = protobuf_c_message_unpack(desc, &a->pb, v.mv_size, v.mv_data);
  if (!m) {
    mbx_error("store %s: record %llu of %s does not unpack", s->name, (unsigned long long)id,
              desc->short_name);
    return MBX_ECORRUPT;
  }
  *msg_r = m;
  return 0;
}

int mbx__put_msg(struct mbx_store *s, MDB_txn *t, enum mbx__db db, const uint8_t *key, size_t klen,
                 const ProtobufCMessage *msg, struct mbx_arena *a)
{
  size_t n = protobuf_c_message_get_packed_size(msg);
  MDB_val k = mbx__val(key, klen), v = mbx__val(NULL, n);
  /* MDB_RESERVE: pack straight into the page, no copy. */
  int rc = mdb_put(t, s->dbi[db], &k, &v, MDB_RESERVE);
  if (rc)
    return mbx__store_mdb_err(s, rc, "put");
  (void)a;
  protobuf_c_message_pack(msg, v.mv_data);
  return 0;
}

/* Since the last new epoch, every counter reads as at least the epoch's floor, so the
 * next change number is above anything a lost tail of an older epoch handed out;
 * every copy reads the same floor (it comes with OpBeginEpoch), so replay agrees. */
static int store_cn_floor(struct mbx_store *s, MDB_txn *t, uint64_t *floor_r)
{
  int err = mbx__get_u64(s, t, MBX__DB_META, "cn_floor", 8, floor_r);
  if (err == MBX_ENOTFOUND) {
    *floor_r = 0;
    err = 0;
  }
  return err;
}

int mbx__get_mailbox(struct mbx_store *s, MDB_txn *t, uint64_t id, struct mbx_arena *a,
                     Mbx__Mailbox **mb_r)
{
  int err = mbx__get_msg(s, t, MBX__DB_MAILBOXES, id, &mbx__mailbox__descriptor, a, (void **)mb_r);
  uint64_t floor = 0;
  if (!err && (err = store_cn_floor(s, t, &floor)) == 0 && (*mb_r)->last_hcn < floor) {
    (*mb_r)->last_hcn = floor;
    (*mb_r)->has_last_hcn = true;
  }
  return err;
}

int mbx__get_folder(struct mbx_store *s, MDB_txn *t, uint64_t id, struct mbx_arena *a,
                    Mbx__Folder **f_r)
{
  int err = mbx__get_msg(s, t, MBX__DB_FOLDERS, id, &mbx__folder__descriptor, a, (void **)f_r);
  uint64_t floor = 0;
  if (!err && (err = store_cn_floor(s, t, &floor)) == 0 && (*f_r)->last_cn < floor) {
    (*f_r)->last_cn = floor;
    (*f_r)->has_last_cn = true;
  }
  return err;
}

int mbx__get_item(struct mbx_store *s, MDB_txn *t, uint64_t id, struct mbx_arena *a,
                  Mbx__Item **it_r)
{
  return mbx__get_msg(s, t, MBX__DB_ITEMS, id, &mbx__item__descriptor, a, (void **)it_r);
}

int mbx__get_folder_of(struct mbx_store *s, MDB_txn *t, uint64_t mailbox_id, uint64_t id,
                       struct mbx_arena *a, Mbx__Folder **f_r)
{
  int rc = mbx__get_folder(s, t, id, a, f_r);
  if (rc == 0 && (*f_r)->mailbox_id != mailbox_id)
    return MBX_ENOTFOUND; /* another mailbox's folder: indistinguishable */
  return rc;
}

int mbx__get_item_of(struct mbx_store *s, MDB_txn *t, uint64_t mailbox_id, uint64_t id,
                     struct mbx_arena *a, Mbx__Item **it_r)
{
  int rc = mbx__get_item(s, t, id, a, it_r);
  if (rc == 0 && (*it_r)->mailbox_id != mailbox_id)
    return MBX_ENOTFOUND;
  return rc;
}

size_t mbx__folder_name_key(uint8_t *k, uint64_t mailbox_id, uint64_t parent_id,
                            const char *lower_name)
{
  size_t n = strlen(lower_name);
  if (n > MBX__NAME_MAX)
    n = MBX__NAME_MAX;
  mbx_put_be64(k, mailbox_id);
  mbx_put_be64(k + 8, parent_id);
  memcpy(k + 16, lower_name, n);
  return 16 + n;
}

int mbx__find_child(struct mbx_store *s, MDB_txn *t, uint64_t mailbox_id, uint64_t parent_id,
                    const char *name, struct mbx_arena *a, uint64_t *id_r)
{
  if (strlen(name) > MBX__NAME_MAX)
    return MBX_ENOTFOUND;
  char *lower = mbx__store_lower(a, name);
  if (!lower)
    return MBX_ENOMEM;
  uint8_t k[16 + MBX__NAME_MAX];
  size_t klen = mbx__folder_name_key(k, mailbox_id, parent_id, lower);
  return mbx__get_u64(s, t, MBX__DB_FOLDER_NAMES, k, klen, id_r);
}

void mbx__index_key(uint8_t *k, uint64_t folder_id, int64_t received_us, uint64_t item_id)
{
  /* Flip the sign bit so signed times sort as unsigned, then invert: newest first. */
  mbx_put_be64(k, folder_id);
  mbx_put_be64(k + 8, ~((uint64_t)received_us ^ (1ull << 63)));
  mbx_put_be64(k + 16, ~item_id);
}

/* ==== open / close ========================================================= */

void mbx_store_options_default(struct mbx_store_options *opt)
{
  memset(opt, 0, sizeof(*opt));
  opt->map_size_bytes = STORE_DEFAULT_MAP_BYTES;
  opt->max_message_bytes = STORE_DEFAULT_MAX_MESSAGE_BYTES;
  opt->log_retain_bytes = STORE_DEFAULT_LOG_RETAIN_BYTES;
  opt->idem_keep_s = STORE_DEFAULT_IDEM_KEEP_S;
}

static bool store_name_ok(const char *name)
{
  size_t n = strlen(name);
  if (n == 0 || n > 64 || name[0] == '.')
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '_' || c == '.'))
      return false;
  }
  return true;
}

static const char *store_db_names[MBX__DB_COUNT] = {
    "meta",   "mailboxes",    "addresses", "folders",  "folder_names", "items",
    "bodies", "folder_index", "changes",   "hchanges", "log",          "rlog",
    "idem",   "idem_time", "epochs"};

/* Opens every sub-database and creates the meta record of a new database. */
static int store_init_dbs(struct mbx_store *s, const char **error_r)
{
  MDB_txn *t;
  int rc = mdb_txn_begin(s->env, NULL, 0, &t);
  if (rc) {
    *error_r = "cannot begin the opening transaction";
    return mbx__store_mdb_err(s, rc, "txn_begin");
  }
  for (int i = 0; i < MBX__DB_COUNT; i++) {
    if ((rc = mdb_dbi_open(t, store_db_names[i], MDB_CREATE, &s->dbi[i]))) {
      mdb_txn_abort(t);
      *error_r = "cannot open a sub-database";
      return mbx__store_mdb_err(s, rc, "dbi_open");
    }
  }
  uint64_t v;
  int err = mbx__get_u64(s, t, MBX__DB_META, "db_uid", 6, &v);
  if (err == MBX_ENOTFOUND) {
    uint8_t r[8];
    if (RAND_bytes(r, 8) != 1) {
      mdb_txn_abort(t);
      *error_r = "no randomness for db_uid";
      return MBX_EIO;
    }
    v = mbx_get_be64(r) | 1; /* never 0: 0 means "no token" */
    MDB_val k = mbx__val("name", 4), d = mbx__val(s->name, strlen(s->name));
    if ((err = mbx__put_u64(s, t, MBX__DB_META, "db_uid", 6, v)) ||
        (err = mbx__put_u64(s, t, MBX__DB_META, "epoch", 5, 1)) ||
        (err = mbx__put_u64(s, t, MBX__DB_META, "last_lsn", 8, 0)) ||
        (err = mbx__put_u64(s, t, MBX__DB_META, "first_lsn", 9, 0)) ||
        (err = mbx__put_u64(s, t, MBX__DB_META, "next_id", 7, 1)) ||
        (err = mbx__put_u64(s, t, MBX__DB_META, "log_bytes", 9, 0)) ||
        (err = mbx__store_mdb_err(s, mdb_put(t, s->dbi[MBX__DB_META], &k, &d, 0), "put"))) {
      mdb_txn_abort(t);
      *error_r = "cannot initialise the database";
      return err;
    }
    mbx_notice("store %s: created database, db_uid %016llx", s->name, (unsigned long long)v);
  } else if (err < 0) {
    mdb_txn_abort(t);
    *error_r = "cannot read the database's meta record";
    return err;
  }
  s->db_uid = v;
  uint64_t epoch = 0, lsn = 0;
  if ((err = mbx__get_u64(s, t, MBX__DB_META, "epoch", 5, &epoch)) ||
      (err = mbx__get_u64(s, t, MBX__DB_META, "last_lsn", 8, &lsn))) {
    mdb_txn_abort(t);
    *error_r = "meta record incomplete";
    return err == MBX_ENOTFOUND ? MBX_ECORRUPT : err;
  }
  /* A new database starts its history at {1 → 1}; a store made before epoch
   * histories existed has run in one epoch since lsn 1: {epoch → 1}. */
  MDB_stat est;
  if ((rc = mdb_stat(t, s->dbi[MBX__DB_EPOCHS], &est)) == 0 && est.ms_entries == 0) {
    uint8_t ek[8], ev[8];
    mbx_put_be64(ek, epoch);
    mbx_put_be64(ev, 1);
    MDB_val kv = mbx__val(ek, 8), vv = mbx__val(ev, 8);
    rc = mdb_put(t, s->dbi[MBX__DB_EPOCHS], &kv, &vv, 0);
  }
  if (rc) {
    mdb_txn_abort(t);
    *error_r = "cannot start the epoch history";
    return mbx__store_mdb_err(s, rc, "epochs");
  }
  atomic_store(&s->epoch, epoch);
  atomic_store(&s->last_lsn, lsn);
  if ((rc = mdb_txn_commit(t))) {
    *error_r = "cannot commit the opening transaction";
    return mbx__store_mdb_err(s, rc, "commit");
  }
  return 0;
}

int mbx_store_open(const char *dir, const char *name, bool create,
                   const struct mbx_store_options *opt, struct mbx_store **store_r,
                   const char **error_r)
{
  const char *dummy;
  if (!error_r)
    error_r = &dummy;
  *error_r = NULL;
  if (!dir || !name || !store_name_ok(name)) {
    *error_r = "invalid database name (1-64 of [A-Za-z0-9._-], not starting with '.')";
    return MBX_EINVAL;
  }
  struct mbx_store *s = calloc(1, sizeof(*s));
  if (!s)
    return MBX_ENOMEM;
  if (opt)
    s->opt = *opt;
  else
    mbx_store_options_default(&s->opt);
  struct mbx_store_options def;
  mbx_store_options_default(&def);
  if (!s->opt.map_size_bytes)
    s->opt.map_size_bytes = def.map_size_bytes;
  if (!s->opt.max_message_bytes)
    s->opt.max_message_bytes = def.max_message_bytes;
  if (!s->opt.log_retain_bytes)
    s->opt.log_retain_bytes = def.log_retain_bytes;
  if (!s->opt.idem_keep_s)
    s->opt.idem_keep_s = def.idem_keep_s;
  s->name = strdup(name);
  s->path = malloc(strlen(dir) + strlen(name) + 2);
  int err = MBX_ENOMEM;
  if (!s->name || !s->path)
    goto fail;
  sprintf(s->path, "%s/%s", dir, name);
  char data[4096];
  snprintf(data, sizeof(data), "%s/data.mdb", s->path);
  struct stat st;
  if (create) {
    if ((mkdir(dir, 0700) < 0 && errno != EEXIST) ||
        (mkdir(s->path, 0700) < 0 && errno != EEXIST)) {
      *error_r = "cannot create the database directory";
      err = MBX_EIO;
      goto fail;
    }
  } else if (stat(data, &st) < 0) {
    *error_r = "no such database";
    err = MBX_ENOTFOUND;
    goto fail;
  }
  int rc;
  if ((rc = mdb_env_create(&s->env)) || (rc = mdb_env_set_maxdbs(s->env, 16)) ||
      (rc = mdb_env_set_mapsize(s->env, (size_t)s->opt.map_size_bytes)) ||
      (rc = mdb_env_open(s->env, s->path, MDB_NOTLS, 0600))) {
    *error_r = "cannot open the LMDB environment";
    err = mbx__store_mdb_err(s, rc, "env_open");
    goto fail;
  }
  int dead = 0;
  mdb_reader_check(s->env, &dead); /* readers left by a crashed process pin pages */
  if ((err = store_init_dbs(s, error_r)) < 0)
    goto fail;
  if ((err = mbx__repl_open(s)) < 0) {
    *error_r = "cannot read the replication state";
    goto fail;
  }
  mbx_info("store %s: open, epoch %llu, last lsn %llu", s->name,
           (unsigned long long)atomic_load(&s->epoch),
           (unsigned long long)atomic_load(&s->last_lsn));
  *store_r = s;
  return 0;
fail:
  mbx_store_close(&s);
  return err;
}

void mbx_store_close(struct mbx_store **store)
{
  struct mbx_store *s = *store;
  if (!s)
    return;
  mbx_assert(!s->writing);
  if (s->env)
    mdb_env_close(s->env);
  free(s->name);
  free(s->path);
  free(s);
  *store = NULL;
}

const char *mbx_store_name(const struct mbx_store *s)
{
  return s->name;
}
const char *mbx_store_path(const struct mbx_store *s)
{
  return s->path;
}
uint64_t mbx_store_last_lsn(const struct mbx_store *s)
{
  return atomic_load(&((struct mbx_store *)s)->last_lsn);
}
uint64_t mbx_store_epoch(const struct mbx_store *s)
{
  return atomic_load(&((struct mbx_store *)s)->epoch);
}
uint64_t mbx_store_db_uid(const struct mbx_store *s)
{
  return __atomic_load_n(&s->db_uid, __ATOMIC_ACQUIRE);
}

uint64_t mbx_store_file_bytes(const struct mbx_store *s)
{
  char p[4096];
  struct stat st;
  snprintf(p, sizeof(p), "%s/data.mdb", s->path);
  return stat(p, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* ==== write transactions, units, commit ================================== */

int mbx_store_wtxn_begin(struct mbx_store *s, struct mbx_wtxn **w_r)
{
  if (s->writing)
    return MBX_EBUSY;
  struct mbx_wtxn *w = calloc(1, sizeof(*w));
  if (!w)
    return MBX_ENOMEM;
  int rc = mdb_txn_begin(s->env, NULL, 0, &w->top);
  if (rc) {
    free(w);
    return mbx__store_mdb_err(s, rc, "txn_begin");
  }
  w->s = s;
  w->txn = w->top;
  mbx_buf_init(&w->ops, MBX_LOGREC_MAX_BYTES - MBX_LOGREC_HEADER_BYTES);
  mbx_arena_init(&w->scratch, 0);
  s->writing = true;
  *w_r = w;
  return 0;
}

static void store_wtxn_free(struct mbx_wtxn *w)
{
  w->s->writing = false;
  mbx_buf_free(&w->ops);
  mbx_arena_reset(&w->scratch);
  free(w->chg);
  free(w);
}

void mbx_store_wtxn_abort(struct mbx_wtxn **wp)
{
  struct mbx_wtxn *w = *wp;
  if (!w)
    return;
  if (w->txn != w->top)
    mdb_txn_abort(w->txn);
  mdb_txn_abort(w->top);
  store_wtxn_free(w);
  *wp = NULL;
}

size_t mbx_store_wtxn_log_bytes(const struct mbx_wtxn *w) { return w->ops.len; }

int mbx__log_append(struct mbx_wtxn *w, uint64_t lsn, const uint8_t *rec, size_t len)
{
  struct mbx_store *s = w->s;
  MDB_txn *t = w->top;
  uint8_t k[8];
  mbx_put_be64(k, lsn);
  MDB_val kv = mbx__val(k, 8), dv = mbx__val(rec, len);
  int err = mbx__store_mdb_err(s, mdb_put(t, s->dbi[MBX__DB_LOG], &kv, &dv, MDB_APPEND), "log put");
  if (err == MBX_EEXIST)
    err = MBX_ECORRUPT; /* out of order: the log would get a gap */
  uint64_t first = 0, bytes = 0;
  if (err || (err = mbx__get_u64(s, t, MBX__DB_META, "first_lsn", 9, &first)) ||
      (err = mbx__get_u64(s, t, MBX__DB_META, "log_bytes", 9, &bytes)))
    return err;
  if (first == 0)
    first = lsn;
  bytes += len;
  /* Drop what no copy needs (below the floor, a bounded number per commit) and, to
   * protect the disk, whatever is beyond log_retain_bytes; never the newest. */
  uint64_t floor = atomic_load(&s->log_floor), dropped = 0;
  if (floor == UINT64_MAX)
    floor = 0;
  while (first < lsn && (bytes > s->opt.log_retain_bytes ||
                         (first < floor && dropped < STORE_FLOOR_TRUNCATE_MAX))) {
    dropped++;
    mbx_put_be64(k, first);
    MDB_val ok = mbx__val(k, 8), ov;
    int rc = mdb_get(t, s->dbi[MBX__DB_LOG], &ok, &ov);
    if (rc == 0) {
      bytes -= ov.mv_size < bytes ? ov.mv_size : bytes;
      if ((rc = mdb_del(t, s->dbi[MBX__DB_LOG], &ok, NULL)))
        return mbx__store_mdb_err(s, rc, "log truncate");
    } else if (rc != MDB_NOTFOUND) {
      return mbx__store_mdb_err(s, rc, "log get");
    }
    first++;
  }
  if ((err = mbx__put_u64(s, t, MBX__DB_META, "first_lsn", 9, first)) ||
      (err = mbx__put_u64(s, t, MBX__DB_META, "log_bytes", 9, bytes)) ||
      (err = mbx__put_u64(s, t, MBX__DB_META, "last_lsn", 8, lsn)))
    return err;
  return 0;
}

int mbx_store_wtxn_commit(struct mbx_wtxn **wp, uint64_t *lsn_r)
{
  struct mbx_wtxn *w = *wp;
  struct mbx_store *s = w->s;
  int err = w->failed;
  uint64_t lsn = 0;
  int64_t now_us = 0;
  if (lsn_r)
    *lsn_r = 0;
  if (w->txn != w->top)
    err = MBX_EINVAL; /* a unit left open */
  if (!err && w->n_ops && atomic_load(&s->rq_records))
    err = MBX_ENOTACTIVE; /* received records pending: their LSNs are taken */
  if (!err && w->n_ops) {
    lsn = atomic_load(&s->last_lsn) + 1;
    now_us = mbx_now_us();
    struct mbx_buf rec;
    mbx_buf_init(&rec, MBX_LOGREC_MAX_BYTES);
    uint64_t epoch = w->begun_epoch ? w->begun_epoch : atomic_load(&s->epoch);
    err = mbx_logrec_encode_packed(epoch, lsn, now_us, w->ops.data, w->ops.len, &rec);
    if (!err)
      err = mbx__log_append(w, lsn, rec.data, rec.len);
    mbx_buf_free(&rec);
  }
  if (err) {
    mbx_error("store %s: commit refused at lsn %llu: %s", s->name,
              (unsigned long long)atomic_load(&s->last_lsn), mbx_strerror(err));
    mbx_store_wtxn_abort(wp);
    return err;
  }
  int rc = mdb_txn_commit(w->top);
  w->top = w->txn = NULL;
  if (rc) {
    err = mbx__store_mdb_err(s, rc, "commit");
    store_wtxn_free(w);
    *wp = NULL;
    return err;
  }
  if (lsn) {
    /* Published only once durable. An active's own records count as received and
     * replayed, so its positions are right if it turns passive. */
    if (w->begun_epoch)
      atomic_store(&s->epoch, w->begun_epoch);
    atomic_store(&s->replayed_time_us, now_us);
    atomic_store(&s->last_lsn, lsn);
    atomic_store(&s->received_epoch, atomic_load(&s->epoch));
    atomic_store(&s->received_time_us, now_us);
    atomic_store(&s->received_lsn, lsn);
  }
  store_wtxn_free(w);
  *wp = NULL;
  if (lsn_r)
    *lsn_r = lsn;
  return 0;
}

int mbx_store_unit_begin(struct mbx_wtxn *w)
{
  if (w->failed)
    return w->failed;
  if (w->txn != w->top)
    return MBX_EINVAL; /* units do not nest */
  MDB_txn *child;
  int rc = mdb_txn_begin(w->s->env, w->top, 0, &child);
  if (rc)
    return mbx__store_mdb_err(w->s, rc, "unit begin");
  w->txn = child;
  w->unit_ops_len = w->ops.len;
  w->unit_n_ops = w->n_ops;
  w->n_chg = 0;
  return 0;
}

void mbx_store_unit_end(struct mbx_wtxn *w, int status)
{
  if (w->txn == w->top)
    return;
  if (status == 0) {
    int rc = mdb_txn_commit(w->txn);
    if (rc) {
      /* The child is gone and so are its changes: the batch cannot be trusted. */
      w->failed = mbx__store_mdb_err(w->s, rc, "unit commit");
      w->ops.len = w->unit_ops_len;
      w->n_ops = w->unit_n_ops;
    }
  } else {
    mdb_txn_abort(w->txn);
    w->ops.len = w->unit_ops_len; /* a failed unit leaves no op in the record */
    w->n_ops = w->unit_n_ops;
  }
  w->txn = w->top;
  w->n_chg = 0;
  mbx_arena_reset(&w->scratch);
}

size_t mbx_store_unit_changes(const struct mbx_wtxn *w, const struct mbx_store_change **v_r)
{
  *v_r = w->chg;
  return w->txn != w->top ? w->n_chg : 0;
}

void mbx__note_change(struct mbx_wtxn *w, uint64_t mailbox_id, uint64_t folder_id, uint64_t cn)
{
  if (w->txn == w->top)
    return; /* replay: nobody is told */
  /* One entry per folder (and per hierarchy); a unit's ops usually touch the same
   * folder in a row, so the last entry is checked first. */
  for (size_t i = w->n_chg; i-- > 0;) {
    struct mbx_store_change *c = &w->chg[i];
    if (c->folder_id == folder_id && c->mailbox_id == mailbox_id) {
      if (cn > c->cn)
        c->cn = cn;
      return;
    }
  }
  if (w->n_chg == w->cap_chg) {
    size_t cap = w->cap_chg ? 2 * w->cap_chg : 8;
    struct mbx_store_change *v =
        cap <= STORE_CHANGES_MAX ? realloc(w->chg, cap * sizeof(*v)) : NULL;
    if (!v) {
      mbx_warning("store %s: changes of a unit not noted (over %u or out of memory): "
                  "a notification is missed; clients catch up when they sync",
                  w->s->name, STORE_CHANGES_MAX);
      return;
    }
    w->chg = v;
    w->cap_chg = cap;
  }
  w->chg[w->n_chg++] = (struct mbx_store_change){mailbox_id, folder_id, cn};
}

/* Packs op into the record payload (as LogOps field 1), then applies the packed
 * form, unpacked again: the active applies exactly the bytes a passive will. */
static int store_emit(struct mbx_wtxn *w, const Mbx__Op *op)
{
  size_t n = mbx__op__get_packed_size(op);
  size_t mark = w->ops.len;
  uint8_t hdr[11];
  size_t h = 0;
  hdr[h++] = 0x0a; /* field 1, length-delimited */
  for (uint64_t v = n;; v >>= 7) {
    hdr[h++] = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
    if (v < 0x80)
      break;
  }
  int err = mbx_buf_reserve(&w->ops, h + n);
  if (err)
    return err;
  memcpy(w->ops.data + w->ops.len, hdr, h);
  uint8_t *packed = w->ops.data + w->ops.len + h;
  mbx__op__pack(op, packed);
  w->ops.len += h + n;
  Mbx__Op *copy = mbx__op__unpack(&w->scratch.pb, n, packed);
  if (!copy)
    err = MBX_ENOMEM;
  else
    err = mbx__apply_op(w, copy);
  mbx_arena_reset(&w->scratch); /* nothing of apply's outlives it */
  if (err) {
    w->ops.len = mark;
    if (w->txn == w->top)
      w->failed = err; /* partial changes outside a unit: sticky */
    return err;
  }
  w->n_ops++;
  return 0;
}

int mbx__store_emit(struct mbx_wtxn *w, const Mbx__Op *op)
{
  return store_emit(w, op);
}

/* ==== prepare: shared checks ================================================ */

static int store_writable(struct mbx_wtxn *w)
{
  return w->failed;
}

static int store_next_id(struct mbx_wtxn *w, uint64_t *id_r)
{
  return mbx__get_u64(w->s, w->txn, MBX__DB_META, "next_id", 7, id_r);
}

static bool store_address_ok(const char *a)
{
  size_t n = strlen(a);
  const char *at = strchr(a, '@');
  if (n == 0 || n > MBX__ADDRESS_MAX || !at || at == a || !at[1] || strchr(at + 1, '@'))
    return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)a[i];
    if (c <= 32 || c == 127 || c == '<' || c == '>' || c == ',' || c == '"' || c == '\\')
      return false;
  }
  return at[1] != '.' && a[n - 1] != '.';
}

static bool store_folder_name_ok(const char *n)
{
  size_t len = strlen(n);
  if (len == 0 || len > MBX__NAME_MAX)
    return false;
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)n[i] < 32 || n[i] == 127 || n[i] == '/')
      return false;
  return true;
}

static int store_categories_ok(const char *const *c, size_t n)
{
  if (n > MBX__CATEGORIES_MAX)
    return MBX_ELIMIT;
  for (size_t i = 0; i < n; i++)
    if (!c[i] || !*c[i] || strlen(c[i]) > MBX__CATEGORY_MAX_BYTES)
      return MBX_EINVAL;
  return 0;
}

static int store_quota_check(const Mbx__Mailbox *mb, uint64_t size)
{
  if (mb->quota_prohibit_bytes && mb->used_bytes + size > mb->quota_prohibit_bytes)
    return MBX_EQUOTA;
  return 0;
}

static int store_put_item_op(struct mbx_wtxn *w, Mbx__Item *item, const uint8_t *body,
                             size_t body_len, bool with_body, uint64_t body_from,
                             uint64_t old_folder, uint64_t tombstone_cn)
{
  Mbx__OpPutItem put = MBX__OP_PUT_ITEM__INIT;
  put.item = item;
  if (with_body) {
    put.has_body = true;
    put.body.data = (uint8_t *)body;
    put.body.len = body_len;
  }
  if (body_from) {
    put.has_body_from_item = true;
    put.body_from_item = body_from;
  }
  if (old_folder) {
    put.has_old_folder_id = put.has_tombstone_cn = true;
    put.old_folder_id = old_folder;
    put.tombstone_cn = tombstone_cn;
  }
  Mbx__Op op = MBX__OP__INIT;
  op.op_case = MBX__OP__OP_PUT_ITEM;
  op.put_item = &put;
  return store_emit(w, &op);
}

static int store_wk_folder(struct mbx_wtxn *w, uint64_t mailbox_id, const char *name,
                           Mbx__WellKnown wk, struct mbx_arena *a, Mbx__Folder **f_r)
{
  uint64_t id;
  int err = mbx__find_child(w->s, w->txn, mailbox_id, 0, name, a, &id);
  if (!err)
    err = mbx__get_folder_of(w->s, w->txn, mailbox_id, id, a, f_r);
  if (!err && (*f_r)->well_known != wk)
    err = MBX_ECORRUPT;
  if (err == MBX_ENOTFOUND)
    err = MBX_ECORRUPT; /* every mailbox has its well-known folders */
  return err;
}

/* ==== prepare: mailboxes ==================================================== */

static const struct {
  const char *name;
  Mbx__FolderClass cls;
  Mbx__WellKnown wk;
} store_wk[] = {
    {"Inbox", MBX__FOLDER_CLASS__FOLDER_MAIL, MBX__WELL_KNOWN__WK_INBOX},
    {"Drafts", MBX__FOLDER_CLASS__FOLDER_MAIL, MBX__WELL_KNOWN__WK_DRAFTS},
    {"Sent Items", MBX__FOLDER_CLASS__FOLDER_MAIL, MBX__WELL_KNOWN__WK_SENT},
    {"Deleted Items", MBX__FOLDER_CLASS__FOLDER_MAIL, MBX__WELL_KNOWN__WK_DELETED},
    {"Junk Email", MBX__FOLDER_CLASS__FOLDER_MAIL, MBX__WELL_KNOWN__WK_JUNK},
    {"Archive", MBX__FOLDER_CLASS__FOLDER_MAIL, MBX__WELL_KNOWN__WK_ARCHIVE},
    {"Outbox", MBX__FOLDER_CLASS__FOLDER_MAIL, MBX__WELL_KNOWN__WK_OUTBOX},
    {"Calendar", MBX__FOLDER_CLASS__FOLDER_CALENDAR, MBX__WELL_KNOWN__WK_CALENDAR},
    {"Contacts", MBX__FOLDER_CLASS__FOLDER_CONTACTS, MBX__WELL_KNOWN__WK_CONTACTS},
    {"Tasks", MBX__FOLDER_CLASS__FOLDER_TASKS, MBX__WELL_KNOWN__WK_TASKS},
    {"Notes", MBX__FOLDER_CLASS__FOLDER_NOTES, MBX__WELL_KNOWN__WK_NOTES},
};
#define STORE_N_WK (sizeof(store_wk) / sizeof(store_wk[0]))

int mbx_store_create_mailbox(struct mbx_wtxn *w, const struct mbx_mailbox_spec *spec,
                             struct mbx_arena *a, Mbx__Mailbox **mb_r)
{
  int err = store_writable(w);
  if (err)
    return err;
  if (!spec || !spec->address || spec->n_aliases > MBX__ALIASES_MAX ||
      (spec->display_name && strlen(spec->display_name) > 1024) ||
      (spec->password_hash && strlen(spec->password_hash) > 512))
    return MBX_EINVAL;
  size_t n_addr = 1 + spec->n_aliases;
  char **addr = mbx_arena_alloc(a, n_addr * sizeof(*addr));
  if (!addr)
    return MBX_ENOMEM;
  for (size_t i = 0; i < n_addr; i++) {
    const char *src = i == 0 ? spec->address : spec->aliases[i - 1];
    if (!src || !(addr[i] = mbx__store_lower(a, src)))
      return src ? MBX_ENOMEM : MBX_EINVAL;
    if (!store_address_ok(addr[i]))
      return MBX_EINVAL;
    for (size_t j = 0; j < i; j++)
      if (strcmp(addr[i], addr[j]) == 0)
        return MBX_EEXIST;
    uint64_t other;
    err = mbx__get_u64(w->s, w->txn, MBX__DB_ADDRESSES, addr[i], strlen(addr[i]), &other);
    if (err != MBX_ENOTFOUND)
      return err ? err : MBX_EEXIST;
  }
  uint64_t id;
  if ((err = store_next_id(w, &id)))
    return err;
  Mbx__Mailbox mb = MBX__MAILBOX__INIT;
  mb.id = id;
  mb.address = addr[0];
  mb.aliases = addr + 1;
  mb.n_aliases = spec->n_aliases;
  mb.display_name = (char *)spec->display_name;
  mb.password_hash = (char *)spec->password_hash;
  mb.has_quota_warn_bytes = mb.has_quota_prohibit_bytes = true;
  mb.quota_warn_bytes =
      spec->has_quota ? spec->quota_warn_bytes : w->s->opt.default_quota_warn_bytes;
  mb.quota_prohibit_bytes =
      spec->has_quota ? spec->quota_prohibit_bytes : w->s->opt.default_quota_prohibit_bytes;
  mb.has_created_us = mb.has_last_hcn = true;
  mb.created_us = mbx_now_us();
  mb.last_hcn = STORE_N_WK;
  Mbx__Folder folders[STORE_N_WK], *fp[STORE_N_WK];
  for (size_t i = 0; i < STORE_N_WK; i++) {
    Mbx__Folder *f = &folders[i];
    mbx__folder__init(f);
    f->id = id + 1 + i;
    f->mailbox_id = id;
    f->name = (char *)store_wk[i].name;
    f->has_folder_class = f->has_well_known = f->has_hcn = f->has_created_hcn = true;
    f->folder_class = store_wk[i].cls;
    f->well_known = store_wk[i].wk;
    f->hcn = f->created_hcn = i + 1;
    fp[i] = f;
  }
  Mbx__OpCreateMailbox cm = MBX__OP_CREATE_MAILBOX__INIT;
  cm.mailbox = &mb;
  cm.folders = fp;
  cm.n_folders = STORE_N_WK;
  Mbx__Op op = MBX__OP__INIT;
  op.op_case = MBX__OP__OP_CREATE_MAILBOX;
  op.create_mailbox = &cm;
  if ((err = store_emit(w, &op)))
    return err;
  return mb_r ? mbx__get_mailbox(w->s, w->txn, id, a, mb_r) : 0;
}

/* ==== prepare: items ======================================================== */

static int store_append_message(struct mbx_wtxn *w, const Mbx__Mailbox *mb, const Mbx__Folder *f,
                                const uint8_t *body, size_t len, uint32_t flags,
                                int64_t received_us, struct mbx_arena *a, Mbx__Item **item_r)
{
  if (len > w->s->opt.max_message_bytes)
    return MBX_ETOOBIG;
  int err = store_quota_check(mb, len);
  if (err)
    return err;
  Mbx__Item *it = mbx_arena_pbnew(a, &mbx__item__descriptor);
  Mbx__MessageSummary *sum = mbx_arena_pbnew(a, &mbx__message_summary__descriptor);
  if (!it || !sum)
    return MBX_ENOMEM;
  if ((err = mbx_rfc5322_parse(body, len, a, sum)))
    return err;
  if ((err = store_next_id(w, &it->id)))
    return err;
  it->mailbox_id = mb->id;
  it->folder_id = f->id;
  it->has_kind = it->has_flags = it->has_received_us = it->has_cn = it->has_size = true;
  it->has_added_cn = true;
  it->kind = MBX__ITEM_KIND__ITEM_MESSAGE;
  it->flags = flags & 0xf;
  it->received_us = received_us ? received_us : mbx_now_us();
  it->cn = it->added_cn = f->last_cn + 1;
  it->size = len;
  it->message = sum;
  uint8_t *stored;
  size_t stored_len;
  if ((err = mbx_body_encode(body, len, &w->scratch, &stored, &stored_len)) ||
      (err = store_put_item_op(w, it, stored, stored_len, true, 0, 0, 0)))
    return err;
  if (item_r)
    *item_r = it;
  return 0;
}

int mbx_store_deliver(struct mbx_wtxn *w, const char *address, const uint8_t *body, size_t len,
                      struct mbx_arena *a, Mbx__Item **item_r)
{
  int err = store_writable(w);
  if (err)
    return err;
  if (!address || strlen(address) > MBX__ADDRESS_MAX || (!body && len))
    return MBX_EINVAL;
  if (len > w->s->opt.max_message_bytes)
    return MBX_ETOOBIG;
  char *lower = mbx__store_lower(a, address);
  uint64_t mid;
  Mbx__Mailbox *mb;
  Mbx__Folder *inbox;
  if (!lower)
    return MBX_ENOMEM;
  if ((err = mbx__get_u64(w->s, w->txn, MBX__DB_ADDRESSES, lower, strlen(lower), &mid)) ||
      (err = mbx__get_mailbox(w->s, w->txn, mid, a, &mb)) ||
      (err = store_wk_folder(w, mid, "Inbox", MBX__WELL_KNOWN__WK_INBOX, a, &inbox)))
    return err;
  return store_append_message(w, mb, inbox, body, len, 0, 0, a, item_r);
}

int mbx_store_append(struct mbx_wtxn *w, uint64_t mailbox_id, uint64_t folder_id,
                     const uint8_t *body, size_t len, uint32_t flags, int64_t received_us,
                     struct mbx_arena *a, Mbx__Item **item_r)
{
  int err = store_writable(w);
  if (err)
    return err;
  if (!body && len)
    return MBX_EINVAL;
  Mbx__Mailbox *mb;
  Mbx__Folder *f;
  if ((err = mbx__get_mailbox(w->s, w->txn, mailbox_id, a, &mb)) ||
      (err = mbx__get_folder_of(w->s, w->txn, mailbox_id, folder_id, a, &f)))
    return err;
  if (f->folder_class != MBX__FOLDER_CLASS__FOLDER_MAIL)
    return MBX_EINVAL;
  return store_append_message(w, mb, f, body, len, flags, received_us, a, item_r);
}

int mbx_store_create_item(struct mbx_wtxn *w, uint64_t mailbox_id, uint64_t folder_id,
                          const Mbx__Item *tmpl, struct mbx_arena *a, Mbx__Item **item_r)
{
  int err = store_writable(w);
  if (err)
    return err;
  if (!tmpl)
    return MBX_EINVAL;
  bool ok = (tmpl->kind == MBX__ITEM_KIND__ITEM_EVENT && tmpl->event) ||
            (tmpl->kind == MBX__ITEM_KIND__ITEM_CONTACT && tmpl->contact) ||
            (tmpl->kind == MBX__ITEM_KIND__ITEM_TASK && tmpl->task) ||
            (tmpl->kind == MBX__ITEM_KIND__ITEM_NOTE && tmpl->note);
  if (!ok || (tmpl->task && tmpl->task->percent_complete > 100))
    return MBX_EINVAL;
  if ((err = store_categories_ok((const char *const *)tmpl->categories, tmpl->n_categories)))
    return err;
  Mbx__Mailbox *mb;
  Mbx__Folder *f;
  if ((err = mbx__get_mailbox(w->s, w->txn, mailbox_id, a, &mb)) ||
      (err = mbx__get_folder_of(w->s, w->txn, mailbox_id, folder_id, a, &f)))
    return err;
  if (f->folder_class != mbx_kind_folder_class(tmpl->kind))
    return MBX_EINVAL;
  Mbx__Item *it = mbx_arena_pbnew(a, &mbx__item__descriptor);
  if (!it)
    return MBX_ENOMEM;
  it->has_kind = it->has_flags = it->has_received_us = it->has_cn = it->has_size = true;
  it->has_added_cn = true;
  it->kind = tmpl->kind;
  it->flags = tmpl->flags & 0xf;
  it->n_categories = tmpl->n_categories;
  it->categories = tmpl->categories;
  it->event = tmpl->event;
  it->contact = tmpl->contact;
  it->task = tmpl->task;
  it->note = tmpl->note;
  if ((err = store_next_id(w, &it->id)))
    return err;
  it->mailbox_id = mailbox_id;
  it->folder_id = folder_id;
  it->received_us = mbx_now_us();
  it->cn = it->added_cn = f->last_cn + 1;
  it->size = mbx__item__get_packed_size(it);
  if (it->size > w->s->opt.max_message_bytes)
    return MBX_ETOOBIG;
  if ((err = store_quota_check(mb, it->size)))
    return err;
  if ((err = store_put_item_op(w, it, NULL, 0, false, 0, 0, 0)))
    return err;
  if (item_r)
    *item_r = it;
  return 0;
}

int mbx_store_set_flags(struct mbx_wtxn *w, uint64_t mailbox_id, uint64_t item_id, uint32_t add,
                        uint32_t remove, const char *const *categories, size_t n_categories,
                        struct mbx_arena *a, Mbx__Item **item_r)
{
  int err = store_writable(w);
  if (err)
    return err;
  if (categories && (err = store_categories_ok(categories, n_categories)))
    return err;
  Mbx__Item *it;
  Mbx__Folder *f;
  if ((err = mbx__get_item_of(w->s, w->txn, mailbox_id, item_id, a, &it)) ||
      (err = mbx__get_folder(w->s, w->txn, it->folder_id, a, &f)))
    return err;
  it->flags = ((it->flags | add) & ~remove) & 0xf;
  it->has_flags = true;
  if (categories) {
    it->categories = (char **)categories;
    it->n_categories = n_categories;
  }
  it->cn = f->last_cn + 1;
  it->has_cn = true;
  if ((err = store_put_item_op(w, it, NULL, 0, false, 0, 0, 0)))
    return err;
  if (item_r)
    *item_r = it;
  return 0;
}

/* Moves an item (already read) to folder dst: new cn there, tombstone in its old one. */
static int store_move(struct mbx_wtxn *w, Mbx__Item *it, const Mbx__Folder *src,
                      const Mbx__Folder *dst)
{
  it->folder_id = dst->id;
  it->cn = it->added_cn = dst->last_cn + 1;
  it->has_cn = it->has_added_cn = true;
  return store_put_item_op(w, it, NULL, 0, false, 0, src->id, src->last_cn + 1);
}

int mbx_store_move_item(struct mbx_wtxn *w, uint64_t mailbox_id, uint64_t item_id,
                        uint64_t folder_id, struct mbx_arena *a, Mbx__Item **item_r)
{
  int err = store_writable(w);
  if (err)
    return err;
  Mbx__Item *it;
  Mbx__Folder *src, *dst;
  if ((err = mbx__get_item_of(w->s, w->txn, mailbox_id, item_id, a, &it)) ||
      (err = mbx__get_folder_of(w->s, w->txn, mailbox_id, folder_id, a, &dst)) ||
      (err = mbx__get_folder(w->s, w->txn, it->folder_id, a, &src)))
    return err;
  if (src->id != dst->id && (err = store_move(w, it, src, dst)))
    return err;
  if (item_r)
    *item_r = it;
  return 0;
}

int mbx_store_copy_item(struct mbx_wtxn *w, uint64_t mailbox_id, uint64_t item_id,
                        uint64_t folder_id, struct mbx_arena *a, Mbx__Item **item_r)
{
  int err = store_writable(w);
  if (err)
    return err;
  Mbx__Mailbox *mb;
  Mbx__Item *it;
  Mbx__Folder *dst;
  if ((err = mbx__get_mailbox(w->s, w->txn, mailbox_id, a, &mb)) ||
      (err = mbx__get_item_of(w->s, w->txn, mailbox_id, item_id, a, &it)) ||
      (err = mbx__get_folder_of(w->s, w->txn, mailbox_id, folder_id, a, &dst)))
    return err;
  if ((err = store_quota_check(mb, it->size)))
    return err;
  uint8_t k[8];
  mbx_put_be64(k, item_id);
  MDB_val kv = mbx__val(k, 8), bv;
  int rc = mdb_get(w->txn, w->s->dbi[MBX__DB_BODIES], &kv, &bv);
  if (rc && rc != MDB_NOTFOUND)
    return mbx__store_mdb_err(w->s, rc, "get body");
  uint64_t body_from = rc == 0 ? item_id : 0;
  if ((err = store_next_id(w, &it->id)))
    return err;
  it->folder_id = dst->id;
  it->cn = it->added_cn = dst->last_cn + 1;
  it->has_cn = it->has_added_cn = true;
  if ((err = store_put_item_op(w, it, NULL, 0, false, body_from, 0, 0)))
    return err;
  if (item_r)
    *item_r = it;
  return 0;
}

static int store_delete_op(struct mbx_wtxn *w, uint64_t mailbox_id, uint64_t folder_id,
                           uint64_t item_id, uint64_t tombstone_cn)
{
  Mbx__OpDeleteItem d = MBX__OP_DELETE_ITEM__INIT;
  d.mailbox_id = mailbox_id;
  d.folder_id = folder_id;
  d.item_id = item_id;
  d.tombstone_cn = tombstone_cn;
  Mbx__Op op = MBX__OP__INIT;
  op.op_case = MBX__OP__OP_DELETE_ITEM;
  op.delete_item = &d;
  return store_emit(w, &op);
}

int mbx_store_delete_item(struct mbx_wtxn *w, uint64_t mailbox_id, uint64_t item_id, bool hard)
{
  int err = store_writable(w);
  if (err)
    return err;
  struct mbx_arena a;
  mbx_arena_init(&a, 0);
  Mbx__Item *it;
  Mbx__Folder *f, *del;
  if ((err = mbx__get_item_of(w->s, w->txn, mailbox_id, item_id, &a, &it)) ||
      (err = mbx__get_folder(w->s, w->txn, it->folder_id, &a, &f)))
    goto out;
  if (hard || f->well_known == MBX__WELL_KNOWN__WK_DELETED) {
    err = store_delete_op(w, mailbox_id, f->id, item_id, f->last_cn + 1);
    goto out;
  }
  if ((err =
           store_wk_folder(w, mailbox_id, "Deleted Items", MBX__WELL_KNOWN__WK_DELETED, &a, &del)))
    goto out;
  err = store_move(w, it, f, del);
out:
  mbx_arena_reset(&a);
  return err;
}

int mbx_store_check_cn(struct mbx_wtxn *w, uint64_t mailbox_id, uint64_t item_id, uint64_t if_cn,
                       uint64_t *cn_r)
{
  int err = store_writable(w);
  if (err)
    return err;
  Mbx__Item *it;
  if ((err = mbx__get_item_of(w->s, w->txn, mailbox_id, item_id, &w->scratch, &it)))
    return err;
  uint64_t cn = it->cn;
  if (cn_r)
    *cn_r = cn;
  return cn == if_cn ? 0 : MBX_ECONFLICT;
}

/* Item ids of a folder, newest first (the folder index). */
static int store_folder_items(struct mbx_wtxn *w, uint64_t folder_id, struct mbx_arena *a,
                              uint64_t **ids_r, size_t *n_r, size_t hint)
{
  size_t cap = hint ? hint : 16, n = 0;
  uint64_t *ids = malloc(cap * sizeof(*ids));
  if (!ids)
    return MBX_ENOMEM;
  MDB_cursor *c;
  int rc = mdb_cursor_open(w->txn, w->s->dbi[MBX__DB_FOLDER_INDEX], &c);
  if (rc) {
    free(ids);
    return mbx__store_mdb_err(w->s, rc, "cursor");
  }
  uint8_t kb[8];
  mbx_put_be64(kb, folder_id);
  MDB_val k = mbx__val(kb, 8), v;
  int err = 0;
  for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
       rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
    if (k.mv_size != 24 || memcmp(k.mv_data, kb, 8) != 0)
      break;
    if (n == cap) {
      uint64_t *g = realloc(ids, 2 * cap * sizeof(*ids));
      if (!g) {
        err = MBX_ENOMEM;
        break;
      }
      ids = g;
      cap *= 2;
    }
    ids[n++] = ~mbx_get_be64((uint8_t *)k.mv_data + 16);
  }
  if (rc && rc != MDB_NOTFOUND)
    err = mbx__store_mdb_err(w->s, rc, "cursor");
  mdb_cursor_close(c);
  if (!err) {
    uint64_t *out = mbx_arena_memdup(a, ids, n * sizeof(*ids));
    if (!out)
      err = MBX_ENOMEM;
    *ids_r = out;
    *n_r = n;
  }
  free(ids);
  return err;
}

static int store_empty(struct mbx_wtxn *w, uint64_t mailbox_id, const Mbx__Folder *f,
                       struct mbx_arena *a, uint64_t *count_r)
{
  uint64_t *ids = NULL;
  size_t n = 0;
  int err = store_folder_items(w, f->id, a, &ids, &n, (size_t)f->item_count);
  for (size_t i = 0; !err && i < n; i++)
    err = store_delete_op(w, mailbox_id, f->id, ids[i], f->last_cn + 1 + i);
  if (!err && count_r)
    *count_r = n;
  return err;
}

int mbx_store_empty_folder(struct mbx_wtxn *w, uint64_t mailbox_id, uint64_t folder_id,
                           uint64_t *count_r)
{
  int err = store_writable(w);
  if (err)
    return err;
  struct mbx_arena a;
  mbx_arena_init(&a, 0);
  Mbx__Folder *f;
  if (!(err = mbx__get_folder_of(w->s, w->txn, mailbox_id, folder_id, &a, &f)))
    err = store_empty(w, mailbox_id, f, &a, count_r);
  mbx_arena_reset(&a);
  return err;
}

/* ==== prepare: folders ====================================================== */

static int store_put_folder_op(struct mbx_wtxn *w, Mbx__Folder *f)
{
  Mbx__OpPutFolder pf = MBX__OP_PUT_FOLDER__INIT;
  pf.folder = f;
  Mbx__Op op = MBX__OP__INIT;
  op.op_case = MBX__OP__OP_PUT_FOLDER;
  op.put_folder = &pf;
  return store_emit(w, &op);
}

/* Depth of folder id (top level = 1), walking parents; MBX_EINVAL past the limit. */
static int store_depth(struct mbx_wtxn *w, uint64_t mailbox_id, uint64_t id, uint64_t stop_at,
                       struct mbx_arena *a, int *depth_r)
{
  int d = 0;
  while (id) {
    if (id == stop_at || ++d > MBX__FOLDER_DEPTH_MAX)
      return MBX_EINVAL;
    Mbx__Folder *f;
    int err = mbx__get_folder_of(w->s, w->txn, mailbox_id, id, a, &f);
    if (err)
      return err;
    id = f->parent_id;
  }
  *depth_r = d;
  return 0;
}

int mbx_store_create_folder(struct mbx_wtxn *w, uint64_t mailbox_id, uint64_t parent_id,
                            const char *name, Mbx__FolderClass cls, struct mbx_arena *a,
                            Mbx__Folder **folder_r)
{
  int err = store_writable(w);
  if (err)
    return err;
  if (!name || !store_folder_name_ok(name) || (int)cls < 0 || cls > MBX__FOLDER_CLASS__FOLDER_NOTES)
    return MBX_EINVAL;
  Mbx__Mailbox *mb;
  int depth;
  uint64_t other, id;
  if ((err = mbx__get_mailbox(w->s, w->txn, mailbox_id, a, &mb)) ||
      (err = store_depth(w, mailbox_id, parent_id, 0, a, &depth)))
    return err;
  if (depth >= MBX__FOLDER_DEPTH_MAX)
    return MBX_EINVAL;
  err = mbx__find_child(w->s, w->txn, mailbox_id, parent_id, name, a, &other);
  if (err != MBX_ENOTFOUND)
    return err ? err : MBX_EEXIST;
  if ((err = store_next_id(w, &id)))
    return err;
  Mbx__Folder *f = mbx_arena_pbnew(a, &mbx__folder__descriptor);
  if (!f)
    return MBX_ENOMEM;
  f->id = id;
  f->mailbox_id = mailbox_id;
  f->has_parent_id = f->has_folder_class = f->has_well_known = true;
  f->has_hcn = f->has_created_hcn = true;
  f->parent_id = parent_id;
  f->name = (char *)name;
  f->folder_class = cls;
  f->well_known = MBX__WELL_KNOWN__WK_NONE;
  f->hcn = f->created_hcn = mb->last_hcn + 1;
  if ((err = store_put_folder_op(w, f)))
    return err;
  return folder_r ? mbx__get_folder(w->s, w->txn, id, a, folder_r) : 0;
}

int mbx_store_update_folder(struct mbx_wtxn *w, uint64_t mailbox_id, uint64_t folder_id,
                            const char *name, bool has_parent, uint64_t parent_id,
                            struct mbx_arena *a, Mbx__Folder **folder_r)
{
  int err = store_writable(w);
  if (err)
    return err;
  if (name && !store_folder_name_ok(name))
    return MBX_EINVAL;
  Mbx__Mailbox *mb;
  Mbx__Folder *f;
  if ((err = mbx__get_mailbox(w->s, w->txn, mailbox_id, a, &mb)) ||
      (err = mbx__get_folder_of(w->s, w->txn, mailbox_id, folder_id, a, &f)))
    return err;
  if (f->well_known != MBX__WELL_KNOWN__WK_NONE)
    return MBX_EPERM;
  uint64_t parent = has_parent ? parent_id : f->parent_id, other;
  if (has_parent) {
    int depth;
    /* Walking up from the new parent must not meet the folder itself. */
    if ((err = store_depth(w, mailbox_id, parent, folder_id, a, &depth)))
      return err;
    if (depth >= MBX__FOLDER_DEPTH_MAX)
      return MBX_EINVAL;
  }
  const char *new_name = name ? name : f->name;
  err = mbx__find_child(w->s, w->txn, mailbox_id, parent, new_name, a, &other);
  if (err == 0 && other != folder_id)
    return MBX_EEXIST;
  if (err && err != MBX_ENOTFOUND)
    return err;
  f->name = (char *)new_name;
  f->parent_id = parent;
  f->has_parent_id = f->has_hcn = true;
  f->hcn = mb->last_hcn + 1;
  if ((err = store_put_folder_op(w, f)))
    return err;
  return folder_r ? mbx__get_folder(w->s, w->txn, folder_id, a, folder_r) : 0;
}

/* Children of a folder (folder_names prefix mailbox, parent). */
static int store_children(struct mbx_wtxn *w, uint64_t mailbox_id, uint64_t parent_id,
                          uint64_t **ids, size_t *n, size_t *cap)
{
  MDB_cursor *c;
  int rc = mdb_cursor_open(w->txn, w->s->dbi[MBX__DB_FOLDER_NAMES], &c);
  if (rc)
    return mbx__store_mdb_err(w->s, rc, "cursor");
  uint8_t kb[16];
  mbx_put_be64(kb, mailbox_id);
  mbx_put_be64(kb + 8, parent_id);
  MDB_val k = mbx__val(kb, 16), v;
  int err = 0;
  for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
       rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
    if (k.mv_size < 16 || memcmp(k.mv_data, kb, 16) != 0 || v.mv_size != 8)
      break;
    if (*n == *cap) {
      size_t nc = *cap ? *cap * 2 : 16;
      uint64_t *g = realloc(*ids, nc * sizeof(**ids));
      if (!g) {
        err = MBX_ENOMEM;
        break;
      }
      *ids = g;
      *cap = nc;
    }
    (*ids)[(*n)++] = mbx_get_be64(v.mv_data);
  }
  if (!err && rc && rc != MDB_NOTFOUND)
    err = mbx__store_mdb_err(w->s, rc, "cursor");
  mdb_cursor_close(c);
  return err;
}

int mbx_store_delete_folder(struct mbx_wtxn *w, uint64_t mailbox_id, uint64_t folder_id)
{
  int err = store_writable(w);
  if (err)
    return err;
  struct mbx_arena a;
  mbx_arena_init(&a, STORE_PREP_ARENA_LIMIT);
  uint64_t *ids = NULL;
  size_t n = 0, cap = 0;
  Mbx__Mailbox *mb;
  Mbx__Folder *f;
  if ((err = mbx__get_mailbox(w->s, w->txn, mailbox_id, &a, &mb)) ||
      (err = mbx__get_folder_of(w->s, w->txn, mailbox_id, folder_id, &a, &f)))
    goto out;
  if (f->well_known != MBX__WELL_KNOWN__WK_NONE) {
    err = MBX_EPERM;
    goto out;
  }
  /* Breadth first: a parent always precedes its children, so walking the list
   * backwards deletes leaves first. */
  if (!(ids = malloc(16 * sizeof(*ids)))) {
    err = MBX_ENOMEM;
    goto out;
  }
  cap = 16;
  ids[n++] = folder_id;
  for (size_t i = 0; i < n && !err; i++)
    err = store_children(w, mailbox_id, ids[i], &ids, &n, &cap);
  uint64_t hcn = mb->last_hcn;
  for (size_t i = n; i-- > 0 && !err;) {
    Mbx__Folder *sub;
    if ((err = mbx__get_folder_of(w->s, w->txn, mailbox_id, ids[i], &a, &sub)) ||
        (err = store_empty(w, mailbox_id, sub, &a, NULL)))
      break;
    Mbx__OpDeleteFolder d = MBX__OP_DELETE_FOLDER__INIT;
    d.mailbox_id = mailbox_id;
    d.folder_id = ids[i];
    d.hcn = ++hcn;
    Mbx__Op op = MBX__OP__INIT;
    op.op_case = MBX__OP__OP_DELETE_FOLDER;
    op.delete_folder = &d;
    err = store_emit(w, &op);
  }
out:
  free(ids);
  mbx_arena_reset(&a);
  return err;
}

/* ==== prepare: copy layout (replication) ==================================== */

#define STORE_COPIES_MAX    16
#define STORE_NODE_NAME_MAX 63

int mbx_store_set_copies(struct mbx_wtxn *w, const Mbx__CopyLayout *layout)
{
  int err = store_writable(w);
  if (err)
    return err;
  if (!layout)
    return MBX_EINVAL;
  if (layout->n_copies > STORE_COPIES_MAX)
    return MBX_ELIMIT;
  for (size_t i = 0; i < layout->n_copies; i++) {
    const char *n = layout->copies[i] ? layout->copies[i]->node : NULL;
    if (!n || !*n || strlen(n) > STORE_NODE_NAME_MAX)
      return MBX_EINVAL;
    for (size_t j = 0; j < i; j++)
      if (strcmp(layout->copies[j]->node, n) == 0)
        return MBX_EEXIST; /* one copy per node */
  }
  Mbx__OpSetCopies sc = MBX__OP_SET_COPIES__INIT;
  sc.has_db_uid = true;
  sc.db_uid = mbx_store_db_uid(w->s);
  sc.layout = (Mbx__CopyLayout *)layout;
  Mbx__Op op = MBX__OP__INIT;
  op.op_case = MBX__OP__OP_SET_COPIES;
  op.set_copies = &sc;
  return store_emit(w, &op);
}

/* ==== epochs ================================================================ */

int mbx__epoch_history_add(struct mbx_wtxn *w, uint64_t epoch, uint64_t first_lsn)
{
  struct mbx_store *s = w->s;
  MDB_cursor *c;
  int rc = mdb_cursor_open(w->txn, s->dbi[MBX__DB_EPOCHS], &c);
  if (rc)
    return mbx__store_mdb_err(s, rc, "cursor");
  MDB_val k, v;
  rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
  mdb_cursor_close(c);
  if (rc == 0 && k.mv_size == 8 && v.mv_size == 8 &&
      (mbx_get_be64(k.mv_data) >= epoch || mbx_get_be64(v.mv_data) > first_lsn)) {
    mbx_error("store %s: epoch %llu at lsn %llu does not follow epoch %llu from lsn %llu",
              s->name, (unsigned long long)epoch, (unsigned long long)first_lsn,
              (unsigned long long)mbx_get_be64(k.mv_data),
              (unsigned long long)mbx_get_be64(v.mv_data));
    return MBX_ECORRUPT;
  }
  if (rc && rc != MDB_NOTFOUND)
    return mbx__store_mdb_err(s, rc, "epochs last");
  uint8_t kb[8], vb[8];
  mbx_put_be64(kb, epoch);
  mbx_put_be64(vb, first_lsn);
  MDB_val kv = mbx__val(kb, 8), vv = mbx__val(vb, 8);
  return mbx__store_mdb_err(s, mdb_put(w->txn, s->dbi[MBX__DB_EPOCHS], &kv, &vv, 0), "epochs put");
}

int mbx_store_begin_epoch(struct mbx_store *s, uint64_t epoch, uint64_t *lsn_r)
{
  if (lsn_r)
    *lsn_r = 0;
  if (epoch <= mbx_store_epoch(s))
    return MBX_EINVAL;
  if (atomic_load(&s->rq_records))
    return MBX_ENOTACTIVE;            /* a passive with records to replay: not ours to begin */
  struct mbx_wtxn *w;
  int err = mbx_store_wtxn_begin(s, &w);
  if (err)
    return err;
  uint64_t next_id = 0;
  if ((err = mbx_store_unit_begin(w)) == 0 &&
      (err = mbx__get_u64(s, w->txn, MBX__DB_META, "next_id", 7, &next_id)) == 0) {
    Mbx__OpBeginEpoch be = MBX__OP_BEGIN_EPOCH__INIT;
    be.epoch = epoch;
    be.first_lsn = mbx_store_last_lsn(s) + 1;
    be.next_id = next_id + MBX_STORE_EPOCH_ID_MARGIN;
    be.cn_floor = (epoch - 1) << MBX_STORE_EPOCH_CN_SHIFT;
    Mbx__Op op = MBX__OP__INIT;
    op.op_case = MBX__OP__OP_BEGIN_EPOCH;
    op.begin_epoch = &be;
    err = mbx__store_emit(w, &op);
  }
  mbx_store_unit_end(w, err);
  if (err) {
    mbx_store_wtxn_abort(&w);
    return err;
  }
  uint64_t lsn = 0;
  if ((err = mbx_store_wtxn_commit(&w, &lsn)) == 0) {
    mbx_notice("store %s: epoch %llu begins at lsn %llu", s->name, (unsigned long long)epoch,
               (unsigned long long)lsn);
    if (lsn_r)
      *lsn_r = lsn;
  }
  return err;
}

int mbx_store_epoch_history(struct mbx_rtxn *r, struct mbx_store_epoch *v, size_t cap,
                            size_t *n_r)
{
  struct mbx_store *s = r->s;
  *n_r = 0;
  MDB_cursor *c;
  int rc = mdb_cursor_open(r->txn, s->dbi[MBX__DB_EPOCHS], &c);
  if (rc)
    return mbx__store_mdb_err(s, rc, "cursor");
  MDB_val k, d;
  size_t n = 0;
  int err = 0;
  for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == 0;
       rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
    if (k.mv_size != 8 || d.mv_size != 8) {
      err = MBX_ECORRUPT;
      break;
    }
    if (n < cap) {
      v[n].epoch = mbx_get_be64(k.mv_data);
      v[n].first_lsn = mbx_get_be64(d.mv_data);
    }
    n++;
  }
  mdb_cursor_close(c);
  if (!err && rc != MDB_NOTFOUND)
    err = mbx__store_mdb_err(s, rc, "epochs");
  if (!err && n > cap)
    err = MBX_ELIMIT;
  *n_r = n < cap ? n : cap;
  return err;
}

int mbx_store_epoch_of_lsn(struct mbx_rtxn *r, uint64_t lsn, uint64_t *epoch_r,
                           uint64_t *end_lsn_r)
{
  struct mbx_store *s = r->s;
  *epoch_r = 0;
  if (end_lsn_r)
    *end_lsn_r = 0;
  uint64_t last = mbx_store_last_lsn(s);
  if (lsn == 0 || lsn > last)
    return MBX_ENOTFOUND;
  MDB_cursor *c;
  int rc = mdb_cursor_open(r->txn, s->dbi[MBX__DB_EPOCHS], &c);
  if (rc)
    return mbx__store_mdb_err(s, rc, "cursor");
  MDB_val k, d;
  uint64_t found = 0, end = last;
  for (rc = mdb_cursor_get(c, &k, &d, MDB_LAST); rc == 0;
       rc = mdb_cursor_get(c, &k, &d, MDB_PREV)) {
    if (k.mv_size != 8 || d.mv_size != 8)
      break;
    uint64_t first = mbx_get_be64(d.mv_data);
    if (first <= lsn) {
      found = mbx_get_be64(k.mv_data);
      break;
    }
    end = first - 1;
  }
  mdb_cursor_close(c);
  if (!found)
    return MBX_ENOTFOUND;
  *epoch_r = found;
  if (end_lsn_r)
    *end_lsn_r = end;
  return 0;
}

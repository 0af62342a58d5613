/* store_read.c — the read side of the store: short read transactions, lookups,
 * listings (newest first via the folder index), the content digest that compares
 * copies, and reading the log for shipping. Any thread. */
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "mbx_error.h"
#include "body.h"
#include "store_internal.h"

#define READ_LIST_DEFAULT 100
#define READ_LIST_MAX     1000

int mbx_store_rtxn_begin(struct mbx_store *s, struct mbx_rtxn **r_r)
{
  struct mbx_rtxn *r = calloc(1, sizeof(*r));
  if (!r)
    return MBX_ENOMEM;
  int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &r->txn);
  if (rc) {
    free(r);
    return mbx__store_mdb_err(s, rc, "read txn begin");
  }
  r->s = s;
  *r_r = r;
  return 0;
}

void mbx_store_rtxn_end(struct mbx_rtxn **r)
{
  if (!*r)
    return;
  mdb_txn_abort((*r)->txn);
  free(*r);
  *r = NULL;
}

int mbx_store_lookup_address(struct mbx_rtxn *r, const char *address, uint64_t *mailbox_id_r)
{
  char lower[MBX__ADDRESS_MAX + 1];
  size_t n = address ? strlen(address) : 0;
  if (n == 0 || n > MBX__ADDRESS_MAX)
    return MBX_ENOTFOUND;
  for (size_t i = 0; i < n; i++)
    lower[i] = (address[i] >= 'A' && address[i] <= 'Z') ? (char)(address[i] + 32) : address[i];
  return mbx__get_u64(r->s, r->txn, MBX__DB_ADDRESSES, lower, n, mailbox_id_r);
}

int mbx_store_get_mailbox(struct mbx_rtxn *r, uint64_t mailbox_id, struct mbx_arena *a,
                          Mbx__Mailbox **mb_r)
{
  return mbx__get_mailbox(r->s, r->txn, mailbox_id, a, mb_r);
}

int mbx_store_list_mailboxes(struct mbx_rtxn *r, struct mbx_arena *a, Mbx__Mailbox ***v_r,
                             size_t *n_r)
{
  MDB_stat st;
  int rc = mdb_stat(r->txn, r->s->dbi[MBX__DB_MAILBOXES], &st);
  if (rc)
    return mbx__store_mdb_err(r->s, rc, "stat");
  Mbx__Mailbox **v = mbx_arena_alloc(a, (st.ms_entries + 1) * sizeof(*v));
  if (!v)
    return MBX_ENOMEM;
  MDB_cursor *c;
  if ((rc = mdb_cursor_open(r->txn, r->s->dbi[MBX__DB_MAILBOXES], &c)))
    return mbx__store_mdb_err(r->s, rc, "cursor");
  size_t n = 0;
  int err = 0;
  MDB_val k, d;
  for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == 0 && n < st.ms_entries;
       rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
    if (!(v[n] = mbx__mailbox__unpack(&a->pb, d.mv_size, d.mv_data))) {
      err = MBX_ECORRUPT;
      break;
    }
    n++;
  }
  mdb_cursor_close(c);
  if (!err && rc && rc != MDB_NOTFOUND)
    err = mbx__store_mdb_err(r->s, rc, "cursor");
  *v_r = v;
  *n_r = n;
  return err;
}

/* Children folder ids of (mailbox, parent), in name order, appended to v. */
static int read_children(struct mbx_rtxn *r, uint64_t mailbox_id, uint64_t parent_id,
                         struct mbx_arena *a, Mbx__Folder ***v, size_t *n, size_t *cap)
{
  MDB_cursor *c;
  int rc = mdb_cursor_open(r->txn, r->s->dbi[MBX__DB_FOLDER_NAMES], &c);
  if (rc)
    return mbx__store_mdb_err(r->s, rc, "cursor");
  uint8_t kb[16];
  mbx_put_be64(kb, mailbox_id);
  mbx_put_be64(kb + 8, parent_id);
  MDB_val k = mbx__val(kb, 16), d;
  int err = 0;
  for (rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE); rc == 0;
       rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
    if (k.mv_size < 16 || memcmp(k.mv_data, kb, 16) != 0 || d.mv_size != 8)
      break;
    if (*n == *cap) {
      size_t nc = *cap * 2 + 16;
      Mbx__Folder **g = mbx_arena_alloc(a, nc * sizeof(*g));
      if (!g) {
        err = MBX_ENOMEM;
        break;
      }
      if (*n)
        memcpy(g, *v, *n * sizeof(*g));
      *v = g;
      *cap = nc;
    }
    if ((err = mbx__get_folder(r->s, r->txn, mbx_get_be64(d.mv_data), a, &(*v)[*n])))
      break;
    (*n)++;
  }
  mdb_cursor_close(c);
  if (!err && rc && rc != MDB_NOTFOUND)
    err = mbx__store_mdb_err(r->s, rc, "cursor");
  return err;
}

int mbx_store_list_folders(struct mbx_rtxn *r, uint64_t mailbox_id, struct mbx_arena *a,
                           Mbx__Folder ***v_r, size_t *n_r)
{
  Mbx__Mailbox *mb;
  int err = mbx__get_mailbox(r->s, r->txn, mailbox_id, a, &mb);
  if (err)
    return err;
  Mbx__Folder **v = NULL;
  size_t n = 0, cap = 0;
  /* Breadth first from the top: parents before children. */
  err = read_children(r, mailbox_id, 0, a, &v, &n, &cap);
  for (size_t i = 0; !err && i < n; i++)
    err = read_children(r, mailbox_id, v[i]->id, a, &v, &n, &cap);
  *v_r = v;
  *n_r = n;
  return err;
}

int mbx_store_get_folder(struct mbx_rtxn *r, uint64_t mailbox_id, uint64_t folder_id,
                         struct mbx_arena *a, Mbx__Folder **folder_r)
{
  return mbx__get_folder_of(r->s, r->txn, mailbox_id, folder_id, a, folder_r);
}

int mbx_store_find_folder(struct mbx_rtxn *r, uint64_t mailbox_id, const char *path,
                          struct mbx_arena *a, Mbx__Folder **folder_r)
{
  static const struct {
    const char *alias, *name;
  } aliases[] = {{"deleted", "Deleted Items"},
                 {"trash", "Deleted Items"},
                 {"sent", "Sent Items"},
                 {"junk", "Junk Email"},
                 {"spam", "Junk Email"}};
  if (!path || !*path || strlen(path) > 4096)
    return MBX_ENOTFOUND;
  char *p = mbx_arena_strdup(a, path), *save = NULL;
  if (!p)
    return MBX_ENOMEM;
  uint64_t id = 0;
  bool first = true;
  for (char *part = strtok_r(p, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
    uint64_t child;
    int err = mbx__find_child(r->s, r->txn, mailbox_id, id, part, a, &child);
    for (size_t i = 0; err == MBX_ENOTFOUND && first && i < sizeof(aliases) / sizeof(aliases[0]);
         i++)
      if (strcasecmp(part, aliases[i].alias) == 0)
        err = mbx__find_child(r->s, r->txn, mailbox_id, 0, aliases[i].name, a, &child);
    if (err)
      return err;
    id = child;
    first = false;
  }
  if (!id)
    return MBX_ENOTFOUND;
  return mbx__get_folder_of(r->s, r->txn, mailbox_id, id, a, folder_r);
}

int mbx_store_list_items(struct mbx_rtxn *r, uint64_t mailbox_id, uint64_t folder_id,
                         uint32_t offset, uint32_t limit, struct mbx_arena *a, Mbx__Item ***v_r,
                         size_t *n_r, uint64_t *total_r)
{
  Mbx__Folder *f;
  int err = mbx__get_folder_of(r->s, r->txn, mailbox_id, folder_id, a, &f);
  if (err)
    return err;
  if (limit == 0)
    limit = READ_LIST_DEFAULT;
  if (limit > READ_LIST_MAX)
    limit = READ_LIST_MAX;
  Mbx__Item **v = mbx_arena_alloc(a, limit * sizeof(*v));
  if (!v)
    return MBX_ENOMEM;
  MDB_cursor *c;
  int rc = mdb_cursor_open(r->txn, r->s->dbi[MBX__DB_FOLDER_INDEX], &c);
  if (rc)
    return mbx__store_mdb_err(r->s, rc, "cursor");
  uint8_t kb[8];
  mbx_put_be64(kb, folder_id);
  MDB_val k = mbx__val(kb, 8), d;
  size_t n = 0;
  uint64_t skipped = 0;
  for (rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE); rc == 0 && n < limit;
       rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
    if (k.mv_size != 24 || memcmp(k.mv_data, kb, 8) != 0)
      break;
    if (skipped < offset) {
      skipped++;
      continue;
    }
    if ((err = mbx__get_item(r->s, r->txn, ~mbx_get_be64((uint8_t *)k.mv_data + 16), a, &v[n])))
      break;
    n++;
  }
  mdb_cursor_close(c);
  if (!err && rc && rc != MDB_NOTFOUND)
    err = mbx__store_mdb_err(r->s, rc, "cursor");
  if (err == MBX_ENOTFOUND)
    err = MBX_ECORRUPT; /* an index entry without its item */
  *v_r = v;
  *n_r = n;
  if (total_r)
    *total_r = f->item_count;
  return err;
}

int mbx_store_get_item(struct mbx_rtxn *r, uint64_t mailbox_id, uint64_t item_id,
                       struct mbx_arena *a, Mbx__Item **item_r, const uint8_t **body_r,
                       size_t *body_len_r)
{
  int err = mbx__get_item_of(r->s, r->txn, mailbox_id, item_id, a, item_r);
  if (err || !body_r)
    return err;
  uint8_t kb[8];
  mbx_put_be64(kb, item_id);
  MDB_val k = mbx__val(kb, 8), d;
  int rc = mdb_get(r->txn, r->s->dbi[MBX__DB_BODIES], &k, &d);
  *body_r = NULL;
  if (body_len_r)
    *body_len_r = 0;
  if (rc == MDB_NOTFOUND)
    return 0;
  if (rc)
    return mbx__store_mdb_err(r->s, rc, "get body");
  size_t len;
  err = mbx_body_decode(d.mv_data, d.mv_size, (*item_r)->size, a, body_r, &len);
  if (err) {
    mbx_error("db %s: item %" PRIu64 ": stored body does not decode", r->s->name, item_id);
    *body_r = NULL;
    return err;
  }
  if (body_len_r)
    *body_len_r = len;
  return 0;
}

/* ==== digest ================================================================ */

/* Hashes every (key, value) of one sub-database in key order, framed by lengths so
 * that no two different contents hash the same stream. */
static int read_digest_db(struct mbx_rtxn *r, EVP_MD_CTX *ctx, enum mbx__db db, uint64_t *n_r)
{
  MDB_cursor *c;
  int rc = mdb_cursor_open(r->txn, r->s->dbi[db], &c);
  if (rc)
    return mbx__store_mdb_err(r->s, rc, "cursor");
  uint8_t tag = (uint8_t)db, hdr[12];
  EVP_DigestUpdate(ctx, &tag, 1);
  uint64_t n = 0;
  MDB_val k, d;
  for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == 0;
       rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
    mbx_put_be32(hdr, (uint32_t)k.mv_size);
    mbx_put_be64(hdr + 4, d.mv_size);
    EVP_DigestUpdate(ctx, hdr, sizeof(hdr));
    EVP_DigestUpdate(ctx, k.mv_data, k.mv_size);
    EVP_DigestUpdate(ctx, d.mv_data, d.mv_size);
    n++;
  }
  mdb_cursor_close(c);
  if (rc != MDB_NOTFOUND)
    return mbx__store_mdb_err(r->s, rc, "cursor");
  if (n_r)
    *n_r = n;
  return 0;
}

int mbx_store_digest(struct mbx_rtxn *r, struct mbx_store_digest *d)
{
  memset(d, 0, sizeof(*d));
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
    EVP_MD_CTX_free(ctx);
    return MBX_ENOMEM;
  }
  /* Logical content only: the change indexes, folder index and log are derived or
   * per-copy history; records are packed deterministically by apply. */
  int err;
  if ((err = read_digest_db(r, ctx, MBX__DB_MAILBOXES, &d->mailboxes)) ||
      (err = read_digest_db(r, ctx, MBX__DB_ADDRESSES, NULL)) ||
      (err = read_digest_db(r, ctx, MBX__DB_FOLDERS, &d->folders)) ||
      (err = read_digest_db(r, ctx, MBX__DB_ITEMS, &d->items)) ||
      (err = read_digest_db(r, ctx, MBX__DB_BODIES, NULL))) {
    EVP_MD_CTX_free(ctx);
    return err;
  }
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx, d->sha256, &len);
  EVP_MD_CTX_free(ctx);
  mbx__get_u64(r->s, r->txn, MBX__DB_META, "last_lsn", 8, &d->last_lsn);
  mbx__get_u64(r->s, r->txn, MBX__DB_META, "epoch", 5, &d->epoch);
  return 0;
}

/* ==== log =================================================================== */

int mbx_store_read_log(struct mbx_rtxn *r, uint64_t lsn, const uint8_t **rec_r, size_t *len_r)
{
  uint8_t kb[8];
  mbx_put_be64(kb, lsn);
  MDB_val k = mbx__val(kb, 8), d;
  int rc = mdb_get(r->txn, r->s->dbi[MBX__DB_LOG], &k, &d);
  if (rc)
    return mbx__store_mdb_err(r->s, rc, "read log");
  *rec_r = d.mv_data;
  *len_r = d.mv_size;
  return 0;
}

uint64_t mbx_store_first_lsn(struct mbx_rtxn *r)
{
  MDB_cursor *c;
  if (mdb_cursor_open(r->txn, r->s->dbi[MBX__DB_LOG], &c))
    return 0;
  MDB_val k, d;
  uint64_t lsn = 0;
  if (mdb_cursor_get(c, &k, &d, MDB_FIRST) == 0 && k.mv_size == 8)
    lsn = mbx_get_be64(k.mv_data);
  mdb_cursor_close(c);
  return lsn;
}

/* store_repl_fixture.h — shared by the store replication tests: a mixed workload
 * (with a copy layout), reading an active's log records out as owned copies, and
 * shipping them to a passive through mbx_store_receive in uneven batches. */
#ifndef MBX_STORE_REPL_FIXTURE_H
#define MBX_STORE_REPL_FIXTURE_H

#include "logrec.h"
#include "store_fixture.h"

struct rx_recs {
  uint8_t **data;
  size_t *len;
  uint64_t first, n; /* records first … first+n-1 */
};

/* Copies records [from, to] of f's log (arena-owned). */
static inline struct rx_recs rx_read(struct fx *f, uint64_t from, uint64_t to)
{
  struct rx_recs x = {0};
  x.first = from;
  x.n = to >= from ? to - from + 1 : 0;
  x.data = mbx_arena_zalloc(&f->a, (x.n + 1) * sizeof(*x.data));
  x.len = mbx_arena_zalloc(&f->a, (x.n + 1) * sizeof(*x.len));
  struct mbx_rtxn *r;
  if (mbx_store_rtxn_begin(f->s, &r) != 0)
    abort();
  for (uint64_t i = 0; i < x.n; i++) {
    const uint8_t *d;
    size_t l;
    if (mbx_store_read_log(r, from + i, &d, &l) != 0)
      abort();
    x.data[i] = mbx_arena_memdup(&f->a, d, l);
    x.len[i] = l;
  }
  mbx_store_rtxn_end(&r);
  return x;
}

static inline int64_t rx_time(const struct rx_recs *x, uint64_t lsn)
{
  struct mbx_logrec rec;
  if (mbx_logrec_decode(x->data[lsn - x->first], x->len[lsn - x->first], &rec) != 0)
    abort();
  return rec.time_us;
}

/* Ships all of x to s in batches of 1, 2, 3, 4, 1, 2, … records. */
static inline int rx_ship(struct mbx_store *s, const struct rx_recs *x, int64_t before_us)
{
  uint64_t i = 0, size = 1;
  while (i < x->n) {
    uint64_t k = size < x->n - i ? size : x->n - i, bad = 0;
    int rc = mbx_store_receive(s, (const uint8_t *const *)x->data + i, x->len + i, (size_t)k,
                               before_us, &bad);
    if (rc)
      return rc;
    i += k;
    size = size % 4 + 1;
  }
  return 0;
}

static inline void rx_set_layout(struct fx *f)
{
  Mbx__CopyEntry e[3] = {MBX__COPY_ENTRY__INIT, MBX__COPY_ENTRY__INIT, MBX__COPY_ENTRY__INIT};
  Mbx__CopyEntry *pe[3] = {&e[0], &e[1], &e[2]};
  const char *names[3] = {"node1", "node2", "node3"};
  for (int i = 0; i < 3; i++) {
    e[i].node = (char *)names[i];
    e[i].has_preference = true;
    e[i].preference = (uint32_t)i + 1;
  }
  e[2].has_lag_s = true;
  e[2].lag_s = 60;
  Mbx__CopyLayout l = MBX__COPY_LAYOUT__INIT;
  l.n_copies = 3;
  l.copies = pe;
  fx_begin(f);
  if (mbx_store_unit_begin(f->w) != 0)
    abort();
  int rc = mbx_store_set_copies(f->w, &l);
  mbx_store_unit_end(f->w, rc);
  if (rc != 0)
    abort();
  fx_commit(f);
}

/* Mailboxes, deliveries, folders, flags, moves, copies, deletes, a layout. */
static inline void rx_workload(struct fx *f)
{
  uint64_t mb = fx_mailbox(f, "u@x.org");
  fx_mailbox(f, "v@x.org");
  rx_set_layout(f);
  uint64_t ids[8];
  for (int i = 0; i < 8; i++)
    ids[i] = fx_deliver(f, i % 2 ? "u@x.org" : "v@x.org", "w");
  Mbx__Item *it;
  Mbx__Folder *p;
  fx_begin(f);
  const char *cats[] = {"Red"};
  if (mbx_store_create_folder(f->w, mb, 0, "P", 0, &f->a, &p) ||
      mbx_store_set_flags(f->w, mb, ids[1], 1, 0, cats, 1, &f->a, &it) ||
      mbx_store_move_item(f->w, mb, ids[3], p->id, &f->a, &it) ||
      mbx_store_copy_item(f->w, mb, ids[5], p->id, &f->a, &it))
    abort();
  fx_commit(f);
  fx_begin(f);
  if (mbx_store_delete_item(f->w, mb, ids[7], false) ||
      mbx_store_delete_item(f->w, mb, ids[5], true))
    abort();
  fx_commit(f);
  for (int i = 0; i < 5; i++)
    fx_deliver(f, "u@x.org", "more");
  fx_begin(f);
  if (mbx_store_delete_folder(f->w, mb, p->id))
    abort();
  fx_commit(f);
}

#endif

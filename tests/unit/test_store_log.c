/* test_store_log.c — units, the log and replay: a failed unit leaves no trace and no
 * op; every commit writes one record at lsn+1; replaying store A's log onto a fresh
 * store B gives the same digest; a damaged record is refused and not applied. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "logrec.h"
#include "store_fixture.h"

static Mbx__LogOps *read_ops(struct fx *f, uint64_t lsn, struct mbx_logrec *rec)
{
  struct mbx_rtxn *r;
  const uint8_t *data;
  size_t len;
  assert_int_equal(mbx_store_rtxn_begin(f->s, &r), 0);
  assert_int_equal(mbx_store_read_log(r, lsn, &data, &len), 0);
  uint8_t *copy = mbx_arena_memdup(&f->a, data, len);
  mbx_store_rtxn_end(&r);
  assert_int_equal(mbx_logrec_decode(copy, len, rec), 0);
  Mbx__LogOps *ops = mbx_logrec_unpack_ops(rec, &f->a.pb);
  assert_non_null(ops);
  return ops;
}

static void test_unit_rollback(void **state)
{
  (void)state;
  struct fx *f = fx_new();
  uint64_t mb = fx_mailbox(f, "u@x.org");
  uint64_t inbox = fx_folder_id(f, mb, "Inbox");
  Mbx__Item *it;
  Mbx__Folder *fo;
  fx_begin(f);
  /* Unit 1 succeeds. */
  assert_int_equal(mbx_store_unit_begin(f->w), 0);
  int rc =
      mbx_store_deliver(f->w, "u@x.org", (const uint8_t *)"Subject: 1\r\n\r\n", 14, &f->a, &it);
  assert_int_equal(rc, 0);
  uint64_t kept = it->id;
  mbx_store_unit_end(f->w, rc);
  /* Unit 2 does real work, then fails: all of it must vanish. */
  assert_int_equal(mbx_store_unit_begin(f->w), 0);
  assert_int_equal(mbx_store_create_folder(f->w, mb, 0, "Ghost", 0, &f->a, &fo), 0);
  assert_int_equal(
      mbx_store_deliver(f->w, "u@x.org", (const uint8_t *)"Subject: 2\r\n\r\n", 14, &f->a, &it), 0);
  uint64_t ghost_item = it->id;
  rc = mbx_store_create_folder(f->w, mb, 0, "ghost", 0, &f->a, &fo);
  assert_int_equal(rc, MBX_EEXIST);
  mbx_store_unit_end(f->w, rc);
  /* Unit 3 succeeds. */
  assert_int_equal(mbx_store_unit_begin(f->w), 0);
  rc = mbx_store_create_folder(f->w, mb, 0, "Real", 0, &f->a, &fo);
  assert_int_equal(rc, 0);
  mbx_store_unit_end(f->w, rc);
  uint64_t lsn = fx_commit(f);
  assert_int_equal(lsn, 2);

  assert_int_equal(fx_folder_id(f, mb, "Ghost"), 0);
  assert_true(fx_folder_id(f, mb, "Real") != 0);
  Mbx__Folder *in = fx_folder(f, mb, inbox);
  assert_int_equal(in->item_count, 1);
  struct mbx_rtxn *r;
  assert_int_equal(mbx_store_rtxn_begin(f->s, &r), 0);
  assert_int_equal(mbx_store_get_item(r, mb, kept, &f->a, &it, NULL, NULL), 0);
  assert_int_equal(mbx_store_get_item(r, mb, ghost_item, &f->a, &it, NULL, NULL), MBX_ENOTFOUND);
  mbx_store_rtxn_end(&r);
  /* The record holds exactly the two successful ops. */
  struct mbx_logrec rec;
  Mbx__LogOps *ops = read_ops(f, 2, &rec);
  assert_int_equal(rec.lsn, 2);
  assert_int_equal(rec.epoch, 1);
  assert_int_equal(ops->n_ops, 2);
  assert_int_equal(ops->ops[0]->op_case, MBX__OP__OP_PUT_ITEM);
  assert_int_equal(ops->ops[0]->put_item->item->id, kept);
  assert_int_equal(ops->ops[1]->op_case, MBX__OP__OP_PUT_FOLDER);
  assert_string_equal(ops->ops[1]->put_folder->folder->name, "Real");
  fx_free(f);
}

static void test_log_records(void **state)
{
  (void)state;
  struct fx *f = fx_new();
  assert_int_equal(mbx_store_last_lsn(f->s), 0);
  fx_mailbox(f, "u@x.org");
  for (uint64_t i = 2; i <= 5; i++) {
    fx_deliver(f, "u@x.org", "x");
    assert_int_equal(mbx_store_last_lsn(f->s), i);
  }
  /* A transaction without ops (only failures) writes no record. */
  Mbx__Item *it;
  fx_begin(f);
  assert_int_equal(mbx_store_unit_begin(f->w), 0);
  int rc = mbx_store_deliver(f->w, "nobody@x.org", (const uint8_t *)"x", 1, &f->a, &it);
  mbx_store_unit_end(f->w, rc);
  assert_int_equal(fx_commit(f), 0);
  assert_int_equal(mbx_store_last_lsn(f->s), 5);
  struct mbx_rtxn *r;
  const uint8_t *data;
  size_t len;
  assert_int_equal(mbx_store_rtxn_begin(f->s, &r), 0);
  assert_int_equal(mbx_store_first_lsn(r), 1);
  assert_int_equal(mbx_store_read_log(r, 6, &data, &len), MBX_ENOTFOUND);
  for (uint64_t i = 1; i <= 5; i++) {
    struct mbx_logrec rec;
    assert_int_equal(mbx_store_read_log(r, i, &data, &len), 0);
    assert_int_equal(mbx_logrec_decode(data, len, &rec), 0);
    assert_int_equal(rec.lsn, i);
    assert_true(rec.time_us > 0);
  }
  mbx_store_rtxn_end(&r);
  fx_free(f);
}

static void test_log_truncation(void **state)
{
  (void)state;
  struct mbx_store_options opt;
  mbx_store_options_default(&opt);
  opt.log_retain_bytes = 2000;
  struct fx *f = fx_new_opt(&opt);
  fx_mailbox(f, "u@x.org");
  for (int i = 0; i < 40; i++)
    fx_deliver(f, "u@x.org", "fill the log with some records of a few hundred bytes");
  struct mbx_rtxn *r;
  const uint8_t *data;
  size_t len;
  assert_int_equal(mbx_store_rtxn_begin(f->s, &r), 0);
  uint64_t first = mbx_store_first_lsn(r);
  assert_true(first > 1);
  assert_int_equal(mbx_store_read_log(r, first - 1, &data, &len), MBX_ENOTFOUND);
  assert_int_equal(mbx_store_read_log(r, 41, &data, &len), 0); /* newest always kept */
  size_t total = 0;
  for (uint64_t l = first; l <= 41; l++) {
    assert_int_equal(mbx_store_read_log(r, l, &data, &len), 0);
    total += len;
  }
  assert_true(total <= 2000 + len);
  mbx_store_rtxn_end(&r);
  fx_free(f);
}

/* A mixed workload touching every op kind. */
static void workload(struct fx *f)
{
  uint64_t mb = fx_mailbox(f, "u@x.org");
  fx_mailbox(f, "v@x.org");
  uint64_t inbox = fx_folder_id(f, mb, "Inbox"), cal = fx_folder_id(f, mb, "Calendar");
  uint64_t ids[10];
  for (int i = 0; i < 10; i++)
    ids[i] = fx_deliver(f, i % 2 ? "u@x.org" : "v@x.org", "w");
  Mbx__Item *it;
  Mbx__Folder *p, *q;
  fx_begin(f);
  const char *cats[] = {"Blue"};
  assert_int_equal(mbx_store_unit_begin(f->w), 0);
  assert_int_equal(mbx_store_create_folder(f->w, mb, 0, "P", 0, &f->a, &p), 0);
  assert_int_equal(mbx_store_create_folder(f->w, mb, p->id, "Q", 0, &f->a, &q), 0);
  mbx_store_unit_end(f->w, 0);
  assert_int_equal(mbx_store_unit_begin(f->w), 0);
  assert_int_equal(mbx_store_set_flags(f->w, mb, ids[1], 1, 0, cats, 1, &f->a, &it), 0);
  assert_int_equal(mbx_store_move_item(f->w, mb, ids[3], q->id, &f->a, &it), 0);
  assert_int_equal(mbx_store_copy_item(f->w, mb, ids[5], p->id, &f->a, &it), 0);
  mbx_store_unit_end(f->w, 0);
  assert_int_equal(mbx_store_unit_begin(f->w), 0);
  assert_int_equal(mbx_store_move_item(f->w, mb, ids[7], p->id, &f->a, &it), 0);
  mbx_store_unit_end(f->w, MBX_EINVAL); /* rolled back */
  fx_commit(f);
  fx_begin(f);
  assert_int_equal(mbx_store_delete_item(f->w, mb, ids[7], false), 0);
  assert_int_equal(mbx_store_delete_item(f->w, mb, ids[9], true), 0);
  Mbx__Event ev = MBX__EVENT__INIT;
  ev.subject = "e";
  Mbx__Item tmpl = MBX__ITEM__INIT;
  tmpl.kind = MBX__ITEM_KIND__ITEM_EVENT;
  tmpl.event = &ev;
  assert_int_equal(mbx_store_create_item(f->w, mb, cal, &tmpl, &f->a, &it), 0);
  assert_int_equal(mbx_store_update_folder(f->w, mb, q->id, "Q2", true, 0, &f->a, &q), 0);
  fx_commit(f);
  fx_begin(f);
  assert_int_equal(mbx_store_delete_folder(f->w, mb, p->id), 0);
  uint64_t n;
  assert_int_equal(mbx_store_empty_folder(f->w, mb, inbox, &n), 0);
  fx_commit(f);
  fx_deliver(f, "u@x.org", "last");
}

static void test_replay_determinism(void **state)
{
  (void)state;
  struct fx *a = fx_new(), *b = fx_new();
  workload(a);
  uint64_t last = mbx_store_last_lsn(a->s);
  assert_true(last >= 10);
  struct mbx_rtxn *r;
  assert_int_equal(mbx_store_rtxn_begin(a->s, &r), 0);
  for (uint64_t lsn = 1; lsn <= last; lsn++) {
    const uint8_t *data;
    size_t len;
    assert_int_equal(mbx_store_read_log(r, lsn, &data, &len), 0);
    if (lsn == 5) {
      /* A flipped byte: refused, nothing applied, the good copy goes in after. */
      uint8_t *bad = malloc(len);
      memcpy(bad, data, len);
      bad[len / 2] ^= 0x40;
      struct mbx_store_digest before = fx_digest(b->s);
      assert_int_equal(mbx_store_apply_record(b->s, bad, len), MBX_ECORRUPT);
      struct mbx_store_digest after = fx_digest(b->s);
      assert_memory_equal(before.sha256, after.sha256, 32);
      assert_int_equal(mbx_store_last_lsn(b->s), 4);
      free(bad);
      /* Out of order: refused too. */
      const uint8_t *next;
      size_t nlen;
      assert_int_equal(mbx_store_read_log(r, lsn + 1, &next, &nlen), 0);
      assert_int_equal(mbx_store_apply_record(b->s, next, nlen), MBX_ECORRUPT);
    }
    assert_int_equal(mbx_store_apply_record(b->s, data, len), 0);
    assert_int_equal(mbx_store_last_lsn(b->s), lsn);
  }
  mbx_store_rtxn_end(&r);
  struct mbx_store_digest da = fx_digest(a->s), db = fx_digest(b->s);
  assert_memory_equal(da.sha256, db.sha256, 32);
  assert_int_equal(da.mailboxes, 2);
  assert_int_equal(db.items, da.items);
  assert_int_equal(db.folders, da.folders);
  assert_int_equal(db.last_lsn, last);
  assert_true(da.items > 0);
  /* B's log is A's log, byte for byte. */
  struct mbx_rtxn *ra, *rb;
  assert_int_equal(mbx_store_rtxn_begin(a->s, &ra), 0);
  assert_int_equal(mbx_store_rtxn_begin(b->s, &rb), 0);
  for (uint64_t lsn = 1; lsn <= last; lsn++) {
    const uint8_t *x, *y;
    size_t xl, yl;
    assert_int_equal(mbx_store_read_log(ra, lsn, &x, &xl), 0);
    assert_int_equal(mbx_store_read_log(rb, lsn, &y, &yl), 0);
    assert_int_equal(xl, yl);
    assert_memory_equal(x, y, xl);
  }
  mbx_store_rtxn_end(&ra);
  mbx_store_rtxn_end(&rb);
  /* B, once promoted, keeps going with fresh ids (next_id was replayed). */
  uint64_t mb = 0;
  assert_int_equal(mbx_store_rtxn_begin(b->s, &rb), 0);
  assert_int_equal(mbx_store_lookup_address(rb, "u@x.org", &mb), 0);
  mbx_store_rtxn_end(&rb);
  uint64_t id_a = fx_deliver(a, "u@x.org", "after");
  uint64_t id_b = fx_deliver(b, "u@x.org", "after");
  assert_int_equal(id_a, id_b);
  /* Digest follows content: the same delivery at different times differs. */
  struct mbx_store_digest d1 = fx_digest(a->s), d2 = fx_digest(b->s);
  assert_memory_not_equal(d1.sha256, d2.sha256, 32);
  assert_memory_not_equal(d1.sha256, da.sha256, 32);
  fx_free(a);
  fx_free(b);
}

static void test_digest_changes(void **state)
{
  (void)state;
  struct fx *f = fx_new();
  struct mbx_store_digest d0 = fx_digest(f->s);
  uint64_t mb = fx_mailbox(f, "u@x.org");
  struct mbx_store_digest d1 = fx_digest(f->s);
  assert_memory_not_equal(d0.sha256, d1.sha256, 32);
  uint64_t id = fx_deliver(f, "u@x.org", "x");
  struct mbx_store_digest d2 = fx_digest(f->s), d2b = fx_digest(f->s);
  assert_memory_equal(d2.sha256, d2b.sha256, 32); /* stable */
  Mbx__Item *it;
  fx_begin(f);
  assert_int_equal(mbx_store_set_flags(f->w, mb, id, 1, 0, NULL, 0, &f->a, &it), 0);
  fx_commit(f);
  struct mbx_store_digest d3 = fx_digest(f->s);
  assert_memory_not_equal(d2.sha256, d3.sha256, 32); /* a flag counts */
  assert_int_equal(d3.items, 1);
  assert_int_equal(d3.folders, 11);
  fx_free(f);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_unit_rollback),  cmocka_unit_test(test_log_records),
      cmocka_unit_test(test_log_truncation), cmocka_unit_test(test_replay_determinism),
      cmocka_unit_test(test_digest_changes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

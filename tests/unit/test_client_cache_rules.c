/* test_client_cache_rules.c — the conflict rules of cached mode (docs/cached-mode.md),
 * one test per rule, driven without a server: server versions are fed to the apply
 * functions the sync uses (cache_apply.c) and the test checks what the user then
 * sees, what stays queued, what was recorded, and that nothing made here is lost. */
#include "cache_fixture.h"

/* the server's ids, as a fresh mailbox has them */
enum { S_INBOX = 2, S_DRAFTS, S_SENT, S_DELETED, S_JUNK, S_ARCHIVE, S_OUTBOX, S_CALENDAR,
       S_CONTACTS, S_TASKS, S_NOTES };

static Mbx__Folder *sfolder(uint64_t id, const char *name, uint64_t parent, Mbx__WellKnown wk,
                            Mbx__FolderClass cls)
{
  static Mbx__Folder pool[64];
  static size_t used;
  Mbx__Folder *f = &pool[used++ % 64];
  mbx__folder__init(f);
  f->id = id;
  f->mailbox_id = 1;
  f->name = (char *)name;
  f->has_parent_id = f->has_well_known = f->has_folder_class = true;
  f->parent_id = parent;
  f->well_known = wk;
  f->folder_class = cls;
  return f;
}

static void apply_folder(mbxc_cache *c, const Mbx__Folder *f)
{
  struct mbxc__ct t;
  assert_int_equal(mbxc__ct_begin(c, true, &t), 0);
  assert_int_equal(mbxc__apply_folder(&t, f), 0);
  assert_int_equal(mbxc__ct_commit(&t), 0);
}

/* A cache that has seen the server's well-known folders (its first hierarchy sync). */
static mbxc_cache *fresh(void)
{
  mbxc_cache *c = cfx_open("mbxrules");
  static const struct { const char *n; Mbx__WellKnown wk; Mbx__FolderClass cls; } wk[] = {
    { "Inbox", MBX__WELL_KNOWN__WK_INBOX, 0 }, { "Drafts", MBX__WELL_KNOWN__WK_DRAFTS, 0 },
    { "Sent Items", MBX__WELL_KNOWN__WK_SENT, 0 }, { "Deleted Items", MBX__WELL_KNOWN__WK_DELETED, 0 },
    { "Junk Email", MBX__WELL_KNOWN__WK_JUNK, 0 }, { "Archive", MBX__WELL_KNOWN__WK_ARCHIVE, 0 },
    { "Outbox", MBX__WELL_KNOWN__WK_OUTBOX, 0 },
    { "Calendar", MBX__WELL_KNOWN__WK_CALENDAR, MBX__FOLDER_CLASS__FOLDER_CALENDAR },
    { "Contacts", MBX__WELL_KNOWN__WK_CONTACTS, MBX__FOLDER_CLASS__FOLDER_CONTACTS },
    { "Tasks", MBX__WELL_KNOWN__WK_TASKS, MBX__FOLDER_CLASS__FOLDER_TASKS },
    { "Notes", MBX__WELL_KNOWN__WK_NOTES, MBX__FOLDER_CLASS__FOLDER_NOTES },
  };
  for (size_t i = 0; i < 11; i++)
    apply_folder(c, sfolder(S_INBOX + i, wk[i].n, 0, wk[i].wk, wk[i].cls));
  return c;
}

/* A server version of a message. */
static Mbx__Item *sitem(uint64_t id, uint64_t folder, uint64_t cn, uint32_t flags,
                        const char *subject, char **cats, size_t ncats)
{
  static Mbx__Item pool[64];
  static Mbx__MessageSummary sums[64];
  static size_t used;
  size_t k = used++ % 64;
  Mbx__Item *it = &pool[k];
  Mbx__MessageSummary *s = &sums[k];
  mbx__item__init(it);
  mbx__message_summary__init(s);
  s->subject = (char *)subject;
  it->id = id;
  it->mailbox_id = 1;
  it->folder_id = folder;
  it->has_kind = it->has_flags = it->has_cn = it->has_received_us = it->has_size = true;
  it->kind = MBX__ITEM_KIND__ITEM_MESSAGE;
  it->flags = flags;
  it->cn = cn;
  it->received_us = 1000000 + (int64_t)id;
  it->size = 100;
  it->message = s;
  it->categories = cats;
  it->n_categories = ncats;
  return it;
}

static void apply_item(mbxc_cache *c, const Mbx__Item *it)
{
  struct mbxc__ct t;
  assert_int_equal(mbxc__ct_begin(c, true, &t), 0);
  assert_int_equal(mbxc__apply_item(&t, it), 0);
  assert_int_equal(mbxc__ct_commit(&t), 0);
}

static Mbx__Item *view(mbxc_cache *c, uint64_t id)
{
  Mbx__ItemResp *ir = NULL;
  if (mbxc_cache_get(c, id, false, &ir, NULL) != 0)
    return NULL;
  Mbx__Item *it = ir->item;
  ir->item = NULL;
  mbxc_free(&ir);
  return it;
}

static uint64_t conflicts(mbxc_cache *c, const char *rule)
{
  Mbx__CacheStatus *st;
  assert_int_equal(mbxc_cache_status(c, false, &st), 0);
  uint64_t n = 0;
  for (size_t i = 0; i < st->n_recent_conflicts; i++)
    n += !rule || strcmp(st->recent_conflicts[i]->rule, rule) == 0;
  mbxc_free(&st);
  return n;
}

/* ---- tests ----------------------------------------------------------------- */

static void test_rules_first_sync_adopts_placeholders(void **state)
{
  (void)state;
  mbxc_cache *c = cfx_open("mbxrules"); /* before any server folder: placeholders only */
  uint64_t drafts_local = cfx_folder_id(c, "Drafts");
  assert_true(mbxc_cache_is_local_id(drafts_local));
  static const char m[] = "Subject: early\r\n\r\nx\r\n";
  Mbx__ItemResp *ir;
  assert_int_equal(mbxc_cache_append(c, drafts_local, m, sizeof(m) - 1, 0, &ir), 0);
  uint64_t item = ir->item->id;
  mbxc_free(&ir);
  apply_folder(c, sfolder(S_DRAFTS, "Drafts", 0, MBX__WELL_KNOWN__WK_DRAFTS, 0));
  assert_int_equal(cfx_folder_id(c, "Drafts"), S_DRAFTS);
  assert_int_equal(mbxc_cache_map_id(c, drafts_local), S_DRAFTS); /* the old id still works */
  Mbx__Item *v = view(c, item);
  assert_int_equal(v->folder_id, S_DRAFTS);
  mbxc_free(&v);
  Mbx__FoldersResp *fr;
  assert_int_equal(mbxc_cache_folders(c, &fr), 0);
  const Mbx__Folder *d = NULL;
  assert_int_equal(mbxc_folder_resolve(fr, "Drafts", &d), 0);
  assert_int_equal(d->item_count, 1); /* the count moved with it */
  assert_int_equal(fr->n_folders, 11);
  mbxc_free(&fr);
  assert_int_equal(cfx_queued(c), 1);
  cfx_done(&c);
}

static void test_rules_echo_is_not_a_change(void **state)
{
  (void)state;
  mbxc_cache *c = fresh();
  struct mbxc__ct t;
  assert_int_equal(mbxc__ct_begin(c, true, &t), 0);
  assert_int_equal(mbxc__apply_item(&t, sitem(100, S_INBOX, 5, 0, "m", NULL, 0)), 0);
  assert_int_equal(mbxc__apply_item(&t, sitem(100, S_INBOX, 5, 0, "m", NULL, 0)), 0);
  assert_int_equal(mbxc__apply_item(&t, sitem(100, S_INBOX, 4, 1, "m", NULL, 0)), 0); /* stale */
  assert_int_equal(t.applied, 1);
  assert_int_equal(mbxc__ct_commit(&t), 0);
  Mbx__Item *v = view(c, 100);
  assert_int_equal(v->flags, 0);
  mbxc_free(&v);
  cfx_done(&c);
}

static void test_rules_flags_merge(void **state)
{
  (void)state;
  mbxc_cache *c = fresh();
  char *none[] = { NULL };
  apply_item(c, sitem(100, S_INBOX, 5, 0, "m", none, 0));
  const char *mine[] = { "x", "y" };
  assert_int_equal(mbxc_cache_set_flags(c, 100, MBX__ITEM_FLAG__FLAG_FLAGGED, 0, true, mine, 2,
                                        NULL), 0);
  char *theirs[] = { "z" };
  apply_item(c, sitem(100, S_INBOX, 6, MBX__ITEM_FLAG__FLAG_SEEN, "m", theirs, 1));
  Mbx__Item *v = view(c, 100);
  assert_int_equal(v->flags, MBX__ITEM_FLAG__FLAG_SEEN | MBX__ITEM_FLAG__FLAG_FLAGGED);
  assert_int_equal(v->n_categories, 3);
  assert_string_equal(v->categories[0], "z");
  assert_string_equal(v->categories[1], "x");
  assert_string_equal(v->categories[2], "y");
  assert_int_equal(v->cn, 6); /* the next push's if_cn */
  mbxc_free(&v);
  assert_int_equal(cfx_queued(c), 1);
  assert_int_equal(conflicts(c, "changed-on-both-sides"), 1);
  cfx_done(&c);
}

static void test_rules_deleted_here_changed_on_server(void **state)
{
  (void)state;
  mbxc_cache *c = fresh();
  apply_item(c, sitem(100, S_INBOX, 5, 0, "m", NULL, 0));
  assert_int_equal(mbxc_cache_delete(c, 100, false), 0);
  Mbx__Item *v = view(c, 100);
  assert_int_equal(v->folder_id, S_DELETED);
  mbxc_free(&v);
  apply_item(c, sitem(100, S_INBOX, 6, MBX__ITEM_FLAG__FLAG_FLAGGED, "m", NULL, 0));
  v = view(c, 100);
  assert_non_null(v);
  assert_int_equal(v->folder_id, S_INBOX); /* restored, with the server's change */
  assert_int_equal(v->flags, MBX__ITEM_FLAG__FLAG_FLAGGED);
  mbxc_free(&v);
  assert_int_equal(cfx_queued(c), 0);
  assert_int_equal(conflicts(c, "deleted-here-changed-on-server"), 1);
  /* a hard delete here is undone the same way */
  assert_int_equal(mbxc_cache_delete(c, 100, true), 0);
  assert_null(view(c, 100));
  apply_item(c, sitem(100, S_INBOX, 7, MBX__ITEM_FLAG__FLAG_SEEN, "m", NULL, 0));
  v = view(c, 100);
  assert_non_null(v);
  assert_int_equal(v->flags, MBX__ITEM_FLAG__FLAG_SEEN);
  mbxc_free(&v);
  cfx_done(&c);
}

static void test_rules_moved_on_both_sides(void **state)
{
  (void)state;
  mbxc_cache *c = fresh();
  apply_item(c, sitem(100, S_INBOX, 5, 0, "m", NULL, 0));
  assert_int_equal(mbxc_cache_move(c, 100, S_ARCHIVE, NULL), 0);
  assert_int_equal(mbxc_cache_set_flags(c, 100, MBX__ITEM_FLAG__FLAG_SEEN, 0, false, NULL, 0, NULL), 0);
  /* the server moved it to Junk: the move from here is dropped, the flag kept */
  apply_item(c, sitem(100, S_JUNK, 1, 0, "m", NULL, 0));
  Mbx__Item *v = view(c, 100);
  assert_int_equal(v->folder_id, S_JUNK);
  assert_int_equal(v->flags, MBX__ITEM_FLAG__FLAG_SEEN);
  mbxc_free(&v);
  assert_int_equal(cfx_queued(c), 1);
  assert_int_equal(conflicts(c, "moved-on-both-sides"), 1);
  /* the server's delete of an item that left the folder: ignored when the cache knows
   * it elsewhere */
  struct mbxc__ct t;
  assert_int_equal(mbxc__ct_begin(c, true, &t), 0);
  assert_int_equal(mbxc__apply_item_left(&t, 100, S_INBOX), 0);
  assert_int_equal(mbxc__ct_commit(&t), 0);
  assert_non_null((v = view(c, 100)));
  mbxc_free(&v);
  cfx_done(&c);
}

static void test_rules_changed_here_deleted_on_server(void **state)
{
  (void)state;
  mbxc_cache *c = fresh();
  apply_item(c, sitem(100, S_INBOX, 5, 0, "precious", NULL, 0));
  static const char body[] = "Subject: precious\r\n\r\nthe original text\r\n";
  assert_int_equal(mbxc_cache_put_body(c, 100, body, sizeof(body) - 1), 0);
  assert_int_equal(mbxc_cache_set_flags(c, 100, MBX__ITEM_FLAG__FLAG_FLAGGED, 0, false, NULL, 0,
                                        NULL), 0);
  struct mbxc__ct t;
  assert_int_equal(mbxc__ct_begin(c, true, &t), 0);
  assert_int_equal(mbxc__apply_item_left(&t, 100, S_INBOX), 1); /* has changes: ask */
  assert_int_equal(mbxc__apply_item_gone(&t, 100), 0);          /* the server said ENOTFOUND */
  assert_int_equal(mbxc__ct_commit(&t), 0);
  assert_null(view(c, 100));
  uint64_t cf = cfx_folder_id(c, "Sync Issues/Conflicts");
  assert_true(cf != 0);
  Mbx__ListResp *lr;
  assert_int_equal(mbxc_cache_list(c, cf, 0, 0, &lr), 0);
  assert_int_equal(lr->n_items, 2);
  const Mbx__Item *copy = NULL, *note = NULL;
  for (size_t i = 0; i < lr->n_items; i++) {
    if (strcmp(lr->items[i]->message->subject, "precious") == 0)
      copy = lr->items[i];
    else if (strncmp(lr->items[i]->message->subject, "Sync conflict: precious", 23) == 0)
      note = lr->items[i];
  }
  assert_non_null(copy);
  assert_non_null(note);
  assert_int_equal(copy->flags, MBX__ITEM_FLAG__FLAG_FLAGGED);
  Mbx__ItemResp *ir;
  assert_int_equal(mbxc_cache_get(c, copy->id, true, &ir, NULL), 0);
  assert_int_equal(ir->body.len, sizeof(body) - 1);
  assert_memory_equal(ir->body.data, body, sizeof(body) - 1); /* nothing lost */
  mbxc_free(&ir);
  assert_int_equal(mbxc_cache_get(c, note->id, true, &ir, NULL), 0);
  assert_non_null(memmem(ir->body.data, ir->body.len, "changed here while it was deleted", 33));
  mbxc_free(&ir);
  mbxc_free(&lr);
  /* queued: Sync Issues, Conflicts, the copy, the note */
  assert_int_equal(cfx_queued(c), 4);
  assert_int_equal(conflicts(c, "changed-here-deleted-on-server"), 1);
  /* deleted on both sides: nothing to keep */
  apply_item(c, sitem(101, S_INBOX, 6, 0, "gone", NULL, 0));
  assert_int_equal(mbxc_cache_delete(c, 101, true), 0);
  assert_int_equal(mbxc__ct_begin(c, true, &t), 0);
  assert_int_equal(mbxc__apply_item_gone(&t, 101), 0);
  assert_int_equal(mbxc__ct_commit(&t), 0);
  assert_int_equal(cfx_queued(c), 4);
  cfx_done(&c);
}

static void test_rules_created_here_in_folder_deleted_on_server(void **state)
{
  (void)state;
  mbxc_cache *c = fresh();
  apply_folder(c, sfolder(50, "Doomed", 0, 0, 0));
  apply_folder(c, sfolder(51, "Child", 50, 0, 0));
  apply_item(c, sitem(100, 50, 1, 0, "old", NULL, 0));
  static const char m[] = "Subject: new here\r\n\r\nx\r\n";
  Mbx__ItemResp *ir;
  assert_int_equal(mbxc_cache_append(c, 50, m, sizeof(m) - 1, 0, &ir), 0);
  uint64_t mine = ir->item->id;
  mbxc_free(&ir);
  Mbx__FolderResp *fr;
  assert_int_equal(mbxc_cache_create_folder(c, "Sub", 51, 0, &fr), 0);
  uint64_t sub = fr->folder->id;
  mbxc_free(&fr);
  struct mbxc__ct t;
  assert_int_equal(mbxc__ct_begin(c, true, &t), 0);
  assert_int_equal(mbxc__apply_folder_gone(&t, 50), 0);
  assert_int_equal(mbxc__ct_commit(&t), 0);
  assert_int_equal(cfx_folder_id(c, "Doomed"), 0);
  assert_null(view(c, 100)); /* the server's item went with its folder */
  Mbx__Item *v = view(c, mine);
  assert_non_null(v); /* what was made here is kept */
  assert_int_equal(v->folder_id, cfx_folder_id(c, "Sync Issues/Conflicts"));
  mbxc_free(&v);
  assert_int_equal(cfx_folder_id(c, "Sub"), sub); /* the local subfolder moved to the top */
  assert_true(conflicts(c, "created-here-in-folder-deleted-on-server") >= 2);
  cfx_done(&c);
}

static void test_rules_folder_renamed_on_both_sides(void **state)
{
  (void)state;
  mbxc_cache *c = fresh();
  apply_folder(c, sfolder(60, "Ren", 0, 0, 0));
  apply_folder(c, sfolder(61, "Other", 0, 0, 0));
  assert_int_equal(mbxc_cache_update_folder(c, 60, "Ren-A", true, 61, NULL), 0);
  assert_int_equal(cfx_folder_id(c, "Other/Ren-A"), 60);
  apply_folder(c, sfolder(60, "Ren-S", 0, 0, 0)); /* renamed on the server, not moved */
  assert_int_equal(cfx_folder_id(c, "Other/Ren-S"), 60); /* its name; our move stays */
  assert_int_equal(cfx_queued(c), 1);
  assert_int_equal(conflicts(c, "renamed-on-both-sides"), 1);
  cfx_done(&c);
}

static void test_rules_folder_deleted_here_changed_on_server(void **state)
{
  (void)state;
  mbxc_cache *c = fresh();
  apply_folder(c, sfolder(70, "Keep", 0, 0, 0));
  apply_folder(c, sfolder(71, "Inner", 70, 0, 0));
  apply_item(c, sitem(100, 70, 1, 0, "kept", NULL, 0));
  assert_int_equal(mbxc_cache_delete_folder(c, 70), 0);
  assert_int_equal(cfx_folder_id(c, "Keep"), 0);
  assert_null(view(c, 100));
  assert_int_equal(cfx_queued(c), 1);
  apply_folder(c, sfolder(70, "Keep2", 0, 0, 0)); /* renamed on the server meanwhile */
  assert_int_equal(cfx_folder_id(c, "Keep2"), 70);
  assert_int_equal(cfx_folder_id(c, "Keep2/Inner"), 71);
  assert_int_equal(cfx_queued(c), 0); /* the deletion is dropped */
  assert_int_equal(conflicts(c, "deleted-here-changed-on-server"), 1);
  /* its content comes back with the next download: the state was forgotten */
  struct mbxc__ct t;
  Mbx__CacheFolderState *st;
  assert_int_equal(mbxc__ct_begin(c, false, &t), 0);
  assert_int_equal(mbxc__ct_fstate_get(&t, 70, &st), MBX_ENOTFOUND);
  mbxc__ct_abort(&t);
  cfx_done(&c);
}

static void test_rules_local_ids_follow_the_push(void **state)
{
  (void)state;
  mbxc_cache *c = fresh();
  static const char m[] = "Subject: draft\r\n\r\nx\r\n";
  Mbx__ItemResp *ir;
  assert_int_equal(mbxc_cache_append(c, S_DRAFTS, m, sizeof(m) - 1, 0, &ir), 0);
  uint64_t local = ir->item->id;
  mbxc_free(&ir);
  assert_int_equal(mbxc_cache_set_flags(c, local, MBX__ITEM_FLAG__FLAG_SEEN, 0, false, NULL, 0,
                                        NULL), 0);
  /* the creation was pushed: the server calls it 500 */
  struct mbxc__ct t;
  Mbx__CacheOp **ops;
  size_t n;
  assert_int_equal(mbxc__ct_begin(c, true, &t), 0);
  assert_int_equal(mbxc__ct_queue_of(&t, local, &ops, &n), 0);
  assert_int_equal(n, 2);
  assert_int_equal(mbxc__ct_queue_del(&t, ops[0]), 0);
  assert_int_equal(mbxc__ct_item_rekey(&t, local, 500), 0);
  assert_int_equal(mbxc__ct_queue_of(&t, 500, &ops, &n), 0);
  assert_int_equal(n, 1); /* the flag change follows the item */
  assert_int_equal(mbxc__ct_commit(&t), 0);
  assert_int_equal(mbxc_cache_map_id(c, local), 500);
  Mbx__Item *v = view(c, local);
  assert_non_null(v);
  assert_int_equal(v->id, 500);
  mbxc_free(&v);
  assert_int_equal(mbxc_cache_get(c, local, true, &ir, NULL), 0);
  assert_true(ir->has_body);
  mbxc_free(&ir);
  assert_int_equal(mbxc_cache_move(c, local, S_ARCHIVE, NULL), 0);
  assert_int_equal(cfx_queued(c), 2);
  cfx_done(&c);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_rules_first_sync_adopts_placeholders),
    cmocka_unit_test(test_rules_echo_is_not_a_change),
    cmocka_unit_test(test_rules_flags_merge),
    cmocka_unit_test(test_rules_deleted_here_changed_on_server),
    cmocka_unit_test(test_rules_moved_on_both_sides),
    cmocka_unit_test(test_rules_changed_here_deleted_on_server),
    cmocka_unit_test(test_rules_created_here_in_folder_deleted_on_server),
    cmocka_unit_test(test_rules_folder_renamed_on_both_sides),
    cmocka_unit_test(test_rules_folder_deleted_here_changed_on_server),
    cmocka_unit_test(test_rules_local_ids_follow_the_push),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

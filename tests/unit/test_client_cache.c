/* test_client_cache.c — cached mode's local store without a server: a new profile
 * works at once (placeholder folders), every local change updates what the user sees
 * and queues exactly one durable outbox entry with a 16-byte idempotency key that a
 * reopen does not change, local ids are ≥ 9e15, the checks the server would make are
 * made here first, settings and the profile directory. */
#include "cache_fixture.h"

static const Mbx__Folder *folder(const Mbx__FoldersResp *fr, const char *path)
{
  const Mbx__Folder *f = NULL;
  return mbxc_folder_resolve(fr, path, &f) == 0 ? f : NULL;
}

static void counts(mbxc_cache *c, const char *path, uint64_t total, uint64_t unread)
{
  Mbx__FoldersResp *fr;
  assert_int_equal(mbxc_cache_folders(c, &fr), 0);
  const Mbx__Folder *f = folder(fr, path);
  assert_non_null(f);
  assert_int_equal(f->item_count, total);
  assert_int_equal(f->unread_count, unread);
  mbxc_free(&fr);
}

static const char msg[] = "From: Alice <alice@example.org>\r\nTo: demo@example.com\r\n"
                          "Subject: offline hello\r\nDate: Sat, 21 Nov 2026 10:00:00 +0000\r\n"
                          "\r\nbody text\r\n";

static uint64_t append(mbxc_cache *c, const char *path)
{
  Mbx__ItemResp *ir;
  assert_int_equal(mbxc_cache_append(c, cfx_folder_id(c, path), msg, sizeof(msg) - 1, 0, &ir), 0);
  uint64_t id = ir->item->id;
  mbxc_free(&ir);
  return id;
}

/* The queued entries, in order (caller frees each with mbxc_free via the array). */
static size_t queue_ops(mbxc_cache *c, Mbx__CacheOp ***ops_r)
{
  struct mbxc__ct t;
  Mbx__CacheOp **ops;
  size_t n;
  assert_int_equal(mbxc__ct_begin(c, false, &t), 0);
  assert_int_equal(mbxc__ct_queue_all(&t, 0, &ops, &n), 0);
  Mbx__CacheOp **out = calloc(n + 1, sizeof(*out));
  for (size_t i = 0; i < n; i++) {
    uint8_t buf[65536];
    size_t len = mbx__cache_op__pack(ops[i], buf);
    out[i] = mbx__cache_op__unpack(NULL, len, buf);
  }
  mbxc__ct_abort(&t);
  *ops_r = out;
  return n;
}

static void free_ops(Mbx__CacheOp **ops, size_t n)
{
  for (size_t i = 0; i < n; i++)
    mbxc_free(&ops[i]);
  free(ops);
}

/* ---- tests ----------------------------------------------------------------- */

static void test_cache_new_profile_has_the_well_known_folders(void **state)
{
  (void)state;
  mbxc_cache *c = cfx_open("mbxcache");
  Mbx__FoldersResp *fr;
  assert_int_equal(mbxc_cache_folders(c, &fr), 0);
  assert_int_equal(fr->n_folders, 11);
  static const char *const names[] = { "Inbox", "Drafts", "Sent Items", "Deleted Items",
                                       "Junk Email", "Archive", "Outbox", "Calendar",
                                       "Contacts", "Tasks", "Notes" };
  for (size_t i = 0; i < 11; i++) {
    const Mbx__Folder *f = folder(fr, names[i]);
    assert_non_null(f);
    assert_true(mbxc_cache_is_local_id(f->id));
    assert_int_not_equal(f->well_known, MBX__WELL_KNOWN__WK_NONE);
  }
  assert_non_null(mbxc_folder_well_known(fr, MBX__WELL_KNOWN__WK_CALENDAR));
  mbxc_free(&fr);
  assert_string_equal(mbxc_cache_user(c), USER);
  assert_int_equal(cfx_queued(c), 0); /* placeholders are not queued creations */
  mbxc_cache_close(&c);
  /* the same mailbox again (any case), or no user: fine; another mailbox: refused */
  assert_int_equal(mbxc_cache_open(cfx_dir, "DEMO@example.com", 0, &c), 0);
  mbxc_cache_close(&c);
  assert_int_equal(mbxc_cache_open(cfx_dir, NULL, 0, &c), 0);
  mbxc_cache_close(&c);
  assert_int_equal(mbxc_cache_open(cfx_dir, "other@example.com", 0, &c), MBX_EINVAL);
  assert_non_null(strstr(mbxc_cache_last_error(), "belongs to"));
  char empty[600];
  snprintf(empty, sizeof(empty), "%s/sub", cfx_dir);
  assert_int_equal(mbxc_cache_open(empty, NULL, 0, &c), MBX_EINVAL); /* new: needs a user */
  assert_int_equal(mbxc_cache_open(cfx_dir, USER, 0, &c), 0);
  cfx_done(&c);
}

static void test_cache_append_queues_one_keyed_entry(void **state)
{
  (void)state;
  mbxc_cache *c = cfx_open("mbxcache");
  uint64_t id = append(c, "Drafts");
  assert_true(id >= MBXC_CACHE_LOCAL_ID_MIN);
  counts(c, "Drafts", 1, 1);
  Mbx__ItemResp *ir;
  bool missing = true;
  assert_int_equal(mbxc_cache_get(c, id, true, &ir, &missing), 0);
  assert_false(missing);
  assert_true(ir->has_body);
  assert_int_equal(ir->body.len, sizeof(msg) - 1);
  assert_memory_equal(ir->body.data, msg, sizeof(msg) - 1);
  assert_string_equal(ir->item->message->subject, "offline hello"); /* the node's parser */
  assert_string_equal(ir->item->message->from, "Alice <alice@example.org>");
  assert_int_equal(ir->item->size, sizeof(msg) - 1);
  mbxc_free(&ir);
  Mbx__ListResp *lr;
  assert_int_equal(mbxc_cache_list(c, cfx_folder_id(c, "Drafts"), 0, 0, &lr), 0);
  assert_int_equal(lr->total, 1);
  assert_int_equal(lr->n_items, 1);
  assert_int_equal(lr->items[0]->id, id);
  mbxc_free(&lr);
  Mbx__CacheOp **ops;
  assert_int_equal(queue_ops(c, &ops), 1);
  assert_int_equal(ops[0]->op_case, MBX__CACHE_OP__OP_APPEND);
  assert_int_equal(ops[0]->id, id);
  assert_int_equal(ops[0]->key.len, MBXC_CACHE_KEY_BYTES);
  assert_false(ops[0]->urgent);
  uint8_t key[MBXC_CACHE_KEY_BYTES];
  memcpy(key, ops[0]->key.data, sizeof(key));
  free_ops(ops, 1);
  /* a reopen (a crash and a restart) keeps the entry and its key */
  mbxc_cache_close(&c);
  assert_int_equal(mbxc_cache_open(cfx_dir, NULL, 0, &c), 0);
  assert_int_equal(queue_ops(c, &ops), 1);
  assert_memory_equal(ops[0]->key.data, key, sizeof(key));
  free_ops(ops, 1);
  /* Sent Items and Outbox are urgent */
  append(c, "Sent Items");
  struct mbxc_cache_queue_info qi;
  assert_int_equal(mbxc_cache_queue_info(c, &qi), 0);
  assert_int_equal(qi.queued, 2);
  assert_int_equal(qi.urgent, 1);
  assert_true(qi.oldest_new_us > 0);
  cfx_done(&c);
}

static void test_cache_keys_differ(void **state)
{
  (void)state;
  mbxc_cache *c = cfx_open("mbxcache");
  for (int i = 0; i < 8; i++)
    append(c, "Inbox");
  Mbx__CacheOp **ops;
  size_t n = queue_ops(c, &ops);
  assert_int_equal(n, 8);
  for (size_t i = 0; i < n; i++)
    for (size_t j = i + 1; j < n; j++)
      assert_memory_not_equal(ops[i]->key.data, ops[j]->key.data, MBXC_CACHE_KEY_BYTES);
  free_ops(ops, n);
  cfx_done(&c);
}

static void test_cache_flags_queue_deltas(void **state)
{
  (void)state;
  mbxc_cache *c = cfx_open("mbxcache");
  uint64_t id = append(c, "Inbox");
  const char *cats[] = { "red", "blue" };
  Mbx__ItemResp *ir;
  assert_int_equal(mbxc_cache_set_flags(c, id, MBX__ITEM_FLAG__FLAG_SEEN, 0, true, cats, 2, &ir), 0);
  assert_int_equal(ir->item->flags, MBX__ITEM_FLAG__FLAG_SEEN);
  assert_int_equal(ir->item->n_categories, 2);
  mbxc_free(&ir);
  counts(c, "Inbox", 1, 0);
  const char *cats2[] = { "blue", "green" };
  assert_int_equal(mbxc_cache_set_flags(c, id, MBX__ITEM_FLAG__FLAG_FLAGGED,
                                        MBX__ITEM_FLAG__FLAG_SEEN, true, cats2, 2, &ir), 0);
  assert_int_equal(ir->item->flags, MBX__ITEM_FLAG__FLAG_FLAGGED);
  assert_int_equal(ir->item->n_categories, 2);
  assert_string_equal(ir->item->categories[0], "blue");
  assert_string_equal(ir->item->categories[1], "green");
  mbxc_free(&ir);
  counts(c, "Inbox", 1, 1);
  Mbx__CacheOp **ops;
  size_t n = queue_ops(c, &ops);
  assert_int_equal(n, 3);
  Mbx__CacheOpSetFlags *sf = ops[2]->set_flags;
  assert_int_equal(ops[2]->op_case, MBX__CACHE_OP__OP_SET_FLAGS);
  assert_int_equal(sf->add, MBX__ITEM_FLAG__FLAG_FLAGGED);
  assert_int_equal(sf->remove, MBX__ITEM_FLAG__FLAG_SEEN);
  assert_int_equal(sf->n_categories_add, 1);
  assert_string_equal(sf->categories_add[0], "green");
  assert_int_equal(sf->n_categories_remove, 1);
  assert_string_equal(sf->categories_remove[0], "red");
  free_ops(ops, n);
  /* the server's limits, checked here */
  const char *empty[] = { "" };
  assert_int_equal(mbxc_cache_set_flags(c, id, 0, 0, true, empty, 1, NULL), MBX_EINVAL);
  const char *many[65];
  for (int i = 0; i < 65; i++)
    many[i] = "x";
  assert_int_equal(mbxc_cache_set_flags(c, id, 0, 0, true, many, 65, NULL), MBX_ELIMIT);
  assert_int_equal(mbxc_cache_set_flags(c, 12345, 1, 0, false, NULL, 0, NULL), MBX_ENOTFOUND);
  assert_int_equal(cfx_queued(c), 3);
  cfx_done(&c);
}

static void test_cache_move_and_delete(void **state)
{
  (void)state;
  mbxc_cache *c = cfx_open("mbxcache");
  uint64_t a = append(c, "Inbox"), b = append(c, "Inbox");
  Mbx__ItemResp *ir;
  assert_int_equal(mbxc_cache_move(c, a, cfx_folder_id(c, "Archive"), &ir), 0);
  assert_int_equal(ir->item->folder_id, cfx_folder_id(c, "Archive"));
  mbxc_free(&ir);
  counts(c, "Inbox", 1, 1);
  counts(c, "Archive", 1, 1);
  /* soft delete of an item made here: it goes to Deleted Items, queued */
  assert_int_equal(mbxc_cache_delete(c, a, false), 0);
  counts(c, "Archive", 0, 0);
  counts(c, "Deleted Items", 1, 1);
  assert_int_equal(cfx_queued(c), 4);
  /* deleting it again (from Deleted Items): it never reached the server, so it and all
   * its queued changes simply go */
  assert_int_equal(mbxc_cache_delete(c, a, false), 0);
  counts(c, "Deleted Items", 0, 0);
  assert_int_equal(cfx_queued(c), 1);
  assert_int_equal(mbxc_cache_get(c, a, false, &ir, NULL), MBX_ENOTFOUND);
  assert_int_equal(mbxc_cache_delete(c, b, true), 0);
  assert_int_equal(cfx_queued(c), 0);
  counts(c, "Inbox", 0, 0);
  cfx_done(&c);
}

static void test_cache_typed_items_and_classes(void **state)
{
  (void)state;
  mbxc_cache *c = cfx_open("mbxcache");
  Mbx__Item it = MBX__ITEM__INIT;
  Mbx__Note note = MBX__NOTE__INIT;
  it.has_kind = true;
  it.kind = MBX__ITEM_KIND__ITEM_NOTE;
  it.note = &note;
  note.subject = "remember";
  Mbx__ItemResp *ir;
  assert_int_equal(mbxc_cache_create_item(c, cfx_folder_id(c, "Notes"), &it, &ir), 0);
  assert_string_equal(ir->item->note->subject, "remember");
  assert_true(ir->item->size > 0);
  mbxc_free(&ir);
  counts(c, "Notes", 1, 1);
  /* a note does not go in a mail folder, a message not in Notes (as on the server) */
  assert_int_equal(mbxc_cache_create_item(c, cfx_folder_id(c, "Inbox"), &it, NULL), MBX_EINVAL);
  assert_int_equal(mbxc_cache_append(c, cfx_folder_id(c, "Notes"), msg, sizeof(msg) - 1, 0, NULL),
                   MBX_EINVAL);
  it.note = NULL;
  assert_int_equal(mbxc_cache_create_item(c, cfx_folder_id(c, "Notes"), &it, NULL), MBX_EINVAL);
  Mbx__CacheOp **ops;
  assert_int_equal(queue_ops(c, &ops), 1);
  assert_int_equal(ops[0]->op_case, MBX__CACHE_OP__OP_CREATE_ITEM);
  free_ops(ops, 1);
  cfx_done(&c);
}

static void test_cache_folders_local(void **state)
{
  (void)state;
  mbxc_cache *c = cfx_open("mbxcache");
  Mbx__FolderResp *r;
  assert_int_equal(mbxc_cache_create_folder(c, "Projects", 0, MBX__FOLDER_CLASS__FOLDER_MAIL, &r), 0);
  uint64_t p = r->folder->id;
  assert_true(mbxc_cache_is_local_id(p));
  mbxc_free(&r);
  assert_int_equal(mbxc_cache_create_folder(c, "2026", p, MBX__FOLDER_CLASS__FOLDER_MAIL, &r), 0);
  uint64_t y = r->folder->id;
  mbxc_free(&r);
  assert_int_equal(cfx_folder_id(c, "projects/2026"), y);
  /* names are unique among siblings, case-insensitively; and well-formed */
  assert_int_equal(mbxc_cache_create_folder(c, "PROJECTS", 0, 0, NULL), MBX_EEXIST);
  assert_int_equal(mbxc_cache_create_folder(c, "a/b", 0, 0, NULL), MBX_EINVAL);
  assert_int_equal(mbxc_cache_create_folder(c, "", 0, 0, NULL), MBX_EINVAL);
  /* rename, move, and the refusals */
  assert_int_equal(mbxc_cache_update_folder(c, y, "Y2026", false, 0, &r), 0);
  assert_string_equal(r->folder->name, "Y2026");
  mbxc_free(&r);
  assert_int_equal(mbxc_cache_update_folder(c, y, NULL, true, 0, NULL), 0);
  assert_int_equal(cfx_folder_id(c, "Y2026"), y);
  assert_int_equal(mbxc_cache_update_folder(c, p, NULL, true, y, NULL), 0);
  assert_int_equal(mbxc_cache_update_folder(c, y, NULL, true, p, NULL), MBX_EINVAL); /* cycle */
  assert_int_equal(mbxc_cache_update_folder(c, cfx_folder_id(c, "Inbox"), "In", false, 0, NULL),
                   MBX_EPERM);
  assert_int_equal(mbxc_cache_delete_folder(c, cfx_folder_id(c, "Inbox")), MBX_EPERM);
  assert_int_equal(mbxc_cache_update_folder(c, p, "Y2026", true, 0, NULL), MBX_EEXIST);
  /* deleting a folder made here drops it, its subfolders, their items and changes */
  uint64_t it = append(c, "Y2026/Projects");
  assert_true(it != 0);
  assert_true(cfx_queued(c) > 0);
  assert_int_equal(mbxc_cache_delete_folder(c, y), 0);
  assert_int_equal(cfx_folder_id(c, "Y2026"), 0);
  assert_int_equal(cfx_folder_id(c, "Y2026/Projects"), 0);
  assert_int_equal(cfx_queued(c), 0);
  Mbx__ItemResp *ir;
  assert_int_equal(mbxc_cache_get(c, it, false, &ir, NULL), MBX_ENOTFOUND);
  cfx_done(&c);
}

static void test_cache_settings(void **state)
{
  (void)state;
  mbxc_cache *c = cfx_open("mbxcache");
  char v[64];
  assert_int_equal(mbxc_cache_setting_get(c, "push_delay_s", v, sizeof(v)), 0);
  assert_string_equal(v, "60");
  assert_int_equal(mbxc_cache_setting_get(c, "bodies", v, sizeof(v)), 0);
  assert_string_equal(v, "ondemand");
  assert_int_equal(mbxc_cache_setting_get(c, "server", v, sizeof(v)), MBX_ENOTFOUND);
  assert_int_equal(mbxc_cache_setting_set(c, "push_delay_s", "5"), 0);
  assert_int_equal(mbxc_cache_setting_set(c, "bodies", "all"), 0);
  assert_int_equal(mbxc_cache_setting_set(c, "server", "127.0.0.1:7001"), 0);
  static const char *const bad[][2] = {
    { "push_delay_s", "-1" }, { "push_delay_s", "86401" }, { "push_delay_s", "5s" },
    { "push_delay_s", "" }, { "bodies", "some" }, { "colour", "blue" }, { "server", "" },
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    assert_int_equal(mbxc_cache_setting_set(c, bad[i][0], bad[i][1]), MBX_EINVAL);
  mbxc_cache_close(&c);
  assert_int_equal(mbxc_cache_open(cfx_dir, NULL, 0, &c), 0);
  assert_int_equal(mbxc_cache_setting_get(c, "push_delay_s", v, sizeof(v)), 0);
  assert_string_equal(v, "5");
  assert_int_equal(mbxc_cache_setting_get(c, "bodies", v, sizeof(v)), 0);
  assert_string_equal(v, "all");
  assert_int_equal(mbxc_cache_setting_get(c, "server", v, 4), MBX_ELIMIT);
  Mbx__CacheStatus *st;
  assert_int_equal(mbxc_cache_status(c, true, &st), 0);
  assert_int_equal(st->push_delay_s, 5);
  assert_string_equal(st->bodies, "all");
  assert_string_equal(st->server, "127.0.0.1:7001");
  assert_int_equal(st->n_folders, 11);
  mbxc_free(&st);
  cfx_done(&c);
}

static void test_cache_profile_dir(void **state)
{
  (void)state;
  char buf[512];
  setenv("MBX_CACHE_DIR", "/var/c", 1);
  assert_int_equal(mbxc_cache_dir("demo@example.com", buf, sizeof(buf)), 0);
  assert_string_equal(buf, "/var/c/demo@example.com");
  unsetenv("MBX_CACHE_DIR");
  setenv("XDG_DATA_HOME", "/x", 1);
  assert_int_equal(mbxc_cache_dir("p", buf, sizeof(buf)), 0);
  assert_string_equal(buf, "/x/mbx/p");
  unsetenv("XDG_DATA_HOME");
  setenv("HOME", "/home/u", 1);
  assert_int_equal(mbxc_cache_dir("p", buf, sizeof(buf)), 0);
  assert_string_equal(buf, "/home/u/.local/share/mbx/p");
  static const char *const bad[] = { "", ".hidden", "a/b", "tab\tname", ".." };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    assert_int_equal(mbxc_cache_dir(bad[i], buf, sizeof(buf)), MBX_EINVAL);
  assert_int_equal(mbxc_cache_dir("p", buf, 8), MBX_ELIMIT);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_cache_new_profile_has_the_well_known_folders),
    cmocka_unit_test(test_cache_append_queues_one_keyed_entry),
    cmocka_unit_test(test_cache_keys_differ),
    cmocka_unit_test(test_cache_flags_queue_deltas),
    cmocka_unit_test(test_cache_move_and_delete),
    cmocka_unit_test(test_cache_typed_items_and_classes),
    cmocka_unit_test(test_cache_folders_local),
    cmocka_unit_test(test_cache_settings),
    cmocka_unit_test(test_cache_profile_dir),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

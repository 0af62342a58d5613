/* test_store_basic.c — mailboxes, folders and items through the store API, checking
 * what a user would see: folder contents, counters, quota use, errors, and that
 * refused writes leave data intact. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "store_fixture.h"

static const char *wk_names[] = {"Inbox",      "Drafts",  "Sent Items", "Deleted Items",
                                 "Junk Email", "Archive", "Outbox",     "Calendar",
                                 "Contacts",   "Tasks",   "Notes"};

static void test_mailbox_create(void **state)
{
  (void)state;
  struct fx *f = fx_new();
  struct mbx_mailbox_spec spec = {.address = "Alice@Example.ORG",
                                  .display_name = "Alice",
                                  .aliases = (const char *[]){"al@example.org"},
                                  .n_aliases = 1,
                                  .password_hash = "scrypt$x"};
  Mbx__Mailbox *mb;
  fx_begin(f);
  assert_int_equal(mbx_store_create_mailbox(f->w, &spec, &f->a, &mb), 0);
  assert_int_equal(fx_commit(f), 1);
  assert_string_equal(mb->address, "alice@example.org");
  assert_int_equal(mb->last_hcn, 11);

  struct mbx_rtxn *r;
  assert_int_equal(mbx_store_rtxn_begin(f->s, &r), 0);
  uint64_t id;
  assert_int_equal(mbx_store_lookup_address(r, "ALICE@example.org", &id), 0);
  assert_int_equal(id, mb->id);
  assert_int_equal(mbx_store_lookup_address(r, "Al@Example.org", &id), 0);
  assert_int_equal(id, mb->id);
  assert_int_equal(mbx_store_lookup_address(r, "bob@example.org", &id), MBX_ENOTFOUND);
  Mbx__Folder **fv;
  size_t n;
  assert_int_equal(mbx_store_list_folders(r, mb->id, &f->a, &fv, &n), 0);
  assert_int_equal(n, 11);
  for (size_t i = 0; i < 11; i++) {
    Mbx__Folder *fo;
    assert_int_equal(mbx_store_find_folder(r, mb->id, wk_names[i], &f->a, &fo), 0);
    assert_int_equal(fo->well_known, (int)i + 1);
    assert_int_equal(fo->parent_id, 0);
    assert_int_equal(fo->item_count, 0);
  }
  Mbx__Folder *fo;
  assert_int_equal(mbx_store_find_folder(r, mb->id, "inbox", &f->a, &fo), 0);
  assert_int_equal(fo->folder_class, MBX__FOLDER_CLASS__FOLDER_MAIL);
  assert_int_equal(mbx_store_find_folder(r, mb->id, "calendar", &f->a, &fo), 0);
  assert_int_equal(fo->folder_class, MBX__FOLDER_CLASS__FOLDER_CALENDAR);
  Mbx__Mailbox **mv;
  assert_int_equal(mbx_store_list_mailboxes(r, &f->a, &mv, &n), 0);
  assert_int_equal(n, 1);
  assert_string_equal(mv[0]->display_name, "Alice");
  mbx_store_rtxn_end(&r);
  fx_free(f);
}

static void test_mailbox_duplicates(void **state)
{
  (void)state;
  struct fx *f = fx_new();
  struct mbx_mailbox_spec a = {
      .address = "a@x.org", .aliases = (const char *[]){"alias@x.org"}, .n_aliases = 1};
  Mbx__Mailbox *mb;
  fx_begin(f);
  assert_int_equal(mbx_store_create_mailbox(f->w, &a, &f->a, &mb), 0);
  struct mbx_mailbox_spec dup1 = {.address = "A@X.org"};
  struct mbx_mailbox_spec dup2 = {
      .address = "b@x.org", .aliases = (const char *[]){"ALIAS@x.org"}, .n_aliases = 1};
  struct mbx_mailbox_spec dup3 = {.address = "alias@x.org"};
  struct mbx_mailbox_spec self = {
      .address = "c@x.org", .aliases = (const char *[]){"c@x.org"}, .n_aliases = 1};
  struct mbx_mailbox_spec bad1 = {.address = "no-at-sign"};
  struct mbx_mailbox_spec bad2 = {.address = "a b@x.org"};
  struct mbx_mailbox_spec bad3 = {.address = "@x.org"};
  assert_int_equal(mbx_store_create_mailbox(f->w, &dup1, &f->a, &mb), MBX_EEXIST);
  assert_int_equal(mbx_store_create_mailbox(f->w, &dup2, &f->a, &mb), MBX_EEXIST);
  assert_int_equal(mbx_store_create_mailbox(f->w, &dup3, &f->a, &mb), MBX_EEXIST);
  assert_int_equal(mbx_store_create_mailbox(f->w, &self, &f->a, &mb), MBX_EEXIST);
  assert_int_equal(mbx_store_create_mailbox(f->w, &bad1, &f->a, &mb), MBX_EINVAL);
  assert_int_equal(mbx_store_create_mailbox(f->w, &bad2, &f->a, &mb), MBX_EINVAL);
  assert_int_equal(mbx_store_create_mailbox(f->w, &bad3, &f->a, &mb), MBX_EINVAL);
  fx_commit(f);
  struct mbx_rtxn *r;
  Mbx__Mailbox **mv;
  size_t n;
  assert_int_equal(mbx_store_rtxn_begin(f->s, &r), 0);
  assert_int_equal(mbx_store_list_mailboxes(r, &f->a, &mv, &n), 0);
  assert_int_equal(n, 1);
  mbx_store_rtxn_end(&r);
  fx_free(f);
}

static void test_deliver_list_get(void **state)
{
  (void)state;
  struct fx *f = fx_new();
  uint64_t mb = fx_mailbox(f, "u@x.org");
  uint64_t inbox = fx_folder_id(f, mb, "Inbox");
  uint64_t ids[25];
  fx_begin(f);
  for (int i = 0; i < 25; i++) {
    char msg[128];
    int n = snprintf(msg, sizeof(msg), "Subject: m%d\r\nFrom: s@y.org\r\n\r\nbody %d", i, i);
    Mbx__Item *it;
    /* Distinct received times: appends with explicit times, older first. */
    assert_int_equal(mbx_store_append(f->w, mb, inbox, (const uint8_t *)msg, (size_t)n, 0,
                                      1000000 + i, &f->a, &it),
                     0);
    ids[i] = it->id;
  }
  fx_commit(f);
  Mbx__Folder *fo = fx_folder(f, mb, inbox);
  assert_int_equal(fo->item_count, 25);
  assert_int_equal(fo->unread_count, 25);
  struct mbx_rtxn *r;
  Mbx__Item **v;
  size_t n;
  uint64_t total;
  assert_int_equal(mbx_store_rtxn_begin(f->s, &r), 0);
  assert_int_equal(mbx_store_list_items(r, mb, inbox, 0, 10, &f->a, &v, &n, &total), 0);
  assert_int_equal(n, 10);
  assert_int_equal(total, 25);
  assert_int_equal(v[0]->id, ids[24]); /* newest first */
  assert_string_equal(v[0]->message->subject, "m24");
  assert_int_equal(v[9]->id, ids[15]);
  assert_int_equal(mbx_store_list_items(r, mb, inbox, 20, 10, &f->a, &v, &n, &total), 0);
  assert_int_equal(n, 5);
  assert_int_equal(v[4]->id, ids[0]);
  assert_int_equal(mbx_store_list_items(r, mb, inbox, 30, 10, &f->a, &v, &n, &total), 0);
  assert_int_equal(n, 0);
  Mbx__Item *it;
  const uint8_t *body;
  size_t blen;
  assert_int_equal(mbx_store_get_item(r, mb, ids[3], &f->a, &it, &body, &blen), 0);
  assert_int_equal(blen, it->size);
  assert_memory_equal(body, "Subject: m3\r\n", 13);
  assert_string_equal(it->message->from, "s@y.org");
  assert_int_equal(mbx_store_get_item(r, mb, 999999, &f->a, &it, NULL, NULL), MBX_ENOTFOUND);
  mbx_store_rtxn_end(&r);

  /* Deliver by alias-insensitive address; unknown address refused. */
  uint64_t d = fx_deliver(f, "U@X.ORG", "delivered");
  fx_begin(f);
  assert_int_equal(mbx_store_deliver(f->w, "nobody@x.org", (const uint8_t *)"x", 1, &f->a, &it),
                   MBX_ENOTFOUND);
  fx_commit(f);
  assert_int_equal(mbx_store_rtxn_begin(f->s, &r), 0);
  assert_int_equal(mbx_store_list_items(r, mb, inbox, 0, 1, &f->a, &v, &n, &total), 0);
  assert_int_equal(v[0]->id, d); /* received now: newest */
  assert_int_equal(total, 26);
  mbx_store_rtxn_end(&r);
  Mbx__Mailbox *m = fx_get_mailbox(f, mb);
  assert_int_equal(m->item_count, 26);
  fx_free(f);
}

static void test_flags_categories(void **state)
{
  (void)state;
  struct fx *f = fx_new();
  uint64_t mb = fx_mailbox(f, "u@x.org");
  uint64_t inbox = fx_folder_id(f, mb, "Inbox");
  uint64_t id = fx_deliver(f, "u@x.org", "flag me");
  Mbx__Item *it;
  fx_begin(f);
  const char *cats[] = {"Red", "Work"};
  assert_int_equal(mbx_store_set_flags(f->w, mb, id,
                                       MBX__ITEM_FLAG__FLAG_SEEN | MBX__ITEM_FLAG__FLAG_FLAGGED, 0,
                                       cats, 2, &f->a, &it),
                   0);
  fx_commit(f);
  assert_int_equal(fx_folder(f, mb, inbox)->unread_count, 0);
  fx_begin(f);
  assert_int_equal(mbx_store_set_flags(f->w, mb, id, MBX__ITEM_FLAG__FLAG_ANSWERED,
                                       MBX__ITEM_FLAG__FLAG_SEEN, NULL, 0, &f->a, &it),
                   0);
  fx_commit(f);
  struct mbx_rtxn *r;
  assert_int_equal(mbx_store_rtxn_begin(f->s, &r), 0);
  assert_int_equal(mbx_store_get_item(r, mb, id, &f->a, &it, NULL, NULL), 0);
  mbx_store_rtxn_end(&r);
  assert_int_equal(it->flags, MBX__ITEM_FLAG__FLAG_FLAGGED | MBX__ITEM_FLAG__FLAG_ANSWERED);
  assert_int_equal(it->n_categories, 2); /* untouched when NULL */
  assert_string_equal(it->categories[1], "Work");
  Mbx__Folder *fo = fx_folder(f, mb, inbox);
  assert_int_equal(fo->unread_count, 1);
  assert_int_equal(fo->item_count, 1);
  /* Another mailbox cannot touch it. */
  uint64_t other = fx_mailbox(f, "o@x.org");
  fx_begin(f);
  assert_int_equal(mbx_store_set_flags(f->w, other, id, 1, 0, NULL, 0, &f->a, &it), MBX_ENOTFOUND);
  assert_int_equal(
      mbx_store_move_item(f->w, other, id, fx_folder_id(f, other, "Inbox"), &f->a, &it),
      MBX_ENOTFOUND);
  assert_int_equal(mbx_store_delete_item(f->w, other, id, true), MBX_ENOTFOUND);
  fx_commit(f);
  fx_free(f);
}

static void test_move_copy_delete(void **state)
{
  (void)state;
  struct fx *f = fx_new();
  uint64_t mb = fx_mailbox(f, "u@x.org");
  uint64_t inbox = fx_folder_id(f, mb, "Inbox"), archive = fx_folder_id(f, mb, "Archive");
  uint64_t deleted = fx_folder_id(f, mb, "Deleted Items");
  uint64_t a = fx_deliver(f, "u@x.org", "a"), b = fx_deliver(f, "u@x.org", "b");
  uint64_t used = fx_get_mailbox(f, mb)->used_bytes;
  Mbx__Item *it;
  fx_begin(f);
  assert_int_equal(mbx_store_move_item(f->w, mb, a, archive, &f->a, &it), 0);
  assert_int_equal(it->folder_id, archive);
  assert_int_equal(mbx_store_copy_item(f->w, mb, b, archive, &f->a, &it), 0);
  uint64_t c = it->id;
  assert_true(c != b);
  fx_commit(f);
  assert_int_equal(fx_folder(f, mb, inbox)->item_count, 1);
  assert_int_equal(fx_folder(f, mb, archive)->item_count, 2);
  Mbx__Mailbox *m = fx_get_mailbox(f, mb);
  assert_int_equal(m->item_count, 3);
  assert_true(m->used_bytes > used); /* the copy counts */
  struct mbx_rtxn *r;
  const uint8_t *body;
  size_t blen;
  assert_int_equal(mbx_store_rtxn_begin(f->s, &r), 0);
  assert_int_equal(mbx_store_get_item(r, mb, c, &f->a, &it, &body, &blen), 0);
  assert_non_null(body);
  assert_memory_equal(body, "From: sender", 12);
  mbx_store_rtxn_end(&r);

  /* Soft delete → Deleted Items; again → gone; hard delete → gone at once. */
  fx_begin(f);
  assert_int_equal(mbx_store_delete_item(f->w, mb, a, false), 0);
  fx_commit(f);
  assert_int_equal(fx_folder(f, mb, deleted)->item_count, 1);
  assert_int_equal(fx_folder(f, mb, archive)->item_count, 1);
  fx_begin(f);
  assert_int_equal(mbx_store_delete_item(f->w, mb, a, false), 0);
  assert_int_equal(mbx_store_delete_item(f->w, mb, c, true), 0);
  assert_int_equal(mbx_store_delete_item(f->w, mb, c, true), MBX_ENOTFOUND);
  fx_commit(f);
  assert_int_equal(fx_folder(f, mb, deleted)->item_count, 0);
  assert_int_equal(fx_folder(f, mb, archive)->item_count, 0);
  m = fx_get_mailbox(f, mb);
  assert_int_equal(m->item_count, 1);
  assert_int_equal(m->used_bytes, fx_folder(f, mb, inbox)->size_bytes);
  assert_int_equal(mbx_store_rtxn_begin(f->s, &r), 0);
  assert_int_equal(mbx_store_get_item(r, mb, a, &f->a, &it, &body, &blen), MBX_ENOTFOUND);
  mbx_store_rtxn_end(&r);

  /* Empty a folder. */
  for (int i = 0; i < 5; i++)
    fx_deliver(f, "u@x.org", "more");
  uint64_t count = 0;
  fx_begin(f);
  assert_int_equal(mbx_store_empty_folder(f->w, mb, inbox, &count), 0);
  fx_commit(f);
  assert_int_equal(count, 6);
  Mbx__Folder *fo = fx_folder(f, mb, inbox);
  assert_int_equal(fo->item_count, 0);
  assert_int_equal(fo->size_bytes, 0);
  assert_int_equal(fx_get_mailbox(f, mb)->used_bytes, 0);
  fx_free(f);
}

static void test_other_items(void **state)
{
  (void)state;
  struct fx *f = fx_new();
  uint64_t mb = fx_mailbox(f, "u@x.org");
  uint64_t cal = fx_folder_id(f, mb, "Calendar"), inbox = fx_folder_id(f, mb, "Inbox");
  Mbx__Event ev = MBX__EVENT__INIT;
  ev.subject = "Standup";
  ev.has_start_us = ev.has_end_us = true;
  ev.start_us = 1000;
  ev.end_us = 2000;
  Mbx__Item tmpl = MBX__ITEM__INIT, *it;
  tmpl.kind = MBX__ITEM_KIND__ITEM_EVENT;
  tmpl.event = &ev;
  fx_begin(f);
  assert_int_equal(mbx_store_create_item(f->w, mb, cal, &tmpl, &f->a, &it), 0);
  assert_int_equal(mbx_store_create_item(f->w, mb, inbox, &tmpl, &f->a, &it), MBX_EINVAL);
  tmpl.kind = MBX__ITEM_KIND__ITEM_TASK; /* kind without its sub-message */
  assert_int_equal(mbx_store_create_item(f->w, mb, cal, &tmpl, &f->a, &it), MBX_EINVAL);
  Mbx__Note note = MBX__NOTE__INIT;
  note.subject = "n";
  Mbx__Item nt = MBX__ITEM__INIT;
  nt.kind = MBX__ITEM_KIND__ITEM_NOTE;
  nt.note = &note;
  assert_int_equal(mbx_store_create_item(f->w, mb, fx_folder_id(f, mb, "Notes"), &nt, &f->a, &it),
                   0);
  fx_commit(f);
  Mbx__Item **v;
  size_t n;
  uint64_t total;
  struct mbx_rtxn *r;
  assert_int_equal(mbx_store_rtxn_begin(f->s, &r), 0);
  assert_int_equal(mbx_store_list_items(r, mb, cal, 0, 0, &f->a, &v, &n, &total), 0);
  assert_int_equal(n, 1);
  assert_string_equal(v[0]->event->subject, "Standup");
  assert_int_equal(v[0]->event->end_us, 2000);
  assert_true(v[0]->size > 0);
  mbx_store_rtxn_end(&r);
  fx_free(f);
}

static void test_folders(void **state)
{
  (void)state;
  struct fx *f = fx_new();
  uint64_t mb = fx_mailbox(f, "u@x.org");
  uint64_t inbox = fx_folder_id(f, mb, "Inbox");
  Mbx__Folder *p, *c, *g, *fo;
  fx_begin(f);
  assert_int_equal(mbx_store_create_folder(f->w, mb, 0, "Projects", 0, &f->a, &p), 0);
  assert_int_equal(mbx_store_create_folder(f->w, mb, p->id, "2026", 0, &f->a, &c), 0);
  assert_int_equal(mbx_store_create_folder(f->w, mb, c->id, "Q1", 0, &f->a, &g), 0);
  assert_int_equal(mbx_store_create_folder(f->w, mb, 0, "PROJECTS", 0, &f->a, &fo), MBX_EEXIST);
  assert_int_equal(mbx_store_create_folder(f->w, mb, 0, "inbox", 0, &f->a, &fo), MBX_EEXIST);
  assert_int_equal(mbx_store_create_folder(f->w, mb, 0, "a/b", 0, &f->a, &fo), MBX_EINVAL);
  assert_int_equal(mbx_store_create_folder(f->w, mb, 0, "", 0, &f->a, &fo), MBX_EINVAL);
  assert_int_equal(mbx_store_create_folder(f->w, mb, 0, "tab\there", 0, &f->a, &fo), MBX_EINVAL);
  assert_int_equal(mbx_store_create_folder(f->w, mb, 424242, "x", 0, &f->a, &fo), MBX_ENOTFOUND);
  /* Well-known folders are fixed. */
  assert_int_equal(mbx_store_update_folder(f->w, mb, inbox, "Post", false, 0, &f->a, &fo),
                   MBX_EPERM);
  assert_int_equal(mbx_store_update_folder(f->w, mb, inbox, NULL, true, p->id, &f->a, &fo),
                   MBX_EPERM);
  assert_int_equal(mbx_store_delete_folder(f->w, mb, inbox), MBX_EPERM);
  /* No cycles. */
  assert_int_equal(mbx_store_update_folder(f->w, mb, p->id, NULL, true, g->id, &f->a, &fo),
                   MBX_EINVAL);
  assert_int_equal(mbx_store_update_folder(f->w, mb, p->id, NULL, true, p->id, &f->a, &fo),
                   MBX_EINVAL);
  /* Rename with a case change of itself is fine; onto a sibling's name is not. */
  assert_int_equal(mbx_store_update_folder(f->w, mb, p->id, "projects", false, 0, &f->a, &fo), 0);
  assert_string_equal(fo->name, "projects");
  assert_int_equal(mbx_store_update_folder(f->w, mb, p->id, "Archive", false, 0, &f->a, &fo),
                   MBX_EEXIST);
  /* Move Q1 to the top. */
  assert_int_equal(mbx_store_update_folder(f->w, mb, g->id, NULL, true, 0, &f->a, &fo), 0);
  assert_int_equal(fo->parent_id, 0);
  fx_commit(f);
  assert_int_equal(fx_folder_id(f, mb, "Projects/2026"), c->id);
  assert_int_equal(fx_folder_id(f, mb, "q1"), g->id);
  assert_int_equal(fx_folder_id(f, mb, "Projects/2026/Q1"), 0);

  /* Delete a subtree with items: items, subfolders and quota all go. */
  Mbx__Item *it;
  fx_begin(f);
  assert_int_equal(mbx_store_update_folder(f->w, mb, g->id, NULL, true, c->id, &f->a, &fo), 0);
  assert_int_equal(mbx_store_append(f->w, mb, g->id, (const uint8_t *)"Subject: x\r\n\r\n", 15, 0,
                                    0, &f->a, &it),
                   0);
  assert_int_equal(mbx_store_append(f->w, mb, c->id, (const uint8_t *)"Subject: y\r\n\r\n", 15, 0,
                                    0, &f->a, &it),
                   0);
  fx_commit(f);
  assert_int_equal(fx_get_mailbox(f, mb)->used_bytes, 30);
  fx_begin(f);
  assert_int_equal(mbx_store_delete_folder(f->w, mb, p->id), 0);
  fx_commit(f);
  assert_int_equal(fx_folder_id(f, mb, "Projects"), 0);
  assert_null(fx_folder(f, mb, g->id));
  Mbx__Mailbox *m = fx_get_mailbox(f, mb);
  assert_int_equal(m->used_bytes, 0);
  assert_int_equal(m->item_count, 0);
  struct mbx_rtxn *r;
  Mbx__Folder **fv;
  size_t n;
  assert_int_equal(mbx_store_rtxn_begin(f->s, &r), 0);
  assert_int_equal(mbx_store_list_folders(r, mb, &f->a, &fv, &n), 0);
  assert_int_equal(n, 11);
  assert_int_equal(mbx_store_get_item(r, mb, it->id, &f->a, &it, NULL, NULL), MBX_ENOTFOUND);
  mbx_store_rtxn_end(&r);
  /* The name is free again. */
  fx_begin(f);
  assert_int_equal(mbx_store_create_folder(f->w, mb, 0, "Projects", 0, &f->a, &p), 0);
  fx_commit(f);
  fx_free(f);
}

static void test_quota_and_size(void **state)
{
  (void)state;
  struct mbx_store_options opt;
  mbx_store_options_default(&opt);
  opt.max_message_bytes = 1000;
  struct fx *f = fx_new_opt(&opt);
  uint64_t mb = fx_mailbox_q(f, "u@x.org", 500);
  uint64_t inbox = fx_folder_id(f, mb, "Inbox");
  static uint8_t big[2000];
  memset(big, 'a', sizeof(big));
  Mbx__Item *it;
  fx_begin(f);
  assert_int_equal(mbx_store_deliver(f->w, "u@x.org", big, 1001, &f->a, &it), MBX_ETOOBIG);
  assert_int_equal(mbx_store_append(f->w, mb, inbox, big, 1001, 0, 0, &f->a, &it), MBX_ETOOBIG);
  assert_int_equal(mbx_store_deliver(f->w, "u@x.org", big, 400, &f->a, &it), 0);
  uint64_t kept = it->id;
  assert_int_equal(mbx_store_deliver(f->w, "u@x.org", big, 101, &f->a, &it), MBX_EQUOTA);
  assert_int_equal(mbx_store_copy_item(f->w, mb, kept, inbox, &f->a, &it), MBX_EQUOTA);
  assert_int_equal(mbx_store_deliver(f->w, "u@x.org", big, 100, &f->a, &it), 0);
  fx_commit(f);
  Mbx__Mailbox *m = fx_get_mailbox(f, mb);
  assert_int_equal(m->used_bytes, 500);
  assert_int_equal(m->item_count, 2);
  struct mbx_rtxn *r;
  const uint8_t *body;
  size_t blen;
  assert_int_equal(mbx_store_rtxn_begin(f->s, &r), 0);
  assert_int_equal(mbx_store_get_item(r, mb, kept, &f->a, &it, &body, &blen), 0);
  assert_int_equal(blen, 400);
  assert_memory_equal(body, big, 400);
  mbx_store_rtxn_end(&r);
  /* Freeing space lets mail in again. */
  fx_begin(f);
  assert_int_equal(mbx_store_delete_item(f->w, mb, kept, true), 0);
  assert_int_equal(mbx_store_deliver(f->w, "u@x.org", big, 300, &f->a, &it), 0);
  fx_commit(f);
  assert_int_equal(fx_get_mailbox(f, mb)->used_bytes, 400);
  fx_free(f);
}

static void test_reopen(void **state)
{
  (void)state;
  struct fx *f = fx_new();
  uint64_t mb = fx_mailbox(f, "u@x.org");
  uint64_t id = fx_deliver(f, "u@x.org", "persist");
  uint64_t uid = mbx_store_db_uid(f->s), lsn = mbx_store_last_lsn(f->s);
  struct mbx_store_digest d1 = fx_digest(f->s);
  mbx_store_close(&f->s);
  assert_null(f->s);
  const char *why;
  assert_int_equal(mbx_store_open(f->dir, "nope", false, NULL, &f->s, &why), MBX_ENOTFOUND);
  assert_int_equal(mbx_store_open(f->dir, "../evil", true, NULL, &f->s, &why), MBX_EINVAL);
  assert_int_equal(mbx_store_open(f->dir, "db1", false, NULL, &f->s, &why), 0);
  assert_int_equal(mbx_store_db_uid(f->s), uid);
  assert_int_equal(mbx_store_last_lsn(f->s), lsn);
  assert_int_equal(mbx_store_epoch(f->s), 1);
  assert_true(mbx_store_file_bytes(f->s) > 0);
  struct mbx_store_digest d2 = fx_digest(f->s);
  assert_memory_equal(d1.sha256, d2.sha256, 32);
  struct mbx_rtxn *r;
  Mbx__Item *it;
  assert_int_equal(mbx_store_rtxn_begin(f->s, &r), 0);
  assert_int_equal(mbx_store_get_item(r, mb, id, &f->a, &it, NULL, NULL), 0);
  assert_string_equal(it->message->subject, "persist");
  mbx_store_rtxn_end(&r);
  /* New ids continue after the old ones. */
  uint64_t id2 = fx_deliver(f, "u@x.org", "after");
  assert_true(id2 > id);
  fx_free(f);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_mailbox_create),   cmocka_unit_test(test_mailbox_duplicates),
      cmocka_unit_test(test_deliver_list_get), cmocka_unit_test(test_flags_categories),
      cmocka_unit_test(test_move_copy_delete), cmocka_unit_test(test_other_items),
      cmocka_unit_test(test_folders),          cmocka_unit_test(test_quota_and_size),
      cmocka_unit_test(test_reopen),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

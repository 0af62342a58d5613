/* test_client_cli.c — the mbx CLI's pure helpers: base64url sync tokens, ISO 8601,
 * size suffixes, flag arguments, JSON escaping, the generic protobuf → JSON
 * conversion that `mbx --json` prints, argument parsing (global options after the
 * command) and `list` paging past the server's page size. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cli.h"

static char *json_of_string(const char *s, size_t len)
{
  struct mbx_buf b;
  mbx_buf_init(&b, 0);
  assert_int_equal(mbxcli_json_string(&b, s, len), 0);
  assert_int_equal(mbx_buf_append(&b, "", 1), 0);
  return (char *)b.data;
}

static char *json_of(const ProtobufCMessage *m)
{
  struct mbx_buf b;
  mbx_buf_init(&b, 0);
  assert_int_equal(mbxcli_json_message(&b, m), 0);
  assert_int_equal(mbx_buf_append(&b, "", 1), 0);
  return (char *)b.data;
}

static void test_b64url_round_trip(void **state)
{
  (void)state;
  uint8_t data[64];
  for (size_t i = 0; i < sizeof(data); i++)
    data[i] = (uint8_t)(i * 37 + 250);
  for (size_t len = 0; len <= sizeof(data); len++) {
    struct mbx_buf b;
    mbx_buf_init(&b, 0);
    assert_int_equal(mbxcli_b64url_encode(data, len, &b), 0);
    const char *enc = b.data ? (const char *)b.data : "";
    assert_null(strpbrk(enc, "+/="));           /* url-safe, no padding */
    uint8_t *dec;
    size_t dlen;
    assert_int_equal(mbxcli_b64url_decode(enc, &dec, &dlen), 0);
    assert_int_equal(dlen, len);
    assert_memory_equal(dec, data, len);
    free(dec);
    mbx_buf_free(&b);
  }
  struct mbx_buf b;
  mbx_buf_init(&b, 0);
  assert_int_equal(mbxcli_b64url_encode((const uint8_t *)"\xfb\xff", 2, &b), 0);
  assert_string_equal((char *)b.data, "-_8");
  mbx_buf_free(&b);
}

static void test_b64url_rejects_junk(void **state)
{
  (void)state;
  uint8_t *d;
  size_t n;
  assert_int_equal(mbxcli_b64url_decode("ab+c", &d, &n), MBX_EINVAL);
  assert_int_equal(mbxcli_b64url_decode("ab/c", &d, &n), MBX_EINVAL);
  assert_int_equal(mbxcli_b64url_decode("a", &d, &n), MBX_EINVAL);
  assert_int_equal(mbxcli_b64url_decode("ab c", &d, &n), MBX_EINVAL);
  assert_int_equal(mbxcli_b64url_decode("-_9", &d, &n), MBX_EINVAL); /* non-zero tail bits */
  assert_int_equal(mbxcli_b64url_decode("-_8=", &d, &n), 0);         /* padding tolerated */
  assert_int_equal(n, 2);
  assert_memory_equal(d, "\xfb\xff", 2);
  free(d);
}

static void test_iso8601(void **state)
{
  (void)state;
  int64_t us;
  assert_int_equal(mbxcli_parse_iso8601("1970-01-01T00:00:00Z", &us), 0);
  assert_int_equal(us, 0);
  assert_int_equal(mbxcli_parse_iso8601("2026-03-01T09:30:15.25Z", &us), 0);
  assert_int_equal(us, 1772357415250000LL);
  assert_int_equal(mbxcli_parse_iso8601("2026-03-01T11:30:15.25+02:00", &us), 0);
  assert_int_equal(us, 1772357415250000LL);
  assert_int_equal(mbxcli_parse_iso8601("2026-03-01 04:00:15.25-0530", &us), 0);
  assert_int_equal(us, 1772357415250000LL);
  assert_int_equal(mbxcli_parse_iso8601("2026-03-01", &us), 0);
  assert_int_equal(us, 1772323200000000LL);
  assert_int_equal(mbxcli_parse_iso8601("2024-02-29T12:00", &us), 0);
  assert_int_equal(mbxcli_parse_iso8601("2026-02-29", &us), MBX_EINVAL);
  assert_int_equal(mbxcli_parse_iso8601("2026-13-01", &us), MBX_EINVAL);
  assert_int_equal(mbxcli_parse_iso8601("2026-03-01T25:00", &us), MBX_EINVAL);
  assert_int_equal(mbxcli_parse_iso8601("2026-03-01T09:30Zjunk", &us), MBX_EINVAL);
  assert_int_equal(mbxcli_parse_iso8601("tomorrow", &us), MBX_EINVAL);
  assert_int_equal(mbxcli_parse_iso8601("", &us), MBX_EINVAL);
  char buf[32];
  mbxcli_format_time(1772357415250000LL, buf, sizeof(buf));
  assert_string_equal(buf, "2026-03-01T09:30:15Z");
}

static void test_size_suffixes(void **state)
{
  (void)state;
  uint64_t v;
  assert_int_equal(mbxcli_parse_size("1048576", &v), 0);
  assert_int_equal(v, 1048576);
  assert_int_equal(mbxcli_parse_size("512K", &v), 0);
  assert_int_equal(v, 512 * 1024);
  assert_int_equal(mbxcli_parse_size("10M", &v), 0);
  assert_int_equal(v, 10 << 20);
  assert_int_equal(mbxcli_parse_size("1.5G", &v), 0);
  assert_int_equal(v, 3ULL << 29);
  assert_int_equal(mbxcli_parse_size("2GiB", &v), 0);
  assert_int_equal(v, 2ULL << 30);
  assert_int_equal(mbxcli_parse_size("3tb", &v), 0);
  assert_int_equal(v, 3ULL << 40);
  assert_int_equal(mbxcli_parse_size("100B", &v), 0);
  assert_int_equal(v, 100);
  assert_int_equal(mbxcli_parse_size("1.5", &v), MBX_EINVAL);
  assert_int_equal(mbxcli_parse_size("10X", &v), MBX_EINVAL);
  assert_int_equal(mbxcli_parse_size("-1M", &v), MBX_EINVAL);
  assert_int_equal(mbxcli_parse_size("M", &v), MBX_EINVAL);
  assert_int_equal(mbxcli_parse_size("10MBx", &v), MBX_EINVAL);
  assert_int_equal(mbxcli_parse_size("99999999999T", &v), MBX_ELIMIT);
  assert_int_equal(mbxcli_parse_size("99999999999999999999999", &v), MBX_ELIMIT);
}

static void test_flag_arguments(void **state)
{
  (void)state;
  uint32_t add = 0, rm = 0, bits;
  assert_int_equal(mbxcli_parse_flag_change("+seen", &add, &rm), 0);
  assert_int_equal(mbxcli_parse_flag_change("-flagged", &add, &rm), 0);
  assert_int_equal(mbxcli_parse_flag_change("+Draft", &add, &rm), 0);
  assert_int_equal(add, MBX__ITEM_FLAG__FLAG_SEEN | MBX__ITEM_FLAG__FLAG_DRAFT);
  assert_int_equal(rm, MBX__ITEM_FLAG__FLAG_FLAGGED);
  assert_int_equal(mbxcli_parse_flag_change("-seen", &add, &rm), 0); /* last one wins */
  assert_int_equal(add, MBX__ITEM_FLAG__FLAG_DRAFT);
  assert_int_equal(mbxcli_parse_flag_change("seen", &add, &rm), MBX_EINVAL);
  assert_int_equal(mbxcli_parse_flag_change("+bogus", &add, &rm), MBX_EINVAL);
  assert_int_equal(mbxcli_parse_flag_list("seen,answered", &bits), 0);
  assert_int_equal(bits, MBX__ITEM_FLAG__FLAG_SEEN | MBX__ITEM_FLAG__FLAG_ANSWERED);
  assert_int_equal(mbxcli_parse_flag_list("seen,nope", &bits), MBX_EINVAL);
  char col[5];
  mbxcli_flags_column(MBX__ITEM_FLAG__FLAG_SEEN | MBX__ITEM_FLAG__FLAG_DRAFT, col);
  assert_string_equal(col, "S--D");
  char **v;
  size_t n;
  assert_int_equal(mbxcli_split_csv("a,,b,", &v, &n), 0);
  assert_int_equal(n, 2);
  assert_string_equal(v[0], "a");
  assert_string_equal(v[1], "b");
  assert_null(v[2]);
  mbxcli_strv_free(&v);
  assert_null(v);
  uint64_t u;
  assert_int_equal(mbxcli_parse_u64("42", 100, &u), 0);
  assert_int_equal(u, 42);
  assert_int_equal(mbxcli_parse_u64("101", 100, &u), MBX_ELIMIT);
  assert_int_equal(mbxcli_parse_u64("4x", 100, &u), MBX_EINVAL);
  assert_int_equal(mbxcli_parse_u64("-4", 100, &u), MBX_EINVAL);
}

static void test_json_escaping(void **state)
{
  (void)state;
  char *j = json_of_string("a\"b\\c\n\t\x01\x7f", 9);
  assert_string_equal(j, "\"a\\\"b\\\\c\\n\\t\\u0001\\u007f\"");
  free(j);
  /* valid UTF-8 passes through; invalid bytes, overlongs and surrogates do not */
  j = json_of_string("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa7", 14);
  assert_string_equal(j, "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa7\"");
  free(j);
  j = json_of_string("x\xff" "y\xc0\xaf" "z\xed\xa0\x80" "\xe2\x82", 11);
  assert_string_equal(j, "\"x\\ufffdy\\ufffd\\ufffdz\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\"");
  free(j);
  j = json_of_string("nul\0in", 6);
  assert_string_equal(j, "\"nul\\u0000in\"");
  free(j);
}

static void test_json_message_generic(void **state)
{
  (void)state;
  Mbx__Folder f1 = MBX__FOLDER__INIT, f2 = MBX__FOLDER__INIT;
  f1.id = 7;
  f1.mailbox_id = 1;
  f1.name = "Inbox";
  f1.has_folder_class = 1;
  f1.folder_class = MBX__FOLDER_CLASS__FOLDER_MAIL;
  f1.has_last_cn = 1;
  f1.last_cn = 18446744073709551615ULL;
  f2.id = 8;
  f2.mailbox_id = 1;
  f2.name = "Cal";
  f2.has_folder_class = 1;
  f2.folder_class = MBX__FOLDER_CLASS__FOLDER_CALENDAR;
  Mbx__Folder *fs[] = { &f1, &f2 };
  Mbx__FoldersResp fr = MBX__FOLDERS_RESP__INIT;
  fr.n_folders = 2;
  fr.folders = fs;
  char *j = json_of(&fr.base);
  assert_string_equal(j, "{\"folders\":[{\"id\":7,\"mailbox_id\":1,\"name\":\"Inbox\","
                         "\"folder_class\":\"FOLDER_MAIL\",\"last_cn\":18446744073709551615},"
                         "{\"id\":8,\"mailbox_id\":1,\"name\":\"Cal\","
                         "\"folder_class\":\"FOLDER_CALENDAR\"}]}");
  free(j);

  Mbx__SyncResp sr = MBX__SYNC_RESP__INIT;
  uint64_t del[] = { 3, 4 };
  sr.n_deleted = 2;
  sr.deleted = del;
  sr.state.data = (uint8_t *)"\xfb\xff";
  sr.state.len = 2;
  sr.has_more = 1;
  sr.more = 0;
  j = json_of(&sr.base);
  assert_string_equal(j, "{\"deleted\":[3,4],\"state\":\"-_8\",\"more\":false}");
  free(j);

  Mbx__Item it = MBX__ITEM__INIT;
  Mbx__Event ev = MBX__EVENT__INIT;
  char *att[] = { "a@x", "b@x" };
  it.id = 5;
  it.mailbox_id = 1;
  it.folder_id = 8;
  it.has_kind = 1;
  it.kind = MBX__ITEM_KIND__ITEM_EVENT;
  it.event = &ev;
  ev.subject = "Tab\there";
  ev.has_start_us = 1;
  ev.start_us = -5;
  ev.n_attendees = 2;
  ev.attendees = att;
  ev.has_reminder_minutes = 1;
  ev.reminder_minutes = -1;
  Mbx__ItemResp ir = MBX__ITEM_RESP__INIT;
  ir.item = &it;
  j = json_of(&ir.base);
  assert_string_equal(j, "{\"item\":{\"id\":5,\"mailbox_id\":1,\"folder_id\":8,"
                         "\"kind\":\"ITEM_EVENT\",\"event\":{\"subject\":\"Tab\\there\","
                         "\"start_us\":-5,\"attendees\":[\"a@x\",\"b@x\"],"
                         "\"reminder_minutes\":-1}}}");
  free(j);

  Mbx__DeleteReq empty = MBX__DELETE_REQ__INIT; /* required field only */
  empty.item_id = 0;
  j = json_of(&empty.base);
  assert_string_equal(j, "{\"item_id\":0}");
  free(j);
}

/* ---- argument parsing ---------------------------------------------------------- */

static const struct mbxcli_optspec list_opts[] = { { "limit", true }, { "offset", true }, { 0 } };

/* Parses the words of a command line (after the command's own words). */
static int parse_line(const struct mbxcli_optspec *opts, const char *line, struct mbxcli_args *a,
                      struct mbxcli_globals *g, char *err)
{
  static char buf[512];
  static char *argv[32];
  int argc = 0;
  memset(a, 0, sizeof(*a));
  memset(g, 0, sizeof(*g));
  err[0] = 0;
  snprintf(buf, sizeof(buf), "%s", line);
  for (char *t = strtok(buf, " "); t && argc < 32; t = strtok(NULL, " "))
    argv[argc++] = t;
  return mbxcli_parse_args(opts, argc, argv, a, g, err, 200);
}

static void test_args_global_after_command(void **state)
{
  (void)state;
  struct mbxcli_args a;
  struct mbxcli_globals g;
  char err[200];
  assert_int_equal(parse_line(list_opts, "Inbox --json", &a, &g, err), 0);
  assert_true(g.json);
  assert_int_equal(a.npos, 1);
  assert_string_equal(a.pos[0], "Inbox");
  assert_int_equal(parse_line(list_opts, "--limit 5 Inbox --server=h:7 --user u@x --cached",
                              &a, &g, err), 0);
  assert_string_equal(a.opt[0], "5");
  assert_null(a.opt[1]);
  assert_string_equal(g.server, "h:7");
  assert_string_equal(g.user, "u@x");
  assert_true(g.cached);
  assert_false(g.json);
  assert_int_equal(a.npos, 1);
  /* after "--" it is a folder called "--json", not the option */
  assert_int_equal(parse_line(list_opts, "-- --json", &a, &g, err), 0);
  assert_false(g.json);
  assert_int_equal(a.npos, 1);
  assert_string_equal(a.pos[0], "--json");
  /* -flagged and - are positional */
  assert_int_equal(parse_line(list_opts, "7 -flagged -", &a, &g, err), 0);
  assert_int_equal(a.npos, 3);
  assert_string_equal(a.pos[1], "-flagged");
  assert_false(g.json);
}

static void test_args_own_options_win(void **state)
{
  (void)state;
  static const struct mbxcli_optspec opts[] = {
    { "subject", true }, { "user", true }, { "body", false }, { "email", true }, { 0 } };
  struct mbxcli_args a;
  struct mbxcli_globals g;
  char err[200];
  /* an option's value is never taken for an option, even "--json" */
  assert_int_equal(parse_line(opts, "--subject --json --body", &a, &g, err), 0);
  assert_string_equal(a.opt[0], "--json");
  assert_string_equal(a.opt[2], "");
  assert_false(g.json);
  /* a command's own option of a global's name is the command's */
  assert_int_equal(parse_line(opts, "--user bob --json", &a, &g, err), 0);
  assert_string_equal(a.opt[1], "bob");
  assert_null(g.user);
  assert_true(g.json);
  assert_int_equal(parse_line(opts, "--email a@x --email=b@x", &a, &g, err), 0);
  assert_int_equal(a.nmulti[3], 2);
  assert_string_equal(a.multi[3][0], "a@x");
  assert_string_equal(a.multi[3][1], "b@x");
  assert_string_equal(a.opt[3], "b@x");
}

static void test_args_errors_and_help(void **state)
{
  (void)state;
  struct mbxcli_args a;
  struct mbxcli_globals g;
  char err[200];
  assert_int_equal(parse_line(list_opts, "Inbox --jsn", &a, &g, err), MBX_EINVAL);
  assert_string_equal(err, "unknown option --jsn");
  assert_int_equal(parse_line(list_opts, "Inbox --limit", &a, &g, err), MBX_EINVAL);
  assert_string_equal(err, "--limit needs a value");
  assert_int_equal(parse_line(list_opts, "Inbox --ca", &a, &g, err), MBX_EINVAL);
  assert_string_equal(err, "--ca needs a value");
  assert_int_equal(parse_line(list_opts, "Inbox --json=yes", &a, &g, err), MBX_EINVAL);
  assert_string_equal(err, "--json takes no value");
  static const struct mbxcli_optspec flag_opts[] = { { "hard", false }, { 0 } };
  assert_int_equal(parse_line(flag_opts, "5 --hard=1", &a, &g, err), MBX_EINVAL);
  assert_string_equal(err, "--hard takes no value");
  assert_int_equal(parse_line(list_opts, "a b c d e f g h i", &a, &g, err), MBX_ELIMIT);
  /* --help stops parsing, even after an error-to-be; after "--" it is an argument */
  assert_int_equal(parse_line(list_opts, "Inbox --help --bogus", &a, &g, err), 0);
  assert_true(a.help);
  assert_int_equal(parse_line(list_opts, "-- --help", &a, &g, err), 0);
  assert_false(a.help);
  assert_string_equal(a.pos[0], "--help");
  assert_int_equal(parse_line(list_opts, "-h", &a, &g, err), 0);
  assert_true(a.help);
}

static void test_args_global_opt_before_command(void **state)
{
  (void)state;
  struct mbxcli_globals g = { 0 };
  char err[200];
  char *argv[] = { "--server", "h:1", "--ca=c.pem", "--json", "--jsonx", "list", "--key" };
  int i = 0;
  assert_int_equal(mbxcli_global_opt(&g, 7, argv, &i, err, sizeof(err)), 1);
  assert_int_equal(i, 1); /* moved past the value; the caller's loop steps on */
  assert_string_equal(g.server, "h:1");
  i = 2;
  assert_int_equal(mbxcli_global_opt(&g, 7, argv, &i, err, sizeof(err)), 1);
  assert_string_equal(g.ca, "c.pem");
  i = 3;
  assert_int_equal(mbxcli_global_opt(&g, 7, argv, &i, err, sizeof(err)), 1);
  assert_true(g.json);
  i = 4;
  assert_int_equal(mbxcli_global_opt(&g, 7, argv, &i, err, sizeof(err)), 0);
  i = 5;
  assert_int_equal(mbxcli_global_opt(&g, 7, argv, &i, err, sizeof(err)), 0);
  i = 6;
  assert_int_equal(mbxcli_global_opt(&g, 7, argv, &i, err, sizeof(err)), MBX_EINVAL);
  assert_string_equal(err, "--key needs a value");
}

/* ---- list paging ----------------------------------------------------------------- */

/* A folder as the server pages it: ids newest first, at most page_max a page, 50 when
 * no limit is asked. Optionally arrivals at the top after a given call, or a failure. */
struct fake_folder {
  uint64_t ids[4096];
  size_t n;
  uint32_t page_max;
  int calls;
  int arrive_after, arrive_n; /* after call arrive_after, arrive_n new items on top */
  int fail_at;                /* this call fails (0: none) */
  uint32_t asked[16];
};

static void fake_init(struct fake_folder *f, size_t n)
{
  memset(f, 0, sizeof(*f));
  f->n = n;
  f->page_max = 1000;
  for (size_t i = 0; i < n; i++)
    f->ids[i] = 100000 - i; /* newest (highest id) first */
}

static int fake_page(void *arg, uint32_t offset, uint32_t limit, Mbx__ListResp **resp_r)
{
  struct fake_folder *f = arg;
  f->calls++;
  if (f->calls <= 16)
    f->asked[f->calls - 1] = limit;
  if (f->calls == f->fail_at)
    return MBX_ECONN;
  uint32_t want = limit ? limit : 50;
  if (want > f->page_max)
    want = f->page_max;
  size_t from = offset < f->n ? offset : f->n;
  size_t cnt = f->n - from < want ? f->n - from : want;
  Mbx__Item *items = calloc(cnt + 1, sizeof(*items));
  Mbx__Item **ptrs = calloc(cnt + 1, sizeof(*ptrs));
  assert_non_null(items);
  assert_non_null(ptrs);
  for (size_t i = 0; i < cnt; i++) {
    mbx__item__init(&items[i]);
    items[i].id = f->ids[from + i];
    items[i].mailbox_id = 1;
    items[i].folder_id = 7;
    ptrs[i] = &items[i];
  }
  Mbx__ListResp lr = MBX__LIST_RESP__INIT;
  lr.items = ptrs;
  lr.n_items = cnt;
  lr.has_total = 1;
  lr.total = f->n;
  size_t len = mbx__list_resp__get_packed_size(&lr);
  uint8_t *buf = malloc(len + 1);
  assert_non_null(buf);
  mbx__list_resp__pack(&lr, buf);
  *resp_r = mbx__list_resp__unpack(NULL, len, buf);
  free(buf);
  free(ptrs);
  free(items);
  assert_non_null(*resp_r);
  if (f->calls == f->arrive_after) {
    memmove(f->ids + f->arrive_n, f->ids, f->n * sizeof(f->ids[0]));
    for (int i = 0; i < f->arrive_n; i++)
      f->ids[i] = 200000 + (uint64_t)i;
    f->n += (size_t)f->arrive_n;
  }
  return 0;
}

static void assert_listing_ids(const struct mbxcli_listing *l, const uint64_t *want, size_t n)
{
  assert_int_equal(l->view.n_items, n);
  for (size_t i = 0; i < n; i++)
    assert_int_equal(l->view.items[i]->id, want[i]);
}

static void test_list_pages_past_page_size(void **state)
{
  (void)state;
  static struct fake_folder f;
  struct mbxcli_listing l;
  fake_init(&f, 2500);
  assert_int_equal(mbxcli_list_all(fake_page, &f, 0, 2003, &l), 0);
  assert_listing_ids(&l, f.ids, 2003);
  assert_int_equal(l.view.total, 2500);
  assert_true(l.view.has_total);
  assert_false(l.changed);
  assert_int_equal(f.calls, 3);
  assert_int_equal(f.asked[0], 2003); /* the server's page size is its own to choose */
  assert_int_equal(f.asked[1], 1003);
  assert_int_equal(f.asked[2], 3);
  mbxcli_listing_free(&l);

  /* a limit past the end stops at the end, without an empty extra call */
  fake_init(&f, 2500);
  assert_int_equal(mbxcli_list_all(fake_page, &f, 0, 100000, &l), 0);
  assert_listing_ids(&l, f.ids, 2500);
  assert_int_equal(f.calls, 3);
  mbxcli_listing_free(&l);

  /* from an offset */
  fake_init(&f, 2500);
  assert_int_equal(mbxcli_list_all(fake_page, &f, 1400, 1050, &l), 0);
  assert_listing_ids(&l, f.ids + 1400, 1050);
  mbxcli_listing_free(&l);

  /* no limit: one page of the server's default size, the total says there is more */
  fake_init(&f, 2500);
  assert_int_equal(mbxcli_list_all(fake_page, &f, 0, 0, &l), 0);
  assert_listing_ids(&l, f.ids, 50);
  assert_int_equal(l.view.total, 2500);
  assert_int_equal(f.calls, 1);
  mbxcli_listing_free(&l);

  /* an empty folder, and an offset past its end */
  fake_init(&f, 0);
  assert_int_equal(mbxcli_list_all(fake_page, &f, 0, 10, &l), 0);
  assert_int_equal(l.view.n_items, 0);
  assert_int_equal(f.calls, 1);
  mbxcli_listing_free(&l);
  fake_init(&f, 30);
  assert_int_equal(mbxcli_list_all(fake_page, &f, 40, 10, &l), 0);
  assert_int_equal(l.view.n_items, 0);
  assert_int_equal(l.view.total, 30);
  mbxcli_listing_free(&l);
}

static void test_list_arrivals_while_paging(void **state)
{
  (void)state;
  static struct fake_folder f;
  static uint64_t before[2500];
  struct mbxcli_listing l;
  fake_init(&f, 2500);
  memcpy(before, f.ids, sizeof(before));
  f.arrive_after = 1; /* 7 deliveries land between the first and the second page */
  f.arrive_n = 7;
  assert_int_equal(mbxcli_list_all(fake_page, &f, 0, 2003, &l), 0);
  assert_listing_ids(&l, before, 2003); /* each item once, none skipped */
  assert_true(l.changed);
  assert_int_equal(l.first_total, 2500);
  assert_int_equal(l.view.total, 2507);
  mbxcli_listing_free(&l);
}

static void test_list_error_on_a_later_page(void **state)
{
  (void)state;
  static struct fake_folder f;
  struct mbxcli_listing l;
  fake_init(&f, 2500);
  f.fail_at = 2;
  assert_int_equal(mbxcli_list_all(fake_page, &f, 0, 2003, &l), MBX_ECONN);
  mbxcli_listing_free(&l); /* frees the first page */
  assert_int_equal(l.npages, 0);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_b64url_round_trip),
    cmocka_unit_test(test_b64url_rejects_junk),
    cmocka_unit_test(test_iso8601),
    cmocka_unit_test(test_size_suffixes),
    cmocka_unit_test(test_flag_arguments),
    cmocka_unit_test(test_json_escaping),
    cmocka_unit_test(test_json_message_generic),
    cmocka_unit_test(test_args_global_after_command),
    cmocka_unit_test(test_args_own_options_win),
    cmocka_unit_test(test_args_errors_and_help),
    cmocka_unit_test(test_args_global_opt_before_command),
    cmocka_unit_test(test_list_pages_past_page_size),
    cmocka_unit_test(test_list_arrivals_while_paging),
    cmocka_unit_test(test_list_error_on_a_later_page),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* itl_cache.c — integration driver for cached mode's if_cn path (it_cache_ifcn.sh).
 * A sync only meets ECONFLICT when the server changed an item between the folder's
 * download and the push; to make that deterministic, the driver advances the cache's
 * folder token past a server change without applying it (through the cache's
 * internals), so the next push carries a stale if_cn. Then it checks that the sync
 * re-syncs the item, applies the documented rule, pushes again and ends where the
 * rule says, with nothing lost.
 * Usage: itl_cache ifcn   (env MBX_SERVER, MBX_CA, MBX_USER, MBX_PASSWORD, MBX_CACHE_DIR) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_int.h"
#include "mbx/cache.h"

static int failures;
#define CHECK(cond, ...)                                                                 \
  do {                                                                                   \
    if (cond) {                                                                          \
      printf("ok: " __VA_ARGS__);                                                        \
      printf("\n");                                                                      \
    } else {                                                                             \
      printf("FAIL (%s:%d): ", __FILE__, __LINE__);                                      \
      printf(__VA_ARGS__);                                                               \
      printf("\n");                                                                      \
      failures++;                                                                        \
    }                                                                                    \
  } while (0)

static void die(const char *what, int rc, mbxc_conn *c)
{
  fprintf(stderr, "itl_cache: %s: %s (%s)\n", what,
          c && *mbxc_last_error(c) ? mbxc_last_error(c)
          : *mbxc_cache_last_error() ? mbxc_cache_last_error() : mbx_strerror(rc),
          mbx_strerror_name(rc));
  exit(1);
}

static struct mbxc_options opts;
static const char *user, *password;

static uint64_t append_on_server(mbxc_conn *c, uint64_t folder, const char *subject)
{
  char msg[256];
  int n = snprintf(msg, sizeof(msg), "From: a@example.org\r\nSubject: %s\r\n\r\nbody of %s\r\n",
                   subject, subject);
  Mbx__ItemResp *ir;
  int rc = mbxc_append(c, folder, msg, (size_t)n, 0, &ir);
  if (rc < 0)
    die("append", rc, c);
  uint64_t id = ir->item->id;
  mbxc_free(&ir);
  return id;
}

/* Moves the cache's token of folder to the server's current state, skipping what
 * changed since: the cache now believes it saw those changes. */
static void skip_ahead(mbxc_cache *cache, mbxc_conn *c, uint64_t folder)
{
  struct mbxc__ct t;
  Mbx__CacheFolderState *st;
  int rc = mbxc__ct_begin(cache, true, &t);
  if (rc || (rc = mbxc__ct_fstate_get(&t, folder, &st)))
    die("cache folder state", rc, NULL);
  Mbx__SyncResp *r = NULL;
  for (int i = 0; i < 100; i++) {
    if ((rc = mbxc_sync(c, folder, st->token.data, st->token.len, 1000, &r)) < 0)
      die("sync", rc, c);
    st->token.data = mbx_arena_memdup(&t.a, r->state.data, r->state.len);
    st->token.len = r->state.len;
    bool more = r->has_more && r->more;
    mbxc_free(&r);
    if (!more)
      break;
  }
  if ((rc = mbxc__ct_fstate_put(&t, folder, st)) || (rc = mbxc__ct_commit(&t)))
    die("cache folder state", rc, NULL);
}

static Mbx__Item *server_item(mbxc_conn *c, uint64_t id)
{
  Mbx__ItemResp *ir = NULL;
  if (mbxc_get(c, id, false, &ir) < 0)
    return NULL;
  Mbx__Item *it = ir->item;
  ir->item = NULL;
  mbxc_free(&ir);
  return it;
}

static uint64_t conflicts(mbxc_cache *cache, const char *rule)
{
  Mbx__CacheStatus *st;
  if (mbxc_cache_status(cache, false, &st) < 0)
    die("status", MBX_EIO, NULL);
  uint64_t n = 0;
  for (size_t i = 0; i < st->n_recent_conflicts; i++)
    n += strcmp(st->recent_conflicts[i]->rule, rule) == 0;
  mbxc_free(&st);
  return n;
}

static int run_ifcn(void)
{
  char dir[4096];
  const char *base = getenv("MBX_CACHE_DIR");
  snprintf(dir, sizeof(dir), "%s/ifcn", base);
  mbxc_cache *cache;
  mbxc_cache_syncer *s;
  int rc = mbxc_cache_open(dir, user, 0, &cache);
  if (rc < 0)
    die("cache open", rc, NULL);
  struct mbxc_cache_sync_options so = { .conn = opts, .password = password };
  if ((rc = mbxc_cache_syncer_new(cache, &so, &s)) < 0)
    die("syncer", rc, NULL);
  mbxc_conn *c;
  const char *err;
  if ((rc = mbxc_open(&opts, &c, &err)) < 0 ||
      (rc = mbxc_login(c, MBX__ROLE__ROLE_USER, user, password, NULL)) < 0)
    die("connect", rc, c);
  Mbx__Folder *inbox, *archive;
  if ((rc = mbxc_find_folder(c, "Inbox", &inbox)) < 0 ||
      (rc = mbxc_find_folder(c, "Archive", &archive)) < 0)
    die("folders", rc, c);
  uint64_t a = append_on_server(c, inbox->id, "ifcn-flags");
  uint64_t b = append_on_server(c, inbox->id, "ifcn-moved");
  uint64_t d = append_on_server(c, inbox->id, "ifcn-deleted");
  Mbx__CacheSyncSummary *sum = NULL;
  if ((rc = mbxc_cache_sync(s, NULL, 0, MBXC_CACHE_SYNC_ALL, &sum)) < 0)
    die("first sync", rc, NULL);
  mbxc_free(&sum);

  /* the server changes the three items; the cache does not see it */
  Mbx__ItemResp *ir = NULL;
  if ((rc = mbxc_set_flags(c, a, MBX__ITEM_FLAG__FLAG_SEEN, 0, false, NULL, 0, &ir)) < 0)
    die("server flag", rc, c);
  mbxc_free(&ir);
  if ((rc = mbxc_move(c, b, archive->id, &ir)) < 0)
    die("server move", rc, c);
  mbxc_free(&ir);
  if ((rc = mbxc_set_flags(c, d, MBX__ITEM_FLAG__FLAG_ANSWERED, 0, false, NULL, 0, &ir)) < 0)
    die("server flag", rc, c);
  mbxc_free(&ir);
  skip_ahead(cache, c, inbox->id);
  skip_ahead(cache, c, archive->id);

  /* ... and changes them itself, based on the versions it had */
  if ((rc = mbxc_cache_set_flags(cache, a, MBX__ITEM_FLAG__FLAG_FLAGGED, 0, false, NULL, 0,
                                 NULL)) < 0 ||
      (rc = mbxc_cache_set_flags(cache, b, MBX__ITEM_FLAG__FLAG_FLAGGED, 0, false, NULL, 0,
                                 NULL)) < 0 ||
      (rc = mbxc_cache_delete(cache, d, false)) < 0)
    die("cache change", rc, NULL);
  uint64_t before = conflicts(cache, "changed-on-both-sides") +
                    conflicts(cache, "deleted-here-changed-on-server");
  rc = mbxc_cache_sync(s, NULL, 0, MBXC_CACHE_SYNC_ALL, &sum);
  CHECK(rc == 0, "the sync meeting stale if_cn preconditions succeeds (%s)", mbx_strerror_name(rc));
  CHECK(sum && sum->pushed == 2 && sum->failed == 0 && sum->queued == 0,
        "two changes pushed after re-syncing, nothing refused or left (pushed %llu failed %llu "
        "queued %llu)", sum ? (unsigned long long)sum->pushed : 0,
        sum ? (unsigned long long)sum->failed : 0, sum ? (unsigned long long)sum->queued : 0);
  mbxc_free(&sum);
  Mbx__Item *ia = server_item(c, a), *ib = server_item(c, b), *id = server_item(c, d);
  CHECK(ia && ia->flags == (MBX__ITEM_FLAG__FLAG_SEEN | MBX__ITEM_FLAG__FLAG_FLAGGED),
        "flags changed on both sides are merged on the server (flags %u)", ia ? ia->flags : 0);
  CHECK(ib && ib->folder_id == archive->id && ib->flags == MBX__ITEM_FLAG__FLAG_FLAGGED,
        "an item moved on the server keeps its new folder and gets the flag made here");
  CHECK(id && id->folder_id == inbox->id && id->flags == MBX__ITEM_FLAG__FLAG_ANSWERED,
        "an item deleted here but changed on the server is kept as the server has it");
  uint64_t after = conflicts(cache, "changed-on-both-sides") +
                   conflicts(cache, "deleted-here-changed-on-server");
  CHECK(after >= before + 3, "the three conflicts are recorded (%llu)",
        (unsigned long long)(after - before));
  Mbx__ItemResp *cr = NULL;
  rc = mbxc_cache_get(cache, d, false, &cr, NULL);
  CHECK(rc == 0 && cr->item->folder_id == inbox->id, "the cache shows the restored item in Inbox");
  mbxc_free(&cr);
  mbxc_free(&ia);
  mbxc_free(&ib);
  mbxc_free(&id);
  mbxc_free(&inbox);
  mbxc_free(&archive);
  mbxc_close(&c);
  mbxc_cache_syncer_free(&s);
  mbxc_cache_close(&cache);
  return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
  opts.servers = getenv("MBX_SERVER");
  opts.ca_file = getenv("MBX_CA");
  opts.client_name = "itl_cache";
  user = getenv("MBX_USER");
  password = getenv("MBX_PASSWORD");
  if (argc != 2 || strcmp(argv[1], "ifcn") || !opts.servers || !opts.ca_file || !user ||
      !password || !getenv("MBX_CACHE_DIR")) {
    fprintf(stderr, "usage: MBX_SERVER MBX_CA MBX_USER MBX_PASSWORD MBX_CACHE_DIR itl_cache ifcn\n");
    return 2;
  }
  return run_ifcn();
}

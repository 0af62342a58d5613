/* cache_fixture.h — shared by the test_client_cache* programs: a cached profile in a
 * fresh temporary directory (under MBX_TEST_TMPDIR, else /tmp), its removal, and
 * what the tests read back: a folder's id by path, the outbox length. */
#ifndef MBX_TEST_CACHE_FIXTURE_H
#define MBX_TEST_CACHE_FIXTURE_H

#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "cache_int.h"
#include "mbx/cache.h"

#define USER "demo@example.com"

#define CFX_FN static __attribute__((unused))

static char cfx_dir[512]; /* the profile directory of the cache cfx_open made last */

static int cfx_rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
  (void)sb, (void)flag, (void)ftw;
  return remove(p);
}

/* A new cache for USER (64 MiB map) in a new directory "<tmp>/<prefix>.XXXXXX". */
CFX_FN mbxc_cache *cfx_open(const char *prefix)
{
  const char *base = getenv("MBX_TEST_TMPDIR");
  char parent[400];
  snprintf(parent, sizeof(parent), "%s", base && *base ? base : "/tmp");
  if (mkdir(parent, 0700) < 0 && errno != EEXIST)
    snprintf(parent, sizeof(parent), "/tmp");
  snprintf(cfx_dir, sizeof(cfx_dir), "%s/%s.XXXXXX", parent, prefix);
  assert_non_null(mkdtemp(cfx_dir));
  mbxc_cache *c = NULL;
  assert_int_equal(mbxc_cache_open(cfx_dir, USER, (size_t)64 << 20, &c), 0);
  return c;
}

/* Closes the cache (the pointer becomes NULL) and removes its directory. */
CFX_FN void cfx_done(mbxc_cache **c)
{
  mbxc_cache_close(c);
  assert_null(*c);
  nftw(cfx_dir, cfx_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* The id of the folder at path as the cache shows it, 0 if there is none. */
CFX_FN uint64_t cfx_folder_id(mbxc_cache *c, const char *path)
{
  Mbx__FoldersResp *fr;
  const Mbx__Folder *f = NULL;
  assert_int_equal(mbxc_cache_folders(c, &fr), 0);
  uint64_t id = mbxc_folder_resolve(fr, path, &f) == 0 ? f->id : 0;
  mbxc_free(&fr);
  return id;
}

/* How many changes the outbox holds. */
CFX_FN uint64_t cfx_queued(mbxc_cache *c)
{
  struct mbxc_cache_queue_info qi;
  assert_int_equal(mbxc_cache_queue_info(c, &qi), 0);
  return qi.queued;
}

#endif

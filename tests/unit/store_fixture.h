/* store_fixture.h — shared by the store unit tests: a temporary directory with a
 * fresh store, helpers to run one write in its own committed transaction, and
 * cleanup. Header-only so each test program stays one file plus this. */
#ifndef MBX_STORE_FIXTURE_H
#define MBX_STORE_FIXTURE_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mbx_error.h"
#include "store.h"

struct fx {
  char dir[512];
  struct mbx_store *s;
  struct mbx_arena a;
  struct mbx_wtxn *w;
  uint64_t mb; /* the mailbox made by fx_mailbox */
};

static int fx_rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
  (void)st;
  (void)flag;
  (void)f;
  return remove(p);
}

static inline void fx_rmrf(const char *dir)
{
  nftw(dir, fx_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static inline void fx_mkdtemp(char *out, size_t n)
{
  const char *base = getenv("MBX_TEST_TMPDIR");
  if (base && *base) {
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", base);
    if (system(cmd) != 0)
      base = "/tmp";
  } else {
    base = "/tmp";
  }
  snprintf(out, n, "%s/mbxstore.XXXXXX", base);
  if (!mkdtemp(out))
    abort();
}

static inline int fx_open_opt(struct fx *f, const char *name, const struct mbx_store_options *opt)
{
  const char *why = NULL;
  int rc = mbx_store_open(f->dir, name, true, opt, &f->s, &why);
  if (rc)
    fprintf(stderr, "open failed: %s %s\n", mbx_strerror(rc), why ? why : "");
  return rc;
}

static inline struct fx *fx_new_opt(const struct mbx_store_options *opt)
{
  struct fx *f = calloc(1, sizeof(*f));
  fx_mkdtemp(f->dir, sizeof(f->dir));
  mbx_arena_init(&f->a, 0);
  if (fx_open_opt(f, "db1", opt) != 0)
    abort();
  return f;
}

static inline struct fx *fx_new(void)
{
  return fx_new_opt(NULL);
}

static inline void fx_free(struct fx *f)
{
  if (f->w)
    mbx_store_wtxn_abort(&f->w);
  mbx_store_close(&f->s);
  mbx_arena_reset(&f->a);
  fx_rmrf(f->dir);
  free(f);
}

static inline void fx_begin(struct fx *f)
{
  if (mbx_store_wtxn_begin(f->s, &f->w) != 0)
    abort();
}

static inline uint64_t fx_commit(struct fx *f)
{
  uint64_t lsn = 0;
  if (mbx_store_wtxn_commit(&f->w, &lsn) != 0)
    abort();
  return lsn;
}

/* Creates mailbox `addr` (optionally with quota) in its own transaction. */
static inline uint64_t fx_mailbox_q(struct fx *f, const char *addr, uint64_t prohibit)
{
  struct mbx_mailbox_spec spec = {.address = addr, .display_name = "Test User"};
  if (prohibit) {
    spec.has_quota = true;
    spec.quota_prohibit_bytes = prohibit;
  }
  Mbx__Mailbox *mb = NULL;
  fx_begin(f);
  int rc = mbx_store_create_mailbox(f->w, &spec, &f->a, &mb);
  if (rc != 0 || !mb)
    abort();
  fx_commit(f);
  f->mb = mb->id;
  return mb->id;
}

static inline uint64_t fx_mailbox(struct fx *f, const char *addr)
{
  return fx_mailbox_q(f, addr, 0);
}

static inline uint64_t fx_folder_id(struct fx *f, uint64_t mb, const char *path)
{
  struct mbx_rtxn *r;
  Mbx__Folder *fo = NULL;
  if (mbx_store_rtxn_begin(f->s, &r) != 0)
    abort();
  int rc = mbx_store_find_folder(r, mb, path, &f->a, &fo);
  mbx_store_rtxn_end(&r);
  return rc == 0 ? fo->id : 0;
}

static inline Mbx__Folder *fx_folder(struct fx *f, uint64_t mb, uint64_t id)
{
  struct mbx_rtxn *r;
  Mbx__Folder *fo = NULL;
  if (mbx_store_rtxn_begin(f->s, &r) != 0)
    abort();
  int rc = mbx_store_get_folder(r, mb, id, &f->a, &fo);
  mbx_store_rtxn_end(&r);
  return rc == 0 ? fo : NULL;
}

static inline Mbx__Mailbox *fx_get_mailbox(struct fx *f, uint64_t mb)
{
  struct mbx_rtxn *r;
  Mbx__Mailbox *m = NULL;
  if (mbx_store_rtxn_begin(f->s, &r) != 0)
    abort();
  int rc = mbx_store_get_mailbox(r, mb, &f->a, &m);
  mbx_store_rtxn_end(&r);
  return rc == 0 ? m : NULL;
}

/* Delivers a small message with the given subject; returns the item id. */
static inline uint64_t fx_deliver(struct fx *f, const char *addr, const char *subject)
{
  char msg[512];
  int n =
      snprintf(msg, sizeof(msg),
               "From: sender@example.org\r\nTo: %s\r\nSubject: %s\r\n\r\nhello\r\n", addr, subject);
  Mbx__Item *it = NULL;
  fx_begin(f);
  int rc = mbx_store_deliver(f->w, addr, (const uint8_t *)msg, (size_t)n, &f->a, &it);
  if (rc != 0)
    abort();
  fx_commit(f);
  return it->id;
}

static inline struct mbx_store_digest fx_digest(struct mbx_store *s)
{
  struct mbx_rtxn *r;
  struct mbx_store_digest d;
  if (mbx_store_rtxn_begin(s, &r) != 0 || mbx_store_digest(r, &d) != 0)
    abort();
  mbx_store_rtxn_end(&r);
  return d;
}

#endif

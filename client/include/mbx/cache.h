/* cache.h — libmbx's cached mode: a local copy of one mailbox (a *profile*) in an
 * LMDB store, read and written while the server is away, and kept in step with the
 * server by Outlook-style two-way folder sync. The algorithm and the conflict rules
 * are in docs/cached-mode.md; this header is the contract.
 *
 * Conventions are mbx.h's: functions return 0 or a negative MBX_E… code; messages
 * handed out are owned by the caller and freed with mbxc_free(); output parameters
 * end in _r and are set only on success.
 *
 * The local calls (mbxc_cache_folders … mbxc_cache_delete_folder) mirror the typed
 * blocking calls of mbx.h, answer from the cache only and never touch the network.
 * Each local change is one durable LMDB write transaction that updates what the
 * user sees AND appends an entry to the outbox queue, with a random 16-byte
 * idempotency key chosen then: a change the call returned 0 for survives kill -9,
 * and its push after a crash carries the same key, so the server applies it once.
 *
 * Ids. Items and folders keep the server's ids. What is made here gets a *local id*
 * (≥ MBXC_CACHE_LOCAL_ID_MIN, an ordinary positive number a person can type) until
 * its creation is pushed; then it takes the server's id, and the cache remembers
 * the local id, so every call here still accepts it (mbxc_cache_map_id).
 *
 * Threads and processes: a cache handle may be used from several threads at once,
 * and several processes may open the same profile (the CLI while `sync --watch`
 * runs): LMDB serialises writers. Only one syncer per profile at a time (a lock
 * file), and one open handle per profile per process (an LMDB rule: share the
 * handle between threads instead). mbxc_cache_last_error() is per thread. */
#ifndef MBX_CACHE_H
#define MBX_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache.pb-c.h"
#include "mbx/mbx.h"

typedef struct mbxc_cache mbxc_cache;
typedef struct mbxc_cache_syncer mbxc_cache_syncer;

#define MBXC_CACHE_LOCAL_ID_MIN 9000000000000000ull /* < 2^53: exact in JSON */
#define MBXC_CACHE_QUEUE_MAX 100000u                /* queued changes per profile */
#define MBXC_CACHE_DEFAULT_PUSH_DELAY_S 60u
#define MBXC_CACHE_PUSH_DELAY_MAX_S 86400u
#define MBXC_CACHE_MAX_THREADS 4u                   /* folders synced at once */
#define MBXC_CACHE_DEFAULT_MAX_CHANGES 1000u        /* per SyncReq page */
#define MBXC_CACHE_DEFAULT_MAP_BYTES ((size_t)4 << 30)
#define MBXC_CACHE_KEY_BYTES 16
#define MBXC_CACHE_PROFILE_MAX 200                  /* bytes of a profile name */
/* Messages appended here before the server told its limit (hello) are capped to this. */
#define MBXC_CACHE_DEFAULT_MAX_MESSAGE_BYTES ((size_t)64 << 20)

static inline bool mbxc_cache_is_local_id(uint64_t id) { return id >= MBXC_CACHE_LOCAL_ID_MIN; }

/* ---- opening -------------------------------------------------------------- */

/* The profile's directory: $MBX_CACHE_DIR/PROFILE, else
 * ${XDG_DATA_HOME:-$HOME/.local/share}/mbx/PROFILE, into buf. profile: 1 to
 * MBXC_CACHE_PROFILE_MAX bytes, no '/', not starting with '.', no control
 * characters (an address is fine). MBX_EINVAL (bad name, or neither HOME nor
 * XDG_DATA_HOME nor MBX_CACHE_DIR set), MBX_ELIMIT (buf too small). */
int mbxc_cache_dir(const char *profile, char *buf, size_t len);

/* Opens (creating the directory, mode 0700, and the store when missing) the cache
 * in dir. user: the mailbox address; required when the cache is new (it is stored),
 * optional afterwards (NULL), and refused with MBX_EINVAL if it names another
 * mailbox than the stored one. A new cache starts with the eleven well-known
 * folders as placeholders, so it can be used before its first sync.
 * map_bytes: LMDB map size, 0 = MBXC_CACHE_DEFAULT_MAP_BYTES. Errors: MBX_EINVAL,
 * MBX_EIO (directory or store unusable), MBX_ECORRUPT, MBX_ENOMEM; the detail is in
 * mbxc_cache_last_error(). */
int mbxc_cache_open(const char *dir, const char *user, size_t map_bytes, mbxc_cache **cache_r);
/* Closes the cache; *cache set to NULL; NULL is fine. No syncer may still use it. */
void mbxc_cache_close(mbxc_cache **cache);

/* One line describing the last failure of a mbxc_cache_* call on this thread. */
const char *mbxc_cache_last_error(void);
/* The stored mailbox address and the directory; borrowed until close. */
const char *mbxc_cache_user(const mbxc_cache *c);
const char *mbxc_cache_path(const mbxc_cache *c);

/* ---- profile settings ----------------------------------------------------- */

/* Settings by name (values are strings):
 *   push_delay_s   0 … 86400, default 60: local changes wait this long after the
 *                  first of a burst before `sync --watch` pushes them (changes to
 *                  Sent Items and Outbox go at once)
 *   bodies         "ondemand" (default: message bodies fetched when read) or "all"
 *                  (every body fetched during sync)
 *   server, ca     the last server list and CA a sync used (defaults for the next)
 * get: MBX_ENOTFOUND for an unset server/ca, MBX_EINVAL for an unknown name,
 * MBX_ELIMIT if buf is too small. set: MBX_EINVAL for a bad name or value. */
int mbxc_cache_setting_get(mbxc_cache *c, const char *name, char *buf, size_t len);
int mbxc_cache_setting_set(mbxc_cache *c, const char *name, const char *value);

/* ---- local reads (the cache only) ----------------------------------------- */

/* Every visible folder (counts are the cache's). */
int mbxc_cache_folders(mbxc_cache *c, Mbx__FoldersResp **resp_r);
/* Newest first; limit 0 = 50, at most 1000. MBX_ENOTFOUND (no such folder). */
int mbxc_cache_list(mbxc_cache *c, uint64_t folder_id, uint32_t offset, uint32_t limit,
                    Mbx__ListResp **resp_r);
/* with_body: the raw message if the cache holds it (resp->has_body); a message
 * whose body was never fetched comes back without one, and *body_missing_r (may be
 * NULL) says so — fetch it (mbxc_get) and keep it with mbxc_cache_put_body.
 * MBX_ENOTFOUND. */
int mbxc_cache_get(mbxc_cache *c, uint64_t item_id, bool with_body, Mbx__ItemResp **resp_r,
                   bool *body_missing_r);
/* Keeps a body fetched from the server (len ≤ the server's message limit).
 * MBX_ENOTFOUND if the item is not in the cache. */
int mbxc_cache_put_body(mbxc_cache *c, uint64_t item_id, const void *body, size_t len);
/* The id to use now for id: the server's id if a local id was pushed, else id. */
uint64_t mbxc_cache_map_id(mbxc_cache *c, uint64_t id);
/* Largest message append accepts: the server's limit when a sync learnt it. */
size_t mbxc_cache_max_message_bytes(mbxc_cache *c);

/* ---- local writes (queued for the server) ----------------------------------
 * Every call is one durable transaction (view + queue entry). Beyond the local
 * checks below they can fail with MBX_ELIMIT (MBXC_CACHE_QUEUE_MAX changes queued),
 * MBX_ENOSPC (the store's map is full), MBX_EIO. */

/* As mbxc_append; the summary is parsed here with the node's own parser.
 * MBX_ENOTFOUND, MBX_EINVAL (not a mail folder), MBX_ETOOBIG. */
int mbxc_cache_append(mbxc_cache *c, uint64_t folder_id, const void *body, size_t len,
                      uint32_t flags, Mbx__ItemResp **resp_r);
/* As mbxc_create_item (item borrowed). MBX_EINVAL (kind and folder class differ,
 * or no sub-message), MBX_ELIMIT (categories), MBX_ENOTFOUND. */
int mbxc_cache_create_item(mbxc_cache *c, uint64_t folder_id, const Mbx__Item *item,
                           Mbx__ItemResp **resp_r);
/* As mbxc_set_flags. The change is queued as deltas (bits added and removed,
 * categories added and removed), which is how it merges with the server's. */
int mbxc_cache_set_flags(mbxc_cache *c, uint64_t item_id, uint32_t add, uint32_t remove,
                         bool set_categories, const char *const *categories, size_t n,
                         Mbx__ItemResp **resp_r);
/* As mbxc_move. */
int mbxc_cache_move(mbxc_cache *c, uint64_t item_id, uint64_t folder_id, Mbx__ItemResp **resp_r);
/* As mbxc_delete: to Deleted Items, or for good when hard or already there. */
int mbxc_cache_delete(mbxc_cache *c, uint64_t item_id, bool hard);
/* As mbxc_create_folder. MBX_EEXIST (a sibling has that name, case-insensitively),
 * MBX_EINVAL (bad name: empty, '/', control characters, over 255 bytes; too deep). */
int mbxc_cache_create_folder(mbxc_cache *c, const char *name, uint64_t parent_id,
                             Mbx__FolderClass folder_class, Mbx__FolderResp **resp_r);
/* As mbxc_update_folder. MBX_EPERM (well-known folder), MBX_EEXIST, MBX_EINVAL
 * (a folder under itself, bad name). */
int mbxc_cache_update_folder(mbxc_cache *c, uint64_t folder_id, const char *name, bool move,
                             uint64_t parent_id, Mbx__FolderResp **resp_r);
/* As mbxc_delete_folder: the folder, its subfolders and their items leave the
 * cache at once (queued changes to those items are dropped). MBX_EPERM for a
 * well-known folder. */
int mbxc_cache_delete_folder(mbxc_cache *c, uint64_t folder_id);

/* ---- status ----------------------------------------------------------------- */

struct mbxc_cache_queue_info {
  uint64_t queued;                  /* entries in the outbox */
  uint64_t urgent;                  /* of which for Sent Items / Outbox */
  uint64_t failing;                 /* of which refused at least once */
  int64_t oldest_new_us;            /* queued time of the oldest never-tried entry, 0 if none */
  int64_t next_retry_us;            /* when a failing entry is due again, 0 if none */
};
/* A cheap look at the queue (one short read transaction). */
int mbxc_cache_queue_info(mbxc_cache *c, struct mbxc_cache_queue_info *qi_r);
/* Queue length, conflicts, sync times; with_folders adds one entry per folder. */
int mbxc_cache_status(mbxc_cache *c, bool with_folders, Mbx__CacheStatus **st_r);

/* ---- sync ------------------------------------------------------------------- */

enum mbxc_cache_event {
  MBXC_CACHE_EV_CONNECTED,          /* a sync connection is up (server in `text`) */
  MBXC_CACHE_EV_DISCONNECTED,       /* the server went away (`status`, `text`); watch: retry in retry_ms */
  MBXC_CACHE_EV_PASS_START,         /* folders_total folders to sync */
  MBXC_CACHE_EV_FOLDER_DONE,        /* one folder: folder_id, text = its path, counts */
  MBXC_CACHE_EV_PASS_DONE,          /* summary; status < 0 if the pass failed */
  MBXC_CACHE_EV_NOTIFIED,           /* watch: the server told of changes (folders_total folders) */
  MBXC_CACHE_EV_CONFLICT,           /* a conflict was resolved: text = its description */
  MBXC_CACHE_EV_SUBSCRIBED,         /* watch: notifications flow (server in `text`) */
};
struct mbxc_cache_progress {
  enum mbxc_cache_event event;
  int status;
  const char *text;                 /* borrowed for the callback; may be "" */
  uint64_t folder_id;
  uint32_t folders_total, folders_done;
  uint64_t added, changed, deleted, pushed, conflicts;
  uint32_t retry_ms;
  const Mbx__CacheSyncSummary *summary; /* PASS_DONE */
};
/* Called from sync threads, one call at a time; must not call back into the syncer. */
typedef void (*mbxc_cache_progress_cb)(const struct mbxc_cache_progress *p, void *arg);

struct mbxc_cache_sync_options {
  struct mbxc_options conn;         /* servers, CA, optional client cert (copied) */
  const char *password;             /* the user's password (copied, wiped on free) */
  unsigned threads;                 /* connections / folders at once, 1…4; 0 = 4 */
  uint32_t max_changes;             /* SyncReq page size; 0 = 1000, at most 10000 */
  mbxc_cache_progress_cb progress;  /* optional */
  void *progress_arg;
};

/* A syncer holds the profile's sync lock and up to `threads` connections (opened
 * on first use, logged in as the cache's user, reopened after a failure).
 * MBX_EBUSY: another process syncs this profile. MBX_EINVAL: no server or CA. */
int mbxc_cache_syncer_new(mbxc_cache *c, const struct mbxc_cache_sync_options *o,
                          mbxc_cache_syncer **s_r);
/* Closes the connections and releases the lock; *s set to NULL; NULL is fine. */
void mbxc_cache_syncer_free(mbxc_cache_syncer **s);

#define MBXC_CACHE_SYNC_ALL 1u      /* every folder (else: the ones named + those with queued changes) */
#define MBXC_CACHE_SYNC_NO_PUSH 2u  /* download only (the queue waits) */

/* One two-way pass (docs/cached-mode.md): the hierarchy both ways, then the folders
 * — with MBXC_CACHE_SYNC_ALL every folder, else folder_ids (n, server ids) and every
 * folder with queued changes — up to `threads` at a time, each: server changes in,
 * local changes out, state recorded; then queued folder deletions. Conflicts are
 * resolved by the documented rules as they are met. *sum_r (may be NULL) is what
 * the pass did. Returns 0 when every folder synced; MBX_ECONN / MBX_ECLOSED /
 * MBX_ETIMEDOUT / MBX_EAUTH … when the server could not be used (what was done is
 * kept; the next pass carries on from there). Blocking; not from a callback. */
int mbxc_cache_sync(mbxc_cache_syncer *s, const uint64_t *folder_ids, size_t n, unsigned flags,
                    Mbx__CacheSyncSummary **sum_r);

struct mbxc_cache_watch_options {
  int64_t push_delay_s;             /* < 0: the profile's setting */
  uint32_t timeout_s;               /* return 0 after this long; 0 = run until stopped */
  /* Checked every 100 ms; returning true makes the watch return 0. Optional. */
  bool (*should_stop)(void *arg);
  void *stop_arg;
};
/* Runs until stopped: subscribes to the mailbox's changes (mbxc_subscribe), syncs
 * the folders the server names, pushes local changes push_delay_s after the first
 * of a burst (Sent Items / Outbox at once), reconnects with backoff (0.5 s doubling
 * to 30 s) when the server goes away and then catches up with a full pass.
 * Progress goes to the syncer's callback. Blocking (runs its own loop). */
int mbxc_cache_watch(mbxc_cache_syncer *s, const struct mbxc_cache_watch_options *o);

#endif

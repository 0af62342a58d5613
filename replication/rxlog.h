/* rxlog.h — a passive copy's receive log: the file `data_dir/db/NAME.rxlog` to which
 * records pulled from the active are appended and made durable (one fdatasync per
 * group of batches) before they are acknowledged as received, on a thread of its
 * own. Taking them into the LMDB store (and replaying them) follows in the store's
 * committer, in larger batches, without holding up the acknowledgement: a receipt
 * costs one append and one fdatasync instead of an LMDB commit (two syncs plus
 * replay). Records are stored as they came (each self-framed and CRC'd, logrec.h).
 *
 * The file only ever holds a tail of the log that the store may not have yet: it is
 * emptied once the store has taken everything in it (and it has grown past a size),
 * and after a seed. At startup mbx_repl_rxlog_open returns the records after the
 * store's received LSN, which the sink hands to the store before pulling again; a
 * torn tail (a crash mid-append, never acknowledged) is cut off.
 *
 * Thread rules: every function is for the loop thread; done callbacks run there. */
#ifndef MBX_RXLOG_H
#define MBX_RXLOG_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct mbx_repl_rxlog;

/* Outcome of one append: status 0 and the records are durable (last_lsn is the last
 * of them, durable_us the wall-clock time of the fdatasync); MBX_ECORRUPT (a record
 * fails its CRC, or breaks LSN continuity or epoch order: bad_lsn says which, and
 * nothing of this append or any later one is written); MBX_EIO / MBX_ENOSPC (the
 * file could not be written: the copy must stop receiving); MBX_ESHUTDOWN (closed
 * first). */
typedef void (*mbx_repl_rxlog_done_fn)(int status, uint64_t last_lsn, int64_t durable_us,
                                       uint64_t bad_lsn, void *arg);

/* Records recovered from the file at open: n records, each recs[i]/lens[i] pointing
 * into data. Owned by the caller; free with mbx_repl_rxlog_recovered_free. */
struct mbx_repl_rxlog_recovered {
  uint8_t *data;
  const uint8_t **recs;
  size_t *lens;
  size_t n;
  uint64_t last_lsn;                  /* of the last record (0 when n is 0) */
};
void mbx_repl_rxlog_recovered_free(struct mbx_repl_rxlog_recovered *r);

/* Opens (creating) the receive log at path and starts its thread. store_received_lsn
 * and store_epoch are what the store has: records in the file at or below it are
 * skipped; those after it (contiguous) are returned in *rec_r for the store to take.
 * A torn or damaged tail is cut off (logged). Returns 0, MBX_EIO, MBX_ENOMEM. */
int mbx_repl_rxlog_open(uv_loop_t *loop, const char *path, uint64_t store_received_lsn,
                        uint64_t store_epoch, struct mbx_repl_rxlog **rx_r,
                        struct mbx_repl_rxlog_recovered *rec_r);

/* Queues n records (borrowed until done is called) for verification, append and
 * fdatasync. Appends complete in order. 0 (done called later, once) or MBX_ENOMEM /
 * MBX_ESHUTDOWN (done not called). */
int mbx_repl_rxlog_append(struct mbx_repl_rxlog *rx, const uint8_t *const *recs,
                          const size_t *lens, size_t n, mbx_repl_rxlog_done_fn done, void *arg);

/* The store has durably taken every record up to lsn: if that is all the file holds
 * and the file is larger than its trim size, it is emptied (in order with appends). */
void mbx_repl_rxlog_taken(struct mbx_repl_rxlog *rx, uint64_t lsn);

/* Empties the file and sets the position to (lsn, epoch): after a seed installed a
 * store at that LSN. In order with appends (queue none in between). */
void mbx_repl_rxlog_reset(struct mbx_repl_rxlog *rx, uint64_t lsn, uint64_t epoch);

/* Last record durable in the file (or the position it was opened/reset at). */
uint64_t mbx_repl_rxlog_last_lsn(const struct mbx_repl_rxlog *rx);

/* Stops the thread once the queued appends are written, runs their done callbacks,
 * and frees rx from the loop's close callback, then calls closed(arg) (may be NULL).
 * Sets *rx to NULL. */
void mbx_repl_rxlog_close(struct mbx_repl_rxlog **rx, void (*closed)(void *arg), void *arg);

/* Removes NAME.rxlog beside a database directory (copy removed). Blocking. */
void mbx_repl_rxlog_remove(const char *path);

#endif

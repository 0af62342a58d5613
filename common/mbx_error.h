/* mbx_error.h — the one table of mbx error codes.
 * Functions that can fail return 0 or a negative MBX_E… code. The same numbers
 * travel on the wire (Error.code = -code), so never renumber an entry. */
#ifndef MBX_ERROR_H
#define MBX_ERROR_H

/* X(name, number, message) */
#define MBX_ERRORS(X)                                                     \
  X(EINVAL, 1, "invalid argument")                                        \
  X(ENOMEM, 2, "out of memory")                                           \
  X(EIO, 3, "I/O error")                                                  \
  X(ENOTFOUND, 4, "not found")                                            \
  X(EEXIST, 5, "already exists")                                          \
  X(EAUTH, 6, "authentication failed")                                    \
  X(EPERM, 7, "permission denied")                                        \
  X(EQUOTA, 8, "mailbox quota exceeded")                                  \
  X(ETOOBIG, 9, "message too large")                                      \
  X(EPROTO, 10, "protocol error")                                         \
  X(EFRAME, 11, "frame too large")                                        \
  X(ETLS, 12, "TLS error")                                                \
  X(ECONN, 13, "connection failed")                                       \
  X(ETIMEDOUT, 14, "timed out")                                           \
  X(EBUSY, 15, "server busy, try again")                                  \
  X(ESTORE, 16, "store error")                                            \
  X(ECORRUPT, 17, "data corrupt")                                         \
  X(ECONFIG, 18, "bad configuration")                                     \
  X(ESTATE, 19, "invalid or expired sync state")                          \
  X(ENOSPC, 20, "no space left (disk or database map full)")              \
  X(ECLOSED, 21, "connection closed")                                     \
  X(ENOTEMPTY, 22, "folder not empty")                                    \
  X(EUNSUPPORTED, 23, "not supported")                                    \
  X(ESTALE, 24, "stale epoch")                                            \
  X(ENOTACTIVE, 25, "database copy is not active")                        \
  X(ENOTAUTH, 26, "not logged in")                                        \
  X(ESHUTDOWN, 27, "node is shutting down")                               \
  X(ELIMIT, 28, "limit exceeded")                                         \
  X(ENEEDSEED, 29, "copy is too far behind the log: it needs a reseed")   \
  X(EPEER, 30, "peer node unreachable")                                  \
  X(ECONFLICT, 31, "item changed since the client last saw it")           \
  X(EDIVERGED, 32, "copy's history differs from the active's: it needs a reseed")

enum mbx_error {
  MBX_OK = 0,
#define MBX__ERR_ENUM(name, num, msg) MBX_##name = -(num),
  MBX_ERRORS(MBX__ERR_ENUM)
#undef MBX__ERR_ENUM
};

/* Human text for an MBX_E… code (or 0); never NULL. */
const char *mbx_strerror(int err);
/* Symbolic name without the MBX_ prefix ("EQUOTA"); "OK" for 0; "E?" if unknown. */
const char *mbx_strerror_name(int err);
/* The code for a wire Error.code (positive number); MBX_EPROTO if unknown. */
int mbx_error_from_wire(unsigned code);

#endif

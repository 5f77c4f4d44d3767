/* One error type for the whole code base.
 *
 * apg_err_t is 0 on success and a negative APG_E* value on failure. Detail
 * text goes into a caller-provided buffer (char *err, size_t errlen) next to
 * the code, never into a global. Each wire protocol maps these codes to its
 * own status space in exactly one table (see src/protocol/rcode.h). */
#ifndef APG_COMMON_ERR_H
#define APG_COMMON_ERR_H

#include <stddef.h>

typedef int apg_err_t;

#define APG_ERR_LIST(X)                                                                            \
    X(APG_OK, 0, "ok")                                                                             \
    X(APG_EINVAL, -1, "invalid argument")                                                          \
    X(APG_ENOMEM, -2, "out of memory")                                                             \
    X(APG_EIO, -3, "i/o error")                                                                    \
    X(APG_EPROTO, -4, "protocol error")                                                            \
    X(APG_ETOOBIG, -5, "too big")                                                                  \
    X(APG_EAGAIN, -6, "incomplete, need more data")                                                \
    X(APG_ENOTFOUND, -7, "not found")                                                              \
    X(APG_EEXIST, -8, "already exists")                                                            \
    X(APG_ECORRUPT, -9, "corrupt data")                                                            \
    X(APG_EDISKFULL, -10, "disk full")                                                             \
    X(APG_EFSYNC, -11, "fsync failed earlier; store is read-only")                                 \
    X(APG_EBUSY, -12, "busy")                                                                      \
    X(APG_ETIMEDOUT, -13, "timed out")                                                             \
    X(APG_ECLOSED, -14, "closed")                                                                  \
    X(APG_EPERM, -15, "permission denied")                                                         \
    X(APG_ERANGE, -16, "out of range")                                                             \
    X(APG_ECONFIG, -17, "bad configuration")                                                       \
    X(APG_ENOSPC, -18, "buffer too small")                                                         \
    X(APG_ESHUTDOWN, -19, "shutting down")

enum {
#define APG_ERR_ENUM(name, val, text) name = val,
    APG_ERR_LIST(APG_ERR_ENUM)
#undef APG_ERR_ENUM
};

/* Returns a static string for an error code. */
const char *apg_strerror(apg_err_t e);

/* snprintf into err/errlen when err is not NULL; returns e for `return apg_errf(...)`. */
apg_err_t apg_errf(apg_err_t e, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif

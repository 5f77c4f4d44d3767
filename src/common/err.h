/* One error type for the whole code base.
 *
 * apg_err_t is 0 on success and a negative APG_E* value on failure. Detail
 * text goes into a caller-provided buffer (char *err, size_t errlen) next to
 * the code, never into a global. Each wire protocol maps these codes to its
 * own status space in exactly one table (see src/protocol/rcode.h).
 *
 * The codes a client library caller can see are declared once, in the public
 * include/apogee/error.h (APG_ERROR_LIST); this header adds the codes used
 * only inside the server and the library (APG_ERR_INTERNAL_LIST), and
 * apg_err_public() folds those onto public ones at the library's edge. */
#ifndef APG_COMMON_ERR_H
#define APG_COMMON_ERR_H

#include <stddef.h>

#include "apogee/error.h"

/* X(name, value, description, retriable): never returned by a public call. */
#define APG_ERR_INTERNAL_LIST(X)                                                                   \
    X(APG_EAGAIN, -6, "incomplete, need more data", 0)                                             \
    X(APG_EEXIST, -8, "already exists", 0)                                                         \
    X(APG_ECORRUPT, -9, "corrupt data", 0)                                                         \
    X(APG_EDISKFULL, -10, "disk full", 0)                                                          \
    X(APG_EFSYNC, -11, "fsync failed earlier; store is read-only", 0)                              \
    X(APG_ERANGE, -16, "out of range", 0)                                                          \
    X(APG_ECONFIG, -17, "bad configuration", 0)                                                    \
    X(APG_ENOSPC, -18, "buffer too small", 0)                                                      \
    X(APG_ENOSLAVE, -30, "stored, but no slave is in sync (SYNC_MASTER)", 0)                       \
    X(APG_ESLAVETIMEOUT, -31, "stored, but no slave acknowledged it in time (SYNC_MASTER)", 0)

/* Every code, public and internal. */
#define APG_ERR_LIST(X) APG_ERROR_LIST(X) APG_ERR_INTERNAL_LIST(X)

enum {
#define APG_ERR_ENUM(name, val, text, retriable) name = val,
    APG_ERR_INTERNAL_LIST(APG_ERR_ENUM)
#undef APG_ERR_ENUM
};

/* Returns a static string for an error code (public or internal). */
const char *apg_strerror(apg_err_t e);

/* The public code standing for e: e itself when it is in APG_ERROR_LIST,
 * else the nearest public meaning (ECORRUPT -> EPROTO, ENOSPC -> ETOOBIG,
 * ERANGE/EEXIST/ECONFIG -> EINVAL, anything else -> EIO). */
apg_err_t apg_err_public(apg_err_t e);

/* snprintf into err/errlen when err is not NULL; returns e for `return apg_errf(...)`. */
apg_err_t apg_errf(apg_err_t e, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif

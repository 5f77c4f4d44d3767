/* Error codes of the Apogee C client, declared once.
 *
 * Every call returns an apg_err_t: 0 (APG_OK) on success, a negative APG_E*
 * value on failure. The list below is the whole set a caller can see; the
 * library maps any internal condition onto one of these before it returns.
 * Values never change meaning between releases; new codes are only added.
 *
 * APG_EBROKER means a broker answered with a RocketMQ response code other
 * than success. The code itself is handed back next to the error (for sends
 * in apg_send_result_t.sr_broker_code), so a caller can tell TOPIC_NOT_EXIST
 * (17) from SYSTEM_BUSY (2); apg_broker_code_name() names it and
 * apg_broker_code_is_retriable() says whether trying again can help. */
#ifndef APOGEE_ERROR_H
#define APOGEE_ERROR_H

#include "apogee/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef int apg_err_t;

/* X(name, value, description, retriable). Retriable: the same call may
 * succeed if made again later (a timeout, a lost connection, a busy broker). */
#define APG_ERROR_LIST(X)                                                                          \
    X(APG_OK, 0, "ok", 0)                                                                          \
    X(APG_EINVAL, -1, "invalid argument", 0)                                                       \
    X(APG_ENOMEM, -2, "out of memory", 0)                                                          \
    X(APG_EIO, -3, "i/o error", 1)                                                                 \
    X(APG_EPROTO, -4, "protocol error", 0)                                                         \
    X(APG_ETOOBIG, -5, "too big", 0)                                                               \
    X(APG_ENOTFOUND, -7, "not found", 0)                                                           \
    X(APG_EBUSY, -12, "busy", 1)                                                                   \
    X(APG_ETIMEDOUT, -13, "timed out", 1)                                                          \
    X(APG_ECLOSED, -14, "closed", 1)                                                               \
    X(APG_EPERM, -15, "permission denied", 0)                                                      \
    X(APG_ESHUTDOWN, -19, "shutting down", 0)                                                      \
    X(APG_EBROKER, -20, "refused by the broker", 0)

enum {
#define APG_ERROR_ENUM(name, val, text, retriable) name = val,
    APG_ERROR_LIST(APG_ERROR_ENUM)
#undef APG_ERROR_ENUM
};

/* The code's name ("APG_ETIMEDOUT"); "APG_E?" for a value not in the list.
 * Static string. */
APG_EXPORT const char *apg_err_name(apg_err_t e);

/* A short description ("timed out"). Static string. */
APG_EXPORT const char *apg_err_describe(apg_err_t e);

/* 1 when making the same call again later may succeed, else 0. */
APG_EXPORT int apg_err_is_retriable(apg_err_t e);

/* Name of a RocketMQ response code ("TOPIC_NOT_EXIST"), or NULL when the
 * code is not known to this library. Static string. */
APG_EXPORT const char *apg_broker_code_name(int code);

/* 1 when a send refused with this response code is worth retrying, as the
 * Java client decides (SYSTEM_ERROR, SYSTEM_BUSY, SERVICE_NOT_AVAILABLE,
 * NO_PERMISSION, TOPIC_NOT_EXIST, ...), else 0. */
APG_EXPORT int apg_broker_code_is_retriable(int code);

#ifdef __cplusplus
}
#endif

#endif

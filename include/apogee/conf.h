/* Configuration objects: every setting of a producer or consumer, by name.
 *
 * A conf is an opaque object holding one value per key, set as text with the
 * key names of RocketMQ's Java client ("namesrvAddr", "sendMsgTimeout",
 * "consumeFromWhere", ...). New settings are new keys, so programs built
 * against an older header keep working with a newer library.
 * apg_conf_properties_show() prints every key with its type, default and
 * meaning.
 *
 * Ownership: apg_producer_new() and the consumer constructors copy the conf;
 * the caller still owns it and may change, reuse or destroy it right after.
 * A conf is not thread-safe: set it from one thread at a time. */
#ifndef APOGEE_CONF_H
#define APOGEE_CONF_H

#include <stddef.h>
#include <stdio.h>

#include "apogee/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct apg_conf apg_conf_t;

/* A conf holding every default. Returns owned: free with apg_conf_destroy();
 * NULL when out of memory. */
APG_EXPORT apg_conf_t *apg_conf_new(void);

/* A copy of conf (borrows it). Returns owned, NULL when out of memory. */
APG_EXPORT apg_conf_t *apg_conf_dup(const apg_conf_t *conf);

/* Frees a conf; NULL is allowed. */
APG_EXPORT void apg_conf_destroy(apg_conf_t *conf);

/* Sets key `name` from its text form (borrows both strings). Integers in
 * decimal, booleans "true"/"false", choices by name ("BROADCASTING"); a NULL
 * or empty value unsets a string key. APG_ENOTFOUND for an unknown key,
 * APG_EINVAL for a value of the wrong type or out of range; err says which. */
APG_EXPORT apg_err_t apg_conf_set(apg_conf_t *conf, const char *name, const char *value, char *err,
                                  size_t errlen);

/* Writes the text form of key `name` into out (size *outlen, NUL included)
 * and sets *outlen to the size needed. An unset string is "". out may be
 * NULL to ask for the size. APG_ENOTFOUND for an unknown key, APG_ETOOBIG
 * when out is too small. */
APG_EXPORT apg_err_t apg_conf_get(const apg_conf_t *conf, const char *name, char *out,
                                  size_t *outlen);

/* Prints every key: name, type, default, range or choices, meaning. */
APG_EXPORT void apg_conf_properties_show(FILE *fp);

#ifdef __cplusplus
}
#endif

#endif

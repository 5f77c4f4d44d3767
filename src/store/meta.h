/* Metadata files (topics.json, subscriptionGroup.json, consumerOffset.json,
 * delayOffset.json): tolerant reads. Writes go through
 * apg_file_write_atomic (common/file.h), which keeps <path>.bak.
 *
 * Reads accept the non-standard JSON that Java's fastjson emits (wire doc §2):
 * unquoted numeric map keys ({0:"a"}) and object map keys
 * ({{"topic":"T","queueId":0}:5}); both become string keys (the object key as
 * its compact JSON text). A corrupt or missing main file falls back to .bak.
 *
 * Threads: no shared state; callers serialise writes to one path. */
#ifndef APG_STORE_META_H
#define APG_STORE_META_H

#include <stddef.h>

#include <jansson.h>

#include "common/buf.h"
#include "common/err.h"

/* Reads and parses path (or path.bak if path is missing or does not parse).
 * On success *out is owned by the caller (json_decref). APG_ENOTFOUND if
 * neither file exists; APG_ECORRUPT (err names the file, line and column) if
 * neither parses. */
apg_err_t apg_meta_read(const char *path, json_t **out, char *err, size_t errlen);

/* Rewrites fastjson text into standard JSON (appended to out): unquoted keys
 * become strings, object keys become strings holding their JSON text. Strings
 * and values are copied unchanged. Pure; APG_ENOMEM only. */
apg_err_t apg_meta_normalize(const char *in, size_t len, struct apg_buf *out);

#endif

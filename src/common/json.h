/* Reading the JSON that Java's fastjson writes, with jansson.
 *
 * RocketMQ's Java side (brokers, tools, the metadata files it leaves on disk)
 * serialises with fastjson 1.2.x, which is not always standard JSON
 * (docs/wire.md §4.1): map keys may be unquoted numbers ({0:"a"}) or whole objects
 * ({{"topic":"T","queueId":0}:5}), and strings may be single-quoted. Every
 * reader of such text goes through apg_json_normalize(), which rewrites it
 * into standard JSON, and then jansson (64-bit integers, UTF-8 checked):
 * unquoted keys become strings, object keys become strings holding their
 * compact JSON text, single-quoted strings become double-quoted.
 *
 * Also here: typed member getters with defaults, a JSON string writer for
 * code that emits JSON text itself, and a file reader that falls back to
 * the <path>.bak that apg_file_write_atomic keeps.
 *
 * Pure except apg_json_read_file; any thread. */
#ifndef APG_COMMON_JSON_H
#define APG_COMMON_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/buf.h"
#include "common/err.h"

/* Rewrites fastjson text into standard JSON, appended to out. Everything
 * else is copied unchanged. Pure; APG_ENOMEM only. */
apg_err_t apg_json_normalize(const char *in, size_t len, struct apg_buf *out);

/* Normalises and parses one JSON value (trailing whitespace allowed).
 * Returns an owned reference (json_decref) or NULL with err filled
 * ("bad JSON at line L column C: ..."). */
json_t *apg_json_parse(const char *buf, size_t len, char *err, size_t errlen);

/* Reads and parses path, or path.bak if path is missing or does not parse.
 * On success *out is owned by the caller (json_decref). APG_ENOTFOUND if
 * neither file exists; APG_ECORRUPT (err names the file, line and column) if
 * neither parses. */
apg_err_t apg_json_read_file(const char *path, json_t **out, char *err, size_t errlen);

/* Member getters; obj may be NULL or not an object (gives the default).
 * get_str: a string member, borrowed from obj. get_i64: an integer, a real
 * (truncated) or a string holding a decimal integer. get_bool: true/false,
 * or a string "true"/"false" (any case). */
const char *apg_json_get_str(const json_t *obj, const char *key, const char *dflt);
int64_t apg_json_get_i64(const json_t *obj, const char *key, int64_t dflt);
bool apg_json_get_bool(const json_t *obj, const char *key, bool dflt);
/* Integer value of j itself, with the same rules as apg_json_get_i64. */
int64_t apg_json_i64(const json_t *j, int64_t dflt);

/* Appends s as a JSON string literal (quoted, escaped). */
apg_err_t apg_json_put_str(struct apg_buf *b, const char *s);

#endif

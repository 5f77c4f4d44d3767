/* Small JSON reader and writer helpers for the broker's bodies and config
 * files.
 *
 * The reader builds a tree from (buf, len). It accepts what fastjson 1.2.x
 * emits besides standard JSON: unquoted object keys (numbers or identifiers,
 * e.g. `{"offsetTable":{"T@g":{0:5}}}`) and single-quoted strings. Numbers
 * keep their source text so 64-bit values survive. The tree is owned by the
 * caller: free it with apg_bjson_free(). Pure: no globals, no I/O. */
#ifndef APG_BROKER_BJSON_H
#define APG_BROKER_BJSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

enum apg_bjson_type {
    APG_BJSON_NULL,
    APG_BJSON_BOOL,
    APG_BJSON_NUM,
    APG_BJSON_STR,
    APG_BJSON_ARR,
    APG_BJSON_OBJ,
};

struct apg_bjson {
    enum apg_bjson_type bj_type;
    char *bj_key;             /* member name inside an object, else NULL */
    char *bj_str;             /* string value, or the number's source text */
    bool bj_bool;             /* BOOL value */
    struct apg_bjson *bj_kid; /* first child (ARR/OBJ) */
    struct apg_bjson *bj_next;
};

/* Parses one JSON value (trailing whitespace allowed). Returns owned tree or
 * NULL with err filled (APG_EPROTO-style message with the byte offset). */
struct apg_bjson *apg_bjson_parse(const char *buf, size_t len, char *err, size_t errlen);
void apg_bjson_free(struct apg_bjson *j);

/* Member of an object by name, or NULL. */
const struct apg_bjson *apg_bjson_get(const struct apg_bjson *obj, const char *key);
/* Typed member access with defaults (wrong type gives the default). */
const char *apg_bjson_get_str(const struct apg_bjson *obj, const char *key, const char *dflt);
int64_t apg_bjson_get_i64(const struct apg_bjson *obj, const char *key, int64_t dflt);
bool apg_bjson_get_bool(const struct apg_bjson *obj, const char *key, bool dflt);
/* Integer value of a NUM (or numeric STR) node. */
int64_t apg_bjson_i64(const struct apg_bjson *j, int64_t dflt);

/* Appends s as a JSON string literal (quoted, escaped). */
apg_err_t apg_bjson_put_str(struct apg_buf *b, const char *s);

#endif

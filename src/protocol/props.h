/* Message property string codec: name \x01 value \x02 name \x01 value \x02 ...
 *
 * The one reader and writer of the property string for the broker's send,
 * pull and send-back paths and the client's message objects. Pure: borrowed
 * buffers, no allocation except through the caller's apg_buf, no globals. */
#ifndef APG_PROTOCOL_PROPS_H
#define APG_PROTOCOL_PROPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"

#define APG_PROPS_NV_SEP '\x01' /* between a name and its value */
#define APG_PROPS_SEP '\x02'    /* after each pair */

/* One decoded pair; both pointers borrow the property string. */
struct apg_prop_kv {
    const char *pk_name;
    size_t pk_name_len; /* >= 1 */
    const char *pk_val;
    size_t pk_val_len; /* >= 1; may contain \x01 */
};

/* Next pair at or after *pos (start with 0; it may end at len + 1), as
 * RocketMQ reads the string:
 * a chunk ends at \x02 or at the end; chunks shorter than 3 bytes, without
 * \x01, with an empty name or an empty value are skipped. Advances *pos and
 * returns true with *kv filled, or false at the end. Every byte string
 * decodes; none is an error. */
static inline bool apg_props_next(const char *props, size_t len, size_t *pos,
                                  struct apg_prop_kv *kv);

/* Value of `name`, or NULL; *vlen gets its length. When a name repeats, the
 * last pair wins, as in RocketMQ's property map. */
const char *apg_props_find(const char *props, size_t len, const char *name, size_t *vlen);
/* The same with a name of nlen bytes (no NUL needed). */
const char *apg_props_findn(const char *props, size_t len, const char *name, size_t nlen,
                            size_t *vlen);

/* Bytes one pair takes once encoded. */
static inline size_t apg_props_pair_size(size_t name_len, size_t val_len)
{
    return name_len + val_len + 2;
}

/* True when name/value can be encoded: a non-empty name and value, neither
 * holding \x01 or \x02 (the value may hold \x01 on the wire, but a writer
 * never produces one: it would not survive every reader). */
bool apg_props_pair_ok(const char *name, size_t name_len, const char *val, size_t val_len);

/* Writes name \x01 value \x02 at out (room for apg_props_pair_size()) and
 * returns the end. No checks: see apg_props_pair_ok(). */
static inline char *apg_props_write(char *out, const char *name, size_t name_len, const char *val,
                                    size_t val_len)
{
    memcpy(out, name, name_len);
    out[name_len] = APG_PROPS_NV_SEP;
    memcpy(out + name_len + 1, val, val_len);
    out[name_len + 1 + val_len] = APG_PROPS_SEP;
    return out + name_len + val_len + 2;
}

/* Appends one pair of C strings to b. APG_ENOMEM only; no checks. */
apg_err_t apg_props_append(struct apg_buf *b, const char *name, const char *value);

/* True when name[0..len) is one of RocketMQ's reserved property names
 * (TAGS, KEYS, UNIQ_KEY, DELAY, POP_CK, the TIMER_* names, ...): never a
 * user property. Used by the client library and the gRPC consumer path. */
bool apg_props_name_reserved(const char *name, size_t len);

/* Inline: the broker runs it for every pair of every message it stores. */
static inline bool apg_props_next(const char *props, size_t len, size_t *pos,
                                  struct apg_prop_kv *kv)
{
    size_t i = *pos;
    while (i < len) {
        const char *chunk = props + i;
        const char *stop = memchr(chunk, APG_PROPS_SEP, len - i);
        size_t clen = stop ? (size_t)(stop - chunk) : len - i;
        i += clen + 1; /* may pass len by one: the loop test stops there */
        const char *nv = clen >= 3 ? memchr(chunk, APG_PROPS_NV_SEP, clen) : NULL;
        if (nv == NULL)
            continue;
        size_t nl = (size_t)(nv - chunk);
        if (nl - 1 > clen - 3) /* name or value empty (nl == 0 wraps) */
            continue;
        kv->pk_name = chunk;
        kv->pk_name_len = nl;
        kv->pk_val = nv + 1;
        kv->pk_val_len = clen - nl - 1;
        *pos = i;
        return true;
    }
    *pos = i;
    return false;
}

#endif

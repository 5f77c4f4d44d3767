/* RocketMQ remoting protocol: frames and command headers (pure codec).
 *
 * A frame on the wire is
 *     int32 length | int32 (serializeType << 24 | headerLen) | header | body
 * where length counts everything after itself. The header is either JSON
 * (serializeType 0) or RocketMQ's compact binary form (serializeType 1); see
 * docs/wire.md §1 and §2.
 *
 * Decoding is allocation-free: apg_rcmd_decode fills a caller-owned
 * struct apg_rcmd whose strings live in a caller-provided scratch area
 * (NUL-terminated copies, JSON escapes resolved) and whose body points into
 * the frame. Nothing here touches a socket, clock or global. Every malformed
 * input gives an error with a message saying what was wrong.
 *
 * Encoding appends a frame (length word, header, but not the body bytes) to
 * an apg_buf; the caller appends or separately writes the body, so a large
 * pull body can be written without a copy. */
#ifndef APG_PROTOCOL_REMOTING_H
#define APG_PROTOCOL_REMOTING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "protocol/rcmd.h"

/* Default and hard limits. */
#define APG_FRAME_MAX_DEFAULT (16u * 1024 * 1024)

/* Looks at the start of a byte stream. Returns:
 *   APG_OK with *frame_len = 0      need more bytes
 *   APG_OK with *frame_len = N      a whole frame of N bytes (including the
 *                                   4-byte length word) is at buf
 *   APG_EPROTO / APG_ETOOBIG        the length word is invalid (< 4, or
 *                                   > max_frame); err says why
 * max_frame bounds the length word's value. */
apg_err_t apg_frame_peek(const uint8_t *buf, size_t len, size_t max_frame, size_t *frame_len,
                         char *err, size_t errlen);

/* Scratch bytes apg_rcmd_decode needs for a header of hdr_len bytes. */
static inline size_t apg_rcmd_scratch_need(size_t hdr_len)
{
    return 2 * hdr_len + 64;
}

/* Decodes one frame. `frame` points at the 4-byte length word and `len` is
 * the whole frame length as returned by apg_frame_peek. Strings are copied
 * into scratch (at least apg_rcmd_scratch_need(headerLen) bytes, else
 * APG_ENOSPC). Errors: APG_EPROTO (with a message) for every malformed
 * input. The result borrows scratch and frame.
 *
 * Details (see remoting.c / remoting_json.c): missing JSON members keep
 * their defaults (0, language JAVA, remark NULL, no ext); keys may come in
 * any order, unknown keys are skipped, the last of duplicate keys wins;
 * extFields values may be JSON strings, numbers, booleans (as their text)
 * or null (""); language may be a name (unknown names give APG_LANG_OTHER)
 * or a number 0..255; a lone UTF-16 surrogate escape becomes U+FFFD; an
 * escaped NUL is rejected. In the binary form a zero-length remark is NULL,
 * a zero-length value is "", an entry with a zero-length key is dropped, and
 * a NUL byte inside a remark, key or value is rejected. */
apg_err_t apg_rcmd_decode(const uint8_t *frame, size_t len, struct apg_rcmd *out, char *scratch,
                          size_t scratch_len, char *err, size_t errlen);

/* Appends a frame for `cmd` to `out`, encoded as cmd->serialize, with a
 * length word that accounts for body_len body bytes which the caller must
 * append (or write) right after. cmd->body is ignored. JSON output follows
 * fastjson (keys alphabetical, NULL remark and empty extFields omitted);
 * ext entries with a NULL key or value (and, in binary, an empty key) are
 * skipped. Errors (out is left as it was): APG_ERANGE when the binary form
 * cannot carry code or version (int16) or a key longer than 32767 bytes
 * (use JSON for such commands), APG_ETOOBIG when the header exceeds 24 bits
 * or the frame int32, APG_EINVAL for an unknown cmd->serialize,
 * APG_ENOMEM. */
apg_err_t apg_rcmd_encode_header(const struct apg_rcmd *cmd, uint32_t body_len,
                                 struct apg_buf *out);

/* Convenience: encode_header + the body bytes. */
apg_err_t apg_rcmd_encode(const struct apg_rcmd *cmd, const uint8_t *body, uint32_t body_len,
                          struct apg_buf *out);

/* Initialises a response to `req`: same opaque, RESPONSE flag, same
 * serialization as the request (4.x JSON clients need a JSON reply), our
 * language JAVA and our version, the given code and remark, no ext fields. */
void apg_rcmd_init_response(struct apg_rcmd *resp, const struct apg_rcmd *req, int32_t code,
                            const char *remark);

/* Initialises a request (server- or client-initiated). */
void apg_rcmd_init_request(struct apg_rcmd *req, int32_t code, int32_t opaque, uint8_t serialize);

/* extFields access. get returns NULL when absent. The typed getters return
 * APG_ENOTFOUND when absent, APG_EINVAL when the text is not a number or
 * boolean of that kind (Java's Long.parseLong / Boolean.parseBoolean rules:
 * booleans are "true" case-insensitively, anything else false). */
const char *apg_rcmd_ext_get(const struct apg_rcmd *c, const char *key);
apg_err_t apg_rcmd_ext_i32(const struct apg_rcmd *c, const char *key, int32_t *out);
apg_err_t apg_rcmd_ext_i64(const struct apg_rcmd *c, const char *key, int64_t *out);
bool apg_rcmd_ext_bool(const struct apg_rcmd *c, const char *key, bool dflt);

/* The same conversions on a value already in hand (for callers that walk the
 * ext fields once instead of looking each key up): Long.parseLong rules,
 * APG_EINVAL when s is not an integer in [lo, hi]; Boolean.parseBoolean. */
apg_err_t apg_rcmd_parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out);
bool apg_rcmd_parse_bool(const char *s);

/* Adds an ext field to a command being built (borrows key and val; they must
 * outlive the encode). APG_ETOOBIG past APG_RCMD_MAX_EXT. */
apg_err_t apg_rcmd_ext_add(struct apg_rcmd *c, const char *key, const char *val);

#endif

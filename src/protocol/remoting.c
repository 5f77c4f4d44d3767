/* RocketMQ remoting frames, the ROCKETMQ binary header, and command helpers.
 *
 * A frame is `int32 length | int32 (serializeType << 24 | headerLen) |
 * header | body` (docs/wire.md §1). apg_frame_peek only looks at the length
 * word so the network layer can cut frames out of a stream; apg_rcmd_decode
 * then checks the header-length word against the frame, picks the header
 * parser by the serialize-type byte and leaves the body in place. The JSON
 * header lives in remoting_json.c; the compact binary header (§2.2) is
 * decoded and encoded here, with every length bound-checked against the
 * bytes that are really left.
 *
 * Zero-length entries in the binary ext map follow RocketMQ 4.9.8, whose
 * protocol we speak: a zero-length value is the empty string. A zero-length
 * key (null in newer Java decoders) names no header field, so the entry is
 * dropped. A remark of length 0 is "no remark" (NULL). The encoder mirrors
 * this: NULL or empty keys and NULL values are not written. A NUL byte
 * inside a remark, key or value is rejected (as JSON's \u0000 is), so a key
 * can never be silently truncated into another key.
 *
 * Encoding appends the two length words and the header to an apg_buf and
 * patches the words once the header size is known; it never allocates
 * except to grow that buffer. Pure code, callable from any thread. */
#include "protocol/remoting.h"

#include <string.h>

#include "apogee_version.h"
#include "protocol/remoting_int.h"

/* Fixed part of a ROCKETMQ header: code, language, version, opaque, flag,
 * remark length, ext length. */
#define RMQ_FIXED 21

apg_err_t apg_frame_peek(const uint8_t *buf, size_t len, size_t max_frame, size_t *frame_len,
                         char *err, size_t errlen)
{
    *frame_len = 0;
    if (len < 4)
        return APG_OK;
    int32_t l = (int32_t)apg_be32(buf);
    if (memcmp(buf, "PRI ", 4) == 0) /* the HTTP/2 connection preface */
        return apg_errf(APG_EPROTO, err, errlen,
                        "an HTTP/2 client (a RocketMQ 5 gRPC SDK?) on the remoting port; 5.x "
                        "clients connect to grpcServerPort (8081 by default)");
    if (l < 4)
        return apg_errf(APG_EPROTO, err, errlen,
                        "frame length %d is less than 4 (a frame needs at least the "
                        "header-length word)",
                        (int)l);
    if ((size_t)l > max_frame)
        return apg_errf(APG_ETOOBIG, err, errlen,
                        "frame length %d exceeds the maximum frame size %zu", (int)l, max_frame);
    if (len - 4 < (size_t)l)
        return APG_OK;
    *frame_len = (size_t)l + 4;
    return APG_OK;
}

static void rcmd_defaults(struct apg_rcmd *c, uint8_t ser)
{
    c->code = 0;
    c->opaque = 0;
    c->flag = 0;
    c->version = 0;
    c->language = APG_LANG_JAVA;
    c->serialize = ser;
    c->remark = NULL;
    c->n_ext = 0;
    c->body = NULL;
    c->body_len = 0;
}

/* True when some byte of x is zero (exact: no false positives). */
static inline bool has_zero64(uint64_t x)
{
    return ((x - 0x0101010101010101ull) & ~x & 0x8080808080808080ull) != 0;
}

static inline bool has_zero32(uint32_t x)
{
    return ((x - 0x01010101u) & ~x & 0x80808080u) != 0;
}

/* Copies n bytes and a terminating NUL to d (which must have n + 1 bytes
 * before end); false when that does not fit or src holds a NUL byte. Header
 * keys and most values are short, and two overlapping word loads check and
 * copy them without a memchr and a memcpy call each. */
static inline bool copy_nonul(char *d, const uint8_t *src, size_t n, const char *end)
{
    if ((size_t)(end - d) < n + 1)
        return false;
    if (n >= 8 && n <= 16) {
        uint64_t a, b;
        memcpy(&a, src, 8);
        memcpy(&b, src + n - 8, 8);
        if (has_zero64(a) || has_zero64(b))
            return false;
        memcpy(d, &a, 8);
        memcpy(d + n - 8, &b, 8);
    } else if (n >= 4 && n < 8) {
        uint32_t a, b;
        memcpy(&a, src, 4);
        memcpy(&b, src + n - 4, 4);
        if (has_zero32(a) || has_zero32(b))
            return false;
        memcpy(d, &a, 4);
        memcpy(d + n - 4, &b, 4);
    } else if (n < 4) {
        for (size_t i = 0; i < n; i++) {
            if (!src[i])
                return false;
            d[i] = (char)src[i];
        }
    } else {
        if (memchr(src, 0, n))
            return false;
        memcpy(d, src, n);
    }
    d[n] = '\0';
    return true;
}

static apg_err_t rmq_decode(const uint8_t *h, size_t n, struct apg_rcmd *out, char *sc,
                            size_t sc_len, char *err, size_t errlen)
{
    char *sce = sc + sc_len;
    if (n < RMQ_FIXED)
        return apg_errf(APG_EPROTO, err, errlen,
                        "ROCKETMQ header is %zu bytes, shorter than the %d-byte minimum", n,
                        RMQ_FIXED);
    out->code = (int16_t)apg_be16(h);
    out->language = h[2];
    out->version = (int16_t)apg_be16(h + 3);
    out->opaque = (int32_t)apg_be32(h + 5);
    out->flag = (int32_t)apg_be32(h + 9);
    int32_t rlen = (int32_t)apg_be32(h + 13);
    size_t pos = 17;
    if (rlen < 0)
        return apg_errf(APG_EPROTO, err, errlen, "ROCKETMQ header remark length %d is negative",
                        (int)rlen);
    if ((size_t)rlen > n - pos - 4)
        return apg_errf(APG_EPROTO, err, errlen,
                        "ROCKETMQ header remark length %d exceeds the %zu header bytes left",
                        (int)rlen, n - pos - 4);
    if (rlen > 0) {
        if (memchr(h + pos, 0, (size_t)rlen))
            return apg_errf(APG_EPROTO, err, errlen, "ROCKETMQ header remark contains a NUL byte");
        if ((size_t)(sce - sc) < (size_t)rlen + 1)
            return apg_errf(APG_ENOSPC, err, errlen, "scratch area too small for the remark");
        memcpy(sc, h + pos, (size_t)rlen);
        sc[rlen] = '\0';
        out->remark = sc;
        sc += rlen + 1;
        pos += (size_t)rlen;
    }
    int32_t elen = (int32_t)apg_be32(h + pos);
    pos += 4;
    if (elen < 0)
        return apg_errf(APG_EPROTO, err, errlen, "ROCKETMQ header extFields length %d is negative",
                        (int)elen);
    if ((size_t)elen > n - pos)
        return apg_errf(APG_EPROTO, err, errlen,
                        "ROCKETMQ header extFields length %d exceeds the %zu header bytes left",
                        (int)elen, n - pos);
    if ((size_t)elen < n - pos)
        return apg_errf(APG_EPROTO, err, errlen,
                        "ROCKETMQ header has %zu stray bytes after the %d-byte extFields map",
                        n - pos - (size_t)elen, (int)elen);
    while (pos < n) {
        size_t at = pos;
        if (n - pos < 2)
            return apg_errf(APG_EPROTO, err, errlen,
                            "ROCKETMQ extFields entry at header byte %zu: truncated key length",
                            at);
        int16_t klen = (int16_t)apg_be16(h + pos);
        pos += 2;
        if (klen < 0)
            return apg_errf(APG_EPROTO, err, errlen,
                            "ROCKETMQ extFields entry at header byte %zu: key length %d is "
                            "negative",
                            at, (int)klen);
        if ((size_t)klen > n - pos || n - pos - (size_t)klen < 4)
            return apg_errf(APG_EPROTO, err, errlen,
                            "ROCKETMQ extFields entry at header byte %zu: key length %d exceeds "
                            "the %zu bytes left",
                            at, (int)klen, n - pos);
        const uint8_t *k = h + pos;
        pos += (size_t)klen;
        int32_t vlen = (int32_t)apg_be32(h + pos);
        pos += 4;
        if (vlen < 0)
            return apg_errf(APG_EPROTO, err, errlen,
                            "ROCKETMQ extFields entry at header byte %zu: value length %d is "
                            "negative",
                            at, (int)vlen);
        if ((size_t)vlen > n - pos)
            return apg_errf(APG_EPROTO, err, errlen,
                            "ROCKETMQ extFields entry at header byte %zu: value length %d "
                            "exceeds the %zu bytes left",
                            at, (int)vlen, n - pos);
        const uint8_t *v = h + pos;
        pos += (size_t)vlen;
        if (klen == 0)
            continue; /* a null key names no field */
        bool kbad = !copy_nonul(sc, k, (size_t)klen, sce);
        bool vbad = !kbad && !copy_nonul(sc + klen + 1, v, (size_t)vlen, sce);
        if (kbad || vbad) {
            if ((size_t)(sce - sc) < (size_t)klen + (size_t)vlen + 2 &&
                !memchr(k, 0, (size_t)klen) && !memchr(v, 0, (size_t)vlen))
                return apg_errf(APG_ENOSPC, err, errlen, "scratch area too small for extFields");
            return apg_errf(APG_EPROTO, err, errlen,
                            "ROCKETMQ extFields entry at header byte %zu: %s contains a NUL byte",
                            at, memchr(k, 0, (size_t)klen) ? "key" : "value");
        }
        if (out->n_ext >= APG_RCMD_MAX_EXT)
            return apg_errf(APG_EPROTO, err, errlen, "ROCKETMQ header has more than %d extFields",
                            APG_RCMD_MAX_EXT);
        out->ext[out->n_ext].key = sc;
        sc += klen + 1;
        out->ext[out->n_ext].val = sc;
        sc += vlen + 1;
        out->n_ext++;
    }
    return APG_OK;
}

apg_err_t apg_rcmd_decode(const uint8_t *frame, size_t len, struct apg_rcmd *out, char *scratch,
                          size_t scratch_len, char *err, size_t errlen)
{
    rcmd_defaults(out, APG_SER_JSON);
    if (len < 8)
        return apg_errf(APG_EPROTO, err, errlen,
                        "frame is %zu bytes, shorter than the 8-byte minimum (two length words)",
                        len);
    uint32_t l = apg_be32(frame);
    if ((size_t)l != len - 4)
        return apg_errf(APG_EPROTO, err, errlen,
                        "frame length word says %u bytes but %zu bytes follow it", l, len - 4);
    uint32_t w = apg_be32(frame + 4);
    uint8_t ser = (uint8_t)(w >> 24);
    size_t hdr_len = w & 0x00FFFFFF;
    if (hdr_len > len - 8)
        return apg_errf(APG_EPROTO, err, errlen,
                        "header length %zu exceeds frame length %u (at most %zu header bytes fit)",
                        hdr_len, l, len - 8);
    if (ser != APG_SER_JSON && ser != APG_SER_ROCKETMQ)
        return apg_errf(APG_EPROTO, err, errlen,
                        "unknown serialize type byte 0x%02x (expected 0x00 JSON or 0x01 "
                        "ROCKETMQ)",
                        ser);
    if (scratch_len < apg_rcmd_scratch_need(hdr_len))
        return apg_errf(APG_ENOSPC, err, errlen,
                        "scratch area of %zu bytes is too small for a %zu-byte header (need %zu)",
                        scratch_len, hdr_len, apg_rcmd_scratch_need(hdr_len));
    out->serialize = ser;
    const uint8_t *hdr = frame + 8;
    apg_err_t rc = ser == APG_SER_JSON
                       ? apg_rjson_decode(hdr, hdr_len, out, scratch, scratch_len, err, errlen)
                       : rmq_decode(hdr, hdr_len, out, scratch, scratch_len, err, errlen);
    if (rc != APG_OK)
        return rc;
    size_t body_len = len - 8 - hdr_len;
    if (body_len) {
        out->body = hdr + hdr_len;
        out->body_len = (uint32_t)body_len;
    }
    return APG_OK;
}

static apg_err_t rmq_encode(const struct apg_rcmd *c, struct apg_buf *b)
{
    if (c->code < INT16_MIN || c->code > INT16_MAX || c->version < INT16_MIN ||
        c->version > INT16_MAX)
        return APG_ERANGE;
    size_t rlen = c->remark ? strlen(c->remark) : 0;
    if (rlen > INT32_MAX)
        return APG_ERANGE;
    size_t elen = 0;
    size_t kl[APG_RCMD_MAX_EXT], vl[APG_RCMD_MAX_EXT];
    uint32_t n = c->n_ext < APG_RCMD_MAX_EXT ? c->n_ext : APG_RCMD_MAX_EXT;
    for (uint32_t i = 0; i < n; i++) {
        const struct apg_ext *e = &c->ext[i];
        if (!e->key || !e->key[0] || !e->val)
            continue;
        kl[i] = strlen(e->key);
        vl[i] = strlen(e->val);
        if (kl[i] > INT16_MAX || vl[i] > INT32_MAX)
            return APG_ERANGE;
        elen += 6 + kl[i] + vl[i];
    }
    if (elen > INT32_MAX)
        return APG_ERANGE;
    if (apg_buf_reserve(b, RMQ_FIXED + rlen + elen) != APG_OK)
        return APG_ENOMEM;
    uint8_t *d = b->b_data + b->b_len;
    apg_wbe16(d, (uint16_t)(int16_t)c->code);
    d[2] = c->language;
    apg_wbe16(d + 3, (uint16_t)(int16_t)c->version);
    apg_wbe32(d + 5, (uint32_t)c->opaque);
    apg_wbe32(d + 9, (uint32_t)c->flag);
    apg_wbe32(d + 13, (uint32_t)rlen);
    d += 17;
    if (rlen) {
        memcpy(d, c->remark, rlen);
        d += rlen;
    }
    apg_wbe32(d, (uint32_t)elen);
    d += 4;
    for (uint32_t i = 0; i < n; i++) {
        const struct apg_ext *e = &c->ext[i];
        if (!e->key || !e->key[0] || !e->val)
            continue;
        apg_wbe16(d, (uint16_t)kl[i]);
        memcpy(d + 2, e->key, kl[i]);
        d += 2 + kl[i];
        apg_wbe32(d, (uint32_t)vl[i]);
        memcpy(d + 4, e->val, vl[i]);
        d += 4 + vl[i];
    }
    b->b_len = (size_t)(d - b->b_data);
    return APG_OK;
}

apg_err_t apg_rcmd_encode_header(const struct apg_rcmd *cmd, uint32_t body_len, struct apg_buf *out)
{
    if (cmd->serialize != APG_SER_JSON && cmd->serialize != APG_SER_ROCKETMQ)
        return APG_EINVAL;
    size_t start = out->b_len;
    if (apg_buf_reserve(out, 8) != APG_OK)
        return APG_ENOMEM;
    out->b_len += 8;
    apg_err_t rc =
        cmd->serialize == APG_SER_JSON ? apg_rjson_encode(cmd, out) : rmq_encode(cmd, out);
    if (rc != APG_OK) {
        out->b_len = start;
        return rc;
    }
    size_t hdr_len = out->b_len - start - 8;
    if (hdr_len > 0x00FFFFFF || 4 + hdr_len + (uint64_t)body_len > INT32_MAX) {
        out->b_len = start;
        return APG_ETOOBIG;
    }
    uint8_t *p = out->b_data + start;
    apg_wbe32(p, (uint32_t)(4 + hdr_len + body_len));
    apg_wbe32(p + 4, ((uint32_t)cmd->serialize << 24) | (uint32_t)hdr_len);
    return APG_OK;
}

apg_err_t apg_rcmd_encode(const struct apg_rcmd *cmd, const uint8_t *body, uint32_t body_len,
                          struct apg_buf *out)
{
    size_t start = out->b_len;
    apg_err_t rc = apg_rcmd_encode_header(cmd, body_len, out);
    if (rc != APG_OK)
        return rc;
    if (body_len && apg_buf_append(out, body, body_len) != APG_OK) {
        out->b_len = start;
        return APG_ENOMEM;
    }
    return APG_OK;
}

void apg_rcmd_init_response(struct apg_rcmd *resp, const struct apg_rcmd *req, int32_t code,
                            const char *remark)
{
    rcmd_defaults(resp, req->serialize);
    resp->code = code;
    resp->opaque = req->opaque;
    resp->flag = APG_RCMD_FLAG_RESPONSE;
    resp->version = APOGEE_RMQ_VERSION_ORDINAL;
    resp->remark = remark;
}

void apg_rcmd_init_request(struct apg_rcmd *req, int32_t code, int32_t opaque, uint8_t serialize)
{
    rcmd_defaults(req, serialize);
    req->code = code;
    req->opaque = opaque;
    req->version = APOGEE_RMQ_VERSION_ORDINAL;
}

const char *apg_rcmd_ext_get(const struct apg_rcmd *c, const char *key)
{
    /* Last match wins, as when Java fills a HashMap from duplicate keys.
     * The first-byte test skips most keys without a strcmp call. */
    for (uint32_t i = c->n_ext; i-- > 0;) {
        const char *k = c->ext[i].key;
        if (k && k[0] == key[0] && strcmp(k, key) == 0)
            return c->ext[i].val;
    }
    return NULL;
}

/* Long.parseLong: optional sign, then one or more ASCII digits, in range. */
static apg_err_t parse_long(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    bool neg = false;
    if (*s == '-' || *s == '+') {
        neg = *s == '-';
        s++;
    }
    if (!*s)
        return APG_EINVAL;
    /* Up to 18 digits cannot overflow: no per-digit range check needed
     * (header fields are parsed on every request). */
    const char *q = s;
    int64_t v = 0;
    while (*q >= '0' && *q <= '9' && q - s < 18)
        v = v * 10 + (*q++ - '0');
    if (*q == '\0') {
        if (neg)
            v = -v;
        if (v < lo || v > hi)
            return APG_EINVAL;
        *out = v;
        return APG_OK;
    }
    /* Long form: accumulate negatively so INT64_MIN is reachable. */
    v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return APG_EINVAL;
        int d = *s - '0';
        if (v < (INT64_MIN + d) / 10)
            return APG_EINVAL;
        v = v * 10 - d;
    }
    if (!neg) {
        if (v == INT64_MIN)
            return APG_EINVAL;
        v = -v;
    }
    if (v < lo || v > hi)
        return APG_EINVAL;
    *out = v;
    return APG_OK;
}

apg_err_t apg_rcmd_parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    return parse_long(s, lo, hi, out);
}

bool apg_rcmd_parse_bool(const char *s)
{
    return (s[0] | 0x20) == 't' && (s[1] | 0x20) == 'r' && (s[2] | 0x20) == 'u' &&
           (s[3] | 0x20) == 'e' && s[4] == '\0';
}

apg_err_t apg_rcmd_ext_i32(const struct apg_rcmd *c, const char *key, int32_t *out)
{
    const char *s = apg_rcmd_ext_get(c, key);
    if (!s)
        return APG_ENOTFOUND;
    int64_t v;
    apg_err_t rc = parse_long(s, INT32_MIN, INT32_MAX, &v);
    if (rc == APG_OK)
        *out = (int32_t)v;
    return rc;
}

apg_err_t apg_rcmd_ext_i64(const struct apg_rcmd *c, const char *key, int64_t *out)
{
    const char *s = apg_rcmd_ext_get(c, key);
    if (!s)
        return APG_ENOTFOUND;
    return parse_long(s, INT64_MIN, INT64_MAX, out);
}

bool apg_rcmd_ext_bool(const struct apg_rcmd *c, const char *key, bool dflt)
{
    const char *s = apg_rcmd_ext_get(c, key);
    return s ? apg_rcmd_parse_bool(s) : dflt;
}

apg_err_t apg_rcmd_ext_add(struct apg_rcmd *c, const char *key, const char *val)
{
    if (c->n_ext >= APG_RCMD_MAX_EXT)
        return APG_ETOOBIG;
    c->ext[c->n_ext].key = key;
    c->ext[c->n_ext].val = val;
    c->n_ext++;
    return APG_OK;
}

/* JSON remoting header: a small parser and writer for exactly one object.
 *
 * The header of a serializeType-0 frame is fastjson's rendering of Java's
 * RemotingCommand (docs/wire.md §2.1). Every request passes through here, so the
 * parser is a single forward pass with no allocation and no general JSON
 * tree: known keys are stored straight into struct apg_rcmd, unknown keys
 * (including nested objects and arrays) are validated and skipped. Decoded
 * strings are written NUL-terminated into the caller's scratch area; every
 * decoded string is no longer than its JSON source (an escape never expands,
 * the closing quote pays for the NUL), so apg_rcmd_scratch_need() is always
 * enough. The parser is strict JSON (RFC 8259) with a few tolerances taken
 * from what real clients send: extFields values may be numbers, booleans or
 * null (rendered as text), `language` may be a number, and unknown language
 * names map to OTHER instead of failing the request.
 *
 * The writer emits keys in fastjson's order (alphabetical), omits a NULL
 * remark and empty extFields, and escapes strings the way every JSON reader
 * accepts. It sizes the output exactly first, so it grows the apg_buf at
 * most once and then writes with plain stores.
 *
 * Pure code: no globals, no clock, no I/O. Any thread may call it. */
#include "protocol/remoting_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Deepest nesting of objects/arrays accepted (the header object is level 1). */
#define JDEPTH_MAX 32

struct jp {
    const uint8_t *j_start;
    const uint8_t *j_p;
    const uint8_t *j_end;
    char *j_sc; /* next free scratch byte */
    char *j_sc_end;
    char *j_err;
    size_t j_errlen;
};

static apg_err_t jfail(struct jp *jp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static apg_err_t jfail(struct jp *jp, const char *fmt, ...)
{
    if (jp->j_err && jp->j_errlen) {
        int n = snprintf(jp->j_err, jp->j_errlen,
                         "bad JSON header at byte %zu: ", (size_t)(jp->j_p - jp->j_start));
        if (n >= 0 && (size_t)n < jp->j_errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(jp->j_err + n, jp->j_errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return APG_EPROTO;
}

static apg_err_t jnospace(struct jp *jp)
{
    return apg_errf(APG_ENOSPC, jp->j_err, jp->j_errlen,
                    "scratch area too small while decoding JSON header at byte %zu",
                    (size_t)(jp->j_p - jp->j_start));
}

/* Describes the byte at the cursor for an error message. */
static const char *jwhat(const struct jp *jp, char *buf, size_t n)
{
    if (jp->j_p >= jp->j_end)
        return "end of header";
    uint8_t c = *jp->j_p;
    if (c >= 0x21 && c < 0x7f)
        snprintf(buf, n, "'%c'", c);
    else
        snprintf(buf, n, "byte 0x%02x", c);
    return buf;
}

static inline void jws(struct jp *jp)
{
    const uint8_t *p = jp->j_p, *e = jp->j_end;
    while (p < e && *p <= ' ' && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    jp->j_p = p;
}

static int jhex(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Reads 4 hex digits at p (bounds already checked); -1 if not hex. */
static long jhex4(const uint8_t *p)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = jhex(p[i]);
        if (h < 0)
            return -1;
        v = (v << 4) | h;
    }
    return v;
}

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* Marks the bytes of v that are '"', '\\' or below 0x20: non-zero exactly
 * when there is one, and (little-endian) the lowest set bit is in the first
 * such byte. Bits above it may be false positives of the borrow, so only
 * the lowest one is used. */
static inline uint64_t jword_special(uint64_t v)
{
    uint64_t q = v ^ (ONES * '"');
    uint64_t b = v ^ (ONES * '\\');
    uint64_t zq = (q - ONES) & ~q;
    uint64_t zb = (b - ONES) & ~b;
    uint64_t lt = (v - ONES * 0x20) & ~v;
    return (zq | zb | lt) & HIGHS;
}

/* Parses the string at the cursor (which is on the opening quote) into
 * scratch; *out gets the NUL-terminated text. */
static apg_err_t jstring(struct jp *jp, const char **out)
{
    const uint8_t *open = jp->j_p;
    const uint8_t *p = open + 1, *e = jp->j_end;
    char *d = jp->j_sc, *de = jp->j_sc_end;

    for (;;) {
        /* Copy 8 bytes at a time while there is room for a whole word; a
         * word with a quote, backslash or control byte ends the run at
         * that byte (its later bytes are overwritten or lie past the
         * string). The last few bytes of the header go bytewise. */
        bool hit = false;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        while (e - p >= 8 && de - d >= 12) {
            uint64_t v;
            memcpy(&v, p, 8);
            memcpy(d, &v, 8);
            uint64_t m = jword_special(v);
            if (m) {
                size_t k = (size_t)__builtin_ctzll(m) >> 3;
                p += k;
                d += k;
                hit = true;
                break;
            }
            p += 8;
            d += 8;
        }
#endif
        if (!hit) {
            const uint8_t *s = p;
            while (p < e && *p != '"' && *p != '\\' && *p >= 0x20)
                p++;
            size_t n = (size_t)(p - s);
            if ((size_t)(de - d) < n + 4) {
                jp->j_p = p;
                return jnospace(jp);
            }
            memcpy(d, s, n);
            d += n;
        }
        if (p >= e) {
            jp->j_p = open;
            return jfail(jp, "unterminated string");
        }
        if (*p == '"') {
            p++;
            break;
        }
        if (*p != '\\') {
            jp->j_p = p;
            return jfail(jp, "raw control character 0x%02x in string (must be escaped)", *p);
        }
        if (p + 1 >= e) {
            jp->j_p = open;
            return jfail(jp, "unterminated string");
        }
        uint8_t c = p[1];
        switch (c) {
        case '"':
        case '\\':
        case '/':
            *d++ = (char)c;
            p += 2;
            continue;
        case 'b':
            *d++ = '\b';
            p += 2;
            continue;
        case 'f':
            *d++ = '\f';
            p += 2;
            continue;
        case 'n':
            *d++ = '\n';
            p += 2;
            continue;
        case 'r':
            *d++ = '\r';
            p += 2;
            continue;
        case 't':
            *d++ = '\t';
            p += 2;
            continue;
        case 'u':
            break;
        default:
            jp->j_p = p;
            if (c >= 0x21 && c < 0x7f)
                return jfail(jp, "bad escape '\\%c' in string", c);
            return jfail(jp, "bad escape: backslash followed by byte 0x%02x", c);
        }
        /* \uXXXX, possibly a surrogate pair. */
        long cp = e - p >= 6 ? jhex4(p + 2) : -1;
        if (cp < 0) {
            jp->j_p = p;
            return jfail(jp, "bad \\u escape: expected 4 hex digits");
        }
        /* A surrogate pair becomes one 4-byte UTF-8 sequence. A lone
         * surrogate (JSON allows it; JavaScript's JSON.stringify emits one
         * for a broken string) becomes U+FFFD rather than failing the
         * request; Java would turn it into '?' when encoding to UTF-8. */
        long lo = -1;
        if (cp >= 0xD800 && cp <= 0xDBFF && e - p >= 12 && p[6] == '\\' && p[7] == 'u')
            lo = jhex4(p + 8);
        if (lo >= 0xDC00 && lo <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            p += 12;
        } else {
            if (cp >= 0xD800 && cp <= 0xDFFF)
                cp = 0xFFFD;
            p += 6;
        }
        if (cp == 0) {
            jp->j_p = p - 6;
            return jfail(jp, "\\u0000 (NUL) is not allowed in header strings");
        }
        /* Room: both run loops leave at least 4 bytes past the copied run
         * (the word loop stops at a special byte with de - d >= 12 - 7). */
        if (cp < 0x80) {
            *d++ = (char)cp;
        } else if (cp < 0x800) {
            *d++ = (char)(0xC0 | (cp >> 6));
            *d++ = (char)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            *d++ = (char)(0xE0 | (cp >> 12));
            *d++ = (char)(0x80 | ((cp >> 6) & 0x3F));
            *d++ = (char)(0x80 | (cp & 0x3F));
        } else {
            *d++ = (char)(0xF0 | (cp >> 18));
            *d++ = (char)(0x80 | ((cp >> 12) & 0x3F));
            *d++ = (char)(0x80 | ((cp >> 6) & 0x3F));
            *d++ = (char)(0x80 | (cp & 0x3F));
        }
    }
    if (d >= de) {
        jp->j_p = p;
        return jnospace(jp);
    }
    *d++ = '\0';
    *out = jp->j_sc;
    jp->j_sc = d;
    jp->j_p = p;
    return APG_OK;
}

/* Validates a JSON number at the cursor; returns its span and whether it
 * is an integer (no fraction, no exponent). */
static apg_err_t jnumber(struct jp *jp, const uint8_t **span, size_t *len, bool *is_int)
{
    const uint8_t *s = jp->j_p, *p = s, *e = jp->j_end;
    char w[16];
    *is_int = true;
    if (p < e && *p == '-')
        p++;
    if (p >= e || *p < '0' || *p > '9') {
        jp->j_p = p;
        return jfail(jp, "bad number: expected a digit, found %s", jwhat(jp, w, sizeof(w)));
    }
    if (*p == '0') {
        p++;
        if (p < e && *p >= '0' && *p <= '9') {
            jp->j_p = s;
            return jfail(jp, "bad number: leading zero");
        }
    } else {
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < e && *p == '.') {
        *is_int = false;
        p++;
        if (p >= e || *p < '0' || *p > '9') {
            jp->j_p = p;
            return jfail(jp, "bad number: expected a digit after '.'");
        }
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        *is_int = false;
        p++;
        if (p < e && (*p == '+' || *p == '-'))
            p++;
        if (p >= e || *p < '0' || *p > '9') {
            jp->j_p = p;
            return jfail(jp, "bad number: expected a digit in the exponent");
        }
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    }
    *span = s;
    *len = (size_t)(p - s);
    jp->j_p = p;
    return APG_OK;
}

/* Matches a literal (true/false/null) at the cursor. */
static bool jlit(struct jp *jp, const char *lit, size_t n)
{
    if ((size_t)(jp->j_end - jp->j_p) < n || memcmp(jp->j_p, lit, n) != 0)
        return false;
    jp->j_p += n;
    return true;
}

static apg_err_t jbad_value(struct jp *jp)
{
    char w[16];
    return jfail(jp, "expected a value, found %s", jwhat(jp, w, sizeof(w)));
}

/* Validates and skips any value; depth is the nesting level of the value's
 * container. Strings are decoded into scratch and dropped (the scratch
 * cursor is rewound), which also validates their escapes. */
static apg_err_t jskip(struct jp *jp, int depth)
{
    char w[16];
    jws(jp);
    if (jp->j_p >= jp->j_end)
        return jbad_value(jp);
    uint8_t c = *jp->j_p;
    if (c == '"') {
        char *mark = jp->j_sc;
        const char *s;
        apg_err_t rc = jstring(jp, &s);
        jp->j_sc = mark;
        return rc;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        const uint8_t *span;
        size_t n;
        bool is_int;
        return jnumber(jp, &span, &n, &is_int);
    }
    if (c == 't' && jlit(jp, "true", 4))
        return APG_OK;
    if (c == 'f' && jlit(jp, "false", 5))
        return APG_OK;
    if (c == 'n' && jlit(jp, "null", 4))
        return APG_OK;
    if (c != '{' && c != '[')
        return jbad_value(jp);
    if (depth + 1 > JDEPTH_MAX)
        return jfail(jp, "nesting deeper than %d levels", JDEPTH_MAX);
    uint8_t close = c == '{' ? '}' : ']';
    jp->j_p++;
    jws(jp);
    if (jp->j_p < jp->j_end && *jp->j_p == close) {
        jp->j_p++;
        return APG_OK;
    }
    for (;;) {
        apg_err_t rc;
        if (close == '}') {
            jws(jp);
            if (jp->j_p >= jp->j_end || *jp->j_p != '"')
                return jfail(jp, "expected a key string, found %s", jwhat(jp, w, sizeof(w)));
            if ((rc = jskip(jp, depth + 1)) != APG_OK)
                return rc;
            jws(jp);
            if (jp->j_p >= jp->j_end || *jp->j_p != ':')
                return jfail(jp, "expected ':' after key, found %s", jwhat(jp, w, sizeof(w)));
            jp->j_p++;
        }
        if ((rc = jskip(jp, depth + 1)) != APG_OK)
            return rc;
        jws(jp);
        if (jp->j_p < jp->j_end && *jp->j_p == ',') {
            jp->j_p++;
            jws(jp);
            if (jp->j_p < jp->j_end && *jp->j_p == close)
                return jfail(jp, "trailing comma before '%c'", close);
            continue;
        }
        if (jp->j_p < jp->j_end && *jp->j_p == close) {
            jp->j_p++;
            return APG_OK;
        }
        return jfail(jp, "expected ',' or '%c', found %s", close, jwhat(jp, w, sizeof(w)));
    }
}

/* Copies n bytes of source text into scratch as a NUL-terminated string. */
static apg_err_t jcopy(struct jp *jp, const uint8_t *s, size_t n, const char **out)
{
    if ((size_t)(jp->j_sc_end - jp->j_sc) < n + 1)
        return jnospace(jp);
    memcpy(jp->j_sc, s, n);
    jp->j_sc[n] = '\0';
    *out = jp->j_sc;
    jp->j_sc += n + 1;
    return APG_OK;
}

/* Reads a scalar (string, number, boolean, null) as text. null gives
 * null_text (NULL for remark, "" for extFields values). */
static apg_err_t jscalar_text(struct jp *jp, const char *what, const char *null_text,
                              const char **out)
{
    if (jp->j_p >= jp->j_end)
        return jbad_value(jp);
    uint8_t c = *jp->j_p;
    if (c == '"')
        return jstring(jp, out);
    if (c == '-' || (c >= '0' && c <= '9')) {
        const uint8_t *span;
        size_t n;
        bool is_int;
        apg_err_t rc = jnumber(jp, &span, &n, &is_int);
        if (rc != APG_OK)
            return rc;
        return jcopy(jp, span, n, out);
    }
    if (c == 't' && jlit(jp, "true", 4)) {
        *out = "true";
        return APG_OK;
    }
    if (c == 'f' && jlit(jp, "false", 5)) {
        *out = "false";
        return APG_OK;
    }
    if (c == 'n' && jlit(jp, "null", 4)) {
        *out = null_text;
        return APG_OK;
    }
    if (c == '{' || c == '[')
        return jfail(jp, "%s must be a string, number, boolean or null, found %s", what,
                     c == '{' ? "an object" : "an array");
    return jbad_value(jp);
}

/* Reads an int32 field (JSON integer; null leaves the default). */
static apg_err_t jint32(struct jp *jp, const char *key, int32_t *out)
{
    if (jp->j_p < jp->j_end && *jp->j_p == 'n' && jlit(jp, "null", 4))
        return APG_OK;
    if (jp->j_p >= jp->j_end || (*jp->j_p != '-' && (*jp->j_p < '0' || *jp->j_p > '9'))) {
        char w[16];
        return jfail(jp, "\"%s\" must be an integer, found %s", key, jwhat(jp, w, sizeof(w)));
    }
    const uint8_t *s;
    size_t n;
    bool is_int;
    apg_err_t rc = jnumber(jp, &s, &n, &is_int);
    if (rc != APG_OK)
        return rc;
    if (!is_int) {
        jp->j_p = s;
        return jfail(jp, "\"%s\" must be an integer, found %.*s", key, (int)(n > 40 ? 40 : n), s);
    }
    bool neg = *s == '-';
    const uint8_t *d = s + neg;
    size_t nd = n - neg;
    int64_t v = 0;
    if (nd <= 10)
        for (size_t i = 0; i < nd; i++)
            v = v * 10 + (d[i] - '0');
    if (neg)
        v = -v;
    if (nd > 10 || v < INT32_MIN || v > INT32_MAX) {
        jp->j_p = s;
        return jfail(jp, "\"%s\" value %.*s is out of int32 range", key, (int)(n > 40 ? 40 : n), s);
    }
    *out = (int32_t)v;
    return APG_OK;
}

static apg_err_t jlanguage(struct jp *jp, uint8_t *out)
{
    char w[16];
    if (jp->j_p >= jp->j_end)
        return jbad_value(jp);
    uint8_t c = *jp->j_p;
    if (c == 'n' && jlit(jp, "null", 4)) {
        *out = APG_LANG_JAVA;
        return APG_OK;
    }
    if (c == '"') {
        char *mark = jp->j_sc;
        const char *name;
        apg_err_t rc = jstring(jp, &name);
        if (rc != APG_OK)
            return rc;
        int l = apg_rcmd_lang_parse(name, strlen(name));
        *out = l < 0 ? APG_LANG_OTHER : (uint8_t)l;
        jp->j_sc = mark;
        return APG_OK;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        const uint8_t *at = jp->j_p;
        int32_t v = 0;
        apg_err_t rc = jint32(jp, "language", &v);
        if (rc != APG_OK)
            return rc;
        if (v < 0 || v > 255) {
            jp->j_p = at;
            return jfail(jp, "\"language\" code %d is not a byte (0..255)", (int)v);
        }
        *out = (uint8_t)v;
        return APG_OK;
    }
    return jfail(jp, "\"language\" must be a name string or a number, found %s",
                 jwhat(jp, w, sizeof(w)));
}

static apg_err_t jext(struct jp *jp, struct apg_rcmd *out)
{
    char w[16];
    if (jp->j_p < jp->j_end && *jp->j_p == 'n' && jlit(jp, "null", 4)) {
        out->n_ext = 0;
        return APG_OK;
    }
    if (jp->j_p >= jp->j_end || *jp->j_p != '{')
        return jfail(jp, "\"extFields\" must be an object, found %s", jwhat(jp, w, sizeof(w)));
    /* A repeated extFields key replaces the earlier map, as in Java. */
    out->n_ext = 0;
    jp->j_p++;
    jws(jp);
    if (jp->j_p < jp->j_end && *jp->j_p == '}') {
        jp->j_p++;
        return APG_OK;
    }
    for (;;) {
        apg_err_t rc;
        const char *key, *val;
        jws(jp);
        if (jp->j_p >= jp->j_end || *jp->j_p != '"')
            return jfail(jp, "expected an extFields key string, found %s", jwhat(jp, w, sizeof(w)));
        if (out->n_ext >= APG_RCMD_MAX_EXT)
            return jfail(jp, "more than %d extFields", APG_RCMD_MAX_EXT);
        if ((rc = jstring(jp, &key)) != APG_OK)
            return rc;
        jws(jp);
        if (jp->j_p >= jp->j_end || *jp->j_p != ':')
            return jfail(jp, "expected ':' after extFields key \"%.64s\", found %s", key,
                         jwhat(jp, w, sizeof(w)));
        jp->j_p++;
        jws(jp);
        if ((rc = jscalar_text(jp, "extFields value", "", &val)) != APG_OK)
            return rc;
        out->ext[out->n_ext].key = key;
        out->ext[out->n_ext].val = val;
        out->n_ext++;
        jws(jp);
        if (jp->j_p < jp->j_end && *jp->j_p == ',') {
            jp->j_p++;
            jws(jp);
            if (jp->j_p < jp->j_end && *jp->j_p == '}')
                return jfail(jp, "trailing comma before '}' in extFields");
            continue;
        }
        if (jp->j_p < jp->j_end && *jp->j_p == '}') {
            jp->j_p++;
            return APG_OK;
        }
        return jfail(jp, "expected ',' or '}' in extFields, found %s", jwhat(jp, w, sizeof(w)));
    }
}

enum jkey { JK_UNKNOWN, JK_CODE, JK_EXT, JK_FLAG, JK_LANG, JK_OPAQUE, JK_REMARK, JK_VERSION };

static enum jkey jkey_id(const char *k)
{
    switch (k[0]) {
    case 'c':
        return strcmp(k, "code") == 0 ? JK_CODE : JK_UNKNOWN;
    case 'e':
        return strcmp(k, "extFields") == 0 ? JK_EXT : JK_UNKNOWN;
    case 'f':
        return strcmp(k, "flag") == 0 ? JK_FLAG : JK_UNKNOWN;
    case 'l':
        return strcmp(k, "language") == 0 ? JK_LANG : JK_UNKNOWN;
    case 'o':
        return strcmp(k, "opaque") == 0 ? JK_OPAQUE : JK_UNKNOWN;
    case 'r':
        return strcmp(k, "remark") == 0 ? JK_REMARK : JK_UNKNOWN;
    case 'v':
        return strcmp(k, "version") == 0 ? JK_VERSION : JK_UNKNOWN;
    }
    return JK_UNKNOWN;
}

apg_err_t apg_rjson_decode(const uint8_t *hdr, size_t hdr_len, struct apg_rcmd *out, char *scratch,
                           size_t scratch_len, char *err, size_t errlen)
{
    struct jp jp = {hdr, hdr, hdr + hdr_len, scratch, scratch + scratch_len, err, errlen};
    char w[16];
    apg_err_t rc;

    jws(&jp);
    if (jp.j_p >= jp.j_end)
        return jfail(&jp, "empty header, expected '{'");
    if (*jp.j_p != '{')
        return jfail(&jp, "header must be a JSON object, found %s", jwhat(&jp, w, sizeof(w)));
    jp.j_p++;
    jws(&jp);
    if (jp.j_p < jp.j_end && *jp.j_p == '}') {
        jp.j_p++;
    } else {
        for (;;) {
            const char *key;
            jws(&jp);
            if (jp.j_p >= jp.j_end || *jp.j_p != '"')
                return jfail(&jp, "expected a key string, found %s", jwhat(&jp, w, sizeof(w)));
            char *mark = jp.j_sc;
            if ((rc = jstring(&jp, &key)) != APG_OK)
                return rc;
            enum jkey id = jkey_id(key);
            jws(&jp);
            if (jp.j_p >= jp.j_end || *jp.j_p != ':')
                return jfail(&jp, "expected ':' after key \"%.64s\", found %s", key,
                             jwhat(&jp, w, sizeof(w)));
            jp.j_p++;
            jws(&jp);
            jp.j_sc = mark; /* the key text is no longer needed */
            switch (id) {
            case JK_CODE:
                rc = jint32(&jp, "code", &out->code);
                break;
            case JK_OPAQUE:
                rc = jint32(&jp, "opaque", &out->opaque);
                break;
            case JK_FLAG:
                rc = jint32(&jp, "flag", &out->flag);
                break;
            case JK_VERSION:
                rc = jint32(&jp, "version", &out->version);
                break;
            case JK_LANG:
                rc = jlanguage(&jp, &out->language);
                break;
            case JK_REMARK:
                rc = jscalar_text(&jp, "\"remark\"", NULL, &out->remark);
                break;
            case JK_EXT:
                rc = jext(&jp, out);
                break;
            default: {
                char *m2 = jp.j_sc;
                rc = jskip(&jp, 1);
                jp.j_sc = m2;
                break;
            }
            }
            if (rc != APG_OK)
                return rc;
            jws(&jp);
            if (jp.j_p < jp.j_end && *jp.j_p == ',') {
                jp.j_p++;
                jws(&jp);
                if (jp.j_p < jp.j_end && *jp.j_p == '}')
                    return jfail(&jp, "trailing comma before '}'");
                continue;
            }
            if (jp.j_p < jp.j_end && *jp.j_p == '}') {
                jp.j_p++;
                break;
            }
            return jfail(&jp, "expected ',' or '}' after a member, found %s",
                         jwhat(&jp, w, sizeof(w)));
        }
    }
    jws(&jp);
    if (jp.j_p < jp.j_end)
        return jfail(&jp, "trailing garbage after the JSON object: %s", jwhat(&jp, w, sizeof(w)));
    return APG_OK;
}

/* ---- writer ---- */

/* 0: copy as is; otherwise the letter after the backslash ('u' = \u00XX). */
static const uint8_t jesc[256] = {
    ['\b'] = 'b',  ['\f'] = 'f', ['\n'] = 'n', ['\r'] = 'r', ['\t'] = 't', ['"'] = '"',
    ['\\'] = '\\', [0x00] = 'u', [0x01] = 'u', [0x02] = 'u', [0x03] = 'u', [0x04] = 'u',
    [0x05] = 'u',  [0x06] = 'u', [0x07] = 'u', [0x0b] = 'u', [0x0e] = 'u', [0x0f] = 'u',
    [0x10] = 'u',  [0x11] = 'u', [0x12] = 'u', [0x13] = 'u', [0x14] = 'u', [0x15] = 'u',
    [0x16] = 'u',  [0x17] = 'u', [0x18] = 'u', [0x19] = 'u', [0x1a] = 'u', [0x1b] = 'u',
    [0x1c] = 'u',  [0x1d] = 'u', [0x1e] = 'u', [0x1f] = 'u', [0x7f] = 'u',
};

/* Measures s: raw length, and the extra bytes its escapes need. */
struct jlen {
    size_t jl_raw;
    size_t jl_extra;
};

static struct jlen jstr_measure(const char *s)
{
    struct jlen l = {strlen(s), 0};
    const uint8_t *p = (const uint8_t *)s, *end = p + l.jl_raw;
    /* Whole words without a byte that needs escaping are skipped at once
     * (jword_special covers '"', '\\' and controls; DEL is checked apart). */
    while (end - p >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        uint64_t del = v ^ (ONES * 0x7f);
        if (!jword_special(v) && !((del - ONES) & ~del & HIGHS)) {
            p += 8;
            continue;
        }
        for (int i = 0; i < 8; i++, p++) {
            uint8_t e = jesc[*p];
            if (e)
                l.jl_extra += e == 'u' ? 5 : 1;
        }
    }
    for (; p < end; p++) {
        uint8_t e = jesc[*p];
        if (e)
            l.jl_extra += e == 'u' ? 5 : 1;
    }
    return l;
}

static uint8_t *jput_str(uint8_t *d, const char *s, struct jlen l)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *p = (const uint8_t *)s;
    *d++ = '"';
    if (l.jl_extra == 0) {
        memcpy(d, s, l.jl_raw);
        d += l.jl_raw;
        *d++ = '"';
        return d;
    }
    for (;;) {
        const uint8_t *r = p;
        while (*p && !jesc[*p])
            p++;
        memcpy(d, r, (size_t)(p - r));
        d += p - r;
        if (!*p)
            break;
        uint8_t e = jesc[*p];
        *d++ = '\\';
        *d++ = e;
        if (e == 'u') {
            *d++ = '0';
            *d++ = '0';
            *d++ = (uint8_t)hex[*p >> 4];
            *d++ = (uint8_t)hex[*p & 15];
        }
        p++;
    }
    *d++ = '"';
    return d;
}

static uint8_t *jput_lit(uint8_t *d, const char *s, size_t n)
{
    memcpy(d, s, n);
    return d + n;
}

static uint8_t *jput_i32(uint8_t *d, int32_t v)
{
    char t[12];
    int i = 12;
    uint32_t u = v < 0 ? 0u - (uint32_t)v : (uint32_t)v;
    do {
        t[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        t[--i] = '-';
    memcpy(d, t + i, (size_t)(12 - i));
    return d + (12 - i);
}

#define JLIT(d, s) jput_lit((d), (s), sizeof(s) - 1)

apg_err_t apg_rjson_encode(const struct apg_rcmd *cmd, struct apg_buf *out)
{
    /* Fixed text: keys, punctuation, five ints (11 bytes each), the
     * serializeTypeCurrentRPC member and the longest language name. */
    size_t need = 160;
    uint32_t n_ext = 0;
    struct jlen kl[APG_RCMD_MAX_EXT], vl[APG_RCMD_MAX_EXT], rl = {0, 0};
    for (uint32_t i = 0; i < cmd->n_ext && i < APG_RCMD_MAX_EXT; i++) {
        if (!cmd->ext[i].key || !cmd->ext[i].val)
            continue;
        n_ext++;
        kl[i] = jstr_measure(cmd->ext[i].key);
        vl[i] = jstr_measure(cmd->ext[i].val);
        need += kl[i].jl_raw + kl[i].jl_extra + vl[i].jl_raw + vl[i].jl_extra + 6;
    }
    if (cmd->remark) {
        rl = jstr_measure(cmd->remark);
        need += rl.jl_raw + rl.jl_extra + 12;
    }
    if (apg_buf_reserve(out, need) != APG_OK)
        return APG_ENOMEM;

    uint8_t *d = out->b_data + out->b_len;
    d = JLIT(d, "{\"code\":");
    d = jput_i32(d, cmd->code);
    if (n_ext) {
        d = JLIT(d, ",\"extFields\":{");
        bool first = true;
        for (uint32_t i = 0; i < cmd->n_ext && i < APG_RCMD_MAX_EXT; i++) {
            if (!cmd->ext[i].key || !cmd->ext[i].val)
                continue;
            if (!first)
                *d++ = ',';
            first = false;
            d = jput_str(d, cmd->ext[i].key, kl[i]);
            *d++ = ':';
            d = jput_str(d, cmd->ext[i].val, vl[i]);
        }
        *d++ = '}';
    }
    d = JLIT(d, ",\"flag\":");
    d = jput_i32(d, cmd->flag);
    const char *lang = apg_rcmd_lang_name(cmd->language);
    if (lang) {
        d = JLIT(d, ",\"language\":\"");
        d = jput_lit(d, lang, strlen(lang));
        *d++ = '"';
    } else {
        d = JLIT(d, ",\"language\":");
        d = jput_i32(d, cmd->language);
    }
    d = JLIT(d, ",\"opaque\":");
    d = jput_i32(d, cmd->opaque);
    if (cmd->remark) {
        d = JLIT(d, ",\"remark\":");
        d = jput_str(d, cmd->remark, rl);
    }
    d = JLIT(d, ",\"serializeTypeCurrentRPC\":\"JSON\",\"version\":");
    d = jput_i32(d, cmd->version);
    *d++ = '}';
    out->b_len = (size_t)(d - out->b_data);
    return APG_OK;
}

/* JSON reader for broker bodies and config files (see bjson.h).
 *
 * Recursive descent over a byte range with a depth limit, building a tree of
 * apg_bjson nodes allocated through apg_malloc. Tolerates fastjson's
 * unquoted keys and single-quoted strings; \uXXXX escapes (including
 * surrogate pairs) are decoded to UTF-8. Every malformed input returns NULL
 * with a message naming the offset. */
#include "broker/bjson.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"

#define BJ_MAX_DEPTH 64

struct bjp {
    const char *p;
    const char *end;
    const char *start;
    char *err;
    size_t errlen;
    bool failed;
};

static void fail(struct bjp *s, const char *what)
{
    if (!s->failed)
        apg_errf(APG_EPROTO, s->err, s->errlen, "bad JSON at byte %ld: %s", (long)(s->p - s->start),
                 what);
    s->failed = true;
}

static void skip_ws(struct bjp *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static struct apg_bjson *node_new(enum apg_bjson_type t)
{
    struct apg_bjson *j = apg_calloc(1, sizeof(*j));
    if (j)
        j->bj_type = t;
    return j;
}

void apg_bjson_free(struct apg_bjson *j)
{
    while (j) {
        struct apg_bjson *next = j->bj_next;
        apg_bjson_free(j->bj_kid);
        apg_free(j->bj_key);
        apg_free(j->bj_str);
        apg_free(j);
        j = next;
    }
}

static void put_utf8(struct apg_buf *b, uint32_t cp)
{
    uint8_t t[4];
    size_t n;
    if (cp < 0x80) {
        t[0] = (uint8_t)cp;
        n = 1;
    } else if (cp < 0x800) {
        t[0] = (uint8_t)(0xC0 | (cp >> 6));
        t[1] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        t[0] = (uint8_t)(0xE0 | (cp >> 12));
        t[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        t[2] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        t[0] = (uint8_t)(0xF0 | (cp >> 18));
        t[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
        t[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        t[3] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 4;
    }
    apg_buf_append(b, t, n);
}

static int hex4(const char *p, const char *end, uint32_t *out)
{
    if (end - p < 4)
        return -1;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* Parses a quoted string at s->p; returns an owned NUL-terminated copy. */
static char *parse_string(struct bjp *s)
{
    char q = *s->p++;
    struct apg_buf b = APG_BUF_INIT;
    while (s->p < s->end && *s->p != q) {
        char c = *s->p++;
        if (c != '\\') {
            apg_buf_append(&b, &c, 1);
            continue;
        }
        if (s->p >= s->end)
            break;
        c = *s->p++;
        switch (c) {
        case 'n':
            apg_buf_append(&b, "\n", 1);
            break;
        case 't':
            apg_buf_append(&b, "\t", 1);
            break;
        case 'r':
            apg_buf_append(&b, "\r", 1);
            break;
        case 'b':
            apg_buf_append(&b, "\b", 1);
            break;
        case 'f':
            apg_buf_append(&b, "\f", 1);
            break;
        case 'u': {
            uint32_t cp;
            if (hex4(s->p, s->end, &cp)) {
                fail(s, "bad \\u escape");
                apg_buf_free(&b);
                return NULL;
            }
            s->p += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && s->end - s->p >= 6 && s->p[0] == '\\' &&
                s->p[1] == 'u') {
                uint32_t lo;
                if (!hex4(s->p + 2, s->end, &lo) && lo >= 0xDC00 && lo < 0xE000) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    s->p += 6;
                }
            }
            put_utf8(&b, cp);
            break;
        }
        default:
            apg_buf_append(&b, &c, 1);
            break;
        }
    }
    if (s->p >= s->end) {
        fail(s, "unterminated string");
        apg_buf_free(&b);
        return NULL;
    }
    s->p++;
    char *out = apg_strndup(b.b_len ? (const char *)b.b_data : "", b.b_len);
    apg_buf_free(&b);
    if (!out)
        fail(s, "out of memory");
    return out;
}

static bool is_bare(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           c == '-' || c == '+' || c == '.' || c == '$';
}

static char *parse_bare(struct bjp *s)
{
    const char *b = s->p;
    while (s->p < s->end && is_bare(*s->p))
        s->p++;
    if (s->p == b) {
        fail(s, "unexpected character");
        return NULL;
    }
    char *out = apg_strndup(b, (size_t)(s->p - b));
    if (!out)
        fail(s, "out of memory");
    return out;
}

static struct apg_bjson *parse_value(struct bjp *s, int depth);

static struct apg_bjson *parse_container(struct bjp *s, int depth, bool obj)
{
    struct apg_bjson *j = node_new(obj ? APG_BJSON_OBJ : APG_BJSON_ARR);
    if (!j) {
        fail(s, "out of memory");
        return NULL;
    }
    char close = obj ? '}' : ']';
    struct apg_bjson **tail = &j->bj_kid;
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
        return j;
    }
    for (;;) {
        char *key = NULL;
        skip_ws(s);
        if (obj) {
            if (s->p >= s->end) {
                fail(s, "unterminated object");
                break;
            }
            key = (*s->p == '"' || *s->p == '\'') ? parse_string(s) : parse_bare(s);
            if (!key)
                break;
            skip_ws(s);
            if (s->p >= s->end || *s->p != ':') {
                apg_free(key);
                fail(s, "expected ':'");
                break;
            }
            s->p++;
        }
        struct apg_bjson *v = parse_value(s, depth + 1);
        if (!v) {
            apg_free(key);
            break;
        }
        v->bj_key = key;
        *tail = v;
        tail = &v->bj_next;
        skip_ws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            continue;
        }
        if (s->p < s->end && *s->p == close) {
            s->p++;
            return j;
        }
        fail(s, obj ? "expected ',' or '}'" : "expected ',' or ']'");
        break;
    }
    apg_bjson_free(j);
    return NULL;
}

static struct apg_bjson *parse_value(struct bjp *s, int depth)
{
    if (depth > BJ_MAX_DEPTH) {
        fail(s, "nested too deeply");
        return NULL;
    }
    skip_ws(s);
    if (s->p >= s->end) {
        fail(s, "unexpected end");
        return NULL;
    }
    char c = *s->p;
    if (c == '{' || c == '[')
        return parse_container(s, depth, c == '{');
    if (c == '"' || c == '\'') {
        char *str = parse_string(s);
        if (!str)
            return NULL;
        struct apg_bjson *j = node_new(APG_BJSON_STR);
        if (!j) {
            apg_free(str);
            fail(s, "out of memory");
            return NULL;
        }
        j->bj_str = str;
        return j;
    }
    char *tok = parse_bare(s);
    if (!tok)
        return NULL;
    struct apg_bjson *j = NULL;
    if (strcmp(tok, "true") == 0 || strcmp(tok, "false") == 0) {
        j = node_new(APG_BJSON_BOOL);
        if (j)
            j->bj_bool = tok[0] == 't';
        apg_free(tok);
    } else if (strcmp(tok, "null") == 0) {
        j = node_new(APG_BJSON_NULL);
        apg_free(tok);
    } else if ((tok[0] >= '0' && tok[0] <= '9') || tok[0] == '-') {
        j = node_new(APG_BJSON_NUM);
        if (j)
            j->bj_str = tok;
        else
            apg_free(tok);
    } else {
        apg_free(tok);
        fail(s, "unknown literal");
        return NULL;
    }
    if (!j)
        fail(s, "out of memory");
    return j;
}

struct apg_bjson *apg_bjson_parse(const char *buf, size_t len, char *err, size_t errlen)
{
    struct bjp s = {buf, buf + len, buf, err, errlen, false};
    struct apg_bjson *j = parse_value(&s, 0);
    if (!j)
        return NULL;
    skip_ws(&s);
    if (s.p != s.end) {
        fail(&s, "trailing bytes after the value");
        apg_bjson_free(j);
        return NULL;
    }
    return j;
}

const struct apg_bjson *apg_bjson_get(const struct apg_bjson *obj, const char *key)
{
    if (!obj || obj->bj_type != APG_BJSON_OBJ)
        return NULL;
    for (const struct apg_bjson *k = obj->bj_kid; k; k = k->bj_next)
        if (k->bj_key && strcmp(k->bj_key, key) == 0)
            return k;
    return NULL;
}

const char *apg_bjson_get_str(const struct apg_bjson *obj, const char *key, const char *dflt)
{
    const struct apg_bjson *j = apg_bjson_get(obj, key);
    return j && (j->bj_type == APG_BJSON_STR || j->bj_type == APG_BJSON_NUM) ? j->bj_str : dflt;
}

int64_t apg_bjson_i64(const struct apg_bjson *j, int64_t dflt)
{
    if (!j || (j->bj_type != APG_BJSON_NUM && j->bj_type != APG_BJSON_STR) || !j->bj_str[0])
        return dflt;
    char *end;
    long long v = strtoll(j->bj_str, &end, 10);
    if (*end != 0 && *end != '.' && *end != 'e' && *end != 'E')
        return dflt;
    return v;
}

int64_t apg_bjson_get_i64(const struct apg_bjson *obj, const char *key, int64_t dflt)
{
    return apg_bjson_i64(apg_bjson_get(obj, key), dflt);
}

bool apg_bjson_get_bool(const struct apg_bjson *obj, const char *key, bool dflt)
{
    const struct apg_bjson *j = apg_bjson_get(obj, key);
    if (!j)
        return dflt;
    if (j->bj_type == APG_BJSON_BOOL)
        return j->bj_bool;
    if (j->bj_type == APG_BJSON_STR)
        return strcasecmp(j->bj_str, "true") == 0;
    return dflt;
}

apg_err_t apg_bjson_put_str(struct apg_buf *b, const char *s)
{
    apg_err_t e = apg_buf_append(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; !e && *p; p++) {
        if (*p == '"' || *p == '\\') {
            char t[2] = {'\\', (char)*p};
            e = apg_buf_append(b, t, 2);
        } else if (*p < 0x20) {
            e = apg_buf_printf(b, "\\u%04x", *p);
        } else {
            e = apg_buf_append(b, p, 1);
        }
    }
    return e ? e : apg_buf_append(b, "\"", 1);
}

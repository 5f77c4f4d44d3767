/* Reading fastjson-written JSON with jansson (see json.h).
 *
 * The normaliser is a single pass with a small stack of open containers. In an
 * object, after '{' or ',', the next token is a key: a quoted string is copied,
 * an unquoted token (digits, letters, '-', '.') is quoted, and a '{' or '['
 * starts a composite key whose balanced text is captured and emitted as one
 * JSON string. Single-quoted strings (keys or values) are re-quoted with '"'.
 * Everything else is copied byte for byte, so standard JSON passes through
 * unchanged and jansson reports any real syntax error. */
#include "common/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/file.h"
#include "common/log.h"
#include "common/mem.h"

#define MAX_DEPTH 256

/* Index just past the string starting at in[i] (a '"' or a '\''). */
static size_t skip_string(const char *in, size_t len, size_t i)
{
    char q = in[i];
    for (i++; i < len; i++) {
        if (in[i] == '\\')
            i++;
        else if (in[i] == q)
            return i + 1;
    }
    return len;
}

/* Copies the string starting at in[i] to out as a double-quoted string:
 * a '"'-quoted one unchanged, a '\''-quoted one with \' unescaped and bare
 * '"' escaped. Returns the index just past it. */
static size_t copy_string(const char *in, size_t len, size_t i, struct apg_buf *out, apg_err_t *rc)
{
    if (in[i] == '"') {
        size_t e = skip_string(in, len, i);
        *rc = apg_buf_append(out, in + i, e - i);
        return e;
    }
    *rc = apg_buf_append(out, "\"", 1);
    for (i++; !*rc && i < len; i++) {
        char c = in[i];
        if (c == '\'')
            return (*rc = apg_buf_append(out, "\"", 1)), i + 1;
        if (c == '\\' && i + 1 < len && in[i + 1] == '\'') {
            *rc = apg_buf_append(out, "'", 1);
            i++;
        } else if (c == '\\' && i + 1 < len) {
            *rc = apg_buf_append(out, in + i, 2);
            i++;
        } else if (c == '"') {
            *rc = apg_buf_append(out, "\\\"", 2);
        } else {
            *rc = apg_buf_append(out, &c, 1);
        }
    }
    return len; /* unterminated: left open for jansson to reject */
}

/* Index just past the balanced container starting at in[i]. */
static size_t skip_composite(const char *in, size_t len, size_t i)
{
    int depth = 0;
    while (i < len) {
        char c = in[i];
        if (c == '"' || c == '\'') {
            i = skip_string(in, len, i);
            continue;
        }
        if (c == '{' || c == '[')
            depth++;
        else if (c == '}' || c == ']') {
            if (--depth == 0)
                return i + 1;
        }
        i++;
    }
    return len;
}

static bool is_bare(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
           c == '.' || c == '+' || c == '_';
}

static apg_err_t put_quoted(struct apg_buf *out, const char *s, size_t n)
{
    apg_err_t rc = apg_buf_append(out, "\"", 1);
    for (size_t i = 0; !rc && i < n; i++) {
        char c = s[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', c};
            rc = apg_buf_append(out, esc, 2);
        } else if (c == '\n' || c == '\r' || c == '\t') {
            continue; /* whitespace inside a composite key carries no meaning */
        } else {
            rc = apg_buf_append(out, &c, 1);
        }
    }
    return rc ? rc : apg_buf_append(out, "\"", 1);
}

apg_err_t apg_json_normalize(const char *in, size_t len, struct apg_buf *out)
{
    char stack[MAX_DEPTH];
    int depth = 0;
    bool want_key = false;
    apg_err_t rc = APG_OK;
    size_t i = 0;
    while (i < len && !rc) {
        char c = in[i];
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
            rc = apg_buf_append(out, &c, 1);
            i++;
            continue;
        }
        /* Past MAX_DEPTH the stack is not kept (nor read): such input is
         * passed through for jansson to refuse. */
        if (want_key && depth > 0 && depth <= MAX_DEPTH && stack[depth - 1] == '{') {
            want_key = false;
            if (c == '"' || c == '\'') {
                i = copy_string(in, len, i, out, &rc);
                continue;
            }
            if (c == '{' || c == '[') {
                size_t e = skip_composite(in, len, i);
                rc = put_quoted(out, in + i, e - i);
                i = e;
                continue;
            }
            if (is_bare(c)) {
                size_t e = i;
                while (e < len && is_bare(in[e]))
                    e++;
                rc = put_quoted(out, in + i, e - i);
                i = e;
                continue;
            }
            /* '}' of an empty object and anything odd: fall through. */
        }
        if (c == '"' || c == '\'') {
            i = copy_string(in, len, i, out, &rc);
            continue;
        }
        if (c == '{' || c == '[') {
            if (depth < MAX_DEPTH)
                stack[depth] = c;
            depth++;
            want_key = c == '{';
        } else if (c == '}' || c == ']') {
            if (depth > 0)
                depth--;
            want_key = false;
        } else if (c == ',') {
            want_key = depth > 0 && depth <= MAX_DEPTH && stack[depth - 1] == '{';
        }
        rc = apg_buf_append(out, &c, 1);
        i++;
    }
    return rc;
}

static apg_err_t parse(const char *path, json_t **out, char *err, size_t errlen)
{
    struct apg_buf raw = APG_BUF_INIT, norm = APG_BUF_INIT;
    apg_err_t rc = apg_file_read(path, &raw, err, errlen);
    if (rc) {
        apg_buf_free(&raw);
        return rc;
    }
    rc = apg_json_normalize((const char *)raw.b_data, raw.b_len, &norm);
    if (!rc) {
        json_error_t je;
        *out = json_loadb((const char *)norm.b_data, norm.b_len, JSON_DECODE_ANY, &je);
        if (!*out)
            rc = apg_errf(APG_ECORRUPT, err, errlen, "%s: line %d column %d: %s", path, je.line,
                          je.column, je.text);
    }
    apg_buf_free(&raw);
    apg_buf_free(&norm);
    return rc;
}

apg_err_t apg_json_read_file(const char *path, json_t **out, char *err, size_t errlen)
{
    *out = NULL;
    char e1[512] = "";
    apg_err_t rc = parse(path, out, e1, sizeof(e1));
    if (!rc)
        return APG_OK;
    size_t pl = strlen(path);
    char *bak = apg_malloc(pl + 5);
    if (!bak)
        return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    snprintf(bak, pl + 5, "%s.bak", path);
    char e2[512] = "";
    apg_err_t rc2 = parse(bak, out, e2, sizeof(e2));
    if (!rc2) {
        if (rc != APG_ENOTFOUND)
            apg_log_warn("json", "%s is unreadable (%s); using %s", path, e1, bak);
        else
            apg_log_warn("json", "%s is missing; using %s", path, bak);
    } else if (rc == APG_ENOTFOUND && rc2 == APG_ENOTFOUND) {
        rc2 = apg_errf(APG_ENOTFOUND, err, errlen, "%s does not exist", path);
    } else {
        rc2 = apg_errf(
            rc == APG_ENOTFOUND ? rc2 : rc, err, errlen, "%s%s%s", rc == APG_ENOTFOUND ? "" : e1,
            rc == APG_ENOTFOUND ? "" : "; backup: ", rc2 == APG_ENOTFOUND ? "no backup file" : e2);
    }
    apg_free(bak);
    return rc2;
}

json_t *apg_json_parse(const char *buf, size_t len, char *err, size_t errlen)
{
    struct apg_buf norm = APG_BUF_INIT;
    if (apg_json_normalize(buf, len, &norm)) {
        apg_buf_free(&norm);
        apg_errf(APG_ENOMEM, err, errlen, "out of memory parsing JSON");
        return NULL;
    }
    json_error_t je;
    json_t *j = json_loadb((const char *)norm.b_data, norm.b_len, JSON_DECODE_ANY, &je);
    apg_buf_free(&norm);
    if (!j)
        apg_errf(APG_EPROTO, err, errlen, "bad JSON at line %d column %d: %s", je.line, je.column,
                 je.text);
    return j;
}

int64_t apg_json_i64(const json_t *j, int64_t dflt)
{
    if (json_is_integer(j))
        return json_integer_value(j);
    if (json_is_real(j))
        return (int64_t)json_real_value(j);
    const char *s = json_string_value(j);
    if (!s || !s[0])
        return dflt;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*end != 0 && *end != '.' && *end != 'e' && *end != 'E')
        return dflt;
    return v;
}

const char *apg_json_get_str(const json_t *obj, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : dflt;
}

int64_t apg_json_get_i64(const json_t *obj, const char *key, int64_t dflt)
{
    return apg_json_i64(json_object_get(obj, key), dflt);
}

bool apg_json_get_bool(const json_t *obj, const char *key, bool dflt)
{
    const json_t *j = json_object_get(obj, key);
    if (json_is_boolean(j))
        return json_is_true(j);
    if (json_is_string(j))
        return strcasecmp(json_string_value(j), "true") == 0;
    return dflt;
}

apg_err_t apg_json_put_str(struct apg_buf *b, const char *s)
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

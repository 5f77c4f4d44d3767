/* Metadata files: a reader tolerant of fastjson's non-standard map keys,
 * with fallback to the .bak that apg_file_write_atomic keeps. See meta.h.
 *
 * The normaliser is a single pass with a small stack of open containers. In an
 * object, after '{' or ',', the next token is a key: a quoted string is copied,
 * an unquoted token (digits, letters, '-', '.') is quoted, and a '{' or '['
 * starts a composite key whose balanced text is captured and emitted as one
 * JSON string. Everything else is copied byte for byte. */
#include "store/meta.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common/file.h"
#include "common/log.h"
#include "common/mem.h"

#define MAX_DEPTH 256

/* Index just past the string starting at in[i] == '"'. */
static size_t skip_string(const char *in, size_t len, size_t i)
{
    for (i++; i < len; i++) {
        if (in[i] == '\\')
            i++;
        else if (in[i] == '"')
            return i + 1;
    }
    return len;
}

/* Index just past the balanced container starting at in[i]. */
static size_t skip_composite(const char *in, size_t len, size_t i)
{
    int depth = 0;
    while (i < len) {
        char c = in[i];
        if (c == '"') {
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

apg_err_t apg_meta_normalize(const char *in, size_t len, struct apg_buf *out)
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
        if (want_key && depth > 0 && stack[depth - 1] == '{') {
            want_key = false;
            if (c == '"') {
                size_t e = skip_string(in, len, i);
                rc = apg_buf_append(out, in + i, e - i);
                i = e;
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
        if (c == '"') {
            size_t e = skip_string(in, len, i);
            rc = apg_buf_append(out, in + i, e - i);
            i = e;
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
    rc = apg_meta_normalize((const char *)raw.b_data, raw.b_len, &norm);
    if (!rc) {
        json_error_t je;
        *out = json_loadb((const char *)norm.b_data, norm.b_len, 0, &je);
        if (!*out)
            rc = apg_errf(APG_ECORRUPT, err, errlen, "%s: line %d column %d: %s", path, je.line,
                          je.column, je.text);
    }
    apg_buf_free(&raw);
    apg_buf_free(&norm);
    return rc;
}

apg_err_t apg_meta_read(const char *path, json_t **out, char *err, size_t errlen)
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
            apg_log_warn("meta", "%s is unreadable (%s); using %s", path, e1, bak);
        else
            apg_log_warn("meta", "%s is missing; using %s", path, bak);
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

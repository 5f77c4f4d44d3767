/* The XML reader and writer of xml.h.
 *
 * Design. One pass over the bytes with an index; the reader keeps no state
 * beyond the position, the root's name and the child being read, so it is
 * a recursive-descent over a fixed two-level grammar:
 *   doc   := misc* '<' root attrs '>' (misc | child | space)* '</' root '>' misc*
 *   child := '<' name attrs ('/>' | '>' text* '</' name '>')
 *   text  := chars | '<![CDATA[' ... ']]>' | '&' ref ';'
 * where misc is white space, a comment or a processing instruction (the
 * XML declaration among them). Names are at most APG_XML_MAX_NAME - 1
 * bytes of letters, digits and "_-.:". Decoded numeric references are
 * written as UTF-8 (at most U+10FFFF, not a surrogate, not NUL).
 *
 * Threads: pure, any thread. */
#include "http/xml.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

struct rd {
    const uint8_t *p;
    size_t n, i;
    char *err;
    size_t errlen;
};

static apg_err_t bad(struct rd *r, const char *why)
{
    return apg_errf(APG_EINVAL, r->err, r->errlen, "malformed XML at byte %zu: %s", r->i, why);
}

static bool at(const struct rd *r, const char *s)
{
    size_t k = strlen(s);
    return r->n - r->i >= k && memcmp(r->p + r->i, s, k) == 0;
}

static bool is_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_name(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.' || c == ':' || c >= 0x80;
}

static void skip_space(struct rd *r)
{
    while (r->i < r->n && is_space(r->p[r->i]))
        r->i++;
}

/* Skips to just after the string end; false when it never comes. */
static bool skip_past(struct rd *r, const char *end)
{
    size_t k = strlen(end);
    while (r->n - r->i >= k) {
        if (memcmp(r->p + r->i, end, k) == 0) {
            r->i += k;
            return true;
        }
        r->i++;
    }
    r->i = r->n;
    return false;
}

/* White space, comments and processing instructions. */
static apg_err_t skip_misc(struct rd *r)
{
    for (;;) {
        skip_space(r);
        if (at(r, "<!--")) {
            if (!skip_past(r, "-->"))
                return bad(r, "unterminated comment");
        } else if (at(r, "<?")) {
            if (!skip_past(r, "?>"))
                return bad(r, "unterminated processing instruction");
        } else if (at(r, "<!")) {
            return bad(r, "DOCTYPE and other declarations are not accepted");
        } else {
            return APG_OK;
        }
    }
}

static apg_err_t read_name(struct rd *r, char out[APG_XML_MAX_NAME])
{
    size_t k = 0;
    while (r->i < r->n && is_name(r->p[r->i])) {
        if (k == APG_XML_MAX_NAME - 1)
            return bad(r, "element name too long");
        out[k++] = (char)r->p[r->i++];
    }
    out[k] = '\0';
    return k ? APG_OK : bad(r, "element name expected");
}

/* After the name of a start tag: attributes up to '>' or '/>'. *empty:
 * it was '/>'. */
static apg_err_t skip_attrs(struct rd *r, bool *empty)
{
    for (;;) {
        skip_space(r);
        if (r->i >= r->n)
            return bad(r, "unterminated start tag");
        uint8_t c = r->p[r->i];
        if (c == '>') {
            r->i++;
            *empty = false;
            return APG_OK;
        }
        if (c == '/' && r->i + 1 < r->n && r->p[r->i + 1] == '>') {
            r->i += 2;
            *empty = true;
            return APG_OK;
        }
        char an[APG_XML_MAX_NAME];
        if (read_name(r, an))
            return bad(r, "attribute name expected");
        skip_space(r);
        if (r->i >= r->n || r->p[r->i] != '=')
            return bad(r, "'=' expected after an attribute name");
        r->i++;
        skip_space(r);
        if (r->i >= r->n || (r->p[r->i] != '"' && r->p[r->i] != '\''))
            return bad(r, "quoted attribute value expected");
        uint8_t q = r->p[r->i++];
        const uint8_t *e = memchr(r->p + r->i, q, r->n - r->i);
        if (!e)
            return bad(r, "unterminated attribute value");
        r->i = (size_t)(e - r->p) + 1;
    }
}

static apg_err_t put_utf8(struct apg_buf *o, uint32_t cp)
{
    uint8_t b[4];
    size_t k;
    if (cp < 0x80) {
        b[0] = (uint8_t)cp;
        k = 1;
    } else if (cp < 0x800) {
        b[0] = (uint8_t)(0xC0 | (cp >> 6));
        b[1] = (uint8_t)(0x80 | (cp & 0x3F));
        k = 2;
    } else if (cp < 0x10000) {
        b[0] = (uint8_t)(0xE0 | (cp >> 12));
        b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (uint8_t)(0x80 | (cp & 0x3F));
        k = 3;
    } else {
        b[0] = (uint8_t)(0xF0 | (cp >> 18));
        b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (uint8_t)(0x80 | (cp & 0x3F));
        k = 4;
    }
    return apg_buf_append(o, b, k);
}

/* At '&': decodes one reference into o. */
static apg_err_t read_ref(struct rd *r, struct apg_buf *o)
{
    static const struct {
        const char *name;
        char c;
    } named[] = {{"&lt;", '<'}, {"&gt;", '>'}, {"&amp;", '&'}, {"&quot;", '"'}, {"&apos;", '\''}};
    for (size_t k = 0; k < sizeof(named) / sizeof(named[0]); k++)
        if (at(r, named[k].name)) {
            r->i += strlen(named[k].name);
            return apg_buf_append(o, &named[k].c, 1);
        }
    if (!at(r, "&#"))
        return bad(r, "unknown entity reference");
    r->i += 2;
    bool hex = r->i < r->n && r->p[r->i] == 'x';
    r->i += hex;
    uint32_t cp = 0;
    size_t digits = 0;
    while (r->i < r->n && r->p[r->i] != ';') {
        uint8_t c = r->p[r->i];
        uint32_t d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (hex && c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (hex && c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return bad(r, "bad character reference");
        cp = cp * (hex ? 16 : 10) + d;
        if (++digits > 8 || cp > 0x10FFFF)
            return bad(r, "character reference out of range");
        r->i++;
    }
    if (r->i >= r->n || digits == 0 || cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF))
        return bad(r, "bad character reference");
    r->i++;
    return put_utf8(o, cp);
}

/* The text of a child up to its end tag '</'. */
static apg_err_t read_text(struct rd *r, struct apg_buf *o)
{
    while (r->i < r->n) {
        uint8_t c = r->p[r->i];
        if (c == '<') {
            if (at(r, "</"))
                return APG_OK;
            if (at(r, "<![CDATA[")) {
                r->i += 9;
                size_t s = r->i;
                if (!skip_past(r, "]]>"))
                    return bad(r, "unterminated CDATA section");
                apg_err_t e = apg_buf_append(o, r->p + s, r->i - 3 - s);
                if (e)
                    return e;
                continue;
            }
            if (at(r, "<!--")) {
                if (!skip_past(r, "-->"))
                    return bad(r, "unterminated comment");
                continue;
            }
            return bad(r, "an element inside a value element");
        }
        if (c == '&') {
            apg_err_t e = read_ref(r, o);
            if (e)
                return e;
            continue;
        }
        size_t s = r->i;
        while (r->i < r->n && r->p[r->i] != '<' && r->p[r->i] != '&')
            r->i++;
        apg_err_t e = apg_buf_append(o, r->p + s, r->i - s);
        if (e)
            return e;
    }
    return bad(r, "unterminated element");
}

static apg_err_t end_tag(struct rd *r, const char *name)
{
    char en[APG_XML_MAX_NAME];
    r->i += 2; /* "</" */
    if (read_name(r, en))
        return APG_EINVAL;
    if (strcmp(en, name) != 0)
        return bad(r, "end tag does not match its start tag");
    skip_space(r);
    if (r->i >= r->n || r->p[r->i] != '>')
        return bad(r, "'>' expected");
    r->i++;
    return APG_OK;
}

apg_err_t apg_xml_parse(const uint8_t *p, size_t n, struct apg_xml_doc *doc, struct apg_buf *vals,
                        char *err, size_t errlen)
{
    struct rd r = {.p = p, .n = n, .err = err, .errlen = errlen};
    apg_err_t e;
    doc->xd_n = 0;
    doc->xd_root[0] = '\0';
    apg_buf_reset(vals);
    if (n >= 3 && p[0] == 0xEF && p[1] == 0xBB && p[2] == 0xBF) /* UTF-8 byte order mark */
        r.i = 3;
    if ((e = skip_misc(&r)))
        return e;
    if (r.i >= r.n || r.p[r.i] != '<')
        return bad(&r, "root element expected");
    r.i++;
    bool empty;
    if ((e = read_name(&r, doc->xd_root)) || (e = skip_attrs(&r, &empty)))
        return e;
    while (!empty) {
        skip_space(&r);
        if (r.i >= r.n)
            return bad(&r, "unterminated root element");
        if (at(&r, "</")) {
            if ((e = end_tag(&r, doc->xd_root)))
                return e;
            break;
        }
        if (at(&r, "<!--") || at(&r, "<?")) {
            if ((e = skip_misc(&r)))
                return e;
            continue;
        }
        if (r.p[r.i] != '<')
            return bad(&r, "text directly inside the root element");
        if (doc->xd_n == APG_XML_MAX_CHILDREN)
            return bad(&r, "too many elements");
        struct apg_xml_child *c = &doc->xd_c[doc->xd_n];
        r.i++;
        bool cempty;
        if ((e = read_name(&r, c->xc_name)) || (e = skip_attrs(&r, &cempty)))
            return e;
        c->xc_off = vals->b_len;
        if (!cempty && ((e = read_text(&r, vals)) || (e = end_tag(&r, c->xc_name))))
            return e;
        c->xc_len = vals->b_len - c->xc_off;
        doc->xd_n++;
    }
    if ((e = skip_misc(&r)))
        return e;
    if (r.i != r.n)
        return bad(&r, "bytes after the root element");
    return APG_OK;
}

apg_err_t apg_xml_put_text(struct apg_buf *o, const char *s, size_t len)
{
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *rep = NULL;
        switch (c) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&apos;";
            break;
        default:
            if (c >= 0x20 || c == '\t' || c == '\n' || c == '\r')
                continue;
            rep = ""; /* not representable in XML 1.0 */
        }
        if (i > run && apg_buf_append(o, s + run, i - run))
            return APG_ENOMEM;
        if (apg_buf_append_str(o, rep))
            return APG_ENOMEM;
        run = i + 1;
    }
    return len > run ? apg_buf_append(o, s + run, len - run) : APG_OK;
}

apg_err_t apg_xml_put_elem(struct apg_buf *o, const char *name, const char *s, size_t len)
{
    if (apg_buf_printf(o, "<%s>", name) || apg_xml_put_text(o, s, len) ||
        apg_buf_printf(o, "</%s>", name))
        return APG_ENOMEM;
    return APG_OK;
}

/* HTTP/1.1 request parsing: where a request ends and what it says.
 *
 * Design. The parser is Node's former http_parser (Debian's libhttp-parser,
 * a callback parser with no allocation and no threads of its own), run
 * over one contiguous buffer at a time: the net layer cuts whole messages
 * (net/codec.h) and keeps no state between reads, so every call starts a
 * fresh parser on the bytes buffered so far. That stays cheap because the
 * header block is bounded (APG_HTTP_MAX_HEADER) and a body is never
 * parsed: its length comes from Content-Length and the bytes are skipped.
 *
 *  1. No blank line (CRLF CRLF) yet: the first KiB so far is fed to the
 *     parser only to refuse garbage early (400 at the first byte that
 *     cannot be HTTP), and more than APG_HTTP_MAX_HEADER bytes is 431.
 *  2. The header block is parsed whole; the callbacks record the method,
 *     target and fields as pointers into the buffer. A request line or
 *     field the parser refuses, duplicate or conflicting Content-Length
 *     (request smuggling), bare-LF line ends: 400. A chunked body: 411
 *     (a client that can send Content-Length must). Too many fields: 431.
 *     A target over APG_HTTP_MAX_URL: 414. Content-Length over max_body:
 *     413, answered at once without reading the body.
 *  3. Header block + Content-Length bytes buffered: one whole request.
 *
 * A refused request covers every byte given: the connection answers it and
 * closes, so what follows is never interpreted (no desync with a pipelining
 * client). Pure: no clock, no socket, no global. */
#define _GNU_SOURCE /* memmem */
#include "http/http.h"

#include <http_parser.h>
#include <string.h>
#include <strings.h>

struct pstate {
    struct apg_http_req *ps_req;
    const char *ps_url;
    size_t ps_url_len;
    bool ps_in_value; /* the last callback was a value (a new name starts a field) */
    bool ps_overflow; /* more than APG_HTTP_MAX_HEADERS fields */
    bool ps_done;     /* on_headers_complete ran */
};

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct pstate *ps = p->data;
    if (!ps->ps_url)
        ps->ps_url = at;
    ps->ps_url_len = (size_t)(at + len - ps->ps_url);
    return 0;
}

static int on_hname(http_parser *p, const char *at, size_t len)
{
    struct pstate *ps = p->data;
    struct apg_http_req *r = ps->ps_req;
    if (ps->ps_in_value || r->hr_nhdrs == 0) {
        if (r->hr_nhdrs == APG_HTTP_MAX_HEADERS) {
            ps->ps_overflow = true;
            return 0;
        }
        struct apg_http_hdr *h = &r->hr_hdrs[r->hr_nhdrs++];
        h->hh_name = at;
        h->hh_name_len = len;
        h->hh_val = "";
        h->hh_val_len = 0;
        ps->ps_in_value = false;
        return 0;
    }
    if (!ps->ps_overflow) /* one buffer: a name arrives whole, but be exact */
        r->hr_hdrs[r->hr_nhdrs - 1].hh_name_len =
            (size_t)(at + len - r->hr_hdrs[r->hr_nhdrs - 1].hh_name);
    return 0;
}

static int on_hvalue(http_parser *p, const char *at, size_t len)
{
    struct pstate *ps = p->data;
    struct apg_http_req *r = ps->ps_req;
    if (ps->ps_overflow || r->hr_nhdrs == 0)
        return 0;
    struct apg_http_hdr *h = &r->hr_hdrs[r->hr_nhdrs - 1];
    if (!ps->ps_in_value) {
        h->hh_val = at;
        h->hh_val_len = len;
    } else {
        h->hh_val_len = (size_t)(at + len - h->hh_val);
    }
    ps->ps_in_value = true;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct pstate *ps = p->data;
    ps->ps_done = true;
    return 0;
}

static const http_parser_settings settings = {
    .on_url = on_url,
    .on_header_field = on_hname,
    .on_header_value = on_hvalue,
    .on_headers_complete = on_headers_complete,
};

#define GARBAGE_CHECK 1024

static void refuse(struct apg_http_req *r, size_t len, int status, const char *why)
{
    r->hr_len = len;
    r->hr_status = status;
    r->hr_error = why;
}

static const uint8_t *find_blank_line(const uint8_t *buf, size_t len)
{
    const uint8_t *p = memmem(buf, len, "\r\n\r\n", 4);
    return p ? p + 4 : NULL;
}

void apg_http_parse(const uint8_t *buf, size_t len, size_t max_body, struct apg_http_req *r,
                    size_t *want)
{
    r->hr_len = 0;
    r->hr_status = 0;
    r->hr_error = NULL;
    r->hr_nhdrs = 0;
    r->hr_body = NULL;
    r->hr_body_len = 0;
    if (want)
        *want = 0;
    if (len == 0)
        return;
    size_t scan = len < APG_HTTP_MAX_HEADER ? len : APG_HTTP_MAX_HEADER;
    const uint8_t *end = find_blank_line(buf, scan);
    size_t hlen = end ? (size_t)(end - buf) : scan;

    /* Without the blank line only the first GARBAGE_CHECK bytes are parsed:
     * enough to refuse what is not HTTP, and a client that sends its header
     * block a byte per packet costs a memmem per read, not a parse of all
     * it sent so far. */
    size_t check = !end && hlen > GARBAGE_CHECK ? GARBAGE_CHECK : hlen;
    struct pstate ps = {.ps_req = r};
    http_parser p;
    http_parser_init(&p, HTTP_REQUEST);
    p.data = &ps;
    size_t n = http_parser_execute(&p, &settings, (const char *)buf, check);
    enum http_errno pe = HTTP_PARSER_ERRNO(&p);
    if (pe != HPE_OK || n != check) {
        refuse(r, len, 400, pe != HPE_OK ? http_errno_description(pe) : "malformed request");
        return;
    }
    if (!end) {
        if (ps.ps_done)
            refuse(r, len, 400, "header lines must end in CRLF");
        else if (len > APG_HTTP_MAX_HEADER)
            refuse(r, len, 431, "request line and headers exceed 16 KiB");
        return;
    }
    if (!ps.ps_done) {
        refuse(r, len, 400, "malformed header block");
        return;
    }
    if (ps.ps_overflow) {
        refuse(r, len, 431, "more than 64 header fields");
        return;
    }
    if (ps.ps_url_len > APG_HTTP_MAX_URL) {
        refuse(r, len, 414, "request target longer than 8 KiB");
        return;
    }
    if (p.flags & F_CHUNKED) {
        refuse(r, len, 411, "chunked request bodies are not accepted; send Content-Length");
        return;
    }
    r->hr_method = http_method_str((enum http_method)p.method);
    r->hr_major = p.http_major;
    r->hr_minor = p.http_minor;
    r->hr_keep_alive = http_should_keep_alive(&p) != 0;
    const char *q = ps.ps_url ? memchr(ps.ps_url, '?', ps.ps_url_len) : NULL;
    r->hr_path = ps.ps_url ? ps.ps_url : "";
    r->hr_path_len = q ? (size_t)(q - ps.ps_url) : ps.ps_url_len;
    r->hr_query = q ? q + 1 : NULL;
    r->hr_query_len = q ? ps.ps_url_len - r->hr_path_len - 1 : 0;
    uint64_t body = (p.flags & F_CONTENTLENGTH) ? p.content_length : 0;
    if (body > max_body) {
        refuse(r, len, 413, "request body over the limit");
        return;
    }
    size_t total = hlen + (size_t)body;
    if (len < total) {
        if (want)
            *want = total;
        return;
    }
    r->hr_body = buf + hlen;
    r->hr_body_len = (size_t)body;
    r->hr_len = total;
}

const char *apg_http_header(const struct apg_http_req *req, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    for (int i = 0; i < req->hr_nhdrs; i++) {
        const struct apg_http_hdr *h = &req->hr_hdrs[i];
        if (h->hh_name_len == nl && strncasecmp(h->hh_name, name, nl) == 0) {
            if (len)
                *len = h->hh_val_len;
            return h->hh_val;
        }
    }
    return NULL;
}

const char *apg_http_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 403:
        return "Forbidden";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
}

/* libFuzzer harness for the HTTP/1.1 request parser (src/http/http_codec.c),
 * which cuts and reads every request on the broker's HTTP port: any input
 * gives either "incomplete" or one message, never a crash or a read past
 * the input (it is copied to an exact-size buffer so ASan sees such reads).
 * Checked: a message is never longer than the input; a refused one covers
 * the whole input and names a 4xx; an accepted one's path, headers and
 * body lie inside it, the body ends where the message does, and parsing
 * exactly the message's bytes again gives the same length and status (the
 * server cuts a message and then decodes those bytes alone). Seeds
 * (tests/fuzz/corpus/http): a scrape, pipelined and keep-alive requests, a
 * body, and one request of each refused kind. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"

#define MAX_BODY 4096

static void inside(const uint8_t *buf, size_t len, const void *p, size_t n)
{
    const uint8_t *q = p;
    if (n && (q < buf || q + n > buf + len))
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    static struct apg_http_req r, again;
    size_t want = 0;
    apg_http_parse(buf, size, MAX_BODY, &r, &want);
    if (r.hr_len > size)
        __builtin_trap();
    if (r.hr_len == 0) {
        if (r.hr_status || (want && want <= size))
            __builtin_trap();
    } else if (r.hr_status) {
        if (r.hr_status < 400 || r.hr_status > 499 || r.hr_len != size || !r.hr_error)
            __builtin_trap();
    } else {
        inside(buf, r.hr_len, r.hr_path, r.hr_path_len);
        if (r.hr_query)
            inside(buf, r.hr_len, r.hr_query, r.hr_query_len);
        for (int i = 0; i < r.hr_nhdrs; i++) {
            inside(buf, r.hr_len, r.hr_hdrs[i].hh_name, r.hr_hdrs[i].hh_name_len);
            inside(buf, r.hr_len, r.hr_hdrs[i].hh_val, r.hr_hdrs[i].hh_val_len);
        }
        if (r.hr_body_len > MAX_BODY ||
            (r.hr_body_len && r.hr_body + r.hr_body_len != buf + r.hr_len))
            __builtin_trap();
        (void)apg_http_header(&r, "content-length", NULL);
    }
    if (r.hr_len) {
        apg_http_parse(buf, r.hr_len, MAX_BODY, &again, NULL);
        if (again.hr_len != r.hr_len || again.hr_status != r.hr_status)
            __builtin_trap();
    }
    free(buf);
    return 0;
}

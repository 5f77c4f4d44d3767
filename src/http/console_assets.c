/* GET / and GET /assets/<file>: the web console (web/), served from the
 * copy embedded in the binary at build time (console_assets.h), so
 * `apogee` stays one file and the console needs nothing from outside the
 * broker's HTTP port (no CDN).
 *
 * Caching: each file carries an ETag (a hash of its bytes taken at build
 * time) and "Cache-Control: no-cache", so a browser revalidates and gets
 * 304 Not Modified, with no body, until the binary serves other bytes.
 * The extra header lines ride in the content type argument, which the
 * server writes verbatim as one header block line (http.h).
 *
 * Threads: the HTTP port's loop thread; the table is constant. */
#include <stdio.h>
#include <string.h>

#include "http/admin_api.h"
#include "http/console_assets.h"

void apg_console_handle(struct apg_http_call *call, const struct apg_http_req *req, void *ud)
{
    (void)ud;
    const struct apg_console_asset *a = NULL;
    for (size_t i = 0; i < apg_console_n_assets && !a; i++) {
        const struct apg_console_asset *c = &apg_console_assets[i];
        if (strlen(c->ca_path) == req->hr_path_len &&
            memcmp(c->ca_path, req->hr_path, req->hr_path_len) == 0)
            a = c;
    }
    if (!a) {
        static const char msg[] = "404 Not Found: no such console file\n";
        apg_http_reply(call, 404, "text/plain; charset=utf-8", msg, sizeof(msg) - 1);
        return;
    }
    char ctype[256];
    snprintf(ctype, sizeof(ctype), "%s\r\nETag: %s\r\nCache-Control: no-cache", a->ca_content_type,
             a->ca_etag);
    size_t n;
    const char *inm = apg_http_header(req, "If-None-Match", &n);
    if (inm && n == strlen(a->ca_etag) && memcmp(inm, a->ca_etag, n) == 0) {
        apg_http_reply(call, 304, ctype, "", 0);
        return;
    }
    apg_http_reply(call, 200, ctype, a->ca_data, a->ca_len);
}

/* The HTTP/1.1 server on the net loops: a codec that cuts requests
 * (apg_http_parse), routing by method and exact path, and answers written
 * into the connection's output buffer.
 *
 * Design. The codec below plugs into net.c like remoting and HTTP/2 do, so
 * the slow-peer rules hold per request: a request must be complete within
 * frame_timeout_ms of its first byte (a slow client is closed like a slow
 * remoting frame), must keep growing at frame_min_bytes_per_s, and the
 * bytes of incomplete requests over all connections are capped; a
 * keep-alive connection idle for idle_timeout_s closes. Memory per
 * connection is bounded by the largest request (header block + max_body).
 * Requests are answered in order on the loop thread, each before the next
 * is parsed, so pipelined requests get their answers in order. A request
 * the codec refuses is answered with its 4xx and "Connection: close", and
 * the connection closes once that answer is written; so does a request
 * that asked for close (or HTTP/1.0 without keep-alive). Answers carry
 * Content-Length (a streamed answer reserves the field and fills it in at
 * the end, the value padded with spaces, which the grammar allows as
 * trailing whitespace), so a body is never copied to learn its length.
 *
 * Threads: each connection lives on one loop thread; handlers run there.
 * Invariant: a call is answered exactly once (the server answers 500 for a
 * handler that returned without answering). */
#include "http/http.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/mem.h"
#include "net/net_int.h" /* the codec contract: apg_net_conn_out */

#define HTTP_DEFAULT_MAX_BODY (4u * 1024 * 1024)
#define CLEN_WIDTH 20 /* room for any size_t in decimal */

struct apg_http_server {
    struct apg_net_server *hs_net;
    const struct apg_http_route *hs_routes;
    size_t hs_n_routes;
    size_t hs_max_body;
    void *hs_ud;
    struct apg_log_limit hs_refused; /* one INFO line a second for refused requests */
};

struct apg_http_call {
    struct apg_http_server *hc_srv;
    struct apg_conn *hc_conn;
    const struct apg_http_req *hc_req;
    bool hc_answered;
    bool hc_close; /* the answer ends the connection */
    bool hc_head;  /* HEAD: the body is measured, then dropped */
    struct apg_buf *hc_out;
    size_t hc_clen_at; /* offset of the Content-Length digits in hc_out */
    size_t hc_body_at; /* offset of the body in hc_out */
};

/* Per loop: the decode area and the Date header of the current second. */
struct hloop {
    struct apg_http_req hl_req;
    size_t hl_max_body;
    time_t hl_date_sec;
    char hl_date[40];
};

static size_t max_body_of(size_t max_msg)
{
    return max_msg > APG_HTTP_MAX_HEADER ? max_msg - APG_HTTP_MAX_HEADER : 0;
}

static apg_err_t hc_loop_new(struct apg_net_loop *l, void **state)
{
    struct hloop *hl = apg_calloc(1, sizeof(*hl));
    if (!hl)
        return APG_ENOMEM;
    hl->hl_max_body = max_body_of(l->l_max_frame);
    *state = hl;
    return APG_OK;
}

static void hc_loop_free(void *state)
{
    apg_free(state);
}

static apg_err_t hc_frame(const uint8_t *buf, size_t len, size_t max_msg, size_t *mlen, char *err,
                          size_t errlen)
{
    struct apg_http_req r;
    apg_http_parse(buf, len, max_body_of(max_msg), &r, NULL);
    *mlen = r.hr_len;
    return APG_OK;
}

static size_t hc_read_hint(const uint8_t *buf, size_t len, size_t max_msg)
{
    struct apg_http_req r;
    size_t want = 0;
    apg_http_parse(buf, len, max_body_of(max_msg), &r, &want);
    return want > len ? want : 0;
}

static apg_err_t hc_decode(void *state, const uint8_t *buf, size_t len, void **msg, char *err,
                           size_t errlen)
{
    struct hloop *hl = state;
    apg_http_parse(buf, len, hl->hl_max_body, &hl->hl_req, NULL);
    if (hl->hl_req.hr_len != len) /* the same bytes parse the same way: cannot happen */
        return apg_errf(APG_EPROTO, err, errlen, "request length changed between cut and decode");
    *msg = hl;
    return APG_OK;
}

static const char *date_now(struct hloop *hl)
{
    time_t now = time(NULL);
    if (now != hl->hl_date_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(hl->hl_date, sizeof(hl->hl_date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        hl->hl_date_sec = now;
    }
    return hl->hl_date;
}

static void write_head(struct apg_http_call *call, int status, const char *ctype)
{
    struct hloop *hl = call->hc_conn->c_loop->l_codec_state;
    struct apg_buf *o = call->hc_out;
    apg_buf_printf(o,
                   "HTTP/1.1 %d %s\r\nServer: apogee\r\nDate: %s\r\nContent-Type: %s\r\n%s"
                   "Content-Length: ",
                   status, apg_http_reason(status), date_now(hl), ctype,
                   call->hc_close ? "Connection: close\r\n" : "");
    call->hc_clen_at = o->b_len;
    apg_buf_printf(o, "%*s\r\n\r\n", CLEN_WIDTH, "");
    call->hc_body_at = o->b_len;
}

struct apg_buf *apg_http_begin(struct apg_http_call *call, int status, const char *content_type)
{
    if (call->hc_answered)
        return NULL;
    call->hc_answered = true;
    call->hc_out = apg_net_conn_out(call->hc_conn);
    if (!call->hc_out)
        return NULL;
    write_head(call, status, content_type);
    return call->hc_out;
}

void apg_http_end(struct apg_http_call *call)
{
    struct apg_buf *o = call->hc_out;
    if (!o)
        return;
    if (o->b_len < call->hc_body_at) { /* out of memory on the way: cut the connection */
        apg_conn_close(call->hc_conn, "out of memory writing an HTTP answer");
        call->hc_out = NULL;
        return;
    }
    char num[CLEN_WIDTH + 1];
    int n = snprintf(num, sizeof(num), "%zu", o->b_len - call->hc_body_at);
    memcpy(o->b_data + call->hc_clen_at, num, (size_t)n);
    if (call->hc_head)
        o->b_len = call->hc_body_at;
    apg_net_conn_out_done(call->hc_conn);
    call->hc_out = NULL;
}

const char *apg_http_peer(const struct apg_http_call *call)
{
    return apg_conn_peer(call->hc_conn);
}

apg_err_t apg_http_reply(struct apg_http_call *call, int status, const char *content_type,
                         const void *body, size_t len)
{
    struct apg_buf *o = apg_http_begin(call, status, content_type);
    if (!o)
        return APG_ECLOSED;
    apg_err_t e = apg_buf_append(o, body, len);
    apg_http_end(call);
    return e;
}

static void reply_text(struct apg_http_call *call, int status, const char *text)
{
    char body[256];
    int n = snprintf(body, sizeof(body), "%d %s: %s\n", status, apg_http_reason(status), text);
    apg_http_reply(call, status, "text/plain; charset=utf-8", body, (size_t)n);
}

/* A pattern matches its own path only, or, when it ends in '*', every path
 * that starts with what comes before the '*' (the handler reads the rest
 * from req->hr_path). */
static bool route_path_matches(const char *pattern, const char *path, size_t path_len)
{
    size_t n = strlen(pattern);
    if (n > 0 && pattern[n - 1] == '*')
        return path_len >= n - 1 && memcmp(pattern, path, n - 1) == 0;
    return n == path_len && memcmp(pattern, path, n) == 0;
}

static void route(struct apg_http_call *call, const struct apg_http_req *req)
{
    struct apg_http_server *hs = call->hc_srv;
    bool path_known = false;
    for (size_t i = 0; i < hs->hs_n_routes; i++) {
        const struct apg_http_route *rt = &hs->hs_routes[i];
        if (!route_path_matches(rt->hr_route_path, req->hr_path, req->hr_path_len))
            continue;
        path_known = true;
        bool head = strcmp(req->hr_method, "HEAD") == 0;
        if (strcmp(rt->hr_route_method, req->hr_method) != 0 &&
            !(head && strcmp(rt->hr_route_method, "GET") == 0))
            continue;
        rt->hr_route_fn(call, req, hs->hs_ud);
        if (!call->hc_answered)
            reply_text(call, 500, "the handler gave no answer");
        return;
    }
    if (path_known)
        reply_text(call, 405, "method not allowed on this path");
    else
        reply_text(call, 404, "no such path");
}

static bool hc_dispatch(struct apg_conn *c, void *msg)
{
    struct apg_net_loop *l = c->c_loop;
    struct hloop *hl = msg;
    const struct apg_http_req *req = &hl->hl_req;
    if (c->c_drain_close) /* pipelined after a request that ended the connection */
        return false;
    struct apg_http_call call = {
        .hc_srv = l->l_ud,
        .hc_conn = c,
        .hc_req = req,
        .hc_close = req->hr_status != 0 || !req->hr_keep_alive,
        .hc_head = req->hr_status == 0 && strcmp(req->hr_method, "HEAD") == 0,
    };
    if (req->hr_status) {
        int64_t quiet = 0;
        if (apg_log_limit_hit(&call.hc_srv->hs_refused, (int64_t)uv_now(&l->l_uv), 1000, &quiet))
            apg_log_info(l->l_name, "refusing a request from %s: %d %s (%lld more refused since)",
                         c->c_peer, req->hr_status, req->hr_error, (long long)quiet);
        reply_text(&call, req->hr_status, req->hr_error);
    } else {
        route(&call, req);
    }
    if (call.hc_close)
        apg_conn_close_after_write(c, req->hr_status ? "refused HTTP request answered"
                                                     : "HTTP connection closed by request");
    return true;
}

static const struct apg_net_codec http_codec = {
    .cd_name = "http1",
    .cd_loop_new = hc_loop_new,
    .cd_loop_free = hc_loop_free,
    .cd_frame = hc_frame,
    .cd_read_hint = hc_read_hint,
    .cd_decode = hc_decode,
    .cd_dispatch = hc_dispatch,
};

apg_err_t apg_http_server_start(const struct apg_http_server_opts *opts,
                                struct apg_http_server **out, char *err, size_t errlen)
{
    *out = NULL;
    struct apg_http_server *hs = apg_calloc(1, sizeof(*hs));
    if (!hs)
        return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    hs->hs_routes = opts->routes;
    hs->hs_n_routes = opts->n_routes;
    hs->hs_max_body = opts->max_body ? opts->max_body : HTTP_DEFAULT_MAX_BODY;
    hs->hs_ud = opts->ud;
    struct apg_net_server_opts no = {
        .name = opts->name ? opts->name : "http",
        .host = opts->host,
        .port = opts->port,
        .port_key = opts->port_key,
        .n_loops = opts->n_loops > 0 ? opts->n_loops : 1,
        .codec = &http_codec,
        .max_frame = APG_HTTP_MAX_HEADER + hs->hs_max_body,
        .idle_timeout_s = opts->idle_timeout_s,
        .frame_timeout_ms = opts->frame_timeout_ms,
        .frame_min_bytes_per_s = opts->frame_min_bytes_per_s,
        .max_pending_bytes = opts->max_pending_bytes,
        .ud = hs,
    };
    apg_err_t e = apg_net_server_start(&no, &hs->hs_net, err, errlen);
    if (e) {
        apg_free(hs);
        return e;
    }
    *out = hs;
    return APG_OK;
}

int apg_http_server_port(const struct apg_http_server *srv)
{
    return apg_net_server_port(srv->hs_net);
}

void apg_http_server_stop(struct apg_http_server *srv)
{
    if (!srv)
        return;
    apg_net_server_stop(srv->hs_net);
    apg_free(srv);
}

/* gRPC over h2c on the net loops: an HTTP/2 session per connection
 * (nghttp2), gRPC message framing, unary dispatch by path, status in
 * trailers.
 *
 * Design. The net layer's h2 codec (net/h2_codec.c) cuts whole frames, so
 * the slow-peer rules of remoting (frame deadline, trickle rate, the cap on
 * buffered incomplete frames) hold per HTTP/2 frame; each frame goes into
 * the connection's nghttp2 server session (nghttp2_session_mem_recv) and
 * whatever the session wants to send is appended to the connection's
 * output buffer right after (nghttp2_session_mem_send), written once per
 * loop iteration like every other reply. A request stream collects its
 * DATA (at most max_message + 5 bytes, else RESOURCE_EXHAUSTED); when the
 * client ends the stream the one length-prefixed message is checked
 * (uncompressed, length matching) and handed to the method registered for
 * :path; a path without a method is refused as soon as its headers are
 * complete. A reply is HEADERS (:status 200, content-type application/grpc),
 * one DATA message and trailers with grpc-status 0; a failure is a
 * trailers-only response (grpc-status and a percent-encoded grpc-message in
 * the one HEADERS frame that ends the stream). grpc-timeout is parsed into
 * a deadline on the loop clock; a unary call whose deadline passed before
 * it could run is answered DEADLINE_EXCEEDED.
 *
 * Threads: each connection lives on one loop thread, with its session and
 * streams; handlers run there and answer before they return.
 * Invariants: a stream is answered at most once (gs_answered); a stream's
 * memory is freed when nghttp2 closes it or with its connection. */
#include "proxy/grpc/grpc_server.h"

#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <string.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/mem.h"
#include "net/net_int.h" /* the codec contract: apg_net_conn_out */

#define GRPC_DEFAULT_MAX_MESSAGE (4u * 1024 * 1024)
#define GRPC_MAX_STREAMS 128
#define GRPC_FRAME_MAX 16384 /* SETTINGS_MAX_FRAME_SIZE we keep (the protocol default) */
#define GRPC_PREFIX 5

struct apg_grpc_server {
    struct apg_net_server *gs_net;
    char gs_name[32];
    const struct apg_grpc_method *gs_methods;
    size_t gs_n_methods;
    size_t gs_max_message;
    void *gs_ud;
    nghttp2_session_callbacks *gs_cbs;
};

struct gconn;

struct apg_grpc_call { /* one request stream */
    struct gconn *gs_conn;
    int32_t gs_id;
    bool gs_grpc;     /* content-type application/grpc[+...] */
    bool gs_post;     /* :method POST */
    bool gs_answered; /* response submitted */
    uint64_t gs_deadline;
    char gs_path[128];
    struct apg_buf gs_in;  /* request DATA */
    struct apg_buf gs_out; /* prefixed response message */
    size_t gs_out_off;
    struct apg_grpc_call *gs_prev, *gs_next;
};

struct gconn {
    struct apg_grpc_server *gc_srv;
    struct apg_conn *gc_conn;
    nghttp2_session *gc_h2;
    struct apg_grpc_call *gc_calls;
};

#define NV(n, v)                                                                                   \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NO_COPY_NAME     \
    }

/* ---- grpc-timeout ---- */

apg_err_t apg_grpc_timeout_parse(const char *v, size_t len, uint64_t *ms)
{
    /* TimeoutValue: 1 to 8 ASCII digits; TimeoutUnit: H M S m u n. */
    if (len < 2 || len > 9)
        return APG_EINVAL;
    uint64_t n = 0;
    for (size_t i = 0; i + 1 < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return APG_EINVAL;
        n = n * 10 + (uint64_t)(v[i] - '0');
    }
    switch (v[len - 1]) {
    case 'H':
        *ms = n * 3600000;
        break;
    case 'M':
        *ms = n * 60000;
        break;
    case 'S':
        *ms = n * 1000;
        break;
    case 'm':
        *ms = n;
        break;
    case 'u':
        *ms = (n + 999) / 1000;
        break;
    case 'n':
        *ms = (n + 999999) / 1000000;
        break;
    default:
        return APG_EINVAL;
    }
    return APG_OK;
}

/* ---- output ---- */

/* Moves what the session wants to send into the connection's output. */
static void gconn_flush(struct gconn *g)
{
    for (;;) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(g->gc_h2, &data);
        if (n < 0) {
            apg_conn_close(g->gc_conn, nghttp2_strerror((int)n));
            return;
        }
        if (n == 0)
            break;
        struct apg_buf *out = apg_net_conn_out(g->gc_conn);
        if (!out)
            return;
        if (apg_buf_append(out, data, (size_t)n)) {
            apg_conn_close(g->gc_conn, "out of memory");
            return;
        }
        apg_net_conn_out_done(g->gc_conn);
    }
    if (!nghttp2_session_want_read(g->gc_h2) && !nghttp2_session_want_write(g->gc_h2))
        apg_conn_close(g->gc_conn, "HTTP/2 session ended");
}

static ssize_t call_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                         nghttp2_data_source *src, void *ud)
{
    struct apg_grpc_call *call = src->ptr;
    size_t left = call->gs_out.b_len - call->gs_out_off;
    size_t n = left < len ? left : len;
    memcpy(buf, call->gs_out.b_data + call->gs_out_off, n);
    call->gs_out_off += n;
    if (call->gs_out_off == call->gs_out.b_len) {
        *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        nghttp2_nv tr[] = {NV("grpc-status", "0")};
        if (nghttp2_submit_trailer(s, id, tr, 1))
            return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    return (ssize_t)n;
}

apg_err_t apg_grpc_call_reply(struct apg_grpc_call *call, const uint8_t *msg, size_t len)
{
    if (call->gs_answered)
        return APG_EINVAL;
    if (len > UINT32_MAX)
        return APG_EINVAL;
    uint8_t prefix[GRPC_PREFIX] = {0};
    apg_wbe32(prefix + 1, (uint32_t)len);
    apg_buf_reset(&call->gs_out);
    if (apg_buf_append(&call->gs_out, prefix, sizeof prefix) ||
        apg_buf_append(&call->gs_out, msg, len))
        return apg_grpc_call_fail(call, APG_GRPC_RESOURCE_EXHAUSTED, "out of memory");
    call->gs_answered = true;
    nghttp2_nv hd[] = {NV(":status", "200"), NV("content-type", "application/grpc")};
    nghttp2_data_provider prd = {.source.ptr = call, .read_callback = call_read};
    return nghttp2_submit_response(call->gs_conn->gc_h2, call->gs_id, hd, 2, &prd) ? APG_EIO
                                                                                   : APG_OK;
}

/* grpc-message: printable ASCII except '%' as is, every other byte %XX. */
static void pct_encode(const char *in, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p && o + 4 <= cap; p++) {
        if (*p >= 0x20 && *p <= 0x7e && *p != '%') {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = '\0';
}

apg_err_t apg_grpc_call_fail(struct apg_grpc_call *call, enum apg_grpc_status status,
                             const char *message)
{
    if (call->gs_answered)
        return APG_EINVAL;
    call->gs_answered = true;
    char code[12], msg[512];
    snprintf(code, sizeof code, "%d", (int)status);
    pct_encode(message ? message : "", msg, sizeof msg);
    nghttp2_nv hd[] = {NV(":status", "200"), NV("content-type", "application/grpc"),
                       NV("grpc-status", code), NV("grpc-message", msg)};
    return nghttp2_submit_response(call->gs_conn->gc_h2, call->gs_id, hd, msg[0] ? 4 : 3, NULL)
               ? APG_EIO
               : APG_OK;
}

uint64_t apg_grpc_call_deadline(const struct apg_grpc_call *call)
{
    return call->gs_deadline;
}

const char *apg_grpc_call_peer(const struct apg_grpc_call *call)
{
    return apg_conn_peer(call->gs_conn->gc_conn);
}

/* ---- requests ---- */

static void call_free(struct gconn *g, struct apg_grpc_call *call)
{
    if (call->gs_prev)
        call->gs_prev->gs_next = call->gs_next;
    else
        g->gc_calls = call->gs_next;
    if (call->gs_next)
        call->gs_next->gs_prev = call->gs_prev;
    apg_buf_free(&call->gs_in);
    apg_buf_free(&call->gs_out);
    apg_free(call);
}

static const struct apg_grpc_method *method_find(const struct apg_grpc_server *srv,
                                                 const char *path)
{
    for (size_t i = 0; i < srv->gs_n_methods; i++)
        if (strcmp(srv->gs_methods[i].gm_path, path) == 0)
            return &srv->gs_methods[i];
    return NULL;
}

static void refuse_unimplemented(struct apg_grpc_call *call)
{
    char why[200];
    snprintf(why, sizeof why, "%s is not implemented", call->gs_path);
    apg_grpc_call_fail(call, APG_GRPC_UNIMPLEMENTED, why);
}

/* The client ended its side: one whole message, then the method. */
static void call_run(struct gconn *g, struct apg_grpc_call *call)
{
    if (call->gs_answered)
        return;
    if (!call->gs_post || !call->gs_grpc) {
        call->gs_answered = true;
        nghttp2_nv hd[] = {NV(":status", "415")};
        nghttp2_submit_response(g->gc_h2, call->gs_id, hd, 1, NULL);
        return;
    }
    const uint8_t *p = call->gs_in.b_data;
    size_t n = call->gs_in.b_len;
    if (n < GRPC_PREFIX || apg_be32(p + 1) != n - GRPC_PREFIX) {
        apg_grpc_call_fail(call, APG_GRPC_INTERNAL, "a unary request carries one whole message");
        return;
    }
    if (p[0] != 0) {
        apg_grpc_call_fail(call, APG_GRPC_UNIMPLEMENTED, "compressed messages are not supported");
        return;
    }
    if (call->gs_deadline && uv_now(apg_conn_uv_loop(g->gc_conn)) >= call->gs_deadline) {
        apg_grpc_call_fail(call, APG_GRPC_DEADLINE_EXCEEDED, "deadline passed before the call ran");
        return;
    }
    const struct apg_grpc_method *m = method_find(g->gc_srv, call->gs_path);
    if (!m) {
        refuse_unimplemented(call);
        return;
    }
    m->gm_fn(call, p + GRPC_PREFIX, n - GRPC_PREFIX, g->gc_srv->gs_ud);
    if (!call->gs_answered)
        apg_grpc_call_fail(call, APG_GRPC_INTERNAL, "the method gave no answer");
}

/* The request headers are complete: a call that can only be refused is
 * refused now, without waiting for the client to end its side (a
 * streaming call, Telemetry, never does). */
static void call_headers_done(struct gconn *g, struct apg_grpc_call *call)
{
    if (call->gs_answered || !call->gs_post || !call->gs_grpc)
        return; /* 415 once the request ends */
    if (!method_find(g->gc_srv, call->gs_path))
        refuse_unimplemented(call);
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    struct gconn *g = ud;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct apg_grpc_call *call = apg_calloc(1, sizeof(*call));
    if (!call)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    call->gs_conn = g;
    call->gs_id = f->hd.stream_id;
    call->gs_next = g->gc_calls;
    if (g->gc_calls)
        g->gc_calls->gs_prev = call;
    g->gc_calls = call;
    nghttp2_session_set_stream_user_data(s, f->hd.stream_id, call);
    return 0;
}

static bool hdr_is(const uint8_t *name, size_t len, const char *want)
{
    return len == strlen(want) && memcmp(name, want, len) == 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct apg_grpc_call *call = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (!call)
        return 0;
    if (hdr_is(name, namelen, ":path")) {
        if (valuelen >= sizeof call->gs_path)
            valuelen = sizeof call->gs_path - 1; /* no method has so long a name */
        memcpy(call->gs_path, value, valuelen);
        call->gs_path[valuelen] = '\0';
    } else if (hdr_is(name, namelen, ":method")) {
        call->gs_post = valuelen == 4 && memcmp(value, "POST", 4) == 0;
    } else if (hdr_is(name, namelen, "content-type")) {
        call->gs_grpc = valuelen >= 16 && memcmp(value, "application/grpc", 16) == 0 &&
                        (valuelen == 16 || value[16] == '+' || value[16] == ';');
    } else if (hdr_is(name, namelen, "grpc-timeout")) {
        uint64_t ms;
        if (apg_grpc_timeout_parse((const char *)value, valuelen, &ms) == APG_OK)
            call->gs_deadline = uv_now(apg_conn_uv_loop(((struct gconn *)ud)->gc_conn)) + ms;
    }
    return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                   void *ud)
{
    struct apg_grpc_call *call = nghttp2_session_get_stream_user_data(s, id);
    if (!call || call->gs_answered)
        return 0;
    struct gconn *g = ud;
    if (call->gs_in.b_len + len > g->gc_srv->gs_max_message + GRPC_PREFIX) {
        apg_grpc_call_fail(call, APG_GRPC_RESOURCE_EXHAUSTED, "request message too large");
        apg_buf_free(&call->gs_in);
        return 0;
    }
    if (apg_buf_append(&call->gs_in, data, len))
        apg_grpc_call_fail(call, APG_GRPC_RESOURCE_EXHAUSTED, "out of memory");
    return 0;
}

static int on_frame(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA)
        return 0;
    struct apg_grpc_call *call = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (!call)
        return 0;
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST)
        call_headers_done(ud, call);
    if (f->hd.flags & NGHTTP2_FLAG_END_STREAM)
        call_run(ud, call);
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
    struct apg_grpc_call *call = nghttp2_session_get_stream_user_data(s, id);
    if (call) {
        nghttp2_session_set_stream_user_data(s, id, NULL);
        call_free(ud, call);
    }
    return 0;
}

/* ---- connections ---- */

static struct gconn *gconn_new(struct apg_grpc_server *srv, struct apg_conn *c)
{
    struct gconn *g = apg_calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    g->gc_srv = srv;
    g->gc_conn = c;
    if (nghttp2_session_server_new(&g->gc_h2, srv->gs_cbs, g)) {
        apg_free(g);
        return NULL;
    }
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, GRPC_MAX_STREAMS},
        {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, GRPC_FRAME_MAX},
    };
    nghttp2_submit_settings(g->gc_h2, NGHTTP2_FLAG_NONE, iv, 2);
    apg_conn_set_user(c, g);
    return g;
}

static void on_message(struct apg_conn *c, const uint8_t *msg, size_t len, void *ud)
{
    struct gconn *g = apg_conn_user(c);
    if (!g && !(g = gconn_new(ud, c))) {
        apg_conn_close(c, "out of memory");
        return;
    }
    ssize_t n = nghttp2_session_mem_recv(g->gc_h2, msg, len);
    if (n < 0) {
        apg_conn_close(c, n == NGHTTP2_ERR_BAD_CLIENT_MAGIC
                              ? "not an HTTP/2 client (a remoting client on the gRPC port?)"
                              : nghttp2_strerror((int)n));
        return;
    }
    gconn_flush(g);
}

static void on_close(struct apg_conn *c, void *ud)
{
    struct gconn *g = apg_conn_user(c);
    if (!g)
        return;
    apg_conn_set_user(c, NULL);
    while (g->gc_calls)
        call_free(g, g->gc_calls);
    nghttp2_session_del(g->gc_h2);
    apg_free(g);
}

/* ---- server ---- */

apg_err_t apg_grpc_server_start(const struct apg_grpc_server_opts *opts,
                                struct apg_grpc_server **out, char *err, size_t errlen)
{
    *out = NULL;
    struct apg_grpc_server *srv = apg_calloc(1, sizeof(*srv));
    if (!srv)
        return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    snprintf(srv->gs_name, sizeof srv->gs_name, "%s", opts->name ? opts->name : "grpc");
    srv->gs_methods = opts->methods;
    srv->gs_n_methods = opts->n_methods;
    srv->gs_max_message = opts->max_message ? opts->max_message : GRPC_DEFAULT_MAX_MESSAGE;
    srv->gs_ud = opts->ud;
    if (nghttp2_session_callbacks_new(&srv->gs_cbs)) {
        apg_free(srv);
        return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    }
    nghttp2_session_callbacks_set_on_begin_headers_callback(srv->gs_cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(srv->gs_cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(srv->gs_cbs, on_data);
    nghttp2_session_callbacks_set_on_frame_recv_callback(srv->gs_cbs, on_frame);
    nghttp2_session_callbacks_set_on_stream_close_callback(srv->gs_cbs, on_stream_close);
    struct apg_net_server_opts no = {
        .name = srv->gs_name,
        .host = opts->host,
        .port = opts->port,
        .n_loops = opts->n_loops > 0 ? opts->n_loops : 1,
        .port_key = "grpcServerPort",
        .codec = &apg_net_h2,
        .max_frame = GRPC_FRAME_MAX + 9,
        .idle_timeout_s = opts->idle_timeout_s,
        .frame_timeout_ms = opts->frame_timeout_ms,
        .frame_min_bytes_per_s = opts->frame_min_bytes_per_s,
        .max_pending_bytes = opts->max_pending_bytes,
        .on_message = on_message,
        .on_close = on_close,
        .ud = srv,
    };
    apg_err_t e = apg_net_server_start(&no, &srv->gs_net, err, errlen);
    if (e) {
        nghttp2_session_callbacks_del(srv->gs_cbs);
        apg_free(srv);
        return e;
    }
    *out = srv;
    return APG_OK;
}

int apg_grpc_server_port(const struct apg_grpc_server *srv)
{
    return apg_net_server_port(srv->gs_net);
}

void apg_grpc_server_stop(struct apg_grpc_server *srv)
{
    if (!srv)
        return;
    apg_net_server_stop(srv->gs_net);
    nghttp2_session_callbacks_del(srv->gs_cbs);
    apg_free(srv);
}

/* gRPC on the net loops, over h2c, and over TLS with ALPN "h2" when the
 * tlsServer* keys ask for it (net/tls.c, as on the remoting port:
 * permissive takes both on one port by the first byte, enforcing TLS
 * only): an HTTP/2 session per connection (nghttp2), gRPC message framing,
 * dispatch by path to unary, server-streaming and bidirectional methods,
 * status in trailers.
 *
 * Design. The net layer's h2 codec (net/h2_codec.c) cuts whole frames, so
 * the slow-peer rules of remoting (frame deadline, trickle rate, the cap on
 * buffered incomplete frames) hold per HTTP/2 frame; each frame goes into
 * the connection's nghttp2 server session (nghttp2_session_mem_recv) and
 * whatever the session wants to send is appended to the connection's
 * output buffer right after (nghttp2_session_mem_send), written once per
 * loop iteration like every other reply. After the frames of one read the
 * server's on_read_end hook runs (SendMessage stores the appends it
 * gathered over the read and answers them), then the session's output is
 * moved again. The method is looked up when the
 * request headers are complete (none: UNIMPLEMENTED at once, without
 * waiting for the client to end its side). A request stream collects its
 * DATA (at most max_message + 5 bytes per message, else
 * RESOURCE_EXHAUSTED); a bidirectional method gets each whole message as it
 * arrives, the others the one message once the client ends the stream.
 * Messages must be uncompressed and their lengths must match.
 *
 * Responses. The first message (or the final status) submits HEADERS
 * (:status 200, content-type application/grpc) with a data provider that
 * reads the call's output buffer; an empty buffer defers the provider and
 * apg_grpc_call_send resumes it. Once the status is decided and the buffer
 * drained, the trailers (grpc-status, percent-encoded grpc-message) end the
 * stream. A status with nothing sent before is a trailers-only response.
 * grpc-timeout is parsed into a deadline on the loop clock; a unary call
 * whose deadline passed before it could run is answered DEADLINE_EXCEEDED,
 * and a unary or server-streaming call still unanswered when its method
 * returned gets a timer that ends it DEADLINE_EXCEEDED at the deadline.
 *
 * Shutdown: apg_grpc_server_stop has every loop send GOAWAY (NO_ERROR, the
 * last stream processed) on its connections and waits up to 1 s for that
 * before the net layer flushes and closes them.
 *
 * Threads: each connection lives on one loop thread, with its session and
 * streams; methods run there. Other threads reach a call only through
 * apg_grpc_ref_post, which finds the stream again by id on its loop.
 * Invariants: a call's status is decided once (gs_answered); a call's
 * memory is freed when nghttp2 closes its stream or with its connection,
 * after the method's gm_close. */
#include "proxy/grpc/grpc_server.h"

#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"
#include "net/net_int.h" /* the codec contract: apg_net_conn_out, c_in */
#include "net/tls.h"
#include "protocol/rcode.h"
#include "protocol/remoting.h"

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
    void (*gs_read_end)(int loop, void *ud);
    nghttp2_session_callbacks *gs_cbs;
    int gs_n_loops;
    struct gconn **gs_conns; /* per loop: its connections (that loop's thread only) */
    pthread_mutex_t gs_lock; /* gs_goaway_left */
    pthread_cond_t gs_cond;
    int gs_goaway_left;                /* loops that have not yet sent GOAWAY at stop */
    _Atomic int64_t gs_refused_log_ms; /* last "not an HTTP/2 client" line (rate limit) */
    _Atomic uint64_t gs_refused_quiet; /* such lines suppressed since */
};

struct gconn;

struct apg_grpc_call { /* one request stream */
    struct gconn *gs_conn;
    int32_t gs_id;
    bool gs_grpc;         /* content-type application/grpc[+...] */
    bool gs_post;         /* :method POST */
    bool gs_answered;     /* final status decided (trailers queued or sent) */
    bool gs_started;      /* response HEADERS submitted with the data provider */
    bool gs_deferred;     /* the data provider waits for gs_out to grow */
    bool gs_client_done;  /* the client ended its side */
    bool gs_held;         /* answered later (apg_grpc_call_ref, apg_grpc_call_hold) */
    bool gs_read_end;     /* answered at the end of this read (apg_grpc_call_hold) */
    uv_timer_t *gs_timer; /* a waiting call's deadline; its own allocation */
    uint64_t gs_deadline;
    char gs_path[128];
    const struct apg_grpc_method *gs_method;
    void *gs_user;
    int gs_status;          /* trailers once gs_out drains (when gs_answered) */
    char gs_message[512];   /* percent-encoded grpc-message */
    struct apg_buf gs_hdrs; /* "name\0value\0" of the request's ordinary headers */
    struct apg_buf gs_in;   /* request DATA not yet delivered */
    struct apg_buf gs_out;  /* prefixed response messages not yet sent */
    size_t gs_out_off;
    struct apg_grpc_call *gs_prev, *gs_next;
};

struct gconn {
    struct apg_grpc_server *gc_srv;
    struct apg_conn *gc_conn;
    nghttp2_session *gc_h2;
    struct apg_grpc_call *gc_calls;
    struct gconn *gc_prev, *gc_next; /* the loop's connections (gs_conns) */
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
    /* Both sides said GOAWAY and no stream is left. With bytes still queued
     * (the last trailers) the peer closes; closing here would drop them. */
    if (!nghttp2_session_want_read(g->gc_h2) && !nghttp2_session_want_write(g->gc_h2) &&
        apg_conn_pending_bytes(g->gc_conn) == 0)
        apg_conn_close(g->gc_conn, "HTTP/2 session ended");
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

static int submit_trailers(nghttp2_session *s, struct apg_grpc_call *call)
{
    char code[12];
    snprintf(code, sizeof code, "%d", call->gs_status);
    nghttp2_nv tr[] = {NV("grpc-status", code), NV("grpc-message", call->gs_message)};
    return nghttp2_submit_trailer(s, call->gs_id, tr, call->gs_message[0] ? 2 : 1);
}

/* The response body: what gs_out holds, deferred while it is empty and the
 * call goes on, then the trailers once the status is decided. */
static ssize_t call_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                         nghttp2_data_source *src, void *ud)
{
    struct apg_grpc_call *call = src->ptr;
    size_t left = call->gs_out.b_len - call->gs_out_off;
    size_t n = left < len ? left : len;
    if (n) {
        memcpy(buf, call->gs_out.b_data + call->gs_out_off, n);
        call->gs_out_off += n;
    }
    if (call->gs_out_off < call->gs_out.b_len)
        return (ssize_t)n;
    apg_buf_reset(&call->gs_out);
    call->gs_out_off = 0;
    if (!call->gs_answered) {
        if (n)
            return (ssize_t)n;
        call->gs_deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
    if (submit_trailers(s, call))
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    return (ssize_t)n;
}

/* Response HEADERS with the body provider on the first message or final
 * status; later, wakes the provider if it was waiting. */
static apg_err_t call_kick(struct apg_grpc_call *call)
{
    nghttp2_session *h2 = call->gs_conn->gc_h2;
    if (!call->gs_started) {
        call->gs_started = true;
        nghttp2_nv hd[] = {NV(":status", "200"), NV("content-type", "application/grpc")};
        nghttp2_data_provider prd = {.source.ptr = call, .read_callback = call_read};
        return nghttp2_submit_response(h2, call->gs_id, hd, 2, &prd) ? APG_EIO : APG_OK;
    }
    if (call->gs_deferred) {
        call->gs_deferred = false;
        return nghttp2_session_resume_data(h2, call->gs_id) ? APG_EIO : APG_OK;
    }
    return APG_OK;
}

apg_err_t apg_grpc_call_send(struct apg_grpc_call *call, const uint8_t *msg, size_t len)
{
    if (call->gs_answered || len > UINT32_MAX)
        return APG_EINVAL;
    uint8_t prefix[GRPC_PREFIX] = {0};
    apg_wbe32(prefix + 1, (uint32_t)len);
    if (apg_buf_append(&call->gs_out, prefix, sizeof prefix) ||
        apg_buf_append(&call->gs_out, msg, len))
        return APG_ENOMEM;
    return call_kick(call);
}

apg_err_t apg_grpc_call_finish(struct apg_grpc_call *call, enum apg_grpc_status status,
                               const char *message)
{
    if (call->gs_answered)
        return APG_EINVAL;
    call->gs_answered = true;
    call->gs_status = (int)status;
    pct_encode(message ? message : "", call->gs_message, sizeof call->gs_message);
    if (call->gs_started)
        return call_kick(call);
    /* Nothing sent yet: a trailers-only response, one HEADERS frame. */
    call->gs_started = true;
    char code[12];
    snprintf(code, sizeof code, "%d", (int)status);
    nghttp2_nv hd[] = {NV(":status", "200"), NV("content-type", "application/grpc"),
                       NV("grpc-status", code), NV("grpc-message", call->gs_message)};
    return nghttp2_submit_response(call->gs_conn->gc_h2, call->gs_id, hd,
                                   call->gs_message[0] ? 4 : 3, NULL)
               ? APG_EIO
               : APG_OK;
}

apg_err_t apg_grpc_call_reply(struct apg_grpc_call *call, const uint8_t *msg, size_t len)
{
    apg_err_t e = apg_grpc_call_send(call, msg, len);
    if (e == APG_ENOMEM)
        return apg_grpc_call_fail(call, APG_GRPC_RESOURCE_EXHAUSTED, "out of memory");
    return e ? e : apg_grpc_call_finish(call, APG_GRPC_OK, NULL);
}

apg_err_t apg_grpc_call_fail(struct apg_grpc_call *call, enum apg_grpc_status status,
                             const char *message)
{
    return apg_grpc_call_finish(call, status, message);
}

bool apg_grpc_call_done(const struct apg_grpc_call *call)
{
    return call->gs_answered;
}

void apg_grpc_call_set_user(struct apg_grpc_call *call, void *user)
{
    call->gs_user = user;
}

void *apg_grpc_call_user(const struct apg_grpc_call *call)
{
    return call->gs_user;
}

const char *apg_grpc_call_header(const struct apg_grpc_call *call, const char *name)
{
    const char *p = (const char *)call->gs_hdrs.b_data, *end = p + call->gs_hdrs.b_len;
    while (p < end) {
        const char *v = p + strlen(p) + 1;
        if (strcmp(p, name) == 0)
            return v;
        p = v + strlen(v) + 1;
    }
    return NULL;
}

/* ---- calls answered later, from any thread ---- */

struct ref_post {
    apg_grpc_ref_fn rp_fn;
    void *rp_arg;
    int32_t rp_stream;
};

/* ---- deadlines of calls that wait ---- */

static void timer_freed(uv_handle_t *h)
{
    apg_free(h);
}

static void on_deadline(uv_timer_t *t)
{
    struct apg_grpc_call *call = t->data;
    if (!call || call->gs_answered)
        return;
    apg_grpc_call_fail(call, APG_GRPC_DEADLINE_EXCEEDED, "deadline passed before the answer");
    gconn_flush(call->gs_conn);
}

/* A unary or server-streaming call that outlives its method: its
 * grpc-timeout ends it with DEADLINE_EXCEEDED if nothing else does first
 * (what it stored stays stored). */
static void call_arm_deadline(struct apg_grpc_call *call)
{
    if (!call->gs_deadline || call->gs_timer || call->gs_answered || call->gs_read_end ||
        (call->gs_method && call->gs_method->gm_kind == APG_GRPC_BIDI))
        return;
    uv_loop_t *loop = apg_conn_uv_loop(call->gs_conn->gc_conn);
    uv_timer_t *t = apg_malloc(sizeof(*t));
    if (!t || uv_timer_init(loop, t)) {
        apg_free(t);
        return;
    }
    t->data = call;
    uint64_t now = uv_now(loop);
    uv_timer_start(t, on_deadline, call->gs_deadline > now ? call->gs_deadline - now : 0, 0);
    call->gs_timer = t;
}

static void call_disarm_deadline(struct apg_grpc_call *call)
{
    if (!call->gs_timer)
        return;
    call->gs_timer->data = NULL;
    uv_timer_stop(call->gs_timer);
    uv_close((uv_handle_t *)call->gs_timer, timer_freed);
    call->gs_timer = NULL;
}

void apg_grpc_call_ref(struct apg_grpc_call *call, struct apg_grpc_ref *out)
{
    call->gs_held = true;
    call_arm_deadline(call);
    apg_conn_ref(call->gs_conn->gc_conn);
    out->gr_conn = call->gs_conn->gc_conn;
    out->gr_stream = call->gs_id;
}

void apg_grpc_call_hold(struct apg_grpc_call *call)
{
    call->gs_held = call->gs_read_end = true;
}

int apg_grpc_call_loop(const struct apg_grpc_call *call)
{
    return apg_conn_loop_index(call->gs_conn->gc_conn);
}

void apg_grpc_ref_release(struct apg_grpc_ref *r)
{
    if (r->gr_conn)
        apg_conn_unref(r->gr_conn);
    r->gr_conn = NULL;
}

static void ref_run(struct apg_conn *c, void *arg)
{
    struct ref_post *rp = arg;
    struct gconn *g = apg_conn_is_closed(c) ? NULL : apg_conn_user(c);
    struct apg_grpc_call *call =
        g ? nghttp2_session_get_stream_user_data(g->gc_h2, rp->rp_stream) : NULL;
    rp->rp_fn(call, rp->rp_arg);
    if (g && apg_conn_user(c) == g)
        gconn_flush(g);
    apg_free(rp);
}

apg_err_t apg_grpc_ref_post(const struct apg_grpc_ref *r, apg_grpc_ref_fn fn, void *arg)
{
    struct ref_post *rp = apg_malloc(sizeof(*rp));
    if (!rp)
        return APG_ENOMEM;
    rp->rp_fn = fn;
    rp->rp_arg = arg;
    rp->rp_stream = r->gr_stream;
    apg_err_t e = apg_conn_post(r->gr_conn, ref_run, rp);
    if (e)
        apg_free(rp);
    return e;
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
    call_disarm_deadline(call);
    if (call->gs_method && call->gs_method->gm_close)
        call->gs_method->gm_close(call, g->gc_srv->gs_ud);
    if (call->gs_prev)
        call->gs_prev->gs_next = call->gs_next;
    else
        g->gc_calls = call->gs_next;
    if (call->gs_next)
        call->gs_next->gs_prev = call->gs_prev;
    apg_buf_free(&call->gs_hdrs);
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

/* Checks the message at p (left bytes of gs_in): 1 with *len its size when
 * a whole one is there, 0 when more bytes are needed, -1 when the call was
 * failed (compressed, too large). */
static int message_at(struct gconn *g, struct apg_grpc_call *call, const uint8_t *p, size_t left,
                      size_t *len)
{
    if (left < GRPC_PREFIX)
        return 0;
    if (p[0] != 0) {
        apg_grpc_call_fail(call, APG_GRPC_UNIMPLEMENTED, "compressed messages are not supported");
        return -1;
    }
    *len = apg_be32(p + 1);
    if (*len > g->gc_srv->gs_max_message) {
        apg_grpc_call_fail(call, APG_GRPC_RESOURCE_EXHAUSTED, "request message too large");
        return -1;
    }
    return left - GRPC_PREFIX >= *len;
}

/* A bidirectional call: every whole message goes to gm_msg as it arrives. */
static void call_deliver(struct gconn *g, struct apg_grpc_call *call)
{
    size_t off = 0, len = 0;
    while (!call->gs_answered) {
        const uint8_t *p = call->gs_in.b_data + off;
        if (message_at(g, call, p, call->gs_in.b_len - off, &len) != 1)
            break;
        off += GRPC_PREFIX + len;
        call->gs_method->gm_msg(call, p + GRPC_PREFIX, len, g->gc_srv->gs_ud);
    }
    if (call->gs_answered) {
        apg_buf_free(&call->gs_in);
        return;
    }
    if (off) {
        memmove(call->gs_in.b_data, call->gs_in.b_data + off, call->gs_in.b_len - off);
        call->gs_in.b_len -= off;
    }
}

/* The client ended its side: one whole message, then the method. */
static void call_run(struct gconn *g, struct apg_grpc_call *call)
{
    call->gs_client_done = true;
    if (call->gs_answered)
        return;
    if (!call->gs_post || !call->gs_grpc) {
        call->gs_answered = call->gs_started = true;
        nghttp2_nv hd[] = {NV(":status", "415")};
        nghttp2_submit_response(g->gc_h2, call->gs_id, hd, 1, NULL);
        return;
    }
    const struct apg_grpc_method *m = call->gs_method;
    if (m && m->gm_kind == APG_GRPC_BIDI) {
        /* Half-close: the client sends no more; the method decides when
         * the call ends (none: it ends now). */
        if (m->gm_end)
            m->gm_end(call, g->gc_srv->gs_ud);
        else
            apg_grpc_call_finish(call, APG_GRPC_OK, NULL);
        return;
    }
    size_t len = 0;
    int h = message_at(g, call, call->gs_in.b_data, call->gs_in.b_len, &len);
    if (h < 0)
        return;
    if (h == 0 || call->gs_in.b_len != len + GRPC_PREFIX) {
        apg_grpc_call_fail(call, APG_GRPC_INTERNAL, "a unary request carries one whole message");
        return;
    }
    if (call->gs_deadline && uv_now(apg_conn_uv_loop(g->gc_conn)) >= call->gs_deadline) {
        apg_grpc_call_fail(call, APG_GRPC_DEADLINE_EXCEEDED, "deadline passed before the call ran");
        return;
    }
    if (!m) {
        refuse_unimplemented(call);
        return;
    }
    m->gm_fn(call, call->gs_in.b_data + GRPC_PREFIX, len, g->gc_srv->gs_ud);
    if (!call->gs_answered && !call->gs_held && m->gm_kind == APG_GRPC_UNARY)
        apg_grpc_call_fail(call, APG_GRPC_INTERNAL, "the method gave no answer");
    else
        call_arm_deadline(call); /* a stream, or an answer that comes later */
}

/* The request headers are complete: a call that can only be refused is
 * refused now, without waiting for the client to end its side, and a
 * bidirectional call opens. */
static void call_headers_done(struct gconn *g, struct apg_grpc_call *call)
{
    if (call->gs_answered || !call->gs_post || !call->gs_grpc)
        return; /* 415 once the request ends */
    call->gs_method = method_find(g->gc_srv, call->gs_path);
    if (!call->gs_method) {
        refuse_unimplemented(call);
        return;
    }
    if (call->gs_method->gm_kind == APG_GRPC_BIDI && call->gs_method->gm_open)
        call->gs_method->gm_open(call, g->gc_srv->gs_ud);
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
    } else if (namelen && name[0] != ':' && call->gs_hdrs.b_len + namelen + valuelen < 8192 &&
               !memchr(value, 0, valuelen)) {
        /* Metadata (x-mq-client-id, authorization, ...) for the method. */
        static const uint8_t nul = 0;
        if (apg_buf_append(&call->gs_hdrs, name, namelen) ||
            apg_buf_append(&call->gs_hdrs, &nul, 1) ||
            apg_buf_append(&call->gs_hdrs, value, valuelen) ||
            apg_buf_append(&call->gs_hdrs, &nul, 1))
            return NGHTTP2_ERR_CALLBACK_FAILURE;
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
    if (apg_buf_append(&call->gs_in, data, len)) {
        apg_grpc_call_fail(call, APG_GRPC_RESOURCE_EXHAUSTED, "out of memory");
        return 0;
    }
    if (call->gs_method && call->gs_method->gm_kind == APG_GRPC_BIDI)
        call_deliver(g, call);
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
    if ((f->hd.flags & NGHTTP2_FLAG_END_STREAM) && !call->gs_client_done)
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
    struct gconn **head = &srv->gs_conns[apg_conn_loop_index(c)];
    g->gc_next = *head;
    if (*head)
        (*head)->gc_prev = g;
    *head = g;
    return g;
}

/* The user pointer of a connection refused as not HTTP/2, until it closes. */
static struct gconn not_h2;

#define REFUSED_LOG_MS 10000 /* at most one "not an HTTP/2 client" line per 10 s */

/* A connection whose first bytes are not the HTTP/2 client preface (the
 * codec passes a message starting with 'P' only when it is the preface).
 * Most likely a 4.x remoting client given the gRPC port: its first frame,
 * when whole in the input, is answered with a remoting response
 * SYSTEM_ERROR whose remark names the port to use, so the client fails at
 * once with that text instead of waiting for its request timeout. The
 * rest of the input is dropped (the codec would cut it into nonsense
 * frames) and the connection closes once the answer is written. */
static void refuse_not_h2(struct apg_grpc_server *srv, struct apg_conn *c, const uint8_t *msg)
{
    static const char remark[] =
        "this is the gRPC port (grpcServerPort) of a RocketMQ 5 endpoint; 4.x remoting "
        "clients connect to the broker's listenPort or the name server";
    const uint8_t *end = c->c_in.b_data + c->c_in.b_len;
    size_t avail = (size_t)(end - msg), flen = 0;
    char err[160];
    bool answered = false;
    if (apg_frame_peek(msg, avail, APG_FRAME_MAX_DEFAULT, &flen, err, sizeof err) == APG_OK &&
        flen >= 8 && flen <= avail) {
        size_t cap = apg_rcmd_scratch_need(flen);
        char *scratch = apg_malloc(cap);
        struct apg_rcmd req;
        if (scratch && apg_rcmd_decode(msg, flen, &req, scratch, cap, err, sizeof err) == APG_OK &&
            !(req.flag & APG_RCMD_FLAG_RESPONSE) && !(req.flag & APG_RCMD_FLAG_ONEWAY))
            answered = apg_conn_reply(c, &req, APG_RESP_SYSTEM_ERROR, remark, NULL, 0) == APG_OK;
        apg_free(scratch);
    }
    c->c_in_off = c->c_in.b_len;
    apg_conn_set_user(c, &not_h2);
    int64_t now = apg_mono_ms(), last = atomic_load(&srv->gs_refused_log_ms);
    if (now - last >= REFUSED_LOG_MS &&
        atomic_compare_exchange_strong(&srv->gs_refused_log_ms, &last, now)) {
        uint64_t quiet = atomic_exchange(&srv->gs_refused_quiet, 0);
        apg_log_warn(srv->gs_name,
                     "%s: not an HTTP/2 client (a 4.x remoting client on grpcServerPort?); %s, "
                     "closing (%llu more such connections in the last %d s not logged)",
                     apg_conn_peer(c),
                     answered ? "answered SYSTEM_ERROR naming listenPort"
                              : "no remoting request to answer",
                     (unsigned long long)quiet, REFUSED_LOG_MS / 1000);
    } else {
        atomic_fetch_add(&srv->gs_refused_quiet, 1);
    }
    apg_conn_close_after_write(c, "not an HTTP/2 client");
}

static void on_message(struct apg_conn *c, const uint8_t *msg, size_t len, void *ud)
{
    struct gconn *g = apg_conn_user(c);
    if (g == &not_h2)
        return;
    if (!g && msg[0] != 'P') {
        refuse_not_h2(ud, c, msg);
        return;
    }
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

/* The frames of one read are done: the methods' gathered work, then what
 * it answered goes into the output. */
static void on_read_end(struct apg_conn *c, void *ud)
{
    struct apg_grpc_server *srv = ud;
    if (srv->gs_read_end)
        srv->gs_read_end(apg_conn_loop_index(c), srv->gs_ud);
    struct gconn *g = apg_conn_user(c);
    if (g && g != &not_h2 && !apg_conn_is_closed(c))
        gconn_flush(g);
}

static void on_close(struct apg_conn *c, void *ud)
{
    struct gconn *g = apg_conn_user(c);
    apg_conn_set_user(c, NULL);
    if (!g || g == &not_h2)
        return;
    struct apg_grpc_server *srv = g->gc_srv;
    if (g->gc_prev)
        g->gc_prev->gc_next = g->gc_next;
    else
        srv->gs_conns[apg_conn_loop_index(c)] = g->gc_next;
    if (g->gc_next)
        g->gc_next->gc_prev = g->gc_prev;
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
    srv->gs_read_end = opts->on_read_end;
    srv->gs_n_loops = opts->n_loops > 0 ? opts->n_loops : 1;
    srv->gs_conns = apg_calloc((size_t)srv->gs_n_loops, sizeof(*srv->gs_conns));
    if (!srv->gs_conns || nghttp2_session_callbacks_new(&srv->gs_cbs)) {
        apg_free(srv->gs_conns);
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
        .n_loops = srv->gs_n_loops,
        .port_key = "grpcServerPort",
        .codec = &apg_net_h2,
        .max_frame = GRPC_FRAME_MAX + 9,
        .limits = opts->limits,
        .on_message = on_message,
        .on_read_end = on_read_end,
        .on_close = on_close,
        .ud = srv,
    };
    apg_err_t e = APG_OK;
    if (opts->tls_cfg)
        e = apg_net_tls_server_setup_alpn(opts->tls_cfg, &no, "h2", err, errlen);
    if (!e)
        e = apg_net_server_start(&no, &srv->gs_net, err, errlen);
    if (e) {
        nghttp2_session_callbacks_del(srv->gs_cbs);
        apg_free(srv->gs_conns);
        apg_free(srv);
        return e;
    }
    pthread_mutex_init(&srv->gs_lock, NULL);
    pthread_cond_init(&srv->gs_cond, NULL);
    *out = srv;
    return APG_OK;
}

int apg_grpc_server_port(const struct apg_grpc_server *srv)
{
    return apg_net_server_port(srv->gs_net);
}

/* Loop thread, at stop: every call still open (a Telemetry stream, a
 * long-polling ReceiveMessage) ends with UNAVAILABLE trailers, the status a
 * client retries elsewhere, rather than with a stream the closing connection
 * cuts without a status (a client reports that as INTERNAL); then GOAWAY
 * (NO_ERROR, naming the last stream this side processed) on every connection
 * of the loop; the net layer flushes and closes. */
struct goaway_arg {
    struct apg_grpc_server *ga_srv;
    int ga_loop;
};

static void goaway_loop(void *arg)
{
    struct goaway_arg *ga = arg;
    struct apg_grpc_server *srv = ga->ga_srv;
    struct gconn *next;
    for (struct gconn *g = srv->gs_conns[ga->ga_loop]; g; g = next) {
        next = g->gc_next;
        for (struct apg_grpc_call *call = g->gc_calls; call; call = call->gs_next)
            if (!call->gs_answered)
                apg_grpc_call_finish(call, APG_GRPC_UNAVAILABLE, "server shutting down");
        nghttp2_submit_goaway(g->gc_h2, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(g->gc_h2), NGHTTP2_NO_ERROR,
                              (const uint8_t *)"shutdown", 8);
        gconn_flush(g);
    }
    apg_free(ga);
    pthread_mutex_lock(&srv->gs_lock);
    srv->gs_goaway_left--;
    pthread_cond_broadcast(&srv->gs_cond);
    pthread_mutex_unlock(&srv->gs_lock);
}

void apg_grpc_server_stop(struct apg_grpc_server *srv)
{
    if (!srv)
        return;
    pthread_mutex_lock(&srv->gs_lock);
    srv->gs_goaway_left = 0;
    pthread_mutex_unlock(&srv->gs_lock);
    for (int i = 0; i < srv->gs_n_loops; i++) {
        struct goaway_arg *ga = apg_malloc(sizeof(*ga));
        if (!ga)
            continue;
        ga->ga_srv = srv;
        ga->ga_loop = i;
        pthread_mutex_lock(&srv->gs_lock);
        srv->gs_goaway_left++;
        pthread_mutex_unlock(&srv->gs_lock);
        if (apg_net_server_post(srv->gs_net, i, goaway_loop, ga) != APG_OK) {
            apg_free(ga);
            pthread_mutex_lock(&srv->gs_lock);
            srv->gs_goaway_left--;
            pthread_mutex_unlock(&srv->gs_lock);
        }
    }
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 1;
    pthread_mutex_lock(&srv->gs_lock);
    while (srv->gs_goaway_left > 0)
        if (pthread_cond_timedwait(&srv->gs_cond, &srv->gs_lock, &until))
            break;
    pthread_mutex_unlock(&srv->gs_lock);
    apg_net_server_stop(srv->gs_net);
    nghttp2_session_callbacks_del(srv->gs_cbs);
    pthread_cond_destroy(&srv->gs_cond);
    pthread_mutex_destroy(&srv->gs_lock);
    apg_free(srv->gs_conns);
    apg_free(srv);
}

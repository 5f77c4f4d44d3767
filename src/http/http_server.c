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
 * trailing whitespace), so a body is never copied to learn its length; a
 * chunked answer (apg_http_begin_chunked) instead leaves in pieces while
 * it is written: each flush ends the open chunk (its size field reserved
 * at its start, 8 zero-padded hex digits) and, while the connection's
 * buffer is small (PUSH_MAX), writes what the socket takes right away.
 *
 * Held calls. A handler may keep its call open (apg_http_hold): the call
 * moves to the heap and joins the connection's queue of calls whose
 * answers wait (struct hconn). While that queue is not empty, every new
 * request of the connection is served at once into a heap call of its own
 * that joins the queue too, and its answer is kept in the call's buffer;
 * whenever the call at the head has its whole answer, the answers at the
 * head are moved to the connection's output in request order. A call that
 * ends the connection (Connection: close) stops reading: nothing behind it
 * is served. When the connection closes, waiting answers are dropped and
 * each held call's on_gone runs; its memory stays until its holder answers
 * or drops it. Other threads reach a held call through apg_http_post
 * (the call keeps a reference on its connection).
 *
 * Threads: each connection lives on one loop thread; handlers run there.
 * Invariant: a call is answered exactly once (the server answers 500 for a
 * handler that returned without answering or holding it). */
#include "http/http.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/mem.h"
#include "net/net_int.h" /* the codec contract: apg_net_conn_out */

#define HTTP_DEFAULT_MAX_BODY (4u * 1024 * 1024)
#define CLEN_WIDTH 20 /* room for any size_t in decimal */
#define CHUNK_WIDTH 8 /* hex digits of a chunk's size, zero-padded */
#define CHUNK_HEAD (CHUNK_WIDTH + 2)
/* A chunked answer's pieces are pushed to the socket while its output
 * holds at most this much (the push moves what the socket did not take to
 * the buffer's front); above it the rest waits for apg_http_end. */
#define PUSH_MAX (1024u * 1024)
#define STOP_WAIT_MS 10000 /* longest wait at stop for held calls to be released */
/* After an on_refused answer (the connection closes): the bytes the peer
 * still sends (the refused body) are dropped as they come, so that closing
 * while it still writes does not reset the connection before it read the
 * answer; the close comes when the peer, told "Connection: close", closes,
 * after DRAIN_MAX bytes, or at the idle timeout. */
#define DRAIN_MAX (64u << 20)

struct apg_http_server {
    struct apg_net_server *hs_net;
    uint32_t hs_tick_ms;
    bool (*hs_on_tick)(void *ud);
    uv_timer_t *hs_timers; /* one per loop, with hs_tick_ms */
    atomic_int hs_held;    /* held calls not yet freed (stop waits for them) */
    int hs_n_loops;
    const struct apg_http_route *hs_routes;
    size_t hs_n_routes;
    size_t hs_max_body;
    void *hs_ud;
    bool (*hs_on_refused)(struct apg_http_call *call, const struct apg_http_req *req, void *ud);
    struct apg_log_limit hs_refused; /* one INFO line a second for refused requests */
};

struct apg_http_call {
    struct apg_http_server *hc_srv;
    struct apg_conn *hc_conn;
    const struct apg_http_req *hc_req;
    bool hc_answered;
    bool hc_close; /* the answer ends the connection */
    bool hc_head;  /* HEAD: the body is measured, then dropped */
    bool hc_drain; /* on_refused answered: the rest of the request is dropped, not refused */
    struct apg_buf *hc_out;
    size_t hc_clen_at;  /* offset of the Content-Length digits in hc_out */
    size_t hc_body_at;  /* offset of the body in hc_out */
    bool hc_chunked;    /* Transfer-Encoding: chunked (apg_http_begin_chunked) */
    size_t hc_chunk_at; /* offset in hc_out of the open chunk's size field */
    /* heap calls (held, or queued behind a held one) */
    bool hc_heap;
    bool hc_held;          /* a holder will answer or drop it */
    bool hc_done;          /* its whole answer is in hc_buf */
    bool hc_gone;          /* off its connection's queue (closed) */
    bool hc_in_handler;    /* its handler runs: the dispatch moves the queue */
    bool hc_counted;       /* counted in hs_held */
    struct apg_buf hc_buf; /* the answer while it waits */
    struct apg_http_call *hc_next;
    apg_http_gone_fn hc_on_gone;
    void *hc_gone_arg;
};

/* Per connection with held calls (or draining): the calls whose answers
 * wait, in request order. */
struct hconn {
    struct apg_http_call *hq_head, *hq_tail;
    bool hq_closing;   /* a queued call ends the connection */
    bool hq_draining;  /* after an on_refused answer: what arrives is dropped */
    size_t hq_drained; /* bytes dropped so far (the connection closes past DRAIN_MAX) */
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

/* Reserves the size field of the next chunk at the end of o. */
static void chunk_open(struct apg_http_call *call, struct apg_buf *o)
{
    call->hc_chunk_at = o->b_len;
    apg_buf_append(o, "00000000\r\n", CHUNK_HEAD);
}

/* Fills in the open chunk's size and ends it; an empty chunk is removed
 * (a zero size would end the body). */
static void chunk_close(struct apg_http_call *call, struct apg_buf *o)
{
    size_t n = o->b_len - call->hc_chunk_at - CHUNK_HEAD;
    if (n == 0) {
        o->b_len = call->hc_chunk_at;
        return;
    }
    char num[24]; /* n < 4 GiB: a chunk is one flush's bytes */
    snprintf(num, sizeof(num), "%0*zx", CHUNK_WIDTH, n);
    memcpy(o->b_data + call->hc_chunk_at, num, CHUNK_WIDTH);
    apg_buf_append(o, "\r\n", 2);
}

static void write_head(struct apg_http_call *call, int status, const char *ctype, const char *extra)
{
    struct hloop *hl = call->hc_conn->c_loop->l_codec_state;
    struct apg_buf *o = call->hc_out;
    apg_buf_printf(o,
                   "HTTP/1.1 %d %s\r\nServer: apogee\r\nDate: %s\r\nContent-Type: %s\r\n%s%s"
                   "%s",
                   status, apg_http_reason(status), date_now(hl), ctype, extra ? extra : "",
                   call->hc_close ? "Connection: close\r\n" : "",
                   call->hc_chunked ? "Transfer-Encoding: chunked\r\n\r\n" : "Content-Length: ");
    if (call->hc_chunked) {
        call->hc_clen_at = SIZE_MAX;
        call->hc_body_at = o->b_len;
        chunk_open(call, o);
        return;
    }
    if (status == 204) { /* no body and no Content-Length (RFC 9110 8.6) */
        o->b_len -= strlen("Content-Length: ");
        apg_buf_append_str(o, "\r\n");
        call->hc_clen_at = SIZE_MAX;
        call->hc_body_at = o->b_len;
        return;
    }
    call->hc_clen_at = o->b_len;
    apg_buf_printf(o, "%*s\r\n\r\n", CLEN_WIDTH, "");
    call->hc_body_at = o->b_len;
}

static void queue_flush(struct apg_conn *c);
static void call_free(struct apg_http_call *call);

struct apg_buf *apg_http_begin_with(struct apg_http_call *call, int status,
                                    const char *content_type, const char *extra)
{
    if (call->hc_answered)
        return NULL;
    call->hc_answered = true;
    if (call->hc_heap) {
        if (call->hc_gone)
            return NULL;
        call->hc_out = &call->hc_buf;
    } else {
        call->hc_out = apg_net_conn_out(call->hc_conn);
    }
    if (!call->hc_out)
        return NULL;
    write_head(call, status, content_type, extra);
    return call->hc_out;
}

struct apg_buf *apg_http_begin(struct apg_http_call *call, int status, const char *content_type)
{
    return apg_http_begin_with(call, status, content_type, NULL);
}

struct apg_buf *apg_http_begin_chunked(struct apg_http_call *call, int status,
                                       const char *content_type)
{
    /* HEAD measures the body; HTTP/1.0 has no chunked coding; a call
     * queued behind a held one cannot send before its turn. */
    const struct apg_http_req *req = call->hc_req;
    call->hc_chunked = status != 204 && !call->hc_head && !call->hc_heap && req &&
                       (req->hr_major > 1 || (req->hr_major == 1 && req->hr_minor >= 1));
    return apg_http_begin_with(call, status, content_type, NULL);
}

void apg_http_flush(struct apg_http_call *call)
{
    struct apg_buf *o = call->hc_out;
    if (!o || !call->hc_chunked || o->b_len <= call->hc_chunk_at + CHUNK_HEAD)
        return; /* nothing new, or out of memory (apg_http_end cuts the connection) */
    chunk_close(call, o);
    if (o->b_len <= PUSH_MAX)
        apg_net_conn_out_push(call->hc_conn);
    if (apg_net_conn_out(call->hc_conn) != o) { /* closed on a write error */
        call->hc_out = NULL;
        return;
    }
    chunk_open(call, o);
}

/* A heap call's answer is complete (or will never be): it leaves the
 * holder's hands; the queue moves on, or the call is freed. */
static void heap_done(struct apg_http_call *call)
{
    if (call->hc_done)
        return;
    call->hc_held = false;
    call->hc_done = true;
    if (call->hc_in_handler)
        return;
    if (call->hc_gone)
        call_free(call);
    else
        queue_flush(call->hc_conn);
}

void apg_http_end(struct apg_http_call *call)
{
    struct apg_buf *o = call->hc_out;
    if (!o) {
        if (call->hc_heap && call->hc_answered)
            heap_done(call);
        return;
    }
    call->hc_out = NULL;
    if (call->hc_chunked) {
        if (o->b_len < call->hc_chunk_at + CHUNK_HEAD) {
            apg_conn_close(call->hc_conn, "out of memory writing an HTTP answer");
            return;
        }
        chunk_close(call, o);
        apg_buf_append(o, "0\r\n\r\n", 5);
        apg_net_conn_out_done(call->hc_conn);
        return;
    }
    if (o->b_len < call->hc_body_at) { /* out of memory on the way: cut the connection */
        apg_conn_close(call->hc_conn, "out of memory writing an HTTP answer");
        if (call->hc_heap)
            heap_done(call);
        return;
    }
    if (call->hc_clen_at == SIZE_MAX) { /* 204 */
        o->b_len = call->hc_body_at;
    } else {
        char num[CLEN_WIDTH + 1];
        int n = snprintf(num, sizeof(num), "%zu", o->b_len - call->hc_body_at);
        memcpy(o->b_data + call->hc_clen_at, num, (size_t)n);
    }
    if (call->hc_head)
        o->b_len = call->hc_body_at;
    if (call->hc_heap)
        heap_done(call);
    else
        apg_net_conn_out_done(call->hc_conn);
}

apg_err_t apg_http_reply(struct apg_http_call *call, int status, const char *content_type,
                         const void *body, size_t len)
{
    struct apg_buf *o = apg_http_begin(call, status, content_type);
    apg_err_t e = o ? apg_buf_append(o, body, len) : APG_ECLOSED;
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
        if (!call->hc_answered && !call->hc_held)
            reply_text(call, 500, "the handler gave no answer");
        return;
    }
    if (path_known)
        reply_text(call, 405, "method not allowed on this path");
    else
        reply_text(call, 404, "no such path");
}

/* ---- held calls ---- */

static void call_free(struct apg_http_call *call)
{
    if (call->hc_counted)
        atomic_fetch_sub(&call->hc_srv->hs_held, 1);
    apg_buf_free(&call->hc_buf);
    apg_conn_unref(call->hc_conn);
    apg_free(call);
}

static struct apg_http_call *heap_call(const struct apg_http_call *from)
{
    struct apg_http_call *h = apg_malloc(sizeof(*h));
    if (!h)
        return NULL;
    *h = *from;
    h->hc_heap = true;
    h->hc_req = NULL;
    h->hc_buf = (struct apg_buf)APG_BUF_INIT;
    h->hc_next = NULL;
    apg_conn_ref(h->hc_conn);
    return h;
}

static struct hconn *hconn_of(struct apg_conn *c)
{
    struct hconn *hq = apg_conn_user(c);
    if (!hq && (hq = apg_calloc(1, sizeof(*hq))) != NULL)
        apg_conn_set_user(c, hq);
    return hq;
}

static void queue_add(struct hconn *hq, struct apg_http_call *h)
{
    if (hq->hq_tail)
        hq->hq_tail->hc_next = h;
    else
        hq->hq_head = h;
    hq->hq_tail = h;
    if (h->hc_close)
        hq->hq_closing = true;
}

/* Moves the whole answers at the head of c's queue to its output. */
static void queue_flush(struct apg_conn *c)
{
    struct hconn *hq = apg_conn_user(c);
    if (!hq)
        return;
    struct apg_http_call *h;
    while ((h = hq->hq_head) != NULL && h->hc_done) {
        hq->hq_head = h->hc_next;
        if (!hq->hq_head)
            hq->hq_tail = NULL;
        struct apg_buf *o = apg_net_conn_out(c);
        bool close = h->hc_close;
        if (o && h->hc_buf.b_len) {
            if (apg_buf_append(o, h->hc_buf.b_data, h->hc_buf.b_len))
                apg_conn_close(c, "out of memory writing an HTTP answer");
            else
                apg_net_conn_out_done(c);
        }
        call_free(h);
        if (close) {
            apg_conn_close_after_write(c, "HTTP connection closed by request");
            return;
        }
    }
}

struct apg_http_call *apg_http_hold(struct apg_http_call *call, apg_http_gone_fn on_gone, void *arg)
{
    struct apg_http_call *h = call;
    if (!call->hc_heap) {
        struct hconn *hq = hconn_of(call->hc_conn);
        if (!hq || !(h = heap_call(call)))
            return NULL;
        call->hc_answered = true; /* the stack call is done with; h answers */
        call->hc_close = false;   /* h closes the connection when its turn comes */
        queue_add(hq, h);
    }
    if (!h->hc_counted) {
        h->hc_counted = true;
        atomic_fetch_add(&h->hc_srv->hs_held, 1);
    }
    h->hc_held = true;
    h->hc_on_gone = on_gone;
    h->hc_gone_arg = arg;
    return h;
}

void apg_http_drop(struct apg_http_call *call)
{
    if (call->hc_answered)
        return;
    if (!apg_http_gone(call)) { /* the peer still waits: it gets an answer */
        reply_text(call, 503, "the request was given up");
        return;
    }
    call->hc_answered = true;
    heap_done(call);
}

bool apg_http_gone(const struct apg_http_call *call)
{
    return call->hc_gone || apg_conn_is_closed(call->hc_conn);
}

const char *apg_http_peer(const struct apg_http_call *call)
{
    return apg_conn_peer(call->hc_conn);
}

struct hpost {
    struct apg_http_call *hp_call;
    apg_http_post_fn hp_fn;
    void *hp_arg;
};

static void post_run(struct apg_conn *c, void *arg)
{
    struct hpost *p = arg;
    p->hp_fn(p->hp_call, p->hp_arg);
    apg_free(p);
}

apg_err_t apg_http_post(struct apg_http_call *call, apg_http_post_fn fn, void *arg)
{
    struct hpost *p = apg_malloc(sizeof(*p));
    if (!p)
        return APG_ENOMEM;
    p->hp_call = call;
    p->hp_fn = fn;
    p->hp_arg = arg;
    apg_err_t e = apg_conn_post(call->hc_conn, post_run, p);
    if (e) {
        apg_free(p);
        if (e == APG_ESHUTDOWN && call->hc_gone) /* its connection closed: nobody else has it */
            call_free(call);
    }
    return e;
}

/* c closes: waiting answers are dropped, holders told. */
static void hc_on_close(struct apg_conn *c, void *ud)
{
    struct hconn *hq = apg_conn_user(c);
    if (!hq)
        return;
    apg_conn_set_user(c, NULL);
    struct apg_http_call *h = hq->hq_head;
    apg_free(hq);
    while (h) {
        struct apg_http_call *next = h->hc_next;
        h->hc_gone = true;
        h->hc_next = NULL;
        if (h->hc_done)
            call_free(h);
        else if (h->hc_on_gone)
            h->hc_on_gone(h, h->hc_gone_arg);
        h = next;
    }
}

static void call_route(struct apg_http_call *call, const struct apg_http_req *req)
{
    if (req->hr_status) {
        struct apg_net_loop *l = call->hc_conn->c_loop;
        int64_t quiet = 0;
        if (apg_log_limit_hit(&call->hc_srv->hs_refused, (int64_t)uv_now(&l->l_uv), 1000, &quiet))
            apg_log_info(l->l_name, "refusing a request from %s: %d %s (%lld more refused since)",
                         call->hc_conn->c_peer, req->hr_status, req->hr_error, (long long)quiet);
        struct apg_http_server *hs = call->hc_srv;
        if (hs->hs_on_refused && hs->hs_on_refused(call, req, hs->hs_ud))
            call->hc_drain = true;
        else
            reply_text(call, req->hr_status, req->hr_error);
    } else {
        route(call, req);
    }
}

static bool hc_dispatch(struct apg_conn *c, void *msg)
{
    struct apg_net_loop *l = c->c_loop;
    struct hloop *hl = msg;
    const struct apg_http_req *req = &hl->hl_req;
    if (c->c_drain_close) /* pipelined after a request that ended the connection */
        return false;
    struct hconn *dq = apg_conn_user(c);
    if (dq && dq->hq_draining) {
        dq->hq_drained += hl->hl_req.hr_len;
        if (dq->hq_drained > DRAIN_MAX)
            apg_conn_close_after_write(c, "refused HTTP request: peer kept sending");
        return true;
    }
    struct apg_http_call call = {
        .hc_srv = l->l_ud,
        .hc_conn = c,
        .hc_req = req,
        .hc_close = req->hr_status != 0 || !req->hr_keep_alive,
        .hc_head = req->hr_status == 0 && strcmp(req->hr_method, "HEAD") == 0,
    };
    struct hconn *hq = apg_conn_user(c);
    if (hq && hq->hq_head) {
        /* Behind a held call: served now, answered in its turn. */
        if (hq->hq_closing)
            return false;
        struct apg_http_call *h = heap_call(&call);
        if (!h) {
            apg_conn_close(c, "out of memory queueing an HTTP request");
            return false;
        }
        h->hc_req = req;
        h->hc_in_handler = true;
        queue_add(hq, h);
        call_route(h, req);
        h->hc_in_handler = false;
        h->hc_req = NULL;
        if (h->hc_done)
            queue_flush(c);
        return true;
    }
    call_route(&call, req);
    struct hconn *drq = call.hc_drain ? hconn_of(c) : NULL;
    if (drq) {
        drq->hq_draining = true;
        return true;
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

/* ---- ticks ---- */

static void on_tick_timer(uv_timer_t *t)
{
    struct apg_http_server *hs = t->data;
    if (!hs->hs_on_tick(hs->hs_ud))
        uv_timer_stop(t);
}

static void hs_loop_start(int idx, uv_loop_t *loop, void *ud)
{
    struct apg_http_server *hs = ud;
    if (!hs->hs_timers || idx >= hs->hs_n_loops)
        return;
    uv_timer_t *t = &hs->hs_timers[idx];
    uv_timer_init(loop, t);
    t->data = hs;
}

void apg_http_tick_want(struct apg_http_call *call)
{
    struct apg_http_server *hs = call->hc_srv;
    int idx = apg_conn_loop_index(call->hc_conn);
    if (!hs->hs_timers || idx < 0 || idx >= hs->hs_n_loops)
        return;
    uv_timer_t *t = &hs->hs_timers[idx];
    if (!uv_is_active((uv_handle_t *)t))
        uv_timer_start(t, on_tick_timer, hs->hs_tick_ms, hs->hs_tick_ms);
}

static void hs_loop_stop(int idx, uv_loop_t *loop, void *ud)
{
    struct apg_http_server *hs = ud;
    if (!hs->hs_timers || idx >= hs->hs_n_loops)
        return;
    uv_timer_stop(&hs->hs_timers[idx]);
    uv_close((uv_handle_t *)&hs->hs_timers[idx], NULL);
}

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
    hs->hs_on_refused = opts->on_refused;
    hs->hs_n_loops = opts->n_loops > 0 ? opts->n_loops : 1;
    if (opts->tick_ms && opts->on_tick) {
        hs->hs_tick_ms = opts->tick_ms;
        hs->hs_on_tick = opts->on_tick;
        hs->hs_timers = apg_calloc((size_t)hs->hs_n_loops, sizeof(*hs->hs_timers));
        if (!hs->hs_timers) {
            apg_free(hs);
            return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
        }
    }
    struct apg_net_server_opts no = {
        .name = opts->name ? opts->name : "http",
        .host = opts->host,
        .port = opts->port,
        .port_key = opts->port_key,
        .n_loops = opts->n_loops > 0 ? opts->n_loops : 1,
        .codec = &http_codec,
        .max_frame = APG_HTTP_MAX_HEADER + hs->hs_max_body,
        .limits = opts->limits,
        .on_close = hc_on_close,
        .on_loop_start = hs_loop_start,
        .on_loop_stop = hs_loop_stop,
        .ud = hs,
    };
    apg_err_t e = apg_net_server_start(&no, &hs->hs_net, err, errlen);
    if (e) {
        apg_free(hs->hs_timers);
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
    /* Halted, the loops refuse posts (apg_http_post answers APG_ESHUTDOWN)
     * but their memory stays: held calls whose answers other threads still
     * post (a durable put's acknowledgement) are released first. */
    apg_net_server_halt(srv->hs_net);
    for (int i = 0; i < STOP_WAIT_MS && atomic_load(&srv->hs_held) > 0; i++)
        usleep(1000);
    apg_net_server_stop(srv->hs_net);
    apg_free(srv->hs_timers);
    apg_free(srv);
}

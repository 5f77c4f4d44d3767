/* HTTP/1.1 on the net loops: the request codec (http_codec.c, pure) and the
 * server that routes requests to handlers (http_server.c).
 *
 * A request is one whole message cut from a connection's input: the header
 * block (at most APG_HTTP_MAX_HEADER bytes, CRLF line ends) and a body of
 * Content-Length bytes. Everything in struct apg_http_req points into the
 * bytes it was parsed from. A request the codec refuses carries the 4xx
 * status to answer (hr_status) and the connection closes after that answer.
 *
 * Threads: handlers run on the connection's loop thread and answer before
 * they return (apg_http_reply, or apg_http_begin / apg_http_end), or hold
 * the call (apg_http_hold) and answer it later on that thread, reached
 * from other threads with apg_http_post. Routes are tried in table order;
 * the first whose path and method match answers. */
#ifndef APG_HTTP_HTTP_H
#define APG_HTTP_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "net/net.h"

#define APG_HTTP_MAX_HEADER (16u * 1024) /* request line + headers: 431 above */
#define APG_HTTP_MAX_URL (8u * 1024)     /* request target: 414 above */
#define APG_HTTP_MAX_HEADERS 64          /* header fields: 431 above */

struct apg_http_hdr {
    const char *hh_name;
    size_t hh_name_len;
    const char *hh_val;
    size_t hh_val_len;
};

struct apg_http_req {
    size_t hr_len;        /* bytes of the message (0: incomplete) */
    int hr_status;        /* 0, or the 4xx/5xx to answer before closing */
    const char *hr_error; /* static text saying why, with hr_status */
    const char *hr_method;
    const char *hr_path; /* request target up to '?' */
    size_t hr_path_len;
    const char *hr_query; /* after '?', without it; NULL when none */
    size_t hr_query_len;
    int hr_major, hr_minor;
    bool hr_keep_alive; /* HTTP/1.1 unless "Connection: close"; 1.0 with keep-alive */
    struct apg_http_hdr hr_hdrs[APG_HTTP_MAX_HEADERS];
    int hr_nhdrs;
    const uint8_t *hr_body;
    size_t hr_body_len;
};

/* Parses the first request in buf[0..len) into req (borrowing buf). Pure.
 * req->hr_len = 0: more bytes are needed, and *want (may be NULL) is the
 * whole length once the headers announced it (0 while unknown).
 * req->hr_len = N with hr_status 0: a whole request of N bytes; with
 * hr_status set: the request cannot be served (400 malformed, 411 chunked
 * body, 413 body over max_body, 414 target too long, 431 header block too
 * large) and N covers every byte given, as nothing after it is read; with
 * 413 the request line and headers were whole, so method, path, query and
 * headers are set (the body is not). */
void apg_http_parse(const uint8_t *buf, size_t len, size_t max_body, struct apg_http_req *req,
                    size_t *want);

/* The value of header name (case-insensitive), or NULL; *len its length. */
const char *apg_http_header(const struct apg_http_req *req, const char *name, size_t *len);

/* The reason phrase of status ("Not Found"). */
const char *apg_http_reason(int status);

/* ---- server (http_server.c) ---- */

struct apg_http_server;
struct apg_http_call; /* one request being answered; valid during the handler */

typedef void (*apg_http_handler_fn)(struct apg_http_call *call, const struct apg_http_req *req,
                                    void *ud);

struct apg_http_route {
    const char *hr_route_method; /* "GET" */
    const char *hr_route_path;   /* exact path "/metrics"; a trailing '*' matches a prefix */
    apg_http_handler_fn hr_route_fn;
};

struct apg_http_server_opts {
    const char *name; /* for logs */
    const char *host;
    int port; /* 0 = ephemeral */
    const char *port_key;
    int n_loops;
    const struct apg_http_route *routes; /* borrowed for the server's life */
    size_t n_routes;
    size_t max_body; /* largest request body; 0 = 4 MiB */
    /* Slow and idle peers (net.h): a request must be complete frame_timeout_ms
     * after its first byte; keep-alive connections idle idle_timeout_s close. */
    struct apg_net_limits limits;
    void *ud; /* handed to the handlers */
    /* Run every tick_ms on a loop thread once apg_http_tick_want asked for
     * it there, until it returns false (retries of held calls, deadlines):
     * an idle port has no timer running. Optional. */
    uint32_t tick_ms;
    bool (*on_tick)(void *ud);
    /* A request the codec refused (req->hr_status set; see apg_http_parse
     * for what else is set): answers it (apg_http_reply, or begin / end)
     * and returns true, or returns false for the plain-text answer. The
     * connection closes after the answer either way. Optional. */
    bool (*on_refused)(struct apg_http_call *call, const struct apg_http_req *req, void *ud);
};

apg_err_t apg_http_server_start(const struct apg_http_server_opts *opts,
                                struct apg_http_server **out, char *err, size_t errlen);
int apg_http_server_port(const struct apg_http_server *srv);
/* Closes every connection (held calls' on_gone run), waits up to 10 s
 * until every held call was answered, dropped or released by a refused
 * apg_http_post, and frees srv. Not from a loop thread. */
void apg_http_server_stop(struct apg_http_server *srv);

/* A whole answer: status, content type, body (copied). Once per call. The
 * content type is written verbatim as the Content-Type line, so further
 * header lines may follow it after "\r\n" (console_assets.c: ETag). */
apg_err_t apg_http_reply(struct apg_http_call *call, int status, const char *content_type,
                         const void *body, size_t len);
/* A streamed answer: writes the status line and headers and returns the
 * buffer the body is appended to (the connection's output, no copy), NULL
 * when the connection is gone; apg_http_end fills in Content-Length. */
struct apg_buf *apg_http_begin(struct apg_http_call *call, int status, const char *content_type);
void apg_http_end(struct apg_http_call *call);
/* A streamed answer sent while it is written: like apg_http_begin, but
 * with Transfer-Encoding: chunked, and each apg_http_flush sends the body
 * appended since the last one as a chunk, as far as the socket takes it
 * at once (no wait: the rest goes with a later flush or apg_http_end), so
 * the peer reads while the handler writes on. A flush may move the
 * buffer's bytes: hold no pointers into it across one. The answer carries
 * Content-Length instead, and flushes send nothing, for HEAD, HTTP/1.0
 * and a request queued behind a held call. */
struct apg_buf *apg_http_begin_chunked(struct apg_http_call *call, int status,
                                       const char *content_type);
void apg_http_flush(struct apg_http_call *call);
/* apg_http_begin with extra header lines (each "Name: value\r\n"; NULL
 * for none). */
struct apg_buf *apg_http_begin_with(struct apg_http_call *call, int status,
                                    const char *content_type, const char *extra);

/* ---- answers that come later (long polling, durable puts) ---- */

/* In a handler: keeps call open after the handler returns and returns the
 * handle to answer it with (the request's bytes are gone by then: copy
 * what is needed first), or NULL when out of memory (then answer now).
 * The handle stays valid until it is answered (apg_http_reply, or
 * apg_http_end after apg_http_begin) or apg_http_drop: also after the
 * connection closed, when the answer is discarded. on_gone (optional)
 * runs once on the loop thread when the connection closes first; the
 * holder still answers or drops the handle. Answers go out in request
 * order: requests that arrive behind a held one on the same connection
 * are served at once and their answers wait for its. Loop thread. */
typedef void (*apg_http_gone_fn)(struct apg_http_call *call, void *arg);
struct apg_http_call *apg_http_hold(struct apg_http_call *call, apg_http_gone_fn on_gone,
                                    void *arg);
/* Releases a held call without an answer (its connection closed). */
void apg_http_drop(struct apg_http_call *call);
/* True when the held call's connection is closed. */
bool apg_http_gone(const struct apg_http_call *call);
/* Thread-safe: runs fn(call, arg) on the held call's loop thread, where it
 * answers or drops call. APG_ESHUTDOWN when the server is stopping: fn
 * never runs and call is released. */
typedef void (*apg_http_post_fn)(struct apg_http_call *call, void *arg);
apg_err_t apg_http_post(struct apg_http_call *call, apg_http_post_fn fn, void *arg);
/* Starts the ticks (on_tick) of call's loop if they are not running.
 * Loop thread. */
void apg_http_tick_want(struct apg_http_call *call);
/* The peer "ip:port". */
const char *apg_http_peer(const struct apg_http_call *call);

#endif

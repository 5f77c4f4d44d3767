/* A gRPC server over cleartext HTTP/2 (h2c) on the net loops.
 *
 * A call is a POST to /<package.Service>/<Method> whose DATA carries
 * length-prefixed messages. Three kinds of method:
 *   unary          one request message; gm_fn answers with apg_grpc_call_reply
 *                  or apg_grpc_call_fail before it returns, or takes a
 *                  reference (apg_grpc_call_ref) and answers later;
 *   server stream  one request message; gm_fn (or later code holding a
 *                  reference) sends any number of messages with
 *                  apg_grpc_call_send and ends with apg_grpc_call_finish;
 *   bidirectional  gm_open when the headers are in, gm_msg per request
 *                  message as it arrives, gm_end when the client ends its
 *                  side (NULL: the call ends OK); messages go out with
 *                  apg_grpc_call_send at any time until apg_grpc_call_finish.
 * gm_close (any kind, may be NULL) runs when the stream is gone, whatever
 * ended it. A path without a method is answered UNIMPLEMENTED; a unary or
 * server-streaming call whose deadline (grpc-timeout) passes before it is
 * answered ends DEADLINE_EXCEEDED (bidirectional calls keep no deadline).
 *
 * Threads: methods run on the loop thread of the connection; a call pointer
 * is valid on that thread until gm_close. Other threads reach a call through
 * a struct apg_grpc_ref and apg_grpc_ref_post. */
#ifndef APG_PROXY_GRPC_SERVER_H
#define APG_PROXY_GRPC_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "net/net.h"

struct apg_config;

/* gRPC status codes (the numbers are the protocol's). */
enum apg_grpc_status {
    APG_GRPC_OK = 0,
    APG_GRPC_INVALID_ARGUMENT = 3,
    APG_GRPC_DEADLINE_EXCEEDED = 4,
    APG_GRPC_RESOURCE_EXHAUSTED = 8,
    APG_GRPC_UNIMPLEMENTED = 12,
    APG_GRPC_INTERNAL = 13,
    APG_GRPC_UNAVAILABLE = 14,
};

struct apg_grpc_server;
struct apg_grpc_call;

/* req is the message without its 5-byte prefix, valid during the call. */
typedef void (*apg_grpc_unary_fn)(struct apg_grpc_call *call, const uint8_t *req, size_t len,
                                  void *ud);
typedef void (*apg_grpc_event_fn)(struct apg_grpc_call *call, void *ud);

enum apg_grpc_kind { APG_GRPC_UNARY = 0, APG_GRPC_SERVER_STREAM, APG_GRPC_BIDI };

struct apg_grpc_method {
    const char *gm_path;     /* "/apache.rocketmq.v2.MessagingService/QueryRoute" */
    apg_grpc_unary_fn gm_fn; /* unary and server stream */
    enum apg_grpc_kind gm_kind;
    apg_grpc_event_fn gm_open;  /* bidirectional: headers complete */
    apg_grpc_unary_fn gm_msg;   /* bidirectional: one request message */
    apg_grpc_event_fn gm_end;   /* bidirectional: the client ended its side */
    apg_grpc_event_fn gm_close; /* the stream is gone; the call is freed after it */
};

struct apg_grpc_server_opts {
    const char *name; /* for logs */
    const char *host; /* bind address */
    int port;         /* 0 = ephemeral */
    int n_loops;
    const struct apg_grpc_method *methods; /* borrowed for the server's life */
    size_t n_methods;
    size_t max_message;           /* largest request message; 0 = 4 MiB */
    struct apg_net_limits limits; /* slow-peer rules of net.h, per HTTP/2 frame */
    /* Configuration whose tlsServer* keys put TLS on the port (ALPN "h2"),
     * as on the remoting port; NULL or tlsServerMode=disabled: h2c only. */
    const struct apg_config *tls_cfg;
    /* Loop thread, after the frames of one read were handled (may be
     * NULL): work the methods gathered over the read (SendMessage's
     * appends) is done and answered now. */
    void (*on_read_end)(int loop, void *ud);
    void *ud; /* handed to the methods */
};

apg_err_t apg_grpc_server_start(const struct apg_grpc_server_opts *opts,
                                struct apg_grpc_server **out, char *err, size_t errlen);
int apg_grpc_server_port(const struct apg_grpc_server *srv);
/* Closes every connection and frees srv. Not from a loop thread. */
void apg_grpc_server_stop(struct apg_grpc_server *srv);

/* Answer of a unary call: status OK with msg (copied). Once per call. */
apg_err_t apg_grpc_call_reply(struct apg_grpc_call *call, const uint8_t *msg, size_t len);
/* Answer with a non-OK status and a message (may be NULL). Once per call. */
apg_err_t apg_grpc_call_fail(struct apg_grpc_call *call, enum apg_grpc_status status,
                             const char *message);
/* One response message (copied) of a streaming call; the response headers
 * go out with the first. APG_EINVAL once the call is finished. */
apg_err_t apg_grpc_call_send(struct apg_grpc_call *call, const uint8_t *msg, size_t len);
/* Ends the call: the trailers (grpc-status, grpc-message) follow the
 * messages already sent. Once per call. */
apg_err_t apg_grpc_call_finish(struct apg_grpc_call *call, enum apg_grpc_status status,
                               const char *message);
/* True once the call's status is decided (finished, failed, answered). */
bool apg_grpc_call_done(const struct apg_grpc_call *call);
/* The value of request header name (lower case, e.g. "x-mq-client-id"), or
 * NULL. Valid until gm_close. */
const char *apg_grpc_call_header(const struct apg_grpc_call *call, const char *name);
/* A pointer of the method's own, kept with the call. */
void apg_grpc_call_set_user(struct apg_grpc_call *call, void *user);
void *apg_grpc_call_user(const struct apg_grpc_call *call);

/* The call is answered later on its loop thread, before the loop goes back
 * to waiting (from on_read_end): no deadline timer is armed for it. */
void apg_grpc_call_hold(struct apg_grpc_call *call);
/* The index of the call's loop (0 .. n_loops - 1). */
int apg_grpc_call_loop(const struct apg_grpc_call *call);

/* A reference to a call usable from any thread: it keeps the connection's
 * memory, not the stream; apg_grpc_ref_post finds the stream again on its
 * loop (NULL when it is gone). Taking one also tells a unary call that it
 * is answered later. */
struct apg_grpc_ref {
    struct apg_conn *gr_conn;
    int32_t gr_stream;
};
typedef void (*apg_grpc_ref_fn)(struct apg_grpc_call *call, void *arg);
/* Loop thread of the call. Release with apg_grpc_ref_release. */
void apg_grpc_call_ref(struct apg_grpc_call *call, struct apg_grpc_ref *out);
/* Any thread. */
void apg_grpc_ref_release(struct apg_grpc_ref *r);
/* Any thread: runs fn(call or NULL, arg) on the call's loop thread, then
 * sends what it queued. On error (APG_ESHUTDOWN, APG_ENOMEM) fn never runs. */
apg_err_t apg_grpc_ref_post(const struct apg_grpc_ref *r, apg_grpc_ref_fn fn, void *arg);
/* The call's deadline in uv_now milliseconds of its loop; 0 = none. */
uint64_t apg_grpc_call_deadline(const struct apg_grpc_call *call);
/* "ip:port" of the peer. */
const char *apg_grpc_call_peer(const struct apg_grpc_call *call);

/* Parses a grpc-timeout header value ("100m", "5S", ...) into milliseconds
 * (rounded up, at most ~100 days). APG_EINVAL when malformed. */
apg_err_t apg_grpc_timeout_parse(const char *v, size_t len, uint64_t *ms);

#endif

/* A gRPC server over cleartext HTTP/2 (h2c) on the net loops.
 *
 * Unary calls only so far: a request is one length-prefixed message in the
 * DATA of a POST to /<package.Service>/<Method>; the handler registered for
 * the path answers with apg_grpc_call_reply or apg_grpc_call_fail before it
 * returns. A path without a handler is answered UNIMPLEMENTED, a deadline
 * (grpc-timeout) already past when the request completes DEADLINE_EXCEEDED.
 *
 * Threads: handlers run on the loop thread of the connection; the call
 * object is valid only during the handler. */
#ifndef APG_PROXY_GRPC_SERVER_H
#define APG_PROXY_GRPC_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

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

struct apg_grpc_method {
    const char *gm_path; /* "/apache.rocketmq.v2.MessagingService/QueryRoute" */
    apg_grpc_unary_fn gm_fn;
};

struct apg_grpc_server_opts {
    const char *name; /* for logs */
    const char *host; /* bind address */
    int port;         /* 0 = ephemeral */
    int n_loops;
    const struct apg_grpc_method *methods; /* borrowed for the server's life */
    size_t n_methods;
    size_t max_message;        /* largest request message; 0 = 4 MiB */
    int idle_timeout_s;        /* as in apg_net_server_opts */
    uint32_t frame_timeout_ms; /* slow-peer rules of net.h, per HTTP/2 frame */
    uint32_t frame_min_bytes_per_s;
    size_t max_pending_bytes;
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
/* The call's deadline in uv_now milliseconds of its loop; 0 = none. */
uint64_t apg_grpc_call_deadline(const struct apg_grpc_call *call);
/* "ip:port" of the peer. */
const char *apg_grpc_call_peer(const struct apg_grpc_call *call);

/* Parses a grpc-timeout header value ("100m", "5S", ...) into milliseconds
 * (rounded up, at most ~100 days). APG_EINVAL when malformed. */
apg_err_t apg_grpc_timeout_parse(const char *v, size_t len, uint64_t *ms);

#endif

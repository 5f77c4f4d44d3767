/* MessagingService methods served on the gRPC port (messaging.c).
 *
 * Threads: the methods run on the gRPC loop thread. */
#ifndef APG_PROXY_GRPC_MESSAGING_H
#define APG_PROXY_GRPC_MESSAGING_H

#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "proto/messaging.pb-c.h"
#include "proxy/grpc/grpc_server.h"

struct apg_acl;
struct apg_broker;
struct apg_grpc_clients;
struct apg_grpc_send_batch;

#define APG_GRPC_BATCH_LOOPS 8 /* loops with their own SendMessage batch */

/* What the MessagingService methods run on, below the method table, the ACL
 * and namespace check (auth.c) and the Telemetry stream (telemetry.c), which
 * every backend shares. Each member has the signature of the method it
 * serves and the same contract (answer now, or take a reference and answer
 * later). Two exist: "local", the calls into the broker of this process
 * (apg_grpc_local_backend: messaging.c, produce.c, consume.c), and
 * "remote", which forwards each call over remoting to the brokers a
 * NameServer names (src/proxy/remote, `apogee proxy`). */
struct apg_grpc_backend {
    const char *gb_name;
    apg_grpc_unary_fn gb_query_route, gb_heartbeat, gb_notify;
    apg_grpc_unary_fn gb_send, gb_end_txn;
    apg_grpc_unary_fn gb_receive, gb_ack, gb_change, gb_forward_dlq, gb_assignment;
    apg_grpc_event_fn gb_send_close, gb_receive_close; /* may be NULL */
    /* The server's on_read_end (may be NULL). */
    void (*gb_read_end)(int loop, void *ud);
};

extern const struct apg_grpc_backend apg_grpc_local_backend;

/* The methods' ud: the backend, the broker (local; NULL for remote), the
 * endpoint routes name (the gRPC port at the broker's advertised host) and
 * the clients' Telemetry streams. */
struct apg_grpc_messaging {
    const struct apg_grpc_backend *gm_backend;
    void *gm_remote;     /* the remote backend's state (src/proxy/remote) */
    int64_t gm_max_body; /* maxMessageSize told to producers */
    struct apg_broker *gm_broker;
    /* The ACL of a proxy (aclEnable=true on `apogee proxy`); NULL for the
     * local backend, which checks with its broker's. */
    struct apg_acl *gm_acl;
    char gm_host[128];
    int gm_port;
    struct apg_grpc_clients *gm_clients;
    /* Per loop, made and used by that loop's thread only: the appends of
     * the SendMessage calls of one read (produce.c). */
    struct apg_grpc_send_batch *gm_batch[APG_GRPC_BATCH_LOOPS];
};

extern const struct apg_grpc_method apg_grpc_messaging_methods[];
extern const size_t apg_grpc_messaging_n_methods;

/* Helpers of the method files (loop thread). */
/* Fills st (msg borrowed, NULL = ""). */
void apg_grpc_status_set(Apache__Rocketmq__V2__Status *st, Apache__Rocketmq__V2__Code code,
                         const char *msg);
/* Packs m as the unary call's answer. */
void apg_grpc_answer(struct apg_grpc_call *call, const ProtobufCMessage *m);
/* A response of type d (any whose field "status" is a Status) with only
 * that status, packed into out (reset first). APG_EINVAL for a type
 * without one, APG_ENOMEM. Any thread. */
apg_err_t apg_grpc_status_only(const ProtobufCMessageDescriptor *d, int code, const char *msg,
                               struct apg_buf *out);
/* Answers the unary call with such a response. */
void apg_grpc_answer_status(struct apg_grpc_call *call, const ProtobufCMessageDescriptor *d,
                            int code, const char *msg);
/* Heartbeat and NotifyClientTermination: answered OK, nothing is kept for
 * a client (the local backend; the remote one also forwards them to the
 * brokers, src/proxy/remote/remote_client.c). */
void apg_grpc_heartbeat(struct apg_grpc_call *call, const uint8_t *req, size_t len, void *ud);
void apg_grpc_notify_termination(struct apg_grpc_call *call, const uint8_t *req, size_t len,
                                 void *ud);
/* True with *name set when r names something (non-empty). */
bool apg_grpc_resource_name(const Apache__Rocketmq__V2__Resource *r, const char **name);

#endif

/* MessagingService methods served on the gRPC port (messaging.c).
 *
 * Threads: the methods run on the gRPC loop thread. */
#ifndef APG_PROXY_GRPC_MESSAGING_H
#define APG_PROXY_GRPC_MESSAGING_H

#include <stdbool.h>

#include "proto/messaging.pb-c.h"
#include "proxy/grpc/grpc_server.h"

struct apg_broker;
struct apg_grpc_clients;
struct apg_grpc_send_batch;

#define APG_GRPC_BATCH_LOOPS 8 /* loops with their own SendMessage batch */

/* The methods' ud: the broker, the endpoint routes name (the gRPC port at
 * the broker's advertised host) and the clients' Telemetry streams. */
struct apg_grpc_messaging {
    struct apg_broker *gm_broker;
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
/* True with *name set when r names something (non-empty). */
bool apg_grpc_resource_name(const Apache__Rocketmq__V2__Resource *r, const char **name);

#endif

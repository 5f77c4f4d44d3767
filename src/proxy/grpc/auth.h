/* The plain ACL on the gRPC port (auth.c): with aclEnable=true every
 * MessagingService request is checked against the broker's accounts before
 * its method runs.
 *
 * Threads: the gRPC loop thread. */
#ifndef APG_PROXY_GRPC_AUTH_H
#define APG_PROXY_GRPC_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/mem.h"
#include "proxy/grpc/grpc_server.h"

/* The checked operations, one per MessagingService method. */
enum apg_grpc_op {
    APG_GRPC_OP_QUERY_ROUTE,
    APG_GRPC_OP_HEARTBEAT,
    APG_GRPC_OP_SEND,
    APG_GRPC_OP_END_TRANSACTION,
    APG_GRPC_OP_NOTIFY_TERMINATION,
    APG_GRPC_OP_TELEMETRY,
    APG_GRPC_OP_RECEIVE,
    APG_GRPC_OP_ACK,
    APG_GRPC_OP_CHANGE_INVISIBLE,
    APG_GRPC_OP_FORWARD_DLQ,
    APG_GRPC_OP_QUERY_ASSIGNMENT,
    APG_GRPC_OP_N
};

/* True when the request message *req of op may go to its method: the ACL is
 * off, or the call's authorization header and the resources the request
 * names pass it. Otherwise answers the call with a response whose Status is
 * UNAUTHORIZED (no, unknown or badly signed credentials) or FORBIDDEN (no
 * permission), counts and logs the refusal, and returns false. With a
 * namespace (ns.h) the request is re-encoded with the broker's names into
 * *owned (free with apg_free after the method), and *req, *len point there.
 * ud is the methods' struct apg_grpc_messaging. */
bool apg_grpc_auth_admit(struct apg_grpc_call *call, enum apg_grpc_op op, const uint8_t **req,
                         size_t *len, void *ud, uint8_t **owned);

/* Defines name as method inner behind apg_grpc_auth_admit. */
#define APG_GRPC_GUARDED(name, op, inner)                                                          \
    static void name(struct apg_grpc_call *call, const uint8_t *req, size_t len, void *ud)         \
    {                                                                                              \
        uint8_t *owned = NULL;                                                                     \
        if (apg_grpc_auth_admit(call, op, &req, &len, ud, &owned))                                 \
            inner(call, req, len, ud);                                                             \
        apg_free(owned);                                                                           \
    }

#endif

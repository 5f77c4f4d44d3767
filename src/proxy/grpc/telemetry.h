/* The Telemetry stream of MessagingService and the table of client streams
 * (telemetry.c).
 *
 * Threads: the stream callbacks run on the gRPC loop thread (one loop);
 * apg_grpc_clients_recover and apg_grpc_clients_count on any thread. */
#ifndef APG_PROXY_GRPC_TELEMETRY_H
#define APG_PROXY_GRPC_TELEMETRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/grpc/messaging.h"

struct apg_grpc_clients;

apg_err_t apg_grpc_clients_new(struct apg_grpc_clients **out);
/* After the gRPC server stopped (no stream is left). NULL is a no-op. */
void apg_grpc_clients_free(struct apg_grpc_clients *ct);
/* Clients with an open Telemetry stream. */
size_t apg_grpc_clients_count(struct apg_grpc_clients *ct);
/* Posts cmd (a packed TelemetryCommand, copied) to the stream of a producer
 * that declared topic, else of any producer. False when there is none. */
bool apg_grpc_clients_recover(struct apg_grpc_clients *ct, const char *topic, const uint8_t *cmd,
                              size_t len);

/* What a client's latest Settings declared: its type, and the published
 * topics of a producer or the group and subscriptions (topic, expression,
 * SQL92 or TAG) of a consumer. Valid during the callback only. */
struct apg_grpc_client_view {
    int cv_type; /* Apache__Rocketmq__V2__ClientType */
    const char *cv_group;
    size_t cv_n;
    const char *const *cv_topics;
    const char *const *cv_exprs;
    const bool *cv_sql;
};
/* Calls fn (under the table's lock: fn must not block) with the view of
 * client id; false when the client has no Telemetry stream. Any thread. */
bool apg_grpc_clients_view(struct apg_grpc_clients *ct, const char *id,
                           void (*fn)(const struct apg_grpc_client_view *v, void *arg), void *arg);

/* The method's callbacks (ud: struct apg_grpc_messaging). */
void apg_grpc_telemetry_msg(struct apg_grpc_call *call, const uint8_t *req, size_t len, void *ud);
void apg_grpc_telemetry_end(struct apg_grpc_call *call, void *ud);
void apg_grpc_telemetry_close(struct apg_grpc_call *call, void *ud);

#endif

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

/* The method's callbacks (ud: struct apg_grpc_messaging). */
void apg_grpc_telemetry_msg(struct apg_grpc_call *call, const uint8_t *req, size_t len, void *ud);
void apg_grpc_telemetry_end(struct apg_grpc_call *call, void *ud);
void apg_grpc_telemetry_close(struct apg_grpc_call *call, void *ud);

#endif

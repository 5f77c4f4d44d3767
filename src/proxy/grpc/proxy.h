/* The RocketMQ 5 gRPC port of a broker process (grpcServerPort).
 *
 * Started after the broker and stopped before it; the services it serves
 * call into the broker the way the remoting processors do.
 *
 * Threads: start and stop on the control thread (main). */
#ifndef APG_PROXY_GRPC_PROXY_H
#define APG_PROXY_GRPC_PROXY_H

#include <stddef.h>

#include "common/err.h"

struct apg_config;
struct apg_broker;
struct apg_grpc_proxy;

/* APG_OK with *out NULL when grpcServerPort is 0 (off). */
apg_err_t apg_grpc_proxy_start(const struct apg_config *cfg, struct apg_broker *b,
                               struct apg_grpc_proxy **out, char *err, size_t errlen);
/* Closes the port. NULL is a no-op. */
void apg_grpc_proxy_stop(struct apg_grpc_proxy *px);

#endif

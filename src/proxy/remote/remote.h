/* `apogee proxy`: the RocketMQ 5 gRPC port in front of the brokers a
 * NameServer names, with no store and no broker of its own (RocketMQ 5's
 * "cluster mode" proxy).
 *
 * Threads: start and stop on the control thread (main). */
#ifndef APG_PROXY_REMOTE_H
#define APG_PROXY_REMOTE_H

#include <stddef.h>

#include "common/err.h"

struct apg_config;
struct apg_proxy;

/* Starts the remoting client and the gRPC port (grpcServerPort) of cfg, an
 * APG_ROLE_PROXY configuration; APG_ECONFIG when namesrvAddr is empty or
 * grpcServerPort is 0. */
apg_err_t apg_proxy_start(const struct apg_config *cfg, struct apg_proxy **out, char *err,
                          size_t errlen);
/* Closes the port, then the broker connections. NULL is a no-op. */
void apg_proxy_stop(struct apg_proxy *px);

#endif

/* The HTTP port of a broker process (httpListenPort): GET /metrics,
 * /api/cluster and /api/topics.
 * Threads: start and stop run on the control thread. */
#ifndef APG_HTTP_HTTP_PORT_H
#define APG_HTTP_HTTP_PORT_H

#include <stddef.h>

#include "common/err.h"

struct apg_config;
struct apg_broker;
struct apg_http_port;

/* Starts the port unless httpListenPort is 0 (*out stays NULL then).
 * Borrows cfg and b until apg_http_port_stop. */
apg_err_t apg_http_port_start(const struct apg_config *cfg, struct apg_broker *b,
                              struct apg_http_port **out, char *err, size_t errlen);
/* Before the broker stops. NULL is ignored. */
void apg_http_port_stop(struct apg_http_port *hp);

#endif

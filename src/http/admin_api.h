/* The REST admin API under /api/ and the web console's assets
 * (docs/http-api.md). Route handlers for the HTTP port's table
 * (http_port.c); ud is the port, whose first member is the broker pointer.
 * Threads: the HTTP port's loop thread. */
#ifndef APG_HTTP_ADMIN_API_H
#define APG_HTTP_ADMIN_API_H

#include "broker/broker_rt.h"
#include "http/http.h"

/* Every method on /api/<rest> other than the GET routes of http_port.c
 * (admin_api.c). */
void apg_admin_api_serve(struct apg_http_call *call, const struct apg_http_req *req,
                         struct apg_broker *b);
void apg_admin_api_handle(struct apg_http_call *call, const struct apg_http_req *req, void *ud);

/* GET / and /assets/<file>: the console, embedded at build time
 * (console_assets.c). */
void apg_console_handle(struct apg_http_call *call, const struct apg_http_req *req, void *ud);

#endif

/* The HTTP message protocol of the @aliyunmq/mq-http-sdk clients on the
 * broker's HTTP port (docs/wire.md §18, docs/http-api.md): publish,
 * consume with long polling, ack, ordered consume and transactional half
 * messages under /topics/<topic>/messages.
 *
 * Threads: apg_mqhttp_new / free on the control thread (the port's start
 * and stop); apg_mqhttp_serve and apg_mqhttp_tick on the HTTP loop thread
 * (the port runs one). */
#ifndef APG_HTTP_MQ_HTTP_H
#define APG_HTTP_MQ_HTTP_H

#include "http/http.h"

struct apg_broker;
struct apg_mqhttp;

struct apg_mqhttp *apg_mqhttp_new(struct apg_broker *b);
/* After the HTTP server stopped. NULL is ignored. */
void apg_mqhttp_free(struct apg_mqhttp *mh);
/* Any method on /topics/...: the handler of the route. */
void apg_mqhttp_serve(struct apg_mqhttp *mh, struct apg_http_call *call,
                      const struct apg_http_req *req);
/* A request on /topics/... whose body is over the port's limit (refused
 * before it is read): answers 413 with the SDK's XML error,
 * MessageBodyTooLarge. */
void apg_mqhttp_refuse_large(struct apg_mqhttp *mh, struct apg_http_call *call);
/* Every APG_MQHTTP_TICK_MS on the loop while long polls wait: retries
 * them, ends those whose wait is over. False when none is left. */
#define APG_MQHTTP_TICK_MS 20
bool apg_mqhttp_tick(struct apg_mqhttp *mh);

#endif

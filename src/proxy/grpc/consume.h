/* The consumer side of MessagingService (consume.c): AckMessage,
 * ChangeInvisibleDuration, ForwardMessageToDeadLetterQueue,
 * QueryAssignment, and the frames of ReceiveMessage, all on the broker's
 * pop module (src/broker/pop/pop.h).
 *
 * Threads: the gRPC loop thread; the pop module locks itself. */
#ifndef APG_PROXY_GRPC_CONSUME_H
#define APG_PROXY_GRPC_CONSUME_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "proto/messaging.pb-c.h"
#include "proxy/grpc/grpc_server.h"

/* Unary methods; ud is the struct apg_grpc_messaging of messaging.c. */
void apg_grpc_consume_ack(struct apg_grpc_call *call, const uint8_t *req, size_t len, void *ud);
void apg_grpc_consume_change(struct apg_grpc_call *call, const uint8_t *req, size_t len, void *ud);
void apg_grpc_consume_forward_dlq(struct apg_grpc_call *call, const uint8_t *req, size_t len,
                                  void *ud);
void apg_grpc_consume_assignment(struct apg_grpc_call *call, const uint8_t *req, size_t len,
                                 void *ud);

/* ReceiveMessage, server stream: the frames of apg_grpc_consume_receive,
 * at once or, when nothing is there, after long polling (retried after
 * every pop revive pass until the request's long_polling_timeout). */
void apg_grpc_consume_receive_call(struct apg_grpc_call *call, const uint8_t *req, size_t len,
                                   void *ud);
/* ReceiveMessage's gm_close: drops the call's long-poll wait. */
void apg_grpc_consume_receive_close(struct apg_grpc_call *call, void *ud);

/* ReceiveMessage without the transport: pops what a ReceiveMessageRequest
 * (req[0..len)) asks for and appends the stream's frames to out, each as
 * u32 length (host order) + a packed ReceiveMessageResponse: one message
 * frame per message, then a delivery_timestamp frame and a status frame.
 * *n_msgs gets the number of messages (0: the caller may long-poll until
 * *poll_ms, the request's long_polling_timeout in ms, and call again with
 * final set, which always ends with a status). APG_EINVAL when req does not
 * unpack; APG_ENOMEM. */
apg_err_t apg_grpc_consume_receive(void *ud, const uint8_t *req, size_t len, int final,
                                   struct apg_buf *out, int *n_msgs, int64_t *poll_ms);

/* The frames of one popped batch from broker (the name its receipt handles
 * carry): one message frame per message of res (records at
 * recs[pm_rec_off ..)), the delivery_timestamp frame and an OK status,
 * appended to out as apg_grpc_consume_receive does. Any thread. */
struct apg_pop_result;
apg_err_t apg_grpc_consume_frames(const char *broker, const struct apg_pop_result *res,
                                  const uint8_t *recs, struct apg_buf *out);
/* Sends the frames of out (u32 length + message each) and ends the call OK
 * (the call's loop thread). */
void apg_grpc_consume_send_frames(struct apg_grpc_call *call, const struct apg_buf *out);
/* Helpers shared with the remote backend (pure). */
/* r's name, or NULL when r is NULL or names nothing. */
const char *apg_grpc_res_name(const Apache__Rocketmq__V2__Resource *r);
/* d in milliseconds; dflt when d is NULL. */
int64_t apg_grpc_dur_ms(const Apache__Rocketmq__V2__Duration *d, int64_t dflt);
/* ms within an invisible time's bounds (1 s .. 12 h). */
int64_t apg_grpc_clamp_invisible(int64_t ms);
/* Appends a status frame (code: an Apache__Rocketmq__V2__Code). */
apg_err_t apg_grpc_consume_status_frame(struct apg_buf *out, int code, const char *msg);

#endif

/* SendMessage, EndTransaction and the Telemetry check-back of orphaned
 * transactions (produce.c).
 *
 * Threads: the methods on the gRPC loop thread; start/stop on the control
 * thread. */
#ifndef APG_PROXY_GRPC_PRODUCE_H
#define APG_PROXY_GRPC_PRODUCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "proxy/grpc/messaging.h"

/* PGROUP of half messages sent over gRPC (5.x producers name no group). */
#define APG_GRPC_TXN_GROUP "GRPC_TRANSACTION_PRODUCER"

void apg_grpc_send_message(struct apg_grpc_call *call, const uint8_t *req, size_t len, void *ud);
/* SendMessage's gm_close: a call gone before its batch was stored is not
 * answered. */
void apg_grpc_send_close(struct apg_grpc_call *call, void *ud);
/* The server's on_read_end: stores the SendMessage appends gathered over
 * the read with one append and answers them (loop thread). */
void apg_grpc_produce_read_end(int loop, void *ud);
void apg_grpc_end_transaction(struct apg_grpc_call *call, const uint8_t *req, size_t len, void *ud);
/* Registers (start) and removes (stop: before the gRPC server stops) the
 * transaction check hook that asks 5.x producers over Telemetry. */
void apg_grpc_produce_start(struct apg_grpc_messaging *ms);
void apg_grpc_produce_stop(struct apg_grpc_messaging *ms);
/* Frees the per-loop batches once the gRPC server has stopped. */
void apg_grpc_produce_free(struct apg_grpc_messaging *ms);
/* The hex digest (upper case) of type (a DigestType) of p[0..n) into out;
 * false for an unknown type or too small a buffer. Any thread. */
bool apg_grpc_digest_hex(int type, const uint8_t *p, size_t n, char *out, size_t cap);

/* Shared with the remote backend (any thread). */
struct apg_msg_in;
/* Posts a RecoverOrphanedTransactionCommand for the half message v (its
 * real topic, properties and body) with transaction id txid to a producer's
 * Telemetry stream (apg_grpc_clients_recover); false when none is open. */
bool apg_grpc_txn_recover(struct apg_grpc_clients *ct, const struct apg_msg_in *v,
                          const char *txid);
/* The SendMessageRequest in req[0..len), or NULL when the call was answered
 * (malformed: INVALID_ARGUMENT; not 1 to 1024 messages: BAD_REQUEST). */
Apache__Rocketmq__V2__SendMessageRequest *apg_grpc_send_unpack(struct apg_grpc_call *call,
                                                               const uint8_t *req, size_t len);
/* True when d is absent or matches p[0..n). */
bool apg_grpc_digest_ok(const Apache__Rocketmq__V2__Digest *d, const uint8_t *p, size_t n);
/* Inflates a GZIP body into out, at most max bytes; false when it does not. */
bool apg_grpc_body_inflate(const uint8_t *p, size_t n, size_t max, struct apg_buf *out);
/* The property string of m into props: user properties, TAGS, KEYS, the
 * extra (name, value) pairs (NULL-terminated list), UNIQ_KEY and WAIT;
 * false when a pair is not allowed or the string is too long. */
bool apg_grpc_build_props(const Apache__Rocketmq__V2__Message *m, struct apg_buf *props,
                          const char *const *extra);

#endif

/* Producer: sync, async and oneway sends, batches, queue selection.
 *
 * A producer owns one I/O thread (a libuv loop) that holds every connection
 * (NameServers and brokers), the topic routes and the in-flight requests.
 * Public calls serialize the message on the calling thread and hand the
 * request to the I/O thread through a queue; sync calls then wait on a
 * condition variable. Routes are fetched on first use, refreshed every
 * pollNameServerInterval and after a failed send; the NameServer list is
 * tried in turn when one does not answer. A failed round-robin send is
 * retried up to retryTimesWhenSendFailed more times on another queue,
 * preferring another broker, within the overall sendMsgTimeout.
 *
 * Conf keys read (apogee/conf.h): namesrvAddr (required), producerGroup,
 * instanceName, sendMsgTimeout, retryTimesWhenSendFailed,
 * compressMsgBodyOverHowmuch, compressLevel, maxMessageSize,
 * backPressureForAsyncSendNum, pollNameServerInterval,
 * heartbeatBrokerInterval, serializeType, syncSpinMicros. */
#ifndef APOGEE_PRODUCER_H
#define APOGEE_PRODUCER_H

#include <stddef.h>
#include <stdint.h>

#include "apogee/conf.h"
#include "apogee/error.h"
#include "apogee/message.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct apg_producer apg_producer_t;

enum apg_send_status {
    APG_SEND_OK = 0,
    APG_SEND_FLUSH_DISK_TIMEOUT = 1,
    APG_SEND_FLUSH_SLAVE_TIMEOUT = 2,
    APG_SEND_SLAVE_NOT_AVAILABLE = 3,
};

/* What a send did. On success every field is set. When a send that was
 * handed to the broker fails, only sr_mq (the last queue tried) and
 * sr_broker_code are set: the RocketMQ response code of the broker's refusal
 * (error APG_EBROKER, APG_EBUSY for SYSTEM_BUSY, or APG_EINVAL for
 * MESSAGE_ILLEGAL), 0 when no broker
 * refused (a timeout, a lost connection). sr_reserved is zero: room for
 * fields added later without changing the struct's size. */
typedef struct apg_send_result {
    int sr_status;             /* enum apg_send_status */
    char sr_msg_id[64];        /* UNIQ_KEY (first of a batch) */
    char sr_offset_msg_id[64]; /* broker-assigned id (first of a batch) */
    apg_mq_t sr_mq;            /* queue written */
    int64_t sr_queue_offset;   /* queue offset (first of a batch) */
    int sr_broker_code;        /* the broker's response code (0 = SUCCESS) */
    int sr_reserved[7];
} apg_send_result_t;

/* Async completion. Called exactly once on the I/O thread for each
 * apg_producer_send_async() that returned APG_OK: err is APG_OK and res
 * filled, or err < 0 with errmsg saying why and res carrying sr_mq and
 * sr_broker_code only. res and errmsg borrow: copy what you keep. */
typedef void (*apg_send_cb)(apg_err_t err, const apg_send_result_t *res, const char *errmsg,
                            void *arg);

/* Custom queue selector: returns an index in [0, n). Runs on the I/O thread;
 * must not block. mqs and msg borrow. The message handed in is a read-only
 * view carrying topic, tags, keys and properties, not the caller's object. */
typedef int (*apg_queue_selector)(const apg_mq_t *mqs, size_t n, const apg_message_t *msg,
                                  void *arg);

/* Creates and starts a producer with a copy of conf (borrowed). Returns
 * owned: free with apg_producer_destroy(); NULL on error with err filled. */
APG_EXPORT apg_producer_t *apg_producer_new(const apg_conf_t *conf, char *err, size_t errlen);

/* Stops the I/O thread and frees the producer. In-flight async sends
 * complete with APG_ESHUTDOWN before it returns. Not to be called from a
 * callback. NULL is allowed. */
APG_EXPORT void apg_producer_destroy(apg_producer_t *p);

/* Sends and waits for the broker's answer. Borrows msg (it is serialized
 * before the call returns) but sets its UNIQ_KEY when absent. On APG_OK res
 * (may be NULL) is filled. */
APG_EXPORT apg_err_t apg_producer_send(apg_producer_t *p, apg_message_t *msg,
                                       apg_send_result_t *res, char *err, size_t errlen);

/* Oneway: returns once the request is written to the broker's connection;
 * no answer is awaited and none is known. Borrows msg. */
APG_EXPORT apg_err_t apg_producer_send_oneway(apg_producer_t *p, apg_message_t *msg, char *err,
                                              size_t errlen);

/* Async: returns at once; cb(arg) is called exactly once later if and only
 * if this returns APG_OK. Borrows msg. Blocks while backPressureForAsyncSendNum
 * sends are outstanding. */
APG_EXPORT apg_err_t apg_producer_send_async(apg_producer_t *p, apg_message_t *msg, apg_send_cb cb,
                                             void *arg, char *err, size_t errlen);

/* Ordered send: the queue is chosen by Java String.hashCode(sharding_key)
 * modulo the number of writable queues (as Java's SelectMessageQueueByHash),
 * with no retry on another queue. Borrows msg and key. */
APG_EXPORT apg_err_t apg_producer_send_orderly(apg_producer_t *p, apg_message_t *msg,
                                               const char *sharding_key, apg_send_result_t *res,
                                               char *err, size_t errlen);

/* A ready-made apg_queue_selector: arg is the sharding key (const char *,
 * borrowed); returns |Java String.hashCode(key) % n|, the queue Java's
 * SelectMessageQueueByHash and apg_producer_send_orderly() choose, so
 * producers in both languages put one key on one queue. -1 when n is 0 or
 * the key NULL. Pure; any thread. */
APG_EXPORT int apg_queue_select_by_hash(const apg_mq_t *mqs, size_t n, const apg_message_t *msg,
                                        void *key);

/* Sends to the queue chosen by `sel` (no retry on another queue). Borrows msg. */
APG_EXPORT apg_err_t apg_producer_send_select(apg_producer_t *p, apg_message_t *msg,
                                              apg_queue_selector sel, void *sel_arg,
                                              apg_send_result_t *res, char *err, size_t errlen);

/* Batch: all messages must share one topic, have no delay level; sent as one
 * SEND_BATCH_MESSAGE request. Borrows msgs (sets their UNIQ_KEYs). */
APG_EXPORT apg_err_t apg_producer_send_batch(apg_producer_t *p, apg_message_t *const *msgs,
                                             size_t n, apg_send_result_t *res, char *err,
                                             size_t errlen);

/* Client id used on the wire ("ip@instance"); borrows from p. */
APG_EXPORT const char *apg_producer_client_id(const apg_producer_t *p);

/* Back-pressure seen by p since it was made: *busy counts the SYSTEM_BUSY
 * answers (or flow-control refusals) brokers gave its sends, *retried how
 * many of those sends were sent again after a back-off
 * (sendBusyBackoffMillis). A send that is still refused when sendMsgTimeout
 * runs out fails with APG_EBUSY (retriable) and sr_broker_code 2. Either
 * pointer may be NULL. Thread-safe. */
APG_EXPORT void apg_producer_busy_stats(const apg_producer_t *p, uint64_t *busy, uint64_t *retried);

/* ---- Transactional producer (RocketMQ's two-phase send) ----
 *
 * apg_producer_send_transaction stores the message as a half message on a
 * broker (consumers do not see it), runs the caller's local transaction,
 * then sends END_TRANSACTION with its outcome: COMMIT delivers the message,
 * ROLLBACK drops it, UNKNOWN leaves it to the broker's check-back. The
 * broker asks a live producer of the same producerGroup about every half
 * left open longer than its transactionTimeOut (CHECK_TRANSACTION_STATE):
 * the check listener given to apg_producer_new_transactional answers,
 * also after a restart of the application (any producer of the group may be
 * asked about any half of the group). */

typedef enum apg_tx_state {
    APG_TX_UNKNOWN = 0,   /* not known yet: the broker asks again later */
    APG_TX_COMMIT = 8,    /* deliver the message */
    APG_TX_ROLLBACK = 12, /* drop it */
} apg_tx_state_t;

/* The local transaction: runs on the caller's thread once the half message
 * is stored. msg borrows (the caller's message, its UNIQ_KEY set); tx_id is
 * the transaction id (the message's UNIQ_KEY). */
typedef apg_tx_state_t (*apg_tx_execute_fn)(const apg_message_t *msg, const char *tx_id, void *arg);
/* The check listener: the state of the transaction of a half message the
 * broker asks about. Runs on the producer's I/O thread, so it must answer
 * quickly (return APG_TX_UNKNOWN to be asked again later). msg borrows: the
 * half as the broker holds it (topic, body, keys, tags, properties). */
typedef apg_tx_state_t (*apg_tx_check_fn)(const apg_message_t *msg, const char *tx_id, void *arg);

/* apg_producer_new for a transactional producer: check (required) answers
 * the broker's check-backs for the conf's producerGroup. The producer also
 * sends as any other. Free with apg_producer_destroy(). */
APG_EXPORT apg_producer_t *apg_producer_new_transactional(const apg_conf_t *conf,
                                                          apg_tx_check_fn check, void *check_arg,
                                                          char *err, size_t errlen);

/* Sends msg as a half message (sync, no retry on another broker once it is
 * stored), runs exec(msg, tx_id, arg), then sends END_TRANSACTION with its
 * result to the broker that holds the half and waits for its answer. p must
 * be transactional. On APG_OK res (may be NULL) describes the half's send
 * and *state (may be NULL) is exec's result. A failed half send does not
 * run exec. A failed END_TRANSACTION returns its error with *state set:
 * the broker's check-back settles the transaction then. A message with a
 * delay level is refused (APG_EINVAL). Borrows msg; sets its UNIQ_KEY and
 * the properties TRAN_MSG and PGROUP. */
APG_EXPORT apg_err_t apg_producer_send_transaction(apg_producer_t *p, apg_message_t *msg,
                                                   apg_tx_execute_fn exec, void *arg,
                                                   apg_send_result_t *res, apg_tx_state_t *state,
                                                   char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif

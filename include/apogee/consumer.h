/* Consumers: a push consumer (the library pulls, balances queues and calls
 * your listener) and a pull consumer (you drive every pull).
 *
 * Thread safety: every function of both consumers may be called from any
 * thread, except that a push consumer's subscribe/start/destroy must not run
 * concurrently with each other, and destroy must not be called from inside
 * its own listener. Listeners run on the push consumer's worker threads.
 *
 * The pull consumer gives direct access to queues: list a topic's readable
 * queues, pull from an offset with long polling (the broker holds the request
 * up to suspend_ms until messages arrive), and commit offsets. Committed
 * offsets are kept locally and sent to the brokers with oneway
 * UPDATE_CONSUMER_OFFSET every persistConsumerOffsetInterval and on destroy.
 * Like the producer, each consumer owns one I/O thread holding its
 * connections.
 *
 * Conf keys read (apogee/conf.h): namesrvAddr and consumerGroup (both
 * required), instanceName, mqClientApiTimeout, persistConsumerOffsetInterval,
 * pollNameServerInterval, heartbeatBrokerInterval, serializeType,
 * syncSpinMicros; the push consumer also messageModel, consumeFromWhere,
 * consumeThreadMin, consumeMessageBatchMaxSize, pullBatchSize,
 * pullThresholdForQueue, pullThresholdSizeForQueue, consumeOrderly,
 * suspendCurrentQueueTimeMillis, rebalanceLockInterval,
 * rebalanceLockMaxLiveTime, rebalanceInterval, brokerSuspendMaxTimeMillis, maxReconsumeTimes and
 * localOffsetStoreDir. */
#ifndef APOGEE_CONSUMER_H
#define APOGEE_CONSUMER_H

#include <stddef.h>
#include <stdint.h>

#include "apogee/conf.h"
#include "apogee/error.h"
#include "apogee/message.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct apg_pull_consumer apg_pull_consumer_t;

/* messageModel: CLUSTERING (each message to one consumer of the group) or
 * BROADCASTING (each message to every consumer; offsets kept locally).
 * consumeFromWhere: CONSUME_FROM_LAST_OFFSET (a queue without a committed
 * offset starts at its current end) or CONSUME_FROM_FIRST_OFFSET (at its
 * first message). */

enum apg_consume_result {
    APG_CONSUME_SUCCESS = 0,
    APG_CONSUME_RECONSUME_LATER = 1,
    /* Orderly: Java's SUSPEND_CURRENT_QUEUE_A_MOMENT, the same as
     * RECONSUME_LATER (the batch comes again, in place); concurrent mode
     * treats it as RECONSUME_LATER too. */
    APG_CONSUME_SUSPEND_CURRENT_QUEUE_A_MOMENT = 2,
};

enum apg_pull_status {
    APG_PULL_FOUND = 0,
    APG_PULL_NO_NEW_MSG = 1,
    APG_PULL_NO_MATCHED_MSG = 2,
    APG_PULL_OFFSET_ILLEGAL = 3,
};

typedef struct apg_pull_result {
    int pr_status; /* enum apg_pull_status */
    int64_t pr_next_offset;
    int64_t pr_min_offset;
    int64_t pr_max_offset;
    apg_message_t **pr_msgs; /* owned by the result */
    size_t pr_count;
    int pr_broker_code; /* the broker's response code; also set on APG_EBROKER */
    int pr_reserved[7]; /* zero: room for later fields */
} apg_pull_result_t;

/* Frees the messages held by a result (not the struct itself). */
APG_EXPORT void apg_pull_result_clear(apg_pull_result_t *res);

/* Creates and starts a pull consumer with a copy of conf (borrowed).
 * Returns owned: free with apg_pull_consumer_destroy(); NULL on error with
 * err filled. */
APG_EXPORT apg_pull_consumer_t *apg_pull_consumer_new(const apg_conf_t *conf, char *err,
                                                      size_t errlen);
/* Flushes committed offsets (oneway), stops and frees. NULL allowed. */
APG_EXPORT void apg_pull_consumer_destroy(apg_pull_consumer_t *c);

/* Readable queues of a topic, sorted by broker name then queue id.
 * *mqs is returned owned: free with apg_mq_list_free(). */
APG_EXPORT apg_err_t apg_pull_consumer_queues(apg_pull_consumer_t *c, const char *topic,
                                              apg_mq_t **mqs, size_t *n, char *err, size_t errlen);
APG_EXPORT void apg_mq_list_free(apg_mq_t *mqs);

/* Pulls up to max_nums messages from mq at offset. expr is a tag expression
 * ("*", "TagA || TagB"; NULL = "*"); messages whose tag does not match are
 * dropped client-side too. suspend_ms > 0 enables long polling. Bodies are
 * decompressed. On APG_OK *res is filled and owns its messages (free with
 * apg_pull_result_clear()). Borrows mq and expr. */
APG_EXPORT apg_err_t apg_pull_consumer_pull(apg_pull_consumer_t *c, const apg_mq_t *mq,
                                            const char *expr, int64_t offset, int max_nums,
                                            int suspend_ms, apg_pull_result_t *res, char *err,
                                            size_t errlen);

/* As apg_pull_consumer_pull(), with a SQL92 expression over the messages'
 * user properties instead of a tag expression ("a > 5 AND region = 'eu'";
 * grammar and semantics: docs/wire.md). The broker does the filtering and
 * must run with enablePropertyFilter=true (otherwise APG_EBROKER, with the
 * broker's remark in err). An expression that does not compile gives
 * APG_EINVAL with its position in err before anything is sent. Borrows mq
 * and sql. */
APG_EXPORT apg_err_t apg_pull_consumer_pull_sql92(apg_pull_consumer_t *c, const apg_mq_t *mq,
                                                  const char *sql, int64_t offset, int max_nums,
                                                  int suspend_ms, apg_pull_result_t *res, char *err,
                                                  size_t errlen);

/* Records offset as the group's committed offset for mq (sent later). */
APG_EXPORT apg_err_t apg_pull_consumer_commit(apg_pull_consumer_t *c, const apg_mq_t *mq,
                                              int64_t offset);

/* Asks the broker for the group's committed offset (QUERY_CONSUMER_OFFSET).
 * APG_ENOTFOUND when the broker has none. */
APG_EXPORT apg_err_t apg_pull_consumer_committed(apg_pull_consumer_t *c, const apg_mq_t *mq,
                                                 int64_t *offset, char *err, size_t errlen);

/* GET_MAX_OFFSET / GET_MIN_OFFSET of a queue. */
APG_EXPORT apg_err_t apg_pull_consumer_max_offset(apg_pull_consumer_t *c, const apg_mq_t *mq,
                                                  int64_t *offset, char *err, size_t errlen);
APG_EXPORT apg_err_t apg_pull_consumer_min_offset(apg_pull_consumer_t *c, const apg_mq_t *mq,
                                                  int64_t *offset, char *err, size_t errlen);

/* ---- query by key ----
 *
 * Both ask every broker name of the topic, at its master or, when the master
 * is gone, its slave (QUERY_MESSAGE; the brokers look the key up in their
 * index files, see messageIndexEnable) and block until all have answered or
 * mqClientApiTimeout passes. */

/* Messages of topic whose KEYS holds key as one of its space-separated words,
 * stored between begin_ms and end_ms (epoch milliseconds, inclusive), newest
 * first per broker, at most max_nums per broker (<= 0: 32; brokers cap it at
 * 64). APG_ENOTFOUND when none. On APG_OK *msgs holds *n (>= 1) messages,
 * owned by the caller: free with apg_message_list_free(). Borrows topic and
 * key. */
APG_EXPORT apg_err_t apg_pull_consumer_query_by_key(apg_pull_consumer_t *c, const char *topic,
                                                    const char *key, int max_nums, int64_t begin_ms,
                                                    int64_t end_ms, apg_message_t ***msgs,
                                                    size_t *n, char *err, size_t errlen);

/* The message of topic whose unique id (UNIQ_KEY: what apg_message_id()
 * gives after a send, and what RocketMQ clients print as msgId) is msg_id.
 * APG_ENOTFOUND when no broker has it. On APG_OK *msg is owned by the
 * caller: free with apg_message_free(). */
APG_EXPORT apg_err_t apg_pull_consumer_lookup_unique(apg_pull_consumer_t *c, const char *topic,
                                                     const char *msg_id, apg_message_t **msg,
                                                     char *err, size_t errlen);

/* Frees n messages and the array holding them. NULL allowed. */
APG_EXPORT void apg_message_list_free(apg_message_t **msgs, size_t n);

/* ---- push consumer ----
 *
 * Threads: one I/O thread (connections, rebalance, long-polling pulls, one
 * in flight per assigned queue) and consumeThreadMin workers that call the
 * listener. Clustering: every rebalanceInterval and when the broker sends
 * NOTIFY_CONSUMER_IDS_CHANGED, each subscribed topic's readable queues are
 * shared among the group's consumers (GET_CONSUMER_LIST_BY_GROUP) with the
 * average strategy; offsets are committed to the broker every
 * persistConsumerOffsetInterval, when a queue is taken away, and on destroy.
 * Broadcasting: every queue is consumed; offsets go to a local file
 * (<localOffsetStoreDir>/<group>.offsets) at the same moments.
 *
 * A queue's committed offset only passes a message once the listener has
 * returned SUCCESS for it and for every earlier message of the queue, so a
 * crash may redeliver, but never skips. After a rebalance the old and the new
 * owner may briefly both hold a queue's uncommitted messages (at least once).
 *
 * RECONSUME_LATER: the message is sent back to the broker with
 * CONSUMER_SEND_MSG_BACK (redelivered through %RETRY%<group>, delay level by
 * reconsume count). If the broker refuses it (e.g. it does not implement the
 * request), the message stays in the queue's cache and is handed to the
 * listener again after one second, its reconsume count incremented; the
 * queue's offset does not pass it meanwhile.
 *
 * Orderly mode (consumeOrderly = true): messages of one queue are delivered
 * one batch at a time, in queue order, by one worker at a time. Clustering
 * also locks every assigned queue on its broker (LOCK_BATCH_MQ) before it
 * reads the queue's offset and pulls, renews the locks every
 * rebalanceLockInterval (20 s), stops calling the listener for a queue whose
 * lock was not renewed within rebalanceLockMaxLiveTime (30 s), and gives a
 * queue up (rebalance, destroy) by committing its offset and then unlocking
 * it (UNLOCK_BATCH_MQ) once no listener call for it runs: so two consumers of
 * a group never process one queue at once, and the next holder starts where
 * this one stopped. A queue another member still holds is asked for again
 * every second. RECONSUME_LATER (or SUSPEND_CURRENT_QUEUE_A_MOMENT) hands the
 * same batch to the listener again after suspendCurrentQueueTimeMillis (1 s),
 * in place, each message's reconsume count incremented; a message already
 * retried maxReconsumeTimes times is sent to %DLQ%<group> instead
 * (CONSUMER_SEND_MSG_BACK with delay level -1) and the queue moves on.
 * (Java's orderly default for maxReconsumeTimes is unlimited; here it is the
 * same key as for concurrent consumers, 16 by default.) Delivery stays at
 * least once: a crash or a lapsed lock may repeat a batch, never reorder. */

typedef struct apg_push_consumer apg_push_consumer_t;

/* The listener. msgs (n >= 1) borrow: valid during the call only. mq is the
 * queue they came from. Returns enum apg_consume_result. Runs on a worker
 * thread; concurrent calls happen unless consumeOrderly. Must not call
 * apg_push_consumer_destroy() of its own consumer. */
typedef int (*apg_consume_cb)(apg_message_t *const *msgs, size_t n, const apg_mq_t *mq, void *arg);

/* Creates a push consumer (not started) with a copy of conf (borrowed).
 * Returns owned: free with apg_push_consumer_destroy(); NULL on error with
 * err filled. */
APG_EXPORT apg_push_consumer_t *apg_push_consumer_new(const apg_conf_t *conf, char *err,
                                                      size_t errlen);

/* Subscribes to topic with a tag expression ("*", "TagA || TagB"; NULL =
 * "*"). Only before start; subscribing again to a topic replaces its
 * expression. Borrows topic and expr. */
APG_EXPORT apg_err_t apg_push_consumer_subscribe(apg_push_consumer_t *c, const char *topic,
                                                 const char *expr, char *err, size_t errlen);

/* Subscribes to topic with a SQL92 expression over the messages' user
 * properties ("a > 5 AND region = 'eu'"; grammar and semantics:
 * docs/wire.md); the broker filters. APG_EINVAL with the position of an
 * error in err when the expression does not compile. At start, as
 * RocketMQ's client does, the expression is checked with a broker of the
 * topic (CHECK_CLIENT_CONFIG): a broker without enablePropertyFilter=true,
 * or one that refuses the expression, fails apg_push_consumer_start() with
 * APG_EBROKER and the broker's remark. Only before start; replaces an
 * earlier subscription of topic. Borrows topic and sql. */
APG_EXPORT apg_err_t apg_push_consumer_subscribe_sql92(apg_push_consumer_t *c, const char *topic,
                                                       const char *sql, char *err, size_t errlen);

/* Starts the I/O thread and workers; cb(arg) is called for messages from
 * now on, and only if this returned APG_OK. At least one subscription is
 * required. A consumer is started at most once. */
APG_EXPORT apg_err_t apg_push_consumer_start(apg_push_consumer_t *c, apg_consume_cb cb, void *arg,
                                             char *err, size_t errlen);

/* Shutdown: stops pulling, lets running listener calls finish (no call
 * starts after this begins), commits every offset earned (waiting for the
 * brokers' answers, or writing the file), unregisters from the brokers and
 * frees. Cached messages not yet consumed are left for redelivery. No
 * callback runs after it returns. NULL allowed. */
APG_EXPORT void apg_push_consumer_destroy(apg_push_consumer_t *c);

/* The queues currently assigned to this consumer. *mqs is returned owned
 * (free with apg_mq_list_free()); *n may be 0. */
APG_EXPORT apg_err_t apg_push_consumer_assigned(apg_push_consumer_t *c, apg_mq_t **mqs, size_t *n);

/* Client id used on the wire ("ip@instance"); borrows from c. */
APG_EXPORT const char *apg_push_consumer_client_id(const apg_push_consumer_t *c);

#ifdef __cplusplus
}
#endif

#endif

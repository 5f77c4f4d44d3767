/* Consumers.
 *
 * The pull consumer gives direct access to queues: list a topic's readable
 * queues, pull from an offset with long polling (the broker holds the request
 * up to suspend_ms until messages arrive), and commit offsets. Committed
 * offsets are kept locally and sent to the brokers with oneway
 * UPDATE_CONSUMER_OFFSET every commit_interval_ms and on destroy. Like the
 * producer, each consumer owns one I/O thread holding its connections. */
#ifndef APOGEE_CONSUMER_H
#define APOGEE_CONSUMER_H

#include <stddef.h>
#include <stdint.h>

#include "apogee/message.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct apg_pull_consumer apg_pull_consumer_t;

typedef struct apg_consumer_conf {
    const char *namesrv;    /* "host:port;host:port" (required) */
    const char *group;      /* consumer group (required) */
    const char *instance;   /* instance name for the client id (default: pid) */
    int timeout_ms;         /* non-pull requests (default 3000) */
    int commit_interval_ms; /* persistConsumerOffsetInterval (default 5000) */
    int route_refresh_ms;   /* default 30000 */
    int heartbeat_ms;       /* default 30000 */
    int binary_header;      /* 1: ROCKETMQ binary headers (default), 0: JSON */
} apg_consumer_conf_t;

void apg_consumer_conf_init(apg_consumer_conf_t *conf);

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
} apg_pull_result_t;

/* Frees the messages held by a result (not the struct itself). */
void apg_pull_result_clear(apg_pull_result_t *res);

/* Creates and starts a pull consumer (borrows conf). Returns owned: free
 * with apg_pull_consumer_destroy(); NULL on error with err filled. */
apg_pull_consumer_t *apg_pull_consumer_new(const apg_consumer_conf_t *conf, char *err,
                                           size_t errlen);
/* Flushes committed offsets (oneway), stops and frees. NULL allowed. */
void apg_pull_consumer_destroy(apg_pull_consumer_t *c);

/* Readable queues of a topic, sorted by broker name then queue id.
 * *mqs is returned owned: free with apg_mq_list_free(). */
apg_err_t apg_pull_consumer_queues(apg_pull_consumer_t *c, const char *topic, apg_mq_t **mqs,
                                   size_t *n, char *err, size_t errlen);
void apg_mq_list_free(apg_mq_t *mqs);

/* Pulls up to max_nums messages from mq at offset. expr is a tag expression
 * ("*", "TagA || TagB"; NULL = "*"); messages whose tag does not match are
 * dropped client-side too. suspend_ms > 0 enables long polling. Bodies are
 * decompressed. On APG_OK *res is filled and owns its messages (free with
 * apg_pull_result_clear()). Borrows mq and expr. */
apg_err_t apg_pull_consumer_pull(apg_pull_consumer_t *c, const apg_mq_t *mq, const char *expr,
                                 int64_t offset, int max_nums, int suspend_ms,
                                 apg_pull_result_t *res, char *err, size_t errlen);

/* Records offset as the group's committed offset for mq (sent later). */
apg_err_t apg_pull_consumer_commit(apg_pull_consumer_t *c, const apg_mq_t *mq, int64_t offset);

/* Asks the broker for the group's committed offset (QUERY_CONSUMER_OFFSET).
 * APG_ENOTFOUND when the broker has none. */
apg_err_t apg_pull_consumer_committed(apg_pull_consumer_t *c, const apg_mq_t *mq, int64_t *offset,
                                      char *err, size_t errlen);

/* GET_MAX_OFFSET / GET_MIN_OFFSET of a queue. */
apg_err_t apg_pull_consumer_max_offset(apg_pull_consumer_t *c, const apg_mq_t *mq, int64_t *offset,
                                       char *err, size_t errlen);
apg_err_t apg_pull_consumer_min_offset(apg_pull_consumer_t *c, const apg_mq_t *mq, int64_t *offset,
                                       char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif

/* Admin processors: consumer progress (GET_CONSUME_STATS,
 * GET_TOPIC_STATS_INFO, the connection lists, VIEW_BROKER_STATS_DATA and
 * the per-group consume counters, broker_admin_stats.c); requests passed on
 * to live consumers (offset reset, running info, consume directly,
 * broker_admin_reset.c); broker-wide views (QUERY_TOPIC_CONSUME_BY_WHO,
 * GET_SYSTEM_TOPIC_LIST_FROM_BROKER, GET_BROKER_CONSUME_STATS,
 * broker_admin_info.c); the consume queue (QUERY_CONSUME_QUEUE,
 * broker_admin_cq.c); store housekeeping (broker_admin_store.c); the
 * configuration (GET/UPDATE_BROKER_CONFIG, broker_admin_config.c). All run on a loop thread. */
#ifndef APG_BROKER_BROKER_ADMIN_STATS_H
#define APG_BROKER_BROKER_ADMIN_STATS_H

#include "broker/broker_rt.h"

/* Per-group consume counters (one mutex inside; any thread). */
struct apg_cstats *apg_cstats_new(void);
void apg_cstats_free(struct apg_cstats *cs);
/* Counts n messages (bytes stored bytes) of topic returned to group by a
 * pull (loop thread). */
void apg_broker_consume_note(struct apg_broker *b, const char *group, const char *topic, int n,
                             size_t bytes);
/* Appends, for every (topic, group) a pull returned messages to since
 * start: int64 messages, int64 bytes (unaligned), then "topic@group" and
 * its NUL. Any thread; holds the counters' lock for the copy only. */
apg_err_t apg_cstats_snapshot(struct apg_cstats *cs, struct apg_buf *out);
/* Counts the messages stored per topic since the last call, from the
 * queues' max offsets (service thread, once a second). */
void apg_broker_put_stats_tick(struct apg_broker *b, int64_t now_ms);
/* INVOKE_BROKER_TO_RESET_OFFSET (222), GET_CONSUMER_RUNNING_INFO (307),
 * CONSUME_MESSAGE_DIRECTLY (309) (broker_admin_reset.c). Loop thread. */
void apg_broker_proc_admin_reset(struct apg_broker *b, struct apg_conn *c,
                                 const struct apg_rcmd *req);
/* GET_CONSUME_STATS (208), GET_TOPIC_STATS_INFO (202), the connection
 * lists (203, 204), VIEW_BROKER_STATS_DATA (315). Loop thread. */
void apg_broker_proc_admin_stats(struct apg_broker *b, struct apg_conn *c,
                                 const struct apg_rcmd *req);
/* Appends group's ConsumeStats JSON for topic (NULL or "": every topic the
 * group has offsets for) to o; *diff (may be NULL) gets the summed lag. */
apg_err_t apg_broker_consume_stats_body(struct apg_broker *b, const char *group, const char *topic,
                                        struct apg_buf *o, int64_t *diff);
/* The groups that consume topic (QUERY_TOPIC_CONSUME_BY_WHO): those whose
 * connected members subscribe it, then those with committed offsets on it,
 * each name followed by a NUL (a group may appear twice). Any thread. */
apg_err_t apg_broker_topic_consumers(struct apg_broker *b, const char *topic, struct apg_buf *out);
/* QUERY_TOPIC_CONSUME_BY_WHO (300), GET_SYSTEM_TOPIC_LIST_FROM_BROKER (305),
 * GET_BROKER_CONSUME_STATS (317) (broker_admin_info.c). */
void apg_broker_proc_admin_info(struct apg_broker *b, struct apg_conn *c,
                                const struct apg_rcmd *req);
/* QUERY_CONSUME_QUEUE (321) (broker_admin_cq.c). */
void apg_broker_proc_admin_cq(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req);
/* DELETE_EXPIRED_COMMITLOG (329), CLEAN_UNUSED_TOPIC (316),
 * CLEAN_EXPIRED_CONSUMEQUEUE (306) (broker_admin_store.c). */
void apg_broker_proc_admin_store(struct apg_broker *b, struct apg_conn *c,
                                 const struct apg_rcmd *req);
/* APG_EINVAL when the broker keys marked RT in config.def and the live
 * fields UPDATE_BROKER_CONFIG stores into are not the same set (a
 * programming error: the broker does not start). */
apg_err_t apg_broker_live_keys_check(char *err, size_t errlen);
/* GET_BROKER_CONFIG (26), UPDATE_BROKER_CONFIG (25) (broker_admin_config.c). */
void apg_broker_proc_admin_config(struct apg_broker *b, struct apg_conn *c,
                                  const struct apg_rcmd *req);

/* ---- operations behind both the remoting admin codes and the HTTP admin
 * API (src/http/admin_api.c). Each returns a RocketMQ response code; on
 * anything but SUCCESS, remark (n bytes) says what to change. ---- */

/* UPDATE_AND_CREATE_TOPIC (17) after parsing: validates tc and stores it.
 * The table writer persists it (apg_broker_reply_when_durable,
 * apg_broker_tables_wait). broker_admin.c. */
int32_t apg_broker_topic_update(struct apg_broker *b, const struct apg_topic_cfg *tc, char *remark,
                                size_t n);
/* DELETE_TOPIC_IN_BROKER (215): drops the topic, its offsets and its
 * consume queues; TOPIC_NOT_EXIST (after the drops) when the table did not
 * hold it. broker_admin.c. */
int32_t apg_broker_topic_delete(struct apg_broker *b, const char *topic, char *remark, size_t n);
/* GET_TOPIC_STATS_INFO (202): appends the TopicStatsTable JSON to o. */
int32_t apg_broker_topic_stats_body(struct apg_broker *b, const char *topic, struct apg_buf *o,
                                    char *remark, size_t n);
/* GET_CONSUMER_CONNECTION_LIST (203) / GET_PRODUCER_CONNECTION_LIST (204):
 * appends the ConsumerConnection / ProducerConnection JSON to o. */
int32_t apg_broker_connection_body(struct apg_broker *b, const char *group, bool consumers,
                                   struct apg_buf *o, char *remark, size_t n);
/* INVOKE_BROKER_TO_RESET_OFFSET (222) (broker_admin_reset.c). */
struct apg_reset_req {
    const char *rr_topic, *rr_group;
    int64_t rr_ts;      /* first record stored at or after; < 0: the max offset */
    bool rr_force;      /* also move queues forward */
    int32_t rr_qid;     /* one queue, or -1 for every write queue */
    int64_t rr_offset;  /* with rr_qid: the new offset, or -1 for rr_ts */
    bool rr_preview;    /* compute and answer, change nothing, tell nobody */
    bool rr_offline_ok; /* commit even when no member is online */
};
/* Appends the ResetOffsetBody ({"offsetTable":{mq:offset}}) to o, commits
 * the offsets and pushes them to the online members (*told of them),
 * unless rr_preview. */
int32_t apg_broker_offsets_reset(struct apg_broker *b, const struct apg_reset_req *r,
                                 struct apg_buf *o, int *told, char *remark, size_t n);

/* broker_admin_msg.c: operator writes (not from a broker loop thread). */
struct apg_test_msg {
    const char *tm_topic;
    int32_t tm_qid;                /* -1: round-robin */
    const char *tm_tags, *tm_keys; /* NULL or "" when none */
    const char *const *tm_props;   /* tm_nprops user (name, value) pairs */
    size_t tm_nprops;
    const uint8_t *tm_body;
    size_t tm_body_len;
};
/* How an operator write waits for the disk under SYNC_FLUSH. With w NULL
 * the call returns once the record is durable (apg_broker_put_internal:
 * not from a loop thread). With w, the record goes through
 * apg_broker_put_notify (a loop of another server may call): after a
 * successful store, w->pw_pending tells whether w->pw_done(w->pw_arg, rc)
 * runs later on the store's ack thread. */
struct apg_put_wait {
    apg_broker_put_notify_fn pw_done;
    void *pw_arg;
    bool pw_pending;
};
/* Stores one message (res: where; uniq: its UNIQ_KEY). */
int32_t apg_broker_msg_send_test(struct apg_broker *b, const struct apg_test_msg *tm,
                                 struct apg_put_wait *w, struct apg_put_result *res, char uniq[33],
                                 char *remark, size_t n);
/* Stores a copy of the %DLQ%<group> record at commit-log offset phys into
 * the topic its RETRY_TOPIC names (into topic_out). */
int32_t apg_broker_msg_resend_dlq(struct apg_broker *b, const char *group, int64_t phys,
                                  struct apg_put_wait *w, struct apg_put_result *res,
                                  char *topic_out, size_t topic_cap, char *remark, size_t n);
/* Waits (up to timeout_ms) until topics.json holds change count topics_seq
 * and subscriptionGroup.json groups_seq; false on timeout or a failed
 * write. Not from a broker loop thread (broker_tables.c). */
bool apg_broker_tables_wait(struct apg_broker *b, uint64_t topics_seq, uint64_t groups_seq,
                            int64_t timeout_ms);

#endif

/* Broker runtime internals shared by the processor files: the broker object,
 * per-loop state (parked pulls, SYNC_FLUSH completions) and the processor
 * prototypes the dispatch table in broker.c points at.
 *
 * Threads: struct apg_broker is created and destroyed by the control thread
 * (apg_broker_start/stop). Its tables lock themselves. struct apg_bloop is
 * owned by its event-loop thread except bl_acks, which the store's flush
 * thread appends to under bl_ack_lock. */
#ifndef APG_BROKER_BROKER_RT_H
#define APG_BROKER_BROKER_RT_H

#include <pthread.h>
#include <stdatomic.h>
#include <uv.h>

#include "broker/broker.h"
#include "broker/broker_int.h"
#include "common/clock.h"
#include "common/config.h"
#include "net/net.h"
#include "protocol/rcode.h"
#include "protocol/remoting.h"
#include "protocol/message.h"
#include "store/store.h"

struct apg_clients;
struct apg_parked;

#define APG_BSTAT_RING 601 /* 10 minutes of 1-second samples, plus one */

struct apg_bstat_sample {
    int64_t bs_ms;
    int64_t bs_put;
    int64_t bs_get;
};
struct apg_sync_ack;

/* Per event-loop state. */
struct apg_bloop {
    struct apg_broker *bl_broker;
    int bl_idx;
    uv_timer_t bl_timer;          /* long-poll deadlines */
    bool bl_timer_on;             /* timer initialised */
    struct apg_parked *bl_parked; /* parked pulls (loop thread only) */
    atomic_int bl_nparked;        /* readable from any thread */
    atomic_int bl_wake_posted;    /* a wake-up post is queued */
    pthread_mutex_t bl_ack_lock;
    struct apg_sync_ack *bl_acks; /* completed SYNC_FLUSH sends to answer */
    bool bl_ack_posted;
};

struct apg_broker {
    const struct apg_config *br_cfg;
    struct apg_store *br_store;
    struct apg_topics *br_topics;
    struct apg_groups *br_groups;
    struct apg_offsets *br_offsets;
    struct apg_clients *br_clients;
    struct apg_net_server *br_srv;
    struct apg_net_client *br_cli;
    struct apg_bloop *br_loops;
    int br_nloops;

    char br_root[1024];
    char br_addr[128]; /* advertised ip:port */
    char br_cluster[APG_NAME_CAP];
    char br_name[APG_NAME_CAP];
    char br_namesrv[1024];
    uint8_t br_ip4[4];
    int br_port;
    struct apg_host br_store_host;
    int64_t br_broker_id;
    int32_t br_perm;
    bool br_sync_flush;
    bool br_auto_create_group;
    uint32_t br_max_msg_size;
    int br_max_pull_msgs;
    size_t br_max_pull_bytes;
    bool br_long_polling;
    int64_t br_short_poll_ms;
    int64_t br_channel_expire_ms;

    atomic_long br_sync_pending; /* SYNC_FLUSH sends awaiting their ack */
    long br_sync_pending_max;
    atomic_uint br_rr; /* queue selection for queueId < 0 */

    /* Runtime statistics (broker_stats.c). br_get_total is bumped by the
     * loops; the rest is written by the service thread under br_stat_lock. */
    atomic_llong br_get_total; /* messages returned by pulls since start */
    int64_t br_boot_ms;
    pthread_mutex_t br_stat_lock;
    struct apg_bstat_sample *br_samples; /* ring of APG_BSTAT_RING 1-second samples */
    int br_nsamples, br_sample_pos;
    int64_t br_day;            /* local day of the last tick (days since epoch) */
    int64_t br_put_morning[2]; /* put total at the start of today [0] / yesterday [1] */
    int64_t br_get_morning[2];

    pthread_t br_svc;
    bool br_svc_started;
    pthread_mutex_t br_svc_lock;
    pthread_cond_t br_svc_cond;
    bool br_stopping;
    bool br_reregister;
};

/* Asks the service thread to re-register with the NameServers now (after a
 * topic was created or deleted). Thread-safe. */
void apg_broker_request_register(struct apg_broker *b);

/* Replies with code and remark (remark may be NULL); skipped for oneway. */
void apg_broker_reply(struct apg_conn *c, const struct apg_rcmd *req, int32_t code,
                      const char *remark);

/* When the broker has no write permission (brokerPermission), answers req
 * NO_PERMISSION with a remark naming the fix and returns true. */
bool apg_broker_refuse_unwritable(struct apg_broker *b, struct apg_conn *c,
                                  const struct apg_rcmd *req);
/* Looks up (or, with autoCreateSubscriptionGroup, creates) the consumer group
 * into *gc; when the name is bad or the group may not be created, answers
 * req SUBSCRIPTION_GROUP_NOT_EXIST with a remark naming the fix and returns
 * false. Any loop thread. */
bool apg_broker_group_or_refuse(struct apg_broker *b, struct apg_conn *c,
                                const struct apg_rcmd *req, const char *group,
                                struct apg_group_cfg *gc);

typedef void (*apg_broker_proc_fn)(struct apg_broker *b, struct apg_conn *c,
                                   const struct apg_rcmd *req);

/* broker_send.c */
void apg_broker_proc_send(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req);
/* Appends msgs (n >= 1, all in queue qid; borrowed for the call) and answers
 * req like a send (msgId, queueId, queueOffset): at once, or, when want_sync
 * (SYNC_FLUSH), once the store's group commit acknowledges; SYSTEM_BUSY when
 * too many sends already wait for the disk. Loop thread. */
void apg_broker_put_reply(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req,
                          const struct apg_msg_in *msgs, int n, int32_t qid, const char *uniq,
                          bool want_sync);
/* broker_sendback.c: CONSUMER_SEND_MSG_BACK (36) */
void apg_broker_proc_send_back(struct apg_broker *b, struct apg_conn *c,
                               const struct apg_rcmd *req);
/* Creates %DLQ%<group> (topic) if missing: one queue, perm 6, registered
 * with the NameServers; *created tells whether it was new. Any thread. */
apg_err_t apg_broker_ensure_dlq(struct apg_broker *b, const char *topic, bool *created);
/* broker_stats.c: runtime statistics and GET_BROKER_RUNTIME_INFO (28) */
apg_err_t apg_broker_stats_init(struct apg_broker *b);
void apg_broker_stats_free(struct apg_broker *b);
/* Takes a sample and rolls the daily totals over (service thread, ~1 s). */
void apg_broker_stats_tick(struct apg_broker *b, int64_t now_ms);
void apg_broker_proc_runtime_info(struct apg_broker *b, struct apg_conn *c,
                                  const struct apg_rcmd *req);
/* Frees the calling loop thread's send buffer (on_loop_stop). */
void apg_broker_send_loop_stop(void);
/* Stores and answers the single-message sends this loop thread has held
 * back while parsing one read (see "coalesced sends" in broker_send.c).
 * Loop thread: at the end of every read and before any other request. */
void apg_broker_send_flush(struct apg_broker *b);
/* True when sends are held back on this loop thread. */
bool apg_broker_send_pending(void);
/* Answers SYNC_FLUSH completions queued for this loop (loop thread). */
void apg_broker_send_drain(void *arg);

/* broker_pull.c */
void apg_broker_proc_pull(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req);
void apg_broker_pull_loop_start(struct apg_bloop *bl, uv_loop_t *loop);
void apg_broker_pull_loop_stop(struct apg_bloop *bl);
/* Store arrive hook: wakes loops that have parked pulls (any thread). */
void apg_broker_pull_arrive(void *ud, const char *topic, size_t topic_len, int32_t queue_id,
                            int64_t new_max);
/* Drops parked pulls of a closing connection (loop thread). */
void apg_broker_pull_conn_closed(struct apg_bloop *bl, struct apg_conn *c);

/* broker_query.c: offsets and lookups */
void apg_broker_proc_query_offset(struct apg_broker *b, struct apg_conn *c,
                                  const struct apg_rcmd *req);
void apg_broker_proc_update_offset(struct apg_broker *b, struct apg_conn *c,
                                   const struct apg_rcmd *req);
void apg_broker_proc_queue_bounds(struct apg_broker *b, struct apg_conn *c,
                                  const struct apg_rcmd *req);
void apg_broker_proc_view_msg(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req);
void apg_broker_proc_all_offsets(struct apg_broker *b, struct apg_conn *c,
                                 const struct apg_rcmd *req);

/* broker_admin.c: topics and groups */
void apg_broker_proc_admin(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req);

/* broker_client.c: heartbeats and consumer groups */
struct apg_clients *apg_clients_new(void);
void apg_clients_free(struct apg_clients *cl);
void apg_broker_proc_client(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req);
/* Removes every client registered through c (loop thread, on close). */
void apg_clients_conn_closed(struct apg_broker *b, struct apg_conn *c);
/* Drops clients silent for longer than the expiry (service thread). */
void apg_clients_expire(struct apg_broker *b, int64_t now_ms);
/* Copies the subscription expression of (group, topic) from the heartbeat
 * data into out; false when unknown. Thread-safe. */
bool apg_clients_subscription(struct apg_clients *cl, const char *group, const char *topic,
                              char *out, size_t outlen);

#endif

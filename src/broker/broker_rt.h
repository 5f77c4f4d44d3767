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
#include "common/cron.h"
#include "common/log.h"
#include "common/worker.h"
#include "net/net.h"
#include "protocol/rcode.h"
#include "protocol/remoting.h"
#include "protocol/message.h"
#include "store/store.h"

struct apg_clients;
struct apg_schedule;
struct apg_cstats;
struct apg_txn;
struct apg_timer;
struct apg_acl;
struct apg_pop;
struct apg_parked;
struct apg_put_loop;
struct apg_send_loop;
struct apg_durable_wait;

#define APG_BSTAT_RING 601 /* 10 minutes of 1-second samples, plus one */

struct apg_bstat_sample {
    int64_t bs_ms;
    int64_t bs_put;
    int64_t bs_get;
};
struct apg_sync_ack;

/* Why the broker refused a request (broker_reply.c). Each has a counter and
 * a log rate limit in struct apg_broker; apg_broker_refusal_key names its
 * GET_BROKER_RUNTIME_INFO key. */
enum apg_refusal {
    APG_REFUSAL_NO_PERMISSION,     /* broker, topic or group lacks the permission */
    APG_REFUSAL_TOPIC_NOT_EXIST,   /* unknown topic and not auto-created */
    APG_REFUSAL_GROUP_NOT_EXIST,   /* unknown consumer group and not auto-created */
    APG_REFUSAL_MESSAGE_ILLEGAL,   /* too large, bad properties or batch */
    APG_REFUSAL_INVALID_PARAMETER, /* bad name, queue id out of range */
    APG_REFUSAL_BAD_SUBSCRIPTION,  /* a subscription expression that does not parse */
    APG_REFUSAL_DISK_FULL,         /* the store refuses writes for lack of disk space */
    APG_REFUSAL_STORE_UNAVAILABLE, /* the store failed (fsync) or is closing */
    APG_REFUSAL_SYSTEM_BUSY,       /* too many writes already wait */
    APG_REFUSAL_FLUSH_TIMEOUT,     /* stored, but not flushed within syncFlushTimeout */
    APG_REFUSAL_SLAVE,             /* SYNC_MASTER: stored, but no slave holds it (yet) */
    APG_REFUSAL_NOT_SUPPORTED,     /* request code the broker does not serve */
    APG_REFUSAL_SYSTEM_ERROR,      /* malformed request, out of memory, read failure */
    APG_REFUSAL_N
};

/* Which measure refused a send with SYSTEM_BUSY (broker_put.c); each is a
 * part of APG_REFUSAL_SYSTEM_BUSY with its own counter. */
enum apg_busy {
    APG_BUSY_QUEUE_TIME,   /* waited waitTimeMillsInSendQueue before its loop got to it */
    APG_BUSY_PAGE_CACHE,   /* a put has held the append lock osPageCacheBusyTimeOutMills */
    APG_BUSY_SYNC_BACKLOG, /* too many SYNC_FLUSH sends wait for the disk */
    APG_BUSY_N
};

/* rocketmq_rpc_latency (broker.c): per request code, how long the broker's
 * processor ran; buckets le 1, 3, 5, 7, 10, 100, 1000, 2000, 3000 ms and
 * +Inf (RocketMQ's). Written by one loop thread (relaxed load + store, no
 * locked instruction), read by anyone. */
#define APG_RPC_BUCKETS 10
extern const int64_t apg_rpc_bucket_ms[APG_RPC_BUCKETS - 1];
struct apg_rpc_hist {
    _Atomic uint64_t rh_n[APG_RPC_BUCKETS]; /* per bucket, not cumulative */
    _Atomic uint64_t rh_sum_us;
};

/* Per event-loop state: everything a loop keeps between requests. Each
 * module owns its part (the comment names the file), created and freed by
 * the on_loop_start/on_loop_stop callbacks in broker.c. */
struct apg_bloop {
    struct apg_broker *bl_broker;
    int bl_idx;
    /* broker_pull.c */
    uv_timer_t bl_timer;          /* long-poll deadlines */
    bool bl_timer_on;             /* timer initialised */
    struct apg_parked *bl_parked; /* parked pulls (loop thread only) */
    atomic_int bl_nparked;        /* readable from any thread */
    atomic_int bl_wake_posted;    /* a wake-up post is queued */
    struct apg_buf bl_pull_buf;   /* the buffer pulls are read into */
    /* broker_put.c */
    struct apg_put_loop *bl_put; /* held sends, batch results */
    pthread_mutex_t bl_ack_lock;
    struct apg_sync_ack *bl_acks; /* completed SYNC_FLUSH sends to answer */
    bool bl_ack_posted;
    /* broker_send.c */
    struct apg_send_loop *bl_send; /* property buffer, batch arrays, caches */
    /* broker.c: one histogram per apg_broker_rpc_slots() slot */
    struct apg_rpc_hist *bl_rpc;
};

/* Kick bits of br_svc: jobs other threads ask the service thread to run
 * now (broker_service.c). */
#define APG_BSVC_REGISTER 0x1
/* Rows of the service thread's job table (broker_service.c). */
#define APG_BSVC_JOBS 7

struct apg_broker {
    const struct apg_config *br_cfg;
    struct apg_store *br_store;
    struct apg_topics *br_topics;
    struct apg_groups *br_groups;
    struct apg_offsets *br_offsets;
    struct apg_clients *br_clients;
    struct apg_locks *br_locks;   /* orderly consumers' queue locks (broker_lock.c) */
    struct apg_cstats *br_cstats; /* consume rates (broker_admin_stats.c) */
    struct apg_net_server *br_srv;
    struct apg_net_client *br_cli;
    struct apg_bloop *br_loops;
    int br_nloops;
    struct apg_schedule *br_schedule; /* delay levels (schedule/schedule.h) */
    struct apg_txn *br_txn;           /* transactions (txn/txn.h) */
    struct apg_timer *br_timer;       /* timer messages (timer/timer.h) */
    struct apg_acl *br_acl;           /* plain ACL, NULL when off (acl/acl_broker.h) */
    struct apg_pop *br_pop;           /* pop consumption (pop/pop.h) */
    /* Replication (broker_ha.c): a master runs br_ha_master, a slave
     * br_ha_client; br_master_addr (a slave's master, as the NameServer
     * names it) under br_ha_lock. */
    bool br_slave;        /* brokerRole=SLAVE */
    int br_ha_port;       /* haListenPort, or listenPort + 1 */
    char br_ha_addr[160]; /* host:port registered as haServerAddr */
    struct apg_ha_master *br_ha_master;
    struct apg_ha_client *br_ha_client;
    pthread_mutex_t br_ha_lock;
    char br_master_addr[128];
    int64_t br_slave_synced_ms; /* service thread: wall ms of the last metadata copy */

    char br_root[1024];
    char br_addr[128]; /* advertised ip:port */
    char br_cluster[APG_NAME_CAP];
    char br_name[APG_NAME_CAP];
    char br_namesrv[1024];
    uint8_t br_ip4[4];
    int br_port;
    struct apg_host br_store_host;
    int64_t br_broker_id;
    /* The _Atomic settings below can change while the broker runs
     * (UPDATE_BROKER_CONFIG, broker_admin_config.c); readers just read. */
    _Atomic int32_t br_perm;
    bool br_sync_flush;
    atomic_bool br_auto_create_group;
    uint32_t br_max_msg_size;
    atomic_int br_max_pull_msgs;
    _Atomic size_t br_max_pull_bytes;
    atomic_bool br_long_polling;
    atomic_bool br_property_filter; /* enablePropertyFilter: SQL92 subscriptions */
    _Atomic int64_t br_short_poll_ms;
    _Atomic int64_t br_channel_expire_ms;
    atomic_llong br_cfg_changes; /* accepted UPDATE_BROKER_CONFIG requests */
    _Atomic int64_t br_cfg_ms;   /* wall ms of the last one (start time before) */

    atomic_long br_sync_pending; /* SYNC_FLUSH sends awaiting their ack */
    long br_sync_pending_max;
    /* Fast failure (broker_put.c): brokerFastFailureEnable,
     * waitTimeMillsInSendQueue, osPageCacheBusyTimeOutMills; SYSTEM_BUSY
     * refusals per measure. */
    atomic_bool br_fast_failure;
    _Atomic int64_t br_busy_queue_ms;
    _Atomic int64_t br_busy_pc_ms;
    atomic_llong br_busy[APG_BUSY_N];
    atomic_uint br_rr; /* queue selection for queueId < 0 */

    /* Refusals per cause: counts and log rate limits (broker_reply.c). */
    struct apg_log_limit br_refused[APG_REFUSAL_N];
    atomic_llong br_put_failed; /* sends the write service or the store refused */

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

    /* broker_service.c */
    struct apg_worker br_svc; /* the service thread; kicks are APG_BSVC_* bits */
    struct apg_cron_job br_svc_jobs[APG_BSVC_JOBS]; /* the service thread's */
    bool br_svc_reg_wanted;                         /* the service thread's */
    /* A kicked registration waits until then (wall ms, service thread). */
    int64_t br_reg_not_before;

    /* broker_tables.c: the table writer thread and the replies waiting for
     * the table files, under br_wait_lock */
    pthread_t br_tw;
    bool br_tw_started;
    pthread_mutex_t br_wait_lock;
    pthread_cond_t br_tw_cond;
    bool br_tw_kicked, br_tw_stopping;
    struct apg_durable_wait *br_waits;
    uint64_t br_durable[2]; /* change counts on disk: [0] topics, [1] groups */
    /* Failed writes of [0] topics, [1] groups: one ERROR line per period. */
    struct apg_log_limit br_tw_failed[2];
};

/* Slots of the rpc histograms: one per request code the broker serves,
 * and the last for every other code. */
int apg_broker_rpc_slots(void);
/* The request code of slot i; -1 for the last. */
int32_t apg_broker_rpc_code(int i);
/* Adds slot i of every loop into n[] (per bucket) and *sum_us. Any thread. */
void apg_broker_rpc_sum(const struct apg_broker *b, int i, uint64_t n[APG_RPC_BUCKETS],
                        uint64_t *sum_us);

/* ---- broker_reply.c: replies and refusals (leaf) ------------------------ */

/* Replies with code and remark (remark may be NULL); skipped for oneway. */
void apg_broker_reply(struct apg_conn *c, const struct apg_rcmd *req, int32_t code,
                      const char *remark);
/* A send's reply: with msgId, queueId, queueOffset (and transactionId when
 * uniq is not empty) for SUCCESS and FLUSH_DISK_TIMEOUT. */
void apg_broker_reply_send(struct apg_conn *c, int32_t opaque, uint8_t ser, int32_t code,
                           const char *remark, const char *msgid, int32_t qid, int64_t qoff,
                           const char *uniq);
/* The GET_BROKER_RUNTIME_INFO key of refusal cause r ("refusedDiskFull"). */
const char *apg_broker_refusal_key(enum apg_refusal r);
/* Counts a refusal of cause r and logs it at WARN, at most one line per
 * cause per second, each line with the number of refusals of that cause not
 * logged since the previous one. what: the request ("SEND_MESSAGE_V2");
 * subject: its topic or group (NULL when none); peer may be NULL; code and
 * remark: the answer. Any thread. */
void apg_broker_refusal_note(struct apg_broker *b, enum apg_refusal r, const char *what,
                             const char *subject, const char *peer, int32_t code,
                             const char *remark);
/* Answers req with code and remark (nothing for oneway) and notes it as a
 * refusal, the cause taken from code, the topic or group from req's
 * header. Loop thread. */
void apg_broker_refuse(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req,
                       int32_t code, const char *remark);
/* Notes a send of topic (topic_len bytes, not NUL-terminated) that the store
 * refused with e (err: the store's text) and, unless oneway, answers it under the matching RocketMQ
 * code (MESSAGE_ILLEGAL, SERVICE_NOT_AVAILABLE, ...). */
void apg_broker_reply_refused(struct apg_broker *b, struct apg_conn *c, int32_t opaque, uint8_t ser,
                              bool oneway, const char *topic, size_t topic_len, apg_err_t e,
                              const char *err);

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

/* The checks every consumer read shares: the broker and the topic are
 * readable (tc filled); else answers req NO_PERMISSION or
 * TOPIC_NOT_EXIST with a remark and returns false. Any loop thread. */
bool apg_broker_topic_readable_or_refuse(struct apg_broker *b, struct apg_conn *c,
                                         const struct apg_rcmd *req, const char *topic,
                                         struct apg_topic_cfg *tc);
/* apg_broker_group_or_refuse, then NO_PERMISSION when the group has
 * consumeEnable=false. */
bool apg_broker_group_consumable_or_refuse(struct apg_broker *b, struct apg_conn *c,
                                           const struct apg_rcmd *req, const char *group);

typedef void (*apg_broker_proc_fn)(struct apg_broker *b, struct apg_conn *c,
                                   const struct apg_rcmd *req);

/* ---- broker_put.c: the write service (loop thread) --------------------- */

apg_err_t apg_broker_put_loop_start(struct apg_bloop *bl);
/* Answers queued SYNC_FLUSH completions and frees the loop's put state. */
void apg_broker_put_loop_stop(struct apg_bloop *bl);
/* The queue a put goes to: qid, or round-robin over tc's write queues when
 * qid < 0. Thread-safe. */
int32_t apg_broker_put_queue(struct apg_broker *b, const struct apg_topic_cfg *tc, int32_t qid);
/* Appends msgs (n >= 1, all in queue qid; borrowed for the call) and answers
 * req like a send (msgId, queueId, queueOffset): at once, or, when want_sync
 * (SYNC_FLUSH), once the store's group commit acknowledges; SYSTEM_BUSY when
 * too many puts already wait for the disk. Held puts go first. */
void apg_broker_put(struct apg_broker *b, struct apg_bloop *bl, struct apg_conn *c,
                    const struct apg_rcmd *req, const struct apg_msg_in *m, int n, int32_t qid,
                    const char *uniq, bool want_sync);
/* Holds one validated single-message put (m borrowed; its body must stay
 * valid until apg_broker_put_flush, i.e. the end of the read) to be stored
 * with the others of the same read. False when it cannot (out of memory, or
 * too many SYNC_FLUSH puts waiting): the caller uses apg_broker_put. */
bool apg_broker_put_hold(struct apg_broker *b, struct apg_bloop *bl, struct apg_conn *c,
                         const struct apg_rcmd *req, const struct apg_msg_in *m, const char *uniq,
                         bool sync);
/* Stores and answers the held puts: at the end of every read and before
 * any request other than a single send. */
void apg_broker_put_flush(struct apg_broker *b, struct apg_bloop *bl);
/* True when puts are held on this loop. */
bool apg_broker_put_pending(const struct apg_bloop *bl);
/* Answers SYNC_FLUSH completions queued for bl (posted to its loop). */
void apg_broker_put_drain(void *bl);
/* Writers without a connection (delayed delivery): stores n records with no
 * reply and no busy refusal; under SYNC_FLUSH returns once they are durable.
 * Any thread but a loop's. */
apg_err_t apg_broker_put_internal(struct apg_broker *b, const struct apg_msg_in *msgs, int n,
                                  struct apg_put_result *res, char *err, size_t errlen);
/* Called by apg_broker_put_acked on the connection's loop thread once the
 * records are durable (rc APG_OK), stored but not flushed within
 * syncFlushTimeout (APG_ETIMEDOUT), or lost to a failed fsync (another
 * error); last_qoff is the queue offset of the last record. */
typedef void (*apg_broker_put_done_fn)(struct apg_broker *b, void *arg, apg_err_t rc,
                                       int64_t last_qoff);
#define APG_BROKER_PUT_ACKED_MAX 4
/* A loop-thread writer whose reply carries no put fields (END_TRANSACTION):
 * appends msgs (1..APG_BROKER_PUT_ACKED_MAX, one append, borrowed for the
 * call), then runs done(arg) and answers req SUCCESS: at once under
 * ASYNC_FLUSH, or under SYNC_FLUSH from the group commit's acknowledgement,
 * so the loop never waits for the disk (FLUSH_DISK_TIMEOUT or
 * SERVICE_NOT_AVAILABLE as for a send when the flush is late or failed).
 * The put counts in br_sync_pending but is never refused as busy. On error
 * nothing is stored, answered or called, and err says why. */
apg_err_t apg_broker_put_acked(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req,
                               const struct apg_msg_in *msgs, int n, apg_broker_put_done_fn done,
                               void *arg, char *err, size_t errlen);
/* A writer on a loop of another server (the gRPC port), which must not wait
 * for the disk either: appends msgs (n >= 1, one append, borrowed for the
 * call; res gets n results). Under ASYNC_FLUSH it returns with *pending
 * false and done never runs. Under SYNC_FLUSH it returns with *pending true
 * and done(arg, rc) runs once on the store's ack thread when the group
 * commit covering the records completes (APG_OK), is late (APG_ETIMEDOUT:
 * stored) or failed (another error) -- possibly before this returns, so
 * done only posts to the caller's loop. The put counts in br_sync_pending
 * until then. On error nothing is stored and done never runs. */
typedef void (*apg_broker_put_notify_fn)(void *arg, apg_err_t rc);
apg_err_t apg_broker_put_notify(struct apg_broker *b, const struct apg_msg_in *msgs, int n,
                                struct apg_put_result *res, apg_broker_put_notify_fn done,
                                void *arg, bool *pending, char *err, size_t errlen);
/* Fills m (borrowing from rec) with the copy of a held record (delayed,
 * or a transaction's half) that goes to its REAL_TOPIC / REAL_QID: body,
 * flag, sysflag, born time and host, reconsume count and the property
 * string unchanged, the tag hash recomputed. False when rec names no valid
 * real queue. Pure. */
bool apg_broker_put_real_copy(const struct apg_msgrec *rec, struct apg_msg_in *m);

/* ---- processors --------------------------------------------------------- */

/* broker_send.c */
void apg_broker_proc_send(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req);
apg_err_t apg_broker_send_loop_start(struct apg_bloop *bl);
void apg_broker_send_loop_stop(struct apg_bloop *bl);
/* broker_sendback.c: CONSUMER_SEND_MSG_BACK (36) */
void apg_broker_proc_send_back(struct apg_broker *b, struct apg_conn *c,
                               const struct apg_rcmd *req);
/* broker_stats.c: runtime statistics and GET_BROKER_RUNTIME_INFO (28) */
apg_err_t apg_broker_stats_init(struct apg_broker *b);
void apg_broker_stats_free(struct apg_broker *b);
/* Takes a sample and rolls the daily totals over (service thread, ~1 s). */
void apg_broker_stats_tick(struct apg_broker *b, int64_t now_ms);
void apg_broker_proc_runtime_info(struct apg_broker *b, struct apg_conn *c,
                                  const struct apg_rcmd *req);
/* Appends the GET_BROKER_RUNTIME_INFO body ({"table":{key:value,...}}) to o:
 * what the request answers, also served as GET /api/cluster. Any thread. */
void apg_broker_runtime_info_body(struct apg_broker *b, struct apg_buf *o);
/* Store time of the oldest record in the commit log (ss from
 * apg_store_stats), -1 when empty. Any thread. */
int64_t apg_broker_stats_earliest_time(struct apg_broker *b, const struct apg_store_stats *ss);

/* broker_pull.c */
void apg_broker_proc_pull(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req);
void apg_broker_pull_loop_start(struct apg_bloop *bl, uv_loop_t *loop);
void apg_broker_pull_loop_stop(struct apg_bloop *bl);
/* Store arrive hook: wakes loops that have parked pulls (any thread). */
void apg_broker_pull_arrive(void *ud, const char *topic, size_t topic_len, int32_t queue_id,
                            int64_t new_max);
/* A parked request run again (loop thread): true when it was answered;
 * may_park false means it must be answered now (its time ran out). */
typedef bool (*apg_broker_park_fn)(struct apg_broker *b, struct apg_conn *c,
                                   const struct apg_rcmd *req, bool may_park);
/* Parks req on its connection's loop until the store's arrive hook (or a
 * pop revive) wakes the loop, when run is called again, or until
 * suspend_ms (1..20000; other values: 1000 or 20000) passed, when run is
 * called with may_park false. Loop thread. */
void apg_broker_park(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req,
                     int64_t suspend_ms, apg_broker_park_fn run);
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
/* broker_querymsg.c: QUERY_MESSAGE (12) by key or unique key. */
void apg_broker_proc_query_msg(struct apg_broker *b, struct apg_conn *c,
                               const struct apg_rcmd *req);
void apg_broker_proc_all_offsets(struct apg_broker *b, struct apg_conn *c,
                                 const struct apg_rcmd *req);

/* pop/pop_proc.c: POP_MESSAGE, ACK_MESSAGE, CHANGE_MESSAGE_INVISIBLETIME,
 * NOTIFICATION */
void apg_broker_proc_pop(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req);

/* broker_admin.c: topics and groups */
void apg_broker_proc_admin(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req);

/* ---- broker_tables.c: the table writer ---------------------------------- */

/* Starts the table writer thread. Control thread. */
apg_err_t apg_broker_tables_start(struct apg_broker *b, char *err, size_t errlen);
/* Wakes the table writer (thread-safe). */
void apg_broker_tables_kick(struct apg_broker *b);
/* Answers req SUCCESS once topics.json holds change count topics_seq and
 * subscriptionGroup.json groups_seq (0: no wait for that file), or
 * SYSTEM_ERROR when writing them failed. At once when they already do.
 * Loop thread. */
void apg_broker_reply_when_durable(struct apg_broker *b, struct apg_conn *c,
                                   const struct apg_rcmd *req, uint64_t topics_seq,
                                   uint64_t groups_seq);
/* Makes every table change durable (one coalesced journal append and
 * fdatasync per table, or, when compact or the journal is full, a rewrite
 * of the whole file: apg_btable_commit) and answers the replies that
 * unblocks. The writer thread, or the control thread when the writer is
 * not running. */
void apg_broker_tables_persist(struct apg_broker *b, bool compact);
/* Stops the writer, writes what changed and answers the waiting replies
 * (control thread, while the loops still run). */
void apg_broker_tables_stop(struct apg_broker *b);
/* Drops the replies still waiting (control thread, after the loops). */
void apg_broker_tables_free(struct apg_broker *b);

/* ---- broker_register.c / broker_service.c ------------------------------- */

/* REGISTER_BROKER (or UNREGISTER_BROKER) with every NameServer in
 * namesrvAddr, synchronously. Service or control thread. */
void apg_broker_register(struct apg_broker *b, bool unregister);
/* Signs a request without body with innerClientAuthenticationCredentials
 * (nothing when they are empty); sig holds the signature the request points
 * to, so it must live as long as req. Any thread. */
void apg_broker_sign(struct apg_broker *b, struct apg_rcmd *req, char sig[]);
/* Sends code (with the ext field topic when not NULL) to the first
 * NameServer of namesrvAddr, signed as the registration is; cb(ud, resp,
 * err) runs once on the NameServer client's loop thread unless this
 * returns an error (APG_ENOTFOUND: no NameServer; err says why). Any
 * thread; never waits. */
apg_err_t apg_broker_ns_query(struct apg_broker *b, int32_t code, const char *topic,
                              uint32_t timeout_ms, apg_net_resp_cb cb, void *ud, char *err,
                              size_t errlen);
/* ---- broker_ha.c --------------------------------------------------------- */

/* Starts the master's HA listener or the slave's HA client (control
 * thread, after the store is open). */
apg_err_t apg_broker_ha_start(struct apg_broker *b, char *err, size_t errlen);
/* Stops either (control thread, before the store closes). */
void apg_broker_ha_stop(struct apg_broker *b);
/* A slave's REGISTER_BROKER answer: the master's remoting and HA
 * addresses (either may be NULL). Service or control thread. */
void apg_broker_ha_learned(struct apg_broker *b, const char *master_addr, const char *ha_addr);
/* GET_ALL_DELAY_OFFSET (45): {"offsetTable":{"<level>":<next offset>,...}},
 * the delay levels' progress, for a slave's copy. Loop thread. */
void apg_broker_proc_delay_offsets(struct apg_broker *b, struct apg_conn *c,
                                   const struct apg_rcmd *req);
/* Copies the master's remoting address ("" if unknown). Any thread. */
void apg_broker_ha_master_addr(struct apg_broker *b, char *out, size_t n);
/* Slave, every 2 s: until the NameServer has named a master, registers
 * again to learn it; then, every 10 s, copies topics, subscription groups
 * and consumer offsets from the master (blocking calls). Service thread. */
void apg_broker_slave_sync(struct apg_broker *b, int64_t now_ms);

/* Prepares the service thread (at create: kicks may come before start). */
void apg_broker_service_init(struct apg_broker *b);
/* Starts the service thread: its periodic jobs (registration, offset and
 * table persistence, statistics, client expiry) and the kicked ones. */
apg_err_t apg_broker_service_start(struct apg_broker *b, char *err, size_t errlen);
/* Joins the thread; returns whether it had been started. */
bool apg_broker_service_stop(struct apg_broker *b);
/* Asks the service thread to run the APG_BSVC_* jobs in bits now.
 * Thread-safe. */
void apg_broker_service_kick(struct apg_broker *b, unsigned bits);
/* Persists what changed of consumer offsets, and topics and groups as
 * whole files (their journals emptied): at start and at stop. */
void apg_broker_persist_all(struct apg_broker *b);

/* broker_client.c: heartbeats and consumer groups. A consumer that leaves
 * gives up its queue locks in locks (borrowed; may be NULL). */
struct apg_clients *apg_clients_new(struct apg_locks *locks);
void apg_clients_free(struct apg_clients *cl);
void apg_broker_proc_client(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req);
/* Removes every client registered through c (loop thread, on close). */
void apg_clients_conn_closed(struct apg_broker *b, struct apg_conn *c);
/* Drops clients silent for longer than the expiry (service thread). */
void apg_clients_expire(struct apg_broker *b, int64_t now_ms);
/* broker_lock.c: LOCK_BATCH_MQ and UNLOCK_BATCH_MQ (any loop thread). */
void apg_broker_proc_lock(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req);

/* Copies the subscription expression of (group, topic) from the heartbeat
 * data into out and its expressionType into type ("TAG" when the client
 * sent none); false when unknown. Thread-safe. */
bool apg_clients_subscription(struct apg_clients *cl, const char *group, const char *topic,
                              char *out, size_t outlen, char *type, size_t typelen);
/* True when a member of consumer group is registered with subscriptions.
 * Thread-safe. */
bool apg_clients_group_online(struct apg_clients *cl, const char *group);
/* Appends to out the name of every consumer group whose members subscribe
 * topic, each followed by a NUL. Thread-safe. */
apg_err_t apg_clients_topic_groups(struct apg_clients *cl, const char *topic, struct apg_buf *out);
/* One registered member of a client group, borrowed for a visitor call. */
struct apg_client_member {
    const char *cm_id;
    struct apg_conn *cm_conn; /* referenced by the table; apg_conn_ref to keep it */
    uint8_t cm_lang;
    int32_t cm_version;
    int64_t cm_last_ms; /* wall time of its last heartbeat */
    /* consumers: its own subscriptions as compact JSON with sorted keys,
     * {"<topic>": {"expressionType", "subString"}} (equal texts: equal
     * subscriptions); NULL when unknown */
    const char *cm_subs;
};
/* Callbacks of apg_clients_visit (any may be NULL); anything but APG_OK
 * stops the visit and is returned. They run under the table's lock: they
 * may not call into other tables or block. sub_json may be NULL. */
struct apg_clients_visitor {
    apg_err_t (*cv_name)(void *ud, const char *group); /* first, with every group */
    apg_err_t (*cv_group)(void *ud, const char *consume_type, const char *message_model,
                          const char *consume_from);
    apg_err_t (*cv_member)(void *ud, const struct apg_client_member *m);
    apg_err_t (*cv_sub)(void *ud, const char *topic, const char *expr, const char *sub_json);
};
/* Visits the consumer (consumers) or producer group: its name, its kind,
 * each member, each subscription (consumers only), in that order.
 * APG_ENOTFOUND when nobody of the group is registered. group NULL visits
 * every group of the kind that has members (APG_OK when there is none).
 * Thread-safe. */
apg_err_t apg_clients_visit(struct apg_clients *cl, bool consumers, const char *group,
                            const struct apg_clients_visitor *v, void *ud);
/* Registered (group, client) members over all producer and consumer
 * groups. Thread-safe. */
void apg_clients_count(struct apg_clients *cl, int64_t *producers, int64_t *consumers);
/* The connection of the member of producer group that heartbeated last,
 * among those whose connection is open, referenced (apg_conn_unref); NULL
 * when none. Thread-safe. */
struct apg_conn *apg_clients_producer_conn(struct apg_clients *cl, const char *group);

/* ---- broker_filter.c: SQL92 property filters ----------------------------- */

struct apg_sql92;
/* CHECK_CLIENT_CONFIG (46): refuses a SQL92 subscription that does not
 * compile, or any when enablePropertyFilter is off. */
void apg_broker_proc_check_client_config(struct apg_broker *b, struct apg_conn *c,
                                         const struct apg_rcmd *req);
/* The compiled form of a non-TAG subscription for a pull in this loop
 * thread (kept per thread while the text repeats), or NULL with the response
 * code and remark to refuse the pull with. */
const struct apg_sql92 *apg_broker_filter_sql(struct apg_broker *b, const char *type,
                                              const char *expr, int32_t *code, char *remark,
                                              size_t remarklen);
/* Keeps, in place, the records of out (a pull's stored records) for which
 * keep(ud, properties) is true, and those that do not decode; returns how
 * many are left. */
typedef bool (*apg_broker_keep_fn)(const void *ud, const char *props, size_t len);
int apg_broker_filter_keep(struct apg_buf *out, apg_broker_keep_fn keep, const void *ud);
/* apg_broker_filter_keep with the records whose properties match q. */
int apg_broker_filter_sql_keep(const struct apg_sql92 *q, struct apg_buf *out);

#endif

/* Private declarations of the C client (src/client). Not installed.
 *
 * Split: msg.c and route.c are pure (message object, pulled-record decoding,
 * queue lists and choice, on the shared codecs of src/protocol) and are
 * unit-tested without any network; io.c is the per-instance I/O thread
 * (libuv loop, connections, request table, NameServer failover); producer.c
 * and consumer.c build the protocol on top of io.c. */
#ifndef APG_CLIENT_INT_H
#define APG_CLIENT_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "protocol/message.h"
#include "protocol/filter/sql92.h"
#include "protocol/tagexpr.h"
#include "apogee/apogee.h"

/* ---- configuration (conf.c) ---- */

/* One member per key of conf.def: int for I, B and E (a choice's index),
 * an owned string (NULL = unset) for S. */
#define APG_CCONF_I(f) int f;
#define APG_CCONF_B(f) int f;
#define APG_CCONF_E(f) int f;
#define APG_CCONF_S(f) char *f;
struct apg_conf {
#define APG_CCONF(f, name, type, def, lo, hi, choices, help) APG_CCONF_##type(f)
#include "client/conf.def"
#undef APG_CCONF
};
#undef APG_CCONF_I
#undef APG_CCONF_B
#undef APG_CCONF_E
#undef APG_CCONF_S
/* APG_EINVAL with a sentence when conf is NULL, or when a consumer's conf
 * (consumer true) has no consumerGroup. */
apg_err_t apg_conf_check(const struct apg_conf *conf, bool consumer, char *err, size_t errlen);

/* Indexes of the choices of messageModel and consumeFromWhere. */
enum { APG_CLUSTERING = 0, APG_BROADCASTING = 1 };
enum { APG_CONSUME_FROM_LAST_OFFSET = 0, APG_CONSUME_FROM_FIRST_OFFSET = 1 };

/* ---- messages (msg.c) ---- */

struct apg_prop {
    char *pr_key;
    char *pr_val;
};

/* A message. Owned by whoever created it; not shared between threads while
 * a call that borrows it runs. */
struct apg_message {
    char *m_topic;
    uint8_t *m_body;
    size_t m_body_len;
    int32_t m_flag;
    struct apg_prop *m_props;
    size_t m_nprops, m_capprops;
    /* Filled on received messages. */
    int32_t m_queue_id;
    int64_t m_queue_offset;
    int64_t m_commitlog_offset;
    int32_t m_sysflag;
    int64_t m_born_ts;
    int64_t m_store_ts;
    int32_t m_reconsume;
    int32_t m_body_crc;
    char m_offset_id[64];
    /* Decoded messages are one allocation of m_arena_len bytes starting at
     * the struct (topic, body, property array and strings inside); parts
     * that point into it are never freed on their own (apg_msg_part_free). */
    size_t m_arena_len;
};

/* Record layout, magic codes and the other sysFlag bits: protocol/message.h.
 * These are the client-side extras (batch flag, compression type bits). */
#define APG_MSG_SYSFLAG_INNER_BATCH 0x80
#define APG_MSG_SYSFLAG_COMPRESS_MASK 0x700
#define APG_MSG_SYSFLAG_ZLIB 0x300

/* Frees p, a part of m (topic, body, property string or array), unless it
 * lives in m's arena. */
void apg_msg_part_free(apg_message_t *m, void *p);

/* Property set/get without the reserved-name check (internal use). */
apg_err_t apg_msg_prop_set(apg_message_t *m, const char *key, const char *val);
const char *apg_msg_prop_get(const apg_message_t *m, const char *key);
/* True when `name` is a property reserved by RocketMQ. */
bool apg_msg_prop_reserved(const char *name);

/* Appends the property string (key \x01 value \x02 ...) of m to out. */
apg_err_t apg_msg_props_encode(const apg_message_t *m, struct apg_buf *out);
/* Length of that property string, and the same bytes written to out
 * (which must have room for apg_msg_props_len(m)); returns the end. */
size_t apg_msg_props_len(const apg_message_t *m);
char *apg_msg_props_write(const apg_message_t *m, char *out);
/* Parses a property string into m's properties (replacing duplicates).
 * Chunks without \x01 or shorter than 3 bytes are skipped, as Java does. */
apg_err_t apg_msg_props_decode(apg_message_t *m, const char *s, size_t len);

/* Writes a new UNIQ_KEY for this host (apg_msgid_uniq_new) into out[33].
 * Thread-safe. */
void apg_msg_uniq_id(char out[33]);
/* Sets UNIQ_KEY when absent. */
apg_err_t apg_msg_ensure_uniq(apg_message_t *m);

/* Appends one batch record (docs/wire.md §5.3) for m. */
apg_err_t apg_msg_batch_append(const apg_message_t *m, struct apg_buf *out);

/* Compresses in (zlib) into *out (apg_malloc'd). */
apg_err_t apg_msg_zlib(const uint8_t *in, size_t len, int level, uint8_t **out, size_t *out_len);
/* Inflates in into *out (apg_malloc'd), at most max bytes. */
apg_err_t apg_msg_unzlib(const uint8_t *in, size_t len, size_t max, uint8_t **out, size_t *out_len);

/* Decodes the concatenated stored records of a pull body (docs/wire.md §9.2). Calls
 * on_msg for each message (which takes the message). Decompresses bodies.
 * A malformed record ends decoding with APG_EPROTO and a message in err
 * (messages already delivered stay delivered). */
typedef apg_err_t (*apg_msg_sink)(apg_message_t *m, void *arg);
apg_err_t apg_msg_decode_records(const uint8_t *buf, size_t len, apg_msg_sink on_msg, void *arg,
                                 char *err, size_t errlen);

/* ---- routes (route.c) ---- */

struct apg_broker_addr {
    char *ba_name;
    char *ba_master; /* brokerAddrs[0], NULL when no master */
    char *ba_read;   /* where consumers go: the master, else the slave with the lowest
                        brokerId (Java's findBrokerAddressInSubscribe); NULL: none */
};

/* A parsed TopicRouteData reduced to what a client uses. */
struct apg_croute {
    apg_mq_t *rt_wq; /* writable queues, Java order: by broker name, then id */
    size_t rt_nwq;
    apg_mq_t *rt_rq; /* readable queues, same order */
    size_t rt_nrq;
    struct apg_broker_addr *rt_brokers;
    size_t rt_nbrokers;
};

/* Parses a GET_ROUTEINFO_BY_TOPIC body for `topic` (standard JSON or
 * fastjson's unquoted integer keys). Queues of brokers without a master are
 * left out of the writable list; readable queues need any address (a
 * slave serves reads when its master is gone). */
apg_err_t apg_croute_parse(const char *topic, const uint8_t *body, size_t len,
                           struct apg_croute *rt, char *err, size_t errlen);
void apg_croute_free(struct apg_croute *rt);
/* Master address of a broker name, or NULL. */
const char *apg_croute_master(const struct apg_croute *rt, const char *broker);
/* Where a consumer of the broker name pulls and keeps its offsets: the
 * master, or a slave when the route has no master (the master is gone);
 * NULL when the broker has no address. */
const char *apg_croute_reader(const struct apg_croute *rt, const char *broker);

/* Round robin over writable queues starting at *counter, skipping queues on
 * `avoid_broker` when another broker has one. Returns an index or -1. */
int apg_croute_pick_rr(const struct apg_croute *rt, uint32_t *counter, const char *avoid_broker);
/* Java SelectMessageQueueByHash: |hashCode(key) % n|. -1 when no queue. */
int apg_croute_pick_hash(const struct apg_croute *rt, const char *key);

/* Keeps only queue ids below max (Java's defaultTopicQueueNums cap when a
 * new topic is sent through the TBW102 template route). */
void apg_croute_cap(struct apg_croute *rt, int max);

/* ---- the I/O instance (io.c) ----
 *
 * One per producer or consumer: a libuv loop on its own thread owns every
 * connection, the pending-request table, the topic routes and the timers.
 * Other threads hand it work with apg_cio_submit(); everything else in this
 * section runs on the loop thread only. */

struct apg_cio;
struct apg_rcmd;

/* Work handed to the loop thread. op_fn runs on it exactly once, also during
 * shutdown (then apg_cio_stopping() is true and the op must fail itself). */
struct apg_cop {
    void (*op_fn)(struct apg_cio *io, struct apg_cop *op);
    struct apg_cop *op_next;
};

/* Response callback: e == APG_OK with resp (borrowed, valid during the call)
 * or e < 0 with errmsg. Never called for a call that returned an error. */
typedef void (*apg_cio_cb)(struct apg_cio *io, apg_err_t e, const struct apg_rcmd *resp,
                           const char *errmsg, void *arg);

/* A topic known to the instance. Owned by the loop thread. */
struct apg_ctopic {
    char *ct_name;
    struct apg_croute ct_route;
    bool ct_have;
    bool ct_fetching;
    bool ct_use_default; /* producer: fall back to TBW102 for unknown topics */
    uint32_t ct_rr;
    struct apg_rwait *ct_waiters;
    struct apg_ctopic *ct_next;
};
typedef void (*apg_croute_cb)(struct apg_cio *io, struct apg_ctopic *t, apg_err_t e,
                              const char *errmsg, void *arg);

struct apg_cio_conf {
    const char *namesrv;
    const char *instance;
    uint8_t serialize;
    int route_refresh_ms;
    int heartbeat_ms;
    int timeout_ms;
    /* Builds the HEART_BEAT body (JSON) into out; loop thread. */
    apg_err_t (*hb_body)(struct apg_cio *io, void *owner, struct apg_buf *out);
    /* Every second on the loop thread (periodic work of the owner). */
    void (*on_tick)(struct apg_cio *io, void *owner);
    /* Server-initiated request (e.g. NOTIFY_CONSUMER_IDS_CHANGED). */
    void (*on_server_req)(struct apg_cio *io, void *owner, const struct apg_rcmd *req);
    void *owner;
    /* The handle's configuration, for its tls.* keys and its ACL account
     * (access_key and secret_key both set, or requests go unsigned);
     * borrowed for apg_cio_new. NULL = plaintext and unsigned. */
    const struct apg_conf *conf;
};

struct apg_cio *apg_cio_new(const struct apg_cio_conf *conf, char *err, size_t errlen);
/* Stops the loop (ops queued before complete with APG_ESHUTDOWN) and frees. */
void apg_cio_free(struct apg_cio *io);
/* Any thread. APG_ESHUTDOWN once stopping; then op_fn is not called. */
apg_err_t apg_cio_submit(struct apg_cio *io, struct apg_cop *op);
bool apg_cio_stopping(const struct apg_cio *io);
const char *apg_cio_client_id(const struct apg_cio *io);
uint8_t apg_cio_serialize(const struct apg_cio *io);

/* Sends req (opaque assigned here) with body to addr. cb NULL => oneway.
 * timeout_ms <= 0 uses the default. */
apg_err_t apg_cio_call(struct apg_cio *io, const char *addr, struct apg_rcmd *req, const void *body,
                       size_t blen, int timeout_ms, apg_cio_cb cb, void *arg, char *err,
                       size_t errlen);
/* Finds or creates the topic entry and calls cb once a route is known
 * (synchronously when cached and !refresh). */
void apg_cio_route(struct apg_cio *io, const char *topic, bool use_default, bool refresh,
                   apg_croute_cb cb, void *arg);
/* Sends a heartbeat to every master broker of every known route now. */
void apg_cio_heartbeat_all(struct apg_cio *io);
/* Runs fn(arg) on the loop thread after about ms (10 ms resolution). At
 * shutdown pending entries run at once with apg_cio_stopping() true, so
 * fn always runs exactly once and can free arg. */
void apg_cio_after(struct apg_cio *io, int ms, void (*fn)(struct apg_cio *io, void *arg),
                   void *arg);
/* Distinct master addresses of every known route (borrowed; valid until the
 * next route change). Returns how many were written to out (at most max). */
size_t apg_cio_masters(struct apg_cio *io, const char **out, size_t max);
struct apg_ctopic *apg_cio_topic_find(struct apg_cio *io, const char *topic);
int64_t apg_now_ms(void);

/* Sync helper: a one-shot flag a caller thread waits on (a futex; the
 * signalling thread makes a system call only when the waiter sleeps). */
struct apg_cwait {
    _Atomic uint32_t w_state; /* 0 pending, 1 waiter sleeping, 2 done */
    int w_spin_us;            /* spin budget (conf key syncSpinMicros) */
};
void apg_cwait_init(struct apg_cwait *w, int spin_us);
void apg_cwait_wait(struct apg_cwait *w);
void apg_cwait_signal(struct apg_cwait *w);
void apg_cwait_destroy(struct apg_cwait *w);

/* ---- producer internals (producer.c) for the transactional producer ---- */

/* apg_producer_new with a handler for server-initiated requests (loop
 * thread; req borrowed for the call). srv_arg (apg_malloc'ed or NULL) is
 * owned by the producer from the call on: apg_free'd when it is destroyed
 * (also when this fails). */
apg_producer_t *apg_producer_new_ext(const apg_conf_t *conf,
                                     void (*srv_req)(apg_producer_t *p, const struct apg_rcmd *req,
                                                     void *arg),
                                     void *srv_arg, char *err, size_t errlen);
/* A sync send with the transaction type PREPARED in the sysflag. */
apg_err_t apg_producer_send_prepared(apg_producer_t *p, apg_message_t *msg, apg_send_result_t *res,
                                     char *err, size_t errlen);
struct apg_cio *apg_producer_cio(apg_producer_t *p);
const char *apg_producer_group(const apg_producer_t *p);
/* The address of the broker connection whose request on_server_req is
 * handling now (loop thread, during the call only). */
const char *apg_cio_server_req_addr(const struct apg_cio *io);
/* Only during on_server_req (I/O thread): answers req on the connection it
 * came on (body borrowed, copied into the output buffer). */
apg_err_t apg_cio_server_reply(struct apg_cio *io, const struct apg_rcmd *req, int32_t code,
                               const char *remark, const void *body, size_t blen);

/* ---- offset commits (consumer.c, shared with push/offsets.c) ----
 * One queue's consumer offset on its way to the master of the queue's
 * broker: apg_ccommit_new() (any thread) records what to send, then
 * apg_ccommit_start() (I/O thread) takes ownership, resolves the route and
 * sends UPDATE_CONSUMER_OFFSET. cm_group is borrowed and must outlive the
 * I/O thread. cm_done (may be NULL: oneway) runs once on the I/O thread with
 * the broker's answer, or with an error when nothing could be sent. */
struct apg_ccommit {
    const char *cm_group;
    apg_mq_t cm_mq;
    int64_t cm_offset;
    apg_cio_cb cm_done;
    void *cm_arg;
};
/* NULL when out of memory. */
struct apg_ccommit *apg_ccommit_new(const char *group, const apg_mq_t *mq, int64_t offset,
                                    apg_cio_cb done, void *arg);
void apg_ccommit_start(struct apg_cio *io, struct apg_ccommit *cm);

/* ---- direct sends (io.c): the calling thread writes the request ----
 *
 * Any thread. apg_cio_direct_begin() looks at the cached route of topic
 * (under the instance lock): pick(rt, arg) returns a writable queue index
 * or -1; when the route is known, the queue valid and the connection to its
 * master up, the queue is copied to *mq and a referenced connection is
 * returned; otherwise NULL and the caller takes the apg_cio_submit() path.
 * apg_cio_direct_send() then registers the request (cb NULL => oneway;
 * deadline_ms on the apg_now_ms() clock, <= 0 for the default timeout) and
 * writes it: at once on the socket when `now` (or when few requests wait
 * for answers) and nothing is queued before it, else appended to the connection's buffer and
 * flushed by the loop thread with one write for everything queued. It always drops the connection
 * reference. APG_OK: the request is handed over exactly as with apg_cio_call() (cb runs once on the
 * loop thread). Any error: nothing was registered or written and the caller may fall back to the
 * slow path. */
struct apg_cconn;
struct apg_cconn *apg_cio_direct_begin(struct apg_cio *io, const char *topic,
                                       int (*pick)(const struct apg_croute *rt, void *arg),
                                       void *pick_arg, apg_mq_t *mq);
/* The same for a request to the master of `broker` in topic's cached route
 * (pulls and offset requests of a given queue). */
struct apg_cconn *apg_cio_direct_conn(struct apg_cio *io, const char *topic, const char *broker);
apg_err_t apg_cio_direct_send(struct apg_cio *io, struct apg_cconn *cc, struct apg_rcmd *req,
                              const void *body, size_t blen, int64_t deadline_ms, apg_cio_cb cb,
                              void *arg, bool now);
/* Drops the reference of a connection from apg_cio_direct_begin() unused. */
void apg_cio_direct_abort(struct apg_cio *io, struct apg_cconn *cc);

/* Clustering rebalance, Java's AllocateMessageQueueAveragely: sorts mqs
 * (topic, broker, queue id) and cids in place, then writes the indexes into
 * mqs of the queues `me` gets to out (room for n_mqs) and returns how many;
 * 0 when me is not in cids. */
size_t apg_alloc_average(apg_mq_t *mqs, size_t n_mqs, char **cids, size_t n_cids, const char *me,
                         size_t *out);

/* Client's primary IPv4 address (non-loopback when there is one). */
void apg_client_local_ip(uint8_t ip[4], char *text, size_t textlen);

/* Compiles a SQL92 subscription to check it (consumer.c): APG_EINVAL with
 * the position of an error in err. */
apg_err_t apg_client_sql92_check(const char *sql, char *err, size_t errlen);

/* ---- query by key (query.c) ---- */

/* QUERY_MESSAGE to every master broker of topic's route, answers merged and
 * checked (see query.c). Blocks the caller; APG_ENOTFOUND when nothing
 * matches. On APG_OK *msgs (n >= 1) is owned by the caller: free with
 * apg_message_list_free(). */
apg_err_t apg_client_query(struct apg_cio *io, int timeout_ms, int spin_us, const char *topic,
                           const char *key, bool unique, int max_nums, int64_t begin_ms,
                           int64_t end_ms, apg_message_t ***msgs, size_t *n, char *err,
                           size_t errlen);

#endif

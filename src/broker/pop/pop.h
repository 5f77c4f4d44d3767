/* Pop consumption (RocketMQ 5's POP_MESSAGE / ACK_MESSAGE /
 * CHANGE_MESSAGE_INVISIBLETIME, and the gRPC ReceiveMessage / AckMessage /
 * ChangeInvisibleDuration): the broker hands messages of a queue to
 * whichever consumer of a group asks, each invisible to the others until it
 * is acknowledged or its invisible time runs out; then it is handed again
 * (attempts counted, a back-off growing with them), and after the group's
 * retryMaxTimes + 1 deliveries it is stored in %DLQ%<group>.
 *
 * This is the internal API both fronts call (the remoting processors in
 * pop_proc.c and src/proxy/grpc); none of it goes through a socket.
 *
 * State: per (group, topic, queue) the pop cursor and the in-flight entries
 * (pop_state.h), journaled to <storePathRootDir>/pop/journal and
 * snapshotted to pop/snapshot (docs/design.md, "Pop state").
 *
 * Threads: every call below is thread-safe (one leaf mutex; the store is
 * read under it, never written). The module's own thread runs the revive
 * job (deadlines, back-off, dead-letter copies through
 * apg_broker_put_internal), the journal sync and the compaction, as rows of
 * a cron table. */
#ifndef APG_BROKER_POP_H
#define APG_BROKER_POP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

struct apg_broker;
struct apg_pop;
struct apg_tagexpr;
struct apg_sql92;

#define APG_POP_MAX_BATCH 32

/* Loads the snapshot and replays the journal. Call after the store opens
 * and before the loops start. *out owned by the caller (apg_pop_stop). */
apg_err_t apg_pop_open(struct apg_broker *b, struct apg_pop **out, char *err, size_t errlen);
/* Starts the revive thread (once the loops are up: a revive wakes parked
 * pops through them). */
apg_err_t apg_pop_start(struct apg_pop *pp, char *err, size_t errlen);
/* Stops the thread, writes a snapshot, frees pp. Before the store closes.
 * NULL is ignored. */
void apg_pop_stop(struct apg_pop *pp);

struct apg_pop_req {
    const char *pr_group;
    const char *pr_topic;
    int32_t pr_queue;                  /* -1: any readable queue of the topic */
    int pr_max;                        /* 1..APG_POP_MAX_BATCH */
    int64_t pr_invisible;              /* ms */
    bool pr_fifo;                      /* a queue with messages in flight is not popped */
    bool pr_init_min;                  /* a new group starts at the queue's minimum offset */
    const struct apg_tagexpr *pr_tags; /* NULL: every tag */
    const struct apg_sql92 *pr_sql;    /* NULL: no SQL92 filter */
};

/* One message handed out; its record (the stored bytes, reconsumeTimes set
 * to attempts - 1) is recs[pm_rec_off .. + pm_rec_len). */
struct apg_pop_msg {
    int32_t pm_queue;
    int64_t pm_offset;
    int64_t pm_phys;
    int32_t pm_attempts; /* deliveries, this one included */
    size_t pm_rec_off, pm_rec_len;
};

struct apg_pop_result {
    int64_t pr_stamp;     /* the pop time of this batch: every handle's popTime */
    int64_t pr_invisible; /* ms */
    int pr_n;
    struct apg_pop_msg pr_msgs[APG_POP_MAX_BATCH];
    int64_t pr_rest;       /* messages left in the queues looked at */
    int64_t pr_start[256]; /* per queue id < 256: first offset handed, -1 none */
};

/* Hands out up to rq->pr_max messages: first those of a queue that are due
 * again (in offset order), then new ones from the cursor. Records are
 * appended to recs. pr_n == 0 when nothing is available. APG_EIO when the
 * journal cannot be written (nothing handed out), APG_ENOMEM. */
apg_err_t apg_pop_take(struct apg_pop *pp, const struct apg_pop_req *rq, struct apg_buf *recs,
                       struct apg_pop_result *res, char *err, size_t errlen);
/* Acknowledges the delivery (offset, stamp) of (group, topic, qid).
 * APG_ENOTFOUND when that delivery is not in flight any more (acknowledged,
 * handed again, or moved to the DLQ). */
apg_err_t apg_pop_ack(struct apg_pop *pp, const char *group, const char *topic, int32_t qid,
                      int64_t offset, int64_t stamp);
/* One delivery of apg_pop_ack_many: in, and its outcome pa_rc. */
struct apg_pop_ack_ent {
    int32_t pa_qid;
    int64_t pa_offset;
    int64_t pa_stamp;
    apg_err_t pa_rc; /* APG_OK, APG_ENOTFOUND as for apg_pop_ack, APG_EIO, APG_ENOMEM */
};
/* Acknowledges n deliveries of (group, topic) as n apg_pop_ack calls would,
 * with ONE journal write for all of them (before it returns, as for one)
 * and one offset commit per queue. A delivery named twice is acknowledged
 * once (the second APG_ENOTFOUND). */
void apg_pop_ack_many(struct apg_pop *pp, const char *group, const char *topic,
                      struct apg_pop_ack_ent *v, int n);
/* Makes the delivery invisible for invisible_ms from now; *new_stamp gets
 * its new pop time (the new handle's). APG_ENOTFOUND as for ack, or when
 * the delivery's invisible time already ran out. */
apg_err_t apg_pop_change(struct apg_pop *pp, const char *group, const char *topic, int32_t qid,
                         int64_t offset, int64_t stamp, int64_t invisible_ms, int64_t *new_stamp);
/* Stores the delivery's message in %DLQ%<group> now and removes it (a
 * client gave up on it: ForwardMessageToDeadLetterQueue). APG_ENOTFOUND as
 * for ack; APG_EIO when the copy could not be stored (it is handed again
 * later). */
apg_err_t apg_pop_dead_letter(struct apg_pop *pp, const char *group, const char *topic, int32_t qid,
                              int64_t offset, int64_t stamp);
/* True when a pop of (group, topic, qid or -1) would find a message now
 * (NOTIFICATION). */
bool apg_pop_available(struct apg_pop *pp, const char *group, const char *topic, int32_t qid);
/* Sets fn(ud), run by the pop thread after every revive pass (every
 * 100 ms): a front that long-polls on its own loops (the gRPC
 * ReceiveMessage) retries its waiting calls from it. Set once; any thread. */
typedef void (*apg_pop_tick_fn)(void *ud);
void apg_pop_set_tick(struct apg_pop *pp, apg_pop_tick_fn fn, void *ud);
/* Entries in flight (handed and not acknowledged) over all queues. */
int64_t apg_pop_inflight(struct apg_pop *pp);

/* ---- bodies (pop_body.c, pure) ------------------------------------------- */

struct apg_msgrec;
/* The body of r as a consumer reads it: body and len point into r, or into
 * out when the stored body is zlib-compressed (inflated there, at most
 * 64 MiB; a body that does not inflate is given as stored). APG_ENOMEM. */
apg_err_t apg_pop_body_plain(const struct apg_msgrec *r, struct apg_buf *out, const uint8_t **body,
                             size_t *len);
/* The MD5 of p[0..n) as 32 uppercase hex digits and a NUL. */
void apg_pop_body_md5(const uint8_t *p, size_t n, char out[33]);

/* ---- receipt handles (pop_handle.c, pure) -------------------------------- */

/* RocketMQ's extraInfo / 5.x receipt handle: space-separated
 * "startOffset popTime invisibleTime reviveQid topicType brokerName queueId
 * queueOffset [commitLogOffset]" (docs/wire.md §16). */
struct apg_pop_handle {
    int64_t ph_start;
    int64_t ph_stamp;
    int64_t ph_invisible;
    int32_t ph_revive_qid;
    char ph_type; /* '0' normal topic, '1' / '2' pop retry topic */
    char ph_broker[256];
    int32_t ph_queue;
    int64_t ph_offset; /* -1 when absent */
    int64_t ph_phys;   /* -1 when absent */
};
/* Writes the handle into out, the queue offset only when ph_offset >= 0 and
 * the commit-log offset only when ph_phys >= 0 as well (absent fields decode
 * back to -1); returns its length, or 0 when it does not fit. */
size_t apg_pop_handle_encode(const struct apg_pop_handle *h, char *out, size_t n);
/* Writes the handle of delivery pm of batch res from broker into out (as
 * apg_pop_handle_encode). */
size_t apg_pop_handle_of(const struct apg_pop_result *res, const struct apg_pop_msg *pm,
                         const char *broker, char *out, size_t n);
/* Parses s[0..len). APG_EINVAL when a field is missing or not a number. */
apg_err_t apg_pop_handle_decode(const char *s, size_t len, struct apg_pop_handle *h);

#endif

/* PULL_MESSAGE (11) / LITE_PULL_MESSAGE (361) with long polling.
 *
 * A pull is served in the connection's loop thread: check topic, queue and
 * group, commit the piggy-backed offset (sysFlag bit 0), read from the store
 * filtering on the consume-queue tag hash, then drop records whose stored
 * TAGS is not exactly one of the subscribed tags (hash collisions), and
 * answer with nextBeginOffset/minOffset/maxOffset/suggestWhichBrokerId.
 * A SQL92 subscription keeps the records whose properties match it instead
 * (broker_filter.c).
 *
 * Offsets: the store decides the GetMessageStatus with RocketMQ's rules;
 * OFFSET_TOO_SMALL and OFFSET_OVERFLOW_BADLY become PULL_OFFSET_MOVED with
 * the nearest valid offset, so a consumer is never sent back to the minimum
 * offset because of a transient condition.
 *
 * Long polling: a pull that finds nothing at the end of the queue with
 * FLAG_SUSPEND set is parked on its connection's loop (a decoded copy of the
 * request plus a reference to the connection) until a message arrives for
 * that (topic, queue) or suspendTimeoutMillis passes (capped so the answer
 * beats the client's own timeout). The store's arrive hook runs in the
 * sending thread; it posts one wake-up to each loop that has parked pulls
 * (coalesced with bl_wake_posted), and the loop re-runs its parked pulls. A
 * 100 ms timer per loop answers expired ones with PULL_NOT_FOUND. Pops
 * (src/broker/pop/pop_proc.c) park the same way with a run function of
 * their own (apg_broker_park). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_admin_stats.h"
#include "broker/broker_rt.h"
#include "common/log.h"
#include "common/mem.h"
#include "protocol/filter/sql92.h"
#include "protocol/message.h"

#define PULL_SYS_COMMIT 0x1
#define PULL_SYS_SUSPEND 0x2
#define PULL_SYS_SUBSCRIPTION 0x4
#define MAX_SUSPEND_MS 20000

struct apg_parked {
    struct apg_parked *pk_next;
    struct apg_conn *pk_conn; /* referenced */
    struct apg_rcmd_copy *pk_req;
    apg_broker_park_fn pk_run;
    int64_t pk_deadline;
};

struct pull_ctx {
    const struct apg_tagexpr *pc_filter;
};

static bool filter_code(void *ud, int64_t code)
{
    return apg_tagexpr_match_code(ud, code);
}

static void reply_pull(struct apg_conn *c, const struct apg_rcmd *req, int32_t code,
                       const char *remark, int64_t next, int64_t min, int64_t max,
                       const uint8_t *body, uint32_t len)
{
    if (apg_rcmd_is_oneway(req))
        return;
    struct apg_rcmd resp;
    apg_rcmd_init_response(&resp, req, code, remark);
    char n[24], mi[24], ma[24];
    apg_rcmd_ext_add(&resp, "nextBeginOffset", apg_fmt_i64(n, next));
    apg_rcmd_ext_add(&resp, "minOffset", apg_fmt_i64(mi, min));
    apg_rcmd_ext_add(&resp, "maxOffset", apg_fmt_i64(ma, max));
    apg_rcmd_ext_add(&resp, "suggestWhichBrokerId", "0");
    apg_conn_send(c, &resp, body, len);
}

static bool tag_keep(const void *f, const char *props, size_t len)
{
    size_t vl = 0;
    const char *v = apg_props_find(props, len, "TAGS", &vl);
    return apg_tagexpr_match_tag(f, v, vl);
}

/* Keeps only records whose TAGS is exactly subscribed; returns the count. */
static int exact_filter(const struct apg_tagexpr *f, struct apg_buf *out)
{
    return apg_broker_filter_keep(out, tag_keep, f);
}

/* Runs one pull. Returns true when answered, false when it should park
 * (only if may_park). */
static bool pull_once(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req,
                      bool may_park, bool first, int64_t *suspend_ms)
{
    char err[256], remark[512];
    const char *group = apg_rcmd_ext_get(req, "consumerGroup");
    const char *topic = apg_rcmd_ext_get(req, "topic");
    int32_t qid, max_msgs, sysflag;
    int64_t offset, commit, suspend;
    if (!group || !topic || apg_rcmd_ext_i32(req, "queueId", &qid) ||
        apg_rcmd_ext_i64(req, "queueOffset", &offset)) {
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR,
                          "PULL_MESSAGE needs consumerGroup, topic, queueId and queueOffset");
        return true;
    }
    if (apg_rcmd_ext_i32(req, "maxMsgNums", &max_msgs) || max_msgs <= 0)
        max_msgs = 32;
    if (apg_rcmd_ext_i32(req, "sysFlag", &sysflag))
        sysflag = 0;
    if (apg_rcmd_ext_i64(req, "commitOffset", &commit))
        commit = -1;
    if (apg_rcmd_ext_i64(req, "suspendTimeoutMillis", &suspend))
        suspend = 15000;
    *suspend_ms = suspend;

    struct apg_topic_cfg tc;
    if (!apg_broker_topic_readable_or_refuse(b, c, req, topic, &tc))
        return true;
    if (qid < 0 || qid >= tc.tc_read_queues) {
        snprintf(remark, sizeof(remark), "queueId %d is illegal for topic %s with %d read queues",
                 qid, topic, tc.tc_read_queues);
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR, remark);
        return true;
    }
    if (!apg_broker_group_consumable_or_refuse(b, c, req, group))
        return true;
    if (first && (sysflag & PULL_SYS_COMMIT) && commit >= 0)
        apg_offsets_commit(b->br_offsets, group, topic, qid, commit);

    char expr[APG_SQL92_MAX_EXPR + 2], etype[16];
    memcpy(expr, "*", 2); /* no initializer: it would clear all 4 KiB per pull */
    memcpy(etype, "TAG", 4);
    if (sysflag & PULL_SYS_SUBSCRIPTION) {
        const char *s = apg_rcmd_ext_get(req, "subscription");
        const char *t = apg_rcmd_ext_get(req, "expressionType");
        snprintf(expr, sizeof(expr), "%s", s ? s : "*");
        snprintf(etype, sizeof(etype), "%s", t && t[0] ? t : "TAG");
    } else {
        apg_clients_subscription(b->br_clients, group, topic, expr, sizeof(expr), etype,
                                 sizeof(etype));
    }
    /* A SQL92 subscription (broker_filter.c) reads every record's
     * properties after the store; the tag filter below then takes all. */
    const struct apg_sql92 *sql = NULL;
    if (!apg_sql92_is_tag_type(etype)) {
        int32_t code;
        sql = apg_broker_filter_sql(b, etype, expr, &code, remark, sizeof(remark));
        if (!sql) {
            apg_broker_refuse(b, c, req, code, remark);
            return true;
        }
        snprintf(expr, sizeof(expr), "*");
    }
    struct apg_tagexpr f;
    if (apg_tagexpr_parse(expr, strlen(expr), &f, err, sizeof(err))) {
        apg_broker_refuse(b, c, req, APG_RESP_SUBSCRIPTION_PARSE_FAILED, err);
        return true;
    }
    if (max_msgs > b->br_max_pull_msgs)
        max_msgs = b->br_max_pull_msgs;

    /* The loop's read buffer, kept between requests. */
    struct apg_buf *out = &b->br_loops[apg_conn_loop_index(c)].bl_pull_buf;
    apg_buf_reset(out);
    struct apg_get_result r;
    apg_err_t e = apg_store_get(b->br_store, topic, strlen(topic), qid, offset, max_msgs,
                                b->br_max_pull_bytes, f.te_all ? NULL : filter_code, &f, out, &r);
    if (e) {
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR, "the store failed to read the queue");
        return true;
    }
    const char *sname = apg_get_status_name(r.gr_status);
    switch (r.gr_status) {
    case APG_GET_FOUND: {
        int kept = sql        ? apg_broker_filter_sql_keep(sql, out)
                   : f.te_all ? r.gr_count
                              : exact_filter(&f, out);
        if (kept > 0) {
            atomic_fetch_add_explicit(&b->br_get_total, kept, memory_order_relaxed);
            apg_broker_consume_note(b, group, topic, kept, out->b_len);
        }
        if (kept > 0)
            reply_pull(c, req, APG_RESP_SUCCESS, sname, r.gr_next_begin_offset, r.gr_min_offset,
                       r.gr_max_offset, out->b_data, (uint32_t)out->b_len);
        else
            reply_pull(c, req, APG_RESP_PULL_RETRY_IMMEDIATELY, "NO_MATCHED_MESSAGE",
                       r.gr_next_begin_offset, r.gr_min_offset, r.gr_max_offset, NULL, 0);
        return true;
    }
    case APG_GET_NO_MATCHED_MESSAGE:
    case APG_GET_MESSAGE_WAS_REMOVING:
        reply_pull(c, req, APG_RESP_PULL_RETRY_IMMEDIATELY, sname, r.gr_next_begin_offset,
                   r.gr_min_offset, r.gr_max_offset, NULL, 0);
        return true;
    case APG_GET_OFFSET_TOO_SMALL:
    case APG_GET_OFFSET_OVERFLOW_BADLY:
        reply_pull(c, req, APG_RESP_PULL_OFFSET_MOVED, sname, r.gr_next_begin_offset,
                   r.gr_min_offset, r.gr_max_offset, NULL, 0);
        return true;
    case APG_GET_NO_MESSAGE_IN_QUEUE:
    case APG_GET_NO_MATCHED_LOGIC_QUEUE:
        if (offset != 0) {
            reply_pull(c, req, APG_RESP_PULL_OFFSET_MOVED, sname, r.gr_next_begin_offset,
                       r.gr_min_offset, r.gr_max_offset, NULL, 0);
            return true;
        }
        break;
    default:
        break; /* OVERFLOW_ONE, FOUND_NULL: nothing new yet */
    }
    if (may_park && (sysflag & PULL_SYS_SUSPEND))
        return false;
    reply_pull(c, req, APG_RESP_PULL_NOT_FOUND, sname, r.gr_next_begin_offset, r.gr_min_offset,
               r.gr_max_offset, NULL, 0);
    return true;
}

void apg_broker_park(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req,
                     int64_t suspend, apg_broker_park_fn run)
{
    struct apg_bloop *bl = &b->br_loops[apg_conn_loop_index(c)];
    struct apg_parked *pk = apg_calloc(1, sizeof(*pk));
    struct apg_rcmd_copy *cp = pk ? apg_rcmd_copy_new(req) : NULL;
    if (!cp) {
        apg_free(pk);
        run(b, c, req, false);
        return;
    }
    if (suspend <= 0 || suspend > MAX_SUSPEND_MS)
        suspend = suspend <= 0 ? 1000 : MAX_SUSPEND_MS;
    pk->pk_req = cp;
    pk->pk_run = run;
    apg_conn_ref(c);
    pk->pk_conn = c;
    pk->pk_deadline = apg_wall_ms() + suspend;
    pk->pk_next = bl->bl_parked;
    bl->bl_parked = pk;
    atomic_fetch_add(&bl->bl_nparked, 1);
}

/* A parked pull run again: answered (true) or parked on (false). */
static bool pull_again(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req,
                       bool may_park)
{
    int64_t s;
    return pull_once(b, c, req, may_park, false, &s);
}

void apg_broker_proc_pull(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req)
{
    int64_t suspend = 0;
    if (!pull_once(b, c, req, true, true, &suspend))
        apg_broker_park(b, c, req, b->br_long_polling ? suspend : b->br_short_poll_ms, pull_again);
}

static void parked_free(struct apg_bloop *bl, struct apg_parked *pk)
{
    apg_rcmd_copy_free(pk->pk_req);
    apg_conn_unref(pk->pk_conn);
    apg_free(pk);
    atomic_fetch_sub(&bl->bl_nparked, 1);
}

/* Re-runs parked pulls: all of them (wake) or only expired ones. */
static void recheck(struct apg_bloop *bl, bool expired_only)
{
    int64_t now = apg_wall_ms();
    struct apg_parked **pp = &bl->bl_parked;
    while (*pp) {
        struct apg_parked *pk = *pp;
        bool expired = now >= pk->pk_deadline;
        bool done;
        if (apg_conn_is_closed(pk->pk_conn)) {
            done = true;
        } else if (expired) {
            pk->pk_run(bl->bl_broker, pk->pk_conn, &pk->pk_req->rc_cmd, false);
            done = true;
        } else if (!expired_only) {
            done = pk->pk_run(bl->bl_broker, pk->pk_conn, &pk->pk_req->rc_cmd, true);
        } else {
            done = false;
        }
        if (done) {
            *pp = pk->pk_next;
            parked_free(bl, pk);
        } else {
            pp = &pk->pk_next;
        }
    }
}

static void on_timer(uv_timer_t *t)
{
    recheck(t->data, true);
}

static void on_wake(void *arg)
{
    struct apg_bloop *bl = arg;
    atomic_store(&bl->bl_wake_posted, 0);
    recheck(bl, false);
}

void apg_broker_pull_arrive(void *ud, const char *topic, size_t topic_len, int32_t queue_id,
                            int64_t new_max)
{
    (void)topic;
    (void)topic_len;
    (void)queue_id;
    (void)new_max;
    struct apg_broker *b = ud;
    if (!b->br_loops || !b->br_srv)
        return;
    for (int i = 0; i < b->br_nloops; i++) {
        struct apg_bloop *bl = &b->br_loops[i];
        if (atomic_load(&bl->bl_nparked) == 0)
            continue;
        if (atomic_exchange(&bl->bl_wake_posted, 1) == 0 &&
            apg_net_server_post(b->br_srv, i, on_wake, bl) != APG_OK)
            atomic_store(&bl->bl_wake_posted, 0);
    }
}

void apg_broker_pull_loop_start(struct apg_bloop *bl, uv_loop_t *loop)
{
    uv_timer_init(loop, &bl->bl_timer);
    bl->bl_timer.data = bl;
    uv_timer_start(&bl->bl_timer, on_timer, 100, 100);
    bl->bl_timer_on = true;
}

void apg_broker_pull_loop_stop(struct apg_bloop *bl)
{
    while (bl->bl_parked) {
        struct apg_parked *pk = bl->bl_parked;
        bl->bl_parked = pk->pk_next;
        parked_free(bl, pk);
    }
    if (bl->bl_timer_on) {
        uv_timer_stop(&bl->bl_timer);
        uv_close((uv_handle_t *)&bl->bl_timer, NULL);
        bl->bl_timer_on = false;
    }
    apg_buf_free(&bl->bl_pull_buf);
}

void apg_broker_pull_conn_closed(struct apg_bloop *bl, struct apg_conn *c)
{
    struct apg_parked **pp = &bl->bl_parked;
    while (*pp) {
        struct apg_parked *pk = *pp;
        if (pk->pk_conn == c) {
            *pp = pk->pk_next;
            parked_free(bl, pk);
        } else {
            pp = &pk->pk_next;
        }
    }
}

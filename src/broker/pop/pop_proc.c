/* The remoting face of pop consumption: POP_MESSAGE (200050), ACK_MESSAGE
 * (200051), CHANGE_MESSAGE_INVISIBLETIME (200053) and NOTIFICATION
 * (200054), with RocketMQ 5's header fields (docs/wire.md §16).
 *
 * A pop that finds nothing and has a pollTime is parked on its loop like a
 * long-polling pull (apg_broker_park) and run again when a message arrives
 * or a delivery is due again; when its time runs out it is answered
 * POLLING_TIMEOUT. NOTIFICATION parks the same way and answers hasMsg.
 *
 * The answer to a pop carries the records as a pull does, each with
 * reconsumeTimes = deliveries - 1, and the header fields a RocketMQ client
 * builds every message's receipt handle (its POP_CK property) from:
 * popTime, invisibleTime, reviveQid, restNum, startOffsetInfo and
 * msgOffsetInfo. Runs on the connection's loop thread; pop.c locks. */
#include <stdio.h>
#include <string.h>

#include "broker/broker_admin_stats.h"
#include "broker/broker_rt.h"
#include "broker/pop/pop.h"
#include "protocol/filter/sql92.h"
#include "protocol/tagexpr.h"

#define DEFAULT_INVISIBLE_MS 60000
#define MIN_INVISIBLE_MS 1000
#define MAX_INVISIBLE_MS (12 * 3600 * 1000LL)

/* The topic mark RocketMQ puts in front of a queue id in the offset infos
 * and the handle: '1' / '2' for a pop retry topic (V1 / V2 names), else
 * '0'. */
static char topic_mark(const char *topic)
{
    if (strncmp(topic, APG_RETRY_PREFIX, strlen(APG_RETRY_PREFIX)) != 0)
        return '0';
    return strchr(topic, '+') ? '2' : '1';
}

static bool refuse_consume(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req,
                           const char *group, const char *topic, struct apg_topic_cfg *tc)
{
    return !apg_broker_topic_readable_or_refuse(b, c, req, topic, tc) ||
           !apg_broker_group_consumable_or_refuse(b, c, req, group);
}

static void reply_pop(struct apg_conn *c, const struct apg_rcmd *req, int32_t code,
                      const char *remark, const struct apg_pop_result *res, const char *topic,
                      const struct apg_buf *recs)
{
    if (apg_rcmd_is_oneway(req))
        return;
    struct apg_rcmd resp;
    apg_rcmd_init_response(&resp, req, code, remark);
    char pt[24], it[24], rn[24];
    apg_rcmd_ext_add(&resp, "popTime", apg_fmt_i64(pt, res->pr_stamp));
    apg_rcmd_ext_add(&resp, "invisibleTime", apg_fmt_i64(it, res->pr_invisible));
    apg_rcmd_ext_add(&resp, "reviveQid", "0");
    apg_rcmd_ext_add(&resp, "restNum", apg_fmt_i64(rn, res->pr_rest));
    struct apg_buf so = APG_BUF_INIT, mo = APG_BUF_INIT;
    char mark = topic_mark(topic);
    for (int i = 0; i < res->pr_n; i++) {
        int32_t q = res->pr_msgs[i].pm_queue;
        if (i == 0 || res->pr_msgs[i - 1].pm_queue != q) {
            if (so.b_len) {
                apg_buf_append(&so, ";", 1);
                apg_buf_append(&mo, ";", 1);
            }
            apg_buf_printf(&so, "%c %d %lld", mark, q,
                           (long long)(q < 256 ? res->pr_start[q] : res->pr_msgs[i].pm_offset));
            apg_buf_printf(&mo, "%c %d %lld", mark, q, (long long)res->pr_msgs[i].pm_offset);
        } else {
            apg_buf_printf(&mo, ",%lld", (long long)res->pr_msgs[i].pm_offset);
        }
    }
    if (so.b_len && !apg_buf_append(&so, "", 1) && !apg_buf_append(&mo, "", 1)) {
        apg_rcmd_ext_add(&resp, "startOffsetInfo", (const char *)so.b_data);
        apg_rcmd_ext_add(&resp, "msgOffsetInfo", (const char *)mo.b_data);
    }
    apg_conn_send(c, &resp, recs ? recs->b_data : NULL, recs ? (uint32_t)recs->b_len : 0);
    apg_buf_free(&so);
    apg_buf_free(&mo);
}

/* Runs one pop: true when answered, false when it should park. */
static bool pop_once(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req,
                     bool may_park)
{
    char err[256];
    const char *group = apg_rcmd_ext_get(req, "consumerGroup");
    const char *topic = apg_rcmd_ext_get(req, "topic");
    int32_t qid, max;
    int64_t invisible, poll;
    if (!group || !topic || apg_rcmd_ext_i32(req, "queueId", &qid) ||
        apg_rcmd_ext_i32(req, "maxMsgNums", &max) ||
        apg_rcmd_ext_i64(req, "invisibleTime", &invisible)) {
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR,
                          "POP_MESSAGE needs consumerGroup, topic, queueId, maxMsgNums and "
                          "invisibleTime");
        return true;
    }
    if (apg_rcmd_ext_i64(req, "pollTime", &poll))
        poll = 0;
    int32_t init_mode = 0;
    apg_rcmd_ext_i32(req, "initMode", &init_mode);
    const char *order = apg_rcmd_ext_get(req, "order");
    const char *etype = apg_rcmd_ext_get(req, "expType");
    const char *expr = apg_rcmd_ext_get(req, "exp");
    struct apg_topic_cfg tc;
    if (refuse_consume(b, c, req, group, topic, &tc))
        return true;
    if (qid >= tc.tc_read_queues) {
        snprintf(err, sizeof(err), "queueId %d is illegal for topic %s with %d read queues", qid,
                 topic, tc.tc_read_queues);
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR, err);
        return true;
    }
    const struct apg_sql92 *sql = NULL;
    if (etype && etype[0] && !apg_sql92_is_tag_type(etype)) {
        int32_t code;
        char remark[512];
        sql = apg_broker_filter_sql(b, etype, expr ? expr : "", &code, remark, sizeof(remark));
        if (!sql) {
            apg_broker_refuse(b, c, req, code, remark);
            return true;
        }
        expr = NULL; /* the tag filter takes everything */
    }
    struct apg_tagexpr f;
    if (apg_tagexpr_parse(expr ? expr : "*", expr ? strlen(expr) : 1, &f, err, sizeof(err))) {
        apg_broker_refuse(b, c, req, APG_RESP_SUBSCRIPTION_PARSE_FAILED, err);
        return true;
    }
    if (invisible < MIN_INVISIBLE_MS)
        invisible = invisible <= 0 ? DEFAULT_INVISIBLE_MS : MIN_INVISIBLE_MS;
    if (invisible > MAX_INVISIBLE_MS)
        invisible = MAX_INVISIBLE_MS;
    struct apg_pop_req rq = {
        .pr_group = group,
        .pr_topic = topic,
        .pr_queue = qid < 0 ? -1 : qid,
        .pr_max = max,
        .pr_invisible = invisible,
        .pr_fifo = order && strcmp(order, "true") == 0,
        .pr_init_min = init_mode == 0,
        .pr_tags = &f,
        .pr_sql = sql,
    };
    struct apg_buf *recs = &b->br_loops[apg_conn_loop_index(c)].bl_pull_buf;
    apg_buf_reset(recs);
    struct apg_pop_result res;
    apg_err_t e = apg_pop_take(b->br_pop, &rq, recs, &res, err, sizeof(err));
    if (e) {
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR, err);
        return true;
    }
    if (res.pr_n > 0) {
        atomic_fetch_add_explicit(&b->br_get_total, res.pr_n, memory_order_relaxed);
        apg_broker_consume_note(b, group, topic, res.pr_n, recs->b_len);
        reply_pop(c, req, APG_RESP_SUCCESS, "FOUND", &res, topic, recs);
        return true;
    }
    if (may_park && poll > 0)
        return false;
    reply_pop(c, req, APG_RESP_POLLING_TIMEOUT, "no new message", &res, topic, NULL);
    return true;
}

static bool notify_once(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req,
                        bool may_park)
{
    const char *group = apg_rcmd_ext_get(req, "consumerGroup");
    const char *topic = apg_rcmd_ext_get(req, "topic");
    int32_t qid;
    if (!group || !topic || apg_rcmd_ext_i32(req, "queueId", &qid)) {
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR,
                          "NOTIFICATION needs consumerGroup, topic and queueId");
        return true;
    }
    struct apg_topic_cfg tc;
    if (refuse_consume(b, c, req, group, topic, &tc))
        return true;
    bool has = apg_pop_available(b->br_pop, group, topic, qid < 0 ? -1 : qid);
    if (!has && may_park)
        return false;
    if (apg_rcmd_is_oneway(req))
        return true;
    struct apg_rcmd resp;
    apg_rcmd_init_response(&resp, req, APG_RESP_SUCCESS, NULL);
    apg_rcmd_ext_add(&resp, "hasMsg", has ? "true" : "false");
    apg_rcmd_ext_add(&resp, "pollingFull", "false");
    apg_conn_send(c, &resp, NULL, 0);
    return true;
}

/* ACK_MESSAGE and CHANGE_MESSAGE_INVISIBLETIME. */
static void ack_or_change(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req,
                          bool change)
{
    const char *group = apg_rcmd_ext_get(req, "consumerGroup");
    const char *topic = apg_rcmd_ext_get(req, "topic");
    const char *extra = apg_rcmd_ext_get(req, "extraInfo");
    int32_t qid;
    int64_t offset, invisible = 0;
    struct apg_pop_handle h;
    if (!group || !topic || !extra || apg_rcmd_ext_i32(req, "queueId", &qid) ||
        apg_rcmd_ext_i64(req, "offset", &offset) ||
        (change && apg_rcmd_ext_i64(req, "invisibleTime", &invisible))) {
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR,
                          change ? "CHANGE_MESSAGE_INVISIBLETIME needs consumerGroup, topic, "
                                   "queueId, extraInfo, offset and invisibleTime"
                                 : "ACK_MESSAGE needs consumerGroup, topic, queueId, extraInfo "
                                   "and offset");
        return;
    }
    if (apg_pop_handle_decode(extra, strlen(extra), &h)) {
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR,
                          "extraInfo is not a pop receipt handle (\"startOffset popTime "
                          "invisibleTime reviveQid topicType brokerName queueId offset\")");
        return;
    }
    if (change) {
        if (invisible < MIN_INVISIBLE_MS)
            invisible = MIN_INVISIBLE_MS;
        if (invisible > MAX_INVISIBLE_MS)
            invisible = MAX_INVISIBLE_MS;
        int64_t ns = 0;
        apg_err_t e =
            apg_pop_change(b->br_pop, group, topic, qid, offset, h.ph_stamp, invisible, &ns);
        if (e) {
            apg_broker_reply(c, req,
                             e == APG_ENOTFOUND ? APG_RESP_NO_MESSAGE : APG_RESP_SYSTEM_ERROR,
                             e == APG_ENOTFOUND ? "the message is not in flight under this handle "
                                                  "(acknowledged, its invisible time ran out, or "
                                                  "handed out again)"
                                                : "the pop journal cannot be written");
            return;
        }
        if (apg_rcmd_is_oneway(req))
            return;
        struct apg_rcmd resp;
        char pt[24], it[24];
        apg_rcmd_init_response(&resp, req, APG_RESP_SUCCESS, NULL);
        apg_rcmd_ext_add(&resp, "popTime", apg_fmt_i64(pt, ns));
        apg_rcmd_ext_add(&resp, "invisibleTime", apg_fmt_i64(it, invisible));
        apg_rcmd_ext_add(&resp, "reviveQid", "0");
        apg_conn_send(c, &resp, NULL, 0);
        return;
    }
    apg_err_t e = apg_pop_ack(b->br_pop, group, topic, qid, offset, h.ph_stamp);
    /* An ack of a delivery no longer in flight changes nothing and is
     * answered SUCCESS, as RocketMQ does (acks are retried by clients). */
    if (e && e != APG_ENOTFOUND)
        apg_broker_reply(c, req, APG_RESP_SYSTEM_ERROR, "the pop journal cannot be written");
    else
        apg_broker_reply(c, req, APG_RESP_SUCCESS, NULL);
}

void apg_broker_proc_pop(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req)
{
    int64_t poll = 0;
    switch (req->code) {
    case APG_REQ_POP_MESSAGE:
        if (!pop_once(b, c, req, true)) {
            apg_rcmd_ext_i64(req, "pollTime", &poll);
            apg_broker_park(b, c, req, poll, pop_once);
        }
        break;
    case APG_REQ_NOTIFICATION:
        if (!notify_once(b, c, req, true)) {
            if (apg_rcmd_ext_i64(req, "pollTime", &poll) || poll <= 0) {
                notify_once(b, c, req, false);
                break;
            }
            apg_broker_park(b, c, req, poll, notify_once);
        }
        break;
    case APG_REQ_ACK_MESSAGE:
        ack_or_change(b, c, req, false);
        break;
    default:
        ack_or_change(b, c, req, true);
        break;
    }
}

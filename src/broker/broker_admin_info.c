/* Broker-wide admin views, docs/wire.md §11.7: QUERY_TOPIC_CONSUME_BY_WHO
 * (300), GET_SYSTEM_TOPIC_LIST_FROM_BROKER (305) and
 * GET_BROKER_CONSUME_STATS (317).
 *
 * 300 answers GroupList {"groupList":[...]}: the groups whose connected
 * members subscribe the topic plus the groups with committed offsets on it
 * (queryMsgById's consumer track and statsAll read it).
 *
 * 305 answers TopicList {"topicList":[...]}: RocketMQ's fixed set of system
 * topics, the timer topic (rmq_sys_wheel_timer, a built-in topic here as in
 * 5.x) and this broker's cluster and broker names (topics RocketMQ
 * brokers create for routing by name); exportMetadata and the topic lists
 * of the tools leave these out.
 *
 * 317 answers ConsumeStatsList: for every subscription group, one
 * ConsumeStats per topic it has offsets for (the same rows as
 * GET_CONSUME_STATS), as {"brokerAddr":..,"consumeStatsList":[{group:
 * [ConsumeStats,...]},...],"totalDiff":N,"totalInflightDiff":0}; isOrder=true
 * keeps only order topics.
 *
 * Threads: any loop thread; the tables lock themselves, one at a time. */
#include <stdio.h>
#include <string.h>

#include "broker/broker_admin_stats.h"
#include "broker/txn/txn.h"
#include "common/mem.h"

/* Appends a JSON array of the NUL-separated names in n (duplicates once). */
static apg_err_t put_names(struct apg_buf *o, const struct apg_buf *n)
{
    const char *s = (const char *)n->b_data;
    apg_err_t e = apg_buf_append(o, "[", 1);
    bool first = true;
    for (size_t at = 0; !e && at < n->b_len; at += strlen(s + at) + 1) {
        bool dup = false;
        for (size_t p = 0; p < at && !dup; p += strlen(s + p) + 1)
            dup = strcmp(s + p, s + at) == 0;
        if (dup)
            continue;
        if (!first)
            e = apg_buf_append(o, ",", 1);
        first = false;
        if (!e)
            e = apg_json_put_str(o, s + at);
    }
    return e ? e : apg_buf_append(o, "]", 1);
}

static void answer(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req,
                   apg_err_t e, const struct apg_buf *o)
{
    if (e)
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR, "out of memory");
    else if (!apg_rcmd_is_oneway(req))
        apg_conn_reply(c, req, APG_RESP_SUCCESS, NULL, o->b_data, (uint32_t)o->b_len);
}

/* Answers {"<field>":[names]} (GroupList, TopicList). */
static void reply_list(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req,
                       const char *field, apg_err_t e, const struct apg_buf *names)
{
    struct apg_buf o = APG_BUF_INIT;
    if (!e)
        e = apg_buf_printf(&o, "{\"%s\":", field);
    if (!e)
        e = put_names(&o, names);
    if (!e)
        e = apg_buf_append(&o, "}", 1);
    answer(b, c, req, e, &o);
    apg_buf_free(&o);
}

static void consume_by_who(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req)
{
    const char *topic = apg_rcmd_ext_get(req, "topic");
    if (!topic || !topic[0]) {
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR,
                          "QUERY_TOPIC_CONSUME_BY_WHO needs topic");
        return;
    }
    struct apg_buf n = APG_BUF_INIT;
    apg_err_t e = apg_broker_topic_consumers(b, topic, &n);
    reply_list(b, c, req, "groupList", e, &n);
    apg_buf_free(&n);
}

apg_err_t apg_broker_topic_consumers(struct apg_broker *b, const char *topic, struct apg_buf *out)
{
    apg_err_t e = apg_clients_topic_groups(b->br_clients, topic, out);
    return e ? e : apg_offsets_topic_groups(b->br_offsets, topic, out);
}

static void system_topics(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req)
{
    static const char *const fixed[] = {
        APG_DEFAULT_TOPIC,
        "SCHEDULE_TOPIC_XXXX",
        "BenchmarkTest",
        APG_TXN_HALF_TOPIC,
        "RMQ_SYS_TRACE_TOPIC",
        APG_TXN_OP_TOPIC,
        "TRANS_CHECK_MAX_TIME_TOPIC",
        "SELF_TEST_TOPIC",
        "OFFSET_MOVED_EVENT",
        APG_TIMER_TOPIC,
    };
    struct apg_buf n = APG_BUF_INIT;
    apg_err_t e = APG_OK;
    for (size_t i = 0; !e && i < sizeof(fixed) / sizeof(fixed[0]); i++)
        e = apg_buf_append(&n, fixed[i], strlen(fixed[i]) + 1);
    if (!e)
        e = apg_buf_append(&n, b->br_cluster, strlen(b->br_cluster) + 1);
    if (!e)
        e = apg_buf_append(&n, b->br_name, strlen(b->br_name) + 1);
    reply_list(b, c, req, "topicList", e, &n);
    apg_buf_free(&n);
}

/* Appends {"group":[ConsumeStats per topic]} for one group; adds its lag. */
static apg_err_t group_stats(struct apg_broker *b, const char *group, bool order_only,
                             struct apg_buf *o, int64_t *total)
{
    struct apg_buf topics = APG_BUF_INIT;
    apg_err_t e = apg_offsets_group_topics(b->br_offsets, group, &topics);
    if (!e)
        e = apg_buf_append(o, "{", 1);
    if (!e)
        e = apg_json_put_str(o, group);
    if (!e)
        e = apg_buf_append_str(o, ":[");
    const char *t = (const char *)topics.b_data;
    bool first = true;
    for (size_t at = 0; !e && at < topics.b_len; at += strlen(t + at) + 1) {
        struct apg_topic_cfg tc;
        if (!apg_topics_get(b->br_topics, t + at, &tc) || (order_only && !tc.tc_order))
            continue;
        if (!first)
            e = apg_buf_append(o, ",", 1);
        first = false;
        int64_t diff = 0;
        if (!e)
            e = apg_broker_consume_stats_body(b, group, t + at, o, &diff);
        *total += diff;
    }
    if (!e)
        e = apg_buf_append_str(o, "]}");
    apg_buf_free(&topics);
    return e;
}

static void broker_consume_stats(struct apg_broker *b, struct apg_conn *c,
                                 const struct apg_rcmd *req)
{
    bool order_only = apg_rcmd_ext_bool(req, "isOrder", false);
    struct apg_buf groups = APG_BUF_INIT, o = APG_BUF_INIT;
    int64_t total = 0;
    apg_err_t e = apg_groups_names(b->br_groups, &groups);
    if (!e)
        e = apg_buf_append_str(&o, "{\"brokerAddr\":");
    if (!e)
        e = apg_json_put_str(&o, b->br_addr);
    if (!e)
        e = apg_buf_append_str(&o, ",\"consumeStatsList\":[");
    const char *g = (const char *)groups.b_data;
    for (size_t at = 0; !e && at < groups.b_len; at += strlen(g + at) + 1) {
        if (at)
            e = apg_buf_append(&o, ",", 1);
        if (!e)
            e = group_stats(b, g + at, order_only, &o, &total);
    }
    if (!e)
        e = apg_buf_printf(&o, "],\"totalDiff\":%lld,\"totalInflightDiff\":0}", (long long)total);
    answer(b, c, req, e, &o);
    apg_buf_free(&groups);
    apg_buf_free(&o);
}

void apg_broker_proc_admin_info(struct apg_broker *b, struct apg_conn *c,
                                const struct apg_rcmd *req)
{
    switch (req->code) {
    case APG_REQ_QUERY_TOPIC_CONSUME_BY_WHO:
        consume_by_who(b, c, req);
        break;
    case APG_REQ_GET_SYSTEM_TOPIC_LIST_FROM_BROKER:
        system_topics(b, c, req);
        break;
    default:
        broker_consume_stats(b, c, req);
        break;
    }
}

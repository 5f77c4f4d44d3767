/* QUERY_CONSUME_QUEUE (321, `mqadmin queryCq`), docs/wire.md §11.9.
 *
 * Header: topic, queueId, index (first logical offset), count, and an
 * optional consumerGroup. The answer is a QueryConsumeQueueResponseBody:
 * the queue's bounds (maxQueueIndex, minQueueIndex), up to `count` entries
 * from `index` (physicOffset, physicSize, tagsCode of each; Apogee has no
 * consume-queue extension, so extendDataJson and bitMap are absent and eval
 * is false), and, when a group is named, the subscription its members
 * heartbeated (subscriptionData) with filterData "null", or filterData
 * "<group>@<topic> is not online!" when no member subscribes the topic.
 *
 * A queue the broker does not have (unknown topic, queueId outside the
 * topic's queues) is SYSTEM_ERROR "<queueId>@<topic> is not exist!", as
 * RocketMQ answers. An index outside the queue answers SUCCESS with the
 * bounds, no entries and a remark saying so (RocketMQ sends no body then,
 * which its tool cannot decode).
 *
 * Threads: any loop thread; the store's readers are thread-safe. */
#include <stdio.h>
#include <string.h>

#include "broker/broker_admin_stats.h"
#include "common/mem.h"

#define CQ_MAX_ENTRIES 1024

/* The heartbeated SubscriptionData of one topic, copied under the client
 * table's lock. */
struct sub_find {
    const char *sf_topic;
    struct apg_buf sf_json;
    bool sf_found;
};

static apg_err_t find_sub(void *ud, const char *topic, const char *expr, const char *sub_json)
{
    struct sub_find *sf = ud;
    if (sf->sf_found || strcmp(topic, sf->sf_topic) != 0)
        return APG_OK;
    sf->sf_found = true;
    if (sub_json)
        return apg_buf_append_str(&sf->sf_json, sub_json);
    apg_err_t e = apg_buf_append_str(&sf->sf_json, "{\"expressionType\":\"TAG\",\"subString\":");
    if (!e)
        e = apg_json_put_str(&sf->sf_json, expr);
    if (!e)
        e = apg_buf_append_str(&sf->sf_json, ",\"topic\":");
    if (!e)
        e = apg_json_put_str(&sf->sf_json, topic);
    return e ? e : apg_buf_append(&sf->sf_json, "}", 1);
}

/* Appends the subscriptionData / filterData members (each followed by a
 * comma) for group, nothing when group is NULL. */
static apg_err_t put_subscription(struct apg_broker *b, const char *group, const char *topic,
                                  struct apg_buf *o)
{
    if (!group || !group[0])
        return APG_OK;
    struct sub_find sf = {topic, APG_BUF_INIT, false};
    static const struct apg_clients_visitor v = {.cv_sub = find_sub};
    apg_err_t e = apg_clients_visit(b->br_clients, true, group, &v, &sf);
    if (e == APG_ENOTFOUND)
        e = APG_OK;
    if (!e && sf.sf_found) {
        e = apg_buf_append_str(o, "\"filterData\":\"null\",\"subscriptionData\":");
        if (!e)
            e = apg_buf_append(o, sf.sf_json.b_data, sf.sf_json.b_len);
        if (!e)
            e = apg_buf_append(o, ",", 1);
    } else if (!e) {
        char text[2 * APG_NAME_CAP + 32];
        snprintf(text, sizeof(text), "%s@%s is not online!", group, topic);
        e = apg_buf_append_str(o, "\"filterData\":");
        if (!e)
            e = apg_json_put_str(o, text);
        if (!e)
            e = apg_buf_append(o, ",", 1);
    }
    apg_buf_free(&sf.sf_json);
    return e;
}

static void query_cq(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req)
{
    const char *topic = apg_rcmd_ext_get(req, "topic");
    int32_t qid = -1, count = 0;
    int64_t index = 0;
    char remark[400];
    if (!topic || !topic[0] || apg_rcmd_ext_i32(req, "queueId", &qid) ||
        apg_rcmd_ext_i64(req, "index", &index) || apg_rcmd_ext_i32(req, "count", &count)) {
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR,
                          "QUERY_CONSUME_QUEUE needs topic, queueId, index and count");
        return;
    }
    struct apg_topic_cfg tc;
    if (!apg_topics_get(b->br_topics, topic, &tc) || qid < 0 ||
        (qid >= tc.tc_read_queues && qid >= tc.tc_write_queues)) {
        snprintf(remark, sizeof(remark), "%d@%s is not exist!", qid, topic);
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR, remark);
        return;
    }
    if (count < 0)
        count = 0;
    if (count > CQ_MAX_ENTRIES)
        count = CQ_MAX_ENTRIES;
    size_t tl = strlen(topic);
    int64_t max = apg_store_max_offset(b->br_store, topic, tl, qid);
    int64_t min = apg_store_min_offset(b->br_store, topic, tl, qid);
    struct apg_cq_ref *refs = count ? apg_calloc((size_t)count, sizeof(*refs)) : NULL;
    int64_t next = 0;
    int n = refs && index >= min
                ? apg_store_cq_read(b->br_store, topic, tl, qid, index, count, refs, &next)
                : 0;
    struct apg_buf o = APG_BUF_INIT;
    apg_err_t e = count && !refs ? APG_ENOMEM : apg_buf_append(&o, "{", 1);
    if (!e)
        e = put_subscription(b, apg_rcmd_ext_get(req, "consumerGroup"), topic, &o);
    if (!e)
        e = apg_buf_printf(&o, "\"maxQueueIndex\":%lld,\"minQueueIndex\":%lld,\"queueData\":[",
                           (long long)max, (long long)min);
    for (int i = 0; !e && i < n; i++)
        e = apg_buf_printf(&o,
                           "%s{\"eval\":false,\"physicOffset\":%lld,\"physicSize\":%d,"
                           "\"tagsCode\":%lld}",
                           i ? "," : "", (long long)refs[i].cr_phys_offset, refs[i].cr_size,
                           (long long)refs[i].cr_tags_code);
    if (!e)
        e = apg_buf_append_str(&o, "]}");
    apg_free(refs);
    if (e) {
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR, "out of memory");
    } else if (!apg_rcmd_is_oneway(req)) {
        if (n == 0)
            snprintf(remark, sizeof(remark),
                     "Index %lld of %d@%s is not exist! (queue holds %lld..%lld)", (long long)index,
                     qid, topic, (long long)min, (long long)max);
        apg_conn_reply(c, req, APG_RESP_SUCCESS, n ? NULL : remark, o.b_data, (uint32_t)o.b_len);
    }
    apg_buf_free(&o);
}

void apg_broker_proc_admin_cq(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req)
{
    query_cq(b, c, req);
}

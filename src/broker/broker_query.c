/* Offset and lookup processors: QUERY_CONSUMER_OFFSET (14),
 * UPDATE_CONSUMER_OFFSET (15), GET_MAX_OFFSET (30), GET_MIN_OFFSET (31),
 * SEARCH_OFFSET_BY_TIMESTAMP (29), GET_EARLIEST_MSG_STORETIME (32),
 * VIEW_MESSAGE_BY_ID (33) and GET_ALL_CONSUMER_OFFSET (43). All run in the
 * connection's loop thread against the thread-safe offset table and store. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "broker/broker_rt.h"
#include "common/mem.h"

static void reply_i64(struct apg_conn *c, const struct apg_rcmd *req, const char *key, int64_t v)
{
    if (apg_rcmd_is_oneway(req))
        return;
    struct apg_rcmd resp;
    apg_rcmd_init_response(&resp, req, APG_RESP_SUCCESS, NULL);
    char s[24];
    snprintf(s, sizeof(s), "%lld", (long long)v);
    apg_rcmd_ext_add(&resp, key, s);
    apg_conn_send(c, &resp, NULL, 0);
}

static bool need_tq(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req,
                    const char **topic, int32_t *qid)
{
    *topic = apg_rcmd_ext_get(req, "topic");
    if (!*topic || apg_rcmd_ext_i32(req, "queueId", qid)) {
        char remark[128];
        snprintf(remark, sizeof(remark), "request %d needs the header fields topic and queueId",
                 req->code);
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR, remark);
        return false;
    }
    return true;
}

void apg_broker_proc_query_offset(struct apg_broker *b, struct apg_conn *c,
                                  const struct apg_rcmd *req)
{
    const char *topic, *group = apg_rcmd_ext_get(req, "consumerGroup");
    int32_t qid;
    if (!need_tq(b, c, req, &topic, &qid))
        return;
    if (!group) {
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR,
                          "QUERY_CONSUMER_OFFSET needs consumerGroup");
        return;
    }
    int64_t off = apg_offsets_query(b->br_offsets, group, topic, qid);
    if (off >= 0) {
        reply_i64(c, req, "offset", off);
        return;
    }
    /* Like RocketMQ: a group that never committed on a queue whose first
     * message is still there starts from 0, unless told otherwise. */
    bool zero_ok = apg_rcmd_ext_bool(req, "setZeroIfNotFound", true);
    size_t tl = strlen(topic);
    if (zero_ok && apg_store_min_offset(b->br_store, topic, tl, qid) <= 0 &&
        apg_store_max_offset(b->br_store, topic, tl, qid) > 0) {
        reply_i64(c, req, "offset", 0);
        return;
    }
    apg_broker_reply(c, req, APG_RESP_QUERY_NOT_FOUND,
                     "no committed offset for this group and queue");
}

void apg_broker_proc_update_offset(struct apg_broker *b, struct apg_conn *c,
                                   const struct apg_rcmd *req)
{
    const char *topic, *group = apg_rcmd_ext_get(req, "consumerGroup");
    int32_t qid;
    int64_t off;
    if (!need_tq(b, c, req, &topic, &qid))
        return;
    if (!group || apg_rcmd_ext_i64(req, "commitOffset", &off)) {
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR,
                          "UPDATE_CONSUMER_OFFSET needs consumerGroup and commitOffset");
        return;
    }
    if (!apg_topics_get(b->br_topics, topic, NULL)) {
        char remark[400];
        snprintf(remark, sizeof(remark), "topic %s does not exist on this broker", topic);
        apg_broker_refuse(b, c, req, APG_RESP_TOPIC_NOT_EXIST, remark);
        return;
    }
    apg_offsets_commit(b->br_offsets, group, topic, qid, off);
    apg_broker_reply(c, req, APG_RESP_SUCCESS, NULL);
}

void apg_broker_proc_queue_bounds(struct apg_broker *b, struct apg_conn *c,
                                  const struct apg_rcmd *req)
{
    const char *topic;
    int32_t qid;
    if (!need_tq(b, c, req, &topic, &qid))
        return;
    size_t tl = strlen(topic);
    switch (req->code) {
    case APG_REQ_GET_MAX_OFFSET:
        reply_i64(c, req, "offset", apg_store_max_offset(b->br_store, topic, tl, qid));
        break;
    case APG_REQ_GET_MIN_OFFSET:
        reply_i64(c, req, "offset", apg_store_min_offset(b->br_store, topic, tl, qid));
        break;
    case APG_REQ_SEARCH_OFFSET_BY_TIMESTAMP: {
        int64_t ts;
        if (apg_rcmd_ext_i64(req, "timestamp", &ts)) {
            apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR,
                              "SEARCH_OFFSET_BY_TIMESTAMP needs timestamp (ms since epoch)");
            return;
        }
        /* boundaryType (RocketMQ 5.x): "UPPER" in any case asks for the last
         * record at or before ts; anything else, or none, the lower boundary. */
        const char *bt = apg_rcmd_ext_get(req, "boundaryType");
        bool upper = bt != NULL && strcasecmp(bt, "upper") == 0;
        reply_i64(c, req, "offset",
                  apg_store_offset_by_time(b->br_store, topic, tl, qid, ts, upper));
        break;
    }
    default:
        reply_i64(c, req, "timestamp", apg_store_earliest_msg_time(b->br_store, topic, tl, qid));
    }
}

void apg_broker_proc_view_msg(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req)
{
    int64_t off;
    if (apg_rcmd_ext_i64(req, "offset", &off)) {
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR,
                          "VIEW_MESSAGE_BY_ID needs offset (commit log offset)");
        return;
    }
    struct apg_buf out = APG_BUF_INIT;
    apg_store_prefetch_records(b->br_store, &off, 1); /* the record's pages, not 8 MiB around */
    if (apg_store_read_at(b->br_store, off, &out) != APG_OK) {
        char remark[128];
        snprintf(remark, sizeof(remark), "no message at commit log offset %lld", (long long)off);
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR, remark);
    } else if (!apg_rcmd_is_oneway(req)) {
        apg_conn_reply(c, req, APG_RESP_SUCCESS, NULL, out.b_data, (uint32_t)out.b_len);
    }
    apg_buf_free(&out);
}

void apg_broker_proc_all_offsets(struct apg_broker *b, struct apg_conn *c,
                                 const struct apg_rcmd *req)
{
    struct apg_buf out = APG_BUF_INIT;
    if (apg_offsets_encode(b->br_offsets, &out))
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR, "out of memory");
    else if (!apg_rcmd_is_oneway(req))
        apg_conn_reply(c, req, APG_RESP_SUCCESS, NULL, out.b_data, (uint32_t)out.b_len);
    apg_buf_free(&out);
}

/* QUERY_MESSAGE (12): messages of a topic by key, through the store's index
 * (src/store/index.c).
 *
 * Request header: topic, key, maxNum, beginTimestamp, endTimestamp (all
 * required). With the ext field _UNIQUE_KEY_QUERY=true the key is a unique
 * message id (UNIQ_KEY) and maxNum is replaced by defaultQueryMaxNum, as
 * RocketMQ's broker does. The answer: SUCCESS with the stored records back to
 * back as the body, or QUERY_NOT_FOUND (22) when none matches; both carry
 * indexLastUpdateTimestamp and indexLastUpdatePhyoffset. Records whose key
 * only shares a hash with the asked one are not returned (RocketMQ leaves
 * that filtering to the client, which still does it; fewer bytes here).
 *
 * Runs in the connection's loop thread: the lookup reads mapped index pages
 * and copies at most APG_STORE_QUERY_MAX records, like VIEW_MESSAGE_BY_ID. */
#include <stdio.h>
#include <string.h>

#include "broker/broker_rt.h"
#include "common/config.h"

void apg_broker_proc_query_msg(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req)
{
    const char *topic = apg_rcmd_ext_get(req, "topic");
    const char *key = apg_rcmd_ext_get(req, "key");
    int64_t max, begin, end;
    if (!topic || !*topic || !key || apg_rcmd_ext_i64(req, "maxNum", &max) ||
        apg_rcmd_ext_i64(req, "beginTimestamp", &begin) ||
        apg_rcmd_ext_i64(req, "endTimestamp", &end)) {
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR,
                          "QUERY_MESSAGE needs the header fields topic, key, maxNum, "
                          "beginTimestamp and endTimestamp");
        return;
    }
    if (apg_rcmd_ext_bool(req, "_UNIQUE_KEY_QUERY", false))
        max = apg_cfg_int(b->br_cfg, APG_CFG_defaultQueryMaxNum);
    if (max > APG_STORE_QUERY_MAX)
        max = APG_STORE_QUERY_MAX;
    struct apg_buf out = APG_BUF_INIT;
    struct apg_store_query_result r;
    apg_err_t rc = apg_store_query_message(b->br_store, topic, strlen(topic), key, strlen(key),
                                           (int)max, begin, end, &out, &r);
    if (rc) {
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR, "out of memory");
        apg_buf_free(&out);
        return;
    }
    if (!apg_rcmd_is_oneway(req)) {
        struct apg_rcmd resp;
        apg_rcmd_init_response(&resp, req, r.sq_count ? APG_RESP_SUCCESS : APG_RESP_QUERY_NOT_FOUND,
                               r.sq_count ? NULL
                                          : "can not find message, maybe time range not correct");
        char ts[24], ph[24];
        snprintf(ts, sizeof(ts), "%lld", (long long)r.sq_last_update_ts);
        snprintf(ph, sizeof(ph), "%lld", (long long)r.sq_last_update_phys);
        apg_rcmd_ext_add(&resp, "indexLastUpdateTimestamp", ts);
        apg_rcmd_ext_add(&resp, "indexLastUpdatePhyoffset", ph);
        apg_conn_send(c, &resp, out.b_data, (uint32_t)out.b_len);
    }
    apg_buf_free(&out);
}

/* Topic and subscription-group administration: UPDATE_AND_CREATE_TOPIC
 * (17), DELETE_TOPIC_IN_BROKER (215), GET_ALL_TOPIC_CONFIG (21),
 * UPDATE_AND_CREATE_SUBSCRIPTIONGROUP (200), DELETE_SUBSCRIPTIONGROUP (207),
 * GET_ALL_SUBSCRIPTIONGROUP_CONFIG (201). The tables' change hook
 * re-registers with the NameServers and persists the files from the service
 * thread (broker_tables.c); a change is answered only once its file is on
 * disk (apg_broker_reply_when_durable), so an acknowledged change survives
 * a crash, and concurrent changes share one write. */
#include <stdio.h>
#include <string.h>

#include "broker/broker_rt.h"
#include "common/log.h"
#include "common/mem.h"

static void reply_body(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req,
                       apg_err_t e, struct apg_buf *out)
{
    if (e)
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR, "out of memory");
    else if (!apg_rcmd_is_oneway(req))
        apg_conn_reply(c, req, APG_RESP_SUCCESS, NULL, out->b_data, (uint32_t)out->b_len);
}

int32_t apg_broker_topic_update(struct apg_broker *b, const struct apg_topic_cfg *tc, char *remark,
                                size_t n)
{
    if (apg_name_check_topic(tc->tc_name, remark, n))
        return APG_RESP_INVALID_PARAMETER;
    if (strcmp(tc->tc_name, APG_DEFAULT_TOPIC) == 0) {
        snprintf(remark, n,
                 "TBW102 is the auto-create template; configure it with autoCreateTopicEnable "
                 "and defaultTopicQueueNums");
        return APG_RESP_NO_PERMISSION;
    }
    if (tc->tc_read_queues <= 0 || tc->tc_write_queues <= 0 || tc->tc_read_queues > 1024 ||
        tc->tc_write_queues > 1024) {
        snprintf(remark, n, "queue counts must be 1..1024 (read %d, write %d)", tc->tc_read_queues,
                 tc->tc_write_queues);
        return APG_RESP_INVALID_PARAMETER;
    }
    if (apg_topics_put(b->br_topics, tc)) {
        snprintf(remark, n, "out of memory");
        return APG_RESP_SYSTEM_ERROR;
    }
    apg_log_info("broker", "topic %s created/updated: %d/%d queues, perm %d", tc->tc_name,
                 tc->tc_read_queues, tc->tc_write_queues, tc->tc_perm);
    return APG_RESP_SUCCESS;
}

int32_t apg_broker_topic_delete(struct apg_broker *b, const char *topic, char *remark, size_t n)
{
    if (strcmp(topic, APG_DEFAULT_TOPIC) == 0) {
        snprintf(remark, n, "TBW102 cannot be deleted");
        return APG_RESP_NO_PERMISSION;
    }
    bool had = apg_topics_delete(b->br_topics, topic);
    apg_offsets_drop_topic(b->br_offsets, topic);
    apg_store_delete_topic(b->br_store, topic, strlen(topic));
    if (had)
        return APG_RESP_SUCCESS;
    snprintf(remark, n, "topic %s does not exist on this broker", topic);
    return APG_RESP_TOPIC_NOT_EXIST;
}

static void create_topic(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req)
{
    char err[400];
    const char *topic = apg_rcmd_ext_get(req, "topic");
    if (!topic) {
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR, "UPDATE_AND_CREATE_TOPIC needs topic");
        return;
    }
    struct apg_topic_cfg tc = {0};
    if (strlen(topic) >= sizeof(tc.tc_name)) {
        apg_broker_refuse(b, c, req, APG_RESP_INVALID_PARAMETER, "the topic name is too long");
        return;
    }
    snprintf(tc.tc_name, sizeof(tc.tc_name), "%s", topic);
    if (apg_rcmd_ext_i32(req, "readQueueNums", &tc.tc_read_queues))
        tc.tc_read_queues = 16;
    if (apg_rcmd_ext_i32(req, "writeQueueNums", &tc.tc_write_queues))
        tc.tc_write_queues = 16;
    if (apg_rcmd_ext_i32(req, "perm", &tc.tc_perm))
        tc.tc_perm = APG_PERM_READ | APG_PERM_WRITE;
    if (apg_rcmd_ext_i32(req, "topicSysFlag", &tc.tc_sysflag))
        tc.tc_sysflag = 0;
    tc.tc_order = apg_rcmd_ext_bool(req, "order", false);
    const char *ft = apg_rcmd_ext_get(req, "topicFilterType");
    tc.tc_filter = ft && strcmp(ft, "MULTI_TAG") == 0 ? APG_TOPIC_MULTI_TAG : APG_TOPIC_SINGLE_TAG;
    int32_t code = apg_broker_topic_update(b, &tc, err, sizeof(err));
    if (code != APG_RESP_SUCCESS) {
        apg_broker_refuse(b, c, req, code, err);
        return;
    }
    apg_broker_reply_when_durable(b, c, req, apg_topics_changes(b->br_topics), 0);
}

static void delete_topic(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req)
{
    char err[400];
    const char *topic = apg_rcmd_ext_get(req, "topic");
    if (!topic) {
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR, "DELETE_TOPIC_IN_BROKER needs topic");
        return;
    }
    int32_t code = apg_broker_topic_delete(b, topic, err, sizeof(err));
    if (code == APG_RESP_TOPIC_NOT_EXIST)
        code = APG_RESP_SUCCESS; /* deleting an absent topic succeeds */
    if (code != APG_RESP_SUCCESS) {
        apg_broker_refuse(b, c, req, code, err);
        return;
    }
    apg_broker_reply_when_durable(b, c, req, apg_topics_changes(b->br_topics), 0);
}

static void create_group(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req)
{
    char err[400];
    if (!req->body || !req->body_len) {
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR,
                          "UPDATE_AND_CREATE_SUBSCRIPTIONGROUP needs a SubscriptionGroupConfig "
                          "JSON body");
        return;
    }
    json_t *j = apg_json_parse((const char *)req->body, req->body_len, err, sizeof(err));
    struct apg_group_cfg gc;
    if (!j || apg_group_cfg_decode(j, &gc, err, sizeof(err))) {
        json_decref(j);
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR, err);
        return;
    }
    json_decref(j);
    if (apg_name_check_group(gc.gc_name, err, sizeof(err))) {
        apg_broker_refuse(b, c, req, APG_RESP_INVALID_PARAMETER, err);
        return;
    }
    if (apg_groups_put(b->br_groups, &gc) ||
        apg_topics_ensure_retry(b->br_topics, gc.gc_name, gc.gc_retry_queues)) {
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR, "out of memory");
        return;
    }
    apg_broker_reply_when_durable(b, c, req, apg_topics_changes(b->br_topics),
                                  apg_groups_changes(b->br_groups));
}

static void delete_group(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req)
{
    const char *g = apg_rcmd_ext_get(req, "groupName");
    if (!g) {
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR,
                          "DELETE_SUBSCRIPTIONGROUP needs groupName");
        return;
    }
    apg_groups_delete(b->br_groups, g);
    if (apg_rcmd_ext_bool(req, "cleanOffset", false))
        apg_offsets_drop_group(b->br_offsets, g);
    apg_broker_reply_when_durable(b, c, req, 0, apg_groups_changes(b->br_groups));
}

void apg_broker_proc_admin(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req)
{
    struct apg_buf out = APG_BUF_INIT;
    switch (req->code) {
    case APG_REQ_UPDATE_AND_CREATE_TOPIC:
        create_topic(b, c, req);
        break;
    case APG_REQ_DELETE_TOPIC_IN_BROKER:
        delete_topic(b, c, req);
        break;
    case APG_REQ_GET_ALL_TOPIC_CONFIG:
        reply_body(b, c, req, apg_topics_encode(b->br_topics, &out), &out);
        break;
    case APG_REQ_UPDATE_AND_CREATE_SUBSCRIPTIONGROUP:
        create_group(b, c, req);
        break;
    case APG_REQ_DELETE_SUBSCRIPTIONGROUP:
        delete_group(b, c, req);
        break;
    case APG_REQ_GET_ALL_SUBSCRIPTIONGROUP_CONFIG:
        reply_body(b, c, req, apg_groups_encode(b->br_groups, &out), &out);
        break;
    default:
        apg_broker_refuse(b, c, req, APG_RESP_REQUEST_CODE_NOT_SUPPORTED, "not an admin request");
    }
    apg_buf_free(&out);
}

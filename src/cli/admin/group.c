/* `apogee admin` group and connection commands: updateSubGroup,
 * deleteSubGroup, consumerProgress, consumerConnection, producerConnection.
 *
 * Subscription groups are created with UPDATE_AND_CREATE_SUBSCRIPTIONGROUP
 * (200, a SubscriptionGroupConfig JSON body with RocketMQ's defaults for
 * every field not given) and deleted with DELETE_SUBSCRIPTIONGROUP (207) on
 * every target broker (-b, or the masters of -c).
 *
 * consumerProgress asks every master (or those of -c) for GET_CONSUME_STATS
 * (208) and merges the per-queue rows: brokerOffset (the queue's end),
 * consumerOffset (the group's committed offset) and their difference, the
 * lag. A broker that has nothing for the group answers an empty table or a
 * refusal; both add no rows, and the command fails only when no broker
 * answered at all. Without -g it lists every subscription group of the
 * masters (GET_ALL_SUBSCRIPTIONGROUP_CONFIG 201) with its online clients
 * and total lag.
 *
 * The connection lists (GET_CONSUMER_CONNECTION_LIST 203,
 * GET_PRODUCER_CONNECTION_LIST 204) are merged over brokers by clientId.
 *
 * Threads: main thread (admin.h). */
#include <stdlib.h>
#include <string.h>

#include "cli/admin/admin.h"
#include "common/json.h"
#include "common/mem.h"
#include "protocol/rcode.h"
#include "protocol/remoting.h"

static const struct apg_adm_col result_cols[] = {{"#Addr", "addr"}, {"#Result", "result"}, {0}};

/* Sends req (+body) to addr; appends {addr, result} on success. */
static int simple_call(struct apg_adm *a, const char *addr, struct apg_rcmd *req, const char *body,
                       json_t *rows)
{
    struct apg_adm_resp r;
    char err[512];
    if (apg_adm_call(a, addr, req, body, body ? strlen(body) : 0, &r, err, sizeof(err)) != APG_OK)
        return apg_adm_fail(a, "%s", err);
    int rc = APG_ADM_OK;
    if (r.ar_code != 0) {
        char who[160];
        snprintf(who, sizeof(who), "broker %s", addr);
        rc = apg_adm_refused(a, who, req, &r);
    } else {
        json_array_append_new(rows, json_pack("{s:s,s:s}", "addr", addr, "result", "ok"));
    }
    apg_adm_resp_free(&r);
    return rc;
}

static int update_sub_group(struct apg_adm *a)
{
    const char *g = apg_adm_need(a, 'g');
    if (!g)
        return APG_ADM_USAGE;
    int64_t rq, rmax, bid, slow;
    if (!apg_adm_int(a, 'q', 0, 1024, 1, &rq) || !apg_adm_int(a, 'r', -1, 1000, 16, &rmax) ||
        !apg_adm_int(a, 'i', 0, 1024, 0, &bid) || !apg_adm_int(a, 'w', 0, 1024, 1, &slow))
        return APG_ADM_USAGE;
    json_t *cfg =
        json_pack("{s:s,s:b,s:b,s:b,s:b,s:I,s:I,s:I,s:I,s:b}", "groupName", g, "consumeEnable",
                  apg_adm_bool(a, 's', true), "consumeFromMinEnable", apg_adm_bool(a, 'm', true),
                  "consumeBroadcastEnable", apg_adm_bool(a, 'd', true), "consumeMessageOrderly",
                  apg_adm_bool(a, 'o', false), "retryQueueNums", (json_int_t)rq, "retryMaxTimes",
                  (json_int_t)rmax, "brokerId", (json_int_t)bid, "whichBrokerWhenConsumeSlowly",
                  (json_int_t)slow, "notifyConsumerIdsChangedEnable", apg_adm_bool(a, 'a', true));
    char **addrs;
    size_t n;
    int rc = apg_adm_targets(a, true, &addrs, &n);
    if (rc) {
        json_decref(cfg);
        return rc;
    }
    char *body = json_dumps(cfg, JSON_COMPACT);
    json_t *rows = json_array();
    for (size_t i = 0; body && i < n; i++) {
        struct apg_rcmd req;
        apg_adm_req(&req, APG_REQ_UPDATE_AND_CREATE_SUBSCRIPTIONGROUP);
        int r = simple_call(a, addrs[i], &req, body, rows);
        if (r)
            rc = r;
    }
    free(body);
    apg_adm_strs_free(addrs, n);
    apg_adm_emit(a, json_pack("{s:s,s:o,s:o}", "group", g, "config", cfg, "results", rows),
                 "results", result_cols);
    return rc;
}

static int delete_sub_group(struct apg_adm *a)
{
    const char *g = apg_adm_need(a, 'g');
    if (!g)
        return APG_ADM_USAGE;
    bool clean = apg_adm_bool(a, 'r', false);
    char **addrs;
    size_t n;
    int rc = apg_adm_targets(a, true, &addrs, &n);
    if (rc)
        return rc;
    json_t *rows = json_array();
    for (size_t i = 0; i < n; i++) {
        struct apg_rcmd req;
        apg_adm_req(&req, APG_REQ_DELETE_SUBSCRIPTIONGROUP);
        apg_rcmd_ext_add(&req, "groupName", g);
        apg_rcmd_ext_add(&req, "cleanOffset", clean ? "true" : "false");
        int r = simple_call(a, addrs[i], &req, NULL, rows);
        if (r)
            rc = r;
    }
    apg_adm_strs_free(addrs, n);
    apg_adm_emit(a, json_pack("{s:s,s:b,s:o}", "group", g, "removeOffset", clean, "results", rows),
                 "results", result_cols);
    return rc;
}

/* ---- consumer progress ---- */

/* GET_CONSUME_STATS of group (topic may be NULL) over addrs: appends one row
 * per queue, adds to *tps; returns how many brokers answered. */
static size_t consume_stats(struct apg_adm *a, char **addrs, size_t n, const char *group,
                            const char *topic, json_t *rows, double *tps, char *lasterr,
                            size_t errlen)
{
    size_t answered = 0;
    for (size_t i = 0; i < n; i++) {
        struct apg_rcmd req;
        struct apg_adm_resp r;
        apg_adm_req(&req, APG_REQ_GET_CONSUME_STATS);
        apg_rcmd_ext_add(&req, "consumerGroup", group);
        if (topic)
            apg_rcmd_ext_add(&req, "topic", topic);
        if (apg_adm_call(a, addrs[i], &req, NULL, 0, &r, lasterr, errlen) != APG_OK)
            continue;
        if (r.ar_code != 0) {
            const char *nm = apg_resp_code_name(r.ar_code);
            snprintf(lasterr, errlen, "broker %s answered %d %s: %s", addrs[i], r.ar_code,
                     nm ? nm : "", r.ar_remark);
            apg_adm_resp_free(&r);
            continue;
        }
        answered++;
        json_t *j = apg_adm_body_json(&r, lasterr, errlen);
        apg_adm_resp_free(&r);
        json_t *tv = json_object_get(j, "consumeTps");
        *tps += json_is_number(tv) ? json_number_value(tv) : 0;
        const char *key;
        json_t *v;
        json_object_foreach(json_object_get(j, "offsetTable"), key, v)
        {
            char b[128], t[256], ts[40];
            int q;
            if (!apg_adm_mq_key(key, b, sizeof(b), &q, t, sizeof(t)))
                continue;
            int64_t bo = apg_json_get_i64(v, "brokerOffset", 0);
            int64_t co = apg_json_get_i64(v, "consumerOffset", 0);
            int64_t last = apg_json_get_i64(v, "lastTimestamp", 0);
            json_array_append_new(rows, json_pack("{s:s,s:s,s:i,s:I,s:I,s:I,s:I,s:s}", "topic", t,
                                                  "brokerName", b, "queueId", q, "brokerOffset",
                                                  (json_int_t)bo, "consumerOffset", (json_int_t)co,
                                                  "diff", (json_int_t)(bo - co), "lastTimestamp",
                                                  (json_int_t)last, "lastTime",
                                                  apg_adm_fmt_time(last, ts, sizeof(ts))));
        }
        json_decref(j);
    }
    return answered;
}

static int64_t diff_total(json_t *rows)
{
    int64_t d = 0;
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r) d += apg_json_get_i64(r, "diff", 0);
    return d;
}

/* Connection list of group over addrs merged, or NULL when no broker knows
 * an online member. */
static json_t *connections(struct apg_adm *a, char **addrs, size_t n, const char *group,
                           bool consumers, char *lasterr, size_t errlen);

static int progress_all(struct apg_adm *a, char **addrs, size_t n)
{
    json_t *groups = json_array();
    for (size_t i = 0; i < n; i++) {
        struct apg_rcmd req;
        struct apg_adm_resp r;
        char err[512];
        apg_adm_req(&req, APG_REQ_GET_ALL_SUBSCRIPTIONGROUP_CONFIG);
        if (apg_adm_call(a, addrs[i], &req, NULL, 0, &r, err, sizeof(err)) != APG_OK) {
            json_decref(groups);
            return apg_adm_fail(a, "%s", err);
        }
        json_t *j = r.ar_code == 0 ? apg_adm_body_json(&r, err, sizeof(err)) : NULL;
        apg_adm_resp_free(&r);
        const char *g;
        json_t *v;
        json_object_foreach(json_object_get(j, "subscriptionGroupTable"), g, v)
        {
            size_t k;
            json_t *x;
            bool dup = false;
            json_array_foreach(groups, k, x) dup |= strcmp(json_string_value(x), g) == 0;
            if (!dup)
                json_array_append_new(groups, json_string(g));
        }
        json_decref(j);
    }
    json_t *out = json_array();
    size_t k;
    json_t *gv;
    json_array_foreach(groups, k, gv)
    {
        const char *g = json_string_value(gv);
        char err[512];
        json_t *rows = json_array();
        double tps = 0;
        consume_stats(a, addrs, n, g, NULL, rows, &tps, err, sizeof(err));
        json_t *cn = connections(a, addrs, n, g, true, err, sizeof(err));
        json_array_append_new(
            out, json_pack("{s:s,s:i,s:s,s:s,s:f,s:I}", "group", g, "clients",
                           (int)json_array_size(json_object_get(cn, "connections")), "consumeType",
                           apg_json_get_str(cn, "consumeType", "-"), "messageModel",
                           apg_json_get_str(cn, "messageModel", "-"), "consumeTps", tps,
                           "diffTotal", (json_int_t)diff_total(rows)));
        json_decref(cn);
        json_decref(rows);
    }
    json_decref(groups);
    static const struct apg_adm_col cols[] = {{"#Group", "group"},
                                              {"#Count", "clients"},
                                              {"#Type", "consumeType"},
                                              {"#Model", "messageModel"},
                                              {"#TPS", "consumeTps"},
                                              {"#Diff Total", "diffTotal"},
                                              {0}};
    return apg_adm_emit(a, json_pack("{s:o}", "groups", out), "groups", cols);
}

static int consumer_progress(struct apg_adm *a)
{
    const char *g = apg_adm_opt(a, 'g');
    const char *t = apg_adm_opt(a, 't');
    char **addrs;
    size_t n;
    int trc = apg_adm_targets(a, false, &addrs, &n);
    if (trc)
        return trc;
    if (!g || !*g) {
        int rc = progress_all(a, addrs, n);
        apg_adm_strs_free(addrs, n);
        return rc;
    }
    json_t *rows = json_array();
    double tps = 0;
    char err[512] = "";
    size_t ok = consume_stats(a, addrs, n, g, t && *t ? t : NULL, rows, &tps, err, sizeof(err));
    apg_adm_strs_free(addrs, n);
    if (!ok) {
        json_decref(rows);
        return apg_adm_fail(a, "no broker gave the progress of group '%s': %s", g, err);
    }
    rows = apg_adm_sort_queues(rows);
    static const struct apg_adm_col cols[] = {
        {"#Topic", "topic"},
        {"#Broker Name", "brokerName"},
        {"#QID", "queueId"},
        {"#Broker Offset", "brokerOffset"},
        {"#Consumer Offset", "consumerOffset"},
        {"#Diff", "diff"},
        {"#LastTime", "lastTime"},
        {0},
    };
    int64_t total = diff_total(rows);
    json_t *res = json_pack("{s:s,s:f,s:I,s:o}", "group", g, "consumeTps", tps, "diffTotal",
                            (json_int_t)total, "queues", rows);
    if (a->ad_json)
        return apg_adm_emit(a, res, "queues", cols);
    apg_adm_table(stdout, cols, rows);
    printf("\nConsume TPS: %.2f\nConsume Diff Total: %lld\n", tps, (long long)total);
    json_decref(res);
    return APG_ADM_OK;
}

/* ---- connections ---- */

static json_t *connections(struct apg_adm *a, char **addrs, size_t n, const char *group,
                           bool consumers, char *lasterr, size_t errlen)
{
    json_t *res = NULL;
    for (size_t i = 0; i < n; i++) {
        struct apg_rcmd req;
        struct apg_adm_resp r;
        apg_adm_req(&req, consumers ? APG_REQ_GET_CONSUMER_CONNECTION_LIST
                                    : APG_REQ_GET_PRODUCER_CONNECTION_LIST);
        apg_rcmd_ext_add(&req, consumers ? "consumerGroup" : "producerGroup", group);
        if (apg_adm_call(a, addrs[i], &req, NULL, 0, &r, lasterr, errlen) != APG_OK)
            continue;
        if (r.ar_code != 0) {
            snprintf(lasterr, errlen, "broker %s: %s", addrs[i], r.ar_remark);
            apg_adm_resp_free(&r);
            continue;
        }
        json_t *j = apg_adm_body_json(&r, lasterr, errlen);
        apg_adm_resp_free(&r);
        if (!j)
            continue;
        if (!res) {
            res = json_pack("{s:s,s:[],s:[]}", "group", group, "connections", "subscriptions");
            if (consumers) {
                json_object_set_new(res, "consumeType",
                                    json_string(apg_json_get_str(j, "consumeType", "")));
                json_object_set_new(res, "messageModel",
                                    json_string(apg_json_get_str(j, "messageModel", "")));
                json_object_set_new(res, "consumeFromWhere",
                                    json_string(apg_json_get_str(j, "consumeFromWhere", "")));
            }
        }
        json_t *conns = json_object_get(res, "connections");
        size_t k, m;
        json_t *c, *x;
        json_array_foreach(json_object_get(j, "connectionSet"), k, c)
        {
            const char *id = apg_json_get_str(c, "clientId", "");
            bool dup = false;
            json_array_foreach(conns, m, x) dup |=
                strcmp(apg_json_get_str(x, "clientId", ""), id) == 0;
            if (!dup)
                json_array_append_new(conns,
                                      json_pack("{s:s,s:s,s:s,s:I}", "clientId", id, "clientAddr",
                                                apg_json_get_str(c, "clientAddr", ""), "language",
                                                apg_json_get_str(c, "language", ""), "version",
                                                (json_int_t)apg_json_get_i64(c, "version", 0)));
        }
        json_t *subs = json_object_get(res, "subscriptions");
        const char *topic;
        json_t *sd;
        json_object_foreach(json_object_get(j, "subscriptionTable"), topic, sd)
        {
            bool dup = false;
            json_array_foreach(subs, m, x) dup |=
                strcmp(apg_json_get_str(x, "topic", ""), topic) == 0;
            if (!dup)
                json_array_append_new(
                    subs, json_pack("{s:s,s:s,s:s}", "topic", topic, "subString",
                                    apg_json_get_str(sd, "subString", ""), "expressionType",
                                    apg_json_get_str(sd, "expressionType", "TAG")));
        }
        json_decref(j);
    }
    return res;
}

static const struct apg_adm_col conn_cols[] = {{"#ClientId", "clientId"},
                                               {"#ClientAddr", "clientAddr"},
                                               {"#Language", "language"},
                                               {"#Version", "version"},
                                               {0}};

static int consumer_connection(struct apg_adm *a)
{
    const char *g = apg_adm_need(a, 'g');
    if (!g)
        return APG_ADM_USAGE;
    char **addrs;
    size_t n;
    int trc = apg_adm_targets(a, false, &addrs, &n);
    if (trc)
        return trc;
    char err[512] = "";
    json_t *res = connections(a, addrs, n, g, true, err, sizeof(err));
    apg_adm_strs_free(addrs, n);
    if (!res)
        return apg_adm_fail(a, "no consumer of group '%s' is online (%s)", g, err);
    if (a->ad_json)
        return apg_adm_emit(a, res, NULL, conn_cols);
    apg_adm_table(stdout, conn_cols, json_object_get(res, "connections"));
    static const struct apg_adm_col sub_cols[] = {
        {"#Topic", "topic"}, {"#SubExpression", "subString"}, {"#Type", "expressionType"}, {0}};
    printf("\n");
    apg_adm_table(stdout, sub_cols, json_object_get(res, "subscriptions"));
    printf("\nConsumeType: %s\nMessageModel: %s\nConsumeFromWhere: %s\n",
           apg_json_get_str(res, "consumeType", ""), apg_json_get_str(res, "messageModel", ""),
           apg_json_get_str(res, "consumeFromWhere", ""));
    json_decref(res);
    return APG_ADM_OK;
}

static int producer_connection(struct apg_adm *a)
{
    const char *g = apg_adm_need(a, 'g');
    const char *t = g ? apg_adm_need(a, 't') : NULL;
    if (!t)
        return APG_ADM_USAGE;
    json_t *rt = apg_adm_route(a, t, false, NULL);
    if (!rt)
        return APG_ADM_FAILED;
    char **addrs = NULL;
    size_t n = 0, i;
    json_t *bd;
    json_array_foreach(json_object_get(rt, "brokerDatas"), i, bd)
    {
        const char *m = apg_adm_route_master(rt, apg_json_get_str(bd, "brokerName", ""));
        char **nv = m ? apg_realloc(addrs, (n + 1) * sizeof(char *)) : NULL;
        if (nv) {
            addrs = nv;
            addrs[n++] = apg_strdup(m);
        }
    }
    json_decref(rt);
    char err[512] = "";
    json_t *res = connections(a, addrs, n, g, false, err, sizeof(err));
    apg_adm_strs_free(addrs, n);
    if (!res)
        return apg_adm_fail(a, "no producer of group '%s' is connected to the brokers of '%s' (%s)",
                            g, t, err);
    json_object_del(res, "subscriptions");
    return apg_adm_emit(a, res, "connections", conn_cols);
}

static const struct apg_adm_opt update_opts[] = {
    {'b', "brokerAddr", true, "broker address host:port"},
    {'c', "clusterName", true, "every master of this cluster"},
    {'g', "groupName", true, "consumer group name"},
    {'s', "consumeEnable", true, "true/false (default true)"},
    {'m', "consumeFromMinEnable", true, "true/false (default true)"},
    {'d', "consumeBroadcastEnable", true, "true/false (default true)"},
    {'o', "consumeMessageOrderly", true, "true/false (default false)"},
    {'q', "retryQueueNums", true, "retry queues (default 1)"},
    {'r', "retryMaxTimes", true, "retries before the dead-letter queue (default 16)"},
    {'i', "brokerId", true, "broker id to consume from (default 0)"},
    {'w', "whichBrokerWhenConsumeSlowly", true, "broker id when consuming slowly (default 1)"},
    {'a', "notifyConsumerIdsChanged", true, "true/false (default true)"},
    {0},
};
static const struct apg_adm_opt delete_opts[] = {
    {'b', "brokerAddr", true, "broker address host:port"},
    {'c', "clusterName", true, "every master of this cluster"},
    {'g', "groupName", true, "consumer group name"},
    {'r', "removeOffset", true, "true: delete the group's offsets too"},
    {0},
};
static const struct apg_adm_opt progress_opts[] = {
    {'g', "groupName", true, "consumer group (without: every group, summarised)"},
    {'t', "topicName", true, "only this topic"},
    {'c', "cluster", true, "only brokers of this cluster"},
    {0},
};
static const struct apg_adm_opt cconn_opts[] = {
    {'g', "consumerGroup", true, "consumer group name"},
    {'b', "brokerAddr", true, "ask this broker only"},
    {0},
};
static const struct apg_adm_opt pconn_opts[] = {
    {'g', "producerGroup", true, "producer group name"},
    {'t', "topic", true, "a topic the group sends to (its brokers are asked)"},
    {0},
};

const struct apg_adm_cmd apg_adm_group_cmds[] = {
    {"updateSubGroup", "create or update a subscription group", update_opts, update_sub_group,
     "group, config{SubscriptionGroupConfig fields}, results[]: addr, result"},
    {"deleteSubGroup", "delete a subscription group (and with -r true its offsets)", delete_opts,
     delete_sub_group, "group, removeOffset, results[]: addr, result"},
    {"consumerProgress", "a group's per-queue offsets and lag (all groups without -g)",
     progress_opts, consumer_progress,
     "group, consumeTps, diffTotal, queues[]: topic, brokerName, queueId, brokerOffset, "
     "consumerOffset, diff, lastTimestamp, lastTime; without -g: groups[]: group, clients, "
     "consumeType, messageModel, consumeTps, diffTotal"},
    {"consumerConnection", "the online clients of a consumer group and their subscriptions",
     cconn_opts, consumer_connection,
     "group, consumeType, messageModel, consumeFromWhere, connections[]: clientId, clientAddr, "
     "language, version; subscriptions[]: topic, subString, expressionType"},
    {"producerConnection", "the connected clients of a producer group", pconn_opts,
     producer_connection, "group, connections[]: clientId, clientAddr, language, version"},
    {0},
};

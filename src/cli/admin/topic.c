/* `apogee admin` topic commands: topicList, topicRoute, topicStatus,
 * topicClusterList, updateTopic, updateTopicPerm, deleteTopic.
 *
 * Reads go to the NameServer (GET_ALL_TOPIC_LIST_FROM_NAMESERVER 206,
 * GET_TOPICS_BY_CLUSTER 224, GET_ROUTEINFO_BY_TOPIC 105) or to the masters
 * of the topic's route (GET_TOPIC_STATS_INFO 202). Changes go to every
 * target broker (-b one address, -c every master of a cluster):
 * UPDATE_AND_CREATE_TOPIC (17), and for updateTopicPerm the topic's current
 * queue counts first (GET_ALL_TOPIC_CONFIG 21) so only the permission
 * changes. deleteTopic sends DELETE_TOPIC_IN_BROKER (215) to the masters and
 * then DELETE_TOPIC_IN_NAMESRV (216) to every NameServer, and reports each
 * server's answer: a NameServer without 216 keeps the route only until the
 * broker's next registration, so that is a warning, not a failure.
 *
 * Threads: main thread (admin.h). */
#include <stdlib.h>
#include <string.h>

#include "cli/admin/admin.h"
#include "common/json.h"
#include "common/mem.h"
#include "protocol/rcode.h"
#include "protocol/remoting.h"

static const struct apg_adm_col result_cols[] = {
    {"#Addr", "addr"}, {"#Role", "role"}, {"#Result", "result"}, {0}};

static int str_cmp(const void *x, const void *y)
{
    return strcmp(json_string_value(*(json_t *const *)x), json_string_value(*(json_t *const *)y));
}

/* The topicList member of a TopicList body, sorted. NULL after printing. */
static json_t *topic_names(struct apg_adm *a, int32_t code, const char *cluster)
{
    const char *kv[] = {"cluster", cluster, NULL};
    struct apg_adm_resp r;
    char err[512] = "";
    if (apg_adm_ask(a, NULL, "the NameServer", code, kv, false, &r))
        return NULL;
    json_t *j = apg_adm_body_json(&r, err, sizeof(err));
    apg_adm_resp_free(&r);
    json_t *list = json_incref(json_object_get(j, "topicList"));
    json_decref(j);
    if (!json_is_array(list)) {
        json_decref(list);
        apg_adm_fail(a, "the NameServer's topic list has no topicList: %s", err);
        return NULL;
    }
    size_t n = json_array_size(list);
    json_t **v = apg_calloc(n ? n : 1, sizeof(*v));
    for (size_t i = 0; v && i < n; i++)
        v[i] = json_incref(json_array_get(list, i));
    if (v)
        qsort(v, n, sizeof(*v), str_cmp);
    json_t *sorted = json_array();
    for (size_t i = 0; v && i < n; i++)
        json_array_append_new(sorted, v[i]);
    apg_free(v);
    json_decref(list);
    return sorted;
}

static int topic_list(struct apg_adm *a)
{
    json_t *rows = json_array();
    bool by_cluster = apg_adm_opt(a, 'c') != NULL;
    if (!by_cluster) {
        json_t *names = topic_names(a, APG_REQ_GET_ALL_TOPIC_LIST_FROM_NAMESERVER, NULL);
        if (!names) {
            json_decref(rows);
            return APG_ADM_FAILED;
        }
        size_t i;
        json_t *t;
        json_array_foreach(names, i, t) json_array_append_new(rows, json_pack("{s:O}", "topic", t));
        json_decref(names);
    } else {
        struct apg_adm_broker *bs;
        size_t n;
        if (!apg_adm_brokers(a, &bs, &n)) {
            json_decref(rows);
            return APG_ADM_FAILED;
        }
        for (size_t b = 0; b < n; b++) {
            if (b > 0 && strcmp(bs[b].ab_cluster, bs[b - 1].ab_cluster) == 0)
                continue;
            json_t *names = topic_names(a, APG_REQ_GET_TOPICS_BY_CLUSTER, bs[b].ab_cluster);
            size_t i;
            json_t *t;
            json_array_foreach(names, i, t)
            {
                json_array_append_new(
                    rows, json_pack("{s:s,s:O}", "cluster", bs[b].ab_cluster, "topic", t));
            }
            json_decref(names);
        }
        apg_free(bs);
    }
    static const struct apg_adm_col cols[] = {{"#Topic", "topic"}, {0}};
    static const struct apg_adm_col ccols[] = {{"#Cluster", "cluster"}, {"#Topic", "topic"}, {0}};
    return apg_adm_emit(a, json_pack("{s:o}", "topics", rows), "topics", by_cluster ? ccols : cols);
}

static const char *perm_name(int64_t p)
{
    static const char *const names[] = {"---", "--X", "-W-", "-WX", "R--", "R-X", "RW-", "RWX"};
    return names[p & 7];
}

static int topic_route(struct apg_adm *a)
{
    const char *topic = apg_adm_need(a, 't');
    if (!topic)
        return APG_ADM_USAGE;
    json_t *rt = apg_adm_route(a, topic, false, NULL);
    if (!rt)
        return APG_ADM_FAILED;
    json_t *rows = json_array();
    size_t i;
    json_t *qd;
    json_array_foreach(json_object_get(rt, "queueDatas"), i, qd)
    {
        const char *bn = apg_json_get_str(qd, "brokerName", "");
        const char *master = apg_adm_route_master(rt, bn);
        int64_t perm = apg_json_get_i64(qd, "perm", 0);
        json_array_append_new(
            rows, json_pack("{s:s,s:s,s:I,s:I,s:I,s:s}", "brokerName", bn, "master",
                            master ? master : "-", "readQueueNums",
                            (json_int_t)apg_json_get_i64(qd, "readQueueNums", 0), "writeQueueNums",
                            (json_int_t)apg_json_get_i64(qd, "writeQueueNums", 0), "perm",
                            (json_int_t)perm, "permName", perm_name(perm)));
    }
    static const struct apg_adm_col cols[] = {
        {"#Broker", "brokerName"},     {"#Master", "master"}, {"#ReadQ", "readQueueNums"},
        {"#WriteQ", "writeQueueNums"}, {"#Perm", "permName"}, {0}};
    if (a->ad_json) {
        json_decref(rows);
        return apg_adm_emit(a, rt, NULL, cols);
    }
    json_decref(rt);
    return apg_adm_emit(a, rows, NULL, cols);
}

static int topic_status(struct apg_adm *a)
{
    const char *topic = apg_adm_need(a, 't');
    if (!topic)
        return APG_ADM_USAGE;
    json_t *rt = apg_adm_route(a, topic, false, NULL);
    if (!rt)
        return APG_ADM_FAILED;
    json_t *rows = json_array();
    int rc = APG_ADM_OK;
    size_t i;
    json_t *bd;
    json_array_foreach(json_object_get(rt, "brokerDatas"), i, bd)
    {
        const char *bn = apg_json_get_str(bd, "brokerName", "");
        const char *cl = apg_adm_opt(a, 'c');
        if (cl && *cl && strcmp(apg_json_get_str(bd, "cluster", ""), cl) != 0)
            continue;
        const char *addr = apg_adm_route_master(rt, bn);
        if (!addr)
            continue;
        struct apg_rcmd req;
        struct apg_adm_resp r;
        char err[512];
        apg_adm_req(&req, APG_REQ_GET_TOPIC_STATS_INFO);
        apg_rcmd_ext_add(&req, "topic", topic);
        if (apg_adm_call(a, addr, &req, NULL, 0, &r, err, sizeof(err)) != APG_OK) {
            rc = apg_adm_fail(a, "%s", err);
            continue;
        }
        if (r.ar_code != 0) {
            rc = apg_adm_refused(a, addr, &req, &r);
            apg_adm_resp_free(&r);
            continue;
        }
        json_t *j = apg_adm_body_json(&r, err, sizeof(err));
        apg_adm_resp_free(&r);
        const char *key;
        json_t *v;
        json_object_foreach(json_object_get(j, "offsetTable"), key, v)
        {
            char b[128], t[256];
            int q;
            if (!apg_adm_mq_key(key, b, sizeof(b), &q, t, sizeof(t)))
                continue;
            char ts[40];
            int64_t last = apg_json_get_i64(v, "lastUpdateTimestamp", 0);
            json_array_append_new(
                rows,
                json_pack("{s:s,s:i,s:I,s:I,s:I,s:s}", "brokerName", b, "queueId", q, "minOffset",
                          (json_int_t)apg_json_get_i64(v, "minOffset", 0), "maxOffset",
                          (json_int_t)apg_json_get_i64(v, "maxOffset", 0), "lastUpdateTimestamp",
                          (json_int_t)last, "lastUpdated", apg_adm_fmt_time(last, ts, sizeof(ts))));
        }
        json_decref(j);
    }
    json_decref(rt);
    static const struct apg_adm_col cols[] = {
        {"#Broker Name", "brokerName"},   {"#QID", "queueId"},
        {"#Min Offset", "minOffset"},     {"#Max Offset", "maxOffset"},
        {"#Last Updated", "lastUpdated"}, {0}};
    apg_adm_emit(a, json_pack("{s:s,s:o}", "topic", topic, "queues", apg_adm_sort_queues(rows)),
                 "queues", cols);
    return rc;
}

static int topic_cluster_list(struct apg_adm *a)
{
    const char *topic = apg_adm_need(a, 't');
    if (!topic)
        return APG_ADM_USAGE;
    json_t *rt = apg_adm_route(a, topic, false, NULL);
    if (!rt)
        return APG_ADM_FAILED;
    json_t *clusters = json_array();
    size_t i, k;
    json_t *bd, *c;
    json_array_foreach(json_object_get(rt, "brokerDatas"), i, bd)
    {
        const char *cl = apg_json_get_str(bd, "cluster", "");
        bool dup = false;
        json_array_foreach(clusters, k, c) dup |= strcmp(json_string_value(c), cl) == 0;
        if (!dup)
            json_array_append_new(clusters, json_string(cl));
    }
    json_decref(rt);
    json_t *rows = json_array();
    json_array_foreach(clusters, k, c)
        json_array_append_new(rows, json_pack("{s:O}", "cluster", c));
    static const struct apg_adm_col cols[] = {{"#Cluster", "cluster"}, {0}};
    if (!a->ad_json) {
        json_decref(clusters);
        return apg_adm_emit(a, rows, NULL, cols);
    }
    json_decref(rows);
    return apg_adm_emit(a, json_pack("{s:s,s:o}", "topic", topic, "clusters", clusters), NULL,
                        cols);
}

/* UPDATE_AND_CREATE_TOPIC to addr; appends a result row. */
static int send_create(struct apg_adm *a, const char *addr, const char *topic, int64_t rq,
                       int64_t wq, int64_t perm, bool order, json_t *rows)
{
    char r_s[24], w_s[24], p_s[24];
    snprintf(r_s, sizeof(r_s), "%lld", (long long)rq);
    snprintf(w_s, sizeof(w_s), "%lld", (long long)wq);
    snprintf(p_s, sizeof(p_s), "%lld", (long long)perm);
    struct apg_rcmd req;
    struct apg_adm_resp r;
    char err[512];
    apg_adm_req(&req, APG_REQ_UPDATE_AND_CREATE_TOPIC);
    apg_rcmd_ext_add(&req, "topic", topic);
    apg_rcmd_ext_add(&req, "defaultTopic", "TBW102");
    apg_rcmd_ext_add(&req, "readQueueNums", r_s);
    apg_rcmd_ext_add(&req, "writeQueueNums", w_s);
    apg_rcmd_ext_add(&req, "perm", p_s);
    apg_rcmd_ext_add(&req, "topicFilterType", "SINGLE_TAG");
    apg_rcmd_ext_add(&req, "topicSysFlag", "0");
    apg_rcmd_ext_add(&req, "order", order ? "true" : "false");
    if (apg_adm_call(a, addr, &req, NULL, 0, &r, err, sizeof(err)) != APG_OK)
        return apg_adm_fail(a, "%s", err);
    int rc = APG_ADM_OK;
    if (r.ar_code != 0) {
        char who[160];
        snprintf(who, sizeof(who), "broker %s", addr);
        rc = apg_adm_refused(a, who, &req, &r);
    } else {
        json_array_append_new(rows, json_pack("{s:s,s:s,s:s,s:I,s:I,s:I}", "addr", addr, "role",
                                              "broker", "result", "ok", "readQueueNums",
                                              (json_int_t)rq, "writeQueueNums", (json_int_t)wq,
                                              "perm", (json_int_t)perm));
    }
    apg_adm_resp_free(&r);
    return rc;
}

static bool check_perm(struct apg_adm *a, int64_t perm)
{
    if (perm == 2 || perm == 4 || perm == 6)
        return true;
    apg_adm_usage(a,
                  "-p %lld is not a permission: 2 (write only), 4 (read only) or 6 (read and "
                  "write)",
                  (long long)perm);
    return false;
}

static int update_topic(struct apg_adm *a)
{
    const char *topic = apg_adm_need(a, 't');
    if (!topic)
        return APG_ADM_USAGE;
    int64_t rq, wq, perm;
    if (!apg_adm_int(a, 'r', 1, 1024, 8, &rq) || !apg_adm_int(a, 'w', 1, 1024, 8, &wq) ||
        !apg_adm_int(a, 'p', 0, 7, 6, &perm) || !check_perm(a, perm))
        return APG_ADM_USAGE;
    bool order = apg_adm_bool(a, 'o', false);
    char **addrs;
    size_t n;
    int rc = apg_adm_targets(a, true, &addrs, &n);
    if (rc)
        return rc;
    json_t *rows = json_array();
    for (size_t i = 0; i < n; i++) {
        int r = send_create(a, addrs[i], topic, rq, wq, perm, order, rows);
        if (r)
            rc = r;
    }
    apg_adm_strs_free(addrs, n);
    apg_adm_emit(a, json_pack("{s:s,s:o}", "topic", topic, "results", rows), "results",
                 result_cols);
    return rc;
}

/* The broker's config of topic (GET_ALL_TOPIC_CONFIG), owned, or NULL. */
static json_t *broker_topic_config(struct apg_adm *a, const char *addr, const char *topic)
{
    struct apg_rcmd req;
    struct apg_adm_resp r;
    char err[512];
    apg_adm_req(&req, APG_REQ_GET_ALL_TOPIC_CONFIG);
    if (apg_adm_call(a, addr, &req, NULL, 0, &r, err, sizeof(err)) != APG_OK) {
        apg_adm_fail(a, "%s", err);
        return NULL;
    }
    if (r.ar_code != 0) {
        apg_adm_refused(a, addr, &req, &r);
        apg_adm_resp_free(&r);
        return NULL;
    }
    json_t *j = apg_adm_body_json(&r, err, sizeof(err));
    apg_adm_resp_free(&r);
    json_t *tc = json_incref(json_object_get(json_object_get(j, "topicConfigTable"), topic));
    json_decref(j);
    if (!tc)
        apg_adm_fail(a,
                     "topic '%s' is not on broker %s; create it with `apogee admin updateTopic "
                     "-t %s -b %s`",
                     topic, addr, topic, addr);
    return tc;
}

static int update_topic_perm(struct apg_adm *a)
{
    const char *topic = apg_adm_need(a, 't');
    const char *p = topic ? apg_adm_need(a, 'p') : NULL;
    int64_t perm;
    if (!p || !apg_adm_int(a, 'p', 0, 7, 6, &perm) || !check_perm(a, perm))
        return APG_ADM_USAGE;
    char **addrs;
    size_t n;
    int rc = apg_adm_targets(a, true, &addrs, &n);
    if (rc)
        return rc;
    json_t *rows = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *tc = broker_topic_config(a, addrs[i], topic);
        if (!tc) {
            rc = APG_ADM_FAILED;
            continue;
        }
        int r = send_create(a, addrs[i], topic, apg_json_get_i64(tc, "readQueueNums", 8),
                            apg_json_get_i64(tc, "writeQueueNums", 8), perm,
                            apg_json_get_bool(tc, "order", false), rows);
        json_object_set_new(json_array_get(rows, json_array_size(rows) - 1), "oldPerm",
                            json_integer(apg_json_get_i64(tc, "perm", 0)));
        json_decref(tc);
        if (r)
            rc = r;
    }
    apg_adm_strs_free(addrs, n);
    apg_adm_emit(a, json_pack("{s:s,s:o}", "topic", topic, "results", rows), "results",
                 result_cols);
    return rc;
}

static int delete_one(struct apg_adm *a, const char *addr, const char *role, int32_t code,
                      const char *topic, const char *cluster, json_t *rows)
{
    struct apg_rcmd req;
    struct apg_adm_resp r;
    char err[512];
    apg_adm_req(&req, code);
    apg_rcmd_ext_add(&req, "topic", topic);
    if (cluster && code == APG_REQ_DELETE_TOPIC_IN_NAMESRV)
        apg_rcmd_ext_add(&req, "clusterName", cluster);
    if (apg_adm_call(a, addr, &req, NULL, 0, &r, err, sizeof(err)) != APG_OK) {
        json_array_append_new(
            rows, json_pack("{s:s,s:s,s:s}", "addr", addr, "role", role, "result", err));
        return apg_adm_fail(a, "%s", err);
    }
    int rc = APG_ADM_OK;
    char res[600];
    if (r.ar_code == 0) {
        snprintf(res, sizeof(res), "ok");
    } else if (r.ar_code == APG_RESP_REQUEST_CODE_NOT_SUPPORTED &&
               code == APG_REQ_DELETE_TOPIC_IN_NAMESRV) {
        snprintf(res, sizeof(res),
                 "not supported by this NameServer: the route stays until the brokers register "
                 "again");
        fprintf(stderr, "apogee admin deleteTopic: warning: NameServer %s %s\n", addr, res);
    } else {
        const char *nm = apg_resp_code_name(r.ar_code);
        snprintf(res, sizeof(res), "refused: %d %s %s", r.ar_code, nm ? nm : "", r.ar_remark);
        char who[160];
        snprintf(who, sizeof(who), "%s %s", role, addr);
        rc = apg_adm_refused(a, who, &req, &r);
    }
    json_array_append_new(rows, json_pack("{s:s,s:s,s:s,s:i}", "addr", addr, "role", role, "result",
                                          res, "code", (int)r.ar_code));
    apg_adm_resp_free(&r);
    return rc;
}

static int delete_topic(struct apg_adm *a)
{
    const char *topic = apg_adm_need(a, 't');
    if (!topic)
        return APG_ADM_USAGE;
    const char *cluster = apg_adm_opt(a, 'c');
    if (!cluster || !*cluster)
        return apg_adm_usage(a, "-c <cluster name> is required: the topic is deleted from every "
                                "master of that cluster");
    char **addrs;
    size_t n;
    int trc = apg_adm_targets(a, true, &addrs, &n);
    if (trc)
        return trc;
    json_t *rows = json_array();
    int rc = APG_ADM_OK;
    for (size_t i = 0; i < n; i++) {
        int r =
            delete_one(a, addrs[i], "broker", APG_REQ_DELETE_TOPIC_IN_BROKER, topic, cluster, rows);
        if (r)
            rc = r;
    }
    apg_adm_strs_free(addrs, n);
    char *list = apg_strdup(a->ad_ns), *save = NULL;
    for (char *tok = list ? strtok_r(list, ";, ", &save) : NULL; tok;
         tok = strtok_r(NULL, ";, ", &save)) {
        int r =
            delete_one(a, tok, "namesrv", APG_REQ_DELETE_TOPIC_IN_NAMESRV, topic, cluster, rows);
        if (r)
            rc = r;
    }
    apg_free(list);
    apg_adm_emit(a, json_pack("{s:s,s:o}", "topic", topic, "results", rows), "results",
                 result_cols);
    return rc;
}

static const struct apg_adm_opt list_opts[] = {
    {'c', "clusterModel", false, "list topics per cluster"},
    {0},
};
static const struct apg_adm_opt route_opts[] = {
    {'t', "topic", true, "topic name"},
    {'l', "list", false, "table form (the default; kept for mqadmin scripts)"},
    {0},
};
static const struct apg_adm_opt status_opts[] = {
    {'t', "topic", true, "topic name"},
    {'c', "cluster", true, "only brokers of this cluster"},
    {0},
};
static const struct apg_adm_opt t_opts[] = {
    {'t', "topic", true, "topic name"},
    {0},
};
static const struct apg_adm_opt update_opts[] = {
    {'b', "brokerAddr", true, "create on this broker (host:port)"},
    {'c', "clusterName", true, "create on every master of this cluster"},
    {'t', "topic", true, "topic name"},
    {'r', "readQueueNums", true, "read queues (default 8)"},
    {'w', "writeQueueNums", true, "write queues (default 8)"},
    {'p', "perm", true, "2 write, 4 read, 6 read+write (default 6)"},
    {'o', "order", true, "true: ordered topic"},
    {0},
};
static const struct apg_adm_opt perm_opts[] = {
    {'b', "brokerAddr", true, "broker address host:port"},
    {'c', "clusterName", true, "every master of this cluster"},
    {'t', "topic", true, "topic name"},
    {'p', "perm", true, "2 write, 4 read, 6 read+write"},
    {0},
};
static const struct apg_adm_opt delete_opts[] = {
    {'t', "topic", true, "topic name"},
    {'c', "clusterName", true, "delete from every master of this cluster"},
    {0},
};

#define RESULT_JSON "topic, results[]: addr, role (broker|namesrv), result (\"ok\" or why)"

const struct apg_adm_cmd apg_adm_topic_cmds[] = {
    {"topicList", "list every topic the NameServer knows", list_opts, topic_list,
     "topics[]: topic, [cluster with -c]"},
    {"topicRoute", "print a topic's route (brokers, queue counts, permissions)", route_opts,
     topic_route, "the NameServer's TopicRouteData as is: brokerDatas[], queueDatas[]"},
    {"topicStatus", "print each queue's min and max offset and last update", status_opts,
     topic_status,
     "topic, queues[]: brokerName, queueId, minOffset, maxOffset, lastUpdateTimestamp, "
     "lastUpdated"},
    {"topicClusterList", "list the clusters a topic is on", t_opts, topic_cluster_list,
     "topic, clusters[] (names)"},
    {"updateTopic", "create or update a topic on a broker or a whole cluster", update_opts,
     update_topic, RESULT_JSON ", readQueueNums, writeQueueNums, perm"},
    {"updateTopicPerm", "change a topic's permission, keeping its queue counts", perm_opts,
     update_topic_perm, RESULT_JSON ", perm, oldPerm"},
    {"deleteTopic", "delete a topic from a cluster's brokers and from the NameServers", delete_opts,
     delete_topic, RESULT_JSON ", code (the server's response code)"},
    {0},
};

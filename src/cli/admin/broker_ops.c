/* `apogee admin` broker housekeeping and ACL commands: cleanExpiredCQ
 * (306), cleanUnusedTopic (316), deleteExpiredCommitLog (329), producer
 * (GET_ALL_PRODUCER_INFO 328), clusterAclConfigVersion
 * (GET_BROKER_CLUSTER_ACL_INFO 52), updateAclConfig (50), deleteAclConfig
 * (51) and updateGlobalWhiteAddr (53), with mqadmin's option letters.
 *
 * Each sends one request per target broker (-b, or every master of -c, or
 * of every cluster) with header fields taken from the options, and lists
 * one row per broker. Apogee's broker refuses the three ACL updates (its
 * ACL is the file on the broker's host) and the refusal is printed as
 * received; against Apache RocketMQ they change its plain_acl.yml.
 *
 * Threads: main thread (admin.h). */
#include <stdio.h>
#include <string.h>

#include "cli/admin/admin.h"
#include "common/json.h"
#include "protocol/rcode.h"
#include "protocol/remoting.h"

/* An option whose value goes into the request header under field. */
struct hdr_opt {
    char ho_letter;
    const char *ho_field;
};

/* What a command does with a SUCCESS answer from addr: appends rows. */
typedef int (*on_answer_fn)(struct apg_adm *a, const char *addr, const struct apg_adm_resp *r,
                            json_t *rows);

static int answer_done(struct apg_adm *a, const char *addr, const struct apg_adm_resp *r,
                       json_t *rows)
{
    (void)a, (void)r;
    json_array_append_new(rows, json_pack("{s:s,s:s}", "addr", addr, "result", "success"));
    return APG_ADM_OK;
}

/* Sends code with the header of hdr to every target broker; rows gets
 * what on_answer appends. `required`: a change, which needs -b or -c
 * unless there is one cluster (apg_adm_targets). */
static int each_broker(struct apg_adm *a, int32_t code, bool required, const struct hdr_opt *hdr,
                       on_answer_fn on_answer, json_t *rows)
{
    char **addrs;
    size_t n;
    int rc = apg_adm_targets(a, required, &addrs, &n);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        struct apg_rcmd req;
        struct apg_adm_resp r;
        char err[512];
        apg_adm_req(&req, code);
        for (const struct hdr_opt *h = hdr; h && h->ho_letter; h++) {
            const char *v = apg_adm_opt(a, h->ho_letter);
            if (v)
                apg_rcmd_ext_add(&req, h->ho_field, v);
        }
        int r1;
        if (apg_adm_call(a, addrs[i], &req, NULL, 0, &r, err, sizeof(err)) != APG_OK) {
            r1 = apg_adm_fail(a, "broker %s: %s", addrs[i], err);
        } else {
            char who[200];
            snprintf(who, sizeof(who), "broker %s", addrs[i]);
            r1 = r.ar_code ? apg_adm_refused(a, who, &req, &r) : on_answer(a, addrs[i], &r, rows);
            apg_adm_resp_free(&r);
        }
        if (r1)
            rc = r1;
    }
    apg_adm_strs_free(addrs, n);
    return rc;
}

static const struct apg_adm_col done_cols[] = {{"#Addr", "addr"}, {"#Result", "result"}, {0}};

static int run_simple(struct apg_adm *a, int32_t code, bool required, const struct hdr_opt *hdr)
{
    json_t *rows = json_array();
    int rc = each_broker(a, code, required, hdr, answer_done, rows);
    if (json_array_size(rows) == 0) {
        json_decref(rows);
        return rc;
    }
    apg_adm_emit(a, json_pack("{s:o}", "brokers", rows), "brokers", done_cols);
    return rc;
}

static int clean_expired_cq(struct apg_adm *a)
{
    return run_simple(a, APG_REQ_CLEAN_EXPIRED_CONSUMEQUEUE, false, NULL);
}

static int clean_unused_topic(struct apg_adm *a)
{
    return run_simple(a, APG_REQ_CLEAN_UNUSED_TOPIC, false, NULL);
}

static int delete_expired_commitlog(struct apg_adm *a)
{
    return run_simple(a, APG_REQ_DELETE_EXPIRED_COMMITLOG, false, NULL);
}

static int update_acl_config(struct apg_adm *a)
{
    static const struct hdr_opt hdr[] = {{'a', "accessKey"},
                                         {'s', "secretKey"},
                                         {'w', "whiteRemoteAddress"},
                                         {'i', "defaultTopicPerm"},
                                         {'u', "defaultGroupPerm"},
                                         {'t', "topicPerms"},
                                         {'g', "groupPerms"},
                                         {'m', "admin"},
                                         {0}};
    if (!apg_adm_need(a, 'a') || !apg_adm_need(a, 's'))
        return APG_ADM_USAGE;
    return run_simple(a, APG_REQ_UPDATE_AND_CREATE_ACL_CONFIG, true, hdr);
}

static int delete_acl_config(struct apg_adm *a)
{
    static const struct hdr_opt hdr[] = {{'a', "accessKey"}, {0}};
    if (!apg_adm_need(a, 'a'))
        return APG_ADM_USAGE;
    return run_simple(a, APG_REQ_DELETE_ACL_CONFIG, true, hdr);
}

static int update_global_white_addr(struct apg_adm *a)
{
    static const struct hdr_opt hdr[] = {{'g', "globalWhiteAddrs"}, {'p', "aclFileFullPath"}, {0}};
    if (!apg_adm_need(a, 'g'))
        return APG_ADM_USAGE;
    return run_simple(a, APG_REQ_UPDATE_GLOBAL_WHITE_ADDRS_CONFIG, true, hdr);
}

/* GET_ALL_PRODUCER_INFO: {"data":{group:[ProducerInfo...]}}. */
static int answer_producers(struct apg_adm *a, const char *addr, const struct apg_adm_resp *r,
                            json_t *rows)
{
    char err[256];
    json_t *j = apg_adm_body_json(r, err, sizeof(err));
    json_t *data = json_object_get(j, "data");
    if (!json_is_object(data)) {
        json_decref(j);
        return apg_adm_fail(a, "broker %s: the producer table has no data: %s", addr,
                            j ? "not an object" : err);
    }
    const char *group;
    json_t *list;
    json_object_foreach(data, group, list)
    {
        size_t i;
        json_t *p;
        json_array_foreach(list, i, p)
        {
            json_t *row = json_pack("{s:s,s:s}", "addr", addr, "group", group);
            static const char *const keys[] = {"clientId", "remoteIP", "language", "version",
                                               "lastUpdateTimestamp"};
            for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
                json_object_set(row, keys[k], json_object_get(p, keys[k]));
            json_array_append_new(rows, row);
        }
    }
    json_decref(j);
    return APG_ADM_OK;
}

static int producer(struct apg_adm *a)
{
    if (!apg_adm_need(a, 'b'))
        return APG_ADM_USAGE;
    json_t *rows = json_array();
    int rc = each_broker(a, APG_REQ_GET_ALL_PRODUCER_INFO, false, NULL, answer_producers, rows);
    static const struct apg_adm_col cols[] = {{"#Group", "group"},
                                              {"#ClientId", "clientId"},
                                              {"#RemoteIP", "remoteIP"},
                                              {"#Language", "language"},
                                              {"#Version", "version"},
                                              {"#LastUpdate", "lastUpdateTimestamp"},
                                              {0}};
    if (!rc)
        apg_adm_emit(a, json_pack("{s:o}", "producers", rows), "producers", cols);
    else
        json_decref(rows);
    return rc;
}

/* GET_BROKER_CLUSTER_ACL_INFO: the answer is in the header. */
static int answer_acl_version(struct apg_adm *a, const char *addr, const struct apg_adm_resp *r,
                              json_t *rows)
{
    (void)a;
    const char *ver = json_string_value(json_object_get(r->ar_ext, "version"));
    const char *all = json_string_value(json_object_get(r->ar_ext, "allAclFileVersion"));
    json_t *v = ver ? json_loads(ver, 0, NULL) : NULL;
    json_t *files = all ? json_loads(all, 0, NULL) : NULL;
    const char *path = NULL;
    json_t *fv;
    json_object_foreach(files, path, fv)
    {
        break; /* the first file; Apogee reads one */
    }
    json_t *row = json_pack(
        "{s:s,s:s?,s:s?,s:s?,s:O?,s:O?}", "addr", addr, "cluster",
        json_string_value(json_object_get(r->ar_ext, "clusterName")), "brokerName",
        json_string_value(json_object_get(r->ar_ext, "brokerName")), "aclFilePath", path, "counter",
        json_object_get(v, "counter"), "timestamp", json_object_get(v, "timestamp"));
    if (row)
        json_array_append_new(rows, row);
    json_decref(v);
    json_decref(files);
    return APG_ADM_OK;
}

static int cluster_acl_version(struct apg_adm *a)
{
    json_t *rows = json_array();
    int rc =
        each_broker(a, APG_REQ_GET_BROKER_CLUSTER_ACL_INFO, false, NULL, answer_acl_version, rows);
    static const struct apg_adm_col cols[] = {{"#Cluster", "cluster"},
                                              {"#BrokerName", "brokerName"},
                                              {"#BrokerAddr", "addr"},
                                              {"#AclFilePath", "aclFilePath"},
                                              {"#Version", "counter"},
                                              {"#LoadedAt", "timestamp"},
                                              {0}};
    if (json_array_size(rows))
        apg_adm_emit(a, json_pack("{s:o}", "brokers", rows), "brokers", cols);
    else
        json_decref(rows);
    return rc;
}

static const struct apg_adm_opt target_opts[] = {
    {'b', "brokerAddr", true, "broker address host:port"},
    {'c', "clusterName", true, "every master broker of this cluster"},
    {0},
};
static const struct apg_adm_opt producer_opts[] = {
    {'b', "broker", true, "broker address host:port"},
    {0},
};
static const struct apg_adm_opt acl_update_opts[] = {
    {'b', "brokerAddr", true, "broker address host:port"},
    {'c', "clusterName", true, "every master broker of this cluster"},
    {'a', "accessKey", true, "the account's accessKey"},
    {'s', "secretKey", true, "its secretKey"},
    {'w', "whiteRemoteAddress", true, "its white address"},
    {'i', "defaultTopicPerm", true, "DENY, PUB, SUB or PUB|SUB"},
    {'u', "defaultGroupPerm", true, "DENY, PUB, SUB or PUB|SUB"},
    {'t', "topicPerms", true, "topicA=DENY,topicB=PUB|SUB"},
    {'g', "groupPerms", true, "groupA=DENY,groupB=SUB"},
    {'m', "admin", true, "true: an admin account"},
    {0},
};
static const struct apg_adm_opt acl_delete_opts[] = {
    {'b', "brokerAddr", true, "broker address host:port"},
    {'c', "clusterName", true, "every master broker of this cluster"},
    {'a', "accessKey", true, "the account to delete"},
    {0},
};
static const struct apg_adm_opt white_opts[] = {
    {'b', "brokerAddr", true, "broker address host:port"},
    {'c', "clusterName", true, "every master broker of this cluster"},
    {'g', "globalWhiteRemoteAddresses", true, "10.10.103.*,192.168.0.*"},
    {'p', "aclFileFullPath", true, "the ACL file to change"},
    {0},
};

#define DONE_JSON "brokers[]: addr, result (\"success\")"

const struct apg_adm_cmd apg_adm_broker_ops_cmds[] = {
    {"cleanExpiredCQ",
     "drop consume-queue entries below the commit log's first offset (Apogee does so after "
     "every retention pass; CLEAN_EXPIRED_CONSUMEQUEUE)",
     target_opts, clean_expired_cq, DONE_JSON},
    {"cleanUnusedTopic",
     "remove the consume queues of topics the topic table no longer has (CLEAN_UNUSED_TOPIC)",
     target_opts, clean_unused_topic, DONE_JSON},
    {"deleteExpiredCommitLog",
     "delete the expired commit-log files now, whatever deleteWhen says "
     "(DELETE_EXPIRED_COMMITLOG)",
     target_opts, delete_expired_commitlog, DONE_JSON},
    {"producer", "list every producer group's instances on a broker (GET_ALL_PRODUCER_INFO)",
     producer_opts, producer,
     "producers[]: addr, group, clientId, remoteIP, language, version, lastUpdateTimestamp"},
    {"clusterAclConfigVersion",
     "the ACL file and the version of its rules on each broker (GET_BROKER_CLUSTER_ACL_INFO)",
     target_opts, cluster_acl_version,
     "brokers[]: addr, cluster, brokerName, aclFilePath, counter, timestamp"},
    {"updateAclConfig",
     "create or change an ACL account (UPDATE_AND_CREATE_ACL_CONFIG; Apogee refuses: edit its "
     "plain_acl.yml)",
     acl_update_opts, update_acl_config, DONE_JSON},
    {"deleteAclConfig",
     "delete an ACL account (DELETE_ACL_CONFIG; Apogee refuses: edit its plain_acl.yml)",
     acl_delete_opts, delete_acl_config, DONE_JSON},
    {"updateGlobalWhiteAddr",
     "replace the global white addresses (UPDATE_GLOBAL_WHITE_ADDRS_CONFIG; Apogee refuses: "
     "edit its plain_acl.yml)",
     white_opts, update_global_white_addr, DONE_JSON},
    {0},
};

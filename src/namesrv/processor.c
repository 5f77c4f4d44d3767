/* NameServer request processors and their dispatch table.
 *
 * One handler per request code (docs/wire.md §3), listed once in
 * ns_handlers[]; apg_namesrv_dispatch finds the handler and answers
 * REQUEST_CODE_NOT_SUPPORTED for anything else. Handlers run on the
 * NameServer's loop thread, read the route table / KV config directly and
 * reply through the net layer. Bodies are JSON built with jansson, keys
 * sorted like fastjson's output, numeric map keys quoted.
 *
 * REGISTER_BROKER accepts both body forms: the plain RegisterBrokerBody JSON
 * and the zlib-compressed binary layout of §4.3, which is turned into the
 * same JSON shape before the common code reads it. A non-zero bodyCrc32 is
 * checked against the masked CRC32 of the body as received.
 *
 * UPDATE_NAMESRV_CONFIG goes through apg_config_update_runtime: only keys
 * marked RT in config.def, all or nothing, never a path; a refusal answers
 * NO_PERMISSION with a remark naming the key, and nothing is written to
 * disk (docs/wire.md, "NameServer configuration"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "apogee_version.h"
#include "common/buf.h"
#include "common/hash.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "namesrv/namesrv_int.h"
#include "protocol/rcode.h"

/* Largest inflated register body we accept. */
#define MAX_INFLATED (64u * 1024 * 1024)

typedef void (*ns_handler_fn)(struct apg_namesrv *ns, struct apg_conn *c,
                              const struct apg_rcmd *req);

/* Sends a built response unless the request was oneway. */
static void send_resp(struct apg_conn *c, const struct apg_rcmd *req, const struct apg_rcmd *resp,
                      const char *body)
{
    if (!apg_rcmd_is_oneway(req))
        apg_conn_send(c, resp, (const uint8_t *)body, body ? (uint32_t)strlen(body) : 0);
}

static void reply_json(struct apg_conn *c, const struct apg_rcmd *req, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    if (body && !text) {
        apg_conn_reply(c, req, APG_RESP_SYSTEM_ERROR, "out of memory", NULL, 0);
        return;
    }
    apg_conn_reply(c, req, APG_RESP_SUCCESS, NULL, (const uint8_t *)text,
                   text ? (uint32_t)strlen(text) : 0);
    free(text);
}

/* Gets a required header field or replies with the error and returns NULL. */
static const char *need(struct apg_conn *c, const struct apg_rcmd *req, const char *key)
{
    const char *v = apg_rcmd_ext_get(req, key);
    if (!v) {
        char remark[160];
        snprintf(remark, sizeof(remark), "the request header field '%s' is missing", key);
        apg_conn_reply(c, req, APG_RESP_SYSTEM_ERROR, remark, NULL, 0);
    }
    return v;
}

static int64_t ext_i64(const struct apg_rcmd *req, const char *key, int64_t dflt)
{
    int64_t v;
    return apg_rcmd_ext_i64(req, key, &v) == APG_OK ? v : dflt;
}

/* ---- REGISTER_BROKER ---- */

static apg_err_t rd_i32(const uint8_t **p, const uint8_t *end, int32_t *v)
{
    if (end - *p < 4)
        return APG_EPROTO;
    *v = (int32_t)apg_be32(*p);
    *p += 4;
    return APG_OK;
}

/* Inflates a docs/wire.md §4.3 body and rebuilds it as RegisterBrokerBody JSON. */
json_t *apg_ns_register_body_inflate(const uint8_t *body, uint32_t len, char *err, size_t errlen)
{
    struct apg_buf out = APG_BUF_INIT;
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    if (inflateInit(&zs) != Z_OK) {
        apg_errf(APG_ENOMEM, err, errlen, "zlib init failed");
        return NULL;
    }
    zs.next_in = (Bytef *)body;
    zs.avail_in = len;
    int zr = Z_OK;
    json_t *root = NULL;
    while (zr != Z_STREAM_END) {
        if (apg_buf_reserve(&out, 65536) || out.b_len > MAX_INFLATED) {
            apg_errf(APG_ETOOBIG, err, errlen, "compressed body inflates to more than %u bytes",
                     MAX_INFLATED);
            goto out;
        }
        zs.next_out = out.b_data + out.b_len;
        zs.avail_out = (uInt)(out.b_cap - out.b_len);
        zr = inflate(&zs, Z_NO_FLUSH);
        out.b_len = out.b_cap - zs.avail_out;
        if (zr != Z_OK && zr != Z_STREAM_END) {
            apg_errf(APG_EPROTO, err, errlen, "compressed body is not a zlib stream (%s)",
                     zs.msg ? zs.msg : "truncated");
            goto out;
        }
        if (zr == Z_OK && zs.avail_in == 0 && zs.avail_out != 0) {
            apg_errf(APG_EPROTO, err, errlen, "compressed body is truncated");
            goto out;
        }
    }
    const uint8_t *p = out.b_data, *end = out.b_data + out.b_len;
    int32_t n;
    if (rd_i32(&p, end, &n) || n < 0 || end - p < n) {
        apg_errf(APG_EPROTO, err, errlen, "compressed body: bad dataVersion length");
        goto out;
    }
    char jerr[200];
    json_t *dv = apg_json_parse((const char *)p, (size_t)n, jerr, sizeof(jerr));
    p += n;
    if (!dv) {
        apg_errf(APG_EPROTO, err, errlen, "compressed body: dataVersion is not JSON: %s", jerr);
        goto out;
    }
    json_t *table = json_object();
    root = json_object();
    json_t *wrapper = json_object();
    json_object_set_new(wrapper, "dataVersion", dv);
    json_object_set_new(wrapper, "topicConfigTable", table);
    json_object_set_new(root, "topicConfigSerializeWrapper", wrapper);
    int32_t count;
    if (rd_i32(&p, end, &count) || count < 0) {
        apg_errf(APG_EPROTO, err, errlen, "compressed body: bad topic count");
        goto bad;
    }
    for (int32_t i = 0; i < count; i++) {
        if (rd_i32(&p, end, &n) || n < 0 || end - p < n) {
            apg_errf(APG_EPROTO, err, errlen, "compressed body: topic %d truncated", i);
            goto bad;
        }
        /* topicName SP read SP write SP perm SP filterType [SP attributes] */
        char line[1024];
        if ((size_t)n >= sizeof(line)) {
            apg_errf(APG_EPROTO, err, errlen, "compressed body: topic %d too long", i);
            goto bad;
        }
        memcpy(line, p, (size_t)n);
        line[n] = 0;
        p += n;
        char *save = NULL;
        char *name = strtok_r(line, " ", &save);
        char *rq = strtok_r(NULL, " ", &save);
        char *wq = strtok_r(NULL, " ", &save);
        char *perm = strtok_r(NULL, " ", &save);
        char *filter = strtok_r(NULL, " ", &save);
        if (!name || !rq || !wq || !perm || !filter) {
            apg_errf(APG_EPROTO, err, errlen, "compressed body: topic %d has fewer than 5 fields",
                     i);
            goto bad;
        }
        json_t *tc = json_object();
        json_object_set_new(tc, "topicName", json_string(name));
        json_object_set_new(tc, "readQueueNums", json_integer(atoi(rq)));
        json_object_set_new(tc, "writeQueueNums", json_integer(atoi(wq)));
        json_object_set_new(tc, "perm", json_integer(atoi(perm)));
        json_object_set_new(tc, "topicSysFlag", json_integer(0));
        json_object_set_new(table, name, tc);
    }
    /* filterServerList and the mapping section follow; the NameServer has
     * no use for them. */
    goto out;
bad:
    json_decref(root);
    root = NULL;
out:
    inflateEnd(&zs);
    apg_buf_free(&out);
    return root;
}

static int32_t json_i32(json_t *o, const char *key, int32_t dflt)
{
    json_t *v = json_object_get(o, key);
    if (json_is_integer(v))
        return (int32_t)json_integer_value(v);
    if (json_is_string(v))
        return atoi(json_string_value(v));
    return dflt;
}

static void h_register_broker(struct apg_namesrv *ns, struct apg_conn *c,
                              const struct apg_rcmd *req)
{
    const char *name = need(c, req, "brokerName");
    const char *addr = name ? need(c, req, "brokerAddr") : NULL;
    const char *cluster = addr ? need(c, req, "clusterName") : NULL;
    if (!cluster)
        return;
    char err[256];
    int32_t crc = (int32_t)ext_i64(req, "bodyCrc32", 0);
    if (crc != 0 && req->body_len > 0) {
        int32_t got = apg_rmq_crc32(req->body, req->body_len);
        if (got != crc) {
            apg_log_warn("namesrv",
                         "REGISTER_BROKER from %s (%s): body CRC32 %d does not match "
                         "header bodyCrc32 %d; rejected",
                         apg_conn_peer(c), name, got, crc);
            apg_conn_reply(c, req, APG_RESP_SYSTEM_ERROR, "crc32 not match", NULL, 0);
            return;
        }
    }
    json_t *body = NULL;
    if (req->body_len > 0) {
        if (apg_rcmd_ext_bool(req, "compressed", false)) {
            body = apg_ns_register_body_inflate(req->body, req->body_len, err, sizeof(err));
        } else {
            char jerr[200];
            body = apg_json_parse((const char *)req->body, req->body_len, jerr, sizeof(jerr));
            if (!body)
                snprintf(err, sizeof(err), "body is not valid JSON: %s", jerr);
        }
        if (!body) {
            apg_log_warn("namesrv", "REGISTER_BROKER from %s (%s) rejected: %s", apg_conn_peer(c),
                         name, err);
            apg_conn_reply(c, req, APG_RESP_SYSTEM_ERROR, err, NULL, 0);
            return;
        }
    }
    json_t *wrapper = json_object_get(body, "topicConfigSerializeWrapper");
    json_t *table = json_object_get(wrapper, "topicConfigTable");
    struct apg_route_reg r = {0};
    r.rr_cluster = cluster;
    r.rr_broker_name = name;
    r.rr_broker_addr = addr;
    r.rr_ha_addr = apg_rcmd_ext_get(req, "haServerAddr");
    r.rr_zone = apg_rcmd_ext_get(req, "__ZONE_NAME");
    r.rr_broker_id = ext_i64(req, "brokerId", 0);
    r.rr_timeout_ms = ext_i64(req, "heartbeatTimeoutMillis", 0);
    r.rr_enable_acting_master = apg_rcmd_ext_bool(req, "enableActingMaster", false);
    r.rr_conn = c;
    r.rr_has_dv = true; /* an absent body is data version 0/0, as in RocketMQ */
    apg_data_version_parse(json_object_get(wrapper, "dataVersion"), &r.rr_dv);

    size_t n = json_is_object(table) ? json_object_size(table) : 0;
    struct apg_route_topic_conf *tcs = n ? apg_calloc(n, sizeof(*tcs)) : NULL;
    if (n && !tcs) {
        json_decref(body);
        apg_conn_reply(c, req, APG_RESP_SYSTEM_ERROR, "out of memory", NULL, 0);
        return;
    }
    const char *tname;
    json_t *tc;
    size_t k = 0;
    json_object_foreach(table, tname, tc)
    {
        if (!json_is_object(tc))
            continue;
        json_t *nm = json_object_get(tc, "topicName");
        tcs[k].tc_name = json_is_string(nm) ? json_string_value(nm) : tname;
        tcs[k].tc_read_queues = json_i32(tc, "readQueueNums", 16);
        tcs[k].tc_write_queues = json_i32(tc, "writeQueueNums", 16);
        tcs[k].tc_perm = json_i32(tc, "perm", 6);
        tcs[k].tc_sys_flag = json_i32(tc, "topicSysFlag", 0);
        k++;
    }
    r.rr_topics = tcs;
    r.rr_n_topics = k;
    struct apg_route_reg_result res;
    apg_err_t e = apg_route_register(ns->ns_rt, &r, (int64_t)uv_now(apg_conn_uv_loop(c)), &res);
    apg_free(tcs);
    json_decref(body);
    if (e) {
        apg_conn_reply(c, req, APG_RESP_SYSTEM_ERROR,
                       e == APG_ENOMEM ? "out of memory" : "bad registration header", NULL, 0);
        return;
    }
    struct apg_rcmd resp;
    apg_rcmd_init_response(&resp, req, APG_RESP_SUCCESS, NULL);
    if (res.rs_master_addr[0])
        apg_rcmd_ext_add(&resp, "masterAddr", res.rs_master_addr);
    if (res.rs_ha_addr[0])
        apg_rcmd_ext_add(&resp, "haServerAddr", res.rs_ha_addr);
    json_t *kvl =
        ns->ns_return_order_conf ? apg_kv_list_json(ns->ns_kv, APG_NS_ORDER_TOPIC_CONFIG) : NULL;
    char *text = kvl ? json_dumps(kvl, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(kvl);
    send_resp(c, req, &resp, text);
    free(text);
}

static void h_unregister_broker(struct apg_namesrv *ns, struct apg_conn *c,
                                const struct apg_rcmd *req)
{
    const char *name = need(c, req, "brokerName");
    const char *addr = name ? need(c, req, "brokerAddr") : NULL;
    const char *cluster = addr ? need(c, req, "clusterName") : NULL;
    if (!cluster)
        return;
    apg_route_unregister(ns->ns_rt, cluster, name, addr, ext_i64(req, "brokerId", 0));
    apg_conn_reply(c, req, APG_RESP_SUCCESS, NULL, NULL, 0);
}

static void h_broker_heartbeat(struct apg_namesrv *ns, struct apg_conn *c,
                               const struct apg_rcmd *req)
{
    const char *cluster = need(c, req, "clusterName");
    const char *addr = cluster ? need(c, req, "brokerAddr") : NULL;
    if (!addr)
        return;
    apg_route_heartbeat(ns->ns_rt, cluster, addr, (int64_t)uv_now(apg_conn_uv_loop(c)));
    apg_conn_reply(c, req, APG_RESP_SUCCESS, NULL, NULL, 0);
}

static void h_query_data_version(struct apg_namesrv *ns, struct apg_conn *c,
                                 const struct apg_rcmd *req)
{
    const char *cluster = need(c, req, "clusterName");
    const char *addr = cluster ? need(c, req, "brokerAddr") : NULL;
    if (!addr)
        return;
    struct apg_data_version dv = {0}, stored;
    json_t *j =
        req->body_len ? apg_json_parse((const char *)req->body, req->body_len, NULL, 0) : NULL;
    apg_data_version_parse(j, &dv);
    json_decref(j);
    bool changed, has;
    apg_route_query_data_version(ns->ns_rt, cluster, addr, &dv,
                                 (int64_t)uv_now(apg_conn_uv_loop(c)), &changed, &has, &stored);
    struct apg_rcmd resp;
    apg_rcmd_init_response(&resp, req, APG_RESP_SUCCESS, NULL);
    apg_rcmd_ext_add(&resp, "changed", changed ? "true" : "false");
    char *text = NULL;
    if (has) {
        json_t *sj = apg_data_version_json(&stored);
        text = json_dumps(sj, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(sj);
    }
    send_resp(c, req, &resp, text);
    free(text);
}

/* ---- routes ---- */

static void h_get_route(struct apg_namesrv *ns, struct apg_conn *c, const struct apg_rcmd *req)
{
    const char *topic = need(c, req, "topic");
    if (!topic)
        return;
    json_t *route = apg_route_topic_json(ns->ns_rt, topic);
    if (!route) {
        char remark[512];
        snprintf(remark, sizeof(remark),
                 "No topic route info in name server for the topic: %s; create it with `apogee "
                 "admin updateTopic -c <cluster> -t %s` (mqadmin updateTopic takes the same "
                 "options) or start the broker with autoCreateTopicEnable=true",
                 topic, topic);
        apg_conn_reply(c, req, APG_RESP_TOPIC_NOT_EXIST, remark, NULL, 0);
        return;
    }
    if (ns->ns_order_enable) {
        const char *conf = apg_kv_get(ns->ns_kv, APG_NS_ORDER_TOPIC_CONFIG, topic);
        if (conf)
            json_object_set_new(route, "orderTopicConf", json_string(conf));
    }
    reply_json(c, req, route);
    json_decref(route);
}

static void h_cluster_info(struct apg_namesrv *ns, struct apg_conn *c, const struct apg_rcmd *req)
{
    json_t *j = apg_route_cluster_info_json(ns->ns_rt);
    reply_json(c, req, j);
    json_decref(j);
}

static void h_all_topics(struct apg_namesrv *ns, struct apg_conn *c, const struct apg_rcmd *req)
{
    if (!ns->ns_all_topic_list) {
        apg_conn_reply(c, req, APG_RESP_SYSTEM_ERROR,
                       "disable: the topic list is switched off on this NameServer "
                       "(enableAllTopicList=false)",
                       NULL, 0);
        return;
    }
    json_t *j = apg_route_topic_list_json(ns->ns_rt);
    reply_json(c, req, j);
    json_decref(j);
}

/* The topic-list switch of RocketMQ 5.x (enableTopicList): false answers
 * SYSTEM_ERROR "disable" and returns false. */
static bool topic_list_enabled(struct apg_namesrv *ns, struct apg_conn *c,
                               const struct apg_rcmd *req)
{
    if (!ns->ns_topic_list)
        apg_conn_reply(c, req, APG_RESP_SYSTEM_ERROR,
                       "disable: topic lists are switched off on this NameServer "
                       "(enableTopicList=false)",
                       NULL, 0);
    return ns->ns_topic_list;
}

static void h_topics_by_cluster(struct apg_namesrv *ns, struct apg_conn *c,
                                const struct apg_rcmd *req)
{
    if (!topic_list_enabled(ns, c, req))
        return;
    const char *cluster = need(c, req, "cluster");
    if (!cluster)
        return;
    json_t *j = apg_route_topics_by_cluster_json(ns->ns_rt, cluster);
    reply_json(c, req, j);
    json_decref(j);
}

static void h_system_topics(struct apg_namesrv *ns, struct apg_conn *c, const struct apg_rcmd *req)
{
    json_t *j = apg_route_system_topic_list_json(ns->ns_rt);
    reply_json(c, req, j);
    json_decref(j);
}

/* topicSysFlag bits of the unit lists. */
#define SYSFLAG_UNIT 0x1
#define SYSFLAG_UNIT_SUB 0x2

static void reply_flagged_topics(struct apg_namesrv *ns, struct apg_conn *c,
                                 const struct apg_rcmd *req, int32_t all, int32_t none)
{
    if (!topic_list_enabled(ns, c, req))
        return;
    json_t *j = apg_route_topics_by_flag_json(ns->ns_rt, all, none);
    reply_json(c, req, j);
    json_decref(j);
}

static void h_unit_topics(struct apg_namesrv *ns, struct apg_conn *c, const struct apg_rcmd *req)
{
    reply_flagged_topics(ns, c, req, SYSFLAG_UNIT, 0);
}

static void h_unit_sub_topics(struct apg_namesrv *ns, struct apg_conn *c,
                              const struct apg_rcmd *req)
{
    reply_flagged_topics(ns, c, req, SYSFLAG_UNIT_SUB, 0);
}

static void h_unit_sub_ununit_topics(struct apg_namesrv *ns, struct apg_conn *c,
                                     const struct apg_rcmd *req)
{
    reply_flagged_topics(ns, c, req, SYSFLAG_UNIT_SUB, SYSFLAG_UNIT);
}

static void h_delete_topic(struct apg_namesrv *ns, struct apg_conn *c, const struct apg_rcmd *req)
{
    const char *topic = need(c, req, "topic");
    if (!topic)
        return;
    const char *cluster = apg_rcmd_ext_get(req, "clusterName");
    int n = apg_route_delete_topic(ns->ns_rt, topic, cluster);
    apg_log_info("namesrv", "deleted topic %s from %d broker(s)%s%s, requested by %s", topic, n,
                 cluster && cluster[0] ? " of cluster " : "", cluster ? cluster : "",
                 apg_conn_peer(c));
    apg_conn_reply(c, req, APG_RESP_SUCCESS, NULL, NULL, 0);
}

/* ---- NameServer configuration ---- */

static void h_get_config(struct apg_namesrv *ns, struct apg_conn *c, const struct apg_rcmd *req)
{
    size_t len;
    char *text = apg_config_properties(ns->ns_cfg, &len);
    if (!text) {
        apg_conn_reply(c, req, APG_RESP_SYSTEM_ERROR, "out of memory", NULL, 0);
        return;
    }
    apg_conn_reply(c, req, APG_RESP_SUCCESS, NULL, (const uint8_t *)text, (uint32_t)len);
    apg_free(text);
}

static void h_update_config(struct apg_namesrv *ns, struct apg_conn *c, const struct apg_rcmd *req)
{
    char err[512];
    int changed = 0;
    apg_err_t e = apg_config_update_runtime(ns->ns_cfg, (const char *)req->body, req->body_len,
                                            &changed, err, sizeof(err));
    if (e) {
        apg_log_warn("namesrv", "UPDATE_NAMESRV_CONFIG from %s refused: %s", apg_conn_peer(c), err);
        apg_conn_reply(c, req, e == APG_EPERM ? APG_RESP_NO_PERMISSION : APG_RESP_SYSTEM_ERROR, err,
                       NULL, 0);
        return;
    }
    apg_ns_apply_config(ns);
    apg_log_info("namesrv", "UPDATE_NAMESRV_CONFIG from %s: %d key(s) changed (until restart)",
                 apg_conn_peer(c), changed);
    apg_conn_reply(c, req, APG_RESP_SUCCESS, NULL, NULL, 0);
}

static void h_member_group(struct apg_namesrv *ns, struct apg_conn *c, const struct apg_rcmd *req)
{
    json_t *j = apg_route_member_group_json(ns->ns_rt, apg_rcmd_ext_get(req, "clusterName"),
                                            apg_rcmd_ext_get(req, "brokerName"));
    reply_json(c, req, j);
    json_decref(j);
}

static void operate_perm(struct apg_namesrv *ns, struct apg_conn *c, const struct apg_rcmd *req,
                         bool wipe)
{
    const char *name = need(c, req, "brokerName");
    if (!name)
        return;
    int n = wipe ? apg_route_wipe_write_perm(ns->ns_rt, name)
                 : apg_route_add_write_perm(ns->ns_rt, name);
    apg_log_info("namesrv", "%s write permission of broker %s: %d topic(s), requested by %s",
                 wipe ? "wiped" : "restored", name, n, apg_conn_peer(c));
    char count[16];
    snprintf(count, sizeof(count), "%d", n);
    struct apg_rcmd resp;
    apg_rcmd_init_response(&resp, req, APG_RESP_SUCCESS, NULL);
    apg_rcmd_ext_add(&resp, wipe ? "wipeTopicCount" : "addTopicCount", count);
    send_resp(c, req, &resp, NULL);
}

static void h_wipe_perm(struct apg_namesrv *ns, struct apg_conn *c, const struct apg_rcmd *req)
{
    operate_perm(ns, c, req, true);
}

static void h_add_perm(struct apg_namesrv *ns, struct apg_conn *c, const struct apg_rcmd *req)
{
    operate_perm(ns, c, req, false);
}

/* ---- KV config ---- */

static void h_put_kv(struct apg_namesrv *ns, struct apg_conn *c, const struct apg_rcmd *req)
{
    const char *nsp = need(c, req, "namespace");
    const char *key = nsp ? need(c, req, "key") : NULL;
    const char *val = key ? need(c, req, "value") : NULL;
    if (!val)
        return;
    char err[256];
    if (apg_kv_put(ns->ns_kv, nsp, key, val, err, sizeof(err))) {
        apg_log_error("namesrv", "PUT_KV_CONFIG %s/%s: %s", nsp, key, err);
        apg_conn_reply(c, req, APG_RESP_SYSTEM_ERROR, err, NULL, 0);
        return;
    }
    apg_conn_reply(c, req, APG_RESP_SUCCESS, NULL, NULL, 0);
}

static void h_get_kv(struct apg_namesrv *ns, struct apg_conn *c, const struct apg_rcmd *req)
{
    const char *nsp = need(c, req, "namespace");
    const char *key = nsp ? need(c, req, "key") : NULL;
    if (!key)
        return;
    const char *v = apg_kv_get(ns->ns_kv, nsp, key);
    if (!v) {
        char remark[512];
        snprintf(remark, sizeof(remark), "No config item, Namespace: %s Key: %s", nsp, key);
        apg_conn_reply(c, req, APG_RESP_QUERY_NOT_FOUND, remark, NULL, 0);
        return;
    }
    struct apg_rcmd resp;
    apg_rcmd_init_response(&resp, req, APG_RESP_SUCCESS, NULL);
    apg_rcmd_ext_add(&resp, "value", v);
    send_resp(c, req, &resp, NULL);
}

static void h_delete_kv(struct apg_namesrv *ns, struct apg_conn *c, const struct apg_rcmd *req)
{
    const char *nsp = need(c, req, "namespace");
    const char *key = nsp ? need(c, req, "key") : NULL;
    if (!key)
        return;
    char err[256];
    if (apg_kv_delete(ns->ns_kv, nsp, key, err, sizeof(err))) {
        apg_conn_reply(c, req, APG_RESP_SYSTEM_ERROR, err, NULL, 0);
        return;
    }
    apg_conn_reply(c, req, APG_RESP_SUCCESS, NULL, NULL, 0);
}

static void h_kv_list(struct apg_namesrv *ns, struct apg_conn *c, const struct apg_rcmd *req)
{
    const char *nsp = need(c, req, "namespace");
    if (!nsp)
        return;
    json_t *j = apg_kv_list_json(ns->ns_kv, nsp);
    if (!j) {
        char remark[300];
        snprintf(remark, sizeof(remark), "No config item, Namespace: %s", nsp);
        apg_conn_reply(c, req, APG_RESP_QUERY_NOT_FOUND, remark, NULL, 0);
        return;
    }
    reply_json(c, req, j);
    json_decref(j);
}

/* ---- runtime info (Apogee only) ---- */

/* GET_BROKER_RUNTIME_INFO, which RocketMQ's NameServer does not serve:
 * the same {"table":{...}} shape as a broker's, with the NameServer's
 * refusal counters under the broker's key names (aclRefused*, closed*). */
static void h_runtime_info(struct apg_namesrv *ns, struct apg_conn *c, const struct apg_rcmd *req)
{
    json_t *t = json_object();
    char v[32];
#define NS_KV(key, fmt, val)                                                                       \
    do {                                                                                           \
        snprintf(v, sizeof(v), fmt, val);                                                          \
        json_object_set_new(t, key, json_string(v));                                               \
    } while (0)
    NS_KV("apogeeVersion", "%s", APOGEE_VERSION);
    NS_KV("brokerAddrCount", "%zu", apg_route_broker_count(ns->ns_rt));
    NS_KV("topicCount", "%zu", apg_route_topic_count(ns->ns_rt));
    struct apg_acl_counts ac; /* all 0 with aclEnable=false */
    apg_acl_counts(ns->ns_acl, &ac);
    long long acl_total = 0;
    for (int i = APG_ACL_OK + 1; i < APG_ACL_R_N; i++) {
        NS_KV(apg_acl_refusal_key((enum apg_acl_refusal)i), "%lld", ac.ac_refused[i]);
        acl_total += ac.ac_refused[i];
    }
    NS_KV("aclRefusedTotal", "%lld", acl_total);
    NS_KV("aclReloads", "%lld", ac.ac_reloads);
    NS_KV("aclReloadFailures", "%lld", ac.ac_reload_failures);
    uint64_t closed[APG_NET_REFUSAL_N];
    apg_net_server_refusals(ns->ns_srv, closed);
    for (int i = 0; i < APG_NET_REFUSAL_N; i++)
        NS_KV(apg_net_refusal_key((enum apg_net_refusal)i), "%llu", (unsigned long long)closed[i]);
#undef NS_KV
    json_t *body = json_pack("{s:o}", "table", t);
    reply_json(c, req, body);
    json_decref(body);
}

/* The dispatch table: every request code the NameServer answers. */
static const struct {
    int32_t code;
    ns_handler_fn fn;
} ns_handlers[] = {
    {APG_REQ_PUT_KV_CONFIG, h_put_kv},
    {APG_REQ_GET_KV_CONFIG, h_get_kv},
    {APG_REQ_DELETE_KV_CONFIG, h_delete_kv},
    {APG_REQ_REGISTER_BROKER, h_register_broker},
    {APG_REQ_UNREGISTER_BROKER, h_unregister_broker},
    {APG_REQ_GET_ROUTEINFO_BY_TOPIC, h_get_route},
    {APG_REQ_GET_BROKER_CLUSTER_INFO, h_cluster_info},
    {APG_REQ_WIPE_WRITE_PERM_OF_BROKER, h_wipe_perm},
    {APG_REQ_GET_ALL_TOPIC_LIST_FROM_NAMESERVER, h_all_topics},
    {APG_REQ_GET_KVLIST_BY_NAMESPACE, h_kv_list},
    {APG_REQ_GET_TOPICS_BY_CLUSTER, h_topics_by_cluster},
    {APG_REQ_QUERY_DATA_VERSION, h_query_data_version},
    {APG_REQ_ADD_WRITE_PERM_OF_BROKER, h_add_perm},
    {APG_REQ_GET_BROKER_MEMBER_GROUP, h_member_group},
    {APG_REQ_BROKER_HEARTBEAT, h_broker_heartbeat},
    {APG_REQ_DELETE_TOPIC_IN_NAMESRV, h_delete_topic},
    {APG_REQ_GET_SYSTEM_TOPIC_LIST_FROM_NS, h_system_topics},
    {APG_REQ_GET_UNIT_TOPIC_LIST, h_unit_topics},
    {APG_REQ_GET_HAS_UNIT_SUB_TOPIC_LIST, h_unit_sub_topics},
    {APG_REQ_GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST, h_unit_sub_ununit_topics},
    {APG_REQ_UPDATE_NAMESRV_CONFIG, h_update_config},
    {APG_REQ_GET_NAMESRV_CONFIG, h_get_config},
    {APG_REQ_GET_BROKER_RUNTIME_INFO, h_runtime_info},
};

void apg_namesrv_dispatch(struct apg_conn *c, const struct apg_rcmd *req, void *ud)
{
    struct apg_namesrv *ns = ud;
    if (apg_ns_acl_refused(ns, c, req))
        return;
    for (size_t i = 0; i < sizeof(ns_handlers) / sizeof(ns_handlers[0]); i++) {
        if (ns_handlers[i].code == req->code) {
            ns_handlers[i].fn(ns, c, req);
            return;
        }
    }
    char remark[64];
    snprintf(remark, sizeof(remark), " request type %d not supported", req->code);
    apg_log_debug("namesrv", "%s: request code %d not supported", apg_conn_peer(c), req->code);
    apg_conn_reply(c, req, APG_RESP_REQUEST_CODE_NOT_SUPPORTED, remark, NULL, 0);
}

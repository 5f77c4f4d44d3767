/* The broker's side of master/slave replication: which half of src/ha it
 * runs, where a slave's master is, and the metadata a slave copies.
 *
 * A master (ASYNC_MASTER or SYNC_MASTER) starts the HA listener on
 * haListenPort (0: listenPort + 1) and wakes it from the store's arrive
 * hook; under SYNC_MASTER the store holds each send's acknowledgement until
 * a slave's report covers it (store.h so_sync_replica; the answers are
 * mapped in broker_put.c). A slave
 * (SLAVE, brokerId > 0) marks its store as a replica (every local put is
 * refused from then on, so the log holds the master's bytes only), starts
 * the HA client and points it at haMasterAddress, or else at the
 * haServerAddr the NameServer answers its REGISTER_BROKER with
 * (apg_broker_ha_learned, from broker_register.c); the masterAddr of the
 * same answer is where the metadata comes from.
 *
 * Metadata (apg_broker_slave_sync, a job of the service thread, every
 * 10 s; before the NameServer names a master, the job registers again
 * every 2 s to learn it, where RocketMQ waits for the next 30 s
 * registration): the slave asks its master for GET_ALL_TOPIC_CONFIG,
 * GET_ALL_SUBSCRIPTIONGROUP_CONFIG and GET_ALL_CONSUMER_OFFSET and applies
 * what differs from its own tables (a topic or group the master has and
 * the slave lacks or holds otherwise is put; consumer offsets are copied
 * over the slave's, as RocketMQ's SlaveSynchronize does), and
 * GET_ALL_DELAY_OFFSET for the delay levels' progress (kept in the slave's
 * delayOffset.json; its delivery thread does not run). A topic or group
 * the master's answer no longer lists is deleted on the slave, so both
 * tables follow the master's as RocketMQ's slave replaces them; a request
 * that failed or did not parse deletes nothing. The master answers
 * GET_ALL_DELAY_OFFSET here (apg_broker_proc_delay_offsets).
 *
 * Threads: start and stop on the control thread; apg_broker_ha_learned and
 * apg_broker_slave_sync on the service thread; apg_broker_ha_master_addr
 * anywhere (br_ha_lock). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_rt.h"
#include "broker/schedule/schedule.h"
#include "common/json.h"
#include "protocol/sign.h"
#include "common/log.h"
#include "ha/ha.h"

#define SUB "broker"

apg_err_t apg_broker_ha_start(struct apg_broker *b, char *err, size_t errlen)
{
    const struct apg_config *cfg = b->br_cfg;
    int hb = (int)apg_cfg_int(cfg, APG_CFG_haSendHeartbeatInterval);
    int hk = (int)apg_cfg_int(cfg, APG_CFG_haHousekeepingInterval);
    if (b->br_slave) {
        apg_store_set_replica(b->br_store, true);
        struct apg_ha_client_opts o = {.hc_heartbeat_ms = hb, .hc_housekeeping_ms = hk};
        apg_err_t rc = apg_ha_client_start(b->br_store, &o, &b->br_ha_client, err, errlen);
        if (rc)
            return rc;
        const char *fixed = apg_cfg_str(cfg, APG_CFG_haMasterAddress);
        if (fixed && fixed[0])
            apg_ha_client_set_master(b->br_ha_client, fixed);
        apg_log_info(SUB,
                     "slave %s (brokerId %lld): copying the commit log of %s; sends are refused",
                     b->br_name, (long long)b->br_broker_id,
                     fixed && fixed[0] ? fixed : "the master the NameServer names");
        return APG_OK;
    }
    /* `apogee standalone` is one master with nobody to replicate to. */
    if (apg_config_role(cfg) == APG_ROLE_STANDALONE)
        return APG_OK;
    struct apg_ha_master_opts o = {
        .hm_host = apg_cfg_str(cfg, APG_CFG_bindAddress),
        .hm_port = b->br_ha_port,
        .hm_heartbeat_ms = hb,
        .hm_housekeeping_ms = hk,
        .hm_batch = (uint32_t)apg_cfg_int(cfg, APG_CFG_haTransferBatchSize),
    };
    apg_err_t rc = apg_ha_master_start(b->br_store, &o, &b->br_ha_master, err, errlen);
    /* The derived port (listenPort + 1) may be another broker's listenPort on
     * this host (brokers on adjacent ports, as Apogee ran them before it had
     * replication): an ASYNC_MASTER then runs without slaves and says so. A
     * port asked for, or a SYNC_MASTER (which answers sends by its slaves),
     * must listen. */
    bool sync_master = strcmp(apg_cfg_str(cfg, APG_CFG_brokerRole), "SYNC_MASTER") == 0;
    if (rc && apg_cfg_int(cfg, APG_CFG_haListenPort) == 0 && !sync_master) {
        apg_log_warn(SUB,
                     "no slave can connect to this master: %s; set haListenPort to a free port "
                     "to replicate",
                     err);
        return APG_OK;
    }
    return rc;
}

void apg_broker_ha_stop(struct apg_broker *b)
{
    apg_ha_master_stop(b->br_ha_master);
    b->br_ha_master = NULL;
    apg_ha_client_stop(b->br_ha_client);
    b->br_ha_client = NULL;
}

void apg_broker_ha_learned(struct apg_broker *b, const char *master_addr, const char *ha_addr)
{
    if (!b->br_slave)
        return;
    pthread_mutex_lock(&b->br_ha_lock);
    bool changed = strcmp(b->br_master_addr, master_addr ? master_addr : "") != 0;
    snprintf(b->br_master_addr, sizeof(b->br_master_addr), "%s", master_addr ? master_addr : "");
    pthread_mutex_unlock(&b->br_ha_lock);
    if (changed && master_addr && master_addr[0])
        apg_log_info(SUB, "slave: the NameServer names %s as the master of %s", master_addr,
                     b->br_name);
    const char *fixed = apg_cfg_str(b->br_cfg, APG_CFG_haMasterAddress);
    if ((!fixed || !fixed[0]) && ha_addr && ha_addr[0])
        apg_ha_client_set_master(b->br_ha_client, ha_addr);
}

void apg_broker_ha_master_addr(struct apg_broker *b, char *out, size_t n)
{
    pthread_mutex_lock(&b->br_ha_lock);
    snprintf(out, n, "%s", b->br_master_addr);
    pthread_mutex_unlock(&b->br_ha_lock);
}

/* One GET_ALL_* request to the master; returns the parsed body (owned) or
 * NULL after logging why. */
static json_t *ask_master(struct apg_broker *b, const char *addr, int32_t code, const char *what)
{
    struct apg_rcmd req;
    apg_rcmd_init_request(&req, code, 0, APG_SER_JSON);
    char sig[APG_SIGN_LEN]; /* the master's ACL asks an admin account of GET_ALL_* */
    apg_broker_sign(b, &req, sig);
    struct apg_rcmd_copy *resp = NULL;
    char err[256] = "";
    apg_err_t e =
        apg_net_client_call_sync(b->br_cli, addr, &req, NULL, 0, 3000, &resp, err, sizeof(err));
    json_t *j = NULL;
    if (e)
        apg_log_warn(SUB, "slave: %s from master %s failed: %s", what, addr,
                     err[0] ? err : apg_strerror(e));
    else if (resp->rc_cmd.code != 0)
        apg_log_warn(SUB, "slave: master %s refused %s: code %d %s", addr, what, resp->rc_cmd.code,
                     resp->rc_cmd.remark ? resp->rc_cmd.remark : "");
    else if (!(j = apg_json_parse((const char *)resp->rc_cmd.body, resp->rc_cmd.body_len, err,
                                  sizeof(err))))
        apg_log_warn(SUB, "slave: %s from master %s: %s", what, addr, err);
    apg_rcmd_copy_free(resp);
    return j;
}

/* Deletes from a slave table every name in `names` (NUL-separated, the
 * table's names before this sync) that `master_table`, the master's parsed
 * table, lacks; returns how many went. Only a master answer that parsed
 * into an object gets here: a failed or malformed one must not empty the
 * slave's tables. */
static int drop_absent(const struct apg_buf *names, const json_t *master_table,
                       bool (*drop)(void *tbl, const char *name), void *tbl)
{
    int n = 0;
    for (size_t at = 0; at < names->b_len;) {
        const char *name = (const char *)names->b_data + at;
        at += strlen(name) + 1;
        if (!json_object_get(master_table, name) && drop(tbl, name))
            n++;
    }
    return n;
}

/* The config entry only, through the table's delete (journal and hook see
 * it): as RocketMQ's slave, the topic's commit-log records, consume queues
 * and offsets stay (apg_broker_topic_delete would drop them). */
static bool drop_topic(void *tbl, const char *name)
{
    return apg_topics_delete(tbl, name);
}

static bool drop_group(void *tbl, const char *name)
{
    return apg_groups_delete(tbl, name);
}

static void sync_topics(struct apg_broker *b, const char *addr)
{
    json_t *j = ask_master(b, addr, APG_REQ_GET_ALL_TOPIC_CONFIG, "GET_ALL_TOPIC_CONFIG");
    const char *name;
    json_t *v;
    int n = 0;
    json_object_foreach(json_object_get(j, "topicConfigTable"), name, v)
    {
        struct apg_topic_cfg tc, have;
        char err[160];
        if (apg_topic_cfg_decode(v, &tc, err, sizeof(err)))
            continue;
        if (!tc.tc_name[0])
            snprintf(tc.tc_name, sizeof(tc.tc_name), "%s", name);
        if (apg_topics_get(b->br_topics, tc.tc_name, &have) &&
            have.tc_read_queues == tc.tc_read_queues &&
            have.tc_write_queues == tc.tc_write_queues && have.tc_perm == tc.tc_perm &&
            have.tc_sysflag == tc.tc_sysflag && have.tc_filter == tc.tc_filter &&
            have.tc_order == tc.tc_order)
            continue;
        if (apg_topics_put(b->br_topics, &tc) == APG_OK)
            n++;
    }
    if (n)
        apg_log_info(SUB, "slave: %d topic(s) copied from master %s", n, addr);
    const json_t *table = json_object_get(j, "topicConfigTable");
    struct apg_buf names = APG_BUF_INIT;
    if (json_is_object(table) && apg_topics_names(b->br_topics, &names) == APG_OK &&
        (n = drop_absent(&names, table, drop_topic, b->br_topics)) > 0)
        apg_log_info(SUB, "slave: %d topic(s) removed, as master %s no longer has them", n, addr);
    apg_buf_free(&names);
    json_decref(j);
}

static void sync_groups(struct apg_broker *b, const char *addr)
{
    json_t *j = ask_master(b, addr, APG_REQ_GET_ALL_SUBSCRIPTIONGROUP_CONFIG,
                           "GET_ALL_SUBSCRIPTIONGROUP_CONFIG");
    const char *name;
    json_t *v;
    int n = 0;
    json_object_foreach(json_object_get(j, "subscriptionGroupTable"), name, v)
    {
        struct apg_group_cfg gc, have;
        char err[160];
        if (apg_group_cfg_decode(v, &gc, err, sizeof(err)))
            continue;
        if (!gc.gc_name[0])
            snprintf(gc.gc_name, sizeof(gc.gc_name), "%s", name);
        if (apg_groups_get(b->br_groups, gc.gc_name, &have) &&
            have.gc_consume_enable == gc.gc_consume_enable &&
            have.gc_consume_from_min_enable == gc.gc_consume_from_min_enable &&
            have.gc_consume_broadcast_enable == gc.gc_consume_broadcast_enable &&
            have.gc_notify_ids_changed == gc.gc_notify_ids_changed &&
            have.gc_retry_queues == gc.gc_retry_queues &&
            have.gc_retry_max_times == gc.gc_retry_max_times &&
            have.gc_broker_id == gc.gc_broker_id &&
            have.gc_which_broker_slow == gc.gc_which_broker_slow)
            continue;
        if (apg_groups_put(b->br_groups, &gc) == APG_OK)
            n++;
    }
    if (n)
        apg_log_info(SUB, "slave: %d subscription group(s) copied from master %s", n, addr);
    const json_t *table = json_object_get(j, "subscriptionGroupTable");
    struct apg_buf names = APG_BUF_INIT;
    if (json_is_object(table) && apg_groups_names(b->br_groups, &names) == APG_OK &&
        (n = drop_absent(&names, table, drop_group, b->br_groups)) > 0)
        apg_log_info(SUB,
                     "slave: %d subscription group(s) removed, as master %s no longer has them", n,
                     addr);
    apg_buf_free(&names);
    json_decref(j);
}

void apg_broker_proc_delay_offsets(struct apg_broker *b, struct apg_conn *c,
                                   const struct apg_rcmd *req)
{
    if (apg_rcmd_is_oneway(req))
        return;
    struct apg_buf out = APG_BUF_INIT;
    apg_err_t e = apg_buf_append_str(&out, "{\"offsetTable\":{");
    int n = apg_schedule_max_level(b->br_schedule);
    for (int lv = 1; !e && lv <= n; lv++)
        e = apg_buf_printf(&out, "%s\"%d\":%lld", lv > 1 ? "," : "", lv,
                           (long long)apg_schedule_offset(b->br_schedule, lv));
    if (!e)
        e = apg_buf_append_str(&out, "}}");
    if (e)
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR, "out of memory");
    else
        apg_conn_reply(c, req, APG_RESP_SUCCESS, NULL, out.b_data, (uint32_t)out.b_len);
    apg_buf_free(&out);
}

static void sync_delay_offsets(struct apg_broker *b, const char *addr)
{
    json_t *j = ask_master(b, addr, APG_REQ_GET_ALL_DELAY_OFFSET, "GET_ALL_DELAY_OFFSET");
    if (!j)
        return;
    int64_t off[APG_DELAY_LEVELS_MAX];
    for (int i = 0; i < APG_DELAY_LEVELS_MAX; i++)
        off[i] = -1;
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(j, "offsetTable"), k, v)
    {
        int lv = atoi(k);
        if (lv >= 1 && lv <= APG_DELAY_LEVELS_MAX)
            off[lv - 1] = apg_json_i64(v, -1);
    }
    apg_schedule_adopt(b->br_schedule, off, APG_DELAY_LEVELS_MAX);
    json_decref(j);
}

static void sync_offsets(struct apg_broker *b, const char *addr)
{
    json_t *j = ask_master(b, addr, APG_REQ_GET_ALL_CONSUMER_OFFSET, "GET_ALL_CONSUMER_OFFSET");
    const char *key;
    json_t *queues;
    json_object_foreach(json_object_get(j, "offsetTable"), key, queues)
    {
        const char *at = strrchr(key, '@');
        if (!at || at == key || !json_is_object(queues))
            continue;
        char topic[APG_NAME_CAP];
        snprintf(topic, sizeof(topic), "%.*s", (int)(at - key), key);
        const char *q;
        json_t *off;
        json_object_foreach(queues, q, off)
        {
            int64_t v = apg_json_i64(off, -1);
            int32_t qid = (int32_t)strtol(q, NULL, 10);
            if (v >= 0 && apg_offsets_query(b->br_offsets, at + 1, topic, qid) != v)
                apg_offsets_commit(b->br_offsets, at + 1, topic, qid, v);
        }
    }
    json_decref(j);
}

void apg_broker_slave_sync(struct apg_broker *b, int64_t now_ms)
{
    if (!b->br_slave)
        return;
    char addr[128];
    apg_broker_ha_master_addr(b, addr, sizeof(addr));
    if (!addr[0]) {
        apg_broker_register(b, false); /* the answer names the master once it registered */
        return;
    }
    if (now_ms - b->br_slave_synced_ms < 10000)
        return;
    b->br_slave_synced_ms = now_ms;
    sync_topics(b, addr);
    sync_groups(b, addr);
    sync_offsets(b, addr);
    sync_delay_offsets(b, addr);
}

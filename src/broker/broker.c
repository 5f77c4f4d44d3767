/* Broker entry points: start-up, stop and the request dispatch table.
 *
 * apg_broker_start opens the store and the config tables, picks the
 * advertised address (brokerIP1, an IPv4 address or a DNS name that is
 * advertised as is and resolved once, at start, for the STOREHOST field and
 * offset msgIds; without it, the bindAddress when that is one IPv4
 * address, else the first non-loopback IPv4 (standalone: 127.0.0.1 when
 * there is none); `apogee
 * broker` refuses to advertise a loopback address unless
 * allowLoopbackAdvertise=true, because remote clients could not reach it),
 * starts the event loops and registers with every NameServer before
 * returning.
 *
 * This file only calls down: the processors (one table, indexed by request
 * code), the per-loop state of the write service, send and pull paths, the
 * table listener (broker_tables.c), registration (broker_register.c) and
 * the service thread (broker_service.c). No other broker file calls into
 * it.
 *
 * Threads: the loops run the processors; the service thread runs the
 * periodic jobs. apg_broker_stop unregisters, stops the loops, persists
 * everything and closes the store. */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#include "broker/acl/acl_broker.h"
#include "broker/broker_admin_stats.h"
#include "broker/broker_rt.h" /* also brings netdb.h (getaddrinfo) through uv.h */
#include "broker/pop/pop.h"
#include "broker/schedule/schedule.h"
#include "broker/txn/txn.h"
#include "broker/timer/timer.h"
#include "common/log.h"
#include "common/mem.h"
#include "ha/ha.h"
#include "net/tls.h"

/* ---- dispatch ----------------------------------------------------------- */

struct proc_ent {
    int32_t code;
    apg_broker_proc_fn fn;
};

static const struct proc_ent proc_table[] = {
    {APG_REQ_SEND_MESSAGE, apg_broker_proc_send},
    {APG_REQ_SEND_MESSAGE_V2, apg_broker_proc_send},
    {APG_REQ_SEND_BATCH_MESSAGE, apg_broker_proc_send},
    {APG_REQ_CONSUMER_SEND_MSG_BACK, apg_broker_proc_send_back},
    {APG_REQ_END_TRANSACTION, apg_broker_proc_end_txn},
    {APG_REQ_PULL_MESSAGE, apg_broker_proc_pull},
    {APG_REQ_LITE_PULL_MESSAGE, apg_broker_proc_pull},
    {APG_REQ_QUERY_CONSUMER_OFFSET, apg_broker_proc_query_offset},
    {APG_REQ_UPDATE_CONSUMER_OFFSET, apg_broker_proc_update_offset},
    {APG_REQ_GET_MAX_OFFSET, apg_broker_proc_queue_bounds},
    {APG_REQ_GET_MIN_OFFSET, apg_broker_proc_queue_bounds},
    {APG_REQ_SEARCH_OFFSET_BY_TIMESTAMP, apg_broker_proc_queue_bounds},
    {APG_REQ_GET_EARLIEST_MSG_STORETIME, apg_broker_proc_queue_bounds},
    {APG_REQ_VIEW_MESSAGE_BY_ID, apg_broker_proc_view_msg},
    {APG_REQ_QUERY_MESSAGE, apg_broker_proc_query_msg},
    {APG_REQ_GET_ALL_CONSUMER_OFFSET, apg_broker_proc_all_offsets},
    {APG_REQ_GET_ALL_DELAY_OFFSET, apg_broker_proc_delay_offsets},
    {APG_REQ_GET_BROKER_RUNTIME_INFO, apg_broker_proc_runtime_info},
    {APG_REQ_HEART_BEAT, apg_broker_proc_client},
    {APG_REQ_UNREGISTER_CLIENT, apg_broker_proc_client},
    {APG_REQ_GET_CONSUMER_LIST_BY_GROUP, apg_broker_proc_client},
    {APG_REQ_CHECK_CLIENT_CONFIG, apg_broker_proc_check_client_config},
    {APG_REQ_LOCK_BATCH_MQ, apg_broker_proc_lock},
    {APG_REQ_UNLOCK_BATCH_MQ, apg_broker_proc_lock},
    {APG_REQ_UPDATE_AND_CREATE_TOPIC, apg_broker_proc_admin},
    {APG_REQ_DELETE_TOPIC_IN_BROKER, apg_broker_proc_admin},
    {APG_REQ_GET_ALL_TOPIC_CONFIG, apg_broker_proc_admin},
    {APG_REQ_UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, apg_broker_proc_admin},
    {APG_REQ_DELETE_SUBSCRIPTIONGROUP, apg_broker_proc_admin},
    {APG_REQ_GET_ALL_SUBSCRIPTIONGROUP_CONFIG, apg_broker_proc_admin},
    {APG_REQ_GET_CONSUME_STATS, apg_broker_proc_admin_stats},
    {APG_REQ_GET_TOPIC_STATS_INFO, apg_broker_proc_admin_stats},
    {APG_REQ_GET_CONSUMER_CONNECTION_LIST, apg_broker_proc_admin_stats},
    {APG_REQ_GET_PRODUCER_CONNECTION_LIST, apg_broker_proc_admin_stats},
    {APG_REQ_INVOKE_BROKER_TO_RESET_OFFSET, apg_broker_proc_admin_reset},
    {APG_REQ_GET_CONSUMER_RUNNING_INFO, apg_broker_proc_admin_reset},
    {APG_REQ_CONSUME_MESSAGE_DIRECTLY, apg_broker_proc_admin_reset},
    {APG_REQ_VIEW_BROKER_STATS_DATA, apg_broker_proc_admin_stats},
    {APG_REQ_QUERY_TOPIC_CONSUME_BY_WHO, apg_broker_proc_admin_info},
    {APG_REQ_GET_SYSTEM_TOPIC_LIST_FROM_BROKER, apg_broker_proc_admin_info},
    {APG_REQ_GET_BROKER_CONSUME_STATS, apg_broker_proc_admin_info},
    {APG_REQ_QUERY_CONSUME_QUEUE, apg_broker_proc_admin_cq},
    {APG_REQ_GET_BROKER_CONFIG, apg_broker_proc_admin_config},
    {APG_REQ_UPDATE_BROKER_CONFIG, apg_broker_proc_admin_config},
    {APG_REQ_GET_ALL_PRODUCER_INFO, apg_broker_proc_admin_stats},
    {APG_REQ_CLEAN_EXPIRED_CONSUMEQUEUE, apg_broker_proc_admin_store},
    {APG_REQ_CLEAN_UNUSED_TOPIC, apg_broker_proc_admin_store},
    {APG_REQ_DELETE_EXPIRED_COMMITLOG, apg_broker_proc_admin_store},
    {APG_REQ_UPDATE_AND_CREATE_ACL_CONFIG, apg_broker_proc_acl_admin},
    {APG_REQ_DELETE_ACL_CONFIG, apg_broker_proc_acl_admin},
    {APG_REQ_GET_BROKER_CLUSTER_ACL_INFO, apg_broker_proc_acl_admin},
    {APG_REQ_UPDATE_GLOBAL_WHITE_ADDRS_CONFIG, apg_broker_proc_acl_admin},
    {APG_REQ_POP_MESSAGE, apg_broker_proc_pop},
    {APG_REQ_ACK_MESSAGE, apg_broker_proc_pop},
    {APG_REQ_CHANGE_MESSAGE_INVISIBLETIME, apg_broker_proc_pop},
    {APG_REQ_NOTIFICATION, apg_broker_proc_pop},
};

#define N_PROCS (sizeof(proc_table) / sizeof(proc_table[0]))

/* The slot of code in proc_table, N_PROCS when the broker does not serve it. */
static size_t lookup(int32_t code)
{
    for (size_t i = 0; i < N_PROCS; i++)
        if (proc_table[i].code == code)
            return i;
    return N_PROCS;
}

const int64_t apg_rpc_bucket_ms[APG_RPC_BUCKETS - 1] = {1, 3, 5, 7, 10, 100, 1000, 2000, 3000};

int apg_broker_rpc_slots(void)
{
    return (int)N_PROCS + 1;
}

int32_t apg_broker_rpc_code(int i)
{
    return i >= 0 && (size_t)i < N_PROCS ? proc_table[i].code : -1;
}

void apg_broker_rpc_sum(const struct apg_broker *b, int i, uint64_t n[APG_RPC_BUCKETS],
                        uint64_t *sum_us)
{
    for (int l = 0; l < b->br_nloops; l++) {
        const struct apg_rpc_hist *h = b->br_loops[l].bl_rpc;
        if (!h)
            continue;
        for (int k = 0; k < APG_RPC_BUCKETS; k++)
            n[k] += atomic_load_explicit(&h[i].rh_n[k], memory_order_relaxed);
        *sum_us += atomic_load_explicit(&h[i].rh_sum_us, memory_order_relaxed);
    }
}

/* One observation of ns nanoseconds in h (the loop thread is its only writer). */
static void rpc_note(struct apg_rpc_hist *h, uint64_t ns)
{
    int k = 0; /* the first bucket whose bound (le) holds ns */
    while (k < APG_RPC_BUCKETS - 1 && ns > (uint64_t)apg_rpc_bucket_ms[k] * 1000000)
        k++;
    atomic_store_explicit(&h->rh_n[k], atomic_load_explicit(&h->rh_n[k], memory_order_relaxed) + 1,
                          memory_order_relaxed);
    atomic_store_explicit(&h->rh_sum_us,
                          atomic_load_explicit(&h->rh_sum_us, memory_order_relaxed) + ns / 1000,
                          memory_order_relaxed);
}

/* A slave's log holds its master's records only: every request that would
 * store one is answered SERVICE_NOT_AVAILABLE, the code RocketMQ's slave
 * answers a put with (its store refuses "slave mode" puts). */
static bool refused_by_slave(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req)
{
    switch (req->code) {
    case APG_REQ_SEND_MESSAGE:
    case APG_REQ_SEND_MESSAGE_V2:
    case APG_REQ_SEND_BATCH_MESSAGE:
    case APG_REQ_CONSUMER_SEND_MSG_BACK:
    case APG_REQ_END_TRANSACTION:
        break;
    default:
        return false;
    }
    char master[128], remark[1024];
    apg_broker_ha_master_addr(b, master, sizeof(master));
    snprintf(remark, sizeof(remark),
             "service not available now: broker %s is a slave (brokerRole=SLAVE, brokerId=%lld) "
             "and stores only what its master sends; messages are put to the master "
             "(brokerId 0 of %s%s%s)",
             b->br_addr, (long long)b->br_broker_id, b->br_name, master[0] ? ", " : "", master);
    apg_broker_refuse(b, c, req, APG_RESP_SERVICE_NOT_AVAILABLE, remark);
    return true;
}

static void on_request(struct apg_conn *c, const struct apg_rcmd *req, void *ud)
{
    struct apg_broker *b = ud;
    uint64_t t0 = uv_hrtime();
    size_t slot = lookup(req->code);
    apg_broker_proc_fn fn = slot < N_PROCS ? proc_table[slot].fn : NULL;
    struct apg_bloop *bl = &b->br_loops[apg_conn_loop_index(c)];
    if (apg_broker_put_pending(bl) && req->code != APG_REQ_SEND_MESSAGE &&
        req->code != APG_REQ_SEND_MESSAGE_V2)
        apg_broker_put_flush(b, bl);
    if (b->br_acl && apg_broker_acl_refused(b, c, req))
        return;
    if (b->br_slave && refused_by_slave(b, c, req))
        return;
    if (fn) {
        fn(b, c, req);
        if (bl->bl_rpc)
            rpc_note(&bl->bl_rpc[slot], uv_hrtime() - t0);
        return;
    }
    char remark[160];
    const char *name = apg_req_code_name(req->code);
    snprintf(remark, sizeof(remark), " request type %d%s%s%s not supported", req->code,
             name ? " (" : "", name ? name : "", name ? ")" : "");
    apg_broker_refuse(b, c, req, APG_RESP_REQUEST_CODE_NOT_SUPPORTED, remark);
}

static void on_read_end(struct apg_conn *c, void *ud)
{
    struct apg_broker *b = ud;
    apg_broker_put_flush(b, &b->br_loops[apg_conn_loop_index(c)]);
}

static void on_close(struct apg_conn *c, void *ud)
{
    struct apg_broker *b = ud;
    apg_clients_conn_closed(b, c);
    apg_locks_drop_conn(b->br_locks, c);
    apg_broker_pull_conn_closed(&b->br_loops[apg_conn_loop_index(c)], c);
}

static void on_loop_start(int idx, uv_loop_t *loop, void *ud)
{
    struct apg_broker *b = ud;
    apg_broker_pull_loop_start(&b->br_loops[idx], loop);
}

static void on_loop_stop(int idx, uv_loop_t *loop, void *ud)
{
    (void)loop;
    struct apg_broker *b = ud;
    apg_broker_put_loop_stop(&b->br_loops[idx]);
    apg_broker_send_loop_stop(&b->br_loops[idx]);
    apg_broker_pull_loop_stop(&b->br_loops[idx]);
}

/* ---- table changes ------------------------------------------------------ */

/* The tables' change hooks (any thread, table lock released): a change is
 * written by the table writer; a topic change also re-registers with the
 * NameServers, whose route data it is. */
static void on_topics_changed(void *ud)
{
    apg_broker_tables_kick(ud);
    apg_broker_service_kick(ud, APG_BSVC_REGISTER);
}

static void on_groups_changed(void *ud)
{
    apg_broker_tables_kick(ud);
}

/* The store's arrive hook: wakes parked pulls, and the delivery thread for
 * a delay level that had nothing pending. */
static void on_arrive(void *ud, const char *topic, size_t topic_len, int32_t queue_id,
                      int64_t new_max_offset)
{
    struct apg_broker *b = ud;
    apg_ha_master_notify(b->br_ha_master);
    apg_broker_pull_arrive(ud, topic, topic_len, queue_id, new_max_offset);
    if (topic_len == APG_SCHEDULE_TOPIC_LEN &&
        memcmp(topic, APG_SCHEDULE_TOPIC, APG_SCHEDULE_TOPIC_LEN) == 0)
        apg_schedule_arrive(b->br_schedule, queue_id);
    else if (topic_len == APG_TIMER_TOPIC_LEN &&
             memcmp(topic, APG_TIMER_TOPIC, APG_TIMER_TOPIC_LEN) == 0)
        apg_timer_arrive(b->br_timer);
}

/* ---- start / stop ------------------------------------------------------- */

static bool is_loopback(const char *ip)
{
    return strncmp(ip, "127.", 4) == 0 || strcmp(ip, "::1") == 0 || strcmp(ip, "localhost") == 0;
}

static bool first_public_ipv4(char *out, size_t n)
{
    struct ifaddrs *ifs, *i;
    if (getifaddrs(&ifs) != 0)
        return false;
    bool found = false;
    for (i = ifs; i && !found; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || (i->ifa_flags & IFF_LOOPBACK) ||
            !(i->ifa_flags & IFF_UP))
            continue;
        struct sockaddr_in *sin = (struct sockaddr_in *)i->ifa_addr;
        found = inet_ntop(AF_INET, &sin->sin_addr, out, (socklen_t)n) != NULL;
    }
    freeifaddrs(ifs);
    return found;
}

/* Resolves a host name to its first IPv4 address (network order). */
static apg_err_t resolve_ipv4(const char *name, uint8_t out[4], char *err, size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(name, NULL, &hints, &res);
    if (rc != 0 || !res)
        return apg_errf(APG_ECONFIG, err, errlen,
                        "brokerIP1=%s does not resolve to an IPv4 address (%s); the broker needs "
                        "one for STOREHOST and message ids: fix the name (DNS, /etc/hosts) or set "
                        "brokerIP1 to a numeric IPv4 address",
                        name, rc ? gai_strerror(rc) : "no address");
    memcpy(out, &((struct sockaddr_in *)res->ai_addr)->sin_addr, 4);
    freeaddrinfo(res);
    return APG_OK;
}

static apg_err_t pick_address(struct apg_broker *b, char *err, size_t errlen)
{
    const struct apg_config *cfg = b->br_cfg;
    bool standalone = apg_config_role(cfg) == APG_ROLE_STANDALONE;
    const char *ip1 = apg_cfg_str(cfg, APG_CFG_brokerIP1);
    const char *bind = apg_cfg_str(cfg, APG_CFG_bindAddress);
    uint8_t bind4[4];
    char ip[96];
    if (ip1 && ip1[0])
        snprintf(ip, sizeof(ip), "%s", ip1);
    else if (inet_pton(AF_INET, bind, bind4) == 1 && !apg_config_bind_wildcard(cfg))
        snprintf(ip, sizeof(ip), "%s", bind); /* the one address the socket answers on */
    else if (standalone && !first_public_ipv4(ip, sizeof(ip)))
        snprintf(ip, sizeof(ip), "127.0.0.1");
    else if (!standalone && !first_public_ipv4(ip, sizeof(ip)))
        return apg_errf(APG_ECONFIG, err, errlen,
                        "no non-loopback IPv4 address found to advertise; set brokerIP1 to the "
                        "address clients use to reach this broker");
    /* STOREHOST and offset msgIds need a numeric IPv4: a DNS name is
     * resolved once here; the name itself is what we advertise. */
    char num[INET_ADDRSTRLEN] = "";
    memset(&b->br_store_host, 0, sizeof(b->br_store_host));
    if (inet_pton(AF_INET, ip, b->br_store_host.h_ip) == 1) {
        inet_ntop(AF_INET, b->br_store_host.h_ip, num, sizeof(num));
    } else {
        apg_err_t e = resolve_ipv4(ip, b->br_store_host.h_ip, err, errlen);
        if (e)
            return e;
        inet_ntop(AF_INET, b->br_store_host.h_ip, num, sizeof(num));
        apg_log_info("broker",
                     "brokerIP1 %s resolves to %s: advertising the name, storing %s in "
                     "STOREHOST and message ids",
                     ip, num, num);
    }
    if (!standalone && (is_loopback(ip) || is_loopback(num)) &&
        !apg_cfg_bool(cfg, APG_CFG_allowLoopbackAdvertise))
        return apg_errf(APG_ECONFIG, err, errlen,
                        "brokerIP1=%s%s%s%s is a loopback address that clients on other hosts "
                        "cannot reach; set brokerIP1 to a reachable address, or "
                        "allowLoopbackAdvertise=true for a single-host setup",
                        ip, strcmp(ip, num) ? " (" : "", strcmp(ip, num) ? num : "",
                        strcmp(ip, num) ? ")" : "");
    b->br_port = (int)apg_cfg_int(cfg, APG_CFG_listenPort);
    snprintf(b->br_addr, sizeof(b->br_addr), "%s:%d", ip, b->br_port);
    b->br_store_host.h_port = (uint32_t)b->br_port;
    memcpy(b->br_ip4, b->br_store_host.h_ip, 4);
    return APG_OK;
}

struct apg_broker *apg_broker_start(const struct apg_config *cfg, char *err, size_t errlen)
{
    struct apg_broker *b = apg_calloc(1, sizeof(*b));
    if (!b) {
        apg_errf(APG_ENOMEM, err, errlen, "out of memory");
        return NULL;
    }
    b->br_cfg = cfg;
    apg_broker_service_init(b);
    pthread_mutex_init(&b->br_wait_lock, NULL);
    pthread_cond_init(&b->br_tw_cond, NULL);
    snprintf(b->br_root, sizeof(b->br_root), "%s", apg_cfg_str(cfg, APG_CFG_storePathRootDir));
    snprintf(b->br_cluster, sizeof(b->br_cluster), "%s",
             apg_cfg_str(cfg, APG_CFG_brokerClusterName));
    snprintf(b->br_name, sizeof(b->br_name), "%s", apg_cfg_str(cfg, APG_CFG_brokerName));
    const char *ns = apg_cfg_str(cfg, APG_CFG_namesrvAddr);
    if ((!ns || !ns[0]) && apg_config_role(cfg) == APG_ROLE_STANDALONE)
        snprintf(b->br_namesrv, sizeof(b->br_namesrv), "127.0.0.1:%lld",
                 (long long)apg_cfg_int(cfg, APG_CFG_namesrvListenPort));
    else
        snprintf(b->br_namesrv, sizeof(b->br_namesrv), "%s", ns ? ns : "");
    b->br_broker_id = apg_cfg_int(cfg, APG_CFG_brokerId);
    b->br_slave = strcmp(apg_cfg_str(cfg, APG_CFG_brokerRole), "SLAVE") == 0;
    pthread_mutex_init(&b->br_ha_lock, NULL);
    b->br_perm = (int32_t)apg_cfg_int(cfg, APG_CFG_brokerPermission);
    /* br_sync_flush: replies wait for the store's acknowledgement, which
     * comes after the group commit (SYNC_FLUSH) and, for a SYNC_MASTER,
     * once a slave holds the record. */
    b->br_sync_flush = strcmp(apg_cfg_str(cfg, APG_CFG_flushDiskType), "SYNC_FLUSH") == 0 ||
                       strcmp(apg_cfg_str(cfg, APG_CFG_brokerRole), "SYNC_MASTER") == 0;
    b->br_auto_create_group = apg_cfg_bool(cfg, APG_CFG_autoCreateSubscriptionGroup);
    b->br_max_msg_size = (uint32_t)apg_cfg_int(cfg, APG_CFG_maxMessageSize);
    b->br_max_pull_msgs = (int)apg_cfg_int(cfg, APG_CFG_maxTransferCountOnMessageInMemory);
    b->br_max_pull_bytes = (size_t)apg_cfg_int(cfg, APG_CFG_maxTransferBytesOnMessageInMemory);
    b->br_long_polling = apg_cfg_bool(cfg, APG_CFG_longPollingEnable);
    b->br_property_filter = apg_cfg_bool(cfg, APG_CFG_enablePropertyFilter);
    b->br_short_poll_ms = apg_cfg_int(cfg, APG_CFG_shortPollingTimeMills);
    b->br_channel_expire_ms = apg_cfg_int(cfg, APG_CFG_channelNotActiveInterval);
    b->br_sync_pending_max = 20000;
    b->br_fast_failure = apg_cfg_bool(cfg, APG_CFG_brokerFastFailureEnable);
    b->br_busy_queue_ms = apg_cfg_int(cfg, APG_CFG_waitTimeMillsInSendQueue);
    b->br_busy_pc_ms = apg_cfg_int(cfg, APG_CFG_osPageCacheBusyTimeOutMills);
    if (apg_broker_stats_init(b)) {
        apg_errf(APG_ENOMEM, err, errlen, "out of memory");
        goto fail;
    }
    if (apg_broker_live_keys_check(err, errlen) || pick_address(b, err, errlen) ||
        apg_broker_acl_open(b, err, errlen))
        goto fail;
    if (!b->br_namesrv[0])
        apg_log_warn("broker", "namesrvAddr is empty: clients will not find this broker; set "
                               "namesrvAddr or pass -n host:port");
    b->br_ha_port = (int)apg_cfg_int(cfg, APG_CFG_haListenPort);
    if (b->br_ha_port == 0)
        b->br_ha_port = b->br_port + 1;
    const char *ip2 = apg_cfg_str(cfg, APG_CFG_brokerIP2);
    if (ip2 && ip2[0])
        snprintf(b->br_ha_addr, sizeof(b->br_ha_addr), "%s:%d", ip2, b->br_ha_port);
    else
        snprintf(b->br_ha_addr, sizeof(b->br_ha_addr), "%.*s:%d",
                 (int)(strrchr(b->br_addr, ':') - b->br_addr), b->br_addr, b->br_ha_port);

    b->br_topics = apg_topics_open(b->br_root, apg_cfg_bool(cfg, APG_CFG_autoCreateTopicEnable),
                                   (int32_t)apg_cfg_int(cfg, APG_CFG_defaultTopicQueueNums),
                                   b->br_cluster, b->br_name, err, errlen);
    if (!b->br_topics)
        goto fail;
    /* RocketMQ creates its trace topic at start with one queue when asked. */
    if (apg_cfg_bool(cfg, APG_CFG_traceTopicEnable) &&
        apg_topics_ensure(b->br_topics, apg_cfg_str(cfg, APG_CFG_msgTraceTopicName), 1,
                          APG_PERM_READ | APG_PERM_WRITE, NULL)) {
        apg_errf(APG_ECONFIG, err, errlen, "traceTopicEnable: cannot create msgTraceTopicName %s",
                 apg_cfg_str(cfg, APG_CFG_msgTraceTopicName));
        goto fail;
    }
    b->br_groups = apg_groups_open(b->br_root, err, errlen);
    if (!b->br_groups)
        goto fail;
    /* Changes made before the writer and the service thread run are picked
     * up by them when they start (the kicks are flags). */
    apg_topics_set_hook(b->br_topics, on_topics_changed, b);
    apg_groups_set_hook(b->br_groups, on_groups_changed, b);
    b->br_offsets = apg_offsets_open(b->br_root, err, errlen);
    if (!b->br_offsets)
        goto fail;
    b->br_locks = apg_locks_new(apg_cfg_int(cfg, APG_CFG_rebalanceLockMaxLiveTime));
    b->br_clients = b->br_locks ? apg_clients_new(b->br_locks) : NULL;
    b->br_cstats = apg_cstats_new();
    if (!b->br_clients || !b->br_cstats) {
        apg_errf(APG_ENOMEM, err, errlen, "out of memory");
        goto fail;
    }

    struct apg_store_opts so;
    apg_store_opts_from_config(&so, cfg);
    so.so_root_dir = b->br_root;
    so.so_max_message_size = b->br_max_msg_size;
    so.so_store_host = b->br_store_host;
    if (apg_store_open(&so, &b->br_store, err, errlen))
        goto fail;
    apg_store_set_arrive_hook(b->br_store, on_arrive, b);
    if (apg_broker_ha_start(b, err, errlen))
        goto fail;
    if (apg_schedule_open(b, &b->br_schedule, err, errlen) ||
        apg_txn_open(b, &b->br_txn, err, errlen) || apg_timer_open(b, &b->br_timer, err, errlen) ||
        apg_pop_open(b, &b->br_pop, err, errlen))
        goto fail;

    struct apg_net_client_opts co = {.name = "broker-namesrv", .idle_timeout_s = 0};
    if (apg_net_tls_client_setup(cfg, &co, err, errlen) ||
        apg_net_client_start(&co, &b->br_cli, err, errlen))
        goto fail;

    int n = (int)apg_cfg_int(cfg, APG_CFG_serverSelectorThreads);
    if (n <= 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        n = cpus > 0 ? (int)cpus : 1;
        if (n > 8)
            n = 8;
    }
    b->br_nloops = n;
    b->br_loops = apg_calloc((size_t)n, sizeof(*b->br_loops));
    if (!b->br_loops) {
        apg_errf(APG_ENOMEM, err, errlen, "out of memory");
        goto fail;
    }
    for (int i = 0; i < n; i++) {
        b->br_loops[i].bl_broker = b;
        b->br_loops[i].bl_idx = i;
        pthread_mutex_init(&b->br_loops[i].bl_ack_lock, NULL);
        b->br_loops[i].bl_rpc = apg_calloc(N_PROCS + 1, sizeof(struct apg_rpc_hist));
        if (!b->br_loops[i].bl_rpc) {
            apg_errf(APG_ENOMEM, err, errlen, "out of memory");
            goto fail;
        }
    }
    for (int i = 0; i < n; i++) {
        if (apg_broker_put_loop_start(&b->br_loops[i]) ||
            apg_broker_send_loop_start(&b->br_loops[i])) {
            apg_errf(APG_ENOMEM, err, errlen, "out of memory");
            goto fail;
        }
    }
    struct apg_net_server_opts o = {
        .name = "broker",
        .host = apg_cfg_str(cfg, APG_CFG_bindAddress),
        .port = b->br_port,
        .n_loops = n,
        .max_frame = (size_t)apg_cfg_int(cfg, APG_CFG_frameMaxLength),
        .limits = apg_net_limits_from_cfg(cfg),
        .busy_poll_us = (int)apg_cfg_int(cfg, APG_CFG_serverBusyPollUs),
        .on_request = on_request,
        .on_close = on_close,
        .on_read_end = on_read_end,
        .on_loop_start = on_loop_start,
        .on_loop_stop = on_loop_stop,
        .ud = b,
    };
    if (apg_net_tls_server_setup(cfg, &o, err, errlen) ||
        apg_net_server_start(&o, &b->br_srv, err, errlen))
        goto fail;

    apg_broker_persist_all(b);
    apg_broker_register(b, false);
    if (apg_broker_tables_start(b, err, errlen) || apg_broker_service_start(b, err, errlen))
        goto fail;
    /* Delay and timer delivery, transaction check-back and pop revive all
     * store records: a slave runs none of them (its master does, and the
     * records they store reach the slave through the commit log). */
    if (!b->br_slave &&
        (apg_schedule_start(b->br_schedule, err, errlen) || apg_txn_start(b->br_txn, err, errlen) ||
         apg_timer_start(b->br_timer, err, errlen) || apg_pop_start(b->br_pop, err, errlen)))
        goto fail;
    apg_log_info("broker", "broker %s (%s) serving on %s, advertised as %s, NameServers: %s",
                 b->br_name, b->br_cluster, apg_cfg_str(cfg, APG_CFG_bindAddress), b->br_addr,
                 b->br_namesrv[0] ? b->br_namesrv : "(none)");
    return b;
fail:
    apg_broker_stop(b);
    return NULL;
}

void apg_broker_stop(struct apg_broker *b)
{
    if (!b)
        return;
    apg_broker_tables_stop(b);
    if (apg_broker_service_stop(b))
        apg_broker_register(b, true);
    /* The loops stop first; the server struct stays until the store is
     * closed, because the store's ack thread may still post acknowledgements
     * to the loops until then (each such post is refused and the ack is
     * dropped with the loop's state below). */
    apg_net_server_halt(b->br_srv);
    if (b->br_cli)
        apg_net_client_stop(b->br_cli);
    apg_schedule_stop(b->br_schedule);
    b->br_schedule = NULL;
    apg_timer_stop(b->br_timer);
    b->br_timer = NULL;
    apg_txn_stop(b->br_txn);
    b->br_txn = NULL;
    apg_pop_stop(b->br_pop);
    b->br_pop = NULL;
    apg_broker_ha_stop(b);
    if (b->br_store)
        apg_store_close(b->br_store);
    apg_net_server_stop(b->br_srv);
    b->br_srv = NULL;
    if (b->br_topics && b->br_groups && b->br_offsets)
        apg_broker_persist_all(b);
    apg_broker_tables_free(b);
    apg_clients_free(b->br_clients);
    apg_locks_free(b->br_locks);
    apg_cstats_free(b->br_cstats);
    apg_offsets_free(b->br_offsets);
    apg_groups_free(b->br_groups);
    apg_topics_free(b->br_topics);
    for (int i = 0; b->br_loops && i < b->br_nloops; i++) {
        /* Freed by on_loop_stop unless the loops never ran. */
        apg_broker_put_loop_stop(&b->br_loops[i]);
        apg_broker_send_loop_stop(&b->br_loops[i]);
        pthread_mutex_destroy(&b->br_loops[i].bl_ack_lock);
        apg_free(b->br_loops[i].bl_rpc);
    }
    apg_free(b->br_loops);
    apg_broker_stats_free(b);
    apg_broker_acl_close(b);
    apg_worker_destroy(&b->br_svc);
    pthread_mutex_destroy(&b->br_wait_lock);
    pthread_mutex_destroy(&b->br_ha_lock);
    pthread_cond_destroy(&b->br_tw_cond);
    apg_free(b);
}

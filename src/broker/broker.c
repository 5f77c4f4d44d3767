/* Broker entry points: start-up, the request dispatch table, NameServer
 * registration and the service thread.
 *
 * apg_broker_start opens the store and the config tables, picks the
 * advertised address (brokerIP1, an IPv4 address or a DNS name that is
 * advertised as is and resolved once, at start, for the STOREHOST field and
 * offset msgIds; standalone defaults to 127.0.0.1; `apogee
 * broker` refuses to advertise a loopback address unless
 * allowLoopbackAdvertise=true, because remote clients could not reach it),
 * starts the event loops and registers with every NameServer before
 * returning.
 *
 * Threads: the loops run the processors (one table, indexed by request
 * code). The service thread re-registers every registerNameServerPeriod (or
 * at once when a topic is created or deleted), samples the statistics
 * every second, persists consumer offsets
 * every flushConsumerOffsetInterval and the topic/group tables when they
 * changed, and expires silent clients. apg_broker_stop unregisters, stops
 * the loops, persists everything and closes the store. */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#include "broker/broker_rt.h" /* also brings netdb.h (getaddrinfo) through uv.h */
#include "common/hash.h"
#include "common/log.h"
#include "common/mem.h"

void apg_broker_reply(struct apg_conn *c, const struct apg_rcmd *req, int32_t code,
                      const char *remark)
{
    if (!apg_rcmd_is_oneway(req))
        apg_conn_reply(c, req, code, remark, NULL, 0);
}

bool apg_broker_refuse_unwritable(struct apg_broker *b, struct apg_conn *c,
                                  const struct apg_rcmd *req)
{
    if (b->br_perm & APG_PERM_WRITE)
        return false;
    char remark[256];
    snprintf(remark, sizeof(remark),
             "the broker %s is not writable (brokerPermission=%d); set brokerPermission=6",
             b->br_addr, b->br_perm);
    apg_broker_reply(c, req, APG_RESP_NO_PERMISSION, remark);
    return true;
}

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
    {APG_REQ_PULL_MESSAGE, apg_broker_proc_pull},
    {APG_REQ_LITE_PULL_MESSAGE, apg_broker_proc_pull},
    {APG_REQ_QUERY_CONSUMER_OFFSET, apg_broker_proc_query_offset},
    {APG_REQ_UPDATE_CONSUMER_OFFSET, apg_broker_proc_update_offset},
    {APG_REQ_GET_MAX_OFFSET, apg_broker_proc_queue_bounds},
    {APG_REQ_GET_MIN_OFFSET, apg_broker_proc_queue_bounds},
    {APG_REQ_SEARCH_OFFSET_BY_TIMESTAMP, apg_broker_proc_queue_bounds},
    {APG_REQ_GET_EARLIEST_MSG_STORETIME, apg_broker_proc_queue_bounds},
    {APG_REQ_VIEW_MESSAGE_BY_ID, apg_broker_proc_view_msg},
    {APG_REQ_GET_ALL_CONSUMER_OFFSET, apg_broker_proc_all_offsets},
    {APG_REQ_GET_BROKER_RUNTIME_INFO, apg_broker_proc_runtime_info},
    {APG_REQ_HEART_BEAT, apg_broker_proc_client},
    {APG_REQ_UNREGISTER_CLIENT, apg_broker_proc_client},
    {APG_REQ_GET_CONSUMER_LIST_BY_GROUP, apg_broker_proc_client},
    {APG_REQ_UPDATE_AND_CREATE_TOPIC, apg_broker_proc_admin},
    {APG_REQ_DELETE_TOPIC_IN_BROKER, apg_broker_proc_admin},
    {APG_REQ_GET_ALL_TOPIC_CONFIG, apg_broker_proc_admin},
    {APG_REQ_UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, apg_broker_proc_admin},
    {APG_REQ_DELETE_SUBSCRIPTIONGROUP, apg_broker_proc_admin},
    {APG_REQ_GET_ALL_SUBSCRIPTIONGROUP_CONFIG, apg_broker_proc_admin},
};

static apg_broker_proc_fn lookup(int32_t code)
{
    for (size_t i = 0; i < sizeof(proc_table) / sizeof(proc_table[0]); i++)
        if (proc_table[i].code == code)
            return proc_table[i].fn;
    return NULL;
}

static void on_request(struct apg_conn *c, const struct apg_rcmd *req, void *ud)
{
    struct apg_broker *b = ud;
    apg_broker_proc_fn fn = lookup(req->code);
    if (apg_broker_send_pending() && req->code != APG_REQ_SEND_MESSAGE &&
        req->code != APG_REQ_SEND_MESSAGE_V2)
        apg_broker_send_flush(b);
    if (fn) {
        fn(b, c, req);
        return;
    }
    char remark[160];
    const char *name = apg_req_code_name(req->code);
    snprintf(remark, sizeof(remark), " request type %d%s%s%s not supported", req->code,
             name ? " (" : "", name ? name : "", name ? ")" : "");
    apg_broker_reply(c, req, APG_RESP_REQUEST_CODE_NOT_SUPPORTED, remark);
}

static void on_read_end(struct apg_conn *c, void *ud)
{
    (void)c;
    apg_broker_send_flush(ud);
}

static void on_close(struct apg_conn *c, void *ud)
{
    struct apg_broker *b = ud;
    apg_clients_conn_closed(b, c);
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
    apg_broker_send_drain(&b->br_loops[idx]);
    apg_broker_send_loop_stop();
    apg_broker_pull_loop_stop(&b->br_loops[idx]);
}

/* ---- NameServer registration -------------------------------------------- */

static void register_all(struct apg_broker *b, bool unregister)
{
    if (!b->br_namesrv[0] || !b->br_cli)
        return;
    struct apg_buf body = APG_BUF_INIT;
    if (!unregister) {
        apg_buf_append_str(&body, "{\"filterServerList\":[],\"topicConfigSerializeWrapper\":");
        apg_topics_encode(b->br_topics, &body);
        apg_buf_append_str(&body, "}");
    }
    char id[24], ha[160], crc[24];
    snprintf(id, sizeof(id), "%lld", (long long)b->br_broker_id);
    snprintf(ha, sizeof(ha), "%.*s:%d", (int)(strrchr(b->br_addr, ':') - b->br_addr), b->br_addr,
             b->br_port + 1);
    snprintf(crc, sizeof(crc), "%d",
             body.b_len ? (int)(apg_crc32(body.b_data, body.b_len) & 0x7FFFFFFF) : 0);
    char list[sizeof(b->br_namesrv)];
    snprintf(list, sizeof(list), "%s", b->br_namesrv);
    char *save = NULL;
    for (char *addr = strtok_r(list, ";", &save); addr; addr = strtok_r(NULL, ";", &save)) {
        while (*addr == ' ')
            addr++;
        if (!*addr)
            continue;
        struct apg_rcmd req;
        apg_rcmd_init_request(&req,
                              unregister ? APG_REQ_UNREGISTER_BROKER : APG_REQ_REGISTER_BROKER, 0,
                              APG_SER_JSON);
        apg_rcmd_ext_add(&req, "brokerName", b->br_name);
        apg_rcmd_ext_add(&req, "brokerAddr", b->br_addr);
        apg_rcmd_ext_add(&req, "clusterName", b->br_cluster);
        apg_rcmd_ext_add(&req, "brokerId", id);
        if (!unregister) {
            apg_rcmd_ext_add(&req, "haServerAddr", ha);
            apg_rcmd_ext_add(&req, "compressed", "false");
            apg_rcmd_ext_add(&req, "bodyCrc32", crc);
        }
        struct apg_rcmd_copy *resp = NULL;
        char err[256] = "";
        apg_err_t e = apg_net_client_call_sync(b->br_cli, addr, &req, body.b_data,
                                               (uint32_t)body.b_len, 3000, &resp, err, sizeof(err));
        if (e)
            apg_log_warn("broker", "%s with NameServer %s failed: %s",
                         unregister ? "unregistering" : "registering", addr,
                         err[0] ? err : apg_strerror(e));
        else if (resp->rc_cmd.code != 0)
            apg_log_warn("broker", "NameServer %s refused %s: code %d %s", addr,
                         unregister ? "UNREGISTER_BROKER" : "REGISTER_BROKER", resp->rc_cmd.code,
                         resp->rc_cmd.remark ? resp->rc_cmd.remark : "");
        else
            apg_log_debug("broker", "%s %s at NameServer %s",
                          unregister ? "unregistered" : "registered", b->br_addr, addr);
        if (resp)
            apg_rcmd_copy_free(resp);
    }
    apg_buf_free(&body);
}

void apg_broker_request_register(struct apg_broker *b)
{
    pthread_mutex_lock(&b->br_svc_lock);
    b->br_reregister = true;
    pthread_cond_signal(&b->br_svc_cond);
    pthread_mutex_unlock(&b->br_svc_lock);
}

static void persist_all(struct apg_broker *b, bool force)
{
    char err[512];
    if (apg_offsets_persist(b->br_offsets, force, err, sizeof(err)))
        apg_log_error("broker", "persisting consumer offsets failed: %s", err);
    if (apg_topics_persist(b->br_topics, force, err, sizeof(err)))
        apg_log_error("broker", "persisting topics failed: %s", err);
    if (apg_groups_persist(b->br_groups, force, err, sizeof(err)))
        apg_log_error("broker", "persisting subscription groups failed: %s", err);
}

static void *service_main(void *arg)
{
    struct apg_broker *b = arg;
    const struct apg_config *cfg = b->br_cfg;
    int64_t reg_period = apg_cfg_int(cfg, APG_CFG_registerNameServerPeriod);
    int64_t flush_period = apg_cfg_int(cfg, APG_CFG_flushConsumerOffsetInterval);
    int64_t now = apg_wall_ms();
    int64_t next_reg = now + reg_period, next_flush = now + flush_period, next_expire = now + 10000;
    int64_t next_tick = now;
    pthread_mutex_lock(&b->br_svc_lock);
    while (!b->br_stopping) {
        now = apg_wall_ms();
        int64_t wake = next_reg < next_flush ? next_reg : next_flush;
        if (next_expire < wake)
            wake = next_expire;
        if (next_tick < wake)
            wake = next_tick;
        if (!b->br_reregister && wake > now) {
            apg_cond_wait_ms(&b->br_svc_cond, &b->br_svc_lock, wake - now);
            continue;
        }
        bool rereg = b->br_reregister;
        b->br_reregister = false;
        pthread_mutex_unlock(&b->br_svc_lock);
        now = apg_wall_ms();
        if (rereg || now >= next_reg) {
            register_all(b, false);
            next_reg = now + reg_period;
        }
        if (now >= next_flush) {
            persist_all(b, false);
            next_flush = now + flush_period;
        }
        if (now >= next_tick) {
            apg_broker_stats_tick(b, now);
            next_tick = now + 1000;
        }
        if (now >= next_expire) {
            apg_clients_expire(b, now);
            next_expire = now + 10000;
        }
        pthread_mutex_lock(&b->br_svc_lock);
    }
    pthread_mutex_unlock(&b->br_svc_lock);
    return NULL;
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
    char ip[96];
    if (ip1 && ip1[0])
        snprintf(ip, sizeof(ip), "%s", ip1);
    else if (standalone)
        snprintf(ip, sizeof(ip), "127.0.0.1");
    else if (!first_public_ipv4(ip, sizeof(ip)))
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
    pthread_mutex_init(&b->br_svc_lock, NULL);
    pthread_cond_init(&b->br_svc_cond, NULL);
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
    b->br_perm = (int32_t)apg_cfg_int(cfg, APG_CFG_brokerPermission);
    b->br_sync_flush = strcmp(apg_cfg_str(cfg, APG_CFG_flushDiskType), "SYNC_FLUSH") == 0;
    b->br_auto_create_group = apg_cfg_bool(cfg, APG_CFG_autoCreateSubscriptionGroup);
    b->br_max_msg_size = (uint32_t)apg_cfg_int(cfg, APG_CFG_maxMessageSize);
    b->br_max_pull_msgs = (int)apg_cfg_int(cfg, APG_CFG_maxTransferCountOnMessageInMemory);
    b->br_max_pull_bytes = (size_t)apg_cfg_int(cfg, APG_CFG_maxTransferBytesOnMessageInMemory);
    b->br_long_polling = apg_cfg_bool(cfg, APG_CFG_longPollingEnable);
    b->br_short_poll_ms = apg_cfg_int(cfg, APG_CFG_shortPollingTimeMills);
    b->br_channel_expire_ms = apg_cfg_int(cfg, APG_CFG_channelNotActiveInterval);
    b->br_sync_pending_max = 20000;
    if (apg_broker_stats_init(b)) {
        apg_errf(APG_ENOMEM, err, errlen, "out of memory");
        goto fail;
    }
    if (pick_address(b, err, errlen))
        goto fail;
    if (!b->br_namesrv[0])
        apg_log_warn("broker", "namesrvAddr is empty: clients will not find this broker; set "
                               "namesrvAddr or pass -n host:port");

    b->br_topics = apg_topics_open(b->br_root, apg_cfg_bool(cfg, APG_CFG_autoCreateTopicEnable),
                                   (int32_t)apg_cfg_int(cfg, APG_CFG_defaultTopicQueueNums),
                                   b->br_cluster, b->br_name, err, errlen);
    if (!b->br_topics)
        goto fail;
    b->br_groups = apg_groups_open(b->br_root, err, errlen);
    if (!b->br_groups)
        goto fail;
    b->br_offsets = apg_offsets_open(b->br_root, err, errlen);
    if (!b->br_offsets)
        goto fail;
    b->br_clients = apg_clients_new();
    if (!b->br_clients) {
        apg_errf(APG_ENOMEM, err, errlen, "out of memory");
        goto fail;
    }

    struct apg_store_opts so;
    apg_store_opts_from_config(&so, cfg);
    so.so_root_dir = b->br_root;
    so.so_sync_flush = b->br_sync_flush;
    so.so_max_message_size = b->br_max_msg_size;
    so.so_store_host = b->br_store_host;
    if (apg_store_open(&so, &b->br_store, err, errlen))
        goto fail;
    apg_store_set_arrive_hook(b->br_store, apg_broker_pull_arrive, b);

    struct apg_net_client_opts co = {.name = "broker-namesrv", .idle_timeout_s = 0};
    if (apg_net_client_start(&co, &b->br_cli, err, errlen))
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
    }
    struct apg_net_server_opts o = {
        .name = "broker",
        .host = apg_cfg_str(cfg, APG_CFG_bindAddress),
        .port = b->br_port,
        .n_loops = n,
        .max_frame = (size_t)apg_cfg_int(cfg, APG_CFG_frameMaxLength),
        .idle_timeout_s = (int)apg_cfg_int(cfg, APG_CFG_serverChannelMaxIdleTimeSeconds),
        .busy_poll_us = (int)apg_cfg_int(cfg, APG_CFG_serverBusyPollUs),
        .on_request = on_request,
        .on_close = on_close,
        .on_read_end = on_read_end,
        .on_loop_start = on_loop_start,
        .on_loop_stop = on_loop_stop,
        .ud = b,
    };
    if (apg_net_server_start(&o, &b->br_srv, err, errlen))
        goto fail;

    persist_all(b, false);
    register_all(b, false);
    if (pthread_create(&b->br_svc, NULL, service_main, b) != 0) {
        apg_errf(APG_EIO, err, errlen, "cannot start the broker service thread");
        goto fail;
    }
    b->br_svc_started = true;
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
    if (b->br_svc_started) {
        pthread_mutex_lock(&b->br_svc_lock);
        b->br_stopping = true;
        pthread_cond_signal(&b->br_svc_cond);
        pthread_mutex_unlock(&b->br_svc_lock);
        pthread_join(b->br_svc, NULL);
        register_all(b, true);
    }
    if (b->br_srv)
        apg_net_server_stop(b->br_srv);
    b->br_srv = NULL;
    if (b->br_cli)
        apg_net_client_stop(b->br_cli);
    if (b->br_store)
        apg_store_close(b->br_store);
    if (b->br_topics && b->br_groups && b->br_offsets)
        persist_all(b, false);
    apg_clients_free(b->br_clients);
    apg_offsets_free(b->br_offsets);
    apg_groups_free(b->br_groups);
    apg_topics_free(b->br_topics);
    for (int i = 0; b->br_loops && i < b->br_nloops; i++)
        pthread_mutex_destroy(&b->br_loops[i].bl_ack_lock);
    apg_free(b->br_loops);
    apg_broker_stats_free(b);
    pthread_mutex_destroy(&b->br_svc_lock);
    pthread_cond_destroy(&b->br_svc_cond);
    apg_free(b);
}

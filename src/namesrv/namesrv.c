/* NameServer life cycle: configuration, the one event loop, the expiry scan.
 *
 * The NameServer serves few, small requests, so it runs a single loop
 * thread (struct apg_net_server with n_loops = 1). That thread owns the
 * route table and the KV config; request handlers (processor.c) run on it
 * and need no locks. A repeating timer on the same loop removes brokers not
 * heard from within their timeout every scanNotActiveBrokerInterval ms, and
 * a closing connection removes the brokers that registered on it.
 *
 * The NameServer keeps its own copy of the configuration:
 * UPDATE_NAMESRV_CONFIG changes the runtime keys of that copy on the loop
 * thread and apg_ns_apply_config copies them into the fields the handlers
 * read; GET_NAMESRV_CONFIG prints it. Nothing of it is written to disk.
 *
 * With aclEnable=true every request passes the plain ACL first (ns_acl.c).
 *
 * Several NameServers run side by side without knowing each other; each
 * broker registers with every one of them. */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "namesrv/namesrv_int.h"
#include "net/tls.h"

static void on_scan(uv_timer_t *t)
{
    struct apg_namesrv *ns = t->data;
    int n = apg_route_expire(ns->ns_rt, (int64_t)uv_now(t->loop));
    if (n)
        apg_log_info("namesrv", "expiry scan removed %d broker(s)", n);
}

static void on_loop_start(int idx, uv_loop_t *loop, void *ud)
{
    struct apg_namesrv *ns = ud;
    ns->ns_loop = loop;
    uv_timer_init(loop, &ns->ns_scan);
    ns->ns_scan.data = ns;
    uv_timer_start(&ns->ns_scan, on_scan, (uint64_t)ns->ns_scan_ms, (uint64_t)ns->ns_scan_ms);
    apg_ns_acl_loop_start(ns, loop);
}

static void on_loop_stop(int idx, uv_loop_t *loop, void *ud)
{
    struct apg_namesrv *ns = ud;
    uv_close((uv_handle_t *)&ns->ns_scan, NULL);
    apg_ns_acl_loop_stop(ns);
}

static void on_close(struct apg_conn *c, void *ud)
{
    struct apg_namesrv *ns = ud;
    apg_route_remove_conn(ns->ns_rt, c);
}

void apg_ns_apply_config(struct apg_namesrv *ns)
{
    const struct apg_config *cfg = ns->ns_cfg;
    int64_t scan_ms = apg_cfg_int(cfg, APG_CFG_scanNotActiveBrokerInterval);
    if (ns->ns_loop && scan_ms != ns->ns_scan_ms)
        uv_timer_start(&ns->ns_scan, on_scan, (uint64_t)scan_ms, (uint64_t)scan_ms);
    ns->ns_scan_ms = scan_ms;
    ns->ns_order_enable = apg_cfg_bool(cfg, APG_CFG_orderMessageEnable);
    ns->ns_return_order_conf = apg_cfg_bool(cfg, APG_CFG_returnOrderTopicConfigToBroker);
    ns->ns_all_topic_list = apg_cfg_bool(cfg, APG_CFG_enableAllTopicList);
    ns->ns_topic_list = apg_cfg_bool(cfg, APG_CFG_enableTopicList);
    if (ns->ns_rt)
        apg_route_set_default_timeout(ns->ns_rt,
                                      apg_cfg_int(cfg, APG_CFG_brokerChannelExpiredTime));
}

struct apg_namesrv *apg_namesrv_start(const struct apg_config *config, char *err, size_t errlen)
{
    struct apg_namesrv *ns = apg_calloc(1, sizeof(*ns));
    if (ns)
        ns->ns_cfg = apg_config_dup(config);
    if (!ns || !ns->ns_cfg) {
        apg_free(ns);
        apg_errf(APG_ENOMEM, err, errlen, "out of memory");
        return NULL;
    }
    const struct apg_config *cfg = ns->ns_cfg;
    apg_ns_apply_config(ns);

    char kv_path[4096];
    const char *kvp = apg_cfg_str(cfg, APG_CFG_kvConfigPath);
    if (kvp && kvp[0])
        snprintf(kv_path, sizeof(kv_path), "%s", kvp);
    else
        snprintf(kv_path, sizeof(kv_path), "%s/namesrv/kvConfig.json",
                 apg_cfg_str(cfg, APG_CFG_storePathRootDir));
    if (apg_kv_open(kv_path, &ns->ns_kv, err, errlen) || apg_ns_acl_open(ns, err, errlen))
        goto fail;
    ns->ns_rt = apg_route_new(apg_cfg_int(cfg, APG_CFG_brokerChannelExpiredTime));
    if (!ns->ns_rt) {
        apg_errf(APG_ENOMEM, err, errlen, "out of memory");
        goto fail;
    }

    struct apg_net_server_opts o = {
        .name = "namesrv",
        .host = apg_cfg_str(cfg, APG_CFG_bindAddress),
        .port = (int)apg_cfg_int(cfg, APG_CFG_listenPort),
        .port_key = apg_config_port_key(cfg),
        .n_loops = 1,
        .max_frame = (size_t)apg_cfg_int(cfg, APG_CFG_frameMaxLength),
        .limits = apg_net_limits_from_cfg(cfg),
        .on_request = apg_namesrv_dispatch,
        .on_close = on_close,
        .on_loop_start = on_loop_start,
        .on_loop_stop = on_loop_stop,
        .ud = ns,
    };
    if (apg_net_tls_server_setup(cfg, &o, err, errlen) ||
        apg_net_server_start(&o, &ns->ns_srv, err, errlen))
        goto fail;
    apg_log_info("namesrv", "NameServer listening on %s:%d; KV config in %s", o.host,
                 apg_net_server_port(ns->ns_srv), kv_path);
    return ns;

fail:
    apg_acl_free(ns->ns_acl);
    apg_kv_free(ns->ns_kv);
    apg_route_free(ns->ns_rt);
    apg_config_free(ns->ns_cfg);
    apg_free(ns);
    return NULL;
}

void apg_namesrv_stop(struct apg_namesrv *ns)
{
    if (!ns)
        return;
    /* The KV config is written through on every change, so there is
     * nothing left to save here. */
    apg_net_server_stop(ns->ns_srv);
    apg_route_free(ns->ns_rt);
    apg_kv_free(ns->ns_kv);
    apg_acl_free(ns->ns_acl);
    apg_config_free(ns->ns_cfg);
    memset(ns->ns_inner_sk, 0, sizeof(ns->ns_inner_sk));
    apg_free(ns);
    apg_log_info("namesrv", "NameServer stopped");
}

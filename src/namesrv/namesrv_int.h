/* NameServer internals shared by namesrv.c (life cycle) and processor.c
 * (request handlers). */
#ifndef APG_NAMESRV_NAMESRV_INT_H
#define APG_NAMESRV_NAMESRV_INT_H

#include <jansson.h>
#include <stdatomic.h>
#include <uv.h>

#include "acl/acl.h"
#include "common/config.h"
#include "common/log.h"
#include "namesrv/kv.h"
#include "namesrv/namesrv.h"
#include "namesrv/route.h"
#include "net/net.h"

#define APG_NS_ORDER_TOPIC_CONFIG "ORDER_TOPIC_CONFIG"

/* Inflates a compressed REGISTER_BROKER body (docs/wire.md §4.3: zlib of
 * dataVersion JSON, then length-prefixed "name read write perm filter"
 * topic lines) and rebuilds it as RegisterBrokerBody JSON; NULL with err
 * set for anything malformed or inflating past MAX_INFLATED. Pure. */
json_t *apg_ns_register_body_inflate(const uint8_t *body, uint32_t len, char *err, size_t errlen);

/* Everything but ns_srv is owned by the NameServer's single loop thread
 * once started. */
struct apg_namesrv {
    struct apg_config *ns_cfg; /* owned copy; UPDATE_NAMESRV_CONFIG changes it */
    struct apg_net_server *ns_srv;
    struct apg_route_table *ns_rt;
    struct apg_kv *ns_kv;
    uv_timer_t ns_scan;
    uv_loop_t *ns_loop;
    int64_t ns_scan_ms;
    bool ns_order_enable;
    bool ns_return_order_conf;
    bool ns_all_topic_list;
    bool ns_topic_list;
    struct apg_acl *ns_acl; /* NULL with aclEnable=false */
    uv_timer_t ns_acl_timer;
    struct apg_log_limit ns_acl_log;
    /* Standalone's in-process account (apg_namesrv_trust_inner): written
     * once by the control thread, published by ns_inner_set (release),
     * read on the loop thread after an acquire load. */
    char ns_inner_ak[64], ns_inner_sk[80];
    atomic_bool ns_inner_set;
};

/* Copies the runtime keys of ns_cfg into the fields above (and the scan
 * timer, the route table's default timeout). Loop thread, or before it
 * starts. */
void apg_ns_apply_config(struct apg_namesrv *ns);

/* ns_acl.c: with aclEnable=true loads aclFile into ns_acl (a missing or
 * bad file is an error); the reload timer; and the check before every
 * handler: true when req was refused and answered NO_PERMISSION. */
apg_err_t apg_ns_acl_open(struct apg_namesrv *ns, char *err, size_t errlen);
void apg_ns_acl_loop_start(struct apg_namesrv *ns, uv_loop_t *loop);
void apg_ns_acl_loop_stop(struct apg_namesrv *ns);
bool apg_ns_acl_refused(struct apg_namesrv *ns, struct apg_conn *c, const struct apg_rcmd *req);

/* Handles one request on the loop thread (processor.c). */
void apg_namesrv_dispatch(struct apg_conn *c, const struct apg_rcmd *req, void *ud);

#endif

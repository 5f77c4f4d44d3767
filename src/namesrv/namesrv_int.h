/* NameServer internals shared by namesrv.c (life cycle) and processor.c
 * (request handlers). */
#ifndef APG_NAMESRV_NAMESRV_INT_H
#define APG_NAMESRV_NAMESRV_INT_H

#include <jansson.h>
#include <uv.h>

#include "common/config.h"
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
    const struct apg_config *ns_cfg;
    struct apg_net_server *ns_srv;
    struct apg_route_table *ns_rt;
    struct apg_kv *ns_kv;
    uv_timer_t ns_scan;
    uv_loop_t *ns_loop;
    int64_t ns_scan_ms;
    bool ns_order_enable;
    bool ns_return_order_conf;
    bool ns_all_topic_list;
};

/* Handles one request on the loop thread (processor.c). */
void apg_namesrv_dispatch(struct apg_conn *c, const struct apg_rcmd *req, void *ud);

#endif

/* The HTTP port of a broker process: reads its configuration, starts the
 * HTTP server (http_server.c) with the route table below, and stops it.
 * The /api/ routes answer from the same broker functions as the remoting
 * admin requests `apogee admin` sends (docs/http-api.md), not copies.
 *
 * Design. One loop thread serves the port, apart from the broker's loops,
 * so a scrape never delays a send or a pull; the slow-peer settings of the
 * remoting port (request deadline serverFrameTimeoutMillis, minimum rate,
 * pending-bytes cap, idle timeout) apply to its requests. The metrics
 * renderer keeps scratch tables between scrapes and belongs to that one
 * thread.
 *
 * Threads: start and stop on the control thread; handlers on the HTTP
 * loop thread. */
#include "http/http_port.h"

#include <string.h>

#include "broker/broker_rt.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "http/admin_api.h"
#include "http/http.h"
#include "http/metrics.h"
#include "http/mq_http.h"

struct apg_http_port {
    struct apg_broker *hp_broker; /* first: admin_api.c reads it through ud */
    struct apg_http_server *hp_srv;
    struct apg_metrics *hp_metrics;
    struct apg_mqhttp *hp_mq;
};

static void metrics_flush(void *call)
{
    apg_http_flush(call);
}

/* The exposition goes out in chunks while it is rendered, so the scraper
 * reads one piece while the next is written. */
static void get_metrics(struct apg_http_call *call, const struct apg_http_req *req, void *ud)
{
    struct apg_http_port *hp = ud;
    struct apg_buf *o =
        apg_http_begin_chunked(call, 200, "text/plain; version=0.0.4; charset=utf-8");
    if (o)
        apg_metrics_render_stream(hp->hp_metrics, o, apg_wall_ms(), metrics_flush, call);
    apg_http_end(call);
}

/* GET /api/cluster: the broker's identity and the GET_BROKER_RUNTIME_INFO
 * table `apogee admin clusterList` and brokerStatus read, from the same
 * builder (docs/http-api.md). */
static void get_cluster(struct apg_http_call *call, const struct apg_http_req *req, void *ud)
{
    struct apg_http_port *hp = ud;
    struct apg_broker *b = hp->hp_broker;
    struct apg_buf *o = apg_http_begin(call, 200, "application/json");
    if (o) {
        apg_buf_append_str(o, "{\"clusterName\":");
        apg_json_put_str(o, b->br_cluster);
        apg_buf_append_str(o, ",\"brokerName\":");
        apg_json_put_str(o, b->br_name);
        apg_buf_printf(o, ",\"brokerId\":%lld,\"brokerAddr\":", (long long)b->br_broker_id);
        apg_json_put_str(o, b->br_addr);
        apg_buf_append_str(o, ",\"runtime\":");
        apg_broker_runtime_info_body(b, o);
        apg_buf_append_str(o, "}");
    }
    apg_http_end(call);
}

/* GET /api/topics: the topic table as GET_ALL_TOPIC_CONFIG answers it
 * (`apogee admin topicList` and updateTopic's view), from the same encoder. */
static void get_topics(struct apg_http_call *call, const struct apg_http_req *req, void *ud)
{
    struct apg_http_port *hp = ud;
    struct apg_buf *o = apg_http_begin(call, 200, "application/json");
    if (o)
        apg_topics_encode(hp->hp_broker->br_topics, o);
    apg_http_end(call);
}

/* /topics/<topic>/messages: the HTTP message protocol (mq_http.c). */
static void mq_messages(struct apg_http_call *call, const struct apg_http_req *req, void *ud)
{
    apg_mqhttp_serve(((struct apg_http_port *)ud)->hp_mq, call, req);
}

/* Over the body limit on /topics/: the SDK's XML error, not plain text. */
static bool mq_refused(struct apg_http_call *call, const struct apg_http_req *req, void *ud)
{
    if (req->hr_status != 413 || req->hr_path_len < 8 || memcmp(req->hr_path, "/topics/", 8) != 0)
        return false;
    apg_mqhttp_refuse_large(((struct apg_http_port *)ud)->hp_mq, call);
    return true;
}

static bool mq_tick(void *ud)
{
    return apg_mqhttp_tick(((struct apg_http_port *)ud)->hp_mq);
}

static const struct apg_http_route routes[] = {
    {"GET", "/metrics", get_metrics},           /* Prometheus text */
    {"GET", "/api/cluster", get_cluster},       /* GET_BROKER_RUNTIME_INFO */
    {"GET", "/api/topics", get_topics},         /* GET_ALL_TOPIC_CONFIG */
    {"GET", "/api/*", apg_admin_api_handle},    /* the REST admin API (admin_api.c) */
    {"POST", "/api/*", apg_admin_api_handle},   /* ... */
    {"PUT", "/api/*", apg_admin_api_handle},    /* ... */
    {"DELETE", "/api/*", apg_admin_api_handle}, /* ... */
    {"GET", "/", apg_console_handle},           /* the web console (console_assets.c) */
    {"GET", "/assets/*", apg_console_handle},   /* its scripts and style sheet */
    {"POST", "/topics/*", mq_messages},         /* the HTTP message protocol (mq_http.c) */
    {"GET", "/topics/*", mq_messages},          /* ... */
    {"DELETE", "/topics/*", mq_messages},       /* ... */
};

apg_err_t apg_http_port_start(const struct apg_config *cfg, struct apg_broker *b,
                              struct apg_http_port **out, char *err, size_t errlen)
{
    *out = NULL;
    int port = (int)apg_cfg_int(cfg, APG_CFG_httpListenPort);
    if (port == 0)
        return APG_OK;
    struct apg_http_port *hp = apg_calloc(1, sizeof(*hp));
    if (hp)
        hp->hp_broker = b;
    if (!hp || !(hp->hp_metrics = apg_metrics_new(b)) || !(hp->hp_mq = apg_mqhttp_new(b))) {
        if (hp)
            apg_metrics_free(hp->hp_metrics);
        apg_free(hp);
        return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    }
    struct apg_http_server_opts o = {
        .name = "http",
        .host = apg_cfg_str(cfg, APG_CFG_bindAddress),
        .port = port,
        .port_key = "httpListenPort",
        .n_loops = 1,
        .routes = routes,
        .n_routes = sizeof(routes) / sizeof(routes[0]),
        .limits = apg_net_limits_from_cfg(cfg),
        .ud = hp,
        .tick_ms = APG_MQHTTP_TICK_MS,
        .on_tick = mq_tick,
        .on_refused = mq_refused,
    };
    apg_err_t e = apg_http_server_start(&o, &hp->hp_srv, err, errlen);
    if (e) {
        apg_mqhttp_free(hp->hp_mq);
        apg_metrics_free(hp->hp_metrics);
        apg_free(hp);
        return e;
    }
    apg_log_info("http",
                 "HTTP on %s:%d (GET /metrics, the admin API under /api/, the console at /, "
                 "the message protocol under /topics/)",
                 o.host, apg_http_server_port(hp->hp_srv));
    *out = hp;
    return APG_OK;
}

void apg_http_port_stop(struct apg_http_port *hp)
{
    if (!hp)
        return;
    apg_http_server_stop(hp->hp_srv);
    apg_mqhttp_free(hp->hp_mq);
    apg_metrics_free(hp->hp_metrics);
    apg_free(hp);
}

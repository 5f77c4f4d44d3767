/* `apogee admin` cluster and broker commands: clusterList, brokerStatus,
 * and the configuration commands getBrokerConfig, updateBrokerConfig,
 * getNamesrvConfig, updateNamesrvConfig.
 *
 * clusterList reads GET_BROKER_CLUSTER_INFO (106) from the NameServer and
 * GET_BROKER_RUNTIME_INFO (28) from each broker; a broker that does not
 * answer is listed with its error instead of failing the command.
 * brokerStatus prints the runtime table of one broker (-b) or of every
 * master of a cluster (-c); namesrvStatus the same table of every
 * NameServer of -n (Apogee's counters; RocketMQ's NameServer has none).
 *
 * Configuration travels as Java properties text (key=value lines) in the
 * request or response body: GET_BROKER_CONFIG (26) / UPDATE_BROKER_CONFIG
 * (25) to brokers, GET_NAMESRV_CONFIG (319) / UPDATE_NAMESRV_CONFIG (318) to
 * every NameServer of -n. A server that does not know a code answers
 * REQUEST_CODE_NOT_SUPPORTED, which is reported as such.
 *
 * Threads: main thread (admin.h). */
#include <string.h>
#include <unistd.h>

#include "cli/admin/admin.h"
#include "common/json.h"
#include "common/mem.h"
#include "protocol/rcode.h"
#include "protocol/remoting.h"

static json_t *runtime_info(struct apg_adm *a, const char *addr, char *err, size_t errlen)
{
    struct apg_rcmd req;
    struct apg_adm_resp r;
    apg_adm_req(&req, APG_REQ_GET_BROKER_RUNTIME_INFO);
    if (apg_adm_call(a, addr, &req, NULL, 0, &r, err, errlen) != APG_OK)
        return NULL;
    json_t *j = NULL;
    if (r.ar_code != 0)
        snprintf(err, errlen, "refused: %d %s", r.ar_code, r.ar_remark);
    else
        j = apg_adm_body_json(&r, err, errlen);
    apg_adm_resp_free(&r);
    json_t *t = json_incref(json_object_get(j, "table"));
    json_decref(j);
    if (!t && j)
        snprintf(err, errlen, "the runtime info has no table");
    return t;
}

/* First number of a "a b c" TPS string. */
static double first_num(json_t *t, const char *key)
{
    const char *s = apg_json_get_str(t, key, "0");
    return strtod(s, NULL);
}

static int cluster_list_once(struct apg_adm *a)
{
    const char *only = apg_adm_opt(a, 'c');
    bool more = apg_adm_opt(a, 'm') != NULL;
    struct apg_adm_broker *bs;
    size_t n;
    if (!apg_adm_brokers(a, &bs, &n))
        return APG_ADM_FAILED;
    json_t *rows = json_array();
    for (size_t i = 0; i < n; i++) {
        if (only && *only && strcmp(only, bs[i].ab_cluster) != 0)
            continue;
        json_t *row = json_object();
        json_object_set_new(row, "cluster", json_string(bs[i].ab_cluster));
        json_object_set_new(row, "brokerName", json_string(bs[i].ab_name));
        json_object_set_new(row, "brokerId", json_integer(bs[i].ab_id));
        json_object_set_new(row, "addr", json_string(bs[i].ab_addr));
        char err[256];
        json_t *t = runtime_info(a, bs[i].ab_addr, err, sizeof(err));
        if (t) {
            json_object_set_new(row, "version",
                                json_string(apg_json_get_str(t, "brokerVersionDesc", "")));
            json_object_set_new(row, "putTps", json_real(first_num(t, "putTps")));
            const char *gk =
                json_object_get(t, "getTransferredTps") ? "getTransferredTps" : "getTransferedTps";
            json_object_set_new(row, "getTps", json_real(first_num(t, gk)));
            json_object_set_new(row, "msgPutTotalToday",
                                json_integer(apg_json_get_i64(t, "msgPutTotalTodayNow", 0) -
                                             apg_json_get_i64(t, "msgPutTotalTodayMorning", 0)));
            json_object_set_new(row, "msgGetTotalToday",
                                json_integer(apg_json_get_i64(t, "msgGetTotalTodayNow", 0) -
                                             apg_json_get_i64(t, "msgGetTotalTodayMorning", 0)));
            if (more) {
                json_object_set_new(
                    row, "msgPutTotalYesterday",
                    json_integer(apg_json_get_i64(t, "msgPutTotalTodayMorning", 0) -
                                 apg_json_get_i64(t, "msgPutTotalYesterdayMorning", 0)));
                json_object_set_new(
                    row, "msgGetTotalYesterday",
                    json_integer(apg_json_get_i64(t, "msgGetTotalTodayMorning", 0) -
                                 apg_json_get_i64(t, "msgGetTotalYesterdayMorning", 0)));
            }
            json_object_set_new(row, "commitLogDiskRatio",
                                json_string(apg_json_get_str(t, "commitLogDiskRatio", "")));
            json_object_set_new(row, "error", json_null());
            json_decref(t);
        } else {
            json_object_set_new(row, "error", json_string(err));
        }
        json_array_append_new(rows, row);
    }
    apg_free(bs);
    if (json_array_size(rows) == 0 && only && *only) {
        json_decref(rows);
        return apg_adm_fail(a,
                            "cluster '%s' has no broker registered; `apogee admin "
                            "clusterList` lists the clusters",
                            only);
    }
    static const struct apg_adm_col cols[] = {
        {"#Cluster", "cluster"},
        {"#Broker", "brokerName"},
        {"#BID", "brokerId"},
        {"#Addr", "addr"},
        {"#Version", "version"},
        {"#InTPS", "putTps"},
        {"#OutTPS", "getTps"},
        {"#InToday", "msgPutTotalToday"},
        {"#OutToday", "msgGetTotalToday"},
        {"#DiskRatio", "commitLogDiskRatio"},
        {"#Error", "error"},
        {0},
    };
    static const struct apg_adm_col more_cols[] = {
        {"#Cluster", "cluster"},
        {"#Broker", "brokerName"},
        {"#BID", "brokerId"},
        {"#Addr", "addr"},
        {"#InToday", "msgPutTotalToday"},
        {"#OutToday", "msgGetTotalToday"},
        {"#InYesterday", "msgPutTotalYesterday"},
        {"#OutYesterday", "msgGetTotalYesterday"},
        {0},
    };
    json_t *res = json_pack("{s:o}", "brokers", rows);
    return apg_adm_emit(a, res, "brokers", more ? more_cols : cols);
}

static int cluster_list(struct apg_adm *a)
{
    int64_t every;
    if (!apg_adm_int(a, 'i', 1, 86400, 0, &every))
        return APG_ADM_USAGE;
    for (;;) {
        int rc = cluster_list_once(a);
        if (rc || every == 0)
            return rc;
        sleep((unsigned)every);
    }
}

/* Runtime tables of several servers: "servers" (one {addr, table} each)
 * and "rows" (one {addr, key, value} per entry, for the table output). */
struct status_acc {
    const char *sa_what; /* "broker" or "NameServer", for error lines */
    json_t *sa_servers, *sa_rows;
};

static int status_one(struct apg_adm *a, const char *addr, void *arg)
{
    struct status_acc *s = arg;
    char err[256];
    json_t *t = runtime_info(a, addr, err, sizeof(err));
    if (!t)
        return apg_adm_fail(a, "%s %s: %s", s->sa_what, addr, err);
    const char *k;
    json_t *v;
    json_object_foreach(t, k, v)
    {
        json_array_append_new(s->sa_rows,
                              json_pack("{s:s,s:s,s:O}", "addr", addr, "key", k, "value", v));
    }
    json_array_append_new(s->sa_servers, json_pack("{s:s,s:o}", "addr", addr, "table", t));
    return APG_ADM_OK;
}

static int status_emit(struct apg_adm *a, const char *list_key, struct status_acc *s, int rc)
{
    static const struct apg_adm_col cols[] = {
        {"#Addr", "addr"}, {"#Key", "key"}, {"#Value", "value"}, {0}};
    if (json_array_size(s->sa_servers) == 0) {
        json_decref(s->sa_servers);
        json_decref(s->sa_rows);
        return rc;
    }
    json_t *res = json_pack("{s:o,s:o}", list_key, s->sa_servers, "rows", s->sa_rows);
    if (a->ad_json)
        json_object_del(res, "rows");
    apg_adm_emit(a, res, "rows", cols);
    return rc;
}

static int broker_status(struct apg_adm *a)
{
    char **addrs;
    size_t n;
    int trc = apg_adm_targets(a, true, &addrs, &n);
    if (trc)
        return trc;
    struct status_acc s = {"broker", json_array(), json_array()};
    int rc = APG_ADM_OK;
    for (size_t i = 0; i < n; i++) {
        int r = status_one(a, addrs[i], &s);
        if (r)
            rc = r;
    }
    apg_adm_strs_free(addrs, n);
    return status_emit(a, "brokers", &s, rc);
}

/* ---- configuration ---- */

/* Java properties text into a JSON object of strings. */
static json_t *props_parse(const uint8_t *p, size_t n)
{
    json_t *o = json_object();
    const char *s = (const char *)p, *end = s + n;
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *le = nl ? nl : end;
        const char *eq = memchr(s, '=', (size_t)(le - s));
        if (eq && *s != '#' && *s != '!') {
            size_t vl = (size_t)(le - eq - 1);
            if (vl && eq[vl] == '\r')
                vl--;
            char key[256];
            snprintf(key, sizeof(key), "%.*s", (int)(eq - s), s);
            json_object_set_new(o, key, json_stringn(eq + 1, vl));
        }
        s = le + 1;
    }
    return o;
}

static int config_get(struct apg_adm *a, const char *who, const char *addr, int32_t code,
                      json_t *servers, json_t *rows)
{
    struct apg_rcmd req;
    struct apg_adm_resp r;
    char err[512];
    apg_adm_req(&req, code);
    if (apg_adm_call(a, addr, &req, NULL, 0, &r, err, sizeof(err)) != APG_OK)
        return apg_adm_fail(a, "%s", err);
    if (r.ar_code != 0) {
        char w[200];
        snprintf(w, sizeof(w), "%s %s", who, addr);
        int rc = apg_adm_refused(a, w, &req, &r);
        apg_adm_resp_free(&r);
        return rc;
    }
    json_t *cfg = props_parse(r.ar_body, r.ar_body_len);
    apg_adm_resp_free(&r);
    const char *k;
    json_t *v;
    json_object_foreach(cfg, k, v)
    {
        json_array_append_new(rows, json_pack("{s:s,s:s,s:O}", "addr", addr, "key", k, "value", v));
    }
    json_array_append_new(servers, json_pack("{s:s,s:o}", "addr", addr, "config", cfg));
    return APG_ADM_OK;
}

static const struct apg_adm_col config_cols[] = {
    {"#Addr", "addr"}, {"#Key", "key"}, {"#Value", "value"}, {0}};

static int emit_configs(struct apg_adm *a, const char *what, json_t *servers, json_t *rows, int rc)
{
    if (json_array_size(servers) == 0) {
        json_decref(servers);
        json_decref(rows);
        return rc;
    }
    json_t *res = json_pack("{s:o,s:o}", what, servers, "rows", rows);
    if (a->ad_json)
        json_object_del(res, "rows");
    apg_adm_emit(a, res, "rows", config_cols);
    return rc;
}

static int get_broker_config(struct apg_adm *a)
{
    char **addrs;
    size_t n;
    int trc = apg_adm_targets(a, true, &addrs, &n);
    if (trc)
        return trc;
    json_t *servers = json_array(), *rows = json_array();
    int rc = APG_ADM_OK;
    for (size_t i = 0; i < n; i++) {
        int r = config_get(a, "broker", addrs[i], APG_REQ_GET_BROKER_CONFIG, servers, rows);
        if (r)
            rc = r;
    }
    apg_adm_strs_free(addrs, n);
    return emit_configs(a, "brokers", servers, rows, rc);
}

static int config_set(struct apg_adm *a, const char *who, const char *addr, int32_t code,
                      const char *body, json_t *done)
{
    struct apg_rcmd req;
    struct apg_adm_resp r;
    char err[512];
    apg_adm_req(&req, code);
    if (apg_adm_call(a, addr, &req, body, strlen(body), &r, err, sizeof(err)) != APG_OK)
        return apg_adm_fail(a, "%s", err);
    int rc = APG_ADM_OK;
    if (r.ar_code != 0) {
        char w[200];
        snprintf(w, sizeof(w), "%s %s", who, addr);
        rc = apg_adm_refused(a, w, &req, &r);
    } else {
        json_array_append_new(done, json_pack("{s:s,s:s}", "addr", addr, "result", "updated"));
    }
    apg_adm_resp_free(&r);
    return rc;
}

static bool kv_body(struct apg_adm *a, char *body, size_t len)
{
    const char *k = apg_adm_need(a, 'k');
    const char *v = k ? apg_adm_need(a, 'v') : NULL;
    if (!v)
        return false;
    if (strpbrk(k, "=\n") || strchr(v, '\n')) {
        apg_adm_usage(a, "-k must not contain '=' or a newline, -v no newline");
        return false;
    }
    snprintf(body, len, "%s=%s\n", k, v);
    return true;
}

static const struct apg_adm_col done_cols[] = {{"#Addr", "addr"}, {"#Result", "result"}, {0}};

static int update_broker_config(struct apg_adm *a)
{
    char body[4096];
    if (!kv_body(a, body, sizeof(body)))
        return APG_ADM_USAGE;
    char **addrs = NULL;
    size_t n = 0;
    bool all = apg_adm_bool(a, 'a', false);
    const char *c = apg_adm_opt(a, 'c');
    if (all && !apg_adm_opt(a, 'b') && c && *c) {
        struct apg_adm_broker *bs;
        size_t nb;
        if (!apg_adm_brokers(a, &bs, &nb))
            return APG_ADM_FAILED;
        for (size_t i = 0; i < nb; i++) {
            if (strcmp(bs[i].ab_cluster, c) != 0)
                continue;
            char **nv = apg_realloc(addrs, (n + 1) * sizeof(char *));
            if (!nv)
                break;
            addrs = nv;
            addrs[n++] = apg_strdup(bs[i].ab_addr);
        }
        apg_free(bs);
        if (!n)
            return apg_adm_fail(a, "cluster '%s' has no broker registered", c);
    } else {
        int trc = apg_adm_targets(a, true, &addrs, &n);
        if (trc)
            return trc;
    }
    json_t *done = json_array();
    int rc = APG_ADM_OK;
    for (size_t i = 0; i < n; i++) {
        int r = config_set(a, "broker", addrs[i], APG_REQ_UPDATE_BROKER_CONFIG, body, done);
        if (r)
            rc = r;
    }
    apg_adm_strs_free(addrs, n);
    apg_adm_emit(a,
                 json_pack("{s:s,s:s,s:o}", "key", apg_adm_opt(a, 'k'), "value",
                           apg_adm_opt(a, 'v'), "brokers", done),
                 "brokers", done_cols);
    return rc;
}

/* Each NameServer of -n in turn. */
static int each_namesrv(struct apg_adm *a,
                        int (*fn)(struct apg_adm *a, const char *addr, void *arg), void *arg)
{
    char *list = apg_strdup(a->ad_ns), *save = NULL;
    int rc = APG_ADM_OK;
    for (char *tok = list ? strtok_r(list, ";, ", &save) : NULL; tok;
         tok = strtok_r(NULL, ";, ", &save)) {
        int r = fn(a, tok, arg);
        if (r)
            rc = r;
    }
    apg_free(list);
    return rc;
}

struct ns_get {
    json_t *ng_servers, *ng_rows;
};

static int ns_get_one(struct apg_adm *a, const char *addr, void *arg)
{
    struct ns_get *g = arg;
    return config_get(a, "NameServer", addr, APG_REQ_GET_NAMESRV_CONFIG, g->ng_servers, g->ng_rows);
}

static int get_namesrv_config(struct apg_adm *a)
{
    struct ns_get g = {json_array(), json_array()};
    int rc = each_namesrv(a, ns_get_one, &g);
    return emit_configs(a, "namesrvs", g.ng_servers, g.ng_rows, rc);
}

struct ns_set {
    const char *ns_body;
    json_t *ns_done;
};

static int ns_set_one(struct apg_adm *a, const char *addr, void *arg)
{
    struct ns_set *s = arg;
    return config_set(a, "NameServer", addr, APG_REQ_UPDATE_NAMESRV_CONFIG, s->ns_body, s->ns_done);
}

static int update_namesrv_config(struct apg_adm *a)
{
    char body[4096];
    if (!kv_body(a, body, sizeof(body)))
        return APG_ADM_USAGE;
    struct ns_set s = {body, json_array()};
    int rc = each_namesrv(a, ns_set_one, &s);
    apg_adm_emit(a,
                 json_pack("{s:s,s:s,s:o}", "key", apg_adm_opt(a, 'k'), "value",
                           apg_adm_opt(a, 'v'), "namesrvs", s.ns_done),
                 "namesrvs", done_cols);
    return rc;
}

/* Apogee's NameServer answers GET_BROKER_RUNTIME_INFO with its counters
 * (namesrv/processor.c); RocketMQ's answers REQUEST_CODE_NOT_SUPPORTED. */
static int namesrv_status(struct apg_adm *a)
{
    struct status_acc s = {"NameServer", json_array(), json_array()};
    int rc = each_namesrv(a, status_one, &s);
    return status_emit(a, "namesrvs", &s, rc);
}

static const struct apg_adm_opt cluster_list_opts[] = {
    {'m', "moreStats", false, "print yesterday's message totals as well"},
    {'i', "interval", true, "repeat every N seconds"},
    {'c', "clusterName", true, "only this cluster"},
    {0},
};
static const struct apg_adm_opt broker_opts[] = {
    {'b', "brokerAddr", true, "broker address host:port"},
    {'c', "clusterName", true, "every master broker of this cluster"},
    {0},
};
static const struct apg_adm_opt update_broker_opts[] = {
    {'b', "brokerAddr", true, "broker address host:port"},
    {'c', "clusterName", true, "every master broker of this cluster"},
    {'a', "updateAllBroker", true, "true: with -c, masters and slaves of the cluster"},
    {'k', "key", true, "configuration key"},
    {'v', "value", true, "new value"},
    {0},
};
static const struct apg_adm_opt ns_update_opts[] = {
    {'k', "key", true, "configuration key"},
    {'v', "value", true, "new value"},
    {0},
};

const struct apg_adm_cmd apg_adm_cluster_cmds[] = {
    {"clusterList", "list the clusters' brokers with version, TPS and today's totals",
     cluster_list_opts, cluster_list,
     "brokers[]: cluster, brokerName, brokerId, addr, version, putTps, getTps, "
     "msgPutTotalToday, msgGetTotalToday, [msgPutTotalYesterday, msgGetTotalYesterday with -m], "
     "commitLogDiskRatio, error (null, or why the broker did not answer)"},
    {"brokerStatus", "print a broker's runtime statistics (GET_BROKER_RUNTIME_INFO)", broker_opts,
     broker_status, "brokers[]: addr, table{key: value string}"},
    {"namesrvStatus",
     "print each NameServer's counters: ACL refusals, connections closed for TLS, malformed "
     "or slow frames (Apogee only)",
     NULL, namesrv_status, "namesrvs[]: addr, table{key: value string}"},
    {0},
};

const struct apg_adm_cmd apg_adm_config_cmds[] = {
    {"getBrokerConfig", "print a broker's configuration (GET_BROKER_CONFIG)", broker_opts,
     get_broker_config, "brokers[]: addr, config{key: value string}"},
    {"updateBrokerConfig", "change one key of a broker's configuration (UPDATE_BROKER_CONFIG)",
     update_broker_opts, update_broker_config, "key, value, brokers[]: addr, result (\"updated\")"},
    {"getNamesrvConfig", "print each NameServer's configuration (GET_NAMESRV_CONFIG)", NULL,
     get_namesrv_config, "namesrvs[]: addr, config{key: value string}"},
    {"updateNamesrvConfig", "change one key on every NameServer (UPDATE_NAMESRV_CONFIG)",
     ns_update_opts, update_namesrv_config, "key, value, namesrvs[]: addr, result (\"updated\")"},
    {0},
};

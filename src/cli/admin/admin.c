/* `apogee admin <command> [options]`: dispatcher and shared helpers.
 *
 * The command set and option letters follow RocketMQ's mqadmin, so scripts
 * written for it run unchanged; only standard request codes are sent, so the
 * commands work against Apache RocketMQ as well. Each command family keeps
 * its table (name, options, help, run function) in its own file; this file
 * walks the tables for dispatch and `help`, parses options (-x VALUE,
 * --long VALUE, --long=VALUE), and holds the request helpers every command
 * uses: one client I/O instance (src/client/io.c, the C client's remoting
 * connections) created on first use, a synchronous call on top of it
 * (submit an op to the I/O thread, wait on a futex for the answer, copy it
 * out), NameServer failover over -n, the broker list from
 * GET_BROKER_CLUSTER_INFO, and the table / --json printer.
 *
 * Options common to every command: -n ADDR (NameServer list; NAMESRV_ADDR
 * from the environment, else 127.0.0.1:9876), --json, --timeout MS, -h,
 * and the C client's connection keys as --key=value (conn_keys: the ACL
 * account accessKey/secretKey, tls.enable and the tls.client.* paths), which
 * every request of the command uses, the producer and consumer helpers
 * included.
 *
 * Exit statuses: 0 success, 1 the server refused or could not be reached,
 * 2 the command line is wrong. Every failure prints one sentence on stderr
 * that says what to change.
 *
 * Threads: main thread only, plus the client's I/O thread behind
 * apg_adm_call(). */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/admin/admin.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "protocol/rcode.h"
#include "protocol/remoting.h"

static const struct apg_adm_cmd *const families[] = {
    apg_adm_cluster_cmds,    apg_adm_topic_cmds,  apg_adm_group_cmds,
    apg_adm_message_cmds,    apg_adm_offset_cmds, apg_adm_config_cmds,
    apg_adm_broker_ops_cmds, apg_adm_dlq_cmds,    apg_adm_doctor_cmds,
};
#define NFAMILIES (sizeof(families) / sizeof(families[0]))

static const struct apg_adm_opt common_opts[] = {
    {'n', "namesrvAddr", true,
     "NameServer list host:port;host:port (default: $NAMESRV_ADDR, "
     "else 127.0.0.1:9876)"},
    {'h', "help", false, "this help"},
    {0},
};

/* ---- options ---- */

const char *apg_adm_opt(const struct apg_adm *a, char letter)
{
    return a->ad_val[(unsigned char)letter & 127];
}

static const struct apg_adm_opt *find_opt(const struct apg_adm_cmd *c, char letter)
{
    for (const struct apg_adm_opt *o = c->ac_opts; o && o->ao_letter; o++)
        if (o->ao_letter == letter)
            return o;
    for (const struct apg_adm_opt *o = common_opts; o->ao_letter; o++)
        if (o->ao_letter == letter)
            return o;
    return NULL;
}

static const struct apg_adm_opt *find_long(const struct apg_adm_cmd *c, const char *name,
                                           size_t len)
{
    for (int pass = 0; pass < 2; pass++)
        for (const struct apg_adm_opt *o = pass ? common_opts : c->ac_opts; o && o->ao_letter; o++)
            if (strlen(o->ao_name) == len && strncmp(o->ao_name, name, len) == 0)
                return o;
    return NULL;
}

const char *apg_adm_need(struct apg_adm *a, char letter)
{
    const char *v = apg_adm_opt(a, letter);
    if (v && *v)
        return v;
    const struct apg_adm_opt *o = find_opt(a->ad_cmd, letter);
    apg_adm_usage(a, "-%c <%s> is required (%s)", letter, o ? o->ao_name : "value",
                  o ? o->ao_help : "");
    return NULL;
}

bool apg_adm_int(struct apg_adm *a, char letter, int64_t lo, int64_t hi, int64_t dflt, int64_t *out)
{
    const char *v = apg_adm_opt(a, letter);
    if (!v) {
        *out = dflt;
        return true;
    }
    if (apg_rcmd_parse_i64(v, lo, hi, out) != APG_OK) {
        apg_adm_usage(a, "-%c '%s' is not an integer in %lld..%lld", letter, v, (long long)lo,
                      (long long)hi);
        return false;
    }
    return true;
}

bool apg_adm_bool(struct apg_adm *a, char letter, bool dflt)
{
    const char *v = apg_adm_opt(a, letter);
    if (!v)
        return dflt;
    if (!*v)
        return true; /* a flag */
    return apg_rcmd_parse_bool(v);
}

bool apg_adm_time(struct apg_adm *a, char letter, int64_t dflt, int64_t *out)
{
    const char *v = apg_adm_opt(a, letter);
    if (!v) {
        *out = dflt;
        return true;
    }
    if (strcmp(v, "now") == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        *out = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
        return true;
    }
    if (apg_rcmd_parse_i64(v, -1, INT64_MAX, out) == APG_OK)
        return true;
    struct tm tm = {0};
    int ms = 0;
    if (sscanf(v, "%d-%d-%d#%d:%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &ms) >= 6) {
        tm.tm_year -= 1900;
        tm.tm_mon -= 1;
        tm.tm_isdst = -1;
        *out = (int64_t)mktime(&tm) * 1000 + ms;
        return true;
    }
    apg_adm_usage(a,
                  "-%c '%s' is not a time: give milliseconds since the epoch, 'now' or "
                  "yyyy-MM-dd#HH:mm:ss:SSS",
                  letter, v);
    return false;
}

static void vreport(struct apg_adm *a, const char *fmt, va_list ap)
{
    fprintf(stderr, "apogee admin %s: ", a->ad_cmd ? a->ad_cmd->ac_name : "");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

int apg_adm_fail(struct apg_adm *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(a, fmt, ap);
    va_end(ap);
    return APG_ADM_FAILED;
}

int apg_adm_usage(struct apg_adm *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(a, fmt, ap);
    va_end(ap);
    if (a->ad_cmd)
        fprintf(stderr, "see `apogee admin help %s`\n", a->ad_cmd->ac_name);
    return APG_ADM_USAGE;
}

/* ---- requests ---- */

void apg_adm_resp_free(struct apg_adm_resp *r)
{
    apg_free(r->ar_remark);
    apg_free(r->ar_body);
    json_decref(r->ar_ext);
    memset(r, 0, sizeof(*r));
}

void apg_adm_req(struct apg_rcmd *req, int32_t code)
{
    apg_rcmd_init_request(req, code, 0, APG_SER_JSON);
}

struct call_op {
    struct apg_cop co_op;
    const char *co_addr;
    struct apg_rcmd *co_req;
    const void *co_body;
    size_t co_blen;
    int co_timeout;
    struct apg_adm_resp *co_resp;
    apg_err_t co_err;
    char co_msg[256];
    struct apg_cwait co_wait;
};

static void call_done(struct apg_cio *io, apg_err_t e, const struct apg_rcmd *resp,
                      const char *errmsg, void *arg)
{
    (void)io;
    struct call_op *c = arg;
    c->co_err = e;
    if (e != APG_OK) {
        snprintf(c->co_msg, sizeof(c->co_msg), "%s", errmsg ? errmsg : apg_strerror(e));
    } else {
        struct apg_adm_resp *r = c->co_resp;
        r->ar_code = resp->code;
        r->ar_remark = apg_strdup(resp->remark ? resp->remark : "");
        r->ar_ext = json_object();
        for (uint32_t i = 0; i < resp->n_ext; i++)
            json_object_set_new(r->ar_ext, resp->ext[i].key, json_string(resp->ext[i].val));
        if (resp->body_len) {
            r->ar_body = apg_malloc(resp->body_len + 1);
            if (r->ar_body) {
                memcpy(r->ar_body, resp->body, resp->body_len);
                r->ar_body[resp->body_len] = 0;
                r->ar_body_len = resp->body_len;
            }
        }
    }
    apg_cwait_signal(&c->co_wait);
}

static void call_run(struct apg_cio *io, struct apg_cop *op)
{
    struct call_op *c = (struct call_op *)op;
    if (apg_cio_stopping(io)) {
        c->co_err = APG_ESHUTDOWN;
        snprintf(c->co_msg, sizeof(c->co_msg), "client is shutting down");
        apg_cwait_signal(&c->co_wait);
        return;
    }
    c->co_err = apg_cio_call(io, c->co_addr, c->co_req, c->co_body, c->co_blen, c->co_timeout,
                             call_done, c, c->co_msg, sizeof(c->co_msg));
    if (c->co_err != APG_OK)
        apg_cwait_signal(&c->co_wait);
}

static bool ensure_io(struct apg_adm *a, char *err, size_t errlen)
{
    if (a->ad_io)
        return true;
    struct apg_cio_conf cc = {
        .namesrv = a->ad_ns,
        .instance = "apogee-admin",
        .serialize = APG_SER_JSON,
        .timeout_ms = a->ad_timeout_ms,
        .conf = a->ad_conf,
    };
    a->ad_io = apg_cio_new(&cc, err, errlen);
    return a->ad_io != NULL;
}

struct apg_cio *apg_adm_io(struct apg_adm *a)
{
    char err[256];
    if (!ensure_io(a, err, sizeof(err)))
        apg_adm_fail(a, "%s", err);
    return a->ad_io;
}

apg_err_t apg_adm_call(struct apg_adm *a, const char *addr, struct apg_rcmd *req, const void *body,
                       size_t blen, struct apg_adm_resp *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof(*r));
    if (!ensure_io(a, err, errlen))
        return APG_EINVAL;
    struct call_op c;
    memset(&c, 0, sizeof(c));
    c.co_op.op_fn = call_run;
    c.co_addr = addr;
    c.co_req = req;
    c.co_body = body;
    c.co_blen = blen;
    c.co_timeout = a->ad_timeout_ms;
    c.co_resp = r;
    apg_cwait_init(&c.co_wait, 0);
    if (apg_cio_submit(a->ad_io, &c.co_op) != APG_OK) {
        apg_cwait_destroy(&c.co_wait);
        return apg_errf(APG_ESHUTDOWN, err, errlen, "client is shutting down");
    }
    apg_cwait_wait(&c.co_wait);
    apg_cwait_destroy(&c.co_wait);
    if (c.co_err != APG_OK) {
        const char *name = apg_req_code_name(req->code);
        return apg_errf(c.co_err, err, errlen, "%s (%d) to %s failed: %s", name ? name : "request",
                        req->code, addr, c.co_msg);
    }
    return APG_OK;
}

apg_err_t apg_adm_ns_call(struct apg_adm *a, struct apg_rcmd *req, const void *body, size_t blen,
                          struct apg_adm_resp *r, char *err, size_t errlen)
{
    char *list = apg_strdup(a->ad_ns), *save = NULL;
    apg_err_t e = APG_EINVAL;
    snprintf(err, errlen, "NameServer list '%s' has no address", a->ad_ns);
    char last[320] = "";
    for (char *tok = list ? strtok_r(list, ";, ", &save) : NULL; tok;
         tok = strtok_r(NULL, ";, ", &save)) {
        struct apg_rcmd copy = *req;
        e = apg_adm_call(a, tok, &copy, body, blen, r, last, sizeof(last));
        if (e == APG_OK)
            break;
    }
    if (e != APG_OK && last[0])
        snprintf(err, errlen, "no NameServer answered (%s%s): %s", a->ad_ns,
                 a->ad_ns_default ? ", the default; give -n host:port or set NAMESRV_ADDR" : "",
                 last);
    apg_free(list);
    return e;
}

int apg_adm_ask(struct apg_adm *a, const char *addr, const char *who, int32_t code,
                const char *const *kv, bool quiet, struct apg_adm_resp *r)
{
    struct apg_rcmd req;
    char err[512];
    apg_adm_req(&req, code);
    for (size_t i = 0; kv && kv[i]; i += 2)
        if (kv[i + 1])
            apg_rcmd_ext_add(&req, kv[i], kv[i + 1]);
    apg_err_t e = addr ? apg_adm_call(a, addr, &req, NULL, 0, r, err, sizeof(err))
                       : apg_adm_ns_call(a, &req, NULL, 0, r, err, sizeof(err));
    if (e != APG_OK)
        return quiet ? APG_ADM_FAILED : apg_adm_fail(a, "%s", err);
    if (r->ar_code == 0)
        return APG_ADM_OK;
    int rc = quiet ? APG_ADM_FAILED : apg_adm_refused(a, who ? who : addr, &req, r);
    apg_adm_resp_free(r);
    return rc;
}

int64_t apg_adm_queue_offset(struct apg_adm *a, const char *addr, int32_t code, const char *topic,
                             int qid, int64_t ts, bool quiet)
{
    char qs[16], tss[24];
    snprintf(qs, sizeof(qs), "%d", qid);
    snprintf(tss, sizeof(tss), "%lld", (long long)ts);
    const char *kv[] = {"topic", topic, "queueId", qs, "timestamp", ts >= 0 ? tss : NULL, NULL};
    struct apg_adm_resp r;
    if (apg_adm_ask(a, addr, NULL, code, kv, quiet, &r))
        return -1;
    int64_t off = apg_json_get_i64(r.ar_ext, "offset", -1);
    apg_adm_resp_free(&r);
    if (off < 0 && !quiet)
        apg_adm_fail(a, "%s answered %s without an offset", addr, apg_req_code_name(code));
    return off;
}

json_t *apg_adm_get_json(struct apg_adm *a, const char *addr, int32_t code, const char *k1,
                         const char *v1, const char *k2, const char *v2)
{
    const char *kv[] = {k1, v1, k1 ? k2 : NULL, v2, NULL};
    struct apg_adm_resp r;
    char err[512];
    if (apg_adm_ask(a, addr, NULL, code, kv, true, &r))
        return NULL;
    json_t *j = apg_adm_body_json(&r, err, sizeof(err));
    apg_adm_resp_free(&r);
    return j;
}

int apg_adm_refused(struct apg_adm *a, const char *who, const struct apg_rcmd *req,
                    const struct apg_adm_resp *r)
{
    const char *rq = apg_req_code_name(req->code);
    const char *rs = apg_resp_code_name(r->ar_code);
    if (r->ar_code == APG_RESP_REQUEST_CODE_NOT_SUPPORTED)
        return apg_adm_fail(a, "%s does not support %s (request code %d): %s", who,
                            rq ? rq : "this request", req->code,
                            r->ar_remark[0] ? r->ar_remark : "upgrade the server");
    return apg_adm_fail(a, "%s refused %s: %d %s%s%s", who, rq ? rq : "the request", r->ar_code,
                        rs ? rs : "", r->ar_remark[0] ? ": " : "", r->ar_remark);
}

json_t *apg_adm_body_json(const struct apg_adm_resp *r, char *err, size_t errlen)
{
    if (!r->ar_body_len) {
        snprintf(err, errlen, "the answer has no body");
        return NULL;
    }
    return apg_json_parse((const char *)r->ar_body, r->ar_body_len, err, errlen);
}

bool apg_adm_mq_key(const char *key, char *broker, size_t blen, int *qid, char *topic, size_t tlen)
{
    json_t *k = json_loads(key, 0, NULL);
    if (!json_is_object(k)) {
        json_decref(k);
        return false;
    }
    snprintf(broker, blen, "%s", apg_json_get_str(k, "brokerName", ""));
    snprintf(topic, tlen, "%s", apg_json_get_str(k, "topic", ""));
    *qid = (int)apg_json_get_i64(k, "queueId", -1);
    json_decref(k);
    return true;
}

/* ---- brokers ---- */

static int broker_cmp(const void *x, const void *y)
{
    const struct apg_adm_broker *p = x, *q = y;
    int c = strcmp(p->ab_cluster, q->ab_cluster);
    if (!c)
        c = strcmp(p->ab_name, q->ab_name);
    return c ? c : (p->ab_id > q->ab_id) - (p->ab_id < q->ab_id);
}

bool apg_adm_brokers(struct apg_adm *a, struct apg_adm_broker **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    struct apg_rcmd req;
    struct apg_adm_resp r;
    char err[512];
    apg_adm_req(&req, APG_REQ_GET_BROKER_CLUSTER_INFO);
    if (apg_adm_ns_call(a, &req, NULL, 0, &r, err, sizeof(err)) != APG_OK) {
        apg_adm_fail(a, "%s", err);
        return false;
    }
    if (r.ar_code != 0) {
        apg_adm_refused(a, "the NameServer", &req, &r);
        apg_adm_resp_free(&r);
        return false;
    }
    json_t *j = apg_adm_body_json(&r, err, sizeof(err));
    apg_adm_resp_free(&r);
    if (!j) {
        apg_adm_fail(a, "cannot read the cluster info: %s", err);
        return false;
    }
    json_t *tab = json_object_get(j, "brokerAddrTable");
    const char *name;
    json_t *bd;
    size_t cap = 0;
    json_object_foreach(tab, name, bd)
    {
        json_t *addrs = json_object_get(bd, "brokerAddrs");
        const char *id;
        json_t *addr;
        json_object_foreach(addrs, id, addr)
        {
            if (*n == cap) {
                cap = cap ? cap * 2 : 8;
                struct apg_adm_broker *nb = apg_realloc(*out, cap * sizeof(**out));
                if (!nb)
                    break;
                *out = nb;
            }
            struct apg_adm_broker *b = &(*out)[(*n)++];
            snprintf(b->ab_cluster, sizeof(b->ab_cluster), "%s",
                     apg_json_get_str(bd, "cluster", ""));
            snprintf(b->ab_name, sizeof(b->ab_name), "%s", name);
            b->ab_id = strtoll(id, NULL, 10);
            snprintf(b->ab_addr, sizeof(b->ab_addr), "%s", json_string_value(addr) ?: "");
        }
    }
    json_decref(j);
    if (*n)
        qsort(*out, *n, sizeof(**out), broker_cmp);
    return true;
}

void apg_adm_strs_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        apg_free(v[i]);
    apg_free(v);
}

static bool strs_add(char ***v, size_t *n, const char *s)
{
    char **nv = apg_realloc(*v, (*n + 1) * sizeof(char *));
    if (!nv)
        return false;
    *v = nv;
    nv[*n] = apg_strdup(s);
    return nv[(*n)++] != NULL;
}

int apg_adm_targets(struct apg_adm *a, bool required, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    const char *b = apg_adm_opt(a, 'b');
    if (b && *b)
        return strs_add(out, n, b) ? APG_ADM_OK : apg_adm_fail(a, "out of memory");
    const char *c = apg_adm_opt(a, 'c');
    bool given = c && *c;
    struct apg_adm_broker *bs;
    size_t nb;
    if (!apg_adm_brokers(a, &bs, &nb))
        return APG_ADM_FAILED;
    char clusters[512] = "";
    size_t nclusters = 0;
    for (size_t i = 0; i < nb; i++) {
        if (i > 0 && strcmp(bs[i].ab_cluster, bs[i - 1].ab_cluster) == 0)
            continue; /* sorted by cluster */
        nclusters++;
        if (strlen(clusters) + strlen(bs[i].ab_cluster) + 3 < sizeof(clusters))
            snprintf(clusters + strlen(clusters), sizeof(clusters) - strlen(clusters), "%s%s",
                     clusters[0] ? ", " : "", bs[i].ab_cluster);
    }
    /* A change without -b or -c goes to the one cluster there is; with several
     * the user must choose. */
    if (required && !given && nclusters > 1) {
        apg_free(bs);
        return apg_adm_usage(a, "give -b <broker address> or -c <cluster name> (clusters: %s)",
                             clusters);
    }
    for (size_t i = 0; i < nb; i++)
        if (bs[i].ab_id == 0 && (!given || strcmp(bs[i].ab_cluster, c) == 0))
            strs_add(out, n, bs[i].ab_addr);
    apg_free(bs);
    if (*n == 0) {
        if (given)
            return apg_adm_fail(a, "cluster '%s' has no master broker registered (clusters: %s)", c,
                                clusters[0] ? clusters : "none");
        return apg_adm_fail(a, "no master broker is registered with the NameServer %s", a->ad_ns);
    }
    return APG_ADM_OK;
}

json_t *apg_adm_route(struct apg_adm *a, const char *topic, bool quiet, int32_t *code)
{
    struct apg_rcmd req;
    struct apg_adm_resp r;
    char err[512];
    apg_adm_req(&req, APG_REQ_GET_ROUTEINFO_BY_TOPIC);
    apg_rcmd_ext_add(&req, "topic", topic);
    if (code)
        *code = -1;
    if (apg_adm_ns_call(a, &req, NULL, 0, &r, err, sizeof(err)) != APG_OK) {
        if (!quiet)
            apg_adm_fail(a, "%s", err);
        return NULL;
    }
    if (code)
        *code = r.ar_code;
    if (r.ar_code != 0) {
        if (!quiet && r.ar_code == APG_RESP_TOPIC_NOT_EXIST && strstr(r.ar_remark, "updateTopic"))
            apg_adm_fail(a, "topic '%s' has no route: %s", topic, r.ar_remark);
        else if (!quiet && r.ar_code == APG_RESP_TOPIC_NOT_EXIST)
            apg_adm_fail(a,
                         "topic '%s' has no route (%s); create it with `apogee admin "
                         "updateTopic -t %s -c <cluster>`",
                         topic, r.ar_remark, topic);
        else if (!quiet)
            apg_adm_refused(a, "the NameServer", &req, &r);
        apg_adm_resp_free(&r);
        return NULL;
    }
    json_t *j = apg_adm_body_json(&r, err, sizeof(err));
    apg_adm_resp_free(&r);
    if (!j && !quiet)
        apg_adm_fail(a, "cannot read the route of '%s': %s", topic, err);
    return j;
}

const char *apg_adm_route_master(json_t *route, const char *broker)
{
    size_t i;
    json_t *bd;
    json_array_foreach(json_object_get(route, "brokerDatas"), i, bd)
    {
        if (strcmp(apg_json_get_str(bd, "brokerName", ""), broker) == 0)
            return json_string_value(json_object_get(json_object_get(bd, "brokerAddrs"), "0"));
    }
    return NULL;
}

static bool conf_for(struct apg_adm *a, const char *group)
{
    char err[256];
    if (!a->ad_conf && !(a->ad_conf = apg_conf_new()))
        return false;
    char t[32];
    snprintf(t, sizeof(t), "%d", a->ad_timeout_ms);
    if (apg_conf_set(a->ad_conf, "namesrvAddr", a->ad_ns, err, sizeof(err)) ||
        apg_conf_set(a->ad_conf, "instanceName", "apogee-admin", err, sizeof(err)) ||
        (group && apg_conf_set(a->ad_conf, "consumerGroup", group, err, sizeof(err))) ||
        (group && apg_conf_set(a->ad_conf, "producerGroup", group, err, sizeof(err)))) {
        apg_adm_fail(a, "%s", err);
        return false;
    }
    return true;
}

apg_pull_consumer_t *apg_adm_pull_consumer(struct apg_adm *a, const char *group)
{
    char err[256];
    if (!conf_for(a, group))
        return NULL;
    apg_pull_consumer_t *c = apg_pull_consumer_new(a->ad_conf, err, sizeof(err));
    if (!c)
        apg_adm_fail(a, "cannot start a consumer: %s", err);
    return c;
}

apg_producer_t *apg_adm_producer(struct apg_adm *a, const char *group)
{
    char err[256];
    if (!conf_for(a, group))
        return NULL;
    apg_producer_t *p = apg_producer_new(a->ad_conf, err, sizeof(err));
    if (!p)
        apg_adm_fail(a, "cannot start a producer: %s", err);
    return p;
}

/* ---- output ---- */

static void cell(const json_t *v, char *buf, size_t len)
{
    if (json_is_string(v))
        snprintf(buf, len, "%s", json_string_value(v));
    else if (json_is_integer(v))
        snprintf(buf, len, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, len, "%.2f", json_real_value(v));
    else if (json_is_true(v))
        snprintf(buf, len, "true");
    else if (json_is_false(v))
        snprintf(buf, len, "false");
    else if (!v || json_is_null(v))
        snprintf(buf, len, "-");
    else {
        char *s = json_dumps(v, JSON_COMPACT);
        snprintf(buf, len, "%s", s ? s : "?");
        free(s);
    }
}

void apg_adm_table(FILE *out, const struct apg_adm_col *cols, json_t *rows)
{
    size_t ncol = 0;
    while (cols[ncol].cl_head)
        ncol++;
    size_t w[32] = {0};
    char buf[1024];
    for (size_t c = 0; c < ncol && c < 32; c++)
        w[c] = strlen(cols[c].cl_head);
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        for (size_t c = 0; c < ncol && c < 32; c++) {
            cell(json_object_get(row, cols[c].cl_key), buf, sizeof(buf));
            if (strlen(buf) > w[c])
                w[c] = strlen(buf);
        }
    }
    for (size_t c = 0; c < ncol && c < 32; c++)
        fprintf(out, "%-*s%s", c + 1 < ncol ? (int)w[c] : 0, cols[c].cl_head,
                c + 1 < ncol ? "  " : "\n");
    json_array_foreach(rows, i, row)
    {
        for (size_t c = 0; c < ncol && c < 32; c++) {
            cell(json_object_get(row, cols[c].cl_key), buf, sizeof(buf));
            fprintf(out, "%-*s%s", c + 1 < ncol ? (int)w[c] : 0, buf, c + 1 < ncol ? "  " : "\n");
        }
    }
}

int apg_adm_emit(struct apg_adm *a, json_t *result, const char *rows_key,
                 const struct apg_adm_col *cols)
{
    if (a->ad_json) {
        json_dumpf(result, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
        fputc('\n', stdout);
    } else {
        apg_adm_table(stdout, cols, rows_key ? json_object_get(result, rows_key) : result);
    }
    json_decref(result);
    fflush(stdout);
    return APG_ADM_OK;
}

static int queue_cmp(const void *x, const void *y)
{
    json_t *p = *(json_t *const *)x, *q = *(json_t *const *)y;
    int c = strcmp(apg_json_get_str(p, "topic", ""), apg_json_get_str(q, "topic", ""));
    if (!c)
        c = strcmp(apg_json_get_str(p, "brokerName", ""), apg_json_get_str(q, "brokerName", ""));
    return c ? c : (int)(apg_json_get_i64(p, "queueId", 0) - apg_json_get_i64(q, "queueId", 0));
}

json_t *apg_adm_sort_queues(json_t *rows)
{
    size_t n = json_array_size(rows);
    json_t **v = apg_calloc(n ? n : 1, sizeof(*v));
    if (!v)
        return rows;
    for (size_t i = 0; i < n; i++)
        v[i] = json_incref(json_array_get(rows, i));
    qsort(v, n, sizeof(*v), queue_cmp);
    json_t *out = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(out, v[i]);
    apg_free(v);
    json_decref(rows);
    return out;
}

const char *apg_adm_fmt_time(int64_t ms, char *buf, size_t len)
{
    if (ms <= 0) {
        snprintf(buf, len, "-");
        return buf;
    }
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    localtime_r(&s, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03d", (int)(ms % 1000));
    return buf;
}

static bool utf8_text(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] < 0x20 && p[i] != '\n' && p[i] != '\r' && p[i] != '\t')
            return false;
    json_t *s = json_stringn((const char *)p, n);
    bool ok = s != NULL;
    json_decref(s);
    return ok;
}

static void base64(const uint8_t *p, size_t n, struct apg_buf *o)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        char q[4] = {tab[v >> 18 & 63], tab[v >> 12 & 63], i + 1 < n ? tab[v >> 6 & 63] : '=',
                     i + 2 < n ? tab[v & 63] : '='};
        apg_buf_append(o, q, 4);
    }
}

json_t *apg_adm_msg_json(const apg_message_t *m, bool with_body)
{
    json_t *o = json_object();
    const char *uniq = apg_message_id(m);
    json_object_set_new(o, "topic", json_string(apg_message_topic(m) ?: ""));
    json_object_set_new(o, "msgId", json_string(uniq ? uniq : ""));
    json_object_set_new(o, "offsetMsgId", json_string(m->m_offset_id));
    json_object_set_new(o, "queueId", json_integer(m->m_queue_id));
    json_object_set_new(o, "queueOffset", json_integer(m->m_queue_offset));
    json_object_set_new(o, "commitLogOffset", json_integer(m->m_commitlog_offset));
    json_object_set_new(o, "bornTimestamp", json_integer(m->m_born_ts));
    json_object_set_new(o, "storeTimestamp", json_integer(m->m_store_ts));
    json_object_set_new(o, "reconsumeTimes", json_integer(m->m_reconsume));
    json_object_set_new(o, "tags", json_string(apg_message_tags(m) ?: ""));
    json_object_set_new(o, "keys", json_string(apg_message_keys(m) ?: ""));
    json_t *props = json_object();
    for (size_t i = 0; i < m->m_nprops; i++)
        json_object_set_new(props, m->m_props[i].pr_key, json_string(m->m_props[i].pr_val));
    json_object_set_new(o, "properties", props);
    json_object_set_new(o, "bodyLength", json_integer((json_int_t)m->m_body_len));
    if (with_body) {
        if (utf8_text(m->m_body, m->m_body_len)) {
            json_object_set_new(o, "body", json_stringn((const char *)m->m_body, m->m_body_len));
            json_object_set_new(o, "bodyEncoding", json_string("utf8"));
        } else {
            struct apg_buf b = APG_BUF_INIT;
            base64(m->m_body, m->m_body_len, &b);
            json_object_set_new(o, "body", json_stringn((const char *)b.b_data, b.b_len));
            json_object_set_new(o, "bodyEncoding", json_string("base64"));
            apg_buf_free(&b);
        }
    }
    return o;
}

/* ---- dispatch and help ---- */

static const struct apg_adm_cmd *find_cmd(const char *name)
{
    for (size_t f = 0; f < NFAMILIES; f++)
        for (const struct apg_adm_cmd *c = families[f]; c->ac_name; c++)
            if (strcmp(c->ac_name, name) == 0)
                return c;
    /* mqadmin's names are camelCase; accept any case. */
    for (size_t f = 0; f < NFAMILIES; f++)
        for (const struct apg_adm_cmd *c = families[f]; c->ac_name; c++)
            if (strcasecmp(c->ac_name, name) == 0)
                return c;
    return NULL;
}

static void print_opts(FILE *out, const struct apg_adm_opt *o)
{
    for (; o && o->ao_letter; o++) {
        char lhs[64];
        snprintf(lhs, sizeof(lhs), "-%c, --%s%s", o->ao_letter, o->ao_name,
                 o->ao_arg ? " <value>" : "");
        fprintf(out, "  %-34s %s\n", lhs, o->ao_help);
    }
}

static void cmd_help(FILE *out, const struct apg_adm_cmd *c)
{
    fprintf(out, "usage: apogee admin %s [options]\n\n%s\n\noptions:\n", c->ac_name, c->ac_summary);
    print_opts(out, c->ac_opts);
    print_opts(out, common_opts);
    fprintf(out, "  %-34s %s\n  %-34s %s\n", "--json", "print the result as JSON", "--timeout <ms>",
            "time to wait for each answer (default 3000)");
    fprintf(out, "  %-34s %s\n  %-34s %s\n", "--accessKey <ak> --secretKey <sk>",
            "sign every request for a broker with aclEnable=true", "--tls.enable=true",
            "connect over TLS (--tls.client.trustCertPath, certPath, keyPath as the C client)");
    if (c->ac_json)
        fprintf(out, "\n--json fields: %s\n", c->ac_json);
}

static void list_help(FILE *out)
{
    fprintf(out, "usage: apogee admin <command> [options]   (apogee admin help <command>)\n\n"
                 "The RocketMQ mqadmin commands with mqadmin's option letters, plus dlq and "
                 "doctor.\nCommon options: -n <namesrv addr> (default $NAMESRV_ADDR, else "
                 "127.0.0.1:9876), --json, --timeout <ms>, --accessKey/--secretKey (ACL),\n"
                 "--tls.enable=true and --tls.client.* (TLS).\n\ncommands:\n");
    for (size_t f = 0; f < NFAMILIES; f++)
        for (const struct apg_adm_cmd *c = families[f]; c->ac_name; c++)
            fprintf(out, "  %-24s %s\n", c->ac_name, c->ac_summary);
}

/* C client keys a command line may set for every connection (conf.def). */
static const char *const conn_keys[] = {
    "accessKey",
    "secretKey",
    "tls.enable",
    "tls.client.trustCertPath",
    "tls.client.authServer",
    "tls.client.certPath",
    "tls.client.keyPath",
};

/* --accessKey=AK, --tls.enable=true, ... (or the value as the next word):
 * 1 taken, 0 not a connection key, 2 refused (after printing why). */
static int parse_conn_key(struct apg_adm *a, const char *s, const char *next, int *i)
{
    if (s[0] != '-' || s[1] != '-')
        return 0;
    const char *eq = strchr(s + 2, '=');
    size_t klen = eq ? (size_t)(eq - s - 2) : strlen(s + 2);
    for (size_t k = 0; k < sizeof(conn_keys) / sizeof(conn_keys[0]); k++) {
        if (strlen(conn_keys[k]) != klen || strncmp(conn_keys[k], s + 2, klen) != 0)
            continue;
        const char *val = eq ? eq + 1 : next;
        if (val == NULL) {
            apg_adm_usage(a, "--%s needs a value", conn_keys[k]);
            return 2;
        }
        if (!eq)
            (*i)++;
        char err[256];
        if ((!a->ad_conf && !(a->ad_conf = apg_conf_new())) ||
            apg_conf_set(a->ad_conf, conn_keys[k], val, err, sizeof(err)) != APG_OK) {
            apg_adm_usage(a, "--%s=%s: %s", conn_keys[k], val, a->ad_conf ? err : "out of memory");
            return 2;
        }
        return 1;
    }
    return 0;
}

static int parse(struct apg_adm *a, int argc, char **argv, int first)
{
    const struct apg_adm_cmd *c = a->ad_cmd;
    for (int i = first; i < argc; i++) {
        const char *s = argv[i];
        const struct apg_adm_opt *o = NULL;
        const char *val = NULL;
        if (strcmp(s, "--json") == 0) {
            a->ad_json = true;
            continue;
        }
        int ck = parse_conn_key(a, s, i + 1 < argc ? argv[i + 1] : NULL, &i);
        if (ck == 2)
            return APG_ADM_USAGE;
        if (ck == 1)
            continue;
        if (strncmp(s, "--timeout", 9) == 0) {
            const char *v = s[9] == '=' ? s + 10 : (i + 1 < argc ? argv[++i] : "");
            int64_t t;
            if (apg_rcmd_parse_i64(v, 1, 3600000, &t) != APG_OK)
                return apg_adm_usage(a, "--timeout '%s' is not a number of milliseconds", v);
            a->ad_timeout_ms = (int)t;
            continue;
        }
        if (s[0] == '-' && s[1] == '-' && s[2]) {
            const char *eq = strchr(s + 2, '=');
            o = find_long(c, s + 2, eq ? (size_t)(eq - s - 2) : strlen(s + 2));
            if (eq)
                val = eq + 1;
        } else if (s[0] == '-' && s[1] && !s[2]) {
            o = find_opt(c, s[1]);
        } else if (s[0] == '-' && s[1] && s[2]) {
            o = find_opt(c, s[1]); /* -tTopic */
            if (o && o->ao_arg)
                val = s + 2;
            else
                o = NULL;
        } else {
            return apg_adm_usage(a, "unexpected argument '%s' (options are -x <value>)", s);
        }
        if (!o)
            return apg_adm_usage(a, "unknown option '%s'", s);
        if (o->ao_letter == 'h') {
            cmd_help(stdout, c);
            return -1;
        }
        if (o->ao_arg && !val) {
            /* A value may be omitted for a boolean option at the end. */
            if (i + 1 >= argc)
                return apg_adm_usage(a, "option -%c (%s) needs a value", o->ao_letter, o->ao_name);
            val = argv[++i];
        }
        a->ad_val[(unsigned char)o->ao_letter & 127] = val ? val : "";
    }
    return 0;
}

int apg_cli_admin_main(int argc, char **argv)
{
    static struct apg_adm adm;
    struct apg_adm *a = &adm;
    apg_log_set_level(APG_LOG_ERROR);
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        list_help(argc < 2 ? stderr : stdout);
        return argc < 2 ? APG_ADM_USAGE : APG_ADM_OK;
    }
    if (strcmp(argv[1], "help") == 0) {
        if (argc < 3) {
            list_help(stdout);
            return APG_ADM_OK;
        }
        const struct apg_adm_cmd *c = find_cmd(argv[2]);
        char two[128];
        if (!c && argc > 3 && snprintf(two, sizeof(two), "%s %s", argv[2], argv[3]) > 0)
            c = find_cmd(two);
        if (!c) {
            fprintf(stderr, "apogee admin: unknown command '%s'; `apogee admin help` lists them\n",
                    argv[2]);
            return APG_ADM_USAGE;
        }
        cmd_help(stdout, c);
        return APG_ADM_OK;
    }
    /* Two-word commands ("dlq list") take the second word from argv[2]. */
    int first = 2;
    a->ad_cmd = find_cmd(argv[1]);
    char two[128];
    if (!a->ad_cmd && argc > 2 && snprintf(two, sizeof(two), "%s %s", argv[1], argv[2]) > 0 &&
        (a->ad_cmd = find_cmd(two)) != NULL)
        first = 3;
    if (!a->ad_cmd) {
        size_t l = strlen(argv[1]);
        for (size_t f = 0; f < NFAMILIES; f++)
            for (const struct apg_adm_cmd *c = families[f]; c->ac_name; c++)
                if (strncmp(c->ac_name, argv[1], l) == 0 && c->ac_name[l] == ' ') {
                    fprintf(stderr,
                            "apogee admin %s: give a subcommand, e.g. `apogee admin %s`; "
                            "`apogee admin help` lists them\n",
                            argv[1], c->ac_name);
                    return APG_ADM_USAGE;
                }
        fprintf(stderr, "apogee admin: unknown command '%s'; `apogee admin help` lists them\n",
                argv[1]);
        return APG_ADM_USAGE;
    }
    a->ad_timeout_ms = 3000;
    int rc = parse(a, argc, argv, first);
    if (rc)
        return rc < 0 ? APG_ADM_OK : rc;
    a->ad_dry_run = apg_adm_opt(a, 'D') != NULL;
    a->ad_ns = apg_adm_opt(a, 'n');
    if (!a->ad_ns || !*a->ad_ns)
        a->ad_ns = getenv("NAMESRV_ADDR");
    if (!a->ad_ns || !*a->ad_ns) {
        a->ad_ns = "127.0.0.1:9876";
        a->ad_ns_default = true;
    }
    rc = a->ad_cmd->ac_run(a);
    fflush(stdout);
    apg_cio_free(a->ad_io);
    apg_conf_destroy(a->ad_conf);
    return rc;
}

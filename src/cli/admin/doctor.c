/* `apogee admin doctor [-t topic] [-g group]`: checks a deployment the
 * way a person would with the other commands, and prints each problem with
 * the command that fixes it.
 *
 * Checks, in order (each one a row: check, status ok|warn|fail, detail,
 * fix):
 *   namesrv       every NameServer of -n answers GET_BROKER_CLUSTER_INFO
 *   brokers       at least one master is registered, and each registered
 *                 broker answers GET_BROKER_RUNTIME_INFO
 *   autoCreate    autoCreateTopicEnable as the brokers report it
 *                 (GET_BROKER_CONFIG; when a broker does not support that,
 *                 whether the NameServer has a route for the TBW102 template)
 * with -t:
 *   route         the topic has a route, with queues on a live master
 *   perm          every broker's queues are readable and writable
 * with -g:
 *   group         the subscription group exists on the masters
 *   clients       consumers of the group are online
 *                 (GET_CONSUMER_CONNECTION_LIST), one consumeType and
 *                 messageModel, and every broker holds the same
 *                 subscriptions (brokers keep the last heartbeat's; a
 *                 difference means the group's clients subscribe
 *                 differently); every subscribed topic has a route
 *   lag           GET_CONSUME_STATS: messages waiting, and whether anyone
 *                 consumes them
 *   dlq           messages in %DLQ%<group>
 *
 * Exit status 1 when a check failed, else 0 (warnings included).
 *
 * Threads: main thread (admin.h). */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli/admin/admin.h"
#include "common/json.h"
#include "common/mem.h"
#include "protocol/rcode.h"
#include "protocol/remoting.h"

/* Lag above which an online group is reported. */
#define LAG_WARN 10000

struct doc {
    json_t *dc_rows;
    bool dc_failed;
    char dc_cluster[128]; /* a cluster name for the fix commands */
};

static void add(struct doc *d, const char *check, const char *status, const char *fix,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void add(struct doc *d, const char *check, const char *status, const char *fix,
                const char *fmt, ...)
{
    char detail[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    json_array_append_new(d->dc_rows, json_pack("{s:s,s:s,s:s,s:s?}", "check", check, "status",
                                                status, "detail", detail, "fix", fix));
    if (strcmp(status, "fail") == 0)
        d->dc_failed = true;
}

static bool check_namesrv(struct apg_adm *a, struct doc *d)
{
    char *list = apg_strdup(a->ad_ns), *save = NULL;
    int up = 0;
    for (char *tok = list ? strtok_r(list, ";, ", &save) : NULL; tok;
         tok = strtok_r(NULL, ";, ", &save)) {
        struct apg_rcmd req;
        struct apg_adm_resp r;
        char err[512], fix[256];
        apg_adm_req(&req, APG_REQ_GET_BROKER_CLUSTER_INFO);
        if (apg_adm_call(a, tok, &req, NULL, 0, &r, err, sizeof(err)) != APG_OK) {
            snprintf(fix, sizeof(fix),
                     "start it (`apogee namesrv` or `apogee standalone`), or "
                     "give the right address with -n / NAMESRV_ADDR");
            add(d, "namesrv", "fail", fix, "NameServer %s does not answer: %s", tok, err);
            continue;
        }
        apg_adm_resp_free(&r);
        up++;
        add(d, "namesrv", "ok", NULL, "NameServer %s answers", tok);
    }
    apg_free(list);
    return up > 0;
}

static void check_brokers(struct apg_adm *a, struct doc *d, struct apg_adm_broker *bs, size_t n)
{
    size_t masters = 0;
    for (size_t i = 0; i < n; i++) {
        if (bs[i].ab_id == 0) {
            masters++;
            if (!d->dc_cluster[0])
                snprintf(d->dc_cluster, sizeof(d->dc_cluster), "%s", bs[i].ab_cluster);
        }
        struct apg_rcmd req;
        struct apg_adm_resp r;
        char err[512];
        apg_adm_req(&req, APG_REQ_GET_BROKER_RUNTIME_INFO);
        if (apg_adm_call(a, bs[i].ab_addr, &req, NULL, 0, &r, err, sizeof(err)) != APG_OK) {
            add(d, "brokers", "fail",
                "check the broker's brokerIP1 / listenPort, or that it is running",
                "broker %s (%s, id %lld) is registered but does not answer: %s", bs[i].ab_name,
                bs[i].ab_addr, (long long)bs[i].ab_id, err);
            continue;
        }
        apg_adm_resp_free(&r);
        add(d, "brokers", "ok", NULL, "broker %s id %lld at %s (cluster %s) answers", bs[i].ab_name,
            (long long)bs[i].ab_id, bs[i].ab_addr, bs[i].ab_cluster);
    }
    if (masters == 0)
        add(d, "brokers", "fail", "start a broker: `apogee broker -n <namesrv>`",
            "no master broker is registered with the NameServer");
}

static void check_auto_create(struct apg_adm *a, struct doc *d, struct apg_adm_broker *bs, size_t n)
{
    bool known = false;
    for (size_t i = 0; i < n; i++) {
        if (bs[i].ab_id != 0)
            continue;
        struct apg_rcmd req;
        struct apg_adm_resp r;
        char err[512];
        apg_adm_req(&req, APG_REQ_GET_BROKER_CONFIG);
        if (apg_adm_call(a, bs[i].ab_addr, &req, NULL, 0, &r, err, sizeof(err)) != APG_OK)
            continue;
        if (r.ar_code == 0) {
            known = true;
            const char *body = (const char *)r.ar_body;
            const char *k = body ? strstr(body, "autoCreateTopicEnable=") : NULL;
            bool on = k && strncmp(k + 22, "true", 4) == 0;
            add(d, "autoCreate", "ok", NULL, "broker %s: autoCreateTopicEnable=%s (%s)",
                bs[i].ab_name, on ? "true" : "false",
                on ? "unknown topics are created on first send"
                   : "topics must be created with updateTopic");
        }
        apg_adm_resp_free(&r);
    }
    if (known)
        return;
    int32_t code;
    json_t *rt = apg_adm_route(a, "TBW102", true, &code);
    add(d, "autoCreate", "ok", NULL,
        "the auto-create template TBW102 %s (the brokers do not report their configuration)",
        rt ? "has a route: unknown topics are created on first send"
           : "has no route: topics must be created with updateTopic");
    json_decref(rt);
}

static void check_topic(struct apg_adm *a, struct doc *d, const char *topic, const char *why)
{
    char fix[512];
    const char *cl = d->dc_cluster[0] ? d->dc_cluster : "DefaultCluster";
    int32_t code;
    json_t *rt = apg_adm_route(a, topic, true, &code);
    if (!rt) {
        snprintf(fix, sizeof(fix), "apogee admin updateTopic -t %s -c %s", topic, cl);
        add(d, "route", "fail", fix, "No route info of this topic: %s%s", topic, why);
        return;
    }
    size_t i, live = 0;
    json_t *qd;
    json_array_foreach(json_object_get(rt, "queueDatas"), i, qd)
    {
        const char *bn = apg_json_get_str(qd, "brokerName", "");
        int64_t perm = apg_json_get_i64(qd, "perm", 0);
        if (apg_adm_route_master(rt, bn))
            live++;
        if ((perm & 6) != 6) {
            snprintf(fix, sizeof(fix), "apogee admin updateTopicPerm -t %s -c %s -p 6", topic, cl);
            add(d, "perm", "warn", fix, "topic %s on broker %s is %s (perm %lld)", topic, bn,
                (perm & 2) ? "not readable" : "not writable", (long long)perm);
        } else {
            add(d, "perm", "ok", NULL,
                "topic %s on broker %s: %lld read / %lld write queues, "
                "read and write",
                topic, bn, (long long)apg_json_get_i64(qd, "readQueueNums", 0),
                (long long)apg_json_get_i64(qd, "writeQueueNums", 0));
        }
    }
    if (live == 0) {
        snprintf(fix, sizeof(fix),
                 "start the topic's brokers, or apogee admin updateTopic -t %s "
                 "-c %s",
                 topic, cl);
        add(d, "route", "fail", fix, "topic %s has a route but no queue on a live master", topic);
    } else {
        add(d, "route", "ok", NULL, "topic %s has a route (%zu broker(s) with a master)%s", topic,
            live, why);
    }
    json_decref(rt);
}

static void check_group(struct apg_adm *a, struct doc *d, struct apg_adm_broker *bs, size_t n,
                        const char *g, const char *topic)
{
    char fix[512];
    const char *cl = d->dc_cluster[0] ? d->dc_cluster : "DefaultCluster";
    /* Subscription group config. */
    bool exists = false;
    for (size_t i = 0; i < n; i++) {
        if (bs[i].ab_id != 0)
            continue;
        json_t *j = apg_adm_get_json(a, bs[i].ab_addr, APG_REQ_GET_ALL_SUBSCRIPTIONGROUP_CONFIG,
                                     NULL, NULL, NULL, NULL);
        exists |= json_object_get(json_object_get(j, "subscriptionGroupTable"), g) != NULL;
        json_decref(j);
    }
    snprintf(fix, sizeof(fix), "apogee admin updateSubGroup -g %s -c %s", g, cl);
    if (exists)
        add(d, "group", "ok", NULL, "subscription group %s exists", g);
    else
        add(d, "group", "warn", fix,
            "subscription group %s does not exist on the masters (consumers can join only while "
            "autoCreateSubscriptionGroup=true)",
            g);

    /* Online clients and their subscriptions, per broker. */
    json_t *subs_seen = NULL;
    char subs_from[128] = "";
    json_t *clients = json_array();
    const char *type = NULL, *model = NULL;
    bool differ = false;
    json_t *conns[64] = {0};
    size_t nconn = 0;
    for (size_t i = 0; i < n && nconn < 64; i++) {
        if (bs[i].ab_id != 0)
            continue;
        json_t *j = apg_adm_get_json(a, bs[i].ab_addr, APG_REQ_GET_CONSUMER_CONNECTION_LIST,
                                     "consumerGroup", g, NULL, NULL);
        if (!j)
            continue;
        conns[nconn++] = j;
        size_t k, m;
        json_t *c, *x;
        json_array_foreach(json_object_get(j, "connectionSet"), k, c)
        {
            const char *id = apg_json_get_str(c, "clientId", "");
            bool dup = false;
            json_array_foreach(clients, m, x) dup |= strcmp(json_string_value(x), id) == 0;
            if (!dup)
                json_array_append_new(clients, json_string(id));
        }
        const char *t = apg_json_get_str(j, "consumeType", ""),
                   *mo = apg_json_get_str(j, "messageModel", "");
        if ((type && strcmp(type, t) != 0) || (model && strcmp(model, mo) != 0))
            differ = true;
        type = t;
        model = mo;
        /* Compare topic -> subString across brokers. */
        json_t *subs = json_object();
        const char *topic_k;
        json_t *sd;
        json_object_foreach(json_object_get(j, "subscriptionTable"), topic_k, sd)
        {
            json_object_set_new(subs, topic_k, json_string(apg_json_get_str(sd, "subString", "")));
        }
        if (!subs_seen) {
            subs_seen = subs;
            snprintf(subs_from, sizeof(subs_from), "%s", bs[i].ab_addr);
        } else {
            if (!json_equal(subs_seen, subs)) {
                char *s1 = json_dumps(subs_seen, JSON_COMPACT | JSON_SORT_KEYS);
                char *s2 = json_dumps(subs, JSON_COMPACT | JSON_SORT_KEYS);
                add(d, "clients", "fail",
                    "give every client of the group the same subscriptions (topics and tag "
                    "expressions), or use a separate group for each",
                    "the group's clients subscribe differently: broker %s holds %s, broker %s "
                    "holds %s",
                    subs_from, s1 ? s1 : "?", bs[i].ab_addr, s2 ? s2 : "?");
                free(s1);
                free(s2);
            }
            json_decref(subs);
        }
    }
    size_t nclients = json_array_size(clients);
    if (nclients == 0) {
        add(d, "clients", "warn", "start the group's consumers",
            "no consumer of group %s is online", g);
    } else {
        add(d, "clients", differ ? "fail" : "ok",
            differ ? "run the group's clients with one consumption mode" : NULL,
            "%zu client(s) of group %s online (%s, %s)%s", nclients, g, type ? type : "?",
            model ? model : "?", differ ? ": the brokers report different modes" : "");
        const char *topic_k;
        json_t *v;
        json_object_foreach(subs_seen, topic_k, v)
        {
            if (strncmp(topic_k, "%RETRY%", 7) == 0)
                continue;
            char why[300];
            snprintf(why, sizeof(why), " (subscribed by group %s with '%s')", g,
                     json_string_value(v));
            if (!topic || strcmp(topic, topic_k) != 0)
                check_topic(a, d, topic_k, why);
        }
    }
    json_decref(subs_seen);
    json_decref(clients);
    for (size_t i = 0; i < nconn; i++)
        json_decref(conns[i]);

    /* Lag, and the topic with the most of it (for the fix). */
    int64_t lag = 0, worst = 0;
    char worst_topic[256] = "";
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        if (bs[i].ab_id != 0)
            continue;
        json_t *j = apg_adm_get_json(a, bs[i].ab_addr, APG_REQ_GET_CONSUME_STATS, "consumerGroup",
                                     g, topic ? "topic" : NULL, topic);
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(j, "offsetTable"), k, v)
        {
            any = true;
            int64_t q =
                apg_json_get_i64(v, "brokerOffset", 0) - apg_json_get_i64(v, "consumerOffset", 0);
            char b[128], t[256];
            int qid;
            if (q > worst && apg_adm_mq_key(k, b, sizeof(b), &qid, t, sizeof(t))) {
                worst = q;
                snprintf(worst_topic, sizeof(worst_topic), "%s", t);
            }
            lag += q;
        }
        json_decref(j);
    }
    if (!any) {
        add(d, "lag", "ok", NULL, "group %s has no committed offsets%s%s", g,
            topic ? " for topic " : "", topic ? topic : "");
    } else if (lag > 0 && nclients == 0) {
        snprintf(fix, sizeof(fix),
                 "start the group's consumers, or drop the backlog: apogee admin "
                 "skipAccumulatedMessage -g %s -t %s",
                 g, worst_topic);
        add(d, "lag", "warn", fix, "%lld message(s) wait for group %s and no consumer is online",
            (long long)lag, g);
    } else if (lag > LAG_WARN) {
        snprintf(fix, sizeof(fix),
                 "add consumers to group %s (apogee admin consumerProgress -g %s "
                 "shows the queues)",
                 g, g);
        add(d, "lag", "warn", fix, "group %s is %lld message(s) behind", g, (long long)lag);
    } else {
        add(d, "lag", "ok", NULL, "group %s is %lld message(s) behind", g, (long long)lag);
    }

    /* Dead letters. */
    int64_t dead = apg_adm_dlq_depth(a, g);
    if (dead > 0) {
        snprintf(fix, sizeof(fix),
                 "look at them with `apogee admin dlq show -g %s`, then `apogee admin dlq resend "
                 "-g %s`",
                 g, g);
        add(d, "dlq", "warn", fix, "%lld message(s) of group %s are in %%DLQ%%%s", (long long)dead,
            g, g);
    } else {
        add(d, "dlq", "ok", NULL, "no dead letters for group %s", g);
    }
}

static int doctor(struct apg_adm *a)
{
    struct doc d = {json_array(), false, ""};
    const char *topic = apg_adm_opt(a, 't');
    const char *group = apg_adm_opt(a, 'g');
    if (topic && !*topic)
        topic = NULL;
    if (group && !*group)
        group = NULL;
    if (check_namesrv(a, &d)) {
        struct apg_adm_broker *bs = NULL;
        size_t n = 0;
        if (apg_adm_brokers(a, &bs, &n)) {
            check_brokers(a, &d, bs, n);
            check_auto_create(a, &d, bs, n);
            if (topic)
                check_topic(a, &d, topic, "");
            if (group)
                check_group(a, &d, bs, n, group, topic);
        }
        apg_free(bs);
    }
    size_t problems = 0, i;
    json_t *r;
    json_array_foreach(d.dc_rows, i, r) problems +=
        strcmp(apg_json_get_str(r, "status", ""), "ok") != 0;
    if (a->ad_json) {
        apg_adm_emit(a,
                     json_pack("{s:b,s:I,s:o}", "ok", !d.dc_failed, "problems",
                               (json_int_t)problems, "checks", d.dc_rows),
                     NULL, NULL);
    } else {
        json_array_foreach(d.dc_rows, i, r)
        {
            const char *st = apg_json_get_str(r, "status", "");
            printf("[%-4s] %-10s %s\n", strcmp(st, "ok") == 0 ? "ok" : st,
                   apg_json_get_str(r, "check", ""), apg_json_get_str(r, "detail", ""));
            const char *fix = apg_json_get_str(r, "fix", NULL);
            if (fix)
                printf("       %-10s fix: %s\n", "", fix);
        }
        printf("%zu problem(s)\n", problems);
        json_decref(d.dc_rows);
    }
    return d.dc_failed ? APG_ADM_FAILED : APG_ADM_OK;
}

static const struct apg_adm_opt doctor_opts[] = {
    {'t', "topic", true, "also check this topic's route and permissions"},
    {'g', "group", true, "also check this consumer group: clients, subscriptions, lag, DLQ"},
    {0},
};

const struct apg_adm_cmd apg_adm_doctor_cmds[] = {
    {"doctor", "check NameServers, brokers, a topic and a group; print each problem's fix",
     doctor_opts, doctor,
     "ok (no check failed), problems (warn + fail), checks[]: check, status (ok|warn|fail), "
     "detail, fix (a command or action; absent when ok)"},
    {0},
};

/* `apogee admin` offset commands: resetOffsetByTime and
 * skipAccumulatedMessage (a reset to each queue's end, timestamp -1).
 *
 * Plan first, then act. For every queue of the topic's route (or the one
 * queue of -b/-q) the plan holds the group's committed offset now
 * (GET_CONSUME_STATS 208; -1 when the group has none) and the offset the
 * reset moves it to: the queue's end for -1, an explicit -o offset, or the
 * first offset stored at or after the timestamp (SEARCH_OFFSET_BY_TIMESTAMP
 * 29, the same lookup the broker does). Without force (-f false) an offset
 * only moves back, never forward. `--dry-run` prints that plan and sends
 * nothing that changes state; mqadmin has no such mode.
 *
 * The reset itself is INVOKE_BROKER_TO_RESET_OFFSET (222) on each master,
 * which writes the offsets and tells the online consumers
 * (RESET_CONSUMER_CLIENT_OFFSET). When the broker answers that no consumer
 * is online (CONSUMER_NOT_ONLINE), the planned offsets are written with
 * UPDATE_CONSUMER_OFFSET (15), as mqadmin does with its older method; a
 * single queue (-b -q -o) is always written that way. The table shows each
 * queue's offset before and after.
 *
 * Threads: main thread (admin.h). */
#include <stdlib.h>
#include <string.h>

#include "cli/admin/admin.h"
#include "common/json.h"
#include "common/mem.h"
#include "protocol/rcode.h"
#include "protocol/remoting.h"

struct plan_q {
    char pq_broker[128];
    const char *pq_addr; /* borrows the route */
    int pq_qid;
    int64_t pq_before; /* -1: no committed offset */
    int64_t pq_max;
    int64_t pq_after;
};

struct plan {
    const char *pl_group, *pl_topic;
    int64_t pl_ts;
    bool pl_force;
    json_t *pl_route;
    struct plan_q *pl_q;
    size_t pl_n;
};

/* The planned queue a normalised MessageQueue map key names, or NULL. */
static struct plan_q *plan_find(struct plan *p, const char *key)
{
    char b[128], t[256];
    int qid;
    if (!apg_adm_mq_key(key, b, sizeof(b), &qid, t, sizeof(t)))
        return NULL;
    for (size_t i = 0; i < p->pl_n; i++)
        if (p->pl_q[i].pq_qid == qid && strcmp(p->pl_q[i].pq_broker, b) == 0)
            return &p->pl_q[i];
    return NULL;
}

/* Committed and max offsets of every queue on addr from GET_CONSUME_STATS. */
static void fill_stats(struct apg_adm *a, struct plan *p, const char *addr)
{
    json_t *j = apg_adm_get_json(a, addr, APG_REQ_GET_CONSUME_STATS, "consumerGroup", p->pl_group,
                                 "topic", p->pl_topic);
    const char *key;
    json_t *v;
    json_object_foreach(json_object_get(j, "offsetTable"), key, v)
    {
        struct plan_q *q = plan_find(p, key);
        if (q) {
            q->pq_before = apg_json_get_i64(v, "consumerOffset", -1);
            q->pq_max = apg_json_get_i64(v, "brokerOffset", -1);
        }
    }
    json_decref(j);
}

/* Builds the plan (queues filtered by broker / qid when given). */
static int plan_build(struct apg_adm *a, struct plan *p, const char *broker, int qid,
                      int64_t offset)
{
    p->pl_route = apg_adm_route(a, p->pl_topic, false, NULL);
    if (!p->pl_route)
        return APG_ADM_FAILED;
    size_t i;
    json_t *qd;
    json_array_foreach(json_object_get(p->pl_route, "queueDatas"), i, qd)
    {
        const char *bn = apg_json_get_str(qd, "brokerName", "");
        const char *addr = apg_adm_route_master(p->pl_route, bn);
        if (!addr || (broker && strcmp(broker, bn) != 0))
            continue;
        int64_t nq = apg_json_get_i64(qd, "readQueueNums", 0);
        for (int q = 0; q < nq; q++) {
            if (qid >= 0 && q != qid)
                continue;
            struct plan_q *v = apg_realloc(p->pl_q, (p->pl_n + 1) * sizeof(*v));
            if (!v)
                return apg_adm_fail(a, "out of memory");
            p->pl_q = v;
            struct plan_q *pq = &p->pl_q[p->pl_n++];
            memset(pq, 0, sizeof(*pq));
            snprintf(pq->pq_broker, sizeof(pq->pq_broker), "%s", bn);
            pq->pq_addr = addr;
            pq->pq_qid = q;
            pq->pq_before = -1;
            pq->pq_max = -1;
        }
        fill_stats(a, p, addr);
    }
    if (p->pl_n == 0)
        return apg_adm_fail(a, "topic '%s' has no queue%s%s%s", p->pl_topic,
                            broker ? " on broker " : "", broker ? broker : "",
                            qid >= 0 ? " with that queue id" : "");
    for (size_t k = 0; k < p->pl_n; k++) {
        struct plan_q *q = &p->pl_q[k];
        if (q->pq_max < 0)
            q->pq_max = apg_adm_queue_offset(a, q->pq_addr, APG_REQ_GET_MAX_OFFSET, p->pl_topic,
                                             q->pq_qid, -1, true);
        int64_t at;
        if (offset >= 0)
            at = offset;
        else if (p->pl_ts == -1)
            at = q->pq_max;
        else if ((at = apg_adm_queue_offset(a, q->pq_addr, APG_REQ_SEARCH_OFFSET_BY_TIMESTAMP,
                                            p->pl_topic, q->pq_qid, p->pl_ts, false)) < 0)
            return APG_ADM_FAILED;
        if (at < 0)
            at = 0;
        q->pq_after = p->pl_force || q->pq_before < 0 || at < q->pq_before ? at : q->pq_before;
    }
    return APG_ADM_OK;
}

static int update_offset(struct apg_adm *a, struct plan *p, struct plan_q *q)
{
    char qs[16], os[24];
    snprintf(qs, sizeof(qs), "%d", q->pq_qid);
    snprintf(os, sizeof(os), "%lld", (long long)q->pq_after);
    const char *kv[] = {"consumerGroup", p->pl_group, "topic", p->pl_topic, "queueId", qs,
                        "commitOffset",  os,          NULL};
    struct apg_adm_resp r;
    int rc = apg_adm_ask(a, q->pq_addr, NULL, APG_REQ_UPDATE_CONSUMER_OFFSET, kv, false, &r);
    if (!rc)
        apg_adm_resp_free(&r);
    return rc;
}

/* INVOKE_BROKER_TO_RESET_OFFSET on one master; on CONSUMER_NOT_ONLINE the
 * planned offsets of its queues are written directly. *how says which. */
static int reset_broker(struct apg_adm *a, struct plan *p, const char *addr, const char **how)
{
    char ts[24], err[512];
    snprintf(ts, sizeof(ts), "%lld", (long long)p->pl_ts);
    struct apg_rcmd req;
    struct apg_adm_resp r;
    apg_adm_req(&req, APG_REQ_INVOKE_BROKER_TO_RESET_OFFSET);
    apg_rcmd_ext_add(&req, "topic", p->pl_topic);
    apg_rcmd_ext_add(&req, "group", p->pl_group);
    apg_rcmd_ext_add(&req, "timestamp", ts);
    apg_rcmd_ext_add(&req, "isForce", p->pl_force ? "true" : "false");
    if (apg_adm_call(a, addr, &req, NULL, 0, &r, err, sizeof(err)) != APG_OK)
        return apg_adm_fail(a, "%s", err);
    int rc = APG_ADM_OK;
    if (r.ar_code == 0) {
        *how = "broker";
        json_t *j = apg_adm_body_json(&r, err, sizeof(err));
        const char *key;
        json_t *v;
        json_object_foreach(json_object_get(j, "offsetTable"), key, v)
        {
            struct plan_q *q = plan_find(p, key);
            if (q)
                q->pq_after = apg_json_i64(v, q->pq_after);
        }
        json_decref(j);
    } else if (r.ar_code == APG_RESP_CONSUMER_NOT_ONLINE) {
        *how = "offline";
        for (size_t i = 0; !rc && i < p->pl_n; i++)
            if (strcmp(p->pl_q[i].pq_addr, addr) == 0)
                rc = update_offset(a, p, &p->pl_q[i]);
    } else {
        char who[160];
        snprintf(who, sizeof(who), "broker %s", addr);
        rc = apg_adm_refused(a, who, &req, &r);
    }
    apg_adm_resp_free(&r);
    return rc;
}

static int emit_plan(struct apg_adm *a, struct plan *p, const char *mode)
{
    json_t *rows = json_array();
    for (size_t i = 0; i < p->pl_n; i++) {
        struct plan_q *q = &p->pl_q[i];
        json_t *row = json_pack("{s:s,s:s,s:i,s:I,s:I}", "topic", p->pl_topic, "brokerName",
                                q->pq_broker, "queueId", q->pq_qid, "brokerOffset",
                                (json_int_t)q->pq_max, "offsetAfter", (json_int_t)q->pq_after);
        json_object_set_new(row, "offsetBefore",
                            q->pq_before < 0 ? json_null() : json_integer(q->pq_before));
        json_array_append_new(rows, row);
    }
    static const struct apg_adm_col cols[] = {{"#Topic", "topic"},
                                              {"#Broker Name", "brokerName"},
                                              {"#QID", "queueId"},
                                              {"#Broker Offset", "brokerOffset"},
                                              {"#Before", "offsetBefore"},
                                              {"#After", "offsetAfter"},
                                              {0}};
    json_t *res =
        json_pack("{s:s,s:s,s:I,s:b,s:b,s:s,s:o}", "group", p->pl_group, "topic", p->pl_topic,
                  "timestamp", (json_int_t)p->pl_ts, "force", p->pl_force, "dryRun", a->ad_dry_run,
                  "mode", mode, "queues", apg_adm_sort_queues(rows));
    if (!a->ad_json && a->ad_dry_run)
        printf("dry run: nothing was changed; these offsets would be set:\n");
    return apg_adm_emit(a, res, "queues", cols);
}

static int run_reset(struct apg_adm *a, struct plan *p, const char *broker, int qid, int64_t offset)
{
    int rc = plan_build(a, p, broker, qid, offset);
    const char *mode = a->ad_dry_run ? "dry-run" : "broker";
    if (!rc && !a->ad_dry_run && (broker || qid >= 0 || offset >= 0)) {
        mode = "direct";
        for (size_t i = 0; !rc && i < p->pl_n; i++)
            rc = update_offset(a, p, &p->pl_q[i]);
    } else if (!rc && !a->ad_dry_run) {
        for (size_t i = 0; !rc && i < p->pl_n; i++) {
            bool seen = false;
            for (size_t k = 0; k < i; k++)
                seen |= strcmp(p->pl_q[k].pq_addr, p->pl_q[i].pq_addr) == 0;
            if (!seen)
                rc = reset_broker(a, p, p->pl_q[i].pq_addr, &mode);
        }
    }
    if (!rc)
        rc = emit_plan(a, p, mode);
    apg_free(p->pl_q);
    json_decref(p->pl_route);
    return rc;
}

static int reset_by_time(struct apg_adm *a)
{
    struct plan p = {0};
    p.pl_group = apg_adm_need(a, 'g');
    p.pl_topic = p.pl_group ? apg_adm_need(a, 't') : NULL;
    int64_t q, o;
    if (!p.pl_topic || !apg_adm_need(a, 's') || !apg_adm_time(a, 's', 0, &p.pl_ts) ||
        !apg_adm_int(a, 'q', -1, 65535, -1, &q) || !apg_adm_int(a, 'o', -1, INT64_MAX, -1, &o))
        return APG_ADM_USAGE;
    p.pl_force = apg_adm_bool(a, 'f', true);
    const char *b = apg_adm_opt(a, 'b');
    if ((q >= 0 || o >= 0) && !(b && *b && q >= 0 && o >= 0))
        return apg_adm_usage(a, "to set one queue give -b <broker name> -q <queue id> -o <offset> "
                                "together");
    return run_reset(a, &p, b && *b ? b : NULL, (int)q, o);
}

static int skip_accumulated(struct apg_adm *a)
{
    struct plan p = {0};
    p.pl_group = apg_adm_need(a, 'g');
    p.pl_topic = p.pl_group ? apg_adm_need(a, 't') : NULL;
    if (!p.pl_topic)
        return APG_ADM_USAGE;
    p.pl_ts = -1;
    p.pl_force = apg_adm_bool(a, 'f', true);
    return run_reset(a, &p, NULL, -1, -1);
}

static const struct apg_adm_opt reset_opts[] = {
    {'g', "group", true, "consumer group"},
    {'t', "topic", true, "topic name"},
    {'s', "timestamp", true, "ms since the epoch, 'now', -1 (the end) or yyyy-MM-dd#HH:mm:ss:SSS"},
    {'f', "force", true, "true (default): move forward too; false: only back"},
    {'b', "broker", true, "with -q and -o: set one queue of this broker name"},
    {'q', "queue", true, "queue id (with -b -o)"},
    {'o', "offset", true, "offset to set (with -b -q)"},
    {'c', "cluster", true, "accepted for mqadmin scripts; the topic's route decides"},
    APG_ADM_OPT_DRY_RUN,
    {0},
};
static const struct apg_adm_opt skip_opts[] = {
    {'g', "group", true, "consumer group"},
    {'t', "topic", true, "topic name"},
    {'f', "force", true, "true (default)"},
    {'c', "cluster", true, "accepted for mqadmin scripts; the topic's route decides"},
    APG_ADM_OPT_DRY_RUN,
    {0},
};

#define RESET_JSON                                                                                 \
    "group, topic, timestamp, force, dryRun, mode (dry-run|broker|offline|direct), queues[]: "     \
    "topic, brokerName, queueId, brokerOffset, offsetBefore (null: none), offsetAfter"

const struct apg_adm_cmd apg_adm_offset_cmds[] = {
    {"resetOffsetByTime",
     "move a group's offsets to a time (--dry-run prints the per-queue plan only)", reset_opts,
     reset_by_time, RESET_JSON},
    {"skipAccumulatedMessage", "move a group's offsets to the end of each queue (--dry-run too)",
     skip_opts, skip_accumulated, RESET_JSON},
    {0},
};

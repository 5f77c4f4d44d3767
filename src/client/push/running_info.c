/* GET_CONSUMER_RUNNING_INFO: the push consumer's report for admin tools
 * (mqadmin consumerStatus, consumerProgress -s).
 *
 * Design. A broker forwards the admin's request on the connection this
 * client heartbeats on; consumer.c answers it with the body built here:
 * RocketMQ's ConsumerRunningInfo JSON, fields in fastjson's name order
 * (jstack, mqPopTable, mqTable, properties, statusTable, subscriptionSet,
 * userConsumerInfo). properties holds every client setting by its RocketMQ
 * name (as the Java client lists its consumer's fields) plus the PROP_* keys
 * the tools read (PROP_CONSUME_TYPE, PROP_CONSUMEORDERLY,
 * PROP_THREADPOOL_CORE_SIZE, PROP_CONSUMER_START_TIMESTAMP,
 * PROP_NAMESERVER_ADDR, PROP_CLIENT_VERSION). mqTable is keyed by queue in
 * the fastjson key form (docs/wire.md §11.1), one ProcessQueueInfo per held
 * queue: committed offset, the cached messages not yet handed to the
 * listener (orderly: the batch out is the "transaction" range, as Java's
 * consuming map), lock state and the last pull and consume times.
 * statusTable has one ConsumeStatus per subscribed topic, from counters
 * kept under pc_mu (pulls that found messages and their round trip, from
 * send to answer, long-poll hold included; listener calls, their duration
 * and the messages accepted or declined) over the window since the older of
 * two snapshots rolled once a minute (1 to 2 minutes; since start at
 * first): pullRT and consumeRT in ms per pull or call, the others per
 * second, consumeFailedMsgs the count in the window.
 *
 * Threads. I/O thread (it owns the subscriptions and the queue list); the
 * queues' caches are read under pc_mu. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apogee/version.h"
#include "client/push/push_int.h"
#include "common/clock.h"
#include "common/mem.h"
#include "protocol/mq_map.h"

#define MIB (1024 * 1024)

/* The settings, by RocketMQ name, in conf.def's order. */
static const char *const conf_names[] = {
#define APG_CCONF(f, name, type, def, lo, hi, choices, help) name,
#include "client/conf.def"
#undef APG_CCONF
};

static json_t *properties(struct apg_push_consumer *c)
{
    json_t *p = json_object();
    char v[1024];
    for (size_t i = 0; p && i < sizeof(conf_names) / sizeof(conf_names[0]); i++) {
        size_t len = sizeof(v);
        if (strstr(conf_names[i], "ecret") || strstr(conf_names[i], "assword"))
            continue; /* credentials never leave the process */
        if (apg_conf_get(c->pc_conf, conf_names[i], v, &len) == APG_OK)
            json_object_set_new(p, conf_names[i], json_string(v));
    }
    /* Java lists each NameServer followed by ';'. */
    struct apg_buf ns = APG_BUF_INIT;
    const char *list = c->pc_conf->namesrv ? c->pc_conf->namesrv : "";
    while (*list) {
        size_t n = strcspn(list, ";");
        if (n) {
            apg_buf_append(&ns, list, n);
            apg_buf_append(&ns, ";", 1);
        }
        list += n + (list[n] == ';');
    }
    apg_buf_append(&ns, "", 1);
    char start[24], threads[16];
    snprintf(start, sizeof(start), "%lld", (long long)c->pc_start_ms);
    snprintf(threads, sizeof(threads), "%d", c->pc_conf->consume_threads);
    json_object_set_new(p, "PROP_CONSUME_TYPE", json_string("CONSUME_PASSIVELY"));
    json_object_set_new(p, "PROP_CONSUMEORDERLY",
                        json_string(c->pc_conf->orderly ? "true" : "false"));
    json_object_set_new(p, "PROP_THREADPOOL_CORE_SIZE", json_string(threads));
    json_object_set_new(p, "PROP_CONSUMER_START_TIMESTAMP", json_string(start));
    json_object_set_new(p, "PROP_NAMESERVER_ADDR",
                        json_string(ns.b_data ? (const char *)ns.b_data : ""));
    json_object_set_new(p, "PROP_CLIENT_VERSION", json_string("apogee-" APG_VERSION));
    apg_buf_free(&ns);
    return p;
}

/* Caller holds pc_mu. */
static json_t *process_queue_info(const struct apg_push_consumer *c, const struct pq *q)
{
    int64_t cmin = -1, cmax = -1, tmin = -1, tmax = -1;
    json_int_t ccount = 0, tcount = 0;
    for (size_t i = 0; i < q->q_len; i++) {
        const struct pent *e = &q->q_ring[(q->q_head + i) % q->q_cap];
        if (e->e_msg == NULL)
            continue;
        bool out = c->pc_conf->orderly && q->q_seq0 + i < q->q_dispatch;
        int64_t *mn = out ? &tmin : &cmin, *mx = out ? &tmax : &cmax;
        if (*mn < 0)
            *mn = e->e_off;
        *mx = e->e_off;
        (*(out ? &tcount : &ccount))++;
    }
    /* q_lock_ms is on the monotonic clock; the tools want wall-clock ms. */
    int64_t lock_wall = q->q_lock_ms > 0 ? apg_wall_ms() - (apg_now_ms() - q->q_lock_ms) : 0;
    return json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:b, s:I, s:I, s:I, s:b, s:I, s:I, s:I, s:I}", "commitOffset",
        (json_int_t)q->q_commit, "cachedMsgMinOffset", (json_int_t)(cmin < 0 ? 0 : cmin),
        "cachedMsgMaxOffset", (json_int_t)(cmax < 0 ? 0 : cmax), "cachedMsgCount", ccount,
        "cachedMsgSizeInMiB", (json_int_t)(q->q_bytes / MIB), "droped", (int)q->q_dropped,
        "lastConsumeTimestamp", (json_int_t)q->q_last_consume_ms, "lastLockTimestamp",
        (json_int_t)lock_wall, "lastPullTimestamp", (json_int_t)q->q_last_pull_ms, "locked",
        (int)q->q_locked, "transactionMsgCount", tcount, "transactionMsgMinOffset",
        (json_int_t)(tmin < 0 ? 0 : tmin), "transactionMsgMaxOffset",
        (json_int_t)(tmax < 0 ? 0 : tmax), "tryUnlockTimes", (json_int_t)0);
}

#define ROLL_MS 60000

void apg_push_stats_roll(struct apg_push_consumer *c, int64_t now)
{
    pthread_mutex_lock(&c->pc_mu);
    for (struct psub *s = c->pc_subs; s; s = s->s_next) {
        if (s->s_mark[1].ps_at_ms == 0) { /* start: the window opens now */
            s->s_mark[0].ps_at_ms = s->s_mark[1].ps_at_ms = now;
        } else if (now - s->s_mark[1].ps_at_ms >= ROLL_MS) {
            s->s_mark[0] = s->s_mark[1];
            s->s_mark[1] = s->s_stats;
            s->s_mark[1].ps_at_ms = now;
        }
    }
    pthread_mutex_unlock(&c->pc_mu);
}

/* Caller holds pc_mu. */
static json_t *consume_status(const struct psub *s, int64_t now)
{
    const struct pstats *a = &s->s_mark[0], *b = &s->s_stats;
    double secs = (double)(now - a->ps_at_ms) / 1000.0;
    if (secs < 0.001)
        secs = 0.001;
    int64_t pulls = b->ps_pulls - a->ps_pulls, calls = b->ps_calls - a->ps_calls;
    int64_t failed = b->ps_failed - a->ps_failed;
    return json_pack("{s:f, s:f, s:f, s:f, s:f, s:I}", "pullRT",
                     pulls ? (double)(b->ps_pull_rt_ms - a->ps_pull_rt_ms) / (double)pulls : 0.0,
                     "pullTPS", (double)(b->ps_pulled - a->ps_pulled) / secs, "consumeRT",
                     calls ? (double)(b->ps_consume_rt_ms - a->ps_consume_rt_ms) / (double)calls
                           : 0.0,
                     "consumeOKTPS", (double)(b->ps_ok - a->ps_ok) / secs, "consumeFailedTPS",
                     (double)failed / secs, "consumeFailedMsgs", (json_int_t)failed);
}

/* Appends the compact, key-sorted text of o (stolen) to out. */
static apg_err_t put_json(struct apg_buf *out, json_t *o)
{
    char *txt = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(o);
    if (txt == NULL)
        return APG_ENOMEM;
    apg_err_t e = apg_buf_append_str(out, txt);
    free(txt);
    return e;
}

apg_err_t apg_push_running_info(struct apg_cio *io, struct apg_push_consumer *c, bool jstack,
                                struct apg_buf *out)
{
    (void)io;
    apg_err_t e = apg_buf_append_str(out, jstack ? "{\"jstack\":\"\"," : "{");
    if (!e)
        e = apg_buf_append_str(out, "\"mqPopTable\":{},\"mqTable\":{");
    bool first = true;
    for (struct pq *q = c->pc_queues; !e && q; q = q->q_next) {
        if (!first)
            e = apg_buf_append(out, ",", 1);
        first = false;
        if (!e)
            e = apg_mqmap_put_key(out, q->q_mq.mq_broker, q->q_mq.mq_queue_id, q->q_mq.mq_topic);
        pthread_mutex_lock(&c->pc_mu);
        json_t *info = e ? NULL : process_queue_info(c, q);
        pthread_mutex_unlock(&c->pc_mu);
        if (!e)
            e = put_json(out, info);
    }
    if (!e)
        e = apg_buf_append_str(out, "},\"properties\":");
    if (!e)
        e = put_json(out, properties(c));
    json_t *status = json_object(), *subs = json_array();
    int64_t now = apg_now_ms();
    pthread_mutex_lock(&c->pc_mu);
    for (struct psub *s = c->pc_subs; status && s; s = s->s_next)
        json_object_set_new(status, s->s_topic, consume_status(s, now));
    pthread_mutex_unlock(&c->pc_mu);
    for (struct psub *s = c->pc_subs; subs && s; s = s->s_next)
        json_array_append_new(subs, apg_push_sub_json(s));
    if (!e)
        e = apg_buf_append_str(out, ",\"statusTable\":");
    if (!e) {
        e = put_json(out, status);
        status = NULL;
    }
    if (!e)
        e = apg_buf_append_str(out, ",\"subscriptionSet\":");
    if (!e) {
        e = put_json(out, subs);
        subs = NULL;
    }
    json_decref(status);
    json_decref(subs);
    if (!e)
        e = apg_buf_append_str(out, ",\"userConsumerInfo\":{}}");
    return e;
}

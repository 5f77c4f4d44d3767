/* Consumer progress for admin tools: GET_CONSUME_STATS (208),
 * GET_TOPIC_STATS_INFO (202), GET_CONSUMER_CONNECTION_LIST (203) and
 * GET_PRODUCER_CONNECTION_LIST (204), GET_ALL_PRODUCER_INFO (328),
 * docs/wire.md §11.
 *
 * GET_CONSUME_STATS answers, for every queue of every topic the group has
 * committed offsets for (or the one topic asked for), the queue's max offset
 * (brokerOffset), the group's committed offset (consumerOffset) and the store
 * time of the last consumed record (lastTimestamp: the record just below the
 * committed offset, 0 when nothing was consumed). The lag is brokerOffset -
 * consumerOffset; tools compute it. When the group is online (a member
 * heartbeated subscriptions) topics it does not subscribe are left out, as
 * RocketMQ does. consumeTps is the group's messages per second over the last
 * minute, counted by the pull path (apg_broker_consume_note).
 *
 * Both bodies are ConsumeStats / TopicStatsTable JSON as RocketMQ's fastjson
 * writes them: a map keyed by MessageQueue is written with the key object
 * itself as the key, unquoted ({{"brokerName":..,"queueId":0,"topic":..}:
 * {...}}, src/protocol/mq_map.c). That is not standard JSON, but it is what
 * the Java admin tools parse, and the Go client has a parser for exactly
 * this form.
 *
 * The connection lists are built from the client table (heartbeats) through
 * apg_clients_visit, whose callbacks here only append to buffers, since
 * they run under the client table's lock.
 *
 * Threads: apg_broker_consume_note runs on every loop for every pull that
 * returned messages; the requests run on any loop. The per-group counters
 * live in struct apg_cstats behind one mutex (cs_lock), held only to bump or
 * sum one row. The offset, topic and client tables lock themselves and are
 * read one call at a time (no two locks held at once), and the store's
 * readers are thread-safe; an answer is therefore a snapshot per queue, not
 * one atomic picture of the broker, which is also what RocketMQ gives. */
#include <stdio.h>
#include <string.h>

#include "broker/broker_admin_stats.h"
#include "common/mem.h"
#include "protocol/filter/sql92.h"
#include "protocol/mq_map.h"

/* Consume counts per (topic, group) in three rings of slots, each slot
 * tagged with the period it counts: 60 one-second slots (the last minute:
 * consumeTps, statsMinute), 60 one-minute slots (statsHour) and 24 one-hour
 * slots (statsDay). Each slot counts messages and the pulls that returned
 * them (avgpt: messages per pull, RocketMQ's sum/times). */
enum { R_SEC, R_MIN, R_HOUR, R_N };
static const int ring_len[R_N] = {60, 60, 24};
static const int64_t ring_unit[R_N] = {1, 60, 3600}; /* seconds per slot */

struct cs_slot {
    int64_t sl_at; /* which period (wall s / unit) the slot counts */
    int64_t sl_n;
    int64_t sl_times;
};

struct cs_row {
    size_t cr_total; /* offset of its totals in cs_totals; SIZE_MAX: none (a topic row) */
    struct cs_slot cr_ring[R_N][60];
};

struct apg_cstats {
    pthread_mutex_t cs_lock;
    /* "topic@group" (GROUP_GET_NUMS) and "topic" (TOPIC_PUT_NUMS) ->
     * struct cs_row* (owned); topic names have no '@'. */
    struct apg_smap cs_map;
    /* The metrics' counters of every "topic@group" row, back to back in the
     * form apg_cstats_snapshot hands out (int64 messages, int64 bytes, the
     * key and its NUL; unaligned), so a snapshot is one copy. Rows are
     * never removed. */
    struct apg_buf cs_totals;
    /* Service thread only: topic -> struct put_sum* (owned). */
    struct apg_smap cs_sums;
    int64_t cs_tick;
};

/* A topic's summed queue max offsets at the last two samples. */
struct put_sum {
    int64_t ps_last; /* -1 before the first sample */
    int64_t ps_cur;
    int64_t ps_tick; /* sample that last saw the topic */
};

struct apg_cstats *apg_cstats_new(void)
{
    struct apg_cstats *cs = apg_calloc(1, sizeof(*cs));
    if (!cs)
        return NULL;
    pthread_mutex_init(&cs->cs_lock, NULL);
    apg_smap_init(&cs->cs_map);
    apg_smap_init(&cs->cs_sums);
    return cs;
}

void apg_cstats_free(struct apg_cstats *cs)
{
    if (!cs)
        return;
    apg_smap_clear_free(&cs->cs_map, apg_free);
    apg_smap_clear_free(&cs->cs_sums, apg_free);
    apg_buf_free(&cs->cs_totals);
    pthread_mutex_destroy(&cs->cs_lock);
    apg_free(cs);
}

static void row_key(char *key, size_t n, const char *group, const char *topic)
{
    snprintf(key, n, "%s@%s", topic, group);
}

/* Counts n messages (bytes of them) in times calls for key at wall second sec. */
static void row_note(struct apg_cstats *cs, const char *key, int64_t n, int64_t bytes,
                     int64_t times, int64_t sec)
{
    pthread_mutex_lock(&cs->cs_lock);
    struct cs_row *r = apg_smap_get(&cs->cs_map, key);
    if (!r) {
        r = apg_calloc(1, sizeof(*r));
        if (r && apg_smap_put(&cs->cs_map, key, r, NULL)) {
            apg_free(r);
            r = NULL;
        }
        if (r) {
            r->cr_total = SIZE_MAX;
            int64_t zero[2] = {0, 0};
            size_t at = cs->cs_totals.b_len;
            if (strchr(key, '@') && !apg_buf_append(&cs->cs_totals, zero, sizeof(zero)) &&
                !apg_buf_append(&cs->cs_totals, key, strlen(key) + 1))
                r->cr_total = at;
            else
                cs->cs_totals.b_len = at;
        }
    }
    if (r && r->cr_total != SIZE_MAX) {
        int64_t v[2];
        memcpy(v, cs->cs_totals.b_data + r->cr_total, sizeof(v));
        v[0] += n;
        v[1] += bytes;
        memcpy(cs->cs_totals.b_data + r->cr_total, v, sizeof(v));
    }
    for (int k = 0; r && k < R_N; k++) {
        int64_t at = sec / ring_unit[k];
        struct cs_slot *sl = &r->cr_ring[k][at % ring_len[k]];
        if (sl->sl_at != at) {
            sl->sl_at = at;
            sl->sl_n = sl->sl_times = 0;
        }
        sl->sl_n += n;
        sl->sl_times += times;
    }
    pthread_mutex_unlock(&cs->cs_lock);
}

void apg_broker_consume_note(struct apg_broker *b, const char *group, const char *topic, int n,
                             size_t bytes)
{
    struct apg_cstats *cs = b->br_cstats;
    if (!cs || n <= 0)
        return;
    char key[2 * APG_NAME_CAP + 2];
    row_key(key, sizeof(key), group, topic);
    row_note(cs, key, n, (int64_t)bytes, 1, apg_wall_ms() / 1000);
}

static void sum_queue(void *ud, const char *topic, size_t topic_len, int32_t queue_id,
                      int64_t min_offset, int64_t max_offset)
{
    (void)queue_id;
    (void)min_offset;
    struct apg_cstats *cs = ud;
    char name[APG_NAME_CAP];
    if (topic_len >= sizeof(name))
        return;
    memcpy(name, topic, topic_len);
    name[topic_len] = 0;
    struct put_sum *ps = apg_smap_get(&cs->cs_sums, name);
    if (!ps) {
        ps = apg_calloc(1, sizeof(*ps));
        if (!ps || apg_smap_put(&cs->cs_sums, name, ps, NULL)) {
            apg_free(ps);
            return;
        }
        /* Queues there at the first sample hold history from before the
         * start; a queue that appears later was empty one sample ago. */
        ps->ps_last = cs->cs_tick == 1 ? -1 : 0;
    }
    if (ps->ps_tick != cs->cs_tick) {
        ps->ps_tick = cs->cs_tick;
        ps->ps_cur = 0;
    }
    ps->ps_cur += max_offset > 0 ? max_offset : 0;
}

void apg_broker_put_stats_tick(struct apg_broker *b, int64_t now_ms)
{
    struct apg_cstats *cs = b->br_cstats;
    if (!cs)
        return;
    cs->cs_tick++;
    apg_store_foreach_queue(b->br_store, sum_queue, cs);
    struct apg_buf gone = APG_BUF_INIT;
    size_t pos;
    for (struct apg_smap_ent *it = apg_smap_first(&cs->cs_sums, &pos); it;
         it = apg_smap_next(&cs->cs_sums, it, &pos)) {
        struct put_sum *ps = it->se_val;
        if (ps->ps_tick != cs->cs_tick) {
            apg_buf_append(&gone, it->se_key, strlen(it->se_key) + 1);
            continue;
        }
        if (ps->ps_last >= 0 && ps->ps_cur > ps->ps_last)
            row_note(cs, it->se_key, ps->ps_cur - ps->ps_last, 0, ps->ps_cur - ps->ps_last,
                     now_ms / 1000);
        ps->ps_last = ps->ps_cur;
    }
    const char *g = (const char *)gone.b_data;
    for (size_t at = 0; at < gone.b_len; at += strlen(g + at) + 1)
        apg_free(apg_smap_del(&cs->cs_sums, g + at));
    apg_buf_free(&gone);
}

apg_err_t apg_cstats_snapshot(struct apg_cstats *cs, struct apg_buf *out)
{
    pthread_mutex_lock(&cs->cs_lock);
    apg_err_t e = cs->cs_totals.b_len
                      ? apg_buf_append(out, cs->cs_totals.b_data, cs->cs_totals.b_len)
                      : APG_OK;
    pthread_mutex_unlock(&cs->cs_lock);
    return e;
}

/* Sums ring k of (topic@group) over its whole span (the last minute, hour
 * or day); false when the pair was never counted. */
static bool ring_sum(struct apg_cstats *cs, const char *key, int k, int64_t *n, int64_t *times)
{
    int64_t now = apg_wall_ms() / 1000 / ring_unit[k];
    *n = *times = 0;
    pthread_mutex_lock(&cs->cs_lock);
    struct cs_row *r = apg_smap_get(&cs->cs_map, key);
    for (int i = 0; r && i < ring_len[k]; i++) {
        const struct cs_slot *sl = &r->cr_ring[k][i];
        if (sl->sl_at > now - ring_len[k] && sl->sl_at <= now) {
            *n += sl->sl_n;
            *times += sl->sl_times;
        }
    }
    pthread_mutex_unlock(&cs->cs_lock);
    return r != NULL;
}

/* Messages per second of group on topic over the last minute. */
static double consume_tps(struct apg_cstats *cs, const char *group, const char *topic)
{
    char key[2 * APG_NAME_CAP + 2];
    row_key(key, sizeof(key), group, topic);
    int64_t n, times;
    ring_sum(cs, key, R_SEC, &n, &times);
    return (double)n / ring_len[R_SEC];
}

/* Store time of the record at offset off of the queue, 0 when none. */
static int64_t store_time(struct apg_broker *b, const char *topic, int32_t qid, int64_t off)
{
    if (off < 0)
        return 0;
    int64_t t = apg_store_msg_store_time(b->br_store, topic, strlen(topic), qid, off);
    return t > 0 ? t : 0;
}

/* Appends the OffsetWrapper entries of one topic; *first tracks commas,
 * *diff sums brokerOffset - consumerOffset. */
static apg_err_t consume_stats_topic(struct apg_broker *b, const char *group, const char *topic,
                                     struct apg_buf *o, bool *first, int64_t *diff)
{
    struct apg_topic_cfg tc;
    if (!apg_topics_get(b->br_topics, topic, &tc))
        return APG_OK;
    char expr[APG_SQL92_MAX_EXPR + 2], type[16]; /* any subscription text fits */
    if (!apg_clients_subscription(b->br_clients, group, topic, expr, sizeof(expr), type,
                                  sizeof(type)) &&
        apg_clients_group_online(b->br_clients, group))
        return APG_OK;
    apg_err_t e = APG_OK;
    for (int32_t q = 0; !e && q < tc.tc_read_queues; q++) {
        int64_t max = apg_store_max_offset(b->br_store, topic, strlen(topic), q);
        int64_t done = apg_offsets_query(b->br_offsets, group, topic, q);
        if (max < 0)
            max = 0;
        if (done < 0)
            done = 0;
        *diff += max - done;
        if (!*first)
            e = apg_buf_append(o, ",", 1);
        *first = false;
        if (!e)
            e = apg_mqmap_put_key(o, b->br_name, q, topic);
        if (!e)
            e = apg_buf_printf(o,
                               "{\"brokerOffset\":%lld,\"consumerOffset\":%lld,"
                               "\"lastTimestamp\":%lld}",
                               (long long)max, (long long)done,
                               (long long)store_time(b, topic, q, done - 1));
    }
    return e;
}

static void reply_or_refuse(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req,
                            apg_err_t e, const struct apg_buf *o)
{
    if (e)
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR, "out of memory");
    else if (!apg_rcmd_is_oneway(req))
        apg_conn_reply(c, req, APG_RESP_SUCCESS, NULL, o->b_data, (uint32_t)o->b_len);
}

apg_err_t apg_broker_consume_stats_body(struct apg_broker *b, const char *group, const char *topic,
                                        struct apg_buf *o, int64_t *diff)
{
    struct apg_buf names = APG_BUF_INIT; /* topic names, each ended by a NUL */
    apg_err_t e = topic && topic[0] ? apg_buf_append(&names, topic, strlen(topic) + 1)
                                    : apg_offsets_group_topics(b->br_offsets, group, &names);
    const char *nm = (const char *)names.b_data;
    double tps = 0;
    for (size_t at = 0; !e && at < names.b_len; at += strlen(nm + at) + 1)
        tps += consume_tps(b->br_cstats, group, nm + at);
    bool first = true;
    int64_t sum = 0;
    if (!e)
        e = apg_buf_printf(o, "{\"consumeTps\":%.1f,\"offsetTable\":{", tps);
    for (size_t at = 0; !e && at < names.b_len; at += strlen(nm + at) + 1)
        e = consume_stats_topic(b, group, nm + at, o, &first, &sum);
    if (!e)
        e = apg_buf_append_str(o, "}}");
    apg_buf_free(&names);
    if (diff)
        *diff = sum;
    return e;
}

static void consume_stats(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req)
{
    const char *group = apg_rcmd_ext_get(req, "consumerGroup");
    if (!group || !group[0]) {
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR,
                          "GET_CONSUME_STATS needs consumerGroup");
        return;
    }
    struct apg_buf o = APG_BUF_INIT;
    apg_err_t e = apg_broker_consume_stats_body(b, group, apg_rcmd_ext_get(req, "topic"), &o, NULL);
    reply_or_refuse(b, c, req, e, &o);
    apg_buf_free(&o);
}

/* VIEW_BROKER_STATS_DATA (315): the minute, hour and day sums of one
 * counter. Kept: GROUP_GET_NUMS, key "topic@group" (messages pulls
 * returned; avgpt is messages per pull) and TOPIC_PUT_NUMS, key topic
 * (messages stored, sampled once a second from the queues' max offsets by
 * apg_broker_put_stats_tick; avgpt is 1, puts are not counted one by
 * one). */
static void stats_data(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req)
{
    const char *name = apg_rcmd_ext_get(req, "statsName");
    const char *key = apg_rcmd_ext_get(req, "statsKey");
    char remark[400];
    int64_t n[R_N], times[R_N];
    /* GROUP_GET_NUMS keys have an '@' (topic@group), TOPIC_PUT_NUMS keys
     * (topic names) never. */
    bool kept = name && key &&
                ((strcmp(name, "GROUP_GET_NUMS") == 0 && strchr(key, '@')) ||
                 (strcmp(name, "TOPIC_PUT_NUMS") == 0 && !strchr(key, '@')));
    for (int k = 0; kept && k < R_N; k++)
        kept = ring_sum(b->br_cstats, key, k, &n[k], &times[k]);
    if (!kept) {
        snprintf(remark, sizeof(remark),
                 "The stats <%s> <%s> not exist (this broker keeps TOPIC_PUT_NUMS per topic "
                 "and GROUP_GET_NUMS per topic@group, from their first message)",
                 name ? name : "", key ? key : "");
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR, remark);
        return;
    }
    static const char *const field[R_N] = {"statsMinute", "statsHour", "statsDay"};
    struct apg_buf o = APG_BUF_INIT;
    apg_err_t e = APG_OK;
    for (int k = R_N - 1; !e && k >= 0; k--) /* statsDay, statsHour, statsMinute */
        e = apg_buf_printf(&o, "%s\"%s\":{\"avgpt\":%.2f,\"sum\":%lld,\"tps\":%.2f}",
                           k == R_N - 1 ? "{" : ",", field[k],
                           times[k] ? (double)n[k] / (double)times[k] : 0.0, (long long)n[k],
                           (double)n[k] / (double)(ring_len[k] * ring_unit[k]));
    if (!e)
        e = apg_buf_append(&o, "}", 1);
    reply_or_refuse(b, c, req, e, &o);
    apg_buf_free(&o);
}

int32_t apg_broker_topic_stats_body(struct apg_broker *b, const char *topic, struct apg_buf *o,
                                    char *remark, size_t n)
{
    struct apg_topic_cfg tc;
    if (!apg_topics_get(b->br_topics, topic, &tc)) {
        snprintf(remark, n, "topic %s does not exist on this broker", topic);
        return APG_RESP_TOPIC_NOT_EXIST;
    }
    apg_err_t e = apg_buf_append_str(o, "{\"offsetTable\":{");
    for (int32_t q = 0; !e && q < tc.tc_write_queues; q++) {
        int64_t min = apg_store_min_offset(b->br_store, topic, strlen(topic), q);
        int64_t max = apg_store_max_offset(b->br_store, topic, strlen(topic), q);
        if (q)
            e = apg_buf_append(o, ",", 1);
        if (!e)
            e = apg_mqmap_put_key(o, b->br_name, q, topic);
        if (!e)
            e = apg_buf_printf(o,
                               "{\"lastUpdateTimestamp\":%lld,\"maxOffset\":%lld,"
                               "\"minOffset\":%lld}",
                               (long long)store_time(b, topic, q, max - 1),
                               (long long)(max < 0 ? 0 : max), (long long)(min < 0 ? 0 : min));
    }
    if (!e)
        e = apg_buf_append_str(o, "}}");
    if (e) {
        snprintf(remark, n, "out of memory");
        return APG_RESP_SYSTEM_ERROR;
    }
    return APG_RESP_SUCCESS;
}

static void topic_stats(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req)
{
    const char *topic = apg_rcmd_ext_get(req, "topic");
    if (!topic || !topic[0]) {
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR, "GET_TOPIC_STATS_INFO needs topic");
        return;
    }
    char remark[400];
    struct apg_buf o = APG_BUF_INIT;
    int32_t code = apg_broker_topic_stats_body(b, topic, &o, remark, sizeof(remark));
    if (code != APG_RESP_SUCCESS)
        apg_broker_refuse(b, c, req, code, remark);
    else if (!apg_rcmd_is_oneway(req))
        apg_conn_reply(c, req, APG_RESP_SUCCESS, NULL, o.b_data, (uint32_t)o.b_len);
    apg_buf_free(&o);
}

/* ---- connection lists --------------------------------------------------- */

/* Builds a ConsumerConnection / ProducerConnection body under the client
 * table's lock: members go into cn_set, subscriptions into cn_subs. */
struct conn_list {
    struct apg_buf cn_set;
    struct apg_buf cn_subs;
    char cn_type[32], cn_model[32], cn_from[48];
};

static apg_err_t cl_group(void *ud, const char *type, const char *model, const char *from)
{
    struct conn_list *cn = ud;
    snprintf(cn->cn_type, sizeof(cn->cn_type), "%s", type);
    snprintf(cn->cn_model, sizeof(cn->cn_model), "%s", model);
    snprintf(cn->cn_from, sizeof(cn->cn_from), "%s", from);
    return APG_OK;
}

static apg_err_t cl_member(void *ud, const struct apg_client_member *m)
{
    struct conn_list *cn = ud;
    struct apg_buf *o = &cn->cn_set;
    const char *lang = apg_rcmd_lang_name(m->cm_lang);
    apg_err_t e = apg_buf_append_str(o, o->b_len ? ",{\"clientAddr\":" : "{\"clientAddr\":");
    if (!e)
        e = apg_json_put_str(o, apg_conn_peer(m->cm_conn));
    if (!e)
        e = apg_buf_append_str(o, ",\"clientId\":");
    if (!e)
        e = apg_json_put_str(o, m->cm_id);
    if (!e)
        e = apg_buf_printf(o, ",\"language\":\"%s\",\"version\":%d}", lang ? lang : "OTHER",
                           m->cm_version);
    return e;
}

static apg_err_t cl_sub(void *ud, const char *topic, const char *expr, const char *sub_json)
{
    struct conn_list *cn = ud;
    struct apg_buf *o = &cn->cn_subs;
    apg_err_t e = o->b_len ? apg_buf_append(o, ",", 1) : APG_OK;
    if (!e)
        e = apg_json_put_str(o, topic);
    if (!e)
        e = apg_buf_append(o, ":", 1);
    if (!e && sub_json)
        return apg_buf_append_str(o, sub_json);
    /* No copy of the heartbeat's object: the fields tools read. */
    if (!e)
        e = apg_buf_append_str(o, "{\"expressionType\":\"TAG\",\"subString\":");
    if (!e)
        e = apg_json_put_str(o, expr);
    if (!e)
        e = apg_buf_append_str(o, ",\"topic\":");
    if (!e)
        e = apg_json_put_str(o, topic);
    if (!e)
        e = apg_buf_append(o, "}", 1);
    return e;
}

int32_t apg_broker_connection_body(struct apg_broker *b, const char *group, bool consumers,
                                   struct apg_buf *o, char *remark, size_t n)
{
    struct conn_list cn = {APG_BUF_INIT, APG_BUF_INIT, "", "", ""};
    static const struct apg_clients_visitor v = {
        .cv_group = cl_group, .cv_member = cl_member, .cv_sub = cl_sub};
    int32_t code = APG_RESP_SUCCESS;
    apg_err_t e = apg_clients_visit(b->br_clients, consumers, group, &v, &cn);
    if (e == APG_ENOTFOUND) {
        snprintf(remark, n, "no %s of group %s is connected to this broker",
                 consumers ? "consumer" : "producer", group);
        code = consumers ? APG_RESP_CONSUMER_NOT_ONLINE : APG_RESP_SYSTEM_ERROR;
        goto out;
    }
    if (!e)
        e = apg_buf_append_str(o, "{\"connectionSet\":[");
    if (!e && cn.cn_set.b_len)
        e = apg_buf_append(o, cn.cn_set.b_data, cn.cn_set.b_len);
    if (!e && consumers)
        e = apg_buf_printf(o,
                           "],\"consumeFromWhere\":\"%s\",\"consumeType\":\"%s\","
                           "\"messageModel\":\"%s\",\"subscriptionTable\":{",
                           cn.cn_from, cn.cn_type, cn.cn_model);
    if (!e && consumers && cn.cn_subs.b_len)
        e = apg_buf_append(o, cn.cn_subs.b_data, cn.cn_subs.b_len);
    if (!e)
        e = apg_buf_append_str(o, consumers ? "}}" : "]}");
    if (e) {
        snprintf(remark, n, "out of memory");
        code = APG_RESP_SYSTEM_ERROR;
    }
out:
    apg_buf_free(&cn.cn_set);
    apg_buf_free(&cn.cn_subs);
    return code;
}

static void connection_list(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req,
                            bool consumers)
{
    const char *key = consumers ? "consumerGroup" : "producerGroup";
    const char *group = apg_rcmd_ext_get(req, key);
    char remark[400];
    if (!group || !group[0]) {
        snprintf(remark, sizeof(remark), "%s needs %s",
                 consumers ? "GET_CONSUMER_CONNECTION_LIST" : "GET_PRODUCER_CONNECTION_LIST", key);
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR, remark);
        return;
    }
    struct apg_buf o = APG_BUF_INIT;
    int32_t code = apg_broker_connection_body(b, group, consumers, &o, remark, sizeof(remark));
    if (code != APG_RESP_SUCCESS)
        apg_broker_refuse(b, c, req, code, remark);
    else if (!apg_rcmd_is_oneway(req))
        apg_conn_reply(c, req, APG_RESP_SUCCESS, NULL, o.b_data, (uint32_t)o.b_len);
    apg_buf_free(&o);
}

/* GET_ALL_PRODUCER_INFO (328): every producer group with its members,
 * ProducerTableInfo JSON {"data":{group:[ProducerInfo...]}}; remoteIP is
 * "/ip:port" as Java's address text reads. */
struct prod_all {
    struct apg_buf pa_o;
    size_t pa_groups;
    bool pa_first_member;
};

static apg_err_t pa_name(void *ud, const char *group)
{
    struct prod_all *pa = ud;
    struct apg_buf *o = &pa->pa_o;
    apg_err_t e = apg_buf_append_str(o, pa->pa_groups++ ? "]," : "");
    if (!e)
        e = apg_json_put_str(o, group);
    if (!e)
        e = apg_buf_append(o, ":[", 2);
    pa->pa_first_member = true;
    return e;
}

static apg_err_t pa_member(void *ud, const struct apg_client_member *m)
{
    struct prod_all *pa = ud;
    struct apg_buf *o = &pa->pa_o;
    const char *lang = apg_rcmd_lang_name(m->cm_lang);
    char ip[80];
    snprintf(ip, sizeof(ip), "/%s", apg_conn_peer(m->cm_conn));
    apg_err_t e = apg_buf_append_str(o, pa->pa_first_member ? "{\"clientId\":" : ",{\"clientId\":");
    pa->pa_first_member = false;
    if (!e)
        e = apg_json_put_str(o, m->cm_id);
    if (!e)
        e = apg_buf_printf(o, ",\"language\":\"%s\",\"lastUpdateTimestamp\":%lld,\"remoteIP\":",
                           lang ? lang : "OTHER", (long long)m->cm_last_ms);
    if (!e)
        e = apg_json_put_str(o, ip);
    if (!e)
        e = apg_buf_printf(o, ",\"version\":%d}", m->cm_version);
    return e;
}

static void all_producers(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req)
{
    struct prod_all pa = {APG_BUF_INIT, 0, true};
    static const struct apg_clients_visitor v = {.cv_name = pa_name, .cv_member = pa_member};
    apg_err_t e = apg_buf_append_str(&pa.pa_o, "{\"data\":{");
    if (!e)
        e = apg_clients_visit(b->br_clients, false, NULL, &v, &pa);
    if (!e)
        e = apg_buf_append_str(&pa.pa_o, pa.pa_groups ? "]}}" : "}}");
    reply_or_refuse(b, c, req, e, &pa.pa_o);
    apg_buf_free(&pa.pa_o);
}

void apg_broker_proc_admin_stats(struct apg_broker *b, struct apg_conn *c,
                                 const struct apg_rcmd *req)
{
    switch (req->code) {
    case APG_REQ_GET_CONSUME_STATS:
        consume_stats(b, c, req);
        break;
    case APG_REQ_GET_TOPIC_STATS_INFO:
        topic_stats(b, c, req);
        break;
    case APG_REQ_GET_CONSUMER_CONNECTION_LIST:
        connection_list(b, c, req, true);
        break;
    case APG_REQ_GET_PRODUCER_CONNECTION_LIST:
        connection_list(b, c, req, false);
        break;
    case APG_REQ_VIEW_BROKER_STATS_DATA:
        stats_data(b, c, req);
        break;
    case APG_REQ_GET_ALL_PRODUCER_INFO:
        all_producers(b, c, req);
        break;
    default:
        apg_broker_refuse(b, c, req, APG_RESP_REQUEST_CODE_NOT_SUPPORTED,
                          "not a consumer-progress request");
    }
}

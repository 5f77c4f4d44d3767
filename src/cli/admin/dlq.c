/* `apogee admin dlq list|show|resend|export`: the dead-letter queues.
 *
 * A message a consumer group gave up on (more than retryMaxTimes
 * retries) is stored in the topic %DLQ%<group>. The broker keeps the topic
 * it first came from in the RETRY_TOPIC property (set on the first
 * send-back), and a message that was delayed or scheduled on its way keeps
 * it in REAL_TOPIC; resend reads each dead letter with the C pull consumer
 * and sends a new message with the same body, tags, keys and user
 * properties to that topic (or to -t), so the group's consumers receive it
 * again. Nothing is deleted from the DLQ (RocketMQ has no per-message
 * delete); -o picks the first DLQ offset to resend, so a second run can
 * skip what was already sent, and -i one message by its msgId or
 * offsetMsgId.
 *
 * list reads every %DLQ% topic of the NameServer's topic list with
 * GET_TOPIC_STATS_INFO (messages = max - min offset over its queues).
 * export prints one JSON object per line (apg_adm_msg_json, plus
 * originalTopic), to stdout or to -f FILE.
 *
 * Threads: main thread (admin.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/admin/admin.h"
#include "common/json.h"
#include "common/mem.h"
#include "protocol/rcode.h"
#include "protocol/remoting.h"

#define DLQ_PREFIX "%DLQ%"

static const char *original_topic(json_t *m)
{
    json_t *p = json_object_get(m, "properties");
    const char *t = apg_json_get_str(p, "RETRY_TOPIC", NULL);
    if (!t || !*t)
        t = apg_json_get_str(p, "REAL_TOPIC", NULL);
    return t && *t ? t : NULL;
}

/* Messages of max - min over a topic's queues; -1 on failure. */
static int64_t topic_depth(struct apg_adm *a, const char *topic)
{
    json_t *rt = apg_adm_route(a, topic, true, NULL);
    if (!rt)
        return -1;
    int64_t total = 0;
    size_t i;
    json_t *bd;
    json_array_foreach(json_object_get(rt, "brokerDatas"), i, bd)
    {
        const char *addr = apg_adm_route_master(rt, apg_json_get_str(bd, "brokerName", ""));
        if (!addr)
            continue;
        json_t *j =
            apg_adm_get_json(a, addr, APG_REQ_GET_TOPIC_STATS_INFO, "topic", topic, NULL, NULL);
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(j, "offsetTable"), k, v)
        {
            total += apg_json_get_i64(v, "maxOffset", 0) - apg_json_get_i64(v, "minOffset", 0);
        }
        json_decref(j);
    }
    json_decref(rt);
    return total;
}

int64_t apg_adm_dlq_depth(struct apg_adm *a, const char *group)
{
    char topic[300];
    snprintf(topic, sizeof(topic), "%s%s", DLQ_PREFIX, group);
    return topic_depth(a, topic);
}

static int dlq_list(struct apg_adm *a)
{
    struct apg_rcmd req;
    struct apg_adm_resp r;
    char err[512];
    apg_adm_req(&req, APG_REQ_GET_ALL_TOPIC_LIST_FROM_NAMESERVER);
    if (apg_adm_ns_call(a, &req, NULL, 0, &r, err, sizeof(err)) != APG_OK)
        return apg_adm_fail(a, "%s", err);
    if (r.ar_code != 0) {
        int rc = apg_adm_refused(a, "the NameServer", &req, &r);
        apg_adm_resp_free(&r);
        return rc;
    }
    json_t *j = apg_adm_body_json(&r, err, sizeof(err));
    apg_adm_resp_free(&r);
    json_t *rows = json_array();
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(j, "topicList"), i, t)
    {
        const char *name = json_string_value(t);
        if (!name || strncmp(name, DLQ_PREFIX, strlen(DLQ_PREFIX)) != 0)
            continue;
        json_array_append_new(rows, json_pack("{s:s,s:s,s:I}", "group", name + strlen(DLQ_PREFIX),
                                              "topic", name, "messages",
                                              (json_int_t)topic_depth(a, name)));
    }
    json_decref(j);
    static const struct apg_adm_col cols[] = {
        {"#Group", "group"}, {"#DLQ Topic", "topic"}, {"#Messages", "messages"}, {0}};
    return apg_adm_emit(a, json_pack("{s:o}", "dlqs", rows), "dlqs", cols);
}

/* The dead letters of -g (from -o, only -i when given), each with
 * originalTopic. NULL after printing why. */
static json_t *dlq_read(struct apg_adm *a, int *rc)
{
    const char *g = apg_adm_need(a, 'g');
    int64_t from, max;
    *rc = APG_ADM_USAGE;
    if (!g || !apg_adm_int(a, 'o', -1, INT64_MAX, -1, &from) ||
        !apg_adm_int(a, 'c', 1, 1 << 24, 1 << 24, &max))
        return NULL;
    char topic[300];
    snprintf(topic, sizeof(topic), "%s%s", DLQ_PREFIX, g);
    json_t *msgs = json_array();
    int32_t code;
    json_t *rt = apg_adm_route(a, topic, true, &code);
    if (!rt && code == APG_RESP_TOPIC_NOT_EXIST) {
        *rc = APG_ADM_OK; /* no dead letters yet */
        return msgs;
    }
    json_decref(rt);
    *rc = apg_adm_read_topic(a, "TOOLS_CONSUMER", topic, NULL, -1, "*", from, 0, INT64_MAX, max,
                             msgs);
    if (*rc) {
        json_decref(msgs);
        return NULL;
    }
    const char *only = apg_adm_opt(a, 'i');
    json_t *out = json_array();
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m)
    {
        if (only && strcmp(only, apg_json_get_str(m, "msgId", "")) != 0 &&
            strcmp(only, apg_json_get_str(m, "offsetMsgId", "")) != 0)
            continue;
        const char *ot = original_topic(m);
        json_object_set_new(m, "originalTopic", ot ? json_string(ot) : json_null());
        json_array_append(out, m);
    }
    json_decref(msgs);
    if (only && json_array_size(out) == 0) {
        json_decref(out);
        *rc = apg_adm_fail(a, "no message with id %s in %s", only, topic);
        return NULL;
    }
    return out;
}

static const struct apg_adm_col show_cols[] = {
    {"#QID", "queueId"},
    {"#Offset", "queueOffset"},
    {"#MsgId", "msgId"},
    {"#StoreTime", "storeTime"},
    {"#Original Topic", "originalTopic"},
    {"#Tags", "tags"},
    {"#Keys", "keys"},
    {"#Body", "body"},
    {0},
};

static int dlq_show(struct apg_adm *a)
{
    int rc;
    json_t *msgs = dlq_read(a, &rc);
    if (!msgs)
        return rc;
    return apg_adm_emit(
        a,
        json_pack("{s:s,s:o}", "group", apg_adm_opt(a, 'g'), "messages", apg_adm_sort_queues(msgs)),
        "messages", show_cols);
}

static int dlq_export(struct apg_adm *a)
{
    int rc;
    json_t *msgs = dlq_read(a, &rc);
    if (!msgs)
        return rc;
    const char *path = apg_adm_opt(a, 'f');
    FILE *out = stdout;
    if (path && *path && !(out = fopen(path, "w"))) {
        json_decref(msgs);
        return apg_adm_fail(a, "cannot write %s: %s", path, strerror(errno));
    }
    msgs = apg_adm_sort_queues(msgs);
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m)
    {
        json_dumpf(m, out, JSON_COMPACT | JSON_PRESERVE_ORDER);
        fputc('\n', out);
    }
    if (out != stdout && fclose(out) != 0)
        rc = apg_adm_fail(a, "cannot write %s: %s", path, strerror(errno));
    else if (out != stdout)
        fprintf(stderr, "%zu message(s) written to %s\n", json_array_size(msgs), path);
    json_decref(msgs);
    return rc;
}

/* A property a resent message keeps: the user's, not the broker's. */
static bool user_prop(const char *k)
{
    return !apg_msg_prop_reserved(k) && strcmp(k, "RETRY_TOPIC") != 0 &&
           strcmp(k, "ORIGIN_MESSAGE_ID") != 0 && strcmp(k, "REAL_TOPIC") != 0 &&
           strcmp(k, "REAL_QID") != 0;
}

static int dlq_resend(struct apg_adm *a)
{
    int rc;
    json_t *msgs = dlq_read(a, &rc);
    if (!msgs)
        return rc;
    const char *to = apg_adm_opt(a, 't');
    apg_producer_t *p = NULL;
    if (!a->ad_dry_run && json_array_size(msgs) && !(p = apg_adm_producer(a, "TOOLS_PRODUCER"))) {
        json_decref(msgs);
        return APG_ADM_FAILED;
    }
    msgs = apg_adm_sort_queues(msgs);
    json_t *rows = json_array();
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m)
    {
        const char *topic = to && *to ? to : original_topic(m);
        json_t *row = json_pack("{s:O,s:O,s:s?}", "dlqOffset", json_object_get(m, "queueOffset"),
                                "msgId", json_object_get(m, "msgId"), "topic", topic);
        json_array_append_new(rows, row);
        if (!topic) {
            json_object_set_new(row, "result",
                                json_string("no RETRY_TOPIC or REAL_TOPIC: give -t"));
            rc = APG_ADM_FAILED;
            continue;
        }
        if (a->ad_dry_run) {
            json_object_set_new(row, "result", json_string("would resend"));
            continue;
        }
        const char *body = apg_json_get_str(m, "body", "");
        if (strcmp(apg_json_get_str(m, "bodyEncoding", "utf8"), "utf8") != 0) {
            json_object_set_new(row, "result", json_string("binary body: not resent"));
            rc = APG_ADM_FAILED;
            continue;
        }
        apg_message_t *nm = apg_message_new(topic, body, strlen(body));
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(m, "properties"), k, v)
        {
            if (nm && user_prop(k))
                apg_msg_prop_set(nm, k, json_string_value(v));
        }
        const char *tags = apg_json_get_str(m, "tags", ""), *keys = apg_json_get_str(m, "keys", "");
        if (nm && *tags)
            apg_message_set_tags(nm, tags);
        if (nm && *keys)
            apg_message_set_keys(nm, keys);
        apg_send_result_t res;
        char err[512];
        if (!nm || apg_producer_send(p, nm, &res, err, sizeof(err)) != APG_OK) {
            json_object_set_new(row, "result", json_string(nm ? err : "out of memory"));
            rc = APG_ADM_FAILED;
        } else {
            json_object_set_new(row, "result", json_string("resent"));
            json_object_set_new(row, "newMsgId", json_string(res.sr_msg_id));
        }
        apg_message_free(nm);
    }
    apg_producer_destroy(p);
    json_decref(msgs);
    static const struct apg_adm_col cols[] = {{"#DLQ Offset", "dlqOffset"}, {"#MsgId", "msgId"},
                                              {"#To Topic", "topic"},       {"#Result", "result"},
                                              {"#New MsgId", "newMsgId"},   {0}};
    apg_adm_emit(a,
                 json_pack("{s:s,s:b,s:o}", "group", apg_adm_opt(a, 'g'), "dryRun", a->ad_dry_run,
                           "messages", rows),
                 "messages", cols);
    return rc;
}

static const struct apg_adm_opt show_opts[] = {
    {'g', "group", true, "consumer group whose dead letters to read"},
    {'o', "offset", true, "first DLQ offset (default: the oldest)"},
    {'c', "count", true, "at most this many"},
    {'i', "msgId", true, "only this message (msgId or offsetMsgId)"},
    {0},
};
static const struct apg_adm_opt export_opts[] = {
    {'g', "group", true, "consumer group whose dead letters to export"},
    {'o', "offset", true, "first DLQ offset (default: the oldest)"},
    {'c', "count", true, "at most this many"},
    {'i', "msgId", true, "only this message (msgId or offsetMsgId)"},
    {'f', "file", true, "write to this file instead of stdout"},
    {0},
};
static const struct apg_adm_opt resend_opts[] = {
    {'g', "group", true, "consumer group whose dead letters to resend"},
    {'o', "offset", true, "first DLQ offset (default: the oldest)"},
    {'c', "count", true, "at most this many"},
    {'i', "msgId", true, "only this message (msgId or offsetMsgId)"},
    {'t', "topic", true, "send here instead of the original topic"},
    APG_ADM_OPT_DRY_RUN,
    {0},
};

#define DLQ_MSG_JSON                                                                               \
    "group, messages[]: the queryMsg fields plus brokerName, storeTime, originalTopic (null when " \
    "unknown)"

const struct apg_adm_cmd apg_adm_dlq_cmds[] = {
    {"dlq list", "list the dead-letter queues (%DLQ%<group>) and how many messages each holds",
     NULL, dlq_list, "dlqs[]: group, topic, messages"},
    {"dlq show", "print a group's dead letters with their original topic", show_opts, dlq_show,
     DLQ_MSG_JSON},
    {"dlq resend", "send a group's dead letters back to their original topic", resend_opts,
     dlq_resend,
     "group, dryRun, messages[]: dlqOffset, msgId, topic, result (resent|would resend|why not), "
     "newMsgId"},
    {"dlq export", "write a group's dead letters as JSON lines", export_opts, dlq_export,
     "one message object per line (the dlq show fields)"},
    {0},
};

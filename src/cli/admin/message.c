/* `apogee admin` message commands: queryMsgById, queryMsgByKey,
 * queryMsgByUniqueKey, queryMsgByOffset, printMsg, sendMessage,
 * consumeMessage.
 *
 * An offset message id names the storing broker (address and port) and the
 * record's commit-log offset, so queryMsgById asks that broker directly
 * with VIEW_MESSAGE_BY_ID (33); an id that is not an offset id is looked up
 * as a unique key (UNIQ_KEY) when -t is given, as mqadmin does. Key and
 * unique-key lookups use the client's QUERY_MESSAGE path (query.c: every
 * master of the topic, answers merged). Offsets, printMsg and
 * consumeMessage read with the C client's pull consumer (PULL_MESSAGE, no
 * offsets committed), and time bounds become queue offsets with
 * SEARCH_OFFSET_BY_TIMESTAMP (29). sendMessage uses the C producer.
 *
 * Single messages print as "Key: value" lines; lists as tables. --json
 * prints each message as apg_adm_msg_json() builds it.
 *
 * Threads: main thread (admin.h). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli/admin/admin.h"
#include "common/json.h"
#include "common/mem.h"
#include "protocol/msgid.h"
#include "protocol/rcode.h"
#include "protocol/remoting.h"

static const struct apg_adm_col list_cols[] = {
    {"#Topic", "topic"}, {"#QID", "queueId"},         {"#Offset", "queueOffset"},
    {"#MsgId", "msgId"}, {"#StoreTime", "storeTime"}, {"#Tags", "tags"},
    {"#Keys", "keys"},   {"#Body", "body"},           {0},
};

/* Adds storeTime text to a message object. */
static json_t *with_time(json_t *m)
{
    char ts[40];
    json_object_set_new(
        m, "storeTime",
        json_string(apg_adm_fmt_time(apg_json_get_i64(m, "storeTimestamp", 0), ts, sizeof(ts))));
    return m;
}

/* "Key: value" lines of one message object. */
static void print_detail(json_t *m)
{
    char ts[40];
    printf("%-20s %s\n", "Topic:", apg_json_get_str(m, "topic", ""));
    printf("%-20s %s\n", "Tags:", apg_json_get_str(m, "tags", ""));
    printf("%-20s %s\n", "Keys:", apg_json_get_str(m, "keys", ""));
    printf("%-20s %lld\n", "Queue ID:", (long long)apg_json_get_i64(m, "queueId", 0));
    printf("%-20s %lld\n", "Queue Offset:", (long long)apg_json_get_i64(m, "queueOffset", 0));
    printf("%-20s %lld\n",
           "CommitLog Offset:", (long long)apg_json_get_i64(m, "commitLogOffset", 0));
    printf("%-20s %lld\n", "Reconsume Times:", (long long)apg_json_get_i64(m, "reconsumeTimes", 0));
    printf("%-20s %s\n", "Born Timestamp:",
           apg_adm_fmt_time(apg_json_get_i64(m, "bornTimestamp", 0), ts, sizeof(ts)));
    printf("%-20s %s\n", "Store Timestamp:",
           apg_adm_fmt_time(apg_json_get_i64(m, "storeTimestamp", 0), ts, sizeof(ts)));
    printf("%-20s %s\n", "Msg ID:", apg_json_get_str(m, "msgId", ""));
    printf("%-20s %s\n", "Offset Msg ID:", apg_json_get_str(m, "offsetMsgId", ""));
    char *props = json_dumps(json_object_get(m, "properties"), JSON_COMPACT);
    printf("%-20s %s\n", "Properties:", props ? props : "{}");
    free(props);
    printf("%-20s %s (%s, %lld bytes)\n", "Message Body:", apg_json_get_str(m, "body", ""),
           apg_json_get_str(m, "bodyEncoding", "utf8"),
           (long long)apg_json_get_i64(m, "bodyLength", 0));
}

static int emit_messages(struct apg_adm *a, json_t *msgs, bool detail)
{
    if (a->ad_json || !detail)
        return apg_adm_emit(a, json_pack("{s:o}", "messages", msgs), "messages", list_cols);
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m)
    {
        if (i)
            printf("\n");
        print_detail(m);
    }
    json_decref(msgs);
    return APG_ADM_OK;
}

static apg_err_t collect(apg_message_t *m, void *arg)
{
    json_array_append_new(arg, with_time(apg_adm_msg_json(m, true)));
    apg_message_free(m);
    return APG_OK;
}

/* VIEW_MESSAGE_BY_ID for an offset msgId: appends the message to out. */
static int view_by_offset_id(struct apg_adm *a, const char *id, json_t *out)
{
    struct apg_host h;
    int64_t off;
    if (apg_msgid_decode(id, strlen(id), &h, &off) != APG_OK || h.h_v6)
        return APG_ADM_USAGE;
    char addr[64], offs[24], err[512];
    snprintf(addr, sizeof(addr), "%u.%u.%u.%u:%u", h.h_ip[0], h.h_ip[1], h.h_ip[2], h.h_ip[3],
             (unsigned)h.h_port);
    snprintf(offs, sizeof(offs), "%lld", (long long)off);
    struct apg_rcmd req;
    struct apg_adm_resp r;
    apg_adm_req(&req, APG_REQ_VIEW_MESSAGE_BY_ID);
    apg_rcmd_ext_add(&req, "offset", offs);
    if (apg_adm_call(a, addr, &req, NULL, 0, &r, err, sizeof(err)) != APG_OK)
        return apg_adm_fail(a, "message %s is stored on %s, which did not answer: %s", id, addr,
                            err);
    int rc = APG_ADM_OK;
    if (r.ar_code != 0) {
        char who[128];
        snprintf(who, sizeof(who), "broker %s", addr);
        rc = apg_adm_refused(a, who, &req, &r);
    } else if (apg_msg_decode_records(r.ar_body, r.ar_body_len, collect, out, err, sizeof(err)) !=
               APG_OK) {
        rc = apg_adm_fail(a, "broker %s sent a record that does not decode: %s", addr, err);
    }
    apg_adm_resp_free(&r);
    return rc;
}

static int query_unique(struct apg_adm *a, const char *topic, const char *key, bool unique, int max,
                        int64_t begin, int64_t end, json_t *out)
{
    char err[512];
    if (!apg_adm_io(a))
        return APG_ADM_FAILED;
    apg_message_t **msgs;
    size_t n;
    apg_err_t e = apg_client_query(a->ad_io, a->ad_timeout_ms, 0, topic, key, unique, max, begin,
                                   end, &msgs, &n, err, sizeof(err));
    if (e == APG_ENOTFOUND)
        return apg_adm_fail(a, "%s", err);
    if (e != APG_OK)
        return apg_adm_fail(a, "query failed: %s", err);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(out, with_time(apg_adm_msg_json(msgs[i], true)));
    apg_message_list_free(msgs, n);
    return APG_ADM_OK;
}

static int query_by_id(struct apg_adm *a)
{
    const char *ids = apg_adm_need(a, 'i');
    if (!ids)
        return APG_ADM_USAGE;
    const char *topic = apg_adm_opt(a, 't');
    json_t *msgs = json_array();
    int rc = APG_ADM_OK;
    char *list = apg_strdup(ids), *save = NULL;
    for (char *id = list ? strtok_r(list, ", ", &save) : NULL; id;
         id = strtok_r(NULL, ", ", &save)) {
        int r = view_by_offset_id(a, id, msgs);
        if (r == APG_ADM_USAGE && topic && *topic)
            r = query_unique(a, topic, id, true, 32, 0, INT64_MAX, msgs);
        else if (r == APG_ADM_USAGE)
            r = apg_adm_usage(a,
                              "'%s' is not an offset message id (32 hex digits naming the "
                              "broker); for a unique key (UNIQ_KEY) give -t <topic> too",
                              id);
        if (r)
            rc = r;
    }
    apg_free(list);
    if (json_array_size(msgs) == 0) {
        json_decref(msgs);
        return rc;
    }
    emit_messages(a, msgs, true);
    return rc;
}

static int query_by_key(struct apg_adm *a)
{
    const char *t = apg_adm_need(a, 't');
    const char *k = t ? apg_adm_need(a, 'k') : NULL;
    int64_t begin, end, max;
    if (!k || !apg_adm_time(a, 'b', 0, &begin) || !apg_adm_time(a, 'e', INT64_MAX, &end) ||
        !apg_adm_int(a, 'm', 1, 65536, 64, &max))
        return APG_ADM_USAGE;
    json_t *msgs = json_array();
    int rc = query_unique(a, t, k, false, (int)max, begin, end, msgs);
    if (rc) {
        json_decref(msgs);
        return rc;
    }
    return emit_messages(a, msgs, false);
}

static int query_by_unique_key(struct apg_adm *a)
{
    const char *id = apg_adm_need(a, 'i');
    const char *t = id ? apg_adm_need(a, 't') : NULL;
    if (!t)
        return APG_ADM_USAGE;
    json_t *msgs = json_array();
    int rc = query_unique(a, t, id, true, 32, 0, INT64_MAX, msgs);
    if (rc) {
        json_decref(msgs);
        return rc;
    }
    while (!apg_adm_opt(a, 'a') && json_array_size(msgs) > 1)
        json_array_remove(msgs, json_array_size(msgs) - 1);
    return emit_messages(a, msgs, true);
}

/* ---- pulling ---- */

/* SEARCH_OFFSET_BY_TIMESTAMP of one queue on its master; -1 on failure. */
static int64_t offset_by_time(struct apg_adm *a, json_t *rt, const apg_mq_t *mq, int64_t ts)
{
    const char *addr = apg_adm_route_master(rt, mq->mq_broker);
    return addr ? apg_adm_queue_offset(a, addr, APG_REQ_SEARCH_OFFSET_BY_TIMESTAMP, mq->mq_topic,
                                       mq->mq_queue_id, ts, true)
                : -1;
}

/* Reads [from, to) of mq (to < 0: the queue's end), at most max messages
 * (< 0: no limit) stored before end_ts, into out. */
static int read_queue(struct apg_adm *a, apg_pull_consumer_t *c, const apg_mq_t *mq,
                      const char *expr, int64_t from, int64_t to, int64_t end_ts, int64_t *max,
                      json_t *out)
{
    char err[512];
    if (to < 0 && apg_pull_consumer_max_offset(c, mq, &to, err, sizeof(err)) != APG_OK)
        return apg_adm_fail(a, "cannot read the end of %s queue %d: %s", mq->mq_broker,
                            mq->mq_queue_id, err);
    int64_t off = from;
    while (off < to && *max != 0) {
        apg_pull_result_t res;
        int want = to - off < 32 ? (int)(to - off) : 32;
        if (apg_pull_consumer_pull(c, mq, expr, off, want, 0, &res, err, sizeof(err)) != APG_OK)
            return apg_adm_fail(a, "pull from %s queue %d at %lld failed: %s", mq->mq_broker,
                                mq->mq_queue_id, (long long)off, err);
        for (size_t i = 0; i < res.pr_count && *max != 0; i++) {
            apg_message_t *m = res.pr_msgs[i];
            if (apg_message_queue_offset(m) >= to || apg_message_store_timestamp(m) >= end_ts)
                continue;
            json_t *j = with_time(apg_adm_msg_json(m, true));
            json_object_set_new(j, "brokerName", json_string(mq->mq_broker));
            json_array_append_new(out, j);
            if (*max > 0)
                (*max)--;
        }
        int status = res.pr_status;
        int64_t next = res.pr_next_offset;
        apg_pull_result_clear(&res);
        if (status == APG_PULL_NO_NEW_MSG || next <= off)
            break;
        off = next;
    }
    return APG_ADM_OK;
}

int apg_adm_read_topic(struct apg_adm *a, const char *group, const char *topic, const char *broker,
                       int qid, const char *expr, int64_t offset, int64_t begin_ts, int64_t end_ts,
                       int64_t max, json_t *out)
{
    json_t *rt = apg_adm_route(a, topic, false, NULL);
    if (!rt)
        return APG_ADM_FAILED;
    apg_pull_consumer_t *c = apg_adm_pull_consumer(a, group);
    if (!c) {
        json_decref(rt);
        return APG_ADM_FAILED;
    }
    apg_mq_t *mqs = NULL;
    size_t n = 0;
    char err[512];
    int rc = APG_ADM_OK;
    if (apg_pull_consumer_queues(c, topic, &mqs, &n, err, sizeof(err)) != APG_OK)
        rc = apg_adm_fail(a, "cannot list the queues of '%s': %s", topic, err);
    size_t matched = 0;
    for (size_t i = 0; !rc && i < n && max != 0; i++) {
        if ((broker && strcmp(broker, mqs[i].mq_broker) != 0) ||
            (qid >= 0 && mqs[i].mq_queue_id != qid))
            continue;
        matched++;
        int64_t from = offset;
        if (from < 0 && begin_ts > 0)
            from = offset_by_time(a, rt, &mqs[i], begin_ts);
        if (from < 0 && apg_pull_consumer_min_offset(c, &mqs[i], &from, err, sizeof(err)) != APG_OK)
            rc = apg_adm_fail(a, "cannot read the start of %s queue %d: %s", mqs[i].mq_broker,
                              mqs[i].mq_queue_id, err);
        if (!rc)
            rc = read_queue(a, c, &mqs[i], expr, from, -1, end_ts, &max, out);
    }
    if (!rc && !matched)
        rc = apg_adm_fail(a, "topic '%s' has no readable queue%s%s%s", topic,
                          broker ? " on broker " : "", broker ? broker : "",
                          qid >= 0 ? " with that queue id" : "");
    apg_mq_list_free(mqs);
    apg_pull_consumer_destroy(c);
    json_decref(rt);
    return rc;
}

static int query_by_offset(struct apg_adm *a)
{
    const char *t = apg_adm_need(a, 't');
    const char *b = t ? apg_adm_need(a, 'b') : NULL;
    int64_t q, o;
    if (!b || !apg_adm_need(a, 'i') || !apg_adm_need(a, 'o') ||
        !apg_adm_int(a, 'i', 0, 65535, 0, &q) || !apg_adm_int(a, 'o', 0, INT64_MAX, 0, &o))
        return APG_ADM_USAGE;
    json_t *msgs = json_array();
    int rc = apg_adm_read_topic(a, "TOOLS_CONSUMER", t, b, (int)q, NULL, o, 0, INT64_MAX, 1, msgs);
    if (!rc && json_array_size(msgs) == 0)
        rc = apg_adm_fail(a, "no message at offset %lld of %s queue %lld of '%s'", (long long)o, b,
                          (long long)q, t);
    if (rc) {
        json_decref(msgs);
        return rc;
    }
    return emit_messages(a, msgs, true);
}

static int print_msg(struct apg_adm *a)
{
    const char *t = apg_adm_need(a, 't');
    int64_t begin, end;
    if (!t || !apg_adm_time(a, 'b', 0, &begin) || !apg_adm_time(a, 'e', INT64_MAX, &end))
        return APG_ADM_USAGE;
    const char *expr = apg_adm_opt(a, 's');
    bool body = apg_adm_bool(a, 'd', true);
    json_t *msgs = json_array();
    int rc = apg_adm_read_topic(a, "TOOLS_CONSUMER", t, NULL, -1, expr && *expr ? expr : "*", -1,
                                begin, end, -1, msgs);
    if (rc) {
        json_decref(msgs);
        return rc;
    }
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m) if (!body) json_object_del(m, "body");
    return emit_messages(a, apg_adm_sort_queues(msgs), false);
}

static int consume_message(struct apg_adm *a)
{
    const char *t = apg_adm_need(a, 't');
    int64_t q, o, begin, end, count;
    if (!t || !apg_adm_int(a, 'i', -1, 65535, -1, &q) ||
        !apg_adm_int(a, 'o', -1, INT64_MAX, -1, &o) || !apg_adm_time(a, 's', 0, &begin) ||
        !apg_adm_time(a, 'e', INT64_MAX, &end) || !apg_adm_int(a, 'c', 1, 1 << 20, 128, &count))
        return APG_ADM_USAGE;
    const char *b = apg_adm_opt(a, 'b');
    const char *g = apg_adm_opt(a, 'g');
    if (o >= 0 && (q < 0 || !b))
        return apg_adm_usage(a, "-o <offset> needs -b <broker name> and -i <queue id>");
    json_t *msgs = json_array();
    int rc = apg_adm_read_topic(a, g && *g ? g : "TOOLS_CONSUMER", t, b && *b ? b : NULL, (int)q,
                                "*", o, begin, end, count, msgs);
    if (rc) {
        json_decref(msgs);
        return rc;
    }
    return emit_messages(a, msgs, false);
}

/* ---- sending ---- */

struct pick {
    const char *pk_broker;
    int pk_qid;
};

static int pick_queue(const apg_mq_t *mqs, size_t n, const apg_message_t *msg, void *arg)
{
    (void)msg;
    const struct pick *p = arg;
    for (size_t i = 0; i < n; i++)
        if ((!p->pk_broker || strcmp(mqs[i].mq_broker, p->pk_broker) == 0) &&
            (p->pk_qid < 0 || mqs[i].mq_queue_id == p->pk_qid))
            return (int)i;
    return -1;
}

static int send_message(struct apg_adm *a)
{
    const char *t = apg_adm_need(a, 't');
    const char *body = t ? apg_adm_need(a, 'p') : NULL;
    int64_t q;
    if (!body || !apg_adm_int(a, 'i', -1, 65535, -1, &q))
        return APG_ADM_USAGE;
    const char *b = apg_adm_opt(a, 'b');
    if (q >= 0 && !(b && *b))
        return apg_adm_usage(a, "-i <queue id> needs -b <broker name>");
    apg_producer_t *p = apg_adm_producer(a, "TOOLS_PRODUCER");
    if (!p)
        return APG_ADM_FAILED;
    apg_message_t *m = apg_message_new(t, body, strlen(body));
    const char *k = apg_adm_opt(a, 'k'), *tags = apg_adm_opt(a, 'c');
    if (m && k && *k)
        apg_message_set_keys(m, k);
    if (m && tags && *tags)
        apg_message_set_tags(m, tags);
    apg_send_result_t res;
    char err[512];
    apg_err_t e;
    if (b && *b) {
        struct pick pk = {b, (int)q};
        e = apg_producer_send_select(p, m, pick_queue, &pk, &res, err, sizeof(err));
    } else {
        e = apg_producer_send(p, m, &res, err, sizeof(err));
    }
    apg_message_free(m);
    apg_producer_destroy(p);
    if (e != APG_OK)
        return apg_adm_fail(a, "send to '%s' failed: %s", t, err);
    static const char *const status[] = {"SEND_OK", "FLUSH_DISK_TIMEOUT", "FLUSH_SLAVE_TIMEOUT",
                                         "SLAVE_NOT_AVAILABLE"};
    json_t *row = json_pack("{s:s,s:s,s:i,s:I,s:s,s:s,s:s}", "topic", t, "brokerName",
                            res.sr_mq.mq_broker, "queueId", res.sr_mq.mq_queue_id, "queueOffset",
                            (json_int_t)res.sr_queue_offset, "msgId", res.sr_msg_id, "offsetMsgId",
                            res.sr_offset_msg_id, "sendStatus", status[res.sr_status & 3]);
    static const struct apg_adm_col cols[] = {
        {"#Broker Name", "brokerName"}, {"#QID", "queueId"}, {"#Offset", "queueOffset"},
        {"#Send Result", "sendStatus"}, {"#MsgId", "msgId"}, {0}};
    if (a->ad_json)
        return apg_adm_emit(a, row, NULL, cols);
    return apg_adm_emit(a, json_pack("[o]", row), NULL, cols);
}

static const struct apg_adm_opt by_id_opts[] = {
    {'i', "msgId", true, "offset message id(s), comma separated (a unique key with -t)"},
    {'t', "topic", true, "topic, to look an id up as a unique key"},
    {'f', "bodyFormat", true, "ignored: bodies print as text, or base64 when binary"},
    {0},
};
static const struct apg_adm_opt by_key_opts[] = {
    {'t', "topic", true, "topic name"},
    {'k', "msgKey", true, "message key"},
    {'b', "beginTimestamp", true, "from this store time (ms, 'now', yyyy-MM-dd#HH:mm:ss:SSS)"},
    {'e', "endTimestamp", true, "until this store time"},
    {'m', "maxNum", true, "at most this many (default 64)"},
    {0},
};
static const struct apg_adm_opt by_uniq_opts[] = {
    {'i', "msgId", true, "unique key (the msgId a producer gets)"},
    {'t', "topic", true, "topic name"},
    {'a', "showAll", false, "print every match, not only the first"},
    {0},
};
static const struct apg_adm_opt by_offset_opts[] = {
    {'t', "topic", true, "topic name"},
    {'b', "brokerName", true, "broker name"},
    {'i', "queueId", true, "queue id"},
    {'o', "offset", true, "queue offset"},
    {'f', "bodyFormat", true, "ignored: bodies print as text, or base64 when binary"},
    {0},
};
static const struct apg_adm_opt print_opts[] = {
    {'t', "topic", true, "topic name"},
    {'c', "charsetName", true, "ignored: bodies print as UTF-8 text, or base64 when binary"},
    {'s', "subExpression", true, "tag expression (default *)"},
    {'b', "beginTimestamp", true, "from this store time"},
    {'e', "endTimestamp", true, "until this store time"},
    {'d', "printBody", true, "true/false (default true)"},
    {0},
};
static const struct apg_adm_opt send_opts[] = {
    {'t', "topic", true, "topic name"},
    {'p', "body", true, "message body"},
    {'k', "key", true, "message keys"},
    {'c', "tags", true, "message tag"},
    {'b', "broker", true, "send to this broker name"},
    {'i', "qid", true, "send to this queue id (with -b)"},
    {0},
};
static const struct apg_adm_opt consume_opts[] = {
    {'t', "topic", true, "topic name"},
    {'b', "brokerName", true, "only this broker"},
    {'i', "queueId", true, "only this queue"},
    {'o', "offset", true, "start at this queue offset (with -b and -i)"},
    {'g', "consumerGroup", true, "group to pull as (default TOOLS_CONSUMER; nothing committed)"},
    {'s', "beginTimestamp", true, "from this store time"},
    {'e', "endTimestamp", true, "until this store time"},
    {'c', "MessageNumber", true, "at most this many (default 128)"},
    {0},
};

#define MSG_JSON                                                                                   \
    "messages[]: topic, msgId (UNIQ_KEY), offsetMsgId, queueId, queueOffset, commitLogOffset, "    \
    "bornTimestamp, storeTimestamp, storeTime, reconsumeTimes, tags, keys, properties{}, "         \
    "bodyLength, body, bodyEncoding (utf8|base64)"

const struct apg_adm_cmd apg_adm_message_cmds[] = {
    {"queryMsgById", "print a message by its offset message id", by_id_opts, query_by_id, MSG_JSON},
    {"queryMsgByKey", "list a topic's messages with a key (the message index)", by_key_opts,
     query_by_key, MSG_JSON},
    {"queryMsgByUniqueKey", "print a message by its unique key (the producer's msgId)",
     by_uniq_opts, query_by_unique_key, MSG_JSON},
    {"queryMsgByOffset", "print the message at a queue offset", by_offset_opts, query_by_offset,
     MSG_JSON},
    {"printMsg", "print a topic's messages (optionally a time range and tag expression)",
     print_opts, print_msg, MSG_JSON ", brokerName"},
    {"sendMessage", "send one message", send_opts, send_message,
     "topic, brokerName, queueId, queueOffset, msgId, offsetMsgId, sendStatus"},
    {"consumeMessage", "read messages from a topic's queues without committing offsets",
     consume_opts, consume_message, MSG_JSON ", brokerName"},
    {0},
};

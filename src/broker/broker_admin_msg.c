/* Messages an operator writes: a test message into a topic and the resend
 * of a dead-lettered message to the topic it came from. The HTTP admin API
 * calls these (src/http/admin_api.c); both go through the broker's put
 * paths for writers without a remoting connection (apg_broker_put_internal,
 * or apg_broker_put_notify when the caller passes a struct apg_put_wait),
 * so the records, consume queues, index and long-poll wake-ups are those
 * of any other put.
 *
 * A test message gets TAGS, KEYS and the caller's user properties, a fresh
 * UNIQ_KEY and WAIT=true; born host and store host are the broker's. A
 * resend reads the %DLQ%<group> record at its commit-log offset and stores
 * a copy (body, flag, born time and host, properties) into the topic named
 * by its RETRY_TOPIC property (the topic it was first sent to), queue
 * chosen round-robin, reconsume count back to 0.
 *
 * Threads: any thread but a broker loop's (without a struct apg_put_wait,
 * apg_broker_put_internal waits for the disk under SYNC_FLUSH; with one,
 * nothing waits: the HTTP port's loop thread calls it so). */
#include <stdio.h>
#include <string.h>

#include "broker/broker_admin_stats.h"
#include "common/hash.h"
#include "common/mem.h"
#include "protocol/msgid.h"
#include "protocol/props.h"

/* The writable topic name into tc, or a response code with remark. */
static int32_t writable_topic(struct apg_broker *b, const char *topic, struct apg_topic_cfg *tc,
                              char *remark, size_t n)
{
    if (!(atomic_load(&b->br_perm) & APG_PERM_WRITE)) {
        snprintf(remark, n, "the broker is not writable (brokerPermission)");
        return APG_RESP_NO_PERMISSION;
    }
    if (!apg_topics_get(b->br_topics, topic, tc)) {
        snprintf(remark, n, "topic %s does not exist on this broker; create it first", topic);
        return APG_RESP_TOPIC_NOT_EXIST;
    }
    if (!(tc->tc_perm & APG_PERM_WRITE) || tc->tc_write_queues <= 0) {
        snprintf(remark, n, "topic %s is not writable; update it with perm 6", topic);
        return APG_RESP_NO_PERMISSION;
    }
    return APG_RESP_SUCCESS;
}

static int32_t put_one(struct apg_broker *b, struct apg_msg_in *m, struct apg_put_wait *w,
                       struct apg_put_result *res, char *remark, size_t n)
{
    char err[256];
    apg_err_t e = w ? apg_broker_put_notify(b, m, 1, res, w->pw_done, w->pw_arg, &w->pw_pending,
                                            err, sizeof(err))
                    : apg_broker_put_internal(b, m, 1, res, err, sizeof(err));
    if (e) {
        snprintf(remark, n, "the store refused the message: %s", err);
        return APG_RESP_SYSTEM_ERROR;
    }
    return APG_RESP_SUCCESS;
}

int32_t apg_broker_msg_send_test(struct apg_broker *b, const struct apg_test_msg *tm,
                                 struct apg_put_wait *w, struct apg_put_result *res, char uniq[33],
                                 char *remark, size_t n)
{
    if (w)
        w->pw_pending = false;
    struct apg_topic_cfg tc;
    int32_t code = writable_topic(b, tm->tm_topic, &tc, remark, n);
    if (code != APG_RESP_SUCCESS)
        return code;
    if (tm->tm_body_len == 0 || tm->tm_body_len > b->br_max_msg_size) {
        snprintf(remark, n, "the body must be 1..%u bytes (maxMessageSize), not %zu",
                 b->br_max_msg_size, tm->tm_body_len);
        return APG_RESP_MESSAGE_ILLEGAL;
    }
    if (tm->tm_qid >= tc.tc_write_queues) {
        snprintf(remark, n, "topic %s has %d write queues; queueId %d is out of range",
                 tm->tm_topic, tc.tc_write_queues, tm->tm_qid);
        return APG_RESP_INVALID_PARAMETER;
    }
    struct apg_buf props = APG_BUF_INIT;
    apg_msgid_uniq_new(b->br_ip4, uniq);
    apg_err_t e = APG_OK;
    for (size_t i = 0; !e && i < tm->tm_nprops; i++) {
        const char *k = tm->tm_props[2 * i], *v = tm->tm_props[2 * i + 1];
        if (!apg_props_pair_ok(k, strlen(k), v, strlen(v)) ||
            apg_props_name_reserved(k, strlen(k))) {
            snprintf(remark, n,
                     "property %s: names and values must be non-empty, without \\x01 or \\x02, "
                     "and not a reserved name (TAGS, KEYS, ...)",
                     k);
            apg_buf_free(&props);
            return APG_RESP_MESSAGE_ILLEGAL;
        }
        e = apg_props_append(&props, k, v);
    }
    const char *fixed[3][2] = {{"TAGS", tm->tm_tags}, {"KEYS", tm->tm_keys}, {"UNIQ_KEY", uniq}};
    for (int i = 0; !e && i < 3; i++) {
        const char *v = fixed[i][1];
        if (!v || !v[0])
            continue;
        if (!apg_props_pair_ok(fixed[i][0], strlen(fixed[i][0]), v, strlen(v))) {
            snprintf(remark, n, "%s must not hold \\x01 or \\x02", fixed[i][0]);
            apg_buf_free(&props);
            return APG_RESP_MESSAGE_ILLEGAL;
        }
        e = apg_props_append(&props, fixed[i][0], v);
    }
    if (!e)
        e = apg_props_append(&props, "WAIT", "true");
    if (e || props.b_len > 32767) {
        snprintf(remark, n, "the properties take more than 32767 bytes");
        apg_buf_free(&props);
        return APG_RESP_MESSAGE_ILLEGAL;
    }
    struct apg_msg_in m;
    memset(&m, 0, sizeof(m));
    m.mi_topic = tm->tm_topic;
    m.mi_topic_len = strlen(tm->tm_topic);
    m.mi_queue_id = apg_broker_put_queue(b, &tc, tm->tm_qid);
    m.mi_born_ts = apg_wall_ms();
    m.mi_born_host = b->br_store_host;
    m.mi_body = tm->tm_body;
    m.mi_body_len = tm->tm_body_len;
    m.mi_props = (const char *)props.b_data;
    m.mi_props_len = props.b_len;
    m.mi_tags_code = tm->tm_tags && tm->tm_tags[0]
                         ? (int64_t)apg_java_hash(tm->tm_tags, strlen(tm->tm_tags))
                         : 0;
    code = put_one(b, &m, w, res, remark, n);
    apg_buf_free(&props);
    return code;
}

int32_t apg_broker_msg_resend_dlq(struct apg_broker *b, const char *group, int64_t phys,
                                  struct apg_put_wait *w, struct apg_put_result *res,
                                  char *topic_out, size_t topic_cap, char *remark, size_t n)
{
    if (w)
        w->pw_pending = false;
    struct apg_buf rec_buf = APG_BUF_INIT;
    struct apg_msgrec rec;
    char dlq[APG_NAME_CAP + 8];
    snprintf(dlq, sizeof(dlq), "%s%s", APG_DLQ_PREFIX, group);
    int32_t code = APG_RESP_SUCCESS;
    if (apg_store_read_at(b->br_store, phys, &rec_buf) != APG_OK ||
        apg_msgrec_decode(rec_buf.b_data, rec_buf.b_len, false, &rec, NULL) != APG_MSGREC_OK) {
        snprintf(remark, n, "no message at commit log offset %lld", (long long)phys);
        code = APG_RESP_QUERY_NOT_FOUND;
        goto out;
    }
    if (rec.mr_topic_len != strlen(dlq) || memcmp(rec.mr_topic, dlq, rec.mr_topic_len) != 0) {
        snprintf(remark, n, "the message at commit log offset %lld is not in %s", (long long)phys,
                 dlq);
        code = APG_RESP_INVALID_PARAMETER;
        goto out;
    }
    size_t vl, tl;
    const char *rt = apg_props_find(rec.mr_props, rec.mr_props_len, "RETRY_TOPIC", &vl);
    if (!rt || vl >= topic_cap || vl >= APG_NAME_CAP) {
        snprintf(remark, n, "the message carries no RETRY_TOPIC naming where it came from");
        code = APG_RESP_INVALID_PARAMETER;
        goto out;
    }
    snprintf(topic_out, topic_cap, "%.*s", (int)vl, rt);
    struct apg_topic_cfg tc;
    code = writable_topic(b, topic_out, &tc, remark, n);
    if (code != APG_RESP_SUCCESS)
        goto out;
    const char *tags = apg_props_find(rec.mr_props, rec.mr_props_len, "TAGS", &tl);
    struct apg_msg_in m;
    memset(&m, 0, sizeof(m));
    m.mi_topic = topic_out;
    m.mi_topic_len = strlen(topic_out);
    m.mi_queue_id = apg_broker_put_queue(b, &tc, -1);
    m.mi_flag = rec.mr_flag;
    m.mi_sysflag = rec.mr_sysflag & ~(APG_SYSFLAG_BORNHOST_V6 | APG_SYSFLAG_STOREHOST_V6);
    m.mi_born_ts = rec.mr_born_ts;
    m.mi_born_host = rec.mr_born_host;
    m.mi_body = rec.mr_body;
    m.mi_body_len = rec.mr_body_len;
    m.mi_props = rec.mr_props;
    m.mi_props_len = rec.mr_props_len;
    m.mi_tags_code = tags && tl ? (int64_t)apg_java_hash(tags, tl) : 0;
    code = put_one(b, &m, w, res, remark, n);
    if (code == APG_RESP_SUCCESS)
        apg_log_info("broker", "message at %lld of %s resent to %s", (long long)phys, dlq,
                     topic_out);
out:
    apg_buf_free(&rec_buf);
    return code;
}

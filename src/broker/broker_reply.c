/* Replies and refusals every processor shares: the plain reply, the send
 * reply (msgId, queueId, queueOffset), the store's refusal mapped to
 * RocketMQ's response codes, and the checks that refuse a request with a
 * remark naming the fix (broker not writable, unknown consumer group).
 *
 * Every refusal goes through apg_broker_refusal_note: a counter per cause
 * (shown by GET_BROKER_RUNTIME_INFO) and a WARN line naming the request, its
 * topic or group, the peer, the code and the remark, rate-limited to one
 * line per cause per second with the count of the lines left out, so that
 * thousands of refusals a second (a full disk) show in the log without
 * flooding it.
 *
 * This file is a leaf of the broker: it calls the connection layer and the
 * config tables, never a processor, the write service or the broker's
 * start/stop code, so every other broker file may use it.
 *
 * Threads: every function runs on the connection's loop thread, except
 * apg_broker_refusal_note (any thread; the counters are atomic). */
#include <stdio.h>
#include <string.h>

#include "broker/broker_rt.h"

void apg_broker_reply(struct apg_conn *c, const struct apg_rcmd *req, int32_t code,
                      const char *remark)
{
    if (!apg_rcmd_is_oneway(req))
        apg_conn_reply(c, req, code, remark, NULL, 0);
}

void apg_broker_reply_send(struct apg_conn *c, int32_t opaque, uint8_t ser, int32_t code,
                           const char *remark, const char *msgid, int32_t qid, int64_t qoff,
                           const char *uniq)
{
    struct apg_rcmd req = {0};
    req.opaque = opaque;
    req.serialize = ser;
    struct apg_rcmd resp;
    apg_rcmd_init_response(&resp, &req, code, remark);
    char q[24], o[24];
    /* The outcomes of a stored message (RocketMQ's sendOK): the put's fields. */
    if (code == APG_RESP_SUCCESS || code == APG_RESP_FLUSH_DISK_TIMEOUT ||
        code == APG_RESP_FLUSH_SLAVE_TIMEOUT || code == APG_RESP_SLAVE_NOT_AVAILABLE) {
        apg_rcmd_ext_add(&resp, "msgId", msgid);
        apg_rcmd_ext_add(&resp, "queueId", apg_fmt_i64(q, qid));
        apg_rcmd_ext_add(&resp, "queueOffset", apg_fmt_i64(o, qoff));
        if (uniq && uniq[0])
            apg_rcmd_ext_add(&resp, "transactionId", uniq);
        apg_rcmd_ext_add(&resp, "MSG_REGION", "DefaultRegion");
        apg_rcmd_ext_add(&resp, "TRACE_ON", "true");
    }
    apg_conn_send(c, &resp, NULL, 0);
}

static const char *const refusal_keys[APG_REFUSAL_N] = {
    [APG_REFUSAL_NO_PERMISSION] = "refusedNoPermission",
    [APG_REFUSAL_TOPIC_NOT_EXIST] = "refusedTopicNotExist",
    [APG_REFUSAL_GROUP_NOT_EXIST] = "refusedGroupNotExist",
    [APG_REFUSAL_MESSAGE_ILLEGAL] = "refusedMessageIllegal",
    [APG_REFUSAL_INVALID_PARAMETER] = "refusedInvalidParameter",
    [APG_REFUSAL_BAD_SUBSCRIPTION] = "refusedSubscriptionParseFailed",
    [APG_REFUSAL_DISK_FULL] = "refusedDiskFull",
    [APG_REFUSAL_STORE_UNAVAILABLE] = "refusedStoreUnavailable",
    [APG_REFUSAL_SYSTEM_BUSY] = "refusedSystemBusy",
    [APG_REFUSAL_FLUSH_TIMEOUT] = "refusedFlushDiskTimeout",
    [APG_REFUSAL_SLAVE] = "refusedSlaveNotInSync",
    [APG_REFUSAL_NOT_SUPPORTED] = "refusedRequestCodeNotSupported",
    [APG_REFUSAL_SYSTEM_ERROR] = "refusedSystemError",
};

const char *apg_broker_refusal_key(enum apg_refusal r)
{
    return r < APG_REFUSAL_N ? refusal_keys[r] : "refusedUnknown";
}

void apg_broker_refusal_note(struct apg_broker *b, enum apg_refusal r, const char *what,
                             const char *subject, const char *peer, int32_t code,
                             const char *remark)
{
    int64_t quiet;
    if (r >= APG_REFUSAL_N || !apg_log_limit_hit(&b->br_refused[r], apg_mono_ms(), 1000, &quiet))
        return;
    const char *cname = apg_resp_code_name(code);
    char more[96] = "";
    if (quiet > 0)
        snprintf(more, sizeof(more), " (%lld more %s since the last line)", (long long)quiet,
                 refusal_keys[r]);
    apg_log_warn("broker", "refused %s%s%s%s%s: %s (%d): %s [%s %lld]%s", what ? what : "request",
                 subject && subject[0] ? " " : "", subject ? subject : "", peer ? " from " : "",
                 peer ? peer : "", cname ? cname : "?", code, remark ? remark : "", refusal_keys[r],
                 (long long)atomic_load(&b->br_refused[r].ll_count), more);
}

static enum apg_refusal code_refusal(int32_t code)
{
    switch (code) {
    case APG_RESP_NO_PERMISSION:
        return APG_REFUSAL_NO_PERMISSION;
    case APG_RESP_TOPIC_NOT_EXIST:
        return APG_REFUSAL_TOPIC_NOT_EXIST;
    case APG_RESP_SUBSCRIPTION_GROUP_NOT_EXIST:
        return APG_REFUSAL_GROUP_NOT_EXIST;
    case APG_RESP_MESSAGE_ILLEGAL:
        return APG_REFUSAL_MESSAGE_ILLEGAL;
    case APG_RESP_INVALID_PARAMETER:
        return APG_REFUSAL_INVALID_PARAMETER;
    case APG_RESP_SUBSCRIPTION_PARSE_FAILED:
        return APG_REFUSAL_BAD_SUBSCRIPTION;
    case APG_RESP_SERVICE_NOT_AVAILABLE:
        return APG_REFUSAL_STORE_UNAVAILABLE;
    case APG_RESP_SYSTEM_BUSY:
        return APG_REFUSAL_SYSTEM_BUSY;
    case APG_RESP_FLUSH_DISK_TIMEOUT:
        return APG_REFUSAL_FLUSH_TIMEOUT;
    case APG_RESP_SLAVE_NOT_AVAILABLE:
    case APG_RESP_FLUSH_SLAVE_TIMEOUT:
        return APG_REFUSAL_SLAVE;
    case APG_RESP_REQUEST_CODE_NOT_SUPPORTED:
        return APG_REFUSAL_NOT_SUPPORTED;
    default:
        return APG_REFUSAL_SYSTEM_ERROR;
    }
}

/* The topic or group a request is about, from its header: sends name the
 * topic "topic" (or "b" in SEND_MESSAGE_V2), pulls and admin requests
 * "topic", "consumerGroup", "groupName" or "group". */
static const char *req_subject(const struct apg_rcmd *req)
{
    static const char *const keys[] = {"topic", "consumerGroup", "groupName", "group"};
    const char *v;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if ((v = apg_rcmd_ext_get(req, keys[i])) && v[0])
            return v;
    if ((req->code == APG_REQ_SEND_MESSAGE_V2 || req->code == APG_REQ_SEND_BATCH_MESSAGE) &&
        (v = apg_rcmd_ext_get(req, "b")))
        return v;
    return NULL;
}

void apg_broker_refuse(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req,
                       int32_t code, const char *remark)
{
    char what[48];
    const char *name = apg_req_code_name(req->code);
    if (name)
        snprintf(what, sizeof(what), "%s", name);
    else
        snprintf(what, sizeof(what), "request %d", req->code);
    apg_broker_refusal_note(b, code_refusal(code), what, req_subject(req), apg_conn_peer(c), code,
                            remark);
    apg_broker_reply(c, req, code, remark);
}

static int32_t store_err_code(apg_err_t e, enum apg_refusal *r)
{
    switch (e) {
    case APG_EINVAL:
    case APG_ETOOBIG:
        *r = APG_REFUSAL_MESSAGE_ILLEGAL;
        return APG_RESP_MESSAGE_ILLEGAL;
    case APG_EDISKFULL:
        *r = APG_REFUSAL_DISK_FULL;
        return APG_RESP_SERVICE_NOT_AVAILABLE;
    case APG_EFSYNC:
    case APG_ECLOSED:
    case APG_ESHUTDOWN:
        *r = APG_REFUSAL_STORE_UNAVAILABLE;
        return APG_RESP_SERVICE_NOT_AVAILABLE;
    case APG_EBUSY:
        *r = APG_REFUSAL_SYSTEM_BUSY;
        return APG_RESP_SYSTEM_BUSY;
    default:
        *r = APG_REFUSAL_SYSTEM_ERROR;
        return APG_RESP_SYSTEM_ERROR;
    }
}

void apg_broker_reply_refused(struct apg_broker *b, struct apg_conn *c, int32_t opaque, uint8_t ser,
                              bool oneway, const char *topic, size_t topic_len, apg_err_t e,
                              const char *err)
{
    char name[APG_TOPIC_MAX_LEN_RETRY + 1]; /* the topic is not NUL-terminated in the request */
    apg_text_copy(name, sizeof(name), topic, topic_len);
    char remark[1024];
    if (e == APG_EDISKFULL)
        /* What the operator and the client can do, whichever check refused. */
        snprintf(remark, sizeof(remark),
                 "service not available: the broker's disk is full: %s. Free space on that disk "
                 "(the broker takes writes again by itself, no restart); meanwhile send to "
                 "another broker",
                 err[0] ? err : apg_strerror(e));
    else
        snprintf(remark, sizeof(remark), "the store refused the message: %s",
                 err[0] ? err : apg_strerror(e));
    enum apg_refusal r;
    int32_t code = store_err_code(e, &r);
    atomic_fetch_add_explicit(&b->br_put_failed, 1, memory_order_relaxed);
    apg_broker_refusal_note(b, r, "send to", name, apg_conn_peer(c), code, remark);
    if (!oneway)
        apg_broker_reply_send(c, opaque, ser, code, remark, NULL, 0, 0, NULL);
}

bool apg_broker_refuse_unwritable(struct apg_broker *b, struct apg_conn *c,
                                  const struct apg_rcmd *req)
{
    if (b->br_perm & APG_PERM_WRITE)
        return false;
    char remark[256];
    snprintf(remark, sizeof(remark),
             "the broker %s is not writable (brokerPermission=%d); set brokerPermission=6",
             b->br_addr, b->br_perm);
    apg_broker_refuse(b, c, req, APG_RESP_NO_PERMISSION, remark);
    return true;
}

bool apg_broker_group_or_refuse(struct apg_broker *b, struct apg_conn *c,
                                const struct apg_rcmd *req, const char *group,
                                struct apg_group_cfg *gc)
{
    if (apg_name_check_group(group, NULL, 0) == APG_OK &&
        apg_groups_get_or_create(b->br_groups, group, b->br_auto_create_group, gc) == APG_OK)
        return true;
    char remark[768];
    snprintf(remark, sizeof(remark),
             "subscription group %s does not exist; create it (mqadmin updateSubGroup -g %s) or "
             "enable autoCreateSubscriptionGroup",
             group, group);
    apg_broker_refuse(b, c, req, APG_RESP_SUBSCRIPTION_GROUP_NOT_EXIST, remark);
    return false;
}

bool apg_broker_topic_readable_or_refuse(struct apg_broker *b, struct apg_conn *c,
                                         const struct apg_rcmd *req, const char *topic,
                                         struct apg_topic_cfg *tc)
{
    char remark[512];
    if (!(b->br_perm & APG_PERM_READ)) {
        snprintf(remark, sizeof(remark), "the broker %s is not readable (brokerPermission=%d)",
                 b->br_addr, b->br_perm);
        apg_broker_refuse(b, c, req, APG_RESP_NO_PERMISSION, remark);
        return false;
    }
    if (!apg_topics_get(b->br_topics, topic, tc)) {
        snprintf(remark, sizeof(remark),
                 "topic %s does not exist on broker %s; create it or check the name", topic,
                 b->br_addr);
        apg_broker_refuse(b, c, req, APG_RESP_TOPIC_NOT_EXIST, remark);
        return false;
    }
    if (!(tc->tc_perm & APG_PERM_READ)) {
        snprintf(remark, sizeof(remark), "topic %s is not readable (perm %d)", topic, tc->tc_perm);
        apg_broker_refuse(b, c, req, APG_RESP_NO_PERMISSION, remark);
        return false;
    }
    return true;
}

bool apg_broker_group_consumable_or_refuse(struct apg_broker *b, struct apg_conn *c,
                                           const struct apg_rcmd *req, const char *group)
{
    struct apg_group_cfg gc;
    if (!apg_broker_group_or_refuse(b, c, req, group, &gc))
        return false;
    if (!gc.gc_consume_enable) {
        char remark[300];
        snprintf(remark, sizeof(remark), "consumer group %s is disabled (consumeEnable=false)",
                 group);
        apg_broker_refuse(b, c, req, APG_RESP_NO_PERMISSION, remark);
        return false;
    }
    return true;
}

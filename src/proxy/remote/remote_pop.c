/* ReceiveMessage, AckMessage, ChangeInvisibleDuration and
 * ForwardMessageToDeadLetterQueue of the proxy, forwarded as POP_MESSAGE
 * (200050), ACK_MESSAGE (200051), CHANGE_MESSAGE_INVISIBLETIME (200053), and
 * CONSUMER_SEND_MSG_BACK (36) with delayLevel -1 followed by ACK_MESSAGE, to
 * the brokers (docs/wire.md §16).
 *
 * Design. A ReceiveMessage goes to the broker its message queue names (the
 * assignment of QueryAssignment is one queue, id -1, per broker), else to
 * the readable brokers of the route in turn; the pop asks for any queue
 * (queueId -1) and carries the long poll: pollTime = the request's
 * long_polling_timeout, bornTime = now, the remoting timeout past both.
 * The broker's answer (records as a pull's, popTime, invisibleTime,
 * startOffsetInfo) is turned into the stream's frames by the same code
 * as the in-broker port (apg_grpc_consume_frames), whose receipt handle is
 * the pop extraInfo text naming the broker. An ack or a change of
 * invisible time parses that handle and goes to the broker it names (its
 * master address from any route the proxy has seen), with the handle as
 * extraInfo and its queueId and queueOffset; a handle for a broker that no
 * route names, or that does not answer, gets a status saying which.
 *
 * Threads: the methods on the gRPC loop thread; the answers on the
 * remoting client's loop thread, posted to the call's loop. */
#include <stdio.h>
#include <string.h>

#include "broker/pop/pop.h"
#include "common/clock.h"
#include "common/mem.h"
#include "protocol/message.h"
#include "protocol/rcode.h"
#include "protocol/remoting.h"
#include "proto/messaging.pb-c.h"
#include "proxy/grpc/consume.h"
#include "proxy/remote/remote_int.h"

#define CODE(x) APACHE__ROCKETMQ__V2__CODE__##x
#define PERM_READ 4
#define DEFAULT_INVISIBLE_MS 30000
#define MAX_POLL_MS 60000

typedef Apache__Rocketmq__V2__Status pb_status;

/* ---- ReceiveMessage ---- */

struct rrecv {
    struct apg_remote *rv_rm;
    struct apg_grpc_ref rv_ref;
    char rv_group[256], rv_topic[256], rv_broker[128];
    char rv_etype[8];
    char *rv_expr;
    int32_t rv_max;
    int64_t rv_invisible, rv_poll;
};

static void recv_free(struct rrecv *rv)
{
    apg_free(rv->rv_expr);
    apg_free(rv);
}

/* Ends the stream with one status frame. */
static void recv_status(struct rrecv *rv, Apache__Rocketmq__V2__Code code, const char *why)
{
    struct apg_buf out = APG_BUF_INIT;
    if (apg_grpc_consume_status_frame(&out, code, why))
        apg_remote_fail(&rv->rv_ref, APG_GRPC_RESOURCE_EXHAUSTED, "out of memory");
    else
        apg_remote_frames(&rv->rv_ref, &out);
    apg_buf_free(&out);
    recv_free(rv);
}

/* Fills res from a POP_MESSAGE answer; false when its records do not
 * parse. */
static bool pop_result(const struct apg_rcmd *resp, struct apg_pop_result *res)
{
    memset(res, 0, sizeof(*res));
    for (int i = 0; i < 256; i++)
        res->pr_start[i] = -1;
    apg_rcmd_ext_i64(resp, "popTime", &res->pr_stamp);
    apg_rcmd_ext_i64(resp, "invisibleTime", &res->pr_invisible);
    /* startOffsetInfo: "mark queueId startOffset" per queue, ';' between. */
    const char *so = apg_rcmd_ext_get(resp, "startOffsetInfo");
    while (so && *so) {
        char mark;
        int q;
        long long start;
        if (sscanf(so, "%c %d %lld", &mark, &q, &start) == 3 && q >= 0 && q < 256)
            res->pr_start[q] = start;
        so = strchr(so, ';');
        so = so ? so + 1 : NULL;
    }
    size_t off = 0;
    while (off < resp->body_len && res->pr_n < APG_POP_MAX_BATCH) {
        struct apg_msgrec r;
        if (apg_msgrec_decode(resp->body + off, resp->body_len - off, false, &r, NULL) !=
                APG_MSGREC_OK ||
            r.mr_total_size == 0 || r.mr_total_size > resp->body_len - off)
            return false;
        struct apg_pop_msg *pm = &res->pr_msgs[res->pr_n++];
        pm->pm_queue = r.mr_queue_id;
        pm->pm_offset = r.mr_queue_offset;
        pm->pm_phys = r.mr_phys_offset;
        pm->pm_attempts = r.mr_reconsume_times + 1;
        pm->pm_rec_off = off;
        pm->pm_rec_len = r.mr_total_size;
        if (pm->pm_queue >= 0 && pm->pm_queue < 256 && res->pr_start[pm->pm_queue] < 0)
            res->pr_start[pm->pm_queue] = pm->pm_offset;
        off += r.mr_total_size;
    }
    return true;
}

static void recv_popped(void *ud, const struct apg_rcmd *resp, apg_err_t err)
{
    struct rrecv *rv = ud;
    char why[400];
    if (err) {
        snprintf(why, sizeof why, "broker %s did not answer the pop: %s", rv->rv_broker,
                 apg_strerror(err));
        recv_status(rv, err == APG_ETIMEDOUT ? CODE(PROXY_TIMEOUT) : CODE(INTERNAL_SERVER_ERROR),
                    why);
        return;
    }
    if (resp->code == APG_RESP_POLLING_TIMEOUT || resp->code == APG_RESP_PULL_NOT_FOUND ||
        resp->code == APG_RESP_NO_MESSAGE) {
        recv_status(rv, CODE(MESSAGE_NOT_FOUND), "no new message");
        return;
    }
    if (resp->code != APG_RESP_SUCCESS) {
        snprintf(why, sizeof why, "broker %s: %s", rv->rv_broker,
                 apg_remote_remark(resp, "pop refused"));
        recv_status(rv,
                    resp->code == APG_RESP_TOPIC_NOT_EXIST ? CODE(TOPIC_NOT_FOUND)
                    : resp->code == APG_RESP_SUBSCRIPTION_GROUP_NOT_EXIST
                        ? CODE(CONSUMER_GROUP_NOT_FOUND)
                    : resp->code == APG_RESP_NO_PERMISSION ? CODE(FORBIDDEN)
                                                           : CODE(INTERNAL_SERVER_ERROR),
                    why);
        return;
    }
    struct apg_pop_result *res = apg_malloc(sizeof(*res));
    struct apg_buf out = APG_BUF_INIT;
    if (!res) {
        recv_status(rv, CODE(INTERNAL_SERVER_ERROR), "out of memory");
        return;
    }
    if (!pop_result(resp, res)) {
        snprintf(why, sizeof why, "broker %s answered records that do not parse", rv->rv_broker);
        apg_free(res);
        recv_status(rv, CODE(INTERNAL_SERVER_ERROR), why);
        return;
    }
    if (res->pr_n == 0) {
        apg_free(res);
        recv_status(rv, CODE(MESSAGE_NOT_FOUND), "no new message");
        return;
    }
    apg_err_t e = apg_grpc_consume_frames(rv->rv_broker, res, resp->body, &out);
    apg_free(res);
    if (e) {
        apg_buf_free(&out);
        recv_status(rv, CODE(INTERNAL_SERVER_ERROR), "out of memory");
        return;
    }
    apg_remote_frames(&rv->rv_ref, &out);
    recv_free(rv);
}

static void recv_routed(struct apg_remote *rm, struct apg_remote_route *rt, apg_err_t code,
                        const char *why, void *arg)
{
    struct rrecv *rv = arg;
    if (code) {
        recv_status(rv, code == APG_ENOTFOUND ? CODE(TOPIC_NOT_FOUND) : CODE(INTERNAL_SERVER_ERROR),
                    why);
        return;
    }
    /* The broker the queue names when the route has it, else the next
     * readable one. */
    const char *addr = rv->rv_broker[0] ? apg_remote_route_master(rt, rv->rv_broker) : NULL;
    if (!addr) {
        size_t n = rt->rr_rd.rd_nqds, start = atomic_fetch_add(&rm->rm_rr, 1);
        for (size_t k = 0; k < n && !addr; k++) {
            const struct apg_route_qd *qd = &rt->rr_rd.rd_qds[(start + k) % n];
            if ((qd->qd_perm & PERM_READ) && qd->qd_read > 0 &&
                (addr = apg_remote_route_master(rt, qd->qd_broker)))
                snprintf(rv->rv_broker, sizeof rv->rv_broker, "%s", qd->qd_broker);
        }
    }
    if (!addr) {
        char w[400];
        snprintf(w, sizeof w, "topic %s has no readable queue on a broker with a master",
                 rv->rv_topic);
        apg_remote_route_release(rt);
        recv_status(rv, CODE(FORBIDDEN), w);
        return;
    }
    char a[128], mx[16], inv[24], poll[24], born[24];
    snprintf(a, sizeof a, "%s", addr);
    apg_remote_route_release(rt);
    snprintf(mx, sizeof mx, "%d", rv->rv_max);
    snprintf(inv, sizeof inv, "%lld", (long long)rv->rv_invisible);
    snprintf(poll, sizeof poll, "%lld", (long long)rv->rv_poll);
    snprintf(born, sizeof born, "%lld", (long long)apg_wall_ms());
    struct apg_rcmd req;
    apg_remote_request(&req, APG_REQ_POP_MESSAGE);
    apg_rcmd_ext_add(&req, "consumerGroup", rv->rv_group);
    apg_rcmd_ext_add(&req, "topic", rv->rv_topic);
    apg_rcmd_ext_add(&req, "queueId", "-1");
    apg_rcmd_ext_add(&req, "maxMsgNums", mx);
    apg_rcmd_ext_add(&req, "invisibleTime", inv);
    apg_rcmd_ext_add(&req, "pollTime", poll);
    apg_rcmd_ext_add(&req, "bornTime", born);
    apg_rcmd_ext_add(&req, "initMode", "1"); /* a new group starts where the in-broker port does */
    apg_rcmd_ext_add(&req, "expType", rv->rv_etype);
    apg_rcmd_ext_add(&req, "exp", rv->rv_expr);
    apg_rcmd_ext_add(&req, "order", "false");
    apg_err_t e = apg_remote_call(rm, a, &req, NULL, 0,
                                  (uint32_t)(rv->rv_poll + APG_REMOTE_TIMEOUT_MS), recv_popped, rv);
    if (e)
        recv_popped(rv, NULL, e);
}

void apg_remote_receive(struct apg_grpc_call *call, const uint8_t *req, size_t len, void *ud)
{
    const struct apg_grpc_messaging *ms = ud;
    Apache__Rocketmq__V2__ReceiveMessageRequest *rq =
        apache__rocketmq__v2__receive_message_request__unpack(NULL, len, req);
    if (!rq) {
        apg_grpc_call_fail(call, APG_GRPC_INVALID_ARGUMENT, "malformed ReceiveMessageRequest");
        return;
    }
    struct rrecv *rv = apg_calloc(1, sizeof(*rv));
    if (!rv) {
        apg_grpc_call_fail(call, APG_GRPC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    rv->rv_rm = ms->gm_remote;
    apg_grpc_call_ref(call, &rv->rv_ref);
    const char *group = apg_grpc_res_name(rq->group);
    const char *topic = rq->message_queue ? apg_grpc_res_name(rq->message_queue->topic) : NULL;
    const char *expr = rq->filter_expression && rq->filter_expression->expression &&
                               rq->filter_expression->expression[0]
                           ? rq->filter_expression->expression
                           : "*";
    bool sql = rq->filter_expression &&
               rq->filter_expression->type == APACHE__ROCKETMQ__V2__FILTER_TYPE__SQL;
    if (!group || !topic || strlen(group) >= sizeof rv->rv_group ||
        strlen(topic) >= sizeof rv->rv_topic) {
        recv_status(rv, CODE(BAD_REQUEST), "group and message_queue.topic are required");
        goto out;
    }
    if (!(rv->rv_expr = apg_strdup(expr))) {
        recv_status(rv, CODE(INTERNAL_SERVER_ERROR), "out of memory");
        goto out;
    }
    snprintf(rv->rv_group, sizeof rv->rv_group, "%s", group);
    snprintf(rv->rv_topic, sizeof rv->rv_topic, "%s", topic);
    snprintf(rv->rv_etype, sizeof rv->rv_etype, "%s", sql ? "SQL92" : "TAG");
    const char *bn = rq->message_queue->broker ? rq->message_queue->broker->name : NULL;
    if (bn && strlen(bn) < sizeof rv->rv_broker)
        snprintf(rv->rv_broker, sizeof rv->rv_broker, "%s", bn);
    rv->rv_max = rq->batch_size > 0 && rq->batch_size <= APG_POP_MAX_BATCH ? rq->batch_size
                                                                           : APG_POP_MAX_BATCH;
    rv->rv_invisible =
        apg_grpc_clamp_invisible(apg_grpc_dur_ms(rq->invisible_duration, DEFAULT_INVISIBLE_MS));
    rv->rv_poll = apg_grpc_dur_ms(rq->long_polling_timeout, 0);
    if (rv->rv_poll < 0)
        rv->rv_poll = 0;
    if (rv->rv_poll > MAX_POLL_MS)
        rv->rv_poll = MAX_POLL_MS;
    apg_remote_route_get(rv->rv_rm, rv->rv_topic, recv_routed, rv);
out:
    apache__rocketmq__v2__receive_message_request__free_unpacked(rq, NULL);
}

/* ---- AckMessage, ChangeInvisibleDuration, ForwardMessageToDeadLetterQueue ---- */

struct racks;

struct rack {
    struct racks *ra_ctx;
    Apache__Rocketmq__V2__AckMessageResultEntry ra_e;
    pb_status ra_st;
    char ra_why[800];
    char *ra_handle; /* ChangeInvisibleDuration: the new handle */
    struct apg_pop_handle ra_h;
    char ra_addr[128];
    /* Borrowed from the request (kept in the racks): what the ack after a
     * DLQ forward needs. */
    const char *ra_group, *ra_topic, *ra_rh;
};

struct racks {
    struct apg_remote *rk_rm;
    struct apg_grpc_ref rk_ref;
    Apache__Rocketmq__V2__AckMessageRequest *rk_ack;
    Apache__Rocketmq__V2__ChangeInvisibleDurationRequest *rk_change;
    Apache__Rocketmq__V2__ForwardMessageToDeadLetterQueueRequest *rk_dlq;
    size_t rk_n;
    struct rack *rk_v;
    atomic_int rk_left;
};

static void racks_free(struct racks *rk)
{
    for (size_t i = 0; i < rk->rk_n; i++)
        apg_free(rk->rk_v[i].ra_handle);
    apg_free(rk->rk_v);
    if (rk->rk_ack)
        apache__rocketmq__v2__ack_message_request__free_unpacked(rk->rk_ack, NULL);
    if (rk->rk_change)
        apache__rocketmq__v2__change_invisible_duration_request__free_unpacked(rk->rk_change, NULL);
    if (rk->rk_dlq)
        apache__rocketmq__v2__forward_message_to_dead_letter_queue_request__free_unpacked(
            rk->rk_dlq, NULL);
    apg_free(rk);
}

static void racks_release(struct racks *rk)
{
    if (atomic_fetch_sub(&rk->rk_left, 1) != 1)
        return;
    pb_status top;
    if (rk->rk_dlq) {
        Apache__Rocketmq__V2__ForwardMessageToDeadLetterQueueResponse resp =
            APACHE__ROCKETMQ__V2__FORWARD_MESSAGE_TO_DEAD_LETTER_QUEUE_RESPONSE__INIT;
        resp.status = &rk->rk_v[0].ra_st;
        apg_remote_reply(&rk->rk_ref, &resp.base);
        racks_free(rk);
        return;
    }
    if (rk->rk_change) {
        Apache__Rocketmq__V2__ChangeInvisibleDurationResponse resp =
            APACHE__ROCKETMQ__V2__CHANGE_INVISIBLE_DURATION_RESPONSE__INIT;
        resp.status = &rk->rk_v[0].ra_st;
        resp.receipt_handle = rk->rk_v[0].ra_handle;
        apg_remote_reply(&rk->rk_ref, &resp.base);
        racks_free(rk);
        return;
    }
    Apache__Rocketmq__V2__AckMessageResponse resp =
        APACHE__ROCKETMQ__V2__ACK_MESSAGE_RESPONSE__INIT;
    Apache__Rocketmq__V2__AckMessageResultEntry **ep = apg_calloc(rk->rk_n + 1, sizeof(*ep));
    if (!ep) {
        apg_remote_fail(&rk->rk_ref, APG_GRPC_RESOURCE_EXHAUSTED, "out of memory");
        racks_free(rk);
        return;
    }
    size_t ok = 0;
    for (size_t i = 0; i < rk->rk_n; i++) {
        ep[i] = &rk->rk_v[i].ra_e;
        ok += rk->rk_v[i].ra_st.code == CODE(OK);
    }
    if (ok == rk->rk_n)
        apg_grpc_status_set(&top, CODE(OK), "OK");
    else if (rk->rk_n == 1)
        top = rk->rk_v[0].ra_st;
    else
        apg_grpc_status_set(&top, CODE(MULTIPLE_RESULTS), "see the entries");
    resp.status = &top;
    resp.n_entries = rk->rk_n;
    resp.entries = ep;
    apg_remote_reply(&rk->rk_ref, &resp.base);
    apg_free(ep);
    racks_free(rk);
}

static void rack_status(struct rack *a, Apache__Rocketmq__V2__Code code, const char *why)
{
    snprintf(a->ra_why, sizeof a->ra_why, "%s", why);
    apg_grpc_status_set(&a->ra_st, code, a->ra_why);
}

static void rack_done(void *ud, const struct apg_rcmd *resp, apg_err_t err)
{
    struct rack *a = ud;
    bool change = a->ra_ctx->rk_change != NULL;
    char why[800];
    if (err) {
        snprintf(why, sizeof why,
                 "broker %s (%s) named by the receipt handle cannot be reached: %s; the message "
                 "is delivered again once that broker is back and its invisible time ran out",
                 a->ra_h.ph_broker, a->ra_addr, apg_strerror(err));
        rack_status(a, err == APG_ETIMEDOUT ? CODE(PROXY_TIMEOUT) : CODE(INTERNAL_SERVER_ERROR),
                    why);
    } else if (resp->code == APG_RESP_SUCCESS) {
        apg_grpc_status_set(&a->ra_st, CODE(OK), "OK");
        if (change) {
            int64_t pt = a->ra_h.ph_stamp, it = a->ra_h.ph_invisible;
            apg_rcmd_ext_i64(resp, "popTime", &pt);
            apg_rcmd_ext_i64(resp, "invisibleTime", &it);
            a->ra_h.ph_stamp = pt;
            a->ra_h.ph_invisible = it;
            char h[640];
            if (apg_pop_handle_encode(&a->ra_h, h, sizeof h))
                a->ra_handle = apg_strdup(h);
        }
    } else if (resp->code == APG_RESP_NO_MESSAGE) {
        rack_status(a, CODE(INVALID_RECEIPT_HANDLE),
                    "receipt handle is expired: the message was acknowledged, its invisible time "
                    "ran out, or it was delivered again");
    } else {
        snprintf(why, sizeof why, "broker %s: %s", a->ra_h.ph_broker,
                 apg_remote_remark(resp, "refused"));
        rack_status(a, CODE(INTERNAL_SERVER_ERROR), why);
    }
    racks_release(a->ra_ctx);
}

/* Sends the ack or change of a (any thread); rack_done answers. */
static void rack_send(struct rack *a, int64_t invisible)
{
    struct racks *rk = a->ra_ctx;
    char qs[16], os[24], is[24];
    snprintf(qs, sizeof qs, "%d", a->ra_h.ph_queue);
    snprintf(os, sizeof os, "%lld", (long long)a->ra_h.ph_offset);
    snprintf(is, sizeof is, "%lld", (long long)invisible);
    struct apg_rcmd req;
    apg_remote_request(&req,
                       rk->rk_change ? APG_REQ_CHANGE_MESSAGE_INVISIBLETIME : APG_REQ_ACK_MESSAGE);
    apg_rcmd_ext_add(&req, "consumerGroup", a->ra_group);
    apg_rcmd_ext_add(&req, "topic", a->ra_topic);
    apg_rcmd_ext_add(&req, "queueId", qs);
    apg_rcmd_ext_add(&req, "extraInfo", a->ra_rh);
    apg_rcmd_ext_add(&req, "offset", os);
    if (rk->rk_change)
        apg_rcmd_ext_add(&req, "invisibleTime", is);
    apg_err_t e =
        apg_remote_call(rk->rk_rm, a->ra_addr, &req, NULL, 0, APG_REMOTE_TIMEOUT_MS, rack_done, a);
    if (e)
        rack_done(a, NULL, e);
}

/* The broker's answer to a DLQ forward's CONSUMER_SEND_MSG_BACK: the copy
 * is in %DLQ%<group>, so the pop delivery is acked (as RocketMQ's proxy
 * does; the forward's status is the hand-back's, whatever the ack says). */
static void dlq_done(void *ud, const struct apg_rcmd *resp, apg_err_t err)
{
    struct rack *a = ud;
    char why[800];
    if (err) {
        snprintf(why, sizeof why,
                 "broker %s (%s) named by the receipt handle cannot be reached: %s",
                 a->ra_h.ph_broker, a->ra_addr, apg_strerror(err));
        rack_status(a, err == APG_ETIMEDOUT ? CODE(PROXY_TIMEOUT) : CODE(INTERNAL_SERVER_ERROR),
                    why);
    } else if (resp->code != APG_RESP_SUCCESS) {
        snprintf(why, sizeof why, "broker %s: %s", a->ra_h.ph_broker,
                 apg_remote_remark(resp, "CONSUMER_SEND_MSG_BACK refused"));
        rack_status(
            a, resp->code == APG_RESP_NO_PERMISSION ? CODE(FORBIDDEN) : CODE(INTERNAL_SERVER_ERROR),
            why);
    } else {
        rack_send(a, 0); /* rack_done sets the status OK unless the ack fails */
        return;
    }
    racks_release(a->ra_ctx);
}

/* The message of a to %DLQ%<group>: CONSUMER_SEND_MSG_BACK with delayLevel
 * -1 (straight to the DLQ), addressed by the handle's commit-log offset. */
static void dlq_send(struct rack *a)
{
    struct racks *rk = a->ra_ctx;
    const char *mid = rk->rk_dlq->message_id ? rk->rk_dlq->message_id : "";
    char os[24], rt[600];
    snprintf(os, sizeof os, "%lld", (long long)a->ra_h.ph_phys);
    if (a->ra_h.ph_type == '0')
        snprintf(rt, sizeof rt, "%s", a->ra_topic);
    else
        snprintf(rt, sizeof rt, "%%RETRY%%%s", a->ra_group);
    struct apg_rcmd req;
    apg_remote_request(&req, APG_REQ_CONSUMER_SEND_MSG_BACK);
    apg_rcmd_ext_add(&req, "offset", os);
    apg_rcmd_ext_add(&req, "group", a->ra_group);
    apg_rcmd_ext_add(&req, "delayLevel", "-1");
    apg_rcmd_ext_add(&req, "originMsgId", mid);
    apg_rcmd_ext_add(&req, "originTopic", rt);
    apg_rcmd_ext_add(&req, "maxReconsumeTimes", "0");
    apg_err_t e =
        apg_remote_call(rk->rk_rm, a->ra_addr, &req, NULL, 0, APG_REMOTE_TIMEOUT_MS, dlq_done, a);
    if (e)
        dlq_done(a, NULL, e);
}

/* Sends one ack, change or DLQ forward (gRPC loop thread). */
static void rack_start(struct racks *rk, struct rack *a, const char *group, const char *topic,
                       const char *handle, int64_t invisible)
{
    struct apg_remote *rm = rk->rk_rm;
    char why[400];
    if (!handle || apg_pop_handle_decode(handle, strlen(handle), &a->ra_h) ||
        a->ra_h.ph_offset < 0 || (rk->rk_dlq && a->ra_h.ph_phys < 0)) {
        rack_status(a, CODE(INVALID_RECEIPT_HANDLE), "not a receipt handle a broker gave out");
        racks_release(rk);
        return;
    }
    if (!apg_remote_broker_addr(rm, a->ra_h.ph_broker, a->ra_addr, sizeof a->ra_addr)) {
        snprintf(why, sizeof why,
                 "the receipt handle names broker %s, which no route of the NameServer names",
                 a->ra_h.ph_broker);
        rack_status(a, CODE(INVALID_RECEIPT_HANDLE), why);
        racks_release(rk);
        return;
    }
    a->ra_group = group;
    a->ra_topic = topic;
    a->ra_rh = handle;
    if (rk->rk_dlq)
        dlq_send(a);
    else
        rack_send(a, invisible);
}

static struct racks *racks_new(struct apg_grpc_call *call, const struct apg_grpc_messaging *ms,
                               size_t n)
{
    struct racks *rk = apg_calloc(1, sizeof(*rk));
    struct rack *v = rk ? apg_calloc(n ? n : 1, sizeof(*v)) : NULL;
    if (!v) {
        apg_free(rk);
        apg_grpc_call_fail(call, APG_GRPC_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    rk->rk_rm = ms->gm_remote;
    rk->rk_n = n;
    rk->rk_v = v;
    atomic_init(&rk->rk_left, (int)n + 1);
    for (size_t i = 0; i < n; i++) {
        v[i].ra_ctx = rk;
        apache__rocketmq__v2__ack_message_result_entry__init(&v[i].ra_e);
        v[i].ra_e.status = &v[i].ra_st;
    }
    apg_grpc_call_ref(call, &rk->rk_ref);
    return rk;
}

void apg_remote_ack(struct apg_grpc_call *call, const uint8_t *req, size_t len, void *ud)
{
    Apache__Rocketmq__V2__AckMessageRequest *rq =
        apache__rocketmq__v2__ack_message_request__unpack(NULL, len, req);
    if (!rq) {
        apg_grpc_call_fail(call, APG_GRPC_INVALID_ARGUMENT, "malformed AckMessageRequest");
        return;
    }
    const char *group = apg_grpc_res_name(rq->group), *topic = apg_grpc_res_name(rq->topic);
    if (!group || !topic || rq->n_entries == 0) {
        apg_grpc_answer_status(call, &apache__rocketmq__v2__ack_message_response__descriptor,
                               CODE(BAD_REQUEST), "group, topic and entries are required");
        apache__rocketmq__v2__ack_message_request__free_unpacked(rq, NULL);
        return;
    }
    struct racks *rk = racks_new(call, ud, rq->n_entries);
    if (!rk) {
        apache__rocketmq__v2__ack_message_request__free_unpacked(rq, NULL);
        return;
    }
    rk->rk_ack = rq;
    for (size_t i = 0; i < rq->n_entries; i++) {
        struct rack *a = &rk->rk_v[i];
        a->ra_e.message_id = rq->entries[i]->message_id;
        a->ra_e.receipt_handle = rq->entries[i]->receipt_handle;
        rack_start(rk, a, group, topic, rq->entries[i]->receipt_handle, 0);
    }
    racks_release(rk);
}

void apg_remote_change(struct apg_grpc_call *call, const uint8_t *req, size_t len, void *ud)
{
    Apache__Rocketmq__V2__ChangeInvisibleDurationRequest *rq =
        apache__rocketmq__v2__change_invisible_duration_request__unpack(NULL, len, req);
    if (!rq) {
        apg_grpc_call_fail(call, APG_GRPC_INVALID_ARGUMENT,
                           "malformed ChangeInvisibleDurationRequest");
        return;
    }
    const char *group = apg_grpc_res_name(rq->group), *topic = apg_grpc_res_name(rq->topic);
    if (!group || !topic) {
        apg_grpc_answer_status(
            call, &apache__rocketmq__v2__change_invisible_duration_response__descriptor,
            CODE(BAD_REQUEST), "group and topic are required");
        apache__rocketmq__v2__change_invisible_duration_request__free_unpacked(rq, NULL);
        return;
    }
    struct racks *rk = racks_new(call, ud, 1);
    if (!rk) {
        apache__rocketmq__v2__change_invisible_duration_request__free_unpacked(rq, NULL);
        return;
    }
    rk->rk_change = rq;
    rack_start(
        rk, &rk->rk_v[0], group, topic, rq->receipt_handle,
        apg_grpc_clamp_invisible(apg_grpc_dur_ms(rq->invisible_duration, DEFAULT_INVISIBLE_MS)));
    racks_release(rk);
}

void apg_remote_forward_dlq(struct apg_grpc_call *call, const uint8_t *req, size_t len, void *ud)
{
    Apache__Rocketmq__V2__ForwardMessageToDeadLetterQueueRequest *rq =
        apache__rocketmq__v2__forward_message_to_dead_letter_queue_request__unpack(NULL, len, req);
    if (!rq) {
        apg_grpc_call_fail(call, APG_GRPC_INVALID_ARGUMENT,
                           "malformed ForwardMessageToDeadLetterQueueRequest");
        return;
    }
    const char *group = apg_grpc_res_name(rq->group), *topic = apg_grpc_res_name(rq->topic);
    if (!group || !topic) {
        apg_grpc_answer_status(
            call, &apache__rocketmq__v2__forward_message_to_dead_letter_queue_response__descriptor,
            CODE(BAD_REQUEST), "group and topic are required");
        apache__rocketmq__v2__forward_message_to_dead_letter_queue_request__free_unpacked(rq, NULL);
        return;
    }
    struct racks *rk = racks_new(call, ud, 1);
    if (!rk) {
        apache__rocketmq__v2__forward_message_to_dead_letter_queue_request__free_unpacked(rq, NULL);
        return;
    }
    rk->rk_dlq = rq;
    rack_start(rk, &rk->rk_v[0], group, topic, rq->receipt_handle, 0);
    racks_release(rk);
}

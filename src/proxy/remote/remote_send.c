/* SendMessage and EndTransaction of the proxy, forwarded over remoting:
 * each message of a SendMessageRequest becomes one SEND_MESSAGE_V2 to the
 * master of the broker holding the queue chosen from the topic's route,
 * and EndTransaction one END_TRANSACTION to the broker the transaction id
 * names.
 *
 * Design. The checks and the property string are those of the in-broker
 * port (produce.c: digest, GZIP body, message types, TAGS/KEYS/UNIQ_KEY);
 * what the broker then does with a message is decided by the properties a
 * 4.x/5.x remoting client sets too: __SHARDINGKEY (message group),
 * TIMER_DELIVER_MS (delay/timer), TRAN_MSG + PGROUP with the prepared
 * sysFlag (transactional half). Queue choice: a message group hashes
 * (Java String.hashCode, as the in-broker port) onto the writable queues
 * of the whole route, so a group always lands on one queue of one broker;
 * other messages go round robin over them. A half message's transaction
 * id is "offsetMsgId tranStateTableOffset brokerName": EndTransaction
 * reads the commit-log offset back from the offset message id and sends
 * to the named broker, so it needs no state in the proxy.
 *
 * Threads: the methods on the gRPC loop thread; the route and broker
 * answers on the remoting client's loop thread (or the gRPC thread for a
 * cached route); the last message to finish answers the call. */
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "common/hash.h"
#include "common/mem.h"
#include "protocol/msgid.h"
#include "protocol/rcode.h"
#include "protocol/remoting.h"
#include "proto/messaging.pb-c.h"
#include "proxy/grpc/produce.h"
#include "proxy/remote/remote_int.h"

#define CODE(x) APACHE__ROCKETMQ__V2__CODE__##x
#define PERM_WRITE 2
#define SYSFLAG_TXN_PREPARED 0x4
#define TXN_COMMIT 8
#define TXN_ROLLBACK 12
/* The producer group of messages sent through the proxy (5.x producers
 * name none); half messages carry APG_GRPC_TXN_GROUP as in the broker. */
#define PROXY_PRODUCER_GROUP "GRPC_PROXY_PRODUCER"

typedef Apache__Rocketmq__V2__Status pb_status;

struct rsend;

struct rslot {
    struct rsend *s_ctx;
    Apache__Rocketmq__V2__SendResultEntry s_e;
    pb_status s_st;
    char s_why[400];
    char s_txid[400];
    struct apg_buf s_props, s_body;
    const uint8_t *s_bp;
    size_t s_bl;
    const char *s_topic;
    const char *s_group; /* FIFO message group, or NULL */
    bool s_half;
    int64_t s_born;
    char s_broker[128];
};

struct rsend {
    struct apg_remote *rs_rm;
    struct apg_grpc_ref rs_ref;
    Apache__Rocketmq__V2__SendMessageRequest *rs_rq;
    size_t rs_n;
    struct rslot *rs_slots;
    atomic_int rs_left; /* slots not finished, + 1 while the method runs */
};

#define REFUSE(code, ...)                                                                          \
    do {                                                                                           \
        snprintf(s->s_why, sizeof s->s_why, __VA_ARGS__);                                          \
        apg_grpc_status_set(&s->s_st, CODE(code), s->s_why);                                       \
        return false;                                                                              \
    } while (0)

/* Checks m and builds its property string; false with s's status set. */
static bool slot_prepare(struct rslot *s, const Apache__Rocketmq__V2__Message *m, int64_t max_body)
{
    const Apache__Rocketmq__V2__SystemProperties *sp = m->system_properties;
    if (!apg_grpc_resource_name(m->topic, &s->s_topic))
        REFUSE(ILLEGAL_TOPIC, "topic name is empty");
    if (!sp || !sp->message_id || !sp->message_id[0])
        REFUSE(ILLEGAL_MESSAGE_ID, "message id is missing");
    s->s_e.message_id = sp->message_id;
    if ((int64_t)m->body.len > max_body)
        REFUSE(MESSAGE_BODY_TOO_LARGE, "body of %zu bytes is over maxMessageSize (%lld)",
               m->body.len, (long long)max_body);
    s->s_bp = m->body.data;
    s->s_bl = m->body.len;
    if (sp->body_encoding == APACHE__ROCKETMQ__V2__ENCODING__GZIP) {
        if (!apg_grpc_body_inflate(s->s_bp, s->s_bl, (size_t)max_body, &s->s_body))
            REFUSE(MESSAGE_CORRUPTED, "GZIP body does not inflate to at most maxMessageSize");
        s->s_bp = s->s_body.b_data;
        s->s_bl = s->s_body.b_len;
    }
    if (!apg_grpc_digest_ok(sp->body_digest, m->body.data, m->body.len))
        REFUSE(MESSAGE_CORRUPTED, "body does not match its digest");
    Apache__Rocketmq__V2__MessageType type = sp->message_type;
    bool fifo = sp->message_group && sp->message_group[0];
    if (type == APACHE__ROCKETMQ__V2__MESSAGE_TYPE__FIFO && !fifo)
        REFUSE(ILLEGAL_MESSAGE_GROUP, "a FIFO message needs a message group");
    if (type == APACHE__ROCKETMQ__V2__MESSAGE_TYPE__DELAY && !sp->delivery_timestamp)
        REFUSE(ILLEGAL_DELIVERY_TIME, "a delay message needs a delivery timestamp");
    s->s_half = type == APACHE__ROCKETMQ__V2__MESSAGE_TYPE__TRANSACTION;
    if (s->s_half && (fifo || sp->delivery_timestamp))
        REFUSE(MESSAGE_PROPERTY_CONFLICT_WITH_TYPE,
               "a transactional message has no message group and no delivery timestamp");
    if (type == APACHE__ROCKETMQ__V2__MESSAGE_TYPE__LITE ||
        type == APACHE__ROCKETMQ__V2__MESSAGE_TYPE__PRIORITY)
        REFUSE(UNSUPPORTED, "lite and priority messages are not served");
    char due_s[24] = "";
    if (sp->delivery_timestamp) {
        int64_t at =
            sp->delivery_timestamp->seconds * 1000 + sp->delivery_timestamp->nanos / 1000000;
        snprintf(due_s, sizeof due_s, "%lld", (long long)(at > 0 ? at : 0));
    }
    const char *extra[11];
    int ne = 0;
    if (sp->trace_context && sp->trace_context[0]) {
        extra[ne++] = "TRACE_CONTEXT";
        extra[ne++] = sp->trace_context;
    }
    if (fifo) {
        extra[ne++] = "__SHARDINGKEY";
        extra[ne++] = sp->message_group;
        s->s_group = sp->message_group;
    }
    if (due_s[0]) {
        extra[ne++] = "TIMER_DELIVER_MS";
        extra[ne++] = due_s;
    }
    if (s->s_half) {
        extra[ne++] = "TRAN_MSG";
        extra[ne++] = "true";
        extra[ne++] = "PGROUP";
        extra[ne++] = APG_GRPC_TXN_GROUP;
    }
    extra[ne] = NULL;
    if (!apg_grpc_build_props(m, &s->s_props, extra) || apg_buf_append(&s->s_props, "", 1))
        REFUSE(MESSAGE_PROPERTIES_TOO_LARGE,
               "message properties are too large or contain reserved characters");
    s->s_born = sp->born_timestamp
                    ? sp->born_timestamp->seconds * 1000 + sp->born_timestamp->nanos / 1000000
                    : apg_wall_ms();
    return true;
}

static void ctx_free(struct rsend *rs)
{
    for (size_t i = 0; i < rs->rs_n; i++) {
        apg_buf_free(&rs->rs_slots[i].s_props);
        apg_buf_free(&rs->rs_slots[i].s_body);
    }
    apg_free(rs->rs_slots);
    apache__rocketmq__v2__send_message_request__free_unpacked(rs->rs_rq, NULL);
    apg_free(rs);
}

/* One holder of rs is done; the last answers the call and frees rs. */
static void ctx_release(struct rsend *rs)
{
    if (atomic_fetch_sub(&rs->rs_left, 1) != 1)
        return;
    Apache__Rocketmq__V2__SendMessageResponse resp =
        APACHE__ROCKETMQ__V2__SEND_MESSAGE_RESPONSE__INIT;
    pb_status top;
    Apache__Rocketmq__V2__SendResultEntry **ep = apg_calloc(rs->rs_n, sizeof(*ep));
    if (!ep) {
        apg_remote_fail(&rs->rs_ref, APG_GRPC_RESOURCE_EXHAUSTED, "out of memory");
        ctx_free(rs);
        return;
    }
    size_t ok = 0;
    for (size_t i = 0; i < rs->rs_n; i++) {
        ep[i] = &rs->rs_slots[i].s_e;
        ok += rs->rs_slots[i].s_st.code == CODE(OK);
    }
    if (ok == rs->rs_n)
        apg_grpc_status_set(&top, CODE(OK), "OK");
    else if (rs->rs_n == 1)
        top = rs->rs_slots[0].s_st;
    else
        apg_grpc_status_set(&top, CODE(MULTIPLE_RESULTS), "see the entries");
    resp.status = &top;
    resp.n_entries = rs->rs_n;
    resp.entries = ep;
    apg_remote_reply(&rs->rs_ref, &resp.base);
    apg_free(ep);
    ctx_free(rs);
}

static void slot_fail(struct rslot *s, Apache__Rocketmq__V2__Code code, const char *why)
{
    snprintf(s->s_why, sizeof s->s_why, "%s", why);
    apg_grpc_status_set(&s->s_st, code, s->s_why);
}

/* The broker's SEND_MESSAGE_V2 answer (client loop thread). */
static void slot_sent(void *ud, const struct apg_rcmd *resp, apg_err_t err)
{
    struct rslot *s = ud;
    char why[300];
    if (err) {
        snprintf(why, sizeof why, "broker %s did not answer the send: %s", s->s_broker,
                 apg_strerror(err));
        slot_fail(s, err == APG_ETIMEDOUT ? CODE(PROXY_TIMEOUT) : CODE(INTERNAL_SERVER_ERROR), why);
    } else if (resp->code == APG_RESP_SUCCESS) {
        apg_grpc_status_set(&s->s_st, CODE(OK), "OK");
        int64_t qoff = 0;
        apg_rcmd_ext_i64(resp, "queueOffset", &qoff);
        s->s_e.offset = qoff;
        const char *mid = apg_rcmd_ext_get(resp, "msgId");
        if (s->s_half && mid) {
            snprintf(s->s_txid, sizeof s->s_txid, "%s %lld %s", mid, (long long)qoff, s->s_broker);
            s->s_e.transaction_id = s->s_txid;
        }
    } else {
        Apache__Rocketmq__V2__Code c = CODE(INTERNAL_SERVER_ERROR);
        if (resp->code == APG_RESP_FLUSH_DISK_TIMEOUT || resp->code == APG_RESP_SLAVE_NOT_AVAILABLE)
            c = CODE(MASTER_PERSISTENCE_TIMEOUT);
        else if (resp->code == APG_RESP_SYSTEM_BUSY)
            c = CODE(TOO_MANY_REQUESTS);
        else if (resp->code == APG_RESP_TOPIC_NOT_EXIST)
            c = CODE(TOPIC_NOT_FOUND);
        else if (resp->code == APG_RESP_NO_PERMISSION)
            c = CODE(FORBIDDEN);
        snprintf(why, sizeof why, "broker %s: %s", s->s_broker,
                 apg_remote_remark(resp, "send refused"));
        slot_fail(s, c, why);
    }
    ctx_release(s->s_ctx);
}

/* The queue of the message: (broker index in the route's queueDatas, id). */
static bool pick_queue(const struct apg_remote_route *rt, struct apg_remote *rm, const char *group,
                       size_t *qd_i, int32_t *qid)
{
    size_t total = 0;
    for (size_t i = 0; i < rt->rr_rd.rd_nqds; i++) {
        const struct apg_route_qd *qd = &rt->rr_rd.rd_qds[i];
        if ((qd->qd_perm & PERM_WRITE) && qd->qd_write > 0 &&
            apg_remote_route_master(rt, qd->qd_broker))
            total += (size_t)qd->qd_write;
    }
    if (!total)
        return false;
    size_t k = group ? (apg_java_hash(group, strlen(group)) & 0x7fffffffu) % total
                     : atomic_fetch_add(&rm->rm_rr, 1) % total;
    for (size_t i = 0; i < rt->rr_rd.rd_nqds; i++) {
        const struct apg_route_qd *qd = &rt->rr_rd.rd_qds[i];
        if (!(qd->qd_perm & PERM_WRITE) || qd->qd_write <= 0 ||
            !apg_remote_route_master(rt, qd->qd_broker))
            continue;
        if (k < (size_t)qd->qd_write) {
            *qd_i = i;
            *qid = (int32_t)k;
            return true;
        }
        k -= (size_t)qd->qd_write;
    }
    return false;
}

static void slot_routed(struct apg_remote *rm, struct apg_remote_route *rt, apg_err_t code,
                        const char *why, void *arg)
{
    struct rslot *s = arg;
    size_t qi;
    int32_t qid;
    if (code) {
        slot_fail(s, code == APG_ENOTFOUND ? CODE(TOPIC_NOT_FOUND) : CODE(INTERNAL_SERVER_ERROR),
                  why);
        ctx_release(s->s_ctx);
        return;
    }
    if (!pick_queue(rt, rm, s->s_group, &qi, &qid)) {
        char w[300];
        snprintf(w, sizeof w, "topic %s has no writable queue on a broker with a master",
                 s->s_topic);
        slot_fail(s, CODE(FORBIDDEN), w);
        apg_remote_route_release(rt);
        ctx_release(s->s_ctx);
        return;
    }
    const char *broker = rt->rr_rd.rd_qds[qi].qd_broker;
    snprintf(s->s_broker, sizeof s->s_broker, "%s", broker);
    char addr[128];
    snprintf(addr, sizeof addr, "%s", apg_remote_route_master(rt, broker));
    apg_remote_route_release(rt);
    char qs[16], fs[16], bs[24];
    snprintf(qs, sizeof qs, "%d", qid);
    snprintf(fs, sizeof fs, "%d", s->s_half ? SYSFLAG_TXN_PREPARED : 0);
    snprintf(bs, sizeof bs, "%lld", (long long)s->s_born);
    struct apg_rcmd req;
    apg_remote_request(&req, APG_REQ_SEND_MESSAGE_V2);
    apg_rcmd_ext_add(&req, "a", s->s_half ? APG_GRPC_TXN_GROUP : PROXY_PRODUCER_GROUP);
    apg_rcmd_ext_add(&req, "b", s->s_topic);
    apg_rcmd_ext_add(&req, "c", "TBW102");
    apg_rcmd_ext_add(&req, "d", "4");
    apg_rcmd_ext_add(&req, "e", qs);
    apg_rcmd_ext_add(&req, "f", fs);
    apg_rcmd_ext_add(&req, "g", bs);
    apg_rcmd_ext_add(&req, "h", "0");
    apg_rcmd_ext_add(&req, "i", (const char *)s->s_props.b_data);
    apg_rcmd_ext_add(&req, "j", "0");
    apg_rcmd_ext_add(&req, "k", "false");
    apg_rcmd_ext_add(&req, "n", broker);
    apg_err_t e = apg_remote_call(rm, addr, &req, s->s_bp, (uint32_t)s->s_bl, APG_REMOTE_TIMEOUT_MS,
                                  slot_sent, s);
    if (e)
        slot_sent(s, NULL, e);
}

void apg_remote_send(struct apg_grpc_call *call, const uint8_t *req, size_t len, void *ud)
{
    const struct apg_grpc_messaging *ms = ud;
    Apache__Rocketmq__V2__SendMessageRequest *rq = apg_grpc_send_unpack(call, req, len);
    if (!rq)
        return;
    struct rsend *rs = apg_calloc(1, sizeof(*rs));
    struct rslot *slots = rs ? apg_calloc(rq->n_messages, sizeof(*slots)) : NULL;
    if (!slots) {
        apg_free(rs);
        apache__rocketmq__v2__send_message_request__free_unpacked(rq, NULL);
        apg_grpc_call_fail(call, APG_GRPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    rs->rs_rm = ms->gm_remote;
    rs->rs_rq = rq;
    rs->rs_n = rq->n_messages;
    rs->rs_slots = slots;
    atomic_init(&rs->rs_left, (int)rs->rs_n + 1);
    apg_grpc_call_ref(call, &rs->rs_ref);
    for (size_t i = 0; i < rs->rs_n; i++) {
        struct rslot *s = &slots[i];
        s->s_ctx = rs;
        apache__rocketmq__v2__send_result_entry__init(&s->s_e);
        s->s_e.status = &s->s_st;
        if (slot_prepare(s, rq->messages[i], ms->gm_max_body))
            apg_remote_route_get(rs->rs_rm, s->s_topic, slot_routed, s);
        else
            ctx_release(rs);
    }
    ctx_release(rs);
}

/* ---- EndTransaction ---- */

struct rend {
    struct apg_grpc_ref re_ref;
    char re_broker[128];
};

static void end_reply(struct apg_grpc_ref *ref, Apache__Rocketmq__V2__Code code, const char *why)
{
    apg_remote_status(ref, &apache__rocketmq__v2__end_transaction_response__descriptor, code, why);
}

static void end_done(void *ud, const struct apg_rcmd *resp, apg_err_t err)
{
    struct rend *re = ud;
    char why[400];
    if (err) {
        snprintf(why, sizeof why, "broker %s did not answer END_TRANSACTION: %s", re->re_broker,
                 apg_strerror(err));
        end_reply(&re->re_ref, CODE(INTERNAL_SERVER_ERROR), why);
    } else if (resp->code != APG_RESP_SUCCESS) {
        snprintf(why, sizeof why, "broker %s: %s", re->re_broker,
                 apg_remote_remark(resp, "END_TRANSACTION refused"));
        end_reply(&re->re_ref, CODE(INVALID_TRANSACTION_ID), why);
    } else {
        end_reply(&re->re_ref, CODE(OK), "OK");
    }
    apg_free(re);
}

void apg_remote_end_txn(struct apg_grpc_call *call, const uint8_t *req, size_t len, void *ud)
{
    const struct apg_grpc_messaging *ms = ud;
    struct apg_remote *rm = ms->gm_remote;
    Apache__Rocketmq__V2__EndTransactionRequest *rq =
        apache__rocketmq__v2__end_transaction_request__unpack(NULL, len, req);
    if (!rq) {
        apg_grpc_call_fail(call, APG_GRPC_INVALID_ARGUMENT, "malformed EndTransactionRequest");
        return;
    }
    struct rend *re = apg_calloc(1, sizeof(*re));
    if (!re) {
        apg_grpc_call_fail(call, APG_GRPC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    apg_grpc_call_ref(call, &re->re_ref);
    char mid[64], why[600], addr[128];
    long long tso;
    int used = 0;
    const char *id = rq->transaction_id ? rq->transaction_id : "";
    struct apg_host host;
    int64_t clo;
    if (rq->resolution ==
        APACHE__ROCKETMQ__V2__TRANSACTION_RESOLUTION__TRANSACTION_RESOLUTION_UNSPECIFIED) {
        end_reply(&re->re_ref, CODE(OK), "no resolution: the check asks again");
        apg_free(re);
        goto out;
    }
    if (sscanf(id, "%63s %lld %n", mid, &tso, &used) != 2 || !id[used] ||
        strlen(id + used) >= sizeof re->re_broker ||
        apg_msgid_decode(mid, strlen(mid), &host, &clo) != APG_OK) {
        snprintf(why, sizeof why, "transaction id %s is not one this proxy gave", id);
        end_reply(&re->re_ref, CODE(INVALID_TRANSACTION_ID), why);
        apg_free(re);
        goto out;
    }
    snprintf(re->re_broker, sizeof re->re_broker, "%s", id + used);
    if (!apg_remote_broker_addr(rm, re->re_broker, addr, sizeof addr)) {
        snprintf(why, sizeof why, "broker %s of transaction %s is in no route the proxy knows",
                 re->re_broker, id);
        end_reply(&re->re_ref, CODE(INVALID_TRANSACTION_ID), why);
        apg_free(re);
        goto out;
    }
    char ts[24], cs[24], vs[8];
    snprintf(ts, sizeof ts, "%lld", tso);
    snprintf(cs, sizeof cs, "%lld", (long long)clo);
    snprintf(vs, sizeof vs, "%d",
             rq->resolution == APACHE__ROCKETMQ__V2__TRANSACTION_RESOLUTION__COMMIT ? TXN_COMMIT
                                                                                    : TXN_ROLLBACK);
    struct apg_rcmd r;
    apg_remote_request(&r, APG_REQ_END_TRANSACTION);
    apg_rcmd_ext_add(&r, "producerGroup", APG_GRPC_TXN_GROUP);
    apg_rcmd_ext_add(&r, "tranStateTableOffset", ts);
    apg_rcmd_ext_add(&r, "commitLogOffset", cs);
    apg_rcmd_ext_add(&r, "commitOrRollback", vs);
    apg_rcmd_ext_add(&r, "fromTransactionCheck",
                     rq->source == APACHE__ROCKETMQ__V2__TRANSACTION_SOURCE__SOURCE_SERVER_CHECK
                         ? "true"
                         : "false");
    apg_rcmd_ext_add(&r, "msgId", rq->message_id ? rq->message_id : "");
    apg_rcmd_ext_add(&r, "transactionId", mid);
    apg_err_t e = apg_remote_call(rm, addr, &r, NULL, 0, APG_REMOTE_TIMEOUT_MS, end_done, re);
    if (e)
        end_done(re, NULL, e);
out:
    apache__rocketmq__v2__end_transaction_request__free_unpacked(rq, NULL);
}

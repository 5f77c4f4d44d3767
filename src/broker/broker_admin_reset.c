/* Admin requests the broker passes on to live consumers (docs/wire.md §11.5,
 * §11.6): INVOKE_BROKER_TO_RESET_OFFSET (222), GET_CONSUMER_RUNNING_INFO
 * (307) and CONSUME_MESSAGE_DIRECTLY (309).
 *
 * Reset by timestamp: for every write queue of the topic the new offset is
 * the first record stored at or after the timestamp (the max offset for a
 * negative timestamp); without isForce a queue only moves back, never
 * forward. The group must have an offset for every queue (else
 * SYSTEM_ERROR, as RocketMQ answers) and a live member (else
 * CONSUMER_NOT_ONLINE, on which RocketMQ's admin falls back to committing
 * the offsets itself). A 5.x tool may name one queue (queueId >= 0, after
 * committing it with UPDATE_CONSUMER_OFFSET) and its new offset: then only
 * that queue is set, to the offset (which must lie within the queue) or by
 * the timestamp, whether or not a member is online, as RocketMQ 5.x's
 * server-side reset does. The new
 * offsets are written to the offset table and pushed to every member of the
 * group with a oneway RESET_CONSUMER_CLIENT_OFFSET (220) carrying the same
 * ResetOffsetBody as the reply, so a running client drops what it cached
 * and pulls from there; a client that ignores 220 keeps its own position.
 *
 * Running info and consume-directly: the request goes to the member with
 * the given clientId as a request of the broker's own (for 309 with the
 * stored record as its body), and the client's answer (code, remark, body)
 * goes back to the admin as the answer to its request; a client that does
 * not answer in 10 s gives CONSUME_MSG_TIMEOUT.
 *
 * Threads: a request runs on the admin connection's loop. The member
 * connections belong to their own loops: the visitor of the client table
 * takes a reference to each, and the push (or the forwarded request) is
 * posted to that connection's loop. The client's answer arrives on the
 * member's loop and is posted back to the admin connection's loop, which
 * alone writes to it. A forwarded request holds references to both
 * connections until the answer (or the timeout) is relayed. */
#include <stdio.h>
#include <string.h>

#include "broker/broker_admin_stats.h"
#include "common/mem.h"
#include "protocol/mq_map.h"
#include "protocol/msgid.h"

#define RELAY_TIMEOUT_MS 10000
#define MAX_MEMBERS 256

/* ---- member connections ------------------------------------------------- */

struct members {
    const char *mb_want; /* only this clientId, or NULL for all */
    struct apg_conn *mb_conn[MAX_MEMBERS];
    int mb_n;
};

static apg_err_t take_member(void *ud, const struct apg_client_member *m)
{
    struct members *mb = ud;
    if (mb->mb_n < MAX_MEMBERS && (!mb->mb_want || strcmp(mb->mb_want, m->cm_id) == 0)) {
        apg_conn_ref(m->cm_conn);
        mb->mb_conn[mb->mb_n++] = m->cm_conn;
    }
    return APG_OK;
}

/* References the connections of group's consumers (only want's when not
 * NULL) into mb. */
static void members_take(struct apg_broker *b, const char *group, const char *want,
                         struct members *mb)
{
    static const struct apg_clients_visitor v = {.cv_member = take_member};
    mb->mb_want = want;
    mb->mb_n = 0;
    apg_clients_visit(b->br_clients, true, group, &v, mb);
}

/* ---- INVOKE_BROKER_TO_RESET_OFFSET -------------------------------------- */

/* What one push carries to a member's loop. */
struct reset_push {
    char rp_topic[APG_NAME_CAP];
    char rp_group[APG_NAME_CAP];
    int64_t rp_ts;
    uint32_t rp_len;
    uint8_t rp_body[]; /* ResetOffsetBody */
};

static void push_on_loop(struct apg_conn *c, void *arg)
{
    struct reset_push *rp = arg;
    if (!apg_conn_is_closed(c)) {
        struct apg_rcmd req;
        char ts[24];
        apg_rcmd_init_request(&req, APG_REQ_RESET_CONSUMER_CLIENT_OFFSET, 0, APG_SER_JSON);
        apg_rcmd_ext_add(&req, "topic", rp->rp_topic);
        apg_rcmd_ext_add(&req, "group", rp->rp_group);
        apg_rcmd_ext_add(&req, "timestamp", apg_fmt_i64(ts, rp->rp_ts));
        apg_rcmd_ext_add(&req, "isForce", "false");
        apg_conn_oneway(c, &req, rp->rp_body, rp->rp_len);
    }
    apg_free(rp);
}

int32_t apg_broker_offsets_reset(struct apg_broker *b, const struct apg_reset_req *r,
                                 struct apg_buf *o, int *told, char *remark, size_t n)
{
    const char *topic = r->rr_topic, *group = r->rr_group;
    int32_t one = r->rr_qid;
    int64_t want = r->rr_offset, ts = r->rr_ts;
    *told = 0;
    struct apg_topic_cfg tc;
    if (!apg_topics_get(b->br_topics, topic, &tc)) {
        snprintf(remark, n, "cannot reset offsets: topic %s is not on this broker", topic);
        return APG_RESP_SYSTEM_ERROR;
    }
    int32_t nq = tc.tc_write_queues, lo = 0;
    if (one >= 0) {
        if (one >= nq) {
            snprintf(remark, n, "cannot reset offsets: topic %s has no queue %d on this broker",
                     topic, one);
            return APG_RESP_SYSTEM_ERROR;
        }
        lo = one;
        nq = one + 1;
    }
    int64_t *to = apg_calloc((size_t)(nq > 0 ? nq : 1), sizeof(*to));
    if (!to) {
        snprintf(remark, n, "out of memory");
        return APG_RESP_SYSTEM_ERROR;
    }
    int32_t code = APG_RESP_SUCCESS;
    for (int32_t q = lo; q < nq; q++) {
        int64_t now = apg_offsets_query(b->br_offsets, group, topic, q);
        int64_t min = apg_store_min_offset(b->br_store, topic, strlen(topic), q);
        int64_t max = apg_store_max_offset(b->br_store, topic, strlen(topic), q);
        if (one >= 0 && want != -1 && (want < min || want > max)) {
            snprintf(remark, n,
                     "cannot reset offsets: offset %lld is outside %s queue %d [%lld, %lld]",
                     (long long)want, topic, q, (long long)min, (long long)max);
            code = APG_RESP_SYSTEM_ERROR;
            goto out;
        }
        if (now < 0 && one < 0) {
            snprintf(remark, n, "cannot reset offsets: group %s has no offset for %s queue %d",
                     group, topic, q);
            code = APG_RESP_SYSTEM_ERROR;
            goto out;
        }
        int64_t at =
            one >= 0 && want != -1 ? want
            : ts < 0               ? max
                     : apg_store_offset_by_time(b->br_store, topic, strlen(topic), q, ts, false);
        if (at < 0)
            at = 0;
        to[q] = r->rr_force || one >= 0 || at < now ? at : now;
    }
    struct members mb;
    mb.mb_n = 0;
    if (!r->rr_preview)
        members_take(b, group, NULL, &mb);
    if (!r->rr_preview && mb.mb_n == 0 && one < 0 && !r->rr_offline_ok) {
        snprintf(remark, n,
                 "no consumer of group %s is online, so its offsets were not reset (topic %s, "
                 "timestamp %lld)",
                 group, topic, (long long)ts);
        code = APG_RESP_CONSUMER_NOT_ONLINE;
        goto out;
    }
    size_t start = o->b_len;
    apg_err_t e = apg_buf_append_str(o, "{\"offsetTable\":{");
    for (int32_t q = lo; !e && q < nq; q++) {
        if (q > lo)
            e = apg_buf_append(o, ",", 1);
        if (!e)
            e = apg_mqmap_put_key(o, b->br_name, q, topic);
        if (!e)
            e = apg_buf_printf(o, "%lld", (long long)to[q]);
    }
    if (!e)
        e = apg_buf_append_str(o, "}}");
    for (int32_t q = lo; !e && !r->rr_preview && q < nq; q++)
        e = apg_offsets_commit(b->br_offsets, group, topic, q, to[q]);
    size_t blen = o->b_len - start;
    for (int i = 0; i < mb.mb_n; i++) {
        struct reset_push *rp = e ? NULL : apg_malloc(sizeof(*rp) + blen);
        if (rp) {
            snprintf(rp->rp_topic, sizeof(rp->rp_topic), "%s", topic);
            snprintf(rp->rp_group, sizeof(rp->rp_group), "%s", group);
            rp->rp_ts = ts;
            rp->rp_len = (uint32_t)blen;
            memcpy(rp->rp_body, o->b_data + start, blen);
            if (apg_conn_post(mb.mb_conn[i], push_on_loop, rp) != APG_OK)
                apg_free(rp);
        }
        apg_conn_unref(mb.mb_conn[i]);
    }
    *told = mb.mb_n;
    if (!e && !r->rr_preview)
        apg_log_info("broker",
                     "offsets of group %s on %s reset to timestamp %lld%s; %d member(s) told",
                     group, topic, (long long)ts, r->rr_force ? " (forced)" : "", mb.mb_n);
    if (e) {
        snprintf(remark, n, "out of memory");
        code = APG_RESP_SYSTEM_ERROR;
    }
out:
    apg_free(to);
    return code;
}

static void reset_offset(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req)
{
    struct apg_reset_req r = {.rr_qid = -1, .rr_offset = -1};
    r.rr_topic = apg_rcmd_ext_get(req, "topic");
    r.rr_group = apg_rcmd_ext_get(req, "group");
    char remark[512];
    if (!r.rr_topic || !r.rr_group || apg_rcmd_ext_i64(req, "timestamp", &r.rr_ts)) {
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR,
                          "INVOKE_BROKER_TO_RESET_OFFSET needs topic, group and timestamp");
        return;
    }
    r.rr_force = apg_rcmd_ext_bool(req, "isForce", false);
    /* 5.x tools name one queue (queueId >= 0) and maybe its new offset. */
    if (apg_rcmd_ext_get(req, "queueId") && apg_rcmd_ext_i32(req, "queueId", &r.rr_qid))
        r.rr_qid = -1;
    if (apg_rcmd_ext_get(req, "offset") && apg_rcmd_ext_i64(req, "offset", &r.rr_offset))
        r.rr_offset = -1;
    struct apg_buf o = APG_BUF_INIT;
    int told;
    int32_t code = apg_broker_offsets_reset(b, &r, &o, &told, remark, sizeof(remark));
    if (code != APG_RESP_SUCCESS)
        apg_broker_refuse(b, c, req, code, remark);
    else
        apg_conn_reply(c, req, APG_RESP_SUCCESS, NULL, o.b_data, (uint32_t)o.b_len);
    apg_buf_free(&o);
}

/* ---- requests forwarded to one consumer -------------------------------- */

#define RELAY_EXT 6

/* One forwarded request: the admin's connection and the fields of its
 * request needed to answer it, the request to forward (built on the admin's
 * loop), then the client's answer. */
struct relay {
    struct apg_conn *rl_admin; /* referenced */
    int32_t rl_opaque;
    uint8_t rl_ser;
    int32_t rl_code;
    char *rl_remark;
    struct apg_buf rl_body;
    /* the request to forward */
    int32_t rl_fwd_code;
    int rl_next;
    char rl_key[RELAY_EXT][32];
    char rl_val[RELAY_EXT][APG_NAME_CAP];
    struct apg_buf rl_fwd_body;
};

static void relay_free(struct relay *rl)
{
    apg_conn_unref(rl->rl_admin);
    apg_free(rl->rl_remark);
    apg_buf_free(&rl->rl_body);
    apg_buf_free(&rl->rl_fwd_body);
    apg_free(rl);
}

static void relay_ext(struct relay *rl, const char *key, const char *val)
{
    if (rl->rl_next == RELAY_EXT || !val)
        return;
    snprintf(rl->rl_key[rl->rl_next], sizeof(rl->rl_key[0]), "%s", key);
    snprintf(rl->rl_val[rl->rl_next], sizeof(rl->rl_val[0]), "%s", val);
    rl->rl_next++;
}

static void relay_answer(struct apg_conn *admin, void *arg)
{
    struct relay *rl = arg;
    struct apg_rcmd req = {0};
    req.opaque = rl->rl_opaque;
    req.serialize = rl->rl_ser;
    apg_conn_reply(admin, &req, rl->rl_code, rl->rl_remark, rl->rl_body.b_data,
                   (uint32_t)rl->rl_body.b_len);
    relay_free(rl);
}

static void relay_resp(void *ud, const struct apg_rcmd *resp, apg_err_t err)
{
    struct relay *rl = ud;
    char remark[512];
    if (err || !resp) {
        const char *name = apg_req_code_name(rl->rl_fwd_code);
        snprintf(remark, sizeof(remark), "consumer %s did not answer %s: %s", rl->rl_val[1],
                 name ? name : "the request", apg_strerror(err));
        /* RocketMQ answers a consumer's timeout with CONSUME_MSG_TIMEOUT. */
        rl->rl_code = err == APG_ETIMEDOUT ? APG_RESP_CONSUME_MSG_TIMEOUT : APG_RESP_SYSTEM_ERROR;
        rl->rl_remark = apg_strdup(remark);
    } else {
        rl->rl_code = resp->code;
        rl->rl_remark = resp->remark ? apg_strdup(resp->remark) : NULL;
        if (resp->body && resp->body_len &&
            apg_buf_append(&rl->rl_body, resp->body, resp->body_len)) {
            rl->rl_code = APG_RESP_SYSTEM_ERROR;
            apg_free(rl->rl_remark);
            rl->rl_remark = apg_strdup("out of memory");
        }
    }
    if (apg_conn_post(rl->rl_admin, relay_answer, rl) != APG_OK)
        relay_free(rl);
}

static void relay_send(struct apg_conn *member, void *arg)
{
    struct relay *rl = arg;
    struct apg_rcmd req;
    apg_rcmd_init_request(&req, rl->rl_fwd_code, 0, APG_SER_JSON);
    for (int i = 0; i < rl->rl_next; i++)
        apg_rcmd_ext_add(&req, rl->rl_key[i], rl->rl_val[i]);
    apg_err_t e =
        apg_conn_request(member, &req, rl->rl_fwd_body.b_data, (uint32_t)rl->rl_fwd_body.b_len,
                         RELAY_TIMEOUT_MS, relay_resp, rl);
    if (e)
        relay_resp(rl, NULL, e);
}

/* Starts a relay of req to member clientId of consumerGroup: the
 * forwarded request carries those two fields first, then extra fields
 * (key, value pairs, NULL-terminated) and body (may be NULL). Answers req
 * itself when the member is not online. */
static void relay_start(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req,
                        const char *const *extra, const struct apg_buf *body)
{
    const char *group = apg_rcmd_ext_get(req, "consumerGroup");
    const char *client = apg_rcmd_ext_get(req, "clientId");
    const char *name = apg_req_code_name(req->code);
    char remark[512];
    if (!group || !client) {
        snprintf(remark, sizeof(remark), "%s needs consumerGroup and clientId", name);
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR, remark);
        return;
    }
    struct members mb;
    members_take(b, group, client, &mb);
    if (mb.mb_n == 0) {
        snprintf(remark, sizeof(remark), "consumer %s of group %s is not online", client, group);
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR, remark);
        return;
    }
    for (int i = 1; i < mb.mb_n; i++)
        apg_conn_unref(mb.mb_conn[i]);
    struct relay *rl = apg_calloc(1, sizeof(*rl));
    if (!rl || (body && apg_buf_append(&rl->rl_fwd_body, body->b_data, body->b_len))) {
        if (rl)
            apg_buf_free(&rl->rl_fwd_body);
        apg_free(rl);
        apg_conn_unref(mb.mb_conn[0]);
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR, "out of memory");
        return;
    }
    apg_conn_ref(c);
    rl->rl_admin = c;
    rl->rl_opaque = req->opaque;
    rl->rl_ser = req->serialize;
    rl->rl_fwd_code = req->code;
    relay_ext(rl, "consumerGroup", group);
    relay_ext(rl, "clientId", client);
    for (int i = 0; extra && extra[i]; i += 2)
        relay_ext(rl, extra[i], extra[i + 1]);
    if (apg_conn_post(mb.mb_conn[0], relay_send, rl) != APG_OK) {
        relay_free(rl);
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR, "the broker is stopping");
    }
    apg_conn_unref(mb.mb_conn[0]);
}

/* GET_CONSUMER_RUNNING_INFO: passed on with jstackEnable. */
static void running_info(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req)
{
    const char *extra[] = {"jstackEnable",
                           apg_rcmd_ext_bool(req, "jstackEnable", false) ? "true" : "false", NULL};
    relay_start(b, c, req, extra, NULL);
}

/* CONSUME_MESSAGE_DIRECTLY: the record named by msgId (an offset msgId of
 * this broker) goes to the consumer as the body, its stored bytes, with
 * msgId and brokerName set, as RocketMQ's broker does. */
static void consume_directly(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req)
{
    const char *id = apg_rcmd_ext_get(req, "msgId");
    struct apg_host host;
    int64_t phys = -1;
    char remark[400];
    struct apg_buf rec = APG_BUF_INIT;
    if (!id || apg_msgid_decode(id, strlen(id), &host, &phys) ||
        apg_store_read_at(b->br_store, phys, &rec)) {
        snprintf(remark, sizeof(remark),
                 "CONSUME_MESSAGE_DIRECTLY: msgId %s is not the offset id of a message on "
                 "this broker",
                 id ? id : "(none)");
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR, remark);
        apg_buf_free(&rec);
        return;
    }
    const char *topic = apg_rcmd_ext_get(req, "topic"); /* sent by 5.x tools */
    const char *extra[] = {"msgId", id,  "brokerName", b->br_name, topic ? "topic" : NULL,
                           topic,   NULL};
    relay_start(b, c, req, extra, &rec);
    apg_buf_free(&rec);
}

void apg_broker_proc_admin_reset(struct apg_broker *b, struct apg_conn *c,
                                 const struct apg_rcmd *req)
{
    if (req->code == APG_REQ_INVOKE_BROKER_TO_RESET_OFFSET)
        reset_offset(b, c, req);
    else if (req->code == APG_REQ_GET_CONSUMER_RUNNING_INFO)
        running_info(b, c, req);
    else if (req->code == APG_REQ_CONSUME_MESSAGE_DIRECTLY)
        consume_directly(b, c, req);
    else
        apg_broker_refuse(b, c, req, APG_RESP_REQUEST_CODE_NOT_SUPPORTED,
                          "not a request the broker passes on to consumers");
}

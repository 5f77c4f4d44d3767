/* Push consumer: the public API, the hooks the I/O thread calls (heartbeat
 * body, periodic tick, requests from a broker) and the operations other
 * threads hand to the I/O thread.
 *
 * Design. apg_push_consumer_start creates the I/O instance (client/io.c),
 * checks each SQL92 subscription with a broker (CHECK_CLIENT_CONFIG), loads
 * the broadcasting offsets file, starts the workers and the first rebalance.
 * Every tick the I/O thread rebalances (every rebalance_ms), commits offsets
 * (every persistConsumerOffsetInterval) and, orderly clustering, renews the
 * queue locks. A broker's NOTIFY_CONSUMER_IDS_CHANGED rebalances at once;
 * RESET_CONSUMER_CLIENT_OFFSET restarts a held queue at the given offset;
 * GET_CONSUMER_RUNNING_INFO is answered with running_info.c's report.
 *
 * Threads. Workers and API callers never touch I/O-thread state: they
 * submit a struct pop (apg_push_op_exec) and wait for its answer.
 *
 * Destroy stops pulls, joins the workers after their current call, then
 * commits with acknowledged requests and unregisters the client so the
 * other members rebalance. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/push/push_int.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"
#include "protocol/mq_map.h"
#include "protocol/rcode.h"
#include "protocol/remoting.h"

/* ---- I/O-thread hooks ---- */

json_t *apg_push_sub_json(const struct psub *s)
{
    json_t *tags = json_array(), *codes = json_array();
    for (size_t i = 0; tags && codes && i < s->s_te.te_n; i++) {
        json_array_append_new(tags, json_string(apg_tagexpr_tag(&s->s_te, i)));
        json_array_append_new(codes, json_integer(s->s_te.te_codes[i]));
    }
    return json_pack("{s:b, s:s, s:s, s:o, s:o, s:I, s:s}", "classFilterMode", 0, "topic",
                     s->s_topic, "subString", s->s_expr, "tagsSet", tags, "codeSet", codes,
                     "subVersion", (json_int_t)0, "expressionType", s->s_sql ? "SQL92" : "TAG");
}

static apg_err_t push_hb_body(struct apg_cio *io, void *owner, struct apg_buf *out)
{
    struct apg_push_consumer *c = owner;
    if (c->pc_io_stop)
        return APG_ESHUTDOWN; /* no re-registration while shutting down */
    json_t *subs = json_array();
    for (struct psub *s = c->pc_subs; subs && s; s = s->s_next)
        json_array_append_new(subs, apg_push_sub_json(s));
    json_t *root = json_pack(
        "{s:s, s:[], s:[{s:s, s:s, s:s, s:s, s:o, s:b}]}", "clientID", apg_cio_client_id(io),
        "producerDataSet", "consumerDataSet", "groupName", c->pc_group, "consumeType",
        "CONSUME_PASSIVELY", "messageModel",
        c->pc_conf->message_model == APG_BROADCASTING ? "BROADCASTING" : "CLUSTERING",
        "consumeFromWhere",
        c->pc_conf->consume_from == APG_CONSUME_FROM_FIRST_OFFSET ? "CONSUME_FROM_FIRST_OFFSET"
                                                                  : "CONSUME_FROM_LAST_OFFSET",
        "subscriptionDataSet", subs, "unitMode", 0);
    if (root == NULL)
        return APG_ENOMEM;
    char *txt = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (txt == NULL)
        return APG_ENOMEM;
    apg_err_t e = apg_buf_append_str(out, txt);
    free(txt);
    return e;
}

static void push_tick(struct apg_cio *io, void *owner)
{
    struct apg_push_consumer *c = owner;
    if (c->pc_io_stop)
        return;
    int64_t now = apg_now_ms();
    if (now >= c->pc_next_rebalance)
        apg_push_rebalance_all(io, c);
    apg_push_stats_roll(c, now);
    if (now >= c->pc_next_commit) {
        c->pc_next_commit = now + c->pc_conf->commit_interval_ms;
        apg_push_offsets_commit_all(io, c, NULL);
    }
    if (apg_push_locking(c) && now >= c->pc_next_lock) {
        c->pc_next_lock = now + c->pc_conf->lock_interval_ms;
        apg_push_locks_renew(io, c);
    }
}

struct reset_ctx {
    struct apg_cio *rc_io;
    struct apg_push_consumer *rc_c;
};

/* One queue of a RESET_CONSUMER_CLIENT_OFFSET: when we hold it, drop its
 * process queue without committing what it had (cached messages are
 * discarded, tasks out skip the listener) and start a new one at off. */
static apg_err_t reset_one(void *ud, const char *broker, int32_t qid, const char *topic,
                           int64_t off)
{
    struct reset_ctx *rc = ud;
    struct apg_push_consumer *c = rc->rc_c;
    apg_mq_t mq = {0};
    snprintf(mq.mq_topic, sizeof(mq.mq_topic), "%s", topic);
    snprintf(mq.mq_broker, sizeof(mq.mq_broker), "%s", broker);
    mq.mq_queue_id = qid;
    struct pq *q = c->pc_queues;
    while (q && !apg_push_mq_eq(&q->q_mq, &mq))
        q = q->q_next;
    if (q == NULL || off < 0)
        return APG_OK;
    struct psub *s = q->q_sub;
    pthread_mutex_lock(&c->pc_mu);
    q->q_dirty = false;
    pthread_mutex_unlock(&c->pc_mu);
    apg_push_queue_drop(rc->rc_io, c, q, NULL);
    struct pq *nq = apg_push_pq_new(rc->rc_io, c, s, &mq);
    if (nq == NULL)
        return APG_OK;
    apg_log_info("client", "%s: queue %s:%s:%d reset to offset %lld by the broker",
                 apg_cio_client_id(rc->rc_io), topic, broker, qid, (long long)off);
    apg_push_queue_begin(rc->rc_io, nq, off);
    pthread_mutex_lock(&c->pc_mu);
    nq->q_dirty = true;
    pthread_mutex_unlock(&c->pc_mu);
    return APG_OK;
}

/* GET_CONSUMER_RUNNING_INFO forwarded by a broker for an admin tool: the
 * answer goes back on the same connection. */
static void running_info_answer(struct apg_cio *io, struct apg_push_consumer *c,
                                const struct apg_rcmd *req)
{
    const char *group = apg_rcmd_ext_get(req, "consumerGroup");
    char remark[320];
    apg_err_t e;
    if (group == NULL || strcmp(group, c->pc_group) != 0) {
        snprintf(remark, sizeof(remark), "consumer group %s is not in this consumer (%s)",
                 group ? group : "(none)", c->pc_group);
        e = apg_cio_server_reply(io, req, APG_RESP_SYSTEM_ERROR, remark, NULL, 0);
    } else {
        struct apg_buf b = APG_BUF_INIT;
        e = apg_push_running_info(io, c, apg_rcmd_ext_bool(req, "jstackEnable", false), &b);
        if (e == APG_OK)
            e = apg_cio_server_reply(io, req, APG_RESP_SUCCESS, NULL, b.b_data, b.b_len);
        else
            e = apg_cio_server_reply(io, req, APG_RESP_SYSTEM_ERROR, "out of memory", NULL, 0);
        apg_buf_free(&b);
    }
    if (e != APG_OK)
        apg_log_debug("client", "%s: cannot answer GET_CONSUMER_RUNNING_INFO: %s",
                      apg_cio_client_id(io), apg_strerror(e));
}

static void push_server_req(struct apg_cio *io, void *owner, const struct apg_rcmd *req)
{
    struct apg_push_consumer *c = owner;
    if (req->code == APG_REQ_GET_CONSUMER_RUNNING_INFO && !apg_rcmd_is_oneway(req)) {
        running_info_answer(io, c, req);
        return;
    }
    if (req->code == APG_REQ_NOTIFY_CONSUMER_IDS_CHANGED && !c->pc_io_stop)
        apg_push_rebalance_all(io, c);
    const char *group = apg_rcmd_ext_get(req, "group");
    if (req->code == APG_REQ_RESET_CONSUMER_CLIENT_OFFSET && !c->pc_io_stop && req->body && group &&
        strcmp(group, c->pc_group) == 0) {
        struct reset_ctx rc = {io, c};
        if (apg_mqmap_parse_i64((const char *)req->body, req->body_len, "offsetTable", reset_one,
                                &rc))
            apg_log_warn("client", "%s: RESET_CONSUMER_CLIENT_OFFSET body not understood",
                         apg_cio_client_id(io));
    }
}

/* ---- CHECK_CLIENT_CONFIG: a SQL92 subscription asked to a broker ---- */

static void check_done(struct pop *op, apg_err_t e, const char *remark)
{
    op->po_err = e;
    snprintf(op->po_remark, sizeof(op->po_remark), "%s", remark ? remark : "");
    apg_cwait_signal(&op->po_wait);
}

static void check_resp(struct apg_cio *io, apg_err_t e, const struct apg_rcmd *resp,
                       const char *errmsg, void *arg)
{
    (void)io;
    if (e != APG_OK)
        check_done(arg, e, errmsg);
    else
        check_done(arg, resp->code == 0 ? APG_OK : APG_EBROKER, resp->remark);
}

static void check_on_route(struct apg_cio *io, struct apg_ctopic *t, apg_err_t e,
                           const char *errmsg, void *arg)
{
    struct pop *op = arg;
    if (e != APG_OK) {
        check_done(op, e, errmsg);
        return;
    }
    const char *addr = NULL;
    for (size_t i = 0; i < t->ct_route.rt_nbrokers && !addr; i++)
        addr = t->ct_route.rt_brokers[i].ba_read;
    if (!addr) {
        check_done(op, APG_ENOTFOUND, "no broker in the topic's route");
        return;
    }
    const struct psub *s = op->po_sub;
    json_t *root =
        json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:b, s:[], s:[], s:I}}", "clientId",
                  apg_cio_client_id(io), "group", op->po_c->pc_group, "subscriptionData", "topic",
                  s->s_topic, "subString", s->s_expr, "expressionType", "SQL92", "classFilterMode",
                  0, "tagsSet", "codeSet", "subVersion", (json_int_t)0);
    char *body = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    if (!body) {
        check_done(op, APG_ENOMEM, "out of memory");
        return;
    }
    struct apg_rcmd req;
    char err[256];
    apg_rcmd_init_request(&req, APG_REQ_CHECK_CLIENT_CONFIG, 0, apg_cio_serialize(io));
    if (apg_cio_call(io, addr, &req, body, strlen(body), 0, check_resp, op, err, sizeof(err)) !=
        APG_OK)
        check_done(op, APG_EIO, err);
    free(body);
}

static void back_resp(struct apg_cio *io, apg_err_t e, const struct apg_rcmd *resp,
                      const char *errmsg, void *arg)
{
    struct pop *op = arg;
    op->po_err = e != APG_OK ? e : resp->code == 0 ? APG_OK : APG_EIO;
    if (e == APG_OK && resp->code != 0)
        apg_log_debug("client", "send back refused: %d %s", resp->code,
                      resp->remark ? resp->remark : "");
    apg_cwait_signal(&op->po_wait);
}

static void pop_back(struct apg_cio *io, struct pop *op)
{
    struct apg_push_consumer *c = op->po_c;
    const apg_message_t *m = op->po_msg;
    struct apg_ctopic *t = apg_cio_topic_find(io, m->m_topic);
    /* The message came from the queue of this topic; any master works, use its broker. */
    const char *addr = NULL;
    for (struct pq *q = c->pc_queues; q && t && t->ct_have && addr == NULL; q = q->q_next)
        if (strcmp(q->q_mq.mq_topic, m->m_topic) == 0 && q->q_mq.mq_queue_id == m->m_queue_id)
            addr = apg_croute_master(&t->ct_route, q->q_mq.mq_broker);
    if (addr == NULL && t && t->ct_have && t->ct_route.rt_nbrokers)
        addr = t->ct_route.rt_brokers[0].ba_master;
    struct apg_rcmd req;
    apg_rcmd_init_request(&req, APG_REQ_CONSUMER_SEND_MSG_BACK, 0, apg_cio_serialize(io));
    char off[24], delay[16], maxr[16];
    snprintf(off, sizeof(off), "%lld", (long long)m->m_commitlog_offset);
    snprintf(delay, sizeof(delay), "%d", op->po_dlq ? -1 : 0);
    snprintf(maxr, sizeof(maxr), "%d", c->pc_conf->max_reconsume);
    const char *origin_topic = apg_msg_prop_get(m, "RETRY_TOPIC");
    apg_rcmd_ext_add(&req, "offset", off);
    apg_rcmd_ext_add(&req, "group", c->pc_group);
    apg_rcmd_ext_add(&req, "delayLevel", delay);
    apg_rcmd_ext_add(&req, "originMsgId", m->m_offset_id);
    apg_rcmd_ext_add(&req, "originTopic", origin_topic ? origin_topic : m->m_topic);
    apg_rcmd_ext_add(&req, "unitMode", "false");
    apg_rcmd_ext_add(&req, "maxReconsumeTimes", maxr);
    char err[256];
    if (addr == NULL ||
        apg_cio_call(io, addr, &req, NULL, 0, 0, back_resp, op, err, sizeof(err)) != APG_OK) {
        op->po_err = APG_EIO;
        apg_cwait_signal(&op->po_wait);
    }
}

static void unreg_all(struct apg_cio *io, struct apg_push_consumer *c, struct flush_wait *fw)
{
    const char *addrs[64];
    size_t n = apg_cio_masters(io, addrs, 64);
    for (size_t i = 0; i < n; i++) {
        struct apg_rcmd req;
        apg_rcmd_init_request(&req, APG_REQ_UNREGISTER_CLIENT, 0, apg_cio_serialize(io));
        apg_rcmd_ext_add(&req, "clientID", apg_cio_client_id(io));
        apg_rcmd_ext_add(&req, "consumerGroup", c->pc_group);
        char err[256];
        fw->fw_pending++;
        if (apg_cio_call(io, addrs[i], &req, NULL, 0, 0, apg_push_flush_resp, fw, err,
                         sizeof(err)) != APG_OK)
            fw->fw_pending--;
    }
}

static void pop_run(struct apg_cio *io, struct apg_cop *o)
{
    struct pop *op = (struct pop *)o;
    struct apg_push_consumer *c = op->po_c;
    if (apg_cio_stopping(io)) {
        op->po_err = APG_ESHUTDOWN;
        apg_cwait_signal(op->po_kind == POP_FLUSH ? &op->po_fw.fw_wait : &op->po_wait);
        return;
    }
    switch (op->po_kind) {
    case POP_START:
        apg_push_rebalance_all(io, c);
        apg_cwait_signal(&op->po_wait);
        break;
    case POP_STOP:
        /* No more pulls; pending ones are ignored when they complete. */
        c->pc_io_stop = true;
        apg_cwait_signal(&op->po_wait);
        break;
    case POP_FLUSH:
        op->po_fw.fw_pending = 1;
        apg_push_offsets_commit_all(io, c, &op->po_fw);
        if (c->pc_conf->message_model == APG_CLUSTERING) {
            /* Release the queues so their final offsets are on record. */
            while (c->pc_queues)
                apg_push_queue_drop(io, c, c->pc_queues, &op->po_fw);
        }
        unreg_all(io, c, &op->po_fw);
        if (--op->po_fw.fw_pending == 0)
            apg_cwait_signal(&op->po_fw.fw_wait);
        break;
    case POP_BACK:
        pop_back(io, op);
        break;
    case POP_CHECK:
        apg_cio_route(io, op->po_sub->s_topic, false, false, check_on_route, op);
        break;
    case POP_RELEASE:
        apg_push_queue_release(io, c, &op->po_mq, op->po_off, NULL, true);
        apg_cwait_signal(&op->po_wait);
        break;
    case POP_ASSIGNED: {
        size_t n = 0;
        for (struct pq *q = c->pc_queues; q; q = q->q_next)
            n++;
        op->po_mqs = apg_malloc((n ? n : 1) * sizeof(apg_mq_t));
        op->po_n = 0;
        for (struct pq *q = c->pc_queues; op->po_mqs && q; q = q->q_next)
            op->po_mqs[op->po_n++] = q->q_mq;
        op->po_err = op->po_mqs ? APG_OK : APG_ENOMEM;
        apg_cwait_signal(&op->po_wait);
        break;
    }
    }
}

apg_err_t apg_push_op_exec(struct apg_push_consumer *c, struct pop *op)
{
    op->po_c = c;
    op->po_op.op_fn = pop_run;
    apg_cwait_init(&op->po_wait, c->pc_conf->spin_us);
    apg_cwait_init(&op->po_fw.fw_wait, c->pc_conf->spin_us);
    apg_err_t e = apg_cio_submit(c->pc_io, &op->po_op);
    if (e == APG_OK) {
        if (op->po_kind == POP_FLUSH) {
            apg_cwait_wait(&op->po_fw.fw_wait);
        } else {
            apg_cwait_wait(&op->po_wait);
            e = op->po_err;
        }
    }
    apg_cwait_destroy(&op->po_wait);
    apg_cwait_destroy(&op->po_fw.fw_wait);
    return e;
}

/* ---- public ---- */

apg_push_consumer_t *apg_push_consumer_new(const apg_conf_t *conf, char *err, size_t errlen)
{
    if (apg_conf_check(conf, true, err, errlen) != APG_OK)
        return NULL;
    if (conf->namesrv == NULL) {
        apg_errf(APG_EINVAL, err, errlen, "no NameServer address given: set namesrvAddr");
        return NULL;
    }
    struct apg_push_consumer *c = apg_calloc(1, sizeof(*c));
    if (c == NULL) {
        apg_errf(APG_ENOMEM, err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&c->pc_mu, NULL);
    pthread_cond_init(&c->pc_cv, NULL);
    c->pc_conf = apg_conf_dup(conf);
    if (c->pc_conf != NULL) {
        c->pc_group = c->pc_conf->consumer_group;
        size_t rl = strlen(c->pc_group) + 8;
        c->pc_retry_topic = apg_malloc(rl);
        if (c->pc_retry_topic)
            snprintf(c->pc_retry_topic, rl, "%%RETRY%%%s", c->pc_group);
        if (c->pc_conf->offset_dir)
            c->pc_offdir = apg_strdup(c->pc_conf->offset_dir);
    }
    if (c->pc_conf == NULL || c->pc_retry_topic == NULL ||
        (c->pc_conf->offset_dir && c->pc_offdir == NULL)) {
        apg_push_consumer_destroy(c);
        apg_errf(APG_ENOMEM, err, errlen, "out of memory");
        return NULL;
    }
    return c;
}

static struct psub *sub_find(struct apg_push_consumer *c, const char *topic)
{
    for (struct psub *s = c->pc_subs; s; s = s->s_next)
        if (strcmp(s->s_topic, topic) == 0)
            return s;
    return NULL;
}

/* Sets topic's subscription: a tag expression, or SQL92 when sql. */
static apg_err_t sub_set(apg_push_consumer_t *c, const char *topic, const char *expr, bool sql,
                         char *err, size_t errlen)
{
    if (c->pc_started)
        return apg_errf(APG_EBUSY, err, errlen, "subscribe before apg_push_consumer_start()");
    if (topic == NULL || topic[0] == '\0' || strlen(topic) > 127)
        return apg_errf(APG_EINVAL, err, errlen, "topic name must have 1..127 characters");
    struct apg_tagexpr te;
    if (sql) {
        if (expr == NULL)
            return apg_errf(APG_EINVAL, err, errlen, "the SQL92 expression is NULL");
        apg_err_t pe = apg_client_sql92_check(expr, err, errlen);
        if (pe != APG_OK)
            return pe;
        memset(&te, 0, sizeof(te));
    } else {
        if (expr == NULL || expr[0] == '\0')
            expr = "*";
        apg_err_t pe = apg_tagexpr_parse(expr, strlen(expr), &te, err, errlen);
        if (pe != APG_OK)
            return pe;
    }
    struct psub *s = sub_find(c, topic);
    bool fresh = s == NULL;
    if (fresh) {
        s = apg_calloc(1, sizeof(*s));
        if (s == NULL || (s->s_topic = apg_strdup(topic)) == NULL) {
            apg_free(s);
            return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
        }
    } else {
        apg_free(s->s_expr);
    }
    s->s_expr = apg_strdup(expr);
    s->s_sql = sql;
    s->s_te = te;
    if (s->s_expr == NULL) {
        apg_free(s->s_expr);
        s->s_expr = NULL;
        memset(&s->s_te, 0, sizeof(s->s_te));
        if (fresh) {
            apg_free(s->s_topic);
            apg_free(s);
        }
        return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    }
    if (fresh) {
        s->s_owner = c;
        s->s_next = c->pc_subs;
        c->pc_subs = s;
    }
    return APG_OK;
}

apg_err_t apg_push_consumer_subscribe(apg_push_consumer_t *c, const char *topic, const char *expr,
                                      char *err, size_t errlen)
{
    return sub_set(c, topic, expr, false, err, errlen);
}

apg_err_t apg_push_consumer_subscribe_sql92(apg_push_consumer_t *c, const char *topic,
                                            const char *sql, char *err, size_t errlen)
{
    return sub_set(c, topic, sql, true, err, errlen);
}

apg_err_t apg_push_consumer_start(apg_push_consumer_t *c, apg_consume_cb cb, void *arg, char *err,
                                  size_t errlen)
{
    if (cb == NULL)
        return apg_errf(APG_EINVAL, err, errlen, "listener is NULL");
    if (c->pc_started)
        return apg_errf(APG_EBUSY, err, errlen, "consumer already started");
    if (c->pc_subs == NULL)
        return apg_errf(APG_EINVAL, err, errlen, "subscribe to at least one topic before start");
    /* Clustering consumers also take their group's retry topic (send-back). */
    if (c->pc_conf->message_model == APG_CLUSTERING && sub_find(c, c->pc_retry_topic) == NULL) {
        apg_err_t e = apg_push_consumer_subscribe(c, c->pc_retry_topic, "*", err, errlen);
        if (e != APG_OK)
            return e;
    }
    c->pc_cb = cb;
    c->pc_arg = arg;
    struct apg_cio_conf ic = {
        .namesrv = c->pc_conf->namesrv,
        .instance = c->pc_conf->instance,
        .serialize = c->pc_conf->binary_header ? APG_SER_ROCKETMQ : APG_SER_JSON,
        .route_refresh_ms = c->pc_conf->route_refresh_ms,
        .heartbeat_ms = c->pc_conf->heartbeat_ms,
        .timeout_ms = c->pc_conf->timeout_ms,
        .hb_body = push_hb_body,
        .on_tick = push_tick,
        .on_server_req = push_server_req,
        .owner = c,
        .conf = c->pc_conf,
    };
    int64_t now = apg_now_ms();
    c->pc_start_ms = apg_wall_ms();
    apg_push_stats_roll(c, now);
    c->pc_next_rebalance = now + c->pc_conf->rebalance_ms;
    c->pc_next_commit = now + c->pc_conf->commit_interval_ms;
    c->pc_next_lock = now + c->pc_conf->lock_interval_ms;
    c->pc_io = apg_cio_new(&ic, err, errlen);
    if (c->pc_io == NULL)
        return APG_EIO;
    /* As RocketMQ's client does, a SQL92 subscription is checked with a
     * broker of its topic first: a refusal fails the start. */
    for (struct psub *s = c->pc_subs; s; s = s->s_next) {
        if (!s->s_sql)
            continue;
        struct pop op;
        memset(&op, 0, sizeof(op));
        op.po_kind = POP_CHECK;
        op.po_sub = s;
        apg_err_t e = apg_push_op_exec(c, &op);
        if (e != APG_OK) {
            apg_cio_free(c->pc_io);
            c->pc_io = NULL;
            return apg_errf(e, err, errlen, "SQL92 subscription to '%s' refused: %s", s->s_topic,
                            op.po_remark[0] ? op.po_remark : apg_strerror(e));
        }
    }
    if (c->pc_conf->message_model == APG_BROADCASTING) {
        if (c->pc_offdir == NULL) {
            const char *home = getenv("HOME");
            char dir[1024];
            snprintf(dir, sizeof(dir), "%s/.apogee_offsets/%s", home ? home : "/tmp",
                     apg_cio_client_id(c->pc_io));
            c->pc_offdir = apg_strdup(dir);
        }
        if (c->pc_offdir)
            apg_push_offsets_load(c);
    }
    c->pc_workers = apg_calloc((size_t)c->pc_conf->consume_threads, sizeof(pthread_t));
    for (int i = 0; c->pc_workers && i < c->pc_conf->consume_threads; i++) {
        if (pthread_create(&c->pc_workers[i], NULL, apg_push_worker_main, c) != 0)
            break;
        c->pc_nworkers++;
    }
    if (c->pc_nworkers == 0) {
        apg_cio_free(c->pc_io);
        c->pc_io = NULL;
        return apg_errf(APG_ENOMEM, err, errlen, "cannot start consumer worker threads");
    }
    c->pc_started = true;
    struct pop op;
    memset(&op, 0, sizeof(op));
    op.po_kind = POP_START;
    apg_push_op_exec(c, &op);
    return APG_OK;
}

apg_err_t apg_push_consumer_assigned(apg_push_consumer_t *c, apg_mq_t **mqs, size_t *n)
{
    *mqs = NULL;
    *n = 0;
    if (c->pc_io == NULL)
        return APG_OK;
    struct pop op;
    memset(&op, 0, sizeof(op));
    op.po_kind = POP_ASSIGNED;
    apg_err_t e = apg_push_op_exec(c, &op);
    if (e == APG_OK) {
        *mqs = op.po_mqs;
        *n = op.po_n;
    }
    return e;
}

const char *apg_push_consumer_client_id(const apg_push_consumer_t *c)
{
    return c->pc_io ? apg_cio_client_id(c->pc_io) : "";
}

void apg_push_consumer_destroy(apg_push_consumer_t *c)
{
    if (c == NULL)
        return;
    if (c->pc_io) {
        struct pop op;
        memset(&op, 0, sizeof(op));
        op.po_kind = POP_STOP;
        apg_push_op_exec(c, &op);
        pthread_mutex_lock(&c->pc_mu);
        c->pc_stop = true;
        pthread_cond_broadcast(&c->pc_cv);
        pthread_mutex_unlock(&c->pc_mu);
        for (int i = 0; i < c->pc_nworkers; i++)
            pthread_join(c->pc_workers[i], NULL);
        memset(&op, 0, sizeof(op));
        op.po_kind = POP_FLUSH;
        apg_push_op_exec(c, &op);
        apg_cio_free(c->pc_io); /* pending pulls complete with ESHUTDOWN */
        c->pc_io = NULL;
    }
    /* Tasks never consumed, then the queues (broadcasting keeps them listed). */
    for (struct ptask *lists[2] = {c->pc_ready, c->pc_delayed}, **l = lists; l < lists + 2; l++) {
        for (struct ptask *t = *l, *n; t; t = n) {
            n = t->t_next;
            apg_push_pq_release_locked(t->t_q);
            apg_push_task_free(t);
        }
    }
    for (struct pq *q = c->pc_queues, *n; q; q = n) {
        n = q->q_next;
        apg_push_pq_release_locked(q);
    }
    for (struct psub *s = c->pc_subs, *n; s; s = n) {
        n = s->s_next;
        apg_free(s->s_topic);
        apg_free(s->s_expr);
        apg_free(s);
    }
    apg_free(c->pc_workers);
    apg_free(c->pc_file);
    apg_free(c->pc_releasing);
    pthread_mutex_destroy(&c->pc_mu);
    pthread_cond_destroy(&c->pc_cv);
    apg_conf_destroy(c->pc_conf);
    apg_free(c->pc_offdir);
    apg_free(c->pc_retry_topic);
    apg_free(c);
}

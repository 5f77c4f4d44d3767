/* Pull consumer: queue listing, long-polling pulls and offset commits.
 *
 * Every public call fills a stack op (struct cop) and waits for the I/O
 * thread (io.c) to answer, like the producer's sync send. The I/O thread
 * only moves bytes: a pull's body is copied into the op and decoded on the
 * caller's thread (records, decompression, tag filter), so decoding cost
 * scales with the number of calling threads.
 *
 * Committed offsets live in a small table guarded by c_mu (callers write it,
 * the I/O thread reads it). Every commit_interval_ms the I/O thread sends the
 * dirty entries as oneway UPDATE_CONSUMER_OFFSET to the queue's master, and
 * pulls piggy-back the current offset (PullSysFlag COMMIT_OFFSET). Destroy
 * sends the dirty entries as ordinary requests and waits for the answers, so
 * a clean shutdown loses no commit. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/client_int.h"
#include "common/mem.h"
#include "protocol/rcode.h"
#include "protocol/remoting.h"

#define PULL_FLAG_COMMIT 0x1
#define PULL_FLAG_SUSPEND 0x2
#define PULL_FLAG_SUBSCRIPTION 0x4

struct offent {
    apg_mq_t oe_mq;
    int64_t oe_offset;
    bool oe_dirty;
};

struct apg_pull_consumer {
    struct apg_cio *c_io;
    const char *c_group;     /* consumerGroup of c_conf */
    struct apg_conf *c_conf; /* a private copy, never changed */
    pthread_mutex_t c_mu;    /* guards c_offs */
    struct offent *c_offs;
    size_t c_noffs;
    int64_t c_next_commit; /* I/O thread */
};

enum { OP_QUEUES, OP_PULL, OP_QUERY, OP_MAX, OP_MIN, OP_FLUSH };

struct cop {
    struct apg_cop co_op;
    struct apg_pull_consumer *co_c;
    int co_kind;
    const apg_mq_t *co_mq;
    const char *co_topic;
    const char *co_expr;
    bool co_sql; /* co_expr is SQL92 */
    int64_t co_offset;
    int co_max;
    int co_suspend;
    int co_pending; /* OP_FLUSH: answers still expected */
    /* results */
    apg_err_t co_err;
    char co_errmsg[512];
    int co_code;
    int64_t co_next, co_min, co_maxoff, co_value;
    uint8_t *co_body;
    size_t co_blen;
    apg_mq_t *co_mqs;
    size_t co_nmqs;
    struct apg_cwait co_wait;
};

void apg_mq_list_free(apg_mq_t *mqs)
{
    apg_free(mqs);
}

void apg_pull_result_clear(apg_pull_result_t *res)
{
    for (size_t i = 0; i < res->pr_count; i++)
        apg_message_free(res->pr_msgs[i]);
    apg_free(res->pr_msgs);
    res->pr_msgs = NULL;
    res->pr_count = 0;
}

static apg_err_t consumer_hb_body(struct apg_cio *io, void *owner, struct apg_buf *out)
{
    struct apg_pull_consumer *c = owner;
    json_t *root = json_pack("{s:s, s:[], s:[{s:s, s:s, s:s, s:s, s:[], s:b}]}", "clientID",
                             apg_cio_client_id(io), "producerDataSet", "consumerDataSet",
                             "groupName", c->c_group, "consumeType", "CONSUME_ACTIVELY",
                             "messageModel", "CLUSTERING", "consumeFromWhere",
                             "CONSUME_FROM_LAST_OFFSET", "subscriptionDataSet", "unitMode", 0);
    if (root == NULL)
        return APG_ENOMEM;
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (s == NULL)
        return APG_ENOMEM;
    apg_err_t e = apg_buf_append_str(out, s);
    free(s);
    return e;
}

/* ---- offset commits (I/O thread) ---- */

static void commit_resp(struct apg_cio *io, apg_err_t e, const struct apg_rcmd *resp,
                        const char *errmsg, void *arg)
{
    struct cop *op = arg;
    if (--op->co_pending == 0)
        apg_cwait_signal(&op->co_wait);
}

struct apg_ccommit *apg_ccommit_new(const char *group, const apg_mq_t *mq, int64_t offset,
                                    apg_cio_cb done, void *arg)
{
    struct apg_ccommit *cm = apg_calloc(1, sizeof(*cm));
    if (cm == NULL)
        return NULL;
    cm->cm_group = group;
    cm->cm_mq = *mq;
    cm->cm_offset = offset;
    cm->cm_done = done;
    cm->cm_arg = arg;
    return cm;
}

static void commit_on_route(struct apg_cio *io, struct apg_ctopic *t, apg_err_t e,
                            const char *errmsg, void *arg)
{
    struct apg_ccommit *cm = arg;
    const char *addr = e == APG_OK ? apg_croute_reader(&t->ct_route, cm->cm_mq.mq_broker) : NULL;
    char err[256] = "no master for the queue's broker";
    bool sent = false;
    if (addr != NULL) {
        struct apg_rcmd req;
        apg_rcmd_init_request(&req, APG_REQ_UPDATE_CONSUMER_OFFSET, 0, apg_cio_serialize(io));
        char qid[16], off[24];
        snprintf(qid, sizeof(qid), "%d", cm->cm_mq.mq_queue_id);
        snprintf(off, sizeof(off), "%lld", (long long)cm->cm_offset);
        apg_rcmd_ext_add(&req, "consumerGroup", cm->cm_group);
        apg_rcmd_ext_add(&req, "topic", cm->cm_mq.mq_topic);
        apg_rcmd_ext_add(&req, "queueId", qid);
        apg_rcmd_ext_add(&req, "commitOffset", off);
        sent = apg_cio_call(io, addr, &req, NULL, 0, 0, cm->cm_done, cm->cm_arg, err,
                            sizeof(err)) == APG_OK;
    }
    if (cm->cm_done && !sent)
        cm->cm_done(io, e != APG_OK ? e : APG_EIO, NULL, err, cm->cm_arg);
    apg_free(cm);
}

void apg_ccommit_start(struct apg_cio *io, struct apg_ccommit *cm)
{
    apg_cio_route(io, cm->cm_mq.mq_topic, false, false, commit_on_route, cm);
}

static void commit_dirty(struct apg_cio *io, struct apg_pull_consumer *c, struct cop *flush)
{
    pthread_mutex_lock(&c->c_mu);
    size_t n = 0;
    for (size_t i = 0; i < c->c_noffs; i++)
        if (c->c_offs[i].oe_dirty)
            n++;
    struct apg_ccommit **list = apg_calloc(n ? n : 1, sizeof(*list));
    size_t k = 0;
    for (size_t i = 0; list && i < c->c_noffs; i++) {
        if (!c->c_offs[i].oe_dirty)
            continue;
        struct apg_ccommit *cx =
            apg_ccommit_new(c->c_group, &c->c_offs[i].oe_mq, c->c_offs[i].oe_offset,
                            flush ? commit_resp : NULL, flush);
        if (cx == NULL)
            continue;
        c->c_offs[i].oe_dirty = false;
        list[k++] = cx;
    }
    pthread_mutex_unlock(&c->c_mu);
    if (flush)
        flush->co_pending = (int)k + 1;
    for (size_t i = 0; i < k; i++)
        apg_ccommit_start(io, list[i]);
    apg_free(list);
    if (flush && --flush->co_pending == 0)
        apg_cwait_signal(&flush->co_wait);
}

static void consumer_tick(struct apg_cio *io, void *owner)
{
    struct apg_pull_consumer *c = owner;
    int64_t now = apg_now_ms();
    if (now < c->c_next_commit)
        return;
    c->c_next_commit = now + c->c_conf->commit_interval_ms;
    commit_dirty(io, c, NULL);
}

/* ---- ops (I/O thread) ---- */

static void cop_done(struct cop *op, apg_err_t e, const char *msg)
{
    e = apg_err_public(e);
    op->co_err = e;
    if (e != APG_OK)
        snprintf(op->co_errmsg, sizeof(op->co_errmsg), "%s", msg ? msg : apg_strerror(e));
    apg_cwait_signal(&op->co_wait);
}

static void cop_resp(struct apg_cio *io, apg_err_t e, const struct apg_rcmd *resp,
                     const char *errmsg, void *arg)
{
    struct cop *op = arg;
    if (e != APG_OK) {
        cop_done(op, e, errmsg);
        return;
    }
    op->co_code = resp->code;
    char msg[512];
    if (op->co_kind == OP_PULL) {
        apg_rcmd_ext_i64(resp, "nextBeginOffset", &op->co_next);
        apg_rcmd_ext_i64(resp, "minOffset", &op->co_min);
        apg_rcmd_ext_i64(resp, "maxOffset", &op->co_maxoff);
        if (resp->code == APG_RESP_SUCCESS && resp->body_len) {
            op->co_body = apg_malloc(resp->body_len);
            if (op->co_body == NULL) {
                cop_done(op, APG_ENOMEM, "out of memory");
                return;
            }
            memcpy(op->co_body, resp->body, resp->body_len);
            op->co_blen = resp->body_len;
        }
        if (resp->code != APG_RESP_SUCCESS && resp->code != APG_RESP_PULL_NOT_FOUND &&
            resp->code != APG_RESP_PULL_RETRY_IMMEDIATELY &&
            resp->code != APG_RESP_PULL_OFFSET_MOVED) {
            const char *name = apg_resp_code_name(resp->code);
            snprintf(msg, sizeof(msg), "pull from %s:%d refused: %d %s: %s", op->co_mq->mq_broker,
                     op->co_mq->mq_queue_id, resp->code, name ? name : "?",
                     resp->remark ? resp->remark : "");
            cop_done(op, APG_EBROKER, msg);
            return;
        }
        cop_done(op, APG_OK, NULL);
        return;
    }
    if (resp->code == APG_RESP_QUERY_NOT_FOUND && op->co_kind == OP_QUERY) {
        cop_done(op, APG_ENOTFOUND, "the broker has no committed offset for this group and queue");
        return;
    }
    if (resp->code != 0 || apg_rcmd_ext_i64(resp, "offset", &op->co_value) != APG_OK) {
        const char *name = apg_resp_code_name(resp->code);
        snprintf(msg, sizeof(msg), "offset request to %s refused: %d %s: %s", op->co_mq->mq_broker,
                 resp->code, name ? name : "?", resp->remark ? resp->remark : "");
        cop_done(op, resp->code != 0 ? APG_EBROKER : APG_EPROTO, msg);
        return;
    }
    cop_done(op, APG_OK, NULL);
}

/* Builds op's request and sends it: through the loop thread to addr
 * (apg_cio_call), or written by the calling thread on cc (direct; cc's
 * reference is always dropped). Errors: nothing was sent, errmsg says why. */
static apg_err_t cop_send(struct apg_cio *io, struct cop *op, const char *addr,
                          struct apg_cconn *cc, char *errmsg, size_t errlen)
{
    struct apg_pull_consumer *c = op->co_c;
    struct apg_rcmd req;
    char qid[16], off[24], max[16], flag[16], commit[24], susp[24], subv[24];
    snprintf(qid, sizeof(qid), "%d", op->co_mq->mq_queue_id);
    int timeout = c->c_conf->timeout_ms;
    int code = op->co_kind == OP_PULL    ? APG_REQ_PULL_MESSAGE
               : op->co_kind == OP_QUERY ? APG_REQ_QUERY_CONSUMER_OFFSET
               : op->co_kind == OP_MAX   ? APG_REQ_GET_MAX_OFFSET
                                         : APG_REQ_GET_MIN_OFFSET;
    apg_rcmd_init_request(&req, code, 0, apg_cio_serialize(io));
    if (op->co_kind == OP_PULL || op->co_kind == OP_QUERY)
        apg_rcmd_ext_add(&req, "consumerGroup", c->c_group);
    apg_rcmd_ext_add(&req, "topic", op->co_mq->mq_topic);
    apg_rcmd_ext_add(&req, "queueId", qid);
    if (op->co_kind == OP_PULL) {
        int64_t committed = -1;
        pthread_mutex_lock(&c->c_mu);
        for (size_t i = 0; i < c->c_noffs; i++)
            if (c->c_offs[i].oe_mq.mq_queue_id == op->co_mq->mq_queue_id &&
                strcmp(c->c_offs[i].oe_mq.mq_topic, op->co_mq->mq_topic) == 0 &&
                strcmp(c->c_offs[i].oe_mq.mq_broker, op->co_mq->mq_broker) == 0)
                committed = c->c_offs[i].oe_offset;
        pthread_mutex_unlock(&c->c_mu);
        int sysflag = PULL_FLAG_SUBSCRIPTION | (op->co_suspend > 0 ? PULL_FLAG_SUSPEND : 0) |
                      (committed >= 0 ? PULL_FLAG_COMMIT : 0);
        snprintf(off, sizeof(off), "%lld", (long long)op->co_offset);
        snprintf(max, sizeof(max), "%d", op->co_max);
        snprintf(flag, sizeof(flag), "%d", sysflag);
        snprintf(commit, sizeof(commit), "%lld", (long long)(committed >= 0 ? committed : 0));
        snprintf(susp, sizeof(susp), "%d", op->co_suspend > 0 ? op->co_suspend : 0);
        snprintf(subv, sizeof(subv), "%lld", (long long)time(NULL) * 1000);
        apg_rcmd_ext_add(&req, "queueOffset", off);
        apg_rcmd_ext_add(&req, "maxMsgNums", max);
        apg_rcmd_ext_add(&req, "sysFlag", flag);
        apg_rcmd_ext_add(&req, "commitOffset", commit);
        apg_rcmd_ext_add(&req, "suspendTimeoutMillis", susp);
        apg_rcmd_ext_add(&req, "subscription", op->co_expr);
        apg_rcmd_ext_add(&req, "subVersion", subv);
        apg_rcmd_ext_add(&req, "expressionType", op->co_sql ? "SQL92" : "TAG");
        timeout += op->co_suspend > 0 ? op->co_suspend : 0;
    }
    if (cc != NULL) {
        apg_err_t e =
            apg_cio_direct_send(io, cc, &req, NULL, 0, apg_now_ms() + timeout, cop_resp, op, false);
        if (e != APG_OK)
            snprintf(errmsg, errlen, "%s", apg_strerror(e));
        return e;
    }
    return apg_cio_call(io, addr, &req, NULL, 0, timeout, cop_resp, op, errmsg, errlen);
}

static void cop_on_route(struct apg_cio *io, struct apg_ctopic *t, apg_err_t e, const char *errmsg,
                         void *arg)
{
    struct cop *op = arg;
    if (e != APG_OK) {
        cop_done(op, e, errmsg);
        return;
    }
    const struct apg_croute *rt = &t->ct_route;
    if (op->co_kind == OP_QUEUES) {
        op->co_mqs = apg_malloc((rt->rt_nrq ? rt->rt_nrq : 1) * sizeof(apg_mq_t));
        if (op->co_mqs == NULL) {
            cop_done(op, APG_ENOMEM, "out of memory");
            return;
        }
        memcpy(op->co_mqs, rt->rt_rq, rt->rt_nrq * sizeof(apg_mq_t));
        op->co_nmqs = rt->rt_nrq;
        cop_done(op, APG_OK, NULL);
        return;
    }
    char msg[512];
    const char *addr = apg_croute_reader(rt, op->co_mq->mq_broker);
    if (addr == NULL) {
        snprintf(msg, sizeof(msg), "broker '%s' of topic '%s' has no address in the route",
                 op->co_mq->mq_broker, op->co_mq->mq_topic);
        cop_done(op, APG_ENOTFOUND, msg);
        return;
    }
    apg_err_t se = cop_send(io, op, addr, NULL, msg, sizeof(msg));
    if (se != APG_OK)
        cop_done(op, se, msg);
}

static void cop_run(struct apg_cio *io, struct apg_cop *o)
{
    struct cop *op = (struct cop *)o;
    if (apg_cio_stopping(io)) {
        cop_done(op, APG_ESHUTDOWN, "consumer is shutting down");
        return;
    }
    if (op->co_kind == OP_FLUSH) {
        commit_dirty(io, op->co_c, op);
        return;
    }
    apg_cio_route(io, op->co_topic, false, false, cop_on_route, op);
}

static apg_err_t cop_exec(struct apg_pull_consumer *c, struct cop *op, char *err, size_t errlen)
{
    op->co_c = c;
    op->co_op.op_fn = cop_run;
    if (op->co_mq != NULL)
        op->co_topic = op->co_mq->mq_topic;
    apg_cwait_init(&op->co_wait, c->c_conf->spin_us);
    apg_err_t e = APG_EIO;
    /* Pulls and offset requests of a known queue: written by this thread
     * when the route is cached and the connection up (no hop through the
     * loop thread; the answer still arrives there). */
    if (op->co_mq != NULL && op->co_kind != OP_FLUSH && op->co_kind != OP_QUEUES) {
        struct apg_cconn *cc = apg_cio_direct_conn(c->c_io, op->co_topic, op->co_mq->mq_broker);
        char msg[256];
        if (cc != NULL)
            e = cop_send(c->c_io, op, NULL, cc, msg, sizeof(msg));
    }
    if (e != APG_OK)
        e = apg_cio_submit(c->c_io, &op->co_op);
    if (e == APG_OK) {
        apg_cwait_wait(&op->co_wait);
        e = op->co_err;
        if (e != APG_OK)
            apg_errf(e, err, errlen, "%s", op->co_errmsg);
    } else {
        apg_errf(e, err, errlen, "consumer is shutting down");
    }
    apg_cwait_destroy(&op->co_wait);
    return e;
}

/* ---- public ---- */

apg_pull_consumer_t *apg_pull_consumer_new(const apg_conf_t *conf, char *err, size_t errlen)
{
    if (apg_conf_check(conf, true, err, errlen) != APG_OK)
        return NULL;
    struct apg_pull_consumer *c = apg_calloc(1, sizeof(*c));
    if (c == NULL || (c->c_conf = apg_conf_dup(conf)) == NULL) {
        apg_free(c);
        apg_errf(APG_ENOMEM, err, errlen, "out of memory");
        return NULL;
    }
    c->c_group = c->c_conf->consumer_group;
    pthread_mutex_init(&c->c_mu, NULL);
    c->c_next_commit = apg_now_ms() + c->c_conf->commit_interval_ms;
    struct apg_cio_conf ic = {
        .namesrv = c->c_conf->namesrv,
        .instance = c->c_conf->instance,
        .serialize = c->c_conf->binary_header ? APG_SER_ROCKETMQ : APG_SER_JSON,
        .route_refresh_ms = c->c_conf->route_refresh_ms,
        .heartbeat_ms = c->c_conf->heartbeat_ms,
        .timeout_ms = c->c_conf->timeout_ms,
        .hb_body = consumer_hb_body,
        .on_tick = consumer_tick,
        .owner = c,
        .conf = c->c_conf,
    };
    c->c_io = apg_cio_new(&ic, err, errlen);
    if (c->c_io == NULL) {
        pthread_mutex_destroy(&c->c_mu);
        apg_conf_destroy(c->c_conf);
        apg_free(c);
        return NULL;
    }
    return c;
}

void apg_pull_consumer_destroy(apg_pull_consumer_t *c)
{
    if (c == NULL)
        return;
    struct cop op;
    memset(&op, 0, sizeof(op));
    op.co_kind = OP_FLUSH;
    char err[256];
    cop_exec(c, &op, err, sizeof(err));
    apg_cio_free(c->c_io);
    pthread_mutex_destroy(&c->c_mu);
    apg_free(c->c_offs);
    apg_conf_destroy(c->c_conf);
    apg_free(c);
}

apg_err_t apg_pull_consumer_queues(apg_pull_consumer_t *c, const char *topic, apg_mq_t **mqs,
                                   size_t *n, char *err, size_t errlen)
{
    struct cop op;
    memset(&op, 0, sizeof(op));
    op.co_kind = OP_QUEUES;
    op.co_topic = topic;
    apg_err_t e = cop_exec(c, &op, err, errlen);
    if (e == APG_OK) {
        *mqs = op.co_mqs;
        *n = op.co_nmqs;
    }
    return e;
}

struct pull_sink {
    apg_pull_result_t *ps_res;
    struct apg_tagexpr *ps_te;
    size_t ps_cap;
};

static apg_err_t pull_collect(apg_message_t *m, void *arg)
{
    struct pull_sink *s = arg;
    const char *tag = apg_message_tags(m);
    if (s->ps_te && !apg_tagexpr_match_tag(s->ps_te, tag, tag ? strlen(tag) : 0)) {
        apg_message_free(m);
        return APG_OK;
    }
    apg_pull_result_t *r = s->ps_res;
    if (r->pr_count == s->ps_cap) {
        size_t cap = s->ps_cap ? s->ps_cap * 2 : 32;
        apg_message_t **nm = apg_realloc(r->pr_msgs, cap * sizeof(*nm));
        if (nm == NULL) {
            apg_message_free(m);
            return APG_ENOMEM;
        }
        r->pr_msgs = nm;
        s->ps_cap = cap;
    }
    r->pr_msgs[r->pr_count++] = m;
    return APG_OK;
}

apg_err_t apg_client_sql92_check(const char *sql, char *err, size_t errlen)
{
    struct apg_sql92 *q = apg_malloc(sizeof(*q));
    if (!q)
        return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    apg_err_t e = apg_sql92_compile(sql, strlen(sql), q, err, errlen);
    apg_free(q);
    return e;
}

static apg_err_t pull_expr(apg_pull_consumer_t *c, const apg_mq_t *mq, const char *expr, bool sql,
                           int64_t offset, int max_nums, int suspend_ms, apg_pull_result_t *res,
                           char *err, size_t errlen)
{
    memset(res, 0, sizeof(*res));
    struct apg_tagexpr te;
    apg_err_t pe = sql ? apg_client_sql92_check(expr, err, errlen)
                       : apg_tagexpr_parse(expr, expr ? strlen(expr) : 0, &te, err, errlen);
    if (pe != APG_OK)
        return pe;
    struct cop op;
    memset(&op, 0, sizeof(op));
    op.co_kind = OP_PULL;
    op.co_mq = mq;
    op.co_expr = expr ? expr : "*";
    op.co_sql = sql;
    op.co_offset = offset;
    op.co_max = max_nums > 0 ? max_nums : 32;
    op.co_suspend = suspend_ms;
    apg_err_t e = cop_exec(c, &op, err, errlen);
    res->pr_broker_code = op.co_code;
    if (e == APG_OK) {
        res->pr_next_offset = op.co_next;
        res->pr_min_offset = op.co_min;
        res->pr_max_offset = op.co_maxoff;
        switch (op.co_code) {
        case APG_RESP_SUCCESS: {
            res->pr_status = APG_PULL_FOUND;
            struct pull_sink s = {res, sql ? NULL : &te, 0};
            e = apg_msg_decode_records(op.co_body, op.co_blen, pull_collect, &s, err, errlen);
            if (e != APG_OK) {
                e = apg_err_public(e);
                apg_pull_result_clear(res);
            } else if (res->pr_count == 0)
                res->pr_status = APG_PULL_NO_MATCHED_MSG;
            break;
        }
        case APG_RESP_PULL_NOT_FOUND:
            res->pr_status = APG_PULL_NO_NEW_MSG;
            break;
        case APG_RESP_PULL_RETRY_IMMEDIATELY:
            res->pr_status = APG_PULL_NO_MATCHED_MSG;
            break;
        default:
            res->pr_status = APG_PULL_OFFSET_ILLEGAL;
        }
    }
    apg_free(op.co_body);
    return e;
}

apg_err_t apg_pull_consumer_pull(apg_pull_consumer_t *c, const apg_mq_t *mq, const char *expr,
                                 int64_t offset, int max_nums, int suspend_ms,
                                 apg_pull_result_t *res, char *err, size_t errlen)
{
    return pull_expr(c, mq, expr, false, offset, max_nums, suspend_ms, res, err, errlen);
}

apg_err_t apg_pull_consumer_pull_sql92(apg_pull_consumer_t *c, const apg_mq_t *mq, const char *sql,
                                       int64_t offset, int max_nums, int suspend_ms,
                                       apg_pull_result_t *res, char *err, size_t errlen)
{
    if (sql == NULL) {
        memset(res, 0, sizeof(*res));
        return apg_errf(APG_EINVAL, err, errlen, "the SQL92 expression is NULL");
    }
    return pull_expr(c, mq, sql, true, offset, max_nums, suspend_ms, res, err, errlen);
}

apg_err_t apg_pull_consumer_commit(apg_pull_consumer_t *c, const apg_mq_t *mq, int64_t offset)
{
    pthread_mutex_lock(&c->c_mu);
    for (size_t i = 0; i < c->c_noffs; i++) {
        struct offent *oe = &c->c_offs[i];
        if (oe->oe_mq.mq_queue_id == mq->mq_queue_id &&
            strcmp(oe->oe_mq.mq_topic, mq->mq_topic) == 0 &&
            strcmp(oe->oe_mq.mq_broker, mq->mq_broker) == 0) {
            if (oe->oe_offset != offset)
                oe->oe_dirty = true;
            oe->oe_offset = offset;
            pthread_mutex_unlock(&c->c_mu);
            return APG_OK;
        }
    }
    struct offent *no = apg_realloc(c->c_offs, (c->c_noffs + 1) * sizeof(*no));
    if (no == NULL) {
        pthread_mutex_unlock(&c->c_mu);
        return APG_ENOMEM;
    }
    c->c_offs = no;
    no[c->c_noffs].oe_mq = *mq;
    no[c->c_noffs].oe_offset = offset;
    no[c->c_noffs].oe_dirty = true;
    c->c_noffs++;
    pthread_mutex_unlock(&c->c_mu);
    return APG_OK;
}

static apg_err_t offset_op(apg_pull_consumer_t *c, int kind, const apg_mq_t *mq, int64_t *offset,
                           char *err, size_t errlen)
{
    struct cop op;
    memset(&op, 0, sizeof(op));
    op.co_kind = kind;
    op.co_mq = mq;
    apg_err_t e = cop_exec(c, &op, err, errlen);
    if (e == APG_OK)
        *offset = op.co_value;
    return e;
}

apg_err_t apg_pull_consumer_committed(apg_pull_consumer_t *c, const apg_mq_t *mq, int64_t *offset,
                                      char *err, size_t errlen)
{
    return offset_op(c, OP_QUERY, mq, offset, err, errlen);
}

apg_err_t apg_pull_consumer_max_offset(apg_pull_consumer_t *c, const apg_mq_t *mq, int64_t *offset,
                                       char *err, size_t errlen)
{
    return offset_op(c, OP_MAX, mq, offset, err, errlen);
}

apg_err_t apg_pull_consumer_min_offset(apg_pull_consumer_t *c, const apg_mq_t *mq, int64_t *offset,
                                       char *err, size_t errlen)
{
    return offset_op(c, OP_MIN, mq, offset, err, errlen);
}

apg_err_t apg_pull_consumer_query_by_key(apg_pull_consumer_t *c, const char *topic, const char *key,
                                         int max_nums, int64_t begin_ms, int64_t end_ms,
                                         apg_message_t ***msgs, size_t *n, char *err, size_t errlen)
{
    return apg_client_query(c->c_io, c->c_conf->timeout_ms, c->c_conf->spin_us, topic, key, false,
                            max_nums, begin_ms, end_ms, msgs, n, err, errlen);
}

apg_err_t apg_pull_consumer_lookup_unique(apg_pull_consumer_t *c, const char *topic,
                                          const char *msg_id, apg_message_t **msg, char *err,
                                          size_t errlen)
{
    apg_message_t **v;
    size_t n;
    *msg = NULL;
    apg_err_t e = apg_client_query(c->c_io, c->c_conf->timeout_ms, c->c_conf->spin_us, topic,
                                   msg_id, true, 32, 0, INT64_MAX, &v, &n, err, errlen);
    if (e != APG_OK)
        return e;
    /* Several copies (a resend of the same message): the oldest. */
    *msg = v[n - 1];
    v[n - 1] = NULL;
    apg_message_list_free(v, n);
    return APG_OK;
}

void apg_message_list_free(apg_message_t **msgs, size_t n)
{
    if (msgs == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        apg_message_free(msgs[i]);
    apg_free(msgs);
}

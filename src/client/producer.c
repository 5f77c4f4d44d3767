/* Producer: sync, async, oneway, ordered, selected and batch sends.
 *
 * The calling thread does the CPU work: it validates the message, sets its
 * UNIQ_KEY, encodes the property string, compresses a large body and copies
 * everything into a send op (struct psend). When the topic's route is
 * cached and the broker connection is up, the calling thread also picks the
 * queue and writes SEND_MESSAGE_V2 (or SEND_BATCH_MESSAGE) itself
 * (psend_direct, io.c's direct sends); otherwise the op travels to the
 * instance's I/O thread, which looks up the route first. Either way the
 * answer, timeouts and retries are handled on the I/O thread.
 *
 * Ownership: the caller's message is only borrowed; after the hand-over the
 * op owns copies. A sync or oneway op lives on the caller's stack and the
 * caller waits on its condition variable until the I/O thread has finished
 * with it; an async op is heap-allocated and freed by the I/O thread after
 * the user callback ran. Async and oneway ops count against max_inflight.
 *
 * Retries (round robin only): a connection error or a retryable broker code
 * (SYSTEM_ERROR, SYSTEM_BUSY, SERVICE_NOT_AVAILABLE, NO_PERMISSION,
 * TOPIC_NOT_EXIST) sends again to the next queue avoiding the broker that
 * failed, up to retry_times more attempts inside the send timeout, and asks
 * for a fresh route. Ordered and selected sends never move to another queue. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "client/client_int.h"
#include "common/mem.h"
#include "protocol/rcode.h"
#include "protocol/remoting.h"

struct apg_producer {
    struct apg_cio *p_io;
    char *p_group;
    char *p_namesrv;
    apg_producer_conf_t p_conf;
    pthread_mutex_t p_mu; /* guards p_inflight, p_blocked */
    pthread_cond_t p_cv;
    int p_inflight;
    int p_blocked; /* callers waiting for room under max_inflight */
};

enum { MODE_SYNC, MODE_ASYNC, MODE_ONEWAY };
enum { SEL_RR, SEL_HASH, SEL_CUSTOM };

struct psend {
    struct apg_cop ps_op;
    struct apg_producer *ps_p;
    char *ps_topic;
    char *ps_props;
    uint8_t *ps_body;
    size_t ps_blen;
    int32_t ps_sysflag;
    int32_t ps_flag;
    int64_t ps_born;
    bool ps_batch;
    int ps_mode;
    int ps_sel;
    char *ps_key;
    apg_queue_selector ps_selfn;
    void *ps_selarg;
    const apg_message_t *ps_selmsg;
    int64_t ps_deadline;
    int ps_attempts_left;
    char ps_last_broker[128];
    char ps_uniq[64];
    apg_mq_t ps_mq;
    apg_send_cb ps_cb;
    void *ps_cbarg;
    struct apg_cwait ps_wait;
    apg_err_t ps_err;
    char ps_errmsg[512];
    apg_send_result_t ps_res;
};

void apg_producer_conf_init(apg_producer_conf_t *c)
{
    memset(c, 0, sizeof(*c));
    c->group = "DEFAULT_PRODUCER";
    c->send_timeout_ms = 3000;
    c->retry_times = 2;
    c->compress_over = 4096;
    c->compress_level = 5;
    c->max_message_size = 4 * 1024 * 1024;
    c->max_inflight = 10000;
    c->route_refresh_ms = 30000;
    c->heartbeat_ms = 30000;
    c->binary_header = 1;
}

static apg_err_t producer_hb_body(struct apg_cio *io, void *owner, struct apg_buf *out)
{
    struct apg_producer *p = owner;
    json_t *root = json_pack("{s:s, s:[{s:s},{s:s}], s:[]}", "clientID", apg_cio_client_id(io),
                             "producerDataSet", "groupName", p->p_group, "groupName",
                             "CLIENT_INNER_PRODUCER", "consumerDataSet");
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

apg_producer_t *apg_producer_new(const apg_producer_conf_t *conf, char *err, size_t errlen)
{
    struct apg_producer *p = apg_calloc(1, sizeof(*p));
    if (p == NULL) {
        apg_errf(APG_ENOMEM, err, errlen, "out of memory");
        return NULL;
    }
    p->p_conf = *conf;
    p->p_group = apg_strdup(conf->group && conf->group[0] ? conf->group : "DEFAULT_PRODUCER");
    if (p->p_conf.max_inflight <= 0)
        p->p_conf.max_inflight = 10000;
    if (p->p_conf.send_timeout_ms <= 0)
        p->p_conf.send_timeout_ms = 3000;
    if (p->p_conf.max_message_size <= 0)
        p->p_conf.max_message_size = 4 * 1024 * 1024;
    if (p->p_conf.retry_times < 0)
        p->p_conf.retry_times = 0;
    pthread_mutex_init(&p->p_mu, NULL);
    pthread_cond_init(&p->p_cv, NULL);
    struct apg_cio_conf ic = {
        .namesrv = conf->namesrv,
        .instance = conf->instance,
        .serialize = conf->binary_header ? APG_SER_ROCKETMQ : APG_SER_JSON,
        .route_refresh_ms = conf->route_refresh_ms,
        .heartbeat_ms = conf->heartbeat_ms,
        .timeout_ms = p->p_conf.send_timeout_ms,
        .hb_body = producer_hb_body,
        .owner = p,
    };
    if (p->p_group == NULL || (p->p_io = apg_cio_new(&ic, err, errlen)) == NULL) {
        apg_producer_destroy(p);
        return NULL;
    }
    return p;
}

void apg_producer_destroy(apg_producer_t *p)
{
    if (p == NULL)
        return;
    apg_cio_free(p->p_io);
    pthread_mutex_destroy(&p->p_mu);
    pthread_cond_destroy(&p->p_cv);
    apg_free(p->p_group);
    apg_free(p);
}

const char *apg_producer_client_id(const apg_producer_t *p)
{
    return apg_cio_client_id(p->p_io);
}

/* ---- loop-thread side ---- */

static void psend_free_parts(struct psend *ps)
{
    apg_free(ps->ps_topic);
    apg_free(ps->ps_props);
    apg_free(ps->ps_body);
    apg_free(ps->ps_key);
    ps->ps_topic = ps->ps_props = ps->ps_key = NULL;
    ps->ps_body = NULL;
}

static void inflight_done(struct apg_producer *p)
{
    pthread_mutex_lock(&p->p_mu);
    p->p_inflight--;
    /* Blocked callers are woken together once a quarter of the window is
     * free, not one context switch per completed send. */
    if (p->p_blocked > 0 &&
        (p->p_inflight <= p->p_conf.max_inflight - (p->p_conf.max_inflight + 3) / 4 ||
         p->p_inflight == 0))
        pthread_cond_broadcast(&p->p_cv);
    pthread_mutex_unlock(&p->p_mu);
}

static void psend_complete(struct psend *ps, apg_err_t e, const char *msg)
{
    ps->ps_err = e;
    if (e != APG_OK)
        snprintf(ps->ps_errmsg, sizeof(ps->ps_errmsg), "%s", msg ? msg : apg_strerror(e));
    if (ps->ps_mode == MODE_ASYNC) {
        struct apg_producer *p = ps->ps_p;
        ps->ps_cb(e, e == APG_OK ? &ps->ps_res : NULL, e == APG_OK ? NULL : ps->ps_errmsg,
                  ps->ps_cbarg);
        psend_free_parts(ps);
        apg_free(ps);
        inflight_done(p);
        return;
    }
    apg_cwait_signal(&ps->ps_wait); /* the caller owns ps from here */
}

static void psend_on_route(struct apg_cio *io, struct apg_ctopic *t, apg_err_t e,
                           const char *errmsg, void *arg);

static bool retryable_code(int code)
{
    return code == APG_RESP_SYSTEM_ERROR || code == APG_RESP_SYSTEM_BUSY ||
           code == APG_RESP_SERVICE_NOT_AVAILABLE || code == APG_RESP_NO_PERMISSION ||
           code == APG_RESP_TOPIC_NOT_EXIST;
}

static void route_refresh_noop(struct apg_cio *io, struct apg_ctopic *t, apg_err_t e,
                               const char *errmsg, void *arg)
{
}

/* A failed attempt: retry on another queue or finish with the error. */
static void psend_failed(struct apg_cio *io, struct psend *ps, apg_err_t e, const char *msg)
{
    snprintf(ps->ps_last_broker, sizeof(ps->ps_last_broker), "%s", ps->ps_mq.mq_broker);
    struct apg_ctopic *t = apg_cio_topic_find(io, ps->ps_topic);
    if (t != NULL && !t->ct_fetching)
        apg_cio_route(io, ps->ps_topic, true, true, route_refresh_noop, NULL);
    if (e != APG_ESHUTDOWN && ps->ps_sel == SEL_RR && ps->ps_mode != MODE_ONEWAY &&
        ps->ps_attempts_left > 0 && apg_now_ms() < ps->ps_deadline && t != NULL && t->ct_have) {
        ps->ps_attempts_left--;
        psend_on_route(io, t, APG_OK, NULL, ps);
        return;
    }
    psend_complete(ps, e, msg);
}

static void psend_on_resp(struct apg_cio *io, apg_err_t e, const struct apg_rcmd *resp,
                          const char *errmsg, void *arg)
{
    struct psend *ps = arg;
    char msg[512];
    if (e != APG_OK) {
        snprintf(msg, sizeof(msg), "send to %s queue %s:%d failed: %s", ps->ps_topic,
                 ps->ps_mq.mq_broker, ps->ps_mq.mq_queue_id, errmsg);
        psend_failed(io, ps, e, msg);
        return;
    }
    int status;
    switch (resp->code) {
    case APG_RESP_SUCCESS:
        status = APG_SEND_OK;
        break;
    case APG_RESP_FLUSH_DISK_TIMEOUT:
        status = APG_SEND_FLUSH_DISK_TIMEOUT;
        break;
    case APG_RESP_FLUSH_SLAVE_TIMEOUT:
        status = APG_SEND_FLUSH_SLAVE_TIMEOUT;
        break;
    case APG_RESP_SLAVE_NOT_AVAILABLE:
        status = APG_SEND_SLAVE_NOT_AVAILABLE;
        break;
    default: {
        const char *name = apg_resp_code_name(resp->code);
        snprintf(msg, sizeof(msg), "broker %s refused the send to %s queue %d: %d %s: %s",
                 ps->ps_mq.mq_broker, ps->ps_topic, ps->ps_mq.mq_queue_id, resp->code,
                 name ? name : "?", resp->remark ? resp->remark : "");
        if (retryable_code(resp->code))
            psend_failed(io, ps, APG_EIO, msg);
        else
            psend_complete(ps, resp->code == APG_RESP_MESSAGE_ILLEGAL ? APG_EINVAL : APG_EIO, msg);
        return;
    }
    }
    apg_send_result_t *r = &ps->ps_res;
    memset(r, 0, sizeof(*r));
    r->sr_status = status;
    r->sr_mq = ps->ps_mq;
    snprintf(r->sr_msg_id, sizeof(r->sr_msg_id), "%s", ps->ps_uniq);
    const char *mid = apg_rcmd_ext_get(resp, "msgId");
    if (mid) {
        size_t l = strcspn(mid, ",");
        snprintf(r->sr_offset_msg_id, sizeof(r->sr_offset_msg_id), "%.*s", (int)l, mid);
    }
    int32_t qid;
    if (apg_rcmd_ext_i32(resp, "queueId", &qid) == APG_OK)
        r->sr_mq.mq_queue_id = qid;
    int64_t qoff;
    if (apg_rcmd_ext_i64(resp, "queueOffset", &qoff) == APG_OK)
        r->sr_queue_offset = qoff;
    psend_complete(ps, APG_OK, NULL);
}

/* Text of the numeric header fields; lives as long as the request. */
struct psend_hdr {
    char qid[16], sysflag[16], born[24], flag[16];
};

/* SEND_MESSAGE_V2 / SEND_BATCH_MESSAGE header for ps to ps->ps_mq. */
static void psend_build_req(struct psend *ps, uint8_t serialize, struct apg_rcmd *req,
                            struct psend_hdr *hs)
{
    apg_rcmd_init_request(req, ps->ps_batch ? APG_REQ_SEND_BATCH_MESSAGE : APG_REQ_SEND_MESSAGE_V2,
                          0, serialize);
    snprintf(hs->qid, sizeof(hs->qid), "%d", ps->ps_mq.mq_queue_id);
    snprintf(hs->sysflag, sizeof(hs->sysflag), "%d", ps->ps_sysflag);
    snprintf(hs->born, sizeof(hs->born), "%lld", (long long)ps->ps_born);
    snprintf(hs->flag, sizeof(hs->flag), "%d", ps->ps_flag);
    apg_rcmd_ext_add(req, "a", ps->ps_p->p_group);
    apg_rcmd_ext_add(req, "b", ps->ps_topic);
    apg_rcmd_ext_add(req, "c", "TBW102");
    apg_rcmd_ext_add(req, "d", "4");
    apg_rcmd_ext_add(req, "e", hs->qid);
    apg_rcmd_ext_add(req, "f", hs->sysflag);
    apg_rcmd_ext_add(req, "g", hs->born);
    apg_rcmd_ext_add(req, "h", hs->flag);
    apg_rcmd_ext_add(req, "i", ps->ps_props);
    apg_rcmd_ext_add(req, "j", "0");
    apg_rcmd_ext_add(req, "k", "false");
    apg_rcmd_ext_add(req, "m", ps->ps_batch ? "true" : "false");
    apg_rcmd_ext_add(req, "n", ps->ps_mq.mq_broker);
}

static void psend_on_route(struct apg_cio *io, struct apg_ctopic *t, apg_err_t e,
                           const char *errmsg, void *arg)
{
    struct psend *ps = arg;
    if (e != APG_OK) {
        psend_complete(ps, e, errmsg);
        return;
    }
    const struct apg_croute *rt = &t->ct_route;
    int idx;
    char msg[512];
    if (ps->ps_sel == SEL_HASH)
        idx = apg_croute_pick_hash(rt, ps->ps_key);
    else if (ps->ps_sel == SEL_CUSTOM)
        idx = rt->rt_nwq ? ps->ps_selfn(rt->rt_wq, rt->rt_nwq, ps->ps_selmsg, ps->ps_selarg) : -1;
    else
        idx = apg_croute_pick_rr(rt, &t->ct_rr, ps->ps_last_broker);
    if (rt->rt_nwq == 0) {
        snprintf(msg, sizeof(msg), "topic '%s' has no writable queue", ps->ps_topic);
        psend_complete(ps, APG_ENOTFOUND, msg);
        return;
    }
    if (idx < 0 || (size_t)idx >= rt->rt_nwq) {
        snprintf(msg, sizeof(msg), "queue selector returned %d, outside 0..%zu", idx,
                 rt->rt_nwq - 1);
        psend_complete(ps, APG_EINVAL, msg);
        return;
    }
    ps->ps_mq = rt->rt_wq[idx];
    const char *addr = apg_croute_master(rt, ps->ps_mq.mq_broker);
    int64_t left = ps->ps_deadline - apg_now_ms();
    if (left <= 0) {
        snprintf(msg, sizeof(msg), "send to '%s' timed out before it could be written",
                 ps->ps_topic);
        psend_complete(ps, APG_ETIMEDOUT, msg);
        return;
    }
    struct apg_rcmd req;
    struct psend_hdr hs;
    psend_build_req(ps, apg_cio_serialize(io), &req, &hs);
    e = apg_cio_call(io, addr, &req, ps->ps_body, ps->ps_blen, (int)left,
                     ps->ps_mode == MODE_ONEWAY ? NULL : psend_on_resp, ps, msg, sizeof(msg));
    if (e != APG_OK) {
        psend_failed(io, ps, e, msg);
        return;
    }
    if (ps->ps_mode == MODE_ONEWAY) {
        memset(&ps->ps_res, 0, sizeof(ps->ps_res));
        psend_complete(ps, APG_OK, NULL);
    }
}

static void psend_run(struct apg_cio *io, struct apg_cop *op)
{
    struct psend *ps = (struct psend *)op;
    if (apg_cio_stopping(io)) {
        psend_complete(ps, APG_ESHUTDOWN, "producer is shutting down");
        return;
    }
    apg_cio_route(io, ps->ps_topic, true, false, psend_on_route, ps);
}

/* ---- caller side ---- */

static apg_err_t check_topic(const char *t, char *err, size_t errlen)
{
    size_t n = strlen(t);
    if (n == 0 || n > 127)
        return apg_errf(APG_EINVAL, err, errlen, "topic name must have 1..127 characters");
    if (strspn(t, "%|abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != n)
        return apg_errf(APG_EINVAL, err, errlen,
                        "topic '%s' has characters outside [%%|a-zA-Z0-9_-]", t);
    return APG_OK;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Fills ps from one message (copies). */
static apg_err_t psend_prepare(struct apg_producer *p, struct psend *ps, apg_message_t *m,
                               char *err, size_t errlen)
{
    memset(ps, 0, sizeof(*ps));
    ps->ps_p = p;
    ps->ps_op.op_fn = psend_run;
    apg_err_t e = check_topic(m->m_topic, err, errlen);
    if (e != APG_OK)
        return e;
    if (m->m_body_len == 0)
        return apg_errf(APG_EINVAL, err, errlen, "message body is empty");
    if (m->m_body_len > (size_t)p->p_conf.max_message_size)
        return apg_errf(APG_ETOOBIG, err, errlen,
                        "message body of %zu bytes exceeds maxMessageSize %d", m->m_body_len,
                        p->p_conf.max_message_size);
    if ((e = apg_msg_ensure_uniq(m)) != APG_OK)
        return apg_errf(e, err, errlen, "out of memory");
    snprintf(ps->ps_uniq, sizeof(ps->ps_uniq), "%s", apg_message_id(m));
    struct apg_buf props = APG_BUF_INIT;
    if ((e = apg_msg_props_encode(m, &props)) != APG_OK ||
        (e = apg_buf_append(&props, "", 1)) != APG_OK) {
        apg_buf_free(&props);
        return apg_errf(e, err, errlen, "out of memory");
    }
    if (props.b_len > 32768) {
        apg_buf_free(&props);
        return apg_errf(APG_ETOOBIG, err, errlen, "message properties exceed 32767 bytes");
    }
    ps->ps_props = (char *)props.b_data;
    if (p->p_conf.compress_over >= 0 && m->m_body_len > (size_t)p->p_conf.compress_over) {
        uint8_t *z;
        size_t zl;
        if (apg_msg_zlib(m->m_body, m->m_body_len, p->p_conf.compress_level, &z, &zl) == APG_OK) {
            ps->ps_body = z;
            ps->ps_blen = zl;
            ps->ps_sysflag |= APG_MSG_SYSFLAG_COMPRESSED | APG_MSG_SYSFLAG_ZLIB;
        }
    }
    if (ps->ps_body == NULL) {
        ps->ps_body = apg_malloc(m->m_body_len);
        if (ps->ps_body == NULL) {
            psend_free_parts(ps);
            return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
        }
        memcpy(ps->ps_body, m->m_body, m->m_body_len);
        ps->ps_blen = m->m_body_len;
    }
    ps->ps_topic = apg_strdup(m->m_topic);
    if (ps->ps_topic == NULL) {
        psend_free_parts(ps);
        return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    }
    ps->ps_flag = m->m_flag;
    ps->ps_born = wall_ms();
    ps->ps_deadline = apg_now_ms() + p->p_conf.send_timeout_ms;
    ps->ps_attempts_left = p->p_conf.retry_times;
    return APG_OK;
}

static int pick_rr(const struct apg_croute *rt, void *arg)
{
    /* Per calling thread, like Java's ThreadLocalIndex. */
    static __thread uint32_t rr;
    static __thread bool seeded;
    if (!seeded) {
        rr = (uint32_t)(uintptr_t)&rr >> 4;
        seeded = true;
    }
    return apg_croute_pick_rr(rt, &rr, NULL);
}

static int pick_hash(const struct apg_croute *rt, void *arg)
{
    return apg_croute_pick_hash(rt, arg);
}

/* The fast path: when the route is cached and the broker connection is up,
 * the calling thread encodes and writes the request itself (sync sends at
 * once on the socket, async and oneway ones queued for one write by the
 * I/O thread). The answer still arrives on the I/O thread (psend_on_resp),
 * and so do retries. True: the op was handed over (as after a submit). */
static bool psend_direct(struct apg_producer *p, struct psend *ps)
{
    if (ps->ps_sel == SEL_CUSTOM)
        return false; /* the user's selector never runs under the instance lock */
    int64_t left = ps->ps_deadline - apg_now_ms();
    if (left <= 0)
        return false;
    struct apg_cconn *cc =
        apg_cio_direct_begin(p->p_io, ps->ps_topic, ps->ps_sel == SEL_HASH ? pick_hash : pick_rr,
                             ps->ps_key, &ps->ps_mq);
    if (cc == NULL)
        return false;
    struct apg_rcmd req;
    struct psend_hdr hs;
    psend_build_req(ps, apg_cio_serialize(p->p_io), &req, &hs);
    return apg_cio_direct_send(p->p_io, cc, &req, ps->ps_body, ps->ps_blen, (int)left,
                               ps->ps_mode == MODE_ONEWAY ? NULL : psend_on_resp, ps,
                               ps->ps_mode != MODE_ASYNC) == APG_OK;
}

/* Hands a prepared stack op to the I/O thread and waits for it. */
static apg_err_t psend_wait(struct apg_producer *p, struct psend *ps, apg_send_result_t *res,
                            char *err, size_t errlen)
{
    apg_cwait_init(&ps->ps_wait);
    apg_err_t e = APG_OK;
    if (psend_direct(p, ps)) {
        if (ps->ps_mode == MODE_ONEWAY) {
            psend_free_parts(ps);
            return APG_OK; /* written or queued; nothing comes back */
        }
    } else {
        e = apg_cio_submit(p->p_io, &ps->ps_op);
    }
    if (e != APG_OK) {
        apg_errf(e, err, errlen, "producer is shutting down");
    } else {
        apg_cwait_wait(&ps->ps_wait);
        e = ps->ps_err;
        if (e != APG_OK)
            apg_errf(e, err, errlen, "%s", ps->ps_errmsg);
        else if (res)
            *res = ps->ps_res;
    }
    apg_cwait_destroy(&ps->ps_wait);
    psend_free_parts(ps);
    return e;
}

apg_err_t apg_producer_send(apg_producer_t *p, apg_message_t *msg, apg_send_result_t *res,
                            char *err, size_t errlen)
{
    struct psend ps;
    apg_err_t e = psend_prepare(p, &ps, msg, err, errlen);
    if (e != APG_OK)
        return e;
    ps.ps_mode = MODE_SYNC;
    return psend_wait(p, &ps, res, err, errlen);
}

apg_err_t apg_producer_send_oneway(apg_producer_t *p, apg_message_t *msg, char *err, size_t errlen)
{
    struct psend ps;
    apg_err_t e = psend_prepare(p, &ps, msg, err, errlen);
    if (e != APG_OK)
        return e;
    ps.ps_mode = MODE_ONEWAY;
    return psend_wait(p, &ps, NULL, err, errlen);
}

apg_err_t apg_producer_send_orderly(apg_producer_t *p, apg_message_t *msg, const char *sharding_key,
                                    apg_send_result_t *res, char *err, size_t errlen)
{
    if (sharding_key == NULL)
        return apg_errf(APG_EINVAL, err, errlen, "sharding key is NULL");
    struct psend ps;
    apg_err_t e = psend_prepare(p, &ps, msg, err, errlen);
    if (e != APG_OK)
        return e;
    ps.ps_mode = MODE_SYNC;
    ps.ps_sel = SEL_HASH;
    ps.ps_key = apg_strdup(sharding_key);
    if (ps.ps_key == NULL) {
        psend_free_parts(&ps);
        return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    }
    return psend_wait(p, &ps, res, err, errlen);
}

apg_err_t apg_producer_send_select(apg_producer_t *p, apg_message_t *msg, apg_queue_selector sel,
                                   void *sel_arg, apg_send_result_t *res, char *err, size_t errlen)
{
    if (sel == NULL)
        return apg_errf(APG_EINVAL, err, errlen, "selector is NULL");
    struct psend ps;
    apg_err_t e = psend_prepare(p, &ps, msg, err, errlen);
    if (e != APG_OK)
        return e;
    ps.ps_mode = MODE_SYNC;
    ps.ps_sel = SEL_CUSTOM;
    ps.ps_selfn = sel;
    ps.ps_selarg = sel_arg;
    ps.ps_selmsg = msg; /* the caller waits, so borrowing msg is safe */
    return psend_wait(p, &ps, res, err, errlen);
}

apg_err_t apg_producer_send_async(apg_producer_t *p, apg_message_t *msg, apg_send_cb cb, void *arg,
                                  char *err, size_t errlen)
{
    if (cb == NULL)
        return apg_errf(APG_EINVAL, err, errlen, "callback is NULL");
    struct psend *ps = apg_malloc(sizeof(*ps));
    if (ps == NULL)
        return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    apg_err_t e = psend_prepare(p, ps, msg, err, errlen);
    if (e != APG_OK) {
        apg_free(ps);
        return e;
    }
    ps->ps_mode = MODE_ASYNC;
    ps->ps_cb = cb;
    ps->ps_cbarg = arg;
    pthread_mutex_lock(&p->p_mu);
    while (p->p_inflight >= p->p_conf.max_inflight) {
        p->p_blocked++;
        pthread_cond_wait(&p->p_cv, &p->p_mu);
        p->p_blocked--;
    }
    p->p_inflight++;
    pthread_mutex_unlock(&p->p_mu);
    if (psend_direct(p, ps))
        return APG_OK; /* ps belongs to the I/O thread now */
    e = apg_cio_submit(p->p_io, &ps->ps_op);
    if (e != APG_OK) {
        psend_free_parts(ps);
        apg_free(ps);
        inflight_done(p);
        return apg_errf(e, err, errlen, "producer is shutting down");
    }
    return APG_OK;
}

apg_err_t apg_producer_send_batch(apg_producer_t *p, apg_message_t *const *msgs, size_t n,
                                  apg_send_result_t *res, char *err, size_t errlen)
{
    if (n == 0 || msgs == NULL)
        return apg_errf(APG_EINVAL, err, errlen, "empty batch");
    const char *topic = msgs[0]->m_topic;
    apg_err_t e = check_topic(topic, err, errlen);
    if (e != APG_OK)
        return e;
    if (strncmp(topic, "%RETRY%", 7) == 0)
        return apg_errf(APG_EINVAL, err, errlen, "batches cannot go to retry topics");
    struct apg_buf body = APG_BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        apg_message_t *m = msgs[i];
        if (strcmp(m->m_topic, topic) != 0) {
            apg_buf_free(&body);
            return apg_errf(APG_EINVAL, err, errlen,
                            "batch mixes topics '%s' and '%s': one topic per batch", topic,
                            m->m_topic);
        }
        if (apg_msg_prop_get(m, "DELAY") != NULL) {
            apg_buf_free(&body);
            return apg_errf(APG_EINVAL, err, errlen, "batched messages cannot have a delay level");
        }
        if ((e = apg_msg_ensure_uniq(m)) != APG_OK ||
            (e = apg_msg_batch_append(m, &body)) != APG_OK) {
            apg_buf_free(&body);
            return apg_errf(e, err, errlen, "cannot encode batch message %zu: %s", i,
                            apg_strerror(e));
        }
    }
    if (body.b_len > (size_t)p->p_conf.max_message_size) {
        apg_buf_free(&body);
        return apg_errf(APG_ETOOBIG, err, errlen, "batch of %zu bytes exceeds maxMessageSize %d",
                        body.b_len, p->p_conf.max_message_size);
    }
    struct psend ps;
    memset(&ps, 0, sizeof(ps));
    ps.ps_p = p;
    ps.ps_op.op_fn = psend_run;
    ps.ps_batch = true;
    ps.ps_mode = MODE_SYNC;
    ps.ps_body = body.b_data;
    ps.ps_blen = body.b_len;
    char uniq[33];
    apg_msg_uniq_id(uniq);
    char props[96];
    snprintf(props, sizeof(props), "WAIT\001true\002UNIQ_KEY\001%s\002", uniq);
    ps.ps_props = apg_strdup(props);
    ps.ps_topic = apg_strdup(topic);
    snprintf(ps.ps_uniq, sizeof(ps.ps_uniq), "%s", apg_message_id(msgs[0]));
    if (ps.ps_props == NULL || ps.ps_topic == NULL) {
        psend_free_parts(&ps);
        return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    }
    ps.ps_born = wall_ms();
    ps.ps_deadline = apg_now_ms() + p->p_conf.send_timeout_ms;
    ps.ps_attempts_left = p->p_conf.retry_times;
    return psend_wait(p, &ps, res, err, errlen);
}

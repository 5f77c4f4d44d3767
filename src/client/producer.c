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
 * op owns copies, in one allocation with the op (psend_new). The caller of a sync or oneway send
 * waits on the op's futex word until the I/O thread has finished with it,
 * then frees it; an async op is freed by the I/O thread after the user
 * callback ran. Async ops count against max_inflight (an atomic counter;
 * the mutex is only taken when the window is full).
 *
 * Retries (round robin only): a connection error or a retriable broker code
 * (apg_broker_code_is_retriable: SYSTEM_ERROR, SYSTEM_BUSY, SERVICE_NOT_AVAILABLE,
 * NO_PERMISSION, TOPIC_NOT_EXIST) sends again to the next queue avoiding the broker that
 * failed, up to retry_times more attempts inside the send timeout, and asks
 * for a fresh route. Ordered and selected sends never move to another queue.
 *
 * Back-pressure: a SYSTEM_BUSY answer, or a refusal whose
 * remark says "flow control", means the broker is alive but its store is
 * behind. The send waits busy_backoff_ms (doubled per busy answer of this
 * send, capped at busy_backoff_max_ms, the second half jittered so that
 * refused senders do not come back together), on an I/O-thread timer
 * (apg_cio_after; a sync caller keeps waiting on its futex, the loop never
 * sleeps), then goes to the next queue avoiding that broker (an ordered or
 * selected send picks its queue again the same way, so a sharding key stays
 * on its queue and keeps its order), for as long as
 * the send timeout allows and without using up retry_times. Still refused at
 * the deadline, or when the back-off plus the last round trip would pass it:
 * APG_EBUSY (retriable) with sr_broker_code SYSTEM_BUSY.
 * p_busy and p_busy_retries count it (apg_producer_busy_stats).
 * A busy answer also halves the async window (p_window, at most once per
 * WIN_CUT_MS, never below WIN_FLOOR): retried sends keep their slots, so
 * callers of apg_producer_send_async block until the sends already out
 * finish, and fewer requests queue in front of a broker that is behind
 * (each would otherwise wait there for most of its timeout). Successes
 * grow it again: by one per window/8 successes while busy answers keep
 * coming, doubling every WIN_CUT_MS once none came for a second. */
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "client/client_int.h"
#include "common/clock.h"
#include "common/mem.h"
#include "protocol/rcode.h"
#include "protocol/remoting.h"

struct apg_producer {
    struct apg_cio *p_io;
    const char *p_group;     /* producerGroup of p_conf */
    struct apg_conf *p_conf; /* a private copy, never changed */
    /* Async window: p_inflight counts async and oneway ops not finished;
     * a caller takes a slot with a compare-and-swap and sleeps on p_cv
     * (under p_mu, counted in p_blocked) only when the window is full. */
    pthread_mutex_t p_mu;
    pthread_cond_t p_cv;
    _Atomic int p_inflight;
    _Atomic int p_blocked; /* callers waiting for room under max_inflight */
    /* The async window now (<= max_inflight); read by callers, changed on
     * the I/O thread only, like the other p_win_* fields. */
    _Atomic int p_window;
    int64_t p_win_cut_ms;            /* last halving */
    int64_t p_win_busy_ms;           /* last busy answer */
    int64_t p_win_grow_ms;           /* last doubling */
    int p_win_acc;                   /* successes since the last additive step */
    _Atomic uint64_t p_busy;         /* SYSTEM_BUSY / flow-control answers */
    _Atomic uint64_t p_busy_retries; /* sends sent again after a back-off */
    /* Server-initiated requests (a transactional producer's check-backs). */
    void (*p_srv_req)(apg_producer_t *p, const struct apg_rcmd *req, void *arg);
    void *p_srv_arg;
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
    int ps_broker_code; /* response code of the last refusal, 0 when none */
    int ps_busy_n;      /* busy answers to this send so far */
    int64_t ps_sent_ms; /* when the last attempt was written (apg_now_ms) */
    unsigned ps_own;    /* PS_OWN_*: parts allocated on their own */
    /* Not cleared when the op is made (written before they are read). */
    char ps_errmsg[512];
    apg_send_result_t ps_res;
};

/* ps_topic, ps_props and ps_body live in the op's own allocation, right
 * after the struct, unless their bit is set in ps_own (a compressed body,
 * the parts of a batch). ps_key is always separate. */
#define PS_OWN_TOPIC 1u
#define PS_OWN_PROPS 2u
#define PS_OWN_BODY 4u

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

static void producer_server_req(struct apg_cio *io, void *owner, const struct apg_rcmd *req)
{
    (void)io;
    struct apg_producer *p = owner;
    if (p->p_srv_req)
        p->p_srv_req(p, req, p->p_srv_arg);
}

apg_producer_t *apg_producer_new(const apg_conf_t *conf, char *err, size_t errlen)
{
    return apg_producer_new_ext(conf, NULL, NULL, err, errlen);
}

apg_producer_t *apg_producer_new_ext(const apg_conf_t *conf,
                                     void (*srv_req)(apg_producer_t *p, const struct apg_rcmd *req,
                                                     void *arg),
                                     void *srv_arg, char *err, size_t errlen)
{
    struct apg_producer *p = NULL;
    if (apg_conf_check(conf, false, err, errlen) != APG_OK) {
        apg_free(srv_arg);
        return NULL;
    }
    p = apg_calloc(1, sizeof(*p));
    if (p == NULL || (p->p_conf = apg_conf_dup(conf)) == NULL) {
        apg_free(p);
        apg_free(srv_arg);
        apg_errf(APG_ENOMEM, err, errlen, "out of memory");
        return NULL;
    }
    p->p_group = p->p_conf->producer_group ? p->p_conf->producer_group : "DEFAULT_PRODUCER";
    p->p_srv_req = srv_req;
    p->p_srv_arg = srv_arg;
    atomic_init(&p->p_window, p->p_conf->max_inflight);
    pthread_mutex_init(&p->p_mu, NULL);
    pthread_cond_init(&p->p_cv, NULL);
    struct apg_cio_conf ic = {
        .namesrv = p->p_conf->namesrv,
        .instance = p->p_conf->instance,
        .serialize = p->p_conf->binary_header ? APG_SER_ROCKETMQ : APG_SER_JSON,
        .route_refresh_ms = p->p_conf->route_refresh_ms,
        .heartbeat_ms = p->p_conf->heartbeat_ms,
        .timeout_ms = p->p_conf->send_timeout_ms,
        .hb_body = producer_hb_body,
        .on_server_req = producer_server_req,
        .owner = p,
        .conf = p->p_conf,
    };
    if ((p->p_io = apg_cio_new(&ic, err, errlen)) == NULL) {
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
    apg_conf_destroy(p->p_conf);
    apg_free(p->p_srv_arg);
    apg_free(p);
}

const char *apg_producer_client_id(const apg_producer_t *p)
{
    return apg_cio_client_id(p->p_io);
}

/* ---- loop-thread side ---- */

/* Copies n bytes of s as a NUL-terminated string into out[cap] (cut). */
static void str_copy(char *out, size_t cap, const char *s, size_t n)
{
    if (n >= cap)
        n = cap - 1;
    memcpy(out, s, n);
    out[n] = '\0';
}

/* Copies a queue's strings and id, not the unused tails of its arrays
 * (dst is zeroed or about to be overwritten the same way). */
static void mq_copy(apg_mq_t *dst, const apg_mq_t *src)
{
    str_copy(dst->mq_topic, sizeof(dst->mq_topic), src->mq_topic, strlen(src->mq_topic));
    str_copy(dst->mq_broker, sizeof(dst->mq_broker), src->mq_broker, strlen(src->mq_broker));
    dst->mq_queue_id = src->mq_queue_id;
}

/* Decimal text of v into out (at least 21 bytes); returns out. */
static char *fmt_i64(char *out, int64_t v)
{
    char tmp[24];
    size_t n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do
        tmp[n++] = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    size_t k = 0;
    if (v < 0)
        out[k++] = '-';
    while (n > 0)
        out[k++] = tmp[--n];
    out[k] = '\0';
    return out;
}

/* Frees the op with its parts. */
static void psend_free(struct psend *ps)
{
    if (ps->ps_own & PS_OWN_TOPIC)
        apg_free(ps->ps_topic);
    if (ps->ps_own & PS_OWN_PROPS)
        apg_free(ps->ps_props);
    if (ps->ps_own & PS_OWN_BODY)
        apg_free(ps->ps_body);
    apg_free(ps->ps_key);
    apg_free(ps);
}

#define WIN_FLOOR 16
#define WIN_CUT_MS 100

/* I/O thread: a busy answer halves the async window. */
static void window_cut(struct apg_producer *p)
{
    int64_t now = apg_now_ms();
    p->p_win_busy_ms = now;
    if (now - p->p_win_cut_ms < WIN_CUT_MS)
        return;
    p->p_win_cut_ms = now;
    int w = atomic_load(&p->p_window) / 2;
    int floor = p->p_conf->max_inflight < WIN_FLOOR ? p->p_conf->max_inflight : WIN_FLOOR;
    atomic_store(&p->p_window, w < floor ? floor : w);
    p->p_win_acc = 0;
}

/* I/O thread: an async send succeeded; the window grows back. */
static void window_grow(struct apg_producer *p)
{
    int w = atomic_load_explicit(&p->p_window, memory_order_relaxed);
    int max = p->p_conf->max_inflight;
    if (w >= max)
        return;
    int64_t now = apg_now_ms();
    if (now - p->p_win_busy_ms > 1000) {
        if (now - p->p_win_grow_ms >= WIN_CUT_MS) {
            p->p_win_grow_ms = now;
            atomic_store(&p->p_window, w > max / 2 ? max : w * 2);
        }
    } else if (++p->p_win_acc >= w / 8 + 1) {
        p->p_win_acc = 0;
        atomic_store(&p->p_window, w + 1);
    }
}

static void inflight_done(struct apg_producer *p)
{
    int left = atomic_fetch_sub(&p->p_inflight, 1) - 1;
    /* Blocked callers are woken together once a quarter of the window is
     * free, not one context switch per completed send. A caller counts
     * itself in p_blocked before it looks at p_inflight (both sequentially
     * consistent), so either it sees this decrement or this sees it. */
    if (atomic_load(&p->p_blocked) == 0)
        return;
    int win = atomic_load(&p->p_window);
    if (left <= win - (win + 3) / 4 || left == 0) {
        pthread_mutex_lock(&p->p_mu);
        pthread_cond_broadcast(&p->p_cv);
        pthread_mutex_unlock(&p->p_mu);
    }
}

/* Takes a slot of the async window, sleeping while it is full; true when
 * it slept. */
static bool inflight_take(struct apg_producer *p)
{
    int cur = atomic_load(&p->p_inflight);
    bool slept = false;
    for (;;) {
        if (cur < atomic_load(&p->p_window)) {
            if (atomic_compare_exchange_weak(&p->p_inflight, &cur, cur + 1))
                return slept;
            continue;
        }
        slept = true;
        pthread_mutex_lock(&p->p_mu);
        atomic_fetch_add(&p->p_blocked, 1);
        while ((cur = atomic_load(&p->p_inflight)) >= atomic_load(&p->p_window))
            pthread_cond_wait(&p->p_cv, &p->p_mu);
        atomic_fetch_sub(&p->p_blocked, 1);
        pthread_mutex_unlock(&p->p_mu);
    }
}

/* Runs the user callback of an async op and frees it. */
static void psend_done_async(struct psend *ps, apg_err_t e, const apg_send_result_t *r)
{
    struct apg_producer *p = ps->ps_p;
    ps->ps_cb(e, r, e == APG_OK ? NULL : ps->ps_errmsg, ps->ps_cbarg);
    psend_free(ps);
    inflight_done(p);
}

/* Finishes an op. On failure the result carries only the queue tried and
 * the broker's response code (sr_broker_code, 0 when no broker refused). */
static void psend_complete(struct psend *ps, apg_err_t e, const char *msg)
{
    if (e != APG_OK) {
        e = apg_err_public(e);
        snprintf(ps->ps_errmsg, sizeof(ps->ps_errmsg), "%s", msg ? msg : apg_strerror(e));
        memset(&ps->ps_res, 0, sizeof(ps->ps_res));
        ps->ps_res.sr_mq = ps->ps_mq; /* a plain copy: this path is not hot */
        ps->ps_res.sr_broker_code = ps->ps_broker_code;
    }
    ps->ps_err = e;
    if (ps->ps_mode == MODE_ASYNC) {
        psend_done_async(ps, e, &ps->ps_res);
        return;
    }
    apg_cwait_signal(&ps->ps_wait); /* the caller owns ps from here */
}

static void psend_on_route(struct apg_cio *io, struct apg_ctopic *t, apg_err_t e,
                           const char *errmsg, void *arg);

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

static void psend_run(struct apg_cio *io, struct apg_cop *op);

static void psend_busy_retry(struct apg_cio *io, void *arg)
{
    struct psend *ps = arg;
    psend_run(io, &ps->ps_op);
}

/* A refusal that asks the client to slow down: SYSTEM_BUSY, or a remark
 * naming flow control (RocketMQ's timer and proxy limits answer so). */
static bool busy_answer(const struct apg_rcmd *resp)
{
    if (resp->code == APG_RESP_SYSTEM_BUSY)
        return true;
    return resp->code == APG_RESP_SYSTEM_ERROR && resp->remark &&
           strstr(resp->remark, "flow control") != NULL;
}

/* The broker is busy: back off, then try the next queue (see the top of
 * this file), or finish with APG_EBUSY when the deadline is too close. */
static void psend_busy(struct apg_cio *io, struct psend *ps, const char *msg)
{
    struct apg_producer *p = ps->ps_p;
    const struct apg_conf *cf = p->p_conf;
    atomic_fetch_add_explicit(&p->p_busy, 1, memory_order_relaxed);
    if (ps->ps_mode == MODE_ASYNC)
        window_cut(p);
    if (cf->busy_backoff_ms <= 0 || ps->ps_mode == MODE_ONEWAY) {
        psend_failed(io, ps, APG_EBUSY, msg);
        return;
    }
    int64_t delay = cf->busy_backoff_ms;
    for (int i = 0; i < ps->ps_busy_n && delay < cf->busy_backoff_max_ms; i++)
        delay *= 2;
    if (delay > cf->busy_backoff_max_ms)
        delay = cf->busy_backoff_max_ms;
    static __thread uint32_t rnd = 0x9e3779b9u;
    rnd ^= rnd << 13;
    rnd ^= rnd >> 17;
    rnd ^= rnd << 5;
    delay = delay / 2 + (int64_t)(rnd % (uint32_t)(delay / 2 + 1));
    /* Another attempt only if it can be answered before the deadline, as
     * far as the last round trip tells: one that cannot would end in a
     * timeout that hides the broker's busy answers. */
    int64_t now = apg_now_ms(), rtt = now - ps->ps_sent_ms;
    if (now + delay + rtt >= ps->ps_deadline || apg_cio_stopping(io)) {
        char full[640];
        snprintf(full, sizeof(full),
                 "%s (still busy after %d back-off retries within "
                 "sendMsgTimeout)",
                 msg, ps->ps_busy_n);
        psend_complete(ps, APG_EBUSY, full);
        return;
    }
    ps->ps_busy_n++;
    snprintf(ps->ps_last_broker, sizeof(ps->ps_last_broker), "%s", ps->ps_mq.mq_broker);
    atomic_fetch_add_explicit(&p->p_busy_retries, 1, memory_order_relaxed);
    apg_cio_after(io, (int)delay, psend_busy_retry, ps);
}

void apg_producer_busy_stats(const apg_producer_t *p, uint64_t *busy, uint64_t *retried)
{
    if (busy)
        *busy = atomic_load_explicit(&p->p_busy, memory_order_relaxed);
    if (retried)
        *retried = atomic_load_explicit(&p->p_busy_retries, memory_order_relaxed);
}

static void psend_on_resp(struct apg_cio *io, apg_err_t e, const struct apg_rcmd *resp,
                          const char *errmsg, void *arg)
{
    struct psend *ps = arg;
    char msg[512];
    if (e != APG_OK) {
        snprintf(msg, sizeof(msg), "send to %s queue %s:%d failed: %s", ps->ps_topic,
                 ps->ps_mq.mq_broker, ps->ps_mq.mq_queue_id, errmsg);
        ps->ps_broker_code = 0;
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
        ps->ps_broker_code = resp->code;
        if (busy_answer(resp))
            psend_busy(io, ps, msg);
        else if (apg_broker_code_is_retriable(resp->code))
            psend_failed(io, ps, APG_EBROKER, msg);
        else
            psend_complete(ps, resp->code == APG_RESP_MESSAGE_ILLEGAL ? APG_EINVAL : APG_EBROKER,
                           msg);
        return;
    }
    }
    /* Built on this thread's stack (the op's lines were written on the
     * caller's CPU); sync results are copied into the op. */
    apg_send_result_t res, *r = &res;
    memset(r, 0, sizeof(*r));
    r->sr_status = status;
    r->sr_broker_code = resp->code;
    mq_copy(&r->sr_mq, &ps->ps_mq);
    str_copy(r->sr_msg_id, sizeof(r->sr_msg_id), ps->ps_uniq, strlen(ps->ps_uniq));
    const char *mid = apg_rcmd_ext_get(resp, "msgId");
    if (mid)
        str_copy(r->sr_offset_msg_id, sizeof(r->sr_offset_msg_id), mid, strcspn(mid, ","));
    int32_t qid;
    if (apg_rcmd_ext_i32(resp, "queueId", &qid) == APG_OK)
        r->sr_mq.mq_queue_id = qid;
    int64_t qoff;
    if (apg_rcmd_ext_i64(resp, "queueOffset", &qoff) == APG_OK)
        r->sr_queue_offset = qoff;
    if (ps->ps_mode == MODE_ASYNC) {
        window_grow(ps->ps_p);
        psend_done_async(ps, APG_OK, r);
        return;
    }
    ps->ps_res = res;
    psend_complete(ps, APG_OK, NULL);
}

/* Text of the numeric header fields; lives as long as the request. */
struct psend_hdr {
    char qid[24], sysflag[24], born[24], flag[24];
};

/* SEND_MESSAGE_V2 / SEND_BATCH_MESSAGE header for ps to ps->ps_mq. */
static void psend_build_req(struct psend *ps, uint8_t serialize, struct apg_rcmd *req,
                            struct psend_hdr *hs)
{
    ps->ps_sent_ms = apg_now_ms(); /* written right after this, on either path */
    apg_rcmd_init_request(req, ps->ps_batch ? APG_REQ_SEND_BATCH_MESSAGE : APG_REQ_SEND_MESSAGE_V2,
                          0, serialize);
    fmt_i64(hs->qid, ps->ps_mq.mq_queue_id);
    fmt_i64(hs->sysflag, ps->ps_sysflag);
    fmt_i64(hs->born, ps->ps_born);
    fmt_i64(hs->flag, ps->ps_flag);
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

/* A new op for one message (copies its parts into the op's allocation).
 * NULL with *ep and err set when the message cannot be sent. */
static struct psend *psend_new(struct apg_producer *p, apg_message_t *m, apg_err_t *ep, char *err,
                               size_t errlen)
{
    apg_err_t e = check_topic(m->m_topic, err, errlen);
    if (e == APG_OK && m->m_body_len == 0)
        e = apg_errf(APG_EINVAL, err, errlen, "message body is empty");
    else if (e == APG_OK && m->m_body_len > (size_t)p->p_conf->max_message_size)
        e = apg_errf(APG_ETOOBIG, err, errlen,
                     "message body of %zu bytes exceeds maxMessageSize %d", m->m_body_len,
                     p->p_conf->max_message_size);
    else if (e == APG_OK && (e = apg_msg_ensure_uniq(m)) != APG_OK)
        apg_errf(e, err, errlen, "out of memory");
    /* The property string is written straight into the op's block. */
    size_t plen = e == APG_OK ? apg_msg_props_len(m) + 1 : 0;
    if (e == APG_OK && plen > 32768)
        e = apg_errf(APG_ETOOBIG, err, errlen, "message properties exceed 32767 bytes");
    if (e != APG_OK) {
        *ep = e;
        return NULL;
    }
    uint8_t *z = NULL;
    size_t zl = 0;
    if (p->p_conf->compress_over >= 0 && m->m_body_len > (size_t)p->p_conf->compress_over &&
        apg_msg_zlib(m->m_body, m->m_body_len, p->p_conf->compress_level, &z, &zl) != APG_OK)
        z = NULL;
    size_t tlen = strlen(m->m_topic) + 1;
    struct psend *ps = apg_malloc(sizeof(*ps) + plen + tlen + (z != NULL ? 0 : m->m_body_len));
    if (ps == NULL) {
        apg_free(z);
        *ep = apg_errf(APG_ENOMEM, err, errlen, "out of memory");
        return NULL;
    }
    memset(ps, 0, offsetof(struct psend, ps_errmsg));
    ps->ps_p = p;
    ps->ps_op.op_fn = psend_run;
    char *tail = (char *)(ps + 1);
    ps->ps_props = tail;
    tail = apg_msg_props_write(m, tail);
    *tail++ = '\0';
    ps->ps_topic = memcpy(tail, m->m_topic, tlen);
    tail += tlen;
    if (z != NULL) {
        ps->ps_body = z;
        ps->ps_blen = zl;
        ps->ps_own = PS_OWN_BODY;
        ps->ps_sysflag |= APG_SYSFLAG_COMPRESSED | APG_MSG_SYSFLAG_ZLIB;
    } else {
        ps->ps_body = memcpy(tail, m->m_body, m->m_body_len);
        ps->ps_blen = m->m_body_len;
    }
    const char *uniq = apg_message_id(m);
    str_copy(ps->ps_uniq, sizeof(ps->ps_uniq), uniq, strlen(uniq));
    ps->ps_flag = m->m_flag;
    ps->ps_born = apg_wall_ms();
    ps->ps_deadline = apg_now_ms() + p->p_conf->send_timeout_ms;
    ps->ps_attempts_left = p->p_conf->retry_times;
    return ps;
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
 * the calling thread encodes the request and, while few requests wait for
 * answers, writes it itself; above DIRECT_NOW_PENDING (io.c) it leaves it
 * for one combined write by the I/O thread, for every mode: with 64 sync
 * callers that cut the send system calls to about one per loop iteration
 * (118k -> 140-148k msgs/s, docs/perf-log/perf-client.md). The answer still arrives on the I/O
 * thread (psend_on_resp), and so do retries. True: the op was handed over (as after a submit). */
static bool psend_direct(struct apg_producer *p, struct psend *ps)
{
    if (ps->ps_sel == SEL_CUSTOM)
        return false; /* the user's selector never runs under the instance lock */
    /* The op was made a moment ago: its deadline (send timeout) is ahead. */
    struct apg_cconn *cc =
        apg_cio_direct_begin(p->p_io, ps->ps_topic, ps->ps_sel == SEL_HASH ? pick_hash : pick_rr,
                             ps->ps_key, &ps->ps_mq);
    if (cc == NULL)
        return false;
    struct apg_rcmd req;
    struct psend_hdr hs;
    psend_build_req(ps, apg_cio_serialize(p->p_io), &req, &hs);
    return apg_cio_direct_send(p->p_io, cc, &req, ps->ps_body, ps->ps_blen, ps->ps_deadline,
                               ps->ps_mode == MODE_ONEWAY ? NULL : psend_on_resp, ps,
                               false) == APG_OK;
}

/* Hands a prepared op to the I/O thread (or writes it directly), waits
 * for it and frees it. */
static apg_err_t psend_wait(struct apg_producer *p, struct psend *ps, apg_send_result_t *res,
                            char *err, size_t errlen)
{
    apg_cwait_init(&ps->ps_wait, p->p_conf->spin_us);
    apg_err_t e = APG_OK;
    if (psend_direct(p, ps)) {
        if (ps->ps_mode == MODE_ONEWAY) {
            psend_free(ps);
            return APG_OK; /* written or queued; nothing comes back */
        }
    } else {
        e = apg_cio_submit(p->p_io, &ps->ps_op);
    }
    if (e != APG_OK) {
        apg_errf(e, err, errlen, "producer is shutting down");
        if (res)
            memset(res, 0, sizeof(*res));
    } else {
        apg_cwait_wait(&ps->ps_wait);
        e = ps->ps_err;
        if (e != APG_OK)
            apg_errf(e, err, errlen, "%s", ps->ps_errmsg);
        if (res)
            *res = ps->ps_res;
    }
    apg_cwait_destroy(&ps->ps_wait);
    psend_free(ps);
    return e;
}

/* A sync round-robin send with extra sysflag bits. */
static apg_err_t send_sync(apg_producer_t *p, apg_message_t *msg, int32_t sysflag,
                           apg_send_result_t *res, char *err, size_t errlen)
{
    apg_err_t e;
    struct psend *ps = psend_new(p, msg, &e, err, errlen);
    if (ps == NULL)
        return e;
    ps->ps_mode = MODE_SYNC;
    ps->ps_sysflag |= sysflag;
    return psend_wait(p, ps, res, err, errlen);
}

apg_err_t apg_producer_send(apg_producer_t *p, apg_message_t *msg, apg_send_result_t *res,
                            char *err, size_t errlen)
{
    return send_sync(p, msg, 0, res, err, errlen);
}

apg_err_t apg_producer_send_prepared(apg_producer_t *p, apg_message_t *msg, apg_send_result_t *res,
                                     char *err, size_t errlen)
{
    return send_sync(p, msg, APG_SYSFLAG_TX_PREPARED, res, err, errlen);
}

struct apg_cio *apg_producer_cio(apg_producer_t *p)
{
    return p->p_io;
}

const char *apg_producer_group(const apg_producer_t *p)
{
    return p->p_group;
}

apg_err_t apg_producer_send_oneway(apg_producer_t *p, apg_message_t *msg, char *err, size_t errlen)
{
    apg_err_t e;
    struct psend *ps = psend_new(p, msg, &e, err, errlen);
    if (ps == NULL)
        return e;
    ps->ps_mode = MODE_ONEWAY;
    return psend_wait(p, ps, NULL, err, errlen);
}

apg_err_t apg_producer_send_orderly(apg_producer_t *p, apg_message_t *msg, const char *sharding_key,
                                    apg_send_result_t *res, char *err, size_t errlen)
{
    if (sharding_key == NULL)
        return apg_errf(APG_EINVAL, err, errlen, "sharding key is NULL");
    apg_err_t e;
    struct psend *ps = psend_new(p, msg, &e, err, errlen);
    if (ps == NULL)
        return e;
    ps->ps_mode = MODE_SYNC;
    ps->ps_sel = SEL_HASH;
    ps->ps_key = apg_strdup(sharding_key);
    if (ps->ps_key == NULL) {
        psend_free(ps);
        return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    }
    return psend_wait(p, ps, res, err, errlen);
}

apg_err_t apg_producer_send_select(apg_producer_t *p, apg_message_t *msg, apg_queue_selector sel,
                                   void *sel_arg, apg_send_result_t *res, char *err, size_t errlen)
{
    if (sel == NULL)
        return apg_errf(APG_EINVAL, err, errlen, "selector is NULL");
    apg_err_t e;
    struct psend *ps = psend_new(p, msg, &e, err, errlen);
    if (ps == NULL)
        return e;
    ps->ps_mode = MODE_SYNC;
    ps->ps_sel = SEL_CUSTOM;
    ps->ps_selfn = sel;
    ps->ps_selarg = sel_arg;
    ps->ps_selmsg = msg; /* the caller waits, so borrowing msg is safe */
    return psend_wait(p, ps, res, err, errlen);
}

apg_err_t apg_producer_send_async(apg_producer_t *p, apg_message_t *msg, apg_send_cb cb, void *arg,
                                  char *err, size_t errlen)
{
    if (cb == NULL)
        return apg_errf(APG_EINVAL, err, errlen, "callback is NULL");
    apg_err_t e;
    struct psend *ps = psend_new(p, msg, &e, err, errlen);
    if (ps == NULL)
        return e;
    ps->ps_mode = MODE_ASYNC;
    ps->ps_cb = cb;
    ps->ps_cbarg = arg;
    /* After a wait for the window, a send past its deadline takes the loop
     * path, which fails it as "timed out before it could be written". */
    bool late = inflight_take(p) && apg_now_ms() >= ps->ps_deadline;
    if (!late && psend_direct(p, ps))
        return APG_OK; /* ps belongs to the I/O thread now */
    e = apg_cio_submit(p->p_io, &ps->ps_op);
    if (e != APG_OK) {
        psend_free(ps);
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
            return apg_errf(apg_err_public(e), err, errlen, "cannot encode batch message %zu: %s",
                            i, apg_strerror(e));
        }
    }
    if (body.b_len > (size_t)p->p_conf->max_message_size) {
        apg_buf_free(&body);
        return apg_errf(APG_ETOOBIG, err, errlen, "batch of %zu bytes exceeds maxMessageSize %d",
                        body.b_len, p->p_conf->max_message_size);
    }
    struct psend *ps = apg_malloc(sizeof(*ps));
    if (ps == NULL) {
        apg_buf_free(&body);
        return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    }
    memset(ps, 0, offsetof(struct psend, ps_errmsg));
    ps->ps_own = PS_OWN_TOPIC | PS_OWN_PROPS | PS_OWN_BODY;
    ps->ps_p = p;
    ps->ps_op.op_fn = psend_run;
    ps->ps_batch = true;
    ps->ps_mode = MODE_SYNC;
    ps->ps_body = body.b_data;
    ps->ps_blen = body.b_len;
    char uniq[33];
    apg_msg_uniq_id(uniq);
    char props[96];
    snprintf(props, sizeof(props), "WAIT\001true\002UNIQ_KEY\001%s\002", uniq);
    ps->ps_props = apg_strdup(props);
    ps->ps_topic = apg_strdup(topic);
    snprintf(ps->ps_uniq, sizeof(ps->ps_uniq), "%s", apg_message_id(msgs[0]));
    if (ps->ps_props == NULL || ps->ps_topic == NULL) {
        psend_free(ps);
        return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    }
    ps->ps_born = apg_wall_ms();
    ps->ps_deadline = apg_now_ms() + p->p_conf->send_timeout_ms;
    ps->ps_attempts_left = p->p_conf->retry_times;
    return psend_wait(p, ps, res, err, errlen);
}

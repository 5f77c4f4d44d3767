/* Query by key and lookup by unique id (QUERY_MESSAGE, request code 12).
 *
 * One query asks every master broker of the topic's route (a key's messages
 * may be on any of them), all at once from the I/O thread, and merges the
 * answers: QUERY_NOT_FOUND from a broker adds nothing, any other refusal or a
 * timeout fails the query unless another broker found something. Returned
 * records are checked here as RocketMQ's client does: the topic must match and
 * the key must be a word of KEYS, or for a unique-id lookup equal UNIQ_KEY
 * (the id apg_message_id() gives after a send).
 *
 * Threads: apg_client_query() blocks the caller on a wait object; the route
 * lookup, the requests and the answers run on the client's I/O thread, which
 * alone touches the op until it signals. */
#include <stdio.h>
#include <string.h>

#include "client/client_int.h"
#include "common/mem.h"
#include "protocol/rcode.h"
#include "protocol/remoting.h"

struct qop {
    struct apg_cop q_op;
    const char *q_topic, *q_key;
    int q_max;
    int64_t q_begin, q_end;
    bool q_unique;
    int q_timeout;
    int q_pending; /* I/O thread */
    apg_message_t **q_msgs;
    size_t q_n, q_cap;
    apg_err_t q_err; /* first failure */
    char q_errmsg[256];
    struct apg_cwait q_wait;
};

static void q_fail(struct qop *q, apg_err_t e, const char *msg)
{
    if (q->q_err == APG_OK) {
        q->q_err = e;
        snprintf(q->q_errmsg, sizeof(q->q_errmsg), "%s", msg ? msg : apg_strerror(e));
    }
}

static void q_finish(struct qop *q)
{
    if (q->q_pending == 0)
        apg_cwait_signal(&q->q_wait);
}

static bool word_of(const char *list, const char *w)
{
    size_t wl = strlen(w);
    for (const char *p = list; p && *p;) {
        const char *sp = strchr(p, ' ');
        size_t l = sp ? (size_t)(sp - p) : strlen(p);
        if (l == wl && memcmp(p, w, wl) == 0)
            return true;
        if (!sp)
            break;
        p = sp + 1;
    }
    return false;
}

static apg_err_t q_collect(apg_message_t *m, void *arg)
{
    struct qop *q = arg;
    const char *topic = apg_message_topic(m);
    const char *uniq = apg_message_property(m, "UNIQ_KEY");
    bool keep = topic && strcmp(topic, q->q_topic) == 0 &&
                (q->q_unique ? uniq && strcmp(uniq, q->q_key) == 0
                             : word_of(apg_message_keys(m), q->q_key));
    if (keep && q->q_n == q->q_cap) {
        size_t cap = q->q_cap ? q->q_cap * 2 : 8;
        apg_message_t **nm = apg_realloc(q->q_msgs, cap * sizeof(*nm));
        if (!nm) {
            apg_message_free(m);
            return APG_ENOMEM;
        }
        q->q_msgs = nm;
        q->q_cap = cap;
    }
    if (keep)
        q->q_msgs[q->q_n++] = m;
    else
        apg_message_free(m);
    return APG_OK;
}

static void q_resp(struct apg_cio *io, apg_err_t e, const struct apg_rcmd *resp, const char *errmsg,
                   void *arg)
{
    (void)io;
    struct qop *q = arg;
    q->q_pending--;
    if (e != APG_OK) {
        q_fail(q, e, errmsg);
    } else if (resp->code == APG_RESP_SUCCESS) {
        char err[256];
        apg_err_t de =
            apg_msg_decode_records(resp->body, resp->body_len, q_collect, q, err, sizeof(err));
        if (de != APG_OK)
            q_fail(q, de, err);
    } else if (resp->code != APG_RESP_QUERY_NOT_FOUND) {
        char msg[256];
        const char *name = apg_resp_code_name(resp->code);
        snprintf(msg, sizeof(msg), "QUERY_MESSAGE refused: %d %s: %s", resp->code,
                 name ? name : "?", resp->remark ? resp->remark : "");
        q_fail(q, APG_EBROKER, msg);
    }
    q_finish(q);
}

static void q_on_route(struct apg_cio *io, struct apg_ctopic *t, apg_err_t e, const char *errmsg,
                       void *arg)
{
    struct qop *q = arg;
    if (e != APG_OK) {
        q_fail(q, e, errmsg);
        q_finish(q);
        return;
    }
    const struct apg_croute *rt = &t->ct_route;
    char max[16], begin[24], end[24];
    snprintf(max, sizeof(max), "%d", q->q_max);
    snprintf(begin, sizeof(begin), "%lld", (long long)q->q_begin);
    snprintf(end, sizeof(end), "%lld", (long long)q->q_end);
    for (size_t i = 0; i < rt->rt_nbrokers; i++) {
        const char *addr = rt->rt_brokers[i].ba_read;
        if (!addr)
            continue;
        struct apg_rcmd req;
        apg_rcmd_init_request(&req, APG_REQ_QUERY_MESSAGE, 0, apg_cio_serialize(io));
        apg_rcmd_ext_add(&req, "topic", q->q_topic);
        apg_rcmd_ext_add(&req, "key", q->q_key);
        apg_rcmd_ext_add(&req, "maxNum", max);
        apg_rcmd_ext_add(&req, "beginTimestamp", begin);
        apg_rcmd_ext_add(&req, "endTimestamp", end);
        apg_rcmd_ext_add(&req, "_UNIQUE_KEY_QUERY", q->q_unique ? "true" : "false");
        char msg[256];
        q->q_pending++;
        apg_err_t se =
            apg_cio_call(io, addr, &req, NULL, 0, q->q_timeout, q_resp, q, msg, sizeof(msg));
        if (se != APG_OK) {
            q->q_pending--;
            q_fail(q, se, msg);
        }
    }
    if (q->q_pending == 0 && q->q_err == APG_OK && rt->rt_nbrokers == 0)
        q_fail(q, APG_ENOTFOUND, "the topic's route lists no broker");
    q_finish(q);
}

static void q_run(struct apg_cio *io, struct apg_cop *o)
{
    struct qop *q = (struct qop *)o;
    if (apg_cio_stopping(io)) {
        q_fail(q, APG_ESHUTDOWN, "client is shutting down");
        q_finish(q);
        return;
    }
    apg_cio_route(io, q->q_topic, false, false, q_on_route, q);
}

apg_err_t apg_client_query(struct apg_cio *io, int timeout_ms, int spin_us, const char *topic,
                           const char *key, bool unique, int max_nums, int64_t begin_ms,
                           int64_t end_ms, apg_message_t ***msgs, size_t *n, char *err,
                           size_t errlen)
{
    *msgs = NULL;
    *n = 0;
    if (!topic || !*topic || !key || !*key)
        return apg_errf(APG_EINVAL, err, errlen, "a query needs a topic and a key");
    struct qop q;
    memset(&q, 0, sizeof(q));
    q.q_op.op_fn = q_run;
    q.q_topic = topic;
    q.q_key = key;
    q.q_unique = unique;
    q.q_max = max_nums > 0 ? max_nums : 32;
    q.q_begin = begin_ms;
    q.q_end = end_ms;
    q.q_timeout = timeout_ms;
    apg_cwait_init(&q.q_wait, spin_us);
    apg_err_t e = apg_cio_submit(io, &q.q_op);
    if (e != APG_OK) {
        apg_cwait_destroy(&q.q_wait);
        return apg_errf(APG_ESHUTDOWN, err, errlen, "client is shutting down");
    }
    apg_cwait_wait(&q.q_wait);
    apg_cwait_destroy(&q.q_wait);
    /* Any broker's answer counts; a failure matters only when nothing was
     * found. */
    if (q.q_n == 0 && q.q_err != APG_OK) {
        apg_free(q.q_msgs);
        return apg_errf(apg_err_public(q.q_err), err, errlen, "%s", q.q_errmsg);
    }
    if (q.q_n == 0) {
        apg_free(q.q_msgs);
        return apg_errf(APG_ENOTFOUND, err, errlen, "no message of topic '%s' with %s '%s'", topic,
                        unique ? "unique id" : "key", key);
    }
    *msgs = q.q_msgs;
    *n = q.q_n;
    return APG_OK;
}

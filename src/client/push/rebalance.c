/* Rebalance of the push consumer: which queues this client consumes.
 *
 * Design. Every rebalance_ms, at start and on NOTIFY_CONSUMER_IDS_CHANGED,
 * per topic: refresh the route, ask a broker for the group's consumer ids
 * (clustering; broadcasting takes every queue), allocate with
 * apg_alloc_average, drop queues no longer ours (their offset is committed at
 * once; their cached messages are discarded, their pending tasks skip the
 * listener) and add new ones (offsets.c finds where they start; orderly
 * clustering first takes the queue's lock, orderly.c). A topic without a
 * route yet is tried again with a backoff from 1 s up to rebalance_ms.
 *
 * Threads. I/O thread only; one rebalance per topic at a time (s_busy, with
 * s_again asking for another when it ends). */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "client/push/push_int.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"
#include "protocol/rcode.h"
#include "protocol/remoting.h"

static void queue_add(struct apg_cio *io, struct apg_push_consumer *c, struct psub *s,
                      const apg_mq_t *mq, bool shared)
{
    struct pq *q = apg_push_pq_new(io, c, s, mq);
    if (q == NULL)
        return;
    if (apg_push_locking(c)) {
        /* Its offset is read once the lock is ours: the previous holder
         * commits before it unlocks, so no handover delay is needed. */
        q->q_acquiring = true;
        apg_push_lock_first(io, q);
        return;
    }
    apg_push_queue_start(io, q, shared);
}

void apg_push_queue_drop(struct apg_cio *io, struct apg_push_consumer *c, struct pq *q,
                         struct flush_wait *fw)
{
    for (struct pq **pp = &c->pc_queues; *pp; pp = &(*pp)->q_next) {
        if (*pp == q) {
            *pp = q->q_next;
            break;
        }
    }
    apg_log_debug("client", "%s: queue %s:%s:%d released", apg_cio_client_id(io), q->q_mq.mq_topic,
                  q->q_mq.mq_broker, q->q_mq.mq_queue_id);
    pthread_mutex_lock(&c->pc_mu);
    q->q_dropped = true;
    bool send = q->q_dirty && q->q_commit >= 0 && c->pc_conf->message_model == APG_CLUSTERING;
    apg_mq_t mq = q->q_mq;
    int64_t off = q->q_commit;
    /* Orderly: a worker inside the listener for q commits and unlocks it
     * when the call returns. */
    bool owed = apg_push_locking(c) && q->q_in_listener;
    if (owed) {
        q->q_release_owed = true;
        apg_push_releasing_add(c, &mq);
    } else {
        q->q_dirty = false;
    }
    bool acquiring = q->q_acquiring;
    apg_push_pq_release_locked(q);
    pthread_mutex_unlock(&c->pc_mu);
    if (owed)
        return;
    if (apg_push_locking(c) && !acquiring)
        apg_push_queue_release(io, c, &mq, send ? off : -1, fw, false);
    else if (send)
        apg_push_offset_commit(io, c, &mq, off, fw);
}

/* ---- rebalance (I/O thread) ---- */

static void rebalance_topic(struct apg_cio *io, struct apg_push_consumer *c, struct psub *s);

static void rebalance_apply(struct apg_cio *io, struct apg_push_consumer *c, struct psub *s,
                            apg_mq_t *mqs, size_t n, char **cids, size_t ncids)
{
    size_t *idx = apg_malloc((n ? n : 1) * sizeof(size_t));
    if (idx == NULL)
        return;
    size_t k;
    if (cids == NULL) {
        for (k = 0; k < n; k++)
            idx[k] = k;
    } else {
        k = apg_alloc_average(mqs, n, cids, ncids, apg_cio_client_id(io), idx);
    }
    for (struct pq *q = c->pc_queues, *next; q; q = next) {
        next = q->q_next;
        if (q->q_sub != s)
            continue;
        bool keep = false;
        for (size_t i = 0; i < k && !keep; i++)
            keep = apg_push_mq_eq(&mqs[idx[i]], &q->q_mq);
        if (!keep)
            apg_push_queue_drop(io, c, q, NULL);
    }
    for (size_t i = 0; i < k; i++) {
        bool have = false;
        for (struct pq *q = c->pc_queues; q && !have; q = q->q_next)
            have = apg_push_mq_eq(&q->q_mq, &mqs[idx[i]]);
        if (!have)
            queue_add(io, c, s, &mqs[idx[i]], ncids > 1);
    }
    apg_free(idx);
}

static void rebalance_retry_cb(struct apg_cio *io, void *arg)
{
    struct psub *s = arg;
    s->s_retry_set = false;
    struct apg_push_consumer *c = NULL;
    /* psub has no back pointer; the consumer is the I/O instance's owner. */
    c = s->s_owner;
    if (!apg_cio_stopping(io) && !c->pc_io_stop)
        rebalance_topic(io, c, s);
}

/* A topic without a route yet (e.g. just auto-created by a producer): try
 * again soon, backing off from 1 s up to the rebalance interval. */
static void rebalance_retry(struct apg_cio *io, struct apg_push_consumer *c, struct psub *s)
{
    if (s->s_retry_set)
        return;
    s->s_backoff_ms = s->s_backoff_ms ? s->s_backoff_ms * 2 : 1000;
    if (s->s_backoff_ms > c->pc_conf->rebalance_ms)
        s->s_backoff_ms = c->pc_conf->rebalance_ms;
    s->s_retry_set = true;
    apg_cio_after(io, s->s_backoff_ms, rebalance_retry_cb, s);
}

static void rebalance_done(struct apg_cio *io, struct apg_push_consumer *c, struct psub *s)
{
    s->s_busy = false;
    if (s->s_again && !c->pc_io_stop && !apg_cio_stopping(io)) {
        s->s_again = false;
        rebalance_topic(io, c, s);
    }
}

struct rb_ctx {
    struct apg_push_consumer *rb_c;
    struct psub *rb_s;
};

static void rebalance_cids(struct apg_cio *io, apg_err_t e, const struct apg_rcmd *resp,
                           const char *errmsg, void *arg)
{
    struct rb_ctx *rb = arg;
    struct apg_push_consumer *c = rb->rb_c;
    struct psub *s = rb->rb_s;
    apg_free(rb);
    if (apg_cio_stopping(io) || c->pc_io_stop) {
        s->s_busy = false;
        return;
    }
    if (e != APG_OK || resp->code != 0) {
        apg_log_debug("client", "consumer list of %s unavailable: %s", c->pc_group,
                      e != APG_OK ? errmsg : (resp->remark ? resp->remark : ""));
        rebalance_done(io, c, s);
        rebalance_retry(io, c, s);
        return;
    }
    json_error_t je;
    json_t *root = json_loadb((const char *)resp->body, resp->body_len, 0, &je);
    json_t *list = root ? json_object_get(root, "consumerIdList") : NULL;
    size_t ncids = json_is_array(list) ? json_array_size(list) : 0;
    char **cids = apg_calloc(ncids ? ncids : 1, sizeof(char *));
    size_t k = 0;
    for (size_t i = 0; cids && i < ncids; i++) {
        const char *id = json_string_value(json_array_get(list, i));
        if (id && (cids[k] = apg_strdup(id)) != NULL)
            k++;
    }
    struct apg_ctopic *t = apg_cio_topic_find(io, s->s_topic);
    if (cids && k > 0 && t && t->ct_have) {
        size_t n = t->ct_route.rt_nrq;
        apg_mq_t *mqs = apg_malloc((n ? n : 1) * sizeof(*mqs));
        if (mqs) {
            memcpy(mqs, t->ct_route.rt_rq, n * sizeof(*mqs));
            rebalance_apply(io, c, s, mqs, n, cids, k);
            apg_free(mqs);
        }
    }
    for (size_t i = 0; i < k; i++)
        apg_free(cids[i]);
    apg_free(cids);
    json_decref(root);
    rebalance_done(io, c, s);
}

static void rebalance_on_route(struct apg_cio *io, struct apg_ctopic *t, apg_err_t e,
                               const char *errmsg, void *arg)
{
    struct rb_ctx *rb = arg;
    struct apg_push_consumer *c = rb->rb_c;
    struct psub *s = rb->rb_s;
    if (e != APG_OK || apg_cio_stopping(io) || c->pc_io_stop) {
        if (e != APG_OK && e != APG_ESHUTDOWN && strncmp(s->s_topic, "%RETRY%", 7) != 0)
            apg_log_debug("client", "rebalance of '%s': %s", s->s_topic, errmsg);
        apg_free(rb);
        if (e == APG_ESHUTDOWN || apg_cio_stopping(io)) {
            s->s_busy = false;
            return;
        }
        rebalance_done(io, c, s);
        rebalance_retry(io, c, s);
        return;
    }
    s->s_backoff_ms = 0;
    const struct apg_croute *rt = &t->ct_route;
    if (c->pc_conf->message_model == APG_BROADCASTING) {
        apg_free(rb);
        apg_mq_t *mqs = apg_malloc((rt->rt_nrq ? rt->rt_nrq : 1) * sizeof(*mqs));
        if (mqs) {
            memcpy(mqs, rt->rt_rq, rt->rt_nrq * sizeof(*mqs));
            rebalance_apply(io, c, s, mqs, rt->rt_nrq, NULL, 0);
            apg_free(mqs);
        }
        rebalance_done(io, c, s);
        return;
    }
    /* Any broker of the topic knows the group's members (all heartbeat everywhere). */
    const char *addr = NULL;
    for (size_t i = 0; i < rt->rt_nbrokers && addr == NULL; i++)
        addr = rt->rt_brokers[i].ba_read;
    struct apg_rcmd req;
    apg_rcmd_init_request(&req, APG_REQ_GET_CONSUMER_LIST_BY_GROUP, 0, apg_cio_serialize(io));
    apg_rcmd_ext_add(&req, "consumerGroup", c->pc_group);
    char err[256];
    if (addr == NULL ||
        apg_cio_call(io, addr, &req, NULL, 0, 0, rebalance_cids, rb, err, sizeof(err)) != APG_OK) {
        apg_free(rb);
        rebalance_done(io, c, s);
    }
}

static void rebalance_topic(struct apg_cio *io, struct apg_push_consumer *c, struct psub *s)
{
    if (s->s_busy) {
        s->s_again = true;
        return;
    }
    struct rb_ctx *rb = apg_malloc(sizeof(*rb));
    if (rb == NULL)
        return;
    rb->rb_c = c;
    rb->rb_s = s;
    s->s_busy = true;
    apg_cio_route(io, s->s_topic, false, true, rebalance_on_route, rb);
}

void apg_push_rebalance_all(struct apg_cio *io, struct apg_push_consumer *c)
{
    c->pc_next_rebalance = apg_now_ms() + c->pc_conf->rebalance_ms;
    for (struct psub *s = c->pc_subs; s; s = s->s_next)
        rebalance_topic(io, c, s);
}

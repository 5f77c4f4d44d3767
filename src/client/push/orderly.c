/* Orderly consumption of the push consumer: broker-side queue locks
 * (clustering) and what happens when the orderly listener declines.
 *
 * Design. See the "queue locks" block below. A declined orderly task is
 * retried in place after suspend_current_ms; messages that failed
 * maxReconsumeTimes times go to the dead-letter queue.
 *
 * Threads. Locks are asked, renewed and released on the I/O thread;
 * q_locked and q_lock_ms are read by workers under pc_mu.
 * apg_push_orderly_give_up runs on a worker. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/push/push_int.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"
#include "protocol/rcode.h"
#include "protocol/remoting.h"

/* ---- queue locks: orderly clustering (I/O thread) ----
 *
 * A queue is pulled and consumed only while this client holds its lock on
 * the queue's broker. queue_add asks for it (LOCK_BATCH_MQ with that one
 * queue) and retries every LOCK_RETRY_MS while another member holds it;
 * once granted, the start offset is read (the previous holder committed
 * before it unlocked). Every rebalanceLockInterval all held queues are
 * renewed, one request per broker; a queue left out of the answer is marked
 * unlocked (no pulls, no listener calls) until a renewal wins it back, and
 * workers also stop on a lock older than rebalanceLockMaxLiveTime, so a
 * client cut off from its broker stops before the broker's lease lapses.
 * Giving a queue up (rebalance, shutdown) commits its offset, then unlocks
 * it; while a worker is inside the listener for it, that worker does both
 * after the call returns (q_release_owed), so the next holder never starts
 * while this one still processes. */

struct qlock {
    struct apg_push_consumer *ql_c;
    size_t ql_n;
    struct pq *ql_qs[]; /* referenced */
};

static struct qlock *qlock_new(struct apg_push_consumer *c, struct pq *const *qs, size_t n)
{
    struct qlock *ql = apg_malloc(sizeof(*ql) + (n ? n : 1) * sizeof(struct pq *));
    if (ql == NULL)
        return NULL;
    ql->ql_c = c;
    ql->ql_n = n;
    pthread_mutex_lock(&c->pc_mu);
    for (size_t i = 0; i < n; i++) {
        ql->ql_qs[i] = qs[i];
        qs[i]->q_refs++;
    }
    pthread_mutex_unlock(&c->pc_mu);
    return ql;
}

static void qlock_free(struct qlock *ql)
{
    pthread_mutex_lock(&ql->ql_c->pc_mu);
    for (size_t i = 0; i < ql->ql_n; i++)
        apg_push_pq_release_locked(ql->ql_qs[i]);
    pthread_mutex_unlock(&ql->ql_c->pc_mu);
    apg_free(ql);
}

/* Sends LOCK_BATCH_MQ or UNLOCK_BATCH_MQ for n queues of one broker to its
 * master. cb NULL: oneway. */
static apg_err_t lock_call(struct apg_cio *io, struct apg_push_consumer *c, int code,
                           const apg_mq_t *mqs, size_t n, apg_cio_cb cb, void *arg)
{
    struct apg_ctopic *t = apg_cio_topic_find(io, mqs[0].mq_topic);
    const char *addr = t && t->ct_have ? apg_croute_master(&t->ct_route, mqs[0].mq_broker) : NULL;
    if (addr == NULL)
        return APG_ENOTFOUND;
    json_t *set = json_array();
    for (size_t i = 0; set && i < n; i++)
        json_array_append_new(set,
                              json_pack("{s:s, s:s, s:i}", "topic", mqs[i].mq_topic, "brokerName",
                                        mqs[i].mq_broker, "queueId", mqs[i].mq_queue_id));
    json_t *root = set ? json_pack("{s:s, s:s, s:o}", "consumerGroup", c->pc_group, "clientId",
                                   apg_cio_client_id(io), "mqSet", set)
                       : NULL;
    char *body = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    if (body == NULL)
        return APG_ENOMEM;
    struct apg_rcmd req;
    apg_rcmd_init_request(&req, code, 0, apg_cio_serialize(io));
    char err[256];
    apg_err_t e = apg_cio_call(io, addr, &req, body, strlen(body), 0, cb, arg, err, sizeof(err));
    free(body);
    return e;
}

/* The parsed body of a LOCK_BATCH_MQ answer (free with json_decref), or
 * NULL when it is not JSON. */
static json_t *lock_answer(const struct apg_rcmd *resp)
{
    json_error_t je;
    return json_loadb((const char *)resp->body, resp->body_len, 0, &je);
}

/* True when the answer's lockOKMQSet holds mq. */
static bool lock_granted(const json_t *answer, const apg_mq_t *mq)
{
    json_t *set = answer ? json_object_get(answer, "lockOKMQSet") : NULL;
    size_t i;
    json_t *m;
    json_array_foreach(set, i, m)
    {
        const char *topic = json_string_value(json_object_get(m, "topic"));
        const char *broker = json_string_value(json_object_get(m, "brokerName"));
        json_t *qid = json_object_get(m, "queueId");
        if (topic && broker && json_is_integer(qid) && strcmp(topic, mq->mq_topic) == 0 &&
            strcmp(broker, mq->mq_broker) == 0 && json_integer_value(qid) == mq->mq_queue_id)
            return true;
    }
    return false;
}

/* The queues being given up (I/O thread only): a queue is not asked for
 * again until its commit and unlock are answered, so an unlock of ours can
 * never land after a new lock of ours for the same queue. */
void apg_push_releasing_add(struct apg_push_consumer *c, const apg_mq_t *mq)
{
    if (c->pc_nreleasing == c->pc_capreleasing) {
        size_t cap = c->pc_capreleasing ? c->pc_capreleasing * 2 : 8;
        apg_mq_t *n = apg_realloc(c->pc_releasing, cap * sizeof(*n));
        if (n == NULL)
            return;
        c->pc_releasing = n;
        c->pc_capreleasing = cap;
    }
    c->pc_releasing[c->pc_nreleasing++] = *mq;
}

static void releasing_del(struct apg_push_consumer *c, const apg_mq_t *mq)
{
    for (size_t i = 0; i < c->pc_nreleasing; i++)
        if (apg_push_mq_eq(&c->pc_releasing[i], mq)) {
            c->pc_releasing[i] = c->pc_releasing[--c->pc_nreleasing];
            return;
        }
}

static bool releasing_has(const struct apg_push_consumer *c, const apg_mq_t *mq)
{
    for (size_t i = 0; i < c->pc_nreleasing; i++)
        if (apg_push_mq_eq(&c->pc_releasing[i], mq))
            return true;
    return false;
}

struct qrel {
    struct apg_push_consumer *r_c;
    apg_mq_t r_mq;
    struct flush_wait *r_fw; /* shutdown: counted until answered */
};

static void release_end(struct qrel *r)
{
    releasing_del(r->r_c, &r->r_mq);
    if (r->r_fw && --r->r_fw->fw_pending == 0)
        apg_cwait_signal(&r->r_fw->fw_wait);
    apg_free(r);
}

static void unlock_resp(struct apg_cio *io, apg_err_t e, const struct apg_rcmd *resp,
                        const char *errmsg, void *arg)
{
    release_end(arg);
}

static void release_committed(struct apg_cio *io, apg_err_t e, const struct apg_rcmd *resp,
                              const char *errmsg, void *arg)
{
    struct qrel *r = arg;
    if (apg_cio_stopping(io) ||
        lock_call(io, r->r_c, APG_REQ_UNLOCK_BATCH_MQ, &r->r_mq, 1, unlock_resp, r) != APG_OK)
        release_end(r);
}

/* Gives mq up: commits off (if >= 0), then unlocks once the commit is
 * answered, so the next holder reads this offset. listed: mq is already
 * in pc_releasing (given up while a listener call ran). */
void apg_push_queue_release(struct apg_cio *io, struct apg_push_consumer *c, const apg_mq_t *mq,
                            int64_t off, struct flush_wait *fw, bool listed)
{
    if (!listed)
        apg_push_releasing_add(c, mq);
    struct qrel *r = apg_malloc(sizeof(*r));
    if (r == NULL) {
        releasing_del(c, mq); /* the lease lapses by itself */
        return;
    }
    r->r_c = c;
    r->r_mq = *mq;
    r->r_fw = fw;
    if (fw)
        fw->fw_pending++;
    struct apg_ccommit *cm =
        off >= 0 ? apg_ccommit_new(c->pc_group, mq, off, release_committed, r) : NULL;
    if (cm)
        apg_ccommit_start(io, cm);
    else
        release_committed(io, APG_OK, NULL, NULL, r);
}

static void qlock_first_again(struct apg_cio *io, void *arg)
{
    struct pq *q = arg;
    struct apg_push_consumer *c = q->q_c;
    pthread_mutex_lock(&c->pc_mu);
    bool dropped = q->q_dropped;
    apg_push_pq_release_locked(q); /* the timer's reference */
    pthread_mutex_unlock(&c->pc_mu);
    if (!dropped && !apg_cio_stopping(io) && !c->pc_io_stop)
        apg_push_lock_first(io, q);
}

static void qlock_first_resp(struct apg_cio *io, apg_err_t e, const struct apg_rcmd *resp,
                             const char *errmsg, void *arg)
{
    struct qlock *ql = arg;
    struct pq *q = ql->ql_qs[0];
    struct apg_push_consumer *c = ql->ql_c;
    json_t *answer = e == APG_OK && resp->code == APG_RESP_SUCCESS ? lock_answer(resp) : NULL;
    bool ok = lock_granted(answer, &q->q_mq);
    json_decref(answer);
    if (e == APG_OK && resp->code != APG_RESP_SUCCESS)
        apg_log_warn("client", "lock of %s:%s:%d refused: %d %s", q->q_mq.mq_topic,
                     q->q_mq.mq_broker, q->q_mq.mq_queue_id, resp->code,
                     resp->remark ? resp->remark : "");
    pthread_mutex_lock(&c->pc_mu);
    bool dropped = q->q_dropped;
    if (ok && !dropped) {
        q->q_locked = true;
        q->q_lock_ms = apg_now_ms();
    }
    q->q_refs++; /* kept for the retry timer or for apg_push_queue_start */
    pthread_mutex_unlock(&c->pc_mu);
    qlock_free(ql);
    bool stop = apg_cio_stopping(io) || c->pc_io_stop;
    if (dropped || stop) {
        if (ok && dropped && !stop)
            apg_push_queue_release(io, c, &q->q_mq, -1, NULL,
                                   false); /* granted after we gave it up */
        pthread_mutex_lock(&c->pc_mu);
        apg_push_pq_release_locked(q);
        pthread_mutex_unlock(&c->pc_mu);
        return;
    }
    if (!ok) {
        apg_log_debug("client", "%s: queue %s:%s:%d still locked by another member; retrying",
                      apg_cio_client_id(io), q->q_mq.mq_topic, q->q_mq.mq_broker,
                      q->q_mq.mq_queue_id);
        apg_cio_after(io, LOCK_RETRY_MS, qlock_first_again, q);
        return;
    }
    q->q_acquiring = false;
    apg_log_debug("client", "%s: queue %s:%s:%d locked", apg_cio_client_id(io), q->q_mq.mq_topic,
                  q->q_mq.mq_broker, q->q_mq.mq_queue_id);
    pthread_mutex_lock(&c->pc_mu);
    apg_push_pq_release_locked(q);
    pthread_mutex_unlock(&c->pc_mu);
    apg_push_queue_start(io, q, false);
}

void apg_push_lock_first(struct apg_cio *io, struct pq *q)
{
    struct apg_push_consumer *c = q->q_c;
    if (releasing_has(c, &q->q_mq)) { /* our own unlock of it is still on its way */
        pthread_mutex_lock(&c->pc_mu);
        q->q_refs++;
        pthread_mutex_unlock(&c->pc_mu);
        apg_cio_after(io, LOCK_WAIT_MS, qlock_first_again, q);
        return;
    }
    struct qlock *ql = qlock_new(q->q_c, &q, 1);
    if (ql == NULL)
        return;
    if (lock_call(io, q->q_c, APG_REQ_LOCK_BATCH_MQ, &q->q_mq, 1, qlock_first_resp, ql) != APG_OK)
        qlock_first_resp(io, APG_EIO, NULL, "no broker address", ql);
}

static void renew_resp(struct apg_cio *io, apg_err_t e, const struct apg_rcmd *resp,
                       const char *errmsg, void *arg)
{
    struct qlock *ql = arg;
    struct apg_push_consumer *c = ql->ql_c;
    json_t *answer = e == APG_OK && resp->code == APG_RESP_SUCCESS ? lock_answer(resp) : NULL;
    if (answer) {
        int64_t now = apg_now_ms();
        for (size_t i = 0; i < ql->ql_n; i++) {
            struct pq *q = ql->ql_qs[i];
            bool ok = lock_granted(answer, &q->q_mq);
            pthread_mutex_lock(&c->pc_mu);
            bool was = q->q_locked;
            q->q_locked = ok;
            if (ok)
                q->q_lock_ms = now;
            pthread_mutex_unlock(&c->pc_mu);
            if (was != ok)
                apg_log_info("client", "%s: lock of queue %s:%s:%d %s", apg_cio_client_id(io),
                             q->q_mq.mq_topic, q->q_mq.mq_broker, q->q_mq.mq_queue_id,
                             ok ? "regained" : "lost to another member; consumption paused");
        }
    } else {
        apg_log_debug("client", "lock renewal failed: %s",
                      e != APG_OK ? errmsg : (resp->remark ? resp->remark : ""));
    }
    json_decref(answer);
    qlock_free(ql);
}

/* Renews the locks of every queue we hold, one request per broker. */
void apg_push_locks_renew(struct apg_cio *io, struct apg_push_consumer *c)
{
    size_t n = 0;
    for (struct pq *q = c->pc_queues; q; q = q->q_next)
        n++;
    struct pq **qs = apg_malloc((n ? n : 1) * sizeof(*qs));
    apg_mq_t *mqs = apg_malloc((n ? n : 1) * sizeof(*mqs));
    bool *seen = apg_calloc(n ? n : 1, sizeof(*seen));
    struct pq **all = apg_malloc((n ? n : 1) * sizeof(*all));
    if (qs && mqs && seen && all) {
        size_t k = 0;
        for (struct pq *q = c->pc_queues; q; q = q->q_next)
            all[k++] = q;
        for (size_t i = 0; i < n; i++) {
            if (seen[i] || all[i]->q_acquiring)
                continue;
            size_t m = 0;
            for (size_t j = i; j < n; j++) {
                if (seen[j] || all[j]->q_acquiring ||
                    strcmp(all[j]->q_mq.mq_broker, all[i]->q_mq.mq_broker) != 0)
                    continue;
                seen[j] = true;
                qs[m] = all[j];
                mqs[m++] = all[j]->q_mq;
            }
            struct qlock *ql = qlock_new(c, qs, m);
            if (ql && lock_call(io, c, APG_REQ_LOCK_BATCH_MQ, mqs, m, renew_resp, ql) != APG_OK)
                qlock_free(ql);
        }
    }
    apg_free(qs);
    apg_free(mqs);
    apg_free(seen);
    apg_free(all);
}

/* Orderly listener declined t (no lock held): messages already retried
 * maxReconsumeTimes times go to the dead-letter queue (CONSUMER_SEND_MSG_BACK
 * with delayLevel -1) and count as done; t keeps the rest, in order, for a
 * retry in place. Returns how many remain. */
size_t apg_push_orderly_give_up(struct apg_push_consumer *c, struct pq *q, struct ptask *t)
{
    size_t keep = 0;
    for (size_t i = 0; i < t->t_n; i++) {
        apg_message_t *m = t->t_msgs[i];
        if (m->m_reconsume >= c->pc_conf->max_reconsume) {
            struct pop op;
            memset(&op, 0, sizeof(op));
            op.po_kind = POP_BACK;
            op.po_msg = m;
            op.po_dlq = true;
            if (apg_push_op_exec(c, &op) == APG_OK) {
                apg_log_warn("client",
                             "orderly group %s: message %s of %s:%d failed %d times; moved to "
                             "%%DLQ%%%s",
                             c->pc_group, m->m_offset_id, m->m_topic, m->m_queue_id,
                             m->m_reconsume + 1, c->pc_group);
                pthread_mutex_lock(&c->pc_mu);
                apg_push_pq_done_locked(q, &t->t_seq[i], 1);
                pthread_mutex_unlock(&c->pc_mu);
                continue;
            }
        }
        t->t_msgs[keep] = m;
        t->t_seq[keep++] = t->t_seq[i];
    }
    t->t_n = keep;
    return keep;
}

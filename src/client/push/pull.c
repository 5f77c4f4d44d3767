/* Long-polling pulls of the push consumer.
 *
 * Design. Each process queue has at most one PULL_MESSAGE out (q_pulling).
 * The response is decoded on the I/O thread, tag-filtered (SQL92 is filtered
 * by the broker), appended to the queue's cache and cut into tasks; the next
 * pull follows at once. Flow control: a queue whose cache holds
 * max_cached_msgs messages or max_cached_mb MiB waits FLOW_DELAY_MS before
 * its next pull; errors wait ERROR_DELAY_MS. Orderly clustering pulls only
 * while the queue's lock is held.
 *
 * Threads. I/O thread only; the cache is touched under pc_mu. A pull or a
 * wait holds a reference on its queue. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "client/push/push_int.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"
#include "protocol/rcode.h"
#include "protocol/remoting.h"

/* ---- pulling (I/O thread) ---- */

static void pull_later_cb(struct apg_cio *io, void *arg)
{
    struct pq *q = arg;
    struct apg_push_consumer *c = q->q_c;
    q->q_pulling = false;
    pthread_mutex_lock(&c->pc_mu);
    bool dropped = q->q_dropped;
    apg_push_pq_release_locked(q);
    pthread_mutex_unlock(&c->pc_mu);
    if (!dropped && !apg_cio_stopping(io) && !c->pc_io_stop)
        apg_push_pull_start(io, q);
}

/* Keeps q_pulling set and a reference while waiting. */
static void pull_later(struct apg_cio *io, struct pq *q, int ms)
{
    pthread_mutex_lock(&q->q_c->pc_mu);
    q->q_refs++;
    pthread_mutex_unlock(&q->q_c->pc_mu);
    q->q_pulling = true;
    apg_cio_after(io, ms, pull_later_cb, q);
}

struct pull_sink {
    struct apg_push_consumer *ps_c;
    struct pq *ps_q;
};

static apg_err_t pull_sink_msg(apg_message_t *m, void *arg)
{
    struct pull_sink *s = arg;
    struct pq *q = s->ps_q;
    const char *tag = apg_message_tags(m);
    if (!q->q_sub->s_sql && !apg_tagexpr_match_tag(&q->q_sub->s_te, tag, tag ? strlen(tag) : 0)) {
        apg_message_free(m);
        return APG_OK;
    }
    /* A retried message shows its original topic, as Java does. */
    const char *orig = apg_msg_prop_get(m, "RETRY_TOPIC");
    if (orig && strcmp(q->q_mq.mq_topic, s->ps_c->pc_retry_topic) == 0) {
        char *tcopy = apg_strdup(orig);
        if (tcopy) {
            apg_msg_part_free(m, m->m_topic);
            m->m_topic = tcopy;
        }
    }
    /* Caller holds pc_mu. */
    if (apg_push_pq_append_locked(q, apg_message_queue_offset(m), m) != APG_OK) {
        apg_message_free(m);
        return APG_ENOMEM;
    }
    q->q_sub->s_stats.ps_pulled++;
    return APG_OK;
}

static void pull_resp(struct apg_cio *io, apg_err_t e, const struct apg_rcmd *resp,
                      const char *errmsg, void *arg)
{
    struct pq *q = arg;
    struct apg_push_consumer *c = q->q_c;
    q->q_pulling = false;
    pthread_mutex_lock(&c->pc_mu);
    bool dropped = q->q_dropped;
    pthread_mutex_unlock(&c->pc_mu);
    if (dropped || e == APG_ESHUTDOWN || apg_cio_stopping(io) || c->pc_io_stop) {
        pthread_mutex_lock(&c->pc_mu);
        apg_push_pq_release_locked(q);
        pthread_mutex_unlock(&c->pc_mu);
        return;
    }
    int delay = 0;
    if (e != APG_OK) {
        apg_log_debug("client", "pull %s:%d failed: %s", q->q_mq.mq_broker, q->q_mq.mq_queue_id,
                      errmsg);
        delay = ERROR_DELAY_MS;
    } else {
        q->q_last_pull_ms = apg_wall_ms();
        int64_t next = q->q_next_pull;
        apg_rcmd_ext_i64(resp, "nextBeginOffset", &next);
        switch (resp->code) {
        case APG_RESP_SUCCESS: {
            char err[256];
            struct pull_sink s = {c, q};
            pthread_mutex_lock(&c->pc_mu);
            apg_err_t de = apg_msg_decode_records(resp->body, resp->body_len, pull_sink_msg, &s,
                                                  err, sizeof(err));
            if (de != APG_OK)
                apg_log_warn("client", "bad pull body from %s:%d: %s", q->q_mq.mq_broker,
                             q->q_mq.mq_queue_id, err);
            q->q_pulled = next;
            if (q->q_len == 0 && q->q_commit != next) {
                q->q_commit = next; /* everything was filtered out */
                q->q_dirty = true;
            }
            apg_push_pq_dispatch_locked(c, q);
            q->q_sub->s_stats.ps_pulls++;
            q->q_sub->s_stats.ps_pull_rt_ms += apg_now_ms() - q->q_pull_sent_ms;
            pthread_mutex_unlock(&c->pc_mu);
            q->q_next_pull = next;
            break;
        }
        case APG_RESP_PULL_NOT_FOUND:
        case APG_RESP_PULL_RETRY_IMMEDIATELY:
            q->q_next_pull = next;
            break;
        case APG_RESP_PULL_OFFSET_MOVED:
            apg_log_warn("client", "offset %lld of %s:%d moved to %lld", (long long)q->q_next_pull,
                         q->q_mq.mq_broker, q->q_mq.mq_queue_id, (long long)next);
            q->q_next_pull = next;
            pthread_mutex_lock(&c->pc_mu);
            q->q_pulled = next;
            if (q->q_len == 0) {
                q->q_commit = next;
                q->q_dirty = true;
            }
            pthread_mutex_unlock(&c->pc_mu);
            break;
        default:
            apg_log_debug("client", "pull %s:%d refused: %d %s", q->q_mq.mq_broker,
                          q->q_mq.mq_queue_id, resp->code, resp->remark ? resp->remark : "");
            delay = ERROR_DELAY_MS;
        }
    }
    pthread_mutex_lock(&c->pc_mu);
    apg_push_pq_release_locked(q); /* the pull's reference; the list still holds one */
    pthread_mutex_unlock(&c->pc_mu);
    if (delay)
        pull_later(io, q, delay);
    else
        apg_push_pull_start(io, q);
}

void apg_push_pull_start(struct apg_cio *io, struct pq *q)
{
    struct apg_push_consumer *c = q->q_c;
    if (q->q_pulling || c->pc_io_stop || apg_cio_stopping(io))
        return;
    pthread_mutex_lock(&c->pc_mu);
    bool dropped = q->q_dropped;
    bool full = q->q_len >= (size_t)c->pc_conf->max_cached_msgs ||
                q->q_bytes >= (size_t)c->pc_conf->max_cached_mb * 1024 * 1024;
    bool unlocked = apg_push_locking(c) && !q->q_locked;
    pthread_mutex_unlock(&c->pc_mu);
    if (dropped)
        return;
    if (unlocked) { /* the renewal lost it: wait until a renewal wins it back */
        pull_later(io, q, ERROR_DELAY_MS);
        return;
    }
    if (full) {
        pull_later(io, q, FLOW_DELAY_MS);
        return;
    }
    struct apg_ctopic *t = apg_cio_topic_find(io, q->q_mq.mq_topic);
    const char *addr = t && t->ct_have ? apg_croute_reader(&t->ct_route, q->q_mq.mq_broker) : NULL;
    if (addr == NULL) {
        pull_later(io, q, ERROR_DELAY_MS);
        return;
    }
    struct apg_rcmd req;
    char qid[16], off[24], max[16], flag[16], susp[24], subv[24];
    apg_rcmd_init_request(&req, APG_REQ_PULL_MESSAGE, 0, apg_cio_serialize(io));
    snprintf(qid, sizeof(qid), "%d", q->q_mq.mq_queue_id);
    snprintf(off, sizeof(off), "%lld", (long long)q->q_next_pull);
    snprintf(max, sizeof(max), "%d", c->pc_conf->pull_batch);
    snprintf(flag, sizeof(flag), "%d", PULL_FLAG_SUBSCRIPTION | PULL_FLAG_SUSPEND);
    snprintf(susp, sizeof(susp), "%d", c->pc_conf->suspend_ms);
    snprintf(subv, sizeof(subv), "%lld", (long long)time(NULL) * 1000);
    apg_rcmd_ext_add(&req, "consumerGroup", c->pc_group);
    apg_rcmd_ext_add(&req, "topic", q->q_mq.mq_topic);
    apg_rcmd_ext_add(&req, "queueId", qid);
    apg_rcmd_ext_add(&req, "queueOffset", off);
    apg_rcmd_ext_add(&req, "maxMsgNums", max);
    apg_rcmd_ext_add(&req, "sysFlag", flag);
    apg_rcmd_ext_add(&req, "commitOffset", "0");
    apg_rcmd_ext_add(&req, "suspendTimeoutMillis", susp);
    apg_rcmd_ext_add(&req, "subscription", q->q_sub->s_expr);
    apg_rcmd_ext_add(&req, "subVersion", subv);
    apg_rcmd_ext_add(&req, "expressionType", q->q_sub->s_sql ? "SQL92" : "TAG");
    pthread_mutex_lock(&c->pc_mu);
    q->q_refs++;
    pthread_mutex_unlock(&c->pc_mu);
    q->q_pulling = true;
    q->q_pull_sent_ms = apg_now_ms();
    char err[256];
    if (apg_cio_call(io, addr, &req, NULL, 0, c->pc_conf->suspend_ms + c->pc_conf->timeout_ms,
                     pull_resp, q, err, sizeof(err)) != APG_OK) {
        q->q_pulling = false;
        pthread_mutex_lock(&c->pc_mu);
        apg_push_pq_release_locked(q);
        pthread_mutex_unlock(&c->pc_mu);
        pull_later(io, q, ERROR_DELAY_MS);
    }
}

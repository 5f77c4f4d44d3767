/* Offset store of the push consumer: where a queue starts and where its
 * progress is recorded.
 *
 * Start. A newly assigned queue starts at the broker's committed offset for
 * the group (QUERY_CONSUMER_OFFSET), or, broadcasting, at the offset in the
 * local file; without one, consumeFromWhere decides (first offset, or
 * GET_MAX_OFFSET). Retry topics always start at their first offset. An
 * unanswered lookup is asked again every ERROR_DELAY_MS.
 *
 * Commits. Every persistConsumerOffsetInterval the I/O thread sends each
 * changed offset (oneway UPDATE_CONSUMER_OFFSET) or, broadcasting, rewrites
 * the offsets file (apg_file_write_atomic: fsynced .tmp renamed over it,
 * then the directory fsynced, so a crash leaves the old or the new file).
 * At shutdown the commits are acknowledged requests counted by a
 * struct flush_wait.
 *
 * Threads. I/O thread, except apg_push_offsets_load (before the I/O
 * starts); queue offsets and pc_file are read and written under pc_mu. */
#include <stdio.h>
#include <string.h>

#include "client/push/push_int.h"
#include "common/file.h"
#include "common/log.h"
#include "common/mem.h"
#include "protocol/rcode.h"
#include "protocol/remoting.h"

/* ---- offsets file (broadcasting) ---- */

void apg_push_offsets_load(struct apg_push_consumer *c)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s.offsets", c->pc_offdir, c->pc_group);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    char line[1024];
    while (fgets(line, sizeof(line), f)) {
        struct offline ol;
        memset(&ol, 0, sizeof(ol));
        long long off;
        if (sscanf(line, "%255s %127s %d %lld", ol.ol_mq.mq_topic, ol.ol_mq.mq_broker,
                   &ol.ol_mq.mq_queue_id, &off) != 4)
            continue;
        ol.ol_off = off;
        struct offline *n = apg_realloc(c->pc_file, (c->pc_nfile + 1) * sizeof(*n));
        if (n == NULL)
            break;
        c->pc_file = n;
        c->pc_file[c->pc_nfile++] = ol;
    }
    fclose(f);
}

/* Caller holds pc_mu: merges the queues' offsets into the table and
 * rewrites the file atomically. */
static void file_offsets_store_locked(struct apg_push_consumer *c)
{
    bool changed = false;
    for (struct pq *q = c->pc_queues; q; q = q->q_next) {
        if (!q->q_dirty || q->q_commit < 0)
            continue;
        q->q_dirty = false;
        changed = true;
        size_t i = 0;
        while (i < c->pc_nfile && !apg_push_mq_eq(&c->pc_file[i].ol_mq, &q->q_mq))
            i++;
        if (i == c->pc_nfile) {
            struct offline *n = apg_realloc(c->pc_file, (c->pc_nfile + 1) * sizeof(*n));
            if (n == NULL)
                continue;
            c->pc_file = n;
            c->pc_file[c->pc_nfile++].ol_mq = q->q_mq;
        }
        c->pc_file[i].ol_off = q->q_commit;
    }
    if (!changed)
        return;
    struct apg_buf b = APG_BUF_INIT;
    apg_err_t e = APG_OK;
    for (size_t i = 0; e == APG_OK && i < c->pc_nfile; i++)
        e = apg_buf_printf(&b, "%s %s %d %lld\n", c->pc_file[i].ol_mq.mq_topic,
                           c->pc_file[i].ol_mq.mq_broker, c->pc_file[i].ol_mq.mq_queue_id,
                           (long long)c->pc_file[i].ol_off);
    char path[1024], err[256] = "out of memory";
    snprintf(path, sizeof(path), "%s/%s.offsets", c->pc_offdir, c->pc_group);
    if (e == APG_OK)
        e = apg_file_write_atomic(path, b.b_data, b.b_len, err, sizeof(err));
    if (e != APG_OK)
        apg_log_warn("client", "cannot write offsets file %s: %s", path, err);
    apg_buf_free(&b);
}

/* ---- offset commits to the broker (I/O thread) ---- */

void apg_push_flush_resp(struct apg_cio *io, apg_err_t e, const struct apg_rcmd *resp,
                         const char *errmsg, void *arg)
{
    struct flush_wait *fw = arg;
    if (--fw->fw_pending == 0)
        apg_cwait_signal(&fw->fw_wait);
}

void apg_push_offset_commit(struct apg_cio *io, struct apg_push_consumer *c, const apg_mq_t *mq,
                            int64_t off, struct flush_wait *fw)
{
    struct apg_ccommit *cm =
        apg_ccommit_new(c->pc_group, mq, off, fw ? apg_push_flush_resp : NULL, fw);
    if (cm == NULL)
        return;
    if (fw)
        fw->fw_pending++;
    apg_ccommit_start(io, cm);
}

/* Sends every changed offset (clustering) or rewrites the file. */
void apg_push_offsets_commit_all(struct apg_cio *io, struct apg_push_consumer *c,
                                 struct flush_wait *fw)
{
    pthread_mutex_lock(&c->pc_mu);
    if (c->pc_conf->message_model == APG_BROADCASTING) {
        file_offsets_store_locked(c);
        pthread_mutex_unlock(&c->pc_mu);
        return;
    }
    size_t n = 0;
    for (struct pq *q = c->pc_queues; q; q = q->q_next)
        n++;
    struct offline *list = apg_malloc((n ? n : 1) * sizeof(*list));
    size_t k = 0;
    for (struct pq *q = c->pc_queues; list && q; q = q->q_next) {
        if (!q->q_dirty || q->q_commit < 0)
            continue;
        q->q_dirty = false;
        list[k].ol_mq = q->q_mq;
        list[k++].ol_off = q->q_commit;
    }
    pthread_mutex_unlock(&c->pc_mu);
    for (size_t i = 0; i < k; i++)
        apg_push_offset_commit(io, c, &list[i].ol_mq, list[i].ol_off, fw);
    apg_free(list);
}

/* ---- a queue's start offset (I/O thread) ---- */

struct qadd {
    struct pq *qa_q;
    int qa_step; /* 0: query committed, 1: max offset */
};

void apg_push_queue_begin(struct apg_cio *io, struct pq *q, int64_t off)
{
    q->q_next_pull = off;
    pthread_mutex_lock(&q->q_c->pc_mu);
    q->q_pulled = off;
    q->q_commit = off;
    pthread_mutex_unlock(&q->q_c->pc_mu);
    apg_push_pull_start(io, q);
}

static void qadd_ask(struct apg_cio *io, struct qadd *qa);
static void qadd_ask_cb(struct apg_cio *io, void *arg);

static void qadd_resp(struct apg_cio *io, apg_err_t e, const struct apg_rcmd *resp,
                      const char *errmsg, void *arg)
{
    struct qadd *qa = arg;
    struct pq *q = qa->qa_q;
    struct apg_push_consumer *c = q->q_c;
    q->q_pulling = false;
    int64_t off = -1;
    if (e == APG_OK && resp->code == APG_RESP_SUCCESS &&
        apg_rcmd_ext_i64(resp, "offset", &off) == APG_OK && off >= 0) {
        apg_free(qa);
        pthread_mutex_lock(&c->pc_mu);
        bool dropped = q->q_dropped;
        apg_push_pq_release_locked(q);
        pthread_mutex_unlock(&c->pc_mu);
        if (!dropped)
            apg_push_queue_begin(io, q, off);
        return;
    }
    pthread_mutex_lock(&c->pc_mu);
    bool dropped = q->q_dropped;
    apg_push_pq_release_locked(q);
    pthread_mutex_unlock(&c->pc_mu);
    if (dropped || apg_cio_stopping(io)) {
        apg_free(qa);
        return;
    }
    if (e == APG_OK && qa->qa_step == 0 && resp->code == APG_RESP_QUERY_NOT_FOUND) {
        bool retry_topic = strncmp(q->q_mq.mq_topic, "%RETRY%", 7) == 0;
        if (c->pc_conf->consume_from == APG_CONSUME_FROM_FIRST_OFFSET || retry_topic) {
            apg_free(qa);
            apg_push_queue_begin(io, q, 0);
            return;
        }
        qa->qa_step = 1;
        qadd_ask(io, qa);
        return;
    }
    /* Unknown yet (broker unreachable...): ask again later. */
    apg_log_debug("client", "start offset of %s:%d unknown: %s", q->q_mq.mq_broker,
                  q->q_mq.mq_queue_id, e != APG_OK ? errmsg : (resp->remark ? resp->remark : ""));
    qa->qa_step = 0;
    pthread_mutex_lock(&c->pc_mu);
    q->q_refs++;
    pthread_mutex_unlock(&c->pc_mu);
    q->q_pulling = true;
    apg_cio_after(io, ERROR_DELAY_MS, qadd_ask_cb, qa);
}

static void qadd_ask_cb(struct apg_cio *io, void *arg)
{
    qadd_ask(io, arg);
}

static void qadd_ask(struct apg_cio *io, struct qadd *qa)
{
    struct pq *q = qa->qa_q;
    struct apg_push_consumer *c = q->q_c;
    if (q->q_pulling) { /* came back from apg_cio_after with its reference */
        q->q_pulling = false;
        pthread_mutex_lock(&c->pc_mu);
        bool dropped = q->q_dropped;
        apg_push_pq_release_locked(q);
        pthread_mutex_unlock(&c->pc_mu);
        if (dropped || apg_cio_stopping(io) || c->pc_io_stop) {
            apg_free(qa);
            return;
        }
    }
    struct apg_ctopic *t = apg_cio_topic_find(io, q->q_mq.mq_topic);
    const char *addr = t && t->ct_have ? apg_croute_reader(&t->ct_route, q->q_mq.mq_broker) : NULL;
    struct apg_rcmd req;
    char qid[16];
    snprintf(qid, sizeof(qid), "%d", q->q_mq.mq_queue_id);
    apg_rcmd_init_request(&req,
                          qa->qa_step == 0 ? APG_REQ_QUERY_CONSUMER_OFFSET : APG_REQ_GET_MAX_OFFSET,
                          0, apg_cio_serialize(io));
    if (qa->qa_step == 0)
        apg_rcmd_ext_add(&req, "consumerGroup", c->pc_group);
    apg_rcmd_ext_add(&req, "topic", q->q_mq.mq_topic);
    apg_rcmd_ext_add(&req, "queueId", qid);
    pthread_mutex_lock(&c->pc_mu);
    q->q_refs++;
    pthread_mutex_unlock(&c->pc_mu);
    q->q_pulling = true;
    char err[256];
    if (addr == NULL ||
        apg_cio_call(io, addr, &req, NULL, 0, 0, qadd_resp, qa, err, sizeof(err)) != APG_OK)
        qadd_resp(io, APG_EIO, NULL, "no broker address", qa);
}

/* Finds q's start offset and starts pulling it. */
void apg_push_queue_start(struct apg_cio *io, struct pq *q, bool shared)
{
    struct apg_push_consumer *c = q->q_c;
    const apg_mq_t *mq = &q->q_mq;
    if (c->pc_conf->message_model == APG_BROADCASTING) {
        pthread_mutex_lock(&c->pc_mu);
        int64_t off = -1;
        for (size_t i = 0; i < c->pc_nfile; i++)
            if (apg_push_mq_eq(&c->pc_file[i].ol_mq, mq))
                off = c->pc_file[i].ol_off;
        pthread_mutex_unlock(&c->pc_mu);
        if (off >= 0) {
            apg_push_queue_begin(io, q, off);
            return;
        }
    }
    struct qadd *qa = apg_calloc(1, sizeof(*qa));
    if (qa == NULL)
        return;
    qa->qa_q = q;
    /* Broadcasting never asks the broker for a group offset. */
    qa->qa_step = c->pc_conf->message_model == APG_BROADCASTING &&
                          c->pc_conf->consume_from != APG_CONSUME_FROM_FIRST_OFFSET
                      ? 1
                      : 0;
    if (c->pc_conf->message_model == APG_BROADCASTING &&
        c->pc_conf->consume_from == APG_CONSUME_FROM_FIRST_OFFSET) {
        apg_free(qa);
        apg_push_queue_begin(io, q, 0);
        return;
    }
    if (shared) {
        /* The previous owner commits this queue's offset when it hears of the
         * same membership change: give that commit a head start so we do not
         * read an older offset and redeliver what it already consumed. */
        pthread_mutex_lock(&c->pc_mu);
        q->q_refs++;
        pthread_mutex_unlock(&c->pc_mu);
        q->q_pulling = true;
        apg_cio_after(io, HANDOVER_DELAY_MS, qadd_ask_cb, qa);
        return;
    }
    qadd_ask(io, qa);
}

/* Push consumer: rebalance, long-polling pull loop, listener workers, offsets.
 *
 * Threads and ownership. The I/O thread (io.c) owns the subscription list,
 * the list of process queues (struct pq: one per assigned queue) and every
 * pull. Workers (consume_threads pthreads) call the user's listener. What
 * both sides touch sits under pc_mu: each queue's message cache, its
 * committed offset, its drop flag and reference count, and the task lists.
 *
 * A queue's cache is a ring of entries in queue-offset order. A pull response
 * is decoded on the I/O thread, tag-filtered, appended to the ring and cut
 * into tasks (consume_batch messages each) for the workers; orderly queues
 * hand out one task at a time and, clustering, are pulled and consumed only
 * while this client holds the queue's lock on its broker (see "queue locks"
 * below). When the listener returns SUCCESS the
 * entries are marked done and the ring's head advances over done entries;
 * the queue's committed offset is the head's offset, or the next pull offset
 * when the ring is empty. So an offset never passes an unconsumed message.
 * Flow control: a queue whose cache holds max_cached_msgs messages or
 * max_cached_mb MiB waits 50 ms before its next pull.
 *
 * Rebalance (I/O thread, every rebalance_ms, at start and on
 * NOTIFY_CONSUMER_IDS_CHANGED): per topic, refresh the route, ask a broker
 * for the group's consumer ids (clustering), allocate with apg_alloc_average,
 * drop queues no longer ours (their offset is committed at once; their
 * cached messages are discarded, their pending tasks skip the listener) and
 * add new ones (start offset: the broker's committed offset, or the local
 * file in broadcasting mode, else consumeFromWhere).
 *
 * Commits: every persistConsumerOffsetInterval the I/O thread sends each changed
 * offset (oneway UPDATE_CONSUMER_OFFSET) or rewrites the offset file
 * (apg_file_write_atomic: fsynced .tmp renamed over it, then the directory
 * fsynced, so a crash leaves the old or the new file). Destroy stops pulls, joins the workers after
 * their current call, then commits with acknowledged requests and
 * unregisters the client so the other members rebalance. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/client_int.h"
#include "common/clock.h"
#include "common/file.h"
#include "common/log.h"
#include "common/mem.h"
#include "protocol/mq_map.h"
#include "protocol/rcode.h"
#include "protocol/remoting.h"

#define PULL_FLAG_SUSPEND 0x2
#define PULL_FLAG_SUBSCRIPTION 0x4
#define FLOW_DELAY_MS 50
#define ERROR_DELAY_MS 1000
#define RETRY_DELAY_MS 1000
#define HANDOVER_DELAY_MS 300
#define LOCK_RETRY_MS 1000 /* a queue another member still holds: ask again this often */
#define LOCK_WAIT_MS 100   /* orderly task of a queue whose lock is stale: look again */

struct psub {
    char *s_topic;
    char *s_expr;
    bool s_sql; /* SQL92: the broker filters; s_te is empty */
    struct apg_tagexpr s_te;
    bool s_busy;      /* rebalance of this topic in progress (I/O thread) */
    bool s_again;     /* another rebalance was asked meanwhile */
    bool s_retry_set; /* a retry after a failure is scheduled */
    int s_backoff_ms; /* next retry delay after a failed rebalance */
    struct apg_push_consumer *s_owner;
    struct psub *s_next;
};

struct pent {
    int64_t e_off;
    apg_message_t *e_msg; /* NULL once done */
};

struct pq {
    apg_mq_t q_mq;
    struct psub *q_sub;
    struct apg_push_consumer *q_c;
    /* I/O thread */
    int64_t q_next_pull;
    bool q_pulling;
    struct pq *q_next;
    /* under pc_mu */
    int q_refs;
    bool q_dropped;
    bool q_consuming; /* orderly: a task is out */
    /* orderly clustering (under pc_mu; written by the I/O thread except
     * q_in_listener and q_release_owed, see worker_main) */
    bool q_locked;       /* the broker granted our lock at q_lock_ms */
    int64_t q_lock_ms;   /* apg_now_ms() of the last granted lock or renewal */
    bool q_in_listener;  /* a worker is inside the listener for this queue */
    bool q_release_owed; /* dropped while in the listener: the worker commits and unlocks */
    bool q_acquiring;    /* I/O thread: first lock in flight or waiting for a retry */
    struct pent *q_ring;
    size_t q_cap, q_head, q_len;
    uint64_t q_seq0;     /* absolute sequence number of the ring head */
    uint64_t q_dispatch; /* first sequence number not yet handed out */
    size_t q_bytes;
    int64_t q_pulled; /* nextBeginOffset of the last pull */
    int64_t q_commit; /* -1: nothing to commit yet */
    bool q_dirty;
};

struct ptask {
    struct pq *t_q;
    int64_t t_not_before;
    struct ptask *t_next;
    size_t t_n;
    uint64_t *t_seq;
    apg_message_t **t_msgs;
};

struct offline {
    apg_mq_t ol_mq;
    int64_t ol_off;
};

struct apg_push_consumer {
    struct apg_conf *pc_conf; /* a private copy, never changed */
    const char *pc_group;     /* consumerGroup of pc_conf */
    char *pc_offdir;          /* localOffsetStoreDir, or the default path */
    char *pc_retry_topic;
    struct apg_cio *pc_io;
    struct psub *pc_subs;
    apg_consume_cb pc_cb;
    void *pc_arg;
    bool pc_started;
    /* I/O thread */
    struct pq *pc_queues;
    int64_t pc_next_rebalance, pc_next_commit;
    bool pc_io_stop;        /* no new pulls */
    int64_t pc_next_lock;   /* orderly clustering: next renewal of every queue lock */
    apg_mq_t *pc_releasing; /* queues being given up: commit/unlock not yet answered */
    size_t pc_nreleasing, pc_capreleasing;
    /* under pc_mu */
    pthread_mutex_t pc_mu;
    pthread_cond_t pc_cv;
    bool pc_stop;
    struct ptask *pc_ready, *pc_ready_tail;
    struct ptask *pc_delayed; /* by t_not_before */
    struct offline *pc_file;  /* broadcasting: offsets read from / written to the file */
    size_t pc_nfile;
    pthread_t *pc_workers;
    int pc_nworkers;
};

/* ---- helpers ---- */

static bool mq_eq(const apg_mq_t *a, const apg_mq_t *b)
{
    return a->mq_queue_id == b->mq_queue_id && strcmp(a->mq_topic, b->mq_topic) == 0 &&
           strcmp(a->mq_broker, b->mq_broker) == 0;
}

/* Orderly clustering: queues are consumed only under a broker-side lock. */
static bool locking(const struct apg_push_consumer *c)
{
    return c->pc_conf->orderly && c->pc_conf->message_model == APG_CLUSTERING;
}

static void pq_release_locked(struct pq *q)
{
    if (--q->q_refs > 0)
        return;
    for (size_t i = 0; i < q->q_len; i++)
        apg_message_free(q->q_ring[(q->q_head + i) % q->q_cap].e_msg);
    apg_free(q->q_ring);
    apg_free(q);
}

static void task_free(struct ptask *t)
{
    apg_free(t);
}

/* Caller holds pc_mu. Cuts tasks out of the undispatched part of q's ring. */
static void pq_dispatch_locked(struct apg_push_consumer *c, struct pq *q)
{
    size_t batch = (size_t)c->pc_conf->consume_batch;
    while (!q->q_dropped && q->q_dispatch < q->q_seq0 + q->q_len) {
        if (c->pc_conf->orderly && q->q_consuming)
            return;
        size_t avail = (size_t)(q->q_seq0 + q->q_len - q->q_dispatch);
        size_t n = avail < batch ? avail : batch;
        struct ptask *t = apg_malloc(sizeof(*t) + n * (sizeof(uint64_t) + sizeof(apg_message_t *)));
        if (t == NULL)
            return; /* retried at the next pull of this queue */
        t->t_q = q;
        t->t_n = n;
        t->t_not_before = 0;
        t->t_next = NULL;
        t->t_seq = (uint64_t *)(t + 1);
        t->t_msgs = (apg_message_t **)(t->t_seq + n);
        for (size_t i = 0; i < n; i++) {
            uint64_t seq = q->q_dispatch + i;
            t->t_seq[i] = seq;
            t->t_msgs[i] = q->q_ring[(q->q_head + (seq - q->q_seq0)) % q->q_cap].e_msg;
        }
        q->q_dispatch += n;
        q->q_refs++;
        if (c->pc_conf->orderly)
            q->q_consuming = true;
        if (c->pc_ready_tail)
            c->pc_ready_tail->t_next = t;
        else
            c->pc_ready = t;
        c->pc_ready_tail = t;
        pthread_cond_signal(&c->pc_cv);
    }
}

/* Caller holds pc_mu. Marks entries done and advances the head; the
 * messages are freed. */
static void pq_done_locked(struct pq *q, const uint64_t *seqs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (seqs[i] < q->q_seq0)
            continue;
        struct pent *e = &q->q_ring[(q->q_head + (seqs[i] - q->q_seq0)) % q->q_cap];
        if (e->e_msg) {
            size_t bl;
            apg_message_body(e->e_msg, &bl);
            q->q_bytes -= bl;
            apg_message_free(e->e_msg);
            e->e_msg = NULL;
        }
    }
    while (q->q_len > 0 && q->q_ring[q->q_head].e_msg == NULL) {
        q->q_head = (q->q_head + 1) % q->q_cap;
        q->q_len--;
        q->q_seq0++;
    }
    if (q->q_dispatch < q->q_seq0)
        q->q_dispatch = q->q_seq0;
    int64_t commit = q->q_len > 0 ? q->q_ring[q->q_head].e_off : q->q_pulled;
    if (commit != q->q_commit) {
        q->q_commit = commit;
        q->q_dirty = true;
    }
}

/* Caller holds pc_mu. */
static apg_err_t pq_append_locked(struct pq *q, int64_t off, apg_message_t *m)
{
    if (q->q_len == q->q_cap) {
        size_t cap = q->q_cap ? q->q_cap * 2 : 64;
        struct pent *r = apg_malloc(cap * sizeof(*r));
        if (r == NULL)
            return APG_ENOMEM;
        for (size_t i = 0; i < q->q_len; i++)
            r[i] = q->q_ring[(q->q_head + i) % q->q_cap];
        apg_free(q->q_ring);
        q->q_ring = r;
        q->q_cap = cap;
        q->q_head = 0;
    }
    struct pent *e = &q->q_ring[(q->q_head + q->q_len) % q->q_cap];
    e->e_off = off;
    e->e_msg = m;
    q->q_len++;
    size_t bl;
    apg_message_body(m, &bl);
    q->q_bytes += bl;
    return APG_OK;
}

/* ---- offsets file (broadcasting) ---- */

static void file_offsets_load(struct apg_push_consumer *c)
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
        while (i < c->pc_nfile && !mq_eq(&c->pc_file[i].ol_mq, &q->q_mq))
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

struct flush_wait {
    int fw_pending;
    struct apg_cwait fw_wait;
};

static void flush_resp(struct apg_cio *io, apg_err_t e, const struct apg_rcmd *resp,
                       const char *errmsg, void *arg)
{
    struct flush_wait *fw = arg;
    if (--fw->fw_pending == 0)
        apg_cwait_signal(&fw->fw_wait);
}

static void commit_one(struct apg_cio *io, struct apg_push_consumer *c, const apg_mq_t *mq,
                       int64_t off, struct flush_wait *fw)
{
    struct apg_ccommit *cm = apg_ccommit_new(c->pc_group, mq, off, fw ? flush_resp : NULL, fw);
    if (cm == NULL)
        return;
    if (fw)
        fw->fw_pending++;
    apg_ccommit_start(io, cm);
}

/* Sends every changed offset (clustering) or rewrites the file. */
static void commit_all(struct apg_cio *io, struct apg_push_consumer *c, struct flush_wait *fw)
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
        commit_one(io, c, &list[i].ol_mq, list[i].ol_off, fw);
    apg_free(list);
}

/* ---- pulling (I/O thread) ---- */

static void pull_start(struct apg_cio *io, struct pq *q);

static void pull_later_cb(struct apg_cio *io, void *arg)
{
    struct pq *q = arg;
    struct apg_push_consumer *c = q->q_c;
    q->q_pulling = false;
    pthread_mutex_lock(&c->pc_mu);
    bool dropped = q->q_dropped;
    pq_release_locked(q);
    pthread_mutex_unlock(&c->pc_mu);
    if (!dropped && !apg_cio_stopping(io) && !c->pc_io_stop)
        pull_start(io, q);
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
    if (pq_append_locked(q, apg_message_queue_offset(m), m) != APG_OK) {
        apg_message_free(m);
        return APG_ENOMEM;
    }
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
        pq_release_locked(q);
        pthread_mutex_unlock(&c->pc_mu);
        return;
    }
    int delay = 0;
    if (e != APG_OK) {
        apg_log_debug("client", "pull %s:%d failed: %s", q->q_mq.mq_broker, q->q_mq.mq_queue_id,
                      errmsg);
        delay = ERROR_DELAY_MS;
    } else {
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
            pq_dispatch_locked(c, q);
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
    pq_release_locked(q); /* the pull's reference; the list still holds one */
    pthread_mutex_unlock(&c->pc_mu);
    if (delay)
        pull_later(io, q, delay);
    else
        pull_start(io, q);
}

static void pull_start(struct apg_cio *io, struct pq *q)
{
    struct apg_push_consumer *c = q->q_c;
    if (q->q_pulling || c->pc_io_stop || apg_cio_stopping(io))
        return;
    pthread_mutex_lock(&c->pc_mu);
    bool dropped = q->q_dropped;
    bool full = q->q_len >= (size_t)c->pc_conf->max_cached_msgs ||
                q->q_bytes >= (size_t)c->pc_conf->max_cached_mb * 1024 * 1024;
    bool unlocked = locking(c) && !q->q_locked;
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
    const char *addr = t && t->ct_have ? apg_croute_master(&t->ct_route, q->q_mq.mq_broker) : NULL;
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
    char err[256];
    if (apg_cio_call(io, addr, &req, NULL, 0, c->pc_conf->suspend_ms + c->pc_conf->timeout_ms,
                     pull_resp, q, err, sizeof(err)) != APG_OK) {
        q->q_pulling = false;
        pthread_mutex_lock(&c->pc_mu);
        pq_release_locked(q);
        pthread_mutex_unlock(&c->pc_mu);
        pull_later(io, q, ERROR_DELAY_MS);
    }
}

/* ---- adding a queue: find its start offset (I/O thread) ---- */

static void queue_start(struct apg_cio *io, struct pq *q, bool shared);
static void qlock_first(struct apg_cio *io, struct pq *q);

struct qadd {
    struct pq *qa_q;
    int qa_step; /* 0: query committed, 1: max offset */
};

static void qadd_begin(struct apg_cio *io, struct pq *q, int64_t off)
{
    q->q_next_pull = off;
    pthread_mutex_lock(&q->q_c->pc_mu);
    q->q_pulled = off;
    q->q_commit = off;
    pthread_mutex_unlock(&q->q_c->pc_mu);
    pull_start(io, q);
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
        pq_release_locked(q);
        pthread_mutex_unlock(&c->pc_mu);
        if (!dropped)
            qadd_begin(io, q, off);
        return;
    }
    pthread_mutex_lock(&c->pc_mu);
    bool dropped = q->q_dropped;
    pq_release_locked(q);
    pthread_mutex_unlock(&c->pc_mu);
    if (dropped || apg_cio_stopping(io)) {
        apg_free(qa);
        return;
    }
    if (e == APG_OK && qa->qa_step == 0 && resp->code == APG_RESP_QUERY_NOT_FOUND) {
        bool retry_topic = strncmp(q->q_mq.mq_topic, "%RETRY%", 7) == 0;
        if (c->pc_conf->consume_from == APG_CONSUME_FROM_FIRST_OFFSET || retry_topic) {
            apg_free(qa);
            qadd_begin(io, q, 0);
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
        pq_release_locked(q);
        pthread_mutex_unlock(&c->pc_mu);
        if (dropped || apg_cio_stopping(io) || c->pc_io_stop) {
            apg_free(qa);
            return;
        }
    }
    struct apg_ctopic *t = apg_cio_topic_find(io, q->q_mq.mq_topic);
    const char *addr = t && t->ct_have ? apg_croute_master(&t->ct_route, q->q_mq.mq_broker) : NULL;
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
        pq_release_locked(ql->ql_qs[i]);
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
static void releasing_add(struct apg_push_consumer *c, const apg_mq_t *mq)
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
        if (mq_eq(&c->pc_releasing[i], mq)) {
            c->pc_releasing[i] = c->pc_releasing[--c->pc_nreleasing];
            return;
        }
}

static bool releasing_has(const struct apg_push_consumer *c, const apg_mq_t *mq)
{
    for (size_t i = 0; i < c->pc_nreleasing; i++)
        if (mq_eq(&c->pc_releasing[i], mq))
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
static void queue_release(struct apg_cio *io, struct apg_push_consumer *c, const apg_mq_t *mq,
                          int64_t off, struct flush_wait *fw, bool listed)
{
    if (!listed)
        releasing_add(c, mq);
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

static void qlock_first(struct apg_cio *io, struct pq *q);

static void qlock_first_again(struct apg_cio *io, void *arg)
{
    struct pq *q = arg;
    struct apg_push_consumer *c = q->q_c;
    pthread_mutex_lock(&c->pc_mu);
    bool dropped = q->q_dropped;
    pq_release_locked(q); /* the timer's reference */
    pthread_mutex_unlock(&c->pc_mu);
    if (!dropped && !apg_cio_stopping(io) && !c->pc_io_stop)
        qlock_first(io, q);
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
    q->q_refs++; /* kept for the retry timer or for queue_start */
    pthread_mutex_unlock(&c->pc_mu);
    qlock_free(ql);
    bool stop = apg_cio_stopping(io) || c->pc_io_stop;
    if (dropped || stop) {
        if (ok && dropped && !stop)
            queue_release(io, c, &q->q_mq, -1, NULL, false); /* granted after we gave it up */
        pthread_mutex_lock(&c->pc_mu);
        pq_release_locked(q);
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
    pq_release_locked(q);
    pthread_mutex_unlock(&c->pc_mu);
    queue_start(io, q, false);
}

static void qlock_first(struct apg_cio *io, struct pq *q)
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
static void lock_renew_all(struct apg_cio *io, struct apg_push_consumer *c)
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

/* A new process queue for mq, linked first in the consumer's list. */
static struct pq *pq_new(struct apg_cio *io, struct apg_push_consumer *c, struct psub *s,
                         const apg_mq_t *mq)
{
    struct pq *q = apg_calloc(1, sizeof(*q));
    if (q == NULL)
        return NULL;
    q->q_mq = *mq;
    q->q_sub = s;
    q->q_c = c;
    q->q_refs = 1;
    q->q_commit = -1;
    q->q_next = c->pc_queues;
    c->pc_queues = q;
    apg_log_debug("client", "%s: queue %s:%s:%d assigned", apg_cio_client_id(io), mq->mq_topic,
                  mq->mq_broker, mq->mq_queue_id);
    return q;
}

static void queue_add(struct apg_cio *io, struct apg_push_consumer *c, struct psub *s,
                      const apg_mq_t *mq, bool shared)
{
    struct pq *q = pq_new(io, c, s, mq);
    if (q == NULL)
        return;
    if (locking(c)) {
        /* Its offset is read once the lock is ours: the previous holder
         * commits before it unlocks, so no handover delay is needed. */
        q->q_acquiring = true;
        qlock_first(io, q);
        return;
    }
    queue_start(io, q, shared);
}

/* Finds q's start offset and starts pulling it. */
static void queue_start(struct apg_cio *io, struct pq *q, bool shared)
{
    struct apg_push_consumer *c = q->q_c;
    const apg_mq_t *mq = &q->q_mq;
    if (c->pc_conf->message_model == APG_BROADCASTING) {
        pthread_mutex_lock(&c->pc_mu);
        int64_t off = -1;
        for (size_t i = 0; i < c->pc_nfile; i++)
            if (mq_eq(&c->pc_file[i].ol_mq, mq))
                off = c->pc_file[i].ol_off;
        pthread_mutex_unlock(&c->pc_mu);
        if (off >= 0) {
            qadd_begin(io, q, off);
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
        qadd_begin(io, q, 0);
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

static void queue_drop(struct apg_cio *io, struct apg_push_consumer *c, struct pq *q,
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
    bool owed = locking(c) && q->q_in_listener;
    if (owed) {
        q->q_release_owed = true;
        releasing_add(c, &mq);
    } else {
        q->q_dirty = false;
    }
    bool acquiring = q->q_acquiring;
    pq_release_locked(q);
    pthread_mutex_unlock(&c->pc_mu);
    if (owed)
        return;
    if (locking(c) && !acquiring)
        queue_release(io, c, &mq, send ? off : -1, fw, false);
    else if (send)
        commit_one(io, c, &mq, off, fw);
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
            keep = mq_eq(&mqs[idx[i]], &q->q_mq);
        if (!keep)
            queue_drop(io, c, q, NULL);
    }
    for (size_t i = 0; i < k; i++) {
        bool have = false;
        for (struct pq *q = c->pc_queues; q && !have; q = q->q_next)
            have = mq_eq(&q->q_mq, &mqs[idx[i]]);
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
        addr = rt->rt_brokers[i].ba_master;
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

static void rebalance_all(struct apg_cio *io, struct apg_push_consumer *c)
{
    c->pc_next_rebalance = apg_now_ms() + c->pc_conf->rebalance_ms;
    for (struct psub *s = c->pc_subs; s; s = s->s_next)
        rebalance_topic(io, c, s);
}

/* ---- I/O-thread hooks ---- */

static apg_err_t push_hb_body(struct apg_cio *io, void *owner, struct apg_buf *out)
{
    struct apg_push_consumer *c = owner;
    if (c->pc_io_stop)
        return APG_ESHUTDOWN; /* no re-registration while shutting down */
    json_t *subs = json_array();
    for (struct psub *s = c->pc_subs; subs && s; s = s->s_next) {
        json_t *tags = json_array(), *codes = json_array();
        for (size_t i = 0; tags && codes && i < s->s_te.te_n; i++) {
            json_array_append_new(tags, json_string(apg_tagexpr_tag(&s->s_te, i)));
            json_array_append_new(codes, json_integer(s->s_te.te_codes[i]));
        }
        json_t *o =
            json_pack("{s:b, s:s, s:s, s:o, s:o, s:I, s:s}", "classFilterMode", 0, "topic",
                      s->s_topic, "subString", s->s_expr, "tagsSet", tags, "codeSet", codes,
                      "subVersion", (json_int_t)0, "expressionType", s->s_sql ? "SQL92" : "TAG");
        json_array_append_new(subs, o);
    }
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
        rebalance_all(io, c);
    if (now >= c->pc_next_commit) {
        c->pc_next_commit = now + c->pc_conf->commit_interval_ms;
        commit_all(io, c, NULL);
    }
    if (locking(c) && now >= c->pc_next_lock) {
        c->pc_next_lock = now + c->pc_conf->lock_interval_ms;
        lock_renew_all(io, c);
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
    while (q && !mq_eq(&q->q_mq, &mq))
        q = q->q_next;
    if (q == NULL || off < 0)
        return APG_OK;
    struct psub *s = q->q_sub;
    pthread_mutex_lock(&c->pc_mu);
    q->q_dirty = false;
    pthread_mutex_unlock(&c->pc_mu);
    queue_drop(rc->rc_io, c, q, NULL);
    struct pq *nq = pq_new(rc->rc_io, c, s, &mq);
    if (nq == NULL)
        return APG_OK;
    apg_log_info("client", "%s: queue %s:%s:%d reset to offset %lld by the broker",
                 apg_cio_client_id(rc->rc_io), topic, broker, qid, (long long)off);
    qadd_begin(rc->rc_io, nq, off);
    pthread_mutex_lock(&c->pc_mu);
    nq->q_dirty = true;
    pthread_mutex_unlock(&c->pc_mu);
    return APG_OK;
}

static void push_server_req(struct apg_cio *io, void *owner, const struct apg_rcmd *req)
{
    struct apg_push_consumer *c = owner;
    if (req->code == APG_REQ_NOTIFY_CONSUMER_IDS_CHANGED && !c->pc_io_stop)
        rebalance_all(io, c);
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

/* ---- ops from other threads ---- */

enum { POP_START, POP_STOP, POP_FLUSH, POP_BACK, POP_ASSIGNED, POP_CHECK, POP_RELEASE };

struct pop {
    struct apg_cop po_op;
    struct apg_push_consumer *po_c;
    int po_kind;
    struct apg_cwait po_wait;
    /* POP_BACK */
    const apg_message_t *po_msg;
    bool po_dlq; /* straight to the dead-letter queue (delayLevel -1) */
    apg_err_t po_err;
    /* POP_RELEASE */
    apg_mq_t po_mq;
    int64_t po_off;
    /* POP_FLUSH */
    struct flush_wait po_fw;
    /* POP_ASSIGNED */
    apg_mq_t *po_mqs;
    size_t po_n;
    /* POP_CHECK */
    const struct psub *po_sub;
    char po_remark[512];
};

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
        addr = t->ct_route.rt_brokers[i].ba_master;
    if (!addr) {
        check_done(op, APG_ENOTFOUND, "no master broker in the topic's route");
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
        if (apg_cio_call(io, addrs[i], &req, NULL, 0, 0, flush_resp, fw, err, sizeof(err)) !=
            APG_OK)
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
        rebalance_all(io, c);
        apg_cwait_signal(&op->po_wait);
        break;
    case POP_STOP:
        /* No more pulls; pending ones are ignored when they complete. */
        c->pc_io_stop = true;
        apg_cwait_signal(&op->po_wait);
        break;
    case POP_FLUSH:
        op->po_fw.fw_pending = 1;
        commit_all(io, c, &op->po_fw);
        if (c->pc_conf->message_model == APG_CLUSTERING) {
            /* Release the queues so their final offsets are on record. */
            while (c->pc_queues)
                queue_drop(io, c, c->pc_queues, &op->po_fw);
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
        queue_release(io, c, &op->po_mq, op->po_off, NULL, true);
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

static apg_err_t pop_exec(struct apg_push_consumer *c, struct pop *op)
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

/* ---- workers ---- */

/* Caller holds pc_mu: t waits in the delayed list until not_before. */
static void task_delay_locked(struct apg_push_consumer *c, struct ptask *t, int64_t not_before)
{
    t->t_not_before = not_before;
    struct ptask **pp = &c->pc_delayed;
    while (*pp && (*pp)->t_not_before <= t->t_not_before)
        pp = &(*pp)->t_next;
    t->t_next = *pp;
    *pp = t;
}

/* Orderly listener declined t (no lock held): messages already retried
 * maxReconsumeTimes times go to the dead-letter queue (CONSUMER_SEND_MSG_BACK
 * with delayLevel -1) and count as done; t keeps the rest, in order, for a
 * retry in place. Returns how many remain. */
static size_t orderly_give_up(struct apg_push_consumer *c, struct pq *q, struct ptask *t)
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
            if (pop_exec(c, &op) == APG_OK) {
                apg_log_warn("client",
                             "orderly group %s: message %s of %s:%d failed %d times; moved to "
                             "%%DLQ%%%s",
                             c->pc_group, m->m_offset_id, m->m_topic, m->m_queue_id,
                             m->m_reconsume + 1, c->pc_group);
                pthread_mutex_lock(&c->pc_mu);
                pq_done_locked(q, &t->t_seq[i], 1);
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

static void *worker_main(void *arg)
{
    struct apg_push_consumer *c = arg;
    pthread_mutex_lock(&c->pc_mu);
    for (;;) {
        if (c->pc_stop)
            break;
        int64_t now = apg_now_ms();
        while (c->pc_delayed && c->pc_delayed->t_not_before <= now) {
            struct ptask *t = c->pc_delayed;
            c->pc_delayed = t->t_next;
            t->t_next = NULL;
            if (c->pc_ready_tail)
                c->pc_ready_tail->t_next = t;
            else
                c->pc_ready = t;
            c->pc_ready_tail = t;
        }
        struct ptask *t = c->pc_ready;
        if (t == NULL) {
            if (c->pc_delayed) {
                apg_cond_wait_ms(&c->pc_cv, &c->pc_mu, c->pc_delayed->t_not_before - now);
            } else {
                pthread_cond_wait(&c->pc_cv, &c->pc_mu);
            }
            continue;
        }
        c->pc_ready = t->t_next;
        if (c->pc_ready == NULL)
            c->pc_ready_tail = NULL;
        struct pq *q = t->t_q;
        if (q->q_dropped) {
            q->q_consuming = false;
            pq_release_locked(q);
            task_free(t);
            continue;
        }
        if (locking(c) && (!q->q_locked || now - q->q_lock_ms > c->pc_conf->lock_live_ms)) {
            /* Not ours for sure right now: wait for the lock (renewal). */
            task_delay_locked(c, t, now + LOCK_WAIT_MS);
            continue;
        }
        q->q_in_listener = true;
        pthread_mutex_unlock(&c->pc_mu);
        int r = c->pc_cb(t->t_msgs, t->t_n, &q->q_mq, c->pc_arg);
        size_t nback_failed = 0;
        if (r != APG_CONSUME_SUCCESS && !c->pc_conf->orderly) {
            /* Send back what we can; keep the rest for a local retry. */
            for (size_t i = 0; i < t->t_n; i++) {
                struct pop op;
                memset(&op, 0, sizeof(op));
                op.po_kind = POP_BACK;
                op.po_msg = t->t_msgs[i];
                if (c->pc_conf->message_model == APG_CLUSTERING && pop_exec(c, &op) == APG_OK) {
                    pthread_mutex_lock(&c->pc_mu);
                    pq_done_locked(q, &t->t_seq[i], 1);
                    pthread_mutex_unlock(&c->pc_mu);
                } else {
                    t->t_msgs[nback_failed] = t->t_msgs[i];
                    t->t_seq[nback_failed++] = t->t_seq[i];
                }
            }
        } else if (r != APG_CONSUME_SUCCESS) {
            nback_failed = orderly_give_up(c, q, t);
        }
        pthread_mutex_lock(&c->pc_mu);
        q->q_in_listener = false;
        bool retry = r != APG_CONSUME_SUCCESS && nback_failed > 0 && !q->q_dropped;
        if (r == APG_CONSUME_SUCCESS)
            pq_done_locked(q, t->t_seq, t->t_n);
        if (q->q_release_owed) {
            /* Dropped while we were in the listener: commit what is done,
             * then unlock, so the next holder starts after us. */
            q->q_release_owed = false;
            q->q_dirty = false;
            struct pop op;
            memset(&op, 0, sizeof(op));
            op.po_kind = POP_RELEASE;
            op.po_mq = q->q_mq;
            op.po_off = q->q_commit;
            pthread_mutex_unlock(&c->pc_mu);
            pop_exec(c, &op);
            pthread_mutex_lock(&c->pc_mu);
        }
        if (retry) {
            if (!c->pc_conf->orderly)
                t->t_n = nback_failed;
            for (size_t i = 0; i < t->t_n; i++)
                t->t_msgs[i]->m_reconsume++;
            task_delay_locked(c, t,
                              apg_now_ms() + (c->pc_conf->orderly ? c->pc_conf->suspend_current_ms
                                                                  : RETRY_DELAY_MS));
            continue; /* keeps its reference and, orderly, q_consuming */
        }
        if (c->pc_conf->orderly) {
            q->q_consuming = false;
            pq_dispatch_locked(c, q);
        }
        pq_release_locked(q);
        task_free(t);
    }
    pthread_mutex_unlock(&c->pc_mu);
    return NULL;
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
        .access_key = c->pc_conf->access_key,
        .secret_key = c->pc_conf->secret_key,
        .instance = c->pc_conf->instance,
        .serialize = c->pc_conf->binary_header ? APG_SER_ROCKETMQ : APG_SER_JSON,
        .route_refresh_ms = c->pc_conf->route_refresh_ms,
        .heartbeat_ms = c->pc_conf->heartbeat_ms,
        .timeout_ms = c->pc_conf->timeout_ms,
        .hb_body = push_hb_body,
        .on_tick = push_tick,
        .on_server_req = push_server_req,
        .owner = c,
    };
    int64_t now = apg_now_ms();
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
        apg_err_t e = pop_exec(c, &op);
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
            file_offsets_load(c);
    }
    c->pc_workers = apg_calloc((size_t)c->pc_conf->consume_threads, sizeof(pthread_t));
    for (int i = 0; c->pc_workers && i < c->pc_conf->consume_threads; i++) {
        if (pthread_create(&c->pc_workers[i], NULL, worker_main, c) != 0)
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
    pop_exec(c, &op);
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
    apg_err_t e = pop_exec(c, &op);
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
        pop_exec(c, &op);
        pthread_mutex_lock(&c->pc_mu);
        c->pc_stop = true;
        pthread_cond_broadcast(&c->pc_cv);
        pthread_mutex_unlock(&c->pc_mu);
        for (int i = 0; i < c->pc_nworkers; i++)
            pthread_join(c->pc_workers[i], NULL);
        memset(&op, 0, sizeof(op));
        op.po_kind = POP_FLUSH;
        pop_exec(c, &op);
        apg_cio_free(c->pc_io); /* pending pulls complete with ESHUTDOWN */
        c->pc_io = NULL;
    }
    /* Tasks never consumed, then the queues (broadcasting keeps them listed). */
    for (struct ptask *lists[2] = {c->pc_ready, c->pc_delayed}, **l = lists; l < lists + 2; l++) {
        for (struct ptask *t = *l, *n; t; t = n) {
            n = t->t_next;
            pq_release_locked(t->t_q);
            task_free(t);
        }
    }
    for (struct pq *q = c->pc_queues, *n; q; q = n) {
        n = q->q_next;
        pq_release_locked(q);
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

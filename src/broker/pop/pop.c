/* Pop consumption: the module behind POP_MESSAGE / ACK_MESSAGE /
 * CHANGE_MESSAGE_INVISIBLETIME and the gRPC consumer calls (pop.h).
 *
 * Design. A message handed out stays where it was stored; the module only
 * remembers, per (group, topic, queue), the cursor and the entries in
 * flight (pop_state.c). A delivery whose invisible time runs out becomes
 * due again in place (after a back-off of 2^(attempts-1) - 1 s, at most
 * 60 s: the first redelivery follows the deadline at once) and the next
 * pop of that queue hands it again before anything new. No copy is written
 * for a retry; the only copy is the dead-letter one, in %DLQ%<group> (the
 * name CONSUMER_SEND_MSG_BACK uses), once a message was delivered
 * retryMaxTimes + 1 times. FIFO pops skip a queue while any of its entries
 * is in flight or backing off, so a queue (and every message group hashed
 * to it) is never with two consumers at once, and redeliveries come back in
 * order.
 *
 * Durability. Every change is one journal record (pop_state.h) written
 * with one write(2) under the lock before the reply: a kill -9 loses
 * nothing; fdatasync runs once a second from the revive thread (and at a
 * clean stop), so a power loss can lose the last second, which makes
 * handed messages visible again (never loses one). When the journal passes
 * 64 MiB the whole state is written as pop/snapshot (write-temp, fsync,
 * rename) with the next generation and the journal starts again empty with
 * that generation in its header; at start a journal whose generation is not
 * the snapshot's is from before that snapshot and is dropped. A record cut
 * short or failing its CRC ends the journal (the torn tail of a crash) and
 * is cut off.
 *
 * Threads. Loops (remoting) and the gRPC loop call take/ack/change under
 * pp_lock, a leaf apart from the topic, group and offset tables' own locks
 * (taken inside it) and store reads. The module's thread runs a cron table:
 * revive every 100 ms (deadlines fire within 0.1 s), journal fdatasync
 * every second, compaction every 10 s when the journal is large. A
 * dead-letter copy is stored outside the lock (apg_broker_put_internal may
 * wait for the disk). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/broker_rt.h"
#include "broker/pop/pop.h"
#include "broker/pop/pop_state.h"
#include "common/cron.h"
#include "common/file.h"
#include "common/hash.h"
#include "common/mem.h"
#include "common/worker.h"
#include "protocol/tagexpr.h"

#define JOURNAL_MAGIC "APGPOPJ1"
#define SNAPSHOT_MAGIC "APGPOPS1"
#define FILE_HDR 16
#define COMPACT_BYTES (64u << 20)
#define REVIVE_MS 100
#define MAX_BACKOFF_S 60
#define DLQ_BATCH 64

struct apg_pop {
    struct apg_broker *pp_b;
    pthread_mutex_t pp_lock;
    /* Under pp_lock: */
    struct apg_pop_state pp_st;
    int pp_jfd;
    uint64_t pp_gen;
    uint64_t pp_jbytes;
    bool pp_jdirty; /* written since the last fdatasync */
    bool pp_jfailed;
    int64_t pp_stamp; /* last pop time handed out */
    struct apg_buf pp_rec;
    struct apg_buf pp_tmp;
    unsigned pp_rr;
    char *pp_jpath, *pp_spath;
    /* Told after every revive pass (apg_pop_set_tick); set once. */
    _Atomic(apg_pop_tick_fn) pp_tick;
    void *_Atomic pp_tick_ud;
    /* The revive thread and its job table (that thread's only). */
    struct apg_worker pp_worker;
    struct apg_cron_job pp_jobs[3];
};

/* ---- files -------------------------------------------------------------- */

static void hdr_make(uint8_t *h, const char *magic, uint64_t gen)
{
    memcpy(h, magic, 8);
    apg_wbe64(h + 8, gen);
}

/* Replays records data[0..len) into the state; returns the bytes of whole,
 * valid records. */
static size_t replay(struct apg_pop *pp, const uint8_t *data, size_t len, const char *what)
{
    size_t pos = 0;
    uint32_t n = 0;
    while (pos < len) {
        struct apg_pop_rec r;
        size_t used;
        apg_err_t e = apg_pop_rec_decode(data + pos, len - pos, &r, &used);
        if (e) {
            apg_log_warn("pop",
                         "%s: record at byte %zu is %s; it and the %zu bytes after it are "
                         "ignored",
                         what, pos + FILE_HDR, e == APG_EAGAIN ? "cut short" : "corrupt",
                         len - pos);
            break;
        }
        e = apg_pop_state_apply(&pp->pp_st, &r);
        if (e == APG_ENOMEM)
            break;
        if (r.r_op == 'P' && r.r_stamp > pp->pp_stamp)
            pp->pp_stamp = r.r_stamp;
        if (r.r_op == 'C' && r.r_new_stamp > pp->pp_stamp)
            pp->pp_stamp = r.r_new_stamp;
        pos += used;
        n++;
    }
    if (n)
        apg_log_info("pop", "%s: %u records replayed", what, n);
    return pos;
}

static apg_err_t journal_reset(struct apg_pop *pp, char *err, size_t errlen)
{
    uint8_t h[FILE_HDR];
    hdr_make(h, JOURNAL_MAGIC, pp->pp_gen);
    if (ftruncate(pp->pp_jfd, 0) != 0 || pwrite(pp->pp_jfd, h, FILE_HDR, 0) != FILE_HDR ||
        fdatasync(pp->pp_jfd) != 0)
        return apg_errf(APG_EIO, err, errlen, "cannot write %s: %s", pp->pp_jpath, strerror(errno));
    lseek(pp->pp_jfd, FILE_HDR, SEEK_SET);
    pp->pp_jbytes = FILE_HDR;
    pp->pp_jdirty = false;
    return APG_OK;
}

static apg_err_t load(struct apg_pop *pp, char *err, size_t errlen)
{
    struct apg_buf f = APG_BUF_INIT;
    char e2[256];
    if (apg_file_read(pp->pp_spath, &f, e2, sizeof(e2)) == APG_OK) {
        if (f.b_len < FILE_HDR || memcmp(f.b_data, SNAPSHOT_MAGIC, 8) != 0) {
            apg_buf_free(&f);
            return apg_errf(APG_ECORRUPT, err, errlen,
                            "%s is not a pop snapshot (bad header); move it away to start "
                            "without the in-flight pop state",
                            pp->pp_spath);
        }
        pp->pp_gen = apg_be64((uint8_t *)f.b_data + 8);
        size_t good = replay(pp, (uint8_t *)f.b_data + FILE_HDR, f.b_len - FILE_HDR, pp->pp_spath);
        if (good != f.b_len - FILE_HDR) {
            apg_buf_free(&f);
            return apg_errf(APG_ECORRUPT, err, errlen,
                            "%s is damaged (it is written whole and renamed, so this is not a "
                            "crash); move it away to start without the in-flight pop state",
                            pp->pp_spath);
        }
    }
    apg_buf_reset(&f);
    pp->pp_jfd = open(pp->pp_jpath, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (pp->pp_jfd < 0) {
        apg_buf_free(&f);
        return apg_errf(APG_EIO, err, errlen, "cannot open %s: %s", pp->pp_jpath, strerror(errno));
    }
    apg_err_t e = apg_file_read(pp->pp_jpath, &f, e2, sizeof(e2));
    if (e) {
        apg_buf_free(&f);
        return apg_errf(e, err, errlen, "%s", e2);
    }
    if (f.b_len >= FILE_HDR && memcmp(f.b_data, JOURNAL_MAGIC, 8) == 0 &&
        apg_be64((uint8_t *)f.b_data + 8) == pp->pp_gen) {
        size_t good = replay(pp, (uint8_t *)f.b_data + FILE_HDR, f.b_len - FILE_HDR, pp->pp_jpath);
        bool torn = good + FILE_HDR < f.b_len;
        apg_buf_free(&f);
        if (torn && ftruncate(pp->pp_jfd, (off_t)(good + FILE_HDR)) != 0)
            return apg_errf(APG_EIO, err, errlen, "cannot cut %s: %s", pp->pp_jpath,
                            strerror(errno));
        lseek(pp->pp_jfd, (off_t)(good + FILE_HDR), SEEK_SET);
        pp->pp_jbytes = good + FILE_HDR;
        return APG_OK;
    }
    if (f.b_len > 0)
        apg_log_info("pop", "%s is from before the snapshot (or empty); starting it again",
                     pp->pp_jpath);
    apg_buf_free(&f);
    return journal_reset(pp, err, errlen);
}

/* Appends pp_rec to the journal (lock held). On a short or failed write the
 * journal is cut back, so no torn record stays in front of later ones. */
static apg_err_t journal_write(struct apg_pop *pp)
{
    const uint8_t *p = pp->pp_rec.b_data;
    size_t left = pp->pp_rec.b_len;
    while (left > 0) {
        ssize_t w = write(pp->pp_jfd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (!pp->pp_jfailed)
                apg_log_error("pop", "cannot append to %s: %s; pops are refused until it can",
                              pp->pp_jpath, w < 0 ? strerror(errno) : "short write");
            pp->pp_jfailed = true;
            if (ftruncate(pp->pp_jfd, (off_t)pp->pp_jbytes) == 0)
                lseek(pp->pp_jfd, (off_t)pp->pp_jbytes, SEEK_SET);
            return APG_EIO;
        }
        p += w;
        left -= (size_t)w;
    }
    pp->pp_jfailed = false;
    pp->pp_jbytes += pp->pp_rec.b_len;
    pp->pp_jdirty = true;
    return APG_OK;
}

/* Writes the whole state as the next generation's snapshot and empties the
 * journal (lock held). */
static apg_err_t compact(struct apg_pop *pp)
{
    char err[256];
    struct apg_buf s = APG_BUF_INIT;
    uint8_t h[FILE_HDR];
    hdr_make(h, SNAPSHOT_MAGIC, pp->pp_gen + 1);
    apg_err_t e = apg_buf_append(&s, h, FILE_HDR);
    if (!e)
        e = apg_pop_state_encode(&pp->pp_st, &s);
    if (!e)
        e = apg_file_write_atomic(pp->pp_spath, s.b_data, s.b_len, err, sizeof(err));
    apg_buf_free(&s);
    if (e) {
        apg_log_error("pop", "cannot write the pop snapshot: %s",
                      e == APG_ENOMEM ? "out of memory" : err);
        return e;
    }
    pp->pp_gen++;
    e = journal_reset(pp, err, sizeof(err));
    if (e)
        apg_log_error("pop", "%s", err);
    return e;
}

/* ---- helpers ------------------------------------------------------------ */

static int64_t next_stamp(struct apg_pop *pp, int64_t now)
{
    pp->pp_stamp = now > pp->pp_stamp ? now : pp->pp_stamp + 1;
    return pp->pp_stamp;
}

/* Sets reconsumeTimes of the stored record at rec to v. */
static void rec_set_reconsume(uint8_t *rec, size_t len, int32_t v)
{
    if (len < 40)
        return;
    uint32_t sysflag = apg_be32(rec + 36);
    size_t at = 40 + 8 + ((sysflag & APG_SYSFLAG_BORNHOST_V6) ? 20 : 8) + 8 +
                ((sysflag & APG_SYSFLAG_STOREHOST_V6) ? 20 : 8);
    if (at + 4 <= len)
        apg_wbe32(rec + at, (uint32_t)v);
}

static int64_t init_offset(struct apg_pop *pp, const struct apg_pop_req *rq, int32_t qid)
{
    struct apg_broker *b = pp->pp_b;
    int64_t off = apg_offsets_query(b->br_offsets, rq->pr_group, rq->pr_topic, qid);
    if (off >= 0)
        return off;
    size_t tl = strlen(rq->pr_topic);
    int64_t min = apg_store_min_offset(b->br_store, rq->pr_topic, tl, qid);
    /* A queue never cut by retention is read from its start, as RocketMQ
     * does for a new pop group whose first message is still stored. */
    if (rq->pr_init_min || min == 0)
        return min;
    return apg_store_max_offset(b->br_store, rq->pr_topic, tl, qid);
}

static bool code_ok(void *ud, int64_t code)
{
    return apg_tagexpr_match_code(ud, code);
}

/* Appends a record to recs with its reconsumeTimes set and notes it. */
static apg_err_t add_msg(struct apg_buf *recs, struct apg_pop_result *res, const uint8_t *rec,
                         size_t len, int32_t qid, int64_t offset, int64_t phys, int32_t attempts)
{
    size_t at = recs->b_len;
    apg_err_t e = apg_buf_append(recs, rec, len);
    if (e)
        return e;
    rec_set_reconsume((uint8_t *)recs->b_data + at, len, attempts - 1);
    struct apg_pop_msg *m = &res->pr_msgs[res->pr_n++];
    m->pm_queue = qid;
    m->pm_offset = offset;
    m->pm_phys = phys;
    m->pm_attempts = attempts;
    m->pm_rec_off = at;
    m->pm_rec_len = len;
    return APG_OK;
}

#define TAKE_DUE 1 /* deliveries due again */
#define TAKE_NEW 2 /* messages from the cursor */

/* Pops from one queue (lock held): what `what` (TAKE_* bits) names. */
static apg_err_t take_queue(struct apg_pop *pp, const struct apg_pop_req *rq, int32_t qid, int what,
                            int64_t now, struct apg_buf *recs, struct apg_pop_result *res)
{
    struct apg_broker *b = pp->pp_b;
    struct apg_pop_queue *q = apg_pop_state_queue(&pp->pp_st, rq->pr_group, rq->pr_topic, qid);
    if (!q) {
        q = apg_pop_state_queue_add(&pp->pp_st, rq->pr_group, rq->pr_topic, qid,
                                    init_offset(pp, rq, qid));
        if (!q)
            return APG_ENOMEM;
    }
    size_t tl = strlen(rq->pr_topic);
    int64_t max_off = apg_store_max_offset(b->br_store, rq->pr_topic, tl, qid);
    if (rq->pr_fifo && apg_pop_state_busy(q))
        return APG_OK;
    int want = rq->pr_max - res->pr_n;
    if (want <= 0)
        return APG_OK;
    size_t recs_mark = recs->b_len;
    int n_mark = res->pr_n;
    struct apg_buf *rb = &pp->pp_rec;
    apg_buf_reset(rb);
    size_t start;
    uint16_t nent = 0;
    apg_err_t e = apg_pop_rec_begin(rb, 'P', rq->pr_group, rq->pr_topic, qid, &start);
    size_t hdr_at = rb->b_len;
    for (int k = 0; !e && k < 4; k++)
        e = apg_buf_put_be64(rb, 0); /* stamp, due, invisible, next: filled below */
    if (!e)
        e = apg_buf_put_be16(rb, 0);
    if (e)
        return e;

    /* Due again first, in offset order. */
    struct apg_pop_ent *ready[APG_POP_MAX_BATCH];
    int k = (what & TAKE_DUE) ? apg_pop_state_ready(q, ready, want) : 0;
    for (int i = 0; i < k; i++) {
        struct apg_pop_ent *pe = ready[i];
        apg_buf_reset(&pp->pp_tmp);
        struct apg_msgrec mr;
        if (apg_store_read_at(b->br_store, pe->pe_phys, &pp->pp_tmp) != APG_OK ||
            apg_msgrec_decode(pp->pp_tmp.b_data, pp->pp_tmp.b_len, false, &mr, NULL) !=
                APG_MSGREC_OK) {
            /* Gone with retention: nothing left to hand. */
            apg_log_warn("pop", "group %s: %s queue %d offset %lld is no longer stored; dropped",
                         rq->pr_group, rq->pr_topic, qid, (long long)pe->pe_offset);
            apg_pop_state_remove(&pp->pp_st, pe);
            continue;
        }
        struct apg_pop_rec_ent re = {pe->pe_offset, pe->pe_phys, pe->pe_attempts + 1,
                                     APG_POP_INVISIBLE};
        e = add_msg(recs, res, pp->pp_tmp.b_data, pp->pp_tmp.b_len, qid, re.re_offset, re.re_phys,
                    re.re_attempts);
        if (!e)
            e = apg_pop_rec_put_ent(rb, &re);
        if (e)
            goto undo;
        nent++;
    }

    /* Then new ones from the cursor. */
    int64_t next = q->pq_next;
    want = rq->pr_max - res->pr_n;
    if ((what & TAKE_NEW) && want > 0 && next < max_off) {
        apg_buf_reset(&pp->pp_tmp);
        struct apg_get_result gr;
        const struct apg_tagexpr *f = rq->pr_tags && !rq->pr_tags->te_all ? rq->pr_tags : NULL;
        e = apg_store_get(b->br_store, rq->pr_topic, tl, qid, next, want, b->br_max_pull_bytes,
                          f ? code_ok : NULL, (void *)f, &pp->pp_tmp, &gr);
        if (e)
            goto undo;
        switch (gr.gr_status) {
        case APG_GET_FOUND:
        case APG_GET_NO_MATCHED_MESSAGE:
        case APG_GET_OFFSET_TOO_SMALL:
        case APG_GET_OFFSET_OVERFLOW_BADLY:
            next = gr.gr_next_begin_offset;
            break;
        default:
            break;
        }
        if (gr.gr_status == APG_GET_FOUND && rq->pr_sql)
            apg_broker_filter_sql_keep(rq->pr_sql, &pp->pp_tmp);
        const uint8_t *p = pp->pp_tmp.b_data;
        size_t left = gr.gr_status == APG_GET_FOUND ? pp->pp_tmp.b_len : 0;
        while (left > 0) {
            struct apg_msgrec mr;
            if (apg_msgrec_decode(p, left, false, &mr, NULL) != APG_MSGREC_OK)
                break;
            size_t vl = 0;
            const char *tag = apg_props_find(mr.mr_props, mr.mr_props_len, "TAGS", &vl);
            if (!f || apg_tagexpr_match_tag(f, tag, vl)) {
                struct apg_pop_rec_ent re = {mr.mr_queue_offset, mr.mr_phys_offset, 1,
                                             APG_POP_INVISIBLE};
                e = add_msg(recs, res, p, mr.mr_total_size, qid, re.re_offset, re.re_phys, 1);
                if (!e)
                    e = apg_pop_rec_put_ent(rb, &re);
                if (e)
                    goto undo;
                nent++;
            }
            p += mr.mr_total_size;
            left -= mr.mr_total_size;
        }
    }
    if (nent == 0 && next == q->pq_next)
        return APG_OK;
    uint8_t *h = (uint8_t *)rb->b_data + hdr_at;
    apg_wbe64(h, (uint64_t)res->pr_stamp);
    apg_wbe64(h + 8, (uint64_t)(now + rq->pr_invisible));
    apg_wbe64(h + 16, (uint64_t)rq->pr_invisible);
    apg_wbe64(h + 24, (uint64_t)next);
    apg_wbe16(h + 32, nent);
    apg_pop_rec_end(rb, start);
    e = journal_write(pp);
    if (e)
        goto undo;
    struct apg_pop_rec r;
    size_t used;
    if (apg_pop_rec_decode(rb->b_data, rb->b_len, &r, &used) != APG_OK ||
        apg_pop_state_apply(&pp->pp_st, &r) != APG_OK) {
        /* Only out of memory gets here; the journal has the record, so a
         * restart restores it. */
        e = APG_ENOMEM;
        goto undo;
    }
    for (int i = n_mark; i < res->pr_n; i++)
        if (qid < 256 && res->pr_start[qid] < 0)
            res->pr_start[qid] = res->pr_msgs[i].pm_offset;
    res->pr_rest += max_off > next ? max_off - next : 0;
    return APG_OK;
undo:
    recs->b_len = recs_mark;
    res->pr_n = n_mark;
    return e;
}

static int msg_cmp(const void *a, const void *b)
{
    const struct apg_pop_msg *x = a, *y = b;
    if (x->pm_queue != y->pm_queue)
        return x->pm_queue < y->pm_queue ? -1 : 1;
    return x->pm_offset < y->pm_offset ? -1 : x->pm_offset > y->pm_offset;
}

apg_err_t apg_pop_take(struct apg_pop *pp, const struct apg_pop_req *rq, struct apg_buf *recs,
                       struct apg_pop_result *res, char *err, size_t errlen)
{
    struct apg_broker *b = pp->pp_b;
    struct apg_topic_cfg tc;
    memset(res, 0, sizeof(*res));
    for (int i = 0; i < 256; i++)
        res->pr_start[i] = -1;
    res->pr_invisible = rq->pr_invisible;
    if (!apg_topics_get(b->br_topics, rq->pr_topic, &tc))
        return apg_errf(APG_ENOTFOUND, err, errlen, "topic %s does not exist", rq->pr_topic);
    int nq = tc.tc_read_queues;
    if (rq->pr_queue >= nq)
        return apg_errf(APG_EINVAL, err, errlen,
                        "queueId %d is illegal for topic %s with %d "
                        "read queues",
                        rq->pr_queue, rq->pr_topic, nq);
    int max = rq->pr_max < 1 ? 1 : rq->pr_max > APG_POP_MAX_BATCH ? APG_POP_MAX_BATCH : rq->pr_max;
    struct apg_pop_req r = *rq;
    r.pr_max = max;
    apg_err_t e = APG_OK;
    pthread_mutex_lock(&pp->pp_lock);
    int64_t now = apg_wall_ms();
    res->pr_stamp = next_stamp(pp, now);
    if (rq->pr_queue >= 0) {
        e = take_queue(pp, &r, rq->pr_queue, TAKE_DUE | TAKE_NEW, now, recs, res);
    } else {
        /* Every queue's due deliveries before any new message, so a queue
         * with a backlog does not hold back redeliveries of the others (a
         * FIFO pop takes both from a queue at once: handing its due ones
         * holds the queue). */
        unsigned s = pp->pp_rr++;
        for (int pass = rq->pr_fifo ? 1 : 0; pass < 2; pass++) {
            int what = rq->pr_fifo ? TAKE_DUE | TAKE_NEW : pass == 0 ? TAKE_DUE : TAKE_NEW;
            for (int i = 0; i < nq && res->pr_n < max && !e; i++)
                e = take_queue(pp, &r, (int32_t)((s + (unsigned)i) % (unsigned)nq), what, now, recs,
                               res);
        }
    }
    pthread_mutex_unlock(&pp->pp_lock);
    /* By queue, then offset: the offset lists of the answer are per queue
     * and ascending (a queue may have given in both passes). */
    qsort(res->pr_msgs, (size_t)res->pr_n, sizeof(res->pr_msgs[0]), msg_cmp);
    if (e && res->pr_n == 0)
        return apg_errf(e, err, errlen,
                        e == APG_EIO ? "the pop journal cannot be written" : "out of memory");
    return APG_OK;
}

/* Journals and applies an ack or change record built in pp_rec (lock held). */
static apg_err_t log_apply(struct apg_pop *pp)
{
    struct apg_pop_rec r;
    size_t used;
    apg_pop_rec_decode(pp->pp_rec.b_data, pp->pp_rec.b_len, &r, &used);
    /* Check first so a stale handle writes nothing. */
    char key_g[256], key_t[256];
    snprintf(key_g, sizeof(key_g), "%.*s", (int)r.r_group_len, r.r_group);
    snprintf(key_t, sizeof(key_t), "%.*s", (int)r.r_topic_len, r.r_topic);
    struct apg_pop_queue *q = apg_pop_state_queue(&pp->pp_st, key_g, key_t, r.r_qid);
    struct apg_pop_ent *e = q ? apg_pop_state_find(q, r.r_offset) : NULL;
    if (!e || (r.r_stamp != -1 && e->pe_stamp != r.r_stamp) ||
        (r.r_op == 'C' && e->pe_state != APG_POP_INVISIBLE))
        return APG_ENOTFOUND;
    apg_err_t rc = journal_write(pp);
    if (rc)
        return rc;
    rc = apg_pop_state_apply(&pp->pp_st, &r);
    if (!rc && r.r_op == 'A')
        apg_offsets_commit(pp->pp_b->br_offsets, key_g, key_t, r.r_qid, apg_pop_state_low(q));
    return rc;
}

static apg_err_t ack_locked(struct apg_pop *pp, const char *group, const char *topic, int32_t qid,
                            int64_t offset, int64_t stamp)
{
    size_t start;
    apg_buf_reset(&pp->pp_rec);
    apg_err_t e = apg_pop_rec_begin(&pp->pp_rec, 'A', group, topic, qid, &start);
    if (!e)
        e = apg_buf_put_be64(&pp->pp_rec, (uint64_t)offset);
    if (!e)
        e = apg_buf_put_be64(&pp->pp_rec, (uint64_t)stamp);
    if (e)
        return e;
    apg_pop_rec_end(&pp->pp_rec, start);
    return log_apply(pp);
}

apg_err_t apg_pop_ack(struct apg_pop *pp, const char *group, const char *topic, int32_t qid,
                      int64_t offset, int64_t stamp)
{
    pthread_mutex_lock(&pp->pp_lock);
    apg_err_t e = ack_locked(pp, group, topic, qid, offset, stamp < 0 ? -2 : stamp);
    pthread_mutex_unlock(&pp->pp_lock);
    return e;
}

#define ACK_QCACHE 16

/* The queue of qid, through a small cache of the queues one call touched. */
static struct apg_pop_queue *ack_queue(struct apg_pop *pp, const char *group, const char *topic,
                                       int32_t qid, int32_t *cq, struct apg_pop_queue **cv, int *nc)
{
    for (int i = 0; i < *nc; i++)
        if (cq[i] == qid)
            return cv[i];
    struct apg_pop_queue *q = apg_pop_state_queue(&pp->pp_st, group, topic, qid);
    if (q && *nc < ACK_QCACHE) {
        cq[*nc] = qid;
        cv[(*nc)++] = q;
    }
    return q;
}

void apg_pop_ack_many(struct apg_pop *pp, const char *group, const char *topic,
                      struct apg_pop_ack_ent *v, int n)
{
    int32_t cq[ACK_QCACHE];
    struct apg_pop_queue *cv[ACK_QCACHE];
    int nc = 0, ok = 0;
    pthread_mutex_lock(&pp->pp_lock);
    apg_buf_reset(&pp->pp_rec);
    /* Check every delivery first (a stale one writes nothing), building
     * the records of the others. */
    for (int i = 0; i < n; i++) {
        struct apg_pop_ack_ent *a = &v[i];
        int64_t stamp = a->pa_stamp < 0 ? -2 : a->pa_stamp;
        struct apg_pop_queue *q = ack_queue(pp, group, topic, a->pa_qid, cq, cv, &nc);
        struct apg_pop_ent *e = q ? apg_pop_state_find(q, a->pa_offset) : NULL;
        a->pa_rc = e && e->pe_stamp == stamp ? APG_OK : APG_ENOTFOUND;
        for (int k = 0; k < i && a->pa_rc == APG_OK; k++)
            if (v[k].pa_rc == APG_OK && v[k].pa_qid == a->pa_qid && v[k].pa_offset == a->pa_offset)
                a->pa_rc = APG_ENOTFOUND;
        if (a->pa_rc)
            continue;
        size_t start;
        apg_err_t e2 = apg_pop_rec_begin(&pp->pp_rec, 'A', group, topic, a->pa_qid, &start);
        if (!e2)
            e2 = apg_buf_put_be64(&pp->pp_rec, (uint64_t)a->pa_offset);
        if (!e2)
            e2 = apg_buf_put_be64(&pp->pp_rec, (uint64_t)stamp);
        if (e2) {
            pp->pp_rec.b_len = start < pp->pp_rec.b_len ? start : pp->pp_rec.b_len;
            a->pa_rc = e2;
            continue;
        }
        apg_pop_rec_end(&pp->pp_rec, start);
        ok++;
    }
    apg_err_t we = ok ? journal_write(pp) : APG_OK;
    for (int i = 0; i < n; i++) {
        struct apg_pop_ack_ent *a = &v[i];
        if (a->pa_rc)
            continue;
        if (we) {
            a->pa_rc = we;
            continue;
        }
        struct apg_pop_queue *q = ack_queue(pp, group, topic, a->pa_qid, cq, cv, &nc);
        struct apg_pop_ent *e = q ? apg_pop_state_find(q, a->pa_offset) : NULL;
        if (e)
            apg_pop_state_remove(&pp->pp_st, e);
    }
    /* One offset commit per queue touched (the cache holds them all unless
     * a call named more than ACK_QCACHE queues: those commit per entry). */
    for (int i = 0; i < n && !we && ok; i++) {
        struct apg_pop_ack_ent *a = &v[i];
        if (a->pa_rc)
            continue;
        bool cached = false;
        for (int k = 0; k < nc && !cached; k++)
            cached = cq[k] == a->pa_qid;
        if (cached)
            continue;
        struct apg_pop_queue *q = apg_pop_state_queue(&pp->pp_st, group, topic, a->pa_qid);
        if (q)
            apg_offsets_commit(pp->pp_b->br_offsets, group, topic, a->pa_qid, apg_pop_state_low(q));
    }
    for (int k = 0; k < nc && !we && ok; k++)
        apg_offsets_commit(pp->pp_b->br_offsets, group, topic, cq[k], apg_pop_state_low(cv[k]));
    pthread_mutex_unlock(&pp->pp_lock);
}

apg_err_t apg_pop_change(struct apg_pop *pp, const char *group, const char *topic, int32_t qid,
                         int64_t offset, int64_t stamp, int64_t invisible_ms, int64_t *new_stamp)
{
    size_t start;
    pthread_mutex_lock(&pp->pp_lock);
    int64_t now = apg_wall_ms();
    struct apg_pop_queue *q = apg_pop_state_queue(&pp->pp_st, group, topic, qid);
    struct apg_pop_ent *pe = q ? apg_pop_state_find(q, offset) : NULL;
    apg_err_t e = APG_ENOTFOUND;
    if (pe && pe->pe_stamp == stamp && pe->pe_state == APG_POP_INVISIBLE && pe->pe_due > now) {
        int64_t ns = next_stamp(pp, now);
        apg_buf_reset(&pp->pp_rec);
        e = apg_pop_rec_begin(&pp->pp_rec, 'C', group, topic, qid, &start);
        int64_t v[5] = {offset, stamp, ns, now + invisible_ms, invisible_ms};
        for (int i = 0; !e && i < 5; i++)
            e = apg_buf_put_be64(&pp->pp_rec, (uint64_t)v[i]);
        if (!e) {
            apg_pop_rec_end(&pp->pp_rec, start);
            e = log_apply(pp);
        }
        if (!e)
            *new_stamp = ns;
    }
    pthread_mutex_unlock(&pp->pp_lock);
    return e;
}

bool apg_pop_available(struct apg_pop *pp, const char *group, const char *topic, int32_t qid)
{
    struct apg_broker *b = pp->pp_b;
    struct apg_topic_cfg tc;
    if (!apg_topics_get(b->br_topics, topic, &tc))
        return false;
    size_t tl = strlen(topic);
    bool any = false;
    pthread_mutex_lock(&pp->pp_lock);
    for (int i = qid >= 0 ? qid : 0; i < (qid >= 0 ? qid + 1 : tc.tc_read_queues) && !any; i++) {
        struct apg_pop_queue *q = apg_pop_state_queue(&pp->pp_st, group, topic, i);
        int64_t max = apg_store_max_offset(b->br_store, topic, tl, i);
        if (q)
            any = q->pq_ready > 0 || q->pq_next < max;
        else
            any = max > apg_store_min_offset(b->br_store, topic, tl, i);
    }
    pthread_mutex_unlock(&pp->pp_lock);
    return any;
}

int64_t apg_pop_inflight(struct apg_pop *pp)
{
    pthread_mutex_lock(&pp->pp_lock);
    int64_t n = pp->pp_st.ps_entries;
    pthread_mutex_unlock(&pp->pp_lock);
    return n;
}

/* ---- revive ------------------------------------------------------------- */

struct dlq_item {
    char di_group[APG_NAME_CAP];
    char di_topic[APG_NAME_CAP];
    int32_t di_qid;
    int64_t di_offset;
    int64_t di_phys;
    int32_t di_attempts;
};

static int32_t max_attempts(struct apg_pop *pp, const char *group)
{
    struct apg_group_cfg gc;
    if (!apg_groups_get(pp->pp_b->br_groups, group, &gc))
        apg_group_cfg_defaults(&gc, group);
    return gc.gc_retry_max_times < 0 ? 1 : gc.gc_retry_max_times + 1;
}

static int64_t backoff_ms(int32_t attempts)
{
    int sh = attempts - 1 < 10 ? attempts - 1 : 10;
    int64_t s = ((int64_t)1 << (sh < 0 ? 0 : sh)) - 1;
    return (s > MAX_BACKOFF_S ? MAX_BACKOFF_S : s) * 1000;
}

/* Stores the dead-letter copy of one message; true when stored. */
static bool dlq_store(struct apg_pop *pp, const struct dlq_item *di, struct apg_buf *rb)
{
    struct apg_broker *b = pp->pp_b;
    char topic[APG_NAME_CAP + 8], err[256];
    snprintf(topic, sizeof(topic), "%s%s", APG_DLQ_PREFIX, di->di_group);
    struct apg_msgrec rec;
    apg_buf_reset(rb);
    if (apg_store_read_at(b->br_store, di->di_phys, rb) != APG_OK ||
        apg_msgrec_decode(rb->b_data, rb->b_len, false, &rec, NULL) != APG_MSGREC_OK) {
        apg_log_warn("pop", "group %s: %s queue %d offset %lld is no longer stored; dropped",
                     di->di_group, di->di_topic, di->di_qid, (long long)di->di_offset);
        return true;
    }
    if (apg_topics_ensure_dlq(b->br_topics, topic))
        return false;
    struct apg_buf props = APG_BUF_INIT;
    char orig_id[64];
    apg_msgid_encode(&rec.mr_store_host, rec.mr_phys_offset, orig_id, sizeof(orig_id));
    apg_err_t e = apg_buf_append(&props, rec.mr_props, rec.mr_props_len);
    if (!e && rec.mr_props_len && rec.mr_props[rec.mr_props_len - 1] != APG_PROPS_SEP)
        e = apg_buf_append(&props, "\x02", 1);
    size_t vl;
    if (!e && !apg_props_find(rec.mr_props, rec.mr_props_len, "RETRY_TOPIC", &vl))
        e = apg_props_append(&props, "RETRY_TOPIC", di->di_topic);
    if (!e && !apg_props_find(rec.mr_props, rec.mr_props_len, "ORIGIN_MESSAGE_ID", &vl))
        e = apg_props_append(&props, "ORIGIN_MESSAGE_ID", orig_id);
    bool ok = false;
    if (!e && props.b_len <= 32767) {
        size_t tl;
        const char *tags = apg_props_find((const char *)props.b_data, props.b_len, "TAGS", &tl);
        struct apg_msg_in m;
        memset(&m, 0, sizeof(m));
        m.mi_topic = topic;
        m.mi_topic_len = strlen(topic);
        m.mi_queue_id = 0;
        m.mi_flag = rec.mr_flag;
        m.mi_sysflag = rec.mr_sysflag & ~(APG_SYSFLAG_BORNHOST_V6 | APG_SYSFLAG_STOREHOST_V6);
        m.mi_born_ts = rec.mr_born_ts;
        m.mi_born_host = rec.mr_born_host;
        m.mi_reconsume_times = di->di_attempts;
        m.mi_body = rec.mr_body;
        m.mi_body_len = rec.mr_body_len;
        m.mi_props = (const char *)props.b_data;
        m.mi_props_len = props.b_len;
        m.mi_tags_code = tags && tl ? (int64_t)apg_java_hash(tags, tl) : 0;
        struct apg_put_result pr;
        ok = apg_broker_put_internal(b, &m, 1, &pr, err, sizeof(err)) == APG_OK;
        if (ok)
            apg_log_info("pop", "group %s: message %s of %s delivered %d time(s); moved to %s",
                         di->di_group, orig_id, di->di_topic, di->di_attempts, topic);
        else
            apg_log_warn("pop", "group %s: cannot store message %s in %s: %s; tried again later",
                         di->di_group, orig_id, topic, err);
    }
    apg_buf_free(&props);
    return ok;
}

/* Stores the dead-letter copy of an entry parked out of reach, then
 * removes the entry (journaled), or, when the copy could not be stored,
 * makes it due again with one attempt less, so the next deadline tries
 * again. False when not stored. */
static bool dlq_finish(struct apg_pop *pp, const struct dlq_item *di, struct apg_buf *rb,
                       int64_t now)
{
    bool ok = dlq_store(pp, di, rb);
    pthread_mutex_lock(&pp->pp_lock);
    struct apg_pop_queue *q =
        apg_pop_state_queue(&pp->pp_st, di->di_group, di->di_topic, di->di_qid);
    struct apg_pop_ent *pe = q ? apg_pop_state_find(q, di->di_offset) : NULL;
    if (pe && ok) {
        if (ack_locked(pp, di->di_group, di->di_topic, di->di_qid, di->di_offset, -1) != APG_OK)
            apg_pop_state_expire(&pp->pp_st, pe, now, 1000);
    } else if (pe) {
        apg_pop_state_expire(&pp->pp_st, pe, now, 0);
        pe->pe_attempts--;
    }
    pthread_mutex_unlock(&pp->pp_lock);
    return ok;
}

/* Notes entry e for a dead-letter copy and parks it out of reach (lock
 * held). */
static void dlq_take(struct apg_pop *pp, struct apg_pop_ent *e, struct dlq_item *di, int64_t now)
{
    snprintf(di->di_group, sizeof(di->di_group), "%s", e->pe_q->pq_group);
    snprintf(di->di_topic, sizeof(di->di_topic), "%s", e->pe_q->pq_topic);
    di->di_qid = e->pe_q->pq_qid;
    di->di_offset = e->pe_offset;
    di->di_phys = e->pe_phys;
    di->di_attempts = e->pe_attempts;
    apg_pop_state_expire(&pp->pp_st, e, now, INT64_MAX / 4);
}

apg_err_t apg_pop_dead_letter(struct apg_pop *pp, const char *group, const char *topic, int32_t qid,
                              int64_t offset, int64_t stamp)
{
    struct dlq_item di;
    pthread_mutex_lock(&pp->pp_lock);
    int64_t now = apg_wall_ms();
    struct apg_pop_queue *q = apg_pop_state_queue(&pp->pp_st, group, topic, qid);
    struct apg_pop_ent *pe = q ? apg_pop_state_find(q, offset) : NULL;
    bool found = pe && pe->pe_stamp == stamp && pe->pe_state == APG_POP_INVISIBLE;
    if (found)
        dlq_take(pp, pe, &di, now);
    pthread_mutex_unlock(&pp->pp_lock);
    if (!found)
        return APG_ENOTFOUND;
    struct apg_buf rb = APG_BUF_INIT;
    bool ok = dlq_finish(pp, &di, &rb, now);
    apg_buf_free(&rb);
    return ok ? APG_OK : APG_EIO;
}

static void job_revive(void *ud, int64_t now)
{
    struct apg_pop *pp = ud;
    struct dlq_item *dl = NULL;
    int ndl = 0;
    bool woke = false;
    pthread_mutex_lock(&pp->pp_lock);
    struct apg_pop_ent *e;
    while ((e = apg_pop_state_due(&pp->pp_st, now)) != NULL) {
        if (e->pe_state == APG_POP_INVISIBLE &&
            e->pe_attempts >= max_attempts(pp, e->pe_q->pq_group)) {
            if (!dl)
                dl = apg_calloc(DLQ_BATCH, sizeof(*dl));
            if (!dl || ndl == DLQ_BATCH)
                break;
            /* Parked out of reach until its copy is stored. */
            dlq_take(pp, e, &dl[ndl++], now);
            continue;
        }
        apg_pop_state_expire(&pp->pp_st, e, now, backoff_ms(e->pe_attempts));
        woke = true;
    }
    pthread_mutex_unlock(&pp->pp_lock);
    struct apg_buf rb = APG_BUF_INIT;
    for (int i = 0; i < ndl; i++)
        dlq_finish(pp, &dl[i], &rb, now);
    apg_buf_free(&rb);
    apg_free(dl);
    if (woke)
        apg_broker_pull_arrive(pp->pp_b, NULL, 0, -1, 0);
    apg_pop_tick_fn tick = atomic_load(&pp->pp_tick);
    if (tick)
        tick(atomic_load(&pp->pp_tick_ud));
}

void apg_pop_set_tick(struct apg_pop *pp, apg_pop_tick_fn fn, void *ud)
{
    atomic_store(&pp->pp_tick_ud, ud);
    atomic_store(&pp->pp_tick, fn);
}

static void job_sync(void *ud, int64_t now)
{
    (void)now;
    struct apg_pop *pp = ud;
    pthread_mutex_lock(&pp->pp_lock);
    bool dirty = pp->pp_jdirty;
    pp->pp_jdirty = false;
    int fd = pp->pp_jfd;
    pthread_mutex_unlock(&pp->pp_lock);
    /* Outside the lock: appends go on while the disk syncs. The fd stays
     * open (compaction truncates, never reopens). */
    if (dirty && fdatasync(fd) != 0)
        apg_log_error("pop", "fdatasync of %s failed: %s", pp->pp_jpath, strerror(errno));
}

static void job_compact(void *ud, int64_t now)
{
    (void)now;
    struct apg_pop *pp = ud;
    pthread_mutex_lock(&pp->pp_lock);
    if (pp->pp_jbytes > COMPACT_BYTES)
        compact(pp);
    pthread_mutex_unlock(&pp->pp_lock);
}

/* Revive thread: one pass of the job table. */
static int64_t pop_step(void *arg, unsigned kicks)
{
    (void)kicks;
    struct apg_pop *pp = arg;
    int n = (int)(sizeof(pp->pp_jobs) / sizeof(pp->pp_jobs[0]));
    return apg_cron_run(pp->pp_jobs, n, pp, apg_wall_ms());
}

/* ---- open / start / stop ------------------------------------------------ */

static void pop_free(struct apg_pop *pp)
{
    if (pp->pp_jfd >= 0)
        close(pp->pp_jfd);
    apg_pop_state_free(&pp->pp_st);
    apg_buf_free(&pp->pp_rec);
    apg_buf_free(&pp->pp_tmp);
    apg_free(pp->pp_jpath);
    apg_free(pp->pp_spath);
    pthread_mutex_destroy(&pp->pp_lock);
    apg_worker_destroy(&pp->pp_worker);
    apg_free(pp);
}

apg_err_t apg_pop_open(struct apg_broker *b, struct apg_pop **out, char *err, size_t errlen)
{
    *out = NULL;
    struct apg_pop *pp = apg_calloc(1, sizeof(*pp));
    if (!pp)
        return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    pp->pp_b = b;
    pp->pp_jfd = -1;
    apg_pop_state_init(&pp->pp_st);
    pthread_mutex_init(&pp->pp_lock, NULL);
    apg_worker_init(&pp->pp_worker, pop_step, pp);
    char *dir = apg_path_join(b->br_root, "pop");
    pp->pp_jpath = apg_path_join(b->br_root, "pop/journal");
    pp->pp_spath = apg_path_join(b->br_root, "pop/snapshot");
    apg_err_t e = !dir || !pp->pp_jpath || !pp->pp_spath
                      ? apg_errf(APG_ENOMEM, err, errlen, "out of memory")
                      : apg_file_mkdir_p(dir, err, errlen);
    apg_free(dir);
    if (!e)
        e = load(pp, err, errlen);
    if (e) {
        pop_free(pp);
        return e;
    }
    if (pp->pp_st.ps_entries)
        apg_log_info("pop", "%lld message(s) in flight restored", (long long)pp->pp_st.ps_entries);
    *out = pp;
    return APG_OK;
}

apg_err_t apg_pop_start(struct apg_pop *pp, char *err, size_t errlen)
{
    struct apg_cron_job jobs[] = {
        {.cj_name = "pop revive", .cj_period_ms = REVIVE_MS, .cj_first_ms = 0, .cj_fn = job_revive},
        {.cj_name = "pop journal sync",
         .cj_period_ms = 1000,
         .cj_first_ms = 1000,
         .cj_fn = job_sync},
        {.cj_name = "pop compaction",
         .cj_period_ms = 10000,
         .cj_first_ms = 10000,
         .cj_fn = job_compact},
    };
    _Static_assert(sizeof(jobs) == sizeof(pp->pp_jobs), "pp_jobs holds the job table");
    memcpy(pp->pp_jobs, jobs, sizeof(jobs));
    apg_cron_start(pp->pp_jobs, (int)(sizeof(jobs) / sizeof(jobs[0])), apg_wall_ms());
    return apg_worker_start(&pp->pp_worker, "pop revive", err, errlen);
}

void apg_pop_stop(struct apg_pop *pp)
{
    if (!pp)
        return;
    apg_worker_stop(&pp->pp_worker);
    pthread_mutex_lock(&pp->pp_lock);
    if (pp->pp_jbytes > FILE_HDR && compact(pp) != APG_OK && pp->pp_jfd >= 0)
        fdatasync(pp->pp_jfd);
    pthread_mutex_unlock(&pp->pp_lock);
    pop_free(pp);
}

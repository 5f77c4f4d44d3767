/* The broker's one write service: every writer (send, batch send, send-back,
 * gRPC, HTTP and REST sends, admin resends, and through
 * apg_broker_put_internal delayed and timer delivery, transaction ends and
 * check-backs, the pop dead-letter copy) hands it validated records and it
 * does the rest in one order: queue choice (round-robin for
 * queueId < 0), fast failure (SYSTEM_BUSY when the store cannot keep up),
 * apg_store_put, and the reply: at once, or under SYNC_FLUSH when the
 * store's group commit acknowledges the record.
 *
 * Fast failure. Requests run to completion on their loop thread, so a send
 * has "waited in the queue" when its loop got to it late, and the store is
 * behind when one put stalls inside it. Three measures, each answering
 * SYSTEM_BUSY at once with a remark whose tag clients know from RocketMQ:
 *   [TIMEOUT_CLEAN_QUEUE] the loop has known the request's bytes were
 *     readable (its poll returned) for waitTimeMillsInSendQueue ms or more:
 *     earlier requests of the same iteration (slow puts, a stalled lock)
 *     held it up;
 *   [PC_SYNCHRONIZED] the put now inside the store has held the append lock
 *     for more than osPageCacheBusyTimeOutMills: this put would queue
 *     behind it (the kernel is throttling writes behind a slow disk);
 *   [OVERLOAD] SYNC_FLUSH only: br_sync_pending_max sends already wait for
 *     the disk.
 * The first two obey brokerFastFailureEnable. A refused send is not stored.
 *
 * SYNC_FLUSH acknowledgements: the flush thread queues the finished put on
 * the connection loop's bl_acks list and posts one drain per batch, so there
 * is no per-message thread hand-off on the way in and one wake-up per flush
 * on the way out. br_sync_pending bounds how many puts may wait for the disk.
 * A writer whose reply carries no put fields and that must record something
 * once its records are durable (END_TRANSACTION: the transaction's end) uses
 * apg_broker_put_acked: the same acknowledgement, with a callback the drain
 * runs on the loop thread before it answers, so the loop never waits for
 * the disk.
 *
 * Held puts. Single-message sends parsed from one read of a connection are
 * held back (apg_broker_put_hold) and stored with ONE apg_store_put (one
 * pwrite of their records) when the read's requests are done, then answered
 * in order (under SYNC_FLUSH, when the group commit that covers them
 * completes: one store waiter for all of them). Each reply is still written
 * only after its record is in the page cache, and a request of any other
 * kind flushes the held puts before it runs, so a client sees no difference
 * except fewer system calls in the broker. The topic and properties are
 * copied (the header scratch is reused per frame); bodies point into the
 * connection's read buffer, which stays put until the read is done
 * (on_read_end).
 *
 * Threads: everything runs on the connection's loop thread except on_ack and
 * on_group_ack (the store's ack thread), which only append to bl_acks under
 * bl_ack_lock. struct apg_put_loop belongs to its loop thread. */
#include <stdio.h>
#include <string.h>

#include "broker/broker_rt.h"
#include "common/hash.h"
#include "common/mem.h"
#include "protocol/props.h"

#define HOLD_MAX 256
#define HOLD_BYTES (1 << 20)

/* A put waiting for its SYNC_FLUSH acknowledgement. */
struct apg_sync_ack {
    struct apg_sync_ack *sa_next;
    struct apg_broker *sa_broker;
    struct apg_conn *sa_conn; /* referenced */
    int32_t sa_opaque;
    uint8_t sa_serialize;
    bool sa_oneway;
    apg_err_t sa_rc;
    int32_t sa_queue_id;
    int64_t sa_queue_offset;
    char sa_uniq[80];
    char *sa_msgid; /* comma-joined for batches: owned, or sa_id1 for one message */
    char sa_id1[64];
    /* apg_broker_put_acked: runs before the reply, which has no put fields */
    apg_broker_put_done_fn sa_done;
    void *sa_done_arg;
};

/* One held single-message send. */
struct held {
    struct apg_msg_in hd_msg;
    size_t hd_topic_off, hd_props_off;
    int32_t hd_opaque;
    int32_t hd_qid;
    uint8_t hd_serialize;
    bool hd_oneway;
    char hd_uniq[80];
};

/* Per loop: the held sends and the result array of batch puts, both kept
 * between requests so a warm put allocates nothing but its ack. */
struct apg_put_loop {
    struct held *pu_v;
    struct apg_msg_in *pu_msgs;
    struct apg_put_result *pu_res;
    struct apg_sync_ack **pu_acks; /* scratch for put_group, pu_cap long */
    int pu_n, pu_cap;
    size_t pu_bytes;
    struct apg_buf pu_text; /* topics and properties of the held sends */
    struct apg_conn *pu_conn;
    bool pu_sync;                   /* the held sends wait for the SYNC_FLUSH group commit */
    struct apg_put_result *pu_bres; /* batch results */
    int pu_bres_cap;
};

/* The acknowledgements of one coalesced SYNC_FLUSH append: the store calls
 * back once, and each send is answered as if it had been stored alone. */
struct sync_group {
    int sg_n;
    struct apg_sync_ack *sg_acks[];
};

apg_err_t apg_broker_put_loop_start(struct apg_bloop *bl)
{
    bl->bl_put = apg_calloc(1, sizeof(*bl->bl_put));
    return bl->bl_put ? APG_OK : APG_ENOMEM;
}

void apg_broker_put_loop_stop(struct apg_bloop *bl)
{
    struct apg_put_loop *pu = bl->bl_put;
    if (!pu)
        return;
    apg_broker_put_drain(bl);
    apg_free(pu->pu_v);
    apg_free(pu->pu_msgs);
    apg_free(pu->pu_res);
    apg_free(pu->pu_acks);
    apg_free(pu->pu_bres);
    apg_buf_free(&pu->pu_text);
    apg_free(pu);
    bl->bl_put = NULL;
}

int32_t apg_broker_put_queue(struct apg_broker *b, const struct apg_topic_cfg *tc, int32_t qid)
{
    if (qid >= 0)
        return qid;
    return (int32_t)(atomic_fetch_add(&b->br_rr, 1) % (unsigned)tc->tc_write_queues);
}

/* Answers a's put: like a send (msgId, queueId, queueOffset), or with no
 * put fields for apg_broker_put_acked. */
static void ack_reply(struct apg_sync_ack *a, int32_t code, const char *remark)
{
    if (a->sa_done) {
        struct apg_rcmd req = {0}, resp;
        req.opaque = a->sa_opaque;
        req.serialize = a->sa_serialize;
        apg_rcmd_init_response(&resp, &req, code, remark);
        apg_conn_send(a->sa_conn, &resp, NULL, 0);
        return;
    }
    apg_broker_reply_send(a->sa_conn, a->sa_opaque, a->sa_serialize, code, remark, a->sa_msgid,
                          a->sa_queue_id, a->sa_queue_offset, a->sa_uniq);
}

void apg_broker_put_drain(void *arg)
{
    struct apg_bloop *bl = arg;
    pthread_mutex_lock(&bl->bl_ack_lock);
    struct apg_sync_ack *list = bl->bl_acks;
    bl->bl_acks = NULL;
    bl->bl_ack_posted = false;
    pthread_mutex_unlock(&bl->bl_ack_lock);
    /* The list is newest-first; answer in arrival order. */
    struct apg_sync_ack *rev = NULL;
    while (list) {
        struct apg_sync_ack *n = list->sa_next;
        list->sa_next = rev;
        rev = list;
        list = n;
    }
    while (rev) {
        struct apg_sync_ack *a = rev;
        rev = a->sa_next;
        static const char *const timeout_remark =
            "stored, but the disk flush did not finish within syncFlushTimeout";
        static const char *const slave_none_remark =
            "stored on the master, but no slave is connected within haMaxGapNotInSync "
            "(brokerRole=SYNC_MASTER): start the slave, or run the master as ASYNC_MASTER";
        static const char *const slave_timeout_remark =
            "stored on the master, but no slave acknowledged it within syncFlushTimeout "
            "(brokerRole=SYNC_MASTER)";
        static const char *const failed_remark =
            "the store failed to fsync the commit log and no longer accepts writes; check the "
            "disk and restart the broker";
        bool answer = !a->sa_oneway && !apg_conn_is_closed(a->sa_conn);
        const char *what = a->sa_done ? "SYNC_FLUSH put" : "SYNC_FLUSH send";
        if (a->sa_done)
            a->sa_done(a->sa_broker, a->sa_done_arg, a->sa_rc, a->sa_queue_offset);
        if (a->sa_rc == APG_OK) {
            if (answer)
                ack_reply(a, APG_RESP_SUCCESS, NULL);
        } else if (a->sa_rc == APG_ENOSLAVE || a->sa_rc == APG_ESLAVETIMEOUT) {
            /* SYNC_MASTER: stored here, not (yet) on a slave. RocketMQ answers
             * with the put fields and these codes, which clients read as a
             * send status (SLAVE_NOT_AVAILABLE, FLUSH_SLAVE_TIMEOUT). */
            bool none = a->sa_rc == APG_ENOSLAVE;
            const char *remark = none ? slave_none_remark : slave_timeout_remark;
            apg_broker_refusal_note(
                a->sa_broker, APG_REFUSAL_SLAVE, what, NULL, apg_conn_peer(a->sa_conn),
                none ? APG_RESP_SLAVE_NOT_AVAILABLE : APG_RESP_FLUSH_SLAVE_TIMEOUT, remark);
            if (answer)
                ack_reply(a, none ? APG_RESP_SLAVE_NOT_AVAILABLE : APG_RESP_FLUSH_SLAVE_TIMEOUT,
                          remark);
        } else if (a->sa_rc == APG_ETIMEDOUT) {
            apg_broker_refusal_note(a->sa_broker, APG_REFUSAL_FLUSH_TIMEOUT, what, NULL,
                                    apg_conn_peer(a->sa_conn), APG_RESP_FLUSH_DISK_TIMEOUT,
                                    timeout_remark);
            if (answer)
                ack_reply(a, APG_RESP_FLUSH_DISK_TIMEOUT, timeout_remark);
        } else {
            atomic_fetch_add_explicit(&a->sa_broker->br_put_failed, 1, memory_order_relaxed);
            apg_broker_refusal_note(a->sa_broker, APG_REFUSAL_STORE_UNAVAILABLE, what, NULL,
                                    apg_conn_peer(a->sa_conn), APG_RESP_SERVICE_NOT_AVAILABLE,
                                    failed_remark);
            if (answer)
                apg_broker_reply_send(a->sa_conn, a->sa_opaque, a->sa_serialize,
                                      APG_RESP_SERVICE_NOT_AVAILABLE, failed_remark, NULL, 0, 0,
                                      NULL);
        }
        atomic_fetch_sub(&a->sa_broker->br_sync_pending, 1);
        apg_conn_unref(a->sa_conn);
        if (a->sa_msgid != a->sa_id1)
            apg_free(a->sa_msgid);
        apg_free(a);
    }
}

/* Store ack thread. */
static void on_ack(void *ud, apg_err_t rc)
{
    struct apg_sync_ack *a = ud;
    struct apg_broker *b = a->sa_broker;
    struct apg_bloop *bl = &b->br_loops[apg_conn_loop_index(a->sa_conn)];
    a->sa_rc = rc;
    pthread_mutex_lock(&bl->bl_ack_lock);
    a->sa_next = bl->bl_acks;
    bl->bl_acks = a;
    bool post = !bl->bl_ack_posted;
    bl->bl_ack_posted = true;
    pthread_mutex_unlock(&bl->bl_ack_lock);
    if (post && apg_net_server_post(b->br_srv, bl->bl_idx, apg_broker_put_drain, bl) != APG_OK) {
        /* Shutting down: the loop will not run again; free what we queued. */
        pthread_mutex_lock(&bl->bl_ack_lock);
        bl->bl_ack_posted = false;
        pthread_mutex_unlock(&bl->bl_ack_lock);
    }
}

/* Store ack thread: fans one group commit out to its sends. */
static void on_group_ack(void *ud, apg_err_t rc)
{
    struct sync_group *g = ud;
    for (int i = 0; i < g->sg_n; i++)
        on_ack(g->sg_acks[i], rc);
    apg_free(g);
}

/* SYNC_FLUSH store, reply not waiting for the flush (WAIT=false): the store
 * still queues the put for its group commit and reports here, on its ack
 * thread; nothing waits for it (with no callback apg_store_put would block
 * this loop thread until the fdatasync). */
static void no_wait_ack(void *ud, apg_err_t rc)
{
    (void)ud;
    (void)rc;
}

/* A SYNC_FLUSH acknowledgement for one put, holding a reference to c
 * (on_ack may run on the ack thread as soon as the put is in, and needs
 * the connection). NULL when out of memory. */
static struct apg_sync_ack *ack_new(struct apg_broker *b, struct apg_conn *c, int32_t opaque,
                                    uint8_t ser, bool oneway, int32_t qid, const char *uniq)
{
    struct apg_sync_ack *a = apg_calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->sa_broker = b;
    apg_conn_ref(c);
    a->sa_conn = c;
    a->sa_opaque = opaque;
    a->sa_serialize = ser;
    a->sa_oneway = oneway;
    a->sa_queue_id = qid;
    snprintf(a->sa_uniq, sizeof(a->sa_uniq), "%s", uniq);
    return a;
}

/* Answers a put stored at r (the common case: no acknowledgement to wait
 * for, the reply built on the stack). */
static void reply_stored(struct apg_broker *b, struct apg_conn *c, int32_t opaque, uint8_t ser,
                         int32_t qid, const struct apg_put_result *r, const char *uniq)
{
    char id[64];
    apg_msgid_encode(&b->br_store_host, r->pr_phys_offset, id, sizeof(id));
    apg_broker_reply_send(c, opaque, ser, APG_RESP_SUCCESS, NULL, id, qid, r->pr_queue_offset,
                          uniq);
}

/* An acknowledgement whose put failed: never queued, dropped here. */
static void ack_drop(struct apg_sync_ack *a)
{
    apg_conn_unref(a->sa_conn);
    apg_free(a);
}

/* Fills the reply fields of a's single put stored at r. Only the drain,
 * later on this loop thread, reads them. */
static void ack_stored(struct apg_broker *b, struct apg_sync_ack *a, const struct apg_put_result *r)
{
    apg_msgid_encode(&b->br_store_host, r->pr_phys_offset, a->sa_id1, sizeof(a->sa_id1));
    a->sa_msgid = a->sa_id1;
    a->sa_queue_offset = r->pr_queue_offset;
}

/* Fast failure measures to look at (busy_check). */
#define BUSY_ALL 7u
#define BUSY_PC_ONLY (1u << APG_BUSY_PAGE_CACHE)

/* The measure that refuses a send now (remark filled), or -1 to go ahead.
 * extra: sends already held for the same group commit. */
static int busy_check(struct apg_broker *b, struct apg_conn *c, bool sync, long extra,
                      unsigned which, char *remark, size_t len)
{
    if ((which & (1u << APG_BUSY_SYNC_BACKLOG)) && sync &&
        atomic_load(&b->br_sync_pending) + extra >= b->br_sync_pending_max) {
        snprintf(remark, len,
                 "[OVERLOAD]broker busy: %ld sends already wait for the disk flush "
                 "(flushDiskType=SYNC_FLUSH); back off and retry, or use ASYNC_FLUSH",
                 (long)atomic_load(&b->br_sync_pending));
        return APG_BUSY_SYNC_BACKLOG;
    }
    if (!b->br_fast_failure)
        return -1;
    int64_t stall;
    if ((which & (1u << APG_BUSY_PAGE_CACHE)) &&
        (stall = apg_store_put_stall_ms(b->br_store)) > b->br_busy_pc_ms) {
        snprintf(remark, len,
                 "[PC_SYNCHRONIZED]broker busy: a write has been stuck in the page cache for %lld "
                 "ms (osPageCacheBusyTimeOutMills=%lld), the disk is not keeping up; back off and "
                 "retry, or send to another broker",
                 (long long)stall, (long long)b->br_busy_pc_ms);
        return APG_BUSY_PAGE_CACHE;
    }
    if ((which & (1u << APG_BUSY_QUEUE_TIME)) && c) {
        /* uv_now: when this iteration's poll returned, i.e. since when the
         * request's bytes have been readable at least. */
        uv_loop_t *l = apg_conn_uv_loop(c);
        int64_t behind = (int64_t)(uv_hrtime() / 1000000u) - (int64_t)uv_now(l);
        if (behind >= b->br_busy_queue_ms) {
            snprintf(remark, len,
                     "[TIMEOUT_CLEAN_QUEUE]broker busy: this send waited %lld ms before the broker "
                     "got to it (waitTimeMillsInSendQueue=%lld); back off and retry, or send to "
                     "another broker",
                     (long long)behind, (long long)b->br_busy_queue_ms);
            return APG_BUSY_QUEUE_TIME;
        }
    }
    return -1;
}

/* Counts a SYSTEM_BUSY refusal of measure why (the caller answers). */
static void busy_count(struct apg_broker *b, int why)
{
    atomic_fetch_add_explicit(&b->br_busy[why], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&b->br_put_failed, 1, memory_order_relaxed);
}

bool apg_broker_put_pending(const struct apg_bloop *bl)
{
    return bl->bl_put->pu_n > 0;
}

static void held_reply_error(struct apg_broker *b, struct apg_put_loop *pu, struct held *hd,
                             struct apg_conn *c, apg_err_t e, const char *err)
{
    apg_broker_reply_refused(b, c, hd->hd_opaque, hd->hd_serialize, hd->hd_oneway,
                             (const char *)pu->pu_text.b_data + hd->hd_topic_off,
                             hd->hd_msg.mi_topic_len, e, err);
}

/* Stores held sends [i0, i0 + k) with one apg_store_put and answers them
 * (at once, or from the group commit's acknowledgement when sync). Returns
 * the store's error without answering. */
static apg_err_t put_group(struct apg_broker *b, struct apg_put_loop *pu, int i0, int k, bool sync,
                           char *err, size_t errlen)
{
    struct apg_conn *c = pu->pu_conn;
    struct sync_group *g = NULL;
    if (sync) {
        g = apg_malloc(sizeof(*g) + (size_t)k * sizeof(g->sg_acks[0]));
        int made = 0;
        for (; g && made < k; made++) {
            struct held *hd = &pu->pu_v[i0 + made];
            struct apg_sync_ack *a = ack_new(b, c, hd->hd_opaque, hd->hd_serialize, hd->hd_oneway,
                                             hd->hd_qid, hd->hd_uniq);
            if (!a)
                break;
            g->sg_acks[made] = a;
            pu->pu_acks[made] = a;
        }
        if (!g || made < k) {
            for (int i = 0; i < made; i++)
                ack_drop(pu->pu_acks[i]);
            apg_free(g);
            snprintf(err, errlen, "out of memory");
            return APG_ENOMEM;
        }
        g->sg_n = k;
        atomic_fetch_add(&b->br_sync_pending, k);
    }
    apg_err_t e = apg_store_put(b->br_store, &pu->pu_msgs[i0], k, &pu->pu_res[i0],
                                sync ? on_group_ack : no_wait_ack, g, err, errlen);
    if (e) {
        if (sync) {
            atomic_fetch_sub(&b->br_sync_pending, k);
            for (int i = 0; i < k; i++)
                ack_drop(pu->pu_acks[i]);
            apg_free(g);
        }
        return e;
    }
    for (int i = 0; i < k; i++) {
        const struct apg_put_result *r = &pu->pu_res[i0 + i];
        struct held *hd = &pu->pu_v[i0 + i];
        /* g may be gone already (the ack thread frees it), the acks are not:
         * only the drain frees them, and it runs on this thread later. */
        if (sync)
            ack_stored(b, pu->pu_acks[i], r);
        else if (!hd->hd_oneway)
            reply_stored(b, c, hd->hd_opaque, hd->hd_serialize, hd->hd_qid, r, hd->hd_uniq);
    }
    return APG_OK;
}

void apg_broker_put_flush(struct apg_broker *b, struct apg_bloop *bl)
{
    struct apg_put_loop *pu = bl->bl_put;
    int n = pu->pu_n;
    if (n == 0)
        return;
    struct apg_conn *c = pu->pu_conn;
    for (int i = 0; i < n; i++) {
        struct held *hd = &pu->pu_v[i];
        pu->pu_msgs[i] = hd->hd_msg;
        pu->pu_msgs[i].mi_topic = (const char *)pu->pu_text.b_data + hd->hd_topic_off;
        pu->pu_msgs[i].mi_props = (const char *)pu->pu_text.b_data + hd->hd_props_off;
    }
    char err[512] = "";
    int why = busy_check(b, c, pu->pu_sync, 0, BUSY_PC_ONLY, err, sizeof(err));
    apg_err_t e = why >= 0 ? APG_EBUSY : put_group(b, pu, 0, n, pu->pu_sync, err, sizeof(err));
    if (why >= 0) {
        /* The put would wait behind a stalled one: refuse them all now. */
        for (int i = 0; i < n; i++) {
            struct held *hd = &pu->pu_v[i];
            busy_count(b, why);
            apg_broker_refusal_note(b, APG_REFUSAL_SYSTEM_BUSY, "send to",
                                    (const char *)pu->pu_text.b_data + hd->hd_topic_off,
                                    apg_conn_peer(c), APG_RESP_SYSTEM_BUSY, err);
            if (!hd->hd_oneway)
                apg_broker_reply_send(c, hd->hd_opaque, hd->hd_serialize, APG_RESP_SYSTEM_BUSY, err,
                                      NULL, 0, 0, NULL);
        }
    } else if (e != APG_OK && n > 1 && (e == APG_EINVAL || e == APG_ETOOBIG)) {
        /* One message the store refuses must not fail the others. */
        for (int i = 0; i < n; i++) {
            err[0] = 0;
            apg_err_t e1 = put_group(b, pu, i, 1, pu->pu_sync, err, sizeof(err));
            if (e1)
                held_reply_error(b, pu, &pu->pu_v[i], c, e1, err);
        }
    } else if (e != APG_OK) {
        for (int i = 0; i < n; i++)
            held_reply_error(b, pu, &pu->pu_v[i], c, e, err);
    }
    pu->pu_n = 0;
    pu->pu_bytes = 0;
    apg_buf_reset(&pu->pu_text);
    pu->pu_conn = NULL;
    apg_conn_unref(c);
}

static bool hold_grow(struct apg_put_loop *pu)
{
    int cap = pu->pu_cap ? pu->pu_cap * 2 : 16;
    struct held *v = apg_realloc(pu->pu_v, (size_t)cap * sizeof(*v));
    if (v)
        pu->pu_v = v;
    struct apg_msg_in *ms = apg_realloc(pu->pu_msgs, (size_t)cap * sizeof(*ms));
    if (ms)
        pu->pu_msgs = ms;
    struct apg_put_result *r = apg_realloc(pu->pu_res, (size_t)cap * sizeof(*r));
    if (r)
        pu->pu_res = r;
    struct apg_sync_ack **ak = apg_realloc(pu->pu_acks, (size_t)cap * sizeof(*ak));
    if (ak)
        pu->pu_acks = ak;
    if (!v || !ms || !r || !ak)
        return false;
    pu->pu_cap = cap;
    return true;
}

bool apg_broker_put_hold(struct apg_broker *b, struct apg_bloop *bl, struct apg_conn *c,
                         const struct apg_rcmd *req, const struct apg_msg_in *m, const char *uniq,
                         bool sync)
{
    struct apg_put_loop *pu = bl->bl_put;
    if (pu->pu_n && (pu->pu_conn != c || pu->pu_sync != sync || pu->pu_n >= HOLD_MAX ||
                     pu->pu_bytes + m->mi_body_len > HOLD_BYTES))
        apg_broker_put_flush(b, bl);
    /* The store cannot keep up: apg_broker_put answers SYSTEM_BUSY. */
    char remark[512];
    if (busy_check(b, c, sync, pu->pu_n, BUSY_ALL, remark, sizeof(remark)) >= 0)
        return false;
    if (pu->pu_n == pu->pu_cap && !hold_grow(pu))
        return false;
    struct held *hd = &pu->pu_v[pu->pu_n];
    hd->hd_topic_off = pu->pu_text.b_len;
    hd->hd_props_off = hd->hd_topic_off + m->mi_topic_len;
    if (apg_buf_append(&pu->pu_text, m->mi_topic, m->mi_topic_len) ||
        apg_buf_append(&pu->pu_text, m->mi_props ? m->mi_props : "", m->mi_props_len)) {
        pu->pu_text.b_len = hd->hd_topic_off;
        return false;
    }
    hd->hd_msg = *m;
    hd->hd_opaque = req->opaque;
    hd->hd_serialize = req->serialize;
    hd->hd_oneway = apg_rcmd_is_oneway(req);
    hd->hd_qid = m->mi_queue_id;
    apg_text_copy(hd->hd_uniq, sizeof(hd->hd_uniq), uniq, strlen(uniq));
    if (pu->pu_n == 0) {
        apg_conn_ref(c);
        pu->pu_conn = c;
        pu->pu_sync = sync;
    }
    pu->pu_n++;
    pu->pu_bytes += m->mi_body_len;
    return true;
}

/* The result array for an n-message put (n > 1), kept per loop. */
static struct apg_put_result *batch_results(struct apg_put_loop *pu, int n)
{
    if (n <= pu->pu_bres_cap)
        return pu->pu_bres;
    int cap = pu->pu_bres_cap ? pu->pu_bres_cap : 64;
    while (cap < n)
        cap *= 2;
    struct apg_put_result *r = apg_realloc(pu->pu_bres, (size_t)cap * sizeof(*r));
    if (!r)
        return NULL;
    pu->pu_bres = r;
    pu->pu_bres_cap = cap;
    return r;
}

/* Answers a stored batch: its msgIds comma-joined, the first queue offset. */
static void reply_batch(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req,
                        const struct apg_put_result *res, int n, int32_t qid, const char *uniq,
                        struct apg_sync_ack *ack)
{
    struct apg_buf ids = APG_BUF_INIT;
    for (int i = 0; i < n; i++) {
        char id[64];
        apg_msgid_encode(&b->br_store_host, res[i].pr_phys_offset, id, sizeof(id));
        if (i)
            apg_buf_append(&ids, ",", 1);
        apg_buf_append_str(&ids, id);
    }
    apg_buf_append(&ids, "", 1);
    if (ack) {
        ack->sa_queue_offset = res[0].pr_queue_offset;
        ack->sa_msgid = (char *)ids.b_data;
        ids.b_data = NULL;
    } else if (!apg_rcmd_is_oneway(req)) {
        apg_broker_reply_send(c, req->opaque, req->serialize, APG_RESP_SUCCESS, NULL,
                              (const char *)ids.b_data, qid, res[0].pr_queue_offset, uniq);
    }
    apg_buf_free(&ids);
}

void apg_broker_put(struct apg_broker *b, struct apg_bloop *bl, struct apg_conn *c,
                    const struct apg_rcmd *req, const struct apg_msg_in *msgs, int n, int32_t qid,
                    const char *uniq, bool want_sync)
{
    char err[512], remark[768];
    apg_broker_put_flush(b, bl);
    int why = busy_check(b, c, want_sync, 0, BUSY_ALL, remark, sizeof(remark));
    if (why >= 0) {
        busy_count(b, why);
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_BUSY, remark);
        return;
    }
    struct apg_put_result one_res, *res = &one_res;
    if (n > 1 && !(res = batch_results(bl->bl_put, n))) {
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR, "out of memory");
        return;
    }
    bool oneway = apg_rcmd_is_oneway(req);
    struct apg_sync_ack *ack = NULL;
    if (want_sync) {
        ack = ack_new(b, c, req->opaque, req->serialize, oneway, qid, uniq);
        if (!ack) {
            apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR, "out of memory");
            return;
        }
        atomic_fetch_add(&b->br_sync_pending, 1);
    }
    err[0] = 0;
    apg_err_t e =
        apg_store_put(b->br_store, msgs, n, res, ack ? on_ack : no_wait_ack, ack, err, sizeof(err));
    if (e) {
        if (ack) {
            atomic_fetch_sub(&b->br_sync_pending, 1);
            ack_drop(ack);
        }
        apg_broker_reply_refused(b, c, req->opaque, req->serialize, oneway, msgs[0].mi_topic,
                                 msgs[0].mi_topic_len, e, err);
    } else if (n == 1 && ack) {
        ack_stored(b, ack, &res[0]);
    } else if (n == 1) {
        /* The common case answers from the stack. */
        if (!oneway)
            reply_stored(b, c, req->opaque, req->serialize, qid, &res[0], uniq);
    } else {
        reply_batch(b, c, req, res, n, qid, uniq, ack);
    }
}

apg_err_t apg_broker_put_internal(struct apg_broker *b, const struct apg_msg_in *msgs, int n,
                                  struct apg_put_result *res, char *err, size_t errlen)
{
    /* No ack callback: under SYNC_FLUSH the store returns once the records
     * are durable, so the caller may record them as moved. */
    apg_err_t e = apg_store_put(b->br_store, msgs, n, res, NULL, NULL, err, errlen);
    if (e)
        atomic_fetch_add_explicit(&b->br_put_failed, 1, memory_order_relaxed);
    return e;
}

/* The append of put_acked and put_notify: with a waiter w (SYNC_FLUSH) the
 * put counts in br_sync_pending until cb(w) runs on the store's ack thread;
 * without one it is queued for the group commit with nobody waiting. On
 * error nothing is stored, counted as pending or called. */
static apg_err_t put_waited(struct apg_broker *b, const struct apg_msg_in *msgs, int n,
                            struct apg_put_result *res, apg_store_ack_fn cb, void *w, char *err,
                            size_t errlen)
{
    if (w)
        atomic_fetch_add(&b->br_sync_pending, 1);
    apg_err_t e = apg_store_put(b->br_store, msgs, n, res, w ? cb : no_wait_ack, w, err, errlen);
    if (e) {
        atomic_fetch_add_explicit(&b->br_put_failed, 1, memory_order_relaxed);
        if (w)
            atomic_fetch_sub(&b->br_sync_pending, 1);
    }
    return e;
}

apg_err_t apg_broker_put_acked(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req,
                               const struct apg_msg_in *msgs, int n, apg_broker_put_done_fn done,
                               void *arg, char *err, size_t errlen)
{
    struct apg_put_result res[APG_BROKER_PUT_ACKED_MAX];
    if (n < 1 || n > APG_BROKER_PUT_ACKED_MAX) {
        snprintf(err, errlen, "apg_broker_put_acked: %d records", n);
        return APG_EINVAL;
    }
    struct apg_sync_ack *ack = NULL;
    if (b->br_sync_flush) {
        ack = ack_new(b, c, req->opaque, req->serialize, apg_rcmd_is_oneway(req), 0, "");
        if (!ack) {
            snprintf(err, errlen, "out of memory");
            return APG_ENOMEM;
        }
        ack->sa_done = done;
        ack->sa_done_arg = arg;
    }
    apg_err_t e = put_waited(b, msgs, n, res, on_ack, ack, err, errlen);
    if (e) {
        if (ack)
            ack_drop(ack);
        return e;
    }
    if (ack) {
        /* Read by the drain, later on this loop thread. */
        ack->sa_queue_offset = res[n - 1].pr_queue_offset;
        return APG_OK;
    }
    done(b, arg, APG_OK, res[n - 1].pr_queue_offset);
    apg_broker_reply(c, req, APG_RESP_SUCCESS, NULL);
    return APG_OK;
}

/* apg_broker_put_notify's wrapper around the caller's callback. */
struct put_notify {
    struct apg_broker *pn_b;
    apg_broker_put_notify_fn pn_done;
    void *pn_arg;
};

/* Store ack thread. */
static void on_notify(void *ud, apg_err_t rc)
{
    struct put_notify *pn = ud;
    struct apg_broker *b = pn->pn_b;
    if (!apg_store_rc_stored(rc))
        atomic_fetch_add_explicit(&b->br_put_failed, 1, memory_order_relaxed);
    atomic_fetch_sub(&b->br_sync_pending, 1);
    pn->pn_done(pn->pn_arg, rc);
    apg_free(pn);
}

apg_err_t apg_broker_put_notify(struct apg_broker *b, const struct apg_msg_in *msgs, int n,
                                struct apg_put_result *res, apg_broker_put_notify_fn done,
                                void *arg, bool *pending, char *err, size_t errlen)
{
    *pending = false;
    struct put_notify *pn = NULL;
    if (b->br_sync_flush) {
        pn = apg_malloc(sizeof(*pn));
        if (!pn) {
            snprintf(err, errlen, "out of memory");
            return APG_ENOMEM;
        }
        pn->pn_b = b;
        pn->pn_done = done;
        pn->pn_arg = arg;
    }
    apg_err_t e = put_waited(b, msgs, n, res, on_notify, pn, err, errlen);
    if (e) {
        apg_free(pn);
        return e;
    }
    *pending = pn != NULL;
    return APG_OK;
}

bool apg_broker_put_real_copy(const struct apg_msgrec *rec, struct apg_msg_in *m)
{
    size_t tl = 0, ql = 0, gl = 0;
    const char *t = apg_props_find(rec->mr_props, rec->mr_props_len, "REAL_TOPIC", &tl);
    const char *q = apg_props_find(rec->mr_props, rec->mr_props_len, "REAL_QID", &ql);
    if (!t || tl == 0 || tl > 127 || !q || ql == 0 || ql > 10)
        return false;
    int32_t qid = 0;
    for (size_t i = 0; i < ql; i++) {
        if (q[i] < '0' || q[i] > '9')
            return false;
        qid = qid * 10 + (q[i] - '0');
    }
    const char *tags = apg_props_find(rec->mr_props, rec->mr_props_len, "TAGS", &gl);
    memset(m, 0, sizeof(*m));
    m->mi_topic = t;
    m->mi_topic_len = tl;
    m->mi_queue_id = qid;
    m->mi_flag = rec->mr_flag;
    m->mi_sysflag = rec->mr_sysflag & ~(APG_SYSFLAG_BORNHOST_V6 | APG_SYSFLAG_STOREHOST_V6);
    m->mi_born_ts = rec->mr_born_ts;
    m->mi_born_host = rec->mr_born_host;
    m->mi_reconsume_times = rec->mr_reconsume_times;
    m->mi_body = rec->mr_body;
    m->mi_body_len = rec->mr_body_len;
    m->mi_props = rec->mr_props;
    m->mi_props_len = rec->mr_props_len;
    m->mi_tags_code = tags && gl ? (int64_t)apg_java_hash(tags, gl) : 0;
    return true;
}

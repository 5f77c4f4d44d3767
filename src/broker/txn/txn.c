/* Transactional messages: the done set, the check-back thread and
 * transaction.json.
 *
 * Design. Half messages are ordinary records of RMQ_SYS_TRANS_HALF_TOPIC
 * queue 0; END_TRANSACTION writes an op record (RMQ_SYS_TRANS_OP_HALF_TOPIC
 * queue 0, tag "d", body: the half's origin queue offset in decimal) with
 * the commit copy in the same append (txn_end.c). The module keeps in memory:
 *   done   origin offset -> op queue offset: halves that ended. An entry is
 *          added by END_TRANSACTION (claimed first, so two END_TRANSACTIONs
 *          for one half store one commit) and, at start, by reading the op
 *          queue from opOffset.
 *   copies origin offset -> queue offset of its newest check-back copy.
 * A check-back re-stores the half at the end of the half queue (the "copy",
 * with TRANSACTION_CHECK_TIMES counted up and TRAN_PREPARED_QUEUE_OFFSET
 * naming the origin) and asks the producer about the copy, so the scan
 * offset halfOffset only moves forward: every half before it ended, was
 * discarded, or lives on as a copy after it. Every copy of a half stands
 * for the origin: END_TRANSACTION on any of them ends the origin, and the
 * scan skips any copy whose origin ended.
 *
 * The scan (every transactionCheckInterval) walks the half queue from
 * halfOffset up to the end it saw when it began (the copies it makes wait
 * for the next pass, so a half is asked about once per interval). An origin
 * younger than transactionTimeOut (by its store time: one clock, unlike the
 * producer's born time RocketMQ uses) ends the pass; a copy was already
 * asked about and is asked again. After transactionCheckMax checks the half
 * is discarded: WARN line and the transactionDiscarded counter (4.x; 5.x
 * keeps it in TRANS_CHECK_MAX_TIME_TOPIC, which no client reads).
 *
 * The check goes to the producer of the half's PGROUP that heartbeated last
 * on a connection still open (apg_clients_producer_conn), posted to that
 * connection's loop: CHECK_TRANSACTION_STATE, oneway, the header naming the
 * copy (tranStateTableOffset, commitLogOffset, msgId/transactionId =
 * UNIQ_KEY, offsetMsgId) and the body the copy encoded as a stored record
 * with its real topic and queue, as the Java client decodes it. With no
 * live producer the check is counted as made (RocketMQ does the same).
 * With no remoting producer of the group, the check hook (the gRPC port,
 * apg_txn_set_check_hook) may ask a 5.x producer over its Telemetry stream.
 *
 * Why a thread of its own, not a row of the broker's service table: a
 * check-back stores copies through apg_broker_put_internal, which under
 * SYNC_FLUSH waits for the disk, and the service thread runs
 * REGISTER_BROKER calls that wait on NameServers for seconds; a check must
 * not be held up by either, nor hold them up. The work is small (one pass
 * per interval) so one thread for the whole module suffices.
 *
 * Persistence. transaction.json holds halfOffset and opOffset (the first
 * op record still needed: the smallest op offset among done entries that
 * can still matter, i.e. origin >= halfOffset or with a live copy). It is
 * written about once a second, and only with a halfOffset whose copies the
 * store has flushed (a snapshot waits until the flushed position passes
 * them), so a crash never loses a half: at worst a half is checked again,
 * and the producer's answer is taken once (the done set is rebuilt from the
 * op records). A commit copy and its op record are one append, so a crash
 * keeps both or neither (neither: the half is checked back and committed).
 *
 * Threads: tx_done, tx_copies and the counters are under tx_lock (loops,
 * the check thread, and apg_txn_list_open on the HTTP port's thread); tx_half, tx_op, the snapshot
 * and scratch belong to the check thread (tx_pub_half is its copy for other threads). */
#include "broker/txn/txn_int.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_rt.h"
#include "common/file.h"
#include "common/hash.h"
#include "common/json.h"
#include "common/mem.h"
#include "common/worker.h"
#include "protocol/props.h"

#define SUB "txn"
#define BATCH 32
#define BATCH_BYTES (4u << 20)
#define PERSIST_MS 1000
#define RETRY_MS 1000
#define PENDING INT64_MIN /* done entry claimed, op record not stored yet */
#define EMPTY INT64_MIN

#define HALF_LEN (sizeof(APG_TXN_HALF_TOPIC) - 1)
#define OP_LEN (sizeof(APG_TXN_OP_TOPIC) - 1)

/* ---- int64 -> int64 map: open addressing, linear probing ---------------- */

struct i64map {
    int64_t *m_k, *m_v;
    size_t m_cap, m_n;
};

static size_t map_slot(int64_t k, size_t mask)
{
    return (size_t)(((uint64_t)k * 0x9E3779B97F4A7C15ull) >> 20) & mask;
}

static long map_find(const struct i64map *m, int64_t k)
{
    if (!m->m_cap)
        return -1;
    size_t mask = m->m_cap - 1;
    for (size_t i = map_slot(k, mask);; i = (i + 1) & mask) {
        if (m->m_k[i] == k)
            return (long)i;
        if (m->m_k[i] == EMPTY)
            return -1;
    }
}

static bool map_get(const struct i64map *m, int64_t k, int64_t *v)
{
    long i = map_find(m, k);
    if (i >= 0 && v)
        *v = m->m_v[i];
    return i >= 0;
}

static apg_err_t map_put(struct i64map *m, int64_t k, int64_t v);

static apg_err_t map_grow(struct i64map *m)
{
    struct i64map n = {0};
    n.m_cap = m->m_cap ? m->m_cap * 2 : 64;
    n.m_k = apg_malloc(n.m_cap * sizeof(int64_t));
    n.m_v = apg_malloc(n.m_cap * sizeof(int64_t));
    if (!n.m_k || !n.m_v) {
        apg_free(n.m_k);
        apg_free(n.m_v);
        return APG_ENOMEM;
    }
    for (size_t i = 0; i < n.m_cap; i++)
        n.m_k[i] = EMPTY;
    for (size_t i = 0; i < m->m_cap; i++)
        if (m->m_k[i] != EMPTY)
            map_put(&n, m->m_k[i], m->m_v[i]);
    apg_free(m->m_k);
    apg_free(m->m_v);
    *m = n;
    return APG_OK;
}

static apg_err_t map_put(struct i64map *m, int64_t k, int64_t v)
{
    if ((m->m_n + 1) * 2 > m->m_cap && map_grow(m))
        return APG_ENOMEM;
    size_t mask = m->m_cap - 1;
    size_t i = map_slot(k, mask);
    while (m->m_k[i] != EMPTY && m->m_k[i] != k)
        i = (i + 1) & mask;
    if (m->m_k[i] == EMPTY)
        m->m_n++;
    m->m_k[i] = k;
    m->m_v[i] = v;
    return APG_OK;
}

/* Backward-shift deletion keeps every probe chain unbroken. */
static void map_del(struct i64map *m, int64_t k)
{
    long f = map_find(m, k);
    if (f < 0)
        return;
    size_t mask = m->m_cap - 1, i = (size_t)f, j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (m->m_k[j] == EMPTY)
            break;
        size_t h = map_slot(m->m_k[j], mask);
        bool stays = i <= j ? (h > i && h <= j) : (h > i || h <= j);
        if (!stays) {
            m->m_k[i] = m->m_k[j];
            m->m_v[i] = m->m_v[j];
            i = j;
        }
    }
    m->m_k[i] = EMPTY;
    m->m_n--;
}

static void map_free(struct i64map *m)
{
    apg_free(m->m_k);
    apg_free(m->m_v);
    memset(m, 0, sizeof(*m));
}

/* ---- state --------------------------------------------------------------- */

struct apg_txn {
    struct apg_broker *tx_b;
    struct apg_store *tx_st;
    int64_t tx_timeout_ms, tx_interval_ms;
    int tx_check_max;
    char *tx_path;

    pthread_mutex_t tx_lock;
    struct i64map tx_done;   /* origin -> op queue offset (PENDING while storing) */
    struct i64map tx_copies; /* origin -> queue offset of its newest copy */
    int64_t tx_committed, tx_rolled_back, tx_checks, tx_discarded;

    int64_t tx_half, tx_op; /* scan position; first needed op record */
    atomic_llong tx_pub_half;
    int64_t tx_copied_end; /* commit-log end of the last copy stored */
    int64_t tx_pend_half, tx_pend_op, tx_pend_end;
    bool tx_pend;
    int64_t tx_written_half, tx_written_op;
    struct apg_buf tx_recs, tx_props;
    struct apg_log_limit tx_fail_log, tx_nochan_log;
    pthread_mutex_t tx_hook_lock; /* tx_hook and tx_hook_ud; held while the hook runs */
    apg_txn_check_fn tx_hook;
    void *tx_hook_ud;

    struct apg_worker tx_worker;
    int64_t tx_next_check, tx_next_persist; /* the check thread's */
};

bool apg_txn_is_half(const char *v, size_t len)
{
    return v && len == 4 && strncasecmp(v, "true", 4) == 0;
}

apg_err_t apg_txn_half_props(struct apg_buf *out, const char *props, size_t len,
                             const char *real_topic, int32_t real_qid)
{
    size_t start = out->b_len;
    char num[16];
    snprintf(num, sizeof(num), "%d", (int)real_qid);
    apg_err_t e = apg_buf_append(out, props, len);
    if (!e && len && props[len - 1] != APG_PROPS_SEP)
        e = apg_buf_append(out, "\x02", 1);
    if (!e)
        e = apg_props_append(out, "REAL_TOPIC", real_topic);
    if (!e)
        e = apg_props_append(out, "REAL_QID", num);
    if (!e && out->b_len - start > 32767)
        e = APG_ETOOBIG;
    return e;
}

static int64_t parse_i64(const char *s, size_t n, int64_t dflt)
{
    if (!s || n == 0 || n > 18)
        return dflt;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return dflt;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int64_t apg_txn_origin(const char *props, size_t len, int64_t queue_offset)
{
    size_t vl = 0;
    const char *v = apg_props_find(props, len, APG_TXN_PREPARED_QOFF, &vl);
    return parse_i64(v, vl, queue_offset);
}

bool apg_txn_end_begin(struct apg_txn *tx, int64_t p)
{
    pthread_mutex_lock(&tx->tx_lock);
    bool ok = !map_get(&tx->tx_done, p, NULL) && map_put(&tx->tx_done, p, PENDING) == APG_OK;
    pthread_mutex_unlock(&tx->tx_lock);
    return ok;
}

void apg_txn_end_done(struct apg_txn *tx, int64_t p, int64_t op_qoff, bool commit)
{
    pthread_mutex_lock(&tx->tx_lock);
    map_put(&tx->tx_done, p, op_qoff); /* the key exists: no allocation */
    if (commit)
        tx->tx_committed++;
    else
        tx->tx_rolled_back++;
    pthread_mutex_unlock(&tx->tx_lock);
}

void apg_txn_end_undo(struct apg_txn *tx, int64_t p)
{
    pthread_mutex_lock(&tx->tx_lock);
    map_del(&tx->tx_done, p);
    pthread_mutex_unlock(&tx->tx_lock);
}

void apg_txn_stats(const struct apg_txn *tx, struct apg_txn_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (!tx)
        return;
    struct apg_txn *t = (struct apg_txn *)tx;
    pthread_mutex_lock(&t->tx_lock);
    out->ts_committed = t->tx_committed;
    out->ts_rolled_back = t->tx_rolled_back;
    out->ts_checks = t->tx_checks;
    out->ts_discarded = t->tx_discarded;
    pthread_mutex_unlock(&t->tx_lock);
    out->ts_half_offset = atomic_load(&t->tx_pub_half);
}

/* ---- reading a queue ----------------------------------------------------- */

typedef bool (*rec_fn)(struct apg_txn *tx, const struct apg_msgrec *rec, int64_t now);

/* Calls fn for the records of (topic, 0) from *off up to end; *off follows
 * the records fn accepted (fn false: stop there). False when the store
 * failed or fn stopped. */
static bool walk(struct apg_txn *tx, const char *topic, size_t tl, int64_t *off, int64_t end,
                 rec_fn fn, int64_t now)
{
    while (*off < end) {
        struct apg_get_result gr;
        apg_buf_reset(&tx->tx_recs);
        if (apg_store_get(tx->tx_st, topic, tl, 0, *off, BATCH, BATCH_BYTES, NULL, NULL,
                          &tx->tx_recs, &gr) != APG_OK)
            return false;
        if (gr.gr_status != APG_GET_FOUND) {
            if (gr.gr_next_begin_offset > *off && gr.gr_next_begin_offset <= end) {
                apg_log_warn(SUB, "%s: offset %lld is gone; continuing at %lld", topic,
                             (long long)*off, (long long)gr.gr_next_begin_offset);
                *off = gr.gr_next_begin_offset;
                continue;
            }
            return true;
        }
        size_t pos = 0;
        const uint8_t *p = tx->tx_recs.b_data;
        int64_t before = *off;
        for (int i = 0; i < gr.gr_count && pos < tx->tx_recs.b_len; i++) {
            struct apg_msgrec rec;
            if (apg_msgrec_decode(p + pos, tx->tx_recs.b_len - pos, false, &rec, NULL) !=
                APG_MSGREC_OK)
                break;
            pos += rec.mr_total_size;
            if (rec.mr_queue_offset >= end)
                return true;
            if (!fn(tx, &rec, now))
                return false;
            *off = rec.mr_queue_offset + 1;
            atomic_store(&tx->tx_pub_half, tx->tx_half);
        }
        if (*off == before)
            return false; /* nothing decoded: look again later */
    }
    return true;
}

/* ---- listing the open halves --------------------------------------------- */

/* Whether the record at queue offset q for origin p stands for an open
 * half: not ended, and the newest copy of p (or p itself when it has no
 * copy). */
static bool open_now(struct apg_txn *tx, int64_t p, int64_t q)
{
    int64_t live = -1;
    pthread_mutex_lock(&tx->tx_lock);
    bool done = map_get(&tx->tx_done, p, NULL);
    bool copied = map_get(&tx->tx_copies, p, &live);
    pthread_mutex_unlock(&tx->tx_lock);
    return !done && (copied ? live == q : p == q);
}

int apg_txn_list_open(struct apg_txn *tx, int max, int64_t max_scan, apg_txn_open_fn fn, void *ud,
                      bool *more)
{
    if (more)
        *more = false;
    if (!tx)
        return 0;
    int64_t off = atomic_load(&tx->tx_pub_half);
    int64_t min = apg_store_min_offset(tx->tx_st, APG_TXN_HALF_TOPIC, HALF_LEN, 0);
    int64_t end = apg_store_max_offset(tx->tx_st, APG_TXN_HALF_TOPIC, HALF_LEN, 0);
    if (off < min)
        off = min;
    if (end - off > max_scan) {
        end = off + max_scan;
        if (more)
            *more = true;
    }
    struct apg_buf recs = APG_BUF_INIT;
    int n = 0;
    while (off < end && n < max) {
        struct apg_get_result gr;
        apg_buf_reset(&recs);
        if (apg_store_get(tx->tx_st, APG_TXN_HALF_TOPIC, HALF_LEN, 0, off, BATCH, BATCH_BYTES, NULL,
                          NULL, &recs, &gr) != APG_OK ||
            gr.gr_status != APG_GET_FOUND)
            break;
        size_t pos = 0;
        int64_t before = off;
        for (int i = 0; i < gr.gr_count && pos < recs.b_len && n < max; i++) {
            struct apg_msgrec rec;
            if (apg_msgrec_decode(recs.b_data + pos, recs.b_len - pos, false, &rec, NULL) !=
                APG_MSGREC_OK)
                break;
            pos += rec.mr_total_size;
            if (rec.mr_queue_offset >= end)
                break;
            off = rec.mr_queue_offset + 1;
            int64_t p = apg_txn_origin(rec.mr_props, rec.mr_props_len, rec.mr_queue_offset);
            if (!open_now(tx, p, rec.mr_queue_offset))
                continue;
            size_t vl = 0;
            const char *v =
                apg_props_find(rec.mr_props, rec.mr_props_len, APG_TXN_CHECK_TIMES, &vl);
            fn(ud, &rec, p, parse_i64(v, vl, 0));
            n++;
        }
        if (off == before)
            break;
    }
    if (more && off < end)
        *more = true;
    apg_buf_free(&recs);
    return n;
}

/* ---- start: rebuilding the done set and the copies ---------------------- */

static bool load_op(struct apg_txn *tx, const struct apg_msgrec *rec, int64_t now)
{
    (void)now;
    const char *s = (const char *)rec->mr_body;
    size_t n = rec->mr_body_len, i = 0;
    while (i < n) { /* one offset, or several comma-separated (RocketMQ 5.x) */
        size_t j = i;
        while (j < n && s[j] != ',')
            j++;
        int64_t p = parse_i64(s + i, j - i, -1);
        if (p >= 0)
            map_put(&tx->tx_done, p, rec->mr_queue_offset);
        i = j + 1;
    }
    return true;
}

static bool load_copy(struct apg_txn *tx, const struct apg_msgrec *rec, int64_t now)
{
    (void)now;
    int64_t p = apg_txn_origin(rec->mr_props, rec->mr_props_len, rec->mr_queue_offset);
    if (p != rec->mr_queue_offset)
        map_put(&tx->tx_copies, p, rec->mr_queue_offset);
    return true;
}

/* Drops done entries that no record at or after halfOffset can match and
 * returns the first op record still needed (-1: keep the current one).
 * Caller holds tx_lock. */
static int64_t prune(struct apg_txn *tx, int64_t half, int64_t op_end)
{
    struct i64map *d = &tx->tx_done;
    int64_t min_op = op_end;
    bool pending = false;
    for (size_t i = 0; i < d->m_cap;) {
        int64_t k = d->m_k[i];
        if (k != EMPTY && d->m_v[i] != PENDING && k < half && !map_get(&tx->tx_copies, k, NULL)) {
            map_del(d, k); /* slot i now holds another key (or none): look again */
            continue;
        }
        if (k != EMPTY) {
            if (d->m_v[i] == PENDING)
                pending = true;
            else if (d->m_v[i] < min_op)
                min_op = d->m_v[i];
        }
        i++;
    }
    return pending ? -1 : min_op;
}

/* ---- transaction.json ---------------------------------------------------- */

static void state_load(struct apg_txn *tx)
{
    json_t *root = NULL;
    char err[512];
    apg_err_t e = apg_json_read_file(tx->tx_path, &root, err, sizeof(err));
    if (e == APG_ENOTFOUND)
        return;
    if (e) {
        apg_log_warn(SUB, "%s: %s; half messages are scanned from the start", tx->tx_path, err);
        return;
    }
    int64_t h = apg_json_i64(json_object_get(root, "halfOffset"), 0);
    int64_t o = apg_json_i64(json_object_get(root, "opOffset"), 0);
    tx->tx_half = h > 0 ? h : 0;
    tx->tx_op = o > 0 ? o : 0;
    json_decref(root);
}

static void state_write(struct apg_txn *tx, int64_t half, int64_t op)
{
    if (half == tx->tx_written_half && op == tx->tx_written_op)
        return;
    char buf[128], err[512];
    int n = snprintf(buf, sizeof(buf), "{\"halfOffset\":%lld,\"opOffset\":%lld}", (long long)half,
                     (long long)op);
    if (apg_file_write_atomic(tx->tx_path, buf, (size_t)n, err, sizeof(err))) {
        apg_log_error(SUB, "persisting %s failed: %s", tx->tx_path, err);
        return;
    }
    tx->tx_written_half = half;
    tx->tx_written_op = op;
}

/* Every PERSIST_MS: prunes, then writes the newest state whose copies are
 * flushed (or the previous snapshot once they are). */
static void persist(struct apg_txn *tx)
{
    int64_t op_end = apg_store_max_offset(tx->tx_st, APG_TXN_OP_TOPIC, OP_LEN, 0);
    pthread_mutex_lock(&tx->tx_lock);
    int64_t op = prune(tx, tx->tx_half, op_end);
    pthread_mutex_unlock(&tx->tx_lock);
    if (op >= tx->tx_op)
        tx->tx_op = op;
    struct apg_store_stats ss;
    apg_store_stats(tx->tx_st, &ss);
    if (ss.ss_flushed_phys_offset >= tx->tx_copied_end) {
        state_write(tx, tx->tx_half, tx->tx_op);
        tx->tx_pend = false;
        return;
    }
    if (tx->tx_pend && ss.ss_flushed_phys_offset >= tx->tx_pend_end)
        state_write(tx, tx->tx_pend_half, tx->tx_pend_op);
    tx->tx_pend_half = tx->tx_half;
    tx->tx_pend_op = tx->tx_op;
    tx->tx_pend_end = tx->tx_copied_end;
    tx->tx_pend = true;
}

/* ---- check-back ---------------------------------------------------------- */

struct check_msg {
    char cm_group[APG_NAME_CAP];
    char cm_uniq[80];
    char cm_offset_id[64];
    int64_t cm_qoff, cm_phys;
    uint32_t cm_len;
    uint8_t cm_body[];
};

static void check_on_loop(struct apg_conn *c, void *arg)
{
    struct check_msg *cm = arg;
    if (!apg_conn_is_closed(c)) {
        struct apg_rcmd req;
        char q[24], p[24];
        snprintf(q, sizeof(q), "%lld", (long long)cm->cm_qoff);
        snprintf(p, sizeof(p), "%lld", (long long)cm->cm_phys);
        apg_rcmd_init_request(&req, APG_REQ_CHECK_TRANSACTION_STATE, 0, APG_SER_JSON);
        apg_rcmd_ext_add(&req, "tranStateTableOffset", q);
        apg_rcmd_ext_add(&req, "commitLogOffset", p);
        apg_rcmd_ext_add(&req, "msgId", cm->cm_uniq);
        apg_rcmd_ext_add(&req, "transactionId", cm->cm_uniq);
        apg_rcmd_ext_add(&req, "offsetMsgId", cm->cm_offset_id);
        apg_conn_oneway(c, &req, cm->cm_body, cm->cm_len);
    }
    apg_free(cm);
}

/* Asks a live producer of the copy's group about it. m: the copy as stored
 * (topic still the half topic), r: where it was stored. */
static void check_send(struct apg_txn *tx, const struct apg_msg_in *m,
                       const struct apg_put_result *r, int32_t body_crc, int64_t now)
{
    struct apg_broker *b = tx->tx_b;
    size_t gl = 0, ul = 0, tl = 0, ql = 0;
    const char *g = apg_props_find(m->mi_props, m->mi_props_len, "PGROUP", &gl);
    const char *u = apg_props_find(m->mi_props, m->mi_props_len, "UNIQ_KEY", &ul);
    const char *t = apg_props_find(m->mi_props, m->mi_props_len, "REAL_TOPIC", &tl);
    const char *q = apg_props_find(m->mi_props, m->mi_props_len, "REAL_QID", &ql);
    char group[APG_NAME_CAP];
    apg_text_copy(group, sizeof(group), g ? g : "", g ? gl : 0);
    struct apg_conn *c = group[0] ? apg_clients_producer_conn(b->br_clients, group) : NULL;
    struct apg_msg_in v = *m; /* what the producer sees: the real topic and queue */
    if (t && tl) {
        v.mi_topic = t;
        v.mi_topic_len = tl;
        v.mi_queue_id = (int32_t)parse_i64(q, ql, 0);
    }
    if (!c) {
        /* No remoting producer: a 5.x producer on the gRPC port, maybe. */
        pthread_mutex_lock(&tx->tx_hook_lock);
        bool asked = tx->tx_hook && tx->tx_hook(tx->tx_hook_ud, &v, r->pr_phys_offset);
        pthread_mutex_unlock(&tx->tx_hook_lock);
        if (asked)
            return;
    }
    if (!c) {
        int64_t quiet;
        if (apg_log_limit_hit(&tx->tx_nochan_log, now, 60000, &quiet))
            apg_log_warn(SUB,
                         "no live producer of group %s to check transaction %.*s with; asking "
                         "again in %lld ms (%lld more since the last line)",
                         group[0] ? group : "(none: the half has no PGROUP)", (int)ul, u ? u : "",
                         (long long)tx->tx_interval_ms, (long long)quiet);
        return;
    }
    size_t len = apg_msgrec_size(&v, b->br_store_host.h_v6);
    struct check_msg *cm = apg_malloc(sizeof(*cm) + len);
    if (!cm) {
        apg_conn_unref(c);
        return;
    }
    apg_msgrec_encode(cm->cm_body, &v, body_crc, r->pr_queue_offset, r->pr_phys_offset,
                      r->pr_store_ts, &b->br_store_host);
    cm->cm_len = (uint32_t)len;
    snprintf(cm->cm_group, sizeof(cm->cm_group), "%s", group);
    apg_text_copy(cm->cm_uniq, sizeof(cm->cm_uniq), u ? u : "", u ? ul : 0);
    apg_msgid_encode(&b->br_store_host, r->pr_phys_offset, cm->cm_offset_id,
                     sizeof(cm->cm_offset_id));
    cm->cm_qoff = r->pr_queue_offset;
    cm->cm_phys = r->pr_phys_offset;
    if (apg_conn_post(c, check_on_loop, cm) != APG_OK)
        apg_free(cm);
    apg_conn_unref(c);
}

/* One half record met by the scan. False ends the pass (too young, or the
 * store failed: the record is looked at again next pass). */
static bool check_one(struct apg_txn *tx, const struct apg_msgrec *rec, int64_t now)
{
    int64_t q = rec->mr_queue_offset;
    int64_t p = apg_txn_origin(rec->mr_props, rec->mr_props_len, q);
    int64_t live = -1;
    pthread_mutex_lock(&tx->tx_lock);
    bool done = map_get(&tx->tx_done, p, NULL);
    map_get(&tx->tx_copies, p, &live);
    if (done && live == q)
        map_del(&tx->tx_copies, p);
    pthread_mutex_unlock(&tx->tx_lock);
    if (done || (p != q && live != q))
        return true; /* ended, or a copy that a newer copy replaced */
    if (p == q && now - rec->mr_store_ts < tx->tx_timeout_ms)
        return false;
    size_t vl = 0;
    const char *v = apg_props_find(rec->mr_props, rec->mr_props_len, APG_TXN_CHECK_TIMES, &vl);
    int64_t times = parse_i64(v, vl, 0);
    if (times >= tx->tx_check_max) {
        size_t ul = 0;
        const char *u = apg_props_find(rec->mr_props, rec->mr_props_len, "UNIQ_KEY", &ul);
        apg_log_warn(SUB,
                     "transaction %.*s (half queue offset %lld) was checked %lld times "
                     "(transactionCheckMax) without an answer; discarded",
                     (int)ul, u ? u : "", (long long)p, (long long)times);
        pthread_mutex_lock(&tx->tx_lock);
        map_del(&tx->tx_copies, p);
        tx->tx_discarded++;
        pthread_mutex_unlock(&tx->tx_lock);
        return true;
    }
    char num[24];
    apg_buf_reset(&tx->tx_props);
    apg_err_t e = apg_buf_append(&tx->tx_props, rec->mr_props, rec->mr_props_len);
    if (!e && rec->mr_props_len && rec->mr_props[rec->mr_props_len - 1] != APG_PROPS_SEP)
        e = apg_buf_append(&tx->tx_props, "\x02", 1);
    snprintf(num, sizeof(num), "%lld", (long long)(times + 1));
    if (!e)
        e = apg_props_append(&tx->tx_props, APG_TXN_CHECK_TIMES, num);
    snprintf(num, sizeof(num), "%lld", (long long)p);
    if (!e && p == q)
        e = apg_props_append(&tx->tx_props, APG_TXN_PREPARED_QOFF, num);
    if (e)
        return false;
    size_t gl = 0;
    const char *tags = apg_props_find(rec->mr_props, rec->mr_props_len, "TAGS", &gl);
    struct apg_msg_in m;
    memset(&m, 0, sizeof(m));
    m.mi_topic = APG_TXN_HALF_TOPIC;
    m.mi_topic_len = HALF_LEN;
    m.mi_flag = rec->mr_flag;
    m.mi_sysflag = rec->mr_sysflag & ~(APG_SYSFLAG_BORNHOST_V6 | APG_SYSFLAG_STOREHOST_V6);
    m.mi_born_ts = rec->mr_born_ts;
    m.mi_born_host = rec->mr_born_host;
    m.mi_reconsume_times = rec->mr_reconsume_times;
    m.mi_body = rec->mr_body;
    m.mi_body_len = rec->mr_body_len;
    m.mi_props = (const char *)tx->tx_props.b_data;
    m.mi_props_len = tx->tx_props.b_len;
    m.mi_tags_code = tags && gl ? (int64_t)apg_java_hash(tags, gl) : 0;
    struct apg_put_result r;
    char err[512] = "";
    e = apg_broker_put_internal(tx->tx_b, &m, 1, &r, err, sizeof(err));
    if (e) {
        int64_t quiet;
        if (apg_log_limit_hit(&tx->tx_fail_log, now, 60000, &quiet))
            apg_log_error(SUB,
                          "storing the check-back copy of half %lld failed: %s; retrying in %d "
                          "ms (%lld more failures since the last line)",
                          (long long)p, err[0] ? err : apg_strerror(e), RETRY_MS, (long long)quiet);
        return false;
    }
    tx->tx_copied_end = r.pr_phys_offset + r.pr_msg_size;
    pthread_mutex_lock(&tx->tx_lock);
    map_put(&tx->tx_copies, p, r.pr_queue_offset);
    tx->tx_checks++;
    pthread_mutex_unlock(&tx->tx_lock);
    check_send(tx, &m, &r, rec->mr_body_crc, now);
    return true;
}

/* One pass: the halves stored before it began. */
static bool check_pass(struct apg_txn *tx, int64_t now)
{
    int64_t end = apg_store_max_offset(tx->tx_st, APG_TXN_HALF_TOPIC, HALF_LEN, 0);
    int64_t min = apg_store_min_offset(tx->tx_st, APG_TXN_HALF_TOPIC, HALF_LEN, 0);
    if (tx->tx_half < min) {
        apg_log_warn(SUB,
                     "half queue offsets before %lld are gone (retention); scanning from there",
                     (long long)min);
        tx->tx_half = min;
    }
    return walk(tx, APG_TXN_HALF_TOPIC, HALF_LEN, &tx->tx_half, end, check_one, now);
}

/* Check thread: a check pass and a persist when due. */
static int64_t txn_step(void *arg, unsigned kicks)
{
    (void)kicks;
    struct apg_txn *tx = arg;
    int64_t now = apg_wall_ms();
    if (now >= tx->tx_next_check)
        tx->tx_next_check = now + (check_pass(tx, now) ? tx->tx_interval_ms : RETRY_MS);
    now = apg_wall_ms();
    if (now >= tx->tx_next_persist) {
        persist(tx);
        tx->tx_next_persist = now + PERSIST_MS;
    }
    int64_t next =
        tx->tx_next_check < tx->tx_next_persist ? tx->tx_next_check : tx->tx_next_persist;
    return next - now;
}

apg_err_t apg_txn_open(struct apg_broker *b, struct apg_txn **out, char *err, size_t errlen)
{
    *out = NULL;
    struct apg_txn *tx = apg_calloc(1, sizeof(*tx));
    if (!tx)
        return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    tx->tx_b = b;
    tx->tx_st = b->br_store;
    tx->tx_timeout_ms = apg_cfg_int(b->br_cfg, APG_CFG_transactionTimeOut);
    tx->tx_interval_ms = apg_cfg_int(b->br_cfg, APG_CFG_transactionCheckInterval);
    tx->tx_check_max = (int)apg_cfg_int(b->br_cfg, APG_CFG_transactionCheckMax);
    tx->tx_path = apg_path_join(b->br_root, "config/transaction.json");
    if (!tx->tx_path) {
        apg_free(tx);
        return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    }
    pthread_mutex_init(&tx->tx_lock, NULL);
    pthread_mutex_init(&tx->tx_hook_lock, NULL);
    apg_worker_init(&tx->tx_worker, txn_step, tx);
    state_load(tx);
    atomic_init(&tx->tx_pub_half, tx->tx_half);
    tx->tx_written_half = tx->tx_half;
    tx->tx_written_op = tx->tx_op;
    int64_t op = tx->tx_op, half = tx->tx_half, now = apg_wall_ms();
    int64_t op_end = apg_store_max_offset(tx->tx_st, APG_TXN_OP_TOPIC, OP_LEN, 0);
    int64_t op_min = apg_store_min_offset(tx->tx_st, APG_TXN_OP_TOPIC, OP_LEN, 0);
    if (op < op_min)
        op = op_min;
    bool ok =
        walk(tx, APG_TXN_OP_TOPIC, OP_LEN, &op, op_end, load_op, now) &&
        walk(tx, APG_TXN_HALF_TOPIC, HALF_LEN, &half,
             apg_store_max_offset(tx->tx_st, APG_TXN_HALF_TOPIC, HALF_LEN, 0), load_copy, now);
    if (!ok) {
        apg_txn_stop(tx);
        return apg_errf(APG_EIO, err, errlen,
                        "reading the transaction op and half queues failed (the store could not "
                        "read them)");
    }
    if (tx->tx_done.m_n || tx->tx_copies.m_n || tx->tx_half)
        apg_log_info(SUB,
                     "transactions: scanning halves from queue offset %lld; %zu ended and %zu "
                     "checked-back halves known",
                     (long long)tx->tx_half, tx->tx_done.m_n, tx->tx_copies.m_n);
    *out = tx;
    return APG_OK;
}

apg_err_t apg_txn_start(struct apg_txn *tx, char *err, size_t errlen)
{
    tx->tx_next_check = apg_wall_ms() + tx->tx_interval_ms;
    tx->tx_next_persist = 0;
    return apg_worker_start(&tx->tx_worker, "transaction check", err, errlen);
}

void apg_txn_set_check_hook(struct apg_txn *tx, apg_txn_check_fn fn, void *ud)
{
    pthread_mutex_lock(&tx->tx_hook_lock);
    tx->tx_hook = fn;
    tx->tx_hook_ud = ud;
    pthread_mutex_unlock(&tx->tx_hook_lock);
}

void apg_txn_stop(struct apg_txn *tx)
{
    if (!tx)
        return;
    if (apg_worker_stop(&tx->tx_worker)) {
        /* The store flushes every copy when it closes, right after this. */
        state_write(tx, tx->tx_half, tx->tx_op);
    }
    pthread_mutex_destroy(&tx->tx_lock);
    pthread_mutex_destroy(&tx->tx_hook_lock);
    apg_worker_destroy(&tx->tx_worker);
    map_free(&tx->tx_done);
    map_free(&tx->tx_copies);
    apg_buf_free(&tx->tx_recs);
    apg_buf_free(&tx->tx_props);
    apg_free(tx->tx_path);
    apg_free(tx);
}

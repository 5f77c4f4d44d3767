/* GET /metrics: renders the broker's state in the Prometheus text format
 * 0.0.4 (one "# HELP" and "# TYPE" line per family, then its samples, all
 * samples of a family together).
 *
 * Design. Nothing is counted for the scrape's sake: every number is one the
 * broker keeps anyway, read through the call that already serves the admin
 * requests. Per topic, messages in are the sum of its queues' max offsets
 * (apg_store_foreach_queue, one pass under the store's structure read
 * lock); per (topic, group), the lag is each queue's max offset minus the
 * committed offset, from a copy of the offset table taken under its lock
 * (apg_offsets_snapshot) so committers wait only for a memcpy, and the lag
 * latency is the age of the first uncommitted message, read only for
 * queues that lag. Counts of messages pulled come from the consume
 * counters (apg_cstats_snapshot), rpc latency from the per-loop histograms
 * the dispatch fills without locked instructions (broker.c).
 *
 * Cost. The scratch tables (topic -> queue max offsets, the copies, the
 * rows) live in struct apg_metrics and are reused: once warm, a scrape
 * allocates only when topics or groups were added, and its output is
 * written straight into the connection's buffer. Samples are formatted
 * without printf.
 *
 * Threads: a struct apg_metrics is used by one thread (the HTTP loop). */
#include "http/metrics.h"

#include <stdio.h>
#include <string.h>

#include "broker/broker_admin_stats.h"
#include "broker/broker_rt.h"
#include "broker/timer/timer.h"
#include "broker/txn/txn.h"
#include "common/mem.h"
#include "common/smap.h"

enum {
#define APG_METRIC(id, name, type, help) M_##id,
#include "http/metrics.def"
#undef APG_METRIC
    M_N
};

static const struct {
    const char *name, *type, *help;
    size_t name_len;
} families[M_N] = {
#define APG_METRIC(id, name, type, help) {name, type, help, sizeof(name) - 1},
#include "http/metrics.def"
#undef APG_METRIC
};

/* A queue as last seen: its max offset, and the store time of the record
 * at one offset (the last one asked for: groups that consume in step ask
 * for the same, and a stuck group asks again at the next scrape). */
struct mqueue {
    int64_t mq_max;
    int64_t mq_ts_off; /* -1: nothing cached */
    int64_t mq_ts;
};

/* A topic as last seen in the store. */
struct mtopic {
    uint64_t mt_gen; /* scrape that last saw it */
    int64_t mt_sum;
    int32_t mt_nq; /* slots in mt_q */
    struct mqueue *mt_q;
};

/* One (topic, group): its label set, formatted once for every family that
 * has a sample of it, and two values (lag and lag latency, or messages and
 * bytes pulled). */
struct mrow {
    size_t mr_lbl; /* offset in mx_lbl of "{...} " */
    size_t mr_lbl_len;
    int64_t mr_v[2];
};

struct mrows {
    struct mrow *rs_row;
    size_t rs_n, rs_cap;
};

struct apg_metrics {
    struct apg_broker *mx_b;
    char mx_common[3 * 256 + 64]; /* cluster="..",node_type="broker",node_id=".." */
    size_t mx_common_len;
    struct apg_smap mx_topics; /* name -> struct mtopic* (owned) */
    uint64_t mx_gen;
    struct apg_buf mx_offs; /* apg_offsets_snapshot */
    struct apg_buf mx_cons; /* apg_cstats_snapshot */
    struct apg_buf mx_gone; /* topics to drop, NUL-separated */
    struct apg_buf mx_lbl;  /* the rows' label sets */
    struct mrows mx_lag;    /* from the offset table: lag, lag latency */
    struct mrows mx_out;    /* from the consume counters: messages, bytes */
    size_t mx_last_len;     /* bytes of the previous exposition */
    int64_t mx_now;
};

static void mtopic_free(void *p)
{
    struct mtopic *t = p;
    if (t)
        apg_free(t->mt_q);
    apg_free(t);
}

/* Appends v to o with the label-value escapes of the text format. */
static void put_escaped(struct apg_buf *o, const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (c == '\\' || c == '"' || c == '\n') {
            apg_buf_append(o, c == '\n' ? "\\n" : c == '"' ? "\\\"" : "\\\\", 2);
        } else {
            apg_buf_append(o, &c, 1);
        }
    }
}

struct apg_metrics *apg_metrics_new(struct apg_broker *b)
{
    struct apg_metrics *mx = apg_calloc(1, sizeof(*mx));
    if (!mx)
        return NULL;
    mx->mx_b = b;
    apg_smap_init(&mx->mx_topics);
    struct apg_buf t = APG_BUF_INIT;
    apg_buf_append_str(&t, "cluster=\"");
    put_escaped(&t, b->br_cluster, strlen(b->br_cluster));
    apg_buf_append_str(&t, "\",node_type=\"broker\",node_id=\"");
    put_escaped(&t, b->br_name, strlen(b->br_name));
    apg_buf_append_str(&t, "\"");
    if (!t.b_data || t.b_len >= sizeof(mx->mx_common)) {
        apg_buf_free(&t);
        apg_free(mx);
        return NULL;
    }
    memcpy(mx->mx_common, t.b_data, t.b_len);
    mx->mx_common_len = t.b_len;
    apg_buf_free(&t);
    return mx;
}

void apg_metrics_free(struct apg_metrics *mx)
{
    if (!mx)
        return;
    apg_smap_clear_free(&mx->mx_topics, mtopic_free);
    apg_buf_free(&mx->mx_offs);
    apg_buf_free(&mx->mx_cons);
    apg_buf_free(&mx->mx_gone);
    apg_buf_free(&mx->mx_lbl);
    apg_free(mx->mx_lag.rs_row);
    apg_free(mx->mx_out.rs_row);
    apg_free(mx);
}

/* ---- output --------------------------------------------------------------- */

static void family(struct apg_buf *o, int id)
{
    apg_buf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", families[id].name, families[id].help,
                   families[id].name, families[id].type);
}

static bool plain(const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == '\\' || v[i] == '"' || v[i] == '\n')
            return false;
    return true;
}

static void put(struct apg_buf *o, const char *s, size_t n)
{
    memcpy(o->b_data + o->b_len, s, n);
    o->b_len += n;
}

/* Appends ,k="v" (escaped when needed); false when out of memory. */
static bool put_label(struct apg_buf *o, const char *k, const char *v, size_t vn)
{
    size_t kn = strlen(k);
    if (apg_buf_reserve(o, kn + vn + 8))
        return false;
    put(o, ",", 1);
    put(o, k, kn);
    put(o, "=\"", 2);
    if (plain(v, vn))
        put(o, v, vn);
    else
        put_escaped(o, v, vn);
    put(o, "\"", 1);
    return true;
}

/* One sample: name{common[,k1="v1"][,k2="v2"]} value. */
static void sample(struct apg_metrics *mx, struct apg_buf *o, int id, const char *k1,
                   const char *v1, size_t v1n, const char *k2, const char *v2, size_t v2n,
                   const char *value)
{
    const char *name = families[id].name;
    size_t nn = families[id].name_len, vn = strlen(value);
    if (apg_buf_reserve(o, nn + mx->mx_common_len + 2))
        return;
    put(o, name, nn);
    put(o, "{", 1);
    put(o, mx->mx_common, mx->mx_common_len);
    if ((k1 && !put_label(o, k1, v1, v1n)) || (k2 && !put_label(o, k2, v2, v2n)) ||
        apg_buf_reserve(o, vn + 4))
        return;
    put(o, "} ", 2);
    put(o, value, vn);
    put(o, "\n", 1);
}

static void sample_i64(struct apg_metrics *mx, struct apg_buf *o, int id, const char *k1,
                       const char *v1, size_t v1n, const char *k2, const char *v2, size_t v2n,
                       int64_t v)
{
    char num[24];
    sample(mx, o, id, k1, v1, v1n, k2, v2, v2n, apg_fmt_i64(num, v));
}

static void single(struct apg_metrics *mx, struct apg_buf *o, int id, int64_t v)
{
    family(o, id);
    sample_i64(mx, o, id, NULL, NULL, 0, NULL, NULL, 0, v);
}

/* ---- sources ---------------------------------------------------------------- */

static void on_queue(void *ud, const char *topic, size_t topic_len, int32_t qid, int64_t min_off,
                     int64_t max_off)
{
    struct apg_metrics *mx = ud;
    char name[APG_NAME_CAP];
    if (topic_len >= sizeof(name) || qid < 0 || qid > 65535)
        return;
    memcpy(name, topic, topic_len);
    name[topic_len] = 0;
    struct mtopic *t = apg_smap_get(&mx->mx_topics, name);
    if (!t) {
        t = apg_calloc(1, sizeof(*t));
        if (!t || apg_smap_put(&mx->mx_topics, name, t, NULL)) {
            apg_free(t);
            return;
        }
    }
    if (t->mt_gen != mx->mx_gen) {
        t->mt_gen = mx->mx_gen;
        t->mt_sum = 0;
        for (int32_t i = 0; i < t->mt_nq; i++)
            t->mt_q[i].mq_max = 0;
    }
    if (qid >= t->mt_nq) {
        int32_t n = t->mt_nq ? t->mt_nq : 8;
        while (n <= qid)
            n *= 2;
        struct mqueue *m = apg_realloc(t->mt_q, sizeof(*m) * (size_t)n);
        if (!m)
            return;
        for (int32_t i = t->mt_nq; i < n; i++)
            m[i] = (struct mqueue){0, -1, -1};
        t->mt_q = m;
        t->mt_nq = n;
    }
    t->mt_q[qid].mq_max = max_off;
    t->mt_sum += max_off > 0 ? max_off : 0;
}

/* Refreshes mx_topics from the store and drops topics no longer there. */
static void scan_topics(struct apg_metrics *mx)
{
    mx->mx_gen++;
    apg_store_foreach_queue(mx->mx_b->br_store, on_queue, mx);
    apg_buf_reset(&mx->mx_gone);
    size_t pos;
    for (struct apg_smap_ent *it = apg_smap_first(&mx->mx_topics, &pos); it;
         it = apg_smap_next(&mx->mx_topics, it, &pos))
        if (((struct mtopic *)it->se_val)->mt_gen != mx->mx_gen)
            apg_buf_append(&mx->mx_gone, it->se_key, strlen(it->se_key) + 1);
    const char *g = (const char *)mx->mx_gone.b_data;
    for (size_t at = 0; at < mx->mx_gone.b_len; at += strlen(g + at) + 1)
        mtopic_free(apg_smap_del(&mx->mx_topics, g + at));
}

/* Adds a row for (topic, group) with its label set; NULL when out of memory. */
static struct mrow *row_add(struct apg_metrics *mx, struct mrows *rs, const char *topic, size_t tl,
                            const char *group, size_t gl)
{
    if (rs->rs_n == rs->rs_cap) {
        size_t n = rs->rs_cap ? rs->rs_cap * 2 : 256;
        struct mrow *r = apg_realloc(rs->rs_row, n * sizeof(*r));
        if (!r)
            return NULL;
        rs->rs_row = r;
        rs->rs_cap = n;
    }
    struct apg_buf *l = &mx->mx_lbl;
    size_t at = l->b_len;
    if (apg_buf_reserve(l, mx->mx_common_len + 2))
        return NULL;
    put(l, "{", 1);
    put(l, mx->mx_common, mx->mx_common_len);
    if (!put_label(l, "topic", topic, tl) || !put_label(l, "consumer_group", group, gl) ||
        apg_buf_append(l, "} ", 2))
        return NULL;
    struct mrow *r = &rs->rs_row[rs->rs_n++];
    r->mr_lbl = at;
    r->mr_lbl_len = l->b_len - at;
    return r;
}

/* One sample per row: name, the row's label set, value vi of the row (or 0
 * when vi < 0). */
static void rows_family(struct apg_metrics *mx, struct apg_buf *o, int id, const struct mrows *rs,
                        int vi)
{
    family(o, id);
    size_t nn = families[id].name_len;
    char num[24];
    for (size_t i = 0; i < rs->rs_n; i++) {
        const struct mrow *r = &rs->rs_row[i];
        const char *v = apg_fmt_i64(num, vi < 0 ? 0 : r->mr_v[vi]);
        size_t vn = strlen(v);
        if (apg_buf_reserve(o, nn + r->mr_lbl_len + vn + 1))
            return;
        put(o, families[id].name, nn);
        put(o, (const char *)mx->mx_lbl.b_data + r->mr_lbl, r->mr_lbl_len);
        put(o, v, vn);
        put(o, "\n", 1);
    }
}

/* Fills mx_lag from a copy of the offset table: lag and lag latency. */
static void scan_offsets(struct apg_metrics *mx)
{
    struct apg_broker *b = mx->mx_b;
    apg_buf_reset(&mx->mx_offs);
    mx->mx_lag.rs_n = 0;
    if (apg_offsets_snapshot(b->br_offsets, &mx->mx_offs))
        return;
    char topic[APG_NAME_CAP];
    for (size_t at = 0; at < mx->mx_offs.b_len;) {
        const struct apg_offsets_snap *s = (const void *)(mx->mx_offs.b_data + at);
        at += apg_offsets_snap_size(s->os_n, s->os_key_len);
        const char *key = apg_offsets_snap_key(s);
        const char *sep = strchr(key, '@');
        if (!sep || (size_t)(sep - key) >= sizeof(topic))
            continue;
        size_t tl = (size_t)(sep - key);
        memcpy(topic, key, tl);
        topic[tl] = 0;
        struct mtopic *t = apg_smap_get(&mx->mx_topics, topic);
        int64_t lag = 0, oldest = -1;
        for (uint32_t q = 0; t && q < s->os_n && (int32_t)q < t->mt_nq; q++) {
            struct mqueue *mq = &t->mt_q[q];
            int64_t off = s->os_off[q];
            if (off < 0 || mq->mq_max <= off)
                continue;
            lag += mq->mq_max - off;
            if (mq->mq_ts_off != off) {
                mq->mq_ts = apg_store_msg_store_time(b->br_store, topic, tl, (int32_t)q, off);
                mq->mq_ts_off = off;
            }
            if (mq->mq_ts > 0 && (oldest < 0 || mq->mq_ts < oldest))
                oldest = mq->mq_ts;
        }
        if (!t)
            continue;
        const char *group = sep + 1;
        struct mrow *r = row_add(mx, &mx->mx_lag, topic, tl, group, strlen(group));
        if (!r)
            return;
        r->mr_v[0] = lag;
        r->mr_v[1] = oldest > 0 && mx->mx_now > oldest ? mx->mx_now - oldest : 0;
    }
}

/* Fills mx_out from a copy of the consume counters. */
static void scan_consumed(struct apg_metrics *mx)
{
    apg_buf_reset(&mx->mx_cons);
    mx->mx_out.rs_n = 0;
    if (!mx->mx_b->br_cstats || apg_cstats_snapshot(mx->mx_b->br_cstats, &mx->mx_cons))
        return;
    for (size_t at = 0; at + 16 < mx->mx_cons.b_len;) {
        int64_t v[2];
        memcpy(v, mx->mx_cons.b_data + at, sizeof(v));
        const char *key = (const char *)mx->mx_cons.b_data + at + 16;
        size_t kl = strlen(key);
        at += 16 + kl + 1;
        const char *sep = strchr(key, '@');
        if (!sep)
            continue;
        struct mrow *r = row_add(mx, &mx->mx_out, key, (size_t)(sep - key), sep + 1,
                                 kl - (size_t)(sep - key) - 1);
        if (!r)
            return;
        r->mr_v[0] = v[0];
        r->mr_v[1] = v[1];
    }
}

static void topics_families(struct apg_metrics *mx, struct apg_buf *o)
{
    family(o, M_MESSAGES_IN);
    size_t pos, dlq = strlen(APG_DLQ_PREFIX);
    for (struct apg_smap_ent *it = apg_smap_first(&mx->mx_topics, &pos); it;
         it = apg_smap_next(&mx->mx_topics, it, &pos))
        sample_i64(mx, o, M_MESSAGES_IN, "topic", it->se_key, strlen(it->se_key), NULL, NULL, 0,
                   ((struct mtopic *)it->se_val)->mt_sum);
    family(o, M_SEND_TO_DLQ);
    for (struct apg_smap_ent *it = apg_smap_first(&mx->mx_topics, &pos); it;
         it = apg_smap_next(&mx->mx_topics, it, &pos))
        if (strncmp(it->se_key, APG_DLQ_PREFIX, dlq) == 0)
            sample_i64(mx, o, M_SEND_TO_DLQ, "consumer_group", it->se_key + dlq,
                       strlen(it->se_key + dlq), NULL, NULL, 0,
                       ((struct mtopic *)it->se_val)->mt_sum);
}

static void rpc_family(struct apg_metrics *mx, struct apg_buf *o)
{
    family(o, M_RPC_LATENCY);
    const char *name = families[M_RPC_LATENCY].name;
    int cl = (int)mx->mx_common_len;
    for (int i = 0; i < apg_broker_rpc_slots(); i++) {
        uint64_t n[APG_RPC_BUCKETS] = {0}, sum_us = 0, cum = 0;
        apg_broker_rpc_sum(mx->mx_b, i, n, &sum_us);
        for (int k = 0; k < APG_RPC_BUCKETS; k++)
            cum += n[k];
        if (!cum)
            continue; /* a code never requested has no series */
        char lbl[sizeof(mx->mx_common) + 64];
        int32_t rc = apg_broker_rpc_code(i);
        if (rc < 0)
            snprintf(lbl, sizeof lbl, "%.*s,protocol_type=\"remoting\",request_code=\"other\"", cl,
                     mx->mx_common);
        else
            snprintf(lbl, sizeof lbl, "%.*s,protocol_type=\"remoting\",request_code=\"%d\"", cl,
                     mx->mx_common, (int)rc);
        cum = 0;
        for (int k = 0; k < APG_RPC_BUCKETS; k++) {
            cum += n[k];
            if (k < APG_RPC_BUCKETS - 1)
                apg_buf_printf(o, "%s_bucket{%s,le=\"%lld\"} %llu\n", name, lbl,
                               (long long)apg_rpc_bucket_ms[k], (unsigned long long)cum);
            else
                apg_buf_printf(o, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, lbl,
                               (unsigned long long)cum);
        }
        apg_buf_printf(o, "%s_sum{%s} %llu.%03llu\n%s_count{%s} %llu\n", name, lbl,
                       (unsigned long long)(sum_us / 1000), (unsigned long long)(sum_us % 1000),
                       name, lbl, (unsigned long long)cum);
    }
}

static int64_t topic_sum(struct apg_metrics *mx, const char *name)
{
    const struct mtopic *t = apg_smap_get(&mx->mx_topics, name);
    return t ? t->mt_sum : 0;
}

apg_err_t apg_metrics_render(struct apg_metrics *mx, struct apg_buf *o, int64_t now_ms)
{
    struct apg_broker *b = mx->mx_b;
    mx->mx_now = now_ms;
    size_t start = o->b_len;
    apg_buf_reserve(o, mx->mx_last_len + mx->mx_last_len / 8); /* no regrowth on the way */
    apg_buf_reset(&mx->mx_lbl);
    scan_topics(mx);
    scan_offsets(mx);
    scan_consumed(mx);
    struct apg_store_stats ss;
    apg_store_stats(b->br_store, &ss);

    single(mx, o, M_BROKER_PERMISSION, atomic_load(&b->br_perm));
    topics_families(mx, o);
    single(mx, o, M_THROUGHPUT_IN, (int64_t)ss.ss_put_bytes);
    rows_family(mx, o, M_MESSAGES_OUT, &mx->mx_out, 0);
    rows_family(mx, o, M_THROUGHPUT_OUT, &mx->mx_out, 1);
    rows_family(mx, o, M_LAG_MESSAGES, &mx->mx_lag, 0);
    rows_family(mx, o, M_LAG_LATENCY, &mx->mx_lag, 1);
    rows_family(mx, o, M_INFLIGHT, &mx->mx_lag, -1);
    rows_family(mx, o, M_READY, &mx->mx_lag, 0);
    int64_t prod = 0, cons = 0;
    apg_clients_count(b->br_clients, &prod, &cons);
    single(mx, o, M_PRODUCER_CONNECTIONS, prod);
    single(mx, o, M_CONSUMER_CONNECTIONS, cons);
    rpc_family(mx, o);
    family(o, M_STORAGE_SIZE);
    sample_i64(mx, o, M_STORAGE_SIZE, "storage_type", "local", 5, NULL, NULL, 0,
               ss.ss_max_phys_offset - ss.ss_min_phys_offset);
    single(mx, o, M_FLUSH_BEHIND, ss.ss_max_phys_offset - ss.ss_flushed_phys_offset);
    single(mx, o, M_DISPATCH_BEHIND, 0);
    int64_t oldest = apg_broker_stats_earliest_time(b, &ss);
    single(mx, o, M_RESERVE_TIME, oldest < 0 ? -1 : now_ms > oldest ? now_ms - oldest : 0);
    struct apg_txn_stats ts = {0};
    if (b->br_txn)
        apg_txn_stats(b->br_txn, &ts);
    int64_t half = topic_sum(mx, APG_TXN_HALF_TOPIC) - ts.ts_half_offset;
    single(mx, o, M_HALF_MESSAGES, half > 0 ? half : 0);
    single(mx, o, M_COMMIT_MESSAGES, ts.ts_committed);
    single(mx, o, M_ROLLBACK_MESSAGES, ts.ts_rolled_back);
    single(mx, o, M_TIMER_ENQUEUE, topic_sum(mx, APG_TIMER_TOPIC));
    single(mx, o, M_TIMER_DEQUEUE, b->br_timer ? apg_timer_delivered(b->br_timer) : 0);
    mx->mx_last_len = o->b_len - start;
    return o->b_data || o->b_len == 0 ? APG_OK : APG_ENOMEM;
}

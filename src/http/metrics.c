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
 * written straight into the connection's buffer. The label set of each
 * (topic, group) is escaped and formatted once and kept with its topic
 * (struct mcache): the sources list their rows in the same order from
 * scrape to scrape, so a warm scrape matches each row against the same
 * position of the last one with a memcmp instead of a hash lookup. A family
 * of rows is one reserve and, per sample, two copies and the integer's
 * digits (no printf, no strlen). The store's queues are copied under its
 * structure lock into a flat list and summed after the lock is released.
 *
 * Reuse. When that copy equals the last scrape's byte for byte and the
 * offset table's generation is the one of the last copy, the lag rows are
 * still right and are kept (no copy of the table, no store reads); they
 * hold the store time of the oldest uncommitted message, and the latency
 * is computed from it at each render. apg_metrics_render_stream hands the
 * output to a flush every APG_METRICS_PIECE bytes (GET /metrics sends each
 * piece as an HTTP chunk), so the scraper reads while the rest renders.
 *
 * Threads: a struct apg_metrics is used by one thread (the HTTP loop, or
 * the OTLP exporter's own). */
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

/* The (topic, group) pairs of one source (offset table or consume
 * counters) in the order the source listed them last time: each entry's
 * key "topic@group" and label set "{...} " sit in ca_arena, laid out in
 * entry order. Sources list their rows in the same order from scrape to
 * scrape while nothing is added, so row i is matched against entry i with
 * one memcmp; from the first row that differs on, the entries are rebuilt
 * (a hash lookup and the label set formatted again). */
struct mcent {
    uint32_t ce_key_off, ce_key_len;
    uint32_t ce_lbl_off, ce_lbl_len;
    struct mtopic *ce_topic; /* lag rows: the pair's topic, NULL if none yet */
};

struct mcache {
    struct apg_buf ca_arena;
    struct mcent *ca_ent;
    size_t ca_n, ca_cap; /* entries valid from the last scrape */
    size_t ca_seen;      /* rows of this scrape */
    bool ca_rebuild;     /* a row differed this scrape */
};

/* One sample row of the (topic, group) families: the pair's entry and two
 * values (lag and lag latency, or messages and bytes pulled). */
struct mrow {
    uint32_t mr_lbl_off, mr_lbl_len;
    int64_t mr_v[2];
};

struct mrows {
    struct mrow *rs_row;
    size_t rs_n, rs_cap;
    size_t rs_lbl_bytes; /* sum of the rows' label lengths */
    struct mcache rs_cache;
};

/* One queue copied out of the store: max offset, queue id, topic (NUL
 * terminated); records are 8-byte aligned in mx_qs. */
struct mqrec {
    int64_t qr_max;
    int32_t qr_qid;
    uint32_t qr_tl;
    char qr_topic[];
};

struct apg_metrics {
    struct apg_broker *mx_b;
    char mx_common[3 * 256 + 64]; /* cluster="..",node_type="broker",node_id=".." */
    size_t mx_common_len;
    struct apg_smap mx_topics; /* name -> struct mtopic* (owned) */
    uint64_t mx_gen;
    struct apg_buf mx_offs;  /* apg_offsets_snapshot */
    uint64_t mx_offs_gen;    /* the offset table's generation in mx_offs */
    bool mx_qs_valid;        /* mx_topics and mx_qt match the last copy of the store's queues */
    bool mx_lag_valid;       /* mx_lag holds the rows of mx_offs against mx_topics */
    struct apg_buf mx_cons;  /* apg_cstats_snapshot */
    struct apg_buf mx_gone;  /* topics or pairs to drop, NUL-separated */
    struct apg_buf mx_qs[2]; /* struct mqrec copies of the store's queues: this scrape, the last */
    int mx_qcur;
    struct mtopic **mx_qt; /* the topic of each record of the last scrape */
    size_t mx_qt_n, mx_qt_cap;
    struct mrows mx_lag; /* from the offset table: lag, lag latency */
    struct mrows mx_out; /* from the consume counters: messages, bytes */
    size_t mx_last_len;  /* bytes of the previous exposition */
    int64_t mx_now;
    void (*mx_flush)(void *arg); /* apg_metrics_render_stream's, or NULL */
    void *mx_flush_arg;
    size_t mx_flushed; /* the output's length after the last flush */
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
    mx->mx_offs_gen = UINT64_MAX;
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
    apg_buf_free(&mx->mx_qs[0]);
    apg_buf_free(&mx->mx_qs[1]);
    apg_free(mx->mx_qt);
    for (int i = 0; i < 2; i++) {
        struct mcache *c = i ? &mx->mx_lag.rs_cache : &mx->mx_out.rs_cache;
        apg_buf_free(&c->ca_arena);
        apg_free(c->ca_ent);
    }
    apg_free(mx->mx_lag.rs_row);
    apg_free(mx->mx_out.rs_row);
    apg_free(mx);
}

/* ---- output --------------------------------------------------------------- */

static void put(struct apg_buf *o, const char *s, size_t n)
{
    memcpy(o->b_data + o->b_len, s, n);
    o->b_len += n;
}

/* Appends the decimal digits of v; room for 21 bytes must be reserved. */
static void put_i64(struct apg_buf *o, int64_t v)
{
    char tmp[24];
    char *e = tmp + sizeof(tmp), *d = e;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        *--d = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--d = '-';
    put(o, d, (size_t)(e - d));
}

/* Appends s (a literal or a table string) growing o; false when out of memory. */
static bool put_str(struct apg_buf *o, const char *s)
{
    return apg_buf_append_str(o, s) == APG_OK;
}

static void family(struct apg_buf *o, int id)
{
    put_str(o, "# HELP ");
    apg_buf_append(o, families[id].name, families[id].name_len);
    put_str(o, " ");
    put_str(o, families[id].help);
    put_str(o, "\n# TYPE ");
    apg_buf_append(o, families[id].name, families[id].name_len);
    put_str(o, " ");
    put_str(o, families[id].type);
    put_str(o, "\n");
}

static bool plain(const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == '\\' || v[i] == '"' || v[i] == '\n')
            return false;
    return true;
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

/* One sample: name{common[,k1="v1"]} v. */
static void sample(struct apg_metrics *mx, struct apg_buf *o, int id, const char *k1,
                   const char *v1, size_t v1n, int64_t v)
{
    size_t nn = families[id].name_len;
    if (apg_buf_reserve(o, nn + mx->mx_common_len + 2))
        return;
    put(o, families[id].name, nn);
    put(o, "{", 1);
    put(o, mx->mx_common, mx->mx_common_len);
    if ((k1 && !put_label(o, k1, v1, v1n)) || apg_buf_reserve(o, 24 + 3))
        return;
    put(o, "} ", 2);
    put_i64(o, v);
    put(o, "\n", 1);
}

/* Hands the output to the stream's flush once APG_METRICS_PIECE bytes
 * were added since the last one (the flush may remove bytes from the
 * front of o). */
static void maybe_flush(struct apg_metrics *mx, struct apg_buf *o)
{
    if (mx->mx_flush && o->b_len - mx->mx_flushed >= APG_METRICS_PIECE) {
        mx->mx_flush(mx->mx_flush_arg);
        mx->mx_flushed = o->b_len;
    }
}

static void single(struct apg_metrics *mx, struct apg_buf *o, int id, int64_t v)
{
    family(o, id);
    sample(mx, o, id, NULL, NULL, 0, v);
}

/* Makes room for index i in the array *arr of *cap elements of size sz
 * (doubling, first from 'first'); false when out of memory. */
static bool grow(void *arr, size_t *cap, size_t i, size_t sz, size_t first)
{
    if (i < *cap)
        return true;
    size_t n = *cap ? *cap : first;
    while (n <= i)
        n *= 2;
    void *p = apg_realloc(*(void **)arr, n * sz);
    if (!p)
        return false;
    *(void **)arr = p;
    *cap = n;
    return true;
}

/* ---- sources ---------------------------------------------------------------- */

/* Called under the store's structure lock: only copies the queue out. */
static void on_queue(void *ud, const char *topic, size_t topic_len, int32_t qid, int64_t min_off,
                     int64_t max_off)
{
    (void)min_off;
    struct apg_metrics *mx = ud;
    struct apg_buf *qs = &mx->mx_qs[mx->mx_qcur];
    if (topic_len >= APG_NAME_CAP || qid < 0 || qid > 65535)
        return;
    size_t sz = (sizeof(struct mqrec) + topic_len + 1 + 7) & ~(size_t)7;
    if (apg_buf_reserve(qs, sz))
        return;
    struct mqrec *r = (struct mqrec *)(qs->b_data + qs->b_len);
    r->qr_max = max_off;
    r->qr_qid = qid;
    r->qr_tl = (uint32_t)topic_len;
    memcpy(r->qr_topic, topic, topic_len);
    r->qr_topic[topic_len] = 0;
    qs->b_len += sz;
}

/* The topic named name, created when new, its sums reset at its first
 * queue of this scrape. */
static struct mtopic *topic_get(struct apg_metrics *mx, const char *name)
{
    struct mtopic *t = apg_smap_get(&mx->mx_topics, name);
    if (!t) {
        t = apg_calloc(1, sizeof(*t));
        if (!t || apg_smap_put(&mx->mx_topics, name, t, NULL)) {
            apg_free(t);
            return NULL;
        }
    }
    return t;
}

static void topic_queue(struct apg_metrics *mx, struct mtopic *t, int32_t qid, int64_t max_off)
{
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

static size_t qrec_size(const struct mqrec *r)
{
    return (sizeof(*r) + r->qr_tl + 1 + 7) & ~(size_t)7;
}

/* Refreshes mx_topics from the store and drops topics no longer there
 * (and with them the cached pairs, which may point at one); true when the
 * copy of the store's queues equals the last one, byte for byte (no queue
 * added, dropped or written to): then mx_topics is still right as it is.
 * While every record is where it was in the last scrape's copy, record i
 * reuses the topic record i had. */
static bool scan_topics(struct apg_metrics *mx)
{
    mx->mx_qcur ^= 1;
    struct apg_buf *qs = &mx->mx_qs[mx->mx_qcur], *prev = &mx->mx_qs[mx->mx_qcur ^ 1];
    apg_buf_reset(qs);
    apg_store_foreach_queue(mx->mx_b->br_store, on_queue, mx);
    if (mx->mx_qs_valid && qs->b_len == prev->b_len &&
        (qs->b_len == 0 || memcmp(qs->b_data, prev->b_data, qs->b_len) == 0))
        return true;
    mx->mx_qs_valid = false;
    mx->mx_gen++;
    struct mtopic *t = NULL;
    const char *last = NULL;
    size_t i = 0;
    bool same = true; /* every record so far is where it was last time */
    for (size_t at = 0; at < qs->b_len; i++) {
        const struct mqrec *r = (const void *)(qs->b_data + at);
        const struct mqrec *p = same && at < prev->b_len ? (const void *)(prev->b_data + at) : NULL;
        at += qrec_size(r);
        same = i < mx->mx_qt_n && p && p->qr_tl == r->qr_tl && mx->mx_qt[i] &&
               memcmp(p->qr_topic, r->qr_topic, r->qr_tl) == 0;
        if (same) {
            t = mx->mx_qt[i];
            last = r->qr_topic;
        } else if (!last || strcmp(last, r->qr_topic) != 0) {
            t = topic_get(mx, r->qr_topic);
            last = r->qr_topic;
        }
        if (!grow(&mx->mx_qt, &mx->mx_qt_cap, i, sizeof(*mx->mx_qt), 1024)) {
            mx->mx_qt_n = 0;
            return false;
        }
        mx->mx_qt[i] = t;
        if (t)
            topic_queue(mx, t, r->qr_qid, r->qr_max);
    }
    mx->mx_qt_n = i;
    apg_buf_reset(&mx->mx_gone);
    size_t pos;
    for (struct apg_smap_ent *it = apg_smap_first(&mx->mx_topics, &pos); it;
         it = apg_smap_next(&mx->mx_topics, it, &pos))
        if (((struct mtopic *)it->se_val)->mt_gen != mx->mx_gen)
            apg_buf_append(&mx->mx_gone, it->se_key, strlen(it->se_key) + 1);
    if (mx->mx_gone.b_len) {
        mx->mx_lag.rs_cache.ca_n = 0;
        mx->mx_qt_n = 0;
    }
    const char *g = (const char *)mx->mx_gone.b_data;
    for (size_t at = 0; at < mx->mx_gone.b_len; at += strlen(g + at) + 1)
        mtopic_free(apg_smap_del(&mx->mx_topics, g + at));
    mx->mx_qs_valid = mx->mx_qt_n > 0;
    return false;
}

static void rows_reset(struct mrows *rs)
{
    rs->rs_n = 0;
    rs->rs_lbl_bytes = 0;
    rs->rs_cache.ca_seen = 0;
    rs->rs_cache.ca_rebuild = false;
}

/* Ends a scrape of rs's source: the cache keeps the rows it saw. */
static void rows_done(struct mrows *rs)
{
    rs->rs_cache.ca_n = rs->rs_cache.ca_seen;
}

/* The cache entry for the next row of rs's source, key "topic@group" (tl
 * bytes of topic, kl in all); NULL when out of memory. */
static struct mcent *row_entry(struct apg_metrics *mx, struct mrows *rs, const char *key, size_t tl,
                               size_t kl)
{
    struct mcache *c = &rs->rs_cache;
    size_t i = c->ca_seen;
    if (!c->ca_rebuild && i < c->ca_n) {
        struct mcent *e = &c->ca_ent[i];
        if (e->ce_key_len == kl && memcmp(c->ca_arena.b_data + e->ce_key_off, key, kl) == 0) {
            c->ca_seen++;
            return e;
        }
    }
    if (!c->ca_rebuild) { /* drop the entries from i on, and their bytes */
        c->ca_rebuild = true;
        if (i < c->ca_n)
            c->ca_arena.b_len = c->ca_ent[i].ce_key_off;
        c->ca_n = i;
    }
    if (!grow(&c->ca_ent, &c->ca_cap, i, sizeof(*c->ca_ent), 256))
        return NULL;
    struct apg_buf *l = &c->ca_arena;
    size_t key_off = l->b_len;
    if (apg_buf_append(l, key, kl) || apg_buf_reserve(l, mx->mx_common_len + 2))
        return NULL;
    size_t lbl_off = l->b_len;
    put(l, "{", 1);
    put(l, mx->mx_common, mx->mx_common_len);
    if (!put_label(l, "topic", key, tl) ||
        !put_label(l, "consumer_group", key + tl + 1, kl - tl - 1) || apg_buf_append(l, "} ", 2))
        return NULL;
    struct mcent *e = &c->ca_ent[i];
    e->ce_key_off = (uint32_t)key_off;
    e->ce_key_len = (uint32_t)kl;
    e->ce_lbl_off = (uint32_t)lbl_off;
    e->ce_lbl_len = (uint32_t)(l->b_len - lbl_off);
    e->ce_topic = NULL;
    c->ca_seen++;
    c->ca_n = c->ca_seen;
    return e;
}

/* Adds a row for entry e; NULL when out of memory. */
static struct mrow *row_add(struct mrows *rs, const struct mcent *e)
{
    if (!grow(&rs->rs_row, &rs->rs_cap, rs->rs_n, sizeof(*rs->rs_row), 256))
        return NULL;
    struct mrow *r = &rs->rs_row[rs->rs_n++];
    r->mr_lbl_off = e->ce_lbl_off;
    r->mr_lbl_len = e->ce_lbl_len;
    rs->rs_lbl_bytes += e->ce_lbl_len;
    return r;
}

enum { V_ZERO = -1, V_AGE = -2 }; /* rows_family's vi besides 0 and 1 */
#define ROWS_BLOCK 1024           /* rows per reserve (and per flush check) */

/* One sample per row: name, the row's label set, value vi of the row, 0
 * (V_ZERO), or the age at mx_now of the store time in the row's value 1
 * (V_AGE; 0 when the row has none). One reserve covers a block of rows. */
static void rows_family(struct apg_metrics *mx, struct apg_buf *o, int id, const struct mrows *rs,
                        int vi)
{
    family(o, id);
    size_t nn = families[id].name_len;
    const char *name = families[id].name;
    const char *lbl = (const char *)rs->rs_cache.ca_arena.b_data;
    for (size_t at = 0; at < rs->rs_n; at += ROWS_BLOCK) {
        size_t end = at + ROWS_BLOCK < rs->rs_n ? at + ROWS_BLOCK : rs->rs_n, need = 0;
        for (size_t i = at; i < end; i++)
            need += nn + 22 + rs->rs_row[i].mr_lbl_len;
        if (apg_buf_reserve(o, need))
            return;
        for (size_t i = at; i < end; i++) {
            const struct mrow *r = &rs->rs_row[i];
            int64_t v = vi >= 0 ? r->mr_v[vi] : 0;
            if (vi == V_AGE)
                v = r->mr_v[1] > 0 && mx->mx_now > r->mr_v[1] ? mx->mx_now - r->mr_v[1] : 0;
            put(o, name, nn);
            put(o, lbl + r->mr_lbl_off, r->mr_lbl_len);
            put_i64(o, v);
            o->b_data[o->b_len++] = '\n';
        }
        maybe_flush(mx, o);
    }
}

/* Fills mx_lag from a copy of the offset table: lag and the store time of
 * the oldest uncommitted message. Kept as it is when neither the table
 * (its generation) nor the store's queues (store_same) changed since the
 * rows were made. */
static void scan_offsets(struct apg_metrics *mx, bool store_same)
{
    struct apg_broker *b = mx->mx_b;
    uint64_t gen = mx->mx_offs_gen;
    if (apg_offsets_snapshot(b->br_offsets, &mx->mx_offs, &mx->mx_offs_gen)) {
        mx->mx_offs_gen = UINT64_MAX;
        mx->mx_lag_valid = false;
        rows_reset(&mx->mx_lag);
        rows_done(&mx->mx_lag);
        return;
    }
    if (store_same && mx->mx_lag_valid && gen == mx->mx_offs_gen)
        return;
    mx->mx_lag_valid = false;
    rows_reset(&mx->mx_lag);
    char topic[APG_NAME_CAP];
    for (size_t at = 0; at < mx->mx_offs.b_len;) {
        const struct apg_offsets_snap *s = (const void *)(mx->mx_offs.b_data + at);
        at += apg_offsets_snap_size(s->os_n, s->os_key_len);
        const char *key = apg_offsets_snap_key(s);
        const char *sep = memchr(key, '@', s->os_key_len);
        if (!sep || (size_t)(sep - key) >= sizeof(topic))
            continue;
        size_t tl = (size_t)(sep - key);
        struct mcent *e = row_entry(mx, &mx->mx_lag, key, tl, s->os_key_len);
        if (!e)
            goto out;
        struct mtopic *t = e->ce_topic;
        if (!t) {
            memcpy(topic, key, tl);
            topic[tl] = 0;
            t = e->ce_topic = apg_smap_get(&mx->mx_topics, topic);
            if (!t)
                continue;
        }
        int64_t lag = 0, oldest = -1;
        for (uint32_t q = 0; q < s->os_n && (int32_t)q < t->mt_nq; q++) {
            struct mqueue *mq = &t->mt_q[q];
            int64_t off = s->os_off[q];
            if (off < 0 || mq->mq_max <= off)
                continue;
            lag += mq->mq_max - off;
            if (mq->mq_ts_off != off) {
                mq->mq_ts = apg_store_msg_store_time(b->br_store, key, tl, (int32_t)q, off);
                mq->mq_ts_off = off;
            }
            if (mq->mq_ts > 0 && (oldest < 0 || mq->mq_ts < oldest))
                oldest = mq->mq_ts;
        }
        struct mrow *r = row_add(&mx->mx_lag, e);
        if (!r)
            goto out;
        r->mr_v[0] = lag;
        r->mr_v[1] = oldest;
    }
    mx->mx_lag_valid = true;
out:
    rows_done(&mx->mx_lag);
}

/* Fills mx_out from a copy of the consume counters. */
static void scan_consumed(struct apg_metrics *mx)
{
    apg_buf_reset(&mx->mx_cons);
    rows_reset(&mx->mx_out);
    if (!mx->mx_b->br_cstats || apg_cstats_snapshot(mx->mx_b->br_cstats, &mx->mx_cons)) {
        rows_done(&mx->mx_out);
        return;
    }
    for (size_t at = 0; at + 16 < mx->mx_cons.b_len;) {
        int64_t v[2];
        memcpy(v, mx->mx_cons.b_data + at, sizeof(v));
        const char *key = (const char *)mx->mx_cons.b_data + at + 16;
        size_t kl = strlen(key);
        at += 16 + kl + 1;
        const char *sep = memchr(key, '@', kl);
        if (!sep)
            continue;
        struct mcent *e = row_entry(mx, &mx->mx_out, key, (size_t)(sep - key), kl);
        struct mrow *r = e ? row_add(&mx->mx_out, e) : NULL;
        if (!r)
            break;
        r->mr_v[0] = v[0];
        r->mr_v[1] = v[1];
    }
    rows_done(&mx->mx_out);
}

static void topics_families(struct apg_metrics *mx, struct apg_buf *o)
{
    family(o, M_MESSAGES_IN);
    size_t pos, dlq = strlen(APG_DLQ_PREFIX);
    for (struct apg_smap_ent *it = apg_smap_first(&mx->mx_topics, &pos); it;
         it = apg_smap_next(&mx->mx_topics, it, &pos)) {
        sample(mx, o, M_MESSAGES_IN, "topic", it->se_key, strlen(it->se_key),
               ((struct mtopic *)it->se_val)->mt_sum);
        maybe_flush(mx, o);
    }
    family(o, M_SEND_TO_DLQ);
    for (struct apg_smap_ent *it = apg_smap_first(&mx->mx_topics, &pos); it;
         it = apg_smap_next(&mx->mx_topics, it, &pos))
        if (strncmp(it->se_key, APG_DLQ_PREFIX, dlq) == 0)
            sample(mx, o, M_SEND_TO_DLQ, "consumer_group", it->se_key + dlq,
                   strlen(it->se_key + dlq), ((struct mtopic *)it->se_val)->mt_sum);
}

/* name_suffix{common,protocol_type="remoting",request_code="rc"[,le="le"]} */
static void rpc_head(struct apg_metrics *mx, struct apg_buf *o, const char *suffix,
                     const char *code, size_t code_len, const char *le, size_t le_len)
{
    const char *pt = ",protocol_type=\"remoting\",request_code=\"";
    size_t ptl = strlen(pt);
    if (apg_buf_reserve(o, families[M_RPC_LATENCY].name_len + 8 + mx->mx_common_len + ptl +
                               code_len + le_len + 16 + 24))
        return;
    put(o, families[M_RPC_LATENCY].name, families[M_RPC_LATENCY].name_len);
    put(o, suffix, strlen(suffix));
    put(o, "{", 1);
    put(o, mx->mx_common, mx->mx_common_len);
    put(o, pt, ptl);
    put(o, code, code_len);
    put(o, "\"", 1);
    if (le) {
        put(o, ",le=\"", 5);
        put(o, le, le_len);
        put(o, "\"", 1);
    }
    put(o, "} ", 2);
}

static void rpc_family(struct apg_metrics *mx, struct apg_buf *o)
{
    family(o, M_RPC_LATENCY);
    for (int i = 0; i < apg_broker_rpc_slots(); i++) {
        uint64_t n[APG_RPC_BUCKETS] = {0}, sum_us = 0, cum = 0;
        apg_broker_rpc_sum(mx->mx_b, i, n, &sum_us);
        for (int k = 0; k < APG_RPC_BUCKETS; k++)
            cum += n[k];
        if (!cum)
            continue; /* a code never requested has no series */
        char code[24], le[24];
        int32_t rc = apg_broker_rpc_code(i);
        if (rc < 0)
            memcpy(code, "other", 6);
        else
            apg_fmt_i64(code, rc);
        size_t cl = strlen(code);
        cum = 0;
        for (int k = 0; k < APG_RPC_BUCKETS; k++) {
            cum += n[k];
            if (k < APG_RPC_BUCKETS - 1)
                apg_fmt_i64(le, apg_rpc_bucket_ms[k]);
            else
                memcpy(le, "+Inf", 5);
            rpc_head(mx, o, "_bucket", code, cl, le, strlen(le));
            put_i64(o, (int64_t)cum);
            put(o, "\n", 1);
        }
        rpc_head(mx, o, "_sum", code, cl, NULL, 0);
        put_i64(o, (int64_t)(sum_us / 1000));
        char frac[4] = {(char)('0' + sum_us % 1000 / 100), (char)('0' + sum_us % 100 / 10),
                        (char)('0' + sum_us % 10), '\n'};
        put(o, ".", 1);
        put(o, frac, 4);
        rpc_head(mx, o, "_count", code, cl, NULL, 0);
        put_i64(o, (int64_t)cum);
        put(o, "\n", 1);
    }
}

static int64_t topic_sum(struct apg_metrics *mx, const char *name)
{
    const struct mtopic *t = apg_smap_get(&mx->mx_topics, name);
    return t ? t->mt_sum : 0;
}

apg_err_t apg_metrics_render(struct apg_metrics *mx, struct apg_buf *o, int64_t now_ms)
{
    return apg_metrics_render_stream(mx, o, now_ms, NULL, NULL);
}

apg_err_t apg_metrics_render_stream(struct apg_metrics *mx, struct apg_buf *o, int64_t now_ms,
                                    void (*flush)(void *arg), void *arg)
{
    struct apg_broker *b = mx->mx_b;
    mx->mx_now = now_ms;
    mx->mx_flush = flush;
    mx->mx_flush_arg = arg;
    mx->mx_flushed = o->b_len;
    size_t start = o->b_len;
    if (flush) /* pieces: the buffer stays small and warm in the cache */
        apg_buf_reserve(o, 2 * APG_METRICS_PIECE);
    else /* whole: no regrowth on the way */
        apg_buf_reserve(o, mx->mx_last_len + mx->mx_last_len / 8);
    bool store_same = scan_topics(mx);
    scan_offsets(mx, store_same);
    scan_consumed(mx);
    struct apg_store_stats ss;
    apg_store_stats(b->br_store, &ss);

    single(mx, o, M_BROKER_PERMISSION, atomic_load(&b->br_perm));
    topics_families(mx, o);
    single(mx, o, M_THROUGHPUT_IN, (int64_t)ss.ss_put_bytes);
    rows_family(mx, o, M_MESSAGES_OUT, &mx->mx_out, 0);
    rows_family(mx, o, M_THROUGHPUT_OUT, &mx->mx_out, 1);
    rows_family(mx, o, M_LAG_MESSAGES, &mx->mx_lag, 0);
    rows_family(mx, o, M_LAG_LATENCY, &mx->mx_lag, V_AGE);
    rows_family(mx, o, M_INFLIGHT, &mx->mx_lag, V_ZERO);
    rows_family(mx, o, M_READY, &mx->mx_lag, 0);
    int64_t prod = 0, cons = 0;
    apg_clients_count(b->br_clients, &prod, &cons);
    single(mx, o, M_PRODUCER_CONNECTIONS, prod);
    single(mx, o, M_CONSUMER_CONNECTIONS, cons);
    rpc_family(mx, o);
    family(o, M_STORAGE_SIZE);
    sample(mx, o, M_STORAGE_SIZE, "storage_type", "local", 5,
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
    if (!flush)
        mx->mx_last_len = o->b_len - start;
    mx->mx_flush = NULL;
    return o->b_data || o->b_len == 0 ? APG_OK : APG_ENOMEM;
}

/* Pop consumption state: queues of in-flight entries, the deadline heap and
 * the journal record codec (pop_state.h has the layout and the rules).
 *
 * A queue's entries live in an array of (offset, entry) slots sorted by
 * offset. An acknowledged entry leaves its slot with the offset kept and the
 * pointer cleared, so a binary search still works; the array is compacted
 * when the cleared slots at its front pass half of it. New entries always
 * come from the cursor, above every slot, so adding is an append.
 *
 * Pure and single-threaded: the owner holds its lock around every call. */
#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include "broker/pop/pop_state.h"
#include "common/mem.h"

struct pop_slot {
    int64_t ps_off;
    struct apg_pop_ent *ps_ent; /* NULL once removed */
};

#define SLOTS(q) ((struct pop_slot *)(void *)(q)->pq_ents)

void apg_pop_state_init(struct apg_pop_state *ps)
{
    memset(ps, 0, sizeof(*ps));
    apg_smap_init(&ps->ps_queues);
}

static void queue_free(void *v)
{
    struct apg_pop_queue *q = v;
    for (size_t i = q->pq_head; i < q->pq_len; i++)
        apg_free(SLOTS(q)[i].ps_ent);
    apg_free(q->pq_ents);
    apg_free(q->pq_group);
    apg_free(q->pq_topic);
    apg_free(q);
}

void apg_pop_state_free(struct apg_pop_state *ps)
{
    apg_smap_clear_free(&ps->ps_queues, queue_free);
    apg_free(ps->ps_heap);
    memset(ps, 0, sizeof(*ps));
}

static void queue_key(char *out, size_t n, const char *group, size_t gl, const char *topic,
                      size_t tl, int32_t qid)
{
    snprintf(out, n, "%.*s\x01%.*s\x01%d", (int)gl, group, (int)tl, topic, qid);
}

struct apg_pop_queue *apg_pop_state_queue(struct apg_pop_state *ps, const char *group,
                                          const char *topic, int32_t qid)
{
    char key[600];
    queue_key(key, sizeof(key), group, strlen(group), topic, strlen(topic), qid);
    return apg_smap_get(&ps->ps_queues, key);
}

static struct apg_pop_queue *queue_add_n(struct apg_pop_state *ps, const char *group, size_t gl,
                                         const char *topic, size_t tl, int32_t qid, int64_t next)
{
    char key[600];
    queue_key(key, sizeof(key), group, gl, topic, tl, qid);
    struct apg_pop_queue *q = apg_smap_get(&ps->ps_queues, key);
    if (q)
        return q;
    q = apg_calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    q->pq_group = apg_malloc(gl + 1);
    q->pq_topic = apg_malloc(tl + 1);
    if (!q->pq_group || !q->pq_topic || apg_smap_put(&ps->ps_queues, key, q, NULL)) {
        queue_free(q);
        return NULL;
    }
    memcpy(q->pq_group, group, gl);
    q->pq_group[gl] = '\0';
    memcpy(q->pq_topic, topic, tl);
    q->pq_topic[tl] = '\0';
    q->pq_qid = qid;
    q->pq_next = next;
    return q;
}

struct apg_pop_queue *apg_pop_state_queue_add(struct apg_pop_state *ps, const char *group,
                                              const char *topic, int32_t qid, int64_t next)
{
    return queue_add_n(ps, group, strlen(group), topic, strlen(topic), qid, next);
}

/* Index of the slot with offset, or of the first slot above it. */
static size_t slot_search(const struct apg_pop_queue *q, int64_t offset)
{
    size_t lo = q->pq_head, hi = q->pq_len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (SLOTS(q)[mid].ps_off < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

struct apg_pop_ent *apg_pop_state_find(struct apg_pop_queue *q, int64_t offset)
{
    size_t i = slot_search(q, offset);
    if (i < q->pq_len && SLOTS(q)[i].ps_off == offset)
        return SLOTS(q)[i].ps_ent;
    return NULL;
}

int64_t apg_pop_state_low(const struct apg_pop_queue *q)
{
    for (size_t i = q->pq_head; i < q->pq_len; i++)
        if (SLOTS(q)[i].ps_ent)
            return SLOTS(q)[i].ps_off;
    return q->pq_next;
}

bool apg_pop_state_busy(const struct apg_pop_queue *q)
{
    return q->pq_live > q->pq_ready;
}

int apg_pop_state_ready(struct apg_pop_queue *q, struct apg_pop_ent **out, int max)
{
    int n = 0;
    for (size_t i = q->pq_head; i < q->pq_len && n < max && (size_t)n < q->pq_ready; i++) {
        struct apg_pop_ent *e = SLOTS(q)[i].ps_ent;
        if (e && e->pe_state == APG_POP_READY)
            out[n++] = e;
    }
    return n;
}

/* ---- heap --------------------------------------------------------------- */

static void heap_set(struct apg_pop_state *ps, size_t i, struct apg_pop_ent *e)
{
    ps->ps_heap[i] = e;
    e->pe_heap = (int32_t)i;
}

static void heap_up(struct apg_pop_state *ps, size_t i)
{
    struct apg_pop_ent *e = ps->ps_heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (ps->ps_heap[p]->pe_due <= e->pe_due)
            break;
        heap_set(ps, i, ps->ps_heap[p]);
        i = p;
    }
    heap_set(ps, i, e);
}

static void heap_down(struct apg_pop_state *ps, size_t i)
{
    struct apg_pop_ent *e = ps->ps_heap[i];
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        int64_t best = e->pe_due;
        if (l < ps->ps_heap_n && ps->ps_heap[l]->pe_due < best) {
            m = l;
            best = ps->ps_heap[l]->pe_due;
        }
        if (l + 1 < ps->ps_heap_n && ps->ps_heap[l + 1]->pe_due < best)
            m = l + 1;
        if (m == i)
            break;
        heap_set(ps, i, ps->ps_heap[m]);
        i = m;
    }
    heap_set(ps, i, e);
}

static apg_err_t heap_push(struct apg_pop_state *ps, struct apg_pop_ent *e)
{
    if (ps->ps_heap_n == ps->ps_heap_cap) {
        size_t cap = ps->ps_heap_cap ? ps->ps_heap_cap * 2 : 256;
        struct apg_pop_ent **h = apg_realloc(ps->ps_heap, cap * sizeof(*h));
        if (!h)
            return APG_ENOMEM;
        ps->ps_heap = h;
        ps->ps_heap_cap = cap;
    }
    heap_set(ps, ps->ps_heap_n++, e);
    heap_up(ps, ps->ps_heap_n - 1);
    return APG_OK;
}

static void heap_remove(struct apg_pop_state *ps, struct apg_pop_ent *e)
{
    size_t i = (size_t)e->pe_heap;
    e->pe_heap = -1;
    struct apg_pop_ent *last = ps->ps_heap[--ps->ps_heap_n];
    if (i == ps->ps_heap_n)
        return;
    heap_set(ps, i, last);
    heap_up(ps, i);
    heap_down(ps, (size_t)last->pe_heap);
}

/* Moves e to state with deadline due, keeping the heap and counts right. */
static apg_err_t ent_set(struct apg_pop_state *ps, struct apg_pop_ent *e, uint8_t state,
                         int64_t due)
{
    struct apg_pop_queue *q = e->pe_q;
    if (e->pe_state == APG_POP_READY && state != APG_POP_READY)
        q->pq_ready--;
    else if (e->pe_state != APG_POP_READY && state == APG_POP_READY)
        q->pq_ready++;
    e->pe_state = state;
    e->pe_due = due;
    if (state == APG_POP_READY) {
        if (e->pe_heap >= 0)
            heap_remove(ps, e);
        return APG_OK;
    }
    if (e->pe_heap < 0)
        return heap_push(ps, e);
    heap_up(ps, (size_t)e->pe_heap);
    heap_down(ps, (size_t)e->pe_heap);
    return APG_OK;
}

struct apg_pop_ent *apg_pop_state_due(struct apg_pop_state *ps, int64_t now)
{
    if (ps->ps_heap_n == 0 || ps->ps_heap[0]->pe_due > now)
        return NULL;
    return ps->ps_heap[0];
}

void apg_pop_state_expire(struct apg_pop_state *ps, struct apg_pop_ent *e, int64_t now,
                          int64_t backoff_ms)
{
    if (e->pe_state == APG_POP_INVISIBLE && backoff_ms > 0)
        ent_set(ps, e, APG_POP_BACKOFF, now + backoff_ms);
    else
        ent_set(ps, e, APG_POP_READY, 0);
}

/* ---- entries ------------------------------------------------------------ */

static apg_err_t slot_insert(struct apg_pop_queue *q, size_t at, int64_t off, struct apg_pop_ent *e)
{
    if (q->pq_len == q->pq_cap) {
        if (q->pq_head > 0) {
            memmove(SLOTS(q), SLOTS(q) + q->pq_head,
                    (q->pq_len - q->pq_head) * sizeof(struct pop_slot));
            q->pq_len -= q->pq_head;
            at -= q->pq_head;
            q->pq_head = 0;
        }
        if (q->pq_len == q->pq_cap) {
            size_t cap = q->pq_cap ? q->pq_cap * 2 : 16;
            void *s = apg_realloc(q->pq_ents, cap * sizeof(struct pop_slot));
            if (!s)
                return APG_ENOMEM;
            q->pq_ents = s;
            q->pq_cap = cap;
        }
    }
    memmove(SLOTS(q) + at + 1, SLOTS(q) + at, (q->pq_len - at) * sizeof(struct pop_slot));
    SLOTS(q)[at].ps_off = off;
    SLOTS(q)[at].ps_ent = e;
    q->pq_len++;
    return APG_OK;
}

static struct apg_pop_ent *ent_add(struct apg_pop_state *ps, struct apg_pop_queue *q,
                                   int64_t offset, int64_t phys)
{
    size_t at = slot_search(q, offset);
    if (at < q->pq_len && SLOTS(q)[at].ps_off == offset) {
        if (SLOTS(q)[at].ps_ent)
            return SLOTS(q)[at].ps_ent;
        /* A removed slot of the same offset: reuse it. */
    }
    struct apg_pop_ent *e = apg_calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->pe_offset = offset;
    e->pe_phys = phys;
    e->pe_heap = -1;
    e->pe_state = APG_POP_READY; /* set properly by the caller */
    e->pe_q = q;
    q->pq_ready++;
    if (at < q->pq_len && SLOTS(q)[at].ps_off == offset) {
        SLOTS(q)[at].ps_ent = e;
    } else if (slot_insert(q, at, offset, e)) {
        q->pq_ready--;
        apg_free(e);
        return NULL;
    }
    q->pq_live++;
    ps->ps_entries++;
    return e;
}

void apg_pop_state_remove(struct apg_pop_state *ps, struct apg_pop_ent *e)
{
    struct apg_pop_queue *q = e->pe_q;
    if (e->pe_heap >= 0)
        heap_remove(ps, e);
    if (e->pe_state == APG_POP_READY)
        q->pq_ready--;
    size_t i = slot_search(q, e->pe_offset);
    if (i < q->pq_len && SLOTS(q)[i].ps_ent == e)
        SLOTS(q)[i].ps_ent = NULL;
    q->pq_live--;
    ps->ps_entries--;
    apg_free(e);
    while (q->pq_head < q->pq_len && !SLOTS(q)[q->pq_head].ps_ent)
        q->pq_head++;
    if (q->pq_head == q->pq_len) {
        q->pq_head = q->pq_len = 0;
    } else if (q->pq_head > 64 && q->pq_head > q->pq_len / 2) {
        memmove(SLOTS(q), SLOTS(q) + q->pq_head,
                (q->pq_len - q->pq_head) * sizeof(struct pop_slot));
        q->pq_len -= q->pq_head;
        q->pq_head = 0;
    }
}

/* ---- records ------------------------------------------------------------ */

#define REC_HDR 8
#define REC_ENT 21

apg_err_t apg_pop_rec_begin(struct apg_buf *b, uint8_t op, const char *group, const char *topic,
                            int32_t qid, size_t *start)
{
    size_t gl = strlen(group), tl = strlen(topic);
    if (gl > 0xffff || tl > 0xffff)
        return APG_EINVAL;
    *start = b->b_len;
    apg_err_t e = apg_buf_put_be64(b, 0); /* length and CRC, filled in at the end */
    if (!e)
        e = apg_buf_append(b, &op, 1);
    if (!e)
        e = apg_buf_put_be16(b, (uint16_t)gl);
    if (!e)
        e = apg_buf_append(b, group, gl);
    if (!e)
        e = apg_buf_put_be16(b, (uint16_t)tl);
    if (!e)
        e = apg_buf_append(b, topic, tl);
    if (!e)
        e = apg_buf_put_be32(b, (uint32_t)qid);
    return e;
}

void apg_pop_rec_end(struct apg_buf *b, size_t start)
{
    uint8_t *p = (uint8_t *)b->b_data + start;
    uint32_t len = (uint32_t)(b->b_len - start - REC_HDR);
    apg_wbe32(p, len);
    apg_wbe32(p + 4, (uint32_t)crc32(0L, p + REC_HDR, len));
}

apg_err_t apg_pop_rec_put_ent(struct apg_buf *b, const struct apg_pop_rec_ent *re)
{
    apg_err_t e = apg_buf_put_be64(b, (uint64_t)re->re_offset);
    if (!e)
        e = apg_buf_put_be64(b, (uint64_t)re->re_phys);
    if (!e)
        e = apg_buf_put_be32(b, (uint32_t)re->re_attempts);
    if (!e)
        e = apg_buf_append(b, &re->re_state, 1);
    return e;
}

void apg_pop_rec_ent(const struct apg_pop_rec *r, int i, struct apg_pop_rec_ent *out)
{
    const uint8_t *p = r->r_ent + (size_t)i * REC_ENT;
    out->re_offset = (int64_t)apg_be64(p);
    out->re_phys = (int64_t)apg_be64(p + 8);
    out->re_attempts = (int32_t)apg_be32(p + 16);
    out->re_state = p[20];
}

/* A cursor over a record body. */
struct rd {
    const uint8_t *p, *end;
    bool bad;
};

static const uint8_t *rd_take(struct rd *r, size_t n)
{
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    return p;
}

static int64_t rd_i64(struct rd *r)
{
    const uint8_t *p = rd_take(r, 8);
    return p ? (int64_t)apg_be64(p) : 0;
}

static int32_t rd_i32(struct rd *r)
{
    const uint8_t *p = rd_take(r, 4);
    return p ? (int32_t)apg_be32(p) : 0;
}

static const char *rd_str(struct rd *r, size_t *len)
{
    const uint8_t *p = rd_take(r, 2);
    *len = p ? apg_be16(p) : 0;
    return (const char *)rd_take(r, *len);
}

apg_err_t apg_pop_rec_decode(const uint8_t *buf, size_t len, struct apg_pop_rec *out, size_t *used)
{
    if (len < REC_HDR)
        return APG_EAGAIN;
    uint32_t blen = apg_be32(buf);
    if (blen > (64u << 20))
        return APG_ECORRUPT;
    if (len - REC_HDR < blen)
        return APG_EAGAIN;
    if ((uint32_t)crc32(0L, buf + REC_HDR, blen) != apg_be32(buf + 4))
        return APG_ECORRUPT;
    struct rd r = {buf + REC_HDR, buf + REC_HDR + blen, false};
    memset(out, 0, sizeof(*out));
    const uint8_t *op = rd_take(&r, 1);
    out->r_op = op ? *op : 0;
    out->r_group = rd_str(&r, &out->r_group_len);
    out->r_topic = rd_str(&r, &out->r_topic_len);
    out->r_qid = rd_i32(&r);
    switch (out->r_op) {
    case 'P':
        out->r_stamp = rd_i64(&r);
        out->r_due = rd_i64(&r);
        out->r_invisible = rd_i64(&r);
        out->r_next = rd_i64(&r);
        {
            const uint8_t *n = rd_take(&r, 2);
            out->r_n = n ? apg_be16(n) : 0;
        }
        if (out->r_n > APG_POP_REC_MAX_ENTS)
            return APG_ECORRUPT;
        out->r_ent = rd_take(&r, (size_t)out->r_n * REC_ENT);
        break;
    case 'A':
        out->r_offset = rd_i64(&r);
        out->r_stamp = rd_i64(&r);
        break;
    case 'C':
        out->r_offset = rd_i64(&r);
        out->r_stamp = rd_i64(&r);
        out->r_new_stamp = rd_i64(&r);
        out->r_due = rd_i64(&r);
        out->r_invisible = rd_i64(&r);
        break;
    default:
        return APG_ECORRUPT;
    }
    if (r.bad || r.p != r.end || !out->r_group || !out->r_topic || out->r_group_len == 0 ||
        out->r_topic_len == 0 || out->r_qid < 0)
        return APG_ECORRUPT;
    /* Names are C strings in the state and the queue key's separator is
     * \x01: neither byte belongs in one (a NUL would cut the name, and the
     * snapshot would then not replay to the same queues). */
    if (memchr(out->r_group, '\x01', out->r_group_len) ||
        memchr(out->r_topic, '\x01', out->r_topic_len) ||
        memchr(out->r_group, '\0', out->r_group_len) ||
        memchr(out->r_topic, '\0', out->r_topic_len))
        return APG_ECORRUPT;
    *used = REC_HDR + blen;
    return APG_OK;
}

apg_err_t apg_pop_state_apply(struct apg_pop_state *ps, const struct apg_pop_rec *r)
{
    if (r->r_group_len >= 256 || r->r_topic_len >= 256)
        return APG_ECORRUPT;
    if (r->r_op == 'P') {
        struct apg_pop_queue *q = queue_add_n(ps, r->r_group, r->r_group_len, r->r_topic,
                                              r->r_topic_len, r->r_qid, r->r_next);
        if (!q)
            return APG_ENOMEM;
        if (r->r_next > q->pq_next)
            q->pq_next = r->r_next;
        for (int i = 0; i < r->r_n; i++) {
            struct apg_pop_rec_ent re;
            apg_pop_rec_ent(r, i, &re);
            if (re.re_state > APG_POP_READY || re.re_offset < 0)
                return APG_ECORRUPT;
            struct apg_pop_ent *e = ent_add(ps, q, re.re_offset, re.re_phys);
            if (!e)
                return APG_ENOMEM;
            e->pe_phys = re.re_phys;
            e->pe_attempts = re.re_attempts;
            e->pe_stamp = r->r_stamp;
            e->pe_invisible = r->r_invisible;
            if (ent_set(ps, e, re.re_state, re.re_state == APG_POP_READY ? 0 : r->r_due))
                return APG_ENOMEM;
        }
        return APG_OK;
    }
    char key[600];
    queue_key(key, sizeof(key), r->r_group, r->r_group_len, r->r_topic, r->r_topic_len, r->r_qid);
    struct apg_pop_queue *q = apg_smap_get(&ps->ps_queues, key);
    struct apg_pop_ent *e = q ? apg_pop_state_find(q, r->r_offset) : NULL;
    if (!e || (r->r_stamp != -1 && e->pe_stamp != r->r_stamp))
        return APG_ENOTFOUND;
    if (r->r_op == 'A') {
        apg_pop_state_remove(ps, e);
        return APG_OK;
    }
    /* 'C': only a delivery still invisible can be extended. */
    if (e->pe_state != APG_POP_INVISIBLE)
        return APG_ENOTFOUND;
    e->pe_stamp = r->r_new_stamp;
    e->pe_invisible = r->r_invisible;
    return ent_set(ps, e, APG_POP_INVISIBLE, r->r_due);
}

apg_err_t apg_pop_state_encode(struct apg_pop_state *ps, struct apg_buf *b)
{
    size_t it;
    for (struct apg_smap_ent *se = apg_smap_first(&ps->ps_queues, &it); se;
         se = apg_smap_next(&ps->ps_queues, se, &it)) {
        struct apg_pop_queue *q = se->se_val;
        size_t start;
        /* The cursor, then each entry as a pop of its own (its stamp, deadline
         * and state). */
        apg_err_t e = apg_pop_rec_begin(b, 'P', q->pq_group, q->pq_topic, q->pq_qid, &start);
        for (int k = 0; !e && k < 3; k++)
            e = apg_buf_put_be64(b, 0);
        if (!e)
            e = apg_buf_put_be64(b, (uint64_t)q->pq_next);
        if (!e)
            e = apg_buf_put_be16(b, 0);
        if (e)
            return e;
        apg_pop_rec_end(b, start);
        for (size_t i = q->pq_head; i < q->pq_len; i++) {
            struct apg_pop_ent *pe = SLOTS(q)[i].ps_ent;
            if (!pe)
                continue;
            struct apg_pop_rec_ent re = {pe->pe_offset, pe->pe_phys, pe->pe_attempts, pe->pe_state};
            e = apg_pop_rec_begin(b, 'P', q->pq_group, q->pq_topic, q->pq_qid, &start);
            if (!e)
                e = apg_buf_put_be64(b, (uint64_t)pe->pe_stamp);
            if (!e)
                e = apg_buf_put_be64(b, (uint64_t)pe->pe_due);
            if (!e)
                e = apg_buf_put_be64(b, (uint64_t)pe->pe_invisible);
            if (!e)
                e = apg_buf_put_be64(b, (uint64_t)q->pq_next);
            if (!e)
                e = apg_buf_put_be16(b, 1);
            if (!e)
                e = apg_pop_rec_put_ent(b, &re);
            if (e)
                return e;
            apg_pop_rec_end(b, start);
        }
    }
    return APG_OK;
}

/* Reads: apg_store_get and the offset, time and topic queries.
 *
 * Any thread, concurrently with appends: a reader holds st_struct_lock shared
 * (so no segment or queue disappears under it), loads a queue's max offset and
 * the commit log's write position with acquire, and copies only bytes below
 * them from the mappings. delete_topic takes st_append_mtx and st_struct_lock
 * exclusive. */
#define _GNU_SOURCE
#include "store/store_int.h"

#include <stdatomic.h>
#include <string.h>

#include "common/buf.h"
#include "common/mem.h"
#include "protocol/message.h"

const char *apg_get_status_name(enum apg_get_status s)
{
    static const char *const names[] = {
        "FOUND",
        "NO_MATCHED_MESSAGE",
        "MESSAGE_WAS_REMOVING",
        "OFFSET_FOUND_NULL",
        "OFFSET_OVERFLOW_BADLY",
        "OFFSET_OVERFLOW_ONE",
        "OFFSET_TOO_SMALL",
        "NO_MATCHED_LOGIC_QUEUE",
        "NO_MESSAGE_IN_QUEUE",
    };
    return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}

/* Pointer to `size` bytes at commit-log offset phys, or NULL. Struct lock held. */
static const uint8_t *cl_ptr(struct apg_store *st, int64_t phys, int32_t size)
{
    if (phys < atomic_load(&st->st_min_phys) || size <= 0 ||
        phys + size > atomic_load_explicit(&st->st_wrote, memory_order_acquire))
        return NULL;
    struct seg *s = apg_cl_seg_for(st, phys);
    if (!s || phys - s->sg_base + size > (int64_t)s->sg_size)
        return NULL;
    return s->sg_map + (phys - s->sg_base);
}

apg_err_t apg_store_get(struct apg_store *st, const char *topic, size_t topic_len, int32_t queue_id,
                        int64_t offset, int max_msgs, size_t max_bytes, apg_store_filter_fn filter,
                        void *filter_ud, struct apg_buf *out, struct apg_get_result *r)
{
    memset(r, 0, sizeof(*r));
    r->gr_first_queue_offset = -1;
    if (max_msgs <= 0)
        max_msgs = 1;
    apg_err_t rc = APG_OK;
    pthread_rwlock_rdlock(&st->st_struct_lock);
    struct cq *q = apg_cq_find(st, topic, topic_len, queue_id);
    if (!q) {
        r->gr_status = APG_GET_NO_MATCHED_LOGIC_QUEUE;
        r->gr_next_begin_offset = 0;
        goto done;
    }
    int64_t max = atomic_load_explicit(&q->cq_max, memory_order_acquire);
    int64_t min = atomic_load(&q->cq_min);
    r->gr_min_offset = min;
    r->gr_max_offset = max;
    if (max == 0) {
        r->gr_status = APG_GET_NO_MESSAGE_IN_QUEUE;
        r->gr_next_begin_offset = 0;
    } else if (offset < min) {
        r->gr_status = APG_GET_OFFSET_TOO_SMALL;
        r->gr_next_begin_offset = min;
    } else if (offset == max) {
        r->gr_status = APG_GET_OFFSET_OVERFLOW_ONE;
        r->gr_next_begin_offset = offset;
    } else if (offset > max) {
        /* The end of the queue, as RocketMQ 4.9 and 5.x answer: a consumer
         * whose offset ran past the end (a wiped store, a reset) resumes at
         * the end instead of re-reading the whole queue. */
        r->gr_status = APG_GET_OFFSET_OVERFLOW_BADLY;
        r->gr_next_begin_offset = max;
    } else {
        int64_t limit = max_msgs > 800 ? max_msgs : 800;
        int64_t lo = offset;
        size_t bytes = 0;
        r->gr_status = APG_GET_NO_MATCHED_MESSAGE;
        for (; lo < max && lo - offset < limit; lo++) {
            const uint8_t *e = apg_cq_entry(st, q, lo);
            if (!e) {
                if (r->gr_count == 0)
                    r->gr_status = APG_GET_OFFSET_FOUND_NULL;
                break;
            }
            int64_t phys = (int64_t)apg_be64(e);
            int32_t size = (int32_t)apg_be32(e + 8);
            int64_t tags = (int64_t)apg_be64(e + 12);
            if (r->gr_count > 0 && bytes + (size_t)size > max_bytes)
                break;
            const uint8_t *p = cl_ptr(st, phys, size);
            if (!p) {
                if (phys >= atomic_load(&st->st_min_phys)) {
                    /* Not removed, so not readable yet (or a corrupt
                     * entry): stop here rather than step over it. */
                    if (r->gr_count == 0)
                        r->gr_status = APG_GET_OFFSET_FOUND_NULL;
                    break;
                }
                if (r->gr_count == 0)
                    r->gr_status = APG_GET_MESSAGE_WAS_REMOVING;
                continue;
            }
            if (filter && !filter(filter_ud, tags)) {
                if (r->gr_count == 0)
                    r->gr_status = APG_GET_NO_MATCHED_MESSAGE;
                continue;
            }
            rc = apg_buf_append(out, p, (size_t)size);
            if (rc)
                break;
            if (r->gr_count == 0)
                r->gr_first_queue_offset = lo;
            r->gr_count++;
            r->gr_status = APG_GET_FOUND;
            bytes += (size_t)size;
            if (r->gr_count >= max_msgs) {
                lo++;
                break;
            }
        }
        r->gr_next_begin_offset = lo;
    }
done:
    pthread_rwlock_unlock(&st->st_struct_lock);
    return rc;
}

int apg_store_cq_read(struct apg_store *st, const char *topic, size_t topic_len, int32_t queue_id,
                      int64_t offset, int max, struct apg_cq_ref *out, int64_t *next)
{
    int n = 0;
    *next = offset;
    pthread_rwlock_rdlock(&st->st_struct_lock);
    struct cq *q = apg_cq_find(st, topic, topic_len, queue_id);
    if (q) {
        int64_t hi = atomic_load_explicit(&q->cq_max, memory_order_acquire);
        int64_t lo = atomic_load(&q->cq_min);
        if (offset < lo)
            offset = *next = lo;
        for (; offset < hi && n < max; offset++) {
            const uint8_t *e = apg_cq_entry(st, q, offset);
            if (!e)
                break;
            out[n].cr_queue_offset = offset;
            out[n].cr_phys_offset = (int64_t)apg_be64(e);
            out[n].cr_size = (int32_t)apg_be32(e + 8);
            out[n].cr_tags_code = (int64_t)apg_be64(e + 12);
            n++;
            *next = offset + 1;
        }
    }
    pthread_rwlock_unlock(&st->st_struct_lock);
    return n;
}

int64_t apg_store_max_offset(struct apg_store *st, const char *topic, size_t topic_len,
                             int32_t queue_id)
{
    pthread_rwlock_rdlock(&st->st_struct_lock);
    struct cq *q = apg_cq_find(st, topic, topic_len, queue_id);
    int64_t v = q ? atomic_load(&q->cq_max) : 0;
    pthread_rwlock_unlock(&st->st_struct_lock);
    return v;
}

int64_t apg_store_min_offset(struct apg_store *st, const char *topic, size_t topic_len,
                             int32_t queue_id)
{
    pthread_rwlock_rdlock(&st->st_struct_lock);
    struct cq *q = apg_cq_find(st, topic, topic_len, queue_id);
    int64_t v = q ? atomic_load(&q->cq_min) : 0;
    pthread_rwlock_unlock(&st->st_struct_lock);
    return v;
}

/* Store time of the record at logical offset lo, or -1. Struct lock held. */
static int64_t store_ts_at(struct apg_store *st, struct cq *q, int64_t lo)
{
    const uint8_t *e = apg_cq_entry(st, q, lo);
    if (!e)
        return -1;
    const uint8_t *p = cl_ptr(st, (int64_t)apg_be64(e), (int32_t)apg_be32(e + 8));
    if (!p || apg_be32(p) < 64)
        return -1;
    int32_t sysflag = (int32_t)apg_be32(p + 36);
    size_t at = 48 + ((sysflag & APG_SYSFLAG_BORNHOST_V6) ? 20 : 8);
    return (int64_t)apg_be64(p + at);
}

int64_t apg_store_msg_store_time(struct apg_store *st, const char *topic, size_t topic_len,
                                 int32_t queue_id, int64_t queue_offset)
{
    pthread_rwlock_rdlock(&st->st_struct_lock);
    struct cq *q = apg_cq_find(st, topic, topic_len, queue_id);
    int64_t v = -1;
    if (q && queue_offset >= atomic_load(&q->cq_min) &&
        queue_offset < atomic_load_explicit(&q->cq_max, memory_order_acquire))
        v = store_ts_at(st, q, queue_offset);
    pthread_rwlock_unlock(&st->st_struct_lock);
    return v;
}

int64_t apg_store_earliest_msg_time(struct apg_store *st, const char *topic, size_t topic_len,
                                    int32_t queue_id)
{
    return apg_store_msg_store_time(st, topic, topic_len, queue_id,
                                    apg_store_min_offset(st, topic, topic_len, queue_id));
}

int64_t apg_store_offset_by_time(struct apg_store *st, const char *topic, size_t topic_len,
                                 int32_t queue_id, int64_t ts_ms, bool upper)
{
    pthread_rwlock_rdlock(&st->st_struct_lock);
    struct cq *q = apg_cq_find(st, topic, topic_len, queue_id);
    int64_t res = 0;
    if (q) {
        int64_t min = atomic_load(&q->cq_min);
        int64_t hi = atomic_load_explicit(&q->cq_max, memory_order_acquire);
        int64_t lo = min;
        /* First offset in [lo, hi) whose store time is >= ts (lower) or > ts
         * (upper); hi if none. A removed record counts as older. */
        while (lo < hi) {
            int64_t mid = lo + (hi - lo) / 2;
            int64_t t = store_ts_at(st, q, mid);
            if (t < 0 || t < ts_ms || (upper && t == ts_ms))
                lo = mid + 1;
            else
                hi = mid;
        }
        res = upper ? (lo > min ? lo - 1 : min) : lo;
    }
    pthread_rwlock_unlock(&st->st_struct_lock);
    return res;
}

apg_err_t apg_store_read_at(struct apg_store *st, int64_t phys_offset, struct apg_buf *out)
{
    apg_err_t rc = APG_ENOTFOUND;
    pthread_rwlock_rdlock(&st->st_struct_lock);
    int64_t wrote = atomic_load_explicit(&st->st_wrote, memory_order_acquire);
    struct seg *s = phys_offset >= atomic_load(&st->st_min_phys) && phys_offset < wrote
                        ? apg_cl_seg_for(st, phys_offset)
                        : NULL;
    if (s) {
        size_t off = (size_t)(phys_offset - s->sg_base);
        size_t avail = s->sg_size - off;
        if ((int64_t)avail > wrote - phys_offset)
            avail = (size_t)(wrote - phys_offset);
        struct apg_msgrec m;
        if (apg_msgrec_decode(s->sg_map + off, avail, false, &m, NULL) == APG_MSGREC_OK &&
            m.mr_phys_offset == phys_offset)
            rc = apg_buf_append(out, s->sg_map + off, m.mr_total_size);
    }
    pthread_rwlock_unlock(&st->st_struct_lock);
    return rc;
}

apg_err_t apg_store_delete_topic(struct apg_store *st, const char *topic, size_t topic_len)
{
    pthread_mutex_lock(&st->st_append_mtx);
    pthread_rwlock_wrlock(&st->st_struct_lock);
    int found = 0;
    for (size_t b = 0; b < st->st_cqbuckets; b++) {
        struct cq **pp = &st->st_cqmap[b], *q;
        while ((q = *pp)) {
            if (q->cq_topic_len == topic_len && memcmp(q->cq_topic, topic, topic_len) == 0) {
                *pp = q->cq_next;
                if (st->st_cq_cache == q)
                    st->st_cq_cache = NULL;
                apg_cq_free(q, true);
                st->st_ncq--;
                found++;
            } else {
                pp = &q->cq_next;
            }
        }
    }
    pthread_rwlock_unlock(&st->st_struct_lock);
    pthread_mutex_unlock(&st->st_append_mtx);
    return found ? APG_OK : APG_ENOTFOUND;
}

void apg_store_foreach_queue(struct apg_store *st,
                             void (*fn)(void *ud, const char *topic, size_t topic_len,
                                        int32_t queue_id, int64_t min_offset, int64_t max_offset),
                             void *ud)
{
    pthread_rwlock_rdlock(&st->st_struct_lock);
    for (size_t b = 0; b < st->st_cqbuckets; b++)
        for (struct cq *q = st->st_cqmap[b]; q; q = q->cq_next)
            fn(ud, q->cq_topic, q->cq_topic_len, q->cq_qid, atomic_load(&q->cq_min),
               atomic_load(&q->cq_max));
    pthread_rwlock_unlock(&st->st_struct_lock);
}

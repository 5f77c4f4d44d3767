/* Consume queues: one per (topic, queue id), a run of 20-byte entries
 * (commit-log offset, record size, tag hash) in mapped segment files under
 * consumequeue/<topic>/<qid>/.
 *
 * The queue map is a hash table of struct cq. Its shape (buckets, each queue's
 * segment array) is guarded by st_struct_lock; entries are written only by the
 * appender under st_append_mtx, or during open and recovery. A queue's max
 * offset is published with a release store after the entry is written, so a
 * reader that loads it with acquire sees the entry. The queue is the first
 * dispatcher (dispatch.c): apg_cq_dispatch_* write entries for the put path
 * and for recovery, flush them and drop them. Loading queues at open,
 * truncating them before recovery re-indexes, and dropping entries below the
 * commit log's minimum after retention live here too. */
#define _GNU_SOURCE
#include "store/store_int.h"

#include <dirent.h>
#include <endian.h>
#include <limits.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/file.h"
#include "common/log.h"
#include "common/mem.h"

static uint64_t cq_hash(const char *t, size_t tl, int32_t qid)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < tl; i++)
        h = (h ^ (uint8_t)t[i]) * 1099511628211ull;
    h = (h ^ (uint32_t)qid) * 1099511628211ull;
    return h;
}

/* Caller holds st_struct_lock (shared or exclusive). */
struct cq *apg_cq_find(struct apg_store *st, const char *t, size_t tl, int32_t qid)
{
    if (!st->st_cqbuckets)
        return NULL;
    struct cq *q = st->st_cqmap[cq_hash(t, tl, qid) & (st->st_cqbuckets - 1)];
    for (; q; q = q->cq_next)
        if (q->cq_qid == qid && q->cq_topic_len == tl && memcmp(q->cq_topic, t, tl) == 0)
            return q;
    return NULL;
}

/* Caller holds st_struct_lock exclusive. */
struct cq *apg_cq_create(struct apg_store *st, const char *t, size_t tl, int32_t qid)
{
    if (st->st_ncq + 1 > st->st_cqbuckets) {
        size_t nb = st->st_cqbuckets ? st->st_cqbuckets * 2 : 256;
        struct cq **nm = apg_calloc(nb, sizeof(*nm));
        if (!nm)
            return NULL;
        for (size_t i = 0; i < st->st_cqbuckets; i++) {
            struct cq *q = st->st_cqmap[i], *nx;
            for (; q; q = nx) {
                nx = q->cq_next;
                size_t b = cq_hash(q->cq_topic, q->cq_topic_len, q->cq_qid) & (nb - 1);
                q->cq_next = nm[b];
                nm[b] = q;
            }
        }
        apg_free(st->st_cqmap);
        st->st_cqmap = nm;
        st->st_cqbuckets = nb;
    }
    struct cq *q = apg_calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    q->cq_topic = apg_strndup(t, tl);
    char qs[16];
    snprintf(qs, sizeof(qs), "%d", qid);
    char *td = q->cq_topic ? apg_path_join(st->st_cqdir, q->cq_topic) : NULL;
    q->cq_dir = td ? apg_path_join(td, qs) : NULL;
    apg_free(td);
    if (!q->cq_topic || !q->cq_dir) {
        apg_free(q->cq_topic);
        apg_free(q->cq_dir);
        apg_free(q);
        return NULL;
    }
    q->cq_topic_len = tl;
    q->cq_qid = qid;
    size_t b = cq_hash(t, tl, qid) & (st->st_cqbuckets - 1);
    q->cq_next = st->st_cqmap[b];
    st->st_cqmap[b] = q;
    st->st_ncq++;
    return q;
}

void apg_cq_free(struct cq *q, bool remove_files)
{
    for (int i = 0; i < q->cq_nsegs; i++)
        apg_seg_free(q->cq_segs[i], remove_files);
    if (remove_files) {
        rmdir(q->cq_dir);
        char *slash = strrchr(q->cq_dir, '/');
        if (slash) {
            *slash = 0;
            rmdir(q->cq_dir); /* topic dir, if now empty */
        }
    }
    apg_free(q->cq_segs);
    apg_free(q->cq_topic);
    apg_free(q->cq_dir);
    apg_free(q);
}

/* Segment of q holding logical offset `lo`, or NULL. Caller holds the struct
 * lock (any mode) or is the appender. */
struct seg *apg_cq_seg_for(struct apg_store *st, struct cq *q, int64_t lo)
{
    if (!q->cq_nsegs)
        return NULL;
    int64_t byte = lo * CQ_UNIT;
    int64_t first = q->cq_segs[0]->sg_base;
    if (byte < first)
        return NULL;
    int64_t idx = (byte - first) / (int64_t)st->st_opts.so_cq_file_size;
    if (idx >= q->cq_nsegs)
        return NULL;
    return q->cq_segs[idx];
}

const uint8_t *apg_cq_entry(struct apg_store *st, struct cq *q, int64_t lo)
{
    struct seg *s = apg_cq_seg_for(st, q, lo);
    if (!s)
        return NULL;
    return s->sg_map + (lo * CQ_UNIT - s->sg_base);
}

int apg_cq_add_seg(struct apg_store *st, struct cq *q, int64_t base, char *err, size_t errlen)
{
    if (atomic_exchange(&st->st_fail_next_create, false))
        return apg_errf(APG_EDISKFULL, err, errlen, "cannot create %s: %s", q->cq_dir,
                        strerror(ENOSPC));
    apg_err_t mrc = apg_file_mkdir_p(q->cq_dir, err, errlen);
    if (mrc)
        return mrc;
    struct seg *s =
        apg_seg_open(q->cq_dir, base, st->st_opts.so_cq_file_size, true, true, err, errlen);
    if (!s)
        return APG_EIO;
    /* Charge the file's blocks to the free space the put path counts on
     * until the next disk check measures again. */
    int64_t fr = atomic_load(&st->st_free_at_check);
    if (fr != INT64_MAX)
        atomic_compare_exchange_strong(&st->st_free_at_check, &fr,
                                       fr - (int64_t)st->st_opts.so_cq_file_size);
    if (q->cq_nsegs == q->cq_capsegs) {
        int nc = q->cq_capsegs ? q->cq_capsegs * 2 : 4;
        struct seg **ns = apg_realloc(q->cq_segs, (size_t)nc * sizeof(*ns));
        if (!ns) {
            apg_seg_free(s, true);
            return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
        }
        q->cq_segs = ns;
        q->cq_capsegs = nc;
    }
    q->cq_segs[q->cq_nsegs++] = s;
    return APG_OK;
}

/* Writes the entry for logical offset lo, creating the queue segment if
 * needed (queues are contiguous: a gap only at creation, when lo is the first
 * offset). Appender or recovery only. */
apg_err_t apg_cq_write(struct apg_store *st, struct cq *q, int64_t lo, int64_t phys, int32_t size,
                       int64_t tags, char *err, size_t errlen)
{
    int64_t fsz = (int64_t)st->st_opts.so_cq_file_size;
    struct seg *s = q->cq_nsegs ? q->cq_segs[q->cq_nsegs - 1] : NULL;
    int64_t byte = lo * CQ_UNIT;
    if (!s || byte < s->sg_base || byte >= s->sg_base + fsz) {
        s = apg_cq_seg_for(st, q, lo);
        if (!s) {
            int64_t base = byte / fsz * fsz;
            if (q->cq_nsegs && base != q->cq_segs[q->cq_nsegs - 1]->sg_base + fsz)
                return apg_errf(APG_ECORRUPT, err, errlen,
                                "consume queue %s: offset %lld is not next to the last segment",
                                q->cq_dir, (long long)lo);
            pthread_rwlock_wrlock(&st->st_struct_lock);
            apg_err_t rc = apg_cq_add_seg(st, q, base, err, errlen);
            pthread_rwlock_unlock(&st->st_struct_lock);
            if (rc)
                return rc;
            s = q->cq_segs[q->cq_nsegs - 1];
        }
    }
    uint8_t *p = s->sg_map + (byte - s->sg_base);
    /* Three big-endian stores (one instruction each, where byte-wise
     * stores took ~80 per entry under callgrind). */
    uint64_t be_phys = htobe64((uint64_t)phys), be_tags = htobe64((uint64_t)tags);
    uint32_t be_size = htobe32((uint32_t)size);
    memcpy(p, &be_phys, 8);
    memcpy(p + 8, &be_size, 4);
    memcpy(p + 12, &be_tags, 8);
    return APG_OK;
}

int64_t apg_cq_count_on_disk(struct apg_store *st)
{
    int64_t n = 0;
    pthread_rwlock_rdlock(&st->st_struct_lock);
    for (size_t b = 0; b < st->st_cqbuckets; b++)
        for (struct cq *q = st->st_cqmap[b]; q; q = q->cq_next)
            n += q->cq_nsegs > 0;
    pthread_rwlock_unlock(&st->st_struct_lock);
    return n;
}

/* Drops queue head segments whose entries all point below the commit log's
 * new minimum, and advances each queue's min offset. */
void apg_cq_clean(struct apg_store *st, int64_t min_phys)
{
    pthread_rwlock_wrlock(&st->st_struct_lock);
    for (size_t b = 0; b < st->st_cqbuckets; b++) {
        for (struct cq *q = st->st_cqmap[b]; q; q = q->cq_next) {
            int64_t max = atomic_load(&q->cq_max);
            int64_t lo = atomic_load(&q->cq_min);
            while (lo < max) {
                const uint8_t *e = apg_cq_entry(st, q, lo);
                if (e && (int64_t)apg_be64(e) >= min_phys)
                    break;
                lo++;
            }
            atomic_store(&q->cq_min, lo);
            while (q->cq_nsegs > 1) {
                struct seg *s = q->cq_segs[0];
                if ((s->sg_base + (int64_t)s->sg_size) / CQ_UNIT > lo)
                    break;
                apg_seg_free(s, true);
                memmove(q->cq_segs, q->cq_segs + 1,
                        (size_t)(q->cq_nsegs - 1) * sizeof(*q->cq_segs));
                q->cq_nsegs--;
            }
        }
    }
    pthread_rwlock_unlock(&st->st_struct_lock);
}

/* Loads one queue directory during open. */
static apg_err_t load_queue(struct apg_store *st, const char *topic, int32_t qid, char *err,
                            size_t errlen)
{
    struct cq *q = apg_cq_create(st, topic, strlen(topic), qid);
    if (!q)
        return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    char **names;
    int n = apg_seg_list(q->cq_dir, &names);
    int64_t fsz = (int64_t)st->st_opts.so_cq_file_size;
    apg_err_t rc = APG_OK;
    for (int i = 0; i < n && !rc; i++) {
        int64_t base = strtoll(names[i], NULL, 10);
        if (base % fsz != 0 ||
            (q->cq_nsegs && base != q->cq_segs[q->cq_nsegs - 1]->sg_base + fsz)) {
            /* A hole or a foreign size: drop the queue, recovery rebuilds it. */
            apg_log_warn(SUB, "consume queue %s: unexpected segment %s; rebuilding the queue",
                         q->cq_dir, names[i]);
            for (int j = 0; j < q->cq_nsegs; j++)
                apg_seg_free(q->cq_segs[j], true);
            q->cq_nsegs = 0;
            for (int j = i; j < n; j++) {
                char *p = apg_path_join(q->cq_dir, names[j]);
                if (p)
                    unlink(p);
                apg_free(p);
            }
            break;
        }
        rc = apg_cq_add_seg(st, q, base, err, errlen);
    }
    apg_seg_names_free(names, n);
    if (q->cq_nsegs) {
        /* max: just past the last non-zero entry of the last segment. */
        struct seg *last = q->cq_segs[q->cq_nsegs - 1];
        int64_t k = (int64_t)last->sg_size / CQ_UNIT;
        while (k > 0) {
            const uint8_t *e = last->sg_map + (k - 1) * CQ_UNIT;
            if (apg_be32(e + 8) != 0)
                break;
            k--;
        }
        int64_t max = last->sg_base / CQ_UNIT + k;
        if (k == 0 && q->cq_nsegs > 1)
            max = last->sg_base / CQ_UNIT;
        /* min: first non-zero entry of the first segment. */
        struct seg *first = q->cq_segs[0];
        int64_t min = first->sg_base / CQ_UNIT;
        while (min < max) {
            const uint8_t *e = apg_cq_entry(st, q, min);
            if (e && apg_be32(e + 8) != 0)
                break;
            min++;
        }
        atomic_store(&q->cq_max, max);
        atomic_store(&q->cq_min, min);
        q->cq_flushed = max;
    }
    return rc;
}

apg_err_t apg_cq_load_all(struct apg_store *st, char *err, size_t errlen)
{
    DIR *d = opendir(st->st_cqdir);
    if (!d)
        return APG_OK;
    struct dirent *de;
    apg_err_t rc = APG_OK;
    while (!rc && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char *td = apg_path_join(st->st_cqdir, de->d_name);
        DIR *qd = td ? opendir(td) : NULL;
        if (qd) {
            struct dirent *qe;
            while (!rc && (qe = readdir(qd))) {
                char *endp;
                long qid = strtol(qe->d_name, &endp, 10);
                if (qe->d_name[0] == '.' || *endp || qid < 0 || qid > INT32_MAX)
                    continue;
                rc = load_queue(st, de->d_name, (int32_t)qid, err, errlen);
            }
            closedir(qd);
        }
        apg_free(td);
    }
    closedir(d);
    return rc;
}

/* Removes entries pointing at or past `from` (to be redispatched) or past
 * `end` (lost), and entries below the commit log's minimum. */
static void cq_truncate(struct apg_store *st, struct cq *q, int64_t from)
{
    int64_t max = atomic_load(&q->cq_max), min = atomic_load(&q->cq_min);
    while (max > min) {
        uint8_t *e = (uint8_t *)apg_cq_entry(st, q, max - 1);
        if (!e)
            break;
        int64_t phys = (int64_t)apg_be64(e);
        if (phys < from && apg_be32(e + 8) != 0)
            break;
        memset(e, 0, CQ_UNIT);
        max--;
    }
    atomic_store(&q->cq_max, max);
    if (min > max)
        atomic_store(&q->cq_min, max);
    q->cq_flushed = 0;
}

/* The consume queue as a dispatcher (dispatch.c, struct apg_dispatcher). */

/* Recovery: one record re-read from the commit log. */
static apg_err_t cq_recover_record(struct apg_store *st, const struct apg_dispatch_rec *r,
                                   char *err, size_t errlen)
{
    if (apg_store_tx_no_cq(r->dr_sysflag))
        return APG_OK;
    struct cq *q = apg_cq_find(st, r->dr_topic, r->dr_topic_len, r->dr_queue_id);
    if (!q)
        q = apg_cq_create(st, r->dr_topic, r->dr_topic_len, r->dr_queue_id);
    if (!q)
        return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    int64_t max = atomic_load(&q->cq_max);
    if (r->dr_queue_offset < max) {
        /* Already indexed: it must point here. */
        const uint8_t *e = apg_cq_entry(st, q, r->dr_queue_offset);
        if (!e || (int64_t)apg_be64(e) != r->dr_phys)
            return APG_ECORRUPT;
        return APG_OK;
    }
    if (r->dr_queue_offset > max) {
        if (q->cq_nsegs != 0 && max != 0)
            return APG_ECORRUPT;
        /* First record seen of this queue (older ones were retired). */
        atomic_store(&q->cq_min, r->dr_queue_offset);
    }
    apg_err_t rc = apg_cq_write(st, q, r->dr_queue_offset, r->dr_phys, r->dr_size, r->dr_tags_code,
                                err, errlen);
    if (rc)
        return rc;
    atomic_store(&q->cq_max, r->dr_queue_offset + 1);
    return APG_OK;
}

apg_err_t apg_cq_dispatch_records(struct apg_store *st, const struct apg_dispatch_rec *recs, int n,
                                  bool recovering, int *done, char *err, size_t errlen)
{
    for (int i = 0; i < n; i++) {
        const struct apg_dispatch_rec *r = &recs[i];
        apg_err_t rc;
        if (recovering)
            rc = cq_recover_record(st, r, err, errlen);
        else if (r->dr_cq) /* the put path numbered it in dr_cq already */
            rc = apg_cq_write(st, r->dr_cq, r->dr_queue_offset, r->dr_phys, r->dr_size,
                              r->dr_tags_code, err, errlen);
        else
            rc = APG_OK; /* no entry (transaction PREPARED/ROLLBACK) */
        if (rc) {
            *done = i;
            return rc;
        }
    }
    *done = n;
    return APG_OK;
}

void apg_cq_dispatch_publish(struct apg_store *st, const struct apg_dispatch_rec *recs, int n)
{
    (void)st;
    for (int i = 0; i < n; i++)
        if (recs[i].dr_cq)
            atomic_store_explicit(&recs[i].dr_cq->cq_max, recs[i].dr_queue_offset + 1,
                                  memory_order_release);
}

/* msyncs every queue's entries written since its last flush. Continues with
 * the other queues after a failure; -1 if any failed. */
int apg_cq_dispatch_flush(struct apg_store *st)
{
    bool failed = false;
    pthread_rwlock_rdlock(&st->st_struct_lock);
    for (size_t b = 0; b < st->st_cqbuckets; b++) {
        for (struct cq *q = st->st_cqmap[b]; q; q = q->cq_next) {
            int64_t max = atomic_load_explicit(&q->cq_max, memory_order_acquire);
            int64_t lo =
                q->cq_flushed > atomic_load(&q->cq_min) ? q->cq_flushed : atomic_load(&q->cq_min);
            while (lo < max) {
                struct seg *s = apg_cq_seg_for(st, q, lo);
                if (!s)
                    break;
                int64_t segend = (s->sg_base + (int64_t)s->sg_size) / CQ_UNIT;
                int64_t hi = max < segend ? max : segend;
                if (apg_seg_sync(st, s, (size_t)(lo * CQ_UNIT - s->sg_base),
                                 (size_t)(hi * CQ_UNIT - s->sg_base)) != 0) {
                    failed = true;
                    break;
                }
                lo = hi;
            }
            q->cq_flushed = lo;
        }
    }
    pthread_rwlock_unlock(&st->st_struct_lock);
    return failed ? -1 : 0;
}

void apg_cq_dispatch_truncate(struct apg_store *st, int64_t from)
{
    for (size_t b = 0; b < st->st_cqbuckets; b++)
        for (struct cq *q = st->st_cqmap[b]; q; q = q->cq_next)
            cq_truncate(st, q, from);
}

static void cq_drop_all(struct apg_store *st, bool remove_files)
{
    for (size_t b = 0; b < st->st_cqbuckets; b++) {
        struct cq *q = st->st_cqmap[b], *nx;
        for (; q; q = nx) {
            nx = q->cq_next;
            apg_cq_free(q, remove_files);
        }
        st->st_cqmap[b] = NULL;
    }
    st->st_ncq = 0;
    st->st_cq_cache = NULL;
}

void apg_cq_dispatch_reset(struct apg_store *st)
{
    apg_log_warn(SUB, "rebuilding every consume queue from the commit log");
    cq_drop_all(st, true);
}

void apg_cq_dispatch_close(struct apg_store *st)
{
    cq_drop_all(st, false);
    apg_free(st->st_cqmap);
    st->st_cqmap = NULL;
    st->st_cqbuckets = 0;
}

/* The store's side of master/slave replication: raw commit-log reads for a
 * master and raw commit-log appends for a slave.
 *
 * A master streams its commit log as bytes (docs/wire.md, HA protocol), so
 * apg_store_log_read copies bytes, not records: from any offset, up to the
 * write position and never past the end of the offset's segment (so a chunk
 * of the stream never spans two segment files, as RocketMQ's master sends
 * it). The blank filler at the end of a segment goes out with the zeros
 * that follow it, up to the segment's end.
 *
 * A slave appends what its master sent with apg_store_replica_append. The
 * bytes are the master's records, byte for byte (the commit log is
 * RocketMQ's format on both sides), so nothing is re-encoded: each whole
 * record is validated (magic, lengths, body CRC, PHYSICALOFFSET equal to
 * where it lands), numbered in its consume queue by the QUEUEOFFSET it
 * carries (which must follow the queue's end), written with one pwrite per
 * batch and handed to the same dispatchers as the put path (consume queue,
 * index), then published the same way: write position first, then the
 * queues' maxima, then the arrive hook. A partial record at the end of buf
 * is left to the caller (it arrives with the next chunk). A blank filler
 * writes its 8-byte header, rolls to the next segment and swallows the
 * zeros that follow it, in this call or in later ones.
 *
 * An empty store adopts the first offset it is sent when that is a segment
 * start (rep_adopt): a new slave of a master whose first segments were
 * retired starts where the master's log starts.
 *
 * Once apg_store_set_replica(st, true) is called, apg_store_put refuses
 * every write with APG_EPERM: a slave's log holds its master's bytes only,
 * and one local record would make the two logs differ from then on.
 *
 * Threads: apg_store_log_read in any thread (shared struct lock while it
 * copies); apg_store_replica_append in one thread at a time (the slave's HA
 * thread), under the append lock like a put. */
#define _GNU_SOURCE
#include "store/store_int.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#include "common/buf.h"
#include "common/log.h"
#include "protocol/message.h"

void apg_store_set_replica(struct apg_store *st, bool replica)
{
    atomic_store(&st->st_replica, replica);
}

void apg_store_replica_progress(struct apg_store *st, int n, int64_t acked)
{
    atomic_store(&st->st_repl_slaves, n);
    int64_t old = atomic_load(&st->st_repl_acked);
    if (acked > old)
        atomic_store(&st->st_repl_acked, acked);
    if (!st->st_opts.so_sync_replica)
        return;
    /* The flush thread completes the waiters this report covers. */
    pthread_mutex_lock(&st->st_flush_mtx);
    pthread_cond_signal(&st->st_flush_cond);
    pthread_mutex_unlock(&st->st_flush_mtx);
}

int64_t apg_store_log_max_offset(const struct apg_store *st)
{
    return atomic_load_explicit(&st->st_wrote, memory_order_acquire);
}

int64_t apg_store_log_min_offset(const struct apg_store *st)
{
    return atomic_load(&st->st_min_phys);
}

apg_err_t apg_store_log_read(struct apg_store *st, int64_t from, uint8_t *out, size_t max,
                             size_t *n)
{
    *n = 0;
    int64_t wrote = atomic_load_explicit(&st->st_wrote, memory_order_acquire);
    if (from > wrote)
        return APG_ERANGE;
    if (from == wrote || max == 0)
        return APG_OK;
    pthread_rwlock_rdlock(&st->st_struct_lock);
    apg_err_t rc = APG_OK;
    struct seg *s = from >= atomic_load(&st->st_min_phys) ? apg_cl_seg_for(st, from) : NULL;
    if (!s) {
        rc = APG_ENOTFOUND;
    } else {
        int64_t end = s->sg_base + (int64_t)s->sg_size;
        if (end > wrote)
            end = wrote;
        size_t len = (size_t)(end - from);
        if (len > max)
            len = max;
        memcpy(out, s->sg_map + (from - s->sg_base), len);
        *n = len;
    }
    pthread_rwlock_unlock(&st->st_struct_lock);
    return rc;
}

#define REP_BATCH 64

/* A batch of whole records decoded from the stream, not yet written. */
struct rep_batch {
    struct apg_dispatch_rec rb_dr[REP_BATCH];
    const uint8_t *rb_start; /* first byte of the batch in the caller's buffer */
    size_t rb_len;
    int rb_n;
    int64_t rb_pos; /* commit-log offset of rb_start */
};

/* Appender: writes the batch into the current segment, dispatches and
 * publishes it. */
static apg_err_t rep_flush(struct apg_store *st, struct rep_batch *b, char *err, size_t errlen)
{
    if (b->rb_n == 0)
        return APG_OK;
    struct seg *s = st->st_cur;
    apg_warm_guard(st, b->rb_pos + (int64_t)b->rb_len);
    if (apg_seg_pwrite_all(s->sg_fd, b->rb_start, b->rb_len, (off_t)(b->rb_pos - s->sg_base)) !=
        0) {
        int e = errno;
        return apg_errf(e == ENOSPC ? APG_EDISKFULL : APG_EIO, err, errlen, "write %s: %s",
                        s->sg_path, strerror(e));
    }
    int done = b->rb_n;
    apg_err_t rc = apg_dispatch(st, b->rb_dr, b->rb_n, false, &done, err, errlen);
    int64_t end = rc ? b->rb_dr[done].dr_phys : b->rb_pos + (int64_t)b->rb_len;
    atomic_store_explicit(&st->st_wrote, end, memory_order_release);
    apg_dispatch_publish(st, b->rb_dr, done);
    if (done > 0)
        atomic_store(&st->st_last_store_ts, b->rb_dr[done - 1].dr_store_ts);
    atomic_fetch_add_explicit(&st->st_put_count, (uint64_t)done, memory_order_relaxed);
    atomic_fetch_add_explicit(&st->st_put_bytes, (uint64_t)(end - b->rb_pos), memory_order_relaxed);
    return rc;
}

/* Outside the append lock: wakes parked pulls for each queue the batch
 * touched (once per run of one queue). */
static void rep_arrive(struct apg_store *st, const struct apg_dispatch_rec *dr, int n)
{
    if (!st->st_arrive)
        return;
    for (int i = 0; i < n; i++) {
        if (!dr[i].dr_cq)
            continue;
        if (i + 1 < n && dr[i + 1].dr_cq == dr[i].dr_cq)
            continue;
        st->st_arrive(st->st_arrive_ud, dr[i].dr_topic, dr[i].dr_topic_len, dr[i].dr_queue_id,
                      dr[i].dr_queue_offset + 1);
    }
}

/* Appender: the consume queue of record r and the check that its
 * QUEUEOFFSET follows the queue's end (or the batch's earlier records). */
static apg_err_t rep_queue(struct apg_store *st, struct rep_batch *b, struct apg_dispatch_rec *dr,
                           char *err, size_t errlen)
{
    dr->dr_cq = NULL;
    if (apg_store_tx_no_cq(dr->dr_sysflag))
        return APG_OK;
    pthread_rwlock_rdlock(&st->st_struct_lock);
    struct cq *q = apg_cq_find(st, dr->dr_topic, dr->dr_topic_len, dr->dr_queue_id);
    pthread_rwlock_unlock(&st->st_struct_lock);
    if (!q) {
        pthread_rwlock_wrlock(&st->st_struct_lock);
        q = apg_cq_create(st, dr->dr_topic, dr->dr_topic_len, dr->dr_queue_id);
        pthread_rwlock_unlock(&st->st_struct_lock);
        if (!q)
            return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    }
    int64_t want = atomic_load_explicit(&q->cq_max, memory_order_relaxed);
    for (int j = b->rb_n - 1; j >= 0; j--)
        if (b->rb_dr[j].dr_cq == q) {
            want = b->rb_dr[j].dr_queue_offset + 1;
            break;
        }
    if (dr->dr_queue_offset != want) {
        if (want != 0 || q->cq_nsegs != 0)
            return apg_errf(APG_ECORRUPT, err, errlen,
                            "record at offset %lld has queue offset %lld in %.*s:%d, where this "
                            "store's queue ends at %lld",
                            (long long)dr->dr_phys, (long long)dr->dr_queue_offset,
                            (int)dr->dr_topic_len, dr->dr_topic, dr->dr_queue_id, (long long)want);
        /* A queue this store starts in the middle (older records retired
         * on the master before this slave began). */
        atomic_store(&q->cq_min, dr->dr_queue_offset);
    }
    dr->dr_cq = q;
    return APG_OK;
}

/* Appender: an empty store (one empty segment, no queue) starts its log at
 * `at`, where its master's log now starts (older segments retired). The
 * empty segment file goes and the one at `at` is created; RocketMQ's slave
 * likewise creates its first file where the master's stream begins. */
static apg_err_t rep_adopt(struct apg_store *st, int64_t at, char *err, size_t errlen)
{
    int64_t fsz = (int64_t)st->st_opts.so_commitlog_file_size;
    if (at % fsz != 0)
        return apg_errf(APG_ERANGE, err, errlen,
                        "master sent bytes at offset %lld to an empty slave, not at a segment "
                        "start (mappedFileSizeCommitLog=%lld): are the segment sizes the same?",
                        (long long)at, (long long)fsz);
    pthread_rwlock_wrlock(&st->st_struct_lock);
    struct seg *old = st->st_segs[0];
    st->st_nsegs = 0;
    st->st_cur = NULL;
    pthread_rwlock_unlock(&st->st_struct_lock);
    atomic_store(&st->st_min_phys, at);
    atomic_store(&st->st_flushed, at);
    atomic_store(&st->st_warmed, at);
    atomic_store_explicit(&st->st_wrote, at, memory_order_release);
    apg_err_t rc = apg_cl_roll(st, at, err, errlen);
    apg_seg_free(old, true);
    if (!rc)
        apg_log_info(SUB, "empty commit log now starts at offset %lld, where the master's does",
                     (long long)at);
    return rc;
}

apg_err_t apg_store_replica_append(struct apg_store *st, int64_t at, const uint8_t *buf, size_t len,
                                   size_t *used, char *err, size_t errlen)
{
    *used = 0;
    int64_t fsz = (int64_t)st->st_opts.so_commitlog_file_size;
    struct rep_batch b;
    b.rb_n = 0;
    struct apg_dispatch_rec arrived[REP_BATCH];
    apg_err_t rc = APG_OK;
    size_t off = 0;
    pthread_mutex_lock(&st->st_append_mtx);
    if ((rc = apg_store_write_refused(st, err, errlen)))
        goto unlock;
    if (atomic_load(&st->st_disk_full)) {
        rc = apg_errf(APG_EDISKFULL, err, errlen,
                      "disk of %s is %d%% used, above diskSpaceWarningLevelRatio=%d", st->st_cldir,
                      atomic_load(&st->st_disk_ratio), st->st_opts.so_disk_warning_ratio);
        goto unlock;
    }
    int64_t pos = atomic_load_explicit(&st->st_wrote, memory_order_relaxed);
    struct seg *s = st->st_cur;
    if (at < pos) {
        /* The zeros after a blank filler, when the filler's header was
         * written and the log has already rolled to the next segment. */
        if (s && pos == s->sg_base && at >= s->sg_base - fsz) {
            size_t take = (size_t)(s->sg_base - at);
            *used = take < len ? take : len;
            goto unlock;
        }
        rc = apg_errf(APG_ERANGE, err, errlen,
                      "master sent bytes at offset %lld, below this store's end %lld",
                      (long long)at, (long long)pos);
        goto unlock;
    }
    bool empty = s && st->st_nsegs == 1 && s == st->st_segs[0] && pos == s->sg_base &&
                 pos == atomic_load(&st->st_min_phys) && st->st_ncq == 0;
    if (at > pos && empty) {
        if ((rc = rep_adopt(st, at, err, errlen)))
            goto unlock;
        pos = at;
        s = st->st_cur;
    } else if (at > pos) {
        rc = apg_errf(APG_ERANGE, err, errlen,
                      "master sent bytes at offset %lld, past this store's end %lld (a gap)",
                      (long long)at, (long long)pos);
        goto unlock;
    }
    b.rb_n = 0;
    b.rb_start = buf;
    b.rb_len = 0;
    b.rb_pos = pos;
    while (off < len) {
        size_t rem = len - off;
        const uint8_t *p = buf + off;
        if (rem < 8)
            break;
        uint32_t total = apg_be32(p);
        uint32_t magic = apg_be32(p + 4);
        int64_t segend = s->sg_base + fsz;
        if (magic == APG_MSGREC_MAGIC_BLANK) {
            if (pos + (int64_t)total != segend) {
                rc = apg_errf(APG_ECORRUPT, err, errlen,
                              "blank filler at offset %lld of %u bytes does not end at this "
                              "store's segment end %lld: do master and slave have the same "
                              "mappedFileSizeCommitLog?",
                              (long long)pos, total, (long long)segend);
                break;
            }
            rc = rep_flush(st, &b, err, errlen);
            if (rc)
                break;
            int n_before = b.rb_n;
            memcpy(arrived, b.rb_dr, sizeof(b.rb_dr[0]) * (size_t)n_before);
            b.rb_n = 0;
            if (apg_seg_pwrite_all(s->sg_fd, p, APG_MSGREC_BLANK_LEN, (off_t)(pos - s->sg_base)) !=
                0) {
                rc = apg_errf(APG_EIO, err, errlen, "write %s: %s", s->sg_path, strerror(errno));
                break;
            }
            rc = apg_cl_roll(st, segend, err, errlen);
            if (rc)
                break;
            atomic_store_explicit(&st->st_wrote, segend, memory_order_release);
            off += rem < total ? rem : total;
            pthread_mutex_unlock(&st->st_append_mtx);
            rep_arrive(st, arrived, n_before);
            *used = off;
            return APG_OK;
        }
        if (total > rem) {
            if (total > st->st_opts.so_max_message_size + 65536u + 32768u || total < 40) {
                rc = apg_errf(APG_ECORRUPT, err, errlen,
                              "record at offset %lld claims %u bytes: not a record this store "
                              "takes (maxMessageSize=%u)",
                              (long long)pos, total, st->st_opts.so_max_message_size);
                break;
            }
            break; /* the rest arrives with the next chunk */
        }
        struct apg_msgrec r;
        const char *why = NULL;
        if (apg_msgrec_decode(p, rem, true, &r, &why) != APG_MSGREC_OK) {
            rc = apg_errf(APG_ECORRUPT, err, errlen, "bad record at offset %lld: %s",
                          (long long)pos, why ? why : "not a record");
            break;
        }
        if (r.mr_phys_offset != pos) {
            rc = apg_errf(APG_ECORRUPT, err, errlen,
                          "record at offset %lld says it belongs at %lld (PHYSICALOFFSET)",
                          (long long)pos, (long long)r.mr_phys_offset);
            break;
        }
        if (pos + (int64_t)total + APG_MSGREC_BLANK_LEN > segend) {
            rc = apg_errf(APG_ECORRUPT, err, errlen,
                          "record at offset %lld crosses this store's segment end %lld: do "
                          "master and slave have the same mappedFileSizeCommitLog?",
                          (long long)pos, (long long)segend);
            break;
        }
        struct apg_dispatch_rec *dr = &b.rb_dr[b.rb_n];
        dr->dr_topic = r.mr_topic;
        dr->dr_topic_len = r.mr_topic_len;
        dr->dr_queue_id = r.mr_queue_id;
        dr->dr_sysflag = r.mr_sysflag;
        dr->dr_phys = pos;
        dr->dr_size = (int32_t)total;
        dr->dr_queue_offset = r.mr_queue_offset;
        dr->dr_tags_code = apg_dispatch_sched_tags(
            st, r.mr_topic, r.mr_topic_len, r.mr_props, r.mr_props_len, r.mr_store_ts,
            apg_dispatch_tags_code(r.mr_props, r.mr_props_len));
        dr->dr_store_ts = r.mr_store_ts;
        dr->dr_props = r.mr_props;
        dr->dr_props_len = r.mr_props_len;
        rc = rep_queue(st, &b, dr, err, errlen);
        if (rc)
            break;
        b.rb_n++;
        b.rb_len += total;
        off += total;
        pos += total;
        if (b.rb_n == REP_BATCH)
            break; /* the caller calls again for the rest */
    }
    {
        apg_err_t frc = rep_flush(st, &b, err, errlen);
        if (!rc)
            rc = frc;
        if (frc) /* what rep_flush published, if anything */
            off = (size_t)(atomic_load(&st->st_wrote) - at);
    }
unlock:
    pthread_mutex_unlock(&st->st_append_mtx);
    if (off > 0) {
        *used = off;
        rep_arrive(st, b.rb_dr, b.rb_n);
    }
    return rc;
}

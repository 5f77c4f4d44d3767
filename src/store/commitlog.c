/* The commit log's segment array and the put path.
 *
 * apg_store_put runs in the caller's thread: it validates the messages and
 * computes their body CRCs outside any lock, then under st_append_mtx picks
 * the consume queue of each record, encodes the records into one buffer,
 * writes them with a single pwrite into the current segment (rolling to the
 * next, preallocated one when the batch does not fit, after a blank filler
 * record), hands the batch to the dispatchers (dispatch.c: the consume-queue
 * entries), publishes the new write position with a release store and then
 * lets the dispatchers publish (the queue maxima). Numbering records in their
 * queue (QUEUEOFFSET is a field of the record) happens here, before encoding.
 * Under SYNC_FLUSH the put queues a waiter for the flush thread (flush.c).
 *
 * Invariant: the records of one batch are contiguous in one segment, and a
 * queue's entries are published only after the records they point to. No
 * allocation for batches of up to PUT_STACK records of PUT_BUF bytes in all,
 * except the SYNC_FLUSH waiter. */
#define _GNU_SOURCE
#include "store/store_int.h"

#include <errno.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/hash.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"
#include "protocol/message.h"

/* Caller holds the struct lock (any mode). */
struct seg *apg_cl_seg_for(struct apg_store *st, int64_t off)
{
    if (!st->st_nsegs)
        return NULL;
    int64_t first = st->st_segs[0]->sg_base;
    if (off < first)
        return NULL;
    int64_t idx = (off - first) / (int64_t)st->st_opts.so_commitlog_file_size;
    if (idx >= st->st_nsegs)
        return NULL;
    return st->st_segs[idx];
}

apg_err_t apg_cl_push_seg(struct apg_store *st, struct seg *s)
{
    pthread_rwlock_wrlock(&st->st_struct_lock);
    if (st->st_nsegs == st->st_capsegs) {
        int nc = st->st_capsegs ? st->st_capsegs * 2 : 16;
        struct seg **ns = apg_realloc(st->st_segs, (size_t)nc * sizeof(*ns));
        if (!ns) {
            pthread_rwlock_unlock(&st->st_struct_lock);
            return APG_ENOMEM;
        }
        st->st_segs = ns;
        st->st_capsegs = nc;
    }
    st->st_segs[st->st_nsegs++] = s;
    pthread_rwlock_unlock(&st->st_struct_lock);
    return APG_OK;
}

/* Appender: makes the segment starting at `base` current, taking the
 * preallocated one when it is ready. */
apg_err_t apg_cl_roll(struct apg_store *st, int64_t base, char *err, size_t errlen)
{
    struct seg *s = NULL;
    /* Holding st_prealloc_mtx while creating keeps the preallocator (which
     * holds it while warming a file) from touching a segment in use. */
    pthread_mutex_lock(&st->st_prealloc_mtx);
    if (st->st_next && st->st_next->sg_base == base) {
        s = st->st_next;
        st->st_next = NULL;
    }
    if (!s && st->st_next) {
        apg_seg_free(st->st_next, false);
        st->st_next = NULL;
    }
    if (!s)
        s = apg_seg_open(st->st_cldir, base, st->st_opts.so_commitlog_file_size, true, false, err,
                         errlen);
    if (!s) {
        pthread_mutex_unlock(&st->st_prealloc_mtx);
        return APG_EIO;
    }
    apg_err_t rc = apg_cl_push_seg(st, s);
    if (rc) {
        pthread_mutex_unlock(&st->st_prealloc_mtx);
        apg_seg_free(s, true);
        return apg_errf(rc, err, errlen, "out of memory");
    }
    st->st_cur = s;
    st->st_cur_base = base;
    st->st_next_wanted = true;
    pthread_cond_signal(&st->st_prealloc_cond);
    pthread_mutex_unlock(&st->st_prealloc_mtx);
    return APG_OK;
}

/* Appender, after a failed put: overwrites bytes [from, to) of the log that
 * were written but will not be published with zeros, so that neither a later
 * recovery nor check-store takes them for records past the end (a stale but
 * valid record after a clean stop would be re-indexed; a partial one would
 * read as a torn tail). Overwriting written blocks needs no new space; the
 * write stops at the first block that was never written (ENOSPC there is
 * expected and harmless). Best effort. */
static void unwrite(struct seg *s, int64_t from, int64_t to)
{
    if (to <= from)
        return;
    int fd = apg_seg_zero(s, (size_t)(from - s->sg_base), (size_t)(to - s->sg_base));
    if (fd >= 0)
        close(fd);
}

void apg_store_set_arrive_hook(struct apg_store *st, apg_store_arrive_fn fn, void *ud)
{
    st->st_arrive = fn;
    st->st_arrive_ud = ud;
}

static void sync_wait_cb(void *ud, apg_err_t rc)
{
    struct sync_wait *sw = ud;
    sw->sw_rc = rc;
    atomic_store_explicit(&sw->sw_done, 1, memory_order_release);
    /* The waiter may already have seen sw_done and returned: a wake-up on
     * its old stack address is harmless (private futex, nobody waits on it
     * or a spurious wake-up that every futex waiter tolerates). */
    syscall(SYS_futex, &sw->sw_done, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

#define PUT_STACK 64

#define PUT_BUF 16384 /* records up to this size are encoded on the stack */

apg_err_t apg_store_put(struct apg_store *st, const struct apg_msg_in *msgs, int n,
                        struct apg_put_result *res, apg_store_ack_fn ack_cb, void *ud, char *err,
                        size_t errlen)
{
    if (n <= 0 || !msgs || !res)
        return apg_errf(APG_EINVAL, err, errlen, "no messages");
    const struct apg_host *sh = &st->st_opts.so_store_host;
    int64_t fsz = (int64_t)st->st_opts.so_commitlog_file_size;
    int32_t crc_stack[PUT_STACK], *crcs = crc_stack;
    struct apg_dispatch_rec dr_stack[PUT_STACK], *drs = dr_stack;
    uint8_t rec_stack[PUT_BUF], *recs = rec_stack;
    if (n > PUT_STACK) {
        crcs = apg_malloc((size_t)n * sizeof(*crcs));
        drs = apg_malloc((size_t)n * sizeof(*drs));
        if (!crcs || !drs) {
            apg_free(crcs);
            apg_free(drs);
            return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
        }
    }
    int64_t total = 0;
    apg_err_t rc = APG_OK;
    for (int i = 0; i < n; i++) {
        const struct apg_msg_in *m = &msgs[i];
        if (m->mi_topic_len < 1 || m->mi_topic_len > 127 || !m->mi_topic) {
            rc = apg_errf(APG_EINVAL, err, errlen, "message %d: topic length %zu not in 1..127", i,
                          m->mi_topic_len);
            goto out;
        }
        if (m->mi_body_len > st->st_opts.so_max_message_size) {
            rc = apg_errf(APG_ETOOBIG, err, errlen,
                          "message %d: body of %zu bytes exceeds maxMessageSize=%u", i,
                          m->mi_body_len, st->st_opts.so_max_message_size);
            goto out;
        }
        if (m->mi_props_len > 32767) {
            rc = apg_errf(APG_ETOOBIG, err, errlen,
                          "message %d: properties of %zu bytes exceed 32767", i, m->mi_props_len);
            goto out;
        }
        if (m->mi_queue_id < 0) {
            rc = apg_errf(APG_EINVAL, err, errlen, "message %d: negative queue id", i);
            goto out;
        }
        res[i].pr_msg_size = (int32_t)apg_msgrec_size(m, sh->h_v6);
        total += res[i].pr_msg_size;
        crcs[i] = apg_rmq_crc32(m->mi_body, m->mi_body_len);
    }
    if (total + APG_MSGREC_BLANK_LEN > fsz) {
        rc = apg_errf(APG_ETOOBIG, err, errlen,
                      "batch of %lld bytes does not fit a commit log segment of %lld bytes "
                      "(mappedFileSizeCommitLog)",
                      (long long)total, (long long)fsz);
        goto out;
    }
    if (total > PUT_BUF) {
        recs = apg_malloc((size_t)total);
        if (!recs) {
            rc = apg_errf(APG_ENOMEM, err, errlen, "out of memory");
            goto out;
        }
    }
    struct waiter *w = NULL;
    struct sync_wait sw;
    /* SYNC_MASTER waits only where someone answers later (ack_cb). */
    bool repl = st->st_opts.so_sync_replica && ack_cb;
    bool sync = st->st_opts.so_sync_flush || repl;
    if (sync) {
        w = apg_malloc(sizeof(*w));
        if (!w) {
            rc = apg_errf(APG_ENOMEM, err, errlen, "out of memory");
            goto out;
        }
        if (!ack_cb) {
            atomic_init(&sw.sw_done, 0);
            sw.sw_rc = 0;
            w->w_cb = sync_wait_cb;
            w->w_ud = &sw;
        } else {
            w->w_cb = ack_cb;
            w->w_ud = ud;
        }
        w->w_next = NULL;
        w->w_deadline_ms = apg_mono_ms() + st->st_opts.so_sync_flush_timeout_ms;
        w->w_repl = repl;
        w->w_noslave = false;
    }

    bool wake_flusher = false;
    pthread_mutex_lock(&st->st_append_mtx);
    atomic_store_explicit(&st->st_put_since_ms, apg_mono_ms(), memory_order_relaxed);
    apg_store_fault_put_stall(st);
    if ((rc = apg_store_write_refused(st, err, errlen)))
        goto unlock;
    if (atomic_load(&st->st_replica)) {
        rc = apg_errf(APG_EPERM, err, errlen,
                      "this store is a slave's: it takes records from its master only");
        goto unlock;
    }
    int64_t pos = atomic_load_explicit(&st->st_wrote, memory_order_relaxed);
    /* Free space as of the last disk check, less what was written since. */
    int64_t room = atomic_load(&st->st_free_at_check);
    if (room != INT64_MAX)
        room -= pos - atomic_load(&st->st_wrote_at_check);
    int64_t reserve = apg_store_reserve_bytes(st);
    if (room < reserve + (int64_t)total + APG_MSGREC_BLANK_LEN) {
        rc = apg_errf(APG_EDISKFULL, err, errlen,
                      "disk of %s has about %lld KiB free, not more than the %lld KiB kept in "
                      "reserve: writes refused until space frees",
                      st->st_cldir, (long long)(room > 0 ? room >> 10 : 0),
                      (long long)(reserve >> 10));
        goto unlock;
    }
    if (atomic_load(&st->st_disk_full)) {
        rc = apg_errf(APG_EDISKFULL, err, errlen,
                      "disk of %s is %d%% used, above diskSpaceWarningLevelRatio=%d: writes "
                      "refused until space frees (free disk space or raise "
                      "diskSpaceWarningLevelRatio)",
                      st->st_cldir, atomic_load(&st->st_disk_ratio),
                      st->st_opts.so_disk_warning_ratio);
        goto unlock;
    }
    struct seg *s = st->st_cur;
    if (!s || pos + total + APG_MSGREC_BLANK_LEN > s->sg_base + fsz) {
        int64_t next = s ? s->sg_base + fsz : pos;
        apg_warm_guard(st, next + total);
        if (s && pos < next) {
            uint8_t blank[APG_MSGREC_BLANK_LEN];
            apg_wbe32(blank, (uint32_t)(next - pos));
            apg_wbe32(blank + 4, APG_MSGREC_MAGIC_BLANK);
            if (apg_seg_pwrite_all(s->sg_fd, blank, sizeof(blank), (off_t)(pos - s->sg_base)) !=
                0) {
                rc = apg_errf(APG_EIO, err, errlen, "write %s: %s", s->sg_path, strerror(errno));
                goto unlock;
            }
        }
        rc = apg_cl_roll(st, next, err, errlen);
        if (rc)
            goto unlock;
        s = st->st_cur;
        pos = next;
        atomic_store_explicit(&st->st_wrote, pos, memory_order_release);
    } else {
        apg_warm_guard(st, pos + total);
    }
    /* Encode every record into recs, then write them with one pwrite: the
     * commit log is written through the file, not the mapping (no page
     * faults, no write-protect faults after each writeback; readers still
     * read the same page cache through the mapping). */
    int64_t ts = apg_wall_ms();
    size_t boff = 0;
    for (int i = 0; i < n; i++) {
        const struct apg_msg_in *m = &msgs[i];
        struct cq *q = st->st_cq_cache;
        bool nocq = apg_store_tx_no_cq(m->mi_sysflag);
        struct apg_dispatch_rec *dr = &drs[i];
        dr->dr_cq = NULL;
        if (!nocq && (!q || q->cq_qid != m->mi_queue_id || q->cq_topic_len != m->mi_topic_len ||
                      memcmp(q->cq_topic, m->mi_topic, m->mi_topic_len) != 0)) {
            pthread_rwlock_rdlock(&st->st_struct_lock);
            q = apg_cq_find(st, m->mi_topic, m->mi_topic_len, m->mi_queue_id);
            pthread_rwlock_unlock(&st->st_struct_lock);
            if (!q) {
                pthread_rwlock_wrlock(&st->st_struct_lock);
                q = apg_cq_create(st, m->mi_topic, m->mi_topic_len, m->mi_queue_id);
                pthread_rwlock_unlock(&st->st_struct_lock);
                if (!q) {
                    rc = apg_errf(APG_ENOMEM, err, errlen, "out of memory");
                    goto unlock; /* nothing written */
                }
            }
            st->st_cq_cache = q;
        }
        int64_t qoff = 0;
        if (!nocq) {
            /* Next offset of q: after the batch's previous record for q, if any. */
            qoff = atomic_load_explicit(&q->cq_max, memory_order_relaxed);
            for (int j = i - 1; j >= 0; j--)
                if (drs[j].dr_cq == q) {
                    qoff = res[j].pr_queue_offset + 1;
                    break;
                }
            dr->dr_cq = q;
        }
        apg_msgrec_encode(recs + boff, m, crcs[i], qoff, pos + (int64_t)boff, ts, sh);
        res[i].pr_phys_offset = pos + (int64_t)boff;
        res[i].pr_queue_offset = qoff;
        res[i].pr_store_ts = ts;
        dr->dr_topic = m->mi_topic;
        dr->dr_topic_len = m->mi_topic_len;
        dr->dr_queue_id = m->mi_queue_id;
        dr->dr_sysflag = m->mi_sysflag;
        dr->dr_phys = res[i].pr_phys_offset;
        dr->dr_size = res[i].pr_msg_size;
        dr->dr_queue_offset = qoff;
        dr->dr_tags_code = apg_dispatch_sched_tags(st, m->mi_topic, m->mi_topic_len, m->mi_props,
                                                   m->mi_props_len, ts, m->mi_tags_code);
        dr->dr_store_ts = ts;
        dr->dr_props = m->mi_props;
        dr->dr_props_len = m->mi_props_len;
        boff += (size_t)res[i].pr_msg_size;
    }
    if (apg_seg_pwrite_all(s->sg_fd, recs, boff, (off_t)(pos - s->sg_base)) != 0) {
        int e = errno;
        rc = apg_errf(e == ENOSPC ? APG_EDISKFULL : APG_EIO, err, errlen, "write %s: %s",
                      s->sg_path, strerror(e));
        unwrite(s, pos, pos + (int64_t)boff); /* not published */
        goto unlock;
    }
    int64_t end = pos + (int64_t)boff;
    int indexed = n;
    rc = apg_dispatch(st, drs, n, false, &indexed, err, errlen);
    if (rc) {
        /* Only out-of-memory / queue file creation can fail here. The
         * records dispatched so far stay (they are valid); the rest is not
         * published. Report the failure for the whole batch. */
        apg_log_error(SUB, "append failed midway: %s", err ? err : apg_strerror(rc));
        end = res[indexed].pr_phys_offset;
        unwrite(s, end, pos + (int64_t)boff);
    }
    /* Publish the records before the derived data that points at them: a
     * reader that sees a queue's new maximum must find the record below
     * st_wrote, or it would take the entry for a removed one. */
    atomic_store_explicit(&st->st_wrote, end, memory_order_release);
    apg_dispatch_publish(st, drs, indexed);
    pos = end;
    atomic_store(&st->st_last_store_ts, ts);
    if (!rc && sync) {
        w->w_target = pos;
        /* RocketMQ's isSlaveOK: a slave connected, at most haMaxGapNotInSync behind. */
        if (repl)
            w->w_noslave = atomic_load(&st->st_repl_slaves) <= 0 ||
                           pos - atomic_load(&st->st_repl_acked) > st->st_opts.so_repl_max_gap;
        *st->st_pend_tailp = w;
        st->st_pend_tailp = &w->w_next;
        atomic_fetch_add(&st->st_pend_count, 1);
        w = NULL;
        wake_flusher = true;
    }
unlock:
    atomic_store_explicit(&st->st_put_since_ms, 0, memory_order_relaxed);
    pthread_mutex_unlock(&st->st_append_mtx);
    /* Wake the flush thread only if it sleeps (it re-checks st_pend_count
     * after announcing st_flush_sleeping, so no wake-up is lost). */
    if (wake_flusher && atomic_load(&st->st_flush_sleeping)) {
        pthread_mutex_lock(&st->st_flush_mtx);
        pthread_cond_signal(&st->st_flush_cond);
        pthread_mutex_unlock(&st->st_flush_mtx);
    }
    if (rc) {
        apg_free(w);
        goto out;
    }
    atomic_fetch_add_explicit(&st->st_put_count, (uint64_t)n, memory_order_relaxed);
    atomic_fetch_add_explicit(&st->st_put_bytes, (uint64_t)total, memory_order_relaxed);
    if (st->st_arrive) {
        for (int i = 0; i < n; i++) {
            const struct apg_msg_in *m = &msgs[i];
            if (apg_store_tx_no_cq(m->mi_sysflag))
                continue;
            if (i + 1 < n && msgs[i + 1].mi_queue_id == m->mi_queue_id &&
                msgs[i + 1].mi_topic_len == m->mi_topic_len &&
                memcmp(msgs[i + 1].mi_topic, m->mi_topic, m->mi_topic_len) == 0)
                continue;
            st->st_arrive(st->st_arrive_ud, m->mi_topic, m->mi_topic_len, m->mi_queue_id,
                          res[i].pr_queue_offset + 1);
        }
    }
    if (sync && !ack_cb) {
        while (!atomic_load_explicit(&sw.sw_done, memory_order_acquire))
            syscall(SYS_futex, &sw.sw_done, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
        rc = sw.sw_rc;
        if (rc)
            apg_errf(rc, err, errlen, "%s",
                     rc == APG_ETIMEDOUT ? "flush to disk timed out (syncFlushTimeout)"
                                         : "fsync failed; the store is read-only");
    }
out:
    if (crcs != crc_stack) {
        apg_free(crcs);
        apg_free(drs);
    }
    if (recs != rec_stack)
        apg_free(recs);
    return rc;
}

int64_t apg_store_put_stall_ms(const struct apg_store *st)
{
    int64_t since = atomic_load_explicit(&st->st_put_since_ms, memory_order_relaxed);
    if (since == 0)
        return 0;
    int64_t d = apg_mono_ms() - since;
    return d > 0 ? d : 0;
}

/* Flushing, group commit and acknowledgements.
 *
 * ASYNC_FLUSH: apg_flush_async_main wakes every flushIntervalCommitLog and
 * msyncs what was written since. SYNC_FLUSH: apg_flush_sync_main (NFLUSHERS
 * threads) claims the range written since the last claim and syncs it while
 * appenders keep writing; every waiter whose bytes lie below the new durable
 * point is completed by that one sync (group commit) and handed, in offset
 * order, to the ack thread (apg_flush_ack_main), which runs the callbacks so
 * the next sync can start at once. Waiters that outlive syncFlushTimeout get
 * APG_ETIMEDOUT; after one failed sync every waiter gets APG_EFSYNC and the
 * store stops acknowledging.
 *
 * SYNC_MASTER (so_sync_replica): a waiter also needs a slave's report past
 * its bytes (st_repl_acked, set by apg_store_replica_progress, which wakes
 * this thread), unless no slave was in sync when it was appended
 * (APG_ENOSLAVE); past its deadline it gets APG_ESLAVETIMEOUT. Under
 * ASYNC_FLUSH such waiters are the only ones and the flush does not hold
 * them.
 *
 * About once a second the consume queues are msynced and the checkpoint
 * written (apg_flush_checkpoint). */
#define _GNU_SOURCE
#include "store/store_int.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"

/* Flushes the commit log up to the current write position. Flush thread or
 * close. Returns 0, or -1 after marking the store failed. */
static int cl_sync_range(struct apg_store *st, int64_t from, int64_t target)
{
    int64_t fsz = (int64_t)st->st_opts.so_commitlog_file_size;
    int64_t pos = from;
    apg_store_fault_flush_stall(st);
    while (pos < target) {
        pthread_rwlock_rdlock(&st->st_struct_lock);
        struct seg *s = apg_cl_seg_for(st, pos);
        int rc = 0;
        int64_t end = s ? s->sg_base + fsz : target;
        if (end > target)
            end = target;
        if (s)
            rc = apg_seg_sync(st, s, (size_t)(pos - s->sg_base), (size_t)(end - s->sg_base));
        pthread_rwlock_unlock(&st->st_struct_lock);
        if (rc != 0) {
            char msg[256];
            snprintf(msg, sizeof(msg),
                     "commit log flush failed at offset %lld: %s; the store no longer "
                     "acknowledges writes (restart to recover)",
                     (long long)pos, strerror(errno));
            apg_log_error(SUB, "%s", msg);
            apg_store_set_last_error(st, msg);
            atomic_store(&st->st_fsync_failed, true);
            return -1;
        }
        pos = end;
    }
    return 0;
}

int apg_cl_flush(struct apg_store *st)
{
    int64_t target = atomic_load_explicit(&st->st_wrote, memory_order_acquire);
    int64_t from = atomic_load(&st->st_flushed);
    if (target <= from)
        return 0;
    if (cl_sync_range(st, from, target) != 0)
        return -1;
    atomic_store(&st->st_flushed, target);
    return 0;
}

/* Flushes every queue's new entries, then writes a checkpoint. */
void apg_flush_checkpoint(struct apg_store *st, bool clean)
{
    int64_t snap = atomic_load_explicit(&st->st_wrote, memory_order_acquire);
    bool failed = apg_dispatch_flush(st) != 0;
    int64_t nq = apg_cq_count_on_disk(st);
    if (failed) {
        apg_log_error(SUB, "consume queue flush failed: %s", strerror(errno));
        apg_store_set_last_error(
            st, "consume queue flush failed; the store no longer acknowledges writes");
        atomic_store(&st->st_fsync_failed, true);
        return;
    }
    int64_t fl = atomic_load(&st->st_flushed);
    int64_t cq_phys = snap < fl ? snap : fl;
    if (apg_ckpt_write(st, clean, fl, cq_phys, nq) != 0)
        apg_log_warn(SUB, "writing the checkpoint failed: %s", strerror(errno));
    st->st_last_ckpt_ms = apg_mono_ms();
}

/* The flush thread is latency-critical under SYNC_FLUSH: every appender waits
 * on it, and on a small machine it competes for a CPU with the appenders it
 * just woke. Raise its priority if allowed (best effort, silently). */
static void flush_thread_boost(void)
{
    pid_t tid = (pid_t)syscall(SYS_gettid);
    if (setpriority(PRIO_PROCESS, (id_t)tid, -10) != 0)
        apg_log_debug(SUB, "flush thread keeps normal priority: %s", strerror(errno));
}

/* Completes waiters: durable ones with 0, all with rc_all when failed, and
 * expired ones with APG_ETIMEDOUT. Flush thread. */
void apg_flush_complete_waiters(struct apg_store *st, bool draining)
{
    int64_t fl = atomic_load(&st->st_flushed);
    bool failed = atomic_load(&st->st_fsync_failed);
    int64_t now = apg_mono_ms();
    /* Take the newly queued waiters (a pointer swap under the append lock). */
    pthread_mutex_lock(&st->st_append_mtx);
    struct waiter *nw = st->st_pend_head, **ntail = st->st_pend_tailp;
    st->st_pend_head = NULL;
    st->st_pend_tailp = &st->st_pend_head;
    atomic_store(&st->st_pend_count, 0);
    pthread_mutex_unlock(&st->st_append_mtx);
    if (nw) {
        *st->st_carry_tailp = nw;
        st->st_carry_tailp = ntail;
    }
    /* Waiters are in offset order: complete from the front. Under
     * ASYNC_FLUSH only SYNC_MASTER waiters exist and the flush does not
     * hold them; a SYNC_MASTER waiter also needs a slave's report past its
     * bytes, unless no slave was in sync at put time or the store closes. */
    if (!st->st_opts.so_sync_flush)
        fl = INT64_MAX;
    int64_t acked = atomic_load(&st->st_repl_acked);
    struct waiter *done = st->st_carry_head, **dt = &st->st_carry_head, *w;
    while ((w = *dt) && (failed ||
                         (w->w_target <= fl &&
                          (!w->w_repl || w->w_noslave || draining || w->w_target <= acked)) ||
                         (!draining && now >= w->w_deadline_ms)))
        dt = &w->w_next;
    if (dt == &st->st_carry_head)
        return;
    st->st_carry_head = *dt;
    if (!st->st_carry_head)
        st->st_carry_tailp = &st->st_carry_head;
    *dt = NULL;
    if (!done)
        return;
    for (w = done; w; w = w->w_next)
        w->w_rc = failed                ? APG_EFSYNC
                  : w->w_target > fl    ? APG_ETIMEDOUT
                  : !w->w_repl          ? APG_OK
                  : w->w_noslave        ? APG_ENOSLAVE
                  : w->w_target > acked ? APG_ESLAVETIMEOUT
                                        : APG_OK;
    pthread_mutex_lock(&st->st_ack_mtx);
    *st->st_ack_tailp = done;
    st->st_ack_tailp = dt;
    pthread_mutex_unlock(&st->st_ack_mtx);
    /* Signalled after unlocking, so the woken ack thread does not block at
     * once on the mutex still held here. */
    pthread_cond_signal(&st->st_ack_cond);
}

/* Ack thread: delivers SYNC_FLUSH outcomes in order. */
void *apg_flush_ack_main(void *arg)
{
    struct apg_store *st = arg;
    flush_thread_boost();
    pthread_mutex_lock(&st->st_ack_mtx);
    for (;;) {
        while (!st->st_ack_head && !st->st_ack_stop)
            pthread_cond_wait(&st->st_ack_cond, &st->st_ack_mtx);
        struct waiter *w = st->st_ack_head;
        if (!w && st->st_ack_stop)
            break;
        st->st_ack_head = NULL;
        st->st_ack_tailp = &st->st_ack_head;
        pthread_mutex_unlock(&st->st_ack_mtx);
        while (w) {
            struct waiter *nx = w->w_next;
            w->w_cb(w->w_ud, w->w_rc);
            apg_free(w);
            w = nx;
        }
        pthread_mutex_lock(&st->st_ack_mtx);
    }
    pthread_mutex_unlock(&st->st_ack_mtx);
    return NULL;
}

void *apg_flush_async_main(void *arg)
{
    struct apg_store *st = arg;
    if (st->st_opts.so_sync_flush)
        flush_thread_boost();
    bool sync = st->st_opts.so_sync_flush;
    /* SYNC_MASTER under ASYNC_FLUSH: waiters wait for slaves, not for this
     * thread's flush; it completes them when woken (a put, a slave's
     * report) and every 10 ms while any wait (timeouts), and still flushes
     * only every flushIntervalCommitLog. */
    bool repl = st->st_opts.so_sync_replica && !sync;
    int interval = st->st_opts.so_flush_interval_ms;
    int64_t last_flush = apg_mono_ms();
    for (;;) {
        bool closing;
        pthread_mutex_lock(&st->st_flush_mtx);
        atomic_store(&st->st_flush_sleeping, true);
        closing = atomic_load(&st->st_closing);
        bool waiting = atomic_load(&st->st_pend_count) > 0 || st->st_carry_head;
        if (!closing && !(sync && waiting)) {
            apg_cond_wait_ms(&st->st_flush_cond, &st->st_flush_mtx,
                             sync || (repl && waiting) ? 10 : interval);
            closing = atomic_load(&st->st_closing);
        }
        atomic_store(&st->st_flush_sleeping, false);
        pthread_mutex_unlock(&st->st_flush_mtx);
        if (!atomic_load(&st->st_fsync_failed) &&
            (!repl || closing || apg_mono_ms() - last_flush >= interval)) {
            apg_cl_flush(st);
            last_flush = apg_mono_ms();
        }
        if (sync || repl)
            apg_flush_complete_waiters(st, closing);
        if (!atomic_load(&st->st_fsync_failed) && !closing &&
            apg_mono_ms() - st->st_last_ckpt_ms >= (sync ? 1000 : interval))
            apg_flush_checkpoint(st, false);
        if (closing)
            break;
    }
    return NULL;
}

/* SYNC_FLUSH flusher (NFLUSHERS threads). Each claims the range written
 * since the last claim and syncs it while the other may be syncing the
 * previous range, so a new group commit starts while the last one is still
 * in the device. Acknowledgement follows st_flushed, which only advances
 * over ranges whose sync, and every earlier range's, completed. */
void *apg_flush_sync_main(void *arg)
{
    struct apg_store *st = arg;
    flush_thread_boost();
    pthread_mutex_lock(&st->st_flush_mtx);
    for (;;) {
        bool closing = atomic_load(&st->st_closing);
        bool failed = atomic_load(&st->st_fsync_failed);
        int64_t w = atomic_load_explicit(&st->st_wrote, memory_order_acquire);
        if (!failed && w > st->st_claimed && st->st_issue_seq - st->st_retire_seq < NFLUSHERS) {
            int64_t from = st->st_claimed;
            st->st_claimed = w;
            uint64_t seq = st->st_issue_seq++;
            st->st_slot_end[seq % NFLUSHERS] = w;
            st->st_slot_done[seq % NFLUSHERS] = false;
            pthread_mutex_unlock(&st->st_flush_mtx);
            cl_sync_range(st, from, w); /* failure sets st_fsync_failed */
            pthread_mutex_lock(&st->st_flush_mtx);
            st->st_slot_done[seq % NFLUSHERS] = true;
            while (st->st_retire_seq < st->st_issue_seq &&
                   st->st_slot_done[st->st_retire_seq % NFLUSHERS]) {
                atomic_store(&st->st_flushed, st->st_slot_end[st->st_retire_seq % NFLUSHERS]);
                st->st_retire_seq++;
            }
            pthread_cond_broadcast(&st->st_flush_cond); /* the other flusher may wait */
            pthread_mutex_unlock(&st->st_flush_mtx);
            pthread_mutex_lock(&st->st_complete_mtx);
            apg_flush_complete_waiters(st, false);
            pthread_mutex_unlock(&st->st_complete_mtx);
            pthread_mutex_lock(&st->st_flush_mtx);
            continue;
        }
        if (closing && (failed || w <= st->st_claimed) && st->st_issue_seq == st->st_retire_seq)
            break;
        /* Nothing to claim (or both slots busy): sleep until an append or a
         * completion, at most 10 ms (timeouts, checkpoint). */
        atomic_store(&st->st_flush_sleeping, true);
        if (!closing && atomic_load(&st->st_pend_count) == 0) {
            apg_cond_wait_ms(&st->st_flush_cond, &st->st_flush_mtx, 10);
        } else if (closing) {
            apg_cond_wait_ms(&st->st_flush_cond, &st->st_flush_mtx, 1);
        }
        atomic_store(&st->st_flush_sleeping, false);
        pthread_mutex_unlock(&st->st_flush_mtx);
        pthread_mutex_lock(&st->st_complete_mtx);
        apg_flush_complete_waiters(st, false); /* timeouts, failures */
        bool ckpt = !atomic_load(&st->st_fsync_failed) && !closing &&
                    apg_mono_ms() - st->st_last_ckpt_ms >= 1000;
        if (ckpt)
            st->st_last_ckpt_ms = apg_mono_ms();
        pthread_mutex_unlock(&st->st_complete_mtx);
        if (ckpt)
            apg_flush_checkpoint(st, false);
        pthread_mutex_lock(&st->st_flush_mtx);
    }
    pthread_mutex_unlock(&st->st_flush_mtx);
    return NULL;
}

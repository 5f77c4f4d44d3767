/* The message store: open, close, the service thread, stats.
 *
 * Design. The commit log is a sequence of fixed-size segment files
 * (mapped_file.c, commitlog.c); each record also gets a 20-byte entry in its
 * (topic, queue) consume queue (consume_queue.c). Appends run in the caller's
 * thread (commitlog.c); readers run anywhere (read.c). The store's state is
 * one struct apg_store (store_int.h, which also holds the lock order).
 *
 * Threads started here: the flush thread(s) and the ack thread (flush.c) and
 * the service thread (svc_main below: preallocation of the next segment,
 * warm-up (warmup.c), disk guard and retention (retention.c)). Recovery
 * (recover.c) runs before any of them start; close stops them, flushes,
 * writes a clean checkpoint and removes the abort marker. */
#define _GNU_SOURCE
#include "store/store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/file.h"
#include "common/log.h"
#include "common/mem.h"

static void *svc_main(void *arg)
{
    struct apg_store *st = arg;
    int64_t last_disk = 0, last_clean = 0;
    while (!atomic_load(&st->st_closing)) {
        bool busy = apg_warm_zero_ahead(st);
        apg_warm_drop_behind(st);
        /* The commit log's window first; the index's pages when it is
         * ready (the appender allocates them itself if it gets there
         * first). */
        if (!busy)
            busy = apg_index_warm(st);
        /* Preallocate the segment after the current one. */
        pthread_mutex_lock(&st->st_prealloc_mtx);
        if (st->st_next_wanted && !st->st_opts.so_no_preallocate) {
            st->st_next_wanted = false;
            int64_t base = st->st_cur_base + (int64_t)st->st_opts.so_commitlog_file_size;
            if (!st->st_next || st->st_next->sg_base != base) {
                char err[256];
                /* Sparse: creating the file ahead costs no disk space. */
                struct seg *s = apg_seg_open(st->st_cldir, base, st->st_opts.so_commitlog_file_size,
                                             true, false, err, sizeof(err));
                if (!s)
                    apg_log_warn(SUB, "preallocating the next segment failed: %s", err);
                apg_seg_free(st->st_next, false);
                st->st_next = s;
            }
        }
        pthread_mutex_unlock(&st->st_prealloc_mtx);
        int64_t now = apg_mono_ms();
        if (now - last_disk >= 1000) {
            apg_retention_disk_check(st);
            last_disk = now;
        }
        if (now - last_clean >= 10000) {
            time_t t = time(NULL);
            struct tm tmv;
            localtime_r(&t, &tmv);
            bool time_ok = apg_retention_hour_listed(st->st_opts.so_delete_when, tmv.tm_hour);
            if (apg_retention_pass(st, time_ok) > 0)
                apg_retention_disk_check(st); /* writes may resume at once */
            last_clean = now;
        }
        pthread_mutex_lock(&st->st_prealloc_mtx);
        if (!busy && !st->st_next_wanted && !atomic_load(&st->st_closing)) {
            apg_cond_wait_ms(&st->st_prealloc_cond, &st->st_prealloc_mtx,
                             st->st_opts.so_no_preallocate ? 200 : 5);
        }
        pthread_mutex_unlock(&st->st_prealloc_mtx);
    }
    return NULL;
}

void apg_store_stats(struct apg_store *st, struct apg_store_stats *o)
{
    memset(o, 0, sizeof(*o));
    o->ss_min_phys_offset = atomic_load(&st->st_min_phys);
    o->ss_max_phys_offset = atomic_load(&st->st_wrote);
    o->ss_flushed_phys_offset = atomic_load(&st->st_flushed);
    o->ss_warmed_phys_offset = atomic_load(&st->st_warmed);
    o->ss_fsync_count = atomic_load(&st->st_fsync_count);
    o->ss_fsync_time_us = atomic_load(&st->st_fsync_us);
    o->ss_put_count = atomic_load(&st->st_put_count);
    o->ss_put_bytes = atomic_load(&st->st_put_bytes);
    o->ss_disk_used_ratio = atomic_load(&st->st_disk_ratio);
    o->ss_fsync_failed = atomic_load(&st->st_fsync_failed);
    o->ss_writable = !o->ss_fsync_failed && !atomic_load(&st->st_disk_full);
    pthread_mutex_lock(&st->st_err_mtx);
    memcpy(o->ss_last_error, st->st_last_error, sizeof(o->ss_last_error));
    pthread_mutex_unlock(&st->st_err_mtx);
}

void apg_store_opts_init(struct apg_store_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->so_commitlog_file_size = 1073741824ull;
    o->so_cq_file_size = 6000000;
    o->so_flush_interval_ms = 500;
    o->so_sync_flush_timeout_ms = 5000;
    o->so_repl_max_gap = 256ll << 20;
    o->so_file_reserved_hours = 72;
    o->so_delete_when = "04";
    o->so_disk_max_used_ratio = 75;
    o->so_disk_clean_forcibly_ratio = 85;
    o->so_disk_warning_ratio = 90;
    o->so_check_crc_on_recover = true;
    o->so_max_message_size = 4194304;
    o->so_cache_keep_mb = 1024;
    o->so_index_slots = 5000000;
    o->so_index_entries = 20000000;
    o->so_store_host.h_ip[0] = 127;
    o->so_store_host.h_ip[3] = 1;
    o->so_store_host.h_port = 10911;
}

static void store_free(struct apg_store *st)
{
    apg_dispatch_close(st);
    for (int i = 0; i < st->st_nsegs; i++)
        apg_seg_free(st->st_segs[i], false);
    apg_free(st->st_segs);
    apg_seg_free(st->st_next, false);
    if (st->st_lock_fd >= 0)
        close(st->st_lock_fd);
    pthread_mutex_destroy(&st->st_append_mtx);
    pthread_rwlock_destroy(&st->st_struct_lock);
    pthread_mutex_destroy(&st->st_flush_mtx);
    pthread_mutex_destroy(&st->st_complete_mtx);
    pthread_mutex_destroy(&st->st_ack_mtx);
    pthread_cond_destroy(&st->st_ack_cond);
    pthread_cond_destroy(&st->st_flush_cond);
    pthread_mutex_destroy(&st->st_prealloc_mtx);
    pthread_cond_destroy(&st->st_prealloc_cond);
    pthread_mutex_destroy(&st->st_err_mtx);
    pthread_mutex_destroy(&st->st_zero_mtx);
    apg_free(st->st_root);
    apg_free(st->st_cldir);
    apg_free(st->st_cqdir);
    apg_free((char *)st->st_opts.so_delete_when);
    apg_free(st);
}

static void stop_ack_thread(struct apg_store *st)
{
    pthread_mutex_lock(&st->st_ack_mtx);
    st->st_ack_stop = true;
    pthread_cond_signal(&st->st_ack_cond);
    pthread_mutex_unlock(&st->st_ack_mtx);
    pthread_join(st->st_ack_thr, NULL);
}

apg_err_t apg_store_open(const struct apg_store_opts *o, struct apg_store **out, char *err,
                         size_t errlen)
{
    *out = NULL;
    if (!o || !o->so_root_dir || !*o->so_root_dir)
        return apg_errf(APG_EINVAL, err, errlen, "storePathRootDir is empty");
    if (o->so_commitlog_file_size < 4096)
        return apg_errf(APG_ECONFIG, err, errlen, "mappedFileSizeCommitLog must be >= 4096");
    if (o->so_cq_file_size < CQ_UNIT || o->so_cq_file_size % CQ_UNIT)
        return apg_errf(APG_ECONFIG, err, errlen,
                        "mappedFileSizeConsumeQueue must be a multiple of 20");
    struct apg_store *st = apg_calloc(1, sizeof(*st));
    if (!st)
        return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    st->st_opts = *o;
    st->st_opts.so_delete_when = apg_strdup(o->so_delete_when ? o->so_delete_when : "04");
    if (st->st_opts.so_flush_interval_ms <= 0)
        st->st_opts.so_flush_interval_ms = 500;
    if (st->st_opts.so_sync_flush_timeout_ms <= 0)
        st->st_opts.so_sync_flush_timeout_ms = 5000;
    if (!st->st_opts.so_warm_ahead_mb)
        st->st_opts.so_warm_ahead_mb = 64;
    if (!st->st_opts.so_max_message_size)
        st->st_opts.so_max_message_size = 4194304;
    if (!st->st_opts.so_index_slots)
        st->st_opts.so_index_slots = 5000000;
    if (st->st_opts.so_index_entries < 2)
        st->st_opts.so_index_entries = 20000000;
    st->st_lock_fd = -1;
    atomic_store(&st->st_test_disk_ratio, -1);
    atomic_store(&st->st_free_at_check, INT64_MAX);
    /* Adaptive: the append critical section is short (encode, one pwrite,
     * the queue entries), so spinning briefly beats a futex sleep/wake
     * convoy when many appenders collide. */
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&st->st_append_mtx, &ma);
    pthread_mutexattr_destroy(&ma);
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&st->st_struct_lock, &ra);
    pthread_rwlockattr_destroy(&ra);
    pthread_mutex_init(&st->st_flush_mtx, NULL);
    pthread_mutex_init(&st->st_complete_mtx, NULL);
    pthread_mutex_init(&st->st_ack_mtx, NULL);
    pthread_cond_init(&st->st_ack_cond, NULL);
    st->st_ack_tailp = &st->st_ack_head;
    st->st_pend_tailp = &st->st_pend_head;
    st->st_carry_tailp = &st->st_carry_head;
    pthread_cond_init(&st->st_flush_cond, NULL);
    pthread_mutex_init(&st->st_prealloc_mtx, NULL);
    pthread_cond_init(&st->st_prealloc_cond, NULL);
    pthread_mutex_init(&st->st_err_mtx, NULL);
    pthread_mutex_init(&st->st_zero_mtx, NULL);
    atomic_store(&st->st_zero_busy, INT64_MAX);
    st->st_root = apg_strdup(o->so_root_dir);
    st->st_cldir = o->so_commitlog_dir && *o->so_commitlog_dir
                       ? apg_strdup(o->so_commitlog_dir)
                       : apg_path_join(o->so_root_dir, "commitlog");
    st->st_cqdir = apg_path_join(o->so_root_dir, "consumequeue");
    apg_err_t rc;
    if (!st->st_root || !st->st_cldir || !st->st_cqdir || !st->st_opts.so_delete_when) {
        rc = apg_errf(APG_ENOMEM, err, errlen, "out of memory");
        goto fail;
    }
    if ((rc = apg_file_mkdir_p(st->st_root, err, errlen)) ||
        (rc = apg_file_mkdir_p(st->st_cldir, err, errlen)) ||
        (rc = apg_file_mkdir_p(st->st_cqdir, err, errlen)))
        goto fail;
    char *lp = apg_path_join(st->st_root, "lock");
    st->st_lock_fd = lp ? open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0644) : -1;
    apg_free(lp);
    if (st->st_lock_fd < 0 || flock(st->st_lock_fd, LOCK_EX | LOCK_NB) != 0) {
        rc = apg_errf(APG_EBUSY, err, errlen,
                      "store %s is in use by another process (lock file held)", st->st_root);
        goto fail;
    }
    rc = apg_index_open(st, err, errlen);
    if (rc)
        goto fail;
    rc = apg_recover_open(st, err, errlen);
    if (rc)
        goto fail;
    apg_retention_disk_check(st);
    st->st_next_wanted = true;
    if (pthread_create(&st->st_ack_thr, NULL, apg_flush_ack_main, st) != 0) {
        rc = apg_errf(APG_EIO, err, errlen, "cannot start the ack thread");
        goto fail;
    }
    st->st_claimed = atomic_load(&st->st_flushed);
    if (pthread_create(&st->st_flush_thr, NULL,
                       st->st_opts.so_sync_flush ? apg_flush_sync_main : apg_flush_async_main,
                       st) != 0) {
        stop_ack_thread(st);
        rc = apg_errf(APG_EIO, err, errlen, "cannot start the flush thread");
        goto fail;
    }
    if (st->st_opts.so_sync_flush && NFLUSHERS > 1 &&
        pthread_create(&st->st_flusher2, NULL, apg_flush_sync_main, st) != 0) {
        atomic_store(&st->st_closing, true);
        pthread_mutex_lock(&st->st_flush_mtx);
        pthread_cond_broadcast(&st->st_flush_cond);
        pthread_mutex_unlock(&st->st_flush_mtx);
        pthread_join(st->st_flush_thr, NULL);
        stop_ack_thread(st);
        rc = apg_errf(APG_EIO, err, errlen, "cannot start the second flush thread");
        goto fail;
    }
    if (pthread_create(&st->st_svc_thr, NULL, svc_main, st) != 0) {
        atomic_store(&st->st_closing, true);
        pthread_mutex_lock(&st->st_flush_mtx);
        pthread_cond_broadcast(&st->st_flush_cond);
        pthread_mutex_unlock(&st->st_flush_mtx);
        pthread_join(st->st_flush_thr, NULL);
        if (st->st_opts.so_sync_flush && NFLUSHERS > 1)
            pthread_join(st->st_flusher2, NULL);
        stop_ack_thread(st);
        rc = apg_errf(APG_EIO, err, errlen, "cannot start the store service thread");
        goto fail;
    }
    st->st_threads_started = true;
    apg_store_fault_env(st);
    apg_log_info(SUB, "store open at %s: commit log [%lld, %lld), %zu queue(s), %s", st->st_root,
                 (long long)atomic_load(&st->st_min_phys), (long long)atomic_load(&st->st_wrote),
                 st->st_ncq, st->st_opts.so_sync_flush ? "SYNC_FLUSH" : "ASYNC_FLUSH");
    *out = st;
    return APG_OK;
fail:
    store_free(st);
    return rc;
}

void apg_store_close(struct apg_store *st)
{
    if (!st)
        return;
    pthread_mutex_lock(&st->st_append_mtx);
    atomic_store(&st->st_closing, true);
    pthread_mutex_unlock(&st->st_append_mtx);
    if (st->st_threads_started) {
        pthread_mutex_lock(&st->st_flush_mtx);
        pthread_cond_broadcast(&st->st_flush_cond);
        pthread_mutex_unlock(&st->st_flush_mtx);
        pthread_join(st->st_flush_thr, NULL);
        if (st->st_opts.so_sync_flush && NFLUSHERS > 1)
            pthread_join(st->st_flusher2, NULL);
        /* Deliver what is left (everything is durable or failed now). */
        if (st->st_opts.so_sync_flush || st->st_opts.so_sync_replica) {
            if (!atomic_load(&st->st_fsync_failed))
                apg_cl_flush(st);
            apg_flush_complete_waiters(st, true);
        }
        stop_ack_thread(st); /* after the flush threads: it delivers what is left */
        pthread_mutex_lock(&st->st_prealloc_mtx);
        pthread_cond_signal(&st->st_prealloc_cond);
        pthread_mutex_unlock(&st->st_prealloc_mtx);
        pthread_join(st->st_svc_thr, NULL);
    }
    bool ok = !atomic_load(&st->st_fsync_failed) && apg_cl_flush(st) == 0;
    if (ok) {
        apg_flush_checkpoint(st, true);
        ok = !atomic_load(&st->st_fsync_failed);
    }
    if (ok) {
        char *ap = apg_path_join(st->st_root, "abort");
        if (ap)
            unlink(ap);
        apg_free(ap);
        apg_store_fsync_dir(st->st_root);
    } else {
        apg_log_error(SUB, "store %s closed after a flush failure: next start runs crash recovery",
                      st->st_root);
    }
    store_free(st);
}

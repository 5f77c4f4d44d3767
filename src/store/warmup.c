/* Warm-up ahead of the writer and drop-behind after it (service thread).
 *
 * Under SYNC_FLUSH the commit log just ahead of the write position is
 * overwritten with zeros by write() and synced, so appends land on written
 * extents and each group commit only writes data (no extent conversion).
 * apg_warm_guard is the appender's half of the hand-shake that keeps the two
 * from writing the same bytes. Behind the flushed position, pages older than
 * commitLogCacheKeepMb are dropped from the page cache. */
#define _GNU_SOURCE
#include "store/store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/log.h"

/* Keeps the commit log just ahead of the write position zero-filled by
 * write() and synced (apg_seg_zero), in steps, across the current and the
 * preallocated next segment. Appends then land on written extents and in
 * page cache that is already there. This replaces faulting the mapping in
 * (the appender writes with pwrite, not through the mapping).
 *
 * The window grows with what has been written since start: 1 MiB ahead for a
 * broker that has written nothing (so an idle broker holds little page
 * cache), up to so_warm_ahead_mb once that much has gone through, and never
 * into the free space the store keeps in reserve.
 * Returns true if it did work (call again soon). Service thread. */
#define WARM_STEP (2ll << 20)

#define WARM_MIN (1ll << 20)

bool apg_warm_zero_ahead(struct apg_store *st)
{
    if (st->st_opts.so_no_preallocate || st->st_zero_failed || !st->st_opts.so_sync_flush)
        return false;
    int64_t wrote = atomic_load(&st->st_wrote);
    if (st->st_warm_origin == 0)
        st->st_warm_origin = wrote > 0 ? wrote : 1;
    int64_t window = wrote - st->st_warm_origin;
    int64_t max_window = (int64_t)st->st_opts.so_warm_ahead_mb << 20;
    if (window < WARM_MIN)
        window = WARM_MIN;
    if (window > max_window)
        window = max_window;
    int64_t floor = atomic_load(&st->st_reserve_end);
    if (floor < wrote)
        floor = wrote;
    floor = (floor + 4095) & ~(int64_t)4095; /* the block holding data is written already */
    if (atomic_load(&st->st_warmed) < floor)
        atomic_store(&st->st_warmed, floor);
    int64_t at = atomic_load(&st->st_warmed);
    if (at >= wrote + window)
        return false;
    int64_t step = window < WARM_STEP ? window : WARM_STEP;
    /* Never zero-fill into the space kept in reserve (retention.c): on a
     * nearly full disk appends go to unwritten space instead. */
    int64_t room = atomic_load(&st->st_free_at_check);
    if (room != INT64_MAX &&
        room - (at - atomic_load(&st->st_wrote_at_check)) < apg_store_reserve_bytes(st) + step)
        return false;
    int fd = -1;
    bool tried = false;
    /* In a segment of the log: appends may reach it at any moment, so
     * announce the chunk and back off if an append already claimed it. The
     * segment holding or following the write position is never removed
     * while the store is open, so s stays valid without the struct lock. */
    pthread_rwlock_rdlock(&st->st_struct_lock);
    struct seg *s = apg_cl_seg_for(st, at);
    pthread_rwlock_unlock(&st->st_struct_lock);
    if (s) {
        size_t from = (size_t)(at - s->sg_base);
        size_t to = from + (size_t)step < s->sg_size ? from + (size_t)step : s->sg_size;
        pthread_mutex_lock(&st->st_zero_mtx);
        atomic_store(&st->st_zero_busy, at);
        if (atomic_load(&st->st_reserve_end) <= at) {
            tried = true;
            fd = apg_seg_zero(s, from, to);
        }
        atomic_store(&st->st_zero_busy, INT64_MAX);
        pthread_mutex_unlock(&st->st_zero_mtx);
        if (!tried)
            return true; /* an append got there first: start again above it */
        if (fd >= 0)
            atomic_store(&st->st_warmed, s->sg_base + (int64_t)to);
    } else {
        /* Past the current segment: the preallocated next one, which no
         * append can use while st_prealloc_mtx is held (apg_cl_roll takes it). */
        pthread_mutex_lock(&st->st_prealloc_mtx);
        s = st->st_next;
        if (s && at >= s->sg_base && at < s->sg_base + (int64_t)s->sg_size) {
            size_t from = (size_t)(at - s->sg_base);
            size_t to = from + (size_t)step < s->sg_size ? from + (size_t)step : s->sg_size;
            tried = true;
            fd = apg_seg_zero(s, from, to);
            if (fd >= 0)
                atomic_store(&st->st_warmed, s->sg_base + (int64_t)to);
        }
        pthread_mutex_unlock(&st->st_prealloc_mtx);
        if (!tried)
            return false; /* next segment not ready yet */
    }
    if (fd >= 0 && fdatasync(fd) != 0) {
        close(fd);
        fd = -1;
    }
    if (fd < 0) {
        /* Only an optimisation: appends still work on unwritten extents.
         * A writeback error here is also reported to the flush thread's
         * own descriptor, which decides about acknowledgements. */
        apg_log_warn(SUB,
                     "zero-filling the commit log ahead of the writer failed (%s); "
                     "continuing without",
                     strerror(errno));
        st->st_zero_failed = true;
        return false;
    }
    close(fd);
    return true;
}

/* Drops commit-log pages that are on disk and more than so_cache_keep_mb
 * behind the flushed position from the page cache (our mapping first, then
 * the file's cache). On this class of VM a writer that keeps taking fresh
 * page-cache pages sustains ~500 MB/s, one that recycles them 2+ GB/s
 * (docs/perf-log/perf-store.md, "Drop-behind"). Readers of older offsets fault the
 * pages back in from disk. Service thread. */
void apg_warm_drop_behind(struct apg_store *st)
{
    if (st->st_opts.so_cache_keep_mb <= 0)
        return;
    int64_t keep = st->st_opts.so_cache_keep_mb << 20;
    int64_t to = atomic_load(&st->st_flushed) - keep;
    to &= ~(int64_t)((8 << 20) - 1); /* in steps of 8 MiB */
    if (st->st_dropped < atomic_load(&st->st_min_phys))
        st->st_dropped = atomic_load(&st->st_min_phys) & ~(int64_t)4095;
    while (st->st_dropped < to) {
        pthread_rwlock_rdlock(&st->st_struct_lock);
        struct seg *s = apg_cl_seg_for(st, st->st_dropped);
        int64_t end = to;
        if (s) {
            if (end > s->sg_base + (int64_t)s->sg_size)
                end = s->sg_base + (int64_t)s->sg_size;
            size_t from = (size_t)(st->st_dropped - s->sg_base);
            size_t len = (size_t)(end - st->st_dropped);
            madvise(s->sg_map + from, len, MADV_DONTNEED);
            posix_fadvise(s->sg_fd, (off_t)from, (off_t)len, POSIX_FADV_DONTNEED);
        }
        pthread_rwlock_unlock(&st->st_struct_lock);
        if (!s)
            break;
        st->st_dropped = end;
    }
}

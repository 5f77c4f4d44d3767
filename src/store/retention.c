/* Disk-space guard and retention.
 *
 * The service thread measures the commit log's file system once a second:
 * above diskSpaceWarningLevelRatio puts are refused (APG_EDISKFULL) until
 * space frees. Every ten seconds a retention pass removes the oldest
 * commit-log segments that are expired (older than fileReservedTime), when
 * the hour is listed in deleteWhen or at any hour while the disk is above
 * diskMaxUsedSpaceRatio. Unexpired segments are deleted for space only when
 * the operator opted in with cleanFileForciblyEnable and the disk is above
 * diskSpaceCleanForciblyRatio (or the warning ratio), at most ten per pass,
 * each logged at WARN with its message count and bytes. Never the current
 * segment nor anything not yet durable; consume-queue entries below the new
 * minimum are then dropped (apg_cq_clean). */
#define _GNU_SOURCE
#include "store/store_int.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include "common/log.h"
#include "common/mem.h"

/* Used percentage of the commit log's file system; *free_out (if given)
 * gets the bytes available to us, INT64_MAX when faked or unknown. */
static int measure_disk(struct apg_store *st, int64_t *free_out)
{
    if (free_out)
        *free_out = INT64_MAX;
    int t = atomic_load(&st->st_test_disk_ratio);
    if (t >= 0)
        return t;
    struct statvfs vf;
    if (statvfs(st->st_cldir, &vf) != 0 || vf.f_blocks == 0)
        return 0;
    if (free_out)
        *free_out = (int64_t)vf.f_bavail * (int64_t)vf.f_frsize;
    double used = (double)(vf.f_blocks - vf.f_bfree) / (double)vf.f_blocks;
    return (int)(used * 100.0 + 0.5);
}

static int measure_disk_ratio(struct apg_store *st)
{
    return measure_disk(st, NULL);
}

void apg_retention_disk_check(struct apg_store *st)
{
    int64_t free_b;
    /* Position first: bytes written after it are charged against free_b. */
    atomic_store(&st->st_wrote_at_check, atomic_load(&st->st_wrote));
    int r = measure_disk(st, &free_b);
    atomic_store(&st->st_free_at_check, free_b);
    atomic_store(&st->st_disk_ratio, r);
    int64_t reserve = apg_store_reserve_bytes(st);
    bool low = free_b < reserve;
    bool full = r > st->st_opts.so_disk_warning_ratio || low;
    bool was = atomic_exchange(&st->st_disk_full, full);
    if (full && !was) {
        char msg[256];
        if (low)
            snprintf(msg, sizeof(msg),
                     "disk of %s has %lld KiB free, less than the %lld KiB kept in reserve: "
                     "writes refused until space frees",
                     st->st_cldir, (long long)(free_b >> 10), (long long)(reserve >> 10));
        else
            snprintf(msg, sizeof(msg),
                     "disk of %s is %d%% used, above diskSpaceWarningLevelRatio=%d: writes "
                     "refused until space frees (free disk space or raise "
                     "diskSpaceWarningLevelRatio)",
                     st->st_cldir, r, st->st_opts.so_disk_warning_ratio);
        apg_log_error(SUB, "%s", msg);
        apg_store_set_last_error(st, msg);
    } else if (!full && was) {
        apg_log_info(SUB, "disk of %s is %d%% used again: writes resume", st->st_cldir, r);
    }
}

bool apg_retention_hour_listed(const char *when, int hour)
{
    const char *p = when;
    while (p && *p) {
        int h = atoi(p);
        if (h == hour)
            return true;
        p = strchr(p, ';');
        if (p)
            p++;
    }
    return false;
}

int apg_retention_pass(struct apg_store *st, bool time_ok)
{
    int removed = 0;
    int ratio = measure_disk_ratio(st);
    bool over_max = ratio > st->st_opts.so_disk_max_used_ratio;
    bool forcibly =
        st->st_opts.so_clean_forcibly && (ratio > st->st_opts.so_disk_clean_forcibly_ratio ||
                                          ratio > st->st_opts.so_disk_warning_ratio);
    bool high = ratio > st->st_opts.so_disk_clean_forcibly_ratio;
    if (high && !st->st_opts.so_clean_forcibly && !atomic_exchange(&st->st_kept_noted, true))
        apg_log_warn(SUB,
                     "disk of %s is %d%% used, above diskSpaceCleanForciblyRatio=%d: unexpired "
                     "commit log segments are kept (cleanFileForciblyEnable=false); writes are "
                     "refused above diskSpaceWarningLevelRatio=%d",
                     st->st_cldir, ratio, st->st_opts.so_disk_clean_forcibly_ratio,
                     st->st_opts.so_disk_warning_ratio);
    else if (!high)
        atomic_store(&st->st_kept_noted, false);
    if (!time_ok && !over_max)
        return 0;
    time_t expire = time(NULL) - (time_t)st->st_opts.so_file_reserved_hours * 3600;
    for (;;) {
        pthread_mutex_lock(&st->st_append_mtx);
        pthread_rwlock_wrlock(&st->st_struct_lock);
        struct seg *s = st->st_nsegs > 1 ? st->st_segs[0] : NULL;
        bool del = false, expired = false;
        if (s && s != st->st_cur) {
            struct stat sb;
            expired = fstat(s->sg_fd, &sb) == 0 && sb.st_mtime <= expire;
            del = expired || (forcibly && removed < 10);
            /* Never delete what is not yet durable. */
            if (s->sg_base + (int64_t)s->sg_size > atomic_load(&st->st_flushed))
                del = false;
        }
        if (del) {
            memmove(st->st_segs, st->st_segs + 1,
                    (size_t)(st->st_nsegs - 1) * sizeof(*st->st_segs));
            st->st_nsegs--;
            atomic_store(&st->st_min_phys, st->st_segs[0]->sg_base);
        }
        pthread_rwlock_unlock(&st->st_struct_lock);
        pthread_mutex_unlock(&st->st_append_mtx);
        if (!del)
            break;
        if (expired) {
            apg_log_info(SUB, "retention: deleting expired commit log segment %s (disk %d%% used)",
                         s->sg_path, ratio);
        } else {
            struct apg_scan_result sr;
            apg_scan_segment(s->sg_map, s->sg_size, 0, s->sg_base, 0, false, NULL, NULL, &sr);
            apg_log_warn(SUB,
                         "retention: cleanFileForciblyEnable=true and disk %d%% used (above "
                         "diskSpaceCleanForciblyRatio=%d): deleting UNEXPIRED commit log segment "
                         "%s holding %zu messages, %zu bytes (commit log offsets %lld..%lld)",
                         ratio, st->st_opts.so_disk_clean_forcibly_ratio, s->sg_path, sr.sr_records,
                         sr.sr_end, (long long)s->sg_base,
                         (long long)(s->sg_base + (int64_t)sr.sr_end));
        }
        apg_seg_free(s, true);
        removed++;
    }
    if (removed) {
        apg_cq_clean(st, atomic_load(&st->st_min_phys));
        apg_index_clean(st, atomic_load(&st->st_min_phys));
        apg_store_fsync_dir(st->st_cldir);
    }
    return removed;
}

int apg_store_clean_now(struct apg_store *st)
{
    return apg_retention_pass(st, true);
}

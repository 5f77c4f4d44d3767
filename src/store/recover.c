/* Recovery at open.
 *
 * apg_recover_open maps the commit-log segments (refusing a missing segment
 * or a foreign segment size), reads the checkpoint and the abort marker, and
 * trusts the checkpoint only as far as it says data was durable: after a
 * crash it re-validates every record from the start of the segment holding
 * the checkpointed point (scan.c), truncates a torn tail, refuses mid-log
 * corruption (unless forceRecoverCorrupt), then loads the consume queues,
 * truncates their entries from the checkpointed point and re-indexes the
 * records after it. If the queues disagree with the log they are all rebuilt
 * from the log. Runs in apg_store_open's thread, before any other thread. */
#define _GNU_SOURCE
#include "store/store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/file.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/mem.h"
#include "protocol/message.h"

struct redispatch {
    struct apg_store *rd_st;
    int64_t rd_base;
    bool rd_gap;
    apg_err_t rd_rc;
    char *rd_err;
    size_t rd_errlen;
};

static void redispatch_rec(void *ud, size_t pos, const struct apg_msgrec *r)
{
    struct redispatch *rd = ud;
    struct apg_store *st = rd->rd_st;
    atomic_store(&st->st_last_store_ts, r->mr_store_ts);
    if (rd->rd_rc)
        return;
    /* Tag hash: the broker supplies it at put time; on rebuild recompute it
     * from the TAGS property as RocketMQ's dispatcher does. */
    struct apg_dispatch_rec dr = {
        .dr_topic = r->mr_topic,
        .dr_topic_len = r->mr_topic_len,
        .dr_queue_id = r->mr_queue_id,
        .dr_sysflag = r->mr_sysflag,
        .dr_phys = rd->rd_base + (int64_t)pos,
        .dr_size = (int32_t)r->mr_total_size,
        .dr_queue_offset = r->mr_queue_offset,
        .dr_tags_code = apg_dispatch_sched_tags(
            st, r->mr_topic, r->mr_topic_len, r->mr_props, r->mr_props_len, r->mr_store_ts,
            apg_dispatch_tags_code(r->mr_props, r->mr_props_len)),
        .dr_store_ts = r->mr_store_ts,
        .dr_props = r->mr_props,
        .dr_props_len = r->mr_props_len,
    };
    int done;
    apg_err_t rc = apg_dispatch(st, &dr, 1, true, &done, rd->rd_err, rd->rd_errlen);
    if (rc == APG_ECORRUPT)
        rd->rd_gap = true;
    else if (rc)
        rd->rd_rc = rc;
}

/* Walks the commit log from `from` to `end` (already validated) feeding every
 * dispatcher. */
static apg_err_t redispatch(struct apg_store *st, int64_t from, int64_t end, bool *gap, char *err,
                            size_t errlen)
{
    struct redispatch rd = {st, 0, false, APG_OK, err, errlen};
    int64_t pos = from;
    while (pos < end) {
        struct seg *s = apg_cl_seg_for(st, pos);
        if (!s)
            break;
        struct apg_scan_result sr;
        size_t lim = (size_t)((end - s->sg_base) < (int64_t)s->sg_size ? end - s->sg_base
                                                                       : (int64_t)s->sg_size);
        rd.rd_base = s->sg_base;
        apg_scan_segment(s->sg_map, lim, lim, s->sg_base, (size_t)(pos - s->sg_base), false,
                         redispatch_rec, &rd, &sr);
        if (rd.rd_rc)
            return rd.rd_rc;
        pos = s->sg_base + (int64_t)s->sg_size;
    }
    *gap = rd.rd_gap;
    return APG_OK;
}

static apg_err_t rebuild_all_queues(struct apg_store *st, int64_t end, char *err, size_t errlen)
{
    apg_dispatch_reset(st);
    bool gap = false;
    apg_err_t rc = redispatch(st, atomic_load(&st->st_min_phys), end, &gap, err, errlen);
    if (!rc && gap)
        apg_log_warn(SUB, "commit log has queue offset gaps; queues were rebuilt as found");
    return rc;
}

struct scan_ctx {
    struct apg_store *sc_st;
    int64_t sc_base;
};

static void note_ts(void *ud, size_t pos, const struct apg_msgrec *r)
{
    struct scan_ctx *c = ud;
    atomic_store(&c->sc_st->st_last_store_ts, r->mr_store_ts);
}

/* Validates the commit log from `from` and returns the end of valid data in
 * *end_out, truncating a torn tail. Mid-log corruption: APG_ECORRUPT unless
 * forced. */
static apg_err_t recover_commitlog(struct apg_store *st, int64_t from, bool zero_tail,
                                   int64_t *end_out, char *err, size_t errlen)
{
    int64_t fsz = (int64_t)st->st_opts.so_commitlog_file_size;
    int64_t pos = from;
    struct scan_ctx sc = {st, 0};
    for (;;) {
        struct seg *s = apg_cl_seg_for(st, pos);
        if (!s)
            break;
        struct apg_scan_result sr;
        /* Segments are sparse: never read the mapping past the written data.
         * On tmpfs even a read fault in a hole needs a page, and on a full
         * file system that is SIGBUS. The space after it reads as zeros. */
        size_t dend = apg_seg_data_end(s);
        size_t lim = (dend + 4095) & ~(size_t)4095;
        if (lim > s->sg_size)
            lim = s->sg_size;
        if ((size_t)(pos - s->sg_base) > lim)
            lim = (size_t)(pos - s->sg_base);
        apg_scan_segment(s->sg_map, lim, dend, s->sg_base, (size_t)(pos - s->sg_base),
                         st->st_opts.so_check_crc_on_recover, note_ts, &sc, &sr);
        if (sr.sr_how == APG_SCAN_END_FULL && lim < s->sg_size) {
            sr.sr_how = APG_SCAN_END_ZERO;
            sr.sr_why = "zero-filled space";
            sr.sr_next_valid = SIZE_MAX;
        }
        if (sr.sr_how == APG_SCAN_END_BLANK || sr.sr_how == APG_SCAN_END_FULL) {
            pos = s->sg_base + fsz;
            continue;
        }
        pos = s->sg_base + (int64_t)sr.sr_end;
        /* Is anything valid after the bad point? In this segment, or at the
         * start of a later segment (records there start at the base). */
        int64_t later = -1;
        if (sr.sr_next_valid != SIZE_MAX)
            later = s->sg_base + (int64_t)sr.sr_next_valid;
        for (int i = 0; later < 0 && i < st->st_nsegs; i++) {
            struct seg *t = st->st_segs[i];
            if (t->sg_base <= s->sg_base)
                continue;
            size_t tend = apg_seg_data_end(t);
            if (tend == 0)
                continue; /* never written (and not to be read: sparse) */
            if (apg_msgrec_decode(t->sg_map, tend, true, NULL, NULL) == APG_MSGREC_OK &&
                (int64_t)apg_be64(t->sg_map + 28) == t->sg_base)
                later = t->sg_base;
            else {
                size_t f = apg_scan_find_valid(t->sg_map, tend, t->sg_base, 0);
                if (f != SIZE_MAX)
                    later = t->sg_base + (int64_t)f;
            }
        }
        if (later >= 0) {
            char msg[768];
            snprintf(msg, sizeof(msg),
                     "commit log corrupt in the middle: file %s, offset %lld in the file "
                     "(global %lld): %s; valid records follow at global offset %lld",
                     s->sg_path, (long long)(pos - s->sg_base), (long long)pos,
                     sr.sr_why ? sr.sr_why : "?", (long long)later);
            if (!st->st_opts.so_force_recover_corrupt)
                return apg_errf(APG_ECORRUPT, err, errlen,
                                "%s. Refusing to start: truncating here would lose those "
                                "records. Restore the file, or set forceRecoverCorrupt=true to "
                                "truncate at this point",
                                msg);
            apg_log_error(SUB, "%s; forceRecoverCorrupt=true: truncating there (data lost)", msg);
            zero_tail = true;
        } else if (sr.sr_how == APG_SCAN_END_BAD) {
            zero_tail = true;
            apg_log_warn(SUB, "torn tail in %s at offset %lld (global %lld): %s; truncating",
                         s->sg_path, (long long)(pos - s->sg_base), (long long)pos, sr.sr_why);
        }
        break;
    }
    /* Zero whatever follows the end in its segment (torn bytes, stale
     * records) so that later appends and later recoveries never see them, and
     * drop later segments. Only needed when the end was not a clean one. */
    struct seg *s = apg_cl_seg_for(st, pos);
    if (s && zero_tail) {
        size_t pg = 4096, off = (size_t)(pos - s->sg_base), dend = apg_seg_data_end(s);
        for (size_t a = off; a < dend; a = (a / pg + 1) * pg) {
            size_t b = (a / pg + 1) * pg;
            if (b > dend)
                b = dend;
            const uint64_t *w = (const uint64_t *)(s->sg_map + (a & ~(size_t)7));
            size_t nw = (b - (a & ~(size_t)7)) / 8;
            bool nz = false;
            for (size_t k = 0; k < nw && !nz; k++)
                nz = w[k] != 0;
            if (nz) {
                memset(s->sg_map + a, 0, b - a);
                apg_store_fault_msync(st, s, a & ~(pg - 1), b, MS_SYNC);
            }
        }
    }
    while (st->st_nsegs > 0 && st->st_segs[st->st_nsegs - 1]->sg_base > pos) {
        struct seg *t = st->st_segs[st->st_nsegs - 1];
        apg_log_info(SUB, "removing segment %s past the end of the log", t->sg_path);
        apg_seg_free(t, true);
        st->st_nsegs--;
    }
    *end_out = pos;
    return APG_OK;
}

apg_err_t apg_recover_open(struct apg_store *st, char *err, size_t errlen)
{
    int64_t fsz = (int64_t)st->st_opts.so_commitlog_file_size;
    char **names;
    int n = apg_seg_list(st->st_cldir, &names);
    apg_err_t rc = APG_OK;
    for (int i = 0; i < n; i++) {
        int64_t base = strtoll(names[i], NULL, 10);
        if (base % fsz != 0) {
            rc = apg_errf(APG_ECONFIG, err, errlen,
                          "commit log file %s/%s does not start at a multiple of "
                          "mappedFileSizeCommitLog=%lld: was the store written with another "
                          "segment size?",
                          st->st_cldir, names[i], (long long)fsz);
            break;
        }
        if (st->st_nsegs && base != st->st_segs[st->st_nsegs - 1]->sg_base + fsz) {
            rc = apg_errf(APG_ECORRUPT, err, errlen,
                          "commit log file %s/%s does not follow the previous segment: a segment "
                          "file is missing",
                          st->st_cldir, names[i]);
            break;
        }
        struct seg *s = apg_seg_open(st->st_cldir, base, (size_t)fsz, false, false, err, errlen);
        if (!s) {
            rc = APG_EIO;
            break;
        }
        if (apg_cl_push_seg(st, s)) {
            apg_seg_free(s, false);
            rc = apg_errf(APG_ENOMEM, err, errlen, "out of memory");
            break;
        }
    }
    apg_seg_names_free(names, n);
    if (rc)
        return rc;

    char *abort_path = apg_path_join(st->st_root, "abort");
    bool crashed = abort_path && access(abort_path, F_OK) == 0;
    struct apg_ckpt ck;
    apg_ckpt_read(st->st_root, &ck);
    int64_t min = st->st_nsegs ? st->st_segs[0]->sg_base : 0;
    atomic_store(&st->st_min_phys, min);
    int64_t maxseg_end = st->st_nsegs ? st->st_segs[st->st_nsegs - 1]->sg_base + fsz : 0;

    int64_t scan_from = min, redispatch_from = min;
    bool trust = ck.ck_valid && ck.ck_cl_flushed >= min && ck.ck_cl_flushed <= maxseg_end &&
                 ck.ck_cq_phys >= min && ck.ck_cq_phys <= ck.ck_cl_flushed;
    if (trust && !crashed && ck.ck_clean) {
        scan_from = ck.ck_cl_flushed;
        redispatch_from = ck.ck_cl_flushed;
    } else if (trust) {
        /* After a crash, re-validate from the start of the segment holding
         * the checkpointed point (as RocketMQ does), re-index from the point. */
        redispatch_from = ck.ck_cq_phys;
        scan_from = ck.ck_cq_phys - (ck.ck_cq_phys - min) % fsz;
    }
    if (st->st_nsegs)
        apg_log_info(SUB, "recovering %s: %s, checkpoint %s, validating from offset %lld",
                     st->st_cldir, crashed ? "abnormal shutdown" : "clean shutdown",
                     ck.ck_valid ? (trust ? "valid" : "out of range") : "missing",
                     (long long)scan_from);
    int64_t end = min;
    if (st->st_nsegs) {
        rc = recover_commitlog(st, scan_from, crashed || !ck.ck_clean, &end, err, errlen);
        if (rc)
            goto out;
    }
    if (end < redispatch_from)
        redispatch_from = end;
    if (end < scan_from)
        scan_from = end;
    atomic_store(&st->st_wrote, end);
    atomic_store(&st->st_flushed, end);

    rc = apg_cq_load_all(st, err, errlen);
    if (rc)
        goto out;
    bool rebuild = (int64_t)st->st_ncq < (trust ? ck.ck_nqueues : 0);
    if (rebuild)
        apg_log_warn(SUB, "%zu consume queue(s) on disk but the checkpoint knew %lld", st->st_ncq,
                     (long long)ck.ck_nqueues);
    if (!rebuild) {
        apg_dispatch_truncate(st, redispatch_from);
        bool gap = false;
        rc = redispatch(st, redispatch_from, end, &gap, err, errlen);
        if (rc)
            goto out;
        rebuild = gap;
        if (gap)
            apg_log_warn(SUB, "consume queues do not match the commit log");
    }
    if (rebuild)
        rc = rebuild_all_queues(st, end, err, errlen);
    if (rc)
        goto out;
    /* Entries pointing below the commit log's minimum are not readable. */
    apg_cq_clean(st, min);

    /* Current segment: the one holding `end` (create it if end is at a
     * boundary with no file yet). */
    struct seg *cur = apg_cl_seg_for(st, end);
    if (cur) {
        st->st_cur = cur;
        st->st_cur_base = cur->sg_base;
    } else
        rc = apg_cl_roll(st, st->st_nsegs ? st->st_segs[st->st_nsegs - 1]->sg_base + fsz : end, err,
                         errlen);
    if (rc)
        goto out;
    if (end < st->st_cur->sg_base) {
        atomic_store(&st->st_wrote, st->st_cur->sg_base);
        atomic_store(&st->st_flushed, st->st_cur->sg_base);
    }
    /* Make the recovered state durable before accepting writes. */
    apg_flush_checkpoint(st, false);
    int fd = abort_path ? open(abort_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644) : -1;
    if (fd < 0) {
        rc = apg_errf(APG_EIO, err, errlen, "create %s: %s", abort_path ? abort_path : "abort",
                      strerror(errno));
        goto out;
    }
    fsync(fd);
    close(fd);
    apg_store_fsync_dir(st->st_root);
out:
    apg_free(abort_path);
    return rc;
}

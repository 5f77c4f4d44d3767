/* `apogee check-store`: an offline, read-only scan of a store directory, in the
 * spirit of redis-check-aof.
 *
 * What it reads. The commit-log segments in name order: each name must be a
 * multiple of the segment size and follow the previous one; each segment is
 * scanned record by record with the recovery scanner (scan.c: magic, sizes,
 * body CRC, PHYSICALOFFSET equal to the position), and must end with the
 * end-of-segment filler unless it holds the end of the log. Then every consume
 * queue: file names and continuity, and every entry between the queue's first
 * and last non-empty one must point at the start of a record of that topic
 * and queue, with that queue offset and size, inside the valid log. Then the
 * checkpoint and the abort marker. Queue offsets are tallied per queue along
 * the log, so queues that lag the log, or are missing, are found too.
 *
 * Verdict. Each finding is printed with its file and offset, as one of
 *   ERROR  damage the broker refuses to start with, or does not repair
 *          (mid-log corruption, a missing segment, a queue entry pointing at
 *          the wrong record, durable data missing);
 *   WARN   what the broker's crash recovery repairs at the next start (a torn
 *          tail, queues behind or ahead of the log, a missing queue, an
 *          unclean shutdown, a missing or stale checkpoint).
 * Exit status: 0 healthy, 1 WARN only, 2 at least one ERROR, 3 the check
 * could not run (bad arguments, unreadable directory).
 *
 * It never writes, creates or locks anything (it only probes the lock file
 * with a shared, non-blocking flock to warn that a broker has the store
 * open). Segments are mapped read-only, and only their written parts come
 * from the file: unwritten (sparse) space maps anonymous zero pages, because
 * reading a hole through a file mapping needs a page on tmpfs and faults
 * (SIGBUS) on a full file system. Single-threaded. */
#define _GNU_SOURCE
#include "cli/check_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/config.h"
#include "common/file.h"
#include "common/log.h"
#include "common/mem.h"
#include "protocol/message.h"
#include "store/store_int.h"

#define MAX_PER_KIND 10 /* findings printed per queue or segment before "... and N more" */

struct cs_seg {
    int64_t cs_base;
    char *cs_name;
    int cs_fd;
    const uint8_t *cs_map;
    size_t cs_len;      /* mapped bytes: min(file size, segment size) */
    size_t cs_data_end; /* end of written data (never-written space need not be read) */
};

/* Per (topic, queue id): what the commit log holds. */
struct cs_queue {
    char *cq_topic;
    int32_t cq_qid;
    int64_t cq_first; /* queue offset of the first record in the log */
    int64_t cq_next;  /* one past the last record's queue offset */
    int64_t cq_records;
    int cq_gaps;
    bool cq_has_cq_dir;
    struct cs_queue *cq_next_in_bucket;
};

#define CS_BUCKETS 4096

struct cs {
    const char *cs_root;
    char *cs_cldir, *cs_cqdir;
    int64_t cs_fsz, cs_cqsz;
    bool cs_crc;
    struct cs_seg *cs_segs;
    int cs_nsegs;
    int64_t cs_log_min, cs_log_end;
    int64_t cs_records;
    int cs_errors, cs_warnings;
    struct cs_queue *cs_queues[CS_BUCKETS];
    int64_t cs_nqueues_log;
    const char *cs_scan_name; /* segment being scanned (for gap messages) */
};

static void say(struct cs *c, const char *level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(struct cs *c, const char *level, const char *fmt, ...)
{
    if (strcmp(level, "ERROR") == 0)
        c->cs_errors++;
    else if (strcmp(level, "WARN") == 0)
        c->cs_warnings++;
    printf("%-5s ", level);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

static uint64_t name_hash(const char *t, size_t tl, int32_t qid)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < tl; i++)
        h = (h ^ (uint8_t)t[i]) * 1099511628211ull;
    return (h ^ (uint32_t)qid) * 1099511628211ull;
}

static struct cs_queue *queue_get(struct cs *c, const char *t, size_t tl, int32_t qid, bool create)
{
    struct cs_queue **b = &c->cs_queues[name_hash(t, tl, qid) % CS_BUCKETS];
    for (struct cs_queue *q = *b; q; q = q->cq_next_in_bucket)
        if (q->cq_qid == qid && strlen(q->cq_topic) == tl && memcmp(q->cq_topic, t, tl) == 0)
            return q;
    if (!create)
        return NULL;
    struct cs_queue *q = apg_calloc(1, sizeof(*q));
    if (!q || !(q->cq_topic = apg_strndup(t, tl))) {
        apg_free(q);
        return NULL;
    }
    q->cq_qid = qid;
    q->cq_first = -1;
    q->cq_next_in_bucket = *b;
    *b = q;
    c->cs_nqueues_log++;
    return q;
}

/* Scanner callback: tallies queue offsets along the log. */
static void tally(void *ud, size_t pos, const struct apg_msgrec *r)
{
    struct cs *c = ud;
    c->cs_records++;
    if (apg_store_tx_no_cq(r->mr_sysflag))
        return;
    struct cs_queue *q = queue_get(c, r->mr_topic, r->mr_topic_len, r->mr_queue_id, true);
    if (!q)
        return;
    if (q->cq_first < 0) {
        q->cq_first = r->mr_queue_offset;
    } else if (r->mr_queue_offset != q->cq_next && q->cq_gaps++ < MAX_PER_KIND) {
        say(c, "WARN",
            "commitlog/%s offset %zu: queue %s/%d jumps from queue offset %" PRId64 " to %" PRId64
            " (the broker rebuilds its consume queues as found)",
            c->cs_scan_name, pos, q->cq_topic, q->cq_qid, q->cq_next - 1, r->mr_queue_offset);
    }
    q->cq_next = r->mr_queue_offset + 1;
    q->cq_records++;
}

/* len bytes of fd mapped read-only, where only the written ranges
 * (SEEK_DATA..SEEK_HOLE, page-rounded) are backed by the file and the holes are
 * anonymous zero pages, so reading any byte cannot fault on a full file system.
 * Without SEEK_DATA support the whole file is mapped. NULL on failure; release
 * with munmap(m, len). */
static const uint8_t *map_written(int fd, size_t len)
{
    uint8_t *m = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    size_t pos = 0;
    while (pos < len) {
        off_t d = lseek(fd, (off_t)pos, SEEK_DATA), h;
        if (d < 0 && errno == ENXIO)
            break; /* no data after pos */
        if (d < 0) {
            d = (off_t)pos; /* SEEK_DATA unsupported: map the rest */
            h = (off_t)len;
        } else if ((h = lseek(fd, d, SEEK_HOLE)) < 0) {
            h = (off_t)len;
        }
        size_t a = (size_t)d & ~(pg - 1), b = ((size_t)h + pg - 1) & ~(pg - 1);
        if (b > len)
            b = len;
        if (a >= b)
            break;
        if (mmap(m + a, b - a, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, (off_t)a) == MAP_FAILED) {
            munmap(m, len);
            return NULL;
        }
        pos = b;
    }
    return m;
}

/* Segment size, when not given: the largest segment file, if it is a whole
 * number of 4 KiB pages and every name is a multiple of it (segment files are
 * created at full size; a crash may leave one shorter, never longer); else the
 * smallest spacing of consecutive names; else the configured size. */
static int64_t infer_seg_size(const char *dir, char **names, int n, int64_t configured,
                              const char **how)
{
    int64_t largest = 0, spacing = 0;
    for (int i = 0; i < n; i++) {
        char *p = apg_path_join(dir, names[i]);
        struct stat sb;
        if (p && stat(p, &sb) == 0 && sb.st_size > largest)
            largest = sb.st_size;
        apg_free(p);
        int64_t d = i ? strtoll(names[i], NULL, 10) - strtoll(names[i - 1], NULL, 10) : 0;
        if (d > 0 && (spacing == 0 || d < spacing))
            spacing = d;
    }
    bool fits = largest >= 4096 && largest % 4096 == 0;
    for (int i = 0; fits && i < n; i++)
        fits = strtoll(names[i], NULL, 10) % largest == 0;
    if (fits) {
        *how = "size of the segment files";
        return largest;
    }
    if (spacing > 0) {
        *how = "spacing of the segment file names";
        return spacing;
    }
    *how = "mappedFileSizeCommitLog";
    return configured;
}

static void open_segments(struct cs *c, char **names, int n)
{
    c->cs_segs = apg_calloc((size_t)(n ? n : 1), sizeof(*c->cs_segs));
    for (int i = 0; i < n; i++) {
        struct cs_seg *s = &c->cs_segs[c->cs_nsegs++];
        s->cs_fd = -1;
        s->cs_base = strtoll(names[i], NULL, 10);
        s->cs_name = names[i];
        if (s->cs_base % c->cs_fsz != 0)
            say(c, "ERROR",
                "commitlog/%s: does not start at a multiple of the segment size %" PRId64
                " (written with another mappedFileSizeCommitLog?)",
                names[i], c->cs_fsz);
        if (c->cs_nsegs > 1) {
            int64_t want = c->cs_segs[c->cs_nsegs - 2].cs_base + c->cs_fsz;
            if (s->cs_base != want)
                say(c, "ERROR",
                    "commitlog/%s: expected the next segment to start at %020" PRId64
                    ": segment file(s) missing, the broker refuses to start",
                    names[i], want);
        }
        char *p = apg_path_join(c->cs_cldir, names[i]);
        s->cs_fd = p ? open(p, O_RDONLY | O_CLOEXEC) : -1;
        apg_free(p);
        struct stat sb;
        if (s->cs_fd < 0 || fstat(s->cs_fd, &sb) != 0) {
            say(c, "ERROR", "commitlog/%s: cannot read: %s", names[i], strerror(errno));
            if (s->cs_fd >= 0)
                close(s->cs_fd);
            s->cs_fd = -1;
            continue;
        }
        size_t size = (size_t)sb.st_size;
        if ((int64_t)size > c->cs_fsz)
            say(c, "ERROR",
                "commitlog/%s: %zu bytes, larger than the segment size %" PRId64
                " (wrong mappedFileSizeCommitLog?)",
                names[i], size, c->cs_fsz);
        else if ((int64_t)size < c->cs_fsz)
            say(c, "WARN",
                "commitlog/%s: %zu bytes, shorter than the segment size %" PRId64
                " (cut short; the missing part reads as zeros and the broker extends it)",
                names[i], size, c->cs_fsz);
        s->cs_len = size < (size_t)c->cs_fsz ? size : (size_t)c->cs_fsz;
        if (s->cs_len) {
            const uint8_t *m = map_written(s->cs_fd, s->cs_len);
            if (!m) {
                say(c, "ERROR", "commitlog/%s: cannot map: %s", names[i], strerror(errno));
                continue;
            }
            s->cs_map = m;
        }
        struct seg tmp = {.sg_fd = s->cs_fd, .sg_size = s->cs_len};
        s->cs_data_end = apg_seg_data_end(&tmp);
    }
}

/* First valid record in segment k (global offset), or -1. */
static int64_t first_valid_in(struct cs *c, int k)
{
    struct cs_seg *s = &c->cs_segs[k];
    if (!s->cs_map)
        return -1;
    size_t f = apg_scan_find_valid(s->cs_map, s->cs_data_end, s->cs_base, 0);
    return f == SIZE_MAX ? -1 : s->cs_base + (int64_t)f;
}

static void check_commitlog(struct cs *c)
{
    c->cs_log_min = c->cs_nsegs ? c->cs_segs[0].cs_base : 0;
    c->cs_log_end = c->cs_log_min;
    int k = 0;
    for (; k < c->cs_nsegs; k++) {
        struct cs_seg *s = &c->cs_segs[k];
        struct apg_scan_result r;
        int64_t before = c->cs_records;
        c->cs_scan_name = s->cs_name;
        if (!s->cs_map) {
            r.sr_how = APG_SCAN_END_ZERO;
            r.sr_end = 0;
            r.sr_next_valid = SIZE_MAX;
            r.sr_why = NULL;
        } else {
            apg_scan_segment(s->cs_map, s->cs_len, s->cs_data_end, s->cs_base, 0, c->cs_crc, tally,
                             c, &r);
        }
        int64_t n = c->cs_records - before;
        c->cs_log_end = s->cs_base + (int64_t)r.sr_end;
        if (r.sr_how == APG_SCAN_END_FULL || r.sr_how == APG_SCAN_END_BLANK) {
            printf("ok    commitlog/%s: %" PRId64 " record(s), complete\n", s->cs_name, n);
            c->cs_log_end = s->cs_base + c->cs_fsz;
            continue;
        }
        /* The end of the log, or damage: is anything valid after this point? */
        int64_t later = r.sr_next_valid != SIZE_MAX ? s->cs_base + (int64_t)r.sr_next_valid : -1;
        for (int j = k + 1; later < 0 && j < c->cs_nsegs; j++)
            later = first_valid_in(c, j);
        if (later >= 0) {
            say(c, "ERROR",
                "commitlog/%s offset %zu (global %" PRId64 "): %s; valid records follow at "
                "global offset %" PRId64 ": corrupt in the middle, the broker refuses to start "
                "(restore the file, or set forceRecoverCorrupt=true to truncate here and lose "
                "what follows)",
                s->cs_name, r.sr_end, c->cs_log_end,
                r.sr_how == APG_SCAN_END_BAD && r.sr_why ? r.sr_why
                                                         : "records stop (zeros, no end filler)",
                later);
        } else if (r.sr_how == APG_SCAN_END_BAD) {
            say(c, "WARN",
                "commitlog/%s offset %zu (global %" PRId64 "): %s; nothing valid follows: a "
                "torn tail, the broker truncates the log here at the next start",
                s->cs_name, r.sr_end, c->cs_log_end, r.sr_why ? r.sr_why : "invalid record");
        }
        printf("%s commitlog/%s: %" PRId64 " record(s), end of the log at offset %zu\n",
               later >= 0 || r.sr_how == APG_SCAN_END_BAD ? "info " : "ok   ", s->cs_name, n,
               r.sr_end);
        break;
    }
    for (k++; k < c->cs_nsegs; k++)
        printf("info  commitlog/%s: past the end of the log, no valid record (a preallocated "
               "segment; the broker reuses or removes it at the next start)\n",
               c->cs_segs[k].cs_name);
}

/* Whether a segment file that could be read holds global offset phys. */
static bool in_present_segment(struct cs *c, int64_t phys)
{
    for (int i = 0; i < c->cs_nsegs; i++)
        if (c->cs_segs[i].cs_map && phys >= c->cs_segs[i].cs_base &&
            phys < c->cs_segs[i].cs_base + c->cs_fsz)
            return true;
    return false;
}

/* The record at global offset phys, decoded without the CRC (the log pass
 * checked it), or false. */
static bool record_at(struct cs *c, int64_t phys, struct apg_msgrec *m)
{
    if (phys < c->cs_log_min || phys >= c->cs_log_end || !c->cs_nsegs)
        return false;
    int lo = 0, hi = c->cs_nsegs - 1; /* last segment with base <= phys */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (c->cs_segs[mid].cs_base <= phys)
            lo = mid;
        else
            hi = mid - 1;
    }
    struct cs_seg *s = &c->cs_segs[lo];
    if (!s->cs_map || phys < s->cs_base)
        return false;
    size_t off = (size_t)(phys - s->cs_base);
    if (off >= s->cs_len)
        return false;
    return apg_msgrec_decode(s->cs_map + off, s->cs_len - off, false, m, NULL) == APG_MSGREC_OK &&
           m->mr_phys_offset == phys;
}

/* One queue directory: files, then entries. */
static void check_queue(struct cs *c, const char *topic, int32_t qid, const char *dir)
{
    char **names;
    int n = apg_seg_list(dir, &names);
    struct cs_queue *lq = queue_get(c, topic, strlen(topic), qid, true);
    if (lq)
        lq->cq_has_cq_dir = true;
    int64_t cqsz = c->cs_cqsz;
    int problems = 0;
    int64_t min = -1, max = -1, entries = 0, retired = 0;
    int64_t prev_base = -1;
    for (int i = 0; i < n; i++) {
        int64_t base = strtoll(names[i], NULL, 10);
        if (base % cqsz != 0 || (prev_base >= 0 && base != prev_base + cqsz)) {
            say(c, "WARN",
                "consumequeue/%s/%d/%s: unexpected file (not at a multiple of %" PRId64
                " or not next to the previous file): the broker rebuilds this queue",
                topic, qid, names[i], cqsz);
            break;
        }
        prev_base = base;
        char *p = apg_path_join(dir, names[i]);
        int fd = p ? open(p, O_RDONLY | O_CLOEXEC) : -1;
        apg_free(p);
        struct stat sb;
        if (fd < 0 || fstat(fd, &sb) != 0) {
            say(c, "ERROR", "consumequeue/%s/%d/%s: cannot read: %s", topic, qid, names[i],
                strerror(errno));
            if (fd >= 0)
                close(fd);
            continue;
        }
        size_t len = (size_t)sb.st_size < (size_t)cqsz ? (size_t)sb.st_size : (size_t)cqsz;
        if ((int64_t)sb.st_size != cqsz)
            say(c, "WARN", "consumequeue/%s/%d/%s: %lld bytes, expected %" PRId64, topic, qid,
                names[i], (long long)sb.st_size, cqsz);
        const uint8_t *m = NULL;
        if (len) {
            m = map_written(fd, len);
        }
        for (size_t off = 0; m && off + CQ_UNIT <= len; off += CQ_UNIT) {
            const uint8_t *e = m + off;
            int64_t lo = (base + (int64_t)off) / CQ_UNIT;
            int64_t phys = (int64_t)apg_be64(e);
            int32_t size = (int32_t)apg_be32(e + 8);
            if (size == 0) /* never written (or cleared): judged below if inside [min, max) */
                continue;
            if (min < 0)
                min = lo;
            if (max >= 0 && lo > max && problems++ < MAX_PER_KIND)
                say(c, "WARN",
                    "consumequeue/%s/%d/%s offset %zu: entries %" PRId64 "..%" PRId64
                    " are empty (a hole in the queue)",
                    topic, qid, names[i], off, max, lo - 1);
            max = lo + 1;
            entries++;
            if (phys < c->cs_log_min) {
                retired++; /* the record was removed by retention */
                continue;
            }
            struct apg_msgrec r;
            if (phys + size > c->cs_log_end) {
                if (problems++ < MAX_PER_KIND)
                    say(c, "WARN",
                        "consumequeue/%s/%d/%s offset %zu: queue offset %" PRId64
                        " points at commit-log offset %" PRId64 ", past the end of valid data "
                        "%" PRId64 " (the broker drops it at the next start)",
                        topic, qid, names[i], off, lo, phys, c->cs_log_end);
            } else if (!record_at(c, phys, &r)) {
                if (problems++ < MAX_PER_KIND)
                    say(c, "ERROR",
                        "consumequeue/%s/%d/%s offset %zu: queue offset %" PRId64
                        " points at commit-log offset %" PRId64 ", %s",
                        topic, qid, names[i], off, lo, phys,
                        in_present_segment(c, phys) ? "which is not the start of a record"
                                                    : "in a missing segment");
            } else if ((int32_t)r.mr_total_size != size || r.mr_queue_id != qid ||
                       r.mr_queue_offset != lo || r.mr_topic_len != strlen(topic) ||
                       memcmp(r.mr_topic, topic, r.mr_topic_len) != 0) {
                if (problems++ < MAX_PER_KIND)
                    say(c, "ERROR",
                        "consumequeue/%s/%d/%s offset %zu: queue offset %" PRId64
                        " points at the record at %" PRId64 " (%.*s/%d queue offset %" PRId64
                        ", %u bytes), not at its own (%d bytes)",
                        topic, qid, names[i], off, lo, phys, (int)r.mr_topic_len, r.mr_topic,
                        r.mr_queue_id, r.mr_queue_offset, r.mr_total_size, size);
            }
        }
        if (m)
            munmap((void *)m, len);
        close(fd);
    }
    apg_seg_names_free(names, n);
    if (problems > MAX_PER_KIND)
        printf("      ... and %d more finding(s) in consumequeue/%s/%d\n", problems - MAX_PER_KIND,
               topic, qid);
    if (max < 0)
        min = max = 0;
    int64_t log_next = lq && lq->cq_first >= 0 ? lq->cq_next : -1;
    if (log_next > max)
        say(c, "WARN",
            "consumequeue/%s/%d: ends at queue offset %" PRId64 " but the commit log holds "
            "records up to %" PRId64 " (behind the log; the broker re-indexes them at the next "
            "start)",
            topic, qid, max, log_next);
    printf("%s consumequeue/%s/%d: %" PRId64 " entr%s [%" PRId64 ", %" PRId64 ")%s\n",
           problems || log_next > max ? "info " : "ok   ", topic, qid, entries,
           entries == 1 ? "y" : "ies", min, max,
           retired ? " (some point below the commit log's start: removed by retention)" : "");
}

static void check_queues(struct cs *c)
{
    DIR *d = opendir(c->cs_cqdir);
    if (!d) {
        if (c->cs_nqueues_log)
            say(c, "WARN",
                "no consumequeue directory, but the commit log holds records of %" PRId64
                " queue(s): the broker rebuilds every queue at the next start",
                c->cs_nqueues_log);
        return;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char *td = apg_path_join(c->cs_cqdir, de->d_name);
        DIR *qd = td ? opendir(td) : NULL;
        struct dirent *qe;
        while (qd && (qe = readdir(qd))) {
            char *endp;
            long qid = strtol(qe->d_name, &endp, 10);
            if (qe->d_name[0] == '.' || *endp || qid < 0 || qid > INT32_MAX)
                continue;
            char *qdir = apg_path_join(td, qe->d_name);
            if (qdir)
                check_queue(c, de->d_name, (int32_t)qid, qdir);
            apg_free(qdir);
        }
        if (qd)
            closedir(qd);
        apg_free(td);
    }
    closedir(d);
    for (int b = 0; b < CS_BUCKETS; b++)
        for (struct cs_queue *q = c->cs_queues[b]; q; q = q->cq_next_in_bucket)
            if (!q->cq_has_cq_dir && q->cq_records > 0)
                say(c, "WARN",
                    "consumequeue/%s/%d: missing, but the commit log holds %" PRId64
                    " record(s) of it (the broker rebuilds it at the next start)",
                    q->cq_topic, q->cq_qid, q->cq_records);
}

static void check_checkpoint(struct cs *c)
{
    struct apg_ckpt ck;
    apg_ckpt_read(c->cs_root, &ck);
    char *ap = apg_path_join(c->cs_root, "abort");
    bool abort_marker = ap && access(ap, F_OK) == 0;
    apg_free(ap);
    if (!ck.ck_valid) {
        if (c->cs_nsegs)
            say(c, "WARN",
                "checkpoint: %s (the broker validates the whole commit log at the next start)",
                ck.ck_why ? ck.ck_why : "unreadable");
    } else {
        printf("ok    checkpoint: %s, commit log durable to %" PRId64 ", queues durable to %" PRId64
               ", %" PRId64 " queue(s)\n",
               ck.ck_clean ? "clean shutdown" : "written while running", ck.ck_cl_flushed,
               ck.ck_cq_phys, ck.ck_nqueues);
        if (ck.ck_cl_flushed > c->cs_log_end)
            say(c, "ERROR",
                "checkpoint: the commit log was durable up to %" PRId64
                " but valid data ends at %" PRId64 ": records that were acknowledged as "
                "durable are missing",
                ck.ck_cl_flushed, c->cs_log_end);
        if (ck.ck_cq_phys > ck.ck_cl_flushed)
            say(c, "WARN",
                "checkpoint: queues durable to %" PRId64 ", past the commit log's %" PRId64
                " (inconsistent; the broker re-validates from the start)",
                ck.ck_cq_phys, ck.ck_cl_flushed);
        if (!ck.ck_clean && !abort_marker)
            say(c, "WARN", "checkpoint: not marked clean, yet no abort marker");
    }
    if (abort_marker)
        say(c, "WARN",
            "abort: marker present: the store was not closed cleanly (or a broker has it open); "
            "the next start runs crash recovery");
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: apogee check-store --storePathRootDir=DIR [-c broker.conf] [--key=value ...]\n"
            "\n"
            "Scans a store offline and read-only: commit-log segments (record magic, sizes,\n"
            "body CRC, continuity across files), consume queues (every entry must point at its\n"
            "record inside the commit log), the checkpoint and the abort marker.\n"
            "Keys used: storePathRootDir, storePathCommitLog, mappedFileSizeCommitLog (default:\n"
            "from the segment files), mappedFileSizeConsumeQueue (default: from\n"
            "the queue file size), checkCRCOnRecover.\n"
            "\n"
            "exit status: 0 healthy, 1 problems the broker repairs at its next start (WARN),\n"
            "2 damage it refuses to start with or does not repair (ERROR), 3 check not run\n");
}

static bool arg_given(int argc, char **argv, const char *key)
{
    for (int i = 1; i < argc; i++)
        if (strncmp(argv[i], "--", 2) == 0 && strncmp(argv[i] + 2, key, strlen(key)) == 0)
            return true;
    return false;
}

/* Size of the first queue file found, if it is a whole number of entries. */
static int64_t first_cq_file_size(const char *cqdir)
{
    int64_t size = -1;
    DIR *d = opendir(cqdir);
    struct dirent *de;
    while (d && size < 0 && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char *td = apg_path_join(cqdir, de->d_name);
        DIR *qd = td ? opendir(td) : NULL;
        struct dirent *qe;
        while (qd && size < 0 && (qe = readdir(qd))) {
            if (qe->d_name[0] == '.')
                continue;
            char *qdir = apg_path_join(td, qe->d_name);
            char **names = NULL;
            int n = qdir ? apg_seg_list(qdir, &names) : 0;
            if (n > 0) {
                char *p = apg_path_join(qdir, names[0]);
                struct stat sb;
                if (p && stat(p, &sb) == 0 && sb.st_size > 0 && sb.st_size % CQ_UNIT == 0)
                    size = sb.st_size;
                apg_free(p);
            }
            apg_seg_names_free(names, n);
            apg_free(qdir);
        }
        if (qd)
            closedir(qd);
        apg_free(td);
    }
    if (d)
        closedir(d);
    return size;
}

int apg_cli_check_store_main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
    apg_log_set_level(APG_LOG_WARN);
    char err[512] = "";
    bool print_only = false;
    struct apg_config *cfg = apg_config_new(APG_ROLE_BROKER);
    if (!cfg || apg_config_parse_args(cfg, argc - 1, argv + 1, &print_only, err, sizeof(err))) {
        fprintf(stderr, "apogee check-store: %s\n", err[0] ? err : "out of memory");
        apg_config_free(cfg);
        return 3;
    }
    bool conf_file = false;
    for (int i = 1; i < argc; i++)
        conf_file |= strcmp(argv[i], "-c") == 0;
    if (!conf_file && !arg_given(argc, argv, "storePathRootDir")) {
        usage(stderr);
        apg_config_free(cfg);
        return 3;
    }
    struct apg_store_opts o;
    apg_store_opts_from_config(&o, cfg);
    struct cs *c = apg_calloc(1, sizeof(*c));
    if (!c) {
        apg_config_free(cfg);
        return 3;
    }
    c->cs_root = o.so_root_dir;
    c->cs_cldir = o.so_commitlog_dir && *o.so_commitlog_dir
                      ? apg_strdup(o.so_commitlog_dir)
                      : apg_path_join(o.so_root_dir, "commitlog");
    c->cs_cqdir = apg_path_join(o.so_root_dir, "consumequeue");
    c->cs_crc = o.so_check_crc_on_recover;
    int rc = 3;
    struct stat sb;
    if (!c->cs_cldir || !c->cs_cqdir)
        goto out;
    errno = 0;
    if (stat(c->cs_root, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        fprintf(stderr, "apogee check-store: %s: %s\n", c->cs_root,
                errno ? strerror(errno) : "not a directory");
        goto out;
    }
    char **names;
    int n = apg_seg_list(c->cs_cldir, &names);
    const char *how;
    if (arg_given(argc, argv, "mappedFileSizeCommitLog")) {
        c->cs_fsz = (int64_t)o.so_commitlog_file_size;
        how = "mappedFileSizeCommitLog";
    } else {
        c->cs_fsz = infer_seg_size(c->cs_cldir, names, n, (int64_t)o.so_commitlog_file_size, &how);
    }
    c->cs_cqsz = (int64_t)o.so_cq_file_size;
    if (!arg_given(argc, argv, "mappedFileSizeConsumeQueue")) {
        int64_t f = first_cq_file_size(c->cs_cqdir);
        if (f > 0)
            c->cs_cqsz = f;
    }
    printf("apogee check-store %s: commit log %s, segment size %" PRId64 " (from %s), "
           "queue file size %" PRId64 ", CRC %s\n",
           c->cs_root, c->cs_cldir, c->cs_fsz, how, c->cs_cqsz,
           c->cs_crc ? "checked" : "not checked");
    char *lp = apg_path_join(c->cs_root, "lock");
    int lfd = lp ? open(lp, O_RDONLY | O_CLOEXEC) : -1;
    apg_free(lp);
    if (lfd >= 0 && flock(lfd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK)
        say(c, "WARN", "lock: a running broker holds this store; what follows may be inconsistent");
    if (lfd >= 0)
        close(lfd);

    open_segments(c, names, n);
    check_commitlog(c);
    check_queues(c);
    check_checkpoint(c);
    printf("%s: %" PRId64 " record(s) in %d segment(s), commit log [%" PRId64 ", %" PRId64
           "), %" PRId64 " queue(s); %d error(s), %d warning(s)\n",
           c->cs_errors     ? "DAMAGED"
           : c->cs_warnings ? "NEEDS RECOVERY"
                            : "HEALTHY",
           c->cs_records, n, c->cs_log_min, c->cs_log_end, c->cs_nqueues_log, c->cs_errors,
           c->cs_warnings);
    rc = c->cs_errors ? 2 : c->cs_warnings ? 1 : 0;
    for (int i = 0; i < c->cs_nsegs; i++) {
        if (c->cs_segs[i].cs_map)
            munmap((void *)c->cs_segs[i].cs_map, c->cs_segs[i].cs_len);
        if (c->cs_segs[i].cs_fd >= 0)
            close(c->cs_segs[i].cs_fd);
    }
    apg_free(c->cs_segs);
    apg_seg_names_free(names, n);
    for (int b = 0; b < CS_BUCKETS; b++) {
        struct cs_queue *q = c->cs_queues[b], *nx;
        for (; q; q = nx) {
            nx = q->cq_next_in_bucket;
            apg_free(q->cq_topic);
            apg_free(q);
        }
    }
out:
    apg_free(c->cs_cldir);
    apg_free(c->cs_cqdir);
    apg_free(c);
    apg_config_free(cfg);
    return rc;
}

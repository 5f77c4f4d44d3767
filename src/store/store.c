/* The message store: commit log + consume queues in mapped segment files.
 *
 * Design. The commit log is a sequence of fixed-size segment files, each
 * mmap()ed MAP_SHARED for its whole life. An append (apg_store_put) runs in the
 * caller's thread: it validates and CRCs the messages outside any lock, then
 * under st_append_mtx reserves space, memcpy()s the encoded records straight
 * into the mapping, writes each record's 20-byte consume-queue entry into the
 * queue's mapped file, and publishes the new write position and queue max
 * offsets with release stores. Readers load those with acquire and may copy
 * any byte below them without taking the append lock.
 *
 * Locks, in the order they may be nested:
 *   st_append_mtx  appends, segment rolling, delete_topic
 *   st_struct_lock rwlock (writer preferred) over the *shape* of the store: the
 *                  commit-log segment array, the queue map, each queue's segment
 *                  array. Readers hold it shared while copying; adding or
 *                  removing a segment or a queue takes it exclusive briefly.
 *   st_flush_mtx   flush-thread sleep/wake-up only (SYNC_FLUSH waiters are
 *                  queued under st_append_mtx, in offset order)
 *   st_prealloc_mtx the preallocated next segment
 * The appender caches its current segment and queue tails, which retention never
 * removes, so the common append takes only st_append_mtx.
 *
 * Threads: the flush thread (flush.c-style loop in flush_main) owns fsyncs,
 * SYNC_FLUSH acknowledgements and the checkpoint; the service thread owns
 * preallocation of the next segment, the disk-space guard and retention.
 *
 * Recovery (open_recover) trusts the checkpoint only as far as it says data
 * was durable: after a crash it re-validates every record from there, truncates
 * a torn tail, refuses mid-log corruption (unless forceRecoverCorrupt) and
 * rebuilds consume-queue entries from the commit log. */
#define _GNU_SOURCE
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/file.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/mem.h"
#include "protocol/message.h"
#include "store/store_int.h"

#define SUB "store"
#define CQ_UNIT 20
#define CKPT_SIZE 4096
#define CKPT_MAGIC "APGCKPT1"
#define CKPT_EXT 64 /* apogee fields start here, after RocketMQ's */
/* Syncs in flight under SYNC_FLUSH. Measured on the reference VM, two
 * overlapping fdatasyncs each took ~500 us instead of ~350 us and throughput
 * fell, so the default is one; the code supports more for faster devices. */
#define NFLUSHERS 1

/* A mapped segment file (commit log or consume queue). Immutable after
 * creation except for its contents. */
struct seg {
    int64_t sg_base; /* offset of its first byte: global (commit log) or byte offset in the queue */
    uint8_t *sg_map;
    size_t sg_size;
    int sg_fd;
    char *sg_path;
};

/* One consume queue. Shape (cq_segs) guarded by st_struct_lock; entries are
 * written only under st_append_mtx (or during open/recovery). */
struct cq {
    char *cq_topic;
    size_t cq_topic_len;
    int32_t cq_qid;
    char *cq_dir;
    struct seg **cq_segs;
    int cq_nsegs, cq_capsegs;
    _Atomic int64_t cq_max; /* number of logical entries (next queue offset) */
    _Atomic int64_t cq_min; /* first available logical offset */
    int64_t cq_flushed;     /* entries known durable; flush thread */
    struct cq *cq_next;     /* hash chain */
};

struct waiter {
    int64_t w_target; /* durable when flushed >= target */
    int64_t w_deadline_ms;
    apg_store_ack_fn w_cb;
    void *w_ud;
    apg_err_t w_rc; /* outcome, set when handed to the ack thread */
    struct waiter *w_next;
};

/* A thread blocked in apg_store_put (no ack_cb) waits on sw_done with a bare
 * futex: the ack thread's one FUTEX_WAKE is the whole hand-off (no mutex for
 * the woken thread to contend for right after the wake-up). */
struct sync_wait {
    _Atomic uint32_t sw_done;
    apg_err_t sw_rc;
};

struct apg_store {
    struct apg_store_opts st_opts;
    char *st_root, *st_cldir, *st_cqdir;
    int st_lock_fd;

    pthread_mutex_t st_append_mtx;
    pthread_rwlock_t st_struct_lock;

    /* commit log */
    struct seg **st_segs;
    int st_nsegs, st_capsegs;
    struct seg *st_cur;          /* append lock */
    _Atomic int64_t st_wrote;    /* write position (release-published) */
    _Atomic int64_t st_min_phys; /* first byte still present */
    _Atomic int64_t st_flushed;  /* durable up to here */
    _Atomic int64_t st_last_store_ts;

    /* queues */
    struct cq **st_cqmap;
    size_t st_cqbuckets, st_ncq;
    struct cq *st_cq_cache; /* append lock: last queue appended to */

    /* flush */
    pthread_mutex_t st_flush_mtx;
    pthread_cond_t st_flush_cond;
    struct waiter *st_pend_head, **st_pend_tailp;   /* append lock: new waiters */
    struct waiter *st_carry_head, **st_carry_tailp; /* flush thread: not yet durable */
    _Atomic bool st_flush_sleeping;
    _Atomic long st_pend_count;
    pthread_t st_flush_thr;
    /* SYNC_FLUSH: NFLUSHERS threads keep up to NFLUSHERS syncs of consecutive
     * ranges in flight; st_flushed advances over the completed prefix. All
     * under st_flush_mtx. */
    pthread_t st_flusher2;
    int64_t st_claimed;
    uint64_t st_issue_seq, st_retire_seq;
    int64_t st_slot_end[NFLUSHERS];
    bool st_slot_done[NFLUSHERS];
    pthread_mutex_t st_complete_mtx; /* serialises complete_waiters */
    /* ack thread: runs SYNC_FLUSH callbacks so the flush thread can start
     * the next sync at once (pipelining) */
    pthread_mutex_t st_ack_mtx;
    pthread_cond_t st_ack_cond;
    struct waiter *st_ack_head, **st_ack_tailp;
    bool st_ack_stop;
    pthread_t st_ack_thr;
    _Atomic bool st_fsync_failed;
    _Atomic bool st_fail_next_fsync;
    _Atomic uint64_t st_fsync_count;
    _Atomic uint64_t st_fsync_us;
    int64_t st_last_ckpt_ms;

    /* service */
    pthread_mutex_t st_prealloc_mtx;
    pthread_cond_t st_prealloc_cond;
    struct seg *st_next;       /* preallocated next segment */
    int64_t st_cur_base;       /* base of the current segment, for the preallocator */
    _Atomic int64_t st_warmed; /* service thread: zero-filled (written extents) up to here */
    /* Zero-fill guard (see zero_ahead): the appender announces the end of the
     * bytes it is about to pwrite in st_reserve_end, the service thread the
     * start of the chunk it is overwriting with zeros in st_zero_busy
     * (INT64_MAX when none), both seq_cst, so at least one of them sees the
     * other; the appender then waits on st_zero_mtx, which the service thread
     * holds while it writes the chunk. */
    _Atomic int64_t st_reserve_end;
    bool st_zero_failed; /* service thread: stop zero-filling */
    _Atomic int64_t st_zero_busy;
    pthread_mutex_t st_zero_mtx;
    int64_t st_warm_origin; /* service thread: write position when warming began */
    int64_t st_dropped;     /* service thread: page cache dropped below here (drop_behind) */
    bool st_next_wanted;
    pthread_t st_svc_thr;
    _Atomic int st_disk_ratio;
    _Atomic int st_test_disk_ratio;
    _Atomic bool st_disk_full;
    int st_last_clean_hour;

    _Atomic bool st_closing;
    _Atomic uint64_t st_put_count, st_put_bytes;

    apg_store_arrive_fn st_arrive;
    void *st_arrive_ud;

    pthread_mutex_t st_err_mtx;
    char st_last_error[256];
    bool st_threads_started;
};

/* ------------------------------------------------------------------------ */
/* small helpers */

static void set_last_error(struct apg_store *st, const char *msg)
{
    pthread_mutex_lock(&st->st_err_mtx);
    snprintf(st->st_last_error, sizeof(st->st_last_error), "%s", msg);
    pthread_mutex_unlock(&st->st_err_mtx);
}

static void fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

static void seg_free(struct seg *s, bool unlink_file)
{
    if (!s)
        return;
    if (s->sg_map)
        munmap(s->sg_map, s->sg_size);
    if (s->sg_fd >= 0)
        close(s->sg_fd);
    if (unlink_file && s->sg_path)
        unlink(s->sg_path);
    apg_free(s->sg_path);
    apg_free(s);
}

/* Overwrites bytes [from, to) of a commit-log segment with zeros by write()
 * and makes that durable, so the blocks become written extents: a later
 * append there and its sync then only write data and flush the device cache,
 * with no unwritten-extent conversion (a journal commit) in every sync
 * (measured with bench/bench_fsync, docs/perf-log/perf-store.md). Uses its own file
 * descriptor: an fdatasync consumes a writeback error for the open file it is
 * called on only, so the flush thread's syncs through sg_fd/sg_map still see
 * every error. Service thread; the caller makes sure no append targets the
 * range while the zeros are written (zero_ahead). */
static int seg_zero(struct seg *s, size_t from, size_t to)
{
    static const uint8_t zeros[65536];
    int fd = open(s->sg_path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct iovec iov[16];
    while (from < to) {
        size_t len = to - from;
        int cnt = 0;
        for (; cnt < 16 && len > 0; cnt++) {
            iov[cnt].iov_base = (void *)zeros;
            iov[cnt].iov_len = len < sizeof(zeros) ? len : sizeof(zeros);
            len -= iov[cnt].iov_len;
        }
        ssize_t n = pwritev(fd, iov, cnt, (off_t)from);
        if (n <= 0) {
            close(fd);
            return -1;
        }
        from += (size_t)n;
    }
    return fd; /* the caller syncs (outside its locks) and closes */
}

/* Writes len bytes at file offset off, all of them. 0 or -1 (errno). */
static int pwrite_all(int fd, const uint8_t *p, size_t len, off_t off)
{
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
        off += n;
    }
    return 0;
}

/* Opens or creates the segment file dir/<20-digit base>, sized `size`, and
 * maps it. prealloc: reserve blocks (fallocate) and fault the pages in now so
 * the appender does not. */
static struct seg *seg_open(const char *dir, int64_t base, size_t size, bool create, bool prealloc,
                            char *err, size_t errlen)
{
    char name[32];
    snprintf(name, sizeof(name), "%020lld", (long long)base);
    struct seg *s = apg_calloc(1, sizeof(*s));
    if (!s) {
        apg_errf(APG_ENOMEM, err, errlen, "out of memory");
        return NULL;
    }
    s->sg_fd = -1;
    s->sg_base = base;
    s->sg_size = size;
    s->sg_path = apg_path_join(dir, name);
    if (!s->sg_path)
        goto fail;
    s->sg_fd = open(s->sg_path, O_RDWR | (create ? O_CREAT : 0) | O_CLOEXEC, 0644);
    if (s->sg_fd < 0) {
        apg_errf(APG_EIO, err, errlen, "open %s: %s", s->sg_path, strerror(errno));
        goto fail;
    }
    struct stat sb;
    if (fstat(s->sg_fd, &sb) != 0) {
        apg_errf(APG_EIO, err, errlen, "stat %s: %s", s->sg_path, strerror(errno));
        goto fail;
    }
    if ((size_t)sb.st_size != size) {
        if ((size_t)sb.st_size > size) {
            apg_errf(APG_ECORRUPT, err, errlen,
                     "%s is %lld bytes, larger than the segment size %zu: wrong "
                     "mappedFileSize setting?",
                     s->sg_path, (long long)sb.st_size, size);
            goto fail;
        }
        /* New file, or one cut short by a crash: the missing part reads as zeros. */
        if (posix_fallocate(s->sg_fd, 0, (off_t)size) == 0) {
        } else if (ftruncate(s->sg_fd, (off_t)size) != 0) {
            apg_errf(APG_EIO, err, errlen, "size %s: %s", s->sg_path, strerror(errno));
            goto fail;
        }
    }
    s->sg_map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, s->sg_fd, 0);
    if (s->sg_map == MAP_FAILED) {
        s->sg_map = NULL;
        apg_errf(APG_EIO, err, errlen, "mmap %s: %s", s->sg_path, strerror(errno));
        goto fail;
    }
    (void)prealloc; /* blocks are reserved above; zero_ahead() zero-fills them */
    return s;
fail:
    seg_free(s, false);
    return NULL;
}

/* msync a byte range of a segment (page aligned down). */
static int seg_sync(struct apg_store *st, struct seg *s, size_t from, size_t to)
{
    if (to <= from)
        return 0;
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    size_t a = from & ~(pg - 1);
    atomic_fetch_add(&st->st_fsync_count, 1);
    if (atomic_exchange(&st->st_fail_next_fsync, false)) {
        errno = EIO;
        return -1;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = msync(s->sg_map + a, to - a, MS_SYNC);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    atomic_fetch_add(&st->st_fsync_us, (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000 +
                                                  (t1.tv_nsec - t0.tv_nsec) / 1000));
    return rc;
}

/* ------------------------------------------------------------------------ */
/* queue map */

static uint64_t cq_hash(const char *t, size_t tl, int32_t qid)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < tl; i++)
        h = (h ^ (uint8_t)t[i]) * 1099511628211ull;
    h = (h ^ (uint32_t)qid) * 1099511628211ull;
    return h;
}

/* Caller holds st_struct_lock (shared or exclusive). */
static struct cq *cq_find(struct apg_store *st, const char *t, size_t tl, int32_t qid)
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
static struct cq *cq_create(struct apg_store *st, const char *t, size_t tl, int32_t qid)
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

static void cq_free(struct cq *q, bool remove_files)
{
    for (int i = 0; i < q->cq_nsegs; i++)
        seg_free(q->cq_segs[i], remove_files);
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
static struct seg *cq_seg_for(struct apg_store *st, struct cq *q, int64_t lo)
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

static const uint8_t *cq_entry(struct apg_store *st, struct cq *q, int64_t lo)
{
    struct seg *s = cq_seg_for(st, q, lo);
    if (!s)
        return NULL;
    return s->sg_map + (lo * CQ_UNIT - s->sg_base);
}

static int cq_add_seg(struct apg_store *st, struct cq *q, int64_t base, char *err, size_t errlen)
{
    apg_err_t mrc = apg_file_mkdir_p(q->cq_dir, err, errlen);
    if (mrc)
        return mrc;
    struct seg *s =
        seg_open(q->cq_dir, base, st->st_opts.so_cq_file_size, true, false, err, errlen);
    if (!s)
        return APG_EIO;
    if (q->cq_nsegs == q->cq_capsegs) {
        int nc = q->cq_capsegs ? q->cq_capsegs * 2 : 4;
        struct seg **ns = apg_realloc(q->cq_segs, (size_t)nc * sizeof(*ns));
        if (!ns) {
            seg_free(s, true);
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
static apg_err_t cq_write(struct apg_store *st, struct cq *q, int64_t lo, int64_t phys,
                          int32_t size, int64_t tags, char *err, size_t errlen)
{
    int64_t fsz = (int64_t)st->st_opts.so_cq_file_size;
    struct seg *s = q->cq_nsegs ? q->cq_segs[q->cq_nsegs - 1] : NULL;
    int64_t byte = lo * CQ_UNIT;
    if (!s || byte < s->sg_base || byte >= s->sg_base + fsz) {
        s = cq_seg_for(st, q, lo);
        if (!s) {
            int64_t base = byte / fsz * fsz;
            if (q->cq_nsegs && base != q->cq_segs[q->cq_nsegs - 1]->sg_base + fsz)
                return apg_errf(APG_ECORRUPT, err, errlen,
                                "consume queue %s: offset %lld is not next to the last segment",
                                q->cq_dir, (long long)lo);
            pthread_rwlock_wrlock(&st->st_struct_lock);
            apg_err_t rc = cq_add_seg(st, q, base, err, errlen);
            pthread_rwlock_unlock(&st->st_struct_lock);
            if (rc)
                return rc;
            s = q->cq_segs[q->cq_nsegs - 1];
        }
    }
    uint8_t *p = s->sg_map + (byte - s->sg_base);
    apg_wbe64(p, (uint64_t)phys);
    apg_wbe32(p + 8, (uint32_t)size);
    apg_wbe64(p + 12, (uint64_t)tags);
    return APG_OK;
}

/* ------------------------------------------------------------------------ */
/* commit log segments */

/* Caller holds the struct lock (any mode). */
static struct seg *cl_seg_for(struct apg_store *st, int64_t off)
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

static apg_err_t cl_push_seg(struct apg_store *st, struct seg *s)
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
static apg_err_t cl_roll(struct apg_store *st, int64_t base, char *err, size_t errlen)
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
        seg_free(st->st_next, false);
        st->st_next = NULL;
    }
    if (!s)
        s = seg_open(st->st_cldir, base, st->st_opts.so_commitlog_file_size, true, false, err,
                     errlen);
    if (!s) {
        pthread_mutex_unlock(&st->st_prealloc_mtx);
        return APG_EIO;
    }
    apg_err_t rc = cl_push_seg(st, s);
    if (rc) {
        pthread_mutex_unlock(&st->st_prealloc_mtx);
        seg_free(s, true);
        return apg_errf(rc, err, errlen, "out of memory");
    }
    st->st_cur = s;
    st->st_cur_base = base;
    st->st_next_wanted = true;
    pthread_cond_signal(&st->st_prealloc_cond);
    pthread_mutex_unlock(&st->st_prealloc_mtx);
    return APG_OK;
}

/* ------------------------------------------------------------------------ */
/* checkpoint */

struct ckpt {
    bool ck_valid;
    bool ck_clean;
    int64_t ck_cl_flushed;
    int64_t ck_cq_phys;
    int64_t ck_nqueues;
};

static void ckpt_read(struct apg_store *st, struct ckpt *ck)
{
    memset(ck, 0, sizeof(*ck));
    char *p = apg_path_join(st->st_root, "checkpoint");
    int fd = p ? open(p, O_RDONLY | O_CLOEXEC) : -1;
    apg_free(p);
    if (fd < 0)
        return;
    uint8_t b[CKPT_SIZE];
    ssize_t n = pread(fd, b, sizeof(b), 0);
    close(fd);
    if (n < CKPT_EXT + 48 || memcmp(b + CKPT_EXT, CKPT_MAGIC, 8) != 0)
        return;
    if (apg_crc32(b + CKPT_EXT, 44) != apg_be32(b + CKPT_EXT + 44))
        return;
    ck->ck_valid = true;
    ck->ck_clean = apg_be32(b + CKPT_EXT + 8) & 1;
    ck->ck_cl_flushed = (int64_t)apg_be64(b + CKPT_EXT + 12);
    ck->ck_cq_phys = (int64_t)apg_be64(b + CKPT_EXT + 20);
    ck->ck_nqueues = (int64_t)apg_be64(b + CKPT_EXT + 28);
}

/* Flush thread or close: one 4 KiB page, written in place and synced.
 * RocketMQ's fields first (docs/wire.md §9.4), then apogee's, CRC-protected. */
static int ckpt_write(struct apg_store *st, bool clean, int64_t cl_flushed, int64_t cq_phys,
                      int64_t nqueues)
{
    uint8_t b[CKPT_SIZE];
    memset(b, 0, sizeof(b));
    int64_t ts = atomic_load(&st->st_last_store_ts);
    apg_wbe64(b, (uint64_t)ts);              /* physicMsgTimestamp */
    apg_wbe64(b + 8, (uint64_t)ts);          /* logicsMsgTimestamp */
    apg_wbe64(b + 16, 0);                    /* indexMsgTimestamp */
    apg_wbe64(b + 24, (uint64_t)cl_flushed); /* masterFlushedOffset */
    apg_wbe64(b + 32, (uint64_t)cl_flushed); /* confirmPhyOffset */
    memcpy(b + CKPT_EXT, CKPT_MAGIC, 8);
    apg_wbe32(b + CKPT_EXT + 8, clean ? 1 : 0);
    apg_wbe64(b + CKPT_EXT + 12, (uint64_t)cl_flushed);
    apg_wbe64(b + CKPT_EXT + 20, (uint64_t)cq_phys);
    apg_wbe64(b + CKPT_EXT + 28, (uint64_t)nqueues);
    apg_wbe32(b + CKPT_EXT + 36, 1); /* version */
    apg_wbe32(b + CKPT_EXT + 40, 0);
    apg_wbe32(b + CKPT_EXT + 44, apg_crc32(b + CKPT_EXT, 44));
    char *p = apg_path_join(st->st_root, "checkpoint");
    int fd = p ? open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644) : -1;
    apg_free(p);
    if (fd < 0)
        return -1;
    int rc = pwrite(fd, b, sizeof(b), 0) == (ssize_t)sizeof(b) && fdatasync(fd) == 0 ? 0 : -1;
    close(fd);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* flushing */

/* Flushes the commit log up to the current write position. Flush thread or
 * close. Returns 0, or -1 after marking the store failed. */
static int cl_sync_range(struct apg_store *st, int64_t from, int64_t target)
{
    int64_t fsz = (int64_t)st->st_opts.so_commitlog_file_size;
    int64_t pos = from;
    while (pos < target) {
        pthread_rwlock_rdlock(&st->st_struct_lock);
        struct seg *s = cl_seg_for(st, pos);
        int rc = 0;
        int64_t end = s ? s->sg_base + fsz : target;
        if (end > target)
            end = target;
        if (s)
            rc = seg_sync(st, s, (size_t)(pos - s->sg_base), (size_t)(end - s->sg_base));
        pthread_rwlock_unlock(&st->st_struct_lock);
        if (rc != 0) {
            char msg[256];
            snprintf(msg, sizeof(msg),
                     "commit log flush failed at offset %lld: %s; the store no longer "
                     "acknowledges writes (restart to recover)",
                     (long long)pos, strerror(errno));
            apg_log_error(SUB, "%s", msg);
            set_last_error(st, msg);
            atomic_store(&st->st_fsync_failed, true);
            return -1;
        }
        pos = end;
    }
    return 0;
}

static int cl_flush(struct apg_store *st)
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
static void cq_flush_and_checkpoint(struct apg_store *st, bool clean)
{
    int64_t snap = atomic_load_explicit(&st->st_wrote, memory_order_acquire);
    int64_t nq = 0;
    bool failed = false;
    pthread_rwlock_rdlock(&st->st_struct_lock);
    for (size_t b = 0; b < st->st_cqbuckets; b++) {
        for (struct cq *q = st->st_cqmap[b]; q; q = q->cq_next) {
            nq++;
            int64_t max = atomic_load_explicit(&q->cq_max, memory_order_acquire);
            int64_t lo =
                q->cq_flushed > atomic_load(&q->cq_min) ? q->cq_flushed : atomic_load(&q->cq_min);
            while (lo < max) {
                struct seg *s = cq_seg_for(st, q, lo);
                if (!s)
                    break;
                int64_t segend = (s->sg_base + (int64_t)s->sg_size) / CQ_UNIT;
                int64_t hi = max < segend ? max : segend;
                if (seg_sync(st, s, (size_t)(lo * CQ_UNIT - s->sg_base),
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
    if (failed) {
        apg_log_error(SUB, "consume queue flush failed: %s", strerror(errno));
        set_last_error(st, "consume queue flush failed; the store no longer acknowledges writes");
        atomic_store(&st->st_fsync_failed, true);
        return;
    }
    int64_t fl = atomic_load(&st->st_flushed);
    int64_t cq_phys = snap < fl ? snap : fl;
    if (ckpt_write(st, clean, fl, cq_phys, nq) != 0)
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
static void complete_waiters(struct apg_store *st, bool draining)
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
    /* Waiters are in offset order: complete from the front. */
    struct waiter *done = st->st_carry_head, **dt = &st->st_carry_head, *w;
    while ((w = *dt) && (failed || w->w_target <= fl || (!draining && now >= w->w_deadline_ms)))
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
        w->w_rc = failed ? APG_EFSYNC : w->w_target <= fl ? APG_OK : APG_ETIMEDOUT;
    pthread_mutex_lock(&st->st_ack_mtx);
    *st->st_ack_tailp = done;
    st->st_ack_tailp = dt;
    pthread_mutex_unlock(&st->st_ack_mtx);
    /* Signalled after unlocking, so the woken ack thread does not block at
     * once on the mutex still held here. */
    pthread_cond_signal(&st->st_ack_cond);
}

/* Ack thread: delivers SYNC_FLUSH outcomes in order. */
static void *ack_main(void *arg)
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

static void *flush_main(void *arg)
{
    struct apg_store *st = arg;
    if (st->st_opts.so_sync_flush)
        flush_thread_boost();
    bool sync = st->st_opts.so_sync_flush;
    int interval = st->st_opts.so_flush_interval_ms;
    for (;;) {
        bool closing;
        pthread_mutex_lock(&st->st_flush_mtx);
        atomic_store(&st->st_flush_sleeping, true);
        closing = atomic_load(&st->st_closing);
        if (!closing && !(sync && (atomic_load(&st->st_pend_count) > 0 || st->st_carry_head))) {
            apg_cond_wait_ms(&st->st_flush_cond, &st->st_flush_mtx, sync ? 10 : interval);
            closing = atomic_load(&st->st_closing);
        }
        atomic_store(&st->st_flush_sleeping, false);
        pthread_mutex_unlock(&st->st_flush_mtx);
        if (!atomic_load(&st->st_fsync_failed))
            cl_flush(st);
        if (sync)
            complete_waiters(st, closing);
        if (!atomic_load(&st->st_fsync_failed) && !closing &&
            apg_mono_ms() - st->st_last_ckpt_ms >= (sync ? 1000 : interval))
            cq_flush_and_checkpoint(st, false);
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
static void *sync_flusher_main(void *arg)
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
            complete_waiters(st, false);
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
        complete_waiters(st, false); /* timeouts, failures */
        bool ckpt = !atomic_load(&st->st_fsync_failed) && !closing &&
                    apg_mono_ms() - st->st_last_ckpt_ms >= 1000;
        if (ckpt)
            st->st_last_ckpt_ms = apg_mono_ms();
        pthread_mutex_unlock(&st->st_complete_mtx);
        if (ckpt)
            cq_flush_and_checkpoint(st, false);
        pthread_mutex_lock(&st->st_flush_mtx);
    }
    pthread_mutex_unlock(&st->st_flush_mtx);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* service thread: preallocation, disk guard, retention */

static int measure_disk_ratio(struct apg_store *st)
{
    int t = atomic_load(&st->st_test_disk_ratio);
    if (t >= 0)
        return t;
    struct statvfs vf;
    if (statvfs(st->st_cldir, &vf) != 0 || vf.f_blocks == 0)
        return 0;
    double used = (double)(vf.f_blocks - vf.f_bfree) / (double)vf.f_blocks;
    return (int)(used * 100.0 + 0.5);
}

static void disk_check(struct apg_store *st)
{
    int r = measure_disk_ratio(st);
    atomic_store(&st->st_disk_ratio, r);
    bool full = r > st->st_opts.so_disk_warning_ratio;
    bool was = atomic_exchange(&st->st_disk_full, full);
    if (full && !was) {
        char msg[256];
        snprintf(msg, sizeof(msg),
                 "disk of %s is %d%% used, above diskSpaceWarningLevelRatio=%d: writes refused "
                 "until space frees (free disk space or raise diskSpaceWarningLevelRatio)",
                 st->st_cldir, r, st->st_opts.so_disk_warning_ratio);
        apg_log_error(SUB, "%s", msg);
        set_last_error(st, msg);
    } else if (!full && was) {
        apg_log_info(SUB, "disk of %s is %d%% used again: writes resume", st->st_cldir, r);
    }
}

static bool hour_listed(const char *when, int hour)
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

/* Drops queue head segments whose entries all point below the commit log's
 * new minimum, and advances each queue's min offset. */
static void cq_clean(struct apg_store *st, int64_t min_phys)
{
    pthread_rwlock_wrlock(&st->st_struct_lock);
    for (size_t b = 0; b < st->st_cqbuckets; b++) {
        for (struct cq *q = st->st_cqmap[b]; q; q = q->cq_next) {
            int64_t max = atomic_load(&q->cq_max);
            int64_t lo = atomic_load(&q->cq_min);
            while (lo < max) {
                const uint8_t *e = cq_entry(st, q, lo);
                if (e && (int64_t)apg_be64(e) >= min_phys)
                    break;
                lo++;
            }
            atomic_store(&q->cq_min, lo);
            while (q->cq_nsegs > 1) {
                struct seg *s = q->cq_segs[0];
                if ((s->sg_base + (int64_t)s->sg_size) / CQ_UNIT > lo)
                    break;
                seg_free(s, true);
                memmove(q->cq_segs, q->cq_segs + 1,
                        (size_t)(q->cq_nsegs - 1) * sizeof(*q->cq_segs));
                q->cq_nsegs--;
            }
        }
    }
    pthread_rwlock_unlock(&st->st_struct_lock);
}

static int clean_pass(struct apg_store *st, bool time_ok)
{
    int removed = 0;
    int ratio = measure_disk_ratio(st);
    bool over_max = ratio > st->st_opts.so_disk_max_used_ratio;
    bool forcibly = ratio > st->st_opts.so_disk_clean_forcibly_ratio;
    if (!time_ok && !over_max)
        return 0;
    time_t expire = time(NULL) - (time_t)st->st_opts.so_file_reserved_hours * 3600;
    for (;;) {
        pthread_mutex_lock(&st->st_append_mtx);
        pthread_rwlock_wrlock(&st->st_struct_lock);
        struct seg *s = st->st_nsegs > 1 ? st->st_segs[0] : NULL;
        bool del = false;
        if (s && s != st->st_cur) {
            struct stat sb;
            bool expired = fstat(s->sg_fd, &sb) == 0 && sb.st_mtime <= expire;
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
        apg_log_info(SUB, "retention: deleting commit log segment %s (disk %d%% used)", s->sg_path,
                     ratio);
        seg_free(s, true);
        removed++;
    }
    if (removed) {
        cq_clean(st, atomic_load(&st->st_min_phys));
        fsync_dir(st->st_cldir);
    }
    return removed;
}

int apg_store_clean_now(struct apg_store *st)
{
    return clean_pass(st, true);
}

/* Appender, under st_append_mtx, before it writes commit-log bytes below
 * `end`: announces them and waits while the service thread is overwriting a
 * chunk that reaches below `end` with zeros (see zero_ahead). */
static void zero_guard(struct apg_store *st, int64_t end)
{
    atomic_store(&st->st_reserve_end, end);
    while (atomic_load(&st->st_zero_busy) < end) {
        pthread_mutex_lock(&st->st_zero_mtx);
        pthread_mutex_unlock(&st->st_zero_mtx);
    }
}

/* Keeps the commit log just ahead of the write position zero-filled by
 * write() and synced (seg_zero), in steps, across the current and the
 * preallocated next segment. Appends then land on written extents and in
 * page cache that is already there. This replaces faulting the mapping in
 * (the appender writes with pwrite, not through the mapping).
 *
 * The window grows with what has been written since start: 1 MiB ahead for a
 * broker that has written nothing (so an idle broker holds little page
 * cache), up to so_warm_ahead_mb once that much has gone through.
 * Returns true if it did work (call again soon). Service thread. */
#define WARM_STEP (2ll << 20)
#define WARM_MIN (1ll << 20)
static bool zero_ahead(struct apg_store *st)
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
    int fd = -1;
    bool tried = false;
    /* In a segment of the log: appends may reach it at any moment, so
     * announce the chunk and back off if an append already claimed it. The
     * segment holding or following the write position is never removed
     * while the store is open, so s stays valid without the struct lock. */
    pthread_rwlock_rdlock(&st->st_struct_lock);
    struct seg *s = cl_seg_for(st, at);
    pthread_rwlock_unlock(&st->st_struct_lock);
    if (s) {
        size_t from = (size_t)(at - s->sg_base);
        size_t to = from + (size_t)step < s->sg_size ? from + (size_t)step : s->sg_size;
        pthread_mutex_lock(&st->st_zero_mtx);
        atomic_store(&st->st_zero_busy, at);
        if (atomic_load(&st->st_reserve_end) <= at) {
            tried = true;
            fd = seg_zero(s, from, to);
        }
        atomic_store(&st->st_zero_busy, INT64_MAX);
        pthread_mutex_unlock(&st->st_zero_mtx);
        if (!tried)
            return true; /* an append got there first: start again above it */
        if (fd >= 0)
            atomic_store(&st->st_warmed, s->sg_base + (int64_t)to);
    } else {
        /* Past the current segment: the preallocated next one, which no
         * append can use while st_prealloc_mtx is held (cl_roll takes it). */
        pthread_mutex_lock(&st->st_prealloc_mtx);
        s = st->st_next;
        if (s && at >= s->sg_base && at < s->sg_base + (int64_t)s->sg_size) {
            size_t from = (size_t)(at - s->sg_base);
            size_t to = from + (size_t)step < s->sg_size ? from + (size_t)step : s->sg_size;
            tried = true;
            fd = seg_zero(s, from, to);
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
static void drop_behind(struct apg_store *st)
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
        struct seg *s = cl_seg_for(st, st->st_dropped);
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

static void *svc_main(void *arg)
{
    struct apg_store *st = arg;
    int64_t last_disk = 0, last_clean = 0;
    while (!atomic_load(&st->st_closing)) {
        bool busy = zero_ahead(st);
        drop_behind(st);
        /* Preallocate the segment after the current one. */
        pthread_mutex_lock(&st->st_prealloc_mtx);
        if (st->st_next_wanted && !st->st_opts.so_no_preallocate) {
            st->st_next_wanted = false;
            int64_t base = st->st_cur_base + (int64_t)st->st_opts.so_commitlog_file_size;
            if (!st->st_next || st->st_next->sg_base != base) {
                char err[256];
                struct seg *s = seg_open(st->st_cldir, base, st->st_opts.so_commitlog_file_size,
                                         true, true, err, sizeof(err));
                if (!s)
                    apg_log_warn(SUB, "preallocating the next segment failed: %s", err);
                seg_free(st->st_next, false);
                st->st_next = s;
            }
        }
        pthread_mutex_unlock(&st->st_prealloc_mtx);
        int64_t now = apg_mono_ms();
        if (now - last_disk >= 1000) {
            disk_check(st);
            last_disk = now;
        }
        if (now - last_clean >= 10000) {
            time_t t = time(NULL);
            struct tm tmv;
            localtime_r(&t, &tmv);
            bool time_ok = hour_listed(st->st_opts.so_delete_when, tmv.tm_hour);
            if (clean_pass(st, time_ok) > 0)
                disk_check(st); /* writes may resume at once */
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

/* ------------------------------------------------------------------------ */
/* put */

void apg_store_set_arrive_hook(struct apg_store *st, apg_store_arrive_fn fn, void *ud)
{
    st->st_arrive = fn;
    st->st_arrive_ud = ud;
}

static bool tx_no_cq(int32_t sysflag)
{
    int t = sysflag & APG_SYSFLAG_TX_MASK;
    return t == APG_SYSFLAG_TX_PREPARED || t == APG_SYSFLAG_TX_ROLLBACK;
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
    struct cq *q_stack[PUT_STACK], **qs = q_stack;
    uint8_t rec_stack[PUT_BUF], *recs = rec_stack;
    if (n > PUT_STACK) {
        crcs = apg_malloc((size_t)n * sizeof(*crcs));
        qs = apg_malloc((size_t)n * sizeof(*qs));
        if (!crcs || !qs) {
            apg_free(crcs);
            apg_free(qs);
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
    bool sync = st->st_opts.so_sync_flush;
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
    }

    bool wake_flusher = false;
    pthread_mutex_lock(&st->st_append_mtx);
    if (atomic_load(&st->st_fsync_failed)) {
        rc = apg_errf(APG_EFSYNC, err, errlen,
                      "an earlier fsync of the commit log failed; the store is read-only until "
                      "restarted");
        goto unlock;
    }
    if (atomic_load(&st->st_closing)) {
        rc = apg_errf(APG_ECLOSED, err, errlen, "store is closing");
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
    int64_t pos = atomic_load_explicit(&st->st_wrote, memory_order_relaxed);
    struct seg *s = st->st_cur;
    if (!s || pos + total + APG_MSGREC_BLANK_LEN > s->sg_base + fsz) {
        int64_t next = s ? s->sg_base + fsz : pos;
        zero_guard(st, next + total);
        if (s && pos < next) {
            uint8_t blank[APG_MSGREC_BLANK_LEN];
            apg_wbe32(blank, (uint32_t)(next - pos));
            apg_wbe32(blank + 4, APG_MSGREC_MAGIC_BLANK);
            if (pwrite_all(s->sg_fd, blank, sizeof(blank), (off_t)(pos - s->sg_base)) != 0) {
                rc = apg_errf(APG_EIO, err, errlen, "write %s: %s", s->sg_path, strerror(errno));
                goto unlock;
            }
        }
        rc = cl_roll(st, next, err, errlen);
        if (rc)
            goto unlock;
        s = st->st_cur;
        pos = next;
        atomic_store_explicit(&st->st_wrote, pos, memory_order_release);
    } else {
        zero_guard(st, pos + total);
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
        bool nocq = tx_no_cq(m->mi_sysflag);
        qs[i] = NULL;
        if (!nocq && (!q || q->cq_qid != m->mi_queue_id || q->cq_topic_len != m->mi_topic_len ||
                      memcmp(q->cq_topic, m->mi_topic, m->mi_topic_len) != 0)) {
            pthread_rwlock_rdlock(&st->st_struct_lock);
            q = cq_find(st, m->mi_topic, m->mi_topic_len, m->mi_queue_id);
            pthread_rwlock_unlock(&st->st_struct_lock);
            if (!q) {
                pthread_rwlock_wrlock(&st->st_struct_lock);
                q = cq_create(st, m->mi_topic, m->mi_topic_len, m->mi_queue_id);
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
                if (qs[j] == q) {
                    qoff = res[j].pr_queue_offset + 1;
                    break;
                }
            qs[i] = q;
        }
        apg_msgrec_encode(recs + boff, m, crcs[i], qoff, pos + (int64_t)boff, ts, sh);
        res[i].pr_phys_offset = pos + (int64_t)boff;
        res[i].pr_queue_offset = qoff;
        res[i].pr_store_ts = ts;
        boff += (size_t)res[i].pr_msg_size;
    }
    if (pwrite_all(s->sg_fd, recs, boff, (off_t)(pos - s->sg_base)) != 0) {
        rc = apg_errf(APG_EIO, err, errlen, "write %s: %s", s->sg_path, strerror(errno));
        goto unlock; /* not published: the next append overwrites it */
    }
    int64_t end = pos + (int64_t)boff;
    int indexed = n;
    for (int i = 0; i < n; i++) {
        if (!qs[i])
            continue;
        rc = cq_write(st, qs[i], res[i].pr_queue_offset, res[i].pr_phys_offset, res[i].pr_msg_size,
                      msgs[i].mi_tags_code, err, errlen);
        if (rc) {
            /* Only out-of-memory / queue file creation can fail here. The
             * records indexed so far stay (they are valid); the rest is not
             * published. Report the failure for the whole batch. */
            apg_log_error(SUB, "append failed midway: %s", err ? err : apg_strerror(rc));
            end = res[i].pr_phys_offset;
            indexed = i;
            break;
        }
    }
    /* Publish the records before the queue entries that point at them: a
     * reader that sees a queue's new maximum must find the record below
     * st_wrote, or it would take the entry for a removed one. */
    atomic_store_explicit(&st->st_wrote, end, memory_order_release);
    for (int i = 0; i < indexed; i++)
        if (qs[i])
            atomic_store_explicit(&qs[i]->cq_max, res[i].pr_queue_offset + 1, memory_order_release);
    pos = end;
    atomic_store(&st->st_last_store_ts, ts);
    if (!rc && sync) {
        w->w_target = pos;
        *st->st_pend_tailp = w;
        st->st_pend_tailp = &w->w_next;
        atomic_fetch_add(&st->st_pend_count, 1);
        w = NULL;
        wake_flusher = true;
    }
unlock:
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
            if (tx_no_cq(m->mi_sysflag))
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
        apg_free(qs);
    }
    if (recs != rec_stack)
        apg_free(recs);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* reads */

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
    struct seg *s = cl_seg_for(st, phys);
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
    struct cq *q = cq_find(st, topic, topic_len, queue_id);
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
            const uint8_t *e = cq_entry(st, q, lo);
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

int64_t apg_store_max_offset(struct apg_store *st, const char *topic, size_t topic_len,
                             int32_t queue_id)
{
    pthread_rwlock_rdlock(&st->st_struct_lock);
    struct cq *q = cq_find(st, topic, topic_len, queue_id);
    int64_t v = q ? atomic_load(&q->cq_max) : 0;
    pthread_rwlock_unlock(&st->st_struct_lock);
    return v;
}

int64_t apg_store_min_offset(struct apg_store *st, const char *topic, size_t topic_len,
                             int32_t queue_id)
{
    pthread_rwlock_rdlock(&st->st_struct_lock);
    struct cq *q = cq_find(st, topic, topic_len, queue_id);
    int64_t v = q ? atomic_load(&q->cq_min) : 0;
    pthread_rwlock_unlock(&st->st_struct_lock);
    return v;
}

/* Store time of the record at logical offset lo, or -1. Struct lock held. */
static int64_t store_ts_at(struct apg_store *st, struct cq *q, int64_t lo)
{
    const uint8_t *e = cq_entry(st, q, lo);
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
    struct cq *q = cq_find(st, topic, topic_len, queue_id);
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
    struct cq *q = cq_find(st, topic, topic_len, queue_id);
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
                        ? cl_seg_for(st, phys_offset)
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
                cq_free(q, true);
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

void apg_store_test_set_disk_ratio(struct apg_store *st, int ratio)
{
    atomic_store(&st->st_test_disk_ratio, ratio);
    disk_check(st);
}

void apg_store_test_fail_next_fsync(struct apg_store *st)
{
    atomic_store(&st->st_fail_next_fsync, true);
}

/* ------------------------------------------------------------------------ */
/* open / recovery / close */

void apg_store_opts_init(struct apg_store_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->so_commitlog_file_size = 1073741824ull;
    o->so_cq_file_size = 6000000;
    o->so_flush_interval_ms = 500;
    o->so_sync_flush_timeout_ms = 5000;
    o->so_file_reserved_hours = 72;
    o->so_delete_when = "04";
    o->so_disk_max_used_ratio = 75;
    o->so_disk_clean_forcibly_ratio = 85;
    o->so_disk_warning_ratio = 90;
    o->so_check_crc_on_recover = true;
    o->so_max_message_size = 4194304;
    o->so_cache_keep_mb = 1024;
    o->so_store_host.h_ip[0] = 127;
    o->so_store_host.h_ip[3] = 1;
    o->so_store_host.h_port = 10911;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_seg_name(const char *n)
{
    if (strlen(n) != 20)
        return false;
    for (int i = 0; i < 20; i++)
        if (n[i] < '0' || n[i] > '9')
            return false;
    return true;
}

/* Sorted list of segment file names in dir (owned; free each and the array). */
static int list_segs(const char *dir, char ***out)
{
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0, cap = 0;
    char **v = NULL;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!is_seg_name(de->d_name))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nv = apg_realloc(v, (size_t)cap * sizeof(*v));
            if (!nv)
                break;
            v = nv;
        }
        v[n++] = apg_strdup(de->d_name);
    }
    closedir(d);
    if (n > 1)
        qsort(v, (size_t)n, sizeof(*v), name_cmp);
    *out = v;
    return n;
}

static void free_names(char **v, int n)
{
    for (int i = 0; i < n; i++)
        apg_free(v[i]);
    apg_free(v);
}

/* Loads one queue directory during open. */
static apg_err_t load_queue(struct apg_store *st, const char *topic, int32_t qid, char *err,
                            size_t errlen)
{
    struct cq *q = cq_create(st, topic, strlen(topic), qid);
    if (!q)
        return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    char **names;
    int n = list_segs(q->cq_dir, &names);
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
                seg_free(q->cq_segs[j], true);
            q->cq_nsegs = 0;
            for (int j = i; j < n; j++) {
                char *p = apg_path_join(q->cq_dir, names[j]);
                if (p)
                    unlink(p);
                apg_free(p);
            }
            break;
        }
        rc = cq_add_seg(st, q, base, err, errlen);
    }
    free_names(names, n);
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
            const uint8_t *e = cq_entry(st, q, min);
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

static apg_err_t load_queues(struct apg_store *st, char *err, size_t errlen)
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
        uint8_t *e = (uint8_t *)cq_entry(st, q, max - 1);
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
    int64_t phys = rd->rd_base + (int64_t)pos;
    atomic_store(&st->st_last_store_ts, r->mr_store_ts);
    if (rd->rd_rc || tx_no_cq(r->mr_sysflag))
        return;
    struct cq *q = cq_find(st, r->mr_topic, r->mr_topic_len, r->mr_queue_id);
    if (!q)
        q = cq_create(st, r->mr_topic, r->mr_topic_len, r->mr_queue_id);
    if (!q) {
        rd->rd_rc = APG_ENOMEM;
        return;
    }
    int64_t max = atomic_load(&q->cq_max);
    if (r->mr_queue_offset < max) {
        /* Already indexed: it must point here. */
        const uint8_t *e = cq_entry(st, q, r->mr_queue_offset);
        if (!e || (int64_t)apg_be64(e) != phys)
            rd->rd_gap = true;
        return;
    }
    if (r->mr_queue_offset > max) {
        if (q->cq_nsegs == 0 || max == 0) {
            /* First record seen of this queue (older ones were retired). */
            atomic_store(&q->cq_min, r->mr_queue_offset);
        } else {
            rd->rd_gap = true;
            return;
        }
    }
    /* Tag hash: the broker supplies it at put time; on rebuild recompute it
     * from the TAGS property as RocketMQ's dispatcher does. */
    int64_t tags = 0;
    const char *p = r->mr_props, *end = r->mr_props + r->mr_props_len;
    while (p < end) {
        const char *sep = memchr(p, 1, (size_t)(end - p));
        const char *pe = memchr(p, 2, (size_t)(end - p));
        if (!sep || !pe || sep > pe)
            break;
        if (sep - p == 4 && memcmp(p, "TAGS", 4) == 0) {
            tags = apg_java_hash(sep + 1, (size_t)(pe - sep - 1));
            break;
        }
        p = pe + 1;
    }
    apg_err_t rc = cq_write(st, q, r->mr_queue_offset, phys, (int32_t)r->mr_total_size, tags,
                            rd->rd_err, rd->rd_errlen);
    if (rc == APG_ECORRUPT) {
        rd->rd_gap = true;
        return;
    }
    if (rc) {
        rd->rd_rc = rc;
        return;
    }
    atomic_store(&q->cq_max, r->mr_queue_offset + 1);
}

/* Walks the commit log from `from` to `end` (already validated) feeding the
 * consume queues. */
static apg_err_t redispatch(struct apg_store *st, int64_t from, int64_t end, bool *gap, char *err,
                            size_t errlen)
{
    struct redispatch rd = {st, 0, false, APG_OK, err, errlen};
    int64_t pos = from;
    while (pos < end) {
        struct seg *s = cl_seg_for(st, pos);
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
    apg_log_warn(SUB, "rebuilding every consume queue from the commit log");
    for (size_t b = 0; b < st->st_cqbuckets; b++) {
        struct cq *q = st->st_cqmap[b], *nx;
        for (; q; q = nx) {
            nx = q->cq_next;
            cq_free(q, true);
        }
        st->st_cqmap[b] = NULL;
    }
    st->st_ncq = 0;
    bool gap = false;
    apg_err_t rc = redispatch(st, atomic_load(&st->st_min_phys), end, &gap, err, errlen);
    if (!rc && gap)
        apg_log_warn(SUB, "commit log has queue offset gaps; queues were rebuilt as found");
    return rc;
}

/* End of the written part of a segment file: never-written (hole or
 * unwritten-extent) space reads as zeros and need not be read at all, which
 * matters for a preallocated 1 GiB segment. Falls back to the full size. */
static size_t seg_data_end(struct seg *s)
{
    off_t end = 0, d = 0;
    for (;;) {
        d = lseek(s->sg_fd, d, SEEK_DATA);
        if (d < 0) {
            if (errno != ENXIO)
                return s->sg_size;
            break;
        }
        off_t h = lseek(s->sg_fd, d, SEEK_HOLE);
        if (h < 0)
            return s->sg_size;
        end = h;
        d = h;
        if ((size_t)h >= s->sg_size)
            break;
    }
    return (size_t)end < s->sg_size ? (size_t)end : s->sg_size;
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
        struct seg *s = cl_seg_for(st, pos);
        if (!s)
            break;
        struct apg_scan_result sr;
        apg_scan_segment(s->sg_map, s->sg_size, seg_data_end(s), s->sg_base,
                         (size_t)(pos - s->sg_base), st->st_opts.so_check_crc_on_recover, note_ts,
                         &sc, &sr);
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
            if (apg_msgrec_decode(t->sg_map, t->sg_size, true, NULL, NULL) == APG_MSGREC_OK &&
                (int64_t)apg_be64(t->sg_map + 28) == t->sg_base)
                later = t->sg_base;
            else {
                size_t f = apg_scan_find_valid(t->sg_map, seg_data_end(t), t->sg_base, 0);
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
    struct seg *s = cl_seg_for(st, pos);
    if (s && zero_tail) {
        size_t pg = 4096, off = (size_t)(pos - s->sg_base), dend = seg_data_end(s);
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
                msync(s->sg_map + (a & ~(pg - 1)), b - (a & ~(pg - 1)), MS_SYNC);
            }
        }
    }
    while (st->st_nsegs > 0 && st->st_segs[st->st_nsegs - 1]->sg_base > pos) {
        struct seg *t = st->st_segs[st->st_nsegs - 1];
        apg_log_info(SUB, "removing segment %s past the end of the log", t->sg_path);
        seg_free(t, true);
        st->st_nsegs--;
    }
    *end_out = pos;
    return APG_OK;
}

static apg_err_t open_recover(struct apg_store *st, char *err, size_t errlen)
{
    int64_t fsz = (int64_t)st->st_opts.so_commitlog_file_size;
    char **names;
    int n = list_segs(st->st_cldir, &names);
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
        struct seg *s = seg_open(st->st_cldir, base, (size_t)fsz, false, false, err, errlen);
        if (!s) {
            rc = APG_EIO;
            break;
        }
        if (cl_push_seg(st, s)) {
            seg_free(s, false);
            rc = apg_errf(APG_ENOMEM, err, errlen, "out of memory");
            break;
        }
    }
    free_names(names, n);
    if (rc)
        return rc;

    char *abort_path = apg_path_join(st->st_root, "abort");
    bool crashed = abort_path && access(abort_path, F_OK) == 0;
    struct ckpt ck;
    ckpt_read(st, &ck);
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

    rc = load_queues(st, err, errlen);
    if (rc)
        goto out;
    bool rebuild = (int64_t)st->st_ncq < (trust ? ck.ck_nqueues : 0);
    if (rebuild)
        apg_log_warn(SUB, "%zu consume queue(s) on disk but the checkpoint knew %lld", st->st_ncq,
                     (long long)ck.ck_nqueues);
    if (!rebuild) {
        for (size_t b = 0; b < st->st_cqbuckets; b++)
            for (struct cq *q = st->st_cqmap[b]; q; q = q->cq_next)
                cq_truncate(st, q, redispatch_from);
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
    cq_clean(st, min);

    /* Current segment: the one holding `end` (create it if end is at a
     * boundary with no file yet). */
    struct seg *cur = cl_seg_for(st, end);
    if (cur) {
        st->st_cur = cur;
        st->st_cur_base = cur->sg_base;
    } else
        rc = cl_roll(st, st->st_nsegs ? st->st_segs[st->st_nsegs - 1]->sg_base + fsz : end, err,
                     errlen);
    if (rc)
        goto out;
    if (end < st->st_cur->sg_base) {
        atomic_store(&st->st_wrote, st->st_cur->sg_base);
        atomic_store(&st->st_flushed, st->st_cur->sg_base);
    }
    /* Make the recovered state durable before accepting writes. */
    cq_flush_and_checkpoint(st, false);
    int fd = abort_path ? open(abort_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644) : -1;
    if (fd < 0) {
        rc = apg_errf(APG_EIO, err, errlen, "create %s: %s", abort_path ? abort_path : "abort",
                      strerror(errno));
        goto out;
    }
    fsync(fd);
    close(fd);
    fsync_dir(st->st_root);
out:
    apg_free(abort_path);
    return rc;
}

static void store_free(struct apg_store *st)
{
    for (size_t b = 0; b < st->st_cqbuckets; b++) {
        struct cq *q = st->st_cqmap[b], *nx;
        for (; q; q = nx) {
            nx = q->cq_next;
            cq_free(q, false);
        }
    }
    apg_free(st->st_cqmap);
    for (int i = 0; i < st->st_nsegs; i++)
        seg_free(st->st_segs[i], false);
    apg_free(st->st_segs);
    seg_free(st->st_next, false);
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
    st->st_lock_fd = -1;
    atomic_store(&st->st_test_disk_ratio, -1);
    /* Adaptive: the append critical section is a memcpy, so spinning
     * briefly beats a futex sleep/wake convoy when many appenders collide. */
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
    rc = open_recover(st, err, errlen);
    if (rc)
        goto fail;
    disk_check(st);
    st->st_next_wanted = true;
    if (pthread_create(&st->st_ack_thr, NULL, ack_main, st) != 0) {
        rc = apg_errf(APG_EIO, err, errlen, "cannot start the ack thread");
        goto fail;
    }
    st->st_claimed = atomic_load(&st->st_flushed);
    if (pthread_create(&st->st_flush_thr, NULL,
                       st->st_opts.so_sync_flush ? sync_flusher_main : flush_main, st) != 0) {
        stop_ack_thread(st);
        rc = apg_errf(APG_EIO, err, errlen, "cannot start the flush thread");
        goto fail;
    }
    if (st->st_opts.so_sync_flush && NFLUSHERS > 1 &&
        pthread_create(&st->st_flusher2, NULL, sync_flusher_main, st) != 0) {
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
        if (st->st_opts.so_sync_flush) {
            if (!atomic_load(&st->st_fsync_failed))
                cl_flush(st);
            complete_waiters(st, true);
        }
        stop_ack_thread(st); /* after the flush threads: it delivers what is left */
        pthread_mutex_lock(&st->st_prealloc_mtx);
        pthread_cond_signal(&st->st_prealloc_cond);
        pthread_mutex_unlock(&st->st_prealloc_mtx);
        pthread_join(st->st_svc_thr, NULL);
    }
    bool ok = !atomic_load(&st->st_fsync_failed) && cl_flush(st) == 0;
    if (ok) {
        cq_flush_and_checkpoint(st, true);
        ok = !atomic_load(&st->st_fsync_failed);
    }
    if (ok) {
        char *ap = apg_path_join(st->st_root, "abort");
        if (ap)
            unlink(ap);
        apg_free(ap);
        fsync_dir(st->st_root);
    } else {
        apg_log_error(SUB, "store %s closed after a flush failure: next start runs crash recovery",
                      st->st_root);
    }
    store_free(st);
}

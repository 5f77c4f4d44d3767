/* The message index: commit-log offsets by (topic, key), for QUERY_MESSAGE.
 *
 * Layout (RocketMQ's index file, docs/design.md "Index files"): <root>/index/
 * holds files named by their creation time (yyyyMMddHHmmssSSS, local time).
 * Each file is a 40-byte header (begin/end store timestamp, begin/end
 * commit-log offset, used slots, next entry number; big-endian), then
 * `slots` 4-byte hash slots, then `entries` 20-byte entries (key hash,
 * commit-log offset, seconds since the file's begin timestamp, previous entry
 * number of the same slot). A slot holds the number of the newest entry whose
 * hash falls into it (0: none); entries of one slot form a chain newest to
 * oldest. Entry numbers start at 1. The hashed key is "<topic>#<key>" (Java
 * String.hashCode, absolute value) for every key of KEYS (space-separated) and
 * for UNIQ_KEY. A full file is closed and the next one started.
 *
 * Memory is bounded: files are mapped, never read into RAM; a file's disk
 * blocks are allocated (fallocate) for the header and slots when it is made
 * and for entries ahead of the writer, so a full disk stops indexing (logged)
 * instead of faulting on a write into a hole. The store's service thread
 * (apg_index_warm) allocates and maps writable up to 1 MiB of entries ahead
 * and a new file's slot table, so the put path rarely takes a page fault.
 *
 * Dispatcher (dispatch.c): entries are written in dp_records, for the put
 * path (under st_append_mtx, before the records are published; readers ignore
 * offsets at or past the published write position) and for recovery. Writes
 * go through the mapping: entry first, then the slot with a release store,
 * then the entry count with a release store; readers load slot and count with
 * acquire. dp_flush msyncs files with new entries; dp_truncate drops entries
 * at or after a commit-log offset (entries are in commit-log order: cut the
 * count, repair the slots whose chains start past the cut), dp_reset removes
 * every file. Retention (apg_index_clean) removes files whose every entry
 * points below the commit log's minimum, never the newest.
 *
 * Threads and locks: ix_lock (rwlock) guards the file array; the appender
 * takes it exclusive to add a file, retention to remove one, readers shared
 * while they walk chains. Readers copy the offsets out and read records after
 * releasing it (lock order st_append_mtx -> ix_lock; ix_lock is never held
 * while taking a store lock). Indexing never fails a put: an index that
 * cannot grow is logged and skipped. */
#define _GNU_SOURCE
#include "store/store_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/file.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/mem.h"
#include "protocol/props.h"

#define IX_HDR 40
#define IX_SLOT 4
#define IX_ENT 20
#define IX_ALLOC_STEP (256u << 10) /* allocation and mapping step */
/* The service thread keeps this much ready ahead. Small: the store's disk
 * guard counts commit-log bytes written since its last check (once a
 * second), not these, so what the index takes between checks must stay well
 * inside the reserve the guard keeps. */
#define IX_WARM_AHEAD (1u << 20)
#define IX_KEY_STACK 1024
/* A record read by offset: this much from its start is asked of the disk
 * first (a small record's one or two pages). */
#define IX_PREFETCH 4096u

/* One index file. Header fields mirrored in atomics so readers need no lock
 * beyond ix_lock (shared). Written only by the appender (or recovery). */
struct ixfile {
    struct seg *xf_seg;
    char *xf_name;
    _Atomic int64_t xf_begin_ts, xf_end_ts, xf_begin_phys, xf_end_phys;
    _Atomic uint32_t xf_count; /* next entry number (>= 1) */
    _Atomic uint32_t xf_used_slots;
    uint32_t xf_flushed;     /* entries msynced (under ix_flush_mtx) */
    _Atomic size_t xf_alloc; /* bytes allocated on disk (and mapped writable) from the start */
    size_t xf_slots_warm;    /* service thread: slot table mapped writable up to here */
    bool xf_slots_synced;    /* slot table on disk matches the entries (under ix_flush_mtx) */
};

struct apg_index {
    pthread_rwlock_t ix_lock;
    pthread_mutex_t ix_flush_mtx; /* one apg_index_dispatch_flush at a time (leaf) */
    char *ix_dir;
    uint32_t ix_slots, ix_entries;
    struct ixfile **ix_files; /* oldest first */
    int ix_n, ix_cap;
    int64_t ix_last_name;    /* ms of the newest file name, to keep names increasing */
    int64_t ix_retry_ms;     /* appender: after a failure, no new file before this (mono) */
    struct ixfile *ix_cur;   /* appender: the newest file (retention never removes it) */
    char ix_durable[24];     /* ix_slots_path's content: files up to this name have durable slots */
    char *ix_root;           /* the store's root, where ix_slots_path is */
    char *ix_slots_path;     /* <root>/SLOTS_FILE */
    bool ix_durable_on_disk; /* ix_slots_path holds ix_durable */
};

/* Names the newest index file such that it and every older one have their
 * slot table on disk (empty: none). The newest file's slots are msynced
 * only when it is full or at a clean close; after a crash, files named
 * after this one get their slots rebuilt from their entries. */
#define SLOTS_FILE "index-slots-durable" /* in the store's root: index/ holds index files only */

static inline uint8_t *slot_at(const struct apg_index *ix, struct ixfile *f, uint32_t s)
{
    (void)ix;
    return f->xf_seg->sg_map + IX_HDR + (size_t)s * IX_SLOT;
}

static inline uint8_t *ent_at(const struct apg_index *ix, struct ixfile *f, uint32_t i)
{
    return f->xf_seg->sg_map + IX_HDR + (size_t)ix->ix_slots * IX_SLOT + (size_t)i * IX_ENT;
}

static inline uint32_t slot_load(const uint8_t *p)
{
    uint32_t v = __atomic_load_n((const uint32_t *)p, __ATOMIC_ACQUIRE);
    return be32toh(v);
}

static inline void slot_store(uint8_t *p, uint32_t v)
{
    __atomic_store_n((uint32_t *)p, htobe32(v), __ATOMIC_RELEASE);
}

static size_t file_size(const struct apg_index *ix)
{
    return IX_HDR + (size_t)ix->ix_slots * IX_SLOT + (size_t)ix->ix_entries * IX_ENT;
}

/* Key hash as RocketMQ computes it: |String.hashCode()|, 0 for MIN_VALUE. */
static uint32_t key_hash(const char *k, size_t kl)
{
    int32_t h = apg_java_hash(k, kl);
    return h == INT32_MIN ? 0 : (uint32_t)(h < 0 ? -h : h);
}

static void hdr_write(struct ixfile *f)
{
    uint8_t *h = f->xf_seg->sg_map;
    apg_wbe64(h, (uint64_t)atomic_load(&f->xf_begin_ts));
    apg_wbe64(h + 8, (uint64_t)atomic_load(&f->xf_end_ts));
    apg_wbe64(h + 16, (uint64_t)atomic_load(&f->xf_begin_phys));
    apg_wbe64(h + 24, (uint64_t)atomic_load(&f->xf_end_phys));
    apg_wbe32(h + 32, atomic_load_explicit(&f->xf_used_slots, memory_order_relaxed));
    apg_wbe32(h + 36, atomic_load(&f->xf_count));
}

static void file_free(struct ixfile *f, bool unlink_file)
{
    if (!f)
        return;
    apg_seg_free(f->xf_seg, unlink_file);
    apg_free(f->xf_name);
    apg_free(f);
}

/* Makes sure bytes [0, upto) of f have disk blocks, allocating up to a step
 * beyond, and maps the new range writable in one call instead of one page
 * fault per page (MADV_POPULATE_WRITE, Linux 5.14; best effort). Called by
 * the service thread ahead of the writer (apg_index_warm) and by the appender
 * when it gets there first; overlapping calls allocate the same blocks twice,
 * which is harmless. 0 or -1 (errno). */
static int file_alloc(const struct apg_index *ix, struct ixfile *f, size_t upto)
{
    size_t have = atomic_load(&f->xf_alloc);
    if (upto <= have)
        return 0;
    size_t to = upto + IX_ALLOC_STEP;
    if (to > file_size(ix))
        to = file_size(ix);
    int rc = posix_fallocate(f->xf_seg->sg_fd, (off_t)have, (off_t)(to - have));
    if (rc == EOPNOTSUPP || rc == EINVAL) {
        /* No fallocate on this file system: write zeros so the blocks exist
         * before the mapping is written. Only below the writer: never over
         * entries already written. */
        static const uint8_t zero[4096];
        for (size_t p = have; p < to; p += sizeof(zero)) {
            size_t n = to - p < sizeof(zero) ? to - p : sizeof(zero);
            if (apg_seg_pwrite_all(f->xf_seg->sg_fd, zero, n, (off_t)p) != 0)
                return -1;
        }
        rc = 0;
    }
    if (rc) {
        errno = rc;
        return -1;
    }
#ifdef MADV_POPULATE_WRITE
    if (f->xf_seg->sg_map) {
        size_t a = have & ~(size_t)4095;
        madvise(f->xf_seg->sg_map + a, to - a, MADV_POPULATE_WRITE);
    }
#endif
    while (have < to && !atomic_compare_exchange_weak(&f->xf_alloc, &have, to)) {
    }
    return 0;
}

static struct ixfile *file_open(struct apg_index *ix, const char *name, bool create, char *err,
                                size_t errlen)
{
    struct ixfile *f = apg_calloc(1, sizeof(*f));
    if (!f) {
        apg_errf(APG_ENOMEM, err, errlen, "out of memory");
        return NULL;
    }
    f->xf_name = apg_strdup(name);
    f->xf_seg = apg_calloc(1, sizeof(*f->xf_seg));
    if (!f->xf_name || !f->xf_seg) {
        apg_errf(APG_ENOMEM, err, errlen, "out of memory");
        goto fail;
    }
    struct seg *s = f->xf_seg;
    s->sg_fd = -1;
    s->sg_size = file_size(ix);
    s->sg_path = apg_path_join(ix->ix_dir, name);
    if (!s->sg_path) {
        apg_errf(APG_ENOMEM, err, errlen, "out of memory");
        goto fail;
    }
    s->sg_fd = open(s->sg_path, O_RDWR | (create ? O_CREAT | O_EXCL : 0) | O_CLOEXEC, 0644);
    struct stat sb;
    if (s->sg_fd < 0 || fstat(s->sg_fd, &sb) != 0) {
        apg_errf(APG_EIO, err, errlen, "open %s: %s", s->sg_path, strerror(errno));
        goto fail;
    }
    if (!create && (size_t)sb.st_size != s->sg_size) {
        apg_errf(APG_ECONFIG, err, errlen,
                 "%s is %lld bytes, not the %zu that maxHashSlotNum and maxIndexNum give",
                 s->sg_path, (long long)sb.st_size, s->sg_size);
        goto fail;
    }
    if (create && ftruncate(s->sg_fd, (off_t)s->sg_size) != 0) {
        apg_errf(APG_EIO, err, errlen, "size %s: %s", s->sg_path, strerror(errno));
        goto fail;
    }
    /* Existing files: their written part has blocks; the rest is allocated
     * again as the writer reaches it (fallocate of allocated blocks is a
     * no-op). */
    size_t head = IX_HDR + (size_t)ix->ix_slots * IX_SLOT;
    if (create && file_alloc(ix, f, head) != 0) {
        apg_errf(APG_EIO, err, errlen, "allocate %s: %s", s->sg_path, strerror(errno));
        goto fail;
    }
    s->sg_map = mmap(NULL, s->sg_size, PROT_READ | PROT_WRITE, MAP_SHARED, s->sg_fd, 0);
    if (s->sg_map == MAP_FAILED) {
        s->sg_map = NULL;
        apg_errf(APG_EIO, err, errlen, "mmap %s: %s", s->sg_path, strerror(errno));
        goto fail;
    }
    /* A lookup touches a slot and a few entries on random pages: a page
     * fault reads that page, not read_ahead_kb around it (8 MiB on the
     * VM of docs/perf.md: ~10 ms per fault when the file is not cached). */
    madvise(s->sg_map, s->sg_size, MADV_RANDOM);
    if (create) {
        atomic_store(&f->xf_count, 1);
        hdr_write(f);
        return f;
    }
    const uint8_t *h = s->sg_map;
    atomic_store(&f->xf_begin_ts, (int64_t)apg_be64(h));
    atomic_store(&f->xf_end_ts, (int64_t)apg_be64(h + 8));
    atomic_store(&f->xf_begin_phys, (int64_t)apg_be64(h + 16));
    atomic_store(&f->xf_end_phys, (int64_t)apg_be64(h + 24));
    atomic_store(&f->xf_used_slots, apg_be32(h + 32));
    uint32_t cnt = apg_be32(h + 36);
    if (cnt < 1 || cnt > ix->ix_entries) {
        apg_errf(APG_ECORRUPT, err, errlen, "%s: entry count %u out of range", s->sg_path, cnt);
        goto fail;
    }
    atomic_store(&f->xf_count, cnt);
    f->xf_flushed = cnt;
    atomic_store(&f->xf_alloc, head + (size_t)cnt * IX_ENT);
    f->xf_slots_warm = head;
    return f;
fail:
    if (create && f->xf_seg && f->xf_seg->sg_path)
        unlink(f->xf_seg->sg_path);
    file_free(f, false);
    return NULL;
}

static int push_file(struct apg_index *ix, struct ixfile *f)
{
    if (ix->ix_n == ix->ix_cap) {
        int nc = ix->ix_cap ? ix->ix_cap * 2 : 8;
        struct ixfile **nf = apg_realloc(ix->ix_files, (size_t)nc * sizeof(*nf));
        if (!nf)
            return -1;
        ix->ix_files = nf;
        ix->ix_cap = nc;
    }
    ix->ix_files[ix->ix_n++] = f;
    return 0;
}

static int push_file_locked(struct apg_index *ix, struct ixfile *f)
{
    pthread_rwlock_wrlock(&ix->ix_lock);
    int rc = push_file(ix, f);
    pthread_rwlock_unlock(&ix->ix_lock);
    return rc;
}

/* Appender: starts a new file. NULL (logged) on failure. */
static struct ixfile *roll(struct apg_store *st, struct apg_index *ix)
{
    int64_t now = apg_mono_ms(), wall = apg_wall_ms();
    if (now < ix->ix_retry_ms)
        return NULL;
    int64_t ms = wall > ix->ix_last_name ? wall : ix->ix_last_name + 1;
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    localtime_r(&secs, &tm);
    char name[40];
    snprintf(name, sizeof(name), "%04d%02d%02d%02d%02d%02d%03d", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
    char err[256];
    struct ixfile *f = file_open(ix, name, true, err, sizeof(err));
    if (f && push_file_locked(ix, f) != 0) {
        file_free(f, true);
        f = NULL;
        snprintf(err, sizeof(err), "out of memory");
    }
    if (!f) {
        ix->ix_retry_ms = now + 1000;
        apg_log_error(SUB, "index: cannot start a new index file: %s; messages are not indexed",
                      err);
        apg_store_set_last_error(st, "index file could not be created; messages not indexed");
        return NULL;
    }
    ix->ix_last_name = ms;
    ix->ix_cur = f;
    apg_store_fsync_dir(ix->ix_dir);
    return f;
}

/* Appender: adds one entry for key k (already "<topic>#<key>"). */
static void put_key(struct apg_store *st, struct apg_index *ix, const char *k, size_t kl,
                    int64_t phys, int64_t ts)
{
    struct ixfile *f = ix->ix_cur;
    if (!f || atomic_load_explicit(&f->xf_count, memory_order_relaxed) >= ix->ix_entries) {
        f = roll(st, ix);
        if (!f)
            return;
    }
    uint32_t idx = atomic_load_explicit(&f->xf_count, memory_order_relaxed);
    size_t end = (size_t)(ent_at(ix, f, idx + 1) - f->xf_seg->sg_map);
    if (end > atomic_load_explicit(&f->xf_alloc, memory_order_relaxed) &&
        file_alloc(ix, f, end) != 0) {
        int64_t now = apg_mono_ms();
        if (now >= ix->ix_retry_ms) {
            apg_log_error(SUB, "index: cannot allocate %s: %s; messages are not indexed",
                          f->xf_seg->sg_path, strerror(errno));
            ix->ix_retry_ms = now + 1000;
        }
        return;
    }
    uint32_t h = key_hash(k, kl);
    uint8_t *sp = slot_at(ix, f, h % ix->ix_slots);
    uint32_t prev = slot_load(sp);
    if (prev >= idx)
        prev = 0;
    if (idx == 1) {
        atomic_store(&f->xf_begin_ts, ts);
        atomic_store(&f->xf_begin_phys, phys);
    }
    int64_t diff = (ts - atomic_load_explicit(&f->xf_begin_ts, memory_order_relaxed)) / 1000;
    if (diff < 0)
        diff = 0;
    if (diff > INT32_MAX)
        diff = INT32_MAX;
    uint8_t *e = ent_at(ix, f, idx);
    uint32_t w32[2] = {htobe32(h), 0};
    uint64_t w64 = htobe64((uint64_t)phys);
    memcpy(e, &w32[0], 4);
    memcpy(e + 4, &w64, 8);
    w32[0] = htobe32((uint32_t)diff);
    w32[1] = htobe32(prev);
    memcpy(e + 12, w32, 8);
    slot_store(sp, idx);
    if (!prev)
        atomic_fetch_add_explicit(&f->xf_used_slots, 1, memory_order_relaxed);
    if (ts > atomic_load_explicit(&f->xf_end_ts, memory_order_relaxed))
        atomic_store_explicit(&f->xf_end_ts, ts, memory_order_relaxed);
    atomic_store_explicit(&f->xf_end_phys, phys, memory_order_relaxed);
    atomic_store_explicit(&f->xf_count, idx + 1, memory_order_release);
    /* The header in the file is brought up to date only by dp_flush
     * (before the checkpoint that covers these records) and at close:
     * writing it here would dirty its page on every put (a put that touches
     * a page under writeback waits for it) and race with the flush. A
     * header still saying "empty" after a crash means no checkpoint covers
     * any of the file's records, and recovery drops the file. */
}

/* "<topic>#<key>" in buf (stack) or an allocation for long keys; calls
 * put_key. */
static void put_topic_key(struct apg_store *st, struct apg_index *ix,
                          const struct apg_dispatch_rec *r, const char *k, size_t kl)
{
    char stackbuf[IX_KEY_STACK], *buf = stackbuf;
    size_t n = r->dr_topic_len + 1 + kl;
    if (n > sizeof(stackbuf) && !(buf = apg_malloc(n)))
        return;
    memcpy(buf, r->dr_topic, r->dr_topic_len);
    buf[r->dr_topic_len] = '#';
    memcpy(buf + r->dr_topic_len + 1, k, kl);
    put_key(st, ix, buf, n, r->dr_phys, r->dr_store_ts);
    if (buf != stackbuf)
        apg_free(buf);
}

static void index_record(struct apg_store *st, struct apg_index *ix,
                         const struct apg_dispatch_rec *r)
{
    /* Rolled-back transaction records are not indexed (RocketMQ skips
     * them too); prepared ones are. */
    if ((r->dr_sysflag & APG_SYSFLAG_TX_MASK) == APG_SYSFLAG_TX_ROLLBACK)
        return;
    /* One forward walk for both names (the last pair of a name wins, as in
     * apg_props_find): name \x01 value \x02 ... */
    const char *keys = NULL, *uniq = NULL;
    size_t keys_len = 0, uniq_len = 0;
    const char *p = r->dr_props, *pe = p + r->dr_props_len;
    while (p < pe) {
        const char *ce = memchr(p, APG_PROPS_SEP, (size_t)(pe - p));
        if (!ce)
            ce = pe;
        const char *nv = memchr(p, APG_PROPS_NV_SEP, (size_t)(ce - p));
        if (nv && nv + 1 < ce) {
            size_t nl = (size_t)(nv - p);
            if (nl == 4 && memcmp(p, "KEYS", 4) == 0) {
                keys = nv + 1;
                keys_len = (size_t)(ce - keys);
            } else if (nl == 8 && memcmp(p, "UNIQ_KEY", 8) == 0) {
                uniq = nv + 1;
                uniq_len = (size_t)(ce - uniq);
            }
        }
        p = ce + 1;
    }
    if (uniq)
        put_topic_key(st, ix, r, uniq, uniq_len);
    if (!keys)
        return;
    p = keys;
    const char *e = keys + keys_len;
    while (p < e) {
        const char *sp = memchr(p, ' ', (size_t)(e - p));
        const char *ke = sp ? sp : e;
        if (ke > p)
            put_topic_key(st, ix, r, p, (size_t)(ke - p));
        p = ke + 1;
    }
}

apg_err_t apg_index_dispatch_records(struct apg_store *st, const struct apg_dispatch_rec *recs,
                                     int n, bool recovering, int *done, char *err, size_t errlen)
{
    (void)recovering;
    (void)err;
    (void)errlen;
    struct apg_index *ix = st->st_index;
    if (ix)
        for (int i = 0; i < n; i++)
            index_record(st, ix, &recs[i]);
    *done = n;
    return APG_OK;
}

/* Writes SLOTS_FILE when the prefix of files with durable slots changed
 * (the newest counts only when `all`). Flush thread or recovery. */
static void durable_update(struct apg_index *ix, bool all)
{
    const char *want = "";
    for (int i = 0; i < ix->ix_n; i++) {
        struct ixfile *f = ix->ix_files[i];
        if (!f->xf_slots_synced || (i == ix->ix_n - 1 && !all))
            break;
        want = f->xf_name;
    }
    if (ix->ix_durable_on_disk && strcmp(want, ix->ix_durable) == 0)
        return;
    const char *path = ix->ix_slots_path;
    char *tmp = apg_path_join(ix->ix_root, SLOTS_FILE ".tmp");
    int fd = tmp ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;
    bool ok =
        fd >= 0 && write(fd, want, strlen(want)) == (ssize_t)strlen(want) && fdatasync(fd) == 0;
    if (fd >= 0)
        close(fd);
    ok = ok && path && rename(tmp, path) == 0;
    if (ok) {
        apg_store_fsync_dir(ix->ix_root);
        snprintf(ix->ix_durable, sizeof(ix->ix_durable), "%s", want);
        ix->ix_durable_on_disk = true;
    } else {
        apg_log_warn(SUB, "index: cannot write %s: %s", path ? path : SLOTS_FILE, strerror(errno));
    }
    apg_free(tmp);
}

int apg_index_dispatch_flush(struct apg_store *st)
{
    struct apg_index *ix = st->st_index;
    if (!ix)
        return 0;
    int rc = 0;
    bool closing = atomic_load(&st->st_closing);
    pthread_mutex_lock(&ix->ix_flush_mtx);
    pthread_rwlock_rdlock(&ix->ix_lock);
    size_t head = IX_HDR + (size_t)ix->ix_slots * IX_SLOT;
    for (int i = 0; i < ix->ix_n; i++) {
        struct ixfile *f = ix->ix_files[i];
        bool newest = i == ix->ix_n - 1 && !closing;
        uint32_t cnt = atomic_load_explicit(&f->xf_count, memory_order_acquire);
        if (cnt == f->xf_flushed && (newest || f->xf_slots_synced))
            continue;
        hdr_write(f);
        size_t to = (size_t)(ent_at(ix, f, cnt) - f->xf_seg->sg_map);
        /* The entries first, then the header that counts them. The
         * newest file's slot table stays in memory (its random writes
         * would be written again and write-protected at every flush,
         * each next put faulting per page); a full or closing file's goes
         * with its header. */
        size_t from = newest ? (size_t)(ent_at(ix, f, f->xf_flushed) - f->xf_seg->sg_map) : head;
        if (apg_seg_sync(st, f->xf_seg, from, to) != 0 ||
            apg_seg_sync(st, f->xf_seg, 0, newest ? IX_HDR : head) != 0) {
            rc = -1;
            continue;
        }
        f->xf_flushed = cnt;
        if (!newest)
            f->xf_slots_synced = true;
    }
    if (rc == 0)
        durable_update(ix, closing);
    pthread_rwlock_unlock(&ix->ix_lock);
    pthread_mutex_unlock(&ix->ix_flush_mtx);
    return rc;
}

/* Recovery: the slot table of f again from its entries [1, count) (entries
 * are durable up to the header's count; the slots on disk may be older). */
static void slots_rebuild(struct apg_index *ix, struct ixfile *f)
{
    uint32_t cnt = atomic_load(&f->xf_count), used = 0;
    memset(f->xf_seg->sg_map + IX_HDR, 0, (size_t)ix->ix_slots * IX_SLOT);
    for (uint32_t i = 1; i < cnt; i++) {
        uint8_t *sp = slot_at(ix, f, apg_be32(ent_at(ix, f, i)) % ix->ix_slots);
        used += slot_load(sp) == 0;
        slot_store(sp, i);
    }
    atomic_store(&f->xf_used_slots, used);
}

/* Recovery: drops f's entries at or after commit-log offset `from` (f holds
 * some below it). */
static void file_cut(struct apg_index *ix, struct ixfile *f, int64_t from)
{
    uint32_t cnt = atomic_load(&f->xf_count);
    uint32_t lo = 1, hi = cnt; /* first entry with phys >= from, in [1, cnt] */
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if ((int64_t)apg_be64(ent_at(ix, f, mid) + 4) >= from)
            hi = mid;
        else
            lo = mid + 1;
    }
    uint32_t keep = lo;
    /* The walk below reads the whole slot table: in large reads, not one
     * page per fault (the mapping is MADV_RANDOM). */
    madvise(f->xf_seg->sg_map, IX_HDR + (size_t)ix->ix_slots * IX_SLOT, MADV_WILLNEED);
    /* Slots are repaired even when nothing is cut: after a kill -9 the
     * header's count is the one of the last flush, and slots may point at
     * entries written after it. */
    uint32_t used = 0;
    for (uint32_t s = 0; s < ix->ix_slots; s++) {
        uint8_t *sp = slot_at(ix, f, s);
        uint32_t v = slot_load(sp), v0 = v;
        /* A chain runs newest to oldest; a link that does not go down is
         * damage: cut the chain there. */
        while (v >= keep) {
            uint32_t pv = apg_be32(ent_at(ix, f, v) + 16);
            v = pv < v ? pv : 0;
        }
        if (v != v0)
            slot_store(sp, v);
        used += v != 0;
    }
    if (keep < cnt)
        memset(ent_at(ix, f, keep), 0, (size_t)(cnt - keep) * IX_ENT);
    const uint8_t *last = ent_at(ix, f, keep - 1);
    atomic_store(&f->xf_end_phys, (int64_t)apg_be64(last + 4));
    /* Entry times are whole seconds after the begin time: the end is at
     * most the end of the last entry's second. */
    atomic_store(&f->xf_end_ts,
                 atomic_load(&f->xf_begin_ts) + ((int64_t)apg_be32(last + 12) + 1) * 1000 - 1);
    atomic_store(&f->xf_used_slots, used);
    atomic_store(&f->xf_count, keep);
    if (f->xf_flushed > keep)
        f->xf_flushed = keep;
    hdr_write(f);
}

void apg_index_dispatch_truncate(struct apg_store *st, int64_t from)
{
    struct apg_index *ix = st->st_index;
    if (!ix)
        return;
    pthread_rwlock_wrlock(&ix->ix_lock);
    while (ix->ix_n > 0) {
        struct ixfile *f = ix->ix_files[ix->ix_n - 1];
        bool empty = atomic_load(&f->xf_count) <= 1;
        if (!empty && atomic_load(&f->xf_begin_phys) < from) {
            if (atomic_load(&f->xf_end_phys) >= from)
                apg_log_info(SUB, "index: dropping entries of %s from commit log offset %lld",
                             f->xf_seg->sg_path, (long long)from);
            file_cut(ix, f, from);
            break;
        }
        apg_log_info(SUB, "index: removing %s (entries from commit log offset %lld on)",
                     f->xf_seg->sg_path, (long long)from);
        ix->ix_n--;
        file_free(f, true);
    }
    ix->ix_cur = ix->ix_n ? ix->ix_files[ix->ix_n - 1] : NULL;
    for (int i = 0; i < ix->ix_n; i++) {
        struct ixfile *f = ix->ix_files[i];
        if (f->xf_slots_synced)
            continue;
        apg_log_info(SUB, "index: rebuilding the slots of %s from its entries", f->xf_seg->sg_path);
        slots_rebuild(ix, f);
    }
    /* The newest file is written from now on: its slots stop being
     * durable before the first put. */
    if (ix->ix_cur)
        ix->ix_cur->xf_slots_synced = false;
    durable_update(ix, false);
    pthread_rwlock_unlock(&ix->ix_lock);
}

static void drop_all(struct apg_index *ix, bool remove_files)
{
    pthread_rwlock_wrlock(&ix->ix_lock);
    for (int i = 0; i < ix->ix_n; i++)
        file_free(ix->ix_files[i], remove_files);
    ix->ix_n = 0;
    ix->ix_cur = NULL;
    pthread_rwlock_unlock(&ix->ix_lock);
}

void apg_index_dispatch_reset(struct apg_store *st)
{
    if (!st->st_index)
        return;
    drop_all(st->st_index, true);
    durable_update(st->st_index, false);
}

void apg_index_dispatch_close(struct apg_store *st)
{
    struct apg_index *ix = st->st_index;
    if (!ix)
        return;
    for (int i = 0; i < ix->ix_n; i++)
        hdr_write(ix->ix_files[i]);
    drop_all(ix, false);
    pthread_rwlock_destroy(&ix->ix_lock);
    pthread_mutex_destroy(&ix->ix_flush_mtx);
    apg_free(ix->ix_files);
    apg_free(ix->ix_dir);
    apg_free(ix->ix_root);
    apg_free(ix->ix_slots_path);
    apg_free(ix);
    st->st_index = NULL;
}

bool apg_index_warm(struct apg_store *st)
{
    struct apg_index *ix = st->st_index;
    if (!ix || atomic_load(&st->st_disk_full))
        return false;
    bool more = false;
    pthread_rwlock_rdlock(&ix->ix_lock);
    struct ixfile *f = ix->ix_n ? ix->ix_files[ix->ix_n - 1] : NULL;
    if (f) {
        size_t head = IX_HDR + (size_t)ix->ix_slots * IX_SLOT;
        if (f->xf_slots_warm < head) {
            /* A new file's slot table: map it writable a step at a time. */
            size_t to =
                f->xf_slots_warm + IX_ALLOC_STEP < head ? f->xf_slots_warm + IX_ALLOC_STEP : head;
#ifdef MADV_POPULATE_WRITE
            madvise(f->xf_seg->sg_map + f->xf_slots_warm, to - f->xf_slots_warm,
                    MADV_POPULATE_WRITE);
#endif
            f->xf_slots_warm = to;
            more = true;
        } else {
            uint32_t cnt = atomic_load_explicit(&f->xf_count, memory_order_relaxed);
            size_t want = (size_t)(ent_at(ix, f, cnt) - f->xf_seg->sg_map) + IX_WARM_AHEAD;
            if (want > file_size(ix))
                want = file_size(ix);
            if (atomic_load(&f->xf_alloc) < want) {
                size_t step = atomic_load(&f->xf_alloc) + 1;
                more = file_alloc(ix, f, step) == 0;
            }
        }
    }
    pthread_rwlock_unlock(&ix->ix_lock);
    return more;
}

void apg_index_clean(struct apg_store *st, int64_t min_phys)
{
    struct apg_index *ix = st->st_index;
    if (!ix)
        return;
    int removed = 0;
    pthread_rwlock_wrlock(&ix->ix_lock);
    while (ix->ix_n > 1 && atomic_load(&ix->ix_files[0]->xf_end_phys) < min_phys) {
        struct ixfile *f = ix->ix_files[0];
        apg_log_info(SUB, "retention: deleting index file %s (its messages are gone)",
                     f->xf_seg->sg_path);
        memmove(ix->ix_files, ix->ix_files + 1, (size_t)(ix->ix_n - 1) * sizeof(*ix->ix_files));
        ix->ix_n--;
        file_free(f, true);
        removed++;
    }
    pthread_rwlock_unlock(&ix->ix_lock);
    if (removed)
        apg_store_fsync_dir(ix->ix_dir);
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

apg_err_t apg_index_open(struct apg_store *st, char *err, size_t errlen)
{
    if (st->st_opts.so_no_index)
        return APG_OK;
    struct apg_index *ix = apg_calloc(1, sizeof(*ix));
    if (!ix || !(ix->ix_dir = apg_path_join(st->st_root, "index")) ||
        !(ix->ix_root = apg_strdup(st->st_root)) ||
        !(ix->ix_slots_path = apg_path_join(st->st_root, SLOTS_FILE))) {
        if (ix) {
            apg_free(ix->ix_dir);
            apg_free(ix->ix_root);
        }
        apg_free(ix);
        return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    }
    pthread_rwlock_init(&ix->ix_lock, NULL);
    pthread_mutex_init(&ix->ix_flush_mtx, NULL);
    ix->ix_slots = st->st_opts.so_index_slots;
    ix->ix_entries = st->st_opts.so_index_entries;
    st->st_index = ix;
    apg_err_t rc = apg_file_mkdir_p(ix->ix_dir, err, errlen);
    if (rc)
        return rc;
    DIR *d = opendir(ix->ix_dir);
    if (!d)
        return apg_errf(APG_EIO, err, errlen, "open %s: %s", ix->ix_dir, strerror(errno));
    char **names = NULL;
    int n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l != 17 || strspn(de->d_name, "0123456789") != l)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nn = apg_realloc(names, (size_t)cap * sizeof(*nn));
            if (!nn)
                break;
            names = nn;
        }
        if (!(names[n] = apg_strdup(de->d_name)))
            break;
        n++;
    }
    closedir(d);
    if (n)
        qsort(names, (size_t)n, sizeof(*names), name_cmp);
    for (int i = 0; i < n && !rc; i++) {
        char e2[512];
        struct ixfile *f = file_open(ix, names[i], false, e2, sizeof(e2));
        if (!f) {
            /* An index file that does not fit the settings or is damaged
             * is not worth refusing to start over: it goes, and queries
             * for its messages find nothing. */
            apg_log_warn(SUB, "index: %s; removing it", e2);
            char *p = apg_path_join(ix->ix_dir, names[i]);
            if (p)
                unlink(p);
            apg_free(p);
            continue;
        }
        if (push_file(ix, f) != 0) {
            file_free(f, false);
            rc = apg_errf(APG_ENOMEM, err, errlen, "out of memory");
        }
    }
    for (int i = 0; i < n; i++)
        apg_free(names[i]);
    apg_free(names);
    /* Which files have durable slots: SLOTS_FILE names the newest; without
     * it (a store from before the file existed, which msynced every slot
     * table at every flush) all of them. */
    int sfd = open(ix->ix_slots_path, O_RDONLY | O_CLOEXEC);
    if (sfd >= 0) {
        ssize_t got = read(sfd, ix->ix_durable, sizeof(ix->ix_durable) - 1);
        ix->ix_durable[got > 0 ? got : 0] = '\0';
        ix->ix_durable_on_disk = got >= 0;
        close(sfd);
    } else if (ix->ix_n) {
        snprintf(ix->ix_durable, sizeof(ix->ix_durable), "%s", ix->ix_files[ix->ix_n - 1]->xf_name);
    }
    for (int i = 0; i < ix->ix_n; i++)
        ix->ix_files[i]->xf_slots_synced = strcmp(ix->ix_files[i]->xf_name, ix->ix_durable) <= 0;
    ix->ix_cur = ix->ix_n ? ix->ix_files[ix->ix_n - 1] : NULL;
    if (ix->ix_n) {
        /* Names keep increasing even if the clock went back. */
        ix->ix_last_name = apg_wall_ms();
    }
    return rc;
}

/* Reader: up to max commit-log offsets of entries for k in [begin, end]
 * (index-time precision: whole seconds after the file's begin), newest
 * first; below `wrote`. */
static int lookup(struct apg_index *ix, const char *k, size_t kl, int max, int64_t begin,
                  int64_t end, int64_t wrote, int64_t *out, int64_t *last_ts, int64_t *last_phys)
{
    uint32_t h = key_hash(k, kl);
    int n = 0;
    pthread_rwlock_rdlock(&ix->ix_lock);
    if (ix->ix_n) {
        struct ixfile *l = ix->ix_files[ix->ix_n - 1];
        *last_ts = atomic_load(&l->xf_end_ts);
        *last_phys = atomic_load(&l->xf_end_phys);
    }
    for (int i = ix->ix_n - 1; i >= 0 && n < max; i--) {
        struct ixfile *f = ix->ix_files[i];
        uint32_t cnt = atomic_load_explicit(&f->xf_count, memory_order_acquire);
        int64_t fb = atomic_load(&f->xf_begin_ts), fe = atomic_load(&f->xf_end_ts);
        if (cnt <= 1 || fe < begin - 1000 || fb > end)
            continue;
        uint32_t v = slot_load(slot_at(ix, f, h % ix->ix_slots));
        while (v > 0 && v < cnt && n < max) {
            const uint8_t *e = ent_at(ix, f, v);
            int64_t t = fb + (int64_t)apg_be32(e + 12) * 1000;
            int64_t phys = (int64_t)apg_be64(e + 4);
            /* t is rounded down to the second: a record of `begin` may
             * show up to a second earlier. */
            if (t < begin - 1000)
                break;
            if (apg_be32(e) == h && t <= end && phys < wrote)
                out[n++] = phys;
            uint32_t pv = apg_be32(e + 16);
            if (pv >= v)
                break;
            v = pv;
        }
        if (fb < begin)
            break;
    }
    pthread_rwlock_unlock(&ix->ix_lock);
    return n;
}

void apg_store_prefetch_records(struct apg_store *st, const int64_t *phys, int n)
{
    pthread_rwlock_rdlock(&st->st_struct_lock);
    int64_t lo = atomic_load(&st->st_min_phys);
    int64_t wrote = atomic_load_explicit(&st->st_wrote, memory_order_acquire);
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < n; i++) {
            struct seg *s = phys[i] >= lo && phys[i] < wrote ? apg_cl_seg_for(st, phys[i]) : NULL;
            if (!s || s->sg_fd < 0 || !s->sg_map)
                continue;
            size_t off = (size_t)(phys[i] - s->sg_base);
            size_t room = s->sg_size - off;
            if (pass == 0) {
                readahead(s->sg_fd, (off_t)off, room < IX_PREFETCH ? room : IX_PREFETCH);
                continue;
            }
            if (room < 4)
                continue;
            /* The first page is in (or on its way): a larger record's rest. */
            size_t total = apg_be32(s->sg_map + off);
            if (total > room)
                total = room;
            if (total > IX_PREFETCH)
                readahead(s->sg_fd, (off_t)(off + IX_PREFETCH), total - IX_PREFETCH);
        }
    pthread_rwlock_unlock(&st->st_struct_lock);
}

/* Does the record carry key k (a word of KEYS, or UNIQ_KEY)? */
static bool record_has_key(const struct apg_msgrec *m, const char *k, size_t kl)
{
    size_t vl;
    const char *v = apg_props_find(m->mr_props, m->mr_props_len, "UNIQ_KEY", &vl);
    if (v && vl == kl && memcmp(v, k, kl) == 0)
        return true;
    v = apg_props_find(m->mr_props, m->mr_props_len, "KEYS", &vl);
    for (const char *p = v, *e = v + (v ? vl : 0); p && p < e;) {
        const char *sp = memchr(p, ' ', (size_t)(e - p));
        const char *ke = sp ? sp : e;
        if ((size_t)(ke - p) == kl && memcmp(p, k, kl) == 0)
            return true;
        p = ke + 1;
    }
    return false;
}

apg_err_t apg_store_query_message(struct apg_store *st, const char *topic, size_t topic_len,
                                  const char *key, size_t key_len, int max_msgs, int64_t begin_ms,
                                  int64_t end_ms, struct apg_buf *out,
                                  struct apg_store_query_result *r)
{
    memset(r, 0, sizeof(*r));
    struct apg_index *ix = st->st_index;
    if (!ix || max_msgs <= 0 || !topic_len)
        return APG_OK;
    if (max_msgs > APG_STORE_QUERY_MAX)
        max_msgs = APG_STORE_QUERY_MAX;
    if (begin_ms < 0)
        begin_ms = 0; /* store times are positive; keeps begin - 1000 in range */
    char stackbuf[IX_KEY_STACK], *k = stackbuf;
    size_t kl = topic_len + 1 + key_len;
    if (kl > sizeof(stackbuf) && !(k = apg_malloc(kl)))
        return APG_ENOMEM;
    memcpy(k, topic, topic_len);
    k[topic_len] = '#';
    memcpy(k + topic_len + 1, key, key_len);
    /* Entries whose hash matches may belong to other keys (collisions): ask
     * for more than max and keep only records that carry the key. */
    int64_t phys[APG_STORE_QUERY_MAX * 2];
    int64_t wrote = atomic_load_explicit(&st->st_wrote, memory_order_acquire);
    int n = lookup(ix, k, kl, APG_STORE_QUERY_MAX * 2, begin_ms, end_ms, wrote, phys,
                   &r->sq_last_update_ts, &r->sq_last_update_phys);
    if (k != stackbuf)
        apg_free(k);
    /* Each offset once (a record can be indexed under the key twice, as a
     * KEYS word and as UNIQ_KEY), then all of them asked of the disk at once
     * before the first is copied. */
    int m = 0;
    for (int i = 0; i < n; i++) {
        bool dup = false;
        for (int j = 0; j < m && !dup; j++)
            dup = phys[j] == phys[i];
        if (!dup)
            phys[m++] = phys[i];
    }
    n = m;
    apg_store_prefetch_records(st, phys, n < max_msgs ? n : max_msgs);
    apg_err_t rc = APG_OK;
    for (int i = 0; i < n && r->sq_count < max_msgs; i++) {
        if (i >= max_msgs) /* past the first max: one replaces a collision */
            apg_store_prefetch_records(st, phys + i, 1);
        size_t at = out->b_len;
        if (apg_store_read_at(st, phys[i], out) != APG_OK)
            continue;
        struct apg_msgrec m;
        bool keep = apg_msgrec_decode(out->b_data + at, out->b_len - at, false, &m, NULL) ==
                        APG_MSGREC_OK &&
                    m.mr_topic_len == topic_len && memcmp(m.mr_topic, topic, topic_len) == 0 &&
                    m.mr_store_ts >= begin_ms && m.mr_store_ts <= end_ms &&
                    record_has_key(&m, key, key_len);
        if (keep)
            r->sq_count++;
        else
            out->b_len = at;
    }
    return rc;
}

/* The timer store: timer messages parked in rmq_sys_wheel_timer and copied
 * to their real queue at their deliver time, to the millisecond, never
 * early.
 *
 * Design. The message itself is stored once, in the commit log, as a record
 * of rmq_sys_wheel_timer queue 0 (the send path's "delay" step rewrites it:
 * TIMER_OUT_MS = deliver time, REAL_TOPIC, REAL_QID). Everything else is
 * derived from that queue by this module's thread:
 *
 *   enqueue  read the timer queue's consume-queue entries from the enqueue
 *            offset (the store writes each record's TIMER_OUT_MS there in
 *            place of the tag hash, so the record itself is not read); a
 *            record already due is copied at once; any other gets a 16-byte
 *            entry (deliver ms, commit-log offset) for the file of its
 *            bucket, timer/buckets/<deliver ms / BUCKET_MS> (one minute of
 *            deliver time). A pass (up to PASS_MAX records) collects its
 *            entries, sorts them by deliver time and appends each bucket's
 *            run with one write.
 *   deliver  when the wall clock enters the cursor bucket, its file is read,
 *            sorted by (deliver ms, offset) and de-duplicated: the in-memory
 *            wheel of the near minute; each entry is copied once its own
 *            deliver time has passed (the record is read back by offset,
 *            copied with apg_broker_put_real_copy and stored with
 *            apg_broker_put_internal, 64 per put); when the bucket has ended
 *            and every entry is out, the cursor moves to the next bucket.
 *            The records of the entries due within PREFETCH_MS are read
 *            ahead (apg_store_prefetch_records): a parked record is read
 *            once, long after it was written and in deliver-time order, so
 *            its page has often left the cache, and a page fault at the
 *            deliver time would make the copy late.
 *
 * Why a file per minute and not RocketMQ's wheel + linked timer log: both
 * keep memory independent of the number pending, but the bucket file needs
 * no in-memory or mapped wheel (RocketMQ maps 2 x 7 days of 1 s slots,
 * ~40 MB, whatever is pending), reads exactly the due entries sequentially
 * instead of following a back-linked chain through a shared log, and is
 * freed by unlinking one file. Why a minute and not the timerPrecisionMs
 * second of the first layout (timer/slots/<second>): timers spread over three
 * days made one file per second, 260,000 inodes of one 4 KiB block each for
 * 1M timers, and creating them was the whole cost of parking (ext4 inode
 * allocation and block zeroing: 3,100 timers/s). A minute makes 4,320 files
 * for three days and still keeps memory to one minute's entries (16 bytes
 * each) plus fixed buffers.
 *
 * Progress: config/timerProgress.json {"enqueueOffset":E,"bucket":B,
 * "bucketDone":D,"cancelOffset":C}: every timer-queue record below E is in a
 * bucket file or was copied; every bucket below B is delivered, and the
 * first D entries of bucket B in (deliver ms, offset) order. The timer thread
 * decides what to persist every timerFlushIntervalMs (only what the store
 * has flushed the copies of) and hands it, with the list of bucket files
 * written since, to the sync thread, which syncs those files (fdatasync
 * each, or one syncfs past DIRTY_MAX of them), writes the file (write,
 * fsync, rename, directory fsync) and unlinks the files of the buckets below
 * B: no fsync, rename or unlink on the delivery path. A hand-off that finds
 * the previous one not yet taken merges into it (newer values, union of the
 * files). After a crash the enqueue repeats from E (the repeated entries are
 * dropped by the de-duplication when their bucket is read: same offset) and
 * the delivery from entry D of bucket B (copies made since are made again:
 * at least once, same UNIQ_KEY; after a clean stop exactly once). Timers
 * that fell due while the broker was down are delivered at start: the
 * cursor walks every bucket from B to now (an absent file is an empty
 * bucket).
 *
 * Upgrade: a store written with the per-second layout (timer/slots/<slot>,
 * <slot>.del, "slot"/"slotDone" in the progress file) is moved into buckets
 * when it opens, before the thread starts (migrate_slots).
 *
 * Never early: an entry is copied only when the wall clock has reached its
 * deliver time, which is taken from the record's TIMER_OUT_MS.
 *
 * Cancels (RocketMQ 5's TIMER_DEL_UNIQKEY): a timer message carrying
 * TIMER_DEL_UNIQKEY = "<topic>+<UNIQ_KEY>" cancels the pending timer of that
 * topic and unique key in the same timerPrecisionMs slot (the sender gives
 * it the pending timer's deliver time); it is itself never delivered. The
 * send path parks it in rmq_sys_wheel_timer queue APG_TIMER_CANCEL_QID, not
 * 0, so the enqueue of ordinary timers still never reads a record. The
 * cancel enqueue reads each cancel record (they are few) and appends its
 * slot and key to its bucket's cancel file, timer/buckets/<bucket>.del (u16
 * big-endian key length, i64 big-endian slot, key bytes per cancel),
 * fdatasynced before the cancel offset moves past it; a cancel for a bucket
 * already delivered has nothing left to cancel and is dropped. When a bucket
 * is loaded its cancel file is read into tm_keys (slot + key, sorted), and
 * every record copied while that bucket is loaded whose slot, REAL_TOPIC +
 * "+" + UNIQ_KEY is among them is skipped instead (a cancel for the loaded
 * bucket is added to tm_keys at once). A cancel re-read after a crash is
 * appended twice, which changes nothing.
 *
 * Threads: the timer thread owns struct apg_timer except tm_delivered and
 * tm_cancelled (atomic), tm_worker (a common/worker: kicks), the job slot
 * (under tm_sync_lock) and tm_unlinked / tm_sync_failed (the sync thread's).
 * The sync thread touches bucket files only by fdatasync and by unlinking
 * buckets below a persisted cursor, which the timer thread never writes
 * again (a record whose bucket is below the cursor is already due and is
 * copied, not parked). */
#define _GNU_SOURCE /* syncfs */
#include "broker/timer/timer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "broker/broker_rt.h"
#include "broker/schedule/schedule.h"
#include "common/file.h"
#include "common/json.h"
#include "common/mem.h"
#include "common/worker.h"
#include "protocol/props.h"

#define SUB "timer"
#define BATCH 64
#define BATCH_BYTES (4u << 20)
#define PASS_MAX 8192 /* timer-queue records enqueued per pass */
#define MAX_SLEEP_MS 1000
#define RETRY_MS 1000
#define CATCHUP_MS 200    /* longest a backlog's parking holds deliveries up */
#define DIRTY_MAX 256     /* bucket files synced one by one before a persist */
#define BUCKET_MS 60000LL /* deliver time covered by one bucket file */
#define PREFETCH_MS 2000  /* records due this soon are read ahead from disk */
#define PREFETCH_MAX 1024 /* ... at most this many entries past the next one */

struct entry {
    int64_t e_due;  /* deliver time, wall ms */
    int64_t e_phys; /* commit-log offset of the parked record */
};

/* One cancel of the loaded bucket: i64 big-endian slot, then
 * "<topic>+<UNIQ_KEY>". */
struct ckey {
    char *k_s;
    size_t k_len;
};

/* What the sync thread is asked to persist. */
struct sync_job {
    int64_t j_enq, j_bucket, j_pos, j_cenq;
    int64_t j_dirty[DIRTY_MAX]; /* bucket files to sync first */
    int j_ndirty;
    bool j_dirty_all; /* more than DIRTY_MAX: syncfs */
};

struct apg_timer {
    struct apg_broker *tm_b;
    struct apg_store *tm_st;
    int64_t tm_prec;   /* timerPrecisionMs: the slot a cancel names */
    int64_t tm_max_ms; /* timerMaxDelaySec * 1000 */
    int64_t tm_flush_ms;
    char *tm_dir;      /* <root>/timer/buckets */
    char *tm_old_dir;  /* <root>/timer/slots: the per-second layout */
    char *tm_path;     /* <root>/config/timerProgress.json */
    int64_t tm_enq;    /* next timer-queue offset to enqueue */
    int64_t tm_cenq;   /* next offset of the cancel queue (APG_TIMER_CANCEL_QID) */
    int64_t tm_bucket; /* cursor: every bucket below it is delivered */
    bool tm_loaded;    /* tm_cur holds the cursor bucket's entries */
    struct entry *tm_cur;
    size_t tm_n, tm_cap, tm_pos; /* tm_cur[tm_pos..tm_n) are still to copy */
    size_t tm_pref;              /* tm_cur[..tm_pref) had their records read ahead */
    struct entry *tm_park;       /* this pass's entries for bucket files */
    size_t tm_npark;
    struct ckey *tm_keys; /* the loaded bucket's cancels, sorted (key_cmp) */
    size_t tm_nkeys, tm_capkeys;
    int64_t tm_copied_end;    /* commit-log end of the last copy stored */
    struct sync_job tm_dirty; /* bucket files written since the last hand-off */
    int64_t tm_skip;          /* entries of the cursor bucket delivered before a stop */
    int64_t tm_p_enq, tm_p_bucket, tm_p_pos, tm_p_cenq; /* last handed off */
    int64_t tm_next_persist;
    int64_t tm_snap[4]; /* enqueue offset, bucket, bucketDone, copies' end one interval ago */
    bool tm_snap_set;
    struct apg_buf tm_one;
    struct apg_msg_in tm_msgs[BATCH];
    struct apg_put_result tm_res[BATCH];
    struct apg_log_limit tm_fail_log;
    atomic_llong tm_delivered;
    atomic_llong tm_cancelled;
    struct apg_worker tm_worker;
    int64_t tm_catchup_since; /* the timer thread's */
    /* The sync thread. */
    pthread_t tm_sync_thread;
    bool tm_sync_started;
    pthread_mutex_t tm_sync_lock;
    pthread_cond_t tm_sync_cond;
    struct sync_job tm_job; /* under tm_sync_lock */
    bool tm_job_set, tm_sync_stop;
    struct sync_job tm_run; /* the job being run (sync thread) */
    int64_t tm_unlinked;    /* bucket files below this are gone (sync thread) */
    bool tm_sync_failed;    /* a sync failed: the next job syncs everything */
};

/* ---- the send side -------------------------------------------------------- */

enum apg_timer_kind apg_timer_prop_kind(const char *name, size_t len)
{
    switch (len) {
    case 16:
        return memcmp(name, "TIMER_DELIVER_MS", 16) == 0 ? APG_TIMER_DELIVER_MS : APG_TIMER_NONE;
    case 15:
        return memcmp(name, "TIMER_DELAY_SEC", 15) == 0 ? APG_TIMER_DELAY_SEC : APG_TIMER_NONE;
    case 14:
        return memcmp(name, "TIMER_DELAY_MS", 14) == 0 ? APG_TIMER_DELAY_MS : APG_TIMER_NONE;
    case 18:
        return memcmp(name, "__STARTDELIVERTIME", 18) == 0 ? APG_TIMER_START_MS : APG_TIMER_NONE;
    }
    return APG_TIMER_NONE;
}

apg_err_t apg_timer_due(const struct apg_timer *tm, enum apg_timer_kind kind, const char *v,
                        size_t len, int64_t now, int64_t *due_ms, char *err, size_t errlen)
{
    *due_ms = 0;
    if (!tm || kind == APG_TIMER_NONE || len == 0 || len > 18)
        return APG_OK;
    int64_t x = 0;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return APG_OK;
        x = x * 10 + (v[i] - '0');
    }
    int64_t due = kind == APG_TIMER_DELAY_SEC
                      ? (x > INT64_MAX / 2000 ? INT64_MAX / 2 : now + x * 1000)
                  : kind == APG_TIMER_DELAY_MS ? (x > INT64_MAX / 2 ? INT64_MAX / 2 : now + x)
                                               : x;
    if (due <= now)
        return APG_OK;
    *due_ms = due;
    if (due - now > tm->tm_max_ms)
        return apg_errf(APG_ERANGE, err, errlen,
                        "the deliver time is %lld ms ahead, past timerMaxDelaySec (%lld s); "
                        "send it at most that far ahead",
                        (long long)(due - now), (long long)(tm->tm_max_ms / 1000));
    return APG_OK;
}

int32_t apg_timer_park_qid(const char *props, size_t len)
{
    size_t vl = 0;
    return apg_props_find(props, len, "TIMER_DEL_UNIQKEY", &vl) ? APG_TIMER_CANCEL_QID : 0;
}

void apg_timer_arrive(struct apg_timer *tm)
{
    if (!tm)
        return;
    apg_worker_kick(&tm->tm_worker, 1);
}

int64_t apg_timer_delivered(const struct apg_timer *tm)
{
    return tm ? atomic_load(&tm->tm_delivered) : 0;
}

int64_t apg_timer_cancelled(const struct apg_timer *tm)
{
    return tm ? atomic_load(&tm->tm_cancelled) : 0;
}

/* ---- bucket files ---------------------------------------------------------- */

static int64_t bucket_of(int64_t due_ms)
{
    return due_ms / BUCKET_MS;
}

static void bucket_path(const char *dir, int64_t bucket, char *out, size_t n)
{
    snprintf(out, n, "%s/%lld", dir, (long long)bucket);
}

static void cancel_path(const char *dir, int64_t bucket, char *out, size_t n)
{
    snprintf(out, n, "%s/%lld.del", dir, (long long)bucket);
}

static apg_err_t io_err(void)
{
    return errno == ENOSPC ? APG_EDISKFULL : APG_EIO;
}

/* Records bucket in the list of files to sync before the next persist. */
static void dirty_add(struct sync_job *j, int64_t bucket)
{
    if (j->j_dirty_all)
        return;
    for (int i = j->j_ndirty - 1; i >= 0; i--)
        if (j->j_dirty[i] == bucket)
            return;
    if (j->j_ndirty < DIRTY_MAX)
        j->j_dirty[j->j_ndirty++] = bucket;
    else
        j->j_dirty_all = true;
}

/* Appends the k entries (all of one bucket) to that bucket's file. */
static apg_err_t bucket_append(struct apg_timer *tm, int64_t bucket, const struct entry *e,
                               size_t k)
{
    char p[4096];
    bucket_path(tm->tm_dir, bucket, p, sizeof(p));
    int fd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return io_err();
    size_t len = k * sizeof(*e);
    ssize_t w = write(fd, e, len);
    apg_err_t e2 = w == (ssize_t)len ? APG_OK : w < 0 ? io_err() : APG_EIO;
    close(fd);
    dirty_add(&tm->tm_dirty, bucket);
    return e2;
}

static int entry_cmp(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    if (x->e_due != y->e_due)
        return x->e_due < y->e_due ? -1 : 1;
    return x->e_phys < y->e_phys ? -1 : x->e_phys > y->e_phys;
}

/* Appends a[0..n) to their bucket files: sorted by deliver time, one write
 * per bucket. */
static apg_err_t entries_append(struct apg_timer *tm, struct entry *a, size_t n)
{
    if (n == 0)
        return APG_OK;
    qsort(a, n, sizeof(*a), entry_cmp);
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        int64_t bucket = bucket_of(a[i].e_due);
        while (j < n && bucket_of(a[j].e_due) == bucket)
            j++;
        apg_err_t e = bucket_append(tm, bucket, a + i, j - i);
        if (e)
            return e;
        i = j;
    }
    return APG_OK;
}

static apg_err_t cur_reserve(struct apg_timer *tm, size_t n)
{
    void *p = tm->tm_cur;
    if (apg_grow(&p, &tm->tm_cap, n, sizeof(*tm->tm_cur), 1024))
        return APG_ENOMEM;
    tm->tm_cur = p;
    return APG_OK;
}

/* Sorts tm_cur[tm_pos..tm_n) and drops repeated entries (an enqueue
 * repeated after a crash writes the same entry twice). */
static void cur_sort(struct apg_timer *tm)
{
    size_t n = tm->tm_n - tm->tm_pos, k = 0;
    if (n < 2)
        return; /* tm_cur may be NULL */
    struct entry *a = tm->tm_cur + tm->tm_pos;
    qsort(a, n, sizeof(*a), entry_cmp);
    for (size_t i = 0; i < n; i++)
        if (k == 0 || a[i].e_phys != a[k - 1].e_phys)
            a[k++] = a[i];
    tm->tm_n = tm->tm_pos + k;
}

/* ---- cancels --------------------------------------------------------------- */

static void be64_put(uint8_t *p, int64_t v)
{
    for (int i = 7; i >= 0; i--, v = (int64_t)((uint64_t)v >> 8))
        p[i] = (uint8_t)v;
}

/* Appends the cancel of key k (at most 65535 bytes) in slot to bucket's
 * cancel file in dir, durably (cancels are rare). */
static apg_err_t cancel_append(const char *dir, int64_t bucket, int64_t slot, const char *k,
                               size_t kl)
{
    char p[4096];
    cancel_path(dir, bucket, p, sizeof(p));
    uint8_t h[10] = {(uint8_t)(kl >> 8), (uint8_t)kl};
    be64_put(h + 2, slot);
    struct iovec iov[2] = {{h, sizeof(h)}, {(void *)k, kl}};
    int fd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return io_err();
    ssize_t w = writev(fd, iov, 2);
    apg_err_t e = w == (ssize_t)(sizeof(h) + kl) ? APG_OK : w < 0 ? io_err() : APG_EIO;
    if (!e && fdatasync(fd) != 0)
        e = APG_EIO;
    close(fd);
    return e;
}

static int key_cmp(const void *a, const void *b)
{
    const struct ckey *x = a, *y = b;
    if (x->k_len != y->k_len)
        return x->k_len < y->k_len ? -1 : 1;
    return memcmp(x->k_s, y->k_s, x->k_len);
}

/* Adds k (slot + key) to the loaded bucket's cancels, keeping tm_keys
 * sorted. */
static apg_err_t keys_add(struct apg_timer *tm, const char *k, size_t kl)
{
    struct ckey q = {(char *)k, kl};
    if (tm->tm_nkeys && bsearch(&q, tm->tm_keys, tm->tm_nkeys, sizeof(q), key_cmp))
        return APG_OK;
    void *p = tm->tm_keys;
    if (apg_grow(&p, &tm->tm_capkeys, tm->tm_nkeys + 1, sizeof(*tm->tm_keys), 16))
        return APG_ENOMEM;
    tm->tm_keys = p;
    if (!(q.k_s = apg_malloc(kl ? kl : 1)))
        return APG_ENOMEM;
    memcpy(q.k_s, k, kl);
    size_t i = tm->tm_nkeys;
    while (i > 0 && key_cmp(&tm->tm_keys[i - 1], &q) > 0)
        i--;
    memmove(tm->tm_keys + i + 1, tm->tm_keys + i, (tm->tm_nkeys - i) * sizeof(q));
    tm->tm_keys[i] = q;
    tm->tm_nkeys++;
    return APG_OK;
}

static void keys_clear(struct apg_timer *tm)
{
    for (size_t i = 0; i < tm->tm_nkeys; i++)
        apg_free(tm->tm_keys[i].k_s);
    tm->tm_nkeys = 0;
}

/* Reads the cursor bucket's cancel file into tm_keys. */
static apg_err_t keys_load(struct apg_timer *tm)
{
    keys_clear(tm);
    char p[4096];
    cancel_path(tm->tm_dir, tm->tm_bucket, p, sizeof(p));
    FILE *f = fopen(p, "rbe");
    if (!f)
        return errno == ENOENT ? APG_OK : APG_EIO;
    apg_err_t e = APG_OK;
    uint8_t h[2];
    char *k = apg_malloc(8 + 65535);
    if (!k)
        e = APG_ENOMEM;
    while (!e && fread(h, 1, 2, f) == 2) {
        size_t kl = 8 + ((size_t)h[0] << 8 | h[1]);
        if (fread(k, 1, kl, f) != kl)
            break; /* cut short by a crash mid-append: that cancel is read again */
        e = keys_add(tm, k, kl);
    }
    apg_free(k);
    fclose(f);
    return e;
}

/* Is rec (a parked timer record due at due) cancelled by the loaded
 * bucket? */
static bool cancelled(const struct apg_timer *tm, const struct apg_msgrec *rec, int64_t due)
{
    if (!tm->tm_nkeys)
        return false;
    size_t tl = 0, ul = 0;
    const char *t = apg_props_find(rec->mr_props, rec->mr_props_len, "REAL_TOPIC", &tl);
    const char *u = apg_props_find(rec->mr_props, rec->mr_props_len, "UNIQ_KEY", &ul);
    char buf[512];
    if (!t || !u || 8 + tl + 1 + ul > sizeof(buf))
        return false; /* topics are at most 127 bytes, unique keys 32 */
    be64_put((uint8_t *)buf, due / tm->tm_prec);
    memcpy(buf + 8, t, tl);
    buf[8 + tl] = '+';
    memcpy(buf + 8 + tl + 1, u, ul);
    struct ckey q = {buf, 8 + tl + 1 + ul};
    return bsearch(&q, tm->tm_keys, tm->tm_nkeys, sizeof(q), key_cmp) != NULL;
}

/* Reads a whole file of 16-byte entries into tm_cur[tm_n..): the bucket
 * files of this layout and the slot files of the per-second one. */
static apg_err_t entries_read(struct apg_timer *tm, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? APG_OK : APG_EIO;
    off_t size = lseek(fd, 0, SEEK_END);
    size_t n = size > 0 ? (size_t)size / sizeof(struct entry) : 0;
    if (n == 0) {
        close(fd);
        return APG_OK;
    }
    apg_err_t e = cur_reserve(tm, tm->tm_n + n);
    char *dst = (char *)(tm->tm_cur + tm->tm_n);
    size_t got = 0;
    while (!e && got < n * sizeof(struct entry)) {
        ssize_t r = pread(fd, dst + got, n * sizeof(struct entry) - got, (off_t)got);
        if (r <= 0)
            e = APG_EIO;
        else
            got += (size_t)r;
    }
    close(fd);
    if (!e)
        tm->tm_n += n;
    return e;
}

/* Reads the cursor bucket's file into tm_cur. */
static apg_err_t bucket_load(struct apg_timer *tm)
{
    char p[4096];
    bucket_path(tm->tm_dir, tm->tm_bucket, p, sizeof(p));
    tm->tm_n = tm->tm_pos = 0;
    apg_err_t e = keys_load(tm);
    if (!e)
        e = entries_read(tm, p);
    if (e)
        return e;
    cur_sort(tm);
    /* The first tm_skip went out before the last persisted stop: entries
     * added to a bucket while it is delivered fall due after every entry
     * already copied, so the copied ones are a prefix of the sorted bucket. */
    tm->tm_pos = (size_t)tm->tm_skip < tm->tm_n ? (size_t)tm->tm_skip : tm->tm_n;
    tm->tm_pref = tm->tm_pos;
    tm->tm_skip = 0;
    tm->tm_loaded = true;
    return APG_OK;
}

/* ---- progress -------------------------------------------------------------- */

/* The smallest number naming a file in dir, dflt when there is none below
 * it. */
static int64_t first_file(const char *dir, int64_t dflt)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        char *end;
        long long v = strtoll(de->d_name, &end, 10);
        if (end != de->d_name && *end == '\0' && v >= 0 && v < dflt)
            dflt = v;
    }
    if (d)
        closedir(d);
    return dflt;
}

static apg_err_t progress_file_write(const struct apg_timer *tm, int64_t enq, int64_t bucket,
                                     int64_t pos, int64_t cenq, char *err, size_t errlen)
{
    char buf[200];
    int len = snprintf(buf, sizeof(buf),
                       "{\"enqueueOffset\":%lld,\"bucket\":%lld,\"bucketDone\":%lld,"
                       "\"cancelOffset\":%lld}",
                       (long long)enq, (long long)bucket, (long long)pos, (long long)cenq);
    return apg_file_write_atomic(tm->tm_path, buf, (size_t)len, err, errlen);
}

/* syncfs of the file system holding dir, then fsync of dir (new names). */
static bool dir_sync_all(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    bool ok = fd >= 0 && syncfs(fd) == 0 && fsync(fd) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* Makes the bucket files of job j durable: fdatasync of each (a file that
 * is gone was delivered and unlinked), or one syncfs when more than
 * DIRTY_MAX were written (timers spread over many minutes) or the last sync
 * failed. Sync thread. */
static bool files_sync(struct apg_timer *tm, const struct sync_job *j)
{
    bool ok = true;
    if (j->j_dirty_all || tm->tm_sync_failed) {
        ok = dir_sync_all(tm->tm_dir);
    } else {
        for (int i = 0; i < j->j_ndirty && ok; i++) {
            char p[4096];
            bucket_path(tm->tm_dir, j->j_dirty[i], p, sizeof(p));
            int fd = open(p, O_WRONLY | O_CLOEXEC);
            if (fd < 0)
                ok = errno == ENOENT;
            else {
                ok = fdatasync(fd) == 0;
                close(fd);
            }
        }
        if (ok && j->j_ndirty) {
            int fd = open(tm->tm_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            ok = fd >= 0 && fsync(fd) == 0; /* the new files' names */
            if (fd >= 0)
                close(fd);
        }
    }
    tm->tm_sync_failed = !ok;
    return ok;
}

/* Syncs j's files, writes the progress file, unlinks the delivered
 * buckets' files. Sync thread (or the stopping thread once it is gone). */
static void job_run(struct apg_timer *tm, const struct sync_job *j)
{
    if (!files_sync(tm, j)) {
        apg_log_error(SUB, "syncing the bucket files in %s failed: %s; progress not persisted",
                      tm->tm_dir, strerror(errno));
        return;
    }
    char err[512] = "";
    if (progress_file_write(tm, j->j_enq, j->j_bucket, j->j_pos, j->j_cenq, err, sizeof(err))) {
        apg_log_error(SUB, "persisting %s failed: %s", tm->tm_path, err);
        return;
    }
    for (; tm->tm_unlinked < j->j_bucket; tm->tm_unlinked++) {
        char p[4096];
        bucket_path(tm->tm_dir, tm->tm_unlinked, p, sizeof(p));
        unlink(p);
        cancel_path(tm->tm_dir, tm->tm_unlinked, p, sizeof(p));
        unlink(p);
    }
}

static void *sync_main(void *arg)
{
    struct apg_timer *tm = arg;
    pthread_mutex_lock(&tm->tm_sync_lock);
    for (;;) {
        while (!tm->tm_job_set && !tm->tm_sync_stop)
            pthread_cond_wait(&tm->tm_sync_cond, &tm->tm_sync_lock);
        if (!tm->tm_job_set)
            break;
        tm->tm_run = tm->tm_job;
        tm->tm_job_set = false;
        pthread_mutex_unlock(&tm->tm_sync_lock);
        job_run(tm, &tm->tm_run);
        pthread_mutex_lock(&tm->tm_sync_lock);
    }
    pthread_mutex_unlock(&tm->tm_sync_lock);
    return NULL;
}

/* Hands (enq, bucket, pos) and the bucket files written since the last
 * hand-off to the sync thread; merges into a job it has not taken yet.
 * Timer thread. */
static void job_post(struct apg_timer *tm, int64_t enq, int64_t bucket, int64_t pos)
{
    /* Cancels are durable in their files before tm_cenq moves: no copy to
     * wait for, so the current offset is always written. */
    int64_t cenq = tm->tm_cenq;
    if (enq == tm->tm_p_enq && bucket == tm->tm_p_bucket && pos == tm->tm_p_pos &&
        cenq == tm->tm_p_cenq && !tm->tm_dirty.j_ndirty && !tm->tm_dirty.j_dirty_all)
        return;
    pthread_mutex_lock(&tm->tm_sync_lock);
    struct sync_job *j = &tm->tm_job;
    if (!tm->tm_job_set) {
        j->j_ndirty = 0;
        j->j_dirty_all = false;
    }
    if (tm->tm_dirty.j_dirty_all)
        j->j_dirty_all = true;
    for (int i = 0; i < tm->tm_dirty.j_ndirty; i++)
        dirty_add(j, tm->tm_dirty.j_dirty[i]);
    j->j_enq = enq;
    j->j_bucket = bucket;
    j->j_pos = pos;
    j->j_cenq = cenq;
    tm->tm_job_set = true;
    pthread_cond_signal(&tm->tm_sync_cond);
    pthread_mutex_unlock(&tm->tm_sync_lock);
    tm->tm_dirty.j_ndirty = 0;
    tm->tm_dirty.j_dirty_all = false;
    tm->tm_p_enq = enq;
    tm->tm_p_bucket = bucket;
    tm->tm_p_pos = pos;
    tm->tm_p_cenq = cenq;
}

static int64_t cur_done(const struct apg_timer *tm)
{
    return tm->tm_loaded ? (int64_t)tm->tm_pos : 0;
}

/* Every timerFlushIntervalMs: persists the progress if the store has
 * flushed every copy it covers, else the snapshot taken one interval ago
 * once its copies are flushed (copies made meanwhile must not hold the file
 * back for ever), and takes a new snapshot. */
static void persist(struct apg_timer *tm, int64_t now)
{
    if (now < tm->tm_next_persist)
        return;
    tm->tm_next_persist = now + tm->tm_flush_ms;
    struct apg_store_stats ss;
    apg_store_stats(tm->tm_st, &ss);
    if (ss.ss_flushed_phys_offset >= tm->tm_copied_end) {
        job_post(tm, tm->tm_enq, tm->tm_bucket, cur_done(tm));
        tm->tm_snap_set = false;
        return;
    }
    if (tm->tm_snap_set && ss.ss_flushed_phys_offset >= tm->tm_snap[3])
        job_post(tm, tm->tm_snap[0], tm->tm_snap[1], tm->tm_snap[2]);
    tm->tm_snap[0] = tm->tm_enq;
    tm->tm_snap[1] = tm->tm_bucket;
    tm->tm_snap[2] = cur_done(tm);
    tm->tm_snap[3] = tm->tm_copied_end;
    tm->tm_snap_set = true;
}

/* ---- upgrade from the per-second layout ------------------------------------ */

/* Moves timer/slots/<slot> and <slot>.del (one file per timerPrecisionMs
 * slot; cancel records without the slot) into bucket files: the slots below
 * old_slot were delivered and are dropped, and so are the first old_done
 * entries of old_slot in sorted order; then the progress file is written in
 * this layout and the old files are removed. A crash before the progress
 * file is written repeats the move (entries appended twice are dropped by
 * the de-duplication; cancels twice change nothing); after it, the old
 * files left over are only removed (move false). Before the threads
 * start. */
static apg_err_t migrate_slots(struct apg_timer *tm, bool move, int64_t old_slot, int64_t old_done,
                               char *err, size_t errlen)
{
    DIR *d = opendir(tm->tm_old_dir);
    if (!d)
        return errno == ENOENT ? APG_OK
                               : apg_errf(APG_EIO, err, errlen, "cannot read %s: %s",
                                          tm->tm_old_dir, strerror(errno));
    apg_err_t e = APG_OK;
    int64_t moved = 0, files = 0;
    struct apg_buf keys = {0};
    struct dirent *de;
    while (move && !e && (de = readdir(d))) {
        char *end, p[4096];
        long long v = strtoll(de->d_name, &end, 10);
        bool del = strcmp(end, ".del") == 0;
        if (end == de->d_name || v < old_slot || (*end && !del))
            continue;
        snprintf(p, sizeof(p), "%s/%s", tm->tm_old_dir, de->d_name);
        files++;
        if (!del) {
            tm->tm_n = tm->tm_pos = 0;
            e = entries_read(tm, p);
            if (!e && v == old_slot && old_done > 0) {
                cur_sort(tm);
                tm->tm_pos = (size_t)old_done < tm->tm_n ? (size_t)old_done : tm->tm_n;
            }
            if (!e && tm->tm_n > tm->tm_pos)
                e = entries_append(tm, tm->tm_cur + tm->tm_pos, tm->tm_n - tm->tm_pos);
            moved += (int64_t)(tm->tm_n - tm->tm_pos);
            tm->tm_n = tm->tm_pos = 0;
            continue;
        }
        char ferr[512];
        e = apg_file_read(p, &keys, ferr, sizeof(ferr));
        const uint8_t *k = (const uint8_t *)keys.b_data;
        for (size_t i = 0; !e && i + 2 <= keys.b_len;) {
            size_t kl = (size_t)k[i] << 8 | k[i + 1];
            if (i + 2 + kl > keys.b_len)
                break; /* cut short by a crash mid-append */
            e = cancel_append(tm->tm_dir, bucket_of(v * tm->tm_prec), v, (const char *)k + i + 2,
                              kl);
            i += 2 + kl;
        }
    }
    apg_buf_free(&keys);
    if (e) {
        closedir(d);
        return apg_errf(e, err, errlen, "moving the timer slot files of %s into %s failed: %s",
                        tm->tm_old_dir, tm->tm_dir, apg_strerror(e));
    }
    if (move && !dir_sync_all(tm->tm_dir)) {
        closedir(d);
        return apg_errf(APG_EIO, err, errlen, "syncing %s failed: %s", tm->tm_dir, strerror(errno));
    }
    tm->tm_dirty.j_ndirty = 0;
    tm->tm_dirty.j_dirty_all = false;
    if (move)
        e = progress_file_write(tm, tm->tm_enq, tm->tm_bucket, 0, tm->tm_cenq, err, errlen);
    if (e) {
        closedir(d);
        return e;
    }
    rewinddir(d);
    while ((de = readdir(d))) {
        char p[4096];
        if (de->d_name[0] == '.')
            continue;
        snprintf(p, sizeof(p), "%s/%s", tm->tm_old_dir, de->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(tm->tm_old_dir);
    if (move)
        apg_log_info(SUB, "moved %lld pending timers from %lld per-second files in %s into %s",
                     (long long)moved, (long long)files, tm->tm_old_dir, tm->tm_dir);
    return APG_OK;
}

/* Reads timerProgress.json (either layout) and moves a per-second layout
 * into buckets. */
static apg_err_t progress_load(struct apg_timer *tm, char *err, size_t errlen)
{
    json_t *root = NULL;
    char jerr[512];
    apg_err_t e = apg_json_read_file(tm->tm_path, &root, jerr, sizeof(jerr));
    int64_t old_slot = -1, old_done = 0;
    bool rescan = false;
    tm->tm_enq = 0;
    tm->tm_bucket = bucket_of(apg_wall_ms());
    if (e == APG_ENOTFOUND) {
        old_slot = tm->tm_bucket * BUCKET_MS / tm->tm_prec;
    } else if (e) {
        apg_log_warn(SUB, "%s: %s; timers are re-read from the start of the timer queue",
                     tm->tm_path, jerr);
        old_slot = 0;
        rescan = true;
    } else {
        int64_t enq = apg_json_i64(json_object_get(root, "enqueueOffset"), -1);
        int64_t bucket = apg_json_i64(json_object_get(root, "bucket"), -1);
        int64_t done = apg_json_i64(json_object_get(root, "bucketDone"), 0);
        int64_t slot = apg_json_i64(json_object_get(root, "slot"), -1);
        int64_t sdone = apg_json_i64(json_object_get(root, "slotDone"), 0);
        int64_t cenq = apg_json_i64(json_object_get(root, "cancelOffset"), 0);
        json_decref(root);
        if (enq >= 0)
            tm->tm_enq = enq;
        if (cenq > 0)
            tm->tm_cenq = cenq;
        if (bucket >= 0) {
            tm->tm_bucket = bucket;
            tm->tm_skip = done > 0 ? done : 0;
        } else if (slot >= 0) {
            old_slot = slot;
            old_done = sdone > 0 ? sdone : 0;
            tm->tm_bucket = bucket_of(slot * tm->tm_prec);
        } else {
            old_slot = 0;
            rescan = true;
        }
    }
    if (old_slot >= 0) {
        if (rescan)
            tm->tm_bucket = bucket_of(
                first_file(tm->tm_old_dir, tm->tm_bucket * BUCKET_MS / tm->tm_prec) * tm->tm_prec);
        e = migrate_slots(tm, true, old_slot, old_done, err, errlen);
        if (e)
            return e;
    } else {
        migrate_slots(tm, false, 0, 0, err, errlen); /* only removes leftovers */
    }
    if (rescan)
        tm->tm_bucket = first_file(tm->tm_dir, tm->tm_bucket);
    tm->tm_p_enq = tm->tm_enq;
    tm->tm_p_cenq = tm->tm_cenq;
    tm->tm_p_bucket = tm->tm_bucket;
    tm->tm_p_pos = tm->tm_skip;
    tm->tm_unlinked = tm->tm_bucket;
    return APG_OK;
}

/* ---- copies ---------------------------------------------------------------- */

/* Stores the k copies in tm_msgs. */
static bool put_copies(struct apg_timer *tm, int k, int64_t now)
{
    if (k == 0)
        return true;
    char err[512] = "";
    apg_err_t e = apg_broker_put_internal(tm->tm_b, tm->tm_msgs, k, tm->tm_res, err, sizeof(err));
    if (e) {
        int64_t quiet;
        if (apg_log_limit_hit(&tm->tm_fail_log, now, 60000, &quiet))
            apg_log_error(SUB,
                          "storing %d due timer message(s) in their topics failed: %s; retrying "
                          "every %d ms (%lld more failures since the last line)",
                          k, err[0] ? err : apg_strerror(e), RETRY_MS, (long long)quiet);
        return false;
    }
    const struct apg_put_result *r = &tm->tm_res[k - 1];
    tm->tm_copied_end = r->pr_phys_offset + r->pr_msg_size;
    atomic_fetch_add(&tm->tm_delivered, k);
    return true;
}

static bool add_copy(const struct apg_msgrec *rec, struct apg_msg_in *m)
{
    if (apg_broker_put_real_copy(rec, m))
        return true;
    apg_log_warn(SUB,
                 "the timer message at commit-log offset %lld has no valid "
                 "REAL_TOPIC/REAL_QID; skipped",
                 (long long)rec->mr_phys_offset);
    return false;
}

/* Reads the k (<= BATCH) parked records of entries e and stores their
 * copies. False when the store refused them (retry). */
static bool copy_records(struct apg_timer *tm, const struct entry *e, int k, int64_t now)
{
    size_t offs[BATCH];
    int64_t due[BATCH];
    int m = 0;
    apg_buf_reset(&tm->tm_one);
    for (int i = 0; i < k; i++) {
        offs[m] = tm->tm_one.b_len;
        due[m] = e[i].e_due;
        if (apg_store_read_at(tm->tm_st, e[i].e_phys, &tm->tm_one) == APG_OK)
            m++;
        else
            apg_log_warn(SUB,
                         "the timer message at commit-log offset %lld is gone (retention?); "
                         "skipped",
                         (long long)e[i].e_phys);
    }
    int c = 0;
    for (int i = 0; i < m; i++) {
        struct apg_msgrec rec;
        size_t len = (i + 1 < m ? offs[i + 1] : tm->tm_one.b_len) - offs[i];
        if (apg_msgrec_decode((const uint8_t *)tm->tm_one.b_data + offs[i], len, false, &rec,
                              NULL) != APG_MSGREC_OK)
            continue;
        if (cancelled(tm, &rec, due[i]))
            atomic_fetch_add(&tm->tm_cancelled, 1);
        else if (add_copy(&rec, &tm->tm_msgs[c]))
            c++;
    }
    return put_copies(tm, c, now);
}

/* ---- enqueue --------------------------------------------------------------- */

enum { ENQ_DONE, ENQ_MORE, ENQ_RETRY };

/* Moves the timer queue's new records into bucket files (or copies them
 * when due), reading only their consume-queue entries: the store keeps each
 * record's TIMER_OUT_MS there. The pass's entries are appended at its end,
 * one write per bucket, before the enqueue offset moves past them. ENQ_MORE
 * when it stopped after PASS_MAX records (a backlog: the next pass follows
 * at once), ENQ_RETRY when it must be retried later. */
static int enqueue(struct apg_timer *tm, int64_t now)
{
    int done = 0, ret = ENQ_MORE;
    int64_t enq = tm->tm_enq;
    tm->tm_npark = 0;
    while (done < PASS_MAX) {
        struct apg_cq_ref refs[BATCH];
        int64_t next;
        int n = apg_store_cq_read(tm->tm_st, APG_TIMER_TOPIC, APG_TIMER_TOPIC_LEN, 0, enq, BATCH,
                                  refs, &next);
        if (next > enq && (n == 0 || refs[0].cr_queue_offset != enq))
            apg_log_warn(SUB,
                         "timer queue offset %lld is below the queue's first; continuing at %lld",
                         (long long)enq, (long long)(n ? refs[0].cr_queue_offset : next));
        if (n == 0) {
            enq = next;
            ret = ENQ_DONE;
            break;
        }
        struct entry due_now[BATCH];
        size_t mark = tm->tm_npark;
        int k = 0;
        bool into_cur = false;
        for (int i = 0; i < n; i++) {
            struct entry en = {.e_due = refs[i].cr_tags_code, .e_phys = refs[i].cr_phys_offset};
            int64_t bucket = bucket_of(en.e_due);
            /* A due record is copied now unless its bucket is still ahead of
             * the cursor (a backlog re-read after a crash: its bucket file
             * may hold it already, and the de-duplication then copies it
             * once). Not into the cursor bucket once it is loaded or partly
             * delivered: an entry added there must fall due after every
             * entry already copied (bucketDone counts a prefix). */
            bool ahead = bucket > tm->tm_bucket ||
                         (bucket == tm->tm_bucket && !tm->tm_loaded && tm->tm_skip == 0);
            if (en.e_due <= now && !ahead) {
                due_now[k++] = en;
                continue;
            }
            tm->tm_park[tm->tm_npark++] = en;
            /* The bucket being delivered also takes it in memory. */
            if (tm->tm_loaded && bucket <= tm->tm_bucket && !cur_reserve(tm, tm->tm_n + 1)) {
                tm->tm_cur[tm->tm_n++] = en;
                into_cur = true;
            }
        }
        if (into_cur)
            cur_sort(tm);
        if (!copy_records(tm, due_now, k, now)) {
            tm->tm_npark = mark;
            ret = ENQ_RETRY;
            break;
        }
        enq = next;
        done += n;
    }
    apg_err_t e = entries_append(tm, tm->tm_park, tm->tm_npark);
    if (e) {
        apg_log_error(SUB, "writing timer bucket files in %s failed: %s", tm->tm_dir,
                      apg_strerror(e));
        return ENQ_RETRY;
    }
    tm->tm_enq = enq;
    return ret;
}

/* Moves the cancel queue's new records into the cancel files of their
 * buckets (and the loaded bucket's tm_keys). ENQ_DONE or ENQ_RETRY. */
static int enqueue_cancels(struct apg_timer *tm)
{
    for (;;) {
        struct apg_cq_ref refs[BATCH];
        int64_t next;
        int n = apg_store_cq_read(tm->tm_st, APG_TIMER_TOPIC, APG_TIMER_TOPIC_LEN,
                                  APG_TIMER_CANCEL_QID, tm->tm_cenq, BATCH, refs, &next);
        if (n == 0) {
            tm->tm_cenq = next;
            return ENQ_DONE;
        }
        for (int i = 0; i < n; i++) {
            int64_t due = refs[i].cr_tags_code, bucket = bucket_of(due);
            if (bucket < tm->tm_bucket)
                continue; /* that bucket went out: nothing left to cancel */
            apg_buf_reset(&tm->tm_one);
            struct apg_msgrec rec;
            size_t kl = 0;
            const char *k = NULL;
            if (apg_store_read_at(tm->tm_st, refs[i].cr_phys_offset, &tm->tm_one) == APG_OK &&
                apg_msgrec_decode((const uint8_t *)tm->tm_one.b_data, tm->tm_one.b_len, false, &rec,
                                  NULL) == APG_MSGREC_OK)
                k = apg_props_find(rec.mr_props, rec.mr_props_len, "TIMER_DEL_UNIQKEY", &kl);
            if (!k || kl == 0 || kl > 65535)
                continue;
            apg_err_t e = cancel_append(tm->tm_dir, bucket, due / tm->tm_prec, k, kl);
            if (!e && tm->tm_loaded && bucket == tm->tm_bucket) {
                char *sk = apg_malloc(8 + kl);
                if (!sk)
                    e = APG_ENOMEM;
                else {
                    be64_put((uint8_t *)sk, due / tm->tm_prec);
                    memcpy(sk + 8, k, kl);
                    e = keys_add(tm, sk, 8 + kl);
                    apg_free(sk);
                }
            }
            if (e) {
                apg_log_error(SUB, "writing a timer cancel to %s failed: %s", tm->tm_dir,
                              apg_strerror(e));
                return ENQ_RETRY;
            }
        }
        tm->tm_cenq = next;
    }
}

/* ---- deliver --------------------------------------------------------------- */

/* Copies the due entries of the loaded bucket. False on a failure (retry). */
static bool deliver_due(struct apg_timer *tm, int64_t now)
{
    while (tm->tm_pos < tm->tm_n && tm->tm_cur[tm->tm_pos].e_due <= now) {
        int k = 0;
        while (tm->tm_pos + k < tm->tm_n && k < BATCH && tm->tm_cur[tm->tm_pos + k].e_due <= now)
            k++;
        if (!copy_records(tm, tm->tm_cur + tm->tm_pos, k, now))
            return false;
        tm->tm_pos += k;
    }
    return true;
}

/* Starts reading the parked records of the entries due within PREFETCH_MS
 * from disk, so that copying them at their time does not wait for a page
 * fault (a parked record is read once, hours after it was written, in
 * deliver-time order, not log order: its page has often left the cache). */
static void prefetch(struct apg_timer *tm, int64_t now)
{
    if (tm->tm_pref < tm->tm_pos)
        tm->tm_pref = tm->tm_pos;
    size_t end = tm->tm_pref;
    while (end < tm->tm_n && end < tm->tm_pos + PREFETCH_MAX &&
           tm->tm_cur[end].e_due <= now + PREFETCH_MS)
        end++;
    while (tm->tm_pref < end) {
        int64_t phys[BATCH];
        int k = 0;
        while (tm->tm_pref < end && k < BATCH)
            phys[k++] = tm->tm_cur[tm->tm_pref++].e_phys;
        apg_store_prefetch_records(tm->tm_st, phys, k);
    }
}

/* Delivers every bucket the clock has reached; returns the time of the
 * next thing to do. */
static int64_t deliver(struct apg_timer *tm, int64_t now)
{
    for (;;) {
        if (!tm->tm_loaded) {
            if (tm->tm_bucket * BUCKET_MS > now)
                return tm->tm_bucket * BUCKET_MS;
            apg_err_t e = bucket_load(tm);
            if (e) {
                apg_log_error(SUB, "reading timer bucket %lld in %s failed: %s",
                              (long long)tm->tm_bucket, tm->tm_dir, apg_strerror(e));
                return now + RETRY_MS;
            }
        }
        if (!deliver_due(tm, now))
            return now + RETRY_MS;
        if (tm->tm_pos < tm->tm_n) {
            prefetch(tm, now);
            int64_t next = tm->tm_cur[tm->tm_pos].e_due;
            if (tm->tm_pref < tm->tm_n) { /* wake up to read the next ones ahead */
                int64_t t = tm->tm_cur[tm->tm_pref].e_due - PREFETCH_MS;
                if (t > now && t < next)
                    next = t;
            }
            return next;
        }
        int64_t end = (tm->tm_bucket + 1) * BUCKET_MS;
        if (end > now)
            return end;
        tm->tm_bucket++;
        tm->tm_loaded = false;
        keys_clear(tm);
        tm->tm_n = tm->tm_pos = tm->tm_pref = 0;
        if (tm->tm_cap > 65536) { /* a crowded minute: give the memory back */
            apg_free(tm->tm_cur);
            tm->tm_cur = NULL;
            tm->tm_cap = 0;
        }
    }
}

/* Timer thread: park what arrived, deliver what is due, persist. */
static int64_t timer_step(void *arg, unsigned kicks)
{
    (void)kicks;
    struct apg_timer *tm = arg;
    int64_t now = apg_wall_ms();
    int enq = enqueue(tm, now);
    if (enqueue_cancels(tm) == ENQ_RETRY && enq == ENQ_DONE)
        enq = ENQ_RETRY;
    now = apg_wall_ms();
    /* With a backlog to park (a restart), park it before the cursor moves
     * on, so a re-read record lands in its bucket file, not in a copy
     * made after its bucket went out; but never hold deliveries up for
     * more than CATCHUP_MS. */
    if (enq != ENQ_MORE)
        tm->tm_catchup_since = 0;
    else if (tm->tm_catchup_since == 0)
        tm->tm_catchup_since = now;
    int64_t next =
        enq == ENQ_MORE && now - tm->tm_catchup_since < CATCHUP_MS ? now : deliver(tm, now);
    persist(tm, now);
    now = apg_wall_ms();
    int64_t wait = next - now;
    if (enq == ENQ_RETRY && wait > RETRY_MS)
        wait = RETRY_MS;
    if (enq == ENQ_MORE)
        wait = 0;
    return wait > MAX_SLEEP_MS ? MAX_SLEEP_MS : wait;
}

/* ---- open / start / stop --------------------------------------------------- */

static void timer_free(struct apg_timer *tm)
{
    apg_buf_free(&tm->tm_one);
    apg_free(tm->tm_cur);
    apg_free(tm->tm_park);
    keys_clear(tm);
    apg_free(tm->tm_keys);
    apg_free(tm->tm_dir);
    apg_free(tm->tm_old_dir);
    apg_free(tm->tm_path);
    apg_free(tm);
}

apg_err_t apg_timer_open(struct apg_broker *b, struct apg_timer **out, char *err, size_t errlen)
{
    *out = NULL;
    struct apg_timer *tm = apg_calloc(1, sizeof(*tm));
    if (!tm)
        return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    tm->tm_b = b;
    tm->tm_st = b->br_store;
    tm->tm_prec = apg_cfg_int(b->br_cfg, APG_CFG_timerPrecisionMs);
    tm->tm_max_ms = apg_cfg_int(b->br_cfg, APG_CFG_timerMaxDelaySec) * 1000;
    tm->tm_flush_ms = apg_cfg_int(b->br_cfg, APG_CFG_timerFlushIntervalMs);
    tm->tm_dir = apg_path_join(b->br_root, "timer/buckets");
    tm->tm_old_dir = apg_path_join(b->br_root, "timer/slots");
    tm->tm_path = apg_path_join(b->br_root, "config/timerProgress.json");
    tm->tm_park = apg_malloc((PASS_MAX + BATCH) * sizeof(*tm->tm_park));
    apg_err_t e = tm->tm_dir && tm->tm_old_dir && tm->tm_path && tm->tm_park
                      ? apg_file_mkdir_p(tm->tm_dir, err, errlen)
                      : apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    if (!e)
        e = progress_load(tm, err, errlen);
    if (e) {
        timer_free(tm);
        return e;
    }
    atomic_init(&tm->tm_delivered, 0);
    atomic_init(&tm->tm_cancelled, 0);
    apg_worker_init(&tm->tm_worker, timer_step, tm);
    pthread_mutex_init(&tm->tm_sync_lock, NULL);
    pthread_cond_init(&tm->tm_sync_cond, NULL);
    *out = tm;
    return APG_OK;
}

apg_err_t apg_timer_start(struct apg_timer *tm, char *err, size_t errlen)
{
    if (pthread_create(&tm->tm_sync_thread, NULL, sync_main, tm) != 0)
        return apg_errf(APG_EIO, err, errlen, "cannot start the timer sync thread");
    tm->tm_sync_started = true;
    return apg_worker_start(&tm->tm_worker, "timer", err, errlen);
}

void apg_timer_stop(struct apg_timer *tm)
{
    if (!tm)
        return;
    if (apg_worker_stop(&tm->tm_worker)) {
        /* The store flushes every copy when it closes, right after this. */
        job_post(tm, tm->tm_enq, tm->tm_bucket, cur_done(tm));
    }
    if (tm->tm_sync_started) {
        pthread_mutex_lock(&tm->tm_sync_lock);
        tm->tm_sync_stop = true;
        pthread_cond_signal(&tm->tm_sync_cond);
        pthread_mutex_unlock(&tm->tm_sync_lock);
        pthread_join(tm->tm_sync_thread, NULL);
    }
    apg_worker_destroy(&tm->tm_worker);
    pthread_mutex_destroy(&tm->tm_sync_lock);
    pthread_cond_destroy(&tm->tm_sync_cond);
    timer_free(tm);
}

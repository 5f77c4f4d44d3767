/* Store internals: the state shared by the files of src/store/ and the
 * declarations they call each other through. Not part of the broker contract
 * (that is store.h); tests, fuzzers and the offline checker
 * (src/cli/check_store.c) may include it.
 *
 * Files (each opens with its own design note):
 *   store.c          open, close, the service thread, stats
 *   mapped_file.c    segment files: open/map, pwrite, zero-fill, msync, listing
 *   commitlog.c      commit-log segment array, rolling, the put path
 *   consume_queue.c  queue map, 20-byte entries, loading and truncating queues
 *   flush.c          flush threads, group commit, SYNC_FLUSH acknowledgements
 *   checkpoint.c     the checkpoint page
 *   recover.c        crash recovery: validate, truncate a torn tail, re-index
 *   retention.c      disk-space guard and deleteWhen / fileReservedTime cleanup
 *   warmup.c         zero-fill ahead of the writer, page-cache drop-behind
 *   read.c           get, offsets by time, read_at, delete_topic, foreach
 *   replica.c        raw commit-log reads (master) and appends (slave) for
 *                    replication (src/ha)
 *   dispatch.c       the dispatch hook: record -> consume queue, index (and later
 *                    timers, ...), called by the put path and by recovery
 *   index.c          index files: commit-log offsets by topic#key, QUERY_MESSAGE
 *   scan.c           pure record scanner used by recovery, check-store, the fuzzer
 *   fault.c          fault injection for tests (store_fault.h), inert unless armed
 *
 * Locks. Eight, taken only in this order (a lock may be taken while holding
 * the ones above it, never the reverse):
 *   st_complete_mtx  serialises apg_flush_complete_waiters between the SYNC
 *                    flushers (flush.c)
 *   st_append_mtx    appends (apg_store_put), segment rolling, delete_topic,
 *                    retention's segment removal, and the swap of the new
 *                    SYNC_FLUSH waiter list; adaptive mutex
 *   st_prealloc_mtx  the preallocated next segment (st_next, st_next_wanted,
 *                    st_cur_base); held by apg_cl_roll under st_append_mtx and
 *                    by the service thread while it creates or zero-fills st_next
 *   st_struct_lock   rwlock (writer preferred) over the *shape* of the store: the
 *                    commit-log segment array, the queue map, each queue's
 *                    segment array. Readers hold it shared while copying; adding
 *                    or removing a segment or a queue takes it exclusive briefly
 *                    (apg_cl_push_seg under st_prealloc_mtx, apg_cq_write under
 *                    st_append_mtx)
 * Leaf locks (nothing else is taken while one is held):
 *   st_zero_mtx      held by the service thread while it overwrites a chunk ahead
 *                    of the writer with zeros; the appender (under st_append_mtx)
 *                    passes through it in apg_warm_guard
 *   st_ack_mtx       the ack thread's queue; taken under st_complete_mtx
 *   st_flush_mtx     flush-thread sleep/wake-up and, under SYNC_FLUSH, the claimed
 *                    ranges (st_claimed, st_issue_seq, st_slot_*); never held
 *                    while syncing or completing waiters
 *   st_err_mtx       st_last_error
 * The appender caches its current segment and queue tails, which retention
 * never removes, so the common append takes only st_append_mtx.
 *
 * Commit-log bytes are written with pwrite() through the segment's file
 * descriptor (apg_seg_pwrite_all), never through the mapping; readers copy from
 * the MAP_SHARED mapping, which shows the same page cache. Consume-queue
 * entries are written through their mapping. */
#ifndef APG_STORE_STORE_INT_H
#define APG_STORE_STORE_INT_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <unistd.h>

#include "protocol/message.h"
#include "store/store.h"

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
    bool w_repl;    /* SYNC_MASTER: also waits for a slave */
    bool w_noslave; /* SYNC_MASTER: no slave was in sync at put time */
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
    pthread_mutex_t st_complete_mtx; /* serialises apg_flush_complete_waiters */
    /* ack thread: runs SYNC_FLUSH callbacks so the flush thread can start
     * the next sync at once (pipelining) */
    pthread_mutex_t st_ack_mtx;
    pthread_cond_t st_ack_cond;
    struct waiter *st_ack_head, **st_ack_tailp;
    bool st_ack_stop;
    pthread_t st_ack_thr;
    _Atomic bool st_fsync_failed;
    _Atomic bool st_fail_next_fsync;
    _Atomic bool st_fail_next_create;  /* fault.c: next queue directory/file creation: ENOSPC */
    _Atomic int st_fault_put_delay_ms; /* fault.c: every put sleeps this long in the append lock */
    _Atomic int st_fault_flush_delay_ms; /* fault.c: every commit-log flush sleeps this long */
    _Atomic uint64_t st_fsync_count;
    _Atomic uint64_t st_fsync_us;
    int64_t st_last_ckpt_ms;

    /* service */
    pthread_mutex_t st_prealloc_mtx;
    pthread_cond_t st_prealloc_cond;
    struct seg *st_next;       /* preallocated next segment */
    int64_t st_cur_base;       /* base of the current segment, for the preallocator */
    _Atomic int64_t st_warmed; /* service thread: zero-filled (written extents) up to here */
    /* Zero-fill guard (see apg_warm_zero_ahead): the appender announces the end of the
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
    int64_t st_dropped; /* service thread: page cache dropped below here (apg_warm_drop_behind) */
    bool st_next_wanted;
    pthread_t st_svc_thr;
    _Atomic int st_disk_ratio;
    _Atomic int st_test_disk_ratio;
    _Atomic bool st_disk_full;
    /* Free bytes of the commit log's file system at the last disk check
     * (INT64_MAX: unknown or faked) and the write position then; the put path
     * refuses a write that would eat into apg_store_reserve_bytes(). */
    _Atomic int64_t st_free_at_check;
    _Atomic int64_t st_wrote_at_check;
    _Atomic bool st_kept_noted; /* "unexpired data kept" logged for this high-usage spell */
    int st_last_clean_hour;

    _Atomic bool st_closing;
    _Atomic bool st_replica;       /* replica.c: a slave's store; apg_store_put refuses */
    _Atomic int st_repl_slaves;    /* SYNC_MASTER: slaves connected (HA master thread) */
    _Atomic int64_t st_repl_acked; /* SYNC_MASTER: the furthest slave's reported end */
    _Atomic uint64_t st_put_count, st_put_bytes;
    _Atomic int64_t st_put_since_ms; /* apg_mono_ms when the append lock was taken, 0 when free */

    struct apg_index *st_index; /* index.c; NULL when messageIndexEnable=false */

    apg_store_arrive_fn st_arrive;
    void *st_arrive_ud;

    pthread_mutex_t st_err_mtx;
    char st_last_error[256];
    bool st_threads_started;
};

/* Checkpoint contents (checkpoint.c). */
struct apg_ckpt {
    bool ck_present;    /* the file exists */
    bool ck_valid;      /* magic and CRC check out; the fields below are set */
    const char *ck_why; /* why not valid (static), or NULL */
    bool ck_clean;
    int64_t ck_cl_flushed;
    int64_t ck_cq_phys;
    int64_t ck_nqueues;
};

/* Transaction PREPARED and ROLLBACK records get no consume-queue entry. */
static inline bool apg_store_tx_no_cq(int32_t sysflag)
{
    int t = sysflag & APG_SYSFLAG_TX_MASK;
    return t == APG_SYSFLAG_TX_PREPARED || t == APG_SYSFLAG_TX_ROLLBACK;
}

/* One record as the dispatchers see it (dispatch.c). Borrowed for the call. */
struct apg_dispatch_rec {
    const char *dr_topic;
    size_t dr_topic_len;
    int32_t dr_queue_id;
    int32_t dr_sysflag;
    int64_t dr_phys;         /* commit-log offset of the record */
    int32_t dr_size;         /* TOTALSIZE */
    int64_t dr_queue_offset; /* QUEUEOFFSET */
    int64_t dr_tags_code;    /* tag hash (from the broker, or from TAGS on recovery) */
    int64_t dr_store_ts;
    const char *dr_props; /* property string, for dispatchers that index keys */
    size_t dr_props_len;
    struct cq *dr_cq; /* put path: the queue that numbered the record (NULL for
                         transaction PREPARED/ROLLBACK); recovery: NULL */
};

/* A consumer of records. Every callback but dp_records may be NULL.
 * dp_records: derive data from recs[0..n) (in commit-log order) and set *done
 *   to the number of records fully handled (n on success).
 *   Put path (recovering false): the records are written but not yet
 *   published; on failure at record *done, data derived from it and later
 *   ones must stay invisible (the next put reuses the position).
 *   Recovery (recovering true, n == 1): the record may have been dispatched
 *   before the crash; return APG_ECORRUPT when the data found disagrees with
 *   the log (recovery then resets and rebuilds everything), another error to
 *   fail the open.
 * dp_publish: put path only, after the commit-log write position covers
 *   recs[0..n): make their derived data visible to readers.
 * dp_flush: make derived data durable up to the last published record;
 *   0 or -1 (errno set). Flush thread, close.
 * dp_truncate: recovery, before re-dispatching from commit-log offset `from`:
 *   forget data derived from records at or after it.
 * dp_reset: recovery, before rebuilding from the whole log: forget all.
 * dp_close: teardown (no other thread runs). */
struct apg_dispatcher {
    const char *dp_name;
    apg_err_t (*dp_records)(struct apg_store *st, const struct apg_dispatch_rec *recs, int n,
                            bool recovering, int *done, char *err, size_t errlen);
    void (*dp_publish)(struct apg_store *st, const struct apg_dispatch_rec *recs, int n);
    int (*dp_flush)(struct apg_store *st);
    void (*dp_truncate)(struct apg_store *st, int64_t from);
    void (*dp_reset)(struct apg_store *st);
    void (*dp_close)(struct apg_store *st);
};

/* dispatch.c: run every dispatcher, in table order. apg_dispatch returns the
 * first error with *done = the records every dispatcher handled (under
 * recovery APG_ECORRUPT only after every dispatcher ran); apg_dispatch_flush
 * returns -1 if any flush failed. */
apg_err_t apg_dispatch(struct apg_store *st, const struct apg_dispatch_rec *recs, int n,
                       bool recovering, int *done, char *err, size_t errlen);
void apg_dispatch_publish(struct apg_store *st, const struct apg_dispatch_rec *recs, int n);
int apg_dispatch_flush(struct apg_store *st);
void apg_dispatch_truncate(struct apg_store *st, int64_t from);
void apg_dispatch_reset(struct apg_store *st);
void apg_dispatch_close(struct apg_store *st);
/* Tag hash of a property string: Java hashCode of TAGS, 0 without one. */
int64_t apg_dispatch_tags_code(const char *props, size_t len);
/* tags, or for a record of APG_SCHEDULE_TOPIC with a DELAY level its deliver
 * time (store_ts + the level's delay), or for a record of APG_TIMER_TOPIC its
 * TIMER_OUT_MS (0 without one). */
int64_t apg_dispatch_sched_tags(const struct apg_store *st, const char *topic, size_t topic_len,
                                const char *props, size_t len, int64_t store_ts, int64_t tags);

/* index.c: the message index by key (a dispatcher) and its retention. */
apg_err_t apg_index_open(struct apg_store *st, char *err, size_t errlen);
apg_err_t apg_index_dispatch_records(struct apg_store *st, const struct apg_dispatch_rec *recs,
                                     int n, bool recovering, int *done, char *err, size_t errlen);
int apg_index_dispatch_flush(struct apg_store *st);
void apg_index_dispatch_truncate(struct apg_store *st, int64_t from);
void apg_index_dispatch_reset(struct apg_store *st);
void apg_index_dispatch_close(struct apg_store *st);
void apg_index_clean(struct apg_store *st, int64_t min_phys);
/* Service thread: prepares the newest index file's next pages ahead of the
 * writer; true when there is more to do. */
bool apg_index_warm(struct apg_store *st);

/* mapped_file.c */
void apg_store_fsync_dir(const char *dir);
void apg_seg_free(struct seg *s, bool unlink_file);
int apg_seg_zero(struct seg *s, size_t from, size_t to);
struct seg *apg_seg_open(const char *dir, int64_t base, size_t size, bool create, bool prealloc,
                         char *err, size_t errlen);
int apg_seg_sync(struct apg_store *st, struct seg *s, size_t from, size_t to);
/* msync(s->sg_map + from, to - from, flags), reported to the sync hook when a
 * test set one (fault.c). Every msync of the store goes through it. */
int apg_store_fault_msync(struct apg_store *st, struct seg *s, size_t from, size_t to, int flags);
int apg_seg_list(const char *dir, char ***out);
void apg_seg_names_free(char **v, int n);
size_t apg_seg_data_end(struct seg *s);

/* Writes len bytes at file offset off, all of them. 0 or -1 (errno). Inline:
 * it is on every put. */
static inline int apg_seg_pwrite_all(int fd, const uint8_t *p, size_t len, off_t off)
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

/* consume_queue.c */
struct cq *apg_cq_find(struct apg_store *st, const char *t, size_t tl, int32_t qid);
struct cq *apg_cq_create(struct apg_store *st, const char *t, size_t tl, int32_t qid);
void apg_cq_free(struct cq *q, bool remove_files);
struct seg *apg_cq_seg_for(struct apg_store *st, struct cq *q, int64_t lo);
const uint8_t *apg_cq_entry(struct apg_store *st, struct cq *q, int64_t lo);
int apg_cq_add_seg(struct apg_store *st, struct cq *q, int64_t base, char *err, size_t errlen);
apg_err_t apg_cq_write(struct apg_store *st, struct cq *q, int64_t lo, int64_t phys, int32_t size,
                       int64_t tags, char *err, size_t errlen);
apg_err_t apg_cq_load_all(struct apg_store *st, char *err, size_t errlen);
void apg_cq_clean(struct apg_store *st, int64_t min_phys);
/* Queues that have a segment file (what the next open finds on disk; a queue
 * created in memory whose first file could not be made is not counted). */
int64_t apg_cq_count_on_disk(struct apg_store *st);
/* The consume queue's dispatcher callbacks (see struct apg_dispatcher). */
apg_err_t apg_cq_dispatch_records(struct apg_store *st, const struct apg_dispatch_rec *recs, int n,
                                  bool recovering, int *done, char *err, size_t errlen);
void apg_cq_dispatch_publish(struct apg_store *st, const struct apg_dispatch_rec *recs, int n);
int apg_cq_dispatch_flush(struct apg_store *st);
void apg_cq_dispatch_truncate(struct apg_store *st, int64_t from);
void apg_cq_dispatch_reset(struct apg_store *st);
void apg_cq_dispatch_close(struct apg_store *st);

/* commitlog.c */
struct seg *apg_cl_seg_for(struct apg_store *st, int64_t off);
apg_err_t apg_cl_push_seg(struct apg_store *st, struct seg *s);
apg_err_t apg_cl_roll(struct apg_store *st, int64_t base, char *err, size_t errlen);

/* checkpoint.c */
/* Reads <root>/checkpoint. Pure apart from reading that one file, so the
 * offline checker (src/cli/check_store.c) uses it too. */
void apg_ckpt_read(const char *root, struct apg_ckpt *ck);
int apg_ckpt_write(struct apg_store *st, bool clean, int64_t cl_flushed, int64_t cq_phys,
                   int64_t nqueues);

/* flush.c */
int apg_cl_flush(struct apg_store *st);
void apg_flush_checkpoint(struct apg_store *st, bool clean);
void apg_flush_complete_waiters(struct apg_store *st, bool draining);
void *apg_flush_ack_main(void *arg);
void *apg_flush_async_main(void *arg);
void *apg_flush_sync_main(void *arg);

/* fault.c */
/* Store open: takes the fault settings from the environment when the hooks
 * are armed (APOGEE_STORE_FAULT_PUT_DELAY_MS, APOGEE_STORE_FAULT_FLUSH_DELAY_MS,
 * APOGEE_STORE_FAULT_DISK_RATIO). */
void apg_store_fault_env(struct apg_store *st);
/* Appender, under st_append_mtx: sleeps st_fault_put_delay_ms (0: returns
 * at once). Inline: it is on every put. */
void apg_store_fault_sleep_ms(int ms);
static inline void apg_store_fault_put_stall(struct apg_store *st)
{
    int ms = atomic_load_explicit(&st->st_fault_put_delay_ms, memory_order_relaxed);
    if (ms > 0)
        apg_store_fault_sleep_ms(ms);
}
/* Flush thread, before a commit-log flush: sleeps st_fault_flush_delay_ms
 * (APOGEE_STORE_FAULT_FLUSH_DELAY_MS), as a slow disk's sync would. */
static inline void apg_store_fault_flush_stall(struct apg_store *st)
{
    int ms = atomic_load_explicit(&st->st_fault_flush_delay_ms, memory_order_relaxed);
    if (ms > 0)
        apg_store_fault_sleep_ms(ms);
}

/* retention.c */
/* Free space kept back on the commit log's file system: writes are refused
 * before it is touched, so that what a write may still need after its log
 * record (a new queue's directory and file, the checkpoint, config tables)
 * and what a later start needs always fit. Two consume-queue files, two
 * largest records and 4 MiB. */
static inline int64_t apg_store_reserve_bytes(const struct apg_store *st)
{
    return 2 * (int64_t)st->st_opts.so_cq_file_size +
           2 * ((int64_t)st->st_opts.so_max_message_size + 65536) + (4ll << 20);
}
void apg_retention_disk_check(struct apg_store *st);
bool apg_retention_hour_listed(const char *when, int hour);
int apg_retention_pass(struct apg_store *st, bool time_ok);

/* warmup.c */
bool apg_warm_zero_ahead(struct apg_store *st);
void apg_warm_drop_behind(struct apg_store *st);

/* Appender, under st_append_mtx, before it writes commit-log bytes below
 * `end`: announces them and waits while the service thread is overwriting a
 * chunk that reaches below `end` with zeros (see apg_warm_zero_ahead). Inline:
 * it is on every put. */
static inline void apg_warm_guard(struct apg_store *st, int64_t end)
{
    atomic_store(&st->st_reserve_end, end);
    while (atomic_load(&st->st_zero_busy) < end) {
        pthread_mutex_lock(&st->st_zero_mtx);
        pthread_mutex_unlock(&st->st_zero_mtx);
    }
}

/* Appender, under st_append_mtx: why the store takes no write now (an
 * earlier failed fsync, closing), or 0. Shared by the put path and the
 * replica append. */
static inline apg_err_t apg_store_write_refused(struct apg_store *st, char *err, size_t errlen)
{
    if (atomic_load(&st->st_fsync_failed))
        return apg_errf(APG_EFSYNC, err, errlen,
                        "an earlier fsync of the commit log failed; the store is read-only until "
                        "restarted");
    if (atomic_load(&st->st_closing))
        return apg_errf(APG_ECLOSED, err, errlen, "store is closing");
    return APG_OK;
}

/* recover.c */
apg_err_t apg_recover_open(struct apg_store *st, char *err, size_t errlen);

/* Records the store's last error for apg_store_stats (flush, retention and
 * the disk guard set it; any thread). Inline so those files need nothing
 * from store.c, which starts and stops them. */
static inline void apg_store_set_last_error(struct apg_store *st, const char *msg)
{
    pthread_mutex_lock(&st->st_err_mtx);
    snprintf(st->st_last_error, sizeof(st->st_last_error), "%s", msg);
    pthread_mutex_unlock(&st->st_err_mtx);
}

/* Outcome of scanning one commit-log segment image. */
enum apg_scan_end {
    APG_SCAN_END_ZERO = 0, /* reached zero-filled (never written) space */
    APG_SCAN_END_BLANK,    /* reached the end-of-segment filler */
    APG_SCAN_END_FULL,     /* records fill the segment exactly */
    APG_SCAN_END_BAD,      /* an invalid record at sr_end */
};

struct apg_scan_result {
    enum apg_scan_end sr_how;
    size_t sr_end;      /* offset (within the segment) just past the last valid record */
    size_t sr_records;  /* valid records seen */
    const char *sr_why; /* reason for APG_SCAN_END_BAD (static) */
    /* For BAD and ZERO: offset of the first valid, self-identifying record
     * after sr_end (PHYSICALOFFSET field == its own position), or SIZE_MAX.
     * Such a record means mid-log corruption, not a torn tail. */
    size_t sr_next_valid;
};

/* Record callback for apg_scan_segment: pos is the offset within the segment. */
typedef void (*apg_scan_fn)(void *ud, size_t pos, const struct apg_msgrec *r);

/* Validates the records of one segment image buf[0..len) whose first byte has
 * commit-log offset `base`, starting at segment offset `from` (a record
 * boundary). Every record must have a known magic, consistent lengths, a body
 * CRC that matches (when check_crc) and a PHYSICALOFFSET equal to its position.
 * fn (may be NULL) is called for each valid record. The search for valid
 * records after a bad point looks only below search_len (the end of the
 * written data; never-written space need not be read). Pure: reads only buf. */
void apg_scan_segment(const uint8_t *buf, size_t len, size_t search_len, int64_t base, size_t from,
                      bool check_crc, apg_scan_fn fn, void *ud, struct apg_scan_result *res);

/* Searches buf[from..len) for a valid record whose PHYSICALOFFSET equals its
 * own position (base + offset). Returns its offset or SIZE_MAX. Pure. */
size_t apg_scan_find_valid(const uint8_t *buf, size_t len, int64_t base, size_t from);

#endif

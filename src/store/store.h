/* The message store: commit log, consume queues, flush, recovery, retention.
 *
 * This is the whole contract between the broker and storage. It has no network
 * code and can be used and tested on its own (tests/unit/test_store*.c,
 * bench/bench_store.c, bench/store_crashload.c).
 *
 * On-disk layout (RocketMQ's, file for file; docs/wire.md §9):
 *   <root>/commitlog/<20-digit start offset>      fixed-size mapped segments
 *   <root>/consumequeue/<topic>/<qid>/<20-digit>  20-byte entries
 *   <root>/index/<yyyyMMddHHmmssSSS>              index files (docs/design.md)
 *   <root>/checkpoint                             one 4 KiB page (docs/wire.md §9.4)
 *   <root>/abort                                  present while the store is open
 *   <root>/lock                                   flock()ed while the store is open
 *
 * Threads. An apg_store is shared by every thread of the broker:
 *   - apg_store_put() runs in the CALLER's thread; appends are serialised by a
 *     short append lock (one pwrite() of the encoded records into the current
 *     segment file, then the consume-queue entries); see store_int.h.
 *   - apg_store_get() and the other readers may run in any thread, concurrently
 *     with appends, flushing and retention.
 *   - The store owns three internal threads: the flush thread (msync/fdatasync,
 *     group commit, checkpoint), the ack thread (runs SYNC_FLUSH ack_cb
 *     callbacks, so the next group commit starts while acks are delivered) and
 *     the service thread (segment preallocation and page warm-up, retention,
 *     disk-space guard).
 *   - apg_store_open()/apg_store_close() must not race with any other call.
 *
 * Durability contract:
 *   ASYNC_FLUSH: a put is final when apg_store_put() returns 0; the bytes are in
 *     the page cache and are flushed every flush_interval_ms.
 *   SYNC_FLUSH: a put that returned 0 is acknowledged only after its bytes are
 *     durable. If an ack_cb was given, it is called exactly once, from the store's
 *     ack thread (one thread, in append order), after ONE fdatasync covering every append made
 * before it (group commit), with rc = 0, APG_ETIMEDOUT (not durable within sync_flush_timeout_ms;
 * the record may still become durable later) or APG_EFSYNC. If ack_cb is NULL, apg_store_put()
 * itself waits for the same outcome and returns it. After one failed fsync/msync the store never
 * acknowledges again: pending and later puts fail with APG_EFSYNC, reads keep working, the error is
 * logged and shown in apg_store_stats(). Restart to recover. A put that returned an error never
 * calls ack_cb (no callback after a failed call).
 *   SYNC_MASTER (so_sync_replica): ack_cb also waits until a slave holds the bytes; rc
 * APG_ENOSLAVE or APG_ESLAVETIMEOUT when none did (the record is stored all the same). */
#ifndef APG_STORE_STORE_H
#define APG_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "protocol/message.h"

struct apg_store; /* opaque */

/* The topic that holds delayed messages, one queue per delay level (queue id
 * = level - 1), and the most levels messageDelayLevel may list. */
#define APG_SCHEDULE_TOPIC "SCHEDULE_TOPIC_XXXX"
#define APG_SCHEDULE_TOPIC_LEN 19
#define APG_DELAY_LEVELS_MAX 64

/* The topic that holds timer messages (queue 0); the consume-queue entry of
 * a record with TIMER_OUT_MS holds that deliver time instead of a tag hash. */
#define APG_TIMER_TOPIC "rmq_sys_wheel_timer"
#define APG_TIMER_TOPIC_LEN 19

/* Parses messageDelayLevel ("1s 5s 10s ... 2h": numbers with a unit s, m, h
 * or d, separated by single spaces, as RocketMQ splits it) into ms[] (room for
 * cap). Returns the number of levels, or -1 with the reason in err. */
int apg_delay_levels_parse(const char *s, int64_t *ms, int cap, char *err, size_t errlen);

/* Options for apg_store_open(). Zero/NULL fields take the documented default
 * (apg_store_opts_init() fills them all in). Strings are borrowed for the call
 * only. */
struct apg_store_opts {
    const char *so_root_dir;         /* required: storePathRootDir */
    const char *so_commitlog_dir;    /* NULL or "" => <root>/commitlog (storePathCommitLog) */
    uint64_t so_commitlog_file_size; /* mappedFileSizeCommitLog, default 1 GiB; >= 4096 */
    uint64_t so_cq_file_size; /* mappedFileSizeConsumeQueue, default 6,000,000; multiple of 20 */
    bool so_sync_flush;       /* flushDiskType == SYNC_FLUSH */
    int so_flush_interval_ms; /* flushIntervalCommitLog (ASYNC), default 500 */
    int so_sync_flush_timeout_ms; /* syncFlushTimeout, default 5000 */
    /* SYNC_MASTER: a put with an ack_cb is acknowledged once a slave reported
     * holding its bytes (apg_store_replica_progress), within
     * so_sync_flush_timeout_ms; no slave in sync: APG_ENOSLAVE at once (after
     * the flush under SYNC_FLUSH); too late: APG_ESLAVETIMEOUT. The record
     * is stored either way. Puts without ack_cb (delay, timer and
     * transaction deliveries) do not wait for a slave. */
    bool so_sync_replica;
    int64_t so_repl_max_gap;    /* haMaxGapNotInSync: a slave this far behind is not in sync */
    int so_file_reserved_hours; /* fileReservedTime, default 72 */
    const char *so_delete_when; /* deleteWhen, "04" or "04;16", default "04" */
    int so_disk_max_used_ratio; /* diskMaxUsedSpaceRatio %, default 75 */
    int so_disk_clean_forcibly_ratio; /* diskSpaceCleanForciblyRatio %, default 85 */
    bool so_clean_forcibly;           /* cleanFileForciblyEnable, default false: never delete
                                         unexpired segments for space unless set */
    int so_disk_warning_ratio;     /* diskSpaceWarningLevelRatio %, default 90: refuse puts above */
    bool so_check_crc_on_recover;  /* checkCRCOnRecover, default true */
    bool so_force_recover_corrupt; /* forceRecoverCorrupt: truncate at mid-log corruption */
    uint32_t so_max_message_size;  /* maxMessageSize (body), default 4 MiB */
    struct apg_host so_store_host; /* written to STOREHOSTADDRESS and offset msgIds */
    bool so_no_preallocate;        /* tests: do not zero-fill/prefault segments ahead */
    uint32_t so_warm_ahead_mb;     /* pages faulted in ahead of the writer, MiB (0: 64) */
    bool so_no_index;          /* messageIndexEnable=false: no index files, queries find nothing */
    uint32_t so_index_slots;   /* maxHashSlotNum, default 5,000,000 */
    uint32_t so_index_entries; /* maxIndexNum (entries per index file), default 20,000,000 */
    int64_t so_cache_keep_mb;  /* commitLogCacheKeepMb: flushed log kept in page cache, MiB;
                                  older flushed pages are dropped (<= 0: never) */
    /* messageDelayLevel: delay of level i + 1 in ms. The consume-queue entry of
     * a record in APG_SCHEDULE_TOPIC holds its deliver time (store timestamp +
     * the delay of its DELAY level, clamped to the last level) instead of a tag
     * hash, as RocketMQ's dispatcher writes it. 0 levels: tag hash as usual. */
    int64_t so_delay_ms[APG_DELAY_LEVELS_MAX];
    int so_delay_levels;
};

/* Fills every field with its default (root dir NULL, store host 127.0.0.1:10911). */
void apg_store_opts_init(struct apg_store_opts *o);

struct apg_config;
/* Fills o from the broker configuration: storePathRootDir, storePathCommitLog,
 * mappedFileSizeCommitLog, mappedFileSizeConsumeQueue, flushDiskType,
 * flushIntervalCommitLog, syncFlushTimeout, fileReservedTime, deleteWhen,
 * diskMaxUsedSpaceRatio, diskSpaceCleanForciblyRatio, cleanFileForciblyEnable,
 * diskSpaceWarningLevelRatio, checkCRCOnRecover, forceRecoverCorrupt,
 * maxMessageSize; the store host from brokerIP1 when it is an IP literal
 * (else 127.0.0.1; the broker may overwrite so_store_host) and listenPort.
 * Strings are borrowed from cfg (keep cfg alive until apg_store_open returns). */
void apg_store_opts_from_config(struct apg_store_opts *o, const struct apg_config *cfg);

/* Opens (creating if needed) and recovers the store at o->so_root_dir.
 * Clean previous shutdown: fast start. Crash (abort marker present): validates
 * records from the last checkpointed point, truncates a torn tail, rebuilds
 * consume queues. Mid-log corruption: APG_ECORRUPT with the file and offset in
 * err, unless so_force_recover_corrupt. Another process holding the store:
 * APG_EBUSY. On success *out is owned by the caller: release with
 * apg_store_close(). */
apg_err_t apg_store_open(const struct apg_store_opts *o, struct apg_store **out, char *err,
                         size_t errlen);

/* Clean shutdown: waits for in-flight SYNC_FLUSH acknowledgements (they are
 * delivered), flushes everything, writes the checkpoint, removes the abort
 * marker and frees st. st must not be used by any other thread during or after
 * the call. NULL is ignored. */
void apg_store_close(struct apg_store *st);

/* Where one message went. For transaction PREPARED/ROLLBACK records
 * (sysflag & 0xC == 0x4 or 0xC) the queue offset is 0 and no consume-queue
 * entry is written, as RocketMQ does. */
struct apg_put_result {
    int64_t pr_phys_offset;  /* commit-log offset of the record */
    int64_t pr_queue_offset; /* logical offset in (topic, queue id) */
    int32_t pr_msg_size;     /* TOTALSIZE */
    int64_t pr_store_ts;     /* STORETIMESTAMP */
};

/* Whether an acknowledgement's rc means the record is stored: 0, or a
 * flush or a slave that did not confirm it in time (RocketMQ answers those
 * with a send status, not an error). */
static inline bool apg_store_rc_stored(apg_err_t rc)
{
    return rc == APG_OK || rc == APG_ETIMEDOUT || rc == APG_ENOSLAVE || rc == APG_ESLAVETIMEOUT;
}

/* SYNC_FLUSH acknowledgement: called exactly once from the store's ack thread with
 * rc 0, APG_ETIMEDOUT or APG_EFSYNC. Must not block and must not call back into
 * apg_store_put() synchronously. */
typedef void (*apg_store_ack_fn)(void *ud, apg_err_t rc);

/* Appends n (>= 1) messages atomically and contiguously: one after the other in
 * the commit log (within one segment), and messages of one (topic, queue) get
 * consecutive queue offsets. Runs in the caller's thread under the append lock
 * and returns as soon as the bytes are written to the segment file (page
 * cache); res[i] receives message i's offsets (res has room for n). Errors
 * (nothing was appended, no callback): APG_EINVAL/APG_ETOOBIG (bad message;
 * err names the field), APG_EDISKFULL (disk above the warning ratio; err gives
 * the ratio and the key), APG_EFSYNC (an earlier fsync failed), APG_ECLOSED,
 * APG_EIO, APG_ENOMEM. See the durability contract above for ack_cb (ignored
 * under ASYNC_FLUSH). */
apg_err_t apg_store_put(struct apg_store *st, const struct apg_msg_in *msgs, int n,
                        struct apg_put_result *res, apg_store_ack_fn ack_cb, void *ud, char *err,
                        size_t errlen);

/* Called after every successful put (in the putting thread, outside the append
 * lock) once per (topic, queue) touched, with the queue's new max offset, so the
 * broker can wake long-polling pulls. Topic is borrowed for the call. Set it
 * before the first put; it must be cheap and must not call apg_store_put(). */
typedef void (*apg_store_arrive_fn)(void *ud, const char *topic, size_t topic_len, int32_t queue_id,
                                    int64_t new_max_offset);
void apg_store_set_arrive_hook(struct apg_store *st, apg_store_arrive_fn fn, void *ud);

/* RocketMQ GetMessageStatus. */
enum apg_get_status {
    APG_GET_FOUND = 0,
    APG_GET_NO_MATCHED_MESSAGE,
    APG_GET_MESSAGE_WAS_REMOVING,
    APG_GET_OFFSET_FOUND_NULL,
    APG_GET_OFFSET_OVERFLOW_BADLY,
    APG_GET_OFFSET_OVERFLOW_ONE,
    APG_GET_OFFSET_TOO_SMALL,
    APG_GET_NO_MATCHED_LOGIC_QUEUE,
    APG_GET_NO_MESSAGE_IN_QUEUE,
};
const char *apg_get_status_name(enum apg_get_status s); /* "FOUND", ... */

struct apg_get_result {
    enum apg_get_status gr_status;
    int64_t gr_next_begin_offset; /* where the consumer should pull next */
    int64_t gr_min_offset;        /* queue min/max at the time of the call */
    int64_t gr_max_offset;
    int32_t gr_count;              /* records appended to out */
    int64_t gr_first_queue_offset; /* queue offset of the first record returned */
};

/* Filter on the consume-queue tag hash; return true to deliver. */
typedef bool (*apg_store_filter_fn)(void *ud, int64_t tags_code);

/* Reads up to max_msgs records (and about max_bytes: the first record is always
 * delivered whole) of (topic, queue_id) starting at logical offset `offset`,
 * skipping records the filter rejects (filter NULL = all). Matching records are
 * appended back to back to out (their stored bytes, docs/wire.md §9.2). Returns 0
 * with r filled (r->gr_status says what happened, RocketMQ semantics), or
 * APG_ENOMEM/APG_EINVAL. Borrows everything; out is owned by the caller. Any
 * thread. */
apg_err_t apg_store_get(struct apg_store *st, const char *topic, size_t topic_len, int32_t queue_id,
                        int64_t offset, int max_msgs, size_t max_bytes, apg_store_filter_fn filter,
                        void *filter_ud, struct apg_buf *out, struct apg_get_result *r);

/* Queue bounds (logical offsets). Unknown queue: 0. Any thread. */
int64_t apg_store_max_offset(struct apg_store *st, const char *topic, size_t topic_len,
                             int32_t queue_id);
int64_t apg_store_min_offset(struct apg_store *st, const char *topic, size_t topic_len,
                             int32_t queue_id);

/* RocketMQ 5.x getOffsetInQueueByTime. Lower boundary (upper = false, the
 * default): the smallest logical offset whose STORETIMESTAMP >= ts (max
 * offset if every record is older, min offset if every record is newer).
 * Upper boundary: the largest offset whose STORETIMESTAMP <= ts (the last
 * record if every record is older, the min offset if every record is newer).
 * Unknown or empty queue: 0. Any thread. */
int64_t apg_store_offset_by_time(struct apg_store *st, const char *topic, size_t topic_len,
                                 int32_t queue_id, int64_t ts_ms, bool upper);

/* STORETIMESTAMP of the first available record of the queue, or -1. */
int64_t apg_store_earliest_msg_time(struct apg_store *st, const char *topic, size_t topic_len,
                                    int32_t queue_id);

/* Store timestamp of the record at `queue_offset`, or -1 if not available. */
int64_t apg_store_msg_store_time(struct apg_store *st, const char *topic, size_t topic_len,
                                 int32_t queue_id, int64_t queue_offset);

/* One consume-queue entry. */
struct apg_cq_ref {
    int64_t cr_queue_offset;
    int64_t cr_phys_offset;
    int32_t cr_size;
    int64_t cr_tags_code;
};

/* Up to max entries of (topic, queue_id) from logical offset `offset` into
 * out, without reading the records. Returns how many (0 at the end of the
 * queue or for an unknown one); *next is the offset after the last one, or
 * the queue's min offset when `offset` is below it. Any thread. */
int apg_store_cq_read(struct apg_store *st, const char *topic, size_t topic_len, int32_t queue_id,
                      int64_t offset, int max, struct apg_cq_ref *out, int64_t *next);

/* Copies the one record starting at commit-log offset phys_offset into out
 * (appended), validating it. APG_ENOTFOUND if the offset is outside the log or
 * not the start of a valid record. Any thread. */
apg_err_t apg_store_read_at(struct apg_store *st, int64_t phys_offset, struct apg_buf *out);

/* Starts reading from disk the records at the n commit-log offsets, all of
 * them before returning, so that copying them next (apg_store_read_at) waits
 * for overlapping reads of their own pages instead of faulting each one in
 * with the mapping's read-around. For random reads by offset (queries, views
 * by id, timers); offsets outside the log are skipped. Any thread. */
void apg_store_prefetch_records(struct apg_store *st, const int64_t *phys, int n);

/* Largest number of records one query returns (RocketMQ maxMsgsNumBatch). */
#define APG_STORE_QUERY_MAX 64

struct apg_store_query_result {
    int64_t sq_last_update_ts;   /* newest index file's end store time (indexLastUpdateTimestamp) */
    int64_t sq_last_update_phys; /* its last indexed commit-log offset (indexLastUpdatePhyoffset) */
    int sq_count;                /* records appended to out */
};

/* QUERY_MESSAGE: appends to out (back to back, their stored bytes) up to
 * max_msgs (capped at APG_STORE_QUERY_MAX) records of `topic` that carry
 * `key` as a word of KEYS or as UNIQ_KEY and whose STORETIMESTAMP is in
 * [begin_ms, end_ms], newest first. Hash collisions are filtered out here.
 * Finds nothing when the index is disabled. Returns 0 with r filled, or
 * APG_ENOMEM. Borrows everything; any thread. */
apg_err_t apg_store_query_message(struct apg_store *st, const char *topic, size_t topic_len,
                                  const char *key, size_t key_len, int max_msgs, int64_t begin_ms,
                                  int64_t end_ms, struct apg_buf *out,
                                  struct apg_store_query_result *r);

/* Removes the consume queues of a topic (files included). Commit-log records
 * stay until retention. Any thread. */
apg_err_t apg_store_delete_topic(struct apg_store *st, const char *topic, size_t topic_len);

/* Calls fn for every (topic, queue id) that has a consume queue. The topic is
 * borrowed for the call. fn must not call back into the store. */
void apg_store_foreach_queue(struct apg_store *st,
                             void (*fn)(void *ud, const char *topic, size_t topic_len,
                                        int32_t queue_id, int64_t min_offset, int64_t max_offset),
                             void *ud);

struct apg_store_stats {
    int64_t ss_min_phys_offset;     /* first byte still in the commit log */
    int64_t ss_max_phys_offset;     /* write position */
    int64_t ss_flushed_phys_offset; /* durable up to here */
    int64_t ss_warmed_phys_offset;  /* pages faulted in (writable) up to here */
    uint64_t ss_fsync_count;        /* fdatasync/msync calls on the commit log */
    uint64_t ss_fsync_time_us;      /* total time spent in those calls */
    uint64_t ss_put_count;          /* records appended since open */
    uint64_t ss_put_bytes;
    int ss_disk_used_ratio; /* percent, of the commit-log file system */
    bool ss_writable;       /* false after an fsync error or disk full */
    bool ss_fsync_failed;
    char ss_last_error[256]; /* last refusal/failure reason, "" if none */
};
void apg_store_stats(struct apg_store *st, struct apg_store_stats *out);

/* How long the put now holding the append lock has held it, in ms; 0 when
 * no put holds it. A put that holds it for long is stuck in the page cache
 * (the kernel throttling a writer while dirty pages go to a slow disk), and
 * every other put waits behind it. Any thread, lock-free. */
int64_t apg_store_put_stall_ms(const struct apg_store *st);

/* Replication (replica.c; src/ha streams with these). */

/* The commit log's first byte still present and its write position. Any
 * thread, lock-free. */
int64_t apg_store_log_min_offset(const struct apg_store *st);
int64_t apg_store_log_max_offset(const struct apg_store *st);

/* Master: copies up to max commit-log bytes starting at `from` into out,
 * stopping at the write position and at the end of from's segment (a blank
 * filler goes out with the zeros after it, to the segment's end). *n = 0
 * when from is the write position. APG_ERANGE: from is past the write
 * position; APG_ENOTFOUND: from is below the first byte still present.
 * Any thread. */
apg_err_t apg_store_log_read(struct apg_store *st, int64_t from, uint8_t *out, size_t max,
                             size_t *n);

/* Slave: appends the master's commit-log bytes buf[0..len), which start at
 * commit-log offset `at` (the write position, or inside the zeros of the
 * blank filler just written), as the master wrote them: whole records are
 * validated (CRC, PHYSICALOFFSET, queue offsets that follow each queue's
 * end), written, indexed into consume queues and the index as the put path
 * does, and published (the arrive hook runs). *used = bytes taken, from the
 * start of buf; a partial record at the end is left for the next call with
 * more bytes (the caller keeps it); at most 64 records per call. An empty
 * store (nothing written, no queue) takes a segment start past its end as
 * the start of its log (the master's first segments were retired). Errors
 * (err says what): APG_ERANGE (at is not where this log ends: the logs
 * differ), APG_ECORRUPT (not a valid record, or not where the record says
 * it belongs), APG_EDISKFULL, APG_EIO, APG_EFSYNC, APG_ECLOSED; *used still
 * counts the records taken before the failure. One thread at a time. */
apg_err_t apg_store_replica_append(struct apg_store *st, int64_t at, const uint8_t *buf, size_t len,
                                   size_t *used, char *err, size_t errlen);

/* Master (SYNC_MASTER): n slaves are connected and the furthest has
 * reported holding the log up to `acked`. Wakes the waiters it completes.
 * The HA master thread. */
void apg_store_replica_progress(struct apg_store *st, int n, int64_t acked);

/* Marks the store as a slave's: from then on apg_store_put refuses every
 * write with APG_EPERM, so only apg_store_replica_append writes its log. */
void apg_store_set_replica(struct apg_store *st, bool replica);

/* Tools and tests: runs one retention pass now, ignoring deleteWhen (expired
 * segments by file mtime older than so_file_reserved_hours, or forced by disk
 * ratio). Returns the number of commit-log segments removed. */
int apg_store_clean_now(struct apg_store *st);

#endif

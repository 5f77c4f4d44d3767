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
 *            entry (deliver ms, commit-log offset) appended to the file of
 *            its slot, timer/slots/<deliver ms / timerPrecisionMs>.
 *   deliver  when the wall clock enters the cursor slot, its file is read,
 *            sorted by (deliver ms, offset) and de-duplicated; each entry is
 *            copied once its own deliver time has passed (the record is read
 *            back by offset, copied with apg_broker_put_real_copy and stored with
 *            apg_broker_put_internal, 64 per put); when the slot has ended
 *            and every entry is out, the cursor moves to the next slot.
 *
 * Why a file per slot and not RocketMQ's wheel + linked timer log: both keep
 * memory independent of the number pending, but the slot file needs no
 * in-memory or mapped wheel (RocketMQ maps 2 x 7 days of 1 s slots, ~40 MB,
 * whatever is pending), reads exactly the due entries sequentially instead
 * of following a back-linked chain through a shared log, and is freed by
 * unlinking one file. The cost is one small file per non-empty second; an
 * append opens it, so the enqueue pays an open/close per run of records
 * that share a slot. Memory is the one slot being delivered (16 bytes per
 * entry due in that second) plus fixed buffers.
 *
 * Progress: config/timerProgress.json {"enqueueOffset":E,"slot":S,
 * "slotDone":D}: every timer-queue record below E is in a slot file or was
 * copied; every slot below S is delivered, and the first D entries of slot S
 * in (deliver ms, offset) order. It is written every timerFlushIntervalMs and at a
 * clean stop, only once the store has flushed the copies it covers and the
 * slot files written since the last write are synced (fdatasync each, or
 * one syncfs past 256 of them). After a crash the enqueue repeats
 * from E (the repeated entries are dropped by the de-duplication when their
 * slot is read: same offset) and the delivery from entry D of slot S (copies
 * made since are made again: at least once, same UNIQ_KEY; after a clean
 * stop exactly once). Slot files below the
 * written S are unlinked. Timers that fell due while the broker was down
 * are delivered at start: the cursor walks every slot from S to now (an
 * absent file is an empty slot).
 *
 * Never early: an entry is copied only when the wall clock has reached its
 * deliver time, which is taken from the record's TIMER_OUT_MS.
 *
 * Cancels (RocketMQ 5's TIMER_DEL_UNIQKEY): a timer message carrying
 * TIMER_DEL_UNIQKEY = "<topic>+<UNIQ_KEY>" cancels the pending timer of that
 * topic and unique key in the same slot (the sender gives it the pending
 * timer's deliver time); it is itself never delivered. The send path parks
 * it in rmq_sys_wheel_timer queue APG_TIMER_CANCEL_QID, not 0, so the enqueue
 * of ordinary timers still never reads a record. The cancel enqueue reads
 * each cancel record (they are few) and appends its key to the slot's
 * cancel file, timer/slots/<slot>.del (u16 big-endian length + key bytes per
 * cancel), fdatasynced before the cancel offset moves past it; a cancel for
 * a slot already delivered has nothing left to cancel and is dropped. When
 * a slot is loaded its cancel file is read into tm_keys (sorted), and every
 * record copied while that slot is loaded whose REAL_TOPIC + "+" + UNIQ_KEY
 * is among them is skipped instead (a cancel for the loaded slot is added to
 * tm_keys at once). Progress: "cancelOffset" in timerProgress.json; a cancel
 * re-read after a crash is appended twice, which changes nothing.
 *
 * Threads: everything in struct apg_timer belongs to the timer thread except
 * tm_delivered (atomic) and tm_kicked / tm_stop (under tm_lock). */
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
#include "protocol/props.h"

#define SUB "timer"
#define BATCH 64
#define BATCH_BYTES (4u << 20)
#define PASS_MAX 8192 /* timer-queue records enqueued per pass */
#define MAX_SLEEP_MS 1000
#define RETRY_MS 1000
#define CATCHUP_MS 200 /* longest a backlog's parking holds deliveries up */
#define DIRTY_MAX 256  /* slot files synced one by one before a persist */

struct entry {
    int64_t e_due;  /* deliver time, wall ms */
    int64_t e_phys; /* commit-log offset of the parked record */
};

/* One cancel key of the loaded slot, "<topic>+<UNIQ_KEY>". */
struct ckey {
    char *k_s;
    size_t k_len;
};

struct apg_timer {
    struct apg_broker *tm_b;
    struct apg_store *tm_st;
    int64_t tm_prec;   /* timerPrecisionMs: slot width */
    int64_t tm_max_ms; /* timerMaxDelaySec * 1000 */
    int64_t tm_flush_ms;
    char *tm_dir;    /* <root>/timer/slots */
    char *tm_path;   /* <root>/config/timerProgress.json */
    int64_t tm_enq;  /* next timer-queue offset to enqueue */
    int64_t tm_cenq; /* next offset of the cancel queue (APG_TIMER_CANCEL_QID) */
    int64_t tm_slot; /* cursor: every slot below it is delivered */
    bool tm_loaded;  /* tm_cur holds the cursor slot's entries */
    struct entry *tm_cur;
    size_t tm_n, tm_cap, tm_pos; /* tm_cur[tm_pos..tm_n) are still to copy */
    struct ckey *tm_keys;        /* the loaded slot's cancels, sorted (key_cmp) */
    size_t tm_nkeys, tm_capkeys;
    int64_t tm_copied_end; /* commit-log end of the last copy stored */
    /* Slot files written since the last sync; past DIRTY_MAX, tm_dirty_all. */
    int64_t tm_dirty[DIRTY_MAX];
    int tm_ndirty;
    bool tm_dirty_all;
    int64_t tm_skip; /* entries of the cursor slot delivered before a stop */
    int64_t tm_w_enq, tm_w_slot, tm_w_pos, tm_w_cenq; /* what the progress file holds */
    int64_t tm_unlinked;                              /* slot files below this are gone */
    int64_t tm_next_persist;
    int64_t tm_snap[4]; /* enqueue offset, slot, slotDone, copies' end one interval ago */
    bool tm_snap_set;
    struct apg_buf tm_one;
    struct apg_msg_in tm_msgs[BATCH];
    struct apg_put_result tm_res[BATCH];
    struct apg_log_limit tm_fail_log;
    atomic_llong tm_delivered;
    atomic_llong tm_cancelled;
    pthread_t tm_thread;
    bool tm_started;
    pthread_mutex_t tm_lock;
    pthread_cond_t tm_cond;
    bool tm_kicked, tm_stop;
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
    pthread_mutex_lock(&tm->tm_lock);
    tm->tm_kicked = true;
    pthread_cond_signal(&tm->tm_cond);
    pthread_mutex_unlock(&tm->tm_lock);
}

int64_t apg_timer_delivered(const struct apg_timer *tm)
{
    return tm ? atomic_load(&tm->tm_delivered) : 0;
}

int64_t apg_timer_cancelled(const struct apg_timer *tm)
{
    return tm ? atomic_load(&tm->tm_cancelled) : 0;
}

/* ---- slot files ------------------------------------------------------------ */

static void slot_path(const struct apg_timer *tm, int64_t slot, char *out, size_t n)
{
    snprintf(out, n, "%s/%lld", tm->tm_dir, (long long)slot);
}

static apg_err_t slot_append(struct apg_timer *tm, int64_t slot, const struct entry *e, size_t k)
{
    char p[4096];
    slot_path(tm, slot, p, sizeof(p));
    int fd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return errno == ENOSPC ? APG_EDISKFULL : APG_EIO;
    size_t len = k * sizeof(*e);
    ssize_t w = write(fd, e, len);
    int saved = errno;
    close(fd);
    if (tm->tm_ndirty == 0 || tm->tm_dirty[tm->tm_ndirty - 1] != slot) {
        if (tm->tm_ndirty < DIRTY_MAX)
            tm->tm_dirty[tm->tm_ndirty++] = slot;
        else
            tm->tm_dirty_all = true;
    }
    if (w != (ssize_t)len)
        return w < 0 && saved == ENOSPC ? APG_EDISKFULL : APG_EIO;
    return APG_OK;
}

static int entry_cmp(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    if (x->e_due != y->e_due)
        return x->e_due < y->e_due ? -1 : 1;
    return x->e_phys < y->e_phys ? -1 : x->e_phys > y->e_phys;
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
    struct entry *a = tm->tm_cur + tm->tm_pos;
    size_t n = tm->tm_n - tm->tm_pos, k = 0;
    qsort(a, n, sizeof(*a), entry_cmp);
    for (size_t i = 0; i < n; i++)
        if (k == 0 || a[i].e_phys != a[k - 1].e_phys)
            a[k++] = a[i];
    tm->tm_n = tm->tm_pos + k;
}

/* ---- cancels --------------------------------------------------------------- */

static void cancel_path(const struct apg_timer *tm, int64_t slot, char *out, size_t n)
{
    snprintf(out, n, "%s/%lld.del", tm->tm_dir, (long long)slot);
}

/* Appends key k (at most 65535 bytes) to slot's cancel file, durably
 * (cancels are rare). */
static apg_err_t cancel_append(struct apg_timer *tm, int64_t slot, const char *k, size_t kl)
{
    char p[4096];
    cancel_path(tm, slot, p, sizeof(p));
    uint8_t h[2] = {(uint8_t)(kl >> 8), (uint8_t)kl};
    struct iovec iov[2] = {{h, 2}, {(void *)k, kl}};
    int fd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return errno == ENOSPC ? APG_EDISKFULL : APG_EIO;
    ssize_t w = writev(fd, iov, 2);
    int saved = errno;
    bool ok = w == (ssize_t)(2 + kl) && fdatasync(fd) == 0;
    close(fd);
    if (!ok)
        return w < 0 && saved == ENOSPC ? APG_EDISKFULL : APG_EIO;
    return APG_OK;
}

static int key_cmp(const void *a, const void *b)
{
    const struct ckey *x = a, *y = b;
    if (x->k_len != y->k_len)
        return x->k_len < y->k_len ? -1 : 1;
    return memcmp(x->k_s, y->k_s, x->k_len);
}

/* Adds k to the loaded slot's cancels, keeping tm_keys sorted. */
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

/* Reads the cursor slot's cancel file into tm_keys. */
static apg_err_t keys_load(struct apg_timer *tm)
{
    keys_clear(tm);
    char p[4096];
    cancel_path(tm, tm->tm_slot, p, sizeof(p));
    FILE *f = fopen(p, "rbe");
    if (!f)
        return errno == ENOENT ? APG_OK : APG_EIO;
    apg_err_t e = APG_OK;
    uint8_t h[2];
    char *k = apg_malloc(65535);
    if (!k)
        e = APG_ENOMEM;
    while (!e && fread(h, 1, 2, f) == 2) {
        size_t kl = (size_t)h[0] << 8 | h[1];
        if (fread(k, 1, kl, f) != kl)
            break; /* cut short by a crash mid-append: that cancel is read again */
        e = keys_add(tm, k, kl);
    }
    apg_free(k);
    fclose(f);
    return e;
}

/* Is rec (a parked timer record) cancelled by the loaded slot? */
static bool cancelled(const struct apg_timer *tm, const struct apg_msgrec *rec)
{
    if (!tm->tm_nkeys)
        return false;
    size_t tl = 0, ul = 0;
    const char *t = apg_props_find(rec->mr_props, rec->mr_props_len, "REAL_TOPIC", &tl);
    const char *u = apg_props_find(rec->mr_props, rec->mr_props_len, "UNIQ_KEY", &ul);
    char buf[512];
    if (!t || !u || tl + 1 + ul > sizeof(buf))
        return false; /* topics are at most 127 bytes, unique keys 32 */
    memcpy(buf, t, tl);
    buf[tl] = '+';
    memcpy(buf + tl + 1, u, ul);
    struct ckey q = {buf, tl + 1 + ul};
    return bsearch(&q, tm->tm_keys, tm->tm_nkeys, sizeof(q), key_cmp) != NULL;
}

/* Reads the cursor slot's file into tm_cur. */
static apg_err_t slot_load(struct apg_timer *tm)
{
    char p[4096];
    slot_path(tm, tm->tm_slot, p, sizeof(p));
    tm->tm_n = tm->tm_pos = 0;
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    apg_err_t ke = keys_load(tm);
    if (ke) {
        if (fd >= 0)
            close(fd);
        return ke;
    }
    if (fd < 0) {
        if (errno == ENOENT) {
            tm->tm_loaded = true;
            return APG_OK;
        }
        return APG_EIO;
    }
    off_t size = lseek(fd, 0, SEEK_END);
    size_t n = size > 0 ? (size_t)size / sizeof(struct entry) : 0;
    apg_err_t e = cur_reserve(tm, n);
    size_t got = 0;
    while (!e && got < n * sizeof(struct entry)) {
        ssize_t r = pread(fd, (char *)tm->tm_cur + got, n * sizeof(struct entry) - got, (off_t)got);
        if (r <= 0)
            e = APG_EIO;
        else
            got += (size_t)r;
    }
    close(fd);
    if (e)
        return e;
    tm->tm_n = n;
    cur_sort(tm);
    /* The first tm_skip went out before the last persisted stop: entries
     * added to a slot while it is delivered fall due after every entry
     * already copied, so the copied ones are a prefix of the sorted slot. */
    tm->tm_pos = (size_t)tm->tm_skip < tm->tm_n ? (size_t)tm->tm_skip : tm->tm_n;
    tm->tm_skip = 0;
    tm->tm_loaded = true;
    return APG_OK;
}

/* ---- progress -------------------------------------------------------------- */

/* The smallest slot with a file, dflt when there is none below it. */
static int64_t first_slot(const struct apg_timer *tm, int64_t dflt)
{
    DIR *d = opendir(tm->tm_dir);
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

static void progress_load(struct apg_timer *tm)
{
    json_t *root = NULL;
    char err[512];
    apg_err_t e = apg_json_read_file(tm->tm_path, &root, err, sizeof(err));
    tm->tm_enq = 0;
    tm->tm_slot = apg_wall_ms() / tm->tm_prec;
    if (e == APG_ENOTFOUND)
        goto done;
    if (e) {
        apg_log_warn(SUB, "%s: %s; timers are re-read from the start of the timer queue",
                     tm->tm_path, err);
        tm->tm_slot = first_slot(tm, tm->tm_slot);
        goto done;
    }
    int64_t enq = apg_json_i64(json_object_get(root, "enqueueOffset"), -1);
    int64_t slot = apg_json_i64(json_object_get(root, "slot"), -1);
    int64_t done = apg_json_i64(json_object_get(root, "slotDone"), 0);
    int64_t cenq = apg_json_i64(json_object_get(root, "cancelOffset"), 0);
    json_decref(root);
    if (enq >= 0)
        tm->tm_enq = enq;
    if (cenq > 0)
        tm->tm_cenq = cenq;
    if (slot >= 0) {
        tm->tm_slot = slot;
        tm->tm_skip = done > 0 ? done : 0;
    }
done:
    tm->tm_w_enq = tm->tm_enq;
    tm->tm_w_cenq = tm->tm_cenq;
    tm->tm_w_slot = tm->tm_slot;
    tm->tm_w_pos = tm->tm_skip;
    tm->tm_unlinked = tm->tm_slot;
}

/* Makes the slot files written since the last call durable: fdatasync of
 * each (a file that is gone was delivered and unlinked), or one syncfs when
 * more than DIRTY_MAX were written (timers spread over many seconds). */
static bool slots_sync(struct apg_timer *tm)
{
    bool ok = true;
    if (tm->tm_dirty_all) {
        int fd = open(tm->tm_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ok = fd >= 0 && syncfs(fd) == 0;
        if (fd >= 0)
            close(fd);
    } else {
        for (int i = 0; i < tm->tm_ndirty && ok; i++) {
            char p[4096];
            slot_path(tm, tm->tm_dirty[i], p, sizeof(p));
            int fd = open(p, O_WRONLY | O_CLOEXEC);
            if (fd < 0)
                ok = errno == ENOENT;
            else {
                ok = fdatasync(fd) == 0;
                close(fd);
            }
        }
        if (ok && tm->tm_ndirty) {
            int fd = open(tm->tm_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            ok = fd >= 0 && fsync(fd) == 0; /* the new files' names */
            if (fd >= 0)
                close(fd);
        }
    }
    if (ok) {
        tm->tm_ndirty = 0;
        tm->tm_dirty_all = false;
    }
    return ok;
}

static void progress_write(struct apg_timer *tm, int64_t enq, int64_t slot, int64_t pos)
{
    /* Cancels are durable in their files before tm_cenq moves: no copy to
     * wait for, so the current offset is always written. */
    int64_t cenq = tm->tm_cenq;
    if (enq == tm->tm_w_enq && slot == tm->tm_w_slot && pos == tm->tm_w_pos &&
        cenq == tm->tm_w_cenq)
        return;
    if (!slots_sync(tm)) {
        apg_log_error(SUB, "syncing the slot files in %s failed: %s; progress not persisted",
                      tm->tm_dir, strerror(errno));
        return;
    }
    char buf[160], err[512] = "";
    int len = snprintf(buf, sizeof(buf),
                       "{\"enqueueOffset\":%lld,\"slot\":%lld,\"slotDone\":%lld,"
                       "\"cancelOffset\":%lld}",
                       (long long)enq, (long long)slot, (long long)pos, (long long)cenq);
    if (apg_file_write_atomic(tm->tm_path, buf, (size_t)len, err, sizeof(err))) {
        apg_log_error(SUB, "persisting %s failed: %s", tm->tm_path, err);
        return;
    }
    tm->tm_w_enq = enq;
    tm->tm_w_slot = slot;
    tm->tm_w_pos = pos;
    tm->tm_w_cenq = cenq;
    for (; tm->tm_unlinked < slot; tm->tm_unlinked++) {
        char p[4096];
        slot_path(tm, tm->tm_unlinked, p, sizeof(p));
        unlink(p);
        cancel_path(tm, tm->tm_unlinked, p, sizeof(p));
        unlink(p);
    }
}

static int64_t cur_done(const struct apg_timer *tm)
{
    return tm->tm_loaded ? (int64_t)tm->tm_pos : 0;
}

/* Every timerFlushIntervalMs: writes the progress if the store has flushed
 * every copy it covers, else the snapshot taken one interval ago once its
 * copies are flushed (copies made meanwhile must not hold the file back
 * for ever), and takes a new snapshot. */
static void persist(struct apg_timer *tm, int64_t now)
{
    if (now < tm->tm_next_persist)
        return;
    tm->tm_next_persist = now + tm->tm_flush_ms;
    struct apg_store_stats ss;
    apg_store_stats(tm->tm_st, &ss);
    if (ss.ss_flushed_phys_offset >= tm->tm_copied_end) {
        progress_write(tm, tm->tm_enq, tm->tm_slot, cur_done(tm));
        tm->tm_snap_set = false;
        return;
    }
    if (tm->tm_snap_set && ss.ss_flushed_phys_offset >= tm->tm_snap[3])
        progress_write(tm, tm->tm_snap[0], tm->tm_snap[1], tm->tm_snap[2]);
    tm->tm_snap[0] = tm->tm_enq;
    tm->tm_snap[1] = tm->tm_slot;
    tm->tm_snap[2] = cur_done(tm);
    tm->tm_snap[3] = tm->tm_copied_end;
    tm->tm_snap_set = true;
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

/* Reads the k (<= BATCH) parked records at commit-log offsets phys and
 * stores their copies. False when the store refused them (retry). */
static bool copy_records(struct apg_timer *tm, const int64_t *phys, int k, int64_t now)
{
    size_t offs[BATCH];
    int m = 0;
    apg_buf_reset(&tm->tm_one);
    for (int i = 0; i < k; i++) {
        offs[m] = tm->tm_one.b_len;
        if (apg_store_read_at(tm->tm_st, phys[i], &tm->tm_one) == APG_OK)
            m++;
        else
            apg_log_warn(SUB,
                         "the timer message at commit-log offset %lld is gone (retention?); "
                         "skipped",
                         (long long)phys[i]);
    }
    int c = 0;
    for (int i = 0; i < m; i++) {
        struct apg_msgrec rec;
        size_t len = (i + 1 < m ? offs[i + 1] : tm->tm_one.b_len) - offs[i];
        if (apg_msgrec_decode((const uint8_t *)tm->tm_one.b_data + offs[i], len, false, &rec,
                              NULL) != APG_MSGREC_OK)
            continue;
        if (cancelled(tm, &rec))
            atomic_fetch_add(&tm->tm_cancelled, 1);
        else if (add_copy(&rec, &tm->tm_msgs[c]))
            c++;
    }
    return put_copies(tm, c, now);
}

/* ---- enqueue --------------------------------------------------------------- */

enum { ENQ_DONE, ENQ_MORE, ENQ_RETRY };

/* Moves the timer queue's new records into slot files (or copies them when
 * due), reading only their consume-queue entries: the store keeps each
 * record's TIMER_OUT_MS there. ENQ_MORE when it stopped after PASS_MAX
 * records (a backlog: the next pass follows at once), ENQ_RETRY when it
 * must be retried later. */
static int enqueue(struct apg_timer *tm, int64_t now)
{
    int done = 0;
    while (done < PASS_MAX) {
        struct apg_cq_ref refs[BATCH];
        int64_t next;
        int n = apg_store_cq_read(tm->tm_st, APG_TIMER_TOPIC, APG_TIMER_TOPIC_LEN, 0, tm->tm_enq,
                                  BATCH, refs, &next);
        if (next > tm->tm_enq && (n == 0 || refs[0].cr_queue_offset != tm->tm_enq))
            apg_log_warn(SUB,
                         "timer queue offset %lld is below the queue's first; continuing at %lld",
                         (long long)tm->tm_enq, (long long)(n ? refs[0].cr_queue_offset : next));
        if (n == 0) {
            tm->tm_enq = next;
            return ENQ_DONE;
        }
        struct entry run[BATCH];
        int64_t run_slot = -1, due_now[BATCH];
        size_t nrun = 0;
        int k = 0;
        apg_err_t e = APG_OK;
        bool into_cur = false;
        for (int i = 0; i < n && !e; i++) {
            int64_t due = refs[i].cr_tags_code;
            int64_t slot = due / tm->tm_prec;
            /* A due record is copied now unless its slot is still ahead of
             * the cursor (a backlog re-read after a crash: its slot file may
             * hold it already, and the de-duplication then copies it once).
             * Not into the cursor slot once it is loaded or partly
             * delivered: an entry added there must fall due after every
             * entry already copied (slotDone counts a prefix). */
            bool ahead =
                slot > tm->tm_slot || (slot == tm->tm_slot && !tm->tm_loaded && tm->tm_skip == 0);
            if (due <= now && !ahead) {
                due_now[k++] = refs[i].cr_phys_offset;
                continue;
            }
            if (slot != run_slot && nrun) {
                e = slot_append(tm, run_slot, run, nrun);
                nrun = 0;
            }
            run_slot = slot;
            run[nrun++] = (struct entry){.e_due = due, .e_phys = refs[i].cr_phys_offset};
            /* The slot being delivered also takes it in memory. */
            if (tm->tm_loaded && slot <= tm->tm_slot && !e && !cur_reserve(tm, tm->tm_n + 1)) {
                tm->tm_cur[tm->tm_n++] = run[nrun - 1];
                into_cur = true;
            }
        }
        if (!e && nrun)
            e = slot_append(tm, run_slot, run, nrun);
        if (into_cur)
            cur_sort(tm);
        if (e) {
            apg_log_error(SUB, "writing timer slot files in %s failed: %s", tm->tm_dir,
                          apg_strerror(e));
            return ENQ_RETRY;
        }
        if (!copy_records(tm, due_now, k, now))
            return ENQ_RETRY;
        tm->tm_enq = next;
        done += n;
    }
    return ENQ_MORE;
}

/* Moves the cancel queue's new records into the cancel files of their
 * slots (and the loaded slot's tm_keys). ENQ_DONE or ENQ_RETRY. */
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
            int64_t slot = refs[i].cr_tags_code / tm->tm_prec;
            if (slot < tm->tm_slot)
                continue; /* that slot went out: nothing left to cancel */
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
            apg_err_t e = cancel_append(tm, slot, k, kl);
            if (!e && tm->tm_loaded && slot == tm->tm_slot)
                e = keys_add(tm, k, kl);
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

/* Copies the due entries of the loaded slot. False on a failure (retry). */
static bool deliver_due(struct apg_timer *tm, int64_t now)
{
    while (tm->tm_pos < tm->tm_n && tm->tm_cur[tm->tm_pos].e_due <= now) {
        int64_t phys[BATCH];
        int k = 0;
        size_t end = tm->tm_pos;
        while (end < tm->tm_n && k < BATCH && tm->tm_cur[end].e_due <= now)
            phys[k++] = tm->tm_cur[end++].e_phys;
        if (!copy_records(tm, phys, k, now))
            return false;
        tm->tm_pos = end;
    }
    return true;
}

/* Delivers every slot the clock has reached; returns the time of the next
 * thing to do. */
static int64_t deliver(struct apg_timer *tm, int64_t now)
{
    for (;;) {
        if (!tm->tm_loaded) {
            if (tm->tm_slot * tm->tm_prec > now)
                return tm->tm_slot * tm->tm_prec;
            apg_err_t e = slot_load(tm);
            if (e) {
                apg_log_error(SUB, "reading timer slot %lld in %s failed: %s",
                              (long long)tm->tm_slot, tm->tm_dir, apg_strerror(e));
                return now + RETRY_MS;
            }
        }
        if (!deliver_due(tm, now))
            return now + RETRY_MS;
        if (tm->tm_pos < tm->tm_n)
            return tm->tm_cur[tm->tm_pos].e_due;
        int64_t end = (tm->tm_slot + 1) * tm->tm_prec;
        if (end > now)
            return end;
        tm->tm_slot++;
        tm->tm_loaded = false;
        keys_clear(tm);
        tm->tm_n = tm->tm_pos = 0;
        if (tm->tm_cap > 65536) { /* a crowded second: give the memory back */
            apg_free(tm->tm_cur);
            tm->tm_cur = NULL;
            tm->tm_cap = 0;
        }
    }
}

static void *timer_main(void *arg)
{
    struct apg_timer *tm = arg;
    int64_t catchup_since = 0;
    pthread_mutex_lock(&tm->tm_lock);
    while (!tm->tm_stop) {
        tm->tm_kicked = false;
        pthread_mutex_unlock(&tm->tm_lock);
        int64_t now = apg_wall_ms();
        int enq = enqueue(tm, now);
        if (enqueue_cancels(tm) == ENQ_RETRY && enq == ENQ_DONE)
            enq = ENQ_RETRY;
        now = apg_wall_ms();
        /* With a backlog to park (a restart), park it before the cursor moves
         * on, so a re-read record lands in its slot file, not in a copy made
         * after its slot went out; but never hold deliveries up for more
         * than CATCHUP_MS. */
        if (enq != ENQ_MORE)
            catchup_since = 0;
        else if (catchup_since == 0)
            catchup_since = now;
        int64_t next = enq == ENQ_MORE && now - catchup_since < CATCHUP_MS ? now : deliver(tm, now);
        persist(tm, now);
        now = apg_wall_ms();
        int64_t wait = next - now;
        if (enq == ENQ_RETRY && wait > RETRY_MS)
            wait = RETRY_MS;
        if (enq == ENQ_MORE)
            wait = 0;
        if (wait > MAX_SLEEP_MS)
            wait = MAX_SLEEP_MS;
        pthread_mutex_lock(&tm->tm_lock);
        if (wait > 0 && !tm->tm_kicked && !tm->tm_stop)
            apg_cond_wait_ms(&tm->tm_cond, &tm->tm_lock, wait);
    }
    pthread_mutex_unlock(&tm->tm_lock);
    return NULL;
}

/* ---- open / start / stop --------------------------------------------------- */

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
    tm->tm_dir = apg_path_join(b->br_root, "timer/slots");
    tm->tm_path = apg_path_join(b->br_root, "config/timerProgress.json");
    apg_err_t e = tm->tm_dir && tm->tm_path ? apg_file_mkdir_p(tm->tm_dir, err, errlen)
                                            : apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    if (e) {
        apg_free(tm->tm_dir);
        apg_free(tm->tm_path);
        apg_free(tm);
        return e;
    }
    progress_load(tm);
    atomic_init(&tm->tm_delivered, 0);
    atomic_init(&tm->tm_cancelled, 0);
    pthread_mutex_init(&tm->tm_lock, NULL);
    pthread_cond_init(&tm->tm_cond, NULL);
    *out = tm;
    return APG_OK;
}

apg_err_t apg_timer_start(struct apg_timer *tm, char *err, size_t errlen)
{
    if (pthread_create(&tm->tm_thread, NULL, timer_main, tm) != 0)
        return apg_errf(APG_EIO, err, errlen, "cannot start the timer thread");
    tm->tm_started = true;
    return APG_OK;
}

void apg_timer_stop(struct apg_timer *tm)
{
    if (!tm)
        return;
    if (tm->tm_started) {
        pthread_mutex_lock(&tm->tm_lock);
        tm->tm_stop = true;
        pthread_cond_signal(&tm->tm_cond);
        pthread_mutex_unlock(&tm->tm_lock);
        pthread_join(tm->tm_thread, NULL);
        /* The store flushes every copy when it closes, right after this. */
        progress_write(tm, tm->tm_enq, tm->tm_slot, cur_done(tm));
    }
    pthread_mutex_destroy(&tm->tm_lock);
    pthread_cond_destroy(&tm->tm_cond);
    apg_buf_free(&tm->tm_one);
    apg_free(tm->tm_cur);
    keys_clear(tm);
    apg_free(tm->tm_keys);
    apg_free(tm->tm_dir);
    apg_free(tm->tm_path);
    apg_free(tm);
}

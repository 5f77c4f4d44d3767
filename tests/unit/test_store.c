/* Store behaviour tests: append/read, GetMessageStatus semantics, segment
 * rolling, reopen, SYNC_FLUSH group commit and fsync failure, disk guard,
 * retention, time search, message ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "common/config.h"
#include "store/store_fault.h"
#include "store/store_int.h"
#include "test_store_util.h"

static bool only_tag0(void *ud, int64_t tags)
{
    (void)ud;
    return tags == apg_java_hash("tag0", 4);
}

struct arrive {
    int calls;
    int64_t last_max;
    int32_t last_qid;
};

static void on_arrive(void *ud, const char *topic, size_t topic_len, int32_t qid, int64_t max)
{
    struct arrive *a = ud;
    a->calls++;
    a->last_max = max;
    a->last_qid = qid;
}

static void test_put_get(void **state)
{
    char *dir = tu_tmpdir();
    struct apg_store_opts o;
    tu_opts(&o, dir);
    struct apg_store *st;
    char err[512];
    assert_int_equal(apg_store_open(&o, &st, err, sizeof(err)), 0);

    struct apg_get_result r;
    struct apg_buf b = APG_BUF_INIT;
    assert_int_equal(apg_store_get(st, "T", 1, 0, 0, 32, 1 << 20, NULL, NULL, &b, &r), 0);
    assert_int_equal(r.gr_status, APG_GET_NO_MATCHED_LOGIC_QUEUE);

    struct arrive ar = {0, 0, -1};
    apg_store_set_arrive_hook(st, on_arrive, &ar);
    struct apg_put_result pr;
    for (int i = 0; i < 10; i++) {
        assert_int_equal(tu_put(st, "T", 0, i, &pr), 0);
        assert_int_equal(pr.pr_queue_offset, i);
    }
    assert_int_equal(ar.calls, 10);
    assert_int_equal(ar.last_max, 10);
    assert_int_equal(ar.last_qid, 0);
    /* A batch gets consecutive offsets. */
    struct tu_msg bm[3];
    struct apg_msg_in in[3];
    struct apg_put_result res[3];
    for (int i = 0; i < 3; i++) {
        tu_msg_make(&bm[i], "T", 0, 10 + i);
        in[i] = bm[i].m;
    }
    assert_int_equal(apg_store_put(st, in, 3, res, NULL, NULL, err, sizeof(err)), 0);
    assert_int_equal(res[0].pr_queue_offset, 10);
    assert_int_equal(res[2].pr_queue_offset, 12);
    assert_int_equal(ar.calls, 11); /* one call per (topic, queue) run of a batch */
    assert_int_equal(ar.last_max, 13);
    assert_int_equal(res[1].pr_phys_offset, res[0].pr_phys_offset + res[0].pr_msg_size);

    assert_int_equal(tu_count(st, "T", 0, 0), 13);
    assert_int_equal(apg_store_max_offset(st, "T", 1, 0), 13);
    assert_int_equal(apg_store_min_offset(st, "T", 1, 0), 0);

    assert_int_equal(apg_store_get(st, "T", 1, 0, 13, 32, 1 << 20, NULL, NULL, &b, &r), 0);
    assert_int_equal(r.gr_status, APG_GET_OFFSET_OVERFLOW_ONE);
    assert_int_equal(r.gr_next_begin_offset, 13);
    assert_int_equal(apg_store_get(st, "T", 1, 0, 20, 32, 1 << 20, NULL, NULL, &b, &r), 0);
    assert_int_equal(r.gr_status, APG_GET_OFFSET_OVERFLOW_BADLY);
    assert_int_equal(r.gr_next_begin_offset, 13); /* the end, not the start */
    assert_int_equal(apg_store_get(st, "T", 1, 1, 0, 32, 1 << 20, NULL, NULL, &b, &r), 0);
    assert_int_equal(r.gr_status, APG_GET_NO_MATCHED_LOGIC_QUEUE);

    /* Filter: only even messages (tag0). */
    apg_buf_reset(&b);
    assert_int_equal(apg_store_get(st, "T", 1, 0, 0, 4, 1 << 20, only_tag0, NULL, &b, &r), 0);
    assert_int_equal(r.gr_status, APG_GET_FOUND);
    assert_int_equal(r.gr_count, 4);
    assert_int_equal(r.gr_next_begin_offset, 7);
    /* Nothing matches from offset 1 to 1 message: odd one only. */
    apg_buf_reset(&b);
    assert_int_equal(apg_store_get(st, "T", 1, 0, 12, 4, 1 << 20, only_tag0, NULL, &b, &r), 0);
    assert_int_equal(r.gr_status, APG_GET_FOUND);
    apg_buf_reset(&b);
    assert_int_equal(apg_store_get(st, "T", 1, 0, 11, 1, 1 << 20, only_tag0, NULL, &b, &r), 0);
    assert_int_equal(r.gr_count, 1);
    assert_int_equal(r.gr_first_queue_offset, 12);

    /* max_bytes: the first record always, then stop. */
    apg_buf_reset(&b);
    assert_int_equal(apg_store_get(st, "T", 1, 0, 0, 32, 10, NULL, NULL, &b, &r), 0);
    assert_int_equal(r.gr_count, 1);
    assert_int_equal(r.gr_next_begin_offset, 1);

    /* The bytes served are the bytes stored: decode the first record. */
    struct apg_msgrec m;
    assert_int_equal(apg_msgrec_decode(b.b_data, b.b_len, true, &m, NULL), APG_MSGREC_OK);
    assert_int_equal(m.mr_queue_id, 0);
    assert_int_equal(m.mr_born_host.h_port, 5555);
    assert_int_equal(m.mr_store_host.h_port, 10911);
    assert_memory_equal(m.mr_topic, "T", 1);

    /* read_at + msgId round trip. */
    char id[64];
    assert_int_equal(apg_msgid_encode(&o.so_store_host, res[1].pr_phys_offset, id, sizeof(id)), 32);
    struct apg_host h;
    int64_t phys;
    assert_int_equal(apg_msgid_decode(id, 32, &h, &phys), 0);
    assert_int_equal(phys, res[1].pr_phys_offset);
    assert_int_equal(h.h_port, 10911);
    assert_int_equal(h.h_ip[0], 127);
    apg_buf_reset(&b);
    assert_int_equal(apg_store_read_at(st, phys, &b), 0);
    assert_int_equal(b.b_len, (size_t)res[1].pr_msg_size);
    assert_int_equal(apg_store_read_at(st, phys + 1, &b), APG_ENOTFOUND);

    /* Transaction half message: no queue entry, queue offset 0. */
    struct tu_msg hm;
    tu_msg_make(&hm, "T", 0, 99);
    hm.m.mi_sysflag = APG_SYSFLAG_TX_PREPARED;
    assert_int_equal(apg_store_put(st, &hm.m, 1, &pr, NULL, NULL, err, sizeof(err)), 0);
    assert_int_equal(pr.pr_queue_offset, 0);
    assert_int_equal(apg_store_max_offset(st, "T", 1, 0), 13);

    /* Validation errors. */
    hm.m.mi_topic_len = 0;
    assert_int_equal(apg_store_put(st, &hm.m, 1, &pr, NULL, NULL, err, sizeof(err)), APG_EINVAL);

    apg_buf_free(&b);
    apg_store_close(st);
    tu_rmrf(dir);
    free(dir);
}

static void test_roll_and_reopen(void **state)
{
    char *dir = tu_tmpdir();
    struct apg_store_opts o;
    tu_opts(&o, dir);
    struct apg_store *st;
    char err[512];
    assert_int_equal(apg_store_open(&o, &st, err, sizeof(err)), 0);
    /* ~120-byte records in 64 KiB segments: 2000 records span 4 segments and
     * 20 consume-queue files of 100 entries. */
    for (int i = 0; i < 2000; i++)
        assert_int_equal(tu_put(st, "Roll", 3, i, NULL), 0);
    assert_int_equal(tu_count(st, "Roll", 3, 0), 2000);
    struct apg_store_stats ss;
    apg_store_stats(st, &ss);
    assert_true(ss.ss_max_phys_offset > 3 * 65536);
    apg_store_close(st);

    assert_int_equal(apg_store_open(&o, &st, err, sizeof(err)), 0);
    assert_int_equal(tu_count(st, "Roll", 3, 0), 2000);
    struct apg_put_result pr;
    assert_int_equal(tu_put(st, "Roll", 3, 2000, &pr), 0);
    assert_int_equal(pr.pr_queue_offset, 2000);
    /* A second open of the same store is refused while it is open. */
    struct apg_store *st2;
    assert_int_equal(apg_store_open(&o, &st2, err, sizeof(err)), APG_EBUSY);
    apg_store_close(st);
    tu_rmrf(dir);
    free(dir);
}

static void test_crash_reopen(void **state)
{
    /* Crash simulated by leaving the abort marker and removing the
     * checkpoint: recovery must scan everything and rebuild the queues. */
    char *dir = tu_tmpdir();
    struct apg_store_opts o;
    tu_opts(&o, dir);
    struct apg_store *st;
    char err[512], path[600];
    assert_int_equal(apg_store_open(&o, &st, err, sizeof(err)), 0);
    for (int i = 0; i < 700; i++)
        assert_int_equal(tu_put(st, "C", i % 2, i, NULL), 0);
    apg_store_close(st);
    snprintf(path, sizeof(path), "%s/abort", dir);
    FILE *f = fopen(path, "w");
    fclose(f);
    snprintf(path, sizeof(path), "%s/checkpoint", dir);
    unlink(path);
    snprintf(path, sizeof(path), "rm -rf '%s/consumequeue/C/1'", dir);
    assert_int_equal(system(path), 0);
    assert_int_equal(apg_store_open(&o, &st, err, sizeof(err)), 0);
    assert_int_equal(apg_store_max_offset(st, "C", 1, 0), 350);
    assert_int_equal(apg_store_max_offset(st, "C", 1, 1), 350);
    apg_store_close(st);
    tu_rmrf(dir);
    free(dir);
}

struct ackc {
    pthread_mutex_t mtx;
    _Atomic int acked, failed, timedout; /* read by the test thread without mtx */
};

static void ack_cb(void *ud, apg_err_t rc)
{
    struct ackc *a = ud;
    pthread_mutex_lock(&a->mtx);
    if (rc == 0)
        a->acked++;
    else if (rc == APG_ETIMEDOUT)
        a->timedout++;
    else
        a->failed++;
    pthread_mutex_unlock(&a->mtx);
}

/* Opens a SYNC_FLUSH store with the small test geometry in dir. */
static struct apg_store *open_sync_flush(const char *dir, struct apg_store_opts *o)
{
    tu_opts(o, dir);
    o->so_sync_flush = true;
    struct apg_store *st = NULL;
    char err[512];
    assert_int_equal(apg_store_open(o, &st, err, sizeof(err)), 0);
    return st;
}

static void test_sync_flush(void **state)
{
    char *dir = tu_tmpdir();
    struct apg_store_opts o;
    struct apg_store *st = open_sync_flush(dir, &o);
    char err[512];
    struct ackc a = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0};
    struct apg_store_stats s0, s1;
    apg_store_stats(st, &s0);
    struct tu_msg t;
    struct apg_put_result pr;
    for (int i = 0; i < 200; i++) {
        tu_msg_make(&t, "S", 0, i);
        assert_int_equal(apg_store_put(st, &t.m, 1, &pr, ack_cb, &a, err, sizeof(err)), 0);
    }
    /* Blocking variant (no callback) returns once durable. */
    assert_int_equal(tu_put(st, "S", 0, 200, &pr), 0);
    apg_store_stats(st, &s1);
    assert_true(s1.ss_flushed_phys_offset >= pr.pr_phys_offset + pr.pr_msg_size);
    for (int k = 0; k < 100 && a.acked < 200; k++)
        usleep(10000);
    assert_int_equal(a.acked, 200);
    /* Group commit: far fewer syncs than puts. */
    assert_true(s1.ss_fsync_count - s0.ss_fsync_count < 150);

    /* One failed fsync: pending put fails, later puts are refused, reads work. */
    apg_store_fault_arm();
    assert_int_equal(apg_store_fault_fail_next_fsync(st), 0);
    tu_msg_make(&t, "S", 0, 201);
    assert_int_equal(apg_store_put(st, &t.m, 1, &pr, ack_cb, &a, err, sizeof(err)), 0);
    for (int k = 0; k < 100 && a.failed < 1; k++)
        usleep(10000);
    assert_int_equal(a.failed, 1);
    assert_int_equal(tu_put(st, "S", 0, 202, NULL), APG_EFSYNC);
    apg_store_stats(st, &s1);
    assert_false(s1.ss_writable);
    assert_true(s1.ss_fsync_failed);
    assert_non_null(strstr(s1.ss_last_error, "flush failed"));
    assert_int_equal(tu_count(st, "S", 0, 0), 202);
    apg_store_close(st);
    /* The next start recovers (crash path) and is writable again. */
    assert_int_equal(apg_store_open(&o, &st, err, sizeof(err)), 0);
    assert_int_equal(tu_count(st, "S", 0, 0), 202);
    assert_int_equal(tu_put(st, "S", 0, 202, NULL), 0);
    apg_store_close(st);
    tu_rmrf(dir);
    free(dir);
}

/* The commit-log msyncs the sync hook saw, in the order they returned. */
#define SYNC_LOG_CAP 8192
struct sync_log {
    pthread_mutex_t mtx;
    struct {
        int64_t lo, hi;
        int flags;
    } r[SYNC_LOG_CAP];
    _Atomic int n; /* entries below n are complete */
    _Atomic bool overflow;
};

static void on_sync(void *ud, const struct apg_store_fault_sync *s)
{
    struct sync_log *l = ud;
    if (s->fs_rc != 0 || !strstr(s->fs_path, "/commitlog/"))
        return;
    pthread_mutex_lock(&l->mtx);
    int n = atomic_load(&l->n);
    if (n < SYNC_LOG_CAP) {
        l->r[n].lo = s->fs_base + (int64_t)s->fs_from;
        l->r[n].hi = s->fs_base + (int64_t)s->fs_to;
        l->r[n].flags = s->fs_flags;
        atomic_store(&l->n, n + 1);
    } else {
        atomic_store(&l->overflow, true);
    }
    pthread_mutex_unlock(&l->mtx);
}

/* One SYNC_FLUSH put and what the log held when it was acknowledged. */
struct synced_put {
    struct apg_put_result pr;
    struct sync_log *log;
    _Atomic int syncs_before_ack; /* -1 until the ack */
    _Atomic int rc;
};

static void on_synced_ack(void *ud, apg_err_t rc)
{
    struct synced_put *p = ud;
    atomic_store(&p->rc, rc);
    atomic_store(&p->syncs_before_ack, atomic_load(&p->log->n));
}

/* True when [lo, hi) lies in the union of the first k logged ranges that
 * were synced with MS_SYNC. */
static bool ms_sync_covers(const struct sync_log *l, int k, int64_t lo, int64_t hi)
{
    bool progress = true;
    while (lo < hi && progress) {
        progress = false;
        for (int j = 0; j < k && lo < hi; j++)
            if ((l->r[j].flags & MS_SYNC) && l->r[j].lo <= lo && lo < l->r[j].hi) {
                lo = l->r[j].hi;
                progress = true;
            }
    }
    return lo >= hi;
}

/* SYNC_FLUSH acknowledges a record only after an msync with MS_SYNC covered
 * all of its bytes: the hook records the flags and range of every msync as
 * it returns, each ack notes how many had returned, and afterwards every
 * acknowledged record must lie in the MS_SYNC ranges logged before its ack.
 * Small segments make the records span several files. */
static void test_sync_flush_ranges(void **state)
{
    enum { N = 3000 };
    char *dir = tu_tmpdir();
    struct apg_store_opts o;
    struct apg_store *st = open_sync_flush(dir, &o);
    char err[512];
    struct sync_log *l = calloc(1, sizeof(*l));
    pthread_mutex_init(&l->mtx, NULL);
    apg_store_fault_arm();
    assert_int_equal(apg_store_fault_on_sync(st, on_sync, l), 0);
    struct synced_put *p = calloc(N, sizeof(*p));
    struct tu_msg t;
    for (int i = 0; i < N; i++) {
        p[i].log = l;
        atomic_store(&p[i].syncs_before_ack, -1);
        tu_msg_make(&t, "R", i % 4, i);
        assert_int_equal(
            apg_store_put(st, &t.m, 1, &p[i].pr, on_synced_ack, &p[i], err, sizeof(err)), 0);
        if (i % 100 == 99)
            usleep(2000); /* let several group commits happen */
    }
    for (int k = 0; k < 500 && atomic_load(&p[N - 1].syncs_before_ack) < 0; k++)
        usleep(10000);
    apg_store_close(st);
    assert_int_equal(apg_store_fault_on_sync(NULL, NULL, NULL), 0);
    assert_false(atomic_load(&l->overflow));
    assert_true(p[N - 1].pr.pr_phys_offset > 4 * (int64_t)o.so_commitlog_file_size);
    int bad = 0;
    for (int i = 0; i < N; i++) {
        int k = atomic_load(&p[i].syncs_before_ack);
        assert_true(k >= 0);
        assert_int_equal(atomic_load(&p[i].rc), 0);
        int64_t lo = p[i].pr.pr_phys_offset, hi = lo + p[i].pr.pr_msg_size;
        if (!ms_sync_covers(l, k, lo, hi) && bad++ < 3)
            fprintf(
                stderr,
                "record %d [%lld, %lld) acknowledged after %d msyncs, not all covered by MS_SYNC\n",
                i, (long long)lo, (long long)hi, k);
    }
    assert_int_equal(bad, 0);
    free(p);
    free(l);
    tu_rmrf(dir);
    free(dir);
}

/* The fault hooks are inert until armed. Runs first (cmocka runs tests in
 * order; the gate is process-wide). */
static void test_fault_gate(void **state)
{
    if (getenv("APOGEE_STORE_FAULTS"))
        skip();
    char *dir = tu_tmpdir();
    struct apg_store_opts o;
    tu_opts(&o, dir);
    struct apg_store *st;
    char err[512];
    assert_int_equal(apg_store_open(&o, &st, err, sizeof(err)), 0);
    assert_false(apg_store_fault_armed());
    assert_int_equal(apg_store_fault_disk_ratio(st, 99), APG_EPERM);
    assert_int_equal(apg_store_fault_fail_next_fsync(st), APG_EPERM);
    assert_int_equal(apg_store_fault_on_sync(st, on_sync, NULL), APG_EPERM);
    assert_int_equal(tu_put(st, "G", 0, 0, NULL), 0); /* nothing was injected */
    apg_store_fault_arm();
    assert_true(apg_store_fault_armed());
    assert_int_equal(apg_store_fault_disk_ratio(st, 99), 0);
    assert_int_equal(tu_put(st, "G", 0, 1, NULL), APG_EDISKFULL);
    assert_int_equal(apg_store_fault_disk_ratio(st, -1), 0);
    apg_store_close(st);
    tu_rmrf(dir);
    free(dir);
}

static void test_disk_guard(void **state)
{
    char *dir = tu_tmpdir();
    struct apg_store_opts o;
    tu_opts(&o, dir);
    struct apg_store *st;
    char err[512];
    assert_int_equal(apg_store_open(&o, &st, err, sizeof(err)), 0);
    assert_int_equal(tu_put(st, "D", 0, 0, NULL), 0);
    apg_store_fault_arm();
    assert_int_equal(apg_store_fault_disk_ratio(st, 93), 0);
    struct tu_msg t;
    struct apg_put_result pr;
    tu_msg_make(&t, "D", 0, 1);
    assert_int_equal(apg_store_put(st, &t.m, 1, &pr, NULL, NULL, err, sizeof(err)), APG_EDISKFULL);
    assert_non_null(strstr(err, "93%"));
    assert_non_null(strstr(err, "diskSpaceWarningLevelRatio=90"));
    assert_int_equal(tu_count(st, "D", 0, 0), 1); /* reads continue */
    assert_int_equal(apg_store_fault_disk_ratio(st, 50), 0);
    assert_int_equal(tu_put(st, "D", 0, 1, NULL), 0);
    apg_store_close(st);
    tu_rmrf(dir);
    free(dir);
}

static void test_retention(void **state)
{
    char *dir = tu_tmpdir();
    struct apg_store_opts o;
    tu_opts(&o, dir);
    o.so_file_reserved_hours = 0;
    struct apg_store *st;
    char err[512];
    assert_int_equal(apg_store_open(&o, &st, err, sizeof(err)), 0);
    for (int i = 0; i < 2000; i++)
        assert_int_equal(tu_put(st, "R", 0, i, NULL), 0);
    usleep(200000); /* let the flush thread make it durable */
    sleep(1);       /* mtime granularity */
    int removed = apg_store_clean_now(st);
    assert_true(removed >= 2);
    int64_t min = apg_store_min_offset(st, "R", 1, 0);
    assert_true(min > 0);
    struct apg_get_result r;
    struct apg_buf b = APG_BUF_INIT;
    assert_int_equal(apg_store_get(st, "R", 1, 0, 0, 32, 1 << 20, NULL, NULL, &b, &r), 0);
    assert_int_equal(r.gr_status, APG_GET_OFFSET_TOO_SMALL);
    assert_int_equal(r.gr_next_begin_offset, min);
    assert_int_equal(tu_count(st, "R", 0, (int)min), 2000 - min);
    apg_buf_free(&b);
    apg_store_close(st);
    /* Min offsets survive a restart. */
    assert_int_equal(apg_store_open(&o, &st, err, sizeof(err)), 0);
    assert_int_equal(apg_store_min_offset(st, "R", 1, 0), min);
    assert_int_equal(tu_count(st, "R", 0, (int)min), 2000 - min);
    apg_store_close(st);
    tu_rmrf(dir);
    free(dir);
}

/* Unexpired segments survive a nearly full disk unless cleanFileForciblyEnable is
 * set; with it the oldest ones go (at most ten per pass) and reads move past them. */
static void test_retention_forcibly_opt_in(void **state)
{
    char *dir = tu_tmpdir();
    struct apg_store_opts o;
    tu_opts(&o, dir);
    struct apg_store *st;
    char err[512];
    assert_int_equal(apg_store_open(&o, &st, err, sizeof(err)), 0);
    for (int i = 0; i < 2000; i++)
        assert_int_equal(tu_put(st, "F", 0, i, NULL), 0);
    usleep(200000); /* let the flush thread make it durable */
    apg_store_fault_arm();
    assert_int_equal(apg_store_fault_disk_ratio(st, 97), 0);
    assert_int_equal(apg_store_clean_now(st), 0);
    assert_int_equal(apg_store_min_offset(st, "F", 1, 0), 0);
    assert_int_equal(tu_count(st, "F", 0, 0), 2000);
    apg_store_close(st);

    o.so_clean_forcibly = true;
    assert_int_equal(apg_store_open(&o, &st, err, sizeof(err)), 0);
    assert_int_equal(apg_store_fault_disk_ratio(st, 97), 0);
    int removed = apg_store_clean_now(st);
    assert_true(removed >= 1 && removed <= 10);
    int64_t min = apg_store_min_offset(st, "F", 1, 0);
    assert_true(min > 0);
    assert_int_equal(tu_count(st, "F", 0, (int)min), 2000 - min);
    /* Below diskSpaceCleanForciblyRatio nothing unexpired goes, even opted in. */
    assert_int_equal(apg_store_fault_disk_ratio(st, 80), 0);
    assert_int_equal(apg_store_clean_now(st), 0);
    assert_int_equal(apg_store_fault_disk_ratio(st, -1), 0);
    apg_store_close(st);
    tu_rmrf(dir);
    free(dir);
}

static void test_time_search(void **state)
{
    char *dir = tu_tmpdir();
    struct apg_store_opts o;
    tu_opts(&o, dir);
    struct apg_store *st;
    char err[512];
    assert_int_equal(apg_store_open(&o, &st, err, sizeof(err)), 0);
    struct apg_put_result pr[3];
    assert_int_equal(tu_put(st, "Q", 0, 0, &pr[0]), 0);
    usleep(20000);
    assert_int_equal(tu_put(st, "Q", 0, 1, &pr[1]), 0);
    usleep(20000);
    assert_int_equal(tu_put(st, "Q", 0, 2, &pr[2]), 0);
    /* Lower boundary: first record at or after ts; max offset past the end. */
    assert_int_equal(apg_store_offset_by_time(st, "Q", 1, 0, 0, false), 0);
    assert_int_equal(apg_store_offset_by_time(st, "Q", 1, 0, pr[1].pr_store_ts, false), 1);
    assert_int_equal(apg_store_offset_by_time(st, "Q", 1, 0, pr[1].pr_store_ts + 1, false), 2);
    assert_int_equal(apg_store_offset_by_time(st, "Q", 1, 0, pr[2].pr_store_ts + 1000, false), 3);
    /* Upper boundary: last record at or before ts; the min offset before the start. */
    assert_int_equal(apg_store_offset_by_time(st, "Q", 1, 0, 0, true), 0);
    assert_int_equal(apg_store_offset_by_time(st, "Q", 1, 0, pr[1].pr_store_ts, true), 1);
    assert_int_equal(apg_store_offset_by_time(st, "Q", 1, 0, pr[1].pr_store_ts + 1, true), 1);
    assert_int_equal(apg_store_offset_by_time(st, "Q", 1, 0, pr[2].pr_store_ts + 1000, true), 2);
    assert_int_equal(apg_store_offset_by_time(st, "Q", 1, 9, 1, true), 0); /* unknown queue */
    assert_int_equal(apg_store_earliest_msg_time(st, "Q", 1, 0), pr[0].pr_store_ts);
    assert_int_equal(apg_store_delete_topic(st, "Q", 1), 0);
    assert_int_equal(apg_store_max_offset(st, "Q", 1, 0), 0);
    apg_store_close(st);
    tu_rmrf(dir);
    free(dir);
}

static void test_msg_codec(void **state)
{
    struct tu_msg t;
    tu_msg_make(&t, "TopicX", 2, 5);
    t.m.mi_born_host.h_v6 = true;
    struct apg_host sh = {.h_v6 = true, .h_port = 10911};
    sh.h_ip[15] = 1;
    size_t n = apg_msgrec_size(&t.m, true);
    assert_int_equal(n, 91 + 24 + t.m.mi_body_len + 6 + t.m.mi_props_len);
    uint8_t buf[512];
    apg_msgrec_encode(buf, &t.m, apg_rmq_crc32(t.body, t.m.mi_body_len), 7, 4096, 123, &sh);
    struct apg_msgrec r;
    assert_int_equal(apg_msgrec_decode(buf, n, true, &r, NULL), APG_MSGREC_OK);
    assert_true(r.mr_sysflag & APG_SYSFLAG_BORNHOST_V6);
    assert_true(r.mr_store_host.h_v6);
    assert_int_equal(r.mr_queue_offset, 7);
    assert_int_equal(r.mr_store_ts, 123);
    const char *why;
    assert_int_equal(apg_msgrec_decode(buf, n - 1, true, &r, &why), APG_MSGREC_BAD);
    buf[n - 3] ^= 1; /* props byte: no CRC over props, still valid */
    assert_int_equal(apg_msgrec_decode(buf, n, true, &r, NULL), APG_MSGREC_OK);
    buf[100] ^= 0x55; /* body byte (v6 header is 112 bytes... body starts at 112) */
    buf[113] ^= 0x55;
    assert_int_equal(apg_msgrec_decode(buf, n, true, &r, &why), APG_MSGREC_BAD);
    char id[80];
    assert_int_equal(apg_msgid_encode(&sh, 255, id, sizeof(id)), 56);
    struct apg_host h2;
    int64_t off;
    assert_int_equal(apg_msgid_decode(id, 56, &h2, &off), 0);
    assert_int_equal(off, 255);
    assert_true(h2.h_v6);
    assert_int_equal(apg_msgid_decode("XYZ", 3, &h2, &off), APG_EINVAL);
}

/* Readers racing an appender that writes batches mixing two queues: a
 * reader must never step over a record whose queue entry it saw before the
 * record itself was published (the coalesced-send path writes such batches). */
#define RACE_PER_Q 20000
static struct apg_store *race_st;
static _Atomic bool race_failed;

static void *race_writer(void *arg)
{
    (void)arg;
    int next[2] = {0, 0};
    while (next[0] < RACE_PER_Q || next[1] < RACE_PER_Q) {
        struct tu_msg m[8];
        struct apg_msg_in in[8];
        struct apg_put_result pr[8];
        int n = 0;
        for (int k = 0; k < 8; k++) {
            int q = (k * 5 + next[0]) % 2; /* an irregular mix of the two queues */
            if (next[q] >= RACE_PER_Q)
                q = 1 - q;
            if (next[q] >= RACE_PER_Q)
                break;
            tu_msg_make(&m[n], "Race", q, next[q]++);
            in[n] = m[n].m;
            n++;
        }
        char err[256];
        if (apg_store_put(race_st, in, n, pr, NULL, NULL, err, sizeof(err)) != APG_OK) {
            atomic_store(&race_failed, true);
            break;
        }
    }
    return NULL;
}

static void *race_reader(void *arg)
{
    int q = (int)(long)arg;
    int64_t off = 0;
    int want = 0;
    while (want < RACE_PER_Q && !atomic_load(&race_failed)) {
        struct apg_buf b = APG_BUF_INIT;
        struct apg_get_result r;
        if (apg_store_get(race_st, "Race", 4, q, off, 32, 1 << 20, NULL, NULL, &b, &r)) {
            atomic_store(&race_failed, true);
            break;
        }
        size_t p = 0;
        for (int k = 0; k < r.gr_count; k++) {
            struct apg_msgrec m;
            char exp[32];
            snprintf(exp, sizeof(exp), "msg-%d", want);
            if (apg_msgrec_decode(b.b_data + p, b.b_len - p, true, &m, NULL) != APG_MSGREC_OK ||
                m.mr_body_len != strlen(exp) || memcmp(m.mr_body, exp, m.mr_body_len) != 0) {
                fprintf(stderr, "queue %d: expected %s at offset %lld\n", q, exp,
                        (long long)(off + k));
                atomic_store(&race_failed, true);
                break;
            }
            p += m.mr_total_size;
            want++;
        }
        if (r.gr_status == APG_GET_FOUND || r.gr_status == APG_GET_NO_MATCHED_MESSAGE ||
            r.gr_status == APG_GET_MESSAGE_WAS_REMOVING)
            off = r.gr_next_begin_offset;
        if (off != want) {
            fprintf(stderr, "queue %d: next offset %lld after %d records (%s)\n", q, (long long)off,
                    want, apg_get_status_name(r.gr_status));
            atomic_store(&race_failed, true);
        }
        apg_buf_free(&b);
    }
    return NULL;
}

/* Recovery derives the tags code from the stored properties with the shared
 * property codec, so it agrees with the code the broker computed on the put
 * path: the last TAGS pair wins, and a pair with an empty value is no tag. */
static void test_dispatch_tags_code(void **state)
{
    (void)state;
    static const char two[] = "TAGS\x01"
                              "a\x02"
                              "TAGS\x01"
                              "b\x02";
    assert_int_equal(apg_dispatch_tags_code(two, sizeof two - 1), (int64_t)apg_java_hash("b", 1));
    static const char one[] = "KEYS\x01"
                              "k\x02"
                              "TAGS\x01"
                              "TagA";
    assert_int_equal(apg_dispatch_tags_code(one, sizeof one - 1),
                     (int64_t)apg_java_hash("TagA", 4));
    static const char empty[] = "TAGS\x01\x02"
                                "KEYS\x01"
                                "k\x02";
    assert_int_equal(apg_dispatch_tags_code(empty, sizeof empty - 1), 0);
    assert_int_equal(apg_dispatch_tags_code("", 0), 0);
}

static void test_readers_never_skip(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    struct apg_store_opts o;
    tu_opts(&o, dir);
    o.so_commitlog_file_size = 1 << 20;
    o.so_cq_file_size = 20 * 4096;
    char err[512];
    assert_int_equal(apg_store_open(&o, &race_st, err, sizeof(err)), 0);
    atomic_store(&race_failed, false);
    pthread_t w, r[2];
    pthread_create(&r[0], NULL, race_reader, (void *)0L);
    pthread_create(&r[1], NULL, race_reader, (void *)1L);
    pthread_create(&w, NULL, race_writer, NULL);
    pthread_join(w, NULL);
    pthread_join(r[0], NULL);
    pthread_join(r[1], NULL);
    assert_false(atomic_load(&race_failed));
    apg_store_close(race_st);
    tu_rmrf(dir);
    free(dir);
}

static void test_opts_from_config(void **state)
{
    struct apg_config *cfg = apg_config_new(APG_ROLE_BROKER);
    char err[256];
    assert_int_equal(
        apg_config_set(cfg, "flushDiskType", "SYNC_FLUSH", APG_CFG_SRC_ARG, err, sizeof(err)), 0);
    assert_int_equal(
        apg_config_set(cfg, "brokerIP1", "10.1.2.3", APG_CFG_SRC_ARG, err, sizeof(err)), 0);
    assert_int_equal(apg_config_set(cfg, "deleteWhen", "04;16", APG_CFG_SRC_ARG, err, sizeof(err)),
                     0);
    struct apg_store_opts o;
    apg_store_opts_from_config(&o, cfg);
    assert_true(o.so_sync_flush);
    assert_int_equal(o.so_commitlog_file_size, 1073741824ull);
    assert_int_equal(o.so_cq_file_size, 6000000);
    assert_int_equal(o.so_store_host.h_ip[0], 10);
    assert_int_equal(o.so_store_host.h_ip[3], 3);
    assert_int_equal(o.so_store_host.h_port, 10911);
    assert_string_equal(o.so_delete_when, "04;16");
    assert_int_equal(o.so_disk_warning_ratio, 90);
    assert_true(o.so_check_crc_on_recover);
    apg_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fault_gate),
        cmocka_unit_test(test_msg_codec),
        cmocka_unit_test(test_put_get),
        cmocka_unit_test(test_roll_and_reopen),
        cmocka_unit_test(test_crash_reopen),
        cmocka_unit_test(test_sync_flush),
        cmocka_unit_test(test_sync_flush_ranges),
        cmocka_unit_test(test_disk_guard),
        cmocka_unit_test(test_retention),
        cmocka_unit_test(test_retention_forcibly_opt_in),
        cmocka_unit_test(test_time_search),
        cmocka_unit_test(test_opts_from_config),
        cmocka_unit_test(test_readers_never_skip),
        cmocka_unit_test(test_dispatch_tags_code),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

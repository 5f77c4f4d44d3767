/* Store micro-benchmark.
 *
 *   bench_store [all|async128|async1k|sync64|index|recover] [-n RECORDS] [-g GIB]
 *               [-t THREADS] [-w MIB] [-d DIR] [-i 0|1]
 *
 * -w MIB: warm-ahead window; the async benches wait until that much page cache
 * is faulted in before timing (appends "into the page cache" without the cost
 * of first-touching fresh memory, which on this Firecracker VM is a host fault).
 *
 * async128  ASYNC_FLUSH, one thread, 128-byte bodies: records/s
 * async1k   ASYNC_FLUSH, one thread, 1 KiB bodies: records/s and GB/s of records
 * sync64    SYNC_FLUSH, 1 KiB bodies, 3 s each: acknowledged records/s, fdatasync (msync)
 *           calls per second, context switches and CPU time per ack, for
 *           64 (-t) threads each with one put in flight (ack_cb + own condvar),
 *           the same threads blocking in apg_store_put (no ack_cb), and 64 puts in
 *           flight from 4 threads via callbacks (how the broker uses the store)
 * index     ASYNC_FLUSH, one thread, 128-byte bodies with distinct KEYS and UNIQ_KEY:
 *           put rate with the index off and on, then 10,000 random lookups by key
 *           (mean, p50, p99, worst latency), then the store is reopened, its files
 *           dropped from the page cache, and 1,000 "cold" lookups timed the same way;
 *           -n RECORDS (default 2,000,000)
 * -i 0      the other modes without the index (messageIndexEnable=false)
 * recover   a child appends GIB GiB (default 4) and is killed with SIGKILL (abort
 *           marker left, checkpoint as of its last flush); the parent times
 *           apg_store_open() = crash recovery
 * Each mode uses a fresh temp dir under /tmp (or -d DIR) and removes it. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "store/store.h"

static const char *g_base = "/tmp";
static int g_warm_mb;   /* -w: fault this much page cache in before timing */
static int g_index = 1; /* -i 0: messageIndexEnable=false */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Context switches of the whole process so far (voluntary + involuntary). */
static long ctx_switches(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_nvcsw + ru.ru_nivcsw;
}

/* CPU time (user + system) of the whole process so far, microseconds. */
static double cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 + ru.ru_utime.tv_usec +
           ru.ru_stime.tv_usec;
}

static char *mkdir_tmp(void)
{
    char *p = malloc(512);
    snprintf(p, 512, "%s/apg_bench_store_XXXXXX", g_base);
    if (!mkdtemp(p)) {
        perror("mkdtemp");
        exit(1);
    }
    return p;
}

static void rmrf(const char *d)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", d);
}

static struct apg_store *open_store(const char *dir, bool sync)
{
    struct apg_store_opts o;
    apg_store_opts_init(&o);
    o.so_root_dir = dir;
    o.so_sync_flush = sync;
    o.so_no_index = !g_index;
    if (g_warm_mb)
        o.so_warm_ahead_mb = (uint32_t)g_warm_mb;
    struct apg_store *st;
    char err[1024];
    if (apg_store_open(&o, &st, err, sizeof(err))) {
        fprintf(stderr, "open: %s\n", err);
        exit(1);
    }
    return st;
}

static void msg_init(struct apg_msg_in *m, uint8_t *body, size_t len, int qid)
{
    memset(m, 0, sizeof(*m));
    m->mi_topic = "BenchTopic";
    m->mi_topic_len = 10;
    m->mi_queue_id = qid;
    m->mi_body = body;
    m->mi_body_len = len;
    m->mi_props = "TAGS\001a\002UNIQ_KEY\0017F000001000000000000000000000000\002";
    m->mi_props_len = strlen(m->mi_props);
    m->mi_born_host.h_ip[0] = 127;
    m->mi_born_host.h_ip[3] = 1;
}

static void bench_async(size_t body_len, long n)
{
    char *dir = mkdir_tmp();
    struct apg_store *st = open_store(dir, false);
    uint8_t *body = malloc(body_len);
    memset(body, 'b', body_len);
    struct apg_msg_in m;
    msg_init(&m, body, body_len, 0);
    struct apg_put_result r;
    char err[256];
    usleep(300000); /* let the preallocator prepare the next segment */
    if (g_warm_mb) {
        /* Measure appends into page cache that is already faulted in. */
        struct apg_store_stats ss;
        for (int k = 0; k < 600; k++) {
            apg_store_stats(st, &ss);
            if (ss.ss_warmed_phys_offset >= ((int64_t)g_warm_mb << 20))
                break;
            usleep(50000);
        }
        printf("  (pre-faulted %lld MiB of page cache before timing)\n",
               (long long)(ss.ss_warmed_phys_offset >> 20));
    }
    double t0 = now_s();
    long bytes = 0;
    for (long i = 0; i < n; i++) {
        m.mi_born_ts = i;
        if (apg_store_put(st, &m, 1, &r, NULL, NULL, err, sizeof(err))) {
            fprintf(stderr, "put: %s\n", err);
            exit(1);
        }
        bytes += r.pr_msg_size;
    }
    double dt = now_s() - t0;
    printf("ASYNC_FLUSH 1 thread, %zu B bodies (%d B records): %ld records in %.3f s = %.0f "
           "records/s, %.2f GB/s\n",
           body_len, r.pr_msg_size, n, dt, n / dt, bytes / dt / 1e9);
    apg_store_close(st);
    free(body);
    rmrf(dir);
    free(dir);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Drops every file under dir from the page cache (written back first). */
static int evict_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    if (type != FTW_F)
        return 0;
    int fd = open(path, O_RDONLY);
    if (fd >= 0) {
        fdatasync(fd);
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        close(fd);
    }
    return 0;
}

static void evict_dir(const char *dir)
{
    nftw(dir, evict_one, 16, FTW_PHYS);
}

/* q lookups of random keys "order-<i>", i < n, each timed. */
static void query_keys(struct apg_store *st, long n, int q, const char *label)
{
    int found = 0;
    struct apg_buf out = APG_BUF_INIT;
    double *lat = malloc((size_t)q * sizeof(*lat));
    unsigned seed = 12345;
    double t0 = now_s();
    for (int k = 0; k < q; k++) {
        char key[32];
        long i = (long)(rand_r(&seed) % (unsigned)n);
        int kl = snprintf(key, sizeof(key), "order-%ld", i);
        struct apg_store_query_result qr;
        double a = now_s();
        out.b_len = 0;
        apg_store_query_message(st, "BenchTopic", 10, key, (size_t)kl, 32, 0, INT64_MAX, &out, &qr);
        lat[k] = now_s() - a;
        found += qr.sq_count == 1;
    }
    double dt = now_s() - t0;
    qsort(lat, (size_t)q, sizeof(*lat), cmp_double);
    printf("query by key (%s): %d lookups in a %ld-message log, %d found, mean %.1f us, "
           "p50 %.1f us, p99 %.1f us, max %.1f us\n",
           label, q, n, found, dt * 1e6 / q, lat[q / 2] * 1e6, lat[q * 99 / 100] * 1e6,
           lat[q - 1] * 1e6);
    free(lat);
    apg_buf_free(&out);
}

/* The index's cost on the put path and its lookups: n puts of 128-byte
 * bodies, each with its own KEYS and UNIQ_KEY (two index entries), timed
 * with the index off and on; then `queries` random lookups by key in the
 * indexed store (each reads the index chain and the one matching record). */
static void bench_index(long n)
{
    static const char *const label[] = {"index off", "index on "};
    uint8_t body[128];
    memset(body, 'b', sizeof(body));
    for (int on = 0; on < 2; on++) {
        g_index = on;
        char *dir = mkdir_tmp();
        struct apg_store *st = open_store(dir, false);
        struct apg_msg_in m;
        msg_init(&m, body, sizeof(body), 0);
        char props[160];
        struct apg_put_result r;
        char err[256];
        usleep(300000);
        double t0 = now_s();
        for (long i = 0; i < n; i++) {
            m.mi_born_ts = i;
            m.mi_props_len = (size_t)snprintf(props, sizeof(props),
                                              "TAGS\001a\002KEYS\001order-%ld\002UNIQ_KEY"
                                              "\0017F00000100002A9F0000%010ld\002",
                                              i, i);
            m.mi_props = props;
            if (apg_store_put(st, &m, 1, &r, NULL, NULL, err, sizeof(err))) {
                fprintf(stderr, "put: %s\n", err);
                exit(1);
            }
        }
        double dt = now_s() - t0;
        printf("put, %s: %ld records (128 B bodies, 2 keys each) in %.3f s = %.0f records/s, "
               "%.0f ns/put\n",
               label[on], n, dt, n / dt, dt * 1e9 / n);
        if (on) {
            query_keys(st, n, 10000, "warm");
            /* After a restart with nothing of the store in the page cache:
             * every index page and record a lookup touches is a disk read. */
            apg_store_close(st);
            st = open_store(dir, false);
            evict_dir(dir);
            query_keys(st, n, 1000, "cold");
        }
        apg_store_close(st);
        rmrf(dir);
        free(dir);
    }
}

static struct apg_store *g_st;
static atomic_long g_acked;
static atomic_bool g_stop;

static double g_append_s, g_wait_s; /* summed under g_sum_mtx */
static bool g_blocking;             /* sync workers put without ack_cb */
static pthread_mutex_t g_sum_mtx = PTHREAD_MUTEX_INITIALIZER;

/* One appender: put with a callback, then wait for the acknowledgement
 * before the next put (so 64 threads = 64 puts in flight). */
struct acker {
    pthread_mutex_t a_mtx;
    pthread_cond_t a_cond;
    int a_done;
    apg_err_t a_rc;
};

static void on_ack(void *ud, apg_err_t rc)
{
    struct acker *a = ud;
    pthread_mutex_lock(&a->a_mtx);
    a->a_done = 1;
    a->a_rc = rc;
    pthread_cond_signal(&a->a_cond);
    pthread_mutex_unlock(&a->a_mtx);
}

static void *sync_worker(void *arg)
{
    long t = (long)arg;
    uint8_t body[1024];
    memset(body, 's', sizeof(body));
    struct apg_msg_in m;
    msg_init(&m, body, sizeof(body), (int)(t % 8));
    struct apg_put_result r;
    char err[256];
    struct acker a = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    double app = 0, wait = 0;
    while (!atomic_load(&g_stop)) {
        a.a_done = 0;
        double t0 = now_s();
        if (g_blocking) {
            /* apg_store_put itself waits for durability (ack_cb NULL). */
            apg_err_t rc = apg_store_put(g_st, &m, 1, &r, NULL, NULL, err, sizeof(err));
            wait += now_s() - t0;
            if (rc == 0)
                atomic_fetch_add(&g_acked, 1);
            else if (rc != APG_ETIMEDOUT)
                fprintf(stderr, "put: %s\n", err);
            continue;
        }
        if (apg_store_put(g_st, &m, 1, &r, on_ack, &a, err, sizeof(err)) != 0) {
            fprintf(stderr, "put: %s\n", err);
            continue;
        }
        double t1 = now_s();
        pthread_mutex_lock(&a.a_mtx);
        while (!a.a_done)
            pthread_cond_wait(&a.a_cond, &a.a_mtx);
        pthread_mutex_unlock(&a.a_mtx);
        app += t1 - t0;
        wait += now_s() - t1;
        if (a.a_rc == 0)
            atomic_fetch_add(&g_acked, 1);
    }
    pthread_mutex_lock(&g_sum_mtx);
    g_append_s += app;
    g_wait_s += wait;
    pthread_mutex_unlock(&g_sum_mtx);
    return NULL;
}

static void bench_sync(int threads, double secs, bool blocking)
{
    char *dir = mkdir_tmp();
    g_blocking = blocking;
    g_append_s = g_wait_s = 0;
    atomic_store(&g_acked, 0);
    atomic_store(&g_stop, false);
    g_st = open_store(dir, true);
    usleep(300000);
    pthread_t th[256];
    struct apg_store_stats s0, s1;
    apg_store_stats(g_st, &s0);
    long cs0 = ctx_switches();
    double cpu0 = cpu_us();
    double t0 = now_s();
    for (long i = 0; i < threads; i++)
        pthread_create(&th[i], NULL, sync_worker, (void *)i);
    usleep((useconds_t)(secs * 1e6));
    atomic_store(&g_stop, true);
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    double dt = now_s() - t0;
    apg_store_stats(g_st, &s1);
    long n = atomic_load(&g_acked);
    double fs = (double)(s1.ss_fsync_count - s0.ss_fsync_count);
    printf("SYNC_FLUSH %d threads (%s), 1 KiB bodies: %ld acknowledged in %.2f s = %.0f records/s, "
           "%.0f fdatasync/s (%.1f records per sync, %.0f us per sync)\n",
           threads, blocking ? "blocking put" : "callback + own condvar", n, dt, n / dt, fs / dt,
           fs > 0 ? n / fs : 0.0,
           fs > 0 ? (double)(s1.ss_fsync_time_us - s0.ss_fsync_time_us) / fs : 0.0);
    printf("  mean put (append) %.1f us, mean wait for durability %.1f us, %.1f context "
           "switches and %.1f us CPU per ack\n",
           g_append_s / n * 1e6, g_wait_s / n * 1e6, (double)(ctx_switches() - cs0) / n,
           (cpu_us() - cpu0) / n);
    apg_store_close(g_st);
    rmrf(dir);
    free(dir);
}

/* 64 concurrent appenders as a broker has them: puts in flight, not OS
 * threads. Each of `threads` threads keeps `depth` puts outstanding; the ack
 * callback counts completions and wakes the thread only when it waits. */
struct pipe_thr {
    pthread_mutex_t p_mtx;
    pthread_cond_t p_cond;
    atomic_int p_inflight;
    atomic_bool p_waiting;
    int p_depth;
    int p_qid;
};

static void on_pipe_ack(void *ud, apg_err_t rc)
{
    struct pipe_thr *p = ud;
    if (rc == 0)
        atomic_fetch_add(&g_acked, 1);
    atomic_fetch_sub(&p->p_inflight, 1);
    if (atomic_load(&p->p_waiting)) {
        pthread_mutex_lock(&p->p_mtx);
        pthread_cond_signal(&p->p_cond);
        pthread_mutex_unlock(&p->p_mtx);
    }
}

static void *pipe_worker(void *arg)
{
    struct pipe_thr *p = arg;
    uint8_t body[1024];
    memset(body, 'p', sizeof(body));
    struct apg_msg_in m;
    msg_init(&m, body, sizeof(body), p->p_qid);
    struct apg_put_result r;
    char err[256];
    while (!atomic_load(&g_stop)) {
        if (atomic_load(&p->p_inflight) >= p->p_depth) {
            pthread_mutex_lock(&p->p_mtx);
            atomic_store(&p->p_waiting, true);
            while (atomic_load(&p->p_inflight) >= p->p_depth && !atomic_load(&g_stop))
                pthread_cond_wait(&p->p_cond, &p->p_mtx);
            atomic_store(&p->p_waiting, false);
            pthread_mutex_unlock(&p->p_mtx);
            continue;
        }
        atomic_fetch_add(&p->p_inflight, 1);
        if (apg_store_put(g_st, &m, 1, &r, on_pipe_ack, p, err, sizeof(err)) != 0) {
            atomic_fetch_sub(&p->p_inflight, 1);
            fprintf(stderr, "put: %s\n", err);
        }
    }
    while (atomic_load(&p->p_inflight) > 0)
        usleep(1000);
    return NULL;
}

static void bench_sync_pipelined(int threads, int depth, double secs)
{
    char *dir = mkdir_tmp();
    g_st = open_store(dir, true);
    atomic_store(&g_acked, 0);
    atomic_store(&g_stop, false);
    usleep(300000);
    pthread_t th[64];
    struct pipe_thr pt[64];
    struct apg_store_stats s0, s1;
    apg_store_stats(g_st, &s0);
    long cs0 = ctx_switches();
    double cpu0 = cpu_us();
    double t0 = now_s();
    for (int i = 0; i < threads; i++) {
        pthread_mutex_init(&pt[i].p_mtx, NULL);
        pthread_cond_init(&pt[i].p_cond, NULL);
        atomic_init(&pt[i].p_inflight, 0);
        atomic_init(&pt[i].p_waiting, false);
        pt[i].p_depth = depth;
        pt[i].p_qid = i % 8;
        pthread_create(&th[i], NULL, pipe_worker, &pt[i]);
    }
    usleep((useconds_t)(secs * 1e6));
    atomic_store(&g_stop, true);
    for (int i = 0; i < threads; i++) {
        pthread_mutex_lock(&pt[i].p_mtx);
        pthread_cond_signal(&pt[i].p_cond);
        pthread_mutex_unlock(&pt[i].p_mtx);
        pthread_join(th[i], NULL);
    }
    double dt = now_s() - t0;
    apg_store_stats(g_st, &s1);
    long n = atomic_load(&g_acked);
    double fs = (double)(s1.ss_fsync_count - s0.ss_fsync_count);
    printf("SYNC_FLUSH %d puts in flight (%d threads x %d, callbacks), 1 KiB bodies: %.0f "
           "records/s, %.0f fdatasync/s (%.1f records per sync, %.0f us per sync), %.2f context "
           "switches and %.1f us CPU per ack\n",
           threads * depth, threads, depth, n / dt, fs / dt, fs > 0 ? n / fs : 0.0,
           fs > 0 ? (double)(s1.ss_fsync_time_us - s0.ss_fsync_time_us) / fs : 0.0,
           (double)(ctx_switches() - cs0) / n, (cpu_us() - cpu0) / n);
    apg_store_close(g_st);
    rmrf(dir);
    free(dir);
}

static void bench_recover(double gib)
{
    char *dir = mkdir_tmp();
    pid_t pid = fork();
    if (pid == 0) {
        struct apg_store *st = open_store(dir, false);
        uint8_t body[1024];
        memset(body, 'r', sizeof(body));
        struct apg_msg_in m;
        struct apg_put_result r;
        char err[256];
        long bytes = 0, target = (long)(gib * 1073741824.0);
        for (int i = 0; bytes < target; i++) {
            msg_init(&m, body, sizeof(body), i % 16);
            if (apg_store_put(st, &m, 1, &r, NULL, NULL, err, sizeof(err))) {
                fprintf(stderr, "put: %s\n", err);
                _exit(1);
            }
            bytes += r.pr_msg_size;
        }
        usleep(100000);
        kill(getpid(), SIGKILL);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    double t0 = now_s();
    struct apg_store *st = open_store(dir, false);
    double dt = now_s() - t0;
    struct apg_store_stats ss;
    apg_store_stats(st, &ss);
    printf("recovery after SIGKILL of a %.2f GiB commit log: %.3f s (log end %lld)\n", gib, dt,
           (long long)ss.ss_max_phys_offset);
    apg_store_close(st);
    rmrf(dir);
    free(dir);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "all";
    long n = 0;
    double gib = 4;
    int threads = 64;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-n"))
            n = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "-g"))
            gib = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "-w"))
            g_warm_mb = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-t"))
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-d"))
            g_base = argv[i + 1];
        else if (!strcmp(argv[i], "-i"))
            g_index = atoi(argv[i + 1]);
    }
    apg_log_set_level(APG_LOG_WARN);
    bool all = !strcmp(mode, "all");
    if (all || !strcmp(mode, "async128"))
        bench_async(128, n ? n : 5000000);
    if (all || !strcmp(mode, "async1k"))
        bench_async(1024, n ? n : 1500000);
    if (all || !strcmp(mode, "sync64"))
        bench_sync(threads > 256 ? 256 : threads, 3.0, false);
    if (all || !strcmp(mode, "sync64"))
        bench_sync(threads > 256 ? 256 : threads, 3.0, true);
    if (all || !strcmp(mode, "sync64"))
        bench_sync_pipelined(4, 16, 3.0);
    if (all || !strcmp(mode, "index"))
        bench_index(n ? n : 2000000);
    if (all || !strcmp(mode, "recover"))
        bench_recover(gib);
    return 0;
}

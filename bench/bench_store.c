/* Store micro-benchmark.
 *
 *   bench_store [all|async128|async1k|sync64|recover] [-n RECORDS] [-g GIB] [-d DIR]
 *
 * async128  ASYNC_FLUSH, one thread, 128-byte bodies: records/s
 * async1k   ASYNC_FLUSH, one thread, 1 KiB bodies: records/s and GB/s of records
 * sync64    SYNC_FLUSH, 64 threads, 1 KiB bodies, 3 s: acknowledged records/s and
 *           fdatasync (msync) calls per second
 * recover   a child appends GIB GiB (default 4) and is killed with SIGKILL (abort
 *           marker left, checkpoint as of its last flush); the parent times
 *           apg_store_open() = crash recovery
 * Each mode uses a fresh temp dir under /tmp (or -d DIR) and removes it. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "store/store.h"

static const char *g_base = "/tmp";

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
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
    m->mi_born_host.h_addr[0] = 127;
    m->mi_born_host.h_addr[3] = 1;
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

static struct apg_store *g_st;
static atomic_long g_acked;
static atomic_bool g_stop;

static void *sync_worker(void *arg)
{
    long t = (long)arg;
    uint8_t body[1024];
    memset(body, 's', sizeof(body));
    struct apg_msg_in m;
    msg_init(&m, body, sizeof(body), (int)(t % 8));
    struct apg_put_result r;
    char err[256];
    while (!atomic_load(&g_stop)) {
        if (apg_store_put(g_st, &m, 1, &r, NULL, NULL, err, sizeof(err)) == 0)
            atomic_fetch_add(&g_acked, 1);
        else
            fprintf(stderr, "put: %s\n", err);
    }
    return NULL;
}

static void bench_sync(int threads, double secs)
{
    char *dir = mkdir_tmp();
    g_st = open_store(dir, true);
    usleep(300000);
    pthread_t th[256];
    struct apg_store_stats s0, s1;
    apg_store_stats(g_st, &s0);
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
    printf("SYNC_FLUSH %d threads, 1 KiB bodies: %ld acknowledged in %.2f s = %.0f records/s, "
           "%.0f fdatasync/s (%.1f records per sync, %.0f us per sync)\n",
           threads, n, dt, n / dt, fs / dt, fs > 0 ? n / fs : 0.0,
           fs > 0 ? (double)(s1.ss_fsync_time_us - s0.ss_fsync_time_us) / fs : 0.0);
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
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-n"))
            n = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "-g"))
            gib = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "-d"))
            g_base = argv[i + 1];
    }
    apg_log_set_level(APG_LOG_WARN);
    bool all = !strcmp(mode, "all");
    if (all || !strcmp(mode, "async128"))
        bench_async(128, n ? n : 5000000);
    if (all || !strcmp(mode, "async1k"))
        bench_async(1024, n ? n : 1500000);
    if (all || !strcmp(mode, "sync64"))
        bench_sync(64, 3.0);
    if (all || !strcmp(mode, "recover"))
        bench_recover(gib);
    return 0;
}

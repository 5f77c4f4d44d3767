/* Commit-log write path with zero-fill ahead of the writer (preallocation on):
 * appends by pwrite from several threads, batches to one queue, segment rolls
 * while the service thread overwrites the log ahead of the write position
 * with zeros. Every acknowledged record must read back intact at consecutive
 * queue offsets (a zero-filled chunk that overlapped an append would show up
 * as a missing or corrupt record), also after reopen, and the blocks ahead
 * of the writer must be written extents (no unwritten extent to convert in
 * the next sync). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <pthread.h>
#include <linux/magic.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include "test_store_util.h"

#define NTHR 4
#define PER_THR 600 /* batches of 3 per thread */

static struct apg_store *g_st;

static void *appender(void *arg)
{
    int t = (int)(long)arg;
    char topic[16];
    snprintf(topic, sizeof(topic), "Z%d", t);
    for (int i = 0; i < PER_THR; i++) {
        struct tu_msg m[3];
        struct apg_msg_in in[3];
        struct apg_put_result pr[3];
        for (int k = 0; k < 3; k++) {
            tu_msg_make(&m[k], topic, 0, i * 3 + k);
            in[k] = m[k].m;
        }
        char err[256];
        apg_err_t rc = apg_store_put(g_st, in, 3, pr, NULL, NULL, err, sizeof(err));
        if (rc) {
            fprintf(stderr, "put: %s\n", err);
            return (void *)1;
        }
        for (int k = 0; k < 3; k++)
            if (pr[k].pr_queue_offset != i * 3 + k)
                return (void *)2;
    }
    return NULL;
}

/* True if any extent overlapping [from, to) of path is unwritten. */
static bool has_unwritten(const char *path, uint64_t from, uint64_t to)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    size_t sz = sizeof(struct fiemap) + 64 * sizeof(struct fiemap_extent);
    struct fiemap *fm = calloc(1, sz);
    fm->fm_start = from;
    fm->fm_length = to - from;
    fm->fm_flags = FIEMAP_FLAG_SYNC;
    fm->fm_extent_count = 64;
    bool unwritten = false;
    if (ioctl(fd, FS_IOC_FIEMAP, fm) == 0) {
        for (unsigned i = 0; i < fm->fm_mapped_extents; i++)
            if (fm->fm_extents[i].fe_flags & FIEMAP_EXTENT_UNWRITTEN)
                unwritten = true;
    } else {
        unwritten = false; /* no FIEMAP on this file system: nothing to check */
    }
    free(fm);
    close(fd);
    return unwritten;
}

static void test_zero_ahead_appends(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    struct apg_store_opts o;
    tu_opts(&o, dir);
    o.so_commitlog_file_size = 4 << 20; /* several rolls */
    o.so_no_preallocate = false;        /* zero-fill ahead runs */
    o.so_sync_flush = true;
    char err[512];
    assert_int_equal(apg_store_open(&o, &g_st, err, sizeof(err)), 0);
    pthread_t th[NTHR];
    for (long t = 0; t < NTHR; t++)
        pthread_create(&th[t], NULL, appender, (void *)t);
    for (int t = 0; t < NTHR; t++) {
        void *r;
        pthread_join(th[t], &r);
        assert_null(r);
    }
    /* Bigger records, to roll a few segments while zero-filling. */
    static uint8_t big[200000];
    memset(big, 'B', sizeof(big));
    struct tu_msg m;
    struct apg_put_result pr;
    for (int i = 0; i < 60; i++) {
        tu_msg_make(&m, "BIG", 0, i);
        m.m.mi_body = big;
        m.m.mi_body_len = sizeof(big);
        assert_int_equal(apg_store_put(g_st, &m.m, 1, &pr, NULL, NULL, err, sizeof(err)), 0);
    }
    assert_int_equal(tu_put(g_st, "Z0", 0, PER_THR * 3, NULL), 0);
    for (int t = 0; t < NTHR; t++) {
        char topic[16];
        snprintf(topic, sizeof(topic), "Z%d", t);
        assert_int_equal(tu_count(g_st, topic, 0, 0), PER_THR * 3 + (t == 0));
    }
    /* Let the service thread get ahead, then check the blocks it prepared. */
    struct apg_store_stats ss;
    for (int k = 0; k < 200; k++) {
        apg_store_stats(g_st, &ss);
        if (ss.ss_warmed_phys_offset >= ss.ss_max_phys_offset + (1 << 20))
            break;
        usleep(10000);
    }
    assert_true(ss.ss_warmed_phys_offset >= ss.ss_max_phys_offset + (1 << 20));
    int64_t seg = (int64_t)o.so_commitlog_file_size;
    int64_t base = ss.ss_max_phys_offset / seg * seg;
    int64_t from = (ss.ss_max_phys_offset + 4095) & ~4095LL;
    int64_t to = ss.ss_warmed_phys_offset < base + seg ? ss.ss_warmed_phys_offset : base + seg;
    char path[600];
    snprintf(path, sizeof(path), "%s/commitlog/%020lld", dir, (long long)base);
    if (to > from)
        assert_false(has_unwritten(path, (uint64_t)(from - base), (uint64_t)(to - base)));
    apg_store_close(g_st);
    assert_int_equal(apg_store_open(&o, &g_st, err, sizeof(err)), 0);
    for (int t = 0; t < NTHR; t++) {
        char topic[16];
        snprintf(topic, sizeof(topic), "Z%d", t);
        assert_int_equal(tu_count(g_st, topic, 0, 0), PER_THR * 3 + (t == 0));
    }
    apg_store_close(g_st);
    tu_rmrf(dir);
    free(dir);
}

/* Fraction (0..1) of the pages of [from, to) of path that are in the page cache. */
static double resident(const char *path, size_t from, size_t to)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    uint8_t *p = mmap(NULL, to, PROT_READ, MAP_SHARED, fd, 0);
    assert_true(p != MAP_FAILED);
    size_t pages = (to - from) / 4096, in = 0;
    unsigned char *vec = malloc(pages);
    assert_int_equal(mincore(p + from, to - from, vec), 0);
    for (size_t i = 0; i < pages; i++)
        in += vec[i] & 1;
    free(vec);
    munmap(p, to);
    close(fd);
    return (double)in / (double)pages;
}

/* ASYNC_FLUSH with commitLogCacheKeepMb=1: once flushed, log pages more than
 * 1 MiB behind the flushed position leave the page cache, recent ones stay,
 * and every record still reads back (from disk). */
static void test_drop_behind(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    struct statfs sf;
    assert_int_equal(statfs(dir, &sf), 0);
    if (sf.f_type == TMPFS_MAGIC) { /* shmem has no clean pages to drop */
        tu_rmrf(dir);
        free(dir);
        skip();
    }
    struct apg_store_opts o;
    tu_opts(&o, dir);
    o.so_commitlog_file_size = 4 << 20;
    o.so_flush_interval_ms = 10;
    o.so_cache_keep_mb = 1;
    char err[512];
    assert_int_equal(apg_store_open(&o, &g_st, err, sizeof(err)), 0);
    const int n = 100000; /* ~11 MiB: three segments */
    for (int i = 0; i < n; i++)
        assert_int_equal(tu_put(g_st, "D", 0, i, NULL), 0);
    struct apg_store_stats ss;
    apg_store_stats(g_st, &ss);
    assert_true(ss.ss_max_phys_offset > 2 * (4 << 20) + (1 << 20));
    char first[600], last[600];
    snprintf(first, sizeof(first), "%s/commitlog/%020d", dir, 0);
    int64_t lbase = ss.ss_max_phys_offset / (4 << 20) * (4 << 20);
    snprintf(last, sizeof(last), "%s/commitlog/%020lld", dir, (long long)lbase);
    double r = 1;
    for (int k = 0; k < 300 && r > 0.05; k++) {
        usleep(10000);
        r = resident(first, 0, 4 << 20);
    }
    assert_true(r <= 0.05);
    /* The newest bytes stay cached. */
    size_t tail = (size_t)(ss.ss_max_phys_offset - lbase) & ~(size_t)4095;
    if (tail >= 8192)
        assert_true(resident(last, tail - 8192, tail) > 0.99);
    assert_int_equal(tu_count(g_st, "D", 0, 0), n);
    apg_store_close(g_st);
    tu_rmrf(dir);
    free(dir);
}

/* Bytes of disk held by the files of dir (allocated blocks, not apparent
 * size); *nfiles gets their number. */
static long long dir_blocks_bytes(const char *dir, int *nfiles)
{
    long long sum = 0;
    *nfiles = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d))) {
        struct stat sb;
        if (de->d_name[0] == '.' || fstatat(dirfd(d), de->d_name, &sb, 0) != 0)
            continue;
        sum += (long long)sb.st_blocks * 512;
        (*nfiles)++;
    }
    closedir(d);
    return sum;
}

/* With default sizes (1 GiB segments) and preallocation on, a store holding one
 * message takes at most a few MiB: segment files are sparse, and only
 * SYNC_FLUSH zero-fills a window ahead of the writer (1 MiB on a fresh store). */
static void test_empty_store_small(void **state)
{
    (void)state;
    for (int sync = 0; sync < 2; sync++) {
        char *dir = tu_tmpdir();
        struct apg_store_opts o;
        apg_store_opts_init(&o);
        o.so_root_dir = dir;
        o.so_sync_flush = sync;
        char err[512];
        assert_int_equal(apg_store_open(&o, &g_st, err, sizeof(err)), 0);
        assert_int_equal(tu_put(g_st, "E", 0, 0, NULL), 0);
        struct apg_store_stats ss;
        for (int k = 0; k < 100; k++) { /* let the service thread prepare what it will */
            apg_store_stats(g_st, &ss);
            if (!sync || ss.ss_warmed_phys_offset >= (1 << 20))
                break;
            usleep(10000);
        }
        usleep(100000);
        char cl[700];
        snprintf(cl, sizeof(cl), "%s/commitlog", dir);
        int nfiles;
        long long used = dir_blocks_bytes(cl, &nfiles);
        assert_int_equal(nfiles, 2); /* current and next segment exist */
        print_message("%s: commit log holds %lld bytes of disk\n",
                      sync ? "SYNC_FLUSH" : "ASYNC_FLUSH", used);
        assert_true(used <= (sync ? 8ll << 20 : 1ll << 20));
        apg_store_close(g_st);
        tu_rmrf(dir);
        free(dir);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zero_ahead_appends),
        cmocka_unit_test(test_drop_behind),
        cmocka_unit_test(test_empty_store_small),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

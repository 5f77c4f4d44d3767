/* Durable-append micro-experiment: what does one "append N bytes, make them
 * durable" step cost on this machine, by method and by how the file was
 * prepared? Standalone (uses no store code), on a temp file.
 *
 *   bench_fsync [-d DIR] [-n SYNCS] [-s SIZES_KIB] [-p PREPS] [-m METHODS]
 *
 *   -d DIR        where the temp file goes (default /tmp; must be the store's
 *                 file system to mean anything)
 *   -n SYNCS      appends+syncs per cell (default 300)
 *   -s 4,16,64    bytes per sync in KiB (default 4,16,36,64,256)
 *   -p LIST       file preparations, comma separated (default all):
 *                   falloc  posix_fallocate: unwritten extents, so every first
 *                           write converts extents (metadata, journal commit)
 *                   zero    zero-filled by write() + fdatasync: written extents
 *                   grow    empty file, appends extend it (size + allocation)
 *                   wzero   fallocate(FALLOC_FL_WRITE_ZEROES) if the kernel and
 *                           file system support it (written zeroed extents)
 *   -P 1          prefault the whole mapping writable (MADV_POPULATE_WRITE) before
 *                 timing, as the store's warm-ahead does
 *   -m LIST       methods (default all):
 *                   pwrite_fdatasync   pwrite, fdatasync
 *                   pwrite_msync       pwrite, then msync(MS_SYNC) of the range through a
 *                                      mapping: an fdatasync limited to that byte range
 *                   mmap_msync         memcpy into a MAP_SHARED mapping, msync(MS_SYNC)
 *                                      of the touched pages
 *                   mmap_fdatasync     memcpy into the mapping, fdatasync
 *                   mmap_pwrite_fds    record bytes in the mapping, then pwrite() the same
 *                                      range from the mapping and fdatasync (no msync)
 *                   odsync             pwrite on an O_DSYNC descriptor
 *                   rwf_dsync          pwritev2(RWF_DSYNC)
 *                   sfr                pwrite + sync_file_range(WAIT|WRITE|WAIT): NOT
 *                                      durable (no cache flush, no metadata), shown as
 *                                      the floor of "data to the device"
 *
 * Each cell prints the median and p90 of the per-step latency (copy + sync)
 * and steps/s. Appends are sequential and start unaligned (offset 300) like
 * the commit log, so every step also rewrites a partial page. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifndef FALLOC_FL_WRITE_ZEROES
#define FALLOC_FL_WRITE_ZEROES 0x80
#endif

static bool g_populate; /* -P 1: prefault the mapping writable before timing */

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static bool listed(const char *list, const char *name)
{
    if (!list)
        return true;
    size_t n = strlen(name);
    for (const char *p = list; (p = strstr(p, name)); p += n)
        if ((p == list || p[-1] == ',') && (p[n] == 0 || p[n] == ','))
            return true;
    return false;
}

/* Creates the file prepared as `prep`, `size` bytes (except grow). Returns fd or -1. */
static int prepare(const char *path, const char *prep, size_t size)
{
    unlink(path);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return -1;
    if (!strcmp(prep, "falloc")) {
        if (posix_fallocate(fd, 0, (off_t)size) != 0)
            goto fail;
    } else if (!strcmp(prep, "zero")) {
        size_t ch = 1 << 20;
        char *z = calloc(1, ch);
        for (size_t o = 0; o < size; o += ch)
            if (pwrite(fd, z, ch, (off_t)o) != (ssize_t)ch) {
                free(z);
                goto fail;
            }
        free(z);
    } else if (!strcmp(prep, "wzero")) {
        if (fallocate(fd, FALLOC_FL_WRITE_ZEROES, 0, (off_t)size) != 0) {
            fprintf(stderr, "  (FALLOC_FL_WRITE_ZEROES: %s)\n", strerror(errno));
            goto fail;
        }
    }
    if (!strcmp(prep, "grow") || !strcmp(prep, "falloc"))
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    fdatasync(fd);
    fsync(fd); /* size and extents committed before timing */
    return fd;
fail:
    close(fd);
    unlink(path);
    return -1;
}

static void run_cell(const char *path, const char *prep, const char *method, size_t step, int nsync)
{
    size_t start = 300, size = start + step * (size_t)nsync + (1 << 20);
    size = (size + 4095) & ~(size_t)4095;
    int fd = prepare(path, prep, size);
    if (fd < 0) {
        printf("%-7s %-17s %4zu KiB: prepare failed\n", prep, method, step >> 10);
        return;
    }
    bool grow = !strcmp(prep, "grow");
    bool mm = !strncmp(method, "mmap", 4) || !strcmp(method, "pwrite_msync");
    if (mm && grow && ftruncate(fd, (off_t)size) != 0) /* mapping needs a size: holes */
        goto out;
    uint8_t *map = NULL;
    if (mm) {
        map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (map == MAP_FAILED)
            goto out;
    }
    int dfd = -1;
    if (!strcmp(method, "odsync")) {
        dfd = open(path, O_RDWR | O_DSYNC);
        if (dfd < 0)
            goto out;
    }
    uint8_t *buf = malloc(step);
    memset(buf, 'x', step);
    double *lat = malloc(sizeof(double) * (size_t)nsync);
    double *cpy = malloc(sizeof(double) * (size_t)nsync);
    if (mm && g_populate) {
#ifdef MADV_POPULATE_WRITE
        madvise(map, size, MADV_POPULATE_WRITE); /* as the store's warm-ahead does */
#endif
    }
    size_t pg = 4096, off = start;
    double t_all = now_us();
    int rc = 0;
    for (int i = 0; i < nsync && rc == 0; i++, off += step) {
        buf[0] = (uint8_t)i;
        double t0 = now_us();
        cpy[i] = 0;
        if (!strcmp(method, "pwrite_fdatasync")) {
            rc = pwrite(fd, buf, step, (off_t)off) == (ssize_t)step ? fdatasync(fd) : -1;
        } else if (!strcmp(method, "pwrite_msync")) {
            size_t a = off & ~(pg - 1);
            rc = pwrite(fd, buf, step, (off_t)off) == (ssize_t)step
                     ? msync(map + a, off + step - a, MS_SYNC)
                     : -1;
        } else if (!strcmp(method, "mmap_msync")) {
            memcpy(map + off, buf, step);
            cpy[i] = now_us() - t0;
            size_t a = off & ~(pg - 1);
            rc = msync(map + a, off + step - a, MS_SYNC);
        } else if (!strcmp(method, "mmap_fdatasync")) {
            memcpy(map + off, buf, step);
            cpy[i] = now_us() - t0;
            rc = fdatasync(fd);
        } else if (!strcmp(method, "mmap_pwrite_fds")) {
            memcpy(map + off, buf, step);
            cpy[i] = now_us() - t0;
            rc = pwrite(fd, map + off, step, (off_t)off) == (ssize_t)step ? fdatasync(fd) : -1;
        } else if (!strcmp(method, "odsync")) {
            rc = pwrite(dfd, buf, step, (off_t)off) == (ssize_t)step ? 0 : -1;
        } else if (!strcmp(method, "rwf_dsync")) {
            struct iovec iov = {buf, step};
            rc = pwritev2(fd, &iov, 1, (off_t)off, RWF_DSYNC) == (ssize_t)step ? 0 : -1;
        } else if (!strcmp(method, "sfr")) {
            rc = pwrite(fd, buf, step, (off_t)off) == (ssize_t)step
                     ? sync_file_range(fd, (off_t)off, (off_t)step,
                                       SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                           SYNC_FILE_RANGE_WAIT_AFTER)
                     : -1;
        }
        lat[i] = now_us() - t0;
    }
    double total = now_us() - t_all;
    if (rc != 0) {
        printf("%-7s %-17s %4zu KiB: failed: %s\n", prep, method, step >> 10, strerror(errno));
    } else {
        qsort(lat, (size_t)nsync, sizeof(double), cmp_d);
        qsort(cpy, (size_t)nsync, sizeof(double), cmp_d);
        printf("%-7s %-17s %4zu KiB: median %6.0f us (copy %4.0f)  p90 %6.0f us  %7.0f syncs/s  "
               "%7.1f MB/s\n",
               prep, method, step >> 10, lat[nsync / 2], cpy[nsync / 2], lat[nsync * 9 / 10],
               nsync / total * 1e6, (double)step * nsync / total);
    }
    fflush(stdout);
    free(lat);
    free(cpy);
    free(buf);
    if (dfd >= 0)
        close(dfd);
    if (map)
        munmap(map, size);
out:
    close(fd);
    unlink(path);
}

int main(int argc, char **argv)
{
    const char *dir = "/tmp", *preps = NULL, *methods = NULL, *sizes = "4,16,36,64,256";
    int nsync = 300;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-d"))
            dir = argv[i + 1];
        else if (!strcmp(argv[i], "-n"))
            nsync = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-s"))
            sizes = argv[i + 1];
        else if (!strcmp(argv[i], "-p"))
            preps = argv[i + 1];
        else if (!strcmp(argv[i], "-P"))
            g_populate = atoi(argv[i + 1]) != 0;
        else if (!strcmp(argv[i], "-m"))
            methods = argv[i + 1];
    }
    if (nsync < 10)
        nsync = 10;
    char path[4096];
    snprintf(path, sizeof(path), "%s/apg_bench_fsync.%d", dir, (int)getpid());
    static const char *const all_preps[] = {"falloc", "zero", "grow", "wzero"};
    static const char *const all_methods[] = {
        "pwrite_fdatasync", "pwrite_msync", "mmap_msync", "mmap_fdatasync",
        "mmap_pwrite_fds",  "odsync",       "rwf_dsync",  "sfr"};
    for (size_t p = 0; p < sizeof(all_preps) / sizeof(*all_preps); p++) {
        if (!listed(preps, all_preps[p]))
            continue;
        for (size_t m = 0; m < sizeof(all_methods) / sizeof(*all_methods); m++) {
            if (!listed(methods, all_methods[m]))
                continue;
            for (const char *s = sizes; *s;) {
                size_t kib = strtoul(s, (char **)&s, 10);
                if (kib)
                    run_cell(path, all_preps[p], all_methods[m], kib << 10, nsync);
                if (*s == ',')
                    s++;
                else if (*s)
                    break;
            }
        }
    }
    return 0;
}

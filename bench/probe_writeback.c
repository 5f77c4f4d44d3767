/* Machine probe: sustained buffered-write throughput into one file, without
 * Apogee, and what helps it. Writes SIZE_MB in 256 KiB pwrites to
 * ./probe_writeback.tmp (removed at the end).
 *
 *   probe_writeback MODE SIZE_MB [KEEP_WINDOWS]
 *   MODE bit 1: sync_file_range(WRITE) every 32 MiB, wait on the one before
 *   MODE bit 2: then POSIX_FADV_DONTNEED on ranges KEEP_WINDOWS x 32 MiB back
 *   MODE bit 4: fallocate the file first
 *
 * docs/perf-log/perf-store.md section 6 has the figures (mode 0 vs 3) for this VM. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WIN (32L << 20)
#define CHUNK (256 << 10)

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: probe_writeback MODE SIZE_MB [KEEP_WINDOWS]\n");
        return 2;
    }
    int mode = atoi(argv[1]);
    long total = atol(argv[2]) << 20;
    long keep = argc > 3 ? atol(argv[3]) : 8;
    const char *path = "probe_writeback.tmp";
    int fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0644);
    if (fd < 0) {
        perror(path);
        return 1;
    }
    if ((mode & 4) && fallocate(fd, 0, 0, total) != 0)
        perror("fallocate");
    static char buf[CHUNK];
    memset(buf, 'x', sizeof(buf));
    double t0 = now_s();
    for (long off = 0; off < total; off += CHUNK) {
        if (pwrite(fd, buf, CHUNK, off) != CHUNK) {
            perror("pwrite");
            break;
        }
        long end = off + CHUNK;
        if ((mode & 1) && end % WIN == 0) {
            sync_file_range(fd, end - WIN, WIN, SYNC_FILE_RANGE_WRITE);
            if (end >= 2 * WIN)
                sync_file_range(fd, end - 2 * WIN, WIN,
                                SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                    SYNC_FILE_RANGE_WAIT_AFTER);
            if ((mode & 2) && end >= keep * WIN)
                posix_fadvise(fd, end - keep * WIN, WIN, POSIX_FADV_DONTNEED);
        }
    }
    double t = now_s() - t0;
    printf("mode %d: %.0f MB/s\n", mode, (double)total / t / 1e6);
    close(fd);
    unlink(path);
    return 0;
}

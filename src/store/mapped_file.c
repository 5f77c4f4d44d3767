/* Mapped segment files, the unit of both the commit log and the consume queues.
 *
 * A segment is a fixed-size file named by the 20-digit offset of its first
 * byte, mapped MAP_SHARED for its whole life. This file opens and maps them,
 * writes through the descriptor (apg_seg_pwrite_all), zero-fills ranges ahead
 * of the writer (apg_seg_zero), msyncs ranges (apg_seg_sync), lists a
 * directory's segments in order and finds the end of the written data.
 *
 * Threads: any; a struct seg is immutable after creation except its contents,
 * and the caller decides who may write which bytes. */
#define _GNU_SOURCE
#include "store/store_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "common/file.h"
#include "common/mem.h"

void apg_store_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

void apg_seg_free(struct seg *s, bool unlink_file)
{
    if (!s)
        return;
    if (s->sg_map)
        munmap(s->sg_map, s->sg_size);
    if (s->sg_fd >= 0)
        close(s->sg_fd);
    if (unlink_file && s->sg_path)
        unlink(s->sg_path);
    apg_free(s->sg_path);
    apg_free(s);
}

/* Overwrites bytes [from, to) of a commit-log segment with zeros by write()
 * and makes that durable, so the blocks become written extents: a later
 * append there and its sync then only write data and flush the device cache,
 * with no unwritten-extent conversion (a journal commit) in every sync
 * (measured with bench/bench_fsync, docs/perf-log/perf-store.md). Uses its own file
 * descriptor: an fdatasync consumes a writeback error for the open file it is
 * called on only, so the flush thread's syncs through sg_fd/sg_map still see
 * every error. Service thread; the caller makes sure no append targets the
 * range while the zeros are written (apg_warm_zero_ahead). */
int apg_seg_zero(struct seg *s, size_t from, size_t to)
{
    static const uint8_t zeros[65536];
    int fd = open(s->sg_path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct iovec iov[16];
    while (from < to) {
        size_t len = to - from;
        int cnt = 0;
        for (; cnt < 16 && len > 0; cnt++) {
            iov[cnt].iov_base = (void *)zeros;
            iov[cnt].iov_len = len < sizeof(zeros) ? len : sizeof(zeros);
            len -= iov[cnt].iov_len;
        }
        ssize_t n = pwritev(fd, iov, cnt, (off_t)from);
        if (n <= 0) {
            close(fd);
            return -1;
        }
        from += (size_t)n;
    }
    return fd; /* the caller syncs (outside its locks) and closes */
}

/* Opens or creates the segment file dir/<20-digit base>, sized `size`, and
 * maps it. A new or short file is extended: with prealloc its blocks are
 * reserved (posix_fallocate; for files written through the mapping, where a
 * full disk would otherwise surface as SIGBUS), without it the file stays
 * sparse and takes no space until written (commit-log segments, which are
 * written with pwrite, so a full disk is an ENOSPC from the write; under
 * SYNC_FLUSH apg_warm_zero_ahead fills a bounded window ahead of the writer). */
struct seg *apg_seg_open(const char *dir, int64_t base, size_t size, bool create, bool prealloc,
                         char *err, size_t errlen)
{
    char name[32];
    snprintf(name, sizeof(name), "%020lld", (long long)base);
    struct seg *s = apg_calloc(1, sizeof(*s));
    if (!s) {
        apg_errf(APG_ENOMEM, err, errlen, "out of memory");
        return NULL;
    }
    s->sg_fd = -1;
    s->sg_base = base;
    s->sg_size = size;
    s->sg_path = apg_path_join(dir, name);
    if (!s->sg_path)
        goto fail;
    s->sg_fd = open(s->sg_path, O_RDWR | (create ? O_CREAT : 0) | O_CLOEXEC, 0644);
    if (s->sg_fd < 0) {
        apg_errf(APG_EIO, err, errlen, "open %s: %s", s->sg_path, strerror(errno));
        goto fail;
    }
    struct stat sb;
    if (fstat(s->sg_fd, &sb) != 0) {
        apg_errf(APG_EIO, err, errlen, "stat %s: %s", s->sg_path, strerror(errno));
        goto fail;
    }
    if ((size_t)sb.st_size != size) {
        if ((size_t)sb.st_size > size) {
            apg_errf(APG_ECORRUPT, err, errlen,
                     "%s is %lld bytes, larger than the segment size %zu: wrong "
                     "mappedFileSize setting?",
                     s->sg_path, (long long)sb.st_size, size);
            goto fail;
        }
        /* New file, or one cut short by a crash: the missing part reads as zeros. */
        if (prealloc && posix_fallocate(s->sg_fd, 0, (off_t)size) == 0) {
        } else if (ftruncate(s->sg_fd, (off_t)size) != 0) {
            apg_errf(APG_EIO, err, errlen, "size %s: %s", s->sg_path, strerror(errno));
            goto fail;
        }
    }
    s->sg_map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, s->sg_fd, 0);
    if (s->sg_map == MAP_FAILED) {
        s->sg_map = NULL;
        apg_errf(APG_EIO, err, errlen, "mmap %s: %s", s->sg_path, strerror(errno));
        goto fail;
    }
    return s;
fail:
    apg_seg_free(s, false);
    return NULL;
}

/* msync a byte range of a segment (page aligned down). */
int apg_seg_sync(struct apg_store *st, struct seg *s, size_t from, size_t to)
{
    if (to <= from)
        return 0;
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    size_t a = from & ~(pg - 1);
    atomic_fetch_add(&st->st_fsync_count, 1);
    if (atomic_exchange(&st->st_fail_next_fsync, false)) {
        errno = EIO;
        return -1;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = apg_store_fault_msync(st, s, a, to, MS_SYNC);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    atomic_fetch_add(&st->st_fsync_us, (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000 +
                                                  (t1.tv_nsec - t0.tv_nsec) / 1000));
    return rc;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_seg_name(const char *n)
{
    if (strlen(n) != 20)
        return false;
    for (int i = 0; i < 20; i++)
        if (n[i] < '0' || n[i] > '9')
            return false;
    return true;
}

/* Sorted list of segment file names in dir (owned; free each and the array). */
int apg_seg_list(const char *dir, char ***out)
{
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0, cap = 0;
    char **v = NULL;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!is_seg_name(de->d_name))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nv = apg_realloc(v, (size_t)cap * sizeof(*v));
            if (!nv)
                break;
            v = nv;
        }
        v[n++] = apg_strdup(de->d_name);
    }
    closedir(d);
    if (n > 1)
        qsort(v, (size_t)n, sizeof(*v), name_cmp);
    *out = v;
    return n;
}

void apg_seg_names_free(char **v, int n)
{
    for (int i = 0; i < n; i++)
        apg_free(v[i]);
    apg_free(v);
}

/* End of the written part of a segment file: never-written (hole or
 * unwritten-extent) space reads as zeros and need not be read at all, which
 * matters for a preallocated 1 GiB segment. Falls back to the full size. */
size_t apg_seg_data_end(struct seg *s)
{
    off_t end = 0, d = 0;
    for (;;) {
        d = lseek(s->sg_fd, d, SEEK_DATA);
        if (d < 0) {
            if (errno != ENXIO)
                return s->sg_size;
            break;
        }
        off_t h = lseek(s->sg_fd, d, SEEK_HOLE);
        if (h < 0)
            return s->sg_size;
        end = h;
        d = h;
        if ((size_t)h >= s->sg_size)
            break;
    }
    return (size_t)end < s->sg_size ? (size_t)end : s->sg_size;
}

/* faultshim: an LD_PRELOAD library that makes one chosen file-system call
 * fail, for the fault-injection suite (scripts/faults.sh). Built only with
 * the tests (tests/faults/faults.cmake) and never linked into anything.
 *
 * Environment (read once, at the first intercepted call):
 *   APG_FAULT_CALL   msync | fsync | fdatasync | pwrite | write: the call to fail
 *                    (pwrite covers pwrite, pwrite64 and pwritev)
 *   APG_FAULT_AT     the N-th such call (1-based, default 1) fails ...
 *   APG_FAULT_TIMES  ... and this many in a row (default 1; 0: every one from N on)
 *   APG_FAULT_ERRNO  EIO (default) or ENOSPC
 *   APG_FAULT_PATH   only calls on files whose path contains this string count
 *                    (fd calls only; msync always counts)
 *   APG_FAULT_LOG    file to which each injected failure appends
 *                    "FAULT <call> <n> <CLOCK_REALTIME us>"
 * Only calls on regular files count (sockets and pipes pass untouched), so
 * write() on a connection is never failed. A failed call does nothing: the
 * real call is not made, as when the device refuses the write.
 *
 * Threads: any; the counter is atomic. Invariant: without APG_FAULT_CALL
 * every call goes straight to the real one. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static _Atomic int inited;
static char want[16];
static long at = 1, times = 1;
static int fail_errno = EIO;
static const char *path_filter;
static const char *log_path;
static _Atomic long seen;

static void shim_init(void)
{
    if (atomic_load(&inited))
        return;
    const char *c = getenv("APG_FAULT_CALL");
    if (c)
        snprintf(want, sizeof(want), "%s", c);
    if (getenv("APG_FAULT_AT"))
        at = atol(getenv("APG_FAULT_AT"));
    if (getenv("APG_FAULT_TIMES"))
        times = atol(getenv("APG_FAULT_TIMES"));
    const char *e = getenv("APG_FAULT_ERRNO");
    if (e && strcmp(e, "ENOSPC") == 0)
        fail_errno = ENOSPC;
    path_filter = getenv("APG_FAULT_PATH");
    log_path = getenv("APG_FAULT_LOG");
    atomic_store(&inited, 1);
}

static int fd_counts(int fd)
{
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode))
        return 0;
    if (!path_filter)
        return 1;
    char link[64], target[4096];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof(target) - 1);
    if (n <= 0)
        return 0;
    target[n] = 0;
    return strstr(target, path_filter) != NULL;
}

/* 1 when this call (of kind `call`, on fd or -1 for msync) is to fail. */
static int shim_fail(const char *call, int fd)
{
    shim_init();
    if (!want[0] || strcmp(want, call) != 0 || (fd >= 0 && !fd_counts(fd)))
        return 0;
    long n = atomic_fetch_add(&seen, 1) + 1;
    if (n < at || (times > 0 && n >= at + times))
        return 0;
    if (log_path) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        char line[128];
        int len = snprintf(line, sizeof(line), "FAULT %s %ld %lld\n", call, n,
                           (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000);
        int lfd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (lfd >= 0) {
            if (syscall(SYS_write, lfd, line, (size_t)len) < 0) {
                /* nothing to do: the log is best effort */
            }
            close(lfd);
        }
    }
    errno = fail_errno;
    return 1;
}

/* The real function: looked up once (a race looks it up twice, harmlessly). */
static void *real(const char *name, void **slot)
{
    if (!*slot)
        *slot = dlsym(RTLD_NEXT, name);
    return *slot;
}

int msync(void *addr, size_t len, int flags)
{
    static void *r;
    int (*f)(void *, size_t, int) = real("msync", &r);
    return shim_fail("msync", -1) ? -1 : f(addr, len, flags);
}

int fsync(int fd)
{
    static void *r;
    int (*f)(int) = real("fsync", &r);
    return shim_fail("fsync", fd) ? -1 : f(fd);
}

int fdatasync(int fd)
{
    static void *r;
    int (*f)(int) = real("fdatasync", &r);
    return shim_fail("fdatasync", fd) ? -1 : f(fd);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    static void *r;
    ssize_t (*f)(int, const void *, size_t, off_t) = real("pwrite", &r);
    return shim_fail("pwrite", fd) ? -1 : f(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    static void *r;
    ssize_t (*f)(int, const void *, size_t, off_t) = real("pwrite64", &r);
    return shim_fail("pwrite", fd) ? -1 : f(fd, buf, n, off);
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
    static void *r;
    ssize_t (*f)(int, const struct iovec *, int, off_t) = real("pwritev", &r);
    return shim_fail("pwrite", fd) ? -1 : f(fd, iov, cnt, off);
}

ssize_t write(int fd, const void *buf, size_t n)
{
    static void *r;
    ssize_t (*f)(int, const void *, size_t) = real("write", &r);
    return shim_fail("write", fd) ? -1 : f(fd, buf, n);
}

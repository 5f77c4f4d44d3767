/* Crash report (see crash.h).
 *
 * The handler may run with any lock held, including malloc's, so it uses
 * only async-signal-safe calls: write(2), backtrace() and
 * backtrace_symbols_fd() (which writes without allocating), sigaction and
 * raise. backtrace() loads libgcc's unwinder on its first call, which
 * allocates; apg_crash_install() calls it once beforehand so the handler never
 * does. Numbers are formatted by hand, as printf is not async-signal-safe.
 *
 * SA_RESETHAND puts the default action back before the handler runs, so the
 * raise() at the end (delivered when the handler returns, the signal being
 * blocked meanwhile) ends the process as the fault would have; a second fault
 * inside the handler ends it too, without a loop. */
#define _GNU_SOURCE /* gettid */
#include "common/crash.h"

#include <errno.h>
#include <execinfo.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#define CRASH_MAX_FRAMES 64

static volatile int crash_fd = 2;
static char crash_altstack[64 * 1024];

static void put(const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(crash_fd, s, n);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

static void put_num(uintptr_t v, unsigned base)
{
    char buf[2 + sizeof(v) * 2 + 1];
    char *p = buf + sizeof(buf);
    *--p = '\0';
    do {
        *--p = "0123456789abcdef"[v % base];
        v /= base;
    } while (v != 0);
    if (base == 16) {
        *--p = 'x';
        *--p = '0';
    }
    put(p);
}

static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGSEGV:
        return "SIGSEGV";
    case SIGBUS:
        return "SIGBUS";
    case SIGFPE:
        return "SIGFPE";
    case SIGILL:
        return "SIGILL";
    case SIGABRT:
        return "SIGABRT";
    default:
        return "signal";
    }
}

static void on_crash(int sig, siginfo_t *si, void *uctx)
{
    (void)uctx;
    int saved_errno = errno;
    put("FATAL [crash] ");
    put(signal_name(sig));
    put(" (signal ");
    put_num((uintptr_t)sig, 10);
    put(")");
    if (si != NULL && si->si_code > 0) { /* a fault, not kill() or raise() */
        put(" at address ");
        put_num((uintptr_t)si->si_addr, 16);
    }
    put(" in thread ");
    put_num((uintptr_t)gettid(), 10);
    put("; stack trace:\n");
    void *frames[CRASH_MAX_FRAMES];
    int n = backtrace(frames, CRASH_MAX_FRAMES);
    backtrace_symbols_fd(frames, n, crash_fd);
    put("FATAL [crash] end of stack trace; re-raising with the default action\n");
    errno = saved_errno;
    raise(sig);
}

void apg_crash_install(int fd)
{
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
    crash_fd = fd;
    void *warm[2];
    (void)backtrace(warm, 2);

    stack_t ss = {.ss_sp = crash_altstack, .ss_size = sizeof(crash_altstack)};
    (void)sigaltstack(&ss, NULL);

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_crash;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        (void)sigaction(sigs[i], &sa, NULL);
}

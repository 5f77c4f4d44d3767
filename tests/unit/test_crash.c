/* Crash report: a child process installs the handler, faults on purpose, and
 * the parent checks that the report (signal line, frames, closing line)
 * reached the given fd and that the child still died of the original signal. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/crash.h"

/* Not static and not inlined, so the frame carries its name (the test is
 * linked with -rdynamic). */
__attribute__((noinline)) void apg_test_crash_deliberately(int how)
{
    if (how == SIGSEGV) {
        /* A real fault: a write to a page with no access. */
        volatile char *p = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        p[0] = 1;
    } else if (how == SIGABRT) {
        abort();
    } else {
        raise(how);
    }
}

/* Runs the crash in a child; returns its report and exit status. */
static char *crash_child(int how, int *status)
{
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        apg_crash_install(pfd[1]);
        apg_test_crash_deliberately(how);
        _exit(0);
    }
    close(pfd[1]);
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    ssize_t r;
    while (len < cap - 1 && (r = read(pfd[0], out + len, cap - 1 - len)) > 0)
        len += (size_t)r;
    out[len] = '\0';
    close(pfd[0]);
    assert_int_equal(waitpid(pid, status, 0), pid);
    return out;
}

/* name: the signal line; frame: a function the trace must show. abort() and
 * raise() leave no frame of their caller that a symbol lookup can name
 * reliably (tail call, cold section), so those cases look for main. */
static void check(int how, const char *name, const char *frame)
{
    int status = 0;
    char *out = crash_child(how, &status);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), how);
    assert_non_null(strstr(out, "FATAL [crash] "));
    assert_non_null(strstr(out, name));
    assert_non_null(strstr(out, frame));
    assert_non_null(strstr(out, "end of stack trace"));
    free(out);
}

static void test_segv(void **state)
{
    check(SIGSEGV, "SIGSEGV (signal 11) at address 0x", "(apg_test_crash_deliberately+");
}

static void test_abort(void **state)
{
    check(SIGABRT, "SIGABRT (signal 6) in thread", "(main+");
}

static void test_fpe(void **state)
{
    check(SIGFPE, "SIGFPE (signal 8) in thread", "(main+");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_segv),
        cmocka_unit_test(test_abort),
        cmocka_unit_test(test_fpe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

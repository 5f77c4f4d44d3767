/* Crash report: a stack trace in the log when the process dies of a fault.
 *
 * apg_crash_install() catches SIGSEGV, SIGBUS, SIGFPE, SIGILL and SIGABRT.
 * The handler writes one log-style line naming the signal and fault address,
 * then the frames (backtrace_symbols_fd: "binary(function+offset) [address]";
 * static functions show as an offset, `addr2line -e apogee ADDR` names them),
 * then re-raises the signal with its default action so the exit status and
 * any core dump are those of the original fault.
 *
 * Call once from the main thread before other threads start; the handler runs
 * on an alternate stack so a stack overflow is reported too (for the thread
 * that installed it; other threads fall back to their own stack). */
#ifndef APG_COMMON_CRASH_H
#define APG_COMMON_CRASH_H

/* fd receives the report (2 = stderr, where the log goes). Safe to call again:
 * the last fd wins. */
void apg_crash_install(int fd);

#endif

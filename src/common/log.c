/* Log lines: "2026-11-21 08:15:02.123 INFO  [namesrv] text" on stderr, or
 * (level, subsystem, text) handed to the callback set with apg_log_set_cb().
 * apg_log_limit_hit is the rate limit for lines that repeat: a compare-and-
 * swap on the next allowed time picks the one event per period that logs. */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static enum apg_log_level log_level = APG_LOG_INFO;
static apg_log_cb log_cb;
static void *log_cb_opaque;

void apg_log_set_level(enum apg_log_level lvl)
{
    log_level = lvl;
}

enum apg_log_level apg_log_get_level(void)
{
    return log_level;
}

void apg_log_set_cb(apg_log_cb cb, void *opaque)
{
    log_cb_opaque = opaque;
    log_cb = cb;
}

void apg_log(enum apg_log_level lvl, const char *subsys, const char *fmt, ...)
{
    static const char *names[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
    if (lvl < log_level)
        return;
    char line[2048];
    int n = 0;
    apg_log_cb cb = log_cb;
    if (cb == NULL) {
        struct timeval tv;
        struct tm tm;
        gettimeofday(&tv, NULL);
        localtime_r(&tv.tv_sec, &tm);
        n = snprintf(line, sizeof(line), "%04d-%02d-%02d %02d:%02d:%02d.%03d %s [%s] ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (int)(tv.tv_usec / 1000), names[lvl], subsys ? subsys : "-");
    }
    va_list ap;
    va_start(ap, fmt);
    if (n < (int)sizeof(line))
        n += vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof(line) - 1)
        n = sizeof(line) - 2;
    if (cb != NULL) {
        line[n] = '\0';
        cb(lvl, subsys ? subsys : "-", line, log_cb_opaque);
        return;
    }
    line[n++] = '\n';
    fwrite(line, 1, n, stderr);
}

bool apg_log_limit_hit(struct apg_log_limit *l, int64_t now_ms, int64_t period_ms, int64_t *quiet)
{
    atomic_fetch_add_explicit(&l->ll_count, 1, memory_order_relaxed);
    long long next = atomic_load_explicit(&l->ll_next_ms, memory_order_relaxed);
    /* One thread wins the slot; the others (and everything before next)
     * only count. */
    if (now_ms < next ||
        !atomic_compare_exchange_strong(&l->ll_next_ms, &next, now_ms + period_ms)) {
        atomic_fetch_add_explicit(&l->ll_quiet, 1, memory_order_relaxed);
        return false;
    }
    *quiet = atomic_exchange_explicit(&l->ll_quiet, 0, memory_order_relaxed);
    return true;
}

/* Logging: one line per event to stderr, with time, level and subsystem, or
 * to the callback a library user installed (include/apogee/log.h, which also
 * declares the levels, apg_log_set_level and apg_log_set_cb).
 *
 * Thread-safe (a single fprintf per line, or one callback call). The level
 * is process-wide and set once at start-up from the config. */
#ifndef APG_COMMON_LOG_H
#define APG_COMMON_LOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "apogee/log.h"

enum apg_log_level apg_log_get_level(void);
void apg_log(enum apg_log_level lvl, const char *subsys, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define apg_log_debug(sub, ...)                                                                    \
    do {                                                                                           \
        if (apg_log_get_level() <= APG_LOG_DEBUG)                                                  \
            apg_log(APG_LOG_DEBUG, sub, __VA_ARGS__);                                              \
    } while (0)
#define apg_log_info(sub, ...) apg_log(APG_LOG_INFO, sub, __VA_ARGS__)
#define apg_log_warn(sub, ...) apg_log(APG_LOG_WARN, sub, __VA_ARGS__)
#define apg_log_error(sub, ...) apg_log(APG_LOG_ERROR, sub, __VA_ARGS__)

/* A rate limit for a line that may repeat thousands of times a second (a
 * refusal, a failing disk): every event is counted, at most one line per
 * period is written, and that line reports how many events went unlogged
 * since the previous one. Zero-initialised; lock-free, any thread. */
struct apg_log_limit {
    atomic_llong ll_next_ms; /* no line before this time */
    atomic_llong ll_count;   /* events since start */
    atomic_llong ll_quiet;   /* events not logged since the last line */
};

/* Counts one event at now_ms. True when the caller should write its line
 * now (the first event, then at most one per period_ms); *quiet then holds
 * the events counted but not logged since the previous line. */
bool apg_log_limit_hit(struct apg_log_limit *l, int64_t now_ms, int64_t period_ms, int64_t *quiet);

#endif

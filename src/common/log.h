/* Logging: one line per event to stderr, with time, level and subsystem, or
 * to the callback a library user installed (include/apogee/log.h, which also
 * declares the levels, apg_log_set_level and apg_log_set_cb).
 *
 * Thread-safe (a single fprintf per line, or one callback call). The level
 * is process-wide and set once at start-up from the config. */
#ifndef APG_COMMON_LOG_H
#define APG_COMMON_LOG_H

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

#endif

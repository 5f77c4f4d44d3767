/* Where the Apogee C client's log lines go.
 *
 * By default each line goes to stderr with time, level and subsystem. A
 * program that owns its logs installs a callback instead; it then receives
 * every line at or above the level set with apg_log_set_level().
 *
 * Both settings are process-wide (every producer and consumer logs through
 * them). Set them before creating handles: changing them while handles run
 * is not synchronized with the threads that log. */
#ifndef APOGEE_LOG_H
#define APOGEE_LOG_H

#include "apogee/export.h"

#ifdef __cplusplus
extern "C" {
#endif

enum apg_log_level { APG_LOG_DEBUG = 0, APG_LOG_INFO, APG_LOG_WARN, APG_LOG_ERROR };

/* A log line: level (enum apg_log_level), subsystem ("client"), the text
 * without time or level prefix (no newline), and the opaque pointer given to
 * apg_log_set_cb(). Called on whatever thread logs, I/O threads included:
 * it must not block long and must not call back into the library. */
typedef void (*apg_log_cb)(int level, const char *subsys, const char *msg, void *opaque);

/* Installs cb (NULL restores stderr). */
APG_EXPORT void apg_log_set_cb(apg_log_cb cb, void *opaque);

/* Lines below lvl are dropped (default APG_LOG_INFO). */
APG_EXPORT void apg_log_set_level(enum apg_log_level lvl);

#ifdef __cplusplus
}
#endif

#endif

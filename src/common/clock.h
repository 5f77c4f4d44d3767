/* Clocks and timed waits, one copy for every module that runs threads.
 *
 * apg_mono_*: CLOCK_MONOTONIC (intervals, deadlines); apg_wall_ms:
 * CLOCK_REALTIME in Java's epoch milliseconds (what the wire and the stored
 * records carry). Threads: no state. */
#ifndef APG_COMMON_CLOCK_H
#define APG_COMMON_CLOCK_H

#include <pthread.h>
#include <stdint.h>

int64_t apg_mono_ns(void);
int64_t apg_mono_ms(void);
int64_t apg_wall_ms(void);

/* pthread_cond_timedwait on cv (mu held) for at most ms milliseconds from
 * now; returns its result (0 or ETIMEDOUT). cv must use the default
 * (CLOCK_REALTIME) clock. */
int apg_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t ms);

#endif

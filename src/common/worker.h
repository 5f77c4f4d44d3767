/* A background thread that runs one step function over and over, sleeping
 * between steps for as long as the step asks, woken early by a kick or by
 * stop. The broker's service thread, the delay-level, timer, transaction
 * check and pop revive threads, and the OTLP exporter are all this shape;
 * each keeps its own state and only says how long it may sleep.
 *
 * The step runs with no lock held. It receives the kick bits set since the
 * step before (0 on a timed wake-up) and returns the ms it may sleep
 * (<= 0: run again at once). A wake-up can come early (a kick, or the
 * condition variable waking on its own), so a step decides from the clock
 * what is due, never from having been called.
 *
 * Threads: apg_worker_kick may be called from any thread; start, stop and
 * destroy by the owner. The sleep uses the monotonic clock, so a wall-clock
 * step does not stretch or cut it. */
#ifndef APG_COMMON_WORKER_H
#define APG_COMMON_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef int64_t (*apg_worker_step_fn)(void *ud, unsigned kicks);

struct apg_worker {
    apg_worker_step_fn w_step;
    void *w_ud;
    pthread_t w_thread;
    pthread_mutex_t w_lock;
    pthread_cond_t w_cond;
    unsigned w_kicks; /* under w_lock */
    bool w_stop;      /* under w_lock */
    bool w_started;   /* owner only */
};

/* Prepares w; nothing runs until apg_worker_start. */
void apg_worker_init(struct apg_worker *w, apg_worker_step_fn step, void *ud);
/* Starts the thread; `what` names it in the error. */
apg_err_t apg_worker_start(struct apg_worker *w, const char *what, char *err, size_t errlen);
/* Sets bits (non-zero) for the next step and wakes the thread. */
void apg_worker_kick(struct apg_worker *w, unsigned bits);
/* Stops the thread after its current step and joins it. Returns whether it
 * had been started (a worker that never ran has nothing to finish). */
bool apg_worker_stop(struct apg_worker *w);
/* Frees the lock and condition; call after apg_worker_stop. */
void apg_worker_destroy(struct apg_worker *w);

#endif

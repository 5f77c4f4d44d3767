/* The step-and-sleep thread of worker.h. One mutex guards the kick bits and
 * the stop flag; the step itself runs unlocked. */
#include "common/worker.h"

#include <time.h>

static void wait_ms(struct apg_worker *w, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&w->w_cond, &w->w_lock, &ts);
}

static void *worker_main(void *arg)
{
    struct apg_worker *w = arg;
    pthread_mutex_lock(&w->w_lock);
    while (!w->w_stop) {
        unsigned kicks = w->w_kicks;
        w->w_kicks = 0;
        pthread_mutex_unlock(&w->w_lock);
        int64_t sleep_ms = w->w_step(w->w_ud, kicks);
        pthread_mutex_lock(&w->w_lock);
        if (sleep_ms > 0 && !w->w_kicks && !w->w_stop)
            wait_ms(w, sleep_ms);
    }
    pthread_mutex_unlock(&w->w_lock);
    return NULL;
}

void apg_worker_init(struct apg_worker *w, apg_worker_step_fn step, void *ud)
{
    w->w_step = step;
    w->w_ud = ud;
    w->w_kicks = 0;
    w->w_stop = false;
    w->w_started = false;
    pthread_mutex_init(&w->w_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->w_cond, &ca);
    pthread_condattr_destroy(&ca);
}

apg_err_t apg_worker_start(struct apg_worker *w, const char *what, char *err, size_t errlen)
{
    if (pthread_create(&w->w_thread, NULL, worker_main, w) != 0)
        return apg_errf(APG_EIO, err, errlen, "cannot start the %s thread", what);
    w->w_started = true;
    return APG_OK;
}

void apg_worker_kick(struct apg_worker *w, unsigned bits)
{
    pthread_mutex_lock(&w->w_lock);
    w->w_kicks |= bits;
    pthread_cond_signal(&w->w_cond);
    pthread_mutex_unlock(&w->w_lock);
}

bool apg_worker_stop(struct apg_worker *w)
{
    if (!w->w_started)
        return false;
    pthread_mutex_lock(&w->w_lock);
    w->w_stop = true;
    pthread_cond_signal(&w->w_cond);
    pthread_mutex_unlock(&w->w_lock);
    pthread_join(w->w_thread, NULL);
    w->w_started = false;
    return true;
}

void apg_worker_destroy(struct apg_worker *w)
{
    pthread_mutex_destroy(&w->w_lock);
    pthread_cond_destroy(&w->w_cond);
}

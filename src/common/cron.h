/* A table of periodic jobs for a service thread (Redis serverCron with
 * run_with_period, as rows instead of one next_* variable per job).
 *
 * The owner declares an array of struct apg_cron_job (name, period, first
 * delay, function), calls apg_cron_start once, then in its loop calls
 * apg_cron_run, which runs every job that is due or was kicked and returns
 * how long the thread may sleep before the next one is due. A job's next run
 * is counted from the time it ran, so a slow job delays only itself.
 *
 * Threads: a table belongs to the one thread that runs it; apg_cron_kick is
 * called by that thread too (other threads set a flag under the owner's lock
 * and the owner kicks). Pure: no clock is read here. */
#ifndef APG_COMMON_CRON_H
#define APG_COMMON_CRON_H

#include <stdbool.h>
#include <stdint.h>

typedef void (*apg_cron_fn)(void *ud, int64_t now_ms);

struct apg_cron_job {
    const char *cj_name;
    int64_t cj_period_ms; /* <= 0: runs only when kicked */
    int64_t cj_first_ms;  /* delay of the first run after apg_cron_start */
    apg_cron_fn cj_fn;
    /* private */
    int64_t cj_next_ms;
    bool cj_kicked;
};

/* Schedules each job's first run at now_ms + cj_first_ms. */
void apg_cron_start(struct apg_cron_job *jobs, int n, int64_t now_ms);
/* Makes job i run at the next apg_cron_run regardless of its period. */
void apg_cron_kick(struct apg_cron_job *jobs, int i);
/* Runs, in table order, every job that is due at now_ms or kicked, passing
 * ud and now_ms; reschedules each at now_ms + period. Returns the ms until
 * the next job is due (0 when one already is; INT64_MAX when none is
 * periodic). */
int64_t apg_cron_run(struct apg_cron_job *jobs, int n, void *ud, int64_t now_ms);
/* The ms until the next job is due, without running anything. */
int64_t apg_cron_wait_ms(const struct apg_cron_job *jobs, int n, int64_t now_ms);

#endif

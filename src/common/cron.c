/* Periodic jobs as table rows (see cron.h). The table is small (a handful
 * of jobs), so every call is a linear scan; nothing allocates. */
#include "common/cron.h"

void apg_cron_start(struct apg_cron_job *jobs, int n, int64_t now_ms)
{
    for (int i = 0; i < n; i++) {
        jobs[i].cj_next_ms = jobs[i].cj_period_ms > 0 || jobs[i].cj_first_ms > 0
                                 ? now_ms + jobs[i].cj_first_ms
                                 : INT64_MAX;
        jobs[i].cj_kicked = false;
    }
}

void apg_cron_kick(struct apg_cron_job *jobs, int i)
{
    jobs[i].cj_kicked = true;
}

/* When job j is due next: now when kicked, else its period. */
static int64_t due_ms(const struct apg_cron_job *j)
{
    return j->cj_kicked ? INT64_MIN : j->cj_next_ms;
}

int64_t apg_cron_wait_ms(const struct apg_cron_job *jobs, int n, int64_t now_ms)
{
    int64_t wait = INT64_MAX;
    for (int i = 0; i < n; i++) {
        int64_t due = due_ms(&jobs[i]);
        if (due <= now_ms)
            return 0;
        if (due - now_ms < wait)
            wait = due - now_ms;
    }
    return wait;
}

int64_t apg_cron_run(struct apg_cron_job *jobs, int n, void *ud, int64_t now_ms)
{
    for (int i = 0; i < n; i++) {
        struct apg_cron_job *j = &jobs[i];
        if (due_ms(j) > now_ms)
            continue;
        j->cj_kicked = false;
        j->cj_fn(ud, now_ms);
        j->cj_next_ms = j->cj_period_ms > 0 ? now_ms + j->cj_period_ms : INT64_MAX;
    }
    return apg_cron_wait_ms(jobs, n, now_ms);
}

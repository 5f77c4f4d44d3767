/* The broker's service thread: one table of periodic jobs (common/cron.h).
 *
 *   job               period                          also run when
 *   register          registerNameServerPeriod        a topic changed
 *   persist offsets   flushConsumerOffsetInterval
 *   table writer      flushConsumerOffsetInterval     (wakes the writer:
 *                                                     retries a failed write)
 *   statistics        1 s (first at start)
 *   expire clients    10 s
 *
 * A kicked registration runs at once when none ran lately: a client may
 * look up the route of a topic it auto-created a few milliseconds after its
 * first send. Kicks that arrive while a registration is under way coalesce
 * into the next one, and that one starts no sooner than the last one took
 * after it ended, so registration (the whole topic table, encoded here and
 * parsed by every NameServer) keeps at most half of the time: creating
 * 10,000 topics one by one left the broker's in-process NameServer busy
 * parsing REGISTER_BROKER bodies for 59% of the broker's CPU samples when
 * registrations ran back to back (perf record, bench/topics_create.mjs).
 *
 * Threads: other threads ask for a job with apg_broker_service_kick (a bit
 * in br_svc_kicks under br_svc_lock, and a signal); only this thread
 * touches the job table. apg_broker_service_stop joins the thread. */
#include <stdio.h>

#include "broker/acl/acl_broker.h"
#include "broker/broker_rt.h"
#include "common/cron.h"
#include "common/log.h"

enum {
    JOB_REGISTER,
    JOB_PERSIST_OFFSETS,
    JOB_PERSIST_TABLES,
    JOB_STATS,
    JOB_EXPIRE,
    JOB_ACL,
    JOB_N
};

/* How long the thread sleeps at most, so a missed signal costs little. */
#define SVC_MAX_SLEEP_MS 1000

static void job_persist_tables(void *ud, int64_t now_ms)
{
    (void)now_ms;
    apg_broker_tables_kick(ud);
}

static void job_register(void *ud, int64_t now_ms)
{
    (void)now_ms;
    struct apg_broker *b = ud;
    int64_t t0 = apg_wall_ms();
    apg_broker_register(b, false);
    int64_t t1 = apg_wall_ms();
    b->br_reg_not_before = t1 + (t1 - t0);
}

static void job_persist_offsets(void *ud, int64_t now_ms)
{
    (void)now_ms;
    struct apg_broker *b = ud;
    char err[512];
    if (apg_offsets_persist(b->br_offsets, false, err, sizeof(err)))
        apg_log_error("broker", "persisting consumer offsets failed: %s", err);
}

static void job_stats(void *ud, int64_t now_ms)
{
    apg_broker_stats_tick(ud, now_ms);
}

static void job_expire(void *ud, int64_t now_ms)
{
    struct apg_broker *b = ud;
    apg_clients_expire(b, now_ms);
    apg_locks_expire(b->br_locks, apg_mono_ms()); /* leases run on the monotonic clock */
}

static void job_acl(void *ud, int64_t now_ms)
{
    (void)now_ms;
    apg_broker_acl_reload(ud);
}

void apg_broker_persist_all(struct apg_broker *b)
{
    job_persist_offsets(b, 0);
    apg_broker_tables_persist(b, true);
}

void apg_broker_service_kick(struct apg_broker *b, unsigned bits)
{
    pthread_mutex_lock(&b->br_svc_lock);
    b->br_svc_kicks |= bits;
    pthread_cond_signal(&b->br_svc_cond);
    pthread_mutex_unlock(&b->br_svc_lock);
}

static void *service_main(void *arg)
{
    struct apg_broker *b = arg;
    const struct apg_config *cfg = b->br_cfg;
    int64_t flush_ms = apg_cfg_int(cfg, APG_CFG_flushConsumerOffsetInterval);
    int64_t reg_ms = apg_cfg_int(cfg, APG_CFG_registerNameServerPeriod);
    struct apg_cron_job jobs[JOB_N] = {
        [JOB_REGISTER] = {.cj_name = "register",
                          .cj_period_ms = reg_ms,
                          .cj_first_ms = reg_ms,
                          .cj_fn = job_register},
        [JOB_PERSIST_OFFSETS] = {.cj_name = "persist offsets",
                                 .cj_period_ms = flush_ms,
                                 .cj_first_ms = flush_ms,
                                 .cj_fn = job_persist_offsets},
        [JOB_PERSIST_TABLES] = {.cj_name = "table writer",
                                .cj_period_ms = flush_ms,
                                .cj_first_ms = flush_ms,
                                .cj_fn = job_persist_tables},
        [JOB_STATS] = {.cj_name = "statistics",
                       .cj_period_ms = 1000,
                       .cj_first_ms = 0,
                       .cj_fn = job_stats},
        [JOB_EXPIRE] = {.cj_name = "expire clients",
                        .cj_period_ms = 10000,
                        .cj_first_ms = 10000,
                        .cj_fn = job_expire},
        [JOB_ACL] = {.cj_name = "acl reload",
                     .cj_period_ms = 1000,
                     .cj_first_ms = 1000,
                     .cj_fn = job_acl},
    };
    apg_cron_start(jobs, JOB_N, apg_wall_ms());
    bool reg_wanted = false;
    pthread_mutex_lock(&b->br_svc_lock);
    while (!b->br_stopping) {
        unsigned kicks = b->br_svc_kicks;
        b->br_svc_kicks = 0;
        int64_t now = apg_wall_ms();
        if (kicks & APG_BSVC_REGISTER)
            reg_wanted = true;
        if (reg_wanted && now >= b->br_reg_not_before) {
            apg_cron_kick(jobs, JOB_REGISTER);
            reg_wanted = false;
        }
        int64_t wait = apg_cron_wait_ms(jobs, JOB_N, now);
        if (reg_wanted && b->br_reg_not_before - now < wait)
            wait = b->br_reg_not_before - now;
        if (wait > 0) {
            apg_cond_wait_ms(&b->br_svc_cond, &b->br_svc_lock,
                             wait < SVC_MAX_SLEEP_MS ? wait : SVC_MAX_SLEEP_MS);
            continue;
        }
        pthread_mutex_unlock(&b->br_svc_lock);
        apg_cron_run(jobs, JOB_N, b, apg_wall_ms());
        pthread_mutex_lock(&b->br_svc_lock);
    }
    pthread_mutex_unlock(&b->br_svc_lock);
    return NULL;
}

apg_err_t apg_broker_service_start(struct apg_broker *b, char *err, size_t errlen)
{
    if (pthread_create(&b->br_svc, NULL, service_main, b) != 0)
        return apg_errf(APG_EIO, err, errlen, "cannot start the broker service thread");
    b->br_svc_started = true;
    return APG_OK;
}

void apg_broker_service_stop(struct apg_broker *b)
{
    if (!b->br_svc_started)
        return;
    pthread_mutex_lock(&b->br_svc_lock);
    b->br_stopping = true;
    pthread_cond_signal(&b->br_svc_cond);
    pthread_mutex_unlock(&b->br_svc_lock);
    pthread_join(b->br_svc, NULL);
    b->br_svc_started = false;
}

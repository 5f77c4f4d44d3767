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
 * Threads: the thread is a common/worker (br_svc); other threads ask for a
 * job with apg_broker_service_kick (a kick bit); only this thread touches
 * the job table and br_svc_reg_wanted. apg_broker_service_stop joins it. */
#include <stdio.h>

#include "broker/acl/acl_broker.h"
#include "broker/broker_rt.h"
#include "common/cron.h"
#include "common/log.h"
#include "common/worker.h"

enum {
    JOB_REGISTER,
    JOB_PERSIST_OFFSETS,
    JOB_PERSIST_TABLES,
    JOB_STATS,
    JOB_EXPIRE,
    JOB_ACL,
    JOB_SLAVE_SYNC,
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

static void job_slave_sync(void *ud, int64_t now_ms)
{
    apg_broker_slave_sync(ud, now_ms);
}

void apg_broker_persist_all(struct apg_broker *b)
{
    job_persist_offsets(b, 0);
    apg_broker_tables_persist(b, true);
}

void apg_broker_service_kick(struct apg_broker *b, unsigned bits)
{
    apg_worker_kick(&b->br_svc, bits);
}

/* Service thread: a kicked registration when allowed, then every due job. */
static int64_t service_step(void *arg, unsigned kicks)
{
    struct apg_broker *b = arg;
    struct apg_cron_job *jobs = b->br_svc_jobs;
    int64_t now = apg_wall_ms();
    if (kicks & APG_BSVC_REGISTER)
        b->br_svc_reg_wanted = true;
    if (b->br_svc_reg_wanted && now >= b->br_reg_not_before) {
        apg_cron_kick(jobs, JOB_REGISTER);
        b->br_svc_reg_wanted = false;
    }
    int64_t wait = apg_cron_run(jobs, JOB_N, b, now);
    now = apg_wall_ms();
    if (b->br_svc_reg_wanted && b->br_reg_not_before - now < wait)
        wait = b->br_reg_not_before - now;
    return wait < SVC_MAX_SLEEP_MS ? wait : SVC_MAX_SLEEP_MS;
}

void apg_broker_service_init(struct apg_broker *b)
{
    apg_worker_init(&b->br_svc, service_step, b);
}

apg_err_t apg_broker_service_start(struct apg_broker *b, char *err, size_t errlen)
{
    const struct apg_config *cfg = b->br_cfg;
    int64_t flush_ms = apg_cfg_int(cfg, APG_CFG_flushConsumerOffsetInterval);
    int64_t reg_ms = apg_cfg_int(cfg, APG_CFG_registerNameServerPeriod);
    _Static_assert(JOB_N == APG_BSVC_JOBS, "br_svc_jobs holds the job table");
    struct apg_cron_job *jobs = b->br_svc_jobs;
    jobs[JOB_REGISTER] = (struct apg_cron_job){.cj_name = "register",
                                               .cj_period_ms = reg_ms,
                                               .cj_first_ms = reg_ms,
                                               .cj_fn = job_register};
    jobs[JOB_PERSIST_OFFSETS] = (struct apg_cron_job){.cj_name = "persist offsets",
                                                      .cj_period_ms = flush_ms,
                                                      .cj_first_ms = flush_ms,
                                                      .cj_fn = job_persist_offsets};
    jobs[JOB_PERSIST_TABLES] = (struct apg_cron_job){.cj_name = "table writer",
                                                     .cj_period_ms = flush_ms,
                                                     .cj_first_ms = flush_ms,
                                                     .cj_fn = job_persist_tables};
    jobs[JOB_STATS] = (struct apg_cron_job){
        .cj_name = "statistics", .cj_period_ms = 1000, .cj_first_ms = 0, .cj_fn = job_stats};
    jobs[JOB_EXPIRE] = (struct apg_cron_job){.cj_name = "expire clients",
                                             .cj_period_ms = 10000,
                                             .cj_first_ms = 10000,
                                             .cj_fn = job_expire};
    jobs[JOB_ACL] = (struct apg_cron_job){
        .cj_name = "acl reload", .cj_period_ms = 1000, .cj_first_ms = 1000, .cj_fn = job_acl};
    /* A slave looks for its master every 2 s until the NameServer names
     * one, then copies its metadata every 10 s (broker_ha.c). */
    jobs[JOB_SLAVE_SYNC] = (struct apg_cron_job){.cj_name = "slave metadata sync",
                                                 .cj_period_ms = b->br_slave ? 2000 : 86400000,
                                                 .cj_first_ms = b->br_slave ? 1000 : 86400000,
                                                 .cj_fn = job_slave_sync};
    apg_cron_start(jobs, JOB_N, apg_wall_ms());
    b->br_svc_reg_wanted = false;
    return apg_worker_start(&b->br_svc, "broker service", err, errlen);
}

bool apg_broker_service_stop(struct apg_broker *b)
{
    return apg_worker_stop(&b->br_svc);
}

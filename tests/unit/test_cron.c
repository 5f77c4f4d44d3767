/* common/cron: periodic jobs as table rows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/cron.h"

struct runs {
    int r_a, r_b;
    int64_t r_last_now;
};

static void job_a(void *ud, int64_t now_ms)
{
    struct runs *r = ud;
    r->r_a++;
    r->r_last_now = now_ms;
}

static void job_b(void *ud, int64_t now_ms)
{
    (void)now_ms;
    ((struct runs *)ud)->r_b++;
}

static void test_cron_periods(void **st)
{
    (void)st;
    struct runs r = {0};
    struct apg_cron_job jobs[] = {
        {.cj_name = "a", .cj_period_ms = 100, .cj_first_ms = 0, .cj_fn = job_a},
        {.cj_name = "b", .cj_period_ms = 1000, .cj_first_ms = 500, .cj_fn = job_b},
    };
    apg_cron_start(jobs, 2, 10000);
    /* a is due at once, b after its first delay. */
    assert_int_equal(apg_cron_wait_ms(jobs, 2, 10000), 0);
    assert_int_equal(apg_cron_run(jobs, 2, &r, 10000), 100);
    assert_int_equal(r.r_a, 1);
    assert_int_equal(r.r_b, 0);
    assert_int_equal(apg_cron_run(jobs, 2, &r, 10050), 50);
    assert_int_equal(r.r_a, 1);
    /* Late: a runs once, its next run counted from now. */
    assert_int_equal(apg_cron_run(jobs, 2, &r, 10450), 50);
    assert_int_equal(r.r_a, 2);
    assert_int_equal(r.r_last_now, 10450);
    assert_int_equal(apg_cron_run(jobs, 2, &r, 10500), 50);
    assert_int_equal(r.r_b, 1);
    assert_int_equal(r.r_a, 2);
}

static void test_cron_kick(void **st)
{
    (void)st;
    struct runs r = {0};
    struct apg_cron_job jobs[] = {
        {.cj_name = "a", .cj_period_ms = 100, .cj_first_ms = 100, .cj_fn = job_a},
        {.cj_name = "kicked only", .cj_period_ms = 0, .cj_first_ms = 0, .cj_fn = job_b},
    };
    apg_cron_start(jobs, 2, 0);
    assert_int_equal(apg_cron_wait_ms(jobs, 2, 0), 100);
    apg_cron_kick(jobs, 1);
    assert_int_equal(apg_cron_wait_ms(jobs, 2, 0), 0);
    assert_int_equal(apg_cron_run(jobs, 2, &r, 10), 90);
    assert_int_equal(r.r_b, 1);
    assert_int_equal(r.r_a, 0);
    /* A kick runs a periodic job early and restarts its period. */
    apg_cron_kick(jobs, 0);
    assert_int_equal(apg_cron_run(jobs, 2, &r, 20), 100);
    assert_int_equal(r.r_a, 1);
    assert_int_equal(r.r_b, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cron_periods),
        cmocka_unit_test(test_cron_kick),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

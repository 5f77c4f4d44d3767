/* common/worker: the step-and-sleep thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdatomic.h>
#include <time.h>

#include "common/clock.h"
#include "common/worker.h"

struct steps {
    atomic_int s_n;
    atomic_uint s_kicks; /* OR of every step's kicks */
    int64_t s_sleep_ms;
};

static int64_t step(void *ud, unsigned kicks)
{
    struct steps *s = ud;
    atomic_fetch_or(&s->s_kicks, kicks);
    atomic_fetch_add(&s->s_n, 1);
    return s->s_sleep_ms;
}

static void wait_for(atomic_int *n, int at_least, int64_t limit_ms)
{
    int64_t end = apg_mono_ms() + limit_ms;
    while (atomic_load(n) < at_least && apg_mono_ms() < end) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

/* A step that asks for a long sleep is run again at once when kicked, sees
 * the kick bits, and stop does not wait for the sleep to end. */
static void test_worker_kick_and_stop(void **st)
{
    (void)st;
    struct steps s = {.s_sleep_ms = 60000};
    struct apg_worker w;
    apg_worker_init(&w, step, &s);
    char err[128];
    assert_int_equal(apg_worker_start(&w, "test", err, sizeof(err)), 0);
    wait_for(&s.s_n, 1, 5000);
    assert_int_equal(atomic_load(&s.s_n), 1);
    assert_int_equal(atomic_load(&s.s_kicks), 0);
    apg_worker_kick(&w, 0x4);
    wait_for(&s.s_n, 2, 5000);
    assert_int_equal(atomic_load(&s.s_n), 2);
    assert_int_equal(atomic_load(&s.s_kicks), 0x4);
    int64_t t0 = apg_mono_ms();
    assert_true(apg_worker_stop(&w));
    assert_true(apg_mono_ms() - t0 < 5000);
    assert_false(apg_worker_stop(&w)); /* already joined */
    apg_worker_destroy(&w);
}

/* A step that returns 0 runs again at once; a short sleep is honoured. */
static void test_worker_sleeps(void **st)
{
    (void)st;
    struct steps s = {.s_sleep_ms = 0};
    struct apg_worker w;
    apg_worker_init(&w, step, &s);
    char err[128];
    assert_int_equal(apg_worker_start(&w, "test", err, sizeof(err)), 0);
    wait_for(&s.s_n, 50, 5000);
    assert_true(atomic_load(&s.s_n) >= 50);
    apg_worker_stop(&w);
    apg_worker_destroy(&w);

    struct steps t = {.s_sleep_ms = 200};
    apg_worker_init(&w, step, &t);
    assert_int_equal(apg_worker_start(&w, "test", err, sizeof(err)), 0);
    wait_for(&t.s_n, 1, 5000);
    int64_t t0 = apg_mono_ms();
    wait_for(&t.s_n, 2, 5000);
    int64_t slept = apg_mono_ms() - t0;
    assert_true(slept >= 150);
    apg_worker_stop(&w);
    apg_worker_destroy(&w);
}

/* A worker never started has nothing to stop; kicks before start are kept
 * for the first step. */
static void test_worker_not_started(void **st)
{
    (void)st;
    struct steps s = {.s_sleep_ms = 60000};
    struct apg_worker w;
    apg_worker_init(&w, step, &s);
    apg_worker_kick(&w, 0x1);
    assert_false(apg_worker_stop(&w));
    char err[128];
    assert_int_equal(apg_worker_start(&w, "test", err, sizeof(err)), 0);
    wait_for(&s.s_n, 1, 5000);
    assert_int_equal(atomic_load(&s.s_kicks), 0x1);
    assert_true(apg_worker_stop(&w));
    apg_worker_destroy(&w);
    assert_int_equal(atomic_load(&s.s_n), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_worker_kick_and_stop),
        cmocka_unit_test(test_worker_sleeps),
        cmocka_unit_test(test_worker_not_started),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

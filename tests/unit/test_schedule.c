/* Delay levels: messageDelayLevel parsing (store/store_cfg.c) and the
 * property rewrite and level choice of broker/schedule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "broker/schedule/schedule.h"
#include "protocol/props.h"
#include "store/store.h"

static void test_levels_parse(void **st)
{
    (void)st;
    int64_t ms[APG_DELAY_LEVELS_MAX];
    char err[256];
    int n = apg_delay_levels_parse("1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h", ms,
                                   APG_DELAY_LEVELS_MAX, err, sizeof(err));
    assert_int_equal(n, 18);
    assert_int_equal(ms[0], 1000);
    assert_int_equal(ms[2], 10000);
    assert_int_equal(ms[4], 60000);
    assert_int_equal(ms[16], 3600000);
    assert_int_equal(ms[17], 7200000);
    assert_int_equal(apg_delay_levels_parse("2d", ms, 4, err, sizeof(err)), 1);
    assert_int_equal(ms[0], 2 * 86400000LL);
    /* Each refusal names what is wrong. */
    assert_int_equal(apg_delay_levels_parse("1s 5x", ms, 4, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "level 2 is '5x'"));
    assert_int_equal(apg_delay_levels_parse("", ms, 4, err, sizeof(err)), -1);
    assert_int_equal(apg_delay_levels_parse("s", ms, 4, err, sizeof(err)), -1);
    assert_int_equal(apg_delay_levels_parse("1s  2s", ms, 4, err, sizeof(err)), -1);
    assert_int_equal(apg_delay_levels_parse("1s 2s 3s", ms, 2, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "more than 2"));
}

static void test_props_rewrite(void **st)
{
    (void)st;
    const char in[] = "DELAY\0012\002KEYS\001k1\002REAL_TOPIC\001old\002TAGS\001A\002";
    struct apg_buf b = APG_BUF_INIT;
    assert_int_equal(apg_schedule_props(&b, in, sizeof(in) - 1, 3, "%RETRY%G", 1), APG_OK);
    const char want[] = "KEYS\001k1\002TAGS\001A\002DELAY\0013\002REAL_TOPIC\001%RETRY%G\002"
                        "REAL_QID\0011\002";
    assert_int_equal(b.b_len, sizeof(want) - 1);
    assert_memory_equal(b.b_data, want, sizeof(want) - 1);
    apg_buf_free(&b);
}

static void test_level_without_schedule(void **st)
{
    (void)st;
    /* No schedule (not started): nothing waits. */
    assert_int_equal(apg_schedule_level(NULL, "2", 1, 0), 0);
    assert_int_equal(apg_schedule_max_level(NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_levels_parse),
        cmocka_unit_test(test_props_rewrite),
        cmocka_unit_test(test_level_without_schedule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

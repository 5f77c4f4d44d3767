/* grpc-timeout header values: every unit, rounding up to milliseconds,
 * and the malformed forms (no unit, no digits, more than 8 digits, an
 * unknown unit) refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/grpc/grpc_server.h"

static uint64_t parse(const char *v, apg_err_t want)
{
    uint64_t ms = 12345;
    assert_int_equal(apg_grpc_timeout_parse(v, strlen(v), &ms), want);
    return ms;
}

static void test_units(void **st)
{
    assert_int_equal(parse("2H", APG_OK), 7200000);
    assert_int_equal(parse("3M", APG_OK), 180000);
    assert_int_equal(parse("5S", APG_OK), 5000);
    assert_int_equal(parse("250m", APG_OK), 250);
    assert_int_equal(parse("0m", APG_OK), 0);
    assert_int_equal(parse("1500u", APG_OK), 2);
    assert_int_equal(parse("1n", APG_OK), 1);
    assert_int_equal(parse("99999999S", APG_OK), 99999999000ull);
}

static void test_malformed(void **st)
{
    parse("", APG_EINVAL);
    parse("S", APG_EINVAL);
    parse("10", APG_EINVAL);
    parse("123456789S", APG_EINVAL);
    parse("10s", APG_EINVAL);
    parse("1 S", APG_EINVAL);
    parse("-1S", APG_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_units),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for the library-wide public calls of the C client: error names,
 * descriptions and the retry rule, broker response codes, the folding of
 * internal codes onto public ones. The public header is included before the
 * internal one on purpose: both orders must compile. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "apogee/apogee.h"
#include "common/err.h"

static void test_err_names(void **state)
{
    assert_string_equal(apg_err_name(APG_OK), "APG_OK");
    assert_string_equal(apg_err_name(APG_ETIMEDOUT), "APG_ETIMEDOUT");
    assert_string_equal(apg_err_name(APG_EBROKER), "APG_EBROKER");
    assert_string_equal(apg_err_name(-1000), "APG_E?");
    assert_string_equal(apg_err_describe(APG_ETIMEDOUT), "timed out");
    assert_true(apg_err_is_retriable(APG_ETIMEDOUT));
    assert_true(apg_err_is_retriable(APG_EBUSY));
    assert_false(apg_err_is_retriable(APG_EINVAL));
    assert_false(apg_err_is_retriable(APG_OK));
    assert_string_equal(apg_broker_code_name(17), "TOPIC_NOT_EXIST");
    assert_string_equal(apg_broker_code_name(2), "SYSTEM_BUSY");
    assert_null(apg_broker_code_name(-5));
    assert_true(apg_broker_code_is_retriable(2));
    assert_false(apg_broker_code_is_retriable(13)); /* MESSAGE_ILLEGAL */
}

/* Every internal code folds onto a code of the public list. */
static void test_err_public(void **state)
{
#define CHECK(name, val, text, retriable)                                                          \
    assert_string_not_equal(apg_err_name(apg_err_public(name)), "APG_E?");                         \
    assert_int_not_equal(apg_err_public(name), name);
    APG_ERR_INTERNAL_LIST(CHECK)
#undef CHECK
    assert_int_equal(apg_err_public(APG_ETIMEDOUT), APG_ETIMEDOUT);
    assert_int_equal(apg_err_public(APG_ECORRUPT), APG_EPROTO);
    assert_int_equal(apg_err_public(-1000), APG_EIO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_err_names),
        cmocka_unit_test(test_err_public),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

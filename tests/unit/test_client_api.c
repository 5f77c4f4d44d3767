/* Unit tests for the library-wide public calls of the C client: error names,
 * descriptions and the retry rule, broker response codes, the folding of
 * internal codes onto public ones; configuration objects (defaults, typed
 * parsing, bounds, copies); version macros and call; the log callback. The public header is
 * included before the internal one on purpose: both orders must compile. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "apogee/apogee.h"
#include "common/err.h"
#include "common/log.h"

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

static void conf_expect(const apg_conf_t *c, const char *key, const char *want)
{
    char out[128];
    size_t n = sizeof(out);
    assert_int_equal(apg_conf_get(c, key, out, &n), APG_OK);
    assert_string_equal(out, want);
    assert_int_equal(n, strlen(want) + 1);
}

static void test_conf(void **state)
{
    char err[256];
    apg_conf_t *c = apg_conf_new();
    assert_non_null(c);
    /* Defaults come from the table. */
    conf_expect(c, "sendMsgTimeout", "3000");
    conf_expect(c, "producerGroup", "DEFAULT_PRODUCER");
    conf_expect(c, "namesrvAddr", "");
    conf_expect(c, "messageModel", "CLUSTERING");
    conf_expect(c, "consumeOrderly", "false");
    conf_expect(c, "syncSpinMicros", "40");
    /* Typed values, bounds, choices, unknown keys. */
    assert_int_equal(apg_conf_set(c, "namesrvAddr", "127.0.0.1:9876", err, sizeof(err)), APG_OK);
    assert_int_equal(apg_conf_set(c, "sendMsgTimeout", "5000", err, sizeof(err)), APG_OK);
    assert_int_equal(apg_conf_set(c, "sendMsgTimeout", "5s", err, sizeof(err)), APG_EINVAL);
    assert_non_null(strstr(err, "sendMsgTimeout takes an integer"));
    assert_int_equal(apg_conf_set(c, "compressLevel", "10", err, sizeof(err)), APG_EINVAL);
    assert_non_null(strstr(err, "0..9"));
    assert_int_equal(apg_conf_set(c, "messageModel", "broadcasting", err, sizeof(err)), APG_OK);
    assert_int_equal(apg_conf_set(c, "messageModel", "BOTH", err, sizeof(err)), APG_EINVAL);
    assert_int_equal(apg_conf_set(c, "consumeOrderly", "true", err, sizeof(err)), APG_OK);
    assert_int_equal(apg_conf_set(c, "consumeOrderly", "yes", err, sizeof(err)), APG_EINVAL);
    assert_int_equal(apg_conf_set(c, "noSuchKey", "1", err, sizeof(err)), APG_ENOTFOUND);
    assert_non_null(strstr(err, "noSuchKey"));
    conf_expect(c, "namesrvAddr", "127.0.0.1:9876");
    conf_expect(c, "sendMsgTimeout", "5000");
    conf_expect(c, "messageModel", "BROADCASTING");
    conf_expect(c, "consumeOrderly", "true");
    /* Size query and a short buffer. */
    size_t n = 0;
    assert_int_equal(apg_conf_get(c, "namesrvAddr", NULL, &n), APG_OK);
    assert_int_equal(n, sizeof("127.0.0.1:9876"));
    char small[4];
    n = sizeof(small);
    assert_int_equal(apg_conf_get(c, "namesrvAddr", small, &n), APG_ETOOBIG);
    assert_int_equal(apg_conf_get(c, "noSuchKey", NULL, &n), APG_ENOTFOUND);
    /* A copy owns its strings: changing or freeing the original leaves it. */
    apg_conf_t *d = apg_conf_dup(c);
    assert_int_equal(apg_conf_set(c, "namesrvAddr", "10.0.0.1:9876", err, sizeof(err)), APG_OK);
    assert_int_equal(apg_conf_set(c, "namesrvAddr", "", err, sizeof(err)), APG_OK);
    conf_expect(c, "namesrvAddr", "");
    apg_conf_destroy(c);
    conf_expect(d, "namesrvAddr", "127.0.0.1:9876");
    apg_conf_destroy(d);
    apg_conf_destroy(NULL);
}

/* Constructors refuse a conf without its required keys, and NULL. */
static void test_conf_required(void **state)
{
    char err[256];
    apg_conf_t *c = apg_conf_new();
    assert_null(apg_producer_new(NULL, err, sizeof(err)));
    assert_null(apg_producer_new(c, err, sizeof(err)));
    assert_null(apg_pull_consumer_new(c, err, sizeof(err)));
    assert_non_null(strstr(err, "consumerGroup"));
    assert_int_equal(apg_conf_set(c, "consumerGroup", "G", err, sizeof(err)), APG_OK);
    assert_null(apg_push_consumer_new(c, err, sizeof(err)));
    assert_non_null(strstr(err, "namesrvAddr"));
    apg_conf_destroy(c);
}

static void test_version(void **state)
{
    char want[32];
    snprintf(want, sizeof(want), "%d.%d.%d", APG_VERSION_MAJOR, APG_VERSION_MINOR,
             APG_VERSION_PATCH);
    assert_string_equal(APG_VERSION, want);
    assert_string_equal(apg_version(), APG_VERSION);
    assert_int_equal(apg_version_num(), APG_VERSION_NUM);
}

struct logged {
    int n, level;
    char subsys[32], msg[256];
};

static void on_log(int level, const char *subsys, const char *msg, void *opaque)
{
    struct logged *l = opaque;
    l->n++;
    l->level = level;
    snprintf(l->subsys, sizeof(l->subsys), "%s", subsys);
    snprintf(l->msg, sizeof(l->msg), "%s", msg);
}

/* Lines reach the callback without the time prefix, filtered by level. */
static void test_log_cb(void **state)
{
    struct logged l = {0};
    apg_log_set_cb(on_log, &l);
    apg_log_set_level(APG_LOG_WARN);
    apg_log_info("client", "dropped %d", 1);
    apg_log_warn("client", "kept %d", 2);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.level, APG_LOG_WARN);
    assert_string_equal(l.subsys, "client");
    assert_string_equal(l.msg, "kept 2");
    apg_log_set_cb(NULL, NULL);
    apg_log_set_level(APG_LOG_INFO);
    apg_log_error("client", "to stderr");
    assert_int_equal(l.n, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_err_names), cmocka_unit_test(test_err_public),
        cmocka_unit_test(test_conf),      cmocka_unit_test(test_conf_required),
        cmocka_unit_test(test_version),   cmocka_unit_test(test_log_cb),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

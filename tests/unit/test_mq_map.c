/* MessageQueue-keyed maps in fastjson's form (src/protocol/mq_map.c): what
 * the broker writes reads back, other top-level fields are skipped, and
 * malformed or cut text is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "protocol/mq_map.h"

struct got {
    int n;
    char broker[8][64], topic[8][64];
    int32_t qid[8];
    int64_t val[8];
};

static apg_err_t collect(void *ud, const char *broker, int32_t qid, const char *topic, int64_t v)
{
    struct got *g = ud;
    if (g->n >= 8)
        return APG_ENOMEM;
    snprintf(g->broker[g->n], 64, "%s", broker);
    snprintf(g->topic[g->n], 64, "%s", topic);
    g->qid[g->n] = qid;
    g->val[g->n++] = v;
    return APG_OK;
}

static void test_round_trip(void **state)
{
    (void)state;
    struct apg_buf b = APG_BUF_INIT;
    assert_int_equal(apg_buf_append_str(&b, "{\"offsetTable\":{"), APG_OK);
    assert_int_equal(apg_mqmap_put_key(&b, "broker-a", 0, "T"), APG_OK);
    assert_int_equal(apg_buf_append_str(&b, "5,"), APG_OK);
    assert_int_equal(apg_mqmap_put_key(&b, "b\"x}", 3, "%RETRY%G"), APG_OK);
    assert_int_equal(apg_buf_append(&b, "-1}}", 5), APG_OK); /* with the NUL */
    assert_string_equal((const char *)b.b_data,
                        "{\"offsetTable\":{{\"brokerName\":\"broker-a\",\"queueId\":0,\"topic\":"
                        "\"T\"}:5,{\"brokerName\":\"b\\\"x}\",\"queueId\":3,\"topic\":\"%RETRY%"
                        "G\"}:-1}}");
    struct got g = {0};
    assert_int_equal(
        apg_mqmap_parse_i64((const char *)b.b_data, b.b_len - 1, "offsetTable", collect, &g),
        APG_OK);
    assert_int_equal(g.n, 2);
    assert_string_equal(g.broker[0], "broker-a");
    assert_string_equal(g.topic[0], "T");
    assert_int_equal(g.qid[0], 0);
    assert_int_equal(g.val[0], 5);
    assert_string_equal(g.broker[1], "b\"x}");
    assert_string_equal(g.topic[1], "%RETRY%G");
    assert_int_equal(g.qid[1], 3);
    assert_int_equal(g.val[1], -1);
    apg_buf_free(&b);
}

static void test_other_fields_and_errors(void **state)
{
    (void)state;
    const char *ok = " { \"a\" : [1,{\"x\":\"}\"}] , \"z\":{{\"q\":1}:2}, \"offsetTable\" : { "
                     "{\"topic\":\"T\",\"queueId\":1,\"brokerName\":\"b\"} : 7 } } ";
    struct got g = {0};
    assert_int_equal(apg_mqmap_parse_i64(ok, strlen(ok), "offsetTable", collect, &g), APG_OK);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.val[0], 7);
    const char *empty = "{\"offsetTable\":{}}";
    g.n = 0;
    assert_int_equal(apg_mqmap_parse_i64(empty, strlen(empty), "offsetTable", collect, &g), APG_OK);
    assert_int_equal(g.n, 0);
    const char *bad[] = {
        "",
        "{}",
        "{\"other\":1}",
        "{\"offsetTable\":{{\"brokerName\":\"b\",\"queueId\":0,\"topic\":\"T\"}:\"x\"}}",
        "{\"offsetTable\":{{\"brokerName\":\"b\",\"topic\":\"T\"}:1}}",
        "{\"offsetTable\":{{\"brokerName\":\"b\",\"queueId\":0,\"topic\":\"T\"}:1",
        "{\"offsetTable\":{{\"brokerName\":\"b\",\"queueId\":0,\"topic\":\"T\"",
        "{\"offsetTable\":[1]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        g.n = 0;
        assert_int_equal(apg_mqmap_parse_i64(bad[i], strlen(bad[i]), "offsetTable", collect, &g),
                         APG_EINVAL);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_other_fields_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for the message trace decoder (src/http/msg_trace.c): the
 * record shapes RocketMQ clients write (docs/wire.md §19), the older and
 * newer Pub lengths, filtering by msgId, the SubBefore/SubAfter pairing
 * and sorting, and records it must skip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/msg_trace.h"

#define F "\x01"
#define R "\x02"

static json_t *decode(const char *text, const char *id)
{
    json_t *arr = json_array();
    apg_msg_trace_decode(text, strlen(text), id, arr);
    return arr;
}

static const char *str(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static json_int_t num(json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

static void test_pub_lengths(void **state)
{
    (void)state;
    /* 13 fields: success right after the type; 14: offset msgId then success;
     * 15: and the client host */
    json_t *a =
        decode("Pub" F "100" F "r" F "PG" F "T" F "ID1" F "tg" F "k" F "h:1" F "6" F "3" F "0" F
               "true" R "Pub" F "101" F "r" F "PG" F "T" F "ID1" F "tg" F "k" F "h:1" F "6" F "4" F
               "3" F "OFF" F "false" R "Pub" F "102" F "r" F "PG" F "T" F "ID1" F "" F "" F "h:1" F
               "6" F "5" F "1" F "OFF" F "true" F "10.0.0.1" R,
               "ID1");
    assert_int_equal(json_array_size(a), 3);
    json_t *p = json_array_get(a, 0);
    assert_string_equal(str(p, "traceType"), "Pub");
    assert_int_equal(num(p, "timestamp"), 100);
    assert_string_equal(str(p, "groupName"), "PG");
    assert_int_equal(num(p, "costTime"), 3);
    assert_string_equal(str(p, "msgType"), "Normal_Msg");
    assert_true(json_is_true(json_object_get(p, "success")));
    assert_null(json_object_get(p, "offsetMsgId"));
    p = json_array_get(a, 1);
    assert_string_equal(str(p, "offsetMsgId"), "OFF");
    assert_string_equal(str(p, "msgType"), "Delay_Msg");
    assert_true(json_is_false(json_object_get(p, "success")));
    p = json_array_get(a, 2);
    assert_string_equal(str(p, "clientHost"), "10.0.0.1");
    assert_string_equal(str(p, "tags"), "");
    json_decref(a);
}

static void test_filter_link_sort(void **state)
{
    (void)state;
    json_t *a = decode("SubAfter" F "rq1" F "ID1" F "12" F "true" F "k" F "0" F "300" R
                       "SubBefore" F "250" F "r" F "CG" F "rq1" F "ID1" F "2" F "k" R "SubBefore" F
                       "260" F "r" F "CG" F "rq2" F "ID2" F "0" F "k" R "Pub" F "100" F "r" F "PG" F
                       "T" F "ID1" F "tg" F "k" F "h" F "6" F "3" F "0" F "OFF" F "true" R,
                       "ID1");
    assert_int_equal(json_array_size(a), 3); /* ID2's record left out */
    apg_msg_trace_link(a);
    assert_string_equal(str(json_array_get(a, 0), "traceType"), "Pub");
    assert_string_equal(str(json_array_get(a, 1), "traceType"), "SubBefore");
    json_t *after = json_array_get(a, 2);
    assert_string_equal(str(after, "traceType"), "SubAfter");
    assert_string_equal(str(after, "groupName"), "CG");
    assert_int_equal(num(after, "retryTimes"), 2);
    assert_string_equal(str(after, "consumeStatus"), "SUCCESS");
    json_decref(a);
    /* an older SubAfter without code and time takes its SubBefore's time */
    a = decode("SubBefore" F "250" F "r" F "CG" F "rq1" F "ID1" F "0" F "k" R "SubAfter" F "rq1" F
               "ID1" F "12" F "false" F "k" R,
               NULL);
    apg_msg_trace_link(a);
    assert_int_equal(num(json_array_get(a, 1), "timestamp"), 250);
    assert_null(json_object_get(json_array_get(a, 1), "consumeStatus"));
    json_decref(a);
}

static void test_skipped(void **state)
{
    (void)state;
    /* unknown type, too few fields, empty records, no separators at all */
    json_t *a = decode(
        "Other" F "1" F "2" F "3" F "4" F "5" F "6" R "Pub" F "1" F "2" R R R "garbage", NULL);
    assert_int_equal(json_array_size(a), 0);
    json_decref(a);
    a = decode("", NULL);
    assert_int_equal(json_array_size(a), 0);
    apg_msg_trace_link(a);
    json_decref(a);
    /* a non-numeric number is left out, the record kept */
    a = decode("EndTransaction" F "x" F "r" F "PG" F "T" F "ID1" F "tg" F "k" F "h" F "1" F "tx" F
               "COMMIT_MESSAGE" F "false" R,
               "ID1");
    assert_int_equal(json_array_size(a), 1);
    assert_null(json_object_get(json_array_get(a, 0), "timestamp"));
    assert_string_equal(str(json_array_get(a, 0), "transactionState"), "COMMIT_MESSAGE");
    assert_string_equal(str(json_array_get(a, 0), "msgType"), "Trans_Msg_Half");
    json_decref(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pub_lengths),
        cmocka_unit_test(test_filter_link_sort),
        cmocka_unit_test(test_skipped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for src/common/json: fastjson normalisation (unquoted, object
 * and single-quoted keys/strings), parsing and typed getters, metadata files
 * written with .bak and read with fallback to .bak when the main file is
 * corrupt. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/file.h"
#include "common/mem.h"
#include "common/json.h"

static char *norm(const char *s)
{
    struct apg_buf b = APG_BUF_INIT;
    assert_int_equal(apg_json_normalize(s, strlen(s), &b), 0);
    apg_buf_append(&b, "", 1);
    return (char *)b.b_data;
}

static void test_normalize(void **st)
{
    char *o = norm("{\"brokerAddrs\":{0:\"10.0.0.1:10911\",1:\"b\"}}");
    assert_string_equal(o, "{\"brokerAddrs\":{\"0\":\"10.0.0.1:10911\",\"1\":\"b\"}}");
    apg_free(o);
    o = norm("{\"offsetTable\":{{\"brokerName\":\"b\",\"queueId\":0,\"topic\":\"T\"}:{\"x\":5},"
             "{\"brokerName\":\"b\",\"queueId\":1,\"topic\":\"T:{}\"}:7}}");
    json_error_t je;
    json_t *j = json_loads(o, 0, &je);
    assert_non_null(j);
    json_t *t = json_object_get(j, "offsetTable");
    assert_int_equal(json_object_size(t), 2);
    json_t *v;
    v = json_object_get(t, "{\"brokerName\":\"b\",\"queueId\":1,\"topic\":\"T:{}\"}");
    assert_non_null(v);
    assert_int_equal(json_integer_value(v), 7);
    json_decref(j);
    apg_free(o);
    /* Standard JSON passes through unchanged, strings untouched. */
    const char *std = "{\"a\":[1,{\"b\":\"x,{1:2}\"}],\"c\":{},\"d\":-1.5e3}";
    o = norm(std);
    assert_string_equal(o, std);
    apg_free(o);
}

static void test_parse_fastjson(void **st)
{
    (void)st;
    const char *s = "{\"offsetTable\":{\"T@g\":{0:5,1:12345678901234}},'x':'a\\u00e9',\"b\":true,"
                    "\"n\":null,\"arr\":[1,2,{\"k\":\"v\"}]}";
    char err[128];
    json_t *j = apg_json_parse(s, strlen(s), err, sizeof(err));
    assert_non_null(j);
    const json_t *t = json_object_get(json_object_get(j, "offsetTable"), "T@g");
    assert_non_null(t);
    assert_int_equal(apg_json_get_i64(t, "0", -1), 5);
    assert_int_equal(apg_json_get_i64(t, "1", -1), 12345678901234LL);
    assert_string_equal(apg_json_get_str(j, "x", ""), "a\xc3\xa9");
    assert_true(apg_json_get_bool(j, "b", false));
    json_decref(j);
    const char *bad[] = {"{", "{\"a\":}", "[1,2", "{\"a\" 1}", "\"abc", "{} x", "{\"a\":tru}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = 0;
        assert_null(apg_json_parse(bad[i], strlen(bad[i]), err, sizeof(err)));
        assert_true(err[0] != 0);
    }
}

static void test_single_quotes_and_getters(void **st)
{
    (void)st;
    char *o = norm("{'a':'say \\'hi\\' \"x\"',b:'\\n'}");
    assert_string_equal(o, "{\"a\":\"say 'hi' \\\"x\\\"\",\"b\":\"\\n\"}");
    apg_free(o);
    char err[128];
    const char *s = "{\"i\":\"42\",\"r\":7.9,\"big\":9007199254740993,\"t\":\"TRUE\","
                    "\"bad\":\"4x\",\"o\":{}}";
    json_t *j = apg_json_parse(s, strlen(s), err, sizeof(err));
    assert_non_null(j);
    assert_int_equal(apg_json_get_i64(j, "i", -1), 42);
    assert_int_equal(apg_json_get_i64(j, "r", -1), 7);
    assert_int_equal(apg_json_get_i64(j, "big", -1), 9007199254740993LL);
    assert_int_equal(apg_json_get_i64(j, "bad", -1), -1);
    assert_int_equal(apg_json_get_i64(j, "o", -1), -1);
    assert_int_equal(apg_json_get_i64(j, "missing", -1), -1);
    assert_true(apg_json_get_bool(j, "t", false));
    assert_true(apg_json_get_bool(j, "r", true));
    assert_string_equal(apg_json_get_str(j, "i", ""), "42");
    assert_string_equal(apg_json_get_str(j, "r", "d"), "d");
    assert_string_equal(apg_json_get_str(NULL, "r", "d"), "d");
    json_decref(j);
    /* An unterminated single-quoted string stays an error. */
    assert_null(apg_json_parse("{'a':'x", 7, err, sizeof(err)));
    struct apg_buf b = APG_BUF_INIT;
    assert_int_equal(apg_json_put_str(&b, "q\"\\\n"), APG_OK);
    assert_int_equal(b.b_len, 13);
    assert_memory_equal(b.b_data, "\"q\\\"\\\\\\u000a\"", 13);
    apg_buf_free(&b);
}

/* Nesting far past the normalizer's depth stack (a hostile HEART_BEAT or
 * route body): refused cleanly, no read outside the stack (the fuzzer found
 * one; ASan in CI catches a regression). */
static void test_deep_nesting(void **st)
{
    (void)st;
    size_t n = 200000;
    char *s = malloc(2 * n + 8);
    assert_non_null(s);
    for (int shape = 0; shape < 2; shape++) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            s[k++] = shape == 0 ? '[' : (i % 2 ? '{' : '[');
        s[k++] = '{';
        s[k++] = 'a';
        s[k++] = ':';
        s[k++] = '1';
        s[k] = '\0';
        char err[256];
        assert_null(apg_json_parse(s, k, err, sizeof(err)));
        assert_true(err[0] != '\0');
    }
    free(s);
}

static void test_write_read_bak(void **st)
{
    char dir[] = "/tmp/apg_json_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], p2[300];
    snprintf(path, sizeof(path), "%s/topics.json", dir);
    char err[512];
    json_t *j;
    assert_int_equal(apg_json_read_file(path, &j, err, sizeof(err)), APG_ENOTFOUND);

    const char *v1 = "{\"dataVersion\":{\"counter\":1},\"topicConfigTable\":{0:\"a\"}}";
    const char *v2 = "{\"dataVersion\":{\"counter\":2}}";
    assert_int_equal(apg_file_write_atomic(path, v1, strlen(v1), err, sizeof(err)), 0);
    assert_int_equal(apg_file_write_atomic(path, v2, strlen(v2), err, sizeof(err)), 0);
    assert_int_equal(apg_json_read_file(path, &j, err, sizeof(err)), 0);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(j, "dataVersion"), "counter")), 2);
    json_decref(j);
    snprintf(p2, sizeof(p2), "%s.tmp", path);
    assert_int_not_equal(access(p2, F_OK), 0);

    /* Corrupt main file (torn write by something else): the .bak (v1) is used. */
    FILE *f = fopen(path, "w");
    fputs("{\"dataVersion\":{\"coun", f);
    fclose(f);
    assert_int_equal(apg_json_read_file(path, &j, err, sizeof(err)), 0);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(j, "dataVersion"), "counter")), 1);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(j, "topicConfigTable"), "0")), "a");
    json_decref(j);

    /* Both corrupt: error names the file and position. */
    snprintf(p2, sizeof(p2), "%s.bak", path);
    f = fopen(p2, "w");
    fputs("not json", f);
    fclose(f);
    assert_int_equal(apg_json_read_file(path, &j, err, sizeof(err)), APG_ECORRUPT);
    assert_non_null(strstr(err, "topics.json"));
    assert_non_null(strstr(err, "line"));

    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_parse_fastjson),
        cmocka_unit_test(test_single_quotes_and_getters),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_write_read_bak),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Metadata files: atomic write with .bak, fastjson key normalisation,
 * fallback to .bak when the main file is corrupt. */
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
#include "store/meta.h"

static char *norm(const char *s)
{
    struct apg_buf b = APG_BUF_INIT;
    assert_int_equal(apg_meta_normalize(s, strlen(s), &b), 0);
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

static void test_write_read_bak(void **st)
{
    char dir[] = "/tmp/apg_meta_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], p2[300];
    snprintf(path, sizeof(path), "%s/topics.json", dir);
    char err[512];
    json_t *j;
    assert_int_equal(apg_meta_read(path, &j, err, sizeof(err)), APG_ENOTFOUND);

    const char *v1 = "{\"dataVersion\":{\"counter\":1},\"topicConfigTable\":{0:\"a\"}}";
    const char *v2 = "{\"dataVersion\":{\"counter\":2}}";
    assert_int_equal(apg_file_write_atomic(path, v1, strlen(v1), err, sizeof(err)), 0);
    assert_int_equal(apg_file_write_atomic(path, v2, strlen(v2), err, sizeof(err)), 0);
    assert_int_equal(apg_meta_read(path, &j, err, sizeof(err)), 0);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(j, "dataVersion"), "counter")), 2);
    json_decref(j);
    snprintf(p2, sizeof(p2), "%s.tmp", path);
    assert_int_not_equal(access(p2, F_OK), 0);

    /* Corrupt main file (torn write by something else): the .bak (v1) is used. */
    FILE *f = fopen(path, "w");
    fputs("{\"dataVersion\":{\"coun", f);
    fclose(f);
    assert_int_equal(apg_meta_read(path, &j, err, sizeof(err)), 0);
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
    assert_int_equal(apg_meta_read(path, &j, err, sizeof(err)), APG_ECORRUPT);
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
        cmocka_unit_test(test_write_read_bak),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Broker config tables, JSON reader, name rules, tag filters, properties
 * and batch decoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "broker/broker_int.h"
#include "common/hash.h"

static char *tmpdir(void)
{
    static char buf[64];
    snprintf(buf, sizeof(buf), "/tmp/apg_brokerXXXXXX");
    return mkdtemp(buf);
}

static void rmrf(const char *d)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d);
    (void)system(cmd);
}

static void count_hook(void *ud)
{
    (*(int *)ud)++;
}

static void test_topics_autocreate_and_persist(void **st)
{
    (void)st;
    char *d = tmpdir();
    char err[256];
    struct apg_topics *t =
        apg_topics_open(d, true, 8, "DefaultCluster", "broker-a", err, sizeof(err));
    assert_non_null(t);
    struct apg_topic_cfg tc;
    assert_true(apg_topics_get(t, "TBW102", &tc));
    assert_int_equal(tc.tc_perm, 7);
    assert_int_equal(tc.tc_write_queues, 8);
    int hooked = 0;
    apg_topics_set_hook(t, count_hook, &hooked);
    uint64_t before = apg_topics_changes(t);
    assert_int_equal(
        apg_topics_get_or_create_for_send(t, "orders", "TBW102", 4, 1, &tc, err, sizeof(err)),
        APG_OK);
    /* A creation is one change, and the hook hears of it. */
    assert_int_equal(hooked, 1);
    assert_true(apg_topics_changes(t) == before + 1);
    assert_int_equal(
        apg_topics_get_or_create_for_send(t, "orders", "TBW102", 4, 1, &tc, err, sizeof(err)),
        APG_OK);
    assert_int_equal(hooked, 1);
    assert_int_equal(tc.tc_write_queues, 4);
    assert_int_equal(tc.tc_perm, 6);
    /* More queues than the template has: capped at the template. */
    assert_int_equal(
        apg_topics_get_or_create_for_send(t, "big", "TBW102", 64, 1, &tc, err, sizeof(err)),
        APG_OK);
    assert_int_equal(tc.tc_write_queues, 8);
    assert_int_equal(
        apg_topics_get_or_create_for_send(t, "%RETRY%g1", "TBW102", 4, 1, &tc, err, sizeof(err)),
        APG_OK);
    assert_int_equal(tc.tc_write_queues, 1);
    /* A template without INHERIT refuses, with a remark naming the fix. */
    assert_int_equal(
        apg_topics_get_or_create_for_send(t, "x1", "orders", 4, 1, &tc, err, sizeof(err)),
        APG_ENOTFOUND);
    assert_non_null(strstr(err, "x1"));
    struct apg_dver v1;
    apg_topics_version(t, &v1);
    assert_true(apg_topics_delete(t, "big"));
    struct apg_dver v2;
    apg_topics_version(t, &v2);
    assert_true(v2.dv_counter > v1.dv_counter);
    assert_int_equal(hooked, 4); /* orders, big, %RETRY%g1, delete big */
    uint64_t upto = 0;
    assert_int_equal(apg_topics_persist(t, false, &upto, err, sizeof(err)), APG_OK);
    assert_true(upto == apg_topics_changes(t));
    apg_topics_free(t);

    t = apg_topics_open(d, true, 8, "DefaultCluster", "broker-a", err, sizeof(err));
    assert_non_null(t);
    assert_true(apg_topics_get(t, "orders", &tc));
    assert_int_equal(tc.tc_read_queues, 4);
    assert_false(apg_topics_get(t, "big", NULL));
    struct apg_dver v3;
    apg_topics_version(t, &v3);
    assert_true(v3.dv_counter >= v2.dv_counter);
    apg_topics_free(t);

    /* autoCreateTopicEnable=false: no TBW102, sends to new topics refused. */
    t = apg_topics_open(d, false, 8, "DefaultCluster", "broker-a", err, sizeof(err));
    assert_false(apg_topics_get(t, "TBW102", NULL));
    assert_int_equal(
        apg_topics_get_or_create_for_send(t, "newone", "TBW102", 4, 1, &tc, err, sizeof(err)),
        APG_ENOTFOUND);
    assert_non_null(strstr(err, "autoCreateTopicEnable"));
    apg_topics_free(t);

    /* A corrupt file is refused with the path in the message. */
    char path[256];
    snprintf(path, sizeof(path), "%s/config/topics.json", d);
    FILE *f = fopen(path, "w");
    fputs("{\"topicConfigTable\":{", f);
    fclose(f);
    assert_null(apg_topics_open(d, true, 8, "c", "b", err, sizeof(err)));
    assert_non_null(strstr(err, "topics.json"));
    rmrf(d);
}

static void test_groups_and_offsets(void **st)
{
    (void)st;
    char *d = tmpdir();
    char err[256];
    struct apg_groups *g = apg_groups_open(d, err, sizeof(err));
    assert_non_null(g);
    struct apg_group_cfg gc;
    assert_int_equal(apg_groups_get_or_create(g, "gA", false, &gc), APG_ENOTFOUND);
    assert_int_equal(apg_groups_get_or_create(g, "gA", true, &gc), APG_OK);
    assert_int_equal(gc.gc_retry_max_times, 16);
    gc.gc_retry_queues = 3;
    assert_int_equal(apg_groups_put(g, &gc), APG_OK);
    assert_int_equal(apg_groups_persist(g, false, NULL, err, sizeof(err)), APG_OK);
    apg_groups_free(g);
    g = apg_groups_open(d, err, sizeof(err));
    assert_true(apg_groups_get(g, "gA", &gc));
    assert_int_equal(gc.gc_retry_queues, 3);
    assert_true(apg_groups_delete(g, "gA"));
    assert_false(apg_groups_get(g, "gA", NULL));
    apg_groups_free(g);

    struct apg_offsets *o = apg_offsets_open(d, err, sizeof(err));
    assert_non_null(o);
    assert_int_equal(apg_offsets_query(o, "g", "T", 0), -1);
    apg_offsets_commit(o, "g", "T", 0, 5);
    apg_offsets_commit(o, "g", "T", 100, 7);
    apg_offsets_commit(o, "g", "T", 1, -1); /* ignored */
    apg_offsets_commit(o, "g2", "T", 0, 9);
    assert_int_equal(apg_offsets_query(o, "g", "T", 0), 5);
    assert_int_equal(apg_offsets_query(o, "g", "T", 1), -1);
    assert_int_equal(apg_offsets_query(o, "g", "T", 100), 7);
    assert_int_equal(apg_offsets_persist(o, false, err, sizeof(err)), APG_OK);
    apg_offsets_free(o);
    o = apg_offsets_open(d, err, sizeof(err));
    assert_int_equal(apg_offsets_query(o, "g", "T", 100), 7);
    assert_int_equal(apg_offsets_query(o, "g2", "T", 0), 9);
    apg_offsets_drop_group(o, "g2");
    assert_int_equal(apg_offsets_query(o, "g2", "T", 0), -1);
    assert_int_equal(apg_offsets_query(o, "g", "T", 0), 5);
    apg_offsets_drop_topic(o, "T");
    assert_int_equal(apg_offsets_query(o, "g", "T", 0), -1);
    apg_offsets_free(o);

    /* fastjson's unquoted integer keys load. */
    char path[256];
    snprintf(path, sizeof(path), "%s/config/consumerOffset.json", d);
    FILE *f = fopen(path, "w");
    fputs("{\"offsetTable\":{\"TopicTest@groupA\":{0:120,1:98}}}", f);
    fclose(f);
    o = apg_offsets_open(d, err, sizeof(err));
    assert_int_equal(apg_offsets_query(o, "groupA", "TopicTest", 1), 98);
    apg_offsets_free(o);
    rmrf(d);
}

static void test_names(void **st)
{
    (void)st;
    char err[256];
    assert_int_equal(apg_name_check_topic("Topic_A-1%|x", err, sizeof(err)), APG_OK);
    assert_int_equal(apg_name_check_topic("", err, sizeof(err)), APG_EINVAL);
    assert_int_equal(apg_name_check_topic("a b", err, sizeof(err)), APG_EINVAL);
    assert_non_null(strstr(err, "' '"));
    char longname[200];
    memset(longname, 'a', 128);
    longname[128] = 0;
    assert_int_equal(apg_name_check_topic(longname, err, sizeof(err)), APG_EINVAL);
    assert_non_null(strstr(err, "127"));
    assert_true(apg_name_topic_send_forbidden("SCHEDULE_TOPIC_XXXX"));
    assert_false(apg_name_topic_send_forbidden("orders"));
}

static void test_tag_filter(void **st)
{
    (void)st;
    struct apg_tag_filter f;
    char err[128];
    assert_int_equal(apg_tag_filter_parse("TagA || TagB", &f, err, sizeof(err)), APG_OK);
    assert_false(f.tf_all);
    assert_int_equal(f.tf_n, 2);
    assert_true(apg_tag_filter_match_code(&f, apg_java_hash("TagA", 4)));
    assert_false(apg_tag_filter_match_code(&f, apg_java_hash("TagC", 4)));
    assert_true(apg_tag_filter_match_tag(&f, "TagB", 4));
    assert_false(apg_tag_filter_match_tag(&f, "TagBB", 5));
    /* "Aa" and "BB" share a Java hash: the exact check tells them apart. */
    assert_int_equal(apg_tag_filter_parse("Aa", &f, err, sizeof(err)), APG_OK);
    assert_true(apg_tag_filter_match_code(&f, apg_java_hash("BB", 2)));
    assert_false(apg_tag_filter_match_tag(&f, "BB", 2));
    assert_int_equal(apg_tag_filter_parse("*", &f, err, sizeof(err)), APG_OK);
    assert_true(f.tf_all);
    assert_int_equal(apg_tag_filter_parse(NULL, &f, err, sizeof(err)), APG_OK);
    assert_true(f.tf_all);
}

static void test_props(void **st)
{
    (void)st;
    struct apg_buf b = APG_BUF_INIT;
    apg_props_append(&b, "TAGS", "TagA");
    apg_props_append(&b, "KEYS", "k1 k2");
    apg_props_append(&b, "UNIQ_KEY", "ABC");
    size_t vl;
    const char *v = apg_props_find((const char *)b.b_data, b.b_len, "KEYS", &vl);
    assert_non_null(v);
    assert_int_equal(vl, 5);
    assert_memory_equal(v, "k1 k2", 5);
    assert_null(apg_props_find((const char *)b.b_data, b.b_len, "KEY", &vl));
    assert_null(apg_props_find((const char *)b.b_data, b.b_len, "WAIT", &vl));
    /* Without the trailing separator. */
    const char *s = "A\x01"
                    "1\x02"
                    "B\x01"
                    "22";
    v = apg_props_find(s, strlen(s), "B", &vl);
    assert_non_null(v);
    assert_int_equal(vl, 2);
    apg_buf_free(&b);
}

static void put_rec(struct apg_buf *b, int flag, const char *body, const char *props)
{
    size_t bl = strlen(body), pl = strlen(props);
    apg_buf_put_be32(b, (uint32_t)(20 + bl + 2 + pl));
    apg_buf_put_be32(b, 0);
    apg_buf_put_be32(b, 0);
    apg_buf_put_be32(b, (uint32_t)flag);
    apg_buf_put_be32(b, (uint32_t)bl);
    apg_buf_append(b, body, bl);
    apg_buf_put_be16(b, (uint16_t)pl);
    apg_buf_append(b, props, pl);
}

static void test_batch(void **st)
{
    (void)st;
    struct apg_buf b = APG_BUF_INIT;
    put_rec(&b, 1, "hello", "TAGS\x01x\x02");
    put_rec(&b, 2, "", "");
    size_t pos = 0;
    struct apg_batch_item it;
    char err[128];
    assert_int_equal(apg_batch_next(b.b_data, b.b_len, &pos, &it, err, sizeof(err)), APG_OK);
    assert_int_equal(it.bi_flag, 1);
    assert_int_equal(it.bi_body_len, 5);
    assert_int_equal(it.bi_props_len, 7);
    assert_int_equal(apg_batch_next(b.b_data, b.b_len, &pos, &it, err, sizeof(err)), APG_OK);
    assert_int_equal(it.bi_flag, 2);
    assert_int_equal(apg_batch_next(b.b_data, b.b_len, &pos, &it, err, sizeof(err)), APG_ENOTFOUND);
    /* Truncated and inconsistent records. */
    pos = 0;
    assert_int_equal(apg_batch_next(b.b_data, 10, &pos, &it, err, sizeof(err)), APG_EPROTO);
    b.b_data[3] = 200;
    pos = 0;
    assert_int_equal(apg_batch_next(b.b_data, b.b_len, &pos, &it, err, sizeof(err)), APG_EPROTO);
    apg_buf_free(&b);
}

static void test_uniq_id(void **st)
{
    (void)st;
    const uint8_t ip[4] = {127, 0, 0, 1};
    char a[33], b[33];
    apg_msgid_uniq(ip, a);
    apg_msgid_uniq(ip, b);
    assert_int_equal(strlen(a), 32);
    assert_string_not_equal(a, b);
    assert_memory_equal(a, "7F000001", 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topics_autocreate_and_persist),
        cmocka_unit_test(test_groups_and_offsets),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_tag_filter),
        cmocka_unit_test(test_props),
        cmocka_unit_test(test_batch),
        cmocka_unit_test(test_uniq_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

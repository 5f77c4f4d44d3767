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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topics_autocreate_and_persist),
        cmocka_unit_test(test_groups_and_offsets),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

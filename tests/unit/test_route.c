/* Route table and KV config: registration, expiry, perm changes, JSON
 * shapes, KV persistence. No sockets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "namesrv/kv.h"
#include "namesrv/route.h"

static const struct apg_route_topic_conf topics_a[] = {
    {"TopicA", 4, 4, 6, 0},
    {"TopicB", 8, 8, 6, 0},
};

static struct apg_route_reg reg_of(const char *cluster, const char *name, const char *addr,
                                   int64_t id)
{
    struct apg_route_reg r = {0};
    r.rr_cluster = cluster;
    r.rr_broker_name = name;
    r.rr_broker_addr = addr;
    r.rr_ha_addr = "127.0.0.1:10912";
    r.rr_broker_id = id;
    r.rr_topics = topics_a;
    r.rr_n_topics = 2;
    r.rr_has_dv = true;
    r.rr_dv.dv_counter = 1;
    r.rr_dv.dv_timestamp = 1000;
    return r;
}

static json_t *addrs_of(json_t *route, const char *broker)
{
    json_t *bds = json_object_get(route, "brokerDatas");
    for (size_t i = 0; i < json_array_size(bds); i++) {
        json_t *bd = json_array_get(bds, i);
        if (strcmp(json_string_value(json_object_get(bd, "brokerName")), broker) == 0)
            return json_object_get(bd, "brokerAddrs");
    }
    return NULL;
}

static json_t *qd_of(json_t *route, const char *broker)
{
    json_t *qds = json_object_get(route, "queueDatas");
    for (size_t i = 0; i < json_array_size(qds); i++) {
        json_t *qd = json_array_get(qds, i);
        if (strcmp(json_string_value(json_object_get(qd, "brokerName")), broker) == 0)
            return qd;
    }
    return NULL;
}

static void test_register_and_route(void **state)
{
    struct apg_route_table *rt = apg_route_new(120000);
    struct apg_route_reg_result res;
    struct apg_route_reg r = reg_of("C1", "broker-a", "10.0.0.1:10911", 0);
    assert_int_equal(apg_route_register(rt, &r, 1000, &res), APG_OK);
    assert_true(res.rs_first);
    assert_string_equal(res.rs_master_addr, "");
    struct apg_route_reg s = reg_of("C1", "broker-a", "10.0.0.2:10911", 1);
    s.rr_ha_addr = "10.0.0.2:10912";
    assert_int_equal(apg_route_register(rt, &s, 1000, &res), APG_OK);
    assert_string_equal(res.rs_master_addr, "10.0.0.1:10911");
    assert_string_equal(res.rs_ha_addr, "127.0.0.1:10912");
    assert_int_equal(apg_route_broker_count(rt), 2);
    assert_int_equal(apg_route_topic_count(rt), 2);

    json_t *route = apg_route_topic_json(rt, "TopicA");
    assert_non_null(route);
    json_t *addrs = addrs_of(route, "broker-a");
    assert_string_equal(json_string_value(json_object_get(addrs, "0")), "10.0.0.1:10911");
    assert_string_equal(json_string_value(json_object_get(addrs, "1")), "10.0.0.2:10911");
    json_t *qd = qd_of(route, "broker-a");
    assert_int_equal(json_integer_value(json_object_get(qd, "readQueueNums")), 4);
    assert_int_equal(json_integer_value(json_object_get(qd, "perm")), 6);
    /* Numeric map keys are quoted in the text. */
    char *text = json_dumps(route, JSON_COMPACT | JSON_SORT_KEYS);
    assert_non_null(strstr(text, "\"brokerAddrs\":{\"0\":\"10.0.0.1:10911\",\"1\""));
    free(text);
    json_decref(route);
    assert_null(apg_route_topic_json(rt, "NoSuchTopic"));

    /* Second broker name in another cluster serving TopicB only. */
    struct apg_route_topic_conf tb = {"TopicB", 2, 2, 6, 0};
    struct apg_route_reg b = reg_of("C2", "broker-b", "10.0.1.1:10911", 0);
    b.rr_topics = &tb;
    b.rr_n_topics = 1;
    assert_int_equal(apg_route_register(rt, &b, 1000, &res), APG_OK);
    route = apg_route_topic_json(rt, "TopicB");
    assert_int_equal(json_array_size(json_object_get(route, "queueDatas")), 2);
    assert_int_equal(json_array_size(json_object_get(route, "brokerDatas")), 2);
    json_decref(route);

    json_t *ci = apg_route_cluster_info_json(rt);
    assert_non_null(json_object_get(json_object_get(ci, "brokerAddrTable"), "broker-b"));
    json_t *c1 = json_object_get(json_object_get(ci, "clusterAddrTable"), "C1");
    assert_int_equal(json_array_size(c1), 1);
    assert_string_equal(json_string_value(json_array_get(c1, 0)), "broker-a");
    json_decref(ci);

    json_t *tl = apg_route_topics_by_cluster_json(rt, "C2");
    assert_int_equal(json_array_size(json_object_get(tl, "topicList")), 1);
    json_decref(tl);
    tl = apg_route_topic_list_json(rt);
    assert_int_equal(json_array_size(json_object_get(tl, "topicList")), 2);
    json_decref(tl);
    apg_route_free(rt);
}

static void test_topics_follow_data_version(void **state)
{
    struct apg_route_table *rt = apg_route_new(120000);
    struct apg_route_reg_result res;
    struct apg_route_reg r = reg_of("C1", "broker-a", "10.0.0.1:10911", 0);
    assert_int_equal(apg_route_register(rt, &r, 1000, &res), APG_OK);
    /* Same data version, different queue counts: not applied. */
    struct apg_route_topic_conf t2 = {"TopicA", 16, 16, 6, 0};
    r.rr_topics = &t2;
    r.rr_n_topics = 1;
    assert_int_equal(apg_route_register(rt, &r, 2000, &res), APG_OK);
    assert_false(res.rs_first);
    json_t *route = apg_route_topic_json(rt, "TopicA");
    assert_int_equal(json_integer_value(json_object_get(qd_of(route, "broker-a"), "readQueueNums")),
                     4);
    json_decref(route);
    /* New data version: applied. */
    r.rr_dv.dv_counter = 2;
    assert_int_equal(apg_route_register(rt, &r, 3000, &res), APG_OK);
    route = apg_route_topic_json(rt, "TopicA");
    assert_int_equal(json_integer_value(json_object_get(qd_of(route, "broker-a"), "readQueueNums")),
                     16);
    json_decref(route);

    bool changed, has;
    struct apg_data_version dv = {2, 1000, 0}, stored;
    apg_route_query_data_version(rt, "C1", "10.0.0.1:10911", &dv, 4000, &changed, &has, &stored);
    assert_true(has);
    assert_false(changed);
    dv.dv_counter = 3;
    apg_route_query_data_version(rt, "C1", "10.0.0.1:10911", &dv, 4000, &changed, &has, &stored);
    assert_true(changed);
    assert_int_equal(stored.dv_counter, 2);
    apg_route_free(rt);
}

static void test_expiry(void **state)
{
    struct apg_route_table *rt = apg_route_new(120000);
    struct apg_route_reg_result res;
    struct apg_route_reg a = reg_of("C1", "broker-a", "10.0.0.1:10911", 0);
    struct apg_route_reg b = reg_of("C1", "broker-b", "10.0.0.2:10911", 0);
    b.rr_timeout_ms = 10000; /* its own heartbeatTimeoutMillis */
    assert_int_equal(apg_route_register(rt, &a, 0, &res), APG_OK);
    assert_int_equal(apg_route_register(rt, &b, 0, &res), APG_OK);
    assert_int_equal(apg_route_expire(rt, 10000), 0);
    assert_int_equal(apg_route_expire(rt, 10001), 1); /* b's own timeout */
    assert_int_equal(apg_route_broker_count(rt), 1);
    json_t *route = apg_route_topic_json(rt, "TopicA");
    assert_null(qd_of(route, "broker-b"));
    assert_non_null(qd_of(route, "broker-a"));
    json_decref(route);
    /* A heartbeat keeps a alive past 120 s from its registration. */
    assert_true(apg_route_heartbeat(rt, "C1", "10.0.0.1:10911", 100000));
    assert_int_equal(apg_route_expire(rt, 150000), 0);
    assert_int_equal(apg_route_expire(rt, 220001), 1);
    assert_int_equal(apg_route_broker_count(rt), 0);
    assert_int_equal(apg_route_topic_count(rt), 0);
    assert_null(apg_route_topic_json(rt, "TopicA"));
    json_t *ci = apg_route_cluster_info_json(rt);
    assert_int_equal(json_object_size(json_object_get(ci, "clusterAddrTable")), 0);
    json_decref(ci);
    assert_false(apg_route_heartbeat(rt, "C1", "10.0.0.1:10911", 1));
    apg_route_free(rt);
}

static void test_unregister_and_conn_close(void **state)
{
    struct apg_route_table *rt = apg_route_new(120000);
    struct apg_route_reg_result res;
    int conn1, conn2;
    struct apg_route_reg m = reg_of("C1", "broker-a", "10.0.0.1:10911", 0);
    m.rr_conn = &conn1;
    struct apg_route_reg s = reg_of("C1", "broker-a", "10.0.0.2:10911", 1);
    s.rr_conn = &conn2;
    apg_route_register(rt, &m, 0, &res);
    apg_route_register(rt, &s, 0, &res);
    /* Slave goes: topic keeps the master. */
    assert_int_equal(apg_route_remove_conn(rt, &conn2), 1);
    json_t *route = apg_route_topic_json(rt, "TopicA");
    json_t *addrs = addrs_of(route, "broker-a");
    assert_int_equal(json_object_size(addrs), 1);
    assert_non_null(json_object_get(addrs, "0"));
    json_decref(route);
    assert_int_equal(apg_route_unregister(rt, "C1", "broker-a", "10.0.0.1:10911", 0), APG_OK);
    assert_null(apg_route_topic_json(rt, "TopicA"));
    assert_int_equal(apg_route_broker_count(rt), 0);
    assert_int_equal(apg_route_unregister(rt, "C1", "broker-a", "10.0.0.1:10911", 0),
                     APG_ENOTFOUND);
    assert_int_equal(apg_route_remove_conn(rt, &conn1), 0);
    apg_route_free(rt);
}

static void test_slave_promoted(void **state)
{
    struct apg_route_table *rt = apg_route_new(120000);
    struct apg_route_reg_result res;
    struct apg_route_reg s = reg_of("C1", "broker-a", "10.0.0.2:10911", 1);
    apg_route_register(rt, &s, 0, &res);
    /* A slave alone does not create topics. */
    assert_null(apg_route_topic_json(rt, "TopicA"));
    s.rr_broker_id = 0;
    apg_route_register(rt, &s, 0, &res);
    json_t *route = apg_route_topic_json(rt, "TopicA");
    json_t *addrs = addrs_of(route, "broker-a");
    assert_int_equal(json_object_size(addrs), 1);
    assert_string_equal(json_string_value(json_object_get(addrs, "0")), "10.0.0.2:10911");
    json_decref(route);
    apg_route_free(rt);
}

static void test_write_perm(void **state)
{
    struct apg_route_table *rt = apg_route_new(120000);
    struct apg_route_reg_result res;
    struct apg_route_reg a = reg_of("C1", "broker-a", "10.0.0.1:10911", 0);
    apg_route_register(rt, &a, 0, &res);
    assert_int_equal(apg_route_wipe_write_perm(rt, "broker-a"), 2);
    assert_int_equal(apg_route_wipe_write_perm(rt, "nobody"), 0);
    json_t *route = apg_route_topic_json(rt, "TopicB");
    assert_int_equal(json_integer_value(json_object_get(qd_of(route, "broker-a"), "perm")), 4);
    json_decref(route);
    assert_int_equal(apg_route_add_write_perm(rt, "broker-a"), 2);
    route = apg_route_topic_json(rt, "TopicB");
    assert_int_equal(json_integer_value(json_object_get(qd_of(route, "broker-a"), "perm")), 6);
    json_decref(route);
    json_t *g = apg_route_member_group_json(rt, "C1", "broker-a");
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_object_get(g, "brokerMemberGroup"), "brokerAddrs"), "0")),
        "10.0.0.1:10911");
    json_decref(g);
    apg_route_free(rt);
}

static void test_kv_persistence(void **state)
{
    char dir[] = "/tmp/apg-kv-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof(path), "%s/namesrv/kvConfig.json", dir);
    char err[256];
    struct apg_kv *kv;
    assert_int_equal(apg_kv_open(path, &kv, err, sizeof(err)), APG_OK);
    assert_null(apg_kv_get(kv, "ORDER_TOPIC_CONFIG", "T"));
    assert_null(apg_kv_list_json(kv, "ORDER_TOPIC_CONFIG"));
    assert_int_equal(apg_kv_put(kv, "ORDER_TOPIC_CONFIG", "T", "broker-a:4", err, sizeof(err)),
                     APG_OK);
    assert_int_equal(apg_kv_put(kv, "NS2", "k", "v", err, sizeof(err)), APG_OK);
    assert_int_equal(apg_kv_delete(kv, "NS2", "k", err, sizeof(err)), APG_OK);
    apg_kv_free(kv);

    assert_int_equal(apg_kv_open(path, &kv, err, sizeof(err)), APG_OK);
    assert_string_equal(apg_kv_get(kv, "ORDER_TOPIC_CONFIG", "T"), "broker-a:4");
    assert_null(apg_kv_get(kv, "NS2", "k"));
    json_t *l = apg_kv_list_json(kv, "ORDER_TOPIC_CONFIG");
    assert_string_equal(json_string_value(json_object_get(json_object_get(l, "table"), "T")),
                        "broker-a:4");
    json_decref(l);
    apg_kv_free(kv);
    char tmp[300];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    assert_int_not_equal(access(tmp, F_OK), 0);

    /* A corrupt file is refused, not overwritten. */
    FILE *f = fopen(path, "w");
    fputs("{\"configTable\":", f);
    fclose(f);
    assert_int_equal(apg_kv_open(path, &kv, err, sizeof(err)), APG_ECORRUPT);
    assert_non_null(strstr(err, path));
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register_and_route),
        cmocka_unit_test(test_topics_follow_data_version),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_unregister_and_conn_close),
        cmocka_unit_test(test_slave_promoted),
        cmocka_unit_test(test_write_perm),
        cmocka_unit_test(test_kv_persistence),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

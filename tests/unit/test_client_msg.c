/* Unit tests for the client's pure codecs (src/client/msg.c, route.c):
 * properties, UNIQ_KEY, batch records, pulled-record decoding built by hand
 * per docs/wire.md §9.2, compression, route JSON, queue choice. */
#define _GNU_SOURCE /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "client/client_int.h"
#include "common/hash.h"
#include "common/json.h"
#include "common/mem.h"

static void test_props_roundtrip(void **state)
{
    apg_message_t *m = apg_message_new("T", "hi", 2);
    assert_non_null(m);
    assert_int_equal(apg_message_set_tags(m, "TagA"), APG_OK);
    assert_int_equal(apg_message_set_keys(m, "k1 k2"), APG_OK);
    assert_int_equal(apg_message_put_property(m, "color", "red"), APG_OK);
    assert_int_equal(apg_message_put_property(m, "UNIQ_KEY", "x"), APG_EINVAL);
    assert_int_equal(apg_message_put_property(m, "TAGS", "x"), APG_EINVAL);
    assert_int_equal(apg_message_put_property(m, "a\x01", "x"), APG_EINVAL);
    assert_int_equal(apg_message_set_delay_level(m, 3), APG_OK);
    assert_int_equal(apg_message_set_delay_level(m, 19), APG_EINVAL);
    struct apg_buf b = APG_BUF_INIT;
    assert_int_equal(apg_msg_props_encode(m, &b), APG_OK);
    const char want[] = "WAIT\001true\002TAGS\001TagA\002KEYS\001k1 k2\002color\001red\002"
                        "DELAY\0013\002";
    assert_int_equal(b.b_len, sizeof(want) - 1);
    assert_memory_equal(b.b_data, want, b.b_len);

    apg_message_t *d = apg_message_new("T", NULL, 0);
    /* Java-style junk: short chunk, chunk without \x01, missing trailing \x02. */
    const char in[] = "a\002nosep\002TAGS\001X\002k\001v=1\001z";
    assert_int_equal(apg_msg_props_decode(d, in, sizeof(in) - 1), APG_OK);
    assert_string_equal(apg_message_tags(d), "X");
    assert_string_equal(apg_message_property(d, "k"), "v=1\001z");
    assert_null(apg_message_property(d, "nosep"));
    assert_int_equal(apg_message_set_delay_level(m, 0), APG_OK);
    assert_null(apg_message_property(m, "DELAY"));
    assert_int_equal(apg_message_set_deliver_time(m, 1767225600123LL), APG_OK);
    assert_string_equal(apg_message_property(m, "TIMER_DELIVER_MS"), "1767225600123");
    assert_int_equal(apg_message_set_deliver_time(m, -1), APG_EINVAL);
    apg_buf_reset(&b);
    assert_int_equal(apg_msg_props_encode(m, &b), APG_OK);
    assert_non_null(memmem(b.b_data, b.b_len, "TIMER_DELIVER_MS\0011767225600123\002", 31));
    assert_int_equal(apg_message_set_deliver_time(m, 0), APG_OK);
    assert_null(apg_message_property(m, "TIMER_DELIVER_MS"));
    apg_buf_free(&b);
    apg_message_free(m);
    apg_message_free(d);
}

/* apg_message_new makes one block and points client-set names (WAIT,
 * TAGS, UNIQ_KEY...) into a static table: every later edit (replace, grow
 * past the block's four property slots, delete, new body) must leave a
 * message that frees exactly what it allocated. */
static void test_message_block(void **state)
{
    int64_t before = apg_mem_in_use();
    apg_message_t *m = apg_message_new("Topic1", "abc", 3);
    assert_non_null(m);
    assert_string_equal(apg_message_topic(m), "Topic1");
    assert_string_equal(apg_message_property(m, "WAIT"), "true");
    assert_int_equal(apg_msg_prop_set(m, "WAIT", "false"), APG_OK);
    assert_string_equal(apg_message_property(m, "WAIT"), "false");
    assert_int_equal(apg_message_set_tags(m, "A"), APG_OK);
    assert_int_equal(apg_message_set_tags(m, "B"), APG_OK);
    assert_int_equal(apg_msg_ensure_uniq(m), APG_OK);
    const char *id = apg_message_id(m);
    assert_non_null(id);
    assert_int_equal(strlen(id), 32);
    assert_int_equal(apg_message_set_keys(m, "k"), APG_OK);
    for (int i = 0; i < 9; i++) { /* grows the property array out of the block */
        char k[8];
        snprintf(k, sizeof(k), "p%d", i);
        assert_int_equal(apg_message_put_property(m, k, "v"), APG_OK);
    }
    assert_int_equal(apg_message_set_delay_level(m, 2), APG_OK);
    assert_int_equal(apg_message_set_delay_level(m, 0), APG_OK);
    assert_null(apg_message_property(m, "DELAY"));
    assert_int_equal(apg_message_set_deliver_time(m, 1767225600123LL), APG_OK);
    assert_string_equal(apg_message_property(m, "TIMER_DELIVER_MS"), "1767225600123");
    assert_int_equal(apg_message_set_deliver_time(m, -1), APG_EINVAL);
    assert_int_equal(apg_message_set_deliver_time(m, 0), APG_OK);
    assert_null(apg_message_property(m, "TIMER_DELIVER_MS"));
    assert_string_equal(apg_message_tags(m), "B");
    assert_string_equal(apg_message_property(m, "p8"), "v");
    size_t len = 0;
    assert_memory_equal(apg_message_body(m, &len), "abc", 3);
    assert_int_equal(len, 3);
    assert_int_equal(apg_message_set_body(m, "wxyz", 4), APG_OK);
    assert_memory_equal(apg_message_body(m, &len), "wxyz", 4);
    assert_int_equal(len, 4);
    struct apg_buf b = APG_BUF_INIT;
    assert_int_equal(apg_msg_props_encode(m, &b), APG_OK);
    const char want[] = "WAIT\001false\002TAGS\001B\002UNIQ_KEY\001";
    assert_non_null(memmem(b.b_data, b.b_len, want, sizeof(want) - 1));
    apg_buf_free(&b);
    apg_message_free(m);

    apg_message_t *e = apg_message_new("T", NULL, 0); /* empty body */
    assert_non_null(e);
    assert_non_null(apg_message_body(e, &len));
    assert_int_equal(len, 0);
    apg_message_free(e);
    assert_int_equal(apg_mem_in_use(), before);
}

static void test_uniq_id(void **state)
{
    char a[33], b[33];
    apg_msg_uniq_id(a);
    apg_msg_uniq_id(b);
    assert_int_equal(strlen(a), 32);
    assert_string_not_equal(a, b);
    /* Same prefix (ip, pid, hash), counter differs by one. */
    assert_memory_equal(a, b, 20);
    unsigned ca, cb;
    sscanf(a + 28, "%4x", &ca);
    sscanf(b + 28, "%4x", &cb);
    assert_int_equal((ca + 1) & 0xFFFF, cb);
    apg_message_t *m = apg_message_new("T", "x", 1);
    assert_int_equal(apg_msg_ensure_uniq(m), APG_OK);
    char keep[33];
    snprintf(keep, sizeof(keep), "%s", apg_message_id(m));
    assert_int_equal(apg_msg_ensure_uniq(m), APG_OK);
    assert_string_equal(apg_message_id(m), keep);
    apg_message_free(m);
}

static void test_batch_record(void **state)
{
    apg_message_t *m = apg_message_new("T", "abc", 3);
    apg_message_set_flag(m, 7);
    struct apg_buf b = APG_BUF_INIT;
    assert_int_equal(apg_msg_batch_append(m, &b), APG_OK);
    const char props[] = "WAIT\001true\002";
    size_t plen = sizeof(props) - 1;
    assert_int_equal(b.b_len, 20 + 3 + 2 + plen);
    assert_int_equal(apg_be32(b.b_data), b.b_len);
    assert_int_equal(apg_be32(b.b_data + 4), 0);
    assert_int_equal(apg_be32(b.b_data + 12), 7);
    assert_int_equal(apg_be32(b.b_data + 16), 3);
    assert_memory_equal(b.b_data + 20, "abc", 3);
    assert_int_equal(apg_be16(b.b_data + 23), plen);
    assert_memory_equal(b.b_data + 25, props, plen);
    apg_buf_free(&b);
    apg_message_free(m);
}

/* Builds one stored record per docs/wire.md §9.2 (IPv4 hosts, V1 magic). */
static void put_record(struct apg_buf *b, const char *topic, const void *body, size_t blen,
                       const char *props, int32_t sysflag, int64_t qoff, int64_t phys)
{
    size_t tl = strlen(topic), pl = strlen(props);
    uint32_t total = (uint32_t)(91 + blen + tl + pl);
    apg_buf_put_be32(b, total);
    apg_buf_put_be32(b, APG_MSGREC_MAGIC_V1);
    apg_buf_put_be32(b, (uint32_t)apg_rmq_crc32(body, blen));
    apg_buf_put_be32(b, 2); /* queue id */
    apg_buf_put_be32(b, 9); /* flag */
    apg_buf_put_be64(b, (uint64_t)qoff);
    apg_buf_put_be64(b, (uint64_t)phys);
    apg_buf_put_be32(b, (uint32_t)sysflag);
    apg_buf_put_be64(b, 1700000000000ULL); /* born */
    apg_buf_append(b, "\x7f\x00\x00\x01", 4);
    apg_buf_put_be32(b, 5555);
    apg_buf_put_be64(b, 1700000000123ULL); /* store */
    apg_buf_append(b, "\xc0\xa8\x01\x02", 4);
    apg_buf_put_be32(b, 10911);
    apg_buf_put_be32(b, 1); /* reconsume */
    apg_buf_put_be64(b, 0); /* prepared offset */
    apg_buf_put_be32(b, (uint32_t)blen);
    apg_buf_append(b, body, blen);
    uint8_t t = (uint8_t)tl;
    apg_buf_append(b, &t, 1);
    apg_buf_append(b, topic, tl);
    apg_buf_put_be16(b, (uint16_t)pl);
    apg_buf_append(b, props, pl);
}

struct sink {
    apg_message_t *ms[8];
    int n;
};

static apg_err_t collect(apg_message_t *m, void *arg)
{
    struct sink *s = arg;
    s->ms[s->n++] = m;
    return APG_OK;
}

static void test_decode_records(void **state)
{
    struct apg_buf b = APG_BUF_INIT;
    put_record(&b, "TopicA", "hello", 5, "TAGS\001t1\002UNIQ_KEY\001ABC\002", 0, 41, 0x1000);
    char big[6000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)('a' + i % 7);
    uint8_t *z;
    size_t zl;
    assert_int_equal(apg_msg_zlib((uint8_t *)big, sizeof(big), 5, &z, &zl), APG_OK);
    assert_true(zl < sizeof(big));
    put_record(&b, "TopicA", z, zl, "", APG_SYSFLAG_COMPRESSED | APG_MSG_SYSFLAG_ZLIB, 42, 0x2000);
    apg_free(z);

    struct sink s = {0};
    char err[128];
    assert_int_equal(apg_msg_decode_records(b.b_data, b.b_len, collect, &s, err, sizeof(err)),
                     APG_OK);
    assert_int_equal(s.n, 2);
    apg_message_t *m = s.ms[0];
    assert_string_equal(apg_message_topic(m), "TopicA");
    size_t bl;
    assert_memory_equal(apg_message_body(m, &bl), "hello", 5);
    assert_int_equal(bl, 5);
    assert_string_equal(apg_message_tags(m), "t1");
    assert_string_equal(apg_message_id(m), "ABC");
    assert_int_equal(apg_message_queue_id(m), 2);
    assert_int_equal(apg_message_queue_offset(m), 41);
    assert_int_equal(apg_message_commitlog_offset(m), 0x1000);
    assert_int_equal(apg_message_reconsume_times(m), 1);
    assert_int_equal(apg_message_flag(m), 9);
    assert_int_equal(apg_message_born_timestamp(m), 1700000000000LL);
    assert_int_equal(apg_message_store_timestamp(m), 1700000000123LL);
    assert_string_equal(apg_message_offset_id(m), "C0A8010200002A9F0000000000001000");
    const void *body2 = apg_message_body(s.ms[1], &bl);
    assert_int_equal(bl, sizeof(big));
    assert_memory_equal(body2, big, sizeof(big));
    for (int i = 0; i < s.n; i++)
        apg_message_free(s.ms[i]);

    /* Truncations at every length fail cleanly or decode a prefix. */
    for (size_t cut = 1; cut < b.b_len; cut += 7) {
        struct sink t = {0};
        apg_err_t e = apg_msg_decode_records(b.b_data, cut, collect, &t, err, sizeof(err));
        assert_true(e == APG_EPROTO);
        for (int i = 0; i < t.n; i++)
            apg_message_free(t.ms[i]);
    }
    /* Bad magic. */
    b.b_data[5] ^= 0xFF;
    struct sink t = {0};
    assert_int_equal(apg_msg_decode_records(b.b_data, b.b_len, collect, &t, err, sizeof(err)),
                     APG_EPROTO);
    assert_int_equal(t.n, 0);
    apg_buf_free(&b);
}

static const char route_fastjson[] =
    "{\"brokerDatas\":[{\"brokerAddrs\":{0:\"10.0.0.2:10911\",1:\"10.0.0.3:10911\"},"
    "\"brokerName\":\"broker-b\",\"cluster\":\"C\"},"
    "{\"brokerAddrs\":{0:\"10.0.0.1:10911\"},\"brokerName\":\"broker-a\",\"cluster\":\"C\"},"
    "{\"brokerAddrs\":{1:\"10.0.0.9:10911\"},\"brokerName\":\"broker-c\",\"cluster\":\"C\"}],"
    "\"filterServerTable\":{},\"queueDatas\":["
    "{\"brokerName\":\"broker-b\",\"perm\":6,\"readQueueNums\":2,\"topicSysFlag\":0,"
    "\"writeQueueNums\":3},"
    "{\"brokerName\":\"broker-a\",\"perm\":6,\"readQueueNums\":4,\"topicSysFlag\":0,"
    "\"writeQueueNums\":4},"
    "{\"brokerName\":\"broker-c\",\"perm\":6,\"readQueueNums\":4,\"topicSysFlag\":0,"
    "\"writeQueueNums\":4}]}";

static void test_route(void **state)
{
    struct apg_croute rt;
    char err[128];
    assert_int_equal(apg_croute_parse("T", (const uint8_t *)route_fastjson, strlen(route_fastjson),
                                      &rt, err, sizeof(err)),
                     APG_OK);
    /* broker-c has no master (it is gone): nothing to write to, but its
     * slave serves reads, as Java's findBrokerAddressInSubscribe falls back
     * to it. Sorted: a0..a3, b0..b2 (write); a0..a3, b0..b1, c0..c3 (read). */
    assert_int_equal(rt.rt_nwq, 7);
    assert_int_equal(rt.rt_nrq, 10);
    assert_string_equal(rt.rt_rq[9].mq_broker, "broker-c");
    assert_string_equal(apg_croute_reader(&rt, "broker-c"), "10.0.0.9:10911");
    assert_string_equal(apg_croute_reader(&rt, "broker-b"), "10.0.0.2:10911");
    assert_string_equal(rt.rt_wq[0].mq_broker, "broker-a");
    assert_string_equal(rt.rt_wq[4].mq_broker, "broker-b");
    assert_int_equal(rt.rt_wq[6].mq_queue_id, 2);
    assert_string_equal(rt.rt_wq[0].mq_topic, "T");
    assert_string_equal(apg_croute_master(&rt, "broker-b"), "10.0.0.2:10911");
    assert_null(apg_croute_master(&rt, "broker-c"));

    uint32_t ctr = 0;
    for (int i = 0; i < 14; i++)
        assert_int_equal(apg_croute_pick_rr(&rt, &ctr, NULL), i % 7);
    ctr = 0;
    for (int i = 0; i < 10; i++) {
        int q = apg_croute_pick_rr(&rt, &ctr, "broker-a");
        assert_string_equal(rt.rt_wq[q].mq_broker, "broker-b");
    }
    /* Java: "order-42".hashCode() % 7, made non-negative. */
    int32_t h = apg_java_hash("order-42", 8);
    int want = h % 7 < 0 ? -(h % 7) : h % 7;
    assert_int_equal(apg_croute_pick_hash(&rt, "order-42"), want);
    /* The public selector picks the same queue; no queue or no key: -1. */
    assert_int_equal(apg_queue_select_by_hash(rt.rt_wq, 7, NULL, "order-42"), want);
    assert_int_equal(apg_queue_select_by_hash(rt.rt_wq, 0, NULL, "order-42"), -1);
    assert_int_equal(apg_queue_select_by_hash(rt.rt_wq, 7, NULL, NULL), -1);
    apg_croute_free(&rt);

    const char bad[] = "{\"brokerDatas\":3}";
    assert_int_equal(
        apg_croute_parse("T", (const uint8_t *)bad, strlen(bad), &rt, err, sizeof(err)),
        APG_EPROTO);
    const char notjson[] = "{brokerDatas";
    assert_int_equal(
        apg_croute_parse("T", (const uint8_t *)notjson, strlen(notjson), &rt, err, sizeof(err)),
        APG_EPROTO);
}

static void test_normalize(void **state)
{
    const char in[] = "{0:\"a\", 12 :\"{3:x}\",\"k\":[1,2],-1:{5:1}}";
    /* Routes go through the shared fastjson reader (common/json.h). */
    char err[128];
    json_t *o = apg_json_parse(in, strlen(in), err, sizeof(err));
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "0")), "a");
    assert_string_equal(json_string_value(json_object_get(o, "12")), "{3:x}");
    assert_int_equal(json_array_size(json_object_get(o, "k")), 2);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "-1"), "5")), 1);
    assert_int_equal(json_object_size(o), 4);
    json_decref(o);
}

/* Java AllocateMessageQueueAveragely: 8 queues over 3 clients -> 3, 3, 2;
 * 2 queues over 3 clients -> 1, 1, 0; every queue assigned exactly once. */
static void test_alloc_average(void **state)
{
    apg_mq_t mqs[8];
    for (int i = 0; i < 8; i++) {
        memset(&mqs[i], 0, sizeof(mqs[i]));
        strcpy(mqs[i].mq_topic, "T");
        strcpy(mqs[i].mq_broker, i < 4 ? "broker-b" : "broker-a");
        mqs[i].mq_queue_id = (7 - i) % 4;
    }
    char *cids[] = {"c@3", "c@1", "c@2"};
    size_t out[8], n;
    n = apg_alloc_average(mqs, 8, cids, 3, "c@1", out);
    assert_int_equal(n, 3);
    assert_string_equal(mqs[out[0]].mq_broker, "broker-a");
    assert_int_equal(mqs[out[0]].mq_queue_id, 0);
    assert_int_equal(mqs[out[2]].mq_queue_id, 2);
    n = apg_alloc_average(mqs, 8, cids, 3, "c@2", out);
    assert_int_equal(n, 3);
    assert_int_equal(out[0], 3); /* broker-a:3, broker-b:0, broker-b:1 */
    assert_string_equal(mqs[out[1]].mq_broker, "broker-b");
    n = apg_alloc_average(mqs, 8, cids, 3, "c@3", out);
    assert_int_equal(n, 2);
    assert_int_equal(out[0], 6);
    assert_int_equal(out[1], 7);
    assert_int_equal(apg_alloc_average(mqs, 8, cids, 3, "stranger", out), 0);
    n = apg_alloc_average(mqs, 2, cids, 3, "c@1", out);
    assert_int_equal(n, 1);
    n = apg_alloc_average(mqs, 2, cids, 3, "c@3", out);
    assert_int_equal(n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_props_roundtrip), cmocka_unit_test(test_uniq_id),
        cmocka_unit_test(test_batch_record),    cmocka_unit_test(test_decode_records),
        cmocka_unit_test(test_route),           cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_alloc_average),   cmocka_unit_test(test_message_block),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

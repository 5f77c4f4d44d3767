/* Broker config tables and their change journals, JSON reader, name rules, tag filters, properties
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
    assert_true(apg_name_topic_send_forbidden("rmq_sys_wheel_timer"));
    assert_false(apg_name_topic_send_forbidden("orders"));
}

/* ---- change journal ---------------------------------------------------- */

struct replayed {
    int n;
    char ops[16];
    char names[16][32];
};

static apg_err_t note_replay(void *ud, int op, const char *name, const json_t *entry)
{
    struct replayed *r = ud;
    if (op == APG_BJ_UPSERT && !entry)
        return APG_EINVAL;
    r->ops[r->n] = (char)op;
    snprintf(r->names[r->n], sizeof(r->names[0]), "%s", name);
    r->n++;
    return APG_OK;
}

static size_t add_record(struct apg_buf *b, int op, int64_t ver, const char *name, const char *json)
{
    size_t start;
    assert_int_equal(apg_bjournal_begin(b, op, ver, name, &start), APG_OK);
    if (json)
        assert_int_equal(apg_buf_append_str(b, json), APG_OK);
    apg_bjournal_end(b, start);
    return b->b_len - start;
}

static void test_journal_codec(void **st)
{
    (void)st;
    struct apg_buf b = APG_BUF_INIT;
    size_t r1 = add_record(&b, APG_BJ_UPSERT, 5, "A", "{\"topicName\":\"A\",\"perm\":6}");
    size_t r2 = add_record(&b, APG_BJ_UPSERT, 6, "B", "{\"topicName\":\"B\"}");
    size_t r3 = add_record(&b, APG_BJ_DELETE, 7, "A", NULL);
    assert_int_equal(b.b_len, r1 + r2 + r3);
    struct replayed r = {0};
    struct apg_bjournal_scan s;
    assert_int_equal(apg_bjournal_scan(b.b_data, b.b_len, 0, note_replay, &r, &s), APG_OK);
    assert_null(s.bs_stop);
    assert_int_equal(s.bs_good, b.b_len);
    assert_int_equal(s.bs_records, 3);
    assert_int_equal(s.bs_applied, 3);
    assert_int_equal(s.bs_max_version, 7);
    assert_memory_equal(r.ops, "UUD", 3);
    assert_string_equal(r.names[2], "A");

    /* Records at or below the base version (the loaded file has them) are
     * skipped but still read. */
    memset(&r, 0, sizeof(r));
    apg_bjournal_scan(b.b_data, b.b_len, 6, note_replay, &r, &s);
    assert_int_equal(s.bs_records, 3);
    assert_int_equal(s.bs_applied, 1);
    assert_int_equal(r.ops[0], 'D');

    /* A torn tail: every cut inside the last record keeps the first two. */
    for (size_t cut = 1; cut < r3; cut++) {
        memset(&r, 0, sizeof(r));
        apg_bjournal_scan(b.b_data, b.b_len - cut, 0, note_replay, &r, &s);
        assert_non_null(s.bs_stop);
        assert_int_equal(s.bs_good, r1 + r2);
        assert_int_equal(r.n, 2);
    }

    /* A flipped byte in the second record stops the replay before it. */
    b.b_data[r1 + r2 - 2] ^= 0x20;
    memset(&r, 0, sizeof(r));
    apg_bjournal_scan(b.b_data, b.b_len, 0, note_replay, &r, &s);
    assert_non_null(strstr(s.bs_stop, "CRC"));
    assert_int_equal(s.bs_good, r1);
    assert_int_equal(r.n, 1);

    /* A name with a NUL byte in it (CRC intact) is a bad record: it would
     * be applied to the name before the NUL, or to "". */
    for (size_t at = 0; at < 2; at++) {
        apg_buf_reset(&b);
        add_record(&b, APG_BJ_UPSERT, 1, "DD", "{\"topicName\":\"D\"}");
        b.b_data[8 + 11 + at] = '\0';
        apg_bjournal_end(&b, 0);
        memset(&r, 0, sizeof(r));
        apg_bjournal_scan(b.b_data, b.b_len, 0, note_replay, &r, &s);
        assert_non_null(s.bs_stop);
        assert_string_equal(s.bs_stop, "record does not decode");
        assert_int_equal(s.bs_good, 0);
        assert_int_equal(r.n, 0);
    }

    /* An upsert whose entry is not JSON (CRC intact) is a bad record too. */
    apg_buf_reset(&b);
    add_record(&b, APG_BJ_UPSERT, 1, "C", "{not json");
    memset(&r, 0, sizeof(r));
    apg_bjournal_scan(b.b_data, b.b_len, 0, note_replay, &r, &s);
    assert_non_null(s.bs_stop);
    assert_int_equal(s.bs_good, 0);
    apg_buf_free(&b);
}

static long file_size(const char *d, const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/config/%s", d, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

static void copy_file(const char *from, const char *to)
{
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", from, to);
    assert_int_equal(system(cmd), 0);
}

static void put_topic(struct apg_topics *t, const char *name, int32_t queues, int32_t perm)
{
    struct apg_topic_cfg tc = {0};
    snprintf(tc.tc_name, sizeof(tc.tc_name), "%s", name);
    tc.tc_read_queues = tc.tc_write_queues = queues;
    tc.tc_perm = perm;
    assert_int_equal(apg_topics_put(t, &tc), APG_OK);
}

static void test_journal_tables(void **st)
{
    (void)st;
    char *d = tmpdir();
    char err[256], log[512], saved[512];
    snprintf(log, sizeof(log), "%s/config/topics.json.log", d);
    snprintf(saved, sizeof(saved), "%s/saved.log", d);
    struct apg_topics *t = apg_topics_open(d, true, 8, "c", "b", err, sizeof(err));
    assert_non_null(t);
    /* The builtin topics go into the whole file, as at broker start. */
    assert_int_equal(apg_topics_persist(t, true, NULL, err, sizeof(err)), APG_OK);
    assert_int_equal(file_size(d, "topics.json.log"), 0);
    long json0 = file_size(d, "topics.json");
    put_topic(t, "T1", 3, 6);
    put_topic(t, "T2", 2, 6);
    put_topic(t, "T1", 5, 4); /* an update */
    assert_true(apg_topics_delete(t, "T2"));
    uint64_t upto = 0;
    assert_int_equal(apg_topics_persist(t, false, &upto, err, sizeof(err)), APG_OK);
    assert_true(upto == apg_topics_changes(t));
    /* Only the journal grew. */
    assert_true(file_size(d, "topics.json.log") > 0);
    assert_int_equal(file_size(d, "topics.json"), json0);
    copy_file(log, saved);
    /* A crash: no whole-file write. */
    apg_topics_free(t);

    t = apg_topics_open(d, true, 8, "c", "b", err, sizeof(err));
    assert_non_null(t);
    struct apg_topic_cfg tc;
    assert_true(apg_topics_get(t, "T1", &tc));
    assert_int_equal(tc.tc_write_queues, 5);
    assert_int_equal(tc.tc_perm, 4);
    assert_false(apg_topics_get(t, "T2", NULL));
    apg_topics_free(t);

    /* A torn append at the end is ignored and cut off; the records before
     * it count. */
    long good = file_size(d, "topics.json.log");
    FILE *f = fopen(log, "ab");
    fwrite("\x00\x00\x01\x00garbage", 1, 11, f);
    fclose(f);
    t = apg_topics_open(d, true, 8, "c", "b", err, sizeof(err));
    assert_non_null(t);
    assert_int_equal(file_size(d, "topics.json.log"), good);
    assert_true(apg_topics_get(t, "T1", &tc));
    assert_int_equal(tc.tc_write_queues, 5);

    /* Compaction writes the whole file and empties the journal. A crash
     * before the journal is emptied (simulated by putting the old journal
     * back) must not undo the later change the file holds. */
    put_topic(t, "T1", 7, 6);
    assert_int_equal(apg_topics_persist(t, true, NULL, err, sizeof(err)), APG_OK);
    assert_int_equal(file_size(d, "topics.json.log"), 0);
    apg_topics_free(t);
    copy_file(saved, log);
    t = apg_topics_open(d, true, 8, "c", "b", err, sizeof(err));
    assert_true(apg_topics_get(t, "T1", &tc));
    assert_int_equal(tc.tc_write_queues, 7);
    assert_false(apg_topics_get(t, "T2", NULL));

    /* The journal is bounded: past APG_BJOURNAL_MAX_RECORDS the whole file
     * is written instead and the journal starts over. */
    char name[32];
    for (unsigned i = 0; i < APG_BJOURNAL_MAX_RECORDS + 50; i++) {
        snprintf(name, sizeof(name), "Many%u", i);
        put_topic(t, name, 1, 6);
        if (i % 10 == 9)
            assert_int_equal(apg_topics_persist(t, false, NULL, err, sizeof(err)), APG_OK);
    }
    assert_int_equal(apg_topics_persist(t, false, NULL, err, sizeof(err)), APG_OK);
    assert_true(file_size(d, "topics.json.log") < 100 * 200);
    assert_true(file_size(d, "topics.json") > json0 + 900 * 100);
    apg_topics_free(t);
    t = apg_topics_open(d, true, 8, "c", "b", err, sizeof(err));
    for (unsigned i = 0; i < APG_BJOURNAL_MAX_RECORDS + 50; i++) {
        snprintf(name, sizeof(name), "Many%u", i);
        assert_true(apg_topics_get(t, name, NULL));
    }
    apg_topics_free(t);

    /* Groups keep a journal the same way. */
    struct apg_groups *g = apg_groups_open(d, err, sizeof(err));
    struct apg_group_cfg gc;
    assert_int_equal(apg_groups_get_or_create(g, "gJ", true, &gc), APG_OK);
    assert_int_equal(apg_groups_get_or_create(g, "gK", true, &gc), APG_OK);
    /* Without a journal yet, the first commit writes the whole file. */
    assert_int_equal(apg_groups_persist(g, false, NULL, err, sizeof(err)), APG_OK);
    assert_int_equal(file_size(d, "subscriptionGroup.json.log"), 0);
    gc.gc_retry_max_times = 5;
    assert_int_equal(apg_groups_put(g, &gc), APG_OK);
    assert_true(apg_groups_delete(g, "gJ"));
    assert_int_equal(apg_groups_persist(g, false, NULL, err, sizeof(err)), APG_OK);
    assert_true(file_size(d, "subscriptionGroup.json.log") > 0);
    apg_groups_free(g);
    g = apg_groups_open(d, err, sizeof(err));
    assert_false(apg_groups_get(g, "gJ", NULL));
    assert_true(apg_groups_get(g, "gK", &gc));
    assert_int_equal(gc.gc_retry_max_times, 5);
    apg_groups_free(g);
    rmrf(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topics_autocreate_and_persist),
        cmocka_unit_test(test_groups_and_offsets),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_journal_codec),
        cmocka_unit_test(test_journal_tables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The message index (src/store/index.c): put and query by key and unique key,
 * hash collisions, file rollover, truncation before re-dispatch, recovery
 * after kill -9 in the middle of a load, retention, and the on-disk layout. */
#define _GNU_SOURCE
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/buf.h"
#include "store/store_fault.h"
#include "store/store_int.h"
#include "test_store_util.h"

static void opts(struct apg_store_opts *o, const char *dir, uint32_t slots, uint32_t entries)
{
    tu_opts(o, dir);
    o->so_index_slots = slots;
    o->so_index_entries = entries;
}

/* Puts message i of topic with KEYS "k<i> all" and UNIQ_KEY "U<i>". */
static int64_t put_keyed(struct apg_store *st, const char *topic, int i)
{
    struct tu_msg t;
    tu_msg_make(&t, topic, 0, i);
    int pl = snprintf(t.props, sizeof(t.props), "KEYS%ck%d all%cUNIQ_KEY%cU%d%c", 1, i, 2, 1, i, 2);
    t.m.mi_props_len = (size_t)pl;
    struct apg_put_result r;
    char err[256];
    assert_int_equal(apg_store_put(st, &t.m, 1, &r, NULL, NULL, err, sizeof(err)), 0);
    return r.pr_phys_offset;
}

/* Number of records for key and the body of the first ("msg-<i>" -> i). */
static int query(struct apg_store *st, const char *topic, const char *key, int max, int *first)
{
    struct apg_buf out = APG_BUF_INIT;
    struct apg_store_query_result r;
    assert_int_equal(apg_store_query_message(st, topic, strlen(topic), key, strlen(key), max, 0,
                                             INT64_MAX, &out, &r),
                     0);
    if (first && r.sq_count) {
        struct apg_msgrec m;
        assert_int_equal(apg_msgrec_decode(out.b_data, out.b_len, true, &m, NULL), APG_MSGREC_OK);
        *first = atoi((const char *)m.mr_body + 4);
    }
    size_t at = 0;
    for (int k = 0; k < r.sq_count; k++) {
        struct apg_msgrec m;
        assert_int_equal(apg_msgrec_decode(out.b_data + at, out.b_len - at, true, &m, NULL),
                         APG_MSGREC_OK);
        at += m.mr_total_size;
    }
    assert_int_equal(at, out.b_len);
    apg_buf_free(&out);
    return r.sq_count;
}

static void expect_key(struct apg_store *st, const char *topic, int i)
{
    char k[32];
    int first = -1;
    snprintf(k, sizeof(k), "k%d", i);
    assert_int_equal(query(st, topic, k, 32, &first), 1);
    assert_int_equal(first, i);
    snprintf(k, sizeof(k), "U%d", i);
    first = -1;
    assert_int_equal(query(st, topic, k, 32, &first), 1);
    assert_int_equal(first, i);
}

/* Files under <dir>/index, and checks every entry of each: count in range,
 * commit-log offset below `end`, chains going down. Returns the file count
 * and the entries in *entries. */
static int check_files(const char *dir, uint32_t slots, uint32_t max, int64_t end, long *entries)
{
    char p[600];
    snprintf(p, sizeof(p), "%s/index", dir);
    DIR *d = opendir(p);
    assert_non_null(d);
    int files = 0;
    *entries = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        assert_int_equal(strlen(de->d_name), 17);
        snprintf(p, sizeof(p), "%s/index/%s", dir, de->d_name);
        FILE *f = fopen(p, "rb");
        assert_non_null(f);
        size_t sz = 40 + (size_t)slots * 4 + (size_t)max * 20;
        uint8_t *b = malloc(sz);
        assert_int_equal(fread(b, 1, sz, f), sz);
        assert_int_equal(fgetc(f), EOF); /* exactly the layout's size */
        fclose(f);
        uint32_t cnt = apg_be32(b + 36);
        assert_true(cnt >= 1 && cnt <= max);
        for (uint32_t s = 0; s < slots; s++)
            assert_true(apg_be32(b + 40 + s * 4) < cnt);
        for (uint32_t e = 1; e < cnt; e++) {
            const uint8_t *x = b + 40 + (size_t)slots * 4 + (size_t)e * 20;
            assert_true((int64_t)apg_be64(x + 4) < end);
            assert_true(apg_be32(x + 16) < e);
        }
        *entries += cnt - 1;
        free(b);
        files++;
    }
    closedir(d);
    return files;
}

static void test_put_query(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    struct apg_store_opts o;
    opts(&o, dir, 1000, 100000);
    struct apg_store *st;
    char err[512];
    assert_int_equal(apg_store_open(&o, &st, err, sizeof(err)), 0);
    for (int i = 0; i < 50; i++) {
        put_keyed(st, "IA", i);
        put_keyed(st, "IB", 1000 + i);
    }
    for (int i = 0; i < 50; i++)
        expect_key(st, "IA", i);
    int first = -1;
    assert_int_equal(query(st, "IA", "all", 64, &first), 50);
    assert_int_equal(first, 49); /* newest first */
    assert_int_equal(query(st, "IA", "all", 7, NULL), 7);
    assert_int_equal(query(st, "IA", "k1000", 64, NULL), 0); /* other topic */
    assert_int_equal(query(st, "IA", "k", 64, NULL), 0);     /* not a whole word */
    assert_int_equal(query(st, "IA", "nope", 64, NULL), 0);
    /* Time range: nothing before the first store time. */
    struct apg_buf out = APG_BUF_INIT;
    struct apg_store_query_result r;
    assert_int_equal(apg_store_query_message(st, "IA", 2, "k1", 2, 32, 0, 1000, &out, &r), 0);
    assert_int_equal(r.sq_count, 0);
    assert_true(r.sq_last_update_phys > 0 && r.sq_last_update_ts > 1000);
    apg_buf_free(&out);
    apg_store_close(st);
    /* Clean reopen: everything still there. */
    assert_int_equal(apg_store_open(&o, &st, err, sizeof(err)), 0);
    for (int i = 0; i < 50; i++)
        expect_key(st, "IB", 1000 + i);
    apg_store_close(st);
    long n;
    assert_int_equal(check_files(dir, 1000, 100000, INT64_MAX, &n), 1);
    assert_int_equal(n, 100 * 3);
    tu_rmrf(dir);
    free(dir);
}

static void test_collisions_and_rollover(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    struct apg_store_opts o;
    /* One slot: every key collides; 10 entries a file: 3 keys a message
     * fill a file every 3 messages. */
    opts(&o, dir, 1, 10);
    struct apg_store *st;
    char err[512];
    assert_int_equal(apg_store_open(&o, &st, err, sizeof(err)), 0);
    for (int i = 0; i < 40; i++)
        put_keyed(st, "IC", i);
    for (int i = 0; i < 40; i++)
        expect_key(st, "IC", i);
    assert_int_equal(query(st, "IC", "all", 64, NULL), 40);
    apg_store_close(st);
    long n;
    int files = check_files(dir, 1, 10, INT64_MAX, &n);
    assert_int_equal(n, 120);
    assert_int_equal(files, 14); /* 9 entries a file */
    tu_rmrf(dir);
    free(dir);
}

static void test_truncate(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    struct apg_store_opts o;
    opts(&o, dir, 7, 31);
    struct apg_store *st;
    char err[512];
    assert_int_equal(apg_store_open(&o, &st, err, sizeof(err)), 0);
    int64_t phys[60];
    for (int i = 0; i < 60; i++)
        phys[i] = put_keyed(st, "IT", i);
    /* What recovery does before re-dispatching from a record: forget the
     * index from there (across files: 10 messages a file). */
    apg_index_dispatch_truncate(st, phys[25]);
    for (int i = 0; i < 25; i++)
        expect_key(st, "IT", i);
    for (int i = 25; i < 60; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%d", i);
        assert_int_equal(query(st, "IT", k, 32, NULL), 0);
    }
    assert_int_equal(query(st, "IT", "all", 64, NULL), 25);
    /* Re-dispatched records and new ones chain onto the cut index. */
    for (int i = 25; i < 60; i++) {
        struct apg_msgrec m;
        struct apg_buf b = APG_BUF_INIT;
        assert_int_equal(apg_store_read_at(st, phys[i], &b), 0);
        assert_int_equal(apg_msgrec_decode(b.b_data, b.b_len, false, &m, NULL), APG_MSGREC_OK);
        struct apg_dispatch_rec dr = {
            .dr_topic = m.mr_topic,
            .dr_topic_len = m.mr_topic_len,
            .dr_phys = phys[i],
            .dr_store_ts = m.mr_store_ts,
            .dr_props = m.mr_props,
            .dr_props_len = m.mr_props_len,
        };
        int done;
        assert_int_equal(apg_index_dispatch_records(st, &dr, 1, true, &done, err, sizeof(err)), 0);
        apg_buf_free(&b);
    }
    put_keyed(st, "IT", 60);
    for (int i = 0; i <= 60; i++)
        expect_key(st, "IT", i);
    assert_int_equal(query(st, "IT", "all", 64, NULL), 61);
    apg_store_close(st);
    long n;
    check_files(dir, 7, 31, INT64_MAX, &n);
    assert_int_equal(n, 61 * 3);
    tu_rmrf(dir);
    free(dir);
}

/* A child puts keyed messages and reports each acknowledged one on a pipe;
 * the parent kills it with SIGKILL mid-load. After reopening, every
 * acknowledged key is found and no index entry points past the log end. */
/* Zeroes the slot table of the newest (highest-named) index file. */
static void zero_newest_slots(const char *dir, uint32_t slots)
{
    char p[600], newest[300] = "";
    snprintf(p, sizeof(p), "%s/index", dir);
    DIR *d = opendir(p);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.' && strcmp(de->d_name, newest) > 0)
            snprintf(newest, sizeof(newest), "%s", de->d_name);
    closedir(d);
    assert_true(newest[0] != '\0');
    snprintf(p, sizeof(p), "%s/index/%s", dir, newest);
    FILE *f = fopen(p, "r+b");
    assert_non_null(f);
    uint8_t *z = calloc(slots, 4);
    assert_int_equal(fseek(f, 40, SEEK_SET), 0);
    assert_int_equal(fwrite(z, 4, slots, f), slots);
    fclose(f);
    free(z);
}

/* Forks a child that opens the store of o and puts records 0, 1, ... to
 * topic (put_keyed; n of them, or without end when n < 0), writing each
 * one's index to the pipe *rfd reads after its put; when done it waits to
 * be killed. */
static pid_t fork_putter(const struct apg_store_opts *o, const char *topic, int n, int *rfd)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        struct apg_store *st;
        char err[512];
        if (apg_store_open(o, &st, err, sizeof(err)))
            _exit(2);
        for (int i = 0; n < 0 || i < n; i++) {
            put_keyed(st, topic, i);
            if (write(fds[1], &i, sizeof(i)) != sizeof(i))
                _exit(3);
        }
        for (;;)
            pause();
    }
    close(fds[1]);
    *rfd = fds[0];
    return pid;
}

/* SIGKILL, as a power cut looks to the process. */
static void kill_putter(pid_t pid)
{
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
}

static void test_kill9_mid_load(void **state)
{
    (void)state;
    for (int round = 0; round < 3; round++) {
        char *dir = tu_tmpdir();
        struct apg_store_opts o;
        opts(&o, dir, 101, 500);
        int rfd;
        pid_t pid = fork_putter(&o, "IK", -1, &rfd);
        int last = -1, v;
        while (last < 1500 + round * 1000 && read(rfd, &v, sizeof(v)) == sizeof(v))
            last = v;
        kill_putter(pid);
        while (read(rfd, &v, sizeof(v)) == sizeof(v))
            last = v;
        close(rfd);
        assert_true(last >= 1500);
        struct apg_store *st;
        char err[512];
        assert_int_equal(apg_store_open(&o, &st, err, sizeof(err)), 0);
        struct apg_store_stats ss;
        apg_store_stats(st, &ss);
        long n;
        assert_true(check_files(dir, 101, 500, ss.ss_max_phys_offset, &n) >= 2);
        for (int i = 0; i <= last; i++)
            expect_key(st, "IK", i);
        apg_store_close(st);
        tu_rmrf(dir);
        free(dir);
    }
}

/* The newest file's slot table is msynced only when the file is full or
 * the store closes, so after a power cut its slots on disk can be any
 * older state. Keys a checkpoint covers (not indexed again by recovery)
 * are found after their slots are zeroed on disk: recovery rebuilds the
 * slots from the entries. */
static void test_stale_slots_rebuilt(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    struct apg_store_opts o;
    opts(&o, dir, 101, 100000);
    int rfd;
    pid_t pid = fork_putter(&o, "IZ", 300, &rfd);
    int v = -1;
    while (v < 299)
        assert_int_equal(read(rfd, &v, sizeof(v)), sizeof(v));
    close(rfd);
    usleep(1500 * 1000); /* a checkpoint (every flushIntervalCommitLog) covers them */
    kill_putter(pid);
    zero_newest_slots(dir, 101);
    struct apg_store *st;
    char err[512];
    assert_int_equal(apg_store_open(&o, &st, err, sizeof(err)), 0);
    for (int i = 0; i < 300; i++)
        expect_key(st, "IZ", i);
    assert_int_equal(query(st, "IZ", "all", 64, NULL), 64);
    apg_store_close(st);
    tu_rmrf(dir);
    free(dir);
}

static void test_retention_and_disabled(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    struct apg_store_opts o;
    opts(&o, dir, 11, 50);
    o.so_file_reserved_hours = 0;
    struct apg_store *st;
    char err[512];
    assert_int_equal(apg_store_open(&o, &st, err, sizeof(err)), 0);
    for (int i = 0; i < 1500; i++) /* about 2 commit-log segments */
        put_keyed(st, "IR", i);
    long n;
    assert_int_equal(apg_index_dispatch_flush(st), 0); /* headers on disk */
    /* Retention compares whole seconds of mtime with time(NULL); a file's
     * fine-grained mtime can be a second ahead of the coarse clock near a
     * second's edge, so let the clock pass the files' second first. */
    sleep(1);
    int before = check_files(dir, 11, 50, INT64_MAX, &n);
    assert_true(apg_store_clean_now(st) >= 1);
    int after = check_files(dir, 11, 50, INT64_MAX, &n);
    assert_true(after < before && after >= 1);
    expect_key(st, "IR", 1499);
    apg_store_close(st);
    tu_rmrf(dir);

    /* messageIndexEnable=false: no files, queries find nothing. */
    opts(&o, dir, 11, 50);
    o.so_no_index = true;
    assert_int_equal(apg_store_open(&o, &st, err, sizeof(err)), 0);
    put_keyed(st, "IR", 1);
    assert_int_equal(query(st, "IR", "k1", 32, NULL), 0);
    apg_store_close(st);
    char p[600];
    snprintf(p, sizeof(p), "%s/index", dir);
    assert_int_equal(access(p, F_OK), -1);
    tu_rmrf(dir);
    free(dir);
}

/* Index keys are hashed with Java's String.hashCode (values from Java); the
 * ASCII fast path of apg_java_hash must agree with the general one across
 * lengths and where non-ASCII text starts. */
static void test_key_hash(void **state)
{
    (void)state;
    assert_int_equal(apg_java_hash("TagA", 4), 2598919);
    const char *s = "BenchTopic#7F000001000000000000000000000000";
    assert_int_equal(apg_java_hash(s, strlen(s)), 685649076);
    s = "h\xc3\xa9llo w\xc3\xb6rld ascii tail here";
    assert_int_equal(apg_java_hash(s, strlen(s)), 736550506);
    assert_int_equal(apg_java_hash("abcdefghi", 9), 395180133);
    /* Same value whichever way the text is split between the paths. */
    char buf[64];
    for (int at = 0; at < 20; at++) {
        memset(buf, 'k', sizeof(buf));
        memcpy(buf + at, "\xc3\xa9", 2);
        /* The two bytes are one UTF-16 unit (U+00E9). */
        uint32_t want = 0;
        for (int i = 0; i < 30; i++) {
            if (i == at + 1)
                continue;
            want = 31 * want + (i == at ? 0xE9u : 'k');
        }
        assert_int_equal(apg_java_hash(buf, 30), (int32_t)want);
    }
}

/* A batch whose third record needs a new queue that cannot be created: the
 * first two are stored and published, and the index has them too; the third
 * is not stored and not indexed. */
static void test_partial_batch(void **state)
{
    (void)state;
    apg_store_fault_arm();
    char *dir = tu_tmpdir();
    struct apg_store_opts o;
    opts(&o, dir, 101, 1000);
    struct apg_store *st;
    char err[512];
    assert_int_equal(apg_store_open(&o, &st, err, sizeof(err)), 0);
    put_keyed(st, "IP", 0); /* queue IP/0 exists */
    struct tu_msg t[3];
    struct apg_msg_in m[3];
    for (int i = 0; i < 3; i++) {
        tu_msg_make(&t[i], "IP", i == 2 ? 5 : 0, 1 + i);
        t[i].m.mi_props_len =
            (size_t)snprintf(t[i].props, sizeof(t[i].props), "KEYS%ck%d%c", 1, 1 + i, 2);
        m[i] = t[i].m;
    }
    assert_int_equal(apg_store_fault_enospc_next_create(st), 0);
    struct apg_put_result r[3];
    assert_int_not_equal(apg_store_put(st, m, 3, r, NULL, NULL, err, sizeof(err)), 0);
    assert_int_equal(apg_store_max_offset(st, "IP", 2, 0), 3);
    assert_int_equal(query(st, "IP", "k1", 32, NULL), 1);
    assert_int_equal(query(st, "IP", "k2", 32, NULL), 1);
    assert_int_equal(query(st, "IP", "k3", 32, NULL), 0);
    apg_store_close(st);
    tu_rmrf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_hash),
        cmocka_unit_test(test_put_query),
        cmocka_unit_test(test_collisions_and_rollover),
        cmocka_unit_test(test_truncate),
        cmocka_unit_test(test_kill9_mid_load),
        cmocka_unit_test(test_stale_slots_rebuilt),
        cmocka_unit_test(test_retention_and_disabled),
        cmocka_unit_test(test_partial_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

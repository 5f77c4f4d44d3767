/* Pop state files (broker/pop/pop.c): what apg_pop_open makes of
 * pop/journal and pop/snapshot as a crash or a clean stop leaves them --
 * an empty store, a journal with a torn tail (cut off), a clean stop
 * (snapshot of the next generation, empty journal), a journal older than
 * the snapshot (dropped), a snapshot that is not one (refused, naming the
 * file); a batch of acknowledgements written with one journal record run. */
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

#include "broker/broker_rt.h"
#include "broker/pop/pop.h"
#include "broker/pop/pop_state.h"
#include "common/file.h"

static char root[256];

/* A broker with what the pop module uses: the root and the offset table
 * (an ack moves the group's committed offset). */
static struct apg_broker *broker(void)
{
    struct apg_broker *b = calloc(1, sizeof(*b));
    snprintf(b->br_root, sizeof(b->br_root), "%s", root);
    b->br_offsets = apg_offsets_open(root, NULL, 0);
    assert_non_null(b->br_offsets);
    return b;
}

static void broker_free(struct apg_broker *b)
{
    apg_offsets_free(b->br_offsets);
    free(b);
}

static void path(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/pop/%s", root, name);
}

static long fsize(const char *name)
{
    char p[512];
    path(p, sizeof(p), name);
    struct stat st;
    return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

static void write_file(const char *name, const void *data, size_t len)
{
    char p[512];
    path(p, sizeof(p), name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void header(struct apg_buf *b, const char *magic, uint64_t gen)
{
    apg_buf_append(b, magic, 8);
    apg_buf_put_be64(b, gen);
}

static void rec_pop(struct apg_buf *b, int64_t first, int n)
{
    size_t start;
    apg_pop_rec_begin(b, 'P', "G", "T", 0, &start);
    apg_buf_put_be64(b, 100);
    apg_buf_put_be64(b, INT64_MAX / 4); /* far deadline: nothing expires */
    apg_buf_put_be64(b, 1000);
    apg_buf_put_be64(b, (uint64_t)(first + n));
    apg_buf_put_be16(b, (uint16_t)n);
    for (int i = 0; i < n; i++) {
        struct apg_pop_rec_ent re = {first + i, 0, 1, APG_POP_INVISIBLE};
        apg_pop_rec_put_ent(b, &re);
    }
    apg_pop_rec_end(b, start);
}

static void rec_ack(struct apg_buf *b, int64_t off)
{
    size_t start;
    apg_pop_rec_begin(b, 'A', "G", "T", 0, &start);
    apg_buf_put_be64(b, (uint64_t)off);
    apg_buf_put_be64(b, 100);
    apg_pop_rec_end(b, start);
}

/* Opens the store's pop state and stops it cleanly; returns the entries
 * it had, or -1 when refused (err filled). */
static int64_t open_count(char *err, size_t errlen)
{
    struct apg_broker *b = broker();
    struct apg_pop *pp;
    if (apg_pop_open(b, &pp, err, errlen) != APG_OK) {
        broker_free(b);
        return -1;
    }
    int64_t n = apg_pop_inflight(pp);
    apg_pop_stop(pp);
    broker_free(b);
    return n;
}

static int setup(void **st)
{
    (void)st;
    snprintf(root, sizeof(root), "/tmp/apg-popfiles-XXXXXX");
    assert_non_null(mkdtemp(root));
    char d[512];
    snprintf(d, sizeof(d), "%s/pop", root);
    assert_int_equal(mkdir(d, 0755), 0);
    return 0;
}

static int teardown(void **st)
{
    (void)st;
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    return system(cmd);
}

static void test_empty(void **st)
{
    (void)st;
    char err[256];
    assert_int_equal(open_count(err, sizeof(err)), 0);
    assert_int_equal(fsize("journal"), 16);
    /* Nothing to compact at a clean stop: no snapshot. */
    assert_int_equal(fsize("snapshot"), -1);
}

static void test_torn_tail_then_clean_stop(void **st)
{
    (void)st;
    struct apg_buf j = APG_BUF_INIT;
    header(&j, "APGPOPJ1", 0);
    rec_pop(&j, 0, 2);
    rec_pop(&j, 2, 1);
    rec_ack(&j, 1);
    size_t good = j.b_len;
    rec_ack(&j, 0);
    write_file("journal", j.b_data, good + 7); /* the last ack cut short */
    char err[256];
    struct apg_broker *b = broker();
    struct apg_pop *pp;
    assert_int_equal(apg_pop_open(b, &pp, err, sizeof(err)), APG_OK);
    assert_int_equal(apg_pop_inflight(pp), 2); /* 0 and 2; 1 acknowledged */
    assert_int_equal(fsize("journal"), (long)good);
    /* The delivery (0, stamp 100) is still in flight: it acknowledges. */
    assert_int_equal(apg_pop_ack(pp, "G", "T", 0, 0, 100), APG_OK);
    assert_int_equal(apg_pop_ack(pp, "G", "T", 0, 0, 100), APG_ENOTFOUND);
    assert_true(fsize("journal") > (long)good);
    apg_pop_stop(pp);
    broker_free(b);
    /* The clean stop wrote generation 1 and emptied the journal. */
    assert_true(fsize("snapshot") > 16);
    assert_int_equal(fsize("journal"), 16);
    assert_int_equal(open_count(err, sizeof(err)), 1);
    apg_buf_free(&j);
}

/* apg_pop_ack_many: stale, unknown and repeated deliveries are refused
 * one by one; the others are journalled with one write (exactly their 'A'
 * records) and the group's offset moves once. */
static void test_ack_many(void **st)
{
    (void)st;
    struct apg_buf j = APG_BUF_INIT, one = APG_BUF_INIT;
    header(&j, "APGPOPJ1", 0);
    rec_pop(&j, 0, 4);
    write_file("journal", j.b_data, j.b_len);
    rec_ack(&one, 0);
    char err[256];
    struct apg_broker *b = broker();
    struct apg_pop *pp;
    assert_int_equal(apg_pop_open(b, &pp, err, sizeof(err)), APG_OK);
    assert_int_equal(apg_pop_inflight(pp), 4);
    struct apg_pop_ack_ent v[] = {
        {0, 0, 100, APG_EIO}, /* in flight */
        {0, 1, 99, APG_OK},   /* a stale stamp */
        {0, 2, 100, APG_EIO}, /* in flight */
        {0, 0, 100, APG_OK},  /* named twice */
        {0, 9, 100, APG_OK},  /* never handed out */
        {1, 0, 100, APG_OK},  /* a queue with nothing in flight */
    };
    apg_pop_ack_many(pp, "G", "T", v, 6);
    apg_err_t want[] = {APG_OK, APG_ENOTFOUND, APG_OK, APG_ENOTFOUND, APG_ENOTFOUND, APG_ENOTFOUND};
    for (int i = 0; i < 6; i++)
        assert_int_equal(v[i].pa_rc, want[i]);
    assert_int_equal(apg_pop_inflight(pp), 2);
    assert_int_equal(fsize("journal"), (long)(j.b_len + 2 * one.b_len));
    assert_int_equal(apg_offsets_query(b->br_offsets, "G", "T", 0), 1);
    assert_int_equal(apg_pop_ack(pp, "G", "T", 0, 1, 100), APG_OK);
    apg_pop_stop(pp);
    broker_free(b);
    assert_int_equal(open_count(err, sizeof(err)), 1);
    apg_buf_free(&j);
    apg_buf_free(&one);
}

static void test_journal_older_than_snapshot(void **st)
{
    (void)st;
    /* A snapshot of generation 3 holding two deliveries... */
    struct apg_buf s = APG_BUF_INIT, j = APG_BUF_INIT;
    header(&s, "APGPOPS1", 3);
    rec_pop(&s, 0, 2);
    write_file("snapshot", s.b_data, s.b_len);
    /* ...and a journal of generation 2 (a crash between writing the
     * snapshot and emptying the journal): its records are in the snapshot
     * already and are not applied again. */
    header(&j, "APGPOPJ1", 2);
    rec_ack(&j, 0);
    rec_ack(&j, 1);
    write_file("journal", j.b_data, j.b_len);
    char err[256];
    struct apg_broker *b = broker();
    struct apg_pop *pp;
    assert_int_equal(apg_pop_open(b, &pp, err, sizeof(err)), APG_OK);
    assert_int_equal(apg_pop_inflight(pp), 2);
    assert_int_equal(fsize("journal"), 16); /* restarted with generation 3 */
    apg_pop_stop(pp);
    broker_free(b);
    /* A journal of the snapshot's generation is applied. */
    apg_buf_reset(&j);
    header(&j, "APGPOPJ1", 3);
    rec_ack(&j, 0);
    write_file("journal", j.b_data, j.b_len);
    assert_int_equal(open_count(err, sizeof(err)), 1);
    apg_buf_free(&s);
    apg_buf_free(&j);
}

static void test_bad_snapshot_refused(void **st)
{
    (void)st;
    write_file("snapshot", "not a snapshot at all", 21);
    char err[256] = "";
    assert_int_equal(open_count(err, sizeof(err)), -1);
    assert_non_null(strstr(err, "pop/snapshot"));
    assert_non_null(strstr(err, "move it away"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_then_clean_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ack_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_older_than_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_snapshot_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

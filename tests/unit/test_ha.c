/* Replication: the HA frame codec (src/ha/ha_frame.c) and the store's
 * replica path (src/store/replica.c): a master store's log read in chunks
 * of every size and appended to a slave store gives the same log, byte for
 * byte, and the same consume queues, across segment ends; a wrong offset,
 * a damaged record and a local put are refused. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/mem.h"
#include "ha/ha.h"
#include "test_store_util.h"

static void test_frame_codec(void **state)
{
    (void)state;
    uint8_t buf[64];
    apg_ha_frame_header(buf, 0x0102030405060708LL, 3);
    memcpy(buf + APG_HA_HEADER_LEN, "abc", 3);
    struct apg_ha_frame f;
    size_t used;
    char err[128];
    /* Every prefix is incomplete. */
    for (size_t n = 0; n < APG_HA_HEADER_LEN + 3; n++)
        assert_int_equal(apg_ha_frame_decode(buf, n, APG_HA_BODY_MAX, &f, &used, err, sizeof(err)),
                         APG_EAGAIN);
    assert_int_equal(apg_ha_frame_decode(buf, APG_HA_HEADER_LEN + 3, APG_HA_BODY_MAX, &f, &used,
                                         err, sizeof(err)),
                     APG_OK);
    assert_int_equal(f.hf_offset, 0x0102030405060708LL);
    assert_int_equal(f.hf_size, 3);
    assert_memory_equal(f.hf_body, "abc", 3);
    assert_int_equal(used, APG_HA_HEADER_LEN + 3);
    /* Big-endian on the wire, as RocketMQ's ByteBuffer writes it. */
    assert_int_equal(buf[0], 1);
    assert_int_equal(buf[7], 8);
    assert_int_equal(buf[11], 3);
    /* A heartbeat. */
    apg_ha_frame_header(buf, 4096, 0);
    assert_int_equal(
        apg_ha_frame_decode(buf, APG_HA_HEADER_LEN, APG_HA_BODY_MAX, &f, &used, err, sizeof(err)),
        APG_OK);
    assert_int_equal(f.hf_size, 0);
    assert_int_equal(used, APG_HA_HEADER_LEN);
    /* A negative offset, a body over the limit, an offset range overflow. */
    apg_ha_frame_header(buf, -1, 0);
    assert_int_equal(
        apg_ha_frame_decode(buf, APG_HA_HEADER_LEN, APG_HA_BODY_MAX, &f, &used, err, sizeof(err)),
        APG_EINVAL);
    assert_non_null(strstr(err, "negative"));
    apg_ha_frame_header(buf, 0, APG_HA_BODY_MAX + 1);
    assert_int_equal(
        apg_ha_frame_decode(buf, APG_HA_HEADER_LEN, APG_HA_BODY_MAX, &f, &used, err, sizeof(err)),
        APG_EINVAL);
    assert_non_null(strstr(err, "exceeds"));
    apg_ha_frame_header(buf, INT64_MAX - 1, 16);
    assert_int_equal(
        apg_ha_frame_decode(buf, APG_HA_HEADER_LEN, APG_HA_BODY_MAX, &f, &used, err, sizeof(err)),
        APG_EINVAL);
}

static void test_report_codec(void **state)
{
    (void)state;
    uint8_t buf[32] = {0};
    int64_t off = -5;
    size_t used = 99;
    assert_int_equal(apg_ha_report_decode(buf, 7, &off, &used), APG_EAGAIN);
    assert_int_equal(used, 0);
    apg_ha_report_encode(buf, 100);
    apg_ha_report_encode(buf + 8, 200);
    buf[16] = 0x55; /* the start of a third report */
    assert_int_equal(apg_ha_report_decode(buf, 17, &off, &used), APG_OK);
    assert_int_equal(off, 200); /* the last complete one */
    assert_int_equal(used, 16);
    apg_ha_report_encode(buf, -7);
    assert_int_equal(apg_ha_report_decode(buf, 8, &off, &used), APG_EINVAL);
}

/* Replicates master -> slave as the HA client does: chunks of `chunk`
 * bytes (never across a segment end), a partial record held back. */
static void replicate(struct apg_store *m, struct apg_store *s, size_t chunk, int64_t *at,
                      struct apg_buf *pend)
{
    uint8_t *tmp = apg_malloc(chunk);
    assert_non_null(tmp);
    int64_t next = *at + (int64_t)pend->b_len;
    for (;;) {
        size_t n = 0;
        assert_int_equal(apg_store_log_read(m, next, tmp, chunk, &n), APG_OK);
        if (n == 0)
            break;
        next += (int64_t)n;
        assert_int_equal(apg_buf_append(pend, tmp, n), APG_OK);
        size_t off = 0;
        while (off < pend->b_len) {
            size_t used = 0;
            char err[256] = "";
            apg_err_t rc = apg_store_replica_append(s, *at + (int64_t)off, pend->b_data + off,
                                                    pend->b_len - off, &used, err, sizeof(err));
            if (rc)
                fail_msg("replica append at %lld: %s", (long long)(*at + (int64_t)off), err);
            off += used;
            if (!used)
                break;
        }
        *at += (int64_t)off;
        apg_buf_consume(pend, off);
    }
    apg_free(tmp);
}

static void put_many(struct apg_store *st, int from, int n)
{
    static const char *topics[] = {"HaA", "HaB", "%RETRY%g"};
    for (int i = from; i < from + n; i++)
        assert_int_equal(tu_put(st, topics[i % 3], i % 4, i, NULL), APG_OK);
}

static void assert_same(struct apg_store *m, struct apg_store *s, const char *mdir,
                        const char *sdir)
{
    assert_int_equal(apg_store_log_max_offset(m), apg_store_log_max_offset(s));
    static const char *topics[] = {"HaA", "HaB", "%RETRY%g"};
    for (int t = 0; t < 3; t++)
        for (int q = 0; q < 4; q++)
            assert_int_equal(apg_store_max_offset(m, topics[t], strlen(topics[t]), q),
                             apg_store_max_offset(s, topics[t], strlen(topics[t]), q));
    /* The same records, through the slave's queue. */
    struct apg_buf a = APG_BUF_INIT, b = APG_BUF_INIT;
    struct apg_get_result ra, rb;
    assert_int_equal(apg_store_get(m, "HaA", 3, 1, 0, 32, 1 << 20, NULL, NULL, &a, &ra), APG_OK);
    assert_int_equal(apg_store_get(s, "HaA", 3, 1, 0, 32, 1 << 20, NULL, NULL, &b, &rb), APG_OK);
    assert_int_equal(ra.gr_count, rb.gr_count);
    assert_int_equal(a.b_len, b.b_len);
    assert_memory_equal(a.b_data, b.b_data, a.b_len);
    apg_buf_free(&a);
    apg_buf_free(&b);
    /* The log files are byte-identical up to the end (the master's first
     * segment file holds written bytes plus zeros; so does the slave's). */
    char pm[512], ps[512];
    snprintf(pm, sizeof(pm),
             "cmp -n %lld %s/commitlog/00000000000000000000 "
             "%s/commitlog/00000000000000000000",
             (long long)(apg_store_log_max_offset(m) < 65536 ? apg_store_log_max_offset(m) : 65536),
             mdir, sdir);
    snprintf(ps, sizeof(ps), "%s", pm);
    assert_int_equal(system(ps), 0);
}

/* A master store and a slave's store (replica) in temp dirs. */
struct pair {
    char *p_mdir, *p_sdir;
    struct apg_store *p_m, *p_s;
};

static struct apg_store *store_open(const char *dir, bool replica)
{
    struct apg_store_opts o;
    struct apg_store *st;
    char err[256];
    tu_opts(&o, dir);
    assert_int_equal(apg_store_open(&o, &st, err, sizeof(err)), APG_OK);
    apg_store_set_replica(st, replica);
    return st;
}

static void pair_open(struct pair *p)
{
    p->p_mdir = tu_tmpdir();
    p->p_sdir = tu_tmpdir();
    p->p_m = store_open(p->p_mdir, false);
    p->p_s = store_open(p->p_sdir, true);
}

/* Closes and opens the slave's store again (a restart). */
static struct apg_store *slave_reopen(struct pair *p)
{
    apg_store_close(p->p_s);
    return p->p_s = store_open(p->p_sdir, true);
}

static void pair_close(struct pair *p)
{
    apg_store_close(p->p_m);
    apg_store_close(p->p_s);
    tu_rmrf(p->p_mdir);
    tu_rmrf(p->p_sdir);
    free(p->p_mdir);
    free(p->p_sdir);
}

static void test_replica_stream(void **state)
{
    (void)state;
    size_t chunks[] = {1, 7, 100, 1000, 32768, 65536};
    for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
        struct pair p;
        pair_open(&p);
        struct apg_store *m = p.p_m, *s = p.p_s;
        /* A local put on a slave's store is refused. */
        struct apg_put_result r;
        assert_int_equal(tu_put(s, "HaA", 0, 1, &r), APG_EPERM);
        int64_t at = 0;
        struct apg_buf pend = APG_BUF_INIT;
        /* 2,000 records of ~120 bytes cross the 64 KiB segments three times. */
        put_many(m, 0, 700);
        replicate(m, s, chunks[c], &at, &pend);
        put_many(m, 700, 1300);
        replicate(m, s, chunks[c], &at, &pend);
        assert_int_equal(pend.b_len, 0);
        assert_true(apg_store_log_max_offset(m) > 3 * 65536); /* three segment ends */
        assert_same(m, s, p.p_mdir, p.p_sdir);
        /* Reopened, the slave resumes at its own end. */
        int64_t end = apg_store_log_max_offset(s);
        s = slave_reopen(&p);
        assert_int_equal(apg_store_log_max_offset(s), end);
        put_many(m, 2000, 50);
        replicate(m, s, chunks[c], &at, &pend);
        assert_same(m, s, p.p_mdir, p.p_sdir);
        apg_buf_free(&pend);
        pair_close(&p);
    }
}

static void test_replica_refusals(void **state)
{
    (void)state;
    struct pair p;
    pair_open(&p);
    struct apg_store *m = p.p_m, *s = p.p_s;
    char err[256];
    put_many(m, 0, 10);
    uint8_t buf[4096];
    size_t n = 0, used = 0;
    assert_int_equal(apg_store_log_read(m, 0, buf, sizeof(buf), &n), APG_OK);
    assert_true(n > 200);
    /* An empty slave takes only a segment start past its end. */
    assert_int_equal(apg_store_replica_append(s, 100, buf, n, &used, err, sizeof(err)), APG_ERANGE);
    assert_non_null(strstr(err, "not at a segment start"));
    assert_int_equal(used, 0);
    /* A damaged body byte in the third record: the first two go in. */
    uint32_t r0 = apg_be32(buf), r1 = apg_be32(buf + r0);
    uint8_t bad[4096];
    memcpy(bad, buf, n);
    uint8_t *body2 = memmem(bad, n, "msg-2", 5);
    assert_non_null(body2);
    assert_true(body2 > bad + r0 + r1);
    body2[4] ^= 0x01;
    assert_int_equal(apg_store_replica_append(s, 0, bad, n, &used, err, sizeof(err)), APG_ECORRUPT);
    assert_int_equal(used, r0 + r1);
    assert_int_equal(apg_store_log_max_offset(s), r0 + r1);
    /* The rest, undamaged, from where it stopped; then below the end. */
    assert_int_equal(
        apg_store_replica_append(s, r0 + r1, buf + r0 + r1, n - r0 - r1, &used, err, sizeof(err)),
        APG_OK);
    assert_int_equal(apg_store_log_max_offset(s), (int64_t)n);
    assert_int_equal(apg_store_replica_append(s, 0, buf, n, &used, err, sizeof(err)), APG_ERANGE);
    assert_non_null(strstr(err, "below"));
    /* Past the end of a slave that holds something: a gap. */
    assert_int_equal(apg_store_replica_append(s, (int64_t)n + 100, buf, n, &used, err, sizeof(err)),
                     APG_ERANGE);
    assert_non_null(strstr(err, "gap"));
    /* Past the master's end and below its start. */
    assert_int_equal(apg_store_log_read(m, apg_store_log_max_offset(m) + 1, buf, 10, &n),
                     APG_ERANGE);
    pair_close(&p);
}

/* A new slave of a master whose log no longer starts at 0: the slave's
 * empty log starts where the stream does, its queues start mid-way, and it
 * reopens and goes on from there. */
static void test_replica_adopt(void **state)
{
    (void)state;
    struct pair p;
    pair_open(&p);
    struct apg_store *m = p.p_m, *s = p.p_s;
    put_many(m, 0, 1500); /* past the second segment's start */
    assert_true(apg_store_log_max_offset(m) > 2 * 65536);
    int64_t at = 65536;
    struct apg_buf pend = APG_BUF_INIT;
    replicate(m, s, 4096, &at, &pend);
    assert_int_equal(apg_store_log_min_offset(s), 65536);
    assert_int_equal(apg_store_log_max_offset(s), apg_store_log_max_offset(m));
    /* Every queue ends where the master's does and starts mid-way. */
    for (int q = 0; q < 4; q++) {
        assert_int_equal(apg_store_max_offset(s, "HaA", 3, q),
                         apg_store_max_offset(m, "HaA", 3, q));
        assert_true(apg_store_min_offset(s, "HaA", 3, q) > 0);
    }
    struct apg_buf a = APG_BUF_INIT, b = APG_BUF_INIT;
    struct apg_get_result ra, rb;
    int64_t from = apg_store_min_offset(s, "HaB", 3, 2);
    assert_int_equal(apg_store_get(m, "HaB", 3, 2, from, 16, 1 << 20, NULL, NULL, &a, &ra), APG_OK);
    assert_int_equal(apg_store_get(s, "HaB", 3, 2, from, 16, 1 << 20, NULL, NULL, &b, &rb), APG_OK);
    assert_int_equal(rb.gr_count, 16);
    assert_int_equal(a.b_len, b.b_len);
    assert_memory_equal(a.b_data, b.b_data, a.b_len);
    apg_buf_free(&a);
    apg_buf_free(&b);
    s = slave_reopen(&p);
    assert_int_equal(apg_store_log_min_offset(s), 65536);
    put_many(m, 1500, 300);
    replicate(m, s, 4096, &at, &pend);
    assert_int_equal(apg_store_log_max_offset(s), apg_store_log_max_offset(m));
    assert_int_equal(apg_store_max_offset(s, "HaA", 3, 1), apg_store_max_offset(m, "HaA", 3, 1));
    apg_buf_free(&pend);
    pair_close(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_codec),    cmocka_unit_test(test_report_codec),
        cmocka_unit_test(test_replica_stream), cmocka_unit_test(test_replica_refusals),
        cmocka_unit_test(test_replica_adopt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

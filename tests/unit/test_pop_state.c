/* Pop consumption state (broker/pop/pop_state.c) and receipt handles
 * (pop_handle.c): pop, ack, change, expiry with back-off, FIFO hold, the
 * journal record codec with a torn and a corrupt tail, and a snapshot that
 * rebuilds the same state. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <zlib.h>

#include "broker/pop/pop.h"
#include "broker/pop/pop_state.h"

/* Builds a 'P' record of n consecutive offsets from first. */
static void rec_pop(struct apg_buf *b, const char *g, const char *t, int32_t q, int64_t first,
                    int n, int64_t stamp, int64_t due, int32_t attempts)
{
    size_t start;
    assert_int_equal(apg_pop_rec_begin(b, 'P', g, t, q, &start), APG_OK);
    apg_buf_put_be64(b, (uint64_t)stamp);
    apg_buf_put_be64(b, (uint64_t)due);
    apg_buf_put_be64(b, 1000);
    apg_buf_put_be64(b, (uint64_t)(first + n));
    apg_buf_put_be16(b, (uint16_t)n);
    for (int i = 0; i < n; i++) {
        struct apg_pop_rec_ent re = {first + i, 1000 * (first + i), attempts, APG_POP_INVISIBLE};
        apg_pop_rec_put_ent(b, &re);
    }
    apg_pop_rec_end(b, start);
}

static void rec_ack(struct apg_buf *b, const char *g, const char *t, int32_t q, int64_t off,
                    int64_t stamp)
{
    size_t start;
    assert_int_equal(apg_pop_rec_begin(b, 'A', g, t, q, &start), APG_OK);
    apg_buf_put_be64(b, (uint64_t)off);
    apg_buf_put_be64(b, (uint64_t)stamp);
    apg_pop_rec_end(b, start);
}

/* Applies every record of b; returns how many applied with APG_OK. */
static int apply_all(struct apg_pop_state *ps, const struct apg_buf *b, size_t *good)
{
    size_t pos = 0;
    int ok = 0;
    while (pos < b->b_len) {
        struct apg_pop_rec r;
        size_t used;
        if (apg_pop_rec_decode((const uint8_t *)b->b_data + pos, b->b_len - pos, &r, &used))
            break;
        if (apg_pop_state_apply(ps, &r) == APG_OK)
            ok++;
        pos += used;
    }
    if (good)
        *good = pos;
    return ok;
}

static void test_pop_ack_expire(void **st)
{
    (void)st;
    struct apg_pop_state ps;
    apg_pop_state_init(&ps);
    struct apg_buf b = APG_BUF_INIT;
    rec_pop(&b, "G", "T", 0, 0, 4, 100, 1100, 1);
    rec_ack(&b, "G", "T", 0, 1, 100);
    rec_ack(&b, "G", "T", 0, 2, 99); /* stale stamp: no effect */
    assert_int_equal(apply_all(&ps, &b, NULL), 2);
    struct apg_pop_queue *q = apg_pop_state_queue(&ps, "G", "T", 0);
    assert_non_null(q);
    assert_int_equal(q->pq_next, 4);
    assert_int_equal(q->pq_live, 3);
    assert_int_equal(apg_pop_state_low(q), 0);
    assert_true(apg_pop_state_busy(q));
    /* Nothing due before the deadline. */
    assert_null(apg_pop_state_due(&ps, 1099));
    /* At the deadline every entry expires: first delivery -> READY at once
     * (back-off 0), in deadline order. */
    struct apg_pop_ent *e;
    int n = 0;
    while ((e = apg_pop_state_due(&ps, 1100)) != NULL) {
        apg_pop_state_expire(&ps, e, 1100, 0);
        n++;
    }
    assert_int_equal(n, 3);
    assert_int_equal(q->pq_ready, 3);
    assert_false(apg_pop_state_busy(q));
    struct apg_pop_ent *ready[8];
    assert_int_equal(apg_pop_state_ready(q, ready, 8), 3);
    assert_int_equal(ready[0]->pe_offset, 0);
    assert_int_equal(ready[1]->pe_offset, 2);
    assert_int_equal(ready[2]->pe_offset, 3);
    /* Handed again: attempts 2, new stamp; a back-off parks it after expiry. */
    apg_buf_reset(&b);
    rec_pop(&b, "G", "T", 0, 0, 1, 200, 2200, 2);
    assert_int_equal(apply_all(&ps, &b, NULL), 1);
    e = apg_pop_state_find(q, 0);
    assert_int_equal(e->pe_attempts, 2);
    assert_int_equal(e->pe_stamp, 200);
    assert_int_equal(q->pq_ready, 2);
    assert_true(apg_pop_state_busy(q));
    e = apg_pop_state_due(&ps, 2200);
    assert_non_null(e);
    apg_pop_state_expire(&ps, e, 2200, 1000);
    assert_int_equal(e->pe_state, APG_POP_BACKOFF);
    assert_null(apg_pop_state_due(&ps, 3199));
    e = apg_pop_state_due(&ps, 3200);
    assert_non_null(e);
    apg_pop_state_expire(&ps, e, 3200, 1000);
    assert_int_equal(e->pe_state, APG_POP_READY);
    /* Acks in any order; the low mark follows the first entry left. */
    apg_buf_reset(&b);
    rec_ack(&b, "G", "T", 0, 0, -1);
    rec_ack(&b, "G", "T", 0, 3, 100);
    assert_int_equal(apply_all(&ps, &b, NULL), 2);
    assert_int_equal(apg_pop_state_low(q), 2);
    apg_buf_reset(&b);
    rec_ack(&b, "G", "T", 0, 2, 100);
    assert_int_equal(apply_all(&ps, &b, NULL), 1);
    assert_int_equal(apg_pop_state_low(q), 4);
    assert_int_equal(ps.ps_entries, 0);
    assert_int_equal(ps.ps_heap_n, 0);
    apg_buf_free(&b);
    apg_pop_state_free(&ps);
}

static void test_change(void **st)
{
    (void)st;
    struct apg_pop_state ps;
    apg_pop_state_init(&ps);
    struct apg_buf b = APG_BUF_INIT;
    rec_pop(&b, "G", "T", 1, 10, 2, 100, 1100, 1);
    size_t start;
    apg_pop_rec_begin(&b, 'C', "G", "T", 1, &start);
    int64_t v[5] = {11, 100, 150, 5150, 5000};
    for (int i = 0; i < 5; i++)
        apg_buf_put_be64(&b, (uint64_t)v[i]);
    apg_pop_rec_end(&b, start);
    assert_int_equal(apply_all(&ps, &b, NULL), 2);
    struct apg_pop_queue *q = apg_pop_state_queue(&ps, "G", "T", 1);
    struct apg_pop_ent *e = apg_pop_state_due(&ps, 1100);
    assert_non_null(e);
    assert_int_equal(e->pe_offset, 10);
    apg_pop_state_expire(&ps, e, 1100, 0);
    assert_null(apg_pop_state_due(&ps, 5149)); /* 11 was extended */
    e = apg_pop_state_find(q, 11);
    assert_int_equal(e->pe_stamp, 150);
    assert_int_equal(e->pe_invisible, 5000);
    /* The old stamp neither acks nor changes. */
    apg_buf_reset(&b);
    rec_ack(&b, "G", "T", 1, 11, 100);
    assert_int_equal(apply_all(&ps, &b, NULL), 0);
    apg_buf_reset(&b);
    rec_ack(&b, "G", "T", 1, 11, 150);
    assert_int_equal(apply_all(&ps, &b, NULL), 1);
    apg_buf_free(&b);
    apg_pop_state_free(&ps);
}

static void test_torn_and_corrupt_tail(void **st)
{
    (void)st;
    struct apg_buf b = APG_BUF_INIT;
    rec_pop(&b, "G", "T", 0, 0, 3, 100, 1100, 1);
    size_t one = b.b_len;
    rec_ack(&b, "G", "T", 0, 0, 100);
    size_t two = b.b_len;
    rec_ack(&b, "G", "T", 0, 1, 100);
    /* Every cut inside the last record stops the replay right before it. */
    for (size_t cut = two; cut < b.b_len; cut++) {
        struct apg_pop_state ps;
        apg_pop_state_init(&ps);
        struct apg_buf c = APG_BUF_INIT;
        apg_buf_append(&c, b.b_data, cut);
        size_t good;
        assert_int_equal(apply_all(&ps, &c, &good), 2);
        assert_int_equal(good, two);
        apg_buf_free(&c);
        apg_pop_state_free(&ps);
    }
    /* A flipped byte in the second record: its CRC fails, only the first applies. */
    struct apg_pop_state ps;
    apg_pop_state_init(&ps);
    ((uint8_t *)b.b_data)[one + 12] ^= 0x40;
    size_t good;
    assert_int_equal(apply_all(&ps, &b, &good), 1);
    assert_int_equal(good, one);
    /* Decoding random garbage never crashes and never succeeds by accident. */
    uint8_t junk[64];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t)(i * 37 + 11);
    struct apg_pop_rec r;
    size_t used;
    assert_int_not_equal(apg_pop_rec_decode(junk, sizeof(junk), &r, &used), APG_OK);
    /* A NUL inside a name, under a valid CRC, is refused: the state keeps
     * names as C strings (found by fuzz_pop: the snapshot did not replay). */
    struct apg_buf n = APG_BUF_INIT;
    rec_ack(&n, "GX", "T", 0, 0, 100);
    uint8_t *p = (uint8_t *)n.b_data;
    p[12] = 0; /* u32 length, u32 CRC, op, u16 group length, 'G', here 'X' */
    uint32_t crc = (uint32_t)crc32(0L, p + 8, (uInt)(n.b_len - 8));
    p[4] = (uint8_t)(crc >> 24), p[5] = (uint8_t)(crc >> 16), p[6] = (uint8_t)(crc >> 8),
    p[7] = (uint8_t)crc;
    assert_int_equal(apg_pop_rec_decode(p, n.b_len, &r, &used), APG_ECORRUPT);
    p[12] = 'X';
    crc = (uint32_t)crc32(0L, p + 8, (uInt)(n.b_len - 8));
    p[4] = (uint8_t)(crc >> 24), p[5] = (uint8_t)(crc >> 16), p[6] = (uint8_t)(crc >> 8),
    p[7] = (uint8_t)crc;
    assert_int_equal(apg_pop_rec_decode(p, n.b_len, &r, &used), APG_OK);
    apg_buf_free(&n);
    apg_buf_free(&b);
    apg_pop_state_free(&ps);
}

static void test_snapshot_roundtrip(void **st)
{
    (void)st;
    struct apg_pop_state ps, ps2;
    apg_pop_state_init(&ps);
    apg_pop_state_init(&ps2);
    struct apg_buf b = APG_BUF_INIT, s = APG_BUF_INIT;
    rec_pop(&b, "G1", "T", 0, 0, 5, 100, 1100, 1);
    rec_pop(&b, "G2", "U", 3, 7, 2, 101, 9000, 3);
    rec_ack(&b, "G1", "T", 0, 2, 100);
    assert_int_equal(apply_all(&ps, &b, NULL), 3);
    struct apg_pop_ent *e = apg_pop_state_due(&ps, 1100);
    apg_pop_state_expire(&ps, e, 1100, 0); /* one READY entry */
    assert_int_equal(apg_pop_state_encode(&ps, &s), APG_OK);
    assert_int_equal(apply_all(&ps2, &s, NULL) > 0, 1);
    assert_int_equal(ps2.ps_entries, ps.ps_entries);
    assert_int_equal(ps2.ps_heap_n, ps.ps_heap_n);
    struct apg_pop_queue *q = apg_pop_state_queue(&ps2, "G1", "T", 0);
    assert_int_equal(q->pq_next, 5);
    assert_int_equal(q->pq_ready, 1);
    assert_null(apg_pop_state_find(q, 2));
    struct apg_pop_queue *q2 = apg_pop_state_queue(&ps2, "G2", "U", 3);
    assert_int_equal(q2->pq_next, 9);
    assert_int_equal(apg_pop_state_find(q2, 8)->pe_attempts, 3);
    assert_int_equal(apg_pop_state_find(q2, 8)->pe_due, 9000);
    apg_buf_free(&b);
    apg_buf_free(&s);
    apg_pop_state_free(&ps);
    apg_pop_state_free(&ps2);
}

static void test_many_entries(void **st)
{
    (void)st;
    /* Acks in a scattered order keep the slots searchable and compact. */
    struct apg_pop_state ps;
    apg_pop_state_init(&ps);
    struct apg_buf b = APG_BUF_INIT;
    for (int i = 0; i < 100; i++)
        rec_pop(&b, "G", "T", 0, i * 10, 10, 100 + i, 5000 + i, 1);
    assert_int_equal(apply_all(&ps, &b, NULL), 100);
    assert_int_equal(ps.ps_entries, 1000);
    apg_buf_reset(&b);
    for (int i = 0; i < 1000; i++) {
        int64_t off = (i * 7919) % 1000;
        rec_ack(&b, "G", "T", 0, off, -1);
    }
    assert_int_equal(apply_all(&ps, &b, NULL), 1000);
    assert_int_equal(ps.ps_entries, 0);
    assert_int_equal(ps.ps_heap_n, 0);
    assert_int_equal(apg_pop_state_low(apg_pop_state_queue(&ps, "G", "T", 0)), 1000);
    apg_buf_free(&b);
    apg_pop_state_free(&ps);
}

static void test_handle(void **st)
{
    (void)st;
    struct apg_pop_handle h = {12, 1700000000123LL, 30000, 0, '0', "broker-a", 3, 15, 4096};
    char s[256];
    size_t n = apg_pop_handle_encode(&h, s, sizeof(s));
    assert_string_equal(s, "12 1700000000123 30000 0 0 broker-a 3 15 4096");
    struct apg_pop_handle d;
    assert_int_equal(apg_pop_handle_decode(s, n, &d), APG_OK);
    assert_int_equal(d.ph_stamp, 1700000000123LL);
    assert_int_equal(d.ph_queue, 3);
    assert_int_equal(d.ph_offset, 15);
    assert_int_equal(d.ph_phys, 4096);
    assert_string_equal(d.ph_broker, "broker-a");
    /* Seven fields (no offsets) are RocketMQ's short form. */
    const char *short_form = "1 2 3 0 1 b 0";
    assert_int_equal(apg_pop_handle_decode(short_form, strlen(short_form), &d), APG_OK);
    assert_int_equal(d.ph_offset, -1);
    assert_int_equal(d.ph_type, '1');
    /* ... and re-encodes to itself (fuzz_pop). */
    assert_int_equal(apg_pop_handle_encode(&d, s, sizeof(s)), strlen(short_form));
    assert_string_equal(s, short_form);
    const char *bad[] = {"",
                         "1 2 3",
                         "x 2 3 0 0 b 0 1",
                         "1 2 3 0 00 b 0 1",
                         "1 2 3 0 0 b -1 1",
                         "1 2 3 0 0 b 0 -1",
                         "2 3 0 0 0 b 3 5 -4", /* fuzz_pop: a negative offset did not round-trip */
                         "1 2 3 0 0 b 0 1 2 3"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(apg_pop_handle_decode(bad[i], strlen(bad[i]), &d), APG_EINVAL);
    assert_int_equal(apg_pop_handle_encode(&h, s, 10), 0);
    /* A control byte inside a field (found by fuzz_pop: a NUL in the broker
     * name cut it short, and the handle re-encoded to one that did not
     * parse) is refused. */
    const char nul[] = "1 2 3 0 0 b\0x 0 1";
    assert_int_equal(apg_pop_handle_decode(nul, sizeof(nul) - 1, &d), APG_EINVAL);
    const char tab[] = "1 2 3 0 0 b\tx 0 1";
    assert_int_equal(apg_pop_handle_decode(tab, sizeof(tab) - 1, &d), APG_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pop_ack_expire),        cmocka_unit_test(test_change),
        cmocka_unit_test(test_torn_and_corrupt_tail), cmocka_unit_test(test_snapshot_roundtrip),
        cmocka_unit_test(test_many_entries),          cmocka_unit_test(test_handle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

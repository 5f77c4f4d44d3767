/* The pure remoting connection state (protocol/remoting_conn.h): frames cut
 * from a stream fed one byte at a time and in one piece decode the same,
 * the read size follows a buffered length word, the decode area grows for
 * a large header, and the request table finds, times out and fails entries
 * by opaque, deadline and connection in the documented order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/buf.h"
#include "protocol/remoting_conn.h"

/* Appends a request frame with code, opaque, one ext field of vlen 'v's
 * and a short body. */
static void put_frame(struct apg_buf *b, int32_t code, int32_t opaque, uint8_t ser, size_t vlen)
{
    static char val[1 << 16];
    memset(val, 'v', vlen);
    val[vlen] = 0;
    struct apg_rcmd c;
    apg_rcmd_init_request(&c, code, opaque, ser);
    apg_rcmd_ext_add(&c, "k", val);
    assert_int_equal(apg_rcmd_encode(&c, (const uint8_t *)"body", 4, b), APG_OK);
}

/* Feeds `stream` in pieces of `step` bytes and decodes every whole frame;
 * returns how many there were and checks codes and opaques count up. */
static int reassemble(const struct apg_buf *stream, size_t step)
{
    struct apg_buf in = APG_BUF_INIT;
    struct apg_rconn_decoder d = APG_RCONN_DECODER_INIT;
    int n = 0;
    for (size_t pos = 0; pos < stream->b_len;) {
        size_t take = stream->b_len - pos < step ? stream->b_len - pos : step;
        assert_int_equal(apg_buf_append(&in, stream->b_data + pos, take), APG_OK);
        pos += take;
        size_t off = 0;
        for (;;) {
            size_t flen = 0;
            char err[160];
            assert_int_equal(apg_frame_peek(in.b_data + off, in.b_len - off, APG_FRAME_MAX_DEFAULT,
                                            &flen, err, sizeof(err)),
                             APG_OK);
            if (flen == 0)
                break;
            const struct apg_rcmd *cmd = NULL;
            assert_int_equal(apg_rconn_decode(&d, in.b_data + off, flen, &cmd, err, sizeof(err)),
                             APG_OK);
            assert_int_equal(cmd->code, 100 + n);
            assert_int_equal(cmd->opaque, n + 1);
            assert_int_equal(cmd->body_len, 4);
            assert_memory_equal(cmd->body, "body", 4);
            assert_non_null(apg_rcmd_ext_get(cmd, "k"));
            off += flen;
            n++;
        }
        apg_buf_consume(&in, off);
    }
    assert_int_equal(in.b_len, 0);
    apg_buf_free(&in);
    apg_rconn_decoder_free(&d);
    return n;
}

static void test_reassembly(void **state)
{
    struct apg_buf s = APG_BUF_INIT;
    /* Small and large headers in both serializations; the 40,000-byte value
     * makes the decode area grow past its first 4 KiB. */
    size_t sizes[] = {0, 10, 40000, 3, 5000};
    for (int i = 0; i < 5; i++)
        put_frame(&s, 100 + i, i + 1, i % 2 ? APG_SER_ROCKETMQ : APG_SER_JSON, sizes[i]);
    assert_int_equal(reassemble(&s, s.b_len), 5);
    assert_int_equal(reassemble(&s, 1), 5);
    assert_int_equal(reassemble(&s, 7), 5);
    apg_buf_free(&s);
}

static void test_decode_errors(void **state)
{
    struct apg_rconn_decoder d = APG_RCONN_DECODER_INIT;
    uint8_t bad[12] = {0, 0, 0, 8, 9, 0, 0, 0, 0, 0, 0, 0}; /* unknown serialize type 9 */
    const struct apg_rcmd *cmd = NULL;
    char err[160] = "";
    assert_int_equal(apg_rconn_decode(&d, bad, sizeof(bad), &cmd, err, sizeof(err)), APG_EPROTO);
    assert_null(cmd);
    assert_true(err[0] != 0);
    apg_rconn_decoder_free(&d);
}

static void test_read_want(void **state)
{
    struct apg_buf in = APG_BUF_INIT;
    assert_int_equal(apg_rconn_read_want(in.b_data, in.b_len, 1 << 20, 65536), 65536);
    uint8_t w[4];
    apg_wbe32(w, 200000 - 4); /* a 200,000-byte frame */
    apg_buf_append(&in, w, 4);
    assert_int_equal(apg_rconn_read_want(in.b_data, in.b_len, 1 << 20, 65536), 200000 - 4);
    /* Beyond max_frame: the default chunk (the peek rejects the frame). */
    assert_int_equal(apg_rconn_read_want(in.b_data, in.b_len, 1000, 65536), 65536);
    apg_buf_free(&in);
}

static void test_request_table(void **state)
{
    struct apg_rconn_reqs rs;
    assert_int_equal(apg_rconn_reqs_init(&rs, 5), APG_OK);
    assert_int_equal(rs.rs_mask, 7);
    struct apg_rconn_req r[20];
    int conn_a, conn_b;
    for (int i = 0; i < 20; i++) {
        r[i] = (struct apg_rconn_req){.rr_opaque = i + 1,
                                      .rr_deadline = 1000 + (i % 4) * 10,
                                      .rr_conn = i % 2 ? &conn_b : &conn_a};
        apg_rconn_reqs_add(&rs, &r[i]);
    }
    assert_int_equal(apg_rconn_reqs_count(&rs), 20);
    /* Deadline order is kept although they were added out of order. */
    for (struct apg_rconn_req *p = rs.rs_dhead; p && p->rr_dnext; p = p->rr_dnext)
        assert_true(p->rr_deadline <= p->rr_dnext->rr_deadline);
    /* A response finds its request, once, and only on its connection. */
    assert_ptr_equal(apg_rconn_reqs_find(&rs, 9), &r[8]);
    assert_null(apg_rconn_reqs_take(&rs, 9, &conn_b));
    assert_ptr_equal(apg_rconn_reqs_take(&rs, 9, &conn_a), &r[8]);
    assert_null(apg_rconn_reqs_take(&rs, 9, NULL));
    assert_ptr_equal(apg_rconn_reqs_take(&rs, 10, NULL), &r[9]);
    assert_null(apg_rconn_reqs_find(&rs, 99));
    assert_int_equal(apg_rconn_reqs_count(&rs), 18);
    /* Timeouts: none before 1000; at 1000 opaques 1, 5, 13 and 17 (9 was
     * taken). */
    assert_null(apg_rconn_reqs_expired(&rs, 999));
    int n = 0;
    for (struct apg_rconn_req *p; (p = apg_rconn_reqs_expired(&rs, 1000)) != NULL; n++)
        assert_int_equal(p->rr_deadline, 1000);
    assert_int_equal(n, 4);
    /* Closing conn_b fails all of its requests, earliest deadline first. */
    struct apg_rconn_req *failed = apg_rconn_reqs_take_conn(&rs, &conn_b);
    int64_t last = 0;
    n = 0;
    for (struct apg_rconn_req *p = failed; p; p = p->rr_hnext, n++) {
        assert_ptr_equal(p->rr_conn, &conn_b);
        assert_true(p->rr_deadline >= last);
        last = p->rr_deadline;
    }
    assert_int_equal(n, 9); /* 10 on conn_b, opaque 10 taken */
    assert_int_equal(apg_rconn_reqs_count(&rs), 5);
    for (struct apg_rconn_req *p = rs.rs_dhead; p; p = p->rr_dnext)
        assert_ptr_equal(p->rr_conn, &conn_a);
    while (rs.rs_dhead)
        apg_rconn_reqs_remove(&rs, rs.rs_dhead);
    assert_int_equal(apg_rconn_reqs_count(&rs), 0);
    assert_null(rs.rs_dtail);
    for (uint32_t i = 0; i <= rs.rs_mask; i++)
        assert_null(rs.rs_buckets[i]);
    apg_rconn_reqs_fini(&rs);
}

/* Two interleaved streams, each in deadline order: fresh requests joining
 * at the tail and queued ones linked later with their earlier deadlines
 * (the client's I/O thread draining its queue). Order stays exact, entries
 * with equal deadlines keep their arrival order, and removals of the
 * remembered entry leave the table consistent. */
static void test_request_table_interleaved(void **state)
{
    enum { N = 200000 };
    struct apg_rconn_reqs rs;
    assert_int_equal(apg_rconn_reqs_init(&rs, 1024), APG_OK);
    struct apg_rconn_req *r = calloc(N, sizeof(*r));
    assert_non_null(r);
    for (int i = 0; i < N; i++) {
        /* Even: now + 3000 with now = i / 20; odd: a stale one, 1500 earlier. */
        int64_t now = i / 20;
        r[i] = (struct apg_rconn_req){.rr_opaque = i + 1,
                                      .rr_deadline = i % 2 ? now + 1500 : now + 3000};
        apg_rconn_reqs_add(&rs, &r[i]);
        if (i % 7 == 3) /* answered: often the remembered entry itself */
            apg_rconn_reqs_remove(&rs, &r[i]);
    }
    size_t n = 0;
    for (struct apg_rconn_req *p = rs.rs_dhead; p; p = p->rr_dnext, n++) {
        if (p->rr_dnext) {
            assert_true(p->rr_deadline <= p->rr_dnext->rr_deadline);
            if (p->rr_deadline == p->rr_dnext->rr_deadline)
                assert_true(p->rr_opaque < p->rr_dnext->rr_opaque);
        }
        assert_ptr_equal(p->rr_dnext ? p->rr_dnext->rr_dprev : rs.rs_dtail, p);
    }
    assert_int_equal(n, apg_rconn_reqs_count(&rs));
    int64_t last = 0;
    for (struct apg_rconn_req *p; (p = apg_rconn_reqs_expired(&rs, INT64_MAX)) != NULL;) {
        assert_true(p->rr_deadline >= last);
        last = p->rr_deadline;
    }
    assert_int_equal(apg_rconn_reqs_count(&rs), 0);
    assert_null(rs.rs_dfinger);
    free(r);
    apg_rconn_reqs_fini(&rs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reassembly),
        cmocka_unit_test(test_decode_errors),
        cmocka_unit_test(test_read_want),
        cmocka_unit_test(test_request_table),
        cmocka_unit_test(test_request_table_interleaved),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Tests for the hot-path shortcuts in the codec and the send path: the
 * word-at-a-time NUL check and copy of binary ext entries (every length
 * and every NUL position around the word sizes), the short-number fast path
 * of the integer parser (18/19-digit boundaries, int64 limits), and the
 * single-pass send header parser (long and short names, duplicates, the
 * defaults and errors of the per-key getters). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker/broker_int.h"
#include "common/buf.h"
#include "protocol/remoting.h"

static char g_scratch[1 << 16];
static char g_err[256];
static struct apg_rcmd g_cmd;
static uint8_t g_frame[1 << 14];

/* A binary header with one ext entry key=val (lengths given, bytes may
 * contain NUL); returns the decode result. */
static apg_err_t decode_one(const uint8_t *key, size_t kl, const uint8_t *val, size_t vl)
{
    uint8_t h[1024];
    size_t at = 0;
    apg_wbe16(h, 10); /* code */
    h[2] = 0;
    apg_wbe16(h + 3, 0);
    apg_wbe32(h + 5, 7); /* opaque */
    apg_wbe32(h + 9, 0);
    apg_wbe32(h + 13, 0); /* no remark */
    at = 17;
    apg_wbe32(h + at, (uint32_t)(2 + kl + 4 + vl));
    at += 4;
    apg_wbe16(h + at, (uint16_t)kl);
    memcpy(h + at + 2, key, kl);
    at += 2 + kl;
    apg_wbe32(h + at, (uint32_t)vl);
    if (vl)
        memcpy(h + at + 4, val, vl);
    at += 4 + vl;
    apg_wbe32(g_frame, (uint32_t)(4 + at));
    apg_wbe32(g_frame + 4, (1u << 24) | (uint32_t)at);
    memcpy(g_frame + 8, h, at);
    g_err[0] = 0;
    return apg_rcmd_decode(g_frame, 8 + at, &g_cmd, g_scratch, sizeof(g_scratch), g_err,
                           sizeof(g_err));
}

static void test_ext_copy_every_length(void **state)
{
    uint8_t k[64], v[64];
    for (size_t len = 1; len <= 40; len++) {
        for (size_t i = 0; i < len; i++) {
            k[i] = (uint8_t)('a' + i % 26);
            v[i] = (uint8_t)(0x80 + i); /* high bytes: no false NUL hits */
        }
        /* Clean key and value of this length decode to exact copies. */
        assert_int_equal(decode_one(k, len, v, len), APG_OK);
        assert_int_equal(g_cmd.n_ext, 1);
        assert_int_equal(strlen(g_cmd.ext[0].key), len);
        assert_memory_equal(g_cmd.ext[0].key, k, len);
        assert_int_equal(strlen(g_cmd.ext[0].val), len);
        assert_memory_equal(g_cmd.ext[0].val, v, len);
        /* A NUL anywhere in the key or the value is refused. */
        for (size_t pos = 0; pos < len; pos++) {
            uint8_t kk[64], vv[64];
            memcpy(kk, k, len);
            memcpy(vv, v, len);
            kk[pos] = 0;
            assert_int_equal(decode_one(kk, len, v, len), APG_EPROTO);
            assert_non_null(strstr(g_err, "key contains a NUL byte"));
            vv[pos] = 0;
            assert_int_equal(decode_one(k, len, vv, len), APG_EPROTO);
            assert_non_null(strstr(g_err, "value contains a NUL byte"));
        }
    }
    /* Empty value stays "". */
    assert_int_equal(decode_one((const uint8_t *)"k", 1, NULL, 0), APG_OK);
    assert_string_equal(g_cmd.ext[0].val, "");
}

/* JSON: a value with one byte that needs escaping at every position of
 * every length up to 40 survives encode + decode, in keys and values, and
 * the encoded header is exactly as long as the escapes require. */
static void test_json_escape_every_position(void **state)
{
    static const uint8_t specials[] = {0x01, 0x02, '"', '\\', '\n', 0x7f, 0x1f, 'x'};
    for (size_t len = 1; len <= 40; len++) {
        for (size_t pos = 0; pos < len; pos++) {
            for (size_t si = 0; si < sizeof(specials); si++) {
                char val[64], key[64];
                for (size_t i = 0; i < len; i++) {
                    val[i] = (char)('A' + i % 26);
                    key[i] = (char)('a' + i % 26);
                }
                val[pos] = (char)specials[si];
                key[pos] = (char)specials[si];
                val[len] = key[len] = '\0';
                struct apg_rcmd c;
                apg_rcmd_init_request(&c, 310, 9, APG_SER_JSON);
                apg_rcmd_ext_add(&c, key, val);
                apg_rcmd_ext_add(&c, "z", val);
                struct apg_buf b = APG_BUF_INIT;
                assert_int_equal(apg_rcmd_encode(&c, NULL, 0, &b), APG_OK);
                assert_true(b.b_len < sizeof(g_frame));
                assert_int_equal(apg_rcmd_decode(b.b_data, b.b_len, &g_cmd, g_scratch,
                                                 sizeof(g_scratch), g_err, sizeof(g_err)),
                                 APG_OK);
                assert_int_equal(g_cmd.n_ext, 2);
                assert_string_equal(apg_rcmd_ext_get(&g_cmd, key), val);
                assert_string_equal(apg_rcmd_ext_get(&g_cmd, "z"), val);
                apg_buf_free(&b);
            }
        }
    }
}

/* JSON decode with the scratch area exactly as large as the codec asks for
 * (the word-at-a-time copy must never write past it). */
static void test_json_tight_scratch(void **state)
{
    for (size_t len = 0; len <= 40; len++) {
        char val[64];
        for (size_t i = 0; i < len; i++)
            val[i] = (char)('a' + i % 26);
        val[len] = '\0';
        struct apg_rcmd c;
        apg_rcmd_init_request(&c, 11, 3, APG_SER_JSON);
        apg_rcmd_ext_add(&c, "k", val);
        struct apg_buf b = APG_BUF_INIT;
        assert_int_equal(apg_rcmd_encode(&c, NULL, 0, &b), APG_OK);
        size_t hl = apg_be32(b.b_data + 4) & 0xFFFFFF;
        size_t need = apg_rcmd_scratch_need(hl);
        char *sc = malloc(need);
        assert_non_null(sc);
        assert_int_equal(apg_rcmd_decode(b.b_data, b.b_len, &g_cmd, sc, need, g_err, sizeof(g_err)),
                         APG_OK);
        assert_string_equal(apg_rcmd_ext_get(&g_cmd, "k"), val);
        free(sc);
        apg_buf_free(&b);
    }
}

static void test_parse_i64_boundaries(void **state)
{
    int64_t v = 0;
    assert_int_equal(apg_rcmd_parse_i64("0", INT64_MIN, INT64_MAX, &v), APG_OK);
    assert_int_equal(v, 0);
    assert_int_equal(apg_rcmd_parse_i64("-0", INT64_MIN, INT64_MAX, &v), APG_OK);
    assert_int_equal(v, 0);
    assert_int_equal(apg_rcmd_parse_i64("+17", INT64_MIN, INT64_MAX, &v), APG_OK);
    assert_int_equal(v, 17);
    assert_int_equal(apg_rcmd_parse_i64("999999999999999999", INT64_MIN, INT64_MAX, &v), APG_OK);
    assert_true(v == 999999999999999999LL);
    assert_int_equal(apg_rcmd_parse_i64("-999999999999999999", INT64_MIN, INT64_MAX, &v), APG_OK);
    assert_true(v == -999999999999999999LL);
    assert_int_equal(apg_rcmd_parse_i64("9223372036854775807", INT64_MIN, INT64_MAX, &v), APG_OK);
    assert_true(v == INT64_MAX);
    assert_int_equal(apg_rcmd_parse_i64("-9223372036854775808", INT64_MIN, INT64_MAX, &v), APG_OK);
    assert_true(v == INT64_MIN);
    assert_int_equal(apg_rcmd_parse_i64("9223372036854775808", INT64_MIN, INT64_MAX, &v),
                     APG_EINVAL);
    assert_int_equal(apg_rcmd_parse_i64("-9223372036854775809", INT64_MIN, INT64_MAX, &v),
                     APG_EINVAL);
    assert_int_equal(apg_rcmd_parse_i64("00000000000000000000001", INT64_MIN, INT64_MAX, &v),
                     APG_OK);
    assert_int_equal(v, 1);
    assert_int_equal(apg_rcmd_parse_i64("2147483648", INT32_MIN, INT32_MAX, &v), APG_EINVAL);
    assert_int_equal(apg_rcmd_parse_i64("-2147483648", INT32_MIN, INT32_MAX, &v), APG_OK);
    assert_true(v == INT32_MIN);
    const char *bad[] = {"", "-", "+", "1x", "x1", " 1", "1 ", "12345678901234567a", "1.0", NULL};
    for (int i = 0; bad[i]; i++)
        assert_int_equal(apg_rcmd_parse_i64(bad[i], INT64_MIN, INT64_MAX, &v), APG_EINVAL);
    assert_true(apg_rcmd_parse_bool("TrUe"));
    assert_false(apg_rcmd_parse_bool("true1"));
    assert_false(apg_rcmd_parse_bool("t"));
    assert_false(apg_rcmd_parse_bool(""));
}

static void add(struct apg_rcmd *c, const char *k, const char *v)
{
    assert_int_equal(apg_rcmd_ext_add(c, k, v), APG_OK);
}

static void test_send_hdr_short_and_long(void **state)
{
    struct apg_rcmd c;
    struct apg_send_hdr h;
    apg_rcmd_init_request(&c, 310, 1, APG_SER_ROCKETMQ);
    add(&c, "a", "PG");
    add(&c, "b", "T1");
    add(&c, "e", "3");
    add(&c, "g", "1700000000123");
    add(&c, "i", "TAGS\001x\002");
    add(&c, "m", "TRUE");
    add(&c, "zz", "ignored");
    add(&c, "b", "T2"); /* the last duplicate wins */
    assert_int_equal(apg_send_hdr_parse(&c, true, &h, g_err, sizeof(g_err)), APG_OK);
    assert_string_equal(h.sh_group, "PG");
    assert_string_equal(h.sh_topic, "T2");
    assert_string_equal(h.sh_default_topic, APG_DEFAULT_TOPIC);
    assert_int_equal(h.sh_default_qnums, 4);
    assert_int_equal(h.sh_queue_id, 3);
    assert_true(h.sh_born_ts == 1700000000123LL);
    assert_string_equal(h.sh_props, "TAGS\001x\002");
    assert_int_equal(h.sh_max_reconsume_times, -1);
    assert_true(h.sh_batch);
    assert_false(h.sh_unit_mode);
    /* Long names are not read from a short-name header and vice versa. */
    apg_rcmd_init_request(&c, 10, 1, APG_SER_JSON);
    add(&c, "producerGroup", "PG");
    add(&c, "topic", "T");
    add(&c, "queueId", "-1");
    add(&c, "defaultTopicQueueNums", "8");
    add(&c, "sysFlag", "notanumber"); /* optional: falls back to 0 */
    add(&c, "maxReconsumeTimes", "16");
    add(&c, "unitMode", "true");
    add(&c, "a", "x");
    assert_int_equal(apg_send_hdr_parse(&c, false, &h, g_err, sizeof(g_err)), APG_OK);
    assert_int_equal(h.sh_queue_id, -1);
    assert_int_equal(h.sh_default_qnums, 8);
    assert_int_equal(h.sh_sysflag, 0);
    assert_int_equal(h.sh_max_reconsume_times, 16);
    assert_true(h.sh_unit_mode);
    assert_string_equal(h.sh_props, "");
    assert_int_equal(apg_send_hdr_parse(&c, true, &h, g_err, sizeof(g_err)), APG_EINVAL);
    assert_non_null(strstr(g_err, "lacks 'b' (topic)"));
    /* Required fields: missing and non-numeric queue id. */
    apg_rcmd_init_request(&c, 310, 1, APG_SER_ROCKETMQ);
    add(&c, "a", "PG");
    add(&c, "b", "T");
    assert_int_equal(apg_send_hdr_parse(&c, true, &h, g_err, sizeof(g_err)), APG_EINVAL);
    assert_non_null(strstr(g_err, "lacks 'e' (queueId)"));
    add(&c, "e", "1x");
    assert_int_equal(apg_send_hdr_parse(&c, true, &h, g_err, sizeof(g_err)), APG_EINVAL);
    assert_non_null(strstr(g_err, "field 'e' (queueId) is not an integer: '1x'"));
    apg_rcmd_init_request(&c, 10, 1, APG_SER_ROCKETMQ);
    add(&c, "topic", "T");
    assert_int_equal(apg_send_hdr_parse(&c, false, &h, g_err, sizeof(g_err)), APG_EINVAL);
    assert_non_null(strstr(g_err, "lacks 'producerGroup' (producerGroup)"));
}

static void test_fmt_i64(void **state)
{
    char b[24], want[32];
    const int64_t vals[] = {0,         1,         -1,        9,         10,        -10,
                            123456789, INT32_MAX, INT32_MIN, INT64_MAX, INT64_MIN, 1700000000123LL};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        snprintf(want, sizeof(want), "%lld", (long long)vals[i]);
        assert_string_equal(apg_fmt_i64(b, vals[i]), want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ext_copy_every_length),
        cmocka_unit_test(test_json_escape_every_position),
        cmocka_unit_test(test_json_tight_scratch),
        cmocka_unit_test(test_parse_i64_boundaries),
        cmocka_unit_test(test_send_hdr_short_and_long),
        cmocka_unit_test(test_fmt_i64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

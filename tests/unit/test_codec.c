/* Round-trip and malformed-input tests of the codecs in src/protocol that
 * broker and client share: the property string, offset ids and UNIQ_KEY,
 * the batch body, route JSON and tag expressions (including the promise that a
 * subscription means the same thing to the broker's filter and to the
 * client's). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hash.h"
#include "protocol/batch.h"
#include "protocol/msgid.h"
#include "protocol/props.h"
#include "protocol/route_json.h"
#include "protocol/tagexpr.h"

/* ---- property string ---- */

static void test_props_roundtrip(void **st)
{
    (void)st;
    static const char *const kv[][2] = {
        {"TAGS", "TagA"}, {"KEYS", "k1 k2"}, {"UNIQ_KEY", "7F0000010001"}, {"x", "y=z"}};
    struct apg_buf b = APG_BUF_INIT;
    for (size_t i = 0; i < 4; i++) {
        assert_true(apg_props_pair_ok(kv[i][0], strlen(kv[i][0]), kv[i][1], strlen(kv[i][1])));
        assert_int_equal(apg_props_append(&b, kv[i][0], kv[i][1]), APG_OK);
    }
    const char *s = (const char *)b.b_data;
    size_t pos = 0, n = 0;
    struct apg_prop_kv p;
    while (apg_props_next(s, b.b_len, &pos, &p)) {
        assert_true(n < 4);
        assert_int_equal(p.pk_name_len, strlen(kv[n][0]));
        assert_memory_equal(p.pk_name, kv[n][0], p.pk_name_len);
        assert_int_equal(p.pk_val_len, strlen(kv[n][1]));
        assert_memory_equal(p.pk_val, kv[n][1], p.pk_val_len);
        n++;
    }
    assert_int_equal(n, 4);
    size_t vl;
    const char *v = apg_props_find(s, b.b_len, "KEYS", &vl);
    assert_non_null(v);
    assert_int_equal(vl, 5);
    assert_memory_equal(v, "k1 k2", 5);
    assert_null(apg_props_find(s, b.b_len, "KEY", &vl));
    assert_null(apg_props_find(s, b.b_len, "WAIT", &vl));
    assert_null(apg_props_find(s, b.b_len, "", &vl));

    /* The writer's checks: empty parts and separators are refused. */
    assert_false(apg_props_pair_ok("", 0, "v", 1));
    assert_false(apg_props_pair_ok("k", 1, "", 0));
    assert_false(apg_props_pair_ok("a\x01", 2, "v", 1));
    assert_false(apg_props_pair_ok("a", 1, "v\x02", 2));
    apg_buf_free(&b);
}

/* RocketMQ's reader: never fails; skips short chunks, chunks without a
 * name/value separator and empty names or values; the value keeps any later
 * \x01; a repeated name keeps its last value; no trailing \x02 needed. */
static void test_props_java_reading(void **st)
{
    (void)st;
    static const char in[] = "a\002nosep\002\001v\002k\001\002TAGS\001X\002k\001v=1\001z\002"
                             "TAGS\001Y\002\002\002B\00122";
    size_t len = sizeof(in) - 1, pos = 0, n = 0, vl;
    struct apg_prop_kv p;
    const char *names[] = {"TAGS", "k", "TAGS", "B"};
    while (apg_props_next(in, len, &pos, &p)) {
        assert_true(n < 4);
        assert_int_equal(p.pk_name_len, strlen(names[n]));
        assert_memory_equal(p.pk_name, names[n], p.pk_name_len);
        n++;
    }
    assert_int_equal(n, 4);
    const char *v = apg_props_find(in, len, "TAGS", &vl);
    assert_int_equal(vl, 1);
    assert_memory_equal(v, "Y", 1);
    v = apg_props_find(in, len, "k", &vl);
    assert_int_equal(vl, 5);
    assert_memory_equal(v, "v=1\001z", 5);
    v = apg_props_find(in, len, "B", &vl);
    assert_int_equal(vl, 2);
    assert_null(apg_props_find(in, len, "nosep", &vl));
    assert_null(apg_props_find(in, len, "a", &vl));
    pos = 0;
    assert_false(apg_props_next("", 0, &pos, &p));
    pos = 0;
    assert_false(apg_props_next("\002\002\001\002", 4, &pos, &p));
}

/* ---- message ids ---- */

static void test_msgid_offset(void **st)
{
    (void)st;
    struct apg_host h = {.h_v6 = false, .h_ip = {10, 0, 0, 1}, .h_port = 10911}, d;
    char id[57];
    int64_t off;
    assert_int_equal(apg_msgid_encode(&h, 0x123456789AB, id, sizeof(id)), 32);
    assert_string_equal(id, "0A00000100002A9F00000123456789AB");
    assert_int_equal(apg_msgid_decode(id, 32, &d, &off), APG_OK);
    assert_false(d.h_v6);
    assert_memory_equal(d.h_ip, h.h_ip, 4);
    assert_int_equal(d.h_port, 10911);
    assert_int_equal(off, 0x123456789AB);
    struct apg_host h6 = {.h_v6 = true, .h_port = 1};
    for (int i = 0; i < 16; i++)
        h6.h_ip[i] = (uint8_t)(0xF0 + i);
    assert_int_equal(apg_msgid_encode(&h6, -1, id, sizeof(id)), 56);
    assert_int_equal(apg_msgid_decode(id, 56, &d, &off), APG_OK);
    assert_true(d.h_v6);
    assert_memory_equal(d.h_ip, h6.h_ip, 16);
    assert_int_equal(off, -1);
    /* Malformed: lengths, non-hex digits; a short buffer gets "". */
    assert_int_equal(apg_msgid_decode(id, 55, &d, &off), APG_EINVAL);
    assert_int_equal(apg_msgid_decode("0A00000100002A9F00000123456789AG", 32, &d, &off),
                     APG_EINVAL);
    assert_int_equal(apg_msgid_decode("", 0, &d, &off), APG_EINVAL);
    assert_int_equal(apg_msgid_encode(&h, 1, id, 32), 0);
    assert_string_equal(id, "");
}

static void assert_uniq_equal(const struct apg_uniq_id *a, const struct apg_uniq_id *b)
{
    assert_int_equal(a->ui_ip_len, b->ui_ip_len);
    assert_memory_equal(a->ui_ip, b->ui_ip, a->ui_ip_len);
    assert_int_equal(a->ui_pid, b->ui_pid);
    assert_int_equal(a->ui_hash, b->ui_hash);
    assert_int_equal(a->ui_time, b->ui_time);
    assert_int_equal(a->ui_counter, b->ui_counter);
}

static void test_msgid_uniq(void **st)
{
    (void)st;
    struct apg_uniq_id u = {.ui_ip = {10, 0, 0, 1},
                            .ui_ip_len = 4,
                            .ui_pid = 0x1234,
                            .ui_hash = (int32_t)0xCAFEBABE,
                            .ui_time = 0x01020304,
                            .ui_counter = 0xFFFE},
                       d;
    char id[APG_UNIQ_ID_MAX_LEN + 1];
    assert_int_equal(apg_msgid_uniq_encode(&u, id, sizeof(id)), 32);
    assert_string_equal(id, "0A0000011234CAFEBABE01020304FFFE");
    assert_int_equal(apg_msgid_uniq_decode(id, 32, &d), APG_OK);
    assert_uniq_equal(&d, &u);
    /* Lower-case digits decode too. */
    assert_int_equal(apg_msgid_uniq_decode("0a0000011234cafebabe01020304fffe", 32, &d), APG_OK);
    assert_int_equal(d.ui_hash, (int32_t)0xCAFEBABE);
    u.ui_ip_len = 16;
    memset(u.ui_ip, 0xAB, 16);
    assert_int_equal(apg_msgid_uniq_encode(&u, id, sizeof(id)), 56);
    assert_int_equal(apg_msgid_uniq_decode(id, 56, &d), APG_OK);
    assert_uniq_equal(&d, &u);
    assert_int_equal(apg_msgid_uniq_encode(&u, id, 56), 0);
    u.ui_ip_len = 5;
    assert_int_equal(apg_msgid_uniq_encode(&u, id, sizeof(id)), 0);
    assert_int_equal(apg_msgid_uniq_decode(id, 31, &d), APG_EINVAL);
    assert_int_equal(apg_msgid_uniq_decode("0A0000011234CAFEBABE01020304FFF-", 32, &d), APG_EINVAL);

    /* The generator: same address, pid and hash; the counter steps by one. */
    const uint8_t ip[4] = {127, 0, 0, 1};
    char a[33], b[33];
    apg_msgid_uniq_new(ip, a);
    apg_msgid_uniq_new(ip, b);
    assert_int_equal(strlen(a), 32);
    assert_string_not_equal(a, b);
    assert_memory_equal(a, "7F000001", 8);
    struct apg_uniq_id ua, ub;
    assert_int_equal(apg_msgid_uniq_decode(a, 32, &ua), APG_OK);
    assert_int_equal(apg_msgid_uniq_decode(b, 32, &ub), APG_OK);
    assert_int_equal(ua.ui_pid, ub.ui_pid);
    assert_int_equal(ua.ui_hash, ub.ui_hash);
    assert_int_equal((uint16_t)(ua.ui_counter + 1), ub.ui_counter);
    assert_true(ua.ui_time >= 0 && (int64_t)ua.ui_time <= (31 * 86400 + 3600) * 1000LL);
}

/* ---- batch body ---- */

static void test_batch_roundtrip(void **st)
{
    (void)st;
    struct apg_buf b = APG_BUF_INIT;
    assert_int_equal(apg_batch_append(&b, 1, (const uint8_t *)"hello", 5, "TAGS\001x\002", 7),
                     APG_OK);
    assert_int_equal(apg_batch_append(&b, 2, NULL, 0, NULL, 0), APG_OK);
    size_t mark;
    assert_int_equal(apg_batch_begin(&b, -3, (const uint8_t *)"xyz", 3, &mark), APG_OK);
    assert_int_equal(apg_props_append(&b, "KEYS", "k"), APG_OK);
    assert_int_equal(apg_batch_end(&b, mark), APG_OK);
    assert_int_equal(b.b_len, (22 + 5 + 7) + 22 + (22 + 3 + 7));

    size_t pos = 0;
    struct apg_batch_item it;
    char err[160];
    assert_int_equal(apg_batch_next(b.b_data, b.b_len, &pos, &it, err, sizeof(err)), APG_OK);
    assert_int_equal(it.bi_flag, 1);
    assert_int_equal(it.bi_body_len, 5);
    assert_memory_equal(it.bi_body, "hello", 5);
    assert_int_equal(it.bi_props_len, 7);
    assert_memory_equal(it.bi_props, "TAGS\001x\002", 7);
    assert_int_equal(apg_batch_next(b.b_data, b.b_len, &pos, &it, err, sizeof(err)), APG_OK);
    assert_int_equal(it.bi_flag, 2);
    assert_int_equal(it.bi_body_len, 0);
    assert_int_equal(it.bi_props_len, 0);
    assert_int_equal(apg_batch_next(b.b_data, b.b_len, &pos, &it, err, sizeof(err)), APG_OK);
    assert_int_equal(it.bi_flag, -3);
    assert_memory_equal(it.bi_props, "KEYS\001k\002", 7);
    assert_int_equal(apg_batch_next(b.b_data, b.b_len, &pos, &it, err, sizeof(err)), APG_ENOTFOUND);

    /* Every truncation of the body is refused, never read past. */
    for (size_t cut = 1; cut < 34; cut++) {
        pos = 0;
        assert_int_equal(apg_batch_next(b.b_data, cut, &pos, &it, err, sizeof(err)), APG_EPROTO);
    }
    /* Inconsistent lengths. */
    struct apg_buf c = APG_BUF_INIT;
    apg_buf_append(&c, b.b_data, 34);
    c.b_data[3] = 200; /* TOTALSIZE beyond the body */
    pos = 0;
    assert_int_equal(apg_batch_next(c.b_data, c.b_len, &pos, &it, err, sizeof(err)), APG_EPROTO);
    assert_non_null(strstr(err, "TOTALSIZE"));
    c.b_data[3] = 34;
    c.b_data[19] = 13; /* body length past the record */
    pos = 0;
    assert_int_equal(apg_batch_next(c.b_data, c.b_len, &pos, &it, err, sizeof(err)), APG_EPROTO);
    c.b_data[19] = 5;
    c.b_data[26] = 6; /* properties length off by one */
    pos = 0;
    assert_int_equal(apg_batch_next(c.b_data, c.b_len, &pos, &it, err, sizeof(err)), APG_EPROTO);
    c.b_data[26] = 7;
    c.b_data[3] = 21; /* below the smallest record */
    pos = 0;
    assert_int_equal(apg_batch_next(c.b_data, c.b_len, &pos, &it, err, sizeof(err)), APG_EPROTO);

    /* Properties over the int16 limit: refused, the buffer unchanged. */
    size_t before = b.b_len;
    static char big[APG_BATCH_PROPS_MAX + 1];
    memset(big, 'p', sizeof(big));
    assert_int_equal(apg_batch_append(&b, 0, NULL, 0, big, sizeof(big)), APG_ETOOBIG);
    assert_int_equal(b.b_len, before);
    assert_int_equal(apg_batch_begin(&b, 0, NULL, 0, &mark), APG_OK);
    apg_buf_append(&b, big, sizeof(big));
    assert_int_equal(apg_batch_end(&b, mark), APG_ETOOBIG);
    assert_int_equal(b.b_len, before);
    assert_int_equal(apg_batch_append(&b, 0, NULL, 0, big, sizeof(big) - 1), APG_OK);
    apg_buf_free(&b);
    apg_buf_free(&c);
}

/* ---- tag expressions ---- */

static apg_err_t parse(const char *s, struct apg_tagexpr *te)
{
    char err[160];
    return apg_tagexpr_parse(s, s ? strlen(s) : 0, te, err, sizeof(err));
}

static void assert_tags(const struct apg_tagexpr *te, const char *const *want, size_t n)
{
    assert_false(te->te_all);
    assert_int_equal(te->te_n, n);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(apg_tagexpr_tag(te, (uint32_t)i), want[i]);
        assert_int_equal(te->te_lens[i], strlen(want[i]));
        assert_int_equal(te->te_codes[i], apg_java_hash(want[i], strlen(want[i])));
    }
}

static void test_tagexpr_parse(void **st)
{
    (void)st;
    static struct apg_tagexpr te; /* 4.6 KB */
    assert_int_equal(parse(NULL, &te), APG_OK);
    assert_true(te.te_all);
    assert_int_equal(parse("", &te), APG_OK);
    assert_true(te.te_all);
    assert_int_equal(parse("*", &te), APG_OK);
    assert_true(te.te_all);

    const char *ab[] = {"A", "B"};
    assert_int_equal(parse("A||B", &te), APG_OK);
    assert_tags(&te, ab, 2);
    assert_int_equal(parse(" A || B ||", &te), APG_OK);
    assert_tags(&te, ab, 2);
    assert_int_equal(parse("\tA\r\n||B||A", &te), APG_OK); /* trim <= ' ', duplicates once */
    assert_tags(&te, ab, 2);
    const char *one[] = {"A|B"};
    assert_int_equal(parse("A|B", &te), APG_OK);
    assert_tags(&te, one, 1);
    const char *three[] = {"A", "|B"};
    assert_int_equal(parse("A|||B", &te), APG_OK);
    assert_tags(&te, three, 2);
    const char *star[] = {"*"};
    assert_int_equal(parse(" * ", &te), APG_OK);
    assert_tags(&te, star, 1);
    assert_int_equal(te.te_codes[0], 42);
    /* Accepted with no tag at all: subscribes to nothing. */
    assert_int_equal(parse("   ", &te), APG_OK);
    assert_false(te.te_all);
    assert_int_equal(te.te_n, 0);
    assert_false(apg_tagexpr_match_code(&te, 0));
    assert_false(apg_tagexpr_match_tag(&te, NULL, 0));
    assert_int_equal(parse("|| ||", &te), APG_OK);
    assert_int_equal(te.te_n, 0);
    /* Refused as RocketMQ refuses: nothing but separators. */
    assert_int_equal(parse("||", &te), APG_EINVAL);
    assert_int_equal(parse("||||", &te), APG_EINVAL);
    /* Java hashes UTF-16: "é" (U+00E9, two UTF-8 bytes) hashes to 233. */
    assert_int_equal(parse("\xc3\xa9", &te), APG_OK);
    assert_int_equal(te.te_codes[0], 233);
    /* A NUL byte and this parser's limits. */
    char err[160];
    assert_int_equal(apg_tagexpr_parse("A\0B", 3, &te, err, sizeof(err)), APG_EINVAL);
    char many[1024];
    size_t n = 0;
    for (int i = 0; i <= APG_TAGEXPR_MAX_TAGS; i++)
        n += (size_t)snprintf(many + n, sizeof(many) - n, "t%d||", i);
    assert_int_equal(apg_tagexpr_parse(many, n, &te, err, sizeof(err)), APG_EINVAL);
    assert_non_null(strstr(err, "tags"));
    static char longtag[APG_TAGEXPR_TEXT + 1];
    memset(longtag, 'x', sizeof(longtag));
    assert_int_equal(apg_tagexpr_parse(longtag, sizeof(longtag), &te, err, sizeof(err)),
                     APG_EINVAL);
    assert_int_equal(apg_tagexpr_parse(longtag, sizeof(longtag) - 2, &te, err, sizeof(err)),
                     APG_OK);
    /* A parsed expression is self-contained: a copy still matches. */
    assert_int_equal(parse("X || Y", &te), APG_OK);
    static struct apg_tagexpr copy;
    copy = te;
    memset(&te, 0, sizeof(te));
    assert_true(apg_tagexpr_match_tag(&copy, "Y", 1));
    assert_string_equal(apg_tagexpr_tag(&copy, 1), "Y");
}

/* What the broker keeps (consume-queue code, then the stored TAGS) and what
 * the client keeps (TAGS of a received message) for one message. */
static bool broker_keeps(const struct apg_tagexpr *te, const char *tag)
{
    int64_t code = tag ? apg_java_hash(tag, strlen(tag)) : 0;
    return apg_tagexpr_match_code(te, code) &&
           apg_tagexpr_match_tag(te, tag, tag ? strlen(tag) : 0);
}

static bool client_keeps(const struct apg_tagexpr *te, const char *tag)
{
    return apg_tagexpr_match_tag(te, tag, tag ? strlen(tag) : 0);
}

static void test_tagexpr_broker_client_agree(void **st)
{
    (void)st;
    static const char *const exprs[] = {"A|B", "A || B", "A||B", " * ", ""};
    static const char *const tags[] = {"A", "B", "A|B", "*", "C", "A || B", NULL};
    /* Expected: rows = expressions, columns = message tags. */
    static const bool want[5][7] = {
        {0, 0, 1, 0, 0, 0, 0}, /* one tag, "A|B" */
        {1, 1, 0, 0, 0, 0, 0}, /* two tags */
        {1, 1, 0, 0, 0, 0, 0}, /* the same two tags */
        {0, 0, 0, 1, 0, 0, 0}, /* the tag "*" */
        {1, 1, 1, 1, 1, 1, 1}, /* everything */
    };
    static struct apg_tagexpr te;
    for (size_t e = 0; e < 5; e++) {
        assert_int_equal(parse(exprs[e], &te), APG_OK);
        for (size_t t = 0; t < 7; t++) {
            bool b = broker_keeps(&te, tags[t]), c = client_keeps(&te, tags[t]);
            if (b != want[e][t] || c != want[e][t])
                fail_msg("'%s' on tag '%s': broker %d, client %d, want %d", exprs[e],
                         tags[t] ? tags[t] : "(none)", b, c, want[e][t]);
        }
    }
    /* Same tag set and hash codes for "A || B" and "A||B"; Java's values. */
    static struct apg_tagexpr t2;
    assert_int_equal(parse("A || B", &te), APG_OK);
    assert_int_equal(parse("A||B", &t2), APG_OK);
    assert_int_equal(te.te_n, t2.te_n);
    assert_memory_equal(te.te_codes, t2.te_codes, te.te_n * sizeof(int32_t));
    assert_int_equal(te.te_codes[0], 65);
    assert_int_equal(te.te_codes[1], 66);
    assert_int_equal(parse("A|B", &te), APG_OK);
    assert_int_equal(te.te_codes[0], 66375);
    assert_int_equal(parse("TagA", &te), APG_OK);
    assert_int_equal(te.te_codes[0], 2598919);
    /* Hash collisions ("Aa" and "BB"): the code passes, the exact tag does not. */
    assert_int_equal(parse("Aa", &te), APG_OK);
    assert_true(apg_tagexpr_match_code(&te, apg_java_hash("BB", 2)));
    assert_false(broker_keeps(&te, "BB"));
    /* The code is compared on its low 32 bits, as Java's intValue(). */
    assert_true(apg_tagexpr_match_code(&te, (int64_t)0x100000000LL + apg_java_hash("Aa", 2)));
}

/* ---- route JSON ---- */

static void test_route_roundtrip(void **st)
{
    (void)st;
    const struct apg_route_addr a1[] = {{0, "10.0.0.1:10911"}, {1, "10.0.0.2:10911"}};
    const struct apg_route_addr a2[] = {{2, "[::1]:10911"}};
    const struct apg_route_bd bds[] = {
        {.bd_cluster = "C", .bd_name = "broker-a", .bd_addrs = a1, .bd_naddrs = 2},
        {.bd_cluster = "C",
         .bd_name = "broker-b",
         .bd_zone = "z1",
         .bd_acting = true,
         .bd_addrs = a2,
         .bd_naddrs = 1},
    };
    const struct apg_route_qd qds[] = {{"broker-a", 4, 8, 6, 0}, {"broker-b", 2, 2, 4, 1}};
    struct apg_route_data in = {.rd_qds = qds, .rd_nqds = 2, .rd_bds = bds, .rd_nbds = 2}, out;
    json_t *j = apg_route_data_to_json(&in);
    assert_non_null(j);
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    char err[200];
    assert_int_equal(
        apg_route_data_decode((const uint8_t *)text, strlen(text), &out, err, sizeof(err)), APG_OK);
    assert_int_equal(out.rd_nqds, 2);
    assert_int_equal(out.rd_nbds, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_string_equal(out.rd_qds[i].qd_broker, qds[i].qd_broker);
        assert_int_equal(out.rd_qds[i].qd_read, qds[i].qd_read);
        assert_int_equal(out.rd_qds[i].qd_write, qds[i].qd_write);
        assert_int_equal(out.rd_qds[i].qd_perm, qds[i].qd_perm);
        assert_int_equal(out.rd_qds[i].qd_sysflag, qds[i].qd_sysflag);
        assert_string_equal(out.rd_bds[i].bd_name, bds[i].bd_name);
        assert_string_equal(out.rd_bds[i].bd_cluster, "C");
        assert_int_equal(out.rd_bds[i].bd_acting, bds[i].bd_acting);
        assert_int_equal(out.rd_bds[i].bd_naddrs, bds[i].bd_naddrs);
        for (size_t k = 0; k < bds[i].bd_naddrs; k++) {
            assert_int_equal(out.rd_bds[i].bd_addrs[k].ra_id, bds[i].bd_addrs[k].ra_id);
            assert_string_equal(out.rd_bds[i].bd_addrs[k].ra_addr, bds[i].bd_addrs[k].ra_addr);
        }
    }
    assert_null(out.rd_bds[0].bd_zone);
    assert_string_equal(out.rd_bds[1].bd_zone, "z1");
    apg_route_data_free(&out);
    free(text);

    /* fastjson's bare integer keys. */
    static const char fj[] = "{\"brokerDatas\":[{\"brokerAddrs\":{0:\"h:1\",1:\"h:2\"},"
                             "\"brokerName\":\"b\",\"cluster\":\"C\"}],\"filterServerTable\":{},"
                             "\"queueDatas\":[{\"brokerName\":\"b\",\"perm\":6,"
                             "\"readQueueNums\":4,\"topicSysFlag\":0,\"writeQueueNums\":4}],"
                             "\"newerField\":[1,2]}";
    assert_int_equal(
        apg_route_data_decode((const uint8_t *)fj, sizeof(fj) - 1, &out, err, sizeof(err)), APG_OK);
    assert_int_equal(out.rd_bds[0].bd_addrs[1].ra_id, 1);
    assert_string_equal(out.rd_bds[0].bd_addrs[1].ra_addr, "h:2");
    apg_route_data_free(&out);

    /* Malformed routes: each refused with a reason. */
    static const char *const bad[] = {
        "{",
        "[]",
        "{\"queueDatas\":[]}",
        "{\"brokerDatas\":{},\"queueDatas\":[]}",
        "{\"brokerDatas\":[1],\"queueDatas\":[]}",
        "{\"brokerDatas\":[{\"brokerAddrs\":{}}],\"queueDatas\":[]}",
        "{\"brokerDatas\":[{\"brokerName\":\"b\",\"brokerAddrs\":[]}],\"queueDatas\":[]}",
        "{\"brokerDatas\":[{\"brokerName\":\"b\",\"brokerAddrs\":{\"x\":\"h:1\"}}],"
        "\"queueDatas\":[]}",
        "{\"brokerDatas\":[{\"brokerName\":\"b\",\"brokerAddrs\":{\"0\":5}}],\"queueDatas\":[]}",
        "{\"brokerDatas\":[],\"queueDatas\":[{\"brokerName\":\"b\",\"perm\":\"6\","
        "\"readQueueNums\":1,\"writeQueueNums\":1}]}",
        "{\"brokerDatas\":[],\"queueDatas\":[{\"brokerName\":\"b\",\"perm\":6,"
        "\"readQueueNums\":4294967296,\"writeQueueNums\":1}]}",
        "{\"brokerDatas\":[],\"queueDatas\":[{\"perm\":6,\"readQueueNums\":1,"
        "\"writeQueueNums\":1}]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = 0;
        if (apg_route_data_decode((const uint8_t *)bad[i], strlen(bad[i]), &out, err,
                                  sizeof(err)) != APG_EPROTO)
            fail_msg("accepted %s", bad[i]);
        assert_true(err[0] != 0);
        assert_null(out.rd_owned);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_props_roundtrip),
        cmocka_unit_test(test_props_java_reading),
        cmocka_unit_test(test_msgid_offset),
        cmocka_unit_test(test_msgid_uniq),
        cmocka_unit_test(test_batch_roundtrip),
        cmocka_unit_test(test_tagexpr_parse),
        cmocka_unit_test(test_tagexpr_broker_client_agree),
        cmocka_unit_test(test_route_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

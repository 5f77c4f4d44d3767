/* Remoting codec tests: frame peeking, JSON and ROCKETMQ header decoding,
 * encoding, round trips, and every malformed input we could think of. Each
 * malformed case checks the exact error code and a distinctive part of the
 * message, so a decoder that accepts garbage or misreports fails here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "apogee_version.h"
#include "common/buf.h"
#include "protocol/remoting.h"

#define SCRATCH (1 << 19)

static char g_scratch[SCRATCH];
static char g_err[256];
static struct apg_rcmd g_cmd;

/* Builds a frame around a header of hlen bytes with the given serialize
 * byte and body; returns its length. */
static size_t mkframe(uint8_t *out, uint8_t ser, const void *hdr, size_t hlen, const void *body,
                      size_t blen)
{
    apg_wbe32(out, (uint32_t)(4 + hlen + blen));
    apg_wbe32(out + 4, ((uint32_t)ser << 24) | (uint32_t)hlen);
    memcpy(out + 8, hdr, hlen);
    if (blen)
        memcpy(out + 8 + hlen, body, blen);
    return 8 + hlen + blen;
}

static uint8_t g_frame[1 << 17];

static apg_err_t decode_json(const char *json)
{
    size_t n = mkframe(g_frame, APG_SER_JSON, json, strlen(json), NULL, 0);
    g_err[0] = '\0';
    return apg_rcmd_decode(g_frame, n, &g_cmd, g_scratch, SCRATCH, g_err, sizeof(g_err));
}

static apg_err_t decode_bin(const uint8_t *hdr, size_t hlen)
{
    size_t n = mkframe(g_frame, APG_SER_ROCKETMQ, hdr, hlen, NULL, 0);
    g_err[0] = '\0';
    return apg_rcmd_decode(g_frame, n, &g_cmd, g_scratch, SCRATCH, g_err, sizeof(g_err));
}

#define assert_err_contains(s)                                                                     \
    do {                                                                                           \
        if (!strstr(g_err, (s)))                                                                   \
            fail_msg("error \"%s\" does not contain \"%s\"", g_err, (s));                          \
    } while (0)

#define assert_json_bad(json, needle)                                                              \
    do {                                                                                           \
        assert_int_equal(decode_json(json), APG_EPROTO);                                           \
        assert_err_contains(needle);                                                               \
    } while (0)

/* ---- frame peek ---- */

static void test_peek(void **state)
{
    uint8_t b[16] = {0};
    size_t fl = 99;
    assert_int_equal(apg_frame_peek(b, 0, 1000, &fl, g_err, sizeof(g_err)), APG_OK);
    assert_int_equal(fl, 0);
    apg_wbe32(b, 8);
    fl = 99;
    assert_int_equal(apg_frame_peek(b, 3, 1000, &fl, g_err, sizeof(g_err)), APG_OK);
    assert_int_equal(fl, 0);
    assert_int_equal(apg_frame_peek(b, 11, 1000, &fl, g_err, sizeof(g_err)), APG_OK);
    assert_int_equal(fl, 0);
    assert_int_equal(apg_frame_peek(b, 12, 1000, &fl, g_err, sizeof(g_err)), APG_OK);
    assert_int_equal(fl, 12);
    assert_int_equal(apg_frame_peek(b, 16, 1000, &fl, g_err, sizeof(g_err)), APG_OK);
    assert_int_equal(fl, 12);
    /* Length word 4 (header-length word only) is the smallest legal frame. */
    apg_wbe32(b, 4);
    assert_int_equal(apg_frame_peek(b, 8, 1000, &fl, g_err, sizeof(g_err)), APG_OK);
    assert_int_equal(fl, 8);
    apg_wbe32(b, 3);
    assert_int_equal(apg_frame_peek(b, 8, 1000, &fl, g_err, sizeof(g_err)), APG_EPROTO);
    assert_int_equal(fl, 0);
    assert_err_contains("frame length 3 is less than 4");
    apg_wbe32(b, 0);
    assert_int_equal(apg_frame_peek(b, 4, 1000, &fl, g_err, sizeof(g_err)), APG_EPROTO);
    apg_wbe32(b, 0xFFFFFFFFu); /* -1 as int32 */
    assert_int_equal(apg_frame_peek(b, 4, 1000, &fl, g_err, sizeof(g_err)), APG_EPROTO);
    assert_err_contains("frame length -1");
    apg_wbe32(b, 0x7FFFFFFFu);
    assert_int_equal(apg_frame_peek(b, 4, APG_FRAME_MAX_DEFAULT, &fl, g_err, sizeof(g_err)),
                     APG_ETOOBIG);
    assert_err_contains("frame length 2147483647 exceeds the maximum frame size 16777216");
    apg_wbe32(b, 1001);
    assert_int_equal(apg_frame_peek(b, 4, 1000, &fl, g_err, sizeof(g_err)), APG_ETOOBIG);
    apg_wbe32(b, 1000);
    assert_int_equal(apg_frame_peek(b, 4, 1000, &fl, g_err, sizeof(g_err)), APG_OK);
    assert_int_equal(fl, 0);
}

/* ---- JSON decode ---- */

static const char ROUTE_REQ[] =
    "{\"code\":105,\"extFields\":{\"topic\":\"TopicTest\"},\"flag\":0,\"language\":\"JAVA\","
    "\"opaque\":3,\"serializeTypeCurrentRPC\":\"JSON\",\"version\":479}";

static void test_json_route_request(void **state)
{
    assert_int_equal(decode_json(ROUTE_REQ), APG_OK);
    assert_int_equal(g_cmd.code, 105);
    assert_int_equal(g_cmd.flag, 0);
    assert_int_equal(g_cmd.opaque, 3);
    assert_int_equal(g_cmd.version, 479);
    assert_int_equal(g_cmd.language, APG_LANG_JAVA);
    assert_int_equal(g_cmd.serialize, APG_SER_JSON);
    assert_null(g_cmd.remark);
    assert_int_equal(g_cmd.n_ext, 1);
    assert_string_equal(g_cmd.ext[0].key, "topic");
    assert_string_equal(g_cmd.ext[0].val, "TopicTest");
    assert_string_equal(apg_rcmd_ext_get(&g_cmd, "topic"), "TopicTest");
    assert_null(apg_rcmd_ext_get(&g_cmd, "Topic"));
    assert_null(g_cmd.body);
    assert_int_equal(g_cmd.body_len, 0);
    assert_false(apg_rcmd_is_response(&g_cmd));
    assert_false(apg_rcmd_is_oneway(&g_cmd));
}

static void test_json_response_with_body(void **state)
{
    const char *h = "{\"code\":0,\"flag\":1,\"language\":\"JAVA\",\"opaque\":3,"
                    "\"serializeTypeCurrentRPC\":\"JSON\",\"version\":479}";
    const char *body = "{\"brokerDatas\":[]}";
    size_t n = mkframe(g_frame, 0, h, strlen(h), body, strlen(body));
    assert_int_equal(apg_rcmd_decode(g_frame, n, &g_cmd, g_scratch, SCRATCH, g_err, sizeof(g_err)),
                     APG_OK);
    assert_int_equal(g_cmd.code, 0);
    assert_true(apg_rcmd_is_response(&g_cmd));
    assert_int_equal(g_cmd.n_ext, 0);
    assert_int_equal(g_cmd.body_len, strlen(body));
    assert_ptr_equal(g_cmd.body, g_frame + 8 + strlen(h));
    assert_memory_equal(g_cmd.body, body, strlen(body));
}

static void test_json_any_order_whitespace_unknown(void **state)
{
    const char *j =
        " \r\n\t{ \"version\" : 401 , \"unknownObj\" : {\"a\":[1,2,{\"b\":null}],\"c\":\"\\\"}\"},"
        "\"opaque\":-7,\"flag\":3,\"remark\":\"hi there\",\"extra\":[true,false,null,-1.5e3],"
        "\"language\":\"NODE_JS\",\"extFields\":{\"b\":\"2\",\"a\":\"1\"},\"code\":310,"
        "\"serializeTypeCurrentRPC\":\"ROCKETMQ\"} \n";
    assert_int_equal(decode_json(j), APG_OK);
    assert_int_equal(g_cmd.code, 310);
    assert_int_equal(g_cmd.opaque, -7);
    assert_int_equal(g_cmd.flag, 3);
    assert_int_equal(g_cmd.version, 401);
    assert_int_equal(g_cmd.language, APG_LANG_NODE_JS);
    assert_string_equal(g_cmd.remark, "hi there");
    assert_int_equal(g_cmd.n_ext, 2);
    assert_string_equal(g_cmd.ext[0].key, "b");
    assert_string_equal(g_cmd.ext[1].val, "1");
    assert_true(apg_rcmd_is_oneway(&g_cmd));
    /* serialize comes from the frame byte, not serializeTypeCurrentRPC */
    assert_int_equal(g_cmd.serialize, APG_SER_JSON);
}

static void test_json_defaults_and_nulls(void **state)
{
    assert_int_equal(decode_json("{}"), APG_OK);
    assert_int_equal(g_cmd.code, 0);
    assert_int_equal(g_cmd.flag, 0);
    assert_int_equal(g_cmd.language, APG_LANG_JAVA);
    assert_null(g_cmd.remark);
    assert_int_equal(g_cmd.n_ext, 0);
    assert_int_equal(decode_json("{\"code\":null,\"remark\":null,\"extFields\":null,"
                                 "\"language\":null,\"flag\":null}"),
                     APG_OK);
    assert_int_equal(g_cmd.code, 0);
    assert_null(g_cmd.remark);
    assert_int_equal(g_cmd.n_ext, 0);
    assert_int_equal(decode_json("{\"extFields\":{}}"), APG_OK);
    assert_int_equal(g_cmd.n_ext, 0);
}

static void test_json_ext_value_types(void **state)
{
    assert_int_equal(decode_json("{\"extFields\":{\"n\":-12.5e2,\"i\":42,\"t\":true,\"f\":false,"
                                 "\"z\":null,\"s\":\"\"}}"),
                     APG_OK);
    assert_int_equal(g_cmd.n_ext, 6);
    assert_string_equal(apg_rcmd_ext_get(&g_cmd, "n"), "-12.5e2");
    assert_string_equal(apg_rcmd_ext_get(&g_cmd, "i"), "42");
    assert_string_equal(apg_rcmd_ext_get(&g_cmd, "t"), "true");
    assert_string_equal(apg_rcmd_ext_get(&g_cmd, "f"), "false");
    assert_string_equal(apg_rcmd_ext_get(&g_cmd, "z"), "");
    assert_string_equal(apg_rcmd_ext_get(&g_cmd, "s"), "");
    int32_t v;
    assert_int_equal(apg_rcmd_ext_i32(&g_cmd, "i", &v), APG_OK);
    assert_int_equal(v, 42);
    assert_int_equal(apg_rcmd_ext_i32(&g_cmd, "n", &v), APG_EINVAL);
    assert_true(apg_rcmd_ext_bool(&g_cmd, "t", false));
    assert_false(apg_rcmd_ext_bool(&g_cmd, "f", true));
    assert_true(apg_rcmd_ext_bool(&g_cmd, "missing", true));
}

static void test_json_escapes(void **state)
{
    assert_int_equal(
        decode_json(
            "{\"remark\":\"q\\\"b\\\\s\\/n\\nt\\tr\\rb\\bf\\f\","
            "\"extFields\":{\"u\":\"\\u0041\\u00e9\\u20AC\\ud83d\\ude00\",\"k\\u0031\":\"x\"}}"),
        APG_OK);
    assert_string_equal(g_cmd.remark, "q\"b\\s/n\nt\tr\rb\bf\f");
    assert_string_equal(apg_rcmd_ext_get(&g_cmd, "u"), "A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    assert_string_equal(apg_rcmd_ext_get(&g_cmd, "k1"), "x");
    /* Lone surrogates become U+FFFD (EF BF BD); the next escape still counts. */
    assert_int_equal(decode_json("{\"remark\":\"a\\ud83d\"}"), APG_OK);
    assert_string_equal(g_cmd.remark, "a\xef\xbf\xbd");
    assert_int_equal(decode_json("{\"remark\":\"\\ud83d\\u0041\\ude00\\ud83d\\ud83d\\ude00\"}"),
                     APG_OK);
    assert_string_equal(g_cmd.remark, "\xef\xbf\xbd"
                                      "A"
                                      "\xef\xbf\xbd\xef\xbf\xbd\xf0\x9f\x98\x80");
    assert_json_bad("{\"remark\":\"\\ud83d\\u12\"}", "bad \\u escape");
    /* An escaped top-level key is still the key. */
    assert_int_equal(decode_json("{\"c\\u006fde\":7}"), APG_OK);
    assert_int_equal(g_cmd.code, 7);
    /* Raw UTF-8 passes through. */
    assert_int_equal(decode_json("{\"remark\":\"\xe4\xb8\xad\xe6\x96\x87\"}"), APG_OK);
    assert_string_equal(g_cmd.remark, "\xe4\xb8\xad\xe6\x96\x87");
}

/* The string scanner skips 8 clean bytes at a time; a special byte at any
 * position of a long string must still be seen. */
static void test_json_long_string_positions(void **state)
{
    char j[128], want[64], needle[64];
    for (int pos = 0; pos < 30; pos++) {
        char v[31];
        memset(v, 'x', 30);
        v[30] = 0;
        /* raw control byte -> error at its exact offset */
        v[pos] = '\x1f';
        snprintf(j, sizeof(j), "{\"remark\":\"%s\"}", v);
        snprintf(needle, sizeof(needle), "at byte %d: raw control character 0x1f", 11 + pos);
        assert_json_bad(j, needle);
        /* escaped quote -> decoded at its position */
        v[pos] = 'x';
        snprintf(j, sizeof(j), "{\"remark\":\"%.*s\\\"%s\"}", pos, v, v + pos + 1);
        assert_int_equal(decode_json(j), APG_OK);
        memcpy(want, v, 30);
        want[30] = 0;
        want[pos] = '"';
        assert_string_equal(g_cmd.remark, want);
        /* a closing quote early ends the string */
        snprintf(j, sizeof(j), "{\"remark\":\"%.*s\",\"code\":%d}", pos, v, pos);
        assert_int_equal(decode_json(j), APG_OK);
        assert_int_equal(strlen(g_cmd.remark), pos);
        assert_int_equal(g_cmd.code, pos);
        /* a byte >= 0x80 or DEL is plain text */
        v[pos] = (char)0xff;
        snprintf(j, sizeof(j), "{\"remark\":\"%s\"}", v);
        assert_int_equal(decode_json(j), APG_OK);
        assert_string_equal(g_cmd.remark, v);
    }
}

static void test_json_language(void **state)
{
    static const struct {
        const char *j;
        int lang;
    } cases[] = {
        {"{\"language\":\"JAVA\"}", APG_LANG_JAVA},
        {"{\"language\":\"GO\"}", APG_LANG_GO},
        {"{\"language\":\"CPP\"}", APG_LANG_CPP},
        {"{\"language\":\"RUST\"}", APG_LANG_RUST},
        {"{\"language\":\"KOTLIN\"}", APG_LANG_OTHER},
        {"{\"language\":9}", APG_LANG_GO},
        {"{\"language\":255}", 255},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(decode_json(cases[i].j), APG_OK);
        assert_int_equal(g_cmd.language, cases[i].lang);
    }
    assert_json_bad("{\"language\":256}", "\"language\" code 256 is not a byte");
    assert_json_bad("{\"language\":-1}", "not a byte");
    assert_json_bad("{\"language\":true}", "\"language\" must be a name string or a number");
    assert_string_equal(apg_rcmd_lang_name(APG_LANG_NODE_JS), "NODE_JS");
    assert_null(apg_rcmd_lang_name(14));
    assert_int_equal(apg_rcmd_lang_parse("PYTHON", 6), APG_LANG_PYTHON);
    assert_int_equal(apg_rcmd_lang_parse("PYTHONX", 7), -1);
}

static void test_json_int_ranges(void **state)
{
    assert_int_equal(decode_json("{\"code\":2147483647,\"opaque\":-2147483648}"), APG_OK);
    assert_int_equal(g_cmd.code, INT32_MAX);
    assert_int_equal(g_cmd.opaque, INT32_MIN);
    assert_int_equal(decode_json("{\"code\":200050}"), APG_OK);
    assert_int_equal(g_cmd.code, 200050);
    assert_json_bad("{\"code\":2147483648}", "\"code\" value 2147483648 is out of int32 range");
    assert_json_bad("{\"opaque\":-2147483649}", "\"opaque\" value -2147483649 is out of int32");
    assert_json_bad("{\"flag\":99999999999999999999999}", "\"flag\" value");
    assert_json_bad("{\"version\":1e3}", "\"version\" must be an integer, found 1e3");
    assert_json_bad("{\"code\":1.0}", "\"code\" must be an integer");
    assert_json_bad("{\"code\":\"105\"}", "\"code\" must be an integer, found '\"'");
    assert_json_bad("{\"code\":01}", "leading zero");
    assert_json_bad("{\"code\":-}", "bad number: expected a digit");
    assert_json_bad("{\"code\":+1}", "\"code\" must be an integer, found '+'");
}

static void test_json_malformed(void **state)
{
    assert_json_bad("", "empty header");
    assert_json_bad("   ", "empty header");
    assert_json_bad("[]", "header must be a JSON object, found '['");
    assert_json_bad("{", "expected a key string, found end of header");
    assert_json_bad("{\"code\":105", "expected ',' or '}' after a member, found end of header");
    assert_json_bad("{\"code\" 105}", "expected ':' after key \"code\", found '1'");
    assert_json_bad("{\"code\":105,}", "trailing comma before '}'");
    assert_json_bad("{\"code\":105}x", "trailing garbage after the JSON object: 'x'");
    assert_json_bad("{\"code\":105}{}", "trailing garbage");
    assert_json_bad("{\"remark\":\"abc}", "unterminated string");
    assert_json_bad("{\"remark\":\"abc\\", "unterminated string");
    assert_json_bad("{\"remark\":\"a\\qb\"}", "bad escape '\\q'");
    assert_json_bad("{\"remark\":\"\\u12G4\"}", "bad \\u escape");
    assert_json_bad("{\"remark\":\"\\u12\"}", "bad \\u escape");
    assert_json_bad("{\"remark\":\"\\u0000\"}", "\\u0000 (NUL) is not allowed");
    assert_json_bad("{\"remark\":\"a\nb\"}", "raw control character 0x0a");
    assert_json_bad("{\"remark\":{}}", "\"remark\" must be a string, number, boolean or null");
    assert_json_bad("{\"remark\":tru}", "expected a value, found 't'");
    assert_json_bad("{code:1}", "expected a key string, found 'c'");
    assert_json_bad("{'code':1}", "expected a key string, found '''");
    assert_json_bad("{\"x\":[1,2,]}", "trailing comma before ']'");
    assert_json_bad("{\"x\":[1 2]}", "expected ',' or ']', found '2'");
    assert_json_bad("{\"x\":{\"a\" 1}}", "expected ':' after key, found '1'");
    assert_json_bad("{\"x\":{1:2}}", "expected a key string, found '1'");
    assert_json_bad("{\"x\":}", "expected a value, found '}'");
    assert_json_bad("{\"x\":1.}", "expected a digit after '.'");
    assert_json_bad("{\"x\":1e}", "expected a digit in the exponent");
    assert_json_bad("{\"x\":\"\x01\"}", "raw control character 0x01");
    assert_json_bad("{\"extFields\":[]}", "\"extFields\" must be an object, found '['");
    assert_json_bad("{\"extFields\":{\"a\":{}}}", "extFields value must be a string");
    assert_json_bad("{\"extFields\":{\"a\":[1]}}", "found an array");
    assert_json_bad("{\"extFields\":{\"a\":\"1\",}}", "trailing comma before '}' in extFields");
    assert_json_bad("{\"extFields\":{\"a\" \"1\"}}",
                    "expected ':' after extFields key \"a\", found '\"'");
    assert_json_bad("{\"extFields\":{\"a\":\"1\" \"b\"}}", "expected ',' or '}' in extFields");
    assert_json_bad("{\"extFields\":{a:1}}", "expected an extFields key string, found 'a'");
    /* Error positions are byte offsets into the header. */
    assert_json_bad("{\"code\":105}x", "at byte 12:");
}

static void test_json_nesting(void **state)
{
    char j[512];
    /* The header object is level 1; 31 more levels are fine, 32 are not. */
    for (int depth = 31; depth <= 32; depth++) {
        size_t n = 0;
        n += (size_t)sprintf(j + n, "{\"x\":");
        for (int i = 0; i < depth; i++)
            j[n++] = '[';
        for (int i = 0; i < depth; i++)
            j[n++] = ']';
        j[n++] = '}';
        j[n] = 0;
        if (depth == 31) {
            assert_int_equal(decode_json(j), APG_OK);
        } else {
            assert_json_bad(j, "nesting deeper than 32 levels");
        }
    }
    /* Deep nesting far beyond the limit does not recurse unboundedly. */
    static char deep[100000];
    size_t n = (size_t)sprintf(deep, "{\"x\":");
    memset(deep + n, '[', 90000);
    deep[n + 90000] = 0;
    assert_json_bad(deep, "nesting deeper");
}

static void test_json_too_many_ext(void **state)
{
    static char j[8192];
    for (int count = APG_RCMD_MAX_EXT; count <= APG_RCMD_MAX_EXT + 1; count++) {
        size_t n = (size_t)sprintf(j, "{\"extFields\":{");
        for (int i = 0; i < count; i++)
            n += (size_t)sprintf(j + n, "%s\"k%d\":\"v%d\"", i ? "," : "", i, i);
        sprintf(j + n, "}}");
        if (count == APG_RCMD_MAX_EXT) {
            assert_int_equal(decode_json(j), APG_OK);
            assert_int_equal(g_cmd.n_ext, APG_RCMD_MAX_EXT);
            assert_string_equal(apg_rcmd_ext_get(&g_cmd, "k63"), "v63");
        } else {
            assert_json_bad(j, "more than 64 extFields");
        }
    }
}

static void test_json_duplicates_last_wins(void **state)
{
    assert_int_equal(decode_json("{\"code\":1,\"code\":2,\"extFields\":{\"a\":\"x\"},"
                                 "\"extFields\":{\"b\":\"y\",\"b\":\"z\"}}"),
                     APG_OK);
    assert_int_equal(g_cmd.code, 2);
    assert_null(apg_rcmd_ext_get(&g_cmd, "a"));
    assert_string_equal(apg_rcmd_ext_get(&g_cmd, "b"), "z");
}

/* ---- frame-level decode errors ---- */

static void test_decode_frame_errors(void **state)
{
    uint8_t f[256];
    memset(f, 0, sizeof(f));
    /* shorter than two words */
    apg_wbe32(f, 3);
    assert_int_equal(apg_rcmd_decode(f, 7, &g_cmd, g_scratch, SCRATCH, g_err, sizeof(g_err)),
                     APG_EPROTO);
    assert_err_contains("frame is 7 bytes, shorter than the 8-byte minimum");
    /* length word disagrees with len */
    apg_wbe32(f, 20);
    assert_int_equal(apg_rcmd_decode(f, 16, &g_cmd, g_scratch, SCRATCH, g_err, sizeof(g_err)),
                     APG_EPROTO);
    assert_err_contains("frame length word says 20 bytes but 12 bytes follow it");
    /* header longer than frame */
    apg_wbe32(f, 120);
    apg_wbe32(f + 4, 5000);
    assert_int_equal(
        apg_rcmd_decode(f, 124, &g_cmd, g_scratch, SCRATCH, g_err, sizeof(g_err)) == APG_EPROTO, 1);
    assert_err_contains("header length 5000 exceeds frame length 120");
    /* huge header length with the 24-bit maximum */
    apg_wbe32(f, 12);
    apg_wbe32(f + 4, 0x00FFFFFF);
    assert_int_equal(apg_rcmd_decode(f, 16, &g_cmd, g_scratch, SCRATCH, g_err, sizeof(g_err)),
                     APG_EPROTO);
    assert_err_contains("header length 16777215 exceeds frame length 12");
    /* bad serialize type */
    apg_wbe32(f, 6);
    apg_wbe32(f + 4, 0x02000002);
    memcpy(f + 8, "{}", 2);
    assert_int_equal(apg_rcmd_decode(f, 10, &g_cmd, g_scratch, SCRATCH, g_err, sizeof(g_err)),
                     APG_EPROTO);
    assert_err_contains("unknown serialize type byte 0x02");
    apg_wbe32(f + 4, 0xFF000002);
    assert_int_equal(apg_rcmd_decode(f, 10, &g_cmd, g_scratch, SCRATCH, g_err, sizeof(g_err)),
                     APG_EPROTO);
    assert_err_contains("byte 0xff");
    /* the minimal frame: empty JSON header -> a JSON error, not a crash */
    apg_wbe32(f, 4);
    apg_wbe32(f + 4, 0);
    assert_int_equal(apg_rcmd_decode(f, 8, &g_cmd, g_scratch, SCRATCH, g_err, sizeof(g_err)),
                     APG_EPROTO);
    assert_err_contains("empty header");
}

/* The header-length word against the bytes that follow it: a header that
 * fills the frame exactly, one byte short of it (a one-byte body), one byte
 * and four bytes past it, 0, and the 24-bit maximum with a frame that really
 * holds it. */
static apg_err_t decode_hlen(size_t json_len, uint32_t hlen_word, const char *body)
{
    size_t n = mkframe(g_frame, APG_SER_JSON, ROUTE_REQ, json_len, body, strlen(body));
    apg_wbe32(g_frame + 4, hlen_word);
    g_err[0] = '\0';
    memset(&g_cmd, 0, sizeof(g_cmd));
    return apg_rcmd_decode(g_frame, n, &g_cmd, g_scratch, SCRATCH, g_err, sizeof(g_err));
}

static void test_decode_header_length_bounds(void **state)
{
    size_t jl = strlen(ROUTE_REQ);
    /* exactly the remaining bytes: no body */
    assert_int_equal(decode_hlen(jl, (uint32_t)jl, ""), APG_OK);
    assert_int_equal(g_cmd.code, 105);
    assert_int_equal(g_cmd.body_len, 0);
    assert_null(g_cmd.body);
    /* one less than the remaining bytes: the last byte is the body */
    assert_int_equal(decode_hlen(jl, (uint32_t)jl, "B"), APG_OK);
    assert_int_equal(g_cmd.body_len, 1);
    assert_memory_equal(g_cmd.body, "B", 1);
    /* the remaining bytes are the header plus a space, declared as header */
    assert_int_equal(decode_hlen(jl, (uint32_t)jl + 1, " "), APG_OK);
    assert_int_equal(g_cmd.code, 105);
    assert_int_equal(g_cmd.body_len, 0);
    /* one more than the remaining bytes (the buffer past the frame holds
     * valid bytes, so only the bound can refuse it) */
    memset(g_frame, ' ', 8 + jl + 16);
    assert_int_equal(decode_hlen(jl, (uint32_t)jl + 1, ""), APG_EPROTO);
    assert_err_contains("header length");
    assert_err_contains("exceeds frame length");
    assert_int_equal(decode_hlen(jl, (uint32_t)jl + 2, " "), APG_EPROTO);
    assert_err_contains("exceeds frame length");
    for (uint32_t k = 1; k <= 8; k++) {
        assert_int_equal(decode_hlen(jl, (uint32_t)jl + k, ""), APG_EPROTO);
        assert_err_contains("exceeds frame length");
    }
    /* 0: everything after the two words is body; an empty JSON header is an
     * error, an empty ROCKETMQ header too, neither reads the body as one */
    assert_int_equal(decode_hlen(jl, 0, ""), APG_EPROTO);
    assert_err_contains("empty header");
    size_t n = mkframe(g_frame, APG_SER_ROCKETMQ, "", 0, "body", 4);
    assert_int_equal(apg_rcmd_decode(g_frame, n, &g_cmd, g_scratch, SCRATCH, g_err, sizeof(g_err)),
                     APG_EPROTO);
    /* the 24-bit maximum, in a frame that holds it and a one-byte body */
    size_t max = 0x00FFFFFF;
    uint8_t *big = malloc(8 + max + 1);
    char *sc = malloc(apg_rcmd_scratch_need(max));
    assert_non_null(big);
    assert_non_null(sc);
    memset(big, ' ', 8 + max + 1);
    apg_wbe32(big, (uint32_t)(4 + max + 1));
    apg_wbe32(big + 4, (uint32_t)max);
    memcpy(big + 8, ROUTE_REQ, jl);
    big[8 + max] = 'Z';
    assert_int_equal(apg_rcmd_decode(big, 8 + max + 1, &g_cmd, sc, apg_rcmd_scratch_need(max),
                                     g_err, sizeof(g_err)),
                     APG_OK);
    assert_int_equal(g_cmd.code, 105);
    assert_int_equal(g_cmd.body_len, 1);
    assert_int_equal(g_cmd.body[0], 'Z');
    /* the same header with no byte after it: the maximum fills the frame */
    apg_wbe32(big, (uint32_t)(4 + max));
    assert_int_equal(
        apg_rcmd_decode(big, 8 + max, &g_cmd, sc, apg_rcmd_scratch_need(max), g_err, sizeof(g_err)),
        APG_OK);
    assert_int_equal(g_cmd.body_len, 0);
    free(sc);
    free(big);
    (void)state;
}

static void test_decode_scratch_too_small(void **state)
{
    size_t n = mkframe(g_frame, 0, ROUTE_REQ, strlen(ROUTE_REQ), NULL, 0);
    size_t need = apg_rcmd_scratch_need(strlen(ROUTE_REQ));
    assert_int_equal(apg_rcmd_decode(g_frame, n, &g_cmd, g_scratch, need - 1, g_err, sizeof(g_err)),
                     APG_ENOSPC);
    assert_err_contains("too small");
    assert_int_equal(apg_rcmd_decode(g_frame, n, &g_cmd, g_scratch, need, g_err, sizeof(g_err)),
                     APG_OK);
    assert_string_equal(g_cmd.ext[0].val, "TopicTest");
}

/* ---- ROCKETMQ binary ---- */

/* Appends helpers for building binary headers by hand. */
static size_t put16(uint8_t *p, size_t at, uint16_t v)
{
    apg_wbe16(p + at, v);
    return at + 2;
}
static size_t put32(uint8_t *p, size_t at, uint32_t v)
{
    apg_wbe32(p + at, v);
    return at + 4;
}
static size_t putb(uint8_t *p, size_t at, const char *s)
{
    memcpy(p + at, s, strlen(s));
    return at + strlen(s);
}

/* A SEND_MESSAGE_V2-like binary header with remark "rm" and two entries. */
static size_t bin_sample(uint8_t *h)
{
    size_t at = 0;
    at = put16(h, at, 310);
    h[at++] = APG_LANG_GO;
    at = put16(h, at, 317);
    at = put32(h, at, 0x01020304);
    at = put32(h, at, 2);
    at = put32(h, at, 2);
    at = putb(h, at, "rm");
    at = put32(h, at, (2 + 1 + 4 + 9) + (2 + 1 + 4 + 4));
    at = put16(h, at, 1);
    at = putb(h, at, "b");
    at = put32(h, at, 9);
    at = putb(h, at, "TopicTest");
    at = put16(h, at, 1);
    at = putb(h, at, "e");
    at = put32(h, at, 4);
    at = putb(h, at, "-123");
    return at;
}

static void test_bin_decode(void **state)
{
    uint8_t h[256];
    size_t n = bin_sample(h);
    assert_int_equal(decode_bin(h, n), APG_OK);
    assert_int_equal(g_cmd.serialize, APG_SER_ROCKETMQ);
    assert_int_equal(g_cmd.code, 310);
    assert_int_equal(g_cmd.language, APG_LANG_GO);
    assert_int_equal(g_cmd.version, 317);
    assert_int_equal(g_cmd.opaque, 0x01020304);
    assert_int_equal(g_cmd.flag, 2);
    assert_string_equal(g_cmd.remark, "rm");
    assert_int_equal(g_cmd.n_ext, 2);
    assert_string_equal(apg_rcmd_ext_get(&g_cmd, "b"), "TopicTest");
    int32_t q;
    assert_int_equal(apg_rcmd_ext_i32(&g_cmd, "e", &q), APG_OK);
    assert_int_equal(q, -123);
}

static void test_bin_signed_and_empty(void **state)
{
    uint8_t h[64];
    size_t at = 0;
    at = put16(h, at, 0xFFFF); /* code -1 */
    h[at++] = 0;
    at = put16(h, at, 0x8000); /* version -32768 */
    at = put32(h, at, 0xFFFFFFFF);
    at = put32(h, at, 1);
    at = put32(h, at, 0); /* no remark */
    at = put32(h, at, 0);
    assert_int_equal(decode_bin(h, at), APG_OK);
    assert_int_equal(g_cmd.code, -1);
    assert_int_equal(g_cmd.version, -32768);
    assert_int_equal(g_cmd.opaque, -1);
    assert_null(g_cmd.remark);
    assert_int_equal(g_cmd.n_ext, 0);

    /* zero-length key: dropped; zero-length value: "" */
    at = 0;
    at = put16(h, at, 10);
    h[at++] = 0;
    at = put16(h, at, 1);
    at = put32(h, at, 1);
    at = put32(h, at, 0);
    at = put32(h, at, 0);
    at = put32(h, at, (2 + 0 + 4 + 1) + (2 + 1 + 4 + 0));
    size_t ext_at = at - 4;
    at = put16(h, at, 0);
    at = put32(h, at, 1);
    at = putb(h, at, "x");
    at = put16(h, at, 1);
    at = putb(h, at, "k");
    at = put32(h, at, 0);
    (void)ext_at;
    assert_int_equal(decode_bin(h, at), APG_OK);
    assert_int_equal(g_cmd.n_ext, 1);
    assert_string_equal(g_cmd.ext[0].key, "k");
    assert_string_equal(g_cmd.ext[0].val, "");
}

static void test_bin_malformed(void **state)
{
    uint8_t h[256];
    size_t n = bin_sample(h);
    uint8_t t[256];

    assert_int_equal(decode_bin(h, 20), APG_EPROTO);
    assert_err_contains("ROCKETMQ header is 20 bytes, shorter than the 21-byte minimum");

    memcpy(t, h, n);
    put32(t, 13, 0x80000000u);
    assert_int_equal(decode_bin(t, n), APG_EPROTO);
    assert_err_contains("remark length -2147483648 is negative");

    memcpy(t, h, n);
    put32(t, 13, 1000);
    assert_int_equal(decode_bin(t, n), APG_EPROTO);
    assert_err_contains("remark length 1000 exceeds");

    memcpy(t, h, n);
    put32(t, 13, 0x7FFFFFFF);
    assert_int_equal(decode_bin(t, n), APG_EPROTO);
    assert_err_contains("remark length 2147483647 exceeds");

    /* ext length bigger than what is left, negative, smaller (stray bytes) */
    memcpy(t, h, n);
    put32(t, 19, 0x7FFFFFF0);
    assert_int_equal(decode_bin(t, n), APG_EPROTO);
    assert_err_contains("extFields length 2147483632 exceeds");
    put32(t, 19, 0xFFFFFFFF);
    assert_int_equal(decode_bin(t, n), APG_EPROTO);
    assert_err_contains("extFields length -1 is negative");
    put32(t, 19, 16);
    assert_int_equal(decode_bin(t, n), APG_EPROTO);
    assert_err_contains("11 stray bytes after the 16-byte extFields map");

    /* key length overflowing the map, and negative */
    memcpy(t, h, n);
    put16(t, 23, 500);
    assert_int_equal(decode_bin(t, n), APG_EPROTO);
    assert_err_contains("entry at header byte 23: key length 500 exceeds");
    put16(t, 23, 0x8000);
    assert_int_equal(decode_bin(t, n), APG_EPROTO);
    assert_err_contains("key length -32768 is negative");

    /* value length overflowing and negative */
    memcpy(t, h, n);
    put32(t, 26, 0x7FFFFFFF);
    assert_int_equal(decode_bin(t, n), APG_EPROTO);
    assert_err_contains("value length 2147483647 exceeds");
    put32(t, 26, 0xFFFFFFFE);
    assert_int_equal(decode_bin(t, n), APG_EPROTO);
    assert_err_contains("value length -2 is negative");

    /* truncated entry: map says 1 byte, key length needs 2 */
    memcpy(t, h, 19);
    put32(t, 19, 1);
    t[23] = 0;
    assert_int_equal(decode_bin(t, 24), APG_EPROTO);
    assert_err_contains("truncated key length");

    /* key fits but no room for the value length */
    memcpy(t, h, 19);
    put32(t, 19, 3);
    put16(t, 23, 1);
    t[25] = 'a';
    assert_int_equal(decode_bin(t, 26), APG_EPROTO);
    assert_err_contains("key length 1 exceeds the 1 bytes left");
}

static void test_bin_nul_bytes(void **state)
{
    uint8_t h[256], t[256];
    size_t n = bin_sample(h);
    memcpy(t, h, n);
    t[17] = 0; /* remark "rm" -> "\0m" */
    assert_int_equal(decode_bin(t, n), APG_EPROTO);
    assert_err_contains("remark contains a NUL byte");
    memcpy(t, h, n);
    t[25] = 0; /* key "b" */
    assert_int_equal(decode_bin(t, n), APG_EPROTO);
    assert_err_contains("entry at header byte 23: key contains a NUL byte");
    memcpy(t, h, n);
    t[32] = 0; /* inside value "TopicTest" */
    assert_int_equal(decode_bin(t, n), APG_EPROTO);
    assert_err_contains("entry at header byte 23: value contains a NUL byte");
}

static void test_bin_too_many_ext(void **state)
{
    static uint8_t h[4096];
    for (int count = APG_RCMD_MAX_EXT; count <= APG_RCMD_MAX_EXT + 1; count++) {
        size_t at = 0;
        at = put16(h, at, 10);
        h[at++] = 0;
        at = put16(h, at, 1);
        at = put32(h, at, 1);
        at = put32(h, at, 0);
        at = put32(h, at, 0);
        at = put32(h, at, (uint32_t)count * 8);
        for (int i = 0; i < count; i++) {
            at = put16(h, at, 1);
            h[at++] = (uint8_t)('A' + (i % 50));
            at = put32(h, at, 1);
            h[at++] = 'v';
        }
        if (count == APG_RCMD_MAX_EXT) {
            assert_int_equal(decode_bin(h, at), APG_OK);
            assert_int_equal(g_cmd.n_ext, APG_RCMD_MAX_EXT);
        } else {
            assert_int_equal(decode_bin(h, at), APG_EPROTO);
            assert_err_contains("more than 64 extFields");
        }
    }
}

/* ---- encode ---- */

static void test_encode_json_exact(void **state)
{
    struct apg_rcmd c;
    struct apg_buf b = APG_BUF_INIT;
    apg_rcmd_init_request(&c, 105, 3, APG_SER_JSON);
    c.version = 479;
    assert_int_equal(apg_rcmd_ext_add(&c, "topic", "TopicTest"), APG_OK);
    assert_int_equal(apg_rcmd_encode(&c, NULL, 0, &b), APG_OK);
    /* Byte-identical to the Java client's frame for the same request. */
    assert_int_equal(b.b_len, 8 + strlen(ROUTE_REQ));
    assert_memory_equal(b.b_data + 8, ROUTE_REQ, strlen(ROUTE_REQ));
    assert_int_equal(apg_be32(b.b_data), 4 + strlen(ROUTE_REQ));
    assert_int_equal(apg_be32(b.b_data + 4), strlen(ROUTE_REQ));
    apg_buf_free(&b);
}

static void test_encode_json_escaping(void **state)
{
    struct apg_rcmd c;
    struct apg_buf b = APG_BUF_INIT;
    apg_rcmd_init_request(&c, -5, -1, APG_SER_JSON);
    c.remark = "a\"b\\c\n\x01\x1f\x7f/\xc3\xa9";
    c.language = 200;
    apg_rcmd_ext_add(&c, "k\t", "v\r\b\f");
    apg_rcmd_ext_add(&c, "skip", NULL);
    assert_int_equal(apg_rcmd_encode_header(&c, 0, &b), APG_OK);
    const char *want = "{\"code\":-5,\"extFields\":{\"k\\t\":\"v\\r\\b\\f\"},\"flag\":0,"
                       "\"language\":200,\"opaque\":-1,\"remark\":\"a\\\"b\\\\c\\n\\u0001"
                       "\\u001f\\u007f/\xc3\xa9\",\"serializeTypeCurrentRPC\":\"JSON\","
                       "\"version\":409}";
    assert_int_equal(b.b_len - 8, strlen(want));
    assert_memory_equal(b.b_data + 8, want, strlen(want));
    /* and it decodes back */
    assert_int_equal(
        apg_rcmd_decode(b.b_data, b.b_len, &g_cmd, g_scratch, SCRATCH, g_err, sizeof(g_err)),
        APG_OK);
    assert_string_equal(g_cmd.remark, c.remark);
    assert_int_equal(g_cmd.language, 200);
    assert_int_equal(g_cmd.n_ext, 1);
    assert_string_equal(g_cmd.ext[0].key, "k\t");
    assert_string_equal(g_cmd.ext[0].val, "v\r\b\f");
    apg_buf_free(&b);
}

static void test_encode_bin_exact(void **state)
{
    uint8_t h[256];
    size_t n = bin_sample(h);
    struct apg_rcmd c;
    struct apg_buf b = APG_BUF_INIT;
    apg_rcmd_init_request(&c, 310, 0x01020304, APG_SER_ROCKETMQ);
    c.language = APG_LANG_GO;
    c.version = 317;
    c.flag = 2;
    c.remark = "rm";
    apg_rcmd_ext_add(&c, "b", "TopicTest");
    apg_rcmd_ext_add(&c, "", "dropped");
    apg_rcmd_ext_add(&c, "e", "-123");
    assert_int_equal(apg_rcmd_encode(&c, (const uint8_t *)"BODY", 4, &b), APG_OK);
    assert_int_equal(b.b_len, 8 + n + 4);
    assert_int_equal(apg_be32(b.b_data), 4 + n + 4);
    assert_int_equal(apg_be32(b.b_data + 4), 0x01000000u | n);
    assert_memory_equal(b.b_data + 8, h, n);
    assert_memory_equal(b.b_data + 8 + n, "BODY", 4);
    apg_buf_free(&b);
}

static void test_encode_bin_range(void **state)
{
    struct apg_rcmd c;
    struct apg_buf b = APG_BUF_INIT;
    apg_rcmd_init_request(&c, 200050, 1, APG_SER_ROCKETMQ);
    assert_int_equal(apg_rcmd_encode_header(&c, 0, &b), APG_ERANGE);
    assert_int_equal(b.b_len, 0);
    c.code = -32768;
    assert_int_equal(apg_rcmd_encode_header(&c, 0, &b), APG_OK);
    c.serialize = 7;
    size_t before = b.b_len;
    assert_int_equal(apg_rcmd_encode_header(&c, 0, &b), APG_EINVAL);
    assert_int_equal(b.b_len, before);
    /* header+body beyond int32 */
    c.serialize = APG_SER_JSON;
    assert_int_equal(apg_rcmd_encode_header(&c, 0x7FFFFFF0u, &b), APG_ETOOBIG);
    assert_int_equal(b.b_len, before);
    apg_buf_free(&b);
}

static void assert_cmd_equal(const struct apg_rcmd *a, const struct apg_rcmd *b)
{
    assert_int_equal(a->code, b->code);
    assert_int_equal(a->opaque, b->opaque);
    assert_int_equal(a->flag, b->flag);
    assert_int_equal(a->version, b->version);
    assert_int_equal(a->language, b->language);
    assert_int_equal(a->serialize, b->serialize);
    if (a->remark == NULL || b->remark == NULL)
        assert_ptr_equal(a->remark, b->remark);
    else
        assert_string_equal(a->remark, b->remark);
    assert_int_equal(a->n_ext, b->n_ext);
    for (uint32_t i = 0; i < a->n_ext; i++) {
        assert_string_equal(a->ext[i].key, b->ext[i].key);
        assert_string_equal(a->ext[i].val, b->ext[i].val);
    }
    assert_int_equal(a->body_len, b->body_len);
    if (a->body_len)
        assert_memory_equal(a->body, b->body, a->body_len);
}

static void test_round_trip_both(void **state)
{
    static char sc2[SCRATCH];
    static const char *props = "KEYS\001order-1\002TAGS\001tagA\002UNIQ_KEY\001AC1100\002"
                               "\xe4\xb8\xad \"quoted\" \\ back";
    for (int ser = 0; ser <= 1; ser++) {
        struct apg_rcmd c, d;
        struct apg_buf b = APG_BUF_INIT;
        apg_rcmd_init_request(&c, 310, 123456789, (uint8_t)ser);
        c.language = APG_LANG_NODE_JS;
        c.flag = APG_RCMD_FLAG_ONEWAY;
        c.remark = "r\xc3\xa9mark";
        apg_rcmd_ext_add(&c, "a", "please_rename_unique_group_name");
        apg_rcmd_ext_add(&c, "b", "TopicTest");
        apg_rcmd_ext_add(&c, "c", "TBW102");
        apg_rcmd_ext_add(&c, "d", "4");
        apg_rcmd_ext_add(&c, "e", "0");
        apg_rcmd_ext_add(&c, "i", props);
        apg_rcmd_ext_add(&c, "empty", "");
        const uint8_t body[] = {0, 1, 2, 255, '{', '"'};
        assert_int_equal(apg_rcmd_encode(&c, body, sizeof(body), &b), APG_OK);
        assert_int_equal(b.b_data[4], ser);
        size_t fl;
        assert_int_equal(
            apg_frame_peek(b.b_data, b.b_len, APG_FRAME_MAX_DEFAULT, &fl, g_err, sizeof(g_err)),
            APG_OK);
        assert_int_equal(fl, b.b_len);
        assert_int_equal(apg_rcmd_decode(b.b_data, fl, &d, sc2, SCRATCH, g_err, sizeof(g_err)),
                         APG_OK);
        c.body = body;
        c.body_len = sizeof(body);
        assert_cmd_equal(&c, &d);
        /* second generation is byte-identical */
        struct apg_buf b2 = APG_BUF_INIT;
        assert_int_equal(apg_rcmd_encode(&d, d.body, d.body_len, &b2), APG_OK);
        assert_int_equal(b2.b_len, b.b_len);
        assert_memory_equal(b2.b_data, b.b_data, b.b_len);
        apg_buf_free(&b);
        apg_buf_free(&b2);
    }
}

static void test_init_response(void **state)
{
    assert_int_equal(decode_json(ROUTE_REQ), APG_OK);
    struct apg_rcmd r;
    apg_rcmd_init_response(&r, &g_cmd, 17, "No topic route info in name server for the topic");
    assert_int_equal(r.code, 17);
    assert_int_equal(r.opaque, 3);
    assert_int_equal(r.flag, APG_RCMD_FLAG_RESPONSE);
    assert_int_equal(r.language, APG_LANG_JAVA);
    assert_int_equal(r.version, APOGEE_RMQ_VERSION_ORDINAL);
    assert_int_equal(r.serialize, APG_SER_JSON);
    assert_int_equal(r.n_ext, 0);
    assert_null(r.body);

    /* 4.x Java clients read a JSON reply's header-length word as a plain
     * int32: the serialize byte (top byte) must be 0. */
    struct apg_buf b = APG_BUF_INIT;
    assert_int_equal(apg_rcmd_encode(&r, NULL, 0, &b), APG_OK);
    assert_int_equal(b.b_data[4], 0);
    assert_int_equal(apg_be32(b.b_data + 4), b.b_len - 8);
    const char *want = "{\"code\":17,\"flag\":1,\"language\":\"JAVA\",\"opaque\":3,"
                       "\"remark\":\"No topic route info in name server for the topic\","
                       "\"serializeTypeCurrentRPC\":\"JSON\",\"version\":409}";
    assert_int_equal(b.b_len - 8, strlen(want));
    assert_memory_equal(b.b_data + 8, want, strlen(want));
    apg_buf_free(&b);

    /* a binary request gets a binary reply */
    uint8_t h[256];
    assert_int_equal(decode_bin(h, bin_sample(h)), APG_OK);
    apg_rcmd_init_response(&r, &g_cmd, 0, NULL);
    assert_int_equal(r.serialize, APG_SER_ROCKETMQ);
    assert_int_equal(r.opaque, 0x01020304);
    assert_null(r.remark);
}

static void test_ext_getters(void **state)
{
    struct apg_rcmd c;
    apg_rcmd_init_request(&c, 1, 1, APG_SER_JSON);
    static const struct {
        const char *s;
        apg_err_t rc64;
        int64_t v64;
        apg_err_t rc32;
    } cases[] = {
        {"0", APG_OK, 0, APG_OK},
        {"+7", APG_OK, 7, APG_OK},
        {"-7", APG_OK, -7, APG_OK},
        {"007", APG_OK, 7, APG_OK},
        {"2147483647", APG_OK, 2147483647LL, APG_OK},
        {"2147483648", APG_OK, 2147483648LL, APG_EINVAL},
        {"-2147483648", APG_OK, -2147483648LL, APG_OK},
        {"-2147483649", APG_OK, -2147483649LL, APG_EINVAL},
        {"9223372036854775807", APG_OK, INT64_MAX, APG_EINVAL},
        {"-9223372036854775808", APG_OK, INT64_MIN, APG_EINVAL},
        {"9223372036854775808", APG_EINVAL, 0, APG_EINVAL},
        {"-9223372036854775809", APG_EINVAL, 0, APG_EINVAL},
        {"99999999999999999999", APG_EINVAL, 0, APG_EINVAL},
        {"", APG_EINVAL, 0, APG_EINVAL},
        {"-", APG_EINVAL, 0, APG_EINVAL},
        {"+", APG_EINVAL, 0, APG_EINVAL},
        {" 1", APG_EINVAL, 0, APG_EINVAL},
        {"1 ", APG_EINVAL, 0, APG_EINVAL},
        {"1.0", APG_EINVAL, 0, APG_EINVAL},
        {"0x10", APG_EINVAL, 0, APG_EINVAL},
        {"--1", APG_EINVAL, 0, APG_EINVAL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        c.n_ext = 0;
        apg_rcmd_ext_add(&c, "k", cases[i].s);
        int64_t v64 = 12345;
        int32_t v32 = 12345;
        apg_err_t rc = apg_rcmd_ext_i64(&c, "k", &v64);
        if (rc != cases[i].rc64)
            fail_msg("i64 \"%s\": rc %d, want %d", cases[i].s, rc, cases[i].rc64);
        if (rc == APG_OK)
            assert_true(v64 == cases[i].v64);
        else
            assert_true(v64 == 12345);
        rc = apg_rcmd_ext_i32(&c, "k", &v32);
        if (rc != cases[i].rc32)
            fail_msg("i32 \"%s\": rc %d, want %d", cases[i].s, rc, cases[i].rc32);
        if (rc == APG_OK)
            assert_true(v32 == cases[i].v64);
    }
    int64_t v;
    assert_int_equal(apg_rcmd_ext_i64(&c, "missing", &v), APG_ENOTFOUND);
    int32_t v32;
    assert_int_equal(apg_rcmd_ext_i32(&c, "missing", &v32), APG_ENOTFOUND);

    static const struct {
        const char *s;
        bool want;
    } bools[] = {{"true", true},   {"TRUE", true}, {"TrUe", true}, {"false", false},
                 {"1", false},     {"yes", false}, {"", false},    {"truex", false},
                 {"true ", false}, {"tru", false}};
    for (size_t i = 0; i < sizeof(bools) / sizeof(bools[0]); i++) {
        c.n_ext = 0;
        apg_rcmd_ext_add(&c, "b", bools[i].s);
        if (apg_rcmd_ext_bool(&c, "b", !bools[i].want) != bools[i].want)
            fail_msg("bool \"%s\" should be %d", bools[i].s, bools[i].want);
    }

    c.n_ext = 0;
    for (int i = 0; i < APG_RCMD_MAX_EXT; i++)
        assert_int_equal(apg_rcmd_ext_add(&c, "k", "v"), APG_OK);
    assert_int_equal(apg_rcmd_ext_add(&c, "k", "v"), APG_ETOOBIG);
    assert_int_equal(c.n_ext, APG_RCMD_MAX_EXT);
}

/* A real SEND_MESSAGE_V2 header as a 4.9.x Java producer sends it. */
static const char SEND_V2[] =
    "{\"code\":310,\"extFields\":{\"a\":\"please_rename_unique_group_name\",\"b\":\"TopicTest\","
    "\"c\":\"TBW102\",\"d\":\"4\",\"e\":\"1\",\"f\":\"0\",\"g\":\"1700000000123\",\"h\":\"0\","
    "\"i\":\"KEYS\\u0001OrderID188\\u0002UNIQ_KEY\\u0001AC11000100002A9F0000000000000000\\u0002"
    "WAIT\\u0001true\\u0002TAGS\\u0001TagA\\u0002\",\"j\":\"0\",\"k\":\"false\",\"m\":\"false\","
    "\"n\":\"broker-a\"},\"flag\":0,\"language\":\"JAVA\",\"opaque\":42,"
    "\"serializeTypeCurrentRPC\":\"JSON\",\"version\":409}";

static void test_json_send_v2(void **state)
{
    const char *body = "Hello RocketMQ 0";
    size_t n = mkframe(g_frame, 0, SEND_V2, strlen(SEND_V2), body, strlen(body));
    assert_int_equal(apg_rcmd_decode(g_frame, n, &g_cmd, g_scratch, SCRATCH, g_err, sizeof(g_err)),
                     APG_OK);
    assert_int_equal(g_cmd.code, 310);
    assert_int_equal(g_cmd.n_ext, 13);
    int64_t born;
    assert_int_equal(apg_rcmd_ext_i64(&g_cmd, "g", &born), APG_OK);
    assert_true(born == 1700000000123LL);
    assert_string_equal(apg_rcmd_ext_get(&g_cmd, "i"),
                        "KEYS\001OrderID188\002UNIQ_KEY\001AC11000100002A9F0000000000000000\002"
                        "WAIT\001true\002TAGS\001TagA\002");
    assert_false(apg_rcmd_ext_bool(&g_cmd, "k", true));
    assert_memory_equal(g_cmd.body, body, strlen(body));
}

/* The fuzz seed corpus holds real frames; each must peek and decode, and
 * its commands must survive a round trip. */
static void test_seed_corpus(void **state)
{
    static const struct {
        const char *name;
        int32_t code;
        int32_t opaque;
        uint8_t ser;
        uint32_t n_ext;
    } seeds[] = {
        {"json_route_req", 105, 3, 0, 1},      {"json_route_resp", 0, 3, 0, 0},
        {"json_route_not_exist", 17, 4, 0, 0}, {"json_send_v2", 310, 42, 0, 13},
        {"json_send_resp", 0, 42, 0, 5},       {"json_heartbeat_nodejs", 34, 7, 0, 0},
        {"json_pull", 11, 9, 0, 11},           {"json_update_offset_oneway", 15, 11, 0, 4},
        {"json_go_numbers", 38, 5, 0, 4},      {"json_escapes", 1, 0, 0, 1},
        {"json_alions_send", 310, 12, 0, 11},  {"bin_send_v2", 310, 42, 1, 13},
        {"bin_send_resp", 0, 42, 1, 3},        {"bin_error_resp", 1, 8, 1, 0},
        {"bin_heartbeat_go", 34, 7, 1, 0},     {"bin_minimal", 0, 1, 1, 0},
    };
    static uint8_t data[65536];
    static char sc2[SCRATCH];
    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/../fuzz/corpus/remoting/%s", APG_FIXTURES_DIR,
                 seeds[i].name);
        FILE *f = fopen(path, "rb");
        if (!f)
            fail_msg("cannot open seed %s", path);
        size_t n = fread(data, 1, sizeof(data), f);
        fclose(f);
        size_t fl;
        assert_int_equal(apg_frame_peek(data, n, APG_FRAME_MAX_DEFAULT, &fl, g_err, sizeof(g_err)),
                         APG_OK);
        assert_int_equal(fl, n);
        if (apg_rcmd_decode(data, fl, &g_cmd, g_scratch, SCRATCH, g_err, sizeof(g_err)) != APG_OK)
            fail_msg("seed %s: %s", seeds[i].name, g_err);
        assert_int_equal(g_cmd.code, seeds[i].code);
        assert_int_equal(g_cmd.opaque, seeds[i].opaque);
        assert_int_equal(g_cmd.serialize, seeds[i].ser);
        assert_int_equal(g_cmd.n_ext, seeds[i].n_ext);
        struct apg_buf b = APG_BUF_INIT;
        struct apg_rcmd d;
        assert_int_equal(apg_rcmd_encode(&g_cmd, g_cmd.body, g_cmd.body_len, &b), APG_OK);
        assert_int_equal(apg_rcmd_decode(b.b_data, b.b_len, &d, sc2, SCRATCH, g_err, sizeof(g_err)),
                         APG_OK);
        assert_cmd_equal(&g_cmd, &d);
        apg_buf_free(&b);
    }
}

/* ali-ons sends numbers and booleans unquoted in extFields; the getters
 * must read them exactly like the quoted forms. */
static void test_json_alions_send(void **state)
{
    assert_int_equal(decode_json("{\"code\":310,\"language\":\"JAVA\",\"opaque\":12,\"flag\":0,"
                                 "\"version\":121,\"extFields\":{\"a\":\"pg\",\"b\":\"TopicTest\","
                                 "\"d\":4,\"e\":2,\"g\":1700000000123,\"k\":false,\"m\":true}}"),
                     APG_OK);
    assert_int_equal(g_cmd.version, 121);
    assert_int_equal(g_cmd.opaque, 12);
    int32_t q;
    int64_t born;
    assert_int_equal(apg_rcmd_ext_i32(&g_cmd, "e", &q), APG_OK);
    assert_int_equal(q, 2);
    assert_int_equal(apg_rcmd_ext_i64(&g_cmd, "g", &born), APG_OK);
    assert_true(born == 1700000000123LL);
    assert_int_equal(apg_rcmd_ext_i32(&g_cmd, "g", &q), APG_EINVAL);
    assert_false(apg_rcmd_ext_bool(&g_cmd, "k", true));
    assert_true(apg_rcmd_ext_bool(&g_cmd, "m", false));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_peek),
        cmocka_unit_test(test_json_route_request),
        cmocka_unit_test(test_json_response_with_body),
        cmocka_unit_test(test_json_any_order_whitespace_unknown),
        cmocka_unit_test(test_json_defaults_and_nulls),
        cmocka_unit_test(test_json_ext_value_types),
        cmocka_unit_test(test_json_escapes),
        cmocka_unit_test(test_json_long_string_positions),
        cmocka_unit_test(test_json_language),
        cmocka_unit_test(test_json_int_ranges),
        cmocka_unit_test(test_json_malformed),
        cmocka_unit_test(test_json_nesting),
        cmocka_unit_test(test_json_too_many_ext),
        cmocka_unit_test(test_json_duplicates_last_wins),
        cmocka_unit_test(test_json_send_v2),
        cmocka_unit_test(test_json_alions_send),
        cmocka_unit_test(test_decode_frame_errors),
        cmocka_unit_test(test_decode_scratch_too_small),
        cmocka_unit_test(test_decode_header_length_bounds),
        cmocka_unit_test(test_bin_decode),
        cmocka_unit_test(test_bin_signed_and_empty),
        cmocka_unit_test(test_bin_malformed),
        cmocka_unit_test(test_bin_nul_bytes),
        cmocka_unit_test(test_bin_too_many_ext),
        cmocka_unit_test(test_encode_json_exact),
        cmocka_unit_test(test_encode_json_escaping),
        cmocka_unit_test(test_encode_bin_exact),
        cmocka_unit_test(test_encode_bin_range),
        cmocka_unit_test(test_round_trip_both),
        cmocka_unit_test(test_init_response),
        cmocka_unit_test(test_ext_getters),
        cmocka_unit_test(test_seed_corpus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* broker/acl: SHA-1 / HMAC-SHA1 / Base64 vectors, the address patterns,
 * plain_acl.yml parsing (good and bad files) and the per-request decision. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "acl/acl.h"
#include "common/sha1.h"
#include "protocol/rcode.h"
#include "protocol/remoting.h"

static void hex(const uint8_t *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
}

static void test_sha1_vectors(void **st)
{
    (void)st;
    struct {
        const char *in;
        const char *want;
    } v[] = {
        {"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"},
        {"", "da39a3ee5e6b4b0d3255bfef95601890afd80709"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "84983e441c3bd26ebaae4aa1f95129e5e54670f1"},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        struct apg_sha1 s;
        uint8_t d[20];
        char h[41];
        apg_sha1_init(&s);
        /* fed one byte at a time, to cross block boundaries piecewise */
        for (const char *p = v[i].in; *p; p++)
            apg_sha1_update(&s, p, 1);
        apg_sha1_final(&s, d);
        hex(d, 20, h);
        assert_string_equal(h, v[i].want);
    }
    /* a million 'a' */
    struct apg_sha1 s;
    uint8_t d[20];
    char h[41], a[1000];
    memset(a, 'a', sizeof(a));
    apg_sha1_init(&s);
    for (int i = 0; i < 1000; i++)
        apg_sha1_update(&s, a, sizeof(a));
    apg_sha1_final(&s, d);
    hex(d, 20, h);
    assert_string_equal(h, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
}

/* Both compressions agree on random input of every length up to 300. */
static void test_sha1_impls_agree(void **st)
{
    (void)st;
    uint8_t buf[300], a[20], b[20];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof(buf); i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 16);
    }
    printf("sha1 implementation: %s\n", apg_sha1_impl());
    for (size_t n = 0; n <= sizeof(buf); n++) {
        struct apg_sha1 s;
        apg_sha1_use_portable(0);
        apg_sha1_init(&s);
        apg_sha1_update(&s, buf, n);
        apg_sha1_final(&s, a);
        apg_sha1_use_portable(1);
        apg_sha1_init(&s);
        apg_sha1_update(&s, buf, n);
        apg_sha1_final(&s, b);
        assert_memory_equal(a, b, 20);
    }
    apg_sha1_use_portable(0);
}

static void hmac_hex(const void *key, size_t klen, const char *msg, char h[41])
{
    struct apg_hmac_key k;
    struct apg_sha1 s;
    uint8_t d[20];
    apg_hmac_sha1_key(&k, key, klen);
    apg_hmac_sha1_begin(&k, &s);
    apg_sha1_update(&s, msg, strlen(msg));
    apg_hmac_sha1_final(&k, &s, d);
    hex(d, 20, h);
}

static void test_hmac_rfc2202(void **st)
{
    (void)st;
    char h[41];
    hmac_hex("Jefe", 4, "what do ya want for nothing?", h);
    assert_string_equal(h, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    /* an 80-byte key is hashed first */
    uint8_t key[80];
    memset(key, 0xaa, sizeof(key));
    hmac_hex(key, sizeof(key), "Test Using Larger Than Block-Size Key - Hash Key First", h);
    assert_string_equal(h, "aa4ae5e15272d00e95705637ce8a3b55ed402112");
    char b[16];
    apg_base64_encode((const uint8_t *)"fo", 2, b);
    assert_string_equal(b, "Zm8=");
    apg_base64_encode((const uint8_t *)"foob", 4, b);
    assert_string_equal(b, "Zm9vYg==");
    apg_base64_encode((const uint8_t *)"foobar", 6, b);
    assert_string_equal(b, "Zm9vYmFy");
}

static bool match(const char *pat, const char *peer)
{
    struct apg_acl_addr a;
    char err[200];
    assert_int_equal(apg_acl_addr_parse(pat, &a, err, sizeof(err)), APG_OK);
    uint8_t ip[16];
    bool ok = apg_acl_peer_parse(peer, ip) && apg_acl_addr_match(&a, ip);
    apg_acl_addr_free(&a);
    return ok;
}

static bool parses(const char *pat)
{
    struct apg_acl_addr a;
    char err[200];
    apg_err_t e = apg_acl_addr_parse(pat, &a, err, sizeof(err));
    apg_acl_addr_free(&a);
    return e == APG_OK;
}

static void test_addr_patterns(void **st)
{
    (void)st;
    assert_true(match("192.168.1.*", "192.168.1.77:5000"));
    assert_false(match("192.168.1.*", "192.168.10.7:5000"));
    assert_true(match("192.168.*.*", "192.168.200.3:1"));
    assert_false(match("192.168.*.*", "192.169.0.3:1"));
    assert_true(match("192.168.1.1-100", "192.168.1.100:1"));
    assert_false(match("192.168.1.1-100", "192.168.1.101:1"));
    assert_false(match("192.168.1.1-100", "192.168.1.0:1"));
    assert_true(match("192.168.1.{1,2,3}", "192.168.1.2:9"));
    assert_false(match("192.168.1.{1,2,3}", "192.168.1.4:9"));
    assert_true(match("10.0.0.1,10.0.0.2", "10.0.0.2:9"));
    assert_false(match("10.0.0.1,10.0.0.2", "10.0.0.3:9"));
    assert_true(match("10.0.0.1", "10.0.0.1:9"));
    assert_true(match("*", "8.8.8.8:53"));
    assert_true(match("*.*.*.*", "[::1]:53"));
    assert_false(match("", "10.0.0.1:9"));
    assert_true(match("::1", "[::1]:9"));
    assert_true(match("::1", "::1:9"));
    assert_true(match("127.0.0.1", "::ffff:127.0.0.1:9"));
    assert_false(parses("192.168.1.300"));
    assert_false(parses("192.168.1.5-2"));
    assert_false(parses("192.168.*"));
    assert_false(parses("fe80::*"));
    assert_false(parses("hello"));
    assert_false(parses("10.0.0.{1,x}"));
    assert_false(parses("*.168.1.1"));
}

static const char good_yml[] = "globalWhiteRemoteAddresses:\n"
                               "  - 10.10.103.*\n"
                               "accounts:\n"
                               "  - accessKey: rocketmq2\n"
                               "    secretKey: 12345678\n"
                               "    whiteRemoteAddress:\n"
                               "    admin: false\n"
                               "    defaultTopicPerm: DENY\n"
                               "    defaultGroupPerm: SUB\n"
                               "    topicPerms:\n"
                               "      - T=PUB|SUB\n"
                               "      - topicB=SUB\n"
                               "    groupPerms: [groupA=DENY]\n"
                               "  - accessKey: \"adminKey\"\n"
                               "    secretKey: 'adminSecret'\n"
                               "    whiteRemoteAddress: 192.168.1.*\n"
                               "    admin: true\n";

static struct apg_acl_rules *parse_ok(const char *y)
{
    struct apg_acl_rules *r = NULL;
    char err[300];
    apg_err_t e = apg_acl_rules_parse((const uint8_t *)y, strlen(y), &r, err, sizeof(err));
    if (e)
        fail_msg("parse failed: %s", err);
    return r;
}

static void parse_bad(const char *y, const char *want)
{
    struct apg_acl_rules *r = NULL;
    char err[300] = "";
    assert_int_not_equal(apg_acl_rules_parse((const uint8_t *)y, strlen(y), &r, err, sizeof(err)),
                         APG_OK);
    assert_null(r);
    if (!strstr(err, want))
        fail_msg("error '%s' lacks '%s'", err, want);
    assert_null(strstr(err, "12345678")); /* never quotes a secret */
}

static void test_parse(void **st)
{
    (void)st;
    struct apg_acl_rules *r = parse_ok(good_yml);
    assert_int_equal(apg_acl_rules_accounts(r), 2);
    apg_acl_rules_free(r);
    r = parse_ok("");
    assert_int_equal(apg_acl_rules_accounts(r), 0);
    apg_acl_rules_free(r);
    parse_bad("accounts: [\n", "not valid YAML");
    parse_bad("- a\n- b\n", "must be a mapping");
    parse_bad("accounts:\n  - accessKey: short\n    secretKey: 12345678\n", "accessKey");
    parse_bad("accounts:\n  - accessKey: rocketmq2\n    secretKey: 123\n", "secretKey");
    parse_bad("accounts:\n  - accessKey: rocketmq2\n    secretKey: 12345678\n    topicPerms: "
              "[topicA]\n",
              "topicA");
    parse_bad("accounts:\n  - accessKey: rocketmq2\n    secretKey: 12345678\n"
              "    whiteRemoteAddress: 1.2.3.999\n",
              "line 4");
    parse_bad("accounts:\n  - accessKey: rocketmq2\n    secretKey: 12345678\n"
              "  - accessKey: rocketmq2\n    secretKey: 12345678\n",
              "twice");
    parse_bad("accounts:\n  - accessKey: rocketmq2\n    secretKey: 12345678\n    admin: maybe\n",
              "admin");
    parse_bad("accounts: 5\n", "list");
}

/* A signed request: ext fields from kv pairs, then AccessKey, Signature. */
struct req {
    struct apg_rcmd r;
    char sig[32];
};

static void req_make(struct req *q, int32_t code, const char *const *kv, const char *ak,
                     const char *secret, const char *body)
{
    memset(q, 0, sizeof(*q));
    apg_rcmd_init_request(&q->r, code, 1, APG_SER_ROCKETMQ);
    for (int i = 0; kv && kv[i]; i += 2)
        apg_rcmd_ext_add(&q->r, kv[i], kv[i + 1]);
    if (body) {
        q->r.body = (const uint8_t *)body;
        q->r.body_len = (uint32_t)strlen(body);
    }
    if (ak)
        apg_rcmd_ext_add(&q->r, "AccessKey", ak);
    if (secret) {
        apg_acl_sign(&q->r, secret, q->sig);
        apg_rcmd_ext_add(&q->r, "Signature", q->sig);
    }
}

static void test_sign_vector(void **st)
{
    (void)st;
    /* Base64(HMAC-SHA1("12345678", "rocketmq2" "x" "T" "hello")): values in
     * key order AccessKey < b < topic, then the body; computed with
     * Python's hmac module. */
    const char *kv[] = {"topic", "T", "b", "x", NULL};
    struct req q;
    req_make(&q, APG_REQ_SEND_MESSAGE, kv, "rocketmq2", "12345678", "hello");
    assert_string_equal(q.sig, "R0UGsB/E1y77qaTRbjPto3VqcQI=");
}

static enum apg_acl_refusal check(const struct apg_acl_rules *r, struct req *q, const char *peer)
{
    char remark[320];
    return apg_acl_rules_check(r, APG_ACL_TABLE_BROKER, &q->r, peer, remark, sizeof(remark));
}

static void test_decisions(void **st)
{
    (void)st;
    struct apg_acl_rules *r = parse_ok(good_yml);
    const char *peer = "127.0.0.1:4000";
    struct req q;
    const char *send_t[] = {"a", "PG", "b", "T", NULL};
    const char *send_b[] = {"a", "PG", "b", "topicB", NULL};
    const char *pull_ok[] = {"consumerGroup", "anyGroup", "topic", "T", NULL};
    const char *pull_deny[] = {"consumerGroup", "groupA", "topic", "T", NULL};

    req_make(&q, APG_REQ_SEND_MESSAGE_V2, send_t, NULL, NULL, "m");
    assert_int_equal(check(r, &q, peer), APG_ACL_R_NO_ACCESS_KEY);
    assert_int_equal(check(r, &q, "10.10.103.9:1"), APG_ACL_OK); /* global white list */
    req_make(&q, APG_REQ_SEND_MESSAGE_V2, send_t, "nobodyxx", "12345678", "m");
    assert_int_equal(check(r, &q, peer), APG_ACL_R_UNKNOWN_ACCESS_KEY);
    req_make(&q, APG_REQ_SEND_MESSAGE_V2, send_t, "rocketmq2", "wrongsecret", "m");
    assert_int_equal(check(r, &q, peer), APG_ACL_R_SIGNATURE);
    req_make(&q, APG_REQ_SEND_MESSAGE_V2, send_t, "rocketmq2", "12345678", "m");
    assert_int_equal(check(r, &q, peer), APG_ACL_OK);
    q.r.body = (const uint8_t *)"M"; /* body changed after signing */
    assert_int_equal(check(r, &q, peer), APG_ACL_R_SIGNATURE);
    req_make(&q, APG_REQ_SEND_MESSAGE_V2, send_b, "rocketmq2", "12345678", "m");
    assert_int_equal(check(r, &q, peer), APG_ACL_R_NO_PERM);
    req_make(&q, APG_REQ_PULL_MESSAGE, pull_ok, "rocketmq2", "12345678", NULL);
    assert_int_equal(check(r, &q, peer), APG_ACL_OK);
    req_make(&q, APG_REQ_PULL_MESSAGE, pull_deny, "rocketmq2", "12345678", NULL);
    assert_int_equal(check(r, &q, peer), APG_ACL_R_NO_PERM);
    req_make(&q, APG_REQ_UPDATE_AND_CREATE_TOPIC, send_t, "rocketmq2", "12345678", NULL);
    assert_int_equal(check(r, &q, peer), APG_ACL_R_NEED_ADMIN);
    req_make(&q, APG_REQ_GET_BROKER_RUNTIME_INFO, NULL, "rocketmq2", "12345678", NULL);
    assert_int_equal(check(r, &q, peer), APG_ACL_R_NEED_ADMIN);
    req_make(&q, APG_REQ_GET_BROKER_RUNTIME_INFO, NULL, "adminKey", "adminSecret", NULL);
    assert_int_equal(check(r, &q, peer), APG_ACL_OK);
    req_make(&q, APG_REQ_GET_BROKER_RUNTIME_INFO, NULL, "adminKey", "bad-secret", NULL);
    assert_int_equal(check(r, &q, peer), APG_ACL_R_SIGNATURE);
    assert_int_equal(check(r, &q, "192.168.1.20:7"), APG_ACL_OK); /* account white list */
    /* heartbeat: every group and subscribed topic */
    const char *hb_ok = "{\"clientID\":\"c\",\"consumerDataSet\":[{\"groupName\":\"g1\","
                        "\"subscriptionDataSet\":[{\"topic\":\"T\"}]}],\"producerDataSet\":[]}";
    const char *hb_bad = "{\"clientID\":\"c\",\"consumerDataSet\":[{\"groupName\":\"g1\","
                         "\"subscriptionDataSet\":[{\"topic\":\"other\"}]}]}";
    req_make(&q, APG_REQ_HEART_BEAT, NULL, "rocketmq2", "12345678", hb_ok);
    assert_int_equal(check(r, &q, peer), APG_ACL_OK);
    req_make(&q, APG_REQ_HEART_BEAT, NULL, "rocketmq2", "12345678", hb_bad);
    assert_int_equal(check(r, &q, peer), APG_ACL_R_NO_PERM);
    /* a repeated field is refused */
    const char *dup[] = {"b", "T", "b", "T", NULL};
    req_make(&q, APG_REQ_SEND_MESSAGE_V2, dup, "rocketmq2", "12345678", NULL);
    assert_int_equal(check(r, &q, peer), APG_ACL_R_BAD_REQUEST);
    apg_acl_rules_free(r);
}

static enum apg_acl_refusal check_ns(const struct apg_acl_rules *r, struct req *q, const char *peer)
{
    char remark[320];
    return apg_acl_rules_check(r, APG_ACL_TABLE_NAMESRV, &q->r, peer, remark, sizeof(remark));
}

/* The NameServer's table: reads need any valid signature, the rest admin. */
static void test_namesrv_table(void **st)
{
    (void)st;
    struct apg_acl_rules *r = parse_ok(good_yml);
    const char *peer = "127.0.0.1:4000";
    const char *route[] = {"topic", "T", NULL};
    struct req q;
    req_make(&q, APG_REQ_GET_ROUTEINFO_BY_TOPIC, route, NULL, NULL, NULL);
    assert_int_equal(check_ns(r, &q, peer), APG_ACL_R_NO_ACCESS_KEY);
    req_make(&q, APG_REQ_GET_ROUTEINFO_BY_TOPIC, route, "rocketmq2", "wrongsecret", NULL);
    assert_int_equal(check_ns(r, &q, peer), APG_ACL_R_SIGNATURE);
    req_make(&q, APG_REQ_GET_ROUTEINFO_BY_TOPIC, route, "rocketmq2", "12345678", NULL);
    assert_int_equal(check_ns(r, &q, peer), APG_ACL_OK);
    static const int32_t admin_codes[] = {
        APG_REQ_REGISTER_BROKER,         APG_REQ_UNREGISTER_BROKER,
        APG_REQ_BROKER_HEARTBEAT,        APG_REQ_QUERY_DATA_VERSION,
        APG_REQ_DELETE_TOPIC_IN_NAMESRV, APG_REQ_PUT_KV_CONFIG,
        APG_REQ_DELETE_KV_CONFIG,        APG_REQ_UPDATE_NAMESRV_CONFIG,
        APG_REQ_GET_NAMESRV_CONFIG,      APG_REQ_WIPE_WRITE_PERM_OF_BROKER};
    for (size_t i = 0; i < sizeof(admin_codes) / sizeof(admin_codes[0]); i++) {
        req_make(&q, admin_codes[i], route, "rocketmq2", "12345678", NULL);
        assert_int_equal(check_ns(r, &q, peer), APG_ACL_R_NEED_ADMIN);
        req_make(&q, admin_codes[i], route, "adminKey", "adminSecret", NULL);
        assert_int_equal(check_ns(r, &q, peer), APG_ACL_OK);
        assert_int_equal(check_ns(r, &q, "10.10.103.9:1"), APG_ACL_OK); /* global white list */
    }
    /* the broker's client rows do not leak into the NameServer's table */
    const char *pull[] = {"consumerGroup", "anyGroup", "topic", "T", NULL};
    req_make(&q, APG_REQ_PULL_MESSAGE, pull, "rocketmq2", "12345678", NULL);
    assert_int_equal(check(r, &q, peer), APG_ACL_OK);
    assert_int_equal(check_ns(r, &q, peer), APG_ACL_R_NEED_ADMIN);
    apg_acl_rules_free(r);
}

/* The gRPC form: a raw HMAC-SHA1 of the x-mq-date-time value, and the
 * resources the call names, under the same rules. */
static void test_mac_decisions(void **st)
{
    (void)st;
    struct apg_acl_rules *r = parse_ok(good_yml);
    const char *peer = "127.0.0.1:4000", *dt = "20230913T063059Z";
    struct apg_hmac_key k;
    struct apg_sha1 s;
    uint8_t mac[APG_SHA1_LEN];
    apg_hmac_sha1_key(&k, "12345678", 8);
    apg_hmac_sha1_begin(&k, &s);
    apg_sha1_update(&s, dt, strlen(dt));
    apg_hmac_sha1_final(&k, &s, mac);
    char h[41];
    hex(mac, sizeof mac, h);
    /* Python: hmac.new(b"12345678", b"20230913T063059Z", "sha1").hexdigest() */
    assert_string_equal(h, "df5d066cdbca043fd04ad673b148268450ff85d6");
    struct apg_acl_need pub_t = {"T", false, APG_ACL_PUB}, pub_b = {"topicB", false, APG_ACL_PUB},
                        any_b = {"topicB", false, APG_ACL_ANY},
                        sub_ga = {"groupA", true, APG_ACL_SUB};
    struct apg_acl_mac m = {"rocketmq2", mac, dt, strlen(dt), "SendMessage", &pub_t, 1};
    char remark[320];
    assert_int_equal(apg_acl_rules_check_mac(r, peer, &m, remark, sizeof remark), APG_ACL_OK);
    m.am_needs = &pub_b;
    assert_int_equal(apg_acl_rules_check_mac(r, peer, &m, remark, sizeof remark),
                     APG_ACL_R_NO_PERM);
    assert_non_null(strstr(remark, "no PUB permission on topic 'topicB'"));
    m.am_needs = &any_b;
    assert_int_equal(apg_acl_rules_check_mac(r, peer, &m, remark, sizeof remark), APG_ACL_OK);
    m.am_needs = &sub_ga;
    assert_int_equal(apg_acl_rules_check_mac(r, peer, &m, remark, sizeof remark),
                     APG_ACL_R_NO_PERM);
    m.am_needs = &pub_t;
    m.am_content_len--; /* another date-time than the one signed */
    assert_int_equal(apg_acl_rules_check_mac(r, peer, &m, remark, sizeof remark),
                     APG_ACL_R_SIGNATURE);
    m.am_content_len++;
    m.am_mac = NULL;
    assert_int_equal(apg_acl_rules_check_mac(r, peer, &m, remark, sizeof remark),
                     APG_ACL_R_SIGNATURE);
    m.am_ak = NULL;
    assert_int_equal(apg_acl_rules_check_mac(r, peer, &m, remark, sizeof remark),
                     APG_ACL_R_NO_ACCESS_KEY);
    assert_non_null(strstr(remark, "SendMessage"));
    assert_int_equal(apg_acl_rules_check_mac(r, "10.10.103.9:1", &m, remark, sizeof remark),
                     APG_ACL_OK);
    m.am_ak = "nobodyxx";
    assert_int_equal(apg_acl_rules_check_mac(r, peer, &m, remark, sizeof remark),
                     APG_ACL_R_UNKNOWN_ACCESS_KEY);
    apg_acl_rules_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha1_vectors),  cmocka_unit_test(test_sha1_impls_agree),
        cmocka_unit_test(test_hmac_rfc2202),  cmocka_unit_test(test_addr_patterns),
        cmocka_unit_test(test_parse),         cmocka_unit_test(test_sign_vector),
        cmocka_unit_test(test_decisions),     cmocka_unit_test(test_namesrv_table),
        cmocka_unit_test(test_mac_decisions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* common/tls: first-byte detection, context errors, and a client and a
 * server session talking through memory only (the certificates are made
 * with the openssl command in a temporary directory). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/tls.h"

static char dir[64];
static char ca[128], cert[128], key[128];

static int make_certs(void **st)
{
    (void)st;
    snprintf(dir, sizeof(dir), "/tmp/apg-tls-unit-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
    snprintf(cert, sizeof(cert), "%s/server.pem", dir);
    snprintf(key, sizeof(key), "%s/server.key", dir);
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "cd %s && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem "
             "-days 1 -subj /CN=unit-ca >/dev/null 2>&1 && "
             "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr "
             "-subj /CN=localhost >/dev/null 2>&1 && "
             "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > ext.cnf && "
             "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
             "-out server.pem -days 1 -extfile ext.cnf >/dev/null 2>&1",
             dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int remove_certs(void **st)
{
    (void)st;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_sniff(void **st)
{
    (void)st;
    const uint8_t hello[] = {0x16, 0x03, 0x01, 0x00, 0xc8};
    const uint8_t frame[] = {0x00, 0x00, 0x00, 0x20, 0x01, 0x00, 0x00, 0x10};
    const uint8_t alert[] = {0x15, 0x03, 0x03};
    const uint8_t http[] = "GET / HTTP/1.1";
    assert_int_equal(apg_tls_sniff(hello, 0), APG_TLS_SNIFF_MORE);
    assert_int_equal(apg_tls_sniff(hello, 1), APG_TLS_SNIFF_TLS);
    assert_int_equal(apg_tls_sniff(hello, sizeof(hello)), APG_TLS_SNIFF_TLS);
    assert_int_equal(apg_tls_sniff(frame, sizeof(frame)), APG_TLS_SNIFF_PLAIN);
    assert_int_equal(apg_tls_sniff(alert, sizeof(alert)), APG_TLS_SNIFF_PLAIN);
    assert_int_equal(apg_tls_sniff(http, 3), APG_TLS_SNIFF_PLAIN);
}

static void test_ctx_errors(void **st)
{
    (void)st;
    char err[512];
    struct apg_tls_ctx *ctx = NULL;
    struct apg_tls_ctx_opts o = {.server = true};
    assert_int_equal(apg_tls_ctx_new(&o, &ctx, err, sizeof(err)), APG_ECONFIG);
    assert_non_null(strstr(err, "tls.server.certPath"));
    o.cert_path = "/nonexistent/server.pem";
    o.key_path = key;
    assert_int_equal(apg_tls_ctx_new(&o, &ctx, err, sizeof(err)), APG_ECONFIG);
    assert_non_null(strstr(err, "/nonexistent/server.pem"));
    o.cert_path = ca; /* another certificate than the key's */
    assert_int_equal(apg_tls_ctx_new(&o, &ctx, err, sizeof(err)), APG_ECONFIG);
    assert_true(strstr(err, "does not match") || strstr(err, "mismatch"));
    o.cert_path = cert;
    o.client_auth = APG_TLS_AUTH_REQUIRE; /* without a CA for client certificates */
    assert_int_equal(apg_tls_ctx_new(&o, &ctx, err, sizeof(err)), APG_ECONFIG);
    assert_non_null(strstr(err, "trustCertPath"));
    assert_null(ctx);
}

/* Moves every byte one side has to send to the other, step bytes at a
 * time (0 = all at once), and runs both sides' reads. */
static void shuttle(struct apg_tls *from, struct apg_tls *to, size_t step, struct apg_buf *plain)
{
    struct apg_buf wire = APG_BUF_INIT;
    assert_int_equal(apg_tls_take_output(from, &wire), APG_OK);
    size_t off = 0;
    uint8_t tmp[4096];
    char err[256];
    while (off < wire.b_len) {
        size_t n = step && wire.b_len - off > step ? step : wire.b_len - off;
        assert_int_equal(apg_tls_feed(to, wire.b_data + off, n), APG_OK);
        off += n;
        ssize_t r;
        while ((r = apg_tls_read(to, tmp, sizeof(tmp), err, sizeof(err))) > 0)
            if (plain)
                apg_buf_append(plain, tmp, (size_t)r);
        assert_int_equal(r, 0);
    }
    apg_buf_free(&wire);
}

static void handshake(struct apg_tls *cli, struct apg_tls *srv, size_t step)
{
    char err[256];
    uint8_t tmp[16];
    assert_int_equal(apg_tls_read(cli, tmp, sizeof(tmp), err, sizeof(err)), 0); /* ClientHello */
    for (int i = 0; i < 6 && !(apg_tls_handshake_done(cli) && apg_tls_handshake_done(srv)); i++) {
        shuttle(cli, srv, step, NULL);
        shuttle(srv, cli, step, NULL);
    }
    assert_true(apg_tls_handshake_done(cli));
    assert_true(apg_tls_handshake_done(srv));
}

static void pair(struct apg_tls_ctx **sctx, struct apg_tls_ctx **cctx, const char *trust)
{
    char err[512];
    struct apg_tls_ctx_opts so = {.server = true, .cert_path = cert, .key_path = key};
    struct apg_tls_ctx_opts co = {.trust_path = trust, .verify_server = trust != NULL};
    assert_int_equal(apg_tls_ctx_new(&so, sctx, err, sizeof(err)), APG_OK);
    assert_int_equal(apg_tls_ctx_new(&co, cctx, err, sizeof(err)), APG_OK);
}

static void test_session_round_trip(void **st)
{
    (void)st;
    struct apg_tls_ctx *sctx, *cctx;
    pair(&sctx, &cctx, ca);
    for (size_t step = 0; step <= 1; step++) { /* all at once, then byte by byte */
        struct apg_tls *srv = apg_tls_new(sctx, NULL);
        struct apg_tls *cli = apg_tls_new(cctx, "127.0.0.1");
        handshake(cli, srv, step);
        char err[256];
        uint8_t msg[70000];
        for (size_t i = 0; i < sizeof(msg); i++)
            msg[i] = (uint8_t)(i * 7);
        assert_int_equal(apg_tls_write(cli, msg, sizeof(msg), err, sizeof(err)), APG_OK);
        struct apg_buf got = APG_BUF_INIT;
        shuttle(cli, srv, step ? 1000 : 0, &got);
        assert_int_equal(got.b_len, sizeof(msg));
        assert_memory_equal(got.b_data, msg, sizeof(msg));
        apg_buf_reset(&got);
        assert_int_equal(apg_tls_write(srv, msg, 100, err, sizeof(err)), APG_OK);
        shuttle(srv, cli, 0, &got);
        assert_int_equal(got.b_len, 100);
        apg_buf_free(&got);
        apg_tls_free(cli);
        apg_tls_free(srv);
    }
    apg_tls_ctx_free(sctx);
    apg_tls_ctx_free(cctx);
}

static void test_session_refusals(void **st)
{
    (void)st;
    struct apg_tls_ctx *sctx, *cctx;
    pair(&sctx, &cctx, ca);
    char err[256];
    uint8_t tmp[64];
    /* The server's certificate does not name the host dialled. */
    struct apg_tls *srv = apg_tls_new(sctx, NULL);
    struct apg_tls *cli = apg_tls_new(cctx, "10.9.8.7");
    assert_int_equal(apg_tls_read(cli, tmp, sizeof(tmp), err, sizeof(err)), 0);
    shuttle(cli, srv, 0, NULL);
    struct apg_buf wire = APG_BUF_INIT;
    apg_tls_take_output(srv, &wire);
    apg_tls_feed(cli, wire.b_data, wire.b_len);
    assert_int_equal(apg_tls_read(cli, tmp, sizeof(tmp), err, sizeof(err)), APG_EPROTO);
    assert_non_null(strstr(err, "certificate"));
    apg_tls_free(cli);
    apg_tls_free(srv);
    /* Garbage after a record header: the server refuses it. */
    srv = apg_tls_new(sctx, NULL);
    const uint8_t junk[] = {0x16, 0x03, 0x01, 0x00, 0x05, 'h', 'e', 'l', 'l', 'o'};
    apg_tls_feed(srv, junk, sizeof(junk));
    assert_int_equal(apg_tls_read(srv, tmp, sizeof(tmp), err, sizeof(err)), APG_EPROTO);
    assert_non_null(strstr(err, "handshake"));
    apg_tls_free(srv);
    apg_buf_free(&wire);
    apg_tls_ctx_free(sctx);
    apg_tls_ctx_free(cctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sniff),
        cmocka_unit_test(test_ctx_errors),
        cmocka_unit_test(test_session_round_trip),
        cmocka_unit_test(test_session_refusals),
    };
    return cmocka_run_group_tests(tests, make_certs, remove_certs);
}

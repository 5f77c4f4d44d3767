/* TLS session micro-benchmark: what one request/response costs in
 * common/tls.c, with no socket and no other thread.
 *
 * A client and a server session (certificates made with the openssl
 * command in a temporary directory) exchange a request of REQ bytes and a
 * response of 120 bytes (a send answer's size), N times, through memory:
 * encrypt, move the ciphertext, decrypt, both ways. Reports ns per round
 * trip in CPU time (not wall-clock: the figure holds on a busy machine),
 * i.e. the CPU TLS adds to one sync send, both ends together.
 * Usage: bench_tls [N] [REQ] (defaults 200,000 and 1,100: a 1 KiB body
 * plus its remoting header). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/tls.h"

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Moves from's output to `to` and reads all of it; the plaintext bytes. */
static size_t move(struct apg_tls *from, struct apg_tls *to, struct apg_buf *wire, uint8_t *tmp,
                   size_t cap)
{
    char err[256];
    apg_buf_reset(wire);
    apg_tls_take_output(from, wire);
    apg_tls_feed(to, wire->b_data, wire->b_len);
    size_t got = 0;
    ssize_t r;
    while ((r = apg_tls_read(to, tmp, cap, err, sizeof(err))) > 0)
        got += (size_t)r;
    if (r < 0) {
        fprintf(stderr, "bench_tls: %s\n", err);
        exit(1);
    }
    return got;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 200000;
    size_t req = argc > 2 ? (size_t)atol(argv[2]) : 1100;
    char dir[] = "/tmp/apg-bench-tls-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "cd %s && openssl req -x509 -newkey rsa:2048 -nodes -keyout k.pem -out c.pem "
             "-days 1 -subj /CN=localhost >/dev/null 2>&1",
             dir);
    if (system(cmd) != 0)
        return 1;
    char cert[128], key[128], err[512];
    snprintf(cert, sizeof(cert), "%s/c.pem", dir);
    snprintf(key, sizeof(key), "%s/k.pem", dir);
    struct apg_tls_ctx *sctx, *cctx;
    struct apg_tls_ctx_opts so = {.server = true, .cert_path = cert, .key_path = key};
    struct apg_tls_ctx_opts co = {.server = false};
    if (apg_tls_ctx_new(&so, &sctx, err, sizeof(err)) ||
        apg_tls_ctx_new(&co, &cctx, err, sizeof(err))) {
        fprintf(stderr, "bench_tls: %s\n", err);
        return 1;
    }
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    struct apg_tls *s = apg_tls_new(sctx, NULL), *c = apg_tls_new(cctx, NULL);
    struct apg_buf wire = APG_BUF_INIT;
    static uint8_t tmp[65536], body[65536];
    memset(body, 'x', sizeof(body));
    move(c, s, &wire, tmp, 0); /* nothing yet: drives the ClientHello */
    apg_tls_read(c, tmp, 0, err, sizeof(err));
    for (int i = 0; i < 6 && !(apg_tls_handshake_done(c) && apg_tls_handshake_done(s)); i++) {
        move(c, s, &wire, tmp, sizeof(tmp));
        move(s, c, &wire, tmp, sizeof(tmp));
    }
    double t0 = now_ns();
    for (long i = 0; i < n; i++) {
        apg_tls_write(c, body, req, err, sizeof(err));
        if (move(c, s, &wire, tmp, sizeof(tmp)) != req)
            return 1;
        apg_tls_write(s, body, 120, err, sizeof(err));
        if (move(s, c, &wire, tmp, sizeof(tmp)) != 120)
            return 1;
    }
    double ns = (now_ns() - t0) / (double)n;
    printf("TLS round trip (%zu-byte request, 120-byte response), both ends: %.0f ns\n", req, ns);
    apg_buf_free(&wire);
    apg_tls_free(c);
    apg_tls_free(s);
    apg_tls_ctx_free(sctx);
    apg_tls_ctx_free(cctx);
    return 0;
}

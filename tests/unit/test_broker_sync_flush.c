/* A SYNC_FLUSH send is acknowledged only once its flush succeeded.
 *
 * The broker runs in this process (apg_broker_start on a fresh directory,
 * flushDiskType=SYNC_FLUSH) and the test speaks the remoting protocol to it
 * over a blocking TCP socket. After one acknowledged send, the store's fault
 * gate (store_fault.h) makes the next msync fail with EIO: the send that
 * needs that flush must get an error, not SUCCESS, and so must every send
 * after it (a store whose flush failed accepts no more writes). A broker that
 * answered SUCCESS for a failed flush would acknowledge a message that a
 * power cut could lose. */
#define _XOPEN_SOURCE 700
#include <arpa/inet.h>
#include <ftw.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "broker/broker.h"
#include "broker/broker_rt.h"
#include "common/buf.h"
#include "common/config.h"
#include "protocol/remoting.h"
#include "store/store_fault.h"

#define SEND_MESSAGE_V2 310

static char g_err[256];

/* A TCP port that was free a moment ago. */
static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t l = sizeof(a);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &l), 0);
    close(s);
    return ntohs(a.sin_port);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    return remove(path);
}

static int connect_to(int port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(s, (struct sockaddr *)&a, sizeof(a)), 0);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return s;
}

static void read_full(int s, uint8_t *p, size_t n)
{
    while (n) {
        ssize_t r = read(s, p, n);
        if (r <= 0)
            fail_msg("connection closed or timed out waiting for a reply");
        p += r;
        n -= (size_t)r;
    }
}

/* Sends one SEND_MESSAGE_V2 to queue 0 of `topic` and returns the answer's
 * code (its remark in remark, if any). */
static int send_one(int s, int opaque, const char *topic, const char *body, char *remark,
                    size_t remark_len)
{
    struct apg_rcmd req;
    apg_rcmd_init_request(&req, SEND_MESSAGE_V2, opaque, APG_SER_JSON);
    char born[32];
    snprintf(born, sizeof(born), "%d", 1700000000 + opaque);
    const char *kv[][2] = {{"a", "PG_SYNC"}, {"b", topic}, {"c", "TBW102"}, {"d", "1"},
                           {"e", "0"},       {"f", "0"},   {"g", born},     {"h", "0"},
                           {"i", ""},        {"j", "0"},   {"k", "false"}};
    for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++)
        assert_int_equal(apg_rcmd_ext_add(&req, kv[i][0], kv[i][1]), APG_OK);
    struct apg_buf out = {0};
    assert_int_equal(apg_rcmd_encode(&req, (const uint8_t *)body, (uint32_t)strlen(body), &out),
                     APG_OK);
    assert_int_equal(write(s, out.b_data, out.b_len), (ssize_t)out.b_len);
    apg_buf_free(&out);

    uint8_t lw[4];
    read_full(s, lw, 4);
    size_t len = apg_be32(lw);
    assert_true(len >= 4 && len < (1u << 20));
    uint8_t *frame = malloc(len + 4);
    memcpy(frame, lw, 4);
    read_full(s, frame + 4, len);
    size_t need = apg_rcmd_scratch_need(len);
    char *scratch = malloc(need);
    struct apg_rcmd resp;
    assert_int_equal(apg_rcmd_decode(frame, len + 4, &resp, scratch, need, g_err, sizeof(g_err)),
                     APG_OK);
    assert_int_equal(resp.opaque, opaque);
    snprintf(remark, remark_len, "%s", resp.remark ? resp.remark : "");
    int code = resp.code;
    free(scratch);
    free(frame);
    return code;
}

static void test_failed_flush_is_not_acknowledged(void **state)
{
    (void)state;
    char dir[] = "/tmp/apogee-syncflush-XXXXXX";
    assert_non_null(mkdtemp(dir));
    int port = free_port();
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    struct apg_config *cfg = apg_config_new(APG_ROLE_BROKER);
    const char *set[][2] = {{"storePathRootDir", dir},          {"listenPort", portstr},
                            {"bindAddress", "127.0.0.1"},       {"brokerIP1", "127.0.0.1"},
                            {"allowLoopbackAdvertise", "true"}, {"namesrvAddr", ""},
                            {"flushDiskType", "SYNC_FLUSH"}};
    for (size_t i = 0; i < sizeof(set) / sizeof(set[0]); i++) {
        if (apg_config_set(cfg, set[i][0], set[i][1], APG_CFG_SRC_ARG, g_err, sizeof(g_err)))
            fail_msg("%s=%s: %s", set[i][0], set[i][1], g_err);
    }
    struct apg_broker *b = apg_broker_start(cfg, g_err, sizeof(g_err));
    if (!b)
        fail_msg("broker did not start: %s", g_err);
    int s = connect_to(port);
    char remark[512];

    assert_int_equal(send_one(s, 1, "SYNCF", "before", remark, sizeof(remark)), 0);

    apg_store_fault_arm();
    assert_int_equal(apg_store_fault_fail_next_fsync(b->br_store), APG_OK);
    int code = send_one(s, 2, "SYNCF", "flush fails", remark, sizeof(remark));
    if (code == 0)
        fail_msg("a send whose SYNC_FLUSH failed was answered SUCCESS");
    for (int i = 3; i < 8; i++) {
        code = send_one(s, i, "SYNCF", "after", remark, sizeof(remark));
        if (code == 0)
            fail_msg("send %d after a failed flush was answered SUCCESS", i);
    }
    close(s);
    apg_broker_stop(b);
    apg_config_free(cfg);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failed_flush_is_not_acknowledged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

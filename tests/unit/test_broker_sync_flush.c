/* A SYNC_FLUSH send is acknowledged only once its flush succeeded.
 *
 * The broker runs in this process (apg_broker_start on a fresh directory,
 * flushDiskType=SYNC_FLUSH) and the test speaks the remoting protocol to it
 * over a blocking TCP socket. After one acknowledged send, the store's fault
 * gate (store_fault.h) makes the next msync fail with EIO: the send that
 * needs that flush must get an error, not SUCCESS, and so must every send
 * after it (a store whose flush failed accepts no more writes). A broker that
 * answered SUCCESS for a failed flush would acknowledge a message that a
 * power cut could lose.
 *
 * With the flush stalled (the store's sync hook holds the flush thread),
 * sends past the 20,000 that may wait for the disk are refused at once with
 * SYSTEM_BUSY "[OVERLOAD]" instead of queueing without bound. */
#define _XOPEN_SOURCE 700
#include <arpa/inet.h>
#include <ftw.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
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

/* Appends one SEND_MESSAGE_V2 to queue 0 of `topic` to out. */
static void encode_send(struct apg_buf *out, int opaque, const char *topic, const char *body)
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
    assert_int_equal(apg_rcmd_encode(&req, (const uint8_t *)body, (uint32_t)strlen(body), out),
                     APG_OK);
}

static void write_all(int s, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(s, p, n);
        if (w <= 0)
            fail_msg("writing to the broker failed");
        p += w;
        n -= (size_t)w;
    }
}

/* Reads one answer: its code (the return), opaque and remark. */
static int read_reply(int s, int *opaque, char *remark, size_t remark_len)
{
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
    *opaque = resp.opaque;
    snprintf(remark, remark_len, "%s", resp.remark ? resp.remark : "");
    int code = resp.code;
    free(scratch);
    free(frame);
    return code;
}

/* Sends one SEND_MESSAGE_V2 to queue 0 of `topic` and returns the answer's
 * code (its remark in remark, if any). */
static int send_one(int s, int opaque, const char *topic, const char *body, char *remark,
                    size_t remark_len)
{
    struct apg_buf out = {0};
    encode_send(&out, opaque, topic, body);
    write_all(s, out.b_data, out.b_len);
    apg_buf_free(&out);
    int got;
    int code = read_reply(s, &got, remark, remark_len);
    assert_int_equal(got, opaque);
    return code;
}

/* A SYNC_FLUSH broker on a fresh directory that answers FLUSH_DISK_TIMEOUT
 * after flush_timeout ms, a connection to it, and one acknowledged send. */
struct fix {
    char f_dir[64];
    struct apg_config *f_cfg;
    struct apg_broker *f_b;
    int f_s;
};

static void fix_up(struct fix *f, const char *topic, const char *flush_timeout)
{
    snprintf(f->f_dir, sizeof(f->f_dir), "/tmp/apogee-syncflush-XXXXXX");
    assert_non_null(mkdtemp(f->f_dir));
    int port = free_port();
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    f->f_cfg = apg_config_new(APG_ROLE_BROKER);
    const char *set[][2] = {
        {"storePathRootDir", f->f_dir},     {"listenPort", portstr},
        {"bindAddress", "127.0.0.1"},       {"brokerIP1", "127.0.0.1"},
        {"allowLoopbackAdvertise", "true"}, {"namesrvAddr", ""},
        {"flushDiskType", "SYNC_FLUSH"},    {"syncFlushTimeout", flush_timeout}};
    for (size_t i = 0; i < sizeof(set) / sizeof(set[0]); i++) {
        if (apg_config_set(f->f_cfg, set[i][0], set[i][1], APG_CFG_SRC_ARG, g_err, sizeof(g_err)))
            fail_msg("%s=%s: %s", set[i][0], set[i][1], g_err);
    }
    f->f_b = apg_broker_start(f->f_cfg, g_err, sizeof(g_err));
    if (!f->f_b)
        fail_msg("broker did not start: %s", g_err);
    f->f_s = connect_to(port);
    char remark[512];
    assert_int_equal(send_one(f->f_s, 1, topic, "before", remark, sizeof(remark)), 0);
}

static void fix_down(struct fix *f)
{
    close(f->f_s);
    apg_broker_stop(f->f_b);
    apg_config_free(f->f_cfg);
    nftw(f->f_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void test_failed_flush_is_not_acknowledged(void **state)
{
    (void)state;
    struct fix f;
    fix_up(&f, "SYNCF", "5000");
    struct apg_broker *b = f.f_b;
    int s = f.f_s;
    char remark[512];

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
    fix_down(&f);
}

static atomic_bool g_stall;

/* The sync hook: holds the flush thread while g_stall is set, as a disk that
 * stopped answering would. */
static void stall_flush(void *ud, const struct apg_store_fault_sync *fs)
{
    (void)ud;
    (void)fs;
    const struct timespec ms = {0, 1000000};
    while (atomic_load(&g_stall))
        nanosleep(&ms, NULL);
}

#define SYNC_PENDING_MAX 20000 /* br_sync_pending_max */
#define OVER 50

static void test_sync_backlog_is_refused_at_once(void **state)
{
    (void)state;
    struct fix f;
    /* No FLUSH_DISK_TIMEOUT while the flush is held, however slow the build
     * (sanitizers) makes reading the 20,050 sends. */
    fix_up(&f, "SYNCB", "120000");
    int s = f.f_s;
    char remark[512];

    apg_store_fault_arm();
    atomic_store(&g_stall, true);
    assert_int_equal(apg_store_fault_on_sync(f.f_b->br_store, stall_flush, NULL), APG_OK);
    struct apg_buf out = {0};
    for (int i = 0; i < SYNC_PENDING_MAX + OVER; i++)
        encode_send(&out, 100 + i, "SYNCB", "waits for the disk");
    write_all(s, out.b_data, out.b_len);
    apg_buf_free(&out);

    /* Nothing can be acknowledged while the flush is held: the first answer
     * must be a refusal of a send past the limit, and it must not wait. */
    int opaque;
    int code = read_reply(s, &opaque, remark, sizeof(remark));
    if (code != 2 || !strstr(remark, "[OVERLOAD]"))
        fail_msg("first answer with the flush stalled: code %d \"%s\"; want SYSTEM_BUSY (2) "
                 "[OVERLOAD]",
                 code, remark);
    int busy = 1, ok = 0;
    atomic_store(&g_stall, false);
    for (int i = 1; i < SYNC_PENDING_MAX + OVER; i++) {
        code = read_reply(s, &opaque, remark, sizeof(remark));
        if (code == 0)
            ok++;
        else if (code == 2 && strstr(remark, "[OVERLOAD]"))
            busy++;
        else
            fail_msg("answer to send %d: code %d \"%s\"", opaque, code, remark);
    }
    assert_int_equal(busy, OVER);
    assert_int_equal(ok, SYNC_PENDING_MAX);
    fix_down(&f);
    assert_int_equal(apg_store_fault_on_sync(NULL, NULL, NULL), APG_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failed_flush_is_not_acknowledged),
        cmocka_unit_test(test_sync_backlog_is_refused_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

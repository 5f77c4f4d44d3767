/* Network layer: an in-process server on 127.0.0.1 port 0, driven with
 * plain blocking sockets, plus the outbound client against it.
 *
 * Request codes understood by the test handler:
 *   1 echo      reply now, same body, ext "n" copied back
 *   2 later     reply after ext "delay" ms (a uv timer on the loop)
 *   3 ask       server-initiated request 500 back to the client; the reply to
 *               3 carries the client's answer remark, or "timeout"/"closed"
 *   4 big       reply with a body of ext "size" bytes
 *   5 post      reply from another thread through apg_conn_post
 *
 * Two tests plug other tables into the same loops: a line codec (one
 * message per '\n', answered in capitals) and a byte-filter transport that
 * XORs every byte over TCP, as TLS will sit under the remoting framing. */
#include <arpa/inet.h>
#include <stdatomic.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
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
#include <sys/resource.h>

#include "common/buf.h"
#include "common/mem.h"
#include "net/net.h"
#include "net/net_int.h"

static atomic_int n_closed;
static atomic_int n_loop_started;

struct later {
    uv_timer_t t;
    struct apg_conn *c;
    struct apg_rcmd_copy *req;
};

static void later_closed(uv_handle_t *h)
{
    struct later *l = h->data;
    apg_rcmd_copy_free(l->req);
    apg_conn_unref(l->c);
    free(l);
}

static void later_fire(uv_timer_t *t)
{
    struct later *l = t->data;
    apg_conn_reply(l->c, &l->req->rc_cmd, 0, "later", NULL, 0);
    uv_close((uv_handle_t *)t, later_closed);
}

struct ask {
    struct apg_conn *c;
    struct apg_rcmd_copy *req;
};

static void ask_done(void *ud, const struct apg_rcmd *resp, apg_err_t err)
{
    struct ask *a = ud;
    const char *remark = resp                   ? (resp->remark ? resp->remark : "")
                         : err == APG_ETIMEDOUT ? "timeout"
                                                : "closed";
    apg_conn_reply(a->c, &a->req->rc_cmd, resp ? 0 : 1, remark, NULL, 0);
    apg_rcmd_copy_free(a->req);
    apg_conn_unref(a->c);
    free(a);
}

static void post_reply(struct apg_conn *c, void *arg)
{
    struct apg_rcmd_copy *req = arg;
    apg_conn_reply(c, &req->rc_cmd, 0, "posted", NULL, 0);
    apg_rcmd_copy_free(req);
}

struct poster {
    struct apg_conn *c;
    struct apg_rcmd_copy *req;
};

static void *poster_main(void *arg)
{
    struct poster *p = arg;
    usleep(20000);
    assert_int_equal(apg_conn_post(p->c, post_reply, p->req), APG_OK);
    apg_conn_unref(p->c);
    free(p);
    return NULL;
}

static void on_request(struct apg_conn *c, const struct apg_rcmd *req, void *ud)
{
    switch (req->code) {
    case 1: {
        struct apg_rcmd resp;
        apg_rcmd_init_response(&resp, req, 0, NULL);
        const char *n = apg_rcmd_ext_get(req, "n");
        if (n)
            apg_rcmd_ext_add(&resp, "n", n);
        apg_conn_send(c, &resp, req->body, req->body_len);
        break;
    }
    case 2: {
        struct later *l = calloc(1, sizeof(*l));
        int32_t delay = 0;
        apg_rcmd_ext_i32(req, "delay", &delay);
        l->c = c;
        apg_conn_ref(c);
        l->req = apg_rcmd_copy_new(req);
        uv_timer_init(apg_conn_uv_loop(c), &l->t);
        l->t.data = l;
        uv_timer_start(&l->t, later_fire, (uint64_t)delay, 0);
        break;
    }
    case 3: {
        struct ask *a = calloc(1, sizeof(*a));
        a->c = c;
        apg_conn_ref(c);
        a->req = apg_rcmd_copy_new(req);
        struct apg_rcmd q;
        apg_rcmd_init_request(&q, 500, 0, APG_SER_JSON);
        apg_rcmd_ext_add(&q, "question", "ping");
        int32_t timeout = 1000;
        apg_rcmd_ext_i32(req, "timeout", &timeout);
        assert_int_equal(apg_conn_request(c, &q, NULL, 0, (uint32_t)timeout, ask_done, a), APG_OK);
        break;
    }
    case 4: {
        int32_t size = 0;
        apg_rcmd_ext_i32(req, "size", &size);
        uint8_t *body = malloc((size_t)size);
        for (int32_t i = 0; i < size; i++)
            body[i] = (uint8_t)(i * 7);
        apg_conn_reply(c, req, 0, NULL, body, (uint32_t)size);
        free(body);
        break;
    }
    case 5: {
        struct poster *p = calloc(1, sizeof(*p));
        p->c = c;
        apg_conn_ref(c);
        p->req = apg_rcmd_copy_new(req);
        pthread_t th;
        pthread_create(&th, NULL, poster_main, p);
        pthread_detach(th);
        break;
    }
    default:
        apg_conn_reply(c, req, 3, "not supported", NULL, 0);
    }
}

static void on_close(struct apg_conn *c, void *ud)
{
    atomic_fetch_add(&n_closed, 1);
}

static void on_loop_start(int idx, uv_loop_t *loop, void *ud)
{
    atomic_fetch_add(&n_loop_started, 1);
}

static int g_busy_poll_us;
static uint32_t g_frame_timeout_ms;
static size_t g_max_pending;

static struct apg_net_server *start_server(int n_loops, size_t max_frame, int idle_s)
{
    struct apg_net_server_opts o = {
        .busy_poll_us = g_busy_poll_us,
        .name = "test",
        .host = "127.0.0.1",
        .port = 0,
        .n_loops = n_loops,
        .max_frame = max_frame,
        .limits = {.idle_timeout_s = idle_s,
                   .frame_timeout_ms = g_frame_timeout_ms,
                   .max_pending_bytes = g_max_pending},
        .on_request = on_request,
        .on_close = on_close,
        .on_loop_start = on_loop_start,
    };
    struct apg_net_server *srv = NULL;
    char err[256];
    assert_int_equal(apg_net_server_start(&o, &srv, err, sizeof(err)), APG_OK);
    assert_true(apg_net_server_port(srv) > 0);
    return srv;
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static void write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        assert_true(w > 0);
        b += w;
        n -= (size_t)w;
    }
}

static void frame(struct apg_buf *out, int32_t code, int32_t opaque, int32_t flag, uint8_t ser,
                  const char *k, const char *v, const char *remark)
{
    struct apg_rcmd c;
    apg_rcmd_init_request(&c, code, opaque, ser);
    c.flag = flag;
    c.remark = remark;
    if (k)
        apg_rcmd_ext_add(&c, k, v);
    assert_int_equal(apg_rcmd_encode(&c, NULL, 0, out), APG_OK);
}

static void send_req(int fd, int32_t code, int32_t opaque, const char *k, const char *v)
{
    struct apg_buf b = APG_BUF_INIT;
    frame(&b, code, opaque, 0, APG_SER_JSON, k, v, NULL);
    write_all(fd, b.b_data, b.b_len);
    apg_buf_free(&b);
}

/* Reads one frame; returns -1 on EOF/timeout. */
struct rframe {
    uint8_t *data;
    char scratch[8192];
    struct apg_rcmd cmd;
};

static int read_n(int fd, void *p, size_t n)
{
    uint8_t *b = p;
    while (n) {
        ssize_t r = read(fd, b, n);
        if (r <= 0)
            return -1;
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

static int read_frame(int fd, struct rframe *f)
{
    uint8_t hdr[4];
    free(f->data);
    f->data = NULL;
    if (read_n(fd, hdr, 4))
        return -1;
    uint32_t len = apg_be32(hdr);
    f->data = malloc(len + 4);
    memcpy(f->data, hdr, 4);
    if (read_n(fd, f->data + 4, len))
        return -1;
    char err[128];
    assert_int_equal(apg_rcmd_decode(f->data, len + 4, &f->cmd, f->scratch, sizeof(f->scratch), err,
                                     sizeof(err)),
                     APG_OK);
    return 0;
}

static bool is_eof(int fd)
{
    char c;
    return read(fd, &c, 1) == 0;
}

static void test_pipelined(void **state)
{
    struct apg_net_server *srv = start_server(2, 0, 0);
    int fds[4];
    for (int k = 0; k < 4; k++)
        fds[k] = connect_to(apg_net_server_port(srv));
    for (int k = 0; k < 4; k++) {
        /* 100 requests in one write, alternating header encodings. */
        struct apg_buf b = APG_BUF_INIT;
        for (int i = 0; i < 100; i++) {
            char n[16];
            snprintf(n, sizeof(n), "%d", i);
            frame(&b, 1, 1000 + i, 0, i % 2 ? APG_SER_ROCKETMQ : APG_SER_JSON, "n", n, NULL);
        }
        write_all(fds[k], b.b_data, b.b_len);
        apg_buf_free(&b);
    }
    for (int k = 0; k < 4; k++) {
        struct rframe f = {0};
        for (int i = 0; i < 100; i++) {
            assert_int_equal(read_frame(fds[k], &f), 0);
            assert_true(apg_rcmd_is_response(&f.cmd));
            assert_int_equal(f.cmd.opaque, 1000 + i);
            assert_int_equal(f.cmd.serialize, i % 2 ? APG_SER_ROCKETMQ : APG_SER_JSON);
            char n[16];
            snprintf(n, sizeof(n), "%d", i);
            assert_string_equal(apg_rcmd_ext_get(&f.cmd, "n"), n);
        }
        free(f.data);
        close(fds[k]);
    }
    assert_int_equal(apg_net_server_loop_count(srv), 2);
    apg_net_server_stop(srv);
}

static void test_out_of_order(void **state)
{
    struct apg_net_server *srv = start_server(1, 0, 0);
    int fd = connect_to(apg_net_server_port(srv));
    send_req(fd, 2, 1, "delay", "200");
    send_req(fd, 2, 2, "delay", "20");
    send_req(fd, 1, 3, NULL, NULL);
    struct rframe f = {0};
    int order[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(read_frame(fd, &f), 0);
        order[i] = f.cmd.opaque;
    }
    assert_int_equal(order[0], 3);
    assert_int_equal(order[1], 2);
    assert_int_equal(order[2], 1);
    free(f.data);
    close(fd);
    apg_net_server_stop(srv);
}

static void test_garbage_closes_only_that_connection(void **state)
{
    struct apg_net_server *srv = start_server(1, 0, 0);
    int good = connect_to(apg_net_server_port(srv));
    int bad = connect_to(apg_net_server_port(srv));
    int before = atomic_load(&n_closed);
    /* Length word fine, header length word pointing past the frame. */
    uint8_t junk[16] = {0, 0, 0, 12, 0, 0, 0x7f, 0xff, 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'};
    write_all(bad, junk, sizeof(junk));
    assert_true(is_eof(bad));
    close(bad);
    /* Plain text is garbage too. */
    bad = connect_to(apg_net_server_port(srv));
    write_all(bad, "hello there, this is not remoting\r\n", 35);
    assert_true(is_eof(bad));
    close(bad);
    send_req(good, 1, 7, NULL, NULL);
    struct rframe f = {0};
    assert_int_equal(read_frame(good, &f), 0);
    assert_int_equal(f.cmd.opaque, 7);
    free(f.data);
    assert_int_equal(atomic_load(&n_closed) - before, 2);
    close(good);
    apg_net_server_stop(srv);
}

static void test_oversized_frame(void **state)
{
    struct apg_net_server *srv = start_server(1, 1024, 0);
    int fd = connect_to(apg_net_server_port(srv));
    /* A frame just under the limit works. */
    struct apg_rcmd c;
    apg_rcmd_init_request(&c, 1, 9, APG_SER_JSON);
    struct apg_buf b = APG_BUF_INIT;
    uint8_t body[900];
    memset(body, 'b', sizeof(body));
    apg_rcmd_encode(&c, body, sizeof(body), &b);
    write_all(fd, b.b_data, b.b_len);
    struct rframe f = {0};
    assert_int_equal(read_frame(fd, &f), 0);
    assert_int_equal(f.cmd.body_len, 900);
    /* One over: the server must not wait for the rest; it closes. */
    apg_buf_reset(&b);
    uint8_t big[2000];
    memset(big, 'b', sizeof(big));
    apg_rcmd_encode(&c, big, 100, &b);
    apg_wbe32(b.b_data, 5000);
    write_all(fd, b.b_data, b.b_len);
    assert_true(is_eof(fd));
    apg_buf_free(&b);
    free(f.data);
    close(fd);
    apg_net_server_stop(srv);
}

static void test_server_initiated_request(void **state)
{
    struct apg_net_server *srv = start_server(1, 0, 0);
    int fd = connect_to(apg_net_server_port(srv));
    send_req(fd, 3, 42, NULL, NULL);
    struct rframe f = {0};
    assert_int_equal(read_frame(fd, &f), 0);
    assert_false(apg_rcmd_is_response(&f.cmd));
    assert_int_equal(f.cmd.code, 500);
    assert_string_equal(apg_rcmd_ext_get(&f.cmd, "question"), "ping");
    int32_t sopaque = f.cmd.opaque;
    /* A response with an unknown opaque is ignored. */
    struct apg_buf b = APG_BUF_INIT;
    frame(&b, 0, sopaque + 1000, APG_RCMD_FLAG_RESPONSE, APG_SER_JSON, NULL, NULL, "stray");
    frame(&b, 0, sopaque, APG_RCMD_FLAG_RESPONSE, APG_SER_ROCKETMQ, NULL, NULL, "pong");
    write_all(fd, b.b_data, b.b_len);
    apg_buf_free(&b);
    assert_int_equal(read_frame(fd, &f), 0);
    assert_int_equal(f.cmd.opaque, 42);
    assert_int_equal(f.cmd.code, 0);
    assert_string_equal(f.cmd.remark, "pong");

    /* Unanswered: the callback reports a timeout. */
    send_req(fd, 3, 43, "timeout", "100");
    assert_int_equal(read_frame(fd, &f), 0);
    assert_int_equal(f.cmd.code, 500);
    assert_true(f.cmd.opaque != sopaque);
    assert_int_equal(read_frame(fd, &f), 0);
    assert_int_equal(f.cmd.opaque, 43);
    assert_string_equal(f.cmd.remark, "timeout");
    free(f.data);
    close(fd);
    apg_net_server_stop(srv);
}

static void test_idle_timeout(void **state)
{
    struct apg_net_server *srv = start_server(1, 0, 1);
    int fd = connect_to(apg_net_server_port(srv));
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_true(is_eof(fd));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_true(s >= 0.9);
    assert_true(s < 3.0);
    close(fd);
    apg_net_server_stop(srv);
}

/* ---- slow peers: frame deadline, pending-bytes cap, buffer growth ---- */

static struct apg_net_server *start_slow(uint32_t frame_timeout_ms, size_t max_pending)
{
    g_frame_timeout_ms = frame_timeout_ms;
    g_max_pending = max_pending;
    struct apg_net_server *srv = start_server(1, 0, 0);
    g_frame_timeout_ms = 0;
    g_max_pending = 0;
    return srv;
}

static double mono_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec / 1e9;
}

/* True once the server closed fd (EOF or reset), waiting up to ms. */
static bool closed_within(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, ms) <= 0)
        return false;
    char c;
    ssize_t r = recv(fd, &c, 1, MSG_DONTWAIT);
    return r == 0 || (r < 0 && errno != EAGAIN);
}

/* Waits until the server counts exactly want incomplete-frame bytes. */
static void wait_pending(struct apg_net_server *srv, size_t want)
{
    for (int i = 0; i < 500 && apg_net_server_pending_bytes(srv) != want; i++)
        usleep(10 * 1000);
    assert_int_equal(apg_net_server_pending_bytes(srv), want);
}

/* An echo request with a body of n bytes. */
static void echo_frame(struct apg_buf *out, int32_t opaque, size_t n)
{
    struct apg_rcmd c;
    apg_rcmd_init_request(&c, 1, opaque, APG_SER_JSON);
    uint8_t *body = calloc(1, n + 1);
    assert_int_equal(apg_rcmd_encode(&c, body, (uint32_t)n, out), APG_OK);
    free(body);
}

static void test_frame_timeout(void **state)
{
    struct apg_net_server *srv = start_slow(300, 0);
    int port = apg_net_server_port(srv);
    int slow = connect_to(port);
    int ok = connect_to(port);
    /* slow announces a frame and trickles a byte every 50 ms: activity, but
     * no frame completes, so it is closed after ~300 ms. */
    struct apg_buf big = APG_BUF_INIT;
    echo_frame(&big, 1, 4000);
    write_all(slow, big.b_data, 100);
    double t0 = mono_s();
    size_t off = 100;
    bool closed = false;
    while (!closed && mono_s() - t0 < 3.0) {
        send(slow, big.b_data + off++, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        closed = closed_within(slow, 50);
    }
    double took = mono_s() - t0;
    assert_true(closed);
    assert_true(took >= 0.25);
    assert_true(took < 2.0);
    /* ok sends each frame in two halves 100 ms apart, for longer than the
     * deadline: every frame completes in time, so it stays open. */
    struct rframe f = {0};
    for (int i = 0; i < 6; i++) {
        struct apg_buf b = APG_BUF_INIT;
        echo_frame(&b, 10 + i, 500);
        write_all(ok, b.b_data, b.b_len / 2);
        usleep(100 * 1000);
        write_all(ok, b.b_data + b.b_len / 2, b.b_len - b.b_len / 2);
        assert_int_equal(read_frame(ok, &f), 0);
        assert_int_equal(f.cmd.opaque, 10 + i);
        apg_buf_free(&b);
    }
    assert_int_equal(apg_net_server_pending_bytes(srv), 0);
    free(f.data);
    apg_buf_free(&big);
    close(slow);
    close(ok);
    apg_net_server_stop(srv);
}

static void test_pending_cap_closes_oldest(void **state)
{
    struct apg_net_server *srv = start_slow(0, 200 * 1024);
    int port = apg_net_server_port(srv);
    struct apg_buf fr[3] = {APG_BUF_INIT, APG_BUF_INIT, APG_BUF_INIT};
    int fd[3];
    size_t part = 80 * 1024;
    for (int i = 0; i < 3; i++) {
        echo_frame(&fr[i], 100 + i, 150 * 1024);
        fd[i] = connect_to(port);
        write_all(fd[i], fr[i].b_data, part);
        if (i < 2) {
            wait_pending(srv, (i + 1) * part);
            usleep(20 * 1000); /* distinct start times */
        }
    }
    /* The third partial frame passes the cap: the oldest (fd[0]) goes. */
    assert_true(closed_within(fd[0], 2000));
    wait_pending(srv, 2 * part);
    /* The other two complete their frames and are answered. */
    struct rframe f = {0};
    for (int i = 1; i < 3; i++) {
        write_all(fd[i], fr[i].b_data + part, fr[i].b_len - part);
        assert_int_equal(read_frame(fd[i], &f), 0);
        assert_int_equal(f.cmd.opaque, 100 + i);
        assert_int_equal(f.cmd.body_len, 150 * 1024);
    }
    wait_pending(srv, 0);
    free(f.data);
    for (int i = 0; i < 3; i++) {
        apg_buf_free(&fr[i]);
        close(fd[i]);
    }
    apg_net_server_stop(srv);
}

/* A peer announcing a 16 MiB frame and sending 100 KiB of it costs about
 * what it sent, not what it announced. */
static void test_buffer_grows_with_bytes_received(void **state)
{
    struct apg_net_server *srv = start_slow(0, 0);
    int fd = connect_to(apg_net_server_port(srv));
    usleep(50 * 1000);
    int64_t before = apg_mem_in_use();
    size_t sent = 100 * 1024;
    uint8_t *p = calloc(1, sent);
    apg_wbe32(p, APG_FRAME_MAX_DEFAULT - 4);
    apg_wbe32(p + 4, 100);
    write_all(fd, p, sent);
    wait_pending(srv, sent);
    int64_t grew = apg_mem_in_use() - before;
    assert_true(grew < 1024 * 1024);
    free(p);
    close(fd);
    apg_net_server_stop(srv);
}

struct stopper {
    struct apg_net_server *srv;
};

static void *stop_main(void *arg)
{
    apg_net_server_stop(arg);
    return NULL;
}

static void test_graceful_stop_flushes(void **state)
{
    struct apg_net_server *srv = start_server(1, 0, 0);
    int fd = connect_to(apg_net_server_port(srv));
    /* More than the socket buffers on both sides can hold. */
    const int size = 32 * 1024 * 1024;
    send_req(fd, 4, 77, "size", "33554432");
    usleep(100000); /* the reply is queued and cannot all be written yet */
    pthread_t th;
    pthread_create(&th, NULL, stop_main, srv);
    usleep(100000);
    struct rframe f = {0};
    assert_int_equal(read_frame(fd, &f), 0);
    assert_int_equal(f.cmd.opaque, 77);
    assert_int_equal(f.cmd.body_len, size);
    for (int i = 0; i < size; i += 4099)
        assert_int_equal(f.cmd.body[i], (uint8_t)(i * 7));
    assert_true(is_eof(fd));
    pthread_join(th, NULL);
    free(f.data);
    close(fd);
}

static void test_post_from_other_thread(void **state)
{
    struct apg_net_server *srv = start_server(1, 0, 0);
    int fd = connect_to(apg_net_server_port(srv));
    for (int i = 0; i < 5; i++)
        send_req(fd, 5, 100 + i, NULL, NULL);
    struct rframe f = {0};
    int seen = 0;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(read_frame(fd, &f), 0);
        assert_string_equal(f.cmd.remark, "posted");
        seen |= 1 << (f.cmd.opaque - 100);
    }
    assert_int_equal(seen, 0x1f);
    free(f.data);
    close(fd);
    apg_net_server_stop(srv);
}

static void never_runs(void *arg)
{
    fail_msg("a post after the halt ran");
}

/* A thread that outlives the loops (the store's ack thread in the broker)
 * may still post after apg_net_server_halt: the post is refused, nothing
 * runs, and the server is freed only by apg_net_server_stop. */
static void test_post_after_halt(void **state)
{
    struct apg_net_server *srv = start_server(2, 0, 0);
    apg_net_server_halt(srv);
    apg_net_server_halt(srv); /* idempotent */
    for (int i = 0; i < 2; i++)
        assert_int_equal(apg_net_server_post(srv, i, never_runs, NULL), APG_ESHUTDOWN);
    apg_net_server_stop(srv);
}

static void test_client(void **state)
{
    struct apg_net_server *srv = start_server(1, 0, 0);
    struct apg_net_client *cli;
    char err[256];
    struct apg_net_client_opts co = {.name = "testcli"};
    assert_int_equal(apg_net_client_start(&co, &cli, err, sizeof(err)), APG_OK);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", apg_net_server_port(srv));

    struct apg_rcmd req;
    apg_rcmd_init_request(&req, 1, 0, APG_SER_ROCKETMQ);
    apg_rcmd_ext_add(&req, "n", "hello");
    struct apg_rcmd_copy *resp = NULL;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(apg_net_client_call_sync(cli, addr, &req, (const uint8_t *)"body", 4, 2000,
                                                  &resp, err, sizeof(err)),
                         APG_OK);
        assert_string_equal(apg_rcmd_ext_get(&resp->rc_cmd, "n"), "hello");
        assert_int_equal(resp->rc_cmd.body_len, 4);
        assert_memory_equal(resp->rc_cmd.body, "body", 4);
        apg_rcmd_copy_free(resp);
    }
    /* Timeout. */
    apg_rcmd_init_request(&req, 2, 0, APG_SER_JSON);
    apg_rcmd_ext_add(&req, "delay", "500");
    assert_int_equal(
        apg_net_client_call_sync(cli, addr, &req, NULL, 0, 100, &resp, err, sizeof(err)),
        APG_ETIMEDOUT);
    assert_null(resp);
    /* Nobody listening. */
    int port = apg_net_server_port(srv);
    apg_net_server_stop(srv);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    apg_rcmd_init_request(&req, 1, 0, APG_SER_JSON);
    apg_err_t e = apg_net_client_call_sync(cli, addr, &req, NULL, 0, 1000, &resp, err, sizeof(err));
    assert_true(e == APG_EIO || e == APG_ECLOSED);
    assert_int_equal(
        apg_net_client_call_sync(cli, "nonsense", &req, NULL, 0, 1000, &resp, err, sizeof(err)),
        APG_EINVAL);
    apg_net_client_stop(cli);
}

/* Once a connection's buffers are warm, reading, decoding, dispatching and
 * answering a frame allocates nothing through apg_malloc: arm the failure
 * injection for the next allocation, run a pipelined batch, and check that
 * the armed failure is still pending afterwards. */
static void test_warm_path_does_not_allocate(void **state)
{
    struct apg_net_server *srv = start_server(1, 0, 0);
    int fd = connect_to(apg_net_server_port(srv));
    struct apg_buf batch = APG_BUF_INIT;
    uint8_t body[100];
    memset(body, 'x', sizeof(body));
    for (int i = 0; i < 50; i++) {
        struct apg_rcmd c;
        apg_rcmd_init_request(&c, 1, i, i % 2 ? APG_SER_ROCKETMQ : APG_SER_JSON);
        apg_rcmd_ext_add(&c, "n", "12345");
        apg_rcmd_encode(&c, body, sizeof(body), &batch);
    }
    struct rframe f = {0};
    for (int round = 0; round < 3; round++) {
        if (round == 2)
            apg_mem_fail_after(1);
        write_all(fd, batch.b_data, batch.b_len);
        for (int i = 0; i < 50; i++) {
            assert_int_equal(read_frame(fd, &f), 0);
            assert_int_equal(f.cmd.opaque, i);
            assert_int_equal(f.cmd.body_len, sizeof(body));
        }
    }
    void *p = apg_malloc(1); /* consumes the armed failure if nobody else did */
    apg_mem_fail_after(0);
    assert_null(p);
    apg_buf_free(&batch);
    free(f.data);
    close(fd);
    apg_net_server_stop(srv);
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* Busy polling: one-at-a-time requests are answered in order while the loop
 * polls, and once they stop the loop goes back to sleep (an idle server
 * burns no CPU). */
static void test_busy_poll(void **state)
{
    (void)state;
    g_busy_poll_us = 2000;
    struct apg_net_server *srv = start_server(1, 0, 0);
    g_busy_poll_us = 0;
    int fd = connect_to(apg_net_server_port(srv));
    struct rframe f = {0};
    for (int i = 0; i < 300; i++) {
        char n[16];
        snprintf(n, sizeof(n), "%d", i);
        send_req(fd, 1, 5000 + i, "n", n);
        assert_int_equal(read_frame(fd, &f), 0);
        assert_int_equal(f.cmd.opaque, 5000 + i);
        assert_string_equal(apg_rcmd_ext_get(&f.cmd, "n"), n);
    }
    usleep(50000);
    double c0 = cpu_seconds();
    usleep(300000);
    double used = cpu_seconds() - c0;
    assert_true(used < 0.05); /* not polling any more */
    free(f.data);
    close(fd);
    apg_net_server_stop(srv);
}

static void test_port_in_use(void **state)
{
    struct apg_net_server *srv = start_server(2, 0, 0);
    struct apg_net_server_opts o = {.name = "test",
                                    .host = "127.0.0.1",
                                    .port = apg_net_server_port(srv),
                                    .n_loops = 2,
                                    .on_request = on_request};
    struct apg_net_server *srv2 = NULL;
    char err[256];
    assert_int_equal(apg_net_server_start(&o, &srv2, err, sizeof(err)), APG_EIO);
    assert_non_null(strstr(err, "Address already in use"));
    apg_net_server_stop(srv);
}

/* ---- other codecs and transports on the same loops ---- */

/* A line protocol: a message is the bytes up to '\n'; the answer is the
 * line in capitals. */
static apg_err_t line_new(struct apg_net_loop *l, void **state)
{
    *state = NULL;
    return APG_OK;
}

static void line_free(void *state) {}

static apg_err_t line_frame(const uint8_t *buf, size_t len, size_t max, size_t *mlen, char *err,
                            size_t errlen)
{
    const uint8_t *nl = memchr(buf, '\n', len);
    *mlen = nl ? (size_t)(nl - buf) + 1 : 0;
    if (!nl && len > max)
        return apg_errf(APG_ETOOBIG, err, errlen, "line longer than %zu bytes", max);
    return APG_OK;
}

struct line {
    const uint8_t *ln_p;
    size_t ln_len;
};

static apg_err_t line_decode(void *state, const uint8_t *buf, size_t len, void **msg, char *err,
                             size_t errlen)
{
    static __thread struct line ln;
    ln.ln_p = buf;
    ln.ln_len = len;
    *msg = &ln;
    return APG_OK;
}

static bool line_dispatch(struct apg_conn *c, void *msg)
{
    const struct line *ln = msg;
    struct apg_buf *out = apg_net_conn_out(c);
    if (!out)
        return false;
    for (size_t i = 0; i < ln->ln_len; i++) {
        uint8_t ch = ln->ln_p[i];
        uint8_t up = ch >= 'a' && ch <= 'z' ? (uint8_t)(ch - 32) : ch;
        assert_int_equal(apg_buf_append(out, &up, 1), APG_OK);
    }
    apg_net_conn_out_done(c);
    return true;
}

static const struct apg_net_codec line_codec = {
    .cd_name = "line",
    .cd_loop_new = line_new,
    .cd_loop_free = line_free,
    .cd_frame = line_frame,
    .cd_decode = line_decode,
    .cd_dispatch = line_dispatch,
};

static struct apg_net_server *start_with(const struct apg_net_transport *tr,
                                         const struct apg_net_codec *cd)
{
    struct apg_net_server_opts o = {.name = "test",
                                    .host = "127.0.0.1",
                                    .n_loops = 2,
                                    .transport = tr,
                                    .codec = cd,
                                    .on_request = cd ? NULL : on_request};
    struct apg_net_server *srv = NULL;
    char err[256];
    assert_int_equal(apg_net_server_start(&o, &srv, err, sizeof(err)), APG_OK);
    return srv;
}

static void test_line_codec(void **state)
{
    struct apg_net_server *srv = start_with(NULL, &line_codec);
    int fd = connect_to(apg_net_server_port(srv));
    write_all(fd, "hel", 3);
    usleep(20000);
    write_all(fd, "lo\nwor", 6);
    usleep(20000);
    write_all(fd, "ld\n", 3);
    char got[13] = "";
    assert_int_equal(read_n(fd, got, 12), 0);
    assert_string_equal(got, "HELLO\nWORLD\n");
    close(fd);
    apg_net_server_stop(srv);
}

/* A byte filter over TCP: every byte is XORed with 0x5A on the wire, in the
 * place a TLS session would encrypt and decrypt. */
#define XOR_KEY 0x5A

struct xor_state {
    uint8_t x_in[65536];
    uint8_t *x_out;
    size_t x_out_cap;
};

static apg_err_t xor_init(struct apg_conn *c)
{
    c->c_tr_state = calloc(1, sizeof(struct xor_state));
    return apg_net_tcp.tr_init(c);
}

static void xor_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct apg_conn *c = h->data;
    struct xor_state *x = c->c_tr_state;
    *buf = uv_buf_init((char *)x->x_in, sizeof(x->x_in));
}

static void xor_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct apg_conn *c = s->data;
    struct xor_state *x = c->c_tr_state;
    if (nread <= 0) {
        apg_net_conn_rdone(c, nread);
        return;
    }
    for (ssize_t off = 0; off < nread && !apg_conn_is_closed(c);) {
        uint8_t *p;
        size_t cap;
        if (apg_net_conn_rbuf(c, &p, &cap)) {
            apg_net_conn_rdone(c, UV_ENOBUFS);
            return;
        }
        size_t n = (size_t)(nread - off) < cap ? (size_t)(nread - off) : cap;
        for (size_t i = 0; i < n; i++)
            p[i] = x->x_in[off + (ssize_t)i] ^ XOR_KEY;
        off += (ssize_t)n;
        apg_net_conn_rdone(c, (ssize_t)n);
    }
}

static apg_err_t xor_read_start(struct apg_conn *c)
{
    return uv_read_start((uv_stream_t *)&c->c_tcp, xor_alloc, xor_read) ? APG_EIO : APG_OK;
}

/* Encodes bufs into the connection's output scratch; returns it. */
static uv_buf_t xor_encode(struct apg_conn *c, const uv_buf_t *bufs, unsigned n)
{
    struct xor_state *x = c->c_tr_state;
    size_t len = 0;
    for (unsigned i = 0; i < n; i++)
        len += bufs[i].len;
    if (len > x->x_out_cap) {
        x->x_out = realloc(x->x_out, len);
        x->x_out_cap = len;
    }
    size_t k = 0;
    for (unsigned i = 0; i < n; i++)
        for (size_t j = 0; j < bufs[i].len; j++)
            x->x_out[k++] = (uint8_t)bufs[i].base[j] ^ XOR_KEY;
    return uv_buf_init((char *)x->x_out, (unsigned)len);
}

static int xor_try_writev(struct apg_conn *c, const uv_buf_t *bufs, unsigned n)
{
    uv_buf_t b = xor_encode(c, bufs, n);
    return apg_net_tcp.tr_try_writev(c, &b, 1);
}

static int xor_writev(struct apg_conn *c, const uv_buf_t *bufs, unsigned n)
{
    uv_buf_t b = xor_encode(c, bufs, n); /* kept until the next write: one in flight */
    return apg_net_tcp.tr_writev(c, &b, 1);
}

static void xor_closed(uv_handle_t *h)
{
    struct apg_conn *c = h->data;
    struct xor_state *x = c->c_tr_state;
    free(x->x_out);
    free(x);
    c->c_tr_state = NULL;
    apg_net_conn_closed(c);
}

static void xor_close(struct apg_conn *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->c_tcp))
        uv_close((uv_handle_t *)&c->c_tcp, xor_closed);
}

static const struct apg_net_transport xor_transport = {
    .tr_name = "xor",
    .tr_init = xor_init,
    .tr_accept = NULL, /* set from apg_net_tcp in the test */
    .tr_read_start = xor_read_start,
    .tr_try_writev = xor_try_writev,
    .tr_writev = xor_writev,
    .tr_close = xor_close,
};

static void xor_buf(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] ^= XOR_KEY;
}

static void test_filter_transport(void **state)
{
    struct apg_net_transport tr = xor_transport;
    tr.tr_accept = apg_net_tcp.tr_accept;
    tr.tr_connect = apg_net_tcp.tr_connect;
    tr.tr_read_stop = apg_net_tcp.tr_read_stop;
    tr.tr_write_queued = apg_net_tcp.tr_write_queued;
    tr.tr_peer = apg_net_tcp.tr_peer;
    struct apg_net_server *srv = start_with(&tr, NULL);
    int fd = connect_to(apg_net_server_port(srv));
    /* Remoting frames through the filter: 20 echo requests in one write
     * and a 300,000-byte reply (several reads and a queued write). */
    struct apg_buf b = APG_BUF_INIT;
    for (int i = 0; i < 20; i++)
        frame(&b, 1, 100 + i, 0, i % 2 ? APG_SER_ROCKETMQ : APG_SER_JSON, "n", "x", NULL);
    frame(&b, 4, 200, 0, APG_SER_JSON, "size", "300000", NULL);
    xor_buf(b.b_data, b.b_len);
    write_all(fd, b.b_data, b.b_len);
    apg_buf_free(&b);
    for (int i = 0; i < 21; i++) {
        uint8_t hdr[4];
        assert_int_equal(read_n(fd, hdr, 4), 0);
        xor_buf(hdr, 4);
        uint32_t len = apg_be32(hdr);
        uint8_t *data = malloc(len + 4);
        memcpy(data, hdr, 4);
        assert_int_equal(read_n(fd, data + 4, len), 0);
        xor_buf(data + 4, len);
        struct rframe f = {0};
        char err[128];
        assert_int_equal(
            apg_rcmd_decode(data, len + 4, &f.cmd, f.scratch, sizeof(f.scratch), err, sizeof(err)),
            APG_OK);
        assert_true(apg_rcmd_is_response(&f.cmd));
        if (i < 20) {
            assert_int_equal(f.cmd.opaque, 100 + i);
            assert_string_equal(apg_rcmd_ext_get(&f.cmd, "n"), "x");
        } else {
            assert_int_equal(f.cmd.opaque, 200);
            assert_int_equal(f.cmd.body_len, 300000);
            assert_int_equal(f.cmd.body[299999], (uint8_t)(299999 * 7));
        }
        free(data);
    }
    close(fd);
    apg_net_server_stop(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_out_of_order),
        cmocka_unit_test(test_garbage_closes_only_that_connection),
        cmocka_unit_test(test_oversized_frame),
        cmocka_unit_test(test_server_initiated_request),
        cmocka_unit_test(test_idle_timeout),
        cmocka_unit_test(test_frame_timeout),
        cmocka_unit_test(test_pending_cap_closes_oldest),
        cmocka_unit_test(test_buffer_grows_with_bytes_received),
        cmocka_unit_test(test_graceful_stop_flushes),
        cmocka_unit_test(test_post_from_other_thread),
        cmocka_unit_test(test_post_after_halt),
        cmocka_unit_test(test_client),
        cmocka_unit_test(test_warm_path_does_not_allocate),
        cmocka_unit_test(test_port_in_use),
        cmocka_unit_test(test_busy_poll),
        cmocka_unit_test(test_line_codec),
        cmocka_unit_test(test_filter_transport),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    assert_true(atomic_load(&n_loop_started) > 0);
    return rc;
}

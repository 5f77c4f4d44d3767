/* `apogee bench produce --protocol=grpc`: a load generator for the gRPC
 * port's SendMessage, one HTTP/2 connection with N concurrent streams.
 *
 * Design. One thread, one blocking TCP socket driven with poll, one nghttp2
 * client session. The request (a SendMessageRequest with one normal message
 * of --size bytes) is packed once with a message id per request slot; each
 * stream sends it with the same headers a 5.x SDK sends. Whenever a stream
 * closes another is opened, so --streams calls are always in flight, for
 * --duration seconds. A stream counts as a sent message when its trailers
 * say grpc-status 0 and the response status code is OK (20000); anything
 * else counts as an error. The summary line gives messages per second and
 * the error count.
 *
 * Threads: the calling thread only. */
#include "cli/bench.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "proto/messaging.pb-c.h"

struct gbench {
    int gb_fd;
    nghttp2_session *gb_h2;
    uint8_t *gb_req; /* prefixed request message */
    size_t gb_req_len;
    char gb_path[96], gb_authority[128];
    int gb_streams, gb_inflight;
    long gb_ok, gb_err;
    bool gb_stop;
};

struct gstream {
    size_t gs_off;
    bool gs_ok_status; /* grpc-status 0 seen */
    size_t gs_resp_len;
    uint8_t gs_resp[256]; /* the SendMessageResponse (small) */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static ssize_t on_send(nghttp2_session *s, const uint8_t *data, size_t len, int flags, void *ud)
{
    struct gbench *gb = ud;
    ssize_t n = send(gb->gb_fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return NGHTTP2_ERR_WOULDBLOCK;
    return n < 0 ? NGHTTP2_ERR_CALLBACK_FAILURE : n;
}

static ssize_t req_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                        nghttp2_data_source *src, void *ud)
{
    struct gbench *gb = ud;
    struct gstream *st = src->ptr;
    size_t left = gb->gb_req_len - st->gs_off;
    size_t n = left < len ? left : len;
    memcpy(buf, gb->gb_req + st->gs_off, n);
    st->gs_off += n;
    if (st->gs_off == gb->gb_req_len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl,
                     const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
    struct gstream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (st && nl == 11 && !memcmp(name, "grpc-status", 11))
        st->gs_ok_status = vl == 1 && value[0] == '0';
    return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                   void *ud)
{
    struct gstream *st = nghttp2_session_get_stream_user_data(s, id);
    if (st && st->gs_resp_len + len <= sizeof st->gs_resp) {
        memcpy(st->gs_resp + st->gs_resp_len, data, len);
        st->gs_resp_len += len;
    }
    return 0;
}

static bool resp_ok(const struct gstream *st)
{
    if (!st->gs_ok_status || st->gs_resp_len < 5)
        return false;
    Apache__Rocketmq__V2__SendMessageResponse *r =
        apache__rocketmq__v2__send_message_response__unpack(NULL, st->gs_resp_len - 5,
                                                            st->gs_resp + 5);
    bool ok = r && r->status && r->status->code == APACHE__ROCKETMQ__V2__CODE__OK;
    if (r)
        apache__rocketmq__v2__send_message_response__free_unpacked(r, NULL);
    return ok;
}

static int submit_one(struct gbench *gb)
{
    struct gstream *st = calloc(1, sizeof(*st));
    if (!st)
        return -1;
#define HDR(n, v) {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE}
    nghttp2_nv hd[] = {
        HDR(":method", "POST"),
        HDR(":scheme", "http"),
        HDR(":path", gb->gb_path),
        HDR(":authority", gb->gb_authority),
        HDR("content-type", "application/grpc"),
        HDR("te", "trailers"),
        HDR("x-mq-client-id", "apogee-bench"),
        HDR("x-mq-protocol", "v2"),
    };
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = req_read};
    int32_t id = nghttp2_submit_request(gb->gb_h2, NULL, hd, sizeof hd / sizeof hd[0], &prd, st);
    if (id < 0) {
        free(st);
        return -1;
    }
    gb->gb_inflight++;
    return 0;
}

static int on_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
    struct gbench *gb = ud;
    struct gstream *st = nghttp2_session_get_stream_user_data(s, id);
    if (!st)
        return 0;
    if (code == NGHTTP2_NO_ERROR && resp_ok(st))
        gb->gb_ok++;
    else
        gb->gb_err++;
    free(st);
    gb->gb_inflight--;
    if (!gb->gb_stop)
        submit_one(gb);
    return 0;
}

static int connect_to(const char *hostport)
{
    char host[128];
    const char *colon = strrchr(hostport, ':');
    if (!colon)
        return -1;
    snprintf(host, sizeof host, "%.*s", (int)(colon - hostport), hostport);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(host, colon + 1, &hints, &ai))
        return -1;
    int fd = socket(ai->ai_family, SOCK_STREAM, 0);
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen)) {
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}

/* The packed request, prefixed for gRPC. */
static int build_request(struct gbench *gb, const char *topic, int size)
{
    uint8_t *body = malloc((size_t)size);
    if (!body)
        return -1;
    memset(body, 'x', (size_t)size);
    Apache__Rocketmq__V2__Resource res = APACHE__ROCKETMQ__V2__RESOURCE__INIT;
    res.name = (char *)topic;
    Apache__Rocketmq__V2__SystemProperties sp = APACHE__ROCKETMQ__V2__SYSTEM_PROPERTIES__INIT;
    sp.message_id = "0100000000000000000000000000000000";
    sp.message_type = APACHE__ROCKETMQ__V2__MESSAGE_TYPE__NORMAL;
    sp.body_encoding = APACHE__ROCKETMQ__V2__ENCODING__IDENTITY;
    sp.tag = "bench";
    Apache__Rocketmq__V2__Message m = APACHE__ROCKETMQ__V2__MESSAGE__INIT;
    m.topic = &res;
    m.system_properties = &sp;
    m.body.data = body;
    m.body.len = (size_t)size;
    Apache__Rocketmq__V2__Message *mp = &m;
    Apache__Rocketmq__V2__SendMessageRequest rq = APACHE__ROCKETMQ__V2__SEND_MESSAGE_REQUEST__INIT;
    rq.n_messages = 1;
    rq.messages = &mp;
    size_t n = protobuf_c_message_get_packed_size(&rq.base);
    gb->gb_req = malloc(n + 5);
    if (!gb->gb_req) {
        free(body);
        return -1;
    }
    gb->gb_req[0] = 0;
    gb->gb_req[1] = (uint8_t)(n >> 24);
    gb->gb_req[2] = (uint8_t)(n >> 16);
    gb->gb_req[3] = (uint8_t)(n >> 8);
    gb->gb_req[4] = (uint8_t)n;
    protobuf_c_message_pack(&rq.base, gb->gb_req + 5);
    gb->gb_req_len = n + 5;
    free(body);
    return 0;
}

int apg_cli_bench_grpc(const char *addr, const char *topic, int size, int secs, int streams,
                       bool json)
{
    struct gbench gb = {.gb_streams = streams};
    snprintf(gb.gb_path, sizeof gb.gb_path, "/apache.rocketmq.v2.MessagingService/SendMessage");
    snprintf(gb.gb_authority, sizeof gb.gb_authority, "%s", addr);
    if (build_request(&gb, topic, size)) {
        fprintf(stderr, "bench: out of memory\n");
        return 1;
    }
    gb.gb_fd = connect_to(addr);
    if (gb.gb_fd < 0) {
        fprintf(stderr, "bench: cannot connect to the gRPC port %s: %s\n", addr, strerror(errno));
        free(gb.gb_req);
        return 1;
    }
    nghttp2_session_callbacks *cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_send_callback(cbs, on_send);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_close);
    nghttp2_session_client_new(&gb.gb_h2, cbs, &gb);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 24}};
    nghttp2_submit_settings(gb.gb_h2, NGHTTP2_FLAG_NONE, iv, 1);
    nghttp2_session_set_local_window_size(gb.gb_h2, NGHTTP2_FLAG_NONE, 0, 1 << 30);
    for (int i = 0; i < streams; i++)
        submit_one(&gb);
    double t0 = now_s(), end = t0 + secs;
    uint8_t buf[65536];
    int rc = 0;
    while (!gb.gb_stop || gb.gb_inflight > 0) {
        if (!gb.gb_stop && now_s() >= end)
            gb.gb_stop = true;
        if (nghttp2_session_send(gb.gb_h2)) {
            rc = 1;
            break;
        }
        struct pollfd pfd = {.fd = gb.gb_fd, .events = POLLIN};
        if (nghttp2_session_want_write(gb.gb_h2))
            pfd.events |= POLLOUT;
        if (poll(&pfd, 1, 1000) < 0 && errno != EINTR) {
            rc = 1;
            break;
        }
        if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = recv(gb.gb_fd, buf, sizeof buf, 0);
            if (n <= 0) {
                fprintf(stderr, "bench: the gRPC port closed the connection\n");
                rc = 1;
                break;
            }
            if (nghttp2_session_mem_recv(gb.gb_h2, buf, (size_t)n) < 0) {
                rc = 1;
                break;
            }
        }
        if (gb.gb_stop && now_s() > end + 10)
            break; /* answers that never come */
    }
    double el = now_s() - t0;
    if (json)
        printf("{\"protocol\":\"grpc\",\"streams\":%d,\"size\":%d,\"seconds\":%.3f,\"sent\":%ld,"
               "\"errors\":%ld,\"msgs_per_s\":%.0f}\n",
               streams, size, el, gb.gb_ok, gb.gb_err, gb.gb_ok / el);
    else
        printf("grpc produce: %ld messages of %d B in %.2f s over 1 connection x %d streams: "
               "%.0f msg/s, %ld errors\n",
               gb.gb_ok, size, el, streams, gb.gb_ok / el, gb.gb_err);
    nghttp2_session_del(gb.gb_h2);
    close(gb.gb_fd);
    free(gb.gb_req);
    return rc || gb.gb_err ? 1 : 0;
}

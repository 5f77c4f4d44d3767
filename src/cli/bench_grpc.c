/* `apogee bench produce|consume --protocol=grpc`: load generators for the
 * gRPC port, SendMessage on one HTTP/2 connection with N concurrent
 * streams, or ReceiveMessage + AckMessage as SimpleConsumers do.
 *
 * Design. One thread drives every connection with poll; each connection
 * has a blocking-free TCP socket and an nghttp2 client session. Whatever
 * the sessions want to send is gathered with nghttp2_session_mem_send into
 * the connection's output buffer and written with one send(2) per loop
 * iteration, so the generator's own system calls stay few per message.
 * Responses are unpacked with a bump allocator that is reset after each
 * one (no malloc per field).
 *
 * produce: the request (a SendMessageRequest with one normal message of
 * --size bytes) is packed once; each stream sends it with the headers a 5.x
 * SDK sends. Whenever a stream closes another is opened, so --streams calls
 * are always in flight, for --duration seconds or until --messages were
 * sent. A call counts as sent when its trailers say grpc-status 0 and the
 * response status code is OK (20000).
 *
 * consume: --consumers connections of one group (--group), each keeping
 * --inflight ReceiveMessage calls (batch --pullBatch, long polling 1 s,
 * invisible duration --invisible ms) in flight; the messages of a receive
 * are acknowledged with one AckMessage naming all of them. Every delivery
 * is checked against a table indexed by (queue, offset): a message
 * delivered again while its invisible time lasts, or after it was
 * acknowledged, counts as a duplicate; the run ends after --messages
 * acknowledged messages, after --duration, or when no message came for
 * 3 s. With --messages, lost = messages - distinct acknowledged; gaps are
 * offsets below a queue's highest delivered one never seen.
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

#define SVC "/apache.rocketmq.v2.MessagingService/"
#define OUT_HIGH (256 * 1024) /* stop gathering frames past this much unsent output */
#define ARENA_CAP (1 << 20)
#define IDLE_END_S 3.0
#define MAX_QUEUES 1024
#define CODE_OK APACHE__ROCKETMQ__V2__CODE__OK

/* ---- the bump allocator for unpacking responses ---- */

struct arena {
    uint8_t *ar_buf;
    size_t ar_used;
    void **ar_big; /* allocations that did not fit, freed at reset */
    size_t ar_n_big, ar_cap_big;
};

static void *arena_alloc(void *ud, size_t n)
{
    struct arena *a = ud;
    n = (n + 15) & ~(size_t)15;
    if (a->ar_used + n <= ARENA_CAP) {
        void *p = a->ar_buf + a->ar_used;
        a->ar_used += n;
        return p;
    }
    if (a->ar_n_big == a->ar_cap_big) {
        size_t cap = a->ar_cap_big ? a->ar_cap_big * 2 : 16;
        void **v = realloc(a->ar_big, cap * sizeof(*v));
        if (!v)
            return NULL;
        a->ar_big = v;
        a->ar_cap_big = cap;
    }
    void *p = malloc(n);
    if (p)
        a->ar_big[a->ar_n_big++] = p;
    return p;
}

static void arena_nofree(void *ud, void *p)
{
    (void)ud;
    (void)p;
}

static void arena_reset(struct arena *a)
{
    for (size_t i = 0; i < a->ar_n_big; i++)
        free(a->ar_big[i]);
    a->ar_n_big = 0;
    a->ar_used = 0;
}

/* ---- shared state ---- */

enum { ST_SEND, ST_RECV, ST_ACK };

struct bconn;

struct gstream {
    int gs_kind;
    struct bconn *gs_conn;
    const uint8_t *gs_req; /* prefixed request: shared (send, receive) or gs_own */
    size_t gs_req_len, gs_off;
    uint8_t *gs_own;
    bool gs_ok_status; /* grpc-status 0 seen */
    uint8_t *gs_resp;
    size_t gs_resp_len, gs_resp_cap;
    uint8_t gs_small[256];
};

/* Per message (consume): 0 never delivered, 1 delivered, 2 acknowledged. */
struct qtab {
    uint8_t *qt_state;
    uint32_t *qt_at_ms; /* last delivery, ms since the start */
    int64_t qt_cap;
    int64_t qt_max; /* highest offset delivered + 1 */
};

struct gbench {
    const struct apg_bench_grpc_opts *gb_o;
    double gb_t0, gb_end;
    bool gb_stop;
    long gb_ok, gb_err;
    long gb_submitted; /* produce */
    /* consume */
    long gb_received, gb_acked, gb_distinct, gb_dup_invisible, gb_dup_after_ack, gb_ack_err;
    long gb_recv_err;
    double gb_last_msg;
    struct qtab gb_q[MAX_QUEUES];
    uint8_t *gb_recv_req; /* the packed ReceiveMessageRequest, prefixed */
    size_t gb_recv_req_len;
    uint8_t *gb_send_req;
    size_t gb_send_req_len;
    struct arena gb_arena;
    nghttp2_session_callbacks *gb_cbs;
};

struct bconn {
    struct gbench *bc_gb;
    int bc_fd;
    nghttp2_session *bc_h2;
    uint8_t *bc_out;
    size_t bc_out_len, bc_out_off, bc_out_cap;
    int bc_inflight; /* produce: SendMessage calls; consume: ReceiveMessage calls */
    int bc_acks;     /* AckMessage calls in flight */
    bool bc_dead;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint8_t *prefixed_pack(const ProtobufCMessage *m, size_t *len)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *p = malloc(n + 5);
    if (!p)
        return NULL;
    p[0] = 0;
    p[1] = (uint8_t)(n >> 24);
    p[2] = (uint8_t)(n >> 16);
    p[3] = (uint8_t)(n >> 8);
    p[4] = (uint8_t)n;
    protobuf_c_message_pack(m, p + 5);
    *len = n + 5;
    return p;
}

/* ---- HTTP/2 plumbing ---- */

static ssize_t req_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                        nghttp2_data_source *src, void *ud)
{
    struct gstream *st = src->ptr;
    size_t left = st->gs_req_len - st->gs_off;
    size_t n = left < len ? left : len;
    memcpy(buf, st->gs_req + st->gs_off, n);
    st->gs_off += n;
    if (st->gs_off == st->gs_req_len)
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
    if (!st)
        return 0;
    if (st->gs_resp_len + len > st->gs_resp_cap) {
        size_t cap = st->gs_resp_cap * 2;
        while (cap < st->gs_resp_len + len)
            cap *= 2;
        uint8_t *p = st->gs_resp == st->gs_small ? malloc(cap) : realloc(st->gs_resp, cap);
        if (!p)
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        if (st->gs_resp == st->gs_small)
            memcpy(p, st->gs_small, st->gs_resp_len);
        st->gs_resp = p;
        st->gs_resp_cap = cap;
    }
    memcpy(st->gs_resp + st->gs_resp_len, data, len);
    st->gs_resp_len += len;
    return 0;
}

static void stream_free(struct gstream *st)
{
    if (st->gs_resp != st->gs_small)
        free(st->gs_resp);
    free(st->gs_own);
    free(st);
}

static int submit(struct bconn *c, int kind, const char *method, const uint8_t *req, size_t len,
                  uint8_t *own)
{
    struct gstream *st = calloc(1, sizeof(*st));
    if (!st) {
        free(own);
        return -1;
    }
    st->gs_kind = kind;
    st->gs_conn = c;
    st->gs_req = req;
    st->gs_req_len = len;
    st->gs_own = own;
    st->gs_resp = st->gs_small;
    st->gs_resp_cap = sizeof st->gs_small;
    char path[96];
    snprintf(path, sizeof path, SVC "%s", method);
    const char *auth = c->bc_gb->gb_o->bo_addr;
#define HDR(n, v) {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE}
    nghttp2_nv hd[] = {
        HDR(":method", "POST"),
        HDR(":scheme", "http"),
        HDR(":path", path),
        HDR(":authority", auth),
        HDR("content-type", "application/grpc"),
        HDR("te", "trailers"),
        HDR("x-mq-client-id", "apogee-bench"),
        HDR("x-mq-protocol", "v2"),
    };
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = req_read};
    int32_t id = nghttp2_submit_request(c->bc_h2, NULL, hd, sizeof hd / sizeof hd[0], &prd, st);
    if (id < 0) {
        stream_free(st);
        return -1;
    }
    if (kind == ST_ACK)
        c->bc_acks++;
    else
        c->bc_inflight++;
    return 0;
}

/* The first gRPC message of the response unpacked with desc (arena). */
static ProtobufCMessage *resp_first(struct gbench *gb, const struct gstream *st,
                                    const ProtobufCMessageDescriptor *desc)
{
    if (!st->gs_ok_status || st->gs_resp_len < 5)
        return NULL;
    uint32_t n = (uint32_t)st->gs_resp[1] << 24 | (uint32_t)st->gs_resp[2] << 16 |
                 (uint32_t)st->gs_resp[3] << 8 | st->gs_resp[4];
    if (n > st->gs_resp_len - 5)
        return NULL;
    ProtobufCAllocator al = {arena_alloc, arena_nofree, &gb->gb_arena};
    return protobuf_c_message_unpack(desc, &al, n, st->gs_resp + 5);
}

/* ---- consume bookkeeping ---- */

static bool qtab_grow(struct qtab *q, int64_t off)
{
    if (off < q->qt_cap)
        return true;
    int64_t cap = q->qt_cap ? q->qt_cap : 4096;
    while (cap <= off)
        cap *= 2;
    uint8_t *s = realloc(q->qt_state, (size_t)cap);
    if (!s)
        return false;
    q->qt_state = s;
    uint32_t *at = realloc(q->qt_at_ms, (size_t)cap * sizeof(*at));
    if (!at)
        return false;
    q->qt_at_ms = at;
    memset(s + q->qt_cap, 0, (size_t)(cap - q->qt_cap));
    q->qt_cap = cap;
    return true;
}

/* One delivered message: checked, then named in the AckMessage being built. */
static void note_delivery(struct gbench *gb, const Apache__Rocketmq__V2__SystemProperties *sp)
{
    gb->gb_received++;
    gb->gb_last_msg = now_s();
    int32_t qid = sp->queue_id;
    int64_t off = sp->queue_offset;
    if (qid < 0 || qid >= MAX_QUEUES || off < 0 || !qtab_grow(&gb->gb_q[qid], off))
        return;
    struct qtab *q = &gb->gb_q[qid];
    uint32_t at = (uint32_t)((gb->gb_last_msg - gb->gb_t0) * 1000);
    if (q->qt_state[off] == 1 && at - q->qt_at_ms[off] < (uint32_t)gb->gb_o->bo_invisible_ms)
        gb->gb_dup_invisible++;
    else if (q->qt_state[off] == 2)
        gb->gb_dup_after_ack++;
    if (q->qt_state[off] == 0)
        gb->gb_distinct++;
    if (q->qt_state[off] != 2)
        q->qt_state[off] = 1;
    q->qt_at_ms[off] = at;
    if (off + 1 > q->qt_max)
        q->qt_max = off + 1;
}

/* A closed ReceiveMessage: deliveries noted, one AckMessage for them all. */
static void recv_done(struct gbench *gb, struct bconn *c, struct gstream *st)
{
    const struct apg_bench_grpc_opts *o = gb->gb_o;
    ProtobufCAllocator al = {arena_alloc, arena_nofree, &gb->gb_arena};
    Apache__Rocketmq__V2__AckMessageEntry *ents = NULL, **ep = NULL;
    size_t n_ent = 0, cap = 0;
    bool status_seen = false;
    for (size_t p = 0; p + 5 <= st->gs_resp_len;) {
        const uint8_t *h = st->gs_resp + p;
        uint32_t n = (uint32_t)h[1] << 24 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 8 | h[4];
        if (n > st->gs_resp_len - p - 5)
            break;
        Apache__Rocketmq__V2__ReceiveMessageResponse *r =
            apache__rocketmq__v2__receive_message_response__unpack(&al, n, h + 5);
        p += 5 + n;
        if (!r)
            continue;
        if (r->content_case == APACHE__ROCKETMQ__V2__RECEIVE_MESSAGE_RESPONSE__CONTENT_STATUS) {
            status_seen = true;
            if (r->status && r->status->code != CODE_OK &&
                r->status->code != APACHE__ROCKETMQ__V2__CODE__MESSAGE_NOT_FOUND)
                gb->gb_recv_err++;
        } else if (r->content_case ==
                       APACHE__ROCKETMQ__V2__RECEIVE_MESSAGE_RESPONSE__CONTENT_MESSAGE &&
                   r->message && r->message->system_properties) {
            const Apache__Rocketmq__V2__SystemProperties *sp = r->message->system_properties;
            note_delivery(gb, sp);
            if (n_ent == cap) {
                cap = cap ? cap * 2 : 64;
                ents = realloc(ents, cap * sizeof(*ents));
                ep = realloc(ep, cap * sizeof(*ep));
                if (!ents || !ep)
                    break;
            }
            apache__rocketmq__v2__ack_message_entry__init(&ents[n_ent]);
            ents[n_ent].message_id = sp->message_id;
            ents[n_ent].receipt_handle = sp->receipt_handle;
            n_ent++;
        }
    }
    if (!st->gs_ok_status || !status_seen)
        gb->gb_recv_err++;
    if (n_ent && ents && ep) {
        for (size_t i = 0; i < n_ent; i++)
            ep[i] = &ents[i];
        Apache__Rocketmq__V2__Resource grp = APACHE__ROCKETMQ__V2__RESOURCE__INIT;
        Apache__Rocketmq__V2__Resource top = APACHE__ROCKETMQ__V2__RESOURCE__INIT;
        grp.name = (char *)o->bo_group;
        top.name = (char *)o->bo_topic;
        Apache__Rocketmq__V2__AckMessageRequest ar =
            APACHE__ROCKETMQ__V2__ACK_MESSAGE_REQUEST__INIT;
        ar.group = &grp;
        ar.topic = &top;
        ar.n_entries = n_ent;
        ar.entries = ep;
        size_t len;
        uint8_t *req = prefixed_pack(&ar.base, &len);
        if (req)
            submit(c, ST_ACK, "AckMessage", req, len, req);
    }
    free(ents);
    free(ep);
    arena_reset(&gb->gb_arena);
}

/* Counts an answered AckMessage and marks its entries acknowledged: queue
 * and offset are the receipt handle's queueId and queueOffset fields, read
 * from the request. */
static void ack_done(struct gbench *gb, struct gstream *st)
{
    Apache__Rocketmq__V2__AckMessageResponse *r =
        (Apache__Rocketmq__V2__AckMessageResponse *)resp_first(
            gb, st, &apache__rocketmq__v2__ack_message_response__descriptor);
    ProtobufCAllocator al = {arena_alloc, arena_nofree, &gb->gb_arena};
    Apache__Rocketmq__V2__AckMessageRequest *rq =
        apache__rocketmq__v2__ack_message_request__unpack(&al, st->gs_req_len - 5, st->gs_req + 5);
    if (!r || !rq) {
        gb->gb_ack_err += rq ? (long)rq->n_entries : 1;
        arena_reset(&gb->gb_arena);
        return;
    }
    for (size_t i = 0; i < rq->n_entries; i++) {
        bool ok = r->status && r->status->code == CODE_OK;
        if (!ok && i < r->n_entries && r->entries[i]->status)
            ok = r->entries[i]->status->code == CODE_OK;
        if (!ok) {
            gb->gb_ack_err++;
            continue;
        }
        gb->gb_acked++;
        /* The handle ends "... queueId queueOffset commitLogOffset". */
        const char *h = rq->entries[i]->receipt_handle;
        const char *e = h + strlen(h);
        int sp = 0;
        const char *f[3] = {0};
        for (const char *p = e; p > h && sp < 3; p--)
            if (p[-1] == ' ')
                f[sp++] = p;
        if (sp == 3) {
            long qid = strtol(f[2], NULL, 10);
            long long off = strtoll(f[1], NULL, 10);
            if (qid >= 0 && qid < MAX_QUEUES && off >= 0 && off < gb->gb_q[qid].qt_cap)
                gb->gb_q[qid].qt_state[off] = 2;
        }
    }
    arena_reset(&gb->gb_arena);
}

static int on_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
    struct bconn *c = ud;
    struct gbench *gb = c->bc_gb;
    struct gstream *st = nghttp2_session_get_stream_user_data(s, id);
    if (!st)
        return 0;
    bool done = code == NGHTTP2_NO_ERROR;
    if (st->gs_kind == ST_SEND) {
        c->bc_inflight--;
        Apache__Rocketmq__V2__SendMessageResponse *r =
            done ? (Apache__Rocketmq__V2__SendMessageResponse *)resp_first(
                       gb, st, &apache__rocketmq__v2__send_message_response__descriptor)
                 : NULL;
        if (r && r->status && r->status->code == CODE_OK)
            gb->gb_ok++;
        else
            gb->gb_err++;
        arena_reset(&gb->gb_arena);
        long limit = gb->gb_o->bo_messages;
        if (!gb->gb_stop && (!limit || gb->gb_submitted < limit)) {
            gb->gb_submitted++;
            submit(c, ST_SEND, "SendMessage", gb->gb_send_req, gb->gb_send_req_len, NULL);
        }
    } else if (st->gs_kind == ST_RECV) {
        c->bc_inflight--;
        if (done)
            recv_done(gb, c, st);
        else
            gb->gb_recv_err++;
        if (!gb->gb_stop)
            submit(c, ST_RECV, "ReceiveMessage", gb->gb_recv_req, gb->gb_recv_req_len, NULL);
    } else {
        c->bc_acks--;
        if (done)
            ack_done(gb, st);
        else
            gb->gb_ack_err++;
    }
    stream_free(st);
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

static int conn_open(struct gbench *gb, struct bconn *c)
{
    c->bc_gb = gb;
    c->bc_fd = connect_to(gb->gb_o->bo_addr);
    if (c->bc_fd < 0)
        return -1;
    nghttp2_session_client_new(&c->bc_h2, gb->gb_cbs, c);
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 24}};
    nghttp2_submit_settings(c->bc_h2, NGHTTP2_FLAG_NONE, iv, 1);
    nghttp2_session_set_local_window_size(c->bc_h2, NGHTTP2_FLAG_NONE, 0, 1 << 30);
    return 0;
}

/* Gathers the session's frames into the output buffer, then one send(2). */
static int conn_write(struct bconn *c)
{
    while (c->bc_out_len - c->bc_out_off < OUT_HIGH) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(c->bc_h2, &data);
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        if (c->bc_out_len + (size_t)n > c->bc_out_cap) {
            if (c->bc_out_off) {
                memmove(c->bc_out, c->bc_out + c->bc_out_off, c->bc_out_len - c->bc_out_off);
                c->bc_out_len -= c->bc_out_off;
                c->bc_out_off = 0;
            }
            size_t cap = c->bc_out_cap ? c->bc_out_cap : 65536;
            while (cap < c->bc_out_len + (size_t)n)
                cap *= 2;
            if (cap != c->bc_out_cap) {
                uint8_t *p = realloc(c->bc_out, cap);
                if (!p)
                    return -1;
                c->bc_out = p;
                c->bc_out_cap = cap;
            }
        }
        memcpy(c->bc_out + c->bc_out_len, data, (size_t)n);
        c->bc_out_len += (size_t)n;
    }
    if (c->bc_out_off < c->bc_out_len) {
        ssize_t w = send(c->bc_fd, c->bc_out + c->bc_out_off, c->bc_out_len - c->bc_out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return -1;
        if (w > 0)
            c->bc_out_off += (size_t)w;
        if (c->bc_out_off == c->bc_out_len)
            c->bc_out_off = c->bc_out_len = 0;
    }
    return 0;
}

static bool conn_want_write(const struct bconn *c)
{
    return c->bc_out_off < c->bc_out_len || nghttp2_session_want_write(c->bc_h2);
}

/* Runs the connections until every call ended (or 10 s after the stop). */
static int run_loop(struct gbench *gb, struct bconn *cs, int n,
                    bool (*should_stop)(struct gbench *gb))
{
    struct pollfd pf[n];
    uint8_t buf[65536];
    int rc = 0;
    for (;;) {
        double t = now_s();
        if (!gb->gb_stop && (t >= gb->gb_end || should_stop(gb)))
            gb->gb_stop = true;
        int busy = 0;
        for (int i = 0; i < n; i++) {
            struct bconn *c = &cs[i];
            pf[i].fd = -1;
            if (c->bc_dead)
                continue;
            if (conn_write(c)) {
                c->bc_dead = true;
                rc = 1;
                continue;
            }
            busy += c->bc_inflight + c->bc_acks;
            pf[i].fd = c->bc_fd;
            pf[i].events = POLLIN | (conn_want_write(c) ? POLLOUT : 0);
            pf[i].revents = 0;
        }
        if (gb->gb_stop && busy == 0)
            break;
        if (gb->gb_stop && t > gb->gb_end + 10)
            break; /* answers that never come */
        if (poll(pf, (nfds_t)n, 200) < 0 && errno != EINTR)
            return 1;
        for (int i = 0; i < n; i++) {
            struct bconn *c = &cs[i];
            if (c->bc_dead || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t r = recv(c->bc_fd, buf, sizeof buf, MSG_DONTWAIT);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                fprintf(stderr, "bench: the gRPC port closed the connection\n");
                c->bc_dead = true;
                rc = 1;
                continue;
            }
            if (r > 0 && nghttp2_session_mem_recv(c->bc_h2, buf, (size_t)r) < 0) {
                c->bc_dead = true;
                rc = 1;
            }
        }
        bool all_dead = true;
        for (int i = 0; i < n; i++)
            all_dead &= cs[i].bc_dead;
        if (all_dead)
            break;
    }
    return rc;
}

static void conns_close(struct bconn *cs, int n)
{
    for (int i = 0; i < n; i++) {
        if (cs[i].bc_h2)
            nghttp2_session_del(cs[i].bc_h2);
        if (cs[i].bc_fd > 0)
            close(cs[i].bc_fd);
        free(cs[i].bc_out);
    }
}

static int bench_init(struct gbench *gb, const struct apg_bench_grpc_opts *o)
{
    memset(gb, 0, sizeof(*gb));
    gb->gb_o = o;
    gb->gb_arena.ar_buf = malloc(ARENA_CAP);
    if (!gb->gb_arena.ar_buf)
        return -1;
    nghttp2_session_callbacks_new(&gb->gb_cbs);
    nghttp2_session_callbacks_set_on_header_callback(gb->gb_cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(gb->gb_cbs, on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(gb->gb_cbs, on_close);
    return 0;
}

static void bench_free(struct gbench *gb)
{
    nghttp2_session_callbacks_del(gb->gb_cbs);
    arena_reset(&gb->gb_arena);
    free(gb->gb_arena.ar_buf);
    free(gb->gb_arena.ar_big);
    free(gb->gb_send_req);
    free(gb->gb_recv_req);
    for (int i = 0; i < MAX_QUEUES; i++) {
        free(gb->gb_q[i].qt_state);
        free(gb->gb_q[i].qt_at_ms);
    }
}

/* ---- produce ---- */

static int build_send_request(struct gbench *gb)
{
    const struct apg_bench_grpc_opts *o = gb->gb_o;
    uint8_t *body = malloc((size_t)o->bo_size);
    if (!body)
        return -1;
    memset(body, 'x', (size_t)o->bo_size);
    Apache__Rocketmq__V2__Resource res = APACHE__ROCKETMQ__V2__RESOURCE__INIT;
    res.name = (char *)o->bo_topic;
    Apache__Rocketmq__V2__SystemProperties sp = APACHE__ROCKETMQ__V2__SYSTEM_PROPERTIES__INIT;
    sp.message_id = "0100000000000000000000000000000000";
    sp.message_type = APACHE__ROCKETMQ__V2__MESSAGE_TYPE__NORMAL;
    sp.body_encoding = APACHE__ROCKETMQ__V2__ENCODING__IDENTITY;
    sp.tag = "bench";
    Apache__Rocketmq__V2__Message m = APACHE__ROCKETMQ__V2__MESSAGE__INIT;
    m.topic = &res;
    m.system_properties = &sp;
    m.body.data = body;
    m.body.len = (size_t)o->bo_size;
    Apache__Rocketmq__V2__Message *mp = &m;
    Apache__Rocketmq__V2__SendMessageRequest rq = APACHE__ROCKETMQ__V2__SEND_MESSAGE_REQUEST__INIT;
    rq.n_messages = 1;
    rq.messages = &mp;
    gb->gb_send_req = prefixed_pack(&rq.base, &gb->gb_send_req_len);
    free(body);
    return gb->gb_send_req ? 0 : -1;
}

static bool produce_done(struct gbench *gb)
{
    return gb->gb_o->bo_messages && gb->gb_ok + gb->gb_err >= gb->gb_o->bo_messages;
}

int apg_cli_bench_grpc_produce(const struct apg_bench_grpc_opts *o)
{
    struct gbench gb;
    struct bconn c = {0};
    if (bench_init(&gb, o) || build_send_request(&gb)) {
        fprintf(stderr, "bench: out of memory\n");
        bench_free(&gb);
        return 1;
    }
    if (conn_open(&gb, &c)) {
        fprintf(stderr, "bench: cannot connect to the gRPC port %s: %s\n", o->bo_addr,
                strerror(errno));
        bench_free(&gb);
        return 1;
    }
    for (int i = 0; i < o->bo_streams && (!o->bo_messages || gb.gb_submitted < o->bo_messages);
         i++) {
        gb.gb_submitted++;
        submit(&c, ST_SEND, "SendMessage", gb.gb_send_req, gb.gb_send_req_len, NULL);
    }
    gb.gb_t0 = now_s();
    gb.gb_end = gb.gb_t0 + o->bo_secs;
    int rc = run_loop(&gb, &c, 1, produce_done);
    double el = now_s() - gb.gb_t0;
    if (o->bo_json)
        printf("{\"protocol\":\"grpc\",\"streams\":%d,\"size\":%d,\"seconds\":%.3f,\"sent\":%ld,"
               "\"errors\":%ld,\"msgs_per_s\":%.0f}\n",
               o->bo_streams, o->bo_size, el, gb.gb_ok, gb.gb_err, gb.gb_ok / el);
    else
        printf("grpc produce: %ld messages of %d B in %.2f s over 1 connection x %d streams: "
               "%.0f msg/s, %ld errors\n",
               gb.gb_ok, o->bo_size, el, o->bo_streams, gb.gb_ok / el, gb.gb_err);
    conns_close(&c, 1);
    long err = gb.gb_err;
    bench_free(&gb);
    return rc || err ? 1 : 0;
}

/* ---- consume ---- */

static int build_recv_request(struct gbench *gb)
{
    const struct apg_bench_grpc_opts *o = gb->gb_o;
    Apache__Rocketmq__V2__Resource grp = APACHE__ROCKETMQ__V2__RESOURCE__INIT;
    Apache__Rocketmq__V2__Resource top = APACHE__ROCKETMQ__V2__RESOURCE__INIT;
    grp.name = (char *)o->bo_group;
    top.name = (char *)o->bo_topic;
    Apache__Rocketmq__V2__MessageQueue mq = APACHE__ROCKETMQ__V2__MESSAGE_QUEUE__INIT;
    mq.topic = &top;
    mq.id = -1;
    Apache__Rocketmq__V2__FilterExpression fe = APACHE__ROCKETMQ__V2__FILTER_EXPRESSION__INIT;
    fe.type = APACHE__ROCKETMQ__V2__FILTER_TYPE__TAG;
    fe.expression = "*";
    Apache__Rocketmq__V2__Duration inv = APACHE__ROCKETMQ__V2__DURATION__INIT;
    inv.seconds = o->bo_invisible_ms / 1000;
    inv.nanos = (int32_t)(o->bo_invisible_ms % 1000) * 1000000;
    Apache__Rocketmq__V2__Duration poll = APACHE__ROCKETMQ__V2__DURATION__INIT;
    poll.seconds = 1;
    Apache__Rocketmq__V2__ReceiveMessageRequest rq =
        APACHE__ROCKETMQ__V2__RECEIVE_MESSAGE_REQUEST__INIT;
    rq.group = &grp;
    rq.message_queue = &mq;
    rq.filter_expression = &fe;
    rq.batch_size = o->bo_batch;
    rq.invisible_duration = &inv;
    rq.long_polling_timeout = &poll;
    gb->gb_recv_req = prefixed_pack(&rq.base, &gb->gb_recv_req_len);
    return gb->gb_recv_req ? 0 : -1;
}

static bool consume_done(struct gbench *gb)
{
    if (gb->gb_o->bo_messages && gb->gb_acked >= gb->gb_o->bo_messages)
        return true;
    return now_s() - gb->gb_last_msg >= IDLE_END_S;
}

int apg_cli_bench_grpc_consume(const struct apg_bench_grpc_opts *o)
{
    struct gbench *gb = malloc(sizeof(*gb));
    int n = o->bo_consumers;
    struct bconn *cs = calloc((size_t)n, sizeof(*cs));
    if (!gb || !cs || bench_init(gb, o) || build_recv_request(gb)) {
        fprintf(stderr, "bench: out of memory\n");
        if (gb)
            bench_free(gb);
        free(gb);
        free(cs);
        return 1;
    }
    int rc = 0;
    for (int i = 0; i < n && !rc; i++)
        if (conn_open(gb, &cs[i])) {
            fprintf(stderr, "bench: cannot connect to the gRPC port %s: %s\n", o->bo_addr,
                    strerror(errno));
            rc = 1;
        }
    if (!rc) {
        for (int i = 0; i < n; i++)
            for (int k = 0; k < o->bo_inflight; k++)
                submit(&cs[i], ST_RECV, "ReceiveMessage", gb->gb_recv_req, gb->gb_recv_req_len,
                       NULL);
        gb->gb_t0 = gb->gb_last_msg = now_s();
        gb->gb_end = gb->gb_t0 + o->bo_secs;
        rc = run_loop(gb, cs, n, consume_done);
    }
    /* The rate counts until the last message came, not the idle tail. */
    double el = (gb->gb_last_msg > gb->gb_t0 ? gb->gb_last_msg : now_s()) - gb->gb_t0;
    if (el <= 0)
        el = 1e-3;
    long gaps = 0;
    for (int q = 0; q < MAX_QUEUES; q++)
        for (int64_t off = 0; off < gb->gb_q[q].qt_max; off++)
            gaps += gb->gb_q[q].qt_state[off] == 0;
    long lost = o->bo_messages ? o->bo_messages - gb->gb_distinct : gaps;
    if (lost < 0)
        lost = 0;
    if (o->bo_json)
        printf("{\"protocol\":\"grpc\",\"consumers\":%d,\"batch\":%d,\"seconds\":%.3f,"
               "\"received\":%ld,\"acked\":%ld,\"distinct\":%ld,\"dup_invisible\":%ld,"
               "\"dup_after_ack\":%ld,\"lost\":%ld,\"gaps\":%ld,\"ack_errors\":%ld,"
               "\"receive_errors\":%ld,\"msgs_per_s\":%.0f}\n",
               n, o->bo_batch, el, gb->gb_received, gb->gb_acked, gb->gb_distinct,
               gb->gb_dup_invisible, gb->gb_dup_after_ack, lost, gaps, gb->gb_ack_err,
               gb->gb_recv_err, gb->gb_acked / el);
    else
        printf("grpc consume: %ld messages received and %ld acknowledged in %.2f s by %d "
               "consumers: %.0f msg/s; %ld distinct, %ld delivered twice while invisible, %ld "
               "after their ack, %ld lost, %ld gaps, %ld ack errors, %ld receive errors\n",
               gb->gb_received, gb->gb_acked, el, n, gb->gb_acked / el, gb->gb_distinct,
               gb->gb_dup_invisible, gb->gb_dup_after_ack, lost, gaps, gb->gb_ack_err,
               gb->gb_recv_err);
    bool bad = gb->gb_dup_invisible || gb->gb_ack_err || gb->gb_recv_err || lost;
    conns_close(cs, n);
    bench_free(gb);
    free(gb);
    free(cs);
    return rc || bad ? 1 : 0;
}

/* End-to-end tests of the client against an in-process fake NameServer and
 * fake brokers (plain blocking sockets + the remoting codec, one thread per
 * connection). They check what goes on the wire (request codes, header
 * fields, properties, compression flag, batch bodies), the send results, the
 * retry on another broker when one refuses, NameServer failover, timeouts,
 * async and oneway sends, and the pull consumer (pull, long-poll answer,
 * offsets). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/client_int.h"
#include "common/clock.h"
#include "common/hash.h"
#include "common/mem.h"
#include "protocol/rcode.h"
#include "protocol/remoting.h"

/* ---- fake server ---- */

struct fake {
    int fd;
    int port;
    char name[32];           /* broker name */
    _Atomic int refuse_code; /* answer sends with this code when non-zero */
    _Atomic int busy_times;  /* answer this many more sends SYSTEM_BUSY */
    _Atomic int silent;      /* never answer sends */
    _Atomic int sends, batches, heartbeats, routes, oneway, pulls, commits;
    char last_props[4096];
    int last_sysflag;
    int last_qid;
    size_t last_body_len;
    uint8_t last_body[65536];
    _Atomic int64_t committed;
    pthread_mutex_t mu;
};

static struct fake *g_brokers[2];
static int g_nbrokers;
static char g_route[2048];
static pthread_mutex_t g_serve_mu = PTHREAD_MUTEX_INITIALIZER; /* one request at a time; g_route */

static int read_full(int fd, uint8_t *p, size_t n)
{
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static void reply(int fd, const struct apg_rcmd *req, int code, const char **kv,
                  const uint8_t *body, size_t blen)
{
    struct apg_rcmd resp;
    apg_rcmd_init_response(&resp, req, code, code ? "refused by fake" : NULL);
    for (int i = 0; kv && kv[i]; i += 2)
        apg_rcmd_ext_add(&resp, kv[i], kv[i + 1]);
    struct apg_buf out = APG_BUF_INIT;
    apg_rcmd_encode(&resp, body, (uint32_t)blen, &out);
    ssize_t w = write(fd, out.b_data, out.b_len);
    (void)w;
    apg_buf_free(&out);
}

/* One stored record per docs/wire.md §9.2 with the given queue offset. */
static void put_record(struct apg_buf *b, const char *topic, const char *body, const char *props,
                       int qid, int64_t qoff)
{
    size_t tl = strlen(topic), pl = strlen(props), bl = strlen(body);
    apg_buf_put_be32(b, (uint32_t)(91 + bl + tl + pl));
    apg_buf_put_be32(b, APG_MSGREC_MAGIC_V1);
    apg_buf_put_be32(b, (uint32_t)apg_rmq_crc32(body, bl));
    apg_buf_put_be32(b, (uint32_t)qid);
    apg_buf_put_be32(b, 0);
    apg_buf_put_be64(b, (uint64_t)qoff);
    apg_buf_put_be64(b, (uint64_t)(1000 + qoff));
    apg_buf_put_be32(b, 0);
    apg_buf_put_be64(b, 1);
    apg_buf_append(b, "\x7f\0\0\x01", 4);
    apg_buf_put_be32(b, 1);
    apg_buf_put_be64(b, 2);
    apg_buf_append(b, "\x7f\0\0\x01", 4);
    apg_buf_put_be32(b, 2);
    apg_buf_put_be32(b, 0);
    apg_buf_put_be64(b, 0);
    apg_buf_put_be32(b, (uint32_t)bl);
    apg_buf_append(b, body, bl);
    uint8_t t = (uint8_t)tl;
    apg_buf_append(b, &t, 1);
    apg_buf_append(b, topic, tl);
    apg_buf_put_be16(b, (uint16_t)pl);
    apg_buf_append(b, props, pl);
}

static void handle(struct fake *f, int fd, const struct apg_rcmd *req)
{
    char num[3][32];
    switch (req->code) {
    case APG_REQ_GET_ROUTEINFO_BY_TOPIC:
        f->routes++;
        if (strcmp(apg_rcmd_ext_get(req, "topic"), "NoSuchTopic") == 0 ||
            strcmp(apg_rcmd_ext_get(req, "topic"), "TBW102") == 0) {
            reply(fd, req, APG_RESP_TOPIC_NOT_EXIST, NULL, NULL, 0);
            return;
        }
        reply(fd, req, 0, NULL, (const uint8_t *)g_route, strlen(g_route));
        return;
    case APG_REQ_HEART_BEAT:
        f->heartbeats++;
        if (req->body_len == 0 || req->body[0] != '{')
            return; /* no answer: the client test sees a missing heartbeat count */
        reply(fd, req, 0, NULL, NULL, 0);
        return;
    case APG_REQ_SEND_MESSAGE_V2:
    case APG_REQ_SEND_BATCH_MESSAGE: {
        pthread_mutex_lock(&f->mu);
        if (req->code == APG_REQ_SEND_BATCH_MESSAGE)
            f->batches++;
        else
            f->sends++;
        snprintf(f->last_props, sizeof(f->last_props), "%s",
                 apg_rcmd_ext_get(req, "i") ? apg_rcmd_ext_get(req, "i") : "");
        apg_rcmd_ext_i32(req, "f", &f->last_sysflag);
        apg_rcmd_ext_i32(req, "e", &f->last_qid);
        f->last_body_len = req->body_len < sizeof(f->last_body) ? req->body_len : 0;
        memcpy(f->last_body, req->body, f->last_body_len);
        int qoff = f->sends + f->batches;
        pthread_mutex_unlock(&f->mu);
        if (apg_rcmd_is_oneway(req)) {
            f->oneway++;
            return;
        }
        if (f->silent)
            return;
        if (f->refuse_code) {
            reply(fd, req, f->refuse_code, NULL, NULL, 0);
            return;
        }
        if (atomic_load(&f->busy_times) > 0) {
            atomic_fetch_sub(&f->busy_times, 1);
            reply(fd, req, APG_RESP_SYSTEM_BUSY, NULL, NULL, 0);
            return;
        }
        snprintf(num[0], 32, "%d", f->last_qid);
        snprintf(num[1], 32, "%d", qoff);
        const char *kv[] = {
            "msgId", "7F00000100002A9F0000000000000001,X", "queueId", num[0], "queueOffset", num[1],
            NULL};
        reply(fd, req, 0, kv, NULL, 0);
        return;
    }
    case APG_REQ_PULL_MESSAGE: {
        f->pulls++;
        int64_t off = 0;
        apg_rcmd_ext_i64(req, "queueOffset", &off);
        int32_t qid = 0;
        apg_rcmd_ext_i32(req, "queueId", &qid);
        if (off >= 3) {
            /* Long poll: hold briefly, then "no new message". */
            usleep(200 * 1000);
            snprintf(num[0], 32, "%lld", (long long)off);
            const char *kv[] = {"nextBeginOffset",      num[0], "minOffset", "0", "maxOffset", "3",
                                "suggestWhichBrokerId", "0",    NULL};
            reply(fd, req, APG_RESP_PULL_NOT_FOUND, kv, NULL, 0);
            return;
        }
        struct apg_buf b = APG_BUF_INIT;
        for (int64_t o = off; o < 3; o++)
            put_record(&b, apg_rcmd_ext_get(req, "topic"), o == 1 ? "m1" : "mX",
                       o == 1 ? "TAGS\001B\002" : "TAGS\001A\002", qid, o);
        const char *kv[] = {"nextBeginOffset",      "3", "minOffset", "0", "maxOffset", "3",
                            "suggestWhichBrokerId", "0", NULL};
        reply(fd, req, 0, kv, b.b_data, b.b_len);
        apg_buf_free(&b);
        return;
    }
    case APG_REQ_UPDATE_CONSUMER_OFFSET: {
        int64_t v = 0;
        apg_rcmd_ext_i64(req, "commitOffset", &v);
        pthread_mutex_lock(&f->mu);
        f->committed = v;
        f->commits++;
        pthread_mutex_unlock(&f->mu);
        if (!apg_rcmd_is_oneway(req))
            reply(fd, req, 0, NULL, NULL, 0);
        return;
    }
    case APG_REQ_QUERY_CONSUMER_OFFSET: {
        pthread_mutex_lock(&f->mu);
        int64_t v = f->committed;
        pthread_mutex_unlock(&f->mu);
        if (v == 0) {
            reply(fd, req, APG_RESP_QUERY_NOT_FOUND, NULL, NULL, 0);
            return;
        }
        snprintf(num[0], 32, "%lld", (long long)v);
        const char *kv[] = {"offset", num[0], NULL};
        reply(fd, req, 0, kv, NULL, 0);
        return;
    }
    case APG_REQ_GET_MAX_OFFSET: {
        const char *kv[] = {"offset", "3", NULL};
        reply(fd, req, 0, kv, NULL, 0);
        return;
    }
    default:
        if (!apg_rcmd_is_oneway(req))
            reply(fd, req, APG_RESP_REQUEST_CODE_NOT_SUPPORTED, NULL, NULL, 0);
    }
}

struct conn_arg {
    struct fake *f;
    int fd;
};

static void *conn_main(void *arg)
{
    struct conn_arg *ca = arg;
    static char scratch[1 << 18];
    uint8_t *frame = malloc(1 << 20);
    for (;;) {
        if (read_full(ca->fd, frame, 4) != 0)
            break;
        uint32_t len = apg_be32(frame);
        if (len + 4 > (1 << 20) || read_full(ca->fd, frame + 4, len) != 0)
            break;
        struct apg_rcmd *cmd = malloc(sizeof(*cmd));
        char err[128];
        pthread_mutex_lock(&g_serve_mu);
        apg_err_t e =
            apg_rcmd_decode(frame, len + 4, cmd, scratch, sizeof(scratch), err, sizeof(err));
        if (e == APG_OK)
            handle(ca->f, ca->fd, cmd);
        pthread_mutex_unlock(&g_serve_mu);
        free(cmd);
        if (e != APG_OK)
            break;
    }
    free(frame);
    close(ca->fd);
    free(ca);
    return NULL;
}

static void *accept_main(void *arg)
{
    struct fake *f = arg;
    for (;;) {
        int c = accept(f->fd, NULL, NULL);
        if (c < 0)
            return NULL;
        struct conn_arg *ca = malloc(sizeof(*ca));
        ca->f = f;
        ca->fd = c;
        pthread_t t;
        pthread_create(&t, NULL, conn_main, ca);
        pthread_detach(t);
    }
}

static struct fake *fake_start(const char *name)
{
    struct fake *f = calloc(1, sizeof(*f));
    snprintf(f->name, sizeof(f->name), "%s", name);
    pthread_mutex_init(&f->mu, NULL);
    f->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    bind(f->fd, (struct sockaddr *)&sa, sizeof(sa));
    socklen_t sl = sizeof(sa);
    getsockname(f->fd, (struct sockaddr *)&sa, &sl);
    f->port = ntohs(sa.sin_port);
    listen(f->fd, 16);
    pthread_t t;
    pthread_create(&t, NULL, accept_main, f);
    pthread_detach(t);
    return f;
}

/* Route: broker-a (4 queues) and, when two brokers run, broker-b (4 queues). */
static void make_route(void)
{
    pthread_mutex_lock(&g_serve_mu);
    size_t o = (size_t)snprintf(g_route, sizeof(g_route), "{\"brokerDatas\":[");
    for (int i = 0; i < g_nbrokers; i++)
        o += (size_t)snprintf(g_route + o, sizeof(g_route) - o,
                              "%s{\"brokerAddrs\":{0:\"127.0.0.1:%d\"},\"brokerName\":\"%s\","
                              "\"cluster\":\"C\"}",
                              i ? "," : "", g_brokers[i]->port, g_brokers[i]->name);
    o += (size_t)snprintf(g_route + o, sizeof(g_route) - o, "],\"queueDatas\":[");
    for (int i = 0; i < g_nbrokers; i++)
        o += (size_t)snprintf(g_route + o, sizeof(g_route) - o,
                              "%s{\"brokerName\":\"%s\",\"perm\":6,\"readQueueNums\":4,"
                              "\"writeQueueNums\":4,\"topicSysFlag\":0}",
                              i ? "," : "", g_brokers[i]->name);
    snprintf(g_route + o, sizeof(g_route) - o, "]}");
    pthread_mutex_unlock(&g_serve_mu);
}

static int setup(void **state)
{
    if (g_nbrokers == 0) {
        g_brokers[0] = fake_start("broker-a");
        g_brokers[1] = fake_start("broker-b");
    }
    for (int i = 0; i < 2; i++) {
        g_brokers[i]->refuse_code = 0;
        g_brokers[i]->busy_times = 0;
        g_brokers[i]->silent = 0;
        g_brokers[i]->sends = g_brokers[i]->batches = 0;
    }
    g_nbrokers = 1;
    make_route();
    return 0;
}

static apg_producer_t *new_producer(const char *ns, int timeout_ms, int binary)
{
    apg_conf_t *pc = apg_conf_new();
    char tmo[16];
    snprintf(tmo, sizeof(tmo), "%d", timeout_ms);
    assert_int_equal(apg_conf_set(pc, "namesrvAddr", ns, NULL, 0), APG_OK);
    assert_int_equal(apg_conf_set(pc, "producerGroup", "PG", NULL, 0), APG_OK);
    assert_int_equal(apg_conf_set(pc, "sendMsgTimeout", tmo, NULL, 0), APG_OK);
    assert_int_equal(apg_conf_set(pc, "serializeType", binary ? "ROCKETMQ" : "JSON", NULL, 0),
                     APG_OK);
    char err[256];
    apg_producer_t *p = apg_producer_new(pc, err, sizeof(err));
    apg_conf_destroy(pc); /* the producer keeps its own copy */
    if (p == NULL)
        fail_msg("producer: %s", err);
    return p;
}

static void test_sync_send(void **state)
{
    for (int binary = 0; binary < 2; binary++) {
        char ns[64];
        snprintf(ns, sizeof(ns), "127.0.0.1:%d", g_brokers[0]->port);
        apg_producer_t *p = new_producer(ns, 3000, binary);
        apg_message_t *m = apg_message_new("TopicT", "hello", 5);
        apg_message_set_tags(m, "TagA");
        apg_message_set_keys(m, "k1");
        apg_message_put_property(m, "u", "v");
        apg_send_result_t r;
        char err[256] = "";
        int before = g_brokers[0]->sends;
        assert_int_equal(apg_producer_send(p, m, &r, err, sizeof(err)), APG_OK);
        assert_int_equal(g_brokers[0]->sends, before + 1);
        assert_int_equal(r.sr_status, APG_SEND_OK);
        assert_string_equal(r.sr_offset_msg_id, "7F00000100002A9F0000000000000001");
        assert_string_equal(r.sr_msg_id, apg_message_id(m));
        assert_string_equal(r.sr_mq.mq_broker, "broker-a");
        assert_non_null(strstr(g_brokers[0]->last_props, "TAGS\001TagA\002"));
        assert_non_null(strstr(g_brokers[0]->last_props, "KEYS\001k1\002"));
        assert_non_null(strstr(g_brokers[0]->last_props, "u\001v\002"));
        assert_non_null(strstr(g_brokers[0]->last_props, "UNIQ_KEY\001"));
        assert_int_equal(g_brokers[0]->last_sysflag, 0);
        /* Round robin: four more sends visit the four queues. */
        int seen = 0;
        for (int i = 0; i < 4; i++) {
            assert_int_equal(apg_producer_send(p, m, &r, err, sizeof(err)), APG_OK);
            seen |= 1 << r.sr_mq.mq_queue_id;
        }
        assert_int_equal(seen, 0xF);
        /* A large body is compressed with the ZLIB flag. */
        char big[10000];
        memset(big, 'z', sizeof(big));
        apg_message_set_body(m, big, sizeof(big));
        assert_int_equal(apg_producer_send(p, m, &r, err, sizeof(err)), APG_OK);
        assert_int_equal(g_brokers[0]->last_sysflag, 0x301);
        assert_true(g_brokers[0]->last_body_len < 1000);
        uint8_t *plain;
        size_t pl;
        assert_int_equal(apg_msg_unzlib(g_brokers[0]->last_body, g_brokers[0]->last_body_len,
                                        1 << 20, &plain, &pl),
                         APG_OK);
        assert_int_equal(pl, sizeof(big));
        apg_free(plain);
        /* Unknown topic: NameServer says 17 for it and for TBW102. */
        apg_message_t *u = apg_message_new("NoSuchTopic", "x", 1);
        assert_int_equal(apg_producer_send(p, u, &r, err, sizeof(err)), APG_ENOTFOUND);
        assert_non_null(strstr(err, "NoSuchTopic"));
        apg_message_free(u);
        apg_message_free(m);
        assert_true(g_brokers[0]->heartbeats > 0);
        apg_producer_destroy(p);
    }
}

static void test_retry_other_broker(void **state)
{
    g_nbrokers = 2;
    make_route();
    g_brokers[0]->refuse_code = APG_RESP_SYSTEM_BUSY;
    char ns[64];
    snprintf(ns, sizeof(ns), "127.0.0.1:%d", g_brokers[0]->port);
    apg_producer_t *p = new_producer(ns, 3000, 1);
    apg_message_t *m = apg_message_new("TopicR", "x", 1);
    char err[256];
    apg_send_result_t r;
    for (int i = 0; i < 6; i++) {
        assert_int_equal(apg_producer_send(p, m, &r, err, sizeof(err)), APG_OK);
        assert_string_equal(r.sr_mq.mq_broker, "broker-b");
    }
    assert_true(g_brokers[0]->sends >= 1);
    /* Ordered sends do not move: the hash picks one queue and keeps it. */
    const char *key = "order-7";
    int32_t h = apg_java_hash(key, strlen(key)) % 8;
    int want = h < 0 ? -h : h;
    g_brokers[0]->refuse_code = 0;
    assert_int_equal(apg_producer_send_orderly(p, m, key, &r, err, sizeof(err)), APG_OK);
    assert_string_equal(r.sr_mq.mq_broker, want < 4 ? "broker-a" : "broker-b");
    assert_int_equal(r.sr_mq.mq_queue_id, want % 4);
    /* Both refuse: fails after 1 + retry_times attempts with the broker's reason. */
    g_brokers[0]->refuse_code = APG_RESP_SERVICE_NOT_AVAILABLE;
    g_brokers[1]->refuse_code = APG_RESP_SERVICE_NOT_AVAILABLE;
    int before = g_brokers[0]->sends + g_brokers[1]->sends;
    assert_int_equal(apg_producer_send(p, m, &r, err, sizeof(err)), APG_EBROKER);
    assert_int_equal(r.sr_broker_code, APG_RESP_SERVICE_NOT_AVAILABLE);
    assert_non_null(strstr(err, "SERVICE_NOT_AVAILABLE"));
    assert_int_equal(g_brokers[0]->sends + g_brokers[1]->sends, before + 3);
    apg_message_free(m);
    apg_producer_destroy(p);
}

/* SYSTEM_BUSY everywhere: the send backs off and tries again until its
 * timeout (more attempts than retryTimesWhenSendFailed allows for other
 * refusals), then fails with the retriable APG_EBUSY; once a broker takes
 * writes again a busy send completes. */
static void test_busy_backoff(void **state)
{
    g_nbrokers = 2;
    make_route();
    g_brokers[0]->refuse_code = APG_RESP_SYSTEM_BUSY;
    g_brokers[1]->refuse_code = APG_RESP_SYSTEM_BUSY;
    char ns[64];
    snprintf(ns, sizeof(ns), "127.0.0.1:%d", g_brokers[0]->port);
    apg_producer_t *p = new_producer(ns, 800, 1);
    apg_message_t *m = apg_message_new("TopicR", "x", 1);
    char err[512];
    apg_send_result_t r;
    int before = g_brokers[0]->sends + g_brokers[1]->sends;
    int64_t t0 = apg_mono_ms();
    int rc = apg_producer_send(p, m, &r, err, sizeof(err));
    int64_t took = apg_mono_ms() - t0;
    /* A retry is sent only when its back-off plus the last round trip fits
     * the deadline; on a loaded machine that retry's answer can still come
     * late (APG_ETIMEDOUT, retriable too). Either way it backed off. */
    assert_true(rc == APG_EBUSY || rc == APG_ETIMEDOUT);
    assert_true(apg_err_is_retriable(APG_EBUSY));
    if (rc == APG_EBUSY) {
        assert_int_equal(r.sr_broker_code, APG_RESP_SYSTEM_BUSY);
        assert_non_null(strstr(err, "SYSTEM_BUSY"));
        assert_non_null(strstr(err, "back-off"));
    }
    int attempts = g_brokers[0]->sends + g_brokers[1]->sends - before;
    assert_true(attempts > 3); /* 1 + retry_times (2) for any other refusal */
    assert_true(took >= 300 && took <= 1500);
    uint64_t busy = 0, retried = 0;
    apg_producer_busy_stats(p, &busy, &retried);
    /* Every answer was SYSTEM_BUSY; a timed-out last attempt has none. */
    assert_true(busy == (uint64_t)attempts ||
                (rc == APG_ETIMEDOUT && busy == (uint64_t)attempts - 1));
    assert_int_equal(retried, (uint64_t)attempts - 1);
    /* Once broker-b takes writes again, the send goes there after one back-off. */
    g_brokers[1]->refuse_code = 0;
    assert_int_equal(apg_producer_send(p, m, &r, err, sizeof(err)), APG_OK);
    assert_string_equal(r.sr_mq.mq_broker, "broker-b");
    apg_message_free(m);
    apg_producer_destroy(p);
}

/* Ordered and selected sends back off on SYSTEM_BUSY too, and try the same
 * queue again: the order of a sharding key is kept. */
static void test_busy_backoff_ordered(void **state)
{
    g_nbrokers = 2;
    make_route();
    char ns[64];
    snprintf(ns, sizeof(ns), "127.0.0.1:%d", g_brokers[0]->port);
    apg_producer_t *p = new_producer(ns, 3000, 1);
    apg_message_t *m = apg_message_new("TopicR", "x", 1);
    char err[512];
    apg_send_result_t r;
    const char *key = "order-7";
    int32_t h = apg_java_hash(key, strlen(key)) % 8;
    int want = h < 0 ? -h : h;
    struct fake *owner = g_brokers[want < 4 ? 0 : 1];
    struct fake *other = g_brokers[want < 4 ? 1 : 0];
    owner->busy_times = 3;
    int before = owner->sends, other_before = other->sends;
    assert_int_equal(apg_producer_send_orderly(p, m, key, &r, err, sizeof(err)), APG_OK);
    assert_int_equal(r.sr_mq.mq_queue_id, want % 4);
    assert_int_equal(owner->sends - before, 4);
    assert_int_equal(other->sends, other_before);
    uint64_t busy = 0, retried = 0;
    apg_producer_busy_stats(p, &busy, &retried);
    assert_int_equal(busy, 3);
    assert_int_equal(retried, 3);
    /* Busy past the send timeout: the retriable APG_EBUSY, still one queue. */
    owner->busy_times = 1000000;
    before = owner->sends;
    int rc = apg_producer_send_orderly(p, m, key, &r, err, sizeof(err));
    assert_true(rc == APG_EBUSY || rc == APG_ETIMEDOUT); /* as in test_busy_backoff */
    if (rc == APG_EBUSY)
        assert_non_null(strstr(err, "back-off"));
    assert_true(owner->sends - before > 3);
    assert_int_equal(other->sends, other_before);
    owner->busy_times = 0;
    apg_message_free(m);
    apg_producer_destroy(p);
}

static void test_namesrv_failover_and_timeout(void **state)
{
    /* First address refuses connections (closed port), second is good. */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    bind(s, (struct sockaddr *)&sa, sizeof(sa));
    socklen_t sl = sizeof(sa);
    getsockname(s, (struct sockaddr *)&sa, &sl);
    int dead = ntohs(sa.sin_port);
    close(s);
    char ns[128];
    snprintf(ns, sizeof(ns), "127.0.0.1:%d;127.0.0.1:%d", dead, g_brokers[0]->port);
    apg_producer_t *p = new_producer(ns, 500, 1);
    apg_message_t *m = apg_message_new("TopicF", "x", 1);
    char err[256];
    for (int i = 0; i < 3; i++)
        assert_int_equal(apg_producer_send(p, m, NULL, err, sizeof(err)), APG_OK);
    /* Broker never answers: the send times out within the send timeout. */
    g_brokers[0]->silent = 1;
    int64_t t0 = apg_now_ms();
    assert_int_equal(apg_producer_send(p, m, NULL, err, sizeof(err)), APG_ETIMEDOUT);
    int64_t dt = apg_now_ms() - t0;
    assert_true(dt >= 450 && dt < 1500);
    g_brokers[0]->silent = 0;
    apg_message_free(m);
    apg_producer_destroy(p);
}

struct async_ctx {
    pthread_mutex_t mu;
    int ok, failed;
};

static void on_sent(apg_err_t e, const apg_send_result_t *r, const char *msg, void *arg)
{
    struct async_ctx *c = arg;
    pthread_mutex_lock(&c->mu);
    if (e == APG_OK && r != NULL && r->sr_msg_id[0])
        c->ok++;
    else
        c->failed++;
    pthread_mutex_unlock(&c->mu);
}

static void test_async_oneway_batch(void **state)
{
    char ns[64];
    snprintf(ns, sizeof(ns), "127.0.0.1:%d", g_brokers[0]->port);
    apg_producer_t *p = new_producer(ns, 3000, 1);
    apg_message_t *m = apg_message_new("TopicA", "x", 1);
    char err[256];
    struct async_ctx c = {PTHREAD_MUTEX_INITIALIZER, 0, 0};
    for (int i = 0; i < 500; i++)
        assert_int_equal(apg_producer_send_async(p, m, on_sent, &c, err, sizeof(err)), APG_OK);
    for (int i = 0; i < 300; i++) {
        pthread_mutex_lock(&c.mu);
        int done = c.ok + c.failed;
        pthread_mutex_unlock(&c.mu);
        if (done == 500)
            break;
        usleep(10000);
    }
    assert_int_equal(c.ok, 500);
    int ow = g_brokers[0]->oneway;
    for (int i = 0; i < 10; i++)
        assert_int_equal(apg_producer_send_oneway(p, m, err, sizeof(err)), APG_OK);
    for (int i = 0; i < 100 && g_brokers[0]->oneway < ow + 10; i++)
        usleep(10000);
    assert_int_equal(g_brokers[0]->oneway, ow + 10);

    apg_message_t *b[3];
    for (int i = 0; i < 3; i++) {
        b[i] = apg_message_new("TopicA", "abc", 3);
        apg_message_set_tags(b[i], "T");
    }
    apg_send_result_t r;
    assert_int_equal(apg_producer_send_batch(p, b, 3, &r, err, sizeof(err)), APG_OK);
    assert_int_equal(g_brokers[0]->batches, 1);
    assert_string_equal(r.sr_msg_id, apg_message_id(b[0]));
    /* The body holds three records, each with its own UNIQ_KEY. */
    size_t pos = 0;
    int n = 0;
    while (pos < g_brokers[0]->last_body_len) {
        pos += apg_be32(g_brokers[0]->last_body + pos);
        n++;
    }
    assert_int_equal(pos, g_brokers[0]->last_body_len);
    assert_int_equal(n, 3);
    apg_message_set_delay_level(b[1], 2);
    assert_int_equal(apg_producer_send_batch(p, b, 3, &r, err, sizeof(err)), APG_EINVAL);
    for (int i = 0; i < 3; i++)
        apg_message_free(b[i]);
    apg_message_free(m);
    /* Async sends pending at destroy complete (here: all done already). */
    apg_producer_destroy(p);
}

static void test_pull_consumer(void **state)
{
    char ns[64];
    snprintf(ns, sizeof(ns), "127.0.0.1:%d", g_brokers[0]->port);
    apg_conf_t *cc = apg_conf_new();
    assert_int_equal(apg_conf_set(cc, "namesrvAddr", ns, NULL, 0), APG_OK);
    assert_int_equal(apg_conf_set(cc, "consumerGroup", "CG", NULL, 0), APG_OK);
    assert_int_equal(apg_conf_set(cc, "persistConsumerOffsetInterval", "200", NULL, 0), APG_OK);
    char err[256];
    apg_pull_consumer_t *c = apg_pull_consumer_new(cc, err, sizeof(err));
    apg_conf_destroy(cc);
    assert_non_null(c);
    apg_mq_t *mqs;
    size_t n;
    assert_int_equal(apg_pull_consumer_queues(c, "TopicP", &mqs, &n, err, sizeof(err)), APG_OK);
    assert_int_equal(n, 4);
    assert_string_equal(mqs[0].mq_broker, "broker-a");
    apg_pull_result_t r;
    /* Offsets 0..2 exist; tag filter keeps only B (offset 1). */
    assert_int_equal(apg_pull_consumer_pull(c, &mqs[2], "B", 0, 32, 0, &r, err, sizeof(err)),
                     APG_OK);
    assert_int_equal(r.pr_status, APG_PULL_FOUND);
    assert_int_equal(r.pr_count, 1);
    assert_int_equal(r.pr_next_offset, 3);
    assert_int_equal(apg_message_queue_offset(r.pr_msgs[0]), 1);
    assert_int_equal(apg_message_queue_id(r.pr_msgs[0]), 2);
    size_t bl;
    assert_memory_equal(apg_message_body(r.pr_msgs[0], &bl), "m1", 2);
    apg_pull_result_clear(&r);
    assert_int_equal(apg_pull_consumer_pull(c, &mqs[2], "*", 0, 32, 0, &r, err, sizeof(err)),
                     APG_OK);
    assert_int_equal(r.pr_count, 3);
    apg_pull_result_clear(&r);
    /* At the end: long poll held by the broker, then no new message. */
    int64_t t0 = apg_now_ms();
    assert_int_equal(apg_pull_consumer_pull(c, &mqs[2], "*", 3, 32, 5000, &r, err, sizeof(err)),
                     APG_OK);
    assert_int_equal(r.pr_status, APG_PULL_NO_NEW_MSG);
    assert_true(apg_now_ms() - t0 >= 150);
    int64_t off;
    assert_int_equal(apg_pull_consumer_max_offset(c, &mqs[0], &off, err, sizeof(err)), APG_OK);
    assert_int_equal(off, 3);
    /* Commit: sent by the periodic flush, then readable from the broker. */
    g_brokers[0]->committed = 0;
    assert_int_equal(apg_pull_consumer_committed(c, &mqs[1], &off, err, sizeof(err)),
                     APG_ENOTFOUND);
    assert_int_equal(apg_pull_consumer_commit(c, &mqs[1], 42), APG_OK);
    for (int i = 0; i < 200 && g_brokers[0]->committed != 42; i++)
        usleep(10000);
    assert_int_equal(g_brokers[0]->committed, 42);
    assert_int_equal(apg_pull_consumer_committed(c, &mqs[1], &off, err, sizeof(err)), APG_OK);
    assert_int_equal(off, 42);
    /* Destroy flushes the last commit synchronously. */
    assert_int_equal(apg_pull_consumer_commit(c, &mqs[1], 43), APG_OK);
    apg_mq_list_free(mqs);
    apg_pull_consumer_destroy(c);
    assert_int_equal(g_brokers[0]->committed, 43);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_sync_send, setup),
        cmocka_unit_test_setup(test_retry_other_broker, setup),
        cmocka_unit_test_setup(test_busy_backoff, setup),
        cmocka_unit_test_setup(test_busy_backoff_ordered, setup),
        cmocka_unit_test_setup(test_namesrv_failover_and_timeout, setup),
        cmocka_unit_test_setup(test_async_oneway_batch, setup),
        cmocka_unit_test_setup(test_pull_consumer, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

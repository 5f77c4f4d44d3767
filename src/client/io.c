/* The client I/O instance: one libuv loop thread per producer or consumer.
 *
 * Design. The loop thread owns the connections (one per address, created
 * on first use), the pending-request table, the topic routes and the
 * timers, and is the only one that changes them. Other threads hand it work
 * with apg_cio_submit() (a mutex-protected list plus uv_async_send), or, for
 * the hot send path, write requests themselves (direct sends, at the end of
 * this file): they read the route and the connection list and register the
 * request under io_rmu, then append to the connection's output buffer under
 * its cc_wmu and either write it on their own thread (one writer at a time,
 * which takes along what others appended meanwhile) or leave it to the loop
 * thread. Requests written during one loop iteration are coalesced per
 * connection and flushed with one uv_write from a uv_prepare handle, so a
 * burst of async sends costs one syscall. Answers are always read and
 * completed on the loop thread, which also wakes each sync waiter.
 *
 * Pending requests sit in a hash table by opaque (for responses) and in a
 * list ordered by deadline (for timeouts: a 10 ms timer fails expired ones):
 * protocol/remoting_conn's table, which the broker's outbound calls use as
 * well, as they share its frame decoding.
 * A closed connection fails all of its requests at once. Every request gets
 * exactly one callback: response, timeout, connection loss or shutdown.
 *
 * Routes: apg_cio_route() asks the current NameServer; on a connection error
 * or timeout it moves to the next address of the list (failover) and tries
 * each once. Known routes are refreshed every route_refresh_ms; a failed
 * refresh keeps the old route. Heartbeats (HEART_BEAT with a body built by
 * the owner) go to every master broker of every known route every
 * heartbeat_ms, and at once to a broker seen for the first time. */
#include <errno.h>
#include <linux/futex.h>
#include <netdb.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "client/client_int.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/tls.h"
#include "protocol/rcode.h"
#include "protocol/remoting.h"
#include "protocol/remoting_conn.h"
#include "protocol/sign.h"

#define REQ_BUCKETS 16384 /* pending requests by opaque; sequential opaques spread evenly */
#define READ_CHUNK 65536
#define DIRECT_MAX_QUEUED (4u << 20) /* unsent bytes above which direct sends stop */
/* Direct sends are written at once by the caller while at most this many
 * requests wait for answers (low load: no hop through the loop thread), and
 * left for one combined write by the loop thread above it (throughput). */
#define DIRECT_NOW_PENDING 8
#define TOPIC_DEFAULT "TBW102"
#define TLS_RBUF 32768 /* ciphertext read per call (TLS connections) */

struct apg_creq {
    struct apg_rconn_req rq_r; /* first: opaque, deadline (apg_now_ms), connection */
    apg_cio_cb rq_cb;
    void *rq_arg;
};

enum { CC_CONNECTING, CC_UP, CC_CLOSING };

struct apg_cconn {
    char cc_addr[128];
    int cc_state;
    bool cc_dirty; /* cc_out has data and the loop thread will flush it */
    bool cc_heartbeated;
    uv_tcp_t cc_tcp;
    uv_connect_t cc_connreq;
    /* cc_wmu guards cc_out, cc_spare, cc_dirty, cc_writing, cc_wclosed.
     * Bytes reach the socket in cc_out order from one writer at a time:
     * either libuv (uv_write, loop thread, under cc_wmu) or one direct
     * sender that set cc_writing and writes cc_out's content with the lock
     * released; others append meanwhile and the writer takes their bytes
     * along (write combining). */
    pthread_mutex_t cc_wmu;
    pthread_cond_t cc_wcv; /* cc_writing went false */
    bool cc_writing;
    bool cc_wclosed;     /* set before the handle is closed: no more direct writes */
    _Atomic int cc_refs; /* the loop's reference + one per direct sender */
    struct apg_buf cc_spare;
    struct apg_buf cc_out;
    struct apg_buf cc_in;
    /* TLS (io_tls set): cc_out holds plaintext, which the writer of the
     * moment encrypts into cc_cipher (under cc_wmu, like the session: the
     * loop thread decrypts under it too) and writes from there. The
     * connection is CC_UP only once the handshake finished. */
    struct apg_tls *cc_tls;
    struct apg_buf cc_cipher;
    uint8_t *cc_rbuf;    /* TLS_RBUF bytes of ciphertext read space */
    bool cc_tls_started; /* connected: the handshake runs */
    struct apg_cio *cc_io;
    struct apg_cconn *cc_next;
};

struct apg_wreq {
    uv_write_t wr_req;
    struct apg_buf wr_buf;
};

struct apg_rwait {
    apg_croute_cb rw_cb;
    void *rw_arg;
    struct apg_rwait *rw_next;
};

struct apg_delayed {
    int64_t dl_at;
    void (*dl_fn)(struct apg_cio *io, void *arg);
    void *dl_arg;
    struct apg_delayed *dl_next;
};

struct apg_cio {
    struct apg_cio_conf io_conf;
    const char *io_srv_addr;        /* during on_server_req: the connection's address */
    struct apg_cconn *io_srv_cc;    /* during on_server_req: the connection */
    struct apg_delayed *io_delayed; /* sorted by dl_at */
    uv_loop_t io_loop;
    uv_thread_t io_thread;
    uv_async_t io_async;
    uv_timer_t io_timer;
    uv_timer_t io_stop_timer; /* shutdown: limit for draining unsent bytes */
    int io_draining;          /* connections waiting in uv_shutdown */
    uv_prepare_t io_prepare;
    pthread_mutex_t io_qmu;
    struct apg_cop *io_qhead, *io_qtail;
    bool io_stop_req; /* guarded by io_qmu */
    bool io_stopping; /* loop thread */
    /* io_rmu guards what direct senders (other threads) read or change:
     * the request table, the conns list and cc_state, the topics list and
     * their routes, io_stopping. The loop thread reads these without it
     * and takes it to change them; callbacks never run under it. */
    pthread_mutex_t io_rmu;
    struct apg_cconn *io_conns;
    struct apg_rconn_reqs io_reqs; /* by opaque and by deadline */
    _Atomic int32_t io_opaque;
    char **io_ns;
    size_t io_nns, io_ns_cur;
    struct apg_ctopic *io_topics;
    char io_client_id[160];
    int64_t io_next_refresh, io_next_hb, io_next_tick;
    struct apg_rconn_decoder io_dec; /* every answer is decoded here (loop thread) */
    struct apg_tls_ctx *io_tls;      /* tls.enable: every connection is TLS */
    /* ACL signing (accessKey + secretKey set): read-only after apg_cio_new. */
    char *io_acl_ak;
    struct apg_hmac_key io_acl_key;
};

/* With an ACL account, adds AccessKey and Signature to req (any thread).
 * A command sent again is signed again: fields of an earlier signing are
 * dropped first. sig must live until req is encoded. */
static apg_err_t cio_sign(const struct apg_cio *io, struct apg_rcmd *req, const void *body,
                          size_t blen, char sig[APG_SIGN_LEN])
{
    if (!io->io_acl_ak)
        return APG_OK;
    uint32_t k = 0;
    for (uint32_t i = 0; i < req->n_ext; i++)
        if (strcmp(req->ext[i].key, APG_SIGN_ACCESS_KEY) != 0 &&
            strcmp(req->ext[i].key, APG_SIGN_SIGNATURE) != 0)
            req->ext[k++] = req->ext[i];
    req->n_ext = k;
    return apg_sign_request(req, io->io_acl_ak, &io->io_acl_key, body, blen, sig);
}

int64_t apg_now_ms(void)
{
    return apg_mono_ms();
}

/* ---- sync waits ---- */

static void futex_op(_Atomic uint32_t *addr, int op, uint32_t val)
{
    syscall(SYS_futex, (uint32_t *)addr, op, val, NULL, NULL, 0);
}

void apg_cwait_init(struct apg_cwait *w, int spin_us)
{
    atomic_init(&w->w_state, 0);
    w->w_spin_us = spin_us;
}

/* Adaptive busy-poll before sleeping. On a VM a vCPU that halts while its
 * thread sleeps takes tens of microseconds to wake, which is longer than a
 * whole request to a broker on the same host (docs/perf-log/perf-client.md, "Idle
 * vCPUs"). A waiter whose recent answers came back within the spin budget
 * therefore spins for up to twice that time before it sleeps; a thread whose
 * answers take longer (a remote broker, a loaded one, many threads) does not
 * spin at all, and only one thread per process spins at a time.
 * The conf key syncSpinMicros sets the budget (default 40, 0 = never spin). */
static _Atomic int spinners;
static __thread int64_t wait_avg_ns = -1; /* this thread's recent waits (EWMA) */

static bool spin_for(struct apg_cwait *w, int64_t t0)
{
    int64_t budget = (int64_t)w->w_spin_us * 1000;
    if (budget == 0 || wait_avg_ns > budget)
        return false;
    int exp = 0;
    if (!atomic_compare_exchange_strong(&spinners, &exp, 1))
        return false;
    int64_t limit = wait_avg_ns < 0 ? budget : 2 * wait_avg_ns + 5000;
    if (limit > budget)
        limit = budget;
    bool done = false;
    for (unsigned i = 1;; i++) {
        if (atomic_load_explicit(&w->w_state, memory_order_acquire) == 2) {
            done = true;
            break;
        }
        /* Yield rather than only pause: a runnable thread of this or
         * another process gets the CPU at once, and the vCPU still does not
         * halt while nothing else wants it. */
        sched_yield();
        if ((i & 3) == 0 && apg_mono_ns() - t0 > limit)
            break;
    }
    atomic_store(&spinners, 0);
    return done;
}

void apg_cwait_wait(struct apg_cwait *w)
{
    int64_t t0 = apg_mono_ns();
    if (!spin_for(w, t0)) {
        uint32_t exp = 0;
        if (atomic_compare_exchange_strong(&w->w_state, &exp, 1)) {
            while (atomic_load_explicit(&w->w_state, memory_order_acquire) != 2)
                futex_op(&w->w_state, FUTEX_WAIT_PRIVATE, 1);
        }
    }
    int64_t took = apg_mono_ns() - t0;
    wait_avg_ns = wait_avg_ns < 0 ? took : wait_avg_ns + (took - wait_avg_ns) / 8;
}
/* Called by the I/O thread for each answer, in the order the answers
 * arrived. Each sleeping waiter is woken by this thread directly: handing
 * the wake-ups on from waiter to waiter (a tree) moved threads between the
 * vCPUs some 20,000 times a second under 64 sync callers and measured no
 * faster, with twice the p99 (docs/perf-log/perf-client.md, "Waking sync callers"). */
void apg_cwait_signal(struct apg_cwait *w)
{
    /* A wake after the waiter returned (it saw 2 on its own) is harmless:
     * a private futex word without waiters. */
    if (atomic_exchange(&w->w_state, 2) == 1)
        futex_op(&w->w_state, FUTEX_WAKE_PRIVATE, 1);
}
void apg_cwait_destroy(struct apg_cwait *w)
{
    (void)w;
}

/* ---- pending requests ---- */

/* The request table is protocol/remoting_conn's (the same code as the
 * broker's outbound calls); io_rmu guards it. */
static void req_unlink(struct apg_cio *io, struct apg_creq *rq)
{
    apg_rconn_reqs_remove(&io->io_reqs, &rq->rq_r);
}

static void req_link(struct apg_cio *io, struct apg_creq *rq)
{
    apg_rconn_reqs_add(&io->io_reqs, &rq->rq_r);
}

static struct apg_creq *req_find(struct apg_cio *io, int32_t opaque)
{
    return (struct apg_creq *)apg_rconn_reqs_find(&io->io_reqs, opaque);
}

static struct apg_cconn *req_conn(const struct apg_creq *rq)
{
    return (struct apg_cconn *)rq->rq_r.rr_conn;
}

/* rq is linked; unlinks it (taking io_rmu) and calls its callback. */
static void req_fail(struct apg_cio *io, struct apg_creq *rq, apg_err_t e, const char *msg)
{
    pthread_mutex_lock(&io->io_rmu);
    req_unlink(io, rq);
    pthread_mutex_unlock(&io->io_rmu);
    apg_cio_cb cb = rq->rq_cb;
    void *arg = rq->rq_arg;
    apg_free(rq);
    cb(io, e, NULL, msg, arg);
}

/* ---- connections ---- */

static void conn_unref(struct apg_cconn *cc)
{
    if (atomic_fetch_sub(&cc->cc_refs, 1) != 1)
        return;
    apg_buf_free(&cc->cc_out);
    apg_buf_free(&cc->cc_spare);
    apg_buf_free(&cc->cc_in);
    apg_buf_free(&cc->cc_cipher);
    apg_free(cc->cc_rbuf);
    apg_tls_free(cc->cc_tls);
    pthread_mutex_destroy(&cc->cc_wmu);
    pthread_cond_destroy(&cc->cc_wcv);
    apg_free(cc);
}

static void conn_close_cb(uv_handle_t *h)
{
    conn_unref(h->data);
}

/* Loop thread: no direct sender may use the socket after this. */
static void conn_wclose(struct apg_cconn *cc)
{
    pthread_mutex_lock(&cc->cc_wmu);
    cc->cc_wclosed = true;
    while (cc->cc_writing) /* a direct writer is in send(): the fd must stay open */
        pthread_cond_wait(&cc->cc_wcv, &cc->cc_wmu);
    pthread_mutex_unlock(&cc->cc_wmu);
}

static void conn_fail(struct apg_cconn *cc, const char *why)
{
    if (cc->cc_state == CC_CLOSING)
        return;
    struct apg_cio *io = cc->cc_io;
    struct apg_creq *failed;
    pthread_mutex_lock(&io->io_rmu);
    cc->cc_state = CC_CLOSING;
    for (struct apg_cconn **pp = &io->io_conns; *pp; pp = &(*pp)->cc_next) {
        if (*pp == cc) {
            *pp = cc->cc_next;
            break;
        }
    }
    failed = (struct apg_creq *)apg_rconn_reqs_take_conn(&io->io_reqs, cc);
    pthread_mutex_unlock(&io->io_rmu);
    conn_wclose(cc);
    char msg[256];
    snprintf(msg, sizeof(msg), "connection to %s failed: %s", cc->cc_addr, why);
    apg_log_debug("client", "%s", msg);
    /* Earliest deadline (nearly always: oldest) first. */
    while (failed) {
        struct apg_creq *n = (struct apg_creq *)failed->rq_r.rr_hnext;
        apg_cio_cb cb = failed->rq_cb;
        void *arg = failed->rq_arg;
        apg_free(failed);
        cb(io, APG_EIO, NULL, msg, arg);
        failed = n;
    }
    uv_close((uv_handle_t *)&cc->cc_tcp, conn_close_cb);
}

static void write_cb(uv_write_t *req, int status);

/* cc_wmu held, TLS connection: encrypts cc_out (once the handshake is
 * done) and moves what the session has to send to cc_cipher. */
static apg_err_t tls_seal(struct apg_cconn *cc)
{
    char err[200];
    if (cc->cc_out.b_len && apg_tls_handshake_done(cc->cc_tls)) {
        apg_err_t e =
            apg_tls_write(cc->cc_tls, cc->cc_out.b_data, cc->cc_out.b_len, err, sizeof(err));
        if (e != APG_OK)
            return e;
        apg_buf_reset(&cc->cc_out);
    }
    return apg_tls_take_output(cc->cc_tls, &cc->cc_cipher);
}

/* cc_wmu held: the bytes that go to the socket next, in order. */
static struct apg_buf *wire_queue(struct apg_cconn *cc)
{
    return cc->cc_tls ? &cc->cc_cipher : &cc->cc_out;
}

static void conn_flush(struct apg_cconn *cc)
{
    pthread_mutex_lock(&cc->cc_wmu);
    if (cc->cc_writing) {
        pthread_mutex_unlock(&cc->cc_wmu); /* that writer takes cc_out along or hands it back */
        return;
    }
    /* A TLS connection writes its handshake before it is up. */
    bool can =
        cc->cc_tls ? cc->cc_tls_started && cc->cc_state != CC_CLOSING : cc->cc_state == CC_UP;
    if (can && cc->cc_tls && !cc->cc_wclosed && tls_seal(cc) != APG_OK) {
        pthread_mutex_unlock(&cc->cc_wmu);
        conn_fail(cc, "TLS encryption failed");
        return;
    }
    struct apg_buf *q = wire_queue(cc);
    if (!can || cc->cc_wclosed || q->b_len == 0) {
        cc->cc_dirty = false;
        pthread_mutex_unlock(&cc->cc_wmu);
        return;
    }
    struct apg_wreq *wr = apg_malloc(sizeof(*wr));
    if (wr == NULL) {
        pthread_mutex_unlock(&cc->cc_wmu);
        conn_fail(cc, "out of memory");
        return;
    }
    cc->cc_dirty = false;
    wr->wr_buf = *q;
    *q = (struct apg_buf)APG_BUF_INIT;
    uv_buf_t b = uv_buf_init((char *)wr->wr_buf.b_data, (unsigned)wr->wr_buf.b_len);
    wr->wr_req.data = cc;
    /* Under cc_wmu: a direct sender writes only when libuv's queue is empty. */
    int rc = uv_write(&wr->wr_req, (uv_stream_t *)&cc->cc_tcp, &b, 1, write_cb);
    pthread_mutex_unlock(&cc->cc_wmu);
    if (rc != 0) {
        apg_buf_free(&wr->wr_buf);
        apg_free(wr);
        conn_fail(cc, uv_strerror(rc));
    }
}

static void write_cb(uv_write_t *req, int status)
{
    struct apg_wreq *wr = (struct apg_wreq *)req;
    struct apg_cconn *cc = req->data;
    apg_buf_free(&wr->wr_buf);
    apg_free(wr);
    if (status < 0 && status != UV_ECANCELED)
        conn_fail(cc, uv_strerror(status));
}

static void on_prepare(uv_prepare_t *h)
{
    struct apg_cio *io = h->data;
    for (struct apg_cconn *cc = io->io_conns, *n; cc; cc = n) {
        n = cc->cc_next; /* conn_flush may fail and unlink cc */
        conn_flush(cc);
    }
}

static void conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct apg_cconn *cc = h->data;
    if (cc->cc_tls) {
        if (cc->cc_rbuf == NULL)
            cc->cc_rbuf = apg_malloc(TLS_RBUF);
        *buf = cc->cc_rbuf ? uv_buf_init((char *)cc->cc_rbuf, TLS_RBUF) : uv_buf_init(NULL, 0);
        return;
    }
    size_t want =
        apg_rconn_read_want(cc->cc_in.b_data, cc->cc_in.b_len, APG_FRAME_MAX_DEFAULT, READ_CHUNK);
    if (apg_buf_reserve(&cc->cc_in, want) != APG_OK) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    *buf = uv_buf_init((char *)cc->cc_in.b_data + cc->cc_in.b_len,
                       (unsigned)(cc->cc_in.b_cap - cc->cc_in.b_len));
}

static void dispatch_frame(struct apg_cconn *cc, const uint8_t *frame, size_t flen)
{
    struct apg_cio *io = cc->cc_io;
    char err[160];
    const struct apg_rcmd *cmd;
    if (apg_rconn_decode(&io->io_dec, frame, flen, &cmd, err, sizeof(err)) != APG_OK) {
        conn_fail(cc, err);
        return;
    }
    if (apg_rcmd_is_response(cmd)) {
        pthread_mutex_lock(&io->io_rmu);
        struct apg_creq *rq =
            (struct apg_creq *)apg_rconn_reqs_take(&io->io_reqs, cmd->opaque, NULL);
        pthread_mutex_unlock(&io->io_rmu);
        if (rq == NULL)
            return; /* timed out already */
        apg_cio_cb cb = rq->rq_cb;
        void *arg = rq->rq_arg;
        apg_free(rq);
        cb(io, APG_OK, cmd, NULL, arg);
    } else if (io->io_conf.on_server_req) {
        io->io_srv_addr = cc->cc_addr;
        io->io_srv_cc = cc;
        io->io_conf.on_server_req(io, io->io_conf.owner, cmd);
        io->io_srv_addr = NULL;
        io->io_srv_cc = NULL;
    }
}

const char *apg_cio_server_req_addr(const struct apg_cio *io)
{
    return io->io_srv_addr;
}

/* TLS connection: feeds p[0..n) to the session and decrypts what it can
 * into cc_in (under cc_wmu, which direct senders hold while encrypting);
 * sends the handshake's answers, and marks the connection up once the
 * handshake is done. False when cc failed. */
static bool tls_input(struct apg_cconn *cc, const uint8_t *p, size_t n)
{
    char err[256] = "";
    ssize_t r = 0;
    pthread_mutex_lock(&cc->cc_wmu);
    bool was_done = apg_tls_handshake_done(cc->cc_tls);
    apg_err_t e = n ? apg_tls_feed(cc->cc_tls, p, n) : APG_OK;
    while (e == APG_OK) {
        size_t want = apg_rconn_read_want(cc->cc_in.b_data, cc->cc_in.b_len, APG_FRAME_MAX_DEFAULT,
                                          READ_CHUNK);
        if ((e = apg_buf_reserve(&cc->cc_in, want)) != APG_OK)
            break;
        r = apg_tls_read(cc->cc_tls, cc->cc_in.b_data + cc->cc_in.b_len,
                         cc->cc_in.b_cap - cc->cc_in.b_len, err, sizeof(err));
        if (r <= 0)
            break;
        cc->cc_in.b_len += (size_t)r;
    }
    bool up = !was_done && apg_tls_handshake_done(cc->cc_tls);
    pthread_mutex_unlock(&cc->cc_wmu);
    if (e != APG_OK || r < 0) {
        conn_flush(cc); /* the alert, if any, goes first */
        conn_fail(cc, e != APG_OK ? "out of memory" : r == APG_ECLOSED ? "closed by peer" : err);
        return false;
    }
    if (up) {
        pthread_mutex_lock(&cc->cc_io->io_rmu);
        cc->cc_state = CC_UP;
        pthread_mutex_unlock(&cc->cc_io->io_rmu);
        apg_log_debug("client", "TLS session with %s established", cc->cc_addr);
    }
    conn_flush(cc);
    return cc->cc_state == CC_UP || !apg_tls_handshake_done(cc->cc_tls);
}

apg_err_t apg_cio_server_reply(struct apg_cio *io, const struct apg_rcmd *req, int32_t code,
                               const char *remark, const void *body, size_t blen)
{
    struct apg_cconn *cc = io->io_srv_cc;
    if (cc == NULL || cc->cc_state != CC_UP)
        return APG_ESHUTDOWN;
    struct apg_rcmd resp;
    apg_rcmd_init_response(&resp, req, code, remark);
    resp.language = APG_LANG_CPP;
    pthread_mutex_lock(&cc->cc_wmu);
    size_t mark = cc->cc_out.b_len;
    apg_err_t e = apg_rcmd_encode_header(&resp, (uint32_t)blen, &cc->cc_out);
    if (e == APG_OK && blen)
        e = apg_buf_append(&cc->cc_out, body, blen);
    if (e != APG_OK)
        cc->cc_out.b_len = mark;
    else
        cc->cc_dirty = true; /* flushed by on_prepare on this (the loop) thread */
    pthread_mutex_unlock(&cc->cc_wmu);
    return e;
}

static void conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct apg_cconn *cc = s->data;
    if (nread < 0) {
        conn_fail(cc, nread == UV_EOF ? "closed by peer" : uv_strerror((int)nread));
        return;
    }
    if (cc->cc_tls) {
        if (!tls_input(cc, (const uint8_t *)buf->base, (size_t)nread))
            return;
    } else {
        cc->cc_in.b_len += (size_t)nread;
    }
    size_t off = 0;
    while (cc->cc_state == CC_UP) {
        size_t flen = 0;
        char err[160];
        if (apg_frame_peek(cc->cc_in.b_data + off, cc->cc_in.b_len - off, APG_FRAME_MAX_DEFAULT,
                           &flen, err, sizeof(err)) != APG_OK) {
            conn_fail(cc, err);
            return;
        }
        if (flen == 0)
            break;
        dispatch_frame(cc, cc->cc_in.b_data + off, flen);
        off += flen;
    }
    if (cc->cc_state == CC_UP)
        apg_buf_consume(&cc->cc_in, off);
}

static void conn_connected(uv_connect_t *req, int status)
{
    struct apg_cconn *cc = req->data;
    if (cc->cc_state == CC_CLOSING)
        return;
    if (status < 0) {
        conn_fail(cc, uv_strerror(status));
        return;
    }
    uv_tcp_nodelay(&cc->cc_tcp, 1);
    if (cc->cc_tls) {
        /* Up once the handshake is done (tls_input); the ClientHello now. */
        cc->cc_tls_started = true;
        uv_read_start((uv_stream_t *)&cc->cc_tcp, conn_alloc, conn_read);
        tls_input(cc, NULL, 0);
        return;
    }
    pthread_mutex_lock(&cc->cc_io->io_rmu);
    cc->cc_state = CC_UP;
    pthread_mutex_unlock(&cc->cc_io->io_rmu);
    uv_read_start((uv_stream_t *)&cc->cc_tcp, conn_alloc, conn_read);
    conn_flush(cc);
}

static apg_err_t resolve(const char *addr, struct sockaddr_storage *ss, char *err, size_t errlen)
{
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || colon == addr)
        return apg_errf(APG_EINVAL, err, errlen, "address '%s' is not host:port", addr);
    char host[128];
    snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
    int port = atoi(colon + 1);
    if (port <= 0 || port > 65535)
        return apg_errf(APG_EINVAL, err, errlen, "address '%s' has a bad port", addr);
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0)
        return APG_OK;
    if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0)
        return APG_OK;
    /* A host name: resolved synchronously (once per new connection). */
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || res == NULL)
        return apg_errf(APG_EINVAL, err, errlen, "cannot resolve host '%s'", host);
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    freeaddrinfo(res);
    return APG_OK;
}

static struct apg_cconn *conn_get(struct apg_cio *io, const char *addr, bool *fresh, char *err,
                                  size_t errlen)
{
    *fresh = false;
    for (struct apg_cconn *cc = io->io_conns; cc; cc = cc->cc_next)
        if (strcmp(cc->cc_addr, addr) == 0)
            return cc;
    struct sockaddr_storage ss;
    if (resolve(addr, &ss, err, errlen) != APG_OK)
        return NULL;
    struct apg_cconn *cc = apg_calloc(1, sizeof(*cc));
    if (cc == NULL) {
        apg_errf(APG_ENOMEM, err, errlen, "out of memory");
        return NULL;
    }
    snprintf(cc->cc_addr, sizeof(cc->cc_addr), "%s", addr);
    cc->cc_io = io;
    cc->cc_state = CC_CONNECTING;
    pthread_mutex_init(&cc->cc_wmu, NULL);
    pthread_cond_init(&cc->cc_wcv, NULL);
    atomic_init(&cc->cc_refs, 1);
    uv_tcp_init(&io->io_loop, &cc->cc_tcp);
    cc->cc_tcp.data = cc;
    cc->cc_connreq.data = cc;
    if (io->io_tls != NULL) {
        char host[128];
        const char *colon = strrchr(addr, ':');
        snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
        if ((cc->cc_tls = apg_tls_new(io->io_tls, host)) == NULL) {
            apg_errf(APG_ENOMEM, err, errlen, "out of memory");
            uv_close((uv_handle_t *)&cc->cc_tcp, conn_close_cb);
            return NULL;
        }
    }
    pthread_mutex_lock(&io->io_rmu);
    cc->cc_next = io->io_conns;
    io->io_conns = cc;
    pthread_mutex_unlock(&io->io_rmu);
    int rc = uv_tcp_connect(&cc->cc_connreq, &cc->cc_tcp, (struct sockaddr *)&ss, conn_connected);
    if (rc != 0) {
        apg_errf(APG_EIO, err, errlen, "connect to %s: %s", addr, uv_strerror(rc));
        conn_fail(cc, uv_strerror(rc));
        return NULL;
    }
    *fresh = true;
    return cc;
}

static void heartbeat_resp(struct apg_cio *io, apg_err_t e, const struct apg_rcmd *resp,
                           const char *errmsg, void *arg)
{
    if (e != APG_OK)
        apg_log_debug("client", "heartbeat failed: %s", errmsg);
    else if (resp->code != 0)
        apg_log_warn("client", "heartbeat refused: code %d %s", resp->code,
                     resp->remark ? resp->remark : "");
}

static void heartbeat_one(struct apg_cio *io, const char *addr)
{
    if (io->io_conf.hb_body == NULL)
        return;
    struct apg_buf body = APG_BUF_INIT;
    if (io->io_conf.hb_body(io, io->io_conf.owner, &body) == APG_OK) {
        struct apg_rcmd req;
        apg_rcmd_init_request(&req, APG_REQ_HEART_BEAT, 0, io->io_conf.serialize);
        char err[160];
        apg_cio_call(io, addr, &req, body.b_data, body.b_len, 0, heartbeat_resp, NULL, err,
                     sizeof(err));
    }
    apg_buf_free(&body);
}

apg_err_t apg_cio_call(struct apg_cio *io, const char *addr, struct apg_rcmd *req, const void *body,
                       size_t blen, int timeout_ms, apg_cio_cb cb, void *arg, char *err,
                       size_t errlen)
{
    if (io->io_stopping)
        return apg_errf(APG_ESHUTDOWN, err, errlen, "client is shutting down");
    bool fresh;
    struct apg_cconn *cc = conn_get(io, addr, &fresh, err, errlen);
    if (cc == NULL)
        return APG_EIO;
    req->opaque = atomic_fetch_add(&io->io_opaque, 1) + 1;
    req->language = APG_LANG_CPP;
    if (cb == NULL)
        req->flag |= APG_RCMD_FLAG_ONEWAY;
    struct apg_creq *rq = NULL;
    if (cb != NULL) {
        rq = apg_malloc(sizeof(*rq));
        if (rq == NULL)
            return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    }
    char sig[APG_SIGN_LEN];
    apg_err_t e = cio_sign(io, req, body, blen, sig);
    if (e != APG_OK) {
        apg_free(rq);
        return apg_errf(e, err, errlen, "cannot sign request %d: %s", req->code, apg_strerror(e));
    }
    pthread_mutex_lock(&cc->cc_wmu);
    size_t mark = cc->cc_out.b_len;
    e = apg_rcmd_encode_header(req, (uint32_t)blen, &cc->cc_out);
    if (e == APG_OK && blen)
        e = apg_buf_append(&cc->cc_out, body, blen);
    if (e != APG_OK) {
        cc->cc_out.b_len = mark;
        pthread_mutex_unlock(&cc->cc_wmu);
        apg_free(rq);
        return apg_errf(e, err, errlen, "cannot encode request %d: %s", req->code, apg_strerror(e));
    }
    cc->cc_dirty = true; /* flushed by on_prepare on this (the loop) thread */
    pthread_mutex_unlock(&cc->cc_wmu);
    if (rq != NULL) {
        rq->rq_r = (struct apg_rconn_req){
            .rr_opaque = req->opaque,
            .rr_deadline = apg_now_ms() + (timeout_ms > 0 ? timeout_ms : io->io_conf.timeout_ms),
            .rr_conn = cc,
        };
        rq->rq_cb = cb;
        rq->rq_arg = arg;
        pthread_mutex_lock(&io->io_rmu);
        req_link(io, rq);
        pthread_mutex_unlock(&io->io_rmu);
    }
    if (fresh && req->code != APG_REQ_HEART_BEAT && req->code != APG_REQ_GET_ROUTEINFO_BY_TOPIC) {
        cc->cc_heartbeated = true;
        heartbeat_one(io, addr);
    }
    return APG_OK;
}

/* ---- routes ---- */

struct apg_ctopic *apg_cio_topic_find(struct apg_cio *io, const char *topic)
{
    for (struct apg_ctopic *t = io->io_topics; t; t = t->ct_next)
        if (strcmp(t->ct_name, topic) == 0)
            return t;
    return NULL;
}

struct route_fetch {
    struct apg_ctopic *rf_topic;
    size_t rf_tries;
    bool rf_default; /* asking for TBW102 on behalf of rf_topic */
};

static void route_ask(struct apg_cio *io, struct route_fetch *rf);

static void route_done(struct apg_cio *io, struct route_fetch *rf, apg_err_t e, const char *msg)
{
    struct apg_ctopic *t = rf->rf_topic;
    apg_free(rf);
    t->ct_fetching = false;
    struct apg_rwait *w = t->ct_waiters;
    t->ct_waiters = NULL;
    if (e == APG_OK) {
        /* Heartbeat to brokers seen for the first time (a slave too, when
         * it is where the topic's consumers read). */
        for (size_t i = 0; i < t->ct_route.rt_nbrokers; i++) {
            const char *a = t->ct_route.rt_brokers[i].ba_read;
            if (a == NULL)
                continue;
            bool known = false;
            for (struct apg_cconn *cc = io->io_conns; cc; cc = cc->cc_next)
                if (strcmp(cc->cc_addr, a) == 0 && cc->cc_heartbeated)
                    known = true;
            if (!known) {
                heartbeat_one(io, a);
                for (struct apg_cconn *cc = io->io_conns; cc; cc = cc->cc_next)
                    if (strcmp(cc->cc_addr, a) == 0)
                        cc->cc_heartbeated = true;
            }
        }
    }
    while (w) {
        struct apg_rwait *n = w->rw_next;
        w->rw_cb(io, t, e == APG_OK || t->ct_have ? APG_OK : e, msg, w->rw_arg);
        apg_free(w);
        w = n;
    }
}

static void route_resp(struct apg_cio *io, apg_err_t e, const struct apg_rcmd *resp,
                       const char *errmsg, void *arg)
{
    struct route_fetch *rf = arg;
    struct apg_ctopic *t = rf->rf_topic;
    char msg[512];
    if (e != APG_OK) {
        if (e != APG_ESHUTDOWN && ++rf->rf_tries < io->io_nns) {
            io->io_ns_cur = (io->io_ns_cur + 1) % io->io_nns;
            route_ask(io, rf);
            return;
        }
        snprintf(msg, sizeof(msg), "no NameServer answered for topic '%s': %s", t->ct_name, errmsg);
        route_done(io, rf, e, msg);
        return;
    }
    if (resp->code == APG_RESP_TOPIC_NOT_EXIST && t->ct_use_default && !rf->rf_default) {
        rf->rf_default = true;
        route_ask(io, rf);
        return;
    }
    if (resp->code != 0) {
        snprintf(msg, sizeof(msg), "no route for topic '%s'%s: NameServer answered %d %s",
                 t->ct_name, rf->rf_default ? " (nor for the auto-create template TBW102)" : "",
                 resp->code, resp->remark ? resp->remark : "");
        route_done(io, rf, APG_ENOTFOUND, msg);
        return;
    }
    struct apg_croute rt;
    apg_err_t pe = apg_croute_parse(t->ct_name, resp->body, resp->body_len, &rt, msg, sizeof(msg));
    if (pe != APG_OK) {
        route_done(io, rf, pe, msg);
        return;
    }
    if (rf->rf_default)
        apg_croute_cap(&rt, 4);
    if (rt.rt_nwq == 0 && rt.rt_nrq == 0) {
        apg_croute_free(&rt);
        snprintf(msg, sizeof(msg), "topic '%s' has no queue on a live broker", t->ct_name);
        route_done(io, rf, APG_ENOTFOUND, msg);
        return;
    }
    pthread_mutex_lock(&io->io_rmu);
    struct apg_croute old = t->ct_route;
    t->ct_route = rt;
    t->ct_have = true;
    pthread_mutex_unlock(&io->io_rmu);
    apg_croute_free(&old);
    route_done(io, rf, APG_OK, NULL);
}

static void route_ask(struct apg_cio *io, struct route_fetch *rf)
{
    char err[256];
    for (;;) {
        struct apg_rcmd req;
        apg_rcmd_init_request(&req, APG_REQ_GET_ROUTEINFO_BY_TOPIC, 0, io->io_conf.serialize);
        apg_rcmd_ext_add(&req, "topic", rf->rf_default ? TOPIC_DEFAULT : rf->rf_topic->ct_name);
        if (apg_cio_call(io, io->io_ns[io->io_ns_cur], &req, NULL, 0, 0, route_resp, rf, err,
                         sizeof(err)) == APG_OK)
            return;
        if (io->io_stopping || ++rf->rf_tries >= io->io_nns)
            break;
        io->io_ns_cur = (io->io_ns_cur + 1) % io->io_nns;
    }
    route_done(io, rf, io->io_stopping ? APG_ESHUTDOWN : APG_EIO, err);
}

static void route_fetch_start(struct apg_cio *io, struct apg_ctopic *t)
{
    struct route_fetch *rf = apg_calloc(1, sizeof(*rf));
    if (rf == NULL)
        return;
    rf->rf_topic = t;
    t->ct_fetching = true;
    route_ask(io, rf);
}

void apg_cio_route(struct apg_cio *io, const char *topic, bool use_default, bool refresh,
                   apg_croute_cb cb, void *arg)
{
    struct apg_ctopic *t = apg_cio_topic_find(io, topic);
    if (t == NULL) {
        t = apg_calloc(1, sizeof(*t));
        if (t == NULL || (t->ct_name = apg_strdup(topic)) == NULL) {
            apg_free(t);
            cb(io, NULL, APG_ENOMEM, "out of memory", arg);
            return;
        }
        t->ct_use_default = use_default;
        pthread_mutex_lock(&io->io_rmu);
        t->ct_next = io->io_topics;
        io->io_topics = t;
        pthread_mutex_unlock(&io->io_rmu);
    }
    if (t->ct_have && !refresh) {
        cb(io, t, APG_OK, NULL, arg);
        return;
    }
    struct apg_rwait *w = apg_malloc(sizeof(*w));
    if (w == NULL) {
        cb(io, t, APG_ENOMEM, "out of memory", arg);
        return;
    }
    w->rw_cb = cb;
    w->rw_arg = arg;
    w->rw_next = t->ct_waiters;
    t->ct_waiters = w;
    if (!t->ct_fetching)
        route_fetch_start(io, t);
}

void apg_cio_heartbeat_all(struct apg_cio *io)
{
    /* Distinct reader addresses over all routes: the masters, and a slave
     * whose master is gone (a consumer pulls from it, and its group and
     * subscriptions must be known there). */
    for (struct apg_ctopic *t = io->io_topics; t; t = t->ct_next) {
        for (size_t i = 0; i < t->ct_route.rt_nbrokers; i++) {
            const char *a = t->ct_route.rt_brokers[i].ba_read;
            if (a == NULL)
                continue;
            bool dup = false;
            for (struct apg_ctopic *u = io->io_topics; u != t && !dup; u = u->ct_next)
                if (apg_croute_reader(&u->ct_route, t->ct_route.rt_brokers[i].ba_name) &&
                    strcmp(apg_croute_reader(&u->ct_route, t->ct_route.rt_brokers[i].ba_name), a) ==
                        0)
                    dup = true;
            for (size_t j = 0; j < i && !dup; j++)
                if (t->ct_route.rt_brokers[j].ba_read &&
                    strcmp(t->ct_route.rt_brokers[j].ba_read, a) == 0)
                    dup = true;
            if (!dup)
                heartbeat_one(io, a);
        }
    }
}

static void route_noop(struct apg_cio *io, struct apg_ctopic *t, apg_err_t e, const char *errmsg,
                       void *arg)
{
    if (e != APG_OK && t != NULL)
        apg_log_debug("client", "route refresh of '%s' failed: %s", t->ct_name, errmsg);
}

/* ---- loop ---- */

static void on_timer(uv_timer_t *h)
{
    struct apg_cio *io = h->data;
    int64_t now = apg_now_ms();
    for (;;) {
        pthread_mutex_lock(&io->io_rmu);
        struct apg_creq *rq = (struct apg_creq *)apg_rconn_reqs_expired(&io->io_reqs, now);
        pthread_mutex_unlock(&io->io_rmu);
        if (rq == NULL)
            break;
        char msg[200];
        snprintf(msg, sizeof(msg), "no answer from %s within the timeout (request %d)",
                 req_conn(rq)->cc_addr, rq->rq_r.rr_opaque);
        apg_cio_cb cb = rq->rq_cb;
        void *arg = rq->rq_arg;
        apg_free(rq);
        cb(io, APG_ETIMEDOUT, NULL, msg, arg);
    }
    while (io->io_delayed && io->io_delayed->dl_at <= now && !io->io_stopping) {
        struct apg_delayed *d = io->io_delayed;
        io->io_delayed = d->dl_next;
        d->dl_fn(io, d->dl_arg);
        apg_free(d);
    }
    if (now >= io->io_next_refresh) {
        io->io_next_refresh = now + io->io_conf.route_refresh_ms;
        for (struct apg_ctopic *t = io->io_topics; t; t = t->ct_next)
            if (t->ct_have && !t->ct_fetching)
                apg_cio_route(io, t->ct_name, t->ct_use_default, true, route_noop, NULL);
    }
    if (now >= io->io_next_hb) {
        io->io_next_hb = now + io->io_conf.heartbeat_ms;
        apg_cio_heartbeat_all(io);
    }
    if (now >= io->io_next_tick) {
        io->io_next_tick = now + 1000;
        if (io->io_conf.on_tick)
            io->io_conf.on_tick(io, io->io_conf.owner);
    }
}

static void drain_done(uv_shutdown_t *req, int status)
{
    struct apg_cio *io = req->data;
    uv_handle_t *h = (uv_handle_t *)req->handle;
    apg_free(req);
    if (!uv_is_closing(h))
        uv_close(h, conn_close_cb);
    if (--io->io_draining == 0 && !uv_is_closing((uv_handle_t *)&io->io_stop_timer))
        uv_close((uv_handle_t *)&io->io_stop_timer, NULL);
}

/* Shutdown: a connection with unsent bytes (oneway and async sends that
 * already returned) is closed once libuv wrote them (uv_shutdown), within
 * the request timeout; everything else closes at once. */
static void close_walk(uv_handle_t *h, void *arg)
{
    struct apg_cio *io = arg;
    if (uv_is_closing(h) || h == (uv_handle_t *)&io->io_stop_timer)
        return;
    if (h->type == UV_TCP && uv_stream_get_write_queue_size((uv_stream_t *)h) > 0) {
        uv_shutdown_t *req = apg_malloc(sizeof(*req));
        if (req != NULL) {
            req->data = io;
            if (uv_shutdown(req, (uv_stream_t *)h, drain_done) == 0) {
                io->io_draining++;
                return;
            }
            apg_free(req);
        }
    }
    uv_close(h, h->type == UV_TCP ? conn_close_cb : NULL);
}

static void force_close_walk(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, h->type == UV_TCP ? conn_close_cb : NULL);
}

static void on_stop_timer(uv_timer_t *t)
{
    struct apg_cio *io = t->data;
    apg_log_warn("client", "unsent requests dropped at shutdown after %d ms",
                 io->io_conf.timeout_ms);
    uv_walk(&io->io_loop, force_close_walk, NULL);
}

static void shutdown_loop(struct apg_cio *io)
{
    /* Written-but-unflushed requests (oneway sends that already returned)
     * go out first: uv_write tries the socket at once. */
    on_prepare(&io->io_prepare);
    pthread_mutex_lock(&io->io_rmu);
    io->io_stopping = true; /* no more direct sends */
    for (struct apg_cconn *cc = io->io_conns; cc; cc = cc->cc_next)
        cc->cc_state = CC_CLOSING;
    pthread_mutex_unlock(&io->io_rmu);
    for (struct apg_cconn *cc = io->io_conns; cc; cc = cc->cc_next)
        conn_wclose(cc);
    while (io->io_reqs.rs_dhead)
        req_fail(io, (struct apg_creq *)io->io_reqs.rs_dhead, APG_ESHUTDOWN,
                 "client is shutting down");
    for (struct apg_ctopic *t = io->io_topics; t; t = t->ct_next) {
        struct apg_rwait *w = t->ct_waiters;
        t->ct_waiters = NULL;
        while (w) {
            struct apg_rwait *n = w->rw_next;
            w->rw_cb(io, t, APG_ESHUTDOWN, "client is shutting down", w->rw_arg);
            apg_free(w);
            w = n;
        }
    }
    while (io->io_delayed) {
        struct apg_delayed *d = io->io_delayed;
        io->io_delayed = d->dl_next;
        d->dl_fn(io, d->dl_arg); /* sees apg_cio_stopping() */
        apg_free(d);
    }
    io->io_conns = NULL;
    uv_walk(&io->io_loop, close_walk, io);
    if (io->io_draining > 0)
        uv_timer_start(&io->io_stop_timer, on_stop_timer, (uint64_t)io->io_conf.timeout_ms, 0);
    else
        uv_close((uv_handle_t *)&io->io_stop_timer, NULL);
}

static void on_async(uv_async_t *h)
{
    struct apg_cio *io = h->data;
    pthread_mutex_lock(&io->io_qmu);
    struct apg_cop *op = io->io_qhead;
    io->io_qhead = io->io_qtail = NULL;
    bool stop = io->io_stop_req;
    pthread_mutex_unlock(&io->io_qmu);
    while (op) {
        struct apg_cop *n = op->op_next;
        op->op_fn(io, op);
        op = n;
    }
    if (stop && !io->io_stopping)
        shutdown_loop(io);
}

static void loop_main(void *arg)
{
    struct apg_cio *io = arg;
    /* libuv writes with write(2)/writev(2): a write to a connection the
     * broker has closed raises SIGPIPE, whose default action ends the
     * application. A library may not rely on its caller ignoring it, so
     * the loop thread blocks it: the write fails with EPIPE, the connection
     * is closed and its requests fail (the direct sends on caller threads
     * use send(2) with MSG_NOSIGNAL for the same reason). */
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, NULL);
    uv_run(&io->io_loop, UV_RUN_DEFAULT);
}

struct apg_cio *apg_cio_new(const struct apg_cio_conf *conf, char *err, size_t errlen)
{
    if (conf->namesrv == NULL || conf->namesrv[0] == '\0') {
        apg_errf(APG_EINVAL, err, errlen, "no NameServer address given (host:port;host:port)");
        return NULL;
    }
    struct apg_cio *io = apg_calloc(1, sizeof(*io));
    if (io == NULL || apg_rconn_reqs_init(&io->io_reqs, REQ_BUCKETS) != APG_OK) {
        apg_free(io);
        apg_errf(APG_ENOMEM, err, errlen, "out of memory");
        return NULL;
    }
    io->io_conf = *conf;
    const struct apg_conf *hc = conf->conf;
    if (hc && hc->access_key && hc->access_key[0] && hc->secret_key && hc->secret_key[0]) {
        io->io_acl_ak = apg_strdup(hc->access_key);
        apg_hmac_sha1_key(&io->io_acl_key, hc->secret_key, strlen(hc->secret_key));
    }
    if (io->io_conf.timeout_ms <= 0)
        io->io_conf.timeout_ms = 3000;
    if (io->io_conf.route_refresh_ms <= 0)
        io->io_conf.route_refresh_ms = 30000;
    if (io->io_conf.heartbeat_ms <= 0)
        io->io_conf.heartbeat_ms = 30000;
    char *list = apg_strdup(conf->namesrv), *save = NULL;
    for (char *tok = list ? strtok_r(list, ";, ", &save) : NULL; tok;
         tok = strtok_r(NULL, ";, ", &save)) {
        char **nn = apg_realloc(io->io_ns, (io->io_nns + 1) * sizeof(char *));
        if (nn == NULL)
            break;
        io->io_ns = nn;
        io->io_ns[io->io_nns++] = apg_strdup(tok);
    }
    apg_free(list);
    if (io->io_nns == 0) {
        apg_errf(APG_EINVAL, err, errlen, "NameServer list '%s' has no address", conf->namesrv);
        apg_cio_free(io);
        return NULL;
    }
    if (conf->conf != NULL && conf->conf->tls_enable) {
        const struct apg_conf *c = conf->conf;
        struct apg_tls_ctx_opts to = {
            .cert_path = c->tls_cert,
            .key_path = c->tls_key,
            .trust_path = c->tls_trust,
            .verify_server = (c->tls_trust && c->tls_trust[0]) || c->tls_auth_server,
        };
        if (apg_tls_ctx_new(&to, &io->io_tls, err, errlen) != APG_OK) {
            apg_cio_free(io);
            return NULL;
        }
    }
    io->io_ns_cur = (size_t)getpid() % io->io_nns;
    static _Atomic int instance_seq;
    char ip[64];
    apg_client_local_ip(NULL, ip, sizeof(ip));
    if (conf->instance && conf->instance[0])
        snprintf(io->io_client_id, sizeof(io->io_client_id), "%s@%s", ip, conf->instance);
    else
        snprintf(io->io_client_id, sizeof(io->io_client_id), "%s@%d#%d", ip, (int)getpid(),
                 ++instance_seq);
    pthread_mutex_init(&io->io_qmu, NULL);
    pthread_mutex_init(&io->io_rmu, NULL);
    uv_loop_init(&io->io_loop);
    uv_async_init(&io->io_loop, &io->io_async, on_async);
    io->io_async.data = io;
    uv_timer_init(&io->io_loop, &io->io_timer);
    io->io_timer.data = io;
    uv_timer_init(&io->io_loop, &io->io_stop_timer);
    io->io_stop_timer.data = io;
    uv_prepare_init(&io->io_loop, &io->io_prepare);
    io->io_prepare.data = io;
    uv_prepare_start(&io->io_prepare, on_prepare);
    int64_t now = apg_now_ms();
    io->io_next_refresh = now + io->io_conf.route_refresh_ms;
    io->io_next_hb = now + io->io_conf.heartbeat_ms;
    io->io_next_tick = now + 1000;
    uv_timer_start(&io->io_timer, on_timer, 10, 10);
    if (uv_thread_create(&io->io_thread, loop_main, io) != 0) {
        apg_errf(APG_ENOMEM, err, errlen, "cannot start the client I/O thread");
        uv_close((uv_handle_t *)&io->io_async, NULL);
        uv_close((uv_handle_t *)&io->io_timer, NULL);
        uv_close((uv_handle_t *)&io->io_stop_timer, NULL);
        uv_close((uv_handle_t *)&io->io_prepare, NULL);
        uv_run(&io->io_loop, UV_RUN_DEFAULT);
        uv_loop_close(&io->io_loop);
        io->io_loop.data = NULL;
        apg_cio_free(io);
        return NULL;
    }
    io->io_loop.data = io; /* marks "thread started" */
    return io;
}

void apg_cio_free(struct apg_cio *io)
{
    if (io == NULL)
        return;
    if (io->io_loop.data != NULL) {
        pthread_mutex_lock(&io->io_qmu);
        io->io_stop_req = true;
        pthread_mutex_unlock(&io->io_qmu);
        uv_async_send(&io->io_async);
        uv_thread_join(&io->io_thread);
        uv_loop_close(&io->io_loop);
        pthread_mutex_destroy(&io->io_qmu);
        pthread_mutex_destroy(&io->io_rmu);
    }
    for (struct apg_ctopic *t = io->io_topics, *n; t; t = n) {
        n = t->ct_next;
        apg_croute_free(&t->ct_route);
        apg_free(t->ct_name);
        apg_free(t);
    }
    for (size_t i = 0; i < io->io_nns; i++)
        apg_free(io->io_ns[i]);
    apg_free(io->io_ns);
    apg_rconn_decoder_free(&io->io_dec);
    apg_rconn_reqs_fini(&io->io_reqs);
    apg_tls_ctx_free(io->io_tls);
    apg_free(io->io_acl_ak);
    apg_free(io);
}

apg_err_t apg_cio_submit(struct apg_cio *io, struct apg_cop *op)
{
    op->op_next = NULL;
    pthread_mutex_lock(&io->io_qmu);
    if (io->io_stop_req) {
        pthread_mutex_unlock(&io->io_qmu);
        return APG_ESHUTDOWN;
    }
    if (io->io_qtail)
        io->io_qtail->op_next = op;
    else
        io->io_qhead = op;
    io->io_qtail = op;
    pthread_mutex_unlock(&io->io_qmu);
    uv_async_send(&io->io_async);
    return APG_OK;
}

bool apg_cio_stopping(const struct apg_cio *io)
{
    return io->io_stopping;
}
const char *apg_cio_client_id(const struct apg_cio *io)
{
    return io->io_client_id;
}
uint8_t apg_cio_serialize(const struct apg_cio *io)
{
    return io->io_conf.serialize;
}

void apg_cio_after(struct apg_cio *io, int ms, void (*fn)(struct apg_cio *io, void *arg), void *arg)
{
    struct apg_delayed *d = apg_malloc(sizeof(*d));
    if (d == NULL || io->io_stopping) {
        apg_free(d);
        fn(io, arg); /* runs at once; the callee sees the state it must handle */
        return;
    }
    d->dl_at = apg_now_ms() + ms;
    d->dl_fn = fn;
    d->dl_arg = arg;
    struct apg_delayed **pp = &io->io_delayed;
    while (*pp && (*pp)->dl_at <= d->dl_at)
        pp = &(*pp)->dl_next;
    d->dl_next = *pp;
    *pp = d;
}

size_t apg_cio_masters(struct apg_cio *io, const char **out, size_t max)
{
    size_t n = 0;
    for (struct apg_ctopic *t = io->io_topics; t; t = t->ct_next) {
        for (size_t i = 0; i < t->ct_route.rt_nbrokers; i++) {
            const char *a = t->ct_route.rt_brokers[i].ba_master;
            bool dup = a == NULL;
            for (size_t j = 0; j < n && !dup; j++)
                dup = strcmp(out[j], a) == 0;
            if (!dup && n < max)
                out[n++] = a;
        }
    }
    return n;
}

/* ---- direct sends ---- */

/* io_rmu held: the connection to addr if it is up, with a reference taken
 * (NULL if addr is NULL or there is none). */
static struct apg_cconn *up_conn_ref(struct apg_cio *io, const char *addr)
{
    for (struct apg_cconn *cc = io->io_conns; addr && cc; cc = cc->cc_next) {
        if (cc->cc_state == CC_UP && strcmp(cc->cc_addr, addr) == 0) {
            atomic_fetch_add(&cc->cc_refs, 1);
            return cc;
        }
    }
    return NULL;
}

struct apg_cconn *apg_cio_direct_begin(struct apg_cio *io, const char *topic,
                                       int (*pick)(const struct apg_croute *rt, void *arg),
                                       void *pick_arg, apg_mq_t *mq)
{
    struct apg_cconn *found = NULL;
    pthread_mutex_lock(&io->io_rmu);
    struct apg_ctopic *t = io->io_stopping ? NULL : apg_cio_topic_find(io, topic);
    if (t != NULL && t->ct_have) {
        const struct apg_croute *rt = &t->ct_route;
        int idx = rt->rt_nwq ? pick(rt, pick_arg) : -1;
        const char *addr = NULL;
        if (idx >= 0 && (size_t)idx < rt->rt_nwq) {
            *mq = rt->rt_wq[idx];
            addr = apg_croute_master(rt, mq->mq_broker);
        }
        found = up_conn_ref(io, addr);
    }
    pthread_mutex_unlock(&io->io_rmu);
    return found;
}

struct apg_cconn *apg_cio_direct_conn(struct apg_cio *io, const char *topic, const char *broker)
{
    struct apg_cconn *found = NULL;
    pthread_mutex_lock(&io->io_rmu);
    struct apg_ctopic *t = io->io_stopping ? NULL : apg_cio_topic_find(io, topic);
    const char *addr = t != NULL && t->ct_have ? apg_croute_master(&t->ct_route, broker) : NULL;
    found = up_conn_ref(io, addr);
    pthread_mutex_unlock(&io->io_rmu);
    return found;
}

/* cc_wmu held: the socket is broken or a buffer could not grow; the loop
 * thread's read then fails the connection and all of its requests. */
static void conn_shutdown_locked(struct apg_cconn *cc)
{
    uv_os_fd_t fd;
    if (!cc->cc_wclosed && uv_fileno((uv_handle_t *)&cc->cc_tcp, &fd) == 0)
        shutdown(fd, SHUT_RDWR);
}

/* cc_wmu held (released around each send()): writes cc_out to the socket
 * on the calling thread, several rounds while others keep appending. What
 * cannot go now (socket full, libuv has queued bytes, or the round limit)
 * stays in cc_out for the loop thread: returns true when it must be woken. */
static bool conn_write_direct(struct apg_cconn *cc)
{
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&cc->cc_tcp, &fd) != 0) {
        cc->cc_dirty = true;
        return true;
    }
    cc->cc_writing = true;
    struct apg_buf *q = wire_queue(cc);
    for (int round = 0; round < 4 && !cc->cc_wclosed; round++) {
        if (cc->cc_tls && tls_seal(cc) != APG_OK) {
            shutdown(fd, SHUT_RDWR);
            cc->cc_out.b_len = q->b_len = 0;
            break;
        }
        if (q->b_len == 0)
            break;
        /* uv_write only runs under cc_wmu; a zero queue means every byte it
         * took is already in the kernel. */
        if (uv_stream_get_write_queue_size((uv_stream_t *)&cc->cc_tcp) != 0)
            break;
        struct apg_buf mine = *q;
        size_t want = mine.b_len;
        *q = cc->cc_spare;
        cc->cc_spare = (struct apg_buf)APG_BUF_INIT;
        pthread_mutex_unlock(&cc->cc_wmu);
        ssize_t n;
        do
            n = send(fd, mine.b_data, mine.b_len, MSG_NOSIGNAL | MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        int werr = n < 0 ? errno : 0;
        pthread_mutex_lock(&cc->cc_wmu);
        if (werr != 0 && werr != EAGAIN && werr != EWOULDBLOCK) {
            shutdown(fd, SHUT_RDWR); /* everything queued fails with the connection */
            apg_buf_free(&mine);
            cc->cc_out.b_len = q->b_len = 0;
            break;
        }
        apg_buf_consume(&mine, n > 0 ? (size_t)n : 0);
        if (mine.b_len > 0) {
            /* The unsent rest goes before what others appended meanwhile. */
            if (apg_buf_append(&mine, q->b_data, q->b_len) != APG_OK) {
                shutdown(fd, SHUT_RDWR);
                apg_buf_free(&mine);
                cc->cc_out.b_len = q->b_len = 0;
                break;
            }
            struct apg_buf t = *q;
            *q = mine;
            mine = t;
        }
        mine.b_len = 0;
        if (cc->cc_spare.b_data == NULL)
            cc->cc_spare = mine;
        else
            apg_buf_free(&mine);
        if (n < 0 || (size_t)n < want)
            break; /* socket full: libuv waits for room */
    }
    cc->cc_writing = false;
    pthread_cond_broadcast(&cc->cc_wcv);
    cc->cc_dirty = (cc->cc_out.b_len > 0 || q->b_len > 0) && !cc->cc_wclosed;
    return cc->cc_dirty;
}

/* The socket is behind (more than DIRECT_MAX_QUEUED bytes wait): the
 * caller takes the (slower) loop path, unless the loop thread already
 * failed the registered request with its connection (then its callback
 * ran or runs, and the request counts as handed over). */
static apg_err_t direct_backoff(struct apg_cio *io, struct apg_cconn *cc, bool registered,
                                int32_t opaque)
{
    bool mine = !registered;
    if (registered) { /* the request may be freed already: looked up by opaque */
        pthread_mutex_lock(&io->io_rmu);
        struct apg_creq *found = req_find(io, opaque);
        if (found != NULL) {
            req_unlink(io, found);
            mine = true;
        }
        pthread_mutex_unlock(&io->io_rmu);
        if (mine)
            apg_free(found);
    }
    conn_unref(cc);
    return mine ? APG_EAGAIN : APG_OK;
}

void apg_cio_direct_abort(struct apg_cio *io, struct apg_cconn *cc)
{
    (void)io;
    conn_unref(cc);
}

apg_err_t apg_cio_direct_send(struct apg_cio *io, struct apg_cconn *cc, struct apg_rcmd *req,
                              const void *body, size_t blen, int64_t deadline_ms, apg_cio_cb cb,
                              void *arg, bool now)
{
    req->opaque = atomic_fetch_add(&io->io_opaque, 1) + 1;
    req->language = APG_LANG_CPP;
    if (cb == NULL)
        req->flag |= APG_RCMD_FLAG_ONEWAY;
    char sig[APG_SIGN_LEN];
    apg_err_t se = cio_sign(io, req, body, blen, sig);
    if (se != APG_OK) {
        conn_unref(cc);
        return se;
    }
    struct apg_creq *rq = NULL;
    if (cb != NULL && (rq = apg_malloc(sizeof(*rq))) == NULL) {
        conn_unref(cc);
        return APG_ENOMEM;
    }
    if (rq != NULL) {
        rq->rq_r = (struct apg_rconn_req){
            .rr_opaque = req->opaque,
            .rr_deadline = deadline_ms > 0 ? deadline_ms : apg_now_ms() + io->io_conf.timeout_ms,
            .rr_conn = cc,
        };
        rq->rq_cb = cb;
        rq->rq_arg = arg;
    }
    /* Registered before the bytes leave, so the answer always finds it. */
    pthread_mutex_lock(&io->io_rmu);
    bool ok = !io->io_stopping && cc->cc_state == CC_UP;
    if (ok && rq != NULL)
        req_link(io, rq);
    if (apg_rconn_reqs_count(&io->io_reqs) <= DIRECT_NOW_PENDING)
        now = true;
    pthread_mutex_unlock(&io->io_rmu);
    if (!ok) {
        apg_free(rq);
        conn_unref(cc);
        return APG_EIO;
    }
    /* From here on the request belongs to the loop thread (it may already
     * have failed it); only req, body and cc are used. A write error shuts
     * the socket down: the loop thread's read sees it and fails every
     * request of the connection, this one included. */
    bool wake = false;
    pthread_mutex_lock(&cc->cc_wmu);
    size_t mark = cc->cc_out.b_len;
    if (!cc->cc_wclosed &&
        mark + uv_stream_get_write_queue_size((uv_stream_t *)&cc->cc_tcp) > DIRECT_MAX_QUEUED) {
        pthread_mutex_unlock(&cc->cc_wmu);
        return direct_backoff(io, cc, rq != NULL, req->opaque);
    }
    if (cc->cc_wclosed) {
        /* closing: conn_fail fails the request */
    } else if (apg_rcmd_encode_header(req, (uint32_t)blen, &cc->cc_out) != APG_OK ||
               (blen && apg_buf_append(&cc->cc_out, body, blen) != APG_OK)) {
        cc->cc_out.b_len = mark;
        conn_shutdown_locked(cc);
    } else if (cc->cc_writing || cc->cc_dirty) {
        /* the current writer or the pending loop flush takes it along */
    } else if (now) {
        wake = conn_write_direct(cc);
    } else {
        cc->cc_dirty = true;
        wake = true;
    }
    pthread_mutex_unlock(&cc->cc_wmu);
    if (wake)
        uv_async_send(&io->io_async);
    conn_unref(cc);
    return APG_OK;
}

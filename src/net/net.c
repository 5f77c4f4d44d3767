/* Event loops, connections and the server.
 *
 * Design (see net.h for the contract):
 *  - Each loop thread owns its connections. Bytes reach a connection through
 *    its transport (transport.h; TCP in tcp.c) straight into the input
 *    buffer (grown by doubling, never shrunk, so a warm connection reads
 *    without allocating). The loop's codec (codec.h; RocketMQ remoting in
 *    remoting_codec.c) then cuts each whole message out of that buffer,
 *    decodes it into the loop's decode state and dispatches it right there,
 *    before the buffer is reused: no copy, no allocation, no thread hop.
 *  - A codec appends encoded output to c_out (apg_net_conn_out) and
 *    apg_net_conn_out_done puts the connection on the loop's dirty list.
 *    The uv_check handle (which runs after the poll phase) flushes every
 *    dirty connection with one non-blocking write, falling back to a
 *    queued write for the rest; while the dirty list is non-empty a uv_idle
 *    handle keeps the poll phase from blocking, so output queued from a
 *    timer or async callback goes out in the same iteration.
 *  - A connection whose queued output passes APG_NET_HIGH_WATER stops
 *    reading until it drains below APG_NET_LOW_WATER.
 *  - Slow peers: the input buffer grows with bytes received (a read never
 *    reserves more than has arrived, beyond READ_CHUNK), an incomplete frame
 *    left after parsing must complete within l_frame_timeout_ms of its first
 *    byte (checked by the tick), it must keep growing by at least
 *    l_frame_min_rate bytes a second over each RATE_WINDOW_MS window (the
 *    tick again), and its bytes count in the server's s_pending; past
 *    l_max_pending the connections with the oldest incomplete frames of the
 *    whole server are closed first (each loop keeps its own in start order
 *    and publishes the oldest; a loop asks the loop holding the oldest to
 *    close it). Whole frames skip all of it (one predictable branch after
 *    parsing).
 *  - Work from other threads arrives through a mutex-protected FIFO and a
 *    uv_async; no per-message thread hand-off happens in the server itself.
 *  - Every loop of a server has its own listening socket bound to the same
 *    port with SO_REUSEPORT (created, bound and listening before the loops
 *    start, so a port is accepting when apg_net_server_start returns).
 *
 * Lifetime of a connection: one reference for being open (dropped in the
 * uv_close callback), one per dirty-list entry, one per apg_conn_post in
 * flight, plus whatever the application takes. Memory is freed when the
 * count reaches zero, which can only happen after the handle closed. */
#include "net/net_int.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/log.h"
#include "common/mem.h"

#define READ_CHUNK 65536
#define READ_MIN 4096
#define STOP_GRACE_MS 2000
/* Connection buffers larger than this are freed on the next tick when empty
 * (they grow back on demand), so one huge frame does not pin memory. */
#define SHRINK_ABOVE (1u * 1024 * 1024)
/* At most one slow-peer WARN line per loop this often; the rest are counted
 * and the count is reported with the next line. */
#define WARN_EVERY_MS 1000
/* The minimum-rate rule judges an incomplete frame over windows this long:
 * a client that stalls mid-frame for less (a pause of its own, a TCP
 * retransmission) is never cut by it. */
#define RATE_WINDOW_MS 4000

struct apg_net_server {
    struct apg_net_server_opts s_opts;
    char *s_name;
    char *s_host;
    int s_port;
    int s_n_loops;
    struct apg_net_loop *s_loops;
    atomic_int s_opaque;
    atomic_size_t s_pending; /* incomplete-frame bytes over all loops */
    bool s_halted;           /* loop threads joined; posts fail, the struct stays valid */
};

/* ------------------------------------------------------------------ */
/* connections                                                          */

void apg_net_conn_refused(struct apg_conn *c, enum apg_net_refusal r)
{
    atomic_fetch_add_explicit(&c->c_loop->l_refused[r], 1, memory_order_relaxed);
}

void apg_net_server_refusals(const struct apg_net_server *srv, uint64_t out[APG_NET_REFUSAL_N])
{
    for (int r = 0; r < APG_NET_REFUSAL_N; r++)
        out[r] = 0;
    for (int i = 0; srv && i < srv->s_n_loops; i++)
        for (int r = 0; r < APG_NET_REFUSAL_N; r++)
            out[r] += atomic_load_explicit(&srv->s_loops[i].l_refused[r], memory_order_relaxed);
}

const char *apg_net_refusal_key(enum apg_net_refusal r)
{
    static const char *const keys[APG_NET_REFUSAL_N] = {
        [APG_NET_REFUSED_MALFORMED] = "closedMalformedFrame",
        [APG_NET_REFUSED_TLS] = "closedTlsRefused",
        [APG_NET_REFUSED_SLOW] = "closedSlowFrame",
    };
    return (unsigned)r < APG_NET_REFUSAL_N ? keys[r] : "?";
}

static void conn_free(struct apg_conn *c)
{
    apg_buf_free(&c->c_in);
    apg_buf_free(&c->c_out);
    apg_buf_free(&c->c_wbuf);
    apg_free(c->c_addr);
    apg_free(c);
}

void apg_conn_ref(struct apg_conn *c)
{
    atomic_fetch_add(&c->c_refs, 1);
}

void apg_conn_unref(struct apg_conn *c)
{
    if (atomic_fetch_sub(&c->c_refs, 1) == 1)
        conn_free(c);
}

bool apg_conn_is_closed(const struct apg_conn *c)
{
    return atomic_load(&((struct apg_conn *)c)->c_closed);
}

int apg_conn_loop_index(const struct apg_conn *c)
{
    return c->c_loop->l_idx;
}

uv_loop_t *apg_conn_uv_loop(struct apg_conn *c)
{
    return &c->c_loop->l_uv;
}

const char *apg_conn_peer(const struct apg_conn *c)
{
    return c->c_peer;
}

void apg_conn_set_user(struct apg_conn *c, void *user)
{
    c->c_user = user;
}

void *apg_conn_user(const struct apg_conn *c)
{
    return c->c_user;
}

size_t apg_conn_pending_bytes(const struct apg_conn *c)
{
    return c->c_out.b_len + c->c_wbuf.b_len;
}

void apg_conn_close_after_write(struct apg_conn *c, const char *reason)
{
    if (apg_conn_is_closed(c) || c->c_drain_close)
        return;
    c->c_drain_close = true;
    c->c_drain_reason = reason;
    c->c_tr->tr_read_stop(c);
    if (apg_conn_pending_bytes(c) == 0)
        apg_net_conn_close(c, APG_ESHUTDOWN, false, reason);
}

struct apg_conn *apg_net_conn_new(struct apg_net_loop *l)
{
    struct apg_conn *c = apg_calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->c_loop = l;
    c->c_tr = l->l_tr;
    if (c->c_tr->tr_init(c)) {
        apg_free(c);
        return NULL;
    }
    atomic_init(&c->c_refs, 1);
    atomic_init(&c->c_closed, false);
    c->c_close_err = APG_ECLOSED;
    c->c_last_active = uv_now(&l->l_uv);
    snprintf(c->c_peer, sizeof(c->c_peer), "?");
    c->c_next = l->l_conns;
    if (l->l_conns)
        l->l_conns->c_prev = c;
    l->l_conns = c;
    return c;
}

static void loop_maybe_finish(struct apg_net_loop *l);

/* ------------------------------------------------------------------ */
/* slow peers: incomplete frames                                        */

/* Counts n bytes of an incomplete frame on c in the loop's and the
 * server's totals (replacing what was counted before). */
static void conn_set_pending(struct apg_conn *c, size_t n)
{
    struct apg_net_loop *l = c->c_loop;
    if (n == c->c_pending)
        return;
    l->l_pending += n - c->c_pending; /* modular arithmetic: also right when n is smaller */
    if (l->l_pending_total) {
        if (n > c->c_pending)
            atomic_fetch_add_explicit(l->l_pending_total, n - c->c_pending, memory_order_relaxed);
        else
            atomic_fetch_sub_explicit(l->l_pending_total, c->c_pending - n, memory_order_relaxed);
    }
    c->c_pending = n;
}

/* Closes c for holding an incomplete frame (why names the limit it hit),
 * with a WARN line naming the peer, the bytes received and announced; at
 * most one line per WARN_EVERY_MS per loop, the others counted. */
static void conn_close_slow(struct apg_conn *c, const char *why)
{
    struct apg_net_loop *l = c->c_loop;
    apg_net_conn_refused(c, APG_NET_REFUSED_SLOW);
    uint64_t now = uv_now(&l->l_uv);
    size_t got = c->c_in.b_len;
    size_t announced = 0;
    if (l->l_codec->cd_read_hint)
        announced = l->l_codec->cd_read_hint(c->c_in.b_data, got, l->l_max_frame);
    if (!l->l_warn_ms || now - l->l_warn_ms >= WARN_EVERY_MS) {
        char more[64] = "";
        if (l->l_warn_quiet)
            snprintf(more, sizeof(more), " (and %u more such closes)", l->l_warn_quiet);
        apg_log_warn(l->l_name,
                     "closing connection %s: %s; %zu bytes of the frame received, %zu announced%s",
                     c->c_peer, why, got, announced, more);
        l->l_warn_ms = now ? now : 1;
        l->l_warn_quiet = 0;
    } else {
        l->l_warn_quiet++;
    }
    apg_net_conn_close(c, APG_ECLOSED, false, why);
}

/* Sets when c's incomplete frame began (0: it has none) and keeps the
 * loop's list of such connections in that order: a frame that begins now is
 * the newest, so it goes to the tail. Publishes the loop's oldest start for
 * the other loops of the server. Also restarts c's rate window. */
static void conn_frame_mark(struct apg_conn *c, uint64_t start)
{
    struct apg_net_loop *l = c->c_loop;
    c->c_rate_ms = 0;
    if (c->c_frame_start) {
        if (c->c_part_prev)
            c->c_part_prev->c_part_next = c->c_part_next;
        else
            l->l_part_head = c->c_part_next;
        if (c->c_part_next)
            c->c_part_next->c_part_prev = c->c_part_prev;
        else
            l->l_part_tail = c->c_part_prev;
        c->c_part_prev = c->c_part_next = NULL;
    }
    c->c_frame_start = start;
    if (start) {
        c->c_part_prev = l->l_part_tail;
        if (l->l_part_tail)
            l->l_part_tail->c_part_next = c;
        else
            l->l_part_head = c;
        l->l_part_tail = c;
    }
    atomic_store_explicit(&l->l_oldest_frame, l->l_part_head ? l->l_part_head->c_frame_start : 0,
                          memory_order_relaxed);
}

static void loop_shed(struct apg_net_loop *l);

static void run_shed(void *arg)
{
    struct apg_net_loop *l = arg;
    atomic_store(&l->l_shed_asked, false);
    if (!l->l_stopping)
        loop_shed(l);
}

/* The server holds more incomplete-frame bytes than its cap: while it
 * does, close the connection whose incomplete frame is the oldest of the
 * whole server. Each loop publishes its oldest start (l_oldest_frame); when
 * the oldest is on another loop, that loop is asked (one post, not repeated
 * while it is pending) to run this same function, which closes it there and
 * carries on. The frame starts of all loops come from one monotonic clock
 * (uv_now), so they compare across loops. */
static void loop_shed(struct apg_net_loop *l)
{
    while (atomic_load_explicit(l->l_pending_total, memory_order_relaxed) > l->l_max_pending) {
        struct apg_net_loop *oldest = NULL;
        uint64_t best = 0;
        for (int i = 0; i < l->l_n_peers; i++) {
            struct apg_net_loop *p = &l->l_peers[i];
            uint64_t t = p == l ? (l->l_part_head ? l->l_part_head->c_frame_start : 0)
                                : atomic_load_explicit(&p->l_oldest_frame, memory_order_relaxed);
            if (t && (!best || t < best || (t == best && p == l))) {
                best = t;
                oldest = p;
            }
        }
        if (!oldest)
            return;
        if (oldest != l) {
            if (!atomic_exchange(&oldest->l_shed_asked, true) &&
                apg_net_loop_post(oldest, run_shed, oldest) != APG_OK)
                atomic_store(&oldest->l_shed_asked, false);
            return;
        }
        char why[128];
        snprintf(why, sizeof(why), "oldest incomplete frame while %zu bytes of them are buffered",
                 atomic_load_explicit(l->l_pending_total, memory_order_relaxed));
        conn_close_slow(l->l_part_head, why);
    }
}

/* After parsing: what is left in c_in is the start of a frame (or
 * nothing). Starts its deadline and counts its bytes; consumed says whole
 * frames went before it, so it began in this read. Out of the hot path. */
static __attribute__((noinline)) void conn_note_partial(struct apg_conn *c, bool consumed)
{
    struct apg_net_loop *l = c->c_loop;
    size_t left = c->c_in.b_len;
    if (apg_conn_is_closed(c))
        return; /* closed while dispatching: its count was dropped then */
    if (!left) {
        if (c->c_frame_start)
            conn_frame_mark(c, 0);
    } else if (consumed || !c->c_frame_start) {
        uint64_t now = uv_now(&l->l_uv);
        conn_frame_mark(c, now ? now : 1);
    }
    conn_set_pending(c, left);
    if (left && l->l_max_pending &&
        atomic_load_explicit(l->l_pending_total, memory_order_relaxed) > l->l_max_pending)
        loop_shed(l);
}

void apg_net_conn_closed(struct apg_conn *c)
{
    struct apg_net_loop *l = c->c_loop;
    if (c->c_prev)
        c->c_prev->c_next = c->c_next;
    else
        l->l_conns = c->c_next;
    if (c->c_next)
        c->c_next->c_prev = c->c_prev;
    c->c_prev = c->c_next = NULL;
    apg_conn_unref(c);
    loop_maybe_finish(l);
}

void apg_net_conn_close(struct apg_conn *c, apg_err_t pending_err, bool log_info,
                        const char *reason)
{
    if (atomic_exchange(&c->c_closed, true))
        return;
    struct apg_net_loop *l = c->c_loop;
    if (log_info)
        apg_log_info(l->l_name, "closing connection %s: %s", c->c_peer, reason);
    else
        apg_log_debug(l->l_name, "closing connection %s: %s", c->c_peer, reason);
    apg_conn_ref(c);
    conn_set_pending(c, 0);
    if (c->c_frame_start)
        conn_frame_mark(c, 0);
    c->c_tr->tr_read_stop(c);
    if (l->l_on_close && c->c_connected)
        l->l_on_close(c, l->l_ud);
    if (l->l_codec->cd_conn_close)
        l->l_codec->cd_conn_close(c, pending_err);
    c->c_tr->tr_close(c);
    apg_conn_unref(c);
}

void apg_conn_close(struct apg_conn *c, const char *reason)
{
    apg_net_conn_close(c, APG_ECLOSED, true, reason ? reason : "closed by the application");
}

static void on_idle(uv_idle_t *h)
{
    /* Only exists to make the poll phase non-blocking. */
}

void apg_net_conn_mark_dirty(struct apg_conn *c)
{
    if (c->c_dirty)
        return;
    struct apg_net_loop *l = c->c_loop;
    c->c_dirty = true;
    apg_conn_ref(c);
    c->c_dirty_next = l->l_dirty;
    l->l_dirty = c;
    if (!uv_is_active((uv_handle_t *)&l->l_idle))
        uv_idle_start(&l->l_idle, on_idle);
}

static void conn_maybe_resume(struct apg_conn *c)
{
    if (c->c_paused && !c->c_drain_close && !apg_conn_is_closed(c) &&
        apg_conn_pending_bytes(c) < APG_NET_LOW_WATER) {
        c->c_paused = false;
        /* The peer could not send while reading was stopped. */
        if (c->c_frame_start) {
            uint64_t now = uv_now(&c->c_loop->l_uv);
            conn_frame_mark(c, now ? now : 1);
        }
        apg_net_conn_start(c);
    }
}

static void conn_flush(struct apg_conn *c);

void apg_net_conn_wdone(struct apg_conn *c, int status)
{
    c->c_writing = false;
    apg_buf_reset(&c->c_wbuf);
    if (status < 0) {
        if (status != UV_ECANCELED) {
            char why[128];
            snprintf(why, sizeof(why), "write failed: %s", uv_strerror(status));
            apg_net_conn_close(c, APG_EIO, false, why);
        }
        apg_conn_unref(c);
        return;
    }
    c->c_last_active = uv_now(&c->c_loop->l_uv);
    if (!apg_conn_is_closed(c)) {
        if (c->c_out.b_len)
            conn_flush(c);
        else if (c->c_drain_close)
            apg_net_conn_close(c, APG_ESHUTDOWN, false, c->c_drain_reason);
        conn_maybe_resume(c);
    }
    apg_conn_unref(c);
}

static void conn_flush(struct apg_conn *c)
{
    if (c->c_writing || !c->c_connected || apg_conn_is_closed(c) || c->c_out.b_len == 0)
        return;
    uv_buf_t b = uv_buf_init((char *)c->c_out.b_data, (unsigned)c->c_out.b_len);
    int n = c->c_tr->tr_try_writev(c, &b, 1);
    if (n == (int)c->c_out.b_len) {
        apg_buf_reset(&c->c_out);
        c->c_last_active = uv_now(&c->c_loop->l_uv);
        if (c->c_drain_close)
            apg_net_conn_close(c, APG_ESHUTDOWN, false, c->c_drain_reason);
        else
            conn_maybe_resume(c);
        return;
    }
    if (n < 0 && n != UV_EAGAIN) {
        char why[128];
        snprintf(why, sizeof(why), "write failed: %s", uv_strerror(n));
        apg_net_conn_close(c, APG_EIO, false, why);
        return;
    }
    if (n < 0)
        n = 0;
    /* Hand the rest to a queued write; new output accumulates in c_out
     * meanwhile. */
    struct apg_buf tmp = c->c_wbuf;
    c->c_wbuf = c->c_out;
    c->c_out = tmp;
    apg_buf_reset(&c->c_out);
    b = uv_buf_init((char *)c->c_wbuf.b_data + n, (unsigned)(c->c_wbuf.b_len - n));
    c->c_writing = true;
    apg_conn_ref(c);
    int rc = c->c_tr->tr_writev(c, &b, 1);
    if (rc) {
        c->c_writing = false;
        apg_conn_unref(c);
        char why[128];
        snprintf(why, sizeof(why), "write failed: %s", uv_strerror(rc));
        apg_net_conn_close(c, APG_EIO, false, why);
    }
}

void apg_net_conn_out_push(struct apg_conn *c)
{
    if (c->c_writing || !c->c_connected || apg_conn_is_closed(c) || c->c_out.b_len == 0)
        return;
    uv_buf_t b = uv_buf_init((char *)c->c_out.b_data, (unsigned)c->c_out.b_len);
    int n = c->c_tr->tr_try_writev(c, &b, 1);
    if (n < 0 && n != UV_EAGAIN) {
        char why[128];
        snprintf(why, sizeof(why), "write failed: %s", uv_strerror(n));
        apg_net_conn_close(c, APG_EIO, false, why);
        return;
    }
    if (n <= 0)
        return;
    memmove(c->c_out.b_data, c->c_out.b_data + n, c->c_out.b_len - (size_t)n);
    c->c_out.b_len -= (size_t)n;
    c->c_last_active = uv_now(&c->c_loop->l_uv);
}

static void on_check(uv_check_t *h)
{
    struct apg_net_loop *l = h->data;
    while (l->l_dirty) {
        struct apg_conn *c = l->l_dirty;
        l->l_dirty = NULL;
        while (c) {
            struct apg_conn *next = c->c_dirty_next;
            c->c_dirty = false;
            c->c_dirty_next = NULL;
            conn_flush(c);
            apg_conn_unref(c);
            c = next;
        }
    }
    uv_idle_stop(&l->l_idle);
}

/* Cuts, decodes and dispatches every whole message in the input buffer
 * with the loop's codec. */
static void conn_parse(struct apg_conn *c)
{
    struct apg_net_loop *l = c->c_loop;
    const struct apg_net_codec *cd = l->l_codec;
    char why[256];
    apg_err_t close_err = APG_OK;
    bool dispatched = false;
    while (!apg_conn_is_closed(c)) {
        const uint8_t *p = c->c_in.b_data + c->c_in_off;
        size_t avail = c->c_in.b_len - c->c_in_off;
        size_t flen = 0;
        char perr[160] = "";
        apg_err_t e = cd->cd_frame(p, avail, l->l_max_frame, &flen, perr, sizeof(perr));
        if (e) {
            snprintf(why, sizeof(why), "bad frame: %s", perr[0] ? perr : apg_strerror(e));
            close_err = APG_EPROTO;
            break;
        }
        if (flen == 0)
            break;
        void *msg = NULL;
        e = cd->cd_decode(l->l_codec_state, p, flen, &msg, perr, sizeof(perr));
        if (e) {
            if (e == APG_ENOMEM)
                snprintf(why, sizeof(why), "out of memory decoding a frame");
            else
                snprintf(why, sizeof(why), "malformed frame: %s", perr[0] ? perr : apg_strerror(e));
            close_err = e == APG_ENOMEM ? APG_ENOMEM : APG_EPROTO;
            break;
        }
        c->c_in_off += flen;
        if (cd->cd_dispatch(c, msg)) {
            l->l_requests++;
            dispatched = true;
        }
    }
    if (dispatched && l->l_on_read_end)
        l->l_on_read_end(c, l->l_ud);
    if (close_err) {
        if (close_err == APG_EPROTO)
            apg_net_conn_refused(c, APG_NET_REFUSED_MALFORMED);
        apg_net_conn_close(c, close_err, true, why);
        return;
    }
    bool consumed = c->c_in_off != 0;
    if (consumed) {
        apg_buf_consume(&c->c_in, c->c_in_off);
        c->c_in_off = 0;
    }
    if (__builtin_expect(c->c_in.b_len != 0 || c->c_pending != 0, 0))
        conn_note_partial(c, consumed);
}

apg_err_t apg_net_conn_rbuf(struct apg_conn *c, uint8_t **p, size_t *cap)
{
    size_t want = READ_CHUNK;
    /* If the start of a message is buffered, make room for the rest of it,
     * but never more than what arrived so far: the buffer grows with bytes
     * received (at most doubling per read), not with what a peer announced. */
    const struct apg_net_codec *cd = c->c_loop->l_codec;
    if (cd->cd_read_hint && c->c_in.b_len > READ_CHUNK) {
        size_t mlen = cd->cd_read_hint(c->c_in.b_data, c->c_in.b_len, c->c_loop->l_max_frame);
        if (mlen > c->c_in.b_len && mlen - c->c_in.b_len > want)
            want = mlen - c->c_in.b_len;
        if (want > c->c_in.b_len)
            want = c->c_in.b_len;
    } else if (c->c_in.b_len) {
        /* A small start of a frame is buffered: read into the room left and
         * grow only when little is. Asking for a whole READ_CHUNK more would
         * double the buffer, and the copy touches every page of the old one:
         * 64 KiB resident per connection that trickles its second byte. */
        size_t room = c->c_in.b_cap - c->c_in.b_len;
        want = room >= READ_MIN ? room : READ_MIN;
    }
    apg_err_t e = apg_buf_reserve(&c->c_in, want);
    if (e)
        return e;
    *p = c->c_in.b_data + c->c_in.b_len;
    *cap = c->c_in.b_cap - c->c_in.b_len;
    return APG_OK;
}

void apg_net_conn_rdone(struct apg_conn *c, ssize_t nread)
{
    if (nread == UV_ENOBUFS) {
        apg_net_conn_close(c, APG_ENOMEM, true, "out of memory for the read buffer");
        return;
    }
    if (nread < 0) {
        char why[128];
        snprintf(why, sizeof(why), "%s", nread == UV_EOF ? "peer closed" : uv_strerror((int)nread));
        apg_net_conn_close(c, APG_ECLOSED, false, why);
        return;
    }
    if (nread == 0)
        return;
    c->c_in.b_len += (size_t)nread;
    c->c_last_active = uv_now(&c->c_loop->l_uv);
    apg_conn_ref(c);
    conn_parse(c);
    apg_conn_unref(c);
}

apg_err_t apg_net_conn_start(struct apg_conn *c)
{
    if (!c->c_connected) {
        c->c_connected = true;
        c->c_tr->tr_peer(c, c->c_peer, sizeof(c->c_peer));
    }
    return c->c_tr->tr_read_start(c);
}

/* ------------------------------------------------------------------ */
/* conn posts                                                           */

struct conn_post {
    struct apg_conn *cp_conn;
    void (*cp_fn)(struct apg_conn *c, void *arg);
    void *cp_arg;
};

static void run_conn_post(void *arg)
{
    struct conn_post *cp = arg;
    cp->cp_fn(cp->cp_conn, cp->cp_arg);
    apg_conn_unref(cp->cp_conn);
    apg_free(cp);
}

apg_err_t apg_conn_post(struct apg_conn *c, void (*fn)(struct apg_conn *c, void *arg), void *arg)
{
    struct conn_post *cp = apg_malloc(sizeof(*cp));
    if (!cp)
        return APG_ENOMEM;
    cp->cp_conn = c;
    cp->cp_fn = fn;
    cp->cp_arg = arg;
    apg_conn_ref(c);
    apg_err_t e = apg_net_loop_post(c->c_loop, run_conn_post, cp);
    if (e) {
        apg_conn_unref(c);
        apg_free(cp);
    }
    return e;
}

/* ------------------------------------------------------------------ */
/* loops                                                                */

static void run_posts(struct apg_net_loop *l)
{
    uv_mutex_lock(&l->l_mtx);
    struct apg_net_post *p = l->l_post_head;
    l->l_post_head = l->l_post_tail = NULL;
    uv_mutex_unlock(&l->l_mtx);
    while (p) {
        struct apg_net_post *next = p->p_next;
        p->p_fn(p->p_arg);
        apg_free(p);
        p = next;
    }
}

static void on_async(uv_async_t *a)
{
    run_posts(a->data);
}

apg_err_t apg_net_loop_post(struct apg_net_loop *l, void (*fn)(void *), void *arg)
{
    struct apg_net_post *p = apg_malloc(sizeof(*p));
    if (!p)
        return APG_ENOMEM;
    p->p_fn = fn;
    p->p_arg = arg;
    p->p_next = NULL;
    uv_mutex_lock(&l->l_mtx);
    if (l->l_post_closed) {
        uv_mutex_unlock(&l->l_mtx);
        apg_free(p);
        return APG_ESHUTDOWN;
    }
    if (l->l_post_tail)
        l->l_post_tail->p_next = p;
    else
        l->l_post_head = p;
    l->l_post_tail = p;
    uv_async_send(&l->l_async);
    uv_mutex_unlock(&l->l_mtx);
    return APG_OK;
}

/* The minimum-rate rule for c's incomplete frame, from the tick: over each
 * window of RATE_WINDOW_MS the frame must grow by l_frame_min_rate bytes a
 * second, or c is closed. A window starts when the frame begins or reading
 * resumes after back-pressure (c_rate_ms = 0), and again after a late tick
 * (restart: the loop itself did not read meanwhile). True when c was
 * closed. */
static bool conn_check_rate(struct apg_conn *c, uint64_t now, bool restart)
{
    struct apg_net_loop *l = c->c_loop;
    if (restart || !c->c_rate_ms || c->c_in.b_len < c->c_rate_bytes) {
        c->c_rate_ms = now ? now : 1;
        c->c_rate_bytes = c->c_in.b_len;
        return false;
    }
    uint64_t span = now - c->c_rate_ms;
    if (span < RATE_WINDOW_MS)
        return false;
    uint64_t rate = (uint64_t)(c->c_in.b_len - c->c_rate_bytes) * 1000 / span;
    if (rate < l->l_frame_min_rate) {
        char why[128];
        snprintf(why, sizeof(why), "frame arriving at %llu bytes/s over %llu ms, under %u",
                 (unsigned long long)rate, (unsigned long long)span, l->l_frame_min_rate);
        conn_close_slow(c, why);
        return true;
    }
    c->c_rate_ms = now;
    c->c_rate_bytes = c->c_in.b_len;
    return false;
}

static void on_tick(uv_timer_t *t)
{
    struct apg_net_loop *l = t->data;
    uint64_t now = uv_now(&l->l_uv);
    /* A tick this late means the loop was busy elsewhere and bytes waited in
     * the kernel unread: no rate window may end on it. */
    bool late = l->l_last_tick && now - l->l_last_tick > 2 * l->l_tick_ms + 100;
    l->l_last_tick = now;
    if (l->l_warn_quiet && now - l->l_warn_ms >= WARN_EVERY_MS) {
        apg_log_warn(l->l_name, "closed %u more connections for slow or incomplete frames",
                     l->l_warn_quiet);
        l->l_warn_ms = now;
        l->l_warn_quiet = 0;
    }
    for (struct apg_conn *c = l->l_conns, *next; c; c = next) {
        next = c->c_next;
        if (apg_conn_is_closed(c))
            continue;
        if (!c->c_connected) {
            if (c->c_connect_deadline && now > c->c_connect_deadline)
                apg_net_conn_close(c, APG_ETIMEDOUT, true, "connect timed out");
            continue;
        }
        /* Give back buffers a burst of large frames left behind. */
        if (c->c_in.b_len == 0 && c->c_in.b_cap > SHRINK_ABOVE)
            apg_buf_free(&c->c_in);
        if (c->c_out.b_len == 0 && c->c_out.b_cap > SHRINK_ABOVE)
            apg_buf_free(&c->c_out);
        if (!c->c_writing && c->c_wbuf.b_cap > SHRINK_ABOVE)
            apg_buf_free(&c->c_wbuf);
        if (l->l_frame_min_rate && c->c_frame_start && !c->c_paused &&
            conn_check_rate(c, now, late))
            continue;
        if (l->l_frame_timeout_ms && c->c_tr->tr_busy_since) {
            uint64_t since = c->c_tr->tr_busy_since(c);
            if (since && now - since >= l->l_frame_timeout_ms) {
                char why[96];
                snprintf(why, sizeof(why), "TLS handshake not completed within %llu ms",
                         (unsigned long long)l->l_frame_timeout_ms);
                apg_net_conn_refused(c, APG_NET_REFUSED_SLOW);
                apg_net_conn_close(c, APG_ETIMEDOUT, true, why);
                continue;
            }
        }
        if (l->l_frame_timeout_ms && c->c_frame_start && !c->c_paused &&
            now - c->c_frame_start >= l->l_frame_timeout_ms) {
            char why[96];
            snprintf(why, sizeof(why), "frame not completed within %llu ms",
                     (unsigned long long)l->l_frame_timeout_ms);
            conn_close_slow(c, why);
            continue;
        }
        if (l->l_idle_ms && now - c->c_last_active >= l->l_idle_ms && !c->c_writing) {
            char why[96];
            snprintf(why, sizeof(why), "idle for %llu s",
                     (unsigned long long)((now - c->c_last_active) / 1000));
            apg_net_conn_close(c, APG_ECLOSED, true, why);
        }
    }
}

static void on_req_timer(uv_timer_t *t)
{
    struct apg_net_loop *l = t->data;
    if (l->l_codec->cd_expire(l, uv_now(&l->l_uv)) == 0)
        uv_timer_stop(&l->l_req_timer);
}

void apg_net_loop_watch_deadlines(struct apg_net_loop *l)
{
    if (!l->l_finished && !uv_is_active((uv_handle_t *)&l->l_req_timer))
        uv_timer_start(&l->l_req_timer, on_req_timer, 20, 20);
}

apg_err_t apg_net_loop_init(struct apg_net_loop *l, int idx)
{
    l->l_idx = idx;
    if (l->l_codec->cd_loop_new(l, &l->l_codec_state))
        return APG_ENOMEM;
    if (uv_loop_init(&l->l_uv)) {
        l->l_codec->cd_loop_free(l->l_codec_state);
        l->l_codec_state = NULL;
        return APG_ENOMEM;
    }
    uv_async_init(&l->l_uv, &l->l_async, on_async);
    uv_check_init(&l->l_uv, &l->l_check);
    uv_idle_init(&l->l_uv, &l->l_idle);
    uv_timer_init(&l->l_uv, &l->l_tick);
    uv_timer_init(&l->l_uv, &l->l_req_timer);
    uv_timer_init(&l->l_uv, &l->l_stop_timer);
    l->l_async.data = l->l_check.data = l->l_idle.data = l;
    l->l_tick.data = l->l_req_timer.data = l->l_stop_timer.data = l;
    uv_check_start(&l->l_check, on_check);
    uint64_t tick = 1000;
    if (l->l_idle_ms && l->l_idle_ms / 4 < tick)
        tick = l->l_idle_ms / 4;
    if (l->l_frame_timeout_ms && l->l_frame_timeout_ms / 4 < tick)
        tick = l->l_frame_timeout_ms / 4;
    if (tick < 50)
        tick = 50;
    l->l_tick_ms = tick;
    uv_timer_start(&l->l_tick, on_tick, tick, tick);
    /* The tick must not keep a stopping loop alive by itself; it is closed
     * explicitly when the loop finishes. */
    return APG_OK;
}

static void loop_maybe_finish(struct apg_net_loop *l)
{
    if (!l->l_stopping || l->l_finished || l->l_conns)
        return;
    if (l->l_has_listener && !uv_is_closing((uv_handle_t *)&l->l_listen))
        return;
    l->l_finished = true;
    if (l->l_on_stop)
        l->l_on_stop(l->l_idx, &l->l_uv, l->l_ud);
    uv_mutex_lock(&l->l_mtx);
    l->l_post_closed = true;
    uv_mutex_unlock(&l->l_mtx);
    run_posts(l); /* posts that raced with the stop still run */
    uv_close((uv_handle_t *)&l->l_async, NULL);
    uv_close((uv_handle_t *)&l->l_check, NULL);
    uv_close((uv_handle_t *)&l->l_idle, NULL);
    uv_close((uv_handle_t *)&l->l_tick, NULL);
    uv_close((uv_handle_t *)&l->l_req_timer, NULL);
    uv_close((uv_handle_t *)&l->l_stop_timer, NULL);
}

static void on_stop_timer(uv_timer_t *t)
{
    struct apg_net_loop *l = t->data;
    for (struct apg_conn *c = l->l_conns, *next; c; c = next) {
        next = c->c_next;
        apg_net_conn_close(c, APG_ESHUTDOWN, true, "server stopping, output not drained in time");
    }
}

void apg_net_loop_begin_stop(struct apg_net_loop *l, apg_err_t pending_err, bool graceful)
{
    if (l->l_stopping)
        return;
    l->l_stopping = true;
    if (l->l_has_listener)
        uv_close((uv_handle_t *)&l->l_listen, NULL);
    for (struct apg_conn *c = l->l_conns, *next; c; c = next) {
        next = c->c_next;
        if (graceful && c->c_connected && apg_conn_pending_bytes(c) > 0) {
            c->c_drain_close = true;
            c->c_drain_reason = "server stopping";
            c->c_tr->tr_read_stop(c);
            conn_flush(c);
        } else {
            apg_net_conn_close(c, pending_err, false, "stopping");
        }
    }
    if (l->l_conns)
        uv_timer_start(&l->l_stop_timer, on_stop_timer, STOP_GRACE_MS, 0);
    loop_maybe_finish(l);
}

void apg_net_loop_fini(struct apg_net_loop *l)
{
    if (uv_loop_close(&l->l_uv) == UV_EBUSY) {
        apg_log_warn(l->l_name, "loop %d still had handles at exit", l->l_idx);
        uv_run(&l->l_uv, UV_RUN_DEFAULT);
        uv_loop_close(&l->l_uv);
    }
    l->l_codec->cd_loop_free(l->l_codec_state);
    l->l_codec_state = NULL;
    uv_mutex_destroy(&l->l_mtx);
    uv_sem_destroy(&l->l_ready);
}

/* ------------------------------------------------------------------ */
/* server                                                               */

void apg_net_transport_ctx_free(const struct apg_net_transport *tr, void *ctx)
{
    if (ctx && tr && tr->tr_ctx_free)
        tr->tr_ctx_free(ctx);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct apg_net_loop *l = server->data;
    if (status < 0) {
        apg_log_warn(l->l_name, "accept failed: %s", uv_strerror(status));
        return;
    }
    struct apg_conn *c = apg_net_conn_new(l);
    if (!c) {
        apg_log_error(l->l_name, "out of memory accepting a connection");
        return;
    }
    if (c->c_tr->tr_accept(c, server) || apg_net_conn_start(c)) {
        apg_net_conn_close(c, APG_ECLOSED, false, "accept failed");
        return;
    }
    apg_log_debug(l->l_name, "loop %d accepted %s", l->l_idx, c->c_peer);
}

/* Runs the loop until it has no handles left. With busy polling on, an
 * iteration that read requests is followed by non-blocking iterations for
 * as long as requests keep arriving within l_busy_poll_ns of each other; the
 * loop sleeps in epoll only after a quiet gap that long. A synchronous
 * client's next request then finds this thread awake instead of waking a
 * halted vCPU (docs/perf-log/perf-server.md, "Busy polling"). */
static void run_loop(struct apg_net_loop *l)
{
    if (l->l_busy_poll_ns <= 0) {
        uv_run(&l->l_uv, UV_RUN_DEFAULT);
        return;
    }
    for (;;) {
        uint64_t seen = l->l_requests;
        if (!uv_run(&l->l_uv, UV_RUN_ONCE))
            return;
        /* Poll only after an iteration that served exactly one request: a
         * request/response client waiting for its answer. Many requests per
         * wake-up mean the loop is batching already, and polling would only
         * cut the batches smaller and take CPU from the senders. */
        if (l->l_requests - seen != 1 || l->l_stopping)
            continue;
        int64_t last = apg_mono_ns();
        for (;;) {
            seen = l->l_requests;
            if (!uv_run(&l->l_uv, UV_RUN_NOWAIT))
                return;
            uint64_t got = l->l_requests - seen;
            if (got > 1 || l->l_stopping)
                break;
            int64_t now = apg_mono_ns();
            if (got == 1)
                last = now;
            else if (now - last > l->l_busy_poll_ns)
                break;
        }
    }
}

static void server_loop_main(void *arg)
{
    struct apg_net_loop *l = arg;
    int rc = uv_tcp_init(&l->l_uv, &l->l_listen);
    if (!rc) {
        l->l_listen.data = l;
        rc = uv_tcp_open(&l->l_listen, l->l_listen_fd);
        if (!rc) {
            l->l_has_listener = true;
            rc = uv_listen((uv_stream_t *)&l->l_listen, 1024, on_connection);
        } else {
            close(l->l_listen_fd);
            uv_close((uv_handle_t *)&l->l_listen, NULL);
        }
    }
    l->l_listen_fd = -1;
    l->l_start_err = rc ? APG_EIO : APG_OK;
    if (l->l_on_start)
        l->l_on_start(l->l_idx, &l->l_uv, l->l_ud);
    uv_sem_post(&l->l_ready);
    run_loop(l);
}

static int make_listen_socket(const struct sockaddr *sa, socklen_t sl, bool reuseport, char *err,
                              size_t errlen, const char *host, int port, const char *port_key)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        apg_errf(APG_EIO, err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (bind(fd, sa, sl) < 0) {
        bool in_use = errno == EADDRINUSE;
        apg_errf(APG_EIO, err, errlen, "cannot listen on %s:%d: %s%s%s%s", host, port,
                 strerror(errno),
                 in_use ? " (another process uses the port; pick another with --" : "",
                 in_use ? port_key : "", in_use ? ")" : "");
        close(fd);
        return -1;
    }
    return fd;
}

static int bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
        return -1;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

apg_err_t apg_net_server_start(const struct apg_net_server_opts *opts, struct apg_net_server **out,
                               char *err, size_t errlen)
{
    *out = NULL;
    bool remoting = !opts->codec || opts->codec == &apg_net_remoting;
    if (opts->n_loops < 1 || opts->n_loops > 256 || (remoting && !opts->on_request) ||
        (opts->codec == &apg_net_h2 && !opts->on_message)) {
        apg_net_transport_ctx_free(opts->transport, opts->transport_ctx);
        return apg_errf(APG_EINVAL, err, errlen, "net server: bad options");
    }
    const char *host = opts->host && opts->host[0] ? opts->host : "0.0.0.0";
    const char *port_key = opts->port_key ? opts->port_key : "listenPort";
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t sl;
    if (uv_ip4_addr(host, opts->port, (struct sockaddr_in *)&ss) == 0) {
        sl = sizeof(struct sockaddr_in);
    } else if (uv_ip6_addr(host, opts->port, (struct sockaddr_in6 *)&ss) == 0) {
        sl = sizeof(struct sockaddr_in6);
    } else {
        apg_net_transport_ctx_free(opts->transport, opts->transport_ctx);
        return apg_errf(APG_ECONFIG, err, errlen, "bindAddress '%s' is not an IPv4 or IPv6 address",
                        host);
    }

    struct apg_net_server *srv = apg_calloc(1, sizeof(*srv));
    if (!srv) {
        apg_net_transport_ctx_free(opts->transport, opts->transport_ctx);
        return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    }
    srv->s_opts = *opts;
    srv->s_name = apg_strdup(opts->name ? opts->name : "net");
    srv->s_host = apg_strdup(host);
    srv->s_n_loops = opts->n_loops;
    srv->s_loops = apg_calloc(opts->n_loops, sizeof(*srv->s_loops));
    atomic_init(&srv->s_opaque, 1);
    atomic_init(&srv->s_pending, 0);
    if (!srv->s_name || !srv->s_host || !srv->s_loops) {
        apg_free(srv->s_name);
        apg_free(srv->s_host);
        apg_free(srv->s_loops);
        apg_free(srv);
        apg_net_transport_ctx_free(opts->transport, opts->transport_ctx);
        return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    }
    srv->s_opts.name = srv->s_name;
    srv->s_opts.host = srv->s_host;

    /* Probe the port without SO_REUSEPORT first, so that a port another
     * process already holds is an error rather than a silent share. */
    int port = opts->port;
    int fds[256];
    int n_fds = 0;
    apg_err_t e = APG_OK;
    int probe =
        make_listen_socket((struct sockaddr *)&ss, sl, false, err, errlen, host, port, port_key);
    if (probe < 0) {
        e = APG_EIO;
        goto fail;
    }
    if (opts->n_loops == 1) {
        fds[n_fds++] = probe;
    } else {
        port = bound_port(probe);
        close(probe);
        if (ss.ss_family == AF_INET6)
            ((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
        else
            ((struct sockaddr_in *)&ss)->sin_port = htons(port);
        for (int i = 0; i < opts->n_loops; i++) {
            int fd = make_listen_socket((struct sockaddr *)&ss, sl, true, err, errlen, host, port,
                                        port_key);
            if (fd < 0) {
                e = APG_EIO;
                goto fail;
            }
            fds[n_fds++] = fd;
        }
    }
    for (int i = 0; i < n_fds; i++) {
        if (listen(fds[i], 1024) < 0) {
            e = apg_errf(APG_EIO, err, errlen, "listen on %s:%d: %s", host, port, strerror(errno));
            goto fail;
        }
    }
    srv->s_port = bound_port(fds[0]);

    /* Published before the loop threads start: their callbacks may read it. */
    *out = srv;
    for (int i = 0; i < srv->s_n_loops; i++) {
        struct apg_net_loop *l = &srv->s_loops[i];
        l->l_name = srv->s_name;
        l->l_tr = opts->transport ? opts->transport : &apg_net_tcp;
        l->l_tr_ctx = opts->transport_ctx;
        l->l_codec = opts->codec ? opts->codec : &apg_net_remoting;
        l->l_max_frame = opts->max_frame ? opts->max_frame : APG_FRAME_MAX_DEFAULT;
        const struct apg_net_limits *lim = &opts->limits;
        l->l_idle_ms = lim->idle_timeout_s > 0 ? (uint64_t)lim->idle_timeout_s * 1000 : 0;
        l->l_frame_timeout_ms = lim->frame_timeout_ms;
        l->l_frame_min_rate = lim->frame_min_bytes_per_s;
        l->l_max_pending = lim->max_pending_bytes;
        l->l_pending_total = &srv->s_pending;
        l->l_peers = srv->s_loops;
        l->l_n_peers = srv->s_n_loops;
        l->l_busy_poll_ns = opts->busy_poll_us > 0 ? (int64_t)opts->busy_poll_us * 1000 : 0;
        l->l_opaque = &srv->s_opaque;
        l->l_on_request = opts->on_request;
        l->l_on_message = opts->on_message;
        l->l_on_close = opts->on_close;
        l->l_on_read_end = opts->on_read_end;
        l->l_on_stop = opts->on_loop_stop;
        l->l_ud = opts->ud;
        l->l_listen_fd = fds[i];
        uv_mutex_init(&l->l_mtx);
        uv_sem_init(&l->l_ready, 0);
        if (apg_net_loop_init(l, i)) {
            e = apg_errf(APG_ENOMEM, err, errlen, "cannot create event loop");
            /* Loops already started are stopped below. */
            for (int j = i; j < n_fds; j++)
                close(fds[j]);
            srv->s_n_loops = i;
            apg_net_server_stop(srv);
            *out = NULL;
            return e;
        }
        l->l_on_start = opts->on_loop_start;
        if (uv_thread_create(&l->l_thread, server_loop_main, l)) {
            e = apg_errf(APG_EIO, err, errlen, "cannot create loop thread");
            for (int j = i; j < n_fds; j++)
                close(fds[j]);
            uv_loop_close(&l->l_uv);
            l->l_codec->cd_loop_free(l->l_codec_state);
            srv->s_n_loops = i;
            apg_net_server_stop(srv);
            *out = NULL;
            return e;
        }
        uv_sem_wait(&l->l_ready);
        if (l->l_start_err) {
            for (int j = i + 1; j < n_fds; j++)
                close(fds[j]);
            srv->s_n_loops = i + 1;
            apg_net_server_stop(srv);
            *out = NULL;
            return apg_errf(APG_EIO, err, errlen, "cannot listen on %s:%d", host, port);
        }
    }
    apg_log_debug(srv->s_name, "listening on %s:%d with %d loop(s)", host, srv->s_port,
                  srv->s_n_loops);
    return APG_OK;

fail:
    for (int i = 0; i < n_fds; i++)
        close(fds[i]);
    apg_net_transport_ctx_free(opts->transport, opts->transport_ctx);
    apg_free(srv->s_name);
    apg_free(srv->s_host);
    apg_free(srv->s_loops);
    apg_free(srv);
    return e;
}

int apg_net_server_port(const struct apg_net_server *srv)
{
    return srv->s_port;
}

int apg_net_server_loop_count(const struct apg_net_server *srv)
{
    return srv->s_n_loops;
}

size_t apg_net_server_pending_bytes(const struct apg_net_server *srv)
{
    return atomic_load_explicit(&((struct apg_net_server *)srv)->s_pending, memory_order_relaxed);
}

apg_err_t apg_net_server_post(struct apg_net_server *srv, int loop_idx, void (*fn)(void *arg),
                              void *arg)
{
    if (loop_idx < 0 || loop_idx >= srv->s_n_loops)
        return APG_EINVAL;
    return apg_net_loop_post(&srv->s_loops[loop_idx], fn, arg);
}

static void stop_on_loop(void *arg)
{
    apg_net_loop_begin_stop(arg, APG_ESHUTDOWN, true);
}

void apg_net_server_halt(struct apg_net_server *srv)
{
    if (!srv || srv->s_halted)
        return;
    for (int i = 0; i < srv->s_n_loops; i++)
        apg_net_loop_post(&srv->s_loops[i], stop_on_loop, &srv->s_loops[i]);
    for (int i = 0; i < srv->s_n_loops; i++)
        uv_thread_join(&srv->s_loops[i].l_thread);
    srv->s_halted = true;
}

void apg_net_server_stop(struct apg_net_server *srv)
{
    if (!srv)
        return;
    apg_net_server_halt(srv);
    for (int i = 0; i < srv->s_n_loops; i++)
        apg_net_loop_fini(&srv->s_loops[i]);
    apg_net_transport_ctx_free(srv->s_opts.transport, srv->s_opts.transport_ctx);
    apg_free(srv->s_name);
    apg_free(srv->s_host);
    apg_free(srv->s_loops);
    apg_free(srv);
}

struct apg_net_limits apg_net_limits_from_cfg(const struct apg_config *cfg)
{
    return (struct apg_net_limits){
        .idle_timeout_s = (int)apg_cfg_int(cfg, APG_CFG_serverChannelMaxIdleTimeSeconds),
        .frame_timeout_ms = (uint32_t)apg_cfg_int(cfg, APG_CFG_serverFrameTimeoutMillis),
        .frame_min_bytes_per_s = (uint32_t)apg_cfg_int(cfg, APG_CFG_serverFrameMinBytesPerSecond),
        .max_pending_bytes = (size_t)apg_cfg_int(cfg, APG_CFG_serverMaxPendingFrameBytes),
    };
}

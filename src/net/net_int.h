/* Network layer internals shared by server.c-side (net.c) and client.c.
 *
 * A struct apg_net_loop is one libuv loop on its own thread, with the
 * handles every loop needs: an async + mutex-protected post queue for work
 * from other threads, a check handle that flushes the connections that
 * queued output this iteration, an idle handle that keeps poll from
 * blocking while such output waits, and timers for idle connections and
 * request deadlines. Servers own n of them, the client one. */
#ifndef APG_NET_NET_INT_H
#define APG_NET_NET_INT_H

#include <stdatomic.h>

#include "common/buf.h"
#include "net/codec.h"
#include "net/net.h"
#include "net/transport.h"

struct apg_net_post {
    void (*p_fn)(void *arg);
    void *p_arg;
    struct apg_net_post *p_next;
};

/* Owned by its loop thread, except l_mtx-protected fields. */
struct apg_net_loop {
    uv_loop_t l_uv;
    int l_idx;
    const char *l_name; /* log subsystem, borrowed from the owner */
    uv_thread_t l_thread;
    uv_sem_t l_ready;
    apg_err_t l_start_err;

    uv_async_t l_async;
    uv_check_t l_check;
    uv_idle_t l_idle;
    uv_timer_t l_tick;
    uv_timer_t l_req_timer;
    uv_timer_t l_stop_timer;

    uv_mutex_t l_mtx; /* guards the three fields below */
    struct apg_net_post *l_post_head, *l_post_tail;
    bool l_post_closed;

    struct apg_conn *l_conns; /* every open or closing connection */
    struct apg_conn *l_dirty; /* connections with output to flush */

    const struct apg_net_transport *l_tr; /* for the loop's connections */
    void *l_tr_ctx;                       /* the owner's transport_ctx (borrowed) */
    const struct apg_net_codec *l_codec;  /* for the loop's connections */
    void *l_codec_state;                  /* cd_loop_new's */
    size_t l_max_frame;
    int64_t l_busy_poll_ns; /* see apg_net_server_opts.busy_poll_us */
    uint64_t l_requests;    /* requests served (busy-poll bookkeeping) */
    /* connections closed per cause; written by the loop, read by any thread */
    _Atomic uint64_t l_refused[APG_NET_REFUSAL_N];
    uint64_t l_idle_ms;
    uint64_t l_tick_ms;             /* period of l_tick */
    uint64_t l_last_tick;           /* uv_now of the previous tick; 0 before the first */
    uint64_t l_frame_timeout_ms;    /* 0 = no deadline to complete a frame */
    uint32_t l_frame_min_rate;      /* bytes/s an incomplete frame must keep up; 0 = no rule */
    size_t l_max_pending;           /* this server's cap on incomplete-frame bytes; 0 = none */
    size_t l_pending;               /* incomplete-frame bytes on this loop's connections */
    atomic_size_t *l_pending_total; /* the server's sum of l_pending; NULL for the client */
    struct apg_net_loop *l_peers;   /* the server's loops (this one among them); NULL: client */
    int l_n_peers;
    /* Connections holding an incomplete frame, oldest c_frame_start first
     * (a frame that starts is appended: uv_now never goes back). */
    struct apg_conn *l_part_head, *l_part_tail;
    _Atomic uint64_t l_oldest_frame; /* l_part_head's c_frame_start, 0 = none; read by peers */
    atomic_bool l_shed_asked;        /* a peer posted loop_shed to this loop, not yet run */
    uint64_t l_warn_ms;              /* rate limit of the slow-peer WARN lines */
    unsigned l_warn_quiet;           /* lines suppressed since the last one */
    atomic_int *l_opaque;            /* the owner's request id counter (remoting) */
    void (*l_on_request)(struct apg_conn *c, const struct apg_rcmd *req, void *ud);
    void (*l_on_message)(struct apg_conn *c, const uint8_t *msg, size_t len, void *ud);
    void (*l_on_close)(struct apg_conn *c, void *ud);
    void (*l_on_read_end)(struct apg_conn *c, void *ud);
    void (*l_on_start)(int idx, uv_loop_t *loop, void *ud);
    void (*l_on_stop)(int idx, uv_loop_t *loop, void *ud);
    void *l_ud;

    int l_listen_fd; /* -1 for the client */
    uv_tcp_t l_listen;
    bool l_has_listener;
    bool l_stopping;
    bool l_finished;
};

struct apg_conn {
    uv_tcp_t c_tcp; /* the socket handle every transport runs on; data = c */
    const struct apg_net_transport *c_tr;
    void *c_tr_state; /* the transport's per-connection state (NULL for TCP) */
    struct apg_net_loop *c_loop;
    atomic_int c_refs;
    atomic_bool c_closed;
    bool c_connected; /* false while an outbound connect is in flight */
    bool c_paused;    /* reading stopped for back-pressure */
    bool c_dirty;
    bool c_writing;
    bool c_drain_close;         /* close once the output is written (graceful stop) */
    const char *c_drain_reason; /* static text logged when that close happens */
    apg_err_t c_close_err;      /* what pending requests are failed with */

    struct apg_buf c_in;
    size_t c_in_off;
    struct apg_buf c_out;  /* queued this iteration */
    struct apg_buf c_wbuf; /* being written by c_wreq */
    uv_write_t c_wreq;     /* the transport's one write in flight */

    uint64_t c_last_active;
    uint64_t c_frame_start; /* uv_now when the buffered incomplete frame began; 0 = none */
    size_t c_pending;       /* c_in bytes counted in l_pending (an incomplete frame) */
    struct apg_conn *c_part_prev, *c_part_next; /* on l_part_head's list while c_frame_start */
    uint64_t c_rate_ms;                         /* start of the current rate window; 0 = none yet */
    size_t c_rate_bytes;                        /* c_in.b_len at c_rate_ms */
    uint64_t c_connect_deadline;
    char c_peer[64];
    char *c_addr; /* outbound: the "host:port" it was asked for */
    void *c_user;
    uv_connect_t c_creq;
    void (*c_connect_done)(struct apg_conn *c, int status);

    struct apg_conn *c_prev, *c_next, *c_dirty_next;
};

apg_err_t apg_net_loop_init(struct apg_net_loop *l, int idx);
/* Runs on the loop thread when stopping: closes connections gracefully and
 * then the loop's own handles. */
void apg_net_loop_begin_stop(struct apg_net_loop *l, apg_err_t pending_err, bool graceful);
apg_err_t apg_net_loop_post(struct apg_net_loop *l, void (*fn)(void *), void *arg);
/* Drains the post queue and frees the loop's resources (after uv_run). */
void apg_net_loop_fini(struct apg_net_loop *l);

/* Releases a server's or client's transport_ctx (nothing when NULL). */
void apg_net_transport_ctx_free(const struct apg_net_transport *tr, void *ctx);
/* Creates a connection on l with l's transport (its socket handle not yet
 * connected). */
struct apg_conn *apg_net_conn_new(struct apg_net_loop *l);
/* Starts reading, fills c_peer, marks the connection connected. */
apg_err_t apg_net_conn_start(struct apg_conn *c);
void apg_net_conn_close(struct apg_conn *c, apg_err_t pending_err, bool log_info,
                        const char *reason);
void apg_net_conn_mark_dirty(struct apg_conn *c);
/* For codecs: the output buffer to append one message to (NULL when c is
 * closed), then apg_net_conn_out_done to schedule the write and apply
 * back-pressure. */
static inline struct apg_buf *apg_net_conn_out(struct apg_conn *c)
{
    return apg_conn_is_closed(c) ? NULL : &c->c_out;
}
static inline void apg_net_conn_out_done(struct apg_conn *c)
{
    if (!c->c_dirty)
        apg_net_conn_mark_dirty(c);
    if (!c->c_paused && c->c_out.b_len + c->c_wbuf.b_len > APG_NET_HIGH_WATER) {
        c->c_paused = true;
        c->c_tr->tr_read_stop(c);
    }
}
/* For codecs producing one long answer in pieces on the loop thread:
 * writes what the socket takes of c_out now, without waiting and without
 * a queued write, and moves the rest to the front of c_out (a copy of at
 * most c_out's length: call it while c_out is small). Does nothing while a
 * queued write is in flight. */
void apg_net_conn_out_push(struct apg_conn *c);
/* For codecs: runs cd_expire every 20 ms until it returns 0. */
void apg_net_loop_watch_deadlines(struct apg_net_loop *l);

/* The remoting codec's request table: cb runs once when the response with
 * this opaque arrives on c, at the deadline, or when c closes. */
apg_err_t apg_net_remoting_add_pending(struct apg_conn *c, int32_t opaque, uint32_t timeout_ms,
                                       apg_net_resp_cb cb, void *ud);

/* Called by the transport (see transport.h). */
apg_err_t apg_net_conn_rbuf(struct apg_conn *c, uint8_t **p, size_t *cap);
void apg_net_conn_rdone(struct apg_conn *c, ssize_t n);
void apg_net_conn_wdone(struct apg_conn *c, int status);
void apg_net_conn_closed(struct apg_conn *c);

#endif

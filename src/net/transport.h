/* Transport interface: how a connection's bytes reach the peer.
 *
 * A transport is a table of functions over one connection, in the manner of
 * a driver: the connection code (net.c) never calls a socket or a libuv
 * stream function itself, only these. TCP (tcp.c) is the one transport
 * is the base; TLS (tls.c) is a byte filter under the framing: it
 * runs on the same socket handle (c->c_tcp), keeps its session in
 * c->c_tr_state, decrypts what it reads into the space apg_net_conn_rbuf
 * hands out and encrypts in its write functions, so codecs above it see
 * plain bytes either way.
 *
 * A transport's settings (certificates, mode) are one object per server or
 * client (apg_net_server_opts.transport_ctx), reached from a connection as
 * c->c_loop->l_tr_ctx.
 *
 * Callbacks into the connection (declared in net_int.h, all on the loop
 * thread):
 *   apg_net_conn_rbuf(c, &p, &cap)  space for the next bytes read
 *   apg_net_conn_rdone(c, n)        n bytes were put there (n < 0: a uv
 *                                   error, UV_EOF when the peer closed)
 *   apg_net_conn_wdone(c, status)   a tr_write finished (status < 0: error)
 *   apg_net_conn_closed(c)          the handles are closed; runs once
 *
 * Threads: every function runs on the connection's loop thread. */
#ifndef APG_NET_TRANSPORT_H
#define APG_NET_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/err.h"

struct apg_conn;

struct apg_net_transport {
    const char *tr_name; /* "tcp", "tls" */
    /* Prepares c's socket handle on c's loop. On error c is not usable and
     * is freed without tr_close. */
    apg_err_t (*tr_init)(struct apg_conn *c);
    /* Takes one pending connection from a listening stream into c. */
    apg_err_t (*tr_accept)(struct apg_conn *c, uv_stream_t *listener);
    /* Starts connecting c to sa; done(c, status) runs once (status < 0 is a
     * uv error) unless this returns a (negative uv) error. */
    int (*tr_connect)(struct apg_conn *c, const struct sockaddr *sa,
                      void (*done)(struct apg_conn *c, int status));
    /* Starts / stops delivering bytes (apg_net_conn_rbuf, apg_net_conn_rdone). */
    apg_err_t (*tr_read_start)(struct apg_conn *c);
    void (*tr_read_stop)(struct apg_conn *c);
    /* Writes what it can of bufs[0..n) now without blocking: the bytes
     * taken, or a negative uv error (UV_EAGAIN when nothing fit). */
    int (*tr_try_writev)(struct apg_conn *c, const uv_buf_t *bufs, unsigned n);
    /* Queues bufs[0..n) (their bytes must stay valid until
     * apg_net_conn_wdone runs). At most one write is in flight per
     * connection. A negative uv error is returned when the write cannot
     * start (wdone then never runs). */
    int (*tr_writev)(struct apg_conn *c, const uv_buf_t *bufs, unsigned n);
    /* Bytes a tr_writev still holds (not yet handed to the kernel). */
    size_t (*tr_write_queued)(const struct apg_conn *c);
    /* Closes c; apg_net_conn_closed(c) follows once. Idempotent. */
    void (*tr_close)(struct apg_conn *c);
    /* "ip:port" of the peer, or leaves buf unchanged when unknown. */
    void (*tr_peer)(struct apg_conn *c, char *buf, size_t len);
    /* Optional: uv_now when c began holding bytes that do not make
     * plaintext yet (a TLS handshake in progress), 0 = none. The loop's
     * tick closes c when that lasts past the frame deadline, so a stalled
     * handshake is cut like a stalled frame. */
    uint64_t (*tr_busy_since)(const struct apg_conn *c);
    /* Optional: releases the settings a server or client was started with
     * (opts.transport_ctx, read by the connections as c_loop->l_tr_ctx)
     * when it stops. */
    void (*tr_ctx_free)(void *ctx);
};

/* Plain TCP with TCP_NODELAY. */
extern const struct apg_net_transport apg_net_tcp;
/* TLS over TCP (tls.c); its transport_ctx comes from net/tls.h. */
extern const struct apg_net_transport apg_net_tls;

#endif

/* Network layer: remoting servers and an outbound client on libuv loops.
 *
 * A server runs n_loops event-loop threads. Each loop has its own listening
 * socket on the same port (SO_REUSEPORT; the kernel spreads new connections),
 * so a connection lives on one loop thread for its whole life: its frames are
 * read, decoded and handed to on_request on that thread, and the replies it
 * produces are encoded into the connection's output buffer and written with
 * ONE write per connection per loop iteration (a uv_check handle flushes the
 * dirty connections, uv_try_write first). Reading a frame allocates nothing
 * once the connection's input buffer has grown to the largest frame seen.
 *
 * Threads: every function taking a struct apg_conn must be called on that
 * connection's loop thread, except those marked "thread-safe". Objects:
 *   struct apg_net_server  created/stopped by one control thread
 *   struct apg_conn        owned by its loop thread; other threads may only
 *                          hold a reference (apg_conn_ref) and apg_conn_post
 *   struct apg_net_client  its own loop thread; calls are thread-safe */
#ifndef APG_NET_NET_H
#define APG_NET_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/err.h"
#include "protocol/remoting.h"

struct apg_net_server;
struct apg_net_client;
struct apg_conn;
struct apg_net_transport; /* net/transport.h */
struct apg_net_codec;     /* net/codec.h */

/* Bytes queued for one connection above which we stop reading from it until
 * the writes drain below the low mark. */
#define APG_NET_HIGH_WATER (8u * 1024 * 1024)
#define APG_NET_LOW_WATER (1u * 1024 * 1024)

/* What a server tolerates from idle and slow peers: the same rules for the
 * remoting, gRPC and HTTP ports (apg_net_limits_from_cfg reads them from
 * the server* keys). */
struct apg_net_limits {
    int idle_timeout_s; /* close a connection idle both ways this long; 0 = never */
    /* Close a connection that has not completed a frame this long after the
     * frame's first byte arrived (trickling does not count as progress);
     * 0 = no deadline. */
    uint32_t frame_timeout_ms;
    /* Close a connection whose incomplete frame grows by fewer than this
     * many bytes a second, measured over 4-second windows (reading paused
     * for back-pressure does not count); 0 = no rule. */
    uint32_t frame_min_bytes_per_s;
    /* Cap on the bytes of incomplete frames buffered over all connections
     * of the server; past it the connections holding the oldest incomplete
     * frames, over all loops, are closed first. 0 = no cap. */
    size_t max_pending_bytes;
};

struct apg_config;
/* serverChannelMaxIdleTimeSeconds, serverFrameTimeoutMillis,
 * serverFrameMinBytesPerSecond and serverMaxPendingFrameBytes of cfg. */
struct apg_net_limits apg_net_limits_from_cfg(const struct apg_config *cfg);

struct apg_net_server_opts {
    const char *name; /* for logs ("namesrv", "broker") */
    const char *host; /* bind address, e.g. "0.0.0.0" or "127.0.0.1" */
    int port;         /* 0 = ephemeral (see apg_net_server_port) */
    int n_loops;      /* event-loop threads, >= 1 */
    /* The configuration key that sets port, named when it is in use;
     * NULL = "listenPort". */
    const char *port_key;
    /* How bytes reach the peer; NULL = plain TCP (apg_net_tcp). */
    const struct apg_net_transport *transport;
    /* The transport's settings (net/tls.h makes them for TLS); taken over
     * by the server, also when the start fails (tr_ctx_free). */
    void *transport_ctx;
    /* The wire format on the connections; NULL = RocketMQ remoting
     * (apg_net_remoting), whose requests go to on_request. */
    const struct apg_net_codec *codec;
    size_t max_frame; /* 0 = APG_FRAME_MAX_DEFAULT */
    struct apg_net_limits limits;
    /* After a loop iteration that read requests, keep polling without
     * sleeping for up to this many microseconds while more arrive (0 = always
     * sleep). Saves the wake-up of a halted vCPU per request for
     * request/response clients; costs CPU only right after traffic. */
    int busy_poll_us;
    /* Remoting codec: called on c's loop thread for every request
     * (responses to requests the server made itself are matched by opaque
     * and never reach here). req and its body are valid only during the
     * call. Required with that codec. */
    void (*on_request)(struct apg_conn *c, const struct apg_rcmd *req, void *ud);
    /* HTTP/2 codec (apg_net_h2): called on c's loop thread with each whole
     * message the codec cut (the preface or a frame); msg is valid only
     * during the call. Required with that codec. */
    void (*on_message)(struct apg_conn *c, const uint8_t *msg, size_t len, void *ud);
    /* Called once per connection on its loop thread when it closes, before
     * pending server-initiated requests are failed. Optional. */
    void (*on_close)(struct apg_conn *c, void *ud);
    /* Called on c's loop thread after the requests parsed from one read were
     * passed to on_request (also when the read ends in closing c), before
     * the read buffer they point into is reused. Optional: lets a server
     * finish work it batched across those requests. */
    void (*on_read_end)(struct apg_conn *c, void *ud);
    /* Called on each loop thread when it starts / just before it stops. Optional. */
    void (*on_loop_start)(int idx, uv_loop_t *loop, void *ud);
    void (*on_loop_stop)(int idx, uv_loop_t *loop, void *ud);
    void *ud;
};

/* Starts the loop threads and returns once every loop listens.
 * Returns owned: stop with apg_net_server_stop(). opts is copied (name and
 * host too). */
apg_err_t apg_net_server_start(const struct apg_net_server_opts *opts, struct apg_net_server **out,
                               char *err, size_t errlen);
/* The port actually bound (useful with port 0). Thread-safe. */
int apg_net_server_port(const struct apg_net_server *srv);
int apg_net_server_loop_count(const struct apg_net_server *srv);
/* Bytes of incomplete frames buffered over the server's connections now
 * (what max_pending_bytes caps). Thread-safe. */
size_t apg_net_server_pending_bytes(const struct apg_net_server *srv);
/* Connections a server closed for what the peer sent, by cause; each has
 * a counter (apg_net_server_refusals) that runtime info shows under
 * apg_net_refusal_key's name. */
enum apg_net_refusal {
    APG_NET_REFUSED_MALFORMED, /* a frame whose length or header does not parse */
    APG_NET_REFUSED_TLS,  /* plaintext on an enforcing port, a failed TLS handshake or record */
    APG_NET_REFUSED_SLOW, /* a frame or TLS handshake not completed in time, too slow,
                             or shed under max_pending_bytes */
    APG_NET_REFUSAL_N
};
/* Sums the server's loops' counters into out. Thread-safe. */
void apg_net_server_refusals(const struct apg_net_server *srv, uint64_t out[APG_NET_REFUSAL_N]);
/* "closedMalformedFrame", "closedTlsRefused", "closedSlowFrame". */
const char *apg_net_refusal_key(enum apg_net_refusal r);
/* Loop thread: counts one refusal on c's loop. */
void apg_net_conn_refused(struct apg_conn *c, enum apg_net_refusal r);
/* Graceful: stops accepting, flushes pending writes (up to 2 s), closes every
 * connection (on_close runs), runs on_loop_stop and joins the threads; srv
 * stays valid and apg_net_server_post answers APG_ESHUTDOWN from then on, so
 * a producer on another thread (the store's ack thread) can be stopped after
 * the loops. Idempotent. Must not be called from a loop thread. */
void apg_net_server_halt(struct apg_net_server *srv);
/* apg_net_server_halt, then frees srv. Must not be called from a loop thread. */
void apg_net_server_stop(struct apg_net_server *srv);
/* Thread-safe: runs fn(arg) on loop loop_idx's thread soon. Returns
 * APG_ESHUTDOWN (fn not called) once the server is stopping. */
apg_err_t apg_net_server_post(struct apg_net_server *srv, int loop_idx, void (*fn)(void *arg),
                              void *arg);

/* ---- connections (loop thread unless noted) ---- */

/* Encodes cmd (header as cmd->serialize) plus body into c's output buffer;
 * it is written at the end of this loop iteration. Borrows cmd and body.
 * APG_ECLOSED when c is closed (nothing queued), APG_ENOMEM. */
apg_err_t apg_conn_send(struct apg_conn *c, const struct apg_rcmd *cmd, const uint8_t *body,
                        uint32_t len);
/* Shorthand: a response to req with code, remark (may be NULL), no ext
 * fields and the given body. */
apg_err_t apg_conn_reply(struct apg_conn *c, const struct apg_rcmd *req, int32_t code,
                         const char *remark, const uint8_t *body, uint32_t len);

/* Callback for requests this side initiated: resp is NULL when err != 0
 * (APG_ETIMEDOUT, APG_ECLOSED, APG_ESHUTDOWN, APG_EIO). resp and its body
 * are valid only during the call. Runs on the connection's loop thread. */
typedef void (*apg_net_resp_cb)(void *ud, const struct apg_rcmd *resp, apg_err_t err);

/* Server-initiated request on c: opaque is taken from the server's own
 * counter (req->opaque is overwritten), the response is matched by opaque.
 * cb runs exactly once (also on timeout or close) unless this returns an
 * error, in which case it never runs. Borrows req and body. */
apg_err_t apg_conn_request(struct apg_conn *c, struct apg_rcmd *req, const uint8_t *body,
                           uint32_t len, uint32_t timeout_ms, apg_net_resp_cb cb, void *ud);
/* Same with the ONEWAY flag set and no response expected. */
apg_err_t apg_conn_oneway(struct apg_conn *c, struct apg_rcmd *req, const uint8_t *body,
                          uint32_t len);

/* Reference counting: a reference keeps the memory valid (not the socket
 * open). Thread-safe. */
void apg_conn_ref(struct apg_conn *c);
void apg_conn_unref(struct apg_conn *c);
/* Thread-safe (a racy answer from other threads). */
bool apg_conn_is_closed(const struct apg_conn *c);
/* Thread-safe: runs fn(c, arg) on c's loop thread; the post holds a reference
 * to c meanwhile. fn runs even if c closed in between (check
 * apg_conn_is_closed; apg_conn_send then returns APG_ECLOSED). Returns
 * APG_ESHUTDOWN (fn not called) when the loop is stopping. */
apg_err_t apg_conn_post(struct apg_conn *c, void (*fn)(struct apg_conn *c, void *arg), void *arg);
/* Closes c (logs "peer: reason" once at INFO); pending writes are dropped.
 * Idempotent. */
void apg_conn_close(struct apg_conn *c, const char *reason);

/* Stops reading from c now and closes it once the output queued so far is
 * written (at once when there is none): the last reply of a protocol that
 * ends a connection after answering (HTTP "Connection: close", a 4xx for
 * a request it cannot read). reason: static text. Idempotent. */
void apg_conn_close_after_write(struct apg_conn *c, const char *reason);

int apg_conn_loop_index(const struct apg_conn *c);
uv_loop_t *apg_conn_uv_loop(struct apg_conn *c);
/* "ip:port" of the peer; borrowed, valid for c's lifetime. Thread-safe. */
const char *apg_conn_peer(const struct apg_conn *c);
/* Per-connection application pointer (owned by the application). */
void apg_conn_set_user(struct apg_conn *c, void *user);
void *apg_conn_user(const struct apg_conn *c);
/* Bytes queued but not yet written (for tests and metrics). */
size_t apg_conn_pending_bytes(const struct apg_conn *c);

/* ---- outbound client ---- */

struct apg_net_client_opts {
    const char *name;                          /* for logs */
    const struct apg_net_transport *transport; /* NULL = plain TCP */
    void *transport_ctx;                       /* as in apg_net_server_opts */
    size_t max_frame;                          /* 0 = APG_FRAME_MAX_DEFAULT */
    int idle_timeout_s;                        /* close idle outbound connections; 0 = never */
    uint32_t connect_timeout_ms;               /* 0 = 3000 */
    /* Requests a server sends on one of the client's connections (e.g. a
     * broker's CHECK_TRANSACTION_STATE), on the client's loop thread; NULL:
     * they are dropped. */
    void (*on_request)(struct apg_conn *c, const struct apg_rcmd *req, void *ud);
    void *ud;
};

/* Starts the client's loop thread. Returns owned: stop with
 * apg_net_client_stop(). */
apg_err_t apg_net_client_start(const struct apg_net_client_opts *opts, struct apg_net_client **out,
                               char *err, size_t errlen);
/* Fails every pending call with APG_ESHUTDOWN, closes, joins, frees. Must
 * not be called from the client's loop thread. */
void apg_net_client_stop(struct apg_net_client *cli);

/* Thread-safe. Sends req (+ body) to addr ("host:port"), connecting or
 * reusing one connection per address. req->opaque is assigned from the
 * client's counter. The frame is encoded before this returns, so req and
 * body are only borrowed for the call. cb runs exactly once on the client's
 * loop thread unless this returns an error. */
apg_err_t apg_net_client_call(struct apg_net_client *cli, const char *addr,
                              const struct apg_rcmd *req, const uint8_t *body, uint32_t len,
                              uint32_t timeout_ms, apg_net_resp_cb cb, void *ud);
/* Thread-safe, fire and forget (ONEWAY flag set). */
apg_err_t apg_net_client_oneway(struct apg_net_client *cli, const char *addr,
                                const struct apg_rcmd *req, const uint8_t *body, uint32_t len);

/* An owned, decoded copy of a command (all strings and the body live inside). */
struct apg_rcmd_copy {
    struct apg_rcmd rc_cmd;
    uint8_t *rc_frame;
    char *rc_scratch;
};
/* Returns owned (free with apg_rcmd_copy_free), NULL on out of memory. */
struct apg_rcmd_copy *apg_rcmd_copy_new(const struct apg_rcmd *cmd);
void apg_rcmd_copy_free(struct apg_rcmd_copy *cp);

/* Thread-safe, blocking (not on the client's loop thread): like
 * apg_net_client_call; on success *out is an owned copy of the response. */
apg_err_t apg_net_client_call_sync(struct apg_net_client *cli, const char *addr,
                                   const struct apg_rcmd *req, const uint8_t *body, uint32_t len,
                                   uint32_t timeout_ms, struct apg_rcmd_copy **out, char *err,
                                   size_t errlen);

/* Splits "host:port" into a sockaddr (numeric hosts and names). */
apg_err_t apg_net_parse_addr(const char *addr, struct sockaddr_storage *ss, char *err,
                             size_t errlen);

#endif

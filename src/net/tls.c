/* The TLS transport: apg_net_transport over TCP with a TLS session
 * (common/tls.h) as a byte filter under the framing.
 *
 * Design. The connection's socket handle is the TCP one (tcp.c does
 * accept, connect and peer names). Reads land in a per-connection
 * ciphertext buffer, are fed to the session, and the plaintext it yields is
 * decrypted straight into the space apg_net_conn_rbuf hands out, so the
 * codec above sees plain bytes and the slow-peer rules (frame deadline,
 * minimum rate, pending cap) apply to the plaintext frames as on TCP. The
 * handshake is driven by those reads (a client's ClientHello goes out when
 * reading starts after the connect) and counts against the frame deadline
 * through tr_busy_since: a peer that stalls mid-handshake is closed like one
 * that stalls mid-frame. Writes keep net.c's one write per connection per
 * loop iteration: the batch net.c hands over is encrypted into one
 * ciphertext buffer, written with uv_try_write, and the rest goes out with
 * the connection's one uv_write; while that write is in flight the next
 * batch is refused (UV_EAGAIN) so net.c queues it, and net.c's write is
 * reported done (apg_net_conn_wdone) once its ciphertext is in the kernel.
 * Plaintext handed over before the handshake finished waits in tc_plain.
 *
 * Modes (server side, tls.h): enforcing takes TLS only; permissive looks
 * at the first byte a new connection sends (apg_tls_sniff): a TLS
 * handshake record starts with 0x16, a remoting frame with the high byte of
 * its length, an HTTP/2 client preface with 'P', and a connection found to
 * be plaintext drops its session and reads straight into the connection's
 * buffer from then on. A server never writes before the client's first byte
 * (remoting is request first; the gRPC port sends its SETTINGS after the
 * client preface). The gRPC port's sessions select "h2" with ALPN.
 *
 * Failures (bad ClientHello, certificate refused, plaintext on an
 * enforcing port) close only that connection, with an INFO line naming the
 * peer and the reason.
 *
 * Threads: the connection's loop thread only; the settings (struct
 * tls_cfg) are read-only and shared by the loops of a server. */
#include "net/tls.h"

#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/tls.h"
#include "net/net_int.h"

#define TLS_RBUF 32768 /* ciphertext read per call: two full records */

struct tls_cfg {
    struct apg_tls_ctx *tg_ctx;
    enum apg_net_tls_mode tg_mode; /* permissive or enforcing (clients: enforcing) */
};

enum { TC_SNIFF, TC_TLS, TC_PLAIN };

struct tls_conn {
    struct apg_tls *tc_tls; /* NULL while sniffing and once plaintext */
    int tc_mode;
    bool tc_reading;         /* between tr_read_start and tr_read_stop */
    bool tc_writing;         /* c_wreq in flight with tc_wbuf */
    bool tc_owed;            /* a tr_writev waits for apg_net_conn_wdone */
    bool tc_posted;          /* a pump is posted (plaintext may wait in the session) */
    uint64_t tc_hs_start;    /* uv_now of the handshake's first byte; 0 = none or done */
    uint8_t *tc_rbuf;        /* TLS_RBUF bytes of ciphertext read space */
    struct apg_buf tc_out;   /* ciphertext not yet handed to the kernel */
    struct apg_buf tc_wbuf;  /* ciphertext of the write in flight */
    struct apg_buf tc_plain; /* plaintext waiting for the handshake */
};

int apg_net_tls_mode_parse(const char *s)
{
    if (!s || !strcmp(s, "disabled"))
        return APG_NET_TLS_DISABLED;
    if (!strcmp(s, "permissive"))
        return APG_NET_TLS_PERMISSIVE;
    if (!strcmp(s, "enforcing"))
        return APG_NET_TLS_ENFORCING;
    return -1;
}

static struct tls_conn *tc_of(const struct apg_conn *c)
{
    return c->c_tr_state;
}

static void close_why(struct apg_conn *c, apg_err_t e, const char *what, int uverr)
{
    char why[160];
    snprintf(why, sizeof(why), "%s: %s", what, uv_strerror(uverr));
    apg_net_conn_close(c, e, true, why);
}

/* ---- writing ---- */

static void on_write(uv_write_t *req, int status);

/* Starts the one uv_write with what tc_out holds. */
static int write_queued(struct apg_conn *c)
{
    struct tls_conn *tc = tc_of(c);
    struct apg_buf t = tc->tc_wbuf;
    tc->tc_wbuf = tc->tc_out;
    tc->tc_out = t;
    apg_buf_reset(&tc->tc_out);
    uv_buf_t b = uv_buf_init((char *)tc->tc_wbuf.b_data, (unsigned)tc->tc_wbuf.b_len);
    c->c_wreq.data = c;
    int rc = uv_write(&c->c_wreq, (uv_stream_t *)&c->c_tcp, &b, 1, on_write);
    if (rc == 0)
        tc->tc_writing = true;
    return rc;
}

/* Sends tc_out: what the socket takes now, the rest with a uv_write. */
static int kick(struct apg_conn *c)
{
    struct tls_conn *tc = tc_of(c);
    if (tc->tc_writing || tc->tc_out.b_len == 0)
        return 0;
    uv_buf_t b = uv_buf_init((char *)tc->tc_out.b_data, (unsigned)tc->tc_out.b_len);
    int n = uv_try_write((uv_stream_t *)&c->c_tcp, &b, 1);
    if (n < 0 && n != UV_EAGAIN)
        return n;
    if (n > 0)
        apg_buf_consume(&tc->tc_out, (size_t)n);
    return tc->tc_out.b_len ? write_queued(c) : 0;
}

/* Moves the session's output to tc_out and sends it. False when c was
 * closed for a write error. */
static bool flush(struct apg_conn *c)
{
    struct tls_conn *tc = tc_of(c);
    if (tc->tc_tls && apg_tls_output_pending(tc->tc_tls) &&
        apg_tls_take_output(tc->tc_tls, &tc->tc_out)) {
        apg_net_conn_close(c, APG_ENOMEM, true, "out of memory for TLS output");
        return false;
    }
    int rc = kick(c);
    if (rc) {
        close_why(c, APG_EIO, "write failed", rc);
        return false;
    }
    return true;
}

/* net.c's pending write is complete once nothing of it is left here. */
static void settle(struct apg_conn *c)
{
    struct tls_conn *tc = tc_of(c);
    if (tc->tc_owed && !tc->tc_writing && !tc->tc_out.b_len && !tc->tc_plain.b_len) {
        tc->tc_owed = false;
        apg_net_conn_wdone(c, 0);
    }
}

static void on_write(uv_write_t *req, int status)
{
    struct apg_conn *c = req->data;
    struct tls_conn *tc = tc_of(c);
    tc->tc_writing = false;
    apg_buf_reset(&tc->tc_wbuf);
    if (status == 0 && !apg_conn_is_closed(c))
        status = kick(c);
    if (status < 0) {
        if (tc->tc_owed) {
            tc->tc_owed = false;
            apg_net_conn_wdone(c, status); /* closes c unless cancelled */
        } else if (status != UV_ECANCELED) {
            close_why(c, APG_EIO, "write failed", status);
        }
        return;
    }
    settle(c);
}

/* Encrypts bufs[0..n) into tc_out; the bytes taken, or a uv error. */
static int encrypt(struct apg_conn *c, const uv_buf_t *bufs, unsigned n)
{
    struct tls_conn *tc = tc_of(c);
    size_t total = 0;
    char err[200];
    for (unsigned i = 0; i < n; i++) {
        if (apg_tls_write(tc->tc_tls, (const uint8_t *)bufs[i].base, bufs[i].len, err,
                          sizeof(err))) {
            apg_log_debug(c->c_loop->l_name, "%s: %s", c->c_peer, err);
            return UV_EPROTO;
        }
        total += bufs[i].len;
    }
    if (apg_tls_take_output(tc->tc_tls, &tc->tc_out))
        return UV_ENOMEM;
    return (int)total;
}

static bool ready(const struct tls_conn *tc)
{
    return tc->tc_mode == TC_TLS && apg_tls_handshake_done(tc->tc_tls);
}

static int tls_try_writev(struct apg_conn *c, const uv_buf_t *bufs, unsigned n)
{
    struct tls_conn *tc = tc_of(c);
    if (tc->tc_mode == TC_PLAIN)
        return apg_net_tcp.tr_try_writev(c, bufs, n);
    if (!ready(tc) || tc->tc_writing || tc->tc_out.b_len)
        return UV_EAGAIN;
    int taken = encrypt(c, bufs, n);
    if (taken < 0)
        return taken;
    int rc = kick(c);
    return rc ? rc : taken;
}

static int tls_writev(struct apg_conn *c, const uv_buf_t *bufs, unsigned n)
{
    struct tls_conn *tc = tc_of(c);
    if (tc->tc_mode == TC_PLAIN)
        return apg_net_tcp.tr_writev(c, bufs, n);
    if (tc->tc_mode == TC_SNIFF)
        return UV_ENOTCONN; /* a server speaks after its client */
    if (!ready(tc)) {
        for (unsigned i = 0; i < n; i++)
            if (apg_buf_append(&tc->tc_plain, bufs[i].base, bufs[i].len))
                return UV_ENOMEM;
        tc->tc_owed = true;
        return 0;
    }
    int taken = encrypt(c, bufs, n);
    if (taken < 0)
        return taken;
    /* Completion must come from a callback: never try_write here. */
    if (!tc->tc_writing && tc->tc_out.b_len) {
        int rc = write_queued(c);
        if (rc)
            return rc;
    }
    tc->tc_owed = true;
    return 0;
}

static size_t tls_write_queued(const struct apg_conn *c)
{
    const struct tls_conn *tc = tc_of(c);
    if (tc->tc_mode == TC_PLAIN)
        return apg_net_tcp.tr_write_queued(c);
    return tc->tc_out.b_len + tc->tc_wbuf.b_len + tc->tc_plain.b_len;
}

/* ---- reading ---- */

/* The handshake just finished: plaintext that waited for it is encrypted. */
static bool handshake_finished(struct apg_conn *c)
{
    struct tls_conn *tc = tc_of(c);
    tc->tc_hs_start = 0;
    apg_log_debug(c->c_loop->l_name, "%s: TLS session established", c->c_peer);
    if (!tc->tc_plain.b_len)
        return true;
    uv_buf_t b = uv_buf_init((char *)tc->tc_plain.b_data, (unsigned)tc->tc_plain.b_len);
    int rc = encrypt(c, &b, 1);
    apg_buf_reset(&tc->tc_plain);
    if (rc < 0) {
        close_why(c, APG_EIO, "TLS write failed", rc);
        return false;
    }
    return true;
}

/* Decrypts what the session holds into the connection while it reads:
 * the handshake first, then records. */
static void pump(struct apg_conn *c)
{
    struct tls_conn *tc = tc_of(c);
    apg_conn_ref(c);
    while (!apg_conn_is_closed(c) && tc->tc_reading) {
        uint8_t *p;
        size_t cap;
        if (apg_net_conn_rbuf(c, &p, &cap)) {
            apg_net_conn_rdone(c, UV_ENOBUFS);
            break;
        }
        bool was_done = apg_tls_handshake_done(tc->tc_tls);
        char err[256] = "";
        ssize_t n = apg_tls_read(tc->tc_tls, p, cap, err, sizeof(err));
        if (!was_done && apg_tls_handshake_done(tc->tc_tls) && !handshake_finished(c))
            break;
        if (!flush(c))
            break;
        if (n > 0) {
            apg_net_conn_rdone(c, n);
            continue;
        }
        if (n == APG_ECLOSED)
            apg_net_conn_rdone(c, UV_EOF);
        else if (n < 0) {
            apg_net_conn_refused(c, APG_NET_REFUSED_TLS);
            apg_net_conn_close(c, APG_EPROTO, true, err);
        }
        break;
    }
    if (!apg_conn_is_closed(c))
        settle(c);
    apg_conn_unref(c);
}

static void pump_posted(struct apg_conn *c, void *arg)
{
    if (apg_conn_is_closed(c))
        return;
    tc_of(c)->tc_posted = false;
    pump(c);
}

/* Permissive mode met a plaintext client: the bytes read so far go to the
 * connection and the session is dropped; enforcing mode closes it. */
static void go_plain(struct apg_conn *c, size_t n)
{
    struct tls_conn *tc = tc_of(c);
    const struct tls_cfg *tg = c->c_loop->l_tr_ctx;
    if (tg->tg_mode != APG_NET_TLS_PERMISSIVE) {
        apg_net_conn_refused(c, APG_NET_REFUSED_TLS);
        apg_net_conn_close(c, APG_EPROTO, true,
                           "plaintext connection refused: this port takes TLS only "
                           "(tls.server.mode=enforcing)");
        return;
    }
    tc->tc_mode = TC_PLAIN;
    uint8_t *src = tc->tc_rbuf;
    tc->tc_rbuf = NULL;
    const uint8_t *s = src;
    apg_conn_ref(c);
    while (n && !apg_conn_is_closed(c)) {
        uint8_t *p;
        size_t cap;
        if (apg_net_conn_rbuf(c, &p, &cap)) {
            apg_net_conn_rdone(c, UV_ENOBUFS);
            break;
        }
        size_t k = n < cap ? n : cap;
        memcpy(p, s, k);
        s += k;
        n -= k;
        apg_net_conn_rdone(c, (ssize_t)k);
    }
    apg_conn_unref(c);
    apg_free(src);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct apg_conn *c = h->data;
    struct tls_conn *tc = tc_of(c);
    uint8_t *p = NULL;
    size_t cap = 0;
    if (tc->tc_mode == TC_PLAIN) {
        if (apg_net_conn_rbuf(c, &p, &cap))
            p = NULL;
    } else {
        if (!tc->tc_rbuf)
            tc->tc_rbuf = apg_malloc(TLS_RBUF);
        p = tc->tc_rbuf;
        cap = TLS_RBUF;
    }
    *buf = p ? uv_buf_init((char *)p, (unsigned)cap) : uv_buf_init(NULL, 0);
}

static bool start_session(struct apg_conn *c, const char *host)
{
    struct tls_conn *tc = tc_of(c);
    const struct tls_cfg *tg = c->c_loop->l_tr_ctx;
    tc->tc_tls = apg_tls_new(tg->tg_ctx, host);
    if (!tc->tc_tls)
        return false;
    tc->tc_mode = TC_TLS;
    return true;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct apg_conn *c = s->data;
    struct tls_conn *tc = tc_of(c);
    if (tc->tc_mode == TC_PLAIN || nread <= 0) {
        apg_net_conn_rdone(c, nread);
        return;
    }
    if (tc->tc_mode == TC_SNIFF) {
        if (apg_tls_sniff(tc->tc_rbuf, (size_t)nread) == APG_TLS_SNIFF_PLAIN) {
            go_plain(c, (size_t)nread);
            return;
        }
        if (!start_session(c, NULL)) {
            apg_net_conn_close(c, APG_ENOMEM, true, "out of memory for a TLS session");
            return;
        }
    }
    if (!tc->tc_hs_start && !apg_tls_handshake_done(tc->tc_tls)) {
        uint64_t now = uv_now(&c->c_loop->l_uv);
        tc->tc_hs_start = now ? now : 1;
    }
    /* tc_rbuf stays for the next read: allocating it (and OpenSSL's record
     * buffers, SSL_MODE_RELEASE_BUFFERS) per read cost 1-2 us of CPU per
     * message on each side (bench/tls_produce.sh); its untouched pages are
     * not resident. */
    apg_err_t e = apg_tls_feed(tc->tc_tls, tc->tc_rbuf, (size_t)nread);
    if (e) {
        apg_net_conn_close(c, APG_ENOMEM, true, "out of memory for TLS input");
        return;
    }
    pump(c);
}

static apg_err_t tls_read_start(struct apg_conn *c)
{
    struct tls_conn *tc = tc_of(c);
    tc->tc_reading = true;
    if (uv_read_start((uv_stream_t *)&c->c_tcp, on_alloc, on_read))
        return APG_EIO;
    if (tc->tc_mode != TC_TLS)
        return APG_OK;
    if (!apg_tls_handshake_done(tc->tc_tls) && !tc->tc_hs_start) {
        /* An outbound connection just connected: send the ClientHello. */
        uint64_t now = uv_now(&c->c_loop->l_uv);
        tc->tc_hs_start = now ? now : 1;
        pump(c);
    } else if (!tc->tc_posted) {
        /* Reading resumes after back-pressure: records already decrypted
         * inside the session would wait for the next socket read. */
        tc->tc_posted = apg_conn_post(c, pump_posted, NULL) == APG_OK;
    }
    return APG_OK;
}

static void tls_read_stop(struct apg_conn *c)
{
    tc_of(c)->tc_reading = false;
    uv_read_stop((uv_stream_t *)&c->c_tcp);
}

/* ---- life cycle ---- */

static apg_err_t tls_init(struct apg_conn *c)
{
    struct tls_conn *tc = apg_calloc(1, sizeof(*tc));
    if (!tc)
        return APG_ENOMEM;
    if (apg_net_tcp.tr_init(c)) {
        apg_free(tc);
        return APG_ENOMEM;
    }
    c->c_tr_state = tc;
    return APG_OK;
}

static apg_err_t tls_accept(struct apg_conn *c, uv_stream_t *listener)
{
    return apg_net_tcp.tr_accept(c, listener);
}

static int tls_connect(struct apg_conn *c, const struct sockaddr *sa,
                       void (*done)(struct apg_conn *c, int status))
{
    /* The host part of "host:port" (or "[v6]:port") names the server. */
    char host[256] = "";
    if (c->c_addr) {
        const char *colon = strrchr(c->c_addr, ':');
        size_t hl = colon ? (size_t)(colon - c->c_addr) : strlen(c->c_addr);
        const char *h = c->c_addr;
        if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
            h++;
            hl -= 2;
        }
        if (hl < sizeof(host)) {
            memcpy(host, h, hl);
            host[hl] = 0;
        }
    }
    if (!start_session(c, host))
        return UV_ENOMEM;
    return apg_net_tcp.tr_connect(c, sa, done);
}

static void on_closed(uv_handle_t *h)
{
    struct apg_conn *c = h->data;
    struct tls_conn *tc = tc_of(c);
    if (tc->tc_owed) {
        tc->tc_owed = false;
        apg_net_conn_wdone(c, UV_ECANCELED);
    }
    apg_tls_free(tc->tc_tls);
    apg_free(tc->tc_rbuf);
    apg_buf_free(&tc->tc_out);
    apg_buf_free(&tc->tc_wbuf);
    apg_buf_free(&tc->tc_plain);
    apg_free(tc);
    c->c_tr_state = NULL;
    apg_net_conn_closed(c);
}

static void tls_close(struct apg_conn *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->c_tcp))
        uv_close((uv_handle_t *)&c->c_tcp, on_closed);
}

static void tls_peer(struct apg_conn *c, char *buf, size_t len)
{
    apg_net_tcp.tr_peer(c, buf, len);
}

static uint64_t tls_busy_since(const struct apg_conn *c)
{
    const struct tls_conn *tc = tc_of(c);
    return tc && tc->tc_mode == TC_TLS ? tc->tc_hs_start : 0;
}

static void tls_ctx_free(void *p)
{
    struct tls_cfg *tg = p;
    apg_tls_ctx_free(tg->tg_ctx);
    apg_free(tg);
}

const struct apg_net_transport apg_net_tls = {
    .tr_name = "tls",
    .tr_init = tls_init,
    .tr_accept = tls_accept,
    .tr_connect = tls_connect,
    .tr_read_start = tls_read_start,
    .tr_read_stop = tls_read_stop,
    .tr_try_writev = tls_try_writev,
    .tr_writev = tls_writev,
    .tr_write_queued = tls_write_queued,
    .tr_close = tls_close,
    .tr_peer = tls_peer,
    .tr_busy_since = tls_busy_since,
    .tr_ctx_free = tls_ctx_free,
};

/* ---- settings from the configuration ---- */

static apg_err_t cfg_new(const struct apg_tls_ctx_opts *to, enum apg_net_tls_mode mode,
                         struct tls_cfg **out, char *err, size_t errlen)
{
    struct tls_cfg *tg = apg_calloc(1, sizeof(*tg));
    if (!tg)
        return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    apg_err_t e = apg_tls_ctx_new(to, &tg->tg_ctx, err, errlen);
    if (e) {
        apg_free(tg);
        return e;
    }
    tg->tg_mode = mode;
    *out = tg;
    return APG_OK;
}

apg_err_t apg_net_tls_server_setup(const struct apg_config *cfg, struct apg_net_server_opts *o,
                                   char *err, size_t errlen)
{
    return apg_net_tls_server_setup_alpn(cfg, o, NULL, err, errlen);
}

apg_err_t apg_net_tls_server_setup_alpn(const struct apg_config *cfg, struct apg_net_server_opts *o,
                                        const char *alpn, char *err, size_t errlen)
{
    const char *ms = apg_cfg_str(cfg, APG_CFG_tlsServerMode);
    int mode = apg_net_tls_mode_parse(ms);
    if (mode < 0)
        return apg_errf(APG_ECONFIG, err, errlen,
                        "tlsServerMode '%s' is not one of "
                        "disabled|permissive|enforcing",
                        ms);
    if (mode == APG_NET_TLS_DISABLED)
        return APG_OK;
    const char *trust = apg_cfg_str(cfg, APG_CFG_tlsServerTrustCertPath);
    const char *auth = apg_cfg_str(cfg, APG_CFG_tlsServerNeedClientAuth);
    struct apg_tls_ctx_opts to = {
        .server = true,
        .cert_path = apg_cfg_str(cfg, APG_CFG_tlsServerCertPath),
        .key_path = apg_cfg_str(cfg, APG_CFG_tlsServerKeyPath),
        .trust_path = trust,
        .client_auth = !strcmp(auth, "require")    ? APG_TLS_AUTH_REQUIRE
                       : !strcmp(auth, "optional") ? APG_TLS_AUTH_OPTIONAL
                       : !strcmp(auth, "none")     ? APG_TLS_AUTH_NONE
                       : trust && trust[0]         ? APG_TLS_AUTH_REQUIRE
                                                   : APG_TLS_AUTH_NONE,
        .alpn = alpn,
    };
    struct tls_cfg *tg;
    char why[512];
    if (cfg_new(&to, (enum apg_net_tls_mode)mode, &tg, why, sizeof(why)))
        return apg_errf(APG_ECONFIG, err, errlen, "tlsServerMode=%s: %s", ms, why);
    o->transport = &apg_net_tls;
    o->transport_ctx = tg;
    apg_log_info(o->name ? o->name : "net", "TLS %s on the listening port (certificate %s%s%s%s)",
                 ms, to.cert_path, alpn ? ", ALPN " : "", alpn ? alpn : "",
                 to.client_auth == APG_TLS_AUTH_REQUIRE    ? ", client certificates required"
                 : to.client_auth == APG_TLS_AUTH_OPTIONAL ? ", client certificates verified"
                                                           : "");
    return APG_OK;
}

apg_err_t apg_net_tls_client_setup(const struct apg_config *cfg, struct apg_net_client_opts *o,
                                   char *err, size_t errlen)
{
    if (!apg_cfg_bool(cfg, APG_CFG_tlsEnable))
        return APG_OK;
    const char *trust = apg_cfg_str(cfg, APG_CFG_tlsClientTrustCertPath);
    struct apg_tls_ctx_opts to = {
        .server = false,
        .cert_path = apg_cfg_str(cfg, APG_CFG_tlsClientCertPath),
        .key_path = apg_cfg_str(cfg, APG_CFG_tlsClientKeyPath),
        .trust_path = trust,
        .verify_server = (trust && trust[0]) || apg_cfg_bool(cfg, APG_CFG_tlsClientAuthServer),
    };
    struct tls_cfg *tg;
    char why[512];
    if (cfg_new(&to, APG_NET_TLS_ENFORCING, &tg, why, sizeof(why)))
        return apg_errf(APG_ECONFIG, err, errlen, "tlsEnable: %s", why);
    o->transport = &apg_net_tls;
    o->transport_ctx = tg;
    return APG_OK;
}

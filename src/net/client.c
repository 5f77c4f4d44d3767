/* Outbound remoting client: one loop thread, one connection per address.
 *
 * Callers on any thread encode their request into an owned frame right away
 * (so they only borrow req and body for the call), take an opaque from the
 * client's counter and post the frame to the client's loop. There the
 * connection for the address is found or created (the transport's
 * connect), the frame is appended to its output and a pending entry
 * records the callback and deadline. Frames queued while connecting go out
 * once the connect succeeds; a failed connect fails every pending call on
 * it. Responses are matched by opaque in the remoting codec
 * (remoting_codec.c), on the request table of protocol/remoting_conn that
 * the client library uses too.
 *
 * apg_net_client_call_sync waits on a condition variable for the callback,
 * which copies the response (apg_rcmd_copy_new). */
#include <string.h>
#include <netdb.h>
#include <stdlib.h>
#include <stdio.h>

#include "common/log.h"
#include "common/mem.h"
#include "net/net_int.h"

struct apg_net_client {
    struct apg_net_loop cl_loop;
    char *cl_name;
    uint32_t cl_connect_timeout_ms;
    atomic_int cl_opaque;
};

struct client_call {
    struct apg_net_client *cc_cli;
    char *cc_addr;
    struct apg_buf cc_frame;
    int32_t cc_opaque;
    bool cc_oneway;
    uint32_t cc_timeout_ms;
    apg_net_resp_cb cc_cb;
    void *cc_ud;
};

apg_err_t apg_net_parse_addr(const char *addr, struct sockaddr_storage *ss, char *err,
                             size_t errlen)
{
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || !colon[1])
        return apg_errf(APG_EINVAL, err, errlen, "address '%s' is not host:port", addr);
    char host[256];
    size_t hl = (size_t)(colon - addr);
    if (hl >= sizeof(host))
        return apg_errf(APG_EINVAL, err, errlen, "address '%s': host too long", addr);
    memcpy(host, addr, hl);
    host[hl] = 0;
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = 0;
    }
    char *end = NULL;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port <= 0 || port > 65535)
        return apg_errf(APG_EINVAL, err, errlen, "address '%s': bad port", addr);
    memset(ss, 0, sizeof(*ss));
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0)
        return APG_OK;
    if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0)
        return APG_OK;
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc || !res)
        return apg_errf(APG_ENOTFOUND, err, errlen, "cannot resolve '%s': %s", host,
                        gai_strerror(rc));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    freeaddrinfo(res);
    return APG_OK;
}

static void call_free(struct client_call *cc)
{
    apg_buf_free(&cc->cc_frame);
    apg_free(cc->cc_addr);
    apg_free(cc);
}

static void on_connect(struct apg_conn *c, int status)
{
    if (status < 0) {
        if (!apg_conn_is_closed(c)) {
            char why[160];
            snprintf(why, sizeof(why), "connect to %s failed: %s", c->c_addr, uv_strerror(status));
            apg_net_conn_close(c, APG_EIO, true, why);
        }
        apg_conn_unref(c);
        return;
    }
    if (!apg_conn_is_closed(c)) {
        if (apg_net_conn_start(c)) {
            apg_net_conn_close(c, APG_EIO, true, "cannot start reading");
        } else if (c->c_out.b_len) {
            apg_net_conn_mark_dirty(c);
        }
    }
    apg_conn_unref(c);
}

static struct apg_conn *client_conn_get(struct apg_net_client *cli, const char *addr, apg_err_t *e)
{
    struct apg_net_loop *l = &cli->cl_loop;
    for (struct apg_conn *c = l->l_conns; c; c = c->c_next)
        if (!apg_conn_is_closed(c) && c->c_addr && strcmp(c->c_addr, addr) == 0)
            return c;
    char err[200];
    struct sockaddr_storage ss;
    *e = apg_net_parse_addr(addr, &ss, err, sizeof(err));
    if (*e) {
        apg_log_warn(l->l_name, "%s", err);
        return NULL;
    }
    struct apg_conn *c = apg_net_conn_new(l);
    if (!c) {
        *e = APG_ENOMEM;
        return NULL;
    }
    c->c_addr = apg_strdup(addr);
    snprintf(c->c_peer, sizeof(c->c_peer), "%s", addr);
    c->c_connect_deadline = uv_now(&l->l_uv) + cli->cl_connect_timeout_ms;
    apg_conn_ref(c);
    int rc = c->c_addr ? c->c_tr->tr_connect(c, (struct sockaddr *)&ss, on_connect) : 0;
    if (!c->c_addr || rc) {
        apg_conn_unref(c);
        apg_net_conn_close(c, APG_EIO, true, rc ? uv_strerror(rc) : "out of memory");
        *e = rc ? APG_EIO : APG_ENOMEM;
        return NULL;
    }
    return c;
}

static void run_call(void *arg)
{
    struct client_call *cc = arg;
    struct apg_net_loop *l = &cc->cc_cli->cl_loop;
    apg_err_t e = APG_ESHUTDOWN;
    struct apg_conn *c = l->l_stopping ? NULL : client_conn_get(cc->cc_cli, cc->cc_addr, &e);
    if (c) {
        e = apg_buf_append(&c->c_out, cc->cc_frame.b_data, cc->cc_frame.b_len);
        if (!e && !cc->cc_oneway) {
            e = apg_net_remoting_add_pending(c, cc->cc_opaque, cc->cc_timeout_ms, cc->cc_cb,
                                             cc->cc_ud);
            if (e)
                c->c_out.b_len -= cc->cc_frame.b_len;
        }
        if (!e)
            apg_net_conn_mark_dirty(c);
    }
    if (e && !cc->cc_oneway)
        cc->cc_cb(cc->cc_ud, NULL, e);
    call_free(cc);
}

static apg_err_t client_submit(struct apg_net_client *cli, const char *addr,
                               const struct apg_rcmd *req, const uint8_t *body, uint32_t len,
                               bool oneway, uint32_t timeout_ms, apg_net_resp_cb cb, void *ud)
{
    struct client_call *cc = apg_calloc(1, sizeof(*cc));
    if (!cc)
        return APG_ENOMEM;
    cc->cc_cli = cli;
    cc->cc_addr = apg_strdup(addr);
    cc->cc_oneway = oneway;
    cc->cc_timeout_ms = timeout_ms;
    cc->cc_cb = cb;
    cc->cc_ud = ud;
    struct apg_rcmd r = *req;
    r.opaque = cc->cc_opaque = atomic_fetch_add(&cli->cl_opaque, 1);
    r.flag &= ~APG_RCMD_FLAG_RESPONSE;
    if (oneway)
        r.flag |= APG_RCMD_FLAG_ONEWAY;
    else
        r.flag &= ~APG_RCMD_FLAG_ONEWAY;
    apg_err_t e = cc->cc_addr ? apg_rcmd_encode(&r, body, len, &cc->cc_frame) : APG_ENOMEM;
    if (!e)
        e = apg_net_loop_post(&cli->cl_loop, run_call, cc);
    if (e)
        call_free(cc);
    return e;
}

apg_err_t apg_net_client_call(struct apg_net_client *cli, const char *addr,
                              const struct apg_rcmd *req, const uint8_t *body, uint32_t len,
                              uint32_t timeout_ms, apg_net_resp_cb cb, void *ud)
{
    return client_submit(cli, addr, req, body, len, false, timeout_ms, cb, ud);
}

apg_err_t apg_net_client_oneway(struct apg_net_client *cli, const char *addr,
                                const struct apg_rcmd *req, const uint8_t *body, uint32_t len)
{
    return client_submit(cli, addr, req, body, len, true, 0, NULL, NULL);
}

static void client_loop_main(void *arg)
{
    struct apg_net_loop *l = arg;
    uv_sem_post(&l->l_ready);
    uv_run(&l->l_uv, UV_RUN_DEFAULT);
}

apg_err_t apg_net_client_start(const struct apg_net_client_opts *opts, struct apg_net_client **out,
                               char *err, size_t errlen)
{
    *out = NULL;
    struct apg_net_client *cli = apg_calloc(1, sizeof(*cli));
    if (!cli) {
        if (opts)
            apg_net_transport_ctx_free(opts->transport, opts->transport_ctx);
        return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    }
    cli->cl_name = apg_strdup(opts && opts->name ? opts->name : "client");
    cli->cl_connect_timeout_ms = opts && opts->connect_timeout_ms ? opts->connect_timeout_ms : 3000;
    atomic_init(&cli->cl_opaque, 1);
    struct apg_net_loop *l = &cli->cl_loop;
    l->l_name = cli->cl_name;
    l->l_tr = opts && opts->transport ? opts->transport : &apg_net_tcp;
    l->l_tr_ctx = opts ? opts->transport_ctx : NULL;
    l->l_codec = &apg_net_remoting;
    l->l_max_frame = opts && opts->max_frame ? opts->max_frame : APG_FRAME_MAX_DEFAULT;
    l->l_idle_ms = opts && opts->idle_timeout_s > 0 ? (uint64_t)opts->idle_timeout_s * 1000 : 0;
    l->l_opaque = &cli->cl_opaque;
    l->l_on_request = opts ? opts->on_request : NULL;
    l->l_ud = opts ? opts->ud : NULL;
    l->l_listen_fd = -1;
    uv_mutex_init(&l->l_mtx);
    uv_sem_init(&l->l_ready, 0);
    if (!cli->cl_name || apg_net_loop_init(l, 0)) {
        uv_mutex_destroy(&l->l_mtx);
        uv_sem_destroy(&l->l_ready);
        apg_net_transport_ctx_free(l->l_tr, l->l_tr_ctx);
        apg_free(cli->cl_name);
        apg_free(cli);
        return apg_errf(APG_ENOMEM, err, errlen, "cannot create the client loop");
    }
    if (uv_thread_create(&l->l_thread, client_loop_main, l)) {
        uv_loop_close(&l->l_uv);
        l->l_codec->cd_loop_free(l->l_codec_state);
        apg_net_transport_ctx_free(l->l_tr, l->l_tr_ctx);
        apg_free(cli->cl_name);
        apg_free(cli);
        return apg_errf(APG_EIO, err, errlen, "cannot create the client thread");
    }
    uv_sem_wait(&l->l_ready);
    *out = cli;
    return APG_OK;
}

static void client_stop_on_loop(void *arg)
{
    apg_net_loop_begin_stop(arg, APG_ESHUTDOWN, false);
}

void apg_net_client_stop(struct apg_net_client *cli)
{
    if (!cli)
        return;
    apg_net_loop_post(&cli->cl_loop, client_stop_on_loop, &cli->cl_loop);
    uv_thread_join(&cli->cl_loop.l_thread);
    apg_net_loop_fini(&cli->cl_loop);
    apg_net_transport_ctx_free(cli->cl_loop.l_tr, cli->cl_loop.l_tr_ctx);
    apg_free(cli->cl_name);
    apg_free(cli);
}

/* ---- owned copies and the blocking helper ---- */

struct apg_rcmd_copy *apg_rcmd_copy_new(const struct apg_rcmd *cmd)
{
    struct apg_rcmd_copy *cp = apg_calloc(1, sizeof(*cp));
    if (!cp)
        return NULL;
    struct apg_buf b = APG_BUF_INIT;
    if (apg_rcmd_encode(cmd, cmd->body, cmd->body_len, &b) || b.b_len < 8) {
        apg_buf_free(&b);
        apg_free(cp);
        return NULL;
    }
    size_t need = apg_rcmd_scratch_need(apg_be32(b.b_data + 4) & 0xFFFFFFu);
    cp->rc_frame = b.b_data;
    cp->rc_scratch = apg_malloc(need);
    if (!cp->rc_scratch ||
        apg_rcmd_decode(cp->rc_frame, b.b_len, &cp->rc_cmd, cp->rc_scratch, need, NULL, 0)) {
        apg_rcmd_copy_free(cp);
        return NULL;
    }
    return cp;
}

void apg_rcmd_copy_free(struct apg_rcmd_copy *cp)
{
    if (!cp)
        return;
    apg_free(cp->rc_frame);
    apg_free(cp->rc_scratch);
    apg_free(cp);
}

struct sync_wait {
    uv_mutex_t sw_mtx;
    uv_cond_t sw_cond;
    bool sw_done;
    apg_err_t sw_err;
    struct apg_rcmd_copy *sw_resp;
};

static void sync_cb(void *ud, const struct apg_rcmd *resp, apg_err_t err)
{
    struct sync_wait *sw = ud;
    struct apg_rcmd_copy *cp = NULL;
    if (!err) {
        cp = apg_rcmd_copy_new(resp);
        if (!cp)
            err = APG_ENOMEM;
    }
    uv_mutex_lock(&sw->sw_mtx);
    sw->sw_err = err;
    sw->sw_resp = cp;
    sw->sw_done = true;
    uv_cond_signal(&sw->sw_cond);
    uv_mutex_unlock(&sw->sw_mtx);
}

apg_err_t apg_net_client_call_sync(struct apg_net_client *cli, const char *addr,
                                   const struct apg_rcmd *req, const uint8_t *body, uint32_t len,
                                   uint32_t timeout_ms, struct apg_rcmd_copy **out, char *err,
                                   size_t errlen)
{
    *out = NULL;
    struct sync_wait sw = {.sw_done = false};
    uv_mutex_init(&sw.sw_mtx);
    uv_cond_init(&sw.sw_cond);
    apg_err_t e = apg_net_client_call(cli, addr, req, body, len, timeout_ms, sync_cb, &sw);
    if (!e) {
        uv_mutex_lock(&sw.sw_mtx);
        while (!sw.sw_done)
            uv_cond_wait(&sw.sw_cond, &sw.sw_mtx);
        uv_mutex_unlock(&sw.sw_mtx);
        e = sw.sw_err;
        *out = sw.sw_resp;
    }
    uv_cond_destroy(&sw.sw_cond);
    uv_mutex_destroy(&sw.sw_mtx);
    if (e)
        apg_errf(e, err, errlen, "call to %s failed: %s", addr, apg_strerror(e));
    return e;
}

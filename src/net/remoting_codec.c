/* The RocketMQ remoting codec on the net loops, and the remoting calls on a
 * connection (apg_conn_send, _reply, _request, _oneway).
 *
 * Design. Each loop has one struct rloop: the decode area every frame of
 * the loop is decoded into, and the table of requests this side sent and
 * waits on (server-initiated requests, the outbound client's calls), both
 * from protocol/remoting_conn.h, the same code the client library uses.
 * Frames are cut with apg_frame_peek; a decoded request goes to the
 * server's on_request with the command still pointing into the
 * connection's input buffer; a response completes the waiting request with
 * the same opaque on the same connection, or is dropped (late, or never
 * asked for).
 *
 * Threads: everything runs on the loop thread that owns the connection.
 * Invariant: every waiting request gets exactly one callback (response,
 * deadline, connection closed). */
#include "common/log.h"
#include "common/mem.h"
#include "net/net_int.h"
#include "protocol/remoting_conn.h"

#define REQ_BUCKETS 64 /* server-initiated requests are few per loop */

struct rloop {
    struct apg_rconn_decoder rl_dec;
    struct apg_rconn_reqs rl_reqs;
};

struct rpending {
    struct apg_rconn_req rp_req; /* first */
    apg_net_resp_cb rp_cb;
    void *rp_ud;
};

static apg_err_t rm_loop_new(struct apg_net_loop *l, void **state)
{
    struct rloop *rl = apg_calloc(1, sizeof(*rl));
    if (!rl)
        return APG_ENOMEM;
    if (apg_rconn_reqs_init(&rl->rl_reqs, REQ_BUCKETS)) {
        apg_free(rl);
        return APG_ENOMEM;
    }
    *state = rl;
    return APG_OK;
}

static void rm_loop_free(void *state)
{
    struct rloop *rl = state;
    if (!rl)
        return;
    apg_rconn_decoder_free(&rl->rl_dec);
    apg_rconn_reqs_fini(&rl->rl_reqs);
    apg_free(rl);
}

static size_t rm_read_hint(const uint8_t *buf, size_t len, size_t max_msg)
{
    size_t want = apg_rconn_read_want(buf, len, max_msg, 0);
    return want ? len + want : 0;
}

static apg_err_t rm_decode(void *state, const uint8_t *buf, size_t len, void **msg, char *err,
                           size_t errlen)
{
    const struct apg_rcmd *cmd;
    apg_err_t e = apg_rconn_decode(&((struct rloop *)state)->rl_dec, buf, len, &cmd, err, errlen);
    *msg = (void *)cmd;
    return e;
}

static void complete(struct apg_rconn_req *rq, const struct apg_rcmd *resp, apg_err_t err)
{
    struct rpending *p = (struct rpending *)rq;
    p->rp_cb(p->rp_ud, resp, err);
    apg_free(p);
}

/* Responses, and requests without a handler: out of the request path. */
static __attribute__((noinline)) bool dispatch_other(struct apg_conn *c, const struct apg_rcmd *cmd)
{
    struct apg_net_loop *l = c->c_loop;
    if (apg_rcmd_is_response(cmd)) {
        struct rloop *rl = l->l_codec_state;
        struct apg_rconn_req *rq = apg_rconn_reqs_take(&rl->rl_reqs, cmd->opaque, c);
        if (rq)
            complete(rq, cmd, APG_OK);
        else
            apg_log_debug(l->l_name, "%s: response with unknown opaque %d (late?) dropped",
                          c->c_peer, cmd->opaque);
        return false;
    }
    apg_log_debug(l->l_name, "%s: request code %d ignored (no handler)", c->c_peer, cmd->code);
    return false;
}

static bool rm_dispatch(struct apg_conn *c, void *msg)
{
    struct apg_net_loop *l = c->c_loop;
    const struct apg_rcmd *cmd = msg;
    if (__builtin_expect(apg_rcmd_is_response(cmd) || !l->l_on_request, 0))
        return dispatch_other(c, cmd);
    l->l_on_request(c, cmd, l->l_ud);
    return true;
}

static void rm_conn_close(struct apg_conn *c, apg_err_t err)
{
    struct rloop *rl = c->c_loop->l_codec_state;
    struct apg_rconn_req *rq = apg_rconn_reqs_take_conn(&rl->rl_reqs, c);
    while (rq) {
        struct apg_rconn_req *next = rq->rr_hnext;
        complete(rq, NULL, err);
        rq = next;
    }
}

static size_t rm_expire(struct apg_net_loop *l, uint64_t now)
{
    struct rloop *rl = l->l_codec_state;
    for (struct apg_rconn_req *rq; (rq = apg_rconn_reqs_expired(&rl->rl_reqs, (int64_t)now));)
        complete(rq, NULL, APG_ETIMEDOUT);
    return apg_rconn_reqs_count(&rl->rl_reqs);
}

const struct apg_net_codec apg_net_remoting = {
    .cd_name = "remoting",
    .cd_loop_new = rm_loop_new,
    .cd_loop_free = rm_loop_free,
    .cd_frame = apg_frame_peek,
    .cd_read_hint = rm_read_hint,
    .cd_decode = rm_decode,
    .cd_dispatch = rm_dispatch,
    .cd_conn_close = rm_conn_close,
    .cd_expire = rm_expire,
};

apg_err_t apg_net_remoting_add_pending(struct apg_conn *c, int32_t opaque, uint32_t timeout_ms,
                                       apg_net_resp_cb cb, void *ud)
{
    struct apg_net_loop *l = c->c_loop;
    struct rpending *p = apg_malloc(sizeof(*p));
    if (!p)
        return APG_ENOMEM;
    p->rp_req = (struct apg_rconn_req){
        .rr_opaque = opaque,
        .rr_deadline = (int64_t)(uv_now(&l->l_uv) + timeout_ms),
        .rr_conn = c,
    };
    p->rp_cb = cb;
    p->rp_ud = ud;
    apg_rconn_reqs_add(&((struct rloop *)l->l_codec_state)->rl_reqs, &p->rp_req);
    apg_net_loop_watch_deadlines(l);
    return APG_OK;
}

/* ---- remoting calls on a connection ---- */

static apg_err_t queue_cmd(struct apg_conn *c, const struct apg_rcmd *cmd, const uint8_t *body,
                           uint32_t len)
{
    struct apg_buf *out = apg_net_conn_out(c);
    if (!out)
        return APG_ECLOSED;
    size_t before = out->b_len;
    apg_err_t e = apg_rcmd_encode_header(cmd, len, out);
    if (!e && len)
        e = apg_buf_append(out, body, len);
    if (e) {
        out->b_len = before;
        return e;
    }
    apg_net_conn_out_done(c);
    return APG_OK;
}

apg_err_t apg_conn_send(struct apg_conn *c, const struct apg_rcmd *cmd, const uint8_t *body,
                        uint32_t len)
{
    return queue_cmd(c, cmd, body, len);
}

apg_err_t apg_conn_reply(struct apg_conn *c, const struct apg_rcmd *req, int32_t code,
                         const char *remark, const uint8_t *body, uint32_t len)
{
    if (apg_rcmd_is_oneway(req))
        return APG_OK;
    struct apg_rcmd resp;
    apg_rcmd_init_response(&resp, req, code, remark);
    return queue_cmd(c, &resp, body, len);
}

apg_err_t apg_conn_request(struct apg_conn *c, struct apg_rcmd *req, const uint8_t *body,
                           uint32_t len, uint32_t timeout_ms, apg_net_resp_cb cb, void *ud)
{
    if (apg_conn_is_closed(c))
        return APG_ECLOSED;
    req->opaque = atomic_fetch_add(c->c_loop->l_opaque, 1);
    req->flag &= ~(APG_RCMD_FLAG_RESPONSE | APG_RCMD_FLAG_ONEWAY);
    apg_err_t e = queue_cmd(c, req, body, len);
    if (e)
        return e;
    return apg_net_remoting_add_pending(c, req->opaque, timeout_ms, cb, ud);
}

apg_err_t apg_conn_oneway(struct apg_conn *c, struct apg_rcmd *req, const uint8_t *body,
                          uint32_t len)
{
    req->opaque = atomic_fetch_add(c->c_loop->l_opaque, 1);
    req->flag = (req->flag & ~APG_RCMD_FLAG_RESPONSE) | APG_RCMD_FLAG_ONEWAY;
    return queue_cmd(c, req, body, len);
}

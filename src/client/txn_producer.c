/* Transactional producer: half send, local transaction, END_TRANSACTION,
 * and the check listener that answers the broker's CHECK_TRANSACTION_STATE.
 *
 * A transactional producer is an ordinary producer (producer.c) made with a
 * handler for server-initiated requests. apg_producer_send_transaction sets
 * TRAN_MSG=true and PGROUP on the message, sends it synchronously with the
 * PREPARED transaction type (apg_producer_send_prepared), runs the user's
 * local transaction on the calling thread, then hands an END_TRANSACTION op
 * to the I/O thread, which finds the master address of the broker that
 * stored the half in the topic's route and sends the request; the caller
 * waits for the broker's answer (Java sends it oneway; waiting lets the
 * caller know the verdict is stored).
 *
 * Check-backs arrive on a broker connection on the I/O thread: the body
 * (the half as a stored record) is decoded, the check listener runs there,
 * and a COMMIT or ROLLBACK answer goes back oneway on the same broker
 * address with fromTransactionCheck=true (UNKNOWN sends nothing: the broker
 * asks again).
 *
 * Threads: apg_producer_send_transaction on any caller thread; end_run,
 * end_on_resp and on_server_req on the I/O thread. An end op is owned by
 * the caller, which waits for it (struct apg_cwait) before freeing it. */
#include <stdio.h>
#include <string.h>

#include "client/client_int.h"
#include "common/mem.h"
#include "protocol/msgid.h"
#include "protocol/rcode.h"
#include "protocol/remoting.h"

struct tx_check {
    apg_tx_check_fn tc_fn;
    void *tc_arg;
};

/* The header of an END_TRANSACTION. */
struct end_hdr {
    const char *eh_group, *eh_uniq;
    int64_t eh_qoff, eh_phys;
    int eh_state;
    bool eh_from_check;
};

struct end_op {
    struct apg_cop eo_op;
    apg_producer_t *eo_p;
    char eo_topic[256];
    char eo_broker[128];
    char eo_uniq[64];
    struct end_hdr eo_h;
    struct apg_cwait eo_wait;
    apg_err_t eo_err;
    char eo_errmsg[320];
};

/* Sends END_TRANSACTION to addr: oneway when cb is NULL. */
static apg_err_t end_send(struct apg_cio *io, const char *addr, const struct end_hdr *h,
                          apg_cio_cb cb, void *arg, char *err, size_t errlen)
{
    char q[24], p[24], s[8];
    snprintf(q, sizeof(q), "%lld", (long long)h->eh_qoff);
    snprintf(p, sizeof(p), "%lld", (long long)h->eh_phys);
    snprintf(s, sizeof(s), "%d", h->eh_state);
    struct apg_rcmd req;
    apg_rcmd_init_request(&req, APG_REQ_END_TRANSACTION, 0, apg_cio_serialize(io));
    apg_rcmd_ext_add(&req, "producerGroup", h->eh_group);
    apg_rcmd_ext_add(&req, "tranStateTableOffset", q);
    apg_rcmd_ext_add(&req, "commitLogOffset", p);
    apg_rcmd_ext_add(&req, "commitOrRollback", s);
    apg_rcmd_ext_add(&req, "fromTransactionCheck", h->eh_from_check ? "true" : "false");
    apg_rcmd_ext_add(&req, "msgId", h->eh_uniq);
    apg_rcmd_ext_add(&req, "transactionId", h->eh_uniq);
    return apg_cio_call(io, addr, &req, NULL, 0, 0, cb, arg, err, errlen);
}

static void end_finish(struct end_op *eo, apg_err_t e, const char *msg)
{
    eo->eo_err = e;
    if (e != APG_OK)
        snprintf(eo->eo_errmsg, sizeof(eo->eo_errmsg), "END_TRANSACTION: %s", msg);
    apg_cwait_signal(&eo->eo_wait);
}

static void end_on_resp(struct apg_cio *io, apg_err_t e, const struct apg_rcmd *resp,
                        const char *errmsg, void *arg)
{
    (void)io;
    struct end_op *eo = arg;
    if (e != APG_OK)
        end_finish(eo, e, errmsg ? errmsg : apg_strerror(e));
    else if (resp->code != APG_RESP_SUCCESS)
        end_finish(eo, APG_EBROKER, resp->remark ? resp->remark : "refused by the broker");
    else
        end_finish(eo, APG_OK, NULL);
}

static void end_run(struct apg_cio *io, struct apg_cop *op)
{
    struct end_op *eo = (struct end_op *)op;
    if (apg_cio_stopping(io)) {
        end_finish(eo, APG_ESHUTDOWN, "producer is shutting down");
        return;
    }
    struct apg_ctopic *t = apg_cio_topic_find(io, eo->eo_topic);
    const char *addr = t && t->ct_have ? apg_croute_master(&t->ct_route, eo->eo_broker) : NULL;
    if (addr == NULL) {
        end_finish(eo, APG_ENOTFOUND, "no master address for the broker that holds the half");
        return;
    }
    char err[256];
    apg_err_t e = end_send(io, addr, &eo->eo_h, end_on_resp, eo, err, sizeof(err));
    if (e != APG_OK)
        end_finish(eo, e, err);
}

/* ---- check-back ---- */

struct check_ctx {
    struct tx_check *cc_tc;
    apg_tx_state_t cc_state;
};

static apg_err_t check_one(apg_message_t *m, void *arg)
{
    struct check_ctx *cx = arg;
    const char *id = apg_message_id(m);
    cx->cc_state = cx->cc_tc->tc_fn(m, id ? id : "", cx->cc_tc->tc_arg);
    apg_message_free(m);
    return APG_OK;
}

static void on_server_req(apg_producer_t *p, const struct apg_rcmd *req, void *arg)
{
    struct tx_check *tc = arg;
    if (req->code != APG_REQ_CHECK_TRANSACTION_STATE)
        return;
    struct apg_cio *io = apg_producer_cio(p);
    const char *addr = apg_cio_server_req_addr(io);
    const char *uniq = apg_rcmd_ext_get(req, "transactionId");
    struct end_hdr h = {.eh_group = apg_producer_group(p), .eh_from_check = true};
    char err[256];
    if (addr == NULL || apg_rcmd_ext_i64(req, "tranStateTableOffset", &h.eh_qoff) ||
        apg_rcmd_ext_i64(req, "commitLogOffset", &h.eh_phys))
        return;
    struct check_ctx cx = {.cc_tc = tc, .cc_state = APG_TX_UNKNOWN};
    if (apg_msg_decode_records(req->body, req->body_len, check_one, &cx, err, sizeof(err)) !=
            APG_OK ||
        cx.cc_state == APG_TX_UNKNOWN)
        return;
    h.eh_state = cx.cc_state;
    h.eh_uniq = uniq ? uniq : "";
    end_send(io, addr, &h, NULL, NULL, err, sizeof(err));
}

/* ---- public ---- */

apg_producer_t *apg_producer_new_transactional(const apg_conf_t *conf, apg_tx_check_fn check,
                                               void *check_arg, char *err, size_t errlen)
{
    if (check == NULL) {
        apg_errf(APG_EINVAL, err, errlen, "a transactional producer needs a check listener");
        return NULL;
    }
    struct tx_check *tc = apg_malloc(sizeof(*tc));
    if (tc == NULL) {
        apg_errf(APG_ENOMEM, err, errlen, "out of memory");
        return NULL;
    }
    tc->tc_fn = check;
    tc->tc_arg = check_arg;
    return apg_producer_new_ext(conf, on_server_req, tc, err, errlen); /* owns tc */
}

apg_err_t apg_producer_send_transaction(apg_producer_t *p, apg_message_t *msg,
                                        apg_tx_execute_fn exec, void *arg, apg_send_result_t *res,
                                        apg_tx_state_t *state, char *err, size_t errlen)
{
    if (p == NULL || msg == NULL || exec == NULL)
        return apg_errf(APG_EINVAL, err, errlen, "producer, message and exec are required");
    const char *delay = apg_message_property(msg, "DELAY");
    if (delay && strcmp(delay, "0") != 0)
        return apg_errf(APG_EINVAL, err, errlen,
                        "a transactional message cannot have a delay level");
    apg_err_t e = apg_msg_prop_set(msg, "TRAN_MSG", "true");
    if (e == APG_OK)
        e = apg_msg_prop_set(msg, "PGROUP", apg_producer_group(p));
    if (e != APG_OK)
        return apg_errf(e, err, errlen, "out of memory");
    apg_send_result_t r;
    e = apg_producer_send_prepared(p, msg, &r, err, errlen);
    if (res)
        *res = r;
    if (e != APG_OK)
        return e;
    struct end_op *eo = apg_calloc(1, sizeof(*eo));
    if (eo == NULL)
        return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    struct apg_host host;
    if (apg_msgid_decode(r.sr_offset_msg_id, strlen(r.sr_offset_msg_id), &host,
                         &eo->eo_h.eh_phys) != APG_OK) {
        apg_free(eo);
        return apg_errf(APG_EPROTO, err, errlen, "the broker's msgId %s is not an offset id",
                        r.sr_offset_msg_id);
    }
    apg_tx_state_t st = exec(msg, r.sr_msg_id, arg);
    if (state)
        *state = st;
    if (st == APG_TX_UNKNOWN) {
        apg_free(eo);
        return APG_OK; /* the broker asks the check listener later */
    }
    eo->eo_op.op_fn = end_run;
    eo->eo_p = p;
    snprintf(eo->eo_topic, sizeof(eo->eo_topic), "%s", r.sr_mq.mq_topic);
    snprintf(eo->eo_broker, sizeof(eo->eo_broker), "%s", r.sr_mq.mq_broker);
    snprintf(eo->eo_uniq, sizeof(eo->eo_uniq), "%s", r.sr_msg_id);
    eo->eo_h.eh_group = apg_producer_group(p);
    eo->eo_h.eh_uniq = eo->eo_uniq;
    eo->eo_h.eh_qoff = r.sr_queue_offset;
    eo->eo_h.eh_state = st == APG_TX_COMMIT ? APG_TX_COMMIT : APG_TX_ROLLBACK;
    apg_cwait_init(&eo->eo_wait, 0);
    e = apg_cio_submit(apg_producer_cio(p), &eo->eo_op);
    if (e != APG_OK) {
        apg_errf(e, err, errlen, "producer is shutting down");
    } else {
        apg_cwait_wait(&eo->eo_wait);
        e = eo->eo_err;
        if (e != APG_OK)
            apg_errf(e, err, errlen, "%s", eo->eo_errmsg);
    }
    apg_cwait_destroy(&eo->eo_wait);
    apg_free(eo);
    return e;
}

/* Replies and refusals every processor shares: the plain reply, the send
 * reply (msgId, queueId, queueOffset), the store's refusal mapped to
 * RocketMQ's response codes, and the checks that refuse a request with a
 * remark naming the fix (broker not writable, unknown consumer group).
 *
 * This file is a leaf of the broker: it calls the connection layer and the
 * config tables, never a processor, the write service or the broker's
 * start/stop code, so every other broker file may use it.
 *
 * Threads: every function runs on the connection's loop thread. */
#include <stdio.h>
#include <string.h>

#include "broker/broker_rt.h"

void apg_broker_reply(struct apg_conn *c, const struct apg_rcmd *req, int32_t code,
                      const char *remark)
{
    if (!apg_rcmd_is_oneway(req))
        apg_conn_reply(c, req, code, remark, NULL, 0);
}

void apg_broker_reply_send(struct apg_conn *c, int32_t opaque, uint8_t ser, int32_t code,
                           const char *remark, const char *msgid, int32_t qid, int64_t qoff,
                           const char *uniq)
{
    struct apg_rcmd req = {0};
    req.opaque = opaque;
    req.serialize = ser;
    struct apg_rcmd resp;
    apg_rcmd_init_response(&resp, &req, code, remark);
    char q[24], o[24];
    if (code == APG_RESP_SUCCESS || code == APG_RESP_FLUSH_DISK_TIMEOUT) {
        apg_rcmd_ext_add(&resp, "msgId", msgid);
        apg_rcmd_ext_add(&resp, "queueId", apg_fmt_i64(q, qid));
        apg_rcmd_ext_add(&resp, "queueOffset", apg_fmt_i64(o, qoff));
        if (uniq && uniq[0])
            apg_rcmd_ext_add(&resp, "transactionId", uniq);
        apg_rcmd_ext_add(&resp, "MSG_REGION", "DefaultRegion");
        apg_rcmd_ext_add(&resp, "TRACE_ON", "true");
    }
    apg_conn_send(c, &resp, NULL, 0);
}

static int32_t store_err_code(apg_err_t e)
{
    switch (e) {
    case APG_EINVAL:
    case APG_ETOOBIG:
        return APG_RESP_MESSAGE_ILLEGAL;
    case APG_EDISKFULL:
    case APG_EFSYNC:
    case APG_ECLOSED:
    case APG_ESHUTDOWN:
        return APG_RESP_SERVICE_NOT_AVAILABLE;
    case APG_EBUSY:
        return APG_RESP_SYSTEM_BUSY;
    default:
        return APG_RESP_SYSTEM_ERROR;
    }
}

void apg_broker_reply_refused(struct apg_conn *c, int32_t opaque, uint8_t ser, apg_err_t e,
                              const char *err)
{
    char remark[768];
    snprintf(remark, sizeof(remark), "the store refused the message: %s",
             err[0] ? err : apg_strerror(e));
    apg_broker_reply_send(c, opaque, ser, store_err_code(e), remark, NULL, 0, 0, NULL);
}

bool apg_broker_refuse_unwritable(struct apg_broker *b, struct apg_conn *c,
                                  const struct apg_rcmd *req)
{
    if (b->br_perm & APG_PERM_WRITE)
        return false;
    char remark[256];
    snprintf(remark, sizeof(remark),
             "the broker %s is not writable (brokerPermission=%d); set brokerPermission=6",
             b->br_addr, b->br_perm);
    apg_broker_reply(c, req, APG_RESP_NO_PERMISSION, remark);
    return true;
}

bool apg_broker_group_or_refuse(struct apg_broker *b, struct apg_conn *c,
                                const struct apg_rcmd *req, const char *group,
                                struct apg_group_cfg *gc)
{
    if (apg_name_check_group(group, NULL, 0) == APG_OK &&
        apg_groups_get_or_create(b->br_groups, group, b->br_auto_create_group, gc) == APG_OK)
        return true;
    char remark[768];
    snprintf(remark, sizeof(remark),
             "subscription group %s does not exist; create it (mqadmin updateSubGroup -g %s) or "
             "enable autoCreateSubscriptionGroup",
             group, group);
    apg_broker_reply(c, req, APG_RESP_SUBSCRIPTION_GROUP_NOT_EXIST, remark);
    return false;
}

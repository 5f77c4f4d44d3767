/* Broker glue of the plain ACL: the file's path from the config, the check
 * that runs before every processor (one call in broker.c's on_request),
 * and the reload job of the service thread. A refusal is answered
 * NO_PERMISSION (16) and noted as refusedNoPermission, like the broker's
 * other permission refusals; acl.c also counts it by the check that failed
 * (aclRefused* in GET_BROKER_RUNTIME_INFO). It also reads the account the
 * broker signs its NameServer requests with (innerClientAuthenticationCredentials). */
#include <stdio.h>
#include <string.h>

#include "acl/acl.h"
#include "broker/acl/acl_broker.h"
#include "broker/broker_rt.h"
#include "common/log.h"

apg_err_t apg_broker_ns_credentials(const struct apg_broker *b, char *ak, size_t ak_len, char *sk,
                                    size_t sk_len, char *err, size_t errlen)
{
    return apg_acl_credentials_parse(
        apg_cfg_str(b->br_cfg, APG_CFG_innerClientAuthenticationCredentials), ak, ak_len, sk,
        sk_len, err, errlen);
}

apg_err_t apg_broker_acl_open(struct apg_broker *b, char *err, size_t errlen)
{
    char ak[256], sk[256];
    apg_err_t e = apg_broker_ns_credentials(b, ak, sizeof(ak), sk, sizeof(sk), err, errlen);
    memset(sk, 0, sizeof(sk));
    if (e)
        return e;
    if (apg_cfg_bool(b->br_cfg, APG_CFG_aclEnable) && !ak[0])
        apg_log_warn("acl",
                     "aclEnable=true but innerClientAuthenticationCredentials is empty: a "
                     "NameServer with aclEnable=true refuses this broker's REGISTER_BROKER unless "
                     "its address is white-listed; set it to "
                     "{\"accessKey\":\"...\",\"secretKey\":\"...\"} of an admin account");
    return apg_acl_open_config(b->br_cfg, b->br_root, APG_ACL_TABLE_BROKER, &b->br_acl, err,
                               errlen);
}

void apg_broker_acl_close(struct apg_broker *b)
{
    apg_acl_free(b->br_acl);
    b->br_acl = NULL;
}

bool apg_broker_acl_refused(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req)
{
    char remark[320];
    const char *peer = apg_conn_peer(c);
    if (apg_acl_check(b->br_acl, req, peer, remark, sizeof(remark)) == APG_ACL_OK)
        return false;
    apg_broker_reply(c, req, APG_RESP_NO_PERMISSION, remark);
    apg_broker_refusal_note(b, APG_REFUSAL_NO_PERMISSION, apg_req_code_name(req->code),
                            apg_rcmd_ext_get(req, "AccessKey"), peer, APG_RESP_NO_PERMISSION,
                            remark);
    return true;
}

void apg_broker_acl_reload(struct apg_broker *b)
{
    if (b->br_acl)
        apg_acl_reload(b->br_acl);
}

/* Broker glue of the plain ACL: the file's path from the config, the check
 * that runs before every processor (one call in broker.c's on_request),
 * and the reload job of the service thread. A refusal is answered
 * NO_PERMISSION (16) and noted as refusedNoPermission, like the broker's
 * other permission refusals; acl.c also counts it by the check that failed
 * (aclRefused* in GET_BROKER_RUNTIME_INFO). */
#include <stdio.h>

#include "broker/acl/acl.h"
#include "broker/acl/acl_broker.h"
#include "broker/broker_rt.h"

apg_err_t apg_broker_acl_open(struct apg_broker *b, char *err, size_t errlen)
{
    if (!apg_cfg_bool(b->br_cfg, APG_CFG_aclEnable))
        return APG_OK;
    const char *f = apg_cfg_str(b->br_cfg, APG_CFG_aclFile);
    char path[1200];
    if (f && f[0])
        snprintf(path, sizeof(path), "%s", f);
    else
        snprintf(path, sizeof(path), "%s/conf/plain_acl.yml", b->br_root);
    b->br_acl = apg_acl_open(path, err, errlen);
    return b->br_acl ? APG_OK : APG_ECONFIG;
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

/* The NameServer's side of the plain ACL (acl/acl.h), on with aclEnable=true.
 *
 * The same plain_acl.yml as the broker's (aclFile, default <storePathRootDir>/
 * conf/plain_acl.yml, so standalone's two servers read one file), checked
 * with the NameServer's code table (acl/acl_codes_ns.def): the reads a
 * client sends need a valid signature of any account, everything else an
 * admin account, broker registration included, unless the peer's address
 * is white-listed. A refusal answers NO_PERMISSION (16) with a remark
 * naming the failed check and logs one WARN line (at most one a second,
 * with the count of the lines left out).
 *
 * Standalone's broker registers with an account of its own that is not in
 * the file (apg_namesrv_trust_inner): a random secret made at each start
 * and never written anywhere, so aclEnable=true works without an admin
 * account in innerClientAuthenticationCredentials, and nobody outside the
 * process can sign as that account. Its requests pass as an admin's.
 *
 * Threads: everything here runs on the NameServer's one loop thread; the
 * reload timer (once a second) too, so apg_acl_reload has one caller. */
#include <stdio.h>

#include "common/clock.h"
#include "common/log.h"
#include "namesrv/namesrv_int.h"
#include "protocol/rcode.h"
#include "protocol/sign.h"

#define NS_ACL_RELOAD_MS 1000

apg_err_t apg_ns_acl_open(struct apg_namesrv *ns, char *err, size_t errlen)
{
    return apg_acl_open_config(ns->ns_cfg, apg_cfg_str(ns->ns_cfg, APG_CFG_storePathRootDir),
                               APG_ACL_TABLE_NAMESRV, &ns->ns_acl, err, errlen);
}

static void on_reload(uv_timer_t *t)
{
    struct apg_namesrv *ns = t->data;
    apg_acl_reload(ns->ns_acl);
}

void apg_ns_acl_loop_start(struct apg_namesrv *ns, uv_loop_t *loop)
{
    if (!ns->ns_acl)
        return;
    uv_timer_init(loop, &ns->ns_acl_timer);
    ns->ns_acl_timer.data = ns;
    uv_timer_start(&ns->ns_acl_timer, on_reload, NS_ACL_RELOAD_MS, NS_ACL_RELOAD_MS);
}

void apg_ns_acl_loop_stop(struct apg_namesrv *ns)
{
    if (ns->ns_acl)
        uv_close((uv_handle_t *)&ns->ns_acl_timer, NULL);
}

void apg_namesrv_trust_inner(struct apg_namesrv *ns, const char *ak, const char *sk)
{
    if (!ns->ns_acl || atomic_load(&ns->ns_inner_set))
        return;
    snprintf(ns->ns_inner_ak, sizeof(ns->ns_inner_ak), "%s", ak);
    snprintf(ns->ns_inner_sk, sizeof(ns->ns_inner_sk), "%s", sk);
    atomic_store_explicit(&ns->ns_inner_set, true, memory_order_release);
}

bool apg_ns_acl_refused(struct apg_namesrv *ns, struct apg_conn *c, const struct apg_rcmd *req)
{
    if (!ns->ns_acl)
        return false;
    if (atomic_load_explicit(&ns->ns_inner_set, memory_order_acquire) &&
        apg_acl_signed_by(req, ns->ns_inner_ak, ns->ns_inner_sk))
        return false;
    char remark[320];
    const char *peer = apg_conn_peer(c);
    if (apg_acl_check(ns->ns_acl, req, peer, remark, sizeof(remark)) == APG_ACL_OK)
        return false;
    apg_conn_reply(c, req, APG_RESP_NO_PERMISSION, remark, NULL, 0);
    int64_t quiet;
    if (apg_log_limit_hit(&ns->ns_acl_log, apg_mono_ms(), 1000, &quiet)) {
        const char *name = apg_req_code_name(req->code);
        const char *ak = apg_rcmd_ext_get(req, APG_SIGN_ACCESS_KEY);
        apg_log_warn("namesrv", "refused %s (%d) from %s%s%s: %s [%lld more since the last line]",
                     name ? name : "request", req->code, peer ? peer : "?", ak ? " accessKey " : "",
                     ak ? ak : "", remark, (long long)quiet);
    }
    return true;
}

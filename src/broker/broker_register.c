/* NameServer registration: REGISTER_BROKER with the whole topic table
 * (TopicConfigSerializeWrapper JSON, uncompressed, with its CRC32) to every
 * NameServer in namesrvAddr, or UNREGISTER_BROKER at stop. With
 * brokerPermission lacking read or write, each topic's perm is ANDed with
 * it, as RocketMQ does, so the routes show the broker read-only (wipe write
 * perm) or write-only. With innerClientAuthenticationCredentials set,
 * each request is signed with that account (protocol/sign.h), as a
 * NameServer with aclEnable=true asks; a refusal is logged with the
 * NameServer's remark, which names the failed check.
 *
 * apg_broker_ns_query sends one read request (GET_BROKER_CLUSTER_INFO,
 * GET_ROUTEINFO_BY_TOPIC) to the first NameServer, signed the same way,
 * for the HTTP admin API: asynchronously, so no caller's loop waits on the
 * NameServer.
 *
 * Threads: the service thread (periodic, and kicked by a topic change; see
 * broker_tables.c) and the control thread at start and stop. The calls are
 * synchronous, 3 s timeout per NameServer. apg_broker_ns_query: any
 * thread; its callback runs on the NameServer client's loop thread. */
#include <stdio.h>
#include <string.h>

#include "broker/acl/acl_broker.h"
#include "broker/broker_rt.h"
#include "common/hash.h"
#include "common/log.h"
#include "protocol/sign.h"

void apg_broker_register(struct apg_broker *b, bool unregister)
{
    if (!b->br_namesrv[0] || !b->br_cli)
        return;
    struct apg_buf body = APG_BUF_INIT;
    if (!unregister) {
        apg_buf_append_str(&body, "{\"filterServerList\":[],\"topicConfigSerializeWrapper\":");
        /* A broker without read or write permission registers its topics
         * with their perm limited to its own, so routes tell clients. */
        int32_t perm = b->br_perm, rw = APG_PERM_READ | APG_PERM_WRITE;
        apg_topics_encode_perm(b->br_topics, (perm & rw) == rw ? ~0 : perm, &body);
        apg_buf_append_str(&body, "}");
    }
    char id[24], crc[24];
    snprintf(id, sizeof(id), "%lld", (long long)b->br_broker_id);
    const char *ha = b->br_ha_addr;
    snprintf(crc, sizeof(crc), "%d",
             body.b_len ? (int)(apg_crc32(body.b_data, body.b_len) & 0x7FFFFFFF) : 0);
    char ak[256], sk[256], cerr[200], sig[APG_SIGN_LEN];
    struct apg_hmac_key key;
    if (apg_broker_ns_credentials(b, ak, sizeof(ak), sk, sizeof(sk), cerr, sizeof(cerr))) {
        apg_log_error("broker", "not signing NameServer requests: %s", cerr);
        ak[0] = '\0';
    }
    if (ak[0])
        apg_hmac_sha1_key(&key, sk, strlen(sk));
    memset(sk, 0, sizeof(sk));
    char list[sizeof(b->br_namesrv)];
    snprintf(list, sizeof(list), "%s", b->br_namesrv);
    char *save = NULL;
    for (char *addr = strtok_r(list, ";", &save); addr; addr = strtok_r(NULL, ";", &save)) {
        while (*addr == ' ')
            addr++;
        if (!*addr)
            continue;
        struct apg_rcmd req;
        apg_rcmd_init_request(&req,
                              unregister ? APG_REQ_UNREGISTER_BROKER : APG_REQ_REGISTER_BROKER, 0,
                              APG_SER_JSON);
        apg_rcmd_ext_add(&req, "brokerName", b->br_name);
        apg_rcmd_ext_add(&req, "brokerAddr", b->br_addr);
        apg_rcmd_ext_add(&req, "clusterName", b->br_cluster);
        apg_rcmd_ext_add(&req, "brokerId", id);
        if (!unregister) {
            apg_rcmd_ext_add(&req, "haServerAddr", ha);
            apg_rcmd_ext_add(&req, "compressed", "false");
            apg_rcmd_ext_add(&req, "bodyCrc32", crc);
        }
        if (ak[0] && apg_sign_request(&req, ak, &key, body.b_data, body.b_len, sig))
            apg_log_error("broker", "could not sign %s",
                          unregister ? "UNREGISTER_BROKER" : "REGISTER_BROKER");
        struct apg_rcmd_copy *resp = NULL;
        char err[256] = "";
        apg_err_t e = apg_net_client_call_sync(b->br_cli, addr, &req, body.b_data,
                                               (uint32_t)body.b_len, 3000, &resp, err, sizeof(err));
        if (e)
            apg_log_warn("broker", "%s with NameServer %s failed: %s",
                         unregister ? "unregistering" : "registering", addr,
                         err[0] ? err : apg_strerror(e));
        else if (resp->rc_cmd.code != 0)
            apg_log_warn("broker", "NameServer %s refused %s: code %d %s", addr,
                         unregister ? "UNREGISTER_BROKER" : "REGISTER_BROKER", resp->rc_cmd.code,
                         resp->rc_cmd.remark ? resp->rc_cmd.remark : "");
        else {
            apg_log_debug("broker", "%s %s at NameServer %s",
                          unregister ? "unregistered" : "registered", b->br_addr, addr);
            if (!unregister)
                apg_broker_ha_learned(b, apg_rcmd_ext_get(&resp->rc_cmd, "masterAddr"),
                                      apg_rcmd_ext_get(&resp->rc_cmd, "haServerAddr"));
        }
        if (resp)
            apg_rcmd_copy_free(resp);
    }
    apg_buf_free(&body);
}

void apg_broker_sign(struct apg_broker *b, struct apg_rcmd *req, char sig[])
{
    char ak[256], sk[256], cerr[200];
    struct apg_hmac_key key;
    if (apg_broker_ns_credentials(b, ak, sizeof(ak), sk, sizeof(sk), cerr, sizeof(cerr)))
        ak[0] = '\0';
    if (ak[0]) {
        apg_hmac_sha1_key(&key, sk, strlen(sk));
        apg_sign_request(req, ak, &key, NULL, 0, sig);
    }
    memset(sk, 0, sizeof(sk));
}

apg_err_t apg_broker_ns_query(struct apg_broker *b, int32_t code, const char *topic,
                              uint32_t timeout_ms, apg_net_resp_cb cb, void *ud, char *err,
                              size_t errlen)
{
    char addr[sizeof(b->br_namesrv)];
    size_t skip = strspn(b->br_namesrv, " ;");
    snprintf(addr, sizeof(addr), "%.*s", (int)strcspn(b->br_namesrv + skip, " ;"),
             b->br_namesrv + skip);
    if (!addr[0] || !b->br_cli)
        return apg_errf(APG_ENOTFOUND, err, errlen,
                        "this broker has no NameServer (namesrvAddr is empty)");
    struct apg_rcmd req;
    apg_rcmd_init_request(&req, code, 0, APG_SER_JSON);
    if (topic)
        apg_rcmd_ext_add(&req, "topic", topic);
    char sig[APG_SIGN_LEN];
    apg_broker_sign(b, &req, sig);
    apg_err_t e = apg_net_client_call(b->br_cli, addr, &req, NULL, 0, timeout_ms, cb, ud);
    return e ? apg_errf(e, err, errlen, "cannot reach NameServer %s: %s", addr, apg_strerror(e))
             : APG_OK;
}

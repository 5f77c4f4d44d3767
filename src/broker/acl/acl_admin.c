/* The ACL's admin request codes (docs/wire.md §14.3).
 *
 * GET_BROKER_CLUSTER_ACL_INFO (52, `mqadmin clusterAclConfigVersion`)
 * answers with RocketMQ's response header fields: brokerName, brokerAddr,
 * clusterName, version (the DataVersion JSON of the rules in force:
 * counter = reloads since start, timestamp = when they were loaded) and
 * allAclFileVersion (a JSON object from the file's path to that
 * DataVersion; Apogee reads one file). With aclEnable=false there are no
 * rules to describe: SYSTEM_ERROR naming the key (RocketMQ 4.x sends no
 * answer at all then).
 *
 * UPDATE_AND_CREATE_ACL_CONFIG (50), DELETE_ACL_CONFIG (51) and
 * UPDATE_GLOBAL_WHITE_ADDRS_CONFIG (53) would rewrite plain_acl.yml from
 * the network. Apogee does not: the file is the one source of the rules,
 * edited on the host and re-read within a second (a bad edit keeps the
 * rules in force). They answer RocketMQ's failure codes for each
 * (UPDATE_AND_CREATE_ACL_CONFIG_FAILED 209, DELETE_ACL_CONFIG_FAILED 210,
 * UPDATE_GLOBAL_WHITE_ADDRS_CONFIG_FAILED 211) with a remark naming the
 * file to edit; nothing is written.
 *
 * Threads: any loop thread; apg_acl_counts and apg_acl_path read atomics
 * and an immutable string. */
#include <stdio.h>

#include "acl/acl.h"
#include "broker/acl/acl_broker.h"
#include "broker/broker_rt.h"
#include "common/json.h"

/* RocketMQ 4.x ResponseCode values of the three update codes' failures
 * (5.x reuses the numbers for other meanings; they are not in
 * response_codes.def). */
#define RESP_UPDATE_ACL_FAILED 209
#define RESP_DELETE_ACL_FAILED 210
#define RESP_UPDATE_WHITE_ADDRS_FAILED 211

static void acl_info(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req)
{
    if (!b->br_acl) {
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR,
                          "aclEnable=false: this broker has no ACL rules (start it with "
                          "aclEnable=true and a plain_acl.yml)");
        return;
    }
    struct apg_acl_counts ac;
    apg_acl_counts(b->br_acl, &ac);
    char ver[96], all[4400];
    snprintf(ver, sizeof(ver), "{\"counter\":%lld,\"stateVersion\":0,\"timestamp\":%lld}",
             ac.ac_reloads, ac.ac_loaded_ms);
    struct apg_buf path = APG_BUF_INIT;
    apg_json_put_str(&path, apg_acl_path(b->br_acl));
    snprintf(all, sizeof(all), "{%.*s:%s}", (int)path.b_len, (const char *)path.b_data, ver);
    apg_buf_free(&path);
    if (apg_rcmd_is_oneway(req))
        return;
    struct apg_rcmd resp;
    apg_rcmd_init_response(&resp, req, APG_RESP_SUCCESS, NULL);
    apg_rcmd_ext_add(&resp, "brokerName", b->br_name);
    apg_rcmd_ext_add(&resp, "brokerAddr", b->br_addr);
    apg_rcmd_ext_add(&resp, "clusterName", b->br_cluster);
    apg_rcmd_ext_add(&resp, "version", ver);
    apg_rcmd_ext_add(&resp, "allAclFileVersion", all);
    apg_conn_send(c, &resp, NULL, 0);
}

void apg_broker_proc_acl_admin(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req)
{
    int32_t code;
    switch (req->code) {
    case APG_REQ_GET_BROKER_CLUSTER_ACL_INFO:
        acl_info(b, c, req);
        return;
    case APG_REQ_UPDATE_AND_CREATE_ACL_CONFIG:
        code = RESP_UPDATE_ACL_FAILED;
        break;
    case APG_REQ_DELETE_ACL_CONFIG:
        code = RESP_DELETE_ACL_FAILED;
        break;
    default:
        code = RESP_UPDATE_WHITE_ADDRS_FAILED;
        break;
    }
    char remark[4500];
    const char *name = apg_req_code_name(req->code);
    if (b->br_acl)
        snprintf(remark, sizeof(remark),
                 "%s: Apogee does not change the ACL over the network; edit %s on the broker's "
                 "host (re-read within a second; a bad file keeps the rules in force)",
                 name ? name : "request", apg_acl_path(b->br_acl));
    else
        snprintf(remark, sizeof(remark),
                 "%s: aclEnable=false and Apogee does not change the ACL over the network; "
                 "write plain_acl.yml (aclFile, default <storePathRootDir>/conf/plain_acl.yml) "
                 "and start the broker with aclEnable=true",
                 name ? name : "request");
    apg_broker_reply(c, req, code, remark);
}

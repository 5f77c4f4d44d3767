/* The broker's side of the plain ACL (acl.h): opening the file at start,
 * the check in the dispatch path, the reload job and the runtime-info
 * counters. b->br_acl is NULL when aclEnable=false. */
#ifndef APG_BROKER_ACL_ACL_BROKER_H
#define APG_BROKER_ACL_ACL_BROKER_H

#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"
#include "protocol/rcmd.h"

struct apg_broker;
struct apg_conn;

/* With aclEnable=true, loads aclFile (default <storePathRootDir>/conf/
 * plain_acl.yml) into b->br_acl; a missing or bad file is an error, and so
 * is a malformed innerClientAuthenticationCredentials (whatever aclEnable). */
apg_err_t apg_broker_acl_open(struct apg_broker *b, char *err, size_t errlen);
void apg_broker_acl_close(struct apg_broker *b);
/* Loop thread, before the processor: when the ACL refuses req, answers it
 * NO_PERMISSION with a remark naming the failed check (not for oneway),
 * counts and logs it, and returns true. */
bool apg_broker_acl_refused(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req);
/* The account of innerClientAuthenticationCredentials into ak and sk
 * (both "" when the key is empty: requests go unsigned). APG_EINVAL with
 * err naming the problem (never the secret) when it is not JSON with two
 * non-empty strings accessKey and secretKey. Any thread. */
apg_err_t apg_broker_ns_credentials(const struct apg_broker *b, char *ak, size_t ak_len, char *sk,
                                    size_t sk_len, char *err, size_t errlen);
/* GET_BROKER_CLUSTER_ACL_INFO (52), and the refusals of
 * UPDATE_AND_CREATE_ACL_CONFIG (50), DELETE_ACL_CONFIG (51),
 * UPDATE_GLOBAL_WHITE_ADDRS_CONFIG (53) (acl_admin.c). Loop thread. */
void apg_broker_proc_acl_admin(struct apg_broker *b, struct apg_conn *c,
                               const struct apg_rcmd *req);
/* Service thread: reloads the file when it changed. */
void apg_broker_acl_reload(struct apg_broker *b);

#endif

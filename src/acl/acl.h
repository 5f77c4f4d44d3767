/* Plain ACL, compatible with RocketMQ's plain_acl.yml (4.x
 * PlainAccessValidator, 5.x ACL 1.0): who may send which request to the
 * broker or the NameServer (each passes its own code table).
 *
 * A signed request carries the ext fields AccessKey and Signature (and
 * optionally SecurityToken). Signature is Base64(HMAC-SHA1(secretKey,
 * content)), where content is the values (not the keys) of every ext field
 * except Signature, in the order of their keys, as UTF-8, followed by the
 * body bytes (docs/wire.md §14). The broker recomputes it with the account's
 * secretKey; then the request code decides what else is needed: sends need
 * PUB on the topic, pulls SUB on the topic and the group, heartbeats SUB on
 * every group and subscribed topic, and every code that is not one a
 * producer or consumer sends needs an admin account (acl_codes_broker.def).
 * On the NameServer the reads a client needs (routes, cluster and topic
 * lists, KV reads) need a valid signature of any account, and every other
 * code, broker registration included, an admin account (acl_codes_ns.def).
 *
 * An address in globalWhiteRemoteAddresses, or in the account's
 * whiteRemoteAddress, passes without signature or permission checks, as in
 * RocketMQ.
 *
 * The rules live in a file (aclFile, default <storePathRootDir>/conf/
 * plain_acl.yml). apg_acl_reload runs from a periodic job: when the file's
 * mtime, size or inode changed it parses the file and, only if the whole
 * file is valid, swaps the new rules in; a bad file keeps the rules in
 * force and logs why.
 *
 * Threads: apg_acl_check runs on any loop thread, lock-free: it reads the
 * current rule set through an atomic pointer. apg_acl_reload runs on one
 * thread (the broker's service thread, the NameServer's loop thread); a replaced rule set is freed
 * only after a grace period (ACL_RETIRE_MS in acl.c) far longer than any check takes. */
#ifndef APG_ACL_ACL_H
#define APG_ACL_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/err.h"
#include "protocol/rcmd.h"

/* Permission bits, as RocketMQ's Permission. */
#define APG_ACL_DENY 1
#define APG_ACL_ANY 2
#define APG_ACL_PUB 4
#define APG_ACL_SUB 8

/* Why a check refused a request; each has a counter (apg_acl_counts). */
#define APG_ACL_REFUSALS(X)                                                                        \
    X(NO_ACCESS_KEY, "aclRefusedNoAccessKey")                                                      \
    X(UNKNOWN_ACCESS_KEY, "aclRefusedUnknownAccessKey")                                            \
    X(SIGNATURE, "aclRefusedSignature")                                                            \
    X(NEED_ADMIN, "aclRefusedNeedAdmin")                                                           \
    X(NO_PERM, "aclRefusedNoPermission")                                                           \
    X(BAD_REQUEST, "aclRefusedBadRequest")

enum apg_acl_refusal {
    APG_ACL_OK = 0,
#define APG_ACL_R_ENUM(name, key) APG_ACL_R_##name,
    APG_ACL_REFUSALS(APG_ACL_R_ENUM)
#undef APG_ACL_R_ENUM
        APG_ACL_R_N
};

/* ---- rules (acl_file.c, acl_addr.c): pure ----------------------------- */

/* One address pattern: blank (matches nothing), "*" (everything), a list
 * of exact addresses, or an IPv4 range with a low/high bound per octet. */
struct apg_acl_addr {
    uint8_t aa_kind;
    uint8_t aa_lo[4], aa_hi[4];
    uint8_t (*aa_list)[16]; /* exact addresses, IPv4 as ::ffff:a.b.c.d */
    size_t aa_n;
};

/* Parses one whiteRemoteAddress / globalWhiteRemoteAddresses entry. */
apg_err_t apg_acl_addr_parse(const char *s, struct apg_acl_addr *out, char *err, size_t errlen);
void apg_acl_addr_free(struct apg_acl_addr *a);
/* Parses a peer ("ip:port", "[v6]:port" or a bare address) into 16 bytes;
 * false when it is not an address. */
bool apg_acl_peer_parse(const char *peer, uint8_t out[16]);
bool apg_acl_addr_match(const struct apg_acl_addr *a, const uint8_t ip[16]);

struct apg_acl_rules;

/* Parses plain_acl.yml text. Every error names the line, the account and
 * the entry ("line 12: account 'rocketmq2': topicPerms entry 'topicA' is
 * not Resource=PERM"); a secretKey is never quoted. *out is owned (free
 * with apg_acl_rules_free). */
apg_err_t apg_acl_rules_parse(const uint8_t *buf, size_t len, struct apg_acl_rules **out, char *err,
                              size_t errlen);
void apg_acl_rules_free(struct apg_acl_rules *r);
size_t apg_acl_rules_accounts(const struct apg_acl_rules *r);

/* ---- checks (acl_check.c): pure given the rules ------------------------ */

/* Which server's code table decides what a request code needs: the
 * broker's (acl_codes_broker.def) or the NameServer's (acl_codes_ns.def).
 * In both, a code not in the table needs an admin account. */
enum apg_acl_table { APG_ACL_TABLE_BROKER, APG_ACL_TABLE_NAMESRV };

/* Decides req from peer under rules r and table t. APG_ACL_OK, or the refusal with a
 * remark naming the failed check (never a secret). */
enum apg_acl_refusal apg_acl_rules_check(const struct apg_acl_rules *r, enum apg_acl_table t,
                                         const struct apg_rcmd *req, const char *peer, char *remark,
                                         size_t n);

/* A request signed outside the remoting format (the gRPC port's
 * "authorization: MQv2-HMAC-SHA1 ..." header): the account, the raw
 * HMAC-SHA1 it carries over content, and the resources it touches. */
struct apg_acl_need {
    const char *an_name; /* a topic, or a group (an_group); NULL or "" is skipped */
    bool an_group;
    uint8_t an_perm; /* APG_ACL_PUB, APG_ACL_SUB or APG_ACL_ANY */
};
struct apg_acl_mac {
    const char *am_ak;     /* NULL: unsigned */
    const uint8_t *am_mac; /* 20 bytes; NULL when absent or malformed */
    const void *am_content;
    size_t am_content_len;
    const char *am_what; /* the operation, for remarks ("SendMessage") */
    const struct apg_acl_need *am_needs;
    size_t am_n_needs;
};
/* Decides m from peer under r with the same white lists, accounts and
 * permission rules as apg_acl_rules_check. Pure. */
enum apg_acl_refusal apg_acl_rules_check_mac(const struct apg_acl_rules *r, const char *peer,
                                             const struct apg_acl_mac *m, char *remark, size_t n);

/* Computes the Signature of req (its ext fields other than Signature, and
 * body) with secret, as a RocketMQ client does, into out. */
void apg_acl_sign(const struct apg_rcmd *req, const char *secret, char out[32]);

/* True when req carries AccessKey ak and a valid Signature made with sk
 * (compared in constant time). For an account that lives outside the
 * file, such as standalone's in-process hop (namesrv/ns_acl.c). Pure. */
bool apg_acl_signed_by(const struct apg_rcmd *req, const char *ak, const char *sk);

/* ---- the live ACL (acl.c) ---------------------------------------------- */

struct apg_acl;

/* Loads path, to be checked with table t; a missing or bad file is an
 * error (the server does not start). Returns owned. */
struct apg_acl *apg_acl_open(const char *path, enum apg_acl_table t, char *err, size_t errlen);
/* With aclEnable=true in cfg, opens aclFile, or <root>/conf/plain_acl.yml
 * when it is empty, into *out; *out = NULL with aclEnable=false. */
apg_err_t apg_acl_open_config(const struct apg_config *cfg, const char *root, enum apg_acl_table t,
                              struct apg_acl **out, char *err, size_t errlen);
void apg_acl_free(struct apg_acl *acl);
/* Re-reads the file if it changed since the last load; logs the outcome.
 * Returns true when new rules took effect. One thread at a time. */
bool apg_acl_reload(struct apg_acl *acl);
/* Checks req and counts a refusal. Any thread. */
enum apg_acl_refusal apg_acl_check(struct apg_acl *acl, const struct apg_rcmd *req,
                                   const char *peer, char *remark, size_t n);
/* apg_acl_rules_check_mac on the rules in force; counts a refusal. */
enum apg_acl_refusal apg_acl_check_mac(struct apg_acl *acl, const struct apg_acl_mac *m,
                                       const char *peer, char *remark, size_t n);
/* Counters: refusals per cause, reloads done, reloads refused, and when
 * the rules in force were loaded (all 0 for a NULL acl). */
struct apg_acl_counts {
    long long ac_refused[APG_ACL_R_N];
    long long ac_reloads, ac_reload_failures;
    long long ac_loaded_ms; /* wall time the rules in force were loaded */
};
void apg_acl_counts(const struct apg_acl *acl, struct apg_acl_counts *out);
/* Runtime-info key of refusal r ("aclRefusedSignature"). */
const char *apg_acl_refusal_key(enum apg_acl_refusal r);
const char *apg_acl_path(const struct apg_acl *acl);

/* The account of an innerClientAuthenticationCredentials value t (JSON
 * {"accessKey":"...","secretKey":"..."}) into ak and sk; both "" when t is
 * NULL or empty (requests go unsigned). APG_EINVAL with err naming the
 * problem (never the secret) when t is not JSON with two non-empty strings
 * that fit. Pure. */
apg_err_t apg_acl_credentials_parse(const char *t, char *ak, size_t ak_len, char *sk, size_t sk_len,
                                    char *err, size_t errlen);

#endif

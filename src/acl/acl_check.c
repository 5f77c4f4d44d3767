/* The per-request decision of the plain ACL (see acl.h), in RocketMQ's
 * order: a globally white-listed peer passes; otherwise the request must
 * name a known AccessKey; a peer in that account's whiteRemoteAddress
 * passes; otherwise the Signature must match; then an admin-only code
 * needs an admin account, and the topics and groups the code touches
 * (acl_codes_broker.def; the NameServer's acl_codes_ns.def asks for
 * nothing beyond the signature or admin) need the permission, from topicPerms / groupPerms or
 * else the account's default.
 *
 * The signature rule is protocol/sign.h's, shared with the C client. A
 * request with two fields of the same key is refused: Java keeps one of
 * them, and the check must see the same value the processor acts on.
 *
 * Pure given the rules; any thread. */
#include <stdio.h>
#include <string.h>

#include "acl/acl_int.h"
#include "common/json.h"
#include "protocol/rcode.h"
#include "protocol/remoting.h"
#include "protocol/sign.h"

#define TRACE_TOPIC "RMQ_SYS_TRACE_TOPIC"

enum need {
    NEED_ADMIN,
    NEED_SEND,
    NEED_SEND_V2,
    NEED_SENDBACK,
    NEED_PULL,
    NEED_QUERY,
    NEED_HEARTBEAT,
    NEED_GROUP,
    NEED_OFFSET,
    NEED_CLIENT
};

#define APG_ACL_CODE(req, need)                                                                    \
    case APG_REQ_##req:                                                                            \
        return NEED_##need;

static enum need code_need(enum apg_acl_table t, int32_t code)
{
    if (t == APG_ACL_TABLE_NAMESRV) {
        switch (code) {
#include "acl/acl_codes_ns.def"
        default:
            return NEED_ADMIN;
        }
    }
    switch (code) {
#include "acl/acl_codes_broker.def"
    default:
        return NEED_ADMIN;
    }
}
#undef APG_ACL_CODE

void apg_acl_sign(const struct apg_rcmd *req, const char *secret, char out[32])
{
    struct apg_hmac_key key;
    apg_hmac_sha1_key(&key, secret, strlen(secret));
    uint32_t idx[APG_RCMD_MAX_EXT], n = 0;
    if (!apg_sign_fields(req, idx, &n)) {
        out[0] = '\0';
        return;
    }
    apg_sign_mac(&key, req, idx, n, req->body, req->body_len, out);
}

static bool sig_equal(const char *a, const char *b)
{
    size_t n = strlen(a);
    if (strlen(b) != n)
        return false;
    unsigned char d = 0;
    for (size_t i = 0; i < n; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

bool apg_acl_signed_by(const struct apg_rcmd *req, const char *ak, const char *sk)
{
    const char *got_ak = apg_rcmd_ext_get(req, APG_SIGN_ACCESS_KEY);
    const char *got_sig = apg_rcmd_ext_get(req, APG_SIGN_SIGNATURE);
    if (!got_ak || !got_sig || strcmp(got_ak, ak) != 0)
        return false;
    char want[32];
    apg_acl_sign(req, sk, want);
    bool ok = want[0] && sig_equal(want, got_sig);
    memset(want, 0, sizeof(want));
    return ok;
}

static const struct apg_acl_account *account_find(const struct apg_acl_rules *r, const char *ak)
{
    size_t lo = 0, hi = r->ru_nacc;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(r->ru_acc[mid].acc_ak, ak);
        if (c == 0)
            return &r->ru_acc[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* The permission the account owns on name (a topic, or "%RETRY%group"). */
static uint8_t owned_perm(const struct apg_acl_account *acc, const char *name, bool group)
{
    size_t lo = 0, hi = acc->acc_nres;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(acc->acc_res[mid].rs_name, name);
        if (c == 0)
            return acc->acc_res[mid].rs_perm;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return group ? acc->acc_def_group : acc->acc_def_topic;
}

static bool perm_ok(uint8_t need, uint8_t owned)
{
    if (owned & APG_ACL_DENY)
        return false;
    if (need & APG_ACL_ANY)
        return (owned & (APG_ACL_PUB | APG_ACL_SUB)) != 0;
    return (need & owned) != 0;
}

struct ctx {
    const struct apg_acl_account *c_acc;
    const struct apg_rcmd *c_req;
    char *c_remark;
    size_t c_n;
};

/* Checks one resource: a topic, or (group) a consumer group; a topic that
 * is a retry topic counts as its group, as in RocketMQ. NULL names (the
 * field is absent) are skipped: the processor refuses such requests. */
static enum apg_acl_refusal need_res(struct ctx *c, const char *name, bool group, uint8_t perm)
{
    if (!name || !name[0])
        return APG_ACL_OK;
    char buf[400];
    const char *full = name;
    if (group) {
        if (strlen(name) + APG_ACL_RETRY_PREFIX_LEN >= sizeof(buf)) {
            snprintf(c->c_remark, c->c_n, "ACL: group name too long");
            return APG_ACL_R_BAD_REQUEST;
        }
        snprintf(buf, sizeof(buf), "%s%s", APG_ACL_RETRY_PREFIX, name);
        full = buf;
    } else if (strncmp(name, APG_ACL_RETRY_PREFIX, APG_ACL_RETRY_PREFIX_LEN) == 0) {
        group = true;
    }
    const struct apg_acl_account *acc = c->c_acc;
    if (acc->acc_nres == 0 && acc->acc_admin)
        return APG_ACL_OK;
    if (perm_ok(perm, owned_perm(acc, full, group)))
        return APG_ACL_OK;
    snprintf(c->c_remark, c->c_n,
             "ACL: accessKey '%s' has no %s permission on %s '%s' (%s %s, or default%sPerm)",
             acc->acc_ak,
             perm == APG_ACL_PUB   ? "PUB"
             : perm == APG_ACL_ANY ? "PUB or SUB"
                                   : "SUB",
             group ? "group" : "topic", group ? full + APG_ACL_RETRY_PREFIX_LEN : full,
             group ? "groupPerms" : "topicPerms", group ? full + APG_ACL_RETRY_PREFIX_LEN : full,
             group ? "Group" : "Topic");
    return APG_ACL_R_NO_PERM;
}

static const char *ext(const struct apg_rcmd *req, const char *k)
{
    return apg_rcmd_ext_get(req, k);
}

/* A send: PUB on the topic, or SUB on the group for a retry topic. */
static enum apg_acl_refusal need_send(struct ctx *c, const char *topic, const char *group,
                                      bool *trace)
{
    if (topic && strncmp(topic, APG_ACL_RETRY_PREFIX, APG_ACL_RETRY_PREFIX_LEN) == 0)
        return need_res(c, group, true, APG_ACL_SUB);
    if (topic && strcmp(topic, TRACE_TOPIC) == 0) {
        *trace = true;
        return APG_ACL_OK;
    }
    return need_res(c, topic, false, APG_ACL_PUB);
}

static enum apg_acl_refusal need_heartbeat(struct ctx *c)
{
    char err[160];
    const struct apg_rcmd *req = c->c_req;
    json_t *hb = req->body_len
                     ? apg_json_parse((const char *)req->body, req->body_len, err, sizeof(err))
                     : NULL;
    if (!hb) {
        snprintf(c->c_remark, c->c_n, "ACL: the heartbeat body is not HeartbeatData JSON");
        return APG_ACL_R_BAD_REQUEST;
    }
    enum apg_acl_refusal r = APG_ACL_OK;
    size_t i, j;
    json_t *cd, *sd;
    json_array_foreach(json_object_get(hb, "consumerDataSet"), i, cd)
    {
        r = need_res(c, apg_json_get_str(cd, "groupName", NULL), true, APG_ACL_SUB);
        json_array_foreach(json_object_get(cd, "subscriptionDataSet"), j, sd)
        {
            if (r)
                break;
            r = need_res(c, apg_json_get_str(sd, "topic", NULL), false, APG_ACL_SUB);
        }
        if (r)
            break;
    }
    json_decref(hb);
    return r;
}

static void code_text(int32_t code, char *out, size_t n)
{
    const char *name = apg_req_code_name(code);
    snprintf(out, n, "%s%s%d%s", name ? name : "", name ? " (" : "", code, name ? ")" : "");
}

/* The steps every signed request shares: a globally white-listed peer
 * passes (OK, *acc NULL); otherwise ak must name an account (*acc), and a
 * peer in that account's whiteRemoteAddress passes (OK, *acc NULL). OK with
 * *acc set means the signature and permissions are still to check. */
static enum apg_acl_refusal identify(const struct apg_acl_rules *r, const char *peer,
                                     const char *ak, int32_t code, const char *name,
                                     const struct apg_acl_account **acc, char *remark, size_t n)
{
    *acc = NULL;
    /* The peer's address is parsed only when a white list needs it. */
    uint8_t ip[16];
    int have_ip = -1;
    if (r->ru_nglobal) {
        have_ip = apg_acl_peer_parse(peer, ip);
        for (size_t i = 0; have_ip && i < r->ru_nglobal; i++)
            if (apg_acl_addr_match(&r->ru_global[i], ip))
                return APG_ACL_OK;
    }
    char what[96];
    if (!ak) {
        if (name)
            snprintf(what, sizeof(what), "%s", name);
        else
            code_text(code, what, sizeof(what));
        snprintf(remark, n,
                 "ACL: request %s carries no AccessKey; aclEnable=true needs signed requests "
                 "(client accessKey/secretKey)",
                 what);
        return APG_ACL_R_NO_ACCESS_KEY;
    }
    const struct apg_acl_account *a = account_find(r, ak);
    if (!a) {
        snprintf(remark, n, "ACL: accessKey '%.64s' is not an account of plain_acl.yml", ak);
        return APG_ACL_R_UNKNOWN_ACCESS_KEY;
    }
    if (a->acc_white.aa_kind != APG_ACL_ADDR_NONE) {
        if (have_ip < 0)
            have_ip = apg_acl_peer_parse(peer, ip);
        if (have_ip && apg_acl_addr_match(&a->acc_white, ip))
            return APG_ACL_OK;
    }
    *acc = a;
    return APG_ACL_OK;
}

static enum apg_acl_refusal signature_refused(const struct apg_acl_account *acc, bool present,
                                              char *remark, size_t n)
{
    snprintf(remark, n,
             "ACL: signature check failed for accessKey '%s' (%s): wrong secretKey, or the "
             "request was changed after signing",
             acc->acc_ak, present ? "mismatch" : "no Signature field");
    return APG_ACL_R_SIGNATURE;
}

enum apg_acl_refusal apg_acl_rules_check(const struct apg_acl_rules *r, enum apg_acl_table t,
                                         const struct apg_rcmd *req, const char *peer, char *remark,
                                         size_t n)
{
    char what[96];
    const struct apg_acl_account *acc;
    enum apg_acl_refusal who =
        identify(r, peer, ext(req, APG_SIGN_ACCESS_KEY), req->code, NULL, &acc, remark, n);
    if (who != APG_ACL_OK || !acc)
        return who;
    uint32_t idx[APG_RCMD_MAX_EXT], nf = 0;
    if (!apg_sign_fields(req, idx, &nf)) {
        code_text(req->code, what, sizeof(what));
        snprintf(remark, n, "ACL: request %s repeats a header field", what);
        return APG_ACL_R_BAD_REQUEST;
    }
    const char *sig = ext(req, APG_SIGN_SIGNATURE);
    char want[32];
    apg_sign_mac(&acc->acc_key, req, idx, nf, req->body, req->body_len, want);
    if (!sig || !sig_equal(sig, want))
        return signature_refused(acc, sig != NULL, remark, n);
    enum need need = code_need(t, req->code);
    if (need == NEED_ADMIN && !acc->acc_admin) {
        code_text(req->code, what, sizeof(what));
        snprintf(remark, n, "ACL: request %s needs an admin account; accessKey '%s' is not admin",
                 what, acc->acc_ak);
        return APG_ACL_R_NEED_ADMIN;
    }
    struct ctx c = {.c_acc = acc, .c_req = req, .c_remark = remark, .c_n = n};
    enum apg_acl_refusal res = APG_ACL_OK;
    bool trace = false;
    switch (need) {
    case NEED_SEND:
        res = need_send(&c, ext(req, "topic"), ext(req, "group"), &trace);
        break;
    case NEED_SEND_V2:
        res = need_send(&c, ext(req, "b"), ext(req, "a"), &trace);
        break;
    case NEED_SENDBACK:
        res = need_res(&c, ext(req, "group"), true, APG_ACL_SUB);
        break;
    case NEED_PULL:
        res = need_res(&c, ext(req, "topic"), false, APG_ACL_SUB);
        if (!res)
            res = need_res(&c, ext(req, "consumerGroup"), true, APG_ACL_SUB);
        break;
    case NEED_QUERY:
        res = need_res(&c, ext(req, "topic"), false, APG_ACL_SUB);
        break;
    case NEED_HEARTBEAT:
        res = need_heartbeat(&c);
        break;
    case NEED_GROUP:
        res = need_res(&c, ext(req, "consumerGroup"), true, APG_ACL_SUB);
        break;
    case NEED_OFFSET:
        res = need_res(&c, ext(req, "consumerGroup"), true, APG_ACL_SUB);
        if (!res)
            res = need_res(&c, ext(req, "topic"), false, APG_ACL_SUB);
        break;
    default:
        break;
    }
    return res;
}

enum apg_acl_refusal apg_acl_rules_check_mac(const struct apg_acl_rules *r, const char *peer,
                                             const struct apg_acl_mac *m, char *remark, size_t n)
{
    const struct apg_acl_account *acc;
    enum apg_acl_refusal who = identify(r, peer, m->am_ak, 0, m->am_what, &acc, remark, n);
    if (who != APG_ACL_OK || !acc)
        return who;
    if (!m->am_mac)
        return signature_refused(acc, false, remark, n);
    struct apg_sha1 s;
    uint8_t want[APG_SHA1_LEN];
    apg_hmac_sha1_begin(&acc->acc_key, &s);
    apg_sha1_update(&s, m->am_content, m->am_content_len);
    apg_hmac_sha1_final(&acc->acc_key, &s, want);
    unsigned char d = 0;
    for (size_t i = 0; i < APG_SHA1_LEN; i++)
        d |= (unsigned char)(want[i] ^ m->am_mac[i]);
    memset(want, 0, sizeof(want));
    if (d)
        return signature_refused(acc, true, remark, n);
    struct ctx c = {.c_acc = acc, .c_remark = remark, .c_n = n};
    for (size_t i = 0; i < m->am_n_needs; i++) {
        const struct apg_acl_need *nd = &m->am_needs[i];
        enum apg_acl_refusal res = need_res(&c, nd->an_name, nd->an_group, nd->an_perm);
        if (res)
            return res;
    }
    return APG_ACL_OK;
}

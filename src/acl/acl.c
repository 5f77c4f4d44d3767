/* The live ACL: the file, the rule set in force, reloads and counters.
 *
 * Loop threads read the rule set through ac_rules (an atomic pointer) and
 * never lock. apg_acl_reload, on one thread of the server, stats the
 * file (mtime, ctime, size, inode); once a change has stayed the same for
 * one more call (so an editor's truncate-then-write is not read half way)
 * it parses the file and, if it is valid, publishes the new set with one
 * atomic store. A file without accounts and without white addresses
 * (empty, or cut short) is refused like an invalid one: it would refuse
 * every request. The old set goes
 * on a retired list and is freed by a later reload once ACL_RETIRE_MS have
 * passed (a check holds a rule set for microseconds), and by apg_acl_free.
 * A file that is missing or invalid leaves the rules in force and logs one
 * ERROR line naming the problem, again only when the file changes. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "acl/acl_int.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/file.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"

#define ACL_RETIRE_MS 10000

struct retired {
    struct apg_acl_rules *rt_rules;
    int64_t rt_ms;
    struct retired *rt_next;
};

struct file_id {
    struct timespec fi_mtime, fi_ctime;
    off_t fi_size;
    ino_t fi_ino;
    bool fi_exists;
};

struct apg_acl {
    char *ac_path;
    enum apg_acl_table ac_table;
    const char *ac_tag; /* log tag: "acl" (broker) or "namesrv" */
    _Atomic(struct apg_acl_rules *) ac_rules;
    struct file_id ac_seen;    /* the file as last loaded or refused (service thread) */
    struct file_id ac_pending; /* a change seen once, loaded when seen again */
    struct retired *ac_retired;
    atomic_llong ac_refused[APG_ACL_R_N];
    atomic_llong ac_reloads, ac_reload_failures;
    atomic_llong ac_loaded_ms; /* wall time the rules in force were loaded */
};

static const char *const refusal_keys[APG_ACL_R_N] = {[APG_ACL_OK] = "aclAllowed",
#define APG_ACL_R_KEY(name, key) [APG_ACL_R_##name] = key,
                                                      APG_ACL_REFUSALS(APG_ACL_R_KEY)
#undef APG_ACL_R_KEY
};

const char *apg_acl_refusal_key(enum apg_acl_refusal r)
{
    return r < APG_ACL_R_N ? refusal_keys[r] : "aclRefusedUnknown";
}

static void file_id_get(const char *path, struct file_id *id)
{
    struct stat st;
    memset(id, 0, sizeof(*id));
    if (stat(path, &st) != 0)
        return;
    id->fi_exists = true;
    id->fi_mtime = st.st_mtim;
    id->fi_ctime = st.st_ctim;
    id->fi_size = st.st_size;
    id->fi_ino = st.st_ino;
}

static bool file_id_same(const struct file_id *a, const struct file_id *b)
{
    return a->fi_exists == b->fi_exists && a->fi_size == b->fi_size && a->fi_ino == b->fi_ino &&
           a->fi_mtime.tv_sec == b->fi_mtime.tv_sec && a->fi_mtime.tv_nsec == b->fi_mtime.tv_nsec &&
           a->fi_ctime.tv_sec == b->fi_ctime.tv_sec && a->fi_ctime.tv_nsec == b->fi_ctime.tv_nsec;
}

static apg_err_t load(const char *path, struct apg_acl_rules **out, char *err, size_t errlen)
{
    struct apg_buf b = {0};
    char e2[256];
    apg_err_t e = apg_file_read(path, &b, e2, sizeof(e2));
    if (e == APG_ENOTFOUND) {
        apg_buf_free(&b);
        return apg_errf(e, err, errlen,
                        "%s does not exist: aclEnable=true needs it (plain_acl.yml format: "
                        "globalWhiteRemoteAddresses, accounts), or set aclFile",
                        path);
    }
    if (e) {
        apg_buf_free(&b);
        return apg_errf(e, err, errlen, "%s: %s", path, e2);
    }
    e = apg_acl_rules_parse(b.b_data, b.b_len, out, e2, sizeof(e2));
    apg_buf_free(&b);
    if (e)
        return apg_errf(e, err, errlen, "%s: %s", path, e2);
    if (apg_acl_rules_accounts(*out) == 0 && (*out)->ru_nglobal == 0) {
        apg_acl_rules_free(*out);
        *out = NULL;
        return apg_errf(APG_EINVAL, err, errlen,
                        "%s has no accounts and no globalWhiteRemoteAddresses (empty, or "
                        "written only in part?): it would refuse every request",
                        path);
    }
    return APG_OK;
}

struct apg_acl *apg_acl_open(const char *path, enum apg_acl_table t, char *err, size_t errlen)
{
    struct apg_acl *acl = apg_calloc(1, sizeof(*acl));
    if (!acl || !(acl->ac_path = apg_strdup(path))) {
        apg_free(acl);
        apg_errf(APG_ENOMEM, err, errlen, "out of memory");
        return NULL;
    }
    acl->ac_table = t;
    acl->ac_tag = t == APG_ACL_TABLE_NAMESRV ? "namesrv" : "acl";
    file_id_get(path, &acl->ac_seen);
    struct apg_acl_rules *r;
    if (load(path, &r, err, errlen)) {
        apg_acl_free(acl);
        return NULL;
    }
    atomic_store(&acl->ac_rules, r);
    apg_log_info(acl->ac_tag, "ACL on: %zu accounts, %zu global white addresses from %s",
                 apg_acl_rules_accounts(r), r->ru_nglobal, path);
    atomic_store(&acl->ac_loaded_ms, apg_wall_ms());
    return acl;
}

apg_err_t apg_acl_open_config(const struct apg_config *cfg, const char *root, enum apg_acl_table t,
                              struct apg_acl **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!apg_cfg_bool(cfg, APG_CFG_aclEnable))
        return APG_OK;
    const char *f = apg_cfg_str(cfg, APG_CFG_aclFile);
    char path[4200];
    if (f && f[0])
        snprintf(path, sizeof(path), "%s", f);
    else
        snprintf(path, sizeof(path), "%s/conf/plain_acl.yml", root);
    *out = apg_acl_open(path, t, err, errlen);
    return *out ? APG_OK : APG_ECONFIG;
}

static void retired_sweep(struct apg_acl *acl, int64_t now, bool all)
{
    struct retired **pp = &acl->ac_retired;
    while (*pp) {
        struct retired *rt = *pp;
        if (all || now - rt->rt_ms >= ACL_RETIRE_MS) {
            *pp = rt->rt_next;
            apg_acl_rules_free(rt->rt_rules);
            apg_free(rt);
        } else {
            pp = &rt->rt_next;
        }
    }
}

void apg_acl_free(struct apg_acl *acl)
{
    if (!acl)
        return;
    retired_sweep(acl, 0, true);
    apg_acl_rules_free(atomic_load(&acl->ac_rules));
    apg_free(acl->ac_path);
    apg_free(acl);
}

bool apg_acl_reload(struct apg_acl *acl)
{
    int64_t now = apg_mono_ms();
    retired_sweep(acl, now, false);
    struct file_id id;
    file_id_get(acl->ac_path, &id);
    if (file_id_same(&id, &acl->ac_seen))
        return false;
    if (!file_id_same(&id, &acl->ac_pending)) {
        acl->ac_pending = id; /* still being written? look again next time */
        return false;
    }
    acl->ac_seen = id;
    char err[512];
    struct apg_acl_rules *r;
    struct retired *rt = apg_calloc(1, sizeof(*rt));
    if (!rt || load(acl->ac_path, &r, err, sizeof(err))) {
        if (!rt)
            snprintf(err, sizeof(err), "out of memory");
        apg_free(rt);
        atomic_fetch_add(&acl->ac_reload_failures, 1);
        apg_log_error(acl->ac_tag,
                      "ACL file changed but was not loaded, the previous rules stay in "
                      "force: %s",
                      err);
        return false;
    }
    rt->rt_rules = atomic_exchange(&acl->ac_rules, r);
    rt->rt_ms = now;
    rt->rt_next = acl->ac_retired;
    acl->ac_retired = rt;
    atomic_fetch_add(&acl->ac_reloads, 1);
    atomic_store(&acl->ac_loaded_ms, apg_wall_ms());
    apg_log_info(acl->ac_tag, "ACL reloaded: %zu accounts, %zu global white addresses from %s",
                 apg_acl_rules_accounts(r), r->ru_nglobal, acl->ac_path);
    return true;
}

enum apg_acl_refusal apg_acl_check(struct apg_acl *acl, const struct apg_rcmd *req,
                                   const char *peer, char *remark, size_t n)
{
    const struct apg_acl_rules *r = atomic_load_explicit(&acl->ac_rules, memory_order_acquire);
    enum apg_acl_refusal res = apg_acl_rules_check(r, acl->ac_table, req, peer, remark, n);
    if (res != APG_ACL_OK)
        atomic_fetch_add_explicit(&acl->ac_refused[res], 1, memory_order_relaxed);
    return res;
}

enum apg_acl_refusal apg_acl_check_mac(struct apg_acl *acl, const struct apg_acl_mac *m,
                                       const char *peer, char *remark, size_t n)
{
    const struct apg_acl_rules *r = atomic_load_explicit(&acl->ac_rules, memory_order_acquire);
    enum apg_acl_refusal res = apg_acl_rules_check_mac(r, peer, m, remark, n);
    if (res != APG_ACL_OK)
        atomic_fetch_add_explicit(&acl->ac_refused[res], 1, memory_order_relaxed);
    return res;
}

void apg_acl_counts(const struct apg_acl *acl, struct apg_acl_counts *out)
{
    memset(out, 0, sizeof(*out));
    if (!acl)
        return;
    for (int i = 0; i < APG_ACL_R_N; i++)
        out->ac_refused[i] = atomic_load(&acl->ac_refused[i]);
    out->ac_reloads = atomic_load(&acl->ac_reloads);
    out->ac_reload_failures = atomic_load(&acl->ac_reload_failures);
    out->ac_loaded_ms = atomic_load(&acl->ac_loaded_ms);
}

const char *apg_acl_path(const struct apg_acl *acl)
{
    return acl->ac_path;
}

apg_err_t apg_acl_credentials_parse(const char *t, char *ak, size_t ak_len, char *sk, size_t sk_len,
                                    char *err, size_t errlen)
{
    ak[0] = sk[0] = '\0';
    if (!t || !t[0])
        return APG_OK;
    char e2[160];
    json_t *j = apg_json_parse(t, strlen(t), e2, sizeof(e2));
    const char *a = j ? apg_json_get_str(j, "accessKey", NULL) : NULL;
    const char *s = j ? apg_json_get_str(j, "secretKey", NULL) : NULL;
    apg_err_t e = APG_OK;
    if (!a || !a[0] || !s || !s[0] || strlen(a) >= ak_len || strlen(s) >= sk_len)
        e = apg_errf(APG_EINVAL, err, errlen,
                     "innerClientAuthenticationCredentials must be JSON "
                     "{\"accessKey\":\"...\",\"secretKey\":\"...\"} with both keys set%s",
                     j ? "" : " (it is not JSON)");
    else {
        snprintf(ak, ak_len, "%s", a);
        snprintf(sk, sk_len, "%s", s);
    }
    json_decref(j);
    return e;
}

/* plain_acl.yml -> struct apg_acl_rules.
 *
 * The file is YAML (RocketMQ reads it with SnakeYAML), so it is read with
 * libyaml's document loader rather than a hand parser: quoting, comments,
 * flow lists ([a, b]) and block lists all work as in RocketMQ. The walk
 * below then looks at a fixed shape, never deeper than
 * root -> accounts -> account -> topicPerms -> entry:
 *
 *   globalWhiteRemoteAddresses: [pattern, ...]
 *   accounts:
 *     - accessKey: ak            more than 6 characters, unique
 *       secretKey: sk            more than 6 characters
 *       whiteRemoteAddress: pattern
 *       admin: true|false
 *       defaultTopicPerm: PUB|SUB|PUB|SUB|DENY   (absent = DENY)
 *       defaultGroupPerm: ...
 *       topicPerms: [topicA=DENY, topicB=PUB|SUB]
 *       groupPerms: [groupA=SUB]
 *
 * Other keys (dataVersion, ...) are ignored. Like RocketMQ, an unknown
 * permission word counts as DENY; unlike it, a repeated accessKey is an
 * error instead of the last one winning. Any error rejects the whole file;
 * the message names the line and the account but never a secretKey.
 *
 * Aliases may make one list appear many times, so the number of entries
 * built is capped (ACL_MAX_ENTRIES), bounding memory by a constant rather
 * than by the file's expansion. Pure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "acl/acl_int.h"
#include "common/mem.h"

#define ACL_MAX_ENTRIES 1000000
#define ACL_KEY_MIN_LEN 7 /* RocketMQ: accessKey and secretKey longer than 6 */

struct walk {
    yaml_document_t *w_doc;
    size_t w_entries;
    char *w_err;
    size_t w_errlen;
};

static int line_of(const yaml_node_t *n)
{
    return (int)n->start_mark.line + 1;
}

static const char *scalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* A null scalar: empty, "~" or "null" written plainly. */
static bool is_null(const yaml_node_t *n)
{
    if (!n || n->type != YAML_SCALAR_NODE)
        return n == NULL;
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *v = (const char *)n->data.scalar.value;
    return !v[0] || strcmp(v, "~") == 0 || strcasecmp(v, "null") == 0;
}

static yaml_node_t *node(struct walk *w, int idx)
{
    return yaml_document_get_node(w->w_doc, idx);
}

static uint8_t perm_parse(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n == 3 && memcmp(s, "PUB", 3) == 0)
        return APG_ACL_PUB;
    if (n == 3 && memcmp(s, "SUB", 3) == 0)
        return APG_ACL_SUB;
    if (n == 7 && (memcmp(s, "PUB|SUB", 7) == 0 || memcmp(s, "SUB|PUB", 7) == 0))
        return APG_ACL_PUB | APG_ACL_SUB;
    return APG_ACL_DENY;
}

/* A list node (or a null, or a lone scalar taken as a one-item list) of
 * scalars: calls fn for each. */
typedef apg_err_t (*item_fn)(struct walk *w, const yaml_node_t *item, void *ud);

static apg_err_t each_item(struct walk *w, const yaml_node_t *list, const char *what, item_fn fn,
                           void *ud)
{
    if (is_null(list))
        return APG_OK;
    if (list->type == YAML_SCALAR_NODE)
        return fn(w, list, ud);
    if (list->type != YAML_SEQUENCE_NODE)
        return apg_errf(APG_EINVAL, w->w_err, w->w_errlen, "line %d: %s must be a list",
                        line_of(list), what);
    for (yaml_node_item_t *it = list->data.sequence.items.start; it < list->data.sequence.items.top;
         it++) {
        const yaml_node_t *item = node(w, *it);
        if (!item)
            continue;
        if (++w->w_entries > ACL_MAX_ENTRIES)
            return apg_errf(APG_ETOOBIG, w->w_err, w->w_errlen,
                            "line %d: more than %d entries in the file", line_of(item),
                            ACL_MAX_ENTRIES);
        apg_err_t e = fn(w, item, ud);
        if (e)
            return e;
    }
    return APG_OK;
}

struct addr_list {
    struct apg_acl_addr *al_v;
    size_t al_n, al_cap;
};

static apg_err_t add_global(struct walk *w, const yaml_node_t *item, void *ud)
{
    struct addr_list *al = ud;
    const char *s = scalar(item);
    if (!s)
        return apg_errf(APG_EINVAL, w->w_err, w->w_errlen,
                        "line %d: globalWhiteRemoteAddresses entries must be text", line_of(item));
    if (apg_grow((void **)&al->al_v, &al->al_cap, al->al_n + 1, sizeof(*al->al_v), 4))
        return apg_errf(APG_ENOMEM, w->w_err, w->w_errlen, "out of memory");
    char e2[200];
    if (apg_acl_addr_parse(s, &al->al_v[al->al_n], e2, sizeof(e2)))
        return apg_errf(APG_EINVAL, w->w_err, w->w_errlen,
                        "line %d: globalWhiteRemoteAddresses: %s", line_of(item), e2);
    al->al_n++;
    return APG_OK;
}

struct res_ctx {
    struct apg_acl_account *rc_acc;
    size_t rc_cap;
    bool rc_group;
};

static apg_err_t add_res(struct walk *w, const yaml_node_t *item, void *ud)
{
    struct res_ctx *rc = ud;
    struct apg_acl_account *acc = rc->rc_acc;
    const char *what = rc->rc_group ? "groupPerms" : "topicPerms";
    const char *s = scalar(item);
    const char *eq = s ? strchr(s, '=') : NULL;
    /* RocketMQ splits on '=' dropping empty pieces and wants exactly two. */
    if (!s || !eq || eq == s || !eq[1] || strchr(eq + 1, '='))
        return apg_errf(APG_EINVAL, w->w_err, w->w_errlen,
                        "line %d: account '%s': %s entry '%s' is not Resource=PERM (PERM: PUB, "
                        "SUB, PUB|SUB or DENY)",
                        line_of(item), acc->acc_ak, what, s ? s : "(not text)");
    const char *name = s;
    size_t nlen = (size_t)(eq - s);
    while (nlen && (*name == ' ' || *name == '\t')) {
        name++;
        nlen--;
    }
    while (nlen && (name[nlen - 1] == ' ' || name[nlen - 1] == '\t'))
        nlen--;
    if (apg_grow((void **)&acc->acc_res, &rc->rc_cap, acc->acc_nres + 1, sizeof(*acc->acc_res), 8))
        return apg_errf(APG_ENOMEM, w->w_err, w->w_errlen, "out of memory");
    size_t pre = rc->rc_group ? APG_ACL_RETRY_PREFIX_LEN : 0;
    char *full = apg_malloc(pre + nlen + 1);
    if (!full)
        return apg_errf(APG_ENOMEM, w->w_err, w->w_errlen, "out of memory");
    memcpy(full, APG_ACL_RETRY_PREFIX, pre);
    memcpy(full + pre, name, nlen);
    full[pre + nlen] = '\0';
    acc->acc_res[acc->acc_nres].rs_name = full;
    acc->acc_res[acc->acc_nres].rs_perm = perm_parse(eq + 1);
    acc->acc_nres++;
    return APG_OK;
}

static int res_cmp(const void *a, const void *b)
{
    return strcmp(((const struct apg_acl_res *)a)->rs_name,
                  ((const struct apg_acl_res *)b)->rs_name);
}

static int acc_cmp(const void *a, const void *b)
{
    return strcmp(((const struct apg_acl_account *)a)->acc_ak,
                  ((const struct apg_acl_account *)b)->acc_ak);
}

static apg_err_t bool_parse(struct walk *w, const yaml_node_t *v, const char *ak, bool *out)
{
    const char *s = scalar(v);
    if (is_null(v)) {
        *out = false;
        return APG_OK;
    }
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    for (int i = 0; s && i < 3; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return APG_OK;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return APG_OK;
        }
    }
    return apg_errf(APG_EINVAL, w->w_err, w->w_errlen,
                    "line %d: account '%s': admin must be true or false", line_of(v), ak);
}

static void account_free(struct apg_acl_account *acc)
{
    apg_free(acc->acc_ak);
    apg_acl_addr_free(&acc->acc_white);
    for (size_t i = 0; i < acc->acc_nres; i++)
        apg_free(acc->acc_res[i].rs_name);
    apg_free(acc->acc_res);
    memset(acc, 0, sizeof(*acc));
}

/* Builds one account from a mapping node. */
static apg_err_t account_parse(struct walk *w, const yaml_node_t *m, int idx,
                               struct apg_acl_account *acc)
{
    memset(acc, 0, sizeof(*acc));
    acc->acc_def_topic = acc->acc_def_group = APG_ACL_DENY;
    if (m->type != YAML_MAPPING_NODE)
        return apg_errf(APG_EINVAL, w->w_err, w->w_errlen,
                        "line %d: accounts entry %d must be a mapping (accessKey: ..., "
                        "secretKey: ...)",
                        line_of(m), idx + 1);
    const yaml_node_t *ak = NULL, *sk = NULL, *white = NULL, *admin = NULL, *dt = NULL, *dg = NULL,
                      *tp = NULL, *gp = NULL;
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        const char *k = scalar(node(w, p->key));
        const yaml_node_t *v = node(w, p->value);
        if (!k)
            continue;
        if (strcmp(k, "accessKey") == 0)
            ak = v;
        else if (strcmp(k, "secretKey") == 0)
            sk = v;
        else if (strcmp(k, "whiteRemoteAddress") == 0)
            white = v;
        else if (strcmp(k, "admin") == 0)
            admin = v;
        else if (strcmp(k, "defaultTopicPerm") == 0)
            dt = v;
        else if (strcmp(k, "defaultGroupPerm") == 0)
            dg = v;
        else if (strcmp(k, "topicPerms") == 0)
            tp = v;
        else if (strcmp(k, "groupPerms") == 0)
            gp = v;
    }
    const char *aks = scalar(ak), *sks = scalar(sk);
    if (!aks || strlen(aks) < ACL_KEY_MIN_LEN)
        return apg_errf(APG_EINVAL, w->w_err, w->w_errlen,
                        "line %d: accounts entry %d: accessKey must be text of more than 6 "
                        "characters",
                        line_of(ak ? ak : m), idx + 1);
    acc->acc_ak = apg_strdup(aks);
    if (!acc->acc_ak)
        return apg_errf(APG_ENOMEM, w->w_err, w->w_errlen, "out of memory");
    if (!sks || strlen(sks) < ACL_KEY_MIN_LEN)
        return apg_errf(APG_EINVAL, w->w_err, w->w_errlen,
                        "line %d: account '%s': secretKey must be text of more than 6 characters",
                        line_of(sk ? sk : m), aks);
    apg_hmac_sha1_key(&acc->acc_key, sks, strlen(sks));
    if (white && !is_null(white)) {
        char e2[200];
        const char *ws = scalar(white);
        if (!ws)
            return apg_errf(APG_EINVAL, w->w_err, w->w_errlen,
                            "line %d: account '%s': whiteRemoteAddress must be text",
                            line_of(white), aks);
        if (apg_acl_addr_parse(ws, &acc->acc_white, e2, sizeof(e2)))
            return apg_errf(APG_EINVAL, w->w_err, w->w_errlen,
                            "line %d: account '%s': whiteRemoteAddress: %s", line_of(white), aks,
                            e2);
    }
    apg_err_t e = bool_parse(w, admin, aks, &acc->acc_admin);
    if (e)
        return e;
    if (dt && scalar(dt))
        acc->acc_def_topic = perm_parse(scalar(dt));
    if (dg && scalar(dg))
        acc->acc_def_group = perm_parse(scalar(dg));
    struct res_ctx rc = {.rc_acc = acc, .rc_group = false};
    if ((e = each_item(w, tp, "topicPerms", add_res, &rc)))
        return e;
    rc.rc_group = true;
    if ((e = each_item(w, gp, "groupPerms", add_res, &rc)))
        return e;
    if (acc->acc_nres > 1)
        qsort(acc->acc_res, acc->acc_nres, sizeof(*acc->acc_res), res_cmp);
    /* A name listed twice: the later entry wins, as in RocketMQ's map. */
    size_t o = 0;
    for (size_t i = 0; i < acc->acc_nres; i++) {
        if (o && strcmp(acc->acc_res[o - 1].rs_name, acc->acc_res[i].rs_name) == 0) {
            apg_free(acc->acc_res[o - 1].rs_name);
            acc->acc_res[o - 1] = acc->acc_res[i];
        } else {
            acc->acc_res[o++] = acc->acc_res[i];
        }
    }
    acc->acc_nres = o;
    return APG_OK;
}

void apg_acl_rules_free(struct apg_acl_rules *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->ru_nglobal; i++)
        apg_acl_addr_free(&r->ru_global[i]);
    apg_free(r->ru_global);
    for (size_t i = 0; i < r->ru_nacc; i++)
        account_free(&r->ru_acc[i]);
    apg_free(r->ru_acc);
    apg_free(r);
}

size_t apg_acl_rules_accounts(const struct apg_acl_rules *r)
{
    return r ? r->ru_nacc : 0;
}

static apg_err_t rules_build(struct walk *w, struct apg_acl_rules *r)
{
    yaml_node_t *root = yaml_document_get_root_node(w->w_doc);
    if (!root || is_null(root))
        return APG_OK; /* an empty file: no accounts */
    if (root->type != YAML_MAPPING_NODE)
        return apg_errf(APG_EINVAL, w->w_err, w->w_errlen,
                        "line %d: the file must be a mapping with globalWhiteRemoteAddresses "
                        "and accounts",
                        line_of(root));
    const yaml_node_t *global = NULL, *accounts = NULL;
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        const char *k = scalar(node(w, p->key));
        if (k && strcmp(k, "globalWhiteRemoteAddresses") == 0)
            global = node(w, p->value);
        else if (k && strcmp(k, "accounts") == 0)
            accounts = node(w, p->value);
    }
    struct addr_list al = {0};
    apg_err_t e = each_item(w, global, "globalWhiteRemoteAddresses", add_global, &al);
    r->ru_global = al.al_v;
    r->ru_nglobal = al.al_n;
    if (e)
        return e;
    if (is_null(accounts))
        return APG_OK;
    if (accounts->type != YAML_SEQUENCE_NODE)
        return apg_errf(APG_EINVAL, w->w_err, w->w_errlen, "line %d: accounts must be a list",
                        line_of(accounts));
    size_t n = (size_t)(accounts->data.sequence.items.top - accounts->data.sequence.items.start);
    r->ru_acc = apg_calloc(n ? n : 1, sizeof(*r->ru_acc));
    if (!r->ru_acc)
        return apg_errf(APG_ENOMEM, w->w_err, w->w_errlen, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *m = node(w, accounts->data.sequence.items.start[i]);
        if (!m)
            continue;
        if (++w->w_entries > ACL_MAX_ENTRIES)
            return apg_errf(APG_ETOOBIG, w->w_err, w->w_errlen,
                            "line %d: more than %d entries in the file", line_of(m),
                            ACL_MAX_ENTRIES);
        e = account_parse(w, m, (int)i, &r->ru_acc[r->ru_nacc]);
        r->ru_nacc++; /* counted even when half-built, so it is freed */
        if (e)
            return e;
    }
    if (r->ru_nacc > 1)
        qsort(r->ru_acc, r->ru_nacc, sizeof(*r->ru_acc), acc_cmp);
    for (size_t i = 1; i < r->ru_nacc; i++)
        if (strcmp(r->ru_acc[i - 1].acc_ak, r->ru_acc[i].acc_ak) == 0)
            return apg_errf(APG_EINVAL, w->w_err, w->w_errlen,
                            "accessKey '%s' is listed twice; each account needs its own",
                            r->ru_acc[i].acc_ak);
    return APG_OK;
}

apg_err_t apg_acl_rules_parse(const uint8_t *buf, size_t len, struct apg_acl_rules **out, char *err,
                              size_t errlen)
{
    *out = NULL;
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser))
        return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    yaml_parser_set_input_string(&parser, buf, len);
    if (!yaml_parser_load(&parser, &doc)) {
        apg_err_t e =
            apg_errf(APG_EINVAL, err, errlen, "line %d column %d: not valid YAML: %s%s%s",
                     (int)parser.problem_mark.line + 1, (int)parser.problem_mark.column + 1,
                     parser.problem ? parser.problem : "syntax error", parser.context ? " " : "",
                     parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        return e;
    }
    yaml_parser_delete(&parser);
    struct apg_acl_rules *r = apg_calloc(1, sizeof(*r));
    if (!r) {
        yaml_document_delete(&doc);
        return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    }
    struct walk w = {.w_doc = &doc, .w_err = err, .w_errlen = errlen};
    apg_err_t e = rules_build(&w, r);
    yaml_document_delete(&doc);
    if (e) {
        apg_acl_rules_free(r);
        return e;
    }
    *out = r;
    return APG_OK;
}

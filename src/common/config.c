/* Configuration table, .properties parser and command-line flags (see
 * config.h). Values are stored as validated text plus a parsed integer, so
 * printing shows exactly what the user wrote.
 *
 * Legacy spellings: cfg_aliases maps key names older RocketMQ releases used
 * (4.0 to 4.5.1 read the segment sizes as mapedFileSize*, renamed
 * mappedFileSize* in 4.5.2) to the key they set, and RocketMQ's TLS JVM
 * properties (tls.server.mode and friends, docs/wire.md §13) to the tls*
 * keys. A value set through an
 * alias remembers the spelling, and `-p` prints it; when a file or the
 * command line sets both spellings of one key, the later one wins, with a
 * warning.
 *
 * Keys Apogee does not read: config_rmq.def lists RocketMQ's own key names,
 * so a key that is not in config.def is classified (key_kind) as another
 * role's setting, a RocketMQ setting Apogee does not implement, or unknown,
 * and the file loader and the flag parser word it with one function
 * (ignored_msg). A few RocketMQ settings are refused instead of ignored
 * when set to a value whose absence would surprise (cfg_refused: a broker
 * asked for DLedger or controller replication must not quietly run without
 * it).
 *
 * Runtime updates (UPDATE_NAMESRV_CONFIG, UPDATE_BROKER_CONFIG): only keys
 * marked RT in config.def, checked and parsed in full before any is
 * applied; the refusal names the key. RocketMQ's own path keys get a remark
 * saying they name files (the request shape of CVE-2023-37582 sets
 * configStorePath); nothing here writes a file. */
#include "common/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/mem.h"

enum { T_I, T_B, T_S, T_E };
enum {
    NS = APG_ROLE_NAMESRV,
    BR = APG_ROLE_BROKER,
    SA = APG_ROLE_STANDALONE,
    PX = APG_ROLE_PROXY,
    RT = 16
};

struct cfg_def {
    const char *name;
    int type;
    unsigned scope;
    const char *def;
    int64_t lo, hi;
    const char *choices;
    const char *help;
};

static const struct cfg_def cfg_defs[APG_CFG__COUNT] = {
#define I T_I
#define B T_B
#define S T_S
#define E T_E
#define APG_CFG(name, type, scope, def, lo, hi, choices, help)                                     \
    {#name, type, scope, def, lo, hi, choices, help},
#include "common/config.def"
#undef APG_CFG
#undef I
#undef B
#undef S
#undef E
};

/* Other spellings accepted for a key (see the top of this file). */
static const struct cfg_alias {
    const char *alias;
    enum apg_cfg_id id;
} cfg_aliases[] = {
    {"mapedFileSizeCommitLog", APG_CFG_mappedFileSizeCommitLog},
    {"mapedFileSizeConsumeQueue", APG_CFG_mappedFileSizeConsumeQueue},
    {"tls.server.mode", APG_CFG_tlsServerMode},
    {"tls.server.certPath", APG_CFG_tlsServerCertPath},
    {"tls.server.keyPath", APG_CFG_tlsServerKeyPath},
    {"tls.server.trustCertPath", APG_CFG_tlsServerTrustCertPath},
    {"tls.server.need.client.auth", APG_CFG_tlsServerNeedClientAuth},
    {"tls.enable", APG_CFG_tlsEnable},
    {"tls.client.certPath", APG_CFG_tlsClientCertPath},
    {"tls.client.keyPath", APG_CFG_tlsClientKeyPath},
    {"tls.client.trustCertPath", APG_CFG_tlsClientTrustCertPath},
    {"tls.client.authServer", APG_CFG_tlsClientAuthServer},
};

/* RocketMQ's key names (config_rmq.def), sorted for bsearch. */
static const char *const rmq_keys[] = {
#define APG_RMQ_KEY(name) #name,
#include "common/config_rmq.def"
#undef APG_RMQ_KEY
};

/* Settings whose value, when it differs from the harmless one, asks for
 * something Apogee does not do (replication): refused rather than ignored
 * or half done: RocketMQ keys Apogee does not implement. brokerId against
 * brokerRole is checked once every key is read (check_role). */
static const struct cfg_refused {
    const char *name;
    const char *harmless; /* compared case-insensitively */
    const char *why;
} cfg_refused[] = {
    {"enableDLegerCommitLog", "false",
     "Apogee has no DLedger commit log; refusing to run a broker that would not replicate "
     "as this setting asks"},
    {"enableControllerMode", "false",
     "Apogee has no controller-based failover; refusing to run a broker that would not "
     "replicate as this setting asks"},
};

/* RocketMQ keys that name files or directories: an update naming one is
 * refused with a remark that says so (they are not Apogee keys either). */
/* Keys that locate or run code or data without saying so in their name,
 * among them the ones RocketMQ's fixes of CVE-2023-33246 and CVE-2023-37582
 * black-list. Never taken from an UPDATE_*_CONFIG body. */
static const char *const rmq_path_keys[] = {
    "configStorePath",  "rocketmqHome",          "configBlackList", "productEnvName",
    "brokerConfigPath", "storePathConsumeQueue", "storePathIndex",  "storeCheckpoint",
    "abortFile",        "filterServerNums",      "namesrvAddr",     "kvConfigPath",
};

struct cfg_val {
    char *text;
    int64_t num;
    enum apg_cfg_source src;
    const char *spelling; /* the key name that set it: the canonical one or an alias */
};

struct apg_config {
    enum apg_role cfg_role;
    const char *cfg_port_key; /* static string */
    struct cfg_val cfg_vals[APG_CFG__COUNT];
};

static const char *src_names[] = {"default", "role default", "file", "command line",
                                  "runtime update"};

static bool in_scope(const struct cfg_def *d, enum apg_role role)
{
    if (role == APG_ROLE_STANDALONE)
        return (d->scope & (BR | SA)) != 0;
    return (d->scope & role) != 0;
}

/* The index of key (a key name or a legacy alias of one), or -1; *spelling
 * (when not NULL) is set to the static name that matched. */
static int find_key_as(const char *key, const char **spelling)
{
    for (int i = 0; i < APG_CFG__COUNT; i++)
        if (strcmp(cfg_defs[i].name, key) == 0) {
            if (spelling)
                *spelling = cfg_defs[i].name;
            return i;
        }
    for (size_t a = 0; a < sizeof(cfg_aliases) / sizeof(cfg_aliases[0]); a++)
        if (strcmp(cfg_aliases[a].alias, key) == 0) {
            if (spelling)
                *spelling = cfg_aliases[a].alias;
            return (int)cfg_aliases[a].id;
        }
    return -1;
}

static int find_key(const char *key)
{
    return find_key_as(key, NULL);
}

enum key_kind { KEY_OK, KEY_OTHER_ROLE, KEY_RMQ_ONLY, KEY_UNKNOWN };

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool is_rmq_key(const char *key)
{
    return bsearch(&key, rmq_keys, sizeof(rmq_keys) / sizeof(rmq_keys[0]), sizeof(rmq_keys[0]),
                   cmp_name) != NULL;
}

static enum key_kind key_kind(const struct apg_config *cfg, const char *key)
{
    int i = find_key(key);
    if (i >= 0)
        return in_scope(&cfg_defs[i], cfg->cfg_role) ? KEY_OK : KEY_OTHER_ROLE;
    return is_rmq_key(key) ? KEY_RMQ_ONLY : KEY_UNKNOWN;
}

static const char *role_command(enum apg_role role)
{
    return role == APG_ROLE_NAMESRV  ? "apogee namesrv"
           : role == APG_ROLE_BROKER ? "apogee broker"
           : role == APG_ROLE_PROXY  ? "apogee proxy"
                                     : "apogee standalone";
}

/* Copies key into out for a message, at most 64 bytes, with anything but
 * printable ASCII shown as '?' (an update body can carry any bytes). */
static const char *printable_key(const char *key, char *out, size_t n)
{
    size_t k = 0;
    for (; key[k] && k < n - 1 && k < 64; k++)
        out[k] = key[k] > 0x20 && key[k] < 0x7f ? key[k] : '?';
    out[k] = 0;
    if (key[k] && k >= 3)
        memcpy(out + k - 3, "...", 3);
    return out;
}

/* The one wording of "Apogee does not read this key", for the command line
 * and files alike; also the message apg_config_set returns. */
static void ignored_msg(const struct apg_config *cfg, const char *key, enum key_kind kind,
                        char *out, size_t n)
{
    char pk[72];
    printable_key(key, pk, sizeof(pk));
    if (kind == KEY_OTHER_ROLE) {
        unsigned scope = cfg_defs[find_key(key)].scope;
        snprintf(out, n, "config key '%s' is a %s setting; `%s` does not use it (ignored)", pk,
                 scope & NS   ? "NameServer"
                 : scope & BR ? "broker"
                              : "standalone",
                 role_command(cfg->cfg_role));
    } else if (kind == KEY_RMQ_ONLY) {
        snprintf(out, n,
                 "config key '%s' is a RocketMQ setting Apogee does not implement (ignored)", pk);
    } else {
        snprintf(out, n, "unknown config key '%s': neither an Apogee nor a RocketMQ setting", pk);
    }
}

static const struct cfg_refused *refused_setting(const char *key, const char *value)
{
    for (size_t r = 0; r < sizeof(cfg_refused) / sizeof(cfg_refused[0]); r++) {
        if (strcmp(cfg_refused[r].name, key) != 0)
            continue;
        while (isspace((unsigned char)*value))
            value++;
        /* harmless is one value or several separated by '|'. */
        for (const char *h = cfg_refused[r].harmless; *h;) {
            size_t n = strcspn(h, "|");
            if (strncasecmp(value, h, n) == 0 &&
                (value[n] == 0 || isspace((unsigned char)value[n])))
                return NULL;
            h += n + (h[n] == '|');
        }
        return &cfg_refused[r];
    }
    return NULL;
}

static bool choice_ok(const char *choices, const char *v)
{
    size_t n = strlen(v);
    const char *p = choices;
    while (p && *p) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, v, n) == 0)
            return true;
        p = bar ? bar + 1 : NULL;
    }
    return false;
}

/* Validates value for key i; on success *text_out (owned) is the trimmed
 * text and *num_out its number (integers, booleans). */
static apg_err_t parse_value(int i, const char *value, char **text_out, int64_t *num_out, char *err,
                             size_t errlen)
{
    const struct cfg_def *d = &cfg_defs[i];
    int64_t num = 0;
    char tmp[64];
    /* Trim surrounding blanks: properties files often carry trailing spaces. */
    while (isspace((unsigned char)*value))
        value++;
    size_t vlen = strlen(value);
    while (vlen && isspace((unsigned char)value[vlen - 1]))
        vlen--;
    char *text = apg_strndup(value, vlen);
    if (!text)
        return APG_ENOMEM;

    switch (d->type) {
    case T_I: {
        char *end;
        errno = 0;
        long long v = strtoll(text, &end, 10);
        if (vlen == 0 || *end || errno) {
            apg_free(text);
            return apg_errf(APG_ECONFIG, err, errlen,
                            "config %s=%s: not an integer; give a whole number from %lld to %lld",
                            d->name, value, (long long)d->lo, (long long)d->hi);
        }
        if (v < d->lo || v > d->hi) {
            apg_free(text);
            return apg_errf(APG_ECONFIG, err, errlen,
                            "config %s=%lld: out of range; allowed %lld..%lld", d->name, v,
                            (long long)d->lo, (long long)d->hi);
        }
        num = v;
        break;
    }
    case T_B:
        for (size_t k = 0; k < vlen && k < sizeof(tmp) - 1; k++)
            tmp[k] = (char)tolower((unsigned char)text[k]);
        tmp[vlen < sizeof(tmp) - 1 ? vlen : sizeof(tmp) - 1] = 0;
        if (strcmp(tmp, "true") == 0)
            num = 1;
        else if (strcmp(tmp, "false") == 0)
            num = 0;
        else {
            apg_free(text);
            return apg_errf(APG_ECONFIG, err, errlen, "config %s=%s: expected true or false",
                            d->name, value);
        }
        break;
    case T_E:
        if (!choice_ok(d->choices, text)) {
            apg_free(text);
            return apg_errf(APG_ECONFIG, err, errlen, "config %s=%s: expected one of %s", d->name,
                            value, d->choices);
        }
        break;
    default:
        break;
    }
    *text_out = text;
    *num_out = num;
    return APG_OK;
}

static void store_value(struct apg_config *cfg, int i, char *text, int64_t num,
                        enum apg_cfg_source src)
{
    apg_free(cfg->cfg_vals[i].text);
    cfg->cfg_vals[i].text = text;
    cfg->cfg_vals[i].num = num;
    cfg->cfg_vals[i].src = src;
    cfg->cfg_vals[i].spelling = cfg_defs[i].name;
}

static apg_err_t set_idx(struct apg_config *cfg, int i, const char *value, enum apg_cfg_source src,
                         char *err, size_t errlen)
{
    char *text;
    int64_t num;
    apg_err_t rc = parse_value(i, value, &text, &num, err, errlen);
    if (rc)
        return rc;
    store_value(cfg, i, text, num, src);
    return APG_OK;
}

struct apg_config *apg_config_new(enum apg_role role)
{
    struct apg_config *cfg = apg_calloc(1, sizeof(*cfg));
    if (!cfg)
        return NULL;
    cfg->cfg_role = role;
    cfg->cfg_port_key = "listenPort";
    char err[256];
    for (int i = 0; i < APG_CFG__COUNT; i++) {
        if (set_idx(cfg, i, cfg_defs[i].def, APG_CFG_SRC_DEFAULT, err, sizeof(err))) {
            /* A bad default is a programming error in config.def. */
            apg_log_error("config", "%s", err);
            apg_config_free(cfg);
            return NULL;
        }
    }
    /* Standalone is what a new user runs: only this host reaches it unless
     * bindAddress says otherwise. */
    if (role == APG_ROLE_STANDALONE)
        set_idx(cfg, APG_CFG_bindAddress, "127.0.0.1", APG_CFG_SRC_ROLE, err, sizeof(err));
    if (role == APG_ROLE_NAMESRV) {
        set_idx(cfg, APG_CFG_listenPort, "9876", APG_CFG_SRC_ROLE, err, sizeof(err));
        set_idx(cfg, APG_CFG_serverSelectorThreads, "1", APG_CFG_SRC_ROLE, err, sizeof(err));
    }
    return cfg;
}

void apg_config_free(struct apg_config *cfg)
{
    if (!cfg)
        return;
    for (int i = 0; i < APG_CFG__COUNT; i++)
        apg_free(cfg->cfg_vals[i].text);
    apg_free(cfg);
}

struct apg_config *apg_config_dup(const struct apg_config *cfg)
{
    struct apg_config *c = apg_calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    *c = *cfg;
    for (int i = 0; i < APG_CFG__COUNT; i++) {
        c->cfg_vals[i].text = apg_strndup(cfg->cfg_vals[i].text, strlen(cfg->cfg_vals[i].text));
        if (!c->cfg_vals[i].text) {
            for (int k = 0; k < i; k++)
                apg_free(c->cfg_vals[k].text);
            apg_free(c);
            return NULL;
        }
    }
    return c;
}

apg_err_t apg_config_set(struct apg_config *cfg, const char *key, const char *value,
                         enum apg_cfg_source src, char *err, size_t errlen)
{
    const char *spelling;
    int i = find_key_as(key, &spelling);
    const struct cfg_refused *refused = refused_setting(key, value);
    if (refused)
        return apg_errf(APG_ECONFIG, err, errlen, "config %s=%s: %s", key, value, refused->why);
    enum key_kind kind = key_kind(cfg, key);
    if (kind != KEY_OK) {
        ignored_msg(cfg, key, kind, err, errlen);
        return APG_ENOTFOUND;
    }
    struct cfg_val *v = &cfg->cfg_vals[i];
    enum apg_cfg_source old_src = v->src;
    const char *old_spelling = v->spelling;
    apg_err_t rc = set_idx(cfg, i, value, src, err, errlen);
    if (rc)
        return rc;
    v->spelling = spelling;
    if (old_src == src && src >= APG_CFG_SRC_FILE && old_spelling != spelling)
        apg_log_warn("config", "both %s and %s set %s; using the later %s=%s", old_spelling,
                     spelling, cfg_defs[i].name, spelling, v->text);
    return APG_OK;
}

/* ---- .properties ---- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static void put_utf8(struct apg_buf *b, unsigned cp)
{
    uint8_t t[4];
    size_t n;
    if (cp < 0x80) {
        t[0] = (uint8_t)cp;
        n = 1;
    } else if (cp < 0x800) {
        t[0] = 0xC0 | (cp >> 6);
        t[1] = 0x80 | (cp & 0x3F);
        n = 2;
    } else {
        t[0] = 0xE0 | (cp >> 12);
        t[1] = 0x80 | ((cp >> 6) & 0x3F);
        t[2] = 0x80 | (cp & 0x3F);
        n = 3;
    }
    apg_buf_append(b, t, n);
}

apg_err_t apg_properties_parse(const char *text, size_t len,
                               void (*fn)(const char *key, const char *value, void *ud), void *ud)
{
    struct apg_buf key = APG_BUF_INIT, val = APG_BUF_INIT;
    size_t i = 0;
    apg_err_t rc = APG_OK;
    while (i < len) {
        /* Skip leading blanks of a natural line. */
        while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\f'))
            i++;
        if (i >= len)
            break;
        if (text[i] == '\n' || text[i] == '\r') {
            i++;
            continue;
        }
        if (text[i] == '#' || text[i] == '!') {
            while (i < len && text[i] != '\n' && text[i] != '\r')
                i++;
            continue;
        }
        apg_buf_reset(&key);
        apg_buf_reset(&val);
        struct apg_buf *cur = &key;
        bool sep_seen = false, in_sep = false;
        while (i < len && text[i] != '\n' && text[i] != '\r') {
            char c = text[i++];
            if (c == '\\' && i < len) {
                char e = text[i++];
                if (e == '\n' || e == '\r') {
                    /* Continuation: skip the line break and the next line's leading blanks. */
                    if (e == '\r' && i < len && text[i] == '\n')
                        i++;
                    while (i < len && (text[i] == ' ' || text[i] == '\t'))
                        i++;
                    continue;
                }
                in_sep = false;
                switch (e) {
                case 't':
                    apg_buf_append(cur, "\t", 1);
                    break;
                case 'n':
                    apg_buf_append(cur, "\n", 1);
                    break;
                case 'r':
                    apg_buf_append(cur, "\r", 1);
                    break;
                case 'f':
                    apg_buf_append(cur, "\f", 1);
                    break;
                case 'u': {
                    unsigned cp = 0;
                    int k;
                    for (k = 0; k < 4 && i < len && hexval(text[i]) >= 0; k++)
                        cp = cp * 16 + (unsigned)hexval(text[i++]);
                    if (k != 4) {
                        rc = APG_EINVAL;
                        goto out;
                    }
                    put_utf8(cur, cp);
                    break;
                }
                default:
                    apg_buf_append(cur, &e, 1);
                }
                continue;
            }
            if (!sep_seen && (c == '=' || c == ':' || c == ' ' || c == '\t' || c == '\f')) {
                sep_seen = true;
                in_sep = true;
                cur = &val;
                /* Blanks around the separator belong to neither side. */
                while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\f'))
                    i++;
                if (c != '=' && c != ':' && i < len && (text[i] == '=' || text[i] == ':')) {
                    i++;
                    while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\f'))
                        i++;
                }
                continue;
            }
            (void)in_sep;
            apg_buf_append(cur, &c, 1);
        }
        apg_buf_append(&key, "", 1);
        apg_buf_append(&val, "", 1);
        if (!key.b_data || !val.b_data) {
            rc = APG_ENOMEM;
            goto out;
        }
        fn((char *)key.b_data, (char *)val.b_data, ud);
    }
out:
    apg_buf_free(&key);
    apg_buf_free(&val);
    return rc;
}

struct load_ctx {
    struct apg_config *cfg;
    const char *path;
    apg_err_t rc;
    char *err;
    size_t errlen;
};

static void load_one(const char *key, const char *value, void *ud)
{
    struct load_ctx *lc = ud;
    char msg[512];
    if (lc->rc)
        return;
    apg_err_t rc = apg_config_set(lc->cfg, key, value, APG_CFG_SRC_FILE, msg, sizeof(msg));
    if (rc == APG_ENOTFOUND)
        apg_log_warn("config", "%s: %s%s", lc->path, msg,
                     key_kind(lc->cfg, key) == KEY_UNKNOWN ? " (ignored)" : "");
    else if (rc) {
        lc->rc = rc;
        apg_errf(rc, lc->err, lc->errlen, "%s: %s", lc->path, msg);
    }
}

apg_err_t apg_config_load_file(struct apg_config *cfg, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return apg_errf(APG_ECONFIG, err, errlen, "cannot open config file %s: %s", path,
                        strerror(errno));
    struct apg_buf b = APG_BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (apg_buf_append(&b, chunk, n)) {
            fclose(f);
            apg_buf_free(&b);
            return APG_ENOMEM;
        }
    }
    fclose(f);
    struct load_ctx lc = {cfg, path, APG_OK, err, errlen};
    apg_err_t rc = apg_properties_parse((char *)b.b_data, b.b_len, load_one, &lc);
    apg_buf_free(&b);
    if (rc)
        return apg_errf(APG_ECONFIG, err, errlen, "%s: malformed properties file (bad \\u escape)",
                        path);
    return lc.rc;
}

/* One --key=value: a key Apogee does not read but knows (another role's,
 * RocketMQ's) is ignored with the warning a file gets; an unknown one is an
 * error, since on the command line it is most likely a typo. */
static apg_err_t set_flag(struct apg_config *cfg, const char *key, const char *value, char *err,
                          size_t errlen)
{
    char msg[512];
    apg_err_t rc = apg_config_set(cfg, key, value, APG_CFG_SRC_ARG, msg, sizeof(msg));
    if (rc == APG_ENOTFOUND && key_kind(cfg, key) != KEY_UNKNOWN) {
        apg_log_warn("config", "command line: %s", msg);
        return APG_OK;
    }
    if (rc == APG_ENOTFOUND)
        return apg_errf(APG_ECONFIG, err, errlen, "%s; see `%s --help-config` for the keys", msg,
                        role_command(cfg->cfg_role));
    if (rc)
        return apg_errf(rc, err, errlen, "%s", msg);
    return APG_OK;
}

/* brokerRole against brokerId, as RocketMQ's BrokerStartup decides: a
 * slave needs an id above 0; a master always registers as 0 (RocketMQ sets
 * it so whatever the file says; here with a warning). `apogee standalone`
 * is one master. */
static apg_err_t check_role(struct apg_config *cfg, char *err, size_t errlen)
{
    if (!(cfg->cfg_role & (APG_ROLE_BROKER | APG_ROLE_STANDALONE)))
        return APG_OK;
    bool slave = strcmp(apg_cfg_str(cfg, APG_CFG_brokerRole), "SLAVE") == 0;
    int64_t id = apg_cfg_int(cfg, APG_CFG_brokerId);
    if (slave && cfg->cfg_role == APG_ROLE_STANDALONE)
        return apg_errf(APG_ECONFIG, err, errlen,
                        "brokerRole=SLAVE: `apogee standalone` runs one master; start a slave "
                        "with `apogee broker -c slave.conf` (brokerRole=SLAVE, brokerId=1, the "
                        "master's brokerName)");
    if (slave && id <= 0)
        return apg_errf(APG_ECONFIG, err, errlen,
                        "brokerRole=SLAVE needs brokerId > 0 (0 is the master's id): set "
                        "brokerId=1 for the first slave of brokerName=%s",
                        apg_cfg_str(cfg, APG_CFG_brokerName));
    if (!slave && id != 0) {
        apg_log_warn("config",
                     "brokerId=%lld with brokerRole=%s: a master registers as brokerId 0, as "
                     "RocketMQ does; set brokerRole=SLAVE to run this broker as a slave",
                     (long long)id, apg_cfg_str(cfg, APG_CFG_brokerRole));
        return set_idx(cfg, APG_CFG_brokerId, "0", cfg->cfg_vals[APG_CFG_brokerId].src, err,
                       errlen);
    }
    return APG_OK;
}

apg_err_t apg_config_parse_args(struct apg_config *cfg, int argc, char **argv, bool *print_only,
                                char *err, size_t errlen)
{
    *print_only = false;
    /* Pass 1: the config file, so that flags override it. */
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--configFile") == 0) {
            if (i + 1 >= argc)
                return apg_errf(APG_ECONFIG, err, errlen, "%s needs a file name", argv[i]);
            apg_err_t rc = apg_config_load_file(cfg, argv[++i], err, errlen);
            if (rc)
                return rc;
        } else if (strncmp(argv[i], "--configFile=", 13) == 0) {
            apg_err_t rc = apg_config_load_file(cfg, argv[i] + 13, err, errlen);
            if (rc)
                return rc;
        }
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-c") == 0 || strcmp(a, "--configFile") == 0) {
            i++;
            continue;
        }
        if (strncmp(a, "--configFile=", 13) == 0)
            continue;
        if (strcmp(a, "-p") == 0 || strcmp(a, "--printConfigItem") == 0) {
            *print_only = true;
            continue;
        }
        if (strcmp(a, "-n") == 0) {
            if (i + 1 >= argc)
                return apg_errf(APG_ECONFIG, err, errlen, "-n needs an address list host:port;...");
            apg_err_t rc = set_flag(cfg, "namesrvAddr", argv[++i], err, errlen);
            if (rc)
                return rc;
            continue;
        }
        if (strncmp(a, "--", 2) == 0 && a[2]) {
            const char *eq = strchr(a + 2, '=');
            char key[128];
            const char *value;
            if (eq) {
                size_t kl = (size_t)(eq - (a + 2));
                if (kl >= sizeof(key))
                    return apg_errf(APG_ECONFIG, err, errlen, "option too long: %s", a);
                memcpy(key, a + 2, kl);
                key[kl] = 0;
                value = eq + 1;
            } else {
                snprintf(key, sizeof(key), "%s", a + 2);
                int k = find_key(key);
                /* A boolean (or a key Apogee does not read, whose type it
                 * does not know) followed by another option is "true";
                 * it never swallows the option after it. */
                bool next_is_opt = i + 1 >= argc || argv[i + 1][0] == '-';
                if ((k < 0 || cfg_defs[k].type == T_B) && next_is_opt)
                    value = "true";
                else if (i + 1 < argc)
                    value = argv[++i];
                else
                    return apg_errf(APG_ECONFIG, err, errlen, "--%s needs a value (--%s=VALUE)",
                                    key, key);
            }
            apg_err_t rc = set_flag(cfg, key, value, err, errlen);
            if (rc)
                return rc;
            continue;
        }
        return apg_errf(APG_ECONFIG, err, errlen,
                        "unexpected argument '%s'; use -c FILE, -n ADDR, -p or --key=value", a);
    }
    return check_role(cfg, err, errlen);
}

int64_t apg_cfg_int(const struct apg_config *cfg, enum apg_cfg_id id)
{
    return cfg->cfg_vals[id].num;
}

bool apg_cfg_bool(const struct apg_config *cfg, enum apg_cfg_id id)
{
    return cfg->cfg_vals[id].num != 0;
}

const char *apg_cfg_str(const struct apg_config *cfg, enum apg_cfg_id id)
{
    return cfg->cfg_vals[id].text;
}

enum apg_role apg_config_role(const struct apg_config *cfg)
{
    return cfg->cfg_role;
}

/* The value as printed and answered over the wire: a secret shows as
 * "******" (never echoed by GET_*_CONFIG, -p or a log). */
static const char *shown_value(const struct apg_config *cfg, int i)
{
    const char *t = cfg->cfg_vals[i].text;
    return i == APG_CFG_innerClientAuthenticationCredentials && t[0] ? "******" : t;
}

void apg_config_print(const struct apg_config *cfg, FILE *out)
{
    for (int i = 0; i < APG_CFG__COUNT; i++) {
        if (!in_scope(&cfg_defs[i], cfg->cfg_role))
            continue;
        const struct cfg_val *v = &cfg->cfg_vals[i];
        if (v->spelling != cfg_defs[i].name)
            fprintf(out, "%s=%s  # %s, as %s\n", cfg_defs[i].name, shown_value(cfg, i),
                    src_names[v->src], v->spelling);
        else
            fprintf(out, "%s=%s  # %s\n", cfg_defs[i].name, shown_value(cfg, i), src_names[v->src]);
    }
}

void apg_config_print_help(enum apg_role role, FILE *out)
{
    for (int i = 0; i < APG_CFG__COUNT; i++) {
        const struct cfg_def *d = &cfg_defs[i];
        if (!in_scope(d, role))
            continue;
        fprintf(out, "  --%s=%s\n      %s", d->name, d->def, d->help);
        if (d->type == T_E)
            fprintf(out, " [%s]", d->choices);
        fprintf(out, "\n");
    }
}

/* ---- runtime updates ---- */

bool apg_config_runtime_key_allowed(const char *name)
{
    int i = find_key(name);
    return i >= 0 && (cfg_defs[i].scope & RT);
}

bool apg_config_runtime_id(const struct apg_config *cfg, enum apg_cfg_id id)
{
    return (unsigned)id < APG_CFG__COUNT && (cfg_defs[id].scope & RT) &&
           in_scope(&cfg_defs[id], cfg->cfg_role);
}

/* True when key names something that locates or runs code or data: one
 * of rmq_path_keys, or a name with a path, directory, home, command,
 * shell, script, class or plugin in it, whatever the case ("file" is not
 * enough: fileReservedTime and mappedFileSize* are numbers). */
static bool names_a_path(const char *key)
{
    for (size_t k = 0; k < sizeof(rmq_path_keys) / sizeof(rmq_path_keys[0]); k++)
        if (strcasecmp(rmq_path_keys[k], key) == 0)
            return true;
    static const char *const parts[] = {"path",  "dir",    "home",   "class",  "cmd",
                                        "shell", "script", "plugin", "command"};
    char low[256];
    size_t n = 0;
    for (; key[n] && n + 1 < sizeof(low); n++)
        low[n] = (char)((key[n] >= 'A' && key[n] <= 'Z') ? key[n] + 32 : key[n]);
    low[n] = 0;
    for (size_t k = 0; k < sizeof(parts) / sizeof(parts[0]); k++)
        if (strstr(low, parts[k]))
            return true;
    return false;
}

struct upd_ctx {
    struct apg_config *uc_cfg;
    bool uc_apply; /* pass 1 checks everything, pass 2 stores */
    int uc_changed;
    apg_err_t uc_rc;
    char *uc_err;
    size_t uc_errlen;
};

static void upd_one(const char *key, const char *value, void *ud)
{
    struct upd_ctx *u = ud;
    if (u->uc_rc)
        return;
    char pk[72], msg[400];
    printable_key(key, pk, sizeof(pk));
    int i = find_key(key);
    const char *why = NULL;
    if (names_a_path(key))
        why = "names a file, directory, command, class or server location, which is never "
              "taken from a request";
    else if (i < 0)
        why = is_rmq_key(key) ? "is a RocketMQ setting Apogee does not implement"
                              : "is not a configuration key";
    else if (!in_scope(&cfg_defs[i], u->uc_cfg->cfg_role))
        why = cfg_defs[i].scope & NS ? "is a NameServer setting, not one of this server's"
                                     : "is a broker setting, not one of this server's";
    else if (!(cfg_defs[i].scope & RT))
        why = "is read only at start-up: change it in the configuration file and restart";
    if (why) {
        u->uc_rc = apg_errf(APG_EPERM, u->uc_err, u->uc_errlen,
                            "config key '%s' %s; nothing was changed", pk, why);
        return;
    }
    char *text;
    int64_t num;
    if (parse_value(i, value, &text, &num, msg, sizeof(msg))) {
        u->uc_rc = apg_errf(APG_ECONFIG, u->uc_err, u->uc_errlen, "%s; nothing was changed", msg);
        return;
    }
    if (!u->uc_apply) {
        apg_free(text);
        return;
    }
    store_value(u->uc_cfg, i, text, num, APG_CFG_SRC_RUNTIME);
    u->uc_changed++;
}

apg_err_t apg_config_update_runtime(struct apg_config *cfg, const char *text, size_t len,
                                    int *changed, char *err, size_t errlen)
{
    struct upd_ctx u = {cfg, false, 0, APG_OK, err, errlen};
    if (changed)
        *changed = 0;
    if (apg_properties_parse(text, len, upd_one, &u))
        return apg_errf(APG_ECONFIG, err, errlen,
                        "the body is not a properties text (bad \\u escape); nothing was changed");
    if (u.uc_rc)
        return u.uc_rc;
    u.uc_apply = true;
    apg_properties_parse(text, len, upd_one, &u);
    if (changed)
        *changed = u.uc_changed;
    return u.uc_rc;
}

/* Appends s escaped for a properties file; key also escapes separators. */
static void put_escaped(struct apg_buf *b, const char *s, bool key)
{
    for (const char *p = s; *p; p++) {
        const char *e = NULL;
        switch (*p) {
        case '\\':
            e = "\\\\";
            break;
        case '\n':
            e = "\\n";
            break;
        case '\r':
            e = "\\r";
            break;
        case '\t':
            e = "\\t";
            break;
        case '\f':
            e = "\\f";
            break;
        case '=':
        case ':':
        case ' ':
        case '#':
        case '!':
            if (key || (p == s && (*p == ' ' || *p == '#' || *p == '!'))) {
                apg_buf_append(b, "\\", 1);
                apg_buf_append(b, p, 1);
                continue;
            }
            break;
        default:
            break;
        }
        if (e)
            apg_buf_append(b, e, strlen(e));
        else
            apg_buf_append(b, p, 1);
    }
}

char *apg_config_properties(const struct apg_config *cfg, size_t *len)
{
    struct apg_buf b = APG_BUF_INIT;
    for (int i = 0; i < APG_CFG__COUNT; i++) {
        if (!in_scope(&cfg_defs[i], cfg->cfg_role))
            continue;
        put_escaped(&b, cfg_defs[i].name, true);
        apg_buf_append(&b, "=", 1);
        put_escaped(&b, shown_value(cfg, i), false);
        apg_buf_append(&b, "\n", 1);
    }
    if (apg_buf_append(&b, "", 1) || !b.b_data) {
        apg_buf_free(&b);
        return NULL;
    }
    if (len)
        *len = b.b_len - 1;
    return (char *)b.b_data;
}

bool apg_config_bool_by_name(const struct apg_config *cfg, const char *name, bool dflt)
{
    int i = find_key(name);
    if (i < 0 || !in_scope(&cfg_defs[i], cfg->cfg_role) || cfg_defs[i].type != T_B)
        return dflt;
    return cfg->cfg_vals[i].num != 0;
}

const char *apg_config_port_key(const struct apg_config *cfg)
{
    return cfg->cfg_port_key;
}

void apg_config_set_port_key(struct apg_config *cfg, const char *key)
{
    cfg->cfg_port_key = key;
}

bool apg_config_bind_loopback(const struct apg_config *cfg)
{
    const char *h = cfg->cfg_vals[APG_CFG_bindAddress].text;
    return strncmp(h, "127.", 4) == 0 || strcmp(h, "::1") == 0 || strcmp(h, "localhost") == 0;
}

bool apg_config_bind_wildcard(const struct apg_config *cfg)
{
    const char *h = cfg->cfg_vals[APG_CFG_bindAddress].text;
    return !h[0] || strcmp(h, "0.0.0.0") == 0 || strcmp(h, "::") == 0;
}

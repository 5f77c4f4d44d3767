/* Configuration table, .properties parser and command-line flags (see
 * config.h). Values are stored as validated text plus a parsed integer, so
 * printing shows exactly what the user wrote.
 *
 * Legacy spellings: cfg_aliases maps key names older RocketMQ releases used
 * (4.0 to 4.5.1 read the segment sizes as mapedFileSize*, renamed
 * mappedFileSize* in 4.5.2) to the key they set, and RocketMQ's TLS JVM
 * properties (tls.server.mode and friends, docs/wire.md §12) to the tls*
 * keys. A value set through an
 * alias remembers the spelling, and `-p` prints it; when a file or the
 * command line sets both spellings of one key, the later one wins, with a
 * warning. */
#include "common/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/mem.h"

enum { T_I, T_B, T_S, T_E };
enum { NS = APG_ROLE_NAMESRV, BR = APG_ROLE_BROKER, SA = APG_ROLE_STANDALONE };

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

struct cfg_val {
    char *text;
    int64_t num;
    enum apg_cfg_source src;
    const char *spelling; /* the key name that set it: the canonical one or an alias */
};

struct apg_config {
    enum apg_role cfg_role;
    struct cfg_val cfg_vals[APG_CFG__COUNT];
};

static const char *src_names[] = {"default", "role default", "file", "command line"};

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

static apg_err_t set_idx(struct apg_config *cfg, int i, const char *value, enum apg_cfg_source src,
                         char *err, size_t errlen)
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
    apg_free(cfg->cfg_vals[i].text);
    cfg->cfg_vals[i].text = text;
    cfg->cfg_vals[i].num = num;
    cfg->cfg_vals[i].src = src;
    cfg->cfg_vals[i].spelling = d->name;
    return APG_OK;
}

struct apg_config *apg_config_new(enum apg_role role)
{
    struct apg_config *cfg = apg_calloc(1, sizeof(*cfg));
    if (!cfg)
        return NULL;
    cfg->cfg_role = role;
    char err[256];
    for (int i = 0; i < APG_CFG__COUNT; i++) {
        if (set_idx(cfg, i, cfg_defs[i].def, APG_CFG_SRC_DEFAULT, err, sizeof(err))) {
            /* A bad default is a programming error in config.def. */
            apg_log_error("config", "%s", err);
            apg_config_free(cfg);
            return NULL;
        }
    }
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

apg_err_t apg_config_set(struct apg_config *cfg, const char *key, const char *value,
                         enum apg_cfg_source src, char *err, size_t errlen)
{
    const char *spelling;
    int i = find_key_as(key, &spelling);
    if (i < 0)
        return apg_errf(APG_ENOTFOUND, err, errlen, "unknown config key '%s' (ignored)", key);
    if (!in_scope(&cfg_defs[i], cfg->cfg_role))
        return apg_errf(APG_ENOTFOUND, err, errlen, "config key '%s' does not apply here (ignored)",
                        key);
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
        apg_log_warn("config", "%s: %s", lc->path, msg);
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

apg_err_t apg_config_parse_args(struct apg_config *cfg, int argc, char **argv, bool *print_only,
                                char *err, size_t errlen)
{
    char msg[512];
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
            apg_err_t rc =
                apg_config_set(cfg, "namesrvAddr", argv[++i], APG_CFG_SRC_ARG, err, errlen);
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
                if (k >= 0 && cfg_defs[k].type == T_B && (i + 1 >= argc || argv[i + 1][0] == '-'))
                    value = "true";
                else if (i + 1 < argc)
                    value = argv[++i];
                else
                    return apg_errf(APG_ECONFIG, err, errlen, "--%s needs a value (--%s=VALUE)",
                                    key, key);
            }
            apg_err_t rc = apg_config_set(cfg, key, value, APG_CFG_SRC_ARG, msg, sizeof(msg));
            if (rc == APG_ENOTFOUND)
                return apg_errf(APG_ECONFIG, err, errlen,
                                "%s; see `apogee <command> --help-config` for the keys", msg);
            if (rc)
                return apg_errf(rc, err, errlen, "%s", msg);
            continue;
        }
        return apg_errf(APG_ECONFIG, err, errlen,
                        "unexpected argument '%s'; use -c FILE, -n ADDR, -p or --key=value", a);
    }
    return APG_OK;
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

void apg_config_print(const struct apg_config *cfg, FILE *out)
{
    for (int i = 0; i < APG_CFG__COUNT; i++) {
        if (!in_scope(&cfg_defs[i], cfg->cfg_role))
            continue;
        const struct cfg_val *v = &cfg->cfg_vals[i];
        if (v->spelling != cfg_defs[i].name)
            fprintf(out, "%s=%s  # %s, as %s\n", cfg_defs[i].name, v->text, src_names[v->src],
                    v->spelling);
        else
            fprintf(out, "%s=%s  # %s\n", cfg_defs[i].name, v->text, src_names[v->src]);
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

/* Client configuration objects (include/apogee/conf.h).
 *
 * Design: the keys are declared once in conf.def; this file turns that list
 * into the members of struct apg_conf (client_int.h) and into a table of
 * name, type, default text, bounds and help with each member's offset, so
 * apg_conf_set(), apg_conf_get(), the defaults and the printed help all read
 * the same rows. Strings are owned by the conf (copied on set and on dup).
 *
 * Threads: a conf has no lock; its owner sets it from one thread. Producers
 * and consumers keep a private copy (apg_conf_dup) that is never changed. */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client/client_int.h"
#include "common/mem.h"

struct conf_key {
    const char *k_name;
    char k_type; /* 'I', 'B', 'S' or 'E' */
    const char *k_def;
    long k_lo, k_hi;
    const char *k_choices;
    const char *k_help;
    size_t k_off;
};

static const struct conf_key conf_keys[] = {
#define APG_CCONF(f, name, type, def, lo, hi, choices, help)                                       \
    {name, #type[0], def, lo, hi, choices, help, offsetof(struct apg_conf, f)},
#include "client/conf.def"
#undef APG_CCONF
};
#define NKEYS (sizeof(conf_keys) / sizeof(conf_keys[0]))

static const struct conf_key *key_find(const char *name)
{
    for (size_t i = 0; name && i < NKEYS; i++)
        if (strcmp(conf_keys[i].k_name, name) == 0)
            return &conf_keys[i];
    return NULL;
}

static int *int_at(apg_conf_t *c, const struct conf_key *k)
{
    return (int *)((char *)c + k->k_off);
}
static char **str_at(apg_conf_t *c, const struct conf_key *k)
{
    return (char **)((char *)c + k->k_off);
}

/* Index of `v` among the '|'-separated choices (case-insensitive), or -1. */
static int choice_index(const char *choices, const char *v)
{
    size_t vl = strlen(v);
    int i = 0;
    for (const char *p = choices;; i++) {
        size_t n = strcspn(p, "|");
        if (n == vl && strncasecmp(p, v, n) == 0)
            return i;
        if (p[n] == '\0')
            return -1;
        p += n + 1;
    }
}

/* The i-th choice into out. */
static void choice_name(const char *choices, int i, char *out, size_t outlen)
{
    const char *p = choices;
    for (; i > 0 && (p = strchr(p, '|')) != NULL; i--)
        p++;
    size_t n = p ? strcspn(p, "|") : 0;
    snprintf(out, outlen, "%.*s", (int)n, p ? p : "");
}

static apg_err_t key_set(apg_conf_t *c, const struct conf_key *k, const char *v, char *err,
                         size_t errlen)
{
    switch (k->k_type) {
    case 'S': {
        char *s = NULL;
        if (v && v[0] && (s = apg_strdup(v)) == NULL)
            return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
        apg_free(*str_at(c, k));
        *str_at(c, k) = s;
        return APG_OK;
    }
    case 'B':
        if (v && (strcmp(v, "true") == 0 || strcmp(v, "false") == 0)) {
            *int_at(c, k) = v[0] == 't';
            return APG_OK;
        }
        return apg_errf(APG_EINVAL, err, errlen, "%s takes true or false, not '%s'", k->k_name,
                        v ? v : "(null)");
    case 'E': {
        int i = v ? choice_index(k->k_choices, v) : -1;
        if (i < 0)
            return apg_errf(APG_EINVAL, err, errlen, "%s takes one of %s, not '%s'", k->k_name,
                            k->k_choices, v ? v : "(null)");
        *int_at(c, k) = i;
        return APG_OK;
    }
    default: {
        char *end = NULL;
        errno = 0;
        long n = v ? strtol(v, &end, 10) : 0;
        if (v == NULL || v[0] == '\0' || *end != '\0' || errno != 0)
            return apg_errf(APG_EINVAL, err, errlen, "%s takes an integer, not '%s'", k->k_name,
                            v ? v : "(null)");
        if (n < k->k_lo || n > k->k_hi)
            return apg_errf(APG_EINVAL, err, errlen, "%s must be within %ld..%ld, not %ld",
                            k->k_name, k->k_lo, k->k_hi, n);
        *int_at(c, k) = (int)n;
        return APG_OK;
    }
    }
}

apg_conf_t *apg_conf_new(void)
{
    apg_conf_t *c = apg_calloc(1, sizeof(*c));
    for (size_t i = 0; c && i < NKEYS; i++) {
        if (conf_keys[i].k_def && key_set(c, &conf_keys[i], conf_keys[i].k_def, NULL, 0)) {
            apg_conf_destroy(c);
            return NULL;
        }
    }
    return c;
}

apg_conf_t *apg_conf_dup(const apg_conf_t *conf)
{
    apg_conf_t *c = apg_malloc(sizeof(*c));
    if (c == NULL)
        return NULL;
    memcpy(c, conf, sizeof(*c));
    bool ok = true;
    for (size_t i = 0; i < NKEYS; i++) {
        if (conf_keys[i].k_type != 'S')
            continue;
        char **s = str_at(c, &conf_keys[i]);
        if (*s && (*s = apg_strdup(*s)) == NULL)
            ok = false;
    }
    if (!ok) {
        apg_conf_destroy(c);
        return NULL;
    }
    return c;
}

void apg_conf_destroy(apg_conf_t *conf)
{
    if (conf == NULL)
        return;
    for (size_t i = 0; i < NKEYS; i++)
        if (conf_keys[i].k_type == 'S')
            apg_free(*str_at(conf, &conf_keys[i]));
    apg_free(conf);
}

apg_err_t apg_conf_set(apg_conf_t *conf, const char *name, const char *value, char *err,
                       size_t errlen)
{
    if (conf == NULL)
        return apg_errf(APG_EINVAL, err, errlen, "conf is NULL");
    const struct conf_key *k = key_find(name);
    if (k == NULL)
        return apg_errf(APG_ENOTFOUND, err, errlen,
                        "unknown configuration key '%s' (apg_conf_properties_show() lists them)",
                        name ? name : "(null)");
    return key_set(conf, k, value, err, errlen);
}

apg_err_t apg_conf_get(const apg_conf_t *conf, const char *name, char *out, size_t *outlen)
{
    const struct conf_key *k = key_find(name);
    if (k == NULL || conf == NULL || outlen == NULL)
        return k == NULL ? APG_ENOTFOUND : APG_EINVAL;
    apg_conf_t *c = (apg_conf_t *)conf;
    char num[64];
    const char *text = num;
    switch (k->k_type) {
    case 'S':
        text = *str_at(c, k) ? *str_at(c, k) : "";
        break;
    case 'B':
        text = *int_at(c, k) ? "true" : "false";
        break;
    case 'E':
        choice_name(k->k_choices, *int_at(c, k), num, sizeof(num));
        break;
    default:
        snprintf(num, sizeof(num), "%d", *int_at(c, k));
    }
    size_t need = strlen(text) + 1, have = *outlen;
    *outlen = need;
    if (out == NULL)
        return APG_OK;
    if (have < need)
        return APG_ETOOBIG;
    memcpy(out, text, need);
    return APG_OK;
}

apg_err_t apg_conf_check(const struct apg_conf *conf, bool consumer, char *err, size_t errlen)
{
    if (conf == NULL)
        return apg_errf(APG_EINVAL, err, errlen, "conf is NULL (make one with apg_conf_new())");
    if (consumer && conf->consumer_group == NULL)
        return apg_errf(APG_EINVAL, err, errlen, "a consumer needs a group: set consumerGroup");
    return APG_OK;
}

void apg_conf_properties_show(FILE *fp)
{
    static const char *types[] = {
        ['I'] = "integer", ['B'] = "boolean", ['S'] = "string", ['E'] = "enum"};
    fprintf(fp, "%-32s %-8s %-26s %s\n", "key", "type", "default", "meaning");
    for (size_t i = 0; i < NKEYS; i++) {
        const struct conf_key *k = &conf_keys[i];
        char range[64] = "";
        if (k->k_type == 'I')
            snprintf(range, sizeof(range), " (%ld..%ld)", k->k_lo, k->k_hi);
        else if (k->k_type == 'E')
            snprintf(range, sizeof(range), " (%s)", k->k_choices);
        fprintf(fp, "%-32s %-8s %-26s %s%s\n", k->k_name, types[(unsigned char)k->k_type],
                k->k_def ? k->k_def : "-", k->k_help, range);
    }
}

/* Tag subscriptions for PULL_MESSAGE: "*" or "TagA || TagB" parsed into
 * the tag hash codes matched against the consume queue and the exact tag
 * strings matched against the stored TAGS property (two tags with the same
 * hash must not leak into each other's subscriptions). Pure. */
#include <stdio.h>
#include <string.h>

#include "broker/broker_int.h"
#include "common/hash.h"

apg_err_t apg_tag_filter_parse(const char *expr, struct apg_tag_filter *f, char *err, size_t errlen)
{
    memset(f, 0, sizeof(*f));
    if (!expr)
        expr = "";
    const char *p = expr;
    while (*p == ' ')
        p++;
    if (*p == 0 || strcmp(p, "*") == 0) {
        f->tf_all = true;
        return APG_OK;
    }
    while (*p) {
        const char *sep = strstr(p, "||");
        const char *end = sep ? sep : p + strlen(p);
        const char *b = p, *e = end;
        while (b < e && (*b == ' ' || *b == '\t'))
            b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e > b) {
            if (e - b == 1 && *b == '*') {
                f->tf_all = true;
                return APG_OK;
            }
            if (f->tf_n >= APG_FILTER_MAX_TAGS)
                return apg_errf(APG_EINVAL, err, errlen,
                                "subscription '%.100s' has more than %d tags", expr,
                                APG_FILTER_MAX_TAGS);
            if ((size_t)(e - b) >= sizeof(f->tf_tags[0]))
                return apg_errf(APG_EINVAL, err, errlen,
                                "a tag in subscription '%.100s' is longer "
                                "than %zu bytes",
                                expr, sizeof(f->tf_tags[0]) - 1);
            memcpy(f->tf_tags[f->tf_n], b, (size_t)(e - b));
            f->tf_tags[f->tf_n][e - b] = 0;
            f->tf_codes[f->tf_n] = apg_java_hash(b, (size_t)(e - b));
            f->tf_n++;
        }
        p = sep ? sep + 2 : end;
    }
    if (f->tf_n == 0)
        f->tf_all = true;
    return APG_OK;
}

bool apg_tag_filter_match_code(const struct apg_tag_filter *f, int64_t code)
{
    if (f->tf_all)
        return true;
    for (uint32_t i = 0; i < f->tf_n; i++)
        if ((int64_t)f->tf_codes[i] == code)
            return true;
    return false;
}

bool apg_tag_filter_match_tag(const struct apg_tag_filter *f, const char *tag, size_t len)
{
    if (f->tf_all)
        return true;
    for (uint32_t i = 0; i < f->tf_n; i++)
        if (strlen(f->tf_tags[i]) == len && memcmp(f->tf_tags[i], tag, len) == 0)
            return true;
    return false;
}

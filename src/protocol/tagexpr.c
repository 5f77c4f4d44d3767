/* Tag subscription expressions (see tagexpr.h).
 *
 * RocketMQ parses a TAG-type subscription string in one place
 * (FilterAPI.buildSubscriptionData), and broker and client both rely on it:
 *
 *   - a missing or empty string, or one equal to "*" with nothing around it,
 *     subscribes to everything;
 *   - anything else is split on the two-character separator "||" (Java's
 *     String.split, scanning left to right, so "A|||B" gives "A" and "|B";
 *     a single "|" is an ordinary character of a tag);
 *   - each piece is trimmed the way Java's String.trim does (every byte up
 *     to and including space, 0x00-0x20, at both ends) and dropped if
 *     nothing is left; the rest form a set of tags and a set of their
 *     String.hashCode values (computed on the UTF-16 form, as
 *     apg_java_hash does);
 *   - String.split drops trailing empty pieces, and when that leaves no
 *     piece at all (the string is only "||" repeated, such as "||") Java
 *     throws: the subscription is refused.
 *
 * So " * " is not "everything": it is the one tag "*". And " " or "A||" are
 * accepted, the first with no tag at all: it subscribes to nothing, since a
 * RocketMQ broker matches a queue entry against the hash set alone (its
 * client skips its own check when the tag set is empty; here the client's
 * check says no as well, which changes nothing as the broker sends none).
 *
 * Apogee's broker keeps a queue entry when its tags code, truncated to 32
 * bits as Java's intValue() does, is in the hash set, and then also compares
 * the stored TAGS with the tag set, so that two tags with the same hash do
 * not leak into each other; the client checks the tag set again on what it
 * receives, as RocketMQ's client does. Both call the functions below.
 *
 * Pure code, no allocation; any thread. */
#include "protocol/tagexpr.h"

#include <string.h>

#include "common/hash.h"

static bool java_space(char c)
{
    return (unsigned char)c <= ' ';
}

/* Adds the trimmed piece [b, e) unless empty or already present. */
static apg_err_t add_tag(struct apg_tagexpr *te, size_t *used, const char *b, const char *e,
                         char *err, size_t errlen)
{
    while (b < e && java_space(*b))
        b++;
    while (e > b && java_space(e[-1]))
        e--;
    size_t n = (size_t)(e - b);
    if (n == 0)
        return APG_OK;
    for (uint32_t i = 0; i < te->te_n; i++)
        if (te->te_lens[i] == n && memcmp(apg_tagexpr_tag(te, i), b, n) == 0)
            return APG_OK;
    if (te->te_n == APG_TAGEXPR_MAX_TAGS)
        return apg_errf(APG_EINVAL, err, errlen, "the subscription has more than %d tags",
                        APG_TAGEXPR_MAX_TAGS);
    if (n + 1 > APG_TAGEXPR_TEXT - *used)
        return apg_errf(APG_EINVAL, err, errlen, "the tags of the subscription exceed %d bytes",
                        APG_TAGEXPR_TEXT - 1);
    char *d = te->te_text + *used;
    memcpy(d, b, n);
    d[n] = '\0';
    te->te_offs[te->te_n] = (uint16_t)*used;
    *used += n + 1;
    te->te_lens[te->te_n] = (uint16_t)n;
    te->te_codes[te->te_n] = apg_java_hash(d, n);
    te->te_n++;
    return APG_OK;
}

apg_err_t apg_tagexpr_parse(const char *expr, size_t len, struct apg_tagexpr *te, char *err,
                            size_t errlen)
{
    te->te_all = false;
    te->te_n = 0;
    if (expr == NULL || len == 0 || (len == 1 && expr[0] == '*')) {
        te->te_all = true;
        return APG_OK;
    }
    if (memchr(expr, '\0', len) != NULL)
        return apg_errf(APG_EINVAL, err, errlen, "the subscription holds a NUL byte");
    bool any_piece = false; /* a non-empty piece, before trimming */
    size_t used = 0, i = 0;
    for (;;) {
        size_t j = i;
        while (j + 1 < len && !(expr[j] == '|' && expr[j + 1] == '|'))
            j++;
        size_t stop = j + 1 < len ? j : len;
        if (stop > i)
            any_piece = true;
        apg_err_t e = add_tag(te, &used, expr + i, expr + stop, err, errlen);
        if (e != APG_OK)
            return e;
        if (stop == len)
            break;
        i = stop + 2;
    }
    if (!any_piece)
        return apg_errf(APG_EINVAL, err, errlen,
                        "the subscription '%.*s' holds only '||' separators",
                        (int)(len < 100 ? len : 100), expr);
    return APG_OK;
}

bool apg_tagexpr_match_code(const struct apg_tagexpr *te, int64_t code)
{
    if (te->te_all)
        return true;
    for (uint32_t i = 0; i < te->te_n; i++)
        if (te->te_codes[i] == (int32_t)code)
            return true;
    return false;
}

bool apg_tagexpr_match_tag(const struct apg_tagexpr *te, const char *tag, size_t len)
{
    if (te->te_all)
        return true;
    if (tag == NULL)
        return false;
    for (uint32_t i = 0; i < te->te_n; i++)
        if (te->te_lens[i] == len && memcmp(apg_tagexpr_tag(te, i), tag, len) == 0)
            return true;
    return false;
}

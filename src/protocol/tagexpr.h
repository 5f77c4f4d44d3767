/* Tag subscription expressions ("*", "TagA || TagB"): the one parser and
 * matcher for the broker's pull filter and the client's. Pure. */
#ifndef APG_PROTOCOL_TAGEXPR_H
#define APG_PROTOCOL_TAGEXPR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define APG_TAGEXPR_MAX_TAGS 64
#define APG_TAGEXPR_TEXT 4096 /* bytes for all tags, each with its NUL */

/* A parsed expression. Self-contained (offsets, no pointer), so it may be
 * copied and may outlive the string it came from; fits on a stack. */
struct apg_tagexpr {
    bool te_all;                            /* NULL, "" or exactly "*": every message */
    uint32_t te_n;                          /* distinct tags, in first-seen order */
    uint16_t te_offs[APG_TAGEXPR_MAX_TAGS]; /* each tag: te_text + offset, NUL-terminated */
    uint16_t te_lens[APG_TAGEXPR_MAX_TAGS];
    int32_t te_codes[APG_TAGEXPR_MAX_TAGS]; /* Java String.hashCode of each tag */
    char te_text[APG_TAGEXPR_TEXT];
};

/* Parses expr[0..len) (expr may be NULL: every message). APG_EINVAL with a
 * reason in err for an expression RocketMQ refuses (nothing but "||"
 * separators), one holding a NUL byte, or one beyond this parser's limits
 * (APG_TAGEXPR_MAX_TAGS distinct tags, APG_TAGEXPR_TEXT bytes of tags). */
apg_err_t apg_tagexpr_parse(const char *expr, size_t len, struct apg_tagexpr *te, char *err,
                            size_t errlen);

/* Tag i (< te_n), NUL-terminated. */
static inline const char *apg_tagexpr_tag(const struct apg_tagexpr *te, uint32_t i)
{
    return te->te_text + te->te_offs[i];
}

/* Whether a consume-queue entry with this tags code may match: true for an
 * all-expression, else when the code's low 32 bits equal a tag's hash. */
bool apg_tagexpr_match_code(const struct apg_tagexpr *te, int64_t code);

/* Whether a message with this TAGS value (NULL: no TAGS) matches exactly. */
bool apg_tagexpr_match_tag(const struct apg_tagexpr *te, const char *tag, size_t len);

#endif

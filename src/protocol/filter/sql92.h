/* SQL92 property filters (RocketMQ's expressionType "SQL92"): compile a
 * subscription expression once, then match it against message property
 * strings. The one implementation for the broker's pull filter, the
 * client's subscription check and the fuzz harness. Pure: no allocation,
 * no globals, any thread; a compiled filter is read-only while matched.
 *
 * Grammar and semantics are described in sql92_parse.c and docs/wire.md. */
#ifndef APG_PROTOCOL_FILTER_SQL92_H
#define APG_PROTOCOL_FILTER_SQL92_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define APG_SQL92_MAX_EXPR 4096 /* bytes of expression text */
#define APG_SQL92_MAX_NODES 256 /* tree nodes */
#define APG_SQL92_MAX_PROPS 32  /* distinct property names */
#define APG_SQL92_MAX_ITEMS 256 /* IN-list strings, all lists together */
#define APG_SQL92_MAX_TEXT 4096 /* bytes of names and string literals */
#define APG_SQL92_MAX_DEPTH 64  /* nesting of parentheses and unary operators */

/* A slice of sq_text. */
struct apg_sql92_str {
    uint16_t ss_off;
    uint16_t ss_len;
};

/* One node of the compiled tree (ops and value types in sql92_int.h). */
struct apg_sql92_node {
    uint8_t sn_op;
    uint8_t sn_type;           /* constants: the value type */
    uint16_t sn_a;             /* first operand node, or property slot */
    uint16_t sn_b;             /* second operand node */
    struct apg_sql92_str sn_s; /* string constant or search text; IN: first item, count */
    union {
        int64_t i;
        double d;
    } sn_v;
};

/* A compiled expression. Self-contained (offsets, no pointers): it may be
 * copied and outlives the text it came from. About 10 KB. */
struct apg_sql92 {
    uint16_t sq_root;
    uint16_t sq_nnodes;
    uint16_t sq_nprops;
    uint16_t sq_nitems;
    uint16_t sq_ntext;
    struct apg_sql92_node sq_nodes[APG_SQL92_MAX_NODES];
    struct apg_sql92_str sq_props[APG_SQL92_MAX_PROPS]; /* distinct property names */
    struct apg_sql92_str sq_items[APG_SQL92_MAX_ITEMS];
    char sq_text[APG_SQL92_MAX_TEXT];
};

/* Compiles expr[0..len). APG_EINVAL with a message in err for an
 * expression RocketMQ refuses, naming the 1-based character position and
 * what was expected there ("position 7: expected a value after '>', found
 * ')'"), or one beyond the limits above. */
apg_err_t apg_sql92_compile(const char *expr, size_t len, struct apg_sql92 *q, char *err,
                            size_t errlen);

/* What an expression gives for one message: RocketMQ's three-valued result,
 * plus ERROR when its evaluation would throw (a property that does not parse
 * as the number it is compared with); a message matches only on TRUE. */
enum apg_sql92_result {
    APG_SQL92_FALSE = 0,
    APG_SQL92_TRUE = 1,
    APG_SQL92_UNKNOWN = 2, /* NULL: a property the comparison needs is missing */
    APG_SQL92_ERROR = 3,
};

/* Evaluates q against a property string (name \x01 value \x02 ...,
 * protocol/props.h; a repeated name: the last value wins). */
enum apg_sql92_result apg_sql92_eval(const struct apg_sql92 *q, const char *props, size_t len);

/* Whether the message with this property string matches. */
static inline bool apg_sql92_match(const struct apg_sql92 *q, const char *props, size_t len)
{
    return apg_sql92_eval(q, props, len) == APG_SQL92_TRUE;
}

/* True for the expression types a TAG filter handles (NULL, "" or "TAG");
 * "SQL92" is the other one RocketMQ knows. */
bool apg_sql92_is_tag_type(const char *type);

#endif

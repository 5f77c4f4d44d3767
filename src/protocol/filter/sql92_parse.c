/* SQL92 filter parser: expression text -> compiled tree (sql92.h).
 *
 * The grammar is RocketMQ's selector grammar (a JMS selector without LIKE,
 * arithmetic or hexadecimal and octal numbers), lowest precedence first:
 *
 *   or      := and ( OR and )*
 *   and     := eq ( AND eq )*
 *   eq      := cmp ( '=' cmp | '<>' cmp | IS NULL | IS NOT NULL )*
 *   cmp     := unary ( ('>' | '>=' | '<' | '<=') unary
 *                    | [NOT] (CONTAINS | STARTSWITH | ENDSWITH) string
 *                    | [NOT] BETWEEN unary AND unary
 *                    | [NOT] IN '(' string ( ',' string )* ')' )*
 *   unary   := '+' unary | '-' unary | NOT unary | primary
 *   primary := string | integer | decimal | TRUE | FALSE | NULL | name | '(' or ')'
 *
 * NOT binds tighter than comparisons, as in RocketMQ: "NOT a = 'x'" is
 * "(NOT a) = 'x'", which never matches; write "NOT (a = 'x')". Only the
 * token right after a complete expression is looked at (it must be a valid
 * token), and anything after it is ignored, as RocketMQ's parser does.
 *
 * The checks RocketMQ makes while building its tree are made here too, with
 * the same outcome (refused or accepted): a condition (AND, OR, NOT, the
 * whole expression) must be a comparison, TRUE/FALSE/NULL or a property
 * name; '>' and friends take neither string, boolean nor NULL literals nor
 * conditions; '=' and '<>' take no NULL literal, and a boolean literal on the
 * left needs one on the right when both sides are literals; IN needs a
 * property on its left; BETWEEN with two literal bounds needs low <= high;
 * an integer must fit 64 bits (32-bit ones are Java Integers, others Longs,
 * which matters when a property is converted to compare with them); a
 * decimal must be finite and not round to zero.
 *
 * BETWEEN becomes (v >= low AND v <= high), NOT BETWEEN (v < low OR
 * v > high), '<>' NOT(=), IS NULL an equality with NULL, as in RocketMQ, so
 * their NULL and error behaviour is the same. Errors name the 1-based
 * character position and what was expected. Depth and sizes are bounded
 * (sql92.h), so the parser's recursion is too. Pure, no allocation. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/filter/sql92_int.h"

struct parser {
    const char *p_s;
    size_t p_len;
    struct sql92_tok p_tok;
    struct apg_sql92 *p_q;
    char *p_err;
    size_t p_errlen;
    int p_depth;
    bool p_failed;
    uint32_t p_pos[APG_SQL92_MAX_NODES]; /* where each node's text starts */
};

#define NONE (-1)

static void next(struct parser *p)
{
    apg_sql92_lex(p->p_s, p->p_len, p->p_tok.tk_pos + p->p_tok.tk_len, &p->p_tok);
}

/* Records the first error only; always returns NONE. */
static int fail_at(struct parser *p, size_t pos, const char *fmt, const char *a, const char *b)
{
    if (p->p_failed)
        return NONE;
    p->p_failed = true;
    if (p->p_err && p->p_errlen) {
        int n = snprintf(p->p_err, p->p_errlen, "position %zu: ", pos + 1);
        if (n >= 0 && (size_t)n < p->p_errlen)
            snprintf(p->p_err + n, p->p_errlen - (size_t)n, fmt, a, b);
    }
    return NONE;
}

/* "expected X, found Y" at the current token. */
static int expected(struct parser *p, const char *what)
{
    char found[64];
    const struct sql92_tok *t = &p->p_tok;
    if (t->tk_kind == TK_EOF) {
        snprintf(found, sizeof(found), "the end of the expression");
    } else {
        size_t n = t->tk_len > 24 ? 24 : t->tk_len;
        if (t->tk_kind == TK_ERROR && p->p_s[t->tk_pos] == '\'')
            snprintf(found, sizeof(found), "a string that is never closed");
        else
            snprintf(found, sizeof(found), "'%.*s'%s", (int)n, p->p_s + t->tk_pos,
                     n < t->tk_len ? "..." : "");
    }
    return fail_at(p, t->tk_pos, "expected %s, found %s", what, found);
}

static int node_new(struct parser *p, enum sql92_op op, size_t pos)
{
    struct apg_sql92 *q = p->p_q;
    if (q->sq_nnodes >= APG_SQL92_MAX_NODES)
        return fail_at(p, pos, "the expression is too long (more than %s%s nodes)", "256", "");
    int i = q->sq_nnodes++;
    memset(&q->sq_nodes[i], 0, sizeof(q->sq_nodes[i]));
    q->sq_nodes[i].sn_op = (uint8_t)op;
    p->p_pos[i] = (uint32_t)pos;
    return i;
}

static int node2(struct parser *p, enum sql92_op op, int a, int b, size_t pos)
{
    if (a == NONE || b == NONE)
        return NONE;
    int i = node_new(p, op, pos);
    if (i != NONE) {
        p->p_q->sq_nodes[i].sn_a = (uint16_t)a;
        p->p_q->sq_nodes[i].sn_b = (uint16_t)b;
    }
    return i;
}

/* Copies a string literal's content (quotes removed, '' -> ') or a name. */
static bool text_add(struct parser *p, const struct sql92_tok *t, bool literal,
                     struct apg_sql92_str *out)
{
    struct apg_sql92 *q = p->p_q;
    const char *s = p->p_s + t->tk_pos;
    size_t n = t->tk_len, i = 0;
    if (literal) {
        s++;
        n -= 2;
    }
    if (n > (size_t)APG_SQL92_MAX_TEXT - q->sq_ntext) {
        fail_at(p, t->tk_pos, "the expression's strings and names exceed %s%s bytes", "4096", "");
        return false;
    }
    out->ss_off = q->sq_ntext;
    char *w = q->sq_text + q->sq_ntext;
    size_t k = 0;
    while (i < n) {
        w[k++] = s[i];
        i += (literal && s[i] == '\'') ? 2 : 1;
    }
    out->ss_len = (uint16_t)k;
    q->sq_ntext = (uint16_t)(q->sq_ntext + k);
    return true;
}

static bool is_const(const struct parser *p, int n)
{
    return p->p_q->sq_nodes[n].sn_op == OP_CONST;
}

static enum sql92_vtype const_type(const struct parser *p, int n)
{
    return (enum sql92_vtype)p->p_q->sq_nodes[n].sn_type;
}

/* RocketMQ's BooleanExpression: conditions and the TRUE/FALSE/NULL literals. */
static bool is_condition(const struct parser *p, int n)
{
    const struct apg_sql92_node *sn = &p->p_q->sq_nodes[n];
    switch (sn->sn_op) {
    case OP_CONST:
        return sn->sn_type == VT_BOOL || sn->sn_type == VT_NULL;
    case OP_PROP:
    case OP_NEG:
        return false;
    default:
        return true;
    }
}

static int as_condition(struct parser *p, int n)
{
    if (n == NONE)
        return NONE;
    if (is_condition(p, n))
        return n;
    if (p->p_q->sq_nodes[n].sn_op == OP_PROP) {
        int c = node_new(p, OP_BCAST, p->p_pos[n]);
        if (c != NONE)
            p->p_q->sq_nodes[c].sn_a = (uint16_t)n;
        return c;
    }
    return fail_at(p, p->p_pos[n], "expected a condition (a comparison or a property name), %s%s",
                   "found a value that is not true or false", "");
}

static int negate(struct parser *p, int n, size_t pos)
{
    if (n == NONE)
        return NONE;
    int c = node_new(p, OP_NOT, pos);
    if (c != NONE)
        p->p_q->sq_nodes[c].sn_a = (uint16_t)n;
    return c;
}

static int const_null(struct parser *p, size_t pos)
{
    int c = node_new(p, OP_CONST, pos);
    if (c != NONE)
        p->p_q->sq_nodes[c].sn_type = VT_NULL;
    return c;
}

/* '=' (or the inside of '<>'): RocketMQ refuses a NULL literal on either
 * side, and a boolean literal compared with a non-boolean literal. */
static int equal(struct parser *p, int l, int r, size_t pos)
{
    if (l == NONE || r == NONE)
        return NONE;
    if ((is_const(p, l) && const_type(p, l) == VT_NULL) ||
        (is_const(p, r) && const_type(p, r) == VT_NULL))
        return fail_at(p, pos, "NULL cannot be compared with '=' or '<>'; use IS %sNULL%s",
                       "[NOT] ", "");
    if (is_const(p, l) && is_const(p, r) && is_condition(p, l) && !is_condition(p, r))
        return fail_at(p, pos, "a boolean literal cannot be compared with %s%s",
                       "a string or number literal", "");
    return node2(p, OP_EQ, l, r, pos);
}

/* '>' '>=' '<' '<=': numbers, properties or negations only. */
static int order(struct parser *p, enum sql92_op op, int l, int r, size_t pos)
{
    if (l == NONE || r == NONE)
        return NONE;
    int side[2] = {l, r};
    for (int k = 0; k < 2; k++) {
        int n = side[k];
        bool bad = is_const(p, n) ? (const_type(p, n) != VT_INT && const_type(p, n) != VT_LONG &&
                                     const_type(p, n) != VT_DBL)
                                  : is_condition(p, n);
        if (bad)
            return fail_at(p, p->p_pos[n], "'<', '<=', '>', '>=' and BETWEEN compare numbers: %s%s",
                           "this operand is a string, boolean, NULL or condition", "");
    }
    return node2(p, op, l, r, pos);
}

static void const_val(const struct parser *p, int n, struct sql92_val *v)
{
    const struct apg_sql92_node *sn = &p->p_q->sq_nodes[n];
    v->v_type = (enum sql92_vtype)sn->sn_type;
    switch (v->v_type) {
    case VT_BOOL:
        v->v.b = sn->sn_v.i != 0;
        break;
    case VT_INT:
    case VT_LONG:
        v->v.i = sn->sn_v.i;
        break;
    case VT_DBL:
        v->v.d = sn->sn_v.d;
        break;
    case VT_STR:
        v->v.s.p = p->p_q->sq_text + sn->sn_s.ss_off;
        v->v.s.n = sn->sn_s.ss_len;
        break;
    default:
        break;
    }
}

static int between(struct parser *p, bool not, int v, int lo, int hi, size_t pos)
{
    if (v == NONE || lo == NONE || hi == NONE)
        return NONE;
    if (!not &&is_const(p, lo) && is_const(p, hi)) {
        if (const_type(p, lo) == VT_NULL || const_type(p, hi) == VT_NULL)
            return fail_at(p, pos, "BETWEEN bounds cannot be NULL%s%s", "", "");
        struct sql92_val a, b;
        const_val(p, lo, &a);
        const_val(p, hi, &b);
        int cmp = 0;
        if (!apg_sql92_compare(&b, &a, &cmp) || cmp < 0)
            return fail_at(p, pos, "BETWEEN needs its low bound first (low <= high)%s%s", "", "");
    }
    if (not )
        return node2(p, OP_OR, order(p, OP_LT, v, lo, pos), order(p, OP_GT, v, hi, pos), pos);
    return node2(p, OP_AND, order(p, OP_GE, v, lo, pos), order(p, OP_LE, v, hi, pos), pos);
}

static int or_expr(struct parser *p);

static int literal_number(struct parser *p)
{
    const struct sql92_tok *t = &p->p_tok;
    const char *s = p->p_s + t->tk_pos;
    size_t n = t->tk_len;
    int c = node_new(p, OP_CONST, t->tk_pos);
    if (c == NONE)
        return NONE;
    struct apg_sql92_node *sn = &p->p_q->sq_nodes[c];
    if (t->tk_kind == TK_DECIMAL) {
        if (s[n - 1] == 'l' || s[n - 1] == 'L')
            n--;
        int64_t v;
        if (!apg_sql92_parse_i64(s, n, &v))
            return fail_at(p, t->tk_pos, "the integer %s%s does not fit in 64 bits",
                           n > 30 ? "literal" : "", "");
        sn->sn_type = v >= INT32_MIN && v <= INT32_MAX ? VT_INT : VT_LONG;
        sn->sn_v.i = v;
    } else {
        double d;
        if (!apg_sql92_parse_dbl(s, n, &d) || isinf(d))
            return fail_at(p, t->tk_pos, "the number is larger than the largest double%s%s", "",
                           "");
        if (d < DBL_TRUE_MIN)
            return fail_at(p, t->tk_pos,
                           "a decimal literal must not be zero (RocketMQ refuses values below "
                           "Double.MIN_VALUE)%s%s",
                           "", "");
        sn->sn_type = VT_DBL;
        sn->sn_v.d = d;
    }
    next(p);
    return c;
}

static int prop_slot(struct parser *p, const struct sql92_tok *t)
{
    struct apg_sql92 *q = p->p_q;
    for (int i = 0; i < q->sq_nprops; i++)
        if (q->sq_props[i].ss_len == t->tk_len &&
            memcmp(q->sq_text + q->sq_props[i].ss_off, p->p_s + t->tk_pos, t->tk_len) == 0)
            return i;
    if (q->sq_nprops >= APG_SQL92_MAX_PROPS)
        return fail_at(p, t->tk_pos, "more than %s%s distinct property names", "32", "");
    if (!text_add(p, t, false, &q->sq_props[q->sq_nprops]))
        return NONE;
    return q->sq_nprops++;
}

static int primary(struct parser *p)
{
    struct sql92_tok t = p->p_tok;
    int c;
    switch (t.tk_kind) {
    case TK_DECIMAL:
    case TK_FLOAT:
        return literal_number(p);
    case TK_STRING:
        c = node_new(p, OP_CONST, t.tk_pos);
        if (c == NONE || !text_add(p, &t, true, &p->p_q->sq_nodes[c].sn_s))
            return NONE;
        p->p_q->sq_nodes[c].sn_type = VT_STR;
        next(p);
        return c;
    case TK_TRUE:
    case TK_FALSE:
        c = node_new(p, OP_CONST, t.tk_pos);
        if (c == NONE)
            return NONE;
        p->p_q->sq_nodes[c].sn_type = VT_BOOL;
        p->p_q->sq_nodes[c].sn_v.i = t.tk_kind == TK_TRUE;
        next(p);
        return c;
    case TK_NULL:
        c = const_null(p, t.tk_pos);
        next(p);
        return c;
    case TK_ID: {
        int slot = prop_slot(p, &t);
        if (slot == NONE)
            return NONE;
        c = node_new(p, OP_PROP, t.tk_pos);
        if (c != NONE)
            p->p_q->sq_nodes[c].sn_a = (uint16_t)slot;
        next(p);
        return c;
    }
    case TK_LPAREN:
        next(p);
        c = or_expr(p);
        if (c == NONE)
            return NONE;
        if (p->p_tok.tk_kind != TK_RPAREN)
            return expected(p, "')' or an operator");
        next(p);
        return c;
    default:
        return expected(p, "a value (a string, number, TRUE, FALSE, NULL, a property name or '(')");
    }
}

static int unary(struct parser *p)
{
    if (++p->p_depth > APG_SQL92_MAX_DEPTH) {
        p->p_depth--;
        return fail_at(p, p->p_tok.tk_pos, "the expression nests deeper than %s%s levels", "64",
                       "");
    }
    size_t pos = p->p_tok.tk_pos;
    int r;
    switch (p->p_tok.tk_kind) {
    case TK_PLUS:
        next(p);
        r = unary(p);
        break;
    case TK_MINUS:
        next(p);
        r = unary(p);
        if (r != NONE) {
            int c = node_new(p, OP_NEG, pos);
            if (c != NONE)
                p->p_q->sq_nodes[c].sn_a = (uint16_t)r;
            r = c;
        }
        break;
    case TK_NOT:
        next(p);
        r = negate(p, as_condition(p, unary(p)), pos);
        break;
    default:
        r = primary(p);
    }
    p->p_depth--;
    return r;
}

static int string_op(struct parser *p, enum sql92_op op, bool not, int left, size_t pos)
{
    if (p->p_tok.tk_kind != TK_STRING)
        return expected(p, "a string after CONTAINS, STARTSWITH or ENDSWITH");
    int c = node_new(p, op, pos);
    if (c == NONE || !text_add(p, &p->p_tok, true, &p->p_q->sq_nodes[c].sn_s))
        return NONE;
    p->p_q->sq_nodes[c].sn_a = (uint16_t)left;
    p->p_q->sq_nodes[c].sn_type = not ;
    next(p);
    return c;
}

static int in_list(struct parser *p, bool not, int left, size_t pos)
{
    struct apg_sql92 *q = p->p_q;
    if (p->p_tok.tk_kind != TK_LPAREN)
        return expected(p, "'(' after IN");
    next(p);
    uint16_t first = q->sq_nitems, count = 0;
    for (;;) {
        if (p->p_tok.tk_kind != TK_STRING)
            return expected(p, "a string in the IN list");
        if (q->sq_nitems >= APG_SQL92_MAX_ITEMS)
            return fail_at(p, p->p_tok.tk_pos, "more than %s%s strings in IN lists", "256", "");
        if (!text_add(p, &p->p_tok, true, &q->sq_items[q->sq_nitems]))
            return NONE;
        q->sq_nitems++;
        count++;
        next(p);
        if (p->p_tok.tk_kind == TK_RPAREN)
            break;
        if (p->p_tok.tk_kind != TK_COMMA)
            return expected(p, "',' or ')' in the IN list");
        next(p);
    }
    next(p);
    if (q->sq_nodes[left].sn_op != OP_PROP)
        return fail_at(p, p->p_pos[left], "IN needs a property name on its left%s%s", "", "");
    int c = node_new(p, OP_IN, pos);
    if (c != NONE) {
        q->sq_nodes[c].sn_a = (uint16_t)left;
        q->sq_nodes[c].sn_type = not ;
        q->sq_nodes[c].sn_s.ss_off = first;
        q->sq_nodes[c].sn_s.ss_len = count;
    }
    return c;
}

static int cmp_expr(struct parser *p)
{
    int left = unary(p);
    while (left != NONE) {
        struct sql92_tok t = p->p_tok;
        bool not = false;
        enum sql92_tok_kind k = t.tk_kind;
        if (k == TK_NOT) {
            struct sql92_tok la;
            apg_sql92_lex(p->p_s, p->p_len, t.tk_pos + t.tk_len, &la);
            if (la.tk_kind != TK_CONTAINS && la.tk_kind != TK_STARTSWITH &&
                la.tk_kind != TK_ENDSWITH && la.tk_kind != TK_BETWEEN && la.tk_kind != TK_IN)
                break;
            not = true;
            next(p);
            k = la.tk_kind;
        }
        switch (k) {
        case TK_GT:
        case TK_GE:
        case TK_LT:
        case TK_LE: {
            next(p);
            enum sql92_op op = k == TK_GT ? OP_GT : k == TK_GE ? OP_GE : k == TK_LT ? OP_LT : OP_LE;
            left = order(p, op, left, unary(p), t.tk_pos);
            break;
        }
        case TK_CONTAINS:
        case TK_STARTSWITH:
        case TK_ENDSWITH:
            next(p);
            left = string_op(p,
                             k == TK_CONTAINS     ? OP_CONTAINS
                             : k == TK_STARTSWITH ? OP_STARTSWITH
                                                  : OP_ENDSWITH,
                             not, left, t.tk_pos);
            break;
        case TK_BETWEEN: {
            next(p);
            int lo = unary(p);
            if (lo == NONE)
                return NONE;
            if (p->p_tok.tk_kind != TK_AND)
                return expected(p, "AND between the BETWEEN bounds");
            next(p);
            int hi = unary(p);
            left = between(p, not, left, lo, hi, t.tk_pos);
            break;
        }
        case TK_IN:
            next(p);
            left = in_list(p, not, left, t.tk_pos);
            break;
        default:
            return left;
        }
    }
    return left;
}

static int eq_expr(struct parser *p)
{
    int left = cmp_expr(p);
    while (left != NONE) {
        size_t pos = p->p_tok.tk_pos;
        switch (p->p_tok.tk_kind) {
        case TK_EQ:
            next(p);
            left = equal(p, left, cmp_expr(p), pos);
            break;
        case TK_NE:
            next(p);
            left = negate(p, equal(p, left, cmp_expr(p), pos), pos);
            break;
        case TK_IS: {
            next(p);
            bool not = false;
            if (p->p_tok.tk_kind == TK_NOT) {
                not = true;
                next(p);
            }
            if (p->p_tok.tk_kind != TK_NULL)
                return expected(p, not ? "NULL after IS NOT" : "NULL or NOT NULL after IS");
            left = node2(p, OP_EQ, left, const_null(p, p->p_tok.tk_pos), pos);
            next(p);
            if (not )
                left = negate(p, left, pos);
            break;
        }
        default:
            return left;
        }
    }
    return left;
}

static int and_expr(struct parser *p)
{
    int left = eq_expr(p);
    while (left != NONE && p->p_tok.tk_kind == TK_AND) {
        size_t pos = p->p_tok.tk_pos;
        next(p);
        int right = eq_expr(p);
        if (right == NONE)
            return NONE;
        left = node2(p, OP_AND, as_condition(p, left), as_condition(p, right), pos);
    }
    return left;
}

static int or_expr(struct parser *p)
{
    if (++p->p_depth > APG_SQL92_MAX_DEPTH) {
        p->p_depth--;
        return fail_at(p, p->p_tok.tk_pos, "the expression nests deeper than %s%s levels", "64",
                       "");
    }
    int left = and_expr(p);
    while (left != NONE && p->p_tok.tk_kind == TK_OR) {
        size_t pos = p->p_tok.tk_pos;
        next(p);
        int right = and_expr(p);
        if (right == NONE) {
            left = NONE;
            break;
        }
        left = node2(p, OP_OR, as_condition(p, left), as_condition(p, right), pos);
    }
    p->p_depth--;
    return left;
}

apg_err_t apg_sql92_compile(const char *expr, size_t len, struct apg_sql92 *q, char *err,
                            size_t errlen)
{
    if (err && errlen)
        err[0] = 0;
    q->sq_nnodes = q->sq_nprops = q->sq_nitems = q->sq_ntext = 0;
    q->sq_root = 0;
    if (!expr)
        len = 0;
    if (len > APG_SQL92_MAX_EXPR)
        return apg_errf(APG_EINVAL, err, errlen,
                        "the SQL92 expression is %zu bytes long; at most %d are accepted", len,
                        APG_SQL92_MAX_EXPR);
    if (expr && memchr(expr, 0, len))
        return apg_errf(APG_EINVAL, err, errlen,
                        "position %zu: a NUL byte is not allowed in an expression",
                        (size_t)((const char *)memchr(expr, 0, len) - expr) + 1);
    struct parser p;
    p.p_s = expr ? expr : "";
    p.p_len = len;
    p.p_q = q;
    p.p_err = err;
    p.p_errlen = errlen;
    p.p_depth = 0;
    p.p_failed = false;
    apg_sql92_lex(p.p_s, len, 0, &p.p_tok);
    int root = as_condition(&p, or_expr(&p));
    /* RocketMQ stops after the expression but has already scanned the next
     * token: a lexical error there refuses the expression. */
    if (root != NONE && p.p_tok.tk_kind == TK_ERROR)
        root = expected(&p, "an operator or the end of the expression");
    if (root == NONE) {
        if (!p.p_failed)
            fail_at(&p, p.p_tok.tk_pos, "invalid expression%s%s", "", "");
        q->sq_nnodes = 0;
        return APG_EINVAL;
    }
    q->sq_root = (uint16_t)root;
    return APG_OK;
}

bool apg_sql92_is_tag_type(const char *type)
{
    return !type || !type[0] || strcmp(type, "TAG") == 0;
}

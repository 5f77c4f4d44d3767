/* SQL92 filter evaluator: a compiled tree (sql92_parse.c) against one
 * message's property string.
 *
 * Values are typed as in RocketMQ's Java evaluator: every property value is
 * a string; literals are strings, Integers (32-bit), Longs, Doubles or
 * booleans; NULL stands for a missing property. Results are three-valued
 * (TRUE, FALSE, NULL) and a message matches only on TRUE. Where Java would
 * throw while evaluating (a property that is not a number compared with a
 * number, or a boolean literal on the left of '=' against a property), the
 * whole expression gives ERROR, which does not match: RocketMQ logs the
 * exception and drops the message, whatever the rest of the expression
 * says. AND and OR evaluate left to right and stop early exactly as
 * RocketMQ's do, so an error on the right of a decided OR does not count.
 *
 * Comparisons, as RocketMQ converts:
 *   - '=' : NULL on the left gives NULL, NULL on the right only FALSE (so
 *     "'x' <> a" is TRUE for a missing a while "a <> 'x'" is NULL); two
 *     NULLs are equal (IS NULL). Otherwise the values are compared after
 *     converting the string side to the other side's type: Integer.valueOf,
 *     Long.valueOf, Double.valueOf or Boolean.valueOf ("true" in any case);
 *     a number that does not parse is an ERROR. Integers widen to Long or
 *     Double; different types that cannot convert compare unequal.
 *   - '>' '>=' '<' '<=' (and BETWEEN): NULL on either side gives NULL; two
 *     strings are both read as doubles; otherwise as for '='. So "a > 5"
 *     reads a as a 32-bit integer ("5.5" or "3000000000" is an ERROR) and
 *     "a > 5.0" reads it as a double.
 *   - IN / NOT IN: NULL for a missing property, else exact string match.
 *   - CONTAINS / STARTSWITH / ENDSWITH and their NOT forms: FALSE for a
 *     missing property or an empty search string, else byte-wise.
 *   - NOT: NULL stays NULL. A bare property as a condition is NULL when
 *     missing and FALSE otherwise (it is never a boolean).
 *
 * Double ordering is Java's Double.compareTo (NaN above everything, -0.0
 * below 0.0). Strings compare byte-wise, which agrees with Java's UTF-16
 * comparison wherever the outcome can be seen (equality). Java's number
 * parsers accept Unicode digits; these accept ASCII digits only.
 *
 * Pure: the tree is walked with the values on the stack; a property is
 * looked up in the property string when first needed (from the end, so the
 * last value of a repeated name wins, as in RocketMQ's map) and kept for the
 * rest of the evaluation. No allocation. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/filter/sql92_int.h"
#include "protocol/props.h"

/* ---- Java's valueOf parsers ---------------------------------------------- */

static bool parse_integer(const char *s, size_t n, int64_t min, int64_t max, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (n && (s[0] == '+' || s[0] == '-')) {
        neg = s[0] == '-';
        i = 1;
    }
    if (i >= n)
        return false;
    uint64_t limit = neg ? (uint64_t)0 - (uint64_t)min : (uint64_t)max, v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (limit - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)((uint64_t)0 - v) : (int64_t)v;
    return true;
}

bool apg_sql92_parse_i32(const char *s, size_t n, int32_t *out)
{
    int64_t v;
    if (!parse_integer(s, n, INT32_MIN, INT32_MAX, &v))
        return false;
    *out = (int32_t)v;
    return true;
}

bool apg_sql92_parse_i64(const char *s, size_t n, int64_t *out)
{
    return parse_integer(s, n, INT64_MIN, INT64_MAX, out);
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Length of Java's floating-point syntax at s[0..n) without the optional
 * f/F/d/D suffix, or 0 when it is not one. Sign already removed. */
static size_t java_float_syntax(const char *s, size_t n, bool *hex)
{
    size_t i = 0, digits = 0;
    *hex = n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
    if (*hex) {
        i = 2;
        while (i < n && is_hex(s[i]))
            i++, digits++;
        if (i < n && s[i] == '.')
            for (i++; i < n && is_hex(s[i]); i++)
                digits++;
        if (!digits || i >= n || (s[i] != 'p' && s[i] != 'P'))
            return 0;
    } else {
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++, digits++;
        if (i < n && s[i] == '.')
            for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++)
                digits++;
        if (!digits)
            return 0;
        if (i == n || (s[i] != 'e' && s[i] != 'E'))
            return i;
    }
    i++; /* exponent letter */
    if (i < n && (s[i] == '+' || s[i] == '-'))
        i++;
    size_t e = i;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++;
    return i > e ? i : 0;
}

bool apg_sql92_parse_dbl(const char *s, size_t n, double *out)
{
    while (n && (unsigned char)s[0] <= ' ')
        s++, n--;
    while (n && (unsigned char)s[n - 1] <= ' ')
        n--;
    size_t i = 0;
    bool neg = false;
    if (n && (s[0] == '+' || s[0] == '-')) {
        neg = s[0] == '-';
        i = 1;
    }
    const char *b = s + i;
    size_t bn = n - i;
    if (bn == 3 && memcmp(b, "NaN", 3) == 0) {
        *out = NAN;
        return true;
    }
    if (bn == 8 && memcmp(b, "Infinity", 8) == 0) {
        *out = neg ? -INFINITY : INFINITY;
        return true;
    }
    bool hex;
    size_t k = java_float_syntax(b, bn, &hex);
    if (!k)
        return false;
    if (k != bn && !(k + 1 == bn && strchr("fFdD", b[k])))
        return false;
    char tmp[1024];
    if (k + 2 > sizeof(tmp))
        return false; /* longer than any sensible number: treated as not one */
    tmp[0] = neg ? '-' : '+';
    memcpy(tmp + 1, b, k);
    tmp[k + 1] = 0;
    *out = strtod(tmp, NULL);
    return true;
}

bool apg_sql92_parse_bool(const char *s, size_t n)
{
    return n == 4 && (s[0] | 0x20) == 't' && (s[1] | 0x20) == 'r' && (s[2] | 0x20) == 'u' &&
           (s[3] | 0x20) == 'e';
}

/* ---- comparison ---------------------------------------------------------- */

static int cmp_i64(int64_t a, int64_t b)
{
    return a < b ? -1 : a > b;
}

/* Java's Double.compareTo. */
static int cmp_dbl(double a, double b)
{
    if (a < b)
        return -1;
    if (a > b)
        return 1;
    int64_t x, y;
    double ca = isnan(a) ? NAN : a, cb = isnan(b) ? NAN : b;
    memcpy(&x, &ca, 8);
    memcpy(&y, &cb, 8);
    if (isnan(a))
        x = 0x7ff8000000000000LL;
    if (isnan(b))
        y = 0x7ff8000000000000LL;
    return cmp_i64(x, y);
}

static double as_dbl(const struct sql92_val *v)
{
    return v->v_type == VT_DBL ? v->v.d : (double)v->v.i;
}

static bool is_num(enum sql92_vtype t)
{
    return t == VT_INT || t == VT_LONG || t == VT_DBL;
}

/* Converts string s to type t as Java's valueOf would; false on a throw. */
static bool str_to(const struct sql92_val *s, enum sql92_vtype t, struct sql92_val *out)
{
    out->v_type = t;
    switch (t) {
    case VT_BOOL:
        out->v.b = apg_sql92_parse_bool(s->v.s.p, s->v.s.n);
        return true;
    case VT_INT: {
        int32_t v;
        if (!apg_sql92_parse_i32(s->v.s.p, s->v.s.n, &v))
            return false;
        out->v.i = v;
        return true;
    }
    case VT_LONG:
        return apg_sql92_parse_i64(s->v.s.p, s->v.s.n, &out->v.i);
    default:
        return apg_sql92_parse_dbl(s->v.s.p, s->v.s.n, &out->v.d);
    }
}

static int same_type_cmp(const struct sql92_val *l, const struct sql92_val *r)
{
    switch (l->v_type) {
    case VT_BOOL:
        return (int)l->v.b - (int)r->v.b;
    case VT_INT:
    case VT_LONG:
        return cmp_i64(l->v.i, r->v.i);
    case VT_DBL:
        return cmp_dbl(l->v.d, r->v.d);
    case VT_STR: {
        size_t n = l->v.s.n < r->v.s.n ? l->v.s.n : r->v.s.n;
        int c = n ? memcmp(l->v.s.p, r->v.s.p, n) : 0;
        return c ? c : cmp_i64((int64_t)l->v.s.n, (int64_t)r->v.s.n);
    }
    default:
        return 0;
    }
}

bool apg_sql92_compare(const struct sql92_val *l, const struct sql92_val *r, int *cmp)
{
    enum sql92_vtype lt = l->v_type, rt = r->v_type;
    struct sql92_val c;
    if (lt == rt) {
        *cmp = same_type_cmp(l, r);
        return true;
    }
    if (lt == VT_BOOL) {
        if (rt == VT_STR)
            return false; /* RocketMQ casts the Boolean to String: ClassCastException */
        *cmp = -1;
        return true;
    }
    if (is_num(lt)) {
        if (rt == VT_STR) {
            if (!str_to(r, lt, &c))
                return false;
            *cmp = same_type_cmp(l, &c);
        } else if (!is_num(rt)) {
            *cmp = -1;
        } else if (lt == VT_DBL || rt == VT_DBL) {
            *cmp = cmp_dbl(as_dbl(l), as_dbl(r));
        } else {
            *cmp = cmp_i64(l->v.i, r->v.i);
        }
        return true;
    }
    if (lt == VT_STR && rt != VT_NULL) {
        if (!str_to(l, rt, &c))
            return false;
        *cmp = same_type_cmp(&c, r);
        return true;
    }
    *cmp = -1;
    return true;
}

/* ---- evaluation ---------------------------------------------------------- */

struct ctx {
    const struct apg_sql92 *c_q;
    const char *c_props;
    size_t c_plen;
    uint8_t c_seen[APG_SQL92_MAX_PROPS];    /* looked up yet */
    const char *c_val[APG_SQL92_MAX_PROPS]; /* NULL: missing */
    size_t c_len[APG_SQL92_MAX_PROPS];
};

static void set_bool(struct sql92_val *v, bool b)
{
    v->v_type = VT_BOOL;
    v->v.b = b;
}

static bool is_false(const struct sql92_val *v)
{
    return v->v_type == VT_BOOL && !v->v.b;
}

static bool is_true(const struct sql92_val *v)
{
    return v->v_type == VT_BOOL && v->v.b;
}

static bool str_has(const struct sql92_val *v, const char *s, size_t n, enum sql92_op op)
{
    const char *h = v->v.s.p;
    size_t hn = v->v.s.n;
    if (n > hn)
        return false;
    if (op == OP_STARTSWITH)
        return memcmp(h, s, n) == 0;
    if (op == OP_ENDSWITH)
        return memcmp(h + hn - n, s, n) == 0;
    for (size_t i = 0; i + n <= hn; i++) {
        const char *f = memchr(h + i, s[0], hn - n - i + 1);
        if (!f)
            return false;
        i = (size_t)(f - h);
        if (memcmp(f, s, n) == 0)
            return true;
    }
    return false;
}

/* false: evaluation threw (ERROR). */
static bool ev(struct ctx *c, int n, struct sql92_val *out)
{
    const struct apg_sql92 *q = c->c_q;
    const struct apg_sql92_node *sn = &q->sq_nodes[n];
    struct sql92_val l, r;
    int cmp;
    switch ((enum sql92_op)sn->sn_op) {
    case OP_CONST:
        out->v_type = (enum sql92_vtype)sn->sn_type;
        if (sn->sn_type == VT_STR) {
            out->v.s.p = q->sq_text + sn->sn_s.ss_off;
            out->v.s.n = sn->sn_s.ss_len;
        } else if (sn->sn_type == VT_DBL) {
            out->v.d = sn->sn_v.d;
        } else if (sn->sn_type == VT_BOOL) {
            out->v.b = sn->sn_v.i != 0;
        } else {
            out->v.i = sn->sn_v.i;
        }
        return true;
    case OP_PROP:
        if (!c->c_seen[sn->sn_a]) {
            const struct apg_sql92_str *nm = &q->sq_props[sn->sn_a];
            c->c_seen[sn->sn_a] = 1;
            c->c_val[sn->sn_a] =
                c->c_props ? apg_props_findn(c->c_props, c->c_plen, q->sq_text + nm->ss_off,
                                             nm->ss_len, &c->c_len[sn->sn_a])
                           : NULL;
        }
        if (!c->c_val[sn->sn_a]) {
            out->v_type = VT_NULL;
        } else {
            out->v_type = VT_STR;
            out->v.s.p = c->c_val[sn->sn_a];
            out->v.s.n = c->c_len[sn->sn_a];
        }
        return true;
    case OP_NEG:
        if (!ev(c, sn->sn_a, out))
            return false;
        if (out->v_type == VT_INT || out->v_type == VT_LONG)
            out->v.i = (int64_t)((uint64_t)0 - (uint64_t)out->v.i);
        else if (out->v_type == VT_DBL)
            out->v.d = -out->v.d;
        else
            out->v_type = VT_NULL;
        return true;
    case OP_NOT:
        if (!ev(c, sn->sn_a, out))
            return false;
        if (out->v_type == VT_BOOL)
            out->v.b = !out->v.b;
        return true;
    case OP_BCAST:
        if (!ev(c, sn->sn_a, out))
            return false;
        if (out->v_type != VT_NULL && out->v_type != VT_BOOL)
            set_bool(out, false);
        return true;
    case OP_AND:
        if (!ev(c, sn->sn_a, &l))
            return false;
        if (is_false(&l))
            return set_bool(out, false), true;
        if (!ev(c, sn->sn_b, &r))
            return false;
        if (is_false(&r))
            return set_bool(out, false), true;
        if (l.v_type != VT_BOOL || r.v_type != VT_BOOL)
            out->v_type = VT_NULL;
        else
            set_bool(out, true);
        return true;
    case OP_OR:
        if (!ev(c, sn->sn_a, &l))
            return false;
        if (is_true(&l))
            return set_bool(out, true), true;
        if (!ev(c, sn->sn_b, &r))
            return false;
        if (is_true(&r))
            return set_bool(out, true), true;
        if (l.v_type != VT_BOOL || r.v_type != VT_BOOL)
            out->v_type = VT_NULL;
        else
            set_bool(out, false);
        return true;
    case OP_EQ:
        if (!ev(c, sn->sn_a, &l) || !ev(c, sn->sn_b, &r))
            return false;
        if ((l.v_type == VT_NULL) != (r.v_type == VT_NULL)) {
            if (l.v_type == VT_NULL)
                out->v_type = VT_NULL;
            else
                set_bool(out, false);
            return true;
        }
        if (l.v_type == VT_NULL)
            return set_bool(out, true), true;
        if (!apg_sql92_compare(&l, &r, &cmp))
            return false;
        set_bool(out, cmp == 0);
        return true;
    case OP_GT:
    case OP_GE:
    case OP_LT:
    case OP_LE:
        if (!ev(c, sn->sn_a, &l))
            return false;
        if (l.v_type == VT_NULL)
            return out->v_type = VT_NULL, true;
        if (!ev(c, sn->sn_b, &r))
            return false;
        if (r.v_type == VT_NULL)
            return out->v_type = VT_NULL, true;
        if (l.v_type == VT_STR && r.v_type == VT_STR) {
            double a, b;
            if (!apg_sql92_parse_dbl(l.v.s.p, l.v.s.n, &a) ||
                !apg_sql92_parse_dbl(r.v.s.p, r.v.s.n, &b))
                return false;
            cmp = cmp_dbl(a, b);
        } else if (!apg_sql92_compare(&l, &r, &cmp)) {
            return false;
        }
        set_bool(out, sn->sn_op == OP_GT   ? cmp > 0
                      : sn->sn_op == OP_GE ? cmp >= 0
                      : sn->sn_op == OP_LT ? cmp < 0
                                           : cmp <= 0);
        return true;
    case OP_IN:
        if (!ev(c, sn->sn_a, &l))
            return false;
        if (l.v_type != VT_STR) {
            out->v_type = VT_NULL;
            return true;
        }
        {
            bool found = false;
            for (uint16_t i = 0; i < sn->sn_s.ss_len && !found; i++) {
                const struct apg_sql92_str *it = &q->sq_items[sn->sn_s.ss_off + i];
                found = it->ss_len == l.v.s.n &&
                        (l.v.s.n == 0 || memcmp(q->sq_text + it->ss_off, l.v.s.p, l.v.s.n) == 0);
            }
            set_bool(out, found != (sn->sn_type != 0));
        }
        return true;
    case OP_CONTAINS:
    case OP_STARTSWITH:
    case OP_ENDSWITH:
        if (sn->sn_s.ss_len == 0)
            return set_bool(out, false), true;
        if (!ev(c, sn->sn_a, &l))
            return false;
        if (l.v_type != VT_STR)
            return set_bool(out, false), true;
        set_bool(out, str_has(&l, q->sq_text + sn->sn_s.ss_off, sn->sn_s.ss_len,
                              (enum sql92_op)sn->sn_op) != (sn->sn_type != 0));
        return true;
    }
    return false;
}

enum apg_sql92_result apg_sql92_eval(const struct apg_sql92 *q, const char *props, size_t len)
{
    if (!q->sq_nnodes)
        return APG_SQL92_ERROR;
    struct ctx c;
    c.c_q = q;
    c.c_props = props;
    c.c_plen = len;
    memset(c.c_seen, 0, q->sq_nprops);
    struct sql92_val v;
    if (!ev(&c, q->sq_root, &v))
        return APG_SQL92_ERROR;
    if (v.v_type == VT_NULL)
        return APG_SQL92_UNKNOWN;
    return v.v_type == VT_BOOL && v.v.b ? APG_SQL92_TRUE : APG_SQL92_FALSE;
}

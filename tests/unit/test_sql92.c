/* Unit tests for src/protocol/filter: SQL92 expressions against property
 * strings, one table of (expression, properties, RocketMQ's outcome), and a
 * table of expressions RocketMQ refuses with the position we report. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/filter/sql92.h"

/* Properties written "a=1;b=x" become a\x011\x02b\x01x\x02. */
static size_t props(const char *in, char *out)
{
    size_t n = 0;
    for (; *in; in++)
        out[n++] = *in == '=' ? '\x01' : *in == ';' ? '\x02' : *in;
    if (n)
        out[n++] = '\x02';
    out[n] = 0;
    return n;
}

struct row {
    const char *expr;
    const char *props;
    char want; /* T true, F false, N null (unknown), E evaluation error */
};

static const struct row rows[] = {
    {"a > 5 AND b = 'x'", "a=6;b=x", 'T'},
    {"a > 5 AND b = 'x'", "a=5;b=x", 'F'},
    {"a > 5 AND b = 'x'", "b=x", 'N'},
    {"a > 5 AND b = 'x'", "a=6", 'N'},
    {"a > 5 AND b = 'x'", "a=abc;b=x", 'E'},
    {"a > 5 AND b = 'x'", "a=5.5;b=x", 'E'}, /* Integer.valueOf("5.5") throws */
    {"a > 5 AND b = 'x'", "a=6;b=y", 'F'},
    {"a > 5.0", "a=5.5", 'T'},
    {"a > 3000000000", "a=3000000001", 'T'}, /* a Long literal reads a as a Long */
    {"a > 5", "a=3000000001", 'E'},          /* ...an Integer literal as an Integer */
    {"a > 5", "a=+6", 'T'},
    {"a > 5", "a= 6", 'E'},
    {"a = 'x' OR b > 5", "a=x;b=abc", 'T'}, /* OR stops before the error */
    {"b > 5 OR a = 'x'", "a=x;b=abc", 'E'},
    {"a = 1 OR b = 2", "", 'N'},
    {"a = 1 AND b = 2", "a=2", 'F'},
    {"a IS NULL", "", 'T'},
    {"a IS NULL", "b=1", 'T'},
    {"a IS NULL", "a=1", 'F'},
    {"a IS NOT NULL", "a=1", 'T'},
    {"a IS NOT NULL", "", 'F'},
    {"a <> 'x'", "", 'N'},
    {"'x' <> a", "", 'T'}, /* a NULL on the right of '=' is FALSE, not NULL */
    {"a <> 'x'", "a=y", 'T'},
    {"a IN ('x', 'y')", "a=y", 'T'},
    {"a IN ('x', 'y')", "a=z", 'F'},
    {"a IN ('x', 'y')", "", 'N'},
    {"a NOT IN ('x', 'y')", "a=z", 'T'},
    {"a NOT IN ('x', 'y')", "a=x", 'F'},
    {"a NOT IN ('x', 'y')", "", 'N'},
    {"(a) in ('x')", "a=x", 'T'},
    {"a BETWEEN 1 AND 10", "a=10", 'T'},
    {"a BETWEEN 1 AND 10", "a=1", 'T'},
    {"a BETWEEN 1 AND 10", "a=11", 'F'},
    {"a BETWEEN 1 AND 10", "", 'N'},
    {"a BETWEEN -5 AND 2.5", "a=-5", 'T'},
    {"a NOT BETWEEN 1 AND 10", "a=11", 'T'},
    {"a NOT BETWEEN 1 AND 10", "a=5", 'F'},
    {"a CONTAINS 'bc'", "a=abcd", 'T'},
    {"a CONTAINS 'bc'", "", 'F'},
    {"NOT (a CONTAINS 'bc')", "", 'T'},
    {"a NOT CONTAINS 'bc'", "", 'F'},
    {"a NOT CONTAINS 'bc'", "a=xyz", 'T'},
    {"a STARTSWITH 'ab'", "a=abc", 'T'},
    {"a STARTSWITH 'bc'", "a=abc", 'F'},
    {"a ENDSWITH 'bc'", "a=abc", 'T'},
    {"a NOT ENDSWITH 'bc'", "a=abc", 'F'},
    {"a STARTSWITH ''", "a=abc", 'F'},
    {"TRUE", "", 'T'},
    {"FALSE", "", 'F'},
    {"NULL", "", 'N'},
    {"a", "a=true", 'F'}, /* a property is a string, never a boolean */
    {"a", "", 'N'},
    {"NOT a", "a=x", 'T'},
    {"NOT a = 'x'", "a=x", 'E'}, /* (NOT a) = 'x': a Boolean against a String */
    {"NOT (a = 'x')", "a=y", 'T'},
    {"NOT (a = 'x')", "", 'N'},
    {"a = TRUE", "a=TRUE", 'T'},
    {"a = TRUE", "a=yes", 'F'},
    {"TRUE = a", "a=true", 'E'},
    {"5 = TRUE", "", 'F'},
    {"a = 5", "a=05", 'T'},
    {"a = 5", "a=+5", 'T'},
    {"a = 5", "a= 5", 'E'},
    {"a = 5.0", "a= 5 ", 'T'}, /* Double.valueOf trims */
    {"a = 5.0", "a=5d", 'T'},
    {"a = 5.0", "a=NaN", 'F'},
    {"a > 5.0", "a=Infinity", 'T'},
    {"a = 16.0", "a=0x1p4", 'T'},
    {"a = 5.0", "a=0x5", 'E'},
    {"a > b", "a=10;b=9.5", 'T'}, /* two strings compare as doubles */
    {"a > b", "a=10;b=x", 'E'},
    {"a = b", "a=1;b=1.0", 'F'}, /* but '=' compares them as strings */
    {"-a > 5", "a=10", 'N'},     /* negating a string gives NULL */
    {"a > -5", "a=-4", 'T'},
    {"a > - -5", "a=6", 'T'},
    {"a > +5", "a=6", 'T'},
    {"a = 'it''s'", "a=it's", 'T'},
    {"a between 1 and 3 or B = 'q'", "B=q", 'T'},
    {"a between 1 and 3 Or B = 'q'", "a=2", 'T'},
    {"a = 'x' )", "a=x", 'T'}, /* RocketMQ ignores what follows the expression */
    {"a = 05", "a=0", 'T'},    /* "0" then "5", which is ignored */
    {"a = 'x' -- note\n", "a=x", 'T'},
    {"/* c */ a = 'x'", "a=x", 'T'},
    {"a > 5L", "a=6", 'T'},
    {"a > 2147483648", "a=2147483649", 'T'},
    {"TAGS = 'TagA'", "TAGS=TagA", 'T'},
    {"a = 'y'", "a=x;a=y", 'T'}, /* the last value of a repeated name wins */
    {"a >= 1e1", "a=10", 'T'},
    {"a >= .5", "a=0.5", 'T'},
    {"(a > 5) = TRUE", "a=6", 'T'},
    {"(a > 5) = TRUE", "a=4", 'F'},
    {"a_1 = 'x' AND $b = 'y'", "a_1=x;$b=y", 'T'},
    {"a > 5 AND a < 10 AND b IN ('p', 'q') AND c IS NULL", "a=7;b=q", 'T'},
    {"a < 5", "a=-0.0", 'E'}, /* Integer.valueOf("-0.0") throws */
};

static void test_table(void **state)
{
    (void)state;
    static struct apg_sql92 q;
    char err[256], p[256];
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct row *r = &rows[i];
        apg_err_t e = apg_sql92_compile(r->expr, strlen(r->expr), &q, err, sizeof(err));
        if (e) {
            print_error("compile '%s': %s\n", r->expr, err);
            fail();
        }
        size_t n = props(r->props, p);
        enum apg_sql92_result res = apg_sql92_eval(&q, p, n);
        char got = "TFNE"[res == APG_SQL92_TRUE      ? 0
                          : res == APG_SQL92_FALSE   ? 1
                          : res == APG_SQL92_UNKNOWN ? 2
                                                     : 3];
        if (got != r->want) {
            print_error("'%s' with %s: got %c, want %c\n", r->expr, r->props, got, r->want);
            fail();
        }
        assert_int_equal(apg_sql92_match(&q, p, n), r->want == 'T');
    }
}

struct bad {
    const char *expr;
    const char *msg; /* a substring of the error */
};

static const struct bad bads[] = {
    {"", "position 1: expected a value"},
    {"   ", "position 4: expected a value"},
    {"a >", "position 4: expected a value"},
    {"a > 'x'", "position 5:"},
    {"a = NULL", "position 3: NULL cannot be compared"},
    {"a BETWEEN 10 AND 0", "low bound"},
    {"a and between 2 and 10", "position 7: expected a value"},
    {"5", "position 1: expected a condition"},
    {"'x' IN ('a')", "IN needs a property"},
    {"a > 100000000000000000000000", "64 bits"},
    {"a > 0.0", "must not be zero"},
    {"a > 1e999", "larger than"},
    {"a = 'x", "position 5: expected a value"},
    {"a # b", "position 3: expected an operator"},
    {"TRUE = 'x'", "boolean literal"},
    {"a IS 5", "position 6: expected NULL"},
    {"NOT 5", "expected a condition"},
    {"a > TRUE", "compare numbers"},
    {"a > (b = 1)", "compare numbers"},
    {"a IN ()", "position 7: expected a string"},
    {"a IN ('x' 'y')", "position 11: expected ',' or ')'"},
    {"(a = 1", "position 7: expected ')'"},
    {"a CONTAINS 5", "a string after CONTAINS"},
    {"a BETWEEN 1 OR 2", "AND between"},
    {"a = 1 AND 5", "expected a condition"},
    {"-a", "expected a condition"},
    {"a = 'x\0'", "NUL byte"},
};

static void test_refused(void **state)
{
    (void)state;
    static struct apg_sql92 q;
    char err[256];
    for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
        const char *x = bads[i].expr;
        size_t n = strlen(x);
        if (strstr(bads[i].msg, "NUL byte"))
            n = 9;
        apg_err_t e = apg_sql92_compile(x, n, &q, err, sizeof(err));
        if (e != APG_EINVAL || !strstr(err, bads[i].msg)) {
            print_error("'%s': got %d '%s', want '%s'\n", x, e, err, bads[i].msg);
            fail();
        }
    }
    /* Nesting and size limits. */
    char deep[512];
    memset(deep, '(', 100);
    snprintf(deep + 100, sizeof(deep) - 100, "a = 1");
    assert_int_equal(apg_sql92_compile(deep, strlen(deep), &q, err, sizeof(err)), APG_EINVAL);
    assert_non_null(strstr(err, "nests deeper"));
    char big[APG_SQL92_MAX_EXPR + 2];
    memset(big, ' ', sizeof(big));
    assert_int_equal(apg_sql92_compile(big, sizeof(big), &q, err, sizeof(err)), APG_EINVAL);
}

static void test_limits_and_types(void **state)
{
    (void)state;
    static struct apg_sql92 q;
    char err[256];
    assert_true(apg_sql92_is_tag_type(NULL));
    assert_true(apg_sql92_is_tag_type(""));
    assert_true(apg_sql92_is_tag_type("TAG"));
    assert_false(apg_sql92_is_tag_type("SQL92"));
    /* 32 distinct names are fine, the 33rd is refused. */
    char x[2048];
    size_t n = 0;
    for (int i = 0; i < 33; i++)
        n += (size_t)snprintf(x + n, sizeof(x) - n, "%sp%d = 'v'", i ? " OR " : "", i);
    assert_int_equal(apg_sql92_compile(x, n, &q, err, sizeof(err)), APG_EINVAL);
    assert_non_null(strstr(err, "32 distinct"));
    /* The compiled form is self-contained: a copy works after the text is gone. */
    char text[] = "k = 'v'";
    assert_int_equal(apg_sql92_compile(text, strlen(text), &q, err, sizeof(err)), APG_OK);
    memset(text, 'z', sizeof(text) - 1);
    static struct apg_sql92 copy;
    copy = q;
    assert_true(apg_sql92_match(&copy, "k\001v\002", 4));
    assert_false(apg_sql92_match(&copy, "k\001w\002", 4));
    assert_false(apg_sql92_match(&copy, NULL, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_limits_and_types),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

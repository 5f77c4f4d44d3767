/* Private to src/protocol/filter: tokens, node operators and value types
 * shared by the lexer, parser and evaluator. */
#ifndef APG_PROTOCOL_FILTER_SQL92_INT_H
#define APG_PROTOCOL_FILTER_SQL92_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/filter/sql92.h"

enum sql92_tok_kind {
    TK_EOF,
    TK_ERROR, /* lexical error: tk_pos says where */
    TK_ID,
    TK_DECIMAL,
    TK_FLOAT,
    TK_STRING,
    /* keywords, any letter case */
    TK_NOT,
    TK_AND,
    TK_OR,
    TK_BETWEEN,
    TK_IN,
    TK_TRUE,
    TK_FALSE,
    TK_NULL,
    TK_IS,
    TK_CONTAINS,
    TK_STARTSWITH,
    TK_ENDSWITH,
    /* punctuation */
    TK_EQ,
    TK_NE,
    TK_LT,
    TK_LE,
    TK_GT,
    TK_GE,
    TK_LPAREN,
    TK_RPAREN,
    TK_COMMA,
    TK_PLUS,
    TK_MINUS,
};

struct sql92_tok {
    enum sql92_tok_kind tk_kind;
    size_t tk_pos; /* byte offset of the first character */
    size_t tk_len;
};

/* Scans the token at or after pos (skipping blanks and comments). Never
 * reads past len. */
void apg_sql92_lex(const char *s, size_t len, size_t pos, struct sql92_tok *t);

/* A token kind as the error messages show it ("'<>'", "AND", "a string"). */
const char *apg_sql92_tok_name(enum sql92_tok_kind k);

/* Node operators. */
enum sql92_op {
    OP_CONST, /* sn_type, sn_v or sn_s */
    OP_PROP,  /* sn_a: property slot */
    OP_NEG,   /* -a: numbers negated, anything else NULL */
    OP_NOT,   /* three-valued NOT */
    OP_BCAST, /* a property used as a condition: NULL when missing, else FALSE */
    OP_AND,
    OP_OR,
    OP_EQ, /* RocketMQ's equality, also IS NULL (b is the NULL constant) */
    OP_GT,
    OP_GE,
    OP_LT,
    OP_LE,
    OP_IN,         /* sn_type 1: NOT IN; sn_s: first item, count */
    OP_CONTAINS,   /* sn_type 1: NOT CONTAINS; sn_s: search text */
    OP_STARTSWITH, /* likewise */
    OP_ENDSWITH,
};

/* Value types (Java's classes in RocketMQ's evaluator). */
enum sql92_vtype {
    VT_NULL,
    VT_BOOL,
    VT_INT,  /* java.lang.Integer: a literal that fits 32 bits */
    VT_LONG, /* java.lang.Long */
    VT_DBL,  /* java.lang.Double */
    VT_STR,  /* every property value, and string literals */
};

/* Java's Integer.valueOf / Long.valueOf / Double.valueOf / Boolean.valueOf
 * on a byte string (ASCII digits only). False when Java would throw. */
bool apg_sql92_parse_i32(const char *s, size_t n, int32_t *out);
bool apg_sql92_parse_i64(const char *s, size_t n, int64_t *out);
bool apg_sql92_parse_dbl(const char *s, size_t n, double *out);
bool apg_sql92_parse_bool(const char *s, size_t n);

/* A value during evaluation or constant checking. */
struct sql92_val {
    enum sql92_vtype v_type;
    union {
        bool b;
        int64_t i; /* VT_INT and VT_LONG */
        double d;
        struct {
            const char *p;
            size_t n;
        } s;
    } v;
};

/* Java's Comparable ordering of two non-null values after RocketMQ's type
 * conversions (string to the other side's type, Integer widened to Long or
 * Double, ...): <0, 0, >0 in *cmp; false when Java would throw. */
bool apg_sql92_compare(const struct sql92_val *l, const struct sql92_val *r, int *cmp);

#endif

/* SQL92 filter lexer: splits an expression into tokens the way RocketMQ's
 * selector grammar does.
 *
 * Blanks are space, tab, CR, LF and form feed. "--" starts a comment that
 * runs to the end of the line, but only when a line end follows (otherwise
 * the two dashes are two minus signs); block comments are delimited by slash-star
 * and star-slash. Keywords (NOT AND OR BETWEEN IN TRUE FALSE NULL IS
 * CONTAINS STARTSWITH ENDSWITH) match in any letter case; any other word
 * made of ASCII letters, digits, '_' and '$' (not starting with a digit) is
 * a property name, case preserved.
 *
 * Numbers, by longest match: digits followed by '.' (with optional digits
 * and exponent), '.' and digits, or digits with an exponent (e/E, optional
 * sign, digits) are floating-point; otherwise "0" alone, or a digit 1-9 and
 * more digits with an optional l/L, is a decimal (so "05" is two tokens, as
 * in RocketMQ, which then fails to parse). A string is quoted with ' and a
 * doubled '' stands for one quote; it may hold any byte.
 *
 * Pure; tokens are offsets into the caller's text. */
#include <string.h>

#include "protocol/filter/sql92_int.h"

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_id_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$';
}

static bool is_id_part(char c)
{
    return is_id_start(c) || is_digit(c);
}

/* Length of an exponent at s[i..) (e, optional sign, digits), or 0. */
static size_t exponent_len(const char *s, size_t len, size_t i)
{
    size_t j = i;
    if (j >= len || (s[j] != 'e' && s[j] != 'E'))
        return 0;
    j++;
    if (j < len && (s[j] == '+' || s[j] == '-'))
        j++;
    size_t d = j;
    while (j < len && is_digit(s[j]))
        j++;
    return j > d ? j - i : 0;
}

/* Skips blanks and comments from pos; returns the new position. */
static size_t skip(const char *s, size_t len, size_t pos)
{
    for (;;) {
        while (pos < len && is_blank(s[pos]))
            pos++;
        if (pos + 1 < len && s[pos] == '-' && s[pos + 1] == '-') {
            size_t j = pos + 2;
            while (j < len && s[j] != '\n' && s[j] != '\r')
                j++;
            if (j >= len)
                return pos; /* no line end: two minus signs */
            pos = j + 1;
            continue;
        }
        if (pos + 1 < len && s[pos] == '/' && s[pos + 1] == '*') {
            const char *end = NULL;
            for (size_t j = pos + 2; j + 1 < len; j++)
                if (s[j] == '*' && s[j + 1] == '/') {
                    end = s + j;
                    break;
                }
            if (!end)
                return pos; /* unterminated: '/' is not a token, the caller fails */
            pos = (size_t)(end - s) + 2;
            continue;
        }
        return pos;
    }
}

static const struct {
    const char *kw;
    enum sql92_tok_kind kind;
} keywords[] = {
    {"NOT", TK_NOT},
    {"AND", TK_AND},
    {"OR", TK_OR},
    {"BETWEEN", TK_BETWEEN},
    {"IN", TK_IN},
    {"TRUE", TK_TRUE},
    {"FALSE", TK_FALSE},
    {"NULL", TK_NULL},
    {"IS", TK_IS},
    {"CONTAINS", TK_CONTAINS},
    {"STARTSWITH", TK_STARTSWITH},
    {"ENDSWITH", TK_ENDSWITH},
};

static enum sql92_tok_kind word_kind(const char *w, size_t n)
{
    for (size_t k = 0; k < sizeof(keywords) / sizeof(keywords[0]); k++) {
        const char *kw = keywords[k].kw;
        if (strlen(kw) != n)
            continue;
        size_t i = 0;
        while (i < n && (w[i] & ~0x20) == kw[i])
            i++;
        if (i == n)
            return keywords[k].kind;
    }
    return TK_ID;
}

void apg_sql92_lex(const char *s, size_t len, size_t pos, struct sql92_tok *t)
{
    pos = skip(s, len, pos);
    t->tk_pos = pos;
    t->tk_len = 1;
    if (pos >= len) {
        t->tk_kind = TK_EOF;
        t->tk_len = 0;
        return;
    }
    char c = s[pos];
    char n = pos + 1 < len ? s[pos + 1] : 0;
    if (is_id_start(c)) {
        size_t j = pos + 1;
        while (j < len && is_id_part(s[j]))
            j++;
        t->tk_len = j - pos;
        t->tk_kind = word_kind(s + pos, t->tk_len);
        return;
    }
    if (is_digit(c) || (c == '.' && is_digit(n))) {
        size_t j = pos;
        while (j < len && is_digit(s[j]))
            j++;
        if (j < len && s[j] == '.') {
            j++;
            while (j < len && is_digit(s[j]))
                j++;
            j += exponent_len(s, len, j);
            t->tk_kind = TK_FLOAT;
        } else if (exponent_len(s, len, j)) {
            j += exponent_len(s, len, j);
            t->tk_kind = TK_FLOAT;
        } else if (c == '0') {
            j = pos + 1;
            t->tk_kind = TK_DECIMAL;
        } else {
            if (j < len && (s[j] == 'l' || s[j] == 'L'))
                j++;
            t->tk_kind = TK_DECIMAL;
        }
        t->tk_len = j - pos;
        return;
    }
    if (c == '\'') {
        /* Longest match: when the string never closes, a doubled quote
         * seen on the way could have closed it instead. */
        size_t j = pos + 1, pair = 0;
        for (;;) {
            if (j >= len) {
                if (!pair) {
                    t->tk_kind = TK_ERROR; /* unterminated string */
                    return;
                }
                j = pair;
                break;
            }
            if (s[j] == '\'') {
                if (j + 1 < len && s[j + 1] == '\'') {
                    pair = j;
                    j += 2;
                    continue;
                }
                break;
            }
            j++;
        }
        t->tk_kind = TK_STRING;
        t->tk_len = j + 1 - pos;
        return;
    }
    switch (c) {
    case '=':
        t->tk_kind = TK_EQ;
        return;
    case '<':
        if (n == '>' || n == '=') {
            t->tk_kind = n == '>' ? TK_NE : TK_LE;
            t->tk_len = 2;
        } else {
            t->tk_kind = TK_LT;
        }
        return;
    case '>':
        if (n == '=') {
            t->tk_kind = TK_GE;
            t->tk_len = 2;
        } else {
            t->tk_kind = TK_GT;
        }
        return;
    case '(':
        t->tk_kind = TK_LPAREN;
        return;
    case ')':
        t->tk_kind = TK_RPAREN;
        return;
    case ',':
        t->tk_kind = TK_COMMA;
        return;
    case '+':
        t->tk_kind = TK_PLUS;
        return;
    case '-':
        t->tk_kind = TK_MINUS;
        return;
    default:
        t->tk_kind = TK_ERROR;
        return;
    }
}

const char *apg_sql92_tok_name(enum sql92_tok_kind k)
{
    switch (k) {
    case TK_EOF:
        return "the end";
    case TK_ERROR:
        return "an invalid character";
    case TK_ID:
        return "a property name";
    case TK_DECIMAL:
        return "an integer";
    case TK_FLOAT:
        return "a decimal number";
    case TK_STRING:
        return "a string";
    case TK_EQ:
        return "'='";
    case TK_NE:
        return "'<>'";
    case TK_LT:
        return "'<'";
    case TK_LE:
        return "'<='";
    case TK_GT:
        return "'>'";
    case TK_GE:
        return "'>='";
    case TK_LPAREN:
        return "'('";
    case TK_RPAREN:
        return "')'";
    case TK_COMMA:
        return "','";
    case TK_PLUS:
        return "'+'";
    case TK_MINUS:
        return "'-'";
    default:
        for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++)
            if (keywords[i].kind == k)
                return keywords[i].kw;
        return "?";
    }
}

/* libFuzzer harness for the SQL92 filter (src/protocol/filter).
 *
 * Input: an expression, a NUL byte, then a property string (name \x01 value
 * \x02 ...). The expression is compiled; a refusal must come with a message
 * naming a position inside the text (or the length limit). An accepted one
 * is evaluated against the properties: the result is one of the four, the
 * same on a copy of the compiled form and on a second compilation, and
 * matching agrees with it. Sanitizers catch any read outside the inputs.
 * Seeds (tests/fuzz/corpus/sql) are expressions from the unit tests and
 * RocketMQ's documentation with a few property strings. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/filter/sql92.h"

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

static struct apg_sql92 q1, q2;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    const char *nul = memchr(s, 0, size);
    size_t elen = nul ? (size_t)(nul - s) : size;
    const char *props = nul ? nul + 1 : NULL;
    size_t plen = nul ? size - elen - 1 : 0;
    char err[256];
    apg_err_t e = apg_sql92_compile(s, elen, &q1, err, sizeof(err));
    if (e) {
        CHECK(e == APG_EINVAL);
        CHECK(err[0]);
        if (elen <= APG_SQL92_MAX_EXPR) {
            CHECK(strncmp(err, "position ", 9) == 0);
            CHECK(strtoul(err + 9, NULL, 10) >= 1 && strtoul(err + 9, NULL, 10) <= elen + 1);
        }
        CHECK(!apg_sql92_match(&q1, props, plen));
        return 0;
    }
    enum apg_sql92_result r = apg_sql92_eval(&q1, props, plen);
    CHECK(r == APG_SQL92_TRUE || r == APG_SQL92_FALSE || r == APG_SQL92_UNKNOWN ||
          r == APG_SQL92_ERROR);
    CHECK(apg_sql92_match(&q1, props, plen) == (r == APG_SQL92_TRUE));
    char *copy = malloc(elen ? elen : 1);
    memcpy(copy, s, elen);
    CHECK(apg_sql92_compile(copy, elen, &q2, err, sizeof(err)) == APG_OK);
    memset(copy, 0, elen);
    free(copy);
    CHECK(apg_sql92_eval(&q2, props, plen) == r);
    memcpy(&q2, &q1, sizeof(q1));
    CHECK(apg_sql92_eval(&q2, props, plen) == r);
    return 0;
}

/* SQL92 filter micro-benchmark: nanoseconds to compile an expression and to
 * evaluate it against one message's property string, next to the tag
 * filter's exact check on the same message.
 *
 *   build/bench_sql92 [ITERATIONS] ["EXPR"]
 *
 * The property string is what a Java producer sends for a message with
 * tags, keys and two user properties (about 120 bytes). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "protocol/filter/sql92.h"
#include "protocol/props.h"
#include "protocol/tagexpr.h"

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    long iters = argc > 1 ? atol(argv[1]) : 10000000;
    const char *expr = argc > 2 ? argv[2] : "a > 5 AND b = 'x'";
    static const char props[] =
        "KEYS\001order-12345\002UNIQ_KEY\0017F0000010B4C18B4AAC27E6B2C6D0000"
        "\002WAIT\001true\002TAGS\001TagA\002a\0017\002b\001x\002";
    size_t plen = sizeof(props) - 1;
    static struct apg_sql92 q;
    char err[256];
    long citers = iters / 100 > 1000 ? iters / 100 : 1000;
    double t0 = now_ns();
    for (long i = 0; i < citers; i++)
        if (apg_sql92_compile(expr, strlen(expr), &q, err, sizeof(err))) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
    double compile_ns = (now_ns() - t0) / (double)citers;

    volatile long matched = 0;
    t0 = now_ns();
    for (long i = 0; i < iters; i++)
        matched += apg_sql92_match(&q, props, plen);
    double eval_ns = (now_ns() - t0) / (double)iters;

    static struct apg_tagexpr te;
    apg_tagexpr_parse("TagA || TagB", 12, &te, err, sizeof(err));
    volatile long tmatched = 0;
    t0 = now_ns();
    for (long i = 0; i < iters; i++) {
        size_t vl = 0;
        const char *v = apg_props_find(props, plen, "TAGS", &vl);
        tmatched += apg_tagexpr_match_tag(&te, v, vl);
    }
    double tag_ns = (now_ns() - t0) / (double)iters;
    printf("expr: %s\nproperties: %zu bytes\ncompile: %.0f ns\nsql92 eval: %.1f ns/msg "
           "(matched %ld of %ld)\ntag exact check: %.1f ns/msg (matched %ld)\n",
           expr, plen, compile_ns, eval_ns, (long)matched, iters, tag_ns, (long)tmatched);
    return 0;
}

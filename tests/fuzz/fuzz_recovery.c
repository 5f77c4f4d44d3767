/* libFuzzer harness for the recovery scanner: arbitrary bytes as a commit-log
 * segment image must never crash apg_scan_segment / apg_scan_find_valid /
 * apg_msgrec_decode, and whatever the scanner accepts must decode again. The
 * first 8 input bytes pick the segment base and the start offset. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "store/store_int.h"

/* Compiled into the harness (not taken from apogee_core) so that the scanner
 * and the record decoder carry libFuzzer's coverage instrumentation. */
#include "../../src/protocol/message.c"
#include "../../src/store/scan.c"

struct ctx {
    const uint8_t *buf;
    size_t len;
    int64_t base;
};

static void on_rec(void *ud, size_t pos, const struct apg_msgrec *r)
{
    struct ctx *c = ud;
    if (pos >= c->len || r->mr_total_size > c->len - pos)
        abort();
    if (r->mr_phys_offset != c->base + (int64_t)pos)
        abort();
    if (apg_msgrec_decode(c->buf + pos, c->len - pos, true, NULL, NULL) != APG_MSGREC_OK)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8)
        return 0;
    int64_t base = (int64_t)(apg_be32(data) & 0xFFFFF);
    size_t from = apg_be32(data + 4) % 64;
    const uint8_t *buf = data + 8;
    size_t len = size - 8;
    if (from > len)
        from = len;
    /* Copy so that reads past the end are caught by ASan. */
    uint8_t *copy = malloc(len ? len : 1);
    memcpy(copy, buf, len);
    struct ctx c = {copy, len, base};
    struct apg_scan_result r;
    apg_scan_segment(copy, len, len, base, from, true, on_rec, &c, &r);
    if (r.sr_end > len)
        abort();
    if (r.sr_next_valid != SIZE_MAX && r.sr_next_valid >= len)
        abort();
    apg_scan_segment(copy, len, len / 2, base, 0, false, NULL, NULL, &r);
    free(copy);
    return 0;
}

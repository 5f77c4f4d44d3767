/* Recovery scanner: walks one commit-log segment image record by record.
 *
 * Kept pure (a byte buffer in, a verdict out) so the libFuzzer harness
 * tests/fuzz/fuzz_recovery.c can throw arbitrary bytes at it. A record is
 * accepted only if its magic, sizes, body CRC and PHYSICALOFFSET (which must
 * equal the record's own position) all agree; the last check makes a false
 * positive in random or stale bytes practically impossible, which is what lets
 * recovery tell a torn tail (nothing valid after the bad point) from mid-log
 * corruption (valid records after it). */
#define _GNU_SOURCE
#include <string.h>

#include "common/buf.h"
#include "store/store_int.h"

static bool self_identifying(const uint8_t *buf, size_t len, int64_t base, size_t pos,
                             bool check_crc, struct apg_msgrec *r, const char **why)
{
    enum apg_msgrec_check c = apg_msgrec_decode(buf + pos, len - pos, check_crc, r, why);
    if (c != APG_MSGREC_OK)
        return false;
    if (r->mr_phys_offset != base + (int64_t)pos) {
        if (why)
            *why = "PHYSICALOFFSET field does not match the record position";
        return false;
    }
    return true;
}

size_t apg_scan_find_valid(const uint8_t *buf, size_t len, int64_t base, size_t from)
{
    static const uint8_t magic[4] = {0xDA, 0xA3, 0x20, 0xA7};
    struct apg_msgrec r;
    size_t p = from + 4;
    while (p + 4 <= len) {
        const uint8_t *hit = memmem(buf + p, len - p, magic, sizeof(magic));
        if (!hit)
            return SIZE_MAX;
        size_t at = (size_t)(hit - buf) - 4; /* magic sits at record offset 4 */
        if (at >= from && self_identifying(buf, len, base, at, true, &r, NULL))
            return at;
        p = (size_t)(hit - buf) + 1;
    }
    return SIZE_MAX;
}

void apg_scan_segment(const uint8_t *buf, size_t len, size_t search_len, int64_t base, size_t from,
                      bool check_crc, apg_scan_fn fn, void *ud, struct apg_scan_result *res)
{
    struct apg_msgrec r;
    size_t pos = from;
    memset(res, 0, sizeof(*res));
    res->sr_next_valid = SIZE_MAX;
    for (;;) {
        if (pos == len) {
            res->sr_how = APG_SCAN_END_FULL;
            break;
        }
        const char *why = NULL;
        enum apg_msgrec_check c = apg_msgrec_decode(buf + pos, len - pos, check_crc, &r, &why);
        if (c == APG_MSGREC_OK && r.mr_phys_offset != base + (int64_t)pos) {
            c = APG_MSGREC_BAD;
            why = "PHYSICALOFFSET field does not match the record position";
        }
        if (c == APG_MSGREC_OK) {
            if (fn)
                fn(ud, pos, &r);
            res->sr_records++;
            pos += r.mr_total_size;
            continue;
        }
        if (c == APG_MSGREC_BLANK) {
            /* The filler must run exactly to the end of the segment. */
            if (apg_be32(buf + pos) == len - pos) {
                res->sr_how = APG_SCAN_END_BLANK;
                break;
            }
            c = APG_MSGREC_BAD;
            why = "end-of-segment filler does not reach the end of the segment";
        }
        res->sr_how = c == APG_MSGREC_ZERO ? APG_SCAN_END_ZERO : APG_SCAN_END_BAD;
        res->sr_why = c == APG_MSGREC_ZERO ? "zero-filled space" : why;
        if (search_len > len)
            search_len = len;
        res->sr_next_valid = apg_scan_find_valid(buf, search_len, base, pos + 1);
        break;
    }
    res->sr_end = pos;
}

/* Store internals shared by store.c, recover.c and the tests/fuzzers.
 * Not part of the broker contract (that is store.h). */
#ifndef APG_STORE_STORE_INT_H
#define APG_STORE_STORE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/message.h"

/* Outcome of scanning one commit-log segment image. */
enum apg_scan_end {
    APG_SCAN_END_ZERO = 0, /* reached zero-filled (never written) space */
    APG_SCAN_END_BLANK,    /* reached the end-of-segment filler */
    APG_SCAN_END_FULL,     /* records fill the segment exactly */
    APG_SCAN_END_BAD,      /* an invalid record at sr_end */
};

struct apg_scan_result {
    enum apg_scan_end sr_how;
    size_t sr_end;      /* offset (within the segment) just past the last valid record */
    size_t sr_records;  /* valid records seen */
    const char *sr_why; /* reason for APG_SCAN_END_BAD (static) */
    /* For BAD and ZERO: offset of the first valid, self-identifying record
     * after sr_end (PHYSICALOFFSET field == its own position), or SIZE_MAX.
     * Such a record means mid-log corruption, not a torn tail. */
    size_t sr_next_valid;
};

/* Record callback for apg_scan_segment: pos is the offset within the segment. */
typedef void (*apg_scan_fn)(void *ud, size_t pos, const struct apg_msgrec *r);

/* Validates the records of one segment image buf[0..len) whose first byte has
 * commit-log offset `base`, starting at segment offset `from` (a record
 * boundary). Every record must have a known magic, consistent lengths, a body
 * CRC that matches (when check_crc) and a PHYSICALOFFSET equal to its position.
 * fn (may be NULL) is called for each valid record. The search for valid
 * records after a bad point looks only below search_len (the end of the
 * written data; never-written space need not be read). Pure: reads only buf. */
void apg_scan_segment(const uint8_t *buf, size_t len, size_t search_len, int64_t base, size_t from,
                      bool check_crc, apg_scan_fn fn, void *ud, struct apg_scan_result *res);

/* Searches buf[from..len) for a valid record whose PHYSICALOFFSET equals its
 * own position (base + offset). Returns its offset or SIZE_MAX. Pure. */
size_t apg_scan_find_valid(const uint8_t *buf, size_t len, int64_t base, size_t from);

#endif

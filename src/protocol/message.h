/* Stored message record codec (docs/wire.md §9.2): pure, bounds-checked. The
 * host addresses and the offset message ids derived from a record are in
 * protocol/msgid.h.
 *
 * The record a producer's message becomes in the commit log is also exactly
 * what PULL/VIEW return to consumers, so the store, the broker and (later)
 * the C client share this one codec. These helpers touch no file, clock or
 * global and are fuzzed through the recovery scanner. */
#ifndef APG_PROTOCOL_MESSAGE_H
#define APG_PROTOCOL_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "protocol/msgid.h"

#define APG_MSGREC_MAGIC_V1 0xDAA320A7u
#define APG_MSGREC_MAGIC_V2 0xDAA320ABu
#define APG_MSGREC_MAGIC_BLANK 0xCBD43194u
#define APG_MSGREC_BLANK_LEN 8

#define APG_SYSFLAG_COMPRESSED 0x1
#define APG_SYSFLAG_MULTI_TAGS 0x2
#define APG_SYSFLAG_TX_MASK 0xC
#define APG_SYSFLAG_TX_PREPARED 0x4
#define APG_SYSFLAG_TX_COMMIT 0x8
#define APG_SYSFLAG_TX_ROLLBACK 0xC
#define APG_SYSFLAG_BORNHOST_V6 0x10
#define APG_SYSFLAG_STOREHOST_V6 0x20

/* One message to encode (and to append with apg_store_put()). All pointers
 * are borrowed for the duration of the call only. */
struct apg_msg_in {
    const char *mi_topic;
    size_t mi_topic_len; /* 1..127 (V1 records) */
    int32_t mi_queue_id;
    int32_t mi_flag;
    int32_t mi_sysflag; /* bits 4/5 (host v6) are set by the store from the hosts */
    int64_t mi_born_ts;
    struct apg_host mi_born_host;
    int32_t mi_reconsume_times;
    int64_t mi_prepared_tx_offset;
    const uint8_t *mi_body;
    size_t mi_body_len;
    const char *mi_props; /* properties string (docs/wire.md §6.1), may be NULL */
    size_t mi_props_len;  /* <= 32767 */
    int64_t mi_tags_code; /* written to the consume queue (tag hash, docs/wire.md §6.4) */
};

/* A decoded record: pointers borrow from the buffer given to the decoder. */
struct apg_msgrec {
    uint32_t mr_total_size;
    uint32_t mr_magic;
    int32_t mr_body_crc;
    int32_t mr_queue_id;
    int32_t mr_flag;
    int64_t mr_queue_offset;
    int64_t mr_phys_offset;
    int32_t mr_sysflag;
    int64_t mr_born_ts;
    struct apg_host mr_born_host;
    int64_t mr_store_ts;
    struct apg_host mr_store_host;
    int32_t mr_reconsume_times;
    int64_t mr_prepared_tx_offset;
    const uint8_t *mr_body;
    uint32_t mr_body_len;
    const char *mr_topic;
    uint32_t mr_topic_len;
    const char *mr_props;
    uint32_t mr_props_len;
};

/* Size of the record msg would become (V1 layout) with an IPv4 (or, when
 * store_host_v6, IPv6) store host. */
size_t apg_msgrec_size(const struct apg_msg_in *m, bool store_host_v6);

/* Writes the record for m at dst (room for apg_msgrec_size(m, store_host->h_v6)),
 * with the given body CRC (masked, see apg_rmq_crc32), queue offset, physical
 * offset, store timestamp and store host. Host v6 sysflag bits are derived from
 * the hosts. Pure. */
void apg_msgrec_encode(uint8_t *dst, const struct apg_msg_in *m, int32_t body_crc,
                       int64_t queue_offset, int64_t phys_offset, int64_t store_ts,
                       const struct apg_host *store_host);

/* Result of looking at the bytes at one position of a segment. */
enum apg_msgrec_check {
    APG_MSGREC_OK = 0, /* a complete, valid record */
    APG_MSGREC_BLANK,  /* end-of-segment filler: skip to the next segment */
    APG_MSGREC_ZERO,   /* TOTALSIZE and MAGIC are zero: end of written data */
    APG_MSGREC_BAD,    /* anything else */
};

/* Decodes and validates the record at buf[0..len): size within len and
 * consistent with the field lengths, known magic, and when check_crc the body
 * CRC. Fills *r on APG_MSGREC_OK (r may be NULL). For APG_MSGREC_BLANK *r is not
 * filled. `why` (may be NULL) receives a static reason for APG_MSGREC_BAD. Pure. */
enum apg_msgrec_check apg_msgrec_decode(const uint8_t *buf, size_t len, bool check_crc,
                                        struct apg_msgrec *r, const char **why);

#endif

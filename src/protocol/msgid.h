/* Message id codecs: the offset message id a broker returns for each stored
 * message, and the UNIQ_KEY id a producer (or the broker, for a message that
 * arrives without one) gives each message. Pure; msgid_gen.c holds the one
 * stateful part, the process's UNIQ_KEY generator. */
#ifndef APG_PROTOCOL_MSGID_H
#define APG_PROTOCOL_MSGID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* A network address as stored in BORNHOST / STOREHOSTADDRESS and in offset
 * message ids. */
struct apg_host {
    bool h_v6;        /* false: IPv4 (h_ip[0..3]), true: IPv6 (16 bytes) */
    uint8_t h_ip[16]; /* network byte order */
    uint32_t h_port;  /* stored as int32 */
};

/* Offset message id: uppercase hex of store host address, port and
 * physical offset into out (needs 33 or 57 bytes), NUL-terminated. Returns
 * the length, or 0 (and an empty string when outlen > 0) if out is short. */
size_t apg_msgid_encode(const struct apg_host *store_host, int64_t phys_offset, char *out,
                        size_t outlen);
/* Parses an offset msgId of 32 (IPv4) or 56 (IPv6) hex digits. APG_EINVAL
 * if malformed. */
apg_err_t apg_msgid_decode(const char *id, size_t len, struct apg_host *host, int64_t *phys_offset);

/* The fields of a UNIQ_KEY: address | pid (int16) | instance hash (int32) |
 * milliseconds since the start of the month (int32) | counter (int16). */
struct apg_uniq_id {
    uint8_t ui_ip[16];
    uint8_t ui_ip_len; /* 4 or 16 */
    uint16_t ui_pid;
    int32_t ui_hash;
    int32_t ui_time;
    uint16_t ui_counter;
};

#define APG_UNIQ_ID_V4_LEN 32
#define APG_UNIQ_ID_MAX_LEN 56

/* Writes the uppercase hex id into out (room for 2 * (ip_len + 12) + 1) and
 * returns its length; 0 when ui_ip_len is neither 4 nor 16 or out is short. */
size_t apg_msgid_uniq_encode(const struct apg_uniq_id *u, char *out, size_t outlen);
/* Parses a UNIQ_KEY of 32 or 56 hex digits. APG_EINVAL if malformed. */
apg_err_t apg_msgid_uniq_decode(const char *id, size_t len, struct apg_uniq_id *u);

/* A new UNIQ_KEY for a message from the host with address ip4 (32 hex digits
 * + NUL into out): this process's pid and instance hash, the wall clock and
 * a wrapping counter. Thread-safe; reads the clock (msgid_gen.c). */
void apg_msgid_uniq_new(const uint8_t ip4[4], char out[33]);

#endif

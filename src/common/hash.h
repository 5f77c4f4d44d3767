/* Hashes and checksums that must match what Java computes. */
#ifndef APG_COMMON_HASH_H
#define APG_COMMON_HASH_H

#include <stddef.h>
#include <stdint.h>

/* Java String.hashCode() of a UTF-8 string: decoded to UTF-16 code units
 * (supplementary characters become surrogate pairs), then h = 31*h + unit.
 * Invalid UTF-8 bytes are treated as U+FFFD, as Java's decoder does. */
int32_t apg_java_hash(const char *s, size_t len);

/* zlib CRC32 (IEEE), as java.util.zip.CRC32. */
uint32_t apg_crc32(const void *p, size_t len);

/* RocketMQ's body CRC: crc32 & 0x7FFFFFFF. */
static inline int32_t apg_rmq_crc32(const void *p, size_t len)
{
    return (int32_t)(apg_crc32(p, len) & 0x7FFFFFFFu);
}

#endif

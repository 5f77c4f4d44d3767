/* Hashes and checksums that must match what Java computes. */
#ifndef APG_COMMON_HASH_H
#define APG_COMMON_HASH_H

#include <stddef.h>
#include <stdint.h>

/* Java String.hashCode() of a UTF-8 string: decoded to UTF-16 code units
 * (supplementary characters become surrogate pairs), then h = 31*h + unit.
 * Invalid UTF-8 bytes are treated as U+FFFD, as Java's decoder does. */
int32_t apg_java_hash(const char *s, size_t len);

/* CRC-32 (IEEE, reflected, poly 0xEDB88320), equal to java.util.zip.CRC32
 * and zlib's crc32(); any length and alignment. Uses PCLMULQDQ on x86-64
 * CPUs that have it (chosen at start-up), slicing-by-8 otherwise.
 * Implemented in crc32_fast.c. */
uint32_t apg_crc32(const void *p, size_t len);

/* Incremental form with zlib's convention: start with crc = 0, pass the
 * previous result to continue; apg_crc32_update(apg_crc32_update(0, a, n),
 * b, m) is the CRC of a followed by b. */
uint32_t apg_crc32_update(uint32_t crc, const void *p, size_t len);

/* The two implementations behind apg_crc32, for tests and benchmarks.
 * apg_crc32_update_pclmul must only be called when apg_crc32_has_pclmul()
 * (it is the portable code on non-x86 builds). apg_crc32_impl names the
 * one in use ("pclmul" or "slice8"), a static string. */
uint32_t apg_crc32_update_portable(uint32_t crc, const void *p, size_t len);
uint32_t apg_crc32_update_pclmul(uint32_t crc, const void *p, size_t len);
int apg_crc32_has_pclmul(void);
const char *apg_crc32_impl(void);

/* RocketMQ's body CRC: crc32 & 0x7FFFFFFF. */
static inline int32_t apg_rmq_crc32(const void *p, size_t len)
{
    return (int32_t)(apg_crc32(p, len) & 0x7FFFFFFFu);
}

#endif

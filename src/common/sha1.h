/* SHA-1 (FIPS 180-4), HMAC-SHA1 (RFC 2104) and Base64 (RFC 4648), the
 * three pieces of RocketMQ's ACL request signature: Base64(HMAC-SHA1(
 * secretKey, content)). Used by the broker's ACL check and by the C
 * client's signing, so both stay free of an OpenSSL dependency.
 *
 * The HMAC key state (inner and outer padded blocks, already compressed)
 * can be prepared once per key and reused for every message, which halves
 * the work per short request. Pure; any thread. */
#ifndef APG_COMMON_SHA1_H
#define APG_COMMON_SHA1_H

#include <stddef.h>
#include <stdint.h>

#define APG_SHA1_LEN 20
/* The compression in use ("sha-ni" or "portable"), a static string; tests
 * force the portable one with apg_sha1_use_portable(1) and give the choice
 * back to the CPU check with apg_sha1_use_portable(0). */
const char *apg_sha1_impl(void);
void apg_sha1_use_portable(int on);

/* Base64 of a SHA-1 digest: 28 characters and a NUL. */
#define APG_SHA1_B64_LEN 29

struct apg_sha1 {
    uint32_t s_h[5];
    uint64_t s_len; /* bytes hashed so far */
    uint8_t s_buf[64];
    size_t s_fill;
};

void apg_sha1_init(struct apg_sha1 *s);
void apg_sha1_update(struct apg_sha1 *s, const void *p, size_t n);
void apg_sha1_final(struct apg_sha1 *s, uint8_t out[APG_SHA1_LEN]);

/* An HMAC-SHA1 key, prepared: the states after the inner and outer pads. */
struct apg_hmac_key {
    struct apg_sha1 hk_inner, hk_outer;
};

void apg_hmac_sha1_key(struct apg_hmac_key *k, const void *key, size_t key_len);
/* Starts a MAC with prepared key k: feed s with apg_sha1_update, then call
 * apg_hmac_sha1_final. */
static inline void apg_hmac_sha1_begin(const struct apg_hmac_key *k, struct apg_sha1 *s)
{
    *s = k->hk_inner;
}
void apg_hmac_sha1_final(const struct apg_hmac_key *k, struct apg_sha1 *s,
                         uint8_t out[APG_SHA1_LEN]);

/* Standard Base64 with padding of n bytes into out (4 * ceil(n / 3) + 1
 * bytes, NUL-terminated). Returns the length written without the NUL. */
size_t apg_base64_encode(const uint8_t *p, size_t n, char *out);

#endif

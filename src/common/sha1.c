/* SHA-1, HMAC-SHA1 and Base64 (see sha1.h), written from FIPS 180-4,
 * RFC 2104 and RFC 4648.
 *
 * Two compression functions: the plain 80-round form with a 16-word
 * rolling schedule, and on x86-64 CPUs with the SHA extensions (chosen once,
 * by CPUID) one that runs four rounds per SHA1RNDS4 instruction and builds
 * the schedule with SHA1MSG1/SHA1MSG2. The ACL signs every request, and the
 * portable form made that a third of a small request's cost on the 2-vCPU
 * VM (bench/bench_acl.c). Both are verified by the FIPS and RFC 2202
 * vectors in tests/unit/test_acl.c, which also compares them on random
 * input. */
#include "common/sha1.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

static inline uint32_t rol(uint32_t x, int n)
{
    return (x << n) | (x >> (32 - n));
}

static void compress_portable(uint32_t h[5], const uint8_t *blk)
{
    uint32_t w[16];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)blk[4 * i] << 24 | (uint32_t)blk[4 * i + 1] << 16 |
               (uint32_t)blk[4 * i + 2] << 8 | blk[4 * i + 3];
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int t = 0; t < 80; t++) {
        uint32_t wt;
        if (t < 16) {
            wt = w[t];
        } else {
            wt = rol(w[(t + 13) & 15] ^ w[(t + 8) & 15] ^ w[(t + 2) & 15] ^ w[t & 15], 1);
            w[t & 15] = wt;
        }
        uint32_t f, k;
        if (t < 20) {
            f = (b & c) | (~b & d);
            k = 0x5A827999u;
        } else if (t < 40) {
            f = b ^ c ^ d;
            k = 0x6ED9EBA1u;
        } else if (t < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8F1BBCDCu;
        } else {
            f = b ^ c ^ d;
            k = 0xCA62C1D6u;
        }
        uint32_t tmp = rol(a, 5) + f + e + k + wt;
        e = d;
        d = c;
        c = rol(b, 30);
        b = a;
        a = tmp;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

#if defined(__x86_64__)
/* Four rounds of group g (function f) and, while needed, the schedule of
 * group g + 4 in m[g & 3]: W[g+4] = msg2(msg1(W[g], W[g+1]) ^ W[g+2], W[g+3]).
 * The E input of a group is rol30(A at the start of the previous group)
 * plus its words (SHA1NEXTE); group 0 adds the state's E instead. */
#define NI_GROUP(g, f)                                                                             \
    do {                                                                                           \
        __m128i ein = (g) == 0 ? _mm_add_epi32(e, m[0]) : _mm_sha1nexte_epu32(prev, m[(g)&3]);     \
        prev = abcd;                                                                               \
        abcd = _mm_sha1rnds4_epu32(abcd, ein, f);                                                  \
        if ((g) < 16)                                                                              \
            m[(g)&3] = _mm_sha1msg2_epu32(                                                         \
                _mm_xor_si128(_mm_sha1msg1_epu32(m[(g)&3], m[((g) + 1) & 3]), m[((g) + 2) & 3]),   \
                m[((g) + 3) & 3]);                                                                 \
    } while (0)

__attribute__((target("sha,sse4.1,ssse3"))) static void compress_ni(uint32_t h[5],
                                                                    const uint8_t *blk)
{
    const __m128i bswap = _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __m128i abcd = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)h), 0x1B);
    __m128i e = _mm_set_epi32((int)h[4], 0, 0, 0);
    __m128i abcd0 = abcd, e0 = e, prev = abcd, m[4];
    for (int i = 0; i < 4; i++)
        m[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(blk + 16 * i)), bswap);
    NI_GROUP(0, 0);
    NI_GROUP(1, 0);
    NI_GROUP(2, 0);
    NI_GROUP(3, 0);
    NI_GROUP(4, 0);
    NI_GROUP(5, 1);
    NI_GROUP(6, 1);
    NI_GROUP(7, 1);
    NI_GROUP(8, 1);
    NI_GROUP(9, 1);
    NI_GROUP(10, 2);
    NI_GROUP(11, 2);
    NI_GROUP(12, 2);
    NI_GROUP(13, 2);
    NI_GROUP(14, 2);
    NI_GROUP(15, 3);
    NI_GROUP(16, 3);
    NI_GROUP(17, 3);
    NI_GROUP(18, 3);
    NI_GROUP(19, 3);
    e = _mm_sha1nexte_epu32(prev, e0);
    abcd = _mm_add_epi32(abcd, abcd0);
    _mm_storeu_si128((__m128i *)h, _mm_shuffle_epi32(abcd, 0x1B));
    h[4] = (uint32_t)_mm_extract_epi32(e, 3);
}

static bool cpu_has_sha(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_SSE4_1) || !(c & bit_SSSE3))
        return false;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return false;
    return (b & bit_SHA) != 0;
}
#endif

/* 0 = not chosen yet, 1 = portable, 2 = SHA extensions. */
static atomic_int impl;

static int impl_get(void)
{
    int i = atomic_load_explicit(&impl, memory_order_relaxed);
    if (i == 0) {
        i = 1;
#if defined(__x86_64__)
        if (cpu_has_sha())
            i = 2;
#endif
        atomic_store_explicit(&impl, i, memory_order_relaxed);
    }
    return i;
}

void apg_sha1_use_portable(int on)
{
    atomic_store(&impl, on ? 1 : 0);
}

const char *apg_sha1_impl(void)
{
    return impl_get() == 2 ? "sha-ni" : "portable";
}

static inline void compress(uint32_t h[5], const uint8_t *blk)
{
#if defined(__x86_64__)
    if (impl_get() == 2) {
        compress_ni(h, blk);
        return;
    }
#endif
    compress_portable(h, blk);
}

void apg_sha1_init(struct apg_sha1 *s)
{
    s->s_h[0] = 0x67452301u;
    s->s_h[1] = 0xEFCDAB89u;
    s->s_h[2] = 0x98BADCFEu;
    s->s_h[3] = 0x10325476u;
    s->s_h[4] = 0xC3D2E1F0u;
    s->s_len = 0;
    s->s_fill = 0;
}

void apg_sha1_update(struct apg_sha1 *s, const void *p, size_t n)
{
    const uint8_t *in = p;
    s->s_len += n;
    if (s->s_fill) {
        size_t take = 64 - s->s_fill < n ? 64 - s->s_fill : n;
        memcpy(s->s_buf + s->s_fill, in, take);
        s->s_fill += take;
        in += take;
        n -= take;
        if (s->s_fill < 64)
            return;
        compress(s->s_h, s->s_buf);
        s->s_fill = 0;
    }
    for (; n >= 64; in += 64, n -= 64)
        compress(s->s_h, in);
    if (n) {
        memcpy(s->s_buf, in, n);
        s->s_fill = n;
    }
}

void apg_sha1_final(struct apg_sha1 *s, uint8_t out[APG_SHA1_LEN])
{
    uint64_t bits = s->s_len * 8;
    uint8_t pad = 0x80;
    apg_sha1_update(s, &pad, 1);
    uint8_t zero[64] = {0};
    apg_sha1_update(s, zero, (s->s_fill <= 56 ? 56 : 120) - s->s_fill);
    uint8_t len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (uint8_t)(bits >> (56 - 8 * i));
    apg_sha1_update(s, len, 8);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (uint8_t)(s->s_h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(s->s_h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(s->s_h[i] >> 8);
        out[4 * i + 3] = (uint8_t)s->s_h[i];
    }
}

void apg_hmac_sha1_key(struct apg_hmac_key *k, const void *key, size_t key_len)
{
    uint8_t kb[64] = {0};
    if (key_len > 64) {
        struct apg_sha1 s;
        apg_sha1_init(&s);
        apg_sha1_update(&s, key, key_len);
        apg_sha1_final(&s, kb);
    } else if (key_len) {
        memcpy(kb, key, key_len);
    }
    uint8_t pad[64];
    for (int i = 0; i < 64; i++)
        pad[i] = kb[i] ^ 0x36;
    apg_sha1_init(&k->hk_inner);
    apg_sha1_update(&k->hk_inner, pad, 64);
    for (int i = 0; i < 64; i++)
        pad[i] = kb[i] ^ 0x5c;
    apg_sha1_init(&k->hk_outer);
    apg_sha1_update(&k->hk_outer, pad, 64);
}

void apg_hmac_sha1_final(const struct apg_hmac_key *k, struct apg_sha1 *s,
                         uint8_t out[APG_SHA1_LEN])
{
    uint8_t inner[APG_SHA1_LEN];
    apg_sha1_final(s, inner);
    struct apg_sha1 o = k->hk_outer;
    apg_sha1_update(&o, inner, sizeof(inner));
    apg_sha1_final(&o, out);
}

size_t apg_base64_encode(const uint8_t *p, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = tab[(v >> 6) & 63];
        out[o++] = tab[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = tab[(v >> 6) & 63];
        out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

/* CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), the checksum of
 * java.util.zip.CRC32 and zlib's crc32(), computed without zlib.
 *
 * Two implementations, chosen once at start-up:
 *
 * - portable: "slicing by 8", eight 256-entry tables built at start-up; each
 *   step folds 8 input bytes into the 32-bit state with 8 table look-ups.
 * - x86-64 with PCLMULQDQ and SSE4.1 (checked with __builtin_cpu_supports):
 *   the input is read 64 bytes at a time into four 128-bit accumulators; each
 *   accumulator is carried forward 512 bits by two carry-less multiplications
 *   with x^k mod P constants (the two 64-bit halves times their own constant,
 *   a result congruent mod P and still 128 bits wide), then XORed with the
 *   next block. The four are folded into one (carried 128 bits), leftover
 *   16-byte blocks likewise. The last 128 bits are folded to 64 with two
 *   more multiplications by reflect32(x^63 mod P); one slicing-by-8 step on
 *   those 8 bytes gives the 32-bit CRC, and a tail of fewer than 16 bytes
 *   goes through the portable code. Inputs under 64 bytes use the portable
 *   code only.
 *
 * Register convention for the fold constants: bit k of a 128-bit register
 * loaded from memory is the coefficient of x^(127-k), so the low quadword H
 * is the high-degree half. A carry-less product of two such 64-bit values
 * is the polynomial product times x, hence the constants are
 * reflect32(x^(D+31) mod P) for H and reflect32(x^(D-33) mod P) for the
 * high quadword L, where D is the distance carried in bits.
 *
 * State convention: the internal state is the bit-inverted CRC (zlib's
 * crc32(c, ...) works on ~c and returns ~result); the public function takes
 * and returns the finished value, so apg_crc32_update(0, ...) starts a new
 * checksum and calls can be chained. */
#include "common/hash.h"

#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define APG_CRC_X86 1
#include <immintrin.h>
#endif

static uint32_t crc_tab[8][256];

static void crc_tables_build(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
        crc_tab[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_tab[t][i] = (crc_tab[t - 1][i] >> 8) ^ crc_tab[0][crc_tab[t - 1][i] & 0xFF];
}

static inline uint32_t le32_load(const unsigned char *b)
{
    uint32_t v;
    memcpy(&v, b, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    return v;
}

/* Raw state in, raw state out (no inversion). */
static uint32_t crc_slice8(uint32_t s, const unsigned char *b, size_t len)
{
    while (len >= 8) {
        uint32_t lo = le32_load(b) ^ s;
        uint32_t hi = le32_load(b + 4);
        s = crc_tab[7][lo & 0xFF] ^ crc_tab[6][(lo >> 8) & 0xFF] ^ crc_tab[5][(lo >> 16) & 0xFF] ^
            crc_tab[4][lo >> 24] ^ crc_tab[3][hi & 0xFF] ^ crc_tab[2][(hi >> 8) & 0xFF] ^
            crc_tab[1][(hi >> 16) & 0xFF] ^ crc_tab[0][hi >> 24];
        b += 8;
        len -= 8;
    }
    while (len--)
        s = (s >> 8) ^ crc_tab[0][(s ^ *b++) & 0xFF];
    return s;
}

uint32_t apg_crc32_update_portable(uint32_t crc, const void *p, size_t len)
{
    return ~crc_slice8(~crc, p, len);
}

#ifdef APG_CRC_X86
__attribute__((target("pclmul,sse4.1"))) static inline __m128i crc_fold(__m128i acc, __m128i k,
                                                                        __m128i next)
{
    __m128i a = _mm_clmulepi64_si128(acc, k, 0x00); /* H * k_H */
    __m128i c = _mm_clmulepi64_si128(acc, k, 0x11); /* L * k_L */
    return _mm_xor_si128(_mm_xor_si128(a, c), next);
}

__attribute__((target("pclmul,sse4.1"))) static uint32_t
crc_pclmul(uint32_t s, const unsigned char *b, size_t len)
{
    if (len < 64)
        return crc_slice8(s, b, len);
    /* low quadword: constant for H, high quadword: constant for L */
    const __m128i k512 = _mm_set_epi64x(0x1d9513d7, 0x8f352d95);
    const __m128i k128 = _mm_set_epi64x(0xccaa009e, 0xae689191);
    __m128i x0 = _mm_loadu_si128((const __m128i *)b);
    __m128i x1 = _mm_loadu_si128((const __m128i *)(b + 16));
    __m128i x2 = _mm_loadu_si128((const __m128i *)(b + 32));
    __m128i x3 = _mm_loadu_si128((const __m128i *)(b + 48));
    x0 = _mm_xor_si128(x0, _mm_cvtsi32_si128((int)s));
    b += 64;
    len -= 64;
    while (len >= 64) {
        x0 = crc_fold(x0, k512, _mm_loadu_si128((const __m128i *)b));
        x1 = crc_fold(x1, k512, _mm_loadu_si128((const __m128i *)(b + 16)));
        x2 = crc_fold(x2, k512, _mm_loadu_si128((const __m128i *)(b + 32)));
        x3 = crc_fold(x3, k512, _mm_loadu_si128((const __m128i *)(b + 48)));
        b += 64;
        len -= 64;
    }
    x1 = crc_fold(x0, k128, x1);
    x2 = crc_fold(x1, k128, x2);
    x3 = crc_fold(x2, k128, x3);
    while (len >= 16) {
        x3 = crc_fold(x3, k128, _mm_loadu_si128((const __m128i *)b));
        b += 16;
        len -= 16;
    }
    /* 128 -> 64 bits: twice, the 32 highest-degree coefficients G (times
     * x^64) are replaced by G * (x^64 mod P); what is left, V in the high
     * quadword, is an 8-byte message with the same CRC, done by one
     * slicing-by-8 step from state 0. */
    const __m128i k64 = _mm_set_epi64x(0, (long long)(0xb8bc6765ull << 32));
    __m128i u = _mm_xor_si128(_mm_clmulepi64_si128(x3, k64, 0x00),
                              _mm_blend_epi16(x3, _mm_setzero_si128(), 0x0F));
    u = _mm_xor_si128(_mm_clmulepi64_si128(u, k64, 0x00), u);
    uint64_t v = (uint64_t)_mm_extract_epi64(u, 1);
    uint32_t lo = (uint32_t)v, hi = (uint32_t)(v >> 32);
    s = crc_tab[7][lo & 0xFF] ^ crc_tab[6][(lo >> 8) & 0xFF] ^ crc_tab[5][(lo >> 16) & 0xFF] ^
        crc_tab[4][lo >> 24] ^ crc_tab[3][hi & 0xFF] ^ crc_tab[2][(hi >> 8) & 0xFF] ^
        crc_tab[1][(hi >> 16) & 0xFF] ^ crc_tab[0][hi >> 24];
    return len ? crc_slice8(s, b, len) : s;
}

uint32_t apg_crc32_update_pclmul(uint32_t crc, const void *p, size_t len)
{
    return ~crc_pclmul(~crc, p, len);
}
#else
uint32_t apg_crc32_update_pclmul(uint32_t crc, const void *p, size_t len)
{
    return apg_crc32_update_portable(crc, p, len);
}
#endif

static uint32_t (*crc_impl)(uint32_t, const unsigned char *, size_t) = crc_slice8;
static const char *crc_impl_name = "slice8";

__attribute__((constructor)) static void crc_init(void)
{
    crc_tables_build();
#ifdef APG_CRC_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1")) {
        crc_impl = crc_pclmul;
        crc_impl_name = "pclmul";
    }
#endif
}

int apg_crc32_has_pclmul(void)
{
    return crc_impl != crc_slice8;
}

const char *apg_crc32_impl(void)
{
    return crc_impl_name;
}

uint32_t apg_crc32_update(uint32_t crc, const void *p, size_t len)
{
    return ~crc_impl(~crc, p, len);
}

uint32_t apg_crc32(const void *p, size_t len)
{
    return ~crc_impl(0xFFFFFFFFu, p, len);
}

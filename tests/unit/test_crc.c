/* apg_crc32 against zlib's crc32: every length 0..4096 at several
 * misalignments with random contents, both implementations (portable
 * slicing-by-8 and, where the CPU has it, PCLMULQDQ), the standard check
 * value, chained (incremental) use, and a few-MiB buffer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "common/hash.h"

static uint32_t zlib_crc(const unsigned char *p, size_t len)
{
    return (uint32_t)crc32(0L, p, (uInt)len);
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint8_t rnd8(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint8_t)(rng >> 24);
}

static void fill(unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = rnd8();
}

static void test_check_value(void **state)
{
    (void)state;
    assert_int_equal(apg_crc32("123456789", 9), 0xCBF43926u);
    assert_int_equal(apg_crc32_update_portable(0, "123456789", 9), 0xCBF43926u);
    assert_int_equal(apg_crc32_update(0, "123456789", 9), 0xCBF43926u);
    assert_int_equal(apg_crc32("", 0), 0);
    assert_int_equal(apg_crc32_update(0x12345678u, "", 0), 0x12345678u);
    assert_int_equal(apg_rmq_crc32("123456789", 9), 0xCBF43926u & 0x7FFFFFFF);
    /* 64 zero bytes and 64 0xFF bytes hit the folding path with a
     * degenerate input. */
    unsigned char z[256];
    memset(z, 0, sizeof z);
    assert_int_equal(apg_crc32(z, sizeof z), zlib_crc(z, sizeof z));
    memset(z, 0xFF, sizeof z);
    assert_int_equal(apg_crc32(z, sizeof z), zlib_crc(z, sizeof z));
#if defined(__x86_64__)
    /* the build machine has PCLMULQDQ; make sure the fast path is the one used */
    if (apg_crc32_has_pclmul())
        assert_string_equal(apg_crc32_impl(), "pclmul");
#endif
}

/* Every length 0..4096 at offsets 0..7 and 13 of a random buffer; the
 * buffer for each length is a fresh heap block of exactly off+len bytes so
 * ASan catches any read past the end. */
static void test_all_lengths(void **state)
{
    (void)state;
    static const size_t offs[] = {0, 1, 2, 3, 4, 5, 6, 7, 13};
    for (size_t oi = 0; oi < sizeof offs / sizeof offs[0]; oi++) {
        size_t off = offs[oi];
        for (size_t len = 0; len <= 4096; len++) {
            unsigned char *blk = malloc(off + len + 1);
            assert_non_null(blk);
            fill(blk, off + len);
            const unsigned char *p = blk + off;
            uint32_t want = zlib_crc(p, len);
            if (apg_crc32(p, len) != want || apg_crc32_update_portable(0, p, len) != want ||
                (apg_crc32_has_pclmul() && apg_crc32_update_pclmul(0, p, len) != want))
                fail_msg("len %zu off %zu: want %08x got %08x/%08x", len, off, want,
                         apg_crc32(p, len), apg_crc32_update_portable(0, p, len));
            free(blk);
        }
    }
}

/* Chaining: split a buffer at every point (and in random pieces); a
 * nonzero starting crc exercises the state XOR in the folding path. */
static void test_incremental(void **state)
{
    (void)state;
    enum { N = 1000 };
    unsigned char *b = malloc(N);
    assert_non_null(b);
    fill(b, N);
    uint32_t want = zlib_crc(b, N);
    for (size_t cut = 0; cut <= N; cut++) {
        uint32_t c = apg_crc32_update(0, b, cut);
        assert_int_equal(apg_crc32_update(c, b + cut, N - cut), want);
        uint32_t d = apg_crc32_update_portable(0, b, cut);
        assert_int_equal(apg_crc32_update_portable(d, b + cut, N - cut), want);
        if (apg_crc32_has_pclmul()) {
            uint32_t e = apg_crc32_update_pclmul(0, b, cut);
            assert_int_equal(apg_crc32_update_pclmul(e, b + cut, N - cut), want);
        }
    }
    for (int round = 0; round < 200; round++) {
        uint32_t c = 0;
        size_t at = 0;
        while (at < N) {
            size_t n = (size_t)(rnd8() % 200);
            if (n > N - at)
                n = N - at;
            c = apg_crc32_update(c, b + at, n);
            at += n;
        }
        assert_int_equal(c, want);
    }
    free(b);
}

/* A few MiB of random data, whole and in 1 MiB + odd pieces. */
static void test_big(void **state)
{
    (void)state;
    size_t n = 5u * 1024 * 1024 + 77;
    unsigned char *b = malloc(n);
    assert_non_null(b);
    fill(b, n);
    uint32_t want = zlib_crc(b, n);
    assert_int_equal(apg_crc32(b, n), want);
    assert_int_equal(apg_crc32_update_portable(0, b, n), want);
    assert_int_equal(apg_crc32(b + 3, n - 3), zlib_crc(b + 3, n - 3));
    uint32_t c = 0;
    for (size_t at = 0; at < n;) {
        size_t k = n - at < 1048579 ? n - at : 1048579;
        c = apg_crc32_update(c, b + at, k);
        at += k;
    }
    assert_int_equal(c, want);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_value),
        cmocka_unit_test(test_all_lengths),
        cmocka_unit_test(test_incremental),
        cmocka_unit_test(test_big),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

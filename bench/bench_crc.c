/* CRC-32 micro-benchmark: zlib's crc32 against apg_crc32 (the implementation
 * chosen at start-up) and the portable slicing-by-8 code, at 16, 128, 1024,
 * 4096 and 65536 bytes. Each size runs until about 0.2 s of calls; reports
 * ns per call and GB/s. Usage: bench_crc [seconds per cell] (default 0.2). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "common/hash.h"

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static volatile uint32_t sink;

static uint32_t run_zlib(const unsigned char *p, size_t n)
{
    return (uint32_t)crc32(0L, p, (uInt)n);
}
static uint32_t run_apg(const unsigned char *p, size_t n)
{
    return apg_crc32(p, n);
}
static uint32_t run_slice8(const unsigned char *p, size_t n)
{
    return apg_crc32_update_portable(0, p, n);
}

static double measure(uint32_t (*fn)(const unsigned char *, size_t), const unsigned char *p,
                      size_t n, double budget_ns)
{
    long iters = 0, batch = 1;
    double t0 = now_ns(), t;
    do {
        for (long i = 0; i < batch; i++)
            sink = fn(p, n);
        iters += batch;
        if (batch < (1 << 20))
            batch *= 2;
        t = now_ns();
    } while (t - t0 < budget_ns);
    return (t - t0) / (double)iters;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 0.2;
    static const size_t sizes[] = {16, 128, 1024, 4096, 65536};
    unsigned char *buf = malloc(65536 + 64);
    if (!buf)
        return 1;
    for (size_t i = 0; i < 65536 + 64; i++)
        buf[i] = (unsigned char)(i * 131 + 7);
    printf("apg_crc32 implementation: %s\n", apg_crc32_impl());
    printf("%8s %12s %12s %12s %10s %10s\n", "bytes", "zlib ns", "apg ns", "slice8 ns", "apg GB/s",
           "speedup");
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        const unsigned char *p = buf + 1; /* deliberately misaligned */
        if (run_zlib(p, n) != run_apg(p, n) || run_zlib(p, n) != run_slice8(p, n)) {
            fprintf(stderr, "mismatch at %zu bytes\n", n);
            return 1;
        }
        double z = measure(run_zlib, p, n, secs * 1e9);
        double a = measure(run_apg, p, n, secs * 1e9);
        double s = measure(run_slice8, p, n, secs * 1e9);
        printf("%8zu %12.1f %12.1f %12.1f %10.2f %9.1fx\n", n, z, a, s, (double)n / a, z / a);
    }
    free(buf);
    return 0;
}

/* Counting allocator. A small header in front of each block holds its size
 * so apg_free can keep apg_mem_in_use exact without malloc_usable_size.
 *
 * The count is striped over cache-line-sized slots, one picked per thread, so
 * threads allocating at the same time do not bounce one cache line between
 * cores (a single shared counter cost ~7% of an async client profile). A
 * block freed on another thread than it was allocated on leaves one slot
 * negative and another positive; only the sum means anything. */
#include "common/mem.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define HDR 16 /* keeps 16-byte alignment */

#define MEM_STRIPES 16

struct mem_stripe {
    _Atomic int64_t ms_bytes;
    char ms_pad[64 - sizeof(int64_t)];
};

static struct mem_stripe mem_stripes[MEM_STRIPES];
static _Atomic unsigned mem_next_stripe;
static _Thread_local struct mem_stripe *mem_my_stripe;

static void mem_count(int64_t delta)
{
    struct mem_stripe *st = mem_my_stripe;
    if (!st) {
        unsigned i = atomic_fetch_add_explicit(&mem_next_stripe, 1, memory_order_relaxed);
        st = mem_my_stripe = &mem_stripes[i % MEM_STRIPES];
    }
    atomic_fetch_add_explicit(&st->ms_bytes, delta, memory_order_relaxed);
}
static _Atomic long mem_fail_countdown;

static int should_fail(void)
{
    long n = atomic_load_explicit(&mem_fail_countdown, memory_order_relaxed);
    if (n <= 0)
        return 0;
    if (atomic_fetch_sub(&mem_fail_countdown, 1) == 1)
        return 1;
    return 0;
}

void *apg_malloc(size_t n)
{
    if (should_fail() || n > SIZE_MAX - HDR)
        return NULL;
    unsigned char *p = malloc(n + HDR);
    if (!p)
        return NULL;
    memcpy(p, &n, sizeof(n));
    mem_count((int64_t)n);
    return p + HDR;
}

void *apg_calloc(size_t count, size_t n)
{
    if (n && count > SIZE_MAX / n)
        return NULL;
    void *p = apg_malloc(count * n);
    if (p)
        memset(p, 0, count * n);
    return p;
}

void *apg_realloc(void *p, size_t n)
{
    if (!p)
        return apg_malloc(n);
    if (should_fail() || n > SIZE_MAX - HDR)
        return NULL;
    unsigned char *base = (unsigned char *)p - HDR;
    size_t old;
    memcpy(&old, base, sizeof(old));
    unsigned char *nb = realloc(base, n + HDR);
    if (!nb)
        return NULL;
    memcpy(nb, &n, sizeof(n));
    mem_count((int64_t)n - (int64_t)old);
    return nb + HDR;
}

void apg_free(void *p)
{
    if (!p)
        return;
    unsigned char *base = (unsigned char *)p - HDR;
    size_t old;
    memcpy(&old, base, sizeof(old));
    mem_count(-(int64_t)old);
    free(base);
}

char *apg_strndup(const char *s, size_t n)
{
    char *d = apg_malloc(n + 1);
    if (!d)
        return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

char *apg_strdup(const char *s)
{
    return apg_strndup(s, strlen(s));
}

int64_t apg_mem_in_use(void)
{
    int64_t sum = 0;
    for (int i = 0; i < MEM_STRIPES; i++)
        sum += atomic_load_explicit(&mem_stripes[i].ms_bytes, memory_order_relaxed);
    return sum;
}

void apg_mem_fail_after(long n)
{
    atomic_store(&mem_fail_countdown, n);
}

int apg_grow(void **arr, size_t *cap, size_t need, size_t elem, size_t first)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : (first ? first : 1);
    while (n < need) {
        if (n > SIZE_MAX / 2)
            return -1;
        n *= 2;
    }
    if (elem && n > SIZE_MAX / elem)
        return -1;
    void *p = apg_realloc(*arr, n * elem);
    if (!p)
        return -1;
    *arr = p;
    *cap = n;
    return 0;
}

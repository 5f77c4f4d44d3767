/* Counting allocator. A small header in front of each block holds its size
 * so apg_free can keep apg_mem_in_use exact without malloc_usable_size. */
#include "common/mem.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define HDR 16 /* keeps 16-byte alignment */

static _Atomic int64_t mem_in_use;
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
    atomic_fetch_add_explicit(&mem_in_use, (int64_t)n, memory_order_relaxed);
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
    atomic_fetch_add_explicit(&mem_in_use, (int64_t)n - (int64_t)old, memory_order_relaxed);
    return nb + HDR;
}

void apg_free(void *p)
{
    if (!p)
        return;
    unsigned char *base = (unsigned char *)p - HDR;
    size_t old;
    memcpy(&old, base, sizeof(old));
    atomic_fetch_sub_explicit(&mem_in_use, (int64_t)old, memory_order_relaxed);
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
    return atomic_load_explicit(&mem_in_use, memory_order_relaxed);
}

void apg_mem_fail_after(long n)
{
    atomic_store(&mem_fail_countdown, n);
}

/* Allocation wrapper.
 *
 * Every allocation in Apogee goes through these so that live bytes can be
 * counted (reported by metrics) and failures can be injected in tests
 * (apg_mem_fail_after). They return NULL on failure like malloc; callers on
 * the data path turn NULL into an error reply, never an abort. */
#ifndef APG_COMMON_MEM_H
#define APG_COMMON_MEM_H

#include <stddef.h>
#include <stdint.h>

void *apg_malloc(size_t n);
void *apg_calloc(size_t count, size_t n);
void *apg_realloc(void *p, size_t n);
/* Makes the array *arr (room for *cap elements of elem bytes) hold at least
 * need elements: the room doubles, starting from first, until it does. *arr
 * and *cap change only on success. 0, or -1 when out of memory. */
int apg_grow(void **arr, size_t *cap, size_t need, size_t elem, size_t first);
void apg_free(void *p);
char *apg_strdup(const char *s);
char *apg_strndup(const char *s, size_t n);

/* Bytes currently allocated through the wrapper. */
int64_t apg_mem_in_use(void);

/* Test hook: make the n-th following allocation fail (n = 0 disables). */
void apg_mem_fail_after(long n);

#endif

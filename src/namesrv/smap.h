/* A small string-keyed hash map (separate chaining, power-of-two buckets)
 * for the NameServer's tables. Keys are copied; values are the caller's.
 * Not thread-safe: owned by whoever owns the table it sits in. */
#ifndef APG_NAMESRV_SMAP_H
#define APG_NAMESRV_SMAP_H

#include <stdbool.h>
#include <stddef.h>

struct apg_smap_entry {
    char *e_key;
    void *e_val;
    struct apg_smap_entry *e_next;
};

struct apg_smap {
    struct apg_smap_entry **m_buckets;
    size_t m_cap; /* power of two, 0 before the first insert */
    size_t m_len;
};

#define APG_SMAP_INIT                                                                              \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

void *apg_smap_get(const struct apg_smap *m, const char *key);
/* Inserts or replaces; *old gets the previous value (NULL if none).
 * Returns false on out of memory (map unchanged). */
bool apg_smap_put(struct apg_smap *m, const char *key, void *val, void **old);
/* Removes key; returns its value or NULL. */
void *apg_smap_del(struct apg_smap *m, const char *key);
/* Frees the map's own memory (not the values). */
void apg_smap_free(struct apg_smap *m);

/* Iteration: for (e = apg_smap_first(m, &i); e; e = apg_smap_next(m, e, &i)).
 * Deleting the current entry while iterating is not allowed; collect keys
 * first. */
struct apg_smap_entry *apg_smap_first(const struct apg_smap *m, size_t *it);
struct apg_smap_entry *apg_smap_next(const struct apg_smap *m, struct apg_smap_entry *e,
                                     size_t *it);

#endif

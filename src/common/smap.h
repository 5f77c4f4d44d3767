/* String-keyed hash map (separate chaining, power-of-two buckets) shared by
 * the broker's and the NameServer's tables. Keys are copied; values are
 * borrowed pointers whose lifetime the table owner manages.
 * Not thread-safe: owned by whoever owns (or locks) the table it sits in. */
#ifndef APG_COMMON_SMAP_H
#define APG_COMMON_SMAP_H

#include <stddef.h>

#include "common/err.h"

struct apg_smap_ent {
    char *se_key; /* owned copy */
    void *se_val; /* borrowed */
    struct apg_smap_ent *se_next;
};

struct apg_smap {
    struct apg_smap_ent **sm_buckets;
    size_t sm_cap; /* power of two, 0 before the first insert */
    size_t sm_len; /* number of entries */
};

#define APG_SMAP_INIT                                                                              \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

void apg_smap_init(struct apg_smap *m);
/* Frees the map's own memory (entries and keys, not the values) and leaves
 * it empty and reusable. */
void apg_smap_clear(struct apg_smap *m);
/* apg_smap_clear after calling free_val on every value (e.g. apg_free). */
void apg_smap_clear_free(struct apg_smap *m, void (*free_val)(void *));
/* Returns the value for key (borrowed) or NULL. */
void *apg_smap_get(const struct apg_smap *m, const char *key);
/* Inserts or replaces key -> val; *old (if not NULL) gets the previous value
 * or NULL. Returns APG_ENOMEM (map unchanged) when out of memory. */
apg_err_t apg_smap_put(struct apg_smap *m, const char *key, void *val, void **old);
/* Removes key; returns its value (now the caller's) or NULL. */
void *apg_smap_del(struct apg_smap *m, const char *key);

/* Iteration: for (e = apg_smap_first(m, &i); e; e = apg_smap_next(m, e, &i)).
 * Deleting or inserting while iterating is not allowed; collect keys first. */
struct apg_smap_ent *apg_smap_first(const struct apg_smap *m, size_t *it);
struct apg_smap_ent *apg_smap_next(const struct apg_smap *m, struct apg_smap_ent *e, size_t *it);

#endif

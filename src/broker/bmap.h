/* String-keyed hash map used by the broker's tables (topics, groups,
 * offsets, clients). Not thread-safe: each table that holds one guards it
 * with its own lock. Keys are copied; values are borrowed pointers whose
 * lifetime the table owner manages. */
#ifndef APG_BROKER_BMAP_H
#define APG_BROKER_BMAP_H

#include <stddef.h>

#include "common/err.h"

struct apg_bmap_ent {
    char *me_key;
    void *me_val;
    struct apg_bmap_ent *me_next;
};

struct apg_bmap {
    struct apg_bmap_ent **bm_slots;
    size_t bm_nslots;
    size_t bm_count;
};

void apg_bmap_init(struct apg_bmap *m);
/* Frees the entries (not the values). */
void apg_bmap_clear(struct apg_bmap *m);
void *apg_bmap_get(const struct apg_bmap *m, const char *key);
/* Sets key -> val; returns the previous value (or NULL) in *old. */
apg_err_t apg_bmap_put(struct apg_bmap *m, const char *key, void *val, void **old);
/* Removes key; returns its value or NULL. */
void *apg_bmap_del(struct apg_bmap *m, const char *key);

/* Iteration: for (it = apg_bmap_first(m, &pos); it; it = apg_bmap_next(m, it, &pos)) */
struct apg_bmap_ent *apg_bmap_first(const struct apg_bmap *m, size_t *pos);
struct apg_bmap_ent *apg_bmap_next(const struct apg_bmap *m, struct apg_bmap_ent *e, size_t *pos);

#endif

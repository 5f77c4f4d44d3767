/* String-keyed chained hash map (see bmap.h). FNV-1a hashing, doubling when
 * the load factor passes 1. */
#include "broker/bmap.h"

#include <stdint.h>
#include <string.h>

#include "common/mem.h"

static size_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return (size_t)h;
}

void apg_bmap_init(struct apg_bmap *m)
{
    memset(m, 0, sizeof(*m));
}

void apg_bmap_clear(struct apg_bmap *m)
{
    for (size_t i = 0; i < m->bm_nslots; i++) {
        struct apg_bmap_ent *e = m->bm_slots[i];
        while (e) {
            struct apg_bmap_ent *n = e->me_next;
            apg_free(e->me_key);
            apg_free(e);
            e = n;
        }
    }
    apg_free(m->bm_slots);
    apg_bmap_init(m);
}

void *apg_bmap_get(const struct apg_bmap *m, const char *key)
{
    if (!m->bm_nslots)
        return NULL;
    for (struct apg_bmap_ent *e = m->bm_slots[hash(key) % m->bm_nslots]; e; e = e->me_next)
        if (strcmp(e->me_key, key) == 0)
            return e->me_val;
    return NULL;
}

static apg_err_t grow(struct apg_bmap *m)
{
    size_t n = m->bm_nslots ? m->bm_nslots * 2 : 16;
    struct apg_bmap_ent **slots = apg_calloc(n, sizeof(*slots));
    if (!slots)
        return APG_ENOMEM;
    for (size_t i = 0; i < m->bm_nslots; i++) {
        struct apg_bmap_ent *e = m->bm_slots[i];
        while (e) {
            struct apg_bmap_ent *next = e->me_next;
            size_t h = hash(e->me_key) % n;
            e->me_next = slots[h];
            slots[h] = e;
            e = next;
        }
    }
    apg_free(m->bm_slots);
    m->bm_slots = slots;
    m->bm_nslots = n;
    return APG_OK;
}

apg_err_t apg_bmap_put(struct apg_bmap *m, const char *key, void *val, void **old)
{
    if (old)
        *old = NULL;
    if (m->bm_nslots) {
        for (struct apg_bmap_ent *e = m->bm_slots[hash(key) % m->bm_nslots]; e; e = e->me_next)
            if (strcmp(e->me_key, key) == 0) {
                if (old)
                    *old = e->me_val;
                e->me_val = val;
                return APG_OK;
            }
    }
    if (m->bm_count >= m->bm_nslots && grow(m))
        return APG_ENOMEM;
    struct apg_bmap_ent *e = apg_malloc(sizeof(*e));
    char *k = apg_strdup(key);
    if (!e || !k) {
        apg_free(e);
        apg_free(k);
        return APG_ENOMEM;
    }
    size_t h = hash(key) % m->bm_nslots;
    e->me_key = k;
    e->me_val = val;
    e->me_next = m->bm_slots[h];
    m->bm_slots[h] = e;
    m->bm_count++;
    return APG_OK;
}

void *apg_bmap_del(struct apg_bmap *m, const char *key)
{
    if (!m->bm_nslots)
        return NULL;
    struct apg_bmap_ent **pp = &m->bm_slots[hash(key) % m->bm_nslots];
    for (; *pp; pp = &(*pp)->me_next) {
        struct apg_bmap_ent *e = *pp;
        if (strcmp(e->me_key, key) == 0) {
            void *v = e->me_val;
            *pp = e->me_next;
            apg_free(e->me_key);
            apg_free(e);
            m->bm_count--;
            return v;
        }
    }
    return NULL;
}

struct apg_bmap_ent *apg_bmap_first(const struct apg_bmap *m, size_t *pos)
{
    for (*pos = 0; *pos < m->bm_nslots; (*pos)++)
        if (m->bm_slots[*pos])
            return m->bm_slots[*pos];
    return NULL;
}

struct apg_bmap_ent *apg_bmap_next(const struct apg_bmap *m, struct apg_bmap_ent *e, size_t *pos)
{
    if (e->me_next)
        return e->me_next;
    for ((*pos)++; *pos < m->bm_nslots; (*pos)++)
        if (m->bm_slots[*pos])
            return m->bm_slots[*pos];
    return NULL;
}

/* String-keyed hash map (see smap.h).
 *
 * FNV-1a (64-bit) hashing, chains per bucket, and a table that starts at 16
 * buckets and doubles whenever the load factor would pass 1. Iteration order
 * is bucket order, then chain order: stable while the map is not modified,
 * but not meaningful; callers that need an order sort the keys. */
#include "common/smap.h"

#include <stdint.h>
#include <string.h>

#include "common/mem.h"

static size_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (uint8_t)*s;
        h *= 1099511628211ull;
    }
    return (size_t)h;
}

void apg_smap_init(struct apg_smap *m)
{
    memset(m, 0, sizeof(*m));
}

void apg_smap_clear(struct apg_smap *m)
{
    for (size_t i = 0; i < m->sm_cap; i++) {
        struct apg_smap_ent *e = m->sm_buckets[i];
        while (e) {
            struct apg_smap_ent *next = e->se_next;
            apg_free(e->se_key);
            apg_free(e);
            e = next;
        }
    }
    apg_free(m->sm_buckets);
    apg_smap_init(m);
}

void apg_smap_clear_free(struct apg_smap *m, void (*free_val)(void *))
{
    for (size_t i = 0; i < m->sm_cap; i++)
        for (struct apg_smap_ent *e = m->sm_buckets[i]; e; e = e->se_next)
            free_val(e->se_val);
    apg_smap_clear(m);
}

static struct apg_smap_ent **bucket(const struct apg_smap *m, const char *key)
{
    return &m->sm_buckets[hash_str(key) & (m->sm_cap - 1)];
}

void *apg_smap_get(const struct apg_smap *m, const char *key)
{
    if (!m->sm_cap)
        return NULL;
    for (struct apg_smap_ent *e = *bucket(m, key); e; e = e->se_next)
        if (strcmp(e->se_key, key) == 0)
            return e->se_val;
    return NULL;
}

static apg_err_t grow(struct apg_smap *m)
{
    size_t cap = m->sm_cap ? m->sm_cap * 2 : 16;
    struct apg_smap_ent **b = apg_calloc(cap, sizeof(*b));
    if (!b)
        return APG_ENOMEM;
    for (size_t i = 0; i < m->sm_cap; i++) {
        struct apg_smap_ent *e = m->sm_buckets[i];
        while (e) {
            struct apg_smap_ent *next = e->se_next;
            size_t j = hash_str(e->se_key) & (cap - 1);
            e->se_next = b[j];
            b[j] = e;
            e = next;
        }
    }
    apg_free(m->sm_buckets);
    m->sm_buckets = b;
    m->sm_cap = cap;
    return APG_OK;
}

apg_err_t apg_smap_put(struct apg_smap *m, const char *key, void *val, void **old)
{
    if (old)
        *old = NULL;
    if (m->sm_cap) {
        for (struct apg_smap_ent *e = *bucket(m, key); e; e = e->se_next) {
            if (strcmp(e->se_key, key) == 0) {
                if (old)
                    *old = e->se_val;
                e->se_val = val;
                return APG_OK;
            }
        }
    }
    if (m->sm_len >= m->sm_cap && grow(m))
        return APG_ENOMEM;
    struct apg_smap_ent *e = apg_malloc(sizeof(*e));
    char *k = apg_strdup(key);
    if (!e || !k) {
        apg_free(e);
        apg_free(k);
        return APG_ENOMEM;
    }
    struct apg_smap_ent **b = bucket(m, key);
    e->se_key = k;
    e->se_val = val;
    e->se_next = *b;
    *b = e;
    m->sm_len++;
    return APG_OK;
}

void *apg_smap_del(struct apg_smap *m, const char *key)
{
    if (!m->sm_cap)
        return NULL;
    for (struct apg_smap_ent **pp = bucket(m, key); *pp; pp = &(*pp)->se_next) {
        struct apg_smap_ent *e = *pp;
        if (strcmp(e->se_key, key) == 0) {
            void *v = e->se_val;
            *pp = e->se_next;
            apg_free(e->se_key);
            apg_free(e);
            m->sm_len--;
            return v;
        }
    }
    return NULL;
}

static struct apg_smap_ent *scan_from(const struct apg_smap *m, size_t *it)
{
    for (; *it < m->sm_cap; (*it)++)
        if (m->sm_buckets[*it])
            return m->sm_buckets[*it];
    return NULL;
}

struct apg_smap_ent *apg_smap_first(const struct apg_smap *m, size_t *it)
{
    *it = 0;
    return scan_from(m, it);
}

struct apg_smap_ent *apg_smap_next(const struct apg_smap *m, struct apg_smap_ent *e, size_t *it)
{
    if (e->se_next)
        return e->se_next;
    (*it)++;
    return scan_from(m, it);
}

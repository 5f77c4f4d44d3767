/* String-keyed hash map (see smap.h). FNV-1a hashing; the table doubles when
 * the load factor passes 1. */
#include "namesrv/smap.h"

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

void *apg_smap_get(const struct apg_smap *m, const char *key)
{
    if (!m->m_cap)
        return NULL;
    for (struct apg_smap_entry *e = m->m_buckets[hash_str(key) & (m->m_cap - 1)]; e; e = e->e_next)
        if (strcmp(e->e_key, key) == 0)
            return e->e_val;
    return NULL;
}

static bool grow(struct apg_smap *m)
{
    size_t cap = m->m_cap ? m->m_cap * 2 : 16;
    struct apg_smap_entry **b = apg_calloc(cap, sizeof(*b));
    if (!b)
        return false;
    for (size_t i = 0; i < m->m_cap; i++) {
        struct apg_smap_entry *e = m->m_buckets[i];
        while (e) {
            struct apg_smap_entry *next = e->e_next;
            size_t j = hash_str(e->e_key) & (cap - 1);
            e->e_next = b[j];
            b[j] = e;
            e = next;
        }
    }
    apg_free(m->m_buckets);
    m->m_buckets = b;
    m->m_cap = cap;
    return true;
}

bool apg_smap_put(struct apg_smap *m, const char *key, void *val, void **old)
{
    if (old)
        *old = NULL;
    if (m->m_cap) {
        for (struct apg_smap_entry *e = m->m_buckets[hash_str(key) & (m->m_cap - 1)]; e;
             e = e->e_next) {
            if (strcmp(e->e_key, key) == 0) {
                if (old)
                    *old = e->e_val;
                e->e_val = val;
                return true;
            }
        }
    }
    if (m->m_len >= m->m_cap && !grow(m))
        return false;
    struct apg_smap_entry *e = apg_malloc(sizeof(*e));
    char *k = apg_strdup(key);
    if (!e || !k) {
        apg_free(e);
        apg_free(k);
        return false;
    }
    size_t j = hash_str(key) & (m->m_cap - 1);
    e->e_key = k;
    e->e_val = val;
    e->e_next = m->m_buckets[j];
    m->m_buckets[j] = e;
    m->m_len++;
    return true;
}

void *apg_smap_del(struct apg_smap *m, const char *key)
{
    if (!m->m_cap)
        return NULL;
    struct apg_smap_entry **pp = &m->m_buckets[hash_str(key) & (m->m_cap - 1)];
    for (; *pp; pp = &(*pp)->e_next) {
        struct apg_smap_entry *e = *pp;
        if (strcmp(e->e_key, key) == 0) {
            void *v = e->e_val;
            *pp = e->e_next;
            apg_free(e->e_key);
            apg_free(e);
            m->m_len--;
            return v;
        }
    }
    return NULL;
}

void apg_smap_free(struct apg_smap *m)
{
    for (size_t i = 0; i < m->m_cap; i++) {
        struct apg_smap_entry *e = m->m_buckets[i];
        while (e) {
            struct apg_smap_entry *next = e->e_next;
            apg_free(e->e_key);
            apg_free(e);
            e = next;
        }
    }
    apg_free(m->m_buckets);
    m->m_buckets = NULL;
    m->m_cap = m->m_len = 0;
}

struct apg_smap_entry *apg_smap_first(const struct apg_smap *m, size_t *it)
{
    for (*it = 0; *it < m->m_cap; (*it)++)
        if (m->m_buckets[*it])
            return m->m_buckets[*it];
    return NULL;
}

struct apg_smap_entry *apg_smap_next(const struct apg_smap *m, struct apg_smap_entry *e, size_t *it)
{
    if (e->e_next)
        return e->e_next;
    for ((*it)++; *it < m->m_cap; (*it)++)
        if (m->m_buckets[*it])
            return m->m_buckets[*it];
    return NULL;
}

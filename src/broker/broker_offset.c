/* Consumer offset table: (topic@group, queueId) -> committed offset, and
 * <storePathRootDir>/config/consumerOffset.json
 * ({"offsetTable":{"topic@group":{"0":5,...}}}; fastjson's unquoted integer
 * keys are accepted on load).
 *
 * Threads: updated from every loop (UPDATE_CONSUMER_OFFSET and the commit
 * piggy-backed on pulls), read by QUERY_CONSUMER_OFFSET, persisted by the
 * broker's service thread; one mutex. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_int.h"
#include "common/mem.h"

struct apg_off_row {
    int32_t or_n;        /* slots in or_off */
    uint32_t or_key_len; /* strlen of its key, for the snapshot */
    int64_t or_off[1];   /* -1 = none; grows */
};

static struct apg_off_row *row_grow(struct apg_off_row *r, int32_t queue)
{
    int32_t old = r ? r->or_n : 0;
    if (queue < old)
        return r;
    int32_t n = old ? old : 8;
    while (n <= queue)
        n *= 2;
    struct apg_off_row *nr = apg_realloc(r, sizeof(*nr) + sizeof(int64_t) * (size_t)n);
    if (!nr)
        return NULL;
    for (int32_t i = old; i < n; i++)
        nr->or_off[i] = -1;
    nr->or_n = n;
    return nr;
}

static apg_err_t set_locked(struct apg_offsets *o, const char *key, int32_t queue, int64_t off)
{
    struct apg_off_row *r = apg_smap_get(&o->of_map, key);
    struct apg_off_row *nr = row_grow(r, queue);
    if (!nr)
        return APG_ENOMEM;
    if (!r)
        nr->or_key_len = (uint32_t)strlen(key);
    if (nr != r && apg_smap_put(&o->of_map, key, nr, NULL)) {
        if (!r)
            apg_free(nr);
        return APG_ENOMEM;
    }
    if (nr != r || nr->or_off[queue] != off)
        o->of_gen++;
    nr->or_off[queue] = off;
    o->of_bt.bt_changes++;
    return APG_OK;
}

struct apg_offsets *apg_offsets_open(const char *root, char *err, size_t errlen)
{
    struct apg_offsets *o = apg_calloc(1, sizeof(*o));
    if (!o) {
        apg_errf(APG_ENOMEM, err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&o->of_lock, NULL);
    apg_smap_init(&o->of_map);
    o->of_path = apg_path_join(root, "config/consumerOffset.json");
    if (!o->of_path) {
        apg_offsets_free(o);
        apg_errf(APG_ENOMEM, err, errlen, "out of memory");
        return NULL;
    }
    json_t *rj;
    if (apg_btable_load(o->of_path, &rj, err, errlen)) {
        apg_offsets_free(o);
        return NULL;
    }
    if (rj) {
        json_t *tab = json_object_get(rj, "offsetTable");
        const char *tg, *qk;
        json_t *k, *q;
        json_object_foreach(tab, tg, k)
        {
            json_object_foreach(k, qk, q)
            {
                long qid = strtol(qk, NULL, 10);
                int64_t off = apg_json_i64(q, -1);
                if (qid >= 0 && qid < 65536 && off >= 0)
                    set_locked(o, tg, (int32_t)qid, off);
            }
        }
        json_decref(rj);
        o->of_bt.bt_written = o->of_bt.bt_changes;
    }
    return o;
}

void apg_offsets_free(struct apg_offsets *o)
{
    if (!o)
        return;
    apg_smap_clear_free(&o->of_map, apg_free);
    pthread_mutex_destroy(&o->of_lock);
    apg_free(o->of_path);
    apg_free(o);
}

static void make_key(char *key, size_t n, const char *topic, const char *group)
{
    snprintf(key, n, "%s@%s", topic, group);
}

apg_err_t apg_offsets_commit(struct apg_offsets *o, const char *group, const char *topic,
                             int32_t queue, int64_t offset)
{
    if (offset < 0 || queue < 0 || queue >= 65536)
        return APG_OK;
    char key[2 * APG_NAME_CAP + 2];
    make_key(key, sizeof(key), topic, group);
    pthread_mutex_lock(&o->of_lock);
    apg_err_t e = set_locked(o, key, queue, offset);
    pthread_mutex_unlock(&o->of_lock);
    return e;
}

int64_t apg_offsets_query(struct apg_offsets *o, const char *group, const char *topic,
                          int32_t queue)
{
    char key[2 * APG_NAME_CAP + 2];
    make_key(key, sizeof(key), topic, group);
    pthread_mutex_lock(&o->of_lock);
    struct apg_off_row *r = apg_smap_get(&o->of_map, key);
    int64_t v = r && queue >= 0 && queue < r->or_n ? r->or_off[queue] : -1;
    pthread_mutex_unlock(&o->of_lock);
    return v;
}

/* Drops rows whose key matches: part 0 = topic before '@', 1 = group after. */
static void drop_matching(struct apg_offsets *o, const char *name, int part)
{
    pthread_mutex_lock(&o->of_lock);
    size_t pos;
    bool again = true;
    while (again) {
        again = false;
        for (struct apg_smap_ent *e = apg_smap_first(&o->of_map, &pos); e;
             e = apg_smap_next(&o->of_map, e, &pos)) {
            const char *at = strchr(e->se_key, '@');
            if (!at)
                continue;
            bool hit = part == 0 ? (strlen(name) == (size_t)(at - e->se_key) &&
                                    strncmp(e->se_key, name, (size_t)(at - e->se_key)) == 0)
                                 : strcmp(at + 1, name) == 0;
            if (hit) {
                char key[2 * APG_NAME_CAP + 2];
                snprintf(key, sizeof(key), "%s", e->se_key);
                apg_free(apg_smap_del(&o->of_map, key));
                o->of_bt.bt_changes++;
                o->of_gen++;
                again = true;
                break;
            }
        }
    }
    pthread_mutex_unlock(&o->of_lock);
}

void apg_offsets_drop_topic(struct apg_offsets *o, const char *topic)
{
    drop_matching(o, topic, 0);
}

void apg_offsets_drop_group(struct apg_offsets *o, const char *group)
{
    drop_matching(o, group, 1);
}

/* Appends the topic (by_group) or group half of every "topic@group" key
 * whose other half is name, each followed by a NUL. */
static apg_err_t names_by(struct apg_offsets *o, const char *name, bool by_group,
                          struct apg_buf *out)
{
    apg_err_t e = APG_OK;
    pthread_mutex_lock(&o->of_lock);
    size_t pos;
    for (struct apg_smap_ent *it = apg_smap_first(&o->of_map, &pos); !e && it;
         it = apg_smap_next(&o->of_map, it, &pos)) {
        const char *k = it->se_key, *at = strrchr(k, '@');
        if (!at)
            continue;
        size_t tlen = (size_t)(at - k);
        if (by_group && strcmp(at + 1, name) == 0)
            e = apg_buf_append(out, k, tlen);
        else if (!by_group && strlen(name) == tlen && memcmp(k, name, tlen) == 0)
            e = apg_buf_append(out, at + 1, strlen(at + 1));
        else
            continue;
        if (!e)
            e = apg_buf_append(out, "", 1);
    }
    pthread_mutex_unlock(&o->of_lock);
    return e;
}

apg_err_t apg_offsets_group_topics(struct apg_offsets *o, const char *group, struct apg_buf *out)
{
    return names_by(o, group, true, out);
}

apg_err_t apg_offsets_topic_groups(struct apg_offsets *o, const char *topic, struct apg_buf *out)
{
    return names_by(o, topic, false, out);
}

apg_err_t apg_offsets_snapshot(struct apg_offsets *o, struct apg_buf *out, uint64_t *gen)
{
    apg_err_t e = APG_OK;
    pthread_mutex_lock(&o->of_lock);
    if (gen && *gen == o->of_gen) {
        pthread_mutex_unlock(&o->of_lock);
        return APG_OK;
    }
    if (gen)
        apg_buf_reset(out);
    size_t pos;
    for (struct apg_smap_ent *it = apg_smap_first(&o->of_map, &pos); !e && it;
         it = apg_smap_next(&o->of_map, it, &pos)) {
        const struct apg_off_row *r = it->se_val;
        uint32_t kl = r->or_key_len;
        size_t sz = apg_offsets_snap_size((uint32_t)r->or_n, kl);
        e = apg_buf_reserve(out, sz);
        if (e)
            break;
        struct apg_offsets_snap *s = (struct apg_offsets_snap *)(out->b_data + out->b_len);
        size_t key_at = sizeof(*s) + 8u * (size_t)r->or_n;
        s->os_n = (uint32_t)r->or_n;
        s->os_key_len = kl;
        memcpy(s->os_off, r->or_off, 8u * (size_t)r->or_n);
        memcpy((char *)s + key_at, it->se_key, kl);
        memset((char *)s + key_at + kl, 0, sz - key_at - kl); /* its NUL and the padding */
        out->b_len += sz;
    }
    if (gen && !e)
        *gen = o->of_gen;
    pthread_mutex_unlock(&o->of_lock);
    return e;
}

apg_err_t apg_offsets_encode(struct apg_offsets *o, struct apg_buf *b)
{
    pthread_mutex_lock(&o->of_lock);
    apg_err_t e = apg_buf_append_str(b, "{\"offsetTable\":{");
    size_t pos;
    bool first = true;
    for (struct apg_smap_ent *it = apg_smap_first(&o->of_map, &pos); !e && it;
         it = apg_smap_next(&o->of_map, it, &pos)) {
        struct apg_off_row *r = it->se_val;
        if (!first)
            e = apg_buf_append(b, ",", 1);
        first = false;
        if (!e)
            e = apg_json_put_str(b, it->se_key);
        if (!e)
            e = apg_buf_append(b, ":{", 2);
        bool f2 = true;
        for (int32_t q = 0; !e && q < r->or_n; q++) {
            if (r->or_off[q] < 0)
                continue;
            e = apg_buf_printf(b, "%s\"%d\":%lld", f2 ? "" : ",", q, (long long)r->or_off[q]);
            f2 = false;
        }
        if (!e)
            e = apg_buf_append(b, "}", 1);
    }
    if (!e)
        e = apg_buf_append_str(b, "}}");
    pthread_mutex_unlock(&o->of_lock);
    return e;
}

static apg_err_t encode_table(void *table, struct apg_buf *b)
{
    return apg_offsets_encode(table, b);
}

apg_err_t apg_offsets_persist(struct apg_offsets *o, bool force, char *err, size_t errlen)
{
    return apg_btable_persist(&o->of_lock, &o->of_bt, o->of_path, force, encode_table, o,
                              "consumer offsets", NULL, err, errlen);
}

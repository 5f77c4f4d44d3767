/* Subscription group table (SubscriptionGroupConfig per consumer group) and
 * <storePathRootDir>/config/subscriptionGroup.json in the
 * SubscriptionGroupWrapper format, with its change journal
 * subscriptionGroup.json.log (btable_journal.c) replayed after it at open.
 *
 * Threads: shared by all loops (heartbeats and pulls auto-create groups),
 * one mutex, entries copied out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_int.h"
#include "common/log.h"
#include "common/mem.h"

void apg_group_cfg_defaults(struct apg_group_cfg *g, const char *name)
{
    memset(g, 0, sizeof(*g));
    snprintf(g->gc_name, sizeof(g->gc_name), "%s", name);
    g->gc_consume_enable = true;
    g->gc_consume_from_min_enable = true;
    g->gc_consume_broadcast_enable = true;
    g->gc_notify_ids_changed = true;
    g->gc_retry_queues = 1;
    g->gc_retry_max_times = 16;
    g->gc_broker_id = 0;
    g->gc_which_broker_slow = 1;
}

apg_err_t apg_group_cfg_decode(const json_t *j, struct apg_group_cfg *out, char *err, size_t errlen)
{
    const char *name = apg_json_get_str(j, "groupName", NULL);
    if (!name || !name[0])
        return apg_errf(APG_EINVAL, err, errlen, "SubscriptionGroupConfig without groupName");
    if (strlen(name) >= sizeof(out->gc_name))
        return apg_errf(APG_EINVAL, err, errlen, "group name too long");
    apg_group_cfg_defaults(out, name);
    out->gc_consume_enable = apg_json_get_bool(j, "consumeEnable", true);
    out->gc_consume_from_min_enable = apg_json_get_bool(j, "consumeFromMinEnable", true);
    out->gc_consume_broadcast_enable = apg_json_get_bool(j, "consumeBroadcastEnable", true);
    out->gc_notify_ids_changed = apg_json_get_bool(j, "notifyConsumerIdsChangedEnable", true);
    out->gc_retry_queues = (int32_t)apg_json_get_i64(j, "retryQueueNums", 1);
    out->gc_retry_max_times = (int32_t)apg_json_get_i64(j, "retryMaxTimes", 16);
    out->gc_broker_id = apg_json_get_i64(j, "brokerId", 0);
    out->gc_which_broker_slow = apg_json_get_i64(j, "whichBrokerWhenConsumeSlowly", 1);
    return APG_OK;
}

apg_err_t apg_group_cfg_encode(const struct apg_group_cfg *g, struct apg_buf *b)
{
    apg_err_t e = apg_buf_printf(
        b,
        "{\"brokerId\":%lld,\"consumeBroadcastEnable\":%s,\"consumeEnable\":%s,"
        "\"consumeFromMinEnable\":%s,\"consumeMessageOrderly\":false,\"consumeTimeoutMinute\":15,"
        "\"groupName\":",
        (long long)g->gc_broker_id, g->gc_consume_broadcast_enable ? "true" : "false",
        g->gc_consume_enable ? "true" : "false", g->gc_consume_from_min_enable ? "true" : "false");
    if (!e)
        e = apg_json_put_str(b, g->gc_name);
    if (!e)
        e = apg_buf_printf(b,
                           ",\"groupSysFlag\":0,\"notifyConsumerIdsChangedEnable\":%s,"
                           "\"retryMaxTimes\":%d,\"retryQueueNums\":%d,"
                           "\"whichBrokerWhenConsumeSlowly\":%lld}",
                           g->gc_notify_ids_changed ? "true" : "false", g->gc_retry_max_times,
                           g->gc_retry_queues, (long long)g->gc_which_broker_slow);
    return e;
}

/* Sets the entry of gc's name, without counting a change. */
static apg_err_t insert(struct apg_groups *g, const struct apg_group_cfg *gc)
{
    struct apg_group_cfg *n = apg_malloc(sizeof(*n));
    if (!n)
        return APG_ENOMEM;
    *n = *gc;
    void *old;
    if (apg_smap_put(&g->gp_map, n->gc_name, n, &old)) {
        apg_free(n);
        return APG_ENOMEM;
    }
    apg_free(old);
    return APG_OK;
}

static apg_err_t encode_entry(const void *gc, struct apg_buf *b)
{
    return apg_group_cfg_encode(gc, b);
}

/* Caller holds gp_lock. */
static apg_err_t put_locked(struct apg_groups *g, const struct apg_group_cfg *gc)
{
    apg_err_t e = insert(g, gc);
    if (e)
        return e;
    apg_dver_next(&g->gp_version);
    g->gp_bt.bt_changes++;
    apg_btable_note(&g->gp_bt, APG_BJ_UPSERT, g->gp_version.dv_counter, gc->gc_name, encode_entry,
                    gc);
    return APG_OK;
}

/* Replays one subscriptionGroup.json.log record (apg_bjournal_apply_fn). */
static apg_err_t replay(void *ud, int op, const char *name, const json_t *entry)
{
    struct apg_groups *g = ud;
    if (op == APG_BJ_DELETE) {
        apg_free(apg_smap_del(&g->gp_map, name));
        return APG_OK;
    }
    struct apg_group_cfg gc;
    if (apg_group_cfg_decode(entry, &gc, NULL, 0) || strcmp(gc.gc_name, name) != 0)
        return APG_EINVAL;
    return insert(g, &gc);
}

struct apg_groups *apg_groups_open(const char *root, char *err, size_t errlen)
{
    struct apg_groups *g = apg_calloc(1, sizeof(*g));
    if (!g) {
        apg_errf(APG_ENOMEM, err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&g->gp_lock, NULL);
    apg_smap_init(&g->gp_map);
    g->gp_path = apg_path_join(root, "config/subscriptionGroup.json");
    if (!g->gp_path) {
        apg_groups_free(g);
        apg_errf(APG_ENOMEM, err, errlen, "out of memory");
        return NULL;
    }
    json_t *rootj;
    if (apg_btable_load(g->gp_path, &rootj, err, errlen)) {
        apg_groups_free(g);
        return NULL;
    }
    if (rootj) {
        apg_dver_decode(json_object_get(rootj, "dataVersion"), &g->gp_version);
        json_t *tab = json_object_get(rootj, "subscriptionGroupTable");
        const char *name;
        json_t *k;
        json_object_foreach(tab, name, k)
        {
            struct apg_group_cfg gc;
            if (apg_group_cfg_decode(k, &gc, NULL, 0) == APG_OK && insert(g, &gc)) {
                json_decref(rootj);
                apg_groups_free(g);
                apg_errf(APG_ENOMEM, err, errlen, "out of memory loading subscription groups");
                return NULL;
            }
        }
        json_decref(rootj);
    }
    int64_t ver;
    if (apg_btable_journal_open(&g->gp_bt, g->gp_path, g->gp_version.dv_counter, replay, g, &ver,
                                err, errlen)) {
        apg_groups_free(g);
        return NULL;
    }
    if (ver > g->gp_version.dv_counter)
        g->gp_version.dv_counter = ver;
    return g;
}

/* Tells the hook about a change; called with the lock released. */
static void changed(struct apg_groups *g)
{
    if (g->gp_bt.bt_hook)
        g->gp_bt.bt_hook(g->gp_bt.bt_hook_ud);
}

void apg_groups_set_hook(struct apg_groups *g, apg_btable_hook_fn fn, void *ud)
{
    g->gp_bt.bt_hook = fn;
    g->gp_bt.bt_hook_ud = ud;
}

uint64_t apg_groups_changes(struct apg_groups *g)
{
    return apg_btable_changes(&g->gp_lock, &g->gp_bt);
}

void apg_groups_free(struct apg_groups *g)
{
    if (!g)
        return;
    apg_smap_clear_free(&g->gp_map, apg_free);
    apg_btable_journal_close(&g->gp_bt);
    pthread_mutex_destroy(&g->gp_lock);
    apg_free(g->gp_path);
    apg_free(g);
}

bool apg_groups_get(struct apg_groups *g, const char *name, struct apg_group_cfg *out)
{
    pthread_mutex_lock(&g->gp_lock);
    struct apg_group_cfg *gc = apg_smap_get(&g->gp_map, name);
    if (gc && out)
        *out = *gc;
    pthread_mutex_unlock(&g->gp_lock);
    return gc != NULL;
}

apg_err_t apg_groups_get_or_create(struct apg_groups *g, const char *name, bool auto_create,
                                   struct apg_group_cfg *out)
{
    apg_err_t e = APG_OK;
    pthread_mutex_lock(&g->gp_lock);
    struct apg_group_cfg *gc = apg_smap_get(&g->gp_map, name);
    if (gc) {
        *out = *gc;
    } else if (!auto_create) {
        e = APG_ENOTFOUND;
    } else {
        apg_group_cfg_defaults(out, name);
        e = put_locked(g, out);
        if (!e)
            apg_log_info("broker", "auto-created subscription group %s", name);
    }
    bool made = gc == NULL && e == APG_OK;
    pthread_mutex_unlock(&g->gp_lock);
    if (made)
        changed(g);
    return e;
}

apg_err_t apg_groups_put(struct apg_groups *g, const struct apg_group_cfg *gc)
{
    pthread_mutex_lock(&g->gp_lock);
    apg_err_t e = put_locked(g, gc);
    pthread_mutex_unlock(&g->gp_lock);
    if (e == APG_OK)
        changed(g);
    return e;
}

bool apg_groups_delete(struct apg_groups *g, const char *name)
{
    pthread_mutex_lock(&g->gp_lock);
    struct apg_group_cfg *gc = apg_smap_del(&g->gp_map, name);
    if (gc) {
        apg_free(gc);
        apg_dver_next(&g->gp_version);
        g->gp_bt.bt_changes++;
        apg_btable_note(&g->gp_bt, APG_BJ_DELETE, g->gp_version.dv_counter, name, NULL, NULL);
    }
    pthread_mutex_unlock(&g->gp_lock);
    if (gc)
        changed(g);
    return gc != NULL;
}

apg_err_t apg_groups_names(struct apg_groups *g, struct apg_buf *out)
{
    apg_err_t e = APG_OK;
    pthread_mutex_lock(&g->gp_lock);
    size_t pos;
    for (struct apg_smap_ent *it = apg_smap_first(&g->gp_map, &pos); !e && it;
         it = apg_smap_next(&g->gp_map, it, &pos))
        e = apg_buf_append(out, it->se_key, strlen(it->se_key) + 1);
    pthread_mutex_unlock(&g->gp_lock);
    return e;
}

apg_err_t apg_groups_encode(struct apg_groups *g, struct apg_buf *b)
{
    pthread_mutex_lock(&g->gp_lock);
    apg_err_t e = apg_buf_append_str(b, "{\"dataVersion\":");
    if (!e)
        e = apg_dver_encode(&g->gp_version, b);
    if (!e)
        e = apg_buf_append_str(b, ",\"forbiddenTable\":{},\"subscriptionGroupTable\":{");
    size_t pos;
    bool first = true;
    for (struct apg_smap_ent *it = apg_smap_first(&g->gp_map, &pos); !e && it;
         it = apg_smap_next(&g->gp_map, it, &pos)) {
        if (!first)
            e = apg_buf_append(b, ",", 1);
        first = false;
        if (!e)
            e = apg_json_put_str(b, it->se_key);
        if (!e)
            e = apg_buf_append(b, ":", 1);
        if (!e)
            e = apg_group_cfg_encode(it->se_val, b);
    }
    if (!e)
        e = apg_buf_append_str(b, "}}");
    pthread_mutex_unlock(&g->gp_lock);
    return e;
}

static apg_err_t encode_table(void *table, struct apg_buf *b)
{
    return apg_groups_encode(table, b);
}

apg_err_t apg_groups_persist(struct apg_groups *g, bool force, uint64_t *upto, char *err,
                             size_t errlen)
{
    return apg_btable_commit(&g->gp_lock, &g->gp_bt, g->gp_path, force, encode_table, g,
                             "subscription groups", upto, err, errlen);
}

/* Topic config table: the broker's TopicConfig per topic, RocketMQ's
 * auto-creation rules, and <storePathRootDir>/config/topics.json in the
 * TopicConfigSerializeWrapper format ({"dataVersion":{..},
 * "topicConfigTable":{"T":{..}}}).
 *
 * Threads: every loop thread reads it on the send and pull paths and the
 * admin processors change it, so one mutex guards the map; entries are
 * copied out. Every change bumps the DataVersion (the NameServer uses it to
 * decide whether routes changed) and the change count, then, with the lock
 * released, calls the table's change hook: the broker's listener
 * (broker_tables.c) re-registers with the NameServers and has the table
 * writer make the change durable. Each change also notes a record for
 * config/topics.json.log (btable_journal.c), replayed after the file at
 * open. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_int.h"
#include "common/log.h"
#include "common/mem.h"

static void set_name(struct apg_topic_cfg *tc, const char *name)
{
    snprintf(tc->tc_name, sizeof(tc->tc_name), "%s", name);
}

apg_err_t apg_topic_cfg_encode(const struct apg_topic_cfg *tc, struct apg_buf *b)
{
    apg_err_t e = apg_buf_printf(b,
                                 "{\"order\":%s,\"perm\":%d,\"readQueueNums\":%d,"
                                 "\"topicFilterType\":\"%s\",\"topicName\":",
                                 tc->tc_order ? "true" : "false", tc->tc_perm, tc->tc_read_queues,
                                 tc->tc_filter == APG_TOPIC_MULTI_TAG ? "MULTI_TAG" : "SINGLE_TAG");
    if (!e)
        e = apg_json_put_str(b, tc->tc_name);
    if (!e)
        e = apg_buf_printf(b, ",\"topicSysFlag\":%d,\"writeQueueNums\":%d}", tc->tc_sysflag,
                           tc->tc_write_queues);
    return e;
}

apg_err_t apg_topic_cfg_decode(const json_t *j, struct apg_topic_cfg *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    const char *name = apg_json_get_str(j, "topicName", NULL);
    if (!name || !name[0])
        return apg_errf(APG_EINVAL, err, errlen, "TopicConfig without topicName");
    if (strlen(name) >= sizeof(out->tc_name))
        return apg_errf(APG_EINVAL, err, errlen, "topic name too long");
    set_name(out, name);
    out->tc_read_queues = (int32_t)apg_json_get_i64(j, "readQueueNums", 16);
    out->tc_write_queues = (int32_t)apg_json_get_i64(j, "writeQueueNums", 16);
    out->tc_perm = (int32_t)apg_json_get_i64(j, "perm", APG_PERM_READ | APG_PERM_WRITE);
    out->tc_sysflag = (int32_t)apg_json_get_i64(j, "topicSysFlag", 0);
    out->tc_order = apg_json_get_bool(j, "order", false);
    const char *ft = apg_json_get_str(j, "topicFilterType", "SINGLE_TAG");
    out->tc_filter = strcmp(ft, "MULTI_TAG") == 0 ? APG_TOPIC_MULTI_TAG : APG_TOPIC_SINGLE_TAG;
    return APG_OK;
}

static apg_err_t encode_entry(const void *tc, struct apg_buf *b)
{
    return apg_topic_cfg_encode(tc, b);
}

/* Caller holds tp_lock. */
static apg_err_t put_locked(struct apg_topics *t, const struct apg_topic_cfg *tc)
{
    struct apg_topic_cfg *n = apg_malloc(sizeof(*n));
    if (!n)
        return APG_ENOMEM;
    *n = *tc;
    void *old;
    if (apg_smap_put(&t->tp_map, n->tc_name, n, &old)) {
        apg_free(n);
        return APG_ENOMEM;
    }
    apg_free(old);
    apg_dver_next(&t->tp_version);
    t->tp_bt.bt_changes++;
    apg_btable_note(&t->tp_bt, APG_BJ_UPSERT, t->tp_version.dv_counter, n->tc_name, encode_entry,
                    n);
    return APG_OK;
}

/* Replays one journal record (apg_bjournal_apply_fn); control thread, at open. */
static apg_err_t replay(void *ud, int op, const char *name, const json_t *entry)
{
    struct apg_topics *t = ud;
    if (op == APG_BJ_DELETE) {
        apg_free(apg_smap_del(&t->tp_map, name));
        return APG_OK;
    }
    struct apg_topic_cfg tc;
    if (apg_topic_cfg_decode(entry, &tc, NULL, 0) || strcmp(tc.tc_name, name) != 0)
        return APG_EINVAL;
    struct apg_topic_cfg *n = apg_malloc(sizeof(*n));
    if (!n)
        return APG_ENOMEM;
    *n = tc;
    void *old = NULL;
    if (apg_smap_put(&t->tp_map, n->tc_name, n, &old)) {
        apg_free(n);
        return APG_ENOMEM;
    }
    apg_free(old);
    return APG_OK;
}

static apg_err_t load(struct apg_topics *t, char *err, size_t errlen)
{
    json_t *root;
    apg_err_t e = apg_btable_load(t->tp_path, &root, err, errlen);
    if (e || !root)
        return e;
    apg_dver_decode(json_object_get(root, "dataVersion"), &t->tp_version);
    json_t *tab = json_object_get(root, "topicConfigTable");
    const char *name;
    json_t *k;
    json_object_foreach(tab, name, k)
    {
        struct apg_topic_cfg tc;
        if (apg_topic_cfg_decode(k, &tc, NULL, 0) == APG_OK) {
            struct apg_topic_cfg *n = apg_malloc(sizeof(*n));
            if (!n || apg_smap_put(&t->tp_map, tc.tc_name, n, NULL)) {
                apg_free(n);
                json_decref(root);
                return apg_errf(APG_ENOMEM, err, errlen, "out of memory loading topics");
            }
            *n = tc;
        }
    }
    json_decref(root);
    return APG_OK;
}

/* The topics.json.log replay after load (see btable_journal.c). */
static apg_err_t load_journal(struct apg_topics *t, char *err, size_t errlen)
{
    int64_t ver;
    apg_err_t e = apg_btable_journal_open(&t->tp_bt, t->tp_path, t->tp_version.dv_counter, replay,
                                          t, &ver, err, errlen);
    if (!e && ver > t->tp_version.dv_counter)
        t->tp_version.dv_counter = ver;
    return e;
}

static void ensure_builtin(struct apg_topics *t, const char *name, int32_t queues, int32_t perm)
{
    if (apg_smap_get(&t->tp_map, name))
        return;
    struct apg_topic_cfg tc = {0};
    set_name(&tc, name);
    tc.tc_read_queues = tc.tc_write_queues = queues;
    tc.tc_perm = perm;
    put_locked(t, &tc);
}

struct apg_topics *apg_topics_open(const char *root, bool auto_create, int32_t default_queues,
                                   const char *cluster, const char *broker_name, char *err,
                                   size_t errlen)
{
    struct apg_topics *t = apg_calloc(1, sizeof(*t));
    if (!t) {
        apg_errf(APG_ENOMEM, err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&t->tp_lock, NULL);
    apg_smap_init(&t->tp_map);
    t->tp_path = apg_path_join(root, "config/topics.json");
    if (!t->tp_path) {
        apg_topics_free(t);
        apg_errf(APG_ENOMEM, err, errlen, "out of memory");
        return NULL;
    }
    if (load(t, err, errlen) || load_journal(t, err, errlen)) {
        apg_topics_free(t);
        return NULL;
    }
    const int32_t rw = APG_PERM_READ | APG_PERM_WRITE;
    if (auto_create) {
        struct apg_topic_cfg *tbw = apg_smap_get(&t->tp_map, APG_DEFAULT_TOPIC);
        if (!tbw || !(tbw->tc_perm & APG_PERM_INHERIT) || tbw->tc_write_queues != default_queues) {
            struct apg_topic_cfg tc = {0};
            set_name(&tc, APG_DEFAULT_TOPIC);
            tc.tc_read_queues = tc.tc_write_queues = default_queues;
            tc.tc_perm = rw | APG_PERM_INHERIT;
            put_locked(t, &tc);
        }
    } else {
        apg_free(apg_smap_del(&t->tp_map, APG_DEFAULT_TOPIC));
    }
    ensure_builtin(t, "SELF_TEST_TOPIC", 1, rw);
    ensure_builtin(t, "OFFSET_MOVED_EVENT", 1, rw);
    /* Delayed messages, one queue per level (RocketMQ registers 18). */
    ensure_builtin(t, "SCHEDULE_TOPIC_XXXX", 18, rw);
    /* Transactions' half and op records (src/broker/txn), one queue each. */
    ensure_builtin(t, "RMQ_SYS_TRANS_HALF_TOPIC", 1, rw);
    ensure_builtin(t, "RMQ_SYS_TRANS_OP_HALF_TOPIC", 1, rw);
    /* Timer messages (RocketMQ 5.x registers it with one queue). */
    ensure_builtin(t, "rmq_sys_wheel_timer", 1, rw);
    if (cluster && cluster[0])
        ensure_builtin(t, cluster, 16, rw | APG_PERM_INHERIT);
    if (broker_name && broker_name[0])
        ensure_builtin(t, broker_name, 1, rw | APG_PERM_INHERIT);
    return t;
}

/* Tells the hook about a change; called with the lock released. */
static void changed(struct apg_topics *t)
{
    if (t->tp_bt.bt_hook)
        t->tp_bt.bt_hook(t->tp_bt.bt_hook_ud);
}

void apg_topics_set_hook(struct apg_topics *t, apg_btable_hook_fn fn, void *ud)
{
    t->tp_bt.bt_hook = fn;
    t->tp_bt.bt_hook_ud = ud;
}

uint64_t apg_topics_changes(struct apg_topics *t)
{
    return apg_btable_changes(&t->tp_lock, &t->tp_bt);
}

void apg_topics_free(struct apg_topics *t)
{
    if (!t)
        return;
    apg_smap_clear_free(&t->tp_map, apg_free);
    apg_btable_journal_close(&t->tp_bt);
    pthread_mutex_destroy(&t->tp_lock);
    apg_free(t->tp_path);
    apg_free(t);
}

bool apg_topics_get(struct apg_topics *t, const char *name, struct apg_topic_cfg *out)
{
    pthread_mutex_lock(&t->tp_lock);
    struct apg_topic_cfg *tc = apg_smap_get(&t->tp_map, name);
    if (tc && out)
        *out = *tc;
    pthread_mutex_unlock(&t->tp_lock);
    return tc != NULL;
}

apg_err_t apg_topics_put(struct apg_topics *t, const struct apg_topic_cfg *tc)
{
    pthread_mutex_lock(&t->tp_lock);
    apg_err_t e = put_locked(t, tc);
    pthread_mutex_unlock(&t->tp_lock);
    if (e == APG_OK)
        changed(t);
    return e;
}

bool apg_topics_delete(struct apg_topics *t, const char *name)
{
    pthread_mutex_lock(&t->tp_lock);
    struct apg_topic_cfg *tc = apg_smap_del(&t->tp_map, name);
    if (tc) {
        apg_free(tc);
        apg_dver_next(&t->tp_version);
        t->tp_bt.bt_changes++;
        apg_btable_note(&t->tp_bt, APG_BJ_DELETE, t->tp_version.dv_counter, name, NULL, NULL);
    }
    pthread_mutex_unlock(&t->tp_lock);
    if (tc)
        changed(t);
    return tc != NULL;
}

apg_err_t apg_topics_names(struct apg_topics *t, struct apg_buf *out)
{
    apg_err_t e = APG_OK;
    pthread_mutex_lock(&t->tp_lock);
    size_t pos;
    for (struct apg_smap_ent *it = apg_smap_first(&t->tp_map, &pos); !e && it;
         it = apg_smap_next(&t->tp_map, it, &pos))
        e = apg_buf_append(out, it->se_key, strlen(it->se_key) + 1);
    pthread_mutex_unlock(&t->tp_lock);
    return e;
}

apg_err_t apg_topics_ensure(struct apg_topics *t, const char *topic, int32_t queues, int32_t perm,
                            bool *created)
{
    bool made = false;
    pthread_mutex_lock(&t->tp_lock);
    apg_err_t e = APG_OK;
    if (!apg_smap_get(&t->tp_map, topic)) {
        struct apg_topic_cfg tc = {0};
        set_name(&tc, topic);
        tc.tc_read_queues = tc.tc_write_queues = queues;
        tc.tc_perm = perm;
        e = put_locked(t, &tc);
        made = e == APG_OK;
    }
    pthread_mutex_unlock(&t->tp_lock);
    if (made)
        changed(t);
    if (created)
        *created = made;
    return e;
}

apg_err_t apg_topics_ensure_retry(struct apg_topics *t, const char *group, int32_t queues)
{
    char retry[APG_NAME_CAP + 8];
    snprintf(retry, sizeof(retry), "%s%s", APG_RETRY_PREFIX, group);
    bool made;
    apg_err_t e =
        apg_topics_ensure(t, retry, queues > 0 ? queues : 1, APG_PERM_READ | APG_PERM_WRITE, &made);
    if (made)
        apg_log_info("broker", "created %s for group %s", retry, group);
    return e;
}

apg_err_t apg_topics_ensure_dlq(struct apg_topics *t, const char *topic)
{
    bool made;
    apg_err_t e = apg_topics_ensure(t, topic, 1, APG_PERM_READ | APG_PERM_WRITE, &made);
    if (made)
        apg_log_info("broker", "created dead-letter topic %s", topic);
    return e;
}

apg_err_t apg_topics_get_or_create_for_send(struct apg_topics *t, const char *topic,
                                            const char *default_topic, int32_t default_qnums,
                                            int32_t retry_queues, struct apg_topic_cfg *out,
                                            char *err, size_t errlen)
{
    bool made = false;
    apg_err_t e = APG_OK;
    pthread_mutex_lock(&t->tp_lock);
    struct apg_topic_cfg *tc = apg_smap_get(&t->tp_map, topic);
    if (tc) {
        *out = *tc;
        goto out;
    }
    struct apg_topic_cfg n = {0};
    set_name(&n, topic);
    if (strncmp(topic, APG_RETRY_PREFIX, strlen(APG_RETRY_PREFIX)) == 0) {
        n.tc_read_queues = n.tc_write_queues = retry_queues > 0 ? retry_queues : 1;
        n.tc_perm = APG_PERM_READ | APG_PERM_WRITE;
    } else {
        const char *dt = default_topic && default_topic[0] ? default_topic : APG_DEFAULT_TOPIC;
        struct apg_topic_cfg *tmpl = apg_smap_get(&t->tp_map, dt);
        if (!tmpl) {
            e = apg_errf(
                APG_ENOTFOUND, err, errlen,
                "topic '%s' does not exist and the template topic '%s' is missing "
                "(autoCreateTopicEnable=false?): create the topic with "
                "UPDATE_AND_CREATE_TOPIC (apogee admin updateTopic -c <cluster> -t %s) or set "
                "autoCreateTopicEnable=true",
                topic, dt, topic);
            goto out;
        }
        if (!(tmpl->tc_perm & APG_PERM_INHERIT)) {
            e = apg_errf(APG_ENOTFOUND, err, errlen,
                         "topic '%s' does not exist and the template topic '%s' does not allow "
                         "inheritance (perm %d): create the topic first (apogee admin updateTopic "
                         "-c <cluster> -t %s)",
                         topic, dt, tmpl->tc_perm, topic);
            goto out;
        }
        int32_t q = default_qnums > 0 ? default_qnums : tmpl->tc_write_queues;
        if (q > tmpl->tc_write_queues)
            q = tmpl->tc_write_queues;
        n.tc_read_queues = n.tc_write_queues = q;
        n.tc_perm = tmpl->tc_perm & ~APG_PERM_INHERIT;
        n.tc_filter = tmpl->tc_filter;
    }
    e = put_locked(t, &n);
    if (e == APG_OK) {
        *out = n;
        made = true;
        apg_log_info("broker", "auto-created topic %s with %d queues, perm %d", topic,
                     n.tc_write_queues, n.tc_perm);
    } else {
        apg_errf(e, err, errlen, "out of memory creating topic '%s'", topic);
    }
out:
    pthread_mutex_unlock(&t->tp_lock);
    if (made)
        changed(t);
    return e;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp((*(struct apg_topic_cfg *const *)a)->tc_name,
                  (*(struct apg_topic_cfg *const *)b)->tc_name);
}

apg_err_t apg_topics_encode(struct apg_topics *t, struct apg_buf *b)
{
    return apg_topics_encode_perm(t, APG_PERM_READ | APG_PERM_WRITE | APG_PERM_INHERIT, b);
}

apg_err_t apg_topics_encode_perm(struct apg_topics *t, int32_t perm_mask, struct apg_buf *b)
{
    /* Copies the entries under the lock and encodes without it: at 10,000
     * topics the text is ~2 MB, and the send path's lookups must not wait
     * for the writer or a registration to print it. */
    pthread_mutex_lock(&t->tp_lock);
    size_t n = t->tp_map.sm_len, i = 0, pos;
    struct apg_dver ver = t->tp_version;
    struct apg_topic_cfg *v = apg_malloc((n ? n : 1) * sizeof(*v));
    struct apg_topic_cfg **by_name = apg_malloc((n ? n : 1) * sizeof(*by_name));
    if (v && by_name)
        for (struct apg_smap_ent *it = apg_smap_first(&t->tp_map, &pos); it;
             it = apg_smap_next(&t->tp_map, it, &pos)) {
            v[i] = *(const struct apg_topic_cfg *)it->se_val;
            v[i].tc_perm &= perm_mask;
            by_name[i] = &v[i];
            i++;
        }
    pthread_mutex_unlock(&t->tp_lock);
    if (!v || !by_name) {
        apg_free(v);
        apg_free(by_name);
        return APG_ENOMEM;
    }
    /* Sorted output keeps the file stable and diffable. */
    qsort(by_name, n, sizeof(*by_name), cmp_name);
    apg_err_t e = apg_buf_append_str(b, "{\"dataVersion\":");
    if (!e)
        e = apg_dver_encode(&ver, b);
    if (!e)
        e = apg_buf_append_str(b, ",\"topicConfigTable\":{");
    for (i = 0; !e && i < n; i++) {
        if (i)
            e = apg_buf_append(b, ",", 1);
        if (!e)
            e = apg_json_put_str(b, by_name[i]->tc_name);
        if (!e)
            e = apg_buf_append(b, ":", 1);
        if (!e)
            e = apg_topic_cfg_encode(by_name[i], b);
    }
    if (!e)
        e = apg_buf_append_str(b, "}}");
    apg_free(by_name);
    apg_free(v);
    return e;
}

static apg_err_t encode_table(void *table, struct apg_buf *b)
{
    return apg_topics_encode(table, b);
}

apg_err_t apg_topics_persist(struct apg_topics *t, bool force, uint64_t *upto, char *err,
                             size_t errlen)
{
    return apg_btable_commit(&t->tp_lock, &t->tp_bt, t->tp_path, force, encode_table, t, "topics",
                             upto, err, errlen);
}

void apg_topics_touch(struct apg_topics *t)
{
    pthread_mutex_lock(&t->tp_lock);
    apg_dver_next(&t->tp_version);
    pthread_mutex_unlock(&t->tp_lock);
}

void apg_topics_version(struct apg_topics *t, struct apg_dver *out)
{
    pthread_mutex_lock(&t->tp_lock);
    *out = t->tp_version;
    pthread_mutex_unlock(&t->tp_lock);
}

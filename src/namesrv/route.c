/* NameServer route table (see route.h).
 *
 * Four tables, as in RocketMQ's RouteInfoManager:
 *   rt_brokers   brokerName -> struct broker (cluster, zone, id -> addr)
 *   rt_clusters  clusterName -> set of broker names (an smap with dummy values)
 *   rt_topics    topic -> (brokerName -> struct queue_data)
 *   rt_live      "cluster\1addr" -> struct live (last heard, data version,
 *                HA address, timeout, connection identity)
 * A broker address leaves all of them together (unregister, expiry,
 * connection close): when a broker name loses its last address its queue
 * data goes too, and a topic without queue data disappears.
 *
 * Threads: none; the NameServer's loop thread owns the table. */
#include "namesrv/route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/smap.h"
#include "protocol/route_json.h"

struct broker_addr {
    int64_t ba_id;
    char *ba_addr;
};

struct broker {
    char *b_name;
    char *b_cluster;
    char *b_zone;
    bool b_acting;
    size_t b_n;
    struct broker_addr *b_addrs; /* sorted by id */
};

struct queue_data {
    int32_t q_read;
    int32_t q_write;
    int32_t q_perm;
    int32_t q_sys_flag;
};

struct live {
    char *lv_cluster;
    char *lv_addr;
    char *lv_broker_name;
    char *lv_ha_addr;
    int64_t lv_last_ms;
    int64_t lv_timeout_ms;
    struct apg_data_version lv_dv;
    void *lv_conn;
};

struct apg_route_table {
    int64_t rt_default_timeout_ms;
    struct apg_smap rt_brokers;
    struct apg_smap rt_clusters;
    struct apg_smap rt_topics;
    struct apg_smap rt_live;
};

static char dummy_member;

struct apg_route_table *apg_route_new(int64_t default_timeout_ms)
{
    struct apg_route_table *rt = apg_calloc(1, sizeof(*rt));
    if (rt)
        rt->rt_default_timeout_ms = default_timeout_ms > 0 ? default_timeout_ms : 120000;
    return rt;
}

static void broker_free(void *p)
{
    struct broker *b = p;
    for (size_t i = 0; i < b->b_n; i++)
        apg_free(b->b_addrs[i].ba_addr);
    apg_free(b->b_addrs);
    apg_free(b->b_name);
    apg_free(b->b_cluster);
    apg_free(b->b_zone);
    apg_free(b);
}

static void live_free(void *p)
{
    struct live *lv = p;
    apg_free(lv->lv_cluster);
    apg_free(lv->lv_addr);
    apg_free(lv->lv_broker_name);
    apg_free(lv->lv_ha_addr);
    apg_free(lv);
}

/* A topic: broker name -> struct queue_data (owned). */
static void topic_free(void *qds)
{
    apg_smap_clear_free(qds, apg_free);
    apg_free(qds);
}

/* A cluster: set of broker names (values are &dummy_member). */
static void cluster_free(void *set)
{
    apg_smap_clear(set);
    apg_free(set);
}

void apg_route_free(struct apg_route_table *rt)
{
    if (!rt)
        return;
    apg_smap_clear_free(&rt->rt_brokers, broker_free);
    apg_smap_clear_free(&rt->rt_clusters, cluster_free);
    apg_smap_clear_free(&rt->rt_topics, topic_free);
    apg_smap_clear_free(&rt->rt_live, live_free);
    apg_free(rt);
}

static void live_key(char *out, size_t n, const char *cluster, const char *addr)
{
    snprintf(out, n, "%s\1%s", cluster, addr);
}

static bool dv_equal(const struct apg_data_version *a, const struct apg_data_version *b)
{
    return a->dv_counter == b->dv_counter && a->dv_timestamp == b->dv_timestamp &&
           a->dv_state_version == b->dv_state_version;
}

/* Sets addrs[id] = addr, keeping the array sorted. */
static apg_err_t broker_set_addr(struct broker *b, int64_t id, const char *addr, bool *was_new)
{
    *was_new = true;
    size_t i = 0;
    while (i < b->b_n && b->b_addrs[i].ba_id < id)
        i++;
    if (i < b->b_n && b->b_addrs[i].ba_id == id) {
        if (strcmp(b->b_addrs[i].ba_addr, addr) == 0) {
            *was_new = false;
            return APG_OK;
        }
        char *a = apg_strdup(addr);
        if (!a)
            return APG_ENOMEM;
        apg_free(b->b_addrs[i].ba_addr);
        b->b_addrs[i].ba_addr = a;
        return APG_OK;
    }
    struct broker_addr *na = apg_realloc(b->b_addrs, (b->b_n + 1) * sizeof(*na));
    if (!na)
        return APG_ENOMEM;
    b->b_addrs = na;
    char *a = apg_strdup(addr);
    if (!a)
        return APG_ENOMEM;
    memmove(&na[i + 1], &na[i], (b->b_n - i) * sizeof(*na));
    na[i].ba_id = id;
    na[i].ba_addr = a;
    b->b_n++;
    return APG_OK;
}

static void broker_del_at(struct broker *b, size_t i)
{
    apg_free(b->b_addrs[i].ba_addr);
    memmove(&b->b_addrs[i], &b->b_addrs[i + 1], (b->b_n - i - 1) * sizeof(*b->b_addrs));
    b->b_n--;
}

static const char *broker_addr_of(const struct broker *b, int64_t id)
{
    for (size_t i = 0; i < b->b_n; i++)
        if (b->b_addrs[i].ba_id == id)
            return b->b_addrs[i].ba_addr;
    return NULL;
}

static apg_err_t cluster_add(struct apg_route_table *rt, const char *cluster, const char *name)
{
    struct apg_smap *set = apg_smap_get(&rt->rt_clusters, cluster);
    if (!set) {
        set = apg_calloc(1, sizeof(*set));
        if (!set || apg_smap_put(&rt->rt_clusters, cluster, set, NULL)) {
            apg_free(set);
            return APG_ENOMEM;
        }
    }
    return apg_smap_put(set, name, &dummy_member, NULL);
}

static void cluster_del(struct apg_route_table *rt, const char *cluster, const char *name)
{
    struct apg_smap *set = apg_smap_get(&rt->rt_clusters, cluster);
    if (!set)
        return;
    apg_smap_del(set, name);
    if (set->sm_len == 0) {
        apg_smap_del(&rt->rt_clusters, cluster);
        cluster_free(set);
    }
}

static apg_err_t topic_put_queue_data(struct apg_route_table *rt, const char *broker_name,
                                      const struct apg_route_topic_conf *tc, bool wipe_write)
{
    struct apg_smap *qds = apg_smap_get(&rt->rt_topics, tc->tc_name);
    if (!qds) {
        qds = apg_calloc(1, sizeof(*qds));
        if (!qds || apg_smap_put(&rt->rt_topics, tc->tc_name, qds, NULL)) {
            apg_free(qds);
            return APG_ENOMEM;
        }
        apg_log_info("namesrv", "new topic registered: %s by broker %s", tc->tc_name, broker_name);
    }
    struct queue_data *q = apg_smap_get(qds, broker_name);
    if (!q) {
        q = apg_calloc(1, sizeof(*q));
        if (!q || apg_smap_put(qds, broker_name, q, NULL)) {
            apg_free(q);
            return APG_ENOMEM;
        }
    }
    q->q_read = tc->tc_read_queues;
    q->q_write = tc->tc_write_queues;
    q->q_perm = wipe_write ? (tc->tc_perm & ~APG_PERM_WRITE) : tc->tc_perm;
    q->q_sys_flag = tc->tc_sys_flag;
    return APG_OK;
}

/* Drops the queue data of broker_name from every topic. */
static void topics_drop_broker(struct apg_route_table *rt, const char *broker_name)
{
    size_t it, n = 0, cap = 0;
    char **empty = NULL;
    for (struct apg_smap_ent *e = apg_smap_first(&rt->rt_topics, &it); e;
         e = apg_smap_next(&rt->rt_topics, e, &it)) {
        struct apg_smap *qds = e->se_val;
        apg_free(apg_smap_del(qds, broker_name));
        if (qds->sm_len == 0) {
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                char **ne = apg_realloc(empty, cap * sizeof(*ne));
                if (!ne)
                    break;
                empty = ne;
            }
            empty[n++] = e->se_key;
        }
    }
    for (size_t i = 0; i < n; i++) {
        char *key = apg_strdup(empty[i]);
        if (!key)
            break;
        struct apg_smap *qds = apg_smap_del(&rt->rt_topics, key);
        apg_log_info("namesrv", "topic %s removed: broker %s, its last broker, is gone", key,
                     broker_name);
        if (qds)
            topic_free(qds);
        apg_free(key);
    }
    apg_free(empty);
}

/* Removes address addr (and id, when id >= 0, by id) from broker_name. */
static void remove_broker_addr(struct apg_route_table *rt, const char *cluster,
                               const char *broker_name, const char *addr, int64_t id)
{
    char key[512];
    live_key(key, sizeof(key), cluster, addr);
    struct live *lv = apg_smap_del(&rt->rt_live, key);
    if (lv)
        live_free(lv);
    struct broker *b = apg_smap_get(&rt->rt_brokers, broker_name);
    if (!b)
        return;
    for (size_t i = 0; i < b->b_n;) {
        if ((id >= 0 && b->b_addrs[i].ba_id == id) ||
            (id < 0 && strcmp(b->b_addrs[i].ba_addr, addr) == 0))
            broker_del_at(b, i);
        else
            i++;
    }
    if (b->b_n == 0) {
        char *name = apg_strdup(broker_name);
        char *bcluster = apg_strdup(b->b_cluster);
        apg_smap_del(&rt->rt_brokers, broker_name);
        broker_free(b);
        if (name && bcluster) {
            cluster_del(rt, bcluster, name);
            topics_drop_broker(rt, name);
        }
        apg_free(name);
        apg_free(bcluster);
    }
}

apg_err_t apg_route_register(struct apg_route_table *rt, const struct apg_route_reg *reg,
                             int64_t now_ms, struct apg_route_reg_result *res)
{
    memset(res, 0, sizeof(*res));
    if (!reg->rr_cluster || !reg->rr_broker_name || !reg->rr_broker_addr || !reg->rr_cluster[0] ||
        !reg->rr_broker_name[0] || !reg->rr_broker_addr[0])
        return APG_EINVAL;
    if (strlen(reg->rr_cluster) + strlen(reg->rr_broker_addr) > 400)
        return APG_EINVAL;
    if (cluster_add(rt, reg->rr_cluster, reg->rr_broker_name))
        return APG_ENOMEM;

    bool first_name = false;
    struct broker *b = apg_smap_get(&rt->rt_brokers, reg->rr_broker_name);
    if (!b) {
        b = apg_calloc(1, sizeof(*b));
        if (!b)
            return APG_ENOMEM;
        b->b_name = apg_strdup(reg->rr_broker_name);
        b->b_cluster = apg_strdup(reg->rr_cluster);
        if (!b->b_name || !b->b_cluster ||
            apg_smap_put(&rt->rt_brokers, reg->rr_broker_name, b, NULL)) {
            broker_free(b);
            return APG_ENOMEM;
        }
        first_name = true;
    }
    b->b_acting = reg->rr_enable_acting_master;
    if (reg->rr_zone && (!b->b_zone || strcmp(b->b_zone, reg->rr_zone) != 0)) {
        apg_free(b->b_zone);
        b->b_zone = apg_strdup(reg->rr_zone);
    }
    /* The same address under another id: a slave became master (or the
     * reverse); drop the old id first. */
    for (size_t i = 0; i < b->b_n;) {
        if (b->b_addrs[i].ba_id != reg->rr_broker_id &&
            strcmp(b->b_addrs[i].ba_addr, reg->rr_broker_addr) == 0)
            broker_del_at(b, i);
        else
            i++;
    }
    bool addr_new = false;
    if (broker_set_addr(b, reg->rr_broker_id, reg->rr_broker_addr, &addr_new))
        return APG_ENOMEM;

    char key[512];
    live_key(key, sizeof(key), reg->rr_cluster, reg->rr_broker_addr);
    struct live *lv = apg_smap_get(&rt->rt_live, key);
    bool first = first_name || addr_new || !lv;
    bool dv_changed = !lv || !reg->rr_has_dv || !dv_equal(&lv->lv_dv, &reg->rr_dv);

    bool is_master = reg->rr_broker_id == 0;
    bool prime_slave = !is_master && reg->rr_enable_acting_master && b->b_n > 0 &&
                       b->b_addrs[0].ba_id == reg->rr_broker_id;
    if ((is_master || prime_slave) && (first || dv_changed)) {
        for (size_t i = 0; i < reg->rr_n_topics; i++)
            if (topic_put_queue_data(rt, reg->rr_broker_name, &reg->rr_topics[i], prime_slave))
                return APG_ENOMEM;
    }

    if (!lv) {
        lv = apg_calloc(1, sizeof(*lv));
        if (!lv)
            return APG_ENOMEM;
        lv->lv_cluster = apg_strdup(reg->rr_cluster);
        lv->lv_addr = apg_strdup(reg->rr_broker_addr);
        if (!lv->lv_cluster || !lv->lv_addr || apg_smap_put(&rt->rt_live, key, lv, NULL)) {
            live_free(lv);
            return APG_ENOMEM;
        }
        apg_log_info("namesrv", "new broker registered: %s id %lld at %s in cluster %s (HA %s)",
                     reg->rr_broker_name, (long long)reg->rr_broker_id, reg->rr_broker_addr,
                     reg->rr_cluster, reg->rr_ha_addr ? reg->rr_ha_addr : "-");
    }
    if (!lv->lv_broker_name || strcmp(lv->lv_broker_name, reg->rr_broker_name) != 0) {
        apg_free(lv->lv_broker_name);
        lv->lv_broker_name = apg_strdup(reg->rr_broker_name);
    }
    apg_free(lv->lv_ha_addr);
    lv->lv_ha_addr = reg->rr_ha_addr ? apg_strdup(reg->rr_ha_addr) : NULL;
    lv->lv_last_ms = now_ms;
    lv->lv_timeout_ms = reg->rr_timeout_ms > 0 ? reg->rr_timeout_ms : 0;
    if (reg->rr_has_dv)
        lv->lv_dv = reg->rr_dv;
    lv->lv_conn = reg->rr_conn;
    res->rs_first = first;

    if (!is_master) {
        const char *master = broker_addr_of(b, 0);
        if (master) {
            snprintf(res->rs_master_addr, sizeof(res->rs_master_addr), "%s", master);
            char mkey[512];
            live_key(mkey, sizeof(mkey), reg->rr_cluster, master);
            struct live *ml = apg_smap_get(&rt->rt_live, mkey);
            if (ml && ml->lv_ha_addr)
                snprintf(res->rs_ha_addr, sizeof(res->rs_ha_addr), "%s", ml->lv_ha_addr);
        }
    }
    return APG_OK;
}

apg_err_t apg_route_unregister(struct apg_route_table *rt, const char *cluster,
                               const char *broker_name, const char *broker_addr, int64_t broker_id)
{
    if (!cluster || !broker_name || !broker_addr)
        return APG_EINVAL;
    struct broker *b = apg_smap_get(&rt->rt_brokers, broker_name);
    if (!b)
        return APG_ENOTFOUND;
    apg_log_info("namesrv", "broker unregistered: %s id %lld at %s in cluster %s", broker_name,
                 (long long)broker_id, broker_addr, cluster);
    remove_broker_addr(rt, cluster, broker_name, broker_addr, broker_id);
    return APG_OK;
}

/* Collects live entries matching a predicate, then removes them. */
static int remove_live_where(struct apg_route_table *rt,
                             bool (*pred)(const struct live *lv, void *arg), void *arg,
                             const char *why)
{
    size_t it, n = 0, cap = 0;
    struct live **hits = NULL;
    for (struct apg_smap_ent *e = apg_smap_first(&rt->rt_live, &it); e;
         e = apg_smap_next(&rt->rt_live, e, &it)) {
        if (!pred(e->se_val, arg))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            struct live **nh = apg_realloc(hits, cap * sizeof(*nh));
            if (!nh)
                break;
            hits = nh;
        }
        hits[n++] = e->se_val;
    }
    for (size_t i = 0; i < n; i++) {
        struct live *lv = hits[i];
        /* Copy the names: removal frees lv. */
        char cluster[256], addr[256], name[256];
        snprintf(cluster, sizeof(cluster), "%s", lv->lv_cluster);
        snprintf(addr, sizeof(addr), "%s", lv->lv_addr);
        snprintf(name, sizeof(name), "%s", lv->lv_broker_name ? lv->lv_broker_name : "");
        apg_log_warn("namesrv", "broker %s at %s (cluster %s) removed: %s", name, addr, cluster,
                     why);
        remove_broker_addr(rt, cluster, name, addr, -1);
    }
    apg_free(hits);
    return (int)n;
}

struct expire_arg {
    int64_t now;
    int64_t dflt;
};

static bool is_expired(const struct live *lv, void *arg)
{
    const struct expire_arg *ea = arg;
    int64_t t = lv->lv_timeout_ms > 0 ? lv->lv_timeout_ms : ea->dflt;
    return ea->now - lv->lv_last_ms > t;
}

int apg_route_expire(struct apg_route_table *rt, int64_t now_ms)
{
    struct expire_arg ea = {now_ms, rt->rt_default_timeout_ms};
    return remove_live_where(rt, is_expired, &ea,
                             "no registration or heartbeat within its timeout");
}

static bool is_on_conn(const struct live *lv, void *arg)
{
    return lv->lv_conn == arg;
}

int apg_route_remove_conn(struct apg_route_table *rt, void *conn)
{
    if (!conn)
        return 0;
    return remove_live_where(rt, is_on_conn, conn, "its connection closed");
}

bool apg_route_heartbeat(struct apg_route_table *rt, const char *cluster, const char *addr,
                         int64_t now_ms)
{
    char key[512];
    live_key(key, sizeof(key), cluster, addr);
    struct live *lv = apg_smap_get(&rt->rt_live, key);
    if (!lv)
        return false;
    lv->lv_last_ms = now_ms;
    return true;
}

void apg_route_query_data_version(struct apg_route_table *rt, const char *cluster, const char *addr,
                                  const struct apg_data_version *dv, int64_t now_ms, bool *changed,
                                  bool *has_stored, struct apg_data_version *stored)
{
    char key[512];
    live_key(key, sizeof(key), cluster, addr);
    struct live *lv = apg_smap_get(&rt->rt_live, key);
    *has_stored = lv != NULL;
    *changed = !lv || !dv_equal(&lv->lv_dv, dv);
    if (lv) {
        *stored = lv->lv_dv;
        lv->lv_last_ms = now_ms;
    }
}

static int operate_write_perm(struct apg_route_table *rt, const char *broker_name, bool wipe)
{
    int n = 0;
    size_t it;
    for (struct apg_smap_ent *e = apg_smap_first(&rt->rt_topics, &it); e;
         e = apg_smap_next(&rt->rt_topics, e, &it)) {
        struct queue_data *q = apg_smap_get(e->se_val, broker_name);
        if (!q)
            continue;
        q->q_perm = wipe ? (q->q_perm & ~APG_PERM_WRITE) : (APG_PERM_READ | APG_PERM_WRITE);
        n++;
    }
    return n;
}

int apg_route_wipe_write_perm(struct apg_route_table *rt, const char *broker_name)
{
    return operate_write_perm(rt, broker_name, true);
}

int apg_route_add_write_perm(struct apg_route_table *rt, const char *broker_name)
{
    return operate_write_perm(rt, broker_name, false);
}

/* ---- JSON ---- */

/* BrokerData of b, through the route codec. */
static json_t *broker_json(const struct broker *b)
{
    struct apg_route_addr stack[8];
    struct apg_route_addr *a = b->b_n <= 8 ? stack : apg_malloc(b->b_n * sizeof(*a));
    if (a == NULL)
        return NULL;
    for (size_t i = 0; i < b->b_n; i++)
        a[i] = (struct apg_route_addr){b->b_addrs[i].ba_id, b->b_addrs[i].ba_addr};
    struct apg_route_bd bd = {.bd_cluster = b->b_cluster,
                              .bd_name = b->b_name,
                              .bd_zone = b->b_zone,
                              .bd_acting = b->b_acting,
                              .bd_addrs = a,
                              .bd_naddrs = b->b_n};
    json_t *j = apg_route_bd_to_json(&bd);
    if (a != stack)
        apg_free(a);
    return j;
}

json_t *apg_route_topic_json(const struct apg_route_table *rt, const char *topic)
{
    struct apg_smap *qds = apg_smap_get(&rt->rt_topics, topic);
    if (!qds || qds->sm_len == 0)
        return NULL;
    /* The route borrows names and addresses from the tables; one block holds
     * its arrays (queue datas, broker datas, every broker's addresses). */
    size_t nq = qds->sm_len, na = 0, it;
    for (struct apg_smap_ent *e = apg_smap_first(qds, &it); e; e = apg_smap_next(qds, e, &it)) {
        const struct broker *b = apg_smap_get(&rt->rt_brokers, e->se_key);
        na += b ? b->b_n : 0;
    }
    void *block = apg_malloc(nq * (sizeof(struct apg_route_qd) + sizeof(struct apg_route_bd)) +
                             (na ? na : 1) * sizeof(struct apg_route_addr));
    if (block == NULL)
        return NULL;
    struct apg_route_qd *q = block;
    struct apg_route_bd *bd = (struct apg_route_bd *)(q + nq);
    struct apg_route_addr *a = (struct apg_route_addr *)(bd + nq);
    struct apg_route_data rd = {.rd_qds = q, .rd_bds = bd};
    for (struct apg_smap_ent *e = apg_smap_first(qds, &it); e; e = apg_smap_next(qds, e, &it)) {
        const struct queue_data *qd = e->se_val;
        q[rd.rd_nqds++] = (struct apg_route_qd){.qd_broker = e->se_key,
                                                .qd_read = qd->q_read,
                                                .qd_write = qd->q_write,
                                                .qd_perm = qd->q_perm,
                                                .qd_sysflag = qd->q_sys_flag};
        const struct broker *b = apg_smap_get(&rt->rt_brokers, e->se_key);
        if (b == NULL)
            continue;
        bd[rd.rd_nbds++] = (struct apg_route_bd){.bd_cluster = b->b_cluster,
                                                 .bd_name = b->b_name,
                                                 .bd_zone = b->b_zone,
                                                 .bd_acting = b->b_acting,
                                                 .bd_addrs = a,
                                                 .bd_naddrs = b->b_n};
        for (size_t i = 0; i < b->b_n; i++)
            *a++ = (struct apg_route_addr){b->b_addrs[i].ba_id, b->b_addrs[i].ba_addr};
    }
    json_t *j = rd.rd_nbds ? apg_route_data_to_json(&rd) : NULL;
    apg_free(block);
    return j;
}

json_t *apg_route_cluster_info_json(const struct apg_route_table *rt)
{
    json_t *bt = json_object(), *ct = json_object();
    size_t it, it2;
    struct apg_smap_ent *e;
    for (e = apg_smap_first(&rt->rt_brokers, &it); e; e = apg_smap_next(&rt->rt_brokers, e, &it))
        json_object_set_new(bt, e->se_key, broker_json(e->se_val));
    for (e = apg_smap_first(&rt->rt_clusters, &it); e;
         e = apg_smap_next(&rt->rt_clusters, e, &it)) {
        json_t *names = json_array();
        struct apg_smap *set = e->se_val;
        for (struct apg_smap_ent *n = apg_smap_first(set, &it2); n; n = apg_smap_next(set, n, &it2))
            json_array_append_new(names, json_string(n->se_key));
        json_object_set_new(ct, e->se_key, names);
    }
    json_t *j = json_object();
    json_object_set_new(j, "brokerAddrTable", bt);
    json_object_set_new(j, "clusterAddrTable", ct);
    return j;
}

json_t *apg_route_topic_list_json(const struct apg_route_table *rt)
{
    json_t *arr = json_array();
    size_t it;
    for (struct apg_smap_ent *e = apg_smap_first(&rt->rt_topics, &it); e;
         e = apg_smap_next(&rt->rt_topics, e, &it))
        json_array_append_new(arr, json_string(e->se_key));
    json_t *j = json_object();
    json_object_set_new(j, "topicList", arr);
    return j;
}

json_t *apg_route_topics_by_cluster_json(const struct apg_route_table *rt, const char *cluster)
{
    json_t *arr = json_array();
    struct apg_smap *set = apg_smap_get(&rt->rt_clusters, cluster);
    size_t it, it2;
    if (set) {
        for (struct apg_smap_ent *e = apg_smap_first(&rt->rt_topics, &it); e;
             e = apg_smap_next(&rt->rt_topics, e, &it)) {
            struct apg_smap *qds = e->se_val;
            for (struct apg_smap_ent *q = apg_smap_first(qds, &it2); q;
                 q = apg_smap_next(qds, q, &it2)) {
                if (apg_smap_get(set, q->se_key)) {
                    json_array_append_new(arr, json_string(e->se_key));
                    break;
                }
            }
        }
    }
    json_t *j = json_object();
    json_object_set_new(j, "topicList", arr);
    return j;
}

int apg_route_delete_topic(struct apg_route_table *rt, const char *topic, const char *cluster)
{
    struct apg_smap *qds = apg_smap_get(&rt->rt_topics, topic);
    if (!qds)
        return 0;
    int n = 0;
    if (cluster && cluster[0]) {
        struct apg_smap *set = apg_smap_get(&rt->rt_clusters, cluster);
        size_t it;
        for (struct apg_smap_ent *e = set ? apg_smap_first(set, &it) : NULL; e;
             e = apg_smap_next(set, e, &it)) {
            void *q = apg_smap_del(qds, e->se_key);
            if (q) {
                apg_free(q);
                n++;
            }
        }
    } else {
        n = (int)qds->sm_len;
        apg_smap_clear_free(qds, apg_free);
    }
    if (qds->sm_len == 0)
        topic_free(apg_smap_del(&rt->rt_topics, topic));
    return n;
}

void apg_route_set_default_timeout(struct apg_route_table *rt, int64_t timeout_ms)
{
    if (timeout_ms > 0)
        rt->rt_default_timeout_ms = timeout_ms;
}

json_t *apg_route_system_topic_list_json(const struct apg_route_table *rt)
{
    json_t *arr = json_array();
    size_t it, it2;
    for (struct apg_smap_ent *e = apg_smap_first(&rt->rt_clusters, &it); e;
         e = apg_smap_next(&rt->rt_clusters, e, &it)) {
        json_array_append_new(arr, json_string(e->se_key));
        struct apg_smap *set = e->se_val;
        for (struct apg_smap_ent *n = apg_smap_first(set, &it2); n; n = apg_smap_next(set, n, &it2))
            json_array_append_new(arr, json_string(n->se_key));
    }
    json_t *j = json_object();
    json_object_set_new(j, "topicList", arr);
    for (struct apg_smap_ent *e = apg_smap_first(&rt->rt_brokers, &it); e;
         e = apg_smap_next(&rt->rt_brokers, e, &it)) {
        const struct broker *b = e->se_val;
        if (b->b_n) {
            json_object_set_new(j, "brokerAddr", json_string(b->b_addrs[0].ba_addr));
            break;
        }
    }
    return j;
}

json_t *apg_route_topics_by_flag_json(const struct apg_route_table *rt, int32_t all, int32_t none)
{
    json_t *arr = json_array();
    size_t it, it2;
    for (struct apg_smap_ent *e = apg_smap_first(&rt->rt_topics, &it); e;
         e = apg_smap_next(&rt->rt_topics, e, &it)) {
        struct apg_smap_ent *q = apg_smap_first(e->se_val, &it2);
        if (!q)
            continue;
        int32_t f = ((const struct queue_data *)q->se_val)->q_sys_flag;
        if ((f & all) == all && !(f & none))
            json_array_append_new(arr, json_string(e->se_key));
    }
    json_t *j = json_object();
    json_object_set_new(j, "topicList", arr);
    return j;
}

json_t *apg_route_member_group_json(const struct apg_route_table *rt, const char *cluster,
                                    const char *broker_name)
{
    json_t *g = json_object();
    json_object_set_new(g, "cluster", json_string(cluster ? cluster : ""));
    json_object_set_new(g, "brokerName", json_string(broker_name ? broker_name : ""));
    json_t *addrs = json_object();
    const struct broker *b = broker_name ? apg_smap_get(&rt->rt_brokers, broker_name) : NULL;
    if (b) {
        for (size_t i = 0; i < b->b_n; i++) {
            char id[24];
            snprintf(id, sizeof(id), "%lld", (long long)b->b_addrs[i].ba_id);
            json_object_set_new(addrs, id, json_string(b->b_addrs[i].ba_addr));
        }
    }
    json_object_set_new(g, "brokerAddrs", addrs);
    json_t *j = json_object();
    json_object_set_new(j, "brokerMemberGroup", g);
    return j;
}

json_t *apg_data_version_json(const struct apg_data_version *dv)
{
    json_t *j = json_object();
    json_object_set_new(j, "counter", json_integer(dv->dv_counter));
    json_object_set_new(j, "stateVersion", json_integer(dv->dv_state_version));
    json_object_set_new(j, "timestamp", json_integer(dv->dv_timestamp));
    return j;
}

static int64_t json_i64(json_t *v)
{
    if (json_is_integer(v))
        return json_integer_value(v);
    if (json_is_real(v))
        return (int64_t)json_real_value(v);
    if (json_is_string(v))
        return strtoll(json_string_value(v), NULL, 10);
    return 0;
}

apg_err_t apg_data_version_parse(json_t *j, struct apg_data_version *dv)
{
    memset(dv, 0, sizeof(*dv));
    if (!json_is_object(j))
        return APG_EINVAL;
    dv->dv_counter = json_i64(json_object_get(j, "counter"));
    dv->dv_timestamp = json_i64(json_object_get(j, "timestamp"));
    dv->dv_state_version = json_i64(json_object_get(j, "stateVersion"));
    return APG_OK;
}

size_t apg_route_broker_count(const struct apg_route_table *rt)
{
    return rt->rt_live.sm_len;
}

size_t apg_route_topic_count(const struct apg_route_table *rt)
{
    return rt->rt_topics.sm_len;
}

/* Topic routes: parsing TopicRouteData (docs/wire.md §4.2) and choosing a
 * queue.
 *
 * Pure code. The writable queue list is built the way Java's
 * TopicPublishInfo is: queue datas sorted by broker name, brokers with WRITE
 * permission and a live master only, queue ids 0..writeQueueNums-1. Keeping
 * Java's order matters: ordered messages selected by key hash must land on
 * the same queue whichever client sent them. Readable queues (for consumers)
 * use READ permission and readQueueNums. */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <jansson.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_int.h"
#include "common/hash.h"
#include "common/json.h"
#include "common/mem.h"

#define PERM_READ 4
#define PERM_WRITE 2

void apg_croute_free(struct apg_croute *rt)
{
    for (size_t i = 0; i < rt->rt_nbrokers; i++) {
        apg_free(rt->rt_brokers[i].ba_name);
        apg_free(rt->rt_brokers[i].ba_master);
    }
    apg_free(rt->rt_brokers);
    apg_free(rt->rt_wq);
    apg_free(rt->rt_rq);
    memset(rt, 0, sizeof(*rt));
}

const char *apg_croute_master(const struct apg_croute *rt, const char *broker)
{
    for (size_t i = 0; i < rt->rt_nbrokers; i++)
        if (strcmp(rt->rt_brokers[i].ba_name, broker) == 0)
            return rt->rt_brokers[i].ba_master;
    return NULL;
}

static int qd_cmp(const void *a, const void *b)
{
    const char *na = json_string_value(json_object_get(*(json_t *const *)a, "brokerName"));
    const char *nb = json_string_value(json_object_get(*(json_t *const *)b, "brokerName"));
    return strcmp(na ? na : "", nb ? nb : "");
}

static apg_err_t add_queues(apg_mq_t **arr, size_t *n, const char *topic, const char *broker,
                            int count)
{
    if (count <= 0)
        return APG_OK;
    if (count > 65536)
        return APG_EPROTO;
    apg_mq_t *na = apg_realloc(*arr, (*n + (size_t)count) * sizeof(apg_mq_t));
    if (na == NULL)
        return APG_ENOMEM;
    *arr = na;
    for (int i = 0; i < count; i++) {
        apg_mq_t *q = &na[*n + i];
        memset(q, 0, sizeof(*q));
        snprintf(q->mq_topic, sizeof(q->mq_topic), "%s", topic);
        snprintf(q->mq_broker, sizeof(q->mq_broker), "%s", broker);
        q->mq_queue_id = i;
    }
    *n += (size_t)count;
    return APG_OK;
}

apg_err_t apg_croute_parse(const char *topic, const uint8_t *body, size_t len,
                           struct apg_croute *rt, char *err, size_t errlen)
{
    memset(rt, 0, sizeof(*rt));
    char jerr[160];
    json_t *root = apg_json_parse((const char *)body, len, jerr, sizeof(jerr));
    if (root == NULL)
        return apg_errf(APG_EPROTO, err, errlen, "route of '%s' is not JSON: %s", topic, jerr);
    apg_err_t e = APG_OK;
    json_t *bds = json_object_get(root, "brokerDatas");
    json_t *qds = json_object_get(root, "queueDatas");
    if (!json_is_array(bds) || !json_is_array(qds)) {
        e = apg_errf(APG_EPROTO, err, errlen, "route of '%s' lacks brokerDatas/queueDatas", topic);
        goto out;
    }
    size_t nb = json_array_size(bds);
    rt->rt_brokers = apg_calloc(nb ? nb : 1, sizeof(*rt->rt_brokers));
    if (rt->rt_brokers == NULL) {
        e = APG_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < nb; i++) {
        json_t *bd = json_array_get(bds, i);
        const char *name = json_string_value(json_object_get(bd, "brokerName"));
        json_t *addrs = json_object_get(bd, "brokerAddrs");
        if (name == NULL || !json_is_object(addrs))
            continue;
        const char *master = json_string_value(json_object_get(addrs, "0"));
        struct apg_broker_addr *ba = &rt->rt_brokers[rt->rt_nbrokers];
        ba->ba_name = apg_strdup(name);
        ba->ba_master = master ? apg_strdup(master) : NULL;
        if (ba->ba_name == NULL || (master && ba->ba_master == NULL)) {
            apg_free(ba->ba_name);
            e = APG_ENOMEM;
            goto out;
        }
        rt->rt_nbrokers++;
    }
    size_t nq = json_array_size(qds);
    json_t **sorted = apg_malloc((nq ? nq : 1) * sizeof(json_t *));
    if (sorted == NULL) {
        e = APG_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < nq; i++)
        sorted[i] = json_array_get(qds, i);
    qsort(sorted, nq, sizeof(json_t *), qd_cmp);
    for (size_t i = 0; i < nq && e == APG_OK; i++) {
        json_t *qd = sorted[i];
        const char *name = json_string_value(json_object_get(qd, "brokerName"));
        if (name == NULL)
            continue;
        int perm = (int)json_integer_value(json_object_get(qd, "perm"));
        int w = (int)json_integer_value(json_object_get(qd, "writeQueueNums"));
        int r = (int)json_integer_value(json_object_get(qd, "readQueueNums"));
        if ((perm & PERM_WRITE) && apg_croute_master(rt, name) != NULL)
            e = add_queues(&rt->rt_wq, &rt->rt_nwq, topic, name, w);
        if (e == APG_OK && (perm & PERM_READ) && apg_croute_master(rt, name) != NULL)
            e = add_queues(&rt->rt_rq, &rt->rt_nrq, topic, name, r);
    }
    apg_free(sorted);
    if (e != APG_OK)
        apg_errf(e, err, errlen, "route of '%s': bad queue data", topic);
out:
    json_decref(root);
    if (e != APG_OK)
        apg_croute_free(rt);
    return e;
}

int apg_croute_pick_rr(const struct apg_croute *rt, uint32_t *counter, const char *avoid_broker)
{
    if (rt->rt_nwq == 0)
        return -1;
    if (avoid_broker != NULL && avoid_broker[0] != '\0') {
        for (size_t k = 0; k < rt->rt_nwq; k++) {
            size_t i = (*counter)++ % rt->rt_nwq;
            if (strcmp(rt->rt_wq[i].mq_broker, avoid_broker) != 0)
                return (int)i;
        }
    }
    return (int)((*counter)++ % rt->rt_nwq);
}

int apg_croute_pick_hash(const struct apg_croute *rt, const char *key)
{
    if (rt->rt_nwq == 0)
        return -1;
    int32_t h = apg_java_hash(key, strlen(key));
    int32_t v = h % (int32_t)rt->rt_nwq;
    return v < 0 ? -v : v;
}

void apg_client_local_ip(uint8_t ip[4], char *text, size_t textlen)
{
    uint8_t found[4] = {127, 0, 0, 1};
    struct ifaddrs *ifs = NULL;
    if (getifaddrs(&ifs) == 0) {
        for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
            if (i->ifa_addr == NULL || i->ifa_addr->sa_family != AF_INET ||
                (i->ifa_flags & IFF_LOOPBACK) || !(i->ifa_flags & IFF_UP))
                continue;
            memcpy(found, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, 4);
            break;
        }
        freeifaddrs(ifs);
    }
    if (ip)
        memcpy(ip, found, 4);
    if (text)
        snprintf(text, textlen, "%u.%u.%u.%u", found[0], found[1], found[2], found[3]);
}

void apg_croute_cap(struct apg_croute *rt, int max)
{
    size_t o = 0;
    for (size_t i = 0; i < rt->rt_nwq; i++)
        if (rt->rt_wq[i].mq_queue_id < max)
            rt->rt_wq[o++] = rt->rt_wq[i];
    rt->rt_nwq = o;
    o = 0;
    for (size_t i = 0; i < rt->rt_nrq; i++)
        if (rt->rt_rq[i].mq_queue_id < max)
            rt->rt_rq[o++] = rt->rt_rq[i];
    rt->rt_nrq = o;
}

static int mq_cmp(const void *a, const void *b)
{
    const apg_mq_t *x = a, *y = b;
    int c = strcmp(x->mq_topic, y->mq_topic);
    if (c == 0)
        c = strcmp(x->mq_broker, y->mq_broker);
    return c != 0 ? c : (x->mq_queue_id > y->mq_queue_id) - (x->mq_queue_id < y->mq_queue_id);
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

size_t apg_alloc_average(apg_mq_t *mqs, size_t n_mqs, char **cids, size_t n_cids, const char *me,
                         size_t *out)
{
    if (n_mqs == 0 || n_cids == 0)
        return 0;
    qsort(mqs, n_mqs, sizeof(*mqs), mq_cmp);
    qsort(cids, n_cids, sizeof(*cids), str_cmp);
    size_t index = n_cids;
    for (size_t i = 0; i < n_cids; i++)
        if (strcmp(cids[i], me) == 0)
            index = i;
    if (index == n_cids)
        return 0;
    size_t mod = n_mqs % n_cids;
    size_t avg = n_mqs <= n_cids            ? 1
                 : (mod > 0 && index < mod) ? n_mqs / n_cids + 1
                                            : n_mqs / n_cids;
    size_t start = (mod > 0 && index < mod) ? index * avg : index * avg + mod;
    if (start >= n_mqs)
        return 0;
    size_t range = avg < n_mqs - start ? avg : n_mqs - start;
    for (size_t i = 0; i < range; i++)
        out[i] = (start + i) % n_mqs;
    return range;
}

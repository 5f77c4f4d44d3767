/* Topic routes: turning TopicRouteData (docs/wire.md §4.2; decoded by
 * protocol/route_json.h) into queue lists, and choosing a queue.
 *
 * Pure code. The writable queue list is built the way Java's
 * TopicPublishInfo is: queue datas sorted by broker name, brokers with WRITE
 * permission and a live master only, queue ids 0..writeQueueNums-1. Keeping
 * Java's order matters: ordered messages selected by key hash must land on
 * the same queue whichever client sent them. Readable queues (for consumers)
 * use READ permission and readQueueNums, on a broker name with a master or,
 * when the master is gone, a slave (consumers read from it as Java's do). */
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
#include "protocol/route_json.h"

#define PERM_READ 4
#define PERM_WRITE 2

void apg_croute_free(struct apg_croute *rt)
{
    for (size_t i = 0; i < rt->rt_nbrokers; i++) {
        apg_free(rt->rt_brokers[i].ba_name);
        apg_free(rt->rt_brokers[i].ba_master);
        apg_free(rt->rt_brokers[i].ba_read);
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

const char *apg_croute_reader(const struct apg_croute *rt, const char *broker)
{
    for (size_t i = 0; i < rt->rt_nbrokers; i++)
        if (strcmp(rt->rt_brokers[i].ba_name, broker) == 0)
            return rt->rt_brokers[i].ba_read;
    return NULL;
}

static int qd_cmp(const void *a, const void *b)
{
    const struct apg_route_qd *qa = *(const struct apg_route_qd *const *)a;
    const struct apg_route_qd *qb = *(const struct apg_route_qd *const *)b;
    return strcmp(qa->qd_broker, qb->qd_broker);
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
    struct apg_route_data rd;
    char why[200];
    apg_err_t e = apg_route_data_decode(body, len, &rd, why, sizeof(why));
    if (e != APG_OK)
        return apg_errf(e, err, errlen, "route of '%s': %s", topic,
                        e == APG_ENOMEM ? "out of memory" : why);
    const struct apg_route_qd **sorted = NULL;
    rt->rt_brokers = apg_calloc(rd.rd_nbds ? rd.rd_nbds : 1, sizeof(*rt->rt_brokers));
    if (rt->rt_brokers == NULL) {
        e = APG_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < rd.rd_nbds; i++) {
        const struct apg_route_bd *bd = &rd.rd_bds[i];
        const char *master = NULL, *slave = NULL;
        int64_t slave_id = INT64_MAX;
        for (size_t k = 0; k < bd->bd_naddrs; k++) {
            if (bd->bd_addrs[k].ra_id == 0)
                master = bd->bd_addrs[k].ra_addr;
            else if (bd->bd_addrs[k].ra_id < slave_id) {
                slave = bd->bd_addrs[k].ra_addr;
                slave_id = bd->bd_addrs[k].ra_id;
            }
        }
        const char *read = master ? master : slave;
        struct apg_broker_addr *ba = &rt->rt_brokers[rt->rt_nbrokers];
        ba->ba_name = apg_strdup(bd->bd_name);
        ba->ba_master = master ? apg_strdup(master) : NULL;
        ba->ba_read = read ? apg_strdup(read) : NULL;
        if (ba->ba_name == NULL || (master && ba->ba_master == NULL) ||
            (read && ba->ba_read == NULL)) {
            apg_free(ba->ba_name);
            apg_free(ba->ba_master);
            apg_free(ba->ba_read);
            e = APG_ENOMEM;
            goto out;
        }
        rt->rt_nbrokers++;
    }
    sorted = apg_malloc((rd.rd_nqds ? rd.rd_nqds : 1) * sizeof(*sorted));
    if (sorted == NULL) {
        e = APG_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < rd.rd_nqds; i++)
        sorted[i] = &rd.rd_qds[i];
    qsort(sorted, rd.rd_nqds, sizeof(*sorted), qd_cmp);
    for (size_t i = 0; i < rd.rd_nqds && e == APG_OK; i++) {
        const struct apg_route_qd *qd = sorted[i];
        bool live = apg_croute_master(rt, qd->qd_broker) != NULL;
        bool readable = apg_croute_reader(rt, qd->qd_broker) != NULL;
        if ((qd->qd_perm & PERM_WRITE) && live)
            e = add_queues(&rt->rt_wq, &rt->rt_nwq, topic, qd->qd_broker, qd->qd_write);
        if (e == APG_OK && (qd->qd_perm & PERM_READ) && readable)
            e = add_queues(&rt->rt_rq, &rt->rt_nrq, topic, qd->qd_broker, qd->qd_read);
    }
    if (e != APG_OK)
        apg_errf(e, err, errlen, "route of '%s': bad queue data", topic);
out:
    apg_free(sorted);
    apg_route_data_free(&rd);
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

/* Java's SelectMessageQueueByHash: |String.hashCode(key) % n|. */
static int hash_index(const char *key, size_t n)
{
    if (n == 0 || key == NULL)
        return -1;
    int32_t v = apg_java_hash(key, strlen(key)) % (int32_t)n;
    return v < 0 ? -v : v;
}

int apg_croute_pick_hash(const struct apg_croute *rt, const char *key)
{
    return hash_index(key, rt->rt_nwq);
}

int apg_queue_select_by_hash(const apg_mq_t *mqs, size_t n, const apg_message_t *msg, void *key)
{
    (void)mqs;
    (void)msg;
    return hash_index(key, n);
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

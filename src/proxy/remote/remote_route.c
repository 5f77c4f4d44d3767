/* Topic routes of the proxy: GET_ROUTEINFO_BY_TOPIC asked of the NameServer
 * (namesrvAddr, tried in turn when one does not answer), cached per topic
 * for APG_REMOTE_ROUTE_TTL_MS, and the table of broker name -> master
 * address every route adds to (how a receipt handle, which names its
 * broker, finds its way back).
 *
 * Design. A route is immutable once decoded and counted: a caller keeps
 * its reference while it picks a queue and addresses the broker, so a
 * refresh that replaces the cached one never frees it under anyone. Two
 * misses for one topic at the same time both ask the NameServer; the later
 * answer wins the cache.
 *
 * Threads: any thread asks; a NameServer answer runs on the remoting
 * client's loop thread. rm_lock guards the cache and the broker table
 * (leaf lock: no call is made under it). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/mem.h"
#include "protocol/rcode.h"
#include "protocol/remoting.h"
#include "proxy/remote/remote_int.h"

void apg_remote_route_release(struct apg_remote_route *rt)
{
    if (!rt || atomic_fetch_sub(&rt->rr_refs, 1) != 1)
        return;
    apg_route_data_free(&rt->rr_rd);
    apg_free(rt->rr_topic);
    apg_free(rt);
}

const char *apg_remote_route_master(const struct apg_remote_route *rt, const char *broker)
{
    for (size_t i = 0; i < rt->rr_rd.rd_nbds; i++) {
        const struct apg_route_bd *bd = &rt->rr_rd.rd_bds[i];
        if (strcmp(bd->bd_name, broker) != 0)
            continue;
        for (size_t k = 0; k < bd->bd_naddrs; k++)
            if (bd->bd_addrs[k].ra_id == 0)
                return bd->bd_addrs[k].ra_addr;
    }
    return NULL;
}

bool apg_remote_broker_addr(struct apg_remote *rm, const char *broker, char *out, size_t n)
{
    bool found = false;
    pthread_mutex_lock(&rm->rm_lock);
    for (size_t i = 0; i < rm->rm_nbrokers && !found; i++)
        if (strcmp(rm->rm_brokers[i].rb_name, broker) == 0) {
            snprintf(out, n, "%s", rm->rm_brokers[i].rb_addr);
            found = true;
        }
    pthread_mutex_unlock(&rm->rm_lock);
    return found;
}

/* Records the masters of rt (rm_lock held); true when a broker is new. */
static bool brokers_note(struct apg_remote *rm, const struct apg_remote_route *rt)
{
    bool added = false;
    for (size_t i = 0; i < rt->rr_rd.rd_nbds; i++) {
        const char *name = rt->rr_rd.rd_bds[i].bd_name;
        const char *addr = apg_remote_route_master(rt, name);
        if (!addr || strlen(name) >= sizeof rm->rm_brokers[0].rb_name ||
            strlen(addr) >= sizeof rm->rm_brokers[0].rb_addr)
            continue;
        size_t k = 0;
        while (k < rm->rm_nbrokers && strcmp(rm->rm_brokers[k].rb_name, name) != 0)
            k++;
        if (k == rm->rm_nbrokers) {
            if (k == rm->rm_capbrokers) {
                size_t cap = k ? 2 * k : 8;
                void *p = apg_realloc(rm->rm_brokers, cap * sizeof(*rm->rm_brokers));
                if (!p)
                    continue;
                rm->rm_brokers = p;
                rm->rm_capbrokers = cap;
            }
            rm->rm_nbrokers++;
            added = true;
            snprintf(rm->rm_brokers[k].rb_name, sizeof rm->rm_brokers[k].rb_name, "%s", name);
        }
        added |= strcmp(rm->rm_brokers[k].rb_addr, addr) != 0;
        snprintf(rm->rm_brokers[k].rb_addr, sizeof rm->rm_brokers[k].rb_addr, "%s", addr);
    }
    return added;
}

/* Puts rt in the cache (taking one reference), replacing the topic's old
 * route. */
static void cache_put(struct apg_remote *rm, struct apg_remote_route *rt)
{
    struct apg_remote_route *old = NULL;
    pthread_mutex_lock(&rm->rm_lock);
    for (struct apg_remote_route **pp = &rm->rm_routes; *pp; pp = &(*pp)->rr_next)
        if (strcmp((*pp)->rr_topic, rt->rr_topic) == 0) {
            old = *pp;
            *pp = old->rr_next;
            break;
        }
    rt->rr_next = rm->rm_routes;
    rm->rm_routes = rt;
    bool added = brokers_note(rm, rt);
    pthread_mutex_unlock(&rm->rm_lock);
    apg_remote_route_release(old);
    if (added)
        apg_remote_heartbeat_kick(rm);
}

void apg_remote_routes_free(struct apg_remote *rm)
{
    struct apg_remote_route *rt = rm->rm_routes;
    while (rt) {
        struct apg_remote_route *next = rt->rr_next;
        apg_remote_route_release(rt);
        rt = next;
    }
    rm->rm_routes = NULL;
    apg_free(rm->rm_brokers);
    rm->rm_brokers = NULL;
}

struct fetch {
    struct apg_remote *f_rm;
    char *f_topic;
    apg_remote_route_fn f_fn;
    void *f_arg;
    size_t f_tries;
};

static void fetch_send(struct fetch *f);

static void fetch_end(struct fetch *f, struct apg_remote_route *rt, apg_err_t e, const char *why)
{
    f->f_fn(f->f_rm, rt, e, why, f->f_arg);
    apg_free(f->f_topic);
    apg_free(f);
}

static void fetch_done(void *ud, const struct apg_rcmd *resp, apg_err_t err)
{
    struct fetch *f = ud;
    struct apg_remote *rm = f->f_rm;
    char why[400];
    if (err) {
        if (++f->f_tries < rm->rm_nns && err != APG_ESHUTDOWN) {
            atomic_fetch_add(&rm->rm_ns_cur, 1);
            fetch_send(f);
            return;
        }
        snprintf(why, sizeof why, "no NameServer of namesrvAddr answers the route of %s (%s)",
                 f->f_topic, apg_strerror(err));
        fetch_end(f, NULL, err, why);
        return;
    }
    if (resp->code == APG_RESP_TOPIC_NOT_EXIST) {
        snprintf(why, sizeof why, "topic %s does not exist (the NameServer has no route for it)",
                 f->f_topic);
        fetch_end(f, NULL, APG_ENOTFOUND, why);
        return;
    }
    if (resp->code != APG_RESP_SUCCESS) {
        snprintf(why, sizeof why, "the NameServer refused the route of %s: %s", f->f_topic,
                 apg_remote_remark(resp, "no remark"));
        fetch_end(f, NULL, APG_EBROKER, why);
        return;
    }
    struct apg_remote_route *rt = apg_calloc(1, sizeof(*rt));
    char err2[256];
    if (!rt || !(rt->rr_topic = apg_strdup(f->f_topic))) {
        apg_free(rt);
        fetch_end(f, NULL, APG_ENOMEM, "out of memory");
        return;
    }
    if (apg_route_data_decode(resp->body, resp->body_len, &rt->rr_rd, err2, sizeof err2)) {
        snprintf(why, sizeof why, "the NameServer's route of %s does not parse: %s", f->f_topic,
                 err2);
        apg_free(rt->rr_topic);
        apg_free(rt);
        fetch_end(f, NULL, APG_EPROTO, why);
        return;
    }
    rt->rr_at = apg_wall_ms();
    atomic_init(&rt->rr_refs, 2); /* the cache's and the caller's */
    cache_put(rm, rt);
    fetch_end(f, rt, APG_OK, NULL);
}

static void fetch_send(struct fetch *f)
{
    struct apg_remote *rm = f->f_rm;
    struct apg_rcmd req;
    apg_remote_request(&req, APG_REQ_GET_ROUTEINFO_BY_TOPIC);
    apg_rcmd_ext_add(&req, "topic", f->f_topic);
    const char *ns = rm->rm_ns[atomic_load(&rm->rm_ns_cur) % rm->rm_nns];
    apg_err_t e = apg_remote_call(rm, ns, &req, NULL, 0, APG_REMOTE_TIMEOUT_MS, fetch_done, f);
    if (e)
        fetch_done(f, NULL, e);
}

void apg_remote_route_get(struct apg_remote *rm, const char *topic, apg_remote_route_fn fn,
                          void *arg)
{
    struct apg_remote_route *hit = NULL;
    int64_t now = apg_wall_ms();
    pthread_mutex_lock(&rm->rm_lock);
    for (struct apg_remote_route *rt = rm->rm_routes; rt; rt = rt->rr_next)
        if (strcmp(rt->rr_topic, topic) == 0) {
            if (now - rt->rr_at < APG_REMOTE_ROUTE_TTL_MS) {
                atomic_fetch_add(&rt->rr_refs, 1);
                hit = rt;
            }
            break;
        }
    pthread_mutex_unlock(&rm->rm_lock);
    if (hit) {
        fn(rm, hit, APG_OK, NULL, arg);
        return;
    }
    struct fetch *f = apg_calloc(1, sizeof(*f));
    if (!f || !(f->f_topic = apg_strdup(topic))) {
        apg_free(f);
        fn(rm, NULL, APG_ENOMEM, "out of memory", arg);
        return;
    }
    f->f_rm = rm;
    f->f_fn = fn;
    f->f_arg = arg;
    fetch_send(f);
}

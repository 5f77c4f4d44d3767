/* Client and consumer-group manager: HEART_BEAT, UNREGISTER_CLIENT,
 * GET_CONSUMER_LIST_BY_GROUP and the NOTIFY_CONSUMER_IDS_CHANGED pushes.
 *
 * Each consumer or producer group keeps its members (client id, the
 * connection it last heartbeated on, last heartbeat time) and, for
 * consumers, the subscriptions from the heartbeat (topic -> expression),
 * which pulls without FLAG_SUBSCRIPTION filter by: the group's are those
 * of its last heartbeat, as in RocketMQ, and each member also keeps its own
 * (canonical JSON), so the admin API can tell whether the members agree. A member leaves when it
 * unregisters, when its connection closes, or when it stays silent longer
 * than channelNotActiveInterval; a consumer that leaves gives up its queue
 * locks (broker_lock.c). When a consumer group's membership or
 * subscriptions change, every member is told with a oneway
 * NOTIFY_CONSUMER_IDS_CHANGED so it rebalances at once.
 *
 * Threads: heartbeats arrive on any loop, so one mutex guards the table.
 * Each stored connection holds a reference (apg_conn_ref). Notifications to
 * members are posted to the member connection's own loop (apg_conn_post),
 * since only that thread may write to it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_rt.h"
#include "common/log.h"
#include "common/mem.h"

struct apg_cchan {
    char cc_id[APG_NAME_CAP];
    struct apg_conn *cc_conn; /* referenced */
    int64_t cc_last;
    int32_t cc_version; /* MQVersion ordinal and LanguageCode of its last heartbeat */
    uint8_t cc_lang;
    char *cc_subs; /* consumers: this member's own subscriptions (chan_subs_set), or NULL */
    struct apg_cchan *cc_next;
};

struct apg_csub {
    char cs_topic[APG_NAME_CAP];
    char cs_type[16]; /* expressionType: TAG or SQL92 */
    char *cs_expr;
    char *cs_json; /* the SubscriptionData object as heartbeated (compact JSON) */
    struct apg_csub *cs_next;
};

struct apg_cgroup {
    struct apg_cchan *cg_chans;
    struct apg_csub *cg_subs;
    char cg_type[32], cg_model[32], cg_from[48]; /* consumeType, messageModel, consumeFromWhere */
};

struct apg_clients {
    pthread_mutex_t cl_lock;
    struct apg_locks *cl_locks;   /* queue locks freed with their holder (borrowed) */
    struct apg_smap cl_consumers; /* group -> struct apg_cgroup* */
    struct apg_smap cl_producers;
};

struct apg_clients *apg_clients_new(struct apg_locks *locks)
{
    struct apg_clients *cl = apg_calloc(1, sizeof(*cl));
    if (!cl)
        return NULL;
    cl->cl_locks = locks;
    pthread_mutex_init(&cl->cl_lock, NULL);
    apg_smap_init(&cl->cl_consumers);
    apg_smap_init(&cl->cl_producers);
    return cl;
}

static void subs_free(struct apg_csub *s)
{
    while (s) {
        struct apg_csub *n = s->cs_next;
        apg_free(s->cs_expr);
        free(s->cs_json);
        apg_free(s);
        s = n;
    }
}

static void group_free(void *p)
{
    struct apg_cgroup *g = p;
    struct apg_cchan *c = g->cg_chans;
    while (c) {
        struct apg_cchan *n = c->cc_next;
        apg_conn_unref(c->cc_conn);
        free(c->cc_subs);
        apg_free(c);
        c = n;
    }
    subs_free(g->cg_subs);
    apg_free(g);
}

void apg_clients_free(struct apg_clients *cl)
{
    if (!cl)
        return;
    apg_smap_clear_free(&cl->cl_consumers, group_free);
    apg_smap_clear_free(&cl->cl_producers, group_free);
    pthread_mutex_destroy(&cl->cl_lock);
    apg_free(cl);
}

/* Caller holds cl_lock. Returns true when the member set changed. */
static bool member_touch(struct apg_smap *m, const char *group, const char *id, struct apg_conn *c,
                         const struct apg_rcmd *req, int64_t now, struct apg_cgroup **out)
{
    struct apg_cgroup *g = apg_smap_get(m, group);
    if (!g) {
        g = apg_calloc(1, sizeof(*g));
        if (!g || apg_smap_put(m, group, g, NULL)) {
            apg_free(g);
            return false;
        }
    }
    *out = g;
    for (struct apg_cchan *ch = g->cg_chans; ch; ch = ch->cc_next) {
        if (strcmp(ch->cc_id, id) == 0) {
            if (ch->cc_conn != c) {
                apg_conn_ref(c);
                apg_conn_unref(ch->cc_conn);
                ch->cc_conn = c;
            }
            ch->cc_last = now;
            ch->cc_lang = req->language;
            ch->cc_version = req->version;
            return false;
        }
    }
    struct apg_cchan *ch = apg_calloc(1, sizeof(*ch));
    if (!ch)
        return false;
    snprintf(ch->cc_id, sizeof(ch->cc_id), "%s", id);
    apg_conn_ref(c);
    ch->cc_conn = c;
    ch->cc_last = now;
    ch->cc_lang = req->language;
    ch->cc_version = req->version;
    ch->cc_next = g->cg_chans;
    g->cg_chans = ch;
    return true;
}

/* Replaces the group's subscriptions; true when they differ. */
static bool subs_replace(struct apg_cgroup *g, json_t *set)
{
    struct apg_csub *head = NULL, **tail = &head;
    size_t i;
    json_t *s;
    json_array_foreach(set, i, s)
    {
        const char *topic = apg_json_get_str(s, "topic", NULL);
        if (!topic)
            continue;
        struct apg_csub *n = apg_calloc(1, sizeof(*n));
        if (!n)
            break;
        snprintf(n->cs_topic, sizeof(n->cs_topic), "%s", topic);
        n->cs_expr = apg_strdup(apg_json_get_str(s, "subString", "*"));
        snprintf(n->cs_type, sizeof(n->cs_type), "%s",
                 apg_json_get_str(s, "expressionType", "TAG"));
        n->cs_json = json_dumps(s, JSON_COMPACT | JSON_SORT_KEYS);
        *tail = n;
        tail = &n->cs_next;
    }
    bool same = true;
    struct apg_csub *a = head, *b = g->cg_subs;
    for (; a && b; a = a->cs_next, b = b->cs_next)
        if (strcmp(a->cs_topic, b->cs_topic) || strcmp(a->cs_type, b->cs_type) ||
            strcmp(a->cs_expr ? a->cs_expr : "", b->cs_expr ? b->cs_expr : ""))
            same = false;
    if (a || b)
        same = false;
    if (same) {
        subs_free(head);
        return false;
    }
    subs_free(g->cg_subs);
    g->cg_subs = head;
    return true;
}

/* Keeps member id's own subscriptions (cl_lock held): the heartbeat's
 * subscriptionDataSet as {"<topic>": {"expressionType", "subString"}},
 * compact with sorted keys, so two members subscribe alike exactly when
 * the texts are equal. */
static void chan_subs_set(struct apg_cgroup *g, const char *id, const json_t *set)
{
    struct apg_cchan *ch = g->cg_chans;
    while (ch && strcmp(ch->cc_id, id) != 0)
        ch = ch->cc_next;
    if (!ch)
        return;
    json_t *o = json_object();
    size_t i;
    json_t *s;
    json_array_foreach(set, i, s)
    {
        const char *topic = apg_json_get_str(s, "topic", NULL);
        if (o && topic)
            json_object_set_new(o, topic,
                                json_pack("{s:s,s:s}", "expressionType",
                                          apg_json_get_str(s, "expressionType", "TAG"), "subString",
                                          apg_json_get_str(s, "subString", "*")));
    }
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(o);
    free(ch->cc_subs);
    ch->cc_subs = text;
}

/* Keeps the consumer kind a heartbeat's ConsumerData names (cl_lock held). */
static void group_note_kind(struct apg_cgroup *g, const json_t *cd)
{
    snprintf(g->cg_type, sizeof(g->cg_type), "%s",
             apg_json_get_str(cd, "consumeType", "CONSUME_PASSIVELY"));
    snprintf(g->cg_model, sizeof(g->cg_model), "%s",
             apg_json_get_str(cd, "messageModel", "CLUSTERING"));
    snprintf(g->cg_from, sizeof(g->cg_from), "%s",
             apg_json_get_str(cd, "consumeFromWhere", "CONSUME_FROM_LAST_OFFSET"));
}

static void notify_on_loop(struct apg_conn *c, void *arg)
{
    char *group = arg;
    if (!apg_conn_is_closed(c)) {
        struct apg_rcmd req;
        apg_rcmd_init_request(&req, APG_REQ_NOTIFY_CONSUMER_IDS_CHANGED, 0, APG_SER_JSON);
        apg_rcmd_ext_add(&req, "consumerGroup", group);
        apg_conn_oneway(c, &req, NULL, 0);
    }
    apg_free(group);
}

/* Caller holds cl_lock: posts a notification to every member of g. */
static void notify_members(struct apg_cgroup *g, const char *group)
{
    for (struct apg_cchan *ch = g->cg_chans; ch; ch = ch->cc_next) {
        char *copy = apg_strdup(group);
        if (copy && apg_conn_post(ch->cc_conn, notify_on_loop, copy) != APG_OK)
            apg_free(copy);
    }
}

static void heartbeat(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req)
{
    char err[256];
    if (!req->body || !req->body_len) {
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR,
                          "HEART_BEAT without a body: send HeartbeatData JSON");
        return;
    }
    json_t *hb = apg_json_parse((const char *)req->body, req->body_len, err, sizeof(err));
    if (!hb) {
        char remark[400];
        snprintf(remark, sizeof(remark), "HEART_BEAT body is not HeartbeatData JSON: %s", err);
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR, remark);
        return;
    }
    const char *id = apg_json_get_str(hb, "clientID", NULL);
    if (!id || !id[0]) {
        json_decref(hb);
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR, "HEART_BEAT body lacks clientID");
        return;
    }
    int64_t now = apg_wall_ms();
    struct apg_clients *cl = b->br_clients;
    json_t *cons = json_object_get(hb, "consumerDataSet");
    size_t ci;
    json_t *cd;
    json_array_foreach(cons, ci, cd)
    {
        const char *group = apg_json_get_str(cd, "groupName", NULL);
        if (!group || apg_name_check_group(group, NULL, 0))
            continue;
        struct apg_group_cfg gc;
        if (apg_groups_get_or_create(b->br_groups, group, b->br_auto_create_group, &gc) == APG_OK)
            apg_topics_ensure_retry(b->br_topics, group, gc.gc_retry_queues);
        pthread_mutex_lock(&cl->cl_lock);
        struct apg_cgroup *g = NULL;
        bool changed = member_touch(&cl->cl_consumers, group, id, c, req, now, &g);
        if (g) {
            group_note_kind(g, cd);
            chan_subs_set(g, id, json_object_get(cd, "subscriptionDataSet"));
        }
        if (g && subs_replace(g, json_object_get(cd, "subscriptionDataSet")))
            changed = true;
        if (changed && g) {
            apg_log_info("broker",
                         "consumer group %s: client %s joined or changed its "
                         "subscriptions; notifying members",
                         group, id);
            notify_members(g, group);
        }
        pthread_mutex_unlock(&cl->cl_lock);
    }
    json_t *prods = json_object_get(hb, "producerDataSet");
    size_t pi;
    json_t *pd;
    json_array_foreach(prods, pi, pd)
    {
        const char *group = apg_json_get_str(pd, "groupName", NULL);
        if (!group)
            continue;
        pthread_mutex_lock(&cl->cl_lock);
        struct apg_cgroup *g;
        member_touch(&cl->cl_producers, group, id, c, req, now, &g);
        pthread_mutex_unlock(&cl->cl_lock);
    }
    json_decref(hb);
    apg_broker_reply(c, req, APG_RESP_SUCCESS, NULL);
}

/* Caller holds cl_lock. Removes members matching (id) or (conn) or silent
 * since before `older`; returns how many left. A consumer (group not NULL)
 * that leaves gives up its queue locks in that group. */
static int remove_members(struct apg_clients *cl, const char *group, struct apg_cgroup *g,
                          const char *id, const struct apg_conn *conn, int64_t older)
{
    int n = 0;
    for (struct apg_cchan **pp = &g->cg_chans; *pp;) {
        struct apg_cchan *ch = *pp;
        bool hit = (id && strcmp(ch->cc_id, id) == 0) || (conn && ch->cc_conn == conn) ||
                   (older > 0 && ch->cc_last < older);
        if (hit) {
            if (group && cl->cl_locks)
                apg_locks_drop_client(cl->cl_locks, group, ch->cc_id);
            *pp = ch->cc_next;
            apg_conn_unref(ch->cc_conn);
            free(ch->cc_subs);
            apg_free(ch);
            n++;
        } else {
            pp = &ch->cc_next;
        }
    }
    return n;
}

/* Caller holds cl_lock. Applies remove_members to every group of m,
 * notifies consumer groups that lost members and drops empty groups. */
static void sweep(struct apg_clients *cl, struct apg_smap *m, bool consumers, const char *id,
                  const struct apg_conn *conn, int64_t older)
{
    bool again = true;
    while (again) {
        again = false;
        size_t pos;
        for (struct apg_smap_ent *e = apg_smap_first(m, &pos); e; e = apg_smap_next(m, e, &pos)) {
            struct apg_cgroup *g = e->se_val;
            int n = remove_members(cl, consumers ? e->se_key : NULL, g, id, conn, older);
            if (n && consumers && g->cg_chans) {
                apg_log_info("broker", "consumer group %s lost %d member(s); notifying the rest",
                             e->se_key, n);
                notify_members(g, e->se_key);
            }
            if (!g->cg_chans) {
                char key[APG_NAME_CAP];
                snprintf(key, sizeof(key), "%s", e->se_key);
                group_free(apg_smap_del(m, key));
                again = true;
                break;
            }
        }
    }
}

void apg_clients_conn_closed(struct apg_broker *b, struct apg_conn *c)
{
    struct apg_clients *cl = b->br_clients;
    pthread_mutex_lock(&cl->cl_lock);
    sweep(cl, &cl->cl_consumers, true, NULL, c, 0);
    sweep(cl, &cl->cl_producers, false, NULL, c, 0);
    pthread_mutex_unlock(&cl->cl_lock);
}

void apg_clients_expire(struct apg_broker *b, int64_t now_ms)
{
    struct apg_clients *cl = b->br_clients;
    int64_t older = now_ms - b->br_channel_expire_ms;
    pthread_mutex_lock(&cl->cl_lock);
    sweep(cl, &cl->cl_consumers, true, NULL, NULL, older);
    sweep(cl, &cl->cl_producers, false, NULL, NULL, older);
    pthread_mutex_unlock(&cl->cl_lock);
}

static void unregister(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req)
{
    const char *id = apg_rcmd_ext_get(req, "clientID");
    if (!id) {
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR, "UNREGISTER_CLIENT lacks clientID");
        return;
    }
    const char *pg = apg_rcmd_ext_get(req, "producerGroup");
    const char *cg = apg_rcmd_ext_get(req, "consumerGroup");
    struct apg_clients *cl = b->br_clients;
    pthread_mutex_lock(&cl->cl_lock);
    if (cg && cg[0]) {
        struct apg_cgroup *g = apg_smap_get(&cl->cl_consumers, cg);
        if (g && remove_members(cl, cg, g, id, NULL, 0)) {
            if (g->cg_chans)
                notify_members(g, cg);
            else
                group_free(apg_smap_del(&cl->cl_consumers, cg));
        }
    }
    if (pg && pg[0]) {
        struct apg_cgroup *g = apg_smap_get(&cl->cl_producers, pg);
        if (g && remove_members(cl, NULL, g, id, NULL, 0) && !g->cg_chans)
            group_free(apg_smap_del(&cl->cl_producers, pg));
    }
    pthread_mutex_unlock(&cl->cl_lock);
    apg_broker_reply(c, req, APG_RESP_SUCCESS, NULL);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void consumer_list(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req)
{
    const char *group = apg_rcmd_ext_get(req, "consumerGroup");
    if (!group) {
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR,
                          "GET_CONSUMER_LIST_BY_GROUP lacks consumerGroup");
        return;
    }
    struct apg_clients *cl = b->br_clients;
    struct apg_buf body = APG_BUF_INIT;
    int n = 0;
    pthread_mutex_lock(&cl->cl_lock);
    struct apg_cgroup *g = apg_smap_get(&cl->cl_consumers, group);
    const char *ids[1024];
    for (struct apg_cchan *ch = g ? g->cg_chans : NULL; ch && n < 1024; ch = ch->cc_next)
        ids[n++] = ch->cc_id;
    qsort(ids, (size_t)n, sizeof(ids[0]), cmp_str);
    apg_err_t e = apg_buf_append_str(&body, "{\"consumerIdList\":[");
    for (int i = 0; !e && i < n; i++) {
        if (i)
            e = apg_buf_append(&body, ",", 1);
        if (!e)
            e = apg_json_put_str(&body, ids[i]);
    }
    if (!e)
        e = apg_buf_append_str(&body, "]}");
    pthread_mutex_unlock(&cl->cl_lock);
    if (n == 0) {
        char remark[400];
        snprintf(remark, sizeof(remark),
                 "no consumer of group %s is connected to this broker (no heartbeat received)",
                 group);
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR, remark);
    } else if (e) {
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR, "out of memory");
    } else if (!apg_rcmd_is_oneway(req)) {
        apg_conn_reply(c, req, APG_RESP_SUCCESS, NULL, body.b_data, (uint32_t)body.b_len);
    }
    apg_buf_free(&body);
}

void apg_broker_proc_client(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req)
{
    switch (req->code) {
    case APG_REQ_HEART_BEAT:
        heartbeat(b, c, req);
        break;
    case APG_REQ_UNREGISTER_CLIENT:
        unregister(b, c, req);
        break;
    case APG_REQ_GET_CONSUMER_LIST_BY_GROUP:
        consumer_list(b, c, req);
        break;
    default:
        apg_broker_refuse(b, c, req, APG_RESP_REQUEST_CODE_NOT_SUPPORTED, "not a client request");
    }
}

bool apg_clients_subscription(struct apg_clients *cl, const char *group, const char *topic,
                              char *out, size_t outlen, char *type, size_t typelen)
{
    bool found = false;
    pthread_mutex_lock(&cl->cl_lock);
    struct apg_cgroup *g = apg_smap_get(&cl->cl_consumers, group);
    for (struct apg_csub *s = g ? g->cg_subs : NULL; s; s = s->cs_next)
        if (strcmp(s->cs_topic, topic) == 0) {
            snprintf(out, outlen, "%s", s->cs_expr ? s->cs_expr : "*");
            snprintf(type, typelen, "%s", s->cs_type[0] ? s->cs_type : "TAG");
            found = true;
            break;
        }
    pthread_mutex_unlock(&cl->cl_lock);
    return found;
}

bool apg_clients_group_online(struct apg_clients *cl, const char *group)
{
    pthread_mutex_lock(&cl->cl_lock);
    struct apg_cgroup *g = apg_smap_get(&cl->cl_consumers, group);
    bool on = g && g->cg_subs;
    pthread_mutex_unlock(&cl->cl_lock);
    return on;
}

apg_err_t apg_clients_topic_groups(struct apg_clients *cl, const char *topic, struct apg_buf *out)
{
    apg_err_t e = APG_OK;
    pthread_mutex_lock(&cl->cl_lock);
    size_t pos;
    for (struct apg_smap_ent *it = apg_smap_first(&cl->cl_consumers, &pos); !e && it;
         it = apg_smap_next(&cl->cl_consumers, it, &pos)) {
        const struct apg_cgroup *g = it->se_val;
        for (const struct apg_csub *s = g->cg_subs; s; s = s->cs_next)
            if (strcmp(s->cs_topic, topic) == 0) {
                e = apg_buf_append(out, it->se_key, strlen(it->se_key) + 1);
                break;
            }
    }
    pthread_mutex_unlock(&cl->cl_lock);
    return e;
}

static apg_err_t visit_group(const char *name, const struct apg_cgroup *g,
                             const struct apg_clients_visitor *v, void *ud)
{
    apg_err_t e = v->cv_name ? v->cv_name(ud, name) : APG_OK;
    if (!e && v->cv_group)
        e = v->cv_group(ud, g->cg_type, g->cg_model, g->cg_from);
    for (struct apg_cchan *ch = g->cg_chans; !e && v->cv_member && ch; ch = ch->cc_next) {
        struct apg_client_member m = {ch->cc_id,      ch->cc_conn, ch->cc_lang,
                                      ch->cc_version, ch->cc_last, ch->cc_subs};
        e = v->cv_member(ud, &m);
    }
    for (struct apg_csub *s = g->cg_subs; !e && v->cv_sub && s; s = s->cs_next)
        e = v->cv_sub(ud, s->cs_topic, s->cs_expr ? s->cs_expr : "*", s->cs_json);
    return e;
}

apg_err_t apg_clients_visit(struct apg_clients *cl, bool consumers, const char *group,
                            const struct apg_clients_visitor *v, void *ud)
{
    apg_err_t e = group ? APG_ENOTFOUND : APG_OK;
    const struct apg_smap *m = consumers ? &cl->cl_consumers : &cl->cl_producers;
    pthread_mutex_lock(&cl->cl_lock);
    if (group) {
        const struct apg_cgroup *g = apg_smap_get(m, group);
        if (g && g->cg_chans)
            e = visit_group(group, g, v, ud);
    } else {
        size_t pos;
        for (struct apg_smap_ent *it = apg_smap_first(m, &pos); !e && it;
             it = apg_smap_next(m, it, &pos)) {
            const struct apg_cgroup *g = it->se_val;
            if (g->cg_chans)
                e = visit_group(it->se_key, g, v, ud);
        }
    }
    pthread_mutex_unlock(&cl->cl_lock);
    return e;
}

static int64_t count_chans(const struct apg_smap *m)
{
    int64_t n = 0;
    size_t pos;
    for (struct apg_smap_ent *it = apg_smap_first(m, &pos); it; it = apg_smap_next(m, it, &pos))
        for (const struct apg_cchan *ch = ((const struct apg_cgroup *)it->se_val)->cg_chans; ch;
             ch = ch->cc_next)
            n++;
    return n;
}

void apg_clients_count(struct apg_clients *cl, int64_t *producers, int64_t *consumers)
{
    pthread_mutex_lock(&cl->cl_lock);
    *producers = count_chans(&cl->cl_producers);
    *consumers = count_chans(&cl->cl_consumers);
    pthread_mutex_unlock(&cl->cl_lock);
}

struct apg_conn *apg_clients_producer_conn(struct apg_clients *cl, const char *group)
{
    struct apg_conn *best = NULL;
    int64_t best_last = 0;
    pthread_mutex_lock(&cl->cl_lock);
    struct apg_cgroup *g = apg_smap_get(&cl->cl_producers, group);
    for (struct apg_cchan *ch = g ? g->cg_chans : NULL; ch; ch = ch->cc_next)
        if (!apg_conn_is_closed(ch->cc_conn) && (!best || ch->cc_last > best_last)) {
            best = ch->cc_conn;
            best_last = ch->cc_last;
        }
    if (best)
        apg_conn_ref(best);
    pthread_mutex_unlock(&cl->cl_lock);
    return best;
}

/* MessagingService.Telemetry: the long-lived bidirectional stream each 5.x
 * client keeps open per endpoint, and the table of those streams.
 *
 * Design. The client opens the stream and sends its Settings (client type,
 * the topics of a producer or the subscription of a consumer, its retry
 * policy and request timeout); the server answers each Settings command
 * with the settings it imposes, built by settings_answer:
 *   producers  exponential back-off (10 ms doubling up to 1 s) with the
 *              client's max attempts; max_body_size = maxMessageSize;
 *              validate_message_type as the client asked (routes accept
 *              every message type);
 *   consumers  the retry schedule of the group (retryMaxTimes + 1 attempts,
 *              the 4.x delay levels from 10 s as a customized back-off;
 *              FIFO groups an exponential one), the group's FIFO flag as
 *              the client declared it, receive batch size 32 and a 20 s
 *              long-polling timeout.
 * Producers wait for this answer before their start completes (the Node.js
 * SDK waits whenever it was given topics). Answers to server commands
 * (ThreadStackTrace, VerifyMessageResult) are accepted and logged at DEBUG;
 * a status-only command is ignored.
 *
 * The table maps x-mq-client-id to the client's latest stream (a reference
 * usable from any thread), its type and, for producers, its topics (for
 * consumers the group and subscriptions, which `apogee proxy` forwards in
 * its HEART_BEAT on the client's behalf), so the
 * broker can push commands later: the transaction check thread hands every
 * orphaned half it finds no remoting producer for to
 * apg_grpc_clients_recover, which posts a RecoverOrphanedTransactionCommand
 * to a producer stream that declared the half's topic (round robin). The
 * producer answers with EndTransaction (source SOURCE_SERVER_CHECK).
 *
 * Threads: the stream callbacks run on the gRPC loop thread; the table is
 * under ct_lock because the check thread reads it. Invariant: an entry's
 * reference is released when its stream closes or a newer stream of the
 * same client replaces it. */
#include "proxy/grpc/telemetry.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "broker/broker_rt.h"
#include "common/config.h"
#include "common/log.h"
#include "common/mem.h"
#include "proto/messaging.pb-c.h"

#define SUB "grpc"
#define RECEIVE_BATCH 32
#define LONG_POLL_S 20
#define MAX_TOPICS 64

struct client {
    char cl_id[128];
    struct apg_grpc_ref cl_ref;
    struct apg_grpc_call *cl_call; /* loop thread only: identifies the stream */
    int cl_type;                   /* Apache__Rocketmq__V2__ClientType */
    int cl_n_topics;
    char cl_topics[MAX_TOPICS][APG_NAME_CAP]; /* published, or subscribed */
    /* Consumers: the group and each subscribed topic's expression. */
    char cl_group[APG_NAME_CAP];
    char *cl_exprs[MAX_TOPICS];
    bool cl_sql[MAX_TOPICS];
};

struct apg_grpc_clients {
    pthread_mutex_t ct_lock;
    struct client **ct_v;
    size_t ct_n, ct_cap;
    size_t ct_rr; /* round robin over producers for recovery */
};

static void client_free(struct client *cl)
{
    for (int i = 0; i < cl->cl_n_topics; i++)
        apg_free(cl->cl_exprs[i]);
    apg_free(cl);
}

apg_err_t apg_grpc_clients_new(struct apg_grpc_clients **out)
{
    struct apg_grpc_clients *ct = apg_calloc(1, sizeof(*ct));
    if (!ct)
        return APG_ENOMEM;
    pthread_mutex_init(&ct->ct_lock, NULL);
    *out = ct;
    return APG_OK;
}

void apg_grpc_clients_free(struct apg_grpc_clients *ct)
{
    if (!ct)
        return;
    for (size_t i = 0; i < ct->ct_n; i++) {
        apg_grpc_ref_release(&ct->ct_v[i]->cl_ref);
        client_free(ct->ct_v[i]);
    }
    apg_free(ct->ct_v);
    pthread_mutex_destroy(&ct->ct_lock);
    apg_free(ct);
}

size_t apg_grpc_clients_count(struct apg_grpc_clients *ct)
{
    pthread_mutex_lock(&ct->ct_lock);
    size_t n = ct->ct_n;
    pthread_mutex_unlock(&ct->ct_lock);
    return n;
}

/* Under ct_lock. */
static void clients_remove_at(struct apg_grpc_clients *ct, size_t i)
{
    struct client *cl = ct->ct_v[i];
    ct->ct_v[i] = ct->ct_v[--ct->ct_n];
    apg_grpc_ref_release(&cl->cl_ref);
    client_free(cl);
}

bool apg_grpc_clients_view(struct apg_grpc_clients *ct, const char *id,
                           void (*fn)(const struct apg_grpc_client_view *v, void *arg), void *arg)
{
    const char *topics[MAX_TOPICS], *exprs[MAX_TOPICS];
    bool found = false;
    pthread_mutex_lock(&ct->ct_lock);
    for (size_t i = 0; i < ct->ct_n && !found; i++) {
        const struct client *cl = ct->ct_v[i];
        if (strcmp(cl->cl_id, id) != 0)
            continue;
        found = true;
        for (int k = 0; k < cl->cl_n_topics; k++) {
            topics[k] = cl->cl_topics[k];
            exprs[k] = cl->cl_exprs[k] ? cl->cl_exprs[k] : "*";
        }
        struct apg_grpc_client_view v = {
            .cv_type = cl->cl_type,
            .cv_group = cl->cl_group,
            .cv_n = (size_t)cl->cl_n_topics,
            .cv_topics = topics,
            .cv_exprs = exprs,
            .cv_sql = cl->cl_sql,
        };
        fn(&v, arg);
    }
    pthread_mutex_unlock(&ct->ct_lock);
    return found;
}

/* Records (or replaces) the stream of the client that sent settings s. */
static void clients_put(struct apg_grpc_clients *ct, struct apg_grpc_call *call, const char *id,
                        const Apache__Rocketmq__V2__Settings *s)
{
    struct client *cl = apg_calloc(1, sizeof(*cl));
    if (!cl)
        return;
    snprintf(cl->cl_id, sizeof cl->cl_id, "%s", id);
    cl->cl_call = call;
    cl->cl_type = (int)s->client_type;
    if (s->pub_sub_case == APACHE__ROCKETMQ__V2__SETTINGS__PUB_SUB_PUBLISHING)
        for (size_t i = 0; i < s->publishing->n_topics && cl->cl_n_topics < MAX_TOPICS; i++)
            if (s->publishing->topics[i] && s->publishing->topics[i]->name)
                snprintf(cl->cl_topics[cl->cl_n_topics++], APG_NAME_CAP, "%s",
                         s->publishing->topics[i]->name);
    if (s->pub_sub_case == APACHE__ROCKETMQ__V2__SETTINGS__PUB_SUB_SUBSCRIPTION) {
        const Apache__Rocketmq__V2__Subscription *sub = s->subscription;
        if (sub->group && sub->group->name)
            snprintf(cl->cl_group, sizeof cl->cl_group, "%s", sub->group->name);
        for (size_t i = 0; i < sub->n_subscriptions && cl->cl_n_topics < MAX_TOPICS; i++) {
            const Apache__Rocketmq__V2__SubscriptionEntry *e = sub->subscriptions[i];
            if (!e->topic || !e->topic->name || !e->topic->name[0])
                continue;
            int k = cl->cl_n_topics++;
            snprintf(cl->cl_topics[k], APG_NAME_CAP, "%s", e->topic->name);
            if (e->expression && e->expression->expression && e->expression->expression[0])
                cl->cl_exprs[k] = apg_strdup(e->expression->expression);
            cl->cl_sql[k] =
                e->expression && e->expression->type == APACHE__ROCKETMQ__V2__FILTER_TYPE__SQL;
        }
    }
    apg_grpc_call_ref(call, &cl->cl_ref);
    pthread_mutex_lock(&ct->ct_lock);
    for (size_t i = 0; i < ct->ct_n; i++)
        if (strcmp(ct->ct_v[i]->cl_id, id) == 0) {
            /* A renewed stream: the old one (still open, on this loop) no
             * longer names an entry. */
            apg_grpc_call_set_user(ct->ct_v[i]->cl_call, NULL);
            clients_remove_at(ct, i);
            break;
        }
    if (ct->ct_n == ct->ct_cap) {
        size_t cap = ct->ct_cap ? ct->ct_cap * 2 : 16;
        struct client **v = apg_realloc(ct->ct_v, cap * sizeof(*v));
        if (!v) {
            pthread_mutex_unlock(&ct->ct_lock);
            apg_grpc_ref_release(&cl->cl_ref);
            client_free(cl);
            return;
        }
        ct->ct_v = v;
        ct->ct_cap = cap;
    }
    ct->ct_v[ct->ct_n++] = cl;
    pthread_mutex_unlock(&ct->ct_lock);
    apg_grpc_call_set_user(call, cl);
}

/* ---- pushing commands from other threads ---- */

struct push {
    size_t pu_len;
    uint8_t pu_msg[];
};

static void push_on_loop(struct apg_grpc_call *call, void *arg)
{
    struct push *p = arg;
    if (call && !apg_grpc_call_done(call))
        apg_grpc_call_send(call, p->pu_msg, p->pu_len);
    apg_free(p);
}

static bool topic_declared(const struct client *cl, const char *topic)
{
    for (int i = 0; i < cl->cl_n_topics; i++)
        if (strcmp(cl->cl_topics[i], topic) == 0)
            return true;
    return false;
}

bool apg_grpc_clients_recover(struct apg_grpc_clients *ct, const char *topic, const uint8_t *cmd,
                              size_t len)
{
    struct push *p = apg_malloc(sizeof(*p) + len);
    if (!p)
        return false;
    p->pu_len = len;
    memcpy(p->pu_msg, cmd, len);
    bool sent = false;
    pthread_mutex_lock(&ct->ct_lock);
    /* Producers that declared the topic first; any producer otherwise (the
     * Node.js SDK may start without topics). */
    for (int pass = 0; pass < 2 && !sent; pass++) {
        for (size_t k = 0; k < ct->ct_n && !sent; k++) {
            struct client *cl = ct->ct_v[(ct->ct_rr + k) % ct->ct_n];
            if (cl->cl_type != APACHE__ROCKETMQ__V2__CLIENT_TYPE__PRODUCER ||
                (pass == 0 && !topic_declared(cl, topic)))
                continue;
            if (apg_grpc_ref_post(&cl->cl_ref, push_on_loop, p) == APG_OK) {
                sent = true;
                ct->ct_rr = (ct->ct_rr + k + 1) % ct->ct_n;
            }
        }
    }
    pthread_mutex_unlock(&ct->ct_lock);
    if (!sent)
        apg_free(p);
    return sent;
}

/* ---- the stream ---- */

static void dur_set(Apache__Rocketmq__V2__Duration *d, int64_t ms)
{
    apache__rocketmq__v2__duration__init(d);
    d->seconds = ms / 1000;
    d->nanos = (int32_t)(ms % 1000) * 1000000;
}

/* The 4.x delay levels a consumer's retries follow, from level 3 (10 s). */
static const int64_t retry_ms[] = {10000,   30000,   60000,   120000, 180000, 240000,
                                   300000,  360000,  420000,  480000, 540000, 600000,
                                   1200000, 1800000, 3600000, 7200000};
#define N_RETRY (sizeof retry_ms / sizeof retry_ms[0])

static void send_cmd(struct apg_grpc_call *call, const Apache__Rocketmq__V2__TelemetryCommand *c)
{
    size_t n = protobuf_c_message_get_packed_size(&c->base);
    uint8_t *buf = apg_malloc(n ? n : 1);
    if (!buf) {
        apg_grpc_call_fail(call, APG_GRPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    protobuf_c_message_pack(&c->base, buf);
    apg_grpc_call_send(call, buf, n);
    apg_free(buf);
}

/* Answers the client's settings in with the settings the server imposes. */
static void settings_answer(const struct apg_grpc_messaging *ms, struct apg_grpc_call *call,
                            const Apache__Rocketmq__V2__Settings *in)
{
    struct apg_broker *b = ms->gm_broker;
    Apache__Rocketmq__V2__Settings out = APACHE__ROCKETMQ__V2__SETTINGS__INIT;
    Apache__Rocketmq__V2__RetryPolicy rp = APACHE__ROCKETMQ__V2__RETRY_POLICY__INIT;
    Apache__Rocketmq__V2__ExponentialBackoff eb = APACHE__ROCKETMQ__V2__EXPONENTIAL_BACKOFF__INIT;
    Apache__Rocketmq__V2__CustomizedBackoff cb = APACHE__ROCKETMQ__V2__CUSTOMIZED_BACKOFF__INIT;
    Apache__Rocketmq__V2__Duration d_init, d_max, d_poll, d_next[N_RETRY], *p_next[N_RETRY];
    Apache__Rocketmq__V2__Publishing pub = APACHE__ROCKETMQ__V2__PUBLISHING__INIT;
    Apache__Rocketmq__V2__Subscription sub = APACHE__ROCKETMQ__V2__SUBSCRIPTION__INIT;
    Apache__Rocketmq__V2__Metric metric = APACHE__ROCKETMQ__V2__METRIC__INIT;
    out.client_type = in->client_type;
    out.access_point = in->access_point;
    out.request_timeout = in->request_timeout;
    out.user_agent = in->user_agent;
    out.metric = &metric;
    out.backoff_policy = &rp;
    dur_set(&d_init, 10);
    dur_set(&d_max, 1000);
    eb.initial = &d_init;
    eb.max = &d_max;
    eb.multiplier = 2;
    rp.strategy_case = APACHE__ROCKETMQ__V2__RETRY_POLICY__STRATEGY_EXPONENTIAL_BACKOFF;
    rp.exponential_backoff = &eb;
    rp.max_attempts = in->backoff_policy && in->backoff_policy->max_attempts > 0
                          ? in->backoff_policy->max_attempts
                          : 3;
    if (in->pub_sub_case == APACHE__ROCKETMQ__V2__SETTINGS__PUB_SUB_PUBLISHING) {
        pub.n_topics = in->publishing->n_topics;
        pub.topics = in->publishing->topics;
        pub.max_body_size = (int32_t)ms->gm_max_body;
        pub.validate_message_type = in->publishing->validate_message_type;
        out.pub_sub_case = APACHE__ROCKETMQ__V2__SETTINGS__PUB_SUB_PUBLISHING;
        out.publishing = &pub;
    } else if (in->pub_sub_case == APACHE__ROCKETMQ__V2__SETTINGS__PUB_SUB_SUBSCRIPTION) {
        const Apache__Rocketmq__V2__Subscription *s = in->subscription;
        struct apg_group_cfg gc;
        int max_times = 16;
        if (b && s->group && s->group->name && apg_groups_get(b->br_groups, s->group->name, &gc))
            max_times = gc.gc_retry_max_times;
        rp.max_attempts = max_times + 1;
        if (!s->fifo) {
            for (size_t i = 0; i < N_RETRY; i++) {
                dur_set(&d_next[i], retry_ms[i]);
                p_next[i] = &d_next[i];
            }
            cb.n_next = N_RETRY;
            cb.next = p_next;
            rp.strategy_case = APACHE__ROCKETMQ__V2__RETRY_POLICY__STRATEGY_CUSTOMIZED_BACKOFF;
            rp.customized_backoff = &cb;
        }
        sub.group = s->group;
        sub.n_subscriptions = s->n_subscriptions;
        sub.subscriptions = s->subscriptions;
        sub.fifo = s->fifo;
        sub.receive_batch_size = RECEIVE_BATCH;
        dur_set(&d_poll, LONG_POLL_S * 1000);
        sub.long_polling_timeout = &d_poll;
        out.pub_sub_case = APACHE__ROCKETMQ__V2__SETTINGS__PUB_SUB_SUBSCRIPTION;
        out.subscription = &sub;
    }
    Apache__Rocketmq__V2__Status st = APACHE__ROCKETMQ__V2__STATUS__INIT;
    st.code = APACHE__ROCKETMQ__V2__CODE__OK;
    st.message = "OK";
    Apache__Rocketmq__V2__TelemetryCommand c = APACHE__ROCKETMQ__V2__TELEMETRY_COMMAND__INIT;
    c.status = &st;
    c.command_case = APACHE__ROCKETMQ__V2__TELEMETRY_COMMAND__COMMAND_SETTINGS;
    c.settings = &out;
    send_cmd(call, &c);
}

void apg_grpc_telemetry_msg(struct apg_grpc_call *call, const uint8_t *req, size_t len, void *ud)
{
    struct apg_grpc_messaging *ms = ud;
    Apache__Rocketmq__V2__TelemetryCommand *c =
        apache__rocketmq__v2__telemetry_command__unpack(NULL, len, req);
    if (!c) {
        apg_grpc_call_fail(call, APG_GRPC_INVALID_ARGUMENT, "malformed TelemetryCommand");
        return;
    }
    const char *id = apg_grpc_call_header(call, "x-mq-client-id");
    switch (c->command_case) {
    case APACHE__ROCKETMQ__V2__TELEMETRY_COMMAND__COMMAND_SETTINGS:
        if (!id || !id[0]) {
            apg_grpc_call_fail(call, APG_GRPC_INVALID_ARGUMENT,
                               "Telemetry needs the x-mq-client-id header");
            break;
        }
        if (!apg_grpc_call_user(call))
            clients_put(ms->gm_clients, call, id, c->settings);
        settings_answer(ms, call, c->settings);
        break;
    case APACHE__ROCKETMQ__V2__TELEMETRY_COMMAND__COMMAND_THREAD_STACK_TRACE:
    case APACHE__ROCKETMQ__V2__TELEMETRY_COMMAND__COMMAND_VERIFY_MESSAGE_RESULT:
        apg_log_debug(SUB, "client %s answered a %s command", id ? id : "?",
                      c->command_case ==
                              APACHE__ROCKETMQ__V2__TELEMETRY_COMMAND__COMMAND_THREAD_STACK_TRACE
                          ? "thread stack"
                          : "verify message");
        break;
    default:
        break; /* status only, or a command only servers send */
    }
    apache__rocketmq__v2__telemetry_command__free_unpacked(c, NULL);
}

/* The client ended its side (shutdown): end ours too. */
void apg_grpc_telemetry_end(struct apg_grpc_call *call, void *ud)
{
    apg_grpc_call_finish(call, APG_GRPC_OK, NULL);
}

void apg_grpc_telemetry_close(struct apg_grpc_call *call, void *ud)
{
    struct apg_grpc_messaging *ms = ud;
    struct client *cl = apg_grpc_call_user(call);
    if (!cl)
        return;
    struct apg_grpc_clients *ct = ms->gm_clients;
    pthread_mutex_lock(&ct->ct_lock);
    for (size_t i = 0; i < ct->ct_n; i++)
        if (ct->ct_v[i] == cl) {
            clients_remove_at(ct, i);
            break;
        }
    pthread_mutex_unlock(&ct->ct_lock);
}

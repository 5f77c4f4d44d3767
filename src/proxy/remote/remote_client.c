/* The 5.x clients behind the proxy, made known to the brokers: a client's
 * Heartbeat is forwarded as a remoting HEART_BEAT on its behalf, and its
 * NotifyClientTermination as UNREGISTER_CLIENT, so a broker's client table
 * (GET_CONSUMER_CONNECTION_LIST, `apogee admin consumerConnection`, the
 * console) lists every 5.x client with its own client id.
 *
 * Design. The gRPC Heartbeat names only the client type and group; what a
 * broker's HeartbeatData needs besides comes from the client's Telemetry
 * Settings (telemetry.c's table, apg_grpc_clients_view): a consumer's
 * group and subscriptions become one ConsumerData (consumeType CONSUME_POP,
 * CLUSTERING), a producer is a member of APG_GRPC_TXN_GROUP (5.x producers
 * have no group; it is the PGROUP of their half messages). clientID is the
 * client's x-mq-client-id. The request goes oneway to the master of every
 * broker in the routes of the client's topics (from the route cache; each
 * broker once per heartbeat). The gRPC call is answered at once, as
 * before: a broker that misses one heartbeat gets the next (every 10 s
 * from RocketMQ's clients, and brokers keep a member 120 s). A client
 * whose Telemetry stream is not open yet is not forwarded.
 *
 * Threads: the methods on the gRPC loop thread; the route answers on the
 * calling thread (cached) or the remoting client's loop thread. A forward
 * (struct fwd) is shared by its routes' callbacks, counted, and its list
 * of brokers already sent to is under fw_lock. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "protocol/rcode.h"
#include "protocol/remoting.h"
#include "proto/messaging.pb-c.h"
#include "proxy/grpc/produce.h"
#include "proxy/grpc/telemetry.h"
#include "proxy/remote/remote_int.h"

#define MAX_SENT 64 /* brokers one forward reaches */

struct fwd {
    atomic_int fw_refs;
    struct apg_remote *fw_rm;
    int32_t fw_code; /* HEART_BEAT or UNREGISTER_CLIENT */
    char fw_id[128];
    char fw_group[256];
    bool fw_consumer;
    char *fw_body; /* HEART_BEAT: the HeartbeatData JSON */
    size_t fw_len;
    char **fw_topics;
    size_t fw_ntopics;
    pthread_mutex_t fw_lock;
    char fw_sent[MAX_SENT][128];
    size_t fw_nsent;
};

static void fwd_release(struct fwd *f)
{
    if (atomic_fetch_sub(&f->fw_refs, 1) != 1)
        return;
    for (size_t i = 0; i < f->fw_ntopics; i++)
        apg_free(f->fw_topics[i]);
    apg_free(f->fw_topics);
    free(f->fw_body); /* json_dumps */
    pthread_mutex_destroy(&f->fw_lock);
    apg_free(f);
}

/* True the first time addr is named in this forward. */
static bool fwd_first(struct fwd *f, const char *addr)
{
    bool first = true;
    pthread_mutex_lock(&f->fw_lock);
    for (size_t i = 0; i < f->fw_nsent && first; i++)
        first = strcmp(f->fw_sent[i], addr) != 0;
    if (first && f->fw_nsent < MAX_SENT)
        snprintf(f->fw_sent[f->fw_nsent++], sizeof f->fw_sent[0], "%s", addr);
    pthread_mutex_unlock(&f->fw_lock);
    return first;
}

static void fwd_send(struct fwd *f, const char *addr)
{
    struct apg_rcmd req;
    apg_remote_request(&req, f->fw_code);
    if (f->fw_code == APG_REQ_UNREGISTER_CLIENT) {
        apg_rcmd_ext_add(&req, "clientID", f->fw_id);
        apg_rcmd_ext_add(&req, f->fw_consumer ? "consumerGroup" : "producerGroup", f->fw_group);
    }
    apg_remote_call(f->fw_rm, addr, &req, (const uint8_t *)f->fw_body,
                    (uint32_t)(f->fw_body ? f->fw_len : 0), 0, NULL, NULL);
}

static void fwd_routed(struct apg_remote *rm, struct apg_remote_route *rt, apg_err_t code,
                       const char *why, void *arg)
{
    (void)rm;
    struct fwd *f = arg;
    if (code) {
        apg_log_debug("proxy", "client %s: no route to forward its %s: %s", f->fw_id,
                      f->fw_code == APG_REQ_HEART_BEAT ? "heartbeat" : "termination", why);
    } else {
        for (size_t i = 0; i < rt->rr_rd.rd_nqds; i++) {
            const char *addr = apg_remote_route_master(rt, rt->rr_rd.rd_qds[i].qd_broker);
            if (addr && fwd_first(f, addr))
                fwd_send(f, addr);
        }
    }
    apg_remote_route_release(rt);
    fwd_release(f);
}

/* The HeartbeatData of a client (view v) into f->fw_body. */
static void heartbeat_data(struct fwd *f, const struct apg_grpc_client_view *v)
{
    json_t *hb = json_object(), *pds = json_array(), *cds = json_array();
    if (!hb || !pds || !cds)
        goto out;
    json_object_set_new(hb, "clientID", json_string(f->fw_id));
    if (f->fw_consumer) {
        json_t *subs = json_array();
        int64_t now = apg_wall_ms();
        for (size_t i = 0; subs && i < v->cv_n; i++) {
            json_t *tags = json_array();
            const char *e = v->cv_exprs[i];
            if (tags && !v->cv_sql[i] && strcmp(e, "*") != 0) {
                /* "a || b": each tag, trimmed. */
                for (const char *p = e; *p;) {
                    const char *bar = strstr(p, "||");
                    const char *end = bar ? bar : p + strlen(p);
                    while (p < end && *p == ' ')
                        p++;
                    const char *q = end;
                    while (q > p && q[-1] == ' ')
                        q--;
                    if (q > p)
                        json_array_append_new(tags, json_stringn(p, (size_t)(q - p)));
                    p = bar ? bar + 2 : end;
                }
            }
            json_array_append_new(
                subs, json_pack("{s:b,s:s,s:s,s:o,s:[],s:I,s:s}", "classFilterMode", 0, "topic",
                                v->cv_topics[i], "subString", e, "tagsSet",
                                tags ? tags : json_array(), "codeSet", "subVersion",
                                (json_int_t)now, "expressionType", v->cv_sql[i] ? "SQL92" : "TAG"));
        }
        json_array_append_new(cds, json_pack("{s:s,s:s,s:s,s:s,s:o,s:b}", "groupName", f->fw_group,
                                             "consumeType", "CONSUME_POP", "messageModel",
                                             "CLUSTERING", "consumeFromWhere",
                                             "CONSUME_FROM_LAST_OFFSET", "subscriptionDataSet",
                                             subs ? subs : json_array(), "unitMode", 0));
    } else {
        json_array_append_new(pds, json_pack("{s:s}", "groupName", f->fw_group));
    }
    json_object_set(hb, "producerDataSet", pds);
    json_object_set(hb, "consumerDataSet", cds);
    f->fw_body = json_dumps(hb, JSON_COMPACT);
    f->fw_len = f->fw_body ? strlen(f->fw_body) : 0;
out:
    json_decref(pds);
    json_decref(cds);
    json_decref(hb);
}

/* Under the Telemetry table's lock: copies what the forward needs. */
static void fwd_fill(const struct apg_grpc_client_view *v, void *arg)
{
    struct fwd *f = arg;
    f->fw_consumer = v->cv_type != APACHE__ROCKETMQ__V2__CLIENT_TYPE__PRODUCER &&
                     v->cv_type != APACHE__ROCKETMQ__V2__CLIENT_TYPE__CLIENT_TYPE_UNSPECIFIED;
    snprintf(f->fw_group, sizeof f->fw_group, "%s",
             f->fw_consumer ? v->cv_group : APG_GRPC_TXN_GROUP);
    if (f->fw_consumer && !f->fw_group[0])
        return;
    if (v->cv_n && (f->fw_topics = apg_calloc(v->cv_n, sizeof(char *))))
        for (size_t i = 0; i < v->cv_n; i++)
            if ((f->fw_topics[f->fw_ntopics] = apg_strdup(v->cv_topics[i])))
                f->fw_ntopics++;
    if (f->fw_code == APG_REQ_HEART_BEAT)
        heartbeat_data(f, v);
}

/* Forwards code on behalf of the call's client to the brokers of its
 * topics (gRPC loop thread). */
static void forward(struct apg_grpc_call *call, const struct apg_grpc_messaging *ms, int32_t code)
{
    const char *id = apg_grpc_call_header(call, "x-mq-client-id");
    if (!id || !id[0])
        return;
    struct fwd *f = apg_calloc(1, sizeof(*f));
    if (!f)
        return;
    atomic_init(&f->fw_refs, 1);
    pthread_mutex_init(&f->fw_lock, NULL);
    f->fw_rm = ms->gm_remote;
    f->fw_code = code;
    snprintf(f->fw_id, sizeof f->fw_id, "%s", id);
    if (apg_grpc_clients_view(ms->gm_clients, id, fwd_fill, f) &&
        (code != APG_REQ_HEART_BEAT || f->fw_body))
        for (size_t i = 0; i < f->fw_ntopics; i++) {
            atomic_fetch_add(&f->fw_refs, 1);
            apg_remote_route_get(f->fw_rm, f->fw_topics[i], fwd_routed, f);
        }
    fwd_release(f);
}

void apg_remote_heartbeat(struct apg_grpc_call *call, const uint8_t *req, size_t len, void *ud)
{
    forward(call, ud, APG_REQ_HEART_BEAT);
    apg_grpc_heartbeat(call, req, len, ud);
}

void apg_remote_notify(struct apg_grpc_call *call, const uint8_t *req, size_t len, void *ud)
{
    forward(call, ud, APG_REQ_UNREGISTER_CLIENT);
    apg_grpc_notify_termination(call, req, len, ud);
}

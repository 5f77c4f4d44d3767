/* MessagingService (apache.rocketmq.v2) methods mapped onto the broker:
 * QueryRoute, Heartbeat, SendMessage of normal messages and
 * NotifyClientTermination.
 *
 * Design. Each method unpacks its request (protobuf-c, proto/messaging.proto),
 * calls the broker's own tables and write path -- the topic table for
 * routes, apg_broker_put_internal for messages, as the delay service does
 * -- and packs the answer; nothing goes through a socket. A route names
 * this process's gRPC port as the one endpoint of every queue. A 5.x
 * message becomes a stored record like a 4.x send: TAGS, KEYS (joined with
 * spaces), UNIQ_KEY (the client's message id) and the user properties in
 * the property string, the tag hash in the consume queue, born time and
 * host from the request. Errors a client can act on are RocketMQ codes in
 * the response's Status with gRPC status OK, as the protocol wants.
 *
 * Threads: the gRPC loop thread. apg_broker_put_internal returns at once
 * under ASYNC_FLUSH; under SYNC_FLUSH it waits for the group commit, which
 * stalls this loop (not the broker's) for that long. */
#include "proxy/grpc/messaging.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "broker/broker_rt.h"
#include "common/buf.h"
#include "common/hash.h"
#include "common/mem.h"
#include "protocol/props.h"
#include "proto/messaging.pb-c.h"
#include "proxy/grpc/telemetry.h"

#define SVC "/apache.rocketmq.v2.MessagingService/"
#define PERM_READ 4
#define PERM_WRITE 2

typedef Apache__Rocketmq__V2__Status pb_status;

static void status_set(pb_status *st, Apache__Rocketmq__V2__Code code, const char *msg)
{
    apache__rocketmq__v2__status__init(st);
    st->code = code;
    st->message = (char *)(msg ? msg : "");
}

/* Packs m (any protobuf-c message) as the call's answer. */
static void answer(struct apg_grpc_call *call, const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t stackbuf[1024];
    uint8_t *buf = n <= sizeof stackbuf ? stackbuf : apg_malloc(n);
    if (!buf) {
        apg_grpc_call_fail(call, APG_GRPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    protobuf_c_message_pack(m, buf);
    apg_grpc_call_reply(call, buf, n);
    if (buf != stackbuf)
        apg_free(buf);
}

static bool resource_name(const Apache__Rocketmq__V2__Resource *r, const char **name)
{
    if (!r || !r->name || !r->name[0])
        return false;
    *name = r->name;
    return true;
}

/* ---- QueryRoute ---- */

static void query_route(struct apg_grpc_call *call, const uint8_t *req, size_t len, void *ud)
{
    const struct apg_grpc_messaging *ms = ud;
    struct apg_broker *b = ms->gm_broker;
    Apache__Rocketmq__V2__QueryRouteRequest *rq =
        apache__rocketmq__v2__query_route_request__unpack(NULL, len, req);
    if (!rq) {
        apg_grpc_call_fail(call, APG_GRPC_INVALID_ARGUMENT, "malformed QueryRouteRequest");
        return;
    }
    Apache__Rocketmq__V2__QueryRouteResponse resp =
        APACHE__ROCKETMQ__V2__QUERY_ROUTE_RESPONSE__INIT;
    pb_status st;
    resp.status = &st;
    const char *topic;
    struct apg_topic_cfg tc;
    char why[300];
    if (!resource_name(rq->topic, &topic)) {
        status_set(&st, APACHE__ROCKETMQ__V2__CODE__ILLEGAL_TOPIC, "topic name is empty");
        answer(call, &resp.base);
    } else if (!apg_topics_get(b->br_topics, topic, &tc)) {
        snprintf(why, sizeof why, "topic %s does not exist on broker %s", topic, b->br_name);
        status_set(&st, APACHE__ROCKETMQ__V2__CODE__TOPIC_NOT_FOUND, why);
        answer(call, &resp.base);
    } else {
        int nq = tc.tc_write_queues > tc.tc_read_queues ? tc.tc_write_queues : tc.tc_read_queues;
        if (nq > 1024)
            nq = 1024;
        Apache__Rocketmq__V2__Address addr = APACHE__ROCKETMQ__V2__ADDRESS__INIT;
        addr.host = (char *)ms->gm_host;
        addr.port = ms->gm_port;
        Apache__Rocketmq__V2__Address *addrs[] = {&addr};
        Apache__Rocketmq__V2__Endpoints ep = APACHE__ROCKETMQ__V2__ENDPOINTS__INIT;
        ep.scheme = APACHE__ROCKETMQ__V2__ADDRESS_SCHEME__IPv4;
        ep.n_addresses = 1;
        ep.addresses = addrs;
        Apache__Rocketmq__V2__Broker br = APACHE__ROCKETMQ__V2__BROKER__INIT;
        br.name = b->br_name;
        br.id = 0;
        br.endpoints = &ep;
        Apache__Rocketmq__V2__Resource rt = APACHE__ROCKETMQ__V2__RESOURCE__INIT;
        rt.name = (char *)topic;
        rt.resource_namespace = rq->topic->resource_namespace;
        /* Topics carry no message type here: every queue accepts all four. */
        Apache__Rocketmq__V2__MessageType types[] = {
            APACHE__ROCKETMQ__V2__MESSAGE_TYPE__NORMAL, APACHE__ROCKETMQ__V2__MESSAGE_TYPE__FIFO,
            APACHE__ROCKETMQ__V2__MESSAGE_TYPE__DELAY,
            APACHE__ROCKETMQ__V2__MESSAGE_TYPE__TRANSACTION};
        Apache__Rocketmq__V2__MessageQueue *qs = apg_calloc((size_t)nq, sizeof(*qs));
        Apache__Rocketmq__V2__MessageQueue **qp = apg_calloc((size_t)nq, sizeof(*qp));
        if (!qs || !qp) {
            apg_free(qs);
            apg_free(qp);
            apg_grpc_call_fail(call, APG_GRPC_RESOURCE_EXHAUSTED, "out of memory");
            goto out;
        }
        for (int i = 0; i < nq; i++) {
            Apache__Rocketmq__V2__MessageQueue *q = &qs[i];
            apache__rocketmq__v2__message_queue__init(q);
            q->topic = &rt;
            q->id = i;
            bool r = i < tc.tc_read_queues && (tc.tc_perm & PERM_READ);
            bool w = i < tc.tc_write_queues && (tc.tc_perm & PERM_WRITE);
            q->permission = r && w ? APACHE__ROCKETMQ__V2__PERMISSION__READ_WRITE
                            : r    ? APACHE__ROCKETMQ__V2__PERMISSION__READ
                            : w    ? APACHE__ROCKETMQ__V2__PERMISSION__WRITE
                                   : APACHE__ROCKETMQ__V2__PERMISSION__NONE;
            q->broker = &br;
            q->n_accept_message_types = sizeof types / sizeof types[0];
            q->accept_message_types = types;
            qp[i] = q;
        }
        status_set(&st, APACHE__ROCKETMQ__V2__CODE__OK, "OK");
        resp.n_message_queues = (size_t)nq;
        resp.message_queues = qp;
        answer(call, &resp.base);
        apg_free(qs);
        apg_free(qp);
    }
out:
    apache__rocketmq__v2__query_route_request__free_unpacked(rq, NULL);
}

/* ---- Heartbeat ---- */

/* Producers keep no per-client state in the broker; the answer tells the
 * client the endpoint is alive. */
static void heartbeat(struct apg_grpc_call *call, const uint8_t *req, size_t len, void *ud)
{
    Apache__Rocketmq__V2__HeartbeatRequest *rq =
        apache__rocketmq__v2__heartbeat_request__unpack(NULL, len, req);
    if (!rq) {
        apg_grpc_call_fail(call, APG_GRPC_INVALID_ARGUMENT, "malformed HeartbeatRequest");
        return;
    }
    apache__rocketmq__v2__heartbeat_request__free_unpacked(rq, NULL);
    Apache__Rocketmq__V2__HeartbeatResponse resp = APACHE__ROCKETMQ__V2__HEARTBEAT_RESPONSE__INIT;
    pb_status st;
    status_set(&st, APACHE__ROCKETMQ__V2__CODE__OK, "OK");
    resp.status = &st;
    answer(call, &resp.base);
}

/* ---- NotifyClientTermination ---- */

/* A producer's goodbye: nothing is kept for it, so nothing to release. */
static void notify_termination(struct apg_grpc_call *call, const uint8_t *req, size_t len, void *ud)
{
    Apache__Rocketmq__V2__NotifyClientTerminationRequest *rq =
        apache__rocketmq__v2__notify_client_termination_request__unpack(NULL, len, req);
    if (!rq) {
        apg_grpc_call_fail(call, APG_GRPC_INVALID_ARGUMENT,
                           "malformed NotifyClientTerminationRequest");
        return;
    }
    apache__rocketmq__v2__notify_client_termination_request__free_unpacked(rq, NULL);
    Apache__Rocketmq__V2__NotifyClientTerminationResponse resp =
        APACHE__ROCKETMQ__V2__NOTIFY_CLIENT_TERMINATION_RESPONSE__INIT;
    pb_status st;
    status_set(&st, APACHE__ROCKETMQ__V2__CODE__OK, "OK");
    resp.status = &st;
    answer(call, &resp.base);
}

/* ---- SendMessage ---- */

/* The property string of m into props; false when a pair is not allowed. */
static bool build_props(const Apache__Rocketmq__V2__Message *m, struct apg_buf *props)
{
    const Apache__Rocketmq__V2__SystemProperties *sp = m->system_properties;
    apg_buf_reset(props);
    for (size_t i = 0; i < m->n_user_properties; i++) {
        const char *k = m->user_properties[i]->key, *v = m->user_properties[i]->value;
        if (!apg_props_pair_ok(k, strlen(k), v, strlen(v)) || apg_props_append(props, k, v))
            return false;
    }
    if (sp->tag && sp->tag[0] && apg_props_append(props, "TAGS", sp->tag))
        return false;
    if (sp->n_keys) {
        struct apg_buf keys = {0};
        for (size_t i = 0; i < sp->n_keys; i++)
            if ((i && apg_buf_append(&keys, " ", 1)) || apg_buf_append_str(&keys, sp->keys[i])) {
                apg_buf_free(&keys);
                return false;
            }
        bool ok = apg_buf_append(&keys, "", 1) == APG_OK &&
                  apg_props_append(props, "KEYS", (const char *)keys.b_data) == APG_OK;
        apg_buf_free(&keys);
        if (!ok)
            return false;
    }
    if (apg_props_append(props, "UNIQ_KEY", sp->message_id) ||
        apg_props_append(props, "WAIT", "true"))
        return false;
    return props->b_len <= 32767;
}

static void send_one(const struct apg_grpc_messaging *ms, struct apg_grpc_call *call,
                     const Apache__Rocketmq__V2__Message *m,
                     Apache__Rocketmq__V2__SendResultEntry *e, pb_status *st, char *why,
                     size_t whylen, struct apg_buf *props)
{
    struct apg_broker *b = ms->gm_broker;
    const Apache__Rocketmq__V2__SystemProperties *sp = m->system_properties;
    const char *topic;
    e->status = st;
    if (!resource_name(m->topic, &topic)) {
        status_set(st, APACHE__ROCKETMQ__V2__CODE__ILLEGAL_TOPIC, "topic name is empty");
        return;
    }
    if (!sp || !sp->message_id || !sp->message_id[0]) {
        status_set(st, APACHE__ROCKETMQ__V2__CODE__ILLEGAL_MESSAGE_ID, "message id is missing");
        return;
    }
    e->message_id = sp->message_id;
    if (sp->message_type != APACHE__ROCKETMQ__V2__MESSAGE_TYPE__NORMAL &&
        sp->message_type != APACHE__ROCKETMQ__V2__MESSAGE_TYPE__MESSAGE_TYPE_UNSPECIFIED) {
        status_set(st, APACHE__ROCKETMQ__V2__CODE__UNSUPPORTED,
                   "only normal messages are served on the gRPC port so far");
        return;
    }
    if (sp->body_encoding == APACHE__ROCKETMQ__V2__ENCODING__GZIP) {
        status_set(st, APACHE__ROCKETMQ__V2__CODE__UNSUPPORTED, "gzip bodies are not served yet");
        return;
    }
    struct apg_topic_cfg tc;
    if (!apg_topics_get(b->br_topics, topic, &tc)) {
        snprintf(why, whylen, "topic %s does not exist on broker %s", topic, b->br_name);
        status_set(st, APACHE__ROCKETMQ__V2__CODE__TOPIC_NOT_FOUND, why);
        return;
    }
    if (!(tc.tc_perm & PERM_WRITE) || tc.tc_write_queues < 1) {
        snprintf(why, whylen, "topic %s is not writable", topic);
        status_set(st, APACHE__ROCKETMQ__V2__CODE__FORBIDDEN, why);
        return;
    }
    if (!build_props(m, props)) {
        status_set(st, APACHE__ROCKETMQ__V2__CODE__MESSAGE_PROPERTIES_TOO_LARGE,
                   "message properties are too large or contain reserved characters");
        return;
    }
    struct apg_msg_in in = {0};
    in.mi_topic = topic;
    in.mi_topic_len = strlen(topic);
    in.mi_queue_id = apg_broker_put_queue(b, &tc, -1);
    if (sp->born_timestamp) {
        in.mi_born_ts = sp->born_timestamp->seconds * 1000 + sp->born_timestamp->nanos / 1000000;
    } else {
        struct timeval tv;
        gettimeofday(&tv, NULL);
        in.mi_born_ts = (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
    }
    in.mi_born_host.h_ip[0] = 127; /* overwritten below from the peer when it parses */
    in.mi_born_host.h_ip[3] = 1;
    unsigned a, bb, c, d, port;
    if (sscanf(apg_grpc_call_peer(call), "%u.%u.%u.%u:%u", &a, &bb, &c, &d, &port) == 5) {
        in.mi_born_host.h_ip[0] = (uint8_t)a;
        in.mi_born_host.h_ip[1] = (uint8_t)bb;
        in.mi_born_host.h_ip[2] = (uint8_t)c;
        in.mi_born_host.h_ip[3] = (uint8_t)d;
        in.mi_born_host.h_port = port;
    }
    in.mi_body = m->body.data;
    in.mi_body_len = m->body.len;
    in.mi_props = (const char *)props->b_data;
    in.mi_props_len = props->b_len;
    in.mi_tags_code = sp->tag && sp->tag[0] ? apg_java_hash(sp->tag, strlen(sp->tag)) : 0;
    struct apg_put_result res;
    char err[256] = "";
    if (apg_broker_put_internal(b, &in, 1, &res, err, sizeof err)) {
        snprintf(why, whylen, "store refused the message: %s", err);
        status_set(st, APACHE__ROCKETMQ__V2__CODE__INTERNAL_SERVER_ERROR, why);
        return;
    }
    e->offset = res.pr_queue_offset;
    status_set(st, APACHE__ROCKETMQ__V2__CODE__OK, "OK");
}

static void send_message(struct apg_grpc_call *call, const uint8_t *req, size_t len, void *ud)
{
    Apache__Rocketmq__V2__SendMessageRequest *rq =
        apache__rocketmq__v2__send_message_request__unpack(NULL, len, req);
    if (!rq) {
        apg_grpc_call_fail(call, APG_GRPC_INVALID_ARGUMENT, "malformed SendMessageRequest");
        return;
    }
    Apache__Rocketmq__V2__SendMessageResponse resp =
        APACHE__ROCKETMQ__V2__SEND_MESSAGE_RESPONSE__INIT;
    pb_status top;
    resp.status = &top;
    size_t n = rq->n_messages;
    if (n == 0 || n > 1024) {
        status_set(&top, APACHE__ROCKETMQ__V2__CODE__BAD_REQUEST, "1 to 1024 messages per request");
        answer(call, &resp.base);
        apache__rocketmq__v2__send_message_request__free_unpacked(rq, NULL);
        return;
    }
    struct slot {
        Apache__Rocketmq__V2__SendResultEntry e;
        pb_status st;
        char why[300];
    } *slots = apg_calloc(n, sizeof(*slots));
    Apache__Rocketmq__V2__SendResultEntry **ep = apg_calloc(n, sizeof(*ep));
    struct apg_buf props = {0};
    if (!slots || !ep) {
        apg_grpc_call_fail(call, APG_GRPC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    size_t ok = 0;
    for (size_t i = 0; i < n; i++) {
        apache__rocketmq__v2__send_result_entry__init(&slots[i].e);
        send_one(ud, call, rq->messages[i], &slots[i].e, &slots[i].st, slots[i].why,
                 sizeof slots[i].why, &props);
        ok += slots[i].st.code == APACHE__ROCKETMQ__V2__CODE__OK;
        ep[i] = &slots[i].e;
    }
    /* One result: its status is the response's; several: MULTIPLE_RESULTS
     * unless all succeeded. */
    if (ok == n)
        status_set(&top, APACHE__ROCKETMQ__V2__CODE__OK, "OK");
    else if (n == 1)
        top = slots[0].st;
    else
        status_set(&top, APACHE__ROCKETMQ__V2__CODE__MULTIPLE_RESULTS, "see the entries");
    resp.n_entries = n;
    resp.entries = ep;
    answer(call, &resp.base);
out:
    apg_buf_free(&props);
    apg_free(slots);
    apg_free(ep);
    apache__rocketmq__v2__send_message_request__free_unpacked(rq, NULL);
}

const struct apg_grpc_method apg_grpc_messaging_methods[] = {
    {.gm_path = SVC "QueryRoute", .gm_fn = query_route},
    {.gm_path = SVC "Heartbeat", .gm_fn = heartbeat},
    {.gm_path = SVC "SendMessage", .gm_fn = send_message},
    {.gm_path = SVC "NotifyClientTermination", .gm_fn = notify_termination},
    {.gm_path = SVC "Telemetry",
     .gm_kind = APG_GRPC_BIDI,
     .gm_msg = apg_grpc_telemetry_msg,
     .gm_end = apg_grpc_telemetry_end,
     .gm_close = apg_grpc_telemetry_close},
};
const size_t apg_grpc_messaging_n_methods =
    sizeof apg_grpc_messaging_methods / sizeof apg_grpc_messaging_methods[0];

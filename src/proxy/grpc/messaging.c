/* MessagingService (apache.rocketmq.v2) methods mapped onto the broker:
 * QueryRoute, Heartbeat and NotifyClientTermination here, the method
 * table (each entry calls the member of the messaging's backend, the local
 * one of this file or the remote one of src/proxy/remote), the local
 * backend's table, and the packing helpers the other method files share
 * (produce.c: SendMessage and EndTransaction; telemetry.c: Telemetry).
 *
 * Design. Each method unpacks its request (protobuf-c, proto/messaging.proto),
 * calls the broker's own tables and write path and packs the answer;
 * nothing goes through a socket. A route names this process's gRPC port as
 * the one endpoint of every queue, and every queue accepts the four message
 * types (topics carry no type here). Errors a client can act on are
 * RocketMQ codes in the response's Status with gRPC status OK, as the
 * protocol wants.
 *
 * Threads: the gRPC loop thread. */
#include "proxy/grpc/messaging.h"
#include "proxy/grpc/auth.h"
#include "proxy/grpc/consume.h"
#include "proxy/grpc/ns.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "broker/broker_rt.h"
#include "common/buf.h"
#include "common/hash.h"
#include "common/mem.h"
#include "protocol/props.h"
#include "proto/messaging.pb-c.h"
#include "proxy/grpc/produce.h"
#include "proxy/grpc/telemetry.h"

#define SVC "/apache.rocketmq.v2.MessagingService/"
#define PERM_READ 4
#define PERM_WRITE 2

void apg_grpc_status_set(Apache__Rocketmq__V2__Status *st, Apache__Rocketmq__V2__Code code,
                         const char *msg)
{
    apache__rocketmq__v2__status__init(st);
    st->code = code;
    st->message = (char *)(msg ? msg : "");
}

/* Packs m (any protobuf-c message) as the call's answer. */
void apg_grpc_answer(struct apg_grpc_call *call, const ProtobufCMessage *m)
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

apg_err_t apg_grpc_status_only(const ProtobufCMessageDescriptor *d, int code, const char *msg,
                               struct apg_buf *out)
{
    union {
        ProtobufCMessage base;
        max_align_t align;
        uint8_t bytes[512];
    } m;
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(d, "status");
    if (d->sizeof_message > sizeof m || !f)
        return APG_EINVAL;
    protobuf_c_message_init(d, &m);
    Apache__Rocketmq__V2__Status st;
    apg_grpc_status_set(&st, (Apache__Rocketmq__V2__Code)code, msg);
    Apache__Rocketmq__V2__Status *sp = &st;
    memcpy(m.bytes + f->offset, &sp, sizeof sp);
    size_t n = protobuf_c_message_get_packed_size(&m.base);
    apg_buf_reset(out);
    if (apg_buf_reserve(out, n ? n : 1))
        return APG_ENOMEM;
    protobuf_c_message_pack(&m.base, out->b_data);
    out->b_len = n;
    return APG_OK;
}

void apg_grpc_answer_status(struct apg_grpc_call *call, const ProtobufCMessageDescriptor *d,
                            int code, const char *msg)
{
    struct apg_buf b = APG_BUF_INIT;
    if (apg_grpc_status_only(d, code, msg, &b))
        apg_grpc_call_fail(call, APG_GRPC_RESOURCE_EXHAUSTED, "out of memory");
    else
        apg_grpc_call_reply(call, b.b_data, b.b_len);
    apg_buf_free(&b);
}

bool apg_grpc_resource_name(const Apache__Rocketmq__V2__Resource *r, const char **name)
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
    Apache__Rocketmq__V2__Status st;
    resp.status = &st;
    const char *topic;
    struct apg_topic_cfg tc;
    char why[300];
    if (!apg_grpc_resource_name(rq->topic, &topic)) {
        apg_grpc_status_set(&st, APACHE__ROCKETMQ__V2__CODE__ILLEGAL_TOPIC, "topic name is empty");
        apg_grpc_answer(call, &resp.base);
    } else if (!apg_topics_get(b->br_topics, topic, &tc)) {
        snprintf(why, sizeof why, "topic %s does not exist on broker %s", topic, b->br_name);
        apg_grpc_status_set(&st, APACHE__ROCKETMQ__V2__CODE__TOPIC_NOT_FOUND, why);
        apg_grpc_answer(call, &resp.base);
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
        char nsbuf[512];
        apg_grpc_ns_resource(&rt, topic, nsbuf, sizeof nsbuf);
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
        apg_grpc_status_set(&st, APACHE__ROCKETMQ__V2__CODE__OK, "OK");
        resp.n_message_queues = (size_t)nq;
        resp.message_queues = qp;
        apg_grpc_answer(call, &resp.base);
        apg_free(qs);
        apg_free(qp);
    }
out:
    apache__rocketmq__v2__query_route_request__free_unpacked(rq, NULL);
}

/* ---- Heartbeat ---- */

/* Producers keep no per-client state in the broker; the answer tells the
 * client the endpoint is alive. */
void apg_grpc_heartbeat(struct apg_grpc_call *call, const uint8_t *req, size_t len, void *ud)
{
    Apache__Rocketmq__V2__HeartbeatRequest *rq =
        apache__rocketmq__v2__heartbeat_request__unpack(NULL, len, req);
    if (!rq) {
        apg_grpc_call_fail(call, APG_GRPC_INVALID_ARGUMENT, "malformed HeartbeatRequest");
        return;
    }
    apache__rocketmq__v2__heartbeat_request__free_unpacked(rq, NULL);
    Apache__Rocketmq__V2__HeartbeatResponse resp = APACHE__ROCKETMQ__V2__HEARTBEAT_RESPONSE__INIT;
    Apache__Rocketmq__V2__Status st;
    apg_grpc_status_set(&st, APACHE__ROCKETMQ__V2__CODE__OK, "OK");
    resp.status = &st;
    apg_grpc_answer(call, &resp.base);
}

/* ---- NotifyClientTermination ---- */

/* A producer's goodbye: nothing is kept for it, so nothing to release. */
void apg_grpc_notify_termination(struct apg_grpc_call *call, const uint8_t *req, size_t len,
                                 void *ud)
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
    Apache__Rocketmq__V2__Status st;
    apg_grpc_status_set(&st, APACHE__ROCKETMQ__V2__CODE__OK, "OK");
    resp.status = &st;
    apg_grpc_answer(call, &resp.base);
}

const struct apg_grpc_backend apg_grpc_local_backend = {
    .gb_name = "local",
    .gb_query_route = query_route,
    .gb_heartbeat = apg_grpc_heartbeat,
    .gb_notify = apg_grpc_notify_termination,
    .gb_send = apg_grpc_send_message,
    .gb_end_txn = apg_grpc_end_transaction,
    .gb_receive = apg_grpc_consume_receive_call,
    .gb_ack = apg_grpc_consume_ack,
    .gb_change = apg_grpc_consume_change,
    .gb_forward_dlq = apg_grpc_consume_forward_dlq,
    .gb_assignment = apg_grpc_consume_assignment,
    .gb_send_close = apg_grpc_send_close,
    .gb_receive_close = apg_grpc_consume_receive_close,
    .gb_read_end = apg_grpc_produce_read_end,
};

/* The method table's entries: the call goes to the backend's member. */
#define BACKEND_UNARY(name, member)                                                                \
    static void name(struct apg_grpc_call *call, const uint8_t *req, size_t len, void *ud)         \
    {                                                                                              \
        ((const struct apg_grpc_messaging *)ud)->gm_backend->member(call, req, len, ud);           \
    }
#define BACKEND_EVENT(name, member)                                                                \
    static void name(struct apg_grpc_call *call, void *ud)                                         \
    {                                                                                              \
        const struct apg_grpc_backend *be = ((const struct apg_grpc_messaging *)ud)->gm_backend;   \
        if (be->member)                                                                            \
            be->member(call, ud);                                                                  \
    }
BACKEND_UNARY(b_query_route, gb_query_route)
BACKEND_UNARY(b_heartbeat, gb_heartbeat)
BACKEND_UNARY(b_send, gb_send)
BACKEND_UNARY(b_end_txn, gb_end_txn)
BACKEND_UNARY(b_notify, gb_notify)
BACKEND_UNARY(b_receive, gb_receive)
BACKEND_UNARY(b_ack, gb_ack)
BACKEND_UNARY(b_change, gb_change)
BACKEND_UNARY(b_forward_dlq, gb_forward_dlq)
BACKEND_UNARY(b_assignment, gb_assignment)
BACKEND_EVENT(b_send_close, gb_send_close)
BACKEND_EVENT(b_receive_close, gb_receive_close)

/* Every method behind the ACL check (auth.c); a no-op with aclEnable=false. */
APG_GRPC_GUARDED(g_query_route, APG_GRPC_OP_QUERY_ROUTE, b_query_route)
APG_GRPC_GUARDED(g_heartbeat, APG_GRPC_OP_HEARTBEAT, b_heartbeat)
APG_GRPC_GUARDED(g_send, APG_GRPC_OP_SEND, b_send)
APG_GRPC_GUARDED(g_end_txn, APG_GRPC_OP_END_TRANSACTION, b_end_txn)
APG_GRPC_GUARDED(g_notify, APG_GRPC_OP_NOTIFY_TERMINATION, b_notify)
APG_GRPC_GUARDED(g_telemetry, APG_GRPC_OP_TELEMETRY, apg_grpc_telemetry_msg)
APG_GRPC_GUARDED(g_receive, APG_GRPC_OP_RECEIVE, b_receive)
APG_GRPC_GUARDED(g_ack, APG_GRPC_OP_ACK, b_ack)
APG_GRPC_GUARDED(g_change, APG_GRPC_OP_CHANGE_INVISIBLE, b_change)
APG_GRPC_GUARDED(g_forward_dlq, APG_GRPC_OP_FORWARD_DLQ, b_forward_dlq)
APG_GRPC_GUARDED(g_assignment, APG_GRPC_OP_QUERY_ASSIGNMENT, b_assignment)

const struct apg_grpc_method apg_grpc_messaging_methods[] = {
    {.gm_path = SVC "QueryRoute", .gm_fn = g_query_route},
    {.gm_path = SVC "Heartbeat", .gm_fn = g_heartbeat},
    {.gm_path = SVC "SendMessage", .gm_fn = g_send, .gm_close = b_send_close},
    {.gm_path = SVC "EndTransaction", .gm_fn = g_end_txn},
    {.gm_path = SVC "NotifyClientTermination", .gm_fn = g_notify},
    {.gm_path = SVC "Telemetry",
     .gm_kind = APG_GRPC_BIDI,
     .gm_msg = g_telemetry,
     .gm_end = apg_grpc_telemetry_end,
     .gm_close = apg_grpc_telemetry_close},
    {.gm_path = SVC "ReceiveMessage",
     .gm_fn = g_receive,
     .gm_kind = APG_GRPC_SERVER_STREAM,
     .gm_close = b_receive_close},
    {.gm_path = SVC "AckMessage", .gm_fn = g_ack},
    {.gm_path = SVC "ChangeInvisibleDuration", .gm_fn = g_change},
    {.gm_path = SVC "ForwardMessageToDeadLetterQueue", .gm_fn = g_forward_dlq},
    {.gm_path = SVC "QueryAssignment", .gm_fn = g_assignment},
};
const size_t apg_grpc_messaging_n_methods =
    sizeof apg_grpc_messaging_methods / sizeof apg_grpc_messaging_methods[0];

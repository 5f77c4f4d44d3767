/* The plain ACL (acl/acl.h) on the gRPC port.
 *
 * A RocketMQ 5 client signs every call with two headers: x-mq-date-time
 * (e.g. "20230913T063059Z") and authorization, "MQv2-HMAC-SHA1
 * Credential=<accessKey>[/...], SignedHeaders=x-mq-date-time,
 * Signature=<hex of HMAC-SHA1(secretKey, the x-mq-date-time value)>"
 * (docs/wire.md §15). apg_grpc_auth_admit parses them, reads from the
 * unpacked request which topics and groups the operation touches and hands
 * both to apg_acl_check_mac, the same accounts, white lists and permission
 * rules the remoting ports use: sends and EndTransaction need PUB on the
 * topic; ReceiveMessage, Ack, ChangeInvisibleDuration, ForwardToDLQ and
 * QueryAssignment SUB on the topic and the group; QueryRoute PUB or SUB on
 * the topic; a consumer's Heartbeat and NotifyClientTermination SUB on the
 * group; Telemetry settings PUB on the published topics, SUB on the group
 * and the subscribed topics, and other Telemetry commands only a valid
 * signature. A refusal is an answer of the method's own response type
 * whose Status is UNAUTHORIZED (40100) for credentials or FORBIDDEN (40300)
 * for permissions, with gRPC status OK: a streaming call gets one such
 * message (ReceiveMessage then ends; Telemetry stays open, as RocketMQ's
 * proxy does), so the client raises its Unauthorized/Forbidden error
 * instead of waiting.
 *
 * Design: the request is unpacked once more here (only with aclEnable=true);
 * the refusal message is built from the response's protobuf-c descriptor,
 * whose field 1 is the Status in every MessagingService response.
 *
 * Threads: the gRPC loop thread. */
#include "proxy/grpc/auth.h"

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "acl/acl.h"
#include "broker/broker_rt.h"
#include "common/log.h"
#include "common/mem.h"
#include "proto/messaging.pb-c.h"
#include "proxy/grpc/messaging.h"
#include "proxy/grpc/ns.h"

#define MAX_NEEDS 64

struct op_info {
    const char *oi_name;
    const ProtobufCMessageDescriptor *oi_req, *oi_resp;
    enum apg_grpc_kind oi_kind;
};

#define OP(id, name, req, resp, kind)                                                              \
    [APG_GRPC_OP_##id] = {.oi_name = name,                                                         \
                          .oi_req = &apache__rocketmq__v2__##req##__descriptor,                    \
                          .oi_resp = &apache__rocketmq__v2__##resp##__descriptor,                  \
                          .oi_kind = APG_GRPC_##kind}

static const struct op_info ops[APG_GRPC_OP_N] = {
    OP(QUERY_ROUTE, "QueryRoute", query_route_request, query_route_response, UNARY),
    OP(HEARTBEAT, "Heartbeat", heartbeat_request, heartbeat_response, UNARY),
    OP(SEND, "SendMessage", send_message_request, send_message_response, UNARY),
    OP(END_TRANSACTION, "EndTransaction", end_transaction_request, end_transaction_response, UNARY),
    OP(NOTIFY_TERMINATION, "NotifyClientTermination", notify_client_termination_request,
       notify_client_termination_response, UNARY),
    OP(TELEMETRY, "Telemetry", telemetry_command, telemetry_command, BIDI),
    OP(RECEIVE, "ReceiveMessage", receive_message_request, receive_message_response, SERVER_STREAM),
    OP(ACK, "AckMessage", ack_message_request, ack_message_response, UNARY),
    OP(CHANGE_INVISIBLE, "ChangeInvisibleDuration", change_invisible_duration_request,
       change_invisible_duration_response, UNARY),
    OP(FORWARD_DLQ, "ForwardMessageToDeadLetterQueue", forward_message_to_dead_letter_queue_request,
       forward_message_to_dead_letter_queue_response, UNARY),
    OP(QUERY_ASSIGNMENT, "QueryAssignment", query_assignment_request, query_assignment_response,
       UNARY),
};
#undef OP

struct needs {
    struct apg_acl_need n_v[MAX_NEEDS];
    size_t n_n;
};

static void need(struct needs *n, const Apache__Rocketmq__V2__Resource *r, bool group, uint8_t perm)
{
    if (!r || !r->name || !r->name[0] || n->n_n >= MAX_NEEDS)
        return;
    n->n_v[n->n_n++] = (struct apg_acl_need){r->name, group, perm};
}

/* A consumer's request on one topic: SUB on the group and the topic. */
static void need_sub(struct needs *n, const Apache__Rocketmq__V2__Resource *group,
                     const Apache__Rocketmq__V2__Resource *topic)
{
    need(n, group, true, APG_ACL_SUB);
    need(n, topic, false, APG_ACL_SUB);
}

static bool is_consumer(Apache__Rocketmq__V2__ClientType t)
{
    return t != APACHE__ROCKETMQ__V2__CLIENT_TYPE__CLIENT_TYPE_UNSPECIFIED &&
           t != APACHE__ROCKETMQ__V2__CLIENT_TYPE__PRODUCER;
}

/* The resources op's request m touches, with the permission each needs. */
static void needs_of(enum apg_grpc_op op, const ProtobufCMessage *m, struct needs *n)
{
    switch (op) {
    case APG_GRPC_OP_QUERY_ROUTE:
        need(n, ((const Apache__Rocketmq__V2__QueryRouteRequest *)m)->topic, false, APG_ACL_ANY);
        break;
    case APG_GRPC_OP_HEARTBEAT: {
        const Apache__Rocketmq__V2__HeartbeatRequest *r = (const void *)m;
        if (is_consumer(r->client_type))
            need(n, r->group, true, APG_ACL_SUB);
        break;
    }
    case APG_GRPC_OP_SEND: {
        const Apache__Rocketmq__V2__SendMessageRequest *r = (const void *)m;
        for (size_t i = 0; i < r->n_messages; i++)
            need(n, r->messages[i]->topic, false, APG_ACL_PUB);
        break;
    }
    case APG_GRPC_OP_END_TRANSACTION:
        need(n, ((const Apache__Rocketmq__V2__EndTransactionRequest *)m)->topic, false,
             APG_ACL_PUB);
        break;
    case APG_GRPC_OP_NOTIFY_TERMINATION:
        need(n, ((const Apache__Rocketmq__V2__NotifyClientTerminationRequest *)m)->group, true,
             APG_ACL_SUB);
        break;
    case APG_GRPC_OP_TELEMETRY: {
        const Apache__Rocketmq__V2__TelemetryCommand *c = (const void *)m;
        if (c->command_case != APACHE__ROCKETMQ__V2__TELEMETRY_COMMAND__COMMAND_SETTINGS)
            break;
        const Apache__Rocketmq__V2__Settings *s = c->settings;
        if (s->pub_sub_case == APACHE__ROCKETMQ__V2__SETTINGS__PUB_SUB_PUBLISHING)
            for (size_t i = 0; i < s->publishing->n_topics; i++)
                need(n, s->publishing->topics[i], false, APG_ACL_PUB);
        if (s->pub_sub_case == APACHE__ROCKETMQ__V2__SETTINGS__PUB_SUB_SUBSCRIPTION) {
            need(n, s->subscription->group, true, APG_ACL_SUB);
            for (size_t i = 0; i < s->subscription->n_subscriptions; i++)
                need(n, s->subscription->subscriptions[i]->topic, false, APG_ACL_SUB);
        }
        break;
    }
    case APG_GRPC_OP_RECEIVE: {
        const Apache__Rocketmq__V2__ReceiveMessageRequest *r = (const void *)m;
        need_sub(n, r->group, r->message_queue ? r->message_queue->topic : NULL);
        break;
    }
    case APG_GRPC_OP_ACK: {
        const Apache__Rocketmq__V2__AckMessageRequest *r = (const void *)m;
        need_sub(n, r->group, r->topic);
        break;
    }
    case APG_GRPC_OP_CHANGE_INVISIBLE: {
        const Apache__Rocketmq__V2__ChangeInvisibleDurationRequest *r = (const void *)m;
        need_sub(n, r->group, r->topic);
        break;
    }
    case APG_GRPC_OP_FORWARD_DLQ: {
        const Apache__Rocketmq__V2__ForwardMessageToDeadLetterQueueRequest *r = (const void *)m;
        need_sub(n, r->group, r->topic);
        break;
    }
    case APG_GRPC_OP_QUERY_ASSIGNMENT: {
        const Apache__Rocketmq__V2__QueryAssignmentRequest *r = (const void *)m;
        need_sub(n, r->group, r->topic);
        break;
    }
    default:
        break;
    }
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Parses the authorization header h: the access key into ak (empty when
 * absent) and the hex Signature into mac (*have_mac false when absent or
 * not 40 hex digits). */
static void authz_parse(const char *h, char *ak, size_t ak_len, uint8_t mac[20], bool *have_mac)
{
    ak[0] = '\0';
    *have_mac = false;
    const char *p = strchr(h, ' ');
    if (!p)
        return;
    p++;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        if (eq) {
            size_t kl = (size_t)(eq - p), vl = (size_t)(end - eq - 1);
            const char *v = eq + 1;
            while (vl && v[vl - 1] == ' ')
                vl--;
            if (kl == 10 && memcmp(p, "Credential", 10) == 0) {
                const char *slash = memchr(v, '/', vl);
                size_t n = slash ? (size_t)(slash - v) : vl;
                if (n < ak_len) {
                    memcpy(ak, v, n);
                    ak[n] = '\0';
                }
            } else if (kl == 9 && memcmp(p, "Signature", 9) == 0 && vl == 40) {
                bool ok = true;
                for (size_t i = 0; i < 20 && ok; i++) {
                    int hi = hexval((unsigned char)v[2 * i]),
                        lo = hexval((unsigned char)v[2 * i + 1]);
                    ok = hi >= 0 && lo >= 0;
                    mac[i] = (uint8_t)(hi << 4 | lo);
                }
                *have_mac = ok;
            }
        }
        p = end;
    }
}

/* Answers the call with op's response carrying only Status (code, msg). */
static void refuse(struct apg_grpc_call *call, enum apg_grpc_op op, Apache__Rocketmq__V2__Code code,
                   const char *msg)
{
    const struct op_info *oi = &ops[op];
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(oi->oi_resp, 1);
    _Alignas(max_align_t) uint8_t mem[256];
    if (!f || oi->oi_resp->sizeof_message > sizeof mem) {
        apg_grpc_call_fail(call, APG_GRPC_INTERNAL, msg);
        return;
    }
    ProtobufCMessage *m = (ProtobufCMessage *)(void *)mem;
    protobuf_c_message_init(oi->oi_resp, m);
    Apache__Rocketmq__V2__Status st;
    apg_grpc_status_set(&st, code, msg);
    *(Apache__Rocketmq__V2__Status **)(void *)(mem + f->offset) = &st;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        *(uint32_t *)(void *)(mem + f->quantifier_offset) = f->id;
    if (oi->oi_kind == APG_GRPC_UNARY) {
        apg_grpc_answer(call, m);
        return;
    }
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t buf[1024];
    if (n > sizeof buf) {
        apg_grpc_call_fail(call, APG_GRPC_INTERNAL, msg);
        return;
    }
    protobuf_c_message_pack(m, buf);
    apg_grpc_call_send(call, buf, n);
    if (oi->oi_kind == APG_GRPC_SERVER_STREAM)
        apg_grpc_call_finish(call, APG_GRPC_OK, NULL);
}

/* The ACL decision on the unpacked request m; true when it passes. */
static bool acl_pass(struct apg_grpc_call *call, struct apg_acl *acl, struct apg_broker *b,
                     enum apg_grpc_op op, const ProtobufCMessage *m)
{
    struct needs n = {.n_n = 0};
    needs_of(op, m, &n);
    const char *h = apg_grpc_call_header(call, "authorization");
    const char *dt = apg_grpc_call_header(call, "x-mq-date-time");
    char ak[256];
    uint8_t mac[20];
    bool have_mac = false;
    if (h)
        authz_parse(h, ak, sizeof ak, mac, &have_mac);
    struct apg_acl_mac am = {
        .am_ak = h && ak[0] ? ak : NULL,
        .am_mac = have_mac && dt ? mac : NULL,
        .am_content = dt ? dt : "",
        .am_content_len = dt ? strlen(dt) : 0,
        .am_what = ops[op].oi_name,
        .am_needs = n.n_v,
        .am_n_needs = n.n_n,
    };
    char remark[320];
    const char *peer = apg_grpc_call_peer(call);
    enum apg_acl_refusal r = apg_acl_check_mac(acl, &am, peer, remark, sizeof remark);
    if (r == APG_ACL_OK)
        return true;
    bool forbidden = r == APG_ACL_R_NO_PERM || r == APG_ACL_R_NEED_ADMIN;
    refuse(call, op,
           forbidden ? APACHE__ROCKETMQ__V2__CODE__FORBIDDEN
                     : APACHE__ROCKETMQ__V2__CODE__UNAUTHORIZED,
           remark);
    if (b)
        apg_broker_refusal_note(b, APG_REFUSAL_NO_PERMISSION, ops[op].oi_name, am.am_ak, peer,
                                APG_RESP_NO_PERMISSION, remark);
    else
        apg_log_warn("acl", "%s from %s refused: %s", ops[op].oi_name, peer ? peer : "?", remark);
    return false;
}

bool apg_grpc_auth_admit(struct apg_grpc_call *call, enum apg_grpc_op op, const uint8_t **req,
                         size_t *len, void *ud, uint8_t **owned)
{
    const struct apg_grpc_messaging *ms = ud;
    struct apg_broker *b = ms->gm_broker;
    const char *ns = apg_grpc_call_header(call, "x-mq-namespace");
    if (ns && !ns[0])
        ns = NULL;
    /* A proxy (no broker of its own) checks with the ACL it loaded. */
    struct apg_acl *acl = b ? b->br_acl : ms->gm_acl;
    if ((!acl && !ns) || op >= APG_GRPC_OP_N)
        return true;
    ProtobufCMessage *m = protobuf_c_message_unpack(ops[op].oi_req, NULL, *len, *req);
    if (!m)
        return true; /* the method answers INVALID_ARGUMENT */
    bool pass = true;
    int changed = apg_grpc_ns_rewrite(m, ns);
    if (changed < 0) {
        apg_grpc_call_fail(call, APG_GRPC_RESOURCE_EXHAUSTED, "out of memory");
        pass = false;
    } else if (acl) {
        pass = acl_pass(call, acl, b, op, m);
    }
    if (pass && changed > 0) {
        size_t n = protobuf_c_message_get_packed_size(m);
        *owned = apg_malloc(n ? n : 1);
        if (!*owned) {
            apg_grpc_call_fail(call, APG_GRPC_RESOURCE_EXHAUSTED, "out of memory");
            pass = false;
        } else {
            protobuf_c_message_pack(m, *owned);
            *req = *owned;
            *len = n;
        }
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return pass;
}

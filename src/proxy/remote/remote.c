/* `apogee proxy`: the gRPC server of src/proxy/grpc with the remote
 * backend, which forwards each MessagingService call over remoting to the
 * brokers a NameServer names; also QueryRoute and QueryAssignment, answered
 * from the NameServer's route with every endpoint rewritten to the proxy.
 *
 * Design. The proxy owns nothing durable: routes (remote_route.c) are a
 * cache, a receipt handle names its broker (the pop extraInfo text), a
 * transaction id names its broker and half message, so any proxy in front
 * of the same brokers can serve any call. One gRPC loop thread serves the
 * port; one remoting client loop thread (net/client.c) holds a connection
 * per broker and NameServer. The gRPC thread never waits for a broker:
 * see remote_int.h for how an answer comes back.
 *
 * Threads: start and stop on the control thread; the methods on the gRPC
 * loop thread; answers are built on the remoting client's loop thread and
 * posted to the call's loop. */
#include "proxy/remote/remote.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>

#include "acl/acl.h"
#include "common/config.h"
#include "common/log.h"
#include "common/mem.h"
#include "protocol/rcode.h"
#include "protocol/remoting.h"
#include "protocol/sign.h"
#include "proto/messaging.pb-c.h"
#include "proxy/grpc/consume.h"
#include "proxy/grpc/ns.h"
#include "proxy/grpc/telemetry.h"
#include "proxy/remote/remote_int.h"

#define CODE(x) APACHE__ROCKETMQ__V2__CODE__##x
#define PERM_READ 4
#define PERM_WRITE 2

struct apg_proxy {
    struct apg_grpc_server *px_srv;
    struct apg_grpc_messaging px_ms; /* the methods' ud; gm_remote = &px_rm */
    struct apg_remote px_rm;
};

/* ---- answers posted to the call's loop ---- */

enum post_kind { POST_REPLY, POST_FRAMES, POST_FAIL };

struct post {
    enum post_kind p_kind;
    struct apg_grpc_ref p_ref;
    struct apg_buf p_buf;
    enum apg_grpc_status p_st;
    char p_msg[300];
};

static void post_free(struct post *p)
{
    apg_buf_free(&p->p_buf);
    apg_grpc_ref_release(&p->p_ref);
    apg_free(p);
}

static void post_run(struct apg_grpc_call *call, void *arg)
{
    struct post *p = arg;
    if (call && !apg_grpc_call_done(call)) {
        if (p->p_kind == POST_REPLY) {
            apg_grpc_call_reply(call, p->p_buf.b_data, p->p_buf.b_len);
        } else if (p->p_kind == POST_FAIL) {
            apg_grpc_call_fail(call, p->p_st, p->p_msg);
        } else {
            apg_grpc_consume_send_frames(call, &p->p_buf);
        }
    }
    post_free(p);
}

static void post_send(struct post *p)
{
    if (apg_grpc_ref_post(&p->p_ref, post_run, p))
        post_free(p);
}

static struct post *post_new(struct apg_grpc_ref *ref, enum post_kind kind)
{
    struct post *p = apg_calloc(1, sizeof(*p));
    if (!p) {
        apg_grpc_ref_release(ref);
        return NULL;
    }
    p->p_kind = kind;
    p->p_ref = *ref;
    return p;
}

void apg_remote_reply(struct apg_grpc_ref *ref, const ProtobufCMessage *m)
{
    struct post *p = post_new(ref, POST_REPLY);
    if (!p)
        return;
    size_t n = protobuf_c_message_get_packed_size(m);
    if (apg_buf_reserve(&p->p_buf, n ? n : 1)) {
        p->p_kind = POST_FAIL;
        p->p_st = APG_GRPC_RESOURCE_EXHAUSTED;
        snprintf(p->p_msg, sizeof p->p_msg, "out of memory");
    } else {
        protobuf_c_message_pack(m, p->p_buf.b_data);
        p->p_buf.b_len = n;
    }
    post_send(p);
}

void apg_remote_frames(struct apg_grpc_ref *ref, struct apg_buf *frames)
{
    struct post *p = post_new(ref, POST_FRAMES);
    if (!p) {
        apg_buf_free(frames);
        return;
    }
    p->p_buf = *frames;
    *frames = (struct apg_buf)APG_BUF_INIT;
    post_send(p);
}

void apg_remote_status(struct apg_grpc_ref *ref, const ProtobufCMessageDescriptor *d, int code,
                       const char *msg)
{
    struct post *p = post_new(ref, POST_REPLY);
    if (!p)
        return;
    if (apg_grpc_status_only(d, code, msg, &p->p_buf)) {
        p->p_kind = POST_FAIL;
        p->p_st = APG_GRPC_RESOURCE_EXHAUSTED;
        snprintf(p->p_msg, sizeof p->p_msg, "out of memory");
    }
    post_send(p);
}

void apg_remote_fail(struct apg_grpc_ref *ref, enum apg_grpc_status st, const char *msg)
{
    struct post *p = post_new(ref, POST_FAIL);
    if (!p)
        return;
    p->p_st = st;
    snprintf(p->p_msg, sizeof p->p_msg, "%s", msg ? msg : "");
    post_send(p);
}

apg_err_t apg_remote_call(struct apg_remote *rm, const char *addr, const struct apg_rcmd *req,
                          const uint8_t *body, uint32_t len, uint32_t timeout_ms,
                          apg_net_resp_cb cb, void *ud)
{
    apg_err_t e = APG_ESHUTDOWN;
    struct apg_rcmd signed_req;
    char sig[APG_SIGN_LEN];
    if (rm->rm_ak[0]) {
        signed_req = *req;
        if ((e = apg_sign_request(&signed_req, rm->rm_ak, &rm->rm_sk, body, len, sig)))
            return e;
        req = &signed_req;
        e = APG_ESHUTDOWN;
    }
    pthread_rwlock_rdlock(&rm->rm_cli_lock);
    if (rm->rm_cli)
        e = cb ? apg_net_client_call(rm->rm_cli, addr, req, body, len, timeout_ms, cb, ud)
               : apg_net_client_oneway(rm->rm_cli, addr, req, body, len);
    pthread_rwlock_unlock(&rm->rm_cli_lock);
    return e;
}

void apg_remote_request(struct apg_rcmd *req, int32_t code)
{
    /* The binary header holds a 16-bit code: the pop codes (2000xx) go as
     * JSON, as RocketMQ's clients send them. */
    apg_rcmd_init_request(req, code, 0, code > 32767 ? APG_SER_JSON : APG_SER_ROCKETMQ);
}

const char *apg_remote_remark(const struct apg_rcmd *resp, const char *dflt)
{
    return resp && resp->remark && resp->remark[0] ? resp->remark : dflt;
}

/* ---- QueryRoute and QueryAssignment: the route with the proxy as endpoint ---- */

struct route_call {
    const struct apg_grpc_messaging *rc_ms;
    struct apg_grpc_ref rc_ref;
    bool rc_assignment;
    char rc_topic[];
};

static const Apache__Rocketmq__V2__MessageType all_types[] = {
    APACHE__ROCKETMQ__V2__MESSAGE_TYPE__NORMAL, APACHE__ROCKETMQ__V2__MESSAGE_TYPE__FIFO,
    APACHE__ROCKETMQ__V2__MESSAGE_TYPE__DELAY, APACHE__ROCKETMQ__V2__MESSAGE_TYPE__TRANSACTION};

static void route_answer(struct apg_remote *rm, struct apg_remote_route *rt, apg_err_t code,
                         const char *why, void *arg)
{
    (void)rm;
    struct route_call *rc = arg;
    Apache__Rocketmq__V2__Status st;
    Apache__Rocketmq__V2__QueryRouteResponse rr = APACHE__ROCKETMQ__V2__QUERY_ROUTE_RESPONSE__INIT;
    Apache__Rocketmq__V2__QueryAssignmentResponse ar =
        APACHE__ROCKETMQ__V2__QUERY_ASSIGNMENT_RESPONSE__INIT;
    rr.status = ar.status = &st;
    Apache__Rocketmq__V2__Address addr = APACHE__ROCKETMQ__V2__ADDRESS__INIT;
    Apache__Rocketmq__V2__Address *addrs[] = {&addr};
    Apache__Rocketmq__V2__Endpoints ep = APACHE__ROCKETMQ__V2__ENDPOINTS__INIT;
    addr.host = (char *)rc->rc_ms->gm_host;
    addr.port = rc->rc_ms->gm_port;
    ep.scheme = APACHE__ROCKETMQ__V2__ADDRESS_SCHEME__IPv4;
    ep.n_addresses = 1;
    ep.addresses = addrs;
    Apache__Rocketmq__V2__Resource res = APACHE__ROCKETMQ__V2__RESOURCE__INIT;
    char nsbuf[512];
    apg_grpc_ns_resource(&res, rc->rc_topic, nsbuf, sizeof nsbuf);
    size_t nqd = rt ? rt->rr_rd.rd_nqds : 0, nq = 0;
    for (size_t i = 0; i < nqd; i++) {
        const struct apg_route_qd *qd = &rt->rr_rd.rd_qds[i];
        int n = qd->qd_read > qd->qd_write ? qd->qd_read : qd->qd_write;
        nq += (size_t)(n > 1024 ? 1024 : n < 0 ? 0 : n);
    }
    Apache__Rocketmq__V2__Broker *brs = apg_calloc(nqd + 1, sizeof(*brs));
    Apache__Rocketmq__V2__MessageQueue *qs = apg_calloc(nq + nqd + 1, sizeof(*qs));
    Apache__Rocketmq__V2__MessageQueue **qp = apg_calloc(nq + 1, sizeof(*qp));
    Apache__Rocketmq__V2__Assignment *as = apg_calloc(nqd + 1, sizeof(*as));
    Apache__Rocketmq__V2__Assignment **ap = apg_calloc(nqd + 1, sizeof(*ap));
    if (!brs || !qs || !qp || !as || !ap) {
        apg_remote_fail(&rc->rc_ref, APG_GRPC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    if (code) {
        apg_grpc_status_set(
            &st, code == APG_ENOTFOUND ? CODE(TOPIC_NOT_FOUND) : CODE(INTERNAL_SERVER_ERROR), why);
    } else {
        apg_grpc_status_set(&st, CODE(OK), "OK");
        size_t k = 0;
        for (size_t i = 0; i < nqd; i++) {
            const struct apg_route_qd *qd = &rt->rr_rd.rd_qds[i];
            if (!apg_remote_route_master(rt, qd->qd_broker))
                continue; /* no master: nothing to send to or pop from */
            apache__rocketmq__v2__broker__init(&brs[i]);
            brs[i].name = (char *)qd->qd_broker;
            brs[i].endpoints = &ep;
            if (rc->rc_assignment) {
                if (!(qd->qd_perm & PERM_READ) || qd->qd_read <= 0)
                    continue;
                /* One queue per broker, id -1: pop from any of its queues,
                 * as the in-broker port assigns. */
                Apache__Rocketmq__V2__MessageQueue *q = &qs[nq + ar.n_assignments];
                apache__rocketmq__v2__message_queue__init(q);
                q->topic = &res;
                q->id = -1;
                q->permission = APACHE__ROCKETMQ__V2__PERMISSION__READ;
                q->broker = &brs[i];
                q->n_accept_message_types = 4;
                q->accept_message_types = (Apache__Rocketmq__V2__MessageType *)all_types;
                apache__rocketmq__v2__assignment__init(&as[ar.n_assignments]);
                as[ar.n_assignments].message_queue = q;
                ap[ar.n_assignments] = &as[ar.n_assignments];
                ar.n_assignments++;
                continue;
            }
            int n = qd->qd_read > qd->qd_write ? qd->qd_read : qd->qd_write;
            for (int j = 0; j < n && j < 1024; j++) {
                Apache__Rocketmq__V2__MessageQueue *q = &qs[k];
                apache__rocketmq__v2__message_queue__init(q);
                q->topic = &res;
                q->id = j;
                bool r = j < qd->qd_read && (qd->qd_perm & PERM_READ);
                bool w = j < qd->qd_write && (qd->qd_perm & PERM_WRITE);
                q->permission = r && w ? APACHE__ROCKETMQ__V2__PERMISSION__READ_WRITE
                                : r    ? APACHE__ROCKETMQ__V2__PERMISSION__READ
                                : w    ? APACHE__ROCKETMQ__V2__PERMISSION__WRITE
                                       : APACHE__ROCKETMQ__V2__PERMISSION__NONE;
                q->broker = &brs[i];
                q->n_accept_message_types = 4;
                q->accept_message_types = (Apache__Rocketmq__V2__MessageType *)all_types;
                qp[k++] = q;
            }
        }
        rr.n_message_queues = k;
        rr.message_queues = qp;
        ar.assignments = ap;
    }
    apg_remote_reply(&rc->rc_ref, rc->rc_assignment ? &ar.base : &rr.base);
out:
    apg_free(brs);
    apg_free(qs);
    apg_free(qp);
    apg_free(as);
    apg_free(ap);
    apg_remote_route_release(rt);
    apg_free(rc);
}

static void route_call(struct apg_grpc_call *call, const Apache__Rocketmq__V2__Resource *topic,
                       bool assignment, void *ud)
{
    const struct apg_grpc_messaging *ms = ud;
    const char *name;
    if (!apg_grpc_resource_name(topic, &name)) {
        apg_grpc_call_fail(call, APG_GRPC_INVALID_ARGUMENT, "topic name is empty");
        return;
    }
    size_t n = strlen(name);
    struct route_call *rc = apg_calloc(1, sizeof(*rc) + n + 1);
    if (!rc) {
        apg_grpc_call_fail(call, APG_GRPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    rc->rc_ms = ms;
    rc->rc_assignment = assignment;
    memcpy(rc->rc_topic, name, n + 1);
    apg_grpc_call_ref(call, &rc->rc_ref);
    apg_remote_route_get(ms->gm_remote, name, route_answer, rc);
}

void apg_remote_query_route(struct apg_grpc_call *call, const uint8_t *req, size_t len, void *ud)
{
    Apache__Rocketmq__V2__QueryRouteRequest *rq =
        apache__rocketmq__v2__query_route_request__unpack(NULL, len, req);
    if (!rq) {
        apg_grpc_call_fail(call, APG_GRPC_INVALID_ARGUMENT, "malformed QueryRouteRequest");
        return;
    }
    route_call(call, rq->topic, false, ud);
    apache__rocketmq__v2__query_route_request__free_unpacked(rq, NULL);
}

void apg_remote_assignment(struct apg_grpc_call *call, const uint8_t *req, size_t len, void *ud)
{
    Apache__Rocketmq__V2__QueryAssignmentRequest *rq =
        apache__rocketmq__v2__query_assignment_request__unpack(NULL, len, req);
    if (!rq) {
        apg_grpc_call_fail(call, APG_GRPC_INVALID_ARGUMENT, "malformed QueryAssignmentRequest");
        return;
    }
    route_call(call, rq->topic, true, ud);
    apache__rocketmq__v2__query_assignment_request__free_unpacked(rq, NULL);
}

static const struct apg_grpc_backend remote_backend = {
    .gb_name = "remote",
    .gb_query_route = apg_remote_query_route,
    .gb_heartbeat = apg_remote_heartbeat,
    .gb_notify = apg_remote_notify,
    .gb_send = apg_remote_send,
    .gb_end_txn = apg_remote_end_txn,
    .gb_receive = apg_remote_receive,
    .gb_ack = apg_remote_ack,
    .gb_change = apg_remote_change,
    .gb_forward_dlq = apg_remote_forward_dlq,
    .gb_assignment = apg_remote_assignment,
};

/* ---- start / stop ---- */

/* The host routes name: proxyAddress, else bindAddress when it is one IPv4
 * address, else the first non-loopback IPv4 address, else 127.0.0.1. */
static void advertised_host(const struct apg_config *cfg, char *out, size_t n)
{
    const char *set = apg_cfg_str(cfg, APG_CFG_proxyAddress);
    const char *bind = apg_cfg_str(cfg, APG_CFG_bindAddress);
    uint8_t b4[4];
    if (set && set[0]) {
        snprintf(out, n, "%s", set);
        return;
    }
    if (inet_pton(AF_INET, bind, b4) == 1 && strcmp(bind, "0.0.0.0") != 0) {
        snprintf(out, n, "%s", bind);
        return;
    }
    snprintf(out, n, "127.0.0.1");
    struct ifaddrs *ifs;
    if (getifaddrs(&ifs) != 0)
        return;
    for (struct ifaddrs *i = ifs; i; i = i->ifa_next)
        if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET && !(i->ifa_flags & IFF_LOOPBACK) &&
            (i->ifa_flags & IFF_UP) &&
            inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, out, (socklen_t)n))
            break;
    freeifaddrs(ifs);
}

static apg_err_t ns_parse(struct apg_remote *rm, const char *list, char *err, size_t errlen)
{
    const char *p = list;
    while (*p) {
        const char *e = strchr(p, ';');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n) {
            char **v = apg_realloc(rm->rm_ns, (rm->rm_nns + 1) * sizeof(*v));
            if (!v)
                return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
            rm->rm_ns = v;
            if (!(v[rm->rm_nns] = apg_calloc(1, n + 1)))
                return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
            memcpy(v[rm->rm_nns++], p, n);
        }
        p += n + (e ? 1 : 0);
    }
    if (!rm->rm_nns)
        return apg_errf(APG_ECONFIG, err, errlen,
                        "apogee proxy needs the NameServer: -n host:port or namesrvAddr");
    return APG_OK;
}

/* Stops the heartbeat thread and the remoting client: pending calls end
 * with APG_ESHUTDOWN (their answers are posted to the gRPC loops, still
 * running), later ones fail at once. */
static void remote_stop(struct apg_remote *rm)
{
    apg_remote_txn_stop(rm);
    pthread_rwlock_wrlock(&rm->rm_cli_lock);
    struct apg_net_client *cli = rm->rm_cli;
    rm->rm_cli = NULL;
    pthread_rwlock_unlock(&rm->rm_cli_lock);
    if (cli)
        apg_net_client_stop(cli);
}

static void proxy_free(struct apg_proxy *px)
{
    remote_stop(&px->px_rm);
    apg_remote_routes_free(&px->px_rm);
    for (size_t i = 0; i < px->px_rm.rm_nns; i++)
        apg_free(px->px_rm.rm_ns[i]);
    apg_free(px->px_rm.rm_ns);
    pthread_mutex_destroy(&px->px_rm.rm_lock);
    pthread_rwlock_destroy(&px->px_rm.rm_cli_lock);
    apg_grpc_clients_free(px->px_ms.gm_clients);
    apg_acl_free(px->px_rm.rm_acl);
    memset(&px->px_rm.rm_sk, 0, sizeof px->px_rm.rm_sk);
    apg_free(px);
}

/* The ACL clients are checked with (aclEnable=true: aclFile, default
 * ./conf/plain_acl.yml) and the account requests to brokers and NameServers
 * are signed with (innerClientAuthenticationCredentials). */
static apg_err_t proxy_acl_open(const struct apg_config *cfg, struct apg_remote *rm, char *err,
                                size_t errlen)
{
    char sk[256];
    apg_err_t e =
        apg_acl_credentials_parse(apg_cfg_str(cfg, APG_CFG_innerClientAuthenticationCredentials),
                                  rm->rm_ak, sizeof rm->rm_ak, sk, sizeof sk, err, errlen);
    if (!e && rm->rm_ak[0])
        apg_hmac_sha1_key(&rm->rm_sk, sk, strlen(sk));
    memset(sk, 0, sizeof sk);
    if (e)
        return e;
    if (apg_cfg_bool(cfg, APG_CFG_aclEnable) && !rm->rm_ak[0])
        apg_log_warn("proxy",
                     "aclEnable=true but innerClientAuthenticationCredentials is empty: brokers "
                     "with aclEnable=true refuse the proxy's unsigned requests; set it to "
                     "{\"accessKey\":\"...\",\"secretKey\":\"...\"} of an account the "
                     "brokers' plain_acl.yml knows");
    return apg_acl_open_config(cfg, ".", APG_ACL_TABLE_BROKER, &rm->rm_acl, err, errlen);
}

apg_err_t apg_proxy_start(const struct apg_config *cfg, struct apg_proxy **out, char *err,
                          size_t errlen)
{
    *out = NULL;
    int port = (int)apg_cfg_int(cfg, APG_CFG_grpcServerPort);
    if (port == 0)
        return apg_errf(APG_ECONFIG, err, errlen, "apogee proxy needs grpcServerPort > 0");
    struct apg_proxy *px = apg_calloc(1, sizeof(*px));
    if (!px)
        return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    pthread_mutex_init(&px->px_rm.rm_lock, NULL);
    pthread_rwlock_init(&px->px_rm.rm_cli_lock, NULL);
    apg_err_t e = ns_parse(&px->px_rm, apg_cfg_str(cfg, APG_CFG_namesrvAddr), err, errlen);
    if (!e && apg_grpc_clients_new(&px->px_ms.gm_clients))
        e = apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    if (!e)
        e = proxy_acl_open(cfg, &px->px_rm, err, errlen);
    if (e) {
        proxy_free(px);
        return e;
    }
    struct apg_grpc_messaging *ms = &px->px_ms;
    ms->gm_backend = &remote_backend;
    ms->gm_remote = &px->px_rm;
    ms->gm_acl = px->px_rm.rm_acl;
    struct apg_net_client_opts co = {
        .name = "proxy-remoting", .on_request = apg_remote_on_request, .ud = ms};
    if ((e = apg_net_client_start(&co, &px->px_rm.rm_cli, err, errlen)) ||
        (e = apg_remote_txn_start(&px->px_rm, err, errlen))) {
        proxy_free(px);
        return e;
    }
    ms->gm_max_body = apg_cfg_int(cfg, APG_CFG_maxMessageSize);
    ms->gm_port = port;
    advertised_host(cfg, ms->gm_host, sizeof ms->gm_host);
    struct apg_grpc_server_opts o = {
        .name = "grpc-proxy",
        .host = apg_cfg_str(cfg, APG_CFG_bindAddress),
        .port = port,
        .n_loops = 1,
        .limits = apg_net_limits_from_cfg(cfg),
        .methods = apg_grpc_messaging_methods,
        .n_methods = apg_grpc_messaging_n_methods,
        .tls_cfg = cfg,
        .ud = ms,
    };
    if ((e = apg_grpc_server_start(&o, &px->px_srv, err, errlen))) {
        proxy_free(px);
        return e;
    }
    apg_log_info("proxy", "gRPC proxy on %s:%d (routes name %s:%d) in front of NameServer %s",
                 o.host, apg_grpc_server_port(px->px_srv), ms->gm_host, port,
                 apg_cfg_str(cfg, APG_CFG_namesrvAddr));
    *out = px;
    return APG_OK;
}

void apg_proxy_stop(struct apg_proxy *px)
{
    if (!px)
        return;
    /* The brokers first: every answer still due reaches a running gRPC
     * loop (a call already gone drops it). */
    remote_stop(&px->px_rm);
    apg_grpc_server_stop(px->px_srv);
    proxy_free(px);
}

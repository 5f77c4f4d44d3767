/* Private declarations of the remote backend (src/proxy/remote): the
 * MessagingService methods forwarded over remoting to the brokers.
 *
 * Threads. The methods run on the gRPC loop thread and never wait: they
 * take a reference to the call (apg_grpc_call_ref), ask for the topic's
 * route (answered at once from the cache, or later on the remoting
 * client's loop thread after a NameServer round trip) and send the broker
 * request with apg_net_client_call. The broker's answer arrives on the
 * client's loop thread, which builds the gRPC answer and posts it to the
 * call's loop (apg_remote_reply and friends). The route cache and the
 * broker-name table are shared under rm_lock. */
#ifndef APG_PROXY_REMOTE_INT_H
#define APG_PROXY_REMOTE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "common/buf.h"
#include "common/sha1.h"
#include "net/net.h"
#include "protocol/route_json.h"
#include "proxy/grpc/grpc_server.h"
#include "proxy/grpc/messaging.h"

#define APG_REMOTE_ROUTE_TTL_MS 30000 /* a cached route is asked for again after this */
#define APG_REMOTE_TIMEOUT_MS 5000    /* broker and NameServer requests */

/* A topic's route as the NameServer last answered it; shared, counted. */
struct apg_remote_route {
    atomic_int rr_refs;
    char *rr_topic;
    int64_t rr_at; /* wall ms fetched */
    struct apg_route_data rr_rd;
    struct apg_remote_route *rr_next; /* in the cache */
};

struct apg_remote_broker {
    char rb_name[128];
    char rb_addr[128];
};

struct apg_remote {
    /* NULL once the proxy stops: taken under rm_cli_lock (read) by every
     * call, set NULL under it (write) before the client is stopped, so no
     * call reaches a freed client and every answer is in before the gRPC
     * server goes. */
    struct apg_net_client *rm_cli;
    pthread_rwlock_t rm_cli_lock;
    char **rm_ns; /* NameServer addresses */
    size_t rm_nns;
    atomic_uint rm_ns_cur; /* the one asked first */
    atomic_uint rm_rr;     /* round robin over queues and brokers */
    pthread_mutex_t rm_lock;
    struct apg_remote_route *rm_routes;
    struct apg_remote_broker *rm_brokers; /* every broker name seen in a route */
    size_t rm_nbrokers, rm_capbrokers;
    /* The heartbeat thread (remote_txn.c). */
    char rm_client_id[128];
    pthread_t rm_hb_thread;
    pthread_mutex_t rm_hb_lock;
    pthread_cond_t rm_hb_cond;
    bool rm_hb_stop, rm_hb_kick, rm_hb_running;
    /* The proxy's own account (innerClientAuthenticationCredentials):
     * when rm_ak is set every request apg_remote_call sends carries
     * AccessKey and Signature. Set before the client starts, then read
     * only. */
    char rm_ak[256];
    struct apg_hmac_key rm_sk;
    /* The ACL the proxy checks clients with (aclEnable=true), reloaded by
     * the heartbeat thread when its file changes; NULL when off. */
    struct apg_acl *rm_acl;
};

/* ---- routes (remote_route.c) ---- */

/* code is APG_OK with rt (a reference the callee releases) or an error with
 * why ("topic X does not exist", "no NameServer answers"); APG_ENOTFOUND
 * for a topic the NameServer does not know. Runs on the calling thread when
 * the route is cached, else on the client's loop thread. */
typedef void (*apg_remote_route_fn)(struct apg_remote *rm, struct apg_remote_route *rt,
                                    apg_err_t code, const char *why, void *arg);
void apg_remote_route_get(struct apg_remote *rm, const char *topic, apg_remote_route_fn fn,
                          void *arg);
void apg_remote_route_release(struct apg_remote_route *rt);
/* The master address of broker in rt, or NULL. */
const char *apg_remote_route_master(const struct apg_remote_route *rt, const char *broker);
/* The master address of broker from any route seen, into out; false when
 * no route ever named it. */
bool apg_remote_broker_addr(struct apg_remote *rm, const char *broker, char *out, size_t n);
void apg_remote_routes_free(struct apg_remote *rm);

/* ---- transaction check-back (remote_txn.c) ---- */

/* Starts / stops the heartbeat thread that registers the proxy with every
 * known broker as a producer of APG_GRPC_TXN_GROUP. */
apg_err_t apg_remote_txn_start(struct apg_remote *rm, char *err, size_t errlen);
void apg_remote_txn_stop(struct apg_remote *rm);
/* Heartbeats now (a broker was seen for the first time). Any thread. */
void apg_remote_heartbeat_kick(struct apg_remote *rm);
/* The remoting client's on_request (ud: the messaging): a broker's
 * CHECK_TRANSACTION_STATE becomes a RecoverOrphanedTransactionCommand. */
void apg_remote_on_request(struct apg_conn *c, const struct apg_rcmd *req, void *ud);

/* ---- answers (remote.c): any thread; each takes over ref ---- */

/* Packs m and posts it as the unary call's answer. */
void apg_remote_reply(struct apg_grpc_ref *ref, const ProtobufCMessage *m);
/* Posts the frames (u32 length + message, as apg_grpc_consume_receive
 * builds them; *frames is taken) and ends the stream OK. */
void apg_remote_frames(struct apg_grpc_ref *ref, struct apg_buf *frames);
/* Posts a response of type d with only a status (apg_grpc_status_only). */
void apg_remote_status(struct apg_grpc_ref *ref, const ProtobufCMessageDescriptor *d, int code,
                       const char *msg);
/* Posts a non-OK gRPC status. */
void apg_remote_fail(struct apg_grpc_ref *ref, enum apg_grpc_status st, const char *msg);

/* apg_net_client_call (cb NULL: oneway) on the proxy's client, signed with
 * the proxy's account when it has one; APG_ESHUTDOWN once it stops (then cb
 * never runs). Any thread. */
apg_err_t apg_remote_call(struct apg_remote *rm, const char *addr, const struct apg_rcmd *req,
                          const uint8_t *body, uint32_t len, uint32_t timeout_ms,
                          apg_net_resp_cb cb, void *ud);
/* A remoting request with the proxy's defaults (binary header). */
void apg_remote_request(struct apg_rcmd *req, int32_t code);
/* The broker's remark or a fallback, for a Status message. */
const char *apg_remote_remark(const struct apg_rcmd *resp, const char *dflt);

/* ---- methods (ud: the struct apg_grpc_messaging whose gm_remote is rm) ---- */

void apg_remote_query_route(struct apg_grpc_call *call, const uint8_t *req, size_t len, void *ud);
void apg_remote_assignment(struct apg_grpc_call *call, const uint8_t *req, size_t len, void *ud);
void apg_remote_send(struct apg_grpc_call *call, const uint8_t *req, size_t len, void *ud);
void apg_remote_end_txn(struct apg_grpc_call *call, const uint8_t *req, size_t len, void *ud);
void apg_remote_receive(struct apg_grpc_call *call, const uint8_t *req, size_t len, void *ud);
void apg_remote_ack(struct apg_grpc_call *call, const uint8_t *req, size_t len, void *ud);
void apg_remote_change(struct apg_grpc_call *call, const uint8_t *req, size_t len, void *ud);
/* Heartbeat and NotifyClientTermination: answered as the in-broker port
 * does, and forwarded to the brokers as HEART_BEAT / UNREGISTER_CLIENT on
 * the client's behalf (remote_client.c). */
void apg_remote_heartbeat(struct apg_grpc_call *call, const uint8_t *req, size_t len, void *ud);
void apg_remote_notify(struct apg_grpc_call *call, const uint8_t *req, size_t len, void *ud);
void apg_remote_forward_dlq(struct apg_grpc_call *call, const uint8_t *req, size_t len, void *ud);

#endif

/* Transaction check-back through the proxy: the proxy registers with every
 * broker it has seen in a route as a producer of APG_GRPC_TXN_GROUP (the
 * PGROUP of every half message a 5.x producer sends through it), so a
 * broker whose half message waits too long sends CHECK_TRANSACTION_STATE
 * to the proxy; the proxy turns that into a Telemetry
 * RecoverOrphanedTransactionCommand to a producer that declared the topic
 * (as the in-broker port does), and the producer's EndTransaction comes
 * back through apg_remote_end_txn.
 *
 * Design. A heartbeat thread sends HEART_BEAT (a HeartbeatData with that
 * producer group and no consumers) to each known broker every
 * HB_INTERVAL_MS; the broker keeps the proxy's connection as the group's
 * client. The check carries the half message (the stored record, real
 * topic restored), tranStateTableOffset and offsetMsgId; the transaction id
 * handed to the producer is "offsetMsgId tranStateTableOffset brokerName"
 * like a send's, the broker named by the connection's address. The same
 * thread wakes every ACL_RELOAD_MS to re-read the proxy's ACL file when it
 * changed (aclEnable=true).
 *
 * Threads: the heartbeat thread (start/stop on the control thread); the
 * check on the remoting client's loop thread. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "acl/acl.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"
#include "protocol/message.h"
#include "protocol/rcode.h"
#include "protocol/remoting.h"
#include "proxy/grpc/produce.h"
#include "proxy/remote/remote_int.h"

#define HB_INTERVAL_MS 5000
#define ACL_RELOAD_MS 1000 /* the ACL file is looked at this often */

void apg_remote_on_request(struct apg_conn *c, const struct apg_rcmd *req, void *ud)
{
    struct apg_grpc_messaging *ms = ud;
    struct apg_remote *rm = ms->gm_remote;
    if (req->code != APG_REQ_CHECK_TRANSACTION_STATE)
        return;
    const char *oid = apg_rcmd_ext_get(req, "offsetMsgId");
    const char *tso = apg_rcmd_ext_get(req, "tranStateTableOffset");
    const char *peer = apg_conn_peer(c);
    char broker[128] = "";
    pthread_mutex_lock(&rm->rm_lock);
    for (size_t i = 0; i < rm->rm_nbrokers; i++)
        if (peer && strcmp(rm->rm_brokers[i].rb_addr, peer) == 0)
            snprintf(broker, sizeof broker, "%s", rm->rm_brokers[i].rb_name);
    pthread_mutex_unlock(&rm->rm_lock);
    struct apg_msgrec r;
    if (!oid || !tso || !broker[0] || !req->body ||
        apg_msgrec_decode(req->body, req->body_len, false, &r, NULL) != APG_MSGREC_OK) {
        apg_log_warn("proxy", "CHECK_TRANSACTION_STATE from %s not understood (broker %s)",
                     peer ? peer : "?", broker[0] ? broker : "unknown");
        return;
    }
    struct apg_msg_in v = {
        .mi_topic = r.mr_topic,
        .mi_topic_len = r.mr_topic_len,
        .mi_queue_id = r.mr_queue_id,
        .mi_born_ts = r.mr_born_ts,
        .mi_body = r.mr_body,
        .mi_body_len = r.mr_body_len,
        .mi_props = r.mr_props,
        .mi_props_len = r.mr_props_len,
    };
    char txid[400];
    snprintf(txid, sizeof txid, "%s %s %s", oid, tso, broker);
    if (!apg_grpc_txn_recover(ms->gm_clients, &v, txid))
        apg_log_debug("proxy", "transaction check from %s: no producer stream to ask", broker);
}

/* One HEART_BEAT to every broker seen in a route. */
static void heartbeat_all(struct apg_remote *rm)
{
    size_t n = 0;
    char(*addrs)[128] = NULL;
    pthread_mutex_lock(&rm->rm_lock);
    if (rm->rm_nbrokers && (addrs = apg_calloc(rm->rm_nbrokers, sizeof(*addrs))))
        for (; n < rm->rm_nbrokers; n++)
            memcpy(addrs[n], rm->rm_brokers[n].rb_addr, sizeof addrs[n]);
    pthread_mutex_unlock(&rm->rm_lock);
    char body[512];
    int bl = snprintf(body, sizeof body,
                      "{\"clientID\":\"%s\",\"producerDataSet\":[{\"groupName\":\"%s\"}],"
                      "\"consumerDataSet\":[]}",
                      rm->rm_client_id, APG_GRPC_TXN_GROUP);
    for (size_t i = 0; i < n; i++) {
        struct apg_rcmd req;
        apg_remote_request(&req, APG_REQ_HEART_BEAT);
        apg_remote_call(rm, addrs[i], &req, (const uint8_t *)body, (uint32_t)bl, 0, NULL, NULL);
    }
    apg_free(addrs);
}

static void *hb_main(void *arg)
{
    struct apg_remote *rm = arg;
    int64_t next_hb = 0;
    pthread_mutex_lock(&rm->rm_hb_lock);
    while (!rm->rm_hb_stop) {
        bool beat = rm->rm_hb_kick || apg_mono_ms() >= next_hb;
        rm->rm_hb_kick = false;
        pthread_mutex_unlock(&rm->rm_hb_lock);
        if (beat) {
            heartbeat_all(rm);
            next_hb = apg_mono_ms() + HB_INTERVAL_MS;
        }
        if (rm->rm_acl)
            apg_acl_reload(rm->rm_acl);
        pthread_mutex_lock(&rm->rm_hb_lock);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += ACL_RELOAD_MS / 1000;
        while (!rm->rm_hb_stop && !rm->rm_hb_kick &&
               pthread_cond_timedwait(&rm->rm_hb_cond, &rm->rm_hb_lock, &ts) == 0)
            ;
    }
    pthread_mutex_unlock(&rm->rm_hb_lock);
    return NULL;
}

void apg_remote_heartbeat_kick(struct apg_remote *rm)
{
    pthread_mutex_lock(&rm->rm_hb_lock);
    rm->rm_hb_kick = true;
    pthread_cond_signal(&rm->rm_hb_cond);
    pthread_mutex_unlock(&rm->rm_hb_lock);
}

apg_err_t apg_remote_txn_start(struct apg_remote *rm, char *err, size_t errlen)
{
    char host[64] = "proxy";
    gethostname(host, sizeof host - 1);
    snprintf(rm->rm_client_id, sizeof rm->rm_client_id, "%s@proxy#%d", host, (int)getpid());
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&rm->rm_hb_cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&rm->rm_hb_lock, NULL);
    if (pthread_create(&rm->rm_hb_thread, NULL, hb_main, rm)) {
        pthread_cond_destroy(&rm->rm_hb_cond);
        pthread_mutex_destroy(&rm->rm_hb_lock);
        return apg_errf(APG_EIO, err, errlen, "cannot create the heartbeat thread");
    }
    rm->rm_hb_running = true;
    return APG_OK;
}

void apg_remote_txn_stop(struct apg_remote *rm)
{
    if (!rm->rm_hb_running)
        return;
    pthread_mutex_lock(&rm->rm_hb_lock);
    rm->rm_hb_stop = true;
    pthread_cond_signal(&rm->rm_hb_cond);
    pthread_mutex_unlock(&rm->rm_hb_lock);
    pthread_join(rm->rm_hb_thread, NULL);
    pthread_cond_destroy(&rm->rm_hb_cond);
    pthread_mutex_destroy(&rm->rm_hb_lock);
    rm->rm_hb_running = false;
}

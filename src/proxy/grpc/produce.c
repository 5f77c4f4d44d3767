/* MessagingService.SendMessage and EndTransaction, and the check-back of
 * orphaned transactions over Telemetry.
 *
 * Design. A 5.x message becomes the stored record a 4.x send of the same
 * kind makes, so 4.x consumers read it unchanged: TAGS, KEYS (joined with
 * spaces), UNIQ_KEY (the client's message id), TRACE_CONTEXT (the
 * trace_context system property, as RocketMQ 5's proxy stores it; a W3C
 * traceparent for OpenTelemetry clients) and the user properties in
 * the property string, the tag hash in the consume queue, born time from
 * the request and born host from the peer. The broker picks the queue, as
 * RocketMQ's proxy does (the client's queue_id only names the broker it
 * chose; the Node.js SDK always sends queue 0): round robin over the
 * topic's write queues, or for FIFO the Java String hash of the message
 * group (sign bit cleared) modulo the write queues, so a group stays in
 * one queue while the queue count stays. Per kind:
 *   FIFO         message_group is stored as __SHARDINGKEY;
 *   delay/timer  delivery_timestamp becomes TIMER_DELIVER_MS and, when in
 *                the future, the record is parked in rmq_sys_wheel_timer
 *                with TIMER_OUT_MS, REAL_TOPIC and REAL_QID as a remoting
 *                timer send is (src/broker/timer);
 *   transaction  TRAN_MSG=true and PGROUP (APG_GRPC_TXN_GROUP) are added
 *                and the record is stored as a half in
 *                RMQ_SYS_TRANS_HALF_TOPIC (src/broker/txn); the entry's
 *                transaction_id is the half's offset message id (store
 *                host and commit-log offset), which EndTransaction decodes.
 * A GZIP-encoded body is inflated (gzip or zlib framing, at most
 * maxMessageSize) and stored plain, so 4.x and 5.x consumers read it as it
 * was sent. A body digest (CRC32 as hex or decimal text, since SDKs differ;
 * MD5 and SHA1 as hex, any case) is checked against the body as sent; a
 * mismatch is MESSAGE_CORRUPTED.
 *
 * Appends. The checked messages of every SendMessage call of one read of
 * the connection are gathered in the loop's batch and stored with ONE
 * apg_broker_put_notify (one write of their records) when the server's
 * on_read_end runs, or earlier when the batch is full (256 messages or
 * 1 MiB); one message the store refuses is retried alone so it fails no
 * other. Under ASYNC_FLUSH the calls are answered right after that append,
 * still within the read; under SYNC_FLUSH each call is answered from the
 * gRPC loop once the store's group commit covering every message of the
 * request completes (MASTER_PERSISTENCE_TIMEOUT when it is late), so the
 * loop never waits for the disk and no answer precedes the flush. A
 * request's context counts holds (one per message being stored, one while
 * it is prepared or its results are copied); the last release answers.
 * A stream the client resets before its batch was stored is stored but
 * not answered (gm_close forgets the call). EndTransaction runs the same code as the
 * remoting END_TRANSACTION (apg_txn_end_prepare / apg_txn_end_finish) and
 * answers the same way. Its source (client, or a server check) is
 * informational.
 *
 * Check-back. The transaction check thread calls txn_check (registered
 * with apg_txn_set_check_hook while the port is up) for a half that no
 * remoting producer can be asked about; for halves sent over gRPC (PGROUP
 * APG_GRPC_TXN_GROUP) it packs a TelemetryCommand with a
 * RecoverOrphanedTransactionCommand (the check-back copy as a 5.x message,
 * its transaction_id the copy's offset message id) and hands it to a
 * producer's Telemetry stream (telemetry.c).
 *
 * Threads: the gRPC loop thread, except group_acked / end_acked (the
 * store's ack thread: they only count down and post) and txn_check (the check
 * thread). */
#include "proxy/grpc/produce.h"

#include <openssl/evp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "broker/broker_rt.h"
#include "broker/schedule/schedule.h"
#include "broker/timer/timer.h"
#include "broker/txn/txn.h"
#include "common/buf.h"
#include "common/hash.h"
#include "common/mem.h"
#include "protocol/msgid.h"
#include "protocol/props.h"
#include "proxy/grpc/telemetry.h"

#define PERM_WRITE 2
#define MAX_PER_REQUEST 1024

typedef Apache__Rocketmq__V2__Status pb_status;

/* ---- body digests ---- */

bool apg_grpc_digest_hex(int type, const uint8_t *p, size_t n, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    if (type == APACHE__ROCKETMQ__V2__DIGEST_TYPE__CRC32) {
        snprintf(out, cap, "%08X", (unsigned)apg_crc32(p, n));
        return true;
    }
    const EVP_MD *md_type = type == APACHE__ROCKETMQ__V2__DIGEST_TYPE__MD5    ? EVP_md5()
                            : type == APACHE__ROCKETMQ__V2__DIGEST_TYPE__SHA1 ? EVP_sha1()
                                                                              : NULL;
    if (!md_type || !EVP_Digest(p, n, md, &len, md_type, NULL) || cap < 2 * (size_t)len + 1)
        return false;
    for (unsigned i = 0; i < len; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[2 * len] = '\0';
    return true;
}

/* CRC32 checksums are numbers whose text differs between SDKs (Java: hex,
 * Node.js: decimal); either reading that matches is accepted. */
static bool crc_text_is(const char *t, uint32_t crc)
{
    char *end;
    unsigned long hexv = strtoul(t, &end, 16);
    if (*t && !*end && hexv == crc)
        return true;
    unsigned long decv = strtoul(t, &end, 10);
    return *t && !*end && decv == crc;
}

bool apg_grpc_digest_ok(const Apache__Rocketmq__V2__Digest *d, const uint8_t *p, size_t n)
{
    char want[2 * EVP_MAX_MD_SIZE + 1];
    if (!d || d->type == APACHE__ROCKETMQ__V2__DIGEST_TYPE__DIGEST_TYPE_UNSPECIFIED || !d->checksum)
        return true;
    if (d->type == APACHE__ROCKETMQ__V2__DIGEST_TYPE__CRC32)
        return crc_text_is(d->checksum, apg_crc32(p, n));
    if (!apg_grpc_digest_hex((int)d->type, p, n, want, sizeof want))
        return true; /* a type we do not know: nothing to check against */
    return strcasecmp(d->checksum, want) == 0;
}

/* Inflates a GZIP-encoded body (gzip or zlib framing) into out, at most max
 * bytes. */
bool apg_grpc_body_inflate(const uint8_t *p, size_t n, size_t max, struct apg_buf *out)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 32 + MAX_WBITS) != Z_OK)
        return false;
    apg_buf_reset(out);
    zs.next_in = (Bytef *)p;
    zs.avail_in = (uInt)n;
    int rc = Z_OK;
    while (rc == Z_OK) {
        if (apg_buf_reserve(out, 65536)) {
            rc = Z_MEM_ERROR;
            break;
        }
        zs.next_out = out->b_data + out->b_len;
        zs.avail_out = 65536;
        rc = inflate(&zs, Z_NO_FLUSH);
        out->b_len = zs.total_out;
        if (out->b_len > max)
            rc = Z_BUF_ERROR;
    }
    inflateEnd(&zs);
    return rc == Z_STREAM_END;
}

/* ---- SendMessage ---- */

struct send_ctx;

/* One message of a request. */
struct slot {
    struct send_ctx *sl_ctx;
    Apache__Rocketmq__V2__SendResultEntry sl_e;
    pb_status sl_st;
    char sl_why[300];
    char sl_txid[64];
    struct apg_buf sl_props, sl_moved; /* properties; those of a parked or half record */
    struct apg_buf sl_body;            /* an inflated GZIP body */
    struct apg_msg_in sl_in;
    struct apg_put_result sl_res;
    bool sl_ready; /* to be stored */
    bool sl_half;
    apg_err_t sl_rc; /* from the group commit */
};

struct send_ctx {
    struct apg_grpc_messaging *sc_ms;
    Apache__Rocketmq__V2__SendMessageRequest *sc_rq;
    size_t sc_n;
    struct slot *sc_slots;
    struct apg_grpc_call *sc_call; /* NULL once the stream is gone (loop thread) */
    struct apg_grpc_ref sc_ref;    /* SYNC_FLUSH: how the ack thread reaches the call */
    atomic_int sc_left;            /* holds: one per slot being stored, one while the
                                    * request is prepared */
};

static void ctx_free(struct send_ctx *sc)
{
    for (size_t i = 0; i < sc->sc_n; i++) {
        apg_buf_free(&sc->sc_slots[i].sl_props);
        apg_buf_free(&sc->sc_slots[i].sl_moved);
        apg_buf_free(&sc->sc_slots[i].sl_body);
    }
    apg_free(sc->sc_slots);
    apache__rocketmq__v2__send_message_request__free_unpacked(sc->sc_rq, NULL);
    apg_grpc_ref_release(&sc->sc_ref);
    apg_free(sc);
}

/* The property string of m into props, with extra pairs (NULL-terminated
 * name, value list); false when a pair is not allowed or it is too long. */
bool apg_grpc_build_props(const Apache__Rocketmq__V2__Message *m, struct apg_buf *props,
                          const char *const *extra)
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
    for (; extra && extra[0]; extra += 2)
        if (apg_props_append(props, extra[0], extra[1]))
            return false;
    if (apg_props_append(props, "UNIQ_KEY", sp->message_id) ||
        apg_props_append(props, "WAIT", "true"))
        return false;
    return props->b_len <= 32767;
}

/* "a.b.c.d:port" into h; left as it is when the peer is not IPv4. */
static void peer_host(const char *peer, struct apg_host *h)
{
    uint32_t v[5] = {0};
    int k = 0;
    const char *p = peer;
    for (; k < 5; k++, p++) {
        if (*p < '0' || *p > '9')
            return;
        for (; *p >= '0' && *p <= '9'; p++)
            v[k] = v[k] * 10 + (uint32_t)(*p - '0');
        if (*p != (k < 3 ? '.' : k == 3 ? ':' : '\0'))
            return;
    }
    for (int i = 0; i < 4; i++)
        if (v[i] > 255)
            return;
    for (int i = 0; i < 4; i++)
        h->h_ip[i] = (uint8_t)v[i];
    h->h_port = v[4];
}

#define REFUSE(code, ...)                                                                          \
    do {                                                                                           \
        snprintf(s->sl_why, sizeof s->sl_why, __VA_ARGS__);                                        \
        apg_grpc_status_set(&s->sl_st, APACHE__ROCKETMQ__V2__CODE__##code, s->sl_why);             \
        return;                                                                                    \
    } while (0)

/* Checks and rewrites one message into s->sl_in (sl_ready), or sets its
 * refusal status. */
static void send_prepare(struct send_ctx *sc, struct apg_grpc_call *call,
                         const Apache__Rocketmq__V2__Message *m, struct slot *s)
{
    struct apg_broker *b = sc->sc_ms->gm_broker;
    const Apache__Rocketmq__V2__SystemProperties *sp = m->system_properties;
    const char *topic;
    s->sl_e.status = &s->sl_st;
    if (!apg_grpc_resource_name(m->topic, &topic))
        REFUSE(ILLEGAL_TOPIC, "topic name is empty");
    if (!sp || !sp->message_id || !sp->message_id[0])
        REFUSE(ILLEGAL_MESSAGE_ID, "message id is missing");
    s->sl_e.message_id = sp->message_id;
    struct apg_topic_cfg tc;
    if (!apg_topics_get(b->br_topics, topic, &tc))
        REFUSE(TOPIC_NOT_FOUND, "topic %s does not exist on broker %s", topic, b->br_name);
    if (!(tc.tc_perm & PERM_WRITE) || tc.tc_write_queues < 1)
        REFUSE(FORBIDDEN, "topic %s is not writable", topic);
    int64_t max_body = apg_cfg_int(b->br_cfg, APG_CFG_maxMessageSize);
    if ((int64_t)m->body.len > max_body)
        REFUSE(MESSAGE_BODY_TOO_LARGE, "body of %zu bytes is over maxMessageSize (%lld)",
               m->body.len, (long long)max_body);
    const uint8_t *body = m->body.data;
    size_t body_len = m->body.len;
    if (sp->body_encoding == APACHE__ROCKETMQ__V2__ENCODING__GZIP) {
        /* Stored inflated, so every consumer reads it as sent. */
        if (!apg_grpc_body_inflate(body, body_len, (size_t)max_body, &s->sl_body))
            REFUSE(MESSAGE_CORRUPTED, "GZIP body does not inflate to at most maxMessageSize");
        body = s->sl_body.b_data;
        body_len = s->sl_body.b_len;
    }
    if (!apg_grpc_digest_ok(sp->body_digest, m->body.data, m->body.len))
        REFUSE(MESSAGE_CORRUPTED, "body does not match its %s digest",
               protobuf_c_enum_descriptor_get_value(&apache__rocketmq__v2__digest_type__descriptor,
                                                    (int)sp->body_digest->type)
                   ->name);
    Apache__Rocketmq__V2__MessageType type = sp->message_type;
    bool fifo = sp->message_group && sp->message_group[0];
    if (type == APACHE__ROCKETMQ__V2__MESSAGE_TYPE__FIFO && !fifo)
        REFUSE(ILLEGAL_MESSAGE_GROUP, "a FIFO message needs a message group");
    if (type == APACHE__ROCKETMQ__V2__MESSAGE_TYPE__DELAY && !sp->delivery_timestamp)
        REFUSE(ILLEGAL_DELIVERY_TIME, "a delay message needs a delivery timestamp");
    bool half = type == APACHE__ROCKETMQ__V2__MESSAGE_TYPE__TRANSACTION;
    if (half && (fifo || sp->delivery_timestamp))
        REFUSE(MESSAGE_PROPERTY_CONFLICT_WITH_TYPE,
               "a transactional message has no message group and no delivery timestamp");
    if (type == APACHE__ROCKETMQ__V2__MESSAGE_TYPE__LITE ||
        type == APACHE__ROCKETMQ__V2__MESSAGE_TYPE__PRIORITY)
        REFUSE(UNSUPPORTED, "lite and priority messages are not served");

    /* The deliver time of a delay message: 0 when it is due already. */
    int64_t due = 0;
    char due_s[24] = "";
    if (sp->delivery_timestamp) {
        int64_t at =
            sp->delivery_timestamp->seconds * 1000 + sp->delivery_timestamp->nanos / 1000000;
        snprintf(due_s, sizeof due_s, "%lld", (long long)(at > 0 ? at : 0));
        char err[256];
        if (!b->br_timer)
            REFUSE(UNSUPPORTED, "timer messages are not available on this broker");
        if (apg_timer_due(b->br_timer, APG_TIMER_DELIVER_MS, due_s, strlen(due_s), apg_wall_ms(),
                          &due, err, sizeof err))
            REFUSE(ILLEGAL_DELIVERY_TIME, "%s", err);
    }
    const char *extra[11];
    int ne = 0;
    if (sp->trace_context && sp->trace_context[0]) { /* RocketMQ 5's proxy: TRACE_CONTEXT */
        extra[ne++] = "TRACE_CONTEXT";
        extra[ne++] = sp->trace_context;
    }
    if (fifo) {
        extra[ne++] = "__SHARDINGKEY";
        extra[ne++] = sp->message_group;
    }
    if (due_s[0]) {
        extra[ne++] = "TIMER_DELIVER_MS";
        extra[ne++] = due_s;
    }
    if (half) {
        extra[ne++] = "TRAN_MSG";
        extra[ne++] = "true";
        extra[ne++] = "PGROUP";
        extra[ne++] = APG_GRPC_TXN_GROUP;
    }
    extra[ne] = NULL;
    if (!apg_grpc_build_props(m, &s->sl_props, extra))
        REFUSE(MESSAGE_PROPERTIES_TOO_LARGE,
               "message properties are too large or contain reserved characters");

    struct apg_msg_in *in = &s->sl_in;
    memset(in, 0, sizeof(*in));
    /* The server picks the queue (the client's queue_id names its broker
     * only): a message group always maps to the same one. */
    int32_t qid = fifo ? (int32_t)((apg_java_hash(sp->message_group, strlen(sp->message_group)) &
                                    0x7fffffffu) %
                                   (uint32_t)tc.tc_write_queues)
                       : apg_broker_put_queue(b, &tc, -1);
    in->mi_topic = topic;
    in->mi_topic_len = strlen(topic);
    in->mi_queue_id = qid;
    in->mi_born_ts = sp->born_timestamp
                         ? sp->born_timestamp->seconds * 1000 + sp->born_timestamp->nanos / 1000000
                         : apg_wall_ms();
    in->mi_born_host.h_ip[0] = 127; /* overwritten below from the peer when it parses */
    in->mi_born_host.h_ip[3] = 1;
    peer_host(apg_grpc_call_peer(call), &in->mi_born_host);
    in->mi_body = body;
    in->mi_body_len = body_len;
    in->mi_props = (const char *)s->sl_props.b_data;
    in->mi_props_len = s->sl_props.b_len;
    in->mi_tags_code = sp->tag && sp->tag[0] ? apg_java_hash(sp->tag, strlen(sp->tag)) : 0;

    apg_err_t e = APG_OK;
    if (due > 0) {
        e = apg_schedule_props_with(&s->sl_moved, in->mi_props, in->mi_props_len, "TIMER_OUT_MS",
                                    due_s, topic, qid);
        in->mi_topic = APG_TIMER_TOPIC;
        in->mi_topic_len = APG_TIMER_TOPIC_LEN;
    } else if (half) {
        e = apg_txn_half_props(&s->sl_moved, in->mi_props, in->mi_props_len, topic, qid);
        in->mi_topic = APG_TXN_HALF_TOPIC;
        in->mi_topic_len = sizeof(APG_TXN_HALF_TOPIC) - 1;
        in->mi_queue_id = 0;
        s->sl_half = true;
    }
    if (e)
        REFUSE(MESSAGE_PROPERTIES_TOO_LARGE, "message properties are too large");
    if (due > 0 || half) {
        in->mi_props = (const char *)s->sl_moved.b_data;
        in->mi_props_len = s->sl_moved.b_len;
        if (due > 0)
            in->mi_queue_id = apg_timer_park_qid(in->mi_props, in->mi_props_len);
    }
    s->sl_ready = true;
}

/* The response from the slots' outcomes; frees sc. Loop thread. */
static void send_answer(struct apg_grpc_call *call, struct send_ctx *sc)
{
    if (call)
        apg_grpc_call_set_user(call, NULL);
    struct apg_broker *b = sc->sc_ms->gm_broker;
    Apache__Rocketmq__V2__SendMessageResponse resp =
        APACHE__ROCKETMQ__V2__SEND_MESSAGE_RESPONSE__INIT;
    pb_status top;
    Apache__Rocketmq__V2__SendResultEntry **ep = apg_calloc(sc->sc_n, sizeof(*ep));
    size_t ok = 0;
    for (size_t i = 0; i < sc->sc_n && ep; i++) {
        struct slot *s = &sc->sc_slots[i];
        if (s->sl_ready) {
            if (s->sl_rc == APG_OK) {
                apg_grpc_status_set(&s->sl_st, APACHE__ROCKETMQ__V2__CODE__OK, "OK");
                s->sl_e.offset = s->sl_res.pr_queue_offset;
                if (s->sl_half) {
                    apg_msgid_encode(&b->br_store_host, s->sl_res.pr_phys_offset, s->sl_txid,
                                     sizeof s->sl_txid);
                    s->sl_e.transaction_id = s->sl_txid;
                }
            } else if (s->sl_rc == APG_ENOSLAVE) {
                apg_grpc_status_set(&s->sl_st, APACHE__ROCKETMQ__V2__CODE__HA_NOT_AVAILABLE,
                                    "stored on the master, but no slave is in sync "
                                    "(SYNC_MASTER)");
            } else if (s->sl_rc == APG_ESLAVETIMEOUT) {
                apg_grpc_status_set(&s->sl_st,
                                    APACHE__ROCKETMQ__V2__CODE__SLAVE_PERSISTENCE_TIMEOUT,
                                    "stored on the master, but no slave acknowledged it within "
                                    "syncFlushTimeout (SYNC_MASTER)");
            } else if (s->sl_rc == APG_ETIMEDOUT) {
                apg_grpc_status_set(&s->sl_st,
                                    APACHE__ROCKETMQ__V2__CODE__MASTER_PERSISTENCE_TIMEOUT,
                                    "stored, but the disk flush did not finish within "
                                    "syncFlushTimeout");
            } else {
                apg_grpc_status_set(&s->sl_st, APACHE__ROCKETMQ__V2__CODE__INTERNAL_SERVER_ERROR,
                                    "the store failed to make the message durable");
            }
        }
        ok += s->sl_st.code == APACHE__ROCKETMQ__V2__CODE__OK;
        ep[i] = &s->sl_e;
    }
    if (!ep) {
        if (call)
            apg_grpc_call_fail(call, APG_GRPC_RESOURCE_EXHAUSTED, "out of memory");
        ctx_free(sc);
        return;
    }
    /* One result: its status is the response's; several: MULTIPLE_RESULTS
     * unless all succeeded. */
    if (ok == sc->sc_n)
        apg_grpc_status_set(&top, APACHE__ROCKETMQ__V2__CODE__OK, "OK");
    else if (sc->sc_n == 1)
        top = sc->sc_slots[0].sl_st;
    else
        apg_grpc_status_set(&top, APACHE__ROCKETMQ__V2__CODE__MULTIPLE_RESULTS, "see the entries");
    resp.status = &top;
    resp.n_entries = sc->sc_n;
    resp.entries = ep;
    if (call && !apg_grpc_call_done(call))
        apg_grpc_answer(call, &resp.base);
    apg_free(ep);
    ctx_free(sc);
}

static void send_on_loop(struct apg_grpc_call *call, void *arg)
{
    send_answer(call, arg);
}

/* Drops one hold on sc; the last answers the request: on the loop at once,
 * from the store's ack thread through a post to the loop. */
static void ctx_release(struct send_ctx *sc, bool on_loop)
{
    if (atomic_fetch_sub(&sc->sc_left, 1) != 1)
        return;
    if (on_loop)
        send_answer(sc->sc_call, sc);
    else if (apg_grpc_ref_post(&sc->sc_ref, send_on_loop, sc) != APG_OK)
        ctx_free(sc); /* shutting down: nobody to answer */
}

/* ---- the appends of one read ---- */

#define BATCH_MAX 256
#define BATCH_BYTES (1u << 20)

/* Per loop: the ready messages of the SendMessage calls of one read. */
struct apg_grpc_send_batch {
    int sb_n;
    size_t sb_bytes;
    struct slot *sb_slots[BATCH_MAX];
    struct apg_msg_in sb_msgs[BATCH_MAX];
    struct apg_put_result sb_res[BATCH_MAX];
};

/* The slots of one append waiting for the SYNC_FLUSH group commit. */
struct send_group {
    int sg_n;
    struct slot *sg_slots[];
};

/* Store ack thread: the group commit covering an append finished. */
static void group_acked(void *arg, apg_err_t rc)
{
    struct send_group *g = arg;
    for (int i = 0; i < g->sg_n; i++) {
        struct slot *s = g->sg_slots[i];
        s->sl_rc = rc;
        ctx_release(s->sl_ctx, false);
    }
    apg_free(g);
}

static void slot_refused(struct slot *s, const char *err)
{
    s->sl_ready = false;
    snprintf(s->sl_why, sizeof s->sl_why, "store refused the message: %s", err);
    apg_grpc_status_set(&s->sl_st, APACHE__ROCKETMQ__V2__CODE__INTERNAL_SERVER_ERROR, s->sl_why);
}

/* Stores batch slots [i0, i0 + k) with one append. Each slot's context has
 * a hold for the slot (released when its outcome is known) and one for
 * this function (released at its end), so no context is answered before
 * its results are copied. */
static apg_err_t batch_put(struct apg_broker *b, struct apg_grpc_send_batch *sb, int i0, int k,
                           char *err, size_t errlen)
{
    struct send_group *g = NULL;
    if (b->br_sync_flush) {
        g = apg_malloc(sizeof(*g) + (size_t)k * sizeof(g->sg_slots[0]));
        if (!g) {
            snprintf(err, errlen, "out of memory");
            return APG_ENOMEM;
        }
        g->sg_n = k;
        memcpy(g->sg_slots, &sb->sb_slots[i0], (size_t)k * sizeof(g->sg_slots[0]));
    }
    for (int i = i0; i < i0 + k; i++)
        atomic_fetch_add(&sb->sb_slots[i]->sl_ctx->sc_left, 1);
    bool pending = false;
    apg_err_t e = apg_broker_put_notify(b, &sb->sb_msgs[i0], k, &sb->sb_res[i0], group_acked, g,
                                        &pending, err, errlen);
    if (!pending)
        apg_free(g);
    for (int i = i0; i < i0 + k; i++) {
        struct slot *s = sb->sb_slots[i];
        struct send_ctx *sc = s->sl_ctx;
        /* On error the slot's hold stays: the caller decides. */
        if (!e) {
            s->sl_res = sb->sb_res[i];
            if (!pending) {
                s->sl_rc = APG_OK;
                ctx_release(sc, true);
            }
        }
        ctx_release(sc, true);
    }
    return e;
}

static void batch_flush(struct apg_grpc_messaging *ms, struct apg_grpc_send_batch *sb)
{
    int n = sb->sb_n;
    if (n == 0)
        return;
    sb->sb_n = 0;
    sb->sb_bytes = 0;
    struct apg_broker *b = ms->gm_broker;
    for (int i = 0; i < n; i++)
        sb->sb_msgs[i] = sb->sb_slots[i]->sl_in;
    char err[256] = "";
    apg_err_t e = batch_put(b, sb, 0, n, err, sizeof err);
    if (!e)
        return;
    /* One message the store refuses must not fail the others. */
    bool alone = n > 1 && (e == APG_EINVAL || e == APG_ETOOBIG);
    for (int i = 0; i < n; i++) {
        struct slot *s = sb->sb_slots[i];
        if (alone) {
            err[0] = '\0';
            if (batch_put(b, sb, i, 1, err, sizeof err) == APG_OK)
                continue;
        }
        slot_refused(s, err);
        ctx_release(s->sl_ctx, true);
    }
}

void apg_grpc_produce_read_end(int loop, void *ud)
{
    struct apg_grpc_messaging *ms = ud;
    if (loop >= 0 && loop < APG_GRPC_BATCH_LOOPS && ms->gm_batch[loop])
        batch_flush(ms, ms->gm_batch[loop]);
}

/* Queues a ready slot for the append at the end of the read (the batch is
 * stored first when it is full); false when the loop has no batch. */
static bool batch_add(struct apg_grpc_messaging *ms, int loop, struct slot *s)
{
    if (loop < 0 || loop >= APG_GRPC_BATCH_LOOPS)
        return false;
    struct apg_grpc_send_batch *sb = ms->gm_batch[loop];
    if (!sb && !(sb = ms->gm_batch[loop] = apg_calloc(1, sizeof(*sb))))
        return false;
    if (sb->sb_n == BATCH_MAX || (sb->sb_n && sb->sb_bytes + s->sl_in.mi_body_len > BATCH_BYTES))
        batch_flush(ms, sb);
    sb->sb_slots[sb->sb_n++] = s;
    sb->sb_bytes += s->sl_in.mi_body_len;
    return true;
}

void apg_grpc_send_close(struct apg_grpc_call *call, void *ud)
{
    (void)ud;
    struct send_ctx *sc = apg_grpc_call_user(call);
    if (sc)
        sc->sc_call = NULL;
}

Apache__Rocketmq__V2__SendMessageRequest *apg_grpc_send_unpack(struct apg_grpc_call *call,
                                                               const uint8_t *req, size_t len)
{
    Apache__Rocketmq__V2__SendMessageRequest *rq =
        apache__rocketmq__v2__send_message_request__unpack(NULL, len, req);
    if (!rq) {
        apg_grpc_call_fail(call, APG_GRPC_INVALID_ARGUMENT, "malformed SendMessageRequest");
        return NULL;
    }
    if (rq->n_messages == 0 || rq->n_messages > MAX_PER_REQUEST) {
        apg_grpc_answer_status(call, &apache__rocketmq__v2__send_message_response__descriptor,
                               APACHE__ROCKETMQ__V2__CODE__BAD_REQUEST,
                               "1 to 1024 messages per request");
        apache__rocketmq__v2__send_message_request__free_unpacked(rq, NULL);
        return NULL;
    }
    return rq;
}

void apg_grpc_send_message(struct apg_grpc_call *call, const uint8_t *req, size_t len, void *ud)
{
    struct apg_grpc_messaging *ms = ud;
    struct apg_broker *b = ms->gm_broker;
    Apache__Rocketmq__V2__SendMessageRequest *rq = apg_grpc_send_unpack(call, req, len);
    if (!rq)
        return;
    struct send_ctx *sc = apg_calloc(1, sizeof(*sc));
    struct slot *slots = sc ? apg_calloc(rq->n_messages, sizeof(*slots)) : NULL;
    if (!slots) {
        apg_free(sc);
        apache__rocketmq__v2__send_message_request__free_unpacked(rq, NULL);
        apg_grpc_call_fail(call, APG_GRPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    sc->sc_ms = ms;
    sc->sc_rq = rq;
    sc->sc_n = rq->n_messages;
    sc->sc_slots = slots;
    sc->sc_call = call;
    atomic_init(&sc->sc_left, 1);
    apg_grpc_call_set_user(call, sc);
    int loop = apg_grpc_call_loop(call);
    bool held = false;
    for (size_t i = 0; i < sc->sc_n; i++) {
        struct slot *s = &slots[i];
        s->sl_ctx = sc;
        apache__rocketmq__v2__send_result_entry__init(&s->sl_e);
        send_prepare(sc, call, rq->messages[i], s);
        if (!s->sl_ready)
            continue;
        if (!held) {
            /* Under SYNC_FLUSH the group commit's acknowledgement posts
             * to the loop through the reference; otherwise the answer
             * comes at the end of this read. */
            if (b->br_sync_flush)
                apg_grpc_call_ref(call, &sc->sc_ref);
            else
                apg_grpc_call_hold(call);
            held = true;
        }
        atomic_fetch_add(&sc->sc_left, 1);
        if (batch_add(ms, loop, s))
            continue;
        /* No batch for this loop: stored alone, now. */
        struct apg_grpc_send_batch one;
        one.sb_n = 1;
        one.sb_slots[0] = s;
        one.sb_msgs[0] = s->sl_in;
        char err[256] = "";
        if (batch_put(b, &one, 0, 1, err, sizeof err)) {
            slot_refused(s, err);
            ctx_release(sc, true);
        }
    }
    ctx_release(sc, true); /* nothing (left) to wait for: answered now */
}

void apg_grpc_produce_free(struct apg_grpc_messaging *ms)
{
    for (int i = 0; i < APG_GRPC_BATCH_LOOPS; i++) {
        apg_free(ms->gm_batch[i]);
        ms->gm_batch[i] = NULL;
    }
}

/* ---- EndTransaction ---- */

struct end_ctx {
    struct apg_grpc_messaging *ec_ms;
    struct apg_txn_end *ec_te;
    struct apg_grpc_ref ec_ref;
    apg_err_t ec_rc;
    int64_t ec_op_qoff;
};

static void end_answer(struct apg_grpc_call *call, Apache__Rocketmq__V2__Code code, const char *msg)
{
    Apache__Rocketmq__V2__EndTransactionResponse resp =
        APACHE__ROCKETMQ__V2__END_TRANSACTION_RESPONSE__INIT;
    pb_status st;
    apg_grpc_status_set(&st, code, msg);
    resp.status = &st;
    if (call && !apg_grpc_call_done(call))
        apg_grpc_answer(call, &resp.base);
}

static void end_on_loop(struct apg_grpc_call *call, void *arg)
{
    struct end_ctx *ec = arg;
    apg_txn_end_finish(ec->ec_ms->gm_broker, ec->ec_te, ec->ec_rc, ec->ec_op_qoff);
    if (ec->ec_rc == APG_OK || ec->ec_rc == APG_ENOSLAVE || ec->ec_rc == APG_ESLAVETIMEOUT)
        end_answer(call, APACHE__ROCKETMQ__V2__CODE__OK, "OK");
    else if (ec->ec_rc == APG_ETIMEDOUT)
        end_answer(call, APACHE__ROCKETMQ__V2__CODE__MASTER_PERSISTENCE_TIMEOUT,
                   "stored, but the disk flush did not finish within syncFlushTimeout");
    else
        end_answer(call, APACHE__ROCKETMQ__V2__CODE__INTERNAL_SERVER_ERROR,
                   "the store failed to make the transaction's end durable");
    apg_grpc_ref_release(&ec->ec_ref);
    apg_free(ec);
}

/* Store ack thread. */
static void end_acked(void *arg, apg_err_t rc)
{
    struct end_ctx *ec = arg;
    ec->ec_rc = rc;
    if (apg_grpc_ref_post(&ec->ec_ref, end_on_loop, ec) != APG_OK) {
        apg_txn_end_finish(ec->ec_ms->gm_broker, ec->ec_te, rc, ec->ec_op_qoff);
        apg_grpc_ref_release(&ec->ec_ref);
        apg_free(ec);
    }
}

void apg_grpc_end_transaction(struct apg_grpc_call *call, const uint8_t *req, size_t len, void *ud)
{
    struct apg_grpc_messaging *ms = ud;
    struct apg_broker *b = ms->gm_broker;
    Apache__Rocketmq__V2__EndTransactionRequest *rq =
        apache__rocketmq__v2__end_transaction_request__unpack(NULL, len, req);
    if (!rq) {
        apg_grpc_call_fail(call, APG_GRPC_INVALID_ARGUMENT, "malformed EndTransactionRequest");
        return;
    }
    char why[600];
    struct apg_host host;
    int64_t clo = 0;
    const char *id = rq->transaction_id ? rq->transaction_id : "";
    bool commit = rq->resolution == APACHE__ROCKETMQ__V2__TRANSACTION_RESOLUTION__COMMIT;
    if (rq->resolution ==
        APACHE__ROCKETMQ__V2__TRANSACTION_RESOLUTION__TRANSACTION_RESOLUTION_UNSPECIFIED) {
        end_answer(call, APACHE__ROCKETMQ__V2__CODE__OK, "no resolution: the check asks again");
        goto out;
    }
    if (!b->br_txn || apg_msgid_decode(id, strlen(id), &host, &clo) != APG_OK) {
        snprintf(why, sizeof why, "transaction id %s is not one this broker gave", id);
        end_answer(call, APACHE__ROCKETMQ__V2__CODE__INVALID_TRANSACTION_ID, why);
        goto out;
    }
    struct apg_txn_end *te;
    switch (apg_txn_end_prepare(b, clo, -1, NULL, commit, &te, why, sizeof why)) {
    case APG_TXN_END_REFUSED:
        end_answer(call, APACHE__ROCKETMQ__V2__CODE__INVALID_TRANSACTION_ID, why);
        goto out;
    case APG_TXN_END_DONE_BEFORE:
        end_answer(call, APACHE__ROCKETMQ__V2__CODE__OK, "the transaction had ended");
        goto out;
    case APG_TXN_END_STORE:
        break;
    }
    struct end_ctx *ec = apg_calloc(1, sizeof(*ec));
    if (!ec) {
        apg_txn_end_finish(b, te, APG_ENOMEM, 0);
        apg_grpc_call_fail(call, APG_GRPC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    ec->ec_ms = ms;
    ec->ec_te = te;
    if (b->br_sync_flush)
        apg_grpc_call_ref(call, &ec->ec_ref);
    int n;
    const struct apg_msg_in *msgs = apg_txn_end_msgs(te, &n);
    struct apg_put_result res[2];
    char err[256] = "";
    bool pending = false;
    apg_err_t e = apg_broker_put_notify(b, msgs, n, res, end_acked, ec, &pending, err, sizeof err);
    if (pending)
        goto out; /* answered by end_on_loop */
    ec->ec_rc = e;
    ec->ec_op_qoff = e ? 0 : res[n - 1].pr_queue_offset;
    if (e) {
        snprintf(why, sizeof why, "store refused the transaction's end: %s", err);
        apg_txn_end_finish(b, te, e, 0);
        end_answer(call, APACHE__ROCKETMQ__V2__CODE__INTERNAL_SERVER_ERROR, why);
        apg_grpc_ref_release(&ec->ec_ref);
        apg_free(ec);
    } else {
        end_on_loop(call, ec);
    }
out:
    apache__rocketmq__v2__end_transaction_request__free_unpacked(rq, NULL);
}

/* ---- check-back over Telemetry ---- */

/* Property names the broker or the protocol owns: not user properties. */
static bool prop_is_system(const char *n, size_t len)
{
    static const char *const names[] = {
        "TAGS",
        "KEYS",
        "UNIQ_KEY",
        "WAIT",
        "TRAN_MSG",
        "PGROUP",
        "REAL_TOPIC",
        "REAL_QID",
        "DELAY",
        "__SHARDINGKEY",
        "CLUSTER",
        "MIN_OFFSET",
        "MAX_OFFSET",
        "MSG_REGION",
        "TRACE_ON",
        "TIMER_OUT_MS",
        "TIMER_DELIVER_MS",
        "TRAN_PREPARED_QUEUE_OFFSET",
        "TRANSACTION_CHECK_TIMES",
        "CHECK_IMMUNITY_TIME_IN_SECONDS",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strlen(names[i]) == len && memcmp(names[i], n, len) == 0)
            return true;
    return false;
}

#define MAX_USER_PROPS 128
#define MAX_KEYS 32

bool apg_grpc_txn_recover(struct apg_grpc_clients *ct, const struct apg_msg_in *v, const char *txid)
{
    char topic[APG_NAME_CAP];
    apg_text_copy(topic, sizeof topic, v->mi_topic, v->mi_topic_len);
    /* Copies of the property values, NUL-terminated, and the pairs. */
    struct apg_buf text = APG_BUF_INIT;
    size_t off_k[MAX_USER_PROPS], off_v[MAX_USER_PROPS], nup = 0;
    size_t o_tag = SIZE_MAX, o_keys = SIZE_MAX, o_uniq = SIZE_MAX;
    size_t pos = 0;
    struct apg_prop_kv kv;
    bool ok = true;
    while (ok && apg_props_next(v->mi_props, v->mi_props_len, &pos, &kv)) {
        size_t ko = text.b_len;
        ok = !apg_buf_append(&text, kv.pk_name, kv.pk_name_len) && !apg_buf_append(&text, "", 1);
        size_t vo = text.b_len;
        ok =
            ok && !apg_buf_append(&text, kv.pk_val, kv.pk_val_len) && !apg_buf_append(&text, "", 1);
        if (!ok)
            break;
        if (kv.pk_name_len == 4 && memcmp(kv.pk_name, "TAGS", 4) == 0)
            o_tag = vo;
        else if (kv.pk_name_len == 4 && memcmp(kv.pk_name, "KEYS", 4) == 0)
            o_keys = vo;
        else if (kv.pk_name_len == 8 && memcmp(kv.pk_name, "UNIQ_KEY", 8) == 0)
            o_uniq = vo;
        else if (!prop_is_system(kv.pk_name, kv.pk_name_len) && nup < MAX_USER_PROPS) {
            off_k[nup] = ko;
            off_v[nup++] = vo;
        }
    }
    if (!ok) {
        apg_buf_free(&text);
        return false;
    }
    char *base = (char *)text.b_data;
    Apache__Rocketmq__V2__Message msg = APACHE__ROCKETMQ__V2__MESSAGE__INIT;
    Apache__Rocketmq__V2__Resource res = APACHE__ROCKETMQ__V2__RESOURCE__INIT;
    Apache__Rocketmq__V2__SystemProperties sp = APACHE__ROCKETMQ__V2__SYSTEM_PROPERTIES__INIT;
    Apache__Rocketmq__V2__Timestamp born = APACHE__ROCKETMQ__V2__TIMESTAMP__INIT;
    Apache__Rocketmq__V2__Message__UserPropertiesEntry ue[MAX_USER_PROPS], *up[MAX_USER_PROPS];
    char *keys[MAX_KEYS];
    res.name = topic;
    msg.topic = &res;
    msg.body.data = (uint8_t *)v->mi_body;
    msg.body.len = v->mi_body_len;
    for (size_t i = 0; i < nup; i++) {
        apache__rocketmq__v2__message__user_properties_entry__init(&ue[i]);
        ue[i].key = base + off_k[i];
        ue[i].value = base + off_v[i];
        up[i] = &ue[i];
    }
    msg.n_user_properties = nup;
    msg.user_properties = up;
    sp.message_id = o_uniq != SIZE_MAX ? base + o_uniq : (char *)txid;
    if (o_tag != SIZE_MAX)
        sp.tag = base + o_tag;
    if (o_keys != SIZE_MAX) {
        char *save = NULL;
        for (char *k = strtok_r(base + o_keys, " ", &save); k && sp.n_keys < MAX_KEYS;
             k = strtok_r(NULL, " ", &save))
            keys[sp.n_keys++] = k;
        sp.keys = keys;
    }
    sp.message_type = APACHE__ROCKETMQ__V2__MESSAGE_TYPE__TRANSACTION;
    /* MD5: the SDKs agree on its text (CRC32's differs); the Node.js SDK
     * reads the digest of every message it is handed. */
    char md5[2 * EVP_MAX_MD_SIZE + 1];
    Apache__Rocketmq__V2__Digest dg = APACHE__ROCKETMQ__V2__DIGEST__INIT;
    dg.type = APACHE__ROCKETMQ__V2__DIGEST_TYPE__MD5;
    dg.checksum = md5;
    apg_grpc_digest_hex(dg.type, v->mi_body, v->mi_body_len, md5, sizeof md5);
    sp.body_digest = &dg;
    sp.body_encoding = APACHE__ROCKETMQ__V2__ENCODING__IDENTITY; /* stored inflated */
    born.seconds = v->mi_born_ts / 1000;
    born.nanos = (int32_t)(v->mi_born_ts % 1000) * 1000000;
    sp.born_timestamp = &born;
    sp.born_host = "";
    sp.store_host = "";
    sp.queue_id = v->mi_queue_id;
    msg.system_properties = &sp;
    Apache__Rocketmq__V2__RecoverOrphanedTransactionCommand rc =
        APACHE__ROCKETMQ__V2__RECOVER_ORPHANED_TRANSACTION_COMMAND__INIT;
    rc.message = &msg;
    rc.transaction_id = (char *)txid;
    Apache__Rocketmq__V2__TelemetryCommand c = APACHE__ROCKETMQ__V2__TELEMETRY_COMMAND__INIT;
    c.command_case =
        APACHE__ROCKETMQ__V2__TELEMETRY_COMMAND__COMMAND_RECOVER_ORPHANED_TRANSACTION_COMMAND;
    c.recover_orphaned_transaction_command = &rc;
    size_t n = protobuf_c_message_get_packed_size(&c.base);
    uint8_t *buf = apg_malloc(n ? n : 1);
    bool asked = false;
    if (buf) {
        protobuf_c_message_pack(&c.base, buf);
        asked = apg_grpc_clients_recover(ct, topic, buf, n);
        apg_free(buf);
    }
    apg_buf_free(&text);
    return asked;
}

/* Check thread: asks a 5.x producer about the copy v stored at copy_phys. */
static bool txn_check(void *ud, const struct apg_msg_in *v, int64_t copy_phys)
{
    struct apg_grpc_messaging *ms = ud;
    size_t gl = 0;
    const char *g = apg_props_find(v->mi_props, v->mi_props_len, "PGROUP", &gl);
    if (!g || gl != sizeof(APG_GRPC_TXN_GROUP) - 1 || memcmp(g, APG_GRPC_TXN_GROUP, gl) != 0)
        return false; /* a 4.x producer's half: its own producers are asked */
    char txid[64];
    apg_msgid_encode(&ms->gm_broker->br_store_host, copy_phys, txid, sizeof txid);
    return apg_grpc_txn_recover(ms->gm_clients, v, txid);
}

void apg_grpc_produce_start(struct apg_grpc_messaging *ms)
{
    if (ms->gm_broker->br_txn)
        apg_txn_set_check_hook(ms->gm_broker->br_txn, txn_check, ms);
}

void apg_grpc_produce_stop(struct apg_grpc_messaging *ms)
{
    if (ms->gm_broker->br_txn)
        apg_txn_set_check_hook(ms->gm_broker->br_txn, NULL, NULL);
}

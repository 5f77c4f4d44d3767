/* MessagingService's consumer calls on the broker's pop module: AckMessage,
 * ChangeInvisibleDuration, ForwardMessageToDeadLetterQueue, QueryAssignment
 * (unary) and the frames of ReceiveMessage (consume.h).
 *
 * Design. A 5.x receipt handle is the pop module's handle text
 * ("startOffset popTime invisibleTime reviveQid topicType brokerName
 * queueId queueOffset commitLogOffset", docs/wire.md §16), so a handle a
 * gRPC consumer got can be acknowledged over remoting and the other way
 * round; the broker reads back popTime, queueId and queueOffset. A handle
 * whose delivery is no longer in flight (acknowledged, its invisible time
 * ran out, handed out again) is INVALID_RECEIPT_HANDLE, as RocketMQ's proxy
 * answers an expired one. QueryAssignment hands a consumer one queue with
 * id -1 per broker (pop from any queue), the way RocketMQ 5 assigns pop
 * consumers; a group of FIFO consumers gets the same, FIFO order being
 * the pop module's queue hold.
 *
 * A delivered message carries: tag, keys, message id (UNIQ_KEY, else the
 * offset id), an MD5 body digest (uppercase hex, what RocketMQ's proxy
 * sends), IDENTITY encoding (a 4.x body compressed with zlib is inflated
 * first), message type, born/store time and host, receipt handle, queue id
 * and offset, invisible duration, delivery attempt, message group, trace
 * context (the TRACE_CONTEXT property, as RocketMQ 5's proxy maps it); every
 * property that is not one of RocketMQ's system names is a user property.
 *
 * Threads: the gRPC loop thread; apg_pop_* lock themselves and read the
 * store under their lock. */
#include "proxy/grpc/consume.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "broker/broker_admin_stats.h"
#include "broker/broker_rt.h"
#include "broker/pop/pop.h"
#include "common/mem.h"
#include "protocol/props.h"
#include "protocol/tagexpr.h"
#include "proto/messaging.pb-c.h"
#include "proxy/grpc/messaging.h"
#include "proxy/grpc/ns.h"

typedef Apache__Rocketmq__V2__Status pb_status;
#define CODE(x) APACHE__ROCKETMQ__V2__CODE__##x
#define DEFAULT_INVISIBLE_MS 30000
#define MIN_INVISIBLE_MS 1000
#define MAX_INVISIBLE_MS (12 * 3600 * 1000LL)
#define MAX_POLL_MS 60000

static void st_set(pb_status *st, Apache__Rocketmq__V2__Code code, const char *msg)
{
    apache__rocketmq__v2__status__init(st);
    st->code = code;
    st->message = (char *)(msg ? msg : "");
}

static void reply_packed(struct apg_grpc_call *call, const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = apg_malloc(n ? n : 1);
    if (!buf) {
        apg_grpc_call_fail(call, APG_GRPC_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    protobuf_c_message_pack(m, buf);
    apg_grpc_call_reply(call, buf, n);
    apg_free(buf);
}

const char *apg_grpc_res_name(const Apache__Rocketmq__V2__Resource *r)
{
    return r && r->name && r->name[0] ? r->name : NULL;
}

int64_t apg_grpc_dur_ms(const Apache__Rocketmq__V2__Duration *d, int64_t dflt)
{
    return d ? d->seconds * 1000 + d->nanos / 1000000 : dflt;
}

int64_t apg_grpc_clamp_invisible(int64_t ms)
{
    return ms < MIN_INVISIBLE_MS ? MIN_INVISIBLE_MS : ms > MAX_INVISIBLE_MS ? MAX_INVISIBLE_MS : ms;
}

/* Parses a receipt handle; false (with st set) when it is not one. */
static bool handle_get(const char *rh, struct apg_pop_handle *h, pb_status *st)
{
    if (!rh || apg_pop_handle_decode(rh, strlen(rh), h) || h->ph_offset < 0) {
        st_set(st, CODE(INVALID_RECEIPT_HANDLE), "not a receipt handle this broker gave out");
        return false;
    }
    return true;
}

static const char *gone =
    "receipt handle is expired: the message was acknowledged, its invisible time ran out, or it "
    "was delivered again";

/* The status of a pop call's result e; failed: what a failure other than
 * a stale handle means. */
static void pop_status(pb_status *st, apg_err_t e, const char *failed)
{
    if (e == APG_OK)
        st_set(st, CODE(OK), "OK");
    else if (e == APG_ENOTFOUND)
        st_set(st, CODE(INVALID_RECEIPT_HANDLE), gone);
    else
        st_set(st, CODE(INTERNAL_SERVER_ERROR), failed);
}

/* ---- AckMessage ---- */

void apg_grpc_consume_ack(struct apg_grpc_call *call, const uint8_t *req, size_t len, void *ud)
{
    const struct apg_grpc_messaging *ms = ud;
    Apache__Rocketmq__V2__AckMessageRequest *rq =
        apache__rocketmq__v2__ack_message_request__unpack(NULL, len, req);
    if (!rq) {
        apg_grpc_call_fail(call, APG_GRPC_INVALID_ARGUMENT, "malformed AckMessageRequest");
        return;
    }
    Apache__Rocketmq__V2__AckMessageResponse resp =
        APACHE__ROCKETMQ__V2__ACK_MESSAGE_RESPONSE__INIT;
    pb_status top;
    resp.status = &top;
    const char *group = apg_grpc_res_name(rq->group), *topic = apg_grpc_res_name(rq->topic);
    size_t n = rq->n_entries;
    struct slot {
        Apache__Rocketmq__V2__AckMessageResultEntry e;
        pb_status st;
    } *slots = n ? apg_calloc(n, sizeof(*slots)) : NULL;
    Apache__Rocketmq__V2__AckMessageResultEntry **ep = n ? apg_calloc(n, sizeof(*ep)) : NULL;
    if (n && (!slots || !ep)) {
        apg_grpc_call_fail(call, APG_GRPC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    if (!group || !topic || n == 0) {
        st_set(&top, CODE(BAD_REQUEST), "group, topic and at least one entry are required");
        reply_packed(call, &resp.base);
        goto out;
    }
    /* Every well-formed handle is acknowledged with one journal write. */
    struct apg_pop_ack_ent *acks = apg_calloc(n, sizeof(*acks));
    size_t *at = apg_calloc(n, sizeof(*at));
    if (!acks || !at) {
        apg_free(acks);
        apg_free(at);
        apg_grpc_call_fail(call, APG_GRPC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    size_t ok = 0, na = 0;
    for (size_t i = 0; i < n; i++) {
        Apache__Rocketmq__V2__AckMessageEntry *in = rq->entries[i];
        apache__rocketmq__v2__ack_message_result_entry__init(&slots[i].e);
        slots[i].e.message_id = in->message_id;
        slots[i].e.receipt_handle = in->receipt_handle;
        slots[i].e.status = &slots[i].st;
        ep[i] = &slots[i].e;
        struct apg_pop_handle h;
        if (!handle_get(in->receipt_handle, &h, &slots[i].st))
            continue;
        acks[na] = (struct apg_pop_ack_ent){h.ph_queue, h.ph_offset, h.ph_stamp, APG_OK};
        at[na++] = i;
    }
    if (na)
        apg_pop_ack_many(ms->gm_broker->br_pop, group, topic, acks, (int)na);
    for (size_t k = 0; k < na; k++) {
        pop_status(&slots[at[k]].st, acks[k].pa_rc, "the pop journal cannot be written");
        ok += acks[k].pa_rc == APG_OK;
    }
    apg_free(acks);
    apg_free(at);
    if (ok == n)
        st_set(&top, CODE(OK), "OK");
    else if (n == 1)
        top = slots[0].st;
    else
        st_set(&top, CODE(MULTIPLE_RESULTS), "see the entries");
    resp.n_entries = n;
    resp.entries = ep;
    reply_packed(call, &resp.base);
out:
    apg_free(slots);
    apg_free(ep);
    apache__rocketmq__v2__ack_message_request__free_unpacked(rq, NULL);
}

/* ---- ChangeInvisibleDuration ---- */

void apg_grpc_consume_change(struct apg_grpc_call *call, const uint8_t *req, size_t len, void *ud)
{
    const struct apg_grpc_messaging *ms = ud;
    Apache__Rocketmq__V2__ChangeInvisibleDurationRequest *rq =
        apache__rocketmq__v2__change_invisible_duration_request__unpack(NULL, len, req);
    if (!rq) {
        apg_grpc_call_fail(call, APG_GRPC_INVALID_ARGUMENT,
                           "malformed ChangeInvisibleDurationRequest");
        return;
    }
    Apache__Rocketmq__V2__ChangeInvisibleDurationResponse resp =
        APACHE__ROCKETMQ__V2__CHANGE_INVISIBLE_DURATION_RESPONSE__INIT;
    pb_status st;
    resp.status = &st;
    char handle[512];
    const char *group = apg_grpc_res_name(rq->group), *topic = apg_grpc_res_name(rq->topic);
    struct apg_pop_handle h;
    if (!group || !topic) {
        st_set(&st, CODE(BAD_REQUEST), "group and topic are required");
    } else if (!rq->invisible_duration) {
        st_set(&st, CODE(ILLEGAL_INVISIBLE_TIME), "invisible_duration is required");
    } else if (handle_get(rq->receipt_handle, &h, &st)) {
        int64_t inv =
            apg_grpc_clamp_invisible(apg_grpc_dur_ms(rq->invisible_duration, DEFAULT_INVISIBLE_MS));
        int64_t ns;
        apg_err_t e = apg_pop_change(ms->gm_broker->br_pop, group, topic, h.ph_queue, h.ph_offset,
                                     h.ph_stamp, inv, &ns);
        pop_status(&st, e, "the pop journal cannot be written");
        if (e == APG_OK) {
            h.ph_stamp = ns;
            h.ph_invisible = inv;
            apg_pop_handle_encode(&h, handle, sizeof(handle));
            resp.receipt_handle = handle;
        }
    }
    reply_packed(call, &resp.base);
    apache__rocketmq__v2__change_invisible_duration_request__free_unpacked(rq, NULL);
}

/* ---- ForwardMessageToDeadLetterQueue ---- */

void apg_grpc_consume_forward_dlq(struct apg_grpc_call *call, const uint8_t *req, size_t len,
                                  void *ud)
{
    const struct apg_grpc_messaging *ms = ud;
    Apache__Rocketmq__V2__ForwardMessageToDeadLetterQueueRequest *rq =
        apache__rocketmq__v2__forward_message_to_dead_letter_queue_request__unpack(NULL, len, req);
    if (!rq) {
        apg_grpc_call_fail(call, APG_GRPC_INVALID_ARGUMENT,
                           "malformed ForwardMessageToDeadLetterQueueRequest");
        return;
    }
    Apache__Rocketmq__V2__ForwardMessageToDeadLetterQueueResponse resp =
        APACHE__ROCKETMQ__V2__FORWARD_MESSAGE_TO_DEAD_LETTER_QUEUE_RESPONSE__INIT;
    pb_status st;
    resp.status = &st;
    const char *group = apg_grpc_res_name(rq->group), *topic = apg_grpc_res_name(rq->topic);
    struct apg_pop_handle h;
    if (!group || !topic) {
        st_set(&st, CODE(BAD_REQUEST), "group and topic are required");
    } else if (handle_get(rq->receipt_handle, &h, &st)) {
        apg_err_t e = apg_pop_dead_letter(ms->gm_broker->br_pop, group, topic, h.ph_queue,
                                          h.ph_offset, h.ph_stamp);
        pop_status(&st, e, "the dead-letter copy could not be stored");
    }
    reply_packed(call, &resp.base);
    apache__rocketmq__v2__forward_message_to_dead_letter_queue_request__free_unpacked(rq, NULL);
}

/* ---- QueryAssignment ---- */

void apg_grpc_consume_assignment(struct apg_grpc_call *call, const uint8_t *req, size_t len,
                                 void *ud)
{
    const struct apg_grpc_messaging *ms = ud;
    struct apg_broker *b = ms->gm_broker;
    Apache__Rocketmq__V2__QueryAssignmentRequest *rq =
        apache__rocketmq__v2__query_assignment_request__unpack(NULL, len, req);
    if (!rq) {
        apg_grpc_call_fail(call, APG_GRPC_INVALID_ARGUMENT, "malformed QueryAssignmentRequest");
        return;
    }
    Apache__Rocketmq__V2__QueryAssignmentResponse resp =
        APACHE__ROCKETMQ__V2__QUERY_ASSIGNMENT_RESPONSE__INIT;
    pb_status st;
    resp.status = &st;
    const char *topic = apg_grpc_res_name(rq->topic);
    struct apg_topic_cfg tc;
    char why[300];
    Apache__Rocketmq__V2__Address addr = APACHE__ROCKETMQ__V2__ADDRESS__INIT;
    Apache__Rocketmq__V2__Address *addrs[] = {&addr};
    Apache__Rocketmq__V2__Endpoints ep = APACHE__ROCKETMQ__V2__ENDPOINTS__INIT;
    Apache__Rocketmq__V2__Broker br = APACHE__ROCKETMQ__V2__BROKER__INIT;
    Apache__Rocketmq__V2__MessageQueue mq = APACHE__ROCKETMQ__V2__MESSAGE_QUEUE__INIT;
    Apache__Rocketmq__V2__Resource mq_topic = APACHE__ROCKETMQ__V2__RESOURCE__INIT;
    char nsbuf[512];
    Apache__Rocketmq__V2__Assignment as = APACHE__ROCKETMQ__V2__ASSIGNMENT__INIT;
    Apache__Rocketmq__V2__Assignment *asp[] = {&as};
    Apache__Rocketmq__V2__MessageType types[] = {
        APACHE__ROCKETMQ__V2__MESSAGE_TYPE__NORMAL, APACHE__ROCKETMQ__V2__MESSAGE_TYPE__FIFO,
        APACHE__ROCKETMQ__V2__MESSAGE_TYPE__DELAY, APACHE__ROCKETMQ__V2__MESSAGE_TYPE__TRANSACTION};
    if (!topic || !apg_grpc_res_name(rq->group)) {
        st_set(&st, CODE(BAD_REQUEST), "topic and group are required");
    } else if (!apg_topics_get(b->br_topics, topic, &tc)) {
        snprintf(why, sizeof why, "topic %s does not exist on broker %s", topic, b->br_name);
        st_set(&st, CODE(TOPIC_NOT_FOUND), why);
    } else if (!(b->br_perm & APG_PERM_READ) || !(tc.tc_perm & APG_PERM_READ) ||
               tc.tc_read_queues <= 0) {
        /* Nothing to assign: an empty list, as RocketMQ answers. */
        st_set(&st, CODE(OK), "OK");
    } else {
        addr.host = (char *)ms->gm_host;
        addr.port = ms->gm_port;
        ep.scheme = APACHE__ROCKETMQ__V2__ADDRESS_SCHEME__IPv4;
        ep.n_addresses = 1;
        ep.addresses = addrs;
        br.name = b->br_name;
        br.endpoints = &ep;
        apg_grpc_ns_resource(&mq_topic, topic, nsbuf, sizeof nsbuf);
        mq.topic = &mq_topic;
        mq.id = -1;
        mq.permission = APACHE__ROCKETMQ__V2__PERMISSION__READ;
        mq.broker = &br;
        mq.n_accept_message_types = sizeof types / sizeof types[0];
        mq.accept_message_types = types;
        as.message_queue = &mq;
        resp.n_assignments = 1;
        resp.assignments = asp;
        st_set(&st, CODE(OK), "OK");
    }
    reply_packed(call, &resp.base);
    apache__rocketmq__v2__query_assignment_request__free_unpacked(rq, NULL);
}

/* ---- ReceiveMessage frames ---- */

/* A string that lives until the frames are packed: copied into an arena. */
struct arena {
    char **a_items;
    size_t a_n, a_cap;
};

static char *arena_str(struct arena *a, const char *s, size_t n)
{
    if (a->a_n == a->a_cap) {
        size_t cap = a->a_cap ? a->a_cap * 2 : 32;
        char **it = apg_realloc(a->a_items, cap * sizeof(*it));
        if (!it)
            return NULL;
        a->a_items = it;
        a->a_cap = cap;
    }
    char *c = apg_malloc(n + 1);
    if (!c)
        return NULL;
    memcpy(c, s, n);
    c[n] = '\0';
    a->a_items[a->a_n++] = c;
    return c;
}

static void arena_free(struct arena *a)
{
    for (size_t i = 0; i < a->a_n; i++)
        apg_free(a->a_items[i]);
    apg_free(a->a_items);
    memset(a, 0, sizeof(*a));
}

static void host_fmt(const struct apg_host *h, char *out, size_t n)
{
    if (h->h_v6) {
        snprintf(out, n, "[%x:%x:%x:%x:%x:%x:%x:%x]:%u", h->h_ip[0] << 8 | h->h_ip[1],
                 h->h_ip[2] << 8 | h->h_ip[3], h->h_ip[4] << 8 | h->h_ip[5],
                 h->h_ip[6] << 8 | h->h_ip[7], h->h_ip[8] << 8 | h->h_ip[9],
                 h->h_ip[10] << 8 | h->h_ip[11], h->h_ip[12] << 8 | h->h_ip[13],
                 h->h_ip[14] << 8 | h->h_ip[15], h->h_port);
        return;
    }
    /* "a.b.c.d:port" by hand: formatted for every delivered message. */
    char t[32];
    size_t k = 0;
    unsigned v[5] = {h->h_ip[0], h->h_ip[1], h->h_ip[2], h->h_ip[3], h->h_port};
    for (int i = 0; i < 5; i++) {
        char d[10];
        int nd = 0;
        do {
            d[nd++] = (char)('0' + v[i] % 10);
            v[i] /= 10;
        } while (v[i]);
        while (nd)
            t[k++] = d[--nd];
        if (i < 4)
            t[k++] = i < 3 ? '.' : ':';
    }
    if (n == 0)
        return;
    if (k >= n)
        k = n - 1;
    memcpy(out, t, k);
    out[k] = '\0';
}

/* Appends a frame (u32 length + packed message) to out. */
static apg_err_t frame_add(struct apg_buf *out, const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint32_t l = (uint32_t)n;
    apg_err_t e = apg_buf_append(out, &l, 4);
    if (!e)
        e = apg_buf_reserve(out, n);
    if (e)
        return e;
    protobuf_c_message_pack(m, (uint8_t *)out->b_data + out->b_len);
    out->b_len += n;
    return APG_OK;
}

/* The body as a 5.x client reads it: a zlib-compressed 4.x body inflated. */
/* Appends the message frame of one popped message. */
static apg_err_t message_frame(const char *broker, const struct apg_pop_msg *pm,
                               const struct apg_pop_result *res, const uint8_t *recbytes,
                               struct apg_buf *out)
{
    struct apg_msgrec r;
    if (apg_msgrec_decode(recbytes, pm->pm_rec_len, false, &r, NULL) != APG_MSGREC_OK)
        return APG_OK;
    struct arena ar = {0};
    struct apg_buf inflated = APG_BUF_INIT;
    apg_err_t e = APG_OK;
    Apache__Rocketmq__V2__SystemProperties sp = APACHE__ROCKETMQ__V2__SYSTEM_PROPERTIES__INIT;
    Apache__Rocketmq__V2__Message m = APACHE__ROCKETMQ__V2__MESSAGE__INIT;
    Apache__Rocketmq__V2__Resource topic = APACHE__ROCKETMQ__V2__RESOURCE__INIT;
    Apache__Rocketmq__V2__Digest dg = APACHE__ROCKETMQ__V2__DIGEST__INIT;
    Apache__Rocketmq__V2__Timestamp born = APACHE__ROCKETMQ__V2__TIMESTAMP__INIT;
    Apache__Rocketmq__V2__Timestamp stored = APACHE__ROCKETMQ__V2__TIMESTAMP__INIT;
    Apache__Rocketmq__V2__Duration inv = APACHE__ROCKETMQ__V2__DURATION__INIT;
    Apache__Rocketmq__V2__Message__UserPropertiesEntry *ents = NULL, **entp = NULL;
    char **keys = NULL;
    char mid[64], digest[33], bh[64], sh[64], handle[640];

    char nsbuf[512];
    const char *full = arena_str(&ar, r.mr_topic, r.mr_topic_len);
    if (full)
        apg_grpc_ns_resource(&topic, full, nsbuf, sizeof nsbuf);
    m.topic = &topic;
    m.system_properties = &sp;
    /* Properties: count, then split into system fields and user ones. */
    size_t np = 0;
    for (size_t i = 0; i < r.mr_props_len; i++)
        np += r.mr_props[i] == APG_PROPS_SEP;
    np++;
    ents = apg_calloc(np, sizeof(*ents));
    entp = apg_calloc(np, sizeof(*entp));
    keys = apg_calloc(np + 64, sizeof(*keys));
    if (!ents || !entp || !keys || !full) {
        e = APG_ENOMEM;
        goto out;
    }
    const char *p = r.mr_props, *end = r.mr_props + r.mr_props_len;
    while (p < end) {
        const char *sep = memchr(p, APG_PROPS_SEP, (size_t)(end - p));
        const char *pe = sep ? sep : end;
        const char *eq = memchr(p, '\x01', (size_t)(pe - p));
        if (eq) {
            size_t kl = (size_t)(eq - p), vl = (size_t)(pe - eq - 1);
            const char *v = eq + 1;
            if (kl == 4 && memcmp(p, "TAGS", 4) == 0) {
                sp.tag = arena_str(&ar, v, vl);
            } else if (kl == 4 && memcmp(p, "KEYS", 4) == 0) {
                const char *k = v, *ke = v + vl;
                while (k < ke && sp.n_keys < np + 63) {
                    const char *sp2 = memchr(k, ' ', (size_t)(ke - k));
                    const char *kend = sp2 ? sp2 : ke;
                    if (kend > k)
                        keys[sp.n_keys++] = arena_str(&ar, k, (size_t)(kend - k));
                    k = kend + 1;
                }
            } else if (kl == 8 && memcmp(p, "UNIQ_KEY", 8) == 0) {
                sp.message_id = arena_str(&ar, v, vl);
            } else if (kl == 13 && memcmp(p, "__SHARDINGKEY", 13) == 0) {
                sp.message_group = arena_str(&ar, v, vl);
            } else if (kl == 13 && memcmp(p, "TRACE_CONTEXT", 13) == 0) {
                sp.trace_context = arena_str(&ar, v, vl);
            } else if (!apg_props_name_reserved(p, kl)) {
                Apache__Rocketmq__V2__Message__UserPropertiesEntry *u = &ents[m.n_user_properties];
                apache__rocketmq__v2__message__user_properties_entry__init(u);
                u->key = arena_str(&ar, p, kl);
                u->value = arena_str(&ar, v, vl);
                entp[m.n_user_properties++] = u;
            }
        }
        p = pe + 1;
    }
    m.user_properties = entp;
    sp.keys = keys;
    if (!sp.message_id) {
        apg_msgid_encode(&r.mr_store_host, r.mr_phys_offset, mid, sizeof mid);
        sp.message_id = mid;
    }
    const uint8_t *body;
    size_t blen;
    if ((e = apg_pop_body_plain(&r, &inflated, &body, &blen)) != APG_OK)
        goto out;
    m.body.data = (uint8_t *)body;
    m.body.len = blen;
    apg_pop_body_md5(body, blen, digest);
    dg.type = APACHE__ROCKETMQ__V2__DIGEST_TYPE__MD5;
    dg.checksum = digest;
    sp.body_digest = &dg;
    sp.body_encoding = APACHE__ROCKETMQ__V2__ENCODING__IDENTITY;
    sp.message_type = sp.message_group ? APACHE__ROCKETMQ__V2__MESSAGE_TYPE__FIFO
                                       : APACHE__ROCKETMQ__V2__MESSAGE_TYPE__NORMAL;
    born.seconds = r.mr_born_ts / 1000;
    born.nanos = (int32_t)(r.mr_born_ts % 1000) * 1000000;
    stored.seconds = r.mr_store_ts / 1000;
    stored.nanos = (int32_t)(r.mr_store_ts % 1000) * 1000000;
    sp.born_timestamp = &born;
    sp.store_timestamp = &stored;
    host_fmt(&r.mr_born_host, bh, sizeof bh);
    host_fmt(&r.mr_store_host, sh, sizeof sh);
    sp.born_host = bh;
    sp.store_host = sh;
    apg_pop_handle_of(res, pm, broker, handle, sizeof handle);
    sp.receipt_handle = handle;
    sp.queue_id = pm->pm_queue;
    sp.queue_offset = pm->pm_offset;
    inv.seconds = res->pr_invisible / 1000;
    inv.nanos = (int32_t)(res->pr_invisible % 1000) * 1000000;
    sp.invisible_duration = &inv;
    sp.delivery_attempt = pm->pm_attempts;

    Apache__Rocketmq__V2__ReceiveMessageResponse fr =
        APACHE__ROCKETMQ__V2__RECEIVE_MESSAGE_RESPONSE__INIT;
    fr.content_case = APACHE__ROCKETMQ__V2__RECEIVE_MESSAGE_RESPONSE__CONTENT_MESSAGE;
    fr.message = &m;
    e = frame_add(out, &fr.base);
out:
    apg_free(ents);
    apg_free(entp);
    apg_free(keys);
    arena_free(&ar);
    apg_buf_free(&inflated);
    return e;
}

apg_err_t apg_grpc_consume_status_frame(struct apg_buf *out, int code, const char *msg)
{
    pb_status st;
    st_set(&st, (Apache__Rocketmq__V2__Code)code, msg);
    Apache__Rocketmq__V2__ReceiveMessageResponse fr =
        APACHE__ROCKETMQ__V2__RECEIVE_MESSAGE_RESPONSE__INIT;
    fr.content_case = APACHE__ROCKETMQ__V2__RECEIVE_MESSAGE_RESPONSE__CONTENT_STATUS;
    fr.status = &st;
    return frame_add(out, &fr.base);
}

apg_err_t apg_grpc_consume_frames(const char *broker, const struct apg_pop_result *res,
                                  const uint8_t *recs, struct apg_buf *out)
{
    apg_err_t e = APG_OK;
    for (int i = 0; i < res->pr_n && !e; i++)
        e = message_frame(broker, &res->pr_msgs[i], res, recs + res->pr_msgs[i].pm_rec_off, out);
    if (!e) {
        Apache__Rocketmq__V2__Timestamp ts = APACHE__ROCKETMQ__V2__TIMESTAMP__INIT;
        ts.seconds = res->pr_stamp / 1000;
        ts.nanos = (int32_t)(res->pr_stamp % 1000) * 1000000;
        Apache__Rocketmq__V2__ReceiveMessageResponse fr =
            APACHE__ROCKETMQ__V2__RECEIVE_MESSAGE_RESPONSE__INIT;
        fr.content_case =
            APACHE__ROCKETMQ__V2__RECEIVE_MESSAGE_RESPONSE__CONTENT_DELIVERY_TIMESTAMP;
        fr.delivery_timestamp = &ts;
        e = frame_add(out, &fr.base);
    }
    if (!e)
        e = apg_grpc_consume_status_frame(out, CODE(OK), "OK");
    return e;
}

apg_err_t apg_grpc_consume_receive(void *ud, const uint8_t *req, size_t len, int final,
                                   struct apg_buf *out, int *n_msgs, int64_t *poll_ms)
{
    const struct apg_grpc_messaging *ms = ud;
    struct apg_broker *b = ms->gm_broker;
    *n_msgs = 0;
    *poll_ms = 0;
    Apache__Rocketmq__V2__ReceiveMessageRequest *rq =
        apache__rocketmq__v2__receive_message_request__unpack(NULL, len, req);
    if (!rq)
        return APG_EINVAL;
    char err[300];
    apg_err_t e = APG_OK;
    const char *group = apg_grpc_res_name(rq->group);
    const char *topic = rq->message_queue ? apg_grpc_res_name(rq->message_queue->topic) : NULL;
    struct apg_tagexpr f;
    const char *expr = rq->filter_expression && rq->filter_expression->expression &&
                               rq->filter_expression->expression[0]
                           ? rq->filter_expression->expression
                           : "*";
    if (!group || !topic) {
        e = apg_grpc_consume_status_frame(out, CODE(BAD_REQUEST),
                                          "group and message_queue.topic are required");
        goto out;
    }
    const struct apg_sql92 *sql = NULL;
    if (rq->filter_expression &&
        rq->filter_expression->type == APACHE__ROCKETMQ__V2__FILTER_TYPE__SQL) {
        int32_t code;
        sql = apg_broker_filter_sql(b, "SQL92", expr, &code, err, sizeof err);
        if (!sql) {
            e = apg_grpc_consume_status_frame(out, CODE(ILLEGAL_FILTER_EXPRESSION), err);
            goto out;
        }
        expr = "*";
    }
    if (apg_tagexpr_parse(expr, strlen(expr), &f, err, sizeof err)) {
        e = apg_grpc_consume_status_frame(out, CODE(ILLEGAL_FILTER_EXPRESSION), err);
        goto out;
    }
    struct apg_group_cfg gc;
    if (apg_groups_get_or_create(b->br_groups, group, b->br_auto_create_group, &gc) != APG_OK) {
        snprintf(err, sizeof err,
                 "consumer group %s does not exist and autoCreateSubscriptionGroup=false", group);
        e = apg_grpc_consume_status_frame(out, CODE(CONSUMER_GROUP_NOT_FOUND), err);
        goto out;
    }
    if (!gc.gc_consume_enable) {
        snprintf(err, sizeof err, "consumer group %s is disabled (consumeEnable=false)", group);
        e = apg_grpc_consume_status_frame(out, CODE(FORBIDDEN), err);
        goto out;
    }
    /* Every queue of this broker, whatever id the request names: the
     * message queue only picks the broker (RocketMQ's proxy pops through
     * the broker's acting queue, id -1; the nodejs client only ever asks
     * with queue 0). */
    struct apg_pop_req pr = {
        .pr_group = group,
        .pr_topic = topic,
        .pr_queue = -1,
        .pr_max = rq->batch_size > 0 ? rq->batch_size : APG_POP_MAX_BATCH,
        .pr_invisible =
            apg_grpc_clamp_invisible(apg_grpc_dur_ms(rq->invisible_duration, DEFAULT_INVISIBLE_MS)),
        .pr_fifo = false,
        .pr_init_min = false,
        .pr_tags = &f,
        .pr_sql = sql,
    };
    struct apg_buf recs = APG_BUF_INIT;
    struct apg_pop_result *res = apg_malloc(sizeof(*res));
    if (!res) {
        e = APG_ENOMEM;
        goto out;
    }
    e = apg_pop_take(b->br_pop, &pr, &recs, res, err, sizeof err);
    if (e) {
        e = apg_grpc_consume_status_frame(
            out, e == APG_ENOTFOUND ? CODE(TOPIC_NOT_FOUND) : CODE(INTERNAL_SERVER_ERROR), err);
    } else if (res->pr_n > 0) {
        /* Counted as a remoting pop is: the broker's get total, the
         * group's consume counters and messages-out metrics. */
        atomic_fetch_add_explicit(&b->br_get_total, res->pr_n, memory_order_relaxed);
        apg_broker_consume_note(b, group, topic, res->pr_n, recs.b_len);
        e = apg_grpc_consume_frames(b->br_name, res, (const uint8_t *)recs.b_data, out);
        *n_msgs = res->pr_n;
    } else if (final) {
        e = apg_grpc_consume_status_frame(out, CODE(MESSAGE_NOT_FOUND), "no new message");
    } else {
        *poll_ms = apg_grpc_dur_ms(rq->long_polling_timeout, 0);
        if (*poll_ms <= 0)
            e = apg_grpc_consume_status_frame(out, CODE(MESSAGE_NOT_FOUND), "no new message");
    }
    apg_buf_free(&recs);
    apg_free(res);
out:
    apache__rocketmq__v2__receive_message_request__free_unpacked(rq, NULL);
    return e;
}

/* ---- ReceiveMessage (server stream) ---- */

/* A receive that found nothing and waits (long polling): retried on its
 * loop after every revive pass of the pop thread (100 ms) until it finds
 * messages or its long_polling_timeout passes. The list is shared by the
 * gRPC loop (adds, retries, removes) and the pop thread (posts retries)
 * under rx_lock. A waiter is freed on its loop: by its last retry, or by
 * the call's close when no retry is posted (else that retry frees it). */
struct rx_wait {
    struct rx_wait *rw_next;
    struct apg_grpc_ref rw_ref;
    void *rw_ud;
    uint8_t *rw_req;
    size_t rw_len;
    int64_t rw_deadline; /* wall ms */
    bool rw_posted;      /* a retry is on its way to the loop */
    bool rw_gone;        /* the call closed */
};

static pthread_mutex_t rx_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rx_wait *rx_head;
static atomic_bool rx_hooked;

void apg_grpc_consume_send_frames(struct apg_grpc_call *call, const struct apg_buf *out)
{
    const uint8_t *p = out->b_data, *end = p + out->b_len;
    while (p + 4 <= end) {
        uint32_t n;
        memcpy(&n, p, 4);
        apg_grpc_call_send(call, p + 4, n);
        p += 4 + n;
    }
    apg_grpc_call_finish(call, APG_GRPC_OK, NULL);
}

/* Unlinks and frees w (its loop thread). */
static void rx_free(struct rx_wait *w)
{
    pthread_mutex_lock(&rx_lock);
    for (struct rx_wait **pp = &rx_head; *pp; pp = &(*pp)->rw_next)
        if (*pp == w) {
            *pp = w->rw_next;
            break;
        }
    pthread_mutex_unlock(&rx_lock);
    apg_grpc_ref_release(&w->rw_ref);
    apg_free(w->rw_req);
    apg_free(w);
}

/* On the call's loop: try again; answer when something came or time is up. */
static void rx_retry(struct apg_grpc_call *call, void *arg)
{
    struct rx_wait *w = arg;
    pthread_mutex_lock(&rx_lock);
    bool gone = w->rw_gone || !call;
    pthread_mutex_unlock(&rx_lock);
    if (gone || apg_grpc_call_done(call)) {
        if (call)
            apg_grpc_call_set_user(call, NULL);
        rx_free(w);
        return;
    }
    struct apg_buf out = APG_BUF_INIT;
    int n;
    int64_t poll;
    bool final = apg_wall_ms() >= w->rw_deadline;
    apg_err_t e = apg_grpc_consume_receive(w->rw_ud, w->rw_req, w->rw_len, final, &out, &n, &poll);
    if (e || out.b_len) {
        if (e)
            apg_grpc_call_finish(call, APG_GRPC_INTERNAL, "out of memory");
        else
            apg_grpc_consume_send_frames(call, &out);
        apg_grpc_call_set_user(call, NULL);
        rx_free(w);
    } else {
        pthread_mutex_lock(&rx_lock);
        w->rw_posted = false;
        pthread_mutex_unlock(&rx_lock);
    }
    apg_buf_free(&out);
}

/* The pop thread's tick: one retry post per waiting call. */
static void rx_tick(void *ud)
{
    (void)ud;
    pthread_mutex_lock(&rx_lock);
    for (struct rx_wait *w = rx_head; w; w = w->rw_next)
        if (!w->rw_posted && !w->rw_gone)
            w->rw_posted = apg_grpc_ref_post(&w->rw_ref, rx_retry, w) == APG_OK;
    pthread_mutex_unlock(&rx_lock);
}

void apg_grpc_consume_receive_close(struct apg_grpc_call *call, void *ud)
{
    (void)ud;
    struct rx_wait *w = apg_grpc_call_user(call);
    if (!w)
        return;
    apg_grpc_call_set_user(call, NULL);
    pthread_mutex_lock(&rx_lock);
    w->rw_gone = true;
    bool mine = !w->rw_posted;
    pthread_mutex_unlock(&rx_lock);
    if (mine)
        rx_free(w);
}

void apg_grpc_consume_receive_call(struct apg_grpc_call *call, const uint8_t *req, size_t len,
                                   void *ud)
{
    const struct apg_grpc_messaging *ms = ud;
    struct apg_buf out = APG_BUF_INIT;
    int n;
    int64_t poll;
    apg_err_t e = apg_grpc_consume_receive(ud, req, len, 0, &out, &n, &poll);
    if (e == APG_EINVAL) {
        apg_grpc_call_fail(call, APG_GRPC_INVALID_ARGUMENT, "malformed ReceiveMessageRequest");
    } else if (e) {
        apg_grpc_call_fail(call, APG_GRPC_RESOURCE_EXHAUSTED, "out of memory");
    } else if (out.b_len) {
        apg_grpc_consume_send_frames(call, &out);
    } else {
        /* Long polling: retried from the pop thread's ticks. */
        struct rx_wait *w = apg_calloc(1, sizeof(*w));
        uint8_t *copy = w ? apg_malloc(len ? len : 1) : NULL;
        if (!copy) {
            apg_free(w);
            apg_grpc_call_fail(call, APG_GRPC_RESOURCE_EXHAUSTED, "out of memory");
        } else {
            memcpy(copy, req, len);
            w->rw_req = copy;
            w->rw_len = len;
            w->rw_ud = ud;
            w->rw_deadline = apg_wall_ms() + (poll > MAX_POLL_MS ? MAX_POLL_MS : poll);
            apg_grpc_call_ref(call, &w->rw_ref);
            apg_grpc_call_set_user(call, w);
            if (!atomic_exchange(&rx_hooked, true))
                apg_pop_set_tick(ms->gm_broker->br_pop, rx_tick, NULL);
            pthread_mutex_lock(&rx_lock);
            w->rw_next = rx_head;
            rx_head = w;
            pthread_mutex_unlock(&rx_lock);
        }
    }
    apg_buf_free(&out);
}

/* SEND_MESSAGE (10), SEND_MESSAGE_V2 (310) and SEND_BATCH_MESSAGE (320).
 *
 * A send is a short pipeline on the connection's loop thread, one step per
 * function, each answering and returning false when it refuses:
 *
 *   parse    the request header (long or short field names)
 *   check    broker and topic write permission, topic name, auto-creation
 *            through TBW102, queue id range, body and property sizes
 *   rewrite  what the broker changes before storing: %RETRY% sends past
 *            their limit go to %DLQ%, UNIQ_KEY (when the client gave none)
 *            and CLUSTER are added, the tag hash is computed, a batch body
 *            is split into messages
 *   delay    a message with a delay level goes to SCHEDULE_TOPIC_XXXX
 *            (src/broker/schedule), one with a future deliver time to
 *            rmq_sys_wheel_timer (src/broker/timer)
 *   half     a message with TRAN_MSG=true goes to RMQ_SYS_TRANS_HALF_TOPIC
 *            until END_TRANSACTION (src/broker/txn)
 *   put      the write service (broker_put.c): queue choice, store, sync
 *            ack, busy refusal; single messages are held so one read's
 *            sends share one append
 *
 * ACL slots in as a step (check) without touching the others.
 *
 * Refusals keep RocketMQ's response codes and say what to change.
 *
 * Threads: loop thread only; struct apg_send_loop is that loop's scratch
 * (property buffer, batch arrays, last accepted topic, last born host). */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_rt.h"
#include "broker/schedule/schedule.h"
#include "broker/txn/txn.h"
#include "broker/timer/timer.h"
#include "common/hash.h"
#include "common/mem.h"
#include "protocol/message.h"

#define BATCH_MAX 4096

/* Per loop: scratch kept between requests so a warm send allocates nothing. */
struct apg_send_loop {
    struct apg_buf sl_props;        /* the stored property strings */
    struct apg_buf sl_sched;        /* a delayed message's properties (step delay) */
    char sl_ok_topic[APG_NAME_CAP]; /* the last topic that passed the name checks */
    char sl_host_peer[64];          /* the last peer parsed into sl_host */
    struct apg_host sl_host;
    struct apg_msg_in *sl_msgs; /* a batch's messages, BATCH_MAX at most */
    size_t *sl_poff, *sl_plen;  /* their properties inside sl_props */
    int sl_cap;
};

/* One send on its way through the pipeline. */
struct send_req {
    struct apg_broker *sr_b;
    struct apg_bloop *sr_bl;
    struct apg_send_loop *sr_sl;
    struct apg_conn *sr_c;
    const struct apg_rcmd *sr_req;
    bool sr_batch;
    struct apg_send_hdr sr_h;
    size_t sr_props_len; /* strlen(sr_h.sh_props) */
    struct apg_topic_cfg sr_tc;
    const char *sr_topic; /* the topic stored into: sh_topic, or sr_dlq */
    char sr_dlq[APG_NAME_CAP + 8];
    int32_t sr_qid;
    int sr_delay;   /* delay level of a single message, 0 when none */
    int64_t sr_due; /* a single timer message's deliver time, 0 when none */
    bool sr_half;   /* a transaction's half message (single messages only) */
    bool sr_sync;
    struct apg_msg_in sr_one, *sr_msgs;
    int sr_n;
    char sr_uniq[80];
};

apg_err_t apg_broker_send_loop_start(struct apg_bloop *bl)
{
    bl->bl_send = apg_calloc(1, sizeof(*bl->bl_send));
    return bl->bl_send ? APG_OK : APG_ENOMEM;
}

void apg_broker_send_loop_stop(struct apg_bloop *bl)
{
    struct apg_send_loop *sl = bl->bl_send;
    if (!sl)
        return;
    apg_buf_free(&sl->sl_props);
    apg_buf_free(&sl->sl_sched);
    apg_free(sl->sl_msgs);
    apg_free(sl->sl_poff);
    apg_free(sl->sl_plen);
    apg_free(sl);
    bl->bl_send = NULL;
}

static apg_err_t batch_reserve(struct apg_send_loop *sl, int n)
{
    if (n <= sl->sl_cap)
        return APG_OK;
    int cap = sl->sl_cap ? sl->sl_cap : 64;
    while (cap < n)
        cap *= 2;
    if (cap > BATCH_MAX)
        cap = BATCH_MAX;
    struct apg_msg_in *m = apg_realloc(sl->sl_msgs, (size_t)cap * sizeof(*m));
    if (m)
        sl->sl_msgs = m;
    size_t *po = apg_realloc(sl->sl_poff, (size_t)cap * sizeof(*po));
    if (po)
        sl->sl_poff = po;
    size_t *pl = apg_realloc(sl->sl_plen, (size_t)cap * sizeof(*pl));
    if (pl)
        sl->sl_plen = pl;
    if (!m || !po || !pl)
        return APG_ENOMEM;
    sl->sl_cap = cap;
    return APG_OK;
}

static void parse_host(struct apg_host *h, const char *peer)
{
    memset(h, 0, sizeof(*h));
    char ip[64];
    const char *colon = peer ? strrchr(peer, ':') : NULL;
    if (!colon || (size_t)(colon - peer) >= sizeof(ip))
        return;
    memcpy(ip, peer, (size_t)(colon - peer));
    ip[colon - peer] = 0;
    h->h_port = (uint32_t)atoi(colon + 1);
    if (inet_pton(AF_INET, ip, h->h_ip) == 1)
        return;
    char *ip6 = ip;
    if (ip6[0] == '[') {
        ip6++;
        char *e = strchr(ip6, ']');
        if (e)
            *e = 0;
    }
    if (inet_pton(AF_INET6, ip6, h->h_ip) == 1)
        h->h_v6 = true;
}

/* The born host of a peer. A connection's peer string never changes, so
 * consecutive sends from the same peer reuse the parse (a strcmp instead of
 * inet_pton). */
static void fill_host(struct apg_send_loop *sl, struct apg_host *h, const char *peer)
{
    if (!peer || strlen(peer) >= sizeof(sl->sl_host_peer)) {
        parse_host(h, peer);
        return;
    }
    if (strcmp(peer, sl->sl_host_peer) != 0) {
        parse_host(&sl->sl_host, peer);
        strcpy(sl->sl_host_peer, peer);
    }
    *h = sl->sl_host;
}

/* The properties the send path looks at, found in one walk over the
 * client's property string (the last pair of each name, as apg_props_find
 * would return). */
struct prop_scan {
    const char *ps_uniq, *ps_tags, *ps_wait, *ps_delay_v, *ps_tran, *ps_timer_v;
    size_t ps_uniq_len, ps_tags_len, ps_wait_len, ps_delay_len, ps_tran_len, ps_timer_len;
    bool ps_cluster, ps_delay;
    enum apg_timer_kind ps_timer;
};

static void props_scan(const char *props, size_t len, struct prop_scan *ps)
{
    memset(ps, 0, sizeof(*ps));
    size_t pos = 0;
    struct apg_prop_kv kv;
    while (apg_props_next(props, len, &pos, &kv)) {
        const char *n = kv.pk_name;
        switch (kv.pk_name_len) {
        case 8:
            if (memcmp(n, "UNIQ_KEY", 8) == 0) {
                ps->ps_uniq = kv.pk_val;
                ps->ps_uniq_len = kv.pk_val_len;
            } else if (memcmp(n, "TRAN_MSG", 8) == 0) {
                ps->ps_tran = kv.pk_val;
                ps->ps_tran_len = kv.pk_val_len;
            }
            break;
        case 4:
            if (memcmp(n, "TAGS", 4) == 0) {
                ps->ps_tags = kv.pk_val;
                ps->ps_tags_len = kv.pk_val_len;
            } else if (memcmp(n, "WAIT", 4) == 0) {
                ps->ps_wait = kv.pk_val;
                ps->ps_wait_len = kv.pk_val_len;
            }
            break;
        case 7:
            ps->ps_cluster |= memcmp(n, "CLUSTER", 7) == 0;
            break;
        case 5:
            if (memcmp(n, "DELAY", 5) == 0) {
                ps->ps_delay = true;
                ps->ps_delay_v = kv.pk_val;
                ps->ps_delay_len = kv.pk_val_len;
            }
            break;
        default: {
            enum apg_timer_kind k = apg_timer_prop_kind(n, kv.pk_name_len);
            if (k != APG_TIMER_NONE) {
                ps->ps_timer = k;
                ps->ps_timer_v = kv.pk_val;
                ps->ps_timer_len = kv.pk_val_len;
            }
            break;
        }
        }
    }
}

/* Builds the stored property string: the client's, plus UNIQ_KEY when
 * missing, plus CLUSTER. Writes the UNIQ_KEY value into uniq. */
static apg_err_t build_props(struct apg_broker *b, const char *props, size_t len,
                             const struct prop_scan *ps, struct apg_buf *out, char *uniq,
                             size_t uniqlen)
{
    apg_err_t e = apg_buf_append(out, props, len);
    if (len && props[len - 1] != APG_PROPS_SEP && !e)
        e = apg_buf_append(out, "\x02", 1);
    if (ps->ps_uniq) {
        apg_text_copy(uniq, uniqlen, ps->ps_uniq, ps->ps_uniq_len);
    } else {
        char id[33];
        apg_msgid_uniq_new(b->br_ip4, id);
        apg_text_copy(uniq, uniqlen, id, sizeof(id) - 1);
        if (!e)
            e = apg_props_append(out, "UNIQ_KEY", id);
    }
    if (!e && !ps->ps_cluster)
        e = apg_props_append(out, "CLUSTER", b->br_cluster);
    return e;
}

static int64_t tags_code(const struct prop_scan *ps)
{
    return ps->ps_tags && ps->ps_tags_len ? (int64_t)apg_java_hash(ps->ps_tags, ps->ps_tags_len)
                                          : 0;
}

/* A send to %RETRY%<group> is how a client hands back a message when
 * CONSUMER_SEND_MSG_BACK failed (it resends the copy itself, reconsumeTimes
 * already counted up). Past the group's limit (the header's
 * maxReconsumeTimes when given, else the group's retryMaxTimes) the copy
 * goes to %DLQ%<group> instead, as RocketMQ 5.x decides it (reconsumeTimes >
 * max; 4.9 used >=): sr_topic, sr_tc and sr_qid then name the dead-letter
 * topic's queue 0. False when it has answered. */
static bool retry_or_dlq(struct send_req *sr)
{
    const struct apg_send_hdr *h = &sr->sr_h;
    const char *group = h->sh_topic + 7;
    struct apg_group_cfg gc;
    char remark[1024];
    if (!apg_broker_group_or_refuse(sr->sr_b, sr->sr_c, sr->sr_req, group, &gc))
        return false;
    int32_t max =
        h->sh_max_reconsume_times >= 0 ? h->sh_max_reconsume_times : gc.gc_retry_max_times;
    if (h->sh_reconsume_times <= max)
        return true;
    snprintf(sr->sr_dlq, sizeof(sr->sr_dlq), "%s%s", APG_DLQ_PREFIX, group);
    struct apg_topics *t = sr->sr_b->br_topics;
    if (apg_topics_ensure_dlq(t, sr->sr_dlq) != APG_OK ||
        !apg_topics_get(t, sr->sr_dlq, &sr->sr_tc)) {
        apg_broker_refuse(sr->sr_b, sr->sr_c, sr->sr_req, APG_RESP_SYSTEM_ERROR, "out of memory");
        return false;
    }
    if (!(sr->sr_tc.tc_perm & APG_PERM_WRITE) || sr->sr_tc.tc_write_queues <= 0) {
        snprintf(
            remark, sizeof(remark),
            "topic %s is not writable; update it with perm 6 (apogee admin updateTopicPerm -t %s "
            "-p 6 -c <cluster>; mqadmin takes the same options)",
            sr->sr_dlq, sr->sr_dlq);
        apg_broker_refuse(sr->sr_b, sr->sr_c, sr->sr_req, APG_RESP_NO_PERMISSION, remark);
        return false;
    }
    sr->sr_topic = sr->sr_dlq;
    sr->sr_qid = 0;
    return true;
}

/* Step 1: the header. */
static bool send_parse(struct send_req *sr)
{
    char err[512];
    bool short_names = sr->sr_req->code != APG_REQ_SEND_MESSAGE;
    if (apg_send_hdr_parse(sr->sr_req, short_names, &sr->sr_h, err, sizeof(err))) {
        apg_broker_refuse(sr->sr_b, sr->sr_c, sr->sr_req, APG_RESP_SYSTEM_ERROR, err);
        return false;
    }
    sr->sr_topic = sr->sr_h.sh_topic;
    sr->sr_qid = sr->sr_h.sh_queue_id;
    return true;
}

/* The name checks, which depend on the name alone: a producer sending to
 * the topic this loop last accepted skips them. */
static bool check_topic_name(struct send_req *sr)
{
    char err[512], remark[768];
    const char *topic = sr->sr_h.sh_topic;
    struct apg_send_loop *sl = sr->sr_sl;
    if (sl->sl_ok_topic[0] && strcmp(topic, sl->sl_ok_topic) == 0)
        return true;
    if (apg_name_check_topic(topic, err, sizeof(err))) {
        apg_broker_refuse(sr->sr_b, sr->sr_c, sr->sr_req, APG_RESP_INVALID_PARAMETER, err);
        return false;
    }
    if (apg_name_topic_send_forbidden(topic)) {
        snprintf(remark, sizeof(remark), "sending to the system topic %s is not allowed", topic);
        apg_broker_refuse(sr->sr_b, sr->sr_c, sr->sr_req, APG_RESP_NO_PERMISSION, remark);
        return false;
    }
    if (strlen(topic) < sizeof(sl->sl_ok_topic))
        strcpy(sl->sl_ok_topic, topic);
    return true;
}

/* Step 2: may this request be stored where it asks? */
static bool send_check(struct send_req *sr)
{
    char err[512], remark[768];
    struct apg_broker *b = sr->sr_b;
    struct apg_conn *c = sr->sr_c;
    const struct apg_rcmd *req = sr->sr_req;
    const struct apg_send_hdr *h = &sr->sr_h;
    if (apg_broker_refuse_unwritable(b, c, req) || !check_topic_name(sr))
        return false;
    if (sr->sr_batch && strncmp(h->sh_topic, APG_RETRY_PREFIX, 7) == 0) {
        snprintf(remark, sizeof(remark),
                 "batch request does not support retry group %s; send retried messages one at a "
                 "time",
                 h->sh_topic);
        apg_broker_refuse(b, c, req, APG_RESP_MESSAGE_ILLEGAL, remark);
        return false;
    }
    if (apg_topics_get_or_create_for_send(b->br_topics, h->sh_topic, h->sh_default_topic,
                                          h->sh_default_qnums, 1, &sr->sr_tc, err, sizeof(err))) {
        apg_broker_refuse(b, c, req, APG_RESP_TOPIC_NOT_EXIST, err);
        return false;
    }
    const struct apg_topic_cfg *tc = &sr->sr_tc;
    if (!(tc->tc_perm & APG_PERM_WRITE)) {
        snprintf(remark, sizeof(remark),
                 "topic %s is not writable (perm %d); update it with perm 6 (apogee admin "
                 "updateTopicPerm -t %s -p 6 -c <cluster>; mqadmin takes the same options)",
                 h->sh_topic, tc->tc_perm, h->sh_topic);
        apg_broker_refuse(b, c, req, APG_RESP_NO_PERMISSION, remark);
        return false;
    }
    int32_t nq =
        tc->tc_write_queues > tc->tc_read_queues ? tc->tc_write_queues : tc->tc_read_queues;
    if (sr->sr_qid >= nq) {
        snprintf(remark, sizeof(remark),
                 "queueId %d is out of range for topic %s, which has %d queues (0..%d)", sr->sr_qid,
                 h->sh_topic, nq, nq - 1);
        apg_broker_refuse(b, c, req, APG_RESP_INVALID_PARAMETER, remark);
        return false;
    }
    if (req->body_len > b->br_max_msg_size) {
        if (sr->sr_batch)
            snprintf(remark, sizeof(remark),
                     "the batch is %u bytes, larger than the broker's maxMessageSize of %u "
                     "bytes; split it or raise maxMessageSize",
                     req->body_len, b->br_max_msg_size);
        else
            snprintf(remark, sizeof(remark),
                     "the message body is %u bytes, larger than the broker's maxMessageSize of "
                     "%u bytes; send a smaller message or raise maxMessageSize in the broker "
                     "config",
                     req->body_len, b->br_max_msg_size);
        apg_broker_refuse(b, c, req, APG_RESP_MESSAGE_ILLEGAL, remark);
        return false;
    }
    sr->sr_props_len = strlen(h->sh_props);
    if (sr->sr_props_len > 32767) {
        snprintf(remark, sizeof(remark),
                 "the message properties are %zu bytes; the limit is 32767 (fewer or shorter "
                 "keys and user properties)",
                 sr->sr_props_len);
        apg_broker_refuse(b, c, req, APG_RESP_MESSAGE_ILLEGAL, remark);
        return false;
    }
    return true;
}

/* Splits a batch body into sr_msgs (properties rebuilt into sl_props).
 * False when it has answered. */
static bool split_batch(struct send_req *sr)
{
    char err[512];
    struct apg_send_loop *sl = sr->sr_sl;
    const struct apg_rcmd *req = sr->sr_req;
    size_t pos = 0;
    struct apg_batch_item it;
    apg_err_t e;
    int n = 0;
    while ((e = apg_batch_next(req->body, req->body_len, &pos, &it, err, sizeof(err))) == APG_OK) {
        if (n >= BATCH_MAX) {
            snprintf(err, sizeof(err), "a batch may hold at most %d messages", BATCH_MAX);
            e = APG_EINVAL;
            break;
        }
        if (batch_reserve(sl, n + 1)) {
            snprintf(err, sizeof(err), "out of memory");
            e = APG_ENOMEM;
            break;
        }
        struct prop_scan ips;
        props_scan(it.bi_props, it.bi_props_len, &ips);
        if (ips.ps_delay || ips.ps_timer) {
            snprintf(err, sizeof(err), "batch messages cannot carry a delay level or deliver time");
            e = APG_EINVAL;
            break;
        }
        sl->sl_poff[n] = sl->sl_props.b_len;
        char u[80];
        if (build_props(sr->sr_b, it.bi_props, it.bi_props_len, &ips, &sl->sl_props, u,
                        sizeof(u))) {
            snprintf(err, sizeof(err), "out of memory");
            e = APG_ENOMEM;
            break;
        }
        if (n == 0)
            strcpy(sr->sr_uniq, u);
        sl->sl_plen[n] = sl->sl_props.b_len - sl->sl_poff[n];
        struct apg_msg_in *m = &sl->sl_msgs[n];
        memset(m, 0, sizeof(*m));
        m->mi_tags_code = tags_code(&ips);
        m->mi_body = it.bi_body;
        m->mi_body_len = it.bi_body_len;
        m->mi_flag = it.bi_flag;
        n++;
    }
    if (e != APG_ENOTFOUND || n == 0) {
        if (n == 0 && e == APG_ENOTFOUND)
            snprintf(err, sizeof(err), "the batch body holds no message");
        apg_broker_refuse(sr->sr_b, sr->sr_c, req, APG_RESP_MESSAGE_ILLEGAL, err);
        return false;
    }
    for (int i = 0; i < n; i++) {
        sl->sl_msgs[i].mi_props = (const char *)sl->sl_props.b_data + sl->sl_poff[i];
        sl->sl_msgs[i].mi_props_len = sl->sl_plen[i];
    }
    sr->sr_msgs = sl->sl_msgs;
    sr->sr_n = n;
    return true;
}

static bool send_timer(struct send_req *sr, const struct prop_scan *ps);

/* Step 3: what the broker changes before storing. */
static bool send_rewrite(struct send_req *sr)
{
    struct apg_broker *b = sr->sr_b;
    struct apg_send_loop *sl = sr->sr_sl;
    const struct apg_send_hdr *h = &sr->sr_h;
    if (!sr->sr_batch && strncmp(sr->sr_topic, APG_RETRY_PREFIX, 7) == 0 && !retry_or_dlq(sr))
        return false;
    sr->sr_qid = apg_broker_put_queue(b, &sr->sr_tc, sr->sr_qid);
    struct prop_scan ps;
    props_scan(h->sh_props, sr->sr_props_len, &ps);
    sr->sr_sync = b->br_sync_flush &&
                  !(ps.ps_wait && ps.ps_wait_len == 5 && strncmp(ps.ps_wait, "false", 5) == 0);
    apg_buf_reset(&sl->sl_props);
    if (sr->sr_batch) {
        if (!split_batch(sr))
            return false;
    } else {
        if (build_props(b, h->sh_props, sr->sr_props_len, &ps, &sl->sl_props, sr->sr_uniq,
                        sizeof(sr->sr_uniq))) {
            apg_broker_refuse(sr->sr_b, sr->sr_c, sr->sr_req, APG_RESP_SYSTEM_ERROR,
                              "out of memory");
            return false;
        }
        if (sl->sl_props.b_len > 32767) {
            apg_broker_refuse(sr->sr_b, sr->sr_c, sr->sr_req, APG_RESP_MESSAGE_ILLEGAL,
                              "the message properties exceed 32767 bytes");
            return false;
        }
        struct apg_msg_in *m = &sr->sr_one;
        memset(m, 0, sizeof(*m));
        m->mi_body = sr->sr_req->body;
        m->mi_body_len = sr->sr_req->body_len;
        m->mi_flag = h->sh_flag;
        m->mi_props = (const char *)sl->sl_props.b_data;
        m->mi_props_len = sl->sl_props.b_len;
        m->mi_tags_code = tags_code(&ps);
        sr->sr_msgs = m;
        sr->sr_n = 1;
        /* A %RETRY% send moved to %DLQ% does not wait (RocketMQ clears its
         * level). */
        sr->sr_half = apg_txn_is_half(ps.ps_tran, ps.ps_tran_len);
        if (sr->sr_topic != sr->sr_dlq && !sr->sr_half)
            sr->sr_delay =
                apg_schedule_level(b->br_schedule, ps.ps_delay_v, ps.ps_delay_len, h->sh_sysflag);
        if (sr->sr_topic != sr->sr_dlq && !sr->sr_half && sr->sr_delay == 0 && ps.ps_timer &&
            !send_timer(sr, &ps))
            return false;
    }
    struct apg_host born;
    fill_host(sl, &born, apg_conn_peer(sr->sr_c));
    int32_t sysflag = h->sh_sysflag;
    if (sr->sr_tc.tc_filter == APG_TOPIC_MULTI_TAG)
        sysflag |= APG_SYSFLAG_MULTI_TAGS;
    size_t topic_len = strlen(sr->sr_topic);
    for (int i = 0; i < sr->sr_n; i++) {
        struct apg_msg_in *m = &sr->sr_msgs[i];
        m->mi_topic = sr->sr_topic;
        m->mi_topic_len = topic_len;
        m->mi_queue_id = sr->sr_qid;
        m->mi_sysflag = sysflag;
        m->mi_born_ts = h->sh_born_ts;
        m->mi_born_host = born;
        m->mi_reconsume_times = h->sh_reconsume_times;
    }
    return true;
}

/* Answers a send whose rewritten properties could not be built (e:
 * APG_ETOOBIG or APG_ENOMEM); returns false for the pipeline. */
static bool props_refuse(struct send_req *sr, apg_err_t e)
{
    apg_broker_refuse(sr->sr_b, sr->sr_c, sr->sr_req,
                      e == APG_ETOOBIG ? APG_RESP_MESSAGE_ILLEGAL : APG_RESP_SYSTEM_ERROR,
                      e == APG_ETOOBIG ? "the message properties exceed 32767 bytes"
                                       : "out of memory");
    return false;
}

/* Part of step 3: the deliver time of a timer message (sr_due), or a
 * refusal when it is past timerMaxDelaySec. A prepared or rolled-back
 * transaction half never waits. */
static bool send_timer(struct send_req *sr, const struct prop_scan *ps)
{
    int32_t tx = sr->sr_h.sh_sysflag & APG_SYSFLAG_TX_MASK;
    if (tx == APG_SYSFLAG_TX_PREPARED || tx == APG_SYSFLAG_TX_ROLLBACK)
        return true;
    char err[256];
    if (apg_timer_due(sr->sr_b->br_timer, ps->ps_timer, ps->ps_timer_v, ps->ps_timer_len,
                      apg_wall_ms(), &sr->sr_due, err, sizeof(err))) {
        apg_broker_refuse(sr->sr_b, sr->sr_c, sr->sr_req, APG_RESP_MESSAGE_ILLEGAL, err);
        return false;
    }
    const struct apg_msg_in *m = &sr->sr_msgs[0];
    if (ps->ps_timer && sr->sr_due <= 0 && sr->sr_b->br_timer &&
        apg_timer_park_qid(m->mi_props, m->mi_props_len) == APG_TIMER_CANCEL_QID) {
        apg_broker_refuse(sr->sr_b, sr->sr_c, sr->sr_req, APG_RESP_MESSAGE_ILLEGAL,
                          "a TIMER_DEL_UNIQKEY cancel needs a deliver time in the future (the "
                          "pending timer's)");
        return false;
    }
    return true;
}

/* Step 3b: a message with a delay level is stored in SCHEDULE_TOPIC_XXXX,
 * queue level - 1, with REAL_TOPIC and REAL_QID naming where it goes when
 * due (src/broker/schedule). The reply still names the real queue. */
static bool send_delay(struct send_req *sr)
{
    if (sr->sr_delay <= 0 && sr->sr_due <= 0)
        return true;
    struct apg_send_loop *sl = sr->sr_sl;
    struct apg_msg_in *m = &sr->sr_msgs[0];
    apg_buf_reset(&sl->sl_sched);
    apg_err_t e;
    if (sr->sr_delay > 0) {
        e = apg_schedule_props(&sl->sl_sched, m->mi_props, m->mi_props_len, sr->sr_delay,
                               sr->sr_topic, sr->sr_qid);
    } else {
        char due[24];
        snprintf(due, sizeof(due), "%lld", (long long)sr->sr_due);
        e = apg_schedule_props_with(&sl->sl_sched, m->mi_props, m->mi_props_len, "TIMER_OUT_MS",
                                    due, sr->sr_topic, sr->sr_qid);
    }
    if (e)
        return props_refuse(sr, e);
    m->mi_props = (const char *)sl->sl_sched.b_data;
    m->mi_props_len = sl->sl_sched.b_len;
    if (sr->sr_delay > 0) {
        m->mi_topic = APG_SCHEDULE_TOPIC;
        m->mi_topic_len = APG_SCHEDULE_TOPIC_LEN;
        m->mi_queue_id = sr->sr_delay - 1;
    } else {
        m->mi_topic = APG_TIMER_TOPIC;
        m->mi_topic_len = APG_TIMER_TOPIC_LEN;
        m->mi_queue_id = apg_timer_park_qid(m->mi_props, m->mi_props_len);
    }
    return true;
}

/* Step 3c: a transaction's half message is stored in
 * RMQ_SYS_TRANS_HALF_TOPIC queue 0, with REAL_TOPIC and REAL_QID and no
 * transaction type in its sysflag (so it gets a consume-queue entry there),
 * until END_TRANSACTION commits or rolls it back (src/broker/txn). The
 * reply names the real queue and the half's queue offset and msgId, which
 * the producer's END_TRANSACTION quotes. */
static bool send_half(struct send_req *sr)
{
    if (!sr->sr_half)
        return true;
    struct apg_send_loop *sl = sr->sr_sl;
    struct apg_msg_in *m = &sr->sr_msgs[0];
    apg_buf_reset(&sl->sl_sched);
    apg_err_t e =
        apg_txn_half_props(&sl->sl_sched, m->mi_props, m->mi_props_len, sr->sr_topic, sr->sr_qid);
    if (e)
        return props_refuse(sr, e);
    m->mi_props = (const char *)sl->sl_sched.b_data;
    m->mi_props_len = sl->sl_sched.b_len;
    m->mi_topic = APG_TXN_HALF_TOPIC;
    m->mi_topic_len = sizeof(APG_TXN_HALF_TOPIC) - 1;
    m->mi_queue_id = 0;
    m->mi_sysflag &= ~APG_SYSFLAG_TX_MASK;
    return true;
}

/* Step 4: the write service; a single message is held for the read's
 * coalesced append when it can be (a delayed one is not: the reply names
 * its real queue, not the schedule queue it is stored in). */
static void send_put(struct send_req *sr)
{
    if (!sr->sr_batch && sr->sr_delay == 0 && sr->sr_due == 0 && !sr->sr_half &&
        apg_broker_put_hold(sr->sr_b, sr->sr_bl, sr->sr_c, sr->sr_req, &sr->sr_msgs[0], sr->sr_uniq,
                            sr->sr_sync))
        return;
    apg_broker_put(sr->sr_b, sr->sr_bl, sr->sr_c, sr->sr_req, sr->sr_msgs, sr->sr_n, sr->sr_qid,
                   sr->sr_uniq, sr->sr_sync);
}

void apg_broker_proc_send(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req)
{
    struct send_req sr;
    sr.sr_b = b;
    sr.sr_bl = &b->br_loops[apg_conn_loop_index(c)];
    sr.sr_sl = sr.sr_bl->bl_send;
    sr.sr_c = c;
    sr.sr_req = req;
    sr.sr_batch = req->code == APG_REQ_SEND_BATCH_MESSAGE;
    sr.sr_uniq[0] = '\0';
    sr.sr_delay = 0;
    sr.sr_half = false;
    sr.sr_due = 0;
    if (send_parse(&sr) && send_check(&sr) && send_rewrite(&sr) && send_delay(&sr) &&
        send_half(&sr))
        send_put(&sr);
}

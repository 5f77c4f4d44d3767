/* SEND_MESSAGE (10), SEND_MESSAGE_V2 (310) and SEND_BATCH_MESSAGE (320).
 *
 * Everything happens in the connection's loop thread: parse the header,
 * validate (broker/topic write permission, names, queue id, body and
 * property sizes), auto-create the topic through TBW102, add UNIQ_KEY (when
 * the client did not) and CLUSTER, compute the tag hash, append to the store
 * and reply. Under SYNC_FLUSH the reply waits for the store's group-commit
 * acknowledgement: the flush thread queues the finished send on the
 * connection loop's bl_acks list and posts one drain per batch, so there is
 * no per-message thread hand-off on the way in and one wake-up per flush on
 * the way out. br_sync_pending bounds how many sends may wait for the disk;
 * past it the broker answers SYSTEM_BUSY instead of buffering without limit.
 *
 * Refusals keep RocketMQ's response codes and say what to change. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_rt.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/mem.h"
#include "protocol/message.h"

#define BATCH_MAX 4096

/* A send waiting for its SYNC_FLUSH acknowledgement. */
struct apg_sync_ack {
    struct apg_sync_ack *sa_next;
    struct apg_broker *sa_broker;
    struct apg_conn *sa_conn; /* referenced */
    int32_t sa_opaque;
    uint8_t sa_serialize;
    bool sa_oneway;
    apg_err_t sa_rc;
    int32_t sa_queue_id;
    int64_t sa_queue_offset;
    char sa_uniq[80];
    char *sa_msgid; /* comma-joined for batches: owned, or sa_id1 for one message */
    char sa_id1[64];
};

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

/* Per loop thread: the last peer parsed into a born host. A connection's
 * peer string never changes, so consecutive sends from the same peer reuse
 * the parse (a strcmp instead of inet_pton). */
static __thread char host_peer[64];
static __thread struct apg_host host_cached;

static void fill_host(struct apg_host *h, const char *peer)
{
    if (!peer || strlen(peer) >= sizeof(host_peer)) {
        parse_host(h, peer);
        return;
    }
    if (strcmp(peer, host_peer) != 0) {
        parse_host(&host_cached, peer);
        strcpy(host_peer, peer);
    }
    *h = host_cached;
}

static void send_response(struct apg_conn *c, int32_t opaque, uint8_t ser, int32_t code,
                          const char *remark, const char *msgid, int32_t qid, int64_t qoff,
                          const char *uniq)
{
    struct apg_rcmd req = {0};
    req.opaque = opaque;
    req.serialize = ser;
    struct apg_rcmd resp;
    apg_rcmd_init_response(&resp, &req, code, remark);
    char q[24], o[24];
    if (code == APG_RESP_SUCCESS || code == APG_RESP_FLUSH_DISK_TIMEOUT) {
        apg_rcmd_ext_add(&resp, "msgId", msgid);
        apg_rcmd_ext_add(&resp, "queueId", apg_fmt_i64(q, qid));
        apg_rcmd_ext_add(&resp, "queueOffset", apg_fmt_i64(o, qoff));
        if (uniq && uniq[0])
            apg_rcmd_ext_add(&resp, "transactionId", uniq);
        apg_rcmd_ext_add(&resp, "MSG_REGION", "DefaultRegion");
        apg_rcmd_ext_add(&resp, "TRACE_ON", "true");
    }
    apg_conn_send(c, &resp, NULL, 0);
}

/* Per loop thread: the property buffer sends are built in, kept between
 * requests so a send allocates nothing once it has grown. */
static __thread struct apg_buf loop_props;

/* Per loop thread: the last topic name that passed the name checks. */
static __thread char loop_ok_topic[APG_NAME_CAP];

/* Per loop thread: the arrays a batch is split into, grown by doubling up to
 * BATCH_MAX and kept, so a warm batch neither allocates nor zeroes them. */
struct batch_scratch {
    struct apg_msg_in *bs_msgs;
    size_t *bs_poff, *bs_plen;
    struct apg_put_result *bs_res;
    int bs_cap;
};
static __thread struct batch_scratch loop_batch;

static apg_err_t batch_reserve(struct batch_scratch *bs, int n)
{
    if (n <= bs->bs_cap)
        return APG_OK;
    int cap = bs->bs_cap ? bs->bs_cap : 64;
    while (cap < n)
        cap *= 2;
    if (cap > BATCH_MAX)
        cap = BATCH_MAX;
    struct apg_msg_in *m = apg_realloc(bs->bs_msgs, (size_t)cap * sizeof(*m));
    if (m)
        bs->bs_msgs = m;
    size_t *po = apg_realloc(bs->bs_poff, (size_t)cap * sizeof(*po));
    if (po)
        bs->bs_poff = po;
    size_t *pl = apg_realloc(bs->bs_plen, (size_t)cap * sizeof(*pl));
    if (pl)
        bs->bs_plen = pl;
    struct apg_put_result *r = apg_realloc(bs->bs_res, (size_t)cap * sizeof(*r));
    if (r)
        bs->bs_res = r;
    if (!m || !po || !pl || !r)
        return APG_ENOMEM;
    bs->bs_cap = cap;
    return APG_OK;
}

static void pend_free(void);

void apg_broker_send_loop_stop(void)
{
    pend_free();
    apg_buf_free(&loop_props);
    apg_free(loop_batch.bs_msgs);
    apg_free(loop_batch.bs_poff);
    apg_free(loop_batch.bs_plen);
    apg_free(loop_batch.bs_res);
    memset(&loop_batch, 0, sizeof(loop_batch));
}

void apg_broker_send_drain(void *arg)
{
    struct apg_bloop *bl = arg;
    pthread_mutex_lock(&bl->bl_ack_lock);
    struct apg_sync_ack *list = bl->bl_acks;
    bl->bl_acks = NULL;
    bl->bl_ack_posted = false;
    pthread_mutex_unlock(&bl->bl_ack_lock);
    /* The list is newest-first; answer in arrival order. */
    struct apg_sync_ack *rev = NULL;
    while (list) {
        struct apg_sync_ack *n = list->sa_next;
        list->sa_next = rev;
        rev = list;
        list = n;
    }
    while (rev) {
        struct apg_sync_ack *a = rev;
        rev = a->sa_next;
        if (!a->sa_oneway && !apg_conn_is_closed(a->sa_conn)) {
            if (a->sa_rc == APG_OK)
                send_response(a->sa_conn, a->sa_opaque, a->sa_serialize, APG_RESP_SUCCESS, NULL,
                              a->sa_msgid, a->sa_queue_id, a->sa_queue_offset, a->sa_uniq);
            else if (a->sa_rc == APG_ETIMEDOUT)
                send_response(a->sa_conn, a->sa_opaque, a->sa_serialize,
                              APG_RESP_FLUSH_DISK_TIMEOUT,
                              "stored, but the disk flush did not finish within syncFlushTimeout",
                              a->sa_msgid, a->sa_queue_id, a->sa_queue_offset, a->sa_uniq);
            else
                send_response(a->sa_conn, a->sa_opaque, a->sa_serialize,
                              APG_RESP_SERVICE_NOT_AVAILABLE,
                              "the store failed to fsync the commit log and no longer accepts "
                              "writes; check the disk and restart the broker",
                              NULL, 0, 0, NULL);
        }
        atomic_fetch_sub(&a->sa_broker->br_sync_pending, 1);
        apg_conn_unref(a->sa_conn);
        if (a->sa_msgid != a->sa_id1)
            apg_free(a->sa_msgid);
        apg_free(a);
    }
}

/* Store flush thread. */
static void on_ack(void *ud, apg_err_t rc)
{
    struct apg_sync_ack *a = ud;
    struct apg_broker *b = a->sa_broker;
    struct apg_bloop *bl = &b->br_loops[apg_conn_loop_index(a->sa_conn)];
    a->sa_rc = rc;
    pthread_mutex_lock(&bl->bl_ack_lock);
    a->sa_next = bl->bl_acks;
    bl->bl_acks = a;
    bool post = !bl->bl_ack_posted;
    bl->bl_ack_posted = true;
    pthread_mutex_unlock(&bl->bl_ack_lock);
    if (post && apg_net_server_post(b->br_srv, bl->bl_idx, apg_broker_send_drain, bl) != APG_OK) {
        /* Shutting down: the loop will not run again; free what we queued. */
        pthread_mutex_lock(&bl->bl_ack_lock);
        bl->bl_ack_posted = false;
        pthread_mutex_unlock(&bl->bl_ack_lock);
    }
}

static int32_t store_err_code(apg_err_t e)
{
    switch (e) {
    case APG_EINVAL:
    case APG_ETOOBIG:
        return APG_RESP_MESSAGE_ILLEGAL;
    case APG_EDISKFULL:
    case APG_EFSYNC:
    case APG_ECLOSED:
    case APG_ESHUTDOWN:
        return APG_RESP_SERVICE_NOT_AVAILABLE;
    case APG_EBUSY:
        return APG_RESP_SYSTEM_BUSY;
    default:
        return APG_RESP_SYSTEM_ERROR;
    }
}

/* Answers one send the store refused (e, with the store's err text). */
static void reply_refused(struct apg_conn *c, int32_t opaque, uint8_t ser, apg_err_t e,
                          const char *err)
{
    char remark[768];
    snprintf(remark, sizeof(remark), "the store refused the message: %s",
             err[0] ? err : apg_strerror(e));
    send_response(c, opaque, ser, store_err_code(e), remark, NULL, 0, 0, NULL);
}

/* Answers one send stored at r. */
static void reply_stored(struct apg_broker *b, struct apg_conn *c, int32_t opaque, uint8_t ser,
                         int32_t qid, const struct apg_put_result *r, const char *uniq)
{
    char id[64];
    apg_msgid_encode(&b->br_store_host, r->pr_phys_offset, id, sizeof(id));
    send_response(c, opaque, ser, APG_RESP_SUCCESS, NULL, id, qid, r->pr_queue_offset, uniq);
}

/* A SYNC_FLUSH acknowledgement for one send, holding a reference to c
 * (on_ack may run on the flush thread as soon as the put is in, and needs
 * the connection). NULL when out of memory. */
static struct apg_sync_ack *ack_new(struct apg_broker *b, struct apg_conn *c, int32_t opaque,
                                    uint8_t ser, bool oneway, int32_t qid, const char *uniq)
{
    struct apg_sync_ack *a = apg_calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->sa_broker = b;
    apg_conn_ref(c);
    a->sa_conn = c;
    a->sa_opaque = opaque;
    a->sa_serialize = ser;
    a->sa_oneway = oneway;
    a->sa_queue_id = qid;
    snprintf(a->sa_uniq, sizeof(a->sa_uniq), "%s", uniq);
    return a;
}

/* An acknowledgement whose put failed: never queued, dropped here. */
static void ack_drop(struct apg_sync_ack *a)
{
    apg_conn_unref(a->sa_conn);
    apg_free(a);
}

/* Fills the reply fields of a's single send stored at r. Only the drain,
 * later on this loop thread, reads them. */
static void ack_stored(struct apg_broker *b, struct apg_sync_ack *a, const struct apg_put_result *r)
{
    apg_msgid_encode(&b->br_store_host, r->pr_phys_offset, a->sa_id1, sizeof(a->sa_id1));
    a->sa_msgid = a->sa_id1;
    a->sa_queue_offset = r->pr_queue_offset;
}

/* The properties the send path looks at, found in one walk over the
 * client's property string (the last pair of each name, as apg_props_find
 * would return). */
struct prop_scan {
    const char *ps_uniq, *ps_tags, *ps_wait;
    size_t ps_uniq_len, ps_tags_len, ps_wait_len;
    bool ps_cluster, ps_delay;
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
            ps->ps_delay |= memcmp(n, "DELAY", 5) == 0;
            break;
        }
    }
}

/* Copies at most n bytes of s, stopping at a NUL, into out[outlen]
 * (what snprintf "%.*s" does, without the printf machinery). */
static void copy_text(char *out, size_t outlen, const char *s, size_t n)
{
    if (n > outlen - 1)
        n = outlen - 1;
    n = strnlen(s, n);
    memcpy(out, s, n);
    out[n] = '\0';
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
        copy_text(uniq, uniqlen, ps->ps_uniq, ps->ps_uniq_len);
    } else {
        char id[33];
        apg_msgid_uniq_new(b->br_ip4, id);
        copy_text(uniq, uniqlen, id, sizeof(id) - 1);
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

/* Coalesced sends. Single-message sends parsed from one read of a
 * connection are held back here and stored with ONE apg_store_put (one
 * pwrite of their records) when the read's requests are done, then
 * answered in order (under SYNC_FLUSH, when the group commit that covers
 * them completes: one store waiter for all of them, see put_group). Each reply is still written
 * only after its record is in the page cache, and a request of any other kind flushes the held
 * sends before it runs, so a client sees no difference except fewer system calls in the broker. The
 * topic and properties are copied (the header scratch is reused per frame); bodies point into the
 * connection's read buffer, which stays put until the read is done (on_read_end). */
#define PEND_MAX 256
#define PEND_BYTES (1 << 20)
struct pend_send {
    struct apg_msg_in pd_msg;
    size_t pd_topic_off, pd_props_off;
    int32_t pd_opaque;
    int32_t pd_qid;
    uint8_t pd_serialize;
    bool pd_oneway;
    char pd_uniq[80];
};
struct pend_list {
    struct pend_send *pl_v;
    struct apg_msg_in *pl_msgs;
    struct apg_put_result *pl_res;
    int pl_n, pl_cap;
    size_t pl_bytes;
    struct apg_buf pl_text; /* topics and properties of the held sends */
    struct apg_conn *pl_conn;
    bool pl_sync;                  /* the held sends wait for the SYNC_FLUSH group commit */
    struct apg_sync_ack **pl_acks; /* scratch for put_group, pl_cap long */
};

/* The acknowledgements of one coalesced SYNC_FLUSH append: the store calls
 * back once, and each send is answered as if it had been stored alone. */
struct sync_group {
    int sg_n;
    struct apg_sync_ack *sg_acks[];
};
static __thread struct pend_list loop_pend;

bool apg_broker_send_pending(void)
{
    return loop_pend.pl_n > 0;
}

static void pend_reply_error(struct pend_send *pd, struct apg_conn *c, apg_err_t e, const char *err)
{
    if (!pd->pd_oneway)
        reply_refused(c, pd->pd_opaque, pd->pd_serialize, e, err);
}

/* SYNC_FLUSH store, reply not waiting for the flush (WAIT=false): the store
 * still queues the put for its group commit and reports here, on its ack
 * thread; nothing waits for it (with no callback apg_store_put would block
 * this loop thread until the fdatasync). */
static void no_wait_ack(void *ud, apg_err_t rc)
{
    (void)ud;
    (void)rc;
}

/* Store flush thread (ack thread): fans one group commit out to its sends. */
static void on_group_ack(void *ud, apg_err_t rc)
{
    struct sync_group *g = ud;
    for (int i = 0; i < g->sg_n; i++)
        on_ack(g->sg_acks[i], rc);
    apg_free(g);
}

/* Stores held sends [i0, i0 + k) with one apg_store_put and answers them
 * (at once, or from the group commit's acknowledgement when sync). Returns
 * the store's error without answering. */
static apg_err_t put_group(struct apg_broker *b, struct pend_list *pl, int i0, int k, bool sync,
                           char *err, size_t errlen)
{
    struct apg_conn *c = pl->pl_conn;
    struct sync_group *g = NULL;
    if (sync) {
        g = apg_malloc(sizeof(*g) + (size_t)k * sizeof(g->sg_acks[0]));
        int made = 0;
        for (; g && made < k; made++) {
            struct pend_send *pd = &pl->pl_v[i0 + made];
            struct apg_sync_ack *a = ack_new(b, c, pd->pd_opaque, pd->pd_serialize, pd->pd_oneway,
                                             pd->pd_qid, pd->pd_uniq);
            if (!a)
                break;
            g->sg_acks[made] = a;
            pl->pl_acks[made] = a;
        }
        if (!g || made < k) {
            for (int i = 0; i < made; i++)
                ack_drop(pl->pl_acks[i]);
            apg_free(g);
            snprintf(err, errlen, "out of memory");
            return APG_ENOMEM;
        }
        g->sg_n = k;
        atomic_fetch_add(&b->br_sync_pending, k);
    }
    apg_err_t e = apg_store_put(b->br_store, &pl->pl_msgs[i0], k, &pl->pl_res[i0],
                                sync ? on_group_ack : no_wait_ack, g, err, errlen);
    if (e) {
        if (sync) {
            atomic_fetch_sub(&b->br_sync_pending, k);
            for (int i = 0; i < k; i++)
                ack_drop(pl->pl_acks[i]);
            apg_free(g);
        }
        return e;
    }
    for (int i = 0; i < k; i++) {
        const struct apg_put_result *r = &pl->pl_res[i0 + i];
        struct pend_send *pd = &pl->pl_v[i0 + i];
        /* g may be gone already (the ack thread frees it), the acks are not:
         * only the drain frees them, and it runs on this thread later. */
        if (sync)
            ack_stored(b, pl->pl_acks[i], r);
        else if (!pd->pd_oneway)
            reply_stored(b, c, pd->pd_opaque, pd->pd_serialize, pd->pd_qid, r, pd->pd_uniq);
    }
    return APG_OK;
}

void apg_broker_send_flush(struct apg_broker *b)
{
    struct pend_list *pl = &loop_pend;
    int n = pl->pl_n;
    if (n == 0)
        return;
    struct apg_conn *c = pl->pl_conn;
    for (int i = 0; i < n; i++) {
        struct pend_send *pd = &pl->pl_v[i];
        pl->pl_msgs[i] = pd->pd_msg;
        pl->pl_msgs[i].mi_topic = (const char *)pl->pl_text.b_data + pd->pd_topic_off;
        pl->pl_msgs[i].mi_props = (const char *)pl->pl_text.b_data + pd->pd_props_off;
    }
    char err[512] = "";
    apg_err_t e = put_group(b, pl, 0, n, pl->pl_sync, err, sizeof(err));
    if (e != APG_OK && n > 1 && (e == APG_EINVAL || e == APG_ETOOBIG)) {
        /* One message the store refuses must not fail the others. */
        for (int i = 0; i < n; i++) {
            err[0] = 0;
            apg_err_t e1 = put_group(b, pl, i, 1, pl->pl_sync, err, sizeof(err));
            if (e1)
                pend_reply_error(&pl->pl_v[i], c, e1, err);
        }
    } else if (e != APG_OK) {
        for (int i = 0; i < n; i++)
            pend_reply_error(&pl->pl_v[i], c, e, err);
    }
    pl->pl_n = 0;
    pl->pl_bytes = 0;
    apg_buf_reset(&pl->pl_text);
    pl->pl_conn = NULL;
    apg_conn_unref(c);
}

/* Holds back one validated single-message send (see above). False when it
 * could not (out of memory): the caller stores it at once. */
static bool pend_add(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req,
                     const struct apg_msg_in *m, int32_t qid, const char *uniq, bool sync)
{
    struct pend_list *pl = &loop_pend;
    if (pl->pl_n && (pl->pl_conn != c || pl->pl_sync != sync || pl->pl_n >= PEND_MAX ||
                     pl->pl_bytes + m->mi_body_len > PEND_BYTES))
        apg_broker_send_flush(b);
    /* Too many sends already wait for the disk: the normal path answers
     * SYSTEM_BUSY. */
    if (sync && atomic_load(&b->br_sync_pending) + pl->pl_n >= b->br_sync_pending_max)
        return false;
    if (pl->pl_n == pl->pl_cap) {
        int cap = pl->pl_cap ? pl->pl_cap * 2 : 16;
        struct pend_send *v = apg_realloc(pl->pl_v, (size_t)cap * sizeof(*v));
        if (v)
            pl->pl_v = v;
        struct apg_msg_in *ms = apg_realloc(pl->pl_msgs, (size_t)cap * sizeof(*ms));
        if (ms)
            pl->pl_msgs = ms;
        struct apg_put_result *r = apg_realloc(pl->pl_res, (size_t)cap * sizeof(*r));
        if (r)
            pl->pl_res = r;
        struct apg_sync_ack **ak = apg_realloc(pl->pl_acks, (size_t)cap * sizeof(*ak));
        if (ak)
            pl->pl_acks = ak;
        if (!v || !ms || !r || !ak)
            return false;
        pl->pl_cap = cap;
    }
    struct pend_send *pd = &pl->pl_v[pl->pl_n];
    pd->pd_topic_off = pl->pl_text.b_len;
    pd->pd_props_off = pd->pd_topic_off + m->mi_topic_len;
    if (apg_buf_append(&pl->pl_text, m->mi_topic, m->mi_topic_len) ||
        apg_buf_append(&pl->pl_text, m->mi_props ? m->mi_props : "", m->mi_props_len)) {
        pl->pl_text.b_len = pd->pd_topic_off;
        return false;
    }
    pd->pd_msg = *m;
    pd->pd_opaque = req->opaque;
    pd->pd_serialize = req->serialize;
    pd->pd_oneway = apg_rcmd_is_oneway(req);
    pd->pd_qid = qid;
    copy_text(pd->pd_uniq, sizeof(pd->pd_uniq), uniq, strlen(uniq));
    if (pl->pl_n == 0) {
        apg_conn_ref(c);
        pl->pl_conn = c;
        pl->pl_sync = sync;
    }
    pl->pl_n++;
    pl->pl_bytes += m->mi_body_len;
    return true;
}

static void pend_free(void)
{
    apg_free(loop_pend.pl_v);
    apg_free(loop_pend.pl_msgs);
    apg_free(loop_pend.pl_res);
    apg_free(loop_pend.pl_acks);
    apg_buf_free(&loop_pend.pl_text);
    memset(&loop_pend, 0, sizeof(loop_pend));
}

void apg_broker_put_reply(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req,
                          const struct apg_msg_in *msgs, int n, int32_t qid, const char *uniq,
                          bool want_sync)
{
    char err[512], remark[768];
    if (want_sync && atomic_load(&b->br_sync_pending) >= b->br_sync_pending_max) {
        snprintf(remark, sizeof(remark),
                 "[PC_SYNCHRONIZED] broker busy: %ld sends are already waiting for the disk flush "
                 "(flushDiskType=SYNC_FLUSH); retry later or use ASYNC_FLUSH",
                 (long)atomic_load(&b->br_sync_pending));
        apg_broker_reply(c, req, APG_RESP_SYSTEM_BUSY, remark);
        return;
    }
    struct apg_put_result one_res, *res = &one_res;
    if (n > 1) {
        if (batch_reserve(&loop_batch, n)) {
            apg_broker_reply(c, req, APG_RESP_SYSTEM_ERROR, "out of memory");
            return;
        }
        res = loop_batch.bs_res;
    }
    bool oneway = apg_rcmd_is_oneway(req);
    struct apg_sync_ack *ack = NULL;
    if (want_sync) {
        ack = ack_new(b, c, req->opaque, req->serialize, oneway, qid, uniq);
        if (!ack) {
            apg_broker_reply(c, req, APG_RESP_SYSTEM_ERROR, "out of memory");
            goto done;
        }
        atomic_fetch_add(&b->br_sync_pending, 1);
    }
    err[0] = 0;
    apg_err_t e =
        apg_store_put(b->br_store, msgs, n, res, ack ? on_ack : no_wait_ack, ack, err, sizeof(err));
    if (e) {
        if (ack) {
            atomic_fetch_sub(&b->br_sync_pending, 1);
            ack_drop(ack);
        }
        if (!oneway)
            reply_refused(c, req->opaque, req->serialize, e, err);
        goto done;
    }
    if (n == 1 && ack) {
        ack_stored(b, ack, &res[0]);
        goto done;
    }
    if (n == 1) {
        /* The common case answers from the stack. */
        if (!oneway)
            reply_stored(b, c, req->opaque, req->serialize, qid, &res[0], uniq);
        goto done;
    }
    struct apg_buf ids = APG_BUF_INIT;
    for (int i = 0; i < n; i++) {
        char id[64];
        apg_msgid_encode(&b->br_store_host, res[i].pr_phys_offset, id, sizeof(id));
        if (i)
            apg_buf_append(&ids, ",", 1);
        apg_buf_append_str(&ids, id);
    }
    apg_buf_append(&ids, "", 1);
    if (ack) {
        ack->sa_queue_offset = res[0].pr_queue_offset;
        ack->sa_msgid = (char *)ids.b_data;
        ids.b_data = NULL;
    } else if (!oneway) {
        send_response(c, req->opaque, req->serialize, APG_RESP_SUCCESS, NULL,
                      (const char *)ids.b_data, qid, res[0].pr_queue_offset, uniq);
    }
    apg_buf_free(&ids);
done:;
}

/* A send to %RETRY%<group> is how a client hands back a message when
 * CONSUMER_SEND_MSG_BACK failed (it resends the copy itself, reconsumeTimes
 * already counted up). Past the group's limit (the header's
 * maxReconsumeTimes when given, else the group's retryMaxTimes) the copy
 * goes to %DLQ%<group> instead, as RocketMQ 5.x decides it (reconsumeTimes >
 * max; 4.9 used >=). Returns 0 to store in the retry topic, 1 when dlq/tc
 * now name the dead-letter topic (queue 0), -1 when it has answered. */
static int retry_or_dlq(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req,
                        const struct apg_send_hdr *h, char *dlq, size_t dlq_len,
                        struct apg_topic_cfg *tc)
{
    const char *group = h->sh_topic + 7;
    struct apg_group_cfg gc;
    char remark[1024];
    if (!apg_broker_group_or_refuse(b, c, req, group, &gc))
        return -1;
    int32_t max =
        h->sh_max_reconsume_times >= 0 ? h->sh_max_reconsume_times : gc.gc_retry_max_times;
    if (h->sh_reconsume_times <= max)
        return 0;
    snprintf(dlq, dlq_len, "%s%s", APG_DLQ_PREFIX, group);
    bool created = false;
    if (apg_broker_ensure_dlq(b, dlq, &created) != APG_OK ||
        !apg_topics_get(b->br_topics, dlq, tc)) {
        apg_broker_reply(c, req, APG_RESP_SYSTEM_ERROR, "out of memory");
        return -1;
    }
    if (!(tc->tc_perm & APG_PERM_WRITE) || tc->tc_write_queues <= 0) {
        snprintf(remark, sizeof(remark),
                 "topic %s is not writable; update it with perm 6 (mqadmin updateTopic -t %s -p 6)",
                 dlq, dlq);
        apg_broker_reply(c, req, APG_RESP_NO_PERMISSION, remark);
        return -1;
    }
    return 1;
}

void apg_broker_proc_send(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req)
{
    char err[512], remark[768];
    struct apg_send_hdr h;
    bool batch = req->code == APG_REQ_SEND_BATCH_MESSAGE;
    bool short_names = req->code != APG_REQ_SEND_MESSAGE;
    if (apg_send_hdr_parse(req, short_names, &h, err, sizeof(err))) {
        apg_broker_reply(c, req, APG_RESP_SYSTEM_ERROR, err);
        return;
    }
    if (apg_broker_refuse_unwritable(b, c, req))
        return;
    /* Both checks depend on the name alone: a producer sending to the
     * topic this loop thread last accepted skips them. */
    if (!loop_ok_topic[0] || strcmp(h.sh_topic, loop_ok_topic) != 0) {
        if (apg_name_check_topic(h.sh_topic, err, sizeof(err))) {
            apg_broker_reply(c, req, APG_RESP_INVALID_PARAMETER, err);
            return;
        }
        if (apg_name_topic_send_forbidden(h.sh_topic)) {
            snprintf(remark, sizeof(remark), "sending to the system topic %s is not allowed",
                     h.sh_topic);
            apg_broker_reply(c, req, APG_RESP_NO_PERMISSION, remark);
            return;
        }
        if (strlen(h.sh_topic) < sizeof(loop_ok_topic))
            strcpy(loop_ok_topic, h.sh_topic);
    }
    if (batch && strncmp(h.sh_topic, APG_RETRY_PREFIX, 7) == 0) {
        snprintf(remark, sizeof(remark),
                 "batch request does not support retry group %s; send retried messages one at a "
                 "time",
                 h.sh_topic);
        apg_broker_reply(c, req, APG_RESP_MESSAGE_ILLEGAL, remark);
        return;
    }
    struct apg_topic_cfg tc;
    bool created = false;
    if (apg_topics_get_or_create_for_send(b->br_topics, h.sh_topic, h.sh_default_topic,
                                          h.sh_default_qnums, 1, &tc, &created, err, sizeof(err))) {
        apg_broker_reply(c, req, APG_RESP_TOPIC_NOT_EXIST, err);
        return;
    }
    if (created)
        apg_broker_request_register(b);
    if (!(tc.tc_perm & APG_PERM_WRITE)) {
        snprintf(remark, sizeof(remark),
                 "topic %s is not writable (perm %d); update it with perm 6 (mqadmin updateTopic "
                 "-t %s -p 6)",
                 h.sh_topic, tc.tc_perm, h.sh_topic);
        apg_broker_reply(c, req, APG_RESP_NO_PERMISSION, remark);
        return;
    }
    int32_t nq = tc.tc_write_queues > tc.tc_read_queues ? tc.tc_write_queues : tc.tc_read_queues;
    int32_t qid = h.sh_queue_id;
    if (qid >= nq) {
        snprintf(remark, sizeof(remark),
                 "queueId %d is out of range for topic %s, which has %d queues (0..%d)", qid,
                 h.sh_topic, nq, nq - 1);
        apg_broker_reply(c, req, APG_RESP_INVALID_PARAMETER, remark);
        return;
    }
    const char *topic = h.sh_topic;
    char dlq_topic[APG_NAME_CAP + 8];
    if (!batch && strncmp(topic, APG_RETRY_PREFIX, 7) == 0) {
        switch (retry_or_dlq(b, c, req, &h, dlq_topic, sizeof(dlq_topic), &tc)) {
        case 0:
            break;
        case 1:
            topic = dlq_topic;
            qid = 0;
            break;
        default:
            return; /* answered */
        }
    }
    if (qid < 0)
        qid = (int32_t)(atomic_fetch_add(&b->br_rr, 1) % (unsigned)tc.tc_write_queues);
    if (req->body_len > b->br_max_msg_size && !batch) {
        snprintf(remark, sizeof(remark),
                 "the message body is %u bytes, larger than the broker's maxMessageSize of %u "
                 "bytes; send a smaller message or raise maxMessageSize in the broker config",
                 req->body_len, b->br_max_msg_size);
        apg_broker_reply(c, req, APG_RESP_MESSAGE_ILLEGAL, remark);
        return;
    }
    size_t hp_len = strlen(h.sh_props);
    if (hp_len > 32767) {
        snprintf(remark, sizeof(remark),
                 "the message properties are %zu bytes; the limit is 32767 (fewer or shorter "
                 "keys and user properties)",
                 hp_len);
        apg_broker_reply(c, req, APG_RESP_MESSAGE_ILLEGAL, remark);
        return;
    }
    struct prop_scan ps;
    props_scan(h.sh_props, hp_len, &ps);
    bool want_sync = b->br_sync_flush &&
                     !(ps.ps_wait && ps.ps_wait_len == 5 && strncmp(ps.ps_wait, "false", 5) == 0);

    apg_buf_reset(&loop_props);
    struct apg_host born;
    fill_host(&born, apg_conn_peer(c));
    int32_t sysflag = h.sh_sysflag;
    if (tc.tc_filter == APG_TOPIC_MULTI_TAG)
        sysflag |= APG_SYSFLAG_MULTI_TAGS;

    int n = 0;
    struct apg_msg_in one, *msgs = &one;
    size_t *poff = NULL, *plen = NULL;
    char uniq[80] = "";
    if (!batch) {
        if (build_props(b, h.sh_props, hp_len, &ps, &loop_props, uniq, sizeof(uniq))) {
            apg_broker_reply(c, req, APG_RESP_SYSTEM_ERROR, "out of memory");
            return;
        }
        memset(&one, 0, sizeof(one));
        one.mi_body = req->body;
        one.mi_body_len = req->body_len;
        one.mi_flag = h.sh_flag;
        n = 1;
        if (loop_props.b_len > 32767) {
            apg_broker_reply(c, req, APG_RESP_MESSAGE_ILLEGAL,
                             "the message properties exceed 32767 bytes");
            return;
        }
        one.mi_props = (const char *)loop_props.b_data;
        one.mi_props_len = loop_props.b_len;
        one.mi_tags_code = tags_code(&ps);
    } else {
        if (req->body_len > b->br_max_msg_size) {
            snprintf(remark, sizeof(remark),
                     "the batch is %u bytes, larger than the broker's maxMessageSize of %u bytes; "
                     "split it or raise maxMessageSize",
                     req->body_len, b->br_max_msg_size);
            apg_broker_reply(c, req, APG_RESP_MESSAGE_ILLEGAL, remark);
            return;
        }
        size_t pos = 0;
        struct apg_batch_item it;
        apg_err_t e;
        while ((e = apg_batch_next(req->body, req->body_len, &pos, &it, err, sizeof(err))) ==
               APG_OK) {
            if (n >= BATCH_MAX) {
                snprintf(err, sizeof(err), "a batch may hold at most %d messages", BATCH_MAX);
                e = APG_EINVAL;
                break;
            }
            if (batch_reserve(&loop_batch, n + 1)) {
                snprintf(err, sizeof(err), "out of memory");
                e = APG_ENOMEM;
                break;
            }
            msgs = loop_batch.bs_msgs;
            poff = loop_batch.bs_poff;
            plen = loop_batch.bs_plen;
            struct prop_scan ips;
            props_scan(it.bi_props, it.bi_props_len, &ips);
            if (ips.ps_delay) {
                snprintf(err, sizeof(err), "batch messages cannot carry a delay level");
                e = APG_EINVAL;
                break;
            }
            poff[n] = loop_props.b_len;
            char u[80];
            if (build_props(b, it.bi_props, it.bi_props_len, &ips, &loop_props, u, sizeof(u))) {
                snprintf(err, sizeof(err), "out of memory");
                e = APG_ENOMEM;
                break;
            }
            if (n == 0)
                strcpy(uniq, u);
            plen[n] = loop_props.b_len - poff[n];
            memset(&msgs[n], 0, sizeof(msgs[n]));
            msgs[n].mi_tags_code = tags_code(&ips);
            msgs[n].mi_body = it.bi_body;
            msgs[n].mi_body_len = it.bi_body_len;
            msgs[n].mi_flag = it.bi_flag;
            n++;
        }
        if (e != APG_ENOTFOUND || n == 0) {
            if (n == 0 && e == APG_ENOTFOUND)
                snprintf(err, sizeof(err), "the batch body holds no message");
            apg_broker_reply(c, req, APG_RESP_MESSAGE_ILLEGAL, err);
            return;
        }
        for (int i = 0; i < n; i++) {
            msgs[i].mi_props = (const char *)loop_props.b_data + poff[i];
            msgs[i].mi_props_len = plen[i];
        }
    }
    size_t topic_len = strlen(topic);
    for (int i = 0; i < n; i++) {
        msgs[i].mi_topic = topic;
        msgs[i].mi_topic_len = topic_len;
        msgs[i].mi_queue_id = qid;
        msgs[i].mi_sysflag = sysflag;
        msgs[i].mi_born_ts = h.sh_born_ts;
        msgs[i].mi_born_host = born;
        msgs[i].mi_reconsume_times = h.sh_reconsume_times;
    }

    if (n == 1 && !batch && pend_add(b, c, req, &msgs[0], qid, uniq, want_sync))
        return;
    apg_broker_send_flush(b);
    apg_broker_put_reply(b, c, req, msgs, n, qid, uniq, want_sync);
}

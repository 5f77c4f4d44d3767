/* The HTTP message protocol of @aliyunmq/mq-http-sdk on the broker's HTTP
 * port: every request is METHOD /topics/<topic>/messages?<query> with an
 * XML body (docs/wire.md §18 has the wire facts, docs/http-api.md the
 * user's view).
 *
 *   POST            publish one <Message> (MessageBody, MessageTag,
 *                   Properties "k:v|k:v"); KEYS, __STARTDELIVERTIME
 *                   (timer), __SHARDINGKEY (ordered) and __TransCheckT
 *                   (transactional half) are read from the properties
 *   GET consumer=   consume up to numOfMessages, long polling waitseconds;
 *                   trans=order: ordered; trans=pop: transactional halves
 *   DELETE consumer= ack <ReceiptHandles>; trans=commit / trans=rollback
 *                   end the halves the handles name
 *
 * Design. A publish becomes the record a 4.x send of the same kind makes
 * (TAGS, KEYS, __SHARDINGKEY and the user properties in the property
 * string, the tag hash in the consume queue, born host from the peer) and
 * goes through apg_broker_put_notify like a gRPC send: under SYNC_FLUSH the
 * call is held (apg_http_hold) and answered from the store's
 * acknowledgement, posted to the loop. The queue is round robin, or for a
 * sharding key the Java String hash of the key (sign bit cleared) modulo
 * the write queues, as 4.x ordered sends pick it. A start-deliver time in
 * the future parks the record in the timer topic (TIMER_DELIVER_MS), as a
 * 5.x delay message is. A half goes to the half topic (src/broker/txn)
 * with PGROUP APG_MQHTTP_TXN_GROUP; its receipt handle is "T" and the
 * half's offset message id, which commit and rollback decode.
 *
 * Consumption is the pop module's (src/broker/pop), as for gRPC: a receipt
 * handle is the pop handle text, the invisible time httpConsumeInvisible-
 * Seconds; trans=order pops with the FIFO hold (a queue with a message in
 * flight gives nothing more until it is acknowledged). A consume that
 * finds nothing and has waitseconds is held; the loop's tick retries the
 * waiting consumes whose queues got messages (apg_pop_available) and
 * answers 404 MessageNotExist when the wait is over.
 *
 * Transactional halves published here are remembered (topic, commit-log
 * offset, the time they may be checked: now + __TransCheckT seconds) in a
 * list owned by the loop thread; trans=pop hands out those whose time
 * came and moves their time on by the same amount, until a commit or
 * rollback ends them. The list is rebuilt at start from the transaction
 * module's open halves (apg_txn_list_open: half queue minus op records)
 * whose PGROUP is APG_MQHTTP_TXN_GROUP, each due at its store time plus
 * its CHECK_IMMUNITY_TIME_IN_SECONDS; so halves published before a restart
 * reach trans=pop again until they end or the broker's transaction check
 * discards them (transactionCheckMax).
 *
 * With aclEnable=true every request is signed: "Authorization: MQ
 * <AccessKey>:<base64 HMAC-SHA1>" over METHOD, Content-MD5, Content-Type,
 * Date, the x-mq-* headers and the request target, checked with the
 * accounts, white lists and permissions of the remoting ACL
 * (apg_acl_check_mac).
 *
 * Threads: the HTTP loop thread (one), except pub_acked (the store's ack
 * thread: it only posts) and apg_mqhttp_new (the control thread, before
 * the loop runs: it rebuilds the half list). */
#define _GNU_SOURCE /* strptime, timegm */
#include "http/mq_http.h"

#include <ctype.h>
#include <openssl/evp.h> /* EVP_DecodeBlock */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "acl/acl.h"
#include "broker/broker_admin_stats.h"
#include "broker/broker_rt.h"
#include "broker/pop/pop.h"
#include "broker/schedule/schedule.h"
#include "broker/timer/timer.h"
#include "broker/txn/txn.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/sha1.h"
#include "http/xml.h"
#include "protocol/msgid.h"
#include "protocol/props.h"
#include "protocol/tagexpr.h"

#define APG_MQHTTP_TXN_GROUP "%HTTP_TXN_PRODUCER%"
#define XMLNS "http://mq.aliyuncs.com/doc/v1/"
#define XML_HEAD "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
#define CTYPE "text/xml;charset=utf-8"
#define MAX_WAIT_S 30
#define MAX_BATCH 16
#define MAX_HALVES 100000
#define DEFAULT_CHECK_S 10
#define RELOAD_SCAN_MAX 1000000 /* half queue records read at start */
#define MAX_DATE_SKEW_S (15 * 60)
#define PERM_WRITE 2 /* topic permission bit (RocketMQ PermName) */

struct waiter {
    struct waiter *w_next;
    struct apg_http_call *w_call;
    struct apg_mqhttp *w_mh;
    char w_topic[APG_NAME_CAP];
    char w_group[APG_NAME_CAP];
    char w_tag[256];
    int w_max;
    bool w_fifo;
    bool w_gone;
    int64_t w_deadline; /* wall ms */
    char w_reqid[40];
};

/* A half published here, not yet ended through this port. */
struct half {
    struct half *h_next;
    char h_topic[APG_NAME_CAP];
    int64_t h_clo;      /* commit-log offset of the half */
    int64_t h_due;      /* wall ms it may be handed to trans=pop */
    int64_t h_check_ms; /* __TransCheckT */
    int32_t h_times;    /* handed out so far */
};

struct apg_mqhttp {
    struct apg_broker *mh_broker;
    int64_t mh_invisible_ms;
    atomic_uint_fast64_t mh_seq;
    struct waiter *mh_waiters;
    struct half *mh_halves;
    size_t mh_n_halves;
    struct apg_buf mh_vals; /* XML values scratch */
    struct apg_buf mh_recs; /* pop records scratch */
    struct apg_buf mh_out;  /* answer scratch */
    struct apg_buf mh_props;
    struct apg_buf mh_moved;
    struct apg_buf mh_inflate;
    struct apg_xml_doc mh_doc;
    struct apg_pop_result mh_res;
};

/* ---- request pieces ---- */

struct query {
    char q_ns[APG_NAME_CAP];
    char q_consumer[APG_NAME_CAP];
    char q_tag[256];
    char q_trans[16];
    int q_num;  /* -1 absent */
    int q_wait; /* -1 absent */
};

static int hexv(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes s[0..n) into out (cap bytes with the NUL); false when it
 * does not fit or has a bad escape. */
static bool url_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return false;
            int a = hexv(s[i + 1]), b = hexv(s[i + 2]);
            if (a < 0 || b < 0)
                return false;
            c = a * 16 + b;
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (k + 1 >= cap || c == 0)
            return false;
        out[k++] = (char)c;
    }
    out[k] = '\0';
    return true;
}

static bool parse_int(const char *s, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < -1000000 || v > 1000000)
        return false;
    *out = (int)v;
    return true;
}

/* false with why when a parameter is malformed. */
static bool query_parse(const char *q, size_t n, struct query *out, const char **why)
{
    memset(out, 0, sizeof(*out));
    out->q_num = out->q_wait = -1;
    const char *p = q, *end = q + n;
    while (q && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        if (eq) {
            size_t kl = (size_t)(eq - p);
            const char *v = eq + 1;
            size_t vl = (size_t)(pe - v);
            char num[16];
            bool ok = true;
            if (kl == 2 && !memcmp(p, "ns", 2))
                ok = url_decode(v, vl, out->q_ns, sizeof out->q_ns);
            else if (kl == 8 && !memcmp(p, "consumer", 8))
                ok = url_decode(v, vl, out->q_consumer, sizeof out->q_consumer);
            else if (kl == 3 && !memcmp(p, "tag", 3))
                ok = url_decode(v, vl, out->q_tag, sizeof out->q_tag);
            else if (kl == 5 && !memcmp(p, "trans", 5))
                ok = url_decode(v, vl, out->q_trans, sizeof out->q_trans);
            else if (kl == 13 && !memcmp(p, "numOfMessages", 13))
                ok = url_decode(v, vl, num, sizeof num) && parse_int(num, &out->q_num);
            else if (kl == 11 && !memcmp(p, "waitseconds", 11))
                ok = url_decode(v, vl, num, sizeof num) && parse_int(num, &out->q_wait);
            if (!ok) {
                *why = "a query parameter is malformed or too long";
                return false;
            }
        }
        p = pe + 1;
    }
    return true;
}

/* "ns%name" when an instance is named (RocketMQ's namespace wrapping),
 * else name. */
static bool ns_wrap(const char *ns, const char *name, size_t nlen, char *out, size_t cap)
{
    int k = ns[0] ? snprintf(out, cap, "%s%%%.*s", ns, (int)nlen, name)
                  : snprintf(out, cap, "%.*s", (int)nlen, name);
    return k > 0 && (size_t)k < cap && nlen > 0;
}

/* ---- answers ---- */

static void reqid_make(struct apg_mqhttp *mh, char out[40])
{
    uint64_t n = atomic_fetch_add(&mh->mh_seq, 1);
    snprintf(out, 40, "%012llX%08llX", (unsigned long long)apg_wall_ms(),
             (unsigned long long)(n & 0xffffffffu));
}

static struct apg_buf *begin(struct apg_http_call *call, int status, const char *reqid)
{
    char extra[80];
    snprintf(extra, sizeof extra, "x-mq-request-id: %s\r\n", reqid);
    return apg_http_begin_with(call, status, CTYPE, extra);
}

/* The XML error answer the SDK turns into an Error with .Code. */
static void reply_error(struct apg_mqhttp *mh, struct apg_http_call *call, const char *reqid,
                        int status, const char *code, const char *msg)
{
    struct apg_buf *o = begin(call, status, reqid);
    if (o) {
        apg_buf_append_str(o, XML_HEAD "<Error xmlns=\"" XMLNS "\">");
        apg_xml_put_elem(o, "Code", code, strlen(code));
        apg_xml_put_elem(o, "Message", msg, strlen(msg));
        apg_xml_put_elem(o, "RequestId", reqid, strlen(reqid));
        const char *host = mh->mh_broker->br_addr;
        apg_buf_append_str(o, "<HostId>http://");
        apg_xml_put_text(o, host, strlen(host));
        apg_buf_append_str(o, "</HostId></Error>");
    }
    apg_http_end(call);
}

/* ---- signing ---- */

static const char *hdr(const struct apg_http_req *req, const char *name, size_t *len)
{
    const char *v = apg_http_header(req, name, len);
    if (!v)
        *len = 0;
    return v ? v : "";
}

/* Checks the signature and the permissions the operation needs; false
 * (answered) when refused. */
static bool admit(struct apg_mqhttp *mh, struct apg_http_call *call, const struct apg_http_req *req,
                  const char *reqid, const char *what, const char *topic, const char *group,
                  bool pub)
{
    struct apg_broker *b = mh->mh_broker;
    if (!b->br_acl)
        return true;
    size_t al, ml, tl, dl;
    const char *auth = hdr(req, "Authorization", &al);
    const char *md5 = hdr(req, "Content-MD5", &ml);
    const char *ctype = hdr(req, "Content-Type", &tl);
    const char *date = hdr(req, "Date", &dl);
    char ak[128] = "";
    uint8_t mac[APG_SHA1_LEN + 4];
    bool have_mac = false;
    if (al > 3 && !memcmp(auth, "MQ ", 3)) {
        const char *colon = memchr(auth + 3, ':', al - 3);
        size_t akl = colon ? (size_t)(colon - auth - 3) : 0;
        if (colon && akl > 0 && akl < sizeof ak) {
            memcpy(ak, auth + 3, akl);
            ak[akl] = '\0';
            size_t sl = al - 3 - akl - 1;
            uint8_t raw[64];
            if (sl == 28 && EVP_DecodeBlock(raw, (const unsigned char *)colon + 1, 28) == 21) {
                memcpy(mac, raw, APG_SHA1_LEN);
                have_mac = true;
            }
        }
    }
    /* The Date must be within 15 minutes of the broker's clock. */
    char dbuf[64];
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    snprintf(dbuf, sizeof dbuf, "%.*s", (int)dl, date);
    const char *dend = strptime(dbuf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (ak[0] &&
        (!dend || llabs((long long)timegm(&tm) - (long long)time(NULL)) > MAX_DATE_SKEW_S)) {
        reply_error(mh, call, reqid, 403, "TimeExpired",
                    "the Date header is missing or more than 15 minutes from the server's time");
        return false;
    }
    /* The string signed: METHOD \n MD5 \n TYPE \n DATE \n x-mq-* lines, target. */
    struct apg_buf s = APG_BUF_INIT;
    apg_buf_printf(&s, "%s\n%.*s\n%.*s\n%.*s\n", req->hr_method, (int)ml, md5, (int)tl, ctype,
                   (int)dl, date);
    int idx[APG_HTTP_MAX_HEADERS], n = 0;
    for (int i = 0; i < req->hr_nhdrs; i++)
        if (req->hr_hdrs[i].hh_name_len > 5 && !strncasecmp(req->hr_hdrs[i].hh_name, "x-mq-", 5))
            idx[n++] = i;
    for (int i = 1; i < n; i++) /* sort by lower-case name (a handful) */
        for (int j = i; j > 0; j--) {
            const struct apg_http_hdr *x = &req->hr_hdrs[idx[j - 1]], *y = &req->hr_hdrs[idx[j]];
            size_t m = x->hh_name_len < y->hh_name_len ? x->hh_name_len : y->hh_name_len;
            int c = strncasecmp(x->hh_name, y->hh_name, m);
            if (c < 0 || (c == 0 && x->hh_name_len <= y->hh_name_len))
                break;
            int t = idx[j - 1];
            idx[j - 1] = idx[j];
            idx[j] = t;
        }
    for (int i = 0; i < n; i++) {
        const struct apg_http_hdr *h = &req->hr_hdrs[idx[i]];
        for (size_t k = 0; k < h->hh_name_len; k++) {
            char c = (char)tolower((unsigned char)h->hh_name[k]);
            apg_buf_append(&s, &c, 1);
        }
        apg_buf_printf(&s, ":%.*s\n", (int)h->hh_val_len, h->hh_val);
    }
    size_t target = req->hr_query ? (size_t)(req->hr_query + req->hr_query_len - req->hr_path)
                                  : req->hr_path_len;
    apg_buf_append(&s, req->hr_path, target);
    struct apg_acl_need needs[2] = {
        {.an_name = topic, .an_group = false, .an_perm = pub ? APG_ACL_PUB : APG_ACL_SUB},
        {.an_name = group, .an_group = true, .an_perm = APG_ACL_SUB},
    };
    struct apg_acl_mac am = {
        .am_ak = ak[0] ? ak : NULL,
        .am_mac = have_mac ? mac : NULL,
        .am_content = s.b_data,
        .am_content_len = s.b_len,
        .am_what = what,
        .am_needs = needs,
        .am_n_needs = group && group[0] ? 2 : 1,
    };
    char remark[320];
    const char *peer = apg_http_peer(call);
    enum apg_acl_refusal r = apg_acl_check_mac(b->br_acl, &am, peer, remark, sizeof remark);
    apg_buf_free(&s);
    if (r == APG_ACL_OK)
        return true;
    const char *code = r == APG_ACL_R_SIGNATURE            ? "SignatureDoesNotMatch"
                       : r == APG_ACL_R_UNKNOWN_ACCESS_KEY ? "InvalidAccessKeyId"
                       : r == APG_ACL_R_NO_ACCESS_KEY      ? "AccessDenied"
                                                           : "AccessDenied";
    apg_broker_refusal_note(b, APG_REFUSAL_NO_PERMISSION, what, am.am_ak, peer,
                            APG_RESP_NO_PERMISSION, remark);
    reply_error(mh, call, reqid, 403, code, remark);
    return false;
}

/* True when the request has no Content-MD5 or it matches the body: the
 * SDK sends Base64 of the lower-case hex MD5 text. */
static bool body_md5_ok(const struct apg_http_req *req)
{
    size_t n;
    const char *v = apg_http_header(req, "Content-MD5", &n);
    if (!v)
        return true;
    char hex[33], b64[48];
    apg_pop_body_md5(req->hr_body, req->hr_body_len, hex);
    for (int i = 0; i < 32; i++)
        hex[i] = (char)tolower((unsigned char)hex[i]);
    size_t bl = apg_base64_encode((const uint8_t *)hex, 32, b64);
    return bl == n && memcmp(b64, v, n) == 0;
}

/* ---- publish ---- */

struct pub {
    struct apg_mqhttp *p_mh;
    struct apg_http_call *p_call;
    apg_err_t p_rc;
    bool p_half;
    int64_t p_phys;
    char p_md5[33];
    char p_reqid[40];
};

static void pub_answer(struct apg_http_call *call, struct pub *p)
{
    struct apg_mqhttp *mh = p->p_mh;
    struct apg_broker *b = mh->mh_broker;
    if (p->p_rc == APG_ENOSLAVE || p->p_rc == APG_ESLAVETIMEOUT)
        p->p_rc = APG_OK; /* stored on this master; the slave catches up */
    if (p->p_rc == APG_ETIMEDOUT) {
        reply_error(mh, call, p->p_reqid, 500, "FlushDiskTimeout",
                    "stored, but the disk flush did not finish within syncFlushTimeout");
        return;
    }
    if (p->p_rc) {
        reply_error(mh, call, p->p_reqid, 500, "InternalError",
                    "the store failed to make the message durable");
        return;
    }
    char id[64];
    apg_msgid_encode(&b->br_store_host, p->p_phys, id, sizeof id);
    struct apg_buf *o = begin(call, 201, p->p_reqid);
    if (o) {
        apg_buf_append_str(o, XML_HEAD "<Message xmlns=\"" XMLNS "\">");
        apg_xml_put_elem(o, "MessageId", id, strlen(id));
        apg_xml_put_elem(o, "MessageBodyMD5", p->p_md5, 32);
        if (p->p_half)
            apg_buf_printf(o, "<ReceiptHandle>T %s</ReceiptHandle>", id);
        apg_buf_append_str(o, "</Message>");
    }
    apg_http_end(call);
}

static void pub_on_loop(struct apg_http_call *call, void *arg)
{
    struct pub *p = arg;
    pub_answer(call, p);
    apg_free(p);
}

/* Store ack thread. */
static void pub_acked(void *arg, apg_err_t rc)
{
    struct pub *p = arg;
    p->p_rc = rc;
    if (apg_http_post(p->p_call, pub_on_loop, p) != APG_OK)
        apg_free(p); /* stopping: the call went with its connection */
}

/* Remembers a half for trans=pop, due check_s seconds after since (wall
 * ms). */
static void half_remember(struct apg_mqhttp *mh, const char *topic, size_t tl, int64_t clo,
                          int64_t check_s, int64_t since)
{
    if (mh->mh_n_halves >= MAX_HALVES || tl >= APG_NAME_CAP)
        return; /* the broker's transaction check still covers it */
    struct half *h = apg_calloc(1, sizeof(*h));
    if (!h)
        return;
    memcpy(h->h_topic, topic, tl);
    h->h_clo = clo;
    h->h_check_ms = (check_s > 0 ? check_s : DEFAULT_CHECK_S) * 1000;
    h->h_due = since + h->h_check_ms;
    h->h_next = mh->mh_halves;
    mh->mh_halves = h;
    mh->mh_n_halves++;
}

/* apg_txn_list_open callback at start: an open half of this port's
 * producer group (PGROUP) is remembered under its real topic, by the
 * commit-log offset of the record that stands for it now (the half or its
 * newest check-back copy; either ends it). */
static void half_reload(void *ud, const struct apg_msgrec *rec, int64_t origin, int64_t check_times)
{
    (void)origin;
    (void)check_times;
    struct apg_mqhttp *mh = ud;
    size_t gl = 0, tl = 0, cl = 0;
    const char *g = apg_props_find(rec->mr_props, rec->mr_props_len, "PGROUP", &gl);
    const char *t = apg_props_find(rec->mr_props, rec->mr_props_len, "REAL_TOPIC", &tl);
    const char *c =
        apg_props_find(rec->mr_props, rec->mr_props_len, "CHECK_IMMUNITY_TIME_IN_SECONDS", &cl);
    if (!g || !t || gl != sizeof(APG_MQHTTP_TXN_GROUP) - 1 ||
        memcmp(g, APG_MQHTTP_TXN_GROUP, gl) != 0)
        return;
    int64_t check_s = 0;
    for (size_t i = 0; c && i < cl && i < 12 && c[i] >= '0' && c[i] <= '9'; i++)
        check_s = check_s * 10 + (c[i] - '0');
    half_remember(mh, t, tl, rec->mr_phys_offset, check_s, rec->mr_store_ts);
}

static const char *child(const struct apg_mqhttp *mh, const char *name, size_t *len)
{
    const struct apg_xml_doc *d = &mh->mh_doc;
    for (int i = 0; i < d->xd_n; i++)
        if (!strcmp(d->xd_c[i].xc_name, name)) {
            *len = d->xd_c[i].xc_len;
            return (const char *)mh->mh_vals.b_data + d->xd_c[i].xc_off;
        }
    *len = 0;
    return NULL;
}

static bool digits_only(const char *s, size_t n)
{
    if (n == 0 || n > 18)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static void publish(struct apg_mqhttp *mh, struct apg_http_call *call,
                    const struct apg_http_req *req, const char *topic, const char *reqid)
{
    struct apg_broker *b = mh->mh_broker;
    char err[600];
    if (!admit(mh, call, req, reqid, "PublishMessage", topic, NULL, true))
        return;
    if (!body_md5_ok(req)) {
        reply_error(mh, call, reqid, 400, "InvalidDigest",
                    "Content-MD5 does not match the body (Base64 of its hex MD5)");
        return;
    }
    if (apg_xml_parse(req->hr_body, req->hr_body_len, &mh->mh_doc, &mh->mh_vals, err, sizeof err)) {
        reply_error(mh, call, reqid, 400, "MalformedXML", err);
        return;
    }
    if (strcmp(mh->mh_doc.xd_root, "Message") != 0) {
        reply_error(mh, call, reqid, 400, "MalformedXML", "the root element must be Message");
        return;
    }
    size_t bl, tgl, pl;
    const char *body = child(mh, "MessageBody", &bl);
    const char *tag = child(mh, "MessageTag", &tgl);
    const char *props = child(mh, "Properties", &pl);
    if (!body || bl == 0) {
        reply_error(mh, call, reqid, 400, "InvalidArgument", "MessageBody is missing or empty");
        return;
    }
    int64_t max_body = apg_cfg_int(b->br_cfg, APG_CFG_maxMessageSize);
    if ((int64_t)bl > max_body) {
        snprintf(err, sizeof err, "body of %zu bytes is over maxMessageSize (%lld)", bl,
                 (long long)max_body);
        reply_error(mh, call, reqid, 400, "MessageBodyTooLarge", err);
        return;
    }
    struct apg_topic_cfg tc;
    if (!apg_topics_get(b->br_topics, topic, &tc)) {
        snprintf(err, sizeof err, "topic %s does not exist on broker %s", topic, b->br_name);
        reply_error(mh, call, reqid, 404, "TopicNotExist", err);
        return;
    }
    if (!(tc.tc_perm & PERM_WRITE) || tc.tc_write_queues < 1) {
        snprintf(err, sizeof err, "topic %s is not writable", topic);
        reply_error(mh, call, reqid, 403, "AccessDenied", err);
        return;
    }
    /* Properties: "k:v|k:v". Names and values are text without : and |. */
    struct apg_buf *pb = &mh->mh_props;
    apg_buf_reset(pb);
    const char *shard = NULL, *deliver = NULL, *checkt = NULL;
    size_t shl = 0, dvl = 0, ckl = 0;
    const char *p = props, *pend = props ? props + pl : NULL;
    bool bad_prop = false;
    char k[256], v[1024];
    while (p && p < pend && !bad_prop) {
        const char *bar = memchr(p, '|', (size_t)(pend - p));
        const char *e = bar ? bar : pend;
        const char *colon = memchr(p, ':', (size_t)(e - p));
        if (e > p) {
            size_t kl = colon ? (size_t)(colon - p) : 0, vl = colon ? (size_t)(e - colon - 1) : 0;
            if (!colon || kl == 0 || vl == 0 || kl >= sizeof k || vl >= sizeof v ||
                !apg_props_pair_ok(p, kl, colon + 1, vl)) {
                bad_prop = true;
                break;
            }
            memcpy(k, p, kl);
            k[kl] = '\0';
            memcpy(v, colon + 1, vl);
            v[vl] = '\0';
            if (!strcmp(k, "__SHARDINGKEY"))
                shard = colon + 1, shl = vl;
            else if (!strcmp(k, "__STARTDELIVERTIME"))
                deliver = colon + 1, dvl = vl;
            else if (!strcmp(k, "__TransCheckT"))
                checkt = colon + 1, ckl = vl;
            else if (apg_props_name_reserved(k, kl) && strcmp(k, "KEYS") != 0)
                bad_prop = true;
            if (!bad_prop && apg_props_append(pb, k, v))
                bad_prop = true;
        }
        p = e + 1;
    }
    if (bad_prop) {
        reply_error(mh, call, reqid, 400, "InvalidArgument",
                    "Properties must be name:value pairs joined by |, without reserved names");
        return;
    }
    if ((deliver && !digits_only(deliver, dvl)) || (checkt && !digits_only(checkt, ckl))) {
        reply_error(mh, call, reqid, 400, "InvalidArgument",
                    "__STARTDELIVERTIME and __TransCheckT must be numbers");
        return;
    }
    bool half = checkt != NULL;
    if (half && (deliver || shard)) {
        reply_error(mh, call, reqid, 400, "InvalidArgument",
                    "a transactional message has no start-deliver time and no sharding key");
        return;
    }
    char tagz[256] = "";
    if (tag && tgl) {
        if (tgl >= sizeof tagz || !apg_props_pair_ok("TAGS", 4, tag, tgl)) {
            reply_error(mh, call, reqid, 400, "InvalidArgument", "MessageTag is not a valid tag");
            return;
        }
        memcpy(tagz, tag, tgl);
        apg_props_append(pb, "TAGS", tagz);
    }
    int64_t due = 0;
    char due_s[24] = "";
    if (deliver) {
        snprintf(due_s, sizeof due_s, "%.*s", (int)dvl, deliver);
        if (!b->br_timer) {
            reply_error(mh, call, reqid, 400, "InvalidArgument",
                        "timer messages are not available on this broker");
            return;
        }
        if (apg_timer_due(b->br_timer, APG_TIMER_DELIVER_MS, due_s, strlen(due_s), apg_wall_ms(),
                          &due, err, sizeof err)) {
            reply_error(mh, call, reqid, 400, "InvalidArgument", err);
            return;
        }
        if (due > 0)
            apg_props_append(pb, "TIMER_DELIVER_MS", due_s);
    }
    int64_t check_s = 0;
    if (half) {
        char ck[24];
        snprintf(ck, sizeof ck, "%.*s", (int)ckl, checkt);
        check_s = atoll(ck);
        apg_props_append(pb, "TRAN_MSG", "true");
        apg_props_append(pb, "PGROUP", APG_MQHTTP_TXN_GROUP);
        apg_props_append(pb, "CHECK_IMMUNITY_TIME_IN_SECONDS", ck);
    }
    if (apg_props_append(pb, "WAIT", "true") || pb->b_len > 32767) {
        reply_error(mh, call, reqid, 400, "InvalidArgument", "message properties are too large");
        return;
    }
    int32_t qid = shard ? (int32_t)(((uint32_t)apg_java_hash(shard, shl) & 0x7fffffffu) %
                                    (uint32_t)tc.tc_write_queues)
                        : apg_broker_put_queue(b, &tc, -1);
    struct apg_msg_in in;
    memset(&in, 0, sizeof in);
    in.mi_topic = topic;
    in.mi_topic_len = strlen(topic);
    in.mi_queue_id = qid;
    in.mi_born_ts = apg_wall_ms();
    in.mi_born_host.h_ip[0] = 127;
    in.mi_born_host.h_ip[3] = 1;
    unsigned a, bb, c, d, port;
    if (sscanf(apg_http_peer(call), "%u.%u.%u.%u:%u", &a, &bb, &c, &d, &port) == 5) {
        in.mi_born_host.h_ip[0] = (uint8_t)a;
        in.mi_born_host.h_ip[1] = (uint8_t)bb;
        in.mi_born_host.h_ip[2] = (uint8_t)c;
        in.mi_born_host.h_ip[3] = (uint8_t)d;
        in.mi_born_host.h_port = port;
    }
    in.mi_body = (const uint8_t *)body;
    in.mi_body_len = bl;
    in.mi_props = (const char *)pb->b_data;
    in.mi_props_len = pb->b_len;
    in.mi_tags_code = tagz[0] ? apg_java_hash(tagz, strlen(tagz)) : 0;
    apg_err_t e = APG_OK;
    if (due > 0) {
        e = apg_schedule_props_with(&mh->mh_moved, in.mi_props, in.mi_props_len, "TIMER_OUT_MS",
                                    due_s, topic, qid);
        in.mi_topic = APG_TIMER_TOPIC;
        in.mi_topic_len = APG_TIMER_TOPIC_LEN;
    } else if (half) {
        e = apg_txn_half_props(&mh->mh_moved, in.mi_props, in.mi_props_len, topic, qid);
        in.mi_topic = APG_TXN_HALF_TOPIC;
        in.mi_topic_len = sizeof(APG_TXN_HALF_TOPIC) - 1;
        in.mi_queue_id = 0;
    }
    if (e) {
        reply_error(mh, call, reqid, 400, "InvalidArgument", "message properties are too large");
        return;
    }
    if (due > 0 || half) {
        in.mi_props = (const char *)mh->mh_moved.b_data;
        in.mi_props_len = mh->mh_moved.b_len;
        if (due > 0)
            in.mi_queue_id = apg_timer_park_qid(in.mi_props, in.mi_props_len);
    }
    struct pub *pu = apg_calloc(1, sizeof(*pu));
    if (!pu) {
        reply_error(mh, call, reqid, 500, "InternalError", "out of memory");
        return;
    }
    pu->p_mh = mh;
    pu->p_half = half;
    apg_pop_body_md5((const uint8_t *)body, bl, pu->p_md5);
    snprintf(pu->p_reqid, sizeof pu->p_reqid, "%s", reqid);
    struct apg_http_call *held = NULL;
    if (b->br_sync_flush) {
        /* Held before the put: its acknowledgement may come at once. */
        held = apg_http_hold(call, NULL, NULL);
        if (!held) {
            apg_free(pu);
            reply_error(mh, call, reqid, 500, "InternalError", "out of memory");
            return;
        }
        pu->p_call = held;
    }
    struct apg_put_result res;
    bool pending = false;
    e = apg_broker_put_notify(b, &in, 1, &res, pub_acked, pu, &pending, err, sizeof err);
    struct apg_http_call *ans = held ? held : call;
    if (e) {
        char why[700];
        snprintf(why, sizeof why, "the store refused the message: %s", err);
        reply_error(mh, ans, reqid, 500, "InternalError", why);
        apg_free(pu);
        return;
    }
    pu->p_phys = res.pr_phys_offset;
    if (half)
        half_remember(mh, topic, strlen(topic), res.pr_phys_offset, check_s, apg_wall_ms());
    if (pending)
        return; /* pu answered from pub_acked */
    pub_answer(ans, pu);
    apg_free(pu);
}

/* ---- consume ---- */

/* Properties as the SDK reads them: "k:v|" for KEYS, the __ names and the
 * user properties. */
static void put_props(struct apg_buf *o, const struct apg_msgrec *r)
{
    apg_buf_append_str(o, "<Properties>");
    size_t pos = 0;
    struct apg_prop_kv kv;
    while (apg_props_next(r->mr_props, r->mr_props_len, &pos, &kv)) {
        bool keys = kv.pk_name_len == 4 && !memcmp(kv.pk_name, "KEYS", 4);
        bool ours = kv.pk_name_len > 2 && !memcmp(kv.pk_name, "__", 2);
        if (!keys && !ours && apg_props_name_reserved(kv.pk_name, kv.pk_name_len))
            continue;
        apg_xml_put_text(o, kv.pk_name, kv.pk_name_len);
        apg_buf_append(o, ":", 1);
        apg_xml_put_text(o, kv.pk_val, kv.pk_val_len);
        apg_buf_append(o, "|", 1);
    }
    apg_buf_append_str(o, "</Properties>");
}

/* One <Message> of a consume answer. */
static void put_message(struct apg_mqhttp *mh, struct apg_buf *o, const struct apg_msgrec *r,
                        const char *handle, int64_t first, int64_t next, int32_t times)
{
    struct apg_broker *b = mh->mh_broker;
    char id[64], md5[33];
    size_t ul = 0;
    const char *uniq = apg_props_find(r->mr_props, r->mr_props_len, "UNIQ_KEY", &ul);
    if (uniq && ul < sizeof id) {
        memcpy(id, uniq, ul);
        id[ul] = '\0';
    } else {
        apg_msgid_encode(&r->mr_store_host, r->mr_phys_offset, id, sizeof id);
    }
    (void)b;
    const uint8_t *body;
    size_t blen;
    apg_pop_body_plain(r, &mh->mh_inflate, &body, &blen);
    apg_pop_body_md5(body, blen, md5);
    size_t tl = 0;
    const char *tag = apg_props_find(r->mr_props, r->mr_props_len, "TAGS", &tl);
    apg_buf_append_str(o, "<Message>");
    apg_xml_put_elem(o, "MessageId", id, strlen(id));
    apg_xml_put_elem(o, "ReceiptHandle", handle, strlen(handle));
    apg_xml_put_elem(o, "MessageBodyMD5", md5, 32);
    apg_xml_put_elem(o, "MessageBody", (const char *)body, blen);
    apg_buf_printf(o,
                   "<PublishTime>%lld</PublishTime><FirstConsumeTime>%lld</FirstConsumeTime>"
                   "<NextConsumeTime>%lld</NextConsumeTime><ConsumedTimes>%d</ConsumedTimes>",
                   (long long)r->mr_born_ts, (long long)first, (long long)next, (int)times);
    if (tag)
        apg_xml_put_elem(o, "MessageTag", tag, tl);
    put_props(o, r);
    apg_buf_append_str(o, "</Message>");
}

enum take_rc { TAKE_SOME, TAKE_NONE, TAKE_ANSWERED };

/* Pops for (group, topic) and answers with what it found; TAKE_NONE when
 * nothing (not answered). */
static enum take_rc take(struct apg_mqhttp *mh, struct apg_http_call *call, const char *reqid,
                         const char *group, const char *topic, const char *tag, int max, bool fifo)
{
    struct apg_broker *b = mh->mh_broker;
    char err[600];
    struct apg_tagexpr f;
    if (apg_tagexpr_parse(tag, strlen(tag), &f, err, sizeof err)) {
        reply_error(mh, call, reqid, 400, "InvalidArgument", err);
        return TAKE_ANSWERED;
    }
    struct apg_pop_req pr = {
        .pr_group = group,
        .pr_topic = topic,
        .pr_queue = -1,
        .pr_max = max,
        .pr_invisible = mh->mh_invisible_ms,
        .pr_fifo = fifo,
        .pr_init_min = true,
        .pr_tags = &f,
    };
    struct apg_pop_result *res = &mh->mh_res;
    apg_buf_reset(&mh->mh_recs);
    apg_err_t e = apg_pop_take(b->br_pop, &pr, &mh->mh_recs, res, err, sizeof err);
    if (e == APG_ENOTFOUND) {
        reply_error(mh, call, reqid, 404, "TopicNotExist", err);
        return TAKE_ANSWERED;
    }
    if (e) {
        reply_error(mh, call, reqid, 500, "InternalError", err);
        return TAKE_ANSWERED;
    }
    if (res->pr_n == 0)
        return TAKE_NONE;
    atomic_fetch_add_explicit(&b->br_get_total, res->pr_n, memory_order_relaxed);
    apg_broker_consume_note(b, group, topic, res->pr_n, mh->mh_recs.b_len);
    struct apg_buf *o = begin(call, 200, reqid);
    if (o) {
        apg_buf_append_str(o, XML_HEAD "<Messages xmlns=\"" XMLNS "\">");
        for (int i = 0; i < res->pr_n; i++) {
            const struct apg_pop_msg *pm = &res->pr_msgs[i];
            struct apg_msgrec r;
            if (apg_msgrec_decode(mh->mh_recs.b_data + pm->pm_rec_off, pm->pm_rec_len, false, &r,
                                  NULL) != APG_MSGREC_OK)
                continue;
            char handle[640];
            apg_pop_handle_of(res, pm, b->br_name, handle, sizeof handle);
            put_message(mh, o, &r, handle, res->pr_stamp, res->pr_stamp + res->pr_invisible,
                        pm->pm_attempts);
        }
        apg_buf_append_str(o, "</Messages>");
    }
    apg_http_end(call);
    return TAKE_SOME;
}

static void not_found(struct apg_mqhttp *mh, struct apg_http_call *call, const char *reqid)
{
    reply_error(mh, call, reqid, 404, "MessageNotExist", "Message not exist.");
}

/* The connection closed: the call is released now (the server's stop
 * waits for held calls); the tick frees the waiter. */
static void waiter_gone(struct apg_http_call *call, void *arg)
{
    struct waiter *w = arg;
    w->w_gone = true;
    apg_http_drop(call);
}

bool apg_mqhttp_tick(struct apg_mqhttp *mh)
{
    int64_t now = apg_wall_ms();
    struct waiter **pp = &mh->mh_waiters;
    while (*pp) {
        struct waiter *w = *pp;
        bool done = false;
        if (w->w_gone) {
            done = true;
        } else if (now >= w->w_deadline) {
            if (take(mh, w->w_call, w->w_reqid, w->w_group, w->w_topic, w->w_tag, w->w_max,
                     w->w_fifo) == TAKE_NONE)
                not_found(mh, w->w_call, w->w_reqid);
            done = true;
        } else if (apg_pop_available(mh->mh_broker->br_pop, w->w_group, w->w_topic, -1)) {
            done = take(mh, w->w_call, w->w_reqid, w->w_group, w->w_topic, w->w_tag, w->w_max,
                        w->w_fifo) != TAKE_NONE;
        }
        if (done) {
            *pp = w->w_next;
            apg_free(w);
        } else {
            pp = &w->w_next;
        }
    }
    return mh->mh_waiters != NULL;
}

/* trans=pop: the halves of topic whose check time came. */
static void take_halves(struct apg_mqhttp *mh, struct apg_http_call *call, const char *reqid,
                        const char *topic, int max)
{
    struct apg_broker *b = mh->mh_broker;
    int64_t now = apg_wall_ms();
    struct apg_buf *o = NULL;
    int n = 0;
    for (struct half *h = mh->mh_halves; h && n < max; h = h->h_next) {
        if (h->h_due > now || strcmp(h->h_topic, topic) != 0)
            continue;
        struct apg_buf rec = APG_BUF_INIT;
        struct apg_msgrec r;
        if (apg_store_read_at(b->br_store, h->h_clo, &rec) != APG_OK ||
            apg_msgrec_decode(rec.b_data, rec.b_len, false, &r, NULL) != APG_MSGREC_OK) {
            apg_buf_free(&rec);
            continue;
        }
        if (!o) {
            o = begin(call, 200, reqid);
            if (!o) {
                apg_buf_free(&rec);
                break;
            }
            apg_buf_append_str(o, XML_HEAD "<Messages xmlns=\"" XMLNS "\">");
        }
        char id[64], handle[300];
        apg_msgid_encode(&b->br_store_host, h->h_clo, id, sizeof id);
        snprintf(handle, sizeof handle, "T %s", id);
        h->h_times++;
        h->h_due = now + h->h_check_ms;
        put_message(mh, o, &r, handle, now, h->h_due, h->h_times);
        apg_buf_free(&rec);
        n++;
    }
    if (n == 0 && !o) {
        not_found(mh, call, reqid);
        return;
    }
    if (o)
        apg_buf_append_str(o, "</Messages>");
    apg_http_end(call);
}

static void consume(struct apg_mqhttp *mh, struct apg_http_call *call,
                    const struct apg_http_req *req, const char *topic, const char *group,
                    const struct query *q, const char *reqid)
{
    struct apg_broker *b = mh->mh_broker;
    bool halves = !strcmp(q->q_trans, "pop"), fifo = !strcmp(q->q_trans, "order");
    if (q->q_trans[0] && !halves && !fifo) {
        reply_error(mh, call, reqid, 400, "InvalidArgument", "trans must be pop or order");
        return;
    }
    if (!admit(mh, call, req, reqid, halves ? "ConsumeHalfMessage" : "ConsumeMessage", topic,
               halves ? NULL : group, halves))
        return;
    int max = q->q_num < 0 ? 1 : q->q_num;
    if (max < 1 || max > MAX_BATCH) {
        reply_error(mh, call, reqid, 400, "InvalidArgument", "numOfMessages must be 1 to 16");
        return;
    }
    int wait = q->q_wait < 0 ? 0 : q->q_wait;
    if (wait > MAX_WAIT_S) {
        reply_error(mh, call, reqid, 400, "InvalidArgument", "waitseconds must be 0 to 30");
        return;
    }
    struct apg_topic_cfg tc;
    char err[600];
    if (!apg_topics_get(b->br_topics, topic, &tc)) {
        snprintf(err, sizeof err, "topic %s does not exist on broker %s", topic, b->br_name);
        reply_error(mh, call, reqid, 404, "TopicNotExist", err);
        return;
    }
    if (halves) {
        take_halves(mh, call, reqid, topic, max);
        return;
    }
    struct apg_group_cfg gc;
    if (apg_groups_get_or_create(b->br_groups, group, b->br_auto_create_group, &gc) != APG_OK) {
        snprintf(err, sizeof err,
                 "consumer group %s does not exist and autoCreateSubscriptionGroup=false", group);
        reply_error(mh, call, reqid, 404, "ConsumerNotExist", err);
        return;
    }
    if (!gc.gc_consume_enable) {
        snprintf(err, sizeof err, "consumer group %s is disabled (consumeEnable=false)", group);
        reply_error(mh, call, reqid, 403, "AccessDenied", err);
        return;
    }
    if (take(mh, call, reqid, group, topic, q->q_tag, max, fifo) != TAKE_NONE)
        return;
    if (wait == 0) {
        not_found(mh, call, reqid);
        return;
    }
    struct waiter *w = apg_calloc(1, sizeof(*w));
    if (w)
        w->w_call = apg_http_hold(call, waiter_gone, w);
    if (!w || !w->w_call) {
        apg_free(w);
        not_found(mh, call, reqid);
        return;
    }
    w->w_mh = mh;
    snprintf(w->w_topic, sizeof w->w_topic, "%s", topic);
    snprintf(w->w_group, sizeof w->w_group, "%s", group);
    snprintf(w->w_tag, sizeof w->w_tag, "%s", q->q_tag);
    snprintf(w->w_reqid, sizeof w->w_reqid, "%s", reqid);
    w->w_max = max;
    w->w_fifo = fifo;
    w->w_deadline = apg_wall_ms() + (int64_t)wait * 1000;
    w->w_next = mh->mh_waiters;
    mh->mh_waiters = w;
    apg_http_tick_want(w->w_call);
}

/* ---- ack, commit, rollback ---- */

struct handle_err {
    const char *he_handle;
    size_t he_len;
    const char *he_code;
    const char *he_msg;
};

/* An end record waiting for the group commit (SYNC_FLUSH). The answer
 * goes out when the record is written; the end is recorded once durable
 * (a lost one is decided by the broker's transaction check). */
struct end_ctx {
    struct apg_broker *ec_b;
    struct apg_txn_end *ec_te;
    struct apg_put_result ec_res[2];
};

/* Store ack thread: apg_txn_end_finish runs on any thread. */
static void end_acked(void *arg, apg_err_t rc)
{
    struct end_ctx *ec = arg;
    int n;
    apg_txn_end_msgs(ec->ec_te, &n);
    apg_txn_end_finish(ec->ec_b, ec->ec_te, rc, ec->ec_res[n - 1].pr_queue_offset);
    apg_free(ec);
}

/* Ends the half a "T <msgid>" handle names. */
static apg_err_t end_half(struct apg_mqhttp *mh, const char *hs, size_t hl, bool commit,
                          const char **code, const char **msg)
{
    struct apg_broker *b = mh->mh_broker;
    struct apg_host host;
    int64_t clo;
    *code = "ReceiptHandleError";
    if (hl < 3 || memcmp(hs, "T ", 2) != 0 || apg_msgid_decode(hs + 2, hl - 2, &host, &clo) ||
        !b->br_txn) {
        *msg = "not a transactional receipt handle this broker gave out";
        return APG_EINVAL;
    }
    /* Forget it here first: whatever the outcome, trans=pop no longer
     * hands it out once it ended or cannot end. */
    struct apg_txn_end *te;
    static char why[300];
    enum apg_txn_end_rc rc = apg_txn_end_prepare(b, clo, -1, NULL, commit, &te, why, sizeof why);
    apg_err_t e = APG_OK;
    if (rc == APG_TXN_END_REFUSED) {
        *msg = why;
        e = APG_EINVAL;
    } else if (rc == APG_TXN_END_STORE) {
        int n;
        const struct apg_msg_in *msgs = apg_txn_end_msgs(te, &n);
        struct end_ctx *ec = apg_calloc(1, sizeof(*ec));
        char err[256];
        bool pending = false;
        e = ec ? APG_OK : APG_ENOMEM;
        if (ec) {
            ec->ec_b = b;
            ec->ec_te = te;
            e = apg_broker_put_notify(b, msgs, n, ec->ec_res, end_acked, ec, &pending, err,
                                      sizeof err);
        }
        if (!pending) {
            apg_txn_end_finish(b, te, e, e ? 0 : ec->ec_res[n - 1].pr_queue_offset);
            apg_free(ec);
        }
        if (e) {
            *code = "InternalError";
            *msg = "the store refused the transaction's end";
        }
    }
    for (struct half **pp = &mh->mh_halves; *pp; pp = &(*pp)->h_next)
        if ((*pp)->h_clo == clo) {
            struct half *h = *pp;
            *pp = h->h_next;
            apg_free(h);
            mh->mh_n_halves--;
            break;
        }
    return e;
}

static void ack(struct apg_mqhttp *mh, struct apg_http_call *call, const struct apg_http_req *req,
                const char *topic, const char *group, const struct query *q, const char *reqid)
{
    struct apg_broker *b = mh->mh_broker;
    bool commit = !strcmp(q->q_trans, "commit"), rollback = !strcmp(q->q_trans, "rollback");
    if (q->q_trans[0] && !commit && !rollback) {
        reply_error(mh, call, reqid, 400, "InvalidArgument", "trans must be commit or rollback");
        return;
    }
    bool txn = commit || rollback;
    if (!admit(mh, call, req, reqid, txn ? "EndTransaction" : "AckMessage", topic,
               txn ? NULL : group, txn))
        return;
    if (!body_md5_ok(req)) {
        reply_error(mh, call, reqid, 400, "InvalidDigest",
                    "Content-MD5 does not match the body (Base64 of its hex MD5)");
        return;
    }
    char err[600];
    if (apg_xml_parse(req->hr_body, req->hr_body_len, &mh->mh_doc, &mh->mh_vals, err, sizeof err)) {
        reply_error(mh, call, reqid, 400, "MalformedXML", err);
        return;
    }
    const struct apg_xml_doc *d = &mh->mh_doc;
    if (strcmp(d->xd_root, "ReceiptHandles") != 0 || d->xd_n == 0) {
        reply_error(mh, call, reqid, 400, "MalformedXML",
                    "the root element must be ReceiptHandles with at least one ReceiptHandle");
        return;
    }
    struct handle_err errs[APG_XML_MAX_CHILDREN];
    int ne = 0;
    for (int i = 0; i < d->xd_n; i++) {
        const char *hs = (const char *)mh->mh_vals.b_data + d->xd_c[i].xc_off;
        size_t hl = d->xd_c[i].xc_len;
        struct handle_err *he = &errs[ne];
        he->he_handle = hs;
        he->he_len = hl;
        he->he_code = "ReceiptHandleError";
        if (strcmp(d->xd_c[i].xc_name, "ReceiptHandle") != 0) {
            he->he_msg = "not a ReceiptHandle element";
            ne++;
            continue;
        }
        if (txn) {
            if (end_half(mh, hs, hl, commit, &he->he_code, &he->he_msg))
                ne++;
            continue;
        }
        struct apg_pop_handle h;
        if (apg_pop_handle_decode(hs, hl, &h) || h.ph_offset < 0) {
            he->he_msg = "not a receipt handle this broker gave out";
            ne++;
            continue;
        }
        apg_err_t e = apg_pop_ack(b->br_pop, group, topic, h.ph_queue, h.ph_offset, h.ph_stamp);
        if (e == APG_ENOTFOUND) {
            he->he_msg = "the receipt handle has expired: the message was acknowledged, its "
                         "invisible time ran out, or it was delivered again";
            ne++;
        } else if (e) {
            he->he_code = "InternalError";
            he->he_msg = "the pop journal cannot be written";
            ne++;
        }
    }
    if (ne == 0) {
        struct apg_buf *o = begin(call, 204, reqid);
        (void)o;
        apg_http_end(call);
        return;
    }
    struct apg_buf *o = begin(call, 404, reqid);
    if (o) {
        apg_buf_append_str(o, XML_HEAD "<Errors xmlns=\"" XMLNS "\">");
        for (int i = 0; i < ne; i++) {
            apg_buf_append_str(o, "<Error>");
            apg_xml_put_elem(o, "ErrorCode", errs[i].he_code, strlen(errs[i].he_code));
            apg_xml_put_elem(o, "ErrorMessage", errs[i].he_msg, strlen(errs[i].he_msg));
            apg_xml_put_elem(o, "ReceiptHandle", errs[i].he_handle, errs[i].he_len);
            apg_buf_append_str(o, "</Error>");
        }
        apg_buf_append_str(o, "</Errors>");
    }
    apg_http_end(call);
}

/* ---- entry ---- */

void apg_mqhttp_serve(struct apg_mqhttp *mh, struct apg_http_call *call,
                      const struct apg_http_req *req)
{
    char reqid[40];
    reqid_make(mh, reqid);
    /* /topics/<topic>/messages */
    const char *p = req->hr_path + 8, *end = req->hr_path + req->hr_path_len;
    const char *slash = memchr(p, '/', (size_t)(end - p));
    if (!slash || (size_t)(end - slash) != 9 || memcmp(slash, "/messages", 9) != 0 || slash == p) {
        reply_error(mh, call, reqid, 404, "InvalidArgument",
                    "the resource must be /topics/<topic>/messages");
        return;
    }
    struct query q;
    const char *why = NULL;
    if (!query_parse(req->hr_query, req->hr_query ? req->hr_query_len : 0, &q, &why)) {
        reply_error(mh, call, reqid, 400, "InvalidArgument", why);
        return;
    }
    char tname[APG_NAME_CAP], raw[APG_NAME_CAP], group[APG_NAME_CAP] = "";
    if (!url_decode(p, (size_t)(slash - p), raw, sizeof raw) ||
        !ns_wrap(q.q_ns, raw, strlen(raw), tname, sizeof tname) ||
        (q.q_consumer[0] &&
         !ns_wrap(q.q_ns, q.q_consumer, strlen(q.q_consumer), group, sizeof group))) {
        reply_error(mh, call, reqid, 400, "InvalidArgument", "topic or consumer name too long");
        return;
    }
    bool get = !strcmp(req->hr_method, "GET"), del = !strcmp(req->hr_method, "DELETE");
    if (!strcmp(req->hr_method, "POST")) {
        publish(mh, call, req, tname, reqid);
    } else if ((get || del) && !group[0]) {
        reply_error(mh, call, reqid, 400, "InvalidArgument", "the consumer parameter is required");
    } else if (get) {
        consume(mh, call, req, tname, group, &q, reqid);
    } else if (del) {
        ack(mh, call, req, tname, group, &q, reqid);
    } else {
        reply_error(mh, call, reqid, 405, "InvalidArgument", "method not allowed");
    }
}

void apg_mqhttp_refuse_large(struct apg_mqhttp *mh, struct apg_http_call *call)
{
    char reqid[40];
    reqid_make(mh, reqid);
    reply_error(mh, call, reqid, 413, "MessageBodyTooLarge",
                "the request body is over the HTTP port's limit (4 MiB)");
}

struct apg_mqhttp *apg_mqhttp_new(struct apg_broker *b)
{
    struct apg_mqhttp *mh = apg_calloc(1, sizeof(*mh));
    if (!mh)
        return NULL;
    mh->mh_broker = b;
    mh->mh_invisible_ms = apg_cfg_int(b->br_cfg, APG_CFG_httpConsumeInvisibleSeconds) * 1000;
    if (b->br_txn) {
        bool more = false;
        int64_t t0 = apg_wall_ms();
        int n = apg_txn_list_open(b->br_txn, MAX_HALVES, RELOAD_SCAN_MAX, half_reload, mh, &more);
        if (mh->mh_n_halves || more)
            apg_log_info("http",
                         "%zu open transactional halves of the HTTP port found among %d open "
                         "halves in %lld ms%s",
                         mh->mh_n_halves, n, (long long)(apg_wall_ms() - t0),
                         more ? " (the half queue was not read to its end)" : "");
    }
    return mh;
}

void apg_mqhttp_free(struct apg_mqhttp *mh)
{
    if (!mh)
        return;
    while (mh->mh_waiters) {
        struct waiter *w = mh->mh_waiters;
        mh->mh_waiters = w->w_next;
        if (!w->w_gone)
            apg_http_drop(w->w_call);
        apg_free(w);
    }
    while (mh->mh_halves) {
        struct half *h = mh->mh_halves;
        mh->mh_halves = h->h_next;
        apg_free(h);
    }
    apg_buf_free(&mh->mh_vals);
    apg_buf_free(&mh->mh_recs);
    apg_buf_free(&mh->mh_out);
    apg_buf_free(&mh->mh_props);
    apg_buf_free(&mh->mh_moved);
    apg_buf_free(&mh->mh_inflate);
    apg_free(mh);
}

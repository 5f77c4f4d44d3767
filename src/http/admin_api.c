/* The REST admin API under /api/ (docs/http-api.md): topics and their
 * routes, the cluster's brokers, consumer groups, offsets, message lookups
 * with delivery status per group and trace, test messages, the dead-letter
 * queue (browse, resend, export), transactions in flight and the login
 * check, for the web console and for scripts.
 *
 * Design. Every operation calls the broker function the matching remoting
 * admin code calls (broker_admin_stats.h: apg_broker_topic_update,
 * apg_broker_topic_stats_body, apg_broker_consume_stats_body,
 * apg_broker_offsets_reset, ...), or the store reader it calls
 * (apg_store_query_message, apg_store_read_at), so `apogee admin` and HTTP
 * share one implementation. This file only maps HTTP onto them: it parses
 * the path and the JSON body (jansson), answers JSON, and turns a RocketMQ
 * response code into {"code": N, "error": "..."} with a fitting status.
 * Stored records are answered decoded (properties as an object, the body in
 * base64).
 *
 * Access. With aclEnable=true every request other than GET must carry
 * "Authorization: Basic base64(accessKey:secretKey)" of an account in the
 * ACL file; the secret is checked by the ACL's own HMAC check (the same
 * accounts, white lists and topic permissions as the remoting port), so no
 * secret is compared here. Reads stay open, like /metrics.
 *
 * Durable puts. A test message and a DLQ resend go through
 * apg_broker_put_notify (struct apg_put_wait), as the message protocol's
 * publishes do: under SYNC_FLUSH the call is held (apg_http_hold) before
 * the put, its answer is made ready, and it is sent from a post of the
 * store's ack thread once the group commit covers the record (500 with
 * FLUSH_DISK_TIMEOUT when the flush is late), so the loop serves other
 * requests meanwhile. Table-file writes (topic and group create, update,
 * delete) still wait on the loop (apg_broker_tables_wait, at most
 * TABLE_WAIT_MS): they are small, rare operator writes of one file.
 *
 * Search by stored-time range. Without a key, GET /api/messages lists a
 * topic's messages stored within [begin, end], as RocketMQ's dashboard
 * does with a pull consumer: per queue, the offsets of begin and end by
 * the store's time search, the records between them, merged by store time.
 * It reads at most max records per queue and about RANGE_BYTES in all, on
 * this loop, and says when the list is cut short.
 *
 * Message track and trace. A message's delivery status per consumer group
 * compares each group's committed offset on the message's queue with its
 * queue offset and its tag expression with the message's TAGS, as
 * RocketMQ's messageTrackDetail does; the trace is read from the trace
 * topic by key and decoded by msg_trace.c.
 *
 * NameServer views. The cluster and a topic's route are asked of the
 * broker's NameServer on its registration client (apg_broker_ns_query):
 * the call is held, the answer is turned into JSON on the client's loop
 * and posted back, so this loop never waits on a NameServer.
 *
 * Threads: the HTTP port's loop thread (one, apart from the broker loops),
 * except put_acked (the store's ack thread: it only posts) and
 * ns_answered (the NameServer client's loop thread: it builds the answer
 * text from the response and its own struct ns_wait, then posts). */
#include "http/admin_api.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "acl/acl.h"
#include "broker/broker_admin_stats.h"
#include "broker/broker_rt.h"
#include "broker/txn/txn.h"
#include "common/clock.h"
#include "common/json.h"
#include "common/mem.h"
#include "common/sha1.h"
#include "http/msg_trace.h"
#include "protocol/remoting.h"
#include "protocol/msgid.h"
#include "protocol/props.h"
#include "protocol/tagexpr.h"

#define TABLE_WAIT_MS 5000
#define NS_WAIT_MS 3000
#define DLQ_PAGE_MAX 64
#define DLQ_EXPORT_MAX 10000
#define DLQ_EXPORT_BYTES (64u << 20) /* the answer stops after the record that passes it */
#define TXN_LIST_MAX 1000
#define TXN_SCAN_MAX 100000
#define RANGE_DEFAULT 64       /* messages a time-range search lists by default */
#define RANGE_MAX 2000         /* and at most (RocketMQ's dashboard stops past 2000) */
#define RANGE_BYTES (8u << 20) /* read per search, about (a queue's first record whole) */

struct api_ctx {
    struct apg_http_call *call;
    const struct apg_http_req *req;
    struct apg_broker *b;
    const char *seg[6]; /* path segments after /api/, NUL-terminated copies in path */
    int nseg;
    char path[512];
};

/* ---- answers ------------------------------------------------------------ */

static int status_of(int32_t code)
{
    switch (code) {
    case APG_RESP_SUCCESS:
        return 200;
    case APG_RESP_TOPIC_NOT_EXIST:
    case APG_RESP_QUERY_NOT_FOUND:
    case APG_RESP_SUBSCRIPTION_GROUP_NOT_EXIST:
        return 404;
    case APG_RESP_NO_PERMISSION:
        return 403;
    case APG_RESP_CONSUMER_NOT_ONLINE:
        return 409;
    case APG_RESP_INVALID_PARAMETER:
    case APG_RESP_MESSAGE_ILLEGAL:
        return 400;
    default:
        return 500;
    }
}

static void answer_error(struct api_ctx *x, int status, int32_t code, const char *error)
{
    struct apg_buf o = APG_BUF_INIT;
    if (apg_buf_printf(&o, "{\"code\":%d,\"error\":", code) || apg_json_put_str(&o, error) ||
        apg_buf_append(&o, "}", 1))
        apg_http_reply(x->call, 500, "text/plain", "out of memory\n", 14);
    else
        apg_http_reply(x->call, status, "application/json", o.b_data, o.b_len);
    apg_buf_free(&o);
}

static void answer_code(struct api_ctx *x, int32_t code, const char *remark)
{
    answer_error(x, status_of(code), code, remark);
}

/* Answers j (stolen) as JSON. */
static void answer_json(struct api_ctx *x, json_t *j)
{
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!text) {
        answer_error(x, 500, APG_RESP_SYSTEM_ERROR, "out of memory");
        return;
    }
    apg_http_reply(x->call, 200, "application/json", text, strlen(text));
    free(text);
}

/* fastjson text whose "offsetTable" maps MessageQueue objects to values
 * (TopicStatsTable, ConsumeStats, ResetOffsetBody) as standard JSON, the
 * table turned into an array of {"topic", "brokerName", "queueId", ...}
 * (the value's members, or "offset" for a number). NULL: out of memory or
 * not parsable. */
static json_t *mq_table_json(const struct apg_buf *o)
{
    char err[200];
    json_t *j = apg_json_parse((const char *)o->b_data, o->b_len, err, sizeof(err));
    json_t *tbl = json_object_get(j, "offsetTable"), *arr = json_array();
    if (!j || !arr) {
        json_decref(j);
        json_decref(arr);
        return NULL;
    }
    const char *key;
    json_t *v;
    json_object_foreach(tbl, key, v)
    {
        json_t *row = json_loads(key, 0, NULL);
        if (!json_is_object(row)) {
            json_decref(row);
            continue;
        }
        if (json_is_object(v))
            json_object_update(row, v);
        else
            json_object_set(row, "offset", v);
        json_array_append_new(arr, row);
    }
    json_object_set_new(j, "offsetTable", arr);
    return j;
}

static void bad_request(struct api_ctx *x, const char *why)
{
    answer_error(x, 400, APG_RESP_INVALID_PARAMETER, why);
}

/* ---- request pieces ----------------------------------------------------- */

/* Percent-decodes src[0..n) into dst (cap bytes); false when malformed, too
 * long or holding a NUL. plus: '+' means a space (query strings). */
static bool url_decode(const char *src, size_t n, char *dst, size_t cap, bool plus)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)src[i];
        if (c == '%') {
            if (i + 2 >= n || !isxdigit((unsigned char)src[i + 1]) ||
                !isxdigit((unsigned char)src[i + 2]))
                return false;
            char hex[3] = {src[i + 1], src[i + 2], 0};
            c = (int)strtol(hex, NULL, 16);
            i += 2;
        } else if (c == '+' && plus) {
            c = ' ';
        }
        if (c == 0 || o + 1 >= cap)
            return false;
        dst[o++] = (char)c;
    }
    dst[o] = 0;
    return true;
}

/* Query parameter name, decoded into out: 1 found, 0 absent, -1
 * malformed (bad escape, NUL, longer than cap). */
static int query_get(const struct apg_http_req *req, const char *name, char *out, size_t cap)
{
    const char *q = req->hr_query;
    size_t n = q ? req->hr_query_len : 0, nl = strlen(name);
    for (size_t i = 0; i < n;) {
        const char *amp = memchr(q + i, '&', n - i);
        size_t end = amp ? (size_t)(amp - q) : n;
        const char *eq = memchr(q + i, '=', end - i);
        if (eq && (size_t)(eq - (q + i)) == nl && memcmp(q + i, name, nl) == 0)
            return url_decode(eq + 1, (size_t)(q + end - eq - 1), out, cap, true) ? 1 : -1;
        i = end + 1;
    }
    return 0;
}

/* The decoded value of query parameter name into out; false when absent
 * or malformed. */
static bool query_param(const struct apg_http_req *req, const char *name, char *out, size_t cap)
{
    return query_get(req, name, out, cap) == 1;
}

/* An optional integer parameter: *v unchanged when absent; false when
 * present but not an integer. */
static bool query_i64(const struct apg_http_req *req, const char *name, int64_t *v)
{
    char s[32], *end;
    int r = query_get(req, name, s, sizeof(s));
    if (r == 0)
        return true;
    if (r < 0 || !s[0])
        return false;
    long long n = strtoll(s, &end, 10);
    if (*end)
        return false;
    *v = n;
    return true;
}

/* Splits the path after "/api/" into decoded segments. */
static bool split_path(struct api_ctx *x)
{
    const char *p = x->req->hr_path + 5;
    size_t n = x->req->hr_path_len - 5, o = 0;
    x->nseg = 0;
    for (size_t i = 0; i <= n && x->nseg < 6;) {
        const char *sl = memchr(p + i, '/', n - i);
        size_t end = sl ? (size_t)(sl - p) : n;
        if (end == i) { /* empty segment (trailing slash) */
            i = end + 1;
            if (!sl)
                break;
            continue;
        }
        if (!url_decode(p + i, end - i, x->path + o, sizeof(x->path) - o, false))
            return false;
        x->seg[x->nseg++] = x->path + o;
        o += strlen(x->path + o) + 1;
        if (!sl)
            break;
        i = end + 1;
    }
    return true;
}

/* The JSON object body, or NULL after answering 400. */
static json_t *body_object(struct api_ctx *x)
{
    char err[200];
    if (!x->req->hr_body_len) {
        bad_request(x, "this request needs a JSON object body");
        return NULL;
    }
    json_t *j =
        apg_json_parse((const char *)x->req->hr_body, x->req->hr_body_len, err, sizeof(err));
    if (!j || !json_is_object(j)) {
        json_decref(j);
        char why[300];
        snprintf(why, sizeof(why), "the body is not a JSON object%s%s", j ? "" : ": ",
                 j ? "" : err);
        bad_request(x, why);
        return NULL;
    }
    return j;
}

/* Integer member key of j into *v (unchanged when absent); false with a
 * 400 answered when present but not an integer. */
static bool member_int(struct api_ctx *x, json_t *j, const char *key, int64_t *v)
{
    json_t *m = json_object_get(j, key);
    if (!m || json_is_null(m))
        return true;
    if (!json_is_integer(m)) {
        char why[160];
        snprintf(why, sizeof(why), "%s must be an integer", key);
        bad_request(x, why);
        return false;
    }
    *v = json_integer_value(m);
    return true;
}

/* String member key of j (NULL when absent); false with 400 when present
 * but not a string. */
static bool member_str(struct api_ctx *x, json_t *j, const char *key, const char **v)
{
    json_t *m = json_object_get(j, key);
    *v = NULL;
    if (!m || json_is_null(m))
        return true;
    if (!json_is_string(m)) {
        char why[160];
        snprintf(why, sizeof(why), "%s must be a string", key);
        bad_request(x, why);
        return false;
    }
    *v = json_string_value(m);
    return true;
}

/* ---- access ------------------------------------------------------------- */

static bool b64_decode(const char *s, size_t n, char *out, size_t cap)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '=')
            break;
        const char *p = s[i] ? strchr(al, s[i]) : NULL;
        if (!p)
            return false;
        acc = (acc << 6) | (uint32_t)(p - al);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o + 1 >= cap)
                return false;
            out[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    out[o] = 0;
    return memchr(out, 0, o) == NULL;
}

/* With the ACL on, checks the request's Basic credentials as the remoting
 * request `code` with the ext field key=val (key NULL: none): the request
 * is built, signed with the given secret and put through the ACL's check,
 * so an account may do over HTTP exactly what it may do with that code
 * (admin codes need an admin account). Answers 401/403 and returns false
 * when refused. */
static bool access_ok(struct api_ctx *x, int32_t code, const char *key, const char *val)
{
    struct apg_acl *acl = x->b->br_acl;
    if (!acl)
        return true;
    size_t hl;
    const char *h = apg_http_header(x->req, "Authorization", &hl);
    char cred[256];
    if (!h || hl < 7 || strncasecmp(h, "Basic ", 6) != 0 ||
        !b64_decode(h + 6, hl - 6, cred, sizeof(cred)) || !strchr(cred, ':')) {
        answer_error(x, 401, APG_RESP_NO_PERMISSION,
                     "aclEnable=true: send Authorization: Basic base64(accessKey:secretKey) of "
                     "an account in the ACL file");
        return false;
    }
    char *sk = strchr(cred, ':');
    *sk++ = 0;
    struct apg_rcmd req;
    char sig[32];
    apg_rcmd_init_request(&req, code, 0, APG_SER_JSON);
    if (key)
        apg_rcmd_ext_add(&req, key, val);
    apg_rcmd_ext_add(&req, "AccessKey", cred);
    apg_acl_sign(&req, sk, sig);
    apg_rcmd_ext_add(&req, "Signature", sig);
    char remark[300];
    const char *peer = apg_http_peer(x->call);
    enum apg_acl_refusal r = apg_acl_check(acl, &req, peer ? peer : "", remark, sizeof(remark));
    memset(cred, 0, sizeof(cred));
    if (r == APG_ACL_OK)
        return true;
    answer_error(x, 403, APG_RESP_NO_PERMISSION, remark);
    return false;
}

/* ---- records ------------------------------------------------------------ */

static void host_text(const struct apg_host *h, char *out, size_t n)
{
    if (h->h_v6)
        snprintf(out, n, "[v6]:%u", h->h_port);
    else
        snprintf(out, n, "%u.%u.%u.%u:%u", h->h_ip[0], h->h_ip[1], h->h_ip[2], h->h_ip[3],
                 h->h_port);
}

static json_t *strn(const char *s, size_t n)
{
    return json_stringn_nocheck(s, n);
}

/* The stored record r as a JSON object (body in base64). */
static json_t *record_json(const struct apg_msgrec *r)
{
    json_t *j = json_object();
    json_t *props = json_object();
    char id[64], host[80];
    if (!j || !props) {
        json_decref(j);
        json_decref(props);
        return NULL;
    }
    json_object_set_new(j, "topic", strn(r->mr_topic, r->mr_topic_len));
    json_object_set_new(j, "queueId", json_integer(r->mr_queue_id));
    json_object_set_new(j, "queueOffset", json_integer(r->mr_queue_offset));
    json_object_set_new(j, "commitLogOffset", json_integer(r->mr_phys_offset));
    apg_msgid_encode(&r->mr_store_host, r->mr_phys_offset, id, sizeof(id));
    json_object_set_new(j, "offsetMsgId", json_string(id));
    json_object_set_new(j, "bornTimestamp", json_integer(r->mr_born_ts));
    json_object_set_new(j, "storeTimestamp", json_integer(r->mr_store_ts));
    host_text(&r->mr_born_host, host, sizeof(host));
    json_object_set_new(j, "bornHost", json_string(host));
    host_text(&r->mr_store_host, host, sizeof(host));
    json_object_set_new(j, "storeHost", json_string(host));
    json_object_set_new(j, "reconsumeTimes", json_integer(r->mr_reconsume_times));
    json_object_set_new(j, "flag", json_integer(r->mr_flag));
    json_object_set_new(j, "sysFlag", json_integer(r->mr_sysflag));
    json_object_set_new(j, "bodyCRC", json_integer(r->mr_body_crc));
    json_object_set_new(j, "bodySize", json_integer(r->mr_body_len));
    size_t pos = 0;
    struct apg_prop_kv kv;
    while (apg_props_next(r->mr_props, r->mr_props_len, &pos, &kv)) {
        char name[256];
        if (kv.pk_name_len >= sizeof(name))
            continue;
        memcpy(name, kv.pk_name, kv.pk_name_len);
        name[kv.pk_name_len] = 0;
        json_object_set_new(props, name, strn(kv.pk_val, kv.pk_val_len));
    }
    json_t *uk = json_object_get(props, "UNIQ_KEY");
    json_object_set(j, "msgId", uk ? uk : json_object_get(j, "offsetMsgId"));
    json_object_set_new(j, "properties", props);
    char *b64 = apg_malloc(((size_t)r->mr_body_len + 2) / 3 * 4 + 1);
    if (b64) {
        size_t n = apg_base64_encode(r->mr_body, r->mr_body_len, b64);
        json_object_set_new(j, "body", json_stringn(b64, n));
        apg_free(b64);
    }
    return j;
}

/* Appends to arr the records stored back to back in buf. */
static void records_append(json_t *arr, const struct apg_buf *buf)
{
    size_t at = 0;
    while (at < buf->b_len) {
        struct apg_msgrec r;
        if (apg_msgrec_decode(buf->b_data + at, buf->b_len - at, false, &r, NULL) != APG_MSGREC_OK)
            break;
        json_array_append_new(arr, record_json(&r));
        at += r.mr_total_size;
    }
}

/* ---- puts held for the disk (SYNC_FLUSH) --------------------------------- */

struct held_put {
    struct apg_http_call *hp_call;
    apg_err_t hp_rc;
    char *hp_answer; /* JSON text (jansson's allocation), NULL: out of memory */
};

static void put_on_loop(struct apg_http_call *call, void *arg)
{
    struct held_put *hp = arg;
    struct api_ctx x = {.call = call};
    if (hp->hp_rc == APG_ENOSLAVE || hp->hp_rc == APG_ESLAVETIMEOUT)
        hp->hp_rc = APG_OK; /* stored on this master; the slave catches up */
    if (hp->hp_rc == APG_ETIMEDOUT)
        answer_error(&x, 500, APG_RESP_FLUSH_DISK_TIMEOUT,
                     "stored, but the disk flush did not finish within syncFlushTimeout");
    else if (hp->hp_rc)
        answer_error(&x, 500, APG_RESP_SYSTEM_ERROR,
                     "the store failed to make the message durable");
    else if (!hp->hp_answer)
        answer_error(&x, 500, APG_RESP_SYSTEM_ERROR, "out of memory");
    else
        apg_http_reply(call, 200, "application/json", hp->hp_answer, strlen(hp->hp_answer));
    free(hp->hp_answer);
    apg_free(hp);
}

/* Store ack thread. */
static void put_acked(void *arg, apg_err_t rc)
{
    struct held_put *hp = arg;
    hp->hp_rc = rc;
    if (apg_http_post(hp->hp_call, put_on_loop, hp) != APG_OK) {
        free(hp->hp_answer); /* stopping: the call went with its connection */
        apg_free(hp);
    }
}

/* Under SYNC_FLUSH: holds the call (x->call becomes the held handle, which
 * every answer then goes to) and fills w so the put does not wait. NULL
 * otherwise, or when out of memory (the put then waits on the loop). */
static struct held_put *held_put_begin(struct api_ctx *x, struct apg_put_wait *w)
{
    if (!x->b->br_sync_flush)
        return NULL;
    struct held_put *hp = apg_calloc(1, sizeof(*hp));
    if (!hp)
        return NULL;
    hp->hp_call = apg_http_hold(x->call, NULL, NULL);
    if (!hp->hp_call) {
        apg_free(hp);
        return NULL;
    }
    x->call = hp->hp_call;
    *w = (struct apg_put_wait){.pw_done = put_acked, .pw_arg = hp};
    return hp;
}

/* After the put: answers ans (stolen) now, or keeps it for put_acked when
 * the put's acknowledgement is pending. With code not SUCCESS the caller
 * answered already and ans is NULL. */
static void held_put_end(struct api_ctx *x, struct held_put *hp, const struct apg_put_wait *w,
                         int32_t code, json_t *ans)
{
    if (hp && code == APG_RESP_SUCCESS && w->pw_pending) {
        hp->hp_answer = ans ? json_dumps(ans, JSON_COMPACT) : NULL;
        json_decref(ans);
        return; /* answered from put_acked */
    }
    apg_free(hp);
    if (code == APG_RESP_SUCCESS)
        answer_json(x, ans);
}

/* ---- topics ------------------------------------------------------------- */

/* POST /api/topics, PUT /api/topics/<topic>: UPDATE_AND_CREATE_TOPIC. */
static void topic_put(struct api_ctx *x, const char *name)
{
    json_t *j = body_object(x);
    if (!j)
        return;
    struct apg_topic_cfg tc = {0};
    const char *topic = name;
    bool exists = false;
    if (!topic && !member_str(x, j, "topic", &topic))
        goto out;
    if (!topic || !topic[0]) {
        bad_request(x, "name the topic: {\"topic\": \"...\"}");
        goto out;
    }
    if (strlen(topic) >= sizeof(tc.tc_name)) {
        bad_request(x, "the topic name is too long");
        goto out;
    }
    if (!access_ok(x, APG_REQ_UPDATE_AND_CREATE_TOPIC, "topic", topic))
        goto out;
    exists = apg_topics_get(x->b->br_topics, topic, &tc);
    if (name && !exists) {
        char why[300];
        snprintf(why, sizeof(why),
                 "topic %s does not exist on this broker; POST /api/topics creates it", topic);
        answer_code(x, APG_RESP_TOPIC_NOT_EXIST, why);
        goto out;
    }
    if (!exists) {
        snprintf(tc.tc_name, sizeof(tc.tc_name), "%s", topic);
        tc.tc_read_queues = tc.tc_write_queues = 8;
        tc.tc_perm = APG_PERM_READ | APG_PERM_WRITE;
    }
    int64_t rq = tc.tc_read_queues, wq = tc.tc_write_queues, perm = tc.tc_perm, q = -1;
    if (!member_int(x, j, "queueNums", &q) || !member_int(x, j, "readQueueNums", &rq) ||
        !member_int(x, j, "writeQueueNums", &wq) || !member_int(x, j, "perm", &perm))
        goto out;
    if (q != -1)
        rq = wq = q;
    json_t *ord = json_object_get(j, "order");
    if (ord && !json_is_boolean(ord)) {
        bad_request(x, "order must be true or false");
        goto out;
    }
    if (ord)
        tc.tc_order = json_is_true(ord);
    if (perm != tc.tc_perm && perm != 2 && perm != 4 && perm != 6 && perm != 0) {
        bad_request(x, "perm must be 6 (read and write), 4 (read only), 2 (write only) or 0");
        goto out;
    }
    if (rq < 1 || rq > 1024 || wq < 1 || wq > 1024) {
        bad_request(x, "readQueueNums and writeQueueNums must be 1..1024");
        goto out;
    }
    tc.tc_read_queues = (int32_t)rq;
    tc.tc_write_queues = (int32_t)wq;
    tc.tc_perm = (int32_t)perm;
    char remark[400];
    int32_t code = apg_broker_topic_update(x->b, &tc, remark, sizeof(remark));
    if (code != APG_RESP_SUCCESS) {
        answer_code(x, code, remark);
        goto out;
    }
    if (!apg_broker_tables_wait(x->b, apg_topics_changes(x->b->br_topics), 0, TABLE_WAIT_MS)) {
        answer_error(x, 500, APG_RESP_SYSTEM_ERROR,
                     "the change is in memory but topics.json was not written in time; check the "
                     "disk");
        goto out;
    }
    answer_json(x, json_pack("{s:s,s:i,s:i,s:i,s:b,s:b}", "topic", tc.tc_name, "readQueueNums",
                             tc.tc_read_queues, "writeQueueNums", tc.tc_write_queues, "perm",
                             tc.tc_perm, "order", tc.tc_order, "created", !exists));
out:
    json_decref(j);
}

static void topic_delete(struct api_ctx *x, const char *topic)
{
    if (!access_ok(x, APG_REQ_DELETE_TOPIC_IN_BROKER, "topic", topic))
        return;
    char remark[400];
    int32_t code = apg_broker_topic_delete(x->b, topic, remark, sizeof(remark));
    if (code != APG_RESP_SUCCESS) {
        answer_code(x, code, remark);
        return;
    }
    apg_broker_tables_wait(x->b, apg_topics_changes(x->b->br_topics), 0, TABLE_WAIT_MS);
    answer_json(x, json_pack("{s:s,s:b}", "topic", topic, "deleted", 1));
}

static void topic_stats(struct api_ctx *x, const char *topic)
{
    char remark[400];
    struct apg_buf o = APG_BUF_INIT;
    int32_t code = apg_broker_topic_stats_body(x->b, topic, &o, remark, sizeof(remark));
    if (code != APG_RESP_SUCCESS)
        answer_code(x, code, remark);
    else
        answer_json(x, mq_table_json(&o));
    apg_buf_free(&o);
}

/* POST /api/topics/<topic>/messages: a test message. */
static void topic_send(struct api_ctx *x, const char *topic)
{
    json_t *j = body_object(x);
    if (!j)
        return;
    const char *tags = NULL, *keys = NULL, *body = NULL, **props = NULL;
    int64_t qid = -1;
    size_t np = 0;
    if (!member_str(x, j, "tags", &tags) || !member_str(x, j, "keys", &keys) ||
        !member_str(x, j, "body", &body) || !member_int(x, j, "queueId", &qid))
        goto out;
    if (!body || !body[0]) {
        bad_request(x, "body must be a non-empty string (the message body, UTF-8)");
        goto out;
    }
    if (qid < -1 || qid > 1024) {
        bad_request(x, "queueId must be -1 (any) or a queue of the topic");
        goto out;
    }
    json_t *pj = json_object_get(j, "properties");
    if (pj && !json_is_object(pj)) {
        bad_request(x, "properties must be an object of strings");
        goto out;
    }
    if (pj && json_object_size(pj)) {
        props = apg_calloc(2 * json_object_size(pj), sizeof(*props));
        if (!props) {
            answer_error(x, 500, APG_RESP_SYSTEM_ERROR, "out of memory");
            goto out;
        }
        const char *k;
        json_t *v;
        json_object_foreach(pj, k, v)
        {
            if (!json_is_string(v)) {
                bad_request(x, "properties must be an object of strings");
                goto out;
            }
            props[2 * np] = k;
            props[2 * np + 1] = json_string_value(v);
            np++;
        }
    }
    if (!access_ok(x, APG_REQ_SEND_MESSAGE, "topic", topic))
        goto out;
    struct apg_test_msg tm = {.tm_topic = topic,
                              .tm_qid = (int32_t)qid,
                              .tm_tags = tags,
                              .tm_keys = keys,
                              .tm_props = props,
                              .tm_nprops = np,
                              .tm_body = (const uint8_t *)body,
                              .tm_body_len = json_string_length(json_object_get(j, "body"))};
    struct apg_put_result res;
    struct apg_put_wait w = {0};
    struct held_put *hp = held_put_begin(x, &w);
    char uniq[33], remark[400], id[64];
    int32_t code =
        apg_broker_msg_send_test(x->b, &tm, hp ? &w : NULL, &res, uniq, remark, sizeof(remark));
    json_t *ans = NULL;
    if (code != APG_RESP_SUCCESS) {
        answer_code(x, code, remark);
    } else {
        apg_msgid_encode(&x->b->br_store_host, res.pr_phys_offset, id, sizeof(id));
        ans = json_pack("{s:s,s:s,s:s,s:I,s:I}", "msgId", uniq, "offsetMsgId", id, "topic", topic,
                        "queueOffset", (json_int_t)res.pr_queue_offset, "commitLogOffset",
                        (json_int_t)res.pr_phys_offset);
    }
    held_put_end(x, hp, &w, code, ans);
out:
    apg_free(props);
    json_decref(j);
}

/* ---- groups ------------------------------------------------------------- */

static apg_err_t online_name(void *ud, const char *group)
{
    json_t *online = ud;
    json_object_set_new(online, group, json_true());
    return APG_OK;
}

/* GET /api/groups: the subscription group table, each with "online". */
static void groups_list(struct api_ctx *x)
{
    struct apg_buf o = APG_BUF_INIT;
    char err[200];
    json_t *tbl = NULL, *online = json_object(), *out = json_array();
    static const struct apg_clients_visitor v = {.cv_name = online_name};
    if (apg_groups_encode(x->b->br_groups, &o) ||
        !(tbl = apg_json_parse((const char *)o.b_data, o.b_len, err, sizeof(err))) || !online ||
        !out || apg_clients_visit(x->b->br_clients, true, NULL, &v, online)) {
        answer_error(x, 500, APG_RESP_SYSTEM_ERROR, "out of memory");
        json_decref(out);
        goto done;
    }
    json_t *sg = json_object_get(tbl, "subscriptionGroupTable");
    const char *name;
    json_t *cfg;
    json_object_foreach(sg, name, cfg)
    {
        json_t *row = json_pack("{s:s,s:b,s:O}", "group", name, "online",
                                json_object_get(online, name) != NULL, "config", cfg);
        json_array_append_new(out, row);
        json_object_del(online, name);
    }
    json_object_foreach(online, name, cfg) /* online without a table entry */
        json_array_append_new(out,
                              json_pack("{s:s,s:b,s:n}", "group", name, "online", 1, "config"));
    answer_json(x, json_pack("{s:o}", "groups", out));
done:
    json_decref(tbl);
    json_decref(online);
    apg_buf_free(&o);
}

/* cv_member: member id -> its own subscription table (an object). */
static apg_err_t member_subs(void *ud, const struct apg_client_member *m)
{
    json_t *t = m->cm_subs ? json_loads(m->cm_subs, 0, NULL) : NULL;
    return json_object_set_new(ud, m->cm_id, t ? t : json_object()) ? APG_ENOMEM : APG_OK;
}

/* The user's subscriptions of a member's table: without the group's
 * %RETRY% topic, which the client library subscribes by itself (a member
 * may heartbeat before it did). New reference. */
static json_t *user_subs(json_t *t)
{
    json_t *u = json_deep_copy(t);
    const char *k;
    void *tmp;
    json_t *v;
    json_object_foreach_safe(u, tmp, k, v)
    {
        if (!strncmp(k, "%RETRY%", 7))
            json_object_del(u, k);
    }
    return u;
}

/* Each connectionSet entry gets its member's own "subscriptionTable";
 * true when every member's, %RETRY% topics aside, equals the first's
 * (RocketMQ's dashboard calls such a group's subscription consistent). */
static bool members_agree(struct api_ctx *x, const char *group, json_t *conns)
{
    static const struct apg_clients_visitor v = {.cv_member = member_subs};
    json_t *by_id = json_object();
    if (!by_id || apg_clients_visit(x->b->br_clients, true, group, &v, by_id) != APG_OK) {
        json_decref(by_id);
        return true; /* the members left meanwhile: nothing disagrees */
    }
    bool same = true;
    json_t *first = NULL;
    size_t i;
    json_t *c;
    json_array_foreach(conns, i, c)
    {
        json_t *t = json_object_get(by_id, apg_json_get_str(c, "clientId", ""));
        if (!t)
            continue; /* left between the two reads */
        json_object_set(c, "subscriptionTable", t);
        json_t *u = user_subs(t);
        if (!first) {
            first = u;
            continue;
        }
        if (!json_equal(first, u))
            same = false;
        json_decref(u);
    }
    json_decref(first);
    json_decref(by_id);
    return same;
}

/* GET /api/groups/<g>/connections: GET_CONSUMER_CONNECTION_LIST, each
 * member with its own subscriptionTable, plus "consistent" (every member
 * subscribes the same topics with the same expressions) and "topicsOk"
 * (every subscribed topic exists and is readable; "problems" says what
 * is wrong). */
static void group_connections(struct api_ctx *x, const char *group)
{
    char remark[400], err[200];
    struct apg_buf o = APG_BUF_INIT;
    int32_t code = apg_broker_connection_body(x->b, group, true, &o, remark, sizeof(remark));
    if (code == APG_RESP_CONSUMER_NOT_ONLINE) {
        answer_json(x,
                    json_pack("{s:[],s:{},s:b,s:b,s:b,s:s}", "connectionSet", "subscriptionTable",
                              "online", 0, "consistent", 1, "topicsOk", 1, "note", remark));
        goto out;
    }
    if (code != APG_RESP_SUCCESS) {
        answer_code(x, code, remark);
        goto out;
    }
    json_t *j = apg_json_parse((const char *)o.b_data, o.b_len, err, sizeof(err));
    if (!j) {
        answer_error(x, 500, APG_RESP_SYSTEM_ERROR, err);
        goto out;
    }
    bool topics_ok = true;
    json_t *problems = json_array();
    bool consistent = members_agree(x, group, json_object_get(j, "connectionSet"));
    if (!consistent)
        json_array_append_new(problems,
                              json_string("the online clients do not all subscribe the same "
                                          "topics with the same expressions (see each "
                                          "client's subscriptionTable)"));
    const char *topic;
    json_t *sub;
    json_object_foreach(json_object_get(j, "subscriptionTable"), topic, sub)
    {
        struct apg_topic_cfg tc;
        char why[300];
        if (!apg_topics_get(x->b->br_topics, topic, &tc))
            snprintf(why, sizeof(why), "subscribed topic %s does not exist on this broker", topic);
        else if (!(tc.tc_perm & APG_PERM_READ))
            snprintf(why, sizeof(why), "subscribed topic %s is not readable (perm %d)", topic,
                     tc.tc_perm);
        else
            continue;
        topics_ok = false;
        json_array_append_new(problems, json_string(why));
    }
    json_object_set_new(j, "online", json_true());
    json_object_set_new(j, "consistent", json_boolean(consistent));
    json_object_set_new(j, "topicsOk", json_boolean(topics_ok));
    json_object_set_new(j, "problems", problems);
    answer_json(x, j);
out:
    apg_buf_free(&o);
}

/* GET /api/groups/<g>/consume-stats[?topic=T]: GET_CONSUME_STATS. */
static void group_consume_stats(struct api_ctx *x, const char *group)
{
    char topic[APG_NAME_CAP] = "";
    if (x->req->hr_query && !query_param(x->req, "topic", topic, sizeof(topic)))
        topic[0] = 0;
    struct apg_buf o = APG_BUF_INIT;
    int64_t diff = 0;
    json_t *j = NULL;
    if (!apg_broker_consume_stats_body(x->b, group, topic, &o, &diff) && (j = mq_table_json(&o)))
        json_object_set_new(j, "diffTotal", json_integer(diff));
    answer_json(x, j);
    apg_buf_free(&o);
}

/* POST /api/groups/<g>/reset-offset: INVOKE_BROKER_TO_RESET_OFFSET. */
static void group_reset(struct api_ctx *x, const char *group)
{
    json_t *j = body_object(x);
    if (!j)
        return;
    struct apg_reset_req r = {.rr_group = group, .rr_qid = -1, .rr_offset = -1, .rr_ts = -1};
    int64_t qid = -1, ts = -1, off = -1;
    if (!member_str(x, j, "topic", &r.rr_topic) || !member_int(x, j, "timestamp", &ts) ||
        !member_int(x, j, "queueId", &qid) || !member_int(x, j, "offset", &off))
        goto out;
    if (!r.rr_topic || !r.rr_topic[0]) {
        bad_request(x, "name the topic whose offsets to reset: {\"topic\": \"...\"}");
        goto out;
    }
    if (qid < -1 || qid > 1024 || (off != -1 && qid < 0)) {
        bad_request(x, "queueId must be a queue of the topic; offset needs a queueId");
        goto out;
    }
    r.rr_ts = ts;
    r.rr_qid = (int32_t)qid;
    r.rr_offset = off;
    r.rr_force = json_is_true(json_object_get(j, "force"));
    r.rr_preview = json_is_true(json_object_get(j, "preview"));
    r.rr_offline_ok = true;
    if (!access_ok(x, APG_REQ_INVOKE_BROKER_TO_RESET_OFFSET, "topic", r.rr_topic))
        goto out;
    char remark[512];
    struct apg_buf o = APG_BUF_INIT;
    int told = 0;
    int32_t code = apg_broker_offsets_reset(x->b, &r, &o, &told, remark, sizeof(remark));
    if (code != APG_RESP_SUCCESS) {
        answer_error(x, code == APG_RESP_SYSTEM_ERROR ? 400 : status_of(code), code, remark);
    } else {
        json_t *body = mq_table_json(&o);
        if (body) {
            json_object_set_new(body, "preview", json_boolean(r.rr_preview));
            json_object_set_new(body, "membersTold", json_integer(told));
        }
        answer_json(x, body);
    }
    apg_buf_free(&o);
out:
    json_decref(j);
}

/* ---- messages ----------------------------------------------------------- */

/* One record read for a range search: where it sits in the read buffer and
 * what it is sorted by. */
struct range_ent {
    int64_t re_ts; /* STORETIMESTAMP */
    int32_t re_qid;
    int64_t re_qoff;
    size_t re_at; /* offset of the stored record in the read buffer */
};

static int range_ent_cmp(const void *a, const void *b)
{
    const struct range_ent *l = a, *r = b;
    if (l->re_ts != r->re_ts)
        return l->re_ts < r->re_ts ? -1 : 1;
    if (l->re_qid != r->re_qid)
        return l->re_qid < r->re_qid ? -1 : 1;
    return l->re_qoff < r->re_qoff ? -1 : l->re_qoff > r->re_qoff;
}

/* State of one range search: the records read so far, back to back. */
struct range_scan {
    struct apg_buf rs_buf;
    struct range_ent *rs_recs;
    size_t rs_n, rs_cap;
    int64_t rs_cutoff; /* complete for store times up to here (INT64_MAX: all) */
};

/* Reads queue qid's records from the one stored at or after begin to the
 * last stored at or before end, at most max of them and about the bytes
 * left of RANGE_BYTES; keeps those stored within [begin, end]. A queue
 * read only in part lowers rs_cutoff to the store time of its last record
 * read: its unread records are stored at or after that time. */
static apg_err_t range_queue(struct apg_store *st, const char *topic, int32_t qid, int64_t begin,
                             int64_t end, int64_t max, struct range_scan *rs)
{
    size_t tl = strlen(topic);
    int64_t lo = apg_store_offset_by_time(st, topic, tl, qid, begin, false);
    int64_t hi = apg_store_offset_by_time(st, topic, tl, qid, end, true);
    if (lo >= apg_store_max_offset(st, topic, tl, qid) || hi < lo)
        return APG_OK;
    int64_t want = hi - lo + 1 < max ? hi - lo + 1 : max;
    size_t used = rs->rs_buf.b_len, bytes = used < RANGE_BYTES ? RANGE_BYTES - used : 1;
    struct apg_get_result gr;
    apg_err_t e =
        apg_store_get(st, topic, tl, qid, lo, (int)want, bytes, NULL, NULL, &rs->rs_buf, &gr);
    if (e)
        return e;
    int64_t last_ts = INT64_MIN;
    for (size_t at = used; at < rs->rs_buf.b_len;) {
        struct apg_msgrec r;
        if (apg_msgrec_decode(rs->rs_buf.b_data + at, rs->rs_buf.b_len - at, false, &r, NULL) !=
            APG_MSGREC_OK)
            break;
        last_ts = r.mr_store_ts;
        if (r.mr_store_ts >= begin && r.mr_store_ts <= end) {
            if (rs->rs_n == rs->rs_cap) {
                size_t cap = rs->rs_cap ? 2 * rs->rs_cap : 64;
                struct range_ent *p = apg_realloc(rs->rs_recs, cap * sizeof(*p));
                if (!p)
                    return APG_ENOMEM;
                rs->rs_recs = p;
                rs->rs_cap = cap;
            }
            rs->rs_recs[rs->rs_n++] = (struct range_ent){
                .re_ts = r.mr_store_ts, .re_qid = qid, .re_qoff = r.mr_queue_offset, .re_at = at};
        }
        at += r.mr_total_size;
    }
    if (gr.gr_count > 0 && gr.gr_next_begin_offset <= hi && last_ts < rs->rs_cutoff)
        rs->rs_cutoff = last_ts;
    return APG_OK;
}

/* GET /api/messages?topic=T&begin=ms&end=ms[&max=N]: the messages of T
 * stored within [begin, end] on this broker, oldest first, as RocketMQ's
 * dashboard lists a topic's messages by time: per queue, the offsets of
 * begin and end (SEARCH_OFFSET_BY_TIMESTAMP's lookup), the records between
 * them, filtered by store time and merged. It runs on the HTTP port's own
 * loop, so the work is bounded: at most max records per queue and about
 * RANGE_BYTES read in all. Oldest first, a capped answer holds exactly the
 * first max messages of the range (each queue's first max records contain
 * them), and the next search can begin at the last one's store time. */
static void messages_by_time(struct api_ctx *x, const char *topic)
{
    int64_t begin = INT64_MIN, end = INT64_MIN, max = RANGE_DEFAULT;
    if (!query_i64(x->req, "begin", &begin) || !query_i64(x->req, "end", &end) ||
        !query_i64(x->req, "max", &max)) {
        bad_request(x, "begin, end (ms since the epoch) and max must be integers");
        return;
    }
    if (begin == INT64_MIN || end == INT64_MIN) {
        bad_request(x, "name a key (?key=...) or a stored-time range (?begin=ms&end=ms, ms "
                       "since the epoch)");
        return;
    }
    if (begin > end) {
        bad_request(x, "begin is after end: give begin <= end (ms since the epoch)");
        return;
    }
    if (max < 1 || max > RANGE_MAX) {
        char why[120];
        snprintf(why, sizeof(why), "max must be between 1 and %d", RANGE_MAX);
        bad_request(x, why);
        return;
    }
    /* QUERY_MESSAGE, as key search: RocketMQ's plain ACL asks SUB on the
     * topic both for it and for the dashboard's pulls, and a pull would also
     * name a consumer group, which this search has none of. */
    if (!access_ok(x, APG_REQ_QUERY_MESSAGE, "topic", topic))
        return;
    struct apg_topic_cfg tc;
    if (!apg_topics_get(x->b->br_topics, topic, &tc)) {
        char why[APG_NAME_CAP + 64];
        snprintf(why, sizeof(why), "topic %s does not exist on this broker", topic);
        answer_code(x, APG_RESP_TOPIC_NOT_EXIST, why);
        return;
    }
    int32_t nq = tc.tc_read_queues > tc.tc_write_queues ? tc.tc_read_queues : tc.tc_write_queues;
    struct range_scan rs = {.rs_buf = APG_BUF_INIT, .rs_cutoff = INT64_MAX};
    apg_err_t e = APG_OK;
    for (int32_t q = 0; !e && q < nq; q++)
        e = range_queue(x->b->br_store, topic, q, begin, end, max, &rs);
    if (e) {
        answer_error(x, 500, APG_RESP_SYSTEM_ERROR, "out of memory");
        goto out;
    }
    if (rs.rs_n)
        qsort(rs.rs_recs, rs.rs_n, sizeof(*rs.rs_recs), range_ent_cmp);
    size_t keep = 0;
    while (keep < rs.rs_n && keep < (size_t)max && rs.rs_recs[keep].re_ts <= rs.rs_cutoff)
        keep++;
    bool truncated = keep < rs.rs_n || rs.rs_cutoff != INT64_MAX;
    json_t *arr = json_array();
    for (size_t i = 0; i < keep; i++) {
        struct apg_msgrec r;
        size_t at = rs.rs_recs[i].re_at;
        if (apg_msgrec_decode(rs.rs_buf.b_data + at, rs.rs_buf.b_len - at, false, &r, NULL) ==
            APG_MSGREC_OK)
            json_array_append_new(arr, record_json(&r));
    }
    json_t *ans =
        json_pack("{s:o,s:b,s:I,s:I,s:I}", "messages", arr, "truncated", truncated, "begin",
                  (json_int_t)begin, "end", (json_int_t)end, "max", (json_int_t)max);
    if (ans && truncated) {
        char why[200];
        snprintf(why, sizeof(why),
                 "more messages are stored in this range than listed: narrow it, raise max (up "
                 "to %d) or search again from begin=%lld",
                 RANGE_MAX, keep ? (long long)rs.rs_recs[keep - 1].re_ts : (long long)begin);
        json_object_set_new(ans, "remark", json_string(why));
    }
    answer_json(x, ans);
out:
    apg_free(rs.rs_recs);
    apg_buf_free(&rs.rs_buf);
}

/* GET /api/messages?topic=T&key=K[&begin=ms&end=ms&max=N]: QUERY_MESSAGE;
 * without key, the search by stored-time range. */
static void messages_by_key(struct api_ctx *x, bool uniq_from_path, const char *id)
{
    char topic[APG_NAME_CAP], key[256];
    int64_t begin = 0, end = INT64_MAX, max = 32;
    if (!query_param(x->req, "topic", topic, sizeof(topic)) || !topic[0]) {
        bad_request(x, "name the topic: ?topic=...");
        return;
    }
    if (uniq_from_path) {
        snprintf(key, sizeof(key), "%s", id);
    } else if (query_get(x->req, "key", key, sizeof(key)) == 0) {
        messages_by_time(x, topic);
        return;
    } else if (!query_param(x->req, "key", key, sizeof(key)) || !key[0]) {
        bad_request(x, "name the key: ?key=...");
        return;
    }
    if (!query_i64(x->req, "begin", &begin) || !query_i64(x->req, "end", &end) ||
        !query_i64(x->req, "max", &max)) {
        bad_request(x, "begin, end (ms since the epoch) and max must be integers");
        return;
    }
    if (max < 1 || max > APG_STORE_QUERY_MAX)
        max = APG_STORE_QUERY_MAX;
    if (!access_ok(x, APG_REQ_QUERY_MESSAGE, "topic", topic))
        return;
    struct apg_buf out = APG_BUF_INIT;
    struct apg_store_query_result r;
    if (apg_store_query_message(x->b->br_store, topic, strlen(topic), key, strlen(key), (int)max,
                                begin, end, &out, &r)) {
        answer_error(x, 500, APG_RESP_SYSTEM_ERROR, "out of memory");
    } else {
        json_t *arr = json_array();
        records_append(arr, &out);
        answer_json(x, json_pack("{s:o,s:I}", "messages", arr, "indexLastUpdateTimestamp",
                                 (json_int_t)r.sq_last_update_ts));
    }
    apg_buf_free(&out);
}

/* GET /api/messages/<id>[?topic=T]: an offset msgId (VIEW_MESSAGE_BY_ID),
 * or with topic a unique key (QUERY_MESSAGE with _UNIQUE_KEY_QUERY). */
static void message_by_id(struct api_ctx *x, const char *id)
{
    struct apg_host h;
    int64_t phys;
    if (x->req->hr_query) {
        char topic[APG_NAME_CAP];
        if (query_param(x->req, "topic", topic, sizeof(topic)) && topic[0]) {
            messages_by_key(x, true, id);
            return;
        }
    }
    if (apg_msgid_decode(id, strlen(id), &h, &phys)) {
        bad_request(x, "not an offset message id (32 or 56 hex digits); for a client msgId "
                       "(UNIQ_KEY) add ?topic=<topic>");
        return;
    }
    if (!access_ok(x, APG_REQ_VIEW_MESSAGE_BY_ID, NULL, NULL))
        return;
    struct apg_buf out = APG_BUF_INIT;
    apg_store_prefetch_records(x->b->br_store, &phys, 1);
    if (apg_store_read_at(x->b->br_store, phys, &out) != APG_OK) {
        char why[200];
        snprintf(why, sizeof(why), "no message at commit log offset %lld on this broker",
                 (long long)phys);
        answer_code(x, APG_RESP_QUERY_NOT_FOUND, why);
    } else {
        json_t *arr = json_array();
        records_append(arr, &out);
        answer_json(x, json_pack("{s:o}", "messages", arr));
    }
    apg_buf_free(&out);
}

/* ---- message track: delivery status per consumer group ----------------- */

/* cv_group: the group's consumeType. */
static apg_err_t track_kind(void *ud, const char *consume_type, const char *model, const char *from)
{
    (void)model;
    (void)from;
    snprintf(ud, 32, "%s", consume_type);
    return APG_OK;
}

/* The committed offset of group on queue qid of topic (-1: none), from the
 * same ConsumeStats GET_CONSUME_STATS answers. */
static int64_t track_committed(struct api_ctx *x, const char *group, const char *topic, int32_t qid)
{
    struct apg_buf o = APG_BUF_INIT;
    int64_t off = -1;
    json_t *j = NULL;
    if (!apg_broker_consume_stats_body(x->b, group, topic, &o, NULL) && (j = mq_table_json(&o))) {
        size_t i;
        json_t *row;
        json_array_foreach(json_object_get(j, "offsetTable"), i, row)
        {
            if (json_integer_value(json_object_get(row, "queueId")) == qid &&
                !strcmp(apg_json_get_str(row, "topic", ""), topic))
                off = json_integer_value(json_object_get(row, "consumerOffset"));
        }
    }
    json_decref(j);
    apg_buf_free(&o);
    return off;
}

/* One group's MessageTrack for record r (RocketMQ's TrackType names):
 * NOT_ONLINE without a registered member; PULL for a pull consumer (it
 * keeps its own offsets); else CONSUMED when the group's committed offset
 * on r's queue is past r's queue offset (CONSUMED_BUT_FILTERED when the
 * group's tag expression does not select r's TAGS), NOT_CONSUME_YET when
 * it is not; UNKNOWN when the subscription cannot be read. */
static json_t *track_group(struct api_ctx *x, const char *group, const struct apg_msgrec *r,
                           const char *topic)
{
    static const struct apg_clients_visitor v = {.cv_group = track_kind};
    char kind[32] = "", expr[1024], etype[16], err[200] = "";
    const char *state;
    int64_t committed = track_committed(x, group, topic, r->mr_queue_id);
    apg_err_t e = apg_clients_visit(x->b->br_clients, true, group, &v, kind);
    if (e == APG_ENOTFOUND) {
        state = "NOT_ONLINE";
    } else if (e) {
        state = "UNKNOWN";
        snprintf(err, sizeof(err), "the client table could not be read");
    } else if (!strcmp(kind, "CONSUME_ACTIVELY")) {
        state = "PULL";
    } else if (committed <= r->mr_queue_offset) {
        state = "NOT_CONSUME_YET";
    } else if (!apg_clients_subscription(x->b->br_clients, group, topic, expr, sizeof(expr), etype,
                                         sizeof(etype))) {
        state = "UNKNOWN";
        snprintf(err, sizeof(err), "the online members do not subscribe %.150s", topic);
    } else if (strcmp(etype, "TAG")) {
        state = "CONSUMED"; /* a SQL92 filter reads the properties: counted as delivered */
    } else {
        struct apg_tagexpr te;
        size_t tl = 0;
        const char *tags = apg_props_find(r->mr_props, r->mr_props_len, "TAGS", &tl);
        if (apg_tagexpr_parse(expr, strlen(expr), &te, err, sizeof(err)))
            state = "UNKNOWN";
        else
            state = apg_tagexpr_match_tag(&te, tags, tl) ? "CONSUMED" : "CONSUMED_BUT_FILTERED";
    }
    return json_pack("{s:s,s:s,s:s,s:I,s:I}", "consumerGroup", group, "trackType", state,
                     "exceptionDesc", err, "consumerOffset", (json_int_t)committed, "queueOffset",
                     (json_int_t)r->mr_queue_offset);
}

/* The message a track or trace request names: an offset msgId, or with
 * ?topic=T a unique key (the first record stored in T). Answers and
 * returns false when there is none; else r points into *buf. */
static bool message_find(struct api_ctx *x, const char *id, struct apg_buf *buf,
                         struct apg_msgrec *r)
{
    char topic[APG_NAME_CAP] = "", why[512];
    struct apg_host h;
    int64_t phys;
    if (x->req->hr_query && !query_param(x->req, "topic", topic, sizeof(topic)))
        topic[0] = 0;
    if (topic[0]) {
        struct apg_store_query_result qr;
        if (!access_ok(x, APG_REQ_QUERY_MESSAGE, "topic", topic))
            return false;
        if (apg_store_query_message(x->b->br_store, topic, strlen(topic), id, strlen(id), 1, 0,
                                    INT64_MAX, buf, &qr)) {
            answer_error(x, 500, APG_RESP_SYSTEM_ERROR, "out of memory");
            return false;
        }
    } else if (apg_msgid_decode(id, strlen(id), &h, &phys)) {
        bad_request(x, "not an offset message id (32 or 56 hex digits); for a client msgId "
                       "(UNIQ_KEY) add ?topic=<topic>");
        return false;
    } else {
        if (!access_ok(x, APG_REQ_VIEW_MESSAGE_BY_ID, NULL, NULL))
            return false;
        apg_store_prefetch_records(x->b->br_store, &phys, 1);
        apg_store_read_at(x->b->br_store, phys, buf);
    }
    if (buf->b_len && apg_msgrec_decode(buf->b_data, buf->b_len, false, r, NULL) == APG_MSGREC_OK)
        return true;
    snprintf(why, sizeof(why), "no message %.200s%s%s on this broker", id, topic[0] ? " in " : "",
             topic);
    answer_code(x, APG_RESP_QUERY_NOT_FOUND, why);
    return false;
}

/* GET /api/messages/<id>/track[?topic=T]: every group that consumes the
 * message's topic (the online subscribers and the groups with committed
 * offsets on it, as QUERY_TOPIC_CONSUME_BY_WHO answers) with its
 * delivery status (track_group). */
static void message_track(struct api_ctx *x, const char *id)
{
    struct apg_buf buf = APG_BUF_INIT, names = APG_BUF_INIT;
    struct apg_msgrec r;
    char topic[APG_NAME_CAP];
    if (!message_find(x, id, &buf, &r))
        goto out;
    snprintf(topic, sizeof(topic), "%.*s", (int)r.mr_topic_len, r.mr_topic);
    json_t *tracks = json_array(), *seen = json_object();
    if (!tracks || !seen || apg_broker_topic_consumers(x->b, topic, &names)) {
        json_decref(tracks);
        json_decref(seen);
        answer_error(x, 500, APG_RESP_SYSTEM_ERROR, "out of memory");
        goto out;
    }
    const char *s = (const char *)names.b_data;
    for (size_t at = 0; at < names.b_len; at += strlen(s + at) + 1) {
        if (json_object_get(seen, s + at))
            continue;
        json_object_set_new(seen, s + at, json_true());
        json_array_append_new(tracks, track_group(x, s + at, &r, topic));
    }
    json_decref(seen);
    json_t *msg = record_json(&r);
    json_object_del(msg, "body");
    answer_json(x, json_pack("{s:o,s:o}", "message", msg, "tracks", tracks));
out:
    apg_buf_free(&buf);
    apg_buf_free(&names);
}

/* GET /api/messages/<msgId>/trace[?traceTopic=T]: the trace records of
 * the message (a client msgId, UNIQ_KEY) that clients with trace on
 * stored in the trace topic (msgTraceTopicName unless named), found by
 * key through the index as QUERY_MESSAGE finds them, decoded
 * (msg_trace.c), each SubAfter completed from its SubBefore, by time. */
static void message_trace(struct api_ctx *x, const char *id)
{
    char topic[APG_NAME_CAP] = "";
    if (x->req->hr_query && !query_param(x->req, "traceTopic", topic, sizeof(topic)))
        topic[0] = 0;
    if (!topic[0])
        snprintf(topic, sizeof(topic), "%s", apg_cfg_str(x->b->br_cfg, APG_CFG_msgTraceTopicName));
    if (!access_ok(x, APG_REQ_QUERY_MESSAGE, "topic", topic))
        return;
    struct apg_buf out = APG_BUF_INIT;
    struct apg_store_query_result qr;
    json_t *arr = json_array();
    if (!arr || apg_store_query_message(x->b->br_store, topic, strlen(topic), id, strlen(id),
                                        APG_STORE_QUERY_MAX, 0, INT64_MAX, &out, &qr)) {
        json_decref(arr);
        answer_error(x, 500, APG_RESP_SYSTEM_ERROR, "out of memory");
        goto out;
    }
    size_t at = 0;
    while (at < out.b_len) {
        struct apg_msgrec r;
        if (apg_msgrec_decode(out.b_data + at, out.b_len - at, false, &r, NULL) != APG_MSGREC_OK)
            break;
        apg_msg_trace_decode((const char *)r.mr_body, r.mr_body_len, id, arr);
        at += r.mr_total_size;
    }
    apg_msg_trace_link(arr);
    answer_json(x, json_pack("{s:s,s:s,s:o}", "msgId", id, "traceTopic", topic, "traces", arr));
out:
    apg_buf_free(&out);
}

/* ---- NameServer views: cluster and topic route (asynchronous) ----------- */

/* One GET_BROKER_CLUSTER_INFO or GET_ROUTEINFO_BY_TOPIC in flight: the
 * held call is answered from a post of the NameServer client's loop, so
 * the HTTP loop never waits on the NameServer. */
struct ns_wait {
    struct apg_http_call *nw_call;
    struct apg_broker *nw_b;
    bool nw_route;
    int nw_status;
    char *nw_text; /* JSON (jansson's allocation); NULL: out of memory */
};

static void ns_on_loop(struct apg_http_call *call, void *arg)
{
    struct ns_wait *w = arg;
    if (w->nw_text)
        apg_http_reply(call, w->nw_status, "application/json", w->nw_text, strlen(w->nw_text));
    else
        apg_http_reply(call, 500, "text/plain", "out of memory\n", 14);
    free(w->nw_text);
    apg_free(w);
}

/* ClusterInfo as {"clusters": [{"cluster", "brokers": [{"brokerName",
 * "brokerId", "addr", "role", "self"}]}]}: every broker the NameServer
 * knows, id 0 the master. */
static json_t *cluster_json(struct apg_broker *b, json_t *ci)
{
    json_t *clusters = json_array();
    const char *cname, *bname, *id;
    json_t *names, *addr;
    json_object_foreach(json_object_get(ci, "clusterAddrTable"), cname, names)
    {
        json_t *brokers = json_array();
        size_t i;
        json_t *n;
        json_array_foreach(names, i, n)
        {
            bname = json_string_value(n);
            json_t *bd =
                json_object_get(json_object_get(ci, "brokerAddrTable"), bname ? bname : "");
            json_object_foreach(json_object_get(bd, "brokerAddrs"), id, addr)
            {
                long long bid = strtoll(id, NULL, 10);
                const char *a = json_string_value(addr);
                json_array_append_new(brokers,
                                      json_pack("{s:s,s:I,s:s,s:s,s:b}", "brokerName", bname,
                                                "brokerId", (json_int_t)bid, "addr", a ? a : "",
                                                "role", bid == 0 ? "MASTER" : "SLAVE", "self",
                                                a && !strcmp(a, b->br_addr)));
            }
        }
        json_array_append_new(clusters,
                              json_pack("{s:s,s:o}", "cluster", cname, "brokers", brokers));
    }
    return json_pack("{s:o}", "clusters", clusters);
}

/* The NameServer client's loop thread: turns the answer into JSON and
 * posts it to the held call's loop. */
static void ns_answered(void *ud, const struct apg_rcmd *resp, apg_err_t err)
{
    struct ns_wait *w = ud;
    json_t *j = NULL;
    char why[300];
    if (err) {
        w->nw_status = 502;
        snprintf(why, sizeof(why), "the NameServer did not answer: %s", apg_strerror(err));
        j = json_pack("{s:i,s:s}", "code", APG_RESP_SYSTEM_ERROR, "error", why);
    } else if (resp->code != APG_RESP_SUCCESS) {
        w->nw_status = status_of(resp->code);
        j = json_pack("{s:i,s:s}", "code", resp->code, "error",
                      resp->remark ? resp->remark : "refused by the NameServer");
    } else {
        json_t *body = apg_json_parse((const char *)resp->body, resp->body_len, why, sizeof(why));
        w->nw_status = body ? 200 : 502;
        j = !body         ? json_pack("{s:i,s:s}", "code", APG_RESP_SYSTEM_ERROR, "error", why)
            : w->nw_route ? json_incref(body)
                          : cluster_json(w->nw_b, body);
        json_decref(body);
    }
    w->nw_text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (apg_http_post(w->nw_call, ns_on_loop, w)) {
        free(w->nw_text);
        apg_free(w);
    }
}

/* GET /api/brokers (GET_BROKER_CLUSTER_INFO) and GET /api/topics/<t>/route
 * (GET_ROUTEINFO_BY_TOPIC): asked of this broker's NameServer (namesrvAddr;
 * in standalone the one in the process). */
static void ns_view(struct api_ctx *x, const char *topic)
{
    struct ns_wait *w = apg_calloc(1, sizeof(*w));
    char err[300];
    if (!w) {
        answer_error(x, 500, APG_RESP_SYSTEM_ERROR, "out of memory");
        return;
    }
    w->nw_b = x->b;
    w->nw_route = topic != NULL;
    if (!(w->nw_call = apg_http_hold(x->call, NULL, NULL))) {
        apg_free(w);
        answer_error(x, 500, APG_RESP_SYSTEM_ERROR, "out of memory");
        return;
    }
    apg_err_t e = apg_broker_ns_query(
        x->b, topic ? APG_REQ_GET_ROUTEINFO_BY_TOPIC : APG_REQ_GET_BROKER_CLUSTER_INFO, topic,
        NS_WAIT_MS, ns_answered, w, err, sizeof(err));
    if (e) {
        x->call = w->nw_call;
        answer_error(x, e == APG_ENOTFOUND ? 409 : 502, APG_RESP_SYSTEM_ERROR, err);
        apg_free(w);
    }
}

/* ---- dead letters ------------------------------------------------------- */

/* A read of %DLQ%<group> queue 0: the topic, the queue's offsets and the
 * requested range (?offset=N&max=M, M defaulting to dflt and capped at
 * cap; offset not before min). */
struct dlq_range {
    char topic[APG_NAME_CAP + 8];
    size_t tl;
    int64_t off, max, min, top;
};

/* Fills r for group; false when it answered (bad query or refused). */
static bool dlq_range(struct api_ctx *x, const char *group, int64_t dflt, int64_t cap,
                      struct dlq_range *r)
{
    snprintf(r->topic, sizeof(r->topic), "%s%s", APG_DLQ_PREFIX, group);
    r->tl = strlen(r->topic);
    r->off = -1;
    r->max = dflt;
    if (!query_i64(x->req, "offset", &r->off) || !query_i64(x->req, "max", &r->max)) {
        bad_request(x, "offset and max must be integers");
        return false;
    }
    if (r->max < 1 || r->max > cap)
        r->max = cap;
    if (!access_ok(x, APG_REQ_QUERY_MESSAGE, "topic", r->topic))
        return false;
    r->min = apg_store_min_offset(x->b->br_store, r->topic, r->tl, 0);
    r->top = apg_store_max_offset(x->b->br_store, r->topic, r->tl, 0);
    if (r->off < r->min)
        r->off = r->min;
    return true;
}

/* GET /api/dlq/<group>[?offset=N&max=M]: the records of %DLQ%<group>. */
static void dlq_browse(struct api_ctx *x, const char *group)
{
    struct dlq_range r;
    if (!dlq_range(x, group, 32, DLQ_PAGE_MAX, &r))
        return;
    const char *topic = r.topic;
    size_t tl = r.tl;
    int64_t off = r.off, max = r.max, min = r.min, top = r.top;
    json_t *arr = json_array();
    struct apg_buf out = APG_BUF_INIT;
    struct apg_get_result gr;
    if (off < top && apg_store_get(x->b->br_store, topic, tl, 0, off, (int)max, 4u << 20, NULL,
                                   NULL, &out, &gr) == APG_OK)
        records_append(arr, &out);
    apg_buf_free(&out);
    answer_json(x, json_pack("{s:s,s:I,s:I,s:I,s:o}", "topic", topic, "minOffset", (json_int_t)min,
                             "maxOffset", (json_int_t)top, "offset", (json_int_t)off, "messages",
                             arr));
}

/* POST /api/dlq/<group>/resend {"commitLogOffset": N} or {"offsetMsgId"}. */
static void dlq_resend(struct api_ctx *x, const char *group)
{
    json_t *j = body_object(x);
    if (!j)
        return;
    int64_t phys = -1;
    const char *id = NULL;
    if (!member_int(x, j, "commitLogOffset", &phys) || !member_str(x, j, "offsetMsgId", &id))
        goto out;
    struct apg_host h;
    if (id && apg_msgid_decode(id, strlen(id), &h, &phys)) {
        bad_request(x, "offsetMsgId is not an offset message id");
        goto out;
    }
    if (phys < 0) {
        bad_request(x, "name the message: {\"commitLogOffset\": N} or {\"offsetMsgId\": \"...\"}");
        goto out;
    }
    /* CONSUME_MESSAGE_DIRECTLY: what RocketMQ's console resends with; an admin code here. */
    if (!access_ok(x, APG_REQ_CONSUME_MESSAGE_DIRECTLY, "consumerGroup", group))
        goto out;
    struct apg_put_result res;
    struct apg_put_wait w = {0};
    struct held_put *hp = held_put_begin(x, &w);
    char topic[APG_NAME_CAP], remark[400];
    int32_t code = apg_broker_msg_resend_dlq(x->b, group, phys, hp ? &w : NULL, &res, topic,
                                             sizeof(topic), remark, sizeof(remark));
    json_t *ans = NULL;
    if (code != APG_RESP_SUCCESS)
        answer_code(x, code, remark);
    else
        ans = json_pack("{s:s,s:I,s:I}", "topic", topic, "queueOffset",
                        (json_int_t)res.pr_queue_offset, "commitLogOffset",
                        (json_int_t)res.pr_phys_offset);
    held_put_end(x, hp, &w, code, ans);
out:
    json_decref(j);
}

/* GET /api/dlq/<group>/export[?offset=N&max=M]: the records of
 * %DLQ%<group> as JSON lines (one record_json object a line, plus
 * "bodyText": the body as text, null when it is not UTF-8), at most M (default 1000, cap
 * DLQ_EXPORT_MAX) and about DLQ_EXPORT_BYTES. */
static void dlq_export(struct api_ctx *x, const char *group)
{
    struct dlq_range r;
    if (!dlq_range(x, group, 1000, DLQ_EXPORT_MAX, &r))
        return;
    const char *topic = r.topic;
    size_t tl = r.tl;
    int64_t off = r.off, max = r.max, top = r.top;
    if (top - off > max)
        top = off + max;
    struct apg_buf *o = apg_http_begin(x->call, 200, "application/x-ndjson");
    struct apg_buf recs = APG_BUF_INIT;
    while (o && off < top && o->b_len < DLQ_EXPORT_BYTES) {
        struct apg_get_result gr;
        apg_buf_reset(&recs);
        int n = top - off < DLQ_PAGE_MAX ? (int)(top - off) : DLQ_PAGE_MAX;
        if (apg_store_get(x->b->br_store, topic, tl, 0, off, n, 4u << 20, NULL, NULL, &recs, &gr) !=
                APG_OK ||
            gr.gr_status != APG_GET_FOUND)
            break;
        int64_t before = off;
        size_t at = 0;
        while (at < recs.b_len && off < top && o->b_len < DLQ_EXPORT_BYTES) {
            struct apg_msgrec r;
            if (apg_msgrec_decode(recs.b_data + at, recs.b_len - at, false, &r, NULL) !=
                APG_MSGREC_OK)
                break;
            at += r.mr_total_size;
            off = r.mr_queue_offset + 1;
            json_t *j = record_json(&r);
            json_t *text =
                json_stringn((const char *)r.mr_body, r.mr_body_len); /* not UTF-8: NULL */
            if (j)
                json_object_set_new(j, "bodyText", text ? text : json_null());
            else
                json_decref(text);
            char *line = j ? json_dumps(j, JSON_COMPACT) : NULL;
            json_decref(j);
            if (line) {
                apg_buf_append_str(o, line);
                apg_buf_append_str(o, "\n");
                free(line);
            }
        }
        if (off == before)
            break;
    }
    apg_buf_free(&recs);
    apg_http_end(x->call);
}

/* ---- transactions ------------------------------------------------------- */

struct txn_list {
    json_t *arr;
    int64_t now;
};

static void txn_put(json_t *j, const char *key, const struct apg_msgrec *r, const char *prop)
{
    size_t vl = 0;
    const char *v = apg_props_find(r->mr_props, r->mr_props_len, prop, &vl);
    json_object_set_new(j, key, v ? strn(v, vl) : json_null());
}

static void txn_one(void *ud, const struct apg_msgrec *r, int64_t origin, int64_t check_times)
{
    struct txn_list *l = ud;
    json_t *j = json_object();
    if (!j)
        return;
    char id[64];
    txn_put(j, "producerGroup", r, "PGROUP");
    txn_put(j, "topic", r, "REAL_TOPIC");
    txn_put(j, "msgId", r, "UNIQ_KEY");
    txn_put(j, "keys", r, "KEYS");
    txn_put(j, "tags", r, "TAGS");
    json_object_set_new(j, "halfOffset", json_integer(origin));
    json_object_set_new(j, "commitLogOffset", json_integer(r->mr_phys_offset));
    apg_msgid_encode(&r->mr_store_host, r->mr_phys_offset, id, sizeof(id));
    json_object_set_new(j, "offsetMsgId", json_string(id));
    json_object_set_new(j, "bornTimestamp", json_integer(r->mr_born_ts));
    json_object_set_new(j, "ageMillis", json_integer(l->now - r->mr_born_ts));
    json_object_set_new(j, "checkTimes", json_integer(check_times));
    json_array_append_new(l->arr, j);
}

/* GET /api/transactions[?max=N]: the half messages still open
 * (apg_txn_list_open), oldest first. */
static void txn_list(struct api_ctx *x)
{
    int64_t max = 200;
    if (!query_i64(x->req, "max", &max)) {
        bad_request(x, "max must be an integer");
        return;
    }
    if (max < 1 || max > TXN_LIST_MAX)
        max = TXN_LIST_MAX;
    struct txn_list l = {.arr = json_array(), .now = apg_wall_ms()};
    if (!l.arr) {
        answer_error(x, 500, APG_RESP_SYSTEM_ERROR, "out of memory");
        return;
    }
    bool more = false;
    apg_txn_list_open(x->b->br_txn, (int)max, TXN_SCAN_MAX, txn_one, &l, &more);
    struct apg_txn_stats ts;
    apg_txn_stats(x->b->br_txn, &ts);
    answer_json(x, json_pack("{s:o,s:b,s:I,s:I,s:I,s:I}", "transactions", l.arr, "more", more,
                             "committed", (json_int_t)ts.ts_committed, "rolledBack",
                             (json_int_t)ts.ts_rolled_back, "checks", (json_int_t)ts.ts_checks,
                             "discarded", (json_int_t)ts.ts_discarded));
}

/* ---- session ------------------------------------------------------------ */

/* GET /api/session: whether the broker asks for an account (aclEnable) and,
 * when the request carries Basic credentials, whose they are once the ACL
 * accepts them: the signature check of CHECK_CLIENT_CONFIG (46), which needs
 * a known account (and white list) and no resource permission. The
 * console's login form calls it before keeping an account. */
static void session(struct api_ctx *x)
{
    bool acl = x->b->br_acl != NULL;
    size_t hl = 0;
    const char *h = apg_http_header(x->req, "Authorization", &hl);
    if (!acl || !h) {
        answer_json(x, json_pack("{s:b,s:n}", "acl", acl, "accessKey"));
        return;
    }
    if (!access_ok(x, APG_REQ_CHECK_CLIENT_CONFIG, NULL, NULL))
        return;
    char cred[256];
    if (hl < 7 || !b64_decode(h + 6, hl - 6, cred, sizeof(cred)))
        cred[0] = 0;
    char *sk = strchr(cred, ':');
    if (sk)
        *sk = 0;
    answer_json(x, json_pack("{s:b,s:s}", "acl", true, "accessKey", cred));
    memset(cred, 0, sizeof(cred));
}

/* ---- routing ------------------------------------------------------------ */

static bool is(const char *a, const char *b)
{
    return a && strcmp(a, b) == 0;
}

void apg_admin_api_serve(struct apg_http_call *call, const struct apg_http_req *req,
                         struct apg_broker *b)
{
    struct api_ctx x = {.call = call, .req = req, .b = b};
    if (req->hr_path_len < 5 || !split_path(&x) || x.nseg == 0) {
        answer_error(&x, 404, APG_RESP_INVALID_PARAMETER, "no such path under /api/");
        return;
    }
    const char *m = req->hr_method;
    bool get = is(m, "GET") || is(m, "HEAD"), post = is(m, "POST"), put = is(m, "PUT"),
         del = is(m, "DELETE");
    const char **s = x.seg;
    int n = x.nseg;
    bool known = true;
    if (is(s[0], "topics")) {
        if (n == 1 && post) {
            topic_put(&x, NULL);
            return;
        }
        if (n == 2 && put) {
            topic_put(&x, s[1]);
            return;
        }
        if (n == 2 && del) {
            topic_delete(&x, s[1]);
            return;
        }
        if (n == 3 && is(s[2], "stats") && get) {
            topic_stats(&x, s[1]);
            return;
        }
        if (n == 3 && is(s[2], "messages") && post) {
            topic_send(&x, s[1]);
            return;
        }
        if (n == 3 && is(s[2], "route") && get) {
            ns_view(&x, s[1]);
            return;
        }
        known = n <= 3;
    } else if (is(s[0], "groups")) {
        if (n == 1 && get) {
            groups_list(&x);
            return;
        }
        if (n == 3 && is(s[2], "connections") && get) {
            group_connections(&x, s[1]);
            return;
        }
        if (n == 3 && is(s[2], "consume-stats") && get) {
            group_consume_stats(&x, s[1]);
            return;
        }
        if (n == 3 && is(s[2], "reset-offset") && post) {
            group_reset(&x, s[1]);
            return;
        }
        known = n <= 3;
    } else if (is(s[0], "messages")) {
        if (n == 1 && get) {
            messages_by_key(&x, false, NULL);
            return;
        }
        if (n == 2 && get) {
            message_by_id(&x, s[1]);
            return;
        }
        if (n == 3 && is(s[2], "track") && get) {
            message_track(&x, s[1]);
            return;
        }
        if (n == 3 && is(s[2], "trace") && get) {
            message_trace(&x, s[1]);
            return;
        }
        known = n <= 3;
    } else if (is(s[0], "dlq")) {
        if (n == 2 && get) {
            dlq_browse(&x, s[1]);
            return;
        }
        if (n == 3 && is(s[2], "resend") && post) {
            dlq_resend(&x, s[1]);
            return;
        }
        if (n == 3 && is(s[2], "export") && get) {
            dlq_export(&x, s[1]);
            return;
        }
        known = n <= 3;
    } else if (is(s[0], "brokers")) {
        if (n == 1 && get) {
            ns_view(&x, NULL);
            return;
        }
        known = n == 1;
    } else if (is(s[0], "session")) {
        if (n == 1 && get) {
            session(&x);
            return;
        }
        known = n == 1;
    } else if (is(s[0], "transactions")) {
        if (n == 1 && get) {
            txn_list(&x);
            return;
        }
        known = n == 1;
    } else {
        known = false;
    }
    if (known)
        answer_error(&x, 405, APG_RESP_INVALID_PARAMETER,
                     "this method is not served on this path (docs/http-api.md)");
    else
        answer_error(&x, 404, APG_RESP_INVALID_PARAMETER, "no such path under /api/");
}

void apg_admin_api_handle(struct apg_http_call *call, const struct apg_http_req *req, void *ud)
{
    apg_admin_api_serve(call, req, *(struct apg_broker *const *)ud);
}

/* Decoding of RocketMQ's message trace text (docs/wire.md §19), for
 * GET /api/messages/<id>/trace.
 *
 * Format. A client with trace on sends batches of trace records as the
 * body of a message to the trace topic (RMQ_SYS_TRACE_TOPIC unless
 * configured), with the traced messages' msgIds (and their keys) as the
 * trace message's KEYS, so the broker's key index finds them. Records end
 * with byte 2, their fields are separated by byte 1, the first field names
 * the record:
 *   Pub: time, region, producer group, topic, msgId, tags, keys, store
 *        host, body length, cost ms, message type (ordinal), then either
 *        success, or offset msgId and success, then the client host;
 *   SubBefore: time, region, consumer group, request id, msgId, retry
 *        times, keys;
 *   SubAfter: request id, msgId, cost ms, success, keys, then the consume
 *        return type (ordinal) and the time when present;
 *   EndTransaction: time, region, producer group, topic, msgId, tags,
 *        keys, store host, message type, transaction id, state, whether
 *        from a check.
 * Empty fields are kept (a Java split would drop trailing ones; the
 * decoder only reads fields that exist).
 *
 * Pure: no I/O, no state; any thread. */
#include "http/msg_trace.h"

#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/mem.h"

#define FIELDS_MAX 20

static const char *const msg_types[] = {"Normal_Msg", "Trans_Msg_Half", "Trans_msg_Commit",
                                        "Delay_Msg", "Order_Msg"};
static const char *const return_types[] = {"SUCCESS", "TIME_OUT", "EXCEPTION", "RETURNNULL",
                                           "FAILED"};

struct rec {
    const char *f[FIELDS_MAX];
    size_t len[FIELDS_MAX];
    int n;
};

static bool field_is(const struct rec *r, int i, const char *s)
{
    return i < r->n && r->len[i] == strlen(s) && !memcmp(r->f[i], s, r->len[i]);
}

enum kind { K_STR, K_INT, K_BOOL, K_MSG_TYPE, K_RETURN };

struct field {
    const char *name;
    enum kind kind;
};

#define HEAD                                                                                       \
    {"timestamp", K_INT}, {"regionId", K_STR}, {"groupName", K_STR}, {"topic", K_STR},             \
        {"msgId", K_STR}, {"tags", K_STR}, {"keys", K_STR},                                        \
    {                                                                                              \
        "storeHost", K_STR                                                                         \
    }

static const struct field pub_fields[] = {HEAD,
                                          {"bodyLength", K_INT},
                                          {"costTime", K_INT},
                                          {"msgType", K_MSG_TYPE},
                                          {"offsetMsgId", K_STR},
                                          {"success", K_BOOL},
                                          {"clientHost", K_STR}};
/* the older Pub of 13 fields: success right after the message type */
static const struct field pub_short_fields[] = {
    HEAD, {"bodyLength", K_INT}, {"costTime", K_INT}, {"msgType", K_MSG_TYPE}, {"success", K_BOOL}};
static const struct field sub_before_fields[] = {
    {"timestamp", K_INT}, {"regionId", K_STR},   {"groupName", K_STR}, {"requestId", K_STR},
    {"msgId", K_STR},     {"retryTimes", K_INT}, {"keys", K_STR}};
static const struct field sub_after_fields[] = {
    {"requestId", K_STR}, {"msgId", K_STR},          {"costTime", K_INT}, {"success", K_BOOL},
    {"keys", K_STR},      {"contextCode", K_RETURN}, {"timestamp", K_INT}};
static const struct field end_txn_fields[] = {HEAD,
                                              {"msgType", K_MSG_TYPE},
                                              {"transactionId", K_STR},
                                              {"transactionState", K_STR},
                                              {"fromTransactionCheck", K_BOOL}};

struct type {
    const char *name;
    const struct field *fields;
    int nfields;
    int msgid; /* index of the msgId field (after the type) */
};

#define TYPE(n, f, m)                                                                              \
    {                                                                                              \
        n, f, (int)(sizeof(f) / sizeof(f[0])), m                                                   \
    }
static const struct type types[] = {
    TYPE("Pub", pub_fields, 4),
    TYPE("SubBefore", sub_before_fields, 4),
    TYPE("SubAfter", sub_after_fields, 1),
    TYPE("EndTransaction", end_txn_fields, 4),
};

static void put_field(json_t *o, const struct field *f, const char *v, size_t len)
{
    char tmp[24], *end;
    long long n = 0;
    bool num = len > 0 && len < sizeof(tmp);
    if (num) {
        memcpy(tmp, v, len);
        tmp[len] = 0;
        n = strtoll(tmp, &end, 10);
        num = *end == 0;
    }
    switch (f->kind) {
    case K_STR:
        json_object_set_new(o, f->name, json_stringn(v, len));
        break;
    case K_BOOL:
        json_object_set_new(o, f->name, json_boolean(len == 4 && !memcmp(v, "true", 4)));
        break;
    case K_MSG_TYPE:
    case K_RETURN:
        if (!num)
            break;
        json_object_set_new(o, f->kind == K_MSG_TYPE ? "msgTypeCode" : f->name, json_integer(n));
        if (n >= 0 && n < 5)
            json_object_set_new(o, f->kind == K_MSG_TYPE ? "msgType" : "consumeStatus",
                                json_string((f->kind == K_MSG_TYPE ? msg_types : return_types)[n]));
        break;
    case K_INT:
        if (num)
            json_object_set_new(o, f->name, json_integer(n));
        break;
    }
}

/* The type of record r, NULL for one not decoded. */
static const struct type *type_of(const struct rec *r)
{
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (field_is(r, 0, types[i].name))
            return &types[i];
    return NULL;
}

static json_t *record_json(const struct rec *r, const struct type *t)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "traceType", json_string(t->name));
    const struct field *fs = t->fields;
    int nf = t->nfields;
    if (t->fields == pub_fields && r->n == 13) {
        fs = pub_short_fields;
        nf = (int)(sizeof(pub_short_fields) / sizeof(pub_short_fields[0]));
    }
    for (int i = 0; i < nf && i + 1 < r->n; i++)
        put_field(o, &fs[i], r->f[i + 1], r->len[i + 1]);
    return o;
}

void apg_msg_trace_decode(const char *data, size_t n, const char *msg_id, json_t *arr)
{
    size_t at = 0;
    while (at < n) {
        const char *end = memchr(data + at, 2, n - at);
        size_t rl = end ? (size_t)(end - (data + at)) : n - at;
        struct rec r = {.n = 0};
        size_t p = at, stop = at + rl;
        while (r.n < FIELDS_MAX) {
            const char *sep = memchr(data + p, 1, stop - p);
            size_t fl = sep ? (size_t)(sep - (data + p)) : stop - p;
            r.f[r.n] = data + p;
            r.len[r.n++] = fl;
            if (!sep)
                break;
            p += fl + 1;
        }
        at += rl + 1;
        const struct type *t = type_of(&r);
        /* the shortest complete record is SubAfter's six fields */
        if (!t || r.n < 6)
            continue;
        if (msg_id && !field_is(&r, t->msgid + 1, msg_id))
            continue;
        json_array_append_new(arr, record_json(&r, t));
    }
}

static int by_time(const void *a, const void *b)
{
    json_t *const *x = a, *const *y = b;
    json_int_t ta = json_integer_value(json_object_get(*x, "timestamp"));
    json_int_t tb = json_integer_value(json_object_get(*y, "timestamp"));
    return ta < tb ? -1 : ta > tb;
}

void apg_msg_trace_link(json_t *arr)
{
    size_t n = json_array_size(arr), i, k;
    for (i = 0; i < n; i++) {
        json_t *after = json_array_get(arr, i);
        const char *rid = json_string_value(json_object_get(after, "requestId"));
        if (!rid || strcmp(apg_json_get_str(after, "traceType", ""), "SubAfter"))
            continue;
        for (k = 0; k < n; k++) {
            json_t *before = json_array_get(arr, k);
            if (strcmp(apg_json_get_str(before, "traceType", ""), "SubBefore") ||
                strcmp(apg_json_get_str(before, "requestId", ""), rid))
                continue;
            json_object_set(after, "groupName", json_object_get(before, "groupName"));
            json_object_set(after, "retryTimes", json_object_get(before, "retryTimes"));
            if (!json_object_get(after, "timestamp"))
                json_object_set(after, "timestamp", json_object_get(before, "timestamp"));
            break;
        }
    }
    json_t **v = apg_malloc(n * sizeof(*v) + 1);
    if (!v)
        return;
    for (i = 0; i < n; i++)
        v[i] = json_incref(json_array_get(arr, i));
    /* insertion sort: stable, and trace lists are short */
    for (i = 1; i < n; i++)
        for (k = i; k > 0 && by_time(&v[k - 1], &v[k]) > 0; k--) {
            json_t *t = v[k];
            v[k] = v[k - 1];
            v[k - 1] = t;
        }
    json_array_clear(arr);
    for (i = 0; i < n; i++)
        json_array_append_new(arr, v[i]);
    apg_free(v);
}

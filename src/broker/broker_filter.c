/* SQL92 property filters on the broker: CHECK_CLIENT_CONFIG (46) and the
 * record filter of pulls whose subscription is SQL92.
 *
 * RocketMQ accepts SQL92 subscriptions only with enablePropertyFilter=true
 * (default false). A Java or C consumer that subscribes with SQL92 first
 * sends CHECK_CLIENT_CONFIG with its subscription, so a broker that has the
 * feature off, or an expression that does not compile, fails the consumer's
 * start instead of its pulls; the remark carries the parser's position and
 * expectation. Pulls check the same again, since a client may skip the
 * check: the subscription comes from the request (sysFlag bit 2, headers
 * subscription and expressionType) or from the group's last heartbeat.
 *
 * The pull path reads records with the tag filter set to "everything" and
 * then keeps, in place, the records whose properties make the expression
 * TRUE (protocol/filter/sql92.h), before the response leaves the broker.
 * A pull thus returns the matches among the next maxMsgNums records, and
 * an empty match answers PULL_RETRY_IMMEDIATELY with the advanced offset,
 * as a tag pull whose records all collide on the hash does.
 *
 * Threads: pulls run on loop threads; each keeps its last compiled
 * expression in a thread-local slot and recompiles only when the text
 * changes, so a pull costs a string compare, not a parse. Compiling and
 * matching allocate nothing. TAG subscriptions never reach this file. */
#include <stdio.h>
#include <string.h>

#include "broker/broker_rt.h"
#include "common/json.h"
#include "common/log.h"
#include "protocol/filter/sql92.h"
#include "protocol/message.h"

#define SQL92 "SQL92"

static void refusal_off(const char *type, char *remark, size_t remarklen)
{
    /* RocketMQ's remark, then the fix. */
    snprintf(remark, remarklen,
             "The broker does not support consumer to filter message by %s "
             "(set enablePropertyFilter=true in the broker's configuration)",
             type);
}

static void refusal_type(const char *type, char *remark, size_t remarklen)
{
    snprintf(remark, remarklen, "unknown expressionType %.32s: subscribe with TAG or SQL92", type);
}

/* The loop thread's last compiled expression. */
struct sql_slot {
    bool ss_valid;
    size_t ss_len;
    char ss_text[APG_SQL92_MAX_EXPR + 1];
    struct apg_sql92 ss_q;
};

static _Thread_local struct sql_slot tl_slot;

const struct apg_sql92 *apg_broker_filter_sql(struct apg_broker *b, const char *type,
                                              const char *expr, int32_t *code, char *remark,
                                              size_t remarklen)
{
    if (!b->br_property_filter) {
        *code = APG_RESP_SYSTEM_ERROR;
        refusal_off(type, remark, remarklen);
        return NULL;
    }
    if (strcmp(type, SQL92) != 0) {
        *code = APG_RESP_SUBSCRIPTION_PARSE_FAILED;
        refusal_type(type, remark, remarklen);
        return NULL;
    }
    struct sql_slot *s = &tl_slot;
    size_t len = strlen(expr);
    if (s->ss_valid && s->ss_len == len && memcmp(s->ss_text, expr, len) == 0)
        return &s->ss_q;
    char err[256];
    s->ss_valid = false;
    if (apg_sql92_compile(expr, len, &s->ss_q, err, sizeof(err))) {
        *code = APG_RESP_SUBSCRIPTION_PARSE_FAILED;
        snprintf(remark, remarklen, "SQL92 subscription does not compile: %s", err);
        return NULL;
    }
    memcpy(s->ss_text, expr, len);
    s->ss_len = len;
    s->ss_valid = true;
    return &s->ss_q;
}

void apg_broker_proc_check_client_config(struct apg_broker *b, struct apg_conn *c,
                                         const struct apg_rcmd *req)
{
    char err[256], remark[512];
    json_t *body = req->body_len
                       ? apg_json_parse((const char *)req->body, req->body_len, err, sizeof(err))
                       : NULL;
    json_t *sub = body ? json_object_get(body, "subscriptionData") : NULL;
    const char *type = sub ? apg_json_get_str(sub, "expressionType", NULL) : NULL;
    if (!json_is_object(sub) || apg_sql92_is_tag_type(type)) {
        json_decref(body);
        apg_broker_reply(c, req, APG_RESP_SUCCESS, NULL);
        return;
    }
    int32_t code;
    const char *expr = apg_json_get_str(sub, "subString", "");
    const struct apg_sql92 *q = apg_broker_filter_sql(b, type, expr, &code, remark, sizeof(remark));
    if (q) {
        json_decref(body);
        apg_broker_reply(c, req, APG_RESP_SUCCESS, NULL);
        return;
    }
    json_decref(body);
    apg_broker_refuse(b, c, req, code, remark);
}

int apg_broker_filter_keep(struct apg_buf *out, apg_broker_keep_fn keep_fn, const void *ud)
{
    size_t rd = 0, wr = 0;
    int kept = 0;
    while (rd + 8 <= out->b_len) {
        uint32_t size = apg_be32(out->b_data + rd);
        if (size < 8 || size > out->b_len - rd)
            break;
        struct apg_msgrec r;
        /* A record that does not decode is kept: the client reports it. */
        bool keep = apg_msgrec_decode(out->b_data + rd, size, false, &r, NULL) != APG_MSGREC_OK ||
                    keep_fn(ud, r.mr_props, r.mr_props_len);
        if (keep) {
            if (wr != rd)
                memmove(out->b_data + wr, out->b_data + rd, size);
            wr += size;
            kept++;
        }
        rd += size;
    }
    out->b_len = wr;
    return kept;
}

static bool sql_keep(const void *q, const char *props, size_t len)
{
    return apg_sql92_match(q, props, len);
}

int apg_broker_filter_sql_keep(const struct apg_sql92 *q, struct apg_buf *out)
{
    return apg_broker_filter_keep(out, sql_keep, q);
}

/* Message property string codec (see props.h).
 *
 * The format is RocketMQ's: pairs of name \x01 value, each followed by \x02.
 * Java's reader (string2messageProperties) is lenient and never fails, so
 * neither does apg_props_next: a chunk is taken when it is at least three
 * bytes long and its first \x01 leaves a non-empty name and a non-empty value
 * (the value keeps any later \x01); anything else is skipped. Java stores the
 * pairs in a map, so a repeated name keeps its last value; apg_props_find
 * returns the last occurrence for the same reason, walking back from the
 * end so that it stops at the first hit.
 *
 * The walk is two memchr calls per pair and touches no memory but the input:
 * the broker runs it on every message of the send path. Pure code; any
 * thread. */
#define _GNU_SOURCE /* memrchr */
#include "protocol/props.h"

#include <string.h>

const char *apg_props_find(const char *props, size_t len, const char *name, size_t *vlen)
{
    return apg_props_findn(props, len, name, strlen(name), vlen);
}

const char *apg_props_findn(const char *props, size_t len, const char *name, size_t nlen,
                            size_t *vlen)
{
    /* The chunks from the last one back: the first that is a valid pair
     * named `name` is the last such pair of a forward walk. Such a chunk is
     * name \x01 value with a non-empty value, since name holds no \x01. */
    size_t end = len;
    if (nlen == 0 || memchr(name, APG_PROPS_NV_SEP, nlen) != NULL)
        return NULL;
    for (;;) {
        const char *sep = end ? memrchr(props, APG_PROPS_SEP, end) : NULL;
        size_t start = sep ? (size_t)(sep - props) + 1 : 0;
        if (end - start > nlen + 1 && props[start + nlen] == APG_PROPS_NV_SEP &&
            memcmp(props + start, name, nlen) == 0) {
            *vlen = end - start - nlen - 1;
            return props + start + nlen + 1;
        }
        if (sep == NULL)
            return NULL;
        end = start - 1;
    }
}

static bool clean(const char *s, size_t n)
{
    return n > 0 && memchr(s, APG_PROPS_NV_SEP, n) == NULL && memchr(s, APG_PROPS_SEP, n) == NULL;
}

bool apg_props_pair_ok(const char *name, size_t name_len, const char *val, size_t val_len)
{
    return clean(name, name_len) && clean(val, val_len);
}

apg_err_t apg_props_append(struct apg_buf *b, const char *name, const char *value)
{
    size_t nl = strlen(name), vl = strlen(value);
    if (apg_buf_reserve(b, apg_props_pair_size(nl, vl)))
        return APG_ENOMEM;
    char *end = apg_props_write((char *)b->b_data + b->b_len, name, nl, value, vl);
    b->b_len = (size_t)((uint8_t *)end - b->b_data);
    return APG_OK;
}

/* RocketMQ's own property names (its MessageConst.STRING_HASH_SET and the
 * names its brokers add): a client may not set them as user properties, and
 * a 5.x consumer never sees them among the user properties. */
static const char *const reserved_props[] = {
    "KEYS",
    "TAGS",
    "WAIT",
    "DELAY",
    "RETRY_TOPIC",
    "REAL_TOPIC",
    "REAL_QID",
    "TRAN_MSG",
    "PGROUP",
    "MIN_OFFSET",
    "MAX_OFFSET",
    "BUYER_ID",
    "ORIGIN_MESSAGE_ID",
    "TRANSFER_FLAG",
    "CORRECTION_FLAG",
    "MQ2_FLAG",
    "RECONSUME_TIME",
    "MSG_REGION",
    "TRACE_ON",
    "UNIQ_KEY",
    "EXTEND_UNIQ_INFO",
    "MAX_RECONSUME_TIMES",
    "CONSUME_START_TIME",
    "INNER_NUM",
    "INNER_BASE",
    "DUP_INFO",
    "CHECK_IMMUNITY_TIME_IN_SECONDS",
    "TRAN_PREPARED_QUEUE_OFFSET",
    "__transactionId__",
    "TRANSACTION_CHECK_TIMES",
    "INSTANCE_ID",
    "CORRELATION_ID",
    "REPLY_TO_CLIENT",
    "TTL",
    "ARRIVE_TIME",
    "PUSH_REPLY_TIME",
    "CLUSTER",
    "MSG_TYPE",
    "POP_CK",
    "POP_CK_OFFSET",
    "1ST_POP_TIME",
    "__SHARDINGKEY",
    "TRACE_CONTEXT",
    "TIMER_DELAY_SEC",
    "TIMER_DELAY_MS",
    "TIMER_DELIVER_MS",
    "TIMER_ENQUEUE_MS",
    "TIMER_DEQUEUE_MS",
    "TIMER_ROLL_TIMES",
    "TIMER_OUT_MS",
    "TIMER_DEL_UNIQKEY",
    "TIMER_DELAY_LEVEL",
    "__BORNHOST",
    "BORN_TIMESTAMP",
    "DLQ_ORIGIN_TOPIC",
    "DLQ_ORIGIN_MESSAGE_ID",
    "__CRC32#",
    "INNER_MULTI_DISPATCH",
    "INNER_MULTI_QUEUE_OFFSET",
};

bool apg_props_name_reserved(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(reserved_props) / sizeof(reserved_props[0]); i++)
        if (len && name[0] == reserved_props[i][0] && strlen(reserved_props[i]) == len &&
            memcmp(name, reserved_props[i], len) == 0)
            return true;
    return false;
}

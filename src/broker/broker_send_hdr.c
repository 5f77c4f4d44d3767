/* SEND_MESSAGE (long names) and SEND_MESSAGE_V2 / SEND_BATCH_MESSAGE
 * (short names a..n) request headers, docs/wire.md §5.1. Pure: reads the
 * decoded command's extFields only.
 *
 * This runs once per produced message, so it walks the extFields once and
 * files each known key into a slot (the last of duplicate keys wins, as in
 * apg_rcmd_ext_get) instead of looking up fourteen keys one by one; the
 * conversions and defaults are those of the per-key getters. */
#include <string.h>

#include "broker/broker_int.h"
#include "protocol/remoting.h"

enum {
    F_GROUP,
    F_TOPIC,
    F_DEFAULT_TOPIC,
    F_DEFAULT_QNUMS,
    F_QUEUE_ID,
    F_SYSFLAG,
    F_BORN_TS,
    F_FLAG,
    F_PROPS,
    F_RECONSUME,
    F_UNIT_MODE,
    F_MAX_RECONSUME,
    F_BATCH,
    F_N
};

/* Long names in slot order; the short name of slot i is 'a' + i. */
static const char *const long_names[F_N] = {
    "producerGroup", "topic",          "defaultTopic",  "defaultTopicQueueNums",
    "queueId",       "sysFlag",        "bornTimestamp", "flag",
    "properties",    "reconsumeTimes", "unitMode",      "maxReconsumeTimes",
    "batch",
};

static int slot_of(const char *k, bool short_names)
{
    if (short_names)
        return k[0] >= 'a' && k[0] < 'a' + F_N && k[1] == '\0' ? k[0] - 'a' : -1;
    for (int i = 0; i < F_N; i++)
        if (k[0] == long_names[i][0] && strcmp(k, long_names[i]) == 0)
            return i;
    return -1;
}

static const char *key_name(int f, bool s, char buf[2])
{
    if (!s)
        return long_names[f];
    buf[0] = (char)('a' + f);
    buf[1] = '\0';
    return buf;
}

static apg_err_t need_str(const char *const *v, int f, bool s, const char **out, char *err,
                          size_t errlen)
{
    char kb[2];
    *out = v[f];
    if (!*out)
        return apg_errf(APG_EINVAL, err, errlen, "the send request header lacks '%s' (%s)",
                        key_name(f, s, kb), long_names[f]);
    return APG_OK;
}

static apg_err_t need_i32(const char *const *v, int f, bool s, int32_t *out, char *err,
                          size_t errlen)
{
    char kb[2];
    if (!v[f])
        return apg_errf(APG_EINVAL, err, errlen, "the send request header lacks '%s' (%s)",
                        key_name(f, s, kb), long_names[f]);
    int64_t x;
    if (apg_rcmd_parse_i64(v[f], INT32_MIN, INT32_MAX, &x))
        return apg_errf(APG_EINVAL, err, errlen,
                        "the send request header field '%s' (%s) is not an integer: '%s'",
                        key_name(f, s, kb), long_names[f], v[f]);
    *out = (int32_t)x;
    return APG_OK;
}

/* Optional int32: absent or not a number gives dflt. */
static int32_t opt_i32(const char *v, int32_t dflt)
{
    int64_t x;
    return v && apg_rcmd_parse_i64(v, INT32_MIN, INT32_MAX, &x) == APG_OK ? (int32_t)x : dflt;
}

apg_err_t apg_send_hdr_parse(const struct apg_rcmd *c, bool s, struct apg_send_hdr *h, char *err,
                             size_t errlen)
{
    const char *v[F_N] = {0};
    for (uint32_t i = 0; i < c->n_ext; i++) {
        const char *k = c->ext[i].key;
        int f = k ? slot_of(k, s) : -1;
        if (f >= 0)
            v[f] = c->ext[i].val;
    }
    memset(h, 0, sizeof(*h));
    apg_err_t e;
    if ((e = need_str(v, F_GROUP, s, &h->sh_group, err, errlen)) ||
        (e = need_str(v, F_TOPIC, s, &h->sh_topic, err, errlen)))
        return e;
    h->sh_default_topic = v[F_DEFAULT_TOPIC] ? v[F_DEFAULT_TOPIC] : APG_DEFAULT_TOPIC;
    h->sh_default_qnums = opt_i32(v[F_DEFAULT_QNUMS], 4);
    if ((e = need_i32(v, F_QUEUE_ID, s, &h->sh_queue_id, err, errlen)))
        return e;
    h->sh_sysflag = opt_i32(v[F_SYSFLAG], 0);
    if (!v[F_BORN_TS] ||
        apg_rcmd_parse_i64(v[F_BORN_TS], INT64_MIN, INT64_MAX, &h->sh_born_ts) != APG_OK)
        h->sh_born_ts = 0;
    h->sh_flag = opt_i32(v[F_FLAG], 0);
    h->sh_props = v[F_PROPS] ? v[F_PROPS] : "";
    h->sh_reconsume_times = opt_i32(v[F_RECONSUME], 0);
    h->sh_unit_mode = v[F_UNIT_MODE] ? apg_rcmd_parse_bool(v[F_UNIT_MODE]) : false;
    h->sh_max_reconsume_times = opt_i32(v[F_MAX_RECONSUME], -1);
    h->sh_batch = v[F_BATCH] ? apg_rcmd_parse_bool(v[F_BATCH]) : false;
    return APG_OK;
}

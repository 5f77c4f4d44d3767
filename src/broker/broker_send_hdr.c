/* SEND_MESSAGE (long names) and SEND_MESSAGE_V2 / SEND_BATCH_MESSAGE
 * (short names a..n) request headers, wire doc §4.1-4.2. Pure: reads the
 * decoded command's extFields only. */
#include <string.h>

#include "broker/broker_int.h"
#include "protocol/remoting.h"

static apg_err_t need_str(const struct apg_rcmd *c, const char *k, const char *long_name,
                          const char **out, char *err, size_t errlen)
{
    *out = apg_rcmd_ext_get(c, k);
    if (!*out)
        return apg_errf(APG_EINVAL, err, errlen, "the send request header lacks '%s' (%s)", k,
                        long_name);
    return APG_OK;
}

static apg_err_t need_i32(const struct apg_rcmd *c, const char *k, const char *long_name,
                          int32_t *out, char *err, size_t errlen)
{
    apg_err_t e = apg_rcmd_ext_i32(c, k, out);
    if (e == APG_ENOTFOUND)
        return apg_errf(APG_EINVAL, err, errlen, "the send request header lacks '%s' (%s)", k,
                        long_name);
    if (e)
        return apg_errf(APG_EINVAL, err, errlen,
                        "the send request header field '%s' (%s) is not an integer: '%s'", k,
                        long_name, apg_rcmd_ext_get(c, k));
    return APG_OK;
}

apg_err_t apg_send_hdr_parse(const struct apg_rcmd *c, bool s, struct apg_send_hdr *h, char *err,
                             size_t errlen)
{
    memset(h, 0, sizeof(*h));
    apg_err_t e;
    if ((e = need_str(c, s ? "a" : "producerGroup", "producerGroup", &h->sh_group, err, errlen)) ||
        (e = need_str(c, s ? "b" : "topic", "topic", &h->sh_topic, err, errlen)))
        return e;
    h->sh_default_topic = apg_rcmd_ext_get(c, s ? "c" : "defaultTopic");
    if (!h->sh_default_topic)
        h->sh_default_topic = APG_DEFAULT_TOPIC;
    if (apg_rcmd_ext_i32(c, s ? "d" : "defaultTopicQueueNums", &h->sh_default_qnums))
        h->sh_default_qnums = 4;
    if ((e = need_i32(c, s ? "e" : "queueId", "queueId", &h->sh_queue_id, err, errlen)))
        return e;
    if (apg_rcmd_ext_i32(c, s ? "f" : "sysFlag", &h->sh_sysflag))
        h->sh_sysflag = 0;
    if (apg_rcmd_ext_i64(c, s ? "g" : "bornTimestamp", &h->sh_born_ts))
        h->sh_born_ts = 0;
    if (apg_rcmd_ext_i32(c, s ? "h" : "flag", &h->sh_flag))
        h->sh_flag = 0;
    h->sh_props = apg_rcmd_ext_get(c, s ? "i" : "properties");
    if (!h->sh_props)
        h->sh_props = "";
    if (apg_rcmd_ext_i32(c, s ? "j" : "reconsumeTimes", &h->sh_reconsume_times))
        h->sh_reconsume_times = 0;
    h->sh_unit_mode = apg_rcmd_ext_bool(c, s ? "k" : "unitMode", false);
    if (apg_rcmd_ext_i32(c, s ? "l" : "maxReconsumeTimes", &h->sh_max_reconsume_times))
        h->sh_max_reconsume_times = -1;
    h->sh_batch = apg_rcmd_ext_bool(c, s ? "m" : "batch", false);
    return APG_OK;
}

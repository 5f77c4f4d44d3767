/* CONSUMER_SEND_MSG_BACK (36): a consumer hands back a message it failed to
 * consume (docs/wire.md §7.2).
 *
 * The broker reads the original record at its commit-log offset and stores a
 * copy (body, flag, sysflag, properties, born timestamp and host kept;
 * reconsumeTimes + 1; RETRY_TOPIC = the original topic unless already set;
 * ORIGIN_MESSAGE_ID = the first offset msgId of the chain unless already set)
 * into %RETRY%<group>, a queue picked round-robin among the group's
 * retryQueueNums, or into %DLQ%<group> (apg_topics_ensure_dlq: one queue,
 * readable and writable) once reconsumeTimes reaches maxReconsumeTimes (the
 * header's value when present, else the group's retryMaxTimes) or when
 * delayLevel < 0.
 *
 * The retry copy waits before it reaches %RETRY%<group>: at the client's
 * delayLevel when it gave one (> 0), else at level 3 + reconsumeTimes (the
 * first retry 10 s, the second 30 s, ... with the default messageDelayLevel),
 * clamped to the last level. It is stored in SCHEDULE_TOPIC_XXXX with
 * DELAY, REAL_TOPIC and REAL_QID (src/broker/schedule), as RocketMQ does;
 * a copy for %DLQ% does not wait. Under SYNC_FLUSH the reply waits for the
 * disk like a send (RocketMQ sets WAIT=false here; we prefer not to
 * acknowledge a hand-back that could be lost).
 *
 * Runs on the connection's loop thread; the tables and the store are
 * thread-safe. */
#include <stdio.h>
#include <string.h>

#include "broker/broker_rt.h"
#include "broker/schedule/schedule.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/mem.h"
#include "protocol/message.h"

/* Copies props and adds name=value when name is absent. */
static apg_err_t props_with(struct apg_buf *out, const char *props, size_t len, const char *name,
                            const char *value)
{
    size_t vl;
    if (apg_props_find(props, len, name, &vl))
        return APG_OK;
    return apg_props_append(out, name, value);
}

void apg_broker_proc_send_back(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req)
{
    char remark[768];
    const char *group = apg_rcmd_ext_get(req, "group");
    int64_t offset;
    int32_t delay_level = 0, max_times;
    if (!group || apg_rcmd_ext_i64(req, "offset", &offset)) {
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR,
                          "CONSUMER_SEND_MSG_BACK needs the header fields offset and group");
        return;
    }
    if (apg_rcmd_ext_get(req, "delayLevel") && apg_rcmd_ext_i32(req, "delayLevel", &delay_level)) {
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR,
                          "CONSUMER_SEND_MSG_BACK: delayLevel is not an integer");
        return;
    }
    struct apg_group_cfg gc;
    if (!apg_broker_group_or_refuse(b, c, req, group, &gc))
        return;
    if (apg_broker_refuse_unwritable(b, c, req))
        return;
    if (gc.gc_retry_queues <= 0) {
        /* The group wants no retries: the message is dropped, as RocketMQ does. */
        apg_broker_reply(c, req, APG_RESP_SUCCESS, NULL);
        return;
    }
    if (apg_rcmd_ext_i32(req, "maxReconsumeTimes", &max_times))
        max_times = gc.gc_retry_max_times;

    struct apg_buf rec_buf = APG_BUF_INIT, props = APG_BUF_INIT, sched = APG_BUF_INIT;
    struct apg_msgrec rec;
    if (apg_store_read_at(b->br_store, offset, &rec_buf) != APG_OK ||
        apg_msgrec_decode(rec_buf.b_data, rec_buf.b_len, false, &rec, NULL) != APG_MSGREC_OK) {
        snprintf(remark, sizeof(remark),
                 "look message by offset failed: no message at commit log offset %lld",
                 (long long)offset);
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR, remark);
        goto out;
    }

    bool dlq = rec.mr_reconsume_times >= max_times || delay_level < 0;
    char topic[APG_NAME_CAP + 8];
    snprintf(topic, sizeof(topic), "%s%s", dlq ? APG_DLQ_PREFIX : APG_RETRY_PREFIX, group);
    if (dlq ? apg_topics_ensure_dlq(b->br_topics, topic)
            : apg_topics_ensure_retry(b->br_topics, group, gc.gc_retry_queues)) {
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR, "out of memory");
        goto out;
    }
    struct apg_topic_cfg tc;
    if (!apg_topics_get(b->br_topics, topic, &tc) || !(tc.tc_perm & APG_PERM_WRITE) ||
        tc.tc_write_queues <= 0) {
        snprintf(
            remark, sizeof(remark),
            "topic %s is not writable; update it with perm 6 (apogee admin updateTopicPerm -t %s "
            "-p 6 -c <cluster>; mqadmin takes the same options)",
            topic, topic);
        apg_broker_refuse(b, c, req, APG_RESP_NO_PERMISSION, remark);
        goto out;
    }
    int32_t qid = apg_broker_put_queue(b, &tc, dlq ? 0 : -1);

    /* Properties: the original's, plus RETRY_TOPIC and ORIGIN_MESSAGE_ID. */
    char orig_topic[APG_NAME_CAP], orig_id[64];
    snprintf(orig_topic, sizeof(orig_topic), "%.*s", (int)rec.mr_topic_len, rec.mr_topic);
    apg_msgid_encode(&rec.mr_store_host, rec.mr_phys_offset, orig_id, sizeof(orig_id));
    apg_err_t e = apg_buf_append(&props, rec.mr_props, rec.mr_props_len);
    if (!e && rec.mr_props_len && rec.mr_props[rec.mr_props_len - 1] != APG_PROPS_SEP)
        e = apg_buf_append(&props, "\x02", 1);
    if (!e)
        e = props_with(&props, rec.mr_props, rec.mr_props_len, "RETRY_TOPIC", orig_topic);
    if (!e)
        e = props_with(&props, rec.mr_props, rec.mr_props_len, "ORIGIN_MESSAGE_ID", orig_id);
    if (e || props.b_len > 32767) {
        apg_broker_refuse(b, c, req, APG_RESP_MESSAGE_ILLEGAL,
                          "the message's properties grew past 32767 bytes on the way back");
        goto out;
    }
    size_t vl, tl;
    const char *uq = apg_props_find((const char *)props.b_data, props.b_len, "UNIQ_KEY", &vl);
    char uniq[80] = "";
    if (uq)
        snprintf(uniq, sizeof(uniq), "%.*s", (int)vl, uq);
    const char *tags = apg_props_find((const char *)props.b_data, props.b_len, "TAGS", &tl);

    struct apg_msg_in m;
    memset(&m, 0, sizeof(m));
    m.mi_topic = topic;
    m.mi_topic_len = strlen(topic);
    m.mi_queue_id = qid;
    m.mi_flag = rec.mr_flag;
    m.mi_sysflag = rec.mr_sysflag & ~(APG_SYSFLAG_BORNHOST_V6 | APG_SYSFLAG_STOREHOST_V6);
    m.mi_born_ts = rec.mr_born_ts;
    m.mi_born_host = rec.mr_born_host;
    m.mi_reconsume_times = rec.mr_reconsume_times + 1;
    m.mi_body = rec.mr_body;
    m.mi_body_len = rec.mr_body_len;
    m.mi_props = (const char *)props.b_data;
    m.mi_props_len = props.b_len;
    m.mi_tags_code = tags && tl ? (int64_t)apg_java_hash(tags, tl) : 0;
    int level = delay_level > 0 ? delay_level : 3 + rec.mr_reconsume_times;
    int max_level = apg_schedule_max_level(b->br_schedule);
    if (!dlq && max_level > 0) {
        if (level > max_level)
            level = max_level;
        e = apg_schedule_props(&sched, m.mi_props, m.mi_props_len, level, topic, qid);
        if (e) {
            apg_broker_refuse(b, c, req, APG_RESP_MESSAGE_ILLEGAL,
                              "the message's properties grew past 32767 bytes on the way back");
            goto out;
        }
        m.mi_props = (const char *)sched.b_data;
        m.mi_props_len = sched.b_len;
        m.mi_topic = APG_SCHEDULE_TOPIC;
        m.mi_topic_len = APG_SCHEDULE_TOPIC_LEN;
        m.mi_queue_id = level - 1;
    }
    if (dlq)
        apg_log_info("broker", "group %s: message %s of %s failed %d time(s) (max %d); moved to %s",
                     group, orig_id, orig_topic, rec.mr_reconsume_times + 1, max_times, topic);
    apg_broker_put(b, &b->br_loops[apg_conn_loop_index(c)], c, req, &m, 1, qid, uniq,
                   b->br_sync_flush);
out:
    apg_buf_free(&sched);
    apg_buf_free(&props);
    apg_buf_free(&rec_buf);
}

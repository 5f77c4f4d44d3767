/* Store housekeeping an admin asks for: CLEAN_EXPIRED_CONSUMEQUEUE (306,
 * `mqadmin cleanExpiredCQ`), CLEAN_UNUSED_TOPIC (316, `mqadmin
 * cleanUnusedTopic`) and DELETE_EXPIRED_COMMITLOG (329, `mqadmin
 * deleteExpiredCommitLog`), docs/wire.md §11.10.
 *
 * DELETE_EXPIRED_COMMITLOG runs one retention pass now, whatever deleteWhen
 * says: commit-log segments older than fileReservedTime go (never the
 * current one nor anything not yet durable), then the consume-queue and
 * index entries below the new first offset. CLEAN_UNUSED_TOPIC removes the
 * consume queues of topics the store has but the topic table does not
 * (left by a topic deleted while the broker was down, or a topics.json
 * edited by hand), except internal topics (RMQ_SYS_*, rmq_sys_*,
 * SCHEDULE_TOPIC_XXXX) and LMQ queues, as RocketMQ spares its own.
 * CLEAN_EXPIRED_CONSUMEQUEUE has nothing to remove: every retention pass
 * already drops the consume-queue entries that point below the commit
 * log's first offset (apg_cq_clean), so it answers SUCCESS and says so in
 * the log. Each answers SUCCESS with no body, as RocketMQ does, and logs
 * one WARN line naming the peer and what was removed.
 *
 * Threads: any loop thread. The store calls take its locks for the moment
 * of each removal; a pass removes at most what expired, so the loop is held
 * for file unlinks only. */
#include <stdio.h>
#include <string.h>

#include "broker/broker_admin_stats.h"
#include "common/log.h"
#include "common/mem.h"

/* Topic names the store has and the topic table lacks, each ended by a
 * NUL, gathered by apg_store_foreach_queue (which may not call back into
 * the store, so deletion happens after). */
struct unused {
    struct apg_broker *u_b;
    struct apg_buf u_names;
    char u_last[APG_NAME_CAP];
    apg_err_t u_err;
};

static bool internal_topic(const char *t)
{
    return strncmp(t, "RMQ_SYS_", 8) == 0 || strncmp(t, "rmq_sys_", 8) == 0 ||
           strcmp(t, "SCHEDULE_TOPIC_XXXX") == 0 || strncmp(t, "%LMQ%", 5) == 0;
}

static void unused_one(void *ud, const char *topic, size_t topic_len, int32_t queue_id,
                       int64_t min_offset, int64_t max_offset)
{
    (void)queue_id, (void)min_offset, (void)max_offset;
    struct unused *u = ud;
    char name[APG_NAME_CAP];
    if (u->u_err || topic_len >= sizeof(name))
        return;
    memcpy(name, topic, topic_len);
    name[topic_len] = '\0';
    if (strcmp(name, u->u_last) == 0) /* the topic's other queues */
        return;
    snprintf(u->u_last, sizeof(u->u_last), "%s", name);
    struct apg_topic_cfg tc;
    if (!internal_topic(name) && !apg_topics_get(u->u_b->br_topics, name, &tc))
        u->u_err = apg_buf_append(&u->u_names, name, topic_len + 1);
}

static void clean_unused_topic(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req)
{
    struct unused u = {b, APG_BUF_INIT, "", APG_OK};
    apg_store_foreach_queue(b->br_store, unused_one, &u);
    int n = 0;
    for (size_t off = 0; !u.u_err && off < u.u_names.b_len;) {
        const char *t = (const char *)u.u_names.b_data + off;
        size_t len = strlen(t);
        off += len + 1;
        struct apg_topic_cfg tc;
        if (apg_topics_get(b->br_topics, t, &tc)) /* created since the scan */
            continue;
        if (apg_store_delete_topic(b->br_store, t, len) == APG_OK) {
            apg_log_info("broker", "CLEAN_UNUSED_TOPIC: consume queues of %s removed", t);
            n++;
        }
    }
    apg_buf_free(&u.u_names);
    if (u.u_err) {
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR, "out of memory");
        return;
    }
    apg_log_warn("broker", "CLEAN_UNUSED_TOPIC from %s: %d topic(s) not in the topic table removed",
                 apg_conn_peer(c), n);
    apg_broker_reply(c, req, APG_RESP_SUCCESS, NULL);
}

void apg_broker_proc_admin_store(struct apg_broker *b, struct apg_conn *c,
                                 const struct apg_rcmd *req)
{
    switch (req->code) {
    case APG_REQ_DELETE_EXPIRED_COMMITLOG: {
        int n = apg_store_clean_now(b->br_store);
        apg_log_warn("broker",
                     "DELETE_EXPIRED_COMMITLOG from %s: %d expired commit log segment(s) removed",
                     apg_conn_peer(c), n);
        apg_broker_reply(c, req, APG_RESP_SUCCESS, NULL);
        break;
    }
    case APG_REQ_CLEAN_UNUSED_TOPIC:
        clean_unused_topic(b, c, req);
        break;
    case APG_REQ_CLEAN_EXPIRED_CONSUMEQUEUE:
        apg_log_warn("broker",
                     "CLEAN_EXPIRED_CONSUMEQUEUE from %s: nothing to do, each retention pass "
                     "already drops consume-queue entries below the commit log's first offset",
                     apg_conn_peer(c));
        apg_broker_reply(c, req, APG_RESP_SUCCESS, NULL);
        break;
    default:
        apg_broker_refuse(b, c, req, APG_RESP_REQUEST_CODE_NOT_SUPPORTED,
                          "not a store housekeeping request");
    }
}

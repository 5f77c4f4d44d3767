/* Queue locks for orderly consumers: LOCK_BATCH_MQ and UNLOCK_BATCH_MQ.
 *
 * An orderly consumer may process a queue only while it holds that queue's
 * lock on the queue's broker, so that two members of one consumer group
 * never work on the same queue at once. The table maps (consumer group,
 * topic, broker name, queue id) to the client id that holds it, the
 * connection it last locked through and the time of its last lock or
 * renewal. A lock is a lease: it lapses rebalanceLockMaxLiveTime (60 s) after
 * its last renewal; clients renew every 20 s. LOCK_BATCH_MQ asks for a set of
 * queues and is answered with the subset the caller now holds (new, renewed,
 * or taken over from a lapsed holder); UNLOCK_BATCH_MQ releases the caller's
 * own locks and ignores others'. A holder also loses its locks at once when
 * it leaves the consumer table (UNREGISTER_CLIENT, its connection closing,
 * or expiry of a silent client: apg_locks_drop_client from
 * broker_client.c) and when the connection it locked through closes
 * (apg_locks_drop_conn), so a crashed consumer's queues pass to the others
 * within a rebalance instead of a full lease.
 *
 * The table lives in memory only: after a restart it is empty and the
 * clients take their queues again with their next renewal.
 *
 * Threads: requests arrive on every loop thread, connection closes on the
 * closing loop, expiry on the service thread; one mutex (lk_lock) guards the
 * table. It is a leaf: nothing is called with it held, and the client table
 * may call in while holding its own lock (order: cl_lock, then lk_lock).
 * The stored connection pointer is an identity only (never dereferenced,
 * no reference): entries are dropped by on_close before the connection is
 * freed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_rt.h"
#include "common/log.h"
#include "common/mem.h"

struct apg_lock_ent {
    char le_client[APG_NAME_CAP];
    const void *le_conn; /* identity of the connection it was last locked through */
    int64_t le_renewed;  /* monotonic ms of the last lock or renewal */
};

struct apg_locks {
    pthread_mutex_t lk_lock;
    int64_t lk_max_live_ms;
    struct apg_smap lk_map; /* "group\1topic\1broker\1qid" -> struct apg_lock_ent* */
};

struct apg_locks *apg_locks_new(int64_t max_live_ms)
{
    struct apg_locks *lk = apg_calloc(1, sizeof(*lk));
    if (!lk)
        return NULL;
    pthread_mutex_init(&lk->lk_lock, NULL);
    lk->lk_max_live_ms = max_live_ms;
    apg_smap_init(&lk->lk_map);
    return lk;
}

void apg_locks_free(struct apg_locks *lk)
{
    if (!lk)
        return;
    apg_smap_clear_free(&lk->lk_map, apg_free);
    pthread_mutex_destroy(&lk->lk_lock);
    apg_free(lk);
}

/* The key's group part ends at the first \1. */
static void lock_key(char *out, size_t outlen, const char *group, const struct apg_lock_mq *mq)
{
    snprintf(out, outlen, "%s\1%s\1%s\1%d", group, mq->lm_topic, mq->lm_broker, mq->lm_queue_id);
}

static bool key_in_group(const char *key, const char *group)
{
    size_t gl = strlen(group);
    return strncmp(key, group, gl) == 0 && key[gl] == '\1';
}

static bool lapsed(const struct apg_locks *lk, const struct apg_lock_ent *le, int64_t now_ms)
{
    return now_ms - le->le_renewed > lk->lk_max_live_ms;
}

bool apg_locks_try(struct apg_locks *lk, const char *group, const struct apg_lock_mq *mq,
                   const char *client, const void *conn, int64_t now_ms)
{
    char key[3 * APG_NAME_CAP + 16];
    lock_key(key, sizeof(key), group, mq);
    bool ok = false;
    pthread_mutex_lock(&lk->lk_lock);
    struct apg_lock_ent *le = apg_smap_get(&lk->lk_map, key);
    if (!le) {
        le = apg_calloc(1, sizeof(*le));
        if (le && apg_smap_put(&lk->lk_map, key, le, NULL) != APG_OK) {
            apg_free(le);
            le = NULL;
        }
        if (le)
            snprintf(le->le_client, sizeof(le->le_client), "%s", client);
    }
    if (le && (strcmp(le->le_client, client) == 0 || lapsed(lk, le, now_ms))) {
        if (strcmp(le->le_client, client) != 0)
            apg_log_info("broker", "group %s: lock of %s:%s:%d lapsed from %s, now held by %s",
                         group, mq->lm_topic, mq->lm_broker, mq->lm_queue_id, le->le_client,
                         client);
        snprintf(le->le_client, sizeof(le->le_client), "%s", client);
        le->le_conn = conn;
        le->le_renewed = now_ms;
        ok = true;
    }
    pthread_mutex_unlock(&lk->lk_lock);
    return ok;
}

bool apg_locks_unlock(struct apg_locks *lk, const char *group, const struct apg_lock_mq *mq,
                      const char *client)
{
    char key[3 * APG_NAME_CAP + 16];
    lock_key(key, sizeof(key), group, mq);
    bool ok = false;
    pthread_mutex_lock(&lk->lk_lock);
    struct apg_lock_ent *le = apg_smap_get(&lk->lk_map, key);
    if (le && strcmp(le->le_client, client) == 0) {
        apg_free(apg_smap_del(&lk->lk_map, key));
        ok = true;
    }
    pthread_mutex_unlock(&lk->lk_lock);
    return ok;
}

bool apg_locks_holder(struct apg_locks *lk, const char *group, const struct apg_lock_mq *mq,
                      int64_t now_ms, char *out, size_t outlen)
{
    char key[3 * APG_NAME_CAP + 16];
    lock_key(key, sizeof(key), group, mq);
    pthread_mutex_lock(&lk->lk_lock);
    struct apg_lock_ent *le = apg_smap_get(&lk->lk_map, key);
    bool held = le && !lapsed(lk, le, now_ms);
    if (held)
        snprintf(out, outlen, "%s", le->le_client);
    pthread_mutex_unlock(&lk->lk_lock);
    return held;
}

/* Removes every entry matching; any argument NULL (or 0) matches all. The
 * matching keys are collected first (the map may not change while it is
 * walked), in rounds of up to 64. */
static int drop_where(struct apg_locks *lk, const char *group, const char *client, const void *conn,
                      int64_t now_ms)
{
    int n = 0;
    pthread_mutex_lock(&lk->lk_lock);
    for (;;) {
        char *keys[64];
        size_t nk = 0, it;
        for (struct apg_smap_ent *e = apg_smap_first(&lk->lk_map, &it); e && nk < 64;
             e = apg_smap_next(&lk->lk_map, e, &it)) {
            struct apg_lock_ent *le = e->se_val;
            if ((group && !key_in_group(e->se_key, group)) ||
                (client && strcmp(le->le_client, client) != 0) || (conn && le->le_conn != conn) ||
                (now_ms && !lapsed(lk, le, now_ms)))
                continue;
            keys[nk++] = e->se_key;
        }
        for (size_t i = 0; i < nk; i++) {
            /* the delete frees the entry's own key: look it up by a copy */
            char key[3 * APG_NAME_CAP + 16];
            snprintf(key, sizeof(key), "%s", keys[i]);
            apg_free(apg_smap_del(&lk->lk_map, key));
        }
        n += (int)nk;
        if (nk < 64)
            break;
    }
    pthread_mutex_unlock(&lk->lk_lock);
    return n;
}

int apg_locks_drop_client(struct apg_locks *lk, const char *group, const char *client)
{
    return drop_where(lk, group, client, NULL, 0);
}

int apg_locks_drop_conn(struct apg_locks *lk, const void *conn)
{
    return drop_where(lk, NULL, NULL, conn, 0);
}

int apg_locks_expire(struct apg_locks *lk, int64_t now_ms)
{
    return drop_where(lk, NULL, NULL, NULL, now_ms);
}

size_t apg_locks_count(struct apg_locks *lk)
{
    pthread_mutex_lock(&lk->lk_lock);
    size_t n = lk->lk_map.sm_len;
    pthread_mutex_unlock(&lk->lk_lock);
    return n;
}

/* ---- LOCK_BATCH_MQ / UNLOCK_BATCH_MQ ---------------------------------- */

static bool mq_from_json(const json_t *j, struct apg_lock_mq *mq)
{
    const char *topic = apg_json_get_str(j, "topic", NULL);
    const char *broker = apg_json_get_str(j, "brokerName", NULL);
    json_t *qid = json_object_get(j, "queueId");
    if (!topic || !broker || !json_is_integer(qid) || strlen(topic) >= sizeof(mq->lm_topic) ||
        strlen(broker) >= sizeof(mq->lm_broker))
        return false;
    snprintf(mq->lm_topic, sizeof(mq->lm_topic), "%s", topic);
    snprintf(mq->lm_broker, sizeof(mq->lm_broker), "%s", broker);
    mq->lm_queue_id = (int32_t)json_integer_value(qid);
    return true;
}

static apg_err_t mq_to_json(struct apg_buf *b, const struct apg_lock_mq *mq)
{
    apg_err_t e = apg_buf_append_str(b, "{\"brokerName\":");
    if (!e)
        e = apg_json_put_str(b, mq->lm_broker);
    if (!e)
        e = apg_buf_printf(b, ",\"queueId\":%d,\"topic\":", mq->lm_queue_id);
    if (!e)
        e = apg_json_put_str(b, mq->lm_topic);
    if (!e)
        e = apg_buf_append_str(b, "}");
    return e;
}

void apg_broker_proc_lock(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req)
{
    bool lock = req->code == APG_REQ_LOCK_BATCH_MQ;
    const char *what = lock ? "LOCK_BATCH_MQ" : "UNLOCK_BATCH_MQ";
    char err[256], remark[512];
    json_t *body = req->body && req->body_len
                       ? apg_json_parse((const char *)req->body, req->body_len, err, sizeof(err))
                       : NULL;
    const char *group = body ? apg_json_get_str(body, "consumerGroup", NULL) : NULL;
    const char *client = body ? apg_json_get_str(body, "clientId", NULL) : NULL;
    json_t *set = body ? json_object_get(body, "mqSet") : NULL;
    if (!group || !group[0] || !client || !client[0] || !json_is_array(set)) {
        snprintf(remark, sizeof(remark),
                 "%s body must be JSON with consumerGroup, clientId and mqSet (an array of "
                 "{topic, brokerName, queueId})",
                 what);
        json_decref(body);
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR, remark);
        return;
    }
    int64_t now = apg_mono_ms();
    struct apg_buf out = APG_BUF_INIT;
    apg_err_t e = lock ? apg_buf_append_str(&out, "{\"lockOKMQSet\":[") : APG_OK;
    int nok = 0, nbad = 0;
    size_t i;
    json_t *jm;
    json_array_foreach(set, i, jm)
    {
        struct apg_lock_mq mq;
        if (!mq_from_json(jm, &mq)) {
            nbad++;
            continue;
        }
        if (!lock) {
            apg_locks_unlock(b->br_locks, group, &mq, client);
            continue;
        }
        if (!apg_locks_try(b->br_locks, group, &mq, client, c, now))
            continue;
        if (!e && nok++)
            e = apg_buf_append_str(&out, ",");
        if (!e)
            e = mq_to_json(&out, &mq);
    }
    if (lock && !e)
        e = apg_buf_append_str(&out, "]}");
    if (nbad)
        apg_log_warn("broker",
                     "%s from %s (group %s): %d queue(s) without topic, brokerName "
                     "or queueId ignored",
                     what, client, group, nbad);
    json_decref(body);
    if (e)
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR, "out of memory");
    else if (!apg_rcmd_is_oneway(req))
        apg_conn_reply(c, req, APG_RESP_SUCCESS, NULL, lock ? out.b_data : NULL,
                       lock ? (uint32_t)out.b_len : 0);
    apg_buf_free(&out);
}

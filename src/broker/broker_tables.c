/* The table writer: coalesced persistence of the config tables, and
 * replies that wait for the disk.
 *
 * Each table (topic_config.c, sub_group.c) calls one hook after every
 * change; the hook (set in broker.c) wakes this writer to persist the table
 * file and, for topics, asks the service thread to re-register with the
 * NameServers (the route data changed). So no processor decides when to register or persist: a
 * new topic from an admin request, an auto-created topic on the send path, a %RETRY% topic from a
 * heartbeat and a %DLQ% topic from a send-back all take the same way.
 *
 * Persistence is coalesced and off the loop threads: a change only bumps
 * the table's change count and notes a journal record; the writer thread
 * appends every record noted since its last write to the table's journal
 * with one write and one fdatasync (btable_journal.c), so many changes made
 * while a write is under way share the next one, a change costs its own
 * bytes rather than a rewrite of the whole table, and the loops never wait
 * for the disk. The whole file (apg_file_write_atomic) is written when the
 * journal is full, at start and at a clean stop. The writer is its own thread, not a job of the
 * service thread, because registration there is a network call of up to 3 s per NameServer that a
 * parked admin reply should not wait behind.
 *
 * Durability of admin changes: as RocketMQ persists topics.json before it
 * answers UPDATE_AND_CREATE_TOPIC, an admin change is answered only once the
 * file holds it. The processor parks its reply here (apg_broker_reply_
 * when_durable) with the table's change count; the writer answers every
 * parked reply its write covered, so concurrent admin requests share one
 * fsync. Changes the broker makes by itself (auto-created topics and
 * groups) do not wait: they are written by the next coalesced write, which
 * the change has already kicked.
 *
 * Threads: the hook runs on whichever thread changed the table; parked
 * replies are added on loop threads and answered from the writer thread
 * through apg_conn_post; the list, the durable counts and the writer's
 * wake-up are under br_wait_lock. */
#include <stdio.h>
#include <time.h>

#include "broker/broker_rt.h"
#include "common/log.h"
#include "common/mem.h"

enum { TBL_TOPICS, TBL_GROUPS };

/* A reply waiting for the table files. */
struct apg_durable_wait {
    struct apg_durable_wait *dw_next;
    struct apg_conn *dw_conn; /* referenced */
    struct apg_rcmd dw_req;   /* opaque, serialize, flag of the request */
    uint64_t dw_seq[2];       /* change counts it waits for, by TBL_* */
    apg_err_t dw_rc;
    char dw_err[256];
};

void apg_broker_tables_kick(struct apg_broker *b)
{
    pthread_mutex_lock(&b->br_wait_lock);
    b->br_tw_kicked = true;
    pthread_cond_signal(&b->br_tw_cond);
    pthread_mutex_unlock(&b->br_wait_lock);
}

static void *writer_main(void *arg)
{
    struct apg_broker *b = arg;
    pthread_mutex_lock(&b->br_wait_lock);
    while (!b->br_tw_stopping) {
        if (!b->br_tw_kicked) {
            pthread_cond_wait(&b->br_tw_cond, &b->br_wait_lock);
            continue;
        }
        b->br_tw_kicked = false;
        pthread_mutex_unlock(&b->br_wait_lock);
        apg_broker_tables_persist(b, false);
        pthread_mutex_lock(&b->br_wait_lock);
    }
    pthread_mutex_unlock(&b->br_wait_lock);
    return NULL;
}

apg_err_t apg_broker_tables_start(struct apg_broker *b, char *err, size_t errlen)
{
    if (pthread_create(&b->br_tw, NULL, writer_main, b) != 0)
        return apg_errf(APG_EIO, err, errlen, "cannot start the broker's table writer thread");
    b->br_tw_started = true;
    return APG_OK;
}

static void wait_free(struct apg_durable_wait *w)
{
    apg_conn_unref(w->dw_conn);
    apg_free(w);
}

/* Loop thread of the connection. */
static void wait_answer(struct apg_conn *c, void *arg)
{
    struct apg_durable_wait *w = arg;
    if (!apg_conn_is_closed(c)) {
        if (w->dw_rc == APG_OK) {
            apg_broker_reply(c, &w->dw_req, APG_RESP_SUCCESS, NULL);
        } else {
            char remark[400];
            snprintf(remark, sizeof(remark),
                     "the change is in memory but could not be written to disk: %s; the "
                     "broker retries the write, check the disk",
                     w->dw_err);
            apg_broker_reply(c, &w->dw_req, APG_RESP_SYSTEM_ERROR, remark);
        }
    }
    wait_free(w);
}

static bool covered(const struct apg_broker *b, const struct apg_durable_wait *w)
{
    return w->dw_seq[TBL_TOPICS] <= b->br_durable[TBL_TOPICS] &&
           w->dw_seq[TBL_GROUPS] <= b->br_durable[TBL_GROUPS];
}

void apg_broker_reply_when_durable(struct apg_broker *b, struct apg_conn *c,
                                   const struct apg_rcmd *req, uint64_t topics_seq,
                                   uint64_t groups_seq)
{
    struct apg_durable_wait *w = apg_calloc(1, sizeof(*w));
    if (!w) {
        apg_broker_reply(c, req, APG_RESP_SYSTEM_ERROR, "out of memory");
        return;
    }
    w->dw_req.opaque = req->opaque;
    w->dw_req.serialize = req->serialize;
    w->dw_req.flag = req->flag;
    w->dw_seq[TBL_TOPICS] = topics_seq;
    w->dw_seq[TBL_GROUPS] = groups_seq;
    apg_conn_ref(c);
    w->dw_conn = c;
    pthread_mutex_lock(&b->br_wait_lock);
    bool now = covered(b, w);
    if (!now) {
        w->dw_next = b->br_waits;
        b->br_waits = w;
        /* The change kicked the writer before this reply was parked; if that
         * write failed (full disk) nothing would answer the reply until the
         * periodic retry, later than a client waits. One more pass answers it. */
        b->br_tw_kicked = true;
        pthread_cond_signal(&b->br_tw_cond);
    }
    pthread_mutex_unlock(&b->br_wait_lock);
    if (now)
        wait_answer(c, w);
}

/* Answers (with rc/err) every parked reply that the files now cover, or
 * all of them when rc is a failure of the table `failed`. */
static void answer(struct apg_broker *b, int failed, apg_err_t rc, const char *err)
{
    struct apg_durable_wait *ready = NULL;
    pthread_mutex_lock(&b->br_wait_lock);
    for (struct apg_durable_wait **pp = &b->br_waits; *pp;) {
        struct apg_durable_wait *w = *pp;
        bool fail = rc != APG_OK && w->dw_seq[failed] > b->br_durable[failed];
        if (fail || covered(b, w)) {
            *pp = w->dw_next;
            w->dw_rc = fail ? rc : APG_OK;
            if (fail)
                snprintf(w->dw_err, sizeof(w->dw_err), "%s", err);
            w->dw_next = ready;
            ready = w;
        } else {
            pp = &w->dw_next;
        }
    }
    pthread_mutex_unlock(&b->br_wait_lock);
    while (ready) {
        struct apg_durable_wait *w = ready;
        ready = w->dw_next;
        if (apg_conn_post(w->dw_conn, wait_answer, w) != APG_OK)
            wait_free(w);
    }
}

/* At most one ERROR line per table per period while writes keep failing
 * (a full disk fails every periodic retry); the line counts the ones left out. */
#define TW_FAIL_LOG_PERIOD_MS 60000

static void note_failure(struct apg_broker *b, int t, const char *what, const char *err)
{
    int64_t quiet;
    if (!apg_log_limit_hit(&b->br_tw_failed[t], apg_mono_ms(), TW_FAIL_LOG_PERIOD_MS, &quiet))
        return;
    char more[96] = "";
    if (quiet > 0)
        snprintf(more, sizeof(more), " (%lld more failure(s) since the last line)",
                 (long long)quiet);
    apg_log_error("broker", "persisting %s failed: %s; retried periodically%s", what, err, more);
}

void apg_broker_tables_persist(struct apg_broker *b, bool compact)
{
    char err[512];
    uint64_t upto;
    apg_err_t e = apg_topics_persist(b->br_topics, compact, &upto, err, sizeof(err));
    if (e)
        note_failure(b, TBL_TOPICS, "topics", err);
    pthread_mutex_lock(&b->br_wait_lock);
    b->br_durable[TBL_TOPICS] = upto;
    pthread_mutex_unlock(&b->br_wait_lock);
    if (e)
        answer(b, TBL_TOPICS, e, err);
    e = apg_groups_persist(b->br_groups, compact, &upto, err, sizeof(err));
    if (e)
        note_failure(b, TBL_GROUPS, "subscription groups", err);
    pthread_mutex_lock(&b->br_wait_lock);
    b->br_durable[TBL_GROUPS] = upto;
    pthread_mutex_unlock(&b->br_wait_lock);
    answer(b, TBL_GROUPS, e, err);
}

void apg_broker_tables_stop(struct apg_broker *b)
{
    if (!b->br_tw_started)
        return;
    pthread_mutex_lock(&b->br_wait_lock);
    b->br_tw_stopping = true;
    pthread_cond_signal(&b->br_tw_cond);
    pthread_mutex_unlock(&b->br_wait_lock);
    pthread_join(b->br_tw, NULL);
    b->br_tw_started = false;
    /* Answers the replies still waiting while the loops can send them. */
    apg_broker_tables_persist(b, false);
}

void apg_broker_tables_free(struct apg_broker *b)
{
    pthread_mutex_lock(&b->br_wait_lock);
    struct apg_durable_wait *w = b->br_waits;
    b->br_waits = NULL;
    pthread_mutex_unlock(&b->br_wait_lock);
    while (w) {
        struct apg_durable_wait *n = w->dw_next;
        wait_free(w);
        w = n;
    }
}

bool apg_broker_tables_wait(struct apg_broker *b, uint64_t topics_seq, uint64_t groups_seq,
                            int64_t timeout_ms)
{
    struct apg_durable_wait w = {.dw_seq = {topics_seq, groups_seq}};
    int64_t until = apg_mono_ms() + timeout_ms;
    apg_broker_tables_kick(b);
    for (;;) {
        pthread_mutex_lock(&b->br_wait_lock);
        bool done = covered(b, &w);
        pthread_mutex_unlock(&b->br_wait_lock);
        if (done)
            return true;
        if (apg_mono_ms() >= until)
            return false;
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
}

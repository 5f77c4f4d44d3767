/* Delay levels: the rewrite into SCHEDULE_TOPIC_XXXX and the delivery
 * thread that moves each message to its real topic once it is due.
 *
 * Design. A delayed message is an ordinary record of SCHEDULE_TOPIC_XXXX,
 * queue level - 1, stored through the broker's write service; its
 * consume-queue entry holds its deliver time (store timestamp + the level's
 * delay, written by the store's dispatcher). Within one queue every record
 * waits the same delay, so records fall due in queue order: the delivery
 * thread keeps, per level, the next queue offset to deliver and the time its
 * head falls due, sleeps until the earliest head, reads the due records,
 * and stores copies in (REAL_TOPIC, REAL_QID) with one apg_store_put per
 * batch (apg_broker_put_internal). The copy keeps body, flag, sysflag,
 * born time and host, reconsume count and the property string unchanged
 * (UNIQ_KEY, KEYS, TAGS, REAL_TOPIC, REAL_QID and DELAY itself: RocketMQ
 * serialises the properties before it clears DELAY from its map, so its
 * delivered record still carries DELAY), with the tag hash recomputed. The
 * due time is taken from the record (store timestamp + the delay of the
 * queue's level), so a rebuilt consume queue or a changed table cannot make
 * a message early.
 *
 * Why a thread of its own and not a row of the broker's service table: the
 * service thread runs REGISTER_BROKER calls that wait on NameServers for
 * seconds, and a due message must go out within milliseconds; a delivery
 * batch under SYNC_FLUSH also waits for its fsync. The thread runs its own
 * cron table (src/common/cron.c) for the one periodic job it has, persisting
 * delayOffset.json, and sleeps until min(next head, next job, 1 s).
 *
 * Wake-ups: the thread only needs waking when a level it saw empty gets a
 * record (a later record of a non-empty level is due after the head it
 * already waits for). sc_idle[level] is set by the thread before it looks at
 * an empty queue and cleared by the store's arrive hook, which signals only
 * when it cleared it: one atomic exchange per delayed put otherwise.
 *
 * Guarantees. Never early: a record is copied only when the wall clock has
 * reached its store time + delay. Never lost: the level's offset moves past
 * a record only after its copy is stored (under SYNC_FLUSH, durable); the
 * file is written every flushDelayOffsetInterval with offsets whose copies
 * the store has flushed (a snapshot is written only once the flushed
 * position passed the copies it covers) and at a clean stop. After a crash
 * the copies made since the last write are made again (at-least-once; the
 * duplicates keep their UNIQ_KEY).
 *
 * Arbitrary-time timers (TIMER_DELIVER_MS) are a separate store
 * (src/broker/timer) that uses this file's rewrite (apg_schedule_props_with);
 * both copy a held record to its real queue with apg_broker_put_real_copy.
 *
 * Threads: struct apg_schedule's sc_off, sc_due, scratch buffers and cron
 * table belong to the delivery thread; sc_idle and sc_delivered are atomic;
 * the thread itself is a common/worker (kicked by apg_schedule_arrive). */
#include "broker/schedule/schedule.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_rt.h"
#include "common/cron.h"
#include "common/file.h"
#include "common/hash.h"
#include "common/json.h"
#include "common/mem.h"
#include "common/worker.h"
#include "protocol/props.h"

#define SUB "schedule"
#define BATCH 64
#define BATCH_BYTES (4u << 20)
#define PASS_MAX 4096 /* records per level per pass, so levels take turns */
#define MAX_SLEEP_MS 1000
#define RETRY_MS 1000 /* after a failed put */
#define NO_HEAD INT64_MAX

struct apg_schedule {
    struct apg_broker *sc_b;
    struct apg_store *sc_st;
    int sc_n;
    int64_t sc_delay_ms[APG_DELAY_LEVELS_MAX];
    int64_t sc_off[APG_DELAY_LEVELS_MAX];          /* next queue offset to deliver */
    atomic_llong sc_pub_off[APG_DELAY_LEVELS_MAX]; /* sc_off for other threads */
    int64_t sc_due[APG_DELAY_LEVELS_MAX]; /* deliver time of that record; NO_HEAD: none seen */
    atomic_bool sc_idle[APG_DELAY_LEVELS_MAX];
    atomic_llong sc_delivered;
    int64_t sc_copied_end; /* commit-log end of the last copy stored */
    /* The snapshot waiting for the flush to pass pd_end before it is written. */
    int64_t sc_pend_off[APG_DELAY_LEVELS_MAX];
    int64_t sc_pend_end;
    bool sc_pend;
    int64_t sc_written_off[APG_DELAY_LEVELS_MAX]; /* what the file holds */
    char *sc_path;
    int64_t sc_flush_ms;
    struct apg_buf sc_recs;
    struct apg_msg_in sc_msgs[BATCH];
    struct apg_put_result sc_res[BATCH];
    struct apg_log_limit sc_fail_log;
    struct apg_cron_job sc_jobs[1];
    struct apg_worker sc_worker;
};

int apg_schedule_level(const struct apg_schedule *sc, const char *delay, size_t delay_len,
                       int32_t sysflag)
{
    int32_t tx = sysflag & APG_SYSFLAG_TX_MASK;
    if (!sc || !delay || delay_len == 0 || tx == APG_SYSFLAG_TX_PREPARED ||
        tx == APG_SYSFLAG_TX_ROLLBACK)
        return 0;
    int64_t v = 0;
    for (size_t i = 0; i < delay_len; i++) {
        if (delay[i] < '0' || delay[i] > '9')
            return 0;
        if (v <= sc->sc_n)
            v = v * 10 + (delay[i] - '0');
    }
    return v <= 0 ? 0 : v > sc->sc_n ? sc->sc_n : (int)v;
}

int apg_schedule_max_level(const struct apg_schedule *sc)
{
    return sc ? sc->sc_n : 0;
}

apg_err_t apg_schedule_props_with(struct apg_buf *out, const char *props, size_t len,
                                  const char *name, const char *value, const char *real_topic,
                                  int32_t real_qid)
{
    size_t start = out->b_len, pos = 0, nl = strlen(name);
    struct apg_prop_kv kv;
    apg_err_t e;
    while (apg_props_next(props, len, &pos, &kv)) {
        bool drop = (kv.pk_name_len == nl && memcmp(kv.pk_name, name, nl) == 0) ||
                    (kv.pk_name_len == 10 && memcmp(kv.pk_name, "REAL_TOPIC", 10) == 0) ||
                    (kv.pk_name_len == 8 && memcmp(kv.pk_name, "REAL_QID", 8) == 0);
        if (drop)
            continue;
        if (apg_buf_reserve(out, apg_props_pair_size(kv.pk_name_len, kv.pk_val_len)))
            return APG_ENOMEM;
        char *p = (char *)out->b_data + out->b_len;
        out->b_len +=
            (size_t)(apg_props_write(p, kv.pk_name, kv.pk_name_len, kv.pk_val, kv.pk_val_len) - p);
    }
    char num[16];
    e = apg_props_append(out, name, value);
    if (!e)
        e = apg_props_append(out, "REAL_TOPIC", real_topic);
    snprintf(num, sizeof(num), "%d", (int)real_qid);
    if (!e)
        e = apg_props_append(out, "REAL_QID", num);
    if (!e && out->b_len - start > 32767)
        e = APG_ETOOBIG;
    return e;
}

apg_err_t apg_schedule_props(struct apg_buf *out, const char *props, size_t len, int level,
                             const char *real_topic, int32_t real_qid)
{
    char num[16];
    snprintf(num, sizeof(num), "%d", level);
    return apg_schedule_props_with(out, props, len, "DELAY", num, real_topic, real_qid);
}

void apg_schedule_arrive(struct apg_schedule *sc, int32_t queue_id)
{
    if (!sc || queue_id < 0 || queue_id >= sc->sc_n)
        return;
    if (!atomic_exchange(&sc->sc_idle[queue_id], false))
        return;
    apg_worker_kick(&sc->sc_worker, 1);
}

int64_t apg_schedule_offset(const struct apg_schedule *sc, int level)
{
    if (!sc || level < 1 || level > sc->sc_n)
        return -1;
    return atomic_load_explicit(&sc->sc_pub_off[level - 1], memory_order_relaxed);
}

int64_t apg_schedule_delivered(const struct apg_schedule *sc)
{
    return sc ? atomic_load(&sc->sc_delivered) : 0;
}

/* ---- delayOffset.json ---------------------------------------------------- */

static void offsets_load(struct apg_schedule *sc)
{
    json_t *root = NULL;
    char err[512];
    apg_err_t e = apg_json_read_file(sc->sc_path, &root, err, sizeof(err));
    if (e == APG_ENOTFOUND)
        return;
    if (e) {
        apg_log_warn(SUB, "%s: %s; delayed messages are delivered from the start of each level",
                     sc->sc_path, err);
        return;
    }
    json_t *tab = json_object_get(root, "offsetTable");
    const char *k;
    json_t *v;
    json_object_foreach(tab, k, v)
    {
        int level = atoi(k);
        int64_t off = apg_json_i64(v, -1);
        if (level >= 1 && level <= sc->sc_n && off >= 0)
            sc->sc_off[level - 1] = off;
    }
    json_decref(root);
    memcpy(sc->sc_written_off, sc->sc_off, sizeof(sc->sc_off));
}

static void offsets_write(struct apg_schedule *sc, const int64_t *off)
{
    if (memcmp(off, sc->sc_written_off, (size_t)sc->sc_n * sizeof(*off)) == 0)
        return;
    struct apg_buf b = APG_BUF_INIT;
    apg_err_t e = apg_buf_append_str(&b, "{\"offsetTable\":{");
    for (int i = 0; !e && i < sc->sc_n; i++)
        e = apg_buf_printf(&b, "%s\"%d\":%lld", i ? "," : "", i + 1, (long long)off[i]);
    if (!e)
        e = apg_buf_append_str(&b, "}}");
    char err[512] = "out of memory";
    if (!e)
        e = apg_file_write_atomic(sc->sc_path, b.b_data, b.b_len, err, sizeof(err));
    if (e)
        apg_log_error(SUB, "persisting %s failed: %s", sc->sc_path, err);
    else
        memcpy(sc->sc_written_off, off, (size_t)sc->sc_n * sizeof(*off));
    apg_buf_free(&b);
}

void apg_schedule_adopt(struct apg_schedule *sc, const int64_t *off, int n)
{
    if (!sc)
        return;
    for (int i = 0; i < n && i < sc->sc_n; i++) {
        if (off[i] < 0)
            continue;
        sc->sc_off[i] = off[i];
        atomic_store_explicit(&sc->sc_pub_off[i], off[i], memory_order_relaxed);
    }
    offsets_write(sc, sc->sc_off);
}

/* Cron job: writes the newest offsets whose copies are flushed. */
static void job_persist(void *ud, int64_t now_ms)
{
    (void)now_ms;
    struct apg_schedule *sc = ud;
    struct apg_store_stats ss;
    apg_store_stats(sc->sc_st, &ss);
    if (ss.ss_flushed_phys_offset >= sc->sc_copied_end) {
        offsets_write(sc, sc->sc_off);
        sc->sc_pend = false;
        return;
    }
    if (sc->sc_pend && ss.ss_flushed_phys_offset >= sc->sc_pend_end)
        offsets_write(sc, sc->sc_pend_off);
    memcpy(sc->sc_pend_off, sc->sc_off, sizeof(sc->sc_off));
    sc->sc_pend_end = sc->sc_copied_end;
    sc->sc_pend = true;
}

/* ---- delivery ------------------------------------------------------------ */

/* Stores the k copies gathered for level lv and moves its offset to next.
 * False when the store refused them (the level is retried later). */
static bool deliver_batch(struct apg_schedule *sc, int lv, int k, int64_t next, int64_t now)
{
    if (k > 0) {
        char err[512] = "";
        apg_err_t e =
            apg_broker_put_internal(sc->sc_b, sc->sc_msgs, k, sc->sc_res, err, sizeof(err));
        if (e) {
            int64_t quiet;
            if (apg_log_limit_hit(&sc->sc_fail_log, now, 60000, &quiet))
                apg_log_error(SUB,
                              "level %d: storing %d due message(s) in their topics failed: %s; "
                              "retrying every %d ms (%lld more failures since the last line)",
                              lv + 1, k, err[0] ? err : apg_strerror(e), RETRY_MS,
                              (long long)quiet);
            sc->sc_due[lv] = now + RETRY_MS;
            return false;
        }
        const struct apg_put_result *r = &sc->sc_res[k - 1];
        sc->sc_copied_end = r->pr_phys_offset + r->pr_msg_size;
        atomic_fetch_add(&sc->sc_delivered, k);
    }
    sc->sc_off[lv] = next;
    atomic_store_explicit(&sc->sc_pub_off[lv], next, memory_order_relaxed);
    return true;
}

/* Copies every due record of level lv (up to PASS_MAX) and notes when the
 * next one falls due. */
static void deliver_level(struct apg_schedule *sc, int lv, int64_t now)
{
    atomic_store(&sc->sc_idle[lv], true);
    int done = 0;
    while (done < PASS_MAX) {
        struct apg_get_result gr;
        apg_buf_reset(&sc->sc_recs);
        if (apg_store_get(sc->sc_st, APG_SCHEDULE_TOPIC, APG_SCHEDULE_TOPIC_LEN, lv, sc->sc_off[lv],
                          BATCH, BATCH_BYTES, NULL, NULL, &sc->sc_recs, &gr) != APG_OK) {
            sc->sc_due[lv] = now + RETRY_MS;
            atomic_store(&sc->sc_idle[lv], false);
            return;
        }
        if (gr.gr_status != APG_GET_FOUND) {
            bool moved = gr.gr_status == APG_GET_OFFSET_TOO_SMALL ||
                         gr.gr_status == APG_GET_OFFSET_OVERFLOW_BADLY ||
                         gr.gr_status == APG_GET_OFFSET_FOUND_NULL;
            if (moved && gr.gr_next_begin_offset != sc->sc_off[lv]) {
                apg_log_warn(SUB,
                             "level %d: offset %lld is outside the queue [%lld, %lld); "
                             "continuing at %lld",
                             lv + 1, (long long)sc->sc_off[lv], (long long)gr.gr_min_offset,
                             (long long)gr.gr_max_offset, (long long)gr.gr_next_begin_offset);
                sc->sc_off[lv] = gr.gr_next_begin_offset;
                continue;
            }
            sc->sc_due[lv] = NO_HEAD; /* empty: an arrival wakes us */
            return;
        }
        int k = 0;
        int64_t next = sc->sc_off[lv];
        size_t pos = 0;
        const uint8_t *p = sc->sc_recs.b_data;
        for (int i = 0; i < gr.gr_count && pos < sc->sc_recs.b_len; i++) {
            struct apg_msgrec rec;
            if (apg_msgrec_decode(p + pos, sc->sc_recs.b_len - pos, false, &rec, NULL) !=
                APG_MSGREC_OK)
                break;
            pos += rec.mr_total_size;
            int64_t due = rec.mr_store_ts + sc->sc_delay_ms[lv];
            if (due > now) {
                if (deliver_batch(sc, lv, k, next, now)) {
                    sc->sc_due[lv] = due;
                    atomic_store(&sc->sc_idle[lv], false);
                }
                return;
            }
            if (apg_broker_put_real_copy(&rec, &sc->sc_msgs[k]))
                k++;
            else
                apg_log_warn(SUB,
                             "level %d: the message at queue offset %lld has no valid "
                             "REAL_TOPIC/REAL_QID; skipped",
                             lv + 1, (long long)rec.mr_queue_offset);
            next = rec.mr_queue_offset + 1;
        }
        if (!deliver_batch(sc, lv, k, next, now)) {
            atomic_store(&sc->sc_idle[lv], false);
            return;
        }
        done += gr.gr_count;
        if (next == gr.gr_first_queue_offset) {
            /* Nothing decoded (cannot happen with a valid store): look again later
             * instead of spinning. */
            sc->sc_due[lv] = now + RETRY_MS;
            atomic_store(&sc->sc_idle[lv], false);
            return;
        }
    }
    sc->sc_due[lv] = now; /* more may be due: next pass */
    atomic_store(&sc->sc_idle[lv], false);
}

/* Delivery thread: every level that is due or was woken, then the table
 * of periodic jobs. */
static int64_t schedule_step(void *arg, unsigned kicks)
{
    (void)kicks;
    struct apg_schedule *sc = arg;
    int64_t now = apg_wall_ms();
    for (int lv = 0; lv < sc->sc_n; lv++) {
        bool woken = sc->sc_due[lv] == NO_HEAD && !atomic_load(&sc->sc_idle[lv]);
        if (woken || sc->sc_due[lv] <= now)
            deliver_level(sc, lv, now);
    }
    now = apg_wall_ms();
    int64_t wait = apg_cron_run(sc->sc_jobs, 1, sc, now);
    for (int lv = 0; lv < sc->sc_n; lv++)
        if (sc->sc_due[lv] != NO_HEAD && sc->sc_due[lv] - now < wait)
            wait = sc->sc_due[lv] - now;
    return wait > MAX_SLEEP_MS ? MAX_SLEEP_MS : wait;
}

apg_err_t apg_schedule_open(struct apg_broker *b, struct apg_schedule **out, char *err,
                            size_t errlen)
{
    *out = NULL;
    struct apg_schedule *sc = apg_calloc(1, sizeof(*sc));
    if (!sc)
        return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    sc->sc_b = b;
    sc->sc_st = b->br_store;
    sc->sc_n = apg_delay_levels_parse(apg_cfg_str(b->br_cfg, APG_CFG_messageDelayLevel),
                                      sc->sc_delay_ms, APG_DELAY_LEVELS_MAX, err, errlen);
    if (sc->sc_n < 0) {
        apg_free(sc);
        return APG_EINVAL;
    }
    sc->sc_flush_ms = apg_cfg_int(b->br_cfg, APG_CFG_flushDelayOffsetInterval);
    for (int i = 0; i < sc->sc_n; i++)
        sc->sc_due[i] = 0; /* look at every level once */
    sc->sc_path = apg_path_join(b->br_root, "config/delayOffset.json");
    if (!sc->sc_path) {
        apg_free(sc);
        return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    }
    offsets_load(sc);
    for (int i = 0; i < sc->sc_n; i++)
        atomic_init(&sc->sc_pub_off[i], sc->sc_off[i]);
    sc->sc_jobs[0] = (struct apg_cron_job){.cj_name = "persist delayOffset.json",
                                           .cj_period_ms = sc->sc_flush_ms,
                                           .cj_first_ms = sc->sc_flush_ms,
                                           .cj_fn = job_persist};
    apg_worker_init(&sc->sc_worker, schedule_step, sc);
    *out = sc;
    return APG_OK;
}

apg_err_t apg_schedule_start(struct apg_schedule *sc, char *err, size_t errlen)
{
    apg_cron_start(sc->sc_jobs, 1, apg_wall_ms());
    return apg_worker_start(&sc->sc_worker, "delayed-message", err, errlen);
}

void apg_schedule_stop(struct apg_schedule *sc)
{
    if (!sc)
        return;
    if (apg_worker_stop(&sc->sc_worker)) {
        /* The store flushes every copy when it closes, right after this. */
        offsets_write(sc, sc->sc_off);
    }
    apg_worker_destroy(&sc->sc_worker);
    apg_buf_free(&sc->sc_recs);
    apg_free(sc->sc_path);
    apg_free(sc);
}

/* The dispatch hook: one place that turns a commit-log record into the data
 * derived from it (consume-queue entries today; an index by key, the timer
 * store, filter data and replication later).
 *
 * Design. Dispatchers are a fixed table of struct apg_dispatcher, consulted in
 * order. The put path (commitlog.c) calls apg_dispatch with the records it
 * has just written (one batch, under st_append_mtx), then publishes the write
 * position and calls apg_dispatch_publish; recovery (recover.c) calls
 * apg_dispatch for each record it re-reads from the commit log, with
 * `recovering` set, after apg_dispatch_truncate (or apg_dispatch_reset for a
 * rebuild from scratch). The flush thread calls apg_dispatch_flush before each
 * checkpoint and store teardown calls apg_dispatch_close. A new dispatcher is
 * one more entry in the table, its callbacks in its own file.
 *
 * Threads: record and publish run in the appending thread (under the append
 * lock) or in apg_store_open's thread; flush in the flush thread or close.
 * Invariant: the put path allocates nothing here; a dispatcher that needs
 * memory per record must get it without blocking the append lock for long. */
#define _GNU_SOURCE
#include "store/store_int.h"

#include <string.h>

#include "common/hash.h"
#include "protocol/props.h"

/* The table. Its entries are spelled out here (not pointers to structs
 * defined elsewhere) so the compiler sees the callbacks and calls them
 * directly on the put path. */
static const struct apg_dispatcher dispatchers[] = {
    {
        .dp_name = "consumequeue",
        .dp_records = apg_cq_dispatch_records,
        .dp_publish = apg_cq_dispatch_publish,
        .dp_flush = apg_cq_dispatch_flush,
        .dp_truncate = apg_cq_dispatch_truncate,
        .dp_reset = apg_cq_dispatch_reset,
        .dp_close = apg_cq_dispatch_close,
    },
    {
        /* Never fails a put; kept after the consume queue. */
        .dp_name = "index",
        .dp_records = apg_index_dispatch_records,
        .dp_flush = apg_index_dispatch_flush,
        .dp_truncate = apg_index_dispatch_truncate,
        .dp_reset = apg_index_dispatch_reset,
        .dp_close = apg_index_dispatch_close,
    },
};
#define NDISPATCHERS (sizeof(dispatchers) / sizeof(dispatchers[0]))

apg_err_t apg_dispatch(struct apg_store *st, const struct apg_dispatch_rec *recs, int n,
                       bool recovering, int *done, char *err, size_t errlen)
{
    apg_err_t first = APG_OK;
    *done = n;
    for (size_t i = 0; i < NDISPATCHERS; i++) {
        int k = n;
        apg_err_t rc = dispatchers[i].dp_records(st, recs, n, recovering, &k, err, errlen);
        if (k < *done)
            *done = k;
        if (rc == APG_ECORRUPT && recovering) {
            /* Derived data disagrees with the log: the others still run. */
            first = first ? first : rc;
            continue;
        }
        if (rc) {
            /* The records before *done stay and are published: the
             * dispatchers after this one derive their data for them too. */
            for (size_t j = i + 1; j<NDISPATCHERS && * done> 0; j++) {
                int kk = *done;
                char e2[128];
                if (dispatchers[j].dp_records(st, recs, *done, recovering, &kk, e2, sizeof(e2)) &&
                    kk < *done)
                    *done = kk;
            }
            return rc;
        }
    }
    return first;
}

void apg_dispatch_publish(struct apg_store *st, const struct apg_dispatch_rec *recs, int n)
{
    for (size_t i = 0; i < NDISPATCHERS; i++)
        if (dispatchers[i].dp_publish)
            dispatchers[i].dp_publish(st, recs, n);
}

int apg_dispatch_flush(struct apg_store *st)
{
    int rc = 0;
    for (size_t i = 0; i < NDISPATCHERS; i++)
        if (dispatchers[i].dp_flush && dispatchers[i].dp_flush(st) != 0)
            rc = -1;
    return rc;
}

void apg_dispatch_truncate(struct apg_store *st, int64_t from)
{
    for (size_t i = 0; i < NDISPATCHERS; i++)
        if (dispatchers[i].dp_truncate)
            dispatchers[i].dp_truncate(st, from);
}

void apg_dispatch_reset(struct apg_store *st)
{
    for (size_t i = 0; i < NDISPATCHERS; i++)
        if (dispatchers[i].dp_reset)
            dispatchers[i].dp_reset(st);
}

void apg_dispatch_close(struct apg_store *st)
{
    for (size_t i = 0; i < NDISPATCHERS; i++)
        if (dispatchers[i].dp_close)
            dispatchers[i].dp_close(st);
}

int64_t apg_dispatch_tags_code(const char *props, size_t len)
{
    /* The Java String.hashCode of the TAGS value, 0 without one. The property
     * string is read by the shared codec, so a repeated or malformed pair
     * means here what it meant to the broker that computed the code on the
     * put path (the last pair of a name wins). */
    size_t vlen = 0;
    const char *v = apg_props_find(props, len, "TAGS", &vlen);
    return v ? apg_java_hash(v, vlen) : 0;
}

int64_t apg_dispatch_sched_tags(const struct apg_store *st, const char *topic, size_t topic_len,
                                const char *props, size_t len, int64_t store_ts, int64_t tags)
{
    /* Records of the schedule and timer topics: the consume queue holds
     * when each one is due, so the delivery scans read times, not tags (and
     * the timer store parks a record without reading it). */
    if (topic_len == APG_TIMER_TOPIC_LEN &&
        memcmp(topic, APG_TIMER_TOPIC, APG_TIMER_TOPIC_LEN) == 0) {
        size_t tl = 0;
        const char *t = apg_props_find(props, len, "TIMER_OUT_MS", &tl);
        int64_t due = 0;
        for (size_t i = 0; t && i < tl && i < 18 && t[i] >= '0' && t[i] <= '9'; i++)
            due = due * 10 + (t[i] - '0');
        return due;
    }
    int n = st->st_opts.so_delay_levels;
    if (n <= 0 || topic_len != APG_SCHEDULE_TOPIC_LEN ||
        memcmp(topic, APG_SCHEDULE_TOPIC, APG_SCHEDULE_TOPIC_LEN) != 0)
        return tags;
    size_t vlen = 0;
    const char *v = apg_props_find(props, len, "DELAY", &vlen);
    int64_t level = 0;
    for (size_t i = 0; v && i < vlen && v[i] >= '0' && v[i] <= '9' && level <= n; i++)
        level = level * 10 + (v[i] - '0');
    if (level <= 0)
        return tags;
    if (level > n)
        level = n;
    return store_ts + st->st_opts.so_delay_ms[level - 1];
}

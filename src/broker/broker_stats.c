/* Runtime statistics and GET_BROKER_RUNTIME_INFO (28, docs/wire.md §10).
 *
 * Counters: messages stored come from the store (ss_put_count, every record
 * appended since open, retry and DLQ copies included); messages delivered are
 * counted by the pull processor (br_get_total, records returned to
 * consumers). The service thread calls apg_broker_stats_tick about once a
 * second: it appends a (time, put, get) sample to a ring covering ten minutes,
 * from which the 10 s / 60 s / 600 s rates of putTps and getTransferredTps
 * are computed, and at local midnight it shifts the "morning" totals
 * (msgPutTotalTodayMorning / YesterdayMorning; before the first midnight
 * since start they are the totals at start, i.e. 0).
 *
 * Refusals: putMessageFailedTimes counts sends the write service or the
 * store refused (as RocketMQ's store does); refused<Cause> counts every
 * refusal per cause (broker_reply.c), refusedTotal their sum;
 * refusedSystemBusy<Measure> split refusedSystemBusy by the fast-failure
 * measure that refused (broker_put.c). pageCacheLockTimeMills is how long the
 * put now in the store has held its append lock.
 *
 * The reply is a KVTable JSON body {"table":{key:value,...}}, all values
 * strings, which is what `mqadmin brokerStatus` and `clusterList` read. The
 * out-rate is there under both spellings: getTransferredTps (5.x) and
 * getTransferedTps (4.x, whose clusterList fails without it); the thread
 * pool queue keys 4.x and 5.x clusterList print are 0 (see below) and
 * earliestMessageTimeStamp is the store time of the oldest record.
 *
 * Threads: the ring and the morning totals are written by the service thread
 * and read by loop threads under br_stat_lock. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#include "apogee_version.h"
#include "broker/broker_admin_stats.h"
#include "acl/acl.h"
#include "broker/broker_rt.h"
#include "ha/ha.h"
#include "broker/schedule/schedule.h"
#include "broker/txn/txn.h"
#include "common/mem.h"
#include "protocol/message.h"

apg_err_t apg_broker_stats_init(struct apg_broker *b)
{
    b->br_samples = apg_calloc(APG_BSTAT_RING, sizeof(*b->br_samples));
    if (!b->br_samples)
        return APG_ENOMEM;
    pthread_mutex_init(&b->br_stat_lock, NULL);
    b->br_boot_ms = apg_wall_ms();
    b->br_day = -1;
    return APG_OK;
}

void apg_broker_stats_free(struct apg_broker *b)
{
    if (!b->br_samples)
        return;
    pthread_mutex_destroy(&b->br_stat_lock);
    apg_free(b->br_samples);
    b->br_samples = NULL;
}

/* Local calendar day number of ms (days since the epoch, local time). */
static int64_t local_day(int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    localtime_r(&t, &tm);
    return (int64_t)(t + tm.tm_gmtoff) / 86400;
}

static int64_t put_total(struct apg_broker *b)
{
    struct apg_store_stats ss;
    apg_store_stats(b->br_store, &ss);
    return (int64_t)ss.ss_put_count;
}

void apg_broker_stats_tick(struct apg_broker *b, int64_t now_ms)
{
    int64_t put = put_total(b);
    int64_t get = atomic_load_explicit(&b->br_get_total, memory_order_relaxed);
    int64_t day = local_day(now_ms);
    pthread_mutex_lock(&b->br_stat_lock);
    if (b->br_day >= 0 && day != b->br_day) {
        b->br_put_morning[1] = b->br_put_morning[0];
        b->br_get_morning[1] = b->br_get_morning[0];
        b->br_put_morning[0] = put;
        b->br_get_morning[0] = get;
    }
    b->br_day = day;
    struct apg_bstat_sample *s = &b->br_samples[b->br_sample_pos];
    s->bs_ms = now_ms;
    s->bs_put = put;
    s->bs_get = get;
    b->br_sample_pos = (b->br_sample_pos + 1) % APG_BSTAT_RING;
    if (b->br_nsamples < APG_BSTAT_RING)
        b->br_nsamples++;
    pthread_mutex_unlock(&b->br_stat_lock);
    apg_broker_put_stats_tick(b, now_ms);
}

/* Rate per second over about `secs` seconds, from the newest sample back to
 * the oldest one at most secs old. Caller holds br_stat_lock. */
static void rate(const struct apg_broker *b, int secs, double *put, double *get)
{
    *put = *get = 0;
    if (b->br_nsamples < 2)
        return;
    int newest = (b->br_sample_pos + APG_BSTAT_RING - 1) % APG_BSTAT_RING;
    const struct apg_bstat_sample *n = &b->br_samples[newest], *o = n;
    for (int k = 1; k < b->br_nsamples; k++) {
        const struct apg_bstat_sample *c =
            &b->br_samples[(newest + APG_BSTAT_RING - k) % APG_BSTAT_RING];
        if (n->bs_ms - c->bs_ms > (int64_t)secs * 1000 + 500)
            break;
        o = c;
    }
    if (n->bs_ms <= o->bs_ms)
        return;
    double dt = (double)(n->bs_ms - o->bs_ms) / 1000.0;
    *put = (double)(n->bs_put - o->bs_put) / dt;
    *get = (double)(n->bs_get - o->bs_get) / dt;
}

/* STORETIMESTAMP of the oldest record still in the commit log, -1 when the
 * log is empty (RocketMQ's earliestMessageTimeStamp). */
int64_t apg_broker_stats_earliest_time(struct apg_broker *b, const struct apg_store_stats *ss)
{
    if (ss->ss_max_phys_offset <= ss->ss_min_phys_offset)
        return -1;
    struct apg_buf rec = APG_BUF_INIT;
    struct apg_msgrec r;
    int64_t ts = -1;
    if (apg_store_read_at(b->br_store, ss->ss_min_phys_offset, &rec) == APG_OK &&
        apg_msgrec_decode(rec.b_data, rec.b_len, false, &r, NULL) == APG_MSGREC_OK)
        ts = r.mr_store_ts;
    apg_buf_free(&rec);
    return ts;
}

static void kv(struct apg_buf *out, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void kv(struct apg_buf *out, const char *key, const char *fmt, ...)
{
    char v[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v, sizeof(v), fmt, ap);
    va_end(ap);
    if (out->b_len && out->b_data[out->b_len - 1] != '{')
        apg_buf_append(out, ",", 1);
    apg_json_put_str(out, key);
    apg_buf_append(out, ":", 1);
    apg_json_put_str(out, v);
}

static void human_bytes(uint64_t n, char *out, size_t len)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    snprintf(out, len, "%.2f %s", v, units[u]);
}

void apg_broker_proc_runtime_info(struct apg_broker *b, struct apg_conn *c,
                                  const struct apg_rcmd *req)
{
    if (apg_rcmd_is_oneway(req))
        return;
    struct apg_buf out = APG_BUF_INIT;
    apg_broker_runtime_info_body(b, &out);
    apg_conn_reply(c, req, APG_RESP_SUCCESS, NULL, out.b_data, (uint32_t)out.b_len);
    apg_buf_free(&out);
}

/* Replication: a master's connected slaves and how far each has
 * acknowledged; a slave's master and its connection. */
static void ha_info(struct apg_broker *b, struct apg_buf *o, int64_t max)
{
    kv(o, "brokerRole", "%s", apg_cfg_str(b->br_cfg, APG_CFG_brokerRole));
    if (b->br_slave) {
        struct apg_ha_client_stats cs;
        apg_ha_client_stats(b->br_ha_client, &cs);
        char master[128];
        apg_broker_ha_master_addr(b, master, sizeof(master));
        kv(o, "masterAddr", "%s", master);
        kv(o, "haMasterAddress", "%s", cs.cs_master);
        kv(o, "haConnected", "%s", cs.cs_connected ? "true" : "false");
        kv(o, "haReceivedBytes", "%llu", (unsigned long long)cs.cs_bytes);
        kv(o, "haClosedConnections", "%llu", (unsigned long long)cs.cs_closes);
        kv(o, "haLastFrameTimestamp", "%lld", (long long)cs.cs_last_frame_ms);
        kv(o, "haLastError", "%s", cs.cs_last_error);
        return;
    }
    struct apg_ha_slave_info si[16];
    int n = apg_ha_master_slaves(b->br_ha_master, si, 16);
    int64_t best = -1;
    struct apg_buf list = APG_BUF_INIT;
    for (int i = 0; i < n && i < 16; i++) {
        if (si[i].hs_ack_offset > best)
            best = si[i].hs_ack_offset;
        apg_buf_printf(&list, "%s%s@%lld", i ? "," : "", si[i].hs_addr,
                       (long long)si[i].hs_ack_offset);
    }
    kv(o, "haConnections", "%d", n);
    kv(o, "haSlaves", "%.*s", (int)list.b_len, list.b_len ? (const char *)list.b_data : "");
    kv(o, "haSlaveAckOffset", "%lld", (long long)best);
    kv(o, "haSlaveFallBehindBytes", "%lld", (long long)(best >= 0 ? max - best : -1));
    kv(o, "haSlaveInSync", "%s",
       best >= 0 && max - best <= apg_cfg_int(b->br_cfg, APG_CFG_haMaxGapNotInSync) ? "true"
                                                                                    : "false");
    apg_buf_free(&list);
}

void apg_broker_runtime_info_body(struct apg_broker *b, struct apg_buf *o)
{
    struct apg_store_stats ss;
    apg_store_stats(b->br_store, &ss);
    int64_t now = apg_wall_ms();
    int64_t get = atomic_load_explicit(&b->br_get_total, memory_order_relaxed);
    double p10, g10, p60, g60, p600, g600;
    int64_t put_m[2], get_m[2];
    pthread_mutex_lock(&b->br_stat_lock);
    rate(b, 10, &p10, &g10);
    rate(b, 60, &p60, &g60);
    rate(b, 600, &p600, &g600);
    memcpy(put_m, b->br_put_morning, sizeof(put_m));
    memcpy(get_m, b->br_get_morning, sizeof(get_m));
    pthread_mutex_unlock(&b->br_stat_lock);

    int64_t up = (now - b->br_boot_ms) / 1000;
    apg_buf_append_str(o, "{\"table\":{");
    kv(o, "brokerVersionDesc", "%s", APOGEE_RMQ_VERSION_DESC);
    kv(o, "brokerVersion", "%d", APOGEE_RMQ_VERSION_ORDINAL);
    kv(o, "apogeeVersion", "%s", APOGEE_VERSION);
    kv(o, "brokerActive", "true");
    kv(o, "bootTimestamp", "%lld", (long long)b->br_boot_ms);
    kv(o, "runtime", "[ %lld days, %lld hours, %lld minutes, %lld seconds ]",
       (long long)(up / 86400), (long long)(up % 86400 / 3600), (long long)(up % 3600 / 60),
       (long long)(up % 60));
    kv(o, "msgPutTotalYesterdayMorning", "%lld", (long long)put_m[1]);
    kv(o, "msgPutTotalTodayMorning", "%lld", (long long)put_m[0]);
    kv(o, "msgPutTotalTodayNow", "%llu", (unsigned long long)ss.ss_put_count);
    kv(o, "msgGetTotalYesterdayMorning", "%lld", (long long)get_m[1]);
    kv(o, "msgGetTotalTodayMorning", "%lld", (long long)get_m[0]);
    kv(o, "msgGetTotalTodayNow", "%lld", (long long)get);
    kv(o, "putTps", "%.1f %.1f %.1f", p10, p60, p600);
    kv(o, "getTransferredTps", "%.1f %.1f %.1f", g10, g60, g600);
    /* RocketMQ 4.x spells it so; its clusterList reads only this one. */
    kv(o, "getTransferedTps", "%.1f %.1f %.1f", g10, g60, g600);
    kv(o, "putMessageTimesTotal", "%llu", (unsigned long long)ss.ss_put_count);
    kv(o, "putMessageSizeTotal", "%llu", (unsigned long long)ss.ss_put_bytes);
    kv(o, "putMessageAverageSize", "%.1f",
       ss.ss_put_count ? (double)ss.ss_put_bytes / (double)ss.ss_put_count : 0.0);
    kv(o, "commitLogMinOffset", "%lld", (long long)ss.ss_min_phys_offset);
    kv(o, "commitLogMaxOffset", "%lld", (long long)ss.ss_max_phys_offset);
    kv(o, "remainHowManyDataToFlush", "%lld",
       (long long)(ss.ss_max_phys_offset - ss.ss_flushed_phys_offset));
    kv(o, "dispatchBehindBytes", "0");
    ha_info(b, o, ss.ss_max_phys_offset);
    kv(o, "pageCacheLockTimeMills", "%lld", (long long)apg_store_put_stall_ms(b->br_store));
    kv(o, "commitLogDiskRatio", "%.4f", ss.ss_disk_used_ratio / 100.0);
    kv(o, "consumeQueueDiskRatio", "%.4f", ss.ss_disk_used_ratio / 100.0);
    kv(o, "sendThreadPoolQueueSize", "%ld", (long)atomic_load(&b->br_sync_pending));
    kv(o, "sendThreadPoolQueueCapacity", "%ld", b->br_sync_pending_max);
    /* No pull, query or end-transaction thread pools: those requests are
     * served on the loop thread that read them, so nothing queues for a
     * worker and no queue head waits (a send's wait before its loop got to
     * it is bounded by waitTimeMillsInSendQueue and counted in
     * refusedSystemBusyQueueTime). */
    static const char *const idle_keys[] = {
        "sendThreadPoolQueueHeadWaitTimeMills",  "pullThreadPoolQueueSize",
        "pullThreadPoolQueueHeadWaitTimeMills",  "queryThreadPoolQueueSize",
        "queryThreadPoolQueueHeadWaitTimeMills", "EndTransactionQueueSize",
    };
    for (size_t i = 0; i < sizeof(idle_keys) / sizeof(idle_keys[0]); i++)
        kv(o, idle_keys[i], "0");
    kv(o, "earliestMessageTimeStamp", "%lld", (long long)apg_broker_stats_earliest_time(b, &ss));
    kv(o, "startAcceptSendRequestTimeStamp", "0");
    kv(o, "putMessageFailedTimes", "%lld",
       (long long)atomic_load_explicit(&b->br_put_failed, memory_order_relaxed));
    long long refused = 0;
    for (int r = 0; r < APG_REFUSAL_N; r++) {
        long long n = atomic_load_explicit(&b->br_refused[r].ll_count, memory_order_relaxed);
        refused += n;
        kv(o, apg_broker_refusal_key(r), "%lld", n);
    }
    kv(o, "refusedTotal", "%lld", refused);
    /* The parts of refusedSystemBusy, by the measure that refused. */
    static const char *const busy_keys[APG_BUSY_N] = {
        [APG_BUSY_QUEUE_TIME] = "refusedSystemBusyQueueTime",
        [APG_BUSY_PAGE_CACHE] = "refusedSystemBusyPageCache",
        [APG_BUSY_SYNC_BACKLOG] = "refusedSystemBusySyncBacklog",
    };
    for (int i = 0; i < APG_BUSY_N; i++)
        kv(o, busy_keys[i], "%lld",
           (long long)atomic_load_explicit(&b->br_busy[i], memory_order_relaxed));
    struct apg_acl_counts ac; /* all 0 with aclEnable=false */
    apg_acl_counts(b->br_acl, &ac);
    for (int i = APG_ACL_OK + 1; i < APG_ACL_R_N; i++)
        kv(o, apg_acl_refusal_key((enum apg_acl_refusal)i), "%lld", ac.ac_refused[i]);
    kv(o, "aclReloads", "%lld", ac.ac_reloads);
    kv(o, "aclReloadFailures", "%lld", ac.ac_reload_failures);
    uint64_t closed[APG_NET_REFUSAL_N];
    apg_net_server_refusals(b->br_srv, closed);
    for (int i = 0; i < APG_NET_REFUSAL_N; i++)
        kv(o, apg_net_refusal_key((enum apg_net_refusal)i), "%llu", (unsigned long long)closed[i]);
    /* RocketMQ's delay-level progress: "<next offset to deliver>,<queue max>". */
    for (int lv = 1; lv <= apg_schedule_max_level(b->br_schedule); lv++) {
        char key[48];
        snprintf(key, sizeof(key), "scheduleMessageOffset_%d", lv);
        kv(o, key, "%lld,%lld", (long long)apg_schedule_offset(b->br_schedule, lv),
           (long long)apg_store_max_offset(b->br_store, APG_SCHEDULE_TOPIC, APG_SCHEDULE_TOPIC_LEN,
                                           lv - 1));
    }
    struct apg_txn_stats ts;
    apg_txn_stats(b->br_txn, &ts);
    kv(o, "transactionCommitted", "%lld", (long long)ts.ts_committed);
    kv(o, "transactionRolledBack", "%lld", (long long)ts.ts_rolled_back);
    kv(o, "transactionChecks", "%lld", (long long)ts.ts_checks);
    kv(o, "transactionDiscarded", "%lld", (long long)ts.ts_discarded);
    kv(o, "transactionHalfOffset", "%lld,%lld", (long long)ts.ts_half_offset,
       (long long)apg_store_max_offset(b->br_store, APG_TXN_HALF_TOPIC,
                                       sizeof(APG_TXN_HALF_TOPIC) - 1, 0));
    kv(o, "storeWritable", "%s", ss.ss_writable ? "true" : "false");
    kv(o, "storeLastError", "%s", ss.ss_last_error);
    const char *cl = apg_cfg_str(b->br_cfg, APG_CFG_storePathCommitLog);
    char cldir[1100];
    snprintf(cldir, sizeof(cldir), "%s", cl && cl[0] ? cl : b->br_root);
    struct statvfs vfs;
    if (statvfs(cldir, &vfs) == 0) {
        char tot[32], fr[32];
        human_bytes((uint64_t)vfs.f_blocks * vfs.f_frsize, tot, sizeof(tot));
        human_bytes((uint64_t)vfs.f_bavail * vfs.f_frsize, fr, sizeof(fr));
        kv(o, "commitLogDirCapacity", "Total : %s, Free : %s.", tot, fr);
    }
    apg_buf_append_str(o, "}}");
}

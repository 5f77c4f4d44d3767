/* `apogee bench produce|consume|e2e`: load generator on top of the C client.
 *
 * produce: --threads threads share one producer (one I/O thread, as Java
 * shares one client instance) and send --size byte bodies, sync (each thread
 * waits for every answer), async (each thread keeps sending; --inflight
 * bounds the window) or oneway; --batch N sends batches of N (sync). Runs
 * for --duration seconds or until --messages were sent.
 *
 * consume: drains the topic from each queue's first offset with --threads
 * pulling threads (queues dealt round robin), until every queue reached the
 * end it had at start, --messages arrived or --duration passed.
 *
 * e2e: producers as in produce, plus one consumer per queue group reading
 * from the queues' current ends; each body starts with the send time
 * (CLOCK_REALTIME, microseconds) and the consumer records receive - send.
 *
 * Latency histograms: 1 us buckets to 10 ms, then 1 ms buckets to 10 s,
 * one per thread with relaxed atomic counters so the reporting thread can
 * read them; every second it prints the interval's rate and percentiles and
 * at the end a summary (and with --json one JSON object as the last line).
 * Old spellings still work: producer/consumer and -n -t -g -c -s -d -m -b. */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "apogee/apogee.h"
#include "cli/bench.h"

#define HIST_FINE 10000
#define HIST_N (HIST_FINE + 10000)

struct hist {
    _Atomic uint64_t h_b[HIST_N];
    _Atomic uint64_t h_max;
};

static size_t hist_bucket(uint64_t us)
{
    size_t i = us < HIST_FINE ? us : HIST_FINE + (us - HIST_FINE) / 1000;
    return i < HIST_N ? i : HIST_N - 1;
}

static uint64_t bucket_us(size_t i)
{
    return i < HIST_FINE ? i : HIST_FINE + (i - HIST_FINE) * 1000;
}

static void hist_add(struct hist *h, uint64_t us)
{
    atomic_fetch_add_explicit(&h->h_b[hist_bucket(us)], 1, memory_order_relaxed);
    uint64_t m = atomic_load_explicit(&h->h_max, memory_order_relaxed);
    while (us > m && !atomic_compare_exchange_weak_explicit(&h->h_max, &m, us, memory_order_relaxed,
                                                            memory_order_relaxed))
        ;
}

/* A plain snapshot (sum of several hists) for percentiles. */
struct snap {
    uint64_t s_b[HIST_N];
    uint64_t s_n;
    uint64_t s_max;
};

static void snap_take(struct snap *s, struct hist *const *hs, size_t n)
{
    memset(s, 0, sizeof(*s));
    for (size_t k = 0; k < n; k++) {
        for (size_t i = 0; i < HIST_N; i++) {
            uint64_t v = atomic_load_explicit(&hs[k]->h_b[i], memory_order_relaxed);
            s->s_b[i] += v;
            s->s_n += v;
        }
        uint64_t m = atomic_load_explicit(&hs[k]->h_max, memory_order_relaxed);
        if (m > s->s_max)
            s->s_max = m;
    }
}

static uint64_t snap_pct(const struct snap *s, const struct snap *prev, double p)
{
    uint64_t n = s->s_n - (prev ? prev->s_n : 0);
    if (n == 0)
        return 0;
    uint64_t want = (uint64_t)(p / 100.0 * (double)n);
    if (want >= n)
        want = n - 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < HIST_N; i++) {
        seen += s->s_b[i] - (prev ? prev->s_b[i] : 0);
        if (seen > want)
            return bucket_us(i);
    }
    return s->s_max;
}

static uint64_t snap_max(const struct snap *s, const struct snap *prev)
{
    if (prev == NULL)
        return s->s_max;
    for (size_t i = HIST_N; i-- > 0;)
        if (s->s_b[i] != prev->s_b[i])
            return i + 1 < HIST_N ? bucket_us(i) : s->s_max;
    return 0;
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static uint64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

enum { MODE_SYNC, MODE_ASYNC, MODE_ONEWAY, MODE_TX };
enum { CMD_PRODUCE, CMD_CONSUME, CMD_E2E };

struct bench {
    int b_cmd;
    const char *b_ns;
    const char *b_protocol;  /* "remoting" (default) or "grpc" */
    const char *b_grpc_addr; /* --protocol=grpc: the gRPC port */
    int b_streams;           /* --protocol=grpc: concurrent streams */
    int b_consumers;         /* --protocol=grpc consume: SimpleConsumers */
    int64_t b_invisible_ms;  /* --protocol=grpc consume: invisible duration */
    const char *b_topic;
    const char *b_sql; /* consume/e2e: SQL92 subscription instead of "*" */
    const char *b_group;
    int b_threads;
    int b_cthreads;
    int b_size;
    int b_secs;
    int b_batch;
    int b_mode;
    int b_inflight;
    uint64_t b_messages; /* 0: no limit */
    int b_json;
    int b_json_headers;
    int b_pull_batch;
    double b_rate;      /* produce: messages per second over all threads, 0 = as fast as possible */
    int b_delay_level;  /* produce: DELAY property of every message, 0 = none */
    int64_t b_at_ms;    /* produce: TIMER_DELIVER_MS of every message, 0 = none */
    int64_t b_after_ms; /* produce: TIMER_DELIVER_MS = send time + this, -1 = none */
    int64_t b_spread_ms; /* produce with b_at_ms and b_messages: spread over this many ms */
    apg_conf_t *b_conf;  /* client keys given as --key=value, copied by each handle */
    apg_producer_t *b_prod;
    _Atomic uint64_t b_claimed; /* produce: messages claimed by workers */
    _Atomic uint64_t b_sent;
    _Atomic uint64_t b_recv;
    _Atomic uint64_t b_recv_bytes;
    _Atomic uint64_t b_errors;
    _Atomic uint64_t b_timeouts;     /* errors that were APG_ETIMEDOUT */
    _Atomic uint64_t b_busy_failed;  /* errors that were APG_EBUSY (still busy at the deadline) */
    uint64_t b_busy, b_busy_retries; /* apg_producer_busy_stats at the end */
    _Atomic uint64_t b_inflight_now;
    _Atomic int b_stop;
    _Atomic int b_cstop;
    struct hist **b_hists; /* send latency: one per producer thread + async */
    size_t b_nhists;
    struct hist **b_chists; /* consume / e2e latency: one per consumer thread */
    /* --rate only, to tell the client's schedule from the server: how late
     * a thread woke from its timer (b_wake), and sync send time from the
     * actual start to the answer (b_svc). */
    struct hist *b_wake, *b_svc;
    size_t b_nchists;
    pthread_mutex_t b_err_mu;
    char b_last_err[512];
    /* consume */
    apg_pull_consumer_t *b_cons;
    apg_mq_t *b_mqs;
    size_t b_nmqs;
    int64_t *b_start, *b_end;
    _Atomic size_t b_drained;
};

static void note_error(struct bench *b, apg_err_t e, const char *msg)
{
    if (e == APG_ETIMEDOUT)
        atomic_fetch_add(&b->b_timeouts, 1);
    else if (e == APG_EBUSY)
        atomic_fetch_add(&b->b_busy_failed, 1);
    if (atomic_fetch_add(&b->b_errors, 1) == 0) {
        pthread_mutex_lock(&b->b_err_mu);
        snprintf(b->b_last_err, sizeof(b->b_last_err), "%s", msg);
        pthread_mutex_unlock(&b->b_err_mu);
    }
}

/* ---- producer side ---- */

struct worker {
    struct bench *w_b;
    pthread_t w_thread;
    int w_idx;
};

static struct bench *bench_current;

static void on_async(apg_err_t e, const apg_send_result_t *r, const char *msg, void *arg)
{
    (void)r;
    /* arg carries the start time; the async histogram is the last one. */
    struct bench *b = bench_current;
    if (e == APG_OK) {
        hist_add(b->b_hists[b->b_nhists - 1], now_us() - (uint64_t)(uintptr_t)arg);
        atomic_fetch_add(&b->b_sent, 1);
    } else {
        note_error(b, e, msg);
    }
    atomic_fetch_sub(&b->b_inflight_now, 1);
}

/* Claims n messages of the --messages budget; returns how many may be sent. */
static uint64_t claim(struct bench *b, uint64_t n, uint64_t *first)
{
    *first = 0;
    if (b->b_messages == 0)
        return n;
    uint64_t got = atomic_fetch_add(&b->b_claimed, n);
    *first = got;
    if (got >= b->b_messages)
        return 0;
    return got + n > b->b_messages ? b->b_messages - got : n;
}

/* --mode=transaction: every local transaction commits at once, and so does
 * every check-back. */
static apg_tx_state_t tx_commit(const apg_message_t *msg, const char *tx_id, void *arg)
{
    (void)msg;
    (void)tx_id;
    (void)arg;
    return APG_TX_COMMIT;
}

static void *producer_main(void *arg)
{
    struct worker *w = arg;
    struct bench *b = w->w_b;
    struct hist *h = b->b_hists[w->w_idx];
    size_t size = (size_t)b->b_size < 8 ? 8 : (size_t)b->b_size;
    char *body = malloc(size);
    for (size_t i = 0; i < size; i++)
        body[i] = (char)('a' + i % 26);
    int nb = b->b_batch > 0 ? b->b_batch : 1;
    apg_message_t **msgs = calloc((size_t)nb, sizeof(*msgs));
    char err[512];
    /* --rate: this thread sends one message (or batch) every `gap` ns on a
     * fixed schedule, staggered between threads. Latency counts from the
     * scheduled time, so a send that starts late because the previous one
     * was slow is charged for the wait (no coordinated omission). */
    uint64_t gap = 0, next = 0;
    if (b->b_rate > 0) {
        prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
        gap = (uint64_t)(1e9 * b->b_threads * nb / b->b_rate);
        next = now_us() * 1000 + gap * (uint64_t)w->w_idx / (uint64_t)b->b_threads;
    }
    while (!atomic_load_explicit(&b->b_stop, memory_order_relaxed)) {
        uint64_t first;
        uint64_t n = claim(b, (uint64_t)nb, &first);
        if (n == 0)
            break;
        uint64_t t0 = now_us(), start = t0;
        if (gap) {
            struct timespec at = {(time_t)(next / 1000000000), (long)(next % 1000000000)};
            if (next > t0 * 1000) {
                clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, NULL);
                start = now_us();
                hist_add(b->b_wake, start > next / 1000 ? start - next / 1000 : 0);
            }
            t0 = next / 1000;
            next += gap;
        }
        uint64_t ts = wall_us();
        memcpy(body, &ts, sizeof(ts)); /* e2e: send time */
        for (uint64_t i = 0; i < n; i++) {
            /* A new message per send: each gets its own UNIQ_KEY. */
            msgs[i] = apg_message_new(b->b_topic, body, size);
            apg_message_put_property(msgs[i], "bench", "1");
            if (b->b_delay_level > 0)
                apg_message_set_delay_level(msgs[i], b->b_delay_level);
            if (b->b_at_ms > 0 && b->b_spread_ms > 0 && b->b_messages > 0) {
                /* Message k of N: a permutation (k * 1000003 mod N; 1000003 is prime) of N times
                 * evenly spaced over [at, at + spread), so the sends are out of time order. */
                uint64_t j = (first + i) * 1000003u % b->b_messages;
                apg_message_set_deliver_time(
                    msgs[i], b->b_at_ms + (int64_t)(j * (uint64_t)b->b_spread_ms / b->b_messages));
            } else if (b->b_at_ms > 0)
                apg_message_set_deliver_time(msgs[i], b->b_at_ms);
            else if (b->b_after_ms >= 0)
                apg_message_set_deliver_time(msgs[i], (int64_t)(ts / 1000) + b->b_after_ms);
        }
        apg_err_t e;
        if (b->b_batch > 0) {
            e = apg_producer_send_batch(b->b_prod, msgs, (size_t)n, NULL, err, sizeof(err));
        } else if (b->b_mode == MODE_ASYNC) {
            atomic_fetch_add(&b->b_inflight_now, 1);
            e = apg_producer_send_async(b->b_prod, msgs[0], on_async, (void *)(uintptr_t)t0, err,
                                        sizeof(err));
            if (e != APG_OK)
                atomic_fetch_sub(&b->b_inflight_now, 1);
        } else if (b->b_mode == MODE_ONEWAY) {
            e = apg_producer_send_oneway(b->b_prod, msgs[0], err, sizeof(err));
        } else if (b->b_mode == MODE_TX) {
            e = apg_producer_send_transaction(b->b_prod, msgs[0], tx_commit, NULL, NULL, NULL, err,
                                              sizeof(err));
        } else {
            e = apg_producer_send(b->b_prod, msgs[0], NULL, err, sizeof(err));
        }
        for (uint64_t i = 0; i < n; i++) {
            apg_message_free(msgs[i]);
            msgs[i] = NULL;
        }
        if (e != APG_OK) {
            note_error(b, e, err);
            usleep(1000);
            continue;
        }
        if (b->b_mode != MODE_ASYNC || b->b_batch > 0) {
            uint64_t done = now_us();
            hist_add(h, done - t0);
            if (gap)
                hist_add(b->b_svc, done - start);
            atomic_fetch_add(&b->b_sent, n);
        }
    }
    free(msgs);
    free(body);
    return NULL;
}

/* ---- consumer side ---- */

struct cworker {
    struct bench *cw_b;
    pthread_t cw_thread;
    int cw_idx;
};

static void *consumer_main(void *arg)
{
    struct cworker *cw = arg;
    struct bench *b = cw->cw_b;
    struct hist *h = b->b_chists[cw->cw_idx];
    size_t mine[256], nmine = 0;
    for (size_t i = (size_t)cw->cw_idx; i < b->b_nmqs && nmine < 256; i += (size_t)b->b_cthreads)
        mine[nmine++] = i;
    bool *done = calloc(nmine ? nmine : 1, sizeof(bool));
    size_t ndone = 0;
    char err[512];
    bool drain = b->b_cmd == CMD_CONSUME;
    while (!atomic_load(&b->b_cstop) && nmine > 0) {
        bool got_any = false;
        for (size_t k = 0; k < nmine && !atomic_load(&b->b_cstop); k++) {
            size_t i = mine[k];
            if (done[k])
                continue;
            apg_pull_result_t res;
            int susp = drain ? 0 : 200;
            apg_err_t e =
                b->b_sql
                    ? apg_pull_consumer_pull_sql92(b->b_cons, &b->b_mqs[i], b->b_sql, b->b_start[i],
                                                   b->b_pull_batch, susp, &res, err, sizeof(err))
                    : apg_pull_consumer_pull(b->b_cons, &b->b_mqs[i], "*", b->b_start[i],
                                             b->b_pull_batch, susp, &res, err, sizeof(err));
            if (e != APG_OK) {
                note_error(b, e, err);
                usleep(1000);
                continue;
            }
            uint64_t wall = wall_us();
            uint64_t bytes = 0;
            for (size_t m = 0; m < res.pr_count; m++) {
                size_t bl;
                const void *body = apg_message_body(res.pr_msgs[m], &bl);
                bytes += bl;
                if (b->b_cmd == CMD_E2E && bl >= 8 &&
                    apg_message_property(res.pr_msgs[m], "bench")) {
                    uint64_t ts;
                    memcpy(&ts, body, sizeof(ts));
                    hist_add(h, wall > ts ? wall - ts : 0);
                } else if (b->b_cmd == CMD_CONSUME) {
                    int64_t born = apg_message_born_timestamp(res.pr_msgs[m]);
                    int64_t lat = (int64_t)(wall / 1000) - born;
                    hist_add(h, lat > 0 ? (uint64_t)lat * 1000 : 0);
                }
            }
            if (res.pr_count)
                got_any = true;
            atomic_fetch_add(&b->b_recv, res.pr_count);
            atomic_fetch_add(&b->b_recv_bytes, bytes);
            if (res.pr_status == APG_PULL_FOUND || res.pr_status == APG_PULL_NO_MATCHED_MSG ||
                res.pr_status == APG_PULL_OFFSET_ILLEGAL)
                b->b_start[i] = res.pr_next_offset;
            apg_pull_result_clear(&res);
            if (drain && b->b_start[i] >= b->b_end[i]) {
                done[k] = true;
                ndone++;
                atomic_fetch_add(&b->b_drained, 1);
            }
        }
        if (drain && ndone == nmine)
            break;
        if (drain && !got_any)
            usleep(1000);
        if (b->b_messages && atomic_load(&b->b_recv) >= b->b_messages && b->b_cmd == CMD_CONSUME)
            break;
    }
    free(done);
    return NULL;
}

/* ---- reporting ---- */

struct report {
    struct snap r_prev_send, r_prev_recv, r_now;
    uint64_t r_prev_sent, r_prev_recv_n, r_prev_bytes, r_prev_err, r_prev_busy;
};

static void report_line(struct bench *b, struct report *r, int sec, uint64_t dt_us)
{
    double secs = (double)dt_us / 1e6;
    bool recv_side = b->b_cmd != CMD_PRODUCE;
    uint64_t sent = atomic_load(&b->b_sent), recv = atomic_load(&b->b_recv);
    uint64_t err = atomic_load(&b->b_errors);
    uint64_t n = recv_side ? recv - r->r_prev_recv_n : sent - r->r_prev_sent;
    double mb = recv_side ? (double)(atomic_load(&b->b_recv_bytes) - r->r_prev_bytes) / 1e6
                          : (double)n * b->b_size / 1e6;
    struct snap *prev = recv_side ? &r->r_prev_recv : &r->r_prev_send;
    if (recv_side && b->b_cmd == CMD_E2E)
        snap_take(&r->r_now, b->b_chists, b->b_nchists);
    else if (recv_side)
        snap_take(&r->r_now, b->b_chists, b->b_nchists);
    else
        snap_take(&r->r_now, b->b_hists, b->b_nhists);
    printf("[%3ds] %s %9.0f msgs/s %8.2f MB/s | lat us p50 %" PRIu64 " p99 %" PRIu64
           " p999 %" PRIu64 " max %" PRIu64 " | failed %" PRIu64,
           sec, recv_side ? "recv" : "sent", (double)n / secs, mb / secs,
           snap_pct(&r->r_now, prev, 50), snap_pct(&r->r_now, prev, 99),
           snap_pct(&r->r_now, prev, 99.9), snap_max(&r->r_now, prev), err - r->r_prev_err);
    if (b->b_cmd == CMD_E2E)
        printf(" | sent %.0f msgs/s", (double)(sent - r->r_prev_sent) / secs);
    uint64_t busy = 0;
    if (b->b_prod)
        apg_producer_busy_stats(b->b_prod, &busy, NULL);
    if (busy > r->r_prev_busy)
        printf(" | busy %" PRIu64, busy - r->r_prev_busy);
    r->r_prev_busy = busy;
    printf("\n");
    fflush(stdout);
    *prev = r->r_now;
    r->r_prev_sent = sent;
    r->r_prev_recv_n = recv;
    r->r_prev_bytes = atomic_load(&b->b_recv_bytes);
    r->r_prev_err = err;
}

static void summary(struct bench *b, double secs)
{
    struct snap *s = malloc(sizeof(*s));
    bool recv_side = b->b_cmd != CMD_PRODUCE;
    if (recv_side)
        snap_take(s, b->b_chists, b->b_nchists);
    else
        snap_take(s, b->b_hists, b->b_nhists);
    uint64_t sent = atomic_load(&b->b_sent), recv = atomic_load(&b->b_recv);
    uint64_t n = recv_side ? recv : sent;
    double bytes = recv_side ? (double)atomic_load(&b->b_recv_bytes) : (double)n * b->b_size;
    uint64_t err = atomic_load(&b->b_errors);
    const char *what = b->b_cmd == CMD_PRODUCE ? "produced" : "consumed";
    printf("%s: %" PRIu64 " msgs in %.2f s = %.0f msgs/s, %.2f MB/s, errors %" PRIu64 "\n", what, n,
           secs, (double)n / secs, bytes / secs / 1e6, err);
    if (b->b_cmd == CMD_E2E)
        printf("produced: %" PRIu64 " msgs = %.0f msgs/s\n", sent, (double)sent / secs);
    if (s->s_n)
        printf("latency us%s: p50 %" PRIu64 " p90 %" PRIu64 " p99 %" PRIu64 " p999 %" PRIu64
               " max %" PRIu64 " (%" PRIu64 " samples)\n",
               b->b_cmd == CMD_E2E ? " (producer to consumer)" : "", snap_pct(s, NULL, 50),
               snap_pct(s, NULL, 90), snap_pct(s, NULL, 99), snap_pct(s, NULL, 99.9), s->s_max,
               s->s_n);
    if (b->b_cmd == CMD_CONSUME)
        printf("(consume latency = receive time - born time, ms resolution)\n");
    if (err)
        printf("first error: %s\n", b->b_last_err);
    if (b->b_cmd != CMD_CONSUME)
        printf("timeouts %" PRIu64 ", SYSTEM_BUSY answers %" PRIu64 ", sends retried after a "
               "back-off %" PRIu64 ", failed still busy %" PRIu64 "\n",
               atomic_load(&b->b_timeouts), b->b_busy, b->b_busy_retries,
               atomic_load(&b->b_busy_failed));
    if (b->b_rate > 0 && b->b_cmd == CMD_PRODUCE) {
        struct hist *one[1] = {b->b_wake};
        snap_take(s, one, 1);
        printf("timer wake-up lateness us: p50 %" PRIu64 " p99 %" PRIu64 " max %" PRIu64 "\n",
               snap_pct(s, NULL, 50), snap_pct(s, NULL, 99), s->s_max);
        one[0] = b->b_svc;
        snap_take(s, one, 1);
        if (s->s_n)
            printf("send time from actual start us: p50 %" PRIu64 " p99 %" PRIu64 " max %" PRIu64
                   "\n",
                   snap_pct(s, NULL, 50), snap_pct(s, NULL, 99), s->s_max);
        /* the JSON line below reports the scheduled-time latency again */
        if (recv_side)
            snap_take(s, b->b_chists, b->b_nchists);
        else
            snap_take(s, b->b_hists, b->b_nhists);
    }
    if (b->b_json) {
        printf("{\"cmd\":\"%s\",\"tps\":%.0f,\"mbps\":%.3f,\"p50_us\":%" PRIu64
               ",\"p99_us\":%" PRIu64 ",\"p999_us\":%" PRIu64 ",\"max_us\":%" PRIu64
               ",\"sent\":%" PRIu64 ",\"received\":%" PRIu64 ",\"failed\":%" PRIu64
               ",\"timeouts\":%" PRIu64 ",\"busy\":%" PRIu64 ",\"busy_retries\":%" PRIu64
               ",\"seconds\":%.3f}\n",
               b->b_cmd == CMD_PRODUCE   ? "produce"
               : b->b_cmd == CMD_CONSUME ? "consume"
                                         : "e2e",
               (double)n / secs, bytes / secs / 1e6, snap_pct(s, NULL, 50), snap_pct(s, NULL, 99),
               snap_pct(s, NULL, 99.9), s->s_max, sent, recv, err, atomic_load(&b->b_timeouts),
               b->b_busy, b->b_busy_retries, secs);
    }
    fflush(stdout);
    free(s);
}

/* ---- runs ---- */

/* A copy of the bench's conf with the options that name client keys. */
static apg_conf_t *bench_conf(struct bench *b, const char *group_key, const char *group, char *err,
                              size_t errlen)
{
    apg_conf_t *conf = apg_conf_dup(b->b_conf);
    char inflight[16];
    snprintf(inflight, sizeof(inflight), "%d", b->b_inflight);
    if (conf == NULL || apg_conf_set(conf, "namesrvAddr", b->b_ns, err, errlen) != APG_OK ||
        apg_conf_set(conf, group_key, b->b_group ? b->b_group : group, err, errlen) != APG_OK ||
        (b->b_json_headers && apg_conf_set(conf, "serializeType", "JSON", err, errlen) != APG_OK) ||
        (b->b_inflight > 0 &&
         apg_conf_set(conf, "backPressureForAsyncSendNum", inflight, err, errlen) != APG_OK)) {
        apg_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

static int open_producer(struct bench *b)
{
    char err[512] = "out of memory";
    apg_conf_t *pc = bench_conf(b, "producerGroup", "apogee_bench_producer", err, sizeof(err));
    b->b_prod = !pc ? NULL
                : b->b_mode == MODE_TX
                    ? apg_producer_new_transactional(pc, tx_commit, NULL, err, sizeof(err))
                    : apg_producer_new(pc, err, sizeof(err));
    apg_conf_destroy(pc);
    if (b->b_prod == NULL) {
        fprintf(stderr, "bench: %s\n", err);
        return 1;
    }
    /* One warm-up send: route lookup and connection, and a clear error if the
     * topic cannot be written. */
    apg_message_t *m = apg_message_new(b->b_topic, "warmup", 6);
    apg_err_t e = apg_producer_send(b->b_prod, m, NULL, err, sizeof(err));
    apg_message_free(m);
    if (e != APG_OK) {
        fprintf(stderr, "bench: first send failed: %s\n", err);
        apg_producer_destroy(b->b_prod);
        b->b_prod = NULL;
        return 1;
    }
    return 0;
}

static int open_consumer(struct bench *b, bool from_end)
{
    char err[512] = "out of memory";
    apg_conf_t *cc = bench_conf(b, "consumerGroup", "apogee_bench_consumer", err, sizeof(err));
    b->b_cons = cc ? apg_pull_consumer_new(cc, err, sizeof(err)) : NULL;
    apg_conf_destroy(cc);
    if (b->b_cons == NULL) {
        fprintf(stderr, "bench: %s\n", err);
        return 1;
    }
    /* A topic the warm-up send just auto-created reaches the NameServer with
     * the broker's next registration, a moment later: retry for up to 5 s. */
    apg_err_t qe = APG_OK;
    for (int tries = 0; tries < 50; tries++) {
        qe = apg_pull_consumer_queues(b->b_cons, b->b_topic, &b->b_mqs, &b->b_nmqs, err,
                                      sizeof(err));
        if (qe == APG_OK && b->b_nmqs > 0)
            break;
        usleep(100000);
    }
    if (qe != APG_OK || b->b_nmqs == 0) {
        fprintf(stderr, "bench: no readable queue for '%s': %s\n", b->b_topic, err);
        return 1;
    }
    b->b_start = calloc(b->b_nmqs, sizeof(int64_t));
    b->b_end = calloc(b->b_nmqs, sizeof(int64_t));
    for (size_t i = 0; i < b->b_nmqs; i++) {
        if (apg_pull_consumer_max_offset(b->b_cons, &b->b_mqs[i], &b->b_end[i], err, sizeof(err)) !=
                APG_OK ||
            (!from_end && apg_pull_consumer_min_offset(b->b_cons, &b->b_mqs[i], &b->b_start[i], err,
                                                       sizeof(err)) != APG_OK)) {
            fprintf(stderr, "bench: cannot read the offsets of queue %d: %s\n",
                    b->b_mqs[i].mq_queue_id, err);
            return 1;
        }
        if (from_end)
            b->b_start[i] = b->b_end[i];
    }
    return 0;
}

static int run(struct bench *b)
{
    static const char *modes[] = {"sync", "async", "oneway", "transaction"};
    bench_current = b;
    bool produce = b->b_cmd != CMD_CONSUME, consume = b->b_cmd != CMD_PRODUCE;
    if (produce && open_producer(b) != 0)
        return 1;
    if (consume && open_consumer(b, b->b_cmd == CMD_E2E) != 0) {
        apg_producer_destroy(b->b_prod);
        apg_pull_consumer_destroy(b->b_cons);
        return 1;
    }
    if (b->b_cthreads > (int)b->b_nmqs && consume)
        b->b_cthreads = (int)b->b_nmqs;
    uint64_t backlog = 0;
    for (size_t i = 0; i < b->b_nmqs; i++)
        backlog += (uint64_t)(b->b_end[i] - b->b_start[i]);
    if (b->b_cmd == CMD_CONSUME)
        printf("bench consume: topic %s, %zu queues, backlog %" PRIu64 " msgs, %d threads\n",
               b->b_topic, b->b_nmqs, backlog, b->b_cthreads);
    else
        printf("bench %s: topic %s, %d threads, %d-byte bodies, %s%s%.0d, %d s%s\n",
               b->b_cmd == CMD_E2E ? "e2e" : "produce", b->b_topic, b->b_threads, b->b_size,
               b->b_batch > 0 ? "batch " : modes[b->b_mode], b->b_batch > 0 ? "of " : "",
               b->b_batch, b->b_secs, b->b_messages ? " (or --messages)" : "");
    if (b->b_rate > 0 && produce)
        printf("fixed rate: %.0f msgs/s in total (latency from each send's scheduled time)\n",
               b->b_rate);
    fflush(stdout);
    b->b_nhists = produce ? (size_t)b->b_threads + 1 : 0;
    b->b_hists = calloc(b->b_nhists + 1, sizeof(struct hist *));
    for (size_t i = 0; i < b->b_nhists; i++)
        b->b_hists[i] = calloc(1, sizeof(struct hist));
    b->b_wake = calloc(1, sizeof(struct hist));
    b->b_svc = calloc(1, sizeof(struct hist));
    b->b_nchists = consume ? (size_t)b->b_cthreads : 0;
    b->b_chists = calloc(b->b_nchists + 1, sizeof(struct hist *));
    for (size_t i = 0; i < b->b_nchists; i++)
        b->b_chists[i] = calloc(1, sizeof(struct hist));
    struct worker *ws = calloc((size_t)b->b_threads, sizeof(*ws));
    struct cworker *cws = calloc((size_t)b->b_cthreads + 1, sizeof(*cws));
    uint64_t t0 = now_us();
    for (int i = 0; consume && i < b->b_cthreads; i++) {
        cws[i].cw_b = b;
        cws[i].cw_idx = i;
        pthread_create(&cws[i].cw_thread, NULL, consumer_main, &cws[i]);
    }
    for (int i = 0; produce && i < b->b_threads; i++) {
        ws[i].w_b = b;
        ws[i].w_idx = i;
        pthread_create(&ws[i].w_thread, NULL, producer_main, &ws[i]);
    }
    struct report *rep = calloc(1, sizeof(*rep));
    uint64_t last = t0, deadline = t0 + (uint64_t)b->b_secs * 1000000;
    int sec = 0;
    for (;;) {
        uint64_t now = now_us();
        bool finished = now >= deadline;
        if (b->b_cmd == CMD_CONSUME)
            finished = finished || atomic_load(&b->b_drained) == b->b_nmqs ||
                       (b->b_messages && atomic_load(&b->b_recv) >= b->b_messages);
        else if (b->b_messages && atomic_load(&b->b_claimed) >= b->b_messages)
            finished =
                finished || (atomic_load(&b->b_sent) + atomic_load(&b->b_errors) >= b->b_messages);
        if (b->b_cmd == CMD_E2E && finished && atomic_load(&b->b_recv) < atomic_load(&b->b_sent) &&
            now < deadline + 5000000)
            finished = false; /* let the consumer catch up (5 s at most) */
        if (b->b_cmd == CMD_E2E && now >= deadline)
            atomic_store(&b->b_stop, 1);
        if (finished)
            break;
        if (now - last >= 1000000) {
            report_line(b, rep, ++sec, now - last);
            last = now;
        }
        usleep(10000);
    }
    atomic_store(&b->b_stop, 1);
    for (int i = 0; produce && i < b->b_threads; i++)
        pthread_join(ws[i].w_thread, NULL);
    while (atomic_load(&b->b_inflight_now) > 0 && now_us() - t0 < deadline - t0 + 10000000)
        usleep(1000);
    /* e2e: a send may have completed after the loop's last look; the
     * producers are joined now, so wait (5 s at most) until the consumers
     * have every message that was sent. */
    while (b->b_cmd == CMD_E2E && atomic_load(&b->b_recv) < atomic_load(&b->b_sent) &&
           now_us() < deadline + 5000000)
        usleep(1000);
    atomic_store(&b->b_cstop, 1);
    for (int i = 0; consume && i < b->b_cthreads; i++)
        pthread_join(cws[i].cw_thread, NULL);
    double secs = (double)(now_us() - t0) / 1e6;
    if (now_us() - last > 200000)
        report_line(b, rep, ++sec, now_us() - last);
    if (b->b_prod)
        apg_producer_busy_stats(b->b_prod, &b->b_busy, &b->b_busy_retries);
    apg_producer_destroy(b->b_prod);
    b->b_prod = NULL;
    apg_pull_consumer_destroy(b->b_cons);
    summary(b, secs);
    uint64_t n = b->b_cmd == CMD_PRODUCE ? atomic_load(&b->b_sent) : atomic_load(&b->b_recv);
    for (size_t i = 0; i < b->b_nhists; i++)
        free(b->b_hists[i]);
    for (size_t i = 0; i < b->b_nchists; i++)
        free(b->b_chists[i]);
    free(b->b_hists);
    free(b->b_chists);
    free(b->b_wake);
    free(b->b_svc);
    free(rep);
    free(ws);
    free(cws);
    free(b->b_start);
    free(b->b_end);
    apg_mq_list_free(b->b_mqs);
    return n > 0 || backlog == 0 ? 0 : 1;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: apogee bench produce|consume|e2e [--key=value ...]\n"
            "  --namesrvAddr=ADDR   NameServer list host:port;host:port (127.0.0.1:9876)  [-n]\n"
            "  --topic=TOPIC        topic (BenchTopic)                                    [-t]\n"
            "  --group=GROUP        producer/consumer group                               [-g]\n"
            "  --threads=N          producer threads, or consume threads (4)              [-c]\n"
            "  --consumeThreads=N   e2e: consumer threads (4)\n"
            "  --size=BYTES         body size (128)                                       [-s]\n"
            "  --batch=N            sync batches of N messages                            [-b]\n"
            "  --mode=MODE          sync | async | oneway | transaction (sync)            [-m]\n"
            "                       transaction: half send + commit (END_TRANSACTION) each\n"
            "  --inflight=N         async: max sends in flight (10000)\n"
            "  --duration=SECS      run time (10; consume: until drained)                 [-d]\n"
            "  --messages=N         stop after N messages\n"
            "  --rate=N             produce: N msgs/s in total on a fixed schedule; latency\n"
            "                       counts from each send's scheduled time\n"
            "  --delayLevel=N       produce: every message waits at delay level N on the broker\n"
            "  --deliverAt=MS       produce: timer messages due at wall-clock ms MS\n"
            "  --deliverAfter=MS    produce: timer messages due MS ms after each send\n"
            "  --deliverSpread=MS   produce with --deliverAt and --messages=N: the N deliver\n"
            "                       times evenly spaced over [deliverAt, deliverAt + MS), sent\n"
            "                       out of order\n"
            "  --pullBatch=N        consume: maxMsgNums per pull (32)\n"
            "  --sql=EXPR           consume/e2e: SQL92 subscription instead of \"*\" (the\n"
            "                       broker needs enablePropertyFilter=true; each message\n"
            "                       has the property bench=1)\n"
            "  --json               last line: one JSON object with the summary\n"
            "  --protocol=grpc      the RocketMQ 5 gRPC port at --grpcAddr (127.0.0.1:8081)\n"
            "                       instead. produce: SendMessage on one HTTP/2 connection\n"
            "                       with --streams (64) calls in flight; --topic, --size,\n"
            "                       --duration, --messages and --json apply. consume:\n"
            "                       --consumers (1) SimpleConsumers of --group, each with\n"
            "                       --inflight (4) ReceiveMessage calls of --pullBatch (32)\n"
            "                       messages, --invisible ms (60000), every receive's\n"
            "                       messages acknowledged with one AckMessage; checks that\n"
            "                       none comes twice while invisible and, with --messages,\n"
            "                       none is lost; ends after 3 s without a message\n"
            "  --serialize=json     JSON remoting headers instead of binary (ROCKETMQ)\n"
            "  --tls                connect over TLS (the client key tls.enable); verify the\n"
            "                       servers with --tls.client.trustCertPath=CA.pem\n"
            "  --KEY=VALUE          any client configuration key (apogee bench --help-conf),\n"
            "                       e.g. --syncSpinMicros=0 --sendMsgTimeout=5000\n"
            "Every second: rate, MB/s, latency p50/p99/p999/max (us) and failures.\n"
            "consume drains from each queue's first offset; e2e measures producer to\n"
            "consumer latency from a timestamp in the body. producer/consumer are aliases.\n");
}

static int set_opt(struct bench *b, const char *k, const char *v)
{
    if (!strcmp(k, "namesrvAddr") || !strcmp(k, "n"))
        b->b_ns = v;
    else if (!strcmp(k, "protocol"))
        b->b_protocol = v;
    else if (!strcmp(k, "grpcAddr"))
        b->b_grpc_addr = v;
    else if (!strcmp(k, "streams"))
        b->b_streams = atoi(v);
    else if (!strcmp(k, "consumers"))
        b->b_consumers = atoi(v);
    else if (!strcmp(k, "invisible"))
        b->b_invisible_ms = strtoll(v, NULL, 10);
    else if (!strcmp(k, "topic") || !strcmp(k, "t"))
        b->b_topic = v;
    else if (!strcmp(k, "group") || !strcmp(k, "g"))
        b->b_group = v;
    else if (!strcmp(k, "threads") || !strcmp(k, "c"))
        b->b_threads = atoi(v);
    else if (!strcmp(k, "consumeThreads"))
        b->b_cthreads = atoi(v);
    else if (!strcmp(k, "size") || !strcmp(k, "s"))
        b->b_size = atoi(v);
    else if (!strcmp(k, "batch") || !strcmp(k, "b"))
        b->b_batch = atoi(v);
    else if (!strcmp(k, "inflight"))
        b->b_inflight = atoi(v);
    else if (!strcmp(k, "duration") || !strcmp(k, "d"))
        b->b_secs = atoi(v);
    else if (!strcmp(k, "messages"))
        b->b_messages = strtoull(v, NULL, 10);
    else if (!strcmp(k, "rate"))
        b->b_rate = atof(v);
    else if (!strcmp(k, "sql"))
        b->b_sql = v;
    else if (!strcmp(k, "delayLevel"))
        b->b_delay_level = atoi(v);
    else if (!strcmp(k, "deliverAt"))
        b->b_at_ms = strtoll(v, NULL, 10);
    else if (!strcmp(k, "deliverSpread"))
        b->b_spread_ms = strtoll(v, NULL, 10);
    else if (!strcmp(k, "deliverAfter"))
        b->b_after_ms = strtoll(v, NULL, 10);
    else if (!strcmp(k, "pullBatch"))
        b->b_pull_batch = atoi(v);
    else if (!strcmp(k, "json"))
        b->b_json = strcmp(v, "false") != 0;
    else if (!strcmp(k, "serialize"))
        b->b_json_headers = strcmp(v, "json") == 0;
    else if (!strcmp(k, "tls"))
        return set_opt(b, "tls.enable", v);
    else if (!strcmp(k, "from-start"))
        ; /* old consumer flag: consume always starts at the first offset */
    else if (!strcmp(k, "mode") || !strcmp(k, "m")) {
        b->b_mode = !strcmp(v, "async")         ? MODE_ASYNC
                    : !strcmp(v, "oneway")      ? MODE_ONEWAY
                    : !strcmp(v, "transaction") ? MODE_TX
                                                : 0;
        if (b->b_mode == MODE_SYNC && strcmp(v, "sync") != 0) {
            fprintf(stderr, "bench: --mode must be sync, async, oneway or transaction\n");
            return -1;
        }
    } else {
        char err[256];
        apg_err_t e = apg_conf_set(b->b_conf, k, v, err, sizeof(err));
        if (e == APG_ENOTFOUND) {
            fprintf(stderr, "bench: unknown option '%s' (see apogee bench --help)\n", k);
            return -1;
        }
        if (e != APG_OK) {
            fprintf(stderr, "bench: %s\n", err);
            return -1;
        }
    }
    return 0;
}

int apg_cli_bench_main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc >= 2 ? stdout : stderr);
        return argc >= 2 ? 0 : 2;
    }
    if (!strcmp(argv[1], "--help-conf")) {
        apg_conf_properties_show(stdout);
        return 0;
    }
    struct bench *b = calloc(1, sizeof(*b));
    b->b_conf = apg_conf_new();
    if (b->b_conf == NULL) {
        apg_conf_destroy(b->b_conf);
        free(b);
        return 1;
    }
    pthread_mutex_init(&b->b_err_mu, NULL);
    const char *cmd = argv[1];
    if (!strcmp(cmd, "produce") || !strcmp(cmd, "producer"))
        b->b_cmd = CMD_PRODUCE;
    else if (!strcmp(cmd, "consume") || !strcmp(cmd, "consumer"))
        b->b_cmd = CMD_CONSUME;
    else if (!strcmp(cmd, "e2e"))
        b->b_cmd = CMD_E2E;
    else {
        usage(stderr);
        apg_conf_destroy(b->b_conf);
        free(b);
        return 2;
    }
    b->b_ns = "127.0.0.1:9876";
    b->b_topic = "BenchTopic";
    b->b_threads = 4;
    b->b_cthreads = -1;
    b->b_size = 128;
    b->b_secs = -1;
    b->b_pull_batch = 32;
    b->b_after_ms = -1;
    int rc = 0;
    for (int i = 2; i < argc && rc == 0; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            apg_conf_destroy(b->b_conf);
            free(b);
            return 0;
        }
        if (a[0] == '-' && a[1] == '-') {
            const char *eq = strchr(a + 2, '=');
            char key[64];
            snprintf(key, sizeof(key), "%.*s", (int)(eq ? eq - a - 2 : (long)strlen(a + 2)), a + 2);
            const char *val = eq ? eq + 1 : NULL;
            if (val == NULL &&
                (!strcmp(key, "json") || !strcmp(key, "from-start") || !strcmp(key, "tls")))
                val = "true";
            else if (val == NULL && i + 1 < argc)
                val = argv[++i];
            if (val == NULL) {
                fprintf(stderr, "bench: --%s needs a value\n", key);
                rc = 2;
                break;
            }
            rc = set_opt(b, key, val) ? 2 : 0;
        } else if (a[0] == '-' && a[1] && !a[2] && i + 1 < argc) {
            char key[2] = {a[1], 0};
            rc = set_opt(b, key, argv[++i]) ? 2 : 0;
        } else {
            fprintf(stderr, "bench: unexpected argument '%s'\n", a);
            rc = 2;
        }
    }
    if (b->b_cthreads < 0)
        b->b_cthreads = b->b_cmd == CMD_CONSUME ? b->b_threads : 4;
    if (b->b_secs < 0)
        b->b_secs = b->b_cmd == CMD_CONSUME ? 3600 : 10;
    if (rc == 0 && (b->b_threads < 1 || b->b_size < 1 || b->b_secs < 1 || b->b_batch < 0 ||
                    b->b_cthreads < 1 || b->b_pull_batch < 1 || b->b_rate < 0)) {
        fprintf(stderr, "bench: --threads, --size, --duration and --rate must be positive\n");
        rc = 2;
    }
    if (rc == 0 && b->b_protocol && strcmp(b->b_protocol, "remoting") != 0) {
        if (strcmp(b->b_protocol, "grpc") != 0 || b->b_cmd == CMD_E2E) {
            fprintf(stderr, "bench: --protocol is remoting, or grpc with produce or consume\n");
            rc = 2;
        } else {
            struct apg_bench_grpc_opts go = {
                .bo_addr = b->b_grpc_addr ? b->b_grpc_addr : "127.0.0.1:8081",
                .bo_topic = b->b_topic,
                .bo_group = b->b_group ? b->b_group : "BenchGrpcGroup",
                .bo_size = b->b_size,
                .bo_secs = b->b_secs,
                .bo_streams = b->b_streams > 0 ? b->b_streams : 64,
                .bo_messages = (long)b->b_messages,
                .bo_consumers = b->b_consumers > 0 ? b->b_consumers : 1,
                .bo_inflight = b->b_inflight > 0 ? b->b_inflight : 4,
                .bo_batch = b->b_pull_batch,
                .bo_invisible_ms = b->b_invisible_ms > 0 ? b->b_invisible_ms : 60000,
                .bo_json = b->b_json,
            };
            rc = b->b_cmd == CMD_PRODUCE ? apg_cli_bench_grpc_produce(&go)
                                         : apg_cli_bench_grpc_consume(&go);
        }
    } else if (rc == 0)
        rc = run(b);
    pthread_mutex_destroy(&b->b_err_mu);
    apg_conf_destroy(b->b_conf);
    free(b);
    return rc;
}

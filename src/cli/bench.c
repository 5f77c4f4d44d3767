/* `apogee bench producer|consumer`: load generator on top of the C client.
 *
 * producer: T threads share one producer (one I/O thread, as Java shares
 * one client instance) and send messages of S bytes for D seconds, sync
 * (each thread waits for every answer), async (each thread keeps sending;
 * max_inflight bounds the window) or oneway; -b N sends batches of N.
 * Latency is measured from the call to the answer (sync/async) and kept in
 * a fixed histogram (1 us buckets to 10 ms, then 1 ms buckets to 10 s), so
 * memory does not grow with the run. Sync threads own their histogram;
 * async answers arrive on the I/O thread, which owns the shared one.
 *
 * consumer: pulls every queue of the topic from its current max offset (or
 * from 0 with --from-start) with long polling and reports messages/s and,
 * from born timestamps, end-to-end latency.
 *
 * Output: one line per second, then a summary with msgs/s, MB/s and
 * p50/p99/p999/max latency. */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "apogee/apogee.h"
#include "cli/bench.h"

#define HIST_FINE 10000
#define HIST_N (HIST_FINE + 10000)

struct hist {
    uint64_t h_b[HIST_N];
    uint64_t h_n;
    uint64_t h_max;
};

static void hist_add(struct hist *h, uint64_t us)
{
    size_t i = us < HIST_FINE ? us : HIST_FINE + (us - HIST_FINE) / 1000;
    if (i >= HIST_N)
        i = HIST_N - 1;
    h->h_b[i]++;
    h->h_n++;
    if (us > h->h_max)
        h->h_max = us;
}

static void hist_merge(struct hist *into, const struct hist *h)
{
    for (size_t i = 0; i < HIST_N; i++)
        into->h_b[i] += h->h_b[i];
    into->h_n += h->h_n;
    if (h->h_max > into->h_max)
        into->h_max = h->h_max;
}

static uint64_t hist_pct(const struct hist *h, double p)
{
    if (h->h_n == 0)
        return 0;
    uint64_t want = (uint64_t)(p / 100.0 * (double)h->h_n);
    if (want >= h->h_n)
        want = h->h_n - 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < HIST_N; i++) {
        seen += h->h_b[i];
        if (seen > want)
            return i < HIST_FINE ? i : HIST_FINE + (i - HIST_FINE) * 1000;
    }
    return h->h_max;
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

struct bench {
    const char *b_ns;
    const char *b_topic;
    const char *b_group;
    int b_threads;
    int b_size;
    int b_secs;
    int b_batch;
    int b_mode; /* 0 sync, 1 async, 2 oneway */
    int b_json;
    int b_from_start;
    apg_producer_t *b_prod;
    _Atomic uint64_t b_sent;
    _Atomic uint64_t b_errors;
    _Atomic uint64_t b_inflight;
    _Atomic int b_stop;
    struct hist b_async_hist; /* I/O thread only */
    char b_last_err[512];
};

struct worker {
    struct bench *w_b;
    pthread_t w_thread;
    struct hist w_hist;
};

static void on_async(apg_err_t e, const apg_send_result_t *r, const char *msg, void *arg)
{
    struct bench *b = *(struct bench **)arg;
    uint64_t start = ((uint64_t *)arg)[1];
    if (e == APG_OK) {
        hist_add(&b->b_async_hist, now_us() - start);
        atomic_fetch_add(&b->b_sent, 1);
    } else {
        if (atomic_fetch_add(&b->b_errors, 1) == 0)
            snprintf(b->b_last_err, sizeof(b->b_last_err), "%s", msg);
    }
    atomic_fetch_sub(&b->b_inflight, 1);
    free(arg);
}

static void *producer_main(void *arg)
{
    struct worker *w = arg;
    struct bench *b = w->w_b;
    char *body = malloc((size_t)b->b_size);
    for (int i = 0; i < b->b_size; i++)
        body[i] = (char)('a' + i % 26);
    int nb = b->b_batch > 0 ? b->b_batch : 1;
    apg_message_t **msgs = calloc((size_t)nb, sizeof(*msgs));
    char err[512];
    while (!atomic_load(&b->b_stop)) {
        for (int i = 0; i < nb; i++) {
            apg_message_free(msgs[i]);
            msgs[i] = apg_message_new(b->b_topic, body, (size_t)b->b_size);
        }
        uint64_t t0 = now_us();
        apg_err_t e;
        if (b->b_batch > 0) {
            e = apg_producer_send_batch(b->b_prod, msgs, (size_t)nb, NULL, err, sizeof(err));
        } else if (b->b_mode == 1) {
            uint64_t *ctx = malloc(2 * sizeof(uint64_t));
            *(struct bench **)ctx = b;
            ctx[1] = t0;
            atomic_fetch_add(&b->b_inflight, 1);
            e = apg_producer_send_async(b->b_prod, msgs[0], on_async, ctx, err, sizeof(err));
            if (e != APG_OK) {
                free(ctx);
                atomic_fetch_sub(&b->b_inflight, 1);
            }
        } else if (b->b_mode == 2) {
            e = apg_producer_send_oneway(b->b_prod, msgs[0], err, sizeof(err));
        } else {
            e = apg_producer_send(b->b_prod, msgs[0], NULL, err, sizeof(err));
        }
        if (e != APG_OK) {
            if (atomic_fetch_add(&b->b_errors, 1) == 0)
                snprintf(b->b_last_err, sizeof(b->b_last_err), "%s", err);
            usleep(1000);
            continue;
        }
        if (b->b_mode != 1 || b->b_batch > 0) {
            hist_add(&w->w_hist, now_us() - t0);
            atomic_fetch_add(&b->b_sent, (uint64_t)nb);
        }
    }
    for (int i = 0; i < nb; i++)
        apg_message_free(msgs[i]);
    free(msgs);
    free(body);
    return NULL;
}

static void print_summary(const char *what, uint64_t n, uint64_t bytes, double secs,
                          const struct hist *h, uint64_t errors)
{
    printf("%s: %" PRIu64 " msgs in %.2f s = %.0f msgs/s, %.2f MB/s, errors %" PRIu64 "\n", what, n,
           secs, (double)n / secs, (double)bytes / secs / 1e6, errors);
    if (h->h_n)
        printf("latency us: p50 %" PRIu64 " p90 %" PRIu64 " p99 %" PRIu64 " p999 %" PRIu64
               " max %" PRIu64 " (%" PRIu64 " samples)\n",
               hist_pct(h, 50), hist_pct(h, 90), hist_pct(h, 99), hist_pct(h, 99.9), h->h_max,
               h->h_n);
}

static int run_producer(struct bench *b)
{
    apg_producer_conf_t pc;
    apg_producer_conf_init(&pc);
    pc.namesrv = b->b_ns;
    pc.group = b->b_group ? b->b_group : "apogee_bench_producer";
    pc.binary_header = !b->b_json;
    char err[512];
    b->b_prod = apg_producer_new(&pc, err, sizeof(err));
    if (b->b_prod == NULL) {
        fprintf(stderr, "bench: %s\n", err);
        return 1;
    }
    /* One warm-up send: route lookup and connection, and a clear error if the
     * topic cannot be written. */
    apg_message_t *m = apg_message_new(b->b_topic, "warmup", 6);
    if (apg_producer_send(b->b_prod, m, NULL, err, sizeof(err)) != APG_OK) {
        fprintf(stderr, "bench: first send failed: %s\n", err);
        apg_message_free(m);
        apg_producer_destroy(b->b_prod);
        return 1;
    }
    apg_message_free(m);
    static const char *modes[] = {"sync", "async", "oneway"};
    printf("bench producer: topic %s, %d threads, %d-byte bodies, %s%s%.0d, %d s\n", b->b_topic,
           b->b_threads, b->b_size, b->b_batch > 0 ? "batch " : modes[b->b_mode],
           b->b_batch > 0 ? "of " : "", b->b_batch, b->b_secs);
    fflush(stdout);
    struct worker *ws = calloc((size_t)b->b_threads, sizeof(*ws));
    uint64_t t0 = now_us();
    for (int i = 0; i < b->b_threads; i++) {
        ws[i].w_b = b;
        pthread_create(&ws[i].w_thread, NULL, producer_main, &ws[i]);
    }
    uint64_t last = 0;
    for (int s = 0; s < b->b_secs; s++) {
        sleep(1);
        uint64_t n = atomic_load(&b->b_sent);
        printf("%3ds %8" PRIu64 " msgs/s  errors %" PRIu64 "\n", s + 1, n - last,
               (uint64_t)atomic_load(&b->b_errors));
        fflush(stdout);
        last = n;
    }
    atomic_store(&b->b_stop, 1);
    for (int i = 0; i < b->b_threads; i++)
        pthread_join(ws[i].w_thread, NULL);
    while (atomic_load(&b->b_inflight) > 0 && now_us() - t0 < (uint64_t)(b->b_secs + 10) * 1000000)
        usleep(1000);
    double secs = (double)(now_us() - t0) / 1e6;
    apg_producer_destroy(b->b_prod);
    struct hist *all = calloc(1, sizeof(*all));
    for (int i = 0; i < b->b_threads; i++)
        hist_merge(all, &ws[i].w_hist);
    hist_merge(all, &b->b_async_hist);
    uint64_t n = atomic_load(&b->b_sent);
    print_summary("produced", n, n * (uint64_t)b->b_size, secs, all, atomic_load(&b->b_errors));
    if (atomic_load(&b->b_errors))
        printf("first error: %s\n", b->b_last_err);
    free(all);
    free(ws);
    return n > 0 ? 0 : 1;
}

static int run_consumer(struct bench *b)
{
    apg_consumer_conf_t cc;
    apg_consumer_conf_init(&cc);
    cc.namesrv = b->b_ns;
    cc.group = b->b_group ? b->b_group : "apogee_bench_consumer";
    cc.binary_header = !b->b_json;
    char err[512];
    apg_pull_consumer_t *c = apg_pull_consumer_new(&cc, err, sizeof(err));
    if (c == NULL) {
        fprintf(stderr, "bench: %s\n", err);
        return 1;
    }
    apg_mq_t *mqs = NULL;
    size_t n = 0;
    if (apg_pull_consumer_queues(c, b->b_topic, &mqs, &n, err, sizeof(err)) != APG_OK || n == 0) {
        fprintf(stderr, "bench: no readable queue for '%s': %s\n", b->b_topic, err);
        apg_pull_consumer_destroy(c);
        return 1;
    }
    int64_t *offs = calloc(n, sizeof(int64_t));
    for (size_t i = 0; i < n; i++)
        if (!b->b_from_start &&
            apg_pull_consumer_max_offset(c, &mqs[i], &offs[i], err, sizeof(err)) != APG_OK)
            offs[i] = 0;
    printf("bench consumer: topic %s, %zu queues, %d s\n", b->b_topic, n, b->b_secs);
    struct hist *h = calloc(1, sizeof(*h));
    uint64_t t0 = now_us(), got = 0, bytes = 0, errors = 0, last = 0, next_print = t0 + 1000000;
    struct timespec rt;
    while (now_us() - t0 < (uint64_t)b->b_secs * 1000000) {
        for (size_t i = 0; i < n; i++) {
            apg_pull_result_t res;
            /* Long-poll only on the last queue of a round that found nothing. */
            apg_err_t e = apg_pull_consumer_pull(c, &mqs[i], "*", offs[i], 32,
                                                 i + 1 == n && got == last ? 1000 : 0, &res, err,
                                                 sizeof(err));
            if (e != APG_OK) {
                errors++;
                continue;
            }
            clock_gettime(CLOCK_REALTIME, &rt);
            int64_t wall = (int64_t)rt.tv_sec * 1000 + rt.tv_nsec / 1000000;
            for (size_t k = 0; k < res.pr_count; k++) {
                size_t bl;
                apg_message_body(res.pr_msgs[k], &bl);
                bytes += bl;
                int64_t lat = wall - apg_message_born_timestamp(res.pr_msgs[k]);
                hist_add(h, lat > 0 ? (uint64_t)lat * 1000 : 0);
            }
            got += res.pr_count;
            offs[i] = res.pr_next_offset;
            apg_pull_consumer_commit(c, &mqs[i], offs[i]);
            apg_pull_result_clear(&res);
        }
        if (now_us() >= next_print) {
            printf("%8" PRIu64 " msgs/s\n", got - last);
            fflush(stdout);
            last = got;
            next_print += 1000000;
        }
    }
    double secs = (double)(now_us() - t0) / 1e6;
    print_summary("consumed", got, bytes, secs, h, errors);
    printf("(latency = consume time - born time, ms resolution)\n");
    free(h);
    free(offs);
    apg_mq_list_free(mqs);
    apg_pull_consumer_destroy(c);
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: apogee bench producer|consumer -n ADDR -t TOPIC [options]\n"
                 "  -n ADDR     NameServer list host:port;host:port (default 127.0.0.1:9876)\n"
                 "  -t TOPIC    topic (default BenchTopic)\n"
                 "  -g GROUP    producer/consumer group\n"
                 "  -c N        producer threads (default 4)\n"
                 "  -s BYTES    message body size (default 128)\n"
                 "  -d SECS     duration (default 10)\n"
                 "  -m MODE     sync | async | oneway (default sync)\n"
                 "  -b N        send batches of N messages (sync)\n"
                 "  --json      JSON remoting headers instead of binary\n"
                 "  --from-start  consumer: start at offset 0 instead of the end\n");
}

int apg_cli_bench_main(int argc, char **argv)
{
    struct bench *b = calloc(1, sizeof(*b));
    b->b_ns = "127.0.0.1:9876";
    b->b_topic = "BenchTopic";
    b->b_threads = 4;
    b->b_size = 128;
    b->b_secs = 10;
    if (argc < 2 || (strcmp(argv[1], "producer") != 0 && strcmp(argv[1], "consumer") != 0)) {
        usage(argc >= 2 && strcmp(argv[1], "--help") == 0 ? stdout : stderr);
        free(b);
        return argc >= 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    bool consumer = strcmp(argv[1], "consumer") == 0;
    static const struct option longs[] = {{"json", no_argument, NULL, 'J'},
                                          {"from-start", no_argument, NULL, 'F'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    optind = 2;
    int o;
    while ((o = getopt_long(argc, argv, "n:t:g:c:s:d:m:b:h", longs, NULL)) != -1) {
        switch (o) {
        case 'n':
            b->b_ns = optarg;
            break;
        case 't':
            b->b_topic = optarg;
            break;
        case 'g':
            b->b_group = optarg;
            break;
        case 'c':
            b->b_threads = atoi(optarg);
            break;
        case 's':
            b->b_size = atoi(optarg);
            break;
        case 'd':
            b->b_secs = atoi(optarg);
            break;
        case 'b':
            b->b_batch = atoi(optarg);
            break;
        case 'm':
            b->b_mode = strcmp(optarg, "async") == 0 ? 1 : strcmp(optarg, "oneway") == 0 ? 2 : 0;
            if (b->b_mode == 0 && strcmp(optarg, "sync") != 0) {
                fprintf(stderr, "bench: mode must be sync, async or oneway\n");
                free(b);
                return 2;
            }
            break;
        case 'J':
            b->b_json = 1;
            break;
        case 'F':
            b->b_from_start = 1;
            break;
        case 'h':
            usage(stdout);
            free(b);
            return 0;
        default:
            usage(stderr);
            free(b);
            return 2;
        }
    }
    if (b->b_threads < 1 || b->b_size < 1 || b->b_secs < 1 || b->b_batch < 0) {
        fprintf(stderr, "bench: -c, -s and -d must be positive\n");
        free(b);
        return 2;
    }
    int rc = consumer ? run_consumer(b) : run_producer(b);
    free(b);
    return rc;
}

/* Push consumer example: subscribe, let the library balance queues and call
 * the listener, shut down cleanly.
 *
 *   push_consumer -n NAMESRV -t TOPIC -g GROUP [-e TAGEXPR | --sql EXPR] [--expect N]
 *                 [--seconds S] [--first] [--orderly] [--broadcast DIR]
 *                 [--reconsume-once] [--threads N] [--instance NAME]
 *                 [--rebalance-ms MS] [--delay-us US] [--trace]
 *                 [--fail-body TEXT] [--quiet] [-c KEY=VALUE]...
 *
 * Prints "RECV <msgId> <topic> <queueId> <queueOffset> <reconsumeTimes> <body>"
 * per delivered message, "QUEUES <n> <broker:id,...>" whenever the assigned
 * queues change, and "DONE received=<n>" after shutdown. Stops on SIGTERM or
 * SIGINT, after --seconds, or once --expect messages arrived. The last line
 * before DONE is "RATE <msgs/s> <ms>" over the span from the first to the
 * last delivered message. --quiet leaves out the RECV lines.
 * --reconsume-once answers RECONSUME_LATER the first time a message is seen.
 * --trace adds "SPAN <queueId> <startUs> <endUs> <body>,..." per listener
 *   call (wall-clock microseconds), to check who processed a queue when.
 * --fail-body declines (SUSPEND_CURRENT_QUEUE_A_MOMENT) every batch holding
 *   a message whose body contains TEXT. -c sets any conf key.
 * --sql subscribes with a SQL92 expression over user properties (the broker
 * needs enablePropertyFilter=true). */
#define _GNU_SOURCE /* memmem */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <apogee/apogee.h>

static atomic_int received;
static volatile sig_atomic_t stop;
static int reconsume_once, delay_us, trace, quiet;
static _Atomic long long first_us, last_us;
static const char *fail_body;
static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static long long wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* --trace: one SPAN line for the call that began at t0. */
static void span(apg_message_t *const *msgs, size_t n, const apg_mq_t *mq, long long t0)
{
    long long t1 = wall_us();
    char bodies[2048];
    size_t off = 0;
    bodies[0] = '\0';
    for (size_t i = 0; i < n && off < sizeof(bodies) - 80; i++) {
        size_t len;
        const char *body = apg_message_body(msgs[i], &len);
        off += (size_t)snprintf(bodies + off, sizeof(bodies) - off, "%s%.*s", i ? "," : "",
                                (int)(len > 64 ? 64 : len), body);
    }
    pthread_mutex_lock(&out_mu);
    printf("SPAN %d %lld %lld %s\n", mq->mq_queue_id, t0, t1, bodies);
    pthread_mutex_unlock(&out_mu);
}

static int on_msgs(apg_message_t *const *msgs, size_t n, const apg_mq_t *mq, void *arg)
{
    (void)arg;
    long long t0 = trace ? wall_us() : 0;
    for (size_t i = 0; fail_body && i < n; i++) {
        size_t len;
        const char *body = apg_message_body(msgs[i], &len);
        if (memmem(body, len, fail_body, strlen(fail_body))) {
            pthread_mutex_lock(&out_mu);
            printf("SUSPEND %s %d\n", apg_message_id(msgs[i]),
                   apg_message_reconsume_times(msgs[i]));
            pthread_mutex_unlock(&out_mu);
            if (trace)
                span(msgs, n, mq, t0);
            return APG_CONSUME_SUSPEND_CURRENT_QUEUE_A_MOMENT;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (reconsume_once && apg_message_reconsume_times(msgs[i]) == 0) {
            pthread_mutex_lock(&out_mu);
            printf("LATER %s\n", apg_message_id(msgs[i]));
            pthread_mutex_unlock(&out_mu);
            return APG_CONSUME_RECONSUME_LATER;
        }
    }
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *body = apg_message_body(msgs[i], &len);
        long long now = wall_us(), zero = 0;
        atomic_compare_exchange_strong(&first_us, &zero, now);
        atomic_store(&last_us, now);
        if (quiet) {
            atomic_fetch_add(&received, 1);
            continue;
        }
        pthread_mutex_lock(&out_mu);
        printf("RECV %s %s %d %lld %d %.*s\n", apg_message_id(msgs[i]), apg_message_topic(msgs[i]),
               apg_message_queue_id(msgs[i]), (long long)apg_message_queue_offset(msgs[i]),
               apg_message_reconsume_times(msgs[i]), (int)(len > 64 ? 64 : len), body);
        pthread_mutex_unlock(&out_mu);
        if (delay_us)
            usleep((useconds_t)delay_us);
        atomic_fetch_add(&received, 1);
    }
    if (trace)
        span(msgs, n, mq, t0);
    return APG_CONSUME_SUCCESS;
}

static int cmp_mq(const void *a, const void *b)
{
    const apg_mq_t *x = a, *y = b;
    int c = strcmp(x->mq_broker, y->mq_broker);
    return c ? c : x->mq_queue_id - y->mq_queue_id;
}

/* Settings by RocketMQ key name; a refused one ends the program. */
static void conf_set(apg_conf_t *conf, const char *key, const char *value)
{
    char err[256];
    if (apg_conf_set(conf, key, value, err, sizeof(err)) != APG_OK) {
        fprintf(stderr, "%s\n", err);
        exit(2);
    }
}

int main(int argc, char **argv)
{
    apg_conf_t *conf = apg_conf_new();
    const char *namesrv = NULL, *group = NULL, *topic = NULL, *expr = "*", *sql = NULL;
    int expect = 0, seconds = 30;
    static const struct option opts[] = {{"namesrv", required_argument, NULL, 'n'},
                                         {"topic", required_argument, NULL, 't'},
                                         {"group", required_argument, NULL, 'g'},
                                         {"expr", required_argument, NULL, 'e'},
                                         {"expect", required_argument, NULL, 'x'},
                                         {"seconds", required_argument, NULL, 's'},
                                         {"first", no_argument, NULL, 'f'},
                                         {"orderly", no_argument, NULL, 'o'},
                                         {"broadcast", required_argument, NULL, 'b'},
                                         {"reconsume-once", no_argument, NULL, 'r'},
                                         {"threads", required_argument, NULL, 'T'},
                                         {"instance", required_argument, NULL, 'i'},
                                         {"rebalance-ms", required_argument, NULL, 'R'},
                                         {"delay-us", required_argument, NULL, 'd'},
                                         {"sql", required_argument, NULL, 'S'},
                                         {"trace", no_argument, NULL, 'X'},
                                         {"fail-body", required_argument, NULL, 'F'},
                                         {"quiet", no_argument, NULL, 'Q'},
                                         {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "n:t:g:e:c:", opts, NULL)) != -1) {
        switch (ch) {
        case 'n':
            conf_set(conf, "namesrvAddr", namesrv = optarg);
            break;
        case 't':
            topic = optarg;
            break;
        case 'g':
            conf_set(conf, "consumerGroup", group = optarg);
            break;
        case 'e':
            expr = optarg;
            break;
        case 'x':
            expect = atoi(optarg);
            break;
        case 's':
            seconds = atoi(optarg);
            break;
        case 'f':
            conf_set(conf, "consumeFromWhere", "CONSUME_FROM_FIRST_OFFSET");
            break;
        case 'o':
            conf_set(conf, "consumeOrderly", "true");
            break;
        case 'b':
            conf_set(conf, "messageModel", "BROADCASTING");
            conf_set(conf, "localOffsetStoreDir", optarg);
            break;
        case 'r':
            reconsume_once = 1;
            break;
        case 'T':
            conf_set(conf, "consumeThreadMin", optarg);
            break;
        case 'i':
            conf_set(conf, "instanceName", optarg);
            break;
        case 'R':
            conf_set(conf, "rebalanceInterval", optarg);
            break;
        case 'd':
            delay_us = atoi(optarg);
            break;
        case 'S':
            sql = optarg;
            break;
        case 'X':
            trace = 1;
            break;
        case 'F':
            fail_body = optarg;
            break;
        case 'Q':
            quiet = 1;
            break;
        case 'c': {
            char key[128];
            const char *eq = strchr(optarg, '=');
            if (eq == NULL || (size_t)(eq - optarg) >= sizeof(key)) {
                fprintf(stderr, "-c wants KEY=VALUE\n");
                return 2;
            }
            snprintf(key, sizeof(key), "%.*s", (int)(eq - optarg), optarg);
            conf_set(conf, key, eq + 1);
            break;
        }
        default:
            return 2;
        }
    }
    if (namesrv == NULL || topic == NULL || group == NULL) {
        fprintf(stderr, "usage: %s -n NAMESRV -t TOPIC -g GROUP [options]\n", argv[0]);
        apg_conf_destroy(conf);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    conf_set(conf, "persistConsumerOffsetInterval", "1000");
    char err[512];
    apg_push_consumer_t *c = apg_push_consumer_new(conf, err, sizeof(err));
    apg_conf_destroy(conf); /* the consumer made its own copy */
    if (c == NULL) {
        printf("ERROR new %s\n", err);
        return 1;
    }
    if ((sql ? apg_push_consumer_subscribe_sql92(c, topic, sql, err, sizeof(err))
             : apg_push_consumer_subscribe(c, topic, expr, err, sizeof(err))) != APG_OK ||
        apg_push_consumer_start(c, on_msgs, NULL, err, sizeof(err)) != APG_OK) {
        printf("ERROR start %s\n", err);
        apg_push_consumer_destroy(c);
        return 1;
    }
    printf("STARTED %s\n", apg_push_consumer_client_id(c));
    char last[4096] = "";
    time_t end = time(NULL) + seconds;
    while (!stop && time(NULL) < end && (expect == 0 || atomic_load(&received) < expect)) {
        apg_mq_t *mqs;
        size_t n;
        if (apg_push_consumer_assigned(c, &mqs, &n) == APG_OK) {
            qsort(mqs, n, sizeof(*mqs), cmp_mq);
            char now[4096];
            size_t off = 0;
            now[0] = '\0';
            for (size_t i = 0; i < n; i++)
                if (strcmp(mqs[i].mq_topic, topic) == 0)
                    off += (size_t)snprintf(now + off, sizeof(now) - off, "%s%s:%d", off ? "," : "",
                                            mqs[i].mq_broker, mqs[i].mq_queue_id);
            if (strcmp(now, last) != 0) {
                size_t cnt = 0;
                for (size_t i = 0; i < n; i++)
                    cnt += strcmp(mqs[i].mq_topic, topic) == 0;
                printf("QUEUES %zu %s\n", cnt, now);
                snprintf(last, sizeof(last), "%s", now);
            }
            apg_mq_list_free(mqs);
        }
        usleep(100000);
    }
    apg_push_consumer_destroy(c);
    long long span_us = atomic_load(&last_us) - atomic_load(&first_us);
    int got = atomic_load(&received);
    printf("RATE %.0f %lld\n", span_us > 0 ? (got - 1) * 1e6 / (double)span_us : 0.0,
           span_us / 1000);
    printf("DONE received=%d\n", got);
    return 0;
}

/* faultload: the load driver and verifier of the fault-injection suite
 * (scripts/faults.sh), on the public C client API only.
 *
 *   faultload produce --ns=ADDR --topic=T --log=FILE [--run=NAME] [--threads=4]
 *                     [--inflight=256] [--size=200] [--messages=N] [--duration=S]
 *   faultload verify  --ns=ADDR --topic=T --log=FILE [--log=FILE...] [--fault-log=FILE]
 *
 * produce: --threads threads share one producer and send asynchronously
 * (--inflight bounds the window) until --messages were acknowledged,
 * --duration seconds passed or SIGTERM/SIGINT arrives. Each body is
 * "<run>-<seq>|" followed by bytes derived from seq, --size bytes in all.
 * Every send the broker acknowledged with SEND_OK is one line of the ack
 * log, written on the client's I/O thread in the order acks arrive:
 *   ACK <queue id> <queue offset> <run>-<seq> <crc32 of the body> <send us> <ack us>
 * (times CLOCK_REALTIME, microseconds). A failed send is only counted.
 * A kill of the broker leaves the driver running: it exits at the limit or
 * on SIGTERM, after the producer is destroyed, so the log is complete.
 *
 * verify: reads every queue of the topic back from its first offset with
 * pulls and checks each acknowledged message of the logs: lost = acked but
 * no message with its id was read, corrupt = read with a body whose crc32
 * differs (and no intact copy was read), moved = intact but not at the
 * queue offset the ack named. Prints
 *   acked=N lost=L corrupt=C moved=M stored=S dup=D [after_fault=K]
 * and exits 1 when L, C or M is not zero (or K, see below), 2 on a usage or
 * connection error. --fault-log names the file the fault shim
 * (faultshim.c) wrote its "FAULT <call> <n> <us>" lines to: after_fault
 * counts acknowledged sends that started after the first injected error;
 * --expect-no-ack-after-fault fails on K > 0.
 *
 * Threads: produce has the caller's threads (senders), the producer's I/O
 * thread (callbacks, the only writer of the log) and a reporting loop in
 * main; verify is single-threaded. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "apogee/apogee.h"

#define MAX_LOGS 64

struct opts {
    const char *o_ns, *o_topic, *o_run, *o_fault_log;
    const char *o_logs[MAX_LOGS];
    int o_nlogs, o_threads, o_inflight, o_size, o_secs;
    uint64_t o_messages;
    bool o_no_ack_after_fault;
};

static uint64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* ---- produce ---- */

static volatile sig_atomic_t stop_flag;
static _Atomic uint64_t n_claimed, n_acked, n_failed;
static FILE *ack_log;
static struct opts *cur_opts;
static char last_err[256];

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

struct send_ctx {
    uint64_t sc_seq;
    uint64_t sc_t0;
    uint32_t sc_crc;
};

static size_t make_body(char *buf, size_t size, const char *run, uint64_t seq)
{
    int n = snprintf(buf, size, "%s-%" PRIu64 "|", run, seq);
    size_t len = (size_t)n < size ? size : (size_t)n + 1;
    uint64_t x = seq * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = (size_t)n; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = (char)('a' + x % 26);
    }
    return len;
}

static void on_ack(apg_err_t e, const apg_send_result_t *r, const char *msg, void *arg)
{
    struct send_ctx *c = arg;
    if (e == APG_OK && r->sr_status == APG_SEND_OK) {
        fprintf(ack_log, "ACK %d %" PRId64 " %s-%" PRIu64 " %08x %" PRIu64 " %" PRIu64 "\n",
                r->sr_mq.mq_queue_id, r->sr_queue_offset, cur_opts->o_run, c->sc_seq, c->sc_crc,
                c->sc_t0, wall_us());
        atomic_fetch_add(&n_acked, 1);
    } else if (atomic_fetch_add(&n_failed, 1) == 0) {
        snprintf(last_err, sizeof(last_err), "%s", msg ? msg : "send status not SEND_OK");
        fprintf(stderr, "faultload: first failure: %s\n", last_err);
    }
    free(c);
}

static bool limit_reached(const struct opts *o, uint64_t t_end)
{
    return stop_flag || (o->o_messages && atomic_load(&n_acked) >= o->o_messages) ||
           wall_us() >= t_end;
}

struct sender {
    pthread_t s_thread;
    apg_producer_t *s_prod;
    uint64_t s_end;
};

static void *sender_main(void *arg)
{
    struct sender *s = arg;
    const struct opts *o = cur_opts;
    char *buf = malloc((size_t)o->o_size + 64);
    char err[256];
    while (buf && !limit_reached(o, s->s_end)) {
        uint64_t seq = atomic_fetch_add(&n_claimed, 1);
        size_t len = make_body(buf, (size_t)o->o_size, o->o_run, seq);
        apg_message_t *m = apg_message_new(o->o_topic, buf, len);
        struct send_ctx *c = malloc(sizeof(*c));
        if (!m || !c) {
            apg_message_free(m);
            free(c);
            break;
        }
        c->sc_seq = seq;
        c->sc_crc = (uint32_t)crc32(0, (const Bytef *)buf, (uInt)len);
        c->sc_t0 = wall_us();
        if (apg_producer_send_async(s->s_prod, m, on_ack, c, err, sizeof(err)) != APG_OK) {
            free(c);
            if (atomic_fetch_add(&n_failed, 1) == 0)
                snprintf(last_err, sizeof(last_err), "%s", err);
            usleep(10000); /* the broker is gone: do not spin */
        }
        apg_message_free(m);
    }
    free(buf);
    return NULL;
}

static apg_conf_t *make_conf(const struct opts *o, const char *group_key, const char *group)
{
    char err[256], inflight[32];
    apg_conf_t *conf = apg_conf_new();
    snprintf(inflight, sizeof(inflight), "%d", o->o_inflight);
    if (!conf || apg_conf_set(conf, "namesrvAddr", o->o_ns, err, sizeof(err)) != APG_OK ||
        apg_conf_set(conf, group_key, group, err, sizeof(err)) != APG_OK ||
        apg_conf_set(conf, "backPressureForAsyncSendNum", inflight, err, sizeof(err)) != APG_OK ||
        apg_conf_set(conf, "sendMsgTimeout", "5000", err, sizeof(err)) != APG_OK) {
        fprintf(stderr, "faultload: conf: %s\n", conf ? err : "out of memory");
        apg_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

static int produce(struct opts *o)
{
    char err[256] = "out of memory";
    ack_log = fopen(o->o_logs[0], "a");
    if (!ack_log) {
        fprintf(stderr, "faultload: %s: %s\n", o->o_logs[0], strerror(errno));
        return 2;
    }
    setvbuf(ack_log, NULL, _IOFBF, 1 << 20);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    apg_conf_t *conf = make_conf(o, "producerGroup", "faultload_producer");
    apg_producer_t *p = conf ? apg_producer_new(conf, err, sizeof(err)) : NULL;
    apg_conf_destroy(conf);
    if (!p) {
        fprintf(stderr, "faultload: producer: %s\n", err);
        return 2;
    }
    uint64_t t0 = wall_us(), t_end = t0 + (uint64_t)o->o_secs * 1000000;
    struct sender *ss = calloc((size_t)o->o_threads, sizeof(*ss));
    for (int i = 0; i < o->o_threads; i++) {
        ss[i].s_prod = p;
        ss[i].s_end = t_end;
        pthread_create(&ss[i].s_thread, NULL, sender_main, &ss[i]);
    }
    fprintf(stderr, "faultload: READY\n");
    uint64_t last = 0;
    while (!limit_reached(o, t_end)) {
        usleep(200000);
        uint64_t a = atomic_load(&n_acked);
        if (a / 10000 != last / 10000)
            fprintf(stderr, "faultload: %" PRIu64 " acked\n", a);
        last = a;
    }
    for (int i = 0; i < o->o_threads; i++)
        pthread_join(ss[i].s_thread, NULL);
    free(ss);
    apg_producer_destroy(p); /* in-flight sends complete (ack or error) first */
    fclose(ack_log);
    double secs = (double)(wall_us() - t0) / 1e6;
    printf("produced run=%s acked=%" PRIu64 " failed=%" PRIu64 " secs=%.1f rate=%.0f/s%s%s\n",
           o->o_run, atomic_load(&n_acked), atomic_load(&n_failed), secs,
           (double)atomic_load(&n_acked) / secs, atomic_load(&n_failed) ? " first_error=" : "",
           atomic_load(&n_failed) ? last_err : "");
    return 0;
}

/* ---- verify ---- */

struct ack {
    char *a_id;
    uint32_t a_crc;
    int a_qid;
    int64_t a_qoff;
    uint64_t a_t0;
    uint8_t a_state; /* 0 unseen, 1 seen corrupt, 2 seen intact elsewhere, 3 intact in place */
};

static struct ack *acks;
static size_t nacks, cap_acks;
static size_t *slots; /* open addressing: index + 1 into acks, 0 empty */
static size_t nslots;

static uint64_t hash_str(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

static struct ack *find_ack(const char *id, size_t n)
{
    for (size_t i = hash_str(id, n) & (nslots - 1);; i = (i + 1) & (nslots - 1)) {
        if (!slots[i])
            return NULL;
        struct ack *a = &acks[slots[i] - 1];
        if (strlen(a->a_id) == n && memcmp(a->a_id, id, n) == 0)
            return a;
    }
}

static int load_log(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "faultload: %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[512], id[256];
    while (fgets(line, sizeof(line), f)) {
        struct ack a = {0};
        unsigned crc;
        /* A line cut short (no newline) was not written completely: skip. */
        if (!strchr(line, '\n') || sscanf(line, "ACK %d %" SCNd64 " %255s %x %" SCNu64, &a.a_qid,
                                          &a.a_qoff, id, &crc, &a.a_t0) != 5)
            continue;
        if (nacks == cap_acks) {
            cap_acks = cap_acks ? cap_acks * 2 : 65536;
            acks = realloc(acks, cap_acks * sizeof(*acks));
        }
        a.a_crc = crc;
        a.a_id = strdup(id);
        acks[nacks++] = a;
    }
    fclose(f);
    return 0;
}

static uint64_t first_fault_us(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[256], call[32];
    uint64_t n, us, best = 0;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "FAULT %31s %" SCNu64 " %" SCNu64, call, &n, &us) == 3 &&
            (!best || us < best))
            best = us;
    if (f)
        fclose(f);
    return best;
}

static int verify(struct opts *o)
{
    char err[256] = "out of memory";
    for (int i = 0; i < o->o_nlogs; i++)
        if (load_log(o->o_logs[i]) != 0)
            return 2;
    for (nslots = 1024; nslots < nacks * 2; nslots *= 2)
        ;
    slots = calloc(nslots, sizeof(*slots));
    for (size_t k = 0; k < nacks; k++) {
        size_t n = strlen(acks[k].a_id);
        if (find_ack(acks[k].a_id, n))
            continue; /* the same id twice in the logs: keep the first */
        size_t i = hash_str(acks[k].a_id, n) & (nslots - 1);
        while (slots[i])
            i = (i + 1) & (nslots - 1);
        slots[i] = k + 1;
    }
    apg_conf_t *conf = make_conf(o, "consumerGroup", "faultload_verify");
    apg_pull_consumer_t *c = conf ? apg_pull_consumer_new(conf, err, sizeof(err)) : NULL;
    apg_conf_destroy(conf);
    if (!c) {
        fprintf(stderr, "faultload: consumer: %s\n", err);
        return 2;
    }
    apg_mq_t *mqs = NULL;
    size_t nmq = 0;
    apg_err_t e = APG_OK;
    for (int tries = 0; tries < 100; tries++) { /* the route appears after registration */
        e = apg_pull_consumer_queues(c, o->o_topic, &mqs, &nmq, err, sizeof(err));
        if (e == APG_OK && nmq > 0)
            break;
        usleep(100000);
    }
    if (e != APG_OK || nmq == 0) {
        /* The broker does not know the topic (its table did not survive):
         * nothing can be read back, every acknowledged message is lost. */
        fprintf(stderr, "faultload: no queues for %s: %s\n", o->o_topic, err);
        nmq = 0;
    }
    uint64_t stored = 0, dup = 0;
    int rc = 0;
    for (size_t q = 0; q < nmq && rc == 0; q++) {
        int64_t off = 0, max = 0;
        if (apg_pull_consumer_min_offset(c, &mqs[q], &off, err, sizeof(err)) != APG_OK ||
            apg_pull_consumer_max_offset(c, &mqs[q], &max, err, sizeof(err)) != APG_OK) {
            fprintf(stderr, "faultload: offsets of queue %d: %s\n", mqs[q].mq_queue_id, err);
            rc = 2;
            break;
        }
        int errors = 0;
        while (off < max) {
            apg_pull_result_t res;
            if (apg_pull_consumer_pull(c, &mqs[q], "*", off, 32, 0, &res, err, sizeof(err)) !=
                APG_OK) {
                if (++errors > 50) {
                    fprintf(stderr, "faultload: pull queue %d at %" PRId64 ": %s\n",
                            mqs[q].mq_queue_id, off, err);
                    rc = 2;
                    break;
                }
                usleep(100000);
                continue;
            }
            for (size_t i = 0; i < res.pr_count; i++) {
                size_t len;
                const char *body = apg_message_body(res.pr_msgs[i], &len);
                stored++;
                const char *bar = len ? memchr(body, '|', len < 200 ? len : 200) : NULL;
                struct ack *a = bar ? find_ack(body, (size_t)(bar - body)) : NULL;
                if (!a)
                    continue;
                uint32_t crc = (uint32_t)crc32(0, (const Bytef *)body, (uInt)len);
                uint8_t st = 1;
                if (crc == a->a_crc)
                    st = apg_message_queue_id(res.pr_msgs[i]) == a->a_qid &&
                                 apg_message_queue_offset(res.pr_msgs[i]) == a->a_qoff
                             ? 3
                             : 2;
                if (a->a_state)
                    dup++;
                if (st > a->a_state)
                    a->a_state = st;
            }
            bool advanced = res.pr_next_offset > off;
            if (res.pr_status == APG_PULL_FOUND && advanced)
                off = res.pr_next_offset;
            else if (res.pr_status == APG_PULL_OFFSET_ILLEGAL ||
                     res.pr_status == APG_PULL_NO_NEW_MSG ||
                     res.pr_status == APG_PULL_NO_MATCHED_MSG)
                off = advanced ? res.pr_next_offset : max;
            else
                off++;
            apg_pull_result_clear(&res);
        }
    }
    apg_mq_list_free(mqs);
    apg_pull_consumer_destroy(c);
    if (rc)
        return rc;
    uint64_t lost = 0, corrupt = 0, moved = 0, after = 0, distinct = 0;
    uint64_t tf = o->o_fault_log ? first_fault_us(o->o_fault_log) : 0;
    for (size_t i = 0; i < nslots; i++) {
        if (!slots[i])
            continue;
        struct ack *a = &acks[slots[i] - 1];
        distinct++;
        if (a->a_state == 0)
            lost++;
        else if (a->a_state == 1)
            corrupt++;
        else if (a->a_state == 2)
            moved++;
        if (tf && a->a_t0 > tf)
            after++;
        if (a->a_state < 3 && lost + corrupt + moved <= 5)
            fprintf(stderr, "faultload: %s acked at queue %d offset %" PRId64 ": %s\n", a->a_id,
                    a->a_qid, a->a_qoff,
                    a->a_state == 0   ? "not found"
                    : a->a_state == 1 ? "corrupt"
                                      : "elsewhere");
    }
    printf("acked=%" PRIu64 " lost=%" PRIu64 " corrupt=%" PRIu64 " moved=%" PRIu64
           " stored=%" PRIu64 " dup=%" PRIu64,
           distinct, lost, corrupt, moved, stored, dup);
    if (o->o_fault_log)
        printf(" after_fault=%" PRIu64 "%s", after, tf ? "" : " (no fault was injected)");
    printf("\n");
    if (lost || corrupt || moved)
        return 1;
    if (o->o_no_ack_after_fault && (after || !tf))
        return 1;
    return 0;
}

static const char *arg_val(const char *a, const char *name)
{
    size_t n = strlen(name);
    return strncmp(a, name, n) == 0 && a[n] == '=' ? a + n + 1 : NULL;
}

int main(int argc, char **argv)
{
    struct opts o = {
        .o_run = "r", .o_threads = 4, .o_inflight = 256, .o_size = 200, .o_secs = 3600};
    if (argc < 2 || (strcmp(argv[1], "produce") != 0 && strcmp(argv[1], "verify") != 0)) {
        fprintf(stderr, "usage: faultload produce|verify --ns=ADDR --topic=T --log=FILE ...\n");
        return 2;
    }
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v;
        if ((v = arg_val(a, "--ns")))
            o.o_ns = v;
        else if ((v = arg_val(a, "--topic")))
            o.o_topic = v;
        else if ((v = arg_val(a, "--log")) && o.o_nlogs < MAX_LOGS)
            o.o_logs[o.o_nlogs++] = v;
        else if ((v = arg_val(a, "--run")))
            o.o_run = v;
        else if ((v = arg_val(a, "--fault-log")))
            o.o_fault_log = v;
        else if ((v = arg_val(a, "--threads")))
            o.o_threads = atoi(v);
        else if ((v = arg_val(a, "--inflight")))
            o.o_inflight = atoi(v);
        else if ((v = arg_val(a, "--size")))
            o.o_size = atoi(v);
        else if ((v = arg_val(a, "--duration")))
            o.o_secs = atoi(v);
        else if ((v = arg_val(a, "--messages")))
            o.o_messages = strtoull(v, NULL, 10);
        else if (strcmp(a, "--expect-no-ack-after-fault") == 0)
            o.o_no_ack_after_fault = true;
        else {
            fprintf(stderr, "faultload: unknown argument %s\n", a);
            return 2;
        }
    }
    if (!o.o_ns || !o.o_topic || o.o_nlogs == 0 || o.o_threads < 1 || o.o_size < 32) {
        fprintf(stderr, "faultload: --ns, --topic and --log are required\n");
        return 2;
    }
    cur_opts = &o;
    apg_log_set_level(APG_LOG_ERROR);
    return strcmp(argv[1], "produce") == 0 ? produce(&o) : verify(&o);
}

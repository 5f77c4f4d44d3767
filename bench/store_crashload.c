/* Crash-test helper for tests/integration/store_crash.test.mjs.
 *
 *   store_crashload load DIR [threads]   append under SYNC_FLUSH from several
 *       threads until killed; print "ACK <qid> <qoff> <id>" for every put the
 *       store acknowledged as durable (one write() per line).
 *   store_crashload verify DIR           open (recover) the store and print
 *       "REC <qid> <qoff> <id> <phys>" for every record served by the consume
 *       queues, then cross-check the queues against a walk of the commit log;
 *       exit 0 and print "VERIFY OK <n>" if they match, else exit 1.
 *
 * Segments are small (1 MiB commit log, 300-entry queue files) so that a run
 * of a second rolls several of them. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "protocol/message.h"
#include "store/store.h"

#define TOPIC "CRASH"
#define NQ 4
#define SEG (1 << 20)

static struct apg_store *g_st;

static void opts(struct apg_store_opts *o, const char *dir)
{
    apg_store_opts_init(o);
    o->so_root_dir = dir;
    o->so_commitlog_file_size = SEG;
    o->so_cq_file_size = 6000;
    o->so_sync_flush = true;
    o->so_flush_interval_ms = 100;
}

static void *loader(void *arg)
{
    long t = (long)arg;
    char body[256], line[128];
    for (long seq = 0;; seq++) {
        int qid = (int)((t + seq) % NQ);
        int bl = snprintf(body, sizeof(body), "%d-%ld-%ld-", getpid(), t, seq);
        size_t pad = (size_t)(seq * 37 % 150); /* vary record sizes */
        memset(body + bl, 'x', pad);
        struct apg_msg_in m;
        memset(&m, 0, sizeof(m));
        m.mi_topic = TOPIC;
        m.mi_topic_len = strlen(TOPIC);
        m.mi_queue_id = qid;
        m.mi_body = (const uint8_t *)body;
        m.mi_body_len = (size_t)bl + pad;
        m.mi_born_host.h_ip[0] = 127;
        m.mi_born_host.h_ip[3] = 1;
        struct apg_put_result r;
        char err[256];
        apg_err_t rc = apg_store_put(g_st, &m, 1, &r, NULL, NULL, err, sizeof(err));
        if (rc) {
            fprintf(stderr, "put failed: %s\n", err);
            continue;
        }
        int n = snprintf(line, sizeof(line), "ACK %d %lld %.*s\n", qid,
                         (long long)r.pr_queue_offset, bl - 1, body);
        if (write(1, line, (size_t)n) != n)
            exit(2);
    }
    return NULL;
}

static int load(const char *dir, int threads)
{
    struct apg_store_opts o;
    opts(&o, dir);
    char err[1024];
    if (apg_store_open(&o, &g_st, err, sizeof(err))) {
        fprintf(stderr, "open: %s\n", err);
        return 1;
    }
    fprintf(stderr, "READY\n");
    pthread_t th[64];
    if (threads > 64)
        threads = 64;
    for (long t = 0; t < threads; t++)
        pthread_create(&th[t], NULL, loader, (void *)t);
    for (int t = 0; t < threads; t++)
        pthread_join(th[t], NULL);
    return 0;
}

struct cqrec {
    int64_t phys;
    int64_t qoff;
    int qid;
};

static int cmp_phys(const void *a, const void *b)
{
    const struct cqrec *x = a, *y = b;
    return x->phys < y->phys ? -1 : x->phys > y->phys;
}

static int verify(const char *dir)
{
    struct apg_store_opts o;
    opts(&o, dir);
    o.so_sync_flush = false;
    char err[1024];
    if (apg_store_open(&o, &g_st, err, sizeof(err))) {
        fprintf(stderr, "open: %s\n", err);
        printf("VERIFY OPEN FAILED: %s\n", err);
        return 1;
    }
    size_t n = 0, cap = 1024;
    struct cqrec *recs = malloc(cap * sizeof(*recs));
    int bad = 0;
    for (int q = 0; q < NQ; q++) {
        int64_t off = apg_store_min_offset(g_st, TOPIC, strlen(TOPIC), q);
        for (;;) {
            struct apg_buf b = APG_BUF_INIT;
            struct apg_get_result r;
            apg_store_get(g_st, TOPIC, strlen(TOPIC), q, off, 256, 1 << 20, NULL, NULL, &b, &r);
            if (r.gr_status != APG_GET_FOUND) {
                apg_buf_free(&b);
                if (off != apg_store_max_offset(g_st, TOPIC, strlen(TOPIC), q)) {
                    printf("QUEUE %d stops at %lld before max %lld (%s)\n", q, (long long)off,
                           (long long)apg_store_max_offset(g_st, TOPIC, strlen(TOPIC), q),
                           apg_get_status_name(r.gr_status));
                    bad++;
                }
                break;
            }
            size_t p = 0;
            for (int k = 0; k < r.gr_count; k++) {
                struct apg_msgrec m;
                if (apg_msgrec_decode(b.b_data + p, b.b_len - p, true, &m, NULL) != APG_MSGREC_OK) {
                    printf("BAD RECORD served at q %d off %lld\n", q, (long long)(off + k));
                    bad++;
                    break;
                }
                if (m.mr_queue_offset != off + k || m.mr_queue_id != q) {
                    printf("MISMATCH q %d off %lld holds record of q %d off %lld\n", q,
                           (long long)(off + k), m.mr_queue_id, (long long)m.mr_queue_offset);
                    bad++;
                }
                const char *body = (const char *)m.mr_body;
                size_t idl = 0;
                int dashes = 0;
                while (idl < m.mr_body_len && dashes < 3) {
                    if (body[idl] == '-')
                        dashes++;
                    idl++;
                }
                printf("REC %d %lld %.*s %lld\n", q, (long long)m.mr_queue_offset, (int)idl - 1,
                       body, (long long)m.mr_phys_offset);
                if (n == cap) {
                    cap *= 2;
                    recs = realloc(recs, cap * sizeof(*recs));
                }
                recs[n].phys = m.mr_phys_offset;
                recs[n].qoff = m.mr_queue_offset;
                recs[n].qid = q;
                n++;
                p += m.mr_total_size;
            }
            off = r.gr_next_begin_offset;
            apg_buf_free(&b);
        }
    }
    /* Walk the commit log record by record: every record must be exactly the
     * one the queues point at, in order. */
    qsort(recs, n, sizeof(*recs), cmp_phys);
    struct apg_store_stats ss;
    apg_store_stats(g_st, &ss);
    int64_t pos = ss.ss_min_phys_offset;
    size_t i = 0;
    while (pos < ss.ss_max_phys_offset) {
        struct apg_buf b = APG_BUF_INIT;
        if (apg_store_read_at(g_st, pos, &b) != APG_OK) {
            apg_buf_free(&b);
            int64_t next = (pos / SEG + 1) * (int64_t)SEG; /* blank filler: next segment */
            pos = next;
            continue;
        }
        struct apg_msgrec m;
        apg_msgrec_decode(b.b_data, b.b_len, false, &m, NULL);
        if (i >= n || recs[i].phys != pos || recs[i].qoff != m.mr_queue_offset ||
            recs[i].qid != m.mr_queue_id) {
            printf("CL record at %lld (q %d off %lld) not indexed as such\n", (long long)pos,
                   m.mr_queue_id, (long long)m.mr_queue_offset);
            bad++;
            if (i < n && recs[i].phys <= pos)
                i++;
        } else {
            i++;
        }
        pos += m.mr_total_size;
        apg_buf_free(&b);
    }
    if (i != n) {
        printf("%zu queue entries point past the commit log walk\n", n - i);
        bad++;
    }
    apg_store_close(g_st);
    free(recs);
    if (bad) {
        printf("VERIFY FAILED %d\n", bad);
        return 1;
    }
    printf("VERIFY OK %zu\n", n);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "load") == 0)
        return load(argv[2], argc > 3 ? atoi(argv[3]) : 8);
    if (argc >= 3 && strcmp(argv[1], "verify") == 0)
        return verify(argv[2]);
    fprintf(stderr, "usage: %s load DIR [threads] | verify DIR\n", argv[0]);
    return 2;
}

/* Helpers shared by the store unit tests (header-only, test code). */
#ifndef APG_TEST_STORE_UTIL_H
#define APG_TEST_STORE_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/hash.h"
#include "protocol/message.h"
#include "store/store.h"

static inline char *tu_tmpdir(void)
{
    char tmpl[] = "/tmp/apg_store_test_XXXXXX";
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

static inline void tu_rmrf(const char *d)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d);
    if (system(cmd) != 0)
        fprintf(stderr, "rm -rf %s failed\n", d);
}

static inline void tu_opts(struct apg_store_opts *o, const char *dir)
{
    apg_store_opts_init(o);
    o->so_root_dir = dir;
    o->so_commitlog_file_size = 65536;
    o->so_cq_file_size = 2000;
    o->so_no_preallocate = true;
    o->so_flush_interval_ms = 50;
}

/* A message with body "msg-<i>" and TAGS=tag<i%2>. */
struct tu_msg {
    struct apg_msg_in m;
    char body[64];
    char props[64];
};

static inline void tu_msg_make(struct tu_msg *t, const char *topic, int qid, int i)
{
    memset(t, 0, sizeof(*t));
    int bl = snprintf(t->body, sizeof(t->body), "msg-%d", i);
    char tag[8];
    snprintf(tag, sizeof(tag), "tag%d", i % 2);
    int pl = snprintf(t->props, sizeof(t->props), "TAGS%c%s%cKEYS%ck%d%c", 1, tag, 2, 1, i, 2);
    t->m.mi_topic = topic;
    t->m.mi_topic_len = strlen(topic);
    t->m.mi_queue_id = qid;
    t->m.mi_born_ts = 1700000000000LL + i;
    t->m.mi_born_host.h_ip[0] = 10;
    t->m.mi_born_host.h_ip[3] = 7;
    t->m.mi_born_host.h_port = 5555;
    t->m.mi_body = (const uint8_t *)t->body;
    t->m.mi_body_len = (size_t)bl;
    t->m.mi_props = t->props;
    t->m.mi_props_len = (size_t)pl;
    t->m.mi_tags_code = apg_java_hash(tag, strlen(tag));
}

static inline apg_err_t tu_put(struct apg_store *st, const char *topic, int qid, int i,
                               struct apg_put_result *res)
{
    struct tu_msg t;
    struct apg_put_result r;
    tu_msg_make(&t, topic, qid, i);
    char err[256];
    apg_err_t rc = apg_store_put(st, &t.m, 1, res ? res : &r, NULL, NULL, err, sizeof(err));
    if (rc)
        fprintf(stderr, "put: %s\n", err);
    return rc;
}

/* Reads the whole queue; returns the number of records and checks that record
 * k has body "msg-<first_i + k>" and queue offset = its position. */
static inline int tu_count(struct apg_store *st, const char *topic, int qid, int first_i)
{
    int n = 0;
    int64_t off = apg_store_min_offset(st, topic, strlen(topic), qid);
    for (;;) {
        struct apg_buf b = APG_BUF_INIT;
        struct apg_get_result r;
        if (apg_store_get(st, topic, strlen(topic), qid, off, 32, 1 << 20, NULL, NULL, &b, &r))
            return -1;
        if (r.gr_status != APG_GET_FOUND) {
            apg_buf_free(&b);
            break;
        }
        size_t p = 0;
        for (int k = 0; k < r.gr_count; k++) {
            struct apg_msgrec m;
            if (apg_msgrec_decode(b.b_data + p, b.b_len - p, true, &m, NULL) != APG_MSGREC_OK)
                return -2;
            char want[64];
            snprintf(want, sizeof(want), "msg-%d", first_i + n);
            if (m.mr_body_len != strlen(want) || memcmp(m.mr_body, want, m.mr_body_len) ||
                m.mr_queue_offset != off + k) {
                fprintf(stderr, "record %d: got '%.*s' at qoff %lld, want %s\n", n,
                        (int)m.mr_body_len, m.mr_body, (long long)m.mr_queue_offset, want);
                return -3;
            }
            p += m.mr_total_size;
            n++;
        }
        off = r.gr_next_begin_offset;
        apg_buf_free(&b);
    }
    return n;
}

#endif

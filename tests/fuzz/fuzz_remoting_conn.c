/* libFuzzer harness for the pure remoting connection state
 * (src/protocol/remoting_conn.c).
 *
 * The first byte picks a part:
 *   even: the rest is a byte stream that arrives in reads whose sizes come
 *         from apg_rconn_read_want and, to cut frames at every place, from
 *         the input itself. Frames are cut with apg_frame_peek and decoded
 *         into one reused apg_rconn_decoder, as the net loops and the client
 *         do. The same bytes fed in one piece must give the same sequence
 *         of frames (count, codes, opaques) as fed in pieces.
 *   odd:  the rest is a program over the request table: add, take (by the
 *         right or the wrong connection), find, expire and take_conn, each
 *         checked against a plain array model (which entries are linked,
 *         the count, deadline order of what expires and of what a closed
 *         connection gives back).
 * Any disagreement traps. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/remoting_conn.h"

#define MAX_FRAME (1u << 20)
#define MAX_SEEN 256
#define NREQ 64

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

struct seen {
    size_t n;
    int32_t code[MAX_SEEN], opaque[MAX_SEEN];
    bool bad; /* stopped at a malformed frame */
};

/* Feeds data to a connection in reads of the sizes cuts[] gives (cycled;
 * 0 = what apg_rconn_read_want asks for) and records every frame. */
static void stream(const uint8_t *data, size_t len, const uint8_t *cuts, size_t ncuts,
                   struct seen *s)
{
    struct apg_rconn_decoder d = APG_RCONN_DECODER_INIT;
    uint8_t *in = NULL;
    size_t have = 0, pos = 0, k = 0;
    char err[256];
    memset(s, 0, sizeof(*s));
    while (pos < len && !s->bad) {
        size_t want = apg_rconn_read_want(in, have, MAX_FRAME, 4096);
        CHECK(want > 0);
        size_t n = ncuts && cuts[k % ncuts] ? cuts[k % ncuts] : want;
        k++;
        if (n > want)
            n = want;
        if (n > len - pos)
            n = len - pos;
        uint8_t *grown = realloc(in, have + n);
        CHECK(grown != NULL);
        in = grown;
        memcpy(in + have, data + pos, n);
        have += n;
        pos += n;
        for (;;) {
            size_t flen = 0;
            if (apg_frame_peek(in, have, MAX_FRAME, &flen, err, sizeof(err)) != APG_OK) {
                s->bad = true;
                break;
            }
            if (flen == 0 || flen > have)
                break;
            const struct apg_rcmd *cmd = NULL;
            if (apg_rconn_decode(&d, in, flen, &cmd, err, sizeof(err)) != APG_OK) {
                s->bad = true;
                break;
            }
            if (s->n < MAX_SEEN) {
                s->code[s->n] = cmd->code;
                s->opaque[s->n] = cmd->opaque;
            }
            s->n++;
            memmove(in, in + flen, have - flen);
            have -= flen;
        }
    }
    free(in);
    apg_rconn_decoder_free(&d);
}

static void fuzz_stream(const uint8_t *data, size_t size)
{
    /* The first up to 8 bytes give read sizes; the rest is the stream. */
    size_t ncuts = size < 8 ? size : 8;
    struct seen whole, pieces;
    stream(data + ncuts, size - ncuts, NULL, 0, &whole);
    stream(data + ncuts, size - ncuts, data, ncuts, &pieces);
    CHECK(whole.n == pieces.n);
    CHECK(whole.bad == pieces.bad);
    for (size_t i = 0; i < whole.n && i < MAX_SEEN; i++) {
        CHECK(whole.code[i] == pieces.code[i]);
        CHECK(whole.opaque[i] == pieces.opaque[i]);
    }
}

/* The model: entry i is linked or not; opaque i + 1 and connection i % 3. */
static void fuzz_table(const uint8_t *data, size_t size)
{
    static const char conns[3];
    struct apg_rconn_reqs rs;
    struct apg_rconn_req rq[NREQ];
    bool linked[NREQ] = {false};
    size_t count = 0;
    CHECK(apg_rconn_reqs_init(&rs, 8) == APG_OK);
    for (size_t p = 0; p + 1 < size; p += 2) {
        uint8_t op = data[p] % 5, arg = data[p + 1];
        int i = arg % NREQ;
        switch (op) {
        case 0: /* add, deadline from the byte */
            if (!linked[i]) {
                memset(&rq[i], 0, sizeof(rq[i]));
                rq[i].rr_opaque = i + 1;
                rq[i].rr_deadline = arg;
                rq[i].rr_conn = &conns[i % 3];
                apg_rconn_reqs_add(&rs, &rq[i]);
                linked[i] = true;
                count++;
            }
            break;
        case 1: { /* a response on the right connection, or on the next one */
            const void *on = &conns[(i + (arg >> 6 & 1)) % 3];
            struct apg_rconn_req *got = apg_rconn_reqs_take(&rs, i + 1, on);
            bool match = linked[i] && on == rq[i].rr_conn;
            CHECK((got != NULL) == match);
            if (got) {
                CHECK(got == &rq[i]);
                linked[i] = false;
                count--;
            }
            break;
        }
        case 2: /* find */
            CHECK((apg_rconn_reqs_find(&rs, i + 1) != NULL) == linked[i]);
            break;
        case 3: { /* expire everything due at `arg`, earliest first */
            int64_t last = -1;
            struct apg_rconn_req *e;
            while ((e = apg_rconn_reqs_expired(&rs, arg)) != NULL) {
                int j = (int)(e - rq);
                CHECK(j >= 0 && j < NREQ && linked[j]);
                CHECK(e->rr_deadline <= arg && e->rr_deadline >= last);
                last = e->rr_deadline;
                linked[j] = false;
                count--;
            }
            for (int j = 0; j < NREQ; j++)
                CHECK(!linked[j] || rq[j].rr_deadline > arg);
            break;
        }
        case 4: { /* connection i % 3 closes */
            const void *c = &conns[i % 3];
            int64_t last = -1;
            for (struct apg_rconn_req *e = apg_rconn_reqs_take_conn(&rs, c), *next; e; e = next) {
                next = e->rr_hnext;
                int j = (int)(e - rq);
                CHECK(j >= 0 && j < NREQ && linked[j] && e->rr_conn == c);
                CHECK(e->rr_deadline >= last);
                last = e->rr_deadline;
                linked[j] = false;
                count--;
            }
            for (int j = 0; j < NREQ; j++)
                CHECK(!linked[j] || rq[j].rr_conn != c);
            break;
        }
        }
        CHECK(apg_rconn_reqs_count(&rs) == count);
    }
    for (int j = 0; j < NREQ; j++)
        if (linked[j])
            apg_rconn_reqs_remove(&rs, &rq[j]);
    CHECK(apg_rconn_reqs_count(&rs) == 0);
    apg_rconn_reqs_fini(&rs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] & 1)
        fuzz_table(data + 1, size - 1);
    else
        fuzz_stream(data + 1, size - 1);
    return 0;
}

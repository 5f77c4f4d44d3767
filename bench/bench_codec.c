/* Remoting codec micro-benchmark.
 *
 * Decodes and re-encodes a typical SEND_MESSAGE_V2 request header (the one a
 * 4.9.x Java producer sends, 13 extFields including a properties string)
 * in both serializations, and encodes the matching send response. Reports
 * ns per operation; one warm apg_buf is reused, so encode does not
 * allocate. Usage: bench_codec [iterations] (default 2,000,000). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "protocol/props.h"
#include "protocol/remoting.h"

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void build_request(struct apg_rcmd *c, uint8_t ser)
{
    apg_rcmd_init_request(c, 310, 42, ser);
    apg_rcmd_ext_add(c, "a", "please_rename_unique_group_name");
    apg_rcmd_ext_add(c, "b", "TopicTest");
    apg_rcmd_ext_add(c, "c", "TBW102");
    apg_rcmd_ext_add(c, "d", "4");
    apg_rcmd_ext_add(c, "e", "1");
    apg_rcmd_ext_add(c, "f", "0");
    apg_rcmd_ext_add(c, "g", "1700000000123");
    apg_rcmd_ext_add(c, "h", "0");
    apg_rcmd_ext_add(c, "i",
                     "KEYS\001OrderID188\002UNIQ_KEY\001AC11000100002A9F0000000000000000"
                     "\002WAIT\001true\002TAGS\001TagA\002");
    apg_rcmd_ext_add(c, "j", "0");
    apg_rcmd_ext_add(c, "k", "false");
    apg_rcmd_ext_add(c, "m", "false");
    apg_rcmd_ext_add(c, "n", "broker-a");
}

static int run(uint8_t ser, long iters)
{
    static char scratch[1 << 16];
    char err[256];
    struct apg_rcmd req, dec, resp;
    struct apg_buf frame = APG_BUF_INIT, out = APG_BUF_INIT;
    static const char body[] = "Hello RocketMQ 0";

    build_request(&req, ser);
    if (apg_rcmd_encode(&req, (const uint8_t *)body, sizeof(body) - 1, &frame) != APG_OK)
        return 1;
    size_t hdr_len = apg_be32(frame.b_data + 4) & 0xFFFFFF;

    volatile int32_t sink = 0;
    double t0 = now_ns();
    for (long i = 0; i < iters; i++) {
        if (apg_rcmd_decode(frame.b_data, frame.b_len, &dec, scratch, sizeof(scratch), err,
                            sizeof(err)) != APG_OK) {
            fprintf(stderr, "decode: %s\n", err);
            return 1;
        }
        sink += dec.n_ext;
    }
    double t1 = now_ns();
    for (long i = 0; i < iters; i++) {
        apg_buf_reset(&out);
        if (apg_rcmd_encode_header(&dec, dec.body_len, &out) != APG_OK)
            return 1;
        sink += (int32_t)out.b_len;
    }
    double t2 = now_ns();
    for (long i = 0; i < iters; i++) {
        apg_buf_reset(&out);
        apg_rcmd_init_response(&resp, &dec, 0, NULL);
        apg_rcmd_ext_add(&resp, "msgId", "7F00000100002A9F0000000000000000");
        apg_rcmd_ext_add(&resp, "queueId", "1");
        apg_rcmd_ext_add(&resp, "queueOffset", "17");
        if (apg_rcmd_encode_header(&resp, 0, &out) != APG_OK)
            return 1;
        sink += (int32_t)out.b_len;
    }
    double t3 = now_ns();
    (void)sink;
    printf("%-8s header %4zu B  decode %6.1f ns/op  encode %6.1f ns/op  "
           "send-response encode %6.1f ns/op\n",
           ser == APG_SER_JSON ? "JSON" : "ROCKETMQ", hdr_len, (t1 - t0) / iters, (t2 - t1) / iters,
           (t3 - t2) / iters);
    apg_buf_free(&frame);
    apg_buf_free(&out);
    return 0;
}

/* The property work of one send on the broker: look up the five names the
 * send path reads (one walk each, the worst case), then append UNIQ_KEY and
 * CLUSTER to a warm buffer. No allocation after the first iteration. */
static int run_props(long iters)
{
    static const char props[] = "KEYS\001OrderID188\002UNIQ_KEY\001AC11000100002A9F0000000000000000"
                                "\002WAIT\001true\002TAGS\001TagA\002";
    static const char *const names[] = {"UNIQ_KEY", "TAGS", "WAIT", "CLUSTER", "DELAY"};
    struct apg_buf out = APG_BUF_INIT;
    volatile size_t sink = 0;
    double t0 = now_ns();
    for (long i = 0; i < iters; i++) {
        for (size_t k = 0; k < 5; k++) {
            size_t vl = 0;
            if (apg_props_find(props, sizeof(props) - 1, names[k], &vl))
                sink += vl;
        }
    }
    double t1 = now_ns();
    for (long i = 0; i < iters; i++) {
        apg_buf_reset(&out);
        if (apg_buf_append(&out, props, sizeof(props) - 1) ||
            apg_props_append(&out, "UNIQ_KEY", "AC11000100002A9F0000000000000000") ||
            apg_props_append(&out, "CLUSTER", "DefaultCluster"))
            return 1;
        sink += out.b_len;
    }
    double t2 = now_ns();
    (void)sink;
    printf("props    %4zu B  find x5 %6.1f ns/op  copy + append x2 %6.1f ns/op\n",
           sizeof(props) - 1, (t1 - t0) / iters, (t2 - t1) / iters);
    apg_buf_free(&out);
    return 0;
}

int main(int argc, char **argv)
{
    long iters = argc > 1 ? atol(argv[1]) : 2000000;
    if (iters <= 0)
        iters = 1;
    printf("bench_codec: SEND_MESSAGE_V2 request (13 extFields), %ld iterations\n", iters);
    return run(APG_SER_JSON, iters) || run(APG_SER_ROCKETMQ, iters) || run_props(iters);
}

/* libFuzzer harness for what the broker decodes from a request after the
 * frame itself (fuzz_remoting covers frames): the send header (long and
 * short field names), the property string, a SEND_BATCH_MESSAGE body record
 * by record, the delay-level rewrite of the properties, and a pull's tag expression (the
 * `subscription` field, else the remark) matched against the batch's TAGS. A client must get an
 * error answer, never a crash.
 *
 * The input is one remoting frame whose length word is forced to the input
 * size, so mutations reach the header and the body. Seeds
 * (tests/fuzz/corpus/broker_decode) are real SEND_MESSAGE_V2 and
 * SEND_BATCH_MESSAGE frames. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_int.h"
#include "broker/schedule/schedule.h"
#include "protocol/remoting.h"

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

static char g_scratch[(1u << 20) * 2 + 64];

static void props(const char *p, size_t len)
{
    static const char *names[] = {"TAGS", "KEYS", "UNIQ_KEY", "DELAY", "WAIT", "TRAN_MSG"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        size_t vl = 0;
        const char *v = apg_props_find(p, len, names[i], &vl);
        CHECK(v == NULL || (v >= p && v + vl <= p + len));
    }
    /* The delay rewrite: whatever the client sent, the stored string names
     * the level and the real queue it was given. */
    struct apg_buf b = APG_BUF_INIT;
    if (apg_schedule_props(&b, p, len, 7, "T", 3) == APG_OK) {
        size_t vl = 0;
        const char *v = apg_props_find((const char *)b.b_data, b.b_len, "DELAY", &vl);
        CHECK(v && vl == 1 && v[0] == '7');
        v = apg_props_find((const char *)b.b_data, b.b_len, "REAL_QID", &vl);
        CHECK(v && vl == 1 && v[0] == '3');
    }
    apg_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8 || size > (1u << 20))
        return 0;
    uint8_t *frame = malloc(size);
    memcpy(frame, data, size);
    uint32_t n = (uint32_t)(size - 4);
    frame[0] = (uint8_t)(n >> 24);
    frame[1] = (uint8_t)(n >> 16);
    frame[2] = (uint8_t)(n >> 8);
    frame[3] = (uint8_t)n;
    struct apg_rcmd cmd;
    char err[256];
    if (apg_rcmd_decode(frame, size, &cmd, g_scratch, sizeof(g_scratch), err, sizeof(err)) ==
        APG_OK) {
        for (int shortn = 0; shortn < 2; shortn++) {
            struct apg_send_hdr h;
            if (apg_send_hdr_parse(&cmd, shortn, &h, err, sizeof(err)) == APG_OK) {
                CHECK(h.sh_topic != NULL && h.sh_props != NULL);
                props(h.sh_props, strlen(h.sh_props));
            } else {
                CHECK(err[0] != '\0');
            }
        }
        const char *sub = apg_rcmd_ext_get(&cmd, "subscription");
        if (sub == NULL)
            sub = cmd.remark;
        struct apg_tagexpr tf;
        bool have_tf =
            sub != NULL && apg_tagexpr_parse(sub, strlen(sub), &tf, err, sizeof(err)) == APG_OK;
        size_t pos = 0, count = 0;
        struct apg_batch_item it;
        apg_err_t e;
        while ((e = apg_batch_next(cmd.body, cmd.body_len, &pos, &it, err, sizeof(err))) ==
               APG_OK) {
            CHECK(it.bi_body + it.bi_body_len <= cmd.body + cmd.body_len);
            CHECK(pos <= cmd.body_len);
            props(it.bi_props, it.bi_props_len);
            size_t tl = 0;
            const char *tag = apg_props_find(it.bi_props, it.bi_props_len, "TAGS", &tl);
            if (have_tf)
                (void)apg_tagexpr_match_tag(&tf, tag, tl);
            CHECK(++count <= cmd.body_len);
        }
        CHECK(e == APG_ENOTFOUND || e == APG_EPROTO);
    }
    free(frame);
    return 0;
}

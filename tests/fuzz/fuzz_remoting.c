/* libFuzzer harness for the remoting codec.
 *
 * Each input is used twice:
 *   1. as a byte stream: apg_frame_peek cuts frames off the front and each
 *      whole frame is decoded, exactly as the network layer does;
 *   2. as one frame whose length word is forced to match the input size, so
 *      that mutations reach the JSON and ROCKETMQ header parsers instead of
 *      dying on the length check.
 * Every command that decodes is re-encoded in its own serialization and in
 * the other one (when the binary form can carry it), decoded again and
 * compared field by field; a second encoding must be byte-identical to the
 * first. Any disagreement traps. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "protocol/remoting.h"

#define MAX_FRAME (1u << 20)

static char g_sc1[2 * MAX_FRAME + 64];
static char g_sc2[2 * MAX_FRAME + 64];
static char g_sc3[2 * MAX_FRAME + 64];

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

static bool str_eq(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return strcmp(a, b) == 0;
}

/* Compares b (decoded after re-encoding a as ser) with a, allowing for what
 * the binary form cannot carry: an empty remark reads back as none, and
 * empty keys are dropped. */
static void cmd_check(const struct apg_rcmd *a, const struct apg_rcmd *b, uint8_t ser)
{
    CHECK(a->code == b->code);
    CHECK(a->opaque == b->opaque);
    CHECK(a->flag == b->flag);
    CHECK(a->version == b->version);
    CHECK(a->language == b->language);
    CHECK(b->serialize == ser);
    const char *ra = a->remark;
    if (ser == APG_SER_ROCKETMQ && ra && !ra[0])
        ra = NULL;
    CHECK(str_eq(ra, b->remark));
    uint32_t j = 0;
    for (uint32_t i = 0; i < a->n_ext; i++) {
        if (ser == APG_SER_ROCKETMQ && !a->ext[i].key[0])
            continue;
        CHECK(j < b->n_ext);
        CHECK(str_eq(a->ext[i].key, b->ext[j].key));
        CHECK(str_eq(a->ext[i].val, b->ext[j].val));
        j++;
    }
    CHECK(j == b->n_ext);
    CHECK(a->body_len == b->body_len);
    if (a->body_len)
        CHECK(memcmp(a->body, b->body, a->body_len) == 0);
}

static void reencode(const struct apg_rcmd *a, uint8_t ser)
{
    struct apg_rcmd c = *a, d;
    c.serialize = ser;
    struct apg_buf b1 = APG_BUF_INIT, b2 = APG_BUF_INIT;
    char err[256];
    apg_err_t rc = apg_rcmd_encode(&c, a->body, a->body_len, &b1);
    if (rc == APG_ERANGE || rc == APG_ETOOBIG) {
        /* only legal when the binary form cannot hold a field */
        CHECK(ser == APG_SER_ROCKETMQ || rc == APG_ETOOBIG);
        goto out;
    }
    CHECK(rc == APG_OK);
    CHECK(b1.b_data[4] == ser);
    size_t fl;
    CHECK(apg_frame_peek(b1.b_data, b1.b_len, SIZE_MAX, &fl, err, sizeof(err)) == APG_OK);
    CHECK(fl == b1.b_len);
    rc = apg_rcmd_decode(b1.b_data, b1.b_len, &d, g_sc3, sizeof(g_sc3), err, sizeof(err));
    if (rc != APG_OK)
        __builtin_trap();
    cmd_check(a, &d, ser);
    CHECK(apg_rcmd_encode(&d, d.body, d.body_len, &b2) == APG_OK);
    CHECK(b2.b_len == b1.b_len && memcmp(b1.b_data, b2.b_data, b1.b_len) == 0);
out:
    apg_buf_free(&b1);
    apg_buf_free(&b2);
}

static void one_frame(const uint8_t *f, size_t len, char *sc, size_t sc_len)
{
    struct apg_rcmd c;
    char err[256];
    err[0] = 0;
    apg_err_t rc = apg_rcmd_decode(f, len, &c, sc, sc_len, err, sizeof(err));
    if (rc != APG_OK) {
        CHECK(rc == APG_EPROTO || rc == APG_ENOSPC);
        CHECK(err[0] != 0);
        return;
    }
    reencode(&c, APG_SER_JSON);
    reencode(&c, APG_SER_ROCKETMQ);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    if (size > MAX_FRAME)
        return 0;

    /* 1. stream */
    size_t off = 0;
    for (;;) {
        size_t fl = 0;
        apg_err_t rc = apg_frame_peek(data + off, size - off, MAX_FRAME, &fl, err, sizeof(err));
        if (rc != APG_OK || fl == 0)
            break;
        CHECK(fl >= 8 && fl <= size - off);
        one_frame(data + off, fl, g_sc1, sizeof(g_sc1));
        off += fl;
    }

    /* 2. one frame with a consistent length word */
    if (size >= 8) {
        uint8_t *f = malloc(size);
        memcpy(f, data, size);
        apg_wbe32(f, (uint32_t)(size - 4));
        one_frame(f, size, g_sc2, sizeof(g_sc2));
        free(f);
    }
    return 0;
}

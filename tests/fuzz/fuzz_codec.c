/* libFuzzer harness for the codecs broker and client share (src/protocol):
 * the first input byte picks one, the rest is its input.
 *
 *   0 property string   every pair lies inside the input, has a name and a
 *                       value; the pairs re-encode and read back the same,
 *                       and apg_props_find agrees with the walk (last wins)
 *   1 offset message id decode, then encode gives the input in upper case
 *   2 UNIQ_KEY          the same
 *   3 batch body        every record lies inside the input; re-encoding a
 *                       record gives its bytes (MAGIC and BODYCRC zeroed)
 *   4 tag expression    a parsed expression re-joined with "||" parses to
 *                       the same tags and hash codes; matching never reads
 *                       out of bounds
 *   5 route JSON        a decoded route encodes and decodes to the same
 *
 * Any other selector byte is folded into 0..5. Seeds
 * (tests/fuzz/corpus/codec) are real encodings: a Java producer's property
 * string, broker offset ids, client UNIQ_KEYs, a client batch body,
 * subscription strings and NameServer routes (Java's fastjson and ours). */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "protocol/batch.h"
#include "protocol/msgid.h"
#include "protocol/props.h"
#include "protocol/route_json.h"
#include "protocol/tagexpr.h"

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

static void fuzz_props(const char *p, size_t len)
{
    struct apg_buf again = APG_BUF_INIT;
    size_t pos = 0, n = 0;
    struct apg_prop_kv kv;
    while (apg_props_next(p, len, &pos, &kv)) {
        CHECK(kv.pk_name >= p && kv.pk_val + kv.pk_val_len <= p + len);
        CHECK(kv.pk_name_len > 0 && kv.pk_val_len > 0);
        CHECK(kv.pk_val == kv.pk_name + kv.pk_name_len + 1);
        /* apg_props_find returns the last pair of that name. */
        char name[64];
        if (kv.pk_name_len < sizeof(name) && !memchr(kv.pk_name, 0, kv.pk_name_len)) {
            memcpy(name, kv.pk_name, kv.pk_name_len);
            name[kv.pk_name_len] = 0;
            size_t vl = 0, pos2 = pos;
            const char *v = apg_props_find(p, len, name, &vl);
            const char *last = kv.pk_val;
            size_t last_len = kv.pk_val_len;
            struct apg_prop_kv k2;
            while (apg_props_next(p, len, &pos2, &k2))
                if (k2.pk_name_len == kv.pk_name_len && !memcmp(k2.pk_name, name, kv.pk_name_len)) {
                    last = k2.pk_val;
                    last_len = k2.pk_val_len;
                }
            CHECK(v == last && vl == last_len);
        }
        if (apg_props_pair_ok(kv.pk_name, kv.pk_name_len, kv.pk_val, kv.pk_val_len)) {
            CHECK(apg_buf_reserve(&again, apg_props_pair_size(kv.pk_name_len, kv.pk_val_len)) ==
                  APG_OK);
            char *end = apg_props_write((char *)again.b_data + again.b_len, kv.pk_name,
                                        kv.pk_name_len, kv.pk_val, kv.pk_val_len);
            again.b_len = (size_t)((uint8_t *)end - again.b_data);
            n++;
        }
        CHECK(pos <= len + 1);
    }
    /* The clean pairs read back one for one. */
    pos = 0;
    size_t m = 0;
    while (apg_props_next((const char *)again.b_data, again.b_len, &pos, &kv))
        m++;
    CHECK(m == n);
    apg_buf_free(&again);
}

static void same_upper(const char *in, const char *out, size_t len)
{
    for (size_t i = 0; i < len; i++)
        CHECK(toupper((unsigned char)in[i]) == out[i]);
}

static void fuzz_msgid(const char *p, size_t len)
{
    struct apg_host h;
    int64_t off;
    char out[64];
    if (apg_msgid_decode(p, len, &h, &off) == APG_OK) {
        CHECK(apg_msgid_encode(&h, off, out, sizeof(out)) == len);
        same_upper(p, out, len);
    }
}

static void fuzz_uniq(const char *p, size_t len)
{
    struct apg_uniq_id u;
    char out[APG_UNIQ_ID_MAX_LEN + 1];
    if (apg_msgid_uniq_decode(p, len, &u) == APG_OK) {
        CHECK(apg_msgid_uniq_encode(&u, out, sizeof(out)) == len);
        same_upper(p, out, len);
    }
}

static void fuzz_batch(const uint8_t *p, size_t len)
{
    struct apg_buf again = APG_BUF_INIT;
    size_t pos = 0, at = 0;
    struct apg_batch_item it;
    char err[256];
    apg_err_t e;
    while ((e = apg_batch_next(p, len, &pos, &it, err, sizeof(err))) == APG_OK) {
        CHECK(it.bi_body >= p && it.bi_body + it.bi_body_len <= p + len);
        CHECK((const uint8_t *)it.bi_props + it.bi_props_len == p + pos);
        apg_buf_reset(&again);
        CHECK(apg_batch_append(&again, it.bi_flag, it.bi_body, it.bi_body_len, it.bi_props,
                               it.bi_props_len) == APG_OK);
        CHECK(again.b_len == pos - at);
        CHECK(memcmp(again.b_data, p + at, 4) == 0);
        CHECK(memcmp(again.b_data + 12, p + at + 12, again.b_len - 12) == 0);
        at = pos;
    }
    CHECK(e == APG_ENOTFOUND || (e == APG_EPROTO && err[0] != '\0'));
    apg_buf_free(&again);
}

static void fuzz_tagexpr(const char *p, size_t len)
{
    static struct apg_tagexpr te, te2;
    static char joined[APG_TAGEXPR_TEXT * 2];
    char err[256];
    if (apg_tagexpr_parse(p, len, &te, err, sizeof(err)) != APG_OK) {
        CHECK(err[0] != '\0');
        return;
    }
    (void)apg_tagexpr_match_tag(&te, p, len);
    (void)apg_tagexpr_match_code(&te, (int64_t)len);
    if (te.te_all || te.te_n == 0)
        return;
    size_t n = 0;
    for (uint32_t i = 0; i < te.te_n; i++) {
        const char *t = apg_tagexpr_tag(&te, i);
        CHECK(strlen(t) == te.te_lens[i]);
        CHECK(apg_tagexpr_match_tag(&te, t, te.te_lens[i]));
        CHECK(apg_tagexpr_match_code(&te, te.te_codes[i]));
        memcpy(joined + n, t, te.te_lens[i]);
        n += te.te_lens[i];
        memcpy(joined + n, " || ", 4);
        n += 4;
    }
    if (apg_tagexpr_parse(joined, n, &te2, err, sizeof(err)) != APG_OK)
        CHECK(0);
    if (te.te_n == 1 && te.te_lens[0] == 1 && apg_tagexpr_tag(&te, 0)[0] == '*') {
        CHECK(!te2.te_all); /* "* || " is the tag "*", not everything */
    }
    CHECK(te2.te_n == te.te_n);
    CHECK(memcmp(te2.te_codes, te.te_codes, te.te_n * sizeof(int32_t)) == 0);
}

static void fuzz_route(const uint8_t *p, size_t len)
{
    struct apg_route_data rd, rd2;
    char err[256];
    if (apg_route_data_decode(p, len, &rd, err, sizeof(err)) != APG_OK) {
        CHECK(rd.rd_owned == NULL && rd.rd_json == NULL);
        return;
    }
    json_t *j = apg_route_data_to_json(&rd);
    CHECK(j != NULL);
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    CHECK(text != NULL);
    CHECK(apg_route_data_decode((const uint8_t *)text, strlen(text), &rd2, err, sizeof(err)) ==
          APG_OK);
    CHECK(rd2.rd_nqds == rd.rd_nqds && rd2.rd_nbds == rd.rd_nbds);
    for (size_t i = 0; i < rd.rd_nqds; i++) {
        CHECK(strcmp(rd.rd_qds[i].qd_broker, rd2.rd_qds[i].qd_broker) == 0);
        CHECK(rd.rd_qds[i].qd_read == rd2.rd_qds[i].qd_read);
        CHECK(rd.rd_qds[i].qd_write == rd2.rd_qds[i].qd_write);
        CHECK(rd.rd_qds[i].qd_perm == rd2.rd_qds[i].qd_perm);
    }
    for (size_t i = 0; i < rd.rd_nbds; i++) {
        CHECK(strcmp(rd.rd_bds[i].bd_name, rd2.rd_bds[i].bd_name) == 0);
        /* Duplicate ids in the input collapse to one key. */
        CHECK(rd2.rd_bds[i].bd_naddrs <= rd.rd_bds[i].bd_naddrs);
    }
    free(text);
    apg_route_data_free(&rd);
    apg_route_data_free(&rd2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 16))
        return 0;
    const uint8_t *p = data + 1;
    size_t len = size - 1;
    /* A copy of exactly len bytes, so ASan sees any read past the end. */
    uint8_t *buf = malloc(len ? len : 1);
    memcpy(buf, p, len);
    switch (data[0] % 6) {
    case 0:
        fuzz_props((const char *)buf, len);
        break;
    case 1:
        fuzz_msgid((const char *)buf, len);
        break;
    case 2:
        fuzz_uniq((const char *)buf, len);
        break;
    case 3:
        fuzz_batch(buf, len);
        break;
    case 4:
        fuzz_tagexpr((const char *)buf, len);
        break;
    case 5:
        fuzz_route(buf, len);
        break;
    }
    free(buf);
    return 0;
}

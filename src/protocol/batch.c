/* SEND_BATCH_MESSAGE body codec (see batch.h).
 *
 * A batch body is records back to back, each: TOTALSIZE (int32, the whole
 * record), MAGIC (int32, ignored), BODYCRC (int32, ignored: the broker
 * computes its own), FLAG (int32), body (int32 length + bytes), properties
 * (int16 length + bytes). Everything big-endian; a record without
 * properties still carries the int16, so the smallest record is 22 bytes.
 * The decoder requires the lengths to add up to TOTALSIZE exactly and
 * never reads past len. The encoder writes zero for MAGIC and BODYCRC.
 * Pure code; any thread. */
#include "protocol/batch.h"

#include <string.h>

#define REC_FIXED 20 /* TOTALSIZE MAGIC BODYCRC FLAG BODYLEN */
#define REC_MIN (REC_FIXED + 2)

apg_err_t apg_batch_next(const uint8_t *body, size_t len, size_t *pos, struct apg_batch_item *it,
                         char *err, size_t errlen)
{
    size_t p = *pos;
    if (p >= len)
        return APG_ENOTFOUND;
    if (len - p < REC_MIN)
        return apg_errf(APG_EPROTO, err, errlen, "batch record at byte %zu is truncated", p);
    uint32_t total = apg_be32(body + p);
    if (total < REC_MIN || total > len - p)
        return apg_errf(APG_EPROTO, err, errlen,
                        "batch record at byte %zu has TOTALSIZE %u but %zu bytes remain", p, total,
                        len - p);
    const uint8_t *r = body + p;
    uint32_t blen = apg_be32(r + 16);
    if (blen > total - REC_MIN)
        return apg_errf(APG_EPROTO, err, errlen,
                        "batch record at byte %zu: body length %u exceeds the record", p, blen);
    size_t q = REC_FIXED + (size_t)blen;
    uint16_t plen = apg_be16(r + q);
    if (q + 2 + plen != total)
        return apg_errf(APG_EPROTO, err, errlen,
                        "batch record at byte %zu: properties length %u does not match TOTALSIZE "
                        "%u",
                        p, plen, total);
    it->bi_flag = (int32_t)apg_be32(r + 12);
    it->bi_body = r + REC_FIXED;
    it->bi_body_len = blen;
    it->bi_props = (const char *)(r + q + 2);
    it->bi_props_len = plen;
    *pos = p + total;
    return APG_OK;
}

apg_err_t apg_batch_begin(struct apg_buf *out, int32_t flag, const uint8_t *body, size_t body_len,
                          size_t *mark)
{
    if (body_len > INT32_MAX - REC_MIN - APG_BATCH_PROPS_MAX)
        return APG_ETOOBIG;
    if (apg_buf_reserve(out, REC_MIN + body_len))
        return APG_ENOMEM;
    *mark = out->b_len;
    uint8_t *r = out->b_data + out->b_len;
    memset(r, 0, 12); /* TOTALSIZE (patched by apg_batch_end), MAGIC, BODYCRC */
    apg_wbe32(r + 12, (uint32_t)flag);
    apg_wbe32(r + 16, (uint32_t)body_len);
    if (body_len)
        memcpy(r + REC_FIXED, body, body_len);
    memset(r + REC_FIXED + body_len, 0, 2); /* properties length, patched */
    out->b_len += REC_MIN + body_len;
    return APG_OK;
}

apg_err_t apg_batch_end(struct apg_buf *out, size_t mark)
{
    uint8_t *r = out->b_data + mark;
    size_t plen_at = REC_FIXED + apg_be32(r + 16);
    size_t plen = out->b_len - mark - plen_at - 2;
    if (plen > APG_BATCH_PROPS_MAX) {
        out->b_len = mark;
        return APG_ETOOBIG;
    }
    apg_wbe32(r, (uint32_t)(out->b_len - mark));
    apg_wbe16(r + plen_at, (uint16_t)plen);
    return APG_OK;
}

void apg_batch_abort(struct apg_buf *out, size_t mark)
{
    out->b_len = mark;
}

apg_err_t apg_batch_append(struct apg_buf *out, int32_t flag, const uint8_t *body, size_t body_len,
                           const char *props, size_t props_len)
{
    size_t mark;
    apg_err_t e = apg_batch_begin(out, flag, body, body_len, &mark);
    if (e != APG_OK)
        return e;
    if (props_len > APG_BATCH_PROPS_MAX) {
        apg_batch_abort(out, mark);
        return APG_ETOOBIG;
    }
    if (apg_buf_append(out, props, props_len)) {
        apg_batch_abort(out, mark);
        return APG_ENOMEM;
    }
    return apg_batch_end(out, mark);
}

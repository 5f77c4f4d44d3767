/* Send-path codecs: message properties (name\x01value\x02...), the
 * SEND_MESSAGE / SEND_MESSAGE_V2 request headers, SEND_BATCH_MESSAGE bodies
 * (docs/wire.md §5-6) and broker-generated unique message ids (§8.2).
 *
 * Pure functions over borrowed buffers except apg_msgid_uniq, which keeps a
 * process-wide atomic counter. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "broker/broker_int.h"

const char *apg_props_find(const char *props, size_t len, const char *name, size_t *vlen)
{
    size_t nlen = strlen(name);
    const char *p = props, *end = props + len;
    while (p < end) {
        const char *sep = memchr(p, APG_PROP_SEP, (size_t)(end - p));
        const char *stop = sep ? sep : end;
        const char *nv = memchr(p, APG_PROP_NV_SEP, (size_t)(stop - p));
        if (nv && (size_t)(nv - p) == nlen && memcmp(p, name, nlen) == 0) {
            *vlen = (size_t)(stop - nv - 1);
            return nv + 1;
        }
        p = stop + 1;
    }
    return NULL;
}

apg_err_t apg_props_append(struct apg_buf *b, const char *name, const char *value)
{
    /* On every send (CLUSTER, often UNIQ_KEY): plain copies, no printf. */
    size_t nl = strlen(name), vl = strlen(value);
    if (apg_buf_reserve(b, nl + vl + 2))
        return APG_ENOMEM;
    char *d = (char *)b->b_data + b->b_len;
    memcpy(d, name, nl);
    d[nl] = APG_PROP_NV_SEP;
    memcpy(d + nl + 1, value, vl);
    d[nl + 1 + vl] = APG_PROP_SEP;
    b->b_len += nl + vl + 2;
    return APG_OK;
}

char *apg_fmt_i64(char *out, int64_t v)
{
    char tmp[24];
    int n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    char *d = out;
    if (v < 0)
        *d++ = '-';
    while (n)
        *d++ = tmp[--n];
    *d = '\0';
    return out;
}

apg_err_t apg_batch_next(const uint8_t *body, size_t len, size_t *pos, struct apg_batch_item *it,
                         char *err, size_t errlen)
{
    size_t p = *pos;
    if (p >= len)
        return APG_ENOTFOUND;
    if (len - p < 20)
        return apg_errf(APG_EPROTO, err, errlen, "batch record at byte %zu is truncated", p);
    uint32_t total = apg_be32(body + p);
    if (total < 22 || total > len - p)
        return apg_errf(APG_EPROTO, err, errlen,
                        "batch record at byte %zu has TOTALSIZE %u but %zu bytes remain", p, total,
                        len - p);
    const uint8_t *r = body + p;
    it->bi_flag = (int32_t)apg_be32(r + 12);
    uint32_t blen = apg_be32(r + 16);
    if (blen > total - 22)
        return apg_errf(APG_EPROTO, err, errlen,
                        "batch record at byte %zu: body length %u exceeds "
                        "the record",
                        p, blen);
    it->bi_body = r + 20;
    it->bi_body_len = blen;
    size_t q = 20 + (size_t)blen;
    uint16_t plen = apg_be16(r + q);
    if (q + 2 + plen != total)
        return apg_errf(APG_EPROTO, err, errlen,
                        "batch record at byte %zu: properties length %u does not match TOTALSIZE "
                        "%u",
                        p, plen, total);
    it->bi_props = (const char *)(r + q + 2);
    it->bi_props_len = plen;
    *pos = p + total;
    return APG_OK;
}

void apg_msgid_uniq(const uint8_t ip4[4], char out[33])
{
    static atomic_uint counter;
    static atomic_int seed;
    int s = atomic_load(&seed);
    if (!s) {
        struct timeval tv;
        gettimeofday(&tv, NULL);
        int v = (int)((tv.tv_sec * 1000003u) ^ tv.tv_usec ^ ((unsigned)getpid() << 8)) | 1;
        int zero = 0;
        atomic_compare_exchange_strong(&seed, &zero, v);
        s = atomic_load(&seed);
    }
    struct timeval tv;
    gettimeofday(&tv, NULL);
    time_t now = tv.tv_sec;
    struct tm tm;
    localtime_r(&now, &tm);
    tm.tm_mday = 1;
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    time_t month = mktime(&tm);
    int64_t since = ((int64_t)(now - month)) * 1000 + tv.tv_usec / 1000;
    uint8_t b[16];
    memcpy(b, ip4, 4);
    apg_wbe16(b + 4, (uint16_t)getpid());
    apg_wbe32(b + 6, (uint32_t)s);
    apg_wbe32(b + 10, (uint32_t)since);
    apg_wbe16(b + 14, (uint16_t)atomic_fetch_add(&counter, 1));
    static const char hx[] = "0123456789ABCDEF";
    for (int i = 0; i < 16; i++) {
        out[2 * i] = hx[b[i] >> 4];
        out[2 * i + 1] = hx[b[i] & 15];
    }
    out[32] = 0;
}

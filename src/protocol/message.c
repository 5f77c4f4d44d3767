/* Stored message record codec (see message.h).
 *
 * Layout (docs/wire.md §9.2, V1): TOTALSIZE, MAGIC, BODYCRC, QUEUEID, FLAG,
 * QUEUEOFFSET, PHYSICALOFFSET, SYSFLAG, BORNTIMESTAMP, BORNHOST (8 or 20),
 * STORETIMESTAMP, STOREHOST (8 or 20), RECONSUMETIMES, PREPARED TX OFFSET,
 * body (int32 len + bytes), topic (int8 len + bytes), properties (int16 len +
 * bytes). Everything big-endian.
 *
 * The decoder is the recovery scanner's judge of "is this a record": it checks
 * that every length field fits inside the declared TOTALSIZE and that the
 * fields add up to exactly TOTALSIZE, so random bytes are rejected without
 * reading outside the buffer. Pure functions only. */
#include "protocol/message.h"

#include <string.h>

#include "common/buf.h"
#include "common/hash.h"

static size_t host_len(bool v6)
{
    return v6 ? 20 : 8;
}

size_t apg_msgrec_size(const struct apg_msg_in *m, bool store_host_v6)
{
    return 48 + host_len(m->mi_born_host.h_v6) + 8 + host_len(store_host_v6) + 12 + 4 +
           m->mi_body_len + 1 + m->mi_topic_len + 2 + m->mi_props_len;
}

static uint8_t *put_host(uint8_t *p, const struct apg_host *h)
{
    size_t n = h->h_v6 ? 16 : 4;
    memcpy(p, h->h_ip, n);
    apg_wbe32(p + n, h->h_port);
    return p + n + 4;
}

void apg_msgrec_encode(uint8_t *dst, const struct apg_msg_in *m, int32_t body_crc,
                       int64_t queue_offset, int64_t phys_offset, int64_t store_ts,
                       const struct apg_host *store_host)
{
    size_t total = apg_msgrec_size(m, store_host->h_v6);
    int32_t sysflag = m->mi_sysflag & ~(APG_SYSFLAG_BORNHOST_V6 | APG_SYSFLAG_STOREHOST_V6);
    if (m->mi_born_host.h_v6)
        sysflag |= APG_SYSFLAG_BORNHOST_V6;
    if (store_host->h_v6)
        sysflag |= APG_SYSFLAG_STOREHOST_V6;
    uint8_t *p = dst;
    apg_wbe32(p, (uint32_t)total);
    apg_wbe32(p + 4, APG_MSGREC_MAGIC_V1);
    apg_wbe32(p + 8, (uint32_t)body_crc);
    apg_wbe32(p + 12, (uint32_t)m->mi_queue_id);
    apg_wbe32(p + 16, (uint32_t)m->mi_flag);
    apg_wbe64(p + 20, (uint64_t)queue_offset);
    apg_wbe64(p + 28, (uint64_t)phys_offset);
    apg_wbe32(p + 36, (uint32_t)sysflag);
    apg_wbe64(p + 40, (uint64_t)m->mi_born_ts);
    p = put_host(p + 48, &m->mi_born_host);
    apg_wbe64(p, (uint64_t)store_ts);
    p = put_host(p + 8, store_host);
    apg_wbe32(p, (uint32_t)m->mi_reconsume_times);
    apg_wbe64(p + 4, (uint64_t)m->mi_prepared_tx_offset);
    p += 12;
    apg_wbe32(p, (uint32_t)m->mi_body_len);
    if (m->mi_body_len)
        memcpy(p + 4, m->mi_body, m->mi_body_len);
    p += 4 + m->mi_body_len;
    *p++ = (uint8_t)m->mi_topic_len;
    memcpy(p, m->mi_topic, m->mi_topic_len);
    p += m->mi_topic_len;
    apg_wbe16(p, (uint16_t)m->mi_props_len);
    if (m->mi_props_len)
        memcpy(p + 2, m->mi_props, m->mi_props_len);
}

static const uint8_t *get_host(const uint8_t *p, bool v6, struct apg_host *h)
{
    size_t n = v6 ? 16 : 4;
    h->h_v6 = v6;
    memset(h->h_ip, 0, sizeof(h->h_ip));
    memcpy(h->h_ip, p, n);
    h->h_port = apg_be32(p + n);
    return p + n + 4;
}

static enum apg_msgrec_check bad(const char **why, const char *w)
{
    if (why)
        *why = w;
    return APG_MSGREC_BAD;
}

enum apg_msgrec_check apg_msgrec_decode(const uint8_t *buf, size_t len, bool check_crc,
                                        struct apg_msgrec *r, const char **why)
{
    if (len < 8)
        return len >= 4 && apg_be32(buf) == 0 ? APG_MSGREC_ZERO : bad(why, "truncated header");
    uint32_t total = apg_be32(buf);
    uint32_t magic = apg_be32(buf + 4);
    if (total == 0 && magic == 0)
        return APG_MSGREC_ZERO;
    if (magic == APG_MSGREC_MAGIC_BLANK) {
        if (total < 8 || total > len)
            return bad(why, "blank marker size out of range");
        return APG_MSGREC_BLANK;
    }
    if (magic != APG_MSGREC_MAGIC_V1 && magic != APG_MSGREC_MAGIC_V2)
        return bad(why, "bad magic code");
    if (total > len)
        return bad(why, "record size exceeds segment");
    if (total < 40)
        return bad(why, "record size too small");
    const uint8_t *p = buf, *end = buf + total;
    int32_t sysflag = (int32_t)apg_be32(p + 36);
    bool bv6 = sysflag & APG_SYSFLAG_BORNHOST_V6, sv6 = sysflag & APG_SYSFLAG_STOREHOST_V6;
    size_t fixed = 48 + host_len(bv6) + 8 + host_len(sv6) + 12 + 4;
    if (fixed > total)
        return bad(why, "record size too small for header");
    struct apg_msgrec tmp, *m = r ? r : &tmp;
    m->mr_total_size = total;
    m->mr_magic = magic;
    m->mr_body_crc = (int32_t)apg_be32(p + 8);
    m->mr_queue_id = (int32_t)apg_be32(p + 12);
    m->mr_flag = (int32_t)apg_be32(p + 16);
    m->mr_queue_offset = (int64_t)apg_be64(p + 20);
    m->mr_phys_offset = (int64_t)apg_be64(p + 28);
    m->mr_sysflag = sysflag;
    m->mr_born_ts = (int64_t)apg_be64(p + 40);
    p = get_host(p + 48, bv6, &m->mr_born_host);
    m->mr_store_ts = (int64_t)apg_be64(p);
    p = get_host(p + 8, sv6, &m->mr_store_host);
    m->mr_reconsume_times = (int32_t)apg_be32(p);
    m->mr_prepared_tx_offset = (int64_t)apg_be64(p + 4);
    p += 12;
    uint32_t blen = apg_be32(p);
    p += 4;
    if (blen > (size_t)(end - p))
        return bad(why, "body length exceeds record");
    m->mr_body = p;
    m->mr_body_len = blen;
    p += blen;
    size_t tl_len = magic == APG_MSGREC_MAGIC_V2 ? 2 : 1;
    if ((size_t)(end - p) < tl_len)
        return bad(why, "topic length exceeds record");
    uint32_t tlen = tl_len == 2 ? apg_be16(p) : p[0];
    p += tl_len;
    if (tlen > (size_t)(end - p))
        return bad(why, "topic exceeds record");
    m->mr_topic = (const char *)p;
    m->mr_topic_len = tlen;
    p += tlen;
    if (end - p < 2)
        return bad(why, "properties length exceeds record");
    uint32_t plen = apg_be16(p);
    p += 2;
    if (plen != (size_t)(end - p))
        return bad(why, "field lengths do not add up to the record size");
    m->mr_props = (const char *)p;
    m->mr_props_len = plen;
    if (check_crc && apg_rmq_crc32(m->mr_body, blen) != m->mr_body_crc)
        return bad(why, "body CRC mismatch");
    return APG_MSGREC_OK;
}

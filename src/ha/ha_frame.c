/* The HA protocol's two messages, encoded and decoded without sockets.
 *
 * Master to slave: a frame, [commit-log offset: 8][body size: 4][body], all
 * big-endian; size 0 is a heartbeat that still carries the offset the
 * master will send next. Slave to master: its commit-log end, 8 bytes
 * big-endian, sent back to back; only the last complete one matters (the
 * master reads them as RocketMQ's HAConnection does). docs/wire.md §20.
 *
 * Pure: no socket, clock or global; every malformed input is an error
 * (tests/unit/test_ha.c, tests/fuzz/fuzz_ha.c). */
#include "ha/ha.h"

#include "common/buf.h"

void apg_ha_frame_header(uint8_t out[APG_HA_HEADER_LEN], int64_t off, uint32_t size)
{
    apg_wbe64(out, (uint64_t)off);
    apg_wbe32(out + 8, size);
}

apg_err_t apg_ha_frame_decode(const uint8_t *buf, size_t len, uint32_t max_body,
                              struct apg_ha_frame *f, size_t *used, char *err, size_t errlen)
{
    *used = 0;
    if (len < APG_HA_HEADER_LEN)
        return APG_EAGAIN;
    int64_t off = (int64_t)apg_be64(buf);
    uint32_t size = apg_be32(buf + 8);
    if (off < 0)
        return apg_errf(APG_EINVAL, err, errlen, "frame offset %lld is negative", (long long)off);
    if (size > max_body)
        return apg_errf(APG_EINVAL, err, errlen,
                        "frame body of %u bytes exceeds the %u a slave reads", size, max_body);
    if ((uint64_t)off + size > (uint64_t)INT64_MAX)
        return apg_errf(APG_EINVAL, err, errlen, "frame at offset %lld of %u bytes overflows",
                        (long long)off, size);
    if (len - APG_HA_HEADER_LEN < size)
        return APG_EAGAIN;
    f->hf_offset = off;
    f->hf_size = size;
    f->hf_body = buf + APG_HA_HEADER_LEN;
    *used = APG_HA_HEADER_LEN + (size_t)size;
    return APG_OK;
}

void apg_ha_report_encode(uint8_t out[APG_HA_REPORT_LEN], int64_t off)
{
    apg_wbe64(out, (uint64_t)off);
}

apg_err_t apg_ha_report_decode(const uint8_t *buf, size_t len, int64_t *off, size_t *used)
{
    *used = 0;
    if (len < APG_HA_REPORT_LEN)
        return APG_EAGAIN;
    size_t whole = len - len % APG_HA_REPORT_LEN;
    int64_t v = (int64_t)apg_be64(buf + whole - APG_HA_REPORT_LEN);
    if (v < 0)
        return APG_EINVAL;
    *off = v;
    *used = whole;
    return APG_OK;
}

/* Message id codecs (see msgid.h).
 *
 * Both ids are uppercase hex of big-endian fields. An offset id is the store
 * host's address (4 or 16 bytes), its port (int32) and the record's
 * physical offset (int64): 32 or 56 digits, enough for a broker to find the
 * record again (VIEW_MESSAGE_BY_ID). A UNIQ_KEY is the producer's address
 * (4 or 16 bytes), pid (int16), an instance hash (int32), milliseconds since
 * the start of the month (int32) and a counter (int16): 32 or 56 digits.
 * Decoders accept either case of hex digit and reject every other length or
 * character. Pure code; any thread. */
#include "protocol/msgid.h"

#include <string.h>

#include "common/buf.h"

/* "00" "01" ... "FF": the two digits of each byte value. */
static const char hexpairs[] = "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F"
                               "202122232425262728292A2B2C2D2E2F303132333435363738393A3B3C3D3E3F"
                               "404142434445464748494A4B4C4D4E4F505152535455565758595A5B5C5D5E5F"
                               "606162636465666768696A6B6C6D6E6F707172737475767778797A7B7C7D7E7F"
                               "808182838485868788898A8B8C8D8E8F909192939495969798999A9B9C9D9E9F"
                               "A0A1A2A3A4A5A6A7A8A9AAABACADAEAFB0B1B2B3B4B5B6B7B8B9BABBBCBDBEBF"
                               "C0C1C2C3C4C5C6C7C8C9CACBCCCDCECFD0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF"
                               "E0E1E2E3E4E5E6E7E8E9EAEBECEDEEEFF0F1F2F3F4F5F6F7F8F9FAFBFCFDFEFF";

/* Writes n bytes as 2n hex digits and a NUL; out has room. Every send
 * without a UNIQ_KEY and every stored message's reply runs it. */
static size_t hex_out(const uint8_t *raw, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        memcpy(out + 2 * i, hexpairs + 2 * raw[i], 2);
    out[2 * n] = 0;
    return 2 * n;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Parses 2n hex digits into raw[n]; false on a non-hex character. */
static bool hex_in(const char *s, size_t n, uint8_t *raw)
{
    for (size_t i = 0; i < n; i++) {
        int a = hexval(s[2 * i]), b = hexval(s[2 * i + 1]);
        if (a < 0 || b < 0)
            return false;
        raw[i] = (uint8_t)(a << 4 | b);
    }
    return true;
}

size_t apg_msgid_encode(const struct apg_host *h, int64_t phys_offset, char *out, size_t outlen)
{
    uint8_t raw[28];
    size_t n = h->h_v6 ? 16 : 4;
    memcpy(raw, h->h_ip, n);
    apg_wbe32(raw + n, h->h_port);
    apg_wbe64(raw + n + 4, (uint64_t)phys_offset);
    n += 12;
    if (outlen < 2 * n + 1) {
        if (outlen)
            out[0] = 0;
        return 0;
    }
    return hex_out(raw, n, out);
}

apg_err_t apg_msgid_decode(const char *id, size_t len, struct apg_host *host, int64_t *phys_offset)
{
    if (len != 32 && len != 56)
        return APG_EINVAL;
    uint8_t raw[28];
    if (!hex_in(id, len / 2, raw))
        return APG_EINVAL;
    size_t n = len == 56 ? 16 : 4;
    memset(host, 0, sizeof(*host));
    host->h_v6 = n == 16;
    memcpy(host->h_ip, raw, n);
    host->h_port = apg_be32(raw + n);
    *phys_offset = (int64_t)apg_be64(raw + n + 4);
    return APG_OK;
}

size_t apg_msgid_uniq_encode(const struct apg_uniq_id *u, char *out, size_t outlen)
{
    size_t n = u->ui_ip_len;
    if ((n != 4 && n != 16) || outlen < 2 * (n + 12) + 1) {
        if (outlen)
            out[0] = 0;
        return 0;
    }
    uint8_t raw[28];
    memcpy(raw, u->ui_ip, n);
    apg_wbe16(raw + n, u->ui_pid);
    apg_wbe32(raw + n + 2, (uint32_t)u->ui_hash);
    apg_wbe32(raw + n + 6, (uint32_t)u->ui_time);
    apg_wbe16(raw + n + 10, u->ui_counter);
    return hex_out(raw, n + 12, out);
}

apg_err_t apg_msgid_uniq_decode(const char *id, size_t len, struct apg_uniq_id *u)
{
    if (len != APG_UNIQ_ID_V4_LEN && len != APG_UNIQ_ID_MAX_LEN)
        return APG_EINVAL;
    uint8_t raw[28];
    if (!hex_in(id, len / 2, raw))
        return APG_EINVAL;
    size_t n = len / 2 - 12;
    memset(u, 0, sizeof(*u));
    memcpy(u->ui_ip, raw, n);
    u->ui_ip_len = (uint8_t)n;
    u->ui_pid = apg_be16(raw + n);
    u->ui_hash = (int32_t)apg_be32(raw + n + 2);
    u->ui_time = (int32_t)apg_be32(raw + n + 6);
    u->ui_counter = apg_be16(raw + n + 10);
    return APG_OK;
}

/* SHA-1, HMAC-SHA1 and Base64 (see sha1.h), written from FIPS 180-4,
 * RFC 2104 and RFC 4648. The compression function is the plain 80-round
 * form with a 16-word rolling schedule; at the sizes the ACL signs (a few
 * hundred header bytes and a body) it runs at several hundred MB/s, far
 * below the cost of the request it guards. Verified by the FIPS and RFC
 * 2202 vectors in tests/unit/test_acl.c. */
#include "common/sha1.h"

#include <string.h>

static inline uint32_t rol(uint32_t x, int n)
{
    return (x << n) | (x >> (32 - n));
}

static void compress(uint32_t h[5], const uint8_t *blk)
{
    uint32_t w[16];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)blk[4 * i] << 24 | (uint32_t)blk[4 * i + 1] << 16 |
               (uint32_t)blk[4 * i + 2] << 8 | blk[4 * i + 3];
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int t = 0; t < 80; t++) {
        uint32_t wt;
        if (t < 16) {
            wt = w[t];
        } else {
            wt = rol(w[(t + 13) & 15] ^ w[(t + 8) & 15] ^ w[(t + 2) & 15] ^ w[t & 15], 1);
            w[t & 15] = wt;
        }
        uint32_t f, k;
        if (t < 20) {
            f = (b & c) | (~b & d);
            k = 0x5A827999u;
        } else if (t < 40) {
            f = b ^ c ^ d;
            k = 0x6ED9EBA1u;
        } else if (t < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8F1BBCDCu;
        } else {
            f = b ^ c ^ d;
            k = 0xCA62C1D6u;
        }
        uint32_t tmp = rol(a, 5) + f + e + k + wt;
        e = d;
        d = c;
        c = rol(b, 30);
        b = a;
        a = tmp;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

void apg_sha1_init(struct apg_sha1 *s)
{
    s->s_h[0] = 0x67452301u;
    s->s_h[1] = 0xEFCDAB89u;
    s->s_h[2] = 0x98BADCFEu;
    s->s_h[3] = 0x10325476u;
    s->s_h[4] = 0xC3D2E1F0u;
    s->s_len = 0;
    s->s_fill = 0;
}

void apg_sha1_update(struct apg_sha1 *s, const void *p, size_t n)
{
    const uint8_t *in = p;
    s->s_len += n;
    if (s->s_fill) {
        size_t take = 64 - s->s_fill < n ? 64 - s->s_fill : n;
        memcpy(s->s_buf + s->s_fill, in, take);
        s->s_fill += take;
        in += take;
        n -= take;
        if (s->s_fill < 64)
            return;
        compress(s->s_h, s->s_buf);
        s->s_fill = 0;
    }
    for (; n >= 64; in += 64, n -= 64)
        compress(s->s_h, in);
    if (n) {
        memcpy(s->s_buf, in, n);
        s->s_fill = n;
    }
}

void apg_sha1_final(struct apg_sha1 *s, uint8_t out[APG_SHA1_LEN])
{
    uint64_t bits = s->s_len * 8;
    uint8_t pad = 0x80;
    apg_sha1_update(s, &pad, 1);
    uint8_t zero[64] = {0};
    apg_sha1_update(s, zero, (s->s_fill <= 56 ? 56 : 120) - s->s_fill);
    uint8_t len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (uint8_t)(bits >> (56 - 8 * i));
    apg_sha1_update(s, len, 8);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (uint8_t)(s->s_h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(s->s_h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(s->s_h[i] >> 8);
        out[4 * i + 3] = (uint8_t)s->s_h[i];
    }
}

void apg_hmac_sha1_key(struct apg_hmac_key *k, const void *key, size_t key_len)
{
    uint8_t kb[64] = {0};
    if (key_len > 64) {
        struct apg_sha1 s;
        apg_sha1_init(&s);
        apg_sha1_update(&s, key, key_len);
        apg_sha1_final(&s, kb);
    } else if (key_len) {
        memcpy(kb, key, key_len);
    }
    uint8_t pad[64];
    for (int i = 0; i < 64; i++)
        pad[i] = kb[i] ^ 0x36;
    apg_sha1_init(&k->hk_inner);
    apg_sha1_update(&k->hk_inner, pad, 64);
    for (int i = 0; i < 64; i++)
        pad[i] = kb[i] ^ 0x5c;
    apg_sha1_init(&k->hk_outer);
    apg_sha1_update(&k->hk_outer, pad, 64);
}

void apg_hmac_sha1_final(const struct apg_hmac_key *k, struct apg_sha1 *s,
                         uint8_t out[APG_SHA1_LEN])
{
    uint8_t inner[APG_SHA1_LEN];
    apg_sha1_final(s, inner);
    struct apg_sha1 o = k->hk_outer;
    apg_sha1_update(&o, inner, sizeof(inner));
    apg_sha1_final(&o, out);
}

size_t apg_base64_encode(const uint8_t *p, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = tab[(v >> 6) & 63];
        out[o++] = tab[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = tab[(v >> 6) & 63];
        out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

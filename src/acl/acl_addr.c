/* Address patterns of plain_acl.yml (globalWhiteRemoteAddresses and each
 * account's whiteRemoteAddress), with RocketMQ's forms:
 *
 *   blank                      matches nothing
 *   *  *.*.*.*  *:*:*:*:*:*:*:*  matches every address
 *   192.168.1.{1,2,3}          prefix and a brace list: those addresses
 *   192.168.1.1,192.168.1.2    a comma list of exact addresses (v4 or v6)
 *   192.168.1.*  192.168.*.*   IPv4 with '*' or a range "a-b" in octets 2-4
 *   192.168.1.1-100
 *   10.0.0.1  ::1              one exact address
 *
 * Ranges are matched octet by octet: each of the four octets must fall in
 * its bound ("192.168.*.1-100" needs both). RocketMQ looks only at the first
 * wildcard or range octet and ignores the ones after it; the forms above
 * match the same addresses either way. IPv6 wildcards and ranges are not
 * accepted (a parse error names the entry). Pure. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl/acl_int.h"
#include "common/mem.h"

static void trim(const char **s, size_t *n)
{
    while (*n && isspace((unsigned char)**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n && isspace((unsigned char)(*s)[*n - 1]))
        (*n)--;
}

/* Parses an exact address (n bytes) into 16 bytes, IPv4 as v4-mapped. */
static bool ip_parse(const char *s, size_t n, uint8_t out[16])
{
    char buf[64];
    trim(&s, &n);
    if (n == 0 || n >= sizeof(buf))
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (buf[0] == '[' && buf[n - 1] == ']') {
        buf[n - 1] = '\0';
        memmove(buf, buf + 1, n - 1);
    }
    uint8_t v4[4];
    if (inet_pton(AF_INET, buf, v4) == 1) {
        memset(out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy(out + 12, v4, 4);
        return true;
    }
    return inet_pton(AF_INET6, buf, out) == 1;
}

static apg_err_t list_add(struct apg_acl_addr *a, const char *s, size_t n, size_t *cap, char *err,
                          size_t errlen)
{
    uint8_t ip[16];
    if (!ip_parse(s, n, ip))
        return apg_errf(APG_EINVAL, err, errlen, "'%.*s' is not an IP address", (int)n, s);
    if (apg_grow((void **)&a->aa_list, cap, a->aa_n + 1, 16, 4))
        return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    memcpy(a->aa_list[a->aa_n++], ip, 16);
    return APG_OK;
}

/* One octet of a range pattern: "*", "a-b" or "a". */
static bool octet_parse(const char *s, size_t n, uint8_t *lo, uint8_t *hi)
{
    trim(&s, &n);
    if (n == 1 && s[0] == '*') {
        *lo = 0;
        *hi = 255;
        return true;
    }
    long v[2];
    int k = 0;
    size_t i = 0;
    while (k < 2) {
        size_t st = i;
        long x = 0;
        while (i < n && isdigit((unsigned char)s[i]) && i - st < 4)
            x = x * 10 + (s[i++] - '0');
        if (i == st || x > 255)
            return false;
        v[k++] = x;
        if (i == n)
            break;
        if (s[i] != '-' || k == 2)
            return false;
        i++;
    }
    if (i != n)
        return false;
    if (k == 1)
        v[1] = v[0];
    if (v[0] > v[1])
        return false;
    *lo = (uint8_t)v[0];
    *hi = (uint8_t)v[1];
    return true;
}

apg_err_t apg_acl_addr_parse(const char *str, struct apg_acl_addr *a, char *err, size_t errlen)
{
    memset(a, 0, sizeof(*a));
    const char *s = str ? str : "";
    size_t n = strlen(s);
    trim(&s, &n);
    if (n == 0) {
        a->aa_kind = APG_ACL_ADDR_NONE;
        return APG_OK;
    }
    if ((n == 1 && s[0] == '*') || (n == 7 && memcmp(s, "*.*.*.*", 7) == 0) ||
        (n == 15 && memcmp(s, "*:*:*:*:*:*:*:*", 15) == 0)) {
        a->aa_kind = APG_ACL_ADDR_ALL;
        return APG_OK;
    }
    a->aa_kind = APG_ACL_ADDR_LIST;
    size_t cap = 0;
    apg_err_t e = APG_OK;
    const char *brace = memchr(s, '{', n);
    if (s[n - 1] == '}') {
        /* prefix{a,b,c} */
        if (!brace)
            goto bad;
        size_t plen = (size_t)(brace - s);
        const char *p = brace + 1, *end = s + n - 1;
        while (p <= end && !e) {
            const char *q = memchr(p, ',', (size_t)(end - p));
            if (!q)
                q = end;
            char buf[96];
            const char *item = p;
            size_t ilen = (size_t)(q - p);
            trim(&item, &ilen);
            if (plen + ilen >= sizeof(buf))
                goto bad;
            memcpy(buf, s, plen);
            memcpy(buf + plen, item, ilen);
            e = list_add(a, buf, plen + ilen, &cap, err, errlen);
            p = q + 1;
        }
        if (e)
            goto fail;
        return APG_OK;
    }
    if (brace)
        goto bad;
    if (memchr(s, ',', n)) {
        const char *p = s, *end = s + n;
        while (p <= end && !e) {
            const char *q = memchr(p, ',', (size_t)(end - p));
            if (!q)
                q = end;
            const char *item = p;
            size_t ilen = (size_t)(q - p);
            trim(&item, &ilen);
            if (ilen) /* empty items (a trailing comma) are skipped */
                e = list_add(a, item, ilen, &cap, err, errlen);
            p = q + 1;
        }
        if (e)
            goto fail;
        if (a->aa_n == 0)
            goto bad;
        return APG_OK;
    }
    if (memchr(s, '*', n) || memchr(s, '-', n)) {
        if (memchr(s, ':', n)) {
            apg_acl_addr_free(a);
            return apg_errf(APG_EINVAL, err, errlen,
                            "'%.*s': IPv6 wildcards and ranges are not supported; list the "
                            "addresses",
                            (int)n, s);
        }
        a->aa_kind = APG_ACL_ADDR_RANGE;
        const char *p = s, *end = s + n;
        for (int i = 0; i < 4; i++) {
            const char *q = i < 3 ? memchr(p, '.', (size_t)(end - p)) : end;
            if (!q || !octet_parse(p, (size_t)(q - p), &a->aa_lo[i], &a->aa_hi[i]))
                goto bad;
            p = q + 1;
        }
        if (a->aa_lo[0] != a->aa_hi[0]) /* RocketMQ wants the first octet fixed */
            goto bad;
        return APG_OK;
    }
    e = list_add(a, s, n, &cap, err, errlen);
    if (e)
        goto fail;
    return APG_OK;
bad:
    e = apg_errf(APG_EINVAL, err, errlen,
                 "'%.*s' is not an address pattern (forms: 10.0.0.1, 10.0.0.*, 10.0.*.*, "
                 "10.0.0.1-100, 10.0.0.{1,2}, 10.0.0.1,10.0.0.2, *)",
                 (int)n, s);
fail:
    apg_acl_addr_free(a);
    return e;
}

void apg_acl_addr_free(struct apg_acl_addr *a)
{
    apg_free(a->aa_list);
    a->aa_list = NULL;
    a->aa_n = 0;
}

bool apg_acl_peer_parse(const char *peer, uint8_t out[16])
{
    if (!peer)
        return false;
    /* "ip:port" (IPv6 too, unbracketed, as apg_conn_peer and RocketMQ write
     * it) or "[v6]:port": the port is after the last colon. */
    const char *colon = strrchr(peer, ':');
    size_t n = colon ? (size_t)(colon - peer) : strlen(peer);
    return ip_parse(peer, n, out);
}

static bool is_v4(const uint8_t ip[16])
{
    static const uint8_t pre[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(ip, pre, 12) == 0;
}

bool apg_acl_addr_match(const struct apg_acl_addr *a, const uint8_t ip[16])
{
    switch (a->aa_kind) {
    case APG_ACL_ADDR_ALL:
        return true;
    case APG_ACL_ADDR_LIST:
        for (size_t i = 0; i < a->aa_n; i++)
            if (memcmp(a->aa_list[i], ip, 16) == 0)
                return true;
        return false;
    case APG_ACL_ADDR_RANGE:
        if (!is_v4(ip))
            return false;
        for (int i = 0; i < 4; i++)
            if (ip[12 + i] < a->aa_lo[i] || ip[12 + i] > a->aa_hi[i])
                return false;
        return true;
    default:
        return false;
    }
}

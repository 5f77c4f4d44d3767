/* Receipt handles of pop consumption: RocketMQ's extraInfo text (the POP_CK
 * property a 4.x/5.x remoting client builds, the receipt_handle of a 5.x
 * gRPC message). Nine space-separated fields, the last optional (see
 * pop.h). Pure: the broker only reads popTime, queueId and queueOffset
 * back; the rest is carried for the clients, which parse it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/pop/pop.h"

/* Appends v in decimal at out[*k] (room is checked by the caller). */
static void put_num(char *out, size_t *k, int64_t v)
{
    char t[24];
    int n = 0;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        t[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        out[(*k)++] = '-';
    while (n)
        out[(*k)++] = t[--n];
}

size_t apg_pop_handle_encode(const struct apg_pop_handle *h, char *dst, size_t n)
{
    /* Eight numbers of at most 20 characters, the separators, the type and
     * the broker name fit in out; what fits in dst is copied. */
    char out[8 * 21 + 2 + sizeof(h->ph_broker) + 1];
    size_t bl = strnlen(h->ph_broker, sizeof(h->ph_broker));
    size_t k = 0;
    put_num(out, &k, h->ph_start);
    out[k++] = ' ';
    put_num(out, &k, h->ph_stamp);
    out[k++] = ' ';
    put_num(out, &k, h->ph_invisible);
    out[k++] = ' ';
    put_num(out, &k, h->ph_revive_qid);
    out[k++] = ' ';
    out[k++] = h->ph_type;
    out[k++] = ' ';
    memcpy(out + k, h->ph_broker, bl);
    k += bl;
    out[k++] = ' ';
    put_num(out, &k, h->ph_queue);
    /* No queue offset (-1) is written by leaving it out (the short form),
     * unless a commit-log offset follows. */
    if (h->ph_phys >= 0 || h->ph_offset >= 0) {
        out[k++] = ' ';
        put_num(out, &k, h->ph_offset);
    }
    if (h->ph_phys >= 0) {
        out[k++] = ' ';
        put_num(out, &k, h->ph_phys);
    }
    out[k] = '\0';
    if (k + 1 > n)
        return 0;
    memcpy(dst, out, k + 1);
    return k;
}

/* The next space-separated field of s[*pos..len) into out (NUL-terminated). */
static bool field(const char *s, size_t len, size_t *pos, char *out, size_t n)
{
    size_t i = *pos, k = 0;
    if (i >= len)
        return false;
    while (i < len && s[i] != ' ') {
        if (k + 1 >= n || (unsigned char)s[i] < 0x21 || s[i] == 0x7f)
            return false; /* too long, or a control byte (a NUL would cut the field) */
        out[k++] = s[i++];
    }
    out[k] = '\0';
    *pos = i < len ? i + 1 : i;
    return k > 0;
}

static bool num(const char *t, int64_t *v)
{
    char *end;
    errno = 0;
    long long x = strtoll(t, &end, 10);
    if (errno || *end || end == t)
        return false;
    *v = x;
    return true;
}

apg_err_t apg_pop_handle_decode(const char *s, size_t len, struct apg_pop_handle *h)
{
    char f[9][260];
    size_t pos = 0;
    int n = 0;
    memset(h, 0, sizeof(*h));
    while (n < 9 && field(s, len, &pos, f[n], sizeof(f[n])))
        n++;
    if (n < 7 || pos < len)
        return APG_EINVAL;
    int64_t rq, q;
    if (!num(f[0], &h->ph_start) || !num(f[1], &h->ph_stamp) || !num(f[2], &h->ph_invisible) ||
        !num(f[3], &rq) || strlen(f[4]) != 1 || !num(f[6], &q) || q < 0 || q > INT32_MAX ||
        rq < INT32_MIN || rq > INT32_MAX || strlen(f[5]) >= sizeof(h->ph_broker))
        return APG_EINVAL;
    h->ph_revive_qid = (int32_t)rq;
    h->ph_type = f[4][0];
    memcpy(h->ph_broker, f[5], strlen(f[5]) + 1);
    h->ph_queue = (int32_t)q;
    h->ph_offset = -1;
    h->ph_phys = -1;
    /* Offsets are never negative; -1 ("none") is written by leaving the
     * field out, so a handle always re-encodes to what it was read from. */
    if (n >= 8 && (!num(f[7], &h->ph_offset) || h->ph_offset < 0))
        return APG_EINVAL;
    if (n >= 9 && (!num(f[8], &h->ph_phys) || h->ph_phys < 0))
        return APG_EINVAL;
    return APG_OK;
}

size_t apg_pop_handle_of(const struct apg_pop_result *res, const struct apg_pop_msg *pm,
                         const char *broker, char *out, size_t n)
{
    struct apg_pop_handle h = {
        .ph_start = pm->pm_queue < 256 ? res->pr_start[pm->pm_queue] : pm->pm_offset,
        .ph_stamp = res->pr_stamp,
        .ph_invisible = res->pr_invisible,
        .ph_type = '0',
        .ph_queue = pm->pm_queue,
        .ph_offset = pm->pm_offset,
        .ph_phys = pm->pm_phys,
    };
    size_t bn = strnlen(broker, sizeof h.ph_broker - 1);
    memcpy(h.ph_broker, broker, bn);
    h.ph_broker[bn] = '\0';
    return apg_pop_handle_encode(&h, out, n);
}

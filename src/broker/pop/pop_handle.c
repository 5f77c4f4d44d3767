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

size_t apg_pop_handle_encode(const struct apg_pop_handle *h, char *out, size_t n)
{
    int w;
    if (h->ph_phys >= 0)
        w = snprintf(out, n, "%lld %lld %lld %d %c %s %d %lld %lld", (long long)h->ph_start,
                     (long long)h->ph_stamp, (long long)h->ph_invisible, h->ph_revive_qid,
                     h->ph_type, h->ph_broker, h->ph_queue, (long long)h->ph_offset,
                     (long long)h->ph_phys);
    else
        w = snprintf(out, n, "%lld %lld %lld %d %c %s %d %lld", (long long)h->ph_start,
                     (long long)h->ph_stamp, (long long)h->ph_invisible, h->ph_revive_qid,
                     h->ph_type, h->ph_broker, h->ph_queue, (long long)h->ph_offset);
    return w < 0 || (size_t)w >= n ? 0 : (size_t)w;
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
    if (n >= 8 && !num(f[7], &h->ph_offset))
        return APG_EINVAL;
    if (n >= 9 && !num(f[8], &h->ph_phys))
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
    snprintf(h.ph_broker, sizeof h.ph_broker, "%s", broker);
    return apg_pop_handle_encode(&h, out, n);
}

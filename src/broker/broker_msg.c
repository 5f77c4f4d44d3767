/* Decimal formatting for the reply fields of the send and pull paths
 * (queueId, queueOffset, nextBeginOffset...), without printf: it runs once
 * or more per request on the loop threads.
 *
 * The message codecs the broker uses (property string, message ids, batch
 * body, tag expressions) live in src/protocol, shared with the client. Pure
 * code; any thread. */
#include "broker/broker_int.h"

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

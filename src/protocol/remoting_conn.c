/* Frames in and requests out for one remoting connection, without I/O.
 *
 * Design. A frame is cut from the input with apg_frame_peek and decoded
 * into a decode area whose scratch grows by doubling and is never shrunk,
 * so a warm connection decodes without allocating. Waiting requests sit in
 * a hash by opaque (sequential opaques spread evenly over a power-of-two
 * table) and in a doubly linked list ordered by deadline: the response
 * path finds an entry in O(1), the timeout path looks only at the head, and
 * a request nearly always joins at the tail because deadlines are "now +
 * timeout" with one timeout per caller. The exception is a caller that
 * queues requests and links them later with their original deadlines (the
 * client's I/O thread draining sends queued while it was busy): those are
 * earlier than the tail but in order among themselves, so an entry that
 * does not join at the tail is placed by walking forward from the previous
 * such entry (rs_dfinger) instead of back from the tail. Walking back from
 * the tail made each of them cost the number of requests in flight: with
 * 100,000 async sends in flight the I/O thread stopped reading responses
 * for about 2 s and 4 % of the sends timed out (`apogee bench produce
 * --mode=async --threads=4 --inflight=100000`).
 *
 * Threads: none of its own and no locks; each structure belongs to
 * whoever holds it (see remoting_conn.h). */
#include "protocol/remoting_conn.h"

#include "common/mem.h"

size_t apg_rconn_read_want(const uint8_t *in, size_t len, size_t max_frame, size_t chunk)
{
    size_t want = chunk;
    if (len >= 4) {
        size_t flen = (size_t)apg_be32(in) + 4;
        if (flen <= max_frame + 4 && flen > len && flen - len > want)
            want = flen - len;
    }
    return want;
}

apg_err_t apg_rconn_decode_grow(struct apg_rconn_decoder *d, const uint8_t *frame, size_t len,
                                const struct apg_rcmd **out, char *err, size_t errlen)
{
    size_t hdr_len = len >= 8 ? (apg_be32(frame + 4) & 0xFFFFFFu) : 0;
    size_t need = apg_rcmd_scratch_need(hdr_len);
    void *s = d->rd_scratch;
    if (apg_grow(&s, &d->rd_cap, need, 1, 4096))
        return apg_errf(APG_ENOMEM, err, errlen, "out of memory decoding a frame");
    d->rd_scratch = s;
    apg_err_t e = apg_rcmd_decode(frame, len, &d->rd_cmd, d->rd_scratch, d->rd_cap, err, errlen);
    if (e)
        return e;
    *out = &d->rd_cmd;
    return APG_OK;
}

void apg_rconn_decoder_free(struct apg_rconn_decoder *d)
{
    apg_free(d->rd_scratch);
    d->rd_scratch = NULL;
    d->rd_cap = 0;
}

apg_err_t apg_rconn_reqs_init(struct apg_rconn_reqs *rs, uint32_t n_buckets)
{
    uint32_t n = 1;
    while (n < n_buckets && n < (1u << 30))
        n <<= 1;
    *rs = (struct apg_rconn_reqs){0};
    rs->rs_buckets = apg_calloc(n, sizeof(*rs->rs_buckets));
    if (!rs->rs_buckets)
        return APG_ENOMEM;
    rs->rs_mask = n - 1;
    return APG_OK;
}

void apg_rconn_reqs_fini(struct apg_rconn_reqs *rs)
{
    apg_free(rs->rs_buckets);
    *rs = (struct apg_rconn_reqs){0};
}

static struct apg_rconn_req **bucket(const struct apg_rconn_reqs *rs, int32_t opaque)
{
    return &rs->rs_buckets[(uint32_t)opaque & rs->rs_mask];
}

void apg_rconn_reqs_add(struct apg_rconn_reqs *rs, struct apg_rconn_req *rq)
{
    struct apg_rconn_req **b = bucket(rs, rq->rr_opaque);
    rq->rr_hnext = *b;
    *b = rq;
    rs->rs_count++;
    /* after: the entry rq follows (NULL: rq becomes the head). */
    struct apg_rconn_req *after = rs->rs_dtail;
    if (after && after->rr_deadline > rq->rr_deadline) {
        struct apg_rconn_req *f = rs->rs_dfinger;
        if (f && f->rr_deadline <= rq->rr_deadline) {
            after = f;
            while (after->rr_dnext && after->rr_dnext->rr_deadline <= rq->rr_deadline)
                after = after->rr_dnext;
        } else {
            while (after && after->rr_deadline > rq->rr_deadline)
                after = after->rr_dprev;
        }
        rs->rs_dfinger = rq;
    }
    rq->rr_dprev = after;
    rq->rr_dnext = after ? after->rr_dnext : rs->rs_dhead;
    if (rq->rr_dnext)
        rq->rr_dnext->rr_dprev = rq;
    else
        rs->rs_dtail = rq;
    if (after)
        after->rr_dnext = rq;
    else
        rs->rs_dhead = rq;
}

void apg_rconn_reqs_remove(struct apg_rconn_reqs *rs, struct apg_rconn_req *rq)
{
    struct apg_rconn_req **pp = bucket(rs, rq->rr_opaque);
    while (*pp && *pp != rq)
        pp = &(*pp)->rr_hnext;
    if (*pp)
        *pp = rq->rr_hnext;
    rs->rs_count--;
    if (rs->rs_dfinger == rq)
        rs->rs_dfinger = rq->rr_dprev;
    if (rq->rr_dprev)
        rq->rr_dprev->rr_dnext = rq->rr_dnext;
    else
        rs->rs_dhead = rq->rr_dnext;
    if (rq->rr_dnext)
        rq->rr_dnext->rr_dprev = rq->rr_dprev;
    else
        rs->rs_dtail = rq->rr_dprev;
    rq->rr_hnext = rq->rr_dprev = rq->rr_dnext = NULL;
}

struct apg_rconn_req *apg_rconn_reqs_find(const struct apg_rconn_reqs *rs, int32_t opaque)
{
    for (struct apg_rconn_req *rq = *bucket(rs, opaque); rq; rq = rq->rr_hnext)
        if (rq->rr_opaque == opaque)
            return rq;
    return NULL;
}

struct apg_rconn_req *apg_rconn_reqs_take(struct apg_rconn_reqs *rs, int32_t opaque,
                                          const void *conn)
{
    struct apg_rconn_req *rq = apg_rconn_reqs_find(rs, opaque);
    if (!rq || (conn && rq->rr_conn != conn))
        return NULL;
    apg_rconn_reqs_remove(rs, rq);
    return rq;
}

struct apg_rconn_req *apg_rconn_reqs_expired(struct apg_rconn_reqs *rs, int64_t now)
{
    struct apg_rconn_req *rq = rs->rs_dhead;
    if (!rq || rq->rr_deadline > now)
        return NULL;
    apg_rconn_reqs_remove(rs, rq);
    return rq;
}

struct apg_rconn_req *apg_rconn_reqs_take_conn(struct apg_rconn_reqs *rs, const void *conn)
{
    struct apg_rconn_req *head = NULL, **tail = &head;
    for (struct apg_rconn_req *rq = rs->rs_dhead, *next; rq; rq = next) {
        next = rq->rr_dnext;
        if (rq->rr_conn == conn) {
            apg_rconn_reqs_remove(rs, rq);
            *tail = rq;
            tail = &rq->rr_hnext;
        }
    }
    return head;
}

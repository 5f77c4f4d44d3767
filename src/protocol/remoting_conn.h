/* The pure half of a remoting connection: frames out of a byte stream, a
 * reusable decode area, and the table of requests waiting for a response.
 *
 * Both ends that send remoting requests over a connection of their own (the
 * broker's calls to the NameServer in src/net, the client library in
 * src/client) keep the same state: an input buffer that grows to the
 * largest frame seen, a decode area for the frame at hand, and requests by
 * opaque with a deadline each. This module holds that state and nothing
 * else: no socket, no clock (times are passed in, in the caller's
 * milliseconds), no lock, no thread. The caller owns the locking.
 *
 * Request entries are intrusive: the caller embeds a struct apg_rconn_req
 * in its own request record, allocates and frees it, and uses the table to
 * find, time out and fail them. */
#ifndef APG_PROTOCOL_REMOTING_CONN_H
#define APG_PROTOCOL_REMOTING_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "protocol/remoting.h"

/* ---- frames in ---- */

/* Bytes to reserve after the len buffered bytes at in before the next
 * read: chunk, or more when the frame whose length word is buffered needs
 * more (up to max_frame), so a large frame arrives in one read. */
size_t apg_rconn_read_want(const uint8_t *in, size_t len, size_t max_frame, size_t chunk);

/* A decode area reused for every frame: the command and the scratch its
 * strings live in. Zero-initialised (APG_RCONN_DECODER_INIT) is empty. */
struct apg_rconn_decoder {
    struct apg_rcmd rd_cmd;
    char *rd_scratch;
    size_t rd_cap;
};
#define APG_RCONN_DECODER_INIT                                                                     \
    {                                                                                              \
        .rd_scratch = NULL, .rd_cap = 0                                                            \
    }

/* Decodes one whole frame (as apg_frame_peek measured it) into d, growing
 * the scratch when the header needs more (doubling from 4 KiB; the _grow
 * form is the out-of-line part). Returns
 * APG_OK with *out = &d->rd_cmd, which borrows d and frame until the next
 * call; APG_ENOMEM when the scratch cannot grow; the apg_rcmd_decode error
 * (with err) for a malformed frame. */
apg_err_t apg_rconn_decode_grow(struct apg_rconn_decoder *d, const uint8_t *frame, size_t len,
                                const struct apg_rcmd **out, char *err, size_t errlen);
static inline apg_err_t apg_rconn_decode(struct apg_rconn_decoder *d, const uint8_t *frame,
                                         size_t len, const struct apg_rcmd **out, char *err,
                                         size_t errlen)
{
    /* Inline for the warm case (the scratch is large enough): a frame is
     * decoded with no call besides the decoder's. */
    size_t hdr_len = len >= 8 ? (apg_be32(frame + 4) & 0xFFFFFFu) : 0;
    if (apg_rcmd_scratch_need(hdr_len) > d->rd_cap)
        return apg_rconn_decode_grow(d, frame, len, out, err, errlen);
    apg_err_t e = apg_rcmd_decode(frame, len, &d->rd_cmd, d->rd_scratch, d->rd_cap, err, errlen);
    if (!e)
        *out = &d->rd_cmd;
    return e;
}
void apg_rconn_decoder_free(struct apg_rconn_decoder *d);

/* ---- requests waiting for a response ---- */

struct apg_rconn_req {
    int32_t rr_opaque;
    int64_t rr_deadline;            /* the caller's clock, ms */
    const void *rr_conn;            /* the connection it went out on (a tag, never used) */
    struct apg_rconn_req *rr_hnext; /* hash chain */
    struct apg_rconn_req *rr_dprev, *rr_dnext; /* deadline order */
};

/* By opaque (a hash of rs_mask + 1 buckets) and by deadline. */
struct apg_rconn_reqs {
    struct apg_rconn_req **rs_buckets;
    uint32_t rs_mask;
    size_t rs_count;
    struct apg_rconn_req *rs_dhead, *rs_dtail;
    /* The last entry that joined before the tail, where the next one out of
     * order most likely goes (NULL when none or removed). */
    struct apg_rconn_req *rs_dfinger;
};

/* n_buckets is rounded up to a power of two. APG_ENOMEM. */
apg_err_t apg_rconn_reqs_init(struct apg_rconn_reqs *rs, uint32_t n_buckets);
/* Frees the buckets; entries still linked are the caller's. */
void apg_rconn_reqs_fini(struct apg_rconn_reqs *rs);

/* Links rq (rr_opaque, rr_deadline and rr_conn set by the caller). Opaques
 * must be unique among linked entries. O(1) when deadlines arrive in order,
 * and amortised O(1) when a second stream of earlier deadlines, in order
 * among themselves, is interleaved with them. */
void apg_rconn_reqs_add(struct apg_rconn_reqs *rs, struct apg_rconn_req *rq);
void apg_rconn_reqs_remove(struct apg_rconn_reqs *rs, struct apg_rconn_req *rq);
/* The entry for opaque, still linked; NULL when none. */
struct apg_rconn_req *apg_rconn_reqs_find(const struct apg_rconn_reqs *rs, int32_t opaque);
/* Unlinks and returns the entry for a response with this opaque that came
 * in on conn (any connection when conn is NULL); NULL when there is none
 * (timed out already, or an opaque of another connection). */
struct apg_rconn_req *apg_rconn_reqs_take(struct apg_rconn_reqs *rs, int32_t opaque,
                                          const void *conn);
/* Unlinks and returns the entry with the earliest deadline if that is
 * <= now; NULL otherwise. Call until NULL to collect every timeout. */
struct apg_rconn_req *apg_rconn_reqs_expired(struct apg_rconn_reqs *rs, int64_t now);
/* Unlinks every entry of conn and returns them chained through rr_hnext,
 * earliest deadline first (NULL when none): a closed connection fails
 * them all. */
struct apg_rconn_req *apg_rconn_reqs_take_conn(struct apg_rconn_reqs *rs, const void *conn);

static inline size_t apg_rconn_reqs_count(const struct apg_rconn_reqs *rs)
{
    return rs->rs_count;
}

#endif

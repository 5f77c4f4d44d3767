/* SEND_BATCH_MESSAGE body codec: the records a producer packs into one
 * request, encoded by the client and decoded by the broker. Pure. */
#ifndef APG_PROTOCOL_BATCH_H
#define APG_PROTOCOL_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

/* Largest property string a record can carry (its length is an int16). */
#define APG_BATCH_PROPS_MAX 32767

/* One record of a batch body; pointers borrow the body. */
struct apg_batch_item {
    int32_t bi_flag;
    const uint8_t *bi_body;
    uint32_t bi_body_len;
    const char *bi_props;
    uint16_t bi_props_len;
};

/* Iterates the records: *pos starts at 0. Returns APG_OK with the next
 * record in *it, APG_ENOTFOUND after the last, APG_EPROTO (text in err)
 * for a truncated or inconsistent record. */
apg_err_t apg_batch_next(const uint8_t *body, size_t len, size_t *pos, struct apg_batch_item *it,
                         char *err, size_t errlen);

/* Encoding a record in place: apg_batch_begin writes the fixed fields and
 * the body and returns a mark; the caller appends the property string to
 * out; apg_batch_end patches the two lengths. On error (APG_ENOMEM,
 * APG_ETOOBIG for a body over INT32_MAX or properties over
 * APG_BATCH_PROPS_MAX) out is back at its length before apg_batch_begin. */
apg_err_t apg_batch_begin(struct apg_buf *out, int32_t flag, const uint8_t *body, size_t body_len,
                          size_t *mark);
apg_err_t apg_batch_end(struct apg_buf *out, size_t mark);
/* Drops a record begun at mark (the caller's property encoding failed). */
void apg_batch_abort(struct apg_buf *out, size_t mark);

/* The three steps for a property string already at hand. */
apg_err_t apg_batch_append(struct apg_buf *out, int32_t flag, const uint8_t *body, size_t body_len,
                           const char *props, size_t props_len);

#endif

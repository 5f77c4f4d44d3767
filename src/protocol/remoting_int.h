/* Private pieces shared by remoting.c (frames, ROCKETMQ binary header, ext
 * fields) and remoting_json.c (JSON header parser and writer). Not part of
 * the protocol module's contract; include remoting.h instead. */
#ifndef APG_PROTOCOL_REMOTING_INT_H
#define APG_PROTOCOL_REMOTING_INT_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "protocol/rcmd.h"

/* Parses a JSON header of hdr_len bytes into out (whose defaults the caller
 * has already set). Strings are written to scratch, which the caller has
 * sized with apg_rcmd_scratch_need(hdr_len). Borrows everything. */
apg_err_t apg_rjson_decode(const uint8_t *hdr, size_t hdr_len, struct apg_rcmd *out, char *scratch,
                           size_t scratch_len, char *err, size_t errlen);

/* Appends the JSON header text for cmd to out (no length words). */
apg_err_t apg_rjson_encode(const struct apg_rcmd *cmd, struct apg_buf *out);

#endif

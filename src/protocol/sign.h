/* RocketMQ's ACL request signature (AclClientRPCHook / AclUtils), shared
 * by the broker's check and the C client's signing (docs/wire.md §14):
 *
 *   Signature = Base64(HMAC-SHA1(secretKey, content))
 *   content   = the values of every ext field except Signature, ordered by
 *               key, as UTF-8, then the body bytes
 *
 * Keys are compared bytewise, which equals Java's String order (UTF-16
 * units) for the ASCII keys RocketMQ's headers use. Pure. */
#ifndef APG_PROTOCOL_SIGN_H
#define APG_PROTOCOL_SIGN_H

#include <stdbool.h>
#include <stdint.h>

#include "common/sha1.h"
#include "protocol/rcmd.h"

#define APG_SIGN_ACCESS_KEY "AccessKey"
#define APG_SIGN_SIGNATURE "Signature"
#define APG_SIGN_LEN 32 /* a Signature value (28 characters) and its NUL */

/* The indexes of the ext fields that enter the content, in key order, into
 * idx (room for APG_RCMD_MAX_EXT) and *n. Leaves out Signature, and
 * _UNIQUE_KEY_QUERY when req->version is 4.9.3 or older (5.x brokers do;
 * such clients signed without it). false when a key appears twice. */
bool apg_sign_fields(const struct apg_rcmd *req, uint32_t *idx, uint32_t *n);

/* Base64 HMAC of the content: the fields idx[0..n) of req, then body. */
void apg_sign_mac(const struct apg_hmac_key *key, const struct apg_rcmd *req, const uint32_t *idx,
                  uint32_t n, const void *body, size_t body_len, char out[APG_SIGN_LEN]);

/* Signs a request being built: adds AccessKey (borrowed: must outlive the
 * encode) and Signature (written to sig, which must too) computed over
 * req's ext fields and body. APG_ETOOBIG when the ext table is full,
 * APG_EINVAL when a key repeats. */
int apg_sign_request(struct apg_rcmd *req, const char *access_key, const struct apg_hmac_key *key,
                     const void *body, size_t body_len, char sig[APG_SIGN_LEN]);

#endif

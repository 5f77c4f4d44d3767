/* The ACL request signature (see sign.h). The content is never built: the
 * field values are fed to the HMAC in key order straight from the command,
 * then the body, so signing costs no allocation and no copy. The key order
 * comes from an insertion sort of at most APG_RCMD_MAX_EXT indexes (a
 * request header has a dozen fields). Pure; any thread. */
#include "protocol/sign.h"

#include <string.h>

#include "common/err.h"
#include "protocol/remoting.h"

#define UNIQ_KEY "_UNIQUE_KEY_QUERY"
#define MQ_VERSION_4_9_3 399 /* MQVersion.Version.V4_9_3.ordinal() */

/* strcmp, with the first byte compared inline: header keys are short and
 * mostly differ there. */
static inline int key_cmp(const char *a, const char *b)
{
    if (a[0] != b[0])
        return (unsigned char)a[0] < (unsigned char)b[0] ? -1 : 1;
    return strcmp(a, b);
}

bool apg_sign_fields(const struct apg_rcmd *req, uint32_t *idx, uint32_t *n)
{
    uint32_t k = 0;
    bool skip_uniq = req->version <= MQ_VERSION_4_9_3;
    for (uint32_t i = 0; i < req->n_ext; i++) {
        const char *key = req->ext[i].key;
        if (!key || !req->ext[i].val || (key[0] == 'S' && strcmp(key, APG_SIGN_SIGNATURE) == 0) ||
            (skip_uniq && key[0] == '_' && strcmp(key, UNIQ_KEY) == 0))
            continue;
        uint32_t j = k;
        while (j > 0) {
            int c = key_cmp(req->ext[idx[j - 1]].key, key);
            if (c == 0)
                return false;
            if (c < 0)
                break;
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = i;
        k++;
    }
    *n = k;
    return true;
}

void apg_sign_mac(const struct apg_hmac_key *key, const struct apg_rcmd *req, const uint32_t *idx,
                  uint32_t n, const void *body, size_t body_len, char out[APG_SIGN_LEN])
{
    struct apg_sha1 s;
    apg_hmac_sha1_begin(key, &s);
    /* The values are short (most are one to a dozen bytes): gathered into
     * a buffer first, so the hash sees a few large updates. */
    char buf[512];
    size_t fill = 0;
    for (uint32_t i = 0; i < n; i++) {
        const char *v = req->ext[idx[i]].val;
        size_t len = strlen(v);
        if (fill + len > sizeof(buf)) {
            apg_sha1_update(&s, buf, fill);
            fill = 0;
        }
        if (len > sizeof(buf)) {
            apg_sha1_update(&s, v, len);
            continue;
        }
        memcpy(buf + fill, v, len);
        fill += len;
    }
    apg_sha1_update(&s, buf, fill);
    if (body_len)
        apg_sha1_update(&s, body, body_len);
    uint8_t mac[APG_SHA1_LEN];
    apg_hmac_sha1_final(key, &s, mac);
    apg_base64_encode(mac, sizeof(mac), out);
}

int apg_sign_request(struct apg_rcmd *req, const char *access_key, const struct apg_hmac_key *key,
                     const void *body, size_t body_len, char sig[APG_SIGN_LEN])
{
    if (req->n_ext + 2 > APG_RCMD_MAX_EXT)
        return APG_ETOOBIG;
    apg_rcmd_ext_add(req, APG_SIGN_ACCESS_KEY, access_key);
    uint32_t idx[APG_RCMD_MAX_EXT], n = 0;
    if (!apg_sign_fields(req, idx, &n)) {
        req->n_ext--;
        return APG_EINVAL;
    }
    apg_sign_mac(key, req, idx, n, body, body_len, sig);
    apg_rcmd_ext_add(req, APG_SIGN_SIGNATURE, sig);
    return APG_OK;
}

/* The body of a popped record as a consumer reads it, for the fronts that
 * hand pop deliveries out (the gRPC port, the HTTP message protocol): a
 * 4.x body stored zlib-compressed (sysflag COMPRESSED) is inflated, and
 * its MD5 digest is written as uppercase hex, the form both protocols
 * carry.
 *
 * Threads: pure, any thread. */
#include <openssl/evp.h>
#include <pthread.h>
#include <zlib.h>

#include "broker/pop/pop.h"
#include "protocol/message.h"

#define MAX_INFLATED (64u << 20)

apg_err_t apg_pop_body_plain(const struct apg_msgrec *r, struct apg_buf *out, const uint8_t **body,
                             size_t *len)
{
    *body = r->mr_body;
    *len = r->mr_body_len;
    if (!(r->mr_sysflag & APG_SYSFLAG_COMPRESSED))
        return APG_OK;
    uLongf cap = (uLongf)r->mr_body_len * 4 + 256;
    for (;;) {
        apg_buf_reset(out);
        if (apg_buf_reserve(out, cap))
            return APG_ENOMEM;
        uLongf got = cap;
        int z = uncompress((Bytef *)out->b_data, &got, r->mr_body, r->mr_body_len);
        if (z == Z_OK) {
            *body = out->b_data;
            *len = got;
            return APG_OK;
        }
        if (z != Z_BUF_ERROR || cap >= MAX_INFLATED)
            return APG_OK; /* not zlib after all: delivered as stored */
        cap *= 2;
    }
}

static EVP_MD *md5_md;
static pthread_once_t md5_once = PTHREAD_ONCE_INIT;

/* Fetched once: EVP_md5() makes EVP_Digest look the algorithm up again on
 * every call. */
static void md5_fetch(void)
{
    md5_md = EVP_MD_fetch(NULL, "MD5", NULL);
}

void apg_pop_body_md5(const uint8_t *p, size_t n, char out[33])
{
    unsigned char d[16];
    unsigned int dl = 0;
    pthread_once(&md5_once, md5_fetch);
    EVP_Digest(p, n, d, &dl, md5_md ? md5_md : EVP_md5(), NULL);
    static const char hx[] = "0123456789ABCDEF";
    for (int i = 0; i < 16; i++) {
        out[2 * i] = hx[d[i] >> 4];
        out[2 * i + 1] = hx[d[i] & 15];
    }
    out[32] = '\0';
}

/* The HTTP/2 codec on the net loops: cuts a cleartext (h2c) connection's
 * bytes into the client connection preface and whole frames, and hands
 * each to the server's on_message, where the application runs its HTTP/2
 * session (nghttp2 in src/proxy/grpc/).
 *
 * Design. Cutting whole frames here, rather than feeding nghttp2 whatever
 * a read returned, puts HTTP/2 under the same slow-peer rules as remoting:
 * a frame that does not complete within the frame deadline, or trickles,
 * or pushes the server over its cap on buffered incomplete frames, closes
 * the connection in net.c. The codec is stateless: the preface is told
 * from a frame by its first byte, 'P', which as a frame header would
 * announce a payload of at least 5 MiB, over any limit the server sets
 * (max_msg is the largest frame plus its 9-byte header). A remoting client
 * on this port sends bytes that are neither: its 4-byte length is cut as a
 * frame header (a prefix of its frame, or an oversized frame that closes
 * the connection here), and the server, seeing a first message that is not
 * the preface, answers the remoting request with an error
 * (src/proxy/grpc/grpc_server.c).
 *
 * Threads: every function runs on the connection's loop thread. */
#include <string.h>

#include "common/mem.h"
#include "net/net_int.h"

#define H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define H2_PREFACE_LEN 24
#define H2_HEADER_LEN 9

struct h2msg {
    const uint8_t *hm_buf;
    size_t hm_len;
};

static apg_err_t h2_loop_new(struct apg_net_loop *l, void **state)
{
    *state = apg_calloc(1, sizeof(struct h2msg));
    return *state ? APG_OK : APG_ENOMEM;
}

static void h2_loop_free(void *state)
{
    apg_free(state);
}

static apg_err_t h2_frame(const uint8_t *buf, size_t len, size_t max_msg, size_t *mlen, char *err,
                          size_t errlen)
{
    *mlen = 0;
    if (len == 0)
        return APG_OK;
    if (buf[0] == 'P') {
        size_t n = len < H2_PREFACE_LEN ? len : H2_PREFACE_LEN;
        if (memcmp(buf, H2_PREFACE, n) != 0)
            return apg_errf(APG_EPROTO, err, errlen, "not an HTTP/2 connection preface");
        if (len >= H2_PREFACE_LEN)
            *mlen = H2_PREFACE_LEN;
        return APG_OK;
    }
    if (len < H2_HEADER_LEN)
        return APG_OK;
    size_t flen = H2_HEADER_LEN + ((size_t)buf[0] << 16 | (size_t)buf[1] << 8 | buf[2]);
    if (flen > max_msg)
        return apg_errf(APG_EPROTO, err, errlen,
                        "HTTP/2 frame of %zu bytes over the limit of %zu (not an HTTP/2 client?)",
                        flen, max_msg);
    if (len >= flen)
        *mlen = flen;
    return APG_OK;
}

static size_t h2_read_hint(const uint8_t *buf, size_t len, size_t max_msg)
{
    if (len < H2_HEADER_LEN || buf[0] == 'P')
        return 0;
    size_t flen = H2_HEADER_LEN + ((size_t)buf[0] << 16 | (size_t)buf[1] << 8 | buf[2]);
    return flen > len && flen <= max_msg ? flen : 0;
}

static apg_err_t h2_decode(void *state, const uint8_t *buf, size_t len, void **msg, char *err,
                           size_t errlen)
{
    struct h2msg *m = state;
    m->hm_buf = buf;
    m->hm_len = len;
    *msg = m;
    return APG_OK;
}

static bool h2_dispatch(struct apg_conn *c, void *msg)
{
    struct apg_net_loop *l = c->c_loop;
    const struct h2msg *m = msg;
    l->l_on_message(c, m->hm_buf, m->hm_len, l->l_ud);
    return true;
}

const struct apg_net_codec apg_net_h2 = {
    .cd_name = "h2",
    .cd_loop_new = h2_loop_new,
    .cd_loop_free = h2_loop_free,
    .cd_frame = h2_frame,
    .cd_read_hint = h2_read_hint,
    .cd_decode = h2_decode,
    .cd_dispatch = h2_dispatch,
};

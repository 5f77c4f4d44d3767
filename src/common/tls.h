/* TLS sessions over memory buffers (OpenSSL), for any event loop.
 *
 * A session never touches a socket: the owner feeds it the ciphertext it
 * read (apg_tls_feed), asks for plaintext (apg_tls_read, which also drives
 * the handshake), hands it plaintext to encrypt (apg_tls_write) and moves
 * the ciphertext it produced to the socket (apg_tls_take_output). So the
 * server transport (net/tls.c) and the client library (client/io.c) run it
 * on their own loops without blocking and without a thread of its own.
 *
 * Threads: a context is read-only once made and may be shared by sessions
 * on several threads; a session belongs to one thread at a time. */
#ifndef APG_COMMON_TLS_H
#define APG_COMMON_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/buf.h"
#include "common/err.h"

/* The first byte of every TLS record carrying a handshake message, hence
 * of a ClientHello: what tells a TLS client from a plaintext one. */
#define APG_TLS_HANDSHAKE_BYTE 0x16

enum apg_tls_sniff {
    APG_TLS_SNIFF_MORE, /* nothing received yet */
    APG_TLS_SNIFF_TLS,  /* starts like a TLS handshake record */
    APG_TLS_SNIFF_PLAIN,
};

/* Tells a TLS ClientHello from a plaintext remoting frame by the first byte
 * of what a new connection sent. A remoting frame starts with its length
 * (big-endian), so a plaintext frame would have to be at least 0x16000000
 * bytes (352 MiB) to be taken for TLS. Pure. */
enum apg_tls_sniff apg_tls_sniff(const uint8_t *p, size_t n);

enum apg_tls_client_auth {
    APG_TLS_AUTH_NONE,     /* no client certificate asked for */
    APG_TLS_AUTH_OPTIONAL, /* asked for, verified when sent */
    APG_TLS_AUTH_REQUIRE,  /* a verified client certificate is required */
};

struct apg_tls_ctx_opts {
    bool server;
    const char *cert_path; /* PEM chain; required for a server, optional for a client */
    const char *key_path;  /* PEM private key of cert_path */
    /* PEM CA bundle that verifies the peer. Server: client certificates
     * (with client_auth). Client: the server's certificate. */
    const char *trust_path;
    enum apg_tls_client_auth client_auth; /* server only */
    /* Client only: verify the server's certificate (against trust_path, or
     * the system's CAs when it is unset) and that it names the host. */
    bool verify_server;
    /* Server only: the one application protocol selected with ALPN ("h2"),
     * at most 32 bytes; a client that offers ALPN without it is refused
     * with a no_application_protocol alert, one that offers none is served.
     * NULL: ALPN is not answered. */
    const char *alpn;
};

struct apg_tls_ctx;
struct apg_tls;

/* Loads the certificates and keys named in o. Returns owned: free with
 * apg_tls_ctx_free() (sessions hold their own reference). */
apg_err_t apg_tls_ctx_new(const struct apg_tls_ctx_opts *o, struct apg_tls_ctx **out, char *err,
                          size_t errlen);
void apg_tls_ctx_free(struct apg_tls_ctx *ctx);
bool apg_tls_ctx_is_server(const struct apg_tls_ctx *ctx);

/* A session on ctx; host (client: the name or address dialled, checked
 * against the server's certificate when ctx verifies; may be NULL).
 * Returns owned (free with apg_tls_free), NULL on out of memory. */
struct apg_tls *apg_tls_new(struct apg_tls_ctx *ctx, const char *host);
void apg_tls_free(struct apg_tls *t);

/* Ciphertext that arrived from the peer (copied). */
apg_err_t apg_tls_feed(struct apg_tls *t, const uint8_t *p, size_t n);
/* Advances the handshake, then decrypts into p[0..cap): the bytes
 * decrypted (> 0), 0 when more ciphertext is needed first, APG_ECLOSED when
 * the peer ended the session, APG_EPROTO on a handshake or record error
 * (err says why: the peer's alert, the certificate check that failed). A
 * client's first call produces its ClientHello. Output to send may be
 * waiting after every call. */
ssize_t apg_tls_read(struct apg_tls *t, uint8_t *p, size_t cap, char *err, size_t errlen);
bool apg_tls_handshake_done(const struct apg_tls *t);
/* Encrypts p[0..n) (the handshake must be done). */
apg_err_t apg_tls_write(struct apg_tls *t, const uint8_t *p, size_t n, char *err, size_t errlen);
/* Bytes of ciphertext waiting to be sent. */
size_t apg_tls_output_pending(const struct apg_tls *t);
/* Appends the waiting ciphertext to out. */
apg_err_t apg_tls_take_output(struct apg_tls *t, struct apg_buf *out);

#endif

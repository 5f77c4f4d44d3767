/* TLS sessions over memory BIOs (see tls.h for the contract).
 *
 * Design: each session is an OpenSSL SSL object whose read and write BIOs
 * are memory buffers. Ciphertext the owner read from its socket is written
 * into the read BIO; SSL_do_handshake / SSL_read consume it and leave any
 * reply (handshake messages, alerts, session tickets) in the write BIO,
 * which the owner drains to its socket. Nothing here waits: when OpenSSL
 * needs more input it says so and the owner comes back after its next
 * read. Contexts allow TLS 1.2 and 1.3 only. A server context may select
 * one ALPN protocol (the gRPC port's "h2") and refuse clients that offer
 * only others.
 *
 * Errors: OpenSSL's error queue is per thread and shared by every session
 * on it, so it is cleared before each call and read right after a failure;
 * a failed certificate check is reported with X509's own wording.
 *
 * Threads: see tls.h. OpenSSL 1.1+ initialises itself on first use. */
#include "common/tls.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/mem.h"

struct apg_tls_ctx {
    SSL_CTX *tc_ssl;
    bool tc_server;
    bool tc_verify;            /* client: check the server's name or address */
    uint8_t tc_alpn_len;       /* server: length of tc_alpn; 0 = no ALPN */
    unsigned char tc_alpn[32]; /* server: the protocol ALPN selects */
};

struct apg_tls {
    SSL *t_ssl;
    BIO *t_rbio; /* ciphertext from the peer (owned by t_ssl) */
    BIO *t_wbio; /* ciphertext for the peer (owned by t_ssl) */
    bool t_done; /* handshake finished */
};

enum apg_tls_sniff apg_tls_sniff(const uint8_t *p, size_t n)
{
    if (n == 0)
        return APG_TLS_SNIFF_MORE;
    return p[0] == APG_TLS_HANDSHAKE_BYTE ? APG_TLS_SNIFF_TLS : APG_TLS_SNIFF_PLAIN;
}

/* The reason of the last OpenSSL failure into err, after what. */
static apg_err_t ssl_errf(apg_err_t e, char *err, size_t errlen, const char *what)
{
    unsigned long code = ERR_get_error();
    char reason[200] = "";
    if (code)
        ERR_error_string_n(code, reason, sizeof(reason));
    ERR_clear_error();
    return apg_errf(e, err, errlen, "%s%s%s", what, reason[0] ? ": " : "", reason);
}

/* ALPN on a server: selects ctx's protocol among those the client lists
 * (length-prefixed names); none of them: the handshake fails. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    const struct apg_tls_ctx *ctx = arg;
    for (unsigned int i = 0; i < inlen; i += 1u + in[i]) {
        unsigned int n = in[i];
        if (i + 1 + n > inlen)
            break;
        if (n == ctx->tc_alpn_len && memcmp(in + i + 1, ctx->tc_alpn, n) == 0) {
            *out = in + i + 1;
            *outlen = (unsigned char)n;
            return SSL_TLSEXT_ERR_OK;
        }
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

apg_err_t apg_tls_ctx_new(const struct apg_tls_ctx_opts *o, struct apg_tls_ctx **out, char *err,
                          size_t errlen)
{
    *out = NULL;
    if (o->server && (!o->cert_path || !o->cert_path[0] || !o->key_path || !o->key_path[0]))
        return apg_errf(APG_ECONFIG, err, errlen,
                        "TLS server needs a certificate and a key (tls.server.certPath, "
                        "tls.server.keyPath)");
    if (!o->server && o->cert_path && o->cert_path[0] && (!o->key_path || !o->key_path[0]))
        return apg_errf(APG_ECONFIG, err, errlen,
                        "TLS client certificate '%s' given without its key (tls.client.keyPath)",
                        o->cert_path);
    ERR_clear_error();
    struct apg_tls_ctx *ctx = apg_calloc(1, sizeof(*ctx));
    SSL_CTX *s = SSL_CTX_new(o->server ? TLS_server_method() : TLS_client_method());
    if (!ctx || !s) {
        apg_free(ctx);
        SSL_CTX_free(s);
        return ssl_errf(APG_ENOMEM, err, errlen, "cannot create a TLS context");
    }
    ctx->tc_ssl = s;
    ctx->tc_server = o->server;
    SSL_CTX_set_min_proto_version(s, TLS1_2_VERSION);
    char what[4200];
    if (o->cert_path && o->cert_path[0]) {
        if (SSL_CTX_use_certificate_chain_file(s, o->cert_path) != 1) {
            snprintf(what, sizeof(what), "cannot load the TLS certificate '%s'", o->cert_path);
            goto fail;
        }
        if (SSL_CTX_use_PrivateKey_file(s, o->key_path, SSL_FILETYPE_PEM) != 1) {
            snprintf(what, sizeof(what), "cannot load the TLS key '%s'", o->key_path);
            goto fail;
        }
        if (SSL_CTX_check_private_key(s) != 1) {
            snprintf(what, sizeof(what), "TLS key '%s' does not match the certificate '%s'",
                     o->key_path, o->cert_path);
            goto fail;
        }
    }
    bool trust = o->trust_path && o->trust_path[0];
    if (trust && SSL_CTX_load_verify_locations(s, o->trust_path, NULL) != 1) {
        snprintf(what, sizeof(what), "cannot load the TLS trust certificates '%s'", o->trust_path);
        goto fail;
    }
    if (o->server && o->alpn && o->alpn[0]) {
        size_t n = strlen(o->alpn);
        if (n > sizeof(ctx->tc_alpn)) {
            snprintf(what, sizeof(what), "ALPN protocol '%s' too long", o->alpn);
            goto fail;
        }
        memcpy(ctx->tc_alpn, o->alpn, n);
        ctx->tc_alpn_len = (uint8_t)n;
        SSL_CTX_set_alpn_select_cb(s, alpn_select, ctx);
    }
    if (o->server) {
        if (o->client_auth != APG_TLS_AUTH_NONE) {
            if (!trust) {
                apg_errf(APG_ECONFIG, err, errlen,
                         "TLS client authentication needs the CA that signs client "
                         "certificates (tls.server.trustCertPath)");
                apg_tls_ctx_free(ctx);
                return APG_ECONFIG;
            }
            STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(o->trust_path);
            if (names)
                SSL_CTX_set_client_CA_list(s, names);
            int mode = SSL_VERIFY_PEER;
            if (o->client_auth == APG_TLS_AUTH_REQUIRE)
                mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
            SSL_CTX_set_verify(s, mode, NULL);
        }
    } else if (o->verify_server) {
        if (!trust && SSL_CTX_set_default_verify_paths(s) != 1) {
            snprintf(what, sizeof(what), "cannot load the system's CA certificates");
            goto fail;
        }
        SSL_CTX_set_verify(s, SSL_VERIFY_PEER, NULL);
        ctx->tc_verify = true;
    }
    *out = ctx;
    return APG_OK;
fail:
    ssl_errf(APG_ECONFIG, err, errlen, what);
    apg_tls_ctx_free(ctx);
    return APG_ECONFIG;
}

void apg_tls_ctx_free(struct apg_tls_ctx *ctx)
{
    if (!ctx)
        return;
    SSL_CTX_free(ctx->tc_ssl);
    apg_free(ctx);
}

bool apg_tls_ctx_is_server(const struct apg_tls_ctx *ctx)
{
    return ctx->tc_server;
}

struct apg_tls *apg_tls_new(struct apg_tls_ctx *ctx, const char *host)
{
    struct apg_tls *t = apg_calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    ERR_clear_error();
    t->t_ssl = SSL_new(ctx->tc_ssl);
    t->t_rbio = BIO_new(BIO_s_mem());
    t->t_wbio = BIO_new(BIO_s_mem());
    if (!t->t_ssl || !t->t_rbio || !t->t_wbio) {
        SSL_free(t->t_ssl);
        BIO_free(t->t_rbio);
        BIO_free(t->t_wbio);
        apg_free(t);
        ERR_clear_error();
        return NULL;
    }
    /* An empty read BIO means "come back later", not end of stream. */
    BIO_set_mem_eof_return(t->t_rbio, -1);
    SSL_set_bio(t->t_ssl, t->t_rbio, t->t_wbio);
    if (ctx->tc_server) {
        SSL_set_accept_state(t->t_ssl);
    } else {
        SSL_set_connect_state(t->t_ssl);
        if (host && host[0]) {
            unsigned char ip[16];
            bool is_ip = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
            if (!is_ip)
                SSL_set_tlsext_host_name(t->t_ssl, host);
            if (ctx->tc_verify) {
                X509_VERIFY_PARAM *vp = SSL_get0_param(t->t_ssl);
                if (is_ip)
                    X509_VERIFY_PARAM_set1_ip_asc(vp, host);
                else
                    X509_VERIFY_PARAM_set1_host(vp, host, 0);
            }
        }
    }
    return t;
}

void apg_tls_free(struct apg_tls *t)
{
    if (!t)
        return;
    SSL_free(t->t_ssl); /* frees both BIOs */
    apg_free(t);
}

apg_err_t apg_tls_feed(struct apg_tls *t, const uint8_t *p, size_t n)
{
    while (n) {
        int chunk = n > INT_MAX ? INT_MAX : (int)n;
        int w = BIO_write(t->t_rbio, p, chunk);
        if (w <= 0)
            return APG_ENOMEM;
        p += w;
        n -= (size_t)w;
    }
    return APG_OK;
}

/* Why the last call on t failed: the certificate check when that failed,
 * else OpenSSL's queue. */
static ssize_t session_error(struct apg_tls *t, int rc, char *err, size_t errlen)
{
    int se = SSL_get_error(t->t_ssl, rc);
    if (se == SSL_ERROR_WANT_READ || se == SSL_ERROR_WANT_WRITE)
        return 0;
    if (se == SSL_ERROR_ZERO_RETURN) {
        apg_errf(APG_ECLOSED, err, errlen, "peer ended the TLS session");
        return APG_ECLOSED;
    }
    long vr = SSL_get_verify_result(t->t_ssl);
    if (!t->t_done && vr != X509_V_OK) {
        ERR_clear_error();
        apg_errf(APG_EPROTO, err, errlen, "certificate check failed: %s",
                 X509_verify_cert_error_string(vr));
        return APG_EPROTO;
    }
    if (se == SSL_ERROR_SSL) {
        ssl_errf(APG_EPROTO, err, errlen, t->t_done ? "TLS record error" : "TLS handshake failed");
    } else {
        ERR_clear_error();
        apg_errf(APG_EPROTO, err, errlen, "TLS %s failed (SSL error %d)",
                 t->t_done ? "read" : "handshake", se);
    }
    return APG_EPROTO;
}

ssize_t apg_tls_read(struct apg_tls *t, uint8_t *p, size_t cap, char *err, size_t errlen)
{
    ERR_clear_error();
    if (!t->t_done) {
        int rc = SSL_do_handshake(t->t_ssl);
        if (rc != 1)
            return session_error(t, rc, err, errlen);
        t->t_done = true;
    }
    size_t got = 0;
    /* Nothing buffered anywhere: SSL_read could only say "want more". */
    if (cap == 0 || (BIO_ctrl_pending(t->t_rbio) == 0 && !SSL_has_pending(t->t_ssl)))
        return 0;
    int rc = SSL_read_ex(t->t_ssl, p, cap, &got);
    if (rc == 1)
        return (ssize_t)got;
    return session_error(t, rc, err, errlen);
}

bool apg_tls_handshake_done(const struct apg_tls *t)
{
    return t->t_done;
}

apg_err_t apg_tls_write(struct apg_tls *t, const uint8_t *p, size_t n, char *err, size_t errlen)
{
    if (!t->t_done)
        return apg_errf(APG_EINVAL, err, errlen, "TLS write before the handshake finished");
    ERR_clear_error();
    while (n) {
        size_t w = 0;
        if (SSL_write_ex(t->t_ssl, p, n, &w) != 1) {
            session_error(t, 0, err, errlen);
            return APG_EPROTO;
        }
        p += w;
        n -= w;
    }
    return APG_OK;
}

size_t apg_tls_output_pending(const struct apg_tls *t)
{
    return BIO_ctrl_pending(t->t_wbio);
}

apg_err_t apg_tls_take_output(struct apg_tls *t, struct apg_buf *out)
{
    size_t n = BIO_ctrl_pending(t->t_wbio);
    if (!n)
        return APG_OK;
    apg_err_t e = apg_buf_reserve(out, n);
    if (e)
        return e;
    int r = BIO_read(t->t_wbio, out->b_data + out->b_len, n > INT_MAX ? INT_MAX : (int)n);
    if (r > 0)
        out->b_len += (size_t)r;
    return APG_OK;
}

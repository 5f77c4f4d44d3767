/* TLS on remoting ports: settings from the configuration.
 *
 * The transport itself is apg_net_tls (transport.h, tls.c); these calls
 * turn the tls* configuration keys into the transport and transport_ctx
 * of a server's or a client's options. */
#ifndef APG_NET_TLS_H
#define APG_NET_TLS_H

#include "common/config.h"
#include "common/err.h"
#include "net/net.h"

enum apg_net_tls_mode {
    APG_NET_TLS_DISABLED,   /* plaintext only */
    APG_NET_TLS_PERMISSIVE, /* TLS and plaintext on one port, by the first byte */
    APG_NET_TLS_ENFORCING,  /* TLS only: plaintext connections are closed */
};

/* Parses "disabled" | "permissive" | "enforcing"; -1 for anything else. */
int apg_net_tls_mode_parse(const char *s);

/* The server side (tlsServer* keys): sets o->transport and
 * o->transport_ctx unless tlsServerMode is disabled (o untouched then).
 * Fails with a message naming the key when a certificate or key cannot
 * be loaded. */
apg_err_t apg_net_tls_server_setup(const struct apg_config *cfg, struct apg_net_server_opts *o,
                                   char *err, size_t errlen);
/* The same for a port whose clients negotiate alpn with ALPN (the gRPC
 * port: "h2"; see apg_tls_ctx_opts.alpn). */
apg_err_t apg_net_tls_server_setup_alpn(const struct apg_config *cfg, struct apg_net_server_opts *o,
                                        const char *alpn, char *err, size_t errlen);
/* The broker's outbound side (tlsEnable, tlsClient* keys): sets
 * o->transport and o->transport_ctx when tlsEnable is true. */
apg_err_t apg_net_tls_client_setup(const struct apg_config *cfg, struct apg_net_client_opts *o,
                                   char *err, size_t errlen);

#endif

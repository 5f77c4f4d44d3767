/* The gRPC port of a broker process: reads its configuration, starts the
 * gRPC server (grpc_server.c) with the MessagingService method table, and
 * stops it.
 *
 * Design. One loop thread serves the port for now; the slow-peer settings
 * of the remoting port (frame deadline, minimum rate, pending-bytes cap,
 * idle timeout) apply to its HTTP/2 frames too. The methods are those of
 * messaging.c; every other MessagingService call is answered
 * UNIMPLEMENTED.
 *
 * Threads: start and stop run on the control thread. */
#include "proxy/grpc/proxy.h"

#include <stdio.h>
#include <string.h>

#include "common/config.h"
#include "common/log.h"
#include "common/mem.h"
#include "broker/broker_rt.h"
#include "proxy/grpc/grpc_server.h"
#include "proxy/grpc/messaging.h"
#include "proxy/grpc/produce.h"
#include "proxy/grpc/telemetry.h"

struct apg_grpc_proxy {
    struct apg_grpc_server *px_srv;
    struct apg_grpc_messaging px_ms; /* the methods' ud */
};

apg_err_t apg_grpc_proxy_start(const struct apg_config *cfg, struct apg_broker *b,
                               struct apg_grpc_proxy **out, char *err, size_t errlen)
{
    *out = NULL;
    int port = (int)apg_cfg_int(cfg, APG_CFG_grpcServerPort);
    if (port == 0)
        return APG_OK;
    struct apg_grpc_proxy *px = apg_calloc(1, sizeof(*px));
    if (!px)
        return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    /* Routes name this port at the host the broker advertises (brokerIP1). */
    px->px_ms.gm_backend = &apg_grpc_local_backend;
    px->px_ms.gm_max_body = apg_cfg_int(cfg, APG_CFG_maxMessageSize);
    px->px_ms.gm_broker = b;
    px->px_ms.gm_port = port;
    if (apg_grpc_clients_new(&px->px_ms.gm_clients)) {
        apg_free(px);
        return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    }
    snprintf(px->px_ms.gm_host, sizeof px->px_ms.gm_host, "%s", b->br_addr);
    char *colon = strrchr(px->px_ms.gm_host, ':');
    if (colon)
        *colon = '\0';
    struct apg_grpc_server_opts o = {
        .name = "grpc",
        .host = apg_cfg_str(cfg, APG_CFG_bindAddress),
        .port = port,
        .n_loops = 1,
        .limits = apg_net_limits_from_cfg(cfg),
        .methods = apg_grpc_messaging_methods,
        .n_methods = apg_grpc_messaging_n_methods,
        .tls_cfg = cfg,
        .on_read_end = apg_grpc_local_backend.gb_read_end,
        .ud = &px->px_ms,
    };
    apg_err_t e = apg_grpc_server_start(&o, &px->px_srv, err, errlen);
    if (e) {
        apg_grpc_clients_free(px->px_ms.gm_clients);
        apg_free(px);
        return e;
    }
    apg_grpc_produce_start(&px->px_ms);
    apg_log_info("grpc", "gRPC (%s) on %s:%d",
                 strcmp(apg_cfg_str(cfg, APG_CFG_tlsServerMode), "disabled")
                     ? "h2c, TLS with ALPN h2"
                     : "h2c",
                 o.host, apg_grpc_server_port(px->px_srv));
    *out = px;
    return APG_OK;
}

void apg_grpc_proxy_stop(struct apg_grpc_proxy *px)
{
    if (!px)
        return;
    apg_grpc_produce_stop(&px->px_ms);
    apg_grpc_server_stop(px->px_srv);
    apg_grpc_produce_free(&px->px_ms);
    apg_grpc_clients_free(px->px_ms.gm_clients);
    apg_free(px);
}

/* apogee: one binary, several subcommands.
 *
 *   apogee standalone   NameServer + broker in one process (what a new user runs)
 *   apogee namesrv      NameServer only
 *   apogee broker       broker only
 *   apogee proxy        the 5.x gRPC port in front of the brokers a NameServer
 *                       names (src/proxy/remote); no store
 *   apogee bench        producer/consumer load generator (C client library)
 *   apogee admin        mqadmin commands (src/cli/admin)
 *
 * Threads: the main thread parses the configuration, blocks SIGINT/SIGTERM
 * in every thread it will create, starts the components (each starts its own
 * loop threads) and then waits for a signal with sigwait(); no code runs in a
 * signal handler. On a signal it stops the components in reverse order and
 * exits 0. Before starting it says where the servers listen: standalone
 * binds to 127.0.0.1 unless bindAddress says otherwise and says so; any role
 * listening beyond loopback without access control (aclEnable) logs one
 * WARN line. Standalone's broker reaches its in-process NameServer over
 * loopback under the same ACL and TLS settings as any client; see
 * standalone_inner_hop for how that hop authenticates without extra keys.
 * A fault (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT) writes a stack
 * trace to the log before the process dies (common/crash.h). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "apogee_version.h"
#include "broker/broker.h"
#include "cli/admin/admin.h"
#include "cli/bench.h"
#include "cli/check_store.h"
#include "common/config.h"
#include "common/crash.h"
#include "common/log.h"
#include "namesrv/namesrv.h"
#include "proxy/remote/remote.h"
#include "http/http_port.h"
#include "http/otlp.h"
#include "proxy/grpc/proxy.h"

static void usage(FILE *out)
{
    fprintf(out,
            "apogee %s - a RocketMQ-compatible message queue\n"
            "\n"
            "usage: apogee <command> [-c FILE] [-n ADDR] [-p] [--key=value ...]\n"
            "\n"
            "commands:\n"
            "  standalone   NameServer (namesrvListenPort, 9876) and broker (listenPort, 10911)\n"
            "               in one process, data in ./data, on 127.0.0.1 only unless\n"
            "               --bindAddress=0.0.0.0 (or another address) says otherwise\n"
            "  namesrv      NameServer only (listenPort 9876)\n"
            "  broker       broker only (listenPort 10911); needs -n or namesrvAddr\n"
            "  proxy        RocketMQ 5 gRPC port (grpcServerPort, 8081) in front of every\n"
            "               broker the NameServer names; no store; needs -n or namesrvAddr\n"
            "  bench        load generator: apogee bench producer|consumer --help\n"
            "  check-store  offline read-only scan of a store: apogee check-store --help\n"
            "  admin        mqadmin commands: apogee admin help\n"
            "\n"
            "options:\n"
            "  -c FILE        Java .properties file with RocketMQ key names (broker.conf)\n"
            "  -n ADDR        NameServer address list host:port;host:port\n"
            "  -p             print the effective configuration and where each value came from\n"
            "  --key=value    any configuration key by its RocketMQ name\n"
            "  --help-config  list the keys a command understands, with defaults\n"
            "  --help, --version\n",
            APOGEE_VERSION);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int wait_for_signal(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    int sig = 0;
    sigwait(&set, &sig);
    apg_log_info("main", "received %s, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    return sig;
}

static void apply_log_level(const struct apg_config *cfg)
{
    const char *l = apg_cfg_str(cfg, APG_CFG_logLevel);
    apg_log_set_level(strcmp(l, "DEBUG") == 0   ? APG_LOG_DEBUG
                      : strcmp(l, "WARN") == 0  ? APG_LOG_WARN
                      : strcmp(l, "ERROR") == 0 ? APG_LOG_ERROR
                                                : APG_LOG_INFO);
}

/* Builds the NameServer config that standalone runs next to its broker. */
static struct apg_config *standalone_namesrv_config(const struct apg_config *sa, char *err,
                                                    size_t errlen)
{
    struct apg_config *ns = apg_config_new(APG_ROLE_NAMESRV);
    char port[16];
    snprintf(port, sizeof(port), "%lld", (long long)apg_cfg_int(sa, APG_CFG_namesrvListenPort));
    if (ns)
        apg_config_set_port_key(ns, "namesrvListenPort");
    if (!ns || apg_config_set(ns, "listenPort", port, APG_CFG_SRC_ARG, err, errlen) ||
        apg_config_set(ns, "storePathRootDir", apg_cfg_str(sa, APG_CFG_storePathRootDir),
                       APG_CFG_SRC_ARG, err, errlen) ||
        apg_config_set(ns, "bindAddress", apg_cfg_str(sa, APG_CFG_bindAddress), APG_CFG_SRC_ARG,
                       err, errlen) ||
        apg_config_set(ns, "logLevel", apg_cfg_str(sa, APG_CFG_logLevel), APG_CFG_SRC_ARG, err,
                       errlen)) {
        apg_config_free(ns);
        return NULL;
    }
    /* Both ports take the same TLS settings and the same ACL file. */
    static const char *const tls_keys[] = {"tlsServerMode",
                                           "tlsServerCertPath",
                                           "tlsServerKeyPath",
                                           "tlsServerTrustCertPath",
                                           "tlsServerNeedClientAuth",
                                           "aclEnable",
                                           "aclFile"};
    static const enum apg_cfg_id tls_ids[] = {APG_CFG_tlsServerMode,
                                              APG_CFG_tlsServerCertPath,
                                              APG_CFG_tlsServerKeyPath,
                                              APG_CFG_tlsServerTrustCertPath,
                                              APG_CFG_tlsServerNeedClientAuth,
                                              APG_CFG_aclEnable,
                                              APG_CFG_aclFile};
    for (size_t i = 0; i < sizeof(tls_keys) / sizeof(tls_keys[0]); i++) {
        if (apg_config_set(ns, tls_keys[i], apg_cfg_str(sa, tls_ids[i]), APG_CFG_SRC_ARG, err,
                           errlen)) {
            apg_config_free(ns);
            return NULL;
        }
    }
    return ns;
}

/* Standalone's broker registers with the NameServer of the same process
 * (namesrvAddr empty). That hop needs no key of its own:
 *  - ACL: unless innerClientAuthenticationCredentials names an account, the
 *    broker signs with a random account made here (24 random bytes, in
 *    memory only, never logged, shown as ****** by GET_BROKER_CONFIG) that
 *    the NameServer accepts as an admin (apg_namesrv_trust_inner). No
 *    account of the file is used and no address is exempted, so nothing
 *    else on the host gains access.
 *  - TLS: with tlsServerMode=enforcing the broker connects with TLS
 *    (tlsEnable), presenting the server's certificate and key when the
 *    port asks for client certificates and tlsClientCertPath is empty. */
static apg_err_t standalone_inner_hop(struct apg_config *cfg, struct apg_namesrv *ns, char *err,
                                      size_t errlen)
{
    const char *nsaddr = apg_cfg_str(cfg, APG_CFG_namesrvAddr);
    if (nsaddr && nsaddr[0])
        return APG_OK;
    if (strcmp(apg_cfg_str(cfg, APG_CFG_tlsServerMode), "enforcing") == 0) {
        if (apg_config_set(cfg, "tlsEnable", "true", APG_CFG_SRC_ROLE, err, errlen))
            return APG_ECONFIG;
        const char *need = apg_cfg_str(cfg, APG_CFG_tlsServerNeedClientAuth);
        const char *trust = apg_cfg_str(cfg, APG_CFG_tlsServerTrustCertPath);
        bool certs = strcmp(need, "require") == 0 || strcmp(need, "optional") == 0 ||
                     (strcmp(need, "auto") == 0 && trust[0]);
        if (certs && !apg_cfg_str(cfg, APG_CFG_tlsClientCertPath)[0] &&
            (apg_config_set(cfg, "tlsClientCertPath", apg_cfg_str(cfg, APG_CFG_tlsServerCertPath),
                            APG_CFG_SRC_ROLE, err, errlen) ||
             apg_config_set(cfg, "tlsClientKeyPath", apg_cfg_str(cfg, APG_CFG_tlsServerKeyPath),
                            APG_CFG_SRC_ROLE, err, errlen)))
            return APG_ECONFIG;
    }
    if (!apg_cfg_bool(cfg, APG_CFG_aclEnable) ||
        apg_cfg_str(cfg, APG_CFG_innerClientAuthenticationCredentials)[0])
        return APG_OK;
    uint8_t rnd[28];
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        return apg_errf(APG_EIO, err, errlen, "no random bytes for the in-process account: %s",
                        strerror(errno));
    char ak[32], sk[64], json[160];
    snprintf(ak, sizeof(ak), "apogeeInner%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);
    for (size_t i = 4; i < sizeof(rnd); i++)
        snprintf(sk + 2 * (i - 4), 3, "%02x", rnd[i]);
    snprintf(json, sizeof(json), "{\"accessKey\":\"%s\",\"secretKey\":\"%s\"}", ak, sk);
    apg_err_t e = apg_config_set(cfg, "innerClientAuthenticationCredentials", json,
                                 APG_CFG_SRC_ROLE, err, errlen);
    if (!e)
        apg_namesrv_trust_inner(ns, ak, sk);
    memset(rnd, 0, sizeof(rnd));
    memset(sk, 0, sizeof(sk));
    memset(json, 0, sizeof(json));
    return e;
}

/* Says who can connect: standalone on loopback tells how to open it up; a
 * server reachable from other hosts without ACL gets one WARN line. */
static void announce_exposure(const struct apg_config *cfg, const char *cmd)
{
    const char *bind = apg_cfg_str(cfg, APG_CFG_bindAddress);
    bool standalone = apg_config_role(cfg) == APG_ROLE_STANDALONE;
    if (apg_config_bind_loopback(cfg)) {
        if (standalone)
            apg_log_info("main",
                         "listening on %s only: clients on other hosts cannot connect; "
                         "--bindAddress=0.0.0.0 listens on every interface",
                         bind);
        return;
    }
    if (!apg_config_bool_by_name(cfg, "aclEnable", false))
        apg_log_warn("main",
                     "apogee %s listens on %s without access control (aclEnable=false): anyone "
                     "who reaches the port can send, consume and change topics and configuration; "
                     "bind to 127.0.0.1 (--bindAddress) or firewall the port",
                     cmd, apg_config_bind_wildcard(cfg) ? "every interface" : bind);
}

int main(int argc, char **argv)
{
    apg_crash_install(2); /* the log is stderr */
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("apogee %s (RocketMQ protocol %s)\n", APOGEE_VERSION, APOGEE_RMQ_VERSION_DESC);
        return 0;
    }

    if (strcmp(argv[1], "bench") == 0)
        return apg_cli_bench_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "admin") == 0)
        return apg_cli_admin_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "check-store") == 0)
        return apg_cli_check_store_main(argc - 1, argv + 1);

    const char *cmd = argv[1];
    enum apg_role role;
    if (strcmp(cmd, "standalone") == 0)
        role = APG_ROLE_STANDALONE;
    else if (strcmp(cmd, "namesrv") == 0 || strcmp(cmd, "mqnamesrv") == 0)
        role = APG_ROLE_NAMESRV;
    else if (strcmp(cmd, "broker") == 0 || strcmp(cmd, "mqbroker") == 0)
        role = APG_ROLE_BROKER;
    else if (strcmp(cmd, "proxy") == 0 || strcmp(cmd, "mqproxy") == 0)
        role = APG_ROLE_PROXY;
    else {
        fprintf(stderr, "apogee: unknown command '%s'; run `apogee --help`\n", cmd);
        return 2;
    }
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--help-config") == 0) {
            apg_config_print_help(role, stdout);
            return 0;
        }
    }

    double t0 = now_ms();
    char err[512] = "";
    struct apg_config *cfg = apg_config_new(role);
    bool print_only = false;
    if (!cfg || apg_config_parse_args(cfg, argc - 2, argv + 2, &print_only, err, sizeof(err))) {
        fprintf(stderr, "apogee %s: %s\n", cmd, err[0] ? err : "out of memory");
        apg_config_free(cfg);
        return 1;
    }
    if (print_only) {
        apg_config_print(cfg, stdout);
        apg_config_free(cfg);
        return 0;
    }
    apply_log_level(cfg);
    announce_exposure(cfg, cmd);

    /* Block the signals before any thread exists so every thread inherits
     * the mask and only sigwait() sees them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = 0;
    struct apg_config *ns_cfg = NULL;
    struct apg_namesrv *ns = NULL;
    struct apg_broker *br = NULL;
    struct apg_grpc_proxy *px = NULL;
    struct apg_proxy *rpx = NULL;
    struct apg_http_port *hp = NULL;
    struct apg_otlp *ox = NULL;

    if (role == APG_ROLE_NAMESRV || role == APG_ROLE_STANDALONE) {
        const struct apg_config *c = cfg;
        if (role == APG_ROLE_STANDALONE) {
            ns_cfg = standalone_namesrv_config(cfg, err, sizeof(err));
            if (!ns_cfg) {
                fprintf(stderr, "apogee %s: %s\n", cmd, err);
                rc = 1;
                goto out;
            }
            c = ns_cfg;
        }
        ns = apg_namesrv_start(c, err, sizeof(err));
        if (!ns) {
            fprintf(stderr, "apogee %s: NameServer failed to start: %s\n", cmd, err);
            rc = 1;
            goto out;
        }
    }
    if (role == APG_ROLE_STANDALONE && standalone_inner_hop(cfg, ns, err, sizeof(err))) {
        fprintf(stderr, "apogee %s: %s\n", cmd, err);
        rc = 1;
        goto out;
    }
    if (role == APG_ROLE_BROKER || role == APG_ROLE_STANDALONE) {
        br = apg_broker_start(cfg, err, sizeof(err));
        if (!br) {
            fprintf(stderr, "apogee %s: broker failed to start: %s\n", cmd, err);
            rc = 1;
            goto out;
        }
        if (apg_grpc_proxy_start(cfg, br, &px, err, sizeof(err))) {
            fprintf(stderr, "apogee %s: gRPC port failed to start: %s\n", cmd, err);
            rc = 1;
            goto out;
        }
        if (apg_http_port_start(cfg, br, &hp, err, sizeof(err))) {
            fprintf(stderr, "apogee %s: HTTP port failed to start: %s\n", cmd, err);
            rc = 1;
            goto out;
        }
        if (apg_otlp_start(cfg, br, &ox, err, sizeof(err))) {
            fprintf(stderr, "apogee %s: OTLP metrics exporter failed to start: %s\n", cmd, err);
            rc = 1;
            goto out;
        }
    }
    if (role == APG_ROLE_PROXY && apg_proxy_start(cfg, &rpx, err, sizeof(err))) {
        fprintf(stderr, "apogee %s: proxy failed to start: %s\n", cmd, err);
        rc = 1;
        goto out;
    }
    apg_log_info("main", "apogee %s %s ready in %.1f ms", cmd, APOGEE_VERSION, now_ms() - t0);
    wait_for_signal();

out:
    apg_otlp_stop(ox);
    apg_http_port_stop(hp);
    apg_grpc_proxy_stop(px);
    apg_proxy_stop(rpx);
    if (br)
        apg_broker_stop(br);
    if (ns)
        apg_namesrv_stop(ns);
    apg_config_free(ns_cfg);
    apg_config_free(cfg);
    return rc;
}

/* `apogee bench`: producer and consumer load generator built on the C client. */
#ifndef APG_CLI_BENCH_H
#define APG_CLI_BENCH_H

#include <stdbool.h>

/* argv[0] is "bench". Returns the process exit status. */
int apg_cli_bench_main(int argc, char **argv);
/* bench_grpc.c: SendMessage load on the gRPC port addr ("host:port") over
 * one connection with `streams` calls in flight for secs seconds. */
int apg_cli_bench_grpc(const char *addr, const char *topic, int size, int secs, int streams,
                       bool json);

#endif

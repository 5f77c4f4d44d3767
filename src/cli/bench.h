/* `apogee bench`: producer and consumer load generator built on the C client. */
#ifndef APG_CLI_BENCH_H
#define APG_CLI_BENCH_H

#include <stdbool.h>
#include <stdint.h>

/* argv[0] is "bench". Returns the process exit status. */
int apg_cli_bench_main(int argc, char **argv);
/* bench_grpc.c: load on the gRPC port. */
struct apg_bench_grpc_opts {
    const char *bo_addr; /* "host:port" */
    const char *bo_topic;
    const char *bo_group; /* consume */
    int bo_size;          /* produce: body bytes */
    int bo_secs;
    int bo_streams;          /* produce: SendMessage calls in flight on the one connection */
    long bo_messages;        /* produce: stop after; consume: expected (0: unknown) */
    int bo_consumers;        /* consume: connections (SimpleConsumers) */
    int bo_inflight;         /* consume: ReceiveMessage calls in flight per consumer */
    int bo_batch;            /* consume: batch_size of each ReceiveMessage */
    int64_t bo_invisible_ms; /* consume: invisible_duration */
    bool bo_json;
};
/* SendMessage over one connection with bo_streams calls in flight. */
int apg_cli_bench_grpc_produce(const struct apg_bench_grpc_opts *o);
/* ReceiveMessage + AckMessage by bo_consumers SimpleConsumers of one group. */
int apg_cli_bench_grpc_consume(const struct apg_bench_grpc_opts *o);

#endif

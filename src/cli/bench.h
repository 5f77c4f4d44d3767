/* `apogee bench`: producer and consumer load generator built on the C client. */
#ifndef APG_CLI_BENCH_H
#define APG_CLI_BENCH_H

/* argv[0] is "bench". Returns the process exit status. */
int apg_cli_bench_main(int argc, char **argv);

#endif

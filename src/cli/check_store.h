/* `apogee check-store`: offline, read-only scan of a store directory. */
#ifndef APG_CLI_CHECK_STORE_H
#define APG_CLI_CHECK_STORE_H

/* argv[0] is "check-store". Returns the process exit status: 0 healthy,
 * 1 problems crash recovery repairs, 2 damage, 3 the check could not run. */
int apg_cli_check_store_main(int argc, char **argv);

#endif

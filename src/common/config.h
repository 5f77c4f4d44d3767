/* Configuration: RocketMQ key names, Java .properties files, --key=value flags.
 *
 * The keys are declared once in config.def. A struct apg_config holds one
 * value per key plus where it came from (default, file, command line), so
 * `-p` can print the effective configuration with its sources. Values are
 * validated when set; a bad value is an error naming the key and the range,
 * an unknown key only a warning (RocketMQ's own broker.conf carries keys
 * Apogee does not use). Spellings of older RocketMQ releases
 * (mapedFileSizeCommitLog for mappedFileSizeCommitLog) are accepted as
 * aliases of their key.
 *
 * Threads: built on the main thread at start-up, read-only afterwards. */
#ifndef APG_COMMON_CONFIG_H
#define APG_COMMON_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/err.h"

enum apg_cfg_id {
#define APG_CFG(name, type, scope, def, lo, hi, choices, help) APG_CFG_##name,
#include "common/config.def"
#undef APG_CFG
    APG_CFG__COUNT
};

enum apg_role {
    APG_ROLE_NAMESRV = 1,
    APG_ROLE_BROKER = 2,
    APG_ROLE_STANDALONE = 4,
};

enum apg_cfg_source { APG_CFG_SRC_DEFAULT, APG_CFG_SRC_ROLE, APG_CFG_SRC_FILE, APG_CFG_SRC_ARG };

struct apg_config;

/* Returns owned: free with apg_config_free(). Applies role defaults
 * (namesrv listens on 9876). */
struct apg_config *apg_config_new(enum apg_role role);
void apg_config_free(struct apg_config *cfg);

/* Sets one key from text. Unknown key (or a key of another role):
 * APG_ENOTFOUND with a message; bad value: APG_ECONFIG with a message. */
apg_err_t apg_config_set(struct apg_config *cfg, const char *key, const char *value,
                         enum apg_cfg_source src, char *err, size_t errlen);

/* Loads a Java .properties file; unknown keys are logged as warnings. */
apg_err_t apg_config_load_file(struct apg_config *cfg, const char *path, char *err, size_t errlen);

/* Parses argv (after the subcommand): -c FILE, -n ADDR, -p, --key=value,
 * --key value. -c is applied first, flags after, whatever their order.
 * *print_only is set by -p. */
apg_err_t apg_config_parse_args(struct apg_config *cfg, int argc, char **argv, bool *print_only,
                                char *err, size_t errlen);

int64_t apg_cfg_int(const struct apg_config *cfg, enum apg_cfg_id id);
bool apg_cfg_bool(const struct apg_config *cfg, enum apg_cfg_id id);
/* Borrowed; valid for the config's lifetime. */
const char *apg_cfg_str(const struct apg_config *cfg, enum apg_cfg_id id);
enum apg_role apg_config_role(const struct apg_config *cfg);

/* Prints "key=value  # source" lines for every key of the role; a value set
 * through a legacy alias reads "key=value  # file, as aliasName". */
void apg_config_print(const struct apg_config *cfg, FILE *out);
/* Prints the key table (name, default, help) for the role. */
void apg_config_print_help(enum apg_role role, FILE *out);

/* Parses Java .properties text; calls fn(key, value, ud) for each entry.
 * Pure: exposed for tests and for UPDATE_*_CONFIG bodies. */
apg_err_t apg_properties_parse(const char *text, size_t len,
                               void (*fn)(const char *key, const char *value, void *ud), void *ud);

#endif

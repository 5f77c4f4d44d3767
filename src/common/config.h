/* Configuration: RocketMQ key names, Java .properties files, --key=value flags.
 *
 * The keys are declared once in config.def. A struct apg_config holds one
 * value per key plus where it came from (default, file, command line), so
 * `-p` can print the effective configuration with its sources. Values are
 * validated when set; a bad value is an error naming the key and the range.
 * A key Apogee does not read is named for what it is, with the same words
 * on the command line and in a file: a RocketMQ setting Apogee does not
 * implement, or a setting of another role; both are ignored with a warning
 * (RocketMQ's own broker.conf carries them). A key that is neither (a typo)
 * is an error on the command line and a warning in a file. Spellings of older RocketMQ releases
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
    APG_ROLE_PROXY = 8, /* the gRPC front of several brokers (apogee proxy) */
};

enum apg_cfg_source {
    APG_CFG_SRC_DEFAULT,
    APG_CFG_SRC_ROLE,
    APG_CFG_SRC_FILE,
    APG_CFG_SRC_ARG,
    APG_CFG_SRC_RUNTIME, /* UPDATE_*_CONFIG while running */
};

struct apg_config;

/* Returns owned: free with apg_config_free(). Applies role defaults
 * (namesrv listens on 9876). */
struct apg_config *apg_config_new(enum apg_role role);
void apg_config_free(struct apg_config *cfg);
/* A copy of cfg (values, sources, port key); owned. NULL on no memory. For
 * a server that keeps its own configuration and updates it at runtime. */
struct apg_config *apg_config_dup(const struct apg_config *cfg);

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

/* True when name is a key marked RT in config.def: one that
 * UPDATE_NAMESRV_CONFIG / UPDATE_BROKER_CONFIG may change while running.
 * Paths, addresses, ports and store locations never are. */
bool apg_config_runtime_key_allowed(const char *name);

/* True when key id is marked RT and is one of cfg's role's keys. */
bool apg_config_runtime_id(const struct apg_config *cfg, enum apg_cfg_id id);

/* Applies an UPDATE_*_CONFIG body (Java .properties text) to cfg, all or
 * nothing: every key must be of cfg's role and allowed at runtime and every
 * value valid, else nothing changes and the error names the first key that
 * failed and why: APG_EPERM for a key that may not be changed remotely
 * (unknown, a path, read only at start-up), APG_ECONFIG for a bad value or
 * body. Changed keys get source APG_CFG_SRC_RUNTIME; *changed (may be NULL)
 * gets how many. Never writes a file. The caller applies the new values. */
apg_err_t apg_config_update_runtime(struct apg_config *cfg, const char *text, size_t len,
                                    int *changed, char *err, size_t errlen);

/* The role's keys and current values as Java .properties text
 * ("key=value\n", escaped so that a properties parser reads the values
 * back), NUL-terminated; owned, free with apg_free. NULL on no memory. */
char *apg_config_properties(const struct apg_config *cfg, size_t *len);

/* The boolean value of key name, or dflt when Apogee has no such key or it
 * does not apply to cfg's role. For keys another part may add later. */
bool apg_config_bool_by_name(const struct apg_config *cfg, const char *name, bool dflt);

/* The key error messages name for the listening port: "listenPort" unless
 * set (standalone's NameServer config sets "namesrvListenPort"). Borrowed. */
const char *apg_config_port_key(const struct apg_config *cfg);
void apg_config_set_port_key(struct apg_config *cfg, const char *key);

/* bindAddress is a loopback address (127.0.0.0/8, ::1, localhost): only
 * this host can connect. */
bool apg_config_bind_loopback(const struct apg_config *cfg);
/* bindAddress is a wildcard (0.0.0.0, ::, empty): every interface. */
bool apg_config_bind_wildcard(const struct apg_config *cfg);

/* Parses Java .properties text; calls fn(key, value, ud) for each entry.
 * Pure: exposed for tests and for UPDATE_*_CONFIG bodies. */
apg_err_t apg_properties_parse(const char *text, size_t len,
                               void (*fn)(const char *key, const char *value, void *ud), void *ud);

#endif

/* `apogee admin`: the mqadmin command set on the C client's I/O path.
 *
 * Contract between the dispatcher (admin.c) and the command families
 * (cluster.c topic.c group.c message.c offset.c broker_ops.c dlq.c
 * doctor.c): each family
 * declares a table of struct apg_adm_cmd (name, options, help text, run
 * function); admin.c parses the command line against that table, opens one
 * client I/O instance, runs the command and prints its result. A command
 * builds its result as one JSON value and hands it to apg_adm_emit() with a
 * column list: `--json` prints the value, otherwise a table is printed.
 *
 * Threads: everything here runs on the main thread; requests go through the
 * client's I/O thread (apg_cio_submit) and the main thread waits for each
 * answer. Not reentrant: one struct apg_adm per process. */
#ifndef APG_CLI_ADMIN_H
#define APG_CLI_ADMIN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "client/client_int.h"
#include "protocol/rcmd.h"

/* Exit statuses. */
#define APG_ADM_OK 0
#define APG_ADM_FAILED 1 /* the server refused or could not be reached */
#define APG_ADM_USAGE 2  /* the command line is wrong */

/* One option: a letter as mqadmin spells it, a long name, whether it takes
 * a value, and its help text. */
struct apg_adm_opt {
    char ao_letter;
    const char *ao_name;
    bool ao_arg;
    const char *ao_help;
};

struct apg_adm;

struct apg_adm_cmd {
    const char *ac_name;
    const char *ac_summary;
    const struct apg_adm_opt *ac_opts; /* ends with {0} */
    int (*ac_run)(struct apg_adm *a);  /* returns an APG_ADM_* exit status */
    const char *ac_json;               /* the --json fields, for help and docs */
};

/* The option a command lists to accept --dry-run (or -D). */
#define APG_ADM_OPT_DRY_RUN                                                                        \
    {                                                                                              \
        'D', "dry-run", false, "print what would change, change nothing"                           \
    }

/* The running command. Owned by the main thread. */
struct apg_adm {
    const struct apg_adm_cmd *ad_cmd;
    const char *ad_val[128]; /* option values by letter; "" for flags given */
    bool ad_json;
    bool ad_dry_run;
    const char *ad_ns; /* NameServer list */
    bool ad_ns_default;
    int ad_timeout_ms;
    struct apg_cio *ad_io;
    apg_conf_t *ad_conf; /* for the producer / pull consumer helpers */
};

/* ---- options ---- */
/* The value of option `letter`, or NULL when not given. */
const char *apg_adm_opt(const struct apg_adm *a, char letter);
/* The value, or prints "-x <name> is required" (with the command's usage)
 * and returns NULL. */
const char *apg_adm_need(struct apg_adm *a, char letter);
/* Parses option `letter` as an integer in [lo, hi]; dflt when absent.
 * Returns false (after printing why) when malformed. */
bool apg_adm_int(struct apg_adm *a, char letter, int64_t lo, int64_t hi, int64_t dflt,
                 int64_t *out);
/* A boolean option value ("true"/"false"); dflt when absent. */
bool apg_adm_bool(struct apg_adm *a, char letter, bool dflt);
/* Parses a timestamp option: milliseconds since the epoch, "now", or
 * yyyy-MM-dd#HH:mm:ss:SSS (mqadmin's form, local time). */
bool apg_adm_time(struct apg_adm *a, char letter, int64_t dflt, int64_t *out);

/* ---- errors: print "apogee admin <cmd>: ..." on stderr ---- */
int apg_adm_fail(struct apg_adm *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int apg_adm_usage(struct apg_adm *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- requests ---- */

/* A response, owned by the caller (apg_adm_resp_free). */
struct apg_adm_resp {
    int32_t ar_code;
    char *ar_remark; /* "" when absent */
    json_t *ar_ext;  /* object: extFields as strings */
    uint8_t *ar_body;
    size_t ar_body_len;
};
void apg_adm_resp_free(struct apg_adm_resp *r);

void apg_adm_req(struct apg_rcmd *req, int32_t code);
/* Sends req to addr and waits. APG_OK with *r filled (any response code),
 * or a transport error with a sentence in err. */
apg_err_t apg_adm_call(struct apg_adm *a, const char *addr, struct apg_rcmd *req, const void *body,
                       size_t blen, struct apg_adm_resp *r, char *err, size_t errlen);
/* The client I/O instance, created on first use; NULL after printing why. */
struct apg_cio *apg_adm_io(struct apg_adm *a);
/* The same to the NameServers of -n in turn, until one answers. */
apg_err_t apg_adm_ns_call(struct apg_adm *a, struct apg_rcmd *req, const void *body, size_t blen,
                          struct apg_adm_resp *r, char *err, size_t errlen);
/* Sends `code` with the ext fields kv ({name, value, ..., NULL}; a pair
 * whose value is NULL is left out) to addr, or with addr NULL to the
 * NameServers of -n in turn. APG_ADM_OK with *r filled (free it) when the
 * answer is SUCCESS; otherwise APG_ADM_FAILED with nothing to free, after
 * printing the transport error or the refusal (who names the server;
 * NULL: addr) unless quiet. */
int apg_adm_ask(struct apg_adm *a, const char *addr, const char *who, int32_t code,
                const char *const *kv, bool quiet, struct apg_adm_resp *r);
/* The `offset` header field a queue-offset request (GET_MAX_OFFSET,
 * GET_MIN_OFFSET, SEARCH_OFFSET_BY_TIMESTAMP with ts >= 0) answers for
 * topic / qid on addr; -1 when refused or unreachable (printed unless
 * quiet). */
int64_t apg_adm_queue_offset(struct apg_adm *a, const char *addr, int32_t code, const char *topic,
                             int qid, int64_t ts, bool quiet);
/* Request `code` with up to two ext fields (k2 may be NULL) to addr; the
 * JSON body of a SUCCESS answer (owned), or NULL for anything else
 * (quiet: callers that probe use it). */
json_t *apg_adm_get_json(struct apg_adm *a, const char *addr, int32_t code, const char *k1,
                         const char *v1, const char *k2, const char *v2);
/* Prints the refusal (code, name, remark, and a hint for
 * REQUEST_CODE_NOT_SUPPORTED) and returns APG_ADM_FAILED. */
int apg_adm_refused(struct apg_adm *a, const char *who, const struct apg_rcmd *req,
                    const struct apg_adm_resp *r);
/* The body as JSON (fastjson forms accepted), or NULL with err filled. */
json_t *apg_adm_body_json(const struct apg_adm_resp *r, char *err, size_t errlen);
/* Splits a normalised MessageQueue map key ({"brokerName":..,"queueId":..,
 * "topic":..}). */
bool apg_adm_mq_key(const char *key, char *broker, size_t blen, int *qid, char *topic, size_t tlen);

/* ---- brokers ---- */

struct apg_adm_broker {
    char ab_cluster[128];
    char ab_name[128];
    int64_t ab_id;
    char ab_addr[128];
};
/* Every broker of GET_BROKER_CLUSTER_INFO, sorted by cluster, name, id.
 * *out owned (apg_free). Prints the failure and returns false. */
bool apg_adm_brokers(struct apg_adm *a, struct apg_adm_broker **out, size_t *n);
/* Master addresses the command targets: -b, else the masters of cluster -c,
 * else every master; when `required` (a change) and neither was given, only
 * if the NameServer knows a single cluster. *out owned: apg_adm_strs_free.
 * Returns APG_ADM_OK, or prints why and returns the exit status. */
int apg_adm_targets(struct apg_adm *a, bool required, char ***out, size_t *n);
void apg_adm_strs_free(char **v, size_t n);
/* GET_ROUTEINFO_BY_TOPIC; NULL (after printing why unless quiet) when the
 * topic has no route. Returns an owned JSON route. */
json_t *apg_adm_route(struct apg_adm *a, const char *topic, bool quiet, int32_t *code);
/* Master address of broker name `broker` in a route, or NULL. */
const char *apg_adm_route_master(json_t *route, const char *broker);

/* A pull consumer / producer on the same NameServers (group given). NULL
 * after printing why. */
apg_pull_consumer_t *apg_adm_pull_consumer(struct apg_adm *a, const char *group);
apg_producer_t *apg_adm_producer(struct apg_adm *a, const char *group);

/* Reads the queues of topic with a pull consumer of group (nothing
 * committed): only broker / queue id qid when given (NULL, -1), from offset
 * (-1: the queue's first offset, or the first stored at begin_ts when > 0),
 * messages stored before end_ts, at most max (-1: all). Appends
 * apg_adm_msg_json() objects with brokerName and storeTime to out.
 * Prints and returns an exit status on failure. (message.c) */
int apg_adm_read_topic(struct apg_adm *a, const char *group, const char *topic, const char *broker,
                       int qid, const char *expr, int64_t offset, int64_t begin_ts, int64_t end_ts,
                       int64_t max, json_t *out);

/* Messages in %DLQ%<group> (max - min offset over its queues); -1 when
 * the topic does not exist or cannot be read. (dlq.c) */
int64_t apg_adm_dlq_depth(struct apg_adm *a, const char *group);

/* ---- output ---- */

/* One table column: header and member name of each row object. */
struct apg_adm_col {
    const char *cl_head;
    const char *cl_key;
};
/* Prints rows (a JSON array of objects) as a table under cols (ends with
 * {0}). */
void apg_adm_table(FILE *out, const struct apg_adm_col *cols, json_t *rows);
/* --json: prints result; otherwise the table of `rows` (a member of result,
 * or result itself when rows_key is NULL). Takes result. Returns
 * APG_ADM_OK. */
int apg_adm_emit(struct apg_adm *a, json_t *result, const char *rows_key,
                 const struct apg_adm_col *cols);
/* A message as a JSON object (topic, msgId, queue, offsets, times, tags,
 * keys, properties, body as UTF-8 text or base64). */
json_t *apg_adm_msg_json(const apg_message_t *m, bool with_body);
/* Sorts rows (takes it; returns the sorted array) by topic, brokerName,
 * queueId (members that are absent compare equal). */
json_t *apg_adm_sort_queues(json_t *rows);
/* Formats ms since the epoch as local "yyyy-MM-dd HH:mm:ss.SSS". */
const char *apg_adm_fmt_time(int64_t ms, char *buf, size_t len);

/* ---- command tables, one per family ---- */
extern const struct apg_adm_cmd apg_adm_cluster_cmds[];
extern const struct apg_adm_cmd apg_adm_topic_cmds[];
extern const struct apg_adm_cmd apg_adm_group_cmds[];
extern const struct apg_adm_cmd apg_adm_message_cmds[];
extern const struct apg_adm_cmd apg_adm_offset_cmds[];
extern const struct apg_adm_cmd apg_adm_config_cmds[];
extern const struct apg_adm_cmd apg_adm_broker_ops_cmds[];
extern const struct apg_adm_cmd apg_adm_dlq_cmds[];
extern const struct apg_adm_cmd apg_adm_doctor_cmds[];

/* argv[0] is "admin". Returns the process exit status. */
int apg_cli_admin_main(int argc, char **argv);

#endif

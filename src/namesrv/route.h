/* NameServer route table: which brokers exist, which topics they serve, and
 * when each broker was last heard from.
 *
 * Pure data structure: no sockets, no clocks (callers pass now_ms), no
 * threads. Owned by the NameServer's loop thread. JSON bodies are produced
 * with jansson in the shapes RocketMQ clients parse (docs/wire.md §4.2), map
 * keys always quoted ("brokerAddrs":{"0":"ip:port"}). */
#ifndef APG_NAMESRV_ROUTE_H
#define APG_NAMESRV_ROUTE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define APG_PERM_PRIORITY 0x8
#define APG_PERM_READ 0x4
#define APG_PERM_WRITE 0x2
#define APG_PERM_INHERIT 0x1

struct apg_route_table;

struct apg_data_version {
    int64_t dv_counter;
    int64_t dv_timestamp;
    int64_t dv_state_version;
};

struct apg_route_topic_conf {
    const char *tc_name;
    int32_t tc_read_queues;
    int32_t tc_write_queues;
    int32_t tc_perm;
    int32_t tc_sys_flag;
};

/* One REGISTER_BROKER, already decoded. Borrowed for the call. */
struct apg_route_reg {
    const char *rr_cluster;
    const char *rr_broker_name;
    const char *rr_broker_addr;
    const char *rr_ha_addr;
    const char *rr_zone; /* NULL when absent */
    int64_t rr_broker_id;
    int64_t rr_timeout_ms; /* heartbeatTimeoutMillis, 0 = the table default */
    bool rr_enable_acting_master;
    bool rr_has_dv; /* false: topics are applied unconditionally */
    struct apg_data_version rr_dv;
    const struct apg_route_topic_conf *rr_topics;
    size_t rr_n_topics;
    void *rr_conn; /* identity of the connection it came on (may be NULL) */
};

struct apg_route_reg_result {
    char rs_master_addr[128]; /* "" when none (or when registering the master) */
    char rs_ha_addr[128];
    bool rs_first; /* this address was not registered before */
};

/* Returns owned: free with apg_route_free(). default_timeout_ms applies to
 * brokers that do not send heartbeatTimeoutMillis. */
struct apg_route_table *apg_route_new(int64_t default_timeout_ms);
void apg_route_free(struct apg_route_table *rt);

apg_err_t apg_route_register(struct apg_route_table *rt, const struct apg_route_reg *reg,
                             int64_t now_ms, struct apg_route_reg_result *res);
/* Removes one broker address; drops the broker name (and its topics' queue
 * data) when it was the last address. Returns APG_ENOTFOUND if unknown. */
apg_err_t apg_route_unregister(struct apg_route_table *rt, const char *cluster,
                               const char *broker_name, const char *broker_addr, int64_t broker_id);
/* Removes brokers not heard from within their timeout; returns how many.
 * Logs one line per broker removed. */
int apg_route_expire(struct apg_route_table *rt, int64_t now_ms);
/* Removes brokers that registered on connection conn; returns how many. */
int apg_route_remove_conn(struct apg_route_table *rt, void *conn);
/* Refreshes the liveness of (cluster, addr). false if not registered. */
bool apg_route_heartbeat(struct apg_route_table *rt, const char *cluster, const char *addr,
                         int64_t now_ms);
/* QUERY_DATA_VERSION: *changed = the stored version differs from dv; the
 * stored version is copied to *stored when *has_stored. Refreshes liveness. */
void apg_route_query_data_version(struct apg_route_table *rt, const char *cluster, const char *addr,
                                  const struct apg_data_version *dv, int64_t now_ms, bool *changed,
                                  bool *has_stored, struct apg_data_version *stored);

/* WIPE / ADD_WRITE_PERM_OF_BROKER: returns the number of topics touched. */
int apg_route_wipe_write_perm(struct apg_route_table *rt, const char *broker_name);
int apg_route_add_write_perm(struct apg_route_table *rt, const char *broker_name);

/* DELETE_TOPIC_IN_NAMESRV: drops the topic's queue data of the brokers of
 * cluster (NULL or "": of every broker); the topic goes when none is left.
 * Returns how many brokers' queue data were dropped. A broker that still
 * has the topic brings it back with its next changed registration. */
int apg_route_delete_topic(struct apg_route_table *rt, const char *topic, const char *cluster);
/* Applies a new default broker timeout (brokerChannelExpiredTime). */
void apg_route_set_default_timeout(struct apg_route_table *rt, int64_t timeout_ms);

/* Bodies. Each returns a new reference (json_decref), or NULL. */
/* TopicRouteData; NULL when the topic has no live queue data. */
json_t *apg_route_topic_json(const struct apg_route_table *rt, const char *topic);
json_t *apg_route_cluster_info_json(const struct apg_route_table *rt);
json_t *apg_route_topic_list_json(const struct apg_route_table *rt);
json_t *apg_route_topics_by_cluster_json(const struct apg_route_table *rt, const char *cluster);
/* GET_SYSTEM_TOPIC_LIST_FROM_NS: {"topicList":[every cluster name and
 * broker name], "brokerAddr": one broker's address} (brokerAddr left out
 * when no broker is registered). */
json_t *apg_route_system_topic_list_json(const struct apg_route_table *rt);
/* Topics whose topicSysFlag (of the first broker's queue data) has every bit
 * of all and none of none: {"topicList":[...]}. The unit topic lists. */
json_t *apg_route_topics_by_flag_json(const struct apg_route_table *rt, int32_t all, int32_t none);
/* {"brokerMemberGroup":{...}}; brokerAddrs empty when unknown. */
json_t *apg_route_member_group_json(const struct apg_route_table *rt, const char *cluster,
                                    const char *broker_name);
json_t *apg_data_version_json(const struct apg_data_version *dv);
/* Parses {"counter":..,"timestamp":..,"stateVersion":..}; missing keys are 0. */
apg_err_t apg_data_version_parse(json_t *j, struct apg_data_version *dv);

/* Counts, for tests and logs. */
size_t apg_route_broker_count(const struct apg_route_table *rt); /* live addresses */
size_t apg_route_topic_count(const struct apg_route_table *rt);

#endif

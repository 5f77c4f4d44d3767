/* TopicRouteData codec: the route of one topic as the NameServer answers
 * GET_ROUTEINFO_BY_TOPIC, encoded by the NameServer and decoded by the client
 * library. Pure. */
#ifndef APG_PROTOCOL_ROUTE_JSON_H
#define APG_PROTOCOL_ROUTE_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* One broker of a broker group: id 0 is the master. */
struct apg_route_addr {
    int64_t ra_id;
    const char *ra_addr;
};

/* queueDatas[]: the topic's queues on one broker group. */
struct apg_route_qd {
    const char *qd_broker;
    int32_t qd_read;    /* readQueueNums */
    int32_t qd_write;   /* writeQueueNums */
    int32_t qd_perm;    /* PERM_READ 4 | PERM_WRITE 2 | ... */
    int32_t qd_sysflag; /* topicSysFlag */
};

/* brokerDatas[]: one broker group. */
struct apg_route_bd {
    const char *bd_cluster; /* may be NULL */
    const char *bd_name;
    const char *bd_zone; /* zoneName, may be NULL (omitted) */
    bool bd_acting;      /* enableActingMaster */
    const struct apg_route_addr *bd_addrs;
    size_t bd_naddrs;
};

/* A route. Encoding borrows every pointer; a decoded route owns them (free
 * with apg_route_data_free). */
struct apg_route_data {
    const struct apg_route_qd *rd_qds;
    size_t rd_nqds;
    const struct apg_route_bd *rd_bds;
    size_t rd_nbds;
    void *rd_owned; /* decoded: the one block holding the arrays, and the JSON */
    json_t *rd_json;
};

/* The JSON object the NameServer sends (keys in fastjson's order, an empty
 * filterServerTable). Returns a new reference, or NULL when out of memory. */
json_t *apg_route_data_to_json(const struct apg_route_data *rd);

/* One brokerDatas entry (also the value type of CLUSTER_INFO's
 * brokerAddrTable). New reference, or NULL when out of memory. */
json_t *apg_route_bd_to_json(const struct apg_route_bd *b);

/* Parses a route body (standard JSON or fastjson's unquoted integer keys).
 * APG_EPROTO with a reason in err for anything that is not a route:
 * missing or mistyped brokerDatas/queueDatas or their fields, a broker id
 * that is not an integer, a count outside int32. APG_ENOMEM. */
apg_err_t apg_route_data_decode(const uint8_t *buf, size_t len, struct apg_route_data *rd,
                                char *err, size_t errlen);
void apg_route_data_free(struct apg_route_data *rd);

#endif

/* TopicRouteData codec (see route_json.h).
 *
 * The body is a JSON object: "brokerDatas" is an array of broker groups
 * ({"brokerAddrs": {"<id>": "host:port", ...}, "brokerName", "cluster",
 * "enableActingMaster", optional "zoneName"}), "queueDatas" an array of
 * per-group queue counts ({"brokerName", "perm", "readQueueNums",
 * "topicSysFlag", "writeQueueNums"}), "filterServerTable" an object (always
 * empty here). A Java NameServer writes it with fastjson, whose map keys
 * are bare integers; apg_json_parse reads both forms. Unknown keys (newer
 * servers add some) are ignored.
 *
 * The decoder checks every field it returns: a mistyped or missing field is
 * an error rather than a broker silently dropped from the route. Decoded
 * strings stay inside the parsed JSON, which the route keeps; the arrays
 * are one allocation. Pure code; any thread. */
#include "protocol/route_json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/mem.h"

json_t *apg_route_bd_to_json(const struct apg_route_bd *b)
{
    json_t *addrs = json_object(), *j = json_object();
    bool ok = addrs && j && json_object_set(j, "brokerAddrs", addrs) == 0;
    for (size_t k = 0; ok && k < b->bd_naddrs; k++) {
        char id[24];
        snprintf(id, sizeof(id), "%lld", (long long)b->bd_addrs[k].ra_id);
        ok = json_object_set_new(addrs, id, json_string(b->bd_addrs[k].ra_addr)) == 0;
    }
    ok = ok && json_object_set_new(j, "brokerName", json_string(b->bd_name)) == 0 &&
         (b->bd_cluster == NULL ||
          json_object_set_new(j, "cluster", json_string(b->bd_cluster)) == 0) &&
         json_object_set_new(j, "enableActingMaster", json_boolean(b->bd_acting)) == 0 &&
         (b->bd_zone == NULL || json_object_set_new(j, "zoneName", json_string(b->bd_zone)) == 0);
    json_decref(addrs);
    if (!ok) {
        json_decref(j);
        return NULL;
    }
    return j;
}

json_t *apg_route_data_to_json(const struct apg_route_data *rd)
{
    json_t *qa = json_array(), *ba = json_array(), *j = json_object();
    bool ok = qa && ba && j;
    for (size_t i = 0; ok && i < rd->rd_nqds; i++) {
        const struct apg_route_qd *q = &rd->rd_qds[i];
        json_t *qj = json_object();
        ok = qj && json_array_append_new(qa, qj) == 0 &&
             json_object_set_new(qj, "brokerName", json_string(q->qd_broker)) == 0 &&
             json_object_set_new(qj, "perm", json_integer(q->qd_perm)) == 0 &&
             json_object_set_new(qj, "readQueueNums", json_integer(q->qd_read)) == 0 &&
             json_object_set_new(qj, "topicSysFlag", json_integer(q->qd_sysflag)) == 0 &&
             json_object_set_new(qj, "writeQueueNums", json_integer(q->qd_write)) == 0;
    }
    for (size_t i = 0; ok && i < rd->rd_nbds; i++)
        ok = json_array_append_new(ba, apg_route_bd_to_json(&rd->rd_bds[i])) == 0;
    ok = ok && json_object_set(j, "brokerDatas", ba) == 0 &&
         json_object_set_new(j, "filterServerTable", json_object()) == 0 &&
         json_object_set(j, "queueDatas", qa) == 0;
    json_decref(qa);
    json_decref(ba);
    if (!ok) {
        json_decref(j);
        return NULL;
    }
    return j;
}

static bool get_i32(json_t *o, const char *key, bool required, int32_t *out)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL) {
        *out = 0;
        return !required;
    }
    if (!json_is_integer(v))
        return false;
    json_int_t x = json_integer_value(v);
    if (x < INT32_MIN || x > INT32_MAX)
        return false;
    *out = (int32_t)x;
    return true;
}

static bool get_str(json_t *o, const char *key, bool required, const char **out)
{
    json_t *v = json_object_get(o, key);
    *out = NULL;
    if (v == NULL || json_is_null(v))
        return !required;
    *out = json_string_value(v);
    return *out != NULL;
}

static bool parse_id(const char *s, int64_t *id)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (s[0] == '\0' || *end != '\0' || errno != 0)
        return false;
    *id = v;
    return true;
}

apg_err_t apg_route_data_decode(const uint8_t *buf, size_t len, struct apg_route_data *rd,
                                char *err, size_t errlen)
{
    memset(rd, 0, sizeof(*rd));
    char jerr[160];
    json_t *root = apg_json_parse((const char *)buf, len, jerr, sizeof(jerr));
    if (root == NULL)
        return apg_errf(APG_EPROTO, err, errlen, "not JSON: %s", jerr);
    json_t *bds = json_object_get(root, "brokerDatas");
    json_t *qds = json_object_get(root, "queueDatas");
    if (!json_is_object(root) || !json_is_array(bds) || !json_is_array(qds)) {
        json_decref(root);
        return apg_errf(APG_EPROTO, err, errlen,
                        "brokerDatas or queueDatas is missing or not an array");
    }
    size_t nb = json_array_size(bds), nq = json_array_size(qds), na = 0;
    for (size_t i = 0; i < nb; i++)
        na += json_object_size(json_object_get(json_array_get(bds, i), "brokerAddrs"));
    size_t sz = nq * sizeof(struct apg_route_qd) + nb * sizeof(struct apg_route_bd) +
                na * sizeof(struct apg_route_addr);
    uint8_t *block = apg_calloc(1, sz ? sz : 1);
    if (block == NULL) {
        json_decref(root);
        return APG_ENOMEM;
    }
    struct apg_route_bd *b = (struct apg_route_bd *)block;
    struct apg_route_qd *q = (struct apg_route_qd *)(b + nb);
    struct apg_route_addr *a = (struct apg_route_addr *)(q + nq);
    rd->rd_owned = block;
    rd->rd_json = root;
    rd->rd_bds = b;
    rd->rd_qds = q;
    for (size_t i = 0; i < nb; i++) {
        json_t *bj = json_array_get(bds, i), *addrs = json_object_get(bj, "brokerAddrs");
        if (!json_is_object(bj) || !get_str(bj, "brokerName", true, &b[i].bd_name) ||
            !get_str(bj, "cluster", false, &b[i].bd_cluster) ||
            !get_str(bj, "zoneName", false, &b[i].bd_zone) || !json_is_object(addrs)) {
            apg_route_data_free(rd);
            return apg_errf(APG_EPROTO, err, errlen,
                            "brokerDatas[%zu] needs brokerName and a brokerAddrs object", i);
        }
        json_t *acting = json_object_get(bj, "enableActingMaster");
        b[i].bd_acting = json_is_true(acting);
        b[i].bd_addrs = a;
        const char *key;
        json_t *v;
        json_object_foreach(addrs, key, v)
        {
            if (!parse_id(key, &a->ra_id) || (a->ra_addr = json_string_value(v)) == NULL) {
                /* The message quotes the key: format it before the JSON goes. */
                apg_err_t e = apg_errf(APG_EPROTO, err, errlen,
                                       "brokerDatas[%zu].brokerAddrs: '%.40s' is not an id with "
                                       "an address",
                                       i, key);
                apg_route_data_free(rd);
                return e;
            }
            a++;
            b[i].bd_naddrs++;
        }
        rd->rd_nbds++;
    }
    for (size_t i = 0; i < nq; i++) {
        json_t *qj = json_array_get(qds, i);
        if (!json_is_object(qj) || !get_str(qj, "brokerName", true, &q[i].qd_broker) ||
            !get_i32(qj, "perm", true, &q[i].qd_perm) ||
            !get_i32(qj, "readQueueNums", true, &q[i].qd_read) ||
            !get_i32(qj, "writeQueueNums", true, &q[i].qd_write) ||
            !get_i32(qj, "topicSysFlag", false, &q[i].qd_sysflag)) {
            apg_route_data_free(rd);
            return apg_errf(APG_EPROTO, err, errlen,
                            "queueDatas[%zu] needs brokerName, perm, readQueueNums and "
                            "writeQueueNums",
                            i);
        }
        rd->rd_nqds++;
    }
    return APG_OK;
}

void apg_route_data_free(struct apg_route_data *rd)
{
    apg_free(rd->rd_owned);
    json_decref(rd->rd_json);
    memset(rd, 0, sizeof(*rd));
}

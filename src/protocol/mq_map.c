/* MessageQueue-keyed maps in fastjson's form (mq_map.h).
 *
 * The reader lets apg_json_parse turn the text into standard JSON (an
 * object key becomes a string holding its compact JSON text), then parses
 * each key string of the map under `field` as the MessageQueue object. */
#include <jansson.h>

#include "common/json.h"
#include "protocol/mq_map.h"

apg_err_t apg_mqmap_put_key(struct apg_buf *o, const char *broker, int32_t qid, const char *topic)
{
    apg_err_t e = apg_buf_append_str(o, "{\"brokerName\":");
    if (!e)
        e = apg_json_put_str(o, broker);
    if (!e)
        e = apg_buf_printf(o, ",\"queueId\":%d,\"topic\":", qid);
    if (!e)
        e = apg_json_put_str(o, topic);
    if (!e)
        e = apg_buf_append_str(o, "}:");
    return e;
}

apg_err_t apg_mqmap_parse_i64(const char *text, size_t len, const char *field, apg_mqmap_i64_fn fn,
                              void *ud)
{
    json_t *root = apg_json_parse(text, len, NULL, 0);
    json_t *map = json_object_get(root, field);
    apg_err_t e = json_is_object(map) ? APG_OK : APG_EINVAL;
    const char *k;
    json_t *v;
    json_object_foreach(map, k, v)
    {
        if (e)
            break;
        json_t *key = json_loads(k, 0, NULL);
        const char *broker = json_string_value(json_object_get(key, "brokerName"));
        const char *topic = json_string_value(json_object_get(key, "topic"));
        json_t *qid = json_object_get(key, "queueId");
        e = APG_EINVAL;
        if (broker && topic && json_is_integer(qid) && json_is_integer(v))
            e = fn(ud, broker, (int32_t)json_integer_value(qid), topic, json_integer_value(v));
        json_decref(key);
    }
    json_decref(root);
    return e;
}

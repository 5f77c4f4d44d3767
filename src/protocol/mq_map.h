/* Maps keyed by MessageQueue in fastjson's form (docs/wire.md §11.1): the
 * key object itself stands, unquoted, where JSON wants a string, as in
 * {"offsetTable":{{"brokerName":"b","queueId":0,"topic":"T"}:5,...}}.
 * Written by the broker (ConsumeStats, TopicStatsTable, ResetOffsetBody) and
 * read by the client (RESET_CONSUMER_CLIENT_OFFSET). Pure; any thread. */
#ifndef APG_PROTOCOL_MQ_MAP_H
#define APG_PROTOCOL_MQ_MAP_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

/* Appends {"brokerName":..,"queueId":N,"topic":..}: (fields in fastjson's
 * name order, the colon included). */
apg_err_t apg_mqmap_put_key(struct apg_buf *o, const char *broker, int32_t qid, const char *topic);

/* Called for each entry of a queue -> integer map; a non-zero return stops
 * the parse and is returned. Strings are NUL-terminated, borrowed. */
typedef apg_err_t (*apg_mqmap_i64_fn)(void *ud, const char *broker, int32_t qid, const char *topic,
                                      int64_t value);

/* Reads the queue -> integer map under the top-level key `field` of the
 * JSON object text[0..len) (ResetOffsetBody: "offsetTable"). APG_EINVAL
 * when the text is not of that form. */
apg_err_t apg_mqmap_parse_i64(const char *text, size_t len, const char *field, apg_mqmap_i64_fn fn,
                              void *ud);

#endif

/* RocketMQ message trace records (the text a client with trace on stores
 * in RMQ_SYS_TRACE_TOPIC) decoded to JSON for the admin API. */
#ifndef APG_HTTP_MSG_TRACE_H
#define APG_HTTP_MSG_TRACE_H

#include <jansson.h>
#include <stddef.h>

/* Appends to arr one object per record of data[0..n) that concerns the
 * message msg_id (NULL: every record): Pub, SubBefore, SubAfter and
 * EndTransaction; other and malformed records are skipped. */
void apg_msg_trace_decode(const char *data, size_t n, const char *msg_id, json_t *arr);

/* Gives each SubAfter the groupName, timestamp (when it has none) and
 * retryTimes of the SubBefore with its requestId, then sorts arr by
 * timestamp (stable). */
void apg_msg_trace_link(json_t *arr);

#endif

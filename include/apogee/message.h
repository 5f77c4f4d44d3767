/* Messages: what a producer sends and what a consumer receives. */
#ifndef APOGEE_MESSAGE_H
#define APOGEE_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

#include "apogee/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct apg_message apg_message_t;

/* A message queue: one queue of one topic on one broker (by broker name). */
typedef struct apg_mq {
    char mq_topic[256];
    char mq_broker[128];
    int mq_queue_id;
} apg_mq_t;

/* Creates a message for `topic` with a copy of `body` (len may be 0).
 * Returns owned: free with apg_message_free(); NULL when out of memory or
 * when topic is NULL/empty. The WAIT property is set to "true", as Java does. */
APG_EXPORT apg_message_t *apg_message_new(const char *topic, const void *body, size_t len);

/* Frees a message; NULL is allowed. */
APG_EXPORT void apg_message_free(apg_message_t *msg);

/* Setters copy their arguments (borrow). They return APG_EINVAL for bad
 * input and APG_ENOMEM when out of memory. */
APG_EXPORT apg_err_t apg_message_set_tags(apg_message_t *msg, const char *tags);
/* KEYS: several business keys are separated by single spaces. */
APG_EXPORT apg_err_t apg_message_set_keys(apg_message_t *msg, const char *keys);
/* Delay level 1..18 (1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h); 0 clears. */
APG_EXPORT apg_err_t apg_message_set_delay_level(apg_message_t *msg, int level);
/* Deliver time, wall-clock ms since the epoch (the TIMER_DELIVER_MS
 * property of RocketMQ 5.x timer messages): the broker holds the message
 * until then, to the millisecond; a time in the past is delivered at once,
 * one more than the broker's timerMaxDelaySec (3 days by default) ahead is
 * refused (APG_EBROKER, response code 13). 0 clears; negative is APG_EINVAL. */
APG_EXPORT apg_err_t apg_message_set_deliver_time(apg_message_t *msg, int64_t deliver_ms);
/* User property. Names reserved by RocketMQ (TAGS, KEYS, UNIQ_KEY, ...) are
 * refused with APG_EINVAL; names and values may not contain \x01 or \x02. */
APG_EXPORT apg_err_t apg_message_put_property(apg_message_t *msg, const char *name,
                                              const char *value);
/* The opaque user flag stored with the message. */
APG_EXPORT void apg_message_set_flag(apg_message_t *msg, int32_t flag);
APG_EXPORT apg_err_t apg_message_set_body(apg_message_t *msg, const void *body, size_t len);

/* Getters borrow from the message: valid until it is freed or changed.
 * String getters return NULL when absent. */
APG_EXPORT const char *apg_message_topic(const apg_message_t *msg);
APG_EXPORT const void *apg_message_body(const apg_message_t *msg, size_t *len);
APG_EXPORT const char *apg_message_tags(const apg_message_t *msg);
APG_EXPORT const char *apg_message_keys(const apg_message_t *msg);
APG_EXPORT const char *apg_message_property(const apg_message_t *msg, const char *name);
APG_EXPORT int32_t apg_message_flag(const apg_message_t *msg);
/* UNIQ_KEY: the id users see as the message id (set by send, or when received). */
APG_EXPORT const char *apg_message_id(const apg_message_t *msg);

/* Only meaningful on received messages (0 / NULL otherwise). */
APG_EXPORT const char *apg_message_offset_id(const apg_message_t *msg); /* broker-assigned msgId */
APG_EXPORT int apg_message_queue_id(const apg_message_t *msg);
APG_EXPORT int64_t apg_message_queue_offset(const apg_message_t *msg);
APG_EXPORT int64_t apg_message_commitlog_offset(const apg_message_t *msg);
APG_EXPORT int64_t apg_message_born_timestamp(const apg_message_t *msg);
APG_EXPORT int64_t apg_message_store_timestamp(const apg_message_t *msg);
APG_EXPORT int apg_message_reconsume_times(const apg_message_t *msg);

#ifdef __cplusplus
}
#endif

#endif

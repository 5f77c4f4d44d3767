/* Delay levels (RocketMQ's scheduled messages): a message whose DELAY
 * property names level L (1..messageDelayLevel's count, larger values
 * clamped to the last) is stored in SCHEDULE_TOPIC_XXXX queue L - 1 with
 * REAL_TOPIC and REAL_QID naming where it belongs, and moved there by the
 * delivery thread once its level's delay has passed since it was stored.
 * Retries of a consumer's send-back take the same path (broker_sendback.c).
 *
 * Progress (the next queue offset of each level) is persisted in
 * <storePathRootDir>/config/delayOffset.json, RocketMQ's file:
 * {"offsetTable":{"1":12,"2":0,...}}, keyed by level.
 *
 * Threads: apg_schedule_level, apg_schedule_props and apg_schedule_arrive are
 * called from any thread (loops, the store's putting thread); the rest from
 * the broker's start/stop thread. The delivery thread is this module's own. */
#ifndef APG_BROKER_SCHEDULE_H
#define APG_BROKER_SCHEDULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

struct apg_broker;
struct apg_schedule;

/* Parses messageDelayLevel and loads delayOffset.json; the send path can
 * use the result at once. Call after the store opens and before the loops
 * start. On success *out is owned by the caller (apg_schedule_stop). */
apg_err_t apg_schedule_open(struct apg_broker *b, struct apg_schedule **out, char *err,
                            size_t errlen);
/* Starts the delivery thread. Call once the broker's loops and server are
 * up: a delivery wakes parked pulls through them. */
apg_err_t apg_schedule_start(struct apg_schedule *sc, char *err, size_t errlen);
/* Stops the delivery thread, persists delayOffset.json and frees sc. Call
 * before the store closes. NULL is ignored. */
void apg_schedule_stop(struct apg_schedule *sc);

/* The level a message waits at: its DELAY value clamped to the last level,
 * 0 when it has none, it is not a positive number, or the message is a
 * transaction's prepared or rolled-back half (sysflag), which never waits. */
int apg_schedule_level(const struct apg_schedule *sc, const char *delay, size_t delay_len,
                       int32_t sysflag);

/* The number of levels (the last level), 0 for sc NULL. */
int apg_schedule_max_level(const struct apg_schedule *sc);

/* Appends to out the properties of a message that waits at level (> 0)
 * before it goes to (real_topic, real_qid): props without any DELAY,
 * REAL_TOPIC or REAL_QID pair, then DELAY=level, REAL_TOPIC, REAL_QID.
 * APG_ETOOBIG when the result passes 32767 bytes, APG_ENOMEM. */
apg_err_t apg_schedule_props(struct apg_buf *out, const char *props, size_t len, int level,
                             const char *real_topic, int32_t real_qid);

/* The same with the pair name=value in place of DELAY (a timer's
 * TIMER_OUT_MS): props without any name, REAL_TOPIC or REAL_QID pair, then
 * name=value, REAL_TOPIC, REAL_QID. */
apg_err_t apg_schedule_props_with(struct apg_buf *out, const char *props, size_t len,
                                  const char *name, const char *value, const char *real_topic,
                                  int32_t real_qid);

/* The store's arrive hook for SCHEDULE_TOPIC_XXXX: wakes the delivery
 * thread when the level had nothing pending. Cheap when it had. */
void apg_schedule_arrive(struct apg_schedule *sc, int32_t queue_id);

/* The next queue offset of level (1-based) to deliver, as the delivery
 * thread last moved it; -1 for a level that does not exist. Any thread. */
int64_t apg_schedule_offset(const struct apg_schedule *sc, int level);

/* A slave's copy of its master's progress (the delivery thread does not
 * run on a slave): takes off[i] as the next offset of level i + 1 (n
 * levels; -1 keeps a level) and writes delayOffset.json when it changed.
 * The service thread of a slave only. */
void apg_schedule_adopt(struct apg_schedule *sc, const int64_t *off, int n);

/* Messages delivered to their real topic since start. */
int64_t apg_schedule_delivered(const struct apg_schedule *sc);

#endif

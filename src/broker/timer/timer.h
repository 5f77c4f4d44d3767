/* Arbitrary-time timers (RocketMQ 5.x timer messages): a message whose
 * TIMER_DELIVER_MS (absolute, ms), TIMER_DELAY_SEC or TIMER_DELAY_MS
 * (relative to its arrival) or Aliyun's __STARTDELIVERTIME (absolute, ms)
 * names a time in the future is stored once in rmq_sys_wheel_timer queue 0
 * with TIMER_OUT_MS (its deliver time), REAL_TOPIC and REAL_QID, and copied
 * to its real queue by the timer thread once that time has come. A time at
 * or before the arrival means "now": the message is stored as usual. A
 * time more than timerMaxDelaySec ahead is refused.
 *
 * On disk (<storePathRootDir>): timer/slots/<slot> one append-only file of
 * 16-byte entries per timerPrecisionMs-wide slot of deliver time,
 * timer/slots/<slot>.del the keys of the cancels for that slot, and
 * config/timerProgress.json (src/broker/timer/timer.c says why and how).
 *
 * Threads: apg_timer_due and apg_timer_arrive from any thread; open, start
 * and stop from the broker's start/stop thread; the timer thread is this
 * module's own. */
#ifndef APG_BROKER_TIMER_H
#define APG_BROKER_TIMER_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "store/store.h" /* APG_TIMER_TOPIC */

struct apg_broker;
struct apg_timer;

/* Which property named the deliver time. */
enum apg_timer_kind {
    APG_TIMER_NONE,
    APG_TIMER_DELIVER_MS, /* TIMER_DELIVER_MS */
    APG_TIMER_DELAY_SEC,  /* TIMER_DELAY_SEC */
    APG_TIMER_DELAY_MS,   /* TIMER_DELAY_MS */
    APG_TIMER_START_MS,   /* __STARTDELIVERTIME (Aliyun ONS) */
};

/* The kind of property name[0..len), APG_TIMER_NONE for any other name. */
enum apg_timer_kind apg_timer_prop_kind(const char *name, size_t len);

/* The deliver time (wall ms) of a message arriving at now whose timer
 * property of kind has value v[0..len). 0 when the message does not wait:
 * no timer, a value that is not a non-negative decimal, or a time <= now.
 * APG_ERANGE (remark in err) when it is more than timerMaxDelaySec ahead;
 * *due_ms is then the requested time. */
apg_err_t apg_timer_due(const struct apg_timer *tm, enum apg_timer_kind kind, const char *v,
                        size_t len, int64_t now, int64_t *due_ms, char *err, size_t errlen);

/* Reads timerProgress.json; call after the store opens. *out is the
 * caller's (apg_timer_stop). */
apg_err_t apg_timer_open(struct apg_broker *b, struct apg_timer **out, char *err, size_t errlen);
/* Starts the timer thread (after the loops: a delivery wakes parked pulls). */
apg_err_t apg_timer_start(struct apg_timer *tm, char *err, size_t errlen);
/* Stops the thread, persists the progress and frees tm; before the store
 * closes. NULL is ignored. */
void apg_timer_stop(struct apg_timer *tm);

/* Cancels (RocketMQ 5's TIMER_DEL_UNIQKEY = "<topic>+<UNIQ_KEY>"): a timer
 * message carrying it is parked in this queue of rmq_sys_wheel_timer and,
 * instead of being delivered, stops the pending timer of that topic and
 * unique key in the same timerPrecisionMs slot from being delivered. */
#define APG_TIMER_CANCEL_QID 1

/* The rmq_sys_wheel_timer queue for a timer message with these properties:
 * APG_TIMER_CANCEL_QID when it carries TIMER_DEL_UNIQKEY, else 0. */
int32_t apg_timer_park_qid(const char *props, size_t len);

/* The store's arrive hook for rmq_sys_wheel_timer: wakes the thread. */
void apg_timer_arrive(struct apg_timer *tm);

/* Messages copied to their real topic since start. Any thread. */
int64_t apg_timer_delivered(const struct apg_timer *tm);

/* Pending timers not delivered because a cancel named them, since start. */
int64_t apg_timer_cancelled(const struct apg_timer *tm);

#endif

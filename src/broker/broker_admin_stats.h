/* Consumer progress and offsets administration: GET_CONSUME_STATS,
 * GET_TOPIC_STATS_INFO, the connection lists and the per-group consume rate
 * (broker_admin_stats.c); offset reset and running info, passed on to live
 * consumers (broker_admin_reset.c). */
#ifndef APG_BROKER_BROKER_ADMIN_STATS_H
#define APG_BROKER_BROKER_ADMIN_STATS_H

#include "broker/broker_rt.h"

/* Per-group consume counters (one mutex inside; any thread). */
struct apg_cstats *apg_cstats_new(void);
void apg_cstats_free(struct apg_cstats *cs);
/* Counts n messages of topic returned to group by a pull (loop thread). */
void apg_broker_consume_note(struct apg_broker *b, const char *group, const char *topic, int n);
/* INVOKE_BROKER_TO_RESET_OFFSET (222), GET_CONSUMER_RUNNING_INFO (307)
 * (broker_admin_reset.c). Loop thread. */
void apg_broker_proc_admin_reset(struct apg_broker *b, struct apg_conn *c,
                                 const struct apg_rcmd *req);
/* GET_CONSUME_STATS (208), GET_TOPIC_STATS_INFO (202). Loop thread. */
void apg_broker_proc_admin_stats(struct apg_broker *b, struct apg_conn *c,
                                 const struct apg_rcmd *req);

#endif

/* Consumer progress and offsets administration (broker_admin_stats.c):
 * GET_CONSUME_STATS, GET_TOPIC_STATS_INFO and the per-group consume rate
 * they report. */
#ifndef APG_BROKER_BROKER_ADMIN_STATS_H
#define APG_BROKER_BROKER_ADMIN_STATS_H

#include "broker/broker_rt.h"

/* Per-group consume counters (one mutex inside; any thread). */
struct apg_cstats *apg_cstats_new(void);
void apg_cstats_free(struct apg_cstats *cs);
/* Counts n messages of topic returned to group by a pull (loop thread). */
void apg_broker_consume_note(struct apg_broker *b, const char *group, const char *topic, int n);
/* GET_CONSUME_STATS (208), GET_TOPIC_STATS_INFO (202). Loop thread. */
void apg_broker_proc_admin_stats(struct apg_broker *b, struct apg_conn *c,
                                 const struct apg_rcmd *req);

#endif

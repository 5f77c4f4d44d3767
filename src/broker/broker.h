/* Broker: send, pull, offsets, clients, topics and groups over the store.
 *
 * apg_broker_start opens the store (recovering it if needed), starts the
 * event-loop threads and the background services, registers with every
 * NameServer in namesrvAddr, and returns once it accepts connections, or NULL
 * with err filled. */
#ifndef APG_BROKER_BROKER_H
#define APG_BROKER_BROKER_H

#include "common/config.h"

struct apg_broker;

/* Borrows cfg for the broker's lifetime. */
struct apg_broker *apg_broker_start(const struct apg_config *cfg, char *err, size_t errlen);
/* Graceful: unregister, stop accepting, flush, persist offsets, checkpoint. */
void apg_broker_stop(struct apg_broker *b);

#endif

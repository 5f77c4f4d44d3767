/* Broker entry points. The broker is being built (issue 4); until then
 * `apogee broker` refuses to start with a clear message. */
#include "broker/broker.h"

struct apg_broker *apg_broker_start(const struct apg_config *cfg, char *err, size_t errlen)
{
    apg_errf(APG_EINVAL, err, errlen, "the broker is not built yet in this version");
    return NULL;
}

void apg_broker_stop(struct apg_broker *b) {}

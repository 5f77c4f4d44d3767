/* NameServer entry points (being built, issue 2). */
#include "namesrv/namesrv.h"

struct apg_namesrv *apg_namesrv_start(const struct apg_config *cfg, char *err, size_t errlen)
{
    apg_errf(APG_EINVAL, err, errlen, "the NameServer is not built yet in this version");
    return NULL;
}

void apg_namesrv_stop(struct apg_namesrv *ns) {}

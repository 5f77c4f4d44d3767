/* NameServer: broker registration and liveness, topic routes, KV config.
 *
 * apg_namesrv_start starts the NameServer's own event-loop thread, which owns
 * the route table, listening on listenPort of the given config (role
 * NAMESRV). It returns once the socket listens, or NULL with err filled. */
#ifndef APG_NAMESRV_NAMESRV_H
#define APG_NAMESRV_NAMESRV_H

#include "common/config.h"

struct apg_namesrv;

/* Copies cfg (UPDATE_NAMESRV_CONFIG changes the copy); cfg is not kept. */
struct apg_namesrv *apg_namesrv_start(const struct apg_config *cfg, char *err, size_t errlen);
/* Standalone: accepts requests signed by account ak/sk as an admin's,
 * whatever the ACL file says, so the broker of the same process registers
 * without an account in the file. The account lives in memory only; main.c
 * makes it up at random for each start. No effect with aclEnable=false.
 * Control thread, once, before anyone is told the secret. */
void apg_namesrv_trust_inner(struct apg_namesrv *ns, const char *ak, const char *sk);
/* Graceful: stops accepting, closes connections, saves KV config, joins. */
void apg_namesrv_stop(struct apg_namesrv *ns);

#endif

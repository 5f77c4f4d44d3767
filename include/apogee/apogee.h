/* Apogee C client: the one header to include.
 *
 * A native client for the RocketMQ 4.x remoting protocol. It talks to Apogee
 * and to Apache RocketMQ NameServers and brokers alike.
 *
 * Conventions used by every prototype in these headers:
 *   - Handles are opaque (apg_producer_t, apg_consumer_t, apg_message_t).
 *   - Functions return an error code: 0 (APG_OK) on success, a negative APG_E*
 *     value on failure. When a function takes `char *err, size_t errlen`, a
 *     sentence saying what failed is written there (err may be NULL).
 *   - Ownership is written at each prototype: "borrows" means the caller keeps
 *     the object and may free it as soon as the call returns; "takes" means
 *     the library frees it; "returns owned" says which function frees it.
 *   - A call that returned an error never invokes its callback.
 *   - All public calls are thread-safe unless a prototype says otherwise.
 *     Callbacks run on the client's I/O thread: they must not block and must
 *     not call the synchronous functions of the same handle.
 *   - Synchronous calls wait for their answer by spinning briefly, then
 *     sleeping. Only a thread whose recent answers came back within the spin
 *     budget spins (a broker on the same host), one thread per process at a
 *     time; the environment variable APOGEE_CLIENT_SPIN_US sets the budget in
 *     microseconds (default 40; 0 turns spinning off).
 */
#ifndef APOGEE_APOGEE_H
#define APOGEE_APOGEE_H

#include <stddef.h>
#include <stdint.h>

#include "apogee/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Library version string, e.g. "0.1.0". */
APG_EXPORT const char *apg_client_version(void);

#ifdef __cplusplus
}
#endif

#include "apogee/message.h"
#include "apogee/producer.h"
#include "apogee/consumer.h"

#endif

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
 *   - Settings live in an opaque apg_conf_t set by key name (apogee/conf.h);
 *     handles copy it when they are made.
 *   - Synchronous calls wait for their answer by spinning briefly, then
 *     sleeping. Only a thread whose recent answers came back within the spin
 *     budget spins (a broker on the same host), one thread per process at a
 *     time; the conf key syncSpinMicros sets the budget in microseconds
 *     (default 40; 0 turns spinning off).
 */
#ifndef APOGEE_APOGEE_H
#define APOGEE_APOGEE_H

#include <stddef.h>
#include <stdint.h>

#include "apogee/error.h"
#include "apogee/version.h"
#include "apogee/log.h"
#include "apogee/conf.h"
#include "apogee/message.h"
#include "apogee/producer.h"
#include "apogee/consumer.h"

#endif

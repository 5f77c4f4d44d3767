/* Small library-wide calls of the public API that belong to no handle: the
 * library's version, RocketMQ response-code names and the retry rule for
 * broker refusals.
 *
 * Threads: every function here is pure (static tables) and callable from any
 * thread. */
#include "client/client_int.h"
#include "protocol/rcode.h"

const char *apg_version(void)
{
    return APG_VERSION;
}

int apg_version_num(void)
{
    return APG_VERSION_NUM;
}

const char *apg_broker_code_name(int code)
{
    return apg_resp_code_name(code);
}

/* The codes after which the Java producer sends again to another queue. */
int apg_broker_code_is_retriable(int code)
{
    switch (code) {
    case APG_RESP_SYSTEM_ERROR:
    case APG_RESP_SYSTEM_BUSY:
    case APG_RESP_SERVICE_NOT_AVAILABLE:
    case APG_RESP_NO_PERMISSION:
    case APG_RESP_TOPIC_NOT_EXIST:
    case APG_RESP_NO_BUYER_ID:
    case APG_RESP_NOT_IN_CURRENT_UNIT:
        return 1;
    default:
        return 0;
    }
}

/* Names of request and response codes, for logs and error remarks. */
#include "protocol/rcode.h"

#include <stddef.h>

const char *apg_req_code_name(int32_t code)
{
    switch (code) {
#define APG_REQ(name, value)                                                                       \
    case value:                                                                                    \
        return #name;
#include "protocol/request_codes.def"
#undef APG_REQ
    }
    return NULL;
}

const char *apg_resp_code_name(int32_t code)
{
    switch (code) {
#define APG_RESP(name, value)                                                                      \
    case value:                                                                                    \
        return #name;
#include "protocol/response_codes.def"
#undef APG_RESP
    }
    return NULL;
}

/* RocketMQ request and response codes (docs/wire.md §3), declared once.
 *
 * APG_REQ(name, value) and APG_RESP(name, value) X-macros live in
 * request_codes.def and response_codes.def; this header turns them into
 * enums and name lookups used for dispatch, logs and error remarks. */
#ifndef APG_PROTOCOL_RCODE_H
#define APG_PROTOCOL_RCODE_H

#include <stdint.h>

enum apg_req_code {
#define APG_REQ(name, value) APG_REQ_##name = value,
#include "protocol/request_codes.def"
#undef APG_REQ
};

enum apg_resp_code {
#define APG_RESP(name, value) APG_RESP_##name = value,
#include "protocol/response_codes.def"
#undef APG_RESP
};

/* Name of a request code ("SEND_MESSAGE_V2"), or NULL if unknown. */
const char *apg_req_code_name(int32_t code);
/* Name of a response code ("TOPIC_NOT_EXIST"), or NULL if unknown. */
const char *apg_resp_code_name(int32_t code);

#endif

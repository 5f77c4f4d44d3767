/* The remoting command: what one frame's header and body decode to, and
 * what an encoder is given (docs/wire.md §2). Both header codecs (the JSON
 * form in remoting_json.c, the binary form in remoting.c) fill and read this
 * struct; the frame functions are in remoting.h. Also the LanguageCode
 * names (rcmd.c). Pure. */
#ifndef APG_PROTOCOL_RCMD_H
#define APG_PROTOCOL_RCMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define APG_SER_JSON 0
#define APG_SER_ROCKETMQ 1

#define APG_RCMD_FLAG_RESPONSE 0x1
#define APG_RCMD_FLAG_ONEWAY 0x2

/* Most extFields one header may carry; more is a decode error. RocketMQ's
 * largest request header has about 30 fields. */
#define APG_RCMD_MAX_EXT 64

/* LanguageCode bytes (docs/wire.md §2.3). Servers always send JAVA. */
enum apg_lang {
    APG_LANG_JAVA = 0,
    APG_LANG_CPP = 1,
    APG_LANG_DOTNET = 2,
    APG_LANG_PYTHON = 3,
    APG_LANG_DELPHI = 4,
    APG_LANG_ERLANG = 5,
    APG_LANG_RUBY = 6,
    APG_LANG_OTHER = 7,
    APG_LANG_HTTP = 8,
    APG_LANG_GO = 9,
    APG_LANG_PHP = 10,
    APG_LANG_OMS = 11,
    APG_LANG_RUST = 12,
    APG_LANG_NODE_JS = 13,
};

struct apg_ext {
    const char *key; /* NUL-terminated */
    const char *val; /* NUL-terminated, never NULL (a JSON null decodes as "") */
};

/* A decoded or to-be-encoded remoting command. For decoded commands all
 * pointers borrow the scratch area and the frame; for encoding they borrow
 * whatever the caller points them at. */
struct apg_rcmd {
    int32_t code;       /* request code, or response code in a response */
    int32_t opaque;     /* correlation id */
    int32_t flag;       /* APG_RCMD_FLAG_* */
    int32_t version;    /* sender's MQVersion ordinal */
    uint8_t language;   /* enum apg_lang */
    uint8_t serialize;  /* APG_SER_JSON or APG_SER_ROCKETMQ: how it was (or will be) encoded */
    const char *remark; /* NULL when absent */
    uint32_t n_ext;
    struct apg_ext ext[APG_RCMD_MAX_EXT];
    const uint8_t *body; /* NULL when absent; borrows the frame */
    uint32_t body_len;
};

static inline bool apg_rcmd_is_response(const struct apg_rcmd *c)
{
    return (c->flag & APG_RCMD_FLAG_RESPONSE) != 0;
}
static inline bool apg_rcmd_is_oneway(const struct apg_rcmd *c)
{
    return (c->flag & APG_RCMD_FLAG_ONEWAY) != 0;
}

/* LanguageCode enum name ("JAVA", "NODE_JS"), or NULL for an unknown byte.
 * Returns a static string. */
const char *apg_rcmd_lang_name(uint8_t lang);

/* LanguageCode byte for a name of n bytes, or -1 when the name is unknown. */
int apg_rcmd_lang_parse(const char *name, size_t n);

#endif

/* libFuzzer harness for the NameServer's REGISTER_BROKER body decoders, which
 * any client that can reach the port may feed:
 *   first byte even: the input (after it) is the *inflated* form of a
 *     compressed body (dataVersion JSON length + text, topic count, then
 *     length-prefixed topic lines); the harness deflates it and hands it to
 *     apg_ns_register_body_inflate, so mutations reach the format rather than
 *     dying in zlib. Every 16th input also goes in raw (not deflated).
 *   first byte odd: the input is a plain JSON body (apg_json_parse, the
 *     Java-JSON normalizer in front of jansson).
 * A decoded body must be a JSON object; anything else must come back as
 * NULL with an error message. Seed: tests/fuzz/corpus/namesrv_decode. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common/json.h"
#include "namesrv/namesrv_int.h"

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

static void check(json_t *j, const char *err)
{
    if (j == NULL) {
        CHECK(err[0] != '\0');
        return;
    }
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 20))
        return 0;
    const uint8_t *in = data + 1;
    size_t len = size - 1;
    char err[256];
    err[0] = '\0';
    if (data[0] & 1) {
        char *copy = malloc(len ? len : 1);
        memcpy(copy, in, len);
        check(apg_json_parse(copy, len, err, sizeof(err)), err);
        free(copy);
        return 0;
    }
    uLongf zlen = compressBound((uLong)len);
    uint8_t *z = malloc(zlen);
    if (compress(z, &zlen, in, (uLong)len) == Z_OK)
        check(apg_ns_register_body_inflate(z, (uint32_t)zlen, err, sizeof(err)), err);
    free(z);
    if ((data[0] & 0x1e) == 0) {
        uint8_t *raw = malloc(len ? len : 1);
        memcpy(raw, in, len);
        err[0] = '\0';
        check(apg_ns_register_body_inflate(raw, (uint32_t)len, err, sizeof(err)), err);
        free(raw);
    }
    return 0;
}

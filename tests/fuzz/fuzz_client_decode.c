/* libFuzzer harness for what the C client decodes from a broker or a
 * NameServer: a buggy or hostile server must get an error back, never a
 * crash or an out-of-bounds read in the client.
 *
 * The first input byte picks the decoder, the rest is its input:
 *   even: a PULL_MESSAGE answer body (apg_msg_decode_records: stored records,
 *         properties, zlib bodies); every decoded message is read through the
 *         public accessors and freed;
 *   odd:  a GET_ROUTEINFO_BY_TOPIC answer body (apg_croute_parse); a parsed
 *         route is checked for consistency and queried like the producer does.
 * The input is copied to an exact-size buffer so ASan sees reads past it.
 * Seeds (tests/fuzz/corpus/client_decode) are real answers of `apogee
 * standalone`: a pull of plain and compressed records, and a route. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_int.h"

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

static apg_err_t on_msg(apg_message_t *m, void *arg)
{
    size_t *n = arg;
    size_t len = 0;
    const void *body = apg_message_body(m, &len);
    CHECK(len == 0 || body != NULL);
    const char *topic = apg_message_topic(m);
    CHECK(topic != NULL);
    (void)strlen(topic);
    const char *tags = apg_message_tags(m);
    if (tags)
        (void)strlen(tags);
    const char *keys = apg_message_keys(m);
    if (keys)
        (void)strlen(keys);
    const char *id = apg_message_id(m);
    if (id)
        (void)strlen(id);
    (void)apg_message_queue_offset(m);
    (void)apg_message_reconsume_times(m);
    apg_message_free(m);
    (*n)++;
    return APG_OK;
}

static void route(const uint8_t *p, size_t len)
{
    struct apg_croute rt;
    memset(&rt, 0, sizeof(rt));
    char err[256];
    if (apg_croute_parse("T", p, len, &rt, err, sizeof(err)) != APG_OK) {
        CHECK(err[0] != '\0');
        return;
    }
    uint32_t counter = 0;
    for (size_t i = 0; i < rt.rt_nwq + 1; i++) {
        int q = apg_croute_pick_rr(&rt, &counter, NULL);
        CHECK(q < 0 || (size_t)q < rt.rt_nwq);
        if (q >= 0)
            (void)apg_croute_master(&rt, rt.rt_wq[q].mq_broker);
    }
    int h = apg_croute_pick_hash(&rt, "order-1");
    CHECK(h < 0 || (size_t)h < rt.rt_nwq);
    apg_croute_free(&rt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t len = size - 1;
    uint8_t *copy = malloc(len ? len : 1);
    memcpy(copy, data + 1, len);
    if ((data[0] & 1) == 0) {
        size_t n = 0;
        char err[256];
        err[0] = '\0';
        if (apg_msg_decode_records(copy, len, on_msg, &n, err, sizeof(err)) != APG_OK)
            CHECK(err[0] != '\0' || len > 0);
    } else {
        route(copy, len);
    }
    free(copy);
    return 0;
}

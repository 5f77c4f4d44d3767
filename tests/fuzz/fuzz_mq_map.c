/* libFuzzer harness for the reader of MessageQueue-keyed maps
 * (src/protocol/mq_map.c), which the C client runs on the body of a
 * RESET_CONSUMER_CLIENT_OFFSET from a broker: any input gives APG_OK or
 * APG_EINVAL, never a crash or a read past the input. Every entry handed
 * to the callback has NUL-terminated strings. The input is copied to an
 * exact-size buffer so ASan sees reads past it. Seeds
 * (tests/fuzz/corpus/mq_map): a ResetOffsetBody as the broker writes it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/mq_map.h"

static apg_err_t on_entry(void *ud, const char *broker, int32_t qid, const char *topic, int64_t v)
{
    (void)qid;
    (void)v;
    size_t *n = ud;
    *n += strlen(broker) + strlen(topic);
    return APG_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *p = malloc(size ? size : 1);
    if (!p)
        return 0;
    memcpy(p, data, size);
    size_t n = 0;
    apg_err_t e = apg_mqmap_parse_i64(p, size, "offsetTable", on_entry, &n);
    if (e != APG_OK && e != APG_EINVAL)
        __builtin_trap();
    free(p);
    return 0;
}

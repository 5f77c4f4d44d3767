/* libFuzzer harness for the config tables' change journal
 * (src/broker/btable_journal.c): whatever a crash or a bad disk leaves in
 * topics.json.log, replay must apply whole, CRC-checked records only, stop
 * at the first bad one and never read past the input. Each upsert entry is
 * decoded as a TopicConfig, as the topic table's replay does. Seeds
 * (tests/fuzz/corpus/bjournal) hold upserts and a delete. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_int.h"

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

static apg_err_t apply(void *ud, int op, const char *name, const json_t *entry)
{
    (*(uint32_t *)ud)++;
    CHECK(op == APG_BJ_UPSERT || op == APG_BJ_DELETE);
    CHECK(name[0] && strlen(name) < APG_NAME_CAP);
    CHECK((op == APG_BJ_UPSERT) == (entry != NULL));
    if (op == APG_BJ_DELETE)
        return APG_OK;
    struct apg_topic_cfg tc;
    return apg_topic_cfg_decode(entry, &tc, NULL, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1);
    memcpy(copy, data, size);
    uint32_t applied = 0;
    struct apg_bjournal_scan s;
    apg_bjournal_scan(copy, size, size % 3, apply, &applied, &s);
    CHECK(s.bs_good <= size);
    CHECK((s.bs_stop == NULL) == (s.bs_good == size));
    CHECK(s.bs_applied <= s.bs_records && applied >= s.bs_applied);
    free(copy);
    return 0;
}

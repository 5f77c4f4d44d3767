/* libFuzzer harness for what pop consumption reads from the disk and the
 * network (src/broker/pop/): the journal and snapshot records
 * (apg_pop_rec_decode + apg_pop_state_apply, as a replay runs them) and the
 * receipt handles clients send back (apg_pop_handle_decode). The first
 * byte picks: even = a journal, odd = a handle. A replay must apply whole,
 * CRC-checked records only, stop at the first bad one, keep the state's
 * counts consistent and re-encode to a snapshot that replays to the same
 * counts; a handle that decodes must re-encode to text that decodes to the
 * same fields. Seeds: tests/fuzz/corpus/pop. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/pop/pop.h"
#include "broker/pop/pop_state.h"

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

static size_t replay(struct apg_pop_state *ps, const uint8_t *p, size_t len)
{
    size_t pos = 0;
    while (pos < len) {
        struct apg_pop_rec r;
        size_t used;
        if (apg_pop_rec_decode(p + pos, len - pos, &r, &used) != APG_OK)
            break;
        CHECK(used <= len - pos && used > 8);
        apg_err_t e = apg_pop_state_apply(ps, &r);
        CHECK(e == APG_OK || e == APG_ENOTFOUND || e == APG_ECORRUPT || e == APG_ENOMEM);
        /* Expire everything now and then, as the revive job would. */
        if (r.r_op == 'C') {
            struct apg_pop_ent *pe;
            while ((pe = apg_pop_state_due(ps, INT64_MAX / 8)) != NULL)
                apg_pop_state_expire(ps, pe, INT64_MAX / 8, 0);
        }
        pos += used;
    }
    return pos;
}

static void journal(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1);
    memcpy(copy, data, size);
    struct apg_pop_state ps, ps2;
    apg_pop_state_init(&ps);
    apg_pop_state_init(&ps2);
    size_t good = replay(&ps, copy, size);
    CHECK(good <= size);
    CHECK(ps.ps_heap_n <= (size_t)ps.ps_entries);
    struct apg_buf snap = APG_BUF_INIT;
    if (apg_pop_state_encode(&ps, &snap) == APG_OK) {
        CHECK(replay(&ps2, snap.b_data, snap.b_len) == snap.b_len);
        CHECK(ps2.ps_entries == ps.ps_entries);
        CHECK(ps2.ps_heap_n == ps.ps_heap_n);
    }
    apg_buf_free(&snap);
    apg_pop_state_free(&ps);
    apg_pop_state_free(&ps2);
    free(copy);
}

static void handle(const uint8_t *data, size_t size)
{
    struct apg_pop_handle h, h2;
    if (apg_pop_handle_decode((const char *)data, size, &h) != APG_OK)
        return;
    char s[1024];
    size_t n = apg_pop_handle_encode(&h, s, sizeof(s));
    CHECK(n > 0);
    CHECK(apg_pop_handle_decode(s, n, &h2) == APG_OK);
    CHECK(h2.ph_stamp == h.ph_stamp && h2.ph_queue == h.ph_queue && h2.ph_offset == h.ph_offset &&
          h2.ph_phys == h.ph_phys && h2.ph_type == h.ph_type &&
          strcmp(h2.ph_broker, h.ph_broker) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] & 1)
        handle(data + 1, size - 1);
    else
        journal(data + 1, size - 1);
    return 0;
}

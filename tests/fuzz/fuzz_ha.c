/* libFuzzer harness for the HA protocol codec (src/ha/ha_frame.c): the
 * input is read as the byte stream a slave gets from its master (frames,
 * back to back, as many as decode) and as the stream a master gets from a
 * slave (8-byte reports). Any input gives APG_OK, APG_EAGAIN or APG_EINVAL,
 * never a crash or a read past the input; a decoded frame lies inside the
 * input and its offset range does not overflow. The input is copied to an
 * exact-size buffer so ASan sees reads past it. Seeds (tests/fuzz/corpus/ha):
 * a heartbeat, a frame holding one stored record, two frames back to back,
 * reports. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ha/ha.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *p = malloc(size ? size : 1);
    if (!p)
        return 0;
    memcpy(p, data, size);
    size_t off = 0;
    for (;;) {
        struct apg_ha_frame f;
        size_t used = 0;
        char err[128];
        apg_err_t e =
            apg_ha_frame_decode(p + off, size - off, APG_HA_BODY_MAX, &f, &used, err, sizeof(err));
        if (e == APG_EAGAIN || e == APG_EINVAL)
            break;
        if (e != APG_OK || used != APG_HA_HEADER_LEN + (size_t)f.hf_size || used > size - off ||
            f.hf_offset < 0 || f.hf_body != p + off + APG_HA_HEADER_LEN ||
            (uint64_t)f.hf_offset + f.hf_size > (uint64_t)INT64_MAX)
            __builtin_trap();
        volatile uint8_t sink = f.hf_size ? f.hf_body[f.hf_size - 1] : 0;
        (void)sink;
        off += used;
    }
    int64_t rep = 0;
    size_t used = 0;
    apg_err_t e = apg_ha_report_decode(p, size, &rep, &used);
    if (e == APG_OK && (rep < 0 || used > size || used % APG_HA_REPORT_LEN != 0))
        __builtin_trap();
    if (e != APG_OK && e != APG_EAGAIN && e != APG_EINVAL)
        __builtin_trap();
    free(p);
    return 0;
}

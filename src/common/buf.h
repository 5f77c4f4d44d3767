/* Growable byte buffer. Owned by one thread at a time; grows by doubling so
 * that a buffer reused across requests stops allocating once warm. */
#ifndef APG_COMMON_BUF_H
#define APG_COMMON_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct apg_buf {
    uint8_t *b_data;
    size_t b_len;
    size_t b_cap;
};

#define APG_BUF_INIT                                                                               \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

void apg_buf_free(struct apg_buf *b);
/* Ensures room for `more` bytes past b_len. */
apg_err_t apg_buf_reserve(struct apg_buf *b, size_t more);
apg_err_t apg_buf_append(struct apg_buf *b, const void *p, size_t n);
apg_err_t apg_buf_append_str(struct apg_buf *b, const char *s);
apg_err_t apg_buf_printf(struct apg_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
apg_err_t apg_buf_put_be16(struct apg_buf *b, uint16_t v);
apg_err_t apg_buf_put_be32(struct apg_buf *b, uint32_t v);
apg_err_t apg_buf_put_be64(struct apg_buf *b, uint64_t v);
/* Drops the first n bytes (memmove). */
void apg_buf_consume(struct apg_buf *b, size_t n);
static inline void apg_buf_reset(struct apg_buf *b)
{
    b->b_len = 0;
}

/* Big-endian load/store helpers for codecs. */
static inline uint16_t apg_be16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}
static inline uint32_t apg_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t apg_be64(const uint8_t *p)
{
    return ((uint64_t)apg_be32(p) << 32) | apg_be32(p + 4);
}
static inline void apg_wbe16(uint8_t *p, uint16_t v)
{
    p[0] = v >> 8;
    p[1] = (uint8_t)v;
}
static inline void apg_wbe32(uint8_t *p, uint32_t v)
{
    p[0] = v >> 24;
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static inline void apg_wbe64(uint8_t *p, uint64_t v)
{
    apg_wbe32(p, (uint32_t)(v >> 32));
    apg_wbe32(p + 4, (uint32_t)v);
}

#endif

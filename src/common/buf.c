/* Growable byte buffer (see buf.h). */
#include "common/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/mem.h"

void apg_buf_free(struct apg_buf *b)
{
    apg_free(b->b_data);
    b->b_data = NULL;
    b->b_len = b->b_cap = 0;
}

apg_err_t apg_buf_reserve(struct apg_buf *b, size_t more)
{
    if (b->b_cap - b->b_len >= more)
        return APG_OK;
    if (more > SIZE_MAX / 2 - b->b_len)
        return APG_ENOMEM;
    size_t need = b->b_len + more;
    size_t cap = b->b_cap ? b->b_cap : 256;
    while (cap < need)
        cap *= 2;
    uint8_t *p = apg_realloc(b->b_data, cap);
    if (!p)
        return APG_ENOMEM;
    b->b_data = p;
    b->b_cap = cap;
    return APG_OK;
}

apg_err_t apg_buf_append(struct apg_buf *b, const void *p, size_t n)
{
    if (apg_buf_reserve(b, n))
        return APG_ENOMEM;
    if (n)
        memcpy(b->b_data + b->b_len, p, n);
    b->b_len += n;
    return APG_OK;
}

apg_err_t apg_buf_append_str(struct apg_buf *b, const char *s)
{
    return apg_buf_append(b, s, strlen(s));
}

apg_err_t apg_buf_printf(struct apg_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return APG_EINVAL;
    if (apg_buf_reserve(b, (size_t)n + 1))
        return APG_ENOMEM;
    va_start(ap, fmt);
    vsnprintf((char *)b->b_data + b->b_len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->b_len += (size_t)n;
    return APG_OK;
}

apg_err_t apg_buf_put_be16(struct apg_buf *b, uint16_t v)
{
    uint8_t t[2];
    apg_wbe16(t, v);
    return apg_buf_append(b, t, 2);
}

apg_err_t apg_buf_put_be32(struct apg_buf *b, uint32_t v)
{
    uint8_t t[4];
    apg_wbe32(t, v);
    return apg_buf_append(b, t, 4);
}

apg_err_t apg_buf_put_be64(struct apg_buf *b, uint64_t v)
{
    uint8_t t[8];
    apg_wbe64(t, v);
    return apg_buf_append(b, t, 8);
}

void apg_buf_consume(struct apg_buf *b, size_t n)
{
    if (n >= b->b_len) {
        b->b_len = 0;
        return;
    }
    memmove(b->b_data, b->b_data + n, b->b_len - n);
    b->b_len -= n;
}

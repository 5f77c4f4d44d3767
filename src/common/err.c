/* Error strings and the detail-formatting helper (see err.h). */
#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>

const char *apg_strerror(apg_err_t e)
{
    switch (e) {
#define APG_ERR_CASE(name, val, text)                                                              \
    case name:                                                                                     \
        return text;
        APG_ERR_LIST(APG_ERR_CASE)
#undef APG_ERR_CASE
    }
    return "unknown error";
}

apg_err_t apg_errf(apg_err_t e, char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return e;
}

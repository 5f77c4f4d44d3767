/* Error strings, names and the detail-formatting helper (see err.h and the
 * public include/apogee/error.h). Every function reads the one code list. */
#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>

const char *apg_strerror(apg_err_t e)
{
    switch (e) {
#define APG_ERR_CASE(name, val, text, retriable)                                                   \
    case name:                                                                                     \
        return text;
        APG_ERR_LIST(APG_ERR_CASE)
#undef APG_ERR_CASE
    }
    return "unknown error";
}

apg_err_t apg_err_public(apg_err_t e)
{
    switch (e) {
#define APG_ERR_CASE(name, val, text, retriable)                                                   \
    case name:                                                                                     \
        return e;
        APG_ERROR_LIST(APG_ERR_CASE)
#undef APG_ERR_CASE
    case APG_ECORRUPT:
        return APG_EPROTO;
    case APG_ENOSPC:
        return APG_ETOOBIG;
    case APG_ERANGE:
    case APG_EEXIST:
    case APG_ECONFIG:
        return APG_EINVAL;
    default:
        return APG_EIO;
    }
}

const char *apg_err_name(apg_err_t e)
{
    switch (e) {
#define APG_ERR_CASE(name, val, text, retriable)                                                   \
    case name:                                                                                     \
        return #name;
        APG_ERR_LIST(APG_ERR_CASE)
#undef APG_ERR_CASE
    }
    return "APG_E?";
}

const char *apg_err_describe(apg_err_t e)
{
    return apg_strerror(e);
}

int apg_err_is_retriable(apg_err_t e)
{
    switch (e) {
#define APG_ERR_CASE(name, val, text, retriable)                                                   \
    case name:                                                                                     \
        return retriable;
        APG_ERR_LIST(APG_ERR_CASE)
#undef APG_ERR_CASE
    }
    return 0;
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

/* The web console's files, embedded at build time (cmake/embed_web.cmake
 * writes the table into the build directory from web/). */
#ifndef APG_HTTP_CONSOLE_ASSETS_H
#define APG_HTTP_CONSOLE_ASSETS_H

#include <stddef.h>

struct apg_console_asset {
    const char *ca_path;         /* "/" for index.html, else "/assets/<file>" */
    const char *ca_content_type; /* "text/javascript; charset=utf-8" */
    const char *ca_etag;         /* quoted: "\"0123456789abcdef\"" */
    const unsigned char *ca_data;
    size_t ca_len;
};

extern const struct apg_console_asset apg_console_assets[];
extern const size_t apg_console_n_assets;

#endif

/* Version of the Apogee C client.
 *
 * The macros give the version of the headers a program was compiled with;
 * apg_version() gives the version of the library it runs with. Within one
 * major version the library stays compatible with programs built against an
 * older minor version (the soname carries the major version). */
#ifndef APOGEE_VERSION_H
#define APOGEE_VERSION_H

#include "apogee/export.h"

#define APG_VERSION_MAJOR 0
#define APG_VERSION_MINOR 1
#define APG_VERSION_PATCH 0
#define APG_VERSION "0.1.0"
/* One number that compares in order: 0x00MMmmpp. */
#define APG_VERSION_NUM ((APG_VERSION_MAJOR << 16) | (APG_VERSION_MINOR << 8) | APG_VERSION_PATCH)

#ifdef __cplusplus
extern "C" {
#endif

/* The library's version string, e.g. "0.1.0". Static string. */
APG_EXPORT const char *apg_version(void);

/* The library's APG_VERSION_NUM. */
APG_EXPORT int apg_version_num(void);

#ifdef __cplusplus
}
#endif

#endif

/* APG_EXPORT marks the prototypes of the public C API.
 *
 * libapogee is compiled with -fvisibility=hidden, so only functions declared
 * with APG_EXPORT appear in the shared library's dynamic symbol table; every
 * other function of the library stays internal and may change between
 * releases without breaking programs linked against it. */
#ifndef APOGEE_EXPORT_H
#define APOGEE_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#define APG_EXPORT __attribute__((visibility("default")))
#else
#define APG_EXPORT
#endif

#endif

/* Whole small files: atomic replace, whole-file read, recursive mkdir.
 *
 * Used for every metadata file the servers keep (topics.json,
 * subscriptionGroup.json, consumerOffset.json, kvConfig.json, ...).
 * Writes are crash-safe: <path>.tmp is written and fsynced, the current
 * <path> is kept as <path>.bak, <path>.tmp is renamed over <path>, and the
 * directory is fsynced so the rename is durable. A crash at any point
 * leaves either the old or the new content under <path> (and the previous
 * version in <path>.bak once a second write has happened).
 *
 * Threads: no shared state; callers serialise writes to one path. */
#ifndef APG_COMMON_FILE_H
#define APG_COMMON_FILE_H

#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"

/* Atomically replaces path with data[0..len), creating missing parent
 * directories. Borrows everything. APG_EDISKFULL when the disk is full,
 * APG_EIO otherwise (err says which step failed); <path>.tmp is removed on
 * failure and <path> is untouched. */
apg_err_t apg_file_write_atomic(const char *path, const void *data, size_t len, char *err,
                                size_t errlen);

/* "a/b" in a new allocation (apg_free), NULL when out of memory. */
char *apg_path_join(const char *a, const char *b);

/* Reads the whole file into out (reset first; NUL-terminated past b_len).
 * APG_ENOTFOUND (err untouched) when it does not exist. */
apg_err_t apg_file_read(const char *path, struct apg_buf *out, char *err, size_t errlen);

/* Creates dir and its missing parents (mode 0755); existing ones are fine. */
apg_err_t apg_file_mkdir_p(const char *dir, char *err, size_t errlen);

#endif

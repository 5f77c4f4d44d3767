/* NameServer KV config: namespace -> key -> value, persisted to one JSON
 * file ({"configTable":{"ns":{"k":"v"}}}, RocketMQ's kvConfig.json layout).
 *
 * Every change is written through atomically (apg_file_write_atomic: temp
 * file, fsync, .bak of the previous version, rename, fsync of the directory).
 * Owned by the NameServer's loop thread. */
#ifndef APG_NAMESRV_KV_H
#define APG_NAMESRV_KV_H

#include <jansson.h>

#include "common/err.h"

struct apg_kv;

/* Returns owned (free with apg_kv_free). Borrows nothing: path is copied.
 * Loads the file if it exists; a missing file is an empty table, an
 * unreadable or corrupt one an error (we refuse to overwrite it). */
apg_err_t apg_kv_open(const char *path, struct apg_kv **out, char *err, size_t errlen);
void apg_kv_free(struct apg_kv *kv);

/* Put and delete persist before returning; on a write error the in-memory
 * change is kept and the error returned (with err filled). */
apg_err_t apg_kv_put(struct apg_kv *kv, const char *ns, const char *key, const char *value,
                     char *err, size_t errlen);
apg_err_t apg_kv_delete(struct apg_kv *kv, const char *ns, const char *key, char *err,
                        size_t errlen);
/* Borrowed until the next change; NULL when absent. */
const char *apg_kv_get(const struct apg_kv *kv, const char *ns, const char *key);
/* {"table":{...}} as a new reference, or NULL when the namespace is empty. */
json_t *apg_kv_list_json(const struct apg_kv *kv, const char *ns);
const char *apg_kv_path(const struct apg_kv *kv);

#endif

/* NameServer KV config (see kv.h).
 *
 * The table is a jansson object (namespace -> object of strings); there are
 * few entries and changes are rare admin operations, so each change
 * rewrites the whole file with apg_file_write_atomic (temp file, fsync,
 * previous version kept as <path>.bak, rename, fsync of the directory). */
#include "namesrv/kv.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <stdlib.h>

#include "common/buf.h"
#include "common/file.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"

struct apg_kv {
    char *kv_path;
    json_t *kv_table; /* object: ns -> object: key -> string */
};

apg_err_t apg_kv_open(const char *path, struct apg_kv **out, char *err, size_t errlen)
{
    *out = NULL;
    struct apg_kv *kv = apg_calloc(1, sizeof(*kv));
    if (!kv || !(kv->kv_path = apg_strdup(path))) {
        apg_free(kv);
        return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    }
    struct apg_buf raw = APG_BUF_INIT;
    apg_err_t e = apg_file_read(path, &raw, err, errlen);
    if (e == APG_OK) {
        char jerr[200];
        json_t *root = apg_json_parse((const char *)raw.b_data, raw.b_len, jerr, sizeof(jerr));
        apg_buf_free(&raw);
        json_t *tbl = root ? json_object_get(root, "configTable") : NULL;
        if (!root || (tbl && !json_is_object(tbl))) {
            json_decref(root);
            apg_kv_free(kv);
            return apg_errf(APG_ECORRUPT, err, errlen,
                            "KV config %s is not valid JSON (%s); fix or move it away", path,
                            root ? "configTable is not an object" : jerr);
        }
        kv->kv_table = tbl ? json_incref(tbl) : json_object();
        json_decref(root);
    } else if (e == APG_ENOTFOUND) {
        apg_buf_free(&raw);
        kv->kv_table = json_object();
    } else {
        apg_buf_free(&raw);
        apg_kv_free(kv);
        return e;
    }
    *out = kv;
    return APG_OK;
}

void apg_kv_free(struct apg_kv *kv)
{
    if (!kv)
        return;
    json_decref(kv->kv_table);
    apg_free(kv->kv_path);
    apg_free(kv);
}

const char *apg_kv_path(const struct apg_kv *kv)
{
    return kv->kv_path;
}

static apg_err_t kv_save(struct apg_kv *kv, char *err, size_t errlen)
{
    json_t *root = json_object();
    json_object_set(root, "configTable", kv->kv_table);
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(root);
    struct apg_buf b = APG_BUF_INIT;
    apg_err_t e = text ? apg_buf_append(&b, text, strlen(text)) : APG_ENOMEM;
    if (!e)
        e = apg_buf_append(&b, "\n", 1);
    free(text);
    if (e)
        return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    e = apg_file_write_atomic(kv->kv_path, b.b_data, b.b_len, err, errlen);
    apg_buf_free(&b);
    return e;
}

apg_err_t apg_kv_put(struct apg_kv *kv, const char *ns, const char *key, const char *value,
                     char *err, size_t errlen)
{
    json_t *nso = json_object_get(kv->kv_table, ns);
    if (!nso) {
        nso = json_object();
        if (!nso || json_object_set_new(kv->kv_table, ns, nso))
            return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    }
    const char *old = json_string_value(json_object_get(nso, key));
    if (old && strcmp(old, value) == 0)
        return APG_OK;
    json_t *v = json_string(value);
    if (!v || json_object_set_new(nso, key, v))
        return apg_errf(APG_EINVAL, err, errlen, "value is not valid UTF-8");
    apg_log_info("namesrv", "KV config put %s/%s", ns, key);
    return kv_save(kv, err, errlen);
}

apg_err_t apg_kv_delete(struct apg_kv *kv, const char *ns, const char *key, char *err,
                        size_t errlen)
{
    json_t *nso = json_object_get(kv->kv_table, ns);
    if (!nso || json_object_del(nso, key))
        return APG_OK;
    if (json_object_size(nso) == 0)
        json_object_del(kv->kv_table, ns);
    apg_log_info("namesrv", "KV config delete %s/%s", ns, key);
    return kv_save(kv, err, errlen);
}

const char *apg_kv_get(const struct apg_kv *kv, const char *ns, const char *key)
{
    return json_string_value(json_object_get(json_object_get(kv->kv_table, ns), key));
}

json_t *apg_kv_list_json(const struct apg_kv *kv, const char *ns)
{
    json_t *nso = json_object_get(kv->kv_table, ns);
    if (!nso || json_object_size(nso) == 0)
        return NULL;
    json_t *j = json_object();
    json_object_set_new(j, "table", json_deep_copy(nso));
    return j;
}

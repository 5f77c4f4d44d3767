/* Broker utilities shared by the config tables: DataVersion and RocketMQ's
 * name rules, and the persist step the config tables share. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/broker_int.h"
#include "common/clock.h"

apg_err_t apg_btable_load(const char *path, json_t **out, char *err, size_t errlen)
{
    *out = NULL;
    struct apg_buf b = APG_BUF_INIT;
    apg_err_t e = apg_file_read(path, &b, err, errlen);
    if (e == APG_OK) {
        char inner[256] = "";
        *out = apg_json_parse((const char *)b.b_data, b.b_len, inner, sizeof(inner));
        if (!*out)
            e = apg_errf(APG_ECORRUPT, err, errlen,
                         "%s is not valid JSON (%s); fix it or restore %s.bak", path, inner, path);
    } else if (e == APG_ENOTFOUND) {
        e = APG_OK;
    }
    apg_buf_free(&b);
    return e;
}

apg_err_t apg_btable_persist(pthread_mutex_t *lock, struct apg_btable *bt, const char *path,
                             bool force, apg_btable_encode_fn encode, void *table, const char *what,
                             uint64_t *upto, char *err, size_t errlen)
{
    pthread_mutex_lock(lock);
    uint64_t changes = bt->bt_changes;
    bool dirty = changes != bt->bt_written;
    pthread_mutex_unlock(lock);
    if (upto)
        *upto = changes;
    if (!dirty && !force)
        return APG_OK;
    struct apg_buf b = APG_BUF_INIT;
    apg_err_t e = encode(table, &b);
    if (!e)
        e = apg_file_write_atomic(path, b.b_data, b.b_len, err, errlen);
    else
        apg_errf(e, err, errlen, "out of memory encoding %s", what);
    apg_buf_free(&b);
    pthread_mutex_lock(lock);
    if (!e && changes > bt->bt_written)
        bt->bt_written = changes;
    else if (e && upto)
        *upto = bt->bt_written;
    pthread_mutex_unlock(lock);
    return e;
}

uint64_t apg_btable_changes(pthread_mutex_t *lock, struct apg_btable *bt)
{
    pthread_mutex_lock(lock);
    uint64_t n = bt->bt_changes;
    pthread_mutex_unlock(lock);
    return n;
}

void apg_dver_next(struct apg_dver *v)
{
    v->dv_counter++;
    v->dv_timestamp = apg_wall_ms();
}

apg_err_t apg_dver_encode(const struct apg_dver *v, struct apg_buf *b)
{
    return apg_buf_printf(b, "{\"counter\":%lld,\"stateVersion\":0,\"timestamp\":%lld}",
                          (long long)v->dv_counter, (long long)v->dv_timestamp);
}

void apg_dver_decode(const json_t *j, struct apg_dver *v)
{
    v->dv_counter = apg_json_get_i64(j, "counter", 0);
    v->dv_timestamp = apg_json_get_i64(j, "timestamp", 0);
}

static apg_err_t check_name(const char *kind, const char *n, size_t max, char *err, size_t errlen)
{
    size_t len = strlen(n);
    if (len == 0)
        return apg_errf(APG_EINVAL, err, errlen, "the %s name is blank", kind);
    if (len > max)
        return apg_errf(APG_EINVAL, err, errlen,
                        "the %s name '%.64s...' is %zu characters long; the limit is %zu", kind, n,
                        len, max);
    for (const char *p = n; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '%' || c == '|' || c == '_' || c == '-'))
            return apg_errf(APG_EINVAL, err, errlen,
                            "the %s name '%s' contains '%c'; use only letters, digits, '%%', "
                            "'|', '_' and '-'",
                            kind, n, c);
    }
    return APG_OK;
}

apg_err_t apg_name_check_topic(const char *t, char *err, size_t errlen)
{
    bool sys = strncmp(t, APG_RETRY_PREFIX, 7) == 0 || strncmp(t, APG_DLQ_PREFIX, 5) == 0;
    return check_name("topic", t, sys ? APG_TOPIC_MAX_LEN_RETRY : APG_TOPIC_MAX_LEN, err, errlen);
}

apg_err_t apg_name_check_group(const char *g, char *err, size_t errlen)
{
    return check_name("group", g, APG_GROUP_MAX_LEN, err, errlen);
}

bool apg_name_topic_send_forbidden(const char *t)
{
    static const char *const forbidden[] = {"SCHEDULE_TOPIC_XXXX",
                                            "RMQ_SYS_TRANS_HALF_TOPIC",
                                            "RMQ_SYS_TRANS_OP_HALF_TOPIC",
                                            "TRANS_CHECK_MAX_TIME_TOPIC",
                                            "SELF_TEST_TOPIC",
                                            "OFFSET_MOVED_EVENT",
                                            "rmq_sys_wheel_timer",
                                            NULL};
    for (int i = 0; forbidden[i]; i++)
        if (strcmp(t, forbidden[i]) == 0)
            return true;
    return false;
}

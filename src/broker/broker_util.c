/* Broker utilities shared by the config tables: atomic small-file writes,
 * DataVersion, and RocketMQ's name rules.
 *
 * Config files are written the RocketMQ way: the new content goes to
 * <file>.tmp and is fsynced, the current file becomes <file>.bak, and the
 * tmp file is renamed over the original, so a crash leaves either version
 * readable. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "broker/broker_int.h"

static void mkdir_parents(const char *path)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            mkdir(tmp, 0755);
            *p = '/';
        }
    }
}

apg_err_t apg_bfile_write_atomic(const char *path, const void *data, size_t len, char *err,
                                 size_t errlen)
{
    char tmp[PATH_MAX], bak[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    snprintf(bak, sizeof(bak), "%s.bak", path);
    mkdir_parents(path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return apg_errf(APG_EIO, err, errlen, "cannot create %s: %s", tmp, strerror(errno));
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = errno;
            close(fd);
            return apg_errf(APG_EIO, err, errlen, "cannot write %s: %s", tmp, strerror(e));
        }
        p += n;
        left -= (size_t)n;
    }
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        return apg_errf(APG_EIO, err, errlen, "fsync %s failed: %s", tmp, strerror(e));
    }
    close(fd);
    if (access(path, F_OK) == 0 && (unlink(bak), link(path, bak) != 0)) {
        /* A missing .bak is not worth failing the write for. */
    }
    if (rename(tmp, path) != 0)
        return apg_errf(APG_EIO, err, errlen, "cannot rename %s to %s: %s", tmp, path,
                        strerror(errno));
    return APG_OK;
}

apg_err_t apg_bfile_read(const char *path, struct apg_buf *out, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return APG_ENOTFOUND;
        return apg_errf(APG_EIO, err, errlen, "cannot open %s: %s", path, strerror(errno));
    }
    apg_buf_reset(out);
    for (;;) {
        if (apg_buf_reserve(out, 65536)) {
            close(fd);
            return apg_errf(APG_ENOMEM, err, errlen, "out of memory reading %s", path);
        }
        ssize_t n = read(fd, out->b_data + out->b_len, out->b_cap - out->b_len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            return apg_errf(APG_EIO, err, errlen, "cannot read %s: %s", path, strerror(e));
        }
        if (n == 0)
            break;
        out->b_len += (size_t)n;
    }
    close(fd);
    out->b_data[out->b_len] = 0;
    return APG_OK;
}

static int64_t now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

void apg_dver_next(struct apg_dver *v)
{
    v->dv_counter++;
    v->dv_timestamp = now_ms();
}

apg_err_t apg_dver_encode(const struct apg_dver *v, struct apg_buf *b)
{
    return apg_buf_printf(b, "{\"counter\":%lld,\"stateVersion\":0,\"timestamp\":%lld}",
                          (long long)v->dv_counter, (long long)v->dv_timestamp);
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
                                            NULL};
    for (int i = 0; forbidden[i]; i++)
        if (strcmp(t, forbidden[i]) == 0)
            return true;
    return false;
}

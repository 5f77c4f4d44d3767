/* Whole small files (see file.h).
 *
 * apg_file_write_atomic keeps the previous version as <path>.bak with a
 * hard link made before the rename: the old inode stays reachable under
 * .bak while the new one takes <path>, so no old content has to be copied.
 * If the filesystem refuses hard links the old content is copied into
 * <path>.bak.tmp, fsynced and renamed, which gives the same guarantee.
 * A missing .bak never fails the write. */
#include "common/file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/mem.h"

static apg_err_t io_err(int e, char *err, size_t errlen, const char *what, const char *path)
{
    return apg_errf(e == ENOSPC || e == EDQUOT ? APG_EDISKFULL : APG_EIO, err, errlen, "%s %s: %s",
                    what, path, strerror(e));
}

char *apg_path_join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *p = apg_malloc(la + lb + 2);
    if (!p)
        return NULL;
    memcpy(p, a, la);
    p[la] = '/';
    memcpy(p + la + 1, b, lb + 1);
    return p;
}

apg_err_t apg_file_mkdir_p(const char *dir, char *err, size_t errlen)
{
    char tmp[PATH_MAX];
    size_t n = strlen(dir);
    if (n >= sizeof(tmp))
        return apg_errf(APG_EINVAL, err, errlen, "path too long: %.64s...", dir);
    memcpy(tmp, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] != '/' && tmp[i] != 0)
            continue;
        char c = tmp[i];
        tmp[i] = 0;
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            return io_err(errno, err, errlen, "cannot create", tmp);
        tmp[i] = c;
    }
    return APG_OK;
}

/* Writes data to a new file at path and fsyncs it. */
static apg_err_t write_synced(const char *path, const void *data, size_t len, char *err,
                              size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return io_err(errno, err, errlen, "cannot create", path);
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : EIO;
            close(fd);
            unlink(path);
            return io_err(e, err, errlen, "cannot write", path);
        }
        p += n;
        left -= (size_t)n;
    }
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(path);
        return io_err(e, err, errlen, "fsync failed for", path);
    }
    close(fd);
    return APG_OK;
}

static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* Makes <path>.bak hold the current content of path, if path exists. */
static void keep_backup(const char *path, const char *bak)
{
    if (access(path, F_OK) != 0)
        return;
    unlink(bak);
    if (link(path, bak) == 0)
        return;
    struct apg_buf old = APG_BUF_INIT;
    char bt[PATH_MAX + 16];
    snprintf(bt, sizeof(bt), "%s.tmp", bak);
    if (apg_file_read(path, &old, NULL, 0) == APG_OK &&
        write_synced(bt, old.b_data, old.b_len, NULL, 0) == APG_OK && rename(bt, bak) != 0)
        unlink(bt);
    apg_buf_free(&old);
}

apg_err_t apg_file_write_atomic(const char *path, const void *data, size_t len, char *err,
                                size_t errlen)
{
    char dir[PATH_MAX], tmp[PATH_MAX + 8], bak[PATH_MAX + 8];
    size_t pl = strlen(path);
    if (pl >= sizeof(dir))
        return apg_errf(APG_EINVAL, err, errlen, "path too long: %.64s...", path);
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(dir, sizeof(dir), ".");
    } else {
        size_t n = slash == path ? 1 : (size_t)(slash - path);
        memcpy(dir, path, n);
        dir[n] = 0;
    }
    apg_err_t rc = apg_file_mkdir_p(dir, err, errlen);
    if (rc)
        return rc;
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    snprintf(bak, sizeof(bak), "%s.bak", path);
    if ((rc = write_synced(tmp, data, len, err, errlen)))
        return rc;
    keep_backup(path, bak);
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return apg_errf(APG_EIO, err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(e));
    }
    sync_dir(dir);
    return APG_OK;
}

apg_err_t apg_file_read(const char *path, struct apg_buf *out, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return APG_ENOTFOUND;
        return io_err(errno, err, errlen, "cannot open", path);
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
            return io_err(e, err, errlen, "cannot read", path);
        }
        if (n == 0)
            break;
        out->b_len += (size_t)n;
    }
    close(fd);
    out->b_data[out->b_len] = 0;
    return APG_OK;
}

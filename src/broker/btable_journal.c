/* The change journal of a config table: <table file>.log next to
 * topics.json or subscriptionGroup.json.
 *
 * Rewriting the whole JSON file for every change costs O(table) per change
 * (2 MB at 10,000 topics), so creating topics one by one was quadratic.
 * Instead each change appends one record (its entry's JSON, or a delete)
 * to the table's pending buffer under the table lock, and the persisting
 * thread appends everything pending to the journal with one write and one
 * fdatasync (apg_btable_commit): concurrent changes still share one sync,
 * and a change costs its own bytes. The whole file is rewritten only when
 * the journal passes APG_BJOURNAL_MAX_BYTES or _RECORDS, on request
 * (start and clean stop), or after any journal failure; then the journal
 * is emptied. So after a clean stop the JSON file alone holds the table,
 * in RocketMQ's format.
 *
 * Recovery: the table loads its JSON file, then replays the journal (record
 * layout and the torn-tail rule in broker_int.h). Each record carries the
 * table's data version after the change and only records above the loaded
 * file's version are applied: a crash between writing the whole file and
 * emptying the journal leaves records the file already covers, and
 * replaying one of those could undo a later change the file holds.
 *
 * Threads: apg_btable_note runs under the table's lock on any thread;
 * open, commit and close run on one thread at a time (open and close on
 * the control thread, commit on the table writer). */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "broker/broker_int.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/mem.h"

#define HDR 8u                    /* length, CRC */
#define BODY_FIXED (1u + 8u + 2u) /* op, version, name length */

apg_err_t apg_bjournal_begin(struct apg_buf *b, int op, int64_t version, const char *name,
                             size_t *start)
{
    size_t nlen = strlen(name);
    if (nlen > UINT16_MAX)
        return APG_EINVAL;
    uint8_t h[HDR + BODY_FIXED];
    memset(h, 0, HDR);
    h[HDR] = (uint8_t)op;
    apg_wbe64(h + HDR + 1, (uint64_t)version);
    apg_wbe16(h + HDR + 9, (uint16_t)nlen);
    *start = b->b_len;
    apg_err_t e = apg_buf_append(b, h, sizeof(h));
    if (!e)
        e = apg_buf_append(b, name, nlen);
    return e;
}

void apg_bjournal_end(struct apg_buf *b, size_t start)
{
    uint8_t *r = b->b_data + start;
    uint32_t len = (uint32_t)(b->b_len - start - HDR);
    apg_wbe32(r, len);
    apg_wbe32(r + 4, apg_crc32(r + HDR, len));
}

/* One record at p[0..avail): APG_OK with its size in *used, or a reason. */
static const char *scan_one(const uint8_t *p, size_t avail, int64_t base, apg_bjournal_apply_fn fn,
                            void *ud, struct apg_bjournal_scan *out, size_t *used, apg_err_t *fail)
{
    if (avail < HDR + BODY_FIXED)
        return "record header cut short";
    uint32_t len = apg_be32(p);
    if (len < BODY_FIXED || len > avail - HDR)
        return len < BODY_FIXED ? "record length too small" : "record cut short";
    const uint8_t *body = p + HDR;
    if (apg_crc32(body, len) != apg_be32(p + 4))
        return "record CRC mismatch";
    int op = body[0];
    int64_t ver = (int64_t)apg_be64(body + 1);
    size_t nlen = apg_be16(body + 9);
    /* A name holding a NUL byte would be read as a shorter name (or as ""
     * by every string function): such a record does not decode. */
    if (nlen == 0 || nlen >= APG_NAME_CAP || nlen > len - BODY_FIXED ||
        memchr(body + BODY_FIXED, '\0', nlen) || (op != APG_BJ_UPSERT && op != APG_BJ_DELETE) ||
        (op == APG_BJ_DELETE && nlen != len - BODY_FIXED))
        return "record does not decode";
    char name[APG_NAME_CAP];
    memcpy(name, body + BODY_FIXED, nlen);
    name[nlen] = '\0';
    if (ver > base) {
        json_t *entry = NULL;
        if (op == APG_BJ_UPSERT) {
            entry = apg_json_parse((const char *)body + BODY_FIXED + nlen, len - BODY_FIXED - nlen,
                                   NULL, 0);
            if (!entry)
                return "record entry is not JSON";
        }
        apg_err_t e = fn(ud, op, name, entry);
        json_decref(entry);
        if (e == APG_ENOMEM) {
            *fail = e;
            return "out of memory";
        }
        if (e)
            return "record entry does not decode";
        out->bs_applied++;
    }
    if (ver > out->bs_max_version)
        out->bs_max_version = ver;
    out->bs_records++;
    *used = HDR + len;
    return NULL;
}

apg_err_t apg_bjournal_scan(const void *data, size_t len, int64_t base_version,
                            apg_bjournal_apply_fn fn, void *ud, struct apg_bjournal_scan *out)
{
    memset(out, 0, sizeof(*out));
    out->bs_max_version = base_version;
    const uint8_t *p = data;
    apg_err_t fail = APG_OK;
    while (out->bs_good < len) {
        size_t used = 0;
        out->bs_stop =
            scan_one(p + out->bs_good, len - out->bs_good, base_version, fn, ud, out, &used, &fail);
        if (out->bs_stop)
            break;
        out->bs_good += used;
    }
    return fail;
}

void apg_btable_note(struct apg_btable *bt, int op, int64_t version, const char *name,
                     apg_err_t (*encode)(const void *entry, struct apg_buf *b), const void *entry)
{
    if (!bt->bt_jpath || bt->bt_pending_lost)
        return;
    size_t start;
    apg_err_t e = apg_bjournal_begin(&bt->bt_pending, op, version, name, &start);
    if (!e && encode)
        e = encode(entry, &bt->bt_pending);
    if (e) {
        /* The next commit writes the whole file, which needs no records. */
        bt->bt_pending_lost = true;
        apg_buf_reset(&bt->bt_pending);
        bt->bt_pending_n = 0;
        return;
    }
    apg_bjournal_end(&bt->bt_pending, start);
    bt->bt_pending_n++;
}

static apg_err_t sync_dir(const char *path, char *err, size_t errlen)
{
    char copy[4096];
    snprintf(copy, sizeof(copy), "%s", path);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        int en = errno;
        if (fd >= 0)
            close(fd);
        return apg_errf(APG_EIO, err, errlen, "cannot sync the directory of %s: %s", path,
                        strerror(en));
    }
    close(fd);
    return APG_OK;
}

/* Opens the journal file, cut to len bytes, durably. */
static apg_err_t jopen(struct apg_btable *bt, uint64_t len, char *err, size_t errlen)
{
    int fd = open(bt->bt_jpath, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return apg_errf(errno == ENOSPC ? APG_EDISKFULL : APG_EIO, err, errlen,
                        "cannot open %s: %s", bt->bt_jpath, strerror(errno));
    if (ftruncate(fd, (off_t)len) != 0 || fsync(fd) != 0) {
        int en = errno;
        close(fd);
        return apg_errf(APG_EIO, err, errlen, "cannot cut %s to %llu bytes: %s", bt->bt_jpath,
                        (unsigned long long)len, strerror(en));
    }
    apg_err_t e = sync_dir(bt->bt_jpath, err, errlen);
    if (e) {
        close(fd);
        return e;
    }
    bt->bt_jfd = fd;
    bt->bt_jbytes = len;
    return APG_OK;
}

apg_err_t apg_btable_journal_open(struct apg_btable *bt, const char *path, int64_t base_version,
                                  apg_bjournal_apply_fn fn, void *ud, int64_t *max_version,
                                  char *err, size_t errlen)
{
    bt->bt_jfd = -1;
    size_t plen = strlen(path);
    bt->bt_jpath = apg_malloc(plen + 5);
    if (!bt->bt_jpath)
        return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    memcpy(bt->bt_jpath, path, plen);
    memcpy(bt->bt_jpath + plen, ".log", 5);
    *max_version = base_version;
    struct apg_buf b = APG_BUF_INIT;
    apg_err_t e = apg_file_read(bt->bt_jpath, &b, err, errlen);
    if (e == APG_ENOTFOUND) {
        apg_buf_free(&b);
        /* Created by the first commit (after the directory exists). */
        return APG_OK;
    }
    if (e) {
        apg_buf_free(&b);
        return e;
    }
    struct apg_bjournal_scan s;
    e = apg_bjournal_scan(b.b_data, b.b_len, base_version, fn, ud, &s);
    size_t total = b.b_len;
    apg_buf_free(&b);
    if (e)
        return apg_errf(e, err, errlen, "out of memory replaying %s", bt->bt_jpath);
    *max_version = s.bs_max_version;
    if (s.bs_records || total)
        apg_log_info("broker", "%s: replayed %u of %u changes", bt->bt_jpath, s.bs_applied,
                     s.bs_records);
    if (s.bs_stop)
        apg_log_warn("broker",
                     "%s: %s at byte %zu: ignoring the last %zu bytes (the tail of a write a "
                     "crash cut short; changes there were never acknowledged)",
                     bt->bt_jpath, s.bs_stop, s.bs_good, total - s.bs_good);
    /* Not fatal (a read-only directory starts as before): without an open
     * journal the next commit writes the whole file, which also replaces
     * a journal that could not be cut. */
    char jerr[256];
    if (jopen(bt, s.bs_good, jerr, sizeof(jerr)) == APG_OK)
        bt->bt_jrecords = s.bs_records;
    else
        apg_log_error("broker", "%s; the next change writes the whole table", jerr);
    return APG_OK;
}

static apg_err_t jappend(struct apg_btable *bt, const struct apg_buf *recs, char *err,
                         size_t errlen)
{
    size_t off = 0;
    while (off < recs->b_len) {
        ssize_t n =
            pwrite(bt->bt_jfd, recs->b_data + off, recs->b_len - off, (off_t)(bt->bt_jbytes + off));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return apg_errf(n < 0 && errno == ENOSPC ? APG_EDISKFULL : APG_EIO, err, errlen,
                            "cannot append to %s: %s", bt->bt_jpath,
                            n < 0 ? strerror(errno) : "short write");
        off += (size_t)n;
    }
    if (fdatasync(bt->bt_jfd) != 0)
        return apg_errf(APG_EIO, err, errlen, "cannot sync %s: %s", bt->bt_jpath, strerror(errno));
    return APG_OK;
}

static void jdrop(struct apg_btable *bt)
{
    if (bt->bt_jfd >= 0)
        close(bt->bt_jfd);
    bt->bt_jfd = -1;
}

apg_err_t apg_btable_commit(pthread_mutex_t *lock, struct apg_btable *bt, const char *path,
                            bool compact, apg_btable_encode_fn encode, void *table,
                            const char *what, uint64_t *upto, char *err, size_t errlen)
{
    if (!bt->bt_jpath)
        return apg_btable_persist(lock, bt, path, compact, encode, table, what, upto, err, errlen);
    struct apg_buf recs = APG_BUF_INIT;
    pthread_mutex_lock(lock);
    uint64_t changes = bt->bt_changes;
    bool dirty = changes != bt->bt_written;
    bool lost = bt->bt_pending_lost;
    uint32_t n = bt->bt_pending_n;
    recs = bt->bt_pending;
    bt->bt_pending = (struct apg_buf)APG_BUF_INIT;
    bt->bt_pending_n = 0;
    bt->bt_pending_lost = false;
    pthread_mutex_unlock(lock);
    if (upto)
        *upto = changes;
    apg_err_t e = APG_OK;
    bool whole = compact || lost || bt->bt_jfd < 0 ||
                 bt->bt_jbytes + recs.b_len > APG_BJOURNAL_MAX_BYTES ||
                 bt->bt_jrecords + n > APG_BJOURNAL_MAX_RECORDS;
    if (!whole && (dirty || recs.b_len)) {
        e = jappend(bt, &recs, err, errlen);
        if (!e) {
            bt->bt_jbytes += recs.b_len;
            bt->bt_jrecords += n;
            pthread_mutex_lock(lock);
            if (changes > bt->bt_written)
                bt->bt_written = changes;
            pthread_mutex_unlock(lock);
        } else {
            /* The file may end in a torn record now: later records must
             * not follow it, so the whole file is written next. */
            apg_log_error("broker", "%s; writing the whole table instead", err);
            jdrop(bt);
            whole = true;
        }
    }
    apg_buf_free(&recs);
    if (!whole)
        return APG_OK;
    if (!dirty && !compact && bt->bt_jfd >= 0)
        return APG_OK;
    /* The whole file holds every change so far, pending ones included. */
    e = apg_btable_persist(lock, bt, path, true, encode, table, what, upto, err, errlen);
    if (e) {
        jdrop(bt);
        return e;
    }
    if (bt->bt_jfd >= 0 && bt->bt_jbytes == 0)
        return APG_OK;
    jdrop(bt);
    char jerr[256];
    if (jopen(bt, 0, jerr, sizeof(jerr)) == APG_OK)
        bt->bt_jrecords = 0;
    else
        apg_log_error("broker", "%s; the next change writes the whole table again", jerr);
    return APG_OK;
}

void apg_btable_journal_close(struct apg_btable *bt)
{
    if (bt->bt_jpath)
        jdrop(bt);
    apg_buf_free(&bt->bt_pending);
    apg_free(bt->bt_jpath);
    bt->bt_jpath = NULL;
}

/* Recovery against committed fixture stores (tests/fixtures/store/<case>/).
 *
 * Each case is a small store (64 KiB commit-log segments, 100-entry consume
 * queue files) in the state a crash or an operator left it in. The test copies
 * the case to a temp dir, opens it and checks what recovery made of it.
 * test_check_store runs `apogee check-store` (src/cli/check_store.c) on every
 * case and on two more damaged stores made here, and checks its verdict, the
 * file and offset it names, and that it changed nothing.
 *
 * Regenerate the fixtures (only when the format changes) with
 *   APG_GEN_FIXTURES=1 build/test_store_fixtures
 * which rebuilds them with the store itself and then damages them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "cli/check_store.h"
#include "test_store_util.h"

#define FIX APG_FIXTURES_DIR "/store"
#define NMSG 10

static void sh(const char *fmt, const char *a, const char *b)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), fmt, a, b);
    if (system(cmd) != 0) {
        fprintf(stderr, "command failed: %s\n", cmd);
        abort();
    }
}

static void write_msgs(const char *dir, int from, int to)
{
    struct apg_store_opts o;
    tu_opts(&o, dir);
    struct apg_store *st;
    char err[512];
    if (apg_store_open(&o, &st, err, sizeof(err))) {
        fprintf(stderr, "open %s: %s\n", dir, err);
        abort();
    }
    for (int i = from; i < to; i++)
        if (tu_put(st, "F", 0, i, NULL))
            abort();
    apg_store_close(st);
}

static void touch(const char *dir, const char *name)
{
    char p[600];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    int fd = open(p, O_WRONLY | O_CREAT, 0644);
    if (fd >= 0)
        close(fd);
}

/* Offset of record k (0-based) in the first segment. */
static long rec_off(const char *dir, int k)
{
    char p[600];
    snprintf(p, sizeof(p), "%s/commitlog/00000000000000000000", dir);
    FILE *f = fopen(p, "rb");
    uint8_t b[65536];
    size_t n = fread(b, 1, sizeof(b), f);
    fclose(f);
    long off = 0;
    for (int i = 0; i < k && off + 4 <= (long)n; i++)
        off += apg_be32(b + off);
    return off;
}

static void patch_byte(const char *dir, long off, uint8_t x)
{
    char p[600];
    snprintf(p, sizeof(p), "%s/commitlog/00000000000000000000", dir);
    int fd = open(p, O_RDWR);
    uint8_t v;
    if (pread(fd, &v, 1, off) != 1)
        abort();
    v ^= x;
    if (pwrite(fd, &v, 1, off) != 1)
        abort();
    close(fd);
}

static void gen(void)
{
    char d[512];
    sh("rm -rf '%s' && mkdir -p '%s'", FIX, FIX);
    /* valid: clean shutdown. */
    snprintf(d, sizeof(d), "%s/valid", FIX);
    write_msgs(d, 0, NMSG);
    sh("rm -f '%s/lock'%s", d, "");

    /* old_checkpoint: checkpoint and queues from after 3 messages, log has 10. */
    snprintf(d, sizeof(d), "%s/old_checkpoint", FIX);
    write_msgs(d, 0, 3);
    sh("cp -a '%s' '%s.save'", d, d);
    write_msgs(d, 3, NMSG);
    sh("rm -rf '%s/consumequeue' '%s/checkpoint'", d, d);
    sh("cp -a '%s.save/consumequeue' '%s/'", d, d);
    sh("cp -a '%s.save/checkpoint' '%s/' && rm -rf '%s.save'", d, d);
    sh("rm -rf '%s.save'%s", d, "");
    touch(d, "abort");
    sh("rm -f '%s/lock'%s", d, "");

    /* torn_tail: crash while writing the 10th record: file cut inside it. */
    snprintf(d, sizeof(d), "%s/torn_tail", FIX);
    write_msgs(d, 0, 5);
    sh("cp -a '%s/checkpoint' '%s.ckpt'", d, d);
    write_msgs(d, 5, NMSG);
    sh("mv '%s.ckpt' '%s/checkpoint'", d, d);
    touch(d, "abort");
    {
        long cut = rec_off(d, NMSG - 1) + 30;
        char p[600];
        snprintf(p, sizeof(p), "%s/commitlog/00000000000000000000", d);
        if (truncate(p, cut) != 0)
            abort();
    }
    sh("rm -f '%s/lock'%s", d, "");

    /* corrupt_middle: one body byte of record 4 (index 3) flipped, no checkpoint. */
    snprintf(d, sizeof(d), "%s/corrupt_middle", FIX);
    write_msgs(d, 0, NMSG);
    patch_byte(d, rec_off(d, 3) + 90, 0x20);
    sh("rm -f '%s/checkpoint' '%s/lock'", d, d);
    touch(d, "abort");

    /* zero_tail: crash with a preallocated, zero-filled next segment. */
    snprintf(d, sizeof(d), "%s/zero_tail", FIX);
    write_msgs(d, 0, NMSG);
    sh("truncate -s 65536 '%s/commitlog/00000000000000065536'%s", d, "");
    sh("rm -f '%s/checkpoint' '%s/lock'", d, d);
    touch(d, "abort");

    /* missing_cq: the consumequeue directory is gone. */
    snprintf(d, sizeof(d), "%s/missing_cq", FIX);
    write_msgs(d, 0, NMSG);
    sh("rm -rf '%s/consumequeue' '%s/lock'", d, d);
}

static char *copy_case(const char *name)
{
    char *dir = tu_tmpdir();
    char src[512];
    snprintf(src, sizeof(src), "%s/%s", FIX, name);
    sh("cp -a '%s/.' '%s/'", src, dir);
    return dir;
}

static struct apg_store *open_case(const char *dir, bool force, apg_err_t want, char *err,
                                   size_t errlen)
{
    struct apg_store_opts o;
    tu_opts(&o, dir);
    o.so_force_recover_corrupt = force;
    struct apg_store *st = NULL;
    apg_err_t rc = apg_store_open(&o, &st, err, errlen);
    if (rc != want)
        fprintf(stderr, "open: %s\n", err);
    assert_int_equal(rc, want);
    return st;
}

static void expect_case(const char *name, int want_msgs)
{
    char *dir = copy_case(name);
    char err[1024];
    struct apg_store *st = open_case(dir, false, APG_OK, err, sizeof(err));
    assert_int_equal(tu_count(st, "F", 0, 0), want_msgs);
    assert_int_equal(apg_store_max_offset(st, "F", 1, 0), want_msgs);
    /* Appends continue right after the recovered data. */
    struct apg_put_result pr;
    assert_int_equal(tu_put(st, "F", 0, want_msgs, &pr), 0);
    assert_int_equal(pr.pr_queue_offset, want_msgs);
    apg_store_close(st);
    /* And a clean reopen sees the same. */
    st = open_case(dir, false, APG_OK, err, sizeof(err));
    assert_int_equal(tu_count(st, "F", 0, 0), want_msgs + 1);
    apg_store_close(st);
    tu_rmrf(dir);
    free(dir);
}

static void test_valid(void **s)
{
    expect_case("valid", NMSG);
}

static void test_old_checkpoint(void **s)
{
    expect_case("old_checkpoint", NMSG);
}

static void test_torn_tail(void **s)
{
    expect_case("torn_tail", NMSG - 1);
}

static void test_zero_tail(void **s)
{
    expect_case("zero_tail", NMSG);
}

static bool only_tag1(void *ud, int64_t tags)
{
    return tags == apg_java_hash("tag1", 4);
}

static void test_missing_cq(void **s)
{
    expect_case("missing_cq", NMSG);
    /* Tag hashes are rebuilt from the TAGS property. */
    char *dir = copy_case("missing_cq");
    char err[512];
    struct apg_store *st = open_case(dir, false, APG_OK, err, sizeof(err));
    struct apg_buf b = APG_BUF_INIT;
    struct apg_get_result r;
    assert_int_equal(apg_store_get(st, "F", 1, 0, 0, 32, 1 << 20, only_tag1, NULL, &b, &r), 0);
    assert_int_equal(r.gr_count, NMSG / 2);
    apg_buf_free(&b);
    apg_store_close(st);
    tu_rmrf(dir);
    free(dir);
}

static void test_corrupt_middle(void **s)
{
    char *dir = copy_case("corrupt_middle");
    char err[1024];
    open_case(dir, false, APG_ECORRUPT, err, sizeof(err));
    /* The message names the file and the offset and says how to override. */
    assert_non_null(strstr(err, "00000000000000000000"));
    char at[64];
    snprintf(at, sizeof(at), "offset %ld", rec_off(dir, 3));
    assert_non_null(strstr(err, at));
    assert_non_null(strstr(err, "forceRecoverCorrupt"));
    /* Refusing must not have changed anything: same verdict again. */
    open_case(dir, false, APG_ECORRUPT, err, sizeof(err));
    /* With the explicit flag: truncated at the bad record. */
    struct apg_store *st = open_case(dir, true, APG_OK, err, sizeof(err));
    assert_int_equal(tu_count(st, "F", 0, 0), 3);
    apg_store_close(st);
    tu_rmrf(dir);
    free(dir);
}

/* Runs check-store on dir (extra: one more argument or NULL); returns its exit
 * status and its stdout (owned, in *out). */
static int run_check(const char *dir, const char *extra, char **out)
{
    char arg[600];
    snprintf(arg, sizeof(arg), "--storePathRootDir=%s", dir);
    char *argv[] = {"check-store", arg, (char *)extra, NULL};
    char path[] = "/tmp/apg_check_out_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stdout);
    int saved = dup(1);
    dup2(fd, 1);
    int rc = apg_cli_check_store_main(extra ? 3 : 2, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    off_t len = lseek(fd, 0, SEEK_END);
    *out = calloc(1, (size_t)len + 1);
    assert_int_equal(pread(fd, *out, (size_t)len, 0), len);
    close(fd);
    unlink(path);
    fprintf(stderr, "--- check-store %s: exit %d\n%s", dir, rc, *out);
    return rc;
}

static void check_case(const char *name, int want_rc, const char *want1, const char *want2)
{
    char *dir = copy_case(name);
    char *out;
    assert_int_equal(run_check(dir, NULL, &out), want_rc);
    if (want1)
        assert_non_null(strstr(out, want1));
    if (want2)
        assert_non_null(strstr(out, want2));
    free(out);
    /* Read-only: the copy still equals the fixture byte for byte. */
    char src[512];
    snprintf(src, sizeof(src), "%s/%s", FIX, name);
    sh("diff -r '%s' '%s' >/dev/null", src, dir);
    tu_rmrf(dir);
    free(dir);
}

static void test_check_store(void **s)
{
    char at[128];
    check_case("valid", 0, "HEALTHY", "ok    consumequeue/F/0: 10 entries [0, 10)");
    {
        char *dir = copy_case("corrupt_middle");
        snprintf(at, sizeof(at), "ERROR commitlog/00000000000000000000 offset %ld ",
                 rec_off(dir, 3));
        tu_rmrf(dir);
        free(dir);
    }
    check_case("corrupt_middle", 2, at, "body CRC mismatch");
    {
        char *dir = copy_case("torn_tail");
        snprintf(at, sizeof(at), "WARN  commitlog/00000000000000000000 offset %ld ",
                 rec_off(dir, NMSG - 1));
        tu_rmrf(dir);
        free(dir);
    }
    check_case("torn_tail", 1, at, "torn tail");
    check_case("old_checkpoint", 1, "consumequeue/F/0: ends at queue offset 3",
               "abort: marker present");
    check_case("zero_tail", 1, "checkpoint: no checkpoint file", "abort: marker present");
    check_case("missing_cq", 1, "no consumequeue directory", NULL);

    /* A segment missing from the middle of the log. */
    char *dir = tu_tmpdir();
    write_msgs(dir, 0, 1500); /* ~115-byte records: three 64 KiB segments */
    sh("rm -f '%s/commitlog/00000000000000065536' '%s/lock'", dir, dir);
    char *out;
    assert_int_equal(run_check(dir, NULL, &out), 2);
    assert_non_null(strstr(out, "ERROR commitlog/00000000000000131072: expected the next "
                                "segment to start at 00000000000000065536"));
    free(out);
    tu_rmrf(dir);
    free(dir);

    /* A queue entry that points at another record. */
    dir = copy_case("valid");
    long other = rec_off(dir, 3);
    char p[600];
    snprintf(p, sizeof(p), "%s/consumequeue/F/0/00000000000000000000", dir);
    int fd = open(p, O_RDWR);
    uint8_t be[8];
    apg_wbe64(be, (uint64_t)other);
    assert_int_equal(pwrite(fd, be, 8, 2 * 20), 8);
    close(fd);
    assert_int_equal(run_check(dir, NULL, &out), 2);
    snprintf(at, sizeof(at),
             "ERROR consumequeue/F/0/00000000000000000000 offset 40: queue offset 2 points at "
             "the record at %ld (F/0 queue offset 3",
             other);
    assert_non_null(strstr(out, at));
    free(out);
    /* Bad arguments: the check does not run. */
    assert_int_equal(run_check("/nonexistent/apg", NULL, &out), 3);
    free(out);
    tu_rmrf(dir);
    free(dir);
}

int main(void)
{
    if (getenv("APG_GEN_FIXTURES")) {
        gen();
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),       cmocka_unit_test(test_old_checkpoint),
        cmocka_unit_test(test_torn_tail),   cmocka_unit_test(test_zero_tail),
        cmocka_unit_test(test_missing_cq),  cmocka_unit_test(test_corrupt_middle),
        cmocka_unit_test(test_check_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

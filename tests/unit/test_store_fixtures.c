/* Recovery against committed fixture stores (tests/fixtures/store/<case>/).
 *
 * Each case is a small store (64 KiB commit-log segments, 100-entry consume
 * queue files) in the state a crash or an operator left it in. The test copies
 * the case to a temp dir, opens it and checks what recovery made of it.
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

int main(void)
{
    if (getenv("APG_GEN_FIXTURES")) {
        gen();
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),      cmocka_unit_test(test_old_checkpoint),
        cmocka_unit_test(test_torn_tail),  cmocka_unit_test(test_zero_tail),
        cmocka_unit_test(test_missing_cq), cmocka_unit_test(test_corrupt_middle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

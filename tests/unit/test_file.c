/* Unit tests for src/common/file: atomic replace with .bak, whole-file
 * reads, recursive mkdir. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/file.h"

static void rm_rf(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void assert_content(const char *path, const char *want)
{
    struct apg_buf b = APG_BUF_INIT;
    char err[256];
    assert_int_equal(apg_file_read(path, &b, err, sizeof(err)), APG_OK);
    assert_int_equal(b.b_len, strlen(want));
    assert_string_equal((const char *)b.b_data, want);
    apg_buf_free(&b);
}

static void test_write_keeps_bak(void **state)
{
    (void)state;
    char dir[] = "/tmp/apg_file_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], p2[300], err[256];
    /* Parent directories are created. */
    snprintf(path, sizeof(path), "%s/a/b/config.json", dir);
    struct apg_buf b = APG_BUF_INIT;
    assert_int_equal(apg_file_read(path, &b, err, sizeof(err)), APG_ENOTFOUND);

    assert_int_equal(apg_file_write_atomic(path, "one", 3, err, sizeof(err)), APG_OK);
    assert_content(path, "one");
    snprintf(p2, sizeof(p2), "%s.bak", path);
    assert_int_not_equal(access(p2, F_OK), 0); /* nothing to back up yet */

    assert_int_equal(apg_file_write_atomic(path, "second", 6, err, sizeof(err)), APG_OK);
    assert_content(path, "second");
    assert_content(p2, "one");
    assert_int_equal(apg_file_write_atomic(path, "", 0, err, sizeof(err)), APG_OK);
    assert_content(path, "");
    assert_content(p2, "second");
    snprintf(p2, sizeof(p2), "%s.tmp", path);
    assert_int_not_equal(access(p2, F_OK), 0);

    /* Reading resets the buffer and NUL-terminates. */
    assert_int_equal(apg_buf_append(&b, "junk", 4), APG_OK);
    assert_int_equal(apg_file_read(path, &b, err, sizeof(err)), APG_OK);
    assert_int_equal(b.b_len, 0);
    assert_int_equal(b.b_data[0], 0);
    apg_buf_free(&b);
    rm_rf(dir);
}

static void test_write_errors(void **state)
{
    (void)state;
    char dir[] = "/tmp/apg_file_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], err[256] = "";
    /* A regular file where a parent directory should be. */
    snprintf(path, sizeof(path), "%s/plain", dir);
    assert_int_equal(apg_file_write_atomic(path, "x", 1, err, sizeof(err)), APG_OK);
    snprintf(path, sizeof(path), "%s/plain/sub/config.json", dir);
    assert_int_equal(apg_file_write_atomic(path, "x", 1, err, sizeof(err)), APG_EIO);
    assert_non_null(strstr(err, "plain"));
    /* A directory where the file should be: the rename fails, no temp left. */
    snprintf(path, sizeof(path), "%s/isdir", dir);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/isdir/inner", dir);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/isdir", dir);
    err[0] = 0;
    assert_int_equal(apg_file_write_atomic(path, "x", 1, err, sizeof(err)), APG_EIO);
    assert_non_null(strstr(err, "rename"));
    snprintf(path, sizeof(path), "%s/isdir.tmp", dir);
    assert_int_not_equal(access(path, F_OK), 0);
    rm_rf(dir);
}

static void test_mkdir_p(void **state)
{
    (void)state;
    char dir[] = "/tmp/apg_file_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], err[256];
    struct stat st;
    snprintf(path, sizeof(path), "%s/x/y//z/", dir);
    assert_int_equal(apg_file_mkdir_p(path, err, sizeof(err)), APG_OK);
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(apg_file_mkdir_p(path, err, sizeof(err)), APG_OK); /* idempotent */
    snprintf(path, sizeof(path), "%s/x/y/z/f", dir);
    assert_int_equal(apg_file_write_atomic(path, "x", 1, err, sizeof(err)), APG_OK);
    snprintf(path, sizeof(path), "%s/x/y/z/f/g", dir);
    assert_int_not_equal(apg_file_mkdir_p(path, err, sizeof(err)), APG_OK);
    rm_rf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_keeps_bak),
        cmocka_unit_test(test_write_errors),
        cmocka_unit_test(test_mkdir_p),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* A full disk in the middle of a put (store_fault.h ENOSPC injection): the
 * commit-log record is written, then its new consume queue cannot be created.
 * The put is refused, the records before it in the batch stay, and the store
 * opens again afterwards, after a clean stop and after a crash, with exactly
 * the published records: the refused record's bytes must not come back as a
 * record past the end, and the checkpoint must not count the queue that was
 * never created (which would force a rebuild of every queue at the next start,
 * needing the space that is missing). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <sys/stat.h>

#include "store/store_fault.h"
#include "store/store_int.h"
#include "test_store_util.h"

static void reopen_check(const struct apg_store_opts *o, int64_t end, int a_count)
{
    struct apg_store *st;
    char err[512];
    assert_int_equal(apg_store_open(o, &st, err, sizeof(err)), 0);
    struct apg_store_stats ss;
    apg_store_stats(st, &ss);
    assert_int_equal(ss.ss_max_phys_offset, end);
    assert_int_equal(tu_count(st, "A", 0, 0), a_count);
    assert_int_equal(apg_store_max_offset(st, "NEW", 3, 0), 0);
    apg_store_close(st);
}

static void test_enospc_new_queue(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    struct apg_store_opts o;
    tu_opts(&o, dir);
    struct apg_store *st;
    char err[512];
    assert_int_equal(apg_store_open(&o, &st, err, sizeof(err)), 0);
    assert_int_equal(tu_put(st, "A", 0, 0, NULL), 0);

    /* A batch: one record to an existing queue, one to a new queue whose
     * directory cannot be created. */
    apg_store_fault_arm();
    assert_int_equal(apg_store_fault_enospc_next_create(st), 0);
    struct tu_msg t[2];
    struct apg_msg_in in[2];
    struct apg_put_result pr[2];
    tu_msg_make(&t[0], "A", 0, 1);
    tu_msg_make(&t[1], "NEW", 0, 2);
    in[0] = t[0].m;
    in[1] = t[1].m;
    assert_int_equal(apg_store_put(st, in, 2, pr, NULL, NULL, err, sizeof(err)), APG_EDISKFULL);
    assert_non_null(strstr(err, "No space left on device"));
    /* A single record to the new queue, refused the same way. */
    assert_int_equal(apg_store_fault_enospc_next_create(st), 0);
    assert_int_equal(apg_store_put(st, &t[1].m, 1, pr, NULL, NULL, err, sizeof(err)),
                     APG_EDISKFULL);
    struct apg_store_stats ss;
    apg_store_stats(st, &ss);
    int64_t end = ss.ss_max_phys_offset;
    assert_int_equal(tu_count(st, "A", 0, 0), 2); /* the batch's first record stays */
    assert_int_equal(apg_store_max_offset(st, "NEW", 3, 0), 0);
    apg_store_close(st);
    struct apg_ckpt ck;
    apg_ckpt_read(dir, &ck);
    assert_true(ck.ck_valid);
    assert_int_equal(ck.ck_nqueues, 1); /* only A's queue exists on disk */

    reopen_check(&o, end, 2); /* after a clean stop */

    char path[600];
    snprintf(path, sizeof(path), "%s/abort", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    reopen_check(&o, end, 2); /* after a crash: everything re-validated */

    /* Space is back: the new queue is created by the next put. */
    assert_int_equal(apg_store_open(&o, &st, err, sizeof(err)), 0);
    assert_int_equal(tu_put(st, "NEW", 0, 3, NULL), 0);
    assert_int_equal(apg_store_max_offset(st, "NEW", 3, 0), 1);
    apg_store_close(st);
    tu_rmrf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_enospc_new_queue),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

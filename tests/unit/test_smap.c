/* Unit tests for src/common/smap: the string-keyed hash map the broker and
 * the NameServer keep their tables in. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/smap.h"

static void test_put_get_replace_del(void **state)
{
    (void)state;
    struct apg_smap m = APG_SMAP_INIT;
    int a = 1, b = 2;
    void *old = &a;
    assert_null(apg_smap_get(&m, "x"));
    assert_null(apg_smap_del(&m, "x"));
    assert_int_equal(apg_smap_put(&m, "x", &a, &old), APG_OK);
    assert_null(old);
    assert_ptr_equal(apg_smap_get(&m, "x"), &a);
    assert_int_equal(apg_smap_put(&m, "x", &b, &old), APG_OK);
    assert_ptr_equal(old, &a);
    assert_int_equal(m.sm_len, 1);
    assert_ptr_equal(apg_smap_get(&m, "x"), &b);
    assert_null(apg_smap_get(&m, "xx"));
    assert_null(apg_smap_get(&m, ""));
    assert_int_equal(apg_smap_put(&m, "", &a, NULL), APG_OK);
    assert_ptr_equal(apg_smap_get(&m, ""), &a);
    assert_ptr_equal(apg_smap_del(&m, "x"), &b);
    assert_null(apg_smap_get(&m, "x"));
    assert_null(apg_smap_del(&m, "x"));
    assert_int_equal(m.sm_len, 1);
    apg_smap_clear(&m);
    assert_int_equal(m.sm_len, 0);
    assert_null(apg_smap_get(&m, ""));
    /* Reusable after clear. */
    assert_int_equal(apg_smap_put(&m, "y", &a, NULL), APG_OK);
    assert_ptr_equal(apg_smap_get(&m, "y"), &a);
    apg_smap_clear(&m);
}

static void test_key_is_copied(void **state)
{
    (void)state;
    struct apg_smap m;
    apg_smap_init(&m);
    char key[8] = "topic";
    int v = 7;
    assert_int_equal(apg_smap_put(&m, key, &v, NULL), APG_OK);
    strcpy(key, "other");
    assert_ptr_equal(apg_smap_get(&m, "topic"), &v);
    assert_null(apg_smap_get(&m, "other"));
    apg_smap_clear(&m);
}

/* Enough keys to force several doublings; every key stays reachable and
 * iteration visits each exactly once. */
static void test_grow_and_iterate(void **state)
{
    (void)state;
    enum { N = 1000 };
    static int vals[N];
    static unsigned char seen[N];
    struct apg_smap m = APG_SMAP_INIT;
    char key[32];
    for (int i = 0; i < N; i++) {
        vals[i] = i;
        snprintf(key, sizeof(key), "topic-%d@group", i);
        assert_int_equal(apg_smap_put(&m, key, &vals[i], NULL), APG_OK);
    }
    assert_int_equal(m.sm_len, N);
    assert_true(m.sm_cap >= N);
    assert_int_equal(m.sm_cap & (m.sm_cap - 1), 0);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "topic-%d@group", i);
        assert_ptr_equal(apg_smap_get(&m, key), &vals[i]);
    }
    size_t it, n = 0;
    memset(seen, 0, sizeof(seen));
    for (struct apg_smap_ent *e = apg_smap_first(&m, &it); e; e = apg_smap_next(&m, e, &it)) {
        int i = *(int *)e->se_val;
        snprintf(key, sizeof(key), "topic-%d@group", i);
        assert_string_equal(e->se_key, key);
        assert_int_equal(seen[i], 0);
        seen[i] = 1;
        n++;
    }
    assert_int_equal(n, N);
    for (int i = 0; i < N; i += 2) {
        snprintf(key, sizeof(key), "topic-%d@group", i);
        assert_ptr_equal(apg_smap_del(&m, key), &vals[i]);
    }
    assert_int_equal(m.sm_len, N / 2);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "topic-%d@group", i);
        if (i % 2)
            assert_ptr_equal(apg_smap_get(&m, key), &vals[i]);
        else
            assert_null(apg_smap_get(&m, key));
    }
    apg_smap_clear(&m);
}

static int freed;
static void count_free(void *v)
{
    freed += *(int *)v;
}

static void test_clear_free(void **state)
{
    (void)state;
    struct apg_smap m = APG_SMAP_INIT;
    int a = 1, b = 10, c = 100;
    assert_int_equal(apg_smap_put(&m, "a", &a, NULL), APG_OK);
    assert_int_equal(apg_smap_put(&m, "b", &b, NULL), APG_OK);
    assert_int_equal(apg_smap_put(&m, "c", &c, NULL), APG_OK);
    freed = 0;
    apg_smap_clear_free(&m, count_free);
    assert_int_equal(freed, 111);
    assert_int_equal(m.sm_len, 0);
    assert_null(apg_smap_get(&m, "a"));
    apg_smap_clear_free(&m, count_free); /* empty: no calls */
    assert_int_equal(freed, 111);
}

static void test_empty_iteration(void **state)
{
    (void)state;
    struct apg_smap m = APG_SMAP_INIT;
    size_t it;
    assert_null(apg_smap_first(&m, &it));
    apg_smap_clear(&m);
    assert_null(apg_smap_first(&m, &it));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_replace_del), cmocka_unit_test(test_key_is_copied),
        cmocka_unit_test(test_grow_and_iterate),    cmocka_unit_test(test_clear_free),
        cmocka_unit_test(test_empty_iteration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

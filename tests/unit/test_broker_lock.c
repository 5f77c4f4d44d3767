/* The orderly consumers' queue-lock table (src/broker/broker_lock.c): one
 * holder per (group, queue), leases that lapse, takeover after a lapse,
 * release by the holder only, and release of everything a client or a
 * connection held. Time is passed in, so no test sleeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "broker/broker_int.h"

static struct apg_lock_mq mq(const char *topic, int qid)
{
    struct apg_lock_mq m;
    memset(&m, 0, sizeof(m));
    snprintf(m.lm_topic, sizeof(m.lm_topic), "%s", topic);
    snprintf(m.lm_broker, sizeof(m.lm_broker), "%s", "b1");
    m.lm_queue_id = qid;
    return m;
}

static void test_one_holder_and_renewal(void **state)
{
    (void)state;
    struct apg_locks *lk = apg_locks_new(60000);
    struct apg_lock_mq q0 = mq("T", 0), q1 = mq("T", 1);
    int conn_a, conn_b;
    assert_true(apg_locks_try(lk, "G", &q0, "A", &conn_a, 1000));
    assert_false(apg_locks_try(lk, "G", &q0, "B", &conn_b, 2000));
    assert_true(apg_locks_try(lk, "G", &q1, "B", &conn_b, 2000));
    /* another group locks the same queue independently */
    assert_true(apg_locks_try(lk, "H", &q0, "B", &conn_b, 2000));
    /* A renews at 50 s; B still cannot take it at 100 s (lease from 50 s) */
    assert_true(apg_locks_try(lk, "G", &q0, "A", &conn_a, 50000));
    assert_false(apg_locks_try(lk, "G", &q0, "B", &conn_b, 100000));
    char who[64];
    assert_true(apg_locks_holder(lk, "G", &q0, 100000, who, sizeof(who)));
    assert_string_equal(who, "A");
    assert_int_equal(apg_locks_count(lk), 3);
    apg_locks_free(lk);
}

static void test_lease_lapses_and_takeover(void **state)
{
    (void)state;
    struct apg_locks *lk = apg_locks_new(60000);
    struct apg_lock_mq q0 = mq("T", 0);
    int conn_a, conn_b;
    assert_true(apg_locks_try(lk, "G", &q0, "A", &conn_a, 0));
    assert_false(apg_locks_try(lk, "G", &q0, "B", &conn_b, 60000)); /* exactly the lease: held */
    char who[64];
    assert_false(apg_locks_holder(lk, "G", &q0, 60001, who, sizeof(who)));
    assert_true(apg_locks_try(lk, "G", &q0, "B", &conn_b, 60001)); /* lapsed: taken over */
    assert_false(apg_locks_try(lk, "G", &q0, "A", &conn_a, 60002));
    /* the old holder cannot release the new holder's lock */
    assert_false(apg_locks_unlock(lk, "G", &q0, "A"));
    assert_true(apg_locks_holder(lk, "G", &q0, 60003, who, sizeof(who)));
    assert_string_equal(who, "B");
    /* expiry frees lapsed entries only */
    assert_int_equal(apg_locks_expire(lk, 100000), 0);
    assert_int_equal(apg_locks_expire(lk, 120002), 1);
    assert_int_equal(apg_locks_count(lk), 0);
    apg_locks_free(lk);
}

static void test_release(void **state)
{
    (void)state;
    struct apg_locks *lk = apg_locks_new(60000);
    struct apg_lock_mq q0 = mq("T", 0), q1 = mq("T", 1), q2 = mq("U", 0);
    int conn_a, conn_a2, conn_b;
    assert_true(apg_locks_try(lk, "G", &q0, "A", &conn_a, 10));
    assert_true(apg_locks_unlock(lk, "G", &q0, "A"));
    assert_false(apg_locks_unlock(lk, "G", &q0, "A"));
    assert_true(apg_locks_try(lk, "G", &q0, "B", &conn_b, 20)); /* free at once */
    assert_true(apg_locks_unlock(lk, "G", &q0, "B"));

    /* dropping a client frees its locks in that group only */
    assert_true(apg_locks_try(lk, "G", &q0, "A", &conn_a, 30));
    assert_true(apg_locks_try(lk, "G", &q1, "A", &conn_a, 30));
    assert_true(apg_locks_try(lk, "GG", &q2, "A", &conn_a, 30));
    assert_true(apg_locks_try(lk, "G", &q2, "B", &conn_b, 30));
    assert_int_equal(apg_locks_drop_client(lk, "G", "A"), 2);
    assert_true(apg_locks_try(lk, "G", &q0, "B", &conn_b, 40));
    char who[64];
    assert_true(apg_locks_holder(lk, "GG", &q2, 40, who, sizeof(who)));
    assert_string_equal(who, "A");

    /* a connection's close frees what was last locked through it; a renewal
     * through a new connection moves the lock to it */
    assert_true(apg_locks_try(lk, "G", &q1, "A", &conn_a, 50));
    assert_true(apg_locks_try(lk, "GG", &q2, "A", &conn_a2, 50));
    assert_int_equal(apg_locks_drop_conn(lk, &conn_a), 1);
    assert_false(apg_locks_holder(lk, "G", &q1, 60, who, sizeof(who)));
    assert_true(apg_locks_holder(lk, "GG", &q2, 60, who, sizeof(who)));
    assert_int_equal(apg_locks_drop_conn(lk, &conn_a2), 1);
    assert_int_equal(apg_locks_drop_conn(lk, &conn_b), 2);
    assert_int_equal(apg_locks_count(lk), 0);
    apg_locks_free(lk);
}

static void test_many(void **state)
{
    (void)state;
    struct apg_locks *lk = apg_locks_new(60000);
    int conn_a, conn_b;
    for (int i = 0; i < 300; i++) {
        struct apg_lock_mq q = mq("T", i);
        assert_true(apg_locks_try(lk, "G", &q, i % 3 ? "A" : "B", i % 3 ? &conn_a : &conn_b, 1));
    }
    assert_int_equal(apg_locks_drop_conn(lk, &conn_a), 200);
    assert_int_equal(apg_locks_count(lk), 100);
    assert_int_equal(apg_locks_expire(lk, 60002), 100);
    assert_int_equal(apg_locks_count(lk), 0);
    apg_locks_free(lk);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_holder_and_renewal),
        cmocka_unit_test(test_lease_lapses_and_takeover),
        cmocka_unit_test(test_release),
        cmocka_unit_test(test_many),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* proxy/grpc/ns.c: namespace wrapping as RocketMQ's 4.x clients spell it,
 * the split back for the client, and the rewrite of every Resource of an
 * unpacked request. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proxy/grpc/ns.h"

static const char *wrap(const char *ns, const char *name)
{
    static char out[256];
    assert_true(apg_grpc_ns_wrap(ns, name, out, sizeof out));
    return out;
}

static void test_wrap(void **st)
{
    (void)st;
    assert_string_equal(wrap("NS", "T"), "NS%T");
    assert_string_equal(wrap("NS", "NS%T"), "NS%T");
    assert_string_equal(wrap("NS", "%RETRY%G"), "%RETRY%NS%G");
    assert_string_equal(wrap("NS", "%DLQ%G"), "%DLQ%NS%G");
    assert_string_equal(wrap("NS", "%RETRY%NS%G"), "%RETRY%NS%G");
    assert_string_equal(wrap("", "T"), "T");
    assert_string_equal(wrap(NULL, "T"), "T");
    assert_string_equal(wrap("NS", "TBW102"), "TBW102");
    assert_string_equal(wrap("NS", "rmq_sys_wheel_timer"), "rmq_sys_wheel_timer");
    assert_string_equal(wrap("NS", "CID_RMQ_SYS_X"), "CID_RMQ_SYS_X");
    assert_string_equal(wrap("NS", "OTHER%T"), "NS%OTHER%T");
    char small[4];
    assert_false(apg_grpc_ns_wrap("NS", "TOPIC", small, sizeof small));
}

static void test_split(void **st)
{
    (void)st;
    char buf[128];
    Apache__Rocketmq__V2__Resource r = APACHE__ROCKETMQ__V2__RESOURCE__INIT;
    apg_grpc_ns_resource(&r, "NS%T", buf, sizeof buf);
    assert_string_equal(r.name, "T");
    assert_string_equal(r.resource_namespace, "NS");
    apg_grpc_ns_resource(&r, "%RETRY%NS%G", buf, sizeof buf);
    assert_string_equal(r.name, "%RETRY%G");
    assert_string_equal(r.resource_namespace, "NS");
    apg_grpc_ns_resource(&r, "T", buf, sizeof buf);
    assert_string_equal(r.name, "T");
    assert_string_equal(r.resource_namespace, "");
    apg_grpc_ns_resource(&r, "NS%T", buf, 3); /* no room: the name as stored */
    assert_string_equal(r.name, "NS%T");
}

static char *dup(const char *s)
{
    char *d = malloc(strlen(s) + 1);
    assert_non_null(d);
    strcpy(d, s);
    return d;
}

static void test_rewrite(void **st)
{
    (void)st;
    /* A ReceiveMessageRequest: group (no namespace: the header's) and a
     * queue whose topic names its own namespace. */
    Apache__Rocketmq__V2__ReceiveMessageRequest *rq = calloc(1, sizeof(*rq));
    Apache__Rocketmq__V2__Resource *g = calloc(1, sizeof(*g)), *t = calloc(1, sizeof(*t));
    Apache__Rocketmq__V2__MessageQueue *q = calloc(1, sizeof(*q));
    assert_true(rq && g && t && q);
    apache__rocketmq__v2__receive_message_request__init(rq);
    apache__rocketmq__v2__resource__init(g);
    apache__rocketmq__v2__resource__init(t);
    apache__rocketmq__v2__message_queue__init(q);
    g->name = dup("CG");
    g->resource_namespace = dup("");
    t->name = dup("T");
    t->resource_namespace = dup("OWN");
    q->topic = t;
    rq->group = g;
    rq->message_queue = q;
    assert_int_equal(apg_grpc_ns_rewrite(&rq->base, "HDR"), 2);
    assert_string_equal(g->name, "HDR%CG");
    assert_string_equal(t->name, "OWN%T");
    assert_int_equal(apg_grpc_ns_rewrite(&rq->base, "HDR"), 0); /* already wrapped */
    apache__rocketmq__v2__receive_message_request__free_unpacked(rq, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wrap),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_rewrite),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

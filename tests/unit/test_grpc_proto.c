/* The protobuf-c code generated from proto/messaging.proto: fixed byte
 * sequences for a few messages pin the field numbers and wire types a 5.x
 * SDK uses (a renumbered field fails here, not in interop), and a full
 * SendMessageRequest survives pack -> unpack. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/messaging.pb-c.h"

static void test_status_bytes(void **st)
{
    Apache__Rocketmq__V2__Status s = APACHE__ROCKETMQ__V2__STATUS__INIT;
    s.code = APACHE__ROCKETMQ__V2__CODE__OK; /* 20000 */
    s.message = "ok";
    uint8_t buf[16];
    size_t n = apache__rocketmq__v2__status__pack(&s, buf);
    const uint8_t want[] = {0x08, 0xa0, 0x9c, 0x01, 0x12, 0x02, 'o', 'k'};
    assert_int_equal(n, sizeof want);
    assert_memory_equal(buf, want, sizeof want);
}

static void test_heartbeat_bytes(void **st)
{
    /* group (1, message) { name (2) = "G" }, client_type (2) = PRODUCER */
    const uint8_t in[] = {0x0a, 0x03, 0x12, 0x01, 'G', 0x10, 0x01};
    Apache__Rocketmq__V2__HeartbeatRequest *r =
        apache__rocketmq__v2__heartbeat_request__unpack(NULL, sizeof in, in);
    assert_non_null(r);
    assert_non_null(r->group);
    assert_string_equal(r->group->name, "G");
    assert_int_equal(r->client_type, APACHE__ROCKETMQ__V2__CLIENT_TYPE__PRODUCER);
    apache__rocketmq__v2__heartbeat_request__free_unpacked(r, NULL);
}

static void test_send_roundtrip(void **st)
{
    Apache__Rocketmq__V2__Resource topic = APACHE__ROCKETMQ__V2__RESOURCE__INIT;
    topic.name = "TopicA";
    Apache__Rocketmq__V2__SystemProperties sp = APACHE__ROCKETMQ__V2__SYSTEM_PROPERTIES__INIT;
    char *keys[] = {"k1", "k2"};
    sp.tag = "TagA";
    sp.n_keys = 2;
    sp.keys = keys;
    sp.message_id = "01ABC";
    sp.message_type = APACHE__ROCKETMQ__V2__MESSAGE_TYPE__NORMAL;
    Apache__Rocketmq__V2__Message__UserPropertiesEntry up =
        APACHE__ROCKETMQ__V2__MESSAGE__USER_PROPERTIES_ENTRY__INIT;
    up.key = "a";
    up.value = "b";
    Apache__Rocketmq__V2__Message__UserPropertiesEntry *ups[] = {&up};
    Apache__Rocketmq__V2__Message m = APACHE__ROCKETMQ__V2__MESSAGE__INIT;
    m.topic = &topic;
    m.system_properties = &sp;
    m.n_user_properties = 1;
    m.user_properties = ups;
    m.body.data = (uint8_t *)"hello";
    m.body.len = 5;
    Apache__Rocketmq__V2__Message *ms[] = {&m};
    Apache__Rocketmq__V2__SendMessageRequest req = APACHE__ROCKETMQ__V2__SEND_MESSAGE_REQUEST__INIT;
    req.n_messages = 1;
    req.messages = ms;

    size_t n = apache__rocketmq__v2__send_message_request__get_packed_size(&req);
    uint8_t *buf = malloc(n);
    assert_non_null(buf);
    assert_int_equal(apache__rocketmq__v2__send_message_request__pack(&req, buf), n);
    assert_int_equal(buf[0], 0x0a); /* messages: field 1, length-delimited */

    Apache__Rocketmq__V2__SendMessageRequest *r =
        apache__rocketmq__v2__send_message_request__unpack(NULL, n, buf);
    assert_non_null(r);
    assert_int_equal(r->n_messages, 1);
    Apache__Rocketmq__V2__Message *g = r->messages[0];
    assert_string_equal(g->topic->name, "TopicA");
    assert_string_equal(g->system_properties->tag, "TagA");
    assert_int_equal(g->system_properties->n_keys, 2);
    assert_string_equal(g->system_properties->keys[1], "k2");
    assert_int_equal(g->n_user_properties, 1);
    assert_string_equal(g->user_properties[0]->value, "b");
    assert_int_equal(g->body.len, 5);
    assert_memory_equal(g->body.data, "hello", 5);
    apache__rocketmq__v2__send_message_request__free_unpacked(r, NULL);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_bytes),
        cmocka_unit_test(test_heartbeat_bytes),
        cmocka_unit_test(test_send_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

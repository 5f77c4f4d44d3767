/* Unit tests for the XML reader and writer of the HTTP message protocol
 * (src/http/xml.c): the bodies the @aliyunmq/mq-http-sdk sends, decoding
 * of CDATA and references, and the refusal of what is not such a body. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/xml.h"

static struct apg_xml_doc doc;
static struct apg_buf vals = APG_BUF_INIT;
static char err[200];

static apg_err_t parse(const char *s)
{
    err[0] = '\0';
    return apg_xml_parse((const uint8_t *)s, strlen(s), &doc, &vals, err, sizeof err);
}

static void child_is(int i, const char *name, const char *val)
{
    assert_true(i < doc.xd_n);
    assert_string_equal(doc.xd_c[i].xc_name, name);
    assert_int_equal(doc.xd_c[i].xc_len, strlen(val));
    assert_memory_equal(vals.b_data + doc.xd_c[i].xc_off, val, strlen(val));
}

static void test_sdk_bodies(void **state)
{
    assert_int_equal(parse("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Message "
                           "xmlns=\"http://mq.aliyuncs.com/doc/v1/\"><MessageBody><![CDATA[hi "
                           "<there>]]></MessageBody><MessageTag><![CDATA[t]]></MessageTag>"
                           "<Properties><![CDATA[KEYS:k|a:b]]></Properties></Message>"),
                     APG_OK);
    assert_string_equal(doc.xd_root, "Message");
    assert_int_equal(doc.xd_n, 3);
    child_is(0, "MessageBody", "hi <there>");
    child_is(1, "MessageTag", "t");
    child_is(2, "Properties", "KEYS:k|a:b");
    assert_int_equal(parse("<ReceiptHandles><ReceiptHandle>a b</ReceiptHandle>\n"
                           "<ReceiptHandle><![CDATA[c]]></ReceiptHandle></ReceiptHandles>\n"),
                     APG_OK);
    assert_int_equal(doc.xd_n, 2);
    child_is(0, "ReceiptHandle", "a b");
    child_is(1, "ReceiptHandle", "c");
}

static void test_references(void **state)
{
    assert_int_equal(parse("<!-- x --><r><v>&lt;&gt;&amp;&quot;&apos;&#65;&#x42;&#x20AC;<!--c-->"
                           "<![CDATA[&lt;]]></v><e/><f a='1'></f></r>"),
                     APG_OK);
    child_is(0, "v", "<>&\"'AB\xe2\x82\xac&lt;");
    child_is(1, "e", "");
    child_is(2, "f", "");
}

static void test_refusals(void **state)
{
    const char *bad[] = {
        "",
        "text",
        "<r><v>x</r>",
        "<r><v><w>x</w></v></r>",
        "<r><v>&nope;</v></r>",
        "<r><v>&#0;</v></r>",
        "<r><v>&#xD800;</v></r>",
        "<r><v>&#x110000;</v></r>",
        "<!DOCTYPE r><r/>",
        "<r/>junk",
        "<r><v>x</v>",
        "<r>text</r>",
        "<r><v a=1>x</v></r>",
        "<r><![CDATA[x]]></r>",
        "<r><v><![CDATA[x</v></r>",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(parse(bad[i]), APG_EINVAL);
        assert_true(strstr(err, "malformed XML") != NULL);
    }
}

static void test_writer(void **state)
{
    struct apg_buf o = APG_BUF_INIT;
    assert_int_equal(apg_xml_put_elem(&o, "v", "a<b>&\"'\x01\tc", 10), APG_OK);
    assert_int_equal(o.b_len, strlen("<v>a&lt;b&gt;&amp;&quot;&apos;\tc</v>"));
    assert_memory_equal(o.b_data, "<v>a&lt;b&gt;&amp;&quot;&apos;\tc</v>", o.b_len);
    apg_buf_free(&o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sdk_bodies),
        cmocka_unit_test(test_references),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_writer),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    apg_buf_free(&vals);
    return rc;
}

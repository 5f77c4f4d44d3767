/* Unit tests for the HTTP/1.1 request parser (src/http/http_codec.c): where
 * a request ends, what it says, and the status of each refusal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/http.h"

static struct apg_http_req r;

static size_t parse(const char *s, size_t max_body, size_t *want)
{
    apg_http_parse((const uint8_t *)s, strlen(s), max_body, &r, want);
    return r.hr_len;
}

static void test_whole_and_incomplete(void **state)
{
    const char *req = "GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n";
    size_t want = 7;
    assert_int_equal(parse(req, 100, &want), strlen(req));
    assert_int_equal(r.hr_status, 0);
    assert_string_equal(r.hr_method, "GET");
    assert_int_equal(r.hr_path_len, 8);
    assert_memory_equal(r.hr_path, "/metrics", 8);
    assert_int_equal(r.hr_query_len, 3);
    assert_memory_equal(r.hr_query, "x=1", 3);
    assert_true(r.hr_keep_alive);
    size_t n = 0;
    const char *v = apg_http_header(&r, "HOST", &n);
    assert_non_null(v);
    assert_int_equal(n, 1);
    assert_int_equal(v[0], 'a');
    /* Every proper prefix is incomplete, never refused. */
    for (size_t i = 0; i < strlen(req); i++) {
        apg_http_parse((const uint8_t *)req, i, 100, &r, NULL);
        assert_int_equal(r.hr_len, 0);
        assert_int_equal(r.hr_status, 0);
    }
}

static void test_body_and_pipelining(void **state)
{
    const char *two = "POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\n\r\n";
    size_t first = parse(two, 100, NULL);
    assert_int_equal(first, strlen("POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"));
    assert_int_equal(r.hr_body_len, 5);
    assert_memory_equal(r.hr_body, "hello", 5);
    assert_int_equal(parse(two + first, 100, NULL), strlen("GET /b HTTP/1.1\r\n\r\n"));
    size_t want = 0;
    assert_int_equal(parse("POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhe", 100, &want), 0);
    assert_int_equal(want, strlen("POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"));
}

static void test_connection_close(void **state)
{
    parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", 0, NULL);
    assert_false(r.hr_keep_alive);
    parse("GET / HTTP/1.0\r\n\r\n", 0, NULL);
    assert_false(r.hr_keep_alive);
    parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 0, NULL);
    assert_true(r.hr_keep_alive);
}

static void refused(const char *s, size_t max_body, int status)
{
    assert_int_equal(parse(s, max_body, NULL), strlen(s));
    assert_int_equal(r.hr_status, status);
    assert_non_null(r.hr_error);
}

static void test_refusals(void **state)
{
    refused("\x16\x03\x01", 100, 400);
    refused("GET / HTTP/1.1\nHost: a\n\n", 100, 400);
    refused("GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 100, 400);
    refused("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 100, 411);
    refused("POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n", 100, 413);
    static char big[APG_HTTP_MAX_HEADER + 100];
    memset(big, 'a', sizeof(big) - 1);
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    refused(big, 100, 431);
    static char url[APG_HTTP_MAX_URL + 100];
    memset(url, 'a', sizeof(url) - 1);
    memcpy(url, "GET /", 5);
    memcpy(url + sizeof(url) - 20, " HTTP/1.1\r\n\r\n", 14); /* with its NUL */
    refused(url, 100, 414);
    static char many[APG_HTTP_MAX_HEADERS * 8 + 64] = "GET / HTTP/1.1\r\n";
    for (int i = 0; i <= APG_HTTP_MAX_HEADERS; i++)
        strcat(many, "A: b\r\n");
    strcat(many, "\r\n");
    refused(many, 100, 431);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole_and_incomplete),
        cmocka_unit_test(test_body_and_pipelining),
        cmocka_unit_test(test_connection_close),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* HTTP/1.1 request parsing micro-benchmark: apg_http_parse (libhttp-parser
 * under our framing) on a Prometheus scrape request (6 header fields), on a
 * browser-like request (12 fields), and on a POST with a 1 KiB body; and on
 * each one's first half (the "incomplete" answer a partial read gets). The
 * server parses each request twice (cut, then decode), so the per-request
 * cost is twice the figure. Usage: bench_http [seconds per cell] (0.3). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http/http.h"

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static const char scrape[] =
    "GET /metrics HTTP/1.1\r\nHost: 10.0.0.5:8080\r\nUser-Agent: Prometheus/2.45.0\r\n"
    "Accept: "
    "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n"
    "Accept-Encoding: gzip\r\nX-Prometheus-Scrape-Timeout-Seconds: 10\r\n"
    "Connection: keep-alive\r\n\r\n";
static const char browser[] =
    "GET /api/topics?cluster=DefaultCluster HTTP/1.1\r\nHost: broker.example:8080\r\n"
    "Connection: keep-alive\r\nsec-ch-ua: \"Chromium\";v=\"120\"\r\nsec-ch-ua-mobile: ?0\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36\r\nsec-ch-ua-platform: \"Linux\"\r\nAccept: */*\r\n"
    "Sec-Fetch-Site: same-origin\r\nSec-Fetch-Mode: cors\r\nSec-Fetch-Dest: empty\r\n"
    "Referer: http://broker.example:8080/\r\nAccept-Encoding: gzip, deflate, br\r\n\r\n";

static void cell(const char *name, const uint8_t *buf, size_t len, double secs)
{
    static struct apg_http_req r;
    long n = 0;
    size_t sink = 0;
    double t0 = now_ns(), end = t0 + secs * 1e9, t;
    do {
        for (int i = 0; i < 1000; i++) {
            apg_http_parse(buf, len, 4u << 20, &r, NULL);
            sink += r.hr_len + (size_t)r.hr_nhdrs;
        }
        n += 1000;
    } while ((t = now_ns()) < end);
    printf("%-28s %5zu B  %7.0f ns/parse  %6.2f M/s  (%zu)\n", name, len, (t - t0) / (double)n,
           (double)n / ((t - t0) / 1e3), sink % 10);
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 0.3;
    char post[2048];
    int hl = snprintf(post, sizeof post,
                      "POST /api/send HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
                      "Content-Length: 1024\r\n\r\n");
    memset(post + hl, 'x', 1024);
    size_t pl = (size_t)hl + 1024;
    cell("scrape (6 fields)", (const uint8_t *)scrape, strlen(scrape), secs);
    cell("browser (12 fields)", (const uint8_t *)browser, strlen(browser), secs);
    cell("POST, 1 KiB body", (const uint8_t *)post, pl, secs);
    cell("scrape, first half", (const uint8_t *)scrape, strlen(scrape) / 2, secs);
    cell("browser, first half", (const uint8_t *)browser, strlen(browser) / 2, secs);
    return 0;
}

/* OpenTelemetry metrics push over OTLP/HTTP (see otlp.h).
 *
 * Design. The exporter owns a renderer (struct apg_metrics, the one GET
 * /metrics uses) and turns its Prometheus text into an OTLP
 * ExportMetricsServiceRequest in the protobuf JSON mapping (field names in
 * lowerCamelCase, 64-bit integers as decimal strings, enums as numbers), so
 * both outputs carry the same families, labels and values by construction.
 * One resource (service.name "apogee", service.version), one scope
 * ("apogee"); a counter family is a monotonic cumulative sum whose start
 * time is the exporter's start, a gauge a gauge, a histogram a histogram
 * with the text's cumulative bucket counts turned into per-bucket counts.
 * Each export is one POST to the target path with Connection: close; a
 * 2xx status is success.
 *
 * Threads: one thread of its own sleeps on a condition variable between
 * exports, so nothing here runs on a loop thread and a slow or dead
 * collector delays only the next export. Every socket call is bounded by
 * metricGrpcExporterTimeOutInMills. Failures are logged at most once a
 * minute (with the count of those not logged).
 *
 * Memory: the text, the JSON and the response are three buffers reused from
 * export to export; they hold one export at a time, so memory is bounded by
 * the size of one exposition (the JSON reserves four times it). */
#include "http/otlp.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "apogee_version.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/worker.h"
#include "http/metrics.h"

#define OTLP_PATH_DEFAULT "/v1/metrics"
#define OTLP_WARN_EVERY_MS 60000

struct apg_otlp {
    struct apg_metrics *ox_mx;
    char ox_host[256];
    char ox_port[8];
    char ox_path[512];
    char *ox_headers; /* "K: V\r\n" lines */
    char *ox_attrs;   /* metricsLabel */
    int64_t ox_interval_ms, ox_timeout_ms;
    int64_t ox_start_ns;
    struct apg_buf ox_text, ox_json, ox_resp;
    struct apg_log_limit ox_warn;
    struct apg_worker ox_worker;
    int64_t ox_next_ms; /* monotonic time of the next push (the exporter thread's) */
};

/* ---- encoding --------------------------------------------------------------- */

static void json_str(struct apg_buf *o, const char *s, size_t n)
{
    apg_buf_append(o, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        apg_buf_append(o, s + run, i - run);
        run = i + 1;
        char esc[8];
        if (c == '"' || c == '\\')
            snprintf(esc, sizeof esc, "\\%c", c);
        else if (c == '\n')
            snprintf(esc, sizeof esc, "\\n");
        else
            snprintf(esc, sizeof esc, "\\u%04x", c);
        apg_buf_append_str(o, esc);
    }
    apg_buf_append(o, s + run, n - run);
    apg_buf_append(o, "\"", 1);
}

static void json_i64(struct apg_buf *o, int64_t v, bool quoted)
{
    char num[32];
    int n = snprintf(num, sizeof num, quoted ? "\"%lld\"" : "%lld", (long long)v);
    apg_buf_append(o, num, (size_t)n);
}

static void json_kv(struct apg_buf *o, bool *first, const char *k, size_t kn, const char *v,
                    size_t vn)
{
    if (!*first)
        apg_buf_append(o, ",", 1);
    *first = false;
    apg_buf_append_str(o, "{\"key\":");
    json_str(o, k, kn);
    apg_buf_append_str(o, ",\"value\":{\"stringValue\":");
    json_str(o, v, vn);
    apg_buf_append_str(o, "}}");
}

/* Attributes from "k:v,k:v" (entries without ':' are skipped). */
static void json_extra_attrs(struct apg_buf *o, bool *first, const char *attrs)
{
    for (const char *p = attrs; p && *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *colon = memchr(p, ':', n);
        if (colon && colon > p)
            json_kv(o, first, p, (size_t)(colon - p), colon + 1, n - (size_t)(colon - p) - 1);
        p = end ? end + 1 : NULL;
    }
}

static bool s_isname(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* One parsed sample line. */
struct sline {
    const char *name;
    size_t name_len;
    const char *lbl; /* between the braces, raw */
    size_t lbl_len;
    const char *val;
    size_t val_len;
};

static bool parse_sample(const char *s, size_t n, struct sline *l)
{
    size_t i = 0;
    while (i < n && s[i] != '{' && s[i] != ' ')
        i++;
    l->name = s;
    l->name_len = i;
    l->lbl = NULL;
    l->lbl_len = 0;
    if (i < n && s[i] == '{') {
        size_t j = i + 1;
        bool q = false;
        for (; j < n; j++) {
            if (q && s[j] == '\\')
                j++;
            else if (s[j] == '"')
                q = !q;
            else if (!q && s[j] == '}')
                break;
        }
        if (j >= n)
            return false;
        l->lbl = s + i + 1;
        l->lbl_len = j - i - 1;
        i = j + 1;
    }
    while (i < n && s[i] == ' ')
        i++;
    l->val = s + i;
    l->val_len = n - i;
    return l->val_len > 0;
}

/* Appends each label of a sample as an attribute (values unescaped), except
 * the one named skip (may be NULL), whose raw value goes to *skipped. */
static void json_labels(struct apg_buf *o, bool *first, const char *lbl, size_t n, const char *skip,
                        const char **skipped, size_t *skipped_len)
{
    char val[1024];
    for (size_t i = 0; i < n;) {
        size_t k = i;
        while (i < n && s_isname(lbl[i]))
            i++;
        size_t kn = i - k;
        if (i + 1 >= n || lbl[i] != '=' || lbl[i + 1] != '"')
            return;
        i += 2;
        size_t vn = 0, vstart = i;
        for (; i < n && lbl[i] != '"'; i++) {
            char c = lbl[i];
            if (c == '\\' && i + 1 < n) {
                c = lbl[++i] == 'n' ? '\n' : lbl[i];
            }
            if (vn < sizeof(val))
                val[vn++] = c;
        }
        if (skip && strlen(skip) == kn && memcmp(lbl + k, skip, kn) == 0) {
            *skipped = lbl + vstart;
            *skipped_len = i - vstart;
        } else {
            json_kv(o, first, lbl + k, kn, val, vn);
        }
        i++; /* closing quote */
        if (i < n && lbl[i] == ',')
            i++;
    }
}

static bool is_int(const char *v, size_t n)
{
    size_t i = n && v[0] == '-' ? 1 : 0;
    if (i == n || n > 19)
        return false;
    for (; i < n; i++)
        if (v[i] < '0' || v[i] > '9')
            return false;
    return true;
}

static int64_t text_i64(const char *v, size_t n)
{
    char tmp[32];
    n = n < sizeof(tmp) - 1 ? n : sizeof(tmp) - 1;
    memcpy(tmp, v, n);
    tmp[n] = 0;
    return strtoll(tmp, NULL, 10);
}

static double text_double(const char *v, size_t n)
{
    char tmp[64];
    n = n < sizeof(tmp) - 1 ? n : sizeof(tmp) - 1;
    memcpy(tmp, v, n);
    tmp[n] = 0;
    return strtod(tmp, NULL);
}

static void json_double(struct apg_buf *o, double d)
{
    char num[40];
    int n = snprintf(num, sizeof num, "%.17g", d);
    apg_buf_append(o, num, (size_t)n);
}

enum ftype { F_GAUGE, F_SUM, F_HIST };

#define HIST_MAX 32

/* The histogram series being read: bucket lines, then _sum, then _count. */
struct hist {
    const char *lbl;
    size_t lbl_len;
    int nb;
    double bound[HIST_MAX];
    uint64_t cum[HIST_MAX];
    double sum;
};

static bool has_suffix(const struct sline *l, const char *fam, size_t fl, const char *suf)
{
    size_t sl = strlen(suf);
    return l->name_len == fl + sl && memcmp(l->name, fam, fl) == 0 &&
           memcmp(l->name + fl, suf, sl) == 0;
}

static void point_head(struct apg_buf *o, bool *first_pt, const char *lbl, size_t lbl_len,
                       const char *attrs, const char *skip, int64_t start_ns, int64_t now_ns,
                       bool with_start)
{
    if (!*first_pt)
        apg_buf_append(o, ",", 1);
    *first_pt = false;
    apg_buf_append_str(o, "{\"attributes\":[");
    bool first = true;
    const char *sk = NULL;
    size_t skl = 0;
    json_labels(o, &first, lbl, lbl_len, skip, &sk, &skl);
    json_extra_attrs(o, &first, attrs);
    apg_buf_append_str(o, "]");
    if (with_start) {
        apg_buf_append_str(o, ",\"startTimeUnixNano\":");
        json_i64(o, start_ns, true);
    }
    apg_buf_append_str(o, ",\"timeUnixNano\":");
    json_i64(o, now_ns, true);
}

apg_err_t apg_otlp_encode_json(const char *text, size_t len, const char *attrs, int64_t start_ns,
                               int64_t now_ns, struct apg_buf *o)
{
    /* One reserve up front for the whole document (a sample's JSON is about
     * 2-3 times its text), so the appends below do not fail half way. */
    if (len > SIZE_MAX / 8 || apg_buf_reserve(o, len * 4 + 4096))
        return APG_ENOMEM;
    apg_buf_append_str(
        o, "{\"resourceMetrics\":[{\"resource\":{\"attributes\":["
           "{\"key\":\"service.name\",\"value\":{\"stringValue\":\"apogee\"}},"
           "{\"key\":\"service.version\",\"value\":{\"stringValue\":\"" APOGEE_VERSION
           "\"}}]},\"scopeMetrics\":[{\"scope\":{\"name\":\"apogee\",\"version\":\"" APOGEE_VERSION
           "\"},\"metrics\":[");
    const char *help = NULL, *fam = NULL;
    size_t help_len = 0, fam_len = 0;
    enum ftype ft = F_GAUGE;
    bool open = false, first_metric = true, first_pt = true;
    struct hist h = {0};
    for (size_t at = 0; at < len;) {
        const char *nl = memchr(text + at, '\n', len - at);
        size_t n = nl ? (size_t)(nl - (text + at)) : len - at;
        const char *s = text + at;
        at += n + 1;
        if (n == 0)
            continue;
        if (s[0] == '#') {
            if (n > 7 && memcmp(s, "# HELP ", 7) == 0) {
                const char *sp = memchr(s + 7, ' ', n - 7);
                help = sp ? sp + 1 : s + n;
                help_len = (size_t)(s + n - help);
            } else if (n > 7 && memcmp(s, "# TYPE ", 7) == 0) {
                const char *sp = memchr(s + 7, ' ', n - 7);
                if (!sp)
                    continue;
                if (open)
                    apg_buf_append_str(o, "]}}");
                open = false;
                fam = s + 7;
                fam_len = (size_t)(sp - fam);
                size_t tl = (size_t)(s + n - sp - 1);
                ft = tl == 7 && memcmp(sp + 1, "counter", 7) == 0     ? F_SUM
                     : tl == 9 && memcmp(sp + 1, "histogram", 9) == 0 ? F_HIST
                                                                      : F_GAUGE;
                h.nb = 0;
            }
            continue;
        }
        struct sline l;
        if (!fam || !parse_sample(s, n, &l))
            continue;
        if (!open) {
            if (!first_metric)
                apg_buf_append(o, ",", 1);
            first_metric = false;
            apg_buf_append_str(o, "{\"name\":");
            json_str(o, fam, fam_len);
            apg_buf_append_str(o, ",\"description\":");
            json_str(o, help ? help : "", help ? help_len : 0);
            apg_buf_append_str(o, ft == F_SUM    ? ",\"sum\":{\"aggregationTemporality\":2,"
                                                   "\"isMonotonic\":true,\"dataPoints\":["
                                  : ft == F_HIST ? ",\"histogram\":{\"aggregationTemporality\":2,"
                                                   "\"dataPoints\":["
                                                 : ",\"gauge\":{\"dataPoints\":[");
            open = true;
            first_pt = true;
        }
        if (ft != F_HIST) {
            point_head(o, &first_pt, l.lbl, l.lbl_len, attrs, NULL, start_ns, now_ns, ft == F_SUM);
            if (is_int(l.val, l.val_len)) {
                apg_buf_append_str(o, ",\"asInt\":");
                json_i64(o, text_i64(l.val, l.val_len), true);
            } else {
                apg_buf_append_str(o, ",\"asDouble\":");
                json_double(o, text_double(l.val, l.val_len));
            }
            apg_buf_append(o, "}", 1);
            continue;
        }
        if (has_suffix(&l, fam, fam_len, "_bucket")) {
            if (h.nb < HIST_MAX) {
                struct apg_buf scratch = APG_BUF_INIT;
                bool first = true;
                const char *le = NULL;
                size_t lel = 0;
                json_labels(&scratch, &first, l.lbl, l.lbl_len, "le", &le, &lel);
                apg_buf_free(&scratch);
                h.bound[h.nb] =
                    le && !(lel == 4 && memcmp(le, "+Inf", 4) == 0) ? text_double(le, lel) : 1e308;
                h.cum[h.nb] = (uint64_t)text_i64(l.val, l.val_len);
                h.nb++;
            }
            h.lbl = l.lbl;
            h.lbl_len = l.lbl_len;
        } else if (has_suffix(&l, fam, fam_len, "_sum")) {
            h.sum = text_double(l.val, l.val_len);
        } else if (has_suffix(&l, fam, fam_len, "_count") && h.nb > 0) {
            point_head(o, &first_pt, h.lbl, h.lbl_len, attrs, "le", start_ns, now_ns, true);
            apg_buf_append_str(o, ",\"count\":");
            json_i64(o, text_i64(l.val, l.val_len), true);
            apg_buf_append_str(o, ",\"sum\":");
            json_double(o, h.sum);
            apg_buf_append_str(o, ",\"bucketCounts\":[");
            uint64_t prev = 0;
            for (int k = 0; k < h.nb; k++) {
                if (k)
                    apg_buf_append(o, ",", 1);
                json_i64(o, (int64_t)(h.cum[k] - prev), true);
                prev = h.cum[k];
            }
            apg_buf_append_str(o, "],\"explicitBounds\":[");
            for (int k = 0; k < h.nb && h.bound[k] < 1e308; k++) {
                if (k)
                    apg_buf_append(o, ",", 1);
                json_double(o, h.bound[k]);
            }
            apg_buf_append_str(o, "]}");
            h.nb = 0;
            h.sum = 0;
        }
    }
    if (open)
        apg_buf_append_str(o, "]}}");
    apg_buf_append_str(o, "]}]}]}");
    return o->b_data ? APG_OK : APG_ENOMEM;
}

/* ---- posting ---------------------------------------------------------------- */

/* Connects to host:port within timeout_ms; the socket keeps send and
 * receive timeouts of timeout_ms. -1 with why filled on failure. */
static int otlp_connect(const struct apg_otlp *x, char *why, size_t whylen)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(x->ox_host, x->ox_port, &hints, &res);
    if (rc) {
        snprintf(why, whylen, "resolving %s: %s", x->ox_host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    snprintf(why, whylen, "connecting to %s:%s: no address", x->ox_host, x->ox_port);
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
        if (fd < 0)
            continue;
        int e = connect(fd, a->ai_addr, a->ai_addrlen) == 0 ? 0 : errno;
        if (e == EINPROGRESS) {
            struct pollfd p = {fd, POLLOUT, 0};
            int pr = poll(&p, 1, (int)x->ox_timeout_ms);
            socklen_t sl = sizeof(e);
            if (pr <= 0)
                e = pr == 0 ? ETIMEDOUT : errno;
            else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &sl) != 0)
                e = errno;
        }
        if (e) {
            snprintf(why, whylen, "connecting to %s:%s: %s", x->ox_host, x->ox_port, strerror(e));
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        return -1;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    struct timeval tv = {(time_t)(x->ox_timeout_ms / 1000),
                         (suseconds_t)(x->ox_timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static bool send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        c += w;
        n -= (size_t)w;
    }
    return true;
}

/* POSTs ox_json; the HTTP status, or -1 with why filled. */
static int otlp_post(struct apg_otlp *x, char *why, size_t whylen)
{
    int fd = otlp_connect(x, why, whylen);
    if (fd < 0)
        return -1;
    char head[1024];
    int hn = snprintf(head, sizeof head,
                      "POST %s HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\nUser-Agent: apogee/%s\r\n",
                      x->ox_path, x->ox_host, x->ox_port, x->ox_json.b_len, APOGEE_VERSION);
    int status = -1;
    if (hn <= 0 || (size_t)hn >= sizeof head || !send_all(fd, head, (size_t)hn) ||
        !send_all(fd, x->ox_headers, strlen(x->ox_headers)) || !send_all(fd, "\r\n", 2) ||
        !send_all(fd, x->ox_json.b_data, x->ox_json.b_len)) {
        snprintf(why, whylen, "sending to %s:%s: %s", x->ox_host, x->ox_port, strerror(errno));
        goto out;
    }
    apg_buf_reset(&x->ox_resp);
    for (;;) { /* up to the end of the status line */
        if (apg_buf_reserve(&x->ox_resp, 512))
            break;
        ssize_t r = recv(fd, x->ox_resp.b_data + x->ox_resp.b_len, 512, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        x->ox_resp.b_len += (size_t)r;
        if (memchr(x->ox_resp.b_data, '\n', x->ox_resp.b_len) || x->ox_resp.b_len > 8192)
            break;
    }
    int maj, min, st;
    if (apg_buf_append(&x->ox_resp, "", 1) == APG_OK &&
        sscanf((const char *)x->ox_resp.b_data, "HTTP/%d.%d %d", &maj, &min, &st) == 3)
        status = st;
    else
        snprintf(why, whylen, "no HTTP answer from %s:%s (%s)", x->ox_host, x->ox_port,
                 x->ox_resp.b_len > 1 ? "malformed" : strerror(errno));
out:
    close(fd);
    return status;
}

static void otlp_export(struct apg_otlp *x)
{
    int64_t now = apg_wall_ms();
    apg_buf_reset(&x->ox_text);
    apg_buf_reset(&x->ox_json);
    char why[1024] = "";
    int status = -1;
    if (apg_metrics_render(x->ox_mx, &x->ox_text, now) ||
        apg_otlp_encode_json((const char *)x->ox_text.b_data, x->ox_text.b_len, x->ox_attrs,
                             x->ox_start_ns, now * 1000000, &x->ox_json))
        snprintf(why, sizeof why, "out of memory");
    else
        status = otlp_post(x, why, sizeof why);
    if (status >= 200 && status < 300) {
        apg_log_debug("otlp", "exported %zu bytes to %s:%s%s", x->ox_json.b_len, x->ox_host,
                      x->ox_port, x->ox_path);
        return;
    }
    if (status > 0)
        snprintf(why, sizeof why, "%s:%s%s answered HTTP %d", x->ox_host, x->ox_port, x->ox_path,
                 status);
    int64_t quiet = 0;
    if (apg_log_limit_hit(&x->ox_warn, apg_mono_ms(), OTLP_WARN_EVERY_MS, &quiet))
        apg_log_warn("otlp", "metrics export failed: %s (%lld more failures not logged)", why,
                     (long long)quiet);
}

/* Exporter thread: a push an interval after the start, then an interval
 * after the end of each push. */
static int64_t otlp_step(void *arg, unsigned kicks)
{
    (void)kicks;
    struct apg_otlp *x = arg;
    int64_t now = apg_mono_ms();
    if (now < x->ox_next_ms)
        return x->ox_next_ms - now;
    otlp_export(x);
    x->ox_next_ms = apg_mono_ms() + x->ox_interval_ms; /* counted from the push's end */
    return x->ox_interval_ms;
}

/* ---- configuration ---------------------------------------------------------- */

/* host, port and path from "http://host:port/path" (scheme, port and path
 * optional: http, 4318, /v1/metrics). */
static apg_err_t parse_target(struct apg_otlp *x, const char *t, char *err, size_t errlen)
{
    const char *key = "metricsGrpcExporterTarget";
    if (!*t)
        return apg_errf(APG_ECONFIG, err, errlen,
                        "config %s is empty: metricsExporterType=OTLP_* needs the collector's "
                        "address (http://host:4318)",
                        key);
    const char *p = t;
    if (strncmp(p, "http://", 7) == 0)
        p += 7;
    else if (strstr(p, "://"))
        return apg_errf(APG_ECONFIG, err, errlen,
                        "config %s=%s: only http:// targets are supported (OTLP/HTTP)", key, t);
    const char *slash = strchr(p, '/');
    size_t hp = slash ? (size_t)(slash - p) : strlen(p);
    const char *colon = NULL;
    if (hp && p[0] == '[') { /* [v6]:port */
        const char *rb = memchr(p, ']', hp);
        if (!rb)
            return apg_errf(APG_ECONFIG, err, errlen, "config %s=%s: bad IPv6 address", key, t);
        colon = rb + 1 < p + hp && rb[1] == ':' ? rb + 1 : NULL;
    } else {
        colon = memchr(p, ':', hp);
    }
    size_t hl = colon ? (size_t)(colon - p) : hp;
    const char *h = p;
    if (hl && h[0] == '[') {
        h++;
        hl -= 2;
    }
    if (hl == 0 || hl >= sizeof(x->ox_host))
        return apg_errf(APG_ECONFIG, err, errlen, "config %s=%s: no host", key, t);
    memcpy(x->ox_host, h, hl);
    x->ox_host[hl] = 0;
    for (size_t i = 0; i < hl; i++)
        if ((unsigned char)h[i] <= ' ' || h[i] == '@')
            return apg_errf(APG_ECONFIG, err, errlen, "config %s=%s: bad host", key, t);
    long port = 4318;
    if (colon) {
        char *end;
        port = strtol(colon + 1, &end, 10);
        if (end != p + hp || end == colon + 1 || port < 1 || port > 65535)
            return apg_errf(APG_ECONFIG, err, errlen, "config %s=%s: bad port", key, t);
    }
    snprintf(x->ox_port, sizeof x->ox_port, "%ld", port);
    const char *path = slash && slash[1] ? slash : OTLP_PATH_DEFAULT;
    if (strlen(path) >= sizeof(x->ox_path))
        return apg_errf(APG_ECONFIG, err, errlen, "config %s=%s: path too long", key, t);
    for (const char *c = path; *c; c++)
        if ((unsigned char)*c <= ' ')
            return apg_errf(APG_ECONFIG, err, errlen, "config %s=%s: bad path", key, t);
    snprintf(x->ox_path, sizeof x->ox_path, "%s", path);
    return APG_OK;
}

/* "k:v,k:v" -> "k: v\r\n" lines. */
static apg_err_t parse_headers(struct apg_otlp *x, const char *h, char *err, size_t errlen)
{
    struct apg_buf b = APG_BUF_INIT;
    for (const char *p = h; *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *colon = memchr(p, ':', n);
        bool ok = colon && colon > p;
        for (size_t i = 0; ok && i < n; i++)
            ok = p[i] != '\r' && p[i] != '\n' && (p + i >= colon || p[i] > ' ');
        if (!ok) {
            apg_buf_free(&b);
            return apg_errf(APG_ECONFIG, err, errlen,
                            "config metricsGrpcExporterHeader=%s: expected key:value pairs "
                            "separated by commas",
                            h);
        }
        apg_buf_append(&b, p, (size_t)(colon - p));
        apg_buf_append_str(&b, ": ");
        apg_buf_append(&b, colon + 1, n - (size_t)(colon - p) - 1);
        apg_buf_append_str(&b, "\r\n");
        p = end ? end + 1 : p + n;
    }
    apg_buf_append(&b, "", 1);
    x->ox_headers = apg_strndup(b.b_data ? (const char *)b.b_data : "", b.b_len ? b.b_len - 1 : 0);
    apg_buf_free(&b);
    return x->ox_headers ? APG_OK : APG_ENOMEM;
}

static void otlp_free(struct apg_otlp *x)
{
    apg_metrics_free(x->ox_mx);
    apg_free(x->ox_headers);
    apg_free(x->ox_attrs);
    apg_buf_free(&x->ox_text);
    apg_buf_free(&x->ox_json);
    apg_buf_free(&x->ox_resp);
    apg_free(x);
}

apg_err_t apg_otlp_start(const struct apg_config *cfg, struct apg_broker *b, struct apg_otlp **out,
                         char *err, size_t errlen)
{
    *out = NULL;
    const char *type = apg_cfg_str(cfg, APG_CFG_metricsExporterType);
    if (strncmp(type, "OTLP", 4) != 0 && strcmp(type, "otlp") != 0) {
        if (strcmp(type, "LOG") == 0)
            apg_log_warn("otlp", "metricsExporterType=LOG: metrics are not written to the log; "
                                 "GET /metrics on httpListenPort serves them");
        return APG_OK;
    }
    struct apg_otlp *x = apg_calloc(1, sizeof(*x));
    if (!x)
        return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    apg_err_t e = parse_target(x, apg_cfg_str(cfg, APG_CFG_metricsGrpcExporterTarget), err, errlen);
    if (!e)
        e = parse_headers(x, apg_cfg_str(cfg, APG_CFG_metricsGrpcExporterHeader), err, errlen);
    const char *labels = apg_cfg_str(cfg, APG_CFG_metricsLabel);
    for (const char *p = labels; !e && *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *colon = memchr(p, ':', n);
        if (!colon || colon == p)
            e = apg_errf(APG_ECONFIG, err, errlen,
                         "config metricsLabel=%s: expected key:value pairs separated by commas",
                         labels);
        p = end ? end + 1 : p + n;
    }
    if (!e && (!(x->ox_attrs = apg_strdup(labels)) || !(x->ox_mx = apg_metrics_new(b))))
        e = apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    if (e) {
        otlp_free(x);
        return e;
    }
    x->ox_interval_ms = apg_cfg_int(cfg, APG_CFG_metricGrpcExporterIntervalInMills);
    x->ox_timeout_ms = apg_cfg_int(cfg, APG_CFG_metricGrpcExporterTimeOutInMills);
    x->ox_start_ns = apg_wall_ms() * 1000000;
    x->ox_next_ms = apg_mono_ms() + x->ox_interval_ms;
    apg_worker_init(&x->ox_worker, otlp_step, x);
    e = apg_worker_start(&x->ox_worker, "OTLP exporter", err, errlen);
    if (e) {
        apg_worker_destroy(&x->ox_worker);
        otlp_free(x);
        return e;
    }
    apg_log_info("otlp", "pushing metrics every %lld ms to http://%s:%s%s (OTLP/HTTP, JSON)",
                 (long long)x->ox_interval_ms, x->ox_host, x->ox_port, x->ox_path);
    *out = x;
    return APG_OK;
}

void apg_otlp_stop(struct apg_otlp *x)
{
    if (!x)
        return;
    apg_worker_stop(&x->ox_worker);
    apg_worker_destroy(&x->ox_worker);
    otlp_free(x);
}

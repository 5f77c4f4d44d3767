/* GET /metrics: the broker's counters and gauges in the Prometheus text
 * format 0.0.4, under RocketMQ 5's metric names (metrics.def).
 *
 * Threads: one renderer per thread that renders (the HTTP loop, the OTLP
 * exporter; it keeps scratch tables between renders); it reads the broker's
 * tables and store through their thread-safe calls, each holding its lock
 * only to copy. */
#ifndef APG_HTTP_METRICS_H
#define APG_HTTP_METRICS_H

#include "common/buf.h"
#include "common/err.h"

struct apg_broker;
struct apg_metrics;

/* Returns owned (apg_metrics_free), NULL when out of memory. Borrows b. */
struct apg_metrics *apg_metrics_new(struct apg_broker *b);
void apg_metrics_free(struct apg_metrics *mx);
/* Appends the exposition to out at wall time now_ms. */
apg_err_t apg_metrics_render(struct apg_metrics *mx, struct apg_buf *out, int64_t now_ms);

#ifndef APG_METRICS_PIECE
#define APG_METRICS_PIECE (256u * 1024) /* bytes between two flushes of a stream */
#endif

/* apg_metrics_render in pieces: flush(arg) runs each time about
 * APG_METRICS_PIECE bytes were appended to out since the last one, and may
 * send bytes and remove them from out's front (apg_http_flush). */
apg_err_t apg_metrics_render_stream(struct apg_metrics *mx, struct apg_buf *out, int64_t now_ms,
                                    void (*flush)(void *arg), void *arg);

#endif

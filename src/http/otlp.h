/* OpenTelemetry metrics push (metricsExporterType=OTLP_GRPC, OTLP_HTTP, OTLP
 * or otlp): every metricGrpcExporterIntervalInMills the families GET
 * /metrics serves are sent to metricsGrpcExporterTarget as one OTLP/HTTP
 * ExportMetricsServiceRequest in the protobuf JSON mapping.
 *
 * Threads: one exporter thread of its own renders, encodes and posts; the
 * loop threads never wait for it. apg_otlp_start and apg_otlp_stop are
 * called from the main thread. */
#ifndef APG_HTTP_OTLP_H
#define APG_HTTP_OTLP_H

#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"

struct apg_broker;
struct apg_config;
struct apg_otlp;

/* Starts the exporter when metricsExporterType asks for OTLP (*out stays
 * NULL otherwise). A bad key value is an APG_ECONFIG error naming the key. */
apg_err_t apg_otlp_start(const struct apg_config *cfg, struct apg_broker *b, struct apg_otlp **out,
                         char *err, size_t errlen);
/* Stops the thread (waits at most one request timeout) and frees x. */
void apg_otlp_stop(struct apg_otlp *x);

/* Encodes a Prometheus text exposition (as apg_metrics_render writes it) as
 * an OTLP ExportMetricsServiceRequest in JSON: counters become monotonic
 * cumulative sums, gauges gauges, histograms histograms with per-bucket
 * counts; labels and the extra attributes attrs ("k:v,k:v", may be NULL)
 * become data point attributes. start_ns/now_ns: the points' times. Pure. */
apg_err_t apg_otlp_encode_json(const char *text, size_t len, const char *attrs, int64_t start_ns,
                               int64_t now_ns, struct apg_buf *out);

#endif

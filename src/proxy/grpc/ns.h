/* Namespaces on the gRPC port (ns.c): a 5.x client's namespace (the
 * x-mq-namespace header, or a Resource's resource_namespace) maps onto
 * the broker's names the way 4.x clients spell them, "ns%topic",
 * "%RETRY%ns%group", so both generations see the same topics and groups.
 *
 * Threads: any; pure except for the unpacked message they rewrite. */
#ifndef APG_PROXY_GRPC_NS_H
#define APG_PROXY_GRPC_NS_H

#include <stdbool.h>
#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#include "proto/messaging.pb-c.h"

/* name in namespace ns into out: unchanged when ns or name is empty, name
 * is a system topic or group, or it already carries ns; else
 * [%RETRY%|%DLQ%]ns%rest. false when out is too small. */
bool apg_grpc_ns_wrap(const char *ns, const char *name, char *out, size_t n);
/* Rewrites every Resource in m (unpacked with the default allocator) into
 * the broker's name: its resource_namespace, or hdr_ns when that is empty,
 * wrapped around its name. Returns how many names changed, or -1 when out
 * of memory. */
int apg_grpc_ns_rewrite(ProtobufCMessage *m, const char *hdr_ns);
/* Sets r to the client's view of broker name full: name without the
 * namespace, resource_namespace the namespace ("" for none). Both point
 * into full or buf (n bytes); full must outlive r's use. */
void apg_grpc_ns_resource(Apache__Rocketmq__V2__Resource *r, const char *full, char *buf, size_t n);

#endif

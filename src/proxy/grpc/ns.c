/* Namespaces of the RocketMQ 5 protocol mapped onto broker names.
 *
 * A 4.x client with a namespace prefixes its topics and groups itself
 * ("ns%topic"; the retry topic of group g is "%RETRY%ns%g"). RocketMQ 5's
 * proxy gives a 5.x client the same names: a Resource {resource_namespace,
 * name} becomes the broker name "ns%name", except system topics
 * (rmq_sys_*, TBW102, SCHEDULE_TOPIC_XXXX, ...) and system groups
 * (CID_RMQ_SYS_*), and names that already carry the namespace; topics
 * going back to the client are split again into name and namespace. The
 * node client sets resource_namespace only on a producer's topics and
 * sends the namespace on every call as the x-mq-namespace header, so the
 * header stands in for an empty resource_namespace.
 *
 * Design: apg_grpc_ns_rewrite walks an unpacked message by its protobuf-c
 * descriptor, so every method's Resources are covered without a list per
 * method; replaced names are freed and allocated with malloc, as
 * protobuf-c's default allocator does.
 *
 * Threads: any. */
#include "proxy/grpc/ns.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RETRY "%RETRY%"
#define DLQ "%DLQ%"

static bool is_system(const char *name)
{
    static const char *const sys[] = {"TBW102",
                                      "SCHEDULE_TOPIC_XXXX",
                                      "BenchmarkTest",
                                      "RMQ_SYS_TRANS_HALF_TOPIC",
                                      "RMQ_SYS_TRACE_TOPIC",
                                      "RMQ_SYS_TRANS_OP_HALF_TOPIC",
                                      "TRANS_CHECK_MAX_TIME_TOPIC",
                                      "SELF_TEST_TOPIC",
                                      "OFFSET_MOVED_EVENT"};
    if (strncmp(name, "rmq_sys_", 8) == 0 || strncmp(name, "CID_RMQ_SYS_", 12) == 0)
        return true;
    for (size_t i = 0; i < sizeof sys / sizeof sys[0]; i++)
        if (strcmp(name, sys[i]) == 0)
            return true;
    return false;
}

/* The length of a %RETRY% or %DLQ% prefix of name (0 for none). */
static size_t prefix_len(const char *name)
{
    if (strncmp(name, RETRY, sizeof RETRY - 1) == 0)
        return sizeof RETRY - 1;
    if (strncmp(name, DLQ, sizeof DLQ - 1) == 0)
        return sizeof DLQ - 1;
    return 0;
}

bool apg_grpc_ns_wrap(const char *ns, const char *name, char *out, size_t n)
{
    size_t nl = ns ? strlen(ns) : 0;
    size_t pl = prefix_len(name);
    const char *rest = name + pl;
    bool keep =
        !nl || !name[0] || is_system(name) || (strncmp(rest, ns, nl) == 0 && rest[nl] == '%');
    int w = keep ? snprintf(out, n, "%s", name)
                 : snprintf(out, n, "%.*s%s%%%s", (int)pl, name, ns, rest);
    return w >= 0 && (size_t)w < n;
}

void apg_grpc_ns_resource(Apache__Rocketmq__V2__Resource *r, const char *full, char *buf, size_t n)
{
    size_t pl = prefix_len(full);
    const char *pct = is_system(full) ? NULL : strchr(full + pl, '%');
    if (!pct || pct == full + pl) {
        r->name = (char *)full;
        r->resource_namespace = (char *)"";
        return;
    }
    /* buf: "<prefix><rest>\0<ns>\0" */
    size_t nsl = (size_t)(pct - (full + pl)), restl = strlen(pct + 1);
    if (pl + restl + 1 + nsl + 1 > n) {
        r->name = (char *)full;
        r->resource_namespace = (char *)"";
        return;
    }
    memcpy(buf, full, pl);
    memcpy(buf + pl, pct + 1, restl + 1);
    char *nsb = buf + pl + restl + 1;
    memcpy(nsb, full + pl, nsl);
    nsb[nsl] = '\0';
    r->name = buf;
    r->resource_namespace = nsb;
}

static int rewrite_resource(Apache__Rocketmq__V2__Resource *r, const char *hdr_ns)
{
    const char *ns =
        r->resource_namespace && r->resource_namespace[0] ? r->resource_namespace : hdr_ns;
    if (!ns || !ns[0] || !r->name || !r->name[0])
        return 0;
    size_t n = strlen(ns) + strlen(r->name) + 2;
    char *w = malloc(n);
    if (!w)
        return -1;
    apg_grpc_ns_wrap(ns, r->name, w, n);
    int changed = strcmp(w, r->name) != 0;
    free(r->name);
    r->name = w;
    return changed;
}

int apg_grpc_ns_rewrite(ProtobufCMessage *m, const char *hdr_ns)
{
    if (!m)
        return 0;
    if (m->descriptor == &apache__rocketmq__v2__resource__descriptor)
        return rewrite_resource((Apache__Rocketmq__V2__Resource *)m, hdr_ns);
    int total = 0;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *(const uint32_t *)(const void *)((const char *)m + f->quantifier_offset) != f->id)
            continue;
        const char *slot = (const char *)m + f->offset;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t cnt = *(const size_t *)(const void *)((const char *)m + f->quantifier_offset);
            ProtobufCMessage **v = *(ProtobufCMessage * *const *)(const void *)slot;
            for (size_t k = 0; k < cnt; k++) {
                int c = apg_grpc_ns_rewrite(v[k], hdr_ns);
                if (c < 0)
                    return -1;
                total += c;
            }
        } else {
            int c = apg_grpc_ns_rewrite(*(ProtobufCMessage *const *)(const void *)slot, hdr_ns);
            if (c < 0)
                return -1;
            total += c;
        }
    }
    return total;
}

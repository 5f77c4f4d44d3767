/* Master/slave replication of the commit log (RocketMQ 4.x HAService,
 * HAConnection and HAClient; docs/wire.md §20, docs/design.md
 * "Replication").
 *
 * The master listens on haListenPort; each slave connects, reports the end
 * of its commit log (8 bytes, big-endian) and the master streams its log
 * from there in frames of [8-byte offset][4-byte size][size bytes], a
 * frame of size 0 being a heartbeat. The slave appends what arrives to its
 * own log through apg_store_replica_append, which indexes it as the put
 * path does, and reports its new end after each batch and every
 * haSendHeartbeatInterval.
 *
 * This module reaches the store through store.h only and the network with
 * plain sockets: one thread for the master side (every slave connection,
 * non-blocking, one poll()), one for a slave's client. Nothing here knows
 * the broker; the broker starts one or the other, tells the client where
 * its master is, and wakes the master when records arrive.
 *
 * The frame codec is pure (ha_frame.c) and fuzzed (tests/fuzz/fuzz_ha.c). */
#ifndef APG_HA_HA_H
#define APG_HA_HA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct apg_store;

/* ---- frame codec (ha_frame.c; pure) ------------------------------------ */

#define APG_HA_HEADER_LEN 12 /* [phy offset: 8][body size: 4] */
#define APG_HA_REPORT_LEN 8  /* [slave max offset: 8] */
/* Largest frame body a slave takes: the read buffer of RocketMQ's HAClient
 * (4 MiB), so a master whose frames a RocketMQ slave reads is read here. */
#define APG_HA_BODY_MAX (4u << 20)

struct apg_ha_frame {
    int64_t hf_offset;      /* commit-log offset of the body's first byte */
    uint32_t hf_size;       /* body bytes; 0 = heartbeat */
    const uint8_t *hf_body; /* borrows the decoder's buffer */
};

/* Writes a frame header for size bytes at commit-log offset off. */
void apg_ha_frame_header(uint8_t out[APG_HA_HEADER_LEN], int64_t off, uint32_t size);

/* Decodes one frame at the start of buf[0..len). APG_OK: *f is set and
 * *used is its length (header + body). APG_EAGAIN: the frame is not
 * complete yet (nothing consumed). APG_EINVAL: not a frame (a negative
 * offset, a body over max_body or over the offset range); err says which.
 * Pure. */
apg_err_t apg_ha_frame_decode(const uint8_t *buf, size_t len, uint32_t max_body,
                              struct apg_ha_frame *f, size_t *used, char *err, size_t errlen);

/* Writes a slave's report of its commit-log end. */
void apg_ha_report_encode(uint8_t out[APG_HA_REPORT_LEN], int64_t off);

/* Decodes the reports in buf[0..len): *off = the last complete one, *used =
 * the bytes of every complete report (a trailing partial one stays).
 * APG_EAGAIN: no complete report. APG_EINVAL: the last report is negative.
 * Pure. */
apg_err_t apg_ha_report_decode(const uint8_t *buf, size_t len, int64_t *off, size_t *used);

/* ---- master (ha_master.c) ---------------------------------------------- */

struct apg_ha_master; /* opaque; owns its thread, listener and connections */

struct apg_ha_master_opts {
    const char *hm_host;    /* bind address (borrowed for the call) */
    int hm_port;            /* haListenPort */
    int hm_heartbeat_ms;    /* haSendHeartbeatInterval */
    int hm_housekeeping_ms; /* haHousekeepingInterval */
    uint32_t hm_batch;      /* haTransferBatchSize */
};

/* Listens and starts the master's HA thread, which reads st (borrowed: keep
 * it open until apg_ha_master_stop returns). */
apg_err_t apg_ha_master_start(struct apg_store *st, const struct apg_ha_master_opts *o,
                              struct apg_ha_master **out, char *err, size_t errlen);
/* The store has new records: wakes the HA thread if it sleeps. Any thread,
 * lock-free; cheap enough for every put. */
void apg_ha_master_notify(struct apg_ha_master *m);
/* Closes every connection and joins the thread. NULL is ignored. */
void apg_ha_master_stop(struct apg_ha_master *m);

struct apg_ha_slave_info {
    char hs_addr[64];       /* the slave's address as the master sees it */
    int64_t hs_ack_offset;  /* the end of its log it last reported */
    int64_t hs_sent_offset; /* the master has sent up to here */
};
/* Copies up to cap connected slaves into out; returns how many are
 * connected. Any thread. */
int apg_ha_master_slaves(struct apg_ha_master *m, struct apg_ha_slave_info *out, int cap);

/* ---- slave (ha_client.c) ----------------------------------------------- */

struct apg_ha_client; /* opaque; owns its thread and connection */

struct apg_ha_client_opts {
    int hc_heartbeat_ms;    /* haSendHeartbeatInterval */
    int hc_housekeeping_ms; /* haHousekeepingInterval */
};

/* Starts the slave's HA thread, which appends to st (borrowed: keep it open
 * until apg_ha_client_stop returns). It connects once it has a master
 * address. */
apg_err_t apg_ha_client_start(struct apg_store *st, const struct apg_ha_client_opts *o,
                              struct apg_ha_client **out, char *err, size_t errlen);
/* Sets the master's HA address ("host:port"); a change closes the current
 * connection and connects to the new one. Any thread. */
void apg_ha_client_set_master(struct apg_ha_client *c, const char *addr);
/* Closes the connection and joins the thread. NULL is ignored. */
void apg_ha_client_stop(struct apg_ha_client *c);

struct apg_ha_client_stats {
    bool cs_connected;
    char cs_master[128];      /* the HA address in use, "" if none */
    int64_t cs_last_frame_ms; /* wall clock of the last frame, 0 if none */
    uint64_t cs_bytes;        /* commit-log bytes received since start */
    uint64_t cs_closes;       /* connections closed for a bad frame or a mismatch */
    char cs_last_error[640];  /* why the last connection ended, "" if none */
};
void apg_ha_client_stats(struct apg_ha_client *c, struct apg_ha_client_stats *out);

#endif

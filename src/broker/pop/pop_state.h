/* The state of pop consumption, pure: no lock, no clock, no file, no store.
 *
 * Per (group, topic, queue) a pop queue keeps the next queue offset to hand
 * out (the pop cursor) and the messages handed out and not yet acknowledged
 * (entries, sorted by queue offset). An entry is in one of three states:
 * INVISIBLE (handed to a consumer until pe_due), BACKOFF (its invisibility
 * ran out; it may be handed again from pe_due) and READY (may be handed
 * again now). Every INVISIBLE and BACKOFF entry sits in one min-heap by
 * pe_due, so the revive job finds what is due without scanning. Memory is
 * proportional to the entries, never to the backlog of a queue.
 *
 * Changes are journaled as records (apg_pop_rec_*) that the same code
 * replays, so the live path and recovery share one apply function: a pop
 * (entries set INVISIBLE with a stamp and deadline, cursor moved), an ack
 * (entry removed when its stamp matches, or unconditionally), a change of
 * invisible time (new stamp and deadline). Expiry is not journaled: after a
 * restart an entry whose deadline passed expires again.
 *
 * Record layout (big endian):
 *   u32 body length | u32 CRC32 of the body (zlib's) | body
 *   body: u8 op | u16 group length | group | u16 topic length | topic |
 *         i32 queue id | op fields
 *   'P' pop:    i64 stamp | i64 due | i64 invisible ms | i64 cursor after |
 *               u16 n | n x (i64 queue offset | i64 commit-log offset |
 *               i32 attempts | u8 state)
 *   'A' ack:    i64 queue offset | i64 stamp (-1: remove whatever stamp)
 *   'C' change: i64 queue offset | i64 old stamp | i64 new stamp | i64 due |
 *               i64 invisible ms
 *
 * Threads: none of its own; the owner (pop.c) locks. */
#ifndef APG_BROKER_POP_STATE_H
#define APG_BROKER_POP_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/smap.h"

enum apg_pop_ent_state {
    APG_POP_INVISIBLE = 0,
    APG_POP_BACKOFF = 1,
    APG_POP_READY = 2,
};

struct apg_pop_queue;

struct apg_pop_ent {
    int64_t pe_offset;    /* queue offset */
    int64_t pe_phys;      /* commit-log offset of the record */
    int64_t pe_due;       /* INVISIBLE: invisible until; BACKOFF: ready at (wall ms) */
    int64_t pe_stamp;     /* pop time of the current delivery (the handle's popTime) */
    int64_t pe_invisible; /* invisible duration of the current delivery, ms */
    int32_t pe_attempts;  /* deliveries so far */
    uint8_t pe_state;     /* enum apg_pop_ent_state */
    int32_t pe_heap;      /* index in the deadline heap, -1 when READY */
    struct apg_pop_queue *pe_q;
};

struct apg_pop_queue {
    char *pq_group;
    char *pq_topic;
    int32_t pq_qid;
    int64_t pq_next;                /* pop cursor: next queue offset never handed out */
    struct apg_pop_ent **pq_ents;   /* sorted by offset; NULL slots are removed entries */
    size_t pq_head, pq_len, pq_cap; /* live slots are [pq_head, pq_len) */
    size_t pq_live;                 /* entries */
    size_t pq_ready;                /* of those, READY */
};

struct apg_pop_state {
    struct apg_smap ps_queues; /* "group\x01topic\x01qid" -> struct apg_pop_queue* */
    struct apg_pop_ent **ps_heap;
    size_t ps_heap_n, ps_heap_cap;
    int64_t ps_entries; /* entries over all queues */
};

/* One entry of a 'P' record. */
struct apg_pop_rec_ent {
    int64_t re_offset;
    int64_t re_phys;
    int32_t re_attempts;
    uint8_t re_state;
};

#define APG_POP_REC_MAX_ENTS 1024

/* A decoded record; strings borrow the record bytes (not NUL-terminated). */
struct apg_pop_rec {
    uint8_t r_op; /* 'P', 'A', 'C' */
    const char *r_group;
    size_t r_group_len;
    const char *r_topic;
    size_t r_topic_len;
    int32_t r_qid;
    int64_t r_offset;     /* A, C */
    int64_t r_stamp;      /* P: the pop's; A, C: the handle's */
    int64_t r_new_stamp;  /* C */
    int64_t r_due;        /* P, C */
    int64_t r_invisible;  /* P, C */
    int64_t r_next;       /* P */
    uint16_t r_n;         /* P */
    const uint8_t *r_ent; /* P: r_n encoded entries */
};

void apg_pop_state_init(struct apg_pop_state *ps);
void apg_pop_state_free(struct apg_pop_state *ps);

/* The queue of (group, topic, qid), or NULL. */
struct apg_pop_queue *apg_pop_state_queue(struct apg_pop_state *ps, const char *group,
                                          const char *topic, int32_t qid);
/* The same, created with cursor `next` when absent; NULL out of memory. */
struct apg_pop_queue *apg_pop_state_queue_add(struct apg_pop_state *ps, const char *group,
                                              const char *topic, int32_t qid, int64_t next);
/* The entry of q at offset, or NULL. */
struct apg_pop_ent *apg_pop_state_find(struct apg_pop_queue *q, int64_t offset);
/* The lowest offset not yet acknowledged: the first entry's, else the cursor. */
int64_t apg_pop_state_low(const struct apg_pop_queue *q);
/* True when q has entries that are not READY (a FIFO queue is then held). */
bool apg_pop_state_busy(const struct apg_pop_queue *q);
/* Up to max READY entries of q in offset order into out; returns the count. */
int apg_pop_state_ready(struct apg_pop_queue *q, struct apg_pop_ent **out, int max);

/* Applies a decoded record. APG_ENOTFOUND for an ack or change whose entry
 * is absent or whose stamp does not match (nothing changed); APG_ENOMEM;
 * APG_ECORRUPT for a record that does not decode. */
apg_err_t apg_pop_state_apply(struct apg_pop_state *ps, const struct apg_pop_rec *r);

/* Removes e from its queue and the heap and frees it. */
void apg_pop_state_remove(struct apg_pop_state *ps, struct apg_pop_ent *e);

/* The entry with the earliest deadline when it is due at now, or NULL. */
struct apg_pop_ent *apg_pop_state_due(struct apg_pop_state *ps, int64_t now);
/* Moves a due entry on: INVISIBLE -> BACKOFF until now + backoff_ms (READY
 * at once when backoff_ms <= 0), BACKOFF -> READY. */
void apg_pop_state_expire(struct apg_pop_state *ps, struct apg_pop_ent *e, int64_t now,
                          int64_t backoff_ms);

/* ---- records ------------------------------------------------------------ */

/* Starts a record (header and queue key); the caller appends the op fields
 * with apg_buf_put_be* and ends it with apg_pop_rec_end(b, start). */
apg_err_t apg_pop_rec_begin(struct apg_buf *b, uint8_t op, const char *group, const char *topic,
                            int32_t qid, size_t *start);
void apg_pop_rec_end(struct apg_buf *b, size_t start);
/* Appends one 'P' entry. */
apg_err_t apg_pop_rec_put_ent(struct apg_buf *b, const struct apg_pop_rec_ent *re);
/* Reads entry i of a decoded 'P' record. */
void apg_pop_rec_ent(const struct apg_pop_rec *r, int i, struct apg_pop_rec_ent *out);
/* Decodes the record at buf[0..len): APG_OK with *used its size,
 * APG_EAGAIN when cut short, APG_ECORRUPT on a bad CRC or body. Pure. */
apg_err_t apg_pop_rec_decode(const uint8_t *buf, size_t len, struct apg_pop_rec *r, size_t *used);
/* Appends records that rebuild the whole state (a snapshot). */
apg_err_t apg_pop_state_encode(struct apg_pop_state *ps, struct apg_buf *b);

#endif

/* Push consumer internals shared by the files of src/client/push/.
 *
 * Threads and ownership. The I/O thread (client/io.c) owns the subscription
 * list, the list of process queues (struct pq: one per assigned queue) and
 * every pull. Workers (consume_threads pthreads, worker.c) call the user's
 * listener. What both sides touch sits under pc_mu: each queue's message
 * cache, its committed offset, its drop flag and reference count, and the
 * task lists. Each field below says which side owns it.
 *
 * Files: consumer.c (public API, I/O-thread hooks, operations handed to
 * the I/O thread), pq.c (process queue: message cache and tasks), pull.c
 * (long-polling pulls), offsets.c (start offsets, commits, the broadcasting
 * offsets file), rebalance.c (queue assignment), orderly.c (broker-side
 * queue locks of orderly clustering), worker.c (listener threads),
 * running_info.c (GET_CONSUMER_RUNNING_INFO report). */
#ifndef APOGEE_CLIENT_PUSH_INT_H
#define APOGEE_CLIENT_PUSH_INT_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "client/client_int.h"

#define PULL_FLAG_SUSPEND 0x2
#define PULL_FLAG_SUBSCRIPTION 0x4
#define FLOW_DELAY_MS 50
#define ERROR_DELAY_MS 1000
#define RETRY_DELAY_MS 1000
#define HANDOVER_DELAY_MS 300
#define LOCK_RETRY_MS 1000 /* a queue another member still holds: ask again this often */
#define LOCK_WAIT_MS 100   /* orderly task of a queue whose lock is stale: look again */

/* Counters of one subscribed topic for GET_CONSUMER_RUNNING_INFO's
 * ConsumeStatus: totals since start, and snapshots of them. */
struct pstats {
    int64_t ps_pulls, ps_pull_rt_ms, ps_pulled; /* pulls that found messages */
    int64_t ps_calls, ps_consume_rt_ms;         /* listener calls */
    int64_t ps_ok, ps_failed;                   /* messages consumed / declined */
    int64_t ps_at_ms;                           /* snapshots: apg_now_ms() taken */
};

struct psub {
    char *s_topic;
    char *s_expr;
    bool s_sql; /* SQL92: the broker filters; s_te is empty */
    struct apg_tagexpr s_te;
    bool s_busy;      /* rebalance of this topic in progress (I/O thread) */
    bool s_again;     /* another rebalance was asked meanwhile */
    bool s_retry_set; /* a retry after a failure is scheduled */
    int s_backoff_ms; /* next retry delay after a failed rebalance */
    struct apg_push_consumer *s_owner;
    struct psub *s_next;
    /* under pc_mu: totals, and the snapshots the rates are taken from
     * (rolled every minute by the I/O thread: [0] older, [1] newer) */
    struct pstats s_stats, s_mark[2];
};

struct pent {
    int64_t e_off;
    apg_message_t *e_msg; /* NULL once done */
};

struct pq {
    apg_mq_t q_mq;
    struct psub *q_sub;
    struct apg_push_consumer *q_c;
    /* I/O thread */
    int64_t q_next_pull;
    bool q_pulling;
    struct pq *q_next;
    /* under pc_mu */
    int q_refs;
    bool q_dropped;
    bool q_consuming; /* orderly: a task is out */
    /* orderly clustering (under pc_mu; written by the I/O thread except
     * q_in_listener and q_release_owed, see apg_push_worker_main) */
    bool q_locked;       /* the broker granted our lock at q_lock_ms */
    int64_t q_lock_ms;   /* apg_now_ms() of the last granted lock or renewal */
    bool q_in_listener;  /* a worker is inside the listener for this queue */
    bool q_release_owed; /* dropped while in the listener: the worker commits and unlocks */
    bool q_acquiring;    /* I/O thread: first lock in flight or waiting for a retry */
    struct pent *q_ring;
    size_t q_cap, q_head, q_len;
    uint64_t q_seq0;     /* absolute sequence number of the ring head */
    uint64_t q_dispatch; /* first sequence number not yet handed out */
    size_t q_bytes;
    int64_t q_pulled; /* nextBeginOffset of the last pull */
    int64_t q_commit; /* -1: nothing to commit yet */
    bool q_dirty;
    int64_t q_last_consume_ms; /* apg_wall_ms() after the last listener call */
    /* I/O thread */
    int64_t q_last_pull_ms; /* apg_wall_ms() of the last pull answer */
    int64_t q_pull_sent_ms; /* apg_now_ms() when the pull out was sent */
};

struct ptask {
    struct pq *t_q;
    int64_t t_not_before;
    struct ptask *t_next;
    size_t t_n;
    uint64_t *t_seq;
    apg_message_t **t_msgs;
};

struct offline {
    apg_mq_t ol_mq;
    int64_t ol_off;
};

struct apg_push_consumer {
    struct apg_conf *pc_conf; /* a private copy, never changed */
    const char *pc_group;     /* consumerGroup of pc_conf */
    char *pc_offdir;          /* localOffsetStoreDir, or the default path */
    char *pc_retry_topic;
    struct apg_cio *pc_io;
    struct psub *pc_subs;
    apg_consume_cb pc_cb;
    void *pc_arg;
    bool pc_started;
    /* I/O thread */
    struct pq *pc_queues;
    int64_t pc_next_rebalance, pc_next_commit;
    bool pc_io_stop;        /* no new pulls */
    int64_t pc_next_lock;   /* orderly clustering: next renewal of every queue lock */
    apg_mq_t *pc_releasing; /* queues being given up: commit/unlock not yet answered */
    size_t pc_nreleasing, pc_capreleasing;
    /* under pc_mu */
    pthread_mutex_t pc_mu;
    pthread_cond_t pc_cv;
    bool pc_stop;
    struct ptask *pc_ready, *pc_ready_tail;
    struct ptask *pc_delayed; /* by t_not_before */
    struct offline *pc_file;  /* broadcasting: offsets read from / written to the file */
    size_t pc_nfile;
    pthread_t *pc_workers;
    int pc_nworkers;
    /* set before the I/O thread starts */
    int64_t pc_start_ms; /* apg_wall_ms() of apg_push_consumer_start */
};

static inline bool apg_push_mq_eq(const apg_mq_t *a, const apg_mq_t *b)
{
    return a->mq_queue_id == b->mq_queue_id && strcmp(a->mq_topic, b->mq_topic) == 0 &&
           strcmp(a->mq_broker, b->mq_broker) == 0;
}

/* Orderly clustering: queues are consumed only under a broker-side lock. */
static inline bool apg_push_locking(const struct apg_push_consumer *c)
{
    return c->pc_conf->orderly && c->pc_conf->message_model == APG_CLUSTERING;
}

struct flush_wait {
    int fw_pending;
    struct apg_cwait fw_wait;
};

/* An operation a worker or an API call hands to the I/O thread and waits
 * for (apg_push_op_exec). */
enum { POP_START, POP_STOP, POP_FLUSH, POP_BACK, POP_ASSIGNED, POP_CHECK, POP_RELEASE };

struct pop {
    struct apg_cop po_op;
    struct apg_push_consumer *po_c;
    int po_kind;
    struct apg_cwait po_wait;
    /* POP_BACK */
    const apg_message_t *po_msg;
    bool po_dlq; /* straight to the dead-letter queue (delayLevel -1) */
    apg_err_t po_err;
    /* POP_RELEASE */
    apg_mq_t po_mq;
    int64_t po_off;
    /* POP_FLUSH */
    struct flush_wait po_fw;
    /* POP_ASSIGNED */
    apg_mq_t *po_mqs;
    size_t po_n;
    /* POP_CHECK */
    const struct psub *po_sub;
    char po_remark[512];
};

/* ---- pq.c (callers hold pc_mu where the name ends in _locked) ---- */

/* Drops one reference to q; the last frees its cached messages and q. */
void apg_push_pq_release_locked(struct pq *q);
void apg_push_task_free(struct ptask *t);
/* Cuts tasks out of the undispatched part of q's ring for the workers. */
void apg_push_pq_dispatch_locked(struct apg_push_consumer *c, struct pq *q);
/* Marks entries done (their messages are freed) and advances the head and
 * the queue's committed offset. */
void apg_push_pq_done_locked(struct pq *q, const uint64_t *seqs, size_t n);
/* Appends m (taken on success) at queue offset off. */
apg_err_t apg_push_pq_append_locked(struct pq *q, int64_t off, apg_message_t *m);
/* I/O thread: a new process queue for mq, linked first in c's list. */
struct pq *apg_push_pq_new(struct apg_cio *io, struct apg_push_consumer *c, struct psub *s,
                           const apg_mq_t *mq);

/* ---- pull.c (I/O thread) ---- */

/* Sends q's next PULL_MESSAGE unless one is out, q is dropped or stopping. */
void apg_push_pull_start(struct apg_cio *io, struct pq *q);

/* ---- offsets.c ---- */

/* Reads the broadcasting offsets file into pc_file (before the I/O starts). */
void apg_push_offsets_load(struct apg_push_consumer *c);
/* Response callback counting fw down (arg is the struct flush_wait). */
void apg_push_flush_resp(struct apg_cio *io, apg_err_t e, const struct apg_rcmd *resp,
                         const char *errmsg, void *arg);
/* I/O thread: commits one offset to the broker (fw NULL: oneway). */
void apg_push_offset_commit(struct apg_cio *io, struct apg_push_consumer *c, const apg_mq_t *mq,
                            int64_t off, struct flush_wait *fw);
/* I/O thread: sends every changed offset (clustering) or rewrites the file. */
void apg_push_offsets_commit_all(struct apg_cio *io, struct apg_push_consumer *c,
                                 struct flush_wait *fw);
/* I/O thread: q starts at off; the first pull is sent. */
void apg_push_queue_begin(struct apg_cio *io, struct pq *q, int64_t off);
/* I/O thread: finds q's start offset and starts pulling it. shared: the
 * queue had another owner a moment ago (its commit gets a head start). */
void apg_push_queue_start(struct apg_cio *io, struct pq *q, bool shared);

/* ---- rebalance.c (I/O thread) ---- */

/* Unlinks q and gives it up: its offset is committed (and, orderly, the
 * queue unlocked); fw counts the requests when not NULL. */
void apg_push_queue_drop(struct apg_cio *io, struct apg_push_consumer *c, struct pq *q,
                         struct flush_wait *fw);
/* Rebalances every subscribed topic. */
void apg_push_rebalance_all(struct apg_cio *io, struct apg_push_consumer *c);

/* ---- orderly.c ---- */

/* I/O thread: asks for q's lock, retrying while another member holds it;
 * once granted, q's start offset is read and pulling starts. */
void apg_push_lock_first(struct apg_cio *io, struct pq *q);
/* I/O thread: mq is being given up (see apg_push_queue_release). */
void apg_push_releasing_add(struct apg_push_consumer *c, const apg_mq_t *mq);
/* I/O thread: commits off (if >= 0), then unlocks mq. listed: mq is already
 * in pc_releasing. */
void apg_push_queue_release(struct apg_cio *io, struct apg_push_consumer *c, const apg_mq_t *mq,
                            int64_t off, struct flush_wait *fw, bool listed);
/* I/O thread: renews every held queue lock, one request per broker. */
void apg_push_locks_renew(struct apg_cio *io, struct apg_push_consumer *c);
/* Worker, no lock held: the orderly listener declined t; messages out of
 * retries go to the dead-letter queue. Returns how many remain in t. */
size_t apg_push_orderly_give_up(struct apg_push_consumer *c, struct pq *q, struct ptask *t);

/* ---- running_info.c (I/O thread) ---- */

/* Appends c's ConsumerRunningInfo JSON (GET_CONSUMER_RUNNING_INFO) to out;
 * jstack: the admin asked for thread stacks (answered with an empty
 * string). */
apg_err_t apg_push_running_info(struct apg_cio *io, struct apg_push_consumer *c, bool jstack,
                                struct apg_buf *out);
/* Rolls the statistics snapshots once a minute (now: apg_now_ms()); at
 * start, with every snapshot still zero, it dates them. */
void apg_push_stats_roll(struct apg_push_consumer *c, int64_t now);

/* ---- consumer.c ---- */

/* The SubscriptionData object of s, as heartbeats and the running info
 * carry it (new reference, NULL when out of memory). */
json_t *apg_push_sub_json(const struct psub *s);

/* Any thread but the I/O thread: runs op on the I/O thread and waits. */
apg_err_t apg_push_op_exec(struct apg_push_consumer *c, struct pop *op);

/* ---- worker.c ---- */

/* A listener thread (arg is the consumer) until pc_stop. */
void *apg_push_worker_main(void *arg);

#endif

/* Process queue: the message cache of one assigned queue and the tasks cut
 * from it for the workers.
 *
 * A queue's cache is a ring of entries in queue-offset order. A pull
 * response is appended to the ring and cut into tasks (consume_batch
 * messages each); orderly queues hand out one task at a time. When the
 * listener returns SUCCESS the entries are marked done and the ring's head
 * advances over done entries; the queue's committed offset is the head's
 * offset, or the next pull offset when the ring is empty. So an offset never
 * passes an unconsumed message.
 *
 * Threads. Everything here runs under pc_mu, from the I/O thread (append,
 * dispatch) or a worker (done, dispatch of the next orderly task). A queue
 * is freed when its last reference (the consumer's list, a pull in flight,
 * a timer, a task) is released. */
#include "client/push/push_int.h"
#include "common/log.h"
#include "common/mem.h"

void apg_push_pq_release_locked(struct pq *q)
{
    if (--q->q_refs > 0)
        return;
    for (size_t i = 0; i < q->q_len; i++)
        apg_message_free(q->q_ring[(q->q_head + i) % q->q_cap].e_msg);
    apg_free(q->q_ring);
    apg_free(q);
}

void apg_push_task_free(struct ptask *t)
{
    apg_free(t);
}

/* Caller holds pc_mu. Cuts tasks out of the undispatched part of q's ring. */
void apg_push_pq_dispatch_locked(struct apg_push_consumer *c, struct pq *q)
{
    size_t batch = (size_t)c->pc_conf->consume_batch;
    while (!q->q_dropped && q->q_dispatch < q->q_seq0 + q->q_len) {
        if (c->pc_conf->orderly && q->q_consuming)
            return;
        size_t avail = (size_t)(q->q_seq0 + q->q_len - q->q_dispatch);
        size_t n = avail < batch ? avail : batch;
        struct ptask *t = apg_malloc(sizeof(*t) + n * (sizeof(uint64_t) + sizeof(apg_message_t *)));
        if (t == NULL)
            return; /* retried at the next pull of this queue */
        t->t_q = q;
        t->t_n = n;
        t->t_not_before = 0;
        t->t_next = NULL;
        t->t_seq = (uint64_t *)(t + 1);
        t->t_msgs = (apg_message_t **)(t->t_seq + n);
        for (size_t i = 0; i < n; i++) {
            uint64_t seq = q->q_dispatch + i;
            t->t_seq[i] = seq;
            t->t_msgs[i] = q->q_ring[(q->q_head + (seq - q->q_seq0)) % q->q_cap].e_msg;
        }
        q->q_dispatch += n;
        q->q_refs++;
        if (c->pc_conf->orderly)
            q->q_consuming = true;
        if (c->pc_ready_tail)
            c->pc_ready_tail->t_next = t;
        else
            c->pc_ready = t;
        c->pc_ready_tail = t;
        pthread_cond_signal(&c->pc_cv);
    }
}

/* Caller holds pc_mu. Marks entries done and advances the head; the
 * messages are freed. */
void apg_push_pq_done_locked(struct pq *q, const uint64_t *seqs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (seqs[i] < q->q_seq0)
            continue;
        struct pent *e = &q->q_ring[(q->q_head + (seqs[i] - q->q_seq0)) % q->q_cap];
        if (e->e_msg) {
            size_t bl;
            apg_message_body(e->e_msg, &bl);
            q->q_bytes -= bl;
            apg_message_free(e->e_msg);
            e->e_msg = NULL;
        }
    }
    while (q->q_len > 0 && q->q_ring[q->q_head].e_msg == NULL) {
        q->q_head = (q->q_head + 1) % q->q_cap;
        q->q_len--;
        q->q_seq0++;
    }
    if (q->q_dispatch < q->q_seq0)
        q->q_dispatch = q->q_seq0;
    int64_t commit = q->q_len > 0 ? q->q_ring[q->q_head].e_off : q->q_pulled;
    if (commit != q->q_commit) {
        q->q_commit = commit;
        q->q_dirty = true;
    }
}

/* Caller holds pc_mu. */
apg_err_t apg_push_pq_append_locked(struct pq *q, int64_t off, apg_message_t *m)
{
    if (q->q_len == q->q_cap) {
        size_t cap = q->q_cap ? q->q_cap * 2 : 64;
        struct pent *r = apg_malloc(cap * sizeof(*r));
        if (r == NULL)
            return APG_ENOMEM;
        for (size_t i = 0; i < q->q_len; i++)
            r[i] = q->q_ring[(q->q_head + i) % q->q_cap];
        apg_free(q->q_ring);
        q->q_ring = r;
        q->q_cap = cap;
        q->q_head = 0;
    }
    struct pent *e = &q->q_ring[(q->q_head + q->q_len) % q->q_cap];
    e->e_off = off;
    e->e_msg = m;
    q->q_len++;
    size_t bl;
    apg_message_body(m, &bl);
    q->q_bytes += bl;
    return APG_OK;
}

/* A new process queue for mq, linked first in the consumer's list. */
struct pq *apg_push_pq_new(struct apg_cio *io, struct apg_push_consumer *c, struct psub *s,
                           const apg_mq_t *mq)
{
    struct pq *q = apg_calloc(1, sizeof(*q));
    if (q == NULL)
        return NULL;
    q->q_mq = *mq;
    q->q_sub = s;
    q->q_c = c;
    q->q_refs = 1;
    q->q_commit = -1;
    q->q_next = c->pc_queues;
    c->pc_queues = q;
    apg_log_debug("client", "%s: queue %s:%s:%d assigned", apg_cio_client_id(io), mq->mq_topic,
                  mq->mq_broker, mq->mq_queue_id);
    return q;
}

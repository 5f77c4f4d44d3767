/* Listener threads of the push consumer.
 *
 * Design. consume_threads workers take tasks from pc_ready (FIFO) and call
 * the user's listener outside pc_mu. A task whose time has not come waits in
 * pc_delayed (sorted by t_not_before) and moves to pc_ready when it is due.
 * SUCCESS marks the task's entries done. Otherwise, concurrently consumed
 * messages are sent back to the broker (CONSUMER_SEND_MSG_BACK, clustering)
 * and those that could not be are retried locally after RETRY_DELAY_MS;
 * orderly tasks are retried in place (orderly.c). Orderly clustering calls
 * the listener only while the queue's lock is held and fresh
 * (rebalanceLockMaxLiveTime), and a queue dropped during the call is
 * committed and unlocked by the worker when the call returns.
 *
 * Threads. Each worker holds pc_mu except inside the listener and while it
 * waits for an operation on the I/O thread. */
#include "client/push/push_int.h"
#include "common/clock.h"
#include "common/mem.h"

/* Caller holds pc_mu: t waits in the delayed list until not_before. */
static void task_delay_locked(struct apg_push_consumer *c, struct ptask *t, int64_t not_before)
{
    t->t_not_before = not_before;
    struct ptask **pp = &c->pc_delayed;
    while (*pp && (*pp)->t_not_before <= t->t_not_before)
        pp = &(*pp)->t_next;
    t->t_next = *pp;
    *pp = t;
}

void *apg_push_worker_main(void *arg)
{
    struct apg_push_consumer *c = arg;
    pthread_mutex_lock(&c->pc_mu);
    for (;;) {
        if (c->pc_stop)
            break;
        int64_t now = apg_now_ms();
        while (c->pc_delayed && c->pc_delayed->t_not_before <= now) {
            struct ptask *t = c->pc_delayed;
            c->pc_delayed = t->t_next;
            t->t_next = NULL;
            if (c->pc_ready_tail)
                c->pc_ready_tail->t_next = t;
            else
                c->pc_ready = t;
            c->pc_ready_tail = t;
        }
        struct ptask *t = c->pc_ready;
        if (t == NULL) {
            if (c->pc_delayed) {
                apg_cond_wait_ms(&c->pc_cv, &c->pc_mu, c->pc_delayed->t_not_before - now);
            } else {
                pthread_cond_wait(&c->pc_cv, &c->pc_mu);
            }
            continue;
        }
        c->pc_ready = t->t_next;
        if (c->pc_ready == NULL)
            c->pc_ready_tail = NULL;
        struct pq *q = t->t_q;
        if (q->q_dropped) {
            q->q_consuming = false;
            apg_push_pq_release_locked(q);
            apg_push_task_free(t);
            continue;
        }
        if (apg_push_locking(c) &&
            (!q->q_locked || now - q->q_lock_ms > c->pc_conf->lock_live_ms)) {
            /* Not ours for sure right now: wait for the lock (renewal). */
            task_delay_locked(c, t, now + LOCK_WAIT_MS);
            continue;
        }
        q->q_in_listener = true;
        pthread_mutex_unlock(&c->pc_mu);
        int64_t t0 = apg_now_ms();
        int r = c->pc_cb(t->t_msgs, t->t_n, &q->q_mq, c->pc_arg);
        int64_t rt = apg_now_ms() - t0;
        size_t ncalled = t->t_n;
        size_t nback_failed = 0;
        if (r != APG_CONSUME_SUCCESS && !c->pc_conf->orderly) {
            /* Send back what we can; keep the rest for a local retry. */
            for (size_t i = 0; i < t->t_n; i++) {
                struct pop op;
                memset(&op, 0, sizeof(op));
                op.po_kind = POP_BACK;
                op.po_msg = t->t_msgs[i];
                if (c->pc_conf->message_model == APG_CLUSTERING &&
                    apg_push_op_exec(c, &op) == APG_OK) {
                    pthread_mutex_lock(&c->pc_mu);
                    apg_push_pq_done_locked(q, &t->t_seq[i], 1);
                    pthread_mutex_unlock(&c->pc_mu);
                } else {
                    t->t_msgs[nback_failed] = t->t_msgs[i];
                    t->t_seq[nback_failed++] = t->t_seq[i];
                }
            }
        } else if (r != APG_CONSUME_SUCCESS) {
            nback_failed = apg_push_orderly_give_up(c, q, t);
        }
        pthread_mutex_lock(&c->pc_mu);
        q->q_in_listener = false;
        q->q_last_consume_ms = apg_wall_ms();
        struct pstats *st = &q->q_sub->s_stats;
        st->ps_calls++;
        st->ps_consume_rt_ms += rt;
        *(r == APG_CONSUME_SUCCESS ? &st->ps_ok : &st->ps_failed) += (int64_t)ncalled;
        bool retry = r != APG_CONSUME_SUCCESS && nback_failed > 0 && !q->q_dropped;
        if (r == APG_CONSUME_SUCCESS)
            apg_push_pq_done_locked(q, t->t_seq, t->t_n);
        if (q->q_release_owed) {
            /* Dropped while we were in the listener: commit what is done,
             * then unlock, so the next holder starts after us. */
            q->q_release_owed = false;
            q->q_dirty = false;
            struct pop op;
            memset(&op, 0, sizeof(op));
            op.po_kind = POP_RELEASE;
            op.po_mq = q->q_mq;
            op.po_off = q->q_commit;
            pthread_mutex_unlock(&c->pc_mu);
            apg_push_op_exec(c, &op);
            pthread_mutex_lock(&c->pc_mu);
        }
        if (retry) {
            if (!c->pc_conf->orderly)
                t->t_n = nback_failed;
            for (size_t i = 0; i < t->t_n; i++)
                t->t_msgs[i]->m_reconsume++;
            task_delay_locked(c, t,
                              apg_now_ms() + (c->pc_conf->orderly ? c->pc_conf->suspend_current_ms
                                                                  : RETRY_DELAY_MS));
            continue; /* keeps its reference and, orderly, q_consuming */
        }
        if (c->pc_conf->orderly) {
            q->q_consuming = false;
            apg_push_pq_dispatch_locked(c, q);
        }
        apg_push_pq_release_locked(q);
        apg_push_task_free(t);
    }
    pthread_mutex_unlock(&c->pc_mu);
    return NULL;
}

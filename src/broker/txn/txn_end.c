/* END_TRANSACTION (37): a producer's verdict on a half message.
 *
 * The header names the half by commitLogOffset (its record) and
 * tranStateTableOffset (its half queue offset, checked against the record),
 * with producerGroup (checked against the record's PGROUP) and
 * commitOrRollback: 8 commit, 12 rollback, 0 "unknown" (nothing happens;
 * the check-back asks again). fromTransactionCheck, msgId and
 * transactionId are informational.
 *
 * Commit stores a copy in (REAL_TOPIC, REAL_QID) with the same body, flag,
 * born time and host, reconsume count and property string (UNIQ_KEY, KEYS,
 * TAGS, TRAN_MSG, PGROUP, REAL_TOPIC and REAL_QID stay, as in RocketMQ's
 * stored commit), the transaction type COMMIT in the sysflag and the half's
 * commit-log offset as preparedTransactionOffset; and the op record, in the
 * same append through apg_broker_put_internal. Rollback stores the op record
 * only. A second verdict on a half that already ended (a late answer to a
 * check-back, a retried END_TRANSACTION) is answered SUCCESS and stores
 * nothing, so a committed half is delivered once.
 *
 * The append goes through apg_broker_put_acked: under SYNC_FLUSH the loop
 * thread does not wait for the disk; the reply is parked with the sync
 * sends' acknowledgements and sent once the group commit covering the
 * records completes, batched with them after one fdatasync. The half stays
 * claimed (apg_txn_end_begin) until then; end_acked records it as ended
 * (apg_txn_end_done) when the records are durable or merely late
 * (syncFlushTimeout: they are in the commit log), and releases the claim
 * (apg_txn_end_undo) when the fsync failed, so a later check-back decides.
 * So a SUCCESS answer to a commit means its message survives a crash. A
 * second verdict that arrives while the first still waits for its flush is
 * answered SUCCESS at once (the half is claimed), as any repeated verdict.
 *
 * Threads: loop thread (end_acked too: the drain runs on the request's
 * loop; after apg_txn_stop, br_txn is NULL and it records nothing). */
#include <stdio.h>
#include <string.h>

#include "broker/broker_rt.h"
#include "broker/txn/txn_int.h"
#include "common/hash.h"
#include "common/mem.h"
#include "protocol/props.h"

/* What end_acked needs to record a stored END_TRANSACTION. */
struct end_ack {
    int64_t ea_origin;
    bool ea_commit;
};

static void end_acked(struct apg_broker *b, void *arg, apg_err_t rc, int64_t op_qoff)
{
    struct end_ack *ea = arg;
    struct apg_txn *tx = b->br_txn;
    if (tx && (rc == APG_OK || rc == APG_ETIMEDOUT))
        apg_txn_end_done(tx, ea->ea_origin, op_qoff, ea->ea_commit);
    else if (tx)
        apg_txn_end_undo(tx, ea->ea_origin);
    apg_free(ea);
}

/* Fills m with the commit copy of the half rec: the copy to its real
 * queue, with the COMMIT transaction type and the half's commit-log offset.
 * False when rec names no valid real queue. */
static bool commit_copy(const struct apg_msgrec *rec, int64_t half_phys, struct apg_msg_in *m)
{
    if (!apg_broker_put_real_copy(rec, m))
        return false;
    m->mi_sysflag = (m->mi_sysflag & ~APG_SYSFLAG_TX_MASK) | APG_SYSFLAG_TX_COMMIT;
    m->mi_prepared_tx_offset = half_phys;
    return true;
}

void apg_broker_proc_end_txn(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req)
{
    char remark[768];
    const char *group = apg_rcmd_ext_get(req, "producerGroup");
    int64_t tso, clo;
    int32_t verdict;
    if (!group || apg_rcmd_ext_i64(req, "tranStateTableOffset", &tso) ||
        apg_rcmd_ext_i64(req, "commitLogOffset", &clo) ||
        apg_rcmd_ext_i32(req, "commitOrRollback", &verdict)) {
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR,
                          "END_TRANSACTION needs the header fields producerGroup, "
                          "tranStateTableOffset, commitLogOffset and commitOrRollback");
        return;
    }
    if (verdict == 0) { /* unknown: the check-back asks again */
        apg_broker_reply(c, req, APG_RESP_SUCCESS, NULL);
        return;
    }
    bool commit = verdict == APG_SYSFLAG_TX_COMMIT;
    if (!commit && verdict != APG_SYSFLAG_TX_ROLLBACK) {
        snprintf(remark, sizeof(remark),
                 "END_TRANSACTION: commitOrRollback is %d; it must be 8 (commit), 12 "
                 "(rollback) or 0 (unknown)",
                 (int)verdict);
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR, remark);
        return;
    }
    if (apg_broker_refuse_unwritable(b, c, req))
        return;
    struct apg_buf rec_buf = APG_BUF_INIT, body = APG_BUF_INIT, props = APG_BUF_INIT;
    struct apg_msgrec rec;
    size_t gl = 0;
    const char *pg = NULL;
    bool found =
        apg_store_read_at(b->br_store, clo, &rec_buf) == APG_OK &&
        apg_msgrec_decode(rec_buf.b_data, rec_buf.b_len, false, &rec, NULL) == APG_MSGREC_OK &&
        rec.mr_topic_len == sizeof(APG_TXN_HALF_TOPIC) - 1 &&
        memcmp(rec.mr_topic, APG_TXN_HALF_TOPIC, rec.mr_topic_len) == 0;
    if (found)
        pg = apg_props_find(rec.mr_props, rec.mr_props_len, "PGROUP", &gl);
    if (!found) {
        snprintf(remark, sizeof(remark),
                 "END_TRANSACTION: no half message at commit log offset %lld", (long long)clo);
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR, remark);
        goto out;
    }
    if (!pg || gl != strlen(group) || memcmp(pg, group, gl) != 0) {
        snprintf(remark, sizeof(remark),
                 "END_TRANSACTION: the half message at %lld belongs to producer group %.*s, "
                 "not %s",
                 (long long)clo, (int)gl, pg ? pg : "", group);
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR, remark);
        goto out;
    }
    if (rec.mr_queue_offset != tso) {
        snprintf(remark, sizeof(remark),
                 "END_TRANSACTION: tranStateTableOffset %lld does not match the half message's "
                 "queue offset %lld",
                 (long long)tso, (long long)rec.mr_queue_offset);
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR, remark);
        goto out;
    }
    struct apg_txn *tx = b->br_txn;
    int64_t p = apg_txn_origin(rec.mr_props, rec.mr_props_len, rec.mr_queue_offset);
    if (!apg_txn_end_begin(tx, p)) {
        apg_broker_reply(c, req, APG_RESP_SUCCESS, NULL); /* it ended before */
        goto out;
    }
    struct apg_msg_in m[2];
    int n = 0;
    if (commit && !commit_copy(&rec, clo, &m[n++])) {
        apg_txn_end_undo(tx, p);
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR,
                          "END_TRANSACTION: the half message has no valid REAL_TOPIC/REAL_QID");
        goto out;
    }
    struct apg_msg_in *op = &m[n++];
    memset(op, 0, sizeof(*op));
    apg_err_t e = apg_buf_printf(&body, "%lld", (long long)p);
    if (!e)
        e = apg_props_append(&props, "TAGS", APG_TXN_OP_TAG);
    op->mi_topic = APG_TXN_OP_TOPIC;
    op->mi_topic_len = sizeof(APG_TXN_OP_TOPIC) - 1;
    op->mi_born_ts = apg_wall_ms();
    op->mi_born_host = b->br_store_host;
    op->mi_body = body.b_data;
    op->mi_body_len = body.b_len;
    op->mi_props = (const char *)props.b_data;
    op->mi_props_len = props.b_len;
    op->mi_tags_code = (int64_t)apg_java_hash(APG_TXN_OP_TAG, 1);
    char err[512] = "out of memory";
    struct end_ack *ea = e ? NULL : apg_malloc(sizeof(*ea));
    if (!ea && !e)
        e = APG_ENOMEM;
    if (ea) {
        ea->ea_origin = p;
        ea->ea_commit = commit;
        e = apg_broker_put_acked(b, c, req, m, n, end_acked, ea, err, sizeof(err));
    }
    if (e) {
        apg_free(ea);
        apg_txn_end_undo(tx, p);
        apg_broker_reply_refused(b, c, req->opaque, req->serialize, apg_rcmd_is_oneway(req),
                                 m[0].mi_topic, m[0].mi_topic_len, e, err);
    }
out:
    apg_buf_free(&props);
    apg_buf_free(&body);
    apg_buf_free(&rec_buf);
}

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
 * The part that does not depend on the transport (find, check, claim,
 * build the records; record the outcome) is apg_txn_end_prepare and
 * apg_txn_end_finish, which the gRPC port's EndTransaction calls too.
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

/* One verdict being stored: the half's record, the records that end it
 * (commit copy and op record, pointing into the buffers) and the origin it
 * claimed. */
struct apg_txn_end {
    int64_t te_origin;
    bool te_commit;
    int te_n;
    struct apg_msg_in te_msgs[2];
    struct apg_buf te_rec, te_body, te_props;
};

static void end_free(struct apg_txn_end *te)
{
    apg_buf_free(&te->te_props);
    apg_buf_free(&te->te_body);
    apg_buf_free(&te->te_rec);
    apg_free(te);
}

void apg_txn_end_finish(struct apg_broker *b, struct apg_txn_end *te, apg_err_t rc, int64_t op_qoff)
{
    struct apg_txn *tx = b->br_txn;
    if (tx && apg_store_rc_stored(rc))
        apg_txn_end_done(tx, te->te_origin, op_qoff, te->te_commit);
    else if (tx)
        apg_txn_end_undo(tx, te->te_origin);
    end_free(te);
}

const struct apg_msg_in *apg_txn_end_msgs(const struct apg_txn_end *te, int *n)
{
    *n = te->te_n;
    return te->te_msgs;
}

static void end_acked(struct apg_broker *b, void *arg, apg_err_t rc, int64_t op_qoff)
{
    apg_txn_end_finish(b, arg, rc, op_qoff);
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

enum apg_txn_end_rc apg_txn_end_prepare(struct apg_broker *b, int64_t clo, int64_t tso,
                                        const char *group, bool commit, struct apg_txn_end **out,
                                        char *err, size_t errlen)
{
    *out = NULL;
    struct apg_txn_end *te = apg_calloc(1, sizeof(*te));
    if (!te) {
        snprintf(err, errlen, "out of memory");
        return APG_TXN_END_REFUSED;
    }
    struct apg_msgrec rec;
    size_t gl = 0;
    const char *pg = NULL;
    bool found = apg_store_read_at(b->br_store, clo, &te->te_rec) == APG_OK &&
                 apg_msgrec_decode(te->te_rec.b_data, te->te_rec.b_len, false, &rec, NULL) ==
                     APG_MSGREC_OK &&
                 rec.mr_topic_len == sizeof(APG_TXN_HALF_TOPIC) - 1 &&
                 memcmp(rec.mr_topic, APG_TXN_HALF_TOPIC, rec.mr_topic_len) == 0;
    if (found)
        pg = apg_props_find(rec.mr_props, rec.mr_props_len, "PGROUP", &gl);
    if (!found) {
        snprintf(err, errlen, "END_TRANSACTION: no half message at commit log offset %lld",
                 (long long)clo);
        goto refused;
    }
    if (group && (!pg || gl != strlen(group) || memcmp(pg, group, gl) != 0)) {
        snprintf(err, errlen,
                 "END_TRANSACTION: the half message at %lld belongs to producer group %.*s, "
                 "not %s",
                 (long long)clo, (int)gl, pg ? pg : "", group);
        goto refused;
    }
    if (tso >= 0 && rec.mr_queue_offset != tso) {
        snprintf(err, errlen,
                 "END_TRANSACTION: tranStateTableOffset %lld does not match the half message's "
                 "queue offset %lld",
                 (long long)tso, (long long)rec.mr_queue_offset);
        goto refused;
    }
    struct apg_txn *tx = b->br_txn;
    int64_t p = apg_txn_origin(rec.mr_props, rec.mr_props_len, rec.mr_queue_offset);
    if (!apg_txn_end_begin(tx, p)) {
        end_free(te);
        return APG_TXN_END_DONE_BEFORE;
    }
    te->te_origin = p;
    te->te_commit = commit;
    if (commit && !commit_copy(&rec, clo, &te->te_msgs[te->te_n++])) {
        apg_txn_end_undo(tx, p);
        snprintf(err, errlen, "END_TRANSACTION: the half message has no valid REAL_TOPIC/REAL_QID");
        goto refused;
    }
    struct apg_msg_in *op = &te->te_msgs[te->te_n++];
    memset(op, 0, sizeof(*op));
    if (apg_buf_printf(&te->te_body, "%lld", (long long)p) ||
        apg_props_append(&te->te_props, "TAGS", APG_TXN_OP_TAG)) {
        apg_txn_end_undo(tx, p);
        snprintf(err, errlen, "out of memory");
        goto refused;
    }
    op->mi_topic = APG_TXN_OP_TOPIC;
    op->mi_topic_len = sizeof(APG_TXN_OP_TOPIC) - 1;
    op->mi_born_ts = apg_wall_ms();
    op->mi_born_host = b->br_store_host;
    op->mi_body = te->te_body.b_data;
    op->mi_body_len = te->te_body.b_len;
    op->mi_props = (const char *)te->te_props.b_data;
    op->mi_props_len = te->te_props.b_len;
    op->mi_tags_code = (int64_t)apg_java_hash(APG_TXN_OP_TAG, 1);
    *out = te;
    return APG_TXN_END_STORE;
refused:
    end_free(te);
    return APG_TXN_END_REFUSED;
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
    struct apg_txn_end *te;
    switch (apg_txn_end_prepare(b, clo, tso, group, commit, &te, remark, sizeof(remark))) {
    case APG_TXN_END_REFUSED:
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR, remark);
        return;
    case APG_TXN_END_DONE_BEFORE:
        apg_broker_reply(c, req, APG_RESP_SUCCESS, NULL); /* it ended before */
        return;
    case APG_TXN_END_STORE:
        break;
    }
    char err[512] = "out of memory";
    int64_t origin = te->te_origin;
    apg_err_t e =
        apg_broker_put_acked(b, c, req, te->te_msgs, te->te_n, end_acked, te, err, sizeof(err));
    if (e) {
        apg_broker_reply_refused(b, c, req->opaque, req->serialize, apg_rcmd_is_oneway(req),
                                 te->te_msgs[0].mi_topic, te->te_msgs[0].mi_topic_len, e, err);
        apg_txn_end_undo(b->br_txn, origin);
        end_free(te);
    }
}

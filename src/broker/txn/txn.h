/* Transactional messages (RocketMQ's two-phase send). A send whose TRAN_MSG
 * property is "true" is a half message: it is stored in
 * RMQ_SYS_TRANS_HALF_TOPIC queue 0 with REAL_TOPIC and REAL_QID naming where
 * it belongs, and no consumer sees it. END_TRANSACTION (37) commits it (a
 * copy goes to the real queue with the COMMIT transaction type) or rolls it
 * back; either way an op record (tag "d", body: the half's queue offset) is
 * written to RMQ_SYS_TRANS_OP_HALF_TOPIC queue 0. A half left without an op
 * record for transactionTimeOut is checked back: CHECK_TRANSACTION_STATE
 * (39, oneway) goes to a live producer of its group every
 * transactionCheckInterval, at most transactionCheckMax times, after which
 * the half is discarded with a WARN line (RocketMQ 4.x behaviour; 5.x moves
 * it to TRANS_CHECK_MAX_TIME_TOPIC instead).
 *
 * Progress (the next half queue offset to scan and the first op queue
 * offset still needed) is persisted in <storePathRootDir>/config/
 * transaction.json: {"halfOffset":H,"opOffset":O}.
 *
 * Threads: apg_txn_half_props, apg_txn_is_half and apg_broker_proc_end_txn
 * run on loop threads; apg_txn_open/start/stop on the broker's start/stop
 * thread; the check thread is this module's own; apg_txn_list_open any
 * thread. */
#ifndef APG_BROKER_TXN_H
#define APG_BROKER_TXN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

#define APG_TXN_HALF_TOPIC "RMQ_SYS_TRANS_HALF_TOPIC"
#define APG_TXN_OP_TOPIC "RMQ_SYS_TRANS_OP_HALF_TOPIC"

struct apg_broker;
struct apg_conn;
struct apg_rcmd;
struct apg_txn;
struct apg_msg_in;

/* Counters for GET_BROKER_RUNTIME_INFO. */
struct apg_txn_stats {
    int64_t ts_committed;   /* END_TRANSACTION commits stored */
    int64_t ts_rolled_back; /* END_TRANSACTION rollbacks stored */
    int64_t ts_checks;      /* CHECK_TRANSACTION_STATE sent */
    int64_t ts_discarded;   /* halves dropped after transactionCheckMax checks */
    int64_t ts_half_offset; /* next half queue offset the check scans */
};

/* Loads transaction.json and rebuilds the done set from the op queue. Call
 * after the store opens. On success *out is owned by the caller. */
apg_err_t apg_txn_open(struct apg_broker *b, struct apg_txn **out, char *err, size_t errlen);
/* Starts the check thread (once the loops are up: checks are posted to
 * them). */
apg_err_t apg_txn_start(struct apg_txn *tx, char *err, size_t errlen);
/* Stops the check thread, persists transaction.json, frees tx. Before the
 * store closes. NULL is ignored. */
void apg_txn_stop(struct apg_txn *tx);
void apg_txn_stats(const struct apg_txn *tx, struct apg_txn_stats *out);

/* The halves still open (neither committed nor rolled back, not yet
 * discarded), read from the half queue between the check position and its
 * end: for each, fn gets the record that stands for it now (the half
 * itself, or its newest check-back copy, whose commit-log offset is what
 * END_TRANSACTION names), its half queue offset (origin) and how often it
 * was checked back. At most max halves, scanning at most max_scan records;
 * *more (if not NULL) tells whether records were left unread. Returns the
 * number listed. Any thread (the HTTP port's; REST GET /api/transactions). */
struct apg_msgrec;
typedef void (*apg_txn_open_fn)(void *ud, const struct apg_msgrec *rec, int64_t origin,
                                int64_t check_times);
int apg_txn_list_open(struct apg_txn *tx, int max, int64_t max_scan, apg_txn_open_fn fn, void *ud,
                      bool *more);

/* True when a TRAN_MSG value (len bytes) reads "true" (any case), as
 * Java's Boolean.parseBoolean does. */
bool apg_txn_is_half(const char *tran_msg, size_t len);
/* Appends to out the properties of a half message bound for (real_topic,
 * real_qid): props (len bytes) then REAL_TOPIC and REAL_QID, which take
 * precedence over earlier pairs of the same name. APG_ETOOBIG past 32767
 * bytes, APG_ENOMEM. */
apg_err_t apg_txn_half_props(struct apg_buf *out, const char *props, size_t len,
                             const char *real_topic, int32_t real_qid);

/* A second way to reach producers (the gRPC port's Telemetry streams),
 * tried by the check thread for a half that no remoting producer of its
 * group can be asked about: v is the check-back copy as the producer sees
 * it (real topic and queue, properties, body), copy_phys its commit-log
 * offset (what ends it). True when a producer was asked. Runs on the check
 * thread with the hook's lock held, so apg_txn_set_check_hook(tx, NULL,
 * NULL) returns only once no call is running. */
typedef bool (*apg_txn_check_fn)(void *ud, const struct apg_msg_in *v, int64_t copy_phys);
void apg_txn_set_check_hook(struct apg_txn *tx, apg_txn_check_fn fn, void *ud);

/* The transport-free part of END_TRANSACTION, shared by the remoting code
 * and the gRPC port's EndTransaction. */
struct apg_txn_end;
enum apg_txn_end_rc {
    APG_TXN_END_STORE,       /* append apg_txn_end_msgs, then apg_txn_end_finish */
    APG_TXN_END_DONE_BEFORE, /* the half ended before: answer success, store nothing */
    APG_TXN_END_REFUSED,     /* err says why */
};
/* Finds the half (or check-back copy) stored at commit-log offset clo,
 * checks its producer group (unless group is NULL) and queue offset
 * (unless tso < 0), claims its origin and builds the records that end it:
 * for a commit the copy to its real queue, and the op record. Loop
 * thread. */
enum apg_txn_end_rc apg_txn_end_prepare(struct apg_broker *b, int64_t clo, int64_t tso,
                                        const char *group, bool commit, struct apg_txn_end **out,
                                        char *err, size_t errlen);
/* The records to append as one (1 or 2); valid until apg_txn_end_finish. */
const struct apg_msg_in *apg_txn_end_msgs(const struct apg_txn_end *te, int *n);
/* After the append: rc APG_OK or APG_ETIMEDOUT (stored) records the half as
 * ended (op_qoff: the op record's queue offset), another rc releases the
 * claim so a later check-back decides. Frees te. Any thread. */
void apg_txn_end_finish(struct apg_broker *b, struct apg_txn_end *te, apg_err_t rc,
                        int64_t op_qoff);

/* END_TRANSACTION (37). Loop thread. */
void apg_broker_proc_end_txn(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req);

#endif

/* Between the transaction module's files (txn.c: state, check thread,
 * persistence; txn_end.c: END_TRANSACTION). Any thread. */
#ifndef APG_BROKER_TXN_INT_H
#define APG_BROKER_TXN_INT_H

#include "broker/txn/txn.h"

#define APG_TXN_PREPARED_QOFF "TRAN_PREPARED_QUEUE_OFFSET"
#define APG_TXN_CHECK_TIMES "TRANSACTION_CHECK_TIMES"
#define APG_TXN_OP_TAG "d"

/* The half queue offset a half record stands for: its
 * TRAN_PREPARED_QUEUE_OFFSET when it is a check-back copy, else its own. */
int64_t apg_txn_origin(const char *props, size_t len, int64_t queue_offset);

/* Claims origin p for an END_TRANSACTION: false when it already ended (or is
 * ending now). On success the caller stores its records and then calls
 * apg_txn_end_done (stored, op record at op_qoff) or apg_txn_end_undo. */
bool apg_txn_end_begin(struct apg_txn *tx, int64_t p);
void apg_txn_end_done(struct apg_txn *tx, int64_t p, int64_t op_qoff, bool commit);
void apg_txn_end_undo(struct apg_txn *tx, int64_t p);

#endif

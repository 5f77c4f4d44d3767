/* Broker-internal declarations: the config tables (topics, subscription
 * groups, consumer offsets), the client/consumer-group manager, and the pure
 * send/pull helpers. Every table here is shared by all event-loop threads
 * and guards itself with one mutex; lookups copy the entry out so no pointer
 * into a table escapes its lock. */
#ifndef APG_BROKER_BROKER_INT_H
#define APG_BROKER_BROKER_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "common/json.h"
#include "common/file.h"
#include "common/smap.h"
#include "common/buf.h"
#include "common/err.h"
#include "protocol/batch.h"
#include "protocol/msgid.h"
#include "protocol/props.h"
#include "protocol/tagexpr.h"

#define APG_PERM_PRIORITY 8
#define APG_PERM_READ 4
#define APG_PERM_WRITE 2
#define APG_PERM_INHERIT 1

#define APG_TOPIC_MAX_LEN 127
#define APG_TOPIC_MAX_LEN_RETRY 255
#define APG_GROUP_MAX_LEN 120
#define APG_NAME_CAP 256

#define APG_DEFAULT_TOPIC "TBW102"
#define APG_RETRY_PREFIX "%RETRY%"
#define APG_DLQ_PREFIX "%DLQ%"

/* ---- config tables ------------------------------------------------------ */

/* Told after a table changed, on the thread that changed it, with the
 * table's lock released. */
typedef void (*apg_btable_hook_fn)(void *ud);

/* Change tracking every persisted table shares, guarded by the table's
 * lock: bt_changes counts changes since open, bt_written is the count the
 * file on disk reflects, bt_hook (may be NULL) hears of every change. */
struct apg_btable {
    uint64_t bt_changes;
    uint64_t bt_written;
    apg_btable_hook_fn bt_hook;
    void *bt_hook_ud;
    /* The change journal (btable_journal.c); unused while bt_jpath is NULL.
     * Under the table's lock: bt_pending holds the records of changes not
     * yet appended, bt_pending_n counts them, bt_pending_lost says one
     * could not be built (the next commit writes the whole file instead).
     * Persisting thread only: bt_jfd (-1: the next commit writes the whole
     * file and starts a new journal), bt_jbytes, bt_jrecords. */
    char *bt_jpath;
    struct apg_buf bt_pending;
    uint32_t bt_pending_n;
    bool bt_pending_lost;
    int bt_jfd;
    uint64_t bt_jbytes;
    uint32_t bt_jrecords;
};

/* Encodes a whole table as its JSON file; takes the table's lock itself. */
typedef apg_err_t (*apg_btable_encode_fn)(void *table, struct apg_buf *b);

/* The load step every config table shares: reads and parses path (fastjson
 * tolerated). APG_OK with *out owned by the caller (json_decref), or NULL
 * when the file does not exist yet; APG_ECORRUPT naming the file and the
 * parse error when it is not JSON; other read errors as apg_file_read. */
apg_err_t apg_btable_load(const char *path, json_t **out, char *err, size_t errlen);

/* The persist step every config table shares: when bt has changes the file
 * does not reflect (or force), notes bt_changes under lock, encodes the
 * table (encode locks it again: the text holds at least those changes) and
 * writes path with apg_file_write_atomic; on success bt_written catches up
 * to the noted count, on failure it stays, so the next persist retries.
 * *upto (may be NULL) gets the change count the file now reflects.
 * `what` names the table in errors. Borrows everything. One persisting
 * thread per table. */
apg_err_t apg_btable_persist(pthread_mutex_t *lock, struct apg_btable *bt, const char *path,
                             bool force, apg_btable_encode_fn encode, void *table, const char *what,
                             uint64_t *upto, char *err, size_t errlen);
/* The change count of bt, read under lock. */
uint64_t apg_btable_changes(pthread_mutex_t *lock, struct apg_btable *bt);

/* ---- change journal (btable_journal.c) ---------------------------------- */

/* A journal is <table file>.log: one record per change, appended and made
 * durable (fdatasync) for every batch of changes, so a change costs its own
 * few hundred bytes instead of a rewrite of the whole file. Record layout
 * (big endian, as the remoting frames):
 *   u32 body length | u32 crc32 of the body | body
 *   body: u8 op ('U' upsert, 'D' delete) | i64 data version after the
 *         change | u16 name length | name | for 'U', the entry's JSON object
 * Replay applies, in order, the records whose data version is above the
 * version of the loaded file and stops at the first record that is cut
 * short, fails its CRC or does not decode: that is the torn tail of an
 * append a crash interrupted, and it and everything after it is ignored
 * (and cut off the file). */
#define APG_BJOURNAL_MAX_BYTES (1u << 20)
#define APG_BJOURNAL_MAX_RECORDS 1000u
enum { APG_BJ_UPSERT = 'U', APG_BJ_DELETE = 'D' };

/* Applies one replayed record: an upsert (entry is the JSON object) or a
 * delete (entry NULL) of name. Anything but APG_OK stops the replay; an
 * error other than APG_ENOMEM marks the record as bad (the tail rule). */
typedef apg_err_t (*apg_bjournal_apply_fn)(void *ud, int op, const char *name, const json_t *entry);

struct apg_bjournal_scan {
    size_t bs_good;      /* bytes of whole, valid records */
    uint32_t bs_records; /* whole, valid records */
    uint32_t bs_applied; /* of those, applied (above the base version) */
    int64_t bs_max_version;
    const char *bs_stop; /* why the scan stopped before the end, or NULL */
};

/* Starts a record in b (appends its header); the caller appends the JSON
 * entry for an upsert, then calls apg_bjournal_end with the returned start. */
apg_err_t apg_bjournal_begin(struct apg_buf *b, int op, int64_t version, const char *name,
                             size_t *start);
/* Fills in the length and CRC of the record begun at start. */
void apg_bjournal_end(struct apg_buf *b, size_t start);
/* Replays data[0..len) onto a table (see the record layout above). */
apg_err_t apg_bjournal_scan(const void *data, size_t len, int64_t base_version,
                            apg_bjournal_apply_fn fn, void *ud, struct apg_bjournal_scan *out);

/* Notes a change in bt's journal buffer (table lock held): encode appends
 * the entry's JSON (NULL for a delete). A failure is remembered
 * (bt_pending_lost), not returned: the change is in memory either way. */
void apg_btable_note(struct apg_btable *bt, int op, int64_t version, const char *name,
                     apg_err_t (*encode)(const void *entry, struct apg_buf *b), const void *entry);
/* Opens <path>.log for bt after the table file was loaded with data
 * version base_version: replays it through fn (see apg_bjournal_scan),
 * cuts a torn tail off and keeps the file open for appends. Fails only
 * when the journal exists and cannot be read, or out of memory; when it
 * cannot be reopened the next commit writes the whole file.
 * *max_version gets the highest applied data version (or base_version). */
apg_err_t apg_btable_journal_open(struct apg_btable *bt, const char *path, int64_t base_version,
                                  apg_bjournal_apply_fn fn, void *ud, int64_t *max_version,
                                  char *err, size_t errlen);
/* Makes every change durable: appends the pending records to the journal
 * and fdatasyncs it, or, when compact, when the journal would pass
 * APG_BJOURNAL_MAX_BYTES / _RECORDS or after a failure, writes the whole
 * table file (apg_btable_persist) and empties the journal. Arguments and
 * *upto as apg_btable_persist. One persisting thread per table. */
apg_err_t apg_btable_commit(pthread_mutex_t *lock, struct apg_btable *bt, const char *path,
                            bool compact, apg_btable_encode_fn encode, void *table,
                            const char *what, uint64_t *upto, char *err, size_t errlen);
/* Closes the journal and frees its buffer. */
void apg_btable_journal_close(struct apg_btable *bt);

/* ---- data version ------------------------------------------------------- */

struct apg_dver {
    int64_t dv_counter;
    int64_t dv_timestamp;
};
void apg_dver_next(struct apg_dver *v);
apg_err_t apg_dver_encode(const struct apg_dver *v, struct apg_buf *b);
/* Reads {"counter":..,"timestamp":..} (missing fields: 0); j may be NULL. */
void apg_dver_decode(const json_t *j, struct apg_dver *v);

/* ---- names -------------------------------------------------------------- */

/* Validates a topic name (chars [%|a-zA-Z0-9_-], not blank, length); fills
 * err with what is wrong. */
apg_err_t apg_name_check_topic(const char *t, char *err, size_t errlen);
apg_err_t apg_name_check_group(const char *g, char *err, size_t errlen);
/* System topics producers may not write to. */
bool apg_name_topic_send_forbidden(const char *t);
/* Copies at most n bytes of s, stopping at a NUL, into out[outlen] (what
 * snprintf "%.*s" does, without the printf machinery; the send path). */
static inline void apg_text_copy(char *out, size_t outlen, const char *s, size_t n)
{
    if (n > outlen - 1)
        n = outlen - 1;
    n = strnlen(s, n);
    memcpy(out, s, n);
    out[n] = '\0';
}

/* ---- topic configs (topic_config.c) ------------------------------------- */

enum apg_topic_filter { APG_TOPIC_SINGLE_TAG = 0, APG_TOPIC_MULTI_TAG = 1 };

struct apg_topic_cfg {
    char tc_name[APG_NAME_CAP];
    int32_t tc_read_queues;
    int32_t tc_write_queues;
    int32_t tc_perm;
    int32_t tc_sysflag;
    enum apg_topic_filter tc_filter;
    bool tc_order;
};

struct apg_topics {
    pthread_mutex_t tp_lock;
    struct apg_smap tp_map; /* name -> struct apg_topic_cfg* (owned) */
    struct apg_dver tp_version;
    char *tp_path; /* <root>/config/topics.json */
    struct apg_btable tp_bt;
};

/* Loads <root>/config/topics.json if present, then makes sure the built-in
 * topics exist (TBW102 with perm 7 and default_queues when auto_create, the
 * SELF_TEST_TOPIC, the cluster and broker-name topics, OFFSET_MOVED_EVENT).
 * Returns owned: free with apg_topics_free(). NULL + err on a corrupt file. */
struct apg_topics *apg_topics_open(const char *root, bool auto_create, int32_t default_queues,
                                   const char *cluster, const char *broker_name, char *err,
                                   size_t errlen);
void apg_topics_free(struct apg_topics *t);
/* Sets the hook told of every later change (control thread, before the
 * loops run). */
void apg_topics_set_hook(struct apg_topics *t, apg_btable_hook_fn fn, void *ud);
/* The change count (see struct apg_btable). */
uint64_t apg_topics_changes(struct apg_topics *t);
/* Copies the config of `name` into out; false when absent. */
bool apg_topics_get(struct apg_topics *t, const char *name, struct apg_topic_cfg *out);
/* Creates or replaces; bumps the data version and marks dirty. */
apg_err_t apg_topics_put(struct apg_topics *t, const struct apg_topic_cfg *tc);
/* Removes; false when absent. */
bool apg_topics_delete(struct apg_topics *t, const char *name);
/* Appends every topic name to out, each followed by a NUL. */
apg_err_t apg_topics_names(struct apg_topics *t, struct apg_buf *out);
/* Send-path lookup with RocketMQ's auto-create rules (TBW102 template with
 * PERM_INHERIT, queues = min(default_qnums, template writeQueueNums), perm =
 * template perm & ~INHERIT; %RETRY% topics get retry_queues queues). A
 * creation is a change (the hook hears of it). APG_ENOTFOUND when the topic
 * is missing and cannot be created, with err saying why and what to change. */
apg_err_t apg_topics_get_or_create_for_send(struct apg_topics *t, const char *topic,
                                            const char *default_topic, int32_t default_qnums,
                                            int32_t retry_queues, struct apg_topic_cfg *out,
                                            char *err, size_t errlen);
/* Creates topic with `queues` queues and perm if missing. *created (may be
 * NULL) tells whether it was new. */
apg_err_t apg_topics_ensure(struct apg_topics *t, const char *topic, int32_t queues, int32_t perm,
                            bool *created);
/* Creates %RETRY%<group> with `queues` queues (at least 1), perm 6, if
 * missing. */
apg_err_t apg_topics_ensure_retry(struct apg_topics *t, const char *group, int32_t queues);
/* Creates the dead-letter topic `topic` (%DLQ%<group>) if missing: one
 * queue, readable and writable (as RocketMQ 4.9 and 5.x create it; older
 * 4.x made it write-only, so a DLQ could not be consumed without an admin
 * change). */
apg_err_t apg_topics_ensure_dlq(struct apg_topics *t, const char *topic);
/* TopicConfigSerializeWrapper JSON: {"dataVersion":..,"topicConfigTable":{..}}. */
apg_err_t apg_topics_encode(struct apg_topics *t, struct apg_buf *b);
/* The same with every topic's perm ANDed with perm_mask (registration of a
 * broker without read or write permission, as RocketMQ registers it). */
apg_err_t apg_topics_encode_perm(struct apg_topics *t, int32_t perm_mask, struct apg_buf *b);
/* Moves the data version on without a change, so NameServers take the next
 * registration's topic table (they skip one whose version they have). */
void apg_topics_touch(struct apg_topics *t);
/* Makes the changes since the last persist durable (force: writes the whole
 * file and empties the journal); apg_btable_commit. */
apg_err_t apg_topics_persist(struct apg_topics *t, bool force, uint64_t *upto, char *err,
                             size_t errlen);
void apg_topics_version(struct apg_topics *t, struct apg_dver *out);
/* Encodes one TopicConfig object. */
apg_err_t apg_topic_cfg_encode(const struct apg_topic_cfg *tc, struct apg_buf *b);
/* Decodes one TopicConfig object (absent fields get RocketMQ defaults). */
apg_err_t apg_topic_cfg_decode(const json_t *j, struct apg_topic_cfg *out, char *err,
                               size_t errlen);

/* ---- subscription groups (sub_group.c) ---------------------------------- */

struct apg_group_cfg {
    char gc_name[APG_NAME_CAP];
    bool gc_consume_enable;
    bool gc_consume_from_min_enable;
    bool gc_consume_broadcast_enable;
    bool gc_notify_ids_changed;
    int32_t gc_retry_queues;
    int32_t gc_retry_max_times;
    int64_t gc_broker_id;
    int64_t gc_which_broker_slow;
};

struct apg_groups {
    pthread_mutex_t gp_lock;
    struct apg_smap gp_map; /* name -> struct apg_group_cfg* (owned) */
    struct apg_dver gp_version;
    char *gp_path;
    struct apg_btable gp_bt;
};

void apg_group_cfg_defaults(struct apg_group_cfg *g, const char *name);
apg_err_t apg_group_cfg_decode(const json_t *j, struct apg_group_cfg *out, char *err,
                               size_t errlen);
apg_err_t apg_group_cfg_encode(const struct apg_group_cfg *g, struct apg_buf *b);
struct apg_groups *apg_groups_open(const char *root, char *err, size_t errlen);
void apg_groups_free(struct apg_groups *g);
void apg_groups_set_hook(struct apg_groups *g, apg_btable_hook_fn fn, void *ud);
uint64_t apg_groups_changes(struct apg_groups *g);
bool apg_groups_get(struct apg_groups *g, const char *name, struct apg_group_cfg *out);
/* Looks up; when absent and auto_create, creates it with defaults.
 * APG_ENOTFOUND when absent and not auto-created. */
apg_err_t apg_groups_get_or_create(struct apg_groups *g, const char *name, bool auto_create,
                                   struct apg_group_cfg *out);
apg_err_t apg_groups_put(struct apg_groups *g, const struct apg_group_cfg *gc);
bool apg_groups_delete(struct apg_groups *g, const char *name);
/* Appends every group name to out, each followed by a NUL. */
apg_err_t apg_groups_names(struct apg_groups *g, struct apg_buf *out);
/* SubscriptionGroupWrapper JSON. */
apg_err_t apg_groups_encode(struct apg_groups *g, struct apg_buf *b);
apg_err_t apg_groups_persist(struct apg_groups *g, bool force, uint64_t *upto, char *err,
                             size_t errlen);

/* ---- consumer offsets (broker_offset.c) --------------------------------- */

struct apg_offsets {
    pthread_mutex_t of_lock;
    struct apg_smap of_map; /* "topic@group" -> struct apg_off_row* (owned) */
    char *of_path;
    struct apg_btable of_bt;
    uint64_t of_gen; /* bumped under of_lock when a row is added or dropped or an offset changes */
};

struct apg_offsets *apg_offsets_open(const char *root, char *err, size_t errlen);
void apg_offsets_free(struct apg_offsets *o);
/* Stores offset for (group, topic, queue); negative offsets are ignored
 * (some clients send -1 for "nothing consumed yet"). */
apg_err_t apg_offsets_commit(struct apg_offsets *o, const char *group, const char *topic,
                             int32_t queue, int64_t offset);
/* -1 when nothing is stored. */
int64_t apg_offsets_query(struct apg_offsets *o, const char *group, const char *topic,
                          int32_t queue);
/* Drops every offset of a topic (all groups) or of a group (all topics). */
void apg_offsets_drop_topic(struct apg_offsets *o, const char *topic);
void apg_offsets_drop_group(struct apg_offsets *o, const char *group);
/* Appends to out the name of every topic group has offsets for, each
 * followed by a NUL. */
apg_err_t apg_offsets_group_topics(struct apg_offsets *o, const char *group, struct apg_buf *out);
/* Appends to out the name of every group with offsets on topic, each
 * followed by a NUL. */
apg_err_t apg_offsets_topic_groups(struct apg_offsets *o, const char *topic, struct apg_buf *out);
/* One row of apg_offsets_snapshot: os_n committed offsets (-1 = none),
 * then the key "topic@group" with its NUL; the next row starts at the
 * following multiple of 8 (apg_offsets_snap_next). */
struct apg_offsets_snap {
    uint32_t os_n;
    uint32_t os_key_len;
    int64_t os_off[];
};
static inline const char *apg_offsets_snap_key(const struct apg_offsets_snap *r)
{
    return (const char *)&r->os_off[r->os_n];
}
static inline size_t apg_offsets_snap_size(uint32_t n, uint32_t key_len)
{
    return (sizeof(struct apg_offsets_snap) + 8u * n + key_len + 1 + 7) & ~(size_t)7;
}
/* Appends a copy of every row to out (held in the table's lock only for
 * the copy, so readers of the copy never hold up committers). out's data
 * is 8-byte aligned (it comes from the allocator). With gen (may be NULL):
 * when *gen is the table's generation (nothing added, dropped or changed
 * since the copy that returned it) out is left as it is; otherwise out is
 * replaced by the copy and *gen becomes its generation. The generation starts at 0, so a
 * caller's first *gen must be another value (UINT64_MAX). */
apg_err_t apg_offsets_snapshot(struct apg_offsets *o, struct apg_buf *out, uint64_t *gen);
/* {"offsetTable":{"topic@group":{"0":5,...},...}} */
apg_err_t apg_offsets_encode(struct apg_offsets *o, struct apg_buf *b);
apg_err_t apg_offsets_persist(struct apg_offsets *o, bool force, char *err, size_t errlen);

/* ---- message helpers (broker_msg.c) ------------------------------------- */

/* Writes the decimal text of v into out (at least 21 bytes) and returns out
 * (reply fields on the send and pull paths, without printf). */
char *apg_fmt_i64(char *out, int64_t v);

/* Send request header, from SEND_MESSAGE (long names) or _V2/_BATCH (a..n). */
struct apg_send_hdr {
    const char *sh_group;
    const char *sh_topic;
    const char *sh_default_topic;
    int32_t sh_default_qnums;
    int32_t sh_queue_id;
    int32_t sh_sysflag;
    int64_t sh_born_ts;
    int32_t sh_flag;
    const char *sh_props; /* "" when absent */
    int32_t sh_reconsume_times;
    int32_t sh_max_reconsume_times; /* -1 when absent */
    bool sh_unit_mode;
    bool sh_batch;
};

struct apg_rcmd;
/* Parses the send header; short = V2/batch names. Missing required field ->
 * APG_EINVAL with err naming it. Strings borrow the command. */
apg_err_t apg_send_hdr_parse(const struct apg_rcmd *c, bool short_names, struct apg_send_hdr *h,
                             char *err, size_t errlen);

/* Outcome of a pull that found no message, from the store's offsets. */
enum apg_pull_outcome {
    APG_PULL_FOUND,
    APG_PULL_NOT_FOUND,       /* code 19 */
    APG_PULL_RETRY_IMMEDIATE, /* code 20 */
    APG_PULL_OFFSET_MOVED,    /* code 21 */
};

/* ---- queue locks (broker_lock.c) -------------------------------------- */

/* One queue as LOCK_BATCH_MQ names it. */
struct apg_lock_mq {
    char lm_topic[APG_NAME_CAP];
    char lm_broker[APG_NAME_CAP];
    int32_t lm_queue_id;
};

/* The queue-lock table: (group, queue) -> holder client id with a lease of
 * max_live_ms (rebalanceLockMaxLiveTime). Thread-safe; its mutex is a leaf. */
struct apg_locks;
struct apg_locks *apg_locks_new(int64_t max_live_ms);
void apg_locks_free(struct apg_locks *lk);
/* Locks or renews mq for client; true when client holds it now (it was free,
 * its own, or its holder's lease lapsed). conn: identity of the connection
 * the request came on (never dereferenced). */
bool apg_locks_try(struct apg_locks *lk, const char *group, const struct apg_lock_mq *mq,
                   const char *client, const void *conn, int64_t now_ms);
/* Releases mq if client holds it; true when it did. */
bool apg_locks_unlock(struct apg_locks *lk, const char *group, const struct apg_lock_mq *mq,
                      const char *client);
/* Copies the live holder of mq into out; false when none. */
bool apg_locks_holder(struct apg_locks *lk, const char *group, const struct apg_lock_mq *mq,
                      int64_t now_ms, char *out, size_t outlen);
/* Releases every lock of client in group (any group when NULL). */
int apg_locks_drop_client(struct apg_locks *lk, const char *group, const char *client);
/* Releases every lock last taken or renewed through conn. */
int apg_locks_drop_conn(struct apg_locks *lk, const void *conn);
/* Frees entries whose lease lapsed; returns how many. */
int apg_locks_expire(struct apg_locks *lk, int64_t now_ms);
size_t apg_locks_count(struct apg_locks *lk);

#endif

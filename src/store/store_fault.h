/* Fault injection into the store, for tests only.
 *
 * Not part of the broker contract (store.h): the broker never includes this
 * header. The hooks are compiled into every build but stay inert until the
 * process arms them, either by calling apg_store_fault_arm() (a test program
 * does this in main) or by running with APOGEE_STORE_FAULTS=1 in the
 * environment (a test that drives the apogee binary). An unarmed hook changes
 * nothing and returns APG_EPERM, so a stray call in production code is
 * harmless and visible. */
#ifndef APG_STORE_STORE_FAULT_H
#define APG_STORE_STORE_FAULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct apg_store;

/* Arms the hooks for the rest of the process. Any thread. */
void apg_store_fault_arm(void);

/* True once armed (by apg_store_fault_arm or APOGEE_STORE_FAULTS=1). */
bool apg_store_fault_armed(void);

/* Pretends the commit log's disk is `ratio` percent used (-1: measure for
 * real again) and re-evaluates the disk guard at once. Also set at open from
 * APOGEE_STORE_FAULT_DISK_RATIO when armed. 0 or APG_EPERM. */
apg_err_t apg_store_fault_disk_ratio(struct apg_store *st, int ratio);

/* Makes the next msync/fdatasync of the store fail with EIO. 0 or
 * APG_EPERM. */
apg_err_t apg_store_fault_fail_next_fsync(struct apg_store *st);

/* Makes the next creation of a consume-queue directory or file fail with
 * ENOSPC, as on a full disk (the commit log write before it succeeds). 0 or
 * APG_EPERM. */
apg_err_t apg_store_fault_enospc_next_create(struct apg_store *st);

/* Makes every later put sleep `ms` milliseconds while it holds the append
 * lock (0: no delay), as a put stalled in the page cache would. Also set at
 * open from APOGEE_STORE_FAULT_PUT_DELAY_MS when armed. 0 or APG_EPERM. */
apg_err_t apg_store_fault_put_delay(struct apg_store *st, int ms);

/* One msync made by the store, as reported to an apg_store_fault_sync_fn. */
struct apg_store_fault_sync {
    const char *fs_path;   /* the file synced (borrowed for the call) */
    int64_t fs_base;       /* offset of the file's first byte: global for the
                            * commit log, byte offset within a consume queue */
    size_t fs_from, fs_to; /* the range within the file passed to msync */
    int fs_flags;          /* the flags passed to msync (MS_SYNC, MS_ASYNC) */
    int fs_rc;             /* msync's return value (0 or -1) */
};

/* Called after each msync of the store it was set for returns (flush
 * threads, recovery, close), before any acknowledgement that depends on it.
 * Must be cheap and thread-safe (several flush threads may call it). */
typedef void (*apg_store_fault_sync_fn)(void *ud, const struct apg_store_fault_sync *s);

/* Reports every later msync of `st` to fn (NULL: stop). One store at a time
 * per process; set it before the first put and clear it after
 * apg_store_close. 0 or APG_EPERM. */
apg_err_t apg_store_fault_on_sync(struct apg_store *st, apg_store_fault_sync_fn fn, void *ud);

#endif

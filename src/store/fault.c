/* Fault injection behind a gate (store_fault.h).
 *
 * The store's data path reads fields that only these hooks set:
 * st_test_disk_ratio (retention.c, instead of statvfs), st_fail_next_fsync
 * (mapped_file.c, apg_seg_sync) and st_fail_next_create (consume_queue.c,
 * apg_cq_add_seg), st_fault_put_delay_ms (commitlog.c, inside the append
 * lock: a put stalled in the page cache, as when the kernel throttles a
 * writer behind a slow disk). The gate is one process-wide flag, set by an
 * explicit call or found in the environment; without it the hooks refuse.
 * A process that drives the apogee binary sets the put delay with
 * APOGEE_STORE_FAULTS=1 APOGEE_STORE_FAULT_PUT_DELAY_MS=<ms>, and a delay
 * before every commit-log flush (st_fault_flush_delay_ms, flush.c: a slow
 * disk's sync, which SYNC_FLUSH writers wait for) with
 * APOGEE_STORE_FAULT_FLUSH_DELAY_MS=<ms>, and a pretended disk usage (the
 * disk guard then refuses writes above diskSpaceWarningLevelRatio as on a
 * full disk) with APOGEE_STORE_FAULT_DISK_RATIO=<percent>.
 *
 * Every msync of the store is made here (apg_store_fault_msync), so a test
 * can watch the flags and ranges actually passed to the kernel: the sync
 * hook is one process-wide (store, function, argument) triple behind an
 * atomic pointer, read by the flush threads, set and cleared by the test
 * while the store is quiet. Unset, the cost is one atomic load per msync. */
#define _GNU_SOURCE
#include "store/store_fault.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "store/store_int.h"

static _Atomic bool g_armed;

void apg_store_fault_arm(void)
{
    atomic_store(&g_armed, true);
}

bool apg_store_fault_armed(void)
{
    if (atomic_load(&g_armed))
        return true;
    const char *e = getenv("APOGEE_STORE_FAULTS");
    if (e && strcmp(e, "1") == 0) {
        atomic_store(&g_armed, true);
        return true;
    }
    return false;
}

apg_err_t apg_store_fault_disk_ratio(struct apg_store *st, int ratio)
{
    if (!apg_store_fault_armed())
        return APG_EPERM;
    atomic_store(&st->st_test_disk_ratio, ratio);
    apg_retention_disk_check(st);
    return APG_OK;
}

apg_err_t apg_store_fault_fail_next_fsync(struct apg_store *st)
{
    if (!apg_store_fault_armed())
        return APG_EPERM;
    atomic_store(&st->st_fail_next_fsync, true);
    return APG_OK;
}

apg_err_t apg_store_fault_enospc_next_create(struct apg_store *st)
{
    if (!apg_store_fault_armed())
        return APG_EPERM;
    atomic_store(&st->st_fail_next_create, true);
    return APG_OK;
}

apg_err_t apg_store_fault_put_delay(struct apg_store *st, int ms)
{
    if (!apg_store_fault_armed())
        return APG_EPERM;
    atomic_store(&st->st_fault_put_delay_ms, ms > 0 ? ms : 0);
    return APG_OK;
}

void apg_store_fault_env(struct apg_store *st)
{
    const char *e = getenv("APOGEE_STORE_FAULT_PUT_DELAY_MS");
    if (e && e[0] && apg_store_fault_armed())
        apg_store_fault_put_delay(st, atoi(e));
    e = getenv("APOGEE_STORE_FAULT_FLUSH_DELAY_MS");
    if (e && e[0] && apg_store_fault_armed() && atoi(e) > 0)
        atomic_store(&st->st_fault_flush_delay_ms, atoi(e));
    e = getenv("APOGEE_STORE_FAULT_DISK_RATIO");
    if (e && e[0] && apg_store_fault_armed())
        apg_store_fault_disk_ratio(st, atoi(e));
}

void apg_store_fault_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

struct sync_hook {
    struct apg_store *sh_st;
    apg_store_fault_sync_fn sh_fn;
    void *sh_ud;
};

static struct sync_hook g_sync_hook;
static _Atomic(struct sync_hook *) g_sync;

apg_err_t apg_store_fault_on_sync(struct apg_store *st, apg_store_fault_sync_fn fn, void *ud)
{
    if (!apg_store_fault_armed())
        return APG_EPERM;
    atomic_store(&g_sync, NULL);
    if (fn) {
        g_sync_hook = (struct sync_hook){st, fn, ud};
        atomic_store(&g_sync, &g_sync_hook);
    }
    return APG_OK;
}

int apg_store_fault_msync(struct apg_store *st, struct seg *s, size_t from, size_t to, int flags)
{
    int rc = msync(s->sg_map + from, to - from, flags);
    struct sync_hook *h = atomic_load(&g_sync);
    if (h && h->sh_st == st) {
        int e = errno;
        struct apg_store_fault_sync r = {s->sg_path, s->sg_base, from, to, flags, rc};
        h->sh_fn(h->sh_ud, &r);
        errno = e;
    }
    return rc;
}

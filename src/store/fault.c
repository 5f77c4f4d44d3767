/* Fault injection behind a gate (store_fault.h).
 *
 * The store's data path reads fields that only these hooks set:
 * st_test_disk_ratio (retention.c, instead of statvfs), st_fail_next_fsync
 * (mapped_file.c, apg_seg_sync) and st_fail_next_create (consume_queue.c,
 * apg_cq_add_seg). The gate is one process-wide flag, set by an
 * explicit call or found in the environment; without it the hooks refuse. */
#define _GNU_SOURCE
#include "store/store_fault.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

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

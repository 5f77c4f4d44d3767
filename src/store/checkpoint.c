/* The checkpoint: one 4 KiB page at <root>/checkpoint.
 *
 * RocketMQ's fields come first (physic/logics/index timestamps, flushed
 * offsets), then apogee's own, CRC-protected: a clean-shutdown flag, the
 * commit-log offset known durable, the commit-log offset up to which consume
 * queues are durable, and the number of queues. Recovery trusts it only as far
 * as these say. Written by the flush thread and at close, in place, then
 * fdatasync()ed. */
#define _GNU_SOURCE
#include "store/store_int.h"

#include <fcntl.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/hash.h"
#include "common/file.h"
#include "common/mem.h"

void apg_ckpt_read(const char *root, struct apg_ckpt *ck)
{
    memset(ck, 0, sizeof(*ck));
    char *p = apg_path_join(root, "checkpoint");
    int fd = p ? open(p, O_RDONLY | O_CLOEXEC) : -1;
    apg_free(p);
    if (fd < 0) {
        ck->ck_why = "no checkpoint file";
        return;
    }
    ck->ck_present = true;
    uint8_t b[CKPT_SIZE];
    ssize_t n = pread(fd, b, sizeof(b), 0);
    close(fd);
    if (n < CKPT_EXT + 48) {
        ck->ck_why = "checkpoint file too short";
        return;
    }
    if (memcmp(b + CKPT_EXT, CKPT_MAGIC, 8) != 0) {
        ck->ck_why = "no apogee checkpoint magic (written by another broker?)";
        return;
    }
    if (apg_crc32(b + CKPT_EXT, 44) != apg_be32(b + CKPT_EXT + 44)) {
        ck->ck_why = "checkpoint CRC mismatch";
        return;
    }
    ck->ck_valid = true;
    ck->ck_clean = apg_be32(b + CKPT_EXT + 8) & 1;
    ck->ck_cl_flushed = (int64_t)apg_be64(b + CKPT_EXT + 12);
    ck->ck_cq_phys = (int64_t)apg_be64(b + CKPT_EXT + 20);
    ck->ck_nqueues = (int64_t)apg_be64(b + CKPT_EXT + 28);
}

/* Flush thread or close: one 4 KiB page, written in place and synced.
 * RocketMQ's fields first (its StoreCheckpoint layout), then apogee's, CRC-protected. */
int apg_ckpt_write(struct apg_store *st, bool clean, int64_t cl_flushed, int64_t cq_phys,
                   int64_t nqueues)
{
    uint8_t b[CKPT_SIZE];
    memset(b, 0, sizeof(b));
    int64_t ts = atomic_load(&st->st_last_store_ts);
    apg_wbe64(b, (uint64_t)ts);              /* physicMsgTimestamp */
    apg_wbe64(b + 8, (uint64_t)ts);          /* logicsMsgTimestamp */
    apg_wbe64(b + 16, 0);                    /* indexMsgTimestamp */
    apg_wbe64(b + 24, (uint64_t)cl_flushed); /* masterFlushedOffset */
    apg_wbe64(b + 32, (uint64_t)cl_flushed); /* confirmPhyOffset */
    memcpy(b + CKPT_EXT, CKPT_MAGIC, 8);
    apg_wbe32(b + CKPT_EXT + 8, clean ? 1 : 0);
    apg_wbe64(b + CKPT_EXT + 12, (uint64_t)cl_flushed);
    apg_wbe64(b + CKPT_EXT + 20, (uint64_t)cq_phys);
    apg_wbe64(b + CKPT_EXT + 28, (uint64_t)nqueues);
    apg_wbe32(b + CKPT_EXT + 36, 1); /* version */
    apg_wbe32(b + CKPT_EXT + 40, 0);
    apg_wbe32(b + CKPT_EXT + 44, apg_crc32(b + CKPT_EXT, 44));
    char *p = apg_path_join(st->st_root, "checkpoint");
    int fd = p ? open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644) : -1;
    apg_free(p);
    if (fd < 0)
        return -1;
    int rc = pwrite(fd, b, sizeof(b), 0) == (ssize_t)sizeof(b) && fdatasync(fd) == 0 ? 0 : -1;
    close(fd);
    return rc;
}

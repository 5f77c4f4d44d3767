/* Mapping from the broker configuration (config.def keys, RocketMQ names) to
 * struct apg_store_opts. Kept apart from store.c so the engine itself does not
 * depend on the config table. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "store/store.h"

void apg_store_opts_from_config(struct apg_store_opts *o, const struct apg_config *cfg)
{
    apg_store_opts_init(o);
    o->so_root_dir = apg_cfg_str(cfg, APG_CFG_storePathRootDir);
    o->so_commitlog_dir = apg_cfg_str(cfg, APG_CFG_storePathCommitLog);
    o->so_commitlog_file_size = (uint64_t)apg_cfg_int(cfg, APG_CFG_mappedFileSizeCommitLog);
    o->so_cq_file_size = (uint64_t)apg_cfg_int(cfg, APG_CFG_mappedFileSizeConsumeQueue);
    const char *fdt = apg_cfg_str(cfg, APG_CFG_flushDiskType);
    o->so_sync_flush = fdt && strcmp(fdt, "SYNC_FLUSH") == 0;
    o->so_flush_interval_ms = (int)apg_cfg_int(cfg, APG_CFG_flushIntervalCommitLog);
    o->so_sync_flush_timeout_ms = (int)apg_cfg_int(cfg, APG_CFG_syncFlushTimeout);
    o->so_sync_replica = strcmp(apg_cfg_str(cfg, APG_CFG_brokerRole), "SYNC_MASTER") == 0;
    o->so_repl_max_gap = apg_cfg_int(cfg, APG_CFG_haMaxGapNotInSync);
    o->so_file_reserved_hours = (int)apg_cfg_int(cfg, APG_CFG_fileReservedTime);
    o->so_delete_when = apg_cfg_str(cfg, APG_CFG_deleteWhen);
    o->so_disk_max_used_ratio = (int)apg_cfg_int(cfg, APG_CFG_diskMaxUsedSpaceRatio);
    o->so_disk_clean_forcibly_ratio = (int)apg_cfg_int(cfg, APG_CFG_diskSpaceCleanForciblyRatio);
    o->so_clean_forcibly = apg_cfg_bool(cfg, APG_CFG_cleanFileForciblyEnable);
    o->so_disk_warning_ratio = (int)apg_cfg_int(cfg, APG_CFG_diskSpaceWarningLevelRatio);
    o->so_check_crc_on_recover = apg_cfg_bool(cfg, APG_CFG_checkCRCOnRecover);
    o->so_force_recover_corrupt = apg_cfg_bool(cfg, APG_CFG_forceRecoverCorrupt);
    o->so_cache_keep_mb = apg_cfg_int(cfg, APG_CFG_commitLogCacheKeepMb);
    o->so_max_message_size = (uint32_t)apg_cfg_int(cfg, APG_CFG_maxMessageSize);
    int n = apg_delay_levels_parse(apg_cfg_str(cfg, APG_CFG_messageDelayLevel), o->so_delay_ms,
                                   APG_DELAY_LEVELS_MAX, NULL, 0);
    o->so_delay_levels = n > 0 ? n : 0;
    o->so_no_index = !apg_cfg_bool(cfg, APG_CFG_messageIndexEnable);
    o->so_index_slots = (uint32_t)apg_cfg_int(cfg, APG_CFG_maxHashSlotNum);
    o->so_index_entries = (uint32_t)apg_cfg_int(cfg, APG_CFG_maxIndexNum);
    const char *ip = apg_cfg_str(cfg, APG_CFG_brokerIP1);
    struct apg_host *h = &o->so_store_host;
    if (ip && inet_pton(AF_INET, ip, h->h_ip) == 1) {
        h->h_v6 = false;
    } else if (ip && inet_pton(AF_INET6, ip, h->h_ip) == 1) {
        h->h_v6 = true;
    }
    h->h_port = (uint32_t)apg_cfg_int(cfg, APG_CFG_listenPort);
}

int apg_delay_levels_parse(const char *s, int64_t *ms, int cap, char *err, size_t errlen)
{
    int n = 0;
    const char *p = s ? s : "";
    while (*p) {
        const char *end = strchr(p, ' ');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        int64_t v = 0;
        size_t i = 0;
        for (; i + 1 < len && p[i] >= '0' && p[i] <= '9' && v < 100000000; i++)
            v = v * 10 + (p[i] - '0');
        int64_t unit = 0;
        if (len >= 2 && i == len - 1) {
            switch (p[len - 1]) {
            case 's':
                unit = 1000;
                break;
            case 'm':
                unit = 60000;
                break;
            case 'h':
                unit = 3600000;
                break;
            case 'd':
                unit = 86400000;
                break;
            }
        }
        if (!unit || n >= cap) {
            if (err)
                snprintf(err, errlen,
                         n >= cap ? "messageDelayLevel lists more than %d levels"
                                  : "messageDelayLevel: level %d is '%.*s'; each level is a number "
                                    "with a unit s, m, h or d, levels separated by one space "
                                    "(\"1s 5s 10s 30s 1m\")",
                         n >= cap ? cap : n + 1, (int)len, p);
            return -1;
        }
        ms[n++] = v * unit;
        p += len;
        if (*p == ' ')
            p++;
    }
    if (n == 0 && err)
        snprintf(err, errlen, "messageDelayLevel is empty; give at least one level such as \"1s\"");
    return n ? n : -1;
}

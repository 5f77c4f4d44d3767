/* Broker configuration over the wire: GET_BROKER_CONFIG (26) and
 * UPDATE_BROKER_CONFIG (25), docs/wire.md §11.8.
 *
 * GET answers the effective configuration as Java .properties text
 * ("key=value" lines, every key of the broker's role; the settings changed
 * at runtime with their live value; six fixed keys that exportConfigs needs,
 * put_fixed) and a `version` header field holding a
 * DataVersion ({"counter":accepted updates,"timestamp":ms of the last}).
 *
 * UPDATE takes a .properties body and changes only the broker keys marked
 * RT in common/config.def, numbers and switches that the loop threads read
 * on every request, so a new value takes effect on the next request; each
 * has a live field here (live_keys), and apg_broker_live_keys_check stops
 * the broker at start when the two lists disagree. The checks are
 * apg_config_update_runtime's, the same as UPDATE_NAMESRV_CONFIG's, and
 * the request as a whole is refused when one key is (nothing is applied),
 * with a remark naming the key and the reason:
 *  - a key that names a file, directory, command, script or class
 *    (storePathRootDir, rocketmqHome, configStorePath, filterServerNums,
 *    productEnvName, ...) is never taken from the network: this is the shape
 *    of CVE-2023-33246 and CVE-2023-37582, where such keys led a broker or
 *    NameServer to run a shell command or write a file. NO_PERMISSION.
 *  - any other key not marked RT, known or not: NO_PERMISSION with "change
 *    it in the configuration file and restart" or "not a configuration key".
 *  - a value the key's own range check refuses (common/config.def):
 *    SYSTEM_ERROR with the checker's text.
 * The body is only parsed; no value is ever passed to a shell, a loader or
 * a path. Changes are runtime only: the config file given with -c is not
 * rewritten (unlike RocketMQ, which rewrites its broker.properties), so a
 * restart returns to the file's values. Every accepted change is logged at
 * INFO; a refusal through apg_broker_refuse (counted, WARN at most once a
 * second per cause). Text from the request reaches remarks and logs as
 * printable ASCII only.
 *
 * Threads: requests run on any loop thread. The live settings are _Atomic
 * fields of struct apg_broker that readers load without locks; a request
 * writes each of its keys with one atomic store, so concurrent updates may
 * interleave per key (as RocketMQ's Configuration.update also does). The
 * brokerPermission change moves the topic table's data version on and asks
 * the service thread to re-register with the NameServers, whose routes then
 * carry the new permission (broker_register.c). */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "broker/broker_admin_stats.h"
#include "common/mem.h"

/* How a live setting is stored in struct apg_broker. */
enum live_kind { LK_BOOL, LK_I32, LK_INT, LK_I64, LK_SIZE };

/* The live field of each key marked RT for the broker in config.def: each
 * is read by the loop threads per request
 * (broker_put.c, broker_pull.c, broker_send.c, broker_client.c,
 * broker_util.c), so a store into the field is all it takes. */
static const struct live_key {
    enum apg_cfg_id lk_id;
    const char *lk_name;
    size_t lk_off;
    enum live_kind lk_kind;
} live_keys[] = {
#define LIVE(name, field, kind)                                                                    \
    {                                                                                              \
        APG_CFG_##name, #name, offsetof(struct apg_broker, field), kind                            \
    }
    LIVE(brokerPermission, br_perm, LK_I32), /* read/write switch (wipe/add write perm) */
    LIVE(brokerFastFailureEnable, br_fast_failure, LK_BOOL),  /* SYSTEM_BUSY fast failure */
    LIVE(waitTimeMillsInSendQueue, br_busy_queue_ms, LK_I64), /* and its two thresholds */
    LIVE(osPageCacheBusyTimeOutMills, br_busy_pc_ms, LK_I64),
    LIVE(longPollingEnable, br_long_polling, LK_BOOL), /* pull parking */
    LIVE(shortPollingTimeMills, br_short_poll_ms, LK_I64),
    LIVE(maxTransferCountOnMessageInMemory, br_max_pull_msgs, LK_INT), /* pull batch bounds */
    LIVE(maxTransferBytesOnMessageInMemory, br_max_pull_bytes, LK_SIZE),
    LIVE(enablePropertyFilter, br_property_filter, LK_BOOL),          /* SQL92 subscriptions */
    LIVE(autoCreateSubscriptionGroup, br_auto_create_group, LK_BOOL), /* group auto-creation */
    LIVE(channelNotActiveInterval, br_channel_expire_ms, LK_I64),     /* client expiry */
#undef LIVE
};
#define N_LIVE (sizeof(live_keys) / sizeof(live_keys[0]))

static const struct live_key *live_find(const char *key)
{
    for (size_t i = 0; i < N_LIVE; i++)
        if (strcmp(live_keys[i].lk_name, key) == 0)
            return &live_keys[i];
    return NULL;
}

static int64_t live_get(struct apg_broker *b, const struct live_key *lk)
{
    void *f = (char *)b + lk->lk_off;
    switch (lk->lk_kind) {
    case LK_BOOL:
        return atomic_load((atomic_bool *)f);
    case LK_I32:
        return atomic_load((_Atomic int32_t *)f);
    case LK_INT:
        return atomic_load((atomic_int *)f);
    case LK_I64:
        return atomic_load((_Atomic int64_t *)f);
    default:
        return (int64_t)atomic_load((_Atomic size_t *)f);
    }
}

static void live_set(struct apg_broker *b, const struct live_key *lk, int64_t v)
{
    void *f = (char *)b + lk->lk_off;
    switch (lk->lk_kind) {
    case LK_BOOL:
        atomic_store((atomic_bool *)f, v != 0);
        break;
    case LK_I32:
        atomic_store((_Atomic int32_t *)f, (int32_t)v);
        break;
    case LK_INT:
        atomic_store((atomic_int *)f, (int)v);
        break;
    case LK_I64:
        atomic_store((_Atomic int64_t *)f, v);
        break;
    default:
        atomic_store((_Atomic size_t *)f, (size_t)v);
        break;
    }
}

/* ---- UPDATE_BROKER_CONFIG ------------------------------------------------ */

/* Copies text from a request into a remark or log line: at most n - 1
 * bytes, anything but printable ASCII as '?', so a request cannot forge log
 * lines. */
static void printable(char *out, size_t n, const char *text)
{
    size_t i = 0;
    for (; text[i] && i + 1 < n; i++)
        out[i] = text[i] >= 0x20 && text[i] < 0x7f ? text[i] : '?';
    out[i] = 0;
}

apg_err_t apg_broker_live_keys_check(char *err, size_t errlen)
{
    struct apg_config *cfg = apg_config_new(APG_ROLE_BROKER);
    if (!cfg)
        return apg_errf(APG_ENOMEM, err, errlen, "out of memory");
    for (int id = 0; id < APG_CFG__COUNT; id++) {
        bool live = false;
        for (size_t i = 0; i < N_LIVE; i++)
            live |= live_keys[i].lk_id == (enum apg_cfg_id)id;
        if (live != apg_config_runtime_id(cfg, (enum apg_cfg_id)id)) {
            apg_config_free(cfg);
            return apg_errf(APG_EINVAL, err, errlen,
                            "config.def and live_keys disagree on config key #%d: every broker key "
                            "marked RT needs a live field and every live field the RT mark",
                            id);
        }
    }
    apg_config_free(cfg);
    return APG_OK;
}

static void update_config(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req)
{
    /* The checks are apg_config_update_runtime's, on a broker-role config
     * whose runtime keys hold their live values: the keys marked RT in
     * config.def, all or nothing, the same refusals as UPDATE_NAMESRV_CONFIG
     * (a standalone broker takes no NameServer key either). */
    struct apg_config *next = apg_config_new(APG_ROLE_BROKER);
    char err[512], remark[600];
    apg_err_t e = next ? APG_OK : APG_ENOMEM;
    for (size_t i = 0; !e && i < N_LIVE; i++) {
        int64_t v = live_get(b, &live_keys[i]);
        char text[32];
        if (live_keys[i].lk_kind == LK_BOOL)
            snprintf(text, sizeof(text), "%s", v ? "true" : "false");
        else
            snprintf(text, sizeof(text), "%lld", (long long)v);
        e = apg_config_set(next, live_keys[i].lk_name, text, APG_CFG_SRC_RUNTIME, err, sizeof(err));
    }
    int changed = 0;
    if (!e)
        e = apg_config_update_runtime(next, (const char *)req->body, req->body_len, &changed, err,
                                      sizeof(err));
    if (e) {
        char clean[sizeof(err)];
        printable(clean, sizeof(clean), e == APG_ENOMEM ? "out of memory" : err);
        snprintf(remark, sizeof(remark), "UPDATE_BROKER_CONFIG refused: %s", clean);
        apg_broker_refuse(b, c, req,
                          e == APG_EPERM ? APG_RESP_NO_PERMISSION : APG_RESP_SYSTEM_ERROR, remark);
        apg_config_free(next);
        return;
    }
    bool perm = false;
    for (size_t i = 0; i < N_LIVE; i++) {
        const struct live_key *lk = &live_keys[i];
        int64_t old = live_get(b, lk), v = apg_cfg_int(next, lk->lk_id);
        if (v == old)
            continue;
        live_set(b, lk, v);
        perm |= lk->lk_id == APG_CFG_brokerPermission;
        apg_log_info("broker", "UPDATE_BROKER_CONFIG from %s: %s=%s (was %lld)", apg_conn_peer(c),
                     lk->lk_name, apg_cfg_str(next, lk->lk_id), (long long)old);
    }
    apg_config_free(next);
    if (changed) {
        atomic_fetch_add(&b->br_cfg_changes, 1);
        b->br_cfg_ms = apg_wall_ms();
    }
    if (perm) {
        apg_topics_touch(b->br_topics);
        apg_broker_service_kick(b, APG_BSVC_REGISTER);
    }
    apg_broker_reply(c, req, APG_RESP_SUCCESS, NULL);
}

/* ---- GET_BROKER_CONFIG --------------------------------------------------- */

/* Appends line ("key=value  # source") as "key=value\n", with the live value
 * for the allow-listed keys. */
static apg_err_t put_line(struct apg_broker *b, struct apg_buf *o, const char *line, size_t len)
{
    const char *eq = memchr(line, '=', len);
    if (!eq)
        return APG_OK;
    const char *end = line + len;
    for (const char *p = end; p - line >= 4 && p > eq; p--)
        if (memcmp(p - 4, "  # ", 4) == 0) {
            end = p - 4;
            break;
        }
    char key[256];
    snprintf(key, sizeof(key), "%.*s", (int)(eq - line), line);
    const struct live_key *lk = live_find(key);
    if (lk) {
        int64_t v = live_get(b, lk);
        return lk->lk_kind == LK_BOOL ? apg_buf_printf(o, "%s=%s\n", key, v ? "true" : "false")
                                      : apg_buf_printf(o, "%s=%lld\n", key, (long long)v);
    }
    apg_err_t e = apg_buf_append(o, line, (size_t)(end - line));
    return e ? e : apg_buf_append(o, "\n", 1);
}

/* Keys Apogee has no setting for that mqadmin's exportConfigs reads from
 * the answer (it fails on an absent one), each with the value that states
 * what this broker does: no filter servers, no reads from slaves, TRACE_ON
 * in every send reply, and whether its NameServer connections use TLS. */
static apg_err_t put_fixed(struct apg_broker *b, struct apg_buf *o)
{
    return apg_buf_printf(o,
                          "filterServerNums=0\nslaveReadEnable=false\ntraceOn=true\n"
                          "useTLS=%s\n",
                          apg_cfg_bool(b->br_cfg, APG_CFG_tlsEnable) ? "true" : "false");
}

static void get_config(struct apg_broker *b, struct apg_conn *c, const struct apg_rcmd *req)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR, "out of memory");
        return;
    }
    apg_config_print(b->br_cfg, f);
    fclose(f);
    struct apg_buf o = APG_BUF_INIT;
    apg_err_t e = APG_OK;
    for (size_t at = 0; !e && at < len;) {
        const char *nl = memchr(text + at, '\n', len - at);
        size_t n = nl ? (size_t)(nl - (text + at)) : len - at;
        e = put_line(b, &o, text + at, n);
        at += n + 1;
    }
    free(text); /* open_memstream's buffer comes from malloc */
    if (!e)
        e = put_fixed(b, &o);
    int64_t ms = b->br_cfg_ms ? b->br_cfg_ms : b->br_boot_ms;
    char ver[96];
    snprintf(ver, sizeof(ver), "{\"counter\":%lld,\"timestamp\":%lld}",
             (long long)atomic_load(&b->br_cfg_changes), (long long)ms);
    if (e) {
        apg_broker_refuse(b, c, req, APG_RESP_SYSTEM_ERROR, "out of memory");
    } else if (!apg_rcmd_is_oneway(req)) {
        struct apg_rcmd resp;
        apg_rcmd_init_response(&resp, req, APG_RESP_SUCCESS, NULL);
        apg_rcmd_ext_add(&resp, "version", ver);
        apg_conn_send(c, &resp, o.b_data, (uint32_t)o.b_len);
    }
    apg_buf_free(&o);
}

void apg_broker_proc_admin_config(struct apg_broker *b, struct apg_conn *c,
                                  const struct apg_rcmd *req)
{
    if (req->code == APG_REQ_UPDATE_BROKER_CONFIG)
        update_config(b, c, req);
    else
        get_config(b, c, req);
}

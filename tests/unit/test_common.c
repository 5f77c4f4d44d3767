/* Unit tests for src/common: config table, .properties parsing, Java hashes,
 * buffers and the counting allocator. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>
#include <pthread.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/file.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/mem.h"

static void test_defaults_per_role(void **state)
{
    struct apg_config *ns = apg_config_new(APG_ROLE_NAMESRV);
    struct apg_config *br = apg_config_new(APG_ROLE_BROKER);
    struct apg_config *sa = apg_config_new(APG_ROLE_STANDALONE);
    assert_int_equal(apg_cfg_int(ns, APG_CFG_listenPort), 9876);
    assert_int_equal(apg_cfg_int(br, APG_CFG_listenPort), 10911);
    assert_int_equal(apg_cfg_int(sa, APG_CFG_listenPort), 10911);
    assert_int_equal(apg_cfg_int(sa, APG_CFG_namesrvListenPort), 9876);
    assert_string_equal(apg_cfg_str(br, APG_CFG_flushDiskType), "ASYNC_FLUSH");
    assert_int_equal(apg_cfg_int(br, APG_CFG_maxMessageSize), 4194304);
    assert_true(apg_cfg_bool(br, APG_CFG_autoCreateTopicEnable));
    assert_string_equal(apg_cfg_str(sa, APG_CFG_storePathRootDir), "./data");
    /* Standalone listens on loopback unless told otherwise; the servers run
     * on their own listen on every interface, as RocketMQ's do. */
    assert_string_equal(apg_cfg_str(sa, APG_CFG_bindAddress), "127.0.0.1");
    assert_true(apg_config_bind_loopback(sa));
    assert_string_equal(apg_cfg_str(br, APG_CFG_bindAddress), "0.0.0.0");
    assert_true(apg_config_bind_wildcard(br));
    assert_false(apg_config_bind_loopback(ns));
    apg_config_free(ns);
    apg_config_free(br);
    apg_config_free(sa);
}

static void test_set_validates(void **state)
{
    struct apg_config *br = apg_config_new(APG_ROLE_BROKER);
    char err[256];
    assert_int_equal(apg_config_set(br, "listenPort", "10921", APG_CFG_SRC_ARG, err, sizeof(err)),
                     APG_OK);
    assert_int_equal(apg_cfg_int(br, APG_CFG_listenPort), 10921);
    assert_int_equal(apg_config_set(br, "listenPort", "70000", APG_CFG_SRC_ARG, err, sizeof(err)),
                     APG_ECONFIG);
    assert_non_null(strstr(err, "1..65535"));
    assert_int_equal(apg_config_set(br, "listenPort", "12ab", APG_CFG_SRC_ARG, err, sizeof(err)),
                     APG_ECONFIG);
    assert_int_equal(
        apg_config_set(br, "flushDiskType", "SYNC_FLUSH", APG_CFG_SRC_ARG, err, sizeof(err)),
        APG_OK);
    assert_int_equal(
        apg_config_set(br, "flushDiskType", "SOMETIMES", APG_CFG_SRC_ARG, err, sizeof(err)),
        APG_ECONFIG);
    assert_non_null(strstr(err, "ASYNC_FLUSH|SYNC_FLUSH"));
    assert_int_equal(
        apg_config_set(br, "autoCreateTopicEnable", "FALSE", APG_CFG_SRC_ARG, err, sizeof(err)),
        APG_OK);
    assert_false(apg_cfg_bool(br, APG_CFG_autoCreateTopicEnable));
    assert_int_equal(
        apg_config_set(br, "autoCreateTopicEnable", "yes", APG_CFG_SRC_ARG, err, sizeof(err)),
        APG_ECONFIG);
    assert_int_equal(apg_config_set(br, "noSuchKey", "1", APG_CFG_SRC_ARG, err, sizeof(err)),
                     APG_ENOTFOUND);
    /* A namesrv-only key does not apply to a broker. */
    assert_int_equal(
        apg_config_set(br, "scanNotActiveBrokerInterval", "100", APG_CFG_SRC_ARG, err, sizeof(err)),
        APG_ENOTFOUND);
    apg_config_free(br);
}

static void test_args_and_file(void **state)
{
    char path[] = "/tmp/apogee-cfg-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "# broker.conf\n"
                       "brokerClusterName = DefaultCluster\n"
                       "brokerName=broker-b\n"
                       "listenPort: 10931\n"
                       "deleteWhen=04\n"
                       "brokerRole=ASYNC_MASTER\n"
                       "someJavaOnlyKey=1\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);

    struct apg_config *br = apg_config_new(APG_ROLE_BROKER);
    char err[256];
    bool print_only;
    /* Flags win over the file whatever their order. */
    char *argv[] = {"--listenPort=10941", "-c",     path, "-n", "127.0.0.1:9877", "-p",
                    "--storePathRootDir", "/tmp/b1"};
    assert_int_equal(apg_config_parse_args(br, 8, argv, &print_only, err, sizeof(err)), APG_OK);
    assert_true(print_only);
    assert_int_equal(apg_cfg_int(br, APG_CFG_listenPort), 10941);
    assert_string_equal(apg_cfg_str(br, APG_CFG_brokerName), "broker-b");
    assert_string_equal(apg_cfg_str(br, APG_CFG_namesrvAddr), "127.0.0.1:9877");
    assert_string_equal(apg_cfg_str(br, APG_CFG_storePathRootDir), "/tmp/b1");

    char *bad[] = {"--listenPort=abc"};
    assert_int_equal(apg_config_parse_args(br, 1, bad, &print_only, err, sizeof(err)), APG_ECONFIG);
    char *unknown[] = {"--bogus=1"};
    assert_int_equal(apg_config_parse_args(br, 1, unknown, &print_only, err, sizeof(err)),
                     APG_ECONFIG);
    assert_non_null(strstr(err, "bogus"));
    char *stray[] = {"stray"};
    assert_int_equal(apg_config_parse_args(br, 1, stray, &print_only, err, sizeof(err)),
                     APG_ECONFIG);
    char *missing[] = {"-c", "/nonexistent/broker.conf"};
    assert_int_equal(apg_config_parse_args(br, 2, missing, &print_only, err, sizeof(err)),
                     APG_ECONFIG);
    assert_non_null(strstr(err, "/nonexistent/broker.conf"));
    apg_config_free(br);
    unlink(path);
}

/* RocketMQ 4.0-4.5.1 spelled the segment sizes mapedFileSize*: a broker.conf
 * of that time sets the key, and -p says which spelling did. */
static void test_legacy_aliases(void **state)
{
    char path[] = "/tmp/apogee-cfg-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "mapedFileSizeCommitLog=67108864\n"
                       "mapedFileSizeConsumeQueue = 120000\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    struct apg_config *br = apg_config_new(APG_ROLE_BROKER);
    char err[256];
    assert_int_equal(apg_config_load_file(br, path, err, sizeof(err)), APG_OK);
    assert_int_equal(apg_cfg_int(br, APG_CFG_mappedFileSizeCommitLog), 67108864);
    assert_int_equal(apg_cfg_int(br, APG_CFG_mappedFileSizeConsumeQueue), 120000);

    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    apg_config_print(br, out);
    fclose(out);
    assert_non_null(
        strstr(buf, "\nmappedFileSizeCommitLog=67108864  # file, as mapedFileSizeCommitLog\n"));
    assert_non_null(
        strstr(buf, "\nmappedFileSizeConsumeQueue=120000  # file, as mapedFileSizeConsumeQueue\n"));
    free(buf);

    /* The command line wins over the file in either spelling, and the
     * alias is validated like the key. */
    bool print_only;
    char *argv[] = {"--mappedFileSizeCommitLog=33554432", "--mapedFileSizeConsumeQueue", "6000"};
    assert_int_equal(apg_config_parse_args(br, 3, argv, &print_only, err, sizeof(err)), APG_OK);
    assert_int_equal(apg_cfg_int(br, APG_CFG_mappedFileSizeCommitLog), 33554432);
    assert_int_equal(apg_cfg_int(br, APG_CFG_mappedFileSizeConsumeQueue), 6000);
    buf = NULL;
    out = open_memstream(&buf, &len);
    apg_config_print(br, out);
    fclose(out);
    assert_non_null(strstr(buf, "\nmappedFileSizeCommitLog=33554432  # command line\n"));
    assert_non_null(strstr(
        buf, "\nmappedFileSizeConsumeQueue=6000  # command line, as mapedFileSizeConsumeQueue\n"));
    free(buf);
    assert_int_equal(
        apg_config_set(br, "mapedFileSizeCommitLog", "12", APG_CFG_SRC_ARG, err, sizeof(err)),
        APG_ECONFIG);
    assert_non_null(strstr(err, "out of range"));
    /* A namesrv has no segment sizes, in any spelling. */
    struct apg_config *ns = apg_config_new(APG_ROLE_NAMESRV);
    assert_int_equal(
        apg_config_set(ns, "mapedFileSizeCommitLog", "67108864", APG_CFG_SRC_ARG, err, sizeof(err)),
        APG_ENOTFOUND);
    apg_config_free(ns);
    apg_config_free(br);
    unlink(path);
}

struct kv_list {
    int n;
    char k[8][64];
    char v[8][64];
};

static void collect(const char *key, const char *value, void *ud)
{
    struct kv_list *l = ud;
    if (l->n < 8) {
        snprintf(l->k[l->n], 64, "%s", key);
        snprintf(l->v[l->n], 64, "%s", value);
        l->n++;
    }
}

/* A key Apogee does not read is worded the same on the command line and in
 * a file and, when it is a RocketMQ or another role's key, ignored in both;
 * a typo on the command line is an error whose text does not say ignored. */
static void test_keys_not_read(void **state)
{
    struct apg_config *ns = apg_config_new(APG_ROLE_NAMESRV);
    char err[512];
    bool print_only;
    char *argv[] = {"--enablePropertyFilter=true", "--dLegerGroup=g1", "-n", "127.0.0.1:9876"};
    assert_int_equal(apg_config_parse_args(ns, 4, argv, &print_only, err, sizeof(err)), APG_OK);
    assert_int_equal(
        apg_config_set(ns, "enablePropertyFilter", "true", APG_CFG_SRC_ARG, err, sizeof(err)),
        APG_ENOTFOUND);
    assert_non_null(strstr(err, "is a broker setting; `apogee namesrv` does not use it (ignored)"));
    assert_int_equal(apg_config_set(ns, "dLegerGroup", "g1", APG_CFG_SRC_ARG, err, sizeof(err)),
                     APG_ENOTFOUND);
    assert_non_null(strstr(err, "RocketMQ setting Apogee does not implement (ignored)"));
    /* A key Apogee does not read never takes the next option as its value. */
    char *bare[] = {"--clusterTest", "--listenPort", "9877"};
    assert_int_equal(apg_config_parse_args(ns, 3, bare, &print_only, err, sizeof(err)), APG_OK);
    assert_int_equal(apg_cfg_int(ns, APG_CFG_listenPort), 9877);
    char *typo[] = {"--listenPrt=1"};
    assert_int_equal(apg_config_parse_args(ns, 1, typo, &print_only, err, sizeof(err)),
                     APG_ECONFIG);
    assert_non_null(strstr(err, "unknown config key 'listenPrt'"));
    assert_null(strstr(err, "ignored"));
    /* Replication Apogee lacks is refused when asked for, not ignored. */
    struct apg_config *br = apg_config_new(APG_ROLE_BROKER);
    char *dleger[] = {"--enableDLegerCommitLog=true"};
    assert_int_equal(apg_config_parse_args(br, 1, dleger, &print_only, err, sizeof(err)),
                     APG_ECONFIG);
    assert_non_null(strstr(err, "enableDLegerCommitLog=true"));
    char *nodleger[] = {"--enableDLegerCommitLog=false"};
    assert_int_equal(apg_config_parse_args(br, 1, nodleger, &print_only, err, sizeof(err)), APG_OK);
    /* A slave needs an id above 0 (RocketMQ's BrokerStartup refuses 0). */
    char *slave[] = {"--brokerRole=SLAVE"};
    assert_int_equal(apg_config_parse_args(br, 1, slave, &print_only, err, sizeof(err)),
                     APG_ECONFIG);
    assert_non_null(strstr(err, "brokerRole=SLAVE needs brokerId > 0"));
    struct apg_config *sl = apg_config_new(APG_ROLE_BROKER);
    char *slave_ok[] = {"--brokerRole=SLAVE", "--brokerId=1"};
    assert_int_equal(apg_config_parse_args(sl, 2, slave_ok, &print_only, err, sizeof(err)), APG_OK);
    assert_int_equal(apg_cfg_int(sl, APG_CFG_brokerId), 1);
    apg_config_free(sl);
    /* `apogee standalone` is one master. */
    struct apg_config *sa = apg_config_new(APG_ROLE_STANDALONE);
    assert_int_equal(apg_config_parse_args(sa, 2, slave_ok, &print_only, err, sizeof(err)),
                     APG_ECONFIG);
    assert_non_null(strstr(err, "apogee standalone"));
    apg_config_free(sa);
    /* SYNC_MASTER is a master. */
    char *sync_master[] = {"--brokerRole=SYNC_MASTER"};
    assert_int_equal(apg_config_parse_args(br, 1, sync_master, &print_only, err, sizeof(err)),
                     APG_OK);
    /* A master with another id registers as 0, as RocketMQ's does. */
    struct apg_config *m1 = apg_config_new(APG_ROLE_BROKER);
    char *master_id[] = {"--brokerId=1"};
    assert_int_equal(apg_config_parse_args(m1, 1, master_id, &print_only, err, sizeof(err)),
                     APG_OK);
    assert_int_equal(apg_cfg_int(m1, APG_CFG_brokerId), 0);
    apg_config_free(m1);
    char *master[] = {"--brokerRole=ASYNC_MASTER", "--brokerId=0"};
    assert_int_equal(apg_config_parse_args(br, 2, master, &print_only, err, sizeof(err)), APG_OK);
    char *acl[] = {"--aclEnable=true"};
    assert_int_equal(apg_config_parse_args(br, 1, acl, &print_only, err, sizeof(err)), APG_OK);
    apg_config_free(br);
    apg_config_free(ns);
}

/* UPDATE_*_CONFIG: allow-listed keys only, all or nothing, the refusal
 * names the key; the properties text reads back. */
static void test_runtime_update(void **state)
{
    struct apg_config *ns = apg_config_new(APG_ROLE_NAMESRV);
    char err[512];
    int changed = -1;
    assert_true(apg_config_runtime_key_allowed("orderMessageEnable"));
    assert_false(apg_config_runtime_key_allowed("kvConfigPath"));
    assert_false(apg_config_runtime_key_allowed("listenPort"));
    assert_false(apg_config_runtime_key_allowed("configStorePath"));
    const char *ok = "orderMessageEnable=true\nscanNotActiveBrokerInterval=700\n";
    assert_int_equal(apg_config_update_runtime(ns, ok, strlen(ok), &changed, err, sizeof(err)),
                     APG_OK);
    assert_int_equal(changed, 2);
    assert_true(apg_cfg_bool(ns, APG_CFG_orderMessageEnable));
    assert_int_equal(apg_cfg_int(ns, APG_CFG_scanNotActiveBrokerInterval), 700);

    static const struct {
        const char *body, *needle;
        apg_err_t rc;
    } bad[] = {
        {"enableAllTopicList=false\nconfigStorePath=/tmp/x\n", "'configStorePath' names a file",
         APG_EPERM},
        {"kvConfigPath=/etc/passwd\n", "'kvConfigPath' names a file", APG_EPERM},
        {"rocketmqHome=/tmp\n", "'rocketmqHome' names a file", APG_EPERM},
        {"productEnvName=x\n", "'productEnvName' names a file", APG_EPERM},
        {"listenPort=1234\n", "'listenPort' is read only at start-up", APG_EPERM},
        {"brokerName=b\n", "'brokerName' is a broker setting", APG_EPERM},
        {"clusterTest=true\n", "'clusterTest' is a RocketMQ setting Apogee does not", APG_EPERM},
        {"noSuchKey=1\n", "'noSuchKey' is not a configuration key", APG_EPERM},
        {"enableAllTopicList=false\nscanNotActiveBrokerInterval=1\n",
         "scanNotActiveBrokerInterval=1: out of range", APG_ECONFIG},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(apg_config_update_runtime(ns, bad[i].body, strlen(bad[i].body), &changed,
                                                   err, sizeof(err)),
                         bad[i].rc);
        if (!strstr(err, bad[i].needle))
            fail_msg("%s: %s", bad[i].body, err);
        assert_non_null(strstr(err, "nothing was changed"));
        assert_int_equal(changed, 0);
        /* all or nothing: the valid key before the bad one did not apply */
        assert_true(apg_cfg_bool(ns, APG_CFG_enableAllTopicList));
    }

    size_t len;
    char *text = apg_config_properties(ns, &len);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    assert_non_null(strstr(text, "orderMessageEnable=true\n"));
    assert_non_null(strstr(text, "listenPort=9876\n"));
    assert_null(strstr(text, "brokerName="));
    apg_free(text);
    /* A value with a backslash or a line break survives the round trip. */
    assert_int_equal(
        apg_config_set(ns, "kvConfigPath", "C:\\kv\nx", APG_CFG_SRC_ARG, err, sizeof(err)), APG_OK);
    text = apg_config_properties(ns, &len);
    assert_non_null(strstr(text, "kvConfigPath=C:\\\\kv\\nx\n"));
    apg_free(text);
    apg_config_free(ns);
}

static void test_properties_syntax(void **state)
{
    const char *t = "! comment\n"
                    "  a=1\n"
                    "b : two words \n"
                    "c\\\n"
                    "  ont=x\\\n"
                    "    y\n"
                    "d\t\\u00e9t\\u00E9\n"
                    "e\\=k=v\\tw\r\n"
                    "lonely\n";
    struct kv_list l = {0};
    assert_int_equal(apg_properties_parse(t, strlen(t), collect, &l), APG_OK);
    assert_int_equal(l.n, 6);
    assert_string_equal(l.k[0], "a");
    assert_string_equal(l.v[0], "1");
    assert_string_equal(l.k[1], "b");
    assert_string_equal(l.v[1], "two words ");
    assert_string_equal(l.k[2], "cont");
    assert_string_equal(l.v[2], "xy");
    assert_string_equal(l.k[3], "d");
    assert_string_equal(l.v[3], "\xc3\xa9t\xc3\xa9");
    assert_string_equal(l.k[4], "e=k");
    assert_string_equal(l.v[4], "v\tw");
    assert_string_equal(l.k[5], "lonely");
    assert_string_equal(l.v[5], "");

    const char *bad = "x=\\u12\n";
    struct kv_list l2 = {0};
    assert_int_equal(apg_properties_parse(bad, strlen(bad), collect, &l2), APG_EINVAL);
}

static void test_java_hash(void **state)
{
    /* Values computed by Java's String.hashCode. */
    assert_int_equal(apg_java_hash("", 0), 0);
    assert_int_equal(apg_java_hash("TagA", 4), 2598919);
    assert_int_equal(apg_java_hash("hello world", 11), 1794106052);
    /* "é" (U+00E9) = 233; "日本" = 26085*31 + 26412 */
    assert_int_equal(apg_java_hash("\xc3\xa9", 2), 233);
    assert_int_equal(apg_java_hash("\xe6\x97\xa5\xe6\x9c\xac", 6), 26085 * 31 + 26412);
    /* U+1F600 is the surrogate pair D83D DE00. */
    assert_int_equal(apg_java_hash("\xf0\x9f\x98\x80", 4), 0xD83D * 31 + 0xDE00);
    /* A lone bad byte hashes as U+FFFD. */
    assert_int_equal(apg_java_hash("\xff", 1), 0xFFFD);
}

static void test_crc32(void **state)
{
    assert_int_equal(apg_crc32("123456789", 9), 0xCBF43926u);
    assert_int_equal(apg_rmq_crc32("123456789", 9), 0xCBF43926u & 0x7FFFFFFF);
}

static void test_buf_and_mem(void **state)
{
    int64_t before = apg_mem_in_use();
    struct apg_buf b = APG_BUF_INIT;
    assert_int_equal(apg_buf_put_be32(&b, 0x01020304), APG_OK);
    assert_int_equal(apg_buf_put_be64(&b, 0x0506070809101112ull), APG_OK);
    assert_int_equal(apg_buf_printf(&b, "%s-%d", "x", 7), APG_OK);
    assert_int_equal(b.b_len, 15);
    assert_int_equal(apg_be32(b.b_data), 0x01020304);
    assert_true(apg_be64(b.b_data + 4) == 0x0506070809101112ull);
    assert_memory_equal(b.b_data + 12, "x-7", 3);
    apg_buf_consume(&b, 4);
    assert_int_equal(b.b_len, 11);
    assert_true(apg_mem_in_use() > before);
    apg_buf_free(&b);
    assert_int_equal(apg_mem_in_use(), before);

    apg_mem_fail_after(1);
    assert_null(apg_malloc(10));
    void *p = apg_malloc(10);
    assert_non_null(p);
    apg_free(p);
}

/* apg_path_join and apg_cond_wait_ms (common/file.h, common/clock.h). */
static void test_path_and_clock(void **state)
{
    (void)state;
    char *p = apg_path_join("/data/store", "config/topics.json");
    assert_string_equal(p, "/data/store/config/topics.json");
    apg_free(p);
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
    int64_t t0 = apg_mono_ms(), w0 = apg_wall_ms();
    pthread_mutex_lock(&mu);
    assert_int_equal(apg_cond_wait_ms(&cv, &mu, 30), ETIMEDOUT);
    pthread_mutex_unlock(&mu);
    assert_true(apg_mono_ms() - t0 >= 29);
    assert_true(apg_wall_ms() - w0 >= 29);
    assert_true(apg_mono_ns() / 1000000 >= t0);
}

/* One line per period: the first event logs, the rest of the period only
 * counts, and the next line carries how many went unlogged. */
static void test_log_limit(void **state)
{
    struct apg_log_limit l = {0};
    int64_t quiet = -1;
    assert_true(apg_log_limit_hit(&l, 1000, 1000, &quiet));
    assert_int_equal(quiet, 0);
    for (int i = 0; i < 9000; i++)
        assert_false(apg_log_limit_hit(&l, 1000 + i / 10, 1000, &quiet));
    assert_false(apg_log_limit_hit(&l, 1999, 1000, &quiet));
    assert_true(apg_log_limit_hit(&l, 2000, 1000, &quiet));
    assert_int_equal(quiet, 9001);
    /* A quiet spell: the next event logs at once, with nothing unlogged. */
    assert_true(apg_log_limit_hit(&l, 60000, 1000, &quiet));
    assert_int_equal(quiet, 0);
    assert_int_equal(atomic_load(&l.ll_count), 9004);
    assert_int_equal(atomic_load(&l.ll_quiet), 0);
}

struct limit_arg {
    struct apg_log_limit *l;
    int hits;
    int64_t quiet;
};

static void *limit_thread(void *arg)
{
    struct limit_arg *a = arg;
    for (int i = 0; i < 100000; i++) {
        int64_t q;
        if (apg_log_limit_hit(a->l, 5000 + i / 50000 * 1000, 1000, &q)) {
            a->hits++;
            a->quiet += q;
        }
    }
    return NULL;
}

/* Four threads at once: exactly one line per period, and every event is
 * either a line or counted in one. */
static void test_log_limit_threads(void **state)
{
    struct apg_log_limit l = {0};
    struct limit_arg a[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (struct limit_arg){.l = &l};
        assert_int_equal(pthread_create(&t[i], NULL, limit_thread, &a[i]), 0);
    }
    int hits = 0;
    int64_t quiet = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        hits += a[i].hits;
        quiet += a[i].quiet;
    }
    /* Periods 5000 and 6000 each log once at most (a thread may reach 6000
     * while another is still at 5000, which then only counts). */
    assert_true(hits >= 1 && hits <= 2);
    assert_int_equal(atomic_load(&l.ll_count), 400000);
    assert_int_equal(hits + quiet + atomic_load(&l.ll_quiet), 400000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_per_role), cmocka_unit_test(test_set_validates),
        cmocka_unit_test(test_args_and_file),     cmocka_unit_test(test_properties_syntax),
        cmocka_unit_test(test_java_hash),         cmocka_unit_test(test_crc32),
        cmocka_unit_test(test_buf_and_mem),       cmocka_unit_test(test_path_and_clock),
        cmocka_unit_test(test_legacy_aliases),    cmocka_unit_test(test_log_limit),
        cmocka_unit_test(test_log_limit_threads), cmocka_unit_test(test_keys_not_read),
        cmocka_unit_test(test_runtime_update),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* ACL check micro-benchmark.
 *
 * Decides a signed SEND_MESSAGE_V2 (the 13 header fields a 4.9.x Java
 * producer sends, plus AccessKey and Signature) with a 128-byte body, under
 * a rule set of one account with topic permissions: the work the broker
 * adds to each request with aclEnable=true (sort the fields, HMAC-SHA1 over
 * values and body, Base64, account and permission look-ups). Also times the
 * client's signing of the same request. Reports CPU ns per operation. Usage:
 * bench_acl [iterations] (default 1,000,000). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acl/acl.h"
#include "protocol/rcode.h"
#include "protocol/remoting.h"
#include "protocol/sign.h"

/* CPU time of this thread: the VM is shared, so wall time would count
 * other processes' turns. */
static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static const char yml[] = "accounts:\n"
                          "  - accessKey: benchUser1\n"
                          "    secretKey: benchSecret1\n"
                          "    defaultTopicPerm: DENY\n"
                          "    defaultGroupPerm: SUB\n"
                          "    topicPerms: [TopicTest=PUB|SUB, Other1=SUB, Other2=DENY]\n";

static void build(struct apg_rcmd *c, const uint8_t *body)
{
    apg_rcmd_init_request(c, APG_REQ_SEND_MESSAGE_V2, 42, APG_SER_ROCKETMQ);
    apg_rcmd_ext_add(c, "a", "please_rename_unique_group_name");
    apg_rcmd_ext_add(c, "b", "TopicTest");
    apg_rcmd_ext_add(c, "c", "TBW102");
    apg_rcmd_ext_add(c, "d", "4");
    apg_rcmd_ext_add(c, "e", "-1");
    apg_rcmd_ext_add(c, "f", "0");
    apg_rcmd_ext_add(c, "g", "1700000000000");
    apg_rcmd_ext_add(c, "h", "0");
    apg_rcmd_ext_add(c, "i",
                     "UNIQ_KEY\0017F0000010001B4AAC1B0000000\002WAIT\001true\002TAGS"
                     "\001TagA\002");
    apg_rcmd_ext_add(c, "j", "0");
    apg_rcmd_ext_add(c, "k", "false");
    apg_rcmd_ext_add(c, "l", "0");
    apg_rcmd_ext_add(c, "m", "false");
    c->body = body;
    c->body_len = 128;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    struct apg_acl_rules *r;
    char err[256];
    if (apg_acl_rules_parse((const uint8_t *)yml, sizeof(yml) - 1, &r, err, sizeof(err))) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    uint8_t body[128];
    memset(body, 'x', sizeof(body));
    struct apg_hmac_key key;
    apg_hmac_sha1_key(&key, "benchSecret1", 12);
    struct apg_rcmd c;
    char sig[APG_SIGN_LEN], remark[320];
    build(&c, body);
    double t0 = now_ns();
    for (long i = 0; i < n; i++) {
        c.n_ext = 13;
        apg_sign_request(&c, "benchUser1", &key, body, sizeof(body), sig);
    }
    double t1 = now_ns();
    long ok = 0;
    for (long i = 0; i < n; i++)
        ok += apg_acl_rules_check(r, APG_ACL_TABLE_BROKER, &c, "127.0.0.1:5000", remark,
                                  sizeof(remark)) == APG_ACL_OK;
    double t2 = now_ns();
    printf("sign (client): %.0f CPU ns/request\n", (t1 - t0) / (double)n);
    printf("check (broker): %.0f CPU ns/request (%ld of %ld allowed)\n", (t2 - t1) / (double)n, ok,
           n);
    apg_acl_rules_free(r);
    return ok == n ? 0 : 1;
}

/* libFuzzer harness for the plain ACL file parser (src/broker/acl/
 * acl_file.c, on libyaml) and the address patterns it builds: any input
 * gives APG_OK with a rule set or an error with a message, never a crash, a
 * leak or a read past the input. A rule set that parses is then asked to
 * decide one signed request, so the checks run over whatever the file
 * built. The input is copied to an exact-size buffer so ASan sees reads
 * past it. Seeds (tests/fuzz/corpus/acl): RocketMQ's sample plain_acl.yml
 * forms, flow lists, every address form, and broken files. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "acl/acl.h"
#include "protocol/rcode.h"
#include "protocol/remoting.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *p = malloc(size ? size : 1);
    if (!p)
        return 0;
    memcpy(p, data, size);
    struct apg_acl_rules *r = NULL;
    char err[256];
    err[0] = '\0';
    apg_err_t e = apg_acl_rules_parse(p, size, &r, err, sizeof(err));
    if (e == APG_OK) {
        struct apg_rcmd req;
        apg_rcmd_init_request(&req, APG_REQ_PULL_MESSAGE, 1, APG_SER_ROCKETMQ);
        apg_rcmd_ext_add(&req, "topic", "topicA");
        apg_rcmd_ext_add(&req, "consumerGroup", "groupA");
        apg_rcmd_ext_add(&req, "AccessKey", "RocketMQ");
        char sig[32], remark[320];
        apg_acl_sign(&req, "12345678", sig);
        apg_rcmd_ext_add(&req, "Signature", sig);
        apg_acl_rules_check(r, APG_ACL_TABLE_BROKER, &req, "192.168.1.7:4000", remark,
                            sizeof(remark));
        apg_acl_rules_check(r, APG_ACL_TABLE_NAMESRV, &req, "192.168.1.7:4000", remark,
                            sizeof(remark));
        apg_acl_rules_free(r);
    } else if (!err[0] || r != NULL) {
        abort(); /* an error always says why and builds nothing */
    }
    free(p);
    return 0;
}
